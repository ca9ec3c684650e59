/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Handing freed memory back to the kernel (owner: controller).
 *
 * A freed configuration tree leaves its pages with malloc and with the translation arena. Trimmed
 * at once, the next translation faults every page in again: at 10,000 Ingress sets a full
 * translation took half as long again as on warm memory. So tether run trims only once
 * translations have paused for MEMTRIM_QUIET_MS: a burst of changes reuses the pages of the
 * trees before it, and an idle controller still gives them back. Without memtrim_defer() (tests,
 * benchmarks, tether translate) every release trims at once, as before.
 */
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define MEMTRIM_QUIET_MS 5000
#define MEMTRIM_MAX_MS 60000 /* and at least this often while there is something to trim */

/*
 * memtrim_defer() - loop thread, before translations start: trim once releases have paused for
 * @quiet_ms, or @max_ms after a tick first saw a release not yet trimmed (MEMTRIM_QUIET_MS and
 * MEMTRIM_MAX_MS in tether run); @quiet_ms 0: at once.
 */
void memtrim_defer(uint64_t quiet_ms, uint64_t max_ms);

/* memtrim_released() - any thread, after a big tree or store was freed: trim now or later. */
void memtrim_released(void);

/*
 * memtrim_tick() - loop thread, from a periodic timer: when memtrim_defer()'s time has come, trim
 * in @loop's thread pool. The work is a request of @loop, done before uv_run() returns.
 */
void memtrim_tick(uv_loop_t *loop);

/* memtrim_pending() - loop thread: whether a deferred trim is still to come. */
bool memtrim_pending(void);

/* memtrim_count() - trims done so far (for tests). */
uint64_t memtrim_count(void);

/* memtrim_now() - any thread: malloc's free pages (glibc) and the arena's free blocks. */
void memtrim_now(void);
