/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `tether translate -o yaml`: the configuration written as KIC's golden files have it. KIC's
 * harness reads the JSON it would push into Go values (numbers become float64) and writes them
 * with sigs.k8s.io/yaml, that is go-yaml v2, whose emitter is a port of libyaml's: so libyaml's
 * emitter writes the events here, with go-yaml's choices made before it (a scalar's style, the
 * text of numbers, the order of keys). The emitter then does what both do: single quotes where
 * plain text would not read back, folding past 80 columns, escapes, `? ` for long keys.
 *
 * The file sink's YAML is read by Kong, whose YAML 1.1 reader types a little more than go-yaml:
 * there a float's exponent follows a ".0" (1.0e+21) and a text that starts like a date
 * (YYYY-...) is quoted.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util.h"
#include "xlate.h"
#include "yaml_scalar.h"

typedef struct Writer {
    yaml_emitter_t e;
    bool ok;
    bool for_kong;
} Writer;

static int write_out(void *data, unsigned char *buffer, size_t size)
{
    return buf_append(data, (const char *)buffer, size) == 0;
}

/* Hand @ev to the emitter, which frees it; once anything failed, only free it. */
static void put(Writer *w, yaml_event_t *ev, int initialized)
{
    if (!initialized) {
        w->ok = false;
        return;
    }
    if (!w->ok) {
        yaml_event_delete(ev);
        return;
    }
    if (!yaml_emitter_emit(&w->e, ev))
        w->ok = false;
}

static void scalar(Writer *w, const char *s, size_t n, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    put(w, &ev,
        yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)n, 1, 1, style));
}

/* go-yaml's isBase60Float: ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$ */
static bool base60_float(const char *s, const char *end)
{
    const char *p = s + (s < end && (*s == '-' || *s == '+'));
    if (p >= end || *p < '0' || *p > '9')
        return false;
    while (p < end && ((*p >= '0' && *p <= '9') || *p == '_'))
        p++;
    int groups = 0;
    while (p < end && *p == ':') {
        p++;
        if (p + 1 < end && *p >= '0' && *p <= '5' && p[1] >= '0' && p[1] <= '9')
            p += 2;
        else if (p < end && *p >= '0' && *p <= '9')
            p++;
        else
            return false;
        groups++;
    }
    if (groups && p < end && *p == '.')
        for (p++; p < end && ((*p >= '0' && *p <= '9') || *p == '_');)
            p++;
    return groups && p == end;
}

/* Go's getnum: one digit, or two; -1 when there is none. */
static int getnum(const char **p, const char *end)
{
    if (*p >= end || **p < '0' || **p > '9')
        return -1;
    int v = *(*p)++ - '0';
    if (*p < end && **p >= '0' && **p <= '9')
        v = v * 10 + (*(*p)++ - '0');
    return v;
}

static bool lit(const char **p, const char *end, char c)
{
    if (*p < end && **p == c) {
        (*p)++;
        return true;
    }
    return false;
}

/*
 * Whether go-yaml's parseTimestamp takes @s: four digits and '-', then Go's time.Parse with
 * "2006-1-2T15:4:5.999999999Z07:00" (or 't'), "2006-1-2 15:4:5.999999999" or "2006-1-2". Such a
 * string is written quoted, other dates ("1234-1234", "2001-13-01") plain.
 */
static bool go_timestamp(const char *s, const char *end)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (end - s < 5)
        return false;
    for (int i = 0; i < 4; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    if (s[4] != '-')
        return false;
    int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    const char *p = s + 5;
    int month = getnum(&p, end);
    if (month < 1 || month > 12 || !lit(&p, end, '-'))
        return false;
    int day = getnum(&p, end);
    bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    if (day < 1 || day > mdays[month - 1] + (month == 2 && leap))
        return false;
    if (p == end)
        return true; /* "2006-1-2" */
    bool zoned = *p == 'T' || *p == 't';
    if (!zoned && *p != ' ')
        return false;
    p++;
    int h = getnum(&p, end);
    if (h < 0 || h > 23 || !lit(&p, end, ':'))
        return false;
    int mi = getnum(&p, end);
    if (mi < 0 || mi > 59 || !lit(&p, end, ':'))
        return false;
    int se = getnum(&p, end);
    if (se < 0 || se > 59)
        return false;
    /* a fraction: '.' or ',' and digits */
    if (end - p >= 2 && (*p == '.' || *p == ',') && p[1] >= '0' && p[1] <= '9')
        for (p += 2; p < end && *p >= '0' && *p <= '9';)
            p++;
    if (!zoned)
        return p == end;
    if (lit(&p, end, 'Z'))
        return p == end;
    if (end - p != 6 || (*p != '+' && *p != '-') || p[3] != ':')
        return false;
    for (int i = 1; i < 6; i++)
        if (i != 3 && (p[i] < '0' || p[i] > '9'))
            return false;
    return (p[1] - '0') * 10 + (p[2] - '0') <= 24 && (p[4] - '0') * 10 + (p[5] - '0') <= 60;
}

/* go-yaml's stringv: literal when multi-line, plain when it reads back as this string, else
 * double-quoted (the emitter turns plain into single quotes where plain cannot be written). */
static void string(Writer *w, const char *s, size_t n)
{
    const char *end = s + n;
    YamlValue v;
    yaml_scalar_style_t style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    bool date_like = w->for_kong && n > 4 && s[4] == '-' && strspn(s, "0123456789") >= 4;
    if (memchr(s, '\n', n))
        style = YAML_LITERAL_SCALAR_STYLE;
    else if (yaml_plain_type(s, n, &v) == YAML_T_STR && !base60_float(s, end) &&
             !go_timestamp(s, end) && !date_like)
        style = YAML_PLAIN_SCALAR_STYLE;
    scalar(w, s, n, style);
}

/*
 * A number as KIC's harness writes it: a float64 (an integer past 2^53 rounds), in the text Go's
 * encoding/json gives it, which go-yaml reads back as an int when it fits int64 or uint64 and
 * otherwise writes as strconv.FormatFloat(f, 'g', -1, 64).
 */
static void number(Writer *w, double d)
{
    char num[UTIL_FLOAT_MAX], out[UTIL_FLOAT_MAX + 8];
    size_t l = util_go_float(d, 64, 'j', num);
    num[l] = 0;
    char *e;
    errno = 0;
    long long i = strtoll(num, &e, 10);
    if (!*e && !errno) {
        l = (size_t)snprintf(out, sizeof(out), "%lld", i);
    } else if (num[0] != '-' && (errno = 0, strtoull(num, &e, 10), !*e && !errno)) {
        memcpy(out, num, l + 1);
    } else {
        l = util_go_float(d, 64, 'g', out);
        char *x = memchr(out, 'e', l);
        if (w->for_kong && x && !memchr(out, '.', l)) { /* 1e+21 as 1.0e+21 */
            memmove(x + 2, x, l - (size_t)(x - out) + 1);
            memcpy(x, ".0", 2);
            l += 2;
        }
    }
    scalar(w, out, l, YAML_PLAIN_SCALAR_STYLE);
}

/* Go's unicode.IsLetter, exact for ASCII; past it most of what keys hold counts as a letter. */
static bool is_letter(uint32_t r)
{
    if (r < 0x80)
        return (r | 0x20) >= 'a' && (r | 0x20) <= 'z';
    if (r < 0xC0)
        return r == 0xAA || r == 0xB5 || r == 0xBA;
    if (r == 0xD7 || r == 0xF7)
        return false;
    return !(r >= 0x2000 && r <= 0x2BFF) && !(r >= 0x3000 && r <= 0x303F) && r < 0x1F000;
}

static uint32_t next_rune(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t r = s[0];
    int n = r < 0x80 ? 1 : r < 0xE0 ? 2 : r < 0xF0 ? 3 : 4;
    if (n > 1)
        r &= 0x3Fu >> (n - 1);
    for (int i = 1; i < n && s[i]; i++)
        r = r << 6 | (s[i] & 0x3F);
    for (int i = 0; i < n && *s; i++)
        s++;
    *p = s;
    return r;
}

static bool is_digit(uint32_t r)
{
    return r >= '0' && r <= '9';
}

/*
 * go-yaml v2's keyList.Less for two strings, rune by rune: letters after the rest, runs of digits
 * by value (as Go's int64 does it, wrapping). Digits are ASCII, so runs are read on the bytes.
 */
static bool key_less(const char *as, const char *bs)
{
    const unsigned char *a0 = (const unsigned char *)as, *a = a0, *b = (const unsigned char *)bs;
    while (*a && *b) {
        const unsigned char *pa = a, *pb = b;
        uint32_t ra = next_rune(&a), rb = next_rune(&b);
        if (ra == rb)
            continue;
        bool al = is_letter(ra), bl = is_letter(rb);
        if (al && bl)
            return ra < rb;
        if (al || bl)
            return bl;
        uint64_t an = 0, bn = 0;
        if (ra == '0' || rb == '0') /* a digit run before, not all zeros: numbers count from 1 */
            for (size_t k = (size_t)(pa - a0); k-- > 0 && is_digit(a0[k]);)
                if (a0[k] != '0') {
                    an = bn = 1;
                    break;
                }
        const unsigned char *ea = pa, *eb = pb;
        for (; is_digit(*ea); ea++)
            an = an * 10 + (uint64_t)(*ea - '0');
        for (; is_digit(*eb); eb++)
            bn = bn * 10 + (uint64_t)(*eb - '0');
        if (an != bn)
            return (int64_t)an < (int64_t)bn;
        if (ea - pa != eb - pb)
            return ea - pa < eb - pb;
        return ra < rb;
    }
    return !*a && *b;
}

static int cmp_key(const void *x, const void *y)
{
    const char *a = *(const char *const *)x, *b = *(const char *const *)y;
    return key_less(a, b) ? -1 : key_less(b, a);
}

static void value(Writer *w, const json_t *v);

static void mapping(Writer *w, const json_t *v)
{
    yaml_event_t ev;
    put(w, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
    size_t n = json_object_size(v), i = 0;
    const char **keys = calloc(n ? n : 1, sizeof(*keys));
    const char *k;
    json_t *c;
    if (!keys)
        w->ok = false;
    json_object_foreach((json_t *)v, k, c)
    {
        if (keys)
            keys[i++] = k;
    }
    if (keys)
        qsort(keys, n, sizeof(*keys), cmp_key);
    for (i = 0; keys && i < n && w->ok; i++) {
        string(w, keys[i], strlen(keys[i]));
        value(w, json_object_get(v, keys[i]));
    }
    free(keys);
    put(w, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void value(Writer *w, const json_t *v)
{
    yaml_event_t ev;
    size_t i;
    json_t *c;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        mapping(w, v);
        break;
    case JSON_ARRAY:
        put(w, &ev,
            yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE));
        json_array_foreach((json_t *)v, i, c) value(w, c);
        put(w, &ev, yaml_sequence_end_event_initialize(&ev));
        break;
    case JSON_STRING:
        string(w, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        number(w, (double)json_integer_value(v));
        break;
    case JSON_REAL:
        number(w, json_real_value(v));
        break;
    case JSON_TRUE:
        scalar(w, "true", 4, YAML_PLAIN_SCALAR_STYLE);
        break;
    case JSON_FALSE:
        scalar(w, "false", 5, YAML_PLAIN_SCALAR_STYLE);
        break;
    default:
        scalar(w, "null", 4, YAML_PLAIN_SCALAR_STYLE);
    }
}

static char *to_yaml(const json_t *config, bool for_kong)
{
    Buf b = BUF_INIT;
    Writer w = {.ok = true, .for_kong = for_kong};
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&w.e))
        return NULL;
    yaml_emitter_set_output(&w.e, write_out, &b);
    yaml_emitter_set_unicode(&w.e, 1);
    put(&w, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    put(&w, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    value(&w, config);
    put(&w, &ev, yaml_document_end_event_initialize(&ev, 1));
    put(&w, &ev, yaml_stream_end_event_initialize(&ev));
    if (w.ok && !yaml_emitter_flush(&w.e))
        w.ok = false;
    yaml_emitter_delete(&w.e);
    if (!w.ok) {
        buf_deinit(&b);
        return NULL;
    }
    /* libyaml ends a document whose last scalar keeps its final line breaks ("|+") with "...";
     * go-yaml does not. At the end, past the root mapping's lines, "..." can only be that. */
    if (b.len >= 5 && !memcmp(b.data + b.len - 5, "\n...\n", 5)) {
        b.len -= 4;
        b.data[b.len] = 0;
    }
    return buf_take(&b);
}

char *xlate_to_yaml(const json_t *config)
{
    return to_yaml(config, false);
}

char *xlate_to_yaml_for_kong(const json_t *config)
{
    return to_yaml(config, true);
}
