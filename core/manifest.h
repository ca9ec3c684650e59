/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Manifest loading: files, folders (sorted, *.yaml, *.yml, *.json) or "-" for stdin; multi-document
 * YAML (libyaml) and JSON; `kind: List` is flattened. Untrusted input: every size is capped and
 * every error names the file and line.
 */
#include <jansson.h>
#include <stddef.h>

/* One loaded object; @obj borrowed for the call, @file/@line say where its document starts. */
typedef int (*ManifestObjFn)(void *ud, json_t *obj, const char *file, int line);
/* A document that could not be loaded; the loader goes on with the next document or file. */
typedef void (*ManifestErrFn)(void *ud, const char *file, int line, const char *msg);

enum {
    MANIFEST_MAX_FILE = 64 * 1024 * 1024, /* bytes in one file */
    MANIFEST_MAX_DEPTH = 64,              /* nesting of collections */
};

/*
 * manifest_load_path() - load @path (file, folder or "-"). Calls @obj_fn for every object
 * (a document that is a mapping with "kind"), @err_fn for every broken document or file.
 * Return: 0, or a negative errno if @path itself cannot be read (also reported via @err_fn).
 * A non-zero return of @obj_fn stops loading and is returned.
 */
int manifest_load_path(const char *path, ManifestObjFn obj_fn, ManifestErrFn err_fn, void *ud);

/*
 * From this many bytes on, a buffer is cut at a document marker past its middle and the halves
 * are parsed on two threads (objects still arrive in order, on the caller's thread). Tests and
 * the fuzzer lower it to hold both ways equal.
 */
extern size_t manifest_split_min;

/* manifest_load_buffer() - the same for a buffer; @name is used in messages. */
int manifest_load_buffer(const char *data, size_t len, const char *name, ManifestObjFn obj_fn,
                         ManifestErrFn err_fn, void *ud);

/*
 * manifest_yaml_to_json() - parse every document of a YAML (or JSON) buffer into a JSON array
 * (new reference) with YAML 1.1 scalar typing as Kubernetes' decoder applies it; a key given
 * twice keeps its last value, as go-yaml v2 reads it (the loader above refuses such a document).
 * On error returns NULL and writes "line N: ..." into @err (may be NULL).
 */
json_t *manifest_yaml_to_json(const char *data, size_t len, char *err, size_t errlen);
