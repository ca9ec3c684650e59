/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Prometheus text exposition helpers: histograms, headers, label escaping, process metrics, and a
 * small registry of collectors (one per module) rendered in order for /metrics.
 */
#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum { METRICS_MAX_BUCKETS = 24 };

typedef struct MetricsHist {
    size_t n;                                 /* bucket bounds in use */
    double bounds[METRICS_MAX_BUCKETS];       /* upper bounds, ascending */
    uint64_t counts[METRICS_MAX_BUCKETS + 1]; /* per bucket (not cumulative); last is +Inf */
    double sum;
    uint64_t count;
} MetricsHist;

void metrics_hist_init(MetricsHist *h, const double *bounds, size_t n);
void metrics_hist_observe(MetricsHist *h, double v);
/* metrics_hist_write() - the _bucket/_sum/_count lines (no header); @labels like `a="b"` or "". */
int metrics_hist_write(const MetricsHist *h, Buf *out, const char *name, const char *labels);

/* metrics_header() - "# HELP" and "# TYPE" lines. */
int metrics_header(Buf *out, const char *name, const char *type, const char *help);
/* metrics_label_escape() - append @v escaped for a label value (\\, \", \n). */
int metrics_label_escape(Buf *out, const char *v);
/* metrics_process() - process_resident_memory_bytes, process_cpu_seconds_total, ... */
int metrics_process(Buf *out);

typedef void (*MetricsCollectFn)(void *ud, Buf *out);
typedef struct Metrics Metrics;

int metrics_new(Metrics **ret);
Metrics *metrics_free(Metrics *m);
/* metrics_add() - register a collector; called in registration order by metrics_render(). */
int metrics_add(Metrics *m, MetricsCollectFn fn, void *ud);
/* metrics_render() - every collector's text into @out. */
int metrics_render(Metrics *m, Buf *out);
