/*
 * The IOCTL watchdog: an IOCTL the resource manager sent that has not returned after
 * cfg.watchdog_ms (150 s by default, the time the Windows smart card driver library documentation
 * gives a request before it is considered hung) is seen: a warning names the reader and the IOCTL,
 * and cancellation is attempted (smc_cancel_all on the reader's handle: a request parked by a
 * driver slot that pends completes STATUS_CANCELLED, and the driver's cancel_pending slot is
 * asked to stop; a slot that blocks inside the driver cannot be interrupted, only reported).
 *
 * Every watched IOCTL has the same timeout, so the watched calls form a FIFO in deadline order:
 * adding is an append, removing an unlink (both O(1), whatever the number of readers). One thread
 * waits on a condition variable until the oldest call's deadline; nothing polls. A new call wakes
 * it only when it sleeps towards no deadline or a later one (wake_ns), so under steady traffic it
 * wakes about once per timeout, not once per IOCTL (a wake-up per APDU cost the calling thread a
 * futex call and the machine two context switches). An entry lives in
 * the calling thread's frame; a call that returns while the watchdog is handling its entry waits
 * for that handling to end, so the entry and the reader stay valid.
 */
#include "common/log.h"
#include "common/timeutil.h"
#include "rm/internal.h"

static void unlink_locked(struct rm_watchdog *w, struct rm_wd_entry *e) SCRM_REQUIRES(w->lock)
{
    scrm_mutex_assert_held(&w->lock);
    TAILQ_REMOVE(&w->fifo, e, link);
}

static void fire(struct rm_wd_entry *e, uint32_t ms)
{
    struct rm_reader *r = e->r;
    log_warn(rm,
             "reader '%s': %s has not returned after %u ms (IOCTL watchdog); cancelling the "
             "reader's pending requests",
             r->name[0] ? r->name : r->device, smc_ioctl_name(e->code), ms);
    atomic_fetch_add(&r->wd_cancels, 1);
    int n = smc_cancel_all(r->h);
    if (n == 0) {
        atomic_fetch_sub(&r->wd_cancels, 1);
        log_warn(rm, "reader '%s': nothing to cancel: %s is blocked inside the driver",
                 r->name[0] ? r->name : r->device, smc_ioctl_name(e->code));
    }
}

static void *watchdog_main(void *arg)
{
    struct rm_watchdog *w = arg;
    scrm_mutex_lock(&w->lock);
    while (!w->stop) {
        struct rm_wd_entry *e = TAILQ_FIRST(&w->fifo);
        if (!e) {
            w->wake_ns = 0;
            scrm_cond_wait(&w->cond, &w->lock);
            w->wake_ns = UINT64_MAX;
            continue;
        }
        if (e->deadline_ns > scrm_now_ns()) {
            struct timespec ts = scrm_ns_timespec(e->deadline_ns);
            w->wake_ns = e->deadline_ns;
            scrm_cond_timedwait(&w->cond, &w->lock, &ts);
            w->wake_ns = UINT64_MAX;
            continue;
        }
        unlink_locked(w, e);
        e->fired = true;
        w->handling = e;
        scrm_mutex_unlock(&w->lock);
        fire(e, w->ms);
        scrm_mutex_lock(&w->lock);
        w->handling = NULL;
        scrm_cond_broadcast(&w->done);
    }
    scrm_mutex_unlock(&w->lock);
    return NULL;
}

int rm_watchdog_start(struct rm_watchdog *w, uint32_t ms)
{
    if (scrm_cond_init(&w->cond) != 0)
        return -1;
    if (scrm_cond_init(&w->done) != 0) {
        scrm_cond_destroy(&w->cond);
        return -1;
    }
    scrm_mutex_init(&w->lock);
    TAILQ_INIT(&w->fifo);
    w->ms = ms;
    w->wake_ns = UINT64_MAX; /* the thread is not waiting yet: it looks at the list first */
    w->inited = true;
    if (ms == 0)
        return 0; /* switched off: no thread, entries are not linked */
    if (pthread_create(&w->thread, NULL, watchdog_main, w) != 0)
        return -1;
    w->started = true;
    return 0;
}

void rm_watchdog_stop(struct rm_watchdog *w)
{
    if (!w->inited)
        return;
    scrm_mutex_lock(&w->lock);
    w->stop = true;
    scrm_cond_signal(&w->cond);
    scrm_mutex_unlock(&w->lock);
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = false;
}

void rm_watchdog_fini(struct rm_watchdog *w)
{
    if (!w->inited)
        return;
    scrm_cond_destroy(&w->done);
    scrm_cond_destroy(&w->cond);
    scrm_mutex_destroy(&w->lock);
    w->inited = false;
}

void rm_watchdog_enter(struct rm_watchdog *w, struct rm_wd_entry *e, struct rm_reader *r,
                       uint32_t code)
{
    e->r = r;
    e->code = code;
    e->fired = false;
    e->linked = false;
    if (!w->started)
        return;
    e->deadline_ns = scrm_now_ns() + (uint64_t)w->ms * 1000000u;
    scrm_mutex_lock(&w->lock);
    if (!w->stop) {
        TAILQ_INSERT_TAIL(&w->fifo, e, link);
        e->linked = true;
        if (TAILQ_FIRST(&w->fifo) == e && (w->wake_ns == 0 || w->wake_ns > e->deadline_ns))
            scrm_cond_signal(&w->cond); /* the thread waits for nothing or a later deadline */
    }
    scrm_mutex_unlock(&w->lock);
}

void rm_watchdog_leave(struct rm_watchdog *w, struct rm_wd_entry *e)
{
    if (!e->linked)
        return;
    scrm_mutex_lock(&w->lock);
    if (!e->fired)
        unlink_locked(w, e);
    while (w->handling == e)
        scrm_cond_wait(&w->done, &w->lock);
    scrm_mutex_unlock(&w->lock);
}
