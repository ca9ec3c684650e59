/* SPDX-License-Identifier: Apache-2.0 */
/* `tether run`: placeholder until the controller lands. */
#include "run.h"

#include <stdio.h>

int run_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("tether run: not built yet\n", stderr);
    return 2;
}
