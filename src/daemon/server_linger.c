/*
 * Lingering sessions: the bookkeeping of the sessions a worker keeps after answering them, so
 * that it takes their next requests from the sockets itself (server_session.c, "Lingering").
 *
 * Each worker has one set (thread-local; it lives as long as the thread, which does not leave
 * while its set is not empty, since the end of its chain of jobs empties it). A set is on the
 * server's list while it holds sessions the worker left lingering for the length of a job
 * (`since`, the time it did); a set the worker is looking at itself (detached, or attached with
 * since = 0 just before its own bounded wait) is not the loop's business.
 *
 * The bound: a lingering session's socket is looked at at least every SRV_LINGER_US, by its
 * worker between two jobs or, when a job runs longer (a slow card, a hung driver), by the loop
 * thread. One timerfd in the loop's epoll set is armed while some set waits for its worker's
 * job; when it fires, the sets that waited SRV_LINGER_US are taken and their sessions given
 * back (session_linger_return: a pool job lets each go as any request's end does), so a client
 * never waits more than that beyond the loop's own reaction for another reader's job to end.
 * Under a steady load the timer fires every SRV_LINGER_US and finds every set recent.
 */
#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/server_internal.h"

static _Thread_local struct srv_linger tl_set;

/* Arm the timerfd for an absolute CLOCK_MONOTONIC time, or disarm it (0); linger_lock held. */
static void program(struct srv *srv, uint64_t at_ns) SCRM_REQUIRES(srv->linger_lock)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (at_ns) {
        its.it_value.tv_sec = (time_t)(at_ns / 1000000000u);
        its.it_value.tv_nsec = (long)(at_ns % 1000000000u);
    }
    if (timerfd_settime(srv->linger_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        log_error(ipc, "linger timerfd_settime: %s", strerror(errno));
    srv->linger_timer_on = at_ns != 0;
}

static void unlist(struct srv *srv, struct srv_linger *l) SCRM_REQUIRES(srv->linger_lock)
{
    if (!l->listed)
        return;
    if (l->prev)
        l->prev->next = l->next;
    else
        srv->lingers = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->next = l->prev = NULL;
    l->listed = false;
}

struct session *srv_linger_detach(void)
{
    struct srv_linger *l = &tl_set;
    struct session *list;
    if (!l->srv)
        return NULL;
    scrm_mutex_lock(&l->srv->linger_lock);
    list = l->head;
    l->head = NULL;
    l->since_ns = 0;
    unlist(l->srv, l);
    scrm_mutex_unlock(&l->srv->linger_lock);
    return list;
}

void srv_linger_attach(struct srv *srv, struct session *list, bool job_follows)
{
    struct srv_linger *l = &tl_set;
    if (!list)
        return;
    l->srv = srv;
    scrm_mutex_lock(&srv->linger_lock);
    scrm_assert(!l->head);
    l->head = list;
    l->since_ns = 0;
    if (job_follows) {
        l->since_ns = scrm_now_ns();
        l->next = srv->lingers;
        l->prev = NULL;
        if (l->next)
            l->next->prev = l;
        srv->lingers = l;
        l->listed = true;
        if (!srv->linger_timer_on)
            program(srv, l->since_ns + SRV_LINGER_US * 1000u);
    }
    scrm_mutex_unlock(&srv->linger_lock);
}

void srv_linger_expired(struct srv *srv)
{
    uint64_t v, now = scrm_now_ns(), next = 0;
    struct session *taken = NULL;

    if (read(srv->linger_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_debug(ipc, "linger timer read: %s", strerror(errno));
    scrm_mutex_lock(&srv->linger_lock);
    for (struct srv_linger *l = srv->lingers, *n; l; l = n) {
        n = l->next;
        uint64_t due = l->since_ns + SRV_LINGER_US * 1000u;
        if (due > now) {
            next = !next || due < next ? due : next;
            continue;
        }
        unlist(srv, l); /* its worker is still in the same job: the loop takes the sessions */
        struct session *s = l->head;
        while (s) {
            struct session *t = s->linger_next;
            s->linger_next = taken;
            taken = s;
            s = t;
        }
        l->head = NULL;
        l->since_ns = 0;
    }
    program(srv, next);
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
