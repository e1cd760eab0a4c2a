/* Tests for src/common/log: SCRM_LOG parsing, level checks before argument evaluation, sinks,
 * and whole lines on stderr from concurrent threads. */
#include "testutil.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#define LOG_THREADS 4
#define LOG_LINES   3000
#define LOG_PAYLOAD 700 /* long lines: a line written in pieces would interleave visibly */

static void *logger_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    char payload[LOG_PAYLOAD + 1];
    memset(payload, 'a' + id, LOG_PAYLOAD);
    payload[LOG_PAYLOAD] = '\0';
    for (int i = 0; i < LOG_LINES; i++)
        log_info(core, "T%d L%d %s E%d", id, i, payload, id);
    return NULL;
}

/* One captured stderr line: "scrm[core] info: T<id> L<i> <payload of id's letter> E<id>". Checks
 * its shape byte by byte and that it is the thread's next line; false with a message if not. */
static bool check_line(const char *line, size_t len, int next[LOG_THREADS], char *why, size_t cap)
{
    static const char head[] = "scrm[core] info: T";
    int id, i, n = 0;
    if (len < sizeof(head) - 1 || memcmp(line, head, sizeof(head) - 1) != 0 ||
        sscanf(line + sizeof(head) - 1, "%d L%d %n", &id, &i, &n) != 2 || id < 0 ||
        id >= LOG_THREADS) {
        snprintf(why, cap, "malformed line start: %.60s", line);
        return false;
    }
    const char *p = line + sizeof(head) - 1 + n;
    size_t rest = len - (size_t)(p - line);
    char tail[16];
    int tn = snprintf(tail, sizeof(tail), " E%d", id);
    if (rest != LOG_PAYLOAD + (size_t)tn || memcmp(p + LOG_PAYLOAD, tail, (size_t)tn) != 0) {
        snprintf(why, cap, "thread %d line %d: wrong length or end (%zu bytes)", id, i, rest);
        return false;
    }
    for (size_t k = 0; k < LOG_PAYLOAD; k++)
        if (p[k] != 'a' + id) {
            snprintf(why, cap, "thread %d line %d: foreign byte '%c' at %zu", id, i, p[k], k);
            return false;
        }
    if (i != next[id]) {
        snprintf(why, cap, "thread %d: line %d where %d was due (lost or reordered)", id, i,
                 next[id]);
        return false;
    }
    next[id]++;
    return true;
}

/* Threads log long lines to stderr (the daemon's real output, no test sink) while levels change:
 * read back from the file, every line is whole, none from another thread is inside it, and each
 * thread's lines are all there, in order, once. A logger that writes a line in more than one
 * piece without holding its lock across them, or that drops lines, fails here without TSan. */
static void test_concurrent_logging(void **state)
{
    (void)state;
    FILE *tmp = tmpfile(); /* an unnamed file in $TMPDIR */
    assert_non_null(tmp);
    int fd = fileno(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    scrm_log_set_sink(NULL, NULL);
    scrm_log_set_output(SCRM_LOG_TO_STDERR, NULL);
    scrm_log_set_level(SCRM_LOG_CAT_core, SCRM_LOG_info);

    pthread_t t[LOG_THREADS];
    for (int i = 0; i < LOG_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, logger_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 1000; i++)
        scrm_log_set_level(SCRM_LOG_CAT_smc, i % 2 ? SCRM_LOG_debug : SCRM_LOG_warn);
    for (int i = 0; i < LOG_THREADS; i++)
        pthread_join(t[i], NULL);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);

    off_t size = lseek(fd, 0, SEEK_END);
    assert_true(size > 0);
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)size, 0), size);
    fclose(tmp);
    text[size] = '\0';

    int next[LOG_THREADS] = {0};
    size_t lines = 0;
    char why[160];
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl)
            fail_msg("the last line has no newline: %.60s", line);
        if (!check_line(line, (size_t)(nl - line), next, why, sizeof(why)))
            fail_msg("line %zu: %s", lines + 1, why);
        lines++;
    }
    for (int i = 0; i < LOG_THREADS; i++)
        assert_int_equal(next[i], LOG_LINES);
    assert_int_equal(lines, LOG_THREADS * LOG_LINES);
    free(text);
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
