/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Small helpers shared by every module: a growable buffer, hashing, UUIDv5, base64. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

/* Buf - growable byte buffer, always NUL-terminated. Embed it; BUF_INIT or zero it. */
typedef struct Buf {
    char *data;
    size_t len;
    size_t cap;
} Buf;
#define BUF_INIT {NULL, 0, 0}

int buf_reserve(Buf *b, size_t extra);

/*
 * util_grow() - make room for one more element in the array *@v of *@cap elements of @size
 * bytes holding @n: doubles it (from @first) when full. 0, or -ENOMEM with the array untouched.
 */
int util_grow(void *v, size_t *cap, size_t n, size_t size, size_t first);
int buf_append(Buf *b, const void *p, size_t n);
int buf_puts(Buf *b, const char *s);
int buf_putc(Buf *b, char c);
int buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(Buf *b);
void buf_deinit(Buf *b);
/* buf_take() - hand the bytes to the caller (free() them); the buffer is left empty. */
char *buf_take(Buf *b);

/* util_sha256_hex() - lower-case hex SHA-256 of @p into @out (65 bytes). */
void util_sha256_hex(const void *p, size_t n, char out[65]);
void util_sha256(const void *p, size_t n, unsigned char out[32]);
/* The same over bytes given piece by piece: begin (NULL when memory runs out), add, end (frees
 * the state; @out NULL only frees it). */
typedef struct UtilSha256 UtilSha256;
UtilSha256 *util_sha256_begin(void);
void util_sha256_add(UtilSha256 *h, const void *p, size_t n);
void util_sha256_end(UtilSha256 *h, char out[65]);

/* util_uuid5() - RFC 4122 name-based UUID (SHA-1) of @name in namespace @ns (36-char text form). */
int util_uuid5(const char *ns, const char *name, char out[37]);
/* util_sha1() - SHA-1 of @p, the hash util_uuid5() uses (for names, not for security). */
void util_sha1(const void *p, size_t n, unsigned char out[20]);
/* util_sha1_use_accel() - for tests: hash with the CPU's SHA instructions, when @on and the CPU
 * has them, or with the portable code. Returns whether the instructions are now in use. */
bool util_sha1_use_accel(bool on);

/*
 * util_base64_decode() - decode standard base64, ignoring whitespace (as Kubernetes' decoder does
 * for multi-line Secret data). Returns a malloc'd buffer (NUL-terminated) or NULL on bad input.
 */
unsigned char *util_base64_decode(const char *in, size_t inlen, size_t *ret_len);
char *util_base64_encode(const unsigned char *in, size_t inlen);

/* util_strdup_printf() - malloc'd formatted string, NULL on failure. */
char *util_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * util_go_float() - @d (finite) with the fewest digits that read back to it as a float64 (@bits
 * 64) or a float32 (32), as Go formats it: @fmt 'j' as encoding/json writes a float64 (plain
 * decimals from 1e-6 up to 1e21, else an exponent: "1e+21", "1e-7"), 'g' as
 * strconv.FormatFloat(d, 'g', -1, bits) ("1e+06", "1.5"). KIC's numbers pass through Go's
 * float64, so tether writes them the same way. Returns the length written to @out.
 */
#define UTIL_FLOAT_MAX 40
size_t util_go_float(double d, int bits, char fmt, char out[UTIL_FLOAT_MAX]);

/* util_now_ms() - monotonic milliseconds. */
uint64_t util_now_ms(void);

/* util_read_file() - read a whole regular file (at most @max bytes); malloc'd, NUL-terminated. */
int util_read_file(const char *path, size_t max, char **ret, size_t *ret_len);
/* util_write_file_atomic() - write to a temp file beside @path, fsync, rename over @path. */
int util_write_file_atomic(const char *path, const void *p, size_t n, int mode);

/*
 * util_tune_malloc() - glibc malloc settings for a long-running tether: two arenas (the loop and
 * the thread pool would otherwise make one each, every one keeping what it freed), big buffers
 * mapped on their own (256 KB and up: configurations come and go in one piece), and free memory
 * at the top of a heap handed back from 1 MB on. Without them the dynamic thresholds grow with
 * each 10 MB configuration and thread arenas keep tens of MB. No fast bins either: a load frees
 * a million small values into them, and the next big request in that arena (a translation's
 * first array) had to consolidate them all; freed chunks now merge as they are freed, and the
 * per-thread cache still serves the small sizes. The main heap grows 32 MB at a time and asks
 * for huge pages (util_heap_huge()). No-op elsewhere.
 */
void util_tune_malloc(void);
/*
 * util_heap_huge() - advise huge pages on the whole of glibc's main heap (brk), as it is now.
 * A translation's working memory is a few hundred thousand small allocations, new memory in a
 * fresh process; on a virtual machine each 4 KB page's first touch is a fault of about 15 µs
 * (the hypervisor shadows page tables), one per 2 MB much less. Called at each translation's
 * start: what brk adds is a mapping of its own, without the advice. What was below the heap's end
 * at the last util_heap_trim() is left as it is.
 */
void util_heap_huge(void);
/* util_heap_trim() - malloc_trim(0), and no huge pages where it left holes (see there). */
void util_heap_trim(void);
/*
 * util_advise_huge() - ask for huge pages where [@p, @p + @n) holds whole ones: for big buffers
 * written once from end to end (a configuration's canonical JSON), whose first touch of each
 * four-kilobyte page is otherwise a page fault. Nothing happens where the kernel does not offer
 * them on request.
 */
void util_advise_huge(void *p, size_t n);

/*
 * Bytes: a refcounted buffer that threads share (a configuration's canonical JSON, held by its
 * revision and by the namespace plan that points into it). bytes_new() takes @data (malloc'd);
 * the last unref frees it, or makes it the spare buffer (below) when @recycle is set.
 */
typedef struct Bytes {
    int refs; /* atomic */
    bool recycle;
    size_t len;
    char *data;
} Bytes;
Bytes *bytes_new(char *data, size_t len); /* NULL (and @data freed) on allocation failure */
Bytes *bytes_ref(Bytes *b);               /* NULL-safe */
void bytes_unref(Bytes *b);               /* NULL-safe */

/*
 * A spare big buffer: the configuration being replaced hands its bytes over, and the next one
 * is written into them, already in memory (a fresh 10 MB buffer costs ~2,500 page faults, a
 * fifth of redoing one namespace). One at a time; any thread.
 * util_spare_give() - keep @p (malloc'd, @cap usable bytes) if there is none yet, else free it.
 * util_spare_take() - the spare if it has room for @need bytes (*ret_cap set), else NULL.
 */
void util_spare_give(void *p, size_t cap);
void *util_spare_take(size_t need, size_t *ret_cap);
