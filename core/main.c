/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tether: a Kubernetes ingress controller for Kong gateways. This file only dispatches to the
 * sub-commands; each one parses its own flags (KIC's names, CONTROLLER_* environment variables).
 * Exit codes: 0 success, 1 failure of the job, 2 usage error.
 */
#include <stdio.h>
#include <string.h>

#include "certs_cli.h"
#include "cmd_translate.h"
#include "run.h"
#include "util.h"
#include "xlate.h"

static const char usage[] =
    "Usage: tether <command> [flags]\n"
    "\n"
    "Commands:\n"
    "  translate   print the Kong configuration for Kubernetes manifests (-f PATH...)\n"
    "  run         the controller (--manifests DIR or a Kubernetes cluster)\n"
    "  certs       generate or inspect client certificates (generate|inspect)\n"
    "  version     print the version\n"
    "\n"
    "Run 'tether <command> --help' for the flags of a command.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    xlate_split_min_from_env();
    util_tune_malloc();
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("tether %s\n", TETHER_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "translate"))
        return translate_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "run"))
        return run_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "certs"))
        return certs_main(argc - 1, argv + 1);
    fprintf(stderr, "tether: unknown command \"%s\"\n\n%s", cmd, usage);
    return 2;
}
