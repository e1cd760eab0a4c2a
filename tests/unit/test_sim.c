/*
 * The simulated reader through libsmc's public API: device-string options, insertion and removal
 * through vendor IOCTLs and the event path, every attribute id the library answers, swallow /
 * eject / confiscate, faults (mute card, removal mid-exchange, reader lost), and end-to-end
 * POWER → SET_PROTOCOL → TRANSMIT with T=0 and T=1 cards.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "drivers/registry.h"
#include "smc/sim.h"
#include "smc/smc.h"

struct fixture {
    struct smc_ctx *ctx;
    struct smc_handle *h;
};

static struct fixture *open_dev(const char *device)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->ctx = smc_ctx_new();
    assert_non_null(f->ctx);
    assert_int_equal(scrm_drivers_register(f->ctx), STATUS_SUCCESS);
    assert_int_equal(smc_add_device(f->ctx, device), STATUS_SUCCESS);
    char name[64];
    size_t n = strcspn(device, ":");
    n += 1 + strcspn(device + n + 1, ":");
    memcpy(name, device, n);
    name[n] = '\0';
    assert_int_equal(smc_open(f->ctx, name, &f->h), STATUS_SUCCESS);
    return f;
}

static int setup(void **state)
{
    *state = open_dev("sim:0");
    return 0;
}

static int setup_swallow(void **state)
{
    *state = open_dev("sim:2:vendor=ACME,ifd=Slot,unit=7,swallows=1,ejects=1,confiscates=1");
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    smc_close(f->h);
    smc_ctx_free(f->ctx);
    free(f);
    return 0;
}

static smc_status insert(struct smc_handle *h, const char *profile)
{
    return smc_ioctl(h, SIM_IOCTL_INSERT, profile, profile ? strlen(profile) : 0, NULL, 0, NULL);
}

static smc_status fault(struct smc_handle *h, uint32_t what, uint32_t param)
{
    uint8_t in[8];
    for (int i = 0; i < 4; i++) {
        in[i] = (uint8_t)(what >> (8 * i));
        in[4 + i] = (uint8_t)(param >> (8 * i));
    }
    return smc_ioctl(h, SIM_IOCTL_FAULT, in, 8, NULL, 0, NULL);
}

static smc_status get_attr(struct smc_handle *h, uint32_t id, uint8_t *out, size_t cap, size_t *n)
{
    uint8_t in[4] = {(uint8_t)id, (uint8_t)(id >> 8), (uint8_t)(id >> 16), (uint8_t)(id >> 24)};
    return smc_ioctl(h, IOCTL_SMARTCARD_GET_ATTRIBUTE, in, 4, out, cap, n);
}

static uint32_t state_of(struct smc_handle *h)
{
    uint32_t s;
    assert_int_equal(smc_get_state(h, &s), STATUS_SUCCESS);
    return s;
}

/* APDU through TRANSMIT with the selected protocol; returns the status, response in resp. */
static smc_status transmit(struct smc_handle *h, uint32_t proto, const char *apdu_hex,
                           uint8_t *resp, size_t cap, size_t *rlen)
{
    static uint8_t in[70000];
    long n = scrm_hex_decode(apdu_hex, in + 8, sizeof(in) - 8);
    assert_true(n > 0);
    memset(in, 0, 8);
    in[0] = (uint8_t)proto;
    in[4] = 8;
    size_t got = 0;
    smc_status st = smc_ioctl(h, IOCTL_SMARTCARD_TRANSMIT, in, (size_t)n + 8, resp, cap, &got);
    if (st == STATUS_SUCCESS) {
        assert_true(got >= 10);
        assert_int_equal(resp[0], proto);
        assert_int_equal(resp[4], 8);
        memmove(resp, resp + 8, got - 8);
        got -= 8;
    }
    *rlen = got;
    return st;
}

static void connect_card(struct smc_handle *h, uint32_t mask, uint32_t want)
{
    uint8_t atr[33];
    size_t n;
    assert_int_equal(smc_power(h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_true(n >= 2);
    uint32_t sel;
    assert_int_equal(smc_set_protocol(h, mask, &sel), STATUS_SUCCESS);
    assert_int_equal(sel, want);
    assert_int_equal(state_of(h), SCARD_SPECIFIC);
}

#define BAD_TCK_ATR "3B 8B 81 31 FE 45 53 43 52 4D 2D 42 41 44 54 43 4B E3"
#define EXTRA_ATR   "3B 4A 02 53 43 52 4D 2D 45 58 54 52 41 90 00"
#define SHORT_ATR   "3B 4B 02 53 43 52 4D 2D 53 48 4F 52 54"

/* ---- tests ---- */

static void test_defaults_and_attributes(void **state)
{
    struct fixture *f = *state;
    uint8_t b[128];
    size_t n;
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
    assert_int_equal(get_attr(f->h, SCARD_ATTR_VENDOR_NAME, b, sizeof(b), &n), STATUS_SUCCESS);
    assert_bytes_equal(b, n, "SimVendor", 9); /* no NUL */
    assert_int_equal(get_attr(f->h, SCARD_ATTR_VENDOR_IFD_TYPE, b, sizeof(b), &n), STATUS_SUCCESS);
    assert_bytes_equal(b, n, "SimReader", 9);
    uint32_t v;
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_DEVICE_UNIT, &v), STATUS_SUCCESS);
    assert_int_equal(v, 0);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_VENDOR_IFD_VERSION, &v), STATUS_SUCCESS);
    assert_int_equal(v, 0x01000001);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_CHANNEL_ID, &v), STATUS_SUCCESS);
    assert_int_equal(v, 0x00F00000);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_PROTOCOL_TYPES, &v), STATUS_SUCCESS);
    assert_int_equal(v, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_DEFAULT_CLK, &v), STATUS_SUCCESS);
    assert_int_equal(v, 3580);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_MAX_CLK, &v), STATUS_SUCCESS);
    assert_int_equal(v, 3580);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_DEFAULT_DATA_RATE, &v), STATUS_SUCCESS);
    assert_int_equal(v, 9600);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_MAX_DATA_RATE, &v), STATUS_SUCCESS);
    assert_int_equal(v, 9600 * 32);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_MAX_IFSD, &v), STATUS_SUCCESS);
    assert_int_equal(v, 254);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_POWER_MGMT_SUPPORT, &v), STATUS_SUCCESS);
    assert_int_equal(v, 0);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_CHARACTERISTICS, &v), STATUS_SUCCESS);
    assert_int_equal(v, 0);
    assert_int_equal(get_attr(f->h, SCARD_ATTR_VENDOR_IFD_SERIAL_NO, b, sizeof(b), &n),
                     STATUS_NOT_SUPPORTED);
    /* a driver that does not name its readers itself: the resource manager names it (and
     * answers DEVICE_FRIENDLY_NAME to applications) */
    assert_int_equal(get_attr(f->h, SCARD_ATTR_DEVICE_FRIENDLY_NAME_A, b, sizeof(b), &n),
                     STATUS_NOT_SUPPORTED);
    assert_int_equal(get_attr(f->h, SCARD_ATTR_DEVICE_SYSTEM_NAME_A, b, sizeof(b), &n),
                     STATUS_SUCCESS);
    assert_bytes_equal(b, n, "sim:0", 5);
    assert_int_equal(get_attr(f->h, SCARD_ATTR_DEVICE_SYSTEM_NAME_W, b, sizeof(b), &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(b, n, "73 00 69 00 6D 00 3A 00 30 00 00 00");
    assert_int_equal(get_attr(f->h, SCARD_ATTR_DEVICE_FRIENDLY_NAME_W, b, sizeof(b), &n),
                     STATUS_NOT_SUPPORTED);
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ICC_PRESENCE, b, sizeof(b), &n), STATUS_SUCCESS);
    assert_bytes_hex(b, n, "00");
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ICC_INTERFACE_STATUS, b, sizeof(b), &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(b, n, "00");
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ICC_TYPE_PER_ATR, b, sizeof(b), &n), STATUS_SUCCESS);
    assert_bytes_hex(b, n, "00");
    /* unknown and undefined ids */
    assert_int_equal(get_attr(f->h, SCARD_ATTR_USER_AUTH_INPUT_DEVICE, b, sizeof(b), &n),
                     STATUS_NOT_SUPPORTED);
    assert_int_equal(get_attr(f->h, 0x12345678, b, sizeof(b), &n), STATUS_NOT_SUPPORTED);
    /* too small: the size needed comes back */
    assert_int_equal(get_attr(f->h, SCARD_ATTR_VENDOR_NAME, b, 4, &n), STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(n, 9);
    assert_int_equal(get_attr(f->h, SCARD_ATTR_DEVICE_UNIT, b, 0, &n), STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(n, 4);
}

static void test_options(void **state)
{
    struct fixture *f = *state;
    uint8_t b[64];
    size_t n;
    assert_int_equal(get_attr(f->h, SCARD_ATTR_VENDOR_NAME, b, sizeof(b), &n), STATUS_SUCCESS);
    assert_bytes_equal(b, n, "ACME", 4);
    uint32_t v;
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_DEVICE_UNIT, &v), STATUS_SUCCESS);
    assert_int_equal(v, 7);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_CHARACTERISTICS, &v), STATUS_SUCCESS);
    assert_int_equal(v, SCARD_READER_SWALLOWS | SCARD_READER_EJECTS | SCARD_READER_CONFISCATES);
    /* bad options are refused with a clear status, nothing is created */
    static const char *bad[] = {"sim:3:vendor=",
                                "sim:3:bogus=1",
                                "sim:3:unit=x",
                                "sim:3:protocols=t2",
                                "sim:3:swallows=yes",
                                "sim:3:card=nosuch",
                                "sim:3:ifsd=255",
                                "sim:3:clk=0",
                                "sim:3:vendor=0123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(smc_add_device(f->ctx, bad[i]), STATUS_INVALID_PARAMETER);
    struct smc_handle *h;
    assert_int_equal(smc_open(f->ctx, "sim:3", &h), STATUS_NO_SUCH_DEVICE);
    /* a card given in the options is there from the start */
    assert_int_equal(smc_add_device(f->ctx, "sim:4:card=t0,protocols=t0"), STATUS_SUCCESS);
    assert_int_equal(smc_open(f->ctx, "sim:4", &h), STATUS_SUCCESS);
    assert_int_equal(state_of(h), SCARD_SWALLOWED);
    assert_int_equal(smc_get_attr_dword(h, SCARD_ATTR_PROTOCOL_TYPES, &v), STATUS_SUCCESS);
    assert_int_equal(v, SCARD_PROTOCOL_T0);
    smc_close(h);
}

static void test_insert_remove_and_presence(void **state)
{
    struct fixture *f = *state;
    uint8_t b[16];
    size_t n;
    assert_int_equal(insert(f->h, NULL), STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_PRESENT); /* a swallowing reader: not yet in position */
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ICC_PRESENCE, b, sizeof(b), &n), STATUS_SUCCESS);
    assert_bytes_hex(b, n, "01");
    assert_int_equal(insert(f->h, NULL), STATUS_DEVICE_BUSY);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_SWALLOW, NULL, 0, NULL, 0, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_SWALLOWED);
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ICC_PRESENCE, b, sizeof(b), &n), STATUS_SUCCESS);
    assert_bytes_hex(b, n, "02");
    assert_int_equal(smc_ioctl(f->h, SIM_IOCTL_REMOVE, NULL, 0, NULL, 0, NULL), STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
    assert_int_equal(smc_ioctl(f->h, SIM_IOCTL_REMOVE, NULL, 0, NULL, 0, NULL), STATUS_NO_MEDIA);
    assert_int_equal(insert(f->h, "nosuchprofile"), STATUS_INVALID_PARAMETER);
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
    uint8_t info[12];
    assert_int_equal(smc_ioctl(f->h, SIM_IOCTL_INFO, NULL, 0, info, sizeof(info), &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(info, n, "00000000 01000000 01000000");
}

static void test_eject_and_confiscate(void **state)
{
    struct fixture *f = *state;
    uint8_t b[4];
    size_t n;
    assert_int_equal(insert(f->h, NULL), STATUS_SUCCESS);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_EJECT, NULL, 0, NULL, 0, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
    assert_int_equal(insert(f->h, NULL), STATUS_SUCCESS);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_CONFISCATE, NULL, 0, NULL, 0, NULL),
                     STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ICC_PRESENCE, b, sizeof(b), &n), STATUS_SUCCESS);
    assert_bytes_hex(b, n, "04");
    assert_int_equal(insert(f->h, NULL), STATUS_SUCCESS);
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ICC_PRESENCE, b, sizeof(b), &n), STATUS_SUCCESS);
    assert_bytes_hex(b, n, "01");
}

static void test_mechanisms_absent(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(insert(f->h, NULL), STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_SWALLOWED); /* no swallow mechanism: in position */
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_EJECT, NULL, 0, NULL, 0, NULL),
                     STATUS_NOT_SUPPORTED);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_CONFISCATE, NULL, 0, NULL, 0, NULL),
                     STATUS_NOT_SUPPORTED);
    assert_int_equal(state_of(f->h), SCARD_SWALLOWED);
}

static void test_t1_end_to_end(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(insert(f->h, "t1"), STATUS_SUCCESS);
    connect_card(f->h, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_PROTOCOL_T1);
    static uint8_t r[70000];
    size_t n;
    assert_int_equal(
        transmit(f->h, SCARD_PROTOCOL_T1, "00 A4 04 00 07 F0 53 43 52 4D 00 01", r, sizeof(r), &n),
        STATUS_SUCCESS);
    assert_true(n >= 2);
    assert_int_equal(r[n - 2], 0x90);
    /* card attributes now valid */
    uint8_t b[40];
    size_t bn;
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ATR_STRING, b, sizeof(b), &bn), STATUS_SUCCESS);
    assert_int_equal(b[0], 0x3B);
    uint32_t v;
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_CURRENT_PROTOCOL_TYPE, &v),
                     STATUS_SUCCESS);
    assert_int_equal(v, SCARD_PROTOCOL_T1);
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_CURRENT_IFSD, &v), STATUS_SUCCESS);
    assert_int_equal(v, 254); /* S(IFS) exchanged at the start of T=1 */
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ICC_TYPE_PER_ATR, b, sizeof(b), &bn),
                     STATUS_SUCCESS);
    assert_bytes_hex(b, bn, "01");
    /* 4 KiB extended APDU through the ECHO command */
    char *hex = malloc(4096 * 2 + 32);
    memcpy(hex, "80EC0000 001000", 15);
    for (int i = 0; i < 4096; i++) {
        static const char d[] = "0123456789ABCDEF";
        hex[15 + 2 * i] = d[(i & 0xFF) >> 4];
        hex[16 + 2 * i] = d[i & 0xF];
    }
    memcpy(hex + 15 + 8192, "0000", 5);
    assert_int_equal(transmit(f->h, SCARD_PROTOCOL_T1, hex, r, sizeof(r), &n), STATUS_SUCCESS);
    free(hex);
    assert_int_equal(n, 4096 + 2);
    for (int i = 0; i < 4096; i++)
        assert_int_equal(r[i], (uint8_t)i);
    assert_int_equal(r[4096], 0x90);
}

static void test_t0_end_to_end(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(insert(f->h, "t0"), STATUS_SUCCESS);
    connect_card(f->h, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_PROTOCOL_T0);
    uint8_t r[300];
    size_t n;
    /* case 4: GET RESPONSE handled by the engine, so the caller sees data + 9000 */
    assert_int_equal(
        transmit(f->h, SCARD_PROTOCOL_T0, "80 EC 00 00 03 01 02 03 00", r, sizeof(r), &n),
        STATUS_SUCCESS);
    assert_bytes_hex(r, n, "01 02 03 90 00");
    /* protocol in the header must be the selected one */
    assert_int_equal(transmit(f->h, SCARD_PROTOCOL_T1, "00 84 00 00 08", r, sizeof(r), &n),
                     STATUS_INVALID_DEVICE_STATE);
    /* output too small for header + answer */
    uint8_t in[] = {1, 0, 0, 0, 8, 0, 0, 0, 0x00, 0x84, 0x00, 0x00, 0x08};
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_TRANSMIT, in, sizeof(in), r, 12, &n),
                     STATUS_BUFFER_TOO_SMALL);
}

/* A card whose ATR breaks ISO 7816-3 is still used, as pcsc-lite uses it: the ATR as read, the
 * first offered protocol (T=0 without a readable TD1) with default parameters and no PPS. */
static void lenient_card(struct fixture *f, const char *profile, const char *want_atr,
                         uint32_t want_proto)
{
    assert_int_equal(insert(f->h, profile), STATUS_SUCCESS);
    uint8_t atr[33];
    size_t n;
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_bytes_hex(atr, n, want_atr);
    assert_int_equal(state_of(f->h), SCARD_NEGOTIABLE);
    uint32_t sel;
    /* the other protocol is not offered: only the default one */
    uint32_t other = want_proto == SCARD_PROTOCOL_T0 ? SCARD_PROTOCOL_T1 : SCARD_PROTOCOL_T0;
    assert_int_equal(smc_set_protocol(f->h, other, &sel), STATUS_NOT_SUPPORTED);
    assert_int_equal(smc_set_protocol(f->h, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &sel),
                     STATUS_SUCCESS);
    assert_int_equal(sel, want_proto);
    uint8_t r[300];
    assert_int_equal(transmit(f->h, want_proto, "80 EC 00 00 03 01 02 03 00", r, sizeof(r), &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(r, n, "01 02 03 90 00");
    assert_int_equal(smc_ioctl(f->h, SIM_IOCTL_REMOVE, NULL, 0, NULL, 0, NULL), STATUS_SUCCESS);
}

static void test_imperfect_atrs(void **state)
{
    struct fixture *f = *state;
    struct test_log_capture cap;
    test_log_capture_start(&cap);
    /* wrong TCK (E3 where B9 is right): T=1, the first offered protocol */
    lenient_card(f, "bad-tck", BAD_TCK_ATR, SCARD_PROTOCOL_T1);
    /* 90 00 after the historical bytes of a T=0 card */
    lenient_card(f, "atr-extra", EXTRA_ATR, SCARD_PROTOCOL_T0);
    /* T0 announces 11 historical bytes, 10 follow */
    lenient_card(f, "short-hist", SHORT_ATR, SCARD_PROTOCOL_T0);
    test_log_capture_stop();
    assert_non_null(strstr(cap.text, "TCK mismatch"));
    assert_non_null(strstr(cap.text, "extra bytes"));
    assert_non_null(strstr(cap.text, "historical bytes but only"));
    assert_non_null(strstr(cap.text, "the card is used with default parameters: T=1, Fi/Di 1/1, "
                                     "no PPS"));
}

static void test_mute_card(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(insert(f->h, "t1"), STATUS_SUCCESS);
    connect_card(f->h, SCARD_PROTOCOL_T1, SCARD_PROTOCOL_T1);
    assert_int_equal(fault(f->h, SIM_FAULT_MUTE, 1), STATUS_SUCCESS);
    uint8_t r[64];
    size_t n;
    smc_status st = transmit(f->h, SCARD_PROTOCOL_T1, "00 84 00 00 08", r, sizeof(r), &n);
    assert_true(st == STATUS_IO_TIMEOUT || st == STATUS_DEVICE_PROTOCOL_ERROR);
    uint8_t atr[33];
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_IO_TIMEOUT);
    assert_int_equal(fault(f->h, SIM_FAULT_NONE, 0), STATUS_SUCCESS);
    connect_card(f->h, SCARD_PROTOCOL_T1, SCARD_PROTOCOL_T1);
    assert_int_equal(transmit(f->h, SCARD_PROTOCOL_T1, "00 84 00 00 08", r, sizeof(r), &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, 10);
}

struct completion {
    int calls;
    smc_status status;
};

static void on_done(void *user, smc_status st, size_t info)
{
    struct completion *c = user;
    (void)info;
    c->calls++;
    c->status = st;
}

static void test_removed_mid_exchange(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(insert(f->h, "t1"), STATUS_SUCCESS);
    connect_card(f->h, SCARD_PROTOCOL_T1, SCARD_PROTOCOL_T1);
    struct completion c = {0};
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, on_done, &c, NULL),
        STATUS_PENDING);
    /* pulled after 300 bytes: in the middle of a chained 1 KiB APDU */
    assert_int_equal(fault(f->h, SIM_FAULT_REMOVE_AFTER, 300), STATUS_SUCCESS);
    char hex[2200];
    memcpy(hex, "80EC0000 000400", 15);
    memset(hex + 15, 'A', 2048);
    memcpy(hex + 15 + 2048, "0000", 5);
    static uint8_t r[4096];
    size_t n;
    assert_int_equal(transmit(f->h, SCARD_PROTOCOL_T1, hex, r, sizeof(r), &n), STATUS_NO_MEDIA);
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, STATUS_SUCCESS);
    uint8_t b[8];
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ATR_STRING, b, sizeof(b), &n),
                     STATUS_INVALID_DEVICE_STATE);
}

static void test_reader_lost(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(insert(f->h, NULL), STATUS_SUCCESS);
    struct completion c = {0};
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, on_done, &c, NULL),
        STATUS_PENDING);
    assert_int_equal(fault(f->h, SIM_FAULT_READER_LOST, 0), STATUS_SUCCESS);
    assert_int_equal(c.calls, 1);
    assert_int_equal(state_of(f->h), SCARD_UNKNOWN);
    uint8_t atr[33];
    size_t n;
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, atr, sizeof(atr), &n),
                     STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(fault(f->h, SIM_FAULT_READER_BACK, 0), STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_SWALLOWED);
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
}

static void test_power_rules(void **state)
{
    struct fixture *f = *state;
    uint8_t atr[33];
    size_t n;
    assert_int_equal(insert(f->h, "t1"), STATUS_SUCCESS);
    /* warm reset of an unpowered card is a cold reset */
    assert_int_equal(smc_power(f->h, SCARD_WARM_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_NEGOTIABLE);
    /* the ATR does not fit: BUFFER_TOO_SMALL with the size needed */
    size_t atr_len = n;
    assert_int_equal(smc_power(f->h, SCARD_WARM_RESET, atr, 2, &n), STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(n, atr_len);
    assert_int_equal(smc_power(f->h, SCARD_POWER_DOWN, NULL, 0, &n), STATUS_SUCCESS);
    assert_int_equal(n, 0);
    assert_int_equal(state_of(f->h), SCARD_SWALLOWED);
    uint8_t b[4];
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ICC_INTERFACE_STATUS, b, sizeof(b), &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(b, n, "00");
    /* specific mode: SPECIFIC straight after the reset */
    assert_int_equal(smc_ioctl(f->h, SIM_IOCTL_REMOVE, NULL, 0, NULL, 0, NULL), STATUS_SUCCESS);
    assert_int_equal(insert(f->h, "specific"), STATUS_SUCCESS);
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_SPECIFIC);
}

static void test_removed_during_power_and_set_protocol(void **state)
{
    struct fixture *f = *state;
    uint8_t atr[33];
    size_t n;
    assert_int_equal(insert(f->h, "fast"), STATUS_SUCCESS);
    assert_int_equal(fault(f->h, SIM_FAULT_REMOVE_ON_RESET, 0), STATUS_SUCCESS);
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_NO_MEDIA);
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
    /* PPS is needed for this card: pull it after the first PPS byte */
    assert_int_equal(insert(f->h, "fast"), STATUS_SUCCESS);
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_int_equal(fault(f->h, SIM_FAULT_REMOVE_AFTER, 1), STATUS_SUCCESS);
    uint32_t sel;
    assert_int_equal(smc_set_protocol(f->h, SCARD_PROTOCOL_T1, &sel), STATUS_NO_MEDIA);
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
    /* no PPS for this card: pulled during the S(IFS) exchange that starts T=1 */
    assert_int_equal(insert(f->h, "t1"), STATUS_SUCCESS);
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_int_equal(fault(f->h, SIM_FAULT_REMOVE_AFTER, 1), STATUS_SUCCESS);
    assert_int_equal(smc_set_protocol(f->h, SCARD_PROTOCOL_T1, &sel), STATUS_NO_MEDIA);
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
}

static uint32_t dword_attr(struct smc_handle *h, uint32_t id)
{
    uint32_t v = 0xDEADBEEF;
    assert_int_equal(smc_get_attr_dword(h, id, &v), STATUS_SUCCESS);
    return v;
}

static void test_card_attributes(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(insert(f->h, "t1"), STATUS_SUCCESS);
    uint8_t b[40];
    size_t n;
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, b, sizeof(b), &n), STATUS_SUCCESS);
    /* NEGOTIABLE: card attributes answer, no protocol yet */
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_PROTOCOL_TYPE), 0);
    uint32_t sel;
    assert_int_equal(smc_set_protocol(f->h, SCARD_PROTOCOL_T1, &sel), STATUS_SUCCESS);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_PROTOCOL_TYPE), SCARD_PROTOCOL_T1);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_CLK), 3580);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_F), 372);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_D), 1);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_N), 0);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_W), 10);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_IFSC), 254);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_IFSD), 254);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_EBC_ENCODING), 0);
    /* CWT = (11 + 2^5) etu and BWT = 11 etu + 2^4 * 960 * 372 / f, etu = 372 / 3.58 MHz */
    uint32_t cwt = dword_attr(f->h, SCARD_ATTR_CURRENT_CWT);
    uint32_t bwt = dword_attr(f->h, SCARD_ATTR_CURRENT_BWT);
    assert_in_range(cwt, 43 * 103, 43 * 105);
    assert_in_range(bwt, 1596000 + 11 * 103, 1596300 + 11 * 105);
    assert_int_equal(get_attr(f->h, SCARD_ATTR_ATR_STRING, b, sizeof(b), &n), STATUS_SUCCESS);
    uint8_t atr[40];
    size_t an;
    assert_int_equal(smc_power(f->h, SCARD_WARM_RESET, atr, sizeof(atr), &an), STATUS_SUCCESS);
    assert_bytes_equal(b, n, atr, an);
    /* CRC card */
    assert_int_equal(smc_ioctl(f->h, SIM_IOCTL_REMOVE, NULL, 0, NULL, 0, NULL), STATUS_SUCCESS);
    assert_int_equal(insert(f->h, "t1-crc"), STATUS_SUCCESS);
    connect_card(f->h, SCARD_PROTOCOL_T1, SCARD_PROTOCOL_T1);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_EBC_ENCODING), 1);
    uint8_t r[300];
    assert_int_equal(transmit(f->h, SCARD_PROTOCOL_T1, "80 EE 00 00 00", r, sizeof(r), &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, 258);
    /* T=0 first, T=1 offered: T=1 chosen through PPS; the card's IFSC and WI are in force */
    assert_int_equal(smc_ioctl(f->h, SIM_IOCTL_REMOVE, NULL, 0, NULL, 0, NULL), STATUS_SUCCESS);
    assert_int_equal(insert(f->h, "t0t1"), STATUS_SUCCESS);
    connect_card(f->h, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, SCARD_PROTOCOL_T1);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_IFSC), 32);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_W), 20);
    assert_int_equal(transmit(f->h, SCARD_PROTOCOL_T1, "80 EE 00 00 00", r, sizeof(r), &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, 258);
}

static void test_pps_through_set_protocol(void **state)
{
    struct fixture *f = *state;
    /* accepted: Fi = 9 (F = 512), Di = 6 (D = 32) in force afterwards */
    assert_int_equal(insert(f->h, "fast"), STATUS_SUCCESS);
    connect_card(f->h, SCARD_PROTOCOL_T1, SCARD_PROTOCOL_T1);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_F), 512);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_D), 32);
    uint8_t r[64];
    size_t n;
    assert_int_equal(transmit(f->h, SCARD_PROTOCOL_T1, "00 84 00 00 08", r, sizeof(r), &n),
                     STATUS_SUCCESS);
    /* DEFAULT: no PPS, default parameters */
    assert_int_equal(smc_ioctl(f->h, SIM_IOCTL_REMOVE, NULL, 0, NULL, 0, NULL), STATUS_SUCCESS);
    assert_int_equal(insert(f->h, "fast"), STATUS_SUCCESS);
    connect_card(f->h, SCARD_PROTOCOL_T1 | SCARD_PROTOCOL_DEFAULT, SCARD_PROTOCOL_T1);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_F), 372);
    assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_D), 1);
    /* refused: reset and default parameters, still usable */
    static const char *fallback[] = {"pps-refuse", "pps-partial"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(smc_ioctl(f->h, SIM_IOCTL_REMOVE, NULL, 0, NULL, 0, NULL), STATUS_SUCCESS);
        assert_int_equal(insert(f->h, fallback[i]), STATUS_SUCCESS);
        connect_card(f->h, SCARD_PROTOCOL_T1, SCARD_PROTOCOL_T1);
        assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_F), 372);
        assert_int_equal(dword_attr(f->h, SCARD_ATTR_CURRENT_D), 1);
        assert_int_equal(transmit(f->h, SCARD_PROTOCOL_T1, "00 84 00 00 08", r, sizeof(r), &n),
                         STATUS_SUCCESS);
        assert_int_equal(n, 10);
    }
}

static void test_inverse_convention_card(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(insert(f->h, "inverse"), STATUS_SUCCESS);
    uint8_t atr[33];
    size_t n;
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_int_equal(atr[0], 0x3F); /* the logical ATR, as a convention-aware reader reports it */
    uint32_t sel;
    assert_int_equal(smc_set_protocol(f->h, SCARD_PROTOCOL_T0, &sel), STATUS_SUCCESS);
    uint8_t r[300];
    assert_int_equal(transmit(f->h, SCARD_PROTOCOL_T0, "00 A4 00 0C 02 2F 01", r, sizeof(r), &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(r, n, "90 00");
    assert_int_equal(transmit(f->h, SCARD_PROTOCOL_T0, "00 B0 00 00 04", r, sizeof(r), &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(r, n, "53 43 52 4D 90 00"); /* "SCRM" */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_and_attributes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options, setup_swallow, teardown),
        cmocka_unit_test_setup_teardown(test_insert_remove_and_presence, setup_swallow, teardown),
        cmocka_unit_test_setup_teardown(test_eject_and_confiscate, setup_swallow, teardown),
        cmocka_unit_test_setup_teardown(test_mechanisms_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_t1_end_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_t0_end_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mute_card, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_mid_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_power_rules, setup_swallow, teardown),
        cmocka_unit_test_setup_teardown(test_removed_during_power_and_set_protocol, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_card_attributes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pps_through_set_protocol, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inverse_convention_card, setup, teardown),
        cmocka_unit_test_setup_teardown(test_imperfect_atrs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
