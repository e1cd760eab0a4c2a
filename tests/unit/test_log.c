/* Tests for src/common/log: SCRM_LOG parsing, level checks before argument evaluation, sinks. */
#include "testutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int evaluated;

static int side_effect(void)
{
    evaluated++;
    return 42;
}

static int reset(void **state)
{
    (void)state;
    unsetenv("SCRM_LOG");
    scrm_log_init_from_env();
    evaluated = 0;
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    assert_true(scrm_log_enabled(SCRM_LOG_CAT_smc, SCRM_LOG_warn));
    assert_false(scrm_log_enabled(SCRM_LOG_CAT_smc, SCRM_LOG_info));
    assert_false(scrm_log_enabled(SCRM_LOG_CAT_apdu, SCRM_LOG_error));
}

static void test_spec_per_category(void **state)
{
    (void)state;
    assert_int_equal(scrm_log_configure("smc:debug,ipc:info"), 0);
    assert_true(scrm_log_enabled(SCRM_LOG_CAT_smc, SCRM_LOG_debug));
    assert_false(scrm_log_enabled(SCRM_LOG_CAT_smc, SCRM_LOG_trace));
    assert_true(scrm_log_enabled(SCRM_LOG_CAT_ipc, SCRM_LOG_info));
    assert_false(scrm_log_enabled(SCRM_LOG_CAT_ipc, SCRM_LOG_debug));
    assert_false(scrm_log_enabled(SCRM_LOG_CAT_rm, SCRM_LOG_info));
}

static void test_spec_from_env(void **state)
{
    (void)state;
    setenv("SCRM_LOG", "rm:trace", 1);
    scrm_log_init_from_env();
    assert_true(scrm_log_enabled(SCRM_LOG_CAT_rm, SCRM_LOG_trace));
    assert_false(scrm_log_enabled(SCRM_LOG_CAT_smc, SCRM_LOG_info));
}

static void test_bare_level_skips_apdu(void **state)
{
    (void)state;
    assert_int_equal(scrm_log_configure("debug"), 0);
    assert_true(scrm_log_enabled(SCRM_LOG_CAT_ipc, SCRM_LOG_debug));
    assert_false(scrm_log_enabled(SCRM_LOG_CAT_apdu, SCRM_LOG_error));
    assert_int_equal(scrm_log_configure("all:trace"), 0);
    assert_true(scrm_log_enabled(SCRM_LOG_CAT_apdu, SCRM_LOG_trace));
}

static void test_bad_entries_rejected_rest_applied(void **state)
{
    (void)state;
    assert_int_equal(scrm_log_configure("bogus:debug,smc:loud,ipc:debug,:,rm"), 4);
    assert_true(scrm_log_enabled(SCRM_LOG_CAT_ipc, SCRM_LOG_debug));
    assert_false(scrm_log_enabled(SCRM_LOG_CAT_smc, SCRM_LOG_info));
}

static void test_arguments_not_evaluated_when_disabled(void **state)
{
    (void)state;
    struct test_log_capture cap;
    test_log_capture_start(&cap);
    log_debug(smc, "value %d", side_effect());
    assert_int_equal(evaluated, 0);
    assert_int_equal(cap.lines, 0);
    scrm_log_set_level(SCRM_LOG_CAT_smc, SCRM_LOG_debug);
    log_debug(smc, "value %d", side_effect());
    assert_int_equal(evaluated, 1);
    assert_int_equal(cap.lines, 1);
    assert_non_null(strstr(cap.text, "smc debug: value 42"));
    test_log_capture_stop();
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(scrm_log_cat_name(SCRM_LOG_CAT_ioctl), "ioctl");
    assert_string_equal(scrm_log_level_name(SCRM_LOG_warn), "warn");
    assert_string_equal(scrm_log_cat_name((enum scrm_log_cat)999), "?");
}

static void *logger_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++)
        log_info(core, "line %d", i);
    return NULL;
}

/* Levels change while other threads log: every enabled line arrives whole (TSan checks races). */
static void test_concurrent_logging(void **state)
{
    (void)state;
    struct test_log_capture *cap = calloc(1, sizeof(*cap));
    assert_non_null(cap);
    test_log_capture_start(cap);
    scrm_log_set_level(SCRM_LOG_CAT_core, SCRM_LOG_info);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, logger_thread, NULL), 0);
    for (int i = 0; i < 100; i++)
        scrm_log_set_level(SCRM_LOG_CAT_smc, i % 2 ? SCRM_LOG_debug : SCRM_LOG_warn);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    test_log_capture_stop();
    assert_int_equal(cap->lines, 6000);
    free(cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, reset),
        cmocka_unit_test_setup(test_spec_per_category, reset),
        cmocka_unit_test_setup(test_spec_from_env, reset),
        cmocka_unit_test_setup(test_bare_level_skips_apdu, reset),
        cmocka_unit_test_setup(test_bad_entries_rejected_rest_applied, reset),
        cmocka_unit_test_setup(test_arguments_not_evaluated_when_disabled, reset),
        cmocka_unit_test_setup(test_names, reset),
        cmocka_unit_test_setup(test_concurrent_logging, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
