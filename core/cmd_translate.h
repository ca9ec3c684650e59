/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* `tether translate`: argv[0] is "translate". Returns the process exit code. */
int translate_main(int argc, char **argv);
