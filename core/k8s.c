/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kubernetes client: credentials (kubeconfig, in-cluster service account, --apiserver-host),
 * the request helper every part uses, and the public k8s_* functions that tie the parts
 * (list/watch, Lease, Events, Ingress status) together. Loop thread only.
 */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "k8s_int.h"
#include "log.h"
#include "manifest.h"

enum {
    MAX_KUBECONFIG = 4 * 1024 * 1024,
    MAX_PEM = 1024 * 1024,
    MAX_TOKEN = 64 * 1024,
};

#define DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct K8sReq {
    K8sReq *next;
    K8sReq *prev;
    K8s *k;
    CURL *easy;
    struct curl_slist *hdrs;
    K8sChunkFn on_chunk;
    K8sRespFn done;
    void *ud;
    size_t max_body;
    bool deferred;
};

const char *k8s__str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static bool fits_int64(const char *s, size_t n)
{
    char t[32];
    if (n >= sizeof(t))
        return false;
    memcpy(t, s, n);
    t[n] = 0;
    errno = 0;
    (void)strtoll(t, NULL, 10);
    return errno != ERANGE;
}

json_t *k8s__json_loadb(const char *buf, size_t len, json_error_t *err)
{
    json_error_t e, *er = err ? err : &e;
    json_t *v = json_loadb(buf, len, 0, er);
    /* jansson says "too big integer" or "too big negative integer" */
    if (v || !strstr(er->text, "too big"))
        return v;
    /* Again, with ".0" after each integer past int64 (outside strings). */
    Buf b = BUF_INIT;
    size_t from = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            i += c == '\\';
            in_str = c != '"';
        } else if (c == '"') {
            in_str = true;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            bool real = false;
            while (j < len && strchr("+-0123456789.eE", buf[j]) && buf[j]) {
                real |= buf[j] == '.' || buf[j] == 'e' || buf[j] == 'E';
                j++;
            }
            if (!real && j - i >= 19 && !fits_int64(buf + i, j - i)) {
                buf_append(&b, buf + from, j - from);
                buf_puts(&b, ".0");
                from = j;
            }
            i = j - 1;
        }
    }
    if (from < len)
        buf_append(&b, buf + from, len - from);
    v = b.data ? json_loadb(b.data, b.len, 0, er) : NULL;
    buf_deinit(&b);
    return v;
}

static int set_err(char **ret_err, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(char **ret_err, int r, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (ret_err) {
        free(*ret_err);
        *ret_err = s;
    } else {
        free(s);
    }
    return r;
}

void k8s__now_micro(char out[40])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%06ldZ", ts.tv_nsec / 1000);
}

void k8s__now_rfc3339(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- credentials ---- */

void k8s__creds_deinit(K8sCreds *c)
{
    free(c->server);
    free(c->ca_pem);
    free(c->token);
    free(c->token_file);
    free(c->cert_pem);
    if (c->key_pem) {
        explicit_bzero(c->key_pem, c->key_len);
        free(c->key_pem);
    }
    free(c->ns);
    free(c->source);
    if (c->token_cached) {
        explicit_bzero(c->token_cached, strlen(c->token_cached));
        free(c->token_cached);
    }
    memset(c, 0, sizeof(*c));
}

/* Resolve @file against the folder of @base (a kubeconfig path). */
static char *resolve_path(const char *base, const char *file)
{
    if (file[0] == '/' || !base)
        return strdup(file);
    char *dup = strdup(base);
    if (!dup)
        return NULL;
    char *r = util_strdup_printf("%s/%s", dirname(dup), file);
    free(dup);
    return r;
}

/* Value of @key_data (base64) or the file named by @key_file; *ret NULL when neither is set. */
static int load_pem(const json_t *o, const char *key_data, const char *key_file, const char *base,
                    const char *what, char **ret, size_t *ret_len, char **ret_err)
{
    const char *d = json_string_value(json_object_get(o, key_data));
    const char *f = json_string_value(json_object_get(o, key_file));
    *ret = NULL;
    *ret_len = 0;
    if (d && *d) {
        size_t n = 0;
        unsigned char *p = util_base64_decode(d, strlen(d), &n);
        if (!p)
            return set_err(ret_err, -EINVAL, "%s: %s.%s is not valid base64", base, what, key_data);
        *ret = (char *)p;
        *ret_len = n;
        return 0;
    }
    if (f && *f) {
        char *path = resolve_path(base, f);
        if (!path)
            return -ENOMEM;
        int r = util_read_file(path, MAX_PEM, ret, ret_len);
        if (r < 0) {
            set_err(ret_err, r, "%s: %s.%s %s: %s", base, what, key_file, path, strerror(-r));
            free(path);
            return r;
        }
        free(path);
    }
    return 0;
}

/* The entry named @name of a kubeconfig list (clusters/users/contexts), its inner object. */
static json_t *named(json_t *root, const char *list, const char *inner, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(root, list), i, e)
    {
        if (strcmp(k8s__str(e, "name"), name) == 0) {
            json_t *v = json_object_get(e, inner);
            return json_is_object(v) ? v : NULL;
        }
    }
    return NULL;
}

int k8s__kubeconfig_parse(const char *data, size_t len, const char *path, K8sCreds *c,
                          char **ret_err)
{
    char err[256] = "";
    json_t *docs = manifest_yaml_to_json(data, len, err, sizeof(err));
    if (!docs)
        return set_err(ret_err, -EINVAL, "kubeconfig %s: %s", path, err);
    int r = 0;
    json_t *root = json_array_get(docs, 0);
    if (!json_is_object(root)) {
        r = set_err(ret_err, -EINVAL, "kubeconfig %s: not a mapping", path);
        goto out;
    }
    const char *ctx_name = k8s__str(root, "current-context");
    if (!*ctx_name) {
        r = set_err(ret_err, -EINVAL, "kubeconfig %s: no current-context", path);
        goto out;
    }
    json_t *ctx = named(root, "contexts", "context", ctx_name);
    if (!ctx) {
        r = set_err(ret_err, -EINVAL, "kubeconfig %s: context \"%s\" not found", path, ctx_name);
        goto out;
    }
    const char *cl_name = k8s__str(ctx, "cluster");
    json_t *cl = named(root, "clusters", "cluster", cl_name);
    if (!cl) {
        r = set_err(ret_err, -EINVAL, "kubeconfig %s: cluster \"%s\" of context \"%s\" not found",
                    path, cl_name, ctx_name);
        goto out;
    }
    const char *server = k8s__str(cl, "server");
    size_t sl = strlen(server);
    while (sl > 0 && server[sl - 1] == '/')
        sl--;
    if (!sl) { /* "" or only slashes */
        r = set_err(ret_err, -EINVAL, "kubeconfig %s: cluster \"%s\" has no server", path, cl_name);
        goto out;
    }
    c->server = strndup(server, sl);
    json_t *insecure = json_object_get(cl, "insecure-skip-tls-verify");
    c->insecure = json_is_true(insecure) ||
                  (json_is_string(insecure) && strcmp(json_string_value(insecure), "true") == 0);
    r = load_pem(cl, "certificate-authority-data", "certificate-authority", path, "cluster",
                 &c->ca_pem, &c->ca_len, ret_err);
    if (r < 0)
        goto out;

    const char *user_name = k8s__str(ctx, "user");
    json_t *user = *user_name ? named(root, "users", "user", user_name) : NULL;
    if (*user_name && !user) {
        r = set_err(ret_err, -EINVAL, "kubeconfig %s: user \"%s\" of context \"%s\" not found",
                    path, user_name, ctx_name);
        goto out;
    }
    if (user) {
        if (json_object_get(user, "exec") || json_object_get(user, "auth-provider")) {
            r = set_err(ret_err, -ENOTSUP,
                        "kubeconfig %s: user \"%s\": exec and auth-provider credentials are not "
                        "supported (use a token, tokenFile or client certificate)",
                        path, user_name);
            goto out;
        }
        const char *tok = k8s__str(user, "token");
        const char *tf = k8s__str(user, "tokenFile");
        if (*tok)
            c->token = strdup(tok);
        else if (*tf)
            c->token_file = resolve_path(path, tf);
        r = load_pem(user, "client-certificate-data", "client-certificate", path, "user",
                     &c->cert_pem, &c->cert_len, ret_err);
        if (r < 0)
            goto out;
        r = load_pem(user, "client-key-data", "client-key", path, "user", &c->key_pem, &c->key_len,
                     ret_err);
        if (r < 0)
            goto out;
        if (!c->cert_pem != !c->key_pem) {
            r = set_err(ret_err, -EINVAL,
                        "kubeconfig %s: user \"%s\": a client certificate needs its key and the "
                        "other way round",
                        path, user_name);
            goto out;
        }
    }
    const char *ns = k8s__str(ctx, "namespace");
    if (*ns)
        c->ns = strdup(ns);
    c->source = util_strdup_printf("kubeconfig %s", path);
    if (!c->server || !c->source || (*ns && !c->ns))
        r = -ENOMEM;
out:
    json_decref(docs);
    return r;
}

static int load_in_cluster(const char *host, const char *port, K8sCreds *c, char **ret_err)
{
    const char *dir = getenv("TETHER_SA_DIR");
    if (!dir || !*dir)
        dir = DEFAULT_SA_DIR;
    bool v6 = strchr(host, ':') != NULL;
    c->server = util_strdup_printf("https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "",
                                   port && *port ? port : "443");
    c->token_file = util_strdup_printf("%s/token", dir);
    c->source = strdup("in-cluster");
    if (!c->server || !c->token_file || !c->source)
        return -ENOMEM;
    char *p = util_strdup_printf("%s/ca.crt", dir);
    if (!p)
        return -ENOMEM;
    int r = util_read_file(p, MAX_PEM, &c->ca_pem, &c->ca_len);
    if (r < 0) {
        set_err(ret_err, r, "in-cluster configuration: %s: %s", p, strerror(-r));
        free(p);
        return r;
    }
    free(p);
    p = util_strdup_printf("%s/namespace", dir);
    if (!p)
        return -ENOMEM;
    char *ns = NULL;
    size_t n = 0;
    if (util_read_file(p, 256, &ns, &n) == 0) {
        while (n > 0 && (ns[n - 1] == '\n' || ns[n - 1] == ' '))
            ns[--n] = '\0';
        c->ns = ns;
    }
    free(p);
    /* A missing token is an error now rather than 401s later. */
    if (!k8s__creds_token(c))
        return set_err(ret_err, -ENOENT, "in-cluster configuration: cannot read token %s",
                       c->token_file);
    return 0;
}

int k8s__creds_load(const K8sConfig *cfg, K8sCreds *c, char **ret_err)
{
    int r = 0;
    const char *kc = cfg->kubeconfig;
    if (!kc || !*kc) {
        const char *env = getenv("KUBECONFIG");
        /* Only the first file of a KUBECONFIG list is used. */
        if (env && *env && !getenv("KUBERNETES_SERVICE_HOST")) {
            static char first[4096];
            snprintf(first, sizeof(first), "%s", env);
            char *colon = strchr(first, ':');
            if (colon)
                *colon = '\0';
            kc = first;
        }
    }
    if (kc && *kc) {
        char *data = NULL;
        size_t len = 0;
        r = util_read_file(kc, MAX_KUBECONFIG, &data, &len);
        if (r < 0)
            return set_err(ret_err, r, "--kubeconfig %s: %s", kc, strerror(-r));
        r = k8s__kubeconfig_parse(data, len, kc, c, ret_err);
        free(data);
    } else if (getenv("KUBERNETES_SERVICE_HOST") && *getenv("KUBERNETES_SERVICE_HOST")) {
        r = load_in_cluster(getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT"), c,
                            ret_err);
    } else if (!cfg->apiserver_host || !*cfg->apiserver_host) {
        return set_err(ret_err, -ENOENT,
                       "no Kubernetes credentials: give --kubeconfig, --apiserver-host, or run in "
                       "a cluster (KUBERNETES_SERVICE_HOST)");
    } else {
        c->source = strdup("apiserver-host");
    }
    if (r < 0)
        return r;
    if (cfg->apiserver_host && *cfg->apiserver_host) {
        const char *h = cfg->apiserver_host;
        size_t n = strlen(h);
        while (n > 0 && h[n - 1] == '/')
            n--;
        free(c->server);
        if (strstr(h, "://"))
            c->server = strndup(h, n);
        else
            c->server = util_strdup_printf("https://%.*s", (int)n, h);
        if (!c->server)
            return -ENOMEM;
    }
    if (strncmp(c->server, "https://", 8) != 0 && strncmp(c->server, "http://", 7) != 0)
        return set_err(ret_err, -EINVAL, "%s: server \"%s\" is not an http(s) URL", c->source,
                       c->server);
    return 0;
}

const char *k8s__creds_token(K8sCreds *c)
{
    if (c->token)
        return c->token;
    if (!c->token_file)
        return NULL;
    uint64_t now = util_now_ms();
    if (c->token_cached && now - c->token_read_ms < K8S_TOKEN_CACHE_MS)
        return c->token_cached;
    char *t = NULL;
    size_t n = 0;
    if (util_read_file(c->token_file, MAX_TOKEN, &t, &n) < 0) {
        /* Keep the last good token: a rotation may be half-way (symlink swap). */
        return c->token_cached;
    }
    while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
        t[--n] = '\0';
    if (n == 0) {
        free(t);
        return c->token_cached;
    }
    if (c->token_cached) {
        explicit_bzero(c->token_cached, strlen(c->token_cached));
        free(c->token_cached);
    }
    c->token_cached = t;
    c->token_read_ms = now;
    return t;
}

/* ---- requests ---- */

static void req_unlink(K8s *k, K8sReq *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        k->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->next = q->prev = NULL;
    k->nreqs--;
}

static void maybe_finish(K8s *k);
static int start_req(K8s *k, K8sReq *q, K8sReq **ret_req);
static void on_defer(uv_timer_t *t);

static void on_http_done(void *ud, CURL *easy, const HttpResult *res)
{
    K8sReq *q = ud;
    K8s *k = q->k;
    (void)easy;
    req_unlink(k, q);
    K8sResp r = {
        .code = res->code,
        .status = res->status,
        .body = res->body ? res->body : "",
        .body_len = res->body ? res->body_len : 0,
        .retry_after_s = res->retry_after_s,
        .error = res->error ? res->error : "",
    };
    if (res->code != CURLE_OK || res->status >= 400)
        k->m_request_errors++;
    if (r.body_len > 0 && !res->truncated)
        r.json = k8s__json_loadb(r.body, r.body_len, NULL);
    if (res->truncated && r.code == CURLE_OK)
        r.code = CURLE_FILESIZE_EXCEEDED;
    k->in_cb++;
    q->done(k, q->ud, &r);
    k->in_cb--;
    json_decref(r.json);
    curl_slist_free_all(q->hdrs);
    free(q);
    maybe_finish(k);
}

static int on_http_chunk(void *ud, CURL *easy, const char *data, size_t len)
{
    K8sReq *q = ud;
    K8s *k = q->k;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    /* libcurl refuses new transfers from inside its callbacks: requests made now wait. */
    k->in_chunk++;
    int r = q->on_chunk(k, q->ud, status, data, len);
    k->in_chunk--;
    return r;
}

int k8s__request(K8s *k, const char *method, const char *path, json_t *body, const char *ctype,
                 long timeout_ms, size_t max_body, K8sChunkFn on_chunk, K8sRespFn done, void *ud,
                 K8sReq **ret_req)
{
    if (k->closing && strcmp(method, "GET") == 0)
        return -ECANCELED;
    K8sReq *q = calloc(1, sizeof(*q));
    CURL *e = curl_easy_init();
    char *url = util_strdup_printf("%s%s", k->creds.server, path);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int r = -ENOMEM;
    if (!q || !e || !url || (body && !text))
        goto fail;
    q->k = k;
    q->on_chunk = on_chunk;
    q->done = done;
    q->ud = ud;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (text) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, text);
    }
    struct curl_slist *h = NULL, *t;
#define ADD_HDR(s)                                                                                 \
    do {                                                                                           \
        t = curl_slist_append(h, (s));                                                             \
        if (!t)                                                                                    \
            goto fail_hdrs;                                                                        \
        h = t;                                                                                     \
    } while (0)
    ADD_HDR("Accept: application/json");
    if (text) {
        char ct[128];
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json");
        ADD_HDR(ct);
    }
    const char *tok = k8s__creds_token(&k->creds);
    if (tok) {
        char *a = util_strdup_printf("Authorization: Bearer %s", tok);
        if (!a)
            goto fail_hdrs;
        t = curl_slist_append(h, a);
        explicit_bzero(a, strlen(a));
        free(a);
        if (!t)
            goto fail_hdrs;
        h = t;
    }
#undef ADD_HDR
    q->hdrs = h;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "tether/" TETHER_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (k->creds.ca_pem) {
        struct curl_blob b = {k->creds.ca_pem, k->creds.ca_len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
    }
    if (k->creds.insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (k->creds.cert_pem && k->creds.key_pem) {
        struct curl_blob c = {k->creds.cert_pem, k->creds.cert_len, CURL_BLOB_COPY};
        struct curl_blob kb = {k->creds.key_pem, k->creds.key_len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &c);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &kb);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    free(url);
    free(text);
    url = text = NULL;
    q->easy = e;
    q->max_body = max_body;
    if (k->in_chunk > 0 && k->defer_open) {
        q->deferred = true;
        if (k->deferred_tail)
            k->deferred_tail->next = q;
        else
            k->deferred = q;
        k->deferred_tail = q;
        k->nreqs++;
        uv_timer_start(&k->defer_timer, on_defer, 0, 0);
        if (ret_req)
            *ret_req = q;
        return 0;
    }
    return start_req(k, q, ret_req);

fail_hdrs:
    curl_slist_free_all(h);
fail:
    if (e)
        curl_easy_cleanup(e);
    free(q);
    free(url);
    free(text);
    return r;
}

static int start_req(K8s *k, K8sReq *q, K8sReq **ret_req)
{
    int r;
    CURL *e = q->easy;
    size_t max_body = q->max_body;
    /* Link first: a synchronous failure path below unlinks again. */
    q->next = k->reqs;
    if (k->reqs)
        k->reqs->prev = q;
    k->reqs = q;
    k->nreqs++;
    k->m_requests++;
    if (q->on_chunk)
        r = http_start_stream(k->http, e, on_http_chunk, on_http_done, q);
    else
        r = http_start(k->http, e, max_body, on_http_done, q);
    if (r < 0) {
        /* http_start cleaned up @e already. */
        req_unlink(k, q);
        curl_slist_free_all(q->hdrs);
        free(q);
        return r;
    }
    if (ret_req)
        *ret_req = q;
    return 0;
}

/* Complete a deferred request that never reached Http. */
static void fail_deferred(K8s *k, K8sReq *q, CURLcode code)
{
    K8sResp r = {.code = code, .body = "", .retry_after_s = -1, .error = "request aborted"};
    k->nreqs--;
    k->in_cb++;
    q->done(k, q->ud, &r);
    k->in_cb--;
    curl_easy_cleanup(q->easy);
    curl_slist_free_all(q->hdrs);
    free(q);
    maybe_finish(k);
}

static void on_defer(uv_timer_t *t)
{
    K8s *k = t->data;
    K8sReq *list = k->deferred;
    k->deferred = k->deferred_tail = NULL;
    while (list) {
        K8sReq *q = list;
        list = q->next;
        q->next = NULL;
        q->deferred = false;
        k->nreqs--; /* start_req counts it again */
        k->m_requests--;
        /* start_req cannot call done on failure: do it here, as promised. */
        K8sRespFn done = q->done;
        void *ud = q->ud;
        if (start_req(k, q, NULL) < 0) {
            K8sResp r = {.code = CURLE_FAILED_INIT,
                         .body = "",
                         .retry_after_s = -1,
                         .error = "request could not start"};
            k->in_cb++;
            done(k, ud, &r);
            k->in_cb--;
            maybe_finish(k);
        }
    }
}

void k8s__cancel(K8s *k, K8sReq *req)
{
    if (!req)
        return;
    if (req->deferred) {
        K8sReq **pp = &k->deferred, *prev = NULL;
        while (*pp && *pp != req) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = req->next;
            if (k->deferred_tail == req)
                k->deferred_tail = prev;
            req->next = NULL;
            fail_deferred(k, req, CURLE_ABORTED_BY_CALLBACK);
        }
        return;
    }
    http_cancel(k->http, req->easy);
}

const char *k8s__resp_err(const K8sResp *r)
{
    static char buf[512];
    if (r->code != CURLE_OK) {
        snprintf(buf, sizeof(buf), "%s%s%s", curl_easy_strerror(r->code), *r->error ? ": " : "",
                 r->error);
        return buf;
    }
    const char *msg = r->json ? k8s__str(r->json, "message") : "";
    snprintf(buf, sizeof(buf), "HTTP %ld%s%s", r->status, *msg ? ": " : "", msg);
    return buf;
}

/* ---- public API ---- */

static K8s *k8s_free(K8s *k)
{
    if (!k)
        return NULL;
    k8s__events_free(k->events);
    k8s__status_free(k->status);
    k8s__creds_deinit(&k->creds);
    if (k->watch_namespaces) {
        for (char **p = k->watch_namespaces; *p; p++)
            free(*p);
        free(k->watch_namespaces);
    }
    free(k->election_id);
    free(k->election_ns);
    free(k->identity);
    free(k->ingress_class);
    free(k->publish_ns);
    free(k->publish_name);
    free(k);
    return NULL;
}

int k8s_new(uv_loop_t *loop, Http *http, const K8sConfig *cfg, const K8sCallbacks *cb, K8s **ret,
            char **ret_err)
{
    K8s *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->loop = loop;
    k->http = http;
    k->cb = *cb;
    int r = k8s__creds_load(cfg, &k->creds, ret_err);
    if (r < 0)
        goto fail;
    r = -ENOMEM;
    if (cfg->watch_namespaces && cfg->watch_namespaces[0]) {
        size_t n = 0;
        while (cfg->watch_namespaces[n])
            n++;
        k->watch_namespaces = calloc(n + 1, sizeof(char *));
        if (!k->watch_namespaces)
            goto fail;
        for (size_t i = 0; i < n; i++)
            if (!(k->watch_namespaces[i] = strdup(cfg->watch_namespaces[i])))
                goto fail;
    }
    k->election_id =
        strdup(cfg->election_id && *cfg->election_id ? cfg->election_id : "5b374a9e.konghq.com");
    const char *ens = cfg->election_namespace;
    if (!ens || !*ens)
        ens = getenv("POD_NAMESPACE");
    if (!ens || !*ens)
        ens = k->creds.ns;
    if (!ens || !*ens)
        ens = "default";
    k->election_ns = strdup(ens);
    if (cfg->identity && *cfg->identity) {
        k->identity = strdup(cfg->identity);
    } else {
        char host[256] = "tether";
        (void)gethostname(host, sizeof(host) - 1);
        k->identity = util_strdup_printf("%s_%d", host, (int)getpid());
    }
    k->ingress_class =
        strdup(cfg->ingress_class && *cfg->ingress_class ? cfg->ingress_class : "kong");
    if (!k->election_id || !k->election_ns || !k->identity || !k->ingress_class)
        goto fail;
    k->leader_election = cfg->leader_election;
    k->update_status = cfg->update_status;
    if (cfg->publish_service && *cfg->publish_service) {
        const char *slash = strchr(cfg->publish_service, '/');
        if (!slash || slash == cfg->publish_service || !slash[1] || strchr(slash + 1, '/')) {
            r = set_err(ret_err, -EINVAL, "--publish-service \"%s\": want NAMESPACE/NAME",
                        cfg->publish_service);
            goto fail;
        }
        k->publish_ns = strndup(cfg->publish_service, (size_t)(slash - cfg->publish_service));
        k->publish_name = strdup(slash + 1);
        if (!k->publish_ns || !k->publish_name)
            goto fail;
    }
    if ((r = k8s__events_new(k, &k->events)) < 0 || (r = k8s__status_new(k, &k->status)) < 0 ||
        (r = k8s__watch_new(k, &k->watch)) < 0 || (r = k8s__lease_new(k, &k->lease)) < 0)
        goto fail;
    log_event(LOG_INFO, "k8s", "kubernetes client configured", "{s:s, s:s, s:b, s:b}", "server",
              k->creds.server, "source", k->creds.source, "client_cert", k->creds.cert_pem != NULL,
              "token", k->creds.token || k->creds.token_file);
    *ret = k;
    return 0;
fail:
    if (r == -ENOMEM && ret_err && !*ret_err)
        set_err(ret_err, r, "out of memory");
    /* The parts were not started: their close steps are synchronous; keep them from freeing. */
    k->close_pending = 1000;
    if (k->watch)
        k8s__watch_close(k->watch);
    if (k->lease)
        k8s__lease_close(k->lease);
    k8s_free(k);
    return r;
}

int k8s_start(K8s *k)
{
    if (k->started)
        return -EALREADY;
    k->started = true;
    uv_timer_init(k->loop, &k->defer_timer);
    k->defer_timer.data = k;
    k->defer_open = true;
    int r = k8s__watch_start(k->watch);
    if (r < 0)
        return r;
    if (k->leader_election)
        return k8s__lease_start(k->lease);
    /* Without election this process is the only writer. */
    k8s__set_leader(k, true);
    return 0;
}

void k8s__set_leader(K8s *k, bool on)
{
    if (k->is_leader == on)
        return;
    k->is_leader = on;
    log_event(LOG_INFO, "k8s", on ? "became leader" : "lost leadership", "{s:s, s:s, s:s}",
              "identity", k->identity, "lease", k->election_id, "namespace", k->election_ns);
    if (k->cb.leader && !k->closing)
        k->cb.leader(k->cb.ud, on);
    if (on && !k->closing)
        k8s__status_kick(k->status);
}

bool k8s_is_leader(const K8s *k)
{
    return k && k->is_leader;
}

void k8s_event(K8s *k, json_t *obj_ref, const char *type, const char *reason, const char *message)
{
    if (!k || k->closing || !obj_ref)
        return;
    /* Only the leader reports, as KIC: followers would duplicate every Event. */
    if (!k->is_leader)
        return;
    k8s__events_emit(k->events, obj_ref, type, reason, message);
}

void k8s_update_ingress_status(K8s *k, json_t *ingresses, json_t *lb_ingress)
{
    if (!k || k->closing || !k->update_status || !k->is_leader)
        return;
    k8s__status_update(k->status, ingresses, lb_ingress);
}

json_t *k8s_publish_addresses(K8s *k)
{
    return k ? k8s__status_addresses(k->status) : NULL;
}

void k8s_metrics(K8s *k, Buf *out)
{
    if (!k)
        return;
    buf_printf(out,
               "# HELP tether_k8s_requests_total Requests sent to the Kubernetes API server.\n"
               "# TYPE tether_k8s_requests_total counter\n"
               "tether_k8s_requests_total %llu\n"
               "# HELP tether_k8s_request_errors_total Kubernetes API requests that failed "
               "(transport or HTTP >= 400).\n"
               "# TYPE tether_k8s_request_errors_total counter\n"
               "tether_k8s_request_errors_total %llu\n"
               "# HELP tether_k8s_leader Whether this process holds the leader Lease.\n"
               "# TYPE tether_k8s_leader gauge\n"
               "tether_k8s_leader %d\n",
               (unsigned long long)k->m_requests, (unsigned long long)k->m_request_errors,
               k->is_leader ? 1 : 0);
    k8s__watch_metrics(k->watch, out);
    k8s__events_metrics(k->events, out);
    k8s__status_metrics(k->status, out);
}

/* Free once every part has closed and every request has called back. */
static void maybe_finish(K8s *k)
{
    if (!k->closing || k->close_pending > 0 || k->nreqs > 0 || k->in_cb > 0)
        return;
    void (*done)(void *) = k->close_done;
    void *ud = k->close_ud;
    k8s_free(k);
    if (done)
        done(ud);
}

void k8s__close_step(K8s *k)
{
    k->close_pending--;
    maybe_finish(k);
}

static void on_defer_closed(uv_handle_t *h)
{
    k8s__close_step(h->data);
}

void k8s_close(K8s *k, void (*done)(void *ud), void *ud)
{
    if (!k) {
        if (done)
            done(ud);
        return;
    }
    k->closing = true;
    k->close_done = done;
    k->close_ud = ud;
    /* One step for each part with handles, plus one for this function itself. */
    k->close_pending = 3 + (k->defer_open ? 1 : 0);
    /* Deferred requests never reached Http: complete them here. */
    while (k->deferred) {
        K8sReq *q = k->deferred;
        k->deferred = q->next;
        if (!k->deferred)
            k->deferred_tail = NULL;
        q->next = NULL;
        fail_deferred(k, q, CURLE_ABORTED_BY_CALLBACK);
    }
    if (k->defer_open) {
        k->defer_open = false;
        uv_close((uv_handle_t *)&k->defer_timer, on_defer_closed);
    }
    /* Abort what is in flight (watches, lists, Events); the Lease release is sent after this. */
    size_t n = 0;
    CURL **easies = k->nreqs ? calloc(k->nreqs, sizeof(*easies)) : NULL;
    for (K8sReq *q = k->reqs; q && easies; q = q->next)
        easies[n++] = q->easy;
    for (size_t i = 0; i < n; i++)
        http_cancel(k->http, easies[i]);
    free(easies);
    k8s__watch_close(k->watch);
    k8s__lease_close(k->lease);
    k8s__close_step(k);
}
