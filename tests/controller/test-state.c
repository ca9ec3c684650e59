/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for --state-dir persistence (core/state.c): round trip, latest wins, corruption. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "state.h"
#include "util.h"

static void on_done(void *ud)
{
    *(int *)ud = 1;
}

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/tether-state-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void test_gzip_roundtrip(void **state)
{
    (void)state;
    const char *s = "{\"_format_version\":\"3.0\",\"services\":[]}";
    unsigned char *gz;
    size_t gzlen, n;
    char *back;
    assert_int_equal(state_gzip(s, strlen(s), &gz, &gzlen), 0);
    assert_true(gzlen > 10 && gz[0] == 0x1f && gz[1] == 0x8b);
    assert_int_equal(state_gunzip(gz, gzlen, 1 << 20, &back, &n), 0);
    assert_int_equal(n, strlen(s));
    assert_memory_equal(back, s, n);
    free(back);
    /* truncated input and a too small cap are errors */
    assert_true(state_gunzip(gz, gzlen / 2, 1 << 20, &back, &n) < 0);
    assert_int_equal(state_gunzip(gz, gzlen, 4, &back, &n), -EFBIG);
    free(gz);
}

static void test_save_load(void **state)
{
    (void)state;
    uv_loop_t loop;
    State *st;
    char *err = NULL;
    char *dir = tmpdir();
    char *sub = util_strdup_printf("%s/sub", dir);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(state_new(&loop, sub, &st, &err), 0);
    json_t *cfg = NULL;
    assert_int_equal(state_load(st, &cfg, &err), -ENOENT);

    Revision *r1 = revision_new_consume(json_pack("{s:i}", "n", 1), NULL, 0);
    Revision *r2 = revision_new_consume(json_pack("{s:i}", "n", 2), NULL, 0);
    state_save(st, r1);
    state_save(st, r2); /* latest wins */
    revision_unref(r1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(state_saved_seq(st), revision_seq(r2));
    assert_int_equal(state_load(st, &cfg, &err), 0);
    json_t *want = revision_load_config(r2);
    assert_true(json_equal(cfg, want));
    json_decref(want);
    json_decref(cfg);
    revision_unref(r2);
    int closed = 0;
    state_close(st, on_done, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* a corrupt file is an error naming it, not a crash */
    char *path = util_strdup_printf("%s/%s", sub, STATE_FILE);
    assert_int_equal(util_write_file_atomic(path, "garbage", 7, 0600), 0);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(state_new(&loop, sub, &st, &err), 0);
    assert_true(state_load(st, &cfg, &err) < 0);
    assert_non_null(err);
    assert_non_null(strstr(err, STATE_FILE));
    free(err);
    err = NULL;
    /* gzip of something that is not an object */
    unsigned char *gz;
    size_t gzlen;
    assert_int_equal(state_gzip("[1,2]", 5, &gz, &gzlen), 0);
    assert_int_equal(util_write_file_atomic(path, gz, gzlen, 0600), 0);
    free(gz);
    assert_true(state_load(st, &cfg, &err) < 0);
    free(err);
    closed = 0;
    state_close(st, on_done, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
    free(path);
    free(sub);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gzip_roundtrip),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
