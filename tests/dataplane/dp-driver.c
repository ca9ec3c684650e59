/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test driver for the data plane sink: runs the sink on a libuv loop and takes one JSON command
 * a line on stdin, printing one JSON event a line on stdout. It plays the controller's part:
 * it publishes revisions, hands EndpointSlices over, and answers SinkHost.rejected() with a
 * fallback that drops the entities tagged with the broken objects' kind/namespace/name.
 *
 * Commands: {"op":"new","cfg":{...}}  {"op":"publish","config":{...}}
 *           {"op":"discovered","slices":[...]}  {"op":"gateways"}  {"op":"metrics"}
 *           {"op":"status"}  {"op":"flavor"}  {"op":"close"}
 * Events:   {"event":"ready"} {"event":"published","hash","seq"} {"event":"applied","hash",
 *           "seq","ok","fallback"} {"event":"rejected","hash","broken"} {"event":"gateways",...}
 *           {"event":"metrics","text"} {"event":"closed","loop_close"} {"event":"error","msg"}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "dp.h"
#include "http.h"
#include "log.h"
#include "revision.h"
#include "util.h"

static uv_loop_t loop;
static Http *http;
static Sink *sink;
static uv_pipe_t in;
static Buf line;
static int closing;
static char *strs[64];
static int nstrs;
static const char *urls[32], *hdrs[16];

static uint64_t publish_ms;

/* Current resident set (kB), to measure growth against a baseline below an earlier peak. */
static json_int_t rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (json_int_t)(resident * (sysconf(_SC_PAGESIZE) / 1024));
}

/* The peak resident set since the last reset_peak() (kB), from /proc/self/status VmHWM. */
static json_int_t peak_kb(void)
{
    char ln[256];
    json_int_t v = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    while (fgets(ln, sizeof(ln), f))
        if (strncmp(ln, "VmHWM:", 6) == 0)
            v = strtoll(ln + 6, NULL, 10);
    fclose(f);
    return v;
}

/* Writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS (Linux >= 4.0). */
static void reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static void emit(json_t *ev)
{
    char *s = json_dumps(ev, JSON_COMPACT);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(s);
    json_decref(ev);
}

static void on_applied(SinkHost *h, Sink *s, Revision *rev, int ok)
{
    emit(json_pack("{s:s, s:s, s:I, s:b, s:b, s:I, s:I}", "event", "applied", "hash",
                   revision_hash(rev), "seq", (json_int_t)revision_seq(rev), "ok", ok, "fallback",
                   revision_is_fallback(rev), "since_publish_ms",
                   (json_int_t)(util_now_ms() - publish_ms), "maxrss_kb", peak_kb()));
}

static bool tagged(json_t *e, json_t *b)
{
    json_t *tags = json_object_get(e, "tags");
    const char *want[3][2] = {
        {"k8s-kind:", json_string_value(json_object_get(b, "kind"))},
        {"k8s-name:", json_string_value(json_object_get(b, "name"))},
        {"k8s-namespace:", json_string_value(json_object_get(b, "namespace"))}};
    for (int i = 0; i < 3; i++) {
        if (!want[i][1] || !*want[i][1])
            continue;
        bool found = false;
        size_t j;
        json_t *t;
        json_array_foreach(tags, j, t)
        {
            const char *s = json_string_value(t);
            if (s && strncmp(s, want[i][0], strlen(want[i][0])) == 0 &&
                strcmp(s + strlen(want[i][0]), want[i][1]) == 0)
                found = true;
        }
        if (!found)
            return false;
    }
    return true;
}

static void prune(json_t *v, json_t *broken)
{
    if (json_is_array(v)) {
        for (size_t i = json_array_size(v); i-- > 0;) {
            json_t *e = json_array_get(v, i);
            size_t j;
            json_t *b;
            bool drop = false;
            json_array_foreach(broken, j, b)
            {
                drop |= json_is_object(e) && tagged(e, b);
            }
            if (drop)
                json_array_remove(v, i);
            else
                prune(e, broken);
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            prune(x, broken);
        }
    }
}

static Revision *on_rejected(SinkHost *h, Sink *s, Revision *rev, json_t *broken)
{
    emit(json_pack("{s:s, s:s, s:O}", "event", "rejected", "hash", revision_hash(rev), "broken",
                   broken));
    json_t *tree = revision_load_config(rev);
    json_t *cfg = json_deep_copy(tree);
    json_decref(tree);
    prune(cfg, broken);
    return revision_new_consume(cfg, NULL, 1);
}

static SinkHost host = {.applied = on_applied, .rejected = on_rejected};

static const char *str(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    if (v && nstrs < 64)
        return strs[nstrs++] = strdup(v);
    return NULL;
}

static void cmd_new(json_t *c)
{
    DpConfig cfg = {0};
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(json_object_get(c, "admin_urls"), i, v)
    {
        if (n < 31 && json_is_string(v) && nstrs < 64)
            urls[n++] = strs[nstrs++] = strdup(json_string_value(v));
    }
    urls[n] = NULL;
    cfg.admin_urls = n ? urls : NULL;
    n = 0;
    json_array_foreach(json_object_get(c, "headers"), i, v)
    {
        if (n < 15 && json_is_string(v))
            hdrs[n++] = strdup(json_string_value(v));
    }
    hdrs[n] = NULL;
    cfg.headers = n ? hdrs : NULL;
    cfg.admin_svc = str(c, "admin_svc");
    cfg.admin_svc_port_names = str(c, "port_names");
    cfg.ca_cert_file = str(c, "ca_cert_file");
    cfg.client_cert_file = str(c, "client_cert_file");
    cfg.client_key_file = str(c, "client_key_file");
    cfg.tls_server_name = str(c, "tls_server_name");
    cfg.tls_skip_verify = json_is_true(json_object_get(c, "skip_verify"));
    cfg.token = str(c, "token");
    cfg.proxy_timeout_s = json_number_value(json_object_get(c, "proxy_timeout_s"));
    cfg.readiness_interval_s = json_number_value(json_object_get(c, "readiness_interval_s"));
    cfg.readiness_timeout_s = json_number_value(json_object_get(c, "readiness_timeout_s"));
    if (!json_object_get(c, "no_fallback"))
        host.rejected = on_rejected;
    else
        host.rejected = NULL;
    char *err = NULL;
    int r = dp_sink_new(&loop, http, &cfg, &host, &sink, &err);
    if (r < 0) {
        emit(json_pack("{s:s, s:s, s:i}", "event", "error", "msg", err ? err : "dp_sink_new", "r",
                       r));
        free(err);
        return;
    }
    emit(json_pack("{s:s}", "event", "ready"));
}

static void on_sink_closed(void *ud)
{
    http_close(http, NULL, NULL);
}

static void on_close_in(uv_handle_t *h)
{
}

static void handle(json_t *c)
{
    const char *op = json_string_value(json_object_get(c, "op"));
    if (!op)
        return;
    if (strcmp(op, "new") == 0) {
        cmd_new(json_object_get(c, "cfg"));
    } else if (!sink) {
        emit(json_pack("{s:s, s:s}", "event", "error", "msg", "no sink"));
    } else if (strcmp(op, "publish") == 0) {
        uint64_t t0 = util_now_ms();
        Revision *r = revision_new_consume(json_incref(json_object_get(c, "config")), NULL, 0);
        size_t len = 0;
        (void)revision_json(r, &len);
        emit(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "event", "published", "hash",
                       revision_hash(r), "seq", (json_int_t)revision_seq(r), "bytes",
                       (json_int_t)len, "build_ms", (json_int_t)(util_now_ms() - t0), "maxrss_kb",
                       rss_kb()));
        reset_peak();
        publish_ms = util_now_ms();
        sink->ops->publish(sink, r);
        revision_unref(r);
    } else if (strcmp(op, "discovered") == 0) {
        dp_sink_discovered(sink, json_object_get(c, "slices"));
        emit(json_pack("{s:s}", "event", "discovered"));
    } else if (strcmp(op, "gateways") == 0) {
        emit(json_pack("{s:s, s:o}", "event", "gateways", "gateways", dp_sink_gateways(sink)));
    } else if (strcmp(op, "status") == 0) {
        emit(json_pack("{s:s, s:o}", "event", "status", "status", sink->ops->status(sink)));
    } else if (strcmp(op, "flavor") == 0) {
        emit(json_pack("{s:s, s:s?}", "event", "flavor", "flavor", dp_router_flavor(sink)));
    } else if (strcmp(op, "metrics") == 0) {
        Buf b = BUF_INIT;
        dp_sink_metrics(sink, &b);
        emit(json_pack("{s:s, s:s}", "event", "metrics", "text", b.data ? b.data : ""));
        buf_deinit(&b);
    } else if (strcmp(op, "close") == 0 && !closing) {
        closing = 1;
        uv_read_stop((uv_stream_t *)&in);
        uv_close((uv_handle_t *)&in, on_close_in);
        sink->ops->close(sink, on_sink_closed, NULL);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char buf[65536];
    b->base = buf;
    b->len = sizeof(buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        if (!closing) {
            /* stdin closed: behave as "close". */
            json_t *c = json_pack("{s:s}", "op", "close");
            if (sink) {
                handle(c);
            } else {
                closing = 1;
                uv_close((uv_handle_t *)&in, on_close_in);
                http_close(http, NULL, NULL);
            }
            json_decref(c);
        }
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (b->base[i] != '\n') {
            buf_putc(&line, b->base[i]);
            continue;
        }
        json_error_t err;
        json_t *c = json_loadb(line.data ? line.data : "", line.len, 0, &err);
        buf_reset(&line);
        if (!c) {
            emit(json_pack("{s:s, s:s}", "event", "error", "msg", err.text));
            continue;
        }
        handle(c);
        json_decref(c);
        if (closing)
            return;
    }
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    log_set_level(getenv("DP_DEBUG") ? LOG_DEBUG : LOG_INFO);
    uv_loop_init(&loop);
    if (http_new(&loop, &http) < 0)
        return 1;
    uv_pipe_init(&loop, &in, 0);
    uv_pipe_open(&in, 0);
    uv_read_start((uv_stream_t *)&in, on_alloc, on_read);
    uv_run(&loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop);
    emit(json_pack("{s:s, s:i}", "event", "closed", "loop_close", rc));
    buf_deinit(&line);
    for (int i = 0; i < nstrs; i++)
        free(strs[i]);
    for (int i = 0; hdrs[i]; i++)
        free((char *)hdrs[i]);
    curl_global_cleanup();
    return rc == 0 ? 0 : 1;
}
