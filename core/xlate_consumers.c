/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KongConsumer with credentials from Secrets labelled konghq.com/credential, global credential
 * uniqueness (conflicting consumers are all removed, as KIC does), KongConsumerGroup, and the
 * DB-less consumer_group_consumers relationships.
 */
#include "xlate_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct CredType {
    const char *type;
    const char *out;           /* consumer field */
    const char *const *fields; /* accepted fields (others are dropped, as go-kong's struct) */
    const char *const *required;
    const char *unique;        /* globally unique field, or NULL */
    const char *invalid;       /* the subject of KIC's "... is invalid: no <field>" */
} CredType;

static const char *const f_key[] = {"id", "key", "ttl", NULL};
static const char *const f_basic[] = {"id", "username", "password", NULL};
static const char *const f_hmac[] = {"id", "username", "secret", NULL};
static const char *const f_jwt[] = {"id", "key", "algorithm", "rsa_public_key", "secret", NULL};
static const char *const f_acl[] = {"id", "group", NULL};
static const char *const f_oauth[] = {"id",           "name",        "client_id", "client_secret",
                                      "redirect_uris", "hash_secret", "client_type", NULL};
static const char *const f_mtls[] = {"id", "subject_name", NULL};
static const char *const r_key[] = {"key", NULL};
static const char *const r_user[] = {"username", NULL};
static const char *const r_group[] = {"group", NULL};
static const char *const r_oauth[] = {"client_id", "name", NULL};
static const char *const r_mtls[] = {"subject_name", NULL};

static const CredType cred_types[] = {
    {"key-auth", "keyauth_credentials", f_key, r_key, "key", "key-auth"},
    {"basic-auth", "basicauth_credentials", f_basic, r_user, "username", "basic-auth"},
    {"hmac-auth", "hmacauth_credentials", f_hmac, r_user, "username", "hmac-auth"},
    {"jwt", "jwt_secrets", f_jwt, r_key, "key", "jwt-auth for"}, /* sic, KIC's NewJWTAuth */
    {"acl", "acls", f_acl, r_group, NULL, "acl"},
    {"oauth2", "oauth2_credentials", f_oauth, r_oauth, "client_id", "oauth2"},
    {"mtls-auth", "mtls_auth_credentials", f_mtls, r_mtls, NULL, "mtls-auth"},
};

static const CredType *cred_type(const char *label)
{
    static const struct {
        const char *alias, *type;
    } aliases[] = {{"keyauth_credential", "key-auth"},
                   {"basicauth_credential", "basic-auth"},
                   {"hmacauth_credential", "hmac-auth"},
                   {"jwt_secret", "jwt"}};
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (!strcmp(label, aliases[i].alias))
            label = aliases[i].type;
    for (size_t i = 0; i < sizeof(cred_types) / sizeof(cred_types[0]); i++)
        if (!strcmp(label, cred_types[i].type))
            return &cred_types[i];
    return NULL;
}

const char *xcredential_unique(const char *list)
{
    for (size_t i = 0; i < sizeof(cred_types) / sizeof(cred_types[0]); i++)
        if (!strcmp(list, cred_types[i].out))
            return cred_types[i].unique;
    return NULL;
}

static bool listed(const char *const *l, const char *s)
{
    for (int i = 0; l[i]; i++)
        if (!strcmp(l[i], s))
            return true;
    return false;
}

/* A credential failure as KIC's pushCredentialResourceFailures words it, on the consumer. */
static void cred_fail(Xlate *x, json_t *consumer, const char *sname, const char *what,
                      const char *quoted, const char *tail)
{
    Buf b = BUF_INIT;
    if (quoted)
        xgo_quote(&b, quoted);
    xfail(x, consumer, NULL, "credential \"%s\" failure: %s%s%s", sname, what,
          b.data ? b.data : "", tail ? tail : "");
    buf_deinit(&b);
}

/* Go's strconv error text for what Atoi refused: digits that overflow, or anything else. */
static const char *atoi_error(const char *s)
{
    const char *p = s + (*s == '+' || *s == '-');
    if (!*p)
        return "invalid syntax";
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            return "invalid syntax";
    return "value out of range";
}

/* One credential from a Secret; NULL with *err set when it is unusable. */
static json_t *credential(Xlate *x, json_t *consumer, json_t *secret, const CredType *t, char *err,
                          size_t errlen)
{
    json_t *cred = json_object();
    json_t *keys = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(secret, "data"), k, v) json_object_set_new(keys, k, json_true());
    json_object_foreach(json_object_get(secret, "stringData"), k, v) json_object_set_new(keys, k, json_true());
    json_object_foreach(keys, k, v)
    {
        if (!listed(t->fields, k))
            continue;
        json_t *val = xsecret_data(secret, k);
        if (!val)
            continue;
        const char *s = json_string_value(val);
        if (!strcmp(k, "redirect_uris")) {
            json_object_set_new(cred, k, xsplit_go(s, ",", false)); /* as strings.Split */
        } else if (!strcmp(k, "hash_secret")) {
            bool b = false;
            if (!xparse_bool(s, &b))
                cred_fail(x, consumer, obj_name(secret),
                          "Failed to parse hash_secret to bool: strconv.ParseBool: parsing ", s,
                          ": invalid syntax. defaulting to false");
            json_object_set_new(cred, k, json_boolean(b));
        } else if (!strcmp(k, "ttl")) {
            long long n;
            if (xparse_int(s, &n)) {
                json_object_set_new(cred, k, json_integer(n));
            } else {
                char tail[64];
                snprintf(tail, sizeof(tail), ": %s, skipfilling the field", atoi_error(s));
                cred_fail(x, consumer, obj_name(secret),
                          "Failed to parse ttl to int: strconv.Atoi: parsing ", s, tail);
            }
        } else {
            json_object_set(cred, k, val);
        }
        json_decref(val);
    }
    json_decref(keys);
    json_t *alg = json_object_get(cred, "algorithm");
    if (!strcmp(t->type, "jwt") && (!alg || !json_string_length(alg)))
        json_object_set_new(cred, "algorithm", json_string("HS256"));
    for (int i = 0; t->required[i]; i++) {
        /* KIC asks only that the field is there: an empty value passes */
        if (!json_is_string(json_object_get(cred, t->required[i]))) {
            snprintf(err, errlen, "%s is invalid: no %s", t->invalid, t->required[i]);
            json_decref(cred);
            return NULL;
        }
    }
    json_object_set_new(cred, "tags", xtags(secret));
    return cred;
}

void xlate_consumers(Xlate *x)
{
    size_t n;
    json_t *const *all = store_list(x->st, "KongConsumer", &n);
    /* unique key "type\nvalue" -> [ {consumer index, secret} ... ] */
    json_t *uniq = json_object();

    for (size_t i = 0; i < n; i++) {
        json_t *kc = all[i];
        if (!xclass_exact_or_empty(x, kc))
            continue;
        const char *user = obj_get_str(kc, "username");
        const char *cid = obj_get_str(kc, "custom_id");
        if ((!user || !*user) && (!cid || !*cid)) {
            xfail(x, kc, NULL, "no username or custom_id specified");
            continue;
        }
        json_t *c = json_pack("{s:o}", "tags", xtags(kc));
        if (user && *user)
            json_object_set_new(c, "username", json_string(user));
        if (cid && *cid)
            json_object_set_new(c, "custom_id", json_string(cid));
        size_t idx = json_array_size(x->consumers);
        size_t j;
        json_t *sn;
        json_array_foreach(json_object_get(kc, "credentials"), j, sn)
        {
            const char *sname = json_string_value(sn);
            if (!sname)
                continue;
            json_t *secret = store_get(x->st, "Secret", obj_ns(kc), sname);
            /* KIC's words, on the KongConsumer alone */
            if (!secret) {
                xfail(x, kc, NULL,
                      "credential \"%s\" failure: Failed to fetch secret: Secret %s/%s not found",
                      sname, obj_ns(kc), sname);
                continue;
            }
            const char *label = obj_label(secret, "konghq.com/credential");
            const CredType *t = label ? cred_type(label) : NULL;
            if (!label)
                xfail(x, kc, NULL,
                      "credential \"%s\" failure: could not load credential from Secret: Secret "
                      "%s/%s used as credential, but lacks konghq.com/credential label",
                      sname, obj_ns(kc), sname);
            if (!t) {
                cred_fail(x, kc, sname,
                          "failed to provision credential: unsupported credential type: ",
                          label ? label : "", NULL);
                continue;
            }
            char err[256];
            json_t *cred = credential(x, kc, secret, t, err, sizeof(err));
            if (!cred) {
                xfail(x, kc, NULL, "credential \"%s\" failure: failed to provision credential: %s",
                      sname, err);
                continue;
            }
            if (t->unique) {
                char key[600];
                snprintf(key, sizeof(key), "%s\n%s", t->type,
                         json_string_value(json_object_get(cred, t->unique)));
                json_t *l = json_object_get(uniq, key);
                if (!l) {
                    l = json_array();
                    json_object_set_new(uniq, key, l);
                }
                json_array_append_new(l, json_pack("{s:I, s:O}", "consumer", (json_int_t)idx,
                                                   "secret", secret));
            }
            json_t *list = json_object_get(c, t->out);
            if (!list) {
                list = json_array();
                json_object_set_new(c, t->out, list);
            }
            json_array_append_new(list, cred);
        }
        json_array_append_new(x->consumers, c);
        json_array_append(x->consumer_objs, kc);
    }

    /*
     * Conflicting credentials remove every consumer involved. KIC's detector goes through its
     * indexes in this order; each conflicting Secret gets a failure, each consumer only one, with
     * the first conflict found.
     */
    static const char *const index_order[][2] = {
        {"key-auth", "key-auth on 'key'"},     {"hmac-auth", "hmac-auth on 'username'"},
        {"jwt", "jwt-auth on 'key'"},          {"basic-auth", "basic-auth on 'username'"},
        {"oauth2", "oauth2-credentials on 'client_id'"},
    };
    json_t *drop = json_object();
    for (size_t t = 0; t < sizeof(index_order) / sizeof(index_order[0]); t++) {
        const char *key;
        json_t *l;
        size_t tl = strlen(index_order[t][0]);
        json_object_foreach(uniq, key, l)
        {
            if (json_array_size(l) < 2 || strncmp(key, index_order[t][0], tl) || key[tl] != '\n')
                continue;
            size_t i;
            json_t *e;
            json_array_foreach(l, i, e)
            {
                size_t ci = (size_t)json_integer_value(json_object_get(e, "consumer"));
                json_t *kc = json_array_get(x->consumer_objs, ci);
                json_t *secret = json_object_get(e, "secret");
                xfail(x, secret, NULL,
                      "Secret has conflicting credential: conflict detected in \"%s\" index",
                      index_order[t][1]);
                char ck[32];
                snprintf(ck, sizeof(ck), "%zu", ci);
                if (json_object_get(drop, ck))
                    continue;
                xfail(x, kc, NULL, XFAIL_CREDENTIAL_CONFLICT ": conflict detected in \"%s\" index",
                      index_order[t][1]);
                json_object_set_new(drop, ck, json_true());
            }
        }
    }
    if (json_object_size(drop)) {
        json_t *keep = json_array(), *keep_objs = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(x->consumers, i, c)
        {
            char ck[32];
            snprintf(ck, sizeof(ck), "%zu", i);
            if (json_object_get(drop, ck))
                continue;
            json_array_append(keep, c);
            json_array_append(keep_objs, json_array_get(x->consumer_objs, i));
        }
        json_decref(x->consumers);
        json_decref(x->consumer_objs);
        x->consumers = keep;
        x->consumer_objs = keep_objs;
    }
    json_decref(drop);
    json_decref(uniq);
}

static int cmp_consumer_idx(const json_t *x1, const json_t *y1)
{
    json_t *ux = json_object_get(x1, "username"), *uy = json_object_get(y1, "username");
    if (!ux && uy)
        return -1;
    if (ux && !uy)
        return 1;
    int c = strcmp(ux ? json_string_value(ux) : "", uy ? json_string_value(uy) : "");
    if (c)
        return c;
    json_t *cx = json_object_get(x1, "custom_id"), *cy = json_object_get(y1, "custom_id");
    return strcmp(cx ? json_string_value(cx) : "", cy ? json_string_value(cy) : "");
}

/*
 * cmp_consumer_idx()'s order in one string: "0" without a username, else "1" and the username;
 * then \x01 (below any character a name holds) and the custom_id.
 */
char *xconsumer_sort_key(const json_t *c)
{
    const char *u = json_string_value(json_object_get(c, "username"));
    const char *id = json_string_value(json_object_get(c, "custom_id"));
    return util_strdup_printf("%s%s\x01%s", u ? "1" : "0", u ? u : "", id ? id : "");
}

typedef struct ConsumerSort {
    json_t *c, *obj;
    size_t idx;
} ConsumerSort;

static int cmp_consumer_sort(const void *a, const void *b)
{
    const ConsumerSort *x = a, *y = b;
    int c = cmp_consumer_idx(x->c, y->c);
    return c ? c : (x->idx < y->idx ? -1 : x->idx > y->idx);
}

void xlate_consumer_groups(Xlate *x)
{
    size_t n;
    json_t *const *all = store_list(x->st, "KongConsumerGroup", &n);
    for (size_t i = 0; i < n; i++) {
        if (!xclass_exact_or_empty(x, all[i]))
            continue;
        json_array_append_new(x->consumer_groups,
                              json_pack("{s:s, s:o}", "name", obj_name(all[i]), "tags", xtags(all[i])));
        json_array_append(x->cg_objs, all[i]);
    }

    /* Consumers in decK's order; the parallel arrays move together (stable: index breaks ties). */
    size_t nc = json_array_size(x->consumers);
    ConsumerSort *cs = calloc(nc ? nc : 1, sizeof(*cs));
    if (cs) {
        for (size_t i = 0; i < nc; i++)
            cs[i] = (ConsumerSort){json_incref(json_array_get(x->consumers, i)),
                                   json_incref(json_array_get(x->consumer_objs, i)), i};
        qsort(cs, nc, sizeof(*cs), cmp_consumer_sort);
        json_array_clear(x->consumers);
        json_array_clear(x->consumer_objs);
        for (size_t i = 0; i < nc; i++) {
            json_array_append_new(x->consumers, cs[i].c);
            json_array_append_new(x->consumer_objs, cs[i].obj);
        }
        free(cs);
    }

    for (size_t i = 0; i < nc; i++) {
        json_t *c = json_array_get(x->consumers, i);
        json_t *kc = json_array_get(x->consumer_objs, i);
        size_t j;
        json_t *g;
        json_array_foreach(json_object_get(kc, "consumerGroups"), j, g)
        {
            const char *gname = json_string_value(g);
            json_t *cg = gname ? store_get(x->st, "KongConsumerGroup", obj_ns(kc), gname) : NULL;
            if (!cg || !xclass_exact_or_empty(x, cg)) { /* KIC quotes its store's error */
                xfail(x, kc, NULL,
                      "nonexistent consumer group: \"KongConsumerGroup %s/%s not found\"",
                      obj_ns(kc), gname ? gname : "");
                continue;
            }
            /* KIC names the consumer by username, else its id: one with only a custom_id has
             * neither (it gets no id), so the name is empty */
            const char *u = json_string_value(json_object_get(c, "username"));
            json_array_append_new(x->cgc, json_pack("{s:s, s:s}", "consumer", u ? u : "",
                                                    "consumer_group", obj_name(cg)));
        }
    }
}
