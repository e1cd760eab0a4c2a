/*
 * The resource manager's threads: a pool of workers that run queued jobs (monitor steps, reader
 * arrivals, power-down sequences) and one timer thread (power-down timeouts, tracking retries).
 *
 * Jobs are intrusive (struct rm_job embedded in the object they work on), so queueing never
 * allocates and cannot fail; a job already queued is not queued twice. Workers sleep on a
 * condition variable while the queue is empty.
 *
 * The timer thread keeps a list sorted by deadline and sleeps on a CLOCK_MONOTONIC condition
 * variable until the first deadline or until the list changes. An expired timer is unlinked under
 * the lock and its callback runs after the lock is released with a copy of (id, token), so a
 * timer may be cancelled or freed as soon as rm_timer_cancel() returns. No sleep loop anywhere.
 */
#include <stdlib.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "rm/internal.h"

static void *worker_main(void *arg)
{
    struct rm_pool *p = arg;
    scrm_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stop)
            scrm_cond_wait(&p->cond, &p->lock);
        struct rm_job *job = p->head;
        if (!job)
            break; /* stopping and drained */
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        job->next = NULL;
        job->queued = false;
        scrm_mutex_unlock(&p->lock);
        job->fn(job);
        scrm_mutex_lock(&p->lock);
    }
    scrm_mutex_unlock(&p->lock);
    return NULL;
}

int rm_pool_start(struct rm_pool *p, unsigned n)
{
    scrm_mutex_init(&p->lock);
    if (scrm_cond_init(&p->cond) != 0)
        return -1; /* the zeroed (calloc'd) cond of the rm is what rm_pool_stop destroys */
    p->head = p->tail = NULL;
    p->stop = false;
    p->n_threads = 0;
    p->threads = calloc(n ? n : 1, sizeof(*p->threads));
    if (!p->threads)
        return -1;
    for (unsigned i = 0; i < (n ? n : 1); i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            log_error(rm, "cannot start worker thread %u", i);
            return -1;
        }
        p->n_threads++;
    }
    return 0;
}

bool rm_pool_submit(struct rm_pool *p, struct rm_job *job)
{
    scrm_mutex_lock(&p->lock);
    bool ok = !p->stop && !job->queued;
    if (ok) {
        job->queued = true;
        job->next = NULL;
        if (p->tail)
            p->tail->next = job;
        else
            p->head = job;
        p->tail = job;
        scrm_cond_signal(&p->cond);
    }
    scrm_mutex_unlock(&p->lock);
    return ok;
}

void rm_pool_stop(struct rm_pool *p)
{
    scrm_mutex_lock(&p->lock);
    p->stop = true;
    scrm_cond_broadcast(&p->cond);
    scrm_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    p->threads = NULL;
    p->n_threads = 0;
    scrm_cond_destroy(&p->cond);
    scrm_mutex_destroy(&p->lock);
}

/* ---- timers ---- */

/* Unlink tm if it is in the list; t->lock held. */
static bool unlink_timer_locked(struct rm_timers *t, struct rm_timer *tm) SCRM_REQUIRES(t->lock)
{
    scrm_mutex_assert_held(&t->lock);
    if (!tm->armed)
        return false;
    for (struct rm_timer **pp = &t->head; *pp; pp = &(*pp)->next) {
        if (*pp == tm) {
            *pp = tm->next;
            break;
        }
    }
    tm->armed = false;
    tm->next = NULL;
    return true;
}

static void *timer_main(void *arg)
{
    struct rm_timers *t = arg;
    scrm_mutex_lock(&t->lock);
    while (!t->stop) {
        struct rm_timer *tm = t->head;
        if (!tm) {
            scrm_cond_wait(&t->cond, &t->lock);
            continue;
        }
        uint64_t now = scrm_now_ns();
        if (tm->deadline_ns > now) {
            struct timespec ts = {.tv_sec = (time_t)(tm->deadline_ns / 1000000000u),
                                  .tv_nsec = (long)(tm->deadline_ns % 1000000000u)};
            scrm_cond_timedwait(&t->cond, &t->lock, &ts);
            continue;
        }
        unlink_timer_locked(t, tm);
        void (*fn)(struct rm *, uint64_t, uint64_t) = tm->fn;
        uint64_t id = tm->id, token = tm->token;
        scrm_mutex_unlock(&t->lock);
        fn(t->rm, id, token);
        scrm_mutex_lock(&t->lock);
    }
    scrm_mutex_unlock(&t->lock);
    return NULL;
}

int rm_timers_start(struct rm_timers *t, struct rm *rm)
{
    scrm_mutex_init(&t->lock);
    t->head = NULL;
    t->stop = false;
    t->rm = rm;
    t->started = false;
    if (scrm_cond_init(&t->cond) != 0) {
        log_error(rm, "cannot create the timer condition variable");
        return -1;
    }
    t->started = pthread_create(&t->thread, NULL, timer_main, t) == 0;
    if (!t->started)
        log_error(rm, "cannot start the timer thread");
    return t->started ? 0 : -1;
}

bool rm_timer_arm(struct rm_timers *t, struct rm_timer *tm, uint32_t ms, uint64_t id,
                  uint64_t token)
{
    scrm_mutex_lock(&t->lock);
    bool ok = !t->stop;
    if (ok) {
        unlink_timer_locked(t, tm);
        tm->deadline_ns = scrm_now_ns() + (uint64_t)ms * 1000000u;
        tm->id = id;
        tm->token = token;
        struct rm_timer **pp = &t->head;
        while (*pp && (*pp)->deadline_ns <= tm->deadline_ns)
            pp = &(*pp)->next;
        tm->next = *pp;
        *pp = tm;
        tm->armed = true;
        scrm_cond_signal(&t->cond);
    }
    scrm_mutex_unlock(&t->lock);
    return ok;
}

bool rm_timer_cancel(struct rm_timers *t, struct rm_timer *tm)
{
    scrm_mutex_lock(&t->lock);
    bool was = unlink_timer_locked(t, tm);
    scrm_mutex_unlock(&t->lock);
    return was;
}

void rm_timers_stop(struct rm_timers *t)
{
    scrm_mutex_lock(&t->lock);
    t->stop = true;
    while (t->head)
        unlink_timer_locked(t, t->head);
    scrm_cond_signal(&t->cond);
    scrm_mutex_unlock(&t->lock);
    if (t->started)
        pthread_join(t->thread, NULL);
    t->started = false;
}

void rm_timers_fini(struct rm_timers *t)
{
    scrm_cond_destroy(&t->cond);
    scrm_mutex_destroy(&t->lock);
}
