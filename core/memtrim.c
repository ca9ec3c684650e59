/* SPDX-License-Identifier: Apache-2.0 */
/* Deferred trimming of freed memory. See memtrim.h. */
#include "memtrim.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdint.h>

#include "jarena.h"
#include "util.h"

static struct {
    uint64_t quiet_ms;     /* atomic: set on the loop, read by the pool's threads; 0: no defer */
    uint64_t max_ms;
    uint64_t count;        /* atomic */
    bool pending;          /* atomic: a release came after the last trim started */
    uint64_t last_release; /* atomic: util_now_ms() of the last release */
    uint64_t first_seen;   /* loop thread: when a tick first saw this trim pending, or 0 */
    bool working;          /* loop thread: the trim request is queued or running */
    uv_work_t req;
} mt;

void memtrim_now(void)
{
#ifdef __GLIBC__
    /* The pool threads' malloc arenas keep what was freed (big buffers are mapped on their own:
     * see util_tune_malloc()). Trimming locks every arena. */
    util_heap_trim();
#endif
    jarena_trim();
    __atomic_add_fetch(&mt.count, 1, __ATOMIC_RELAXED);
}

uint64_t memtrim_count(void)
{
    return __atomic_load_n(&mt.count, __ATOMIC_RELAXED);
}

void memtrim_defer(uint64_t quiet_ms, uint64_t max_ms)
{
    mt.max_ms = max_ms; /* read on the loop only */
    __atomic_store_n(&mt.quiet_ms, quiet_ms, __ATOMIC_RELEASE);
}

void memtrim_released(void)
{
    if (!__atomic_load_n(&mt.quiet_ms, __ATOMIC_ACQUIRE)) {
        memtrim_now();
        return;
    }
    __atomic_store_n(&mt.last_release, util_now_ms(), __ATOMIC_RELEASE);
    __atomic_store_n(&mt.pending, true, __ATOMIC_RELEASE);
}

bool memtrim_pending(void)
{
    return __atomic_load_n(&mt.pending, __ATOMIC_ACQUIRE) || mt.working;
}

static void trim_work(uv_work_t *w)
{
    (void)w;
    memtrim_now();
}

static void trim_done(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
    mt.working = false;
}

void memtrim_tick(uv_loop_t *loop)
{
    if (mt.working || !__atomic_load_n(&mt.pending, __ATOMIC_ACQUIRE))
        return;
    uint64_t last = __atomic_load_n(&mt.last_release, __ATOMIC_ACQUIRE), now = util_now_ms();
    if (!mt.first_seen)
        mt.first_seen = now; /* the longest wait counts from here: at most a tick late */
    bool quiet = now >= last && now - last >= __atomic_load_n(&mt.quiet_ms, __ATOMIC_ACQUIRE);
    /* Changes that never pause (endpoints churning) still get a trim now and then */
    if (!quiet && now - mt.first_seen < mt.max_ms)
        return;
    /* Cleared before the trim starts: a release during it asks for another one. */
    __atomic_store_n(&mt.pending, false, __ATOMIC_RELEASE);
    mt.first_seen = 0;
    mt.working = true;
    if (uv_queue_work(loop, &mt.req, trim_work, trim_done) < 0) {
        mt.working = false;
        memtrim_now();
    }
}
