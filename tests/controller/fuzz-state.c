/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: a --state-dir file (gzip'd configuration) as found on disk after a crash or
 * tampering: gunzip with its cap, then JSON. Invariants: no crash; success means a bounded
 * buffer; gzip of the result reads back identical.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *js = NULL;
    size_t n = 0;
    if (state_gunzip(data, size, 1 << 20, &js, &n) == 0) {
        if (n > (1 << 20))
            abort();
        json_t *cfg = json_loadb(js, n, 0, NULL);
        json_decref(cfg);
        unsigned char *gz = NULL;
        size_t gzlen = 0;
        char *back = NULL;
        size_t blen = 0;
        if (state_gzip(js, n, &gz, &gzlen) == 0) {
            if (state_gunzip(gz, gzlen, 1 << 20, &back, &blen) != 0 || blen != n ||
                memcmp(back, js, n))
                abort();
            free(back);
            free(gz);
        }
        free(js);
    }
    return 0;
}
