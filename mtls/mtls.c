/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mtls: client certificate, key and CA bundle for libcurl, validated at load and reloaded when
 * their files change. Files are watched through their parent folders (so Kubernetes' atomic swap
 * of a Secret volume's "..data" symlink is seen) plus a periodic re-read; each candidate is read
 * whole, hashed, validated and swapped in only if it is good, so a half-written or wrong file
 * never replaces working material. Key bytes live in certs_secret_alloc() memory.
 */
#include "mtls.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509_vfy.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certs.h"
#include "log.h"
#include "util.h"

#define MOD "mtls"
#define DEFAULT_INTERVAL_MS 10000
#define DEBOUNCE_MS 200
#define EXPIRY_WARN_S (30LL * 86400)
#define EXPIRY_WARN_EVERY_MS (24ULL * 3600 * 1000)
#define MAX_DIRS 3

typedef struct Material {
    char *cert; /* PEM chain, malloc'd; NULL when no client certificate */
    size_t cert_len;
    char *key; /* PEM, secret memory */
    size_t key_len;
    char *ca; /* PEM bundle, malloc'd; NULL: system roots */
    size_t ca_len;
    long long not_before;
    long long not_after;
    char subject[256];
    char sha256[96];
    unsigned char digest[32]; /* of the raw inputs, to notice changes */
} Material;

typedef struct WatchDir {
    uv_fs_event_t ev;
    Mtls *m;
    char *path;
    bool started;
} WatchDir;

struct Mtls {
    uv_loop_t *loop;
    char *prefix;
    char *ca_flag;
    char *server_name;
    char *cert_file, *key_file, *ca_file;
    char *cert_val, *ca_val; /* malloc'd copies */
    char *key_val;           /* secret memory */
    bool skip_verify;
    unsigned interval_ms;

    Material *cur;
    unsigned generation;
    unsigned long long reloads, rejects;
    unsigned char bad_digest[32];
    bool have_bad;
    char *last_err; /* last rejection logged */
    uint64_t expiry_warned_ms;
    bool expiry_warned;
    bool early_warned;

    bool handles; /* timers initialised (a loop was given) */
    uv_timer_t periodic;
    uv_timer_t debounce;
    WatchDir dirs[MAX_DIRS];
    size_t n_dirs;
    int closing;
    void (*done)(void *ud);
    void *done_ud;
};

/* ---- material ---- */

static void material_free(Material *mat)
{
    if (!mat)
        return;
    free(mat->cert);
    certs_secret_free(mat->key);
    free(mat->ca);
    free(mat);
}

static char *flag_name(const Mtls *m, const char *what, bool file)
{
    return util_strdup_printf("--%s-%s%s", m->prefix, what, file ? "-file" : "");
}

static char *ca_flag_name(const Mtls *m, bool file)
{
    return util_strdup_printf("--%s%s", m->ca_flag, file ? "-file" : "");
}

/* Read a file input, or copy a value input; *ret is NULL when neither is set. */
static int read_source(const char *flag, const char *file, const char *val, bool secret, char **ret,
                       size_t *ret_len, char **ret_err)
{
    *ret = NULL;
    *ret_len = 0;
    if (file) {
        int r = certs_read_file(file, secret, ret, ret_len);
        if (r == -EISDIR)
            *ret_err = util_strdup_printf("%s %s: is a directory, expected a PEM file", flag, file);
        else if (r == -EFBIG)
            *ret_err = util_strdup_printf("%s %s: larger than %d bytes", flag, file, CERTS_MAX_PEM);
        else if (r == -EINVAL)
            *ret_err = util_strdup_printf("%s %s: not a regular file", flag, file);
        else if (r < 0)
            *ret_err = util_strdup_printf("%s %s: %s", flag, file, strerror(-r));
        else if (*ret_len == 0)
            *ret_err = util_strdup_printf("%s %s: the file is empty", flag, file);
        else
            return 0;
        if (r >= 0) {
            if (secret)
                certs_secret_free(*ret);
            else
                free(*ret);
            *ret = NULL;
            r = -EINVAL;
        }
        return r;
    }
    if (val) {
        size_t n = strlen(val);
        if (n == 0) {
            *ret_err = util_strdup_printf("%s: the value is empty", flag);
            return -EINVAL;
        }
        *ret = secret ? certs_secret_dup(val, n) : strdup(val);
        if (!*ret)
            return -ENOMEM;
        *ret_len = n;
    }
    return 0;
}

/*
 * read_inputs() - read the raw bytes of every configured input into a new Material and hash
 * them; nothing is parsed yet, so an unchanged set of files costs a read and a hash.
 */
static int read_inputs(Mtls *m, Material **ret, char **ret_err)
{
    Material *mat = calloc(1, sizeof(*mat));
    char *flag = NULL;
    int r = -ENOMEM;
    if (!mat)
        return -ENOMEM;
    if (!(flag = flag_name(m, "cert", m->cert_file != NULL)))
        goto fail;
    r = read_source(flag, m->cert_file, m->cert_val, false, &mat->cert, &mat->cert_len, ret_err);
    if (r < 0)
        goto fail;
    free(flag);
    if (!(flag = flag_name(m, "key", m->key_file != NULL))) {
        r = -ENOMEM;
        goto fail;
    }
    r = read_source(flag, m->key_file, m->key_val, true, &mat->key, &mat->key_len, ret_err);
    if (r < 0)
        goto fail;
    free(flag);
    if (!(flag = ca_flag_name(m, m->ca_file != NULL))) {
        r = -ENOMEM;
        goto fail;
    }
    r = read_source(flag, m->ca_file, m->ca_val, false, &mat->ca, &mat->ca_len, ret_err);
    if (r < 0)
        goto fail;
    free(flag);

    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int dl = 0;
    /* Lengths go in too, so moving bytes between inputs changes the digest. */
    size_t lens[3] = {mat->cert_len, mat->key_len, mat->ca_len};
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(md, lens, sizeof(lens)) ||
        (mat->cert && !EVP_DigestUpdate(md, mat->cert, mat->cert_len)) ||
        (mat->key && !EVP_DigestUpdate(md, mat->key, mat->key_len)) ||
        (mat->ca && !EVP_DigestUpdate(md, mat->ca, mat->ca_len)) ||
        !EVP_DigestFinal_ex(md, mat->digest, &dl)) {
        EVP_MD_CTX_free(md);
        material_free(mat);
        return -ENOMEM;
    }
    EVP_MD_CTX_free(md);
    *ret = mat;
    return 0;
fail:
    free(flag);
    material_free(mat);
    return r;
}

/* validate() - parse and check @mat: chain, key, key match, expiry, CA bundle. */
static int validate(Mtls *m, Material *mat, char **ret_err)
{
    STACK_OF(X509) *chain = NULL, *ca = NULL;
    EVP_PKEY *key = NULL;
    char *err = NULL, *cflag = NULL, *kflag = NULL, *aflag = NULL;
    int r = -ENOMEM;

    cflag = flag_name(m, "cert", m->cert_file != NULL);
    kflag = flag_name(m, "key", m->key_file != NULL);
    aflag = ca_flag_name(m, m->ca_file != NULL);
    if (!cflag || !kflag || !aflag)
        goto out;
    const char *cwhere = m->cert_file ? m->cert_file : "(value)";
    const char *kwhere = m->key_file ? m->key_file : "(value)";
    const char *awhere = m->ca_file ? m->ca_file : "(value)";

    r = -EINVAL;
    if (mat->cert && !mat->key) {
        *ret_err = util_strdup_printf("%s is set but --%s-key[-file] is not", cflag, m->prefix);
        goto out;
    }
    if (mat->key && !mat->cert) {
        *ret_err = util_strdup_printf("%s is set but --%s-cert[-file] is not", kflag, m->prefix);
        goto out;
    }
    if (mat->cert) {
        if ((r = certs_load_chain(mat->cert, mat->cert_len, &chain, &err)) < 0) {
            *ret_err = util_strdup_printf("%s %s: %s", cflag, cwhere, err ? err : "invalid");
            goto out;
        }
        free(err);
        err = NULL;
        if ((r = certs_load_key(mat->key, mat->key_len, &key, &err)) < 0) {
            *ret_err = util_strdup_printf("%s %s: %s", kflag, kwhere, err ? err : "invalid");
            goto out;
        }
        X509 *leaf = sk_X509_value(chain, 0);
        if (!certs_key_matches(leaf, key)) {
            r = -EINVAL;
            *ret_err = util_strdup_printf("%s %s: the key does not match the certificate of %s %s",
                                          kflag, kwhere, cflag, cwhere);
            goto out;
        }
        mat->not_before = certs_not_before(leaf);
        mat->not_after = certs_not_after(leaf);
        long long now = (long long)time(NULL);
        if (mat->not_after <= now) {
            char t[32];
            certs_format_time(mat->not_after, t);
            r = -EINVAL;
            *ret_err = util_strdup_printf("%s %s: the certificate expired at %s", cflag, cwhere, t);
            goto out;
        }
        CertsInfo info;
        if (certs_info_init(&info, leaf) == 0) {
            snprintf(mat->subject, sizeof(mat->subject), "%s", info.subject);
            snprintf(mat->sha256, sizeof(mat->sha256), "%s", info.sha256);
            certs_info_deinit(&info);
        }
    }
    if (mat->ca) {
        if ((r = certs_load_chain(mat->ca, mat->ca_len, &ca, &err)) < 0) {
            *ret_err = util_strdup_printf("%s %s: %s", aflag, awhere, err ? err : "invalid");
            goto out;
        }
    }
    r = 0;
out:
    free(err);
    free(cflag);
    free(kflag);
    free(aflag);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(ca, X509_free);
    EVP_PKEY_free(key);
    return r;
}

static void check_expiry(Mtls *m)
{
    const Material *mat = m->cur;
    if (!mat || !mat->cert)
        return;
    long long now_s = (long long)time(NULL);
    long long left = mat->not_after - now_s;
    if (mat->not_before > now_s + 60 && !m->early_warned) {
        /* Servers will refuse it until then; usually a clock skew between machines. */
        char t[32];
        certs_format_time(mat->not_before, t);
        m->early_warned = true;
        log_event(LOG_WARN, MOD, "client certificate is not valid yet", "{s:s, s:s, s:s}", "flags",
                  m->prefix, "not_before", t, "subject", mat->subject);
    }
    if (left > EXPIRY_WARN_S)
        return;
    uint64_t now = util_now_ms();
    if (m->expiry_warned && now - m->expiry_warned_ms < EXPIRY_WARN_EVERY_MS)
        return;
    m->expiry_warned = true;
    m->expiry_warned_ms = now;
    char t[32];
    certs_format_time(mat->not_after, t);
    char *flag = flag_name(m, "cert", m->cert_file != NULL);
    if (left <= 0)
        log_event(LOG_ERROR, MOD, "client certificate has expired; rotate it", "{s:s?, s:s, s:s}",
                  "flag", flag, "not_after", t, "subject", mat->subject);
    else
        log_event(LOG_WARN, MOD, "client certificate expires in less than 30 days; rotate it",
                  "{s:s?, s:s, s:I, s:s}", "flag", flag, "not_after", t, "days_left",
                  (json_int_t)(left / 86400), "subject", mat->subject);
    free(flag);
}

/* ---- reload ---- */

static void reload(Mtls *m, const char *why)
{
    Material *mat = NULL;
    char *err = NULL;
    int r = read_inputs(m, &mat, &err);
    if (r == 0 && m->cur && !memcmp(mat->digest, m->cur->digest, sizeof(mat->digest))) {
        /* Back to (or still) the material in use: forget earlier rejections. */
        m->have_bad = false;
        free(m->last_err);
        m->last_err = NULL;
        material_free(mat);
        check_expiry(m);
        return;
    }
    if (r == 0 && m->have_bad && !memcmp(mat->digest, m->bad_digest, sizeof(mat->digest))) {
        material_free(mat); /* already rejected and logged */
        return;
    }
    if (r == 0)
        r = validate(m, mat, &err);
    if (r < 0) {
        if (mat) {
            memcpy(m->bad_digest, mat->digest, sizeof(m->bad_digest));
            m->have_bad = true;
        }
        /* Log each distinct problem once, not at every periodic check. */
        const char *msg = err ? err : strerror(-r);
        if (!m->last_err || strcmp(m->last_err, msg)) {
            m->rejects++;
            log_event(LOG_WARN, MOD, "new TLS material rejected, keeping the previous one",
                      "{s:s, s:s, s:s, s:i}", "flags", m->prefix, "trigger", why, "err", msg,
                      "generation", (int)m->generation);
            free(m->last_err);
            m->last_err = strdup(msg);
        }
        free(err);
        material_free(mat);
        return;
    }
    material_free(m->cur);
    m->cur = mat;
    m->have_bad = false;
    free(m->last_err);
    m->last_err = NULL;
    m->generation++;
    m->reloads++;
    m->expiry_warned = false;
    m->early_warned = false;
    char t[32] = "";
    if (mat->cert)
        certs_format_time(mat->not_after, t);
    log_event(LOG_INFO, MOD, "TLS material reloaded", "{s:s, s:s, s:i, s:s, s:s, s:s}", "flags",
              m->prefix, "trigger", why, "generation", (int)m->generation, "subject", mat->subject,
              "sha256", mat->sha256, "not_after", t);
    check_expiry(m);
}

static void on_periodic(uv_timer_t *t)
{
    reload(t->data, "periodic");
}

static void on_debounce(uv_timer_t *t)
{
    reload(t->data, "fs-event");
}

static void on_fs_event(uv_fs_event_t *ev, const char *filename, int events, int status)
{
    WatchDir *w = ev->data;
    Mtls *m = w->m;
    (void)filename;
    (void)events;
    if (m->closing)
        return;
    if (status < 0) {
        log_event(LOG_WARN, MOD, "watching a folder failed; relying on the periodic check",
                  "{s:s, s:s}", "path", w->path, "err", uv_strerror(status));
        return;
    }
    /* Writers touch a file several times (truncate, write, rename): wait for them to settle. */
    (void)uv_timer_start(&m->debounce, on_debounce, DEBOUNCE_MS, 0);
}

/* ---- public ---- */

void mtls_check(Mtls *m)
{
    reload(m, "request");
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static void mtls_free_now(Mtls *m)
{
    material_free(m->cur);
    free(m->last_err);
    free(m->prefix);
    free(m->ca_flag);
    free(m->server_name);
    free(m->cert_file);
    free(m->key_file);
    free(m->ca_file);
    free(m->cert_val);
    free(m->ca_val);
    certs_secret_free(m->key_val);
    for (size_t i = 0; i < m->n_dirs; i++)
        free(m->dirs[i].path);
    free(m);
}

static int dup_opt(const char *s, char **ret)
{
    *ret = NULL;
    if (!s)
        return 0;
    *ret = strdup(s);
    return *ret ? 0 : -ENOMEM;
}

static int start_watch(Mtls *m, const char *file)
{
    if (!file)
        return 0;
    char *dir = dir_of(file);
    if (!dir)
        return -ENOMEM;
    for (size_t i = 0; i < m->n_dirs; i++) {
        if (!strcmp(m->dirs[i].path, dir)) {
            free(dir);
            return 0;
        }
    }
    WatchDir *w = &m->dirs[m->n_dirs++];
    w->path = dir;
    w->m = m;
    int r = uv_fs_event_init(m->loop, &w->ev);
    if (r < 0)
        return r;
    w->ev.data = w;
    w->started = true; /* initialised: must be closed */
    r = uv_fs_event_start(&w->ev, on_fs_event, dir, 0);
    if (r < 0)
        log_event(LOG_WARN, MOD, "cannot watch folder; relying on the periodic check", "{s:s, s:s}",
                  "path", dir, "err", uv_strerror(r));
    return 0;
}

int mtls_new(uv_loop_t *loop, const MtlsConfig *cfg, Mtls **ret, char **ret_err)
{
    Mtls *m = calloc(1, sizeof(*m));
    char *err = NULL;
    int r = -ENOMEM;
    if (ret_err)
        *ret_err = NULL;
    if (!m)
        return -ENOMEM;
    m->loop = loop;
    m->skip_verify = cfg->skip_verify;
    m->interval_ms = cfg->check_interval_ms ? cfg->check_interval_ms : DEFAULT_INTERVAL_MS;
    if (dup_opt(cfg->flag_prefix ? cfg->flag_prefix : "tls-client", &m->prefix) < 0 ||
        dup_opt(cfg->ca_flag ? cfg->ca_flag : "ca-cert", &m->ca_flag) < 0 ||
        dup_opt(cfg->server_name && *cfg->server_name ? cfg->server_name : NULL, &m->server_name) <
            0 ||
        dup_opt(cfg->cert_file, &m->cert_file) < 0 || dup_opt(cfg->key_file, &m->key_file) < 0 ||
        dup_opt(cfg->ca_file, &m->ca_file) < 0 || dup_opt(cfg->cert, &m->cert_val) < 0 ||
        dup_opt(cfg->ca, &m->ca_val) < 0)
        goto fail;
    if (cfg->key && !(m->key_val = certs_secret_dup(cfg->key, strlen(cfg->key))))
        goto fail;

    r = -EINVAL;
    if (cfg->cert && cfg->cert_file) {
        err = util_strdup_printf("--%s-cert and --%s-cert-file are mutually exclusive", m->prefix,
                                 m->prefix);
        goto fail;
    }
    if (cfg->key && cfg->key_file) {
        err = util_strdup_printf("--%s-key and --%s-key-file are mutually exclusive", m->prefix,
                                 m->prefix);
        goto fail;
    }
    if (cfg->ca && cfg->ca_file) {
        err =
            util_strdup_printf("--%s and --%s-file are mutually exclusive", m->ca_flag, m->ca_flag);
        goto fail;
    }
    bool files = m->cert_file || m->key_file || m->ca_file;
    if (files && !loop) {
        err = util_strdup_printf("--%s: watching files needs an event loop", m->prefix);
        goto fail;
    }

    Material *mat = NULL;
    r = read_inputs(m, &mat, &err);
    if (r == 0)
        r = validate(m, mat, &err);
    if (r < 0) {
        material_free(mat);
        goto fail;
    }
    m->cur = mat;
    m->generation = 1;

    if (m->skip_verify)
        log_event(LOG_WARN, MOD,
                  "TLS server verification is DISABLED: anyone on the network path can "
                  "impersonate the server and read the traffic",
                  "{s:s}", "flags", m->prefix);
    if (mat->cert)
        check_expiry(m);

    if (loop) {
        if ((r = uv_timer_init(loop, &m->periodic)) < 0)
            goto fail;
        m->periodic.data = m;
        if ((r = uv_timer_init(loop, &m->debounce)) < 0) {
            /* The first timer is live: close it and hand the rest to the close path. */
            mtls_close(m, NULL, NULL);
            m = NULL;
            goto fail;
        }
        m->handles = true;
        m->periodic.data = m;
        m->debounce.data = m;
        if (files) {
            if ((r = start_watch(m, m->cert_file)) < 0 || (r = start_watch(m, m->key_file)) < 0 ||
                (r = start_watch(m, m->ca_file)) < 0 ||
                (r = uv_timer_start(&m->periodic, on_periodic, m->interval_ms, m->interval_ms)) <
                    0) {
                mtls_close(m, NULL, NULL);
                m = NULL;
                goto fail;
            }
        }
    }
    *ret = m;
    return 0;
fail:
    if (m)
        mtls_free_now(m);
    if (ret_err)
        *ret_err = err ? err : (r == -ENOMEM ? strdup("out of memory") : NULL);
    else
        free(err);
    return r;
}

/*
 * With --…-server-name the peer certificate is checked against that name instead of the URL's
 * host: OpenSSL checks the name during chain verification, and curl's own host check is off.
 */
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *ud)
{
    (void)easy;
    const char *name = ud;
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ssl_ctx);
    if (!param || !X509_VERIFY_PARAM_set1_host(param, name, 0))
        return CURLE_SSL_CERTPROBLEM;
    return CURLE_OK;
}

int mtls_apply(Mtls *m, CURL *easy)
{
    const Material *mat = m->cur;
    CURLcode c = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (c == CURLE_OK)                                                                         \
            c = curl_easy_setopt(easy, opt, val);                                                  \
    } while (0)
    /* libcurl copies the blobs, so a later swap cannot pull them from under a transfer. */
    if (mat->cert) {
        struct curl_blob cert = {mat->cert, mat->cert_len, CURL_BLOB_COPY};
        struct curl_blob key = {mat->key, mat->key_len, CURL_BLOB_COPY};
        SET(CURLOPT_SSLCERT_BLOB, &cert);
        SET(CURLOPT_SSLCERTTYPE, "PEM");
        SET(CURLOPT_SSLKEY_BLOB, &key);
        SET(CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (mat->ca) {
        struct curl_blob ca = {mat->ca, mat->ca_len, CURL_BLOB_COPY};
        SET(CURLOPT_CAINFO_BLOB, &ca);
        /* Trust only the given bundle, not the system roots as well. */
        SET(CURLOPT_CAINFO, (char *)NULL);
        SET(CURLOPT_CAPATH, (char *)NULL);
    }
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SET(CURLOPT_SSL_VERIFYPEER, m->skip_verify ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, (m->skip_verify || m->server_name) ? 0L : 2L);
    if (m->server_name && !m->skip_verify) {
        SET(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        SET(CURLOPT_SSL_CTX_DATA, m->server_name);
    }
#undef SET
    if (c != CURLE_OK) {
        log_event(LOG_ERROR, MOD, "cannot set TLS options", "{s:s, s:s}", "flags", m->prefix, "err",
                  curl_easy_strerror(c));
        return c == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
    }
    return 0;
}

bool mtls_has_client_cert(const Mtls *m)
{
    return m && m->cur && m->cur->cert;
}

long long mtls_cert_expiry(const Mtls *m)
{
    return mtls_has_client_cert(m) ? m->cur->not_after : 0;
}

unsigned mtls_generation(const Mtls *m)
{
    return m->generation;
}

const char *mtls_cert_sha256(const Mtls *m)
{
    return mtls_has_client_cert(m) ? m->cur->sha256 : NULL;
}

static void put_label(Buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            (void)buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            (void)buf_puts(b, "\\n");
        else
            (void)buf_putc(b, *s);
    }
}

int mtls_metrics(Mtls *const *list, size_t n, Buf *out)
{
    size_t start = out->len;
    (void)buf_puts(out, "# HELP tether_tls_client_cert_expiry_seconds Seconds until the TLS "
                        "client certificate expires (negative once expired).\n"
                        "# TYPE tether_tls_client_cert_expiry_seconds gauge\n");
    long long now = (long long)time(NULL);
    for (size_t i = 0; i < n; i++) {
        if (!mtls_has_client_cert(list[i]))
            continue;
        (void)buf_puts(out, "tether_tls_client_cert_expiry_seconds{flag=\"");
        put_label(out, list[i]->prefix);
        (void)buf_printf(out, "-cert\"} %lld\n", list[i]->cur->not_after - now);
    }
    (void)buf_puts(out, "# HELP tether_tls_material_reloads_total TLS material swapped in after "
                        "its files changed.\n"
                        "# TYPE tether_tls_material_reloads_total counter\n");
    for (size_t i = 0; i < n; i++) {
        (void)buf_puts(out, "tether_tls_material_reloads_total{flag=\"");
        put_label(out, list[i]->prefix);
        (void)buf_printf(out, "\"} %llu\n", list[i]->reloads);
    }
    (void)buf_puts(out, "# HELP tether_tls_material_reload_failures_total Changed TLS material "
                        "that was rejected (the previous material stays in use).\n"
                        "# TYPE tether_tls_material_reload_failures_total counter\n");
    for (size_t i = 0; i < n; i++) {
        (void)buf_puts(out, "tether_tls_material_reload_failures_total{flag=\"");
        put_label(out, list[i]->prefix);
        (void)buf_printf(out, "\"} %llu\n", list[i]->rejects);
    }
    if (!out->data || out->len == start)
        return -ENOMEM;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    Mtls *m = h->data;
    if (--m->closing > 0)
        return;
    void (*done)(void *) = m->done;
    void *ud = m->done_ud;
    mtls_free_now(m);
    if (done)
        done(ud);
}

void mtls_close(Mtls *m, void (*done)(void *ud), void *ud)
{
    if (!m) {
        if (done)
            done(ud);
        return;
    }
    m->done = done;
    m->done_ud = ud;
    if (!m->periodic.loop) {
        /* No handle was ever initialised (no loop given). */
        mtls_free_now(m);
        if (done)
            done(ud);
        return;
    }
    /* One extra count keeps the object alive until every uv_close() below has been issued. */
    m->closing = 1;
    for (size_t i = 0; i < m->n_dirs; i++) {
        if (m->dirs[i].started) {
            m->dirs[i].ev.data = m;
            m->closing++;
            uv_close((uv_handle_t *)&m->dirs[i].ev, on_closed);
        }
    }
    if (m->periodic.loop) {
        m->closing++;
        uv_close((uv_handle_t *)&m->periodic, on_closed);
    }
    if (m->handles) {
        m->closing++;
        uv_close((uv_handle_t *)&m->debounce, on_closed);
    }
    m->closing--;
    if (m->closing == 0) {
        mtls_free_now(m);
        if (done)
            done(ud);
    }
}
