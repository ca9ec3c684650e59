/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Sink: something that consumes revisions (the declarative file, local gateways, Konnect).
 * The reconciler publishes the newest revision to every sink; a sink never blocks the loop and
 * never waits for another sink. Sinks report back through their SinkHost.
 */
#include <jansson.h>

#include "revision.h"

typedef struct Sink Sink;
typedef struct SinkHost SinkHost;

typedef struct SinkOps {
    const char *kind; /* "file", "dataplane", "konnect" */
    /* publish() - @rev is borrowed: revision_ref() it to keep it. Must return at once. */
    void (*publish)(Sink *s, Revision *rev);
    /*
     * close() - stop timers and requests (in-flight requests may finish or be aborted), close
     * every handle, then call @done exactly once from the loop (never from inside close()).
     * After @done the sink's memory is freed by the sink itself.
     */
    void (*close)(Sink *s, void (*done)(void *ud), void *ud);
    /* status() - a JSON object for diagnostics and /readyz (new reference, may be NULL). */
    json_t *(*status)(Sink *s);
} SinkOps;

/* Every sink embeds this first (container_of-free: a Sink * is the sink's own pointer). */
struct Sink {
    const SinkOps *ops;
    SinkHost *host;
};

struct SinkHost {
    void *ud;
    /*
     * applied() - @sink finished with @rev: @ok is 1 when every target accepted it (for
     * dataplane: every ready gateway), 0 when it failed for good (after its own retries it may
     * still try again later and report again).
     */
    void (*applied)(SinkHost *h, Sink *sink, Revision *rev, int ok);
    /*
     * rejected() - a gateway refused @rev and named the objects at fault: @broken is a JSON array
     * of {"kind","namespace","name","uid","group","version"} (borrowed). The host returns a
     * fallback revision that leaves out those objects and everything depending on them
     * (new reference), or NULL when none can be built. May be NULL when no fallback is wanted.
     */
    Revision *(*rejected)(SinkHost *h, Sink *sink, Revision *rev, json_t *broken);
};
