/* SPDX-License-Identifier: Apache-2.0 */
/* Structured logging to stderr, one JSON object a line. See log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int log_max_level = LOG_INFO;
static int text_output;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_parse_level(const char *s)
{
    if (!s)
        return -1;
    if (!strcasecmp(s, "error") || !strcasecmp(s, "panic") || !strcasecmp(s, "fatal"))
        return LOG_ERROR;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
        return LOG_WARN;
    if (!strcasecmp(s, "info"))
        return LOG_INFO;
    if (!strcasecmp(s, "debug") || !strcasecmp(s, "trace"))
        return LOG_DEBUG;
    return -1;
}

void log_set_level(int lvl)
{
    log_max_level = lvl < LOG_ERROR ? LOG_ERROR : lvl > LOG_DEBUG ? LOG_DEBUG : lvl;
}

void log_set_output_text(int on)
{
    text_output = on;
}

static void timestamp(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t l = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + l, n - l, ".%03ldZ", ts.tv_nsec / 1000000);
}

void log_emit_new(int lvl, const char *mod, const char *msg, json_t *fields)
{
    char ts[40];

    if (lvl > log_max_level) {
        json_decref(fields);
        return;
    }
    if (lvl < LOG_ERROR)
        lvl = LOG_ERROR;
    timestamp(ts, sizeof(ts));
    if (text_output) {
        char *extra = NULL;
        if (fields && json_object_size(fields))
            extra = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(stderr, "%s %-5s %s: %s%s%s\n", ts, level_names[lvl], mod ? mod : "-", msg ? msg : "",
                extra ? " " : "", extra ? extra : "");
        free(extra);
        json_decref(fields);
        return;
    }
    json_t *rec = json_object();
    if (!rec) {
        json_decref(fields);
        return;
    }
    json_object_set_new(rec, "ts", json_string(ts));
    json_object_set_new(rec, "level", json_string(level_names[lvl]));
    json_object_set_new(rec, "mod", json_string(mod ? mod : "-"));
    json_object_set_new(rec, "msg", msg ? json_string(msg) : json_string(""));
    if (json_is_object(fields)) {
        const char *k;
        json_t *v;
        json_object_foreach(fields, k, v)
        {
            /* The fixed keys come first and are never overwritten by a field. */
            if (!json_object_get(rec, k))
                json_object_set(rec, k, v);
        }
    }
    json_decref(fields);
    char *line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    if (line) {
        /* Translation logs from the thread pool: keep each record on a line of its own. */
        flockfile(stderr);
        fputs(line, stderr);
        fputc('\n', stderr);
        funlockfile(stderr);
        free(line);
    }
    json_decref(rec);
}

void log_emitf(int lvl, const char *mod, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    log_emit_new(lvl, mod, buf, NULL);
}
