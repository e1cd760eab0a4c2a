/*
 * Tests for the ATR parser, the conversion tables and the card capabilities derived from an ATR
 * (src/smc/atr.c, src/smc/caps.c): real card ATRs (from pcsc-tools' smartcard_list.txt), the
 * inverse convention in both forms (3F decoded, 03 not converted), every malformed-ATR error with
 * its reason, the interpretation rules of global and protocol bytes, and the timings of ISO/IEC 7816-3 (work waiting time, CWT, BWT).
 */
#include "testutil.h"

#include <string.h>

#include "common/hex.h"
#include "smc/protocol.h"

struct parsed {
    struct smc_atr a;
    char why[200];
    smc_status rc;
};

static void parse_hex(const char *hex, struct parsed *p)
{
    uint8_t b[64];
    long n = scrm_hex_decode(hex, b, sizeof(b));
    assert_true(n >= 0);
    p->rc = smc_atr_parse(b, (size_t)n, &p->a, p->why, sizeof(p->why));
}

static void expect_error(const char *hex, const char *reason)
{
    struct parsed p;
    parse_hex(hex, &p);
    if (p.rc != STATUS_UNRECOGNIZED_MEDIA || !strstr(p.why, reason))
        fprintf(stderr, "# ATR %s: status %08X, reason '%s', want '%s'\n", hex, p.rc, p.why,
                reason);
    assert_int_equal(p.rc, STATUS_UNRECOGNIZED_MEDIA);
    assert_non_null(strstr(p.why, reason));
}

static const struct smc_link_params link_3580 = {.clk_default_khz = 3580,
                                                 .clk_max_khz = 3580,
                                                 .rate_default = 9600,
                                                 .rate_max = 9600,
                                                 .max_ifsd = 254};

static void test_tables(void **state)
{
    (void)state;
    static const uint16_t f[16] = {372, 372, 558, 744,  1116, 1488, 1860, 0,
                                   0,   512, 768, 1024, 1536, 2048, 0,    0};
    static const uint32_t fmax[16] = {4000, 5000, 6000, 8000,  12000, 16000, 20000, 0,
                                      0,    5000, 7500, 10000, 15000, 20000, 0,     0};
    static const uint8_t d[16] = {0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0};
    for (uint8_t i = 0; i < 16; i++) {
        assert_int_equal(smc_fi_to_f(i), f[i]);
        assert_int_equal(smc_fi_to_fmax_khz(i), fmax[i]);
        assert_int_equal(smc_di_to_d(i), d[i]);
    }
    assert_int_equal(smc_fi_to_f(16), 0);
    assert_int_equal(smc_di_to_d(200), 0);
}

static void test_invert(void **state)
{
    (void)state;
    uint8_t b[] = {0x3F, 0x03, 0x00, 0xFF, 0x01, 0x80};
    smc_invert(b, sizeof(b));
    assert_bytes_hex(b, sizeof(b), "03 3F FF 00 7F FE");
    for (unsigned v = 0; v < 256; v++) {
        uint8_t x = (uint8_t)v;
        smc_invert(&x, 1);
        smc_invert(&x, 1);
        assert_int_equal(x, v);
    }
}

/* Yubico YubiKey 4: T=1, TA1 13, IFSC 254, BWI 1, CWI 5, "Yubikey4". */
static void test_real_yubikey4(void **state)
{
    (void)state;
    struct parsed p;
    parse_hex("3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4", &p);
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_string_equal(p.why, "");
    assert_false(p.a.inverse);
    assert_true(p.a.has_ta1);
    assert_int_equal(p.a.fi, 1);
    assert_int_equal(p.a.di, 3);
    assert_int_equal(p.a.n, 0);
    assert_int_equal(p.a.protocols, SCARD_PROTOCOL_T1);
    assert_int_equal(p.a.t_mask, 1u << 1);
    assert_int_equal(p.a.first_protocol, 1);
    assert_false(p.a.specific_mode);
    assert_int_equal(p.a.ifsc, 254);
    assert_int_equal(p.a.bwi, 1);
    assert_int_equal(p.a.cwi, 5);
    assert_int_equal(p.a.edc, 0);
    assert_int_equal(p.a.wi, 10);
    assert_bytes_hex(p.a.hist, p.a.hist_len, "59 75 62 69 6B 65 79 34");
    assert_true(p.a.tck_present);
    assert_true(p.a.tck_ok);
    assert_int_equal(p.a.len, 18);
    assert_bytes_hex(p.a.raw, p.a.len, "3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4");
}

/* Gnuk OpenPGP token: TC1 = FF, T=1 then T=15 with its global TA (class 3). */
static void test_real_gnuk_t15(void **state)
{
    (void)state;
    struct parsed p;
    parse_hex("3B DA 11 FF 81 B1 FE 55 1F 03 00 31 84 73 80 01 80 00 90 00 E4", &p);
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_int_equal(p.a.n, 255);
    assert_int_equal(p.a.fi, 1);
    assert_int_equal(p.a.di, 1);
    assert_int_equal(p.a.protocols, SCARD_PROTOCOL_T1);
    assert_int_equal(p.a.t_mask, (1u << 1) | (1u << 15));
    assert_int_equal(p.a.ifsc, 254);
    assert_int_equal(p.a.bwi, 5);
    assert_int_equal(p.a.cwi, 5);
    assert_true(p.a.has_t15);
    assert_int_equal(p.a.clock_stop, 0);
    assert_int_equal(p.a.class_indicator, 3);
    assert_int_equal(p.a.hist_len, 10);
}

/* T=0 only cards have no TCK: Mobistar SIM (TA1 94, TB1 00) and IBM JCOP 30 (TC1 FF). */
static void test_real_t0_cards(void **state)
{
    (void)state;
    struct parsed p;
    parse_hex("3B 3B 94 00 80 65 AF 03 0D 01 74 83 0F 90 00", &p);
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_int_equal(p.a.protocols, SCARD_PROTOCOL_T0);
    assert_int_equal(p.a.t_mask, 1);
    assert_int_equal(p.a.fi, 9);
    assert_int_equal(p.a.di, 4);
    assert_false(p.a.tck_present);
    assert_true(p.a.tck_ok);
    assert_bytes_hex(p.a.hist, p.a.hist_len, "80 65 AF 03 0D 01 74 83 0F 90 00");

    parse_hex("3B 66 00 FF 4A 43 4F 50 30 33", &p);
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_false(p.a.has_ta1);
    assert_int_equal(p.a.n, 255);
    assert_bytes_hex(p.a.hist, p.a.hist_len, "4A 43 4F 50 30 33");

    parse_hex("3B 80 01 81", &p); /* NXP OpenPGP card: shortest T=1 ATR */
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_int_equal(p.a.protocols, SCARD_PROTOCOL_T1);
    assert_int_equal(p.a.hist_len, 0);
    assert_int_equal(p.a.ifsc, 32);
    assert_int_equal(p.a.cwi, 13);
    assert_int_equal(p.a.bwi, 4);
}

/* Athena T0 inverse-convention test card, as listed (3F, decoded) and as a non-converting
 * reader receives it (every byte inverted, TS 03). */
static void test_inverse_convention(void **state)
{
    (void)state;
    static const char *logical = "3F 96 18 80 01 80 51 00 61 10 30 9F";
    struct parsed p, q;
    parse_hex(logical, &p);
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_true(p.a.inverse);
    assert_int_equal(p.a.fi, 1);
    assert_int_equal(p.a.di, 8);
    assert_int_equal(p.a.protocols, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1);
    assert_int_equal(p.a.first_protocol, 0);
    assert_bytes_hex(p.a.hist, p.a.hist_len, "80 51 00 61 10 30");

    uint8_t wire[16];
    long n = scrm_hex_decode(logical, wire, sizeof(wire));
    smc_invert(wire, (size_t)n);
    assert_int_equal(wire[0], 0x03);
    q.rc = smc_atr_parse(wire, (size_t)n, &q.a, q.why, sizeof(q.why));
    assert_int_equal(q.rc, STATUS_SUCCESS);
    assert_true(q.a.inverse);
    assert_bytes_hex(q.a.raw, q.a.len, "3F 96 18 80 01 80 51 00 61 10 30 9F");
    assert_int_equal(q.a.di, 8);
    assert_bytes_equal(q.a.hist, q.a.hist_len, p.a.hist, p.a.hist_len);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_error("", "ATR is empty");
    expect_error("3B 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
                 "00 00 00 00 00 00 00 00",
                 "34 bytes long; ISO 7816-3 allows at most 33");
    expect_error("3C 00", "invalid TS 3C");
    expect_error("3B", "T0 missing");
    expect_error("3B 90", "T0 announces TA1 but the ATR ends after 2 bytes");
    expect_error("3B 90 11", "T0 announces TD1 but");
    expect_error("3B 80 80", "TD1 announces TD2 but");
    expect_error("3B 80 F1 11 22", "TD1 announces TC2 but");
    expect_error("3B 80 81 31", "TD2 announces TA3 but the ATR ends after 4 bytes");
    expect_error("3B 04 41 42", "T0 announces 4 historical bytes but only 2 follow");
    expect_error("3B 80 01", "TCK missing");
    expect_error("3B 80 80 0F", "TCK missing"); /* T=15 next to T=0 needs TCK */
    expect_error("3B 80 01 00", "TCK mismatch: XOR of T0..TCK is 81 instead of 00");
    expect_error("3B 80 01 81 00", "1 extra bytes after TCK");
    expect_error("3B 02 14 50 11", "1 extra bytes after the 2 historical bytes");
    expect_error("3B 0F 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
                 "more than 15 historical bytes");
}

static void test_bad_tck_still_parsed(void **state)
{
    (void)state;
    struct parsed p;
    parse_hex("3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D5", &p);
    assert_int_equal(p.rc, STATUS_UNRECOGNIZED_MEDIA);
    assert_true(p.a.tck_present);
    assert_false(p.a.tck_ok);
    assert_int_equal(p.a.ifsc, 254);
    assert_int_equal(p.a.hist_len, 8);
}

static void test_specific_mode(void **state)
{
    (void)state;
    struct parsed p;
    parse_hex("3B 90 96 11 01 16", &p); /* TA2 01: specific T=1, parameters from TA1 */
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_true(p.a.specific_mode);
    assert_int_equal(p.a.specific_protocol, 1);
    assert_false(p.a.implicit_params);
    struct smc_card_caps caps;
    smc_caps_from_atr(&caps, &p.a, &link_3580);
    assert_int_equal(caps.fi, 9);
    assert_int_equal(caps.di, 6);
    assert_int_equal(caps.etu_us, 5); /* 512 / (32 * 3.58 MHz) = 4.47 µs */
    assert_int_equal(caps.pts.type, PTS_TYPE_DEFAULT);

    parse_hex("3B 90 96 11 11 06", &p); /* TA2 bit 5: implicit parameters, TA1 not applicable */
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_true(p.a.implicit_params);
    smc_caps_from_atr(&caps, &p.a, &link_3580);
    assert_int_equal(caps.fi, 1);
    assert_int_equal(caps.di, 1);
}

/* TC2 WI, only the first TA/TB/TC for T=1 count, EDC, invalid IFSC, TD1 = T=15, T=14. */
static void test_protocol_bytes(void **state)
{
    (void)state;
    struct parsed p;
    parse_hex("3B 80 C0 14 00", &p); /* TD1 C0: T=0 with TC2 = 14 (WI 20) and TD2 = 00 */
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_int_equal(p.a.wi, 20);
    /* TD2 71: T=1 TA3 TB3 TC3; TD3 ... second T=1 group TA4 TB4 TC4 ignored */
    parse_hex("3B 80 81 F1 20 35 01 71 40 46 00 93", &p);
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_int_equal(p.a.ifsc, 0x20);
    assert_int_equal(p.a.bwi, 3);
    assert_int_equal(p.a.cwi, 5);
    assert_int_equal(p.a.edc, 1);
    parse_hex("3B 80 81 11 FF EF", &p); /* IFSC FF is invalid: default kept */
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_int_equal(p.a.ifsc, 32);
    parse_hex("3B 80 8E 01 0F", &p); /* T=14 then T=1 */
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_int_equal(p.a.first_protocol, 14);
    assert_int_equal(p.a.t_mask, (1u << 14) | (1u << 1));
    assert_int_equal(p.a.protocols, SCARD_PROTOCOL_T1);
    parse_hex("3B 81 1F 00 CC 52", &p); /* listed ATR with T=15 in TD1 */
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_int_equal(p.a.t_mask, 1u << 15);
    assert_int_equal(p.a.protocols, 0);
    assert_true(p.a.specific_mode);
}

static void test_clock_stop_class(void **state)
{
    (void)state;
    struct parsed p;
    parse_hex("3B 80 80 1F C7 D8", &p); /* T=0, T=15 TA3 = C7: clock stop 3, class 7 */
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_true(p.a.has_t15);
    assert_int_equal(p.a.clock_stop, 3);
    assert_int_equal(p.a.class_indicator, 7);
    assert_int_equal(p.a.protocols, SCARD_PROTOCOL_T0);
}

static void test_caps_default_timing(void **state)
{
    (void)state;
    struct parsed p;
    parse_hex("3B 80 01 81", &p);
    assert_int_equal(p.rc, STATUS_SUCCESS);
    struct smc_card_caps caps;
    smc_caps_from_atr(&caps, &p.a, &link_3580);
    assert_true(caps.valid);
    assert_int_equal(caps.protocol_selected, SCARD_PROTOCOL_UNDEFINED);
    assert_int_equal(caps.f, 372);
    assert_int_equal(caps.d, 1);
    assert_int_equal(caps.clk_khz, 3580);
    assert_int_equal(caps.etu_us, 104);
    assert_int_equal(caps.gt_us, 1247);
    assert_int_equal(caps.wt_us, 997542);
    assert_int_equal(caps.cwt_us, 852379);
    assert_int_equal(caps.bwt_us, 1597211);
    assert_int_equal(caps.bgt_us, 2287);
    assert_int_equal(caps.ifsc, 32);
    assert_int_equal(caps.ifsd, 32);
    assert_int_equal(caps.edc, 0);
    assert_int_equal(caps.pts.type, PTS_TYPE_DEFAULT);
    smc_caps_clear(&caps);
    assert_false(caps.valid);
    assert_int_equal(caps.atr.len, 0);
}

/* BWI 10..15 is RFU: such a card gets the waits of BWI 9, not block waits of up to an hour. */
static void test_caps_bwi_rfu_clamped(void **state)
{
    (void)state;
    struct parsed rfu, nine;
    parse_hex("3B 80 81 31 FE F5 3B", &rfu);
    parse_hex("3B 80 81 31 FE 95 5B", &nine);
    assert_int_equal(rfu.rc, STATUS_SUCCESS);
    assert_int_equal(nine.rc, STATUS_SUCCESS);
    assert_int_equal(rfu.a.bwi, 15); /* the ATR is reported as it is */
    struct smc_card_caps a, b;
    smc_caps_from_atr(&a, &rfu.a, &link_3580);
    smc_caps_from_atr(&b, &nine.a, &link_3580);
    assert_int_equal(a.bwt_us, b.bwt_us);
    assert_true(a.bwt_us < 300u * 1000u * 1000u);
}

static void test_caps_yubikey_timing(void **state)
{
    (void)state;
    struct parsed p;
    parse_hex("3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4", &p);
    struct smc_card_caps caps;
    smc_caps_from_atr(&caps, &p.a, &link_3580);
    assert_int_equal(caps.fi, 1); /* negotiable mode: defaults until PPS */
    assert_int_equal(caps.di, 1);
    assert_int_equal(caps.cwt_us, 4469);
    assert_int_equal(caps.bwt_us, 200652);
    caps.fi = 1; /* as after PPS with TA1 */
    caps.di = 3;
    smc_caps_update_timing(&caps);
    assert_int_equal(caps.d, 4);
    assert_int_equal(caps.etu_us, 26);
    assert_int_equal(caps.cwt_us, 1118);
    assert_int_equal(caps.bwt_us, 199795); /* BWT's second term does not depend on D */
    assert_int_equal(caps.wt_us, 997542);
}

static void test_guard_time_n255(void **state)
{
    (void)state;
    struct parsed p;
    struct smc_card_caps caps;
    parse_hex("3B 66 00 FF 4A 43 4F 50 30 33", &p); /* T=0, N = 255: 12 etu */
    smc_caps_from_atr(&caps, &p.a, &link_3580);
    assert_int_equal(caps.gt_us, 1247);
    parse_hex("3B DA 11 FF 81 B1 FE 55 1F 03 00 31 84 73 80 01 80 00 90 00 E4", &p);
    smc_caps_from_atr(&caps, &p.a, &link_3580); /* T=1, N = 255: 11 etu */
    assert_int_equal(caps.gt_us, 1144);
    parse_hex("3B 40 05", &p); /* TC1 = 5: 17 etu */
    smc_caps_from_atr(&caps, &p.a, &link_3580);
    assert_int_equal(caps.gt_us, 1767);
}

static void test_caps_rfu_ta1(void **state)
{
    (void)state;
    struct parsed p;
    parse_hex("3B 10 7A", &p); /* Fi 7 and Di 10 are RFU */
    assert_int_equal(p.rc, STATUS_SUCCESS);
    assert_true(p.a.has_ta1);
    struct smc_card_caps caps;
    smc_caps_from_atr(&caps, &p.a, &link_3580);
    assert_int_equal(caps.pts.type, PTS_TYPE_DEFAULT);
    caps.fi = 7; /* RFU values in force fall back to the defaults */
    smc_caps_update_timing(&caps);
    assert_int_equal(caps.fi, 1);
    assert_int_equal(caps.etu_us, 104);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_invert),
        cmocka_unit_test(test_real_yubikey4),
        cmocka_unit_test(test_real_gnuk_t15),
        cmocka_unit_test(test_real_t0_cards),
        cmocka_unit_test(test_inverse_convention),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bad_tck_still_parsed),
        cmocka_unit_test(test_specific_mode),
        cmocka_unit_test(test_protocol_bytes),
        cmocka_unit_test(test_clock_stop_class),
        cmocka_unit_test(test_caps_default_timing),
        cmocka_unit_test(test_caps_yubikey_timing),
        cmocka_unit_test(test_caps_bwi_rfu_clamped),
        cmocka_unit_test(test_guard_time_n255),
        cmocka_unit_test(test_caps_rfu_ta1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
