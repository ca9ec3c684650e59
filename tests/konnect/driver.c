/* SPDX-License-Identifier: Apache-2.0 */
/*
 * konnect-driver: runs the Konnect sink on a libuv loop for the integration tests, standing in
 * for `tether run`'s host. Commands arrive as JSON lines on stdin, events leave as JSON lines on
 * stdout:
 *   {"op":"publish","config":{...},"failures":[...]}  -> {"event":"published","seq":N,"hash":H}
 *   {"op":"gateways","gateways":[...]}                 (konnect_sink_set_gateways)
 *   {"op":"dataplane_ok","ok":false}
 *   {"op":"status"}   -> {"event":"status","status":{...}}
 *   {"op":"metrics","prefix":"..."}  -> {"event":"metrics","text":"..."} (prefix: optional
 *                     text written before, as another module's families)
 *   {"op":"quit"}     -> closes the sink, then {"event":"closed","loop_close":0}
 * and the host's callbacks: {"event":"applied","seq":N,"ok":1}.
 * Flags configure KonnectConfig (see usage()).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "konnect.h"
#include "log.h"
#include "util.h"
#include "xlate.h"

/* Until the translator lands on main, revision.c needs this; the real one wins when linked. */
__attribute__((weak)) char *xlate_canonical_json(const json_t *config, size_t *ret_len)
{
    char *s = json_dumps(config, JSON_SORT_KEYS | JSON_COMPACT);
    if (s && ret_len)
        *ret_len = strlen(s);
    return s;
}

typedef struct Driver {
    uv_loop_t loop;
    uv_pipe_t in;
    Buf line;
    Http *http;
    Sink *sink;
    SinkHost host;
    int quitting;
} Driver;

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

static void on_applied(SinkHost *h, Sink *sink, Revision *rev, int ok)
{
    (void)h;
    (void)sink;
    emit(json_pack("{s:s, s:I, s:i, s:s}", "event", "applied", "seq", (json_int_t)revision_seq(rev),
                   "ok", ok, "hash", revision_hash(rev)));
}

static void on_http_closed(void *ud)
{
    (void)ud;
}

static void on_sink_closed(void *ud)
{
    Driver *d = ud;
    d->sink = NULL;
    http_close(d->http, on_http_closed, NULL);
}

static void on_in_closed(uv_handle_t *h)
{
    (void)h;
}

static void quit(Driver *d)
{
    if (d->quitting)
        return;
    d->quitting = 1;
    uv_read_stop((uv_stream_t *)&d->in);
    uv_close((uv_handle_t *)&d->in, on_in_closed);
    d->sink->ops->close(d->sink, on_sink_closed, d);
}

static void command(Driver *d, const char *line, size_t len)
{
    json_error_t err;
    json_t *cmd = json_loadb(line, len, 0, &err);
    const char *op = json_string_value(json_object_get(cmd, "op"));
    if (!op) {
        fprintf(stderr, "driver: bad command: %s\n", err.text);
        json_decref(cmd);
        return;
    }
    if (strcmp(op, "publish") == 0) {
        json_t *failures = json_object_get(cmd, "failures");
        Revision *rev = revision_new_consume(json_incref(json_object_get(cmd, "config")),
                                             failures ? json_incref(failures) : NULL, 0);
        if (rev) {
            emit(json_pack("{s:s, s:I, s:s}", "event", "published", "seq",
                           (json_int_t)revision_seq(rev), "hash", revision_hash(rev)));
            d->sink->ops->publish(d->sink, rev);
            revision_unref(rev);
        }
    } else if (strcmp(op, "gateways") == 0) {
        konnect_sink_set_gateways(d->sink, json_object_get(cmd, "gateways"));
    } else if (strcmp(op, "dataplane_ok") == 0) {
        konnect_sink_set_dataplane_ok(d->sink, json_is_true(json_object_get(cmd, "ok")));
    } else if (strcmp(op, "status") == 0) {
        emit(json_pack("{s:s, s:o}", "event", "status", "status", d->sink->ops->status(d->sink)));
    } else if (strcmp(op, "metrics") == 0) {
        Buf b = BUF_INIT;
        /* "prefix": text another module wrote first (families to merge into). */
        const char *prefix = json_string_value(json_object_get(cmd, "prefix"));
        if (prefix)
            buf_puts(&b, prefix);
        konnect_sink_metrics(d->sink, &b);
        emit(json_pack("{s:s, s:s}", "event", "metrics", "text", b.data ? b.data : ""));
        buf_deinit(&b);
    } else if (strcmp(op, "quit") == 0) {
        quit(d);
    }
    json_decref(cmd);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(hint);
    buf->len = buf->base ? hint : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    Driver *d = s->data;
    if (n > 0) {
        buf_append(&d->line, buf->base, (size_t)n);
        char *nl;
        while (d->line.len && (nl = memchr(d->line.data, '\n', d->line.len))) {
            size_t len = (size_t)(nl - d->line.data);
            command(d, d->line.data, len);
            memmove(d->line.data, nl + 1, d->line.len - len - 1);
            d->line.len -= len + 1;
            d->line.data[d->line.len] = 0;
            if (d->quitting)
                break;
        }
    } else if (n < 0) {
        quit(d);
    }
    free(buf->base);
}

static void usage(void)
{
    fputs("usage: konnect-driver --address URL --cp ID --cert F --key F [--ca F] [--period S]\n"
          "  [--node-period S] [--full-resync S] [--backoff-min S] [--backoff-max S]\n"
          "  [--timeout S] [--retries N] [--concurrency N] [--hostname H] [--disable-consumers]\n",
          stderr);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"address", 1, 0, 'a'},
        {"cp", 1, 0, 'c'},
        {"cert", 1, 0, 'C'},
        {"key", 1, 0, 'K'},
        {"ca", 1, 0, 'A'},
        {"period", 1, 0, 'p'},
        {"node-period", 1, 0, 'n'},
        {"full-resync", 1, 0, 'f'},
        {"backoff-min", 1, 0, 'b'},
        {"backoff-max", 1, 0, 'B'},
        {"timeout", 1, 0, 't'},
        {"retries", 1, 0, 'r'},
        {"concurrency", 1, 0, 'j'},
        {"hostname", 1, 0, 'h'},
        {"disable-consumers", 0, 0, 'D'},
        {"log-level", 1, 0, 'l'},
        {0, 0, 0, 0},
    };
    KonnectConfig cfg = {.address = "https://us.kic.api.konghq.com", .version = "0.1.0"};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            cfg.address = optarg;
            break;
        case 'c':
            cfg.control_plane_id = optarg;
            break;
        case 'C':
            cfg.client_cert_file = optarg;
            break;
        case 'K':
            cfg.client_key_file = optarg;
            break;
        case 'A':
            cfg.ca_cert_file = optarg;
            break;
        case 'p':
            cfg.upload_config_period_s = strtod(optarg, NULL);
            break;
        case 'n':
            cfg.refresh_node_period_s = strtod(optarg, NULL);
            break;
        case 'f':
            cfg.full_resync_period_s = strtod(optarg, NULL);
            break;
        case 'b':
            cfg.backoff_min_s = strtod(optarg, NULL);
            break;
        case 'B':
            cfg.backoff_max_s = strtod(optarg, NULL);
            break;
        case 't':
            cfg.request_timeout_s = strtod(optarg, NULL);
            break;
        case 'r':
            cfg.request_retries = (int)strtol(optarg, NULL, 10);
            break;
        case 'j':
            cfg.sync_concurrency = (int)strtol(optarg, NULL, 10);
            break;
        case 'h':
            cfg.node_hostname = optarg;
            break;
        case 'D':
            cfg.disable_consumers_sync = true;
            break;
        case 'l':
            log_set_level(log_parse_level(optarg));
            break;
        default:
            usage();
            return 2;
        }
    }
    Driver d = {.line = BUF_INIT};
    d.host.applied = on_applied;
    uv_loop_init(&d.loop);
    if (http_new(&d.loop, &d.http) < 0)
        return 1;
    char *err = NULL;
    int r = konnect_sink_new(&d.loop, d.http, &cfg, &d.host, &d.sink, &err);
    if (r < 0) {
        fprintf(stderr, "driver: %s\n", err ? err : strerror(-r));
        free(err);
        http_close(d.http, on_http_closed, NULL);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        uv_loop_close(&d.loop);
        return 2;
    }
    uv_pipe_init(&d.loop, &d.in, 0);
    d.in.data = &d;
    uv_pipe_open(&d.in, 0);
    uv_read_start((uv_stream_t *)&d.in, on_alloc, on_read);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    buf_deinit(&d.line);
    int lc = uv_loop_close(&d.loop);
    emit(json_pack("{s:s, s:i}", "event", "closed", "loop_close", lc));
    return lc == 0 ? 0 : 1;
}
