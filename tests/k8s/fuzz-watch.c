/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: bytes from the API server on a watch stream (JSON lines, split at an arbitrary
 * point into two chunks) through the event parser, delivery and Secret reference tracking.
 * Byte 0 picks the kind, byte 1 the split point. Invariants: no crash, no leak, a clean close.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_int.h"
#include "log.h"

static int upserts;

static void on_upsert(void *ud, json_t *obj)
{
    /* Delivered objects always carry kind, apiVersion and a name. */
    if (!json_string_value(json_object_get(obj, "kind")) ||
        !json_string_value(json_object_get(obj, "apiVersion")))
        abort();
    upserts++;
}

static void on_remove(void *ud, const char *kind, const char *ns, const char *name)
{
    if (!kind || !name || !*name)
        abort();
}

static void on_closed(void *ud)
{
    *(int *)ud = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 1 << 20)
        return 0;
    log_set_level(LOG_ERROR - 1);
    uv_loop_t loop;
    uv_loop_init(&loop);
    Http *http;
    if (http_new(&loop, &http) < 0)
        abort();
    K8sConfig cfg = {.apiserver_host = "http://127.0.0.1:9", .identity = "fuzz"};
    K8sCallbacks cb = {.upsert = on_upsert, .remove = on_remove};
    K8s *k = NULL;
    char *err = NULL;
    if (k8s_new(&loop, http, &cfg, &cb, &k, &err) < 0)
        abort();
    size_t split = 2 + (data[1] % (size - 1));
    if (split > size)
        split = size;
    K8sWatch *w = k->watch;
    k8s__watch_feed(w, data[0], (const char *)data + 2, split - 2);
    k8s__watch_feed(w, data[0], (const char *)data + split, size - split);
    /* The same stream again on the Secret watcher, which filters. */
    k8s__watch_feed(w, 16, (const char *)data + 2, size - 2);
    int closed = 0, hclosed = 0;
    k8s_close(k, on_closed, &closed);
    http_close(http, on_closed, &hclosed);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!closed || !hclosed || uv_loop_close(&loop) != 0)
        abort();
    return 0;
}
