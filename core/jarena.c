/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Region allocation for translation's jansson values: see jarena.h. The blocks come from one
 * reserved range, so a free needs no header to know where a value came from, and each block
 * counts its live values.
 *
 * Counting without an atomic per allocation: a block that becomes a thread's current block starts
 * its count at BIAS. Frees (from any thread) subtract one each. When the thread moves on, it
 * subtracts BIAS less the number of values it carved; the count then reaches zero exactly when
 * the last value is freed, whether that happened before or after.
 */
#include "jarena.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define JARENA_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define JARENA_SANITIZED 1
#endif
#endif
#ifdef HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define BLOCK ((size_t)64 * 1024)
#define HEAD ((size_t)64)            /* the block's header, on a cache line of its own */
#define SMALL_MAX ((size_t)4 * 1024) /* bigger values (hash tables, big arrays) go to malloc */
#define RESERVE ((size_t)32 << 30)   /* address space only: pages are committed as used */
#define COMMIT_STEP ((size_t)2 << 20) /* and a huge page's size: the range is aligned to it */
#define HUGE_AFTER ((size_t)8 << 20)
#define CHUNK_BLOCKS (COMMIT_STEP / BLOCK)
#define BIAS ((long)1 << 40)

typedef struct Block {
    long live;          /* atomic */
    struct Block *next; /* in the free list */
    bool trimmed;       /* in the free list, its pages handed back */
} Block;

static struct {
    pthread_mutex_t lock;
    bool enabled;   /* set before main(), read-only after */
    bool failed;    /* the reservation failed: everything goes to malloc */
    uintptr_t lo;   /* atomic: the reserved range, 0 until the first block */
    size_t size;
    uintptr_t next, committed; /* carving point and end of the read-write part */
    Block *free_list;
    size_t nfree, ncarved, ntrimmed;
    uintptr_t *chunks; /* 2 MB chunks handed back whole, their blocks out of the free list */
    size_t nchunks, cchunks;
} region = {.lock = PTHREAD_MUTEX_INITIALIZER};

static __thread struct {
    int depth;
    JArenaCarving c; /* blk: the Block carved from; carved: values carved from it */
} tls;

static void release(Block *b)
{
    pthread_mutex_lock(&region.lock);
    b->next = region.free_list;
    b->trimmed = false;
    region.free_list = b;
    region.nfree++;
    pthread_mutex_unlock(&region.lock);
}

/* The thread is done carving from its block. */
static void retire(void)
{
    Block *b = tls.c.blk;
    if (!b)
        return;
    long carved = tls.c.carved;
    tls.c = (JArenaCarving){NULL, NULL, NULL, 0};
    if (__atomic_sub_fetch(&b->live, BIAS - carved, __ATOMIC_ACQ_REL) == 0)
        release(b);
}

static bool reserve_locked(void)
{
    if (region.lo)
        return true;
    if (region.failed)
        return false;
    void *p = mmap(NULL, RESERVE + COMMIT_STEP, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        region.failed = true;
        return false;
    }
    uintptr_t lo = ((uintptr_t)p + COMMIT_STEP - 1) & ~(uintptr_t)(COMMIT_STEP - 1);
    /*
     * A translation writes its tree into new memory, and at 10,000 Ingresses four-kilobyte page
     * faults were a third of its time (each fault is dear in a virtual machine). Huge pages
     * where the kernel gives them on request (THP "madvise"), past the first HUGE_AFTER bytes:
     * a small configuration's few blocks would each pin two megabytes.
     */
#ifdef MADV_HUGEPAGE
    (void)madvise((void *)(lo + HUGE_AFTER), RESERVE - HUGE_AFTER, MADV_HUGEPAGE);
#endif
    region.size = RESERVE;
    region.next = region.committed = lo;
    __atomic_store_n(&region.lo, lo, __ATOMIC_RELEASE);
    return true;
}

/* A chunk handed back whole becomes free blocks again (its first write faults it in anew). */
static void recycle_chunk_locked(void)
{
    uintptr_t c = region.chunks[--region.nchunks];
    for (size_t i = CHUNK_BLOCKS; i-- > 0;) {
        Block *b = (Block *)(c + i * BLOCK);
        b->next = region.free_list;
        b->trimmed = false;
        region.free_list = b;
        region.nfree++;
    }
}

static Block *take_block(void)
{
    Block *b = NULL;
    pthread_mutex_lock(&region.lock);
    if (!region.free_list && region.nchunks)
        recycle_chunk_locked();
    if (region.free_list) {
        b = region.free_list;
        region.free_list = b->next;
        region.nfree--;
        region.ntrimmed -= b->trimmed;
    } else if (reserve_locked() && region.next + BLOCK <= region.lo + region.size) {
        if (region.next + BLOCK > region.committed) {
            size_t step = COMMIT_STEP;
            if (region.committed + step > region.lo + region.size)
                step = region.lo + region.size - region.committed;
            if (mprotect((void *)region.committed, step, PROT_READ | PROT_WRITE) == 0)
                region.committed += step;
        }
        if (region.next + BLOCK <= region.committed) {
            b = (Block *)region.next;
            region.next += BLOCK;
            region.ncarved++;
        }
    }
    pthread_mutex_unlock(&region.lock);
    return b;
}

static void *jalloc(size_t n)
{
    if (!tls.depth || n > SMALL_MAX)
        return malloc(n);
    n = (n + 7) & ~(size_t)7;
    if ((size_t)(tls.c.end - tls.c.pos) < n) {
        retire();
        Block *b = take_block();
        if (!b)
            return malloc(n);
        __atomic_store_n(&b->live, BIAS, __ATOMIC_RELAXED);
        tls.c = (JArenaCarving){(char *)b + HEAD, (char *)b + BLOCK, b, 0};
    }
    void *p = tls.c.pos;
    tls.c.pos += n;
    tls.c.carved++;
    return p;
}

static void jfree(void *p)
{
    uintptr_t a = (uintptr_t)p, lo = __atomic_load_n(&region.lo, __ATOMIC_ACQUIRE);
    if (!lo || a - lo >= region.size) {
        free(p);
        return;
    }
    Block *b = (Block *)(a & ~(uintptr_t)(BLOCK - 1));
    if (__atomic_sub_fetch(&b->live, 1, __ATOMIC_ACQ_REL) == 0)
        release(b);
}

/* Before main(): jansson's functions must not change while any value exists. */
__attribute__((constructor)) static void install(void)
{
#ifndef JARENA_SANITIZED
    const char *e = getenv("TETHER_ARENA");
    if ((e && !strcmp(e, "0")) || RUNNING_ON_VALGRIND)
        return;
    region.enabled = true;
    json_set_alloc_funcs(jalloc, jfree);
#endif
}

void jarena_enter(void)
{
    if (region.enabled)
        tls.depth++;
}

void jarena_leave(void)
{
    if (region.enabled && tls.depth > 0 && --tls.depth == 0)
        retire();
}

void jarena_lane_enter(JArenaLane *l)
{
    if (!region.enabled)
        return;
    l->saved = tls.c;
    l->saved_depth = tls.depth;
    tls.c = l->own;
    tls.depth = 1;
}

void jarena_lane_leave(JArenaLane *l)
{
    if (!region.enabled)
        return;
    l->own = tls.c;
    tls.c = l->saved;
    tls.depth = l->saved_depth;
}

void jarena_lane_end(JArenaLane *l)
{
    if (!region.enabled)
        return;
    JArenaCarving mine = tls.c;
    tls.c = l->own;
    retire();
    tls.c = mine;
    l->own = (JArenaCarving){NULL, NULL, NULL, 0};
}

bool jarena_active(void)
{
    return tls.depth > 0;
}

bool jarena_owns(const void *p)
{
    uintptr_t lo = __atomic_load_n(&region.lo, __ATOMIC_ACQUIRE);
    return lo && (uintptr_t)p - lo < region.size;
}

int jarena_pause(void)
{
    int d = tls.depth;
    tls.depth = 0;
    return d;
}

void jarena_resume(int saved)
{
    tls.depth = saved;
}

/*
 * Free blocks past HUGE_AFTER may lie in a huge page. Handing back part of one splits it only
 * later, when the kernel is short of memory: until then none of it is freed. So a chunk whose
 * blocks are all free goes back whole (its blocks leave the free list: their headers go with it),
 * and only the free blocks of chunks still in use are handed back one by one.
 */
static void trim_whole_chunks_locked(void)
{
    size_t nch = (region.committed - region.lo) / COMMIT_STEP;
    if (!nch)
        return;
    if (region.cchunks < nch) {
        uintptr_t *c = realloc(region.chunks, nch * sizeof(*c));
        if (!c)
            return; /* then block by block */
        region.chunks = c;
        region.cchunks = nch;
    }
    unsigned char *count = calloc(nch, 1);
    if (!count)
        return;
    for (Block *b = region.free_list; b; b = b->next)
        if ((uintptr_t)b - region.lo >= HUGE_AFTER)
            count[((uintptr_t)b - region.lo) / COMMIT_STEP]++;
    for (Block **pp = &region.free_list; *pp;) {
        Block *b = *pp;
        if ((uintptr_t)b - region.lo >= HUGE_AFTER &&
            count[((uintptr_t)b - region.lo) / COMMIT_STEP] == CHUNK_BLOCKS) {
            *pp = b->next;
            region.nfree--;
            region.ntrimmed -= b->trimmed;
        } else {
            pp = &b->next;
        }
    }
    for (size_t i = 0; i < nch; i++) {
        if (count[i] != CHUNK_BLOCKS)
            continue;
        void *c = (void *)(region.lo + i * COMMIT_STEP);
        (void)madvise(c, COMMIT_STEP, MADV_DONTNEED);
#ifdef MADV_HUGEPAGE
        (void)madvise(c, COMMIT_STEP, MADV_HUGEPAGE); /* undo a partial trim's advice */
#endif
        region.chunks[region.nchunks++] = (uintptr_t)c;
    }
    free(count);
}

void jarena_trim(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (page >= BLOCK)
        return;
    pthread_mutex_lock(&region.lock);
    if (region.lo)
        trim_whole_chunks_locked();
    for (Block *b = region.free_list; b; b = b->next) {
        /* The header's page stays: the free list runs through it (whole chunks left it). */
        if (b->trimmed || madvise((char *)b + page, BLOCK - page, MADV_DONTNEED) != 0)
            continue;
        b->trimmed = true;
        region.ntrimmed++;
#ifdef MADV_NOHUGEPAGE
        /*
         * Its chunk is still in use: khugepaged would make a huge page of it again, the
         * handed-back pages as zeros. (Advice on a range already so advised changes nothing.)
         */
        if ((uintptr_t)b - region.lo >= HUGE_AFTER)
            (void)madvise((void *)((uintptr_t)b & ~(uintptr_t)(COMMIT_STEP - 1)), COMMIT_STEP,
                          MADV_NOHUGEPAGE);
#endif
    }
    pthread_mutex_unlock(&region.lock);
}

void jarena_stats(JArenaStats *s)
{
    pthread_mutex_lock(&region.lock);
    s->enabled = region.enabled && !region.failed;
    s->blocks_free = region.nfree + region.nchunks * CHUNK_BLOCKS;
    s->blocks_trimmed = region.ntrimmed + region.nchunks * CHUNK_BLOCKS;
    s->chunks_trimmed = region.nchunks;
    s->blocks_used = region.ncarved - s->blocks_free;
    pthread_mutex_unlock(&region.lock);
}
