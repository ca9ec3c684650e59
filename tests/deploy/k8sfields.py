# SPDX-License-Identifier: Apache-2.0
"""Field tables of the core Kubernetes kinds used in deploy/, and a validator.

Only the fields that deploy/ uses (and their near neighbours) are listed, with their names and
types as in the Kubernetes API reference (v1.30). A field that is not listed fails, so a typo
like `readOnlyRootFileSystem` or a field at the wrong level is caught; when a manifest needs a
new field, add it here after checking the API reference.

Types: 'str', 'int', 'bool', 'intstr' (int or string), 'quantity' (string or number),
'map' (string -> string), 'any', a dict (object with these fields), a one-element list (list of
that type), or ('enum', values...).
"""
import numbers

MAP = 'map'

LABEL_SELECTOR = {
    'matchLabels': MAP,
    'matchExpressions': [{'key': 'str', 'operator': ('enum', 'In', 'NotIn', 'Exists',
                                                     'DoesNotExist'), 'values': ['str']}],
}

OBJECT_META = {
    'name': 'str', 'generateName': 'str', 'namespace': 'str', 'labels': MAP,
    'annotations': MAP, 'uid': 'str', 'resourceVersion': 'str', 'generation': 'int',
    'creationTimestamp': 'str', 'finalizers': ['str'],
    'ownerReferences': [{'apiVersion': 'str', 'kind': 'str', 'name': 'str', 'uid': 'str',
                         'controller': 'bool', 'blockOwnerDeletion': 'bool'}],
}

KEY_REF = {'name': 'str', 'key': 'str', 'optional': 'bool'}

ENV_VAR = {
    'name': 'str', 'value': 'str',
    'valueFrom': {
        'fieldRef': {'apiVersion': 'str', 'fieldPath': 'str'},
        'resourceFieldRef': {'containerName': 'str', 'resource': 'str', 'divisor': 'quantity'},
        'configMapKeyRef': KEY_REF, 'secretKeyRef': KEY_REF,
    },
}

ENV_FROM = {'prefix': 'str', 'configMapRef': {'name': 'str', 'optional': 'bool'},
            'secretRef': {'name': 'str', 'optional': 'bool'}}

HTTP_GET = {'path': 'str', 'port': 'intstr', 'host': 'str', 'scheme': ('enum', 'HTTP', 'HTTPS'),
            'httpHeaders': [{'name': 'str', 'value': 'str'}]}
EXEC = {'command': ['str']}

PROBE = {
    'httpGet': HTTP_GET, 'exec': EXEC, 'tcpSocket': {'port': 'intstr', 'host': 'str'},
    'grpc': {'port': 'int', 'service': 'str'},
    'initialDelaySeconds': 'int', 'periodSeconds': 'int', 'timeoutSeconds': 'int',
    'failureThreshold': 'int', 'successThreshold': 'int', 'terminationGracePeriodSeconds': 'int',
}

HANDLER = {'exec': EXEC, 'httpGet': HTTP_GET, 'sleep': {'seconds': 'int'}}

RESOURCES = {'requests': {'cpu': 'quantity', 'memory': 'quantity', 'ephemeral-storage': 'quantity'},
             'limits': {'cpu': 'quantity', 'memory': 'quantity', 'ephemeral-storage': 'quantity'}}

SECCOMP = {'type': ('enum', 'RuntimeDefault', 'Localhost', 'Unconfined'),
           'localhostProfile': 'str'}

CONTAINER_SECURITY = {
    'allowPrivilegeEscalation': 'bool', 'readOnlyRootFilesystem': 'bool', 'runAsNonRoot': 'bool',
    'runAsUser': 'int', 'runAsGroup': 'int', 'privileged': 'bool',
    'capabilities': {'add': ['str'], 'drop': ['str']}, 'seccompProfile': SECCOMP,
}

CONTAINER = {
    'name': 'str', 'image': 'str',
    'imagePullPolicy': ('enum', 'Always', 'IfNotPresent', 'Never'),
    'command': ['str'], 'args': ['str'], 'workingDir': 'str',
    'env': [ENV_VAR], 'envFrom': [ENV_FROM],
    'ports': [{'name': 'str', 'containerPort': 'int', 'protocol': ('enum', 'TCP', 'UDP', 'SCTP'),
               'hostPort': 'int'}],
    'livenessProbe': PROBE, 'readinessProbe': PROBE, 'startupProbe': PROBE,
    'lifecycle': {'preStop': HANDLER, 'postStart': HANDLER},
    'resources': RESOURCES, 'securityContext': CONTAINER_SECURITY,
    'volumeMounts': [{'name': 'str', 'mountPath': 'str', 'readOnly': 'bool', 'subPath': 'str'}],
    'terminationMessagePolicy': ('enum', 'File', 'FallbackToLogsOnError'),
}

KEY_TO_PATH = [{'key': 'str', 'path': 'str', 'mode': 'int'}]

VOLUME = {
    'name': 'str',
    'secret': {'secretName': 'str', 'defaultMode': 'int', 'optional': 'bool', 'items': KEY_TO_PATH},
    'configMap': {'name': 'str', 'defaultMode': 'int', 'optional': 'bool', 'items': KEY_TO_PATH},
    'emptyDir': {'medium': 'str', 'sizeLimit': 'quantity'},
    'persistentVolumeClaim': {'claimName': 'str', 'readOnly': 'bool'},
}

AFFINITY_TERM = {'topologyKey': 'str', 'labelSelector': LABEL_SELECTOR, 'namespaces': ['str']}

POD_SPEC = {
    'serviceAccountName': 'str', 'automountServiceAccountToken': 'bool',
    'terminationGracePeriodSeconds': 'int', 'priorityClassName': 'str',
    'securityContext': {'runAsNonRoot': 'bool', 'runAsUser': 'int', 'runAsGroup': 'int',
                        'fsGroup': 'int', 'seccompProfile': SECCOMP,
                        'supplementalGroups': ['int']},
    'affinity': {'podAntiAffinity': {
        'preferredDuringSchedulingIgnoredDuringExecution': [
            {'weight': 'int', 'podAffinityTerm': AFFINITY_TERM}],
        'requiredDuringSchedulingIgnoredDuringExecution': [AFFINITY_TERM]}},
    'nodeSelector': MAP,
    'tolerations': [{'key': 'str', 'operator': ('enum', 'Exists', 'Equal'), 'value': 'str',
                     'effect': 'str', 'tolerationSeconds': 'int'}],
    'topologySpreadConstraints': [{'maxSkew': 'int', 'topologyKey': 'str',
                                   'whenUnsatisfiable': ('enum', 'DoNotSchedule', 'ScheduleAnyway'),
                                   'labelSelector': LABEL_SELECTOR}],
    'containers': [CONTAINER], 'initContainers': [CONTAINER], 'volumes': [VOLUME],
}

DEPLOYMENT = {
    'spec': {
        'replicas': 'int', 'selector': LABEL_SELECTOR, 'revisionHistoryLimit': 'int',
        'minReadySeconds': 'int',
        'strategy': {'type': ('enum', 'RollingUpdate', 'Recreate'),
                     'rollingUpdate': {'maxSurge': 'intstr', 'maxUnavailable': 'intstr'}},
        'template': {'metadata': OBJECT_META, 'spec': POD_SPEC},
    },
}

SERVICE = {
    'spec': {
        'type': ('enum', 'ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'),
        'clusterIP': 'str', 'selector': MAP, 'publishNotReadyAddresses': 'bool',
        'externalTrafficPolicy': ('enum', 'Cluster', 'Local'),
        'ports': [{'name': 'str', 'port': 'int', 'targetPort': 'intstr', 'nodePort': 'int',
                   'protocol': ('enum', 'TCP', 'UDP', 'SCTP'), 'appProtocol': 'str'}],
    },
}

POLICY_RULE = {'apiGroups': ['str'], 'resources': ['str'], 'verbs': ['str'],
               'resourceNames': ['str'], 'nonResourceURLs': ['str']}
ROLE_REF = {'apiGroup': 'str', 'kind': ('enum', 'Role', 'ClusterRole'), 'name': 'str'}
SUBJECT = {'kind': ('enum', 'ServiceAccount', 'User', 'Group'), 'name': 'str',
           'namespace': 'str', 'apiGroup': 'str'}

INGRESS_BACKEND = {
    'service': {'name': 'str', 'port': {'number': 'int', 'name': 'str'}},
    'resource': {'apiGroup': 'str', 'kind': 'str', 'name': 'str'},
}

INGRESS = {
    'spec': {
        'ingressClassName': 'str', 'defaultBackend': INGRESS_BACKEND,
        'tls': [{'hosts': ['str'], 'secretName': 'str'}],
        'rules': [{'host': 'str', 'http': {'paths': [{
            'path': 'str', 'pathType': ('enum', 'Exact', 'Prefix', 'ImplementationSpecific'),
            'backend': INGRESS_BACKEND}]}}],
    },
}

ENDPOINT_SLICE = {
    'addressType': ('enum', 'IPv4', 'IPv6', 'FQDN'),
    'endpoints': [{'addresses': ['str'],
                   'conditions': {'ready': 'bool', 'serving': 'bool', 'terminating': 'bool'},
                   'hostname': 'str', 'nodeName': 'str', 'zone': 'str',
                   'targetRef': {'kind': 'str', 'name': 'str', 'namespace': 'str', 'uid': 'str'}}],
    'ports': [{'name': 'str', 'port': 'int', 'protocol': ('enum', 'TCP', 'UDP', 'SCTP'),
               'appProtocol': 'str'}],
}

# (apiVersion, kind) -> (table of the fields beside apiVersion/kind/metadata, namespaced?)
KINDS = {
    ('v1', 'Namespace'): ({}, False),
    ('v1', 'ServiceAccount'): ({'automountServiceAccountToken': 'bool'}, True),
    ('v1', 'Service'): (SERVICE, True),
    ('v1', 'ConfigMap'): ({'data': MAP, 'immutable': 'bool'}, True),
    ('v1', 'Secret'): ({'type': 'str', 'data': MAP, 'stringData': MAP, 'immutable': 'bool'}, True),
    ('apps/v1', 'Deployment'): (DEPLOYMENT, True),
    ('rbac.authorization.k8s.io/v1', 'ClusterRole'): ({'rules': [POLICY_RULE]}, False),
    ('rbac.authorization.k8s.io/v1', 'Role'): ({'rules': [POLICY_RULE]}, True),
    ('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding'):
        ({'roleRef': ROLE_REF, 'subjects': [SUBJECT]}, False),
    ('rbac.authorization.k8s.io/v1', 'RoleBinding'):
        ({'roleRef': ROLE_REF, 'subjects': [SUBJECT]}, True),
    ('networking.k8s.io/v1', 'IngressClass'):
        ({'spec': {'controller': 'str', 'parameters': {
            'apiGroup': 'str', 'kind': 'str', 'name': 'str', 'namespace': 'str',
            'scope': ('enum', 'Cluster', 'Namespace')}}}, False),
    ('networking.k8s.io/v1', 'Ingress'): (INGRESS, True),
    ('discovery.k8s.io/v1', 'EndpointSlice'): (ENDPOINT_SLICE, True),
    ('apiextensions.k8s.io/v1', 'CustomResourceDefinition'): ({'spec': 'any'}, False),
}

# Required fields per kind (dotted paths), beyond metadata.name.
REQUIRED = {
    'Deployment': ['spec.selector', 'spec.template'],
    'Service': ['spec.ports'],
    'ClusterRoleBinding': ['roleRef', 'subjects'],
    'RoleBinding': ['roleRef', 'subjects'],
    'IngressClass': ['spec.controller'],
    'EndpointSlice': ['addressType'],
}


def _type_ok(value, t):
    if t == 'str':
        return isinstance(value, str)
    if t == 'int':
        return isinstance(value, int) and not isinstance(value, bool)
    if t == 'bool':
        return isinstance(value, bool)
    if t == 'intstr':
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    if t == 'quantity':
        return isinstance(value, str) or (isinstance(value, numbers.Number)
                                          and not isinstance(value, bool))
    raise ValueError('unknown type %r' % t)


def validate(value, table, path, errors):
    """Append to errors a message for each field of value that table does not allow."""
    if table == 'any':
        return
    if table == MAP:
        if not isinstance(value, dict):
            errors.append('%s: expected a map of strings' % path)
            return
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                errors.append('%s.%s: map values must be strings, got %r' % (path, k, v))
        return
    if isinstance(table, tuple) and table[0] == 'enum':
        if value not in table[1:]:
            errors.append('%s: %r is not one of %s' % (path, value, ', '.join(table[1:])))
        return
    if isinstance(table, list):
        if not isinstance(value, list):
            errors.append('%s: expected a list' % path)
            return
        for i, v in enumerate(value):
            validate(v, table[0], '%s[%d]' % (path, i), errors)
        return
    if isinstance(table, dict):
        if not isinstance(value, dict):
            errors.append('%s: expected an object' % path)
            return
        for k, v in value.items():
            if k not in table:
                errors.append('%s: unknown field "%s"' % (path, k))
            else:
                validate(v, table[k], '%s.%s' % (path, k), errors)
        return
    if not _type_ok(value, table):
        errors.append('%s: expected %s, got %r' % (path, table, value))


def validate_object(obj, where):
    """Errors for a core object; None if its kind is not in the table."""
    api, kind = obj.get('apiVersion'), obj.get('kind')
    entry = KINDS.get((api, kind))
    if entry is None:
        return None
    table, namespaced = entry
    errors = []
    base = '%s %s/%s' % (where, kind, obj.get('metadata', {}).get('name'))
    md = obj.get('metadata')
    if not isinstance(md, dict) or not md.get('name'):
        errors.append('%s: metadata.name missing' % base)
    else:
        validate(md, OBJECT_META, base + ' metadata', errors)
        if not namespaced and 'namespace' in md:
            errors.append('%s: %s is cluster-scoped and has no namespace' % (base, kind))
    rest = {k: v for k, v in obj.items() if k not in ('apiVersion', 'kind', 'metadata')}
    validate(rest, table, base, errors)
    for dotted in REQUIRED.get(kind, []):
        cur = obj
        for p in dotted.split('.'):
            cur = cur.get(p) if isinstance(cur, dict) else None
        if cur is None:
            errors.append('%s: required field %s missing' % (base, dotted))
    return errors
