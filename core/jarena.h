/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Region allocation for the jansson values a translation makes (owner: translator).
 *
 * A translation makes a million small values and frees them all together with its configuration
 * tree. glibc's malloc spent a third of translation time on them (consolidating fast bins,
 * unlinking chunks, freeing one by one). While a thread is inside jarena_enter(), jansson's
 * allocations are carved from 64 KB blocks of one reserved address range, 8-byte aligned and
 * without headers; a block goes back to a free list when every value carved from it is freed,
 * whichever thread frees it. Values made outside stay with malloc, and jansson's free tells the
 * two apart by address.
 *
 * What outlives a translation (failures, the shared constants) must be made with the arena
 * paused, or it pins its block. jarena_stats() makes that testable: with every configuration
 * freed, no block is in use but the lanes' (below): a store's objects, copied in bulk.
 *
 * Off under AddressSanitizer and valgrind (they would not see the values inside blocks), and with
 * TETHER_ARENA=0 in the environment. The range is address space only (32 GB, PROT_NONE until
 * used); where it cannot be reserved (a tight ulimit -v), everything goes to malloc. Past its
 * first 8 MB it asks for transparent huge pages, so jarena_trim() hands back 2 MB chunks whose
 * blocks are all free whole (the kernel frees a huge page only whole).
 */
#include <stdbool.h>
#include <stddef.h>

/* Nestable: this thread's new jansson values come from the arena until the matching leave. */
void jarena_enter(void);
void jarena_leave(void);

/*
 * Lanes: values carved in a lane of their own, apart from the thread's. The store copies each
 * object into its kind's lane (store.h), so that a kind's objects lie together in the order
 * they came. Between jarena_lane_enter() and jarena_lane_leave() this thread's new values come
 * from @l (arena or not); jarena_lane_end() lets go of the lane's current block (its values keep
 * it until they are freed). A lane is one thread's at a time. A zeroed lane is ready for use.
 */
typedef struct JArenaCarving {
    char *pos, *end;
    void *blk;
    long carved;
} JArenaCarving;

typedef struct JArenaLane {
    JArenaCarving own, saved;
    int saved_depth;
} JArenaLane;

void jarena_lane_enter(JArenaLane *l);
void jarena_lane_leave(JArenaLane *l);
void jarena_lane_end(JArenaLane *l);

/* Whether this thread's values come from the arena now: a helper thread does as its caller. */
bool jarena_active(void);

/* Whether @p was carved from the arena (for tests). */
bool jarena_owns(const void *p);

/* Make values that outlive the translation with malloc; returns what jarena_resume() needs. */
int jarena_pause(void);
void jarena_resume(int saved);

/* Hand the pages of free blocks back to the system (as malloc_trim() does for malloc's). */
void jarena_trim(void);

typedef struct JArenaStats {
    bool enabled;
    size_t blocks_used; /* carved from and not yet wholly freed, or a thread's current block */
    size_t blocks_free;
    size_t blocks_trimmed; /* free, their pages handed back by jarena_trim() */
    size_t chunks_trimmed; /* 2 MB chunks of such blocks, handed back whole */
} JArenaStats;
void jarena_stats(JArenaStats *s);
