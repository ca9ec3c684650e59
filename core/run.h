/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* `tether run`: the controller. argv[0] is "run". Returns the process exit code. */
int run_main(int argc, char **argv);
