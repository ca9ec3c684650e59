/* SPDX-License-Identifier: Apache-2.0 */
/* Persistence of the last accepted configuration. See state.h. */
#include "state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "log.h"
#include "util.h"

struct State {
    uv_loop_t *loop;
    char *dir;
    char *path;
    uv_work_t work;
    int busy;          /* a write runs in the thread pool */
    Revision *writing; /* held while busy */
    Revision *pending; /* newest revision waiting for the write in progress */
    int result;
    unsigned long long saved_seq;
    int closing;
    uv_timer_t timer; /* only to call close's @done from the loop */
    void (*done)(void *ud);
    void *done_ud;
};

int state_gzip(const void *p, size_t n, unsigned char **ret, size_t *ret_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    size_t cap = deflateBound(&z, (uLong)n) + 32;
    unsigned char *out = malloc(cap);
    if (!out) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int zr = deflate(&z, Z_FINISH);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    if (zr != Z_STREAM_END) {
        free(out);
        return -EIO;
    }
    *ret = out;
    *ret_len = len;
    return 0;
}

int state_gunzip(const unsigned char *p, size_t n, size_t max, char **ret, size_t *ret_len)
{
    z_stream z;
    Buf b = BUF_INIT;
    unsigned char chunk[65536];
    int zr;

    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    do {
        z.next_out = chunk;
        z.avail_out = sizeof(chunk);
        zr = inflate(&z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END)
            break;
        size_t got = sizeof(chunk) - z.avail_out;
        if (b.len + got > max || buf_append(&b, chunk, got) < 0) {
            zr = Z_MEM_ERROR;
            break;
        }
        if (zr == Z_OK && got == 0 && z.avail_in == 0) {
            zr = Z_DATA_ERROR; /* truncated stream */
            break;
        }
    } while (zr != Z_STREAM_END);
    inflateEnd(&z);
    if (zr != Z_STREAM_END) {
        buf_deinit(&b);
        return zr == Z_MEM_ERROR ? -EFBIG : -EBADMSG;
    }
    if (!b.data && buf_reserve(&b, 1) < 0)
        return -ENOMEM;
    *ret_len = b.len;
    *ret = buf_take(&b);
    return 0;
}

int state_new(uv_loop_t *loop, const char *dir, State **ret, char **ret_err)
{
    *ret_err = NULL;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        *ret_err = util_strdup_printf("--state-dir %s: %s", dir, strerror(errno));
        return -errno;
    }
    State *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->loop = loop;
    st->dir = strdup(dir);
    st->path = util_strdup_printf("%s/%s", dir, STATE_FILE);
    if (!st->dir || !st->path) {
        free(st->dir);
        free(st->path);
        free(st);
        return -ENOMEM;
    }
    st->work.data = st;
    st->timer.data = st;
    uv_timer_init(loop, &st->timer);
    *ret = st;
    return 0;
}

int state_load(State *st, json_t **ret_config, char **ret_err)
{
    char *gz = NULL, *js = NULL;
    size_t gzlen = 0, jslen = 0;
    int r;

    *ret_err = NULL;
    r = util_read_file(st->path, STATE_MAX_COMPRESSED, &gz, &gzlen);
    if (r == -ENOENT)
        return r;
    if (r < 0) {
        *ret_err = util_strdup_printf("%s: %s", st->path, strerror(-r));
        return r;
    }
    r = state_gunzip((unsigned char *)gz, gzlen, STATE_MAX_JSON, &js, &jslen);
    free(gz);
    if (r < 0) {
        *ret_err = util_strdup_printf("%s: not a valid gzip file (%s)", st->path, strerror(-r));
        return r;
    }
    json_error_t e;
    json_t *cfg = json_loadb(js, jslen, 0, &e);
    free(js);
    if (!json_is_object(cfg)) {
        *ret_err = util_strdup_printf("%s: not a configuration object: %s", st->path,
                                      cfg ? "wrong type" : e.text);
        json_decref(cfg);
        return -EBADMSG;
    }
    *ret_config = cfg;
    return 0;
}

/* Thread pool: touches only the revision's immutable bytes and st->path/result. */
static void do_write(uv_work_t *w)
{
    State *st = w->data;
    size_t n;
    const char *js = revision_json(st->writing, &n);
    unsigned char *gz = NULL;
    size_t gzlen = 0;
    st->result = state_gzip(js, n, &gz, &gzlen);
    if (st->result == 0)
        st->result = util_write_file_atomic(st->path, gz, gzlen, 0600);
    free(gz);
}

static void start_write(State *st);

static void on_closed(uv_handle_t *h)
{
    State *st = h->data;
    void (*done)(void *) = st->done;
    void *ud = st->done_ud;
    free(st->dir);
    free(st->path);
    free(st);
    if (done)
        done(ud);
}

static void after_write(uv_work_t *w, int status)
{
    State *st = w->data;
    st->busy = 0;
    if (status == 0 && st->result == 0) {
        st->saved_seq = revision_seq(st->writing);
        log_event(LOG_DEBUG, "state", "configuration saved", "{s:s, s:s}", "file", st->path, "hash",
                  revision_hash(st->writing));
    } else {
        log_event(LOG_WARN, "state", "cannot save the configuration, ignoring", "{s:s, s:s}",
                  "file", st->path, "err", strerror(status ? ECANCELED : -st->result));
    }
    st->writing = revision_unref(st->writing);
    if (st->pending) {
        start_write(st); /* even when closing: the newest accepted revision must survive */
        if (st->busy)
            return;
    }
    if (st->closing)
        uv_close((uv_handle_t *)&st->timer, on_closed);
}

static void start_write(State *st)
{
    st->writing = st->pending;
    st->pending = NULL;
    st->busy = 1;
    int r = uv_queue_work(st->loop, &st->work, do_write, after_write);
    if (r < 0) {
        st->busy = 0;
        log_event(LOG_WARN, "state", "cannot queue the state write, ignoring", "{s:s}", "err",
                  uv_strerror(r));
        st->writing = revision_unref(st->writing);
    }
}

void state_save(State *st, Revision *rev)
{
    if (st->closing || revision_seq(rev) == st->saved_seq)
        return;
    revision_unref(st->pending);
    st->pending = revision_ref(rev);
    if (!st->busy)
        start_write(st);
}

unsigned long long state_saved_seq(const State *st)
{
    return st->saved_seq;
}

void state_close(State *st, void (*done)(void *ud), void *ud)
{
    st->closing = 1;
    st->done = done;
    st->done_ud = ud;
    if (!st->busy) {
        st->pending = revision_unref(st->pending);
        uv_close((uv_handle_t *)&st->timer, on_closed);
    }
}
