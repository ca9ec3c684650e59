/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Translator entry point: options and feature gates, failure collection, tags, class filtering,
 * the pipeline of KIC's BuildKongConfig, and the final assembly in decK's order (deckgen's sort
 * orders and defaults, the DB-less stub upstream for an empty configuration).
 */
#include "xlate_int.h"

#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "util.h"

void xlate_options_default(XlateOptions *o)
{
    memset(o, 0, sizeof(*o));
    o->ingress_class = "kong";
    o->fill_ids = true;
    o->custom_entity = true;
    o->kong_version = "3.9.1";
    o->cluster_domain = "";
}

static const struct {
    const char *name;
    size_t off;
} gates[] = {
    {"FillIDs", offsetof(XlateOptions, fill_ids)},
    {"KongCustomEntity", offsetof(XlateOptions, custom_entity)},
    {"KongServiceFacade", offsetof(XlateOptions, service_facade)},
    {"RewriteURIs", offsetof(XlateOptions, rewrite_uris)},
};


size_t xsplit_min = 512;

void xlate_split_min_from_env(void)
{
    const char *e = getenv("TETHER_SPLIT_MIN");
    char *end;
    if (!e || !*e)
        return;
    unsigned long long v = strtoull(e, &end, 10);
    if (!*end)
        xsplit_min = (size_t)v;
}

typedef struct SplitHalf {
    void (*fn)(void *ud, int half, size_t from, size_t to);
    void *ud;
    size_t from, to;
} SplitHalf;

static void split_half(void *arg)
{
    SplitHalf *h = arg;
    jarena_enter();
    h->fn(h->ud, 1, h->from, h->to);
    jarena_leave();
}

void xsplit_run(size_t n, void (*fn)(void *ud, int half, size_t from, size_t to), void *ud)
{
    SplitHalf upper = {fn, ud, n / 2, n};
    uv_thread_t helper;
    if (!xsplit_min || n < xsplit_min || uv_thread_create(&helper, split_half, &upper) != 0) {
        fn(ud, 0, 0, n);
        return;
    }
    fn(ud, 0, 0, n / 2);
    uv_thread_join(&helper);
}

typedef struct SplitChunks {
    void (*fn)(void *ud, int half, size_t from, size_t to);
    void *ud;
    size_t n, chunk;
    size_t next; /* atomic: the first element nobody has taken */
} SplitChunks;

static void take_chunks(SplitChunks *c, int half)
{
    size_t from;
    while ((from = __atomic_fetch_add(&c->next, c->chunk, __ATOMIC_RELAXED)) < c->n)
        c->fn(c->ud, half, from, from + c->chunk < c->n ? from + c->chunk : c->n);
}

static void chunks_helper(void *arg)
{
    jarena_enter();
    take_chunks(arg, 1);
    jarena_leave();
}

void xsplit_run_chunked(size_t n, size_t chunk,
                        void (*fn)(void *ud, int half, size_t from, size_t to), void *ud)
{
    SplitChunks c = {fn, ud, n, chunk ? chunk : 1, 0};
    uv_thread_t helper;
    if (!xsplit_min || n < xsplit_min || uv_thread_create(&helper, chunks_helper, &c) != 0) {
        fn(ud, 0, 0, n);
        return;
    }
    take_chunks(&c, 0);
    uv_thread_join(&helper);
}

void xsplit_run_failing(Xlate *x, Xlate *upper, size_t n,
                        void (*fn)(void *ud, int half, size_t from, size_t to), void *ud)
{
    *upper = *x;
    if (!(upper->failures = json_array())) {
        fn(ud, 0, 0, n); /* one thread, writing to @x alone */
        return;
    }
    xsplit_run(n, fn, ud);
    json_array_extend(x->failures, upper->failures);
    json_decref(upper->failures);
    upper->failures = NULL;
}

/* Gates KIC knows that do not change translation; accepted so existing flags keep working. */
static const char *const other_gates[] = {
    "GatewayAlpha", "FallbackConfiguration", "SanitizeKonnectConfigDumps", "KongLicense", NULL,
};

int xlate_feature_gates(XlateOptions *o, const char *spec, char *err, size_t errlen)
{
    json_t *items = xsplit(spec, ',');
    size_t i;
    json_t *it;
    int r = 0;

    json_array_foreach(items, i, it)
    {
        const char *kv = json_string_value(it);
        const char *eq = strchr(kv, '=');
        if (!eq) {
            snprintf(err, errlen, "feature gate \"%s\" is not Name=true|false", kv);
            r = -EINVAL;
            break;
        }
        /* Kubernetes' flag parser trims the name and the value apart: " FillIDs = false" */
        char name[64], value[64];
        xtrim_apart(kv, eq, name, sizeof(name), value, sizeof(value));
        bool val;
        if (!xparse_bool(value, &val)) {
            snprintf(err, errlen, "feature gate %s: \"%s\" is not a boolean", name, value);
            r = -EINVAL;
            break;
        }
        int found = 0;
        for (size_t g = 0; g < sizeof(gates) / sizeof(gates[0]); g++)
            if (!strcmp(gates[g].name, name)) {
                *(bool *)((char *)o + gates[g].off) = val;
                found = 1;
            }
        for (size_t g = 0; other_gates[g]; g++)
            if (!strcmp(other_gates[g], name))
                found = 1;
        if (!found) {
            snprintf(err, errlen, "unknown feature gate \"%s\"", name);
            r = -EINVAL;
            break;
        }
    }
    json_decref(items);
    if (!r && o->custom_entity && !o->fill_ids) { /* KIC refuses to start so */
        snprintf(err, errlen, "FillIDs is required if KongCustomEntity is enabled");
        r = -EINVAL;
    }
    return r;
}

int xlate_kong_version(XlateOptions *o, const char *v, char *err, size_t errlen)
{
    long part[3] = {0, 0, 0};
    const char *p = v;
    int n = 0;
    while (n < 4 && *p >= '0' && *p <= '9') {
        char *end;
        long x = strtol(p, &end, 10);
        if (n < 3)
            part[n] = x;
        n++;
        p = end;
        if (*p != '.' || n == 4)
            break;
        p++;
    }
    if (!n || (*p && *p != '-' && *p != '+') || (*p && !p[1]) || p[-1] == '.') {
        snprintf(err, errlen, "\"%s\" is not a Kong version", v);
        return -EINVAL;
    }
    if (part[0] < 3 || (part[0] == 3 && (part[1] < 4 || (part[1] == 4 && part[2] < 1)))) {
        snprintf(err, errlen, "Kong %s is older than 3.4.1, the oldest KIC 3.5 works with", v);
        return -EINVAL;
    }
    o->kong_version = v;
    return 0;
}

/* ---- small helpers ---- */

/* Bytes of the UTF-8 sequence at @p, at most @left: jansson's strings are valid UTF-8. */
static size_t rune_len(const char *p, size_t left)
{
    unsigned char c = (unsigned char)*p;
    size_t n = c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    return n < left ? n : left;
}

/* Go's unicode.IsSpace runes past ASCII, UTF-8 encoded: strings.TrimSpace trims these too. */
static const char *const wide_spaces[] = {
    "\xc2\x85",     "\xc2\xa0",     "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82",
    "\xe2\x80\x83", "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87", "\xe2\x80\x88",
    "\xe2\x80\x89", "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f",
    "\xe3\x80\x80",
};

/* Bytes of the white space rune that starts at @a (@back false) or ends at @b (true), or 0. */
static size_t space_at(const char *a, const char *b, bool back)
{
    if (a >= b)
        return 0;
    unsigned char c = (unsigned char)(back ? b[-1] : a[0]);
    if (c == ' ' || (c >= '\t' && c <= '\r'))
        return 1;
    if (c < 0x80)
        return 0;
    for (size_t i = 0; i < sizeof(wide_spaces) / sizeof(wide_spaces[0]); i++) {
        size_t n = strlen(wide_spaces[i]);
        if ((size_t)(b - a) >= n && !memcmp(back ? b - n : a, wide_spaces[i], n))
            return n;
    }
    return 0;
}

void xgo_quote(Buf *b, const char *s)
{
    buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *e = c ? strchr("\a\b\f\n\r\t\v", c) : NULL;
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (e)
            buf_printf(b, "\\%c", "abfnrtv"[e - "\a\b\f\n\r\t\v"]);
        else if (c < 0x20 || c == 0x7f)
            buf_printf(b, "\\x%02x", c);
        else
            buf_putc(b, (char)c);
    }
    buf_putc(b, '"');
}

void xtrim_apart(const char *s, const char *at, char *left, size_t ll, char *right, size_t rl)
{
    const char *la = s, *lb = at, *ra = at + 1, *rb = at + strlen(at);
    xtrim(&la, &lb);
    xtrim(&ra, &rb);
    snprintf(left, ll, "%.*s", (int)(lb - la), la);
    snprintf(right, rl, "%.*s", (int)(rb - ra), ra);
}

void xtrim(const char **a, const char **b)
{
    size_t w;
    while ((w = space_at(*a, *b, false)))
        *a += w;
    while ((w = space_at(*a, *b, true)))
        *b -= w;
}

json_t *xsplit(const char *s, char sep)
{
    json_t *arr = json_array();
    if (!s || !arr)
        return arr;
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, sep);
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *a = p, *b = p + n;
        xtrim(&a, &b);
        if (b > a)
            json_array_append_new(arr, json_stringn(a, (size_t)(b - a)));
        if (!e)
            break;
        p = e + 1;
    }
    return arr;
}

json_t *xsplit_go(const char *s, const char *sep, bool trim)
{
    json_t *arr = json_array();
    const char *p = s, *end = s + strlen(s);
    size_t sl = strlen(sep);
    if (!*s && !sl)
        return arr;
    while (arr) {
        const char *e = sl ? strstr(p, sep) : p + rune_len(p, (size_t)(end - p));
        const char *a = p, *b = e && e < end ? e : end;
        if (trim)
            xtrim(&a, &b);
        json_array_append_new(arr, json_stringn(a, (size_t)(b - a)));
        if (!e || e >= end)
            break;
        p = e + sl;
    }
    return arr;
}

json_t *xheaders(const json_t *o)
{
    json_t *out = NULL;
    ObjMapIter it = {0};
    const char *k, *v, *sep = NULL;
    while (obj_map_next(o, "annotations", &it, &k, &v)) {
        if (strncmp(k, ANN "headers.", strlen(ANN "headers.")))
            continue;
        const char *name = k + strlen(ANN "headers.");
        if (!*name || !*v)
            continue;
        if (!out) { /* most objects have none: look for the separator only when needed */
            sep = obj_annotation(o, ANN "headers-separator");
            if (!(out = json_object()))
                return NULL;
        }
        json_object_set_new(out, name, xsplit_go(v, sep ? sep : ",", true));
    }
    return out;
}

const char *xgo_type(const json_t *v)
{
    return json_is_object(v)    ? "object"
           : json_is_array(v)   ? "array"
           : json_is_string(v)  ? "string"
           : json_is_boolean(v) ? "bool"
                                : "number";
}

json_t *xmethods(const char *v)
{
    json_t *m = xsplit(v, ',');
    size_t i;
    json_t *e;
    json_array_foreach(m, i, e)
    {
        char *up = strdup(json_string_value(e)), *o = up;
        /* Go's strings.ToUpper: two runes past ASCII become ASCII letters (dotless i, long s). */
        for (const char *c = up; c && *c; c++) {
            if (!memcmp(c, "\xc4\xb1", 2) || !memcmp(c, "\xc5\xbf", 2)) {
                *o++ = c[0] == '\xc4' ? 'I' : 'S';
                c++;
            } else {
                *o++ = (char)toupper((unsigned char)*c);
            }
        }
        if (o)
            *o = 0;
        if (!up || json_array_set_new(m, i, json_string(up)) < 0)
            json_array_clear(m); /* out of memory: read as no methods */
        free(up);
    }
    return m;
}

bool xmethod_ok(const char *m)
{
    if (!*m)
        return false;
    for (; *m; m++)
        if (*m < 'A' || *m > 'Z')
            return false;
    return true;
}

/* [@h, @end) is labels of letters and digits with single inner hyphens, joined by single dots. */
static bool valid_labels(const char *h, const char *end)
{
    bool need = true; /* a letter or digit must come next */
    for (const char *c = h; c < end; c++) {
        if (isalnum((unsigned char)*c))
            need = false;
        else if ((*c == '-' || *c == '.') && !need)
            need = true;
        else
            return false;
    }
    return !need;
}

bool xvalid_host(const char *h, bool wild)
{
    const char *end = h + strlen(h);
    if (wild && !strncmp(h, "*.", 2))
        h += 2;
    if (wild && end - h > 2 && !strcmp(end - 2, ".*"))
        end -= 2;
    return valid_labels(h, end);
}

bool xparse_bool(const char *s, bool *ret)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True", NULL};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False", NULL};
    if (!s)
        return false;
    for (int i = 0; t[i]; i++)
        if (!strcmp(s, t[i])) {
            *ret = true;
            return true;
        }
    for (int i = 0; f[i]; i++)
        if (!strcmp(s, f[i])) {
            *ret = false;
            return true;
        }
    return false;
}

bool xparse_int(const char *s, long long *ret)
{
    char *end;
    if (!s || !*s || isspace((unsigned char)*s)) /* strconv.Atoi takes no white space */
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *ret = v;
    return true;
}

/* Days from 1970-01-01 to the proleptic Gregorian @y-@m-@d (March-based years: leap days last). */
static long long days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;                                   /* [0, 399] */
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1; /* [0, 365] */
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

long long xcreation(const json_t *obj)
{
    const char *ts = obj_meta_str(obj, "creationTimestamp");
    struct tm tm;
    if (!ts)
        return XCREATION_NONE;
    /* RFC 3339 as Go's time.Parse reads it for metav1.Time, without strptime() and timegm(): a
     * tenth of the Ingress class pass went to them. The API server writes whole seconds in UTC;
     * a hand-written manifest may add a fraction or an offset. Anything else is read as before. */
    int y = digits(ts, 4), mo = y < 0 || ts[4] != '-' ? -1 : digits(ts + 5, 2),
        d = mo < 0 || ts[7] != '-' ? -1 : digits(ts + 8, 2),
        h = d < 0 || (ts[10] != 'T' && ts[10] != 't') ? -1 : digits(ts + 11, 2),
        mi = h < 0 || ts[13] != ':' ? -1 : digits(ts + 14, 2),
        se = mi < 0 || ts[16] != ':' ? -1 : digits(ts + 17, 2);
    if (se >= 0 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && se <= 60) {
        const char *p = ts + 19;
        long long us = 0, scale = 100000; /* microseconds: years up to 9999 fit */
        if (*p == '.')
            for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                us += (*p - '0') * scale;
        long long off = 0;
        if ((*p == '+' || *p == '-') && digits(p + 1, 2) >= 0 && p[3] == ':' &&
            digits(p + 4, 2) >= 0) {
            off = (digits(p + 1, 2) * 3600LL + digits(p + 4, 2) * 60LL) * (*p == '-' ? -1 : 1);
            p += 6;
        } else if (*p == 'Z' || *p == 'z') {
            p++;
        }
        if (!*p || p == ts + 19)
            return ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se) - off) *
                       1000000LL +
                   us;
    }
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return XCREATION_NONE;
    long long t = (long long)timegm(&tm), lim = 9000000000000LL; /* keep t * 10^6 in range */
    return (t > lim ? lim : t < -lim ? -lim : t) * 1000000LL;
}

typedef struct TimedObj {
    long long ts;
    size_t idx;
    json_t *obj;
    const char *ns, *name; /* for ties by key: read once, not at each comparison */
} TimedObj;

static int cmp_timed(const void *a, const void *b)
{
    const TimedObj *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* "namespace/name" of @x against @y's, as text (a namespace holds no '/'). */
static int cmp_key_text(const TimedObj *x, const TimedObj *y)
{
    const char *p = x->ns, *q = y->ns;
    while (*p && *p == *q)
        p++, q++;
    if (*p || *q)
        return (*p ? (unsigned char)*p : '/') - (*q ? (unsigned char)*q : '/');
    return strcmp(x->name, y->name);
}

static int cmp_timed_key(const void *a, const void *b)
{
    const TimedObj *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    int c = cmp_key_text(x, y);
    return c ? c : cmp_timed(a, b);
}

void xsort_by_times(json_t **v, const long long *ts, size_t n, bool key_ties,
                    const char *const *ns, const char *const *name)
{
    TimedObj *t = malloc((n ? n : 1) * sizeof(*t));
    if (!t)
        return; /* keep the store's order */
    for (size_t i = 0; i < n; i++) {
        t[i] = (TimedObj){ts[i], i, v[i], "", ""};
        if (key_ties && ns && name) {
            t[i].ns = ns[i];
            t[i].name = name[i];
        } else if (key_ties) {
            const char *uid;
            obj_ids(v[i], &t[i].name, &t[i].ns, &uid);
        }
    }
    qsort(t, n, sizeof(*t), key_ties ? cmp_timed_key : cmp_timed);
    for (size_t i = 0; i < n; i++)
        v[i] = t[i].obj;
    free(t);
}

void xsort_by_creation(json_t **v, size_t n, bool key_ties)
{
    long long *ts = malloc((n ? n : 1) * sizeof(*ts));
    if (!ts)
        return;
    for (size_t i = 0; i < n; i++)
        ts[i] = xcreation(v[i]);
    xsort_by_times(v, ts, n, key_ties, NULL, NULL);
    free(ts);
}

static void copy_str(char *dst, size_t dl, const char *src, size_t n)
{
    if (n >= dl)
        n = dl - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

void xgroup_version(const json_t *obj, char *group, size_t gl, char *version, size_t vl)
{
    const char *av = obj_api_version(obj);
    const char *slash = strchr(av, '/');
    if (slash) {
        copy_str(group, gl, av, (size_t)(slash - av));
        copy_str(version, vl, slash + 1, strlen(slash + 1));
    } else {
        copy_str(group, gl, "", 0);
        copy_str(version, vl, av, strlen(av));
    }
}

static json_t *obj_ref(const json_t *o)
{
    char g[128], v[64];
    xgroup_version(o, g, sizeof(g), v, sizeof(v));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kind", obj_kind(o), "namespace", obj_ns(o),
                     "name", obj_name(o), "uid", obj_uid(o), "group", g, "version", v);
}

static void fail_with(Xlate *x, json_t *objs, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    json_t *refs = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(objs, i, o) json_array_append_new(refs, obj_ref(o));
    json_array_append_new(x->failures, json_pack("{s:s, s:o}", "message", msg, "objects", refs));
}

void xfail_objs(Xlate *x, json_t *objs, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_with(x, objs, fmt, ap);
    va_end(ap);
}

void xfail(Xlate *x, json_t *o1, json_t *o2, const char *fmt, ...)
{
    json_t *objs = json_array();
    if (o1)
        json_array_append(objs, o1);
    if (o2 && o2 != o1)
        json_array_append(objs, o2);
    va_list ap;
    va_start(ap, fmt);
    fail_with(x, objs, fmt, ap);
    va_end(ap);
    json_decref(objs);
}

/* ---- shared constants ---- */

static json_t *const_ints[5];
static const json_int_t const_int_values[5] = {0, 5, 80, 426, 60000};
static const char *const const_str_values[] = {
    "/", "http", "v0", "round-robin", NULL,
};
static json_t *const_strs[4];
static pthread_once_t consts_once = PTHREAD_ONCE_INIT;

/* Interned tags: "k8s-kind:", "k8s-group:" and "k8s-version:" values, a handful per cluster. */
#define INTERN_CAP 128
static struct {
    pthread_mutex_t lock;
    size_t n;
    json_t *v[INTERN_CAP];
} interned = {PTHREAD_MUTEX_INITIALIZER, 0, {0}};

/*
 * A value that lives as long as the process, with the refcount jansson gives its true, false and
 * null: json_incref() and json_decref() leave it alone. Both translation threads take references
 * to the constants and interned tags tens of thousands of times a translation, and each was an
 * atomic on a cache line the two cores passed back and forth.
 */
static json_t *immortal(json_t *v)
{
    if (v)
        v->refcount = (size_t)-1;
    return v;
}

/* Both kinds outlive every translation: made with malloc, not in a translation's arena. */
static void consts_init(void)
{
    int arena = jarena_pause();
    for (size_t i = 0; i < sizeof(const_ints) / sizeof(const_ints[0]); i++)
        const_ints[i] = immortal(json_integer(const_int_values[i]));
    for (size_t i = 0; const_str_values[i]; i++)
        const_strs[i] = immortal(json_string(const_str_values[i]));
    jarena_resume(arena);
}

json_t *xconst_int(json_int_t v)
{
    pthread_once(&consts_once, consts_init);
    for (size_t i = 0; i < sizeof(const_ints) / sizeof(const_ints[0]); i++)
        if (const_int_values[i] == v && const_ints[i])
            return json_incref(const_ints[i]);
    return json_integer(v);
}

json_t *xconst_str(const char *s, size_t n)
{
    pthread_once(&consts_once, consts_init);
    for (size_t i = 0; const_str_values[i]; i++)
        if (const_strs[i] && json_string_length(const_strs[i]) == n &&
            !memcmp(json_string_value(const_strs[i]), s, n))
            return json_incref(const_strs[i]);
    return json_stringn_nocheck(s, n);
}

static json_t *interned_find(const char *s, size_t n, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        json_t *v = interned.v[i];
        if (json_string_length(v) == n && !memcmp(json_string_value(v), s, n))
            return v;
    }
    return NULL;
}

static json_t *intern(const char *s, size_t n)
{
    /* Entries are only added, each stored before the count that shows it: found without the
     * lock, which both translation threads took for every tag. */
    size_t seen = __atomic_load_n(&interned.n, __ATOMIC_ACQUIRE);
    json_t *v = interned_find(s, n, 0, seen);
    if (v)
        return json_incref(v);
    pthread_mutex_lock(&interned.lock);
    v = interned_find(s, n, seen, interned.n);
    if (!v && interned.n < INTERN_CAP) {
        int arena = jarena_pause();
        if ((v = immortal(json_stringn_nocheck(s, n))))
            interned.v[interned.n] = v;
        __atomic_store_n(&interned.n, interned.n + (v != NULL), __ATOMIC_RELEASE);
        jarena_resume(arena);
    }
    v = json_incref(v);
    pthread_mutex_unlock(&interned.lock);
    return v ? v : json_stringn_nocheck(s, n);
}

/* @shared: a value of a handful (kind, group, version), interned; names and uids are not. */
static void tag_add(json_t *tags, const char *prefix, const char *val, bool shared)
{
    char buf[512];
    size_t pl = strlen(prefix), vl;
    if (!val || !*val)
        return;
    vl = strlen(val);
    if (pl + vl >= sizeof(buf)) {
        char *t = util_strdup_printf("%s%s", prefix, val);
        if (t)
            json_array_append_new(tags, json_string(t));
        free(t);
        return;
    }
    memcpy(buf, prefix, pl);
    memcpy(buf + pl, val, vl + 1);
    json_array_append_new(tags, shared ? intern(buf, pl + vl) : json_stringn_nocheck(buf, pl + vl));
}

json_t *xtags(const json_t *obj)
{
    json_t *tags = json_array();
    char g[128], v[64];

    const char *name, *ns, *uid;
    xgroup_version(obj, g, sizeof(g), v, sizeof(v));
    obj_ids(obj, &name, &ns, &uid);
    tag_add(tags, "k8s-name:", name, false);
    tag_add(tags, "k8s-namespace:", ns, false);
    tag_add(tags, "k8s-kind:", obj_kind(obj), true);
    tag_add(tags, "k8s-uid:", uid, false);
    tag_add(tags, "k8s-group:", g, true);
    tag_add(tags, "k8s-version:", v, true);
    const char *extra = obj_annotation(obj, ANN "tags");
    if (!extra)
        return tags;
    /* KIC's lo.Uniq runs over the annotation's tags alone: one equal to a k8s-* tag stays */
    json_t *user = xsplit(extra, ',');
    size_t i, base = json_array_size(tags);
    json_t *t;
    json_array_foreach(user, i, t)
    {
        int dup = 0;
        for (size_t j = base; j < json_array_size(tags) && !dup; j++)
            dup = json_equal(json_array_get(tags, j), t);
        if (!dup)
            json_array_append(tags, t);
    }
    json_decref(user);
    return tags;
}


/* ---- class filtering ---- */

bool xclass_ingress(Xlate *x, const json_t *ing)
{
    const char *cls = x->o->ingress_class;
    const char *ann = obj_annotation(ing, "kubernetes.io/ingress.class");
    if (ann && *ann)
        return !strcmp(ann, cls);
    const char *icn = obj_get_str(ing, "spec.ingressClassName");
    if (icn)
        return !strcmp(icn, cls);
    return x->class_default;
}

bool xclass_exact_or_empty(Xlate *x, const json_t *obj)
{
    /* A missing annotation reads as "" (Go's map lookup), which is the class "" exactly */
    const char *ann = obj_annotation(obj, "kubernetes.io/ingress.class");
    if (!ann)
        ann = "";
    return !strcmp(ann, x->o->ingress_class) || (!*ann && x->class_default);
}

void xload_class(Xlate *x)
{
    json_t *ic = store_get(x->st, "IngressClass", "", x->o->ingress_class);
    const char *def = ic ? obj_annotation(ic, "ingressclass.kubernetes.io/is-default-class") : NULL;
    x->class_default = def && !strcmp(def, "true");
    if (!ic)
        return;
    json_t *params = obj_get_path(ic, "spec.parameters");
    if (!json_is_object(params))
        return;
    const char *apig = obj_get_str(params, "apiGroup");
    const char *kind = obj_get_str(params, "kind");
    const char *scope = obj_get_str(params, "scope");
    const char *ns = obj_get_str(params, "namespace");
    const char *name = obj_get_str(params, "name");
    /* KIC's GetIngressClassParametersV1Alpha1 wants a scope, any scope, and a namespace; an
     * empty namespace makes the key "/name", which finds nothing */
    if (!apig || strcmp(apig, "configuration.konghq.com") || !kind ||
        strcmp(kind, "IngressClassParameters") || !scope || !ns || !*ns || !name)
        return;
    json_t *icp = store_get(x->st, "IngressClassParameters", ns, name);
    if (icp)
        x->icp_spec = json_object_get(icp, "spec");
}

/* ---- name maps ---- */

uint64_t xhash(const char *s)
{
    return xhash_more(XHASH_SEED, s);
}

static size_t xindex_slot(const XIndex *ix, uint64_t h, const char *key)
{
    size_t at = h & ix->mask;
    while (ix->slots[at].key && (ix->slots[at].hash != h || strcmp(ix->slots[at].key, key)))
        at = (at + 1) & ix->mask;
    return at;
}

size_t xindex_get(const XIndex *ix, const char *key)
{
    if (!ix->slots)
        return SIZE_MAX;
    size_t at = xindex_slot(ix, xhash(key), key);
    return ix->slots[at].key ? ix->slots[at].val : SIZE_MAX;
}

int xindex_put(XIndex *ix, const char *key, size_t val)
{
    if (!ix->slots || 2 * (ix->n + 1) > ix->mask + 1) { /* at most half full */
        size_t size = ix->slots ? 2 * (ix->mask + 1) : 64;
        struct XIndexSlot *slots = calloc(size, sizeof(*slots));
        if (!slots)
            return -ENOMEM;
        for (size_t i = 0; ix->slots && i <= ix->mask; i++) {
            size_t at = ix->slots[i].hash & (size - 1);
            while (ix->slots[i].key && slots[at].key)
                at = (at + 1) & (size - 1);
            if (ix->slots[i].key)
                slots[at] = ix->slots[i];
        }
        free(ix->slots);
        ix->slots = slots;
        ix->mask = size - 1;
    }
    uint64_t h = xhash(key);
    size_t at = xindex_slot(ix, h, key);
    ix->n += !ix->slots[at].key;
    ix->slots[at] = (struct XIndexSlot){h, key, val};
    return 0;
}

void xindex_clear(XIndex *ix)
{
    free(ix->slots);
    *ix = (XIndex){NULL, 0, 0};
}

/* ---- services registry ---- */

XService *xsvc_new(const char *name, const char *ns, json_t *parent)
{
    XService *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->name = strdup(name);
    s->ns = strdup(ns ? ns : "");
    s->parent = parent;
    s->k8s = json_object();
    if (!s->name || !s->ns || !s->k8s)
        return xsvc_free(s), NULL;
    return s;
}

void xsvc_free(XService *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->ns);
    json_decref(s->s);
    for (size_t i = 0; i < s->nbackends; i++) {
        free(s->backends[i].ns);
        free(s->backends[i].name);
    }
    free(s->backends);
    for (size_t i = 0; i < s->nroutes; i++) {
        json_decref(s->routes[i].r);
        json_decref(s->routes[i].plugins);
    }
    free(s->routes);
    json_decref(s->k8s);
    json_decref(s->plugins);
    free(s);
}

XService *xsvc_get(Xlate *x, const char *name)
{
    size_t i = xindex_get(&x->svc_index, name);
    return i != SIZE_MAX ? x->svcs[i] : NULL;
}

int xsvc_put(Xlate *x, XService *s)
{
    size_t idx = xindex_get(&x->svc_index, s->name);
    if (idx != SIZE_MAX) {
        if (x->svcs[idx] != s) {
            (void)xindex_put(&x->svc_index, s->name, idx); /* the key was the replaced one's */
            xsvc_free(x->svcs[idx]);
        }
        x->svcs[idx] = s;
        return 0;
    }
    if (x->nsvcs == x->capsvcs) {
        size_t cap = x->capsvcs ? x->capsvcs * 2 : 64;
        XService **n = realloc(x->svcs, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        x->svcs = n;
        x->capsvcs = cap;
    }
    if (xindex_put(&x->svc_index, s->name, x->nsvcs) < 0)
        return -ENOMEM;
    x->svcs[x->nsvcs++] = s;
    return 0;
}

int xsvc_add_route(XService *s, json_t *r, json_t *parent, bool expr)
{
    if (s->nroutes == s->caproutes) {
        size_t cap = s->caproutes ? s->caproutes * 2 : 4;
        XRoute *n = realloc(s->routes, cap * sizeof(*n));
        if (!n) {
            json_decref(r);
            return -ENOMEM;
        }
        s->routes = n;
        s->caproutes = cap;
    }
    s->routes[s->nroutes++] = (XRoute){.r = r, .parent = parent, .expr = expr};
    return 0;
}

int xsvc_add_backend(XService *s, const char *ns, const char *name, bool facade, const PortDef *p)
{
    Backend *n = realloc(s->backends, (s->nbackends + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    s->backends = n;
    Backend *b = &n[s->nbackends++];
    memset(b, 0, sizeof(*b));
    b->ns = strdup(ns);
    b->name = strdup(name);
    b->is_facade = facade;
    if (p)
        b->port = *p;
    else
        b->port.mode = PORT_IMPLICIT;
    return b->ns && b->name ? 0 : -ENOMEM;
}

size_t xjoin(char *buf, size_t cap, ...)
{
    va_list ap;
    size_t len = 0;
    const char *s;
    va_start(ap, cap);
    while ((s = va_arg(ap, const char *))) {
        size_t l = strlen(s);
        if (len + 1 < cap) {
            size_t room = cap - 1 - len;
            memcpy(buf + len, s, l < room ? l : room);
        }
        len += l;
    }
    va_end(ap);
    if (cap)
        buf[len < cap ? len : cap - 1] = 0;
    return len;
}

const char *xlltoa(long long v, char out[24])
{
    char *p = out + 23;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    *p = 0;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    return p;
}

void xport_canonical(const PortDef *p, char *buf, size_t n)
{
    char num[24];
    switch (p->mode) {
    case PORT_NUMBER:
        xjoin(buf, n, xlltoa(p->number, num), NULL);
        break;
    case PORT_NAME:
        xjoin(buf, n, p->name, NULL);
        break;
    default:
        xjoin(buf, n, "implicitPort", NULL);
    }
}

json_t *xservice_defaults(const char *name, const char *host, bool with_path)
{
    json_t *s = json_object();
    jset_s(s, "name", name);
    jset_s(s, "host", host);
    jset_ci(s, "port", 80);
    jset_cs(s, "protocol", "http");
    jset_ci(s, "connect_timeout", 60000);
    jset_ci(s, "read_timeout", 60000);
    jset_ci(s, "write_timeout", 60000);
    jset_ci(s, "retries", 5);
    if (with_path)
        jset_cs(s, "path", "/");
    return s;
}

const char *xsecret_id(const json_t *secret, char buf[37])
{
    const char *uid = obj_uid(secret);
    if (*uid)
        return uid;
    char key[600];
    /* namespace: UUIDv5 of "certificates" under go-kong's base namespace */
    snprintf(key, sizeof(key), "%s/%s", obj_ns(secret), obj_name(secret));
    util_uuid5("ed8fadab-4d7c-56c2-93c5-9ed1d9d9fa7a", key, buf);
    return buf;
}

json_t *xsecret_data(const json_t *secret, const char *key)
{
    json_t *sd = json_object_get(json_object_get(secret, "stringData"), key);
    if (json_is_string(sd) && strlen(json_string_value(sd)) == json_string_length(sd))
        return json_incref(sd);
    if (json_is_string(sd)) /* cut at a NUL, as below */
        return json_string(json_string_value(sd));
    json_t *d = json_object_get(json_object_get(secret, "data"), key);
    if (!json_is_string(d))
        return NULL;
    size_t n;
    unsigned char *raw = util_base64_decode(json_string_value(d), json_string_length(d), &n);
    if (!raw)
        return NULL;
    /* Cut at a NUL byte, as the store cuts the strings it reads: configurations hold C strings
     * (a "\u0000" in one would not load back where sinks parse the revision's bytes). */
    json_t *s = json_stringn((const char *)raw, strnlen((const char *)raw, n));
    free(raw);
    return s;
}

/* ---- assembly ---- */

static const char *sget(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

typedef struct SortKey {
    const char *key;
    json_t *v;
} SortKey;

/*
 * Stable sort of an array of objects by the string @field, descending, as KIC sorts its entity
 * lists. The keys are read once: comparing through the objects' hash tables made this the
 * costliest part of assembly at 10,000 services.
 */
void xsort_by_field(json_t *arr, const char *field)
{
    size_t n = json_array_size(arr);
    if (n < 2)
        return;
    SortKey small[2][8]; /* most arrays sorted are an upstream's few targets */
    SortKey *v = n <= 8 ? small[0] : malloc(n * sizeof(*v));
    SortKey *tmp = n <= 8 ? small[1] : malloc(n * sizeof(*tmp));
    SortKey *const given[2] = {v, tmp};
    if (!v || !tmp) {
        if (n > 8) {
            free(v);
            free(tmp);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        v[i].v = json_incref(json_array_get(arr, i));
        v[i].key = sget(v[i].v, field);
    }
    /* bottom-up merge sort: stable, as Go's sort.SliceStable */
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = strcmp(v[i].key, v[j].key) < 0 ? v[j++] : v[i++];
            while (i < mid)
                tmp[k++] = v[i++];
            while (j < hi)
                tmp[k++] = v[j++];
        }
        SortKey *t = v;
        v = tmp;
        tmp = t;
    }
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i].v);
    if (n > 8) {
        free(given[0]);
        free(given[1]);
    }
}

typedef struct PluginKey {
    char *key;
    json_t *p;
    size_t idx, off;
} PluginKey;

static int cmp_pkey_desc(const void *a, const void *b)
{
    const PluginKey *x = a, *y = b;
    int c = strcmp(y->key, x->key);
    return c ? c : (x->idx < y->idx ? -1 : x->idx > y->idx); /* stable, as Go's sort */
}

/* decK's PluginString: name + consumer + consumer_group + route + service, and a NUL. */
static int plugin_key_append(Buf *b, const json_t *p)
{
    static const char *const fields[] = {"name", "consumer", "consumer_group", "route", "service"};
    int r = 0;
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
        r |= buf_puts(b, sget(p, fields[f]));
    return r | buf_append(b, "", 1);
}

char *xplugin_sort_key(const json_t *p)
{
    Buf b = BUF_INIT;
    if (plugin_key_append(&b, p) < 0) {
        buf_deinit(&b);
        return NULL;
    }
    return buf_take(&b);
}

/* decK's PluginString order, descending. The keys share one buffer: a malloc'd string each was
 * a third of the sort. */
static void sort_plugins(json_t *arr)
{
    size_t n = json_array_size(arr);
    PluginKey *k = calloc(n ? n : 1, sizeof(*k));
    Buf keys = BUF_INIT;
    int r = k ? 0 : -ENOMEM;
    for (size_t i = 0; r == 0 && i < n; i++) {
        json_t *p = json_array_get(arr, i);
        k[i] = (PluginKey){NULL, p, i, keys.len};
        r = plugin_key_append(&keys, p);
    }
    if (r < 0) {
        free(k);
        buf_deinit(&keys);
        return; /* as they are */
    }
    for (size_t i = 0; i < n; i++) {
        k[i].key = keys.data + k[i].off;
        json_incref(k[i].p);
    }
    qsort(k, n, sizeof(*k), cmp_pkey_desc);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, k[i].p);
    free(k);
    buf_deinit(&keys);
}

static void route_defaults(json_t *r, bool expr)
{
    if (!json_object_get(r, "https_redirect_status_code"))
        jset_ci(r, "https_redirect_status_code", 426);
    if (!expr && !json_object_get(r, "path_handling"))
        jset_cs(r, "path_handling", "v0");
}

/* Upstreams in order (their targets are, from upstream_for()), and the top-level plugins: a
 * helper's share of assembly. */
static void order_upstreams_plugins(void *arg)
{
    Xlate *x = arg;
    size_t i;
    json_t *u;
    jarena_enter(); /* a helper thread's values belong to the translation too */
    json_array_foreach(x->upstreams, i, u)
    {
        if (!json_object_get(u, "algorithm"))
            jset_cs(u, "algorithm", "round-robin");
        json_t *t = json_object_get(u, "targets");
        if (t && !json_array_size(t))
            json_object_del(u, "targets");
    }
    xsort_by_field(x->upstreams, "name");
    sort_plugins(x->plugins);
    jarena_leave();
}

static json_t *assemble(Xlate *x)
{
    json_t *cfg = json_object();
    json_t *services = json_array();

    /* Services and routes here, upstreams and plugins on a helper: they share no object. */
    uv_thread_t helper;
    bool threaded = xsplit_min && json_array_size(x->upstreams) + x->nsvcs >= xsplit_min &&
                    uv_thread_create(&helper, order_upstreams_plugins, x) == 0;
    json_object_set_new(cfg, "_format_version", json_string("3.0"));
    for (size_t i = 0; i < x->nsvcs; i++) {
        XService *s = x->svcs[i];
        if (s->skip || !s->s)
            continue;
        /* The service's objects are not needed after assembly: move them, do not copy. */
        json_t *svc = s->s;
        s->s = NULL;
        json_t *routes = json_array();
        for (size_t j = 0; j < s->nroutes; j++) {
            json_t *r = s->routes[j].r;
            s->routes[j].r = NULL;
            route_defaults(r, s->routes[j].expr);
            if (s->routes[j].plugins && json_array_size(s->routes[j].plugins)) {
                xsort_by_field(s->routes[j].plugins, "name");
                json_object_set(r, "plugins", s->routes[j].plugins);
            }
            json_array_append_new(routes, r);
        }
        xsort_by_field(routes, "name");
        if (json_array_size(routes))
            json_object_set_new(svc, "routes", routes);
        else
            json_decref(routes);
        if (s->plugins && json_array_size(s->plugins)) {
            xsort_by_field(s->plugins, "name");
            json_object_set(svc, "plugins", s->plugins);
        }
        json_array_append_new(services, svc);
    }
    xsort_by_field(services, "name");
    if (threaded)
        uv_thread_join(&helper);
    else
        order_upstreams_plugins(x);

    xsort_by_field(x->certificates, "cert");
    xsort_by_field(x->ca_certificates, "cert");
    xsort_by_field(x->consumer_groups, "name");
    xsort_by_field(x->vaults, "prefix");

    struct {
        const char *key;
        json_t *arr;
    } out[] = {
        {"services", services},
        {"upstreams", x->upstreams},
        {"certificates", x->certificates},
        {"ca_certificates", x->ca_certificates},
        {"consumers", x->consumers},
        {"consumer_groups", x->consumer_groups},
        {"consumer_group_consumers", x->cgc},
        {"plugins", x->plugins},
        {"vaults", x->vaults},
    };
    int empty = 1;
    for (size_t k = 0; k < sizeof(out) / sizeof(out[0]); k++) {
        if (json_array_size(out[k].arr)) {
            json_object_set(cfg, out[k].key, out[k].arr);
            empty = 0;
        }
    }
    const char *type;
    json_t *arr;
    json_object_foreach(x->custom, type, arr)
    {
        if (json_array_size(arr)) {
            json_object_set(cfg, type, arr);
            empty = 0;
        }
    }
    json_decref(services);
    /* DB-less Kong rejects an empty configuration: KIC appends a stub upstream. */
    if (empty)
        json_object_set_new(cfg, "upstreams", json_pack("[{s:s}]", "name", "kong"));
    return cfg;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The passes in order; a gated pass runs when its option (a bool in XlateOptions) is on. */
static const struct {
    const char *name;
    void (*fn)(Xlate *x);
    size_t gate;
} phases[XLATE_PHASES - 1] = {
    {"class", xload_class, 0},
    {"ingresses", xlate_ingresses, 0},
    {"l4", xlate_l4, 0},
    {"services", xlate_populate_services, 0},
    {"upstreams", xlate_upstreams, 0},
    {"overrides", xlate_overrides, 0},
    {"consumers", xlate_consumers, 0},
    {"vaults", xlate_vaults, 0},
    {"consumer_groups", xlate_consumer_groups, 0},
    {"plugins", xlate_plugins, 0},
    {"certificates", xlate_certificates, 0},
    {"ca_certificates", xlate_ca_certificates, 0},
    {"fill_ids", xlate_fill_ids, offsetof(XlateOptions, fill_ids)},
    {"custom_entities", xlate_custom_entities, offsetof(XlateOptions, custom_entity)},
};

const char *xlate_phase_name(int i)
{
    if (i == XLATE_PHASES - 1)
        return "assemble";
    return i >= 0 && i < XLATE_PHASES - 1 ? phases[i].name : NULL;
}

static int run(Store *store, const XlateOptions *o, json_t **ret_config, json_t **ret_failures,
               double times[XLATE_PHASES], XlatePlan **ret_plan)
{
    Xlate x;
    XlateOptions def;

    if (!o) {
        xlate_options_default(&def);
        o = &def;
    }
    memset(&x, 0, sizeof(x));
    util_heap_huge(); /* the working memory below: see there */
    jarena_enter();
    x.st = store;
    x.o = o;
    x.failures = json_array();
    x.sni_secrets = json_object();
    x.sni_order = json_array();
    x.sni_claimed = json_object();
    x.upstreams = json_array();
    x.certificates = json_array();
    x.ca_certificates = json_array();
    x.consumers = json_array();
    x.consumer_objs = json_array();
    x.consumer_groups = json_array();
    x.cg_objs = json_array();
    x.cgc = json_array();
    x.plugins = json_array();
    x.vaults = json_array();
    x.custom = json_object();
    if (ret_plan) {
        *ret_plan = NULL;
        x.plan = xplan_new(store, o);
    }

    for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
        uint64_t t0 = times ? now_us() : 0;
        if (!phases[i].gate || *(const bool *)((const char *)o + phases[i].gate))
            phases[i].fn(&x);
        if (times)
            times[i] = (now_us() - t0) / 1000.0;
    }
    uint64_t t0 = times ? now_us() : 0;
    json_t *cfg = assemble(&x);
    if (times)
        times[XLATE_PHASES - 1] = (now_us() - t0) / 1000.0;

    for (size_t i = 0; i < x.nsvcs; i++)
        xsvc_free(x.svcs[i]);
    free(x.svcs);
    xindex_clear(&x.svc_index);
    json_decref(x.sni_secrets);
    json_decref(x.sni_order);
    json_decref(x.sni_claimed);
    json_decref(x.upstreams);
    json_decref(x.certificates);
    json_decref(x.ca_certificates);
    json_decref(x.consumers);
    json_decref(x.consumer_objs);
    json_decref(x.consumer_groups);
    json_decref(x.cg_objs);
    json_decref(x.cgc);
    json_decref(x.plugins);
    json_decref(x.vaults);
    json_decref(x.custom);
    xslice_index_free(x.slices);
    /* Failures outlive the configuration (they are kept for Events): copy them out of the arena. */
    int arena = jarena_pause();
    json_t *failures = json_deep_copy(x.failures);
    jarena_resume(arena);
    json_decref(x.failures);
    jarena_leave();
    if (!cfg || !failures) {
        xlate_plan_free(x.plan);
        json_decref(cfg);
        json_decref(failures);
        return -ENOMEM;
    }
    if (ret_plan)
        *ret_plan = xplan_order(x.plan, json_object_get(cfg, "upstreams"));
    *ret_config = cfg;
    if (ret_failures)
        *ret_failures = failures;
    else
        json_decref(failures);
    return 0;
}

int xlate_run(Store *store, const XlateOptions *o, json_t **ret_config, json_t **ret_failures)
{
    return run(store, o, ret_config, ret_failures, NULL, NULL);
}

int xlate_run_timed(Store *store, const XlateOptions *o, json_t **ret_config, json_t **ret_failures,
                    double times[XLATE_PHASES])
{
    return run(store, o, ret_config, ret_failures, times, NULL);
}

int xlate_run_plan(Store *store, const XlateOptions *o, json_t **ret_config, json_t **ret_failures,
                   XlatePlan **ret_plan)
{
    return run(store, o, ret_config, ret_failures, NULL, ret_plan);
}
