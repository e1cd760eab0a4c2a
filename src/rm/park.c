/*
 * The reader's card sequence lock (reader->seq_lock) and the requests parked until it is free.
 *
 * A request of a thread in rm_thread_nowait_reader mode (scrmd's workers) that finds the reader
 * busy with another request (conn_enter's trylock fails) returns RM_READER_BUSY having done
 * nothing; the caller parks it with rm_reader_idle_wait and gives its thread back. Every release
 * of the sequence lock (rm_seq_unlock) wakes the first parked request when nothing else was woken
 * and not retried yet, so a release costs O(1) whatever the number parked and a busy reader never
 * holds more than its one running request's thread.
 *
 * No lost wake-up: a parker links itself and counts itself in n_parked, then (fence) probes the
 * lock with a trylock; a releaser unlocks, then (fence) reads n_parked. Of the two, at least one
 * sees the other: either the parker finds the lock free and retries at once, or the releaser
 * finds it parked and wakes it. A woken request is "in flight" until it parks again or calls
 * rm_reader_idle_done; while one is, releases wake nobody (the woken one takes the reader, and
 * its own rm_reader_idle_done passes the turn on), so the parked are let through one at a time
 * instead of all at once. Probes happen under reader->lock and so do all wake decisions, so a
 * probe's momentary hold of the lock is never mistaken for a running request.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "rm/internal.h"

static _Thread_local bool tl_nowait_reader;
static _Thread_local struct rm_idle_wait *tl_turn;

void rm_thread_nowait_reader(bool on)
{
    tl_nowait_reader = on;
}

void rm_thread_park_turn(struct rm_idle_wait *w)
{
    tl_turn = w;
}

bool rm_thread_nowait_reader_on(void)
{
    return tl_nowait_reader;
}

void rm_seq_lock(struct rm_reader *r) SCRM_NO_THREAD_SAFETY_ANALYSIS
{
    scrm_mutex_lock(&r->seq_lock);
}

bool rm_seq_trylock(struct rm_reader *r) SCRM_NO_THREAD_SAFETY_ANALYSIS
{
    return scrm_mutex_trylock(&r->seq_lock);
}

bool rm_seq_try_turn(struct rm_reader *r) SCRM_NO_THREAD_SAFETY_ANALYSIS
{
    struct rm_idle_wait *t = tl_turn;
    if (!scrm_mutex_trylock(&r->seq_lock))
        return false;
    if (!t)
        return true;
    scrm_mutex_lock(&r->lock); /* after seq_lock, as every holder of both */
    bool queue = atomic_load(&r->n_parked) > 0 || r->park_inflight > 0;
    bool mine = t->r == r && !t->linked; /* woken here: its turn */
    scrm_mutex_unlock(&r->lock);
    if (!queue || mine)
        return true;
    rm_seq_unlock(r); /* wakes the first parked one if nobody holds the turn */
    return false;
}

/* Is the sequence lock free? A trylock and release under r->lock (a trylock never waits, so the
 * lock order is kept). */
static bool seq_free_locked(struct rm_reader *r) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    if (!scrm_mutex_trylock(&r->seq_lock))
        return false;
    scrm_mutex_unlock(&r->seq_lock);
    return true;
}

static void unlink_locked(struct rm_reader *r, struct rm_idle_wait *w) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    TAILQ_REMOVE(&r->parked, w, link);
    w->linked = false;
    atomic_fetch_sub(&r->n_parked, 1);
}

/* The first parked request to wake, if it is its turn: nobody woken is still retrying and the
 * reader is free (or gone). It becomes in flight. */
static struct rm_idle_wait *next_turn_locked(struct rm_reader *r) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    struct rm_idle_wait *w = TAILQ_FIRST(&r->parked);
    if (!w || r->park_inflight > 0 || (!r->gone && !seq_free_locked(r)))
        return NULL;
    unlink_locked(r, w);
    r->park_inflight++;
    return w;
}

void rm_seq_unlock(struct rm_reader *r) SCRM_NO_THREAD_SAFETY_ANALYSIS
{
    scrm_mutex_unlock(&r->seq_lock);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&r->n_parked) == 0)
        return;
    scrm_mutex_lock(&r->lock);
    struct rm_idle_wait *w = next_turn_locked(r);
    scrm_mutex_unlock(&r->lock);
    if (w)
        w->fn(w);
}

bool rm_reader_idle_wait(struct rm *rm, const char *name, struct rm_idle_wait *w,
                         void (*fn)(struct rm_idle_wait *w))
{
    return rm_reader_park(rm_reader_by_name(rm, name), w, fn);
}

bool rm_reader_park(struct rm_reader *r, struct rm_idle_wait *w, void (*fn)(struct rm_idle_wait *w))
{
    if (w->r && w->r != r)
        rm_reader_idle_done(w); /* woken by another reader: that turn is over */
    bool again = w->r != NULL;  /* woken here, and the reader was taken first: back to the head */
    if (!r)
        return false;
    if (again)
        rm_reader_unref(r); /* w holds its reference already */
    w->fn = fn;
    scrm_mutex_lock(&r->lock);
    bool parked = false, in_flight = again; /* in flight: its retry must end with idle_done */
    struct rm_idle_wait *woken = NULL;
    if (!r->gone) {
        if (again) {
            r->park_inflight--;
            TAILQ_INSERT_HEAD(&r->parked, w, link);
        } else {
            TAILQ_INSERT_TAIL(&r->parked, w, link);
        }
        w->linked = true;
        atomic_fetch_add(&r->n_parked, 1);
        atomic_thread_fence(memory_order_seq_cst);
        parked = !seq_free_locked(r);
        if (!parked && again) {
            unlink_locked(r, w);
            r->park_inflight++; /* still this request's turn: it retries at once */
        } else if (!parked) {
            /* Free, but others may be first: the head gets the turn (this request if it is the
             * head), unless a woken one holds it already and will pass it on. */
            woken = next_turn_locked(r);
            parked = woken != w;
            if (!parked)
                woken = NULL; /* this request's turn: it retries at once, in flight */
            in_flight = !parked;
        }
    }
    /* Parked, or in flight (woken, or given the turn here): w keeps its reference. */
    w->r = parked || in_flight ? r : NULL;
    scrm_mutex_unlock(&r->lock);
    if (!parked && !in_flight)
        rm_reader_unref(r);
    if (woken)
        woken->fn(woken);
    return parked;
}

bool rm_reader_queue_busy(struct rm_reader *r)
{
    scrm_mutex_lock(&r->lock);
    bool busy =
        !r->gone && (!TAILQ_EMPTY(&r->parked) || r->park_inflight > 0 || !seq_free_locked(r));
    scrm_mutex_unlock(&r->lock);
    return busy;
}

void rm_reader_idle_done(struct rm_idle_wait *w)
{
    struct rm_reader *r = w->r;
    if (!r || w->linked)
        return;
    w->r = NULL;
    scrm_mutex_lock(&r->lock);
    r->park_inflight--;
    struct rm_idle_wait *next = next_turn_locked(r);
    scrm_mutex_unlock(&r->lock);
    if (next)
        next->fn(next);
    rm_reader_unref(r);
}

bool rm_reader_idle_cancel(struct rm_idle_wait *w)
{
    struct rm_reader *r = w->r;
    bool was = false;
    if (!r)
        return false;
    scrm_mutex_lock(&r->lock);
    if (w->linked) {
        unlink_locked(r, w);
        was = true;
    }
    scrm_mutex_unlock(&r->lock);
    if (was) {
        w->r = NULL;
        rm_reader_unref(r);
    }
    return was;
}

void rm_park_wake_all(struct rm_reader *r)
{
    for (;;) {
        scrm_mutex_lock(&r->lock);
        struct rm_idle_wait *w = TAILQ_FIRST(&r->parked);
        if (w) {
            unlink_locked(r, w);
            r->park_inflight++;
        }
        scrm_mutex_unlock(&r->lock);
        if (!w)
            return;
        w->fn(w);
    }
}
