/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * State: the last configuration the sinks accepted, kept in --state-dir as gzip'd canonical JSON
 * (zlib), written atomically off the loop thread (latest wins), read back at start so a restarted
 * controller can configure gateways before its sources are back. Loop thread only.
 */
#include <jansson.h>
#include <uv.h>

#include "revision.h"

typedef struct State State;

#define STATE_FILE "last-config.json.gz"

enum {
    STATE_MAX_COMPRESSED = 64 * 1024 * 1024,
    STATE_MAX_JSON = 512 * 1024 * 1024,
};

/* state_new() - use @dir (created with mode 0700 when missing). */
int state_new(uv_loop_t *loop, const char *dir, State **ret, char **ret_err);

/*
 * state_load() - the saved configuration (new reference) into *ret_config.
 * Return: 0, -ENOENT when nothing was saved, another negative errno (with *ret_err) when the
 * file is unreadable or corrupt.
 */
int state_load(State *st, json_t **ret_config, char **ret_err);

/* state_save() - persist @rev (borrowed; a reference is kept while writing). Latest wins. */
void state_save(State *st, Revision *rev);
/* state_saved_seq() - seq of the last revision written successfully, 0 if none. */
unsigned long long state_saved_seq(const State *st);

/* state_close() - finish the write in progress (if any); @done runs from the loop, then @st is
 * freed. */
void state_close(State *st, void (*done)(void *ud), void *ud);

/* state_gzip() / state_gunzip() - in-memory gzip; malloc'd results. Exposed for tests. */
int state_gzip(const void *p, size_t n, unsigned char **ret, size_t *ret_len);
int state_gunzip(const unsigned char *p, size_t n, size_t max, char **ret, size_t *ret_len);
