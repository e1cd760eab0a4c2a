/*
 * The server's worker pool: a FIFO of jobs served by threads started on demand, at most
 * `max_threads` (scrmd.conf; 0 = no cap). A job that finds no idle thread free for it starts one
 * while under the cap; otherwise it waits in the FIFO for the next free thread. A thread idle for
 * SRV_POOL_IDLE_MS leaves, except the last one, so the pool shrinks back after a burst and a job
 * always has a thread to run it even when no new thread can be created (failure to create one
 * is logged and only means less parallelism).
 *
 * The cap cannot deadlock the server because no job waits for another client: waits for a
 * transaction or a status change are events (IPC_S_TX_BUSY + WAIT_TX and watches for scrm's
 * protocol, a request parked on a watch for pcsc-lite's), never a blocked thread, and a request
 * of either protocol that finds its reader busy with another request is parked in the rm
 * (RM_READER_BUSY, rm_reader_idle_wait) and runs again when the reader is free, as is the
 * teardown of a client leaving such a reader (srv_pool_hold keeps drain and destroy waiting for
 * it), so a busy or hung reader holds one worker (the one running its request), not one per
 * waiting or leaving client. A job waits only for the driver of the reader it runs a request on.
 *
 * Threads are detached from bookkeeping by themselves: a leaving thread records its id on the
 * `dead` list, which the next submit (or the final destroy) joins outside the lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/server_internal.h"

/* Record the calling thread as gone; p->lock held. */
static void thread_leaving(struct srv_pool *p) SCRM_REQUIRES(p->lock)
{
    scrm_mutex_assert_held(&p->lock);
    if (p->n_dead == p->dead_cap) {
        unsigned cap = p->dead_cap ? 2 * p->dead_cap : 8;
        pthread_t *d = realloc(p->dead, cap * sizeof(*d));
        if (d) {
            p->dead = d;
            p->dead_cap = cap;
        }
    }
    if (p->n_dead < p->dead_cap)
        p->dead[p->n_dead++] = pthread_self();
    else
        pthread_detach(pthread_self()); /* no room to be joined: nobody will */
    p->threads--;
    scrm_cond_broadcast(&p->drained);
}

static void *worker_main(void *arg)
{
    struct srv_pool *p = arg;

    scrm_mutex_lock(&p->lock);
    for (;;) {
        struct srv_job *job;
        while (!p->head && !p->stop) {
            struct timespec dl = scrm_deadline_ms(SRV_POOL_IDLE_MS);
            int rc;
            p->idle++;
            rc = scrm_cond_timedwait(&p->work, &p->lock, &dl);
            p->idle--;
            if (rc == ETIMEDOUT && !p->head && p->threads > 1) {
                thread_leaving(p); /* idle long enough, and not the last one */
                scrm_mutex_unlock(&p->lock);
                return NULL;
            }
        }
        if (!p->head) /* stop, and nothing left */
            break;
        job = p->head;
        p->queued--;
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        p->running++;
        scrm_mutex_unlock(&p->lock);
        job->fn(job);
        scrm_mutex_lock(&p->lock);
        p->running--;
        scrm_cond_broadcast(&p->drained);
    }
    thread_leaving(p);
    scrm_mutex_unlock(&p->lock);
    return NULL;
}

/* Start one worker; p->lock held. False if it could not be created. */
static bool start_thread(struct srv_pool *p) SCRM_REQUIRES(p->lock)
{
    scrm_mutex_assert_held(&p->lock);
    pthread_t t;
    int rc = pthread_create(&t, NULL, worker_main, p);
    if (rc != 0) {
        if (!p->create_failed) /* once per episode, not once per job */
            log_warn(ipc,
                     "cannot start another worker thread (%u running): %s; jobs wait for "
                     "the running ones",
                     p->threads, strerror(rc));
        p->create_failed = true;
        return false;
    }
    p->create_failed = false;
    p->threads++;
    if (p->threads > p->peak)
        p->peak = p->threads;
    return true;
}

int srv_pool_init(struct srv_pool *p, unsigned max_threads)
{
    int rc;
    memset(p, 0, sizeof *p);
    p->max = max_threads;
    scrm_mutex_init(&p->lock);
    if (scrm_cond_init(&p->work) != 0)
        return -1;
    if (scrm_cond_init(&p->drained) != 0) {
        scrm_cond_destroy(&p->work);
        return -1;
    }
    scrm_mutex_lock(&p->lock);
    rc = start_thread(p) ? 0 : -1; /* the one that always stays */
    scrm_mutex_unlock(&p->lock);
    return rc;
}

/* Join the threads that left (outside the lock). */
static void reap(struct srv_pool *p)
{
    pthread_t *dead;
    unsigned n;

    scrm_mutex_lock(&p->lock);
    dead = p->dead;
    n = p->n_dead;
    p->dead = NULL;
    p->n_dead = p->dead_cap = 0;
    scrm_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < n; i++)
        pthread_join(dead[i], NULL);
    free(dead);
}

void srv_pool_submit(struct srv_pool *p, struct srv_job *job)
{
    bool dead;

    job->next = NULL;
    scrm_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    /* Idle threads already signalled for earlier jobs are not free: count queued jobs. */
    if (++p->queued > p->idle && (!p->max || p->threads < p->max))
        (void)start_thread(p); /* on failure the job waits for a running thread */
    scrm_cond_signal(&p->work);
    dead = p->n_dead > 0;
    scrm_mutex_unlock(&p->lock);
    if (dead)
        reap(p);
}

void srv_pool_hold(struct srv_pool *p)
{
    scrm_mutex_lock(&p->lock);
    p->held++;
    scrm_mutex_unlock(&p->lock);
}

void srv_pool_release(struct srv_pool *p)
{
    scrm_mutex_lock(&p->lock);
    p->held--;
    scrm_cond_broadcast(&p->drained);
    scrm_mutex_unlock(&p->lock);
}

void srv_pool_drain(struct srv_pool *p)
{
    scrm_mutex_lock(&p->lock);
    while (p->head || p->running || p->held)
        scrm_cond_wait(&p->drained, &p->lock);
    scrm_mutex_unlock(&p->lock);
}

void srv_pool_stats(struct srv_pool *p, unsigned *threads, unsigned *peak)
{
    scrm_mutex_lock(&p->lock);
    *threads = p->threads;
    *peak = p->peak;
    scrm_mutex_unlock(&p->lock);
}

void srv_pool_destroy(struct srv_pool *p)
{
    scrm_mutex_lock(&p->lock);
    while (p->head || p->running || p->held)
        scrm_cond_wait(&p->drained, &p->lock);
    p->stop = true;
    scrm_cond_broadcast(&p->work);
    while (p->threads > 0)
        scrm_cond_wait(&p->drained, &p->lock);
    scrm_mutex_unlock(&p->lock);
    reap(p);
    scrm_cond_destroy(&p->work);
    scrm_cond_destroy(&p->drained);
    scrm_mutex_destroy(&p->lock);
}
