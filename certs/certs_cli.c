/* SPDX-License-Identifier: Apache-2.0 */
/* `tether certs`: placeholder until the certs module lands. */
#include "certs_cli.h"

#include <stdio.h>

int certs_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("tether certs: not built yet\n", stderr);
    return 2;
}
