/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Translation benchmark: N sets of {Ingress, Service, EndpointSlice with 3 endpoints, KongPlugin
 * attached to the Ingress} as one multi-document YAML manifest. For each N it prints the manifest
 * load time (YAML parse + store), translate+serialize+hash time (wall clock and CPU time of the
 * process, which a busy machine inflates less), and the peak RSS of a fresh process doing both.
 * Usage: bench-translate [N...] (default 1000 10000 50000); BENCH_PHASES=1 adds each pass's time
 * and the page faults of the translation (a fresh process first-touches all its memory);
 * BENCH_RUNS=R runs each N in R fresh processes and adds their medians and minimums (a shared
 * machine's speed drifts by a fifth, so one run is one sample); BENCH_WARM=W translates W more
 * times in each process and prints their median (the daemon's later translations reuse memory).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jarena.h"
#include "manifest.h"
#include "store.h"
#include "util.h"
#include "xlate.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *generate(int from, int n, size_t *len)
{
    Buf b = BUF_INIT;
    for (int i = from; i < from + n; i++) {
        int ns = i % 50;
        buf_printf(&b,
                   "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app-%d\n"
                   "  namespace: ns-%d\n  creationTimestamp: \"2024-01-%02dT%02d:%02d:%02dZ\"\n"
                   "  annotations:\n    konghq.com/plugins: limit-%d\n"
                   "    konghq.com/strip-path: \"true\"\nspec:\n  ingressClassName: kong\n  rules:\n"
                   "  - host: app-%d.example.com\n    http:\n      paths:\n      - path: /api\n"
                   "        pathType: Prefix\n        backend:\n          service:\n"
                   "            name: app-%d\n            port:\n              number: 80\n---\n",
                   i, ns, 1 + (i * 7919) % 28, (i * 31) % 24, (i * 17) % 60, (i * 13) % 60, i, i,
                   i);
        buf_printf(&b,
                   "apiVersion: v1\nkind: Service\nmetadata:\n  name: app-%d\n  namespace: ns-%d\n"
                   "spec:\n  ports:\n  - name: http\n    port: 80\n    protocol: TCP\n"
                   "    targetPort: 8080\n---\n",
                   i, ns);
        buf_printf(&b,
                   "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
                   "  name: app-%d-x\n  namespace: ns-%d\n  labels:\n"
                   "    kubernetes.io/service-name: app-%d\naddressType: IPv4\nendpoints:\n"
                   "- addresses: [10.%d.%d.1]\n  conditions: {ready: true}\n"
                   "- addresses: [10.%d.%d.2]\n  conditions: {ready: true}\n"
                   "- addresses: [10.%d.%d.3]\n  conditions: {ready: true}\n"
                   "ports:\n- name: http\n  port: 8080\n  protocol: TCP\n---\n",
                   i, ns, i, i / 256 % 256, i % 256, i / 256 % 256, i % 256, i / 256 % 256,
                   i % 256);
        buf_printf(&b,
                   "apiVersion: configuration.konghq.com/v1\nkind: KongPlugin\nmetadata:\n"
                   "  name: limit-%d\n  namespace: ns-%d\nplugin: rate-limiting\nconfig:\n"
                   "  minute: %d\n  policy: local\n---\n",
                   i, ns, 10 + i % 100);
    }
    *len = b.len;
    return buf_take(&b);
}

static int on_obj(void *ud, json_t *obj, const char *file, int line)
{
    (void)file;
    (void)line;
    return store_put_new(ud, json_incref(obj)) < 0;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct Figures {
    double load, translate, rss;
} Figures;

static void run(int n, Figures *f)
{
    Store *s;
    store_new(&s);
    store_bulk(s, true); /* as tether translate loads */
    /* Manifests of 1,000 sets each, as a folder of files would be. */
    double load = 0, load_cpu = 0;
    for (int from = 0; from < n; from += 1000) {
        size_t len;
        char *text = generate(from, n - from < 1000 ? n - from : 1000, &len);
        double t0 = now_ms(), c0 = cpu_ms();
        jarena_enter(); /* parsed in the arena, as tether translate parses */
        manifest_load_buffer(text, len, "bench", on_obj, NULL, s);
        jarena_leave();
        load += now_ms() - t0;
        load_cpu += cpu_ms() - c0;
        free(text);
    }
    json_t *cfg, *failures;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long faults = ru.ru_minflt;
    double t2 = now_ms(), c2 = cpu_ms();
    double phase[XLATE_PHASES];
    xlate_run_timed(s, NULL, &cfg, &failures, phase);
    size_t jl;
    double ts = now_ms();
    char hash[65];
    char *json = xlate_canonical_hashed(cfg, &jl, NULL, hash); /* hashed as it is written */
    double t3 = now_ms(), c3 = cpu_ms();
    getrusage(RUSAGE_SELF, &ru);
    faults = ru.ru_minflt - faults;
    *f = (Figures){load, t3 - t2, ru.ru_maxrss / 1024.0};
    printf("%8d %10zu %9.1f %9.1f %12.1f %13.1f %12.1f %10zu %6zu\n", n, store_count(s, NULL), load,
           load_cpu, t3 - t2, c3 - c2, ru.ru_maxrss / 1024.0, jl / 1024, json_array_size(failures));
    if (getenv("BENCH_PHASES")) {
        for (int i = 0; i < XLATE_PHASES; i++)
            if (phase[i] >= 0.05)
                printf("           %-16s %8.1f ms\n", xlate_phase_name(i), phase[i]);
        printf("           %-16s %8.1f ms\n", "serialize+hash", t3 - ts);
        printf("           %-16s %8ld\n", "page faults", faults);
    }
    fflush(stdout);
    free(json);
    json_decref(cfg);
    json_decref(failures);
    const char *we = getenv("BENCH_WARM");
    long warm = we ? strtol(we, NULL, 10) : 0;
    if (warm > 0 && warm <= 100) {
        /* More translations of the same store in this process: its memory is no longer new */
        double w[100];
        for (long i = 0; i < warm; i++) {
            double t0 = now_ms();
            xlate_run(s, NULL, &cfg, &failures);
            json = xlate_canonical_hashed(cfg, &jl, NULL, hash);
            w[i] = now_ms() - t0;
            free(json);
            json_decref(cfg);
            json_decref(failures);
        }
        qsort(w, (size_t)warm, sizeof(*w), cmp_double);
        printf("           %-16s %8.1f ms (median of %ld, minimum %.1f)\n", "warm", w[warm / 2],
               warm, w[0]);
        fflush(stdout);
    }
    store_free(s);
}

/* The median and minimum of @v (sorted in place). */
static void summary(const char *what, double *v, int k)
{
    qsort(v, (size_t)k, sizeof(*v), cmp_double);
    double med = k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
    printf("  %-12s median %9.1f  min %9.1f\n", what, med, v[0]);
}

int main(int argc, char **argv)
{
    int defaults[] = {1000, 10000, 50000};
    const char *re = getenv("BENCH_RUNS");
    long runs = re ? strtol(re, NULL, 10) : 1;
    if (runs < 1 || runs > 1000)
        runs = 1;
    util_tune_malloc(); /* as tether does */
    int count = argc > 1 ? argc - 1 : 3;
    printf("%8s %10s %9s %9s %12s %13s %12s %10s %6s\n", "N", "objects", "load_ms", "load_cpu",
           "translate_ms", "translate_cpu", "peak_rss_mb", "config_kb", "fails");
    fflush(stdout);
    for (int i = 0; i < count; i++) {
        int n = argc > 1 ? (int)strtol(argv[i + 1], NULL, 10) : defaults[i];
        double *load = calloc((size_t)runs * 3, sizeof(double)), *tr = load + runs,
               *rss = tr + runs;
        int k = 0;
        if (!load)
            return 1;
        for (int r = 0; r < runs; r++) {
            int fd[2];
            if (pipe(fd) < 0)
                return 1;
            pid_t pid = fork(); /* a fresh process per run, so peak RSS is that N's */
            if (pid == 0) {
                Figures f;
                close(fd[0]);
                run(n, &f);
                ssize_t w = write(fd[1], &f, sizeof(f));
                _exit(w == (ssize_t)sizeof(f) ? 0 : 1);
            }
            close(fd[1]);
            Figures f;
            if (pid > 0 && read(fd[0], &f, sizeof(f)) == (ssize_t)sizeof(f)) {
                load[k] = f.load;
                tr[k] = f.translate;
                rss[k++] = f.rss;
            }
            close(fd[0]);
            int st;
            if (pid > 0)
                waitpid(pid, &st, 0);
        }
        if (runs > 1 && k > 0) {
            printf("N=%d, %d runs:\n", n, k);
            summary("load_ms", load, k);
            summary("translate_ms", tr, k);
            summary("peak_rss_mb", rss, k);
            fflush(stdout);
        }
        free(load);
    }
    return 0;
}
