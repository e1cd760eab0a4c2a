/*
 * The NFC reader's card side, driven through its IOCTL entry point (nfc_reader_ioctl) with the
 * simulated RF field: ATR synthesis vectors for every tag type (docs/nfc.md), the SAK / HR0 / UID
 * card-name tables, and the pseudo-APDUs of docs/nfc.md with each status word of PC/SC part 3 — Get Data,
 * Read / Update Binary per storage card type, Load Key, General Authenticate with real access
 * bits, Increment / Decrement, Manage Session / Transparent Exchange, Switch Protocol — plus
 * APDUs passed unchanged to ISO 14443-4 cards.
 *
 * These tests need no libsmc reader object (the core is called directly), so they run whether or
 * not libsmc has the dispatch slot; test_nfc.c covers the same driver through libsmc.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "drivers/nfc/nfc_card.h"
#include "drivers/nfc/nfc_reader.h"
#include "drivers/nfc/nfc_tag.h"
#include "smc/nfc.h"

struct fx {
    struct nfc_reader *rd;
    uint32_t mirror; /* the state as the host was told */
    int arrivals, departures;
};

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

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct nfc_reader_config cfg = {.vendor = "SCRM", .ifd = "IFD", .unit = 0, .radio = true};
    struct nfc_host host = {.ctx = f, .arrived = h_arrived, .left = h_left, .set_state = h_state};
    f->rd = nfc_reader_new(&cfg, &host);
    assert_non_null(f->rd);
    struct nfc_fe_events ev = nfc_reader_events(f->rd);
    void *fe = NULL;
    assert_int_equal(nfc_simfield_ops.open("", &ev, &fe), STATUS_SUCCESS);
    nfc_reader_start(f->rd, &nfc_simfield_ops, fe);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    nfc_reader_free(f->rd);
    free(f);
    return 0;
}

static smc_status vendor(struct fx *f, uint32_t code, const void *in, size_t len)
{
    struct smc_io io = {.code = code, .in = in, .in_len = len};
    return nfc_reader_ioctl(f->rd, &io);
}

static void enter(struct fx *f, const char *profile)
{
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_ENTER, profile, strlen(profile)), STATUS_SUCCESS);
    assert_int_equal(f->mirror, SCARD_SPECIFIC);
}

static void fault(struct fx *f, uint32_t what)
{
    uint8_t in[4] = {(uint8_t)what, 0, 0, 0};
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_FAULT, in, 4), STATUS_SUCCESS);
}

static uint32_t activations(struct fx *f)
{
    uint8_t out[NFC_INFO_SIZE];
    struct smc_io io = {.code = NFC_IOCTL_INFO, .out = out, .out_len = sizeof(out)};
    assert_int_equal(nfc_reader_ioctl(f->rd, &io), STATUS_SUCCESS);
    return out[8] | (uint32_t)out[9] << 8;
}

/* TRANSMIT of an APDU given in hex; the response (data + SW) without the header in resp. */
static smc_status xmit(struct fx *f, const char *hex, uint8_t *resp, size_t *n)
{
    uint8_t in[300] = {0x02, 0, 0, 0, 0x08, 0, 0, 0};
    static uint8_t out[800];
    long k = scrm_hex_decode(hex, in + 8, sizeof(in) - 8);
    assert_true(k > 0);
    struct smc_io io = {.code = IOCTL_SMARTCARD_TRANSMIT,
                        .in = in,
                        .in_len = 8 + (size_t)k,
                        .out = out,
                        .out_len = sizeof(out)};
    smc_status st = nfc_reader_ioctl(f->rd, &io);
    *n = 0;
    if (st == STATUS_SUCCESS) {
        assert_true(io.info >= 10);
        assert_bytes_hex(out, 8, "02 00 00 00 08 00 00 00");
        *n = io.info - 8;
        memcpy(resp, out + 8, *n);
    }
    return st;
}

/* The whole response (data + SW) must be `want`. */
static void expect(struct fx *f, const char *apdu, const char *want)
{
    uint8_t r[800];
    size_t n;
    assert_int_equal(xmit(f, apdu, r, &n), STATUS_SUCCESS);
    assert_bytes_hex(r, n, want);
}

/* Only the status word matters. */
static void expect_sw(struct fx *f, const char *apdu, uint16_t sw)
{
    uint8_t r[800];
    size_t n;
    assert_int_equal(xmit(f, apdu, r, &n), STATUS_SUCCESS);
    assert_int_equal(n >= 2 ? (r[n - 2] << 8) | r[n - 1] : -1, sw);
}

static void atr_of(struct fx *f, const char *want)
{
    uint8_t in[4] = {0x03, 0x03, 0x09, 0x00}, out[40];
    struct smc_io io = {.code = IOCTL_SMARTCARD_GET_ATTRIBUTE,
                        .in = in,
                        .in_len = 4,
                        .out = out,
                        .out_len = sizeof(out)};
    assert_int_equal(nfc_reader_ioctl(f->rd, &io), STATUS_SUCCESS);
    assert_bytes_hex(out, io.info, want);
}

#define KEY_FF  "FF 82 00 00 06 FF FF FF FF FF FF"
#define AUTH_A0 "FF 86 00 00 05 01 00 04 60 00" /* block 4, key A, key number 0 */

/* ---- ATR synthesis (docs/nfc.md) ---- */

static void test_atr_each_tag_type(void **state)
{
    static const struct {
        const char *profile, *atr;
    } v[] = {
        {"iso4a", "3B 88 80 01 53 43 52 4D 2D 4E 46 43 60"},
        {"iso4b", "3B 88 80 01 53 43 52 4D 00 81 71 00 F6"},
        {"jcop", "3B 85 80 01 80 4A 43 4F 50 92"},
        {"classic1k", "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A"},
        {"classic4k", "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 02 00 00 00 00 69"},
        {"mini", "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 26 00 00 00 00 4D"},
        {"ultralight", "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 03 00 00 00 00 68"},
        {"ultralight-c", "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 3A 00 00 00 00 51"},
        {"ultralight-ev1", "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 3D 00 00 00 00 56"},
        {"felica", "3B 8F 80 01 80 4F 0C A0 00 00 03 06 11 00 3B 00 00 00 00 42"},
        {"icode-sli", "3B 8F 80 01 80 4F 0C A0 00 00 03 06 0C 00 14 00 00 00 00 70"},
        {"iso15693", "3B 8F 80 01 80 4F 0C A0 00 00 03 06 0C 00 00 00 00 00 00 64"},
        {"jewel", "3B 8F 80 01 80 4F 0C A0 00 00 03 06 00 00 2F 00 00 00 00 47"},
        {"topaz", "3B 8F 80 01 80 4F 0C A0 00 00 03 06 00 00 30 00 00 00 00 58"},
    };
    struct fx *f = *state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        enter(f, v[i].profile);
        atr_of(f, v[i].atr);
        assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
    }
}

static void test_atr_from_target_fields(void **state)
{
    (void)state;
    uint8_t atr[NFC_ATR_MAX], ss, nn;
    struct nfc_target t = {.proto = NFC_PROTO_MIFARE, .sak = 0x10};
    size_t n = nfc_atr_build(&t, atr, &ss, &nn);
    assert_bytes_hex(atr, n, "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 38 00 00 00 00 53");
    assert_int_equal(ss, 0x03);
    t.sak = 0x11;
    n = nfc_atr_build(&t, atr, NULL, NULL);
    assert_bytes_hex(atr, n, "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 39 00 00 00 00 52");
    t.sak = 0x20; /* unknown SAK: no card name */
    n = nfc_atr_build(&t, atr, NULL, &nn);
    assert_bytes_hex(atr, n, "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 00 00 00 00 00 6B");
    /* Type A ATS with more historical bytes than T0 can count: 15 are kept. */
    struct nfc_target a = {.proto = NFC_PROTO_ISO_DEP_A, .hist_len = 20};
    for (int i = 0; i < 20; i++)
        a.hist[i] = (uint8_t)(i + 1);
    n = nfc_atr_build(&a, atr, &ss, &nn);
    assert_int_equal(n, 4 + 15 + 1);
    assert_bytes_hex(atr, 4, "3B 8F 80 01");
    uint8_t x = 0;
    for (size_t i = 1; i < n; i++)
        x ^= atr[i];
    assert_int_equal(x, 0); /* TCK makes the XOR of T0..TCK zero */
    assert_int_equal(ss, 0);
    /* No historical bytes at all. */
    a.hist_len = 0;
    n = nfc_atr_build(&a, atr, NULL, NULL);
    assert_bytes_hex(atr, n, "3B 80 80 01 01");
}

static void test_card_name_tables(void **state)
{
    (void)state;
    static const uint8_t sak[][2] = {{0x08, 0x01}, {0x09, 0x26}, {0x10, 0x38},
                                     {0x11, 0x39}, {0x18, 0x02}, {0x28, 0x01},
                                     {0x38, 0x02}, {0x20, 0x00}, {0x88, 0x00}};
    for (size_t i = 0; i < sizeof(sak) / sizeof(sak[0]); i++)
        assert_int_equal(nfc_nn_from_sak(sak[i][0], NFC_UL_NONE), sak[i][1]);
    assert_int_equal(nfc_nn_from_sak(0x00, NFC_UL), 0x03);
    assert_int_equal(nfc_nn_from_sak(0x00, NFC_UL_C), 0x3A);
    assert_int_equal(nfc_nn_from_sak(0x00, NFC_UL_EV1), 0x3D);
    /* Jewel / Topaz by HR0. */
    static const uint8_t hr0[][2] = {{0x01, 0x2F}, {0x04, 0x2F}, {0x08, 0x2F}, {0x11, 0x30},
                                     {0x12, 0x30}, {0x02, 0x00}, {0x13, 0x00}};
    for (size_t i = 0; i < sizeof(hr0) / sizeof(hr0[0]); i++) {
        struct nfc_target t = {.proto = NFC_PROTO_JEWEL, .hr0 = hr0[i][0]};
        uint8_t atr[NFC_ATR_MAX], ss, nn;
        nfc_atr_build(&t, atr, &ss, &nn);
        assert_int_equal(ss, 0x00);
        assert_int_equal(nn, hr0[i][1]);
    }
    /* ISO 15693: NXP (04) with IC type 01..03 is an ICODE SLI; anything else has no name. */
    static const uint8_t v[][3] = {{0x04, 0x01, 0x14},
                                   {0x04, 0x02, 0x14},
                                   {0x04, 0x03, 0x14},
                                   {0x04, 0x04, 0x00},
                                   {0x07, 0x01, 0x00}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct nfc_target t = {.proto = NFC_PROTO_ISO15693, .uid_len = 8};
        t.uid[6] = v[i][0];
        t.uid[5] = v[i][1];
        t.uid[7] = 0xE0;
        uint8_t atr[NFC_ATR_MAX], ss, nn;
        nfc_atr_build(&t, atr, &ss, &nn);
        assert_int_equal(ss, 0x0C);
        assert_int_equal(nn, v[i][2]);
    }
}

/* ---- general rules ---- */

static void test_storage_general_errors(void **state)
{
    struct fx *f = *state;
    enter(f, "classic1k");
    expect(f, "00 B0 00 04 10", "68 00"); /* CLA must be FF */
    expect(f, "00 A4 04 00", "68 00");    /* ... checked first */
    expect(f, "FF CA 00 00", "63 00");    /* shorter than 5 bytes */
    expect(f, "FF 12 00 00 00", "6A 81"); /* not emulated */
    expect(f, "FF C2 00 07 00", "6B 00"); /* envelope of no known kind */
    expect(f, "FF C2 01 00 00", "6B 00");
    expect(f, "FF C2 00 02 00", "67 00"); /* Switch Protocol is 9 bytes */
}

/* ---- Get Data ---- */

static void test_get_data(void **state)
{
    struct fx *f = *state;
    enter(f, "classic1k");
    expect(f, "FF CA 00 00 00", "C1 4B 31 6B 90 00");
    expect(f, "FF CA 00 00 04", "C1 4B 31 6B 90 00");
    expect(f, "FF CA 00 00 02", "6C 04");
    expect(f, "FF CA 00 00 08", "C1 4B 31 6B 00 00 00 00 62 82");
    expect(f, "FF CA 01 00 00", "80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 90 00");
    expect(f, "FF CA 01 00 10", "80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 00 62 82");
    expect(f, "FF CA 01 00 0E", "6C 0F");
    expect(f, "FF CA 02 00 00", "6B 00");
    expect(f, "FF CA 00 01 00", "6B 00");
}

static void test_get_data_identifiers(void **state)
{
    static const struct {
        const char *profile, *uid;
    } v[] = {
        {"ultralight", "04 55 4C 31 36 50 47"},
        {"felica", "01 2E 53 43 52 4D 46 43"},    /* IDm */
        {"icode-sli", "5A 4C 53 4D 52 01 04 E0"}, /* UID as sent on air */
        {"jewel", "92 4A 57 4C"},                 /* UID0..3 */
        {"classic1k:0A0B0C0D", "0A 0B 0C 0D"},    /* UID given when it entered */
        {"ultralight:04A1A2A3A4A5A6", "04 A1 A2 A3 A4 A5 A6"},
    };
    struct fx *f = *state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "%s 90 00", v[i].uid);
        enter(f, v[i].profile);
        expect(f, "FF CA 00 00 00", want);
        assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
    }
}

/* ---- ISO 14443-4: APDUs go to the card ---- */

static void test_iso4_passthrough(void **state)
{
    struct fx *f = *state;
    enter(f, "iso4a");
    expect(f, "00 A4 04 00 08 F0 53 43 52 4D 4E 46 43", "90 00");
    expect(f, "00 A4 04 00 02 A0 00", "6A 82");
    expect(f, "80 EC 00 00 03 01 02 03 00", "01 02 03 90 00");
    expect(f, "00 12 00 00", "6D 00");
    /* Get Data is the reader's for 14443-4 too (PC/SC part 3): UID, ATS historical bytes */
    expect(f, "FF CA 00 00 00", "04 53 43 52 4D 34 41 90 00");
    expect(f, "FF CA 01 00 00", "53 43 52 4D 2D 4E 46 43 90 00");
    expect(f, "FF CA 01 00 02", "6C 08");
    expect(f, "FF CA 00 01 00", "6B 00");
    expect(f, "FF B0 00 04 10", "6E 00");
    expect(f, KEY_FF, "90 00"); /* Load Key is the driver's for every card */
    uint8_t r[300];
    size_t n;
    assert_int_equal(xmit(f, "00 84 00 00 08", r, &n), STATUS_SUCCESS);
    assert_int_equal(n, 10);
    assert_bytes_hex(r + 8, 2, "90 00");
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
    enter(f, "iso4b");
    expect(f, "00 A4 04 00 08 F0 53 43 52 4D 4E 46 43", "90 00");
    expect(f, "80 EC 00 00 01 AA", "AA 90 00");
    expect(f, "FF CA 00 00 00", "5C 52 4D 42 90 00"); /* PUPI */
    expect(f, "FF CA 01 00 00", "90 00");             /* no higher-layer response in ATTRIB */
}

/* getdata=card: Get Data goes to the ISO-DEP card as the NFC class extension sends it. */
static int setup_getdata_card(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct nfc_reader_config cfg = {
        .vendor = "SCRM", .ifd = "IFD", .unit = 0, .radio = true, .getdata_card = true};
    struct nfc_host host = {.ctx = f, .arrived = h_arrived, .left = h_left, .set_state = h_state};
    f->rd = nfc_reader_new(&cfg, &host);
    assert_non_null(f->rd);
    struct nfc_fe_events ev = nfc_reader_events(f->rd);
    void *fe = NULL;
    assert_int_equal(nfc_simfield_ops.open("", &ev, &fe), STATUS_SUCCESS);
    nfc_reader_start(f->rd, &nfc_simfield_ops, fe);
    *state = f;
    return 0;
}

static void test_iso4_get_data_to_card(void **state)
{
    struct fx *f = *state;
    enter(f, "iso4a");
    expect(f, "FF CA 00 00 00", "6E 00"); /* the card's application does not know CLA FF */
    expect(f, KEY_FF, "90 00");           /* Load Key stays the driver's */
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
    enter(f, "classic1k");
    expect(f, "FF CA 00 00 00", "C1 4B 31 6B 90 00"); /* storage cards: always the driver */
}

/* ---- MIFARE Classic ---- */

static void test_classic_authenticate_read_write(void **state)
{
    struct fx *f = *state;
    enter(f, "classic1k");
    expect(f, "FF B0 00 04 10", "69 82"); /* not authenticated */
    expect(f, KEY_FF, "90 00");
    expect(f, AUTH_A0, "90 00");
    expect(f, "FF B0 00 04 10", "00000000000000000000000000000000 90 00");
    expect(f, "FF D6 00 05 10 00112233445566778899AABBCCDDEEFF", "90 00");
    expect(f, "FF B0 00 05 00", "00112233445566778899AABBCCDDEEFF 90 00");
    /* The transport trailer reads back without key A. */
    expect(f, "FF B0 00 07 10", "000000000000 FF078069 FFFFFFFFFFFF 90 00");
    /* Another sector was not authenticated. */
    expect(f, "FF B0 00 08 10", "69 82");
    /* The NAK ended the authentication of sector 1 as well. */
    expect(f, "FF B0 00 04 10", "69 82");
    /* Block 0 is the manufacturer's. */
    expect(f, "FF 86 00 00 05 01 00 00 60 00", "90 00");
    expect(f, "FF B0 00 00 10", "C14B316B D0 08 0400 0000 5343524D3030 90 00");
    expect(f, "FF D6 00 00 10 00000000000000000000000000000000", "69 86");
}

static void test_classic_wrong_key(void **state)
{
    struct fx *f = *state;
    enter(f, "classic1k");
    uint32_t before = activations(f);
    expect(f, "FF 82 00 01 06 A0 A1 A2 A3 A4 A5", "90 00");
    expect(f, "FF 86 00 00 05 01 00 04 60 01", "63 00"); /* wrong key: authentication fails */
    assert_int_equal(activations(f), before + 1);        /* the halted tag was woken up */
    expect(f, "FF B0 00 04 10", "69 82");
    expect(f, KEY_FF, "90 00");
    expect(f, AUTH_A0, "90 00");
    expect(f, "FF B0 00 04 10", "00000000000000000000000000000000 90 00");
}

static void test_classic_access_bits(void **state)
{
    struct fx *f = *state;
    enter(f, "classic1k");
    expect(f, KEY_FF, "90 00");
    expect(f, AUTH_A0, "90 00");
    /* Sector 1: key A A0.., key B B0..; block 4 (group 0) C=100: read A|B, write B; the
     * trailer C=011: key A written by B, access bits read A|B / written by B, key B hidden. */
    expect(f, "FF D6 00 07 10 A0A1A2A3A4A5 7E178869 B0B1B2B3B4B5", "90 00");
    expect(f, "FF B0 00 04 10", "00000000000000000000000000000000 90 00");
    expect(f, "FF D6 00 04 10 01010101010101010101010101010101", "69 86"); /* key A: no */
    expect(f, "FF 82 00 02 06 B0 B1 B2 B3 B4 B5", "90 00");
    expect(f, "FF 86 00 00 05 01 00 04 61 02", "90 00");
    expect(f, "FF D6 00 04 10 01010101010101010101010101010101", "90 00"); /* key B: yes */
    expect(f, "FF B0 00 04 10", "01010101010101010101010101010101 90 00");
    expect(f, "FF B0 00 07 10", "000000000000 7E178869 000000000000 90 00");
    /* Key A was changed: the factory key no longer opens the sector, the new one does. */
    expect(f, AUTH_A0, "63 00");
    expect(f, "FF 82 00 03 06 A0 A1 A2 A3 A4 A5", "90 00");
    expect(f, "FF 86 00 00 05 01 00 04 60 03", "90 00");
    expect(f, "FF B0 00 04 10", "01010101010101010101010101010101 90 00");
    /* Transport configuration of sector 2: key B is readable, so it is no key. */
    expect(f, "FF 86 00 00 05 01 00 08 61 00", "63 00");
    expect(f, "FF 86 00 00 05 01 00 08 60 00", "90 00");
}

static void test_classic_value_blocks(void **state)
{
    struct fx *f = *state;
    enter(f, "classic1k");
    expect(f, KEY_FF, "90 00");
    expect(f, AUTH_A0, "90 00");
    expect(f, "FF D6 00 05 10 64000000 9BFFFFFF 64000000 05FA05FA", "90 00");
    expect(f, "FF C2 00 03 0B A0 09 80 01 05 81 04 00 00 00 05", "C0 03 00 90 00 90 00");
    expect(f, "FF B0 00 05 10", "69000000 96FFFFFF 69000000 05FA05FA 90 00");
    expect(f, "FF C2 00 03 0B A1 09 80 01 05 81 04 00 00 00 0A", "C0 03 00 90 00 90 00");
    expect(f, "FF B0 00 05 10", "5F000000 A0FFFFFF 5F000000 05FA05FA 90 00");
    /* Block 6 is not a value block. */
    expect(f, "FF C2 00 03 0B A0 09 80 01 06 81 04 00 00 00 01", "C0 03 01 6A 80 6A 80");
    /* A value that is not 4 bytes; a block outside the card; a sector not authenticated. */
    expect(f, "FF C2 00 03 0A A0 08 80 01 05 81 03 00 00 01", "C0 03 01 6A 80 6A 80");
    expect(f, "FF C2 00 03 0B A0 09 80 01 40 81 04 00 00 00 01", "C0 03 01 6A 82 6A 82");
    expect(f, "FF C2 00 03 0B A0 09 80 01 09 81 04 00 00 00 01", "C0 03 01 69 82 69 82");
    /* Unknown operation object, malformed TLV. */
    expect(f, "FF C2 00 03 03 A5 01 00", "C0 03 01 6A 81 6A 81");
    expect(f, "FF C2 00 03 03 A0 05 80", "C0 03 01 67 00 67 00");
}

static void test_classic_addresses_and_lengths(void **state)
{
    struct fx *f = *state;
    enter(f, "classic1k");
    expect(f, KEY_FF, "90 00");
    expect(f, AUTH_A0, "90 00");
    expect(f, "FF B0 00 40 10", "6A 82");
    expect(f, "FF B0 01 00 10", "6A 82");
    expect(f, "FF B0 00 04 08", "67 00");
    expect(f, "FF B0 00 04 10 00", "67 00");
    expect(f, "FF D6 00 04 08 0001020304050607", "67 00");
    expect(f, "FF D6 00 04 10 0001020304050607", "67 00"); /* Lc says more than there is */
    expect(f, "FF D6 00 40 10 00000000000000000000000000000000", "6A 82");
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
    /* 4K: the 16-block sectors at the end. */
    enter(f, "classic4k");
    expect(f, KEY_FF, "90 00");
    expect(f, "FF 86 00 00 05 01 00 F0 60 00", "90 00");
    expect(f, "FF D6 00 F1 10 0102030405060708090A0B0C0D0E0F10", "90 00");
    expect(f, "FF B0 00 F1 10", "0102030405060708090A0B0C0D0E0F10 90 00");
    expect(f, "FF B0 00 FF 10", "000000000000 FF078069 FFFFFFFFFFFF 90 00");
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
    enter(f, "mini");
    expect(f, KEY_FF, "90 00");
    expect(f, "FF 86 00 00 05 01 00 14 60 00", "6A 82"); /* 20 blocks */
}

/* ---- Load Key, General Authenticate ---- */

static void test_load_key_status_words(void **state)
{
    struct fx *f = *state;
    enter(f, "classic1k");
    expect(f, "FF 82 00 00 06 FF FF FF FF FF", "67 00");       /* 10 bytes */
    expect(f, "FF 82 00 00 06 FF FF FF FF FF FF FF", "67 00"); /* 12 bytes */
    expect(f, "FF 82 80 00 06 FF FF FF FF FF FF", "69 83");
    expect(f, "FF 82 40 00 06 FF FF FF FF FF FF", "69 85");
    expect(f, "FF 82 20 00 06 FF FF FF FF FF FF", "69 87");
    expect(f, "FF 82 01 00 06 FF FF FF FF FF FF", "63 00");
    expect(f, "FF 82 00 00 05 FF FF FF FF FF FF", "69 89");
    expect(f, "FF 82 00 20 06 FF FF FF FF FF FF", "69 88"); /* key number out of range */
    char apdu[64];
    for (int i = 0; i < 8; i++) {
        snprintf(apdu, sizeof(apdu), "FF 82 00 %02X 06 00 01 02 03 04 05", i + 0x10);
        expect(f, apdu, "90 00");
    }
    expect(f, "FF 82 00 00 06 FF FF FF FF FF FF", "69 88"); /* table full */
    expect(f, "FF 82 00 10 06 FF FF FF FF FF FF", "90 00"); /* replacing a key is fine */
    expect(f, "FF 86 00 00 05 01 00 04 60 10", "90 00");
}

static void test_general_authenticate_status_words(void **state)
{
    struct fx *f = *state;
    uint8_t r[64];
    size_t n;
    enter(f, "classic1k");
    /* No key loaded at all: the request fails (NFC class extension behaviour). */
    assert_int_equal(xmit(f, AUTH_A0, r, &n), STATUS_INVALID_DEVICE_STATE);
    expect(f, KEY_FF, "90 00");
    expect(f, "FF 86 00 00 04 01 00 04 60", "67 00");
    expect(f, "FF 86 00 00 05 01 00 04 60 00 00", "67 00");
    expect(f, "FF 86 01 00 05 01 00 04 60 00", "6B 00");
    expect(f, "FF 86 00 00 05 02 00 04 60 00", "69 83");
    expect(f, "FF 86 00 00 05 01 00 04 62 00", "69 86");
    expect(f, "FF 86 00 00 05 01 00 04 60 05", "69 88");
    expect(f, "FF 86 00 00 05 01 00 40 60 00", "6A 82");
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
    enter(f, "ultralight");
    expect(f, KEY_FF, "90 00");
    expect(f, AUTH_A0, "69 81"); /* not a MIFARE Classic */
    expect(f, "FF C2 00 03 0B A0 09 80 01 05 81 04 00 00 00 05", "C0 03 01 69 81 69 81");
}

/* ---- Ultralight family ---- */

static void test_ultralight(void **state)
{
    struct fx *f = *state;
    enter(f, "ultralight");
    expect(f, "FF B0 00 00 10", "04554C95 31365047 10480000 00000000 90 00");
    expect(f, "FF B0 00 04 10", "5343524D2D554C2D5441472D44415441 90 00");
    expect(f, "FF B0 00 0E 10", "00000000 00000000 04554C95 31365047 90 00"); /* rolls over */
    expect(f, "FF B0 00 10 10", "6A 82");
    expect(f, "FF B0 01 04 10", "6A 82");
    expect(f, "FF B0 00 04 04", "67 00");
    expect(f, "FF D6 00 05 04 C0FFEE00", "90 00");
    expect(f, "FF B0 00 05 10", "C0FFEE00 5441472D 44415441 00000000 90 00");
    expect(f, "FF D6 00 00 04 00000000", "65 81"); /* UID pages are read only */
    expect(f, "FF D6 00 10 04 00000000", "6A 82");
    expect(f, "FF D6 00 05 10 00000000000000000000000000000000", "67 00");
    /* Lock page 5 (lock byte 0 bit 5): writing it fails afterwards. */
    expect(f, "FF D6 00 02 04 00002000", "90 00");
    expect(f, "FF D6 00 05 04 11111111", "65 81");
    expect(f, "FF D6 00 06 04 22222222", "90 00");
    /* OTP bits are OR-ed. */
    expect(f, "FF D6 00 03 04 01000000", "90 00");
    expect(f, "FF D6 00 03 04 02000000", "90 00");
    expect(f, "FF B0 00 03 10", "03000000 5343524D C0FFEE00 22222222 90 00");
}

static void test_ultralight_c_and_ev1(void **state)
{
    struct fx *f = *state;
    enter(f, "ultralight-c");
    expect_sw(f, "FF B0 00 2B 10", 0x9000);
    expect(f, "FF B0 00 2C 10", "6A 82"); /* the 3DES key pages cannot be read */
    expect(f, "FF D6 00 2C 04 01020304", "90 00");
    expect(f, "FF D6 00 30 04 01020304", "6A 82");
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
    enter(f, "ultralight-ev1");
    expect(f, "FF B0 00 10 10", "040000FF 00050000 00000000 00000000 90 00"); /* PWD hidden */
    expect(f, "FF B0 00 14 10", "6A 82");
}

/* ---- ISO 15693 ---- */

static void test_iso15693(void **state)
{
    struct fx *f = *state;
    enter(f, "icode-sli");
    expect(f, "FF B0 00 00 04", "5343524D 90 00");
    expect(f, "FF B0 07 00 04", "2E2E2E2E 90 00");
    expect(f, "FF B0 1B 00 04", "00000000 90 00");
    expect(f, "FF B0 1C 00 04", "6A 82");
    expect(f, "FF B0 00 01 04", "6B 00");
    expect(f, "FF B0 00 00 08", "67 00");
    expect(f, "FF D6 03 00 04 DEADBEEF", "90 00");
    expect(f, "FF B0 03 00 00", "DEADBEEF 90 00");
    expect(f, "FF D6 1C 00 04 00000000", "6A 82");
    expect(f, "FF D6 03 00 02 0000", "67 00");
    /* Lock block 3 with a raw frame in a transparent session, then the write is refused. */
    expect(f, "FF C2 00 00 02 81 00", "C0 03 00 90 00 90 00");
    expect(f, "FF C2 00 01 0D 95 0B 22 22 5A 4C 53 4D 52 01 04 E0 03",
           "C0 03 00 90 00 96 02 00 00 97 01 00 90 00");
    expect(f, "FF C2 00 00 02 82 00", "C0 03 00 90 00 90 00");
    expect(f, "FF D6 03 00 04 00000000", "65 81");
    expect(f, "FF B0 03 00 04", "DEADBEEF 90 00");
}

/* ---- Jewel / Topaz ---- */

static void test_jewel(void **state)
{
    struct fx *f = *state;
    enter(f, "jewel");
    uint8_t r[300];
    size_t n;
    assert_int_equal(xmit(f, "FF B0 00 00 00", r, &n), STATUS_SUCCESS); /* READ ALL */
    assert_int_equal(n, 2 + 120 + 2);
    assert_bytes_hex(r, 12, "01 00 92 4A 57 4C 53 43 52 00 E1 10");
    expect(f, "FF B0 00 00 06", "01 00 92 4A 57 4C 90 00");             /* RID */
    expect(f, "FF B0 01 00 01", "E1 90 00");                            /* READ block 1 byte 0 */
    expect(f, "FF B0 02 00 08", "5343524D204A4557 90 00");              /* READ8 block 2 */
    assert_int_equal(xmit(f, "FF B0 00 00 80", r, &n), STATUS_SUCCESS); /* READ SEGMENT 0 */
    assert_int_equal(n, 128 + 2);
    expect(f, "FF B0 00 01 80", "6A 82");
    expect(f, "FF B0 00 00 05", "67 00");
    expect(f, "FF B0 10 00 01", "6B 00");
    expect(f, "FF B0 0F 00 01", "6A 82");
    expect(f, "FF B0 02 01 08", "6B 00");
    expect(f, "FF D6 03 02 01 7A", "90 00"); /* WRITE-E */
    expect(f, "FF B0 03 02 01", "7A 90 00");
    expect(f, "FF D6 04 00 08 0102030405060708", "90 00"); /* WRITE-E8 */
    expect(f, "FF B0 04 00 08", "0102030405060708 90 00");
    expect(f, "FF D6 00 01 01 00", "65 81"); /* block 0: read only */
    expect(f, "FF D6 04 01 08 0102030405060708", "6B 00");
    expect(f, "FF D6 04 00 02 0102", "67 00");
    /* Lock block 5 (lock byte 0 = address 0x70, bit 5). */
    expect(f, "FF D6 0E 00 01 20", "90 00");
    expect(f, "FF D6 05 00 01 55", "65 81");
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
    enter(f, "topaz");
    expect(f, "FF B0 00 00 06", "11 48 93 54 4F 50 90 00");
}

/* ---- FeliCa ---- */

static void test_felica(void **state)
{
    struct fx *f = *state;
    enter(f, "felica");
    /* 1 service 0009, 1 block: element 80 00 (2 bytes). */
    expect(f, "FF B0 00 00 06 01 09 00 01 80 00", "5343524D2046656C69436120626C6B30 90 00");
    /* Service 000B (read only), block 1 with a 3-byte element. */
    expect(f, "FF B0 00 00 07 01 0B 00 01 00 01 00", "524541442D4F4E4C5920424C4F434B31 90 00");
    /* Two services, two blocks. */
    uint8_t r[80];
    size_t n;
    assert_int_equal(xmit(f, "FF B0 00 00 0A 02 09 00 0B 00 02 80 00 81 03", r, &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, 34);
    assert_bytes_hex(r + 16, 18, "524541442D4F4E4C5920424C4F434B33 90 00");
    expect(f, "FF D6 00 00 16 01 09 00 01 80 02 000102030405060708090A0B0C0D0E0F", "90 00");
    expect(f, "FF B0 00 00 06 01 09 00 01 80 02", "000102030405060708090A0B0C0D0E0F 90 00");
    /* FeliCa status words (docs/nfc.md, Pseudo-APDUs). */
    expect(f, "FF B0 00 00 04 00 01 80 00", "FF A1");       /* services */
    expect(f, "FF B0 00 00 06 01 34 12 01 80 00", "01 A6"); /* unknown code */
    expect(f, "FF D6 00 00 16 01 0B 00 01 80 00 000102030405060708090A0B0C0D0E0F", "01 A6");
    expect(f, "FF B0 00 00 04 01 09 00 00", "FF A2");                        /* no block */
    expect(f, "FF B0 00 00 06 01 09 00 01 80 20", "01 A1");                  /* no block 32 */
    expect(f, "FF B0 00 00 05 01 09 00 01 80", "01 A1");                     /* cut list */
    expect(f, "FF D6 00 00 0E 01 09 00 01 80 02 0001020304050607", "01 A9"); /* 8 of 16 */
    expect(f, "FF B0 00 01 06 01 09 00 01 80 00", "6B 00");
    expect(f, "FF B0 00 00 06 01 09 00", "67 00");
}

/* ---- Manage Session / Transparent Exchange ---- */

static void test_transparent_session(void **state)
{
    struct fx *f = *state;
    enter(f, "ultralight");
    expect(f, "FF C2 00 00 02 80 00", "C0 03 00 90 00 80 03 01 00 00 90 00");
    /* Outside a session the exchange is refused. */
    expect(f, "FF C2 00 01 04 95 02 30 04", "C0 03 01 69 86 69 86");
    expect(f, "FF C2 00 00 02 81 00", "C0 03 00 90 00 90 00");
    expect(f, "FF C2 00 01 0B 5F 46 04 40 42 0F 00 95 02 30 04",
           "C0 03 00 90 00 96 02 00 00 97 10 5343524D2D554C2D5441472D44415441 90 00");
    expect(f, "FF C2 00 01 04 95 02 60 00", "C0 03 00 90 00 96 02 00 00 97 01 00 90 00");
    /* Field off: no answer; back on: answers again. */
    expect(f, "FF C2 00 00 02 83 00", "C0 03 00 90 00 90 00");
    expect(f, "FF C2 00 01 04 95 02 30 04", "C0 03 01 64 01 64 01");
    expect(f, "FF C2 00 00 02 84 00", "C0 03 00 90 00 90 00");
    expect_sw(f, "FF C2 00 01 04 95 02 30 04", 0x9000);
    /* Objects not supported, a bad timer, a malformed list. */
    expect(f, "FF C2 00 01 03 91 01 00", "C0 03 01 6A 81 6A 81");
    expect(f, "FF C2 00 00 03 FF 6D 00", "C0 03 01 6A 81 6A 81");
    expect(f, "FF C2 00 00 05 5F 46 02 00 01", "C0 03 01 6A 80 6A 80");
    expect(f, "FF C2 00 01 03 95 05 30", "C0 03 01 67 00 67 00");
    expect(f, "FF C2 00 01 02 95 00", "C0 03 01 6A 80 6A 80");
    /* A silent tag: the second object fails. */
    fault(f, NFC_FAULT_MUTE);
    expect(f, "FF C2 00 01 0B 5F 46 04 E8 03 00 00 95 02 30 04", "C0 03 02 64 01 64 01");
    fault(f, NFC_FAULT_NONE);
    /* Ending the session wakes the tag up again. */
    uint32_t before = activations(f);
    expect(f, "FF C2 00 00 02 82 00", "C0 03 00 90 00 90 00");
    assert_int_equal(activations(f), before + 1);
    expect(f, "FF C2 00 01 04 95 02 30 04", "C0 03 01 69 86 69 86");
    expect(f, "FF C2 00 00 02 83 00", "C0 03 01 69 86 69 86"); /* RF off needs a session */
}

static void test_transparent_classic_raw(void **state)
{
    struct fx *f = *state;
    enter(f, "classic1k");
    expect(f, "FF C2 00 00 02 81 00", "C0 03 00 90 00 90 00");
    /* Raw READ without authentication: NAK 4; raw AUTH with the key, then READ works. */
    expect(f, "FF C2 00 01 04 95 02 30 04", "C0 03 00 90 00 96 02 00 00 97 01 04 90 00");
    expect(f, "FF C2 00 01 0E 95 0C 60 04 FF FF FF FF FF FF C1 4B 31 6B",
           "C0 03 00 90 00 96 02 00 00 97 00 90 00");
    expect(f, "FF C2 00 01 04 95 02 30 04",
           "C0 03 00 90 00 96 02 00 00 97 10 00000000000000000000000000000000 90 00");
}

/* ---- Switch Protocol ---- */

static void test_switch_protocol(void **state)
{
    struct fx *f = *state;
    enter(f, "jcop");
    atr_of(f, "3B 85 80 01 80 4A 43 4F 50 92");
    expect(f, "00 A4 04 00 08 F0 53 43 52 4D 4E 46 43", "90 00");
    expect(f, "FF CA 01 00 00", "80 4A 43 4F 50 90 00"); /* ISO 14443-4: the ATS bytes */
    expect(f, "FF C2 00 02 04 8F 02 00 03", "90 00");
    atr_of(f, "3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A");
    expect(f, "FF CA 00 00 00", "4A 43 4F 50 90 00"); /* now a storage card */
    expect(f, KEY_FF, "90 00");
    expect(f, AUTH_A0, "90 00");
    expect_sw(f, "FF B0 00 04 10", 0x9000);
    expect(f, "FF C2 00 02 04 8F 02 00 04", "90 00");
    atr_of(f, "3B 85 80 01 80 4A 43 4F 50 92");
    expect(f, "80 EC 00 00 01 42", "42 90 00");
    /* Unknown layer, unknown standard: 6F 00, the card stays as it was. */
    expect(f, "FF C2 00 02 04 8F 02 00 05", "6F 00");
    expect(f, "FF C2 00 02 04 8F 02 01 03", "6F 00");
    expect(f, "80 EC 00 00 01 43", "43 90 00");
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
    /* A single-protocol tag cannot change; its own protocol is fine. */
    enter(f, "classic1k");
    expect(f, "FF C2 00 02 04 8F 02 00 04", "6F 00");
    expect(f, "FF C2 00 02 04 8F 02 00 03", "90 00");
    assert_int_equal(vendor(f, NFC_IOCTL_TAG_LEAVE, NULL, 0), STATUS_SUCCESS);
    enter(f, "iso4a");
    expect(f, "FF C2 00 02 04 8F 02 00 03", "6F 00");
}

/* ---- failures on the RF side ---- */

static void test_storage_tag_silent_or_gone(void **state)
{
    struct fx *f = *state;
    uint8_t r[64];
    size_t n;
    enter(f, "ultralight");
    fault(f, NFC_FAULT_MUTE);
    expect(f, "FF B0 00 04 10", "6F 00");
    expect(f, "FF CA 00 00 00", "04 55 4C 31 36 50 47 90 00"); /* answered by the driver */
    fault(f, NFC_FAULT_LEAVE_NEXT);
    assert_int_equal(xmit(f, "FF B0 00 04 10", r, &n), STATUS_NO_MEDIA);
    assert_int_equal(f->mirror, SCARD_ABSENT);
    assert_int_equal(f->departures, 1);
    enter(f, "iso4a");
    fault(f, NFC_FAULT_MUTE);
    assert_int_equal(xmit(f, "00 A4 04 00 02 A0 00", r, &n), STATUS_IO_TIMEOUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_atr_each_tag_type, setup, teardown),
        cmocka_unit_test(test_atr_from_target_fields),
        cmocka_unit_test(test_card_name_tables),
        cmocka_unit_test_setup_teardown(test_storage_general_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_data_identifiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iso4_passthrough, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iso4_get_data_to_card, setup_getdata_card, teardown),
        cmocka_unit_test_setup_teardown(test_classic_authenticate_read_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_classic_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_classic_access_bits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_classic_value_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_classic_addresses_and_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_key_status_words, setup, teardown),
        cmocka_unit_test_setup_teardown(test_general_authenticate_status_words, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ultralight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ultralight_c_and_ev1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iso15693, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jewel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_felica, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transparent_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transparent_classic_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switch_protocol, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storage_tag_silent_or_gone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
