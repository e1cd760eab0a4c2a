/*
 * Resource manager core against simulated readers: the exact IOCTL sequences of start-up, of the
 * card monitor, of connect for a card found in each state (PRESENT, SWALLOWED, POWERED,
 * NEGOTIABLE, SPECIFIC), of the power-down timeout in each state, the cancelled power-down, card
 * removal during a connect and under a connection, reader departure and arrival, the defective
 * reader, naming rules, and the calls through a handle (status, transmit, control, attributes).
 * The sequences are captured through the rm's trace callback (rm_harness.c).
 */
#include "testutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/scard_codes.h"
#include "rm/status_map.h"
#include "rm_harness.h"

#define R0 "SimVendor SimReader 0"
#define R1 "SimVendor SimReader 1"
#define RT "TestVendor TestReader 5"

/* the driver gives no name of its own: "<vendor> <ifd type> <unit>" */
#define STARTUP_ATTRS                                                                          \
    "IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_DEVICE_FRIENDLY_NAME_A -> STATUS_NOT_SUPPORTED", \
        "IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_VENDOR_NAME -> STATUS_SUCCESS",              \
        "IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_VENDOR_IFD_TYPE -> STATUS_SUCCESS",          \
        "IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_DEVICE_UNIT -> STATUS_SUCCESS",              \
        "IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_CHARACTERISTICS -> STATUS_SUCCESS"

#define GS(state)    "IOCTL_SMARTCARD_GET_STATE -> STATUS_SUCCESS = SCARD_" #state
#define COLD         "IOCTL_SMARTCARD_POWER SCARD_COLD_RESET -> STATUS_SUCCESS"
#define WARM         "IOCTL_SMARTCARD_POWER SCARD_WARM_RESET -> STATUS_SUCCESS"
#define DOWN         "IOCTL_SMARTCARD_POWER SCARD_POWER_DOWN -> STATUS_SUCCESS"
#define ATR          "IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_ATR_STRING -> STATUS_SUCCESS"
#define CURPROTO     "IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_CURRENT_PROTOCOL_TYPE -> STATUS_SUCCESS"
#define SETP_TX      "IOCTL_SMARTCARD_SET_PROTOCOL SCARD_PROTOCOL_T0|SCARD_PROTOCOL_T1 -> STATUS_SUCCESS"
#define SETP_T0      "IOCTL_SMARTCARD_SET_PROTOCOL SCARD_PROTOCOL_T0 -> STATUS_SUCCESS"
#define PRESENT_PEND "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_PENDING"
#define ABSENT_PEND  "IOCTL_SMARTCARD_IS_ABSENT -> STATUS_PENDING"
#define PRESENT_DONE "done IOCTL_SMARTCARD_IS_PRESENT -> STATUS_SUCCESS"
#define ABSENT_DONE  "done IOCTL_SMARTCARD_IS_ABSENT -> STATUS_SUCCESS"
#define TRANSMIT_OK  "IOCTL_SMARTCARD_TRANSMIT -> STATUS_SUCCESS"

static const uint8_t select_mf[] = {0x00, 0xA4, 0x00, 0x0C}; /* SELECT MF, no response data */

static struct rmt *setup(bool power_on_insert)
{
    struct rm_config cfg;
    rmt_config(&cfg);
    cfg.power_on_insert = power_on_insert;
    return rmt_new(&cfg);
}

/* A long power-down timeout (the harness makes timeouts elapse only on rmt_power_down anyway). */
static struct rmt *setup_long(bool power_on_insert)
{
    struct rm_config cfg;
    rmt_config(&cfg);
    cfg.power_on_insert = power_on_insert;
    cfg.power_down_ms = 60000;
    return rmt_new(&cfg);
}

/* Add a reader and check its start-up sequence on an empty reader. */
static void add_empty(struct rmt *t, const char *device)
{
    assert_int_equal(rm_add_reader(t->rm, device), SCARD_S_SUCCESS);
    RMT_EXPECT(t, STARTUP_ATTRS, PRESENT_PEND);
}

static bool is_empty(const struct rm_reader_info *i)
{
    return (i->flags & RM_READER_EMPTY) != 0;
}

static bool is_present(const struct rm_reader_info *i)
{
    return (i->flags & RM_READER_PRESENT) != 0;
}

static bool no_power_down(const struct rm_reader_info *i)
{
    return !i->power_down_pending;
}

/* The snapshot follows the trace: a sequence's last line is traced just before it is applied. */
static bool is_unpowered(const struct rm_reader_info *i)
{
    return (i->flags & RM_READER_UNPOWERED) && i->state == SCARD_SWALLOWED;
}

/* ---- start-up, naming, registration ---- */

static void test_startup_empty(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    add_empty(t, "sim:1");
    struct rm_reader_info i = rmt_info(t, R1);
    assert_string_equal(i.device, "sim:1");
    assert_int_equal(i.flags, RM_READER_EMPTY);
    assert_int_equal(i.state, SCARD_ABSENT);
    assert_int_equal(i.event_counter, 0);
    assert_int_equal(i.sharing, 0);
    assert_int_equal(rm_reader_events(t->rm), 1);
    rmt_free(t);
}

/* A card in the reader at start-up: IS_PRESENT completes at once, the card is powered to read its
 * ATR, and the power-down timer later switches it off (the timeout firing in NEGOTIABLE). */
static void test_startup_with_card_and_power_down(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    assert_int_equal(rm_add_reader(t->rm, "sim:1:card=t1"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, STARTUP_ATTRS, "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_SUCCESS", GS(SWALLOWED),
               COLD, GS(NEGOTIABLE), ABSENT_PEND);
    struct rm_reader_info i = rmt_info(t, R1);
    assert_int_equal(i.flags & (RM_READER_PRESENT | RM_READER_UNPOWERED), RM_READER_PRESENT);
    assert_int_equal(i.event_counter, 1);
    assert_true(i.atr_len > 2);
    assert_int_equal(i.atr[0], 0x3B);
    rmt_power_down(t, R1); /* the timeout elapses */
    RMT_EXPECT(t, GS(NEGOTIABLE), DOWN, GS(SWALLOWED));
    assert_true(rmt_wait_info(t, R1, is_unpowered));
    i = rmt_info(t, R1);
    assert_false(i.power_down_pending);
    assert_true(i.atr_len > 2); /* the ATR stays known while the card is in */
    rmt_free(t);
}

static void test_unnamed_reader_refused(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    assert_int_equal(rm_add_reader(t->rm, "tdrv:5:noname"), SCARD_E_READER_UNAVAILABLE);
    struct rm_reader_info *list;
    size_t n;
    assert_int_equal(rm_list_readers(t->rm, &list, &n), SCARD_S_SUCCESS);
    assert_int_equal(n, 0);
    free(list);
    rmt_free(t);
}

static void test_duplicate_refused(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    add_empty(t, "sim:0");
    /* Another device with the same vendor, type and unit: same name. */
    assert_int_equal(rm_add_reader(t->rm, "sim:2:unit=0"), SCARD_E_DUPLICATE_READER);
    RMT_EXPECT(t, STARTUP_ATTRS);
    /* The same device again. */
    assert_int_equal(rm_add_reader(t->rm, "sim:0"), SCARD_E_DUPLICATE_READER);
    assert_int_equal(rm_add_reader(t->rm, "nosuchdriver:0"), SCARD_E_UNKNOWN_READER);
    assert_int_equal(rm_add_reader(t->rm, "sim:3:bogus=1"), SCARD_E_INVALID_VALUE);
    assert_int_equal(rm_add_reader(t->rm, "garbage"), SCARD_E_INVALID_VALUE);
    struct rm_reader_info *list;
    size_t n;
    assert_int_equal(rm_list_readers(t->rm, &list, &n), SCARD_S_SUCCESS);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, R0);
    free(list);
    rmt_free(t);
}

/* A device that arrives at run time (PnP) is registered; its departure is reported. */
static void test_pnp_arrival_and_departure(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    struct rmt_counter pnp;
    rmt_counter_init(&pnp);
    struct rm_watch *w = rm_watch(t->rm, NULL, rmt_counter_cb, &pnp);
    assert_non_null(w);
    assert_int_equal(smc_add_device(t->ctx, "sim:3"), STATUS_SUCCESS);
    assert_true(rmt_counter_wait(&pnp, 1));
    assert_int_equal(pnp.last, 1);
    struct rm_reader_info i = rmt_info(t, "SimVendor SimReader 3");
    assert_string_equal(i.device, "sim:3");
    RMT_EXPECT(t, STARTUP_ATTRS, PRESENT_PEND);
    assert_int_equal(smc_remove_device(t->ctx, "sim:3"), STATUS_SUCCESS);
    assert_true(rmt_counter_wait(&pnp, 2));
    assert_int_equal(rm_reader_events(t->rm), 2);
    assert_int_equal(rm_get_reader(t->rm, "SimVendor SimReader 3", &i), SCARD_E_UNKNOWN_READER);
    rm_unwatch(t->rm, w);
    rmt_counter_fini(&pnp);
    rmt_free(t);
}

/* ---- monitor ---- */

static void test_monitor_insert_remove(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "sim:1");
    struct rmt_counter c;
    rmt_counter_init(&c);
    struct rm_watch *w = rm_watch(t->rm, R1, rmt_counter_cb, &c);
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    assert_true(rmt_counter_wait(&c, 1));
    RMT_EXPECT(t, PRESENT_DONE, GS(SWALLOWED), ABSENT_PEND);
    struct rm_reader_info i = rmt_info(t, R1);
    assert_int_equal(i.flags, RM_READER_PRESENT | RM_READER_UNPOWERED);
    assert_int_equal(i.event_counter, 1);
    assert_false(i.power_down_pending);
    assert_int_equal(rmt_remove(t, "sim:1"), STATUS_SUCCESS);
    assert_true(rmt_counter_wait(&c, 2));
    RMT_EXPECT(t, ABSENT_DONE, GS(ABSENT), PRESENT_PEND);
    i = rmt_info(t, R1);
    assert_int_equal(i.flags, RM_READER_EMPTY);
    assert_int_equal(i.event_counter, 2);
    assert_int_equal(i.atr_len, 0);
    rm_unwatch(t->rm, w);
    rmt_counter_fini(&c);
    rmt_free(t);
}

/* A watch on another reader is not called for this reader's events. */
static void test_watch_only_that_reader(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "sim:0");
    add_empty(t, "sim:1");
    struct rmt_counter c0, c1;
    rmt_counter_init(&c0);
    rmt_counter_init(&c1);
    struct rm_watch *w0 = rm_watch(t->rm, R0, rmt_counter_cb, &c0);
    struct rm_watch *w1 = rm_watch(t->rm, R1, rmt_counter_cb, &c1);
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    assert_true(rmt_counter_wait(&c1, 1));
    assert_int_equal(rmt_insert(t, "sim:0", "t1"), STATUS_SUCCESS);
    assert_true(rmt_counter_wait(&c0, 1));
    /* Each got exactly its own event. */
    assert_int_equal(c0.calls, 1);
    assert_int_equal(c1.calls, 1);
    rm_unwatch(t->rm, w0);
    rm_unwatch(t->rm, w1);
    rmt_counter_fini(&c0);
    rmt_counter_fini(&c1);
    rmt_free(t);
}

/* Many watches across table growth: only the watches of the reader that changed are called,
 * once each, also after half of the others left in an interleaved order. */
static void test_watch_registry_growth(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct rmt *t = setup(false);
    add_empty(t, "sim:1");
    struct rmt_counter c, other;
    rmt_counter_init(&c);
    rmt_counter_init(&other);
    struct rm_watch **ids = calloc(N, sizeof(struct rm_watch *));
    struct rm_watch *mine[3];
    assert_non_null(ids);
    for (unsigned i = 0; i < N; i++) {
        char name[48];
        snprintf(name, sizeof(name), "Absent Reader %u", i);
        ids[i] = rm_watch(t->rm, name, rmt_counter_cb, &other);
        assert_non_null(ids[i]);
        if (i % 2000 == 0)
            mine[i / 2000] = rm_watch(t->rm, R1, rmt_counter_cb, &c);
    }
    for (unsigned i = 0; i < N; i += 2) { /* every other one leaves, while the table moves */
        rm_unwatch(t->rm, ids[i]);
        ids[i] = NULL;
    }
    rm_unwatch(t->rm, mine[1]);
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    assert_true(rmt_counter_wait(&c, 2));
    struct rm_reader_info i = rmt_info(t, R1);
    assert_int_equal(i.event_counter, 1);
    pthread_mutex_lock(&other.lock);
    assert_int_equal(other.calls, 0);
    pthread_mutex_unlock(&other.lock);
    for (unsigned k = 1; k < N; k += 2)
        rm_unwatch(t->rm, ids[k]);
    rm_unwatch(t->rm, mine[0]);
    rm_unwatch(t->rm, mine[2]);
    free(ids);
    rmt_counter_fini(&c);
    rmt_counter_fini(&other);
    rmt_free(t);
}

/* ---- connect in each state ---- */

static void test_connect_present_swallowing_reader(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "sim:0:swallows=1");
    assert_int_equal(rmt_insert(t, "sim:0", "t1"), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(PRESENT), ABSENT_PEND);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R0, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(proto, RM_PROTOCOL_T1);
    RMT_EXPECT(t, GS(PRESENT), "IOCTL_SMARTCARD_SWALLOW -> STATUS_SUCCESS", GS(SWALLOWED), COLD,
               GS(NEGOTIABLE), ATR, SETP_TX);
    uint8_t resp[258];
    size_t len = sizeof(resp);
    uint32_t rp = 0;
    assert_int_equal(
        rm_transmit(t->rm, card, RM_PROTOCOL_T1, select_mf, sizeof(select_mf), resp, &len, &rp),
        SCARD_S_SUCCESS);
    assert_bytes_hex(resp, len, "90 00");
    assert_int_equal(rp, RM_PROTOCOL_T1);
    RMT_EXPECT(t, TRANSMIT_OK);
    /* Disconnect: the power-down timeout fires in SPECIFIC. */
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_power_down(t, R0); /* the timeout elapses */
    RMT_EXPECT(t, GS(SPECIFIC), DOWN, GS(SWALLOWED));
    rmt_free(t);
}

static void test_connect_swallowed(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "sim:1");
    assert_int_equal(rmt_insert(t, "sim:1", "t0"), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SWALLOWED), ABSENT_PEND);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(
        rm_connect(t->rm, 1, R1, SCARD_SHARE_EXCLUSIVE, RM_PROTOCOL_ANY, &card, &proto),
        SCARD_S_SUCCESS);
    assert_int_equal(proto, RM_PROTOCOL_T0);
    RMT_EXPECT(t, GS(SWALLOWED), COLD, GS(NEGOTIABLE), ATR, SETP_TX);
    struct rm_reader_info i = rmt_info(t, R1);
    assert_int_equal(i.flags, RM_READER_PRESENT | RM_READER_EXCLUSIVE);
    assert_int_equal(i.sharing, -1);
    assert_int_equal(i.protocol, RM_PROTOCOL_T0);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_power_down(t, R1); /* the timeout elapses */
    RMT_EXPECT(t, GS(SPECIFIC), DOWN, GS(SWALLOWED));
    rmt_free(t);
}

/* The insertion's power-up leaves the card POWERED (unusable ATR); connect answers POWERED with a
 * warm reset. */
static void test_connect_powered(void **state)
{
    (void)state;
    struct rmt *t = setup_long(true);
    add_empty(t, "tdrv:5:powered");
    uint8_t swallowed[4] = {SCARD_SWALLOWED, 0, 0, 0};
    assert_int_equal(rmt_ext(t, "tdrv:5", TDRV_INSERT, swallowed, 4), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SWALLOWED),
               "IOCTL_SMARTCARD_POWER SCARD_COLD_RESET -> STATUS_UNRECOGNIZED_MEDIA", GS(POWERED),
               ABSENT_PEND);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, RT, SCARD_SHARE_SHARED, RM_PROTOCOL_T0, &card, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(proto, RM_PROTOCOL_T0);
    RMT_EXPECT(t, GS(POWERED), WARM, GS(NEGOTIABLE), ATR, SETP_T0);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

/* A reader without a swallow mechanism that reports PRESENT: SWALLOW answers NOT_SUPPORTED and
 * the connect goes on with a cold reset. */
static void test_connect_present_swallow_not_supported(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "tdrv:5");
    assert_int_equal(rmt_ext(t, "tdrv:5", TDRV_INSERT, NULL, 0), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(PRESENT), ABSENT_PEND);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, RT, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_S_SUCCESS);
    RMT_EXPECT(t, GS(PRESENT), "IOCTL_SMARTCARD_SWALLOW -> STATUS_NOT_SUPPORTED", COLD,
               GS(NEGOTIABLE), ATR, SETP_TX);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

static void test_connect_negotiable(void **state)
{
    (void)state;
    struct rmt *t = setup_long(true);
    add_empty(t, "sim:1");
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SWALLOWED), COLD, GS(NEGOTIABLE), ABSENT_PEND);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_S_SUCCESS);
    RMT_EXPECT(t, GS(NEGOTIABLE), ATR, SETP_TX);
    assert_int_equal(proto, RM_PROTOCOL_T1);
    struct rm_reader_info i = rmt_info(t, R1);
    assert_false(i.power_down_pending); /* the connect cancelled the insertion's timer */
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_true(rmt_info(t, R1).power_down_pending);
    rmt_free(t);
}

static void test_connect_specific(void **state)
{
    (void)state;
    struct rmt *t = setup_long(true);
    add_empty(t, "sim:1");
    assert_int_equal(rmt_insert(t, "sim:1", "specific"), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SWALLOWED), COLD, GS(SPECIFIC), ABSENT_PEND);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_S_SUCCESS);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO, SETP_TX);
    uint8_t resp[64];
    size_t len = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, 0, select_mf, sizeof(select_mf), resp, &len, NULL),
                     SCARD_S_SUCCESS);
    assert_bytes_hex(resp, len, "90 00");
    RMT_EXPECT(t, TRANSMIT_OK);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

static void test_connect_no_card(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    add_empty(t, "sim:1");
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_E_NO_SMARTCARD);
    RMT_EXPECT(t, GS(ABSENT));
    assert_int_equal(
        rm_connect(t->rm, 1, "no such reader", SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
        SCARD_E_UNKNOWN_READER);
    assert_int_equal(rm_connect(t->rm, 1, R1, 7, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_E_INVALID_VALUE);
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, 0, &card, &proto),
                     SCARD_E_INVALID_VALUE);
    assert_int_equal(rmt_info(t, R1).sharing, 0);
    rmt_free(t);
}

/* ---- power-down timeout in the remaining states ---- */

/* DIRECT connect/disconnect on the card in `profile` state, then the timeout's sequence. */
static void test_power_down_swallowed_present_absent(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "sim:0:swallows=1");
    add_empty(t, "sim:1");
    uint64_t card = 0;
    uint32_t proto = 9;
    /* ABSENT */
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_DIRECT, 0, &card, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(proto, RM_PROTOCOL_UNDEFINED);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_power_down(t, R1); /* the timeout elapses */
    RMT_EXPECT(t, GS(ABSENT));
    assert_true(rmt_wait_info(t, R1, no_power_down));
    /* SWALLOWED */
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SWALLOWED), ABSENT_PEND);
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_DIRECT, 0, &card, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_power_down(t, R1); /* the timeout elapses */
    RMT_EXPECT(t, GS(SWALLOWED));
    /* PRESENT */
    assert_int_equal(rmt_insert(t, "sim:0", "t1"), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(PRESENT), ABSENT_PEND);
    assert_int_equal(rm_connect(t->rm, 1, R0, SCARD_SHARE_DIRECT, 0, &card, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_power_down(t, R0); /* the timeout elapses */
    RMT_EXPECT(t, GS(PRESENT));
    assert_true(rmt_wait_info(t, R0, no_power_down));
    rmt_free(t);
}

/* NEGOTIABLE at disconnect: a DIRECT handle resets the card (reconnect with SCARD_RESET_CARD),
 * which leaves it NEGOTIABLE; the timeout after the disconnect powers it down. */
static void test_power_down_negotiable(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "sim:1");
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SWALLOWED), ABSENT_PEND);
    uint64_t card = 0;
    uint32_t proto = 9;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_DIRECT, 0, &card, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(rm_reconnect(t->rm, card, SCARD_SHARE_DIRECT, 0, SCARD_RESET_CARD, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(proto, RM_PROTOCOL_UNDEFINED);
    RMT_EXPECT(t, WARM, GS(NEGOTIABLE));
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_power_down(t, R1); /* the timeout elapses */
    RMT_EXPECT(t, GS(NEGOTIABLE), DOWN, GS(SWALLOWED));
    rmt_free(t);
}

/* POWERED at the timeout: the insertion's power-up met an unusable ATR. */
static void test_power_down_powered(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    add_empty(t, "tdrv:5:powered");
    uint8_t swallowed[4] = {SCARD_SWALLOWED, 0, 0, 0};
    assert_int_equal(rmt_ext(t, "tdrv:5", TDRV_INSERT, swallowed, 4), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SWALLOWED),
               "IOCTL_SMARTCARD_POWER SCARD_COLD_RESET -> STATUS_UNRECOGNIZED_MEDIA", GS(POWERED),
               ABSENT_PEND);
    rmt_power_down(t, RT); /* the timeout elapses */
    RMT_EXPECT(t, GS(POWERED), DOWN, GS(SWALLOWED));
    assert_true(rmt_wait_info(t, RT, no_power_down));
    rmt_free(t);
}

/* A connect during the power-down timeout cancels it; the next disconnect starts a new one. */
static void test_reconnect_cancels_power_down(void **state)
{
    (void)state;
    struct rm_config cfg;
    rmt_config(&cfg);
    cfg.power_down_ms = 1000; /* elapses only when the test says so (rmt_power_down) */
    cfg.power_on_insert = false;
    struct rmt *t = rmt_new(&cfg);
    add_empty(t, "sim:1");
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SWALLOWED), ABSENT_PEND);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_S_SUCCESS);
    RMT_EXPECT(t, GS(SWALLOWED), COLD, GS(NEGOTIABLE), ATR, SETP_TX);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_true(rmt_info(t, R1).power_down_pending);
    assert_int_equal(rm_connect(t->rm, 2, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_S_SUCCESS);
    assert_false(rmt_info(t, R1).power_down_pending);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO, SETP_TX);
    /* The card stays powered while connected; the next disconnect powers it down once. */
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_power_down(t, R1); /* the timeout elapses */
    RMT_EXPECT(t, GS(SPECIFIC), DOWN, GS(SWALLOWED));
    rmt_free(t);
}

/* ---- card removal ---- */

struct remove_hook {
    struct rmt *t;
    const char *device;
    const char *on_line;
    bool done;
};

static void removing_trace(void *user, const struct rm_trace_entry *e)
{
    struct remove_hook *h = user;
    rmt_trace_cb(&h->t->tr, e);
    if (!h->done && strcmp(e->line, h->on_line) == 0) {
        h->done = true;
        assert_int_equal(rmt_remove(h->t, h->device), STATUS_SUCCESS);
    }
}

/* The card leaves between the cold reset and the next GET_STATE of a connect. */
static void test_card_removed_during_connect(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "sim:1");
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SWALLOWED), ABSENT_PEND);
    struct remove_hook h = {t, "sim:1", COLD, false};
    rmt_trace_only_me(t, true);
    rm_set_trace(t->rm, removing_trace, &h);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_E_NO_SMARTCARD);
    /* The removal completes the monitor's IS_ABSENT on this thread (the simulator reports it from
     * inside its vendor IOCTL); the monitor job itself runs on a pool thread, not captured. */
    RMT_EXPECT(t, GS(SWALLOWED), COLD, ABSENT_DONE, GS(ABSENT));
    rm_set_trace(t->rm, rmt_trace_cb, &t->tr);
    rmt_trace_only_me(t, false);
    assert_true(rmt_wait_info(t, R1, is_empty));
    assert_int_equal(rmt_info(t, R1).sharing, 0);
    rmt_free(t);
}

/* The card is pulled while SET_PROTOCOL talks to it (simulator fault REMOVE_AFTER, during the
 * PPS exchange of a card whose ATR asks for a faster rate). */
static void test_card_removed_during_set_protocol(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "sim:1");
    assert_int_equal(rmt_insert(t, "sim:1", "fast"), STATUS_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SWALLOWED), ABSENT_PEND);
    assert_int_equal(rmt_fault(t, "sim:1", SIM_FAULT_REMOVE_AFTER, 1), STATUS_SUCCESS);
    rmt_trace_only_me(t, true);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_E_NO_SMARTCARD);
    /* The card leaves inside the SET_PROTOCOL slot: the monitor's IS_ABSENT completes on this
     * thread when the slot returns, before SET_PROTOCOL's own answer is traced. */
    RMT_EXPECT(t, GS(SWALLOWED), COLD, GS(NEGOTIABLE), ATR, ABSENT_DONE,
               "IOCTL_SMARTCARD_SET_PROTOCOL SCARD_PROTOCOL_T0|SCARD_PROTOCOL_T1 -> "
               "STATUS_NO_MEDIA");
    rmt_trace_only_me(t, false);
    assert_true(rmt_wait_info(t, R1, is_empty));
    rmt_free(t);
}

/* Removal under a connection: calls report SCARD_W_REMOVED_CARD until the handle reconnects. */
static void test_removed_card_under_handle(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "sim:1");
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    assert_true(rmt_wait_info(t, R1, is_present));
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(rmt_remove(t, "sim:1"), STATUS_SUCCESS);
    assert_true(rmt_wait_info(t, R1, is_empty));
    uint8_t resp[16];
    size_t len = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, 0, select_mf, sizeof(select_mf), resp, &len, NULL),
                     SCARD_W_REMOVED_CARD);
    struct rm_card_status st;
    assert_int_equal(rm_status(t->rm, card, &st), SCARD_W_REMOVED_CARD);
    assert_string_equal(st.reader, R1);
    assert_true(st.flags & RM_READER_EMPTY);
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    assert_true(rmt_wait_info(t, R1, is_present));
    /* A new card does not revive the handle. */
    len = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, 0, select_mf, sizeof(select_mf), resp, &len, NULL),
                     SCARD_W_REMOVED_CARD);
    assert_int_equal(
        rm_reconnect(t->rm, card, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, SCARD_LEAVE_CARD, &proto),
        SCARD_S_SUCCESS);
    len = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, 0, select_mf, sizeof(select_mf), resp, &len, NULL),
                     SCARD_S_SUCCESS);
    assert_bytes_hex(resp, len, "90 00");
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_RESET_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

/* ---- reader departure with clients connected ---- */

struct begin_arg {
    struct rm *rm;
    uint64_t card;
    uint32_t rc;
};

static void *begin_thread(void *p)
{
    struct begin_arg *a = p;
    a->rc = rm_begin_transaction(a->rm, a->card, RM_INFINITE);
    return NULL;
}

static void test_reader_removed_with_clients(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    add_empty(t, "sim:1");
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    assert_true(rmt_wait_info(t, R1, is_present));
    uint64_t a = 0, b = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &a, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(rm_connect(t->rm, 2, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &b, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(rm_begin_transaction(t->rm, a, RM_INFINITE), SCARD_S_SUCCESS);
    struct begin_arg arg = {t->rm, b, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, begin_thread, &arg), 0);
    struct rmt_counter pnp;
    rmt_counter_init(&pnp);
    struct rm_watch *w = rm_watch(t->rm, NULL, rmt_counter_cb, &pnp);
    assert_int_equal(smc_remove_device(t->ctx, "sim:1"), STATUS_SUCCESS);
    pthread_join(th, NULL);
    assert_int_equal(arg.rc, SCARD_E_READER_UNAVAILABLE);
    assert_true(rmt_counter_wait(&pnp, 1));
    struct rm_reader_info i;
    assert_int_equal(rm_get_reader(t->rm, R1, &i), SCARD_E_UNKNOWN_READER);
    uint8_t resp[16];
    size_t len = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, a, 0, select_mf, sizeof(select_mf), resp, &len, NULL),
                     SCARD_E_READER_UNAVAILABLE);
    struct rm_card_status st;
    assert_int_equal(rm_status(t->rm, a, &st), SCARD_E_READER_UNAVAILABLE);
    assert_string_equal(st.reader, R1);
    assert_int_equal(rm_end_transaction(t->rm, a, SCARD_LEAVE_CARD), SCARD_E_READER_UNAVAILABLE);
    assert_int_equal(rm_disconnect(t->rm, a, SCARD_RESET_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, b, SCARD_UNPOWER_CARD), SCARD_S_SUCCESS);
    /* Plugged again: a fresh reader of the same name. */
    rmt_clear(t);
    assert_int_equal(rm_add_reader(t->rm, "sim:1"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, STARTUP_ATTRS, PRESENT_PEND);
    assert_int_equal(rmt_info(t, R1).event_counter, 0);
    rm_unwatch(t->rm, w);
    rmt_counter_fini(&pnp);
    rmt_free(t);
}

/* ---- defective reader ---- */

static void test_defective_reader(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    struct rmt_counter c;
    rmt_counter_init(&c);
    struct rm_watch *w = rm_watch(t->rm, RT, rmt_counter_cb, &c);
    assert_int_equal(rm_add_reader(t->rm, "tdrv:5:failtrack"), SCARD_S_SUCCESS);
    assert_true(rmt_counter_wait(&c, 1));
    RMT_EXPECT(t, STARTUP_ATTRS, "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_IO_DEVICE_ERROR",
               "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_IO_DEVICE_ERROR",
               "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_IO_DEVICE_ERROR");
    struct rm_reader_info i = rmt_info(t, RT);
    assert_true(i.defective);
    assert_true(i.flags & RM_READER_UNAVAILABLE);
    assert_int_equal(i.event_counter, 1);
    uint64_t card;
    uint32_t proto;
    assert_int_equal(rm_connect(t->rm, 1, RT, SCARD_SHARE_DIRECT, 0, &card, &proto),
                     SCARD_E_READER_UNAVAILABLE);
    /* Re-plugged: a new reader, monitored again (and defective again, as the driver fails). */
    assert_int_equal(smc_remove_device(t->ctx, "tdrv:5"), STATUS_SUCCESS);
    assert_int_equal(rm_get_reader(t->rm, RT, &i), SCARD_E_UNKNOWN_READER);
    rm_unwatch(t->rm, w);
    rmt_counter_fini(&c);
    rmt_free(t);
}

/* ---- calls through a handle ---- */

static void test_status_transmit_buffers(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    add_empty(t, "sim:1");
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    assert_true(rmt_wait_info(t, R1, is_present));
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_T1, &card, &proto),
                     SCARD_S_SUCCESS);
    struct rm_card_status st;
    assert_int_equal(rm_status(t->rm, card, &st), SCARD_S_SUCCESS);
    assert_string_equal(st.reader, R1);
    assert_int_equal(st.state, SCARD_SPECIFIC);
    assert_int_equal(st.protocol, RM_PROTOCOL_T1);
    struct rm_reader_info i = rmt_info(t, R1);
    assert_bytes_equal(st.atr, st.atr_len, i.atr, i.atr_len);
    assert_int_equal(st.flags, RM_READER_PRESENT | RM_READER_INUSE);
    /* ECHO of 8 bytes into a buffer of 4: insufficient buffer. */
    static const uint8_t echo[] = {0x80, 0xEC, 0x00, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x00};
    uint8_t resp[300];
    size_t len = 4;
    assert_int_equal(rm_transmit(t->rm, card, 0, echo, sizeof(echo), resp, &len, NULL),
                     SCARD_E_INSUFFICIENT_BUFFER);
    len = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, 0, echo, sizeof(echo), resp, &len, NULL),
                     SCARD_S_SUCCESS);
    assert_bytes_hex(resp, len, "01 02 03 04 05 06 07 08 90 00");
    /* Wrong protocol in the send header. */
    len = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, RM_PROTOCOL_T0, echo, sizeof(echo), resp, &len, NULL),
                     SCARD_E_PROTO_MISMATCH);
    assert_int_equal(rm_transmit(t->rm, card + 1000, 0, echo, sizeof(echo), resp, &len, NULL),
                     SCARD_E_INVALID_HANDLE);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_E_INVALID_HANDLE);
    assert_int_equal(rm_status(t->rm, card, &st), SCARD_E_INVALID_HANDLE);
    rmt_free(t);
}

/* SCardControl reaches the simulator's vendor IOCTLs (insert a card through a DIRECT handle), in
 * both code numberings; other codes are refused. */
static void test_control_inserts_card(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "sim:1");
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_DIRECT, 0, &card, &proto),
                     SCARD_S_SUCCESS);
    size_t n = 0;
    assert_int_equal(rm_control(t->rm, card, SIM_IOCTL_INSERT, "t0", 2, NULL, 0, &n),
                     SCARD_S_SUCCESS);
    assert_true(rmt_wait_info(t, R1, is_present));
    uint8_t info[12];
    assert_int_equal(
        rm_control(t->rm, card, 0x42000000u + 2048 + 4, NULL, 0, info, sizeof(info), &n),
        SCARD_S_SUCCESS);
    assert_int_equal(n, 12);
    assert_int_equal(info[0], 1); /* a card is in */
    assert_int_equal(rm_control(t->rm, card, SIM_IOCTL_INFO, NULL, 0, info, 4, &n),
                     SCARD_E_INSUFFICIENT_BUFFER);
    assert_int_equal(rm_control(t->rm, card, IOCTL_SMARTCARD_POWER, "\0\0\0\0", 4, NULL, 0, &n),
                     SCARD_E_UNSUPPORTED_FEATURE);
    assert_int_equal(rm_control(t->rm, card, SMC_CTL_CODE(3000), NULL, 0, NULL, 0, &n),
                     SCARD_E_UNSUPPORTED_FEATURE);
    assert_int_equal(
        rm_control(t->rm, card, 0x42000000u + SIM_IOCTL_REMOVE % 4096, NULL, 0, NULL, 0, &n),
        SCARD_E_UNSUPPORTED_FEATURE); /* 0x42000000 + a Windows code: not vendor */
    assert_int_equal(rm_control(t->rm, card, 0x42000000u + 2048 + 2, NULL, 0, NULL, 0, &n),
                     SCARD_S_SUCCESS); /* SIM_IOCTL_REMOVE by its pcsc-lite number */
    assert_true(rmt_wait_info(t, R1, is_empty));
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

static void test_attributes(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    add_empty(t, "sim:1");
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_DIRECT, 0, &card, &proto),
                     SCARD_S_SUCCESS);
    char buf[128];
    size_t n = 0;
    assert_int_equal(
        rm_get_attrib(t->rm, card, SCARD_ATTR_DEVICE_FRIENDLY_NAME_A, buf, sizeof(buf), &n),
        SCARD_S_SUCCESS);
    assert_int_equal(n, strlen(R1) + 1);
    assert_string_equal(buf, R1);
    assert_int_equal(
        rm_get_attrib(t->rm, card, SCARD_ATTR_DEVICE_SYSTEM_NAME_W, buf, sizeof(buf), &n),
        SCARD_S_SUCCESS);
    assert_int_equal(n, 2 * (strlen(R1) + 1));
    assert_int_equal(buf[0], 'S');
    assert_int_equal(buf[1], 0);
    assert_int_equal(rm_get_attrib(t->rm, card, SCARD_ATTR_DEVICE_FRIENDLY_NAME_A, buf, 4, &n),
                     SCARD_E_INSUFFICIENT_BUFFER);
    assert_int_equal(n, strlen(R1) + 1);
    rmt_clear(t);
    assert_int_equal(rm_get_attrib(t->rm, card, SCARD_ATTR_VENDOR_NAME, buf, sizeof(buf), &n),
                     SCARD_S_SUCCESS);
    assert_bytes_equal(buf, n, "SimVendor", 9);
    assert_int_equal(rm_get_attrib(t->rm, card, 0x000A0B0Cu, buf, sizeof(buf), &n),
                     SCARD_E_UNSUPPORTED_FEATURE);
    RMT_EXPECT(t, "IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_VENDOR_NAME -> STATUS_SUCCESS",
               "IOCTL_SMARTCARD_GET_ATTRIBUTE 0x000A0B0C -> STATUS_NOT_SUPPORTED");
    /* SET_ATTRIBUTE: the id then the value, as the driver library expects. */
    static const uint8_t one[4] = {1, 0, 0, 0};
    assert_int_equal(rm_set_attrib(t->rm, card, SCARD_ATTR_DEVICE_IN_USE, one, 4), SCARD_S_SUCCESS);
    assert_int_equal(rm_get_attrib(t->rm, card, SCARD_ATTR_DEVICE_IN_USE, buf, sizeof(buf), &n),
                     SCARD_S_SUCCESS);
    assert_bytes_hex(buf, n, "01 00 00 00");
    assert_int_equal(rm_set_attrib(t->rm, card, SCARD_ATTR_DEVICE_IN_USE, one, 2),
                     SCARD_E_INVALID_PARAMETER);
    assert_int_equal(rm_set_attrib(t->rm, card, 0x000A0B0Cu, one, 4), SCARD_E_UNSUPPORTED_FEATURE);
    RMT_EXPECT(t, "IOCTL_SMARTCARD_SET_ATTRIBUTE SCARD_ATTR_DEVICE_IN_USE -> STATUS_SUCCESS",
               "IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_DEVICE_IN_USE -> STATUS_SUCCESS",
               "IOCTL_SMARTCARD_SET_ATTRIBUTE SCARD_ATTR_DEVICE_IN_USE -> STATUS_INVALID_PARAMETER",
               "IOCTL_SMARTCARD_SET_ATTRIBUTE 0x000A0B0C -> STATUS_NOT_SUPPORTED");
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

/* ---- status mapping and names ---- */

static void test_status_mapping(void **state)
{
    (void)state;
    assert_int_equal(rm_scard_from_status(STATUS_SUCCESS, RM_OP_OTHER), SCARD_S_SUCCESS);
    assert_int_equal(rm_scard_from_status(STATUS_NO_MEDIA, RM_OP_CONNECT | RM_OP_POWER),
                     SCARD_E_NO_SMARTCARD);
    assert_int_equal(rm_scard_from_status(STATUS_NO_MEDIA, RM_OP_TRANSMIT), SCARD_W_REMOVED_CARD);
    assert_int_equal(rm_scard_from_status(STATUS_IO_TIMEOUT, RM_OP_CONNECT | RM_OP_POWER),
                     SCARD_W_UNRESPONSIVE_CARD);
    assert_int_equal(rm_scard_from_status(STATUS_IO_TIMEOUT, RM_OP_TRANSMIT), SCARD_E_TIMEOUT);
    assert_int_equal(rm_scard_from_status(STATUS_NOT_SUPPORTED, RM_OP_PROTOCOL),
                     SCARD_E_PROTO_MISMATCH);
    assert_int_equal(rm_scard_from_status(STATUS_NOT_SUPPORTED, RM_OP_ATTRIB),
                     SCARD_E_UNSUPPORTED_FEATURE);
    assert_int_equal(rm_scard_from_status(STATUS_INVALID_DEVICE_STATE, RM_OP_UNPOWERED),
                     SCARD_W_UNPOWERED_CARD);
    assert_int_equal(rm_scard_from_status(STATUS_INVALID_DEVICE_STATE, RM_OP_TRANSMIT),
                     SCARD_E_PROTO_MISMATCH);
    assert_int_equal(rm_scard_from_status(STATUS_INVALID_DEVICE_STATE, RM_OP_OTHER),
                     SCARD_E_NOT_READY);
    assert_int_equal(rm_scard_from_status(STATUS_DEVICE_NOT_CONNECTED, RM_OP_OTHER),
                     SCARD_E_READER_UNAVAILABLE);
    assert_int_equal(rm_scard_from_status(STATUS_UNSUCCESSFUL, RM_OP_OTHER), SCARD_F_UNKNOWN_ERROR);
    /* rm_add_reader's context: its own rows, then READER_UNAVAILABLE for any other failure
     * (where other contexts give COMM_ERROR or UNKNOWN_ERROR). */
    assert_int_equal(rm_scard_from_status(STATUS_SUCCESS, RM_OP_ADD), SCARD_S_SUCCESS);
    assert_int_equal(rm_scard_from_status(STATUS_DEVICE_BUSY, RM_OP_ADD), SCARD_E_DUPLICATE_READER);
    assert_int_equal(rm_scard_from_status(STATUS_NO_SUCH_DEVICE, RM_OP_ADD),
                     SCARD_E_UNKNOWN_READER);
    assert_int_equal(rm_scard_from_status(STATUS_INVALID_PARAMETER, RM_OP_ADD),
                     SCARD_E_INVALID_VALUE);
    assert_int_equal(rm_scard_from_status(STATUS_INSUFFICIENT_RESOURCES, RM_OP_ADD),
                     SCARD_E_NO_MEMORY);
    assert_int_equal(rm_scard_from_status(STATUS_IO_DEVICE_ERROR, RM_OP_ADD),
                     SCARD_E_READER_UNAVAILABLE);
    assert_int_equal(rm_scard_from_status(STATUS_UNSUCCESSFUL, RM_OP_ADD),
                     SCARD_E_READER_UNAVAILABLE);
    assert_int_equal(rm_scard_from_status(STATUS_DEVICE_BUSY, RM_OP_OTHER), SCARD_E_NOT_READY);
    assert_int_equal(rm_scard_from_status(STATUS_IO_DEVICE_ERROR, RM_OP_OTHER), SCARD_F_COMM_ERROR);
    /* The pcsc-lite value of UNSUPPORTED_FEATURE, and its name wins over E_UNEXPECTED. */
    assert_int_equal(SCARD_E_UNSUPPORTED_FEATURE, 0x8010001Fu);
    assert_string_equal(scard_code_name(0x8010001Fu), "SCARD_E_UNSUPPORTED_FEATURE");
    assert_string_equal(scard_code_name(SCARD_W_REMOVED_CARD), "SCARD_W_REMOVED_CARD");
    assert_int_equal(SCARD_W_REMOVED_CARD, 0x80100069u);
    assert_null(scard_code_name(0x80100099u));
    assert_string_equal(scard_code_message(0x80100099u), "Unknown error.");
    assert_string_equal(scard_share_name(SCARD_SHARE_DIRECT), "SCARD_SHARE_DIRECT");
    assert_string_equal(scard_disposition_name(SCARD_EJECT_CARD), "SCARD_EJECT_CARD");
    assert_int_equal(SCARD_SHARE_EXCLUSIVE, 1);
    assert_int_equal(SCARD_UNPOWER_CARD, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_empty),
        cmocka_unit_test(test_startup_with_card_and_power_down),
        cmocka_unit_test(test_unnamed_reader_refused),
        cmocka_unit_test(test_duplicate_refused),
        cmocka_unit_test(test_pnp_arrival_and_departure),
        cmocka_unit_test(test_watch_registry_growth),
        cmocka_unit_test(test_monitor_insert_remove),
        cmocka_unit_test(test_watch_only_that_reader),
        cmocka_unit_test(test_connect_present_swallowing_reader),
        cmocka_unit_test(test_connect_swallowed),
        cmocka_unit_test(test_connect_powered),
        cmocka_unit_test(test_connect_present_swallow_not_supported),
        cmocka_unit_test(test_connect_negotiable),
        cmocka_unit_test(test_connect_specific),
        cmocka_unit_test(test_connect_no_card),
        cmocka_unit_test(test_power_down_swallowed_present_absent),
        cmocka_unit_test(test_power_down_negotiable),
        cmocka_unit_test(test_power_down_powered),
        cmocka_unit_test(test_reconnect_cancels_power_down),
        cmocka_unit_test(test_card_removed_during_connect),
        cmocka_unit_test(test_card_removed_during_set_protocol),
        cmocka_unit_test(test_removed_card_under_handle),
        cmocka_unit_test(test_reader_removed_with_clients),
        cmocka_unit_test(test_defective_reader),
        cmocka_unit_test(test_status_transmit_buffers),
        cmocka_unit_test(test_control_inserts_card),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_status_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
