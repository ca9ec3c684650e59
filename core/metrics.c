/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus text exposition helpers and the collector registry. See metrics.h. */
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void metrics_hist_init(MetricsHist *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof(*h));
    if (n > METRICS_MAX_BUCKETS)
        n = METRICS_MAX_BUCKETS;
    h->n = n;
    memcpy(h->bounds, bounds, n * sizeof(double));
}

void metrics_hist_observe(MetricsHist *h, double v)
{
    size_t i = 0;
    while (i < h->n && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

int metrics_hist_write(const MetricsHist *h, Buf *out, const char *name, const char *labels)
{
    uint64_t cum = 0;
    const char *sep = labels && *labels ? "," : "";
    int r = 0;
    labels = labels ? labels : "";
    for (size_t i = 0; i <= h->n && r == 0; i++) {
        cum += h->counts[i];
        if (i < h->n)
            r = buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i],
                           (unsigned long long)cum);
        else
            r = buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                           (unsigned long long)cum);
    }
    if (r == 0)
        r = buf_printf(out, "%s_sum%s%s%s %.17g\n%s_count%s%s%s %llu\n", name, *labels ? "{" : "",
                       labels, *labels ? "}" : "", h->sum, name, *labels ? "{" : "", labels,
                       *labels ? "}" : "", (unsigned long long)h->count);
    return r;
}

int metrics_header(Buf *out, const char *name, const char *type, const char *help)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int metrics_label_escape(Buf *out, const char *v)
{
    for (; *v; v++) {
        int r;
        if (*v == '\\')
            r = buf_puts(out, "\\\\");
        else if (*v == '"')
            r = buf_puts(out, "\\\"");
        else if (*v == '\n')
            r = buf_puts(out, "\\n");
        else
            r = buf_putc(out, *v);
        if (r < 0)
            return r;
    }
    return 0;
}

int metrics_process(Buf *out)
{
    struct rusage ru;
    long rss = 0;
    char statm[128] = "";
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        size_t n = fread(statm, 1, sizeof(statm) - 1, f);
        statm[n] = 0;
        fclose(f);
        /* "size resident shared ...", in pages */
        char *p = strchr(statm, ' ');
        if (p)
            rss = strtol(p + 1, NULL, 10);
    }
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
              ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    int r = metrics_header(out, "process_resident_memory_bytes", "gauge",
                           "Resident memory size in bytes.");
    if (r == 0)
        r = buf_printf(out, "process_resident_memory_bytes %lld\n",
                       (long long)rss * sysconf(_SC_PAGESIZE));
    if (r == 0)
        r = metrics_header(out, "process_cpu_seconds_total", "counter",
                           "Total user and system CPU time spent in seconds.");
    if (r == 0)
        r = buf_printf(out, "process_cpu_seconds_total %.6f\n", cpu);
    return r;
}

typedef struct Collector {
    MetricsCollectFn fn;
    void *ud;
} Collector;

struct Metrics {
    Collector *c;
    size_t n;
};

int metrics_new(Metrics **ret)
{
    Metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    *ret = m;
    return 0;
}

Metrics *metrics_free(Metrics *m)
{
    if (m) {
        free(m->c);
        free(m);
    }
    return NULL;
}

int metrics_add(Metrics *m, MetricsCollectFn fn, void *ud)
{
    Collector *c = realloc(m->c, (m->n + 1) * sizeof(*c));
    if (!c)
        return -ENOMEM;
    m->c = c;
    m->c[m->n++] = (Collector){fn, ud};
    return 0;
}

int metrics_render(Metrics *m, Buf *out)
{
    for (size_t i = 0; i < m->n; i++)
        m->c[i].fn(m->c[i].ud, out);
    return metrics_process(out);
}
