/*
 * The reader-side ISO/IEC 7816-3 engine of libsmc (src/smc: atr.c, caps.c, pps.c, t0.c, t1.c)
 * talking to the simulated card (src/drivers/sim/simcard*.c). The two sides were written apart,
 * so every exchange here checks one against the other: ATR parsing of every card profile, PPS
 * (echo, partial, refusal), T=0 and T=1 with APDU cases 1-4, extended APDUs of 4 KiB and
 * 65 535 bytes, chaining both ways, IFS from the card, the inverse convention, and every fault of
 * the card, after which the reader must either recover or fail cleanly (a status, no endless
 * loop: the link counts its calls, no buffer overrun: ASan).
 *
 * The link has zero latency: send hands the bytes to the card, recv takes what the card has
 * queued and reports STATUS_IO_TIMEOUT when that is less than asked for.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "drivers/sim/simcard.h"
#include "smc/protocol.h"

#define MAX_LINK_CALLS 200000u

struct conv {
    struct simcard *card;
    struct smc_card_io io;
    struct smc_link_params link;
    struct smc_atr atr;
    struct smc_card_caps caps;
    struct smc_t1 t1;
    uint32_t calls;
    uint32_t max_first_us; /* longest first-byte timeout the reader asked for */
    uint64_t remove_at;    /* pull the card once it has received this many bytes (0 = never) */
    bool removed;
};

static smc_status link_send(void *ctx, const uint8_t *data, size_t len)
{
    struct conv *v = ctx;
    assert_true(++v->calls < MAX_LINK_CALLS);
    if (v->removed)
        return STATUS_NO_MEDIA;
    uint64_t have = simcard_bytes_received(v->card);
    if (v->remove_at && have + len >= v->remove_at) {
        simcard_rx(v->card, data, (size_t)(v->remove_at - have));
        v->removed = true;
        return STATUS_NO_MEDIA;
    }
    simcard_rx(v->card, data, len);
    return STATUS_SUCCESS;
}

static smc_status link_recv(void *ctx, uint8_t *buf, size_t len, uint32_t first_timeout_us,
                            uint32_t char_timeout_us, size_t *got)
{
    struct conv *v = ctx;
    (void)char_timeout_us;
    assert_true(++v->calls < MAX_LINK_CALLS);
    if (first_timeout_us > v->max_first_us)
        v->max_first_us = first_timeout_us;
    *got = 0;
    if (v->removed)
        return STATUS_NO_MEDIA;
    *got = simcard_tx(v->card, buf, len);
    return *got == len ? STATUS_SUCCESS : STATUS_IO_TIMEOUT;
}

/* Reset the card and parse its ATR into v->atr and v->caps. */
static void conv_reset(struct conv *v)
{
    uint8_t atr[40];
    char why[160] = "";
    size_t n = simcard_reset(v->card, true, atr, sizeof(atr));
    assert_true(n > 0);
    smc_status rc = smc_atr_parse(atr, n, &v->atr, why, sizeof(why));
    if (rc != STATUS_SUCCESS)
        fprintf(stderr, "# ATR refused: %s\n", why);
    assert_int_equal(rc, STATUS_SUCCESS);
    smc_caps_from_atr(&v->caps, &v->atr, &v->link);
}

static struct conv *conv_cfg(const struct simcard_config *cfg)
{
    struct conv *v = calloc(1, sizeof(*v));
    assert_non_null(v);
    v->card = simcard_new(cfg);
    assert_non_null(v->card);
    simcard_seed(v->card, 4242);
    v->io = (struct smc_card_io){.ctx = v, .send = link_send, .recv = link_recv};
    v->link = (struct smc_link_params){.clk_default_khz = 3580,
                                       .clk_max_khz = 3580,
                                       .rate_default = 9600,
                                       .rate_max = 250000,
                                       .max_ifsd = 254};
    conv_reset(v);
    return v;
}

static struct conv *conv_open(const char *profile)
{
    struct simcard_config cfg;
    assert_true(simcard_profile(profile, &cfg));
    return conv_cfg(&cfg);
}

/* Start T=1 without PPS (the default protocol) and announce IFSD. */
static void conv_t1(struct conv *v, uint8_t ifsd)
{
    v->caps.protocol_selected = SCARD_PROTOCOL_T1;
    smc_t1_init(&v->t1, &v->caps);
    if (ifsd)
        assert_int_equal(smc_t1_negotiate_ifsd(&v->t1, &v->io, ifsd), STATUS_SUCCESS);
}

static void conv_close(struct conv *v)
{
    simcard_free(v->card);
    free(v);
}

static uint8_t g_resp[70000];
static size_t g_len;

static smc_status run_t0(struct conv *v, const uint8_t *apdu, size_t len)
{
    g_len = 0;
    return smc_t0_transceive(&v->io, &v->caps, apdu, len, g_resp, sizeof(g_resp), &g_len);
}

static smc_status run_t1(struct conv *v, const uint8_t *apdu, size_t len)
{
    g_len = 0;
    return smc_t1_transceive(&v->t1, &v->io, apdu, len, g_resp, sizeof(g_resp), &g_len);
}

static smc_status run_hex(struct conv *v, bool t1, const char *hex)
{
    uint8_t b[600];
    long n = scrm_hex_decode(hex, b, sizeof(b));
    assert_true(n > 0);
    return t1 ? run_t1(v, b, (size_t)n) : run_t0(v, b, (size_t)n);
}

#define APDU_OK(v, t1, apdu, resp)                                    \
    do {                                                              \
        assert_int_equal(run_hex((v), (t1), (apdu)), STATUS_SUCCESS); \
        assert_bytes_hex(g_resp, g_len, (resp));                      \
    } while (0)

/* The card-side basics every protocol test relies on, as seen through the engine. */
static void apdu_cases(struct conv *v, bool t1)
{
    /* case 1 */
    APDU_OK(v, t1, "00 20 00 80", "63 C3");
    /* case 3 */
    APDU_OK(v, t1, "00 A4 00 0C 02 2F 01", "90 00");
    /* case 2: READ BINARY with Le 00 (T=0: 6C20 and re-issue) */
    APDU_OK(v, t1, "00 B0 00 00 00",
            "53 43 52 4D 20 73 69 6D 75 6C 61 74 65 64 20 63 61 72 64 20 45 46 20 32 46 30 31 "
            "00 00 00 00 00 90 00");
    APDU_OK(v, t1, "00 B0 00 00 04", "53 43 52 4D 90 00");
    /* case 4: SELECT by AID returning the FCI (T=0: 61xx and GET RESPONSE) */
    APDU_OK(v, t1, "00 A4 04 00 07 F0 53 43 52 4D 00 01 00",
            "6F 13 82 01 38 83 02 50 00 84 07 F0 53 43 52 4D 00 01 8A 01 05 90 00");
    /* one-byte procedure modes in T=0: VERIFY (every byte), UPDATE (first byte), GET CHALLENGE */
    APDU_OK(v, t1, "00 20 00 80 08 31 32 33 34 FF FF FF FF", "90 00");
    APDU_OK(v, t1, "00 A4 02 0C 02 50 01", "90 00");
    APDU_OK(v, t1, "00 D6 00 10 03 A1 A2 A3", "90 00");
    APDU_OK(v, t1, "00 B0 00 0E 06", "0E 0F A1 A2 A3 13 90 00");
    assert_int_equal(run_hex(v, t1, "00 84 00 00 08"), STATUS_SUCCESS);
    assert_int_equal(g_len, 10);
    assert_bytes_hex(g_resp + 8, 2, "90 00");
    /* errors come back as status words */
    APDU_OK(v, t1, "00 A4 00 0C 02 12 34", "6A 82");
    APDU_OK(v, t1, "00 12 00 00", "6D 00");
    APDU_OK(v, t1, "A0 A4 00 00 02 3F 00", "6E 00");
    /* ECHO case 4 with 255 bytes */
    uint8_t apdu[261];
    memcpy(apdu, "\x80\xEC\x00\x00\xFF", 5);
    for (int i = 0; i < 255; i++)
        apdu[5 + i] = (uint8_t)(i + 7);
    apdu[260] = 0;
    assert_int_equal(t1 ? run_t1(v, apdu, 261) : run_t0(v, apdu, 261), STATUS_SUCCESS);
    assert_int_equal(g_len, 257);
    assert_bytes_equal(g_resp, 255, apdu + 5, 255);
}

/* ---- ATR of every profile ---------------------------------------------------------------- */

static void test_atr_every_profile(void **state)
{
    (void)state;
    static const char *names[] = {"t1",       "t0",   "t0t1",       "t1-crc",      "inverse",
                                  "specific", "fast", "pps-refuse", "pps-partial", "t0-envelope"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct simcard_config cfg;
        assert_true(simcard_profile(names[i], &cfg));
        struct conv *v = conv_cfg(&cfg);
        const struct smc_atr *a = &v->atr;
        assert_true(a->tck_ok);
        assert_int_equal(a->inverse, cfg.inverse);
        assert_int_equal(a->fi, cfg.fi);
        assert_int_equal(a->di, cfg.di);
        assert_int_equal(a->n, cfg.n);
        assert_int_equal(a->specific_mode, cfg.specific);
        uint32_t want = (cfg.t0 ? SCARD_PROTOCOL_T0 : 0) | (cfg.t1 ? SCARD_PROTOCOL_T1 : 0);
        assert_int_equal(a->protocols, want);
        assert_int_equal(a->first_protocol, (cfg.t1_first || !cfg.t0) ? 1 : 0);
        if (cfg.t0)
            assert_int_equal(a->wi, cfg.wi);
        if (cfg.t1) {
            assert_int_equal(a->ifsc, cfg.ifsc);
            assert_int_equal(a->bwi, cfg.bwi);
            assert_int_equal(a->cwi, cfg.cwi);
            assert_int_equal(a->edc & 1, cfg.crc ? 1 : 0);
            assert_true(a->tck_present);
        }
        assert_bytes_equal(a->hist, a->hist_len, cfg.hist, cfg.hist_len);
        conv_close(v);
    }
}

/* ---- PPS --------------------------------------------------------------------------------- */

static void test_pps_echo(void **state)
{
    (void)state;
    struct conv *v = conv_open("fast");
    assert_int_equal(v->caps.pts.fi, 9);
    assert_int_equal(v->caps.pts.di, 6);
    assert_int_equal(smc_pps_exchange(&v->io, &v->caps, 1), STATUS_SUCCESS);
    assert_int_equal(v->caps.fi, 9);
    assert_int_equal(v->caps.di, 6);
    struct simcard_info info;
    simcard_info(v->card, &info);
    assert_true(info.pps_done);
    assert_int_equal(info.fi, 9);
    assert_int_equal(info.di, 6);
    conv_t1(v, 254);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    conv_close(v);
}

static void test_pps_partial(void **state)
{
    (void)state;
    struct conv *v = conv_open("pps-partial");
    assert_int_equal(smc_pps_exchange(&v->io, &v->caps, 1), STATUS_SUCCESS);
    assert_int_equal(v->caps.fi, 1);
    assert_int_equal(v->caps.di, 1);
    conv_t1(v, 254);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    conv_close(v);
}

static void test_pps_refused(void **state)
{
    (void)state;
    struct conv *v = conv_open("pps-refuse");
    smc_status rc = smc_pps_exchange(&v->io, &v->caps, 1);
    assert_true(rc == STATUS_DEVICE_PROTOCOL_ERROR || rc == STATUS_IO_TIMEOUT);
    assert_int_equal(v->caps.fi, 1);
    /* reset and use the default parameters */
    conv_reset(v);
    conv_t1(v, 254);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    conv_close(v);
}

static void test_pps_select_t0_on_dual_card(void **state)
{
    (void)state;
    struct conv *v = conv_open("t0t1");
    assert_int_equal(v->atr.first_protocol, 0);
    assert_int_equal(smc_pps_exchange(&v->io, &v->caps, 1), STATUS_SUCCESS);
    conv_t1(v, 254);
    apdu_cases(v, true);
    conv_reset(v);
    assert_int_equal(smc_pps_exchange(&v->io, &v->caps, 0), STATUS_SUCCESS);
    v->caps.protocol_selected = SCARD_PROTOCOL_T0;
    APDU_OK(v, false, "00 20 00 80", "63 C3");
    conv_close(v);
}

/* ---- T=0 --------------------------------------------------------------------------------- */

static void test_t0_cases(void **state)
{
    (void)state;
    struct conv *v = conv_open("t0");
    apdu_cases(v, false);
    /* GET DATA with a too short Le: the card says 6C08, the engine re-issues; ISO 7816-4
     * annex A (case 2S.3) keeps only the first Le bytes */
    APDU_OK(v, false, "00 CA 00 5A 08", "53 43 52 4D 00 00 00 01 90 00");
    conv_close(v);
}

static void test_t0_get_data_short_le(void **state)
{
    (void)state;
    struct conv *v = conv_open("t0");
    smc_status rc = run_hex(v, false, "00 CA 00 5A 04");
    assert_int_equal(rc, STATUS_SUCCESS);
    assert_bytes_hex(g_resp, g_len, "53 43 52 4D 90 00");
    conv_close(v);
}

static void test_t0_faults(void **state)
{
    (void)state;
    struct conv *v = conv_open("t0");
    /* NULL bytes (the T=0 WTX of the card) */
    simcard_set_fault(v->card, SIMCARD_FAULT_WTX, 50);
    APDU_OK(v, false, "00 20 00 80", "63 C3");
    /* 61xx in pieces of 7 bytes */
    simcard_set_fault(v->card, SIMCARD_FAULT_CHAIN, 7);
    APDU_OK(v, false, "00 A4 04 00 07 F0 53 43 52 4D 00 01 00",
            "6F 13 82 01 38 83 02 50 00 84 07 F0 53 43 52 4D 00 01 8A 01 05 90 00");
    simcard_set_fault(v->card, SIMCARD_FAULT_NONE, 0);
    /* a lost command: the card stays silent (WT expires) */
    simcard_set_fault(v->card, SIMCARD_FAULT_LOSE_BLOCK, 1);
    assert_int_equal(run_hex(v, false, "00 20 00 80"), STATUS_IO_TIMEOUT);
    APDU_OK(v, false, "00 20 00 80", "63 C3");
    /* garbage: the exchange fails with a status, the card is usable after a reset */
    simcard_set_fault(v->card, SIMCARD_FAULT_GARBAGE, 9);
    smc_status rc = run_hex(v, false, "00 A4 00 0C 02 3F 00");
    assert_true(rc == STATUS_DEVICE_PROTOCOL_ERROR || rc == STATUS_IO_TIMEOUT ||
                rc == STATUS_SUCCESS);
    conv_reset(v);
    APDU_OK(v, false, "00 20 00 80", "63 C3");
    /* mute */
    simcard_set_fault(v->card, SIMCARD_FAULT_MUTE, 0);
    assert_int_equal(run_hex(v, false, "00 20 00 80"), STATUS_IO_TIMEOUT);
    conv_close(v);
}

static void test_t0_removed(void **state)
{
    (void)state;
    struct conv *v = conv_open("t0");
    v->remove_at = simcard_bytes_received(v->card) + 7; /* inside the VERIFY data */
    assert_int_equal(run_hex(v, false, "00 20 00 80 08 31 32 33 34 FF FF FF FF"), STATUS_NO_MEDIA);
    conv_close(v);
}

static void big_echo(struct conv *v, bool t1, size_t nc)
{
    size_t len = 7 + nc + 2;
    uint8_t *apdu = malloc(len);
    assert_non_null(apdu);
    apdu[0] = 0x80;
    apdu[1] = 0xEC;
    apdu[2] = apdu[3] = apdu[4] = 0;
    apdu[5] = (uint8_t)(nc >> 8);
    apdu[6] = (uint8_t)nc;
    for (size_t i = 0; i < nc; i++)
        apdu[7 + i] = (uint8_t)(i * 13 + (i >> 9));
    apdu[len - 2] = apdu[len - 1] = 0; /* Le 0000: everything */
    smc_status rc = t1 ? run_t1(v, apdu, len) : run_t0(v, apdu, len);
    assert_int_equal(rc, STATUS_SUCCESS);
    assert_int_equal(g_len, nc + 2);
    assert_bytes_equal(g_resp, nc, apdu + 7, nc);
    assert_bytes_hex(g_resp + nc, 2, "90 00");
    free(apdu);
}

static void test_t0_envelope(void **state)
{
    (void)state;
    struct conv *v = conv_open("t0-envelope");
    big_echo(v, false, 4096);
    big_echo(v, false, 65535);
    big_echo(v, false, 300);
    /* FILL, case 2E: P3 carries Le up to 256; with Ne 1000 the TPDU has P3 = 00 and this card
     * then answers 256 bytes and 9000 (it cannot know that more were wanted) */
    APDU_OK(v, false, "80 EE 00 00 00 00 05", "00 01 02 03 04 90 00");
    assert_int_equal(run_hex(v, false, "80 EE 00 00 00 03 E8"), STATUS_SUCCESS);
    assert_int_equal(g_len, 258);
    conv_close(v);

    v = conv_open("t0");
    uint8_t apdu[7 + 300 + 2] = {0x80, 0xEC, 0x00, 0x00, 0x00, 0x01, 0x2C};
    assert_int_equal(run_t0(v, apdu, sizeof(apdu)), STATUS_INVALID_PARAMETER);
    APDU_OK(v, false, "00 20 00 80", "63 C3");
    conv_close(v);
}

/* An ENVELOPE corner: an extended C-APDU without Le whose length is a multiple of 255. */
static void test_t0_envelope_multiple_of_255(void **state)
{
    (void)state;
    struct conv *v = conv_open("t0-envelope");
    /* UPDATE BINARY of 503 bytes into EF 5002 (after VERIFY): 7 + 503 = 510 = 2 * 255 */
    APDU_OK(v, false, "00 20 00 80 08 31 32 33 34 FF FF FF FF", "90 00");
    APDU_OK(v, false, "00 A4 04 0C 07 F0 53 43 52 4D 00 01", "90 00");
    APDU_OK(v, false, "00 A4 02 0C 02 50 02", "90 00");
    uint8_t apdu[510] = {0x00, 0xD6, 0x00, 0x00, 0x00, 0x01, 0xF7};
    memset(apdu + 7, 0xEE, 503);
    assert_int_equal(run_t0(v, apdu, sizeof(apdu)), STATUS_SUCCESS);
    assert_bytes_hex(g_resp, g_len, "90 00");
    /* It must have been written. The card cannot tell the end of a C-APDU without Le that
     * fills whole pieces (Le may follow) unless the reader marks it: CLA bit 10 on every piece
     * but the last, or an empty ENVELOPE after it. */
    APDU_OK(v, false, "00 B0 00 00 02", "EE EE 90 00");
    conv_close(v);
}

static void test_t0_inverse(void **state)
{
    (void)state;
    struct conv *v = conv_open("inverse");
    assert_true(v->atr.inverse);
    assert_int_equal(v->atr.raw[0], 0x3F);
    v->caps.protocol_selected = SCARD_PROTOCOL_T0;
    apdu_cases(v, false);
    conv_close(v);
}

/* ---- T=1 --------------------------------------------------------------------------------- */

static void test_t1_cases(void **state)
{
    (void)state;
    struct conv *v = conv_open("t1");
    conv_t1(v, 254);
    apdu_cases(v, true);
    struct simcard_info info;
    simcard_info(v->card, &info);
    assert_int_equal(info.ifsd, 254);
    conv_close(v);
}

static void test_t1_default_ifsd_chaining(void **state)
{
    (void)state;
    /* no IFS exchange: the card answers in blocks of 32; a small IFSC makes the reader chain */
    struct simcard_config cfg;
    simcard_profile("t1", &cfg);
    cfg.ifsc = 16;
    struct conv *v = conv_cfg(&cfg);
    conv_t1(v, 0);
    assert_int_equal(v->t1.ifsc, 16);
    apdu_cases(v, true);
    big_echo(v, true, 4096);
    conv_close(v);
}

static void test_t1_extended(void **state)
{
    (void)state;
    struct conv *v = conv_open("t1");
    conv_t1(v, 254);
    big_echo(v, true, 4096);
    big_echo(v, true, 65535);
    assert_int_equal(run_hex(v, true, "80 EE 00 00 00 00 00"), STATUS_SUCCESS);
    assert_int_equal(g_len, 65538);
    APDU_OK(v, true, "00 A4 04 0C 07 F0 53 43 52 4D 00 01", "90 00");
    APDU_OK(v, true, "00 A4 02 0C 02 50 02", "90 00");
    assert_int_equal(run_hex(v, true, "00 B0 00 00 00 10 00"), STATUS_SUCCESS);
    assert_int_equal(g_len, 4098);
    /* a response larger than the caller's buffer: reported, nothing overrun */
    uint8_t small[100];
    size_t n = 0;
    const uint8_t fill[] = {0x80, 0xEE, 0x00, 0x00, 0x00, 0x01, 0x00};
    assert_int_equal(
        smc_t1_transceive(&v->t1, &v->io, fill, sizeof(fill), small, sizeof(small), &n),
        STATUS_BUFFER_TOO_SMALL);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    conv_close(v);
}

static void test_t1_crc_and_specific(void **state)
{
    (void)state;
    struct conv *v = conv_open("t1-crc");
    assert_int_equal(v->caps.edc, T1_CRC_CHECK);
    conv_t1(v, 254);
    apdu_cases(v, true);
    big_echo(v, true, 4096);
    conv_close(v);

    v = conv_open("specific");
    assert_true(v->atr.specific_mode);
    assert_int_equal(v->atr.specific_protocol, 1);
    assert_int_equal(v->caps.di, 8); /* TA1 in force at once */
    conv_t1(v, 254);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    conv_close(v);
}

static void test_t1_inverse(void **state)
{
    (void)state;
    struct conv *v = conv_open("inverse");
    assert_int_equal(smc_pps_exchange(&v->io, &v->caps, 1), STATUS_SUCCESS);
    conv_t1(v, 254);
    apdu_cases(v, true);
    big_echo(v, true, 4096);
    conv_close(v);
}

static void test_t1_fault_edc(void **state)
{
    (void)state;
    struct conv *v = conv_open("t1");
    conv_t1(v, 254);
    simcard_set_fault(v->card, SIMCARD_FAULT_BAD_EDC, 1);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    simcard_set_fault(v->card, SIMCARD_FAULT_BAD_EDC, 2);
    big_echo(v, true, 4096);
    assert_true(v->t1.retransmissions >= 3);
    /* more errors than the reader tries: the APDU fails, a resynch follows, then all is well */
    simcard_set_fault(v->card, SIMCARD_FAULT_BAD_EDC, 4);
    assert_int_equal(run_hex(v, true, "00 20 00 80"), STATUS_DEVICE_PROTOCOL_ERROR);
    simcard_set_fault(v->card, SIMCARD_FAULT_NONE, 0);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    /* endless bad EDC: fails, bounded */
    simcard_set_fault(v->card, SIMCARD_FAULT_BAD_EDC, 100000);
    assert_int_equal(run_hex(v, true, "00 20 00 80"), STATUS_DEVICE_PROTOCOL_ERROR);
    conv_close(v);
}

static void test_t1_fault_lost_block(void **state)
{
    (void)state;
    struct conv *v = conv_open("t1");
    conv_t1(v, 254);
    simcard_set_fault(v->card, SIMCARD_FAULT_LOSE_BLOCK, 1);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    /* lost in the middle of chains both ways */
    simcard_set_fault(v->card, SIMCARD_FAULT_LOSE_BLOCK, 2);
    big_echo(v, true, 4096);
    /* everything lost: a timeout, bounded */
    simcard_set_fault(v->card, SIMCARD_FAULT_LOSE_BLOCK, 100000);
    assert_int_equal(run_hex(v, true, "00 20 00 80"), STATUS_IO_TIMEOUT);
    simcard_set_fault(v->card, SIMCARD_FAULT_NONE, 0);
    conv_reset(v);
    conv_t1(v, 254);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    conv_close(v);
}

static void test_t1_fault_wtx_ifs_chain(void **state)
{
    (void)state;
    struct conv *v = conv_open("t1");
    conv_t1(v, 254);
    v->max_first_us = 0;
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    uint32_t bwt = v->max_first_us;
    assert_true(bwt > 0);
    simcard_set_fault(v->card, SIMCARD_FAULT_WTX, 5);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    assert_int_equal(v->max_first_us, 5 * bwt); /* the wait after S(WTX response) */
    simcard_set_fault(v->card, SIMCARD_FAULT_IFS, 20);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    assert_int_equal(v->t1.ifsc, 20);
    big_echo(v, true, 4096); /* the reader now chains in blocks of 20 */
    simcard_set_fault(v->card, SIMCARD_FAULT_CHAIN, 10);
    big_echo(v, true, 1000);
    APDU_OK(v, true, "00 20 00 80", "63 C3");
    simcard_set_fault(v->card, SIMCARD_FAULT_WTX, 2);
    big_echo(v, true, 600);
    conv_close(v);
}

static void test_t1_fault_garbage_and_mute(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 40, 259, 300, 1000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint32_t n = sizes[i];
        struct conv *v = conv_open("t1");
        conv_t1(v, 254);
        simcard_set_fault(v->card, SIMCARD_FAULT_GARBAGE, n);
        smc_status rc = run_hex(v, true, "00 20 00 80");
        if (rc == STATUS_SUCCESS)
            assert_bytes_hex(g_resp, g_len, "63 C3");
        else
            assert_true(rc == STATUS_DEVICE_PROTOCOL_ERROR || rc == STATUS_IO_TIMEOUT);
        /* whatever happened, the next APDU works (after a resynch the reader is in step) */
        rc = run_hex(v, true, "00 20 00 80");
        if (rc != STATUS_SUCCESS)
            fprintf(stderr, "# garbage %u: follow-up APDU status %08X\n", n, (unsigned)rc);
        assert_int_equal(rc, STATUS_SUCCESS);
        assert_bytes_hex(g_resp, g_len, "63 C3");
        conv_close(v);
    }
    struct conv *v = conv_open("t1");
    conv_t1(v, 254);
    simcard_set_fault(v->card, SIMCARD_FAULT_MUTE, 0);
    assert_int_equal(run_hex(v, true, "00 20 00 80"), STATUS_IO_TIMEOUT);
    conv_close(v);
}

static void test_t1_removed_mid_chain(void **state)
{
    (void)state;
    struct conv *v = conv_open("t1");
    conv_t1(v, 254);
    v->remove_at = simcard_bytes_received(v->card) + 1000; /* inside the 4th I-block */
    uint8_t apdu[7 + 4096] = {0x80, 0xEC, 0x00, 0x00, 0x00, 0x10, 0x00};
    assert_int_equal(run_t1(v, apdu, sizeof(apdu)), STATUS_NO_MEDIA);
    assert_int_equal(simcard_bytes_received(v->card), v->remove_at);
    conv_close(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atr_every_profile),
        cmocka_unit_test(test_pps_echo),
        cmocka_unit_test(test_pps_partial),
        cmocka_unit_test(test_pps_refused),
        cmocka_unit_test(test_pps_select_t0_on_dual_card),
        cmocka_unit_test(test_t0_cases),
        cmocka_unit_test(test_t0_get_data_short_le),
        cmocka_unit_test(test_t0_faults),
        cmocka_unit_test(test_t0_removed),
        cmocka_unit_test(test_t0_envelope),
        cmocka_unit_test(test_t0_envelope_multiple_of_255),
        cmocka_unit_test(test_t0_inverse),
        cmocka_unit_test(test_t1_cases),
        cmocka_unit_test(test_t1_default_ifsd_chaining),
        cmocka_unit_test(test_t1_extended),
        cmocka_unit_test(test_t1_crc_and_specific),
        cmocka_unit_test(test_t1_inverse),
        cmocka_unit_test(test_t1_fault_edc),
        cmocka_unit_test(test_t1_fault_lost_block),
        cmocka_unit_test(test_t1_fault_wtx_ifs_chain),
        cmocka_unit_test(test_t1_fault_garbage_and_mute),
        cmocka_unit_test(test_t1_removed_mid_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
