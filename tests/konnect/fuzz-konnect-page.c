/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: a Konnect list answer (untrusted JSON) parsed as a page of each entity kind and
 * of a consumer group's members, then diffed against a small desired state, and every
 * operation's path built. Must never crash, leak, or build a path that leaves the entity
 * namespace.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "konnect_int.h"

static const char CFG[] =
    "{\"services\":[{\"name\":\"s\",\"id\":\"5b1c1a8e-0000-4000-8000-000000000001\","
    "\"routes\":[{\"name\":\"r\",\"paths\":[\"/\"]}]}],"
    "\"upstreams\":[{\"name\":\"u\",\"targets\":[{\"target\":\"1.2.3.4:80\"}]}],"
    "\"consumers\":[{\"username\":\"c\",\"keyauth_credentials\":[{\"key\":\"k\"}]}],"
    "\"consumer_groups\":[{\"name\":\"g\"}],"
    "\"consumer_group_consumers\":[{\"consumer\":\"c\",\"consumer_group\":\"g\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *cfg = json_loads(CFG, 0, NULL), *desired = NULL, *cur = json_object();
    if (!cfg || !cur || konnect__desired(cfg, false, &desired) < 0)
        abort();
    for (size_t k = 0; k < konnect__nkinds; k++) {
        char *off = NULL;
        (void)konnect__parse_page((const char *)data, size, (int)k, cur, &off);
        free(off);
    }
    char *moff = NULL; /* the same answer as a page of a group's members */
    (void)konnect__parse_members((const char *)data, size, "g/../1", cur, &moff);
    free(moff);
    KOp *ops = NULL;
    size_t n = 0;
    if (konnect__diff(desired, cur, NULL, &ops, &n) < 0)
        abort();
    for (size_t i = 0; i < n; i++) {
        char *p = konnect__entity_path(ops[i].kind, strchr(ops[i].key, '/') + 1, ops[i].body);
        if (p && (strstr(p, "/../") || strchr(p, '?') || strchr(p, '#') || strchr(p, ' ')))
            abort();
        free(p);
        char *body = NULL;
        if (ops[i].kind == konnect__members_kind() && !ops[i].del &&
            konnect__member_add(ops[i].body, &p, &body) == 0) {
            if (strstr(p, "/../") || strchr(p, '?') || strchr(p, '#') || strchr(p, ' '))
                abort();
            free(p);
            free(body);
        }
    }
    konnect__ops_free(ops, n);
    json_decref(cur);
    json_decref(desired);
    json_decref(cfg);
    return 0;
}
