/* SPDX-License-Identifier: Apache-2.0 */
/*
 * go-yaml v2's resolve() for plain scalars (see yaml_scalar.h), step for step: a scalar whose
 * first character can start a special word is looked up in its word list; one that starts with a
 * digit or a sign is tried, with every '_' dropped, as Go's ParseInt with base prefixes, then as
 * ParseUint, then as a float of YAML's shape; one that starts with a dot is tried as a float.
 * Everything else, and whatever fails those, is a string.
 */
#include "yaml_scalar.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* go-yaml v2's word list: each spelling it knows, with its value. */
static const struct {
    YamlType t;
    double f; /* the value; for a bool, 1 is true */
    const char *w[5];
} words[] = {
    {YAML_T_BOOL, 1, {"y", "Y", "yes", "Yes", "YES"}},
    {YAML_T_BOOL, 1, {"true", "True", "TRUE"}},
    {YAML_T_BOOL, 1, {"on", "On", "ON"}},
    {YAML_T_BOOL, 0, {"n", "N", "no", "No", "NO"}},
    {YAML_T_BOOL, 0, {"false", "False", "FALSE"}},
    {YAML_T_BOOL, 0, {"off", "Off", "OFF"}},
    {YAML_T_NULL, 0, {"~", "null", "Null", "NULL"}},
    {YAML_T_NOJSON, NAN, {".nan", ".NaN", ".NAN"}},
    {YAML_T_NOJSON, INFINITY, {".inf", ".Inf", ".INF", "+.inf", "+.Inf"}},
    {YAML_T_NOJSON, INFINITY, {"+.INF"}},
    {YAML_T_NOJSON, -INFINITY, {"-.inf", "-.Inf", "-.INF"}},
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Go's strconv.ParseUint(s, 0, 64): "0x", "0b", "0o" or a leading "0" (octal) pick the base. */
static bool go_uint(const char *s, size_t n, unsigned long long *ret)
{
    unsigned base = 10;
    if (n > 1 && s[0] == '0') {
        char c = (char)(s[1] | 0x20);
        base = c == 'x' ? 16 : c == 'b' ? 2 : 8;
        size_t skip = c == 'x' || c == 'b' || c == 'o' ? 2 : 1;
        s += skip;
        n -= skip;
    }
    if (!n)
        return false;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = (char)(s[i] | 0x20);
        unsigned d = is_digit(s[i])         ? (unsigned)(s[i] - '0')
                     : c >= 'a' && c <= 'z' ? (unsigned)(c - 'a' + 10)
                                            : 99;
        if (d >= base || v > (ULLONG_MAX - d) / base)
            return false;
        v = v * base + d;
    }
    *ret = v;
    return true;
}

/* Go's strconv.ParseInt(s, 0, 64): an optional sign, then as go_uint(), within int64. */
static bool go_int(const char *s, size_t n, long long *ret)
{
    bool neg = n && s[0] == '-';
    size_t skip = n && (s[0] == '-' || s[0] == '+');
    unsigned long long u;
    if (!go_uint(s + skip, n - skip, &u))
        return false;
    if (neg ? u > (unsigned long long)LLONG_MAX + 1 : u > (unsigned long long)LLONG_MAX)
        return false;
    *ret = neg ? (long long)(0 - u) : (long long)u;
    return true;
}

/* go-yaml v2's float shape: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool float_shape(const char *s, size_t n)
{
    size_t i = 0, start;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    if (i < n && s[i] == '.') {
        start = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    } else {
        start = i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
        if (i < n && s[i] == '.')
            for (i++; i < n && is_digit(s[i]);)
                i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        if (++i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        start = i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    return i == n;
}

/* A float of YAML's shape (@s NUL-terminated at @n) read as Go's ParseFloat reads it; false
 * past float64's range. */
static bool go_float(const char *s, size_t n, double *ret)
{
    if (!float_shape(s, n))
        return false;
    double f = strtod(s, NULL);
    if (isinf(f))
        return false;
    *ret = f;
    return true;
}

static YamlType number(const char *s, size_t len, YamlValue *v)
{
    char small[128], *plain = len < sizeof(small) ? small : malloc(len + 1);
    size_t n = 0;
    YamlType t = YAML_T_STR;
    if (!plain)
        return YAML_T_STR;
    for (size_t i = 0; i < len; i++)
        if (s[i] != '_')
            plain[n++] = s[i];
    plain[n] = 0;
    if (go_int(plain, n, &v->i))
        t = YAML_T_INT;
    else if (go_uint(plain, n, &v->u))
        t = YAML_T_UINT;
    else if (go_float(plain, n, &v->f))
        t = YAML_T_FLOAT;
    if (plain != small)
        free(plain);
    return t;
}

/* Go's strconv underscoreOK for a decimal number: each '_' between two digits. */
static bool underscores_ok(const char *s, size_t n)
{
    char saw = '^';
    for (size_t i = (n && (s[0] == '+' || s[0] == '-')); i < n; i++) {
        if (is_digit(s[i]))
            saw = '0';
        else if (s[i] == '_' && saw != '0')
            return false;
        else if (s[i] != '_' && saw == '_')
            return false;
        else
            saw = s[i] == '_' ? '_' : '!';
    }
    return saw != '_';
}

YamlType yaml_plain_type(const char *s, size_t len, YamlValue *v)
{
    memset(v, 0, sizeof(*v));
    if (!len)
        return YAML_T_NULL;
    bool digit = is_digit(s[0]);
    if (!digit && (!s[0] || !strchr("yYnNtTfFoO~.+-", s[0])))
        return YAML_T_STR; /* most scalars: names, hosts, paths */
    for (size_t i = 0; !digit && len <= 5 && i < sizeof(words) / sizeof(words[0]); i++) {
        for (size_t j = 0; j < 5 && words[i].w[j]; j++) {
            if (!strncmp(words[i].w[j], s, len) && !words[i].w[j][len]) {
                v->b = words[i].f != 0;
                v->f = words[i].f;
                return words[i].t;
            }
        }
    }
    /* After a '.', go-yaml hands the text to ParseFloat as it is, which takes an underscore
     * only between digits (.8_1 is 0.81, .0_ and ._1 are text) */
    if (s[0] == '.' && memchr(s, '_', len) && !underscores_ok(s, len))
        return YAML_T_STR;
    if (digit || s[0] == '.' || s[0] == '+' || s[0] == '-')
        return number(s, len, v);
    return YAML_T_STR;
}

int yaml_plain_key(const char *s, size_t len, char out[YAML_KEY_MAX])
{
    YamlValue v;
    switch (yaml_plain_type(s, len, &v)) {
    case YAML_T_STR:
        return 0;
    case YAML_T_BOOL:
        snprintf(out, YAML_KEY_MAX, "%s", v.b ? "true" : "false");
        return 1;
    case YAML_T_INT:
        snprintf(out, YAML_KEY_MAX, "%lld", v.i);
        return 1;
    case YAML_T_FLOAT:
    case YAML_T_NOJSON:
        if (isnan(v.f)) {
            snprintf(out, YAML_KEY_MAX, ".nan");
        } else {
            util_go_float(v.f, 32, 'g', out);
            if (!strcmp(out, "+Inf"))
                snprintf(out, YAML_KEY_MAX, ".inf");
            else if (!strcmp(out, "-Inf"))
                snprintf(out, YAML_KEY_MAX, "-.inf");
        }
        return 1;
    default: /* null, and uint64: sigs.k8s.io/yaml has no string for them */
        return -1;
    }
}
