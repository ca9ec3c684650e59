/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `tether translate`: load manifests, translate them as KIC would, print the configuration.
 * Broken documents and translation failures are warnings on stderr naming the file:line or the
 * object; --strict makes them fatal (exit 1). Usage errors exit 2.
 */
#include "cmd_translate.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jarena.h"
#include "log.h"
#include "manifest.h"
#include "store.h"
#include "util.h"
#include "xlate.h"

static const char usage[] =
    "Usage: tether translate -f PATH [-f PATH...] [flags]\n"
    "\n"
    "Print the Kong declarative configuration that the Kong Ingress Controller would push for\n"
    "the Kubernetes objects in PATH (files, folders, or - for standard input; multi-document\n"
    "YAML, JSON, kind: List).\n"
    "\n"
    "Flags:\n"
    "  -f, --filename PATH        manifests to read (repeatable)\n"
    "      --ingress-class NAME   ingress class to serve (default kong)\n"
    "      --router-flavor F      traditional_compatible (default) or expressions\n"
    "      --feature-gates LIST   Name=true|false,... (FillIDs, KongCustomEntity,\n"
    "                             KongServiceFacade, RewriteURIs)\n"
    "      --kong-version V       Kong version to translate for (default 3.9.1)\n"
    "      --enable-drain-support keep terminating endpoints with weight 0\n"
    "      --cluster-domain D     cluster domain for service-upstream targets\n"
    "  -o, --output json|yaml     output format (default yaml)\n"
    "      --strict               any problem is fatal (exit 1)\n"
    "      --log-level LEVEL      error, warn, info, debug (default warn)\n"
    "  -h, --help                 this text\n";

typedef struct Ctx {
    Store *store;
    int problems;
} Ctx;

static int on_obj(void *ud, json_t *obj, const char *file, int line)
{
    Ctx *c = ud;
    int r = store_put_new(c->store, json_incref(obj));
    if (r < 0) {
        log_event(LOG_WARN, "translate", "object ignored", "{s:s, s:i, s:s}", "file", file, "line",
                  line, "error", strerror(-r));
        c->problems++;
    }
    return 0;
}

static void on_err(void *ud, const char *file, int line, const char *msg)
{
    Ctx *c = ud;
    c->problems++;
    fprintf(stderr, "warning: %s:%d: %s\n", file, line, msg);
}

static void print_failures(json_t *failures)
{
    size_t i;
    json_t *f;
    json_array_foreach(failures, i, f)
    {
        Buf objs = BUF_INIT;
        size_t j;
        json_t *o;
        json_array_foreach(json_object_get(f, "objects"), j, o)
        {
            const char *ns = json_string_value(json_object_get(o, "namespace"));
            buf_printf(&objs, "%s%s %s%s%s", j ? ", " : "",
                       json_string_value(json_object_get(o, "kind")), ns && *ns ? ns : "",
                       ns && *ns ? "/" : "", json_string_value(json_object_get(o, "name")));
        }
        fprintf(stderr, "warning: %s: %s\n", objs.data ? objs.data : "(no object)",
                json_string_value(json_object_get(f, "message")));
        buf_deinit(&objs);
    }
}

int translate_main(int argc, char **argv)
{
    enum { O_CLASS = 256, O_FLAVOR, O_GATES, O_STRICT, O_LOG, O_KVER, O_DRAIN, O_DOMAIN };
    static const struct option opts[] = {
        {"filename", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"ingress-class", required_argument, NULL, O_CLASS},
        {"router-flavor", required_argument, NULL, O_FLAVOR},
        {"feature-gates", required_argument, NULL, O_GATES},
        {"strict", no_argument, NULL, O_STRICT},
        {"log-level", required_argument, NULL, O_LOG},
        {"kong-version", required_argument, NULL, O_KVER},
        {"enable-drain-support", no_argument, NULL, O_DRAIN},
        {"cluster-domain", required_argument, NULL, O_DOMAIN},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    XlateOptions o;
    const char *output = "yaml";
    const char **paths = calloc((size_t)argc + 1, sizeof(*paths));
    size_t npaths = 0;
    int strict = 0, c, rc = 1;
    bool oom = false;
    char err[256];
    Ctx ctx = {0};

    if (!paths)
        return 1;
    xlate_options_default(&o);
    log_set_level(LOG_WARN);
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            paths[npaths++] = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case O_CLASS:
            o.ingress_class = optarg;
            break;
        case O_FLAVOR:
            if (!strcmp(optarg, "expressions"))
                o.expressions = true;
            else if (!strcmp(optarg, "traditional_compatible") || !strcmp(optarg, "traditional"))
                o.expressions = false;
            else {
                fprintf(stderr, "tether translate: unknown router flavor \"%s\"\n", optarg);
                goto usage_error;
            }
            break;
        case O_GATES:
            if (xlate_feature_gates(&o, optarg, err, sizeof(err)) < 0) {
                fprintf(stderr, "tether translate: --feature-gates: %s\n", err);
                goto usage_error;
            }
            break;
        case O_STRICT:
            strict = 1;
            break;
        case O_LOG:
            if (log_parse_level(optarg) < 0) {
                fprintf(stderr, "tether translate: unknown log level \"%s\"\n", optarg);
                goto usage_error;
            }
            log_set_level(log_parse_level(optarg));
            break;
        case O_KVER:
            if (xlate_kong_version(&o, optarg, err, sizeof(err)) < 0) {
                fprintf(stderr, "tether translate: --kong-version: %s\n", err);
                goto usage_error;
            }
            break;
        case O_DRAIN:
            o.enable_drain_support = true;
            break;
        case O_DOMAIN:
            o.cluster_domain = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            free(paths);
            return 0;
        default:
            goto usage_error;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tether translate: unexpected argument \"%s\"\n", argv[optind]);
        goto usage_error;
    }
    if (!npaths) {
        fputs("tether translate: no manifests given (-f PATH)\n", stderr);
        goto usage_error;
    }
    if (strcmp(output, "json") && strcmp(output, "yaml")) {
        fprintf(stderr, "tether translate: unknown output format \"%s\" (json or yaml)\n", output);
        goto usage_error;
    }
    if (store_new(&ctx.store) < 0)
        goto out;
    /*
     * The store copies each object into its kind's lane (store_bulk()), and the documents are
     * parsed in the arena: freed once copied, their blocks are memory the translation reuses
     * instead of new pages.
     */
    store_bulk(ctx.store, true);
    jarena_enter();
    for (size_t i = 0; i < npaths && !oom; i++) {
        int r = manifest_load_path(paths[i], on_obj, on_err, &ctx);
        if (r < 0 && r != -ENOMEM)
            ctx.problems++;
        else if (r < 0)
            oom = true;
    }
    jarena_leave();
    if (oom)
        goto out;
    json_t *cfg = NULL, *failures = NULL;
    if (xlate_run(ctx.store, &o, &cfg, &failures) < 0) {
        fputs("tether translate: out of memory\n", stderr);
        goto out;
    }
    print_failures(failures);
    ctx.problems += (int)json_array_size(failures);
    char *text = !strcmp(output, "json") ? xlate_to_json(cfg) : xlate_to_yaml(cfg);
    json_decref(cfg);
    json_decref(failures);
    if (!text)
        goto out;
    fputs(text, stdout);
    if (!strcmp(output, "json"))
        fputc('\n', stdout);
    free(text);
    rc = strict && ctx.problems ? 1 : 0;
    if (rc)
        fprintf(stderr, "tether translate: %d problem(s) and --strict is set\n", ctx.problems);
out:
    store_free(ctx.store);
    free(paths);
    return rc;
usage_error:
    free(paths);
    fputs("Run 'tether translate --help' for usage.\n", stderr);
    return 2;
}
