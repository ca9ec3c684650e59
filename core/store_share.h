/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Shared values of a store (owner: store). A cluster's objects repeat themselves: every
 * Service's ports block, every slice's ports, the labels Helm puts on everything, apiVersion,
 * kind and namespace strings. In jansson each copy costs hundreds of bytes, so the store keeps
 * one copy of each equal value and lets objects hold references to it, as a compiler interns
 * strings. This is safe because stored objects are never mutated.
 *
 * Values are shared bottom-up: an object's children are shared first, so two objects are equal
 * when their keys are equal in the same order and their children are the same pointers; no deep
 * comparison is needed. A value that no object uses any more is dropped by share_sweep().
 * Loop thread only (the thread that puts into the store); readers on other threads only see
 * immutable values whose counts they change atomically.
 */
#include <jansson.h>
#include <stddef.h>

typedef struct StoreShare StoreShare;

StoreShare *share_new(void);
StoreShare *share_free(StoreShare *s); /* NULL-safe, returns NULL */

/*
 * share_object() - replace the values inside @obj (an object the store may change, about to be
 * stored) by equal ones already shared, and share its new ones. @obj itself, and the fields of
 * its metadata that no two objects have in common (name, uid, resourceVersion, timestamps), are
 * left as they are. On allocation failure values are simply left unshared.
 */
void share_object(StoreShare *s, json_t *obj);

/*
 * share_object_copy() - share_object() of a copy of @obj (a new reference, NULL when memory runs
 * out), made in the caller's current allocation (a store's lane, see jarena.h): what is shared
 * already is not copied, and what is new to the table is entered as its copy. @obj is left as it
 * is. With @s NULL, a plain copy.
 */
json_t *share_object_copy(StoreShare *s, json_t *obj);

/*
 * share_released() - the store let go of an object and holds @live now: sweeps once half as
 * many objects as it holds were let go of since the last sweep.
 */
void share_released(StoreShare *s, size_t live);

/* share_sweep() - drop the shared values no object uses any more. */
void share_sweep(StoreShare *s);

/* share_count() - how many values are shared (for tests and figures). */
size_t share_count(const StoreShare *s);
