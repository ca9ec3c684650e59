/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: untrusted manifest bytes through the whole offline pipeline (YAML/JSON loader,
 * store, translator, canonical JSON and YAML output). Invariants: no crash, no leak, and the
 * canonical JSON of a translation parses back to an equal value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "store.h"
#include "xlate.h"

static int on_obj(void *ud, json_t *obj, const char *file, int line)
{
    (void)file;
    (void)line;
    store_put_new(ud, json_incref(obj));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Store *s;
    if (size > 1 << 20 || store_new(&s) < 0)
        return 0;
    manifest_load_buffer((const char *)data, size, "fuzz", on_obj, NULL, s);
    for (int flavor = 0; flavor < 2; flavor++) {
        XlateOptions o;
        xlate_options_default(&o);
        o.expressions = flavor;
        o.service_facade = o.rewrite_uris = flavor;
        json_t *cfg = NULL, *failures = NULL;
        if (xlate_run(s, &o, &cfg, &failures) == 0) {
            size_t n;
            char *text = xlate_canonical_json(cfg, &n);
            json_t *back = text ? json_loadb(text, n, 0, NULL) : NULL;
            if (text && (!back || !json_equal(back, cfg)))
                abort();
            json_decref(back);
            free(text);
            free(xlate_to_yaml(cfg));
            json_decref(cfg);
            json_decref(failures);
        }
    }
    store_free(s);
    return 0;
}
