/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test driver for the Kubernetes client: runs core/k8s on a libuv loop and prints what it
 * delivers as JSON lines on stdout ({"op":"upsert"|"remove"|"synced"|"leader"|...}). Reads
 * commands as JSON lines on stdin: {"cmd":"event","obj":{...},"type","reason","message"},
 * {"cmd":"status","ingresses":[...],"lb":[...]|null}, {"cmd":"metrics"}, {"cmd":"quit"}.
 * SIGTERM/SIGINT close the client (releasing the Lease) and exit 0 once the loop is empty.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "k8s.h"
#include "log.h"
#include "util.h"

static uv_loop_t loop;
static Http *http;
static K8s *k8s;
static uv_signal_t sig_term, sig_int;
static uv_pipe_t in_pipe;
static bool in_open;
static Buf in_buf;
static bool print_objects;
static bool quitting;

static void out(json_t *j)
{
    /* CLOCK_MONOTONIC in microseconds: tests compare it with Python's time.monotonic(). */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    json_object_set_new(j, "t_us",
                        json_integer((json_int_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000));
    char *s = json_dumps(j, JSON_COMPACT);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        free(s);
    }
    json_decref(j);
}

static void on_upsert(void *ud, json_t *obj)
{
    json_t *md = json_object_get(obj, "metadata");
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "op", "upsert", "kind",
                          json_string_value(json_object_get(obj, "kind")) ?: "", "apiVersion",
                          json_string_value(json_object_get(obj, "apiVersion")) ?: "", "ns",
                          json_string_value(json_object_get(md, "namespace")) ?: "", "name",
                          json_string_value(json_object_get(md, "name")) ?: "", "rv",
                          json_string_value(json_object_get(md, "resourceVersion")) ?: "");
    if (j && print_objects)
        json_object_set(j, "obj", obj);
    out(j);
}

static void on_remove(void *ud, const char *kind, const char *ns, const char *name)
{
    out(json_pack("{s:s, s:s, s:s, s:s}", "op", "remove", "kind", kind, "ns", ns ? ns : "", "name",
                  name));
}

static void on_synced(void *ud)
{
    out(json_pack("{s:s}", "op", "synced"));
}

static void on_leader(void *ud, bool on)
{
    out(json_pack("{s:s, s:b}", "op", "leader", "value", on));
}

static void on_http_closed(void *ud)
{
    http = NULL;
}

static void on_k8s_closed(void *ud)
{
    k8s = NULL;
    http_close(http, on_http_closed, NULL);
}

static void quit(void)
{
    if (quitting)
        return;
    quitting = true;
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    if (in_open) {
        in_open = false;
        uv_close((uv_handle_t *)&in_pipe, NULL);
    }
    k8s_close(k8s, on_k8s_closed, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    quit();
}

static void command(const char *line)
{
    json_t *c = json_loads(line, 0, NULL);
    const char *cmd = json_string_value(json_object_get(c, "cmd"));
    if (!cmd) {
        json_decref(c);
        return;
    }
    if (strcmp(cmd, "event") == 0) {
        k8s_event(k8s, json_object_get(c, "obj"), json_string_value(json_object_get(c, "type")),
                  json_string_value(json_object_get(c, "reason")),
                  json_string_value(json_object_get(c, "message")));
        out(json_pack("{s:s}", "op", "event-sent"));
    } else if (strcmp(cmd, "status") == 0) {
        json_t *lb = json_object_get(c, "lb");
        k8s_update_ingress_status(k8s, json_object_get(c, "ingresses"),
                                  json_is_array(lb) ? lb : NULL);
        json_t *pa = k8s_publish_addresses(k8s);
        out(json_pack("{s:s, s:O}", "op", "status-sent", "publish", pa ? pa : json_null()));
    } else if (strcmp(cmd, "metrics") == 0) {
        Buf b = BUF_INIT;
        k8s_metrics(k8s, &b);
        out(json_pack("{s:s, s:s}", "op", "metrics", "text", b.data ? b.data : ""));
        buf_deinit(&b);
    } else if (strcmp(cmd, "quit") == 0) {
        quit();
    }
    json_decref(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char mem[65536];
    buf->base = mem;
    buf->len = sizeof(mem);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) {
        if (in_open) {
            in_open = false;
            uv_close((uv_handle_t *)&in_pipe, NULL);
        }
        return;
    }
    buf_append(&in_buf, buf->base, (size_t)n);
    char *nl;
    while (in_buf.data && (nl = memchr(in_buf.data, '\n', in_buf.len))) {
        *nl = '\0';
        command(in_buf.data);
        size_t used = (size_t)(nl - in_buf.data) + 1;
        memmove(in_buf.data, nl + 1, in_buf.len - used);
        in_buf.len -= used;
        if (quitting)
            break;
    }
}

int main(int argc, char **argv)
{
    K8sConfig cfg = {.update_status = false, .ingress_class = "kong"};
    const char *nslist = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, field)                                                                           \
    if (strcmp(a, name) == 0 && v) {                                                               \
        field = v;                                                                                 \
        i++;                                                                                       \
        continue;                                                                                  \
    }
        OPT("--kubeconfig", cfg.kubeconfig);
        OPT("--apiserver-host", cfg.apiserver_host);
        OPT("--watch-namespace", nslist);
        OPT("--election-id", cfg.election_id);
        OPT("--election-namespace", cfg.election_namespace);
        OPT("--identity", cfg.identity);
        OPT("--publish-service", cfg.publish_service);
#undef OPT
        if (strcmp(a, "--leader-election") == 0) {
            cfg.leader_election = true;
        } else if (strcmp(a, "--update-status") == 0) {
            cfg.update_status = true;
        } else if (strcmp(a, "--print-objects") == 0) {
            print_objects = true;
        } else if (strcmp(a, "--debug") == 0) {
            log_set_level(LOG_DEBUG);
        } else {
            fprintf(stderr, "k8s-driver: unknown argument %s\n", a);
            return 2;
        }
    }
    char *nsdup = nslist ? strdup(nslist) : NULL;
    const char *nss[64] = {0};
    if (nsdup) {
        size_t n = 0;
        char *save = NULL;
        for (char *t = strtok_r(nsdup, ",", &save); t && n < 63; t = strtok_r(NULL, ",", &save))
            nss[n++] = t;
        cfg.watch_namespaces = nss;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    uv_loop_init(&loop);
    if (http_new(&loop, &http) < 0)
        return 1;
    K8sCallbacks cb = {
        .upsert = on_upsert, .remove = on_remove, .synced = on_synced, .leader = on_leader};
    char *err = NULL;
    int r = k8s_new(&loop, http, &cfg, &cb, &k8s, &err);
    if (r < 0) {
        fprintf(stderr, "k8s-driver: %s\n", err ? err : "k8s_new failed");
        out(json_pack("{s:s, s:s}", "op", "error", "error", err ? err : ""));
        free(err);
        http_close(http, on_http_closed, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        free(nsdup);
        curl_global_cleanup();
        return 1;
    }
    uv_signal_init(&loop, &sig_term);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_init(&loop, &sig_int);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    if (uv_pipe_init(&loop, &in_pipe, 0) == 0) {
        if (uv_pipe_open(&in_pipe, 0) == 0 &&
            uv_read_start((uv_stream_t *)&in_pipe, on_alloc, on_read) == 0)
            in_open = true;
        else
            uv_close((uv_handle_t *)&in_pipe, NULL);
    }
    r = k8s_start(k8s);
    if (r < 0) {
        fprintf(stderr, "k8s-driver: start failed\n");
        quit();
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop);
    buf_deinit(&in_buf);
    free(nsdup);
    curl_global_cleanup();
    if (rc != 0) {
        fprintf(stderr, "k8s-driver: loop not empty at exit\n");
        return 3;
    }
    out(json_pack("{s:s}", "op", "exit"));
    return 0;
}
