/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * certs: X.509 helpers on OpenSSL (no libuv). Generates keys and certificates (self-signed, CA,
 * or signed by a given CA), parses PEM/DER certificates and keys with errors fit for users,
 * describes certificates for `tether certs inspect`, and keeps private key bytes in memory that
 * is excluded from core dumps and wiped on free. Tests use it to make their CAs and
 * certificates at run time, so no key is ever committed.
 */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* Input caps: a certificate bundle or key file bigger than this is refused. */
#define CERTS_MAX_PEM (1024 * 1024)

typedef enum CertsKeyType {
    CERTS_KEY_ECDSA_P256 = 0,
    CERTS_KEY_RSA_2048,
    CERTS_KEY_RSA_4096,
} CertsKeyType;

typedef enum CertsUsage {
    CERTS_USAGE_CLIENT = 0, /* extendedKeyUsage clientAuth */
    CERTS_USAGE_SERVER,     /* serverAuth and clientAuth */
    CERTS_USAGE_CA,         /* CA:TRUE, keyCertSign */
} CertsUsage;

/* certs_parse_key_type() - "ecdsa-p256", "rsa-2048" or "rsa-4096"; -EINVAL otherwise. */
int certs_parse_key_type(const char *s, CertsKeyType *ret);
/* certs_parse_usage() - "client", "server" or "ca"; -EINVAL otherwise. */
int certs_parse_usage(const char *s, CertsUsage *ret);

typedef struct CertsSpec {
    const char *cn;       /* subject CN; NULL: "tether" */
    int days;             /* validity from not_before; 0: 365 */
    long long not_before; /* Unix seconds; 0: now minus 5 minutes (clock skew) */
    CertsKeyType key_type;
    CertsUsage usage;
    const char *const *sans; /* DNS names, or IP addresses (v4/v6) which become IP SANs */
    size_t n_sans;
    /* Issuer as PEM (borrowed); both NULL: self-signed. A self-signed client certificate has
     * CA:TRUE, as `openssl req -x509` makes it, so that it can be pinned as its own root. */
    const char *ca_cert_pem;
    size_t ca_cert_len; /* 0: strlen */
    const char *ca_key_pem;
    size_t ca_key_len; /* 0: strlen */
} CertsSpec;

/*
 * certs_generate() - make a key and a certificate for @spec. On success *ret_cert_pem (malloc'd,
 * free()) holds the certificate PEM and *ret_key_pem the PKCS#8 key PEM in secret memory (free
 * with certs_secret_free()). On failure returns a negative errno and *ret_err (malloc'd, may be
 * NULL on -ENOMEM) says why; the outputs are untouched.
 */
int certs_generate(const CertsSpec *spec, char **ret_cert_pem, char **ret_key_pem, char **ret_err);

/*
 * certs_write_pair() - write @cert_pem to @cert_path (0644) and @key_pem to @key_path (0600),
 * each atomically (temp file + rename). Returns 0 or a negative errno.
 */
int certs_write_pair(const char *cert_path, const char *cert_pem, const char *key_path,
                     const char *key_pem);

/*
 * certs_load_chain() - parse every certificate of @data: PEM (CERTIFICATE blocks; other blocks
 * such as keys are skipped without being kept) or one DER certificate. An empty input, a
 * truncated or corrupt block, or no certificate at all is an error (-EINVAL, *ret_err says why).
 * *ret is owned by the caller (sk_X509_pop_free(s, X509_free)).
 */
int certs_load_chain(const void *data, size_t len, STACK_OF(X509) * *ret, char **ret_err);

/*
 * certs_load_key() - parse the first private key of @data (PEM: PKCS#8, RSA or EC; or DER).
 * Encrypted keys are refused. *ret is owned by the caller (EVP_PKEY_free).
 */
int certs_load_key(const void *data, size_t len, EVP_PKEY **ret, char **ret_err);

/* certs_key_matches() - whether @key is the private key of @cert's public key. */
bool certs_key_matches(X509 *cert, EVP_PKEY *key);

/* certs_not_after() / certs_not_before() - validity bounds in Unix seconds (0 if unreadable). */
long long certs_not_after(const X509 *cert);
long long certs_not_before(const X509 *cert);

/* CertsInfo - a certificate described for people and for JSON. */
typedef struct CertsInfo {
    char *subject; /* RFC 2253 */
    char *issuer;
    char **sans; /* "DNS:name", "IP:addr", "URI:...", "email:..." */
    size_t n_sans;
    char *serial; /* hex */
    long long not_before;
    long long not_after;
    char key_type[16]; /* "RSA", "EC", "ED25519", ... */
    char curve[32];    /* EC curve, or "" */
    int key_bits;
    char sha256[96]; /* colon-separated upper-case hex, as `openssl x509 -fingerprint` */
    bool is_ca;
    bool self_signed;
} CertsInfo;

/* certs_info_init() - describe @cert into @info (deinit with certs_info_deinit()). */
int certs_info_init(CertsInfo *info, X509 *cert);
void certs_info_deinit(CertsInfo *info);

/* certs_format_time() - ISO 8601 UTC ("2026-01-02T03:04:05Z") into @out (32 bytes). */
void certs_format_time(long long t, char out[32]);

/*
 * certs_secret_alloc() - zeroed memory for key bytes: excluded from core dumps
 * (MADV_DONTDUMP) and wiped by certs_secret_free(). NULL on failure.
 */
void *certs_secret_alloc(size_t n);
/* certs_secret_free() - wipe (OPENSSL_cleanse) and release; NULL-safe. */
void certs_secret_free(void *p);
/* certs_secret_dup() - copy @n bytes of @p into secret memory, NUL-terminated. */
char *certs_secret_dup(const void *p, size_t n);

/*
 * certs_read_file() - read a whole regular file of at most CERTS_MAX_PEM bytes. With @secret the
 * bytes land in secret memory (certs_secret_free), otherwise in malloc'd memory (free). The
 * result is NUL-terminated. Returns 0, -EISDIR, -EFBIG or another negative errno.
 */
int certs_read_file(const char *path, bool secret, char **ret, size_t *ret_len);

/* certs_openssl_error() - drain OpenSSL's error queue into @b ("; "-separated reasons). */
void certs_openssl_error(Buf *b);
