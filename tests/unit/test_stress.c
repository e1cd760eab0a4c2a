/*
 * Card-tracking stress test (run under ThreadSanitizer and AddressSanitizer): two threads insert
 * and remove cards in a simulated reader while a third keeps an IS_PRESENT / IS_ABSENT request
 * pending and cancels at random. Every request must complete exactly once, with SUCCESS or
 * CANCELLED, and nothing may leak. Waits are on a condition variable with a bounded deadline;
 * nothing sleeps.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common/timeutil.h"
#include "drivers/registry.h"
#include "smc/sim.h"
#include "smc/smc.h"

#define OPS_PER_THREAD 50000 /* insert + remove pairs: 100 000 operations per thread */

struct record {
    atomic_int calls;
    atomic_uint status;
};

struct shared {
    struct smc_handle *h;
    pthread_mutex_t m;
    pthread_cond_t c;
    int completions;
    atomic_int inserters_done;
    atomic_int twice; /* completions of an already completed request */
};

struct cb_ctx {
    struct shared *s;
    struct record *rec;
};

static void on_done(void *user, smc_status st, size_t info)
{
    struct cb_ctx *cb = user;
    (void)info;
    if (atomic_fetch_add(&cb->rec->calls, 1) != 0)
        atomic_fetch_add(&cb->s->twice, 1);
    atomic_store(&cb->rec->status, st);
    pthread_mutex_lock(&cb->s->m);
    cb->s->completions++;
    pthread_cond_signal(&cb->s->c);
    pthread_mutex_unlock(&cb->s->m);
}

static void *inserter(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < OPS_PER_THREAD; i++) {
        smc_status a = smc_ioctl(s->h, SIM_IOCTL_INSERT, NULL, 0, NULL, 0, NULL);
        smc_status b = smc_ioctl(s->h, SIM_IOCTL_REMOVE, NULL, 0, NULL, 0, NULL);
        if ((a != STATUS_SUCCESS && a != STATUS_DEVICE_BUSY) ||
            (b != STATUS_SUCCESS && b != STATUS_NO_MEDIA))
            return (void *)1;
    }
    atomic_fetch_add(&s->inserters_done, 1);
    pthread_mutex_lock(&s->m);
    pthread_cond_broadcast(&s->c);
    pthread_mutex_unlock(&s->m);
    return NULL;
}

static void test_tracking_stress(void **state)
{
    (void)state;
    struct smc_ctx *ctx = smc_ctx_new();
    assert_non_null(ctx);
    assert_int_equal(scrm_drivers_register(ctx), STATUS_SUCCESS);
    assert_int_equal(smc_add_device(ctx, "sim:0"), STATUS_SUCCESS);
    struct shared s = {.completions = 0};
    pthread_mutex_init(&s.m, NULL);
    assert_int_equal(scrm_cond_init_monotonic(&s.c), 0);
    assert_int_equal(smc_open(ctx, "sim:0", &s.h), STATUS_SUCCESS);
    struct smc_handle *tracker;
    assert_int_equal(smc_open(ctx, "sim:0", &tracker), STATUS_SUCCESS);

    size_t cap = 1024, n = 0, pended = 0;
    /* One allocation per request: a pending callback holds its pointer while the array grows. */
    struct cb_ctx **cbs = calloc(cap, sizeof(*cbs));
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, inserter, &s), 0);

    unsigned seed = 12345;
    while (atomic_load(&s.inserters_done) < 2) {
        if (n == cap) {
            cap *= 2;
            cbs = realloc(cbs, cap * sizeof(*cbs));
        }
        struct cb_ctx *cb = calloc(1, sizeof(*cb));
        cbs[n++] = cb;
        cb->s = &s;
        cb->rec = calloc(1, sizeof(*cb->rec));
        uint32_t code = rand_r(&seed) % 2 ? IOCTL_SMARTCARD_IS_PRESENT : IOCTL_SMARTCARD_IS_ABSENT;
        uint64_t id;
        smc_status st = smc_ioctl_async(tracker, code, NULL, 0, NULL, 0, on_done, cb, &id);
        if (st != STATUS_PENDING) {
            assert_int_equal(st, STATUS_SUCCESS); /* satisfied at once; the callback never runs */
            atomic_store(&cb->rec->calls, 1);
            atomic_store(&cb->rec->status, 0xFFFFFFFFu); /* marks "immediate" for the counts */
            continue;
        }
        pended++;
        if (rand_r(&seed) % 3 == 0) {
            SCRM_IGNORE(smc_cancel(tracker, id), "may lose the race with the event path: fine");
            continue;
        }
        /* wait for the event path (bounded), unless the inserters finish first */
        struct timespec deadline = scrm_deadline_ms(10000);
        pthread_mutex_lock(&s.m);
        while (atomic_load(&cb->rec->calls) == 0 && atomic_load(&s.inserters_done) < 2)
            assert_int_equal(pthread_cond_timedwait(&s.c, &s.m, &deadline), 0);
        pthread_mutex_unlock(&s.m);
    }
    for (int i = 0; i < 2; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        assert_null(rv);
    }
    SCRM_IGNORE(smc_cancel_all(tracker), "how many were still pending does not matter");
    smc_close(tracker);
    smc_close(s.h);
    smc_ctx_free(ctx);

    size_t success = 0, cancelled = 0, immediate = 0;
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&cbs[i]->rec->calls) != 1)
            fail_msg("request %zu completed %d times", i, atomic_load(&cbs[i]->rec->calls));
        smc_status st = atomic_load(&cbs[i]->rec->status);
        success += st == STATUS_SUCCESS;
        cancelled += st == STATUS_CANCELLED;
        immediate += st == 0xFFFFFFFFu;
        free(cbs[i]->rec);
        free(cbs[i]);
    }
    free(cbs);
    assert_int_equal(atomic_load(&s.twice), 0);
    print_message("# %zu tracking requests: %zu satisfied at once, %zu pended (%zu completed by "
                  "events, %zu cancelled)\n",
                  n, immediate, pended, success, cancelled);
    assert_int_equal(success + cancelled, pended);
    assert_true(pended > 0);
    assert_true(cancelled > 0);
    pthread_cond_destroy(&s.c);
    pthread_mutex_destroy(&s.m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tracking_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
