/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: what the network hands the data plane sink. The input is read both as a Kong
 * POST /config 400 answer (flattened errors) and as a JSON array of EndpointSlices (discovery).
 * Invariants: no crash, every mapped object has a kind and a name, every discovered URL is https.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t unmapped = 0;
    json_t *b = dp__flattened_errors((const char *)data, size, &unmapped);
    size_t i;
    json_t *o;
    json_array_foreach(b, i, o)
    {
        assert(*json_string_value(json_object_get(o, "kind")));
        assert(*json_string_value(json_object_get(o, "name")));
    }
    json_decref(b);

    json_t *slices = json_loadb((const char *)data, size, 0, NULL);
    json_t *found = dp__discover(slices, NULL, NULL, NULL);
    json_array_foreach(found, i, o)
    {
        const char *url = json_string_value(json_object_get(o, "url"));
        assert(url && strncmp(url, "https://", 8) == 0);
        char *base = NULL, *ct = NULL;
        if (dp__connect_to(url, json_string_value(json_object_get(o, "server_name")), &base, &ct) ==
            0) {
            free(base);
            free(ct);
        }
    }
    json_decref(found);
    json_decref(slices);
    return 0;
}
