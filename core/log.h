/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Structured logging: one JSON object a line on stderr ({"ts","level","mod","msg", fields...}).
 * The level is checked before any formatting happens, so disabled debug logs cost a compare.
 * Never pass keys, tokens or certificate private keys as fields.
 */
#include <jansson.h>

enum {
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
};

extern int log_max_level;

/* log_parse_level() - "error", "warn", "info", "debug" (also "warning", "trace"); -1 if unknown. */
int log_parse_level(const char *s);
void log_set_level(int lvl);
/* log_set_output_text() - human-readable lines instead of JSON (for --log-format text). */
void log_set_output_text(int on);

/*
 * log_emit_new() - write one record. @fields is stolen (may be NULL, e.g. from a failed json_pack);
 * it must be an object whose keys become top-level keys of the record.
 */
void log_emit_new(int lvl, const char *mod, const char *msg, json_t *fields);

/* log_emitf() - printf-style message, no extra fields. */
void log_emitf(int lvl, const char *mod, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_event(lvl, mod, msg, ...)                                                              \
    do {                                                                                           \
        if ((lvl) <= log_max_level)                                                                \
            log_emit_new((lvl), (mod), (msg), json_pack(__VA_ARGS__));                             \
    } while (0)

#define log_f(lvl, mod, ...)                                                                       \
    do {                                                                                           \
        if ((lvl) <= log_max_level)                                                                \
            log_emitf((lvl), (mod), __VA_ARGS__);                                                  \
    } while (0)

#define log_error(mod, ...) log_f(LOG_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_f(LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...) log_f(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_f(LOG_DEBUG, mod, __VA_ARGS__)
