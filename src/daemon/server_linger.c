/*
 * Lingering sessions: the bookkeeping of the sessions a worker keeps after answering them, so
 * that it takes their next requests from the sockets itself (server_session.c, "Lingering").
 *
 * Each worker has one set (thread-local). Between two requests the worker takes the set's
 * sessions (detach) and gives back those still waiting (attach); that touches only the set's own
 * lock, which nothing but the loop thread's timer shares, so the per-request cost does not grow
 * with the number of busy readers. `since` is when the worker gave the sessions back for the
 * length of a request (0 while it looks at them itself).
 *
 * The bound: a lingering session's socket is looked at at least every SRV_LINGER_US, by its
 * worker between two requests or, when a request runs longer (a slow card, a hung driver), by
 * the loop thread. A worker's set is on the server's list (srv->linger_lock) from the first
 * request it lingers through until its chain of jobs ends, and one timerfd in the loop's epoll
 * set is armed while the list is not empty: when it fires, the sets left for longer than
 * SRV_LINGER_US are taken and their sessions given back (session_linger_return: a pool job lets
 * each go as any request's end does), so a client never waits more than that, beyond the loop's
 * own reaction, for another client's request to end. Under a steady load the timer fires every
 * SRV_LINGER_US and finds every set recent.
 */
#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/server_internal.h"

static _Thread_local struct srv_linger tl_set = {.lock = SCRM_MUTEX_INITIALIZER};

/* Arm the timerfd for an absolute CLOCK_MONOTONIC time, or disarm it (0); linger_lock held. */
static void program(struct srv *srv, uint64_t at_ns) SCRM_REQUIRES(srv->linger_lock)
{
    if (scrm_timerfd_at(srv->linger_fd, at_ns) < 0)
        log_error(ipc, "linger timerfd_settime: %s", strerror(errno));
    srv->linger_timer_on = at_ns != 0;
}

struct session *srv_linger_detach(void)
{
    struct srv_linger *l = &tl_set;
    struct session *list;
    scrm_mutex_lock(&l->lock);
    list = l->head;
    l->head = NULL;
    l->since_ns = 0;
    scrm_mutex_unlock(&l->lock);
    return list;
}

void srv_linger_attach(struct srv *srv, struct session *list, bool job_follows)
{
    struct srv_linger *l = &tl_set;
    uint64_t now = job_follows ? scrm_now_ns() : 0;

    scrm_mutex_lock(&l->lock);
    scrm_assert(!l->head);
    l->head = list;
    l->since_ns = list ? now : 0;
    scrm_mutex_unlock(&l->lock);
    if (!list || !job_follows || l->listed)
        return;
    l->srv = srv; /* the first request of a chain that it lingers through: list the set */
    scrm_mutex_lock(&srv->linger_lock);
    LIST_INSERT_HEAD(&srv->lingers, l, link);
    l->listed = true;
    if (!srv->linger_timer_on)
        program(srv, now + SRV_LINGER_US * 1000u);
    scrm_mutex_unlock(&srv->linger_lock);
}

void srv_linger_chain_end(void)
{
    struct srv_linger *l = &tl_set;
    struct srv *srv = l->srv;
    if (!l->listed)
        return;
    scrm_mutex_lock(&srv->linger_lock);
    LIST_REMOVE(l, link);
    l->listed = false;
    scrm_mutex_unlock(&srv->linger_lock);
}

void srv_linger_expired(struct srv *srv)
{
    uint64_t v, now = scrm_now_ns(), next = 0;
    struct session *taken = NULL;

    if (read(srv->linger_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_debug(ipc, "linger timer read: %s", strerror(errno));
    scrm_mutex_lock(&srv->linger_lock);
    struct srv_linger *l;
    LIST_FOREACH(l, &srv->lingers, link) {
        /* a set its worker looks at itself (since 0) is due a period from now at the latest */
        uint64_t due = now + SRV_LINGER_US * 1000u;
        scrm_mutex_lock(&l->lock);
        if (l->since_ns && l->since_ns + SRV_LINGER_US * 1000u <= now) {
            /* its worker is still in the same request: the loop takes the sessions */
            struct session *s = l->head;
            while (s) {
                struct session *t = s->linger_next;
                s->linger_next = taken;
                taken = s;
                s = t;
            }
            l->head = NULL;
            l->since_ns = 0;
        } else if (l->since_ns) {
            due = l->since_ns + SRV_LINGER_US * 1000u;
        }
        scrm_mutex_unlock(&l->lock);
        next = !next || due < next ? due : next;
    }
    program(srv, next); /* disarmed when no set is listed */
    scrm_mutex_unlock(&srv->linger_lock);
    while (taken) {
        struct session *s = taken;
        taken = s->linger_next;
        s->linger_next = NULL;
        session_linger_return(s);
    }
}

int srv_linger_init(struct srv *srv)
{
    scrm_mutex_init(&srv->linger_lock);
    srv->linger_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    return srv->linger_fd < 0 ? -1 : 0;
}

void srv_linger_destroy(struct srv *srv)
{
    if (srv->linger_fd >= 0)
        close(srv->linger_fd);
    srv->linger_fd = -1;
    scrm_mutex_destroy(&srv->linger_lock);
}
