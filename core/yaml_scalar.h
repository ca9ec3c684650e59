/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Typing of plain (unquoted, untagged) YAML scalars as Kubernetes reads YAML: kubectl and KIC's
 * configFrom Secrets go through sigs.k8s.io/yaml, which is go-yaml v2, which follows YAML 1.1.
 * So "yes", "on" and "y" are true, "010" is 8, "0b101" is 5, "1_000" is 1000, "08" is the float
 * 8; timestamps stay strings. Owner: manifest loader; the YAML writer asks it what to quote.
 */
#include <stdbool.h>
#include <stddef.h>

typedef enum YamlType {
    YAML_T_STR,
    YAML_T_NULL,
    YAML_T_BOOL,
    YAML_T_INT,    /* fits int64: v->i */
    YAML_T_UINT,   /* past int64, fits uint64: v->u */
    YAML_T_FLOAT,  /* finite: v->f */
    YAML_T_NOJSON, /* .nan, .inf and the like: v->f, a value JSON cannot carry */
} YamlType;

typedef struct YamlValue {
    bool b;
    long long i;
    unsigned long long u;
    double f;
} YamlValue;

/* yaml_plain_type() - what go-yaml v2's resolver makes of the plain scalar @s (@len bytes). */
YamlType yaml_plain_type(const char *s, size_t len, YamlValue *v);

/*
 * yaml_plain_key() - the JSON key sigs.k8s.io/yaml makes of a plain scalar mapping key: 0 when it
 * is the scalar's text (a string), 1 when it is in @out: "true"/"false", an integer in decimal, a
 * float as Go's %g of a float32 (".inf" for infinity); -1 when the key has no JSON form (null, or
 * an integer past int64), which Kubernetes refuses.
 */
#define YAML_KEY_MAX 48
int yaml_plain_key(const char *s, size_t len, char out[YAML_KEY_MAX]);
