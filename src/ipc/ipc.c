/*
 * The checks, the incremental receiver and the message builder of scrm's socket protocol (see
 * ipc.h). Everything here is pure except ipc_send_all / ipc_recv_all, so the daemon's decoder can
 * be unit-tested and fuzzed without a socket.
 */
#include "ipc/ipc.h"

#include <errno.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

static const struct ipc_cmd_info cmd_table[IPC_CMD_LIMIT] = {
#define IPC_X_INFO(name, code, req, var, rep) \
    [code] = {#name, (uint32_t)sizeof(struct req), (uint32_t)(var), (uint32_t)sizeof(struct rep)},
    IPC_COMMAND_LIST(IPC_X_INFO)
#undef IPC_X_INFO
};

const struct ipc_cmd_info *ipc_cmd_info(uint32_t cmd)
{
    if (cmd >= IPC_CMD_LIMIT || cmd_table[cmd].name == NULL)
        return NULL;
    return &cmd_table[cmd];
}

const char *ipc_cmd_name(uint32_t cmd)
{
    const struct ipc_cmd_info *ci = ipc_cmd_info(cmd);
    return ci ? ci->name : "?";
}

const char *ipc_check_header(const struct ipc_hdr *h, bool want_reply)
{
    if (h->size < sizeof(struct ipc_hdr))
        return "message shorter than its header";
    if (h->size > IPC_MSG_MAX)
        return "message larger than the protocol allows";
    if (want_reply != ((h->flags & IPC_FLAG_REPLY) != 0))
        return want_reply ? "request where a reply was expected" : "reply flag in a request";
    if ((h->flags & ~IPC_FLAG_REPLY) != 0)
        return "unknown header flags";
    if (!want_reply) {
        /* Known from the header alone: nothing is allocated for an impossible request. */
        const struct ipc_cmd_info *ci = ipc_cmd_info(h->cmd);
        if (!ci)
            return "unknown command";
        if (h->size > sizeof(struct ipc_hdr) + ci->req_size + ci->var_max)
            return "request longer than its command allows";
    }
    return NULL;
}

/* Length fields inside the fixed part must agree with the variable part actually sent. */
static const char *check_lengths(uint32_t cmd, const uint8_t *fixed, size_t var_len)
{
    switch (cmd) {
    case IPC_CMD_CONNECT: {
        struct ipc_connect_req r;
        memcpy(&r, fixed, sizeof r);
        if (r.name_len != var_len || var_len == 0 || var_len >= IPC_READER_NAME_MAX)
            return "bad reader name length";
        return NULL;
    }
    case IPC_CMD_GET_STATUS_CHANGE: {
        struct ipc_gsc_req r;
        memcpy(&r, fixed, sizeof r);
        if (r.count > IPC_GSC_MAX || (r.flags & ~(IPC_GSC_WAIT | IPC_GSC_PNP)) != 0)
            return "bad status-change request";
        if (ipc_gsc_decode(fixed + sizeof r, var_len, r.count, NULL) < 0)
            return "malformed status-change entries";
        return NULL;
    }
    case IPC_CMD_TRANSMIT: {
        struct ipc_transmit_req r;
        memcpy(&r, fixed, sizeof r);
        if (r.send_len != var_len || r.recv_max > IPC_DATA_MAX)
            return "bad transmit lengths";
        return NULL;
    }
    case IPC_CMD_CONTROL: {
        struct ipc_control_req r;
        memcpy(&r, fixed, sizeof r);
        if (r.send_len != var_len || r.recv_max > IPC_DATA_MAX)
            return "bad control lengths";
        return NULL;
    }
    case IPC_CMD_GET_ATTRIB: {
        struct ipc_getattr_req r;
        memcpy(&r, fixed, sizeof r);
        return r.recv_max > IPC_DATA_MAX ? "bad attribute length" : NULL;
    }
    case IPC_CMD_READER_ADD:
    case IPC_CMD_READER_REMOVE: {
        struct ipc_reader_req r;
        memcpy(&r, fixed, sizeof r);
        size_t max = cmd == IPC_CMD_READER_ADD ? IPC_DEVICE_MAX : IPC_READER_NAME_MAX - 1;
        if (r.len != var_len || var_len == 0 || var_len > max ||
            memchr(fixed + sizeof r, 0, var_len))
            return "bad reader argument length";
        return NULL;
    }
    case IPC_CMD_WAIT_TX:
        if (var_len == 0 || var_len >= IPC_READER_NAME_MAX || memchr(fixed + 8, '\0', var_len))
            return "bad reader name length";
        return NULL;
    case IPC_CMD_SET_ATTRIB: {
        struct ipc_setattr_req r;
        memcpy(&r, fixed, sizeof r);
        return r.len != var_len ? "bad attribute length" : NULL;
    }
    default: return NULL;
    }
}

const char *ipc_check_request(const uint8_t *msg, size_t len)
{
    struct ipc_hdr h;
    const struct ipc_cmd_info *ci;
    const char *why;

    if (len < sizeof h)
        return "message shorter than its header";
    memcpy(&h, msg, sizeof h);
    why = ipc_check_header(&h, false);
    if (why)
        return why;
    if (h.size != len)
        return "size field does not match the message";
    if (h.status != 0)
        return "status set in a request";
    ci = ipc_cmd_info(h.cmd);
    if (!ci)
        return "unknown command";
    if (len < sizeof h + ci->req_size)
        return "request shorter than its command needs";
    if (len - sizeof h - ci->req_size > ci->var_max)
        return "request longer than its command allows";
    return check_lengths(h.cmd, msg + sizeof h, len - sizeof h - ci->req_size);
}

/* ---- Receiver ---------------------------------------------------------------------------------
 */

void ipc_rx_init(struct ipc_rx *rx, bool want_reply)
{
    memset(rx, 0, sizeof *rx);
    rx->want_reply = want_reply;
    rx->limit = IPC_MSG_MAX;
}

void ipc_rx_set_limit(struct ipc_rx *rx, uint32_t limit)
{
    rx->limit = limit < IPC_MSG_MAX ? limit : IPC_MSG_MAX;
}

void ipc_rx_free(struct ipc_rx *rx)
{
    free(rx->msg);
    rx->msg = NULL;
    rx->cap = 0;
    rx->need = 0;
    rx->have = 0;
}

void ipc_rx_space(struct ipc_rx *rx, uint8_t **p, size_t *n)
{
    if (rx->need == 0) {
        *p = rx->hdr + rx->have;
        *n = sizeof rx->hdr - rx->have;
    } else {
        *p = rx->msg + rx->have;
        *n = rx->cap - rx->have;
    }
}

/* Make room for more of the body: double the buffer, up to the announced size. */
static bool rx_grow(struct ipc_rx *rx)
{
    size_t cap = rx->cap * 2 < rx->need ? rx->cap * 2 : rx->need;
    uint8_t *m = realloc(rx->msg, cap);
    if (!m)
        return false;
    rx->msg = m;
    rx->cap = cap;
    return true;
}

enum ipc_rx_result ipc_rx_advance(struct ipc_rx *rx, size_t n, const uint8_t **msg, size_t *len,
                                  const char **why)
{
    rx->have += n;
    if (rx->need == 0) {
        struct ipc_hdr h;
        if (rx->have < sizeof rx->hdr)
            return IPC_RX_MORE;
        memcpy(&h, rx->hdr, sizeof h);
        *why = ipc_check_header(&h, rx->want_reply);
        if (!*why && h.size > rx->limit)
            *why = "message larger than allowed at this stage of the conversation";
        if (*why)
            return IPC_RX_ERROR;
        rx->cap = h.size < sizeof h + IPC_RX_FIRST_CHUNK ? h.size : sizeof h + IPC_RX_FIRST_CHUNK;
        rx->msg = malloc(rx->cap);
        if (!rx->msg) {
            rx->cap = 0;
            *why = "out of memory";
            return IPC_RX_ERROR;
        }
        memcpy(rx->msg, rx->hdr, sizeof rx->hdr);
        rx->need = h.size;
    }
    if (rx->have < rx->need) {
        if (rx->have == rx->cap && !rx_grow(rx)) {
            *why = "out of memory";
            return IPC_RX_ERROR;
        }
        return IPC_RX_MORE;
    }
    *msg = rx->msg;
    *len = rx->need;
    return IPC_RX_MESSAGE;
}

void ipc_rx_next(struct ipc_rx *rx)
{
    ipc_rx_free(rx);
}

uint8_t *ipc_rx_take(struct ipc_rx *rx)
{
    uint8_t *m = rx->msg;
    rx->msg = NULL;
    rx->cap = 0;
    rx->need = 0;
    rx->have = 0;
    return m;
}

size_t ipc_rx_allocated(const struct ipc_rx *rx)
{
    return rx->cap;
}

bool ipc_rx_partial(const struct ipc_rx *rx)
{
    return rx->have > 0;
}

/* ---- Builder ----------------------------------------------------------------------------------
 */

void ipc_msg_start(struct ipc_msg *m, uint8_t *buf, size_t cap, uint16_t cmd, uint16_t flags,
                   uint32_t seq, uint32_t status)
{
    struct ipc_hdr h = {.size = 0, .cmd = cmd, .flags = flags, .seq = seq, .status = status};
    m->data = buf;
    m->len = 0;
    m->cap = cap;
    m->overflow = false;
    ipc_msg_put(m, &h, sizeof h);
}

void ipc_msg_put(struct ipc_msg *m, const void *p, size_t n)
{
    if (m->overflow || n > m->cap - m->len) {
        m->overflow = true;
        return;
    }
    if (n)
        memcpy(m->data + m->len, p, n);
    m->len += n;
}

void ipc_msg_put_u16(struct ipc_msg *m, uint16_t v)
{
    ipc_msg_put(m, &v, sizeof v);
}

void ipc_msg_put_u32(struct ipc_msg *m, uint32_t v)
{
    ipc_msg_put(m, &v, sizeof v);
}

size_t ipc_msg_finish(struct ipc_msg *m)
{
    uint32_t size;
    if (m->overflow || m->len > IPC_MSG_MAX || m->len < sizeof(struct ipc_hdr))
        return 0;
    size = (uint32_t)m->len;
    memcpy(m->data + offsetof(struct ipc_hdr, size), &size, sizeof size);
    return m->len;
}

/* ---- Status-change entries --------------------------------------------------------------------
 */

int ipc_gsc_decode(const uint8_t *var, size_t len, uint32_t count, struct ipc_gsc_entry *out)
{
    size_t pos = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint16_t name_len;
        if (len - pos < IPC_GSC_ENTRY_HDR)
            return -1;
        if (out) {
            memcpy(&out[i].known_flags, var + pos, 4);
            memcpy(&out[i].known_counter, var + pos + 4, 4);
        }
        memcpy(&name_len, var + pos + 8, 2);
        pos += IPC_GSC_ENTRY_HDR;
        if (name_len == 0 || name_len >= IPC_READER_NAME_MAX || len - pos < name_len)
            return -1;
        if (memchr(var + pos, '\0', name_len) != NULL)
            return -1;
        if (out) {
            memcpy(out[i].name, var + pos, name_len);
            out[i].name[name_len] = '\0';
        }
        pos += name_len;
    }
    return pos == len ? 0 : -1;
}

/* ---- Sockets ----------------------------------------------------------------------------------
 */

const char *ipc_socket_path(void)
{
    const char *p = getenv(IPC_SOCKET_ENV);
    return (p && *p) ? p : IPC_DEFAULT_SOCKET;
}

int ipc_send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * The wait for data is a poll for POLLIN, not a blocking recv: a thread asleep in recv() on a
 * Unix stream socket is also woken each time the peer consumes what this side sent (the kernel's
 * write-space wake-up, which recv's wait does not filter), so a client waiting for its reply
 * would wake once for nothing when the daemon reads its request: a context switch per request.
 * poll()'s wait only wakes for the events asked for.
 */
int ipc_recv_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n < 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                    return -1;
                continue;
            }
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = ECONNRESET;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
