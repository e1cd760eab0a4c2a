/*
 * The NFC reader driver at the IOCTL level: every row of docs/nfc.md (IOCTLs),
 * each attribute (docs/nfc.md, Attributes), the two card-tracking slots, exclusive open, the radio switch, the device string, and
 * the session reset when the client that transmitted goes away.
 *
 * The shared tests run twice: "smc" through libsmc's public API (smc_open / smc_ioctl on
 * "nfc:0"), and "core" on the driver's IOCTL entry point (nfc_reader_ioctl) with a recording
 * host. Card tracking that pends, exclusive open and the device string exist only through
 * libsmc.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drivers/registry.h"
#include "drivers/nfc/nfc_reader.h"
#include "smc/nfc.h"
#include "smc/smc.h"

struct fx {
    bool via_smc;
    struct smc_ctx *ctx;
    struct smc_handle *h;
    struct nfc_reader *rd;
    uint32_t mirror; /* core: the state as the host was told */
    int arrivals, departures;
};

/* ---- the recording host of the core variant ---- */

static void h_arrived(void *ctx)
{
    struct fx *f = ctx;
    f->mirror = SCARD_SPECIFIC;
    f->arrivals++;
}

static void h_left(void *ctx)
{
    struct fx *f = ctx;
    f->mirror = SCARD_ABSENT;
    f->departures++;
}

static void h_state(void *ctx, uint32_t s)
{
    ((struct fx *)ctx)->mirror = s;
}

static int setup_core(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct nfc_reader_config cfg = {.vendor = "SCRM", .ifd = "IFD", .unit = 0, .radio = true};
    struct nfc_host host = {.ctx = f, .arrived = h_arrived, .left = h_left, .set_state = h_state};
    f->rd = nfc_reader_new(&cfg, &host);
    struct nfc_fe_events ev = nfc_reader_events(f->rd);
    void *fe = NULL;
    assert_int_equal(nfc_simfield_ops.open("", &ev, &fe), STATUS_SUCCESS);
    nfc_reader_start(f->rd, &nfc_simfield_ops, fe);
    *state = f;
    return 0;
}

static struct fx *open_smc(const char *device, const char *name)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->via_smc = true;
    f->ctx = smc_ctx_new();
    assert_non_null(f->ctx);
    assert_int_equal(scrm_drivers_register(f->ctx), STATUS_SUCCESS);
    assert_int_equal(smc_add_device(f->ctx, device), STATUS_SUCCESS);
    assert_int_equal(smc_open(f->ctx, name, &f->h), STATUS_SUCCESS);
    return f;
}

static int setup_smc(void **state)
{
    *state = open_smc("nfc:0", "nfc:0");
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->via_smc) {
        smc_close(f->h);
        smc_ctx_free(f->ctx);
    } else {
        nfc_reader_free(f->rd);
    }
    free(f);
    return 0;
}

static struct fx *get(void **state)
{
    return *state;
}

/* ---- IOCTL helpers, the same in both variants ---- */

static smc_status io(struct fx *f, uint32_t code, const void *in, size_t in_len, void *out,
                     size_t out_len, size_t *ret)
{
    if (f->via_smc)
        return smc_ioctl(f->h, code, in, in_len, out, out_len, ret);
    struct smc_io x = {.code = code, .in = in, .in_len = in_len, .out = out, .out_len = out_len};
    smc_status st = nfc_reader_ioctl(f->rd, &x);
    if (ret)
        *ret = x.info;
    return st;
}

static smc_status io_u32(struct fx *f, uint32_t code, uint32_t v, void *out, size_t out_len,
                         size_t *ret)
{
    uint8_t in[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return io(f, code, in, 4, out, out_len, ret);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t state_of(struct fx *f)
{
    uint8_t out[4];
    size_t n = 0;
    assert_int_equal(io(f, IOCTL_SMARTCARD_GET_STATE, NULL, 0, out, 4, &n), STATUS_SUCCESS);
    assert_int_equal(n, 4);
    return le32(out);
}

static uint32_t attr_dword(struct fx *f, uint32_t id)
{
    uint8_t out[8];
    size_t n = 0;
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_GET_ATTRIBUTE, id, out, sizeof(out), &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, 4);
    return le32(out);
}

static smc_status attr(struct fx *f, uint32_t id, uint8_t *out, size_t cap, size_t *n)
{
    return io_u32(f, IOCTL_SMARTCARD_GET_ATTRIBUTE, id, out, cap, n);
}

static smc_status vendor(struct fx *f, uint32_t code, const void *in, size_t len)
{
    return io(f, code, in, len, NULL, 0, NULL);
}

static void enter(struct fx *f, const char *profile)
{
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_ENTER, profile, strlen(profile)), STATUS_SUCCESS);
}

static void leave(struct fx *f)
{
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
}

static smc_status radio(struct fx *f, uint32_t on)
{
    return io_u32(f, NFC_IOCTL_RADIO, on, NULL, 0, NULL);
}

static void fault(struct fx *f, uint32_t what)
{
    assert_int_equal(io_u32(f, NFC_IOCTL_TAG_FAULT, what, NULL, 0, NULL), STATUS_SUCCESS);
}

/* NFC_IOCTL_INFO field i (0 radio, 1 tag in field, 2 activations, 3 session, 4 transparent). */
static uint32_t info(struct fx *f, int i)
{
    uint8_t out[NFC_INFO_SIZE];
    size_t n = 0;
    assert_int_equal(io(f, NFC_IOCTL_INFO, NULL, 0, out, sizeof(out), &n), STATUS_SUCCESS);
    assert_int_equal(n, NFC_INFO_SIZE);
    return le32(out + 4 * i);
}

/* TRANSMIT: header {proto, 8} + APDU (hex); response data + SW without header in resp. */
static smc_status transmit(struct fx *f, uint32_t proto, const char *hex, size_t out_cap,
                           uint8_t *resp, size_t *rlen)
{
    uint8_t in[300] = {0};
    static uint8_t out[600];
    long k = scrm_hex_decode(hex, in + 8, sizeof(in) - 8);
    assert_true(k > 0);
    in[0] = (uint8_t)proto;
    in[4] = 8;
    size_t n = 0;
    smc_status st = io(f, IOCTL_SMARTCARD_TRANSMIT, in, 8 + (size_t)k, out, out_cap, &n);
    *rlen = 0;
    if (st == STATUS_SUCCESS) {
        assert_true(n >= 10);
        assert_bytes_hex(out, 8, "02 00 00 00 08 00 00 00");
        *rlen = n - 8;
        memcpy(resp, out + 8, *rlen);
    }
    return st;
}

static void expect_apdu(struct fx *f, const char *hex, const char *want)
{
    uint8_t r[600];
    size_t n;
    assert_int_equal(transmit(f, SCARD_PROTOCOL_T1, hex, 600, r, &n), STATUS_SUCCESS);
    assert_bytes_hex(r, n, want);
}

/* What was recorded for one asynchronous request. */
struct done {
    int calls;
    smc_status status;
};

static void on_done(void *user, smc_status status, size_t returned)
{
    struct done *d = user;
    (void)returned;
    d->calls++;
    d->status = status;
}

/* IS_PRESENT / IS_ABSENT with the given buffer sizes: the status it is answered with at once
 * (STATUS_PENDING: it would wait; through libsmc the waiting request is then cancelled). */
static smc_status track(struct fx *f, uint32_t code, size_t in_len, size_t out_len)
{
    static uint8_t buf[8];
    if (!f->via_smc)
        return io(f, code, buf, in_len, buf, out_len, NULL);
    struct done d = {0};
    uint64_t id = 0;
    smc_status st = smc_ioctl_async(f->h, code, buf, in_len, buf, out_len, on_done, &d, &id);
    if (st == STATUS_PENDING) {
        assert_true(smc_cancel(f->h, id));
        assert_int_equal(d.calls, 1);
        assert_int_equal(d.status, STATUS_CANCELLED);
    } else {
        assert_int_equal(d.calls, 0);
    }
    return st;
}

/* The client goes away (the RM closes its handle) and a new one comes. */
static void close_client(struct fx *f)
{
    if (!f->via_smc) {
        nfc_reader_client_closed(f->rd);
        return;
    }
    smc_close(f->h);
    f->h = NULL;
    assert_int_equal(smc_open(f->ctx, "nfc:0", &f->h), STATUS_SUCCESS);
}

#define SELECT_AID "00 A4 04 00 08 F0 53 43 52 4D 4E 46 43"
#define IFD_STRING "IFD"

/* ---- states (docs/nfc.md, States) ---- */

static void test_startup_absent_then_tag(void **state)
{
    struct fx *f = get(state);
    assert_int_equal(state_of(f), SCARD_ABSENT);
    assert_int_equal(info(f, 0), 1);
    assert_int_equal(info(f, 1), 0);
    enter(f, "iso4a");
    assert_int_equal(state_of(f), SCARD_SPECIFIC); /* not PRESENT, SWALLOWED or POWERED */
    assert_int_equal(info(f, 2), 1);
    leave(f);
    assert_int_equal(state_of(f), SCARD_ABSENT);
    if (!f->via_smc) {
        assert_int_equal(f->arrivals, 1);
        assert_int_equal(f->departures, 1);
        assert_int_equal(f->mirror, SCARD_ABSENT);
    }
}

static void test_get_state_values(void **state)
{
    struct fx *f = get(state);
    uint8_t out[8];
    size_t n = 0;
    assert_int_equal(io(f, IOCTL_SMARTCARD_GET_STATE, NULL, 0, out, 8, &n), STATUS_SUCCESS);
    assert_int_equal(n, 4);
    assert_int_equal(le32(out), SCARD_ABSENT);
    enter(f, "classic1k");
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_POWER_DOWN, NULL, 0, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(state_of(f), SCARD_SWALLOWED);
    if (!f->via_smc)
        assert_int_equal(f->mirror, SCARD_SWALLOWED);
}

/* ---- the IOCTL set (docs/nfc.md, IOCTLs) ---- */

static void test_supported_ioctls(void **state)
{
    struct fx *f = get(state);
    uint8_t out[64];
    size_t n;
    enter(f, "iso4a");
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_PRESENT, 0, 0), STATUS_SUCCESS);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_ABSENT, 0, 0), STATUS_PENDING);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_COLD_RESET, out, 33, &n),
                     STATUS_SUCCESS);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_GET_ATTRIBUTE, SCARD_ATTR_VENDOR_NAME, out, 32, &n),
                     STATUS_SUCCESS);
    uint8_t set[8] = {0x02, 0x00, 0xFF, 0x7F, 1, 0, 0, 0}; /* DEVICE_IN_USE = 1 */
    assert_int_equal(io(f, IOCTL_SMARTCARD_SET_ATTRIBUTE, set, 8, NULL, 0, NULL), STATUS_SUCCESS);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_SET_PROTOCOL, SCARD_PROTOCOL_T1, out, 4, &n),
                     STATUS_SUCCESS);
    expect_apdu(f, SELECT_AID, "90 00");
}

static void test_unsupported_and_unknown_ioctls(void **state)
{
    struct fx *f = get(state);
    uint8_t out[32];
    size_t n = 0;
    enter(f, "classic1k");
    assert_int_equal(io(f, IOCTL_SMARTCARD_EJECT, NULL, 0, NULL, 0, NULL), STATUS_NOT_SUPPORTED);
    assert_int_equal(io(f, IOCTL_SMARTCARD_SWALLOW, NULL, 0, NULL, 0, NULL), STATUS_NOT_SUPPORTED);
    assert_int_equal(io(f, IOCTL_SMARTCARD_CONFISCATE, NULL, 0, NULL, 0, NULL),
                     STATUS_NOT_SUPPORTED);
    assert_int_equal(io(f, IOCTL_SMARTCARD_GET_PERF_CNTR, NULL, 0, out, sizeof(out), NULL),
                     STATUS_NOT_SUPPORTED);
    /* GET_LAST_ERROR answers 0 even right after a failure. */
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, 7, NULL, 0, NULL), STATUS_INVALID_PARAMETER);
    memset(out, 0xAA, 4);
    assert_int_equal(io(f, IOCTL_SMARTCARD_GET_LAST_ERROR, NULL, 0, out, 4, &n), STATUS_SUCCESS);
    assert_int_equal(n, 4);
    assert_int_equal(le32(out), 0);
    static const uint32_t unknown[] = {
        IOCTL_SMARTCARD_READ,
        IOCTL_SMARTCARD_WRITE,
        SMC_CTL_CODE(13),
        IOCTL_SMARTCARD_GET_FEATURE_REQUEST,
        SMC_CTL_CODE(2048 + 1),
        SMC_CTL_CODE(NFC_IOCTL_BASE + 9),
        0x00220004u,
    };
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        assert_int_equal(io(f, unknown[i], NULL, 0, out, sizeof(out), NULL),
                         STATUS_INVALID_DEVICE_REQUEST);
}

static void test_minimum_buffers(void **state)
{
    struct fx *f = get(state);
    uint8_t in[16] = {0x00, 0x01, 0x01, 0x00}, out[64];
    enter(f, "iso4a");
    struct {
        uint32_t code;
        size_t in_len, out_len;
    } bad[] = {
        {IOCTL_SMARTCARD_GET_ATTRIBUTE, 3, 8}, {IOCTL_SMARTCARD_GET_ATTRIBUTE, 4, 0},
        {IOCTL_SMARTCARD_SET_ATTRIBUTE, 3, 0}, {IOCTL_SMARTCARD_GET_STATE, 0, 3},
        {IOCTL_SMARTCARD_POWER, 3, 33},        {IOCTL_SMARTCARD_SET_PROTOCOL, 3, 4},
        {IOCTL_SMARTCARD_SET_PROTOCOL, 4, 3},  {IOCTL_SMARTCARD_TRANSMIT, 8, 64},
        {IOCTL_SMARTCARD_TRANSMIT, 13, 9},     {IOCTL_SMARTCARD_GET_LAST_ERROR, 0, 3},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(io(f, bad[i].code, in, bad[i].in_len, out, bad[i].out_len, NULL),
                         STATUS_INVALID_PARAMETER);
    /* Card tracking takes no buffer at all, even when it is satisfied at once. */
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_PRESENT, 1, 0), STATUS_INVALID_PARAMETER);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_PRESENT, 0, 1), STATUS_INVALID_PARAMETER);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_ABSENT, 4, 0), STATUS_INVALID_PARAMETER);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_ABSENT, 0, 4), STATUS_INVALID_PARAMETER);
    /* The minimum itself is enough: 8 + 1 in, 8 + 2 out. */
    uint8_t r[16];
    size_t n;
    assert_int_equal(transmit(f, SCARD_PROTOCOL_T1, "00", 10, r, &n), STATUS_SUCCESS);
    assert_bytes_hex(r, n, "67 00");
}

static void test_radio_off_refuses_everything(void **state)
{
    struct fx *f = get(state);
    uint8_t in[16] = {0}, out[64];
    enter(f, "iso4a");
    assert_int_equal(radio(f, 0), STATUS_SUCCESS);
    static const uint32_t codes[] = {
        IOCTL_SMARTCARD_GET_STATE,      IOCTL_SMARTCARD_GET_ATTRIBUTE,
        IOCTL_SMARTCARD_SET_ATTRIBUTE,  IOCTL_SMARTCARD_POWER,
        IOCTL_SMARTCARD_SET_PROTOCOL,   IOCTL_SMARTCARD_TRANSMIT,
        IOCTL_SMARTCARD_GET_LAST_ERROR, IOCTL_SMARTCARD_EJECT,
        IOCTL_SMARTCARD_READ,
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_int_equal(io(f, codes[i], in, sizeof(in), out, sizeof(out), NULL),
                         STATUS_DEVICE_POWERED_OFF);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_PRESENT, 0, 0), STATUS_DEVICE_POWERED_OFF);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_ABSENT, 0, 0), STATUS_DEVICE_POWERED_OFF);
    /* The driver's own vendor IOCTLs still work. */
    assert_int_equal(info(f, 0), 0);
    assert_int_equal(info(f, 1), 1);
    leave(f);
    enter(f, "classic1k");
    assert_int_equal(radio(f, 1), STATUS_SUCCESS);
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
    expect_apdu(f, "FF CA 00 00 00", "C1 4B 31 6B 90 00");
}

static void test_radio_cycle_rediscovers_tag(void **state)
{
    struct fx *f = get(state);
    enter(f, "ultralight");
    uint32_t act = info(f, 2);
    assert_int_equal(radio(f, 0), STATUS_SUCCESS);
    assert_int_equal(radio(f, 0), STATUS_SUCCESS); /* already off */
    assert_int_equal(radio(f, 1), STATUS_SUCCESS);
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
    assert_int_equal(info(f, 2), act + 1);
    if (!f->via_smc) {
        assert_int_equal(f->departures, 1);
        assert_int_equal(f->arrivals, 2);
    }
    assert_int_equal(radio(f, 2), STATUS_INVALID_PARAMETER);
    assert_int_equal(vendor(f, NFC_IOCTL_RADIO, NULL, 0), STATUS_INVALID_PARAMETER);
}

static void test_vendor_ioctls(void **state)
{
    struct fx *f = get(state);
    uint8_t out[NFC_INFO_SIZE];
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_NO_MEDIA);
    assert_int_equal(io_u32(f, NFC_IOCTL_TAG_FAULT, NFC_FAULT_MUTE, NULL, 0, NULL),
                     STATUS_NO_MEDIA);
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_ENTER, "nosuch", 6), STATUS_INVALID_PARAMETER);
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_ENTER, "classic1k:0102", 14),
                     STATUS_INVALID_PARAMETER); /* a 2-byte UID */
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_ENTER, "classic1k:zz", 12), STATUS_INVALID_PARAMETER);
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_ENTER, NULL, 0), STATUS_INVALID_PARAMETER);
    enter(f, "felica");
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_ENTER, "iso4a", 5), STATUS_DEVICE_BUSY);
    assert_int_equal(io_u32(f, NFC_IOCTL_TAG_FAULT, 9, NULL, 0, NULL), STATUS_INVALID_PARAMETER);
    assert_int_equal(io(f, NFC_IOCTL_INFO, NULL, 0, out, NFC_INFO_SIZE - 1, NULL),
                     STATUS_BUFFER_TOO_SMALL);
}

/* ---- per IOCTL ---- */

static void test_power_rows(void **state)
{
    struct fx *f = get(state);
    uint8_t atr[40];
    size_t n = 0;
    /* No card: NO_MEDIA, whatever the command. */
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_COLD_RESET, atr, 33, &n),
                     STATUS_NO_MEDIA);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, 9, atr, 33, &n), STATUS_NO_MEDIA);
    enter(f, "classic1k");
    uint32_t act = info(f, 2);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_COLD_RESET, atr, 33, &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(atr, n, "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A");
    assert_int_equal(info(f, 2), act + 1); /* re-activated over RF */
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_WARM_RESET, atr, 20, &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, 20);
    assert_int_equal(info(f, 2), act + 2);
    /* No output buffer: the reset happens, no ATR. */
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_COLD_RESET, NULL, 0, &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, 0);
    assert_int_equal(info(f, 2), act + 3);
    /* Too small for the ATR. */
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_COLD_RESET, atr, 19, &n),
                     STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, 3, atr, 33, &n), STATUS_INVALID_PARAMETER);
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
}

static void test_power_down_swallowed(void **state)
{
    struct fx *f = get(state);
    uint8_t out[40], r[64];
    size_t n = 0;
    enter(f, "iso4a");
    expect_apdu(f, SELECT_AID, "90 00");
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_POWER_DOWN, out, 33, &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, 0);
    assert_int_equal(state_of(f), SCARD_SWALLOWED);
    assert_int_equal(info(f, 3), 0); /* the transmit session ended */
    /* Virtual power off: the card is there but cannot be used. */
    assert_int_equal(transmit(f, SCARD_PROTOCOL_T1, SELECT_AID, 64, r, &n),
                     STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_SET_PROTOCOL, SCARD_PROTOCOL_T1, out, 4, &n),
                     STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(attr(f, SCARD_ATTR_ATR_STRING, out, 40, &n), STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(attr(f, SCARD_ATTR_ICC_PRESENCE, out, 40, &n), STATUS_SUCCESS);
    assert_int_equal(out[0], 1);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_PRESENT, 0, 0), STATUS_SUCCESS);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_ABSENT, 0, 0), STATUS_PENDING);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_POWER_DOWN, NULL, 0, &n),
                     STATUS_SUCCESS);
    assert_int_equal(state_of(f), SCARD_SWALLOWED);
    /* A warm reset switches it on again. */
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_WARM_RESET, out, 33, &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(out, n, "3B 88 80 01 53 43 52 4D 2D 4E 46 43 60");
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
    expect_apdu(f, SELECT_AID, "90 00");
}

static void test_reset_clears_card_session(void **state)
{
    struct fx *f = get(state);
    uint8_t r[64];
    size_t n;
    enter(f, "classic1k");
    expect_apdu(f, "FF 82 00 00 06 FF FF FF FF FF FF", "90 00");
    expect_apdu(f, "FF 86 00 00 05 01 00 04 60 00", "90 00");
    expect_apdu(f, "FF B0 00 04 10", "00000000000000000000000000000000 90 00");
    assert_int_equal(info(f, 3), 1);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_COLD_RESET, NULL, 0, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(info(f, 3), 0);
    expect_apdu(f, "FF B0 00 04 10", "69 82"); /* authentication gone */
    assert_int_equal(transmit(f, SCARD_PROTOCOL_T1, "FF 86 00 00 05 01 00 04 60 00", 64, r, &n),
                     STATUS_INVALID_DEVICE_STATE); /* and the loaded keys */
}

static void test_reset_when_tag_leaves(void **state)
{
    struct fx *f = get(state);
    uint8_t atr[40];
    size_t n = 99;
    enter(f, "iso4b");
    fault(f, NFC_FAULT_LEAVE_NEXT);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_COLD_RESET, atr, 33, &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, 0);
    assert_int_equal(state_of(f), SCARD_ABSENT);
}

static void test_set_protocol_masks(void **state)
{
    struct fx *f = get(state);
    uint8_t out[8];
    size_t n = 0;
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_SET_PROTOCOL, SCARD_PROTOCOL_T1, out, 4, &n),
                     STATUS_NO_MEDIA);
    enter(f, "iso4a");
    static const uint32_t t1[] = {
        0u,
        SCARD_PROTOCOL_DEFAULT,
        SCARD_PROTOCOL_T1,
        SCARD_PROTOCOL_Tx,
        SCARD_PROTOCOL_DEFAULT | SCARD_PROTOCOL_T0,
        SCARD_PROTOCOL_RAW | SCARD_PROTOCOL_T1,
        SCARD_PROTOCOL_DEFAULT | 0x40u,
    };
    for (size_t i = 0; i < sizeof(t1) / sizeof(t1[0]); i++) {
        memset(out, 0xEE, sizeof(out));
        assert_int_equal(io_u32(f, IOCTL_SMARTCARD_SET_PROTOCOL, t1[i], out, 8, &n),
                         STATUS_SUCCESS);
        assert_int_equal(n, 4);
        assert_bytes_hex(out, 4, "02 00 00 00");
    }
    static const uint32_t not_supported[] = {SCARD_PROTOCOL_T0, SCARD_PROTOCOL_RAW,
                                             SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_RAW,
                                             SCARD_PROTOCOL_T0 | 0x100u};
    for (size_t i = 0; i < sizeof(not_supported) / sizeof(not_supported[0]); i++)
        assert_int_equal(io_u32(f, IOCTL_SMARTCARD_SET_PROTOCOL, not_supported[i], out, 4, &n),
                         STATUS_NOT_SUPPORTED);
    static const uint32_t invalid[] = {0x4u, 0x100u, 0x00020000u};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        assert_int_equal(io_u32(f, IOCTL_SMARTCARD_SET_PROTOCOL, invalid[i], out, 4, &n),
                         STATUS_INVALID_DEVICE_REQUEST);
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
}

static void test_transmit_rows(void **state)
{
    struct fx *f = get(state);
    uint8_t r[600];
    size_t n;
    /* The header's protocol is checked first, then the card. */
    assert_int_equal(transmit(f, SCARD_PROTOCOL_T0, SELECT_AID, 64, r, &n),
                     STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(transmit(f, SCARD_PROTOCOL_T1, SELECT_AID, 64, r, &n), STATUS_NO_MEDIA);
    enter(f, "iso4a");
    assert_int_equal(transmit(f, SCARD_PROTOCOL_RAW, SELECT_AID, 64, r, &n),
                     STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(transmit(f, SCARD_PROTOCOL_UNDEFINED, SELECT_AID, 64, r, &n),
                     STATUS_INVALID_DEVICE_STATE);
    /* ISO 14443-4: the APDU reaches the card as it is. */
    expect_apdu(f, SELECT_AID, "90 00");
    expect_apdu(f, "80 EC 00 00 04 DE AD BE EF", "DE AD BE EF 90 00");
    assert_int_equal(transmit(f, SCARD_PROTOCOL_T1, "00 84 00 00 00", 600, r, &n), STATUS_SUCCESS);
    assert_int_equal(n, 8 + 2);
    /* Output too small for the response. */
    assert_int_equal(transmit(f, SCARD_PROTOCOL_T1, "80 EC 00 00 04 DE AD BE EF", 8 + 5, r, &n),
                     STATUS_BUFFER_TOO_SMALL);
    /* A silent card, then a card that leaves during the exchange. */
    fault(f, NFC_FAULT_MUTE);
    assert_int_equal(transmit(f, SCARD_PROTOCOL_T1, SELECT_AID, 64, r, &n), STATUS_IO_TIMEOUT);
    fault(f, NFC_FAULT_LEAVE_NEXT);
    assert_int_equal(transmit(f, SCARD_PROTOCOL_T1, SELECT_AID, 64, r, &n), STATUS_NO_MEDIA);
    assert_int_equal(state_of(f), SCARD_ABSENT);
}

static void test_transmit_in_out_alias(void **state)
{
    struct fx *f = get(state);
    uint8_t buf[64] = {0x02, 0, 0, 0, 0x08, 0, 0, 0, 0x80, 0xEC, 0, 0, 3, 'a', 'b', 'c'};
    size_t n = 0;
    enter(f, "iso4b");
    assert_int_equal(io(f, IOCTL_SMARTCARD_TRANSMIT, buf, 16, buf, sizeof(buf), &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(buf, n, "02 00 00 00 08 00 00 00 61 62 63 90 00");
}

static void test_get_attribute_rows(void **state)
{
    struct fx *f = get(state);
    uint8_t out[64];
    size_t n = 0;
    /* Card attributes need a card. */
    assert_int_equal(attr(f, SCARD_ATTR_ATR_STRING, out, 64, &n), STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(attr(f, SCARD_ATTR_CURRENT_PROTOCOL_TYPE, out, 64, &n),
                     STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(attr(f, SCARD_ATTR_ICC_TYPE_PER_ATR, out, 64, &n),
                     STATUS_INVALID_DEVICE_STATE);
    /* Attributes an NFC reader does not have. */
    static const uint32_t none[] = {
        SCARD_ATTR_ICC_INTERFACE_STATUS,
        SCARD_ATTR_VENDOR_IFD_SERIAL_NO,
        SCARD_ATTR_DEVICE_FRIENDLY_NAME_A,
        SCARD_ATTR_DEVICE_SYSTEM_NAME_A,
        SCARD_ATTR_DEVICE_IN_USE,
        SCARD_ATTR_CURRENT_F,
        SCARD_ATTR_POWER_MGMT_SUPPORT,
        SCARD_PERF_NUM_TRANSMISSIONS,
        0x12345678u,
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        assert_int_equal(attr(f, none[i], out, 64, &n), STATUS_NOT_SUPPORTED);
    /* Forwarded to a hardware client driver in an NFC stack; there is none. */
    assert_int_equal(attr(f, NFC_ATTR_VENDOR_BRAND_INFO, out, 64, &n), STATUS_INVALID_PARAMETER);
    assert_int_equal(attr(f, NFC_ATTR_DEVICE_CAP_INFO, out, 64, &n), STATUS_INVALID_PARAMETER);
    /* Output too small: the size needed comes back. */
    assert_int_equal(attr(f, SCARD_ATTR_DEFAULT_CLK, out, 3, &n), STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(n, 4);
    enter(f, "iso4a");
    assert_int_equal(attr(f, SCARD_ATTR_ATR_STRING, out, 12, &n), STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(n, 13);
}

static void test_set_attribute_rows(void **state)
{
    struct fx *f = get(state);
    uint8_t in[8] = {0x02, 0x00, 0xFF, 0x7F, 1, 0, 0, 0};
    size_t n = 99;
    assert_int_equal(io(f, IOCTL_SMARTCARD_SET_ATTRIBUTE, in, 8, NULL, 0, &n), STATUS_SUCCESS);
    assert_int_equal(n, 0);
    assert_int_equal(io(f, IOCTL_SMARTCARD_SET_ATTRIBUTE, in, 4, NULL, 0, &n), STATUS_SUCCESS);
    assert_int_equal(
        io_u32(f, IOCTL_SMARTCARD_SET_ATTRIBUTE, SCARD_ATTR_VENDOR_NAME, NULL, 0, NULL),
        STATUS_NOT_SUPPORTED);
    assert_int_equal(
        io_u32(f, IOCTL_SMARTCARD_SET_ATTRIBUTE, SCARD_ATTR_SUPRESS_T1_IFS_REQUEST, NULL, 0, NULL),
        STATUS_NOT_SUPPORTED);
    assert_int_equal(
        io_u32(f, IOCTL_SMARTCARD_SET_ATTRIBUTE, NFC_ATTR_VENDOR_BRAND_INFO, NULL, 0, NULL),
        STATUS_INVALID_PARAMETER);
}

/* ---- attribute values (docs/nfc.md, Attributes) ---- */

static void test_attribute_values(void **state)
{
    struct fx *f = get(state);
    uint8_t out[64];
    size_t n = 0;
    static const struct {
        uint32_t id, value;
    } reader[] = {
        {SCARD_ATTR_CURRENT_CLK, 13560},
        {SCARD_ATTR_CURRENT_D, 1},
        {SCARD_ATTR_CURRENT_IFSC, 32},
        {SCARD_ATTR_CURRENT_IFSD, 254},
        {SCARD_ATTR_CURRENT_BWT, 4},
        {SCARD_ATTR_DEFAULT_CLK, 13560},
        {SCARD_ATTR_MAX_CLK, 13560},
        {SCARD_ATTR_DEFAULT_DATA_RATE, 1},
        {SCARD_ATTR_MAX_DATA_RATE, 1},
        {SCARD_ATTR_CHARACTERISTICS, SCARD_READER_CONTACTLESS},
        {SCARD_ATTR_MAX_IFSD, 254},
        {SCARD_ATTR_VENDOR_IFD_VERSION, 0x01000001u},
        {SCARD_ATTR_PROTOCOL_TYPES, SCARD_PROTOCOL_T1},
        {SCARD_ATTR_DEVICE_UNIT, 0},
        {SCARD_ATTR_CHANNEL_ID, 0x01000000u},
    };
    for (int with_card = 0; with_card < 2; with_card++) {
        for (size_t i = 0; i < sizeof(reader) / sizeof(reader[0]); i++)
            assert_int_equal(attr_dword(f, reader[i].id), reader[i].value);
        assert_int_equal(attr(f, SCARD_ATTR_VENDOR_NAME, out, 64, &n), STATUS_SUCCESS);
        assert_bytes_hex(out, n, "53 43 52 4D"); /* "SCRM", no NUL */
        assert_int_equal(attr(f, SCARD_ATTR_VENDOR_IFD_TYPE, out, 64, &n), STATUS_SUCCESS);
        assert_bytes_equal(out, n, IFD_STRING, strlen(IFD_STRING));
        assert_int_equal(attr(f, SCARD_ATTR_ICC_PRESENCE, out, 64, &n), STATUS_SUCCESS);
        assert_int_equal(n, 1);
        assert_int_equal(out[0], with_card);
        if (!with_card)
            enter(f, "iso4b");
    }
    assert_int_equal(attr_dword(f, SCARD_ATTR_CURRENT_PROTOCOL_TYPE), SCARD_PROTOCOL_T1);
    assert_int_equal(attr(f, SCARD_ATTR_ATR_STRING, out, 64, &n), STATUS_SUCCESS);
    assert_bytes_hex(out, n, "3B 88 80 01 53 43 52 4D 00 81 71 00 F6");
}

static void test_icc_type_per_tag(void **state)
{
    struct fx *f = get(state);
    static const struct {
        const char *profile;
        uint8_t type;
    } v[] = {
        {"iso4a", 5},     {"iso4b", 6},    {"classic1k", 5}, {"ultralight", 5},
        {"icode-sli", 7}, {"iso15693", 7}, {"felica", 0},    {"jewel", 0},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t out[4];
        size_t n = 0;
        enter(f, v[i].profile);
        assert_int_equal(attr(f, SCARD_ATTR_ICC_TYPE_PER_ATR, out, 4, &n), STATUS_SUCCESS);
        assert_int_equal(n, 1);
        assert_int_equal(out[0], v[i].type);
        leave(f);
    }
}

/* ---- tracking answered at once; session reset ---- */

static void test_tracking_immediate(void **state)
{
    struct fx *f = get(state);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_ABSENT, 0, 0), STATUS_SUCCESS);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_PRESENT, 0, 0), STATUS_PENDING);
    enter(f, "jewel");
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_PRESENT, 0, 0), STATUS_SUCCESS);
    assert_int_equal(track(f, IOCTL_SMARTCARD_IS_ABSENT, 0, 0), STATUS_PENDING);
}

static void test_session_reset_on_close(void **state)
{
    struct fx *f = get(state);
    enter(f, "classic1k");
    uint32_t act = info(f, 2);
    close_client(f); /* no transmit: nothing to clean */
    assert_int_equal(info(f, 2), act);
    expect_apdu(f, "FF 82 00 00 06 FF FF FF FF FF FF", "90 00");
    expect_apdu(f, "FF 86 00 00 05 01 00 04 60 00", "90 00");
    assert_int_equal(info(f, 3), 1);
    close_client(f);
    assert_int_equal(info(f, 2), act + 1); /* re-activated */
    assert_int_equal(info(f, 3), 0);
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
    expect_apdu(f, "FF B0 00 04 10", "69 82"); /* no authentication left over */
}

/* ---- through libsmc only: exclusive open, device string, pending card tracking ---- */

static void test_exclusive_open(void **state)
{
    struct fx *f = get(state);
    struct smc_handle *h2 = NULL;
    assert_int_equal(smc_open(f->ctx, "nfc:0", &h2), STATUS_ACCESS_DENIED);
    assert_null(h2);
    smc_close(f->h);
    f->h = NULL;
    assert_int_equal(smc_open(f->ctx, "nfc:0", &f->h), STATUS_SUCCESS);
}

static void test_device_string_options(void **state)
{
    *state = open_smc("nfc:1:vendor=ACME,ifd=Tap,unit=3,tag=classic1k,uid=01020304", "nfc:1");
    struct fx *f = get(state);
    uint8_t out[64];
    size_t n = 0;
    assert_int_equal(attr(f, SCARD_ATTR_VENDOR_NAME, out, 64, &n), STATUS_SUCCESS);
    assert_bytes_equal(out, n, "ACME", 4);
    assert_int_equal(attr(f, SCARD_ATTR_VENDOR_IFD_TYPE, out, 64, &n), STATUS_SUCCESS);
    assert_bytes_equal(out, n, "Tap", 3);
    assert_int_equal(attr_dword(f, SCARD_ATTR_DEVICE_UNIT), 3);
    assert_int_equal(state_of(f), SCARD_SPECIFIC); /* tag in the field from the start */
    expect_apdu(f, "FF CA 00 00 00", "01 02 03 04 90 00");
    smc_close(f->h);
    f->h = NULL;
    assert_int_equal(smc_add_device(f->ctx, "nfc:2:radio=off,tag=iso4a"), STATUS_SUCCESS);
    assert_int_equal(smc_open(f->ctx, "nfc:2", &f->h), STATUS_SUCCESS);
    assert_int_equal(io(f, IOCTL_SMARTCARD_GET_STATE, NULL, 0, out, 4, NULL),
                     STATUS_DEVICE_POWERED_OFF);
    assert_int_equal(info(f, 0), 0);
    assert_int_equal(info(f, 1), 1);
    assert_int_equal(radio(f, 1), STATUS_SUCCESS);
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
    smc_close(f->h);
    f->h = NULL;
    assert_int_equal(smc_add_device(f->ctx, "nfc:3:frontend=sim,radio=on"), STATUS_SUCCESS);
    assert_int_equal(smc_open(f->ctx, "nfc:3", &f->h), STATUS_SUCCESS);
    assert_int_equal(state_of(f), SCARD_ABSENT);
}

static void test_device_string_errors(void **state)
{
    struct fx *f = get(state);
    static const char *bad[] = {
        "nfc:5:bogus=1",
        "nfc:5:tag=nosuch",
        "nfc:5:uid=01020304",
        "nfc:5:tag=classic1k,uid=zz",
        "nfc:5:tag=classic1k,uid=0102030405",
        "nfc:5:radio=maybe",
        "nfc:5:frontend=libnfc",
        "nfc:5:vendor=",
        "nfc:5:unit=70000",
        "nfc:5:ifd=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(smc_add_device(f->ctx, bad[i]), STATUS_INVALID_PARAMETER);
}

static void test_track_present_pends_until_arrival(void **state)
{
    struct fx *f = get(state);
    struct done d = {0}, d2 = {0};
    uint64_t id = 0;
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &d, &id),
        STATUS_PENDING);
    /* One slot per kind: a second IS_PRESENT is busy; IS_ABSENT is satisfied. */
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &d2, NULL),
        STATUS_DEVICE_BUSY);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(d.calls, 0);
    enter(f, "icode-sli");
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, STATUS_SUCCESS);
    assert_int_equal(d2.calls, 0);
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
    assert_false(smc_cancel(f->h, id));
}

static void test_track_absent_pends_until_departure(void **state)
{
    struct fx *f = get(state);
    struct done d = {0}, d2 = {0};
    enter(f, "felica");
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, on_done, &d, NULL),
        STATUS_PENDING);
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, on_done, &d2, NULL),
        STATUS_DEVICE_BUSY);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, NULL),
                     STATUS_SUCCESS);
    /* A power down or a reset is no departure. */
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_POWER_DOWN, NULL, 0, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(io_u32(f, IOCTL_SMARTCARD_POWER, SCARD_COLD_RESET, NULL, 0, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(d.calls, 0);
    leave(f);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, STATUS_SUCCESS);
    assert_int_equal(state_of(f), SCARD_ABSENT);
}

static void test_track_cancel_and_close(void **state)
{
    struct fx *f = get(state);
    struct done d = {0}, d2 = {0};
    uint64_t id = 0;
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &d, &id),
        STATUS_PENDING);
    assert_true(smc_cancel(f->h, id));
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, STATUS_CANCELLED);
    /* The slot is free again; closing the handle cancels what waits on it. */
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &d2, NULL),
        STATUS_PENDING);
    smc_close(f->h);
    f->h = NULL;
    assert_int_equal(d2.calls, 1);
    assert_int_equal(d2.status, STATUS_CANCELLED);
    assert_int_equal(smc_open(f->ctx, "nfc:0", &f->h), STATUS_SUCCESS);
    struct done d3 = {0};
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &d3, NULL),
        STATUS_PENDING);
    enter(f, "iso4a");
    assert_int_equal(d3.calls, 1);
    assert_int_equal(d3.status, STATUS_SUCCESS);
}

static void test_track_radio_off(void **state)
{
    struct fx *f = get(state);
    struct done d = {0}, d2 = {0};
    enter(f, "topaz");
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, on_done, &d, NULL),
        STATUS_PENDING);
    assert_int_equal(radio(f, 0), STATUS_SUCCESS); /* the tag loses the field's power */
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, STATUS_SUCCESS);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, NULL),
                     STATUS_DEVICE_POWERED_OFF);
    leave(f);
    assert_int_equal(radio(f, 1), STATUS_SUCCESS);
    /* A wait for a card ends when the radio goes off, even with an empty field, so the waiter
     * learns the reader is off (its next request answers DEVICE_POWERED_OFF). */
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &d2, NULL),
        STATUS_PENDING);
    assert_int_equal(radio(f, 0), STATUS_SUCCESS);
    assert_int_equal(d2.calls, 1);
    assert_int_equal(d2.status, STATUS_SUCCESS);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, NULL),
                     STATUS_DEVICE_POWERED_OFF);
    enter(f, "topaz");
    assert_int_equal(radio(f, 1), STATUS_SUCCESS);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, NULL),
                     STATUS_SUCCESS);
}

/* A request waited on by one thread, completed by a tag another thread brings. */
struct waiter {
    pthread_mutex_t m;
    pthread_cond_t c;
    int calls;
    smc_status status;
};

static void wake(void *user, smc_status status, size_t returned)
{
    struct waiter *w = user;
    (void)returned;
    pthread_mutex_lock(&w->m);
    w->calls++;
    w->status = status;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m);
}

static void *bring_tag(void *arg)
{
    struct fx *f = arg;
    return (void *)(uintptr_t)vendor(f, NFC_IOCTL_TAG_ENTER, "classic4k", 9);
}

static void test_track_completed_by_another_thread(void **state)
{
    struct fx *f = get(state);
    struct waiter w = {.calls = 0};
    pthread_mutex_init(&w.m, NULL);
    pthread_cond_init(&w.c, NULL);
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, wake, &w, NULL),
        STATUS_PENDING);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bring_tag, f), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&w.m);
    while (w.calls == 0 && pthread_cond_timedwait(&w.c, &w.m, &until) == 0)
        ;
    int calls = w.calls;
    smc_status st = w.status;
    pthread_mutex_unlock(&w.m);
    void *ret;
    pthread_join(t, &ret);
    assert_int_equal((smc_status)(uintptr_t)ret, STATUS_SUCCESS);
    assert_int_equal(calls, 1);
    assert_int_equal(st, STATUS_SUCCESS);
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
    pthread_cond_destroy(&w.c);
    pthread_mutex_destroy(&w.m);
}

/* The resource manager's sequences of docs/resource-manager.md against the driver. */
static void test_rm_sequences(void **state)
{
    struct fx *f = get(state);
    uint8_t out[64];
    size_t n = 0;
    struct done d = {0};
    /* Start-up: name, characteristics, wait for a card. */
    assert_int_equal(attr(f, SCARD_ATTR_VENDOR_NAME, out, 64, &n), STATUS_SUCCESS);
    assert_int_equal(attr(f, SCARD_ATTR_VENDOR_IFD_TYPE, out, 64, &n), STATUS_SUCCESS);
    assert_int_equal(attr_dword(f, SCARD_ATTR_DEVICE_UNIT), 0);
    assert_int_equal(attr_dword(f, SCARD_ATTR_CHARACTERISTICS), SCARD_READER_CONTACTLESS);
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &d, NULL),
        STATUS_PENDING);
    enter(f, "iso4a");
    assert_int_equal(d.calls, 1);
    /* Connect: SPECIFIC at once → ATR and protocol, SET_PROTOCOL. */
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
    assert_int_equal(attr(f, SCARD_ATTR_ATR_STRING, out, 64, &n), STATUS_SUCCESS);
    assert_int_equal(attr_dword(f, SCARD_ATTR_CURRENT_PROTOCOL_TYPE), SCARD_PROTOCOL_T1);
    uint32_t sel = 0;
    assert_int_equal(smc_set_protocol(f->h, SCARD_PROTOCOL_Tx, &sel), STATUS_SUCCESS);
    assert_int_equal(sel, SCARD_PROTOCOL_T1);
    expect_apdu(f, SELECT_AID, "90 00");
    /* Disconnect with the power-down timer: POWER_DOWN → SWALLOWED. */
    assert_int_equal(smc_power(f->h, SCARD_POWER_DOWN, NULL, 0, NULL), STATUS_SUCCESS);
    assert_int_equal(state_of(f), SCARD_SWALLOWED);
    /* Connect again: SWALLOWED → cold reset → SPECIFIC. */
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, out, 33, &n), STATUS_SUCCESS);
    assert_int_equal(n, 13);
    assert_int_equal(state_of(f), SCARD_SPECIFIC);
    assert_int_equal(smc_set_protocol(f->h, SCARD_PROTOCOL_T1, &sel), STATUS_SUCCESS);
    expect_apdu(f, "80 EC 00 00 01 55", "55 90 00");
}

/* Each shared test runs through libsmc and on the core. */
#define SHARED_TESTS(X)                    \
    X(test_startup_absent_then_tag)        \
    X(test_get_state_values)               \
    X(test_supported_ioctls)               \
    X(test_unsupported_and_unknown_ioctls) \
    X(test_minimum_buffers)                \
    X(test_radio_off_refuses_everything)   \
    X(test_radio_cycle_rediscovers_tag)    \
    X(test_vendor_ioctls)                  \
    X(test_power_rows)                     \
    X(test_power_down_swallowed)           \
    X(test_reset_clears_card_session)      \
    X(test_reset_when_tag_leaves)          \
    X(test_set_protocol_masks)             \
    X(test_transmit_rows)                  \
    X(test_transmit_in_out_alias)          \
    X(test_get_attribute_rows)             \
    X(test_set_attribute_rows)             \
    X(test_attribute_values)               \
    X(test_icc_type_per_tag)               \
    X(test_tracking_immediate)             \
    X(test_session_reset_on_close)

#define SMC_ONLY_TESTS(X)                      \
    X(test_exclusive_open)                     \
    X(test_device_string_errors)               \
    X(test_track_present_pends_until_arrival)  \
    X(test_track_absent_pends_until_departure) \
    X(test_track_cancel_and_close)             \
    X(test_track_radio_off)                    \
    X(test_track_completed_by_another_thread)  \
    X(test_rm_sequences)

#define VIA_SMC(t)  {"smc: " #t, t, setup_smc, teardown, NULL},
#define VIA_CORE(t) {"core: " #t, t, setup_core, teardown, NULL},

static int setup_nothing(void **state)
{
    *state = NULL;
    return 0;
}

static int teardown_options(void **state)
{
    if (*state)
        teardown(state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SHARED_TESTS(VIA_CORE) SHARED_TESTS(VIA_SMC)
            SMC_ONLY_TESTS(VIA_SMC){"smc: test_device_string_options", test_device_string_options,
                                    setup_nothing, teardown_options, NULL},
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
