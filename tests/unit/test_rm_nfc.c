/*
 * The resource manager against the contactless reader driver (nfc:0): the exact IOCTL sequences
 * of docs/resource-manager.md for an NFC reader, captured through the rm's trace
 * callback (rm_harness.c):
 *
 *   start-up     GET_ATTRIBUTE VENDOR_NAME, VENDOR_IFD_TYPE, DEVICE_UNIT, CHARACTERISTICS, then
 *                IS_PRESENT — and no POWER at all, since an NFC reader never reports SWALLOWED or
 *                POWERED for a new tag (docs/nfc.md: a power reset at start-up is pointless);
 *   tag arrival  IS_PRESENT completes, GET_STATE says SPECIFIC, the ATR is read with
 *                GET_ATTRIBUTE (no reset), IS_ABSENT is posted;
 *   connect      GET_STATE (SPECIFIC) → ATR_STRING and CURRENT_PROTOCOL_TYPE → SET_PROTOCOL;
 *   disconnect   the power-down timeout: GET_STATE (SPECIFIC) → POWER(POWER_DOWN) → SWALLOWED;
 *                the next connect re-activates the tag with a cold reset;
 *   plus protocol refusal (T=0 only), the RESET and UNPOWER dispositions, a tag leaving under a
 *   connection, and the radio switched off and on (with a tag: removal, the reader unavailable but
 *   not defective, the tag found again; with an empty field: nothing happens).
 *
 * The tags are moved with the driver's vendor IOCTLs (include/smc/nfc.h) sent through rm_control()
 * on an rm handle: an NFC reader admits one open handle, the rm's, so the harness's "outside
 * hands" (a second smc handle) cannot be used. Those vendor IOCTLs are left out of the captured
 * trace: the rm traces a vendor IOCTL when it returns, after the driver completed the tracking
 * request inside it, so its line races with the monitor's and would make the order unstable.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/scard_codes.h"
#include "rm_harness.h"
#include "smc/nfc.h"

#define RN "SCRM IFD 0"

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
#define SETP_T1      "IOCTL_SMARTCARD_SET_PROTOCOL SCARD_PROTOCOL_T1 -> STATUS_SUCCESS"
#define PRESENT_PEND "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_PENDING"
#define ABSENT_PEND  "IOCTL_SMARTCARD_IS_ABSENT -> STATUS_PENDING"
#define PRESENT_DONE "done IOCTL_SMARTCARD_IS_PRESENT -> STATUS_SUCCESS"
#define ABSENT_DONE  "done IOCTL_SMARTCARD_IS_ABSENT -> STATUS_SUCCESS"
#define TRANSMIT_OK  "IOCTL_SMARTCARD_TRANSMIT -> STATUS_SUCCESS"

/* Synthesized ATRs (docs/nfc.md, "ATR synthesis"). */
#define ATR_ISO4A     "3B 88 80 01 53 43 52 4D 2D 4E 46 43 60"
#define ATR_CLASSIC1K "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A"

static const uint8_t select_aid[] = {0x00, 0xA4, 0x04, 0x00, 0x08, 0xF0, 0x53,
                                     0x43, 0x52, 0x4D, 0x4E, 0x46, 0x43};
static const uint8_t echo3[] = {0x80, 0xEC, 0x00, 0x00, 0x03, 0x0A, 0x0B, 0x0C};
static const uint8_t get_uid[] = {0xFF, 0xCA, 0x00, 0x00, 0x00};

/* Capture every IOCTL but the vendor ones (see the top comment). */
static void trace_no_vendor(void *user, const struct rm_trace_entry *e)
{
    struct rmt *t = user;
    if (!SMC_IOCTL_IS_VENDOR(e->code))
        rmt_trace_cb(&t->tr, e);
}

/* An rm with an NFC reader `device`; power_down_ms as given (60000: never during a test). */
static struct rmt *setup(uint32_t power_down_ms, bool power_on_insert)
{
    struct rm_config cfg;
    rmt_config(&cfg);
    cfg.power_down_ms = power_down_ms;
    cfg.power_on_insert = power_on_insert;
    struct rmt *t = rmt_new(&cfg);
    rm_set_trace(t->rm, trace_no_vendor, t);
    return t;
}

static void add_empty(struct rmt *t)
{
    assert_int_equal(rm_add_reader(t->rm, "nfc:0"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, STARTUP_ATTRS, PRESENT_PEND);
}

/* A DIRECT handle (the rm sends no IOCTL for it). */
static uint64_t direct(struct rmt *t)
{
    uint64_t h = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 2, RN, SCARD_SHARE_DIRECT, 0, &h, &proto), SCARD_S_SUCCESS);
    return h;
}

/* Send an NFC vendor IOCTL (pcsc-lite's SCARD_CTL_CODE form, as an application would). */
static uint32_t nfc_ctl(struct rmt *t, uint64_t h, uint32_t ioctl, const void *in, size_t len)
{
    uint32_t fn = (ioctl & 0xFFFFu) >> 2;
    return rm_control(t->rm, h, 0x42000000u + fn, in, len, NULL, 0, NULL);
}

static uint32_t tag_enter(struct rmt *t, uint64_t h, const char *profile)
{
    return nfc_ctl(t, h, NFC_IOCTL_TAG_ENTER, profile, strlen(profile));
}

/* The driver's RF activation counter (NFC_IOCTL_INFO, third u32). */
static uint32_t activations(struct rmt *t, uint64_t h)
{
    uint8_t info[NFC_INFO_SIZE];
    size_t n = 0;
    assert_int_equal(rm_control(t->rm, h, NFC_IOCTL_INFO, NULL, 0, info, sizeof(info), &n),
                     SCARD_S_SUCCESS);
    assert_int_equal(n, NFC_INFO_SIZE);
    return (uint32_t)info[8] | (uint32_t)info[9] << 8 | (uint32_t)info[10] << 16 |
           (uint32_t)info[11] << 24;
}

static uint64_t connect_shared(struct rmt *t, uint32_t pref)
{
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, RN, SCARD_SHARE_SHARED, pref, &card, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(proto, RM_PROTOCOL_T1);
    return card;
}

/* Exchange an APDU and compare the response with `want` (hex). */
static void apdu(struct rmt *t, uint64_t card, const uint8_t *cmd, size_t len, const char *want)
{
    uint8_t resp[258];
    size_t n = sizeof(resp);
    uint32_t rp = 0;
    assert_int_equal(rm_transmit(t->rm, card, 0, cmd, len, resp, &n, &rp), SCARD_S_SUCCESS);
    assert_int_equal(rp, RM_PROTOCOL_T1);
    assert_bytes_hex(resp, n, want);
    RMT_EXPECT(t, TRANSMIT_OK);
}

static bool is_unpowered(const struct rm_reader_info *i)
{
    return (i->flags & RM_READER_UNPOWERED) && i->state == SCARD_SWALLOWED;
}

static bool is_empty(const struct rm_reader_info *i)
{
    return (i->flags & RM_READER_EMPTY) != 0;
}

/* ---- start-up ---- */

static void test_startup_empty(void **state)
{
    (void)state;
    struct rmt *t = setup(50, true);
    add_empty(t);
    struct rm_reader_info i = rmt_info(t, RN);
    assert_string_equal(i.device, "nfc:0");
    assert_int_equal(i.characteristics, SCARD_READER_CONTACTLESS);
    assert_int_equal(i.flags, RM_READER_EMPTY);
    assert_int_equal(i.state, SCARD_ABSENT);
    assert_int_equal(i.event_counter, 0);
    rmt_free(t);
}

/* A tag in the field at start-up: the monitor finds it SPECIFIC and reads the ATR as an attribute;
 * no reset. The power-down timeout then switches the "virtual" power off (SWALLOWED). */
static void test_startup_with_tag_no_reset(void **state)
{
    (void)state;
    struct rmt *t = setup(50, true);
    assert_int_equal(rm_add_reader(t->rm, "nfc:0:tag=classic1k"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, STARTUP_ATTRS, "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_SUCCESS", GS(SPECIFIC), ATR,
               GS(SPECIFIC), ABSENT_PEND);
    struct rm_reader_info i = rmt_info(t, RN);
    assert_int_equal(i.flags & (RM_READER_PRESENT | RM_READER_UNPOWERED), RM_READER_PRESENT);
    assert_int_equal(i.event_counter, 1);
    assert_bytes_hex(i.atr, i.atr_len, ATR_CLASSIC1K);
    rmt_power_down(t, RN); /* the timeout elapses */
    RMT_EXPECT(t, GS(SPECIFIC), DOWN, GS(SWALLOWED));
    assert_true(rmt_wait_info(t, RN, is_unpowered));
    i = rmt_info(t, RN);
    assert_bytes_hex(i.atr, i.atr_len, ATR_CLASSIC1K); /* known while the tag is there */
    rmt_free(t);
}

/* Without power_on_insert the monitor only reads the state. */
static void test_startup_with_tag_no_power_on_insert(void **state)
{
    (void)state;
    struct rmt *t = setup(50, false);
    assert_int_equal(rm_add_reader(t->rm, "nfc:0:tag=iso4a"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, STARTUP_ATTRS, "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_SUCCESS", GS(SPECIFIC),
               ABSENT_PEND);
    uint64_t card = connect_shared(t, RM_PROTOCOL_T1);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO, SETP_T1);
    assert_bytes_hex(rmt_info(t, RN).atr, rmt_info(t, RN).atr_len, ATR_ISO4A);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_power_down(t, RN); /* the timeout elapses */
    RMT_EXPECT(t, GS(SPECIFIC), DOWN, GS(SWALLOWED));
    rmt_free(t);
}

/* ---- arrival, connect, disconnect with the power-down timeout, departure ---- */

static void test_arrival_connect_power_down_departure(void **state)
{
    (void)state;
    struct rmt *t = setup(50, true);
    add_empty(t);
    uint64_t ctl = direct(t); /* held across the arrival: no power-down timer yet */
    assert_int_equal(rmt_lines(t), 0);
    assert_int_equal(tag_enter(t, ctl, "iso4a"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SPECIFIC), ATR, GS(SPECIFIC), ABSENT_PEND);
    struct rm_reader_info i = rmt_info(t, RN);
    assert_int_equal(i.flags, RM_READER_PRESENT | RM_READER_INUSE);
    assert_int_equal(i.state, SCARD_SPECIFIC);
    assert_int_equal(i.event_counter, 1);
    assert_bytes_hex(i.atr, i.atr_len, ATR_ISO4A);
    assert_int_equal(activations(t, ctl), 1);

    uint64_t card = connect_shared(t, RM_PROTOCOL_ANY);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO, SETP_TX);
    assert_int_equal(rm_disconnect(t->rm, ctl, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    apdu(t, card, select_aid, sizeof(select_aid), "90 00");
    apdu(t, card, echo3, sizeof(echo3), "0A 0B 0C 90 00");
    /* The last handle goes: the timeout fires in SPECIFIC. */
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_power_down(t, RN); /* the timeout elapses */
    RMT_EXPECT(t, GS(SPECIFIC), DOWN, GS(SWALLOWED));
    assert_true(rmt_wait_info(t, RN, is_unpowered));

    /* Connect again: SWALLOWED → cold reset re-activates the tag over RF. */
    card = connect_shared(t, RM_PROTOCOL_ANY);
    RMT_EXPECT(t, GS(SWALLOWED), COLD, GS(SPECIFIC), ATR, CURPROTO, SETP_TX);
    assert_int_equal(activations(t, card), 2);
    apdu(t, card, select_aid, sizeof(select_aid), "90 00");

    /* The tag leaves the field. */
    assert_int_equal(nfc_ctl(t, card, NFC_IOCTL_TAG_LEAVE, NULL, 0), SCARD_S_SUCCESS);
    RMT_EXPECT(t, ABSENT_DONE, GS(ABSENT), PRESENT_PEND);
    assert_true(rmt_wait_info(t, RN, is_empty));
    i = rmt_info(t, RN);
    assert_int_equal(i.event_counter, 2);
    assert_int_equal(i.atr_len, 0);
    uint8_t resp[16];
    size_t n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, 0, get_uid, sizeof(get_uid), resp, &n, NULL),
                     SCARD_W_REMOVED_CARD);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rmt_lines(t), 0);
    rmt_free(t);
}

/* A storage tag through the rm: UID, then Load Key + General Authenticate + Read Binary. */
static void test_classic_read_through_rm(void **state)
{
    (void)state;
    struct rmt *t = setup(60000, true);
    add_empty(t);
    uint64_t ctl = direct(t);
    assert_int_equal(tag_enter(t, ctl, "classic1k:01020304"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SPECIFIC), ATR, GS(SPECIFIC), ABSENT_PEND);
    uint64_t card = connect_shared(t, RM_PROTOCOL_T1);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO, SETP_T1);
    assert_false(rmt_info(t, RN).power_down_pending);
    apdu(t, card, get_uid, sizeof(get_uid), "01 02 03 04 90 00");
    static const uint8_t load_key[] = {0xFF, 0x82, 0x00, 0x00, 0x06, 0xFF,
                                       0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    static const uint8_t auth4[] = {0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, 0x04, 0x60, 0x00};
    static const uint8_t read4[] = {0xFF, 0xB0, 0x00, 0x04, 0x10};
    apdu(t, card, read4, sizeof(read4), "69 82"); /* not authenticated */
    apdu(t, card, load_key, sizeof(load_key), "90 00");
    apdu(t, card, auth4, sizeof(auth4), "90 00");
    apdu(t, card, read4, sizeof(read4), "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 90 00");
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, ctl, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_true(rmt_info(t, RN).power_down_pending);
    rmt_free(t);
}

/* T=0 alone: the driver refuses the mask (NOT_SUPPORTED) → SCARD_E_PROTO_MISMATCH. */
static void test_protocol_t0_refused(void **state)
{
    (void)state;
    struct rmt *t = setup(60000, true);
    assert_int_equal(rm_add_reader(t->rm, "nfc:0:tag=iso4b"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, STARTUP_ATTRS, "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_SUCCESS", GS(SPECIFIC), ATR,
               GS(SPECIFIC), ABSENT_PEND);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, RN, SCARD_SHARE_SHARED, RM_PROTOCOL_T0, &card, &proto),
                     SCARD_E_PROTO_MISMATCH);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO,
               "IOCTL_SMARTCARD_SET_PROTOCOL SCARD_PROTOCOL_T0 -> STATUS_NOT_SUPPORTED");
    assert_int_equal(rmt_info(t, RN).sharing, 0);
    rmt_free(t);
}

/* RESET re-activates the tag (warm reset), UNPOWER leaves it SWALLOWED. */
static void test_dispositions(void **state)
{
    (void)state;
    struct rmt *t = setup(60000, true);
    assert_int_equal(rm_add_reader(t->rm, "nfc:0:tag=iso4a"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, STARTUP_ATTRS, "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_SUCCESS", GS(SPECIFIC), ATR,
               GS(SPECIFIC), ABSENT_PEND);
    uint64_t card = connect_shared(t, RM_PROTOCOL_ANY);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO, SETP_TX);
    assert_int_equal(activations(t, card), 1);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_RESET_CARD), SCARD_S_SUCCESS);
    RMT_EXPECT(t, WARM, GS(SPECIFIC));
    card = connect_shared(t, RM_PROTOCOL_ANY);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO, SETP_TX);
    assert_int_equal(activations(t, card), 2);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_UNPOWER_CARD), SCARD_S_SUCCESS);
    RMT_EXPECT(t, DOWN, GS(SWALLOWED));
    struct rm_reader_info i = rmt_info(t, RN);
    assert_true(is_unpowered(&i));
    rmt_free(t);
}

/* A tag that leaves under a connection: the handle reports the removal until it reconnects, even
 * after another tag arrived; the reconnect runs the connect sequence on the new tag. */
static void test_tag_leaves_under_connection(void **state)
{
    (void)state;
    struct rmt *t = setup(60000, true);
    assert_int_equal(rm_add_reader(t->rm, "nfc:0:tag=iso4a"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, STARTUP_ATTRS, "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_SUCCESS", GS(SPECIFIC), ATR,
               GS(SPECIFIC), ABSENT_PEND);
    uint64_t card = connect_shared(t, RM_PROTOCOL_ANY);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO, SETP_TX);
    assert_int_equal(nfc_ctl(t, card, NFC_IOCTL_TAG_LEAVE, NULL, 0), SCARD_S_SUCCESS);
    RMT_EXPECT(t, ABSENT_DONE, GS(ABSENT), PRESENT_PEND);
    uint64_t ctl = direct(t);
    assert_int_equal(tag_enter(t, ctl, "classic4k"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SPECIFIC), ATR, GS(SPECIFIC), ABSENT_PEND);
    uint8_t resp[16];
    size_t n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, 0, get_uid, sizeof(get_uid), resp, &n, NULL),
                     SCARD_W_REMOVED_CARD);
    uint32_t proto = 0;
    assert_int_equal(
        rm_reconnect(t->rm, card, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, SCARD_LEAVE_CARD, &proto),
        SCARD_S_SUCCESS);
    assert_int_equal(proto, RM_PROTOCOL_T1);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO, SETP_TX);
    struct rm_reader_info i = rmt_info(t, RN);
    assert_bytes_hex(i.atr, i.atr_len,
                     "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 02 00 00 00 00 69");
    apdu(t, card, get_uid, sizeof(get_uid), "C4 4B 34 6B 90 00");
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, ctl, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

static bool is_radio_off(const struct rm_reader_info *i)
{
    /* UNAVAILABLE alone, as pcscd shows a reader in an unknown state (no INUSE without a card) */
    return i->flags == RM_READER_UNAVAILABLE && i->atr_len == 0;
}

static bool is_empty_info(const struct rm_reader_info *i)
{
    return i->flags == RM_READER_EMPTY;
}

static bool is_specific(const struct rm_reader_info *i)
{
    return (i->flags & RM_READER_PRESENT) && i->state == SCARD_SPECIFIC && i->atr_len > 0;
}

/* The radio switched off takes the tag away: the card is reported removed and the reader is
 * unavailable (not defective) while the radio is off; switched on again, the tag still in the
 * field is found and read as at any arrival. A pending IS_PRESENT survives an off period. */
static void test_radio_off_and_on(void **state)
{
    (void)state;
    struct rmt *t = setup(60000, true);
    assert_int_equal(rm_add_reader(t->rm, "nfc:0:tag=iso4a"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, STARTUP_ATTRS, "IOCTL_SMARTCARD_IS_PRESENT -> STATUS_SUCCESS", GS(SPECIFIC), ATR,
               GS(SPECIFIC), ABSENT_PEND);
    uint64_t card = connect_shared(t, RM_PROTOCOL_ANY);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO, SETP_TX);
    uint8_t off[4] = {0}, on[4] = {1, 0, 0, 0};
    assert_int_equal(nfc_ctl(t, card, NFC_IOCTL_RADIO, off, 4), SCARD_S_SUCCESS);
    /* The removal completes IS_ABSENT; GET_STATE is refused while the radio is off, and the
     * monitor waits for the driver to report the radio back (no polling). */
    assert_true(rmt_wait_line(t, "IOCTL_SMARTCARD_GET_STATE -> STATUS_DEVICE_POWERED_OFF"));
    assert_true(rmt_wait_info(t, RN, is_radio_off));
    struct rm_reader_info i = rmt_info(t, RN);
    assert_int_equal(i.event_counter, 2);
    assert_false(i.defective);
    uint8_t resp[16];
    size_t n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, 0, get_uid, sizeof(get_uid), resp, &n, NULL),
                     SCARD_W_REMOVED_CARD);
    /* Radio back on: the tag is found and its ATR read, without a reset. */
    assert_int_equal(rm_control(t->rm, card, NFC_IOCTL_RADIO, on, 4, NULL, 0, NULL),
                     SCARD_W_REMOVED_CARD); /* the handle must reconnect first */
    uint64_t ctl = direct(t);
    rmt_clear(t);
    assert_int_equal(nfc_ctl(t, ctl, NFC_IOCTL_RADIO, on, 4), SCARD_S_SUCCESS);
    assert_true(rmt_wait_info(t, RN, is_specific));
    assert_true(rmt_wait_line(t, ABSENT_PEND));
    i = rmt_info(t, RN);
    assert_int_equal(i.event_counter, 3);
    assert_bytes_hex(i.atr, i.atr_len, ATR_ISO4A);
    uint32_t proto = 0;
    rmt_clear(t);
    assert_int_equal(
        rm_reconnect(t->rm, card, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, SCARD_LEAVE_CARD, &proto),
        SCARD_S_SUCCESS);
    RMT_EXPECT(t, GS(SPECIFIC), ATR, CURPROTO, SETP_TX);
    apdu(t, card, select_aid, sizeof(select_aid), "90 00");
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, ctl, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

/* Radio off and on with an empty field: the driver completes the pending IS_PRESENT, GET_STATE is
 * refused, and the reader is UNAVAILABLE as with a tag in the field; radio on, the monitor posts
 * IS_PRESENT again, the reader is EMPTY, and the next tag arrives as usual. */
static void test_radio_off_empty_field(void **state)
{
    (void)state;
    struct rmt *t = setup(60000, true);
    add_empty(t);
    uint64_t ctl = direct(t);
    uint8_t off[4] = {0}, on[4] = {1, 0, 0, 0};
    assert_int_equal(nfc_ctl(t, ctl, NFC_IOCTL_RADIO, off, 4), SCARD_S_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, "IOCTL_SMARTCARD_GET_STATE -> STATUS_DEVICE_POWERED_OFF");
    assert_true(rmt_wait_info(t, RN, is_radio_off));
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, RN, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_E_READER_UNAVAILABLE);
    struct rm_reader_info i = rmt_info(t, RN);
    assert_int_equal(i.event_counter, 0);
    assert_int_equal(nfc_ctl(t, ctl, NFC_IOCTL_RADIO, on, 4), SCARD_S_SUCCESS);
    RMT_EXPECT(t, PRESENT_PEND);
    assert_true(rmt_wait_info(t, RN, is_empty_info));
    i = rmt_info(t, RN);
    assert_int_equal(i.flags, RM_READER_EMPTY); /* the DIRECT handle: no INUSE without a card */
    assert_int_equal(tag_enter(t, ctl, "ultralight"), SCARD_S_SUCCESS);
    RMT_EXPECT(t, PRESENT_DONE, GS(SPECIFIC), ATR, GS(SPECIFIC), ABSENT_PEND);
    i = rmt_info(t, RN);
    assert_bytes_hex(i.atr, i.atr_len,
                     "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 03 00 00 00 00 68");
    assert_int_equal(rm_disconnect(t->rm, ctl, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_empty),
        cmocka_unit_test(test_startup_with_tag_no_reset),
        cmocka_unit_test(test_startup_with_tag_no_power_on_insert),
        cmocka_unit_test(test_arrival_connect_power_down_departure),
        cmocka_unit_test(test_classic_read_through_rm),
        cmocka_unit_test(test_protocol_t0_refused),
        cmocka_unit_test(test_dispositions),
        cmocka_unit_test(test_tag_leaves_under_connection),
        cmocka_unit_test(test_radio_off_and_on),
        cmocka_unit_test(test_radio_off_empty_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
