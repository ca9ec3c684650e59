/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: request heads sent to the health/metrics/diagnostics endpoints, fed to the parser
 * in two pieces (byte 0 picks the split), as they arrive from a socket. Invariants: no crash; a
 * parsed request has method GET or HEAD and a path starting with '/' without a query string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0];
    data++;
    size--;
    if (size > HTTPD_MAX_REQUEST)
        size = HTTPD_MAX_REQUEST;
    char *buf = malloc(HTTPD_MAX_REQUEST + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    char *method = NULL, *path = NULL;
    int r = 1;
    if (split < size)
        r = httpd_parse_head(buf, split, HTTPD_MAX_REQUEST, &method, &path);
    if (r == 1)
        r = httpd_parse_head(buf, size, HTTPD_MAX_REQUEST, &method, &path);
    if (r == 0) {
        if ((strcmp(method, "GET") && strcmp(method, "HEAD")) || path[0] != '/' ||
            strchr(path, '?'))
            abort();
    } else if (r != 1 && r != 400 && r != 405 && r != 431) {
        abort();
    }
    free(buf);
    return 0;
}
