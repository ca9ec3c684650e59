/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS certificates with SNIs (Ingress and TCPIngress spec.tls, service client certificates)
 * and CA certificates (Secrets and ConfigMaps labelled konghq.com/ca-cert: "true").
 */
#include "xlate_int.h"

#include <ctype.h>
#include <pthread.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* @s (taken) trimmed as Go's bytes.TrimSpace, which KIC applies to a TLS Secret's PEMs. */
static json_t *trimmed(json_t *s)
{
    if (!s)
        return NULL;
    const char *a = json_string_value(s), *b = a + json_string_length(s);
    xtrim(&a, &b);
    json_t *t = json_stringn(a, (size_t)(b - a));
    json_decref(s);
    return t;
}

/* Go's crypto/x509 (KIC 3.5 builds with Go 1.24) rejects negative serial numbers. */
static bool serial_ok(const X509 *x)
{
    return ASN1_STRING_type(X509_get0_serialNumber(x)) != V_ASN1_NEG_INTEGER;
}

/* The keys Go's tls.X509KeyPair takes: RSA, ECDSA on P-224/256/384/521, Ed25519. */
static bool go_key_type(EVP_PKEY *k)
{
    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_ED25519:
        return true;
    case EVP_PKEY_EC: {
        char g[64];
        if (!EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, g, sizeof(g), NULL))
            return false;
        return !strcmp(g, "secp224r1") || !strcmp(g, "prime256v1") || !strcmp(g, "secp384r1") ||
               !strcmp(g, "secp521r1");
    }
    default:
        return false;
    }
}

/*
 * Go's parsePrivateKey: PKCS#1, then PKCS#8, then SEC 1. Only the PKCS#1 parser refuses bytes
 * after the key; a PKCS#1 key is the one whose SEQUENCE has an INTEGER second (PKCS#8 has the
 * algorithm's SEQUENCE there, SEC 1 an OCTET STRING).
 */
static EVP_PKEY *parse_key(const unsigned char *der, long len)
{
    const unsigned char *q = der;
    EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &q, len);
    if (!k || q == der + len)
        return k;
    const unsigned char *p = der;
    long l;
    int tag, cls;
    bool pkcs1 = (ASN1_get_object(&p, &l, &tag, &cls, len) & 0x80) == 0 && tag == V_ASN1_SEQUENCE &&
                 (ASN1_get_object(&p, &l, &tag, &cls, der + len - p) & 0x80) == 0 &&
                 tag == V_ASN1_INTEGER && (p += l) < der + len && *p == V_ASN1_INTEGER;
    if (pkcs1) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

/*
 * Go derives an EC key's public point from its private scalar (the stored point is not read)
 * and checks an RSA key's primes and exponents; OpenSSL takes both as stored unless asked.
 */
static bool key_consistent(EVP_PKEY *k)
{
    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519)
        return true;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
    bool ok = c && EVP_PKEY_pairwise_check(c) == 1;
    EVP_PKEY_CTX_free(c);
    return ok;
}

static bool is_key_type(const char *t, size_t n)
{
    return (n == 11 && !memcmp(t, "PRIVATE KEY", 11)) ||
           (n >= 12 && !memcmp(t + n - 12, " PRIVATE KEY", 12));
}

static bool is_cert_type(const char *t, size_t n)
{
    return n == 11 && !memcmp(t, "CERTIFICATE", 11);
}

static bool pem_decl(const char *pem, bool (*want)(const char *, size_t), unsigned char **der,
                     long *len);

/*
 * Go's x509.ParseCertificate, as far as it differs from d2i_X509 for what tools write: one
 * certificate and nothing after it ("x509: trailing data"), times Go reads, and a public key
 * that decodes (an EC point on its curve).
 */
static X509 *parse_cert(const unsigned char *der, long len)
{
    const unsigned char *q = der;
    X509 *x = d2i_X509(NULL, &q, len);
    if (x && (q != der + len || !ASN1_TIME_check(X509_get0_notBefore(x)) ||
              !ASN1_TIME_check(X509_get0_notAfter(x)) || !X509_get0_pubkey(x))) {
        X509_free(x);
        x = NULL;
    }
    return x;
}

/*
 * Go's tls.X509KeyPair, which KIC's getCertFromSecret calls: the leaf is the first CERTIFICATE
 * block, the key the first block whose type is PRIVATE KEY or ends with it (other blocks, and
 * blocks that do not decode, are passed over, as pem.Decode does), parsed whatever the label says
 * (PKCS#1, PKCS#8 or SEC1); then the key must match the leaf and be of a type Go takes.
 */
static bool check_pair(const char *cert, const char *key)
{
    unsigned char *cder = NULL, *kder = NULL;
    long cl = 0, kl = 0;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    if (pem_decl(cert, is_cert_type, &cder, &cl))
        x = parse_cert(cder, cl);
    if (pem_decl(key, is_key_type, &kder, &kl))
        k = parse_key(kder, kl);
    bool ok = x && k && X509_check_private_key(x, k) == 1 && go_key_type(k) && serial_ok(x) &&
              key_consistent(k);
    OPENSSL_free(cder);
    OPENSSL_free(kder);
    X509_free(x);
    EVP_PKEY_free(k);
    ERR_clear_error();
    return ok;
}

/*
 * Verdicts on certificate and key pairs, by the SHA-256 of both, for the process's lifetime.
 * OpenSSL 3 spends about a millisecond decoding a private key (its decoder setup), so checking
 * every TLS Secret at every translation cost 11 s at 10,000 Secrets. Pairs do not change
 * meaning; when the table fills up it starts over. Any thread: translations run in the pool.
 */
#define PAIR_CACHE 16384 /* slots, a power of two */
static struct {
    pthread_mutex_t lock;
    unsigned char (*keys)[32];
    unsigned char *verdict; /* 0 empty, 1 invalid, 2 valid */
    size_t used;
} pairs = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0};

static int cached_verdict(const unsigned char d[32], int set)
{
    int v = 0;
    pthread_mutex_lock(&pairs.lock);
    if (!pairs.keys) {
        pairs.keys = calloc(PAIR_CACHE, 32);
        pairs.verdict = calloc(PAIR_CACHE, 1);
        if (!pairs.keys || !pairs.verdict) {
            free(pairs.keys);
            free(pairs.verdict);
            pairs.keys = NULL;
            pairs.verdict = NULL;
        }
    }
    if (set && pairs.keys && pairs.used >= PAIR_CACHE / 2) { /* keep probing short */
        memset(pairs.verdict, 0, PAIR_CACHE);
        pairs.used = 0;
    }
    size_t i;
    memcpy(&i, d, sizeof(i));
    for (size_t n = 0; pairs.keys && n < PAIR_CACHE; n++, i++) {
        size_t slot = i & (PAIR_CACHE - 1);
        if (!pairs.verdict[slot]) {
            if (set) {
                memcpy(pairs.keys[slot], d, 32);
                pairs.verdict[slot] = (unsigned char)set;
                pairs.used++;
            }
            break;
        }
        if (!memcmp(pairs.keys[slot], d, 32)) {
            v = pairs.verdict[slot];
            break;
        }
    }
    pthread_mutex_unlock(&pairs.lock);
    return v;
}

static bool valid_pair(const char *cert, const char *key)
{
    size_t cl = strlen(cert), kl = strlen(key);
    char *both = malloc(cl + kl + 1);
    unsigned char d[32];
    if (!both)
        return check_pair(cert, key);
    memcpy(both, cert, cl);
    both[cl] = 0; /* a separator neither PEM holds */
    memcpy(both + cl + 1, key, kl);
    util_sha256(both, cl + kl + 1, d);
    free(both);
    int v = cached_verdict(d, 0);
    if (v)
        return v == 2;
    bool ok = check_pair(cert, key);
    cached_verdict(d, ok ? 2 : 1);
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void xlate_certificates(Xlate *x)
{
    json_t *by_pair = json_object(); /* cert+key -> certificate entity */
    json_t *sni_owner = json_object();
    json_t *pair_age = json_object(); /* cert+key -> {"ts", "uid"} of the oldest Secret */
    json_t *uid_pair = json_object(); /* Secret UID -> cert+key */
    size_t i;
    json_t *key;

    json_array_foreach(x->sni_order, i, key)
    {
        const char *k = json_string_value(key);
        json_t *entry = json_object_get(x->sni_secrets, k);
        json_t *parents = json_object_get(entry, "parents");
        /* KIC splits its "namespace/secretName" key on every '/' and reads the first two parts:
         * a secretName "other/tls" names the Secret "other" of the same namespace. */
        const char *slash = strchr(k, '/'), *end = strchr(slash + 1, '/');
        char ns[256], name[256];
        snprintf(ns, sizeof(ns), "%.*s", (int)(slash - k), k);
        snprintf(name, sizeof(name), "%.*s", (int)(end ? end - slash - 1 : (long)strlen(slash + 1)),
                 slash + 1);
        json_t *secret = store_get(x->st, "Secret", ns, name);
        if (!secret) {
            xfail_objs(x, parents, "Failed to fetch the secret (%s)", k);
            continue;
        }
        char idbuf[37];
        const char *sid = xsecret_id(secret, idbuf);
        json_t *crt = trimmed(xsecret_data(secret, "tls.crt"));
        json_t *pk = trimmed(xsecret_data(secret, "tls.key"));
        if (!crt || !pk || !valid_pair(json_string_value(crt), json_string_value(pk))) {
            json_t *objs = json_deep_copy(parents);
            json_array_append(objs, secret);
            xfail_objs(x, objs, "failed to construct certificate from secret");
            json_decref(objs);
            json_decref(crt);
            json_decref(pk);
            continue;
        }
        /* KIC merges Secrets on the certificate's text and the key's, joined as they are */
        char *pair = util_strdup_printf("%s%s", json_string_value(crt), json_string_value(pk));
        json_object_set_new(uid_pair, sid, json_string(pair));
        json_t *cert = json_object_get(by_pair, pair);
        long long ts = xcreation(secret);
        if (!cert) {
            cert = json_pack("{s:s, s:O, s:O, s:o, s:[]}", "id", sid, "cert", crt, "key",
                             pk, "tags", xtags(secret), "snis");
            json_object_set_new(by_pair, pair, cert);
            json_array_append(x->certificates, cert);
            json_object_set_new(pair_age, pair, json_pack("{s:I, s:s}", "ts", (json_int_t)ts, "uid",
                                                          sid));
        } else {
            /* The same certificate in several Secrets: the oldest Secret's UID names it. */
            json_t *age = json_object_get(pair_age, pair);
            long long ots = json_integer_value(json_object_get(age, "ts"));
            const char *ouid = json_string_value(json_object_get(age, "uid"));
            if (ts < ots || (ts == ots && strcmp(sid, ouid) < 0)) {
                json_object_set_new(cert, "id", json_string(sid));
                json_object_set_new(cert, "tags", xtags(secret));
                json_object_set_new(pair_age, pair, json_pack("{s:I, s:s}", "ts", (json_int_t)ts,
                                                              "uid", sid));
            }
        }
        size_t j;
        json_t *h;
        json_array_foreach(json_object_get(entry, "hosts"), j, h)
        {
            const char *owner = json_string_value(json_object_get(sni_owner, json_string_value(h)));
            if (owner)
                continue; /* an SNI stays on the first certificate that claimed it */
            json_object_set_new(sni_owner, json_string_value(h), json_string(pair));
            json_array_append(json_object_get(cert, "snis"), h);
        }
        free(pair);
        json_decref(crt);
        json_decref(pk);
    }

    json_t *cert;
    json_array_foreach(x->certificates, i, cert)
    {
        json_t *hosts = json_object_get(cert, "snis");
        size_t n = json_array_size(hosts);
        if (!n) {
            json_object_del(cert, "snis");
            continue;
        }
        const char **v = calloc(n, sizeof(*v));
        for (size_t j = 0; j < n; j++)
            v[j] = json_string_value(json_array_get(hosts, j));
        qsort(v, n, sizeof(*v), cmp_str);
        json_t *snis = json_array();
        const char *id = json_string_value(json_object_get(cert, "id"));
        for (size_t j = 0; j < n; j++)
            json_array_append_new(snis, json_pack("{s:s, s:{s:s}}", "name", v[j], "certificate",
                                                  "id", id));
        free(v);
        json_object_set_new(cert, "snis", snis);
    }
    /* Services point at the merged certificate's id; at none when their Secret made no
     * certificate (KIC finds no merged id, and decK leaves the empty one out). */
    for (size_t s = 0; s < x->nsvcs; s++) {
        json_t *cc = json_object_get(x->svcs[s]->s, "client_certificate");
        json_t *pair = cc ? json_object_get(uid_pair, json_string_value(cc)) : NULL;
        json_t *c = pair ? json_object_get(by_pair, json_string_value(pair)) : NULL;
        if (c)
            json_object_set(x->svcs[s]->s, "client_certificate", json_object_get(c, "id"));
        else if (cc)
            json_object_del(x->svcs[s]->s, "client_certificate");
    }
    json_decref(by_pair);
    json_decref(sni_owner);
    json_decref(pair_age);
    json_decref(uid_pair);
}

/*
 * Go's getLine: the line at @p without its "\n" or "\r\n" and trailing spaces and tabs ends at
 * *@le; returns where the next line starts.
 */
static const char *go_line(const char *p, const char *end, const char **le)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
    if (nl && e > p && e[-1] == '\r')
        e--;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *le = e;
    return nl ? nl + 1 : end;
}

static int b64_value(unsigned char c)
{
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+'             ? 62
           : c == '/'             ? 63
                                  : -1;
}

static const char *skip_newlines(const char *s, const char *e)
{
    while (s < e && (*s == '\n' || *s == '\r'))
        s++;
    return s;
}

/*
 * A PEM body as Go decodes it (spaces and tabs removed, then base64.StdEncoding, which passes
 * over newlines, wants the padding and nothing after it, and does not check the unused bits).
 * The bytes (OPENSSL_malloc'd) or NULL.
 */
static unsigned char *go_base64(const char *s, const char *e, long *len)
{
    unsigned char *out = OPENSSL_malloc((size_t)(e - s) / 4 * 3 + 3);
    unsigned long acc = 0;
    long n = 0;
    int j = 0;
    for (; out && s < e; s++) {
        unsigned char c = (unsigned char)*s;
        int v = b64_value(c);
        if (v >= 0) {
            acc = acc << 6 | (unsigned)v;
            if (++j == 4) {
                out[n++] = (unsigned char)(acc >> 16);
                out[n++] = (unsigned char)(acc >> 8);
                out[n++] = (unsigned char)acc;
                j = 0;
                acc = 0;
            }
            continue;
        }
        if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
            continue;
        if (c != '=' || j < 2)
            break;
        s = skip_newlines(s + 1, e);
        if (j == 2 && (s == e || *s++ != '=')) /* "==" after two characters */
            break;
        if (skip_newlines(s, e) != e)
            break;
        if (j == 2) {
            out[n++] = (unsigned char)(acc >> 4);
        } else {
            out[n++] = (unsigned char)(acc >> 10);
            out[n++] = (unsigned char)(acc >> 2);
        }
        *len = n;
        return out;
    }
    if (out && s == e && j == 0) {
        *len = n;
        return out;
    }
    OPENSSL_free(out);
    return NULL;
}

static bool has_prefix(const char *p, const char *end, const char *pre)
{
    size_t n = strlen(pre);
    return (size_t)(end - p) >= n && !memcmp(p, pre, n);
}

/*
 * The next PEM block of [*@p, @end) as Go's pem.Decode finds it: a "-----BEGIN " at the start or
 * after a newline, a type line ending in five dashes, headers, the first "-----END " line after
 * them, which must name the same type with nothing after it, and a body that decodes; else the
 * search goes on after the type line. Its type is [*@t, *@t + *@tl) and its bytes *@der
 * (OPENSSL_free), and *@p moves past its end line. False when there is none.
 */
static bool go_pem_decode(const char **p, const char *end, const char **t, size_t *tl,
                          unsigned char **der, long *len)
{
    const char *rest = *p, *le;
    for (;;) {
        if (has_prefix(rest, end, "-----BEGIN ")) {
            rest += 11;
        } else {
            const char *at = memmem(rest, (size_t)(end - rest), "\n-----BEGIN ", 12);
            if (!at)
                return false;
            rest = at + 12;
        }
        const char *ts = rest;
        rest = go_line(rest, end, &le);
        if (le - ts < 5 || memcmp(le - 5, "-----", 5))
            continue;
        size_t n = (size_t)(le - 5 - ts);
        bool headers = false;
        for (;;) {
            if (rest == end)
                return false; /* Go gives up on the whole input here */
            const char *next = go_line(rest, end, &le);
            if (!memchr(rest, ':', (size_t)(le - rest)))
                break;
            headers = true;
            rest = next;
        }
        const char *ei, *trailer;
        if (!headers && has_prefix(rest, end, "-----END ")) {
            ei = rest;
            trailer = rest + 9;
        } else {
            if (!(ei = memmem(rest, (size_t)(end - rest), "\n-----END ", 10)))
                continue;
            trailer = ei + 10;
        }
        if ((size_t)(end - trailer) < n + 5 || memcmp(trailer, ts, n) ||
            memcmp(trailer + n, "-----", 5))
            continue;
        go_line(trailer + n + 5, end, &le);
        if (le != trailer + n + 5)
            continue; /* the end line has more after its dashes */
        if (!(*der = go_base64(rest, ei, len)))
            continue;
        *t = ts;
        *tl = n;
        *p = go_line(ei + 9, end, &le);
        return true;
    }
}

/* The DER of the first block of @pem whose type @want takes, as Go's loops over pem.Decode find
 * it. */
static bool pem_decl(const char *pem, bool (*want)(const char *, size_t), unsigned char **der,
                     long *len)
{
    const char *p = pem, *end = pem + strlen(pem), *t;
    size_t tl;
    while (go_pem_decode(&p, end, &t, &tl, der, len)) {
        if (want(t, tl))
            return true;
        OPENSSL_free(*der);
        *der = NULL;
    }
    return false;
}

/*
 * KIC's toKongCACertificate: exactly one PEM block, a CERTIFICATE, with the CA basic constraint
 * (as Go's IsCA: the extension, not a v1 self-signed certificate or keyCertSign alone), not
 * expired; re-encoded clean (ending with a newline). NULL with @why.
 */
static char *ca_pem(const char *pem, const char **why)
{
    const char *p = pem, *end = pem + strlen(pem), *t;
    unsigned char *der = NULL, *d;
    long len = 0, l;
    size_t tl;
    int blocks = 0;
    *why = NULL;
    for (xtrim(&p, &end); p < end && !*why; xtrim(&p, &end)) {
        if (!go_pem_decode(&p, end, &t, &tl, &d, &l)) {
            *why = "invalid PEM block";
        } else if (!is_cert_type(t, tl)) {
            *why = "invalid PEM block type";
            OPENSSL_free(d);
        } else if (blocks++) {
            OPENSSL_free(d);
        } else {
            der = d;
            len = l;
        }
    }
    if (!*why && blocks != 1)
        *why = blocks ? "multiple PEM certificates found" : "invalid PEM block";
    if (*why) {
        OPENSSL_free(der);
        return NULL;
    }
    X509 *c = parse_cert(der, len);
    char *out = NULL;
    if (!c || !serial_ok(c)) {
        *why = "failed to parse certificate";
        goto done;
    }
    if (!(X509_get_extension_flags(c) & EXFLAG_CA)) {
        *why = "certificate is missing the 'CA' basic constraint";
        goto done;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(c)) < 0) {
        *why = "expired";
        goto done;
    }
    BIO *o = BIO_new(BIO_s_mem()); /* the block's own bytes, as pem.EncodeToMemory writes them */
    if (o && PEM_write_bio(o, "CERTIFICATE", "", der, len)) {
        char *text;
        long n = BIO_get_mem_data(o, &text);
        out = strndup(text, (size_t)n);
    }
    BIO_free(o);
done:
    X509_free(c);
    OPENSSL_free(der);
    ERR_clear_error();
    return out;
}

/* @o and the KongPlugins and KongClusterPlugins (of our class: KIC lists them through its
 * class-filtered store) whose config.ca_certificates names @id. */
static json_t *ca_cert_objects(Xlate *x, json_t *o, const char *id)
{
    json_t *objs = json_pack("[O]", o);
    for (int pass = 0; pass < 2; pass++) {
        size_t n;
        json_t *const *all = store_list(x->st, pass ? "KongClusterPlugin" : "KongPlugin", &n);
        for (size_t i = 0; i < n; i++) {
            if (pass && !xclass_exact_or_empty(x, all[i]))
                continue;
            json_t *ids = json_object_get(json_object_get(all[i], "config"), "ca_certificates");
            size_t j;
            json_t *v;
            json_array_foreach(ids, j, v)
            {
                if (json_is_string(v) && !strcmp(json_string_value(v), id)) {
                    json_array_append(objs, all[i]);
                    break;
                }
            }
        }
    }
    return objs;
}

void xlate_ca_certificates(Xlate *x)
{
    json_t *seen = json_object(); /* id -> object that owns it */
    json_t *cands = json_array();
    for (int pass = 0; pass < 2; pass++) {
        size_t n;
        json_t *const *all = store_list(x->st, pass ? "ConfigMap" : "Secret", &n);
        for (size_t i = 0; i < n; i++) {
            const char *l = obj_label(all[i], "konghq.com/ca-cert");
            if (l && !strcmp(l, "true"))
                json_array_append(cands, all[i]);
        }
    }
    /* Oldest first, then namespace, then name (the store's order): duplicates lose to the oldest. */
    size_t nc = json_array_size(cands);
    json_t **v = calloc(nc ? nc : 1, sizeof(*v));
    for (size_t i = 0; v && i < nc; i++)
        v[i] = json_array_get(cands, i);
    if (v) {
        xsort_by_creation(v, nc, false);
        json_t *sorted = json_array();
        for (size_t i = 0; i < nc; i++)
            json_array_append(sorted, v[i]);
        json_decref(cands);
        cands = sorted;
        free(v);
    }
    size_t i;
    json_t *o;
    json_array_foreach(cands, i, o)
    {
        bool secret = !strcmp(obj_kind(o), "Secret");
        json_t *id = secret ? xsecret_data(o, "id")
                            : json_incref(json_object_get(json_object_get(o, "data"), "id"));
        json_t *cert = secret ? xsecret_data(o, "cert")
                              : json_incref(json_object_get(json_object_get(o, "data"), "cert"));
        if (!cert)
            cert = secret ? xsecret_data(o, "ca.crt")
                          : json_incref(json_object_get(json_object_get(o, "data"), "ca.crt"));
        if (!json_is_string(id) || !json_is_string(cert)) {
            xfail(x, o, NULL, "invalid CA certificate %s/%s: missing 'id' or 'cert'", obj_ns(o),
                  obj_name(o));
        } else if (json_object_get(seen, json_string_value(id))) {
            json_t *winner = json_object_get(seen, json_string_value(id));
            xfail(x, o, NULL, "CA certificate %s/%s has the id %s of %s %s/%s, which is older",
                  obj_ns(o), obj_name(o), json_string_value(id), obj_kind(winner),
                  obj_ns(winner), obj_name(winner));
        } else {
            const char *why = NULL;
            char *pem = ca_pem(json_string_value(cert), &why);
            if (!pem) {
                json_t *objs = ca_cert_objects(x, o, json_string_value(id));
                xfail_objs(x, objs, "invalid CA certificate: %s", why);
                json_decref(objs);
            } else {
                json_object_set(seen, json_string_value(id), o);
                json_array_append_new(x->ca_certificates,
                                      json_pack("{s:O, s:s, s:o}", "id", id, "cert", pem, "tags",
                                                xtags(o)));
                free(pem);
            }
        }
        json_decref(id);
        json_decref(cert);
    }
    json_decref(cands);
    json_decref(seen);
}
