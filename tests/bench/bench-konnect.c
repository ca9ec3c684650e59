/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-konnect: do Konnect's troubles reach the local gateways? Runs the data plane sink and
 * the Konnect sink on one loop and one Http, as `tether run` wires them (a revision goes to
 * Konnect only once the gateways accepted it), and measures revision-to-201 (publish to the
 * data plane sink's applied) for revisions pushed while Konnect is healthy, black-holed or
 * rate-limiting (429, Retry-After). The modes alternate in blocks so that all three share the
 * same machine conditions; the figures are printed, nothing is asserted.
 *
 * Usage: bench-konnect --kong URL --konnect URL --control URL --cert F --key F --ca F
 *                      [--revisions 200] [--block 20] [--services 200] [--gap-ms 50]
 * Revisions follow each other --gap-ms after the previous one was applied (a reconciler's
 * debounce), so Konnect's rounds overlap the pushes. Warm-up revisions, until Konnect's first
 * full sync succeeded, are not measured.
 * --control is the fake Konnect's control port (tests/fakes/konnect.py).
 */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "http.h"
#include "konnect.h"
#include "log.h"
#include "util.h"

enum { HEALTHY, BLACKHOLE, RATELIMIT, NMODES };
#define WARMUP 10
static const char *const mode_names[NMODES] = {"healthy", "blackholed", "rate-limited"};
static const char *const mode_bodies[NMODES] = {
    "{\"mode\":\"ok\",\"fail\":[]}",
    "{\"mode\":\"blackhole\",\"fail\":[]}",
    "{\"mode\":\"ok\",\"fail\":[{\"status\":429,\"count\":-1,\"retry_after\":1}]}",
};

typedef struct Bench {
    uv_loop_t loop;
    Http *http;
    Sink *dp, *kn;
    SinkHost host;
    uv_timer_t next;
    const char *control;
    int revisions, block, services, gap_ms;
    int sent, measured, mode;
    uint64_t published_ns;
    Revision *waiting; /* published to the data plane, not yet applied */
    bool measuring;
    double *lat[NMODES];
    int nlat[NMODES];
    int konnect_ok, konnect_fail;
    json_t *config;
} Bench;

static void set_mode(Bench *b, int mode)
{
    /* Outside the measurement: a short blocking call to the fake's control port. */
    CURL *e = curl_easy_init();
    char url[256];
    snprintf(url, sizeof(url), "%s/mode", b->control);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, mode_bodies[mode]);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fwrite);
    FILE *null = fopen("/dev/null", "w");
    curl_easy_setopt(e, CURLOPT_WRITEDATA, null);
    if (curl_easy_perform(e) != CURLE_OK)
        fprintf(stderr, "bench-konnect: cannot switch the fake Konnect to %s\n", mode_names[mode]);
    curl_easy_cleanup(e);
    fclose(null);
    b->mode = mode;
}

/* build_config() - n Ingress-like services; revision @i changes one route's path. */
static json_t *build_config(int n, int i)
{
    json_t *services = json_array(), *upstreams = json_array();
    for (int s = 0; s < n; s++) {
        char name[64], host[80], path[48], rname[96];
        snprintf(name, sizeof(name), "default.app-%d.80", s);
        snprintf(host, sizeof(host), "app-%d.default.80.svc", s);
        snprintf(rname, sizeof(rname), "default.app-%d.app-%d.example.com.80", s, s);
        if (s == i % n)
            snprintf(path, sizeof(path), "/v%d", i);
        else
            snprintf(path, sizeof(path), "/app-%d", s);
        json_array_append_new(
            services, json_pack("{s:s, s:s, s:i, s:s, s:[{s:s, s:[s], s:[s], s:b}]}", "name", name,
                                "host", host, "port", 80, "protocol", "http", "routes", "name",
                                rname, "paths", path, "protocols", "http", "strip_path", 0));
        json_array_append_new(upstreams, json_pack("{s:s, s:[{s:s}]}", "name", host, "targets",
                                                   "target", "10.0.0.1:80"));
    }
    return json_pack("{s:s, s:o, s:o}", "_format_version", "3.0", "services", services, "upstreams",
                     upstreams);
}

static void publish_next(Bench *b);

static void on_next(uv_timer_t *t)
{
    publish_next(t->data);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    if (n == 0)
        return NAN;
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    int i = (int)ceil(p * n) - 1;
    return v[i < 0 ? 0 : i];
}

static void on_http_closed(void *ud)
{
    (void)ud;
}

static void on_closed(void *ud)
{
    Bench *b = ud;
    if (b->dp || b->kn)
        return;
    http_close(b->http, on_http_closed, NULL);
}

static void on_dp_closed(void *ud)
{
    Bench *b = ud;
    b->dp = NULL;
    on_closed(b);
}

static void on_kn_closed(void *ud)
{
    Bench *b = ud;
    b->kn = NULL;
    on_closed(b);
}

static void finish(Bench *b)
{
    set_mode(b, HEALTHY);
    printf("bench-konnect: revision-to-201 of the local gateway, %d services, %d revisions per "
           "mode, blocks of %d, %d ms apart\n",
           b->services, b->revisions, b->block, b->gap_ms);
    double med[NMODES], p99[NMODES];
    for (int m = 0; m < NMODES; m++) {
        med[m] = pct(b->lat[m], b->nlat[m], 0.5);
        p99[m] = pct(b->lat[m], b->nlat[m], 0.99);
        printf("  Konnect %-13s n=%-4d median %8.2f ms  p99 %8.2f ms\n", mode_names[m], b->nlat[m],
               med[m], p99[m]);
    }
    for (int m = 1; m < NMODES; m++)
        printf("  ratio %s/healthy: median %.3f  p99 %.3f\n", mode_names[m], med[m] / med[0],
               p99[m] / p99[0]);
    printf("  Konnect rounds during the run: %d succeeded, %d failed\n", b->konnect_ok,
           b->konnect_fail);
    fflush(stdout);
    uv_close((uv_handle_t *)&b->next, NULL);
    b->dp->ops->close(b->dp, on_dp_closed, b);
    b->kn->ops->close(b->kn, on_kn_closed, b);
}

static void publish_next(Bench *b)
{
    if (b->measured == b->revisions * NMODES) {
        finish(b);
        return;
    }
    /* Warm-up (connections, Konnect's first full sync) is not measured. */
    bool warm = b->sent >= WARMUP && b->konnect_ok > 0;
    if (warm && b->measured % b->block == 0)
        set_mode(b, (b->measured / b->block) % NMODES);
    b->measuring = warm;
    Revision *rev = revision_new_consume(build_config(b->services, b->sent), NULL, 0);
    if (!rev) {
        fprintf(stderr, "bench-konnect: out of memory\n");
        exit(1);
    }
    b->sent++;
    b->waiting = rev;
    b->published_ns = uv_hrtime();
    b->dp->ops->publish(b->dp, rev);
}

static void on_applied(SinkHost *h, Sink *s, Revision *rev, int ok)
{
    Bench *b = h->ud;
    if (s == b->kn) {
        if (ok)
            b->konnect_ok++;
        else
            b->konnect_fail++;
        return;
    }
    if (rev != b->waiting)
        return;
    if (!ok) {
        fprintf(stderr, "bench-konnect: the gateway refused revision %llu\n",
                (unsigned long long)revision_seq(rev));
        exit(1);
    }
    double ms = (double)(uv_hrtime() - b->published_ns) / 1e6;
    if (b->measuring) {
        b->lat[b->mode][b->nlat[b->mode]++] = ms;
        b->measured++;
    }
    /* As tether run does: only what the gateways accepted goes to Konnect. */
    b->kn->ops->publish(b->kn, rev);
    revision_unref(b->waiting);
    b->waiting = NULL;
    /* A short pause, so Konnect's traffic for this revision overlaps the next push. */
    uv_timer_start(&b->next, on_next, (uint64_t)b->gap_ms, 0);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kong", 1, 0, 'k'},      {"konnect", 1, 0, 'K'}, {"control", 1, 0, 'c'},
        {"cert", 1, 0, 'C'},      {"key", 1, 0, 'Y'},     {"ca", 1, 0, 'A'},
        {"revisions", 1, 0, 'n'}, {"block", 1, 0, 'b'},   {"services", 1, 0, 's'},
        {"gap-ms", 1, 0, 'g'},    {0, 0, 0, 0},
    };
    const char *kong = NULL, *address = NULL, *cert = NULL, *key = NULL, *ca = NULL;
    Bench b = {.revisions = 200, .block = 20, .services = 200, .gap_ms = 50};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            kong = optarg;
            break;
        case 'K':
            address = optarg;
            break;
        case 'c':
            b.control = optarg;
            break;
        case 'C':
            cert = optarg;
            break;
        case 'Y':
            key = optarg;
            break;
        case 'A':
            ca = optarg;
            break;
        case 'n':
            b.revisions = (int)strtol(optarg, NULL, 10);
            break;
        case 'b':
            b.block = (int)strtol(optarg, NULL, 10);
            break;
        case 's':
            b.services = (int)strtol(optarg, NULL, 10);
            break;
        case 'g':
            b.gap_ms = (int)strtol(optarg, NULL, 10);
            break;
        default:
            return 2;
        }
    }
    if (!kong || !address || !b.control || !cert || !key || b.revisions < 1 || b.block < 1 ||
        b.services < 1) {
        fputs("usage: bench-konnect --kong URL --konnect URL --control URL --cert F --key F "
              "[--ca F] [--revisions N] [--block N] [--services N]\n",
              stderr);
        return 2;
    }
    log_set_level(getenv("BENCH_LOG") ? LOG_INFO : LOG_ERROR);
    for (int m = 0; m < NMODES; m++)
        b.lat[m] = calloc((size_t)b.revisions * NMODES, sizeof(double));
    b.host.ud = &b;
    b.host.applied = on_applied;
    uv_loop_init(&b.loop);
    uv_timer_init(&b.loop, &b.next);
    b.next.data = &b;
    if (http_new(&b.loop, &b.http) < 0)
        return 1;
    const char *urls[] = {kong, NULL};
    DpConfig dcfg = {.admin_urls = urls};
    KonnectConfig kcfg = {
        .address = address,
        .control_plane_id = "3f1b2a3c-0d4e-4f5a-8b6c-7d8e9f0a1b2c",
        .client_cert_file = cert,
        .client_key_file = key,
        .ca_cert_file = ca,
        .upload_config_period_s = 0.05,
        .sync_concurrency = 4,
        .refresh_node_period_s = 60,
        .node_hostname = "bench/tether",
        .request_timeout_s = 1,
        .backoff_max_s = 5,
    };
    char *err = NULL;
    if (dp_sink_new(&b.loop, b.http, &dcfg, &b.host, &b.dp, &err) < 0 ||
        konnect_sink_new(&b.loop, b.http, &kcfg, &b.host, &b.kn, &err) < 0) {
        fprintf(stderr, "bench-konnect: %s\n", err ? err : "cannot create the sinks");
        return 1;
    }
    set_mode(&b, HEALTHY);
    uv_timer_start(&b.next, on_next, 200, 0); /* let the data plane sink probe the gateway */
    uv_run(&b.loop, UV_RUN_DEFAULT);
    for (int m = 0; m < NMODES; m++)
        free(b.lat[m]);
    return uv_loop_close(&b.loop) == 0 ? 0 : 1;
}
