/*
 * Unit tests of scrm's socket protocol (src/ipc): the command table generated from the X-macro,
 * header and request checks (sizes, length fields, bounds), the incremental receiver fed byte by
 * byte and with hostile headers, the message builder, status-change entry decoding, and the id
 * map used for handles on both sides, and ipc_recv_all's wait for the rest of a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc/idmap.h"
#include "ipc/ipc.h"
#include "testutil.h"

/* Build a request: header + fixed + var into buf; returns its length. */
static size_t build(uint8_t *buf, size_t cap, uint16_t cmd, const void *fixed, size_t fl,
                    const void *var, size_t vl)
{
    struct ipc_msg m;
    ipc_msg_start(&m, buf, cap, cmd, 0, 7, 0);
    ipc_msg_put(&m, fixed, fl);
    ipc_msg_put(&m, var, vl);
    return ipc_msg_finish(&m);
}

/* The wire values of docs/pcsc.md ("The socket protocol"), typed here from that table and not
 * from IPC_COMMAND_LIST: a code, size or name changed in the list fails here. */
static const struct {
    uint32_t code;
    const char *name;
    uint32_t req, var, rep;
} wire[] = {
    {1, "HELLO", 16, 0, 24},
    {2, "LIST_READERS", 8, 0, 8},
    {3, "GET_STATUS_CHANGE", 16, 565248, 8},
    {4, "STOP_WAIT", 8, 0, 8},
    {5, "CONNECT", 16, 128, 16},
    {6, "RECONNECT", 24, 0, 8},
    {7, "DISCONNECT", 16, 0, 8},
    {8, "BEGIN_TRANSACTION", 8, 0, 8},
    {9, "END_TRANSACTION", 16, 0, 8},
    {10, "STATUS", 8, 0, 64},
    {11, "TRANSMIT", 24, 65548, 8},
    {12, "CONTROL", 24, 65548, 8},
    {13, "GET_ATTRIB", 16, 0, 8},
    {14, "SET_ATTRIB", 16, 65548, 8},
    {15, "READER_ADD", 8, 2048, 8},
    {16, "READER_REMOVE", 8, 128, 8},
    {17, "WAIT_TX", 8, 128, 8},
    {18, "SPY", 8, 0, 8},
};

static void test_command_table(void **state)
{
    (void)state;
    size_t n = sizeof(wire) / sizeof(wire[0]);
    for (size_t i = 0; i < n; i++) {
        const struct ipc_cmd_info *info = ipc_cmd_info(wire[i].code);
        assert_non_null(info);
        assert_string_equal(info->name, wire[i].name);
        assert_string_equal(ipc_cmd_name(wire[i].code), wire[i].name);
        assert_int_equal(info->req_size, wire[i].req);
        assert_int_equal(info->var_max, wire[i].var);
        assert_int_equal(info->rep_size, wire[i].rep);
    }
    /* No code outside the table: 0, everything past the last one, and the far end. */
    assert_null(ipc_cmd_info(0));
    for (uint32_t code = (uint32_t)n + 1; code < 4096; code++)
        assert_null(ipc_cmd_info(code));
    assert_null(ipc_cmd_info(0xFFFF));
    assert_null(ipc_cmd_info(UINT32_MAX));
    assert_string_equal(ipc_cmd_name(999), "?");
    /* The constants the table's sizes come from, as the protocol fixes them. */
    assert_int_equal(IPC_MAGIC, 0x4D524353u);
    assert_int_equal(IPC_VERSION_MAJOR, 1);
    assert_int_equal(IPC_MSG_MAX, 1048576u);
    assert_int_equal(sizeof(struct ipc_hdr), 16);
}

static void test_header_checks(void **state)
{
    struct ipc_hdr h = {.size = 16, .cmd = 1};
    (void)state;
    assert_null(ipc_check_header(&h, false));
    assert_non_null(ipc_check_header(&h, true));
    h.size = 15;
    assert_non_null(ipc_check_header(&h, false));
    h.size = IPC_MSG_MAX + 1;
    assert_non_null(ipc_check_header(&h, false));
    h.size = IPC_MSG_MAX; /* within the protocol, far beyond what HELLO can carry */
    assert_non_null(ipc_check_header(&h, false));
    h.cmd = IPC_CMD_TRANSMIT;
    h.size = 16 + ipc_cmd_info(IPC_CMD_TRANSMIT)->req_size + IPC_DATA_MAX;
    assert_null(ipc_check_header(&h, false));
    h.size++;
    assert_non_null(ipc_check_header(&h, false));
    h.cmd = 999; /* unknown: refused before its body is read */
    h.size = 16;
    assert_non_null(ipc_check_header(&h, false));
    h.cmd = 1;
    h.size = IPC_MSG_MAX;
    h.flags = 0x8000;
    assert_non_null(ipc_check_header(&h, false));
    h.flags = IPC_FLAG_REPLY;
    assert_null(ipc_check_header(&h, true)); /* replies: only the protocol bound applies */
}

static void test_request_checks(void **state)
{
    uint8_t buf[512];
    struct ipc_card_req card = {.card = 5};
    struct ipc_transmit_req tx = {.card = 1, .recv_max = 258, .send_len = 4};
    struct ipc_connect_req cn = {.share = 2, .protocols = 3, .name_len = 5};
    uint8_t apdu[4] = {0x00, 0xA4, 0x04, 0x00};
    size_t n;
    (void)state;

    n = build(buf, sizeof buf, IPC_CMD_BEGIN_TRANSACTION, &card, sizeof card, NULL, 0);
    assert_null(ipc_check_request(buf, n));
    /* a fixed-size command with trailing bytes */
    n = build(buf, sizeof buf, IPC_CMD_BEGIN_TRANSACTION, &card, sizeof card, "x", 1);
    assert_non_null(ipc_check_request(buf, n));
    /* too short for its fixed part */
    n = build(buf, sizeof buf, IPC_CMD_BEGIN_TRANSACTION, &card, 4, NULL, 0);
    assert_non_null(ipc_check_request(buf, n));
    /* unknown command */
    n = build(buf, sizeof buf, 77, &card, sizeof card, NULL, 0);
    assert_non_null(ipc_check_request(buf, n));
    /* length field must match the payload */
    n = build(buf, sizeof buf, IPC_CMD_TRANSMIT, &tx, sizeof tx, apdu, 4);
    assert_null(ipc_check_request(buf, n));
    tx.send_len = 5;
    n = build(buf, sizeof buf, IPC_CMD_TRANSMIT, &tx, sizeof tx, apdu, 4);
    assert_non_null(ipc_check_request(buf, n));
    tx.send_len = 4;
    tx.recv_max = IPC_DATA_MAX + 1;
    n = build(buf, sizeof buf, IPC_CMD_TRANSMIT, &tx, sizeof tx, apdu, 4);
    assert_non_null(ipc_check_request(buf, n));
    /* reader names: 1..127 bytes */
    n = build(buf, sizeof buf, IPC_CMD_CONNECT, &cn, sizeof cn, "abcde", 5);
    assert_null(ipc_check_request(buf, n));
    cn.name_len = 0;
    n = build(buf, sizeof buf, IPC_CMD_CONNECT, &cn, sizeof cn, NULL, 0);
    assert_non_null(ipc_check_request(buf, n));
    /* the size field must equal the bytes given */
    n = build(buf, sizeof buf, IPC_CMD_BEGIN_TRANSACTION, &card, sizeof card, NULL, 0);
    assert_non_null(ipc_check_request(buf, n - 1));
    /* a status in a request */
    buf[12] = 1;
    assert_non_null(ipc_check_request(buf, n));
}

static void test_builder_overflow(void **state)
{
    uint8_t buf[20];
    struct ipc_msg m;
    (void)state;
    ipc_msg_start(&m, buf, sizeof buf, IPC_CMD_STATUS, 0, 1, 0);
    ipc_msg_put_u32(&m, 1);
    assert_int_equal(ipc_msg_finish(&m), 20);
    ipc_msg_put_u16(&m, 2);
    assert_int_equal(ipc_msg_finish(&m), 0);
}

/* Feed a message to the receiver one byte at a time. */
static void test_rx_bytewise(void **state)
{
    uint8_t buf[64];
    struct ipc_card_req card = {.card = 0x1122334455667788ull};
    struct ipc_rx rx;
    size_t n = build(buf, sizeof buf, IPC_CMD_STATUS, &card, sizeof card, NULL, 0);
    const uint8_t *msg = NULL;
    size_t len = 0;
    const char *why = NULL;
    (void)state;

    ipc_rx_init(&rx, false);
    for (size_t i = 0; i < n; i++) {
        uint8_t *p;
        size_t want;
        enum ipc_rx_result r;
        ipc_rx_space(&rx, &p, &want);
        assert_true(want >= 1);
        *p = buf[i];
        r = ipc_rx_advance(&rx, 1, &msg, &len, &why);
        assert_int_equal(r, i + 1 < n ? IPC_RX_MORE : IPC_RX_MESSAGE);
        assert_true(ipc_rx_partial(&rx));
    }
    assert_bytes_equal(msg, len, buf, n);
    ipc_rx_next(&rx);
    assert_false(ipc_rx_partial(&rx));
    ipc_rx_free(&rx);
}

static void test_rx_hostile_headers(void **state)
{
    struct ipc_hdr bad[] = {
        {.size = 0xFFFFFFFFu, .cmd = 11},
        {.size = IPC_MSG_MAX + 1, .cmd = 11},
        {.size = 3, .cmd = 11},
        {.size = 32, .cmd = 11, .flags = IPC_FLAG_REPLY},
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ipc_rx rx;
        uint8_t *p;
        size_t want, len;
        const uint8_t *msg;
        const char *why = NULL;
        ipc_rx_init(&rx, false);
        ipc_rx_space(&rx, &p, &want);
        assert_int_equal(want, sizeof(struct ipc_hdr));
        memcpy(p, &bad[i], sizeof bad[i]);
        assert_int_equal(ipc_rx_advance(&rx, want, &msg, &len, &why), IPC_RX_ERROR);
        assert_non_null(why);
        assert_null(rx.msg); /* nothing allocated for a refused header */
        ipc_rx_free(&rx);
    }
}

static void test_rx_take(void **state)
{
    uint8_t buf[64];
    struct ipc_card_req card = {.card = 9};
    struct ipc_rx rx;
    size_t n = build(buf, sizeof buf, IPC_CMD_STATUS, &card, sizeof card, NULL, 0), len;
    const uint8_t *msg;
    const char *why;
    uint8_t *p, *taken;
    size_t want;
    (void)state;
    ipc_rx_init(&rx, false);
    ipc_rx_space(&rx, &p, &want);
    memcpy(p, buf, want);
    assert_int_equal(ipc_rx_advance(&rx, want, &msg, &len, &why), IPC_RX_MORE);
    ipc_rx_space(&rx, &p, &want);
    assert_int_equal(want, n - sizeof(struct ipc_hdr));
    memcpy(p, buf + sizeof(struct ipc_hdr), want);
    assert_int_equal(ipc_rx_advance(&rx, want, &msg, &len, &why), IPC_RX_MESSAGE);
    taken = ipc_rx_take(&rx);
    assert_ptr_equal(taken, msg);
    assert_false(ipc_rx_partial(&rx));
    ipc_rx_free(&rx);
    assert_bytes_equal(taken, len, buf, n);
    free(taken);
}

/* The body buffer follows the bytes that arrived, not the size the header announced. */
static void test_rx_memory_follows_bytes(void **state)
{
    struct ipc_hdr h = {.size = 500000, .cmd = IPC_CMD_GET_STATUS_CHANGE};
    struct ipc_rx rx;
    const uint8_t *msg;
    const char *why = NULL;
    uint8_t *p;
    size_t want, len, got = 0;
    (void)state;
    ipc_rx_init(&rx, false);
    ipc_rx_space(&rx, &p, &want);
    memcpy(p, &h, sizeof h);
    assert_int_equal(ipc_rx_advance(&rx, sizeof h, &msg, &len, &why), IPC_RX_MORE);
    assert_true(ipc_rx_allocated(&rx) <= sizeof h + IPC_RX_FIRST_CHUNK);
    while (got < 100000) {
        ipc_rx_space(&rx, &p, &want);
        assert_true(want > 0);
        memset(p, 0, want);
        got += want;
        assert_int_equal(ipc_rx_advance(&rx, want, &msg, &len, &why), IPC_RX_MORE);
        assert_true(ipc_rx_allocated(&rx) <= 2 * (sizeof h + got));
    }
    ipc_rx_free(&rx);
}

/* Before the handshake nothing larger than a HELLO is accepted, whatever the command allows. */
static void test_rx_stage_limit(void **state)
{
    struct ipc_hdr h = {.size = 565000, .cmd = IPC_CMD_GET_STATUS_CHANGE};
    struct ipc_rx rx;
    const uint8_t *msg;
    const char *why = NULL;
    uint8_t *p;
    size_t want, len;
    (void)state;
    ipc_rx_init(&rx, false);
    ipc_rx_set_limit(&rx, sizeof h + sizeof(struct ipc_hello_req));
    ipc_rx_space(&rx, &p, &want);
    memcpy(p, &h, sizeof h);
    assert_int_equal(ipc_rx_advance(&rx, sizeof h, &msg, &len, &why), IPC_RX_ERROR);
    assert_non_null(why);
    assert_int_equal(ipc_rx_allocated(&rx), 0);
    ipc_rx_free(&rx);
}

/* Encode entries like the client does. */
static size_t gsc_entry(uint8_t *p, uint32_t flags, uint32_t counter, const char *name)
{
    uint16_t nl = (uint16_t)strlen(name);
    memcpy(p, &flags, 4);
    memcpy(p + 4, &counter, 4);
    memcpy(p + 8, &nl, 2);
    memcpy(p + IPC_GSC_ENTRY_HDR, name, nl);
    return IPC_GSC_ENTRY_HDR + nl;
}

static void test_gsc_decode(void **state)
{
    uint8_t var[256];
    struct ipc_gsc_entry e[3];
    size_t n = 0;
    (void)state;
    n += gsc_entry(var + n, IPC_RS_PRESENT, 3, "Reader A");
    n += gsc_entry(var + n, IPC_RS_EMPTY, 0, "B");
    assert_int_equal(ipc_gsc_decode(var, n, 2, e), 0);
    assert_string_equal(e[0].name, "Reader A");
    assert_int_equal(e[0].known_flags, IPC_RS_PRESENT);
    assert_int_equal(e[0].known_counter, 3);
    assert_string_equal(e[1].name, "B");
    /* count mismatch either way, truncation, trailing bytes */
    assert_int_equal(ipc_gsc_decode(var, n, 3, e), -1);
    assert_int_equal(ipc_gsc_decode(var, n, 1, e), -1);
    assert_int_equal(ipc_gsc_decode(var, n - 1, 2, e), -1);
    /* an empty name, a NUL inside a name */
    n = gsc_entry(var, 0, 0, "");
    assert_int_equal(ipc_gsc_decode(var, n, 1, e), -1);
    n = gsc_entry(var, 0, 0, "ab");
    var[IPC_GSC_ENTRY_HDR] = '\0';
    assert_int_equal(ipc_gsc_decode(var, n, 1, e), -1);
    /* a name length past the end */
    n = gsc_entry(var, 0, 0, "abc");
    var[8] = 200;
    assert_int_equal(ipc_gsc_decode(var, n, 1, e), -1);
}

static void test_idmap(void **state)
{
    struct idmap m;
    uint64_t v;
    enum { N = 5000 };
    uint64_t *ids = calloc(N, sizeof *ids);
    (void)state;
    assert_non_null(ids);
    idmap_init(&m);
    assert_false(idmap_get(&m, 1, &v));
    assert_int_equal(idmap_put(&m, 0, 1), -1);
    for (int i = 0; i < N; i++) {
        ids[i] = idmap_random_id();
        assert_true(ids[i] > 0 && ids[i] <= 0x7FFFFFFFFFFFFFFFull);
        assert_int_equal(idmap_put(&m, ids[i], (uint64_t)i), 0);
    }
    /* also dense keys, which collide in the low bits */
    for (uint64_t k = 1; k <= 300; k++)
        assert_int_equal(idmap_put(&m, k << 20, k), 0);
    for (int i = 0; i < N; i += 2)
        assert_true(idmap_del(&m, ids[i]));
    for (int i = 0; i < N; i++) {
        bool present = idmap_get(&m, ids[i], &v);
        assert_int_equal(present, i % 2 == 1);
        if (present)
            assert_int_equal(v, (uint64_t)i);
    }
    for (uint64_t k = 1; k <= 300; k++) {
        assert_true(idmap_get(&m, k << 20, &v));
        assert_int_equal(v, k);
    }
    assert_false(idmap_del(&m, ids[0]));
    assert_int_equal(m.count, N / 2 + 300);
    idmap_free(&m);
    free(ids);
}

/* Writer of the second half for test_recv_all_waits: it waits until the reader has consumed the
 * first half (the send buffer is the smallest there is and the first half filled it, so POLLOUT
 * is that event), then sends the rest. */
struct second_half {
    int fd;
    const uint8_t *data;
    size_t len;
    bool ok;
};

static void *write_second_half(void *arg)
{
    struct second_half *h = arg;
    struct pollfd pfd = {.fd = h->fd, .events = POLLOUT};
    h->ok = poll(&pfd, 1, 10000) == 1 && ipc_send_all(h->fd, h->data, h->len) == 0; /* 10 s */
    return NULL;
}

/* ipc_recv_all waits for data with poll() (not in a blocking recv, which the peer's reading of
 * what we sent wakes for nothing): a message that arrives in two parts is read whole, also from a
 * non-blocking socket, and a peer that closes mid-message is ECONNRESET. */
static void test_recv_all_waits(void **state)
{
    (void)state;
    int sv[2], tiny = 1;
    uint8_t msg[2048], got[sizeof msg];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK), 0);
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &tiny, sizeof tiny), 0);
    struct pollfd full = {.fd = sv[1], .events = POLLOUT};
    assert_int_equal(ipc_send_all(sv[1], msg, sizeof msg / 2), 0);
    assert_int_equal(poll(&full, 1, 0), 0); /* the first half fills the send buffer */
    struct second_half h = {.fd = sv[1], .data = msg + sizeof msg / 2, .len = sizeof msg / 2};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_second_half, &h), 0);
    memset(got, 0, sizeof got);
    assert_int_equal(ipc_recv_all(sv[0], got, sizeof got), 0);
    pthread_join(th, NULL);
    assert_true(h.ok);
    assert_memory_equal(got, msg, sizeof msg);

    assert_int_equal(ipc_send_all(sv[1], msg, 10), 0);
    close(sv[1]);
    assert_int_equal(ipc_recv_all(sv[0], got, 20), -1);
    assert_int_equal(errno, ECONNRESET);
    close(sv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_table),  cmocka_unit_test(test_header_checks),
        cmocka_unit_test(test_request_checks), cmocka_unit_test(test_builder_overflow),
        cmocka_unit_test(test_rx_bytewise),    cmocka_unit_test(test_rx_hostile_headers),
        cmocka_unit_test(test_rx_take),        cmocka_unit_test(test_gsc_decode),
        cmocka_unit_test(test_idmap),          cmocka_unit_test(test_rx_memory_follows_bytes),
        cmocka_unit_test(test_rx_stage_limit), cmocka_unit_test(test_recv_all_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
