/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Konnect entities: flattening a Kong declarative config into the entities Konnect's KIC API
 * stores, stable IDs for entities the config leaves without one, secret redaction, and the
 * diff between what tether wants and what Konnect holds. Pure functions, no I/O.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "konnect_int.h"
#include "util.h"

/* go-kong's namespace for deterministic IDs (kong/ids.go); kinds get uuid5(ns, "<plural>"). */
#define GOKONG_NS "fd02801f-0957-4a15-a55a-c8d9606f30b5"

const KKind konnect__kinds[] = {
    {"certificates", NULL, NULL, NULL, 0, false},
    {"ca_certificates", NULL, NULL, NULL, 0, false},
    {"vaults", NULL, NULL, NULL, 0, false},
    {"consumers", NULL, NULL, NULL, 0, true},
    {"snis", NULL, NULL, NULL, 1, false},
    {"services", NULL, NULL, NULL, 1, false},
    {"upstreams", NULL, NULL, NULL, 1, false},
    {"consumer_groups", NULL, NULL, NULL, 1, false},
    {"key-auths", "consumer", "consumers", "key-auth", 1, true},
    {"basic-auths", "consumer", "consumers", "basic-auth", 1, true},
    {"hmac-auths", "consumer", "consumers", "hmac-auth", 1, true},
    {"jwts", "consumer", "consumers", "jwt", 1, true},
    {"acls", "consumer", "consumers", "acls", 1, true},
    {"mtls-auths", "consumer", "consumers", "mtls-auth", 1, true},
    {"routes", NULL, NULL, NULL, 2, false},
    {"targets", "upstream", "upstreams", "targets", 2, false},
    /* Group membership: "<group id>:<consumer id>", read per group, POSTed and DELETEd. */
    {"consumer_group_consumers", NULL, NULL, NULL, 2, true},
    {"plugins", NULL, NULL, NULL, 3, false},
};
const size_t konnect__nkinds = sizeof(konnect__kinds) / sizeof(konnect__kinds[0]);

/* Credential arrays of a consumer in the declarative format, their kind and natural key. */
static const struct {
    const char *field, *kind, *natural, *secret;
} creds[] = {
    {"keyauth_credentials", "key-auths", "key", "key"},
    {"basicauth_credentials", "basic-auths", "username", "password"},
    {"hmacauth_credentials", "hmac-auths", "username", "secret"},
    {"jwt_secrets", "jwts", "key", "secret"},
    {"acls", "acls", "group", NULL},
    {"mtls_auth_credentials", "mtls-auths", "subject_name", NULL},
};

int konnect__kind_index(const char *name)
{
    size_t n = strcspn(name, "/");
    for (size_t i = 0; i < konnect__nkinds; i++)
        if (strlen(konnect__kinds[i].name) == n && strncmp(konnect__kinds[i].name, name, n) == 0)
            return (int)i;
    return -1;
}

void konnect__body_hash(json_t *body, char out[65])
{
    char *s = json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT);
    util_sha256_hex(s ? s : "", s ? strlen(s) : 0, out);
    free(s);
}

void konnect__placeholder(const char *kind, const char *id, const char *field, char out[64])
{
    char hex[65];
    char *s = util_strdup_printf("tether-redacted:%s:%s:%s", kind, id, field);
    util_sha256_hex(s ? s : "", s ? strlen(s) : 0, hex);
    free(s);
    snprintf(out, 64, "{vault://redacted/%.32s}", hex);
}

/* kind_id() - uuid5 of @natural in the namespace of @plural, as go-kong derives them. */
static int kind_id(const char *plural, const char *natural, char out[37])
{
    char ns[37];
    int r = util_uuid5(GOKONG_NS, plural, ns);
    if (r < 0)
        return r;
    return util_uuid5(ns, natural, out);
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ref_id() - the id of a reference that is either a string or {"id": ...}. */
static const char *ref_id(json_t *v)
{
    if (json_is_string(v))
        return json_string_value(v);
    return str(v, "id");
}

/* Flattening context: the output and name-to-id maps for resolving plugin references. */
typedef struct Flat {
    json_t *out;
    json_t *svc_names, *route_names, *consumer_names, *group_names;
    bool no_consumers;
} Flat;

/*
 * add() - store @body (stolen) under kind/@id, with its id set. An entity whose id is already
 * present keeps the first body (the config is invalid for Kong in that case anyway).
 */
static int add(Flat *f, const char *kind, const char *id, json_t *body)
{
    if (!body)
        return -ENOMEM;
    if (json_object_set_new(body, "id", json_string(id)) < 0) {
        json_decref(body);
        return -ENOMEM;
    }
    char *key = util_strdup_printf("%s/%s", kind, id);
    if (!key) {
        json_decref(body);
        return -ENOMEM;
    }
    int r = 0;
    if (json_object_get(f->out, key))
        json_decref(body);
    else if (json_object_set_new(f->out, key, body) < 0)
        r = -ENOMEM;
    free(key);
    return r;
}

/* copy_without() - deep copy of entity @e minus the listed nested keys (NULL-terminated). */
static json_t *copy_without(json_t *e, const char *const *drop)
{
    json_t *c = json_deep_copy(e);
    if (!c)
        return NULL;
    for (; *drop; drop++)
        json_object_del(c, *drop);
    return c;
}

static int set_ref(json_t *body, const char *field, const char *id)
{
    return json_object_set_new(body, field, json_pack("{s:s}", "id", id)) < 0 ? -ENOMEM : 0;
}

/*
 * add_plugin() - one plugin. Parent references given by the nesting (@svc, @route, @consumer,
 * @group ids) win; otherwise the plugin's own references (names or ids) are resolved.
 */
static int add_plugin(Flat *f, json_t *p, const char *svc, const char *route, const char *consumer,
                      const char *group)
{
    static const char *const drop[] = {"service",        "route",  "consumer",
                                       "consumer_group", "run_on", NULL};
    const char *name = str(p, "name");
    if (!name)
        return 0;
    const char *refs[4] = {svc, route, consumer, group};
    static const char *const fields[4] = {"service", "route", "consumer", "consumer_group"};
    json_t *maps[4] = {f->svc_names, f->route_names, f->consumer_names, f->group_names};
    for (int i = 0; i < 4; i++) {
        if (refs[i])
            continue;
        const char *r = ref_id(json_object_get(p, fields[i]));
        if (!r)
            continue;
        const char *resolved = str(maps[i], r);
        refs[i] = resolved ? resolved : r;
    }
    if (f->no_consumers && refs[2])
        return 0; /* its consumer is not synced */
    json_t *body = copy_without(p, drop);
    if (!body)
        return -ENOMEM;
    for (int i = 0; i < 4; i++)
        if (refs[i] && set_ref(body, fields[i], refs[i]) < 0) {
            json_decref(body);
            return -ENOMEM;
        }
    char id[37];
    const char *given = str(p, "id");
    if (!given) {
        char *natural = util_strdup_printf("%s|%s|%s|%s|%s", name, refs[0] ? refs[0] : "",
                                           refs[1] ? refs[1] : "", refs[2] ? refs[2] : "",
                                           refs[3] ? refs[3] : "");
        int r = natural ? kind_id("plugins", natural, id) : -ENOMEM;
        free(natural);
        if (r < 0) {
            json_decref(body);
            return r;
        }
        given = id;
    }
    return add(f, "plugins", given, body);
}

static int add_plugins(Flat *f, json_t *arr, const char *svc, const char *route,
                       const char *consumer, const char *group)
{
    size_t i;
    json_t *p;
    json_array_foreach(arr, i, p)
    {
        int r = add_plugin(f, p, svc, route, consumer, group);
        if (r < 0)
            return r;
    }
    return 0;
}

/* entity_id() - the config's id, or uuid5 of @natural_field's value; NULL if neither. */
static const char *entity_id(json_t *e, const char *plural, const char *natural_field, char buf[37])
{
    const char *id = str(e, "id");
    if (id)
        return id;
    const char *nat = natural_field ? str(e, natural_field) : NULL;
    if (!nat || kind_id(plural, nat, buf) < 0)
        return NULL;
    return buf;
}

/* First pass: ids of services, routes, consumers and groups by name, for plugin references. */
static int index_names(Flat *f, json_t *config)
{
    size_t i, j;
    json_t *e, *r;
    char buf[37];
    json_array_foreach(json_object_get(config, "services"), i, e)
    {
        const char *id = entity_id(e, "services", "name", buf);
        if (id && str(e, "name"))
            json_object_set_new(f->svc_names, str(e, "name"), json_string(id));
        json_array_foreach(json_object_get(e, "routes"), j, r)
        {
            const char *rid = entity_id(r, "routes", "name", buf);
            if (rid && str(r, "name"))
                json_object_set_new(f->route_names, str(r, "name"), json_string(rid));
        }
    }
    json_array_foreach(json_object_get(config, "consumers"), i, e)
    {
        const char *nat = str(e, "username") ? "username" : "custom_id";
        const char *id = entity_id(e, "consumers", nat, buf);
        if (!id)
            continue;
        if (str(e, "username"))
            json_object_set_new(f->consumer_names, str(e, "username"), json_string(id));
        if (str(e, "custom_id"))
            json_object_set_new(f->consumer_names, str(e, "custom_id"), json_string(id));
    }
    json_array_foreach(json_object_get(config, "consumer_groups"), i, e)
    {
        const char *id = entity_id(e, "consumergroups", "name", buf);
        if (id && str(e, "name"))
            json_object_set_new(f->group_names, str(e, "name"), json_string(id));
    }
    return 0;
}

static int flat_services(Flat *f, json_t *config)
{
    static const char *const sdrop[] = {"routes", "plugins", NULL};
    static const char *const rdrop[] = {"plugins", "service", NULL};
    size_t i, j;
    json_t *s, *rt;
    char buf[37], rbuf[37];
    json_array_foreach(json_object_get(config, "services"), i, s)
    {
        const char *sid = entity_id(s, "services", "name", buf);
        if (!sid)
            continue;
        json_t *body = copy_without(s, sdrop);
        if (!body)
            return -ENOMEM;
        /* The declarative format names the client certificate by id string; the API by object. */
        json_t *cc = json_object_get(body, "client_certificate");
        if (json_is_string(cc) && set_ref(body, "client_certificate", json_string_value(cc)) < 0) {
            json_decref(body);
            return -ENOMEM;
        }
        char *sid_copy = strdup(sid);
        int r = sid_copy ? add(f, "services", sid, body) : (json_decref(body), -ENOMEM);
        if (r < 0) {
            free(sid_copy);
            return r;
        }
        json_array_foreach(json_object_get(s, "routes"), j, rt)
        {
            const char *rid = entity_id(rt, "routes", "name", rbuf);
            if (!rid)
                continue;
            json_t *rb = copy_without(rt, rdrop);
            if (!rb || set_ref(rb, "service", sid_copy) < 0) {
                json_decref(rb);
                free(sid_copy);
                return -ENOMEM;
            }
            char rid_copy[37];
            snprintf(rid_copy, sizeof(rid_copy), "%s", rid);
            if ((r = add(f, "routes", rid, rb)) < 0 ||
                (r = add_plugins(f, json_object_get(rt, "plugins"), NULL, rid_copy, NULL, NULL)) <
                    0) {
                free(sid_copy);
                return r;
            }
        }
        r = add_plugins(f, json_object_get(s, "plugins"), sid_copy, NULL, NULL, NULL);
        free(sid_copy);
        if (r < 0)
            return r;
    }
    return 0;
}

static int flat_upstreams(Flat *f, json_t *config)
{
    static const char *const drop[] = {"targets", NULL};
    size_t i, j;
    json_t *u, *t;
    char buf[37], tid[37];
    json_array_foreach(json_object_get(config, "upstreams"), i, u)
    {
        const char *uid = entity_id(u, "upstreams", "name", buf);
        if (!uid)
            continue;
        json_t *body = copy_without(u, drop);
        int r = add(f, "upstreams", uid, body);
        if (r < 0)
            return r;
        json_array_foreach(json_object_get(u, "targets"), j, t)
        {
            const char *target = str(t, "target");
            if (!target)
                continue;
            const char *id = str(t, "id");
            if (!id) {
                char *nat = util_strdup_printf("%s/%s", uid, target);
                r = nat ? kind_id("targets", nat, tid) : -ENOMEM;
                free(nat);
                if (r < 0)
                    return r;
                id = tid;
            }
            json_t *tb = copy_without(t, (const char *const[]){"upstream", NULL});
            if (!tb || set_ref(tb, "upstream", uid) < 0) {
                json_decref(tb);
                return -ENOMEM;
            }
            if ((r = add(f, "targets", id, tb)) < 0)
                return r;
        }
    }
    return 0;
}

static int redact(json_t *body, const char *kind, const char *id, const char *field)
{
    if (!json_object_get(body, field))
        return 0;
    char ph[64];
    konnect__placeholder(kind, id, field, ph);
    return json_object_set_new(body, field, json_string(ph)) < 0 ? -ENOMEM : 0;
}

static int flat_certificates(Flat *f, json_t *config)
{
    size_t i, j;
    json_t *c, *sni;
    char buf[37], sid[37];
    json_array_foreach(json_object_get(config, "certificates"), i, c)
    {
        const char *cid = str(c, "id");
        const char *cert = str(c, "cert");
        if (!cid && cert) {
            char hex[65];
            util_sha256_hex(cert, strlen(cert), hex);
            if (kind_id("certificates", hex, buf) < 0)
                return -ENOMEM;
            cid = buf;
        }
        if (!cid)
            continue;
        json_t *body = copy_without(c, (const char *const[]){"snis", NULL});
        int r = body ? 0 : -ENOMEM;
        if (r == 0 && ((r = redact(body, "certificates", cid, "key")) < 0 ||
                       (r = redact(body, "certificates", cid, "key_alt")) < 0))
            json_decref(body);
        if (r < 0)
            return r;
        char cid_copy[128];
        snprintf(cid_copy, sizeof(cid_copy), "%s", cid);
        if ((r = add(f, "certificates", cid, body)) < 0)
            return r;
        /* Konnect takes SNIs as their own entities, not nested in the certificate. */
        json_array_foreach(json_object_get(c, "snis"), j, sni)
        {
            const char *name = json_is_string(sni) ? json_string_value(sni) : str(sni, "name");
            if (!name)
                continue;
            json_t *sb = json_is_object(sni) ? json_deep_copy(sni) : json_object();
            if (!sb || json_object_set_new(sb, "name", json_string(name)) < 0 ||
                set_ref(sb, "certificate", cid_copy) < 0 ||
                (str(sni, "id") == NULL && kind_id("snis", name, sid) < 0)) {
                json_decref(sb);
                return -ENOMEM;
            }
            if ((r = add(f, "snis", str(sni, "id") ? str(sni, "id") : sid, sb)) < 0)
                return r;
        }
    }
    json_array_foreach(json_object_get(config, "ca_certificates"), i, c)
    {
        const char *cid = str(c, "id");
        const char *cert = str(c, "cert");
        if (!cid && cert) {
            char hex[65];
            util_sha256_hex(cert, strlen(cert), hex);
            if (kind_id("ca_certificates", hex, buf) < 0)
                return -ENOMEM;
            cid = buf;
        }
        if (!cid)
            continue;
        int r = add(f, "ca_certificates", cid, json_deep_copy(c));
        if (r < 0)
            return r;
    }
    return 0;
}

/*
 * credential_id() - a credential's own id, else uuid5 of its consumer and its tags (which name
 * the Secret it came from, as KIC's refill matches them), else of its natural key.
 */
static int credential_id(json_t *cr, const char *kind, const char *consumer, const char *natural,
                         char out[37])
{
    const char *id = str(cr, "id");
    if (id) {
        snprintf(out, 37, "%s", id);
        return 0;
    }
    Buf b = BUF_INIT;
    int r = buf_printf(&b, "%s|", consumer);
    json_t *tags = json_object_get(cr, "tags");
    if (r == 0 && json_array_size(tags) > 0) {
        json_t *sorted = json_deep_copy(tags);
        /* tags are strings; sort them so their order does not change the id */
        size_t n = json_array_size(sorted);
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0; j--) {
                const char *a = json_string_value(json_array_get(sorted, j - 1));
                const char *c = json_string_value(json_array_get(sorted, j));
                if (!a || !c || strcmp(a, c) <= 0)
                    break;
                json_t *tmp = json_incref(json_array_get(sorted, j - 1));
                json_array_set(sorted, j - 1, json_array_get(sorted, j));
                json_array_set_new(sorted, j, tmp);
            }
        size_t i;
        json_t *t;
        json_array_foreach(sorted, i, t)
        {
            if (json_is_string(t))
                r = r ? r : buf_printf(&b, "%s,", json_string_value(t));
        }
        json_decref(sorted);
    } else if (r == 0) {
        /* The natural key may be a secret (key-auth key): use its hash, never the value. */
        const char *v = str(cr, natural);
        char hex[65];
        util_sha256_hex(v ? v : "", v ? strlen(v) : 0, hex);
        r = buf_printf(&b, "=%s", hex);
    }
    if (r == 0)
        r = kind_id(kind, b.data, out);
    buf_deinit(&b);
    return r;
}

static int flat_consumers(Flat *f, json_t *config)
{
    static const char *const drop[] = {"keyauth_credentials",
                                       "basicauth_credentials",
                                       "hmacauth_credentials",
                                       "jwt_secrets",
                                       "acls",
                                       "mtls_auth_credentials",
                                       "oauth2_credentials",
                                       "plugins",
                                       "groups",
                                       NULL};
    size_t i, j;
    json_t *c, *cr;
    char buf[37], crid[37];
    if (f->no_consumers)
        return 0;
    json_array_foreach(json_object_get(config, "consumers"), i, c)
    {
        const char *cid =
            entity_id(c, "consumers", str(c, "username") ? "username" : "custom_id", buf);
        if (!cid)
            continue;
        char cid_copy[128];
        snprintf(cid_copy, sizeof(cid_copy), "%s", cid);
        int r = add(f, "consumers", cid, copy_without(c, drop));
        if (r < 0)
            return r;
        for (size_t k = 0; k < sizeof(creds) / sizeof(creds[0]); k++) {
            json_array_foreach(json_object_get(c, creds[k].field), j, cr)
            {
                if ((r = credential_id(cr, creds[k].kind, cid_copy, creds[k].natural, crid)) < 0)
                    return r;
                json_t *body = copy_without(cr, (const char *const[]){"consumer", NULL});
                if (!body || set_ref(body, "consumer", cid_copy) < 0) {
                    json_decref(body);
                    return -ENOMEM;
                }
                if (creds[k].secret &&
                    (r = redact(body, creds[k].kind, crid, creds[k].secret)) < 0) {
                    json_decref(body);
                    return r;
                }
                /* key-auth's key is both the secret and a unique field: it is the one redacted. */
                if ((r = add(f, creds[k].kind, crid, body)) < 0)
                    return r;
            }
        }
        if ((r = add_plugins(f, json_object_get(c, "plugins"), NULL, NULL, cid_copy, NULL)) < 0)
            return r;
    }
    return 0;
}

/* The id a membership row's reference (a name, or an id) stands for; NULL if unknown. */
static const char *member_ref(Flat *f, json_t *names, const char *kind, json_t *v)
{
    const char *s = json_string_value(v);
    if (!s)
        return NULL;
    const char *id = json_string_value(json_object_get(names, s));
    if (id)
        return id;
    char key[160];
    snprintf(key, sizeof(key), "%s/%s", kind, s);
    return json_object_get(f->out, key) ? s : NULL;
}

/*
 * DB-less consumer_group_consumers rows ({"consumer": username|id, "consumer_group": name|id})
 * become memberships keyed "<group id>:<consumer id>"; the body names both by id.
 */
static int flat_members(Flat *f, json_t *config)
{
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(config, "consumer_group_consumers"), i, row)
    {
        const char *gid = member_ref(f, f->group_names, "consumer_groups",
                                     json_object_get(row, "consumer_group"));
        const char *cid =
            member_ref(f, f->consumer_names, "consumers", json_object_get(row, "consumer"));
        if (!gid || !cid)
            continue; /* a row the data plane would reject too */
        char *key = util_strdup_printf("consumer_group_consumers/%s:%s", gid, cid);
        json_t *body = json_pack("{s:{s:s}, s:{s:s}}", "consumer_group", "id", gid, "consumer",
                                 "id", cid);
        int r = key && body && json_object_set(f->out, key, body) == 0 ? 0 : -ENOMEM;
        free(key);
        json_decref(body);
        if (r < 0)
            return r;
    }
    return 0;
}

static int flat_rest(Flat *f, json_t *config)
{
    size_t i;
    json_t *e;
    char buf[37];
    json_array_foreach(json_object_get(config, "consumer_groups"), i, e)
    {
        const char *gid = entity_id(e, "consumergroups", "name", buf);
        if (!gid)
            continue;
        char gid_copy[128];
        snprintf(gid_copy, sizeof(gid_copy), "%s", gid);
        int r = add(f, "consumer_groups", gid,
                    copy_without(e, (const char *const[]){"plugins", "consumers", NULL}));
        if (r < 0 ||
            (r = add_plugins(f, json_object_get(e, "plugins"), NULL, NULL, NULL, gid_copy)) < 0)
            return r;
    }
    if (!f->no_consumers) {
        int r = flat_members(f, config);
        if (r < 0)
            return r;
    }
    json_array_foreach(json_object_get(config, "vaults"), i, e)
    {
        const char *vid = entity_id(e, "vaults", "prefix", buf);
        if (!vid)
            continue;
        int r = add(f, "vaults", vid, json_deep_copy(e));
        if (r < 0)
            return r;
    }
    return add_plugins(f, json_object_get(config, "plugins"), NULL, NULL, NULL, NULL);
}

int konnect__desired(json_t *config, bool no_consumers, json_t **ret)
{
    Flat f = {
        .out = json_object(),
        .svc_names = json_object(),
        .route_names = json_object(),
        .consumer_names = json_object(),
        .group_names = json_object(),
        .no_consumers = no_consumers,
    };
    int r = -ENOMEM;
    if (!f.out || !f.svc_names || !f.route_names || !f.consumer_names || !f.group_names)
        goto out;
    if ((r = index_names(&f, config)) < 0 || (r = flat_certificates(&f, config)) < 0 ||
        (r = flat_services(&f, config)) < 0 || (r = flat_upstreams(&f, config)) < 0 ||
        (r = flat_consumers(&f, config)) < 0 || (r = flat_rest(&f, config)) < 0)
        goto out;
    *ret = f.out;
    f.out = NULL;
out:
    json_decref(f.out);
    json_decref(f.svc_names);
    json_decref(f.route_names);
    json_decref(f.consumer_names);
    json_decref(f.group_names);
    return r;
}

bool konnect__subset_equal(json_t *want, json_t *have)
{
    if (json_is_number(want) && json_is_number(have))
        return json_number_value(want) == json_number_value(have);
    if (json_is_null(want))
        return have == NULL || json_is_null(have);
    if (!have)
        return false;
    if (json_is_object(want)) {
        if (!json_is_object(have))
            return false;
        const char *k;
        json_t *v;
        json_object_foreach(want, k, v)
        {
            json_t *h = json_object_get(have, k);
            /* An empty array or object we set is what an absent or null field means. */
            if ((!h || json_is_null(h)) && ((json_is_array(v) && json_array_size(v) == 0) ||
                                            (json_is_object(v) && json_object_size(v) == 0)))
                continue;
            if (!konnect__subset_equal(v, h))
                return false;
        }
        return true;
    }
    if (json_is_array(want)) {
        if (!json_is_array(have) || json_array_size(want) != json_array_size(have))
            return false;
        for (size_t i = 0; i < json_array_size(want); i++)
            if (!konnect__subset_equal(json_array_get(want, i), json_array_get(have, i)))
                return false;
        return true;
    }
    return json_equal(want, have);
}

int konnect__phase(const KOp *op)
{
    int level = konnect__kinds[op->kind].level;
    return op->del ? 2 * KONNECT_LEVELS - 1 - level : level;
}

static int op_cmp(const void *a, const void *b)
{
    const KOp *x = a, *y = b;
    int px = konnect__phase(x), py = konnect__phase(y);
    if (px != py)
        return px < py ? -1 : 1;
    return strcmp(x->key, y->key);
}

void konnect__ops_free(KOp *ops, size_t n)
{
    for (size_t i = 0; ops && i < n; i++) {
        free(ops[i].key);
        json_decref(ops[i].body);
    }
    free(ops);
}

static int push_op(KOp **ops, size_t *n, size_t *cap, const char *key, bool del, json_t *body)
{
    int kind = konnect__kind_index(key);
    if (kind < 0)
        return 0;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        KOp *o = realloc(*ops, nc * sizeof(*o));
        if (!o)
            return -ENOMEM;
        *ops = o;
        *cap = nc;
    }
    char *k = strdup(key);
    if (!k)
        return -ENOMEM;
    (*ops)[(*n)++] = (KOp){.kind = kind, .del = del, .key = k, .body = json_incref(body)};
    return 0;
}

int konnect__diff(json_t *desired, json_t *current, json_t *written, KOp **ret, size_t *ret_n)
{
    KOp *ops = NULL;
    size_t n = 0, cap = 0;
    const char *key;
    json_t *want;
    int r = 0;
    json_object_foreach(desired, key, want)
    {
        json_t *have = json_object_get(current, key);
        bool put = !have || !konnect__subset_equal(want, have);
        if (!put && written) {
            /* Konnect's copy holds every field we set, but a field we set before may be gone
             * from the config (and would linger): we know what we wrote last time. */
            json_t *last = json_object_get(written, key);
            if (last)
                put = !json_equal(last, want);
        }
        if (put && (r = push_op(&ops, &n, &cap, key, false, want)) < 0)
            goto fail;
    }
    json_object_foreach(current, key, want)
    {
        if (!json_object_get(desired, key) && (r = push_op(&ops, &n, &cap, key, true, want)) < 0)
            goto fail;
    }
    if (n > 1)
        qsort(ops, n, sizeof(*ops), op_cmp);
    *ret = ops;
    *ret_n = n;
    return 0;
fail:
    konnect__ops_free(ops, n);
    return r;
}

/* escape() - percent-encode all but RFC 3986 unreserved characters (ids come from Konnect). */
static char *escape(const char *s)
{
    Buf b = BUF_INIT;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int r = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '-' || c == '.' || c == '_' || c == '~'
                    ? buf_putc(&b, (char)c)
                    : buf_printf(&b, "%%%02X", c);
        if (r < 0) {
            buf_deinit(&b);
            return NULL;
        }
    }
    return b.data ? buf_take(&b) : strdup("");
}

char *konnect__entity_path(int kind, const char *id, json_t *body)
{
    const KKind *k = &konnect__kinds[kind];
    if (kind == konnect__members_kind()) {
        const char *gid = ref_id(json_object_get(body, "consumer_group"));
        const char *cid = ref_id(json_object_get(body, "consumer"));
        char *eg = gid ? escape(gid) : NULL, *ec = cid ? escape(cid) : NULL, *out = NULL;
        if (eg && ec)
            out = util_strdup_printf("/consumer_groups/%s/consumers/%s", eg, ec);
        free(eg);
        free(ec);
        return out;
    }
    const char *parent = k->parent ? ref_id(json_object_get(body, k->parent)) : NULL;
    if (k->parent && !parent)
        return NULL;
    char *eid = escape(id), *epar = parent ? escape(parent) : NULL, *out = NULL;
    if (eid && (!parent || epar))
        out = k->parent ? util_strdup_printf("/%s/%s/%s/%s", k->parent_path, epar, k->seg, eid)
                        : util_strdup_printf("/%s/%s", k->name, eid);
    free(eid);
    free(epar);
    return out;
}

int konnect__members_kind(void)
{
    return konnect__kind_index("consumer_group_consumers");
}

char *konnect__members_list_path(const char *gid)
{
    char *eg = escape(gid);
    char *out = eg ? util_strdup_printf("/consumer_groups/%s/consumers", eg) : NULL;
    free(eg);
    return out;
}

int konnect__member_add(json_t *member, char **ret_path, char **ret_body)
{
    const char *gid = ref_id(json_object_get(member, "consumer_group"));
    const char *cid = ref_id(json_object_get(member, "consumer"));
    json_t *req = cid ? json_pack("{s:s}", "consumer", cid) : NULL;
    *ret_path = gid ? konnect__members_list_path(gid) : NULL;
    *ret_body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (*ret_path && *ret_body)
        return 0;
    free(*ret_path);
    free(*ret_body);
    *ret_path = *ret_body = NULL;
    return -EINVAL;
}

int konnect__parse_members(const char *body, size_t len, const char *gid, json_t *into,
                           char **ret_offset)
{
    json_t *page = json_object();
    int r = page ? konnect__parse_page(body, len, konnect__kind_index("consumers"), page,
                                       ret_offset)
                 : -ENOMEM;
    const char *key;
    json_t *c;
    json_object_foreach(page, key, c)
    {
        if (r < 0)
            break;
        const char *cid = str(c, "id");
        char *mkey = util_strdup_printf("consumer_group_consumers/%s:%s", gid, cid);
        json_t *m = json_pack("{s:{s:s}, s:{s:s}}", "consumer_group", "id", gid, "consumer", "id",
                              cid);
        if (!mkey || !m || json_object_set(into, mkey, m) < 0)
            r = -ENOMEM;
        free(mkey);
        json_decref(m);
    }
    json_decref(page);
    if (r < 0) {
        free(*ret_offset);
        *ret_offset = NULL;
    }
    return r;
}

int konnect__parse_page(const char *body, size_t len, int kind, json_t *into, char **ret_offset)
{
    *ret_offset = NULL;
    json_t *doc = json_loadb(body ? body : "", len, 0, NULL);
    json_t *data = json_object_get(doc, "data");
    if (!json_is_array(data)) {
        json_decref(doc);
        return -EBADMSG;
    }
    size_t i;
    json_t *e;
    int r = 0;
    json_array_foreach(data, i, e)
    {
        const char *id = str(e, "id");
        if (!json_is_object(e) || !id || !*id || strchr(id, '/'))
            continue; /* not an entity we could address */
        char *key = util_strdup_printf("%s/%s", konnect__kinds[kind].name, id);
        if (!key || json_object_set(into, key, e) < 0) {
            free(key);
            r = -ENOMEM;
            break;
        }
        free(key);
    }
    const char *off = str(doc, "offset");
    /* An offset with an empty page would loop forever on a misbehaving server. */
    if (r == 0 && off && *off && json_array_size(data) > 0 && !(*ret_offset = strdup(off)))
        r = -ENOMEM;
    json_decref(doc);
    return r;
}
