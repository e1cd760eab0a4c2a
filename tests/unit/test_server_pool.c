/*
 * The server's worker pool (server_pool.c): which thread runs a job. A job the daemon submits
 * itself goes to the most recently idle thread; a client's request (srv_pool_submit_new) runs on
 * a thread started for it while the cap allows, and the threads that served such requests do
 * not pile up: one that ends its chain while another is idle leaves.
 */
#include <errno.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "daemon/server_internal.h"

/* Jobs this thread ran before the current one. */
static _Thread_local unsigned tl_jobs_before;

struct probe {
    struct srv_job job;
    sem_t done;
    unsigned jobs_before; /* of the thread that ran it */
};

static void probe_fn(struct srv_job *job)
{
    struct probe *pr = (struct probe *)((char *)job - offsetof(struct probe, job));
    pr->jobs_before = tl_jobs_before++;
    sem_post(&pr->done);
}

static void wait_done(struct probe *pr)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    int rc;
    do
        rc = sem_timedwait(&pr->done, &dl);
    while (rc != 0 && errno == EINTR);
    assert_int_equal(rc, 0);
}

/* Run one job through submit (new_thread: srv_pool_submit_new) and wait until the pool is idle
 * again; the job-count of the thread that ran it before it. */
static unsigned run(struct srv_pool *p, bool new_thread)
{
    struct probe pr = {.job.fn = probe_fn};
    sem_init(&pr.done, 0, 0);
    if (new_thread)
        srv_pool_submit_new(p, &pr.job);
    else
        srv_pool_submit(p, &pr.job);
    wait_done(&pr);
    srv_pool_drain(p);
    sem_destroy(&pr.done);
    return pr.jobs_before;
}

static unsigned threads_now(struct srv_pool *p)
{
    unsigned threads, peak;
    srv_pool_stats(p, &threads, &peak);
    return threads;
}

/* A job submitted before the first thread is idle starts a second one; after a few jobs the
 * one that stays idle is known to have started. */
static void warm_up(struct srv_pool *p)
{
    for (int i = 0; i < 3; i++)
        run(p, false);
}

static void test_own_jobs_reuse_the_idle_thread(void **state)
{
    (void)state;
    struct srv_pool p;
    assert_int_equal(srv_pool_init(&p, 0), 0);
    warm_up(&p);
    /* An idle thread that has not run a job yet may be left (the second thread of the first
     * job, or the reserve after a pause, next to which a thread that ends its job leaves): it
     * runs one job and is warm from then on. No job starts a thread of its own. */
    unsigned cold = 0;
    for (int i = 0; i < 6; i++)
        cold += run(&p, false) == 0;
    assert_true(cold <= 1);
    srv_pool_destroy(&p);
}

static void test_client_request_runs_on_a_new_thread(void **state)
{
    (void)state;
    struct srv_pool p;
    assert_int_equal(srv_pool_init(&p, 0), 0);
    warm_up(&p);
    unsigned before = threads_now(&p);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(run(&p, true), 0);
        /* The thread left when its job ended, since another one was idle: it counts itself out
         * under the pool lock in the same hold that ends its job, so the drain in run() that saw
         * the job end sees it gone. One more may be there for good: a thread of the warm-up
         * still starting can take a job before the thread started for it, which then stays
         * idle. 20 jobs with no leaving would leave 20 more. */
        assert_true(threads_now(&p) <= before + 1);
    }
    srv_pool_destroy(&p);
}

static void test_at_the_cap_a_client_request_reuses_a_thread(void **state)
{
    (void)state;
    struct srv_pool p;
    assert_int_equal(srv_pool_init(&p, 1), 0);
    warm_up(&p);
    assert_int_not_equal(run(&p, true), 0); /* no new thread allowed: the idle one runs it */
    srv_pool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_jobs_reuse_the_idle_thread),
        cmocka_unit_test(test_client_request_runs_on_a_new_thread),
        cmocka_unit_test(test_at_the_cap_a_client_request_reuses_a_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
