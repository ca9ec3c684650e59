/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Internals of the Konnect sink shared between its files and its unit tests: the entity kinds
 * Konnect's KIC API serves, the flattening of a Kong declarative config into entities keyed by
 * "kind/id" (with stable IDs and redacted secrets), and the diff that turns a desired and a
 * current entity set into ordered PUT/DELETE operations.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct KKind {
    const char *name;        /* list path under the control plane and key prefix: "services" */
    const char *parent;      /* field naming the parent ({"id":..}) for nested paths, or NULL */
    const char *parent_path; /* "upstreams", "consumers" */
    const char *seg;         /* path segment below the parent: "targets", "key-auth" */
    int level;               /* dependency level: created top-down, deleted bottom-up */
    bool consumer_data;      /* left out with --konnect-disable-consumers-sync */
} KKind;

extern const KKind konnect__kinds[];
extern const size_t konnect__nkinds;
#define KONNECT_LEVELS 4

/* konnect__kind_index() - index in konnect__kinds of @name (also "name/id" keys), or -1. */
int konnect__kind_index(const char *name);

/*
 * konnect__desired() - flatten the declarative @config (borrowed) into a new JSON object mapping
 * "kind/id" to the entity body Konnect should hold: nested routes, plugins, targets, SNIs and
 * credentials become their own entities with {"id"} parent references; entities without an id
 * get a UUIDv5 of their natural key; secrets are replaced by deterministic placeholders.
 * Plugin references by name are resolved to IDs. Return: 0 or -ENOMEM.
 */
int konnect__desired(json_t *config, bool no_consumers, json_t **ret);

/*
 * konnect__placeholder() - the redaction placeholder for @field of entity @kind/@id: a vault
 * reference derived from a hash of the entity's identity, never of the secret, so it is stable
 * (no churn) and tells nothing about the secret.
 */
void konnect__placeholder(const char *kind, const char *id, const char *field, char out[64]);

/*
 * konnect__subset_equal() - whether @have (Konnect's copy) holds every field of @want with an
 * equal value. Objects compare only @want's keys, recursively, so defaults added by Konnect are
 * not drift; arrays must match element by element; numbers compare by value.
 */
bool konnect__subset_equal(json_t *want, json_t *have);

/* konnect__body_hash() - SHA-256 hex of @body's canonical JSON. */
void konnect__body_hash(json_t *body, char out[65]);

typedef struct KOp {
    int kind;     /* index in konnect__kinds */
    bool del;     /* DELETE, else PUT */
    char *key;    /* "kind/id" */
    json_t *body; /* PUT: desired body (ref); DELETE: Konnect's copy (ref, for the path) */
} KOp;

/*
 * konnect__diff() - operations that turn @current into @desired (reads its arguments only, so it
 * may run on a worker thread while the loop leaves them alone): a PUT for each desired entity
 * missing from @current, differing from it (subset compare), or whose body changed since tether
 * last wrote it (@written: "kind/id" -> body as written, may be NULL); a DELETE for each current
 * entity that is not desired. Ordered PUTs by ascending level, then DELETEs by descending level, by
 * key within a level. *ret is malloc'd (free with konnect__ops_free).
 */
int konnect__diff(json_t *desired, json_t *current, json_t *written, KOp **ret, size_t *ret_n);
void konnect__ops_free(KOp *ops, size_t n);

/* konnect__phase() - 0..2*LEVELS-1: the order in which an operation may run. */
int konnect__phase(const KOp *op);

/*
 * konnect__entity_path() - path of one entity below the control plane base ("/services/<id>",
 * "/upstreams/<u>/targets/<id>"). malloc'd, NULL when @body lacks a needed parent reference.
 */
char *konnect__entity_path(int kind, const char *id, json_t *body);

/*
 * Consumer group membership has no id and no PUT: it is read per group (GET
 * /consumer_groups/{g}/consumers lists the members), added with POST to that path with
 * {"consumer": id} and removed with DELETE /consumer_groups/{g}/consumers/{c}. Its entities are
 * keyed "consumer_group_consumers/<g>:<c>" with body {"consumer_group":{"id"},"consumer":{"id"}}.
 */
int konnect__members_kind(void);
char *konnect__members_list_path(const char *gid); /* malloc'd */
/* konnect__member_add() - the POST that puts @member in place: path and JSON body, malloc'd. */
int konnect__member_add(json_t *member, char **ret_path, char **ret_body);
/* konnect__parse_members() - one page of group @gid's members into @into, like parse_page. */
int konnect__parse_members(const char *body, size_t len, const char *gid, json_t *into,
                           char **ret_offset);

/*
 * konnect__parse_page() - one page of a list answer ({"data":[...],"offset":"..."}) of @kind:
 * entities with an id go into @into under "kind/id". *ret_offset (malloc'd) is the next page's
 * token, NULL on the last page. Return: 0, -EBADMSG for an answer that is not a page, -ENOMEM.
 */
int konnect__parse_page(const char *body, size_t len, int kind, json_t *into, char **ret_offset);
