/*
 * The server's worker pool: a FIFO of jobs served by threads that are started on demand. A job
 * that finds no idle thread free for it starts one. The number of threads is bounded by the
 * sessions, since each has at most one request in flight; there is no other cap, so jobs
 * blocked for a long time on one reader (a slow card, a transaction held elsewhere) never keep
 * another reader's clients waiting for a thread. Threads stay until the pool is destroyed, which
 * joins them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/server_internal.h"

static void *worker_main(void *arg)
{
    struct srv_pool *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct srv_job *job;
        while (!p->head && !p->stop) {
            p->idle++;
            pthread_cond_wait(&p->work, &p->lock);
            p->idle--;
        }
        if (!p->head) /* stop, and nothing left */
            break;
        job = p->head;
        p->queued--;
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        p->running++;
        pthread_mutex_unlock(&p->lock);
        job->fn(job);
        pthread_mutex_lock(&p->lock);
        p->running--;
        pthread_cond_broadcast(&p->drained);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int srv_pool_init(struct srv_pool *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->drained, NULL);
    return 0;
}

/* Start one worker; p->lock held. */
static void start_thread(struct srv_pool *p)
{
    if (p->threads == p->tids_cap) {
        unsigned cap = p->tids_cap ? 2 * p->tids_cap : 8;
        pthread_t *t = realloc(p->tids, cap * sizeof(*t));
        if (!t) {
            scrm_assert(p->threads > 0); /* the first worker must exist */
            log_warn(ipc, "cannot start another worker thread: out of memory");
            return;
        }
        p->tids = t;
        p->tids_cap = cap;
    }
    int rc = pthread_create(&p->tids[p->threads], NULL, worker_main, p);
    if (rc == 0)
        p->threads++;
    else if (p->threads == 0)
        scrm_assert(!"cannot start the first server worker");
    else
        log_warn(ipc, "cannot start another worker thread: %s", strerror(rc));
}

void srv_pool_submit(struct srv_pool *p, struct srv_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    /* Idle threads already signalled for earlier jobs are not free: count queued jobs. */
    if (++p->queued > p->idle)
        start_thread(p);
    else
        pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

void srv_pool_drain(struct srv_pool *p)
{
    pthread_mutex_lock(&p->lock);
    while (p->head || p->running)
        pthread_cond_wait(&p->drained, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void srv_pool_destroy(struct srv_pool *p)
{
    pthread_mutex_lock(&p->lock);
    while (p->head || p->running)
        pthread_cond_wait(&p->drained, &p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->threads; i++)
        pthread_join(p->tids[i], NULL);
    p->threads = 0;
    free(p->tids);
    p->tids = NULL;
    p->tids_cap = 0;
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->drained);
    pthread_mutex_destroy(&p->lock);
}
