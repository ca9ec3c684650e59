/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: untrusted Secret contents through translation, where KIC's Go rules for PEM
 * (pem.Decode), TLS pairs (tls.X509KeyPair) and CA certificates are redone in C. The input is
 * a certificate text, then after the first NUL byte a key text; they become a TLS Secret used by
 * an Ingress and, the certificate alone, a CA Secret. Invariants: no crash, no leak, and a second
 * translation (which takes the pair's verdict from the process's cache) gives the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "util.h"
#include "xlate.h"

static char *translate(Store *s)
{
    json_t *cfg = NULL, *failures = NULL;
    char *text = NULL;
    size_t n;
    if (xlate_run(s, NULL, &cfg, &failures) == 0) {
        char *f = json_dumps(failures, JSON_COMPACT);
        char *c = xlate_canonical_json(cfg, &n);
        text = c && f ? util_strdup_printf("%s\n%s", c, f) : NULL;
        free(c);
        free(f);
    }
    json_decref(cfg);
    json_decref(failures);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Store *s;
    if (size > 1 << 16 || store_new(&s) < 0)
        return 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t cl = nul ? (size_t)(nul - data) : size;
    char *crt = util_base64_encode(data, cl);
    char *key = nul ? util_base64_encode(nul + 1, size - cl - 1) : strdup("");
    if (crt && key) {
        store_put_new(s, json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:[{s:[s], s:s}]}}",
                                   "apiVersion", "networking.k8s.io/v1", "kind", "Ingress",
                                   "metadata", "name", "web", "namespace", "t", "spec",
                                   "ingressClassName", "kong", "tls", "hosts", "a.example",
                                   "secretName", "pair"));
        store_put_new(s, json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s, s:s}}",
                                   "apiVersion", "v1", "kind", "Secret", "type",
                                   "kubernetes.io/tls", "metadata", "name", "pair", "namespace",
                                   "t", "uid", "00000000-0000-0000-0000-000000000001", "data",
                                   "tls.crt", crt, "tls.key", key));
        store_put_new(s, json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s, s:s}}",
                                   "apiVersion", "v1", "kind", "Secret", "metadata", "name", "ca",
                                   "namespace", "t", "labels", "konghq.com/ca-cert", "true",
                                   "data", "cert", crt, "id",
                                   "MDAwMDAwMDAtMDAwMC00MDAwLTgwMDAtMDAwMDAwMDAwMDAx"));
        char *first = translate(s), *second = translate(s);
        if (first && second && strcmp(first, second))
            abort();
        free(first);
        free(second);
    }
    free(crt);
    free(key);
    store_free(s);
    return 0;
}
