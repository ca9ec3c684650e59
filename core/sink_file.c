/* SPDX-License-Identifier: Apache-2.0 */
/* Declarative file sink. See sink_file.h. */
#include "sink_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "xlate.h"

typedef struct FileSink {
    Sink base; /* first: a Sink * is a FileSink * */
    uv_loop_t *loop;
    char *path;
    int yaml;
    uv_work_t work;
    uv_timer_t timer; /* closed last; its close callback frees the sink */
    int busy;
    Revision *writing, *pending;
    char *bytes; /* YAML rendered in the thread pool (owned); JSON is the revision's */
    int result;
    unsigned long long written_seq;
    unsigned long long writes, failures;
    char last_error[128];
    int closing;
    void (*done)(void *ud);
    void *done_ud;
} FileSink;

static void do_write(uv_work_t *w)
{
    FileSink *fs = w->data;
    size_t n;
    const char *p;
    if (fs->yaml) {
        json_t *config = revision_load_config(fs->writing);
        fs->bytes = config ? xlate_to_yaml_for_kong(config) : NULL;
        json_decref(config);
        if (!fs->bytes) {
            fs->result = -ENOMEM;
            return;
        }
        p = fs->bytes;
        n = strlen(p);
    } else {
        p = revision_json(fs->writing, &n);
    }
    fs->result = util_write_file_atomic(fs->path, p, n, 0644);
}

static void start_write(FileSink *fs);

static void on_timer_closed(uv_handle_t *h)
{
    FileSink *fs = h->data;
    void (*done)(void *) = fs->done;
    void *ud = fs->done_ud;
    revision_unref(fs->pending);
    free(fs->path);
    free(fs);
    if (done)
        done(ud);
}

static void after_write(uv_work_t *w, int status)
{
    FileSink *fs = w->data;
    Revision *rev = fs->writing;
    int ok = status == 0 && fs->result == 0;

    fs->busy = 0;
    fs->writing = NULL;
    free(fs->bytes);
    fs->bytes = NULL;
    if (ok) {
        fs->writes++;
        fs->written_seq = revision_seq(rev);
        fs->last_error[0] = 0;
        log_event(LOG_INFO, "sink-file", "configuration written", "{s:s, s:s, s:I}", "file",
                  fs->path, "hash", revision_hash(rev), "revision", (json_int_t)revision_seq(rev));
    } else {
        fs->failures++;
        snprintf(fs->last_error, sizeof(fs->last_error), "%s",
                 status ? "cancelled" : strerror(-fs->result));
        log_event(LOG_ERROR, "sink-file", "cannot write the configuration", "{s:s, s:s}", "file",
                  fs->path, "err", fs->last_error);
    }
    if (!fs->closing && fs->base.host && fs->base.host->applied)
        fs->base.host->applied(fs->base.host, &fs->base, rev, ok);
    revision_unref(rev);
    if (fs->pending && !fs->closing) {
        start_write(fs);
        return;
    }
    if (fs->closing)
        uv_close((uv_handle_t *)&fs->timer, on_timer_closed);
}

static void start_write(FileSink *fs)
{
    fs->writing = fs->pending;
    fs->pending = NULL;
    fs->busy = 1;
    int r = uv_queue_work(fs->loop, &fs->work, do_write, after_write);
    if (r < 0) {
        fs->result = r;
        after_write(&fs->work, 0);
    }
}

static void file_publish(Sink *s, Revision *rev)
{
    FileSink *fs = (FileSink *)s;
    if (fs->closing)
        return;
    revision_unref(fs->pending);
    fs->pending = revision_ref(rev);
    if (!fs->busy)
        start_write(fs);
}

static void file_close(Sink *s, void (*done)(void *ud), void *ud)
{
    FileSink *fs = (FileSink *)s;
    fs->closing = 1;
    fs->done = done;
    fs->done_ud = ud;
    if (!fs->busy)
        uv_close((uv_handle_t *)&fs->timer, on_timer_closed);
}

static json_t *file_status(Sink *s)
{
    FileSink *fs = (FileSink *)s;
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "kind", "file", "file", fs->path,
                     "written_revision", (json_int_t)fs->written_seq, "writes",
                     (json_int_t)fs->writes, "failures", (json_int_t)fs->failures, "last_error",
                     fs->last_error);
}

static const SinkOps file_ops = {
    .kind = "file",
    .publish = file_publish,
    .close = file_close,
    .status = file_status,
};

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int sink_file_new(uv_loop_t *loop, const char *path, SinkHost *host, Sink **ret)
{
    FileSink *fs = calloc(1, sizeof(*fs));
    if (!fs || !(fs->path = strdup(path))) {
        free(fs);
        return -ENOMEM;
    }
    fs->base.ops = &file_ops;
    fs->base.host = host;
    fs->loop = loop;
    fs->yaml = ends_with(path, ".yaml") || ends_with(path, ".yml");
    fs->work.data = fs;
    fs->timer.data = fs;
    uv_timer_init(loop, &fs->timer);
    *ret = &fs->base;
    return 0;
}
