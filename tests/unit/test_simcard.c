/*
 * Tests for the simulated card (src/drivers/sim/simcard*.c), driven with raw bytes as a reader
 * would send them and checked against the exact bytes the card must answer: the ATR of every
 * profile, PPS, T=0 procedure bytes with 61xx/6Cxx/GET RESPONSE/ENVELOPE, T=1 blocks with every
 * S-block, chaining both ways and error recovery, each fault, the inverse convention on the
 * wire, and the ISO 7816-4 application.
 *
 * Expected T=1 blocks are written out in full (EDC included); a small reader loop (t1_apdu) is
 * used only where the byte count makes literal blocks unreadable (large chained APDUs).
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "drivers/sim/simcard.h"
#include "drivers/sim/simcard_priv.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static uint8_t g_out[70000];

static struct simcard *card(const char *profile)
{
    struct simcard_config cfg;
    assert_true(simcard_profile(profile, &cfg));
    struct simcard *c = simcard_new(&cfg);
    assert_non_null(c);
    simcard_seed(c, 12345);
    return c;
}

static struct simcard *card_cfg(const struct simcard_config *cfg)
{
    struct simcard *c = simcard_new(cfg);
    assert_non_null(c);
    simcard_seed(c, 777);
    return c;
}

/* Power the card up and drop the ATR. */
static struct simcard *powered(const char *profile)
{
    struct simcard *c = card(profile);
    uint8_t atr[40];
    assert_true(simcard_reset(c, true, atr, sizeof(atr)) > 0);
    return c;
}

static void rx_bytes(struct simcard *c, const uint8_t *b, size_t n)
{
    simcard_rx(c, b, n);
}

static void rx_hex(struct simcard *c, const char *hex)
{
    uint8_t b[1024];
    long n = scrm_hex_decode(hex, b, sizeof(b));
    assert_true(n >= 0);
    rx_bytes(c, b, (size_t)n);
}

/* Everything the card has queued. */
static size_t take(struct simcard *c)
{
    return simcard_tx(c, g_out, sizeof(g_out));
}

#define EXPECT(c, in, out)                  \
    do {                                    \
        rx_hex((c), (in));                  \
        size_t n_ = take(c);                \
        assert_bytes_hex(g_out, n_, (out)); \
    } while (0)

static uint8_t lrc(const uint8_t *b, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= b[i];
    return x;
}

/* Send one LRC block built here. */
static void send_block(struct simcard *c, uint8_t pcb, const uint8_t *inf, size_t len)
{
    uint8_t b[260];
    b[0] = 0;
    b[1] = pcb;
    b[2] = (uint8_t)len;
    if (len)
        memcpy(b + 3, inf, len);
    b[3 + len] = lrc(b, 3 + len);
    rx_bytes(c, b, 4 + len);
}

/* Check one LRC block from the card at g_out[0..n): well formed; returns the INF length. */
static size_t check_block(size_t n, uint8_t want_pcb)
{
    assert_true(n >= 4);
    assert_int_equal(n, 4 + g_out[2]);
    assert_int_equal(lrc(g_out, n - 1), g_out[n - 1]);
    assert_int_equal(g_out[1], want_pcb);
    return g_out[2];
}

/*
 * A minimal T=1 reader (LRC, no error handling) for large APDUs: chains the command in blocks of
 * ifsc bytes, acknowledges the card's chain, returns the response length in resp.
 */
static size_t t1_apdu(struct simcard *c, uint8_t *ns, uint8_t *nr, size_t ifsc, const uint8_t *apdu,
                      size_t len, uint8_t *resp, size_t cap)
{
    size_t pos = 0, got = 0;
    for (;;) {
        size_t k = len - pos > ifsc ? ifsc : len - pos;
        bool more = pos + k < len;
        send_block(c, (uint8_t)((*ns << 6) | (more ? 0x20 : 0)), apdu + pos, k);
        *ns ^= 1;
        pos += k;
        size_t n = take(c);
        if (!more)
            break;
        check_block(n, (uint8_t)(0x80 | (*ns << 4)));
    }
    /* the first response block is in g_out */
    for (;;) {
        size_t blk = 4 + g_out[2];
        assert_int_equal(g_out[1] & 0xDF, (uint8_t)(*nr << 6));
        assert_int_equal(lrc(g_out, blk - 1), g_out[blk - 1]);
        assert_true(got + g_out[2] <= cap);
        memcpy(resp + got, g_out + 3, g_out[2]);
        got += g_out[2];
        *nr ^= 1;
        if (!(g_out[1] & 0x20))
            return got;
        send_block(c, (uint8_t)(0x80 | (*nr << 4)), NULL, 0);
        take(c);
    }
}

/* T=1 APDU from hex with fresh sequence numbers tracked in a static pair per test. */
struct t1_session {
    struct simcard *c;
    uint8_t ns, nr;
    size_t ifsc;
    uint8_t resp[70000];
    size_t resp_len;
};

static struct t1_session *t1_open(const char *profile)
{
    struct t1_session *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->c = powered(profile);
    s->ifsc = 254;
    /* IFSD 254 so that responses come in big blocks */
    EXPECT(s->c, "00 C1 01 FE 3E", "00 E1 01 FE 1E");
    return s;
}

static void t1_close(struct t1_session *s)
{
    simcard_free(s->c);
    free(s);
}

static void t1_raw(struct t1_session *s, const uint8_t *apdu, size_t len)
{
    s->resp_len = t1_apdu(s->c, &s->ns, &s->nr, s->ifsc, apdu, len, s->resp, sizeof(s->resp));
}

static void t1_hex(struct t1_session *s, const char *hex)
{
    uint8_t b[600];
    long n = scrm_hex_decode(hex, b, sizeof(b));
    assert_true(n >= 1);
    t1_raw(s, b, (size_t)n);
}

#define T1_EXPECT(s, apdu_hex, resp_hex)                        \
    do {                                                        \
        t1_hex((s), (apdu_hex));                                \
        assert_bytes_hex((s)->resp, (s)->resp_len, (resp_hex)); \
    } while (0)

static uint16_t t1_sw(const struct t1_session *s)
{
    assert_true(s->resp_len >= 2);
    return (uint16_t)(s->resp[s->resp_len - 2] << 8 | s->resp[s->resp_len - 1]);
}

/* ---- ATR --------------------------------------------------------------------------------- */

struct atr_case {
    const char *profile;
    const char *atr;
    bool tck;
};

static const struct atr_case atr_cases[] = {
    {"t1", "3B 87 81 31 FE 45 53 43 52 4D 2D 54 31 CB", true},
    {"t0", "3B 47 02 53 43 52 4D 2D 54 30", false},
    {"t0t1", "3B 89 C0 14 21 53 53 43 52 4D 2D 44 55 41 4C 11", true},
    {"t1-crc", "3B 88 81 71 FE 45 01 53 43 52 4D 2D 43 52 43 B2", true},
    {"inverse", "03 EE FE 73 80 5D 35 3D B5 4D 4B 6D 8D 95 70", true},
    {"specific", "3B 99 18 91 01 31 FE 45 53 43 52 4D 2D 53 50 45 43 BC", true},
    {"fast", "3B 99 96 81 31 FE 45 53 43 52 4D 2D 46 41 53 54 26", true},
    {"pps-refuse", "3B 9A 96 81 31 FE 45 53 43 52 4D 2D 4E 4F 50 50 53 77", true},
    {"pps-partial", "3B 99 96 81 31 FE 45 53 43 52 4D 2D 50 41 52 54 31", true},
    {"t0-envelope", "3B 48 02 53 43 52 4D 2D 45 4E 56", false},
};

static uint8_t test_invert(uint8_t b)
{
    uint8_t r = 0;
    for (int i = 0; i < 8; i++)
        r = (uint8_t)(r << 1 | ((b >> i) & 1));
    return (uint8_t)~r;
}

static void test_atr_profiles(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(atr_cases) / sizeof(atr_cases[0]); i++) {
        const struct atr_case *k = &atr_cases[i];
        struct simcard *c = card(k->profile);
        uint8_t atr[40];
        size_t n = simcard_reset(c, true, atr, sizeof(atr));
        assert_bytes_hex(atr, n, k->atr);
        if (atr[0] == 0x03)
            for (size_t j = 0; j < n; j++)
                atr[j] = test_invert(atr[j]);
        if (k->tck)
            assert_int_equal(lrc(atr + 1, n - 1), 0);
        /* warm reset: the same ATR */
        uint8_t again[40];
        assert_int_equal(simcard_reset(c, false, again, sizeof(again)), n);
        simcard_free(c);
    }
    struct simcard_config cfg;
    assert_false(simcard_profile("nope", &cfg));
    assert_true(simcard_profile("t1", &cfg));
    assert_string_equal(cfg.name, "t1");
}

static void test_atr_inverse_logical(void **state)
{
    (void)state;
    struct simcard *c = card("inverse");
    uint8_t atr[40];
    size_t n = simcard_reset(c, true, atr, sizeof(atr));
    for (size_t j = 0; j < n; j++)
        atr[j] = test_invert(atr[j]);
    /* TS 3F: inverse convention, then the ATR of T=0 + T=1 */
    assert_bytes_hex(atr, n, "3F 88 80 31 FE 45 53 43 52 4D 2D 49 4E 56 F1");
    assert_int_equal(simcard_reset(c, true, atr, 5), 0); /* does not fit */
    simcard_free(c);
}

static void test_atr_custom_and_invalid(void **state)
{
    (void)state;
    struct simcard_config cfg;
    assert_true(simcard_profile("t0t1", &cfg));
    cfg.t1_first = true;
    cfg.crc = true;
    cfg.hist_len = 0;
    struct simcard *c = card_cfg(&cfg);
    uint8_t atr[40];
    size_t n = simcard_reset(c, true, atr, sizeof(atr));
    /* TD1 T=1; TC2 WI; TD2 T=1 opens group 3 (TB3 53, TC3 01); TD3 T=0 */
    assert_bytes_hex(atr, n, "3B 80 C1 14 E1 53 01 00 E6");
    simcard_free(c);
    cfg.t0 = cfg.t1 = false;
    assert_null(simcard_new(&cfg));
    assert_true(simcard_profile("t1", &cfg));
    cfg.hist_len = 16;
    assert_null(simcard_new(&cfg));
}

/* ---- PPS --------------------------------------------------------------------------------- */

static void test_pps_echo(void **state)
{
    (void)state;
    struct simcard *c = powered("fast");
    EXPECT(c, "FF 11 96 78", "FF 11 96 78");
    struct simcard_info info;
    simcard_info(c, &info);
    assert_true(info.pps_done);
    assert_int_equal(info.protocol, 1);
    assert_int_equal(info.fi, 9);
    assert_int_equal(info.di, 6);
    /* T=1 runs after it */
    EXPECT(c, "00 C1 01 FE 3E", "00 E1 01 FE 1E");
    simcard_free(c);
}

static void test_pps_lower_d_and_default(void **state)
{
    (void)state;
    struct simcard *c = powered("fast");
    EXPECT(c, "FF 11 94 7A", "FF 11 94 7A"); /* D = 8 <= 32: accepted */
    struct simcard_info info;
    simcard_info(c, &info);
    assert_int_equal(info.di, 4);
    uint8_t atr[40];
    simcard_reset(c, true, atr, sizeof(atr));
    EXPECT(c, "FF 11 A6 48", "FF 01 FE"); /* F = 768 unsupported: answered without PPS1 */
    simcard_info(c, &info);
    assert_int_equal(info.fi, 1);
    assert_int_equal(info.di, 1);
    simcard_reset(c, true, atr, sizeof(atr));
    EXPECT(c, "FF 01 FE", "FF 01 FE"); /* no PPS1 asked */
    simcard_reset(c, true, atr, sizeof(atr));
    EXPECT(c, "FF 21 02 DC", "FF 21 02 DC"); /* PPS2 echoed */
    simcard_free(c);
}

static void test_pps_partial(void **state)
{
    (void)state;
    struct simcard *c = powered("pps-partial");
    EXPECT(c, "FF 11 96 78", "FF 01 FE");
    struct simcard_info info;
    simcard_info(c, &info);
    assert_true(info.pps_done);
    assert_int_equal(info.fi, 1);
    EXPECT(c, "00 C1 01 FE 3E", "00 E1 01 FE 1E");
    simcard_free(c);
}

static void test_pps_refusals(void **state)
{
    (void)state;
    struct simcard *c = powered("pps-refuse");
    EXPECT(c, "FF 11 96 78", "");
    EXPECT(c, "00 C1 01 FE 3E", ""); /* silent until reset */
    uint8_t atr[40];
    assert_true(simcard_reset(c, true, atr, sizeof(atr)) > 0);
    EXPECT(c, "00 C1 01 FE 3E", "00 E1 01 FE 1E"); /* default parameters work */
    simcard_free(c);

    c = powered("fast");
    EXPECT(c, "FF 11 96 77", ""); /* bad PCK */
    simcard_reset(c, true, atr, sizeof(atr));
    EXPECT(c, "FF 00 FF", ""); /* T=0 not offered */
    simcard_reset(c, true, atr, sizeof(atr));
    EXPECT(c, "FF 81 7E", ""); /* PPS0 bit 8 is RFU */
    simcard_free(c);

    c = powered("specific");
    EXPECT(c, "FF 01 FE", ""); /* no PPS in specific mode */
    simcard_reset(c, true, atr, sizeof(atr));
    struct simcard_info info;
    simcard_info(c, &info);
    assert_int_equal(info.fi, 1);
    assert_int_equal(info.di, 8);
    EXPECT(c, "00 C1 01 FE 3E", "00 E1 01 FE 1E");
    simcard_free(c);
}

static void test_pps_select_t0(void **state)
{
    (void)state;
    struct simcard *c = powered("t0t1");
    EXPECT(c, "FF 10 11 FE", "FF 10 11 FE");
    EXPECT(c, "00 A4 00 0C 02", "A4");
    EXPECT(c, "3F 00", "90 00");
    uint8_t atr[40];
    simcard_reset(c, true, atr, sizeof(atr));
    /* no PPS: T=0 is the default */
    EXPECT(c, "00 A4 00 0C 02", "A4");
    struct simcard_info info;
    simcard_info(c, &info);
    assert_int_equal(info.protocol, 0);
    assert_false(info.pps_done);
    simcard_free(c);
}

/* ---- T=0 --------------------------------------------------------------------------------- */

static void test_t0_case1_and_case3(void **state)
{
    (void)state;
    struct simcard *c = powered("t0");
    EXPECT(c, "00 20 00 80 00", "63 C3"); /* case 1: no procedure byte */
    EXPECT(c, "00 A4 00 0C 00", "90 00"); /* case 1 SELECT: the MF */
    EXPECT(c, "00 A4 00 0C 02", "A4");    /* case 3: ACK */
    EXPECT(c, "2F 01", "90 00");
    /* data sent in pieces: the card waits for all of it */
    EXPECT(c, "00 A4 00 0C 02", "A4");
    EXPECT(c, "3F", "");
    EXPECT(c, "00", "90 00");
    simcard_free(c);
}

static void test_t0_case4_get_response(void **state)
{
    (void)state;
    struct simcard *c = powered("t0");
    EXPECT(c, "00 A4 04 00 07", "A4");
    EXPECT(c, "F0 53 43 52 4D 00 01", "61 15");
    EXPECT(c, "00 C0 00 00 20", "6C 15"); /* Le above what is there */
    EXPECT(c, "00 C0 00 00 10", "C0 6F 13 82 01 38 83 02 50 00 84 07 F0 53 43 52 4D 61 05");
    EXPECT(c, "00 C0 00 00 05", "C0 00 01 8A 01 05 90 00");
    EXPECT(c, "00 C0 00 00 05", "69 85"); /* nothing left */
    /* another command drops a pending response */
    EXPECT(c, "00 A4 00 00 02", "A4");
    EXPECT(c, "3F 00", "61 0C");
    EXPECT(c, "00 20 00 80 00", "63 C3");
    EXPECT(c, "00 C0 00 00 0C", "69 85");
    EXPECT(c, "00 C0 01 00 0C", "6A 86");
    simcard_free(c);
}

static void test_t0_case2_6cxx(void **state)
{
    (void)state;
    struct simcard *c = powered("t0");
    EXPECT(c, "00 B0 00 00 10", "69 86"); /* no current EF */
    EXPECT(c, "00 A4 00 0C 02", "A4");
    EXPECT(c, "2F 01", "90 00");
    EXPECT(c, "00 B0 00 00 00", "6C 20"); /* 32 bytes, not 256 */
    EXPECT(c, "00 B0 00 00 20",
           "B0 53 43 52 4D 20 73 69 6D 75 6C 61 74 65 64 20 63 61 72 64 20 45 46 20 32 46 30 31 "
           "00 00 00 00 00 90 00");
    EXPECT(c, "00 B0 00 00 04", "B0 53 43 52 4D 90 00"); /* shorter Le: a partial read */
    EXPECT(c, "00 B0 00 1C 08", "6C 04");                /* four bytes left after offset 28 */
    EXPECT(c, "00 B0 00 21 01", "6B 00");                /* offset beyond the file */
    EXPECT(c, "00 CA 00 5A 04", "6C 08");                /* GET DATA wants exactly 8 */
    EXPECT(c, "00 CA 00 5A 08", "CA 53 43 52 4D 00 00 00 01 90 00");
    EXPECT(c, "00 CA 00 5B 08", "6A 88");
    /* READ BINARY with a short EF identifier: EF 0002 */
    EXPECT(c, "00 B0 82 00 08", "B0 53 43 52 4D 00 00 00 01 90 00");
    EXPECT(c, "00 B0 85 00 08", "6A 82");
    simcard_free(c);
}

static void test_t0_one_byte_modes(void **state)
{
    (void)state;
    struct simcard *c = powered("t0");
    /* VERIFY: INS^FF before every byte, NULL before the status */
    EXPECT(c, "00 20 00 80 08", "DF");
    EXPECT(c, "31", "DF");
    EXPECT(c, "32", "DF");
    EXPECT(c, "33", "DF");
    EXPECT(c, "34", "DF");
    EXPECT(c, "FF", "DF");
    EXPECT(c, "FF", "DF");
    EXPECT(c, "FF", "DF");
    EXPECT(c, "FF", "60 90 00");
    EXPECT(c, "00 20 00 80 00", "90 00");
    /* UPDATE BINARY: INS^FF for the first byte, then ACK */
    EXPECT(c, "00 A4 00 0C 02", "A4");
    EXPECT(c, "2F 01", "90 00");
    EXPECT(c, "00 D6 00 02 03", "29");
    EXPECT(c, "41", "D6");
    EXPECT(c, "42 43", "90 00");
    EXPECT(c, "00 B0 00 00 06", "B0 53 43 41 42 43 73 90 00");
    /* GET CHALLENGE: NULL, INS^FF + one byte, ACK + the rest */
    rx_hex(c, "00 84 00 00 08");
    size_t n = take(c);
    assert_int_equal(n, 13);
    assert_int_equal(g_out[0], 0x60);
    assert_int_equal(g_out[1], 0x7B);
    assert_int_equal(g_out[3], 0x84);
    assert_bytes_hex(g_out + 11, 2, "90 00");
    uint8_t first[8];
    first[0] = g_out[2];
    memcpy(first + 1, g_out + 4, 7);
    rx_hex(c, "00 84 00 00 08");
    assert_int_equal(take(c), 13);
    assert_false(g_out[2] == first[0] && memcmp(g_out + 4, first + 1, 7) == 0);
    simcard_free(c);
}

static void test_t0_errors(void **state)
{
    (void)state;
    struct simcard *c = powered("t0");
    EXPECT(c, "00 12 00 00 00", "6D 00");
    EXPECT(c, "00 61 00 00 00", "6D 00"); /* 6X / 9X are not instructions in T=0 */
    EXPECT(c, "00 92 00 00 00", "6D 00");
    EXPECT(c, "A0 A4 00 00 02", "6E 00");
    EXPECT(c, "01 A4 00 00 02", "68 81");
    EXPECT(c, "0C A4 00 00 02", "68 82");
    EXPECT(c, "80 A4 00 00 02", "6D 00"); /* proprietary class: only ECHO and FILL */
    EXPECT(c, "00 A4 00 0C 02", "A4");
    EXPECT(c, "12 34", "6A 82");
    EXPECT(c, "00 A4 08 0C 02", "A4");
    EXPECT(c, "3F 00", "6A 86");
    EXPECT(c, "00 A4 00 0C 01", "A4");
    EXPECT(c, "3F", "67 00");
    EXPECT(c, "00 20 00 80 02", "DF");
    EXPECT(c, "31", "DF");
    EXPECT(c, "32", "60 67 00");
    EXPECT(c, "00 20 01 80 00", "6A 86");
    EXPECT(c, "00 20 00 81 00", "6A 88");
    EXPECT(c, "00 84 00 01 08", "6A 86");
    EXPECT(c, "00 C2 00 00 05", "6D 00"); /* ENVELOPE not configured */
    simcard_free(c);
}

static void test_t0_pin_counter(void **state)
{
    (void)state;
    struct simcard *c = powered("t0");
    const char *wrong = "00 20 00 80 08 30 30 30 30 FF FF FF FF";
    const char *right = "00 20 00 80 08 31 32 33 34 FF FF FF FF";
    /* the card interleaves DF procedure bytes; check only the status at the end */
    rx_hex(c, wrong);
    size_t n = take(c);
    assert_bytes_hex(g_out + n - 3, 3, "60 63 C2");
    rx_hex(c, right);
    n = take(c);
    assert_bytes_hex(g_out + n - 3, 3, "60 90 00");
    assert_int_equal(simcard_verify_retries(c), 3);
    for (int i = 2; i >= 0; i--) {
        rx_hex(c, wrong);
        n = take(c);
        if (i)
            assert_int_equal(g_out[n - 1], 0xC0 | i);
        else
            assert_bytes_hex(g_out + n - 2, 2, "69 83");
    }
    assert_int_equal(simcard_verify_retries(c), 0);
    EXPECT(c, "00 20 00 80 00", "69 83");
    rx_hex(c, right); /* blocked: the right PIN does not help */
    n = take(c);
    assert_bytes_hex(g_out + n - 3, 3, "60 69 83");
    simcard_free(c);
}

static void test_t0_security_and_persistence(void **state)
{
    (void)state;
    struct simcard *c = powered("t0");
    EXPECT(c, "00 A4 04 0C 07", "A4");
    EXPECT(c, "F0 53 43 52 4D 00 01", "90 00");
    EXPECT(c, "00 A4 02 0C 02", "A4");
    EXPECT(c, "50 02", "90 00");
    EXPECT(c, "00 D6 00 00 01", "29");
    EXPECT(c, "AA", "69 82");
    rx_hex(c, "00 20 00 80 08 31 32 33 34 FF FF FF FF");
    take(c);
    EXPECT(c, "00 D6 0F FF 01", "29");
    EXPECT(c, "AA", "90 00");
    EXPECT(c, "00 D6 0F FF 02", "29");
    EXPECT(c, "AA", "D6");
    EXPECT(c, "BB", "6A 84"); /* past the end of the 4096-byte file */
    /* EF 0002 is never writable */
    EXPECT(c, "00 A4 00 0C 02", "A4");
    EXPECT(c, "3F 00", "90 00");
    EXPECT(c, "00 D6 82 00 01", "29");
    EXPECT(c, "00", "69 82");
    /* survives a reset; the PIN does not */
    uint8_t atr[40];
    simcard_reset(c, true, atr, sizeof(atr));
    EXPECT(c, "00 A4 04 0C 05", "A4");
    EXPECT(c, "F0 53 43 52 4D", "90 00"); /* partial AID */
    EXPECT(c, "00 A4 02 0C 02", "A4");
    EXPECT(c, "50 02", "90 00");
    EXPECT(c, "00 B0 0F FF 01", "B0 AA 90 00");
    EXPECT(c, "00 D6 0F FF 01", "29");
    EXPECT(c, "01", "69 82");
    EXPECT(c, "00 20 00 80 00", "63 C3");
    simcard_free(c);
}

/* Fetch a 600-byte response announced by 61 00 with GET RESPONSE: 256, 256, 88 bytes. */
static void envelope_fetch(struct simcard *c, const uint8_t *want)
{
    size_t have = 0;
    for (int k = 0; k < 3; k++) {
        rx_hex(c, k < 2 ? "00 C0 00 00 00" : "00 C0 00 00 58");
        size_t n = take(c);
        size_t len = k < 2 ? 256 : 88;
        assert_int_equal(n, 1 + len + 2);
        assert_int_equal(g_out[0], 0xC0);
        assert_bytes_equal(g_out + 1, len, want + have, len);
        have += len;
        assert_bytes_hex(g_out + 1 + len, 2, k == 0 ? "61 00" : (k == 1 ? "61 58" : "90 00"));
    }
}

/* Send the 609-byte APDU as three ENVELOPE pieces (255, 255, 99) with CLA cla. */
static void envelope_send(struct simcard *c, uint8_t cla, const uint8_t *apdu, const char *last_sw)
{
    static const size_t sizes[3] = {255, 255, 99};
    size_t pos = 0;
    for (int k = 0; k < 3; k++) {
        uint8_t hdr[5] = {cla, 0xC2, 0x00, 0x00, (uint8_t)sizes[k]};
        rx_bytes(c, hdr, 5);
        assert_bytes_hex(g_out, take(c), "C2");
        rx_bytes(c, apdu + pos, sizes[k]);
        pos += sizes[k];
        assert_bytes_hex(g_out, take(c), k < 2 ? "90 00" : last_sw);
    }
}

static void test_t0_envelope(void **state)
{
    (void)state;
    /* extended ECHO of 600 bytes, Le 0000: 609 bytes */
    uint8_t apdu[609];
    memcpy(apdu, "\x80\xEC\x00\x00\x00\x02\x58", 7);
    for (size_t i = 0; i < 600; i++)
        apdu[7 + i] = (uint8_t)(i * 3 + 1);
    apdu[607] = apdu[608] = 0;

    /* the last, shorter piece completes a well-formed APDU: it runs */
    struct simcard *c = powered("t0-envelope");
    envelope_send(c, 0x00, apdu, "61 00");
    envelope_fetch(c, apdu + 7);
    simcard_free(c);

    /* pieces with the chaining bit, then an empty ENVELOPE ends the C-APDU */
    c = powered("t0-envelope");
    envelope_send(c, 0x10, apdu, "90 00");
    EXPECT(c, "00 C2 00 00 00", "61 00");
    EXPECT(c, "00 C2 00 00 00", "61 00"); /* asking again repeats the status */
    envelope_fetch(c, apdu + 7);

    /* malformed extended APDU, terminated explicitly */
    EXPECT(c, "00 C2 00 00 06", "C2");
    EXPECT(c, "80 EC 00 00 00 05", "90 00"); /* incomplete: waits for more */
    EXPECT(c, "00 C2 00 00 00", "67 00");
    EXPECT(c, "00 C2 01 00 00", "6A 86");
    EXPECT(c, "A0 C2 00 00 00", "6E 00");
    /* a short APDU in one ENVELOPE */
    EXPECT(c, "00 C2 00 00 07", "C2");
    EXPECT(c, "80 EC 00 00 01 5A 00", "61 01");
    EXPECT(c, "00 C0 00 00 01", "C0 5A 90 00");
    simcard_free(c);
}

static void test_t0_faults(void **state)
{
    (void)state;
    struct simcard *c = powered("t0");
    simcard_set_fault(c, SIMCARD_FAULT_LOSE_BLOCK, 1);
    EXPECT(c, "00 A4 00 0C 02", "");
    EXPECT(c, "00 A4 00 0C 02", "A4");
    EXPECT(c, "3F 00", "90 00");
    simcard_set_fault(c, SIMCARD_FAULT_WTX, 3);
    EXPECT(c, "00 20 00 80 00", "60 60 60 63 C3");
    EXPECT(c, "00 20 00 80 00", "63 C3");
    simcard_set_fault(c, SIMCARD_FAULT_GARBAGE, 5);
    rx_hex(c, "00 20 00 80 00");
    assert_int_equal(take(c), 5);
    EXPECT(c, "00 20 00 80 00", "63 C3");
    simcard_set_fault(c, SIMCARD_FAULT_CHAIN, 16);
    EXPECT(c, "00 A4 04 00 07", "A4");
    EXPECT(c, "F0 53 43 52 4D 00 01", "61 10");
    EXPECT(c, "00 C0 00 00 10", "C0 6F 13 82 01 38 83 02 50 00 84 07 F0 53 43 52 4D 61 05");
    simcard_set_fault(c, SIMCARD_FAULT_NONE, 0);
    simcard_set_fault(c, SIMCARD_FAULT_MUTE, 0);
    EXPECT(c, "00 20 00 80 00", "");
    uint8_t atr[40];
    assert_int_equal(simcard_reset(c, true, atr, sizeof(atr)), 0);
    EXPECT(c, "00 20 00 80 00", "");
    simcard_set_fault(c, SIMCARD_FAULT_NONE, 0);
    EXPECT(c, "00 20 00 80 00", ""); /* silent until the next reset */
    assert_true(simcard_reset(c, true, atr, sizeof(atr)) > 0);
    EXPECT(c, "00 20 00 80 00", "63 C3");
    simcard_free(c);
}

static void test_t0_inverse_wire(void **state)
{
    (void)state;
    struct simcard *c = powered("inverse");
    /* 00 A4 00 0C 02 / A4 / 3F 00 / 90 00, every byte inverted */
    EXPECT(c, "FF DA FF CF BF", "DA");
    EXPECT(c, "03 FF", "F6 FF");
    simcard_free(c);
}

/* ---- T=1 --------------------------------------------------------------------------------- */

static void test_t1_basic_blocks(void **state)
{
    (void)state;
    struct simcard *c = powered("t1");
    EXPECT(c, "00 C1 01 FE 3E", "00 E1 01 FE 1E");
    struct simcard_info info;
    simcard_info(c, &info);
    assert_int_equal(info.ifsd, 254);
    assert_int_equal(info.ifsc, 254);
    assert_int_equal(info.protocol, 1);
    EXPECT(c, "00 00 07 00 A4 00 0C 02 3F 00 92", "00 00 02 90 00 92");
    EXPECT(c, "00 40 05 00 20 00 80 00 E5", "00 40 02 63 C3 E2");
    EXPECT(c, "00 00 07 00 A4 00 0C 02 3F 00 92", "00 00 02 90 00 92");
    /* a block sent in pieces */
    EXPECT(c, "00 40 07 00 A4", "");
    EXPECT(c, "00 0C 02 3F 00 D2", "00 40 02 90 00 D2");
    /* S(IFS request) with a bad size: R-block, other error (N(R) = 0) */
    EXPECT(c, "00 C1 01 00 C0", "00 82 00 82");
    EXPECT(c, "00 C1 01 FF 3F", "00 82 00 82");
    simcard_free(c);
}

static void test_t1_crc(void **state)
{
    (void)state;
    struct simcard *c = powered("t1-crc");
    EXPECT(c, "00 C1 01 FE 54 4E", "00 E1 01 FE 57 75");
    EXPECT(c, "00 00 07 00 A4 00 0C 02 3F 00 87 01", "00 00 02 90 00 9C 6D");
    EXPECT(c, "00 40 07 00 A4 00 0C 02 3F 00 87 02", "00 91 00 39 B6"); /* bad CRC */
    uint8_t chk[9] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
    assert_int_equal(sc_crc(chk, sizeof(chk)), 0x6F91); /* CRC-16/MCRF4XX check value */
    simcard_free(c);
}

static void test_t1_errors_from_reader(void **state)
{
    (void)state;
    struct simcard *c = powered("t1");
    EXPECT(c, "00 00 07 00 A4 00 0C 02 3F 00 93", "00 81 00 81"); /* bad LRC */
    EXPECT(c, "00 00 07 00 A4 00 0C 02 3F 00 92", "00 00 02 90 00 92");
    /* from now on N(R) = 1 */
    EXPECT(c, "00 83 00 83", "00 92 00 92");                      /* R-block: RFU error code */
    EXPECT(c, "00 A0 00 A0", "00 92 00 92");                      /* R-block: bit 6 set */
    EXPECT(c, "00 80 01 00 81", "00 92 00 92");                   /* R-block with INF */
    EXPECT(c, "00 01 00 01", "00 92 00 92");                      /* I-block: RFU bits */
    EXPECT(c, "00 C5 00 C5", "00 92 00 92");                      /* unknown S-block */
    EXPECT(c, "00 E0 00 E0", "00 92 00 92");                      /* unsolicited response */
    EXPECT(c, "00 00 07 00 A4 00 0C 02 3F 00 92", "00 92 00 92"); /* wrong N(S): 1 expected */
    /* LEN above IFSC */
    struct simcard_config cfg;
    simcard_profile("t1", &cfg);
    cfg.ifsc = 4;
    simcard_free(c);
    c = card_cfg(&cfg);
    uint8_t atr[40];
    simcard_reset(c, true, atr, sizeof(atr));
    EXPECT(c, "00 00 05 00 20 00 80 00 A5", "00 82 00 82");
    simcard_free(c);
}

static void test_t1_retransmission(void **state)
{
    (void)state;
    struct simcard *c = powered("t1");
    EXPECT(c, "00 00 05 00 20 00 80 00 A5", "00 00 02 63 C3 A2");
    /* the reader did not get it: R(N(R) = 0) asks for it again, with or without error bits */
    EXPECT(c, "00 81 00 81", "00 00 02 63 C3 A2");
    EXPECT(c, "00 80 00 80", "00 00 02 63 C3 A2");
    /* R(1): the reader has it but the card has no I-block of the reader: asks for it */
    EXPECT(c, "00 90 00 90", "00 92 00 92");
    EXPECT(c, "00 40 05 00 20 00 80 00 E5", "00 40 02 63 C3 E2");
    simcard_free(c);
}

static void test_t1_resynch_and_abort(void **state)
{
    (void)state;
    struct simcard *c = powered("t1");
    EXPECT(c, "00 C1 01 FE 3E", "00 E1 01 FE 1E");
    EXPECT(c, "00 00 05 00 20 00 80 00 A5", "00 00 02 63 C3 A2");
    EXPECT(c, "00 C0 00 C0", "00 E0 00 E0");
    struct simcard_info info;
    simcard_info(c, &info);
    assert_int_equal(info.ifsd, 32);                              /* back to the initial value */
    EXPECT(c, "00 00 05 00 20 00 80 00 A5", "00 00 02 63 C3 A2"); /* N(S) 0 again */
    /* abort a chain of the reader */
    EXPECT(c, "00 60 02 00 20 42", "00 80 00 80"); /* I(1, M): acknowledged with R(0) */
    EXPECT(c, "00 C2 00 C2", "00 E2 00 E2");
    EXPECT(c, "00 00 05 00 20 00 80 00 A5", "00 40 02 63 C3 E2");
    simcard_free(c);
}

static void test_t1_chaining_both_ways(void **state)
{
    (void)state;
    struct simcard *c = powered("t1");
    /* short ECHO of 255 bytes with Le 00: 261 bytes, chained in 254 + 7; IFSD stays 32 */
    uint8_t apdu[261];
    memcpy(apdu, "\x80\xEC\x00\x00\xFF", 5);
    for (int i = 0; i < 255; i++)
        apdu[5 + i] = (uint8_t)(255 - i);
    apdu[260] = 0;
    send_block(c, 0x20, apdu, 254);
    assert_bytes_hex(g_out, take(c), "00 90 00 90");
    send_block(c, 0x40, apdu + 254, 7);
    /* the response, 257 bytes, comes in I-blocks of 32 with M */
    uint8_t got[300], copy[40];
    size_t have = 0;
    uint8_t ns = 0;
    for (int k = 0; k < 9; k++) {
        size_t n = take(c);
        bool last = k == 8;
        size_t inf = check_block(n, (uint8_t)((ns << 6) | (last ? 0 : 0x20)));
        assert_int_equal(inf, last ? 1 : 32);
        memcpy(got + have, g_out + 3, inf);
        memcpy(copy, g_out, n);
        have += inf;
        if (k == 3) {
            /* R(N(R) = this block's N(S)): the card sends the same block again */
            send_block(c, (uint8_t)(0x80 | (ns << 4)), NULL, 0);
            assert_bytes_equal(g_out, take(c), copy, n);
        }
        if (k == 5) {
            /* a corrupted block from the reader: R(N(R) = 0, EDC error), then the chain goes on */
            uint8_t bad[4] = {0x00, (uint8_t)(0x80 | ((ns ^ 1) << 4)), 0x00, 0x00};
            rx_bytes(c, bad, 4);
            assert_bytes_hex(g_out, take(c), "00 81 00 81");
        }
        if (k == 6) {
            /* S(IFS) in the middle of the chain, then a request for the same I-block */
            EXPECT(c, "00 C1 01 20 E0", "00 E1 01 20 C0");
            send_block(c, (uint8_t)(0x80 | (ns << 4)), NULL, 0);
            assert_bytes_equal(g_out, take(c), copy, n);
        }
        ns ^= 1;
        if (!last)
            send_block(c, (uint8_t)(0x80 | (ns << 4)), NULL, 0); /* acknowledge */
    }
    assert_int_equal(have, 257);
    assert_bytes_equal(got, 255, apdu + 5, 255);
    assert_bytes_hex(got + 255, 2, "90 00");
    simcard_free(c);

    /* S(ABORT) in the middle of the card's chain */
    c = powered("t1");
    apdu[4] = 40;
    apdu[45] = 0;
    send_block(c, 0x00, apdu, 46);
    check_block(take(c), 0x20);
    EXPECT(c, "00 C2 00 C2", "00 E2 00 E2");
    EXPECT(c, "00 40 05 00 20 00 80 00 E5", "00 40 02 63 C3 E2");
    simcard_free(c);
}

static void test_t1_fault_bad_edc(void **state)
{
    (void)state;
    struct simcard *c = powered("t1");
    simcard_set_fault(c, SIMCARD_FAULT_BAD_EDC, 2);
    EXPECT(c, "00 00 05 00 20 00 80 00 A5", "00 00 02 63 C3 F8");
    EXPECT(c, "00 81 00 81", "00 00 02 63 C3 F8");
    EXPECT(c, "00 81 00 81", "00 00 02 63 C3 A2");
    simcard_free(c);
}

static void test_t1_fault_lose(void **state)
{
    (void)state;
    struct simcard *c = powered("t1");
    simcard_set_fault(c, SIMCARD_FAULT_LOSE_BLOCK, 1);
    EXPECT(c, "00 00 05 00 20 00 80 00 A5", "");
    EXPECT(c, "00 80 00 80", "00 82 00 82"); /* the card asks for I-block 0 */
    EXPECT(c, "00 00 05 00 20 00 80 00 A5", "00 00 02 63 C3 A2");
    simcard_free(c);
}

static void test_t1_fault_wtx(void **state)
{
    (void)state;
    struct simcard *c = powered("t1");
    simcard_set_fault(c, SIMCARD_FAULT_WTX, 3);
    EXPECT(c, "00 00 05 00 20 00 80 00 A5", "00 C3 01 03 C1");
    EXPECT(c, "00 E3 01 02 E0", "00 C3 01 03 C1"); /* wrong multiplier: request again */
    EXPECT(c, "00 81 00 81", "00 C3 01 03 C1");    /* anything else: request again */
    EXPECT(c, "00 E3 01 03 E1", "00 00 02 63 C3 A2");
    EXPECT(c, "00 40 05 00 20 00 80 00 E5", "00 40 02 63 C3 E2"); /* one-shot */
    simcard_free(c);
}

static void test_t1_fault_ifs(void **state)
{
    (void)state;
    struct simcard *c = powered("t1");
    simcard_set_fault(c, SIMCARD_FAULT_IFS, 16);
    EXPECT(c, "00 00 05 00 20 00 80 00 A5", "00 C1 01 10 D0");
    EXPECT(c, "00 E1 01 10 F0", "00 00 02 63 C3 A2");
    struct simcard_info info;
    simcard_info(c, &info);
    assert_int_equal(info.ifsc, 16);
    /* 17 bytes of INF now exceed IFSC */
    uint8_t big[17] = {0x80, 0xEC, 0x00, 0x00, 0x0C};
    send_block(c, 0x40, big, sizeof(big));
    assert_bytes_hex(g_out, take(c), "00 92 00 92");
    send_block(c, 0x40, big, 16);
    assert_bytes_hex(g_out, take(c), "00 40 02 67 00 25"); /* Lc 12 but 11 data bytes */
    simcard_free(c);
}

static void test_t1_fault_chain_and_garbage(void **state)
{
    (void)state;
    struct simcard *c = powered("t1");
    simcard_set_fault(c, SIMCARD_FAULT_CHAIN, 1);
    EXPECT(c, "00 00 05 00 20 00 80 00 A5", "00 20 01 63 42");
    EXPECT(c, "00 80 00 80", "00 20 01 63 42"); /* N(R) = 0: again */
    EXPECT(c, "00 90 00 90", "00 40 01 C3 82");
    simcard_set_fault(c, SIMCARD_FAULT_NONE, 0);
    simcard_set_fault(c, SIMCARD_FAULT_GARBAGE, 6);
    rx_hex(c, "00 40 05 00 20 00 80 00 E5");
    assert_int_equal(take(c), 6);
    EXPECT(c, "00 81 00 81", "00 00 02 63 C3 A2"); /* the real block follows an R-block */
    simcard_set_fault(c, SIMCARD_FAULT_MUTE, 1);
    EXPECT(c, "00 C1 01 FE 3E", "");
    simcard_free(c);
}

static void test_t1_inverse_wire(void **state)
{
    (void)state;
    struct simcard *c = powered("inverse");
    EXPECT(c, "00 7F 80", "00 7F 80");             /* PPS FF 01 FE, inverted */
    EXPECT(c, "FF 7C 7F 80 83", "FF 78 7F 80 87"); /* S(IFS) exchange, inverted */
    simcard_free(c);
}

static void test_t1_extended_echo(void **state)
{
    (void)state;
    struct t1_session *s = t1_open("t1");
    uint8_t *apdu = malloc(65544);
    assert_non_null(apdu);
    memcpy(apdu, "\x80\xEC\x00\x00\x00\xFF\xFF", 7);
    for (size_t i = 0; i < 65535; i++)
        apdu[7 + i] = (uint8_t)(i ^ (i >> 8));
    apdu[65542] = apdu[65543] = 0;
    t1_raw(s, apdu, 65544);
    assert_int_equal(s->resp_len, 65537);
    assert_bytes_equal(s->resp, 65535, apdu + 7, 65535);
    assert_int_equal(t1_sw(s), 0x9000);
    /* Le 0100: only 256 bytes back */
    apdu[65542] = 0x01;
    t1_raw(s, apdu, 65544);
    assert_int_equal(s->resp_len, 258);
    /* case 3E: no data back */
    t1_raw(s, apdu, 65542);
    assert_int_equal(s->resp_len, 2);
    assert_int_equal(t1_sw(s), 0x9000);
    /* FILL 65536 (case 2E, Le 0000) */
    T1_EXPECT(s, "80 EE 00 00 00 00 03", "00 01 02 90 00");
    t1_hex(s, "80 EE 00 00 00 00 00");
    assert_int_equal(s->resp_len, 65538);
    assert_int_equal(s->resp[65535], 0xFF);
    free(apdu);
    t1_close(s);
}

static void test_app_commands_t1(void **state)
{
    (void)state;
    struct t1_session *s = t1_open("t1");
    T1_EXPECT(s, "00 A4 04 00 07 F0 53 43 52 4D 00 01 00",
              "6F 13 82 01 38 83 02 50 00 84 07 F0 53 43 52 4D 00 01 8A 01 05 90 00");
    T1_EXPECT(s, "00 A4 04 00 07 F0 53 43 52 4D 00 01", "90 00"); /* case 3: no data */
    T1_EXPECT(s, "00 A4 02 04 02 50 01 00",
              "62 0E 82 01 01 83 02 50 01 80 02 01 00 8A 01 05 90 00");
    T1_EXPECT(s, "00 B0 00 FC 00", "FC FD FE FF 90 00");
    T1_EXPECT(s, "00 B0 00 FC 08", "FC FD FE FF 62 82");
    T1_EXPECT(s, "00 B0 01 00 00", "90 00"); /* at the end: nothing left */
    T1_EXPECT(s, "00 B0 01 01 00", "6B 00");
    T1_EXPECT(s, "00 B0 00 00", "67 00"); /* case 1 READ BINARY */
    /* extended READ BINARY of all of EF 5002 */
    T1_EXPECT(s, "00 A4 02 0C 02 50 02", "90 00");
    t1_hex(s, "00 B0 00 00 00 10 00");
    assert_int_equal(s->resp_len, 4098);
    for (size_t i = 0; i < 4096; i++)
        assert_int_equal(s->resp[i], (uint8_t)(i * 7));
    T1_EXPECT(s, "00 A4 03 0C", "90 00"); /* parent: the MF */
    T1_EXPECT(s, "00 A4 01 0C 02 50 00", "90 00");
    T1_EXPECT(s, "00 A4 01 0C 02 50 01", "6A 82"); /* an EF, not a DF */
    T1_EXPECT(s, "00 A4 00 0C 02 3F 00", "90 00");
    T1_EXPECT(s, "00 A4 04 0C 03 A0 00 00", "6A 82");
    T1_EXPECT(s, "00 A4 00 10 02 3F 00", "6A 86");
    T1_EXPECT(s, "00 A4 04 0C 00", "67 00"); /* invalid encoding: Lc 00 */
    T1_EXPECT(s, "00 A4 04 0C 05 01 02", "67 00");
    T1_EXPECT(s, "00 A4", "67 00");
    T1_EXPECT(s, "00 C0 00 00 10", "69 85");
    T1_EXPECT(s, "00 CA 00 5A 00", "53 43 52 4D 00 00 00 01 90 00");
    T1_EXPECT(s, "00 CA 00 5A 10", "53 43 52 4D 00 00 00 01 90 00");
    T1_EXPECT(s, "00 CA 00 5A 07", "6C 08");
    T1_EXPECT(s, "00 84 00 00", "67 00");
    t1_hex(s, "00 84 00 00 20");
    assert_int_equal(s->resp_len, 34);
    T1_EXPECT(s, "80 EC 00 00 03 01 02 03 02", "01 02 90 00");
    T1_EXPECT(s, "80 EC 01 00 03 01 02 03 00", "6A 86");
    T1_EXPECT(s, "80 EE 00 00 01 01 00", "67 00");
    T1_EXPECT(s, "80 20 00 80 00", "6D 00");
    T1_EXPECT(s, "FF A4 00 00", "6E 00");
    T1_EXPECT(s, "10 A4 00 0C 02 3F 00", "68 84");
    T1_EXPECT(s, "00 20 00 80 08 31 32 33 34 FF FF FF FF", "90 00");
    t1_close(s);
}

static void test_power_and_counters(void **state)
{
    (void)state;
    struct simcard *c = card("t1");
    struct simcard_info info;
    simcard_info(c, &info);
    assert_false(info.powered);
    assert_int_equal(info.protocol, -1);
    rx_hex(c, "00 C1 01 FE 3E");
    assert_int_equal(take(c), 0);
    assert_int_equal(simcard_bytes_received(c), 5);
    uint8_t atr[40];
    simcard_reset(c, true, atr, sizeof(atr));
    rx_hex(c, "00 C1 01 FE 3E");
    assert_int_equal(simcard_pending(c), 5);
    uint8_t two[2];
    assert_int_equal(simcard_tx(c, two, 2), 2);
    assert_int_equal(simcard_pending(c), 3);
    simcard_power_off(c);
    assert_int_equal(simcard_pending(c), 0);
    assert_int_equal(simcard_bytes_received(c), 10);
    simcard_info(c, &info);
    assert_false(info.powered);
    simcard_free(c);
    simcard_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atr_profiles),
        cmocka_unit_test(test_atr_inverse_logical),
        cmocka_unit_test(test_atr_custom_and_invalid),
        cmocka_unit_test(test_pps_echo),
        cmocka_unit_test(test_pps_lower_d_and_default),
        cmocka_unit_test(test_pps_partial),
        cmocka_unit_test(test_pps_refusals),
        cmocka_unit_test(test_pps_select_t0),
        cmocka_unit_test(test_t0_case1_and_case3),
        cmocka_unit_test(test_t0_case4_get_response),
        cmocka_unit_test(test_t0_case2_6cxx),
        cmocka_unit_test(test_t0_one_byte_modes),
        cmocka_unit_test(test_t0_errors),
        cmocka_unit_test(test_t0_pin_counter),
        cmocka_unit_test(test_t0_security_and_persistence),
        cmocka_unit_test(test_t0_envelope),
        cmocka_unit_test(test_t0_faults),
        cmocka_unit_test(test_t0_inverse_wire),
        cmocka_unit_test(test_t1_basic_blocks),
        cmocka_unit_test(test_t1_crc),
        cmocka_unit_test(test_t1_errors_from_reader),
        cmocka_unit_test(test_t1_retransmission),
        cmocka_unit_test(test_t1_resynch_and_abort),
        cmocka_unit_test(test_t1_chaining_both_ways),
        cmocka_unit_test(test_t1_fault_bad_edc),
        cmocka_unit_test(test_t1_fault_lose),
        cmocka_unit_test(test_t1_fault_wtx),
        cmocka_unit_test(test_t1_fault_ifs),
        cmocka_unit_test(test_t1_fault_chain_and_garbage),
        cmocka_unit_test(test_t1_inverse_wire),
        cmocka_unit_test(test_t1_extended_echo),
        cmocka_unit_test(test_app_commands_t1),
        cmocka_unit_test(test_power_and_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
