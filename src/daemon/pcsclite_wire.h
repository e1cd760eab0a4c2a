/*
 * pcsc-lite's client/daemon socket protocol (protocol 4:4, 4:5 and 4:6), as spoken by the
 * libpcsclite.so.1 of distributions and containers: message layouts, the command table and an
 * incremental receiver. No sockets and no daemon state here, so the fuzz target and the unit tests
 * use it directly; server_pcsclite.c is the front end that serves it.
 *
 * Framing (host byte order, 32-bit fields, as pcsc-lite's own winscard_msg.h defines it):
 *   request = {u32 size, u32 command} + `size` body bytes (the command's fixed struct); TRANSMIT
 *             and CONTROL are followed by cbSendLength raw bytes that `size` does not count;
 *             commands 0x12..0x17 have no body whatever `size` says.
 *   reply   = the request's struct with the outputs and rv filled in, no header; TRANSMIT and
 *             CONTROL replies are followed by the received bytes when rv is 0. The reader-state
 *             commands answer with an array of READER_STATE (184 bytes each), the wait commands
 *             with an 8-byte {timeOut, rv}.
 */
#ifndef SCRM_DAEMON_PCSCLITE_WIRE_H
#define SCRM_DAEMON_PCSCLITE_WIRE_H

#include "common/compiler.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCL_VERSION_MAJOR     4
#define PCL_VERSION_MINOR     6 /* newest minor served */
#define PCL_VERSION_MINOR_MIN 4 /* oldest minor served */

#define PCL_MAX_READERNAME  128
#define PCL_MAX_ATR_SIZE    33
#define PCL_MAX_BUFFER_SIZE 264   /* attribute buffer of getset_struct */
#define PCL_MAX_BUFFER_EXT  65548 /* largest TRANSMIT / CONTROL buffer */
#define PCL_FIXED_READERS   16    /* reader-state array of 4:4 and 4:5 */
#define PCL_ATR_UNUSED_SLOT 34    /* cardAtrLength of an unused slot (MAX_ATR_SIZE + 1) */

/* pcsc-lite's reader state bits (READER_STATE.readerState), not the SCARD_STATE_* flags. */
#define PCL_SCARD_UNKNOWN    0x0001u
#define PCL_SCARD_ABSENT     0x0002u
#define PCL_SCARD_PRESENT    0x0004u
#define PCL_SCARD_SWALLOWED  0x0008u
#define PCL_SCARD_POWERED    0x0010u
#define PCL_SCARD_NEGOTIABLE 0x0020u
#define PCL_SCARD_SPECIFIC   0x0040u

struct pcl_hdr {
    uint32_t size;
    uint32_t command;
};
struct pcl_version {
    int32_t major;
    int32_t minor;
    uint32_t rv;
};
struct pcl_establish {
    uint32_t scope;
    uint32_t context;
    uint32_t rv;
};
struct pcl_release {
    uint32_t context;
    uint32_t rv;
};
struct pcl_connect {
    uint32_t context;
    char reader[PCL_MAX_READERNAME];
    uint32_t share;
    uint32_t preferred;
    int32_t card;
    uint32_t active;
    uint32_t rv;
};
struct pcl_reconnect {
    int32_t card;
    uint32_t share;
    uint32_t preferred;
    uint32_t init;
    uint32_t active;
    uint32_t rv;
};
struct pcl_card_disp { /* disconnect_struct and end_struct */
    int32_t card;
    uint32_t disposition;
    uint32_t rv;
};
struct pcl_card { /* begin_struct and status_struct */
    int32_t card;
    uint32_t rv;
};
struct pcl_transmit {
    int32_t card;
    uint32_t send_pci_protocol;
    uint32_t send_pci_length;
    uint32_t send_length;
    uint32_t recv_pci_protocol;
    uint32_t recv_pci_length;
    uint32_t recv_length;
    uint32_t rv;
};
struct pcl_control {
    int32_t card;
    uint32_t code;
    uint32_t send_length;
    uint32_t recv_length;
    uint32_t returned;
    uint32_t rv;
};
struct pcl_cancel {
    int32_t context;
    uint32_t rv;
};
struct pcl_getset {
    int32_t card;
    uint32_t attr;
    uint8_t value[PCL_MAX_BUFFER_SIZE];
    uint32_t length;
    uint32_t rv;
};
struct pcl_wait { /* wait_reader_state_change: STOP replies and event signals */
    uint32_t timeout;
    uint32_t rv;
};
struct pcl_reader_events { /* CMD_GET_READER_EVENTS reply (4:5+) */
    int32_t events;
    uint32_t rv;
};
struct pcl_reader_state {
    char name[PCL_MAX_READERNAME];
    uint32_t event_counter;
    uint32_t state;
    int32_t sharing;
    uint8_t atr[PCL_MAX_ATR_SIZE];
    uint32_t atr_len;
    uint32_t protocol;
};

#define PCL_ASSERT_SIZE(t, n) _Static_assert(sizeof(struct t) == (n), #t " size")
PCL_ASSERT_SIZE(pcl_hdr, 8);
PCL_ASSERT_SIZE(pcl_version, 12);
PCL_ASSERT_SIZE(pcl_establish, 12);
PCL_ASSERT_SIZE(pcl_release, 8);
PCL_ASSERT_SIZE(pcl_connect, 152);
PCL_ASSERT_SIZE(pcl_reconnect, 24);
PCL_ASSERT_SIZE(pcl_card_disp, 12);
PCL_ASSERT_SIZE(pcl_card, 8);
PCL_ASSERT_SIZE(pcl_transmit, 32);
PCL_ASSERT_SIZE(pcl_control, 24);
PCL_ASSERT_SIZE(pcl_cancel, 8);
PCL_ASSERT_SIZE(pcl_getset, 280);
PCL_ASSERT_SIZE(pcl_wait, 8);
PCL_ASSERT_SIZE(pcl_reader_events, 8);
PCL_ASSERT_SIZE(pcl_reader_state, 184);
_Static_assert(offsetof(struct pcl_reader_state, atr) == 140, "cardAtr offset");
_Static_assert(offsetof(struct pcl_reader_state, atr_len) == 176, "cardAtrLength offset");
_Static_assert(offsetof(struct pcl_getset, length) == 272, "cbAttrLen offset");

/*
 * The commands the front end serves: X(NAME, code, body struct or 0, where it runs).
 * Body 0: no body is read. LOOP commands never block (the server's loop thread answers them);
 * POOL commands may wait for a reader (a worker runs them); READ commands only read the readers'
 * state (no state of the loop thread): the loop thread answers them, or the worker that has the
 * session when one arrives while it waits for the next request (no hand-over for SCardStatus's
 * and SCardGetStatusChange's table fetch between pool requests). Codes pcsc-lite defines but its
 * daemon does not serve (0x03 LIST_READERS, 0x0C GET_STATUS_CHANGE, 0x0E CANCEL_TRANSACTION) and
 * unknown codes end the connection, as in pcscd.
 */
#define PCL_COMMAND_LIST(X)                                        \
    X(ESTABLISH_CONTEXT, 0x01, sizeof(struct pcl_establish), LOOP) \
    X(RELEASE_CONTEXT, 0x02, sizeof(struct pcl_release), POOL)     \
    X(CONNECT, 0x04, sizeof(struct pcl_connect), STREAM)           \
    X(RECONNECT, 0x05, sizeof(struct pcl_reconnect), STREAM)       \
    X(DISCONNECT, 0x06, sizeof(struct pcl_card_disp), POOL)        \
    X(BEGIN_TRANSACTION, 0x07, sizeof(struct pcl_card), POOL)      \
    X(END_TRANSACTION, 0x08, sizeof(struct pcl_card_disp), POOL)   \
    X(TRANSMIT, 0x09, sizeof(struct pcl_transmit), STREAM)         \
    X(CONTROL, 0x0A, sizeof(struct pcl_control), STREAM)           \
    X(STATUS, 0x0B, sizeof(struct pcl_card), POOL)                 \
    X(CANCEL, 0x0D, sizeof(struct pcl_cancel), LOOP)               \
    X(GET_ATTRIB, 0x0F, sizeof(struct pcl_getset), POOL)           \
    X(SET_ATTRIB, 0x10, sizeof(struct pcl_getset), POOL)           \
    X(VERSION, 0x11, sizeof(struct pcl_version), LOOP)             \
    X(GET_READERS_STATE, 0x12, 0, READ)                            \
    X(WAIT_READER_STATE_CHANGE, 0x13, 0, LOOP)                     \
    X(STOP_WAITING_READER_STATE_CHANGE, 0x14, 0, LOOP)             \
    X(GET_READER_EVENTS, 0x15, 0, READ)                            \
    X(GET_READERS_STATE_SIZE, 0x16, 0, READ)                       \
    X(GET_READERS_STATE_ARRAY, 0x17, 0, READ)

enum pcl_cmd {
#define PCL_X_ENUM(name, code, body, run) PCL_CMD_##name = (code),
    PCL_COMMAND_LIST(PCL_X_ENUM)
#undef PCL_X_ENUM
        PCL_CMD_LIMIT = 0x18
};

/* STREAM: a pool request that opens a card or carries its APDUs, which starts on a new thread
 * when the loop thread read it (server_pool.c, "New threads for card streams"). */
enum pcl_run { PCL_RUN_NONE, PCL_RUN_LOOP, PCL_RUN_POOL, PCL_RUN_STREAM, PCL_RUN_READ };

/* How a command runs; PCL_RUN_NONE for a code the daemon does not serve. */
enum pcl_run pcl_cmd_run(uint32_t cmd);
/* Runs on the worker pool (POOL or STREAM). */
bool pcl_cmd_pooled(uint32_t cmd);
/* "TRANSMIT", or "?" */
const char *pcl_cmd_name(uint32_t cmd);

/* ---- Incremental receiver ----------------------------------------------------------------------
 * One request at a time from a byte stream: header, then the body of the size the command
 * requires (a different size is an error, as in pcscd), then for TRANSMIT / CONTROL the send
 * buffer (at most PCL_MAX_BUFFER_EXT bytes). Memory is bounded by the largest request.
 */
struct pcl_rx {
    uint8_t hdr[sizeof(struct pcl_hdr)];
    uint8_t *msg; /* header + body + send buffer, once the header is known */
    size_t need;  /* bytes of the current stage's target (0 while in the header) */
    size_t have;  /* bytes received of the current message */
    bool extra;   /* the send buffer length has been added to need */
};
enum pcl_rx_result { PCL_RX_MORE, PCL_RX_MESSAGE, PCL_RX_ERROR };

void pcl_rx_init(struct pcl_rx *rx);
void pcl_rx_free(struct pcl_rx *rx);
/* Where to read and how much is wanted at most (exactly the missing bytes of this message). */
void pcl_rx_space(struct pcl_rx *rx, uint8_t **p, size_t *n);
/* n bytes were read there. PCL_RX_MESSAGE: *msg / *len is the whole request (header included;
 * owned by rx until pcl_rx_take / pcl_rx_next). PCL_RX_ERROR: *why says what is wrong. */
enum pcl_rx_result pcl_rx_advance(struct pcl_rx *rx, size_t n, const uint8_t **msg, size_t *len,
                                  const char **why);
void pcl_rx_next(struct pcl_rx *rx);
uint8_t *pcl_rx_take(struct pcl_rx *rx);
SCRM_MUST_CHECK bool pcl_rx_partial(const struct pcl_rx *rx);

/* The length of the request at the start of buf (len bytes so far), checked as the receiver
 * does: NULL with *total = the whole request's length (possibly more than len), NULL with
 * *total = 0 when more bytes are needed to tell, or a reason when it is malformed. */
const char *pcl_request_length(const uint8_t *buf, size_t len, size_t *total);

/* Fill a READER_STATE from what the rm reports: pcsc_state is rm_reader_info.pcsc_state
 * (pcsc-lite's SCARD_ABSENT .. SCARD_SPECIFIC word); name NULL: an unused slot. */
void pcl_reader_state_fill(struct pcl_reader_state *rs, const char *name, uint32_t pcsc_state,
                           uint32_t event_counter, int32_t sharing, const uint8_t *atr,
                           size_t atr_len, uint32_t protocol);

#endif
