/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: kubeconfig text (YAML or JSON). Invariants: no crash, no leak; an error says why. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    K8sCreds c;
    memset(&c, 0, sizeof(c));
    char *err = NULL;
    int r = k8s__kubeconfig_parse((const char *)data, size, "/nonexistent/kubeconfig", &c, &err);
    if (r < 0 && !err && r != -ENOMEM)
        abort();
    if (r == 0 && (!c.server || !*c.server))
        abort();
    free(err);
    k8s__creds_deinit(&c);
    return 0;
}
