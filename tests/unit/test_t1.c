/*
 * Tests for the T=1 engine (src/smc/t1.c) over a scripted link: LRC and CRC, NAD, N(S)/N(R),
 * chaining in both directions, IFSD negotiation and S(IFS) from the card, S(WTX) and its effect
 * on the next wait only, lost blocks, bad EDC, retransmission requests, resynchronisation,
 * failure after the retries, S(ABORT), the inverse convention, the longest extended APDU, and
 * hostile cards (invalid blocks, endless S-requests).
 *
 * The core vectors are literal hex computed outside the engine; longer conversations use blk(),
 * a block builder with its own LRC/CRC code, so the expected bytes never come from the engine.
 */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "common/hex.h"
#include "mock_link.h"
#include "smc/protocol.h"

static const struct smc_link_params link_3580 = {.clk_default_khz = 3580,
                                                 .clk_max_khz = 3580,
                                                 .rate_default = 9600,
                                                 .rate_max = 9600,
                                                 .max_ifsd = 254};

#define ATR_LRC     "3B 80 01 81"       /* T=1, IFSC 32, LRC */
#define ATR_CRC     "3B 80 81 41 01 41" /* T=1, TC3 = 01: CRC */
#define ATR_IFSC4   "3B 80 81 11 04 14" /* T=1, IFSC 4 */
#define ATR_IFSC254 "3B 80 81 11 FE EE" /* T=1, IFSC 254 */
#define ATR_INV     "3F 80 01 81"       /* T=1, inverse convention */
#define BWT         1597211u
#define CWT         852379u

struct t1_env {
    struct smc_card_caps caps;
    struct smc_t1 t1;
    struct mock_link m;
    uint8_t resp[70000];
    size_t resp_len;
};

static struct t1_env env;

static struct t1_env *env_init(const char *atr_hex)
{
    struct t1_env *e = &env;
    uint8_t b[40];
    struct smc_atr a;
    long n = scrm_hex_decode(atr_hex, b, sizeof(b));
    assert_int_equal(smc_atr_parse(b, (size_t)n, &a, NULL, 0), STATUS_SUCCESS);
    smc_caps_from_atr(&e->caps, &a, &link_3580);
    e->caps.protocol_selected = SCARD_PROTOCOL_T1;
    smc_t1_init(&e->t1, &e->caps);
    mock_init(&e->m);
    e->m.invert = a.inverse;
    e->resp_len = 0;
    return e;
}

static smc_status xfer(struct t1_env *e, const char *apdu_hex, size_t cap)
{
    uint8_t apdu[300];
    long n = scrm_hex_decode(apdu_hex, apdu, sizeof(apdu));
    assert_true(n >= 0);
    return smc_t1_transceive(&e->t1, &e->m.io, apdu, (size_t)n, e->resp, cap, &e->resp_len);
}

/* Test-local EDC, written apart from the engine's. */
static uint16_t ref_crc(const uint8_t *b, size_t n)
{
    unsigned v = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        v ^= b[i];
        for (int k = 0; k < 8; k++)
            v = (v & 1) ? (v >> 1) ^ 0x8408 : v >> 1;
    }
    return (uint16_t)v;
}

/* Build a block into out (LRC, or CRC when crc); returns its length. */
static size_t blk_bytes(uint8_t nad, uint8_t pcb, const uint8_t *inf, size_t n, bool crc,
                        uint8_t *out)
{
    out[0] = nad;
    out[1] = pcb;
    out[2] = (uint8_t)n;
    if (n)
        memcpy(out + 3, inf, n);
    if (crc) {
        uint16_t c = ref_crc(out, 3 + n);
        out[3 + n] = (uint8_t)(c >> 8);
        out[4 + n] = (uint8_t)c;
        return 5 + n;
    }
    uint8_t x = 0;
    for (size_t i = 0; i < 3 + n; i++)
        x ^= out[i];
    out[3 + n] = x;
    return 4 + n;
}

/* Block as hex text (LRC, NAD 00), in one of a few rotating buffers. */
static const char *blk(uint8_t pcb, const char *inf_hex)
{
    static char text[8][1200];
    static unsigned next;
    uint8_t inf[300], b[320];
    long n = scrm_hex_decode(inf_hex, inf, sizeof(inf));
    assert_true(n >= 0);
    size_t len = blk_bytes(0, pcb, inf, (size_t)n, false, b);
    char *t = text[next++ % 8];
    scrm_hex_encode(b, len, ' ', t, sizeof(text[0]));
    return t;
}

/* n times "AB " followed by tail, as hex text. */
static void repeat_hex(char *out, size_t cap, int n, const char *tail)
{
    size_t len = 0;
    for (int i = 0; i < n && len + 3 < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "AB ");
    snprintf(out + len, cap - len, "%s", tail);
}

static void test_edc(void **state)
{
    (void)state;
    assert_int_equal(smc_t1_crc((const uint8_t *)"123456789", 9), 0x6F91);
    assert_int_equal(smc_t1_crc(NULL, 0), 0xFFFF);
    assert_int_equal(smc_t1_lrc((const uint8_t *)"\x00\x00\x02\x90\x00", 5), 0x92);
    uint8_t b[] = {0x00, 0x00, 0x02, 0x90, 0x00};
    assert_int_equal(smc_t1_crc(b, 5), 0x9C6D);
}

static void test_init(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_CRC);
    assert_int_equal(e->t1.ns, 0);
    assert_int_equal(e->t1.nr, 0);
    assert_int_equal(e->t1.ifsc, 32);
    assert_int_equal(e->t1.ifsd, 32);
    assert_int_equal(e->t1.edc, T1_CRC_CHECK);
    assert_int_equal(e->t1.bwt_us, BWT);
    assert_int_equal(e->t1.cwt_us, CWT);
    assert_false(e->t1.inverse);
    assert_false(e->t1.ifs_done);
    e = env_init(ATR_IFSC254);
    assert_int_equal(e->t1.ifsc, 254);
    assert_int_equal(e->t1.ifsc_initial, 254);
    assert_int_equal(e->t1.edc, 0);
    mock_finish(&e->m);
}

static void test_exchange_lrc_and_sequence(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 00 02 90 00 92");
    mock_expect(&e->m, "00 40 05 00 B0 00 00 00 F5", "00 40 02 6A 82 AA");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    assert_bytes_hex(e->resp, e->resp_len, "90 00");
    assert_int_equal(e->t1.ns, 1);
    assert_int_equal(e->t1.nr, 1);
    assert_int_equal(xfer(e, "00 B0 00 00 00", sizeof(e->resp)), STATUS_SUCCESS);
    assert_bytes_hex(e->resp, e->resp_len, "6A 82");
    assert_int_equal(e->t1.ns, 0);
    assert_int_equal(e->t1.nr, 0);
    mock_finish(&e->m);
    assert_int_equal(e->m.first_to[0], BWT); /* first byte of a block: BWT */
    assert_int_equal(e->m.char_to[0], CWT);  /* between bytes: CWT */
    assert_int_equal(e->m.first_to[1], CWT); /* rest of the block */
    assert_int_equal(e->t1.blocks_sent, 2);
    assert_int_equal(e->t1.blocks_received, 2);
    assert_int_equal(e->t1.retransmissions, 0);
}

static void test_exchange_crc(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_CRC);
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 3D 25", "00 00 02 90 00 9C 6D");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    assert_bytes_hex(e->resp, e->resp_len, "90 00");
    mock_finish(&e->m);
}

static void test_crc_bad_edc(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_CRC);
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 3D 25", "00 00 02 90 00 9C 6E");
    mock_expect(&e->m, "00 81 00 AC 27", "00 00 02 90 00 9C 6D");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_bytes_hex(e->resp, e->resp_len, "90 00");
    assert_int_equal(e->t1.retransmissions, 1);
}

static void test_nad(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    e->t1.nad = 0x12; /* set by the driver; the card answers with SAD/DAD swapped */
    mock_expect(&e->m, "12 00 07 00 A4 04 00 02 3F 00 88", "21 00 02 90 00 B3");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_bytes_hex(e->resp, e->resp_len, "90 00");
}

static void test_chaining_send(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_IFSC4);
    mock_expect(&e->m, "00 20 04 00 D6 00 00 F2", "00 90 00 90"); /* I(0,M) → R(1) */
    mock_expect(&e->m, "00 60 04 05 AA BB CC BC", "00 80 00 80"); /* I(1,M) → R(0) */
    mock_expect(&e->m, "00 00 02 DD EE 31", "00 00 02 90 00 92"); /* I(0) → I(0) */
    assert_int_equal(xfer(e, "00 D6 00 00 05 AA BB CC DD EE", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_bytes_hex(e->resp, e->resp_len, "90 00");
    assert_int_equal(e->t1.ns, 1);
    assert_int_equal(e->t1.nr, 1);
}

static void test_chaining_receive(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 00 05 00 B0 00 00 00 B5", "00 20 02 01 02 21"); /* I(0,M) */
    mock_expect(&e->m, "00 90 00 90", "00 40 02 90 00 D2");                /* R(1) → I(1) */
    assert_int_equal(xfer(e, "00 B0 00 00 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_bytes_hex(e->resp, e->resp_len, "01 02 90 00");
    assert_int_equal(e->t1.ns, 1);
    assert_int_equal(e->t1.nr, 0);
}

static void test_chaining_receive_lost_ack(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC); /* the card did not get our R(1): it asks again */
    mock_expect(&e->m, "00 00 05 00 B0 00 00 00 B5", "00 20 02 01 02 21");
    mock_expect(&e->m, "00 90 00 90", "00 81 00 81");
    mock_expect(&e->m, "00 90 00 90", "00 40 02 90 00 D2");
    assert_int_equal(xfer(e, "00 B0 00 00 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_bytes_hex(e->resp, e->resp_len, "01 02 90 00");
}

static void test_ifsd_negotiation(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 C1 01 FE 3E", "00 E1 01 FE 1E");
    assert_int_equal(smc_t1_negotiate_ifsd(&e->t1, &e->m.io, 254), STATUS_SUCCESS);
    assert_int_equal(e->t1.ifsd, 254);
    assert_true(e->t1.ifs_done);
    /* a 200-byte block is now acceptable */
    char inf[700];
    repeat_hex(inf, sizeof(inf), 198, "90 00");
    mock_expect(&e->m, "00 00 05 00 B0 00 00 00 B5", blk(0x00, inf));
    assert_int_equal(xfer(e, "00 B0 00 00 00", sizeof(e->resp)), STATUS_SUCCESS);
    assert_int_equal(e->resp_len, 200);
    mock_finish(&e->m);
    assert_int_equal(smc_t1_negotiate_ifsd(&e->t1, &e->m.io, 0), STATUS_INVALID_PARAMETER);
    assert_int_equal(smc_t1_negotiate_ifsd(&e->t1, &e->m.io, 255), STATUS_INVALID_PARAMETER);
}

static void test_ifsd_negotiation_refused(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC); /* wrong value, R-block, bad EDC: three tries */
    mock_expect(&e->m, "00 C1 01 FE 3E", "00 E1 01 20 C0");
    mock_expect(&e->m, "00 C1 01 FE 3E", "00 82 00 82");
    mock_expect(&e->m, "00 C1 01 FE 3E", "00 E1 01 FE 1F");
    assert_int_equal(smc_t1_negotiate_ifsd(&e->t1, &e->m.io, 254), STATUS_DEVICE_PROTOCOL_ERROR);
    mock_finish(&e->m);
    assert_int_equal(e->t1.ifsd, 32);
    assert_true(e->t1.ifs_done); /* attempted: not repeated for every APDU */

    e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 C1 01 FE 3E", "");
    mock_expect(&e->m, "00 C1 01 FE 3E", "");
    mock_expect(&e->m, "00 C1 01 FE 3E", "");
    assert_int_equal(smc_t1_negotiate_ifsd(&e->t1, &e->m.io, 254), STATUS_IO_TIMEOUT);
    mock_finish(&e->m);

    e = env_init(ATR_LRC); /* WTX in the middle is answered and does not count as a try */
    mock_expect(&e->m, "00 C1 01 FE 3E", "00 C3 01 03 C1");
    mock_expect(&e->m, "00 E3 01 03 E1", "00 E1 01 FE 1E");
    assert_int_equal(smc_t1_negotiate_ifsd(&e->t1, &e->m.io, 254), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_int_equal(e->m.first_to[2], 3 * BWT);
}

static void test_ifs_from_card(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 C1 01 10 D0");
    mock_expect(&e->m, "00 E1 01 10 F0", "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_bytes_hex(e->resp, e->resp_len, "90 00");
    assert_int_equal(e->t1.ifsc, 16);

    e = env_init(ATR_IFSC4); /* during our chain: the next pieces use the new IFSC */
    mock_expect(&e->m, "00 20 04 00 D6 00 00 F2", "00 C1 01 02 C2");
    mock_expect(&e->m, "00 E1 01 02 E2", "00 90 00 90");
    mock_expect(&e->m, blk(0x60, "05 AA"), "00 80 00 80");
    mock_expect(&e->m, blk(0x20, "BB CC"), "00 90 00 90");
    mock_expect(&e->m, blk(0x40, "DD EE"), "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 D6 00 00 05 AA BB CC DD EE", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_int_equal(e->t1.ifsc, 2);
}

static void test_wtx(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 C3 01 03 C1");
    mock_expect(&e->m, "00 E3 01 03 E1", "00 00 02 90 00 92");
    mock_expect(&e->m, "00 40 05 00 B0 00 00 00 F5", "00 40 02 6A 82 AA");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    assert_bytes_hex(e->resp, e->resp_len, "90 00");
    assert_int_equal(xfer(e, "00 B0 00 00 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_int_equal(e->m.n_recv, 6);
    assert_int_equal(e->m.first_to[0], BWT);     /* before the WTX request */
    assert_int_equal(e->m.first_to[2], 3 * BWT); /* the wait after S(WTX response) */
    assert_int_equal(e->m.first_to[3], CWT);
    assert_int_equal(e->m.first_to[4], BWT); /* next wait: BWT again */
    assert_int_equal(e->t1.wtx, 0);
}

static void test_lost_block(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC); /* the card's answer is lost: R(0, other error) */
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "");
    mock_expect(&e->m, "00 82 00 82", "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_bytes_hex(e->resp, e->resp_len, "90 00");
    assert_int_equal(e->t1.retransmissions, 1);

    e = env_init(ATR_LRC); /* our block is lost: the card asks for it with R(0) */
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "");
    mock_expect(&e->m, "00 82 00 82", "00 82 00 82");
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_int_equal(e->t1.retransmissions, 2);
}

static void test_bad_edc_and_retransmission_request(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 00 02 90 00 93");
    mock_expect(&e->m, "00 81 00 81", "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_bytes_hex(e->resp, e->resp_len, "90 00");

    e = env_init(ATR_LRC); /* the card got our block garbled */
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 81 00 81");
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_bytes_hex(e->resp, e->resp_len, "90 00");
}

/* Three recovery blocks without success, then S(RESYNCH): the APDU fails, the card is usable
 * again with N(S) = N(R) = 0. */
static void test_resynch(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_expect(&e->m, "00 40 05 00 B0 00 00 00 F5", "00 40 02 6A 82 AB"); /* bad EDC */
    mock_expect(&e->m, "00 91 00 91", "");                                 /* lost */
    mock_expect(&e->m, "00 92 00 92", "00 40 02 6A 82 AB");
    mock_expect(&e->m, "00 91 00 91", "00 40 02 6A 82 AB");
    mock_expect(&e->m, "00 C0 00 C0", "00 E0 00 E0");
    assert_int_equal(xfer(e, "00 B0 00 00 00", sizeof(e->resp)), STATUS_DEVICE_PROTOCOL_ERROR);
    assert_int_equal(e->t1.ns, 0);
    assert_int_equal(e->t1.nr, 0);
    assert_int_equal(e->t1.resynchs, 1);
    assert_int_equal(e->t1.retransmissions, 3);
    mock_expect(&e->m, "00 00 05 00 B0 00 00 00 B5", "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 B0 00 00 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
}

static void test_resynch_restores_parameters(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 C1 01 FE 3E", "00 E1 01 FE 1E");
    assert_int_equal(smc_t1_negotiate_ifsd(&e->t1, &e->m.io, 254), STATUS_SUCCESS);
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 C1 01 10 D0");
    mock_expect(&e->m, "00 E1 01 10 F0", "");
    mock_expect(&e->m, "00 82 00 82", "");
    mock_expect(&e->m, "00 82 00 82", "");
    mock_expect(&e->m, "00 82 00 82", "");
    mock_expect(&e->m, "00 C0 00 C0", "00 E0 00 E0");
    mock_expect(&e->m, "00 C1 01 FE 3E", "00 E1 01 FE 1E"); /* IFSD announced again */
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)),
                     STATUS_DEVICE_PROTOCOL_ERROR);
    mock_finish(&e->m);
    assert_int_equal(e->t1.ifsc, 32); /* back to the ATR's IFSC */
    assert_int_equal(e->t1.ifsd, 254);
}

static void test_failure_after_retries(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC); /* a mute card */
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "");
    for (int i = 0; i < 3; i++)
        mock_expect(&e->m, "00 82 00 82", "");
    for (int i = 0; i < 3; i++)
        mock_expect(&e->m, "00 C0 00 C0", "");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_IO_TIMEOUT);
    mock_finish(&e->m);
    assert_int_equal(e->m.n_send, 7);
    assert_int_equal(e->t1.retransmissions, 5);
    assert_int_equal(e->t1.resynchs, 1);

    e = env_init(ATR_LRC); /* a card that only answers garbage */
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 00 02 90 00 00");
    for (int i = 0; i < 3; i++)
        mock_expect(&e->m, "00 81 00 81", "00 00 02 90 00 00");
    for (int i = 0; i < 3; i++)
        mock_expect(&e->m, "00 C0 00 C0", "00 00 02 90 00 00");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)),
                     STATUS_DEVICE_PROTOCOL_ERROR);
    mock_finish(&e->m);
}

static void test_abort_from_card(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 00 05 00 B0 00 00 00 B5", "00 20 02 01 02 21");
    mock_expect(&e->m, "00 90 00 90", "00 C2 00 C2");
    mock_expect(&e->m, "00 E2 00 E2", "");
    assert_int_equal(xfer(e, "00 B0 00 00 00", sizeof(e->resp)), STATUS_DEVICE_PROTOCOL_ERROR);
    mock_finish(&e->m);
    assert_int_equal(e->resp_len, 0);
}

/* Blocks that break a rule are answered by R(N(R), other error). */
static void test_invalid_blocks(void **state)
{
    (void)state;
    static const char *bad[] = {
        "00 E1 01 20 C0",    /* a response we did not ask for */
        "00 40 02 90 00 D2", /* N(S) 1 where 0 is expected */
        "00 C3 01 00 C2",    /* WTX 0 */
        "00 C1 01 00 C0",    /* IFS 0 */
        "00 C1 00 C1",       /* IFS without its byte */
        "00 C0 00 C0",       /* RESYNCH request from the card */
        "00 E4 00 E4",       /* Vpp error */
        "00 C5 00 C5",       /* unknown S-block */
        "00 A0 00 A0",       /* R-block with bit 6 set */
        "00 80 01 00 81",    /* R-block with INF */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct t1_env *e = env_init(ATR_LRC);
        mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", bad[i]);
        mock_expect(&e->m, "00 82 00 82", "00 00 02 90 00 92");
        smc_status rc = xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp));
        if (rc != STATUS_SUCCESS)
            fprintf(stderr, "# block %s: %08X\n", bad[i], rc);
        assert_int_equal(rc, STATUS_SUCCESS);
        mock_finish(&e->m);
        assert_bytes_hex(e->resp, e->resp_len, "90 00");
    }
}

static void test_invalid_blocks_length(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC); /* 33 bytes > IFSD 32 */
    char inf[200];
    repeat_hex(inf, sizeof(inf), 33, "");
    mock_expect(&e->m, "00 00 05 00 B0 00 00 00 B5", blk(0x00, inf));
    mock_expect(&e->m, "00 82 00 82", "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 B0 00 00 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);

    e = env_init(ATR_LRC); /* LEN FF is never valid; the engine reads it and rejects it */
    static uint8_t big[3 + 255 + 1];
    memset(big, 0x11, sizeof(big));
    big[0] = 0;
    big[1] = 0;
    big[2] = 0xFF;
    uint8_t x = 0;
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        x ^= big[i];
    big[sizeof(big) - 1] = x;
    mock_expect_bytes(&e->m, (const uint8_t *)"\x00\x00\x05\x00\xB0\x00\x00\x00\xB5", 9, big,
                      sizeof(big));
    mock_expect(&e->m, "00 82 00 82", "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 B0 00 00 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);

    e = env_init(ATR_IFSC4); /* an I-block while we are still chaining */
    mock_expect(&e->m, "00 20 04 00 D6 00 00 F2", "00 00 02 90 00 92");
    mock_expect(&e->m, "00 82 00 82", "00 90 00 90");
    mock_expect(&e->m, "00 60 04 05 AA BB CC BC", "00 80 00 80");
    mock_expect(&e->m, "00 00 02 DD EE 31", "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 D6 00 00 05 AA BB CC DD EE", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
}

static void test_hostile_s_flood(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 C3 01 01 C3");
    for (int i = 0; i < 512; i++)
        mock_expect(&e->m, "00 E3 01 01 E3", "00 C3 01 01 C3");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)),
                     STATUS_DEVICE_PROTOCOL_ERROR);
    mock_finish(&e->m);
}

static void test_buffer_and_removal(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC); /* response read to the end, then too small */
    mock_expect(&e->m, "00 00 05 00 B0 00 00 00 B5", "00 20 02 01 02 21");
    mock_expect(&e->m, "00 90 00 90", "00 40 02 90 00 D2");
    assert_int_equal(xfer(e, "00 B0 00 00 00", 3), STATUS_BUFFER_TOO_SMALL);
    mock_finish(&e->m);
    assert_int_equal(e->resp_len, 0);
    assert_int_equal(e->t1.nr, 0); /* the protocol state moved on normally */

    e = env_init(ATR_LRC);
    mock_expect(&e->m, "00 00 05 00 B0 00 00 00 B5", "00 00");
    mock_remove_after_last(&e->m);
    assert_int_equal(xfer(e, "00 B0 00 00 00", sizeof(e->resp)), STATUS_NO_MEDIA);
    mock_finish(&e->m);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_LRC);
    static uint8_t apdu[65545];
    size_t n = 0;
    assert_int_equal(smc_t1_transceive(&e->t1, &e->m.io, apdu, 3, e->resp, 10, &n),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(smc_t1_transceive(&e->t1, &e->m.io, apdu, 65545, e->resp, 10, &n),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(smc_t1_transceive(NULL, &e->m.io, apdu, 4, e->resp, 10, &n),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(smc_t1_transceive(&e->t1, &e->m.io, apdu, 4, NULL, 10, &n),
                     STATUS_INVALID_PARAMETER);
    mock_finish(&e->m);
    assert_int_equal(e->m.n_send, 0);
}

static void test_inverse_convention(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_INV);
    assert_true(e->t1.inverse);
    mock_expect(&e->m, "00 00 07 00 A4 04 00 02 3F 00 9A", "00 00 02 90 00 92");
    assert_int_equal(xfer(e, "00 A4 04 00 02 3F 00", sizeof(e->resp)), STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_bytes_hex(e->resp, e->resp_len, "90 00");
}

/* The longest extended APDU (65 544 bytes) in 259 I-blocks of up to 254 bytes, and a 65 538-byte
 * response chained back in 259 blocks. */
static void test_extended_both_ways(void **state)
{
    (void)state;
    struct t1_env *e = env_init(ATR_IFSC254);
    static uint8_t apdu[65544], want[65538];
    uint8_t b[300], r[300];
    mock_expect(&e->m, "00 C1 01 FE 3E", "00 E1 01 FE 1E");
    assert_int_equal(smc_t1_negotiate_ifsd(&e->t1, &e->m.io, 254), STATUS_SUCCESS);
    memcpy(apdu, "\x80\xEC\x00\x00\x00\xFF\xFF", 7);
    for (size_t i = 7; i < sizeof(apdu); i++)
        apdu[i] = (uint8_t)(i * 13);
    for (size_t i = 0; i < sizeof(want); i++)
        want[i] = (uint8_t)(i * 5 + 1);
    size_t off = 0, roff = 0;
    unsigned ns = 0, cs = 0;
    while (off < sizeof(apdu)) {
        size_t n = sizeof(apdu) - off < 254 ? sizeof(apdu) - off : 254;
        bool more = off + n < sizeof(apdu);
        size_t bl = blk_bytes(0, (uint8_t)((ns << 6) | (more ? 0x20 : 0)), apdu + off, n, false, b);
        size_t rl;
        if (more) {
            rl = blk_bytes(0, (uint8_t)(0x80 | ((ns ^ 1) << 4)), NULL, 0, false, r);
        } else { /* first piece of the answer */
            rl = blk_bytes(0, (uint8_t)((cs << 6) | 0x20), want, 254, false, r);
            roff = 254;
            cs ^= 1;
        }
        mock_expect_bytes(&e->m, b, bl, r, rl);
        off += n;
        ns ^= 1;
    }
    while (roff < sizeof(want)) {
        size_t n = sizeof(want) - roff < 254 ? sizeof(want) - roff : 254;
        bool more = roff + n < sizeof(want);
        size_t bl = blk_bytes(0, (uint8_t)(0x80 | (cs << 4)), NULL, 0, false, b);
        size_t rl =
            blk_bytes(0, (uint8_t)((cs << 6) | (more ? 0x20 : 0)), want + roff, n, false, r);
        mock_expect_bytes(&e->m, b, bl, r, rl);
        roff += n;
        cs ^= 1;
    }
    assert_int_equal(smc_t1_transceive(&e->t1, &e->m.io, apdu, sizeof(apdu), e->resp,
                                       sizeof(e->resp), &e->resp_len),
                     STATUS_SUCCESS);
    mock_finish(&e->m);
    assert_bytes_equal(e->resp, e->resp_len, want, sizeof(want));
    assert_int_equal(e->t1.blocks_sent, 1 + 259 + 258);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edc),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_exchange_lrc_and_sequence),
        cmocka_unit_test(test_exchange_crc),
        cmocka_unit_test(test_crc_bad_edc),
        cmocka_unit_test(test_nad),
        cmocka_unit_test(test_chaining_send),
        cmocka_unit_test(test_chaining_receive),
        cmocka_unit_test(test_chaining_receive_lost_ack),
        cmocka_unit_test(test_ifsd_negotiation),
        cmocka_unit_test(test_ifsd_negotiation_refused),
        cmocka_unit_test(test_ifs_from_card),
        cmocka_unit_test(test_wtx),
        cmocka_unit_test(test_lost_block),
        cmocka_unit_test(test_bad_edc_and_retransmission_request),
        cmocka_unit_test(test_resynch),
        cmocka_unit_test(test_resynch_restores_parameters),
        cmocka_unit_test(test_failure_after_retries),
        cmocka_unit_test(test_abort_from_card),
        cmocka_unit_test(test_invalid_blocks),
        cmocka_unit_test(test_invalid_blocks_length),
        cmocka_unit_test(test_hostile_s_flood),
        cmocka_unit_test(test_buffer_and_removal),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_inverse_convention),
        cmocka_unit_test(test_extended_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
