/*
 * The server's command handlers: one small function per IPC command, and the dispatch table
 * {command, how it runs, request size, handler} generated from IPC_COMMAND_LIST, so a command
 * added to the protocol does not compile until it has a handler and an SRV_RUN_ entry here.
 *
 * Requests reach a handler already checked by ipc_check_request() (sizes, length fields). The
 * card commands only decode and encode: what they do is in server_core.c, shared with the
 * pcsc-lite front end (card handles are the session's own, another client's handle is
 * SCARD_E_INVALID_HANDLE there before the resource manager sees it).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/server_internal.h"
#include "rm/rm.h"

_Static_assert(IPC_RS_UNKNOWN == RM_READER_UNKNOWN && IPC_RS_UNAVAILABLE == RM_READER_UNAVAILABLE &&
                   IPC_RS_EMPTY == RM_READER_EMPTY && IPC_RS_PRESENT == RM_READER_PRESENT &&
                   IPC_RS_EXCLUSIVE == RM_READER_EXCLUSIVE && IPC_RS_INUSE == RM_READER_INUSE &&
                   IPC_RS_MUTE == RM_READER_MUTE && IPC_RS_UNPOWERED == RM_READER_UNPOWERED,
               "wire reader flags are the rm's");
_Static_assert(IPC_S_TX_BUSY == RM_TX_BUSY, "the wire's busy status is the rm's");
_Static_assert(IPC_READER_NAME_MAX == RM_READER_NAME_MAX && IPC_ATR_MAX == RM_ATR_MAX,
               "wire limits are the rm's");

#define HDR sizeof(struct ipc_hdr)

/* ---- Replies ----------------------------------------------------------------------------------
 */

uint8_t *srv_reply_buf(struct session *s, size_t n)
{
    if (s->reply_cap < n) {
        uint8_t *nb = realloc(s->reply, n);
        if (!nb)
            return NULL;
        s->reply = nb;
        s->reply_cap = n;
    }
    return s->reply;
}

/* The request would wait for another handle's transaction (RM_TX_BUSY, only for a client that
 * waits itself): IPC_S_TX_BUSY, the command's fixed reply part zero, the reader's name. */
static void reply_tx_busy(struct session *s, const struct ipc_hdr *req)
{
    const struct ipc_cmd_info *ci = ipc_cmd_info(req->cmd);
    const char *name = rm_thread_busy_reader();
    size_t fixed = ci ? ci->rep_size : 0, nl = strnlen(name, RM_READER_NAME_MAX - 1);
    uint8_t *b = srv_reply_buf(s, HDR + fixed + nl);
    if (!b)
        return;
    struct ipc_hdr h = {.size = (uint32_t)(HDR + fixed + nl),
                        .cmd = req->cmd,
                        .flags = IPC_FLAG_REPLY,
                        .seq = req->seq,
                        .status = IPC_S_TX_BUSY};
    memcpy(b, &h, sizeof h);
    memset(b + HDR, 0, fixed);
    memcpy(b + HDR + fixed, name, nl);
    session_send(s, b, h.size);
}

/* Send the reply already in s->reply (total bytes, header included). */
static void reply_in_place(struct session *s, const struct ipc_hdr *req, uint32_t status,
                           size_t total)
{
    if (status == RM_READER_BUSY) { /* no reply: the request waits for the reader */
        s->park_req = true;
        return;
    }
    if (status == RM_TX_BUSY) {
        reply_tx_busy(s, req);
        return;
    }
    struct ipc_hdr h = {.size = (uint32_t)total,
                        .cmd = req->cmd,
                        .flags = IPC_FLAG_REPLY,
                        .seq = req->seq,
                        .status = status};
    memcpy(s->reply, &h, sizeof h);
    session_send(s, s->reply, total);
}

void srv_reply(struct session *s, const struct ipc_hdr *req, uint32_t status, const void *fixed,
               size_t fixed_len, const void *var, size_t var_len)
{
    size_t total = HDR + fixed_len + var_len;
    uint8_t *b;
    if (status == RM_READER_BUSY) { /* no reply: the request waits for the reader */
        s->park_req = true;
        return;
    }
    if (status == RM_TX_BUSY) {
        reply_tx_busy(s, req);
        return;
    }
    b = total <= IPC_MSG_MAX ? srv_reply_buf(s, total) : NULL;
    if (!b) { /* cannot answer as asked: answer "no memory" without payload */
        static const uint8_t zero[64];
        b = srv_reply_buf(s, HDR + fixed_len);
        if (!b || fixed_len > sizeof zero)
            return;
        memcpy(b + HDR, zero, fixed_len);
        reply_in_place(s, req, SCARD_E_NO_MEMORY, HDR + fixed_len);
        return;
    }
    if (fixed_len)
        memcpy(b + HDR, fixed, fixed_len);
    if (var_len)
        memcpy(b + HDR + fixed_len, var, var_len);
    reply_in_place(s, req, status, total);
}

void srv_reader_state(struct srv *srv, const char *name, struct ipc_reader_state *st)
{
    struct rm_reader_info info;
    memset(st, 0, sizeof *st);
    if (rm_get_reader(srv->rm, name, &info) != SCARD_S_SUCCESS) {
        st->flags = IPC_RS_MISSING;
        return;
    }
    st->flags = info.flags;
    st->counter = info.event_counter;
    st->state = info.state;
    st->protocol = info.protocol;
    st->sharing = info.sharing;
    st->atr_len = info.atr_len <= IPC_ATR_MAX ? (uint32_t)info.atr_len : 0;
    memcpy(st->atr, info.atr, st->atr_len);
}

/* ---- Commands ---------------------------------------------------------------------
 */

typedef void (*srv_handler)(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                            const uint8_t *var, size_t var_len);

static void cmd_HELLO(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                      const uint8_t *var, size_t var_len)
{
    struct ipc_hello_req req;
    struct ipc_hello_rep rep = {.magic = IPC_MAGIC,
                                .major = IPC_VERSION_MAJOR,
                                .minor = IPC_VERSION_MINOR,
                                .max_msg = IPC_MSG_MAX,
                                .server_pid = (uint32_t)s->srv->pid,
                                .client_id = s->id};
    (void)var;
    (void)var_len;
    memcpy(&req, fixed, sizeof req);
    if (req.magic != IPC_MAGIC) {
        session_close(s, "not a scrm client (bad HELLO magic)", true);
        return;
    }
    if (req.major != IPC_VERSION_MAJOR) {
        srv_reply(s, h, SCARD_E_SERVICE_STOPPED, &rep, sizeof rep, NULL, 0);
        log_warn(ipc, "client %llu speaks protocol %u.%u, scrmd %u.%u", (unsigned long long)s->id,
                 req.major, req.minor, IPC_VERSION_MAJOR, IPC_VERSION_MINOR);
        return;
    }
    if (req.minor < rep.minor)
        rep.minor = req.minor;
    s->hello_done = true;
    s->nowait = rep.minor >= 1;
    ipc_rx_set_limit(&s->rx, IPC_MSG_MAX);
    srv_reply(s, h, SCARD_S_SUCCESS, &rep, sizeof rep, NULL, 0);
}

static void cmd_LIST_READERS(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                             const uint8_t *var, size_t var_len)
{
    struct rm_reader_info *list = NULL;
    struct ipc_list_rep rep = {0};
    size_t n = 0, len = 0;
    uint32_t rc;
    char *names = NULL;
    (void)fixed;
    (void)var;
    (void)var_len;

    rep.pnp_counter = rm_reader_events(s->srv->rm);
    rc = rm_list_readers(s->srv->rm, &list, &n);
    for (size_t i = 0; rc == SCARD_S_SUCCESS && i < n; i++)
        len += strlen(list[i].name) + 1;
    if (rc == SCARD_S_SUCCESS && !(names = malloc(len ? len : 1)))
        rc = SCARD_E_NO_MEMORY;
    len = 0;
    for (size_t i = 0; rc == SCARD_S_SUCCESS && i < n; i++) {
        size_t l = strlen(list[i].name) + 1;
        memcpy(names + len, list[i].name, l);
        len += l;
        rep.count++;
    }
    if (rc != SCARD_S_SUCCESS) {
        rep.count = 0;
        len = 0;
    }
    srv_reply(s, h, rc, &rep, sizeof rep, names, len);
    free(names);
    free(list);
}

static void cmd_GET_STATUS_CHANGE(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                                  const uint8_t *var, size_t var_len)
{
    struct ipc_gsc_req req;
    struct ipc_gsc_entry *e;
    struct ipc_reader_state *st;
    struct ipc_gsc_rep rep = {0};

    memcpy(&req, fixed, sizeof req);
    e = calloc(req.count ? req.count : 1, sizeof *e);
    if (!e) {
        srv_reply(s, h, SCARD_E_NO_MEMORY, &rep, sizeof rep, NULL, 0);
        return;
    }
    if (ipc_gsc_decode(var, var_len, req.count, e) < 0) { /* ipc_check_request refused it */
        free(e);
        srv_reply(s, h, SCARD_F_INTERNAL_ERROR, &rep, sizeof rep, NULL, 0);
        return;
    }
    if (req.flags & IPC_GSC_WAIT) {
        if (session_start_wait(s, h, &req, e) < 0) {
            free(e);
            srv_reply(s, h, SCARD_E_NO_MEMORY, &rep, sizeof rep, NULL, 0);
        }
        return;
    }
    st = calloc(req.count ? req.count : 1, sizeof *st);
    rep.pnp_counter = rm_reader_events(s->srv->rm);
    if (st) {
        rep.count = req.count;
        for (uint32_t i = 0; i < req.count; i++)
            srv_reader_state(s->srv, e[i].name, &st[i]);
    }
    srv_reply(s, h, st ? SCARD_S_SUCCESS : SCARD_E_NO_MEMORY, &rep, sizeof rep, st,
              st ? req.count * sizeof *st : 0);
    free(st);
    free(e);
}

static void cmd_STOP_WAIT(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                          const uint8_t *var, size_t var_len)
{
    (void)h;
    (void)fixed;
    (void)var;
    (void)var_len;
    session_end_wait(s, SCARD_E_CANCELLED); /* no reply of its own; nothing if no wait */
}

/* ---- Pool commands ----------------------------------------------------------------------------
 */

static void cmd_CONNECT(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                        const uint8_t *var, size_t var_len)
{
    struct ipc_connect_req req;
    struct ipc_connect_rep rep = {0};
    char name[IPC_READER_NAME_MAX];
    uint32_t rc;

    memcpy(&req, fixed, sizeof req);
    memcpy(name, var, var_len);
    name[var_len] = '\0';
    if (memchr(var, '\0', var_len)) /* "Reader 0\0junk" is no reader's name: never reader 0 */
        rc = SCARD_E_UNKNOWN_READER;
    else
        rc = srv_core_connect(s, name, req.share, req.protocols, 0, &rep.card, &rep.protocol);
    srv_reply(s, h, rc, &rep, sizeof rep, NULL, 0);
}

static void cmd_RECONNECT(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                          const uint8_t *var, size_t var_len)
{
    struct ipc_reconnect_req req;
    struct ipc_protocol_rep rep = {0};
    uint32_t rc;
    (void)var;
    (void)var_len;

    memcpy(&req, fixed, sizeof req);
    rc = srv_core_reconnect(s, req.card, req.share, req.protocols, req.init, &rep.protocol);
    srv_reply(s, h, rc, &rep, sizeof rep, NULL, 0);
}

static void cmd_DISCONNECT(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                           const uint8_t *var, size_t var_len)
{
    struct ipc_card_disp_req req;
    struct ipc_none rep = {0};
    (void)var;
    (void)var_len;

    memcpy(&req, fixed, sizeof req);
    srv_reply(s, h, srv_core_disconnect(s, req.card, req.disposition), &rep, sizeof rep, NULL, 0);
}

static void cmd_BEGIN_TRANSACTION(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                                  const uint8_t *var, size_t var_len)
{
    struct ipc_card_req req;
    struct ipc_none rep = {0};
    (void)var;
    (void)var_len;

    memcpy(&req, fixed, sizeof req);
    srv_reply(s, h, srv_core_begin_transaction(s, req.card), &rep, sizeof rep, NULL, 0);
}

static void cmd_END_TRANSACTION(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                                const uint8_t *var, size_t var_len)
{
    struct ipc_card_disp_req req;
    struct ipc_none rep = {0};
    (void)var;
    (void)var_len;

    memcpy(&req, fixed, sizeof req);
    srv_reply(s, h, srv_core_end_transaction(s, req.card, req.disposition), &rep, sizeof rep, NULL,
              0);
}

static void cmd_STATUS(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                       const uint8_t *var, size_t var_len)
{
    struct ipc_card_req req;
    struct ipc_status_rep rep = {0};
    struct rm_card_status st;
    uint32_t rc;
    size_t name_len = 0;
    (void)var;
    (void)var_len;

    memcpy(&req, fixed, sizeof req);
    rc = srv_core_status(s, req.card, &st);
    if (rc == SCARD_S_SUCCESS || rc == SCARD_W_REMOVED_CARD || rc == SCARD_W_RESET_CARD) {
        name_len = strnlen(st.reader, sizeof st.reader - 1);
        rep.state = st.pcsc_state;
        rep.flags = st.flags;
        rep.counter = st.event_counter;
        rep.protocol = st.protocol;
        rep.atr_len = st.atr_len <= IPC_ATR_MAX ? (uint32_t)st.atr_len : 0;
        memcpy(rep.atr, st.atr, rep.atr_len);
        rep.name_len = (uint32_t)name_len;
    }
    srv_reply(s, h, rc, &rep, sizeof rep, st.reader, name_len);
}

static void cmd_TRANSMIT(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                         const uint8_t *var, size_t var_len)
{
    struct ipc_transmit_req req;
    struct ipc_transmit_rep rep = {0};
    size_t off = HDR + sizeof rep, resp_len;
    uint8_t *b = srv_reply_buf(s, off + IPC_DATA_MAX);
    uint32_t rc;

    memcpy(&req, fixed, sizeof req);
    if (!b) {
        srv_reply(s, h, SCARD_E_NO_MEMORY, &rep, sizeof rep, NULL, 0);
        return;
    }
    rc = srv_core_transmit(s, req.card, req.protocol, var, var_len, b + off, IPC_DATA_MAX,
                           req.recv_max, &resp_len, &rep.protocol);
    rep.recv_len = (uint32_t)resp_len;
    memcpy(b + HDR, &rep, sizeof rep);
    reply_in_place(s, h, rc, rc == SCARD_S_SUCCESS ? off + resp_len : off);
}

static void cmd_CONTROL(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                        const uint8_t *var, size_t var_len)
{
    struct ipc_control_req req;
    struct ipc_data_rep rep = {0};
    size_t off = HDR + sizeof rep, out_len;
    uint8_t *b;
    uint32_t rc;

    memcpy(&req, fixed, sizeof req);
    b = srv_reply_buf(s, off + req.recv_max);
    if (!b) {
        srv_reply(s, h, SCARD_E_NO_MEMORY, &rep, sizeof rep, NULL, 0);
        return;
    }
    rc = srv_core_control(s, req.card, req.code, var, var_len, b + off, req.recv_max, &out_len);
    rep.len = (uint32_t)out_len;
    memcpy(b + HDR, &rep, sizeof rep);
    reply_in_place(s, h, rc, rc == SCARD_S_SUCCESS ? off + out_len : off);
}

static void cmd_GET_ATTRIB(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                           const uint8_t *var, size_t var_len)
{
    struct ipc_getattr_req req;
    struct ipc_data_rep rep = {0};
    size_t off = HDR + sizeof rep, out_len;
    uint8_t *b;
    uint32_t rc;
    (void)var;
    (void)var_len;

    memcpy(&req, fixed, sizeof req);
    b = srv_reply_buf(s, off + req.recv_max);
    if (!b) {
        srv_reply(s, h, SCARD_E_NO_MEMORY, &rep, sizeof rep, NULL, 0);
        return;
    }
    rc = srv_core_get_attrib(s, req.card, req.attr, b + off, req.recv_max, &out_len);
    rep.len = (uint32_t)out_len;
    memcpy(b + HDR, &rep, sizeof rep);
    reply_in_place(s, h, rc, rc == SCARD_S_SUCCESS ? off + out_len : off);
}

static void cmd_SET_ATTRIB(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                           const uint8_t *var, size_t var_len)
{
    struct ipc_setattr_req req;
    struct ipc_none rep = {0};

    memcpy(&req, fixed, sizeof req);
    srv_reply(s, h, srv_core_set_attrib(s, req.card, req.attr, var, var_len), &rep, sizeof rep,
              NULL, 0);
}

static void cmd_WAIT_TX(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                        const uint8_t *var, size_t var_len)
{
    char name[IPC_READER_NAME_MAX];
    (void)fixed;
    memcpy(name, var, var_len);
    name[var_len] = '\0';
    session_start_tx_wait(s, h, name);
}

/* ---- Dispatch table ---------------------------------------------------------------------------
 */

/* Where each command runs: the loop thread for what is quick and bounded by the message; the
 * status-change commands on the pool, since a wait costs O(its entries); the requests that open
 * a card or carry its APDUs on the pool as a stream's start (a new thread when the loop thread
 * read them: server_pool.c). */
#define SRV_RUN_HELLO             SRV_LOOP
#define SRV_RUN_LIST_READERS      SRV_LOOP
#define SRV_RUN_GET_STATUS_CHANGE SRV_POOL
#define SRV_RUN_STOP_WAIT         SRV_POOL
#define SRV_RUN_CONNECT           SRV_STREAM
#define SRV_RUN_RECONNECT         SRV_STREAM
#define SRV_RUN_DISCONNECT        SRV_POOL
#define SRV_RUN_BEGIN_TRANSACTION SRV_POOL
#define SRV_RUN_END_TRANSACTION   SRV_POOL
#define SRV_RUN_STATUS            SRV_POOL
#define SRV_RUN_TRANSMIT          SRV_STREAM
#define SRV_RUN_CONTROL           SRV_STREAM
#define SRV_RUN_GET_ATTRIB        SRV_POOL
#define SRV_RUN_SET_ATTRIB        SRV_POOL
#define SRV_RUN_WAIT_TX           SRV_POOL
#define SRV_RUN_READER_ADD        SRV_POOL
#define SRV_RUN_READER_REMOVE     SRV_POOL
#define SRV_RUN_SPY               SRV_LOOP

struct srv_cmd {
    uint16_t cmd;
    enum srv_run run;
    uint32_t req_size;
    srv_handler fn;
};

static const struct srv_cmd cmd_table[IPC_CMD_LIMIT] = {
#define SRV_X_CMD(name, code, req, var, rep) \
    [code] = {IPC_CMD_##name, SRV_RUN_##name, (uint32_t)sizeof(struct req), cmd_##name},
    IPC_COMMAND_LIST(SRV_X_CMD)
#undef SRV_X_CMD
};

int srv_cmd_run(uint16_t cmd)
{
    if (cmd >= IPC_CMD_LIMIT || !cmd_table[cmd].fn)
        return -1;
    return (int)cmd_table[cmd].run;
}

void srv_cmd_exec(struct session *s, const uint8_t *msg, size_t len)
{
    struct ipc_hdr h;
    const struct srv_cmd *c;

    memcpy(&h, msg, sizeof h);
    c = &cmd_table[h.cmd];
    log_trace(ipc, "client %llu: %s (%zu bytes)", (unsigned long long)s->id, ipc_cmd_name(h.cmd),
              len);
    c->fn(s, &h, msg + HDR, msg + HDR + c->req_size, len - HDR - c->req_size);
}
