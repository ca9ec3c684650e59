# SPDX-License-Identifier: Apache-2.0
"""Checks an object against the openAPIV3Schema of its CustomResourceDefinition, as the API
server's structural schema would: unknown fields fail (unless x-kubernetes-preserve-unknown-fields),
types, enums, required fields, simple bounds and patterns. CEL rules (x-kubernetes-validations)
are not evaluated."""
import re

from k8sfields import OBJECT_META, validate as validate_table


class CRDs:
    def __init__(self, crd_objects):
        # (group, kind) -> crd
        self.by_kind = {}
        for c in crd_objects:
            spec = c['spec']
            self.by_kind[(spec['group'], spec['names']['kind'])] = c

    def lookup(self, api_version, kind):
        group, _, version = api_version.rpartition('/')
        crd = self.by_kind.get((group, kind))
        if crd is None:
            return None, None
        for v in crd['spec']['versions']:
            if v['name'] == version:
                return crd, v
        return crd, None

    def validate(self, obj, where):
        """Errors for obj; None if no CRD here defines its kind."""
        api, kind = obj.get('apiVersion', ''), obj.get('kind')
        crd, ver = self.lookup(api, kind)
        if crd is None:
            return None
        name = obj.get('metadata', {}).get('name')
        base = '%s %s/%s' % (where, kind, name)
        errors = []
        if ver is None:
            return ['%s: version %s is not defined by %s' % (base, api, crd['metadata']['name'])]
        if not ver.get('served', False):
            errors.append('%s: %s is not served' % (base, api))
        md = obj.get('metadata')
        if not isinstance(md, dict) or not md.get('name'):
            errors.append('%s: metadata.name missing' % base)
        else:
            validate_table(md, OBJECT_META, base + ' metadata', errors)
            scope = crd['spec']['scope']
            if scope == 'Cluster' and 'namespace' in md:
                errors.append('%s: %s is cluster-scoped and has no namespace' % (base, kind))
        schema = ver['schema']['openAPIV3Schema']
        rest = {k: v for k, v in obj.items() if k != 'metadata'}
        props = dict(schema.get('properties', {}))
        props.pop('metadata', None)
        top = dict(schema, properties=props)
        walk(rest, top, base, errors)
        return errors


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _type_ok(v, t):
    return {
        'object': lambda: isinstance(v, dict),
        'array': lambda: isinstance(v, list),
        'string': lambda: isinstance(v, str),
        'integer': lambda: _is_int(v),
        'number': lambda: isinstance(v, (int, float)) and not isinstance(v, bool),
        'boolean': lambda: isinstance(v, bool),
    }[t]()


def walk(value, schema, path, errors):
    if value is None:
        if not schema.get('nullable', False):
            errors.append('%s: null is not allowed' % path)
        return
    if schema.get('x-kubernetes-int-or-string'):
        if not (_is_int(value) or isinstance(value, str)):
            errors.append('%s: expected an integer or a string, got %r' % (path, value))
        return
    t = schema.get('type')
    if t and not _type_ok(value, t):
        errors.append('%s: expected %s, got %r' % (path, t, value))
        return
    if 'enum' in schema and value not in schema['enum']:
        errors.append('%s: %r is not one of %s' % (path, value, schema['enum']))
    if isinstance(value, str):
        if 'maxLength' in schema and len(value) > schema['maxLength']:
            errors.append('%s: longer than %d' % (path, schema['maxLength']))
        if 'minLength' in schema and len(value) < schema['minLength']:
            errors.append('%s: shorter than %d' % (path, schema['minLength']))
        if 'pattern' in schema and not re.search(schema['pattern'], value):
            errors.append('%s: %r does not match %s' % (path, value, schema['pattern']))
    if _is_int(value) or isinstance(value, float):
        if 'minimum' in schema and value < schema['minimum']:
            errors.append('%s: %r is below %r' % (path, value, schema['minimum']))
        if 'maximum' in schema and value > schema['maximum']:
            errors.append('%s: %r is above %r' % (path, value, schema['maximum']))
    if isinstance(value, list):
        if 'maxItems' in schema and len(value) > schema['maxItems']:
            errors.append('%s: more than %d items' % (path, schema['maxItems']))
        if 'minItems' in schema and len(value) < schema['minItems']:
            errors.append('%s: fewer than %d items' % (path, schema['minItems']))
        items = schema.get('items')
        if items:
            for i, v in enumerate(value):
                walk(v, items, '%s[%d]' % (path, i), errors)
    if isinstance(value, dict):
        props = schema.get('properties')
        addl = schema.get('additionalProperties')
        preserve = schema.get('x-kubernetes-preserve-unknown-fields', False)
        for req in schema.get('required', []):
            if req not in value:
                errors.append('%s: required field "%s" missing' % (path, req))
        if 'maxProperties' in schema and len(value) > schema['maxProperties']:
            errors.append('%s: more than %d properties' % (path, schema['maxProperties']))
        if 'minProperties' in schema and len(value) < schema['minProperties']:
            errors.append('%s: fewer than %d properties' % (path, schema['minProperties']))
        for k, v in value.items():
            if props and k in props:
                walk(v, props[k], '%s.%s' % (path, k), errors)
            elif isinstance(addl, dict):
                walk(v, addl, '%s.%s' % (path, k), errors)
            elif addl is True or preserve:
                continue
            else:
                errors.append('%s: unknown field "%s"' % (path, k))
