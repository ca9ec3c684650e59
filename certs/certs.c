/* SPDX-License-Identifier: Apache-2.0 */
/*
 * X.509 generation, parsing and description on OpenSSL 3. Everything here is synchronous and
 * loop-free; errors come back as a negative errno plus a malloc'd sentence for the user. Private
 * key bytes only ever live in secret memory (see certs_secret_alloc) or in OpenSSL's own objects.
 */
#include "certs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SECRET_HDR 64

int certs_parse_key_type(const char *s, CertsKeyType *ret)
{
    if (!s)
        return -EINVAL;
    if (!strcmp(s, "ecdsa-p256"))
        *ret = CERTS_KEY_ECDSA_P256;
    else if (!strcmp(s, "rsa-2048"))
        *ret = CERTS_KEY_RSA_2048;
    else if (!strcmp(s, "rsa-4096"))
        *ret = CERTS_KEY_RSA_4096;
    else
        return -EINVAL;
    return 0;
}

int certs_parse_usage(const char *s, CertsUsage *ret)
{
    if (!s)
        return -EINVAL;
    if (!strcmp(s, "client"))
        *ret = CERTS_USAGE_CLIENT;
    else if (!strcmp(s, "server"))
        *ret = CERTS_USAGE_SERVER;
    else if (!strcmp(s, "ca"))
        *ret = CERTS_USAGE_CA;
    else
        return -EINVAL;
    return 0;
}

/* ---- secret memory ---- */

void *certs_secret_alloc(size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        page = 4096;
    if (n > SIZE_MAX - SECRET_HDR - (size_t)page)
        return NULL;
    size_t total = (n + SECRET_HDR + (size_t)page - 1) / (size_t)page * (size_t)page;
    /* A private mapping of its own so that MADV_DONTDUMP covers exactly these pages. */
    unsigned char *base =
        mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    (void)madvise(base, total, MADV_DONTDUMP);
    memcpy(base, &total, sizeof(total));
    return base + SECRET_HDR;
}

void certs_secret_free(void *p)
{
    if (!p)
        return;
    unsigned char *base = (unsigned char *)p - SECRET_HDR;
    size_t total;
    memcpy(&total, base, sizeof(total));
    OPENSSL_cleanse(base, total);
    (void)munmap(base, total);
}

char *certs_secret_dup(const void *p, size_t n)
{
    char *s = certs_secret_alloc(n + 1);
    if (!s)
        return NULL;
    if (n)
        memcpy(s, p, n);
    s[n] = 0;
    return s;
}

int certs_read_file(const char *path, bool secret, char **ret, size_t *ret_len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return -EISDIR;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if (st.st_size > CERTS_MAX_PEM) {
        close(fd);
        return -EFBIG;
    }
    /* Size the buffer once from fstat so that key bytes are never copied by a realloc; a file
     * that grows while we read it is being rewritten, and the watcher will read it again. */
    size_t cap = (size_t)st.st_size;
    char *buf = secret ? certs_secret_alloc(cap + 1) : calloc(1, cap + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t len = 0;
    int r = 0;
    for (;;) {
        char extra;
        ssize_t n = len < cap ? read(fd, buf + len, cap - len) : read(fd, &extra, 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        if (len >= cap) {
            r = -EAGAIN;
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    if (r < 0) {
        if (secret)
            certs_secret_free(buf);
        else
            free(buf);
        return r;
    }
    buf[len] = 0;
    *ret = buf;
    if (ret_len)
        *ret_len = len;
    return 0;
}

/* ---- errors ---- */

void certs_openssl_error(Buf *b)
{
    unsigned long e;
    bool first = true;
    while ((e = ERR_get_error()) != 0) {
        const char *reason = ERR_reason_error_string(e);
        char tmp[256];
        if (!reason) {
            ERR_error_string_n(e, tmp, sizeof(tmp));
            reason = tmp;
        }
        (void)buf_printf(b, "%s%s", first ? "" : "; ", reason);
        first = false;
    }
}

static int fail(char **ret_err, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **ret_err, int r, const char *fmt, ...)
{
    if (ret_err) {
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
            s = NULL;
        va_end(ap);
        *ret_err = s;
    }
    ERR_clear_error();
    return r;
}

/* fail_ssl() - like fail() with OpenSSL's queued reasons appended in parentheses. */
static int fail_ssl(char **ret_err, int r, const char *what)
{
    Buf b = BUF_INIT;
    certs_openssl_error(&b);
    int ret = fail(ret_err, r, "%s%s%s%s", what, b.len ? " (" : "", b.len ? b.data : "",
                   b.len ? ")" : "");
    buf_deinit(&b);
    return ret;
}

/* ---- time ---- */

static long long asn1_time_unix(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    return (long long)timegm(&tm);
}

long long certs_not_after(const X509 *cert)
{
    return asn1_time_unix(X509_get0_notAfter(cert));
}

long long certs_not_before(const X509 *cert)
{
    return asn1_time_unix(X509_get0_notBefore(cert));
}

void certs_format_time(long long t, char out[32])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 32, "%lld", t);
}

/* ---- parsing ---- */

static bool looks_pem(const void *data, size_t len)
{
    return memmem(data, len, "-----BEGIN", 10) != NULL;
}

static bool is_cert_block(const char *name)
{
    return !strcmp(name, "CERTIFICATE") || !strcmp(name, "X509 CERTIFICATE") ||
           !strcmp(name, "TRUSTED CERTIFICATE");
}

int certs_load_chain(const void *data, size_t len, STACK_OF(X509) * *ret, char **ret_err)
{
    if (!data || len == 0)
        return fail(ret_err, -EINVAL, "empty input, expected a PEM certificate");
    if (len > CERTS_MAX_PEM)
        return fail(ret_err, -EFBIG, "too large (%zu bytes, limit %d)", len, CERTS_MAX_PEM);
    STACK_OF(X509) *sk = sk_X509_new_null();
    if (!sk)
        return fail(ret_err, -ENOMEM, "out of memory");
    ERR_clear_error();
    int r = 0;

    if (!looks_pem(data, len)) {
        const unsigned char *p = data;
        X509 *x = d2i_X509(NULL, &p, (long)len);
        if (!x || p != (const unsigned char *)data + len) {
            X509_free(x);
            r = fail(ret_err, -EINVAL, "neither a PEM nor a DER certificate");
            goto out;
        }
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            r = fail(ret_err, -ENOMEM, "out of memory");
        }
        goto out;
    }

    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (!bio) {
        r = fail(ret_err, -ENOMEM, "out of memory");
        goto out;
    }
    for (int block = 1;; block++) {
        char *name = NULL, *header = NULL;
        unsigned char *der = NULL;
        long dlen = 0;
        if (!PEM_read_bio(bio, &name, &header, &der, &dlen)) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                break;
            }
            char what[96];
            snprintf(what, sizeof(what), "PEM block %d is truncated or corrupt", block);
            r = fail_ssl(ret_err, -EINVAL, what);
            break;
        }
        if (is_cert_block(name)) {
            const unsigned char *p = der;
            X509 *x = !strcmp(name, "TRUSTED CERTIFICATE") ? d2i_X509_AUX(NULL, &p, dlen)
                                                           : d2i_X509(NULL, &p, dlen);
            if (!x || p != der + dlen) {
                X509_free(x);
                char what[96];
                snprintf(what, sizeof(what), "certificate %d is not valid DER",
                         sk_X509_num(sk) + 1);
                r = fail_ssl(ret_err, -EINVAL, what);
            } else if (!sk_X509_push(sk, x)) {
                X509_free(x);
                r = fail(ret_err, -ENOMEM, "out of memory");
            }
        }
        /* Any other block (a key bundled into the same file) is dropped unseen. */
        OPENSSL_clear_free(der, (size_t)dlen);
        OPENSSL_free(name);
        OPENSSL_free(header);
        if (r < 0)
            break;
    }
    BIO_free(bio);
    if (r == 0 && sk_X509_num(sk) == 0)
        r = fail(ret_err, -EINVAL, "no CERTIFICATE block found");
out:
    if (r < 0) {
        sk_X509_pop_free(sk, X509_free);
        return r;
    }
    *ret = sk;
    return 0;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int certs_load_key(const void *data, size_t len, EVP_PKEY **ret, char **ret_err)
{
    if (!data || len == 0)
        return fail(ret_err, -EINVAL, "empty input, expected a PEM private key");
    if (len > CERTS_MAX_PEM)
        return fail(ret_err, -EFBIG, "too large (%zu bytes, limit %d)", len, CERTS_MAX_PEM);
    ERR_clear_error();
    EVP_PKEY *key = NULL;

    if (!looks_pem(data, len)) {
        const unsigned char *p = data;
        key = d2i_AutoPrivateKey(NULL, &p, (long)len);
        if (!key)
            return fail(ret_err, -EINVAL, "neither a PEM nor a DER private key");
        *ret = key;
        return 0;
    }
    /* Start at the first key block, so a file holding a certificate then its key also works. */
    const char *s = data, *end = s + len;
    const char *k = memmem(s, len, "PRIVATE KEY-----", 16);
    if (!k)
        return fail(ret_err, -EINVAL, "no PRIVATE KEY block found");
    const char *begin = NULL;
    for (const char *p = s; p && p < k;) {
        const char *b = memmem(p, (size_t)(k - p), "-----BEGIN ", 11);
        if (!b)
            break;
        begin = b;
        p = b + 1;
    }
    if (!begin)
        return fail(ret_err, -EINVAL, "no PRIVATE KEY block found");
    if (memmem(begin, (size_t)(k - begin), "ENCRYPTED", 9) ||
        memmem(begin, (size_t)(end - begin), "Proc-Type: 4,ENCRYPTED", 22))
        return fail(ret_err, -EINVAL,
                    "the private key is encrypted; store it unencrypted in a Secret "
                    "(openssl pkey -in KEY -out KEY.plain)");
    BIO *bio = BIO_new_mem_buf(begin, (int)(end - begin));
    if (!bio)
        return fail(ret_err, -ENOMEM, "out of memory");
    key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
    BIO_free(bio);
    if (!key)
        return fail_ssl(ret_err, -EINVAL, "the private key is truncated or corrupt");
    ERR_clear_error();
    *ret = key;
    return 0;
}

bool certs_key_matches(X509 *cert, EVP_PKEY *key)
{
    if (!cert || !key)
        return false;
    bool ok = X509_check_private_key(cert, key) == 1;
    ERR_clear_error();
    return ok;
}

/* ---- generation ---- */

static EVP_PKEY *make_key(CertsKeyType t)
{
    switch (t) {
    case CERTS_KEY_ECDSA_P256:
        return EVP_EC_gen("P-256");
    case CERTS_KEY_RSA_2048:
        return EVP_RSA_gen(2048);
    case CERTS_KEY_RSA_4096:
        return EVP_RSA_gen(4096);
    }
    return NULL;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!ext)
        return -EINVAL;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -ENOMEM;
}

static bool valid_dns_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == ',')
            return false;
    }
    return true;
}

/* Build the SAN extension by hand: a DNS name is never parsed as OpenSSL config text. */
static int add_sans(X509 *x, const char *const *sans, size_t n, char **ret_err)
{
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    if (!gens)
        return fail(ret_err, -ENOMEM, "out of memory");
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        const char *s = sans[i];
        unsigned char ip[16];
        int iplen = 0;
        if (inet_pton(AF_INET, s, ip) == 1)
            iplen = 4;
        else if (inet_pton(AF_INET6, s, ip) == 1)
            iplen = 16;
        GENERAL_NAME *g = GENERAL_NAME_new();
        if (!g) {
            r = fail(ret_err, -ENOMEM, "out of memory");
            break;
        }
        if (iplen) {
            ASN1_OCTET_STRING *o = ASN1_OCTET_STRING_new();
            if (!o || !ASN1_OCTET_STRING_set(o, ip, iplen)) {
                ASN1_OCTET_STRING_free(o);
                GENERAL_NAME_free(g);
                r = fail(ret_err, -ENOMEM, "out of memory");
                break;
            }
            GENERAL_NAME_set0_value(g, GEN_IPADD, o);
        } else {
            if (!valid_dns_name(s)) {
                GENERAL_NAME_free(g);
                r = fail(ret_err, -EINVAL, "--san \"%s\" is not a DNS name or IP address", s);
                break;
            }
            ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
            if (!ia5 || !ASN1_STRING_set(ia5, s, (int)strlen(s))) {
                ASN1_IA5STRING_free(ia5);
                GENERAL_NAME_free(g);
                r = fail(ret_err, -ENOMEM, "out of memory");
                break;
            }
            GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
        }
        if (!sk_GENERAL_NAME_push(gens, g)) {
            GENERAL_NAME_free(g);
            r = fail(ret_err, -ENOMEM, "out of memory");
        }
    }
    if (r == 0 && !X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT))
        r = fail_ssl(ret_err, -ENOMEM, "cannot add subjectAltName");
    GENERAL_NAMES_free(gens);
    return r;
}

static int set_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -EIO;
    b[0] &= 0x7f; /* positive */
    b[0] |= 0x01; /* and no leading zero byte, so always 16 bytes of DER */
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    if (!bn)
        return -ENOMEM;
    int ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? 0 : -ENOMEM;
}

static char *key_to_pem(EVP_PKEY *key)
{
    /* A secure-memory BIO wipes its buffers when they grow or are freed. */
    BIO *bio = BIO_new(BIO_s_secmem());
    if (!bio)
        return NULL;
    char *out = NULL;
    if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
        char *p;
        long n = BIO_get_mem_data(bio, &p);
        if (n > 0)
            out = certs_secret_dup(p, (size_t)n);
    }
    BIO_free(bio);
    return out;
}

static char *cert_to_pem(X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return NULL;
    char *out = NULL;
    if (PEM_write_bio_X509(bio, x)) {
        char *p;
        long n = BIO_get_mem_data(bio, &p);
        if (n > 0) {
            out = malloc((size_t)n + 1);
            if (out) {
                memcpy(out, p, (size_t)n);
                out[n] = 0;
            }
        }
    }
    BIO_free(bio);
    return out;
}

int certs_generate(const CertsSpec *spec, char **ret_cert_pem, char **ret_key_pem, char **ret_err)
{
    const char *cn = spec->cn && *spec->cn ? spec->cn : "tether";
    int days = spec->days ? spec->days : 365;
    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    char *cert_pem = NULL, *key_pem = NULL;
    int r = 0;

    if (ret_err)
        *ret_err = NULL;
    if (days < 0 || days > 36500)
        return fail(ret_err, -EINVAL, "--days %d is out of range (1..36500)", days);
    if (strlen(cn) > 64)
        return fail(ret_err, -EINVAL, "--cn is longer than 64 characters");
    if (!spec->ca_cert_pem != !spec->ca_key_pem)
        return fail(ret_err, -EINVAL, "--ca-cert and --ca-key go together");
    ERR_clear_error();

    if (spec->ca_cert_pem) {
        STACK_OF(X509) *chain = NULL;
        char *err = NULL;
        size_t clen = spec->ca_cert_len ? spec->ca_cert_len : strlen(spec->ca_cert_pem);
        size_t klen = spec->ca_key_len ? spec->ca_key_len : strlen(spec->ca_key_pem);
        r = certs_load_chain(spec->ca_cert_pem, clen, &chain, &err);
        if (r < 0) {
            r = fail(ret_err, r, "--ca-cert: %s", err ? err : "invalid");
            free(err);
            goto out;
        }
        ca = sk_X509_shift(chain);
        sk_X509_pop_free(chain, X509_free);
        r = certs_load_key(spec->ca_key_pem, klen, &ca_key, &err);
        if (r < 0) {
            r = fail(ret_err, r, "--ca-key: %s", err ? err : "invalid");
            free(err);
            goto out;
        }
        if (!certs_key_matches(ca, ca_key)) {
            r = fail(ret_err, -EINVAL, "--ca-key does not match --ca-cert");
            goto out;
        }
        if (!(X509_get_extension_flags(ca) & EXFLAG_CA)) {
            r = fail(ret_err, -EINVAL, "--ca-cert is not a CA certificate (no CA:TRUE)");
            goto out;
        }
    }

    key = make_key(spec->key_type);
    if (!key) {
        r = fail_ssl(ret_err, -EIO, "key generation failed");
        goto out;
    }
    x = X509_new();
    if (!x || !X509_set_version(x, 2) || set_serial(x) < 0) {
        r = fail_ssl(ret_err, -ENOMEM, "cannot build the certificate");
        goto out;
    }
    long long nb = spec->not_before ? spec->not_before : (long long)time(NULL) - 300;
    if (!ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(nb + (long long)days * 86400))) {
        r = fail_ssl(ret_err, -EINVAL, "cannot set the validity");
        goto out;
    }
    X509_NAME *name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0)) {
        r = fail_ssl(ret_err, -EINVAL, "invalid --cn");
        goto out;
    }
    if (!X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name) ||
        !X509_set_pubkey(x, key)) {
        r = fail_ssl(ret_err, -ENOMEM, "cannot build the certificate");
        goto out;
    }

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca ? ca : x, x, NULL, NULL, 0);
    X509V3_set_ctx_nodb(&ctx);
    bool self_ca = !ca || spec->usage == CERTS_USAGE_CA;
    bool rsa = spec->key_type != CERTS_KEY_ECDSA_P256;
    if (add_ext(x, &ctx, NID_basic_constraints,
                self_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") < 0 ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") < 0) {
        r = fail_ssl(ret_err, -ENOMEM, "cannot add extensions");
        goto out;
    }
    if (spec->usage == CERTS_USAGE_CA) {
        r = add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
    } else {
        /* A self-signed leaf is its own root (Konnect pins it), like `openssl req -x509`. */
        const char *ku =
            ca ? (rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature")
               : (rsa ? "critical,digitalSignature,keyEncipherment,keyCertSign"
                      : "critical,digitalSignature,keyCertSign");
        r = add_ext(x, &ctx, NID_key_usage, ku);
        if (r == 0)
            r = add_ext(x, &ctx, NID_ext_key_usage,
                        spec->usage == CERTS_USAGE_SERVER ? "serverAuth,clientAuth" : "clientAuth");
    }
    if (r < 0) {
        r = fail_ssl(ret_err, r, "cannot add extensions");
        goto out;
    }
    if (spec->n_sans) {
        r = add_sans(x, spec->sans, spec->n_sans, ret_err);
        if (r < 0)
            goto out;
    }
    EVP_PKEY *signer = ca_key ? ca_key : key;
    int id = EVP_PKEY_get_base_id(signer);
    const EVP_MD *md = (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) ? NULL : EVP_sha256();
    if (!X509_sign(x, signer, md)) {
        r = fail_ssl(ret_err, -EINVAL, "signing failed");
        goto out;
    }
    cert_pem = cert_to_pem(x);
    key_pem = key_to_pem(key);
    if (!cert_pem || !key_pem) {
        r = fail(ret_err, -ENOMEM, "out of memory");
        goto out;
    }
    *ret_cert_pem = cert_pem;
    *ret_key_pem = key_pem;
    cert_pem = key_pem = NULL;
out:
    free(cert_pem);
    certs_secret_free(key_pem);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return r;
}

int certs_write_pair(const char *cert_path, const char *cert_pem, const char *key_path,
                     const char *key_pem)
{
    /* The key first: a certificate without its key on disk is the worse half-state. */
    int r = util_write_file_atomic(key_path, key_pem, strlen(key_pem), 0600);
    if (r < 0)
        return r;
    return util_write_file_atomic(cert_path, cert_pem, strlen(cert_pem), 0644);
}

/* ---- description ---- */

static char *name_to_string(const X509_NAME *n)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return NULL;
    char *out = NULL;
    /* RFC 2253 escapes control and non-ASCII bytes, so the result is safe to print and log. */
    if (X509_NAME_print_ex(bio, n, 0, XN_FLAG_RFC2253) >= 0) {
        char *p;
        long len = BIO_get_mem_data(bio, &p);
        out = malloc((size_t)(len > 0 ? len : 0) + 1);
        if (out) {
            if (len > 0)
                memcpy(out, p, (size_t)len);
            out[len > 0 ? len : 0] = 0;
        }
    }
    BIO_free(bio);
    return out;
}

static char *printable(const char *prefix, const unsigned char *p, int n)
{
    size_t pl = strlen(prefix);
    char *s = malloc(pl + (size_t)(n > 0 ? n : 0) + 1);
    if (!s)
        return NULL;
    memcpy(s, prefix, pl);
    for (int i = 0; i < n; i++)
        s[pl + (size_t)i] = (p[i] < 0x20 || p[i] >= 0x7f) ? '?' : (char)p[i];
    s[pl + (size_t)(n > 0 ? n : 0)] = 0;
    return s;
}

static char *describe_gen(const GENERAL_NAME *g)
{
    int type;
    void *v = GENERAL_NAME_get0_value(g, &type);
    const ASN1_STRING *as = v;
    switch (type) {
    case GEN_DNS:
        return printable("DNS:", ASN1_STRING_get0_data(as), ASN1_STRING_length(as));
    case GEN_URI:
        return printable("URI:", ASN1_STRING_get0_data(as), ASN1_STRING_length(as));
    case GEN_EMAIL:
        return printable("email:", ASN1_STRING_get0_data(as), ASN1_STRING_length(as));
    case GEN_IPADD: {
        char txt[INET6_ADDRSTRLEN + 4] = "IP:";
        int len = ASN1_STRING_length(as);
        const unsigned char *d = ASN1_STRING_get0_data(as);
        if ((len == 4 && inet_ntop(AF_INET, d, txt + 3, INET6_ADDRSTRLEN)) ||
            (len == 16 && inet_ntop(AF_INET6, d, txt + 3, INET6_ADDRSTRLEN)))
            return strdup(txt);
        return strdup("IP:<invalid>");
    }
    default:
        return strdup("other:<unsupported>");
    }
}

int certs_info_init(CertsInfo *info, X509 *cert)
{
    memset(info, 0, sizeof(*info));
    info->subject = name_to_string(X509_get_subject_name(cert));
    info->issuer = name_to_string(X509_get_issuer_name(cert));
    if (!info->subject || !info->issuer)
        goto oom;

    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (gens) {
        int n = sk_GENERAL_NAME_num(gens);
        info->sans = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
        if (!info->sans) {
            GENERAL_NAMES_free(gens);
            goto oom;
        }
        for (int i = 0; i < n; i++) {
            char *s = describe_gen(sk_GENERAL_NAME_value(gens, i));
            if (!s) {
                GENERAL_NAMES_free(gens);
                goto oom;
            }
            info->sans[info->n_sans++] = s;
        }
        GENERAL_NAMES_free(gens);
    }

    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    if (bn) {
        char *hex = BN_bn2hex(bn);
        if (hex) {
            info->serial = strdup(hex);
            OPENSSL_free(hex);
        }
        BN_free(bn);
    }
    if (!info->serial)
        info->serial = strdup("?");
    if (!info->serial)
        goto oom;

    info->not_before = certs_not_before(cert);
    info->not_after = certs_not_after(cert);

    EVP_PKEY *pk = X509_get0_pubkey(cert);
    if (pk) {
        const char *tn = EVP_PKEY_get0_type_name(pk);
        snprintf(info->key_type, sizeof(info->key_type), "%s", tn ? tn : "unknown");
        info->key_bits = EVP_PKEY_get_bits(pk);
        size_t gl = 0;
        if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC &&
            !EVP_PKEY_get_group_name(pk, info->curve, sizeof(info->curve), &gl))
            info->curve[0] = 0;
    } else {
        snprintf(info->key_type, sizeof(info->key_type), "unknown");
    }

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) && mdlen == 32) {
        for (unsigned i = 0; i < mdlen; i++)
            snprintf(info->sha256 + i * 3, sizeof(info->sha256) - i * 3, "%02X%s", md[i],
                     i + 1 < mdlen ? ":" : "");
    }
    info->is_ca = (X509_get_extension_flags(cert) & EXFLAG_CA) != 0;
    info->self_signed = X509_self_signed(cert, 1) == 1;
    ERR_clear_error();
    return 0;
oom:
    certs_info_deinit(info);
    return -ENOMEM;
}

void certs_info_deinit(CertsInfo *info)
{
    free(info->subject);
    free(info->issuer);
    for (size_t i = 0; i < info->n_sans; i++)
        free(info->sans[i]);
    free(info->sans);
    free(info->serial);
    memset(info, 0, sizeof(*info));
}
