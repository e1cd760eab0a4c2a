/*
 * Real-time priority of scrmd's critical path (src/daemon/rtprio.c): off until set up, on and
 * off per thread, never inherited by the threads a raised thread starts, and the guard that
 * puts a thread running too long without blocking back to normal priority until it has blocked. The tests that need
 * the permission (root, CAP_SYS_NICE or RLIMIT_RTPRIO) are skipped without it.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "daemon/rtprio.h"
#include "testutil.h"

static bool rt_permitted;

/* Before scrm_rt_setup, entering does nothing (a server run in-process stays normal). */
static void test_off_until_set_up(void **state)
{
    (void)state;
    scrm_rt_enter();
    assert_false(scrm_rt_thread_is_rt());
    assert_false(scrm_rt_raised());
    scrm_rt_leave();
    assert_false(scrm_rt_thread_is_rt());
}

static void test_refused_when_not_wanted(void **state)
{
    (void)state;
    assert_false(scrm_rt_setup(false));
    scrm_rt_enter();
    assert_false(scrm_rt_thread_is_rt());
    scrm_rt_leave();
}

static void test_enter_and_leave(void **state)
{
    (void)state;
    rt_permitted = scrm_rt_setup(true);
    if (!rt_permitted)
        skip(); /* not root here: nothing else to see */
    scrm_rt_enter();
    assert_true(scrm_rt_thread_is_rt());
    assert_true(scrm_rt_raised()); /* this file's own record agrees with the kernel */
    scrm_rt_enter();               /* nested enter: still one level */
    assert_true(scrm_rt_thread_is_rt());
    scrm_rt_leave();
    assert_false(scrm_rt_thread_is_rt());
    assert_false(scrm_rt_raised());
    scrm_rt_leave(); /* leaving twice is harmless */
    assert_false(scrm_rt_thread_is_rt());
}

static void *report_priority(void *arg)
{
    *(bool *)arg = scrm_rt_thread_is_rt();
    return NULL;
}

/* A thread started by a raised thread (a new worker, a driver's thread) starts at normal
 * priority. */
static void test_not_inherited(void **state)
{
    (void)state;
    if (!rt_permitted)
        skip();
    pthread_t t;
    bool child_rt = true;
    scrm_rt_enter();
    assert_true(scrm_rt_thread_is_rt());
    assert_int_equal(pthread_create(&t, NULL, report_priority, &child_rt), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    scrm_rt_leave();
    assert_false(child_rt);
}

struct busy {
    bool rt_at_first, rt_when_busy, raised_when_busy, rt_after_waiting;
};

/* Raise, run 2 ms without blocking (less than the guard), ask again: busy, so back to normal;
 * sleep, ask again: raised. The rule counts the thread's CPU time, which on a virtual machine
 * leaves out the time the host ran something else: a window the host took more than a quarter of
 * is not busy. So the busy run is tried again, after a sleep (which also restarts the guard's
 * count), until one is seen busy, up to BUSY_TRIES times: a rule that never puts a busy thread
 * back still fails every try. */
#define BUSY_TRIES 20

static void *busy_thread(void *arg)
{
    struct busy *b = arg;
    for (int i = 0; i < BUSY_TRIES; i++) {
        if (i > 0)
            usleep(2 * SCRM_RT_WINDOW_US);
        scrm_rt_enter();
        if (i == 0)
            b->rt_at_first = scrm_rt_thread_is_rt();
        uint64_t until = scrm_now_ns() + 2 * (uint64_t)SCRM_RT_WINDOW_US * 1000;
        while (scrm_now_ns() < until) {
        }
        scrm_rt_enter();
        b->rt_when_busy = scrm_rt_thread_is_rt();
        b->raised_when_busy = scrm_rt_raised();
        if (!b->rt_when_busy)
            break;
    }
    usleep(2 * SCRM_RT_WINDOW_US);
    scrm_rt_enter();
    b->rt_after_waiting = scrm_rt_thread_is_rt();
    scrm_rt_leave();
    return NULL;
}

static void test_busy_thread_goes_back_until_it_waits(void **state)
{
    (void)state;
    if (!rt_permitted)
        skip();
    struct busy b = {0};
    pthread_t t;
    unsigned before = scrm_rt_demotions();
    assert_int_equal(pthread_create(&t, NULL, busy_thread, &b), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(b.rt_at_first);
    assert_false(b.rt_when_busy);
    assert_false(b.raised_when_busy); /* so a worker here would yield to its clients */
    assert_true(b.rt_after_waiting);
    assert_int_equal(scrm_rt_demotions(), before); /* the rule, not the guard */
}

struct spin {
    bool demoted;
    double ms;               /* how long it ran at real-time priority */
    bool rt_before_blocking; /* raised again before it blocked (must not be) */
    bool rt_after_blocking;  /* raised again after it blocked (must be) */
};

/* Raise, then never block nor ask again: the guard must put the thread back within a few times
 * its limit.
 * The loop takes an uncontended mutex so that a sanitizer that defers signals to its next
 * interceptor delivers the guard's at once. */
static void *spin_thread(void *arg)
{
    struct spin *s = arg;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    uint64_t start = scrm_now_ns(), limit = start + 5000000000ull; /* 5 s: a failure, not a hang */
    scrm_rt_enter();
    while (scrm_rt_thread_is_rt() && scrm_now_ns() < limit) {
        pthread_mutex_lock(&m);
        pthread_mutex_unlock(&m);
    }
    s->demoted = !scrm_rt_thread_is_rt();
    s->ms = (double)(scrm_now_ns() - start) / 1e6;
    scrm_rt_enter(); /* the loop thread's next turn: not yet */
    s->rt_before_blocking = scrm_rt_thread_is_rt();
    usleep(2 * SCRM_RT_WINDOW_US);
    scrm_rt_enter(); /* it has slept: again */
    s->rt_after_blocking = scrm_rt_thread_is_rt();
    scrm_rt_leave(); /* logs the demotion */
    return NULL;
}

static void test_guard_demotes_a_thread_that_never_blocks(void **state)
{
    (void)state;
    if (!rt_permitted)
        skip();
    struct test_log_capture cap;
    struct spin s = {0};
    pthread_t t;
    unsigned before = scrm_rt_demotions();
    test_log_capture_start(&cap);
    assert_int_equal(pthread_create(&t, NULL, spin_thread, &s), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    test_log_capture_stop();
    assert_true(s.demoted);
    assert_true(s.ms >= SCRM_RT_GUARD_MS * 0.8); /* not before its limit (tick granularity) */
    assert_false(s.rt_before_blocking);
    assert_true(s.rt_after_blocking);
    assert_int_equal(scrm_rt_demotions(), before + 1);
    assert_non_null(strstr(cap.text, "put back to normal priority"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_until_set_up),
        cmocka_unit_test(test_refused_when_not_wanted),
        cmocka_unit_test(test_enter_and_leave),
        cmocka_unit_test(test_not_inherited),
        cmocka_unit_test(test_busy_thread_goes_back_until_it_waits),
        cmocka_unit_test(test_guard_demotes_a_thread_that_never_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
