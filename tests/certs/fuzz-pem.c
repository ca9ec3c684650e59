/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for certs/ parsing of untrusted PEM/DER: certificate chains (with description of
 * every certificate found, as `tether certs inspect` does) and private keys (as mtls loads them).
 */
#include <openssl/err.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "certs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    STACK_OF(X509) *sk = NULL;
    char *err = NULL;
    int r = certs_load_chain(data, size, &sk, &err);
    if (r == 0) {
        /* Invariants: success means at least one certificate and no error text. */
        if (!sk || sk_X509_num(sk) < 1 || err)
            abort();
        for (int i = 0; i < sk_X509_num(sk); i++) {
            CertsInfo info;
            if (certs_info_init(&info, sk_X509_value(sk, i)) == 0) {
                if (!info.subject || !info.issuer || !info.serial)
                    abort();
                for (size_t j = 0; j < info.n_sans; j++)
                    for (const char *p = info.sans[j]; *p; p++)
                        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                            abort(); /* SANs are printable before they reach a terminal */
                certs_info_deinit(&info);
            }
        }
    } else if (!err || sk) {
        abort(); /* every failure explains itself and leaves the output alone */
    }
    free(err);
    err = NULL;

    EVP_PKEY *key = NULL;
    r = certs_load_key(data, size, &key, &err);
    if ((r == 0) != (key != NULL) || (r < 0 && !err))
        abort();
    if (key && sk)
        (void)certs_key_matches(sk_X509_value(sk, 0), key);
    EVP_PKEY_free(key);
    free(err);
    sk_X509_pop_free(sk, X509_free);
    ERR_clear_error();
    return 0;
}
