/*
 * Deadlines of the socket server (loop thread only): a client must complete its HELLO (with
 * pcsc-lite's protocol: its first message), and every message it has begun, within io_timeout_ms
 * (scrmd.conf), or it is disconnected; a client that has nothing half-sent is never timed out,
 * however long it stays idle.
 *
 * Every deadline is "now + the same timeout", so the sessions that have one form a FIFO ordered
 * by deadline: arming appends, disarming unlinks, both O(1), and one timerfd in the epoll set is
 * set to the earliest deadline. A deadline stays what it was when it was armed: trickling bytes
 * does not extend it.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/server_internal.h"

/* Set the timerfd to the head's deadline, or disarm it. */
static void program(struct srv *srv)
{
    struct session *head = TAILQ_FIRST(&srv->tq);
    uint64_t at = head ? head->deadline_ns : 0;
    if (head && !at)
        at = 1; /* 0 would disarm */
    if (scrm_timerfd_at(srv->timer_fd, at) < 0)
        log_error(ipc, "timerfd_settime: %s", strerror(errno));
}

void srv_deadline_arm(struct srv *srv, struct session *s)
{
    if (s->tq_on || !srv->io_timeout_ms || srv->timer_fd < 0)
        return;
    s->deadline_ns = scrm_now_ns() + (uint64_t)srv->io_timeout_ms * 1000000u;
    s->tq_on = true;
    TAILQ_INSERT_TAIL(&srv->tq, s, tq_link);
    if (TAILQ_FIRST(&srv->tq) == s)
        program(srv);
}

void srv_deadline_disarm(struct srv *srv, struct session *s)
{
    bool was_head = TAILQ_FIRST(&srv->tq) == s;
    if (!s->tq_on)
        return;
    TAILQ_REMOVE(&srv->tq, s, tq_link);
    s->tq_on = false;
    if (was_head)
        program(srv);
}

void srv_deadline_update(struct srv *srv, struct session *s)
{
    bool partial = s->front == SRV_FRONT_PCSCLITE ? pcl_session_partial(s) : ipc_rx_partial(&s->rx);
    if (!s->closing && (!s->hello_done || partial))
        srv_deadline_arm(srv, s);
    else
        srv_deadline_disarm(srv, s);
}

void srv_deadline_expired(struct srv *srv)
{
    uint64_t v, now = scrm_now_ns();
    if (read(srv->timer_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_debug(ipc, "timerfd read: %s", strerror(errno));
    struct session *s;
    while ((s = TAILQ_FIRST(&srv->tq)) && s->deadline_ns <= now) {
        bool hello = !s->hello_done;
        srv_deadline_disarm(srv, s);
        session_ref(s);
        session_close(s,
                      hello ? "no HELLO in time (io_timeout_ms)"
                            : "message not completed in time (io_timeout_ms)",
                      true);
        session_unref(s);
    }
    program(srv);
}
