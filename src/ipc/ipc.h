/*
 * scrm's client <-> daemon protocol on a Unix stream socket, shared by libpcsclite.so.1
 * (src/client) and scrmd (src/daemon).
 *
 * Framing: every message is a 16-byte header (struct ipc_hdr) followed by a fixed part (the
 * command's request or reply struct) and, for some commands, a variable part whose length
 * follows from hdr.size. hdr.size counts the whole message and never exceeds IPC_MSG_MAX: a
 * peer that announces more, less than a header, or a size that does not fit the command is a
 * protocol violation and the daemon disconnects it. All fields are fixed-width, host byte order
 * (the socket never leaves the machine), naturally aligned with explicit padding; the layouts
 * are pinned by _Static_assert below.
 *
 * Conversation: the client sends IPC_CMD_HELLO first (magic, version); the daemon answers with
 * its version and then serves one request at a time. Every request gets exactly one reply with
 * the same cmd and seq and IPC_FLAG_REPLY set; hdr.status is the PC/SC result code. The one
 * exception is STOP_WAIT, which has no reply of its own: it makes a pending GET_STATUS_CHANGE
 * wait answer at once (status SCARD_E_CANCELLED), and is ignored when nothing waits.
 *
 * Commands are listed once, in IPC_COMMAND_LIST; the enum, the names, the size checks of
 * ipc_check_request() and the daemon's dispatch table are all generated from that list.
 *
 * Transactions (minor 1): a request that would have to wait for another handle's transaction is
 * answered at once with status IPC_S_TX_BUSY, its fixed reply part zero and the reader's name as
 * variable part; nothing was done. The client waits, without holding its connection, by sending
 * WAIT_TX (the reader name as variable part) on a connection of its own: the daemon answers it
 * (status 0) once that reader's transaction is free, as an event, holding no thread meanwhile;
 * STOP_WAIT ends it with SCARD_E_CANCELLED. Then the client sends its request again. A client
 * that said minor 0 in its HELLO never gets IPC_S_TX_BUSY (its requests wait in the daemon).
 *
 * One connection is one PC/SC context. Card handles are random 63-bit values issued by the daemon
 * and valid only on the connection that obtained them.
 */
#ifndef SCRM_IPC_IPC_H
#define SCRM_IPC_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Protocol constants ---------------------------------------------------------------------- */
#define IPC_MAGIC         0x4D524353u /* "SCRM" in little-endian byte order */
#define IPC_VERSION_MAJOR 1u          /* incompatible changes */
#define IPC_VERSION_MINOR 1u          /* compatible additions (1: WAIT_TX, IPC_S_TX_BUSY) */

#define IPC_DEFAULT_SOCKET "/run/scrm/scrm.sock"
#define IPC_SOCKET_ENV     "SCRM_SOCKET" /* clients and scrmd honour it */

#define IPC_MSG_MAX         (1u << 20) /* hard bound on a message, header included */
/* APDU, control and attribute payloads (pcsc-lite's MAX_BUFFER_SIZE_EXTENDED) */
#define IPC_DATA_MAX        65548u
#define IPC_READER_NAME_MAX 128u /* reader name with its NUL */
#define IPC_ATR_MAX         33u
#define IPC_GSC_MAX         4096u /* readers in one GET_STATUS_CHANGE request */

#define IPC_FLAG_REPLY 0x0001u

#define IPC_S_TX_BUSY 0x8010FFF1u /* reply status: wait with WAIT_TX, then retry (not PC/SC) */

/* ---- Header ---------------------------------------------------------------------------------- */
struct ipc_hdr {
    uint32_t size;   /* whole message, header included: 16 .. IPC_MSG_MAX */
    uint16_t cmd;    /* enum ipc_cmd */
    uint16_t flags;  /* IPC_FLAG_REPLY in replies, 0 in requests */
    uint32_t seq;    /* chosen by the client, echoed by the reply */
    uint32_t status; /* replies: PC/SC result code (SCARD_*); requests: 0 */
};

/* ---- Fixed parts ----------------------------------------------------------------------------- */
struct ipc_none { /* commands without arguments or results */
    uint64_t reserved;
};

struct ipc_hello_req {
    uint32_t magic; /* IPC_MAGIC */
    uint16_t major;
    uint16_t minor;
    uint32_t max_msg; /* largest message the client accepts */
    uint32_t reserved;
};
struct ipc_hello_rep {
    uint32_t magic;
    uint16_t major; /* the daemon's version; status != 0 if the majors differ */
    uint16_t minor; /* negotiated: the smaller of both minors */
    uint32_t max_msg;
    uint32_t server_pid;
    uint64_t client_id; /* the daemon's id for this connection (logs) */
};

/* LIST_READERS reply; the variable part holds `count` NUL-terminated names. */
struct ipc_list_rep {
    uint32_t count;
    uint32_t pnp_counter; /* reader arrivals + departures so far */
};

/*
 * GET_STATUS_CHANGE request. Variable part: `count` entries, each
 *     u32 known_flags, u32 known_counter, u16 name_len, name_len bytes (no NUL)
 * packed without padding. Without IPC_GSC_WAIT the reply is an immediate snapshot. With it the
 * daemon replies as soon as one named reader's (flags, counter) differs from the known values,
 * or, with IPC_GSC_PNP, as soon as the reader list counter differs from pnp_counter; until then
 * it only watches those readers, and the client may send STOP_WAIT.
 */
#define IPC_GSC_WAIT 0x1u
#define IPC_GSC_PNP  0x2u
struct ipc_gsc_req {
    uint32_t flags;
    uint32_t count;
    uint32_t pnp_counter;
    uint32_t reserved;
};
#define IPC_GSC_ENTRY_HDR 10u /* bytes before the name in a request entry */

/* Reader state as the daemon reports it. flags use the values of SCARD_STATE_* (the resource
 * manager's RM_READER_*); IPC_RS_MISSING means "no reader of that name". */
#define IPC_RS_UNKNOWN     0x0004u
#define IPC_RS_UNAVAILABLE 0x0008u
#define IPC_RS_EMPTY       0x0010u
#define IPC_RS_PRESENT     0x0020u
#define IPC_RS_EXCLUSIVE   0x0080u
#define IPC_RS_INUSE       0x0100u
#define IPC_RS_MUTE        0x0200u
#define IPC_RS_UNPOWERED   0x0400u
#define IPC_RS_MISSING     0x00010000u
struct ipc_reader_state {
    uint32_t flags;
    uint32_t counter;  /* card event counter */
    uint32_t state;    /* driver-library state 0 (UNKNOWN) .. 6 (SPECIFIC) */
    uint32_t protocol; /* pcsc-lite protocol number of the card, 0 if none */
    int32_t sharing;   /* -1 exclusive, 0 unused, n connected handles */
    uint32_t atr_len;
    uint8_t atr[40]; /* IPC_ATR_MAX used */
};
/* GET_STATUS_CHANGE reply: `count` struct ipc_reader_state follow, in request order. */
struct ipc_gsc_rep {
    uint32_t count;
    uint32_t pnp_counter;
};

/* CONNECT: the variable part is the reader name (name_len bytes, no NUL). */
struct ipc_connect_req {
    uint32_t share;     /* SCARD_SHARE_* */
    uint32_t protocols; /* SCARD_PROTOCOL_* mask (pcsc-lite numbers) */
    uint32_t name_len;
    uint32_t reserved;
};
struct ipc_connect_rep {
    uint64_t card;
    uint32_t protocol;
    uint32_t reserved;
};

struct ipc_reconnect_req {
    uint64_t card;
    uint32_t share;
    uint32_t protocols;
    uint32_t init; /* SCARD_LEAVE_CARD / RESET / UNPOWER */
    uint32_t reserved;
};
struct ipc_protocol_rep {
    uint32_t protocol;
    uint32_t reserved;
};

/* DISCONNECT and END_TRANSACTION. */
struct ipc_card_disp_req {
    uint64_t card;
    uint32_t disposition;
    uint32_t reserved;
};
/* BEGIN_TRANSACTION and STATUS. */
struct ipc_card_req {
    uint64_t card;
};

/* STATUS reply; the variable part is the reader name (name_len bytes, no NUL). It is filled also
 * with SCARD_W_REMOVED_CARD / SCARD_W_RESET_CARD. */
struct ipc_status_rep {
    uint32_t state; /* pcsc-lite's SCardStatus state bits (the rm's RM_PCSC_*), no counter */
    uint32_t flags; /* IPC_RS_* of the reader */
    uint32_t counter;
    uint32_t protocol;
    uint32_t atr_len;
    uint32_t name_len;
    uint8_t atr[40];
};

/* TRANSMIT: the variable part is the command APDU (send_len bytes). */
struct ipc_transmit_req {
    uint64_t card;
    uint32_t protocol; /* protocol of the send PCI (0 = the handle's) */
    uint32_t recv_max; /* capacity the client offers, <= IPC_DATA_MAX */
    uint32_t send_len;
    uint32_t reserved;
};
/* TRANSMIT reply: recv_len bytes follow when status is SCARD_S_SUCCESS; with
 * SCARD_E_INSUFFICIENT_BUFFER recv_len is the length needed and no data follows. */
struct ipc_transmit_rep {
    uint32_t protocol;
    uint32_t recv_len;
};

/* CONTROL: the variable part is the input (send_len bytes). */
struct ipc_control_req {
    uint64_t card;
    uint32_t code; /* SCARD_CTL_CODE(n) or a driver-library IOCTL code */
    uint32_t recv_max;
    uint32_t send_len;
    uint32_t reserved;
};
/* CONTROL and GET_ATTRIB replies: len bytes of data follow on success. */
struct ipc_data_rep {
    uint32_t len;
    uint32_t reserved;
};

struct ipc_getattr_req {
    uint64_t card;
    uint32_t attr;
    uint32_t recv_max;
};
/* SET_ATTRIB: the variable part is the value (len bytes). */
struct ipc_setattr_req {
    uint64_t card;
    uint32_t attr;
    uint32_t len;
};

/*
 * READER_ADD: the variable part is a device string ("sim:7", "ifd:ID:lib=..."), len bytes, no
 * NUL; the reply's variable part is the new reader's name (name_len bytes). READER_REMOVE: the
 * variable part is a reader name; the reply has name_len 0. Both are privileged (root, scrmd's
 * own user or the admin group); anyone else gets SCARD_W_SECURITY_VIOLATION.
 */
#define IPC_DEVICE_MAX 2048u
/* SPY (privileged): the connection receives, after the reply, one event message per APDU and
 * IOCTL the daemon handles: header cmd SPY, flags IPC_FLAG_REPLY | IPC_FLAG_EVENT, seq of the
 * request, status 0, fixed part ipc_none, variable part one line of text (no NUL). PIN data of
 * VERIFY and CHANGE REFERENCE DATA is redacted unless IPC_SPY_PINS is asked. */
#define IPC_SPY_PINS   0x0001u
#define IPC_FLAG_EVENT 0x0002u
struct ipc_spy_req {
    uint32_t flags;
    uint32_t reserved;
};
struct ipc_reader_req {
    uint32_t len;
    uint32_t reserved;
};
struct ipc_reader_rep {
    uint32_t name_len;
    uint32_t reserved;
};

/* ---- The command list -------------------------------------------------------------------------
 * X(NAME, code, request struct, max variable request bytes, reply struct)
 */
#define IPC_COMMAND_LIST(X)                                                                      \
    X(HELLO, 1, ipc_hello_req, 0, ipc_hello_rep)                                                 \
    X(LIST_READERS, 2, ipc_none, 0, ipc_list_rep)                                                \
    X(GET_STATUS_CHANGE, 3, ipc_gsc_req, IPC_GSC_MAX *(IPC_GSC_ENTRY_HDR + IPC_READER_NAME_MAX), \
      ipc_gsc_rep)                                                                               \
    X(STOP_WAIT, 4, ipc_none, 0, ipc_none)                                                       \
    X(CONNECT, 5, ipc_connect_req, IPC_READER_NAME_MAX, ipc_connect_rep)                         \
    X(RECONNECT, 6, ipc_reconnect_req, 0, ipc_protocol_rep)                                      \
    X(DISCONNECT, 7, ipc_card_disp_req, 0, ipc_none)                                             \
    X(BEGIN_TRANSACTION, 8, ipc_card_req, 0, ipc_none)                                           \
    X(END_TRANSACTION, 9, ipc_card_disp_req, 0, ipc_none)                                        \
    X(STATUS, 10, ipc_card_req, 0, ipc_status_rep)                                               \
    X(TRANSMIT, 11, ipc_transmit_req, IPC_DATA_MAX, ipc_transmit_rep)                            \
    X(CONTROL, 12, ipc_control_req, IPC_DATA_MAX, ipc_data_rep)                                  \
    X(GET_ATTRIB, 13, ipc_getattr_req, 0, ipc_data_rep)                                          \
    X(SET_ATTRIB, 14, ipc_setattr_req, IPC_DATA_MAX, ipc_none)                                   \
    X(READER_ADD, 15, ipc_reader_req, IPC_DEVICE_MAX, ipc_reader_rep)                            \
    X(READER_REMOVE, 16, ipc_reader_req, IPC_READER_NAME_MAX, ipc_reader_rep)                    \
    X(WAIT_TX, 17, ipc_none, IPC_READER_NAME_MAX, ipc_none)                                      \
    X(SPY, 18, ipc_spy_req, 0, ipc_none)

enum ipc_cmd {
#define IPC_X_ENUM(name, code, req, var, rep) IPC_CMD_##name = (code),
    IPC_COMMAND_LIST(IPC_X_ENUM)
#undef IPC_X_ENUM
        IPC_CMD_LIMIT /* one past the largest code */
};

/* Static facts about one command, generated from the list. */
struct ipc_cmd_info {
    const char *name;  /* "TRANSMIT" */
    uint32_t req_size; /* fixed request part */
    uint32_t var_max;  /* largest variable request part */
    uint32_t rep_size; /* fixed reply part */
};

/* The facts of a command code, or NULL for a code not in the list. */
const struct ipc_cmd_info *ipc_cmd_info(uint32_t cmd);
/* "TRANSMIT", or "?" for an unknown code. */
const char *ipc_cmd_name(uint32_t cmd);

/* ---- Layout checks --------------------------------------------------------------------------- */
#define IPC_ASSERT_SIZE(type, n) _Static_assert(sizeof(struct type) == (n), #type " size")
#define IPC_ASSERT_OFF(type, field, n) \
    _Static_assert(offsetof(struct type, field) == (n), #type "." #field " offset")
IPC_ASSERT_SIZE(ipc_hdr, 16);
IPC_ASSERT_OFF(ipc_hdr, cmd, 4);
IPC_ASSERT_OFF(ipc_hdr, seq, 8);
IPC_ASSERT_OFF(ipc_hdr, status, 12);
IPC_ASSERT_SIZE(ipc_none, 8);
IPC_ASSERT_SIZE(ipc_hello_req, 16);
IPC_ASSERT_OFF(ipc_hello_req, max_msg, 8);
IPC_ASSERT_SIZE(ipc_hello_rep, 24);
IPC_ASSERT_OFF(ipc_hello_rep, client_id, 16);
IPC_ASSERT_SIZE(ipc_list_rep, 8);
IPC_ASSERT_SIZE(ipc_gsc_req, 16);
IPC_ASSERT_SIZE(ipc_reader_state, 64);
IPC_ASSERT_OFF(ipc_reader_state, sharing, 16);
IPC_ASSERT_OFF(ipc_reader_state, atr, 24);
IPC_ASSERT_SIZE(ipc_gsc_rep, 8);
IPC_ASSERT_SIZE(ipc_connect_req, 16);
IPC_ASSERT_SIZE(ipc_connect_rep, 16);
IPC_ASSERT_SIZE(ipc_reconnect_req, 24);
IPC_ASSERT_OFF(ipc_reconnect_req, init, 16);
IPC_ASSERT_SIZE(ipc_protocol_rep, 8);
IPC_ASSERT_SIZE(ipc_card_disp_req, 16);
IPC_ASSERT_SIZE(ipc_card_req, 8);
IPC_ASSERT_SIZE(ipc_status_rep, 64);
IPC_ASSERT_OFF(ipc_status_rep, atr, 24);
IPC_ASSERT_SIZE(ipc_transmit_req, 24);
IPC_ASSERT_OFF(ipc_transmit_req, send_len, 16);
IPC_ASSERT_SIZE(ipc_transmit_rep, 8);
IPC_ASSERT_SIZE(ipc_control_req, 24);
IPC_ASSERT_SIZE(ipc_data_rep, 8);
IPC_ASSERT_SIZE(ipc_getattr_req, 16);
IPC_ASSERT_SIZE(ipc_setattr_req, 16);
IPC_ASSERT_SIZE(ipc_reader_req, 8);
IPC_ASSERT_SIZE(ipc_reader_rep, 8);
_Static_assert(IPC_GSC_MAX *(IPC_GSC_ENTRY_HDR + IPC_READER_NAME_MAX) + 16 + 16 <= IPC_MSG_MAX,
               "largest GET_STATUS_CHANGE request fits a message");
_Static_assert(IPC_GSC_MAX * sizeof(struct ipc_reader_state) + 16 + 8 <= IPC_MSG_MAX,
               "largest GET_STATUS_CHANGE reply fits a message");

/* ---- Validation ------------------------------------------------------------------------------ */

/* Check a received header on its own: size within [16, IPC_MSG_MAX] and the reply flag as
 * expected. Returns NULL if fine, else a short reason for the log. */
const char *ipc_check_header(const struct ipc_hdr *h, bool want_reply);

/* Check a whole request (header already passed ipc_check_header): known command, size between
 * its fixed part and fixed + var_max, and length fields consistent with the size. Returns NULL or
 * a reason. */
const char *ipc_check_request(const uint8_t *msg, size_t len);

/* ---- Incremental receiver ---------------------------------------------------------------------
 * Collects one message at a time from a non-blocking stream: ask where to read with
 * ipc_rx_space(), report what was read with ipc_rx_advance(). Memory follows what the peer has
 * actually sent, not what it announced: the body buffer starts small once the header has been
 * checked and doubles as bytes arrive (never beyond the announced size), so it is at most about
 * twice the bytes received. ipc_rx_set_limit() bounds the announced size further (the daemon
 * accepts nothing larger than a HELLO before the handshake).
 */
#define IPC_RX_FIRST_CHUNK 4096u /* body buffer before anything of the body arrived */
struct ipc_rx {
    uint8_t hdr[sizeof(struct ipc_hdr)];
    uint8_t *msg;   /* the message so far (malloc'd, cap bytes) once the header is known */
    size_t cap;     /* bytes allocated for msg */
    size_t need;    /* announced size, 0 while the header is incomplete */
    size_t have;    /* bytes received of the current message */
    uint32_t limit; /* largest message accepted (IPC_MSG_MAX unless set lower) */
    bool want_reply;
};
enum ipc_rx_result { IPC_RX_MORE, IPC_RX_MESSAGE, IPC_RX_ERROR };

void ipc_rx_init(struct ipc_rx *rx, bool want_reply);
void ipc_rx_free(struct ipc_rx *rx);
/* Accept no message larger than limit bytes (header included) from now on. */
void ipc_rx_set_limit(struct ipc_rx *rx, uint32_t limit);
/* Where the next bytes go and how many are wanted (never 0 between messages). */
void ipc_rx_space(struct ipc_rx *rx, uint8_t **p, size_t *n);
/* n bytes were written at the place ipc_rx_space gave. IPC_RX_MESSAGE: a whole message is in
 * msg and len (owned by rx until ipc_rx_take, ipc_rx_next or ipc_rx_free); IPC_RX_ERROR: why
 * says what is wrong (bad header, over the limit, or out of memory). */
enum ipc_rx_result ipc_rx_advance(struct ipc_rx *rx, size_t n, const uint8_t **msg, size_t *len,
                                  const char **why);
/* Forget the completed message and get ready for the next one. */
void ipc_rx_next(struct ipc_rx *rx);
/* Hand the completed message to the caller (who frees it) and get ready for the next one. */
uint8_t *ipc_rx_take(struct ipc_rx *rx);
/* True while a message is partly received (a close now truncates it). */
bool ipc_rx_partial(const struct ipc_rx *rx);
/* Bytes the receiver holds allocated. */
size_t ipc_rx_allocated(const struct ipc_rx *rx);

/* ---- Building messages ----------------------------------------------------------------------- */

/* A message under construction in a caller-owned buffer. */
struct ipc_msg {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool overflow;
};
void ipc_msg_start(struct ipc_msg *m, uint8_t *buf, size_t cap, uint16_t cmd, uint16_t flags,
                   uint32_t seq, uint32_t status);
void ipc_msg_put(struct ipc_msg *m, const void *p, size_t n);
void ipc_msg_put_u16(struct ipc_msg *m, uint16_t v);
void ipc_msg_put_u32(struct ipc_msg *m, uint32_t v);
/* Patch hdr.size. Returns the message length, or 0 if it overflowed its buffer or IPC_MSG_MAX. */
size_t ipc_msg_finish(struct ipc_msg *m);

/* ---- GET_STATUS_CHANGE request entries ------------------------------------------------------- */
struct ipc_gsc_entry {
    uint32_t known_flags;
    uint32_t known_counter;
    char name[IPC_READER_NAME_MAX]; /* NUL-terminated */
};
/* Decode the variable part of a GET_STATUS_CHANGE request into count entries (array supplied by
 * the caller; NULL only checks them, as ipc_check_request does). Returns 0, or -1 if the bytes do
 * not hold exactly `count` well-formed entries (name empty, too long, containing NUL, or trailing
 * bytes). */
int ipc_gsc_decode(const uint8_t *var, size_t len, uint32_t count, struct ipc_gsc_entry *out);

/* ---- Names and sockets ----------------------------------------------------------------------- */

/* The socket path clients use: $SCRM_SOCKET if set and not empty, else IPC_DEFAULT_SOCKET. */
const char *ipc_socket_path(void);

/* Write all of buf to a blocking socket (MSG_NOSIGNAL, EINTR retried). 0 or -1 (errno set). */
int ipc_send_all(int fd, const void *buf, size_t len);
/* Read exactly len bytes from a blocking socket. 0, or -1 with errno (ECONNRESET on EOF). */
int ipc_recv_all(int fd, void *buf, size_t len);

#endif
