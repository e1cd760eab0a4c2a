/*
 * scrmd's second front end: pcsc-lite's own socket protocol (4:4, 4:5, 4:6; pcsclite_wire.h), so
 * the libpcsclite.so.1 of a distribution, a Flatpak runtime or a container talks to scrmd as it
 * would to pcscd. A connection on the pcsc-lite listener is an ordinary session of the server
 * (same accept path, peer credentials, group check, quotas, pool, output and teardown); only the
 * decoding and encoding differ, and every card command goes to server_core.c like scrm's own.
 *
 * pcsc-lite semantics kept here:
 *   - One context per connection: ESTABLISH gives a random hContext in 1..0x7FFFFFFF; hCard
 *     handles are random in the same range (hCard is an int32 on the wire). A request naming a
 *     card handle this connection does not own ends the connection, as pcscd does (no reply).
 *   - The client builds SCardListReaders, SCardStatus and SCardGetStatusChange from the
 *     reader-state array (CMD_GET_READERS_STATE): 16 entries for 4:4 / 4:5, as many as there are
 *     readers for 4:6 (CMD_GET_READERS_STATE_SIZE, then _ARRAY). With more than 16 readers a 4:4 /
 *     4:5 client sees the first 16 in registration order; the daemon logs a warning each time the
 *     number of readers past 16 changes.
 *   - Events: CMD_WAIT_READER_STATE_CHANGE registers the connection and answers the array at
 *     once; the first change of any reader (card event, sharing, arrival, departure) then sends
 *     exactly one 8-byte {0, 0} and unregisters. STOP answers {0, 0} only while registered.
 *     SCARD_CANCEL arrives on a connection of its own, without handshake: the waiting context gets
 *     {0, SCARD_E_CANCELLED}, the canceller {hContext, 0}. Deliberate difference: only a peer with
 *     the waiting client's uid (or root) can cancel it.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/pcsclite_wire.h"
#include "daemon/server_internal.h"
#include "rm/rm.h"

#define PCL_HANDLE_LIMIT 0x80000000u /* handles in 1..0x7FFFFFFF */

struct pcl_session {
    struct pcl_rx rx;    /* loop thread */
    int minor;           /* negotiated minor version (4 until CMD_VERSION says otherwise) */
    atomic_uint context; /* hContext of this connection, 0 before ESTABLISH / after RELEASE */
    uint32_t array_size; /* entries of the last CMD_GET_READERS_STATE_SIZE answer (4:6), 0: none */
    /* A request is partly received: kept by whoever has the receiver (the loop thread, or the
     * worker in pcl_take_ready), read by the loop thread's deadlines at any time. */
    atomic_bool partial;
    /* A request that waits for another handle's transaction, parked instead of holding a worker:
     * the message and a watch on the reader, set by the worker that has the session before it
     * sets `parked`; taken back by the loop thread (when the watch fires while the session is not
     * busy), by the worker (in job_done, when it fired while busy), or by the teardown. */
    atomic_bool parked;
    uint8_t *parked_msg;
    size_t parked_len;
    struct rm_watch *tx_watch;
    char tx_reader[RM_READER_NAME_MAX]; /* whose transaction it waits for */
    /* 4:6: WAIT registered and the client has not fetched the table yet (it sends STATE_SIZE
     * and STATE_ARRAY right after WAIT); an event meanwhile is signalled after the ARRAY answer,
     * not between the answers the client is reading. Loop thread only. */
    bool fetching, event_due;
};

int pcl_session_init(struct session *s)
{
    s->pcl = calloc(1, sizeof *s->pcl);
    if (!s->pcl)
        return -1;
    pcl_rx_init(&s->pcl->rx);
    s->pcl->minor = PCL_VERSION_MINOR_MIN;
    atomic_init(&s->pcl->context, 0);
    atomic_init(&s->pcl->partial, false);
    atomic_init(&s->pcl->parked, false);
    /* pcscd's clients expect the daemon to wait for a transaction; scrmd waits with an event
     * (RM_TX_BUSY, then a parked request), never with a worker thread. */
    s->nowait = true;
    return 0;
}

void pcl_session_free(struct session *s)
{
    if (!s->pcl)
        return;
    pcl_rx_free(&s->pcl->rx);
    free(s->pcl->parked_msg); /* the teardown unwatched it (pcl_unpark) */
    free(s->pcl);
    s->pcl = NULL;
}

bool pcl_session_partial(const struct session *s)
{
    return atomic_load(&s->pcl->partial);
}

/* After the receiver changed. */
static void note_partial(struct session *s)
{
    atomic_store(&s->pcl->partial, pcl_rx_partial(&s->pcl->rx));
}

/* ---- Reader-state array -----------------------------------------------------------------------
 */

/* Send the array: `slots` entries, or as many as there are readers when slots is 0. */
static void send_reader_states(struct session *s, uint32_t slots)
{
    struct rm_reader_info *list = NULL;
    struct pcl_reader_state *arr;
    size_t n = 0, count;

    if (rm_list_readers(s->srv->rm, &list, &n) != SCARD_S_SUCCESS)
        n = 0; /* out of memory: an empty table rather than no answer */
    count = slots ? slots : n;
    if (slots == PCL_FIXED_READERS && n > PCL_FIXED_READERS &&
        atomic_exchange(&s->srv->pcl_past_16, (unsigned)n) != n) {
        log_warn(ipc,
                 "%zu readers: pcsc-lite clients of protocol 4:4 / 4:5 see the first %d only "
                 "(their reader table has 16 entries); 4:6 clients and scrm's own see all",
                 n, PCL_FIXED_READERS);
    }
    arr = (struct pcl_reader_state *)srv_reply_buf(s, (count ? count : 1) * sizeof *arr);
    if (!arr) {
        free(list);
        shutdown(s->fd, SHUT_RDWR); /* cannot answer with the size the client expects */
        return;
    }
    for (size_t i = 0; i < count; i++) {
        const struct rm_reader_info *r = i < n ? &list[i] : NULL;
        if (r)
            pcl_reader_state_fill(&arr[i], r->name, r->pcsc_state, r->event_counter, r->sharing,
                                  r->atr, r->atr_len, r->protocol);
        else
            pcl_reader_state_fill(&arr[i], NULL, 0, 0, 0, NULL, 0, 0);
    }
    free(list);
    session_send(s, (const uint8_t *)arr, count * sizeof *arr);
}

/* ---- Events -----------------------------------------------------------------------------------
 */

static void send_wait_reply(struct session *s, uint32_t rv)
{
    struct pcl_wait w = {.timeout = 0, .rv = rv};
    session_send(s, (const uint8_t *)&w, sizeof w);
}

/* A watched reader changed (loop thread): signal once and unregister. */
void pcl_wait_fired(struct session *s)
{
    if (atomic_load(&s->pcl->parked)) { /* a transaction was released: run the request again */
        bool busy, closing;
        scrm_mutex_lock(&s->lock);
        closing = s->closing;
        busy = s->busy;
        if (!closing && busy) /* the worker that has the session runs it before letting go */
            s->wait_dirty = true;
        scrm_mutex_unlock(&s->lock);
        if (!closing && !busy && pcl_unpark_job(s))
            session_submit(s, s->job_msg, s->job_len);
    }
    if (!s->wait || s->closing)
        return;
    if (s->pcl->fetching) { /* signalled after the table (4:6) */
        s->pcl->event_due = true;
        return;
    }
    session_free_wait(s);
    send_wait_reply(s, SCARD_S_SUCCESS);
    scrm_mutex_lock(&s->lock);
    session_rearm(s);
    scrm_mutex_unlock(&s->lock);
}

/* Register for events: watch every reader and the reader list. Up to 4:5 the answer is the
 * 16-entry array; a 4:6 client (pcsc-lite 2.5) gets no answer: it fetches the table itself with
 * CMD_GET_READERS_STATE_SIZE and _ARRAY right after the WAIT. */
static void start_wait(struct session *s)
{
    if (s->wait) /* a second WAIT without STOP: keep one registration, as pcscd's list does */
        session_free_wait(s);
    if (session_watch_all(s) < 0)
        log_warn(ipc, "client %llu: cannot watch the readers (out of memory)",
                 (unsigned long long)s->id);
    if (s->pcl->minor < 6)
        send_reader_states(s, PCL_FIXED_READERS);
    else
        s->pcl->fetching = true;
    s->pcl->event_due = false;
}

/* ---- Loop-thread commands ---------------------------------------------------------------------
 */

static uint32_t new_context(struct srv *srv)
{
    for (;;) {
        uint32_t c = (uint32_t)(idmap_random_id() % PCL_HANDLE_LIMIT);
        struct session *o;
        LIST_FOREACH(o, &srv->sessions, link)
            if (o->pcl && atomic_load(&o->pcl->context) == c)
                break;
        if (c != 0 && !o)
            return c;
    }
}

static void cmd_version(struct session *s, const uint8_t *body)
{
    struct pcl_version v;
    memcpy(&v, body, sizeof v);
    if (v.major == PCL_VERSION_MAJOR && v.minor >= PCL_VERSION_MINOR_MIN &&
        v.minor <= PCL_VERSION_MINOR) {
        s->pcl->minor = v.minor;
        v.rv = SCARD_S_SUCCESS;
    } else {
        log_warn(
            ipc,
            "client %llu (pid %ld) speaks pcsc-lite protocol %d:%d; scrmd serves %d:%d to %d:%d",
            (unsigned long long)s->id, (long)s->pid, v.major, v.minor, PCL_VERSION_MAJOR,
            PCL_VERSION_MINOR_MIN, PCL_VERSION_MAJOR, PCL_VERSION_MINOR);
        v.major = PCL_VERSION_MAJOR;
        v.minor = PCL_VERSION_MINOR;
        v.rv = SCARD_E_SERVICE_STOPPED;
    }
    session_send(s, (const uint8_t *)&v, sizeof v);
}

static void cmd_establish(struct session *s, const uint8_t *body)
{
    struct pcl_establish e;
    memcpy(&e, body, sizeof e);
    if (e.scope > 3) { /* SCARD_SCOPE_USER .. SCARD_SCOPE_GLOBAL */
        e.context = 0;
        e.rv = SCARD_E_INVALID_VALUE;
    } else {
        e.context = new_context(s->srv);
        atomic_store(&s->pcl->context, e.context);
        e.rv = SCARD_S_SUCCESS;
    }
    session_send(s, (const uint8_t *)&e, sizeof e);
}

static void cmd_cancel(struct session *s, const uint8_t *body)
{
    struct pcl_cancel c;
    struct session *t = NULL;

    memcpy(&c, body, sizeof c);
    c.rv = SCARD_E_INVALID_HANDLE;
    if (c.context != 0)
        LIST_FOREACH(t, &s->srv->sessions, link)
            if (t->pcl && atomic_load(&t->pcl->context) == (uint32_t)c.context)
                break;
    if (t && s->uid != 0 && t->uid != s->uid) {
        log_warn(ipc, "client %llu (uid %ld): SCardCancel of another user's context refused",
                 (unsigned long long)s->id, (long)s->uid);
        t = NULL;
    }
    if (t) {
        c.rv = SCARD_S_SUCCESS;
        if (t->wait) { /* only a waiting context is signalled */
            session_free_wait(t);
            send_wait_reply(t, SCARD_E_CANCELLED);
            scrm_mutex_lock(&t->lock);
            session_rearm(t);
            scrm_mutex_unlock(&t->lock);
        }
    }
    session_send(s, (const uint8_t *)&c, sizeof c);
}

/* The READ commands: the readers' state only, so the loop thread or the worker that has the
 * session may answer them. */
static void exec_read(struct session *s, uint32_t cmd)
{
    switch (cmd) {
    case PCL_CMD_GET_READERS_STATE: send_reader_states(s, PCL_FIXED_READERS); break;
    case PCL_CMD_GET_READER_EVENTS: {
        /* pcscd's counter starts at 1 and is an int16 in the client's notification word */
        struct pcl_reader_events ev = {
            .events = (int32_t)((rm_reader_events(s->srv->rm) + 1u) & 0x7FFFu), .rv = 0};
        session_send(s, (const uint8_t *)&ev, sizeof ev);
        break;
    }
    case PCL_CMD_GET_READERS_STATE_SIZE: {
        struct rm_reader_info *list = NULL;
        size_t n = 0;
        int32_t size;
        if (rm_list_readers(s->srv->rm, &list, &n) != SCARD_S_SUCCESS)
            n = 0;
        free(list);
        s->pcl->array_size = (uint32_t)n;
        size = (int32_t)n;
        session_send(s, (const uint8_t *)&size, sizeof size);
        break;
    }
    case PCL_CMD_GET_READERS_STATE_ARRAY:
        send_reader_states(s, s->pcl->array_size ? s->pcl->array_size : PCL_FIXED_READERS);
        break;
    default: break;
    }
}

static void exec_loop(struct session *s, uint32_t cmd, const uint8_t *body)
{
    switch (cmd) {
    case PCL_CMD_VERSION: cmd_version(s, body); break;
    case PCL_CMD_ESTABLISH_CONTEXT: cmd_establish(s, body); break;
    case PCL_CMD_CANCEL: cmd_cancel(s, body); break;
    case PCL_CMD_WAIT_READER_STATE_CHANGE: start_wait(s); break;
    case PCL_CMD_GET_READERS_STATE_ARRAY:
        exec_read(s, cmd);
        if (s->pcl->fetching) { /* 4:6: the table is out; a change meanwhile is signalled now */
            s->pcl->fetching = false;
            if (s->pcl->event_due && s->wait) {
                s->pcl->event_due = false;
                session_free_wait(s);
                send_wait_reply(s, SCARD_S_SUCCESS);
            }
        }
        break;
    case PCL_CMD_STOP_WAITING_READER_STATE_CHANGE:
        s->pcl->fetching = false;
        if (s->wait) { /* a reply only while registered: one 8-byte message per WAIT */
            session_free_wait(s);
            send_wait_reply(s, SCARD_S_SUCCESS);
        }
        break;
    default: exec_read(s, cmd); break;
    }
}

/* ---- Pool commands ----------------------------------------------------------------------------
 */

/* A request names a card handle this connection does not own: end the connection like pcscd. */
static bool foreign_card(struct session *s, int32_t card, uint32_t cmd)
{
    if (srv_core_has_card(s, (uint64_t)(uint32_t)card))
        return false;
    log_warn(ipc,
             "client %llu (pid %ld, uid %ld): %s with a card handle it does not own; "
             "disconnecting",
             (unsigned long long)s->id, (long)s->pid, (long)s->uid, pcl_cmd_name(cmd));
    shutdown(s->fd, SHUT_RDWR);
    return true;
}

static uint64_t card_handle(int32_t card)
{
    return (uint64_t)(uint32_t)card;
}

bool pcl_request_card(const uint8_t *msg, size_t len, uint64_t *handle)
{
    struct pcl_hdr h;
    struct pcl_transmit t;
    if (len < sizeof h + sizeof t)
        return false;
    memcpy(&h, msg, sizeof h);
    if (h.command != PCL_CMD_TRANSMIT)
        return false;
    memcpy(&t, msg + sizeof h, sizeof t);
    *handle = card_handle(t.card);
    return true;
}

bool pcl_stream_request(const uint8_t *msg, size_t len)
{
    struct pcl_hdr h;
    if (len < sizeof h)
        return false;
    memcpy(&h, msg, sizeof h);
    return pcl_cmd_run(h.command) == PCL_RUN_STREAM;
}

static void send_struct(struct session *s, const void *p, size_t n)
{
    session_send(s, p, n);
}

/* RELEASE: close the context's cards (srv_core_close_all), then forget the context. */
static uint32_t release_context(struct session *s, uint32_t context)
{
    if (atomic_load(&s->pcl->context) == 0)
        return SCARD_E_INVALID_HANDLE;
    if (atomic_load(&s->pcl->context) != context)
        return SCARD_E_INVALID_VALUE;
    srv_core_close_all(s);
    atomic_store(&s->pcl->context, 0);
    return SCARD_S_SUCCESS;
}

/* The pool commands return RM_TX_BUSY or RM_READER_BUSY, having sent nothing, when the request
 * has to wait for another handle's transaction or for its reader, busy with another request (see
 * pcl_exec); anything else once the reply is sent or the connection dropped. */
#define BUSY_OR(rc)                                       \
    do {                                                  \
        if ((rc) == RM_TX_BUSY || (rc) == RM_READER_BUSY) \
            return (rc);                                  \
    } while (0)

static uint32_t exec_transmit(struct session *s, const uint8_t *body, const uint8_t *apdu)
{
    struct pcl_transmit t;
    size_t len;
    uint32_t proto = 0;
    uint8_t *b = srv_reply_buf(s, sizeof t + PCL_MAX_BUFFER_EXT);

    memcpy(&t, body, sizeof t);
    if (foreign_card(s, t.card, PCL_CMD_TRANSMIT))
        return SCARD_E_INVALID_HANDLE;
    if (!b) {
        t.rv = SCARD_E_NO_MEMORY;
        t.recv_length = 0;
        send_struct(s, &t, sizeof t);
        return t.rv;
    }
    t.rv = srv_core_transmit(s, card_handle(t.card), t.send_pci_protocol, apdu, t.send_length,
                             b + sizeof t, PCL_MAX_BUFFER_EXT, t.recv_length, &len, &proto);
    BUSY_OR(t.rv);
    if (proto)
        t.recv_pci_protocol = proto;
    t.recv_length = (uint32_t)len;
    memcpy(b, &t, sizeof t);
    session_send(s, b, sizeof t + (t.rv == SCARD_S_SUCCESS ? len : 0));
    return t.rv;
}

static uint32_t exec_control(struct session *s, const uint8_t *body, const uint8_t *in)
{
    struct pcl_control c;
    size_t len;
    uint8_t *b = srv_reply_buf(s, sizeof c + PCL_MAX_BUFFER_EXT);

    memcpy(&c, body, sizeof c);
    if (foreign_card(s, c.card, PCL_CMD_CONTROL))
        return SCARD_E_INVALID_HANDLE;
    if (!b) {
        c.rv = SCARD_E_NO_MEMORY;
        c.returned = 0;
        send_struct(s, &c, sizeof c);
        return c.rv;
    }
    /* pcscd offers the driver its whole buffer and compares with the client's afterwards */
    c.rv = srv_core_control(s, card_handle(c.card), c.code, in, c.send_length, b + sizeof c,
                            PCL_MAX_BUFFER_EXT, &len);
    BUSY_OR(c.rv);
    if (c.rv == SCARD_S_SUCCESS && len > c.recv_length)
        c.rv = SCARD_E_INSUFFICIENT_BUFFER;
    c.returned = (uint32_t)len;
    memcpy(b, &c, sizeof c);
    session_send(s, b, sizeof c + (c.rv == SCARD_S_SUCCESS ? len : 0));
    return c.rv;
}

static uint32_t exec_getset(struct session *s, uint32_t cmd, const uint8_t *body)
{
    struct pcl_getset g;
    memcpy(&g, body, sizeof g);
    if (foreign_card(s, g.card, cmd))
        return SCARD_E_INVALID_HANDLE;
    if (g.length > sizeof g.value) {
        log_warn(ipc,
                 "client %llu: attribute length %u larger than pcsc-lite's buffer; "
                 "disconnecting",
                 (unsigned long long)s->id, g.length);
        shutdown(s->fd, SHUT_RDWR);
        return SCARD_E_INVALID_PARAMETER;
    }
    if (cmd == PCL_CMD_GET_ATTRIB) {
        size_t len = 0;
        g.rv = srv_core_get_attrib(s, card_handle(g.card), g.attr, g.value, g.length, &len);
        g.length = (uint32_t)len;
    } else {
        g.rv = srv_core_set_attrib(s, card_handle(g.card), g.attr, g.value, g.length);
    }
    BUSY_OR(g.rv);
    send_struct(s, &g, sizeof g);
    return g.rv;
}

static uint32_t exec_connect(struct session *s, const uint8_t *body)
{
    struct pcl_connect c;
    uint64_t handle = 0;
    memcpy(&c, body, sizeof c);
    c.reader[sizeof c.reader - 1] = '\0';
    if (atomic_load(&s->pcl->context) == 0 || c.context != atomic_load(&s->pcl->context)) {
        c.rv = SCARD_E_INVALID_HANDLE;
        c.active = 0;
    } else {
        c.rv = srv_core_connect(s, c.reader, c.share, c.preferred, PCL_HANDLE_LIMIT, &handle,
                                &c.active);
        BUSY_OR(c.rv);
    }
    c.card = (int32_t)(uint32_t)handle;
    send_struct(s, &c, sizeof c);
    return c.rv;
}

/* One pool command: RM_TX_BUSY (nothing sent) or its reply sent. */
static uint32_t exec_pool(struct session *s, uint32_t cmd, const uint8_t *body)
{
    switch (cmd) {
    case PCL_CMD_RELEASE_CONTEXT: {
        struct pcl_release r;
        memcpy(&r, body, sizeof r);
        r.rv = release_context(s, r.context);
        send_struct(s, &r, sizeof r);
        return r.rv;
    }
    case PCL_CMD_CONNECT: return exec_connect(s, body);
    case PCL_CMD_RECONNECT: {
        struct pcl_reconnect r;
        memcpy(&r, body, sizeof r);
        if (foreign_card(s, r.card, cmd))
            return SCARD_E_INVALID_HANDLE;
        r.active = 0;
        r.rv = srv_core_reconnect(s, card_handle(r.card), r.share, r.preferred, r.init, &r.active);
        BUSY_OR(r.rv);
        send_struct(s, &r, sizeof r);
        return r.rv;
    }
    case PCL_CMD_DISCONNECT:
    case PCL_CMD_END_TRANSACTION: {
        struct pcl_card_disp d;
        memcpy(&d, body, sizeof d);
        if (foreign_card(s, d.card, cmd))
            return SCARD_E_INVALID_HANDLE;
        d.rv = cmd == PCL_CMD_DISCONNECT
                   ? srv_core_disconnect(s, card_handle(d.card), d.disposition)
                   : srv_core_end_transaction(s, card_handle(d.card), d.disposition);
        BUSY_OR(d.rv);
        send_struct(s, &d, sizeof d);
        return d.rv;
    }
    case PCL_CMD_BEGIN_TRANSACTION:
    case PCL_CMD_STATUS: {
        struct pcl_card c;
        memcpy(&c, body, sizeof c);
        if (foreign_card(s, c.card, cmd))
            return SCARD_E_INVALID_HANDLE;
        if (cmd == PCL_CMD_BEGIN_TRANSACTION) {
            c.rv = srv_core_begin_transaction(s, card_handle(c.card));
        } else {
            struct rm_card_status st;
            c.rv = srv_core_status(s, card_handle(c.card), &st);
        }
        BUSY_OR(c.rv);
        send_struct(s, &c, sizeof c);
        return c.rv;
    }
    case PCL_CMD_TRANSMIT: return exec_transmit(s, body, body + sizeof(struct pcl_transmit));
    case PCL_CMD_CONTROL: return exec_control(s, body, body + sizeof(struct pcl_control));
    case PCL_CMD_GET_ATTRIB:
    case PCL_CMD_SET_ATTRIB: return exec_getset(s, cmd, body);
    default: return SCARD_S_SUCCESS;
    }
}

/* ---- Requests waiting for a transaction -------------------------------------------------------
 */

/* Take the parked request back (its watch ended); NULL if none. The thread that has the session
 * (see struct pcl_session). */
static uint8_t *unpark(struct session *s, size_t *len)
{
    struct pcl_session *p = s->pcl;
    uint8_t *msg = p->parked_msg;

    if (!atomic_load(&p->parked))
        return NULL;
    rm_unwatch(s->srv->rm, p->tx_watch);
    p->tx_watch = NULL;
    p->parked_msg = NULL;
    *len = p->parked_len;
    atomic_store(&p->parked, false);
    return msg;
}

/* The request s->job_msg was told RM_TX_BUSY: park it with a watch on the reader whose
 * transaction it waits for (watch first, then test, so no release is missed). False if the
 * transaction is free again by now (retry at once). Out of memory for the watch: the request
 * waits on this worker, as it did before transaction waits were events. */
static bool park(struct session *s)
{
    struct pcl_session *p = s->pcl;
    const char *reader = rm_thread_busy_reader();
    size_t len;

    snprintf(p->tx_reader, sizeof p->tx_reader, "%s", reader);
    p->tx_watch = session_watch_reader(s, p->tx_reader);
    if (!p->tx_watch) {
        log_warn(ipc, "client %llu: out of memory for a transaction wait; waiting on a worker",
                 (unsigned long long)s->id);
        rm_thread_nowait(false);
        return false;
    }
    p->parked_msg = s->job_msg;
    p->parked_len = s->job_len;
    s->job_msg = NULL;
    atomic_store(&p->parked, true);
    log_debug(ipc, "client %llu: waits for the transaction on '%s' (no thread held)",
              (unsigned long long)s->id, reader);
    if (!rm_reader_tx_free(s->srv->rm, reader))
        return true;
    s->job_msg = unpark(s, &len);
    return false;
}

bool pcl_session_parked(const struct session *s)
{
    return s->pcl && atomic_load(&s->pcl->parked);
}

bool pcl_unpark_job(struct session *s)
{
    size_t len = 0;
    uint8_t *msg;

    /* Any change of the reader fires the watch (a retry of another waiter too): run the request
     * again only once the transaction is free, or the waiters would wake each other forever. */
    if (!atomic_load(&s->pcl->parked) || !rm_reader_tx_free(s->srv->rm, s->pcl->tx_reader))
        return false;
    msg = unpark(s, &len);
    if (!msg)
        return false;
    s->job_msg = msg;
    s->job_len = len;
    return true;
}

void pcl_session_end(struct session *s)
{
    size_t len;
    if (s->pcl)
        free(unpark(s, &len));
}

void pcl_exec(struct session *s, const uint8_t *msg, size_t len)
{
    struct pcl_hdr h;
    const uint8_t *body = msg + sizeof h;

    memcpy(&h, msg, sizeof h);
    log_trace(ipc, "client %llu: pcsc-lite %s (%zu bytes)", (unsigned long long)s->id,
              pcl_cmd_name(h.command), len);
    scrm_assert(msg == s->job_msg);
    if (pcl_cmd_run(h.command) == PCL_RUN_READ) { /* taken by the worker's linger */
        exec_read(s, h.command);
        return;
    }
    for (;;) {
        uint32_t rc = exec_pool(s, h.command, body);
        if (rc == RM_READER_BUSY) { /* request_job parks it on the reader (the rm wakes it) */
            s->park_req = true;
            break;
        }
        if (rc != RM_TX_BUSY)
            break;
        if (park(s))
            return; /* s->job_msg is the parked request now: answered when it runs again */
    }
    rm_thread_nowait(s->nowait);
}

/*
 * A lingering pcsc-lite session (server_session.c, "Lingering"): the client writes header, body
 * and send buffer with separate send() calls. When the next request is one for the pool or a
 * READ command (the reader table SCardStatus and SCardGetStatusChange fetch first), the worker
 * reads what has come into the session's receiver, which the loop thread does not touch while
 * the session is busy; a part stays there until the rest comes (the worker's next ppoll waits
 * for bytes not yet read, so nothing spins), or the loop thread goes on with it. A request for
 * the loop thread is left in the socket.
 */
enum srv_take pcl_take_ready(struct session *s)
{
    struct pcl_hdr h = {0};
    bool ok;

    if (atomic_load(&s->pcl->parked))
        return SRV_TAKE_OTHER;
    if (!pcl_rx_partial(&s->pcl->rx)) {
        ssize_t n = recv(s->fd, &h, sizeof h, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return SRV_TAKE_NONE;
        if (n != (ssize_t)sizeof h ||
            (!pcl_cmd_pooled(h.command) &&
             (pcl_cmd_run(h.command) != PCL_RUN_READ || s->pcl->minor >= 6)))
            return SRV_TAKE_OTHER; /* not a whole header yet, or the loop thread's command (a
                                    * 4:6 table fetch stays with the loop thread, which orders
                                    * it with the events) */
    }
    for (;;) {
        const uint8_t *msg;
        const char *why = NULL;
        size_t want, len;
        uint8_t *p;
        ssize_t n;
        enum pcl_rx_result r;

        pcl_rx_space(&s->pcl->rx, &p, &want);
        n = recv(s->fd, p, want, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return SRV_TAKE_NONE; /* the rest of a part read is still to come */
        if (n <= 0)
            return SRV_TAKE_OTHER; /* EOF or error: the loop thread sees the hang-up */
        r = pcl_rx_advance(&s->pcl->rx, (size_t)n, &msg, &len, &why);
        note_partial(s);
        if (r == PCL_RX_ERROR) {
            log_warn(ipc, "client %llu (pid %ld, uid %ld): pcsc-lite request: %s",
                     (unsigned long long)s->id, (long)s->pid, (long)s->uid, why);
            shutdown(s->fd, SHUT_RDWR); /* the loop thread closes it */
            return SRV_TAKE_OTHER;
        }
        if (r == PCL_RX_MESSAGE) {
            scrm_mutex_lock(&s->lock);
            ok = !s->closing;
            scrm_mutex_unlock(&s->lock);
            s->job_len = len;
            s->job_msg = pcl_rx_take(&s->pcl->rx);
            note_partial(s);
            if (ok)
                return SRV_TAKE_OK;
            free(s->job_msg);
            s->job_msg = NULL;
            return SRV_TAKE_OTHER;
        }
    }
}

/* ---- Input (loop thread) ----------------------------------------------------------------------
 */

static void dispatch(struct session *s, const uint8_t *msg, size_t len)
{
    struct pcl_hdr h;
    memcpy(&h, msg, sizeof h);
    s->hello_done = true; /* no HELLO here: the first message ends the connect deadline */
    if (!pcl_cmd_pooled(h.command)) { /* LOOP and READ */
        log_trace(ipc, "client %llu: pcsc-lite %s", (unsigned long long)s->id,
                  pcl_cmd_name(h.command));
        exec_loop(s, h.command, msg + sizeof h);
        pcl_rx_next(&s->pcl->rx);
        note_partial(s);
        scrm_mutex_lock(&s->lock);
        if (s->out_len > s->out_off)
            session_rearm(s);
        scrm_mutex_unlock(&s->lock);
        return;
    }
    uint8_t *req = pcl_rx_take(&s->pcl->rx);
    note_partial(s); /* before the worker may touch the receiver */
    session_submit(s, req, len);
}

void pcl_read_input(struct session *s)
{
    for (;;) {
        const uint8_t *msg;
        const char *why = NULL;
        size_t want, len;
        uint8_t *p;
        ssize_t n;
        enum pcl_rx_result r;

        pcl_rx_space(&s->pcl->rx, &p, &want);
        n = recv(s->fd, p, want, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (pcl_rx_partial(&s->pcl->rx))
                session_close(s, "connection ended inside a message (truncated)", true);
            else
                session_close(s, n == 0 ? "disconnected" : strerror(errno), false);
            return;
        }
        r = pcl_rx_advance(&s->pcl->rx, (size_t)n, &msg, &len, &why);
        note_partial(s);
        if (r == PCL_RX_ERROR) {
            struct pcl_hdr h;
            memcpy(&h, s->pcl->rx.hdr, sizeof h);
            log_warn(ipc,
                     "client %llu (pid %ld, uid %ld): pcsc-lite command 0x%02x (%s), size %u: %s",
                     (unsigned long long)s->id, (long)s->pid, (long)s->uid, h.command,
                     pcl_cmd_name(h.command), h.size, why);
            session_close(s, why, true);
            return;
        }
        if (r == PCL_RX_MESSAGE) {
            dispatch(s, msg, len); /* one message per wake-up, as for scrm's protocol */
            return;
        }
    }
}

_Static_assert(PCL_SCARD_UNKNOWN == RM_PCSC_UNKNOWN && PCL_SCARD_ABSENT == RM_PCSC_ABSENT &&
                   PCL_SCARD_PRESENT == RM_PCSC_PRESENT &&
                   PCL_SCARD_SWALLOWED == RM_PCSC_SWALLOWED &&
                   PCL_SCARD_POWERED == RM_PCSC_POWERED &&
                   PCL_SCARD_NEGOTIABLE == RM_PCSC_NEGOTIABLE &&
                   PCL_SCARD_SPECIFIC == RM_PCSC_SPECIFIC,
               "the wire's reader state bits are the rm's");
