/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `tether certs generate|inspect`: make client certificates (self-signed for Konnect to pin, or
 * signed by a CA for Admin API mutual TLS) and describe certificate files. Exit codes: 0 success,
 * 1 failure, 2 usage error.
 */
#include "certs_cli.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "certs.h"
#include "util.h"

#define MAX_SANS 100

static const char usage_top[] =
    "Usage: tether certs <generate|inspect> [flags]\n"
    "\n"
    "  generate   make a key and a certificate (self-signed, or signed by --ca-cert/--ca-key)\n"
    "  inspect    describe the certificates of a PEM or DER file\n"
    "\n"
    "Run 'tether certs <command> --help' for its flags.\n";

static const char usage_generate[] =
    "Usage: tether certs generate --cert FILE --key FILE [flags]\n"
    "\n"
    "Makes a private key and a certificate. Without --ca-cert it is self-signed, as Konnect\n"
    "expects for a pinned client certificate; with --ca-cert/--ca-key it is signed by that CA\n"
    "(for mutual TLS with Kong's Admin API). The key file is written with mode 0600.\n"
    "\n"
    "  --cert FILE            where to write the certificate (PEM)\n"
    "  --key FILE             where to write the private key (PEM, PKCS#8, mode 0600)\n"
    "  --cn NAME              subject common name (default \"tether\")\n"
    "  --days N               validity in days (default 365)\n"
    "  --key-type TYPE        ecdsa-p256 (default), rsa-2048 or rsa-4096\n"
    "  --san NAME             subjectAltName: DNS name or IP address (repeatable)\n"
    "  --usage USE            client (default), server (serverAuth too) or ca\n"
    "  --ca-cert FILE         sign with this CA certificate ...\n"
    "  --ca-key FILE          ... and its private key\n"
    "  --k8s-secret NAME      print a kubernetes.io/tls Secret manifest on stdout\n"
    "                         (--cert/--key are then optional)\n"
    "  --namespace NS         namespace of that Secret\n"
    "  --force                overwrite existing files\n";

static const char usage_inspect[] =
    "Usage: tether certs inspect FILE [--key FILE] [-o text|json]\n"
    "\n"
    "Prints subject, issuer, SANs, validity, key type and size and the SHA-256 fingerprint of\n"
    "every certificate in FILE (PEM or DER; \"-\" reads stdin). With --key, also whether that\n"
    "private key matches the first certificate (exit code 1 if it does not).\n"
    "\n"
    "  --key FILE             private key to check against the certificate\n"
    "  -o, --output FORMAT    text (default) or json\n";

/*
 * Flag parsing: "--name value" and "--name=value". Returns the value and advances *i, or NULL
 * when argv[*i] is not this flag; *missing is set when the value is absent.
 */
static const char *flag_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n))
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != 0)
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

static bool is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

static bool dns_label_ok(const char *s, size_t max, bool dots)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (dots && c == '.');
        if (!ok)
            return false;
    }
    return s[0] != '-' && s[0] != '.' && s[n - 1] != '-' && s[n - 1] != '.';
}

static int usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fputs("tether certs: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    return 2;
}

/* read_stdin() - all of stdin, at most CERTS_MAX_PEM bytes, for `inspect -`. */
static int read_stdin(char **ret, size_t *ret_len)
{
    Buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        if (b.len + n > CERTS_MAX_PEM) {
            buf_deinit(&b);
            return -EFBIG;
        }
        if (buf_append(&b, chunk, n) < 0) {
            buf_deinit(&b);
            return -ENOMEM;
        }
    }
    if (ferror(stdin)) {
        buf_deinit(&b);
        return -EIO;
    }
    *ret_len = b.len;
    *ret = b.data ? buf_take(&b) : strdup("");
    return *ret ? 0 : -ENOMEM;
}

static int read_input(const char *flag, const char *path, bool secret, char **ret, size_t *len)
{
    int r = !secret && !strcmp(path, "-") ? read_stdin(ret, len)
                                          : certs_read_file(path, secret, ret, len);
    if (r == -EISDIR)
        fprintf(stderr, "tether certs: %s%s%s: is a directory, expected a PEM file\n",
                flag ? flag : "", flag ? " " : "", path);
    else if (r == -EFBIG)
        fprintf(stderr, "tether certs: %s%s%s: larger than %d bytes\n", flag ? flag : "",
                flag ? " " : "", path, CERTS_MAX_PEM);
    else if (r == -EINVAL)
        fprintf(stderr, "tether certs: %s%s%s: not a regular file\n", flag ? flag : "",
                flag ? " " : "", path);
    else if (r < 0)
        fprintf(stderr, "tether certs: %s%s%s: %s\n", flag ? flag : "", flag ? " " : "", path,
                strerror(-r));
    return r;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int print_secret(const char *name, const char *ns, const char *cert, const char *key)
{
    char *c64 = util_base64_encode((const unsigned char *)cert, strlen(cert));
    char *k64 = util_base64_encode((const unsigned char *)key, strlen(key));
    int r = 0;
    if (!c64 || !k64) {
        fputs("tether certs: out of memory\n", stderr);
        r = 1;
    } else {
        printf("apiVersion: v1\n"
               "kind: Secret\n"
               "metadata:\n"
               "  name: %s\n",
               name);
        if (ns)
            printf("  namespace: %s\n", ns);
        printf("type: kubernetes.io/tls\n"
               "data:\n"
               "  tls.crt: %s\n"
               "  tls.key: %s\n",
               c64, k64);
        if (fflush(stdout) != 0)
            r = 1;
    }
    free(c64);
    if (k64) {
        OPENSSL_cleanse(k64, strlen(k64));
        free(k64);
    }
    return r;
}

static int cmd_generate(int argc, char **argv)
{
    const char *cert_path = NULL, *key_path = NULL, *ca_cert_path = NULL, *ca_key_path = NULL;
    const char *secret = NULL, *ns = NULL;
    const char *sans[MAX_SANS];
    size_t n_sans = 0;
    bool force = false;
    CertsSpec spec = {0};

    for (int i = 1; i < argc; i++) {
        bool missing = false;
        const char *v;
        if (is_help(argv[i])) {
            fputs(usage_generate, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--force")) {
            force = true;
            continue;
        }
#define STR_FLAG(name, var)                                                                        \
    if ((v = flag_value(argc, argv, &i, name, &missing)) != NULL) {                                \
        var = v;                                                                                   \
        continue;                                                                                  \
    }                                                                                              \
    if (missing)                                                                                   \
        return usage_error(usage_generate, "%s needs a value", name);
        STR_FLAG("--cert", cert_path)
        STR_FLAG("--key", key_path)
        STR_FLAG("--cn", spec.cn)
        STR_FLAG("--ca-cert", ca_cert_path)
        STR_FLAG("--ca-key", ca_key_path)
        STR_FLAG("--k8s-secret", secret)
        STR_FLAG("--namespace", ns)
#undef STR_FLAG
        if ((v = flag_value(argc, argv, &i, "--days", &missing)) != NULL) {
            char *end;
            errno = 0;
            long d = strtol(v, &end, 10);
            if (errno || *end || end == v || d < 1 || d > 36500)
                return usage_error(usage_generate, "--days \"%s\": expected 1..36500", v);
            spec.days = (int)d;
            continue;
        }
        if ((v = flag_value(argc, argv, &i, "--key-type", &missing)) != NULL) {
            if (certs_parse_key_type(v, &spec.key_type) < 0)
                return usage_error(usage_generate,
                                   "--key-type \"%s\": expected ecdsa-p256, rsa-2048 or rsa-4096",
                                   v);
            continue;
        }
        if ((v = flag_value(argc, argv, &i, "--usage", &missing)) != NULL) {
            if (certs_parse_usage(v, &spec.usage) < 0)
                return usage_error(usage_generate, "--usage \"%s\": expected client, server or ca",
                                   v);
            continue;
        }
        if ((v = flag_value(argc, argv, &i, "--san", &missing)) != NULL) {
            if (n_sans == MAX_SANS)
                return usage_error(usage_generate, "too many --san (limit %d)", MAX_SANS);
            sans[n_sans++] = v;
            continue;
        }
        if (missing)
            return usage_error(usage_generate, "%s needs a value", argv[i]);
        return usage_error(usage_generate, "unknown argument \"%s\"", argv[i]);
    }
    if (!secret && (!cert_path || !key_path))
        return usage_error(usage_generate, "%s", "--cert and --key are required");
    if (!cert_path != !key_path)
        return usage_error(usage_generate, "%s", "--cert and --key go together");
    if (!ca_cert_path != !ca_key_path)
        return usage_error(usage_generate, "%s", "--ca-cert and --ca-key go together");
    if (ns && !secret)
        return usage_error(usage_generate, "%s", "--namespace needs --k8s-secret");
    if (secret && !dns_label_ok(secret, 253, true))
        return usage_error(usage_generate,
                           "--k8s-secret \"%s\": not a valid Secret name (lower-case DNS name)",
                           secret);
    if (ns && !dns_label_ok(ns, 63, false))
        return usage_error(usage_generate, "--namespace \"%s\": not a valid namespace name", ns);
    if (cert_path && key_path && !strcmp(cert_path, key_path))
        return usage_error(usage_generate, "%s", "--cert and --key must be different files");
    if (!force) {
        if (cert_path && file_exists(cert_path)) {
            fprintf(stderr, "tether certs: --cert %s exists; use --force to replace it\n",
                    cert_path);
            return 1;
        }
        if (key_path && file_exists(key_path)) {
            fprintf(stderr, "tether certs: --key %s exists; use --force to replace it\n", key_path);
            return 1;
        }
    }
    spec.sans = sans;
    spec.n_sans = n_sans;

    char *ca_cert = NULL, *ca_key = NULL, *cert = NULL, *key = NULL, *err = NULL;
    size_t ca_cert_len = 0, ca_key_len = 0;
    int rc = 1;
    if (ca_cert_path) {
        if (read_input("--ca-cert", ca_cert_path, false, &ca_cert, &ca_cert_len) < 0 ||
            read_input("--ca-key", ca_key_path, true, &ca_key, &ca_key_len) < 0)
            goto out;
        if (ca_cert_len == 0 || ca_key_len == 0) {
            fprintf(stderr, "tether certs: %s %s is empty\n",
                    ca_cert_len == 0 ? "--ca-cert" : "--ca-key",
                    ca_cert_len == 0 ? ca_cert_path : ca_key_path);
            goto out;
        }
        spec.ca_cert_pem = ca_cert;
        spec.ca_cert_len = ca_cert_len;
        spec.ca_key_pem = ca_key;
        spec.ca_key_len = ca_key_len;
    }
    int r = certs_generate(&spec, &cert, &key, &err);
    if (r < 0) {
        fprintf(stderr, "tether certs: %s\n", err ? err : strerror(-r));
        goto out;
    }
    if (cert_path) {
        r = certs_write_pair(cert_path, cert, key_path, key);
        if (r < 0) {
            fprintf(stderr, "tether certs: writing %s / %s: %s\n", cert_path, key_path,
                    strerror(-r));
            goto out;
        }
    }
    if (secret) {
        rc = print_secret(secret, ns, cert, key);
    } else {
        rc = 0;
    }
    if (rc == 0) {
        STACK_OF(X509) *chain = NULL;
        CertsInfo info;
        if (certs_load_chain(cert, strlen(cert), &chain, NULL) == 0 &&
            certs_info_init(&info, sk_X509_value(chain, 0)) == 0) {
            char na[32];
            certs_format_time(info.not_after, na);
            if (cert_path)
                fprintf(stderr, "wrote %s and %s (key mode 0600)\n", cert_path, key_path);
            fprintf(stderr, "subject %s, valid until %s\nSHA-256 %s\n", info.subject, na,
                    info.sha256);
            certs_info_deinit(&info);
        }
        sk_X509_pop_free(chain, X509_free);
    }
out:
    free(err);
    free(cert);
    certs_secret_free(key);
    free(ca_cert);
    certs_secret_free(ca_key);
    return rc;
}

static json_t *info_json(const CertsInfo *in, long long now)
{
    char nb[32], na[32];
    certs_format_time(in->not_before, nb);
    certs_format_time(in->not_after, na);
    json_t *sans = json_array();
    for (size_t i = 0; sans && i < in->n_sans; i++)
        json_array_append_new(sans, json_string(in->sans[i]));
    return json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:I, s:b, s:b, s:s, s:i, s:s?, s:s, s:b, "
                     "s:b}",
                     "subject", in->subject, "issuer", in->issuer, "serial", in->serial, "sans",
                     sans ? sans : json_array(), "not_before", nb, "not_after", na,
                     "expires_in_seconds", (json_int_t)(in->not_after - now), "expired",
                     in->not_after<now, "not_yet_valid", in->not_before> now, "key_type",
                     in->key_type, "key_bits", in->key_bits, "curve",
                     in->curve[0] ? in->curve : NULL, "sha256", in->sha256, "is_ca", in->is_ca,
                     "self_signed", in->self_signed);
}

static void info_text(const CertsInfo *in, long long now, int idx, int total)
{
    char nb[32], na[32];
    certs_format_time(in->not_before, nb);
    certs_format_time(in->not_after, na);
    if (total > 1)
        printf("Certificate %d of %d\n", idx, total);
    printf("Subject:     %s\n", in->subject);
    printf("Issuer:      %s%s\n", in->issuer, in->self_signed ? " (self-signed)" : "");
    printf("Serial:      %s\n", in->serial);
    printf("SANs:        ");
    for (size_t i = 0; i < in->n_sans; i++)
        printf("%s%s", i ? ", " : "", in->sans[i]);
    printf("%s\n", in->n_sans ? "" : "(none)");
    printf("Not before:  %s%s\n", nb, in->not_before > now ? " (not yet valid)" : "");
    long long left = in->not_after - now;
    if (left < 0)
        printf("Not after:   %s (EXPIRED %lld days ago)\n", na, (-left) / 86400);
    else
        printf("Not after:   %s (expires in %lld days)\n", na, left / 86400);
    if (in->curve[0])
        printf("Key:         %s %s (%d bits)\n", in->key_type, in->curve, in->key_bits);
    else
        printf("Key:         %s %d bits\n", in->key_type, in->key_bits);
    printf("CA:          %s\n", in->is_ca ? "yes" : "no");
    printf("SHA-256:     %s\n", in->sha256);
}

static int cmd_inspect(int argc, char **argv)
{
    const char *file = NULL, *key_path = NULL, *output = "text";
    for (int i = 1; i < argc; i++) {
        bool missing = false;
        const char *v;
        if (is_help(argv[i])) {
            fputs(usage_inspect, stdout);
            return 0;
        }
        if ((v = flag_value(argc, argv, &i, "--key", &missing)) != NULL) {
            key_path = v;
            continue;
        }
        if (!missing && (v = flag_value(argc, argv, &i, "--output", &missing)) != NULL) {
            output = v;
            continue;
        }
        if (!missing && (v = flag_value(argc, argv, &i, "-o", &missing)) != NULL) {
            output = v;
            continue;
        }
        if (missing)
            return usage_error(usage_inspect, "%s needs a value", argv[i]);
        if (argv[i][0] == '-' && argv[i][1] != 0) /* "-" is stdin */
            return usage_error(usage_inspect, "unknown flag \"%s\"", argv[i]);
        if (file)
            return usage_error(usage_inspect, "only one FILE, got also \"%s\"", argv[i]);
        file = argv[i];
    }
    if (!file)
        return usage_error(usage_inspect, "%s", "FILE is required");
    bool json = !strcmp(output, "json");
    if (!json && strcmp(output, "text"))
        return usage_error(usage_inspect, "-o \"%s\": expected text or json", output);

    char *data = NULL, *keydata = NULL, *err = NULL;
    size_t len = 0, klen = 0;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    json_t *out = NULL;
    int rc = 1;
    if (read_input(NULL, file, false, &data, &len) < 0)
        goto done;
    if (certs_load_chain(data, len, &chain, &err) < 0) {
        fprintf(stderr, "tether certs: %s: %s\n", file, err ? err : "invalid");
        goto done;
    }
    if (key_path) {
        if (read_input("--key", key_path, true, &keydata, &klen) < 0)
            goto done;
        if (certs_load_key(keydata, klen, &key, &err) < 0) {
            fprintf(stderr, "tether certs: --key %s: %s\n", key_path, err ? err : "invalid");
            goto done;
        }
    }
    long long now = (long long)time(NULL);
    int n = sk_X509_num(chain);
    json_t *arr = json ? json_array() : NULL;
    for (int i = 0; i < n; i++) {
        CertsInfo info;
        if (certs_info_init(&info, sk_X509_value(chain, i)) < 0) {
            fputs("tether certs: out of memory\n", stderr);
            json_decref(arr);
            goto done;
        }
        if (json)
            json_array_append_new(arr, info_json(&info, now));
        else {
            if (i)
                putchar('\n');
            info_text(&info, now, i + 1, n);
        }
        certs_info_deinit(&info);
    }
    bool matches = key ? certs_key_matches(sk_X509_value(chain, 0), key) : false;
    if (json) {
        out = json_pack("{s:s, s:o}", "file", file, "certificates", arr ? arr : json_array());
        if (out && key)
            json_object_set_new(out, "key_matches", json_boolean(matches));
        if (!out || json_dumpf(out, stdout, JSON_INDENT(2)) < 0) {
            fputs("tether certs: cannot write JSON\n", stderr);
            goto done;
        }
        putchar('\n');
    } else if (key) {
        printf("\nKey %s:   %s\n", key_path,
               matches ? "matches the certificate" : "does NOT match the certificate");
    }
    if (key && !matches)
        fprintf(stderr, "tether certs: --key %s does not match %s\n", key_path, file);
    rc = key && !matches ? 1 : 0;
done:
    json_decref(out);
    free(err);
    free(data);
    certs_secret_free(keydata);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

int certs_main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_top, stderr);
        return 2;
    }
    if (is_help(argv[1]) || !strcmp(argv[1], "help")) {
        fputs(usage_top, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "generate"))
        return cmd_generate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "inspect"))
        return cmd_inspect(argc - 1, argv + 1);
    fprintf(stderr, "tether certs: unknown command \"%s\"\n\n%s", argv[1], usage_top);
    return 2;
}
