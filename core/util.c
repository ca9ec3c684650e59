/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by every module. See util.h. */
#include "util.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* x86-64 CPUs with the SHA extensions hash SHA-1 blocks in hardware; other targets keep the
 * portable code only. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SHA1_NI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

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

static void hex32(const unsigned char d[32], char out[65])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[64] = 0;
}

void util_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char d[32];
    SHA256(p, n, d);
    hex32(d, out);
}

struct UtilSha256 {
    EVP_MD_CTX *ctx;
};

UtilSha256 *util_sha256_begin(void)
{
    UtilSha256 *h = malloc(sizeof(*h));
    if (!h)
        return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
    }
    return h;
}

void util_sha256_add(UtilSha256 *h, const void *p, size_t n)
{
    if (h && n)
        (void)EVP_DigestUpdate(h->ctx, p, n);
}

void util_sha256_end(UtilSha256 *h, char out[65])
{
    unsigned char d[32];
    unsigned int len = 0;
    if (!h)
        return;
    if (out && EVP_DigestFinal_ex(h->ctx, d, &len) == 1 && len == 32)
        hex32(d, out);
    else if (out)
        out[0] = 0;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

/* 1 + the value of each hex digit, so that 0 (the default) marks every other byte. */
static const unsigned char hex1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static int parse_uuid(const char *s, unsigned char out[16])
{
    /* Every namespace we are given is in the canonical 8-4-4-4-12 form: decode it at fixed
     * offsets without a branch per digit (this ran once per Kong entity). */
    static const unsigned char at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    if (strnlen(s, 37) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-') {
        unsigned bad = 0;
        for (int i = 0; i < 16; i++) {
            unsigned hi = hex1[(unsigned char)s[at[i]]] - 1u;
            unsigned lo = hex1[(unsigned char)s[at[i] + 1]] - 1u;
            bad |= hi | lo;
            out[i] = (unsigned char)(hi << 4 | lo);
        }
        return bad < 16 ? 0 : -EINVAL;
    }
    /* Any other layout: 32 hex digits with dashes anywhere, as before. */
    int j = 0;
    for (int i = 0; s[i] && j < 32; i++) {
        if (s[i] == '-')
            continue;
        unsigned v = hex1[(unsigned char)s[i]] - 1u;
        if (v > 15)
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

#ifdef SHA1_NI
/*
 * The SHA instructions keep A..D in one register (A in the top lane), E alone in the top lane of
 * another, and take message words with the first in the top lane. sha1rnds4 does four rounds
 * (its immediate picks f and K, one per 20 rounds) given W0 + E; sha1nexte makes the next four
 * rounds' E, which is the A of four rounds before rotated by 30, and adds it to their W0.
 */
#define SHA1NI_ROUNDS(k, wv)                                                                       \
    do {                                                                                           \
        __m128i we = _mm_sha1nexte_epu32(prev, wv);                                                \
        prev = abcd;                                                                               \
        abcd = _mm_sha1rnds4_epu32(abcd, we, k);                                                   \
    } while (0)
/* W[t..t+3] from the 16 words before them, into the register of the oldest four. */
#define SHA1NI_SCHED(w0, w1, w2, w3)                                                               \
    (w0 = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32(w0, w1), w2), w3))
#define SHA1NI_16ROUNDS(k0, k1, k2, k3)                                                            \
    do {                                                                                           \
        SHA1NI_SCHED(m0, m1, m2, m3);                                                              \
        SHA1NI_ROUNDS(k0, m0);                                                                     \
        SHA1NI_SCHED(m1, m2, m3, m0);                                                              \
        SHA1NI_ROUNDS(k1, m1);                                                                     \
        SHA1NI_SCHED(m2, m3, m0, m1);                                                              \
        SHA1NI_ROUNDS(k2, m2);                                                                     \
        SHA1NI_SCHED(m3, m0, m1, m2);                                                              \
        SHA1NI_ROUNDS(k3, m3);                                                                     \
    } while (0)

static __attribute__((target("sha,sse4.1,ssse3"))) void
sha1_blocks_ni(uint32_t h[5], const unsigned char *p, size_t n)
{
    /* Reverses the 16 bytes: big-endian words, the first of them in the top lane. */
    const __m128i swap = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0x1B);
    __m128i e = _mm_set_epi32((int)h[4], 0, 0, 0);

    for (; n; n--, p += 64) {
        __m128i abcd0 = abcd, e0 = e, prev = abcd;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), swap);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), swap);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), swap);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), swap);

        abcd = _mm_sha1rnds4_epu32(abcd, _mm_add_epi32(e, m0), 0);
        SHA1NI_ROUNDS(0, m1);
        SHA1NI_ROUNDS(0, m2);
        SHA1NI_ROUNDS(0, m3);
        SHA1NI_16ROUNDS(0, 1, 1, 1);
        SHA1NI_16ROUNDS(1, 1, 2, 2);
        SHA1NI_16ROUNDS(2, 2, 2, 3);
        SHA1NI_16ROUNDS(3, 3, 3, 3);
        /* The E after round 80 comes the same way, added to the block's starting E. */
        e = _mm_sha1nexte_epu32(prev, e0);
        abcd = _mm_add_epi32(abcd, abcd0);
    }
    _mm_storeu_si128((__m128i *)h, _mm_shuffle_epi32(abcd, 0x1B));
    h[4] = (uint32_t)_mm_extract_epi32(e, 3);
}

static bool sha1_cpu_has_ni(void)
{
    unsigned a, b, c, d;
    /* Leaf 1 ECX: SSSE3 (bit 9) for the byte shuffle, SSE4.1 (bit 19) for the lane extract. */
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & 1u << 9) || !(c & 1u << 19))
        return false;
    /* Leaf 7 subleaf 0 EBX bit 29: the SHA extensions. */
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & 1u << 29);
}

/* 1 to use sha1_blocks_ni(), 0 not, -1 until the first hash asks the CPU. Threads that race on
 * the first hash store the same answer, so relaxed atomics are enough. */
static int sha1_ni = -1;

static bool sha1_use_ni(void)
{
    int on = __atomic_load_n(&sha1_ni, __ATOMIC_RELAXED);
    if (on < 0) {
        on = sha1_cpu_has_ni();
        __atomic_store_n(&sha1_ni, on, __ATOMIC_RELAXED);
    }
    return on;
}
#endif

static void sha1_blocks(uint32_t h[5], const unsigned char *p, size_t n)
{
#ifdef SHA1_NI
    if (sha1_use_ni()) {
        sha1_blocks_ni(h, p, n);
        return;
    }
#endif
    for (; n; n--, p += 64)
        sha1_block(h, p);
}

bool util_sha1_use_accel(bool on)
{
#ifdef SHA1_NI
    int v = on && sha1_cpu_has_ni();
    __atomic_store_n(&sha1_ni, v, __ATOMIC_RELAXED);
    return v;
#else
    (void)on;
    return false;
#endif
}

static const uint32_t sha1_init[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};

/* Pads the last @n bytes at @m of a @total-byte message in place (@m has room for the padding)
 * and returns their padded length: 64 or 128. */
static size_t sha1_pad(unsigned char *m, size_t n, uint64_t total)
{
    size_t padded = (n + 9 + 63) / 64 * 64;
    m[n] = 0x80;
    memset(m + n + 1, 0, padded - n - 9);
    for (int i = 0; i < 8; i++)
        m[padded - 1 - i] = (unsigned char)(total * 8 >> (8 * i));
    return padded;
}

static void sha1_out(const uint32_t h[5], unsigned char out[20])
{
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

void util_sha1(const void *p, size_t n, unsigned char out[20])
{
    uint32_t h[5];
    unsigned char tail[128];
    size_t full = n / 64 * 64;
    memcpy(h, sha1_init, sizeof(h));
    sha1_blocks(h, p, n / 64);
    memcpy(tail, (const unsigned char *)p + full, n - full);
    sha1_blocks(h, tail, sha1_pad(tail, n - full, n) / 64);
    sha1_out(h, out);
}

int util_uuid5(const char *ns, const char *name, char out[37])
{
    uint32_t h[5];
    unsigned char small[256], d[20];
    size_t nl = strlen(name), padded = (16 + nl + 9 + 63) / 64 * 64;
    /* Namespace, name and padding in one buffer: hashed in place, no second copy of the tail. */
    unsigned char *buf = padded <= sizeof(small) ? small : malloc(padded);

    if (!buf)
        return -ENOMEM;
    if (parse_uuid(ns, buf) < 0) {
        if (buf != small)
            free(buf);
        return -EINVAL;
    }
    memcpy(buf + 16, name, nl);
    memcpy(h, sha1_init, sizeof(h));
    sha1_pad(buf + (16 + nl) / 64 * 64, (16 + nl) % 64, 16 + nl);
    sha1_blocks(h, buf, padded / 64);
    sha1_out(h, d);
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

/* The shortest digits of @d > 0 that read back to it: into @dig (no dot), their count, and the
 * decimal exponent of the first digit. A correctly rounded %.*e with p digits reads back exactly
 * when any p-digit decimal does, so the first precision that does is the shortest. */
static int shortest_digits(double d, int bits, char dig[20], int *exp10)
{
    char b[UTIL_FLOAT_MAX];
    for (int p = 0; p < 17; p++) {
        snprintf(b, sizeof(b), "%.*e", p, d);
        double back = strtod(b, NULL);
        if (bits == 32 ? (float)back == (float)d : back == d)
            break;
    }
    int n = 0;
    char *c = b;
    for (; *c && *c != 'e'; c++)
        if (*c != '.')
            dig[n++] = *c;
    while (n > 1 && dig[n - 1] == '0')
        n--;
    dig[n] = 0;
    *exp10 = (int)strtol(c + 1, NULL, 10);
    return n;
}

size_t util_go_float(double d, int bits, char fmt, char out[UTIL_FLOAT_MAX])
{
    char dig[20], *o = out;
    bool neg = signbit(d);
    d = fabs(d);
    if (bits == 32)
        d = (float)d;
    if (isinf(d)) /* a float32 too big for its exponent: Go writes "+Inf" */
        return (size_t)snprintf(out, UTIL_FLOAT_MAX, "%cInf", neg ? '-' : '+');
    if (neg)
        *o++ = '-';
    if (d == 0) {
        *o++ = '0';
        *o = 0;
        return (size_t)(o - out);
    }
    int e, n = shortest_digits(d, bits, dig, &e);
    bool expo = fmt == 'j' ? d < 1e-6 || d >= 1e21 : e < -4 || e >= 6;
    if (expo) {
        *o++ = dig[0];
        if (n > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, (size_t)n - 1);
            o += n - 1;
        }
        /* %e's two exponent digits; encoding/json drops the padding of negative ones */
        int w = e < 0 && fmt == 'j' ? 1 : 2;
        o += snprintf(o, UTIL_FLOAT_MAX - (size_t)(o - out), "e%c%0*d", e < 0 ? '-' : '+', w,
                      e < 0 ? -e : e);
        return (size_t)(o - out);
    }
    int dp = e + 1; /* digits before the point */
    if (dp <= 0) {
        *o++ = '0';
        *o++ = '.';
        memset(o, '0', (size_t)-dp);
        o += -dp;
        memcpy(o, dig, (size_t)n);
        o += n;
    } else if (dp >= n) {
        memcpy(o, dig, (size_t)n);
        o += n;
        memset(o, '0', (size_t)(dp - n));
        o += dp - n;
    } else {
        memcpy(o, dig, (size_t)dp);
        o += dp;
        *o++ = '.';
        memcpy(o, dig + dp, (size_t)(n - dp));
        o += n - dp;
    }
    *o = 0;
    return (size_t)(o - out);
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

/*
 * The main heap grows by at least this much at a time (untouched pages cost nothing), so that
 * what a translation adds to it lies in memory already advised to use huge pages.
 */
#define HEAP_PAD ((size_t)32 << 20)

void util_tune_malloc(void)
{
#ifdef __GLIBC__
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    mallopt(M_MXFAST, 0);
    mallopt(M_TOP_PAD, HEAP_PAD);
    free(malloc(1)); /* the heap exists, and its pad */
    util_heap_huge();
#endif
}

#ifdef __GLIBC__
/* The main heap's first byte, from /proc/self/maps; 0 when it cannot be found. */
static uintptr_t heap_start(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[512];
    uintptr_t lo = 0;
    while (f && !lo && fgets(line, sizeof(line), f))
        if (strstr(line, "[heap]"))
            lo = (uintptr_t)strtoull(line, NULL, 16); /* "start-end perms ..." */
    if (f)
        fclose(f);
    return lo;
}
#endif

static struct {
    pthread_mutex_t lock;
    uintptr_t lo;   /* the main heap's first byte, 0 until found */
    uintptr_t kept; /* its end at the last trim: what is below is no longer advised */
} heap = {PTHREAD_MUTEX_INITIALIZER, 0, 0};

void util_heap_huge(void)
{
#if defined(__GLIBC__) && defined(MADV_HUGEPAGE)
    pthread_mutex_lock(&heap.lock);
    if (!heap.lo)
        heap.lo = heap_start();
    uintptr_t top = (uintptr_t)sbrk(0), from = heap.kept > heap.lo ? heap.kept : heap.lo;
    /* Each call from there to the end: what brk adds after a trim is a mapping of its own. */
    if (heap.lo && top != (uintptr_t)-1 && top > from)
        (void)madvise((void *)from, top - from, MADV_HUGEPAGE);
    pthread_mutex_unlock(&heap.lock);
#endif
}

void util_heap_trim(void)
{
#ifdef __GLIBC__
    pthread_mutex_lock(&heap.lock);
    malloc_trim(0);
#ifdef MADV_NOHUGEPAGE
    /*
     * The trim handed back the pages of free chunks, holes in huge pages among others. khugepaged
     * would fill such a range again (a huge page wholly resident) as long as one of its pages is
     * in use: no huge pages below the heap's end any more.
     */
    uintptr_t top = (uintptr_t)sbrk(0);
    if (heap.lo && top != (uintptr_t)-1 && top > heap.lo &&
        madvise((void *)heap.lo, top - heap.lo, MADV_NOHUGEPAGE) == 0)
        heap.kept = top;
#endif
    pthread_mutex_unlock(&heap.lock);
#endif
}

void util_advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1), hi = ((uintptr_t)p + n) & ~(huge - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
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
