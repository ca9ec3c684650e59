/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manifest loading with libyaml into jansson values. Scalars are typed as Kubernetes' YAML
 * decoder types them (null, booleans, integers, floats, else strings; quoted scalars are always
 * strings). Untrusted input: nesting depth, node count and alias expansion are capped, and
 * every problem is reported with the file and line.
 */
#include "manifest.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <yaml.h>

#include "jarena.h"
#include "util.h"
#include "yaml_scalar.h"

enum {
    MAX_NODES = 4 * 1024 * 1024, /* values in one document, aliases expanded */
    MAX_ANCHORS = 4096,
};

typedef struct Parser {
    yaml_parser_t yp;
    yaml_event_t ev;
    int have_ev;
    size_t nodes;
    json_t *anchors; /* name -> value, per document */
    char err[256];
    int err_line;
    bool syntax;    /* libyaml failed: it cannot go on with the buffer */
    bool last_wins; /* a repeated key replaces the value, as go-yaml v2 does (else an error) */
    bool alias;     /* the node just parsed was an alias */
} Parser;

static int fail(Parser *p, int line, const char *fmt, const char *arg)
{
    if (!p->err[0]) {
        size_t n = (size_t)snprintf(p->err, sizeof(p->err), fmt, arg ? arg : "");
        if (n >= sizeof(p->err)) { /* cut: end on a whole UTF-8 character */
            n = sizeof(p->err) - 1;
            while (n && ((unsigned char)p->err[n - 1] & 0xc0) == 0x80)
                n--;
            if (n && (unsigned char)p->err[n - 1] >= 0xc0)
                n--;
            p->err[n] = 0;
        }
        p->err_line = line;
    }
    return -EINVAL;
}

static int next(Parser *p)
{
    if (p->have_ev)
        yaml_event_delete(&p->ev);
    p->have_ev = 0;
    if (!yaml_parser_parse(&p->yp, &p->ev)) {
        p->syntax = true;
        const char *prob = p->yp.problem ? p->yp.problem : "syntax error";
        int line = (int)p->yp.problem_mark.line + 1;
        if (p->yp.context) {
            char msg[200];
            snprintf(msg, sizeof(msg), "%s %s", prob, p->yp.context);
            return fail(p, line, "%s", msg);
        }
        return fail(p, line, "%s", prob);
    }
    p->have_ev = 1;
    return 0;
}

/*
 * A plain scalar's value as Kubernetes reads it (yaml_scalar.h); NULL with *nojson when it is a
 * float JSON cannot carry (.inf, .nan), NULL alone when out of memory or not UTF-8.
 */
static json_t *plain_scalar(const char *s, size_t len, bool *nojson)
{
    YamlValue v;
    *nojson = false;
    switch (yaml_plain_type(s, len, &v)) {
    case YAML_T_NULL:
        return json_null();
    case YAML_T_BOOL:
        return json_boolean(v.b);
    case YAML_T_INT:
        return json_integer(v.i);
    case YAML_T_UINT: /* jansson's integers stop at int64; KIC reads every number as a float64 */
        return json_real((double)v.u);
    case YAML_T_FLOAT:
        return json_real(v.f);
    case YAML_T_NOJSON:
        *nojson = true;
        return NULL;
    default:
        return json_stringn(s, len);
    }
}

static int parse_node(Parser *p, int depth, json_t **ret);

static size_t count_values(json_t *v, size_t budget)
{
    size_t n = 1;
    const char *k;
    json_t *x;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            if (n > budget)
                break;
            n += count_values(x, budget - n);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            if (n > budget)
                break;
            n += count_values(x, budget - n);
        }
    }
    return n;
}

/* An alias becomes a copy; its size counts against the cap, so "billion laughs" inputs fail. */
static json_t *alias_copy(Parser *p, json_t *v)
{
    size_t budget = p->nodes < MAX_NODES ? MAX_NODES - p->nodes : 0;
    size_t n = count_values(v, budget);
    p->nodes += n;
    if (p->nodes > MAX_NODES)
        return NULL;
    return json_deep_copy(v);
}

/*
 * The key of a mapping entry, as a string the way sigs.k8s.io/yaml makes one (yaml_plain_key()):
 * a plain scalar typed, then written back ("yes" is "true", "010" is "8"); a quoted one as it is;
 * an alias by its value. Sets *is_merge for "<<". The current event is the key's.
 */
static int mapping_key(Parser *p, int depth, int line, char **ret, int *is_merge)
{
    const yaml_event_t *e = &p->ev;
    char kbuf[YAML_KEY_MAX];
    const char *ks = NULL;
    json_t *key = NULL;
    int r;
    if (e->type == YAML_SCALAR_EVENT && !e->data.scalar.anchor) {
        const char *s = (const char *)e->data.scalar.value;
        size_t len = e->data.scalar.length;
        const char *tag = (const char *)e->data.scalar.tag;
        bool plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                     !(tag && !strcmp(tag, "tag:yaml.org,2002:str"));
        if (memchr(s, 0, len))
            return fail(p, line, "NUL byte in a scalar%s", NULL);
        int k = plain ? yaml_plain_key(s, len, kbuf) : 0;
        if (k < 0)
            return fail(p, line, "mapping key \"%s\" has no JSON form (quote it)", s);
        ks = k ? kbuf : s;
        *is_merge = plain && !strcmp(ks, "<<");
    } else {
        if ((r = parse_node(p, depth + 1, &key)) < 0)
            return r;
        /* go-yaml merges on a plain "<<" key even with an anchor on it */
        *is_merge = e->type == YAML_SCALAR_EVENT &&
                    e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && json_is_string(key) &&
                    !strcmp(json_string_value(key), "<<");
        if (json_is_string(key)) {
            ks = json_string_value(key);
        } else if (json_is_integer(key)) {
            snprintf(kbuf, sizeof(kbuf), "%lld", (long long)json_integer_value(key));
            ks = kbuf;
        } else if (json_is_boolean(key)) {
            ks = json_is_true(key) ? "true" : "false";
        } else if (json_is_real(key)) {
            util_go_float(json_real_value(key), 32, 'g', kbuf);
            ks = kbuf;
        } else {
            json_decref(key);
            return fail(p, line, "mapping keys must be strings, numbers or booleans%s", NULL);
        }
    }
    *ret = strdup(ks);
    json_decref(key);
    return *ret ? 0 : -ENOMEM;
}

/*
 * @m merged into @obj as go-yaml v2 merges: a mapping's keys replace those set before it; of a
 * sequence of mappings the earlier ones win. An alias must stand for a mapping itself.
 */
static int merge_into(Parser *p, json_t *obj, json_t *m, bool alias, int line)
{
    if (json_is_object(m))
        return json_object_update(obj, m) < 0 ? -ENOMEM : 0;
    bool ok = json_is_array(m) && !alias;
    size_t n = ok ? json_array_size(m) : 0;
    for (size_t j = 0; j < n; j++)
        ok = ok && json_is_object(json_array_get(m, j));
    if (!ok)
        return fail(p, line, "map merge requires map or sequence of maps%s", NULL);
    for (size_t j = n; j-- > 0;)
        if (json_object_update(obj, json_array_get(m, j)) < 0)
            return -ENOMEM;
    return 0;
}

static int parse_mapping(Parser *p, int depth, json_t **ret)
{
    json_t *obj = json_object();
    /* The keys written out, kept apart only once a merge has added others (which a written key
     * may replace); until then every key of @obj is one, and a repeat is found there. */
    json_t *explicit = NULL;
    int r;

    if (!obj)
        return -ENOMEM;
    for (;;) {
        if ((r = next(p)) < 0)
            goto out;
        if (p->ev.type == YAML_MAPPING_END_EVENT)
            break;
        int line = (int)p->ev.start_mark.line + 1;
        char *kcopy = NULL;
        int is_merge = 0;
        if ((r = mapping_key(p, depth, line, &kcopy, &is_merge)) < 0)
            goto out;
        if ((r = next(p)) < 0) {
            free(kcopy);
            goto out;
        }
        json_t *val = NULL;
        if ((r = parse_node(p, depth + 1, &val)) < 0) {
            free(kcopy);
            goto out;
        }
        if (is_merge) { /* in order, as go-yaml: a later key replaces a merged one, and back */
            if (!explicit && !(explicit = json_copy(obj)))
                r = -ENOMEM;
            else
                r = merge_into(p, obj, val, p->alias, line);
            json_decref(val);
            free(kcopy);
            if (r < 0)
                goto out;
            continue;
        }
        if (!p->last_wins && json_object_get(explicit ? explicit : obj, kcopy)) {
            json_decref(val);
            r = fail(p, line, "mapping key \"%s\" already defined", kcopy);
            free(kcopy);
            goto out;
        } else if (json_object_set_new(obj, kcopy, val) < 0 ||
                   (explicit && json_object_set_new(explicit, kcopy, json_true()) < 0)) {
            r = fail(p, line, "mapping key is not valid UTF-8%s", NULL);
            free(kcopy);
            goto out;
        }
        free(kcopy);
    }
    *ret = obj;
    obj = NULL;
    r = 0;
out:
    json_decref(explicit);
    json_decref(obj);
    return r;
}

static int parse_sequence(Parser *p, int depth, json_t **ret)
{
    json_t *arr = json_array();
    int r;

    if (!arr)
        return -ENOMEM;
    for (;;) {
        if ((r = next(p)) < 0)
            break;
        if (p->ev.type == YAML_SEQUENCE_END_EVENT) {
            *ret = arr;
            return 0;
        }
        json_t *v = NULL;
        if ((r = parse_node(p, depth + 1, &v)) < 0)
            break;
        json_array_append_new(arr, v);
    }
    json_decref(arr);
    return r;
}

static int remember_anchor(Parser *p, const yaml_char_t *anchor, json_t *v)
{
    if (!anchor)
        return 0;
    if (json_object_size(p->anchors) >= MAX_ANCHORS)
        return fail(p, (int)p->ev.start_mark.line + 1, "too many anchors%s", NULL);
    json_object_set(p->anchors, (const char *)anchor, v);
    return 0;
}

/* parse_node() - the current event starts a node; on return the node's last event is current. */
static int parse_node(Parser *p, int depth, json_t **ret)
{
    int line = (int)p->ev.start_mark.line + 1;
    int r;

    if (depth > MANIFEST_MAX_DEPTH)
        return fail(p, line, "nesting deeper than the limit%s", NULL);
    if (++p->nodes > MAX_NODES)
        return fail(p, line, "document has too many values%s", NULL);
    switch (p->ev.type) {
    case YAML_SCALAR_EVENT: {
        const char *s = (const char *)p->ev.data.scalar.value;
        size_t len = p->ev.data.scalar.length;
        json_t *v;
        int plain = p->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        const char *tag = (const char *)p->ev.data.scalar.tag;
        if (tag && !strcmp(tag, "tag:yaml.org,2002:str"))
            plain = 0;
        if (memchr(s, 0, len))
            return fail(p, line, "NUL byte in a scalar%s", NULL);
        bool nojson = false;
        v = plain ? plain_scalar(s, len, &nojson) : json_stringn(s, len);
        if (!v && nojson)
            return fail(p, line, "%s is a float JSON cannot carry (quote it for a string)", s);
        if (!v)
            return fail(p, line, "scalar is not valid UTF-8%s", NULL);
        if ((r = remember_anchor(p, p->ev.data.scalar.anchor, v)) < 0) {
            json_decref(v);
            return r;
        }
        *ret = v;
        p->alias = false;
        return 0;
    }
    case YAML_ALIAS_EVENT: {
        json_t *v = json_object_get(p->anchors, (const char *)p->ev.data.alias.anchor);
        if (!v)
            return fail(p, line, "unknown alias \"%s\"", (const char *)p->ev.data.alias.anchor);
        json_t *c = alias_copy(p, v);
        if (!c)
            return fail(p, line, "aliases expand to too many values%s", NULL);
        *ret = c;
        p->alias = true;
        return 0;
    }
    case YAML_MAPPING_START_EVENT: {
        char *anchor = p->ev.data.mapping_start.anchor
                           ? strdup((const char *)p->ev.data.mapping_start.anchor)
                           : NULL;
        r = parse_mapping(p, depth, ret);
        if (r == 0 && anchor)
            r = remember_anchor(p, (yaml_char_t *)anchor, *ret);
        free(anchor);
        p->alias = false;
        return r;
    }
    case YAML_SEQUENCE_START_EVENT: {
        char *anchor = p->ev.data.sequence_start.anchor
                           ? strdup((const char *)p->ev.data.sequence_start.anchor)
                           : NULL;
        r = parse_sequence(p, depth, ret);
        if (r == 0 && anchor)
            r = remember_anchor(p, (yaml_char_t *)anchor, *ret);
        free(anchor);
        p->alias = false;
        return r;
    }
    default:
        return fail(p, line, "unexpected YAML event%s", NULL);
    }
}

/*
 * Walk the documents of one buffer. @doc_fn gets each document's value (its reference: the
 * parser keeps none, so a document handed to another thread is freed there) and start line, or
 * NULL, the line and the message for a document that breaks a rule (a duplicate key, a cap): the
 * parser is still in step then, so unless @doc_fn returns non-zero the documents after it load.
 * A syntax error stops the buffer (libyaml cannot resynchronise) and is returned in @err.
 */
typedef int (*DocFn)(void *ud, json_t *doc, int line, const char *err);

static int each_document(const char *data, size_t len, DocFn doc_fn, void *ud, char *err,
                         size_t errlen, int *err_line, bool last_wins)
{
    Parser p = {.last_wins = last_wins};
    int r = 0;

    if (!yaml_parser_initialize(&p.yp))
        return -ENOMEM;
    yaml_parser_set_input_string(&p.yp, (const unsigned char *)data, len);
    yaml_parser_set_encoding(&p.yp, YAML_UTF8_ENCODING);
    p.anchors = json_object();
    for (;;) {
        if ((r = next(&p)) < 0)
            break;
        if (p.ev.type == YAML_STREAM_END_EVENT)
            break;
        if (p.ev.type != YAML_DOCUMENT_START_EVENT)
            continue;
        int line = (int)p.ev.start_mark.line + 1;
        if ((r = next(&p)) < 0)
            break;
        if (p.ev.type == YAML_DOCUMENT_END_EVENT) {
            continue;
        }
        /* The document's content starts here; report that line, not the "---". */
        line = (int)p.ev.start_mark.line + 1;
        p.nodes = 0; /* the value cap is per document */
        json_t *doc = NULL;
        if ((r = parse_node(&p, 0, &doc)) < 0) {
            if (r != -EINVAL || p.syntax || (r = doc_fn(ud, NULL, p.err_line, p.err)))
                break;
            p.err[0] = 0;
            json_object_clear(p.anchors);
            while ((r = next(&p)) == 0 && p.ev.type != YAML_DOCUMENT_END_EVENT)
                ;
            if (r < 0)
                break;
            continue;
        }
        if ((r = next(&p)) < 0) { /* DOCUMENT_END */
            json_decref(doc);
            break;
        }
        json_object_clear(p.anchors);
        if ((r = doc_fn(ud, doc, line, NULL)))
            break;
    }
    if (r < 0 && p.err[0]) {
        if (err)
            snprintf(err, errlen, "%s", p.err);
        if (err_line)
            *err_line = p.err_line;
    }
    if (p.have_ev)
        yaml_event_delete(&p.ev);
    yaml_parser_delete(&p.yp);
    json_decref(p.anchors);
    return r;
}

static int collect_doc(void *ud, json_t *doc, int line, const char *err)
{
    (void)line;
    if (err)
        return -EINVAL; /* one value: any broken document breaks it */
    return json_array_append_new(ud, doc) < 0 ? -ENOMEM : 0;
}

/* A UTF-8 byte order mark at the start (an editor's) is passed over, as go-yaml's reader does;
 * libyaml, told the encoding, would read it as part of the first line. */
static void skip_bom(const char **data, size_t *len)
{
    if (*len >= 3 && !memcmp(*data, "\xEF\xBB\xBF", 3)) {
        *data += 3;
        *len -= 3;
    }
}

json_t *manifest_yaml_to_json(const char *data, size_t len, char *err, size_t errlen)
{
    json_t *arr = json_array();
    char e[256] = "";
    int line = 0;

    if (!arr)
        return NULL;
    skip_bom(&data, &len);
    int r = each_document(data, len, collect_doc, arr, e, sizeof(e), &line, true);
    if (r < 0) {
        if (err)
            snprintf(err, errlen, "line %d: %s", line, e[0] ? e : strerror(-r));
        json_decref(arr);
        return NULL;
    }
    return arr;
}

typedef struct LoadCtx {
    const char *name;
    ManifestObjFn obj_fn;
    ManifestErrFn err_fn;
    void *ud;
} LoadCtx;

static void report(LoadCtx *c, int line, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof(msg), fmt, arg ? arg : "");
    if (c->err_fn)
        c->err_fn(c->ud, c->name, line, msg);
}

static int deliver(LoadCtx *c, json_t *doc, int line, int depth)
{
    if (json_is_null(doc))
        return 0; /* empty document */
    if (!json_is_object(doc)) {
        report(c, line, "document is not a mapping (a Kubernetes object)%s", NULL);
        return 0;
    }
    json_t *kind = json_object_get(doc, "kind");
    if (!json_is_string(kind) || !json_string_length(kind)) {
        report(c, line, "object has no kind%s", NULL);
        return 0;
    }
    const char *k = json_string_value(kind);
    size_t kl = strlen(k);
    if (kl >= 4 && !strcmp(k + kl - 4, "List") && json_is_array(json_object_get(doc, "items"))) {
        if (depth > 2) {
            report(c, line, "lists nested too deep%s", NULL);
            return 0;
        }
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(doc, "items"), i, it)
        {
            int r = deliver(c, it, line, depth + 1);
            if (r)
                return r;
        }
        return 0;
    }
    json_t *md = json_object_get(doc, "metadata");
    json_t *name = json_object_get(md, "name"), *ns = json_object_get(md, "namespace");
    if ((name && !json_is_string(name)) || (ns && !json_is_null(ns) && !json_is_string(ns))) {
        /* kubectl refuses these too; the usual cause is YAML 1.1's booleans */
        report(c, line, "%s: metadata.name and metadata.namespace must be strings (YAML reads "
                        "unquoted yes, no, on, off, y and n as booleans: quote them)", k);
        return 0;
    }
    if (!json_is_object(md) || !json_is_string(name) || !json_string_length(name)) {
        report(c, line, "%s has no metadata.name", k);
        return 0;
    }
    return c->obj_fn ? c->obj_fn(c->ud, doc, c->name, line) : 0;
}

static int deliver_doc(void *ud, json_t *doc, int line, const char *err)
{
    if (err) {
        report(ud, line, "%s", err);
        return 0;
    }
    int r = deliver(ud, doc, line, 0);
    json_decref(doc);
    return r;
}

/*
 * Where a big buffer can be cut in two: at a document marker ("---" at the start of a line,
 * which no scalar can hold) past the middle. libyaml spends ~200 instructions a byte, and
 * documents are independent (anchors are per document), so the halves parse on two threads.
 * Not when a directive (%YAML, %TAG) is about: it belongs to the document after it.
 */
size_t manifest_split_min = 256 * 1024;

static const char *split_point(const char *data, size_t len)
{
    /* Not UTF-16 either (a byte order mark): its "\n---" would be other characters. */
    if (!len || len < manifest_split_min || data[0] == '%' || (unsigned char)data[0] >= 0xfe ||
        memmem(data, len, "\n%", 2))
        return NULL;
    const char *end = data + len, *p = data + len / 2;
    while ((p = memmem(p, (size_t)(end - p), "\n---", 4))) {
        const char *after = p + 4;
        if (after == end || *after == ' ' || *after == '\t' || *after == '\r' || *after == '\n')
            return p + 1;
        p = after;
    }
    return NULL;
}

/*
 * The second half, parsed on a helper thread: its documents are handed over as they are made,
 * so the caller delivers them while the helper is still parsing the rest.
 */
/*
 * The lines before @end as libyaml counts them, for the second half's line numbers: CR LF, CR
 * and LF each end a line, and so do NEL, LS and PS (in UTF-8).
 */
static int count_breaks(const char *p, const char *end)
{
    int n = 0;
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\n') {
            n++;
        } else if (c == '\r') {
            n++;
            if (p + 1 < end && p[1] == '\n')
                p++;
        } else if (c == 0xc2 && p + 1 < end && (unsigned char)p[1] == 0x85) {
            n++;
            p++;
        } else if (c == 0xe2 && p + 2 < end && (unsigned char)p[1] == 0x80 &&
                   ((unsigned char)p[2] == 0xa8 || (unsigned char)p[2] == 0xa9)) {
            n++;
            p += 2;
        }
    }
    return n;
}

typedef struct Half {
    const char *data;
    size_t len;
    json_t *docs; /* [document, line] pairs, appended under the lock */
    size_t taken; /* how many the caller has taken */
    bool done, stop; /* the helper finished; the caller wants no more */
    bool arena;      /* the caller parses into the arena (jarena.h): so does the helper */
    int r, line;
    char e[256];
    uv_mutex_t lock;
    uv_cond_t more;
} Half;

static int collect_with_line(void *ud, json_t *doc, int line, const char *err)
{
    Half *h = ud;
    /*
     * The pair takes the parser's reference: the caller's thread frees the document. (Were the
     * last reference dropped here, the free would race with the caller's reads: jansson's
     * decrement only releases, it does not acquire.)
     */
    json_t *pair = json_pack("[o, i]", doc ? doc : json_null(), line);
    if (pair && err) /* fail() cut it on a whole character: it needs no second UTF-8 scan */
        json_array_append_new(pair, json_string_nocheck(err));
    uv_mutex_lock(&h->lock);
    int r = h->stop ? 1 : json_array_append_new(h->docs, pair) < 0 ? -ENOMEM : 0;
    if (h->stop)
        json_decref(pair);
    uv_cond_signal(&h->more);
    uv_mutex_unlock(&h->lock);
    return r;
}

static void parse_half(void *arg)
{
    Half *h = arg;
    char e[256] = "";
    int line = 0;
    if (h->arena)
        jarena_enter();
    int r = each_document(h->data, h->len, collect_with_line, h, e, sizeof(e), &line, false);
    if (h->arena)
        jarena_leave();
    uv_mutex_lock(&h->lock);
    h->r = r;
    h->line = line;
    memcpy(h->e, e, sizeof(e));
    h->done = true;
    uv_cond_signal(&h->more);
    uv_mutex_unlock(&h->lock);
}

/*
 * The next document of @h (a new reference) and its line, or NULL when there are no more; for a
 * broken document, its message as a string, with *broken set.
 */
static json_t *next_half_doc(Half *h, int *line, bool *broken)
{
    json_t *d = NULL;
    uv_mutex_lock(&h->lock);
    while (h->taken >= json_array_size(h->docs) && !h->done)
        uv_cond_wait(&h->more, &h->lock);
    if (h->taken < json_array_size(h->docs)) {
        json_t *pair = json_array_get(h->docs, h->taken);
        *broken = json_array_size(pair) == 3;
        d = json_incref(json_array_get(pair, *broken ? 2 : 0));
        *line = (int)json_integer_value(json_array_get(pair, 1));
        /* Let go of it here: the array would keep every document until the end. */
        json_array_set_new(h->docs, h->taken++, json_null());
    }
    uv_mutex_unlock(&h->lock);
    return d;
}

static int finish(LoadCtx *c, int r, const char *e, int line)
{
    if (r < 0 && e[0]) {
        report(c, line, "%s", e);
        return 0; /* reported; the caller goes on with the next file */
    }
    return r;
}

/*
 * The first half is delivered while @h parses the second on @helper; the second's documents
 * follow in order as they come, with their lines counted from the start of the buffer. Whatever
 * stops the first half (an error, a callback's non-zero) stops the buffer, as one thread reading
 * it would.
 */
static int split_deliver(LoadCtx *c, const char *data, const char *mid, Half *h, uv_thread_t *helper)
{
    char e[256] = "";
    int line = 0;
    int r = each_document(data, (size_t)(mid - data), deliver_doc, c, e, sizeof(e), &line, false);
    if (r == 0) {
        int base = count_breaks(data, mid);
        json_t *d;
        int l;
        bool broken;
        while (!r && (d = next_half_doc(h, &l, &broken))) {
            if (broken)
                report(c, base + l, "%s", json_string_value(d));
            else
                r = deliver(c, d, base + l, 0);
            json_decref(d);
        }
        if (!r) {
            uv_thread_join(helper);
            return finish(c, h->r, h->e, base + h->line);
        }
    }
    uv_mutex_lock(&h->lock);
    h->stop = true;
    uv_mutex_unlock(&h->lock);
    uv_thread_join(helper);
    return finish(c, r, e, line);
}

static bool load_split(LoadCtx *c, const char *data, size_t len, const char *mid, int *ret)
{
    Half h = {.data = mid,
              .len = len - (size_t)(mid - data),
              .docs = json_array(),
              .arena = jarena_active()};
    uv_thread_t helper;
    if (!h.docs || uv_mutex_init(&h.lock) != 0) {
        json_decref(h.docs);
        return false; /* then one thread reads it all */
    }
    if (uv_cond_init(&h.more) != 0) {
        uv_mutex_destroy(&h.lock);
        json_decref(h.docs);
        return false;
    }
    bool ok = uv_thread_create(&helper, parse_half, &h) == 0;
    if (ok)
        *ret = split_deliver(c, data, mid, &h, &helper);
    uv_cond_destroy(&h.more);
    uv_mutex_destroy(&h.lock);
    json_decref(h.docs);
    return ok;
}

int manifest_load_buffer(const char *data, size_t len, const char *name, ManifestObjFn obj_fn,
                         ManifestErrFn err_fn, void *ud)
{
    LoadCtx c = {name, obj_fn, err_fn, ud};
    char e[256] = "";
    int line = 0;

    if (len > MANIFEST_MAX_FILE) {
        report(&c, 0, "file is larger than the limit%s", NULL);
        return 0;
    }
    skip_bom(&data, &len);
    const char *mid = split_point(data, len);
    if (mid) {
        int r = 0;
        if (load_split(&c, data, len, mid, &r))
            return r;
    }
    int r = each_document(data, len, deliver_doc, &c, e, sizeof(e), &line, false);
    return finish(&c, r, e, line);
}

static int has_manifest_suffix(const char *n)
{
    size_t l = strlen(n);
    return (l > 5 && !strcmp(n + l - 5, ".yaml")) || (l > 4 && !strcmp(n + l - 4, ".yml")) ||
           (l > 5 && !strcmp(n + l - 5, ".json"));
}

static int load_file(const char *path, ManifestObjFn obj_fn, ManifestErrFn err_fn, void *ud)
{
    char *data = NULL;
    size_t len = 0;
    int r;

    if (!strcmp(path, "-")) {
        Buf b = BUF_INIT;
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
            if (b.len + n > MANIFEST_MAX_FILE) {
                buf_deinit(&b);
                if (err_fn)
                    err_fn(ud, "-", 0, "standard input is larger than the limit");
                return -EFBIG;
            }
            if (buf_append(&b, chunk, n) < 0) {
                buf_deinit(&b);
                return -ENOMEM;
            }
        }
        len = b.len;
        data = buf_take(&b);
        r = manifest_load_buffer(data, len, "-", obj_fn, err_fn, ud);
        free(data);
        return r;
    }
    r = util_read_file(path, MANIFEST_MAX_FILE, &data, &len);
    if (r < 0) {
        if (err_fn) {
            char msg[300];
            snprintf(msg, sizeof(msg), "cannot read: %s",
                     r == -EFBIG ? "file is larger than the limit" : strerror(-r));
            err_fn(ud, path, 0, msg);
        }
        return r;
    }
    r = manifest_load_buffer(data, len, path, obj_fn, err_fn, ud);
    free(data);
    return r;
}

static int load_dir(const char *path, int depth, ManifestObjFn obj_fn, ManifestErrFn err_fn,
                    void *ud)
{
    struct dirent **ents = NULL;
    int n = scandir(path, &ents, NULL, alphasort);
    int r = 0;

    if (n < 0) {
        r = -errno;
        if (err_fn) {
            char msg[300];
            snprintf(msg, sizeof(msg), "cannot read folder: %s", strerror(-r));
            err_fn(ud, path, 0, msg);
        }
        return r;
    }
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        if (r == 0 && name[0] != '.') {
            char *child = util_strdup_printf("%s/%s", path, name);
            struct stat st;
            if (child && stat(child, &st) == 0) {
                if (S_ISDIR(st.st_mode) && depth < 8)
                    r = load_dir(child, depth + 1, obj_fn, err_fn, ud);
                else if (S_ISREG(st.st_mode) && has_manifest_suffix(name))
                    r = load_file(child, obj_fn, err_fn, ud);
                /* A child that cannot be read was reported; go on with the rest. */
                if (r < 0 && r != -ENOMEM)
                    r = 0;
            }
            free(child);
        }
        free(ents[i]);
    }
    free(ents);
    return r;
}

int manifest_load_path(const char *path, ManifestObjFn obj_fn, ManifestErrFn err_fn, void *ud)
{
    struct stat st;

    if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return load_dir(path, 0, obj_fn, err_fn, ud);
    if (strcmp(path, "-") != 0 && stat(path, &st) < 0) {
        int r = -errno;
        if (err_fn) {
            char msg[300];
            snprintf(msg, sizeof(msg), "cannot read: %s", strerror(errno));
            err_fn(ud, path, 0, msg);
        }
        return r;
    }
    return load_file(path, obj_fn, err_fn, ud);
}
