/*
 * Readers added and removed at run time through the resource manager (what `scrm reader add /
 * remove`, SIGHUP and USB hot-plug do): rm_remove_reader takes the reader away and notifies PnP
 * watchers before it returns, the same device can be added again at once, and a late start-up for
 * a device that already left (an arrival job that runs after the removal) leaves no record behind
 * that would refuse the device when it comes back.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/scard_codes.h"
#include "rm/internal.h"
#include "rm_harness.h"

#define R7 "SimVendor SimReader 7"

static void test_remove_and_add_again(void **state)
{
    (void)state;
    struct rmt *t = rmt_new(NULL);
    struct rmt_counter pnp;
    rmt_counter_init(&pnp);
    struct rm_watch *w = rm_watch(t->rm, NULL, rmt_counter_cb, &pnp);
    assert_non_null(w);
    for (uint32_t round = 0; round < 20; round++) {
        assert_int_equal(rm_add_reader(t->rm, "sim:7"), SCARD_S_SUCCESS);
        assert_true(rmt_counter_wait(&pnp, 2 * round + 1));
        struct rm_reader_info i = rmt_info(t, R7);
        assert_string_equal(i.device, "sim:7");
        /* synchronous: the reader is gone and PnP watchers were told when it returns */
        assert_int_equal(rm_remove_reader(t->rm, "sim:7:card=t1"), SCARD_S_SUCCESS);
        assert_int_equal(rm_reader_events(t->rm), 2 * round + 2);
        assert_true(rmt_counter_wait(&pnp, 2 * round + 2));
        assert_int_equal(rm_get_reader(t->rm, R7, &i), SCARD_E_UNKNOWN_READER);
    }
    assert_int_equal(rm_remove_reader(t->rm, "sim:7"), SCARD_E_UNKNOWN_READER);
    assert_int_equal(rm_remove_reader(t->rm, "nocolon"), SCARD_E_INVALID_VALUE);
    assert_int_equal(rm_remove_reader(t->rm, "nosuchdriver:1"), SCARD_E_UNKNOWN_READER);
    rm_unwatch(t->rm, w);
    rmt_counter_fini(&pnp);
    rmt_free(t);
}

static void test_late_start_of_departed_device(void **state)
{
    (void)state;
    struct rmt *t = rmt_new(NULL);
    /* what a queued arrival job does after the device was removed again: the start-up finds no
     * device; it must not leave a refused record for that name */
    assert_int_equal(rm_reader_start(t->rm, "sim:8"), SCARD_E_READER_UNAVAILABLE);
    /* the device comes back: it starts (with the stale record it was refused at once) */
    assert_int_equal(rm_add_reader(t->rm, "sim:8"), SCARD_S_SUCCESS);
    struct rm_reader_info i = rmt_info(t, "SimVendor SimReader 8");
    assert_string_equal(i.device, "sim:8");
    rmt_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remove_and_add_again),
        cmocka_unit_test(test_late_start_of_departed_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
