/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kong's flattened configuration errors (POST /config?flatten_errors=1 answering 400) mapped
 * back to Kubernetes objects through the k8s-* tags the translator puts on every entity.
 * Unlike KIC, a missing k8s-uid or namespace does not drop the entry: kind and name suffice
 * to find the object in the store (the namespace is empty for cluster-scoped kinds).
 */
#include <stdlib.h>
#include <string.h>

#include "dp_internal.h"
#include "util.h"

#define MAX_MESSAGE 4096

static void tag_value(json_t *tags, const char *key, const char **out)
{
    size_t kl = strlen(key), i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        const char *s = json_string_value(t);
        if (s && strncmp(s, key, kl) == 0 && s[kl] == ':') {
            *out = s + kl + 1;
            return;
        }
    }
}

/* One line per problem: "field: message" or the entity-level message(s). */
static void describe(json_t *entry, Buf *b)
{
    size_t i, j;
    json_t *e, *m;
    json_array_foreach(json_object_get(entry, "errors"), i, e)
    {
        const char *field = json_string_value(json_object_get(e, "field"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        json_t *msgs = json_object_get(e, "messages");
        if (msg) {
            if (b->len)
                (void)buf_puts(b, "; ");
            if (field)
                (void)buf_printf(b, "%s: ", field);
            (void)buf_puts(b, msg);
        }
        json_array_foreach(msgs, j, m)
        {
            if (!json_is_string(m))
                continue;
            if (b->len)
                (void)buf_puts(b, "; ");
            if (field)
                (void)buf_printf(b, "%s: ", field);
            (void)buf_puts(b, json_string_value(m));
        }
        if (b->len > MAX_MESSAGE)
            break;
    }
    if (b->len > MAX_MESSAGE) {
        b->len = MAX_MESSAGE;
        b->data[b->len] = '\0';
    }
}

json_t *dp__flattened_errors(const char *body, size_t len, size_t *ret_unmapped)
{
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *flat = json_object_get(doc, "flattened_errors");
    size_t unmapped = 0;
    if (!json_is_array(flat)) {
        json_decref(doc);
        return NULL;
    }
    json_t *out = json_array(), *index = json_object();
    size_t i;
    json_t *entry;
    json_array_foreach(flat, i, entry)
    {
        json_t *tags = json_object_get(entry, "entity_tags");
        const char *kind = "", *ns = "", *name = "", *uid = "", *group = "", *version = "";
        tag_value(tags, "k8s-kind", &kind);
        tag_value(tags, "k8s-namespace", &ns);
        tag_value(tags, "k8s-name", &name);
        tag_value(tags, "k8s-uid", &uid);
        tag_value(tags, "k8s-group", &group);
        tag_value(tags, "k8s-version", &version);
        if (!*kind || !*name) {
            unmapped++;
            continue;
        }
        Buf msg = BUF_INIT;
        describe(entry, &msg);
        char *key = util_strdup_printf("%s/%s/%s/%s", kind, ns, name, uid);
        json_t *obj = key ? json_object_get(index, key) : NULL;
        if (obj) {
            /* Several entities of one object (a Service's routes...): merge the messages. */
            const char *old = json_string_value(json_object_get(obj, "message"));
            if (msg.len && old && strlen(old) < MAX_MESSAGE) {
                char *both = *old ? util_strdup_printf("%s; %s", old, msg.data) : strdup(msg.data);
                if (both)
                    json_object_set_new(obj, "message", json_string(both));
                free(both);
            }
        } else if (key) {
            obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kind", kind, "namespace", ns,
                            "name", name, "uid", uid, "group", group, "version", version, "message",
                            msg.data ? msg.data : "");
            if (obj) {
                json_object_set(index, key, obj);
                json_array_append_new(out, obj);
            }
        }
        free(key);
        buf_deinit(&msg);
    }
    json_decref(index);
    json_decref(doc);
    if (ret_unmapped)
        *ret_unmapped = unmapped;
    return out;
}
