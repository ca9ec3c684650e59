/* SPDX-License-Identifier: Apache-2.0 */
#include "cmd_translate.h"

#include <stdio.h>

int translate_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("tether translate: not built yet\n", stderr);
    return 2;
}
