/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Manifests source (--manifests PATH...): loads files and folders (the manifest loader's rules:
 * *.yaml, *.yml, *.json, folders recursively, hidden entries skipped) into the store and keeps
 * them in sync: libuv fs events on every folder involved plus a periodic stat check as a
 * fallback. A changed file is reloaded; objects that disappeared from it are deleted; a file
 * with errors keeps its previous objects (errors name the file and line). Loop thread only.
 */
#include <stdbool.h>
#include <uv.h>

#include "store.h"

typedef struct ManifestSource ManifestSource;

enum {
    MSRC_RESCAN_MS = 500, /* periodic stat check */
    MSRC_SETTLE_MS = 20,  /* coalesce a burst of fs events */
};

/*
 * msrc_new() - watch @paths (NULL-terminated, copied). @changed is called after a (re)load that
 * changed the store.
 */
int msrc_new(uv_loop_t *loop, Store *store, char *const *paths, void (*changed)(void *ud), void *ud,
             ManifestSource **ret);
/* msrc_start() - initial load (synchronous) and start watching. Returns objects loaded or -errno.
 */
int msrc_start(ManifestSource *m);
/* msrc_errors() - documents or files that failed in the last load of each file. */
unsigned msrc_errors(const ManifestSource *m);
void msrc_close(ManifestSource *m, void (*done)(void *ud), void *ud);
