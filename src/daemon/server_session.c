/*
 * One client connection of scrmd: reading and checking messages, handing requests to the pool,
 * writing replies, status-change waits, and the orderly end (see server_internal.h for the
 * threading rules).
 *
 * Reading: the loop thread reads at most up to the end of the current message (the receiver asks
 * for exactly the missing bytes), so after a message nothing of the next one sits in user space;
 * a session that becomes busy simply stops being polled for input. A message that fails the
 * header check, the per-command size check, or the conversation rules (HELLO first, nothing but
 * STOP_WAIT during a wait) disconnects the client with a warning naming it; a connection that
 * ends in the middle of a message is logged as truncated.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/server_internal.h"
#include "rm/rm.h"

/* ---- Lifetime ---------------------------------------------------------------------------------
 */

struct session *session_new(struct srv *srv, int fd, enum srv_front front)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->front = front;
    if (front == SRV_FRONT_PCSCLITE && pcl_session_init(s) < 0) {
        free(s);
        return NULL;
    }
    s->srv = srv;
    s->fd = fd;
    s->id = ++srv->next_id;
    atomic_init(&s->refs, 1);
    scrm_mutex_init(&s->lock);
    scrm_mutex_init(&s->park_lock);
    ipc_rx_init(&s->rx, false);
    /* Before the handshake nothing larger than a HELLO: an unauthenticated connection holds a
     * few dozen bytes, whatever it announces. */
    ipc_rx_set_limit(&s->rx, (uint32_t)(sizeof(struct ipc_hdr) + sizeof(struct ipc_hello_req)));
    idmap_init(&s->cards);
    return s;
}

void session_ref(struct session *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void session_unref(struct session *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    if (s->fd >= 0)
        close(s->fd);
    ipc_rx_free(&s->rx);
    pcl_session_free(s);
    idmap_free(&s->cards);
    scrm_mutex_destroy(&s->lock);
    scrm_mutex_destroy(&s->park_lock);
    free(s->out);
    free(s->job_msg);
    free(s->reply);
    srv_peer_forget(s);
    free(s);
}

/* ---- Output -----------------------------------------------------------------------------------
 */

void session_rearm(struct session *s) SCRM_REQUIRES(s->lock)
{
    scrm_mutex_assert_held(&s->lock);
    struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = s};
    if (s->closing)
        return; /* no longer in the epoll set */
    if (s->out_len > s->out_off)
        ev.events |= EPOLLOUT;
    else if (!s->busy && !pcl_session_parked(s)) /* a parked request is not answered yet */
        ev.events |= EPOLLIN;
    if (epoll_ctl(s->srv->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
        log_error(ipc, "client %llu: epoll_ctl: %s", (unsigned long long)s->id, strerror(errno));
}

/* Write pending output; s->lock held. A dead peer shuts the socket down so that the loop
 * thread sees the hang-up and closes the session. */
static void flush_out(struct session *s) SCRM_REQUIRES(s->lock)
{
    scrm_mutex_assert_held(&s->lock);
    while (s->out_off < s->out_len) {
        ssize_t n =
            send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            shutdown(s->fd, SHUT_RDWR);
            s->out_off = s->out_len;
            break;
        }
        s->out_off += (size_t)n;
    }
    free(s->out);
    s->out = NULL;
    s->out_len = s->out_off = 0;
}

void session_send(struct session *s, const uint8_t *msg, size_t len)
{
    size_t off = 0;

    scrm_mutex_lock(&s->lock);
    if (s->closing)
        goto out;
    if (s->out_len != s->out_off) {
        uint8_t *more;
        if (s->front == SRV_FRONT_SCRM) {
            /* Only a client breaking the one-request rule can get here; drop it. */
            shutdown(s->fd, SHUT_RDWR);
            goto out;
        }
        /* pcsc-lite: an event signal (loop thread) may meet a reply still being written; keep
         * both, in order. At most one of each is pending, since a signal ends the wait. */
        more = realloc(s->out, s->out_len + len);
        if (!more) {
            shutdown(s->fd, SHUT_RDWR);
            goto out;
        }
        memcpy(more + s->out_len, msg, len);
        s->out = more;
        s->out_len += len;
        goto out;
    }
    while (off < len) {
        ssize_t n = send(s->fd, msg + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            shutdown(s->fd, SHUT_RDWR);
            goto out;
        }
        off += (size_t)n;
    }
    if (off < len) { /* keep the rest for EPOLLOUT */
        s->out = malloc(len - off);
        if (!s->out) {
            shutdown(s->fd, SHUT_RDWR);
            goto out;
        }
        memcpy(s->out, msg + off, len - off);
        s->out_len = len - off;
        s->out_off = 0;
    }
out:
    scrm_mutex_unlock(&s->lock);
}

/* ---- Closing ----------------------------------------------------------------------------------
 */

/* The rm woke a teardown parked on a busy reader: run it again (the pool's hold passes to the
 * queued job). */
static void gone_fired(struct rm_idle_wait *w)
{
    struct session *s = (struct session *)((char *)w - offsetof(struct session, park));
    struct srv_pool *pool = &s->srv->pool; /* the job may end and free s at once */
    srv_pool_submit(pool, &s->gone);
    srv_pool_release(pool);
}

/* Pool job: tell the rm the owner is gone, then drop the session. */
static void gone_job(struct srv_job *job)
{
    struct session *s = (struct session *)((char *)job - offsetof(struct session, gone));
    struct srv_pool *pool = &s->srv->pool;
    int n;
    /* The teardown never waits for another client's transaction either (rm_owner_gone then
     * leaves the card as it is), so it cannot hold a worker that client's END needs; nor for a
     * reader busy with another request: the rest of it is parked on that reader (a client of a
     * hung reader that leaves holds no worker). */
    rm_thread_nowait(true);
    rm_thread_nowait_reader(true);
    rm_thread_park_turn(NULL); /* a leaving client takes a free reader at once */
    session_free_wait(s);      /* O(the client's entries), off the loop thread */
    pcl_session_end(s);        /* a pcsc-lite request parked for a transaction */
    for (;;) {
        bool parked;
        scrm_mutex_lock(&s->park_lock);
        rm_reader_idle_done(&s->park); /* if woken: the next one's turn */
        scrm_mutex_unlock(&s->park_lock);
        n = rm_owner_gone(s->srv->rm, s->id);
        if (n >= 0)
            break;
        srv_pool_hold(pool); /* the server's shutdown waits for this teardown */
        scrm_mutex_lock(&s->park_lock);
        parked = rm_reader_idle_wait(s->srv->rm, rm_thread_busy_reader(), &s->park, gone_fired);
        scrm_mutex_unlock(&s->park_lock);
        if (parked)
            return;             /* gone_fired submits this job again */
        srv_pool_release(pool); /* the reader is free now: again */
    }
    if (n > 0)
        log_debug(ipc, "client %llu: %d card handle(s) reset and closed", (unsigned long long)s->id,
                  n);
    session_unref(s);
}

void session_free_wait(struct session *s)
{
    struct srv_wait *w = s->wait;
    if (!w)
        return;
    for (size_t i = 0; i < w->n_watches; i++)
        if (w->watches[i])
            rm_unwatch(s->srv->rm, w->watches[i]);
    free(w->watches);
    free(w->entries);
    free(w);
    s->wait = NULL;
}

void session_close(struct session *s, const char *why, bool violation)
{
    struct srv *srv = s->srv;
    bool busy, parked;

    scrm_assert(pthread_equal(pthread_self(), srv->loop_thread));
    scrm_mutex_lock(&s->lock);
    if (s->closing) {
        scrm_mutex_unlock(&s->lock);
        return;
    }
    s->closing = true;
    busy = s->busy;
    parked = s->parked;
    scrm_mutex_unlock(&s->lock);
    if (busy && parked) {
        /* Its request waits for a reader: take it back unless the rm has just woken it (then
         * the woken run finds the session closing and does the teardown). */
        scrm_mutex_lock(&s->park_lock);
        busy = !rm_reader_idle_cancel(&s->park);
        scrm_mutex_unlock(&s->park_lock);
    }
    srv_spy_forget(s);

    epoll_ctl(srv->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    srv_deadline_disarm(srv, s);
    if (violation)
        log_warn(ipc, "client %llu (pid %ld, uid %ld): %s; disconnecting",
                 (unsigned long long)s->id, (long)s->pid, (long)s->uid, why);
    else
        log_info(ipc, "client %llu (pid %ld): %s", (unsigned long long)s->id, (long)s->pid, why);
    rm_cancel_waits(srv->rm, s->id); /* a worker blocked for this client returns now */
    LIST_REMOVE(s, link);
    srv->n_sessions--;
    srv_session_gone(srv);
    /* The list's reference passes to the teardown job, queued now or by the worker that is
     * still executing a request for this client. */
    if (!busy) {
        s->gone.fn = gone_job;
        srv_pool_submit(&srv->pool, &s->gone);
    }
}

/* ---- Status-change waits ----------------------------------------------------------------------
 */

/* Watch callback (rm thread, watch registry lock held): queue the session for the loop. */
static void watch_fired(void *user, const char *name, uint32_t counter)
{
    struct session *s = user;
    struct srv *srv = s->srv;
    uint64_t one = 1;
    bool poke = false;
    (void)name;
    (void)counter;

    scrm_mutex_lock(&srv->ready_lock);
    if (!s->in_ready) {
        s->in_ready = true;
        session_ref(s);
        s->ready_next = srv->ready;
        srv->ready = s;
        poke = true;
    }
    scrm_mutex_unlock(&srv->ready_lock);
    if (poke && write(srv->wake_fd, &one, sizeof one) < 0)
        log_debug(ipc, "wake: %s", strerror(errno));
}

struct rm_watch *session_watch_reader(struct session *s, const char *name)
{
    return rm_watch(s->srv->rm, name, watch_fired, s);
}

/* Snapshot every reader of the wait; true if something differs from what the client knows. */
static bool wait_snapshot(struct session *s, struct ipc_reader_state *st, uint32_t *pnp)
{
    struct srv_wait *w = s->wait;
    bool changed = false;

    *pnp = rm_reader_events(s->srv->rm);
    if (w->pnp && *pnp != w->pnp_known)
        changed = true;
    for (uint32_t i = 0; i < w->count; i++) {
        srv_reader_state(s->srv, w->entries[i].name, &st[i]);
        if (st[i].flags != w->entries[i].known_flags ||
            st[i].counter != w->entries[i].known_counter)
            changed = true;
    }
    return changed;
}

void session_wait_eval(struct session *s)
{
    struct ipc_reader_state *st;
    struct ipc_hdr req = {.cmd = IPC_CMD_GET_STATUS_CHANGE};
    struct ipc_gsc_rep rep;
    uint32_t pnp;

    if (!s->wait)
        return;
    if (s->wait->cmd == IPC_CMD_WAIT_TX) {
        if (rm_reader_tx_free(s->srv->rm, s->wait->entries[0].name))
            session_end_wait(s, SCARD_S_SUCCESS);
        return;
    }
    st = calloc(s->wait->count ? s->wait->count : 1, sizeof *st);
    if (!st) {
        session_end_wait(s, SCARD_E_NO_MEMORY);
        return;
    }
    if (wait_snapshot(s, st, &pnp)) {
        req.seq = s->wait->seq;
        rep.count = s->wait->count;
        rep.pnp_counter = pnp;
        srv_reply(s, &req, SCARD_S_SUCCESS, &rep, sizeof rep, st, rep.count * sizeof *st);
        session_free_wait(s);
    }
    free(st);
}

void session_end_wait(struct session *s, uint32_t rc)
{
    struct ipc_hdr req = {.cmd = IPC_CMD_GET_STATUS_CHANGE};
    struct ipc_gsc_rep rep = {0}; /* the same 8 zero bytes as WAIT_TX's ipc_none */
    _Static_assert(sizeof(struct ipc_gsc_rep) == sizeof(struct ipc_none), "empty wait replies");
    if (!s->wait)
        return;
    req.cmd = s->wait->cmd;
    req.seq = s->wait->seq;
    session_free_wait(s);
    srv_reply(s, &req, rc, &rep, sizeof rep, NULL, 0);
}

void session_start_tx_wait(struct session *s, const struct ipc_hdr *h, const char *reader)
{
    struct srv_wait *w = calloc(1, sizeof *w);
    struct ipc_none rep = {0};

    if (w) {
        w->entries = calloc(1, sizeof *w->entries);
        w->watches = calloc(1, sizeof(struct rm_watch *));
    }
    if (!w || !w->entries || !w->watches) {
        if (w) {
            free(w->entries);
            free(w->watches);
        }
        free(w);
        srv_reply(s, h, SCARD_E_NO_MEMORY, &rep, sizeof rep, NULL, 0);
        return;
    }
    w->cmd = IPC_CMD_WAIT_TX;
    w->seq = h->seq;
    w->count = 1;
    snprintf(w->entries[0].name, sizeof w->entries[0].name, "%s", reader);
    s->wait = w;
    /* Watch first, then test: a release between the two fires the watch. */
    w->watches[0] = rm_watch(s->srv->rm, reader, watch_fired, s);
    w->n_watches = 1;
    if (!w->watches[0]) {
        session_end_wait(s, SCARD_E_NO_MEMORY);
        return;
    }
    session_wait_eval(s);
}

/* Index of the first entry named like entries[i] among those already in the set, or -1 after
 * adding i: an open-addressing set of entry indices, sized by the caller (a power of two larger
 * than the count). */
static long name_seen(const struct ipc_gsc_entry *entries, uint32_t *set, size_t set_n, uint32_t i)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)entries[i].name; *p; p++)
        h = (h ^ *p) * 16777619u;
    for (size_t k = h & (set_n - 1);; k = (k + 1) & (set_n - 1)) {
        if (set[k] == 0) {
            set[k] = i + 1;
            return -1;
        }
        if (strcmp(entries[set[k] - 1].name, entries[i].name) == 0)
            return (long)(set[k] - 1);
    }
}

/* Start a wait for the request's readers (loop thread); may answer at once. One watch per
 * distinct name: the cost is that of the client's own entries, and a notification of a reader
 * calls each waiting client once. */
int session_start_wait(struct session *s, const struct ipc_hdr *h, const struct ipc_gsc_req *req,
                       struct ipc_gsc_entry *entries)
{
    struct srv_wait *w = calloc(1, sizeof *w);
    size_t n = req->count + ((req->flags & IPC_GSC_PNP) ? 1u : 0u);
    size_t set_n = 16;
    uint32_t *set;

    while (set_n < 2 * (size_t)req->count)
        set_n *= 2;
    set = calloc(set_n, sizeof *set);
    if (!set || !w || !(w->watches = calloc(n ? n : 1, sizeof(struct rm_watch *)))) {
        free(set);
        free(w);
        return -1;
    }
    w->cmd = IPC_CMD_GET_STATUS_CHANGE;
    w->seq = h->seq;
    w->count = req->count;
    w->pnp = (req->flags & IPC_GSC_PNP) != 0;
    w->pnp_known = req->pnp_counter;
    w->entries = entries;
    s->wait = w;
    /* Watch first, then compare: an event between the two cannot be missed. */
    for (uint32_t i = 0; i < w->count; i++) {
        if (name_seen(entries, set, set_n, i) >= 0)
            continue;
        struct rm_watch *id = rm_watch(s->srv->rm, entries[i].name, watch_fired, s);
        w->watches[w->n_watches++] = id;
        if (!id)
            break;
    }
    free(set);
    if (w->pnp && (w->n_watches == 0 || w->watches[w->n_watches - 1]))
        w->watches[w->n_watches++] = rm_watch(s->srv->rm, NULL, watch_fired, s);
    if (w->n_watches && !w->watches[w->n_watches - 1]) {
        session_end_wait(s, SCARD_E_NO_MEMORY);
        return 0;
    }
    session_wait_eval(s);
    return 0;
}

int session_watch_all(struct session *s)
{
    struct rm_reader_info *list = NULL;
    size_t n = 0;
    struct srv_wait *w = calloc(1, sizeof *w);

    if (!w || rm_list_readers(s->srv->rm, &list, &n) != SCARD_S_SUCCESS ||
        !(w->watches = calloc(n + 1, sizeof(struct rm_watch *)))) {
        free(w);
        free(list);
        return -1;
    }
    s->wait = w;
    /* Watch first; the caller answers the state afterwards, so no change can fall between. */
    for (size_t i = 0; i < n; i++)
        w->watches[w->n_watches++] = rm_watch(s->srv->rm, list[i].name, watch_fired, s);
    w->watches[w->n_watches++] = rm_watch(s->srv->rm, NULL, watch_fired, s);
    free(list);
    for (size_t i = 0; i < w->n_watches; i++)
        if (!w->watches[i]) {
            session_free_wait(s);
            return -1;
        }
    return 0;
}

/* ---- Input ------------------------------------------------------------------------------------
 */

/* Check the conversation rules for a validated request; NULL if it may run. */
static const char *conversation_error(struct session *s, uint16_t cmd)
{
    if (!s->hello_done && cmd != IPC_CMD_HELLO)
        return "request before HELLO";
    if (s->hello_done && cmd == IPC_CMD_HELLO)
        return "second HELLO";
    if (s->wait && cmd != IPC_CMD_STOP_WAIT)
        return "request while a status-change wait is pending";
    return NULL;
}

/*
 * A client in a request loop (APDU after APDU) sends its next request as soon as it has the reply.
 * A worker that still has the session (lingering, below) takes it from the socket when it is a
 * complete, valid request for the pool: that saves the loop thread's wake-up, two epoll_ctl calls
 * and the hand-off to a worker per request. SRV_TAKE_OK: the request is in job_msg;
 * SRV_TAKE_NONE: nothing there yet; SRV_TAKE_OTHER: anything else (a loop command, a message not
 * complete yet, a bad one, a hang-up), left in the socket for the loop thread, which sees it once
 * the session is re-armed. The loop thread does not read a busy session, so the bytes are ours.
 */
static enum srv_take take_request(struct session *s)
{
    uint8_t peek[512]; /* a TRANSMIT of a short APDU, whole: one peek instead of two */
    struct ipc_hdr h;
    uint8_t *msg;
    bool ok;
    ssize_t n = recv(s->fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return SRV_TAKE_NONE;
    if (n < (ssize_t)sizeof h)
        return SRV_TAKE_OTHER;
    memcpy(&h, peek, sizeof h);
    if (h.size < sizeof h || h.size > IPC_MSG_MAX || srv_cmd_run(h.cmd) < SRV_POOL)
        return SRV_TAKE_OTHER;
    msg = malloc(h.size);
    if (!msg)
        return SRV_TAKE_OTHER;
    if (h.size <= (size_t)n)
        memcpy(msg, peek, h.size);
    ok = (h.size <= (size_t)n ||
          recv(s->fd, msg, h.size, MSG_PEEK | MSG_DONTWAIT) == (ssize_t)h.size) &&
         !ipc_check_request(msg, h.size) && !conversation_error(s, h.cmd) &&
         recv(s->fd, msg, h.size, MSG_DONTWAIT) == (ssize_t)h.size;
    if (ok) { /* the loop thread may have closed the session meanwhile (hang-up) */
        scrm_mutex_lock(&s->lock);
        ok = !s->closing;
        scrm_mutex_unlock(&s->lock);
    }
    if (!ok) {
        free(msg);
        return SRV_TAKE_OTHER;
    }
    s->job_msg = msg;
    s->job_len = h.size;
    return SRV_TAKE_OK;
}

static void request_job(struct srv_job *job);

/* End of a worker's turn for the session: evaluate again a wait whose readers changed
 * meanwhile (or run again a pcsc-lite request parked for a transaction that was released),
 * then resume reading (or finish closing). */
static void job_done(struct session *s)
{
    bool closing;

    for (;;) {
        scrm_mutex_lock(&s->lock);
        if (s->wait_dirty && s->front == SRV_FRONT_PCSCLITE && !s->closing) {
            s->wait_dirty = false;
            scrm_mutex_unlock(&s->lock);
            if (pcl_unpark_job(s)) { /* run it again as a new job; the session stays busy */
                s->job.fn = request_job;
                srv_pool_submit(&s->srv->pool, &s->job);
                return;
            }
            continue;
        }
        if (s->wait_dirty && s->wait && !s->closing) {
            s->wait_dirty = false;
            scrm_mutex_unlock(&s->lock);
            session_wait_eval(s);
            continue;
        }
        s->wait_dirty = false;
        s->busy = false;
        closing = s->closing;
        session_rearm(s);
        scrm_mutex_unlock(&s->lock);
        break;
    }
    if (closing) { /* session_close left the teardown to us */
        s->gone.fn = gone_job;
        gone_job(&s->gone);
    }
}

/* The session handle of the card a request is for, if it is one that may wait for its reader
 * before it runs (TRANSMIT, the request that comes in streams). */
static bool request_card(const struct session *s, uint64_t *handle)
{
    struct ipc_hdr h;
    struct ipc_transmit_req t;

    if (s->front == SRV_FRONT_PCSCLITE)
        return pcl_request_card(s->job_msg, s->job_len, handle);
    if (s->job_len < sizeof h + sizeof t)
        return false;
    memcpy(&h, s->job_msg, sizeof h);
    if (h.cmd != IPC_CMD_TRANSMIT)
        return false;
    memcpy(&t, s->job_msg + sizeof h, sizeof t);
    *handle = t.card;
    return true;
}

/* A request of run class STREAM in its protocol's command table (it opens a card or carries its
 * APDUs): the start of a stream of requests to a card, which runs on a new thread when the loop
 * thread read it (server_pool.c, "New threads for card streams"). */
static bool stream_request(const struct session *s)
{
    struct ipc_hdr h;

    if (s->front == SRV_FRONT_PCSCLITE)
        return pcl_stream_request(s->job_msg, s->job_len);
    if (s->job_len < sizeof h)
        return false;
    memcpy(&h, s->job_msg, sizeof h);
    return srv_cmd_run(h.cmd) == SRV_STREAM;
}

/* This worker runs a request that touches one reader and then only replies (a TRANSMIT): a
 * request it wakes by freeing that reader may run next on this thread (srv_pool_defer). Not for
 * a request that may go on to wait for another reader (a RELEASE closing several cards), which
 * would keep the woken one waiting for nothing. */
static _Thread_local bool tl_single_reader;

/* The rm woke a parked request (on the thread that freed its reader): run it again. */
static void park_fired(struct rm_idle_wait *w)
{
    struct session *s = (struct session *)((char *)w - offsetof(struct session, park));
    if (tl_single_reader) {
        scrm_rt_enter(); /* clients queue for this reader: no preemption between them */
        log_trace(ipc, "client %llu: its parked request runs next on this worker",
                  (unsigned long long)s->id);
        srv_pool_defer(&s->srv->pool, &s->job);
    } else {
        srv_pool_submit(&s->srv->pool, &s->job);
    }
}

/* Around the rm call that may park the session's request (on s->park): the request is marked
 * parked before the rm may wake it (the woken run clears the mark), and the call runs under
 * park_lock. park_end returns the call's result, clears the mark if it did not park, and gives
 * whether the session is closing (closing may be NULL). A thread that has queued a request on a
 * busy reader is raised (rtprio.h), as promptly as the one serving the reader (park_fired). */
static void park_begin(struct session *s) SCRM_ACQUIRE(s->park_lock)
{
    scrm_mutex_lock(&s->lock);
    s->parked = true;
    scrm_mutex_unlock(&s->lock);
    scrm_mutex_lock(&s->park_lock);
}

static bool park_end(struct session *s, bool parked, bool *closing) SCRM_RELEASE(s->park_lock)
{
    scrm_mutex_unlock(&s->park_lock);
    if (parked)
        scrm_rt_enter();
    scrm_mutex_lock(&s->lock);
    if (!parked)
        s->parked = false;
    if (closing)
        *closing = s->closing;
    scrm_mutex_unlock(&s->lock);
    return parked;
}

/* The request just executed needs a reader busy with another request: park it there. True if
 * the worker must let go of the session now (parked, or woken already by a run that will finish
 * it); false if the request is to run again at once (the reader is free now) or, closing, is
 * dropped (*drop). */
static bool park_request(struct session *s, bool *drop)
{
    bool parked, closing;

    *drop = false;
    park_begin(s);
    parked =
        park_end(s, rm_reader_idle_wait(s->srv->rm, rm_thread_busy_reader(), &s->park, park_fired),
                 &closing);
    if (!parked)
        return false;
    if (!closing)
        return true; /* session_close may take it back from here on */
    /* Closed meanwhile (session_close may have found it not linked yet): take it back
     * ourselves, unless session_close or a wake-up did. */
    scrm_mutex_lock(&s->park_lock);
    *drop = rm_reader_idle_cancel(&s->park);
    scrm_mutex_unlock(&s->park_lock);
    return !*drop;
}

/*
 * Lingering. After answering a client of scrm's protocol the worker keeps its session (still
 * busy, so the loop thread does not read it) on its linger set (server_linger.c) instead of
 * handing it back to the loop thread at once. Clients that share a reader send their next
 * request while the reader runs another's: between two requests the worker takes those requests
 * from the sockets itself and parks them on the reader (or runs them, when the reader is free),
 * instead of the loop thread being woken to read and park each one. When its chain of jobs ends
 * the worker waits up to SRV_LINGER_US for any of them (a client in a request loop answers in
 * microseconds), then lets the rest go back to the loop. A session with anything but a complete
 * request for the pool (a loop command, a message not complete yet, a hang-up) goes back at once,
 * and a job that lasts longer than SRV_LINGER_US has the loop thread take its worker's set.
 */

static void park_or_defer(struct session *s);

/* May s linger after its answer? Not while it has output to write (EPOLLOUT is the loop's), a
 * status-change wait, a wait to evaluate again or a pcsc-lite request parked for a transaction,
 * nor when closing. */
static bool linger_ok(struct session *s)
{
    bool ok;
    scrm_mutex_lock(&s->lock);
    ok = !s->closing && !s->wait_dirty && s->out_len == s->out_off;
    scrm_mutex_unlock(&s->lock);
    return ok && !s->wait && !pcl_session_parked(s);
}

/* Look at what list's clients have sent, one ppoll for them all, waiting up to `wait` for the
 * first (NULL: not at all): a request is parked on its busy reader or run next on this worker; a
 * session with something for the loop, or that may not linger any more, goes back. A wait ends
 * at once when a job waits for a thread (srv_pool_starve_fd), and then, or when nothing came,
 * list is returned as it was and *idle set (idle may be NULL). Returns the sessions with nothing
 * yet (or only part of a request). */
static struct session *linger_scan(struct srv *srv, struct session *list,
                                   const struct timespec *wait, bool *idle)
{
    struct pollfd pfd[SRV_LINGER_MAX + 1];
    struct timespec now = {0, 0};
    struct session *keep = NULL, **tail = &keep;
    size_t n = 1;
    int r;

    if (idle)
        *idle = false;
    if (!list)
        return NULL;
    pfd[0] = (struct pollfd){.fd = srv_pool_starve_fd(&srv->pool), .events = POLLIN};
    for (struct session *t = list; t && n <= SRV_LINGER_MAX; t = t->linger_next)
        pfd[n++] = (struct pollfd){.fd = t->fd, .events = POLLIN};
    do
        r = ppoll(pfd, n, wait ? wait : &now, NULL);
    while (r < 0 && errno == EINTR);
    if (wait && (r <= 0 || pfd[0].revents)) {
        if (idle)
            *idle = true;
        return list;
    }
    for (size_t i = 1; list; i++) {
        struct session *t = list;
        enum srv_take got = SRV_TAKE_NONE;
        list = t->linger_next;
        t->linger_next = NULL;
        if (!linger_ok(t))
            got = SRV_TAKE_OTHER;
        else if (r > 0 && i < n && pfd[i].revents)
            got = t->front == SRV_FRONT_PCSCLITE ? pcl_take_ready(t) : take_request(t);
        if (got == SRV_TAKE_NONE) {
            *tail = t;
            tail = &t->linger_next;
        } else if (got == SRV_TAKE_OK) {
            park_or_defer(t);
        } else {
            job_done(t);
        }
    }
    return keep;
}

void session_chain_end(void)
{
    struct session *list = srv_linger_detach();
    uint64_t end = scrm_now_ns() + SRV_LINGER_US * 1000u;
    struct srv *srv;
    bool idle = false;

    if (list) {
        srv = list->srv;
        /* The clients just answered are being woken, and one in a request loop sends its next
         * request within microseconds once it runs; on a busy CPU it is queued behind this
         * worker. Give way once and look again before going to sleep, so that such a request is
         * taken without this worker sleeping and being woken for it (a no-op when nothing else
         * wants the CPU; not at real-time priority, where the clients could not run anyway). */
        if (!scrm_rt_raised()) {
            sched_yield();
            list = linger_scan(srv, list, NULL, NULL);
        }
        /* until the first whole request (pcsc-lite's clients write one in several pieces) */
        while (list && !idle && !srv_pool_deferred()) {
            uint64_t now = scrm_now_ns();
            struct timespec left = {0, (long)(end - now)};
            if (now >= end)
                break;
            list = linger_scan(srv, list, &left, &idle);
        }
        if (srv_pool_deferred()) {
            srv_linger_attach(srv, list, true); /* the rest wait through the request it took */
            return;
        }
    }
    while (list) {
        struct session *t = list;
        list = t->linger_next;
        t->linger_next = NULL;
        job_done(t);
    }
    srv_linger_chain_end();
}

/* Pool job: a session the loop thread took from a worker's set lets go as a request's end
 * does. */
static void linger_return_job(struct srv_job *job)
{
    job_done((struct session *)((char *)job - offsetof(struct session, job)));
}

void session_linger_return(struct session *s)
{
    log_debug(ipc,
              "client %llu: its worker is still in another request after %u us; the loop "
              "thread reads it again",
              (unsigned long long)s->id, SRV_LINGER_US);
    s->job.fn = linger_return_job;
    srv_pool_submit(&s->srv->pool, &s->job);
}

/* Pool job: execute the request (and the ones that follow at once). A request that finds its
 * reader busy with another request is parked on it (no thread waits) and runs again here when
 * the rm wakes it. */
static void request_job(struct srv_job *job)
{
    struct session *s = (struct session *)((char *)job - offsetof(struct session, job));
    struct session *list;
    bool closing, full;
    size_t n;

    /* A client that waits for transactions itself gets IPC_S_TX_BUSY instead of a worker
     * blocked until another handle's transaction ends (pcsc-lite's front end parks such a
     * request on a watch: pcl_exec). Both front ends park requests that wait for a busy
     * reader. */
    rm_thread_nowait(s->nowait);
    rm_thread_nowait_reader(true);
    rm_thread_park_turn(&s->park); /* first come, first served on a busy reader */
    scrm_mutex_lock(&s->lock);
    s->parked = false; /* woken, if it was */
    closing = s->closing;
    scrm_mutex_unlock(&s->lock);
    for (;;) {
        uint64_t handle;
        s->park_req = false;
        /* Through the request, its parking and its rm_reader_idle_done: a request woken from the
         * park passes the reader on there, not when it unlocks it. */
        tl_single_reader = !closing && request_card(s, &handle);
        if (!closing) {
            if (s->front == SRV_FRONT_PCSCLITE)
                pcl_exec(s, s->job_msg, s->job_len);
            else
                srv_cmd_exec(s, s->job_msg, s->job_len);
        }
        if (s->park_req && !closing) {
            bool drop;
            if (park_request(s, &drop)) {
                tl_single_reader = false;
                rm_thread_park_turn(NULL);
                return; /* the session stays busy; park_fired brings the request back */
            }
            if (!drop)
                continue; /* the reader is free now: again */
            closing = true;
        }
        scrm_mutex_lock(&s->park_lock);
        rm_reader_idle_done(&s->park); /* if this request was woken: the next one's turn */
        scrm_mutex_unlock(&s->park_lock);
        tl_single_reader = false;
        free(s->job_msg);
        s->job_msg = NULL;
        if (closing || !linger_ok(s))
            break;
        /* s lingers (see "Lingering"), after what the others have sent, unless the worker's set
         * is full */
        rm_thread_park_turn(NULL);
        list = linger_scan(s->srv, srv_linger_detach(), NULL, NULL);
        n = 0;
        for (struct session *t = list; t; t = t->linger_next)
            n++;
        full = n >= SRV_LINGER_MAX;
        if (!full) {
            s->linger_next = list;
            list = s;
        }
        srv_linger_attach(s->srv, list, srv_pool_deferred());
        if (!full)
            return;
        break;
    }
    rm_thread_park_turn(NULL); /* s may be gone once job_done has let it go */
    job_done(s);
}

/* Pool job: a watched reader changed; compare the wait's readers again. */
static void wait_job(struct srv_job *job)
{
    struct session *s = (struct session *)((char *)job - offsetof(struct session, job));
    session_wait_eval(s);
    job_done(s);
}

void session_wait_fired(struct session *s)
{
    if (s->front == SRV_FRONT_PCSCLITE) { /* its registration lives on the loop thread */
        pcl_wait_fired(s);
        return;
    }
    scrm_mutex_lock(&s->lock);
    if (s->closing) {
        scrm_mutex_unlock(&s->lock);
        return;
    }
    if (s->busy) { /* the worker looks again before it lets go of the session */
        s->wait_dirty = true;
        scrm_mutex_unlock(&s->lock);
        return;
    }
    if (!s->wait) { /* answered already */
        scrm_mutex_unlock(&s->lock);
        return;
    }
    s->busy = true;
    session_rearm(s);
    scrm_mutex_unlock(&s->lock);
    s->job.fn = wait_job;
    srv_pool_submit(&s->srv->pool, &s->job);
}

/* Handle one complete message; false if the session must stop reading. */
static bool dispatch(struct session *s, const uint8_t *msg, size_t len)
{
    struct ipc_hdr h;
    const char *why = ipc_check_request(msg, len);

    if (why) {
        session_close(s, why, true);
        return false;
    }
    memcpy(&h, msg, sizeof h);
    why = conversation_error(s, h.cmd);
    if (why) {
        session_close(s, why, true);
        return false;
    }
    if (srv_cmd_run(h.cmd) == SRV_LOOP) {
        bool pending;
        srv_cmd_exec(s, msg, len);
        ipc_rx_next(&s->rx);
        scrm_mutex_lock(&s->lock);
        pending = s->out_len > s->out_off;
        if (pending)
            session_rearm(s);
        scrm_mutex_unlock(&s->lock);
        return !s->closing && !pending;
    }
    session_submit(s, ipc_rx_take(&s->rx), len);
    return false;
}

/* A TRANSMIT for a reader busy with other requests (clients sharing a reader) is parked on it
 * here, by the thread that read it (the loop thread, or the worker the session lingers on),
 * instead of waking a worker only to find the reader busy and park it: it runs when its turn
 * comes, on the worker that frees the reader (park_fired). The session's card table is that
 * thread's to read here: no other worker has the session. */
static bool park_early(struct session *s)
{
    uint64_t handle, card;
    bool parked;

    if (!request_card(s, &handle) || !idmap_get(&s->cards, handle, &card))
        return false;
    park_begin(s);
    parked = park_end(s, rm_card_park_if_busy(s->srv->rm, card, &s->park, park_fired), NULL);
    if (parked)
        log_trace(ipc, "client %llu: TRANSMIT parked on arrival, its reader is busy",
                  (unsigned long long)s->id);
    return parked;
}

/* A request a worker took from a lingering session: park it if its reader is busy, else run it
 * on this worker after the current job. */
static void park_or_defer(struct session *s)
{
    s->job.fn = request_job;
    if (!park_early(s))
        srv_pool_defer(&s->srv->pool, &s->job);
}

void session_submit(struct session *s, uint8_t *msg, size_t len)
{
    s->job_msg = msg;
    s->job_len = len;
    scrm_mutex_lock(&s->lock);
    s->busy = true;
    session_rearm(s);
    scrm_mutex_unlock(&s->lock);
    s->job.fn = request_job;
    if (park_early(s))
        return;
    if (stream_request(s))
        srv_pool_submit_new(&s->srv->pool, &s->job);
    else
        srv_pool_submit(&s->srv->pool, &s->job);
}

/* Read what the socket has, message by message (loop thread): at most one complete message, and
 * at most SRV_READ_BUDGET bytes of a large one, per wake-up, so that a client streaming a large
 * request (a 4 096-entry status-change wait is 565 KB) does not keep the loop from the others for
 * the time it takes to send it all; level-triggered epoll brings the loop back for the rest. */
static void read_input(struct session *s)
{
    size_t budget = SRV_READ_BUDGET;

    for (;;) {
        const uint8_t *msg;
        const char *why = NULL;
        size_t want, len;
        uint8_t *p;
        ssize_t n;
        enum ipc_rx_result r;

        ipc_rx_space(&s->rx, &p, &want);
        n = recv(s->fd, p, want, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (ipc_rx_partial(&s->rx))
                session_close(s, "connection ended inside a message (truncated)", true);
            else
                session_close(s, n == 0 ? "disconnected" : strerror(errno), false);
            return;
        }
        budget = (size_t)n < budget ? budget - (size_t)n : 0;
        r = ipc_rx_advance(&s->rx, (size_t)n, &msg, &len, &why);
        if (r == IPC_RX_ERROR) {
            session_close(s, why, true);
            return;
        }
        if (r == IPC_RX_MESSAGE) {
            /* One message per wake-up: a client that streams requests cannot keep the loop
             * thread to itself; level-triggered epoll brings it back for the rest. */
            (void)dispatch(s, msg, len);
            return;
        }
        if (budget == 0)
            return;
    }
}

void session_event(struct session *s, uint32_t events)
{
    bool busy, out_pending;

    scrm_mutex_lock(&s->lock);
    if (s->closing) {
        scrm_mutex_unlock(&s->lock);
        return;
    }
    if (events & EPOLLOUT) {
        flush_out(s);
        session_rearm(s);
    }
    busy = s->busy;
    out_pending = s->out_len > s->out_off;
    scrm_mutex_unlock(&s->lock);

    if ((events & EPOLLIN) && !busy && !out_pending) {
        if (s->front == SRV_FRONT_PCSCLITE)
            pcl_read_input(s);
        else
            read_input(s);
        srv_deadline_update(s->srv, s);
    } else if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
        bool partial =
            s->front == SRV_FRONT_PCSCLITE ? pcl_session_partial(s) : ipc_rx_partial(&s->rx);
        session_close(s, partial ? "connection ended inside a message (truncated)" : "disconnected",
                      partial);
    }
}
