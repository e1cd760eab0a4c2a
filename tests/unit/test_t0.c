/*
 * Tests for the T=0 engine (src/smc/t0.c) over a scripted link: cases 1-4 as TPDUs, every kind
 * of procedure byte, 61xx GET RESPONSE and 6Cxx re-issue, work waiting time, extended APDUs
 * (mapped to short TPDUs or sent through ENVELOPE), the inverse convention, malformed APDUs,
 * a too small response buffer, and hostile cards (unknown procedure bytes, endless NULLs or
 * 61xx).
 */
#include "testutil.h"

#include <string.h>

#include "common/hex.h"
#include "mock_link.h"
#include "smc/protocol.h"

static const struct smc_link_params link_3580 = {
    .clk_default_khz = 3580, .clk_max_khz = 3580, .rate_default = 9600, .rate_max = 9600};

struct t0_env {
    struct smc_card_caps caps;
    struct mock_link m;
    uint8_t resp[70000];
    size_t resp_len;
};

static void env_init(struct t0_env *e, const char *atr_hex)
{
    uint8_t b[40];
    struct smc_atr a;
    long n = scrm_hex_decode(atr_hex, b, sizeof(b));
    assert_int_equal(smc_atr_parse(b, (size_t)n, &a, NULL, 0), STATUS_SUCCESS);
    smc_caps_from_atr(&e->caps, &a, &link_3580);
    e->caps.protocol_selected = SCARD_PROTOCOL_T0;
    mock_init(&e->m);
    e->m.invert = a.inverse;
    e->resp_len = 0;
}

static smc_status run_hex(struct t0_env *e, const char *apdu_hex, size_t cap)
{
    uint8_t apdu[512];
    long n = scrm_hex_decode(apdu_hex, apdu, sizeof(apdu));
    assert_true(n >= 0);
    return smc_t0_transceive(&e->m.io, &e->caps, apdu, (size_t)n, e->resp, cap, &e->resp_len);
}

static void test_case1(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00");
    mock_expect(&e.m, "00 70 00 00 00", "90 00");
    assert_int_equal(run_hex(&e, "00 70 00 00", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "90 00");
}

static void test_case2_ack_all(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00");
    mock_expect(&e.m, "00 B0 00 00 04", "B0 01 02 03 04 90 00");
    assert_int_equal(run_hex(&e, "00 B0 00 00 04", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "01 02 03 04 90 00");
    for (size_t i = 0; i < e.m.n_recv; i++) { /* every wait is WT */
        assert_int_equal(e.m.first_to[i], e.caps.wt_us);
        assert_int_equal(e.m.char_to[i], e.caps.wt_us);
    }
}

static void test_case2_one_byte_at_a_time(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00");
    /* ~B0 = 4F: one byte; then B0: the rest */
    mock_expect(&e.m, "00 B0 00 00 03", "4F 01 60 4F 02 B0 03 90 00");
    assert_int_equal(run_hex(&e, "00 B0 00 00 03", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "01 02 03 90 00");
}

static void test_case3_ack_and_nulls(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00");
    mock_expect(&e.m, "00 D6 00 00 02", "60 D6");
    mock_expect(&e.m, "AA BB", "60 60 90 00");
    assert_int_equal(run_hex(&e, "00 D6 00 00 02 AA BB", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "90 00");

    env_init(&e, "3B 00"); /* ~D6 = 29: one byte per procedure byte */
    mock_expect(&e.m, "00 D6 00 00 03", "29");
    mock_expect(&e.m, "AA", "60 29");
    mock_expect(&e.m, "BB", "D6");
    mock_expect(&e.m, "CC", "90 00");
    assert_int_equal(run_hex(&e, "00 D6 00 00 03 AA BB CC", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "90 00");
}

static void test_case3_error_sw_early(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00");
    mock_expect(&e.m, "00 D6 00 00 02", "69 82"); /* refused before any data */
    assert_int_equal(run_hex(&e, "00 D6 00 00 02 AA BB", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "69 82");
}

static void test_case4_get_response(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00");
    mock_expect(&e.m, "00 A4 04 00 02", "A4");
    mock_expect(&e.m, "3F 00", "61 04");
    mock_expect(&e.m, "00 C0 00 00 04", "C0 11 22 33 44 90 00");
    assert_int_equal(run_hex(&e, "00 A4 04 00 02 3F 00 00", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "11 22 33 44 90 00");

    env_init(&e, "3B 00"); /* Le 3 < 16 available: GET RESPONSE for 3, then 610D is returned */
    mock_expect(&e.m, "00 A4 04 00 02", "A4");
    mock_expect(&e.m, "3F 00", "61 10");
    mock_expect(&e.m, "00 C0 00 00 03", "C0 11 22 33 61 0D");
    assert_int_equal(run_hex(&e, "00 A4 04 00 02 3F 00 03", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "11 22 33 61 0D");

    env_init(&e, "3B 00"); /* the card has no data: 9000 as is */
    mock_expect(&e.m, "00 A4 04 00 02", "A4");
    mock_expect(&e.m, "3F 00", "90 00");
    assert_int_equal(run_hex(&e, "00 A4 04 00 02 3F 00 00", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "90 00");
}

static void test_get_response_class(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00"); /* proprietary CLA 81: GET RESPONSE in class 00, channel 1 */
    mock_expect(&e.m, "81 EC 00 00 01", "EC");
    mock_expect(&e.m, "55", "61 01");
    mock_expect(&e.m, "01 C0 00 00 01", "C0 55 90 00");
    assert_int_equal(run_hex(&e, "81 EC 00 00 01 55 00", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "55 90 00");
}

static void test_case3_61xx_passed_through(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00"); /* no Le: the caller asked for no data */
    mock_expect(&e.m, "00 D6 00 00 01", "D6");
    mock_expect(&e.m, "AA", "61 05");
    assert_int_equal(run_hex(&e, "00 D6 00 00 01 AA", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "61 05");
}

static void test_6cxx_reissue(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00");
    mock_expect(&e.m, "00 CA 00 5A 00", "6C 08");
    mock_expect(&e.m, "00 CA 00 5A 08", "CA 01 02 03 04 05 06 07 08 90 00");
    assert_int_equal(run_hex(&e, "00 CA 00 5A 00", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "01 02 03 04 05 06 07 08 90 00");

    env_init(&e, "3B 00"); /* Le 4 but 8 available: re-issued for 8, the first 4 kept */
    mock_expect(&e.m, "00 CA 00 5A 04", "6C 08");
    mock_expect(&e.m, "00 CA 00 5A 08", "CA 01 02 03 04 05 06 07 08 90 00");
    assert_int_equal(run_hex(&e, "00 CA 00 5A 04", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "01 02 03 04 90 00");

    env_init(&e, "3B 00"); /* a card that keeps answering 6Cxx: two re-issues, then its SW */
    mock_expect(&e.m, "00 CA 00 5A 00", "6C 08");
    mock_expect(&e.m, "00 CA 00 5A 08", "6C 09");
    mock_expect(&e.m, "00 CA 00 5A 09", "6C 0A");
    assert_int_equal(run_hex(&e, "00 CA 00 5A 00", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "6C 0A");
}

/* Case 2E with Ne = 300: P3 = 00 (256 bytes), then GET RESPONSE for the 44 left. */
static void test_extended_case2_via_get_response(void **state)
{
    (void)state;
    static struct t0_env e;
    uint8_t reply[300], want[302];
    env_init(&e, "3B 00");
    reply[0] = 0xB0;
    for (int i = 0; i < 300; i++)
        want[i] = (uint8_t)(i * 7);
    memcpy(reply + 1, want, 256);
    reply[257] = 0x61;
    reply[258] = 0x2C;
    mock_expect_bytes(&e.m, (const uint8_t *)"\x00\xB0\x00\x00\x00", 5, reply, 259);
    reply[0] = 0xC0;
    memcpy(reply + 1, want + 256, 44);
    reply[45] = 0x90;
    reply[46] = 0x00;
    mock_expect_bytes(&e.m, (const uint8_t *)"\x00\xC0\x00\x00\x2C", 5, reply, 47);
    assert_int_equal(run_hex(&e, "00 B0 00 00 00 01 2C", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    want[300] = 0x90;
    want[301] = 0x00;
    assert_bytes_equal(e.resp, e.resp_len, want, 302);
}

static void test_extended_short_data(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00"); /* case 3E with Nc = 2 fits a short TPDU */
    mock_expect(&e.m, "00 D6 00 00 02", "D6");
    mock_expect(&e.m, "AA BB", "90 00");
    assert_int_equal(run_hex(&e, "00 D6 00 00 00 00 02 AA BB", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "90 00");
}

/* Case 4E with Nc = 300: ENVELOPE in pieces of 255 and 54 bytes, then GET RESPONSE. */
static void test_extended_envelope(void **state)
{
    (void)state;
    static struct t0_env e;
    uint8_t apdu[309];
    memcpy(apdu, "\x00\xEC\x00\x00\x00\x01\x2C", 7);
    for (int i = 0; i < 300; i++)
        apdu[7 + i] = (uint8_t)i;
    apdu[307] = 0x00;
    apdu[308] = 0x00;
    env_init(&e, "3B 00");
    mock_expect(&e.m, "00 C2 00 00 FF", "C2");
    mock_expect_bytes(&e.m, apdu, 255, (const uint8_t *)"\x90\x00", 2);
    mock_expect(&e.m, "00 C2 00 00 36", "C2");
    mock_expect_bytes(&e.m, apdu + 255, 54, (const uint8_t *)"\x61\x04", 2);
    mock_expect(&e.m, "00 C0 00 00 04", "C0 DE AD BE EF 90 00");
    assert_int_equal(
        smc_t0_transceive(&e.m.io, &e.caps, apdu, 309, e.resp, sizeof(e.resp), &e.resp_len),
        STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "DE AD BE EF 90 00");

    env_init(&e, "3B 00"); /* 510 bytes = two full pieces: an empty ENVELOPE marks the end */
    uint8_t apdu3e[510];
    memcpy(apdu3e, "\x00\xD6\x00\x00\x00\x01\xF7", 7);
    memset(apdu3e + 7, 0xEE, 503);
    mock_expect(&e.m, "00 C2 00 00 FF", "C2");
    mock_expect_bytes(&e.m, apdu3e, 255, (const uint8_t *)"\x90\x00", 2);
    mock_expect(&e.m, "00 C2 00 00 FF", "C2");
    mock_expect_bytes(&e.m, apdu3e + 255, 255, (const uint8_t *)"\x90\x00", 2);
    mock_expect(&e.m, "00 C2 00 00 00", "90 00");
    assert_int_equal(smc_t0_transceive(&e.m.io, &e.caps, apdu3e, sizeof(apdu3e), e.resp,
                                       sizeof(e.resp), &e.resp_len),
                     STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "90 00");

    env_init(&e, "3B 00"); /* a card without ENVELOPE */
    mock_expect(&e.m, "00 C2 00 00 FF", "6D 00");
    assert_int_equal(
        smc_t0_transceive(&e.m.io, &e.caps, apdu, 309, e.resp, sizeof(e.resp), &e.resp_len),
        STATUS_INVALID_PARAMETER);
    mock_finish(&e.m);
    assert_int_equal(e.resp_len, 0);

    env_init(&e, "3B 00"); /* an error in the middle ends the command with the card's SW */
    mock_expect(&e.m, "00 C2 00 00 FF", "C2");
    mock_expect_bytes(&e.m, apdu, 255, (const uint8_t *)"\x6A\x80", 2);
    assert_int_equal(
        smc_t0_transceive(&e.m.io, &e.caps, apdu, 309, e.resp, sizeof(e.resp), &e.resp_len),
        STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "6A 80");
}

static void test_timeouts_and_removal(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00");
    mock_expect(&e.m, "00 70 00 00 00", ""); /* silent card: WT exceeded */
    assert_int_equal(run_hex(&e, "00 70 00 00", sizeof(e.resp)), STATUS_IO_TIMEOUT);
    mock_finish(&e.m);
    assert_int_equal(e.m.first_to[0], 997542);

    env_init(&e, "3B 00"); /* stops in the middle of the data */
    mock_expect(&e.m, "00 B0 00 00 04", "B0 01 02");
    assert_int_equal(run_hex(&e, "00 B0 00 00 04", sizeof(e.resp)), STATUS_IO_TIMEOUT);
    mock_finish(&e.m);

    env_init(&e, "3B 00");
    mock_expect(&e.m, "00 B0 00 00 04", "60");
    mock_remove_after_last(&e.m);
    assert_int_equal(run_hex(&e, "00 B0 00 00 04", sizeof(e.resp)), STATUS_NO_MEDIA);
    mock_finish(&e.m);
}

static void test_hostile_procedure_bytes(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00");
    mock_expect(&e.m, "00 B0 00 00 04", "12");
    assert_int_equal(run_hex(&e, "00 B0 00 00 04", sizeof(e.resp)), STATUS_DEVICE_PROTOCOL_ERROR);
    mock_finish(&e.m);

    env_init(&e, "3B 00"); /* ACK again after all data went out */
    mock_expect(&e.m, "00 D6 00 00 01", "D6");
    mock_expect(&e.m, "AA", "D6");
    assert_int_equal(run_hex(&e, "00 D6 00 00 01 AA", sizeof(e.resp)),
                     STATUS_DEVICE_PROTOCOL_ERROR);
    mock_finish(&e.m);

    env_init(&e, "3B 00"); /* ACK for a case 1 TPDU, which has nothing to transfer */
    mock_expect(&e.m, "00 70 00 00 00", "70");
    assert_int_equal(run_hex(&e, "00 70 00 00", sizeof(e.resp)), STATUS_DEVICE_PROTOCOL_ERROR);
    mock_finish(&e.m);
}

static void test_hostile_null_flood(void **state)
{
    (void)state;
    static struct t0_env e;
    static uint8_t nulls[65537];
    memset(nulls, 0x60, sizeof(nulls));
    env_init(&e, "3B 00");
    mock_expect_bytes(&e.m, (const uint8_t *)"\x00\x70\x00\x00\x00", 5, nulls, sizeof(nulls));
    assert_int_equal(run_hex(&e, "00 70 00 00", sizeof(e.resp)), STATUS_DEVICE_PROTOCOL_ERROR);
    mock_finish(&e.m);
}

/* A card answering 61 01 forever: GET RESPONSE rounds are bounded; its last SW comes back. */
static void test_hostile_endless_61xx(void **state)
{
    (void)state;
    static struct t0_env e;
    uint8_t first[259];
    env_init(&e, "3B 00");
    first[0] = 0xB0;
    memset(first + 1, 0xAB, 256);
    first[257] = 0x61;
    first[258] = 0x01;
    mock_expect_bytes(&e.m, (const uint8_t *)"\x00\xB0\x00\x00\x00", 5, first, 259);
    for (int i = 0; i < 300; i++)
        mock_expect(&e.m, "00 C0 00 00 01", "C0 CD 61 01");
    assert_int_equal(run_hex(&e, "00 B0 00 00 00 00 00", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_int_equal(e.resp_len, 256 + 300 + 2);
    assert_bytes_hex(e.resp + 556, 2, "61 01");
}

static void test_malformed_apdus(void **state)
{
    (void)state;
    static struct t0_env e;
    static const char *bad[] = {
        "",
        "00",
        "00 B0 00",
        "00 B0 00 00 02 AA",
        "00 D6 00 00 01 AA BB CC",
        "FF CA 00 00 00",
        "00 61 00 00",
        "00 9A 00 00 01",
        "00 B0 00 00 00 01",
        "00 D6 00 00 00 00 02 AA",
        "00 D6 00 00 00 00 00 AA",
    };
    env_init(&e, "3B 00");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        smc_status rc = run_hex(&e, bad[i], sizeof(e.resp));
        if (rc != STATUS_INVALID_PARAMETER)
            fprintf(stderr, "# APDU '%s' gave %08X\n", bad[i], rc);
        assert_int_equal(rc, STATUS_INVALID_PARAMETER);
    }
    uint8_t apdu[4] = {0, 0x70, 0, 0};
    assert_int_equal(smc_t0_transceive(NULL, &e.caps, apdu, 4, e.resp, 10, &e.resp_len),
                     STATUS_INVALID_PARAMETER);
    mock_finish(&e.m);
    assert_int_equal(e.m.n_send, 0);
}

static void test_buffer_too_small(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3B 00"); /* the exchange still runs to the end */
    mock_expect(&e.m, "00 B0 00 00 04", "B0 01 02 03 04 90 00");
    assert_int_equal(run_hex(&e, "00 B0 00 00 04", 5), STATUS_BUFFER_TOO_SMALL);
    mock_finish(&e.m);
    assert_int_equal(e.resp_len, 0);
    env_init(&e, "3B 00");
    assert_int_equal(run_hex(&e, "00 70 00 00", 1), STATUS_BUFFER_TOO_SMALL);
    mock_finish(&e.m);
}

static void test_inverse_convention(void **state)
{
    (void)state;
    static struct t0_env e;
    env_init(&e, "3F 00"); /* the mock inverts both directions on the wire */
    mock_expect(&e.m, "00 B0 00 00 02", "B0 01 02 90 00");
    assert_int_equal(run_hex(&e, "00 B0 00 00 02", sizeof(e.resp)), STATUS_SUCCESS);
    mock_finish(&e.m);
    assert_bytes_hex(e.resp, e.resp_len, "01 02 90 00");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case1),
        cmocka_unit_test(test_case2_ack_all),
        cmocka_unit_test(test_case2_one_byte_at_a_time),
        cmocka_unit_test(test_case3_ack_and_nulls),
        cmocka_unit_test(test_case3_error_sw_early),
        cmocka_unit_test(test_case4_get_response),
        cmocka_unit_test(test_get_response_class),
        cmocka_unit_test(test_case3_61xx_passed_through),
        cmocka_unit_test(test_6cxx_reissue),
        cmocka_unit_test(test_extended_case2_via_get_response),
        cmocka_unit_test(test_extended_short_data),
        cmocka_unit_test(test_extended_envelope),
        cmocka_unit_test(test_timeouts_and_removal),
        cmocka_unit_test(test_hostile_procedure_bytes),
        cmocka_unit_test(test_hostile_null_flood),
        cmocka_unit_test(test_hostile_endless_61xx),
        cmocka_unit_test(test_malformed_apdus),
        cmocka_unit_test(test_buffer_too_small),
        cmocka_unit_test(test_inverse_convention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
