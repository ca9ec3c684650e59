/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by every module. See util.h. */
#include "util.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <fcntl.h>
#include <limits.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int buf_reserve(Buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int util_grow(void *v, size_t *cap, size_t n, size_t size, size_t first)
{
    void *old, *nv;
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : first;
    if (c < *cap || c > SIZE_MAX / size)
        return -ENOMEM;
    memcpy(&old, v, sizeof(old)); /* @v points at a T *: copy it, do not alias it */
    if (!(nv = realloc(old, c * size)))
        return -ENOMEM;
    memcpy(v, &nv, sizeof(nv));
    *cap = c;
    return 0;
}

int buf_append(Buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int buf_puts(Buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_putc(Buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int buf_printf(Buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof(small))
        return buf_append(b, small, (size_t)n);
    if (buf_reserve(b, (size_t)n) < 0)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_reset(Buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

void buf_deinit(Buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *buf_take(Buf *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void util_sha256(const void *p, size_t n, unsigned char out[32])
{
    SHA256(p, n, out);
}

void util_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char d[32];
    static const char hex[] = "0123456789abcdef";

    SHA256(p, n, d);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[64] = 0;
}

static int parse_uuid(const char *s, unsigned char out[16])
{
    int j = 0;
    for (int i = 0; s[i] && j < 32; i++) {
        int c = s[i], v;
        if (c == '-')
            continue;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            return -EINVAL;
        if (j % 2 == 0)
            out[j / 2] = (unsigned char)(v << 4);
        else
            out[j / 2] |= (unsigned char)v;
        j++;
    }
    return j == 32 ? 0 : -EINVAL;
}

/* SHA-1 for name-based UUIDs only (RFC 3174): OpenSSL's EVP dispatch costs more than the hash
 * itself for these 50-byte inputs, and translation computes one per Kong entity. */
static uint32_t rol(uint32_t v, int n)
{
    return (v << n) | (v >> (32 - n));
}

/* One round group per loop (no per-round branch) over a 16-word rolling message schedule. */
#define SHA1_W(i) (w[(i) & 15] = rol(w[((i) + 13) & 15] ^ w[((i) + 8) & 15] ^ w[((i) + 2) & 15] ^ w[(i) & 15], 1))
#define SHA1_ROUND(f, k, wi)                                                                       \
    do {                                                                                           \
        uint32_t t = rol(a, 5) + (f) + e + (k) + (wi);                                             \
        e = d;                                                                                     \
        d = c;                                                                                     \
        c = rol(b, 30);                                                                            \
        b = a;                                                                                     \
        a = t;                                                                                     \
    } while (0)

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[16], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    int i;
    for (i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
        SHA1_ROUND((b & c) | (~b & d), 0x5A827999, w[i]);
    }
    for (; i < 20; i++)
        SHA1_ROUND((b & c) | (~b & d), 0x5A827999, SHA1_W(i));
    for (; i < 40; i++)
        SHA1_ROUND(b ^ c ^ d, 0x6ED9EBA1, SHA1_W(i));
    for (; i < 60; i++)
        SHA1_ROUND((b & c) | (b & d) | (c & d), 0x8F1BBCDC, SHA1_W(i));
    for (; i < 80; i++)
        SHA1_ROUND(b ^ c ^ d, 0xCA62C1D6, SHA1_W(i));
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const unsigned char *p, size_t n, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    unsigned char tail[128];
    size_t full = n / 64 * 64, rest = n - full;
    for (size_t off = 0; off < full; off += 64)
        sha1_block(h, p + off);
    memset(tail, 0, sizeof(tail));
    memcpy(tail, p + full, rest);
    tail[rest] = 0x80;
    size_t tl = rest + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, tail);
    if (tl == 128)
        sha1_block(h, tail + 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

int util_uuid5(const char *ns, const char *name, char out[37])
{
    unsigned char small[256], d[20];
    size_t nl = strlen(name);
    unsigned char *buf = nl + 16 <= sizeof(small) ? small : malloc(nl + 16);

    if (!buf)
        return -ENOMEM;
    if (parse_uuid(ns, buf) < 0) {
        if (buf != small)
            free(buf);
        return -EINVAL;
    }
    memcpy(buf + 16, name, nl);
    sha1(buf, nl + 16, d);
    if (buf != small)
        free(buf);
    d[6] = (unsigned char)((d[6] & 0x0f) | 0x50);
    d[8] = (unsigned char)((d[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[d[i] >> 4];
        out[o++] = hex[d[i] & 15];
    }
    out[o] = 0;
    return 0;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

unsigned char *util_base64_decode(const char *in, size_t inlen, size_t *ret_len)
{
    unsigned char *out = malloc(inlen / 4 * 3 + 4);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < inlen; i++) {
        int c = (unsigned char)in[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64val(c);
        if (v < 0 || pad) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (pad > 2 || bits >= 6) {
        free(out);
        return NULL;
    }
    out[o] = 0;
    if (ret_len)
        *ret_len = o;
    return out;
}

char *util_base64_encode(const unsigned char *in, size_t inlen)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((inlen + 2) / 3 * 4 + 1);
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < inlen; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < inlen)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < inlen)
            v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < inlen ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < inlen ? tbl[v & 63] : '=';
    }
    out[o] = 0;
    return out;
}

char *util_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

uint64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int util_read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return -EISDIR;
    }
    Buf b = BUF_INIT;
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            close(fd);
            buf_deinit(&b);
            return r;
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > max) {
            close(fd);
            buf_deinit(&b);
            return -EFBIG;
        }
        if (buf_append(&b, chunk, (size_t)n) < 0) {
            close(fd);
            buf_deinit(&b);
            return -ENOMEM;
        }
    }
    close(fd);
    if (ret_len)
        *ret_len = b.len;
    *ret = buf_take(&b);
    return 0;
}

int util_write_file_atomic(const char *path, const void *p, size_t n, int mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    const char *c = p;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, c + off, n - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            close(fd);
            unlink(tmp);
            return r;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        int r = -errno;
        unlink(tmp);
        return r;
    }
    if (rename(tmp, path) < 0) {
        int r = -errno;
        unlink(tmp);
        return r;
    }
    return 0;
}

void util_tune_malloc(void)
{
#ifdef __GLIBC__
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
#endif
}

Bytes *bytes_new(char *data, size_t len)
{
    Bytes *b = malloc(sizeof(*b));
    if (!b) {
        free(data);
        return NULL;
    }
    *b = (Bytes){1, false, len, data};
    return b;
}

Bytes *bytes_ref(Bytes *b)
{
    if (b)
        __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

void bytes_unref(Bytes *b)
{
    if (!b || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
#ifdef __GLIBC__
    if (b->recycle && b->len >= (1 << 20))
        util_spare_give(b->data, malloc_usable_size(b->data));
    else
#endif
        free(b->data);
    free(b);
}

static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static void *spare;
static size_t spare_cap;

void util_spare_give(void *p, size_t cap)
{
    pthread_mutex_lock(&spare_lock);
    if (!spare) {
        spare = p;
        spare_cap = cap;
        p = NULL;
    }
    pthread_mutex_unlock(&spare_lock);
    free(p);
}

void *util_spare_take(size_t need, size_t *ret_cap)
{
    void *p = NULL;
    pthread_mutex_lock(&spare_lock);
    if (spare && spare_cap >= need) {
        p = spare;
        *ret_cap = spare_cap;
        spare = NULL;
    }
    pthread_mutex_unlock(&spare_lock);
    return p;
}
