/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for `tether run` flag parsing (core/config.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static int parse(RunConfig *c, char *err, size_t errlen, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    va_start(ap, errlen);
    argv[argc++] = (char *)"run";
    for (char *a; (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    FILE *out = fopen("/dev/null", "w");
    int r = cfg_parse(c, argc, argv, out, err, errlen);
    fclose(out);
    return r;
}

static void test_defaults(void **state)
{
    (void)state;
    RunConfig c;
    char err[256];
    assert_int_equal(parse(&c, err, sizeof(err), NULL), 0);
    assert_int_equal(c.sync_debounce_ms, 100);
    assert_int_equal(c.sync_max_wait_ms, 1000);
    assert_string_equal(c.health_addr, ":10254");
    assert_string_equal(c.metrics_addr, ":10255");
    assert_string_equal(c.diag_addr, "127.0.0.1:10256");
    assert_string_equal(c.election_id, "5b374a9e.konghq.com");
    assert_string_equal(c.konnect_address, "https://us.kic.api.konghq.com");
    assert_string_equal(c.ingress_class, "kong");
    assert_string_equal(c.port_names_joined, "admin-tls,kong-admin-tls");
    assert_true(c.update_status);
    assert_false(c.once);
    assert_false(c.kong_admin_tls_skip_verify);
    assert_null(c.kong_admin_url);
    assert_null(c.router_flavor);
    assert_true(c.proxy_timeout_s == 30.0);
    assert_int_equal(c.readiness_interval_ms, 10000);
    assert_int_equal(c.readiness_timeout_ms, 5000);
    assert_int_equal(c.konnect_sync_concurrency, 4);
    assert_int_equal(c.konnect_refresh_node_ms, 60000);
    assert_int_equal(c.konnect_upload_period_ms, 30000);
    cfg_free(&c);
}

static void test_forms(void **state)
{
    (void)state;
    RunConfig c;
    char err[256];
    assert_int_equal(parse(&c, err, sizeof(err), "--once", "--sync-debounce=250ms",
                           "--kong-admin-url", "http://a:8001,http://b:8001",
                           "--kong-admin-url=https://c:8444", "--update-status=false",
                           "--kong-admin-tls-skip-verify", "true", "--proxy-timeout-seconds", "2.5",
                           "--router-flavor=expressions", "--watch-namespace", "a, b",
                           "--watch-namespace", "c", NULL),
                     0);
    assert_true(c.once);
    assert_int_equal(c.sync_debounce_ms, 250);
    assert_int_equal(cfg_list_len(c.kong_admin_url), 3);
    assert_string_equal(c.kong_admin_url[2], "https://c:8444");
    assert_false(c.update_status);
    assert_true(c.kong_admin_tls_skip_verify);
    assert_true(c.proxy_timeout_s == 2.5);
    assert_string_equal(c.router_flavor, "expressions");
    assert_int_equal(cfg_list_len(c.watch_namespace), 3);
    assert_string_equal(c.watch_namespace[1], "b");
    cfg_free(&c);
}

static void test_env(void **state)
{
    (void)state;
    RunConfig c;
    char err[256];
    setenv("CONTROLLER_KONG_ADMIN_URL", "http://env:8001", 1);
    setenv("CONTROLLER_SYNC_DEBOUNCE", "2s", 1);
    setenv("CONTROLLER_ONCE", "true", 1);
    assert_int_equal(parse(&c, err, sizeof(err), NULL), 0);
    assert_int_equal(cfg_list_len(c.kong_admin_url), 1);
    assert_string_equal(c.kong_admin_url[0], "http://env:8001");
    assert_int_equal(c.sync_debounce_ms, 2000);
    /* max wait follows a debounce above it */
    assert_int_equal(c.sync_max_wait_ms, 2000);
    assert_true(c.once);
    cfg_free(&c);
    /* flags win, and a list flag replaces the environment's list */
    assert_int_equal(parse(&c, err, sizeof(err), "--kong-admin-url", "http://flag:8001",
                           "--sync-debounce", "5ms", "--once=false", NULL),
                     0);
    assert_int_equal(cfg_list_len(c.kong_admin_url), 1);
    assert_string_equal(c.kong_admin_url[0], "http://flag:8001");
    assert_int_equal(c.sync_debounce_ms, 5);
    assert_false(c.once);
    cfg_free(&c);
    setenv("CONTROLLER_SYNC_DEBOUNCE", "soon", 1);
    assert_int_equal(parse(&c, err, sizeof(err), NULL), -EINVAL);
    assert_non_null(strstr(err, "CONTROLLER_SYNC_DEBOUNCE"));
    cfg_free(&c);
    unsetenv("CONTROLLER_KONG_ADMIN_URL");
    unsetenv("CONTROLLER_SYNC_DEBOUNCE");
    unsetenv("CONTROLLER_ONCE");
}

static void expect_error(const char *needle, ...)
{
    char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, needle);
    argv[argc++] = (char *)"run";
    for (char *a; (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    RunConfig c;
    char err[256] = "";
    FILE *out = fopen("/dev/null", "w");
    int r = cfg_parse(&c, argc, argv, out, err, sizeof(err));
    fclose(out);
    cfg_free(&c);
    if (r != -EINVAL || !strstr(err, needle))
        fail_msg("expected an error with \"%s\", got %d \"%s\"", needle, r, err);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("unknown flag --nope", "--nope", NULL);
    expect_error("unknown flag --nope", "--nope=1", NULL);
    expect_error("needs a value", "--state-dir", NULL);
    expect_error("--sync-debounce", "--sync-debounce", "100", NULL);
    expect_error("--once: invalid boolean", "--once=maybe", NULL);
    expect_error("--log-format", "--log-format", "xml", NULL);
    expect_error("--router-flavor", "--router-flavor", "fast", NULL);
    expect_error("can't set both", "--kong-admin-url", "http://a", "--kong-admin-svc", "ns/k",
                 NULL);
    expect_error("NAMESPACE/NAME", "--kong-admin-svc", "kong", NULL);
    expect_error("not an http", "--kong-admin-url", "ftp://a", NULL);
    expect_error("key:value", "--kong-admin-header", "nocolon", NULL);
    expect_error("--konnect-control-plane-id", "--konnect-sync-enabled", NULL);
    expect_error("--metrics-bind-address", "--metrics-bind-address", "localhost", NULL);
    expect_error("--manifests: cannot read", "--manifests", "/nonexistent/x.yaml", NULL);
    expect_error("unexpected argument", "positional", NULL);
    expect_error("--gateway-discovery-readiness-check-timeout",
                 "--gateway-discovery-readiness-check-timeout", "20s", NULL);
}

static void test_durations(void **state)
{
    (void)state;
    uint64_t ms;
    assert_int_equal(cfg_parse_duration_ms("100ms", &ms), 0);
    assert_int_equal(ms, 100);
    assert_int_equal(cfg_parse_duration_ms("1m30s", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(cfg_parse_duration_ms("2.5s", &ms), 0);
    assert_int_equal(ms, 2500);
    assert_int_equal(cfg_parse_duration_ms("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(cfg_parse_duration_ms("0", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(cfg_parse_duration_ms("1500us", &ms), 0);
    assert_int_equal(ms, 2);
    assert_int_equal(cfg_parse_duration_ms("10", &ms), -EINVAL);
    assert_int_equal(cfg_parse_duration_ms("", &ms), -EINVAL);
    assert_int_equal(cfg_parse_duration_ms("-1s", &ms), -EINVAL);
    assert_int_equal(cfg_parse_duration_ms("1x", &ms), -EINVAL);
}

static void test_aliases_and_compat(void **state)
{
    (void)state;
    RunConfig c;
    char err[256];
    assert_int_equal(parse(&c, err, sizeof(err), "--konnect-runtime-group-id", "cp1",
                           "--proxy-sync-seconds", "3", "--force-leader-election", "enabled",
                           "--bind-ignored-no", NULL),
                     -EINVAL);
    cfg_free(&c);
    assert_int_equal(parse(&c, err, sizeof(err), "--konnect-runtime-group-id", "cp1",
                           "--konnect-control-plane-id", "cp2", "--proxy-sync-seconds", "3",
                           "--force-leader-election", "enabled", NULL),
                     0);
    assert_string_equal(c.konnect_control_plane_id, "cp2");
    assert_string_equal(c.force_leader_election, "enabled");
    cfg_free(&c);
}

static void test_help(void **state)
{
    (void)state;
    RunConfig c;
    char err[256];
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    char *argv[] = {(char *)"run", (char *)"--help"};
    assert_int_equal(cfg_parse(&c, 2, argv, out, err, sizeof(err)), CFG_HELP);
    fclose(out);
    cfg_free(&c);
    assert_non_null(strstr(buf, "--kong-admin-svc-port-names"));
    assert_non_null(strstr(buf, "--konnect-sync-enabled"));
    assert_non_null(strstr(buf, "[default :10254]"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),  cmocka_unit_test(test_forms),
        cmocka_unit_test(test_env),       cmocka_unit_test(test_errors),
        cmocka_unit_test(test_durations), cmocka_unit_test(test_aliases_and_compat),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
