/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* `tether certs generate|inspect`: argv[0] is "certs". Returns the process exit code. */
int certs_main(int argc, char **argv);
