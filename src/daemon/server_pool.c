/*
 * The server's worker pool: a FIFO of jobs served by threads started on demand, at most
 * `max_threads` (scrmd.conf; 0 = no cap). A job goes straight to the most recently idle thread
 * (a client's card request: to a new thread, see "New threads for card streams"); one that finds
 * none starts a thread while under the cap, otherwise it waits in the FIFO for the next free
 * thread. A thread idle for
 * SRV_POOL_IDLE_MS leaves, except the last one, so the pool shrinks back after a burst and a job
 * always has a thread to run it even when no new thread can be created (failure to create one
 * is logged and only means less parallelism). That last one is a reserve: a job that finds only
 * it, idle that long, gets a new thread instead (placed by the kernel like any new thread; see
 * srv_pool_submit), and the reserve runs jobs only when no new thread can be started.
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
 * A worker that has finished a job may linger a little for its clients' next requests (server
 * sessions: `chain_end`, called when a job and what it deferred are done, may defer another);
 * while a job waits with no thread free for it, `starve_fd` is readable and lingering workers
 * give up at once, so a linger never delays another client beyond the thread it holds.
 *
 * New threads for card streams. A client's request that opens a card or carries its APDUs
 * (CONNECT, RECONNECT, TRANSMIT, CONTROL), read by the loop thread (the first of a stream, or one
 * after a pause: the worker lingering on a client takes the rest), runs on a thread started for
 * it while the cap allows (srv_pool_submit_new), not on an idle one; such a thread leaves at the
 * end of its chain of jobs when another is idle already, so they do not pile up. Why: Linux
 * moves a woken thread next to the thread that woke it only while one of the two has woken few
 * different threads lately (kernel/sched/fair.c, wake_wide()); a worker that has served a few
 * requests has alternated between many clients and readers, so its wake-ups no longer move
 * anything, and a client's thread and the reader's I/O thread (a virtual card's process, a
 * driver's thread) stay wherever they happen to be for the whole stream, on two CPUs often
 * crossed over the worker's. A new thread has woken nobody: it starts on the least loaded CPU
 * and its first wake-ups bring the client and the reader's thread next to it (at CONNECT, when
 * the card is powered, and at the stream's first APDU), so each stream's chain settles on one
 * CPU, as it does under pcscd, which starts a thread per client. It costs a thread start per
 * such request (tens of microseconds); the other requests (status, transactions, lists, waits)
 * keep going to the most recently idle thread. docs/ifd-figures.md has both sides of the trade.
 *
 * Threads are detached from bookkeeping by themselves: a leaving thread records its id on the
 * `dead` list, which the next submit (or the final destroy) joins outside the lock.
 */
#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/server_internal.h"

/* One thread. An idle one waits on its own semaphore, not on the pool lock: srv_pool_submit hands
 * it the job directly (and counts it running), so a wake-up costs one futex wake and one wait, and
 * the woken thread runs the job without taking the pool lock first. */
struct srv_worker {
    struct srv_pool *pool;
    sem_t wake;
    _Atomic(struct srv_job *) job; /* handed by srv_pool_submit (release; the semaphore may
                                      * not be an acquire for every checker: TSan) */
    LIST_ENTRY(srv_worker) link;   /* the idle list */
    bool listed;                   /* on the idle list */
    bool reserve;    /* the last thread, idle SRV_POOL_IDLE_MS and more (cleared by a job) */
    bool for_stream; /* started for a card stream (srv_pool_submit_new) */
};

/* Signal or clear starve_fd to match the queue; p->lock held. */
static void update_starved(struct srv_pool *p) SCRM_REQUIRES(p->lock)
{
    scrm_mutex_assert_held(&p->lock);
    /* More jobs queued than threads not running one (idle, or just started). */
    bool starved = p->queued > p->threads - p->running;
    uint64_t v = 1;
    if (starved == p->starved || p->starve_fd < 0)
        return;
    p->starved = starved;
    if (starved)
        SCRM_IGNORE(write(p->starve_fd, &v, sizeof v), "an eventfd write cannot fail here");
    else
        SCRM_IGNORE(read(p->starve_fd, &v, sizeof v), "non-blocking; empties the counter");
}

static void idle_push(struct srv_pool *p, struct srv_worker *w) SCRM_REQUIRES(p->lock)
{
    scrm_mutex_assert_held(&p->lock);
    LIST_INSERT_HEAD(&p->idle, w, link);
    w->listed = true;
}

static void idle_unlink(struct srv_pool *p, struct srv_worker *w) SCRM_REQUIRES(p->lock)
{
    scrm_mutex_assert_held(&p->lock);
    LIST_REMOVE(w, link);
    w->listed = false;
}

/* Give idle w the job (counted running; the caller posts w->wake after unlocking). */
static void hand(struct srv_pool *p, struct srv_worker *w, struct srv_job *job)
    SCRM_REQUIRES(p->lock)
{
    scrm_mutex_assert_held(&p->lock);
    idle_unlink(p, w);
    atomic_store_explicit(&w->job, job, memory_order_release);
    p->running++;
}

/* The oldest queued job, taken off the FIFO (which is not empty). */
static struct srv_job *fifo_pop(struct srv_pool *p) SCRM_REQUIRES(p->lock)
{
    scrm_mutex_assert_held(&p->lock);
    struct srv_job *job = p->head;
    p->head = job->next;
    if (!p->head)
        p->tail = NULL;
    p->queued--;
    return job;
}

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

/* Wait idle for a handed job, up to SRV_POOL_IDLE_MS; p->lock held on entry and on return. The
 * job (counted running by the submitter), or NULL: woken by stop, or idle long enough. */
static struct srv_job *wait_idle(struct srv_pool *p, struct srv_worker *w, bool *expired)
    SCRM_REQUIRES(p->lock)
{
    scrm_mutex_assert_held(&p->lock);
    struct timespec dl;
    struct srv_job *job;
    int rc;

    idle_push(p, w);
    scrm_mutex_unlock(&p->lock);
    dl = scrm_deadline_ms(SRV_POOL_IDLE_MS); /* CLOCK_MONOTONIC, as sem_clockwait is told */
    do
        rc = sem_clockwait(&w->wake, CLOCK_MONOTONIC, &dl);
    while (rc != 0 && errno == EINTR);
    *expired = rc != 0;
    job = rc == 0 ? atomic_exchange_explicit(&w->job, NULL, memory_order_acquire) : NULL;
    if (job) { /* the common case: handed a job, no pool lock needed to take it */
        scrm_mutex_lock(&p->lock);
        return job;
    }
    scrm_mutex_lock(&p->lock);
    if (w->listed) { /* nobody handed anything: timed out */
        idle_unlink(p, w);
        return NULL;
    }
    if (rc != 0) /* handed something just as the wait ended: take the post that goes with it */
        while (sem_wait(&w->wake) != 0 && errno == EINTR) {
        }
    *expired = false;
    return atomic_exchange_explicit(&w->job, NULL, memory_order_acquire); /* NULL: destroy */
}

/* The pool whose worker the calling thread is, and the job it runs next (srv_pool_defer). */
static _Thread_local struct srv_pool *tl_pool;
static _Thread_local struct srv_job *tl_next;

static void *worker_main(void *arg)
{
    struct srv_worker *w = arg;
    struct srv_pool *p = w->pool;
    struct srv_job *job = NULL;

    (void)pthread_setname_np(pthread_self(), "scrm-worker"); /* for top -H, gdb and the tests */
    scrm_mutex_lock(&p->lock);
    for (;;) {
        bool expired = false;
        if (p->head) {
            job = fifo_pop(p);
            p->running++;
            if (p->starved)
                update_starved(p);
        } else if (p->stop) {
            break;
        } else {
            job = wait_idle(p, w, &expired);
            if (!job) {
                if (expired && !p->head && p->threads > 1)
                    break; /* idle long enough, and not the last one */
                if (expired && !w->reserve) {
                    w->reserve = true;
                    log_debug(ipc, "a worker idle for %u ms, the last one: kept in reserve",
                              SRV_POOL_IDLE_MS);
                }
                continue;
            }
        }
        w->reserve = false;
        scrm_mutex_unlock(&p->lock);
        tl_pool = p;
        while (job) {
            for (; job; job = tl_next) { /* then what the job deferred to this thread, if any */
                tl_next = NULL;
                job->fn(job);
            }
            if (p->chain_end) {
                p->chain_end();
                job = tl_next;
            }
        }
        tl_pool = NULL;
        scrm_rt_leave(); /* raised while its reader had a queue (rtprio.h) */
        scrm_mutex_lock(&p->lock);
        p->running--;
        scrm_cond_broadcast(&p->drained);
        if (w->for_stream && !p->head && !p->stop && !LIST_EMPTY(&p->idle))
            break; /* another thread is idle already (New threads for card streams) */
    }
    thread_leaving(p);
    scrm_mutex_unlock(&p->lock);
    sem_destroy(&w->wake);
    free(w);
    return NULL;
}

/* May another worker start (max_threads, 0: no cap)? p->lock held. */
static bool under_cap(const struct srv_pool *p) SCRM_REQUIRES(p->lock)
{
    return !p->max || p->threads < p->max;
}

/* Start one worker; p->lock held. False at the cap or if it could not be created. */
static bool start_thread(struct srv_pool *p, bool for_stream) SCRM_REQUIRES(p->lock)
{
    scrm_mutex_assert_held(&p->lock);
    if (!under_cap(p))
        return false;
    pthread_t t;
    struct srv_worker *w = calloc(1, sizeof *w);
    int rc = ENOMEM;
    if (w && sem_init(&w->wake, 0, 0) == 0) {
        w->pool = p;
        w->for_stream = for_stream;
        rc = pthread_create(&t, NULL, worker_main, w);
        if (rc != 0)
            sem_destroy(&w->wake);
    }
    if (rc != 0) {
        free(w);
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
    p->starve_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->starve_fd < 0)
        return -1;
    scrm_mutex_init(&p->lock);
    if (scrm_cond_init(&p->drained) != 0) {
        close(p->starve_fd);
        return -1;
    }
    scrm_mutex_lock(&p->lock);
    rc = start_thread(p, false) ? 0 : -1; /* the one that always stays */
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

static void submit(struct srv_pool *p, struct srv_job *job, bool new_thread)
{
    struct srv_worker *w;
    bool dead;

    job->next = NULL;
    scrm_mutex_lock(&p->lock);
    w = LIST_FIRST(&p->idle);
    if (w && (new_thread || w->reserve) && under_cap(p)) {
        /* A stream's start (New threads for card streams), or only the reserve is idle (the
         * others have left): a new thread takes the job, placed by the kernel on the least
         * loaded CPU as any new thread is, where w would wake on the CPU it last ran on,
         * whatever now runs there (a burst of clients would then start out crowded on one
         * CPU). w stays idle, for when no thread can be started (below); with another thread
         * the reserve is no longer the last one. */
        w->reserve = false;
        w = NULL;
    }
    if (w) { /* the most recently idle thread (warm): hand it the job */
        hand(p, w, job);
    } else {
        if (p->tail)
            p->tail->next = job;
        else
            p->head = job;
        p->tail = job;
        p->queued++;
        if (!start_thread(p, new_thread)) {
            /* No new thread: an idle one (the reserve, or the one passed over) takes the
             * oldest queued job; if none is idle, the job waits for a running one. */
            w = LIST_FIRST(&p->idle);
            if (w)
                hand(p, w, fifo_pop(p));
        }
        /* No thread free for a queued job even now (cap, or none could start): lingering
         * workers let go. A spurious signal only ends a linger early. */
        update_starved(p);
    }
    dead = p->n_dead > 0;
    scrm_mutex_unlock(&p->lock);
    if (w) /* w cannot leave before it has taken the job: counted running, not listed */
        sem_post(&w->wake);
    if (dead)
        reap(p);
}

void srv_pool_submit(struct srv_pool *p, struct srv_job *job)
{
    submit(p, job, false);
}

void srv_pool_submit_new(struct srv_pool *p, struct srv_job *job)
{
    submit(p, job, true);
}

void srv_pool_defer(struct srv_pool *p, struct srv_job *job)
{
    if (tl_pool != p || tl_next) {
        srv_pool_submit(p, job);
        return;
    }
    job->next = NULL;
    tl_next = job;
}

bool srv_pool_deferred(void)
{
    return tl_next != NULL;
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

int srv_pool_starve_fd(struct srv_pool *p)
{
    return p->starve_fd;
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
    while (!LIST_EMPTY(&p->idle)) { /* wake every idle thread with no job: they leave */
        struct srv_worker *w = LIST_FIRST(&p->idle);
        idle_unlink(p, w);
        sem_post(&w->wake);
    }
    while (p->threads > 0)
        scrm_cond_wait(&p->drained, &p->lock);
    scrm_mutex_unlock(&p->lock);
    reap(p);
    scrm_cond_destroy(&p->drained);
    scrm_mutex_destroy(&p->lock);
    close(p->starve_fd);
    p->starve_fd = -1;
}
