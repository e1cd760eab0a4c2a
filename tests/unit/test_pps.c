/*
 * Tests for PPS (src/smc/pps.c): the choice of Fi/Di from card and reader capabilities (maximum
 * clock and rate, optional lists, stepping D down), and the exchange over a scripted link: echo,
 * partial acceptance, every kind of refusal, silence, removal, specific mode and the inverse
 * convention.
 */
#include "testutil.h"

#include "common/hex.h"
#include "mock_link.h"
#include "smc/protocol.h"

static const struct smc_link_params link_3580 = {.clk_default_khz = 3580,
                                                 .clk_max_khz = 3580,
                                                 .rate_default = 9600,
                                                 .rate_max = 250000,
                                                 .max_ifsd = 254};

static void caps_for(const char *atr_hex, const struct smc_link_params *link,
                     struct smc_card_caps *caps)
{
    uint8_t b[40];
    struct smc_atr a;
    long n = scrm_hex_decode(atr_hex, b, sizeof(b));
    assert_true(n > 0);
    assert_int_equal(smc_atr_parse(b, (size_t)n, &a, NULL, 0), STATUS_SUCCESS);
    smc_caps_from_atr(caps, &a, link);
}

static void test_choose_card_maximum(void **state)
{
    (void)state;
    struct smc_card_caps caps;
    caps_for("3B 10 96", &link_3580, &caps); /* F 512 (5 MHz), D 32 */
    assert_int_equal(caps.pts.type, PTS_TYPE_OPTIMAL);
    assert_int_equal(caps.pts.fi, 9);
    assert_int_equal(caps.pts.di, 6);
    assert_int_equal(caps.pts.clk_khz, 3580);
    assert_int_equal(caps.pts.data_rate, 223750);
    assert_int_equal(caps.fi, 1); /* nothing in force before the exchange */
}

static void test_choose_steps_d_down(void **state)
{
    (void)state;
    struct smc_link_params l = link_3580;
    struct smc_card_caps caps;
    l.rate_max = 115200;
    caps_for("3B 10 96", &l, &caps);
    assert_int_equal(caps.pts.type, PTS_TYPE_OPTIMAL);
    assert_int_equal(caps.pts.di, 5); /* D 16: 111 875 bps */
    assert_int_equal(caps.pts.data_rate, 111875);
    l.rate_max = 9600; /* nothing faster than the default */
    caps_for("3B 10 96", &l, &caps);
    assert_int_equal(caps.pts.type, PTS_TYPE_DEFAULT);
    assert_int_equal(caps.pts.fi, 1);
    assert_int_equal(caps.pts.di, 1);
    assert_int_equal(caps.pts.data_rate, 9623);
}

static void test_choose_reader_lists(void **state)
{
    (void)state;
    static const uint32_t clks[] = {3580, 3686, 4915};
    static const uint32_t rates[] = {9600, 19200, 38400, 57600, 115200, 230400};
    struct smc_link_params l = {.clk_default_khz = 3580,
                                .clk_max_khz = 5000,
                                .rate_default = 9600,
                                .rate_max = 250000,
                                .clk_list = clks,
                                .n_clk = 3,
                                .rate_list = rates,
                                .n_rate = 6};
    struct smc_card_caps caps;
    caps_for("3B 10 96", &l, &caps);
    /* D 32 at 4.915 MHz exceeds the maximum rate; at 3.686 MHz it gives 230 375 ≈ 230 400. */
    assert_int_equal(caps.pts.type, PTS_TYPE_OPTIMAL);
    assert_int_equal(caps.pts.di, 6);
    assert_int_equal(caps.pts.clk_khz, 3686);
    assert_int_equal(caps.pts.data_rate, 230375);
    /* Below 200 000 bps: D 16 at 3.686 MHz gives 115 187 and D 12 at 4.915 MHz 115 195, both
     * ≈ 115 200; the faster wins. */
    l.rate_max = 200000;
    caps_for("3B 10 96", &l, &caps);
    assert_int_equal(caps.pts.di, 8);
    assert_int_equal(caps.pts.clk_khz, 4915);
    assert_int_equal(caps.pts.data_rate, 115195);
    l.n_clk = 2; /* without 4.915 MHz: D 16 at 3.686 MHz */
    caps_for("3B 10 96", &l, &caps);
    assert_int_equal(caps.pts.di, 5);
    assert_int_equal(caps.pts.clk_khz, 3686);
    l.n_rate = 1; /* only 9600 bps: no speed-up */
    caps_for("3B 10 96", &l, &caps);
    assert_int_equal(caps.pts.type, PTS_TYPE_DEFAULT);
}

static void test_choose_default_cases(void **state)
{
    (void)state;
    struct smc_card_caps caps;
    caps_for("3B 00", &link_3580, &caps); /* no TA1 */
    assert_int_equal(caps.pts.type, PTS_TYPE_DEFAULT);
    caps_for("3B 10 11", &link_3580, &caps); /* TA1 = default values */
    assert_int_equal(caps.pts.type, PTS_TYPE_DEFAULT);
    caps_for("3B 10 F1", &link_3580, &caps); /* Fi RFU */
    assert_int_equal(caps.pts.type, PTS_TYPE_DEFAULT);
    struct smc_link_params l = link_3580;
    l.clk_default_khz = l.clk_max_khz = 8000;
    caps_for("3B 10 06", &l, &caps); /* Fi 0: fmax 4 MHz, below every reader clock */
    assert_int_equal(caps.pts.type, PTS_TYPE_DEFAULT);
    caps_for("3B 90 96 11 01 16", &link_3580, &caps); /* specific mode: no PPS */
    assert_int_equal(caps.pts.type, PTS_TYPE_DEFAULT);
    assert_int_equal(caps.pts.fi, 9);
    assert_int_equal(caps.pts.di, 6);
    assert_int_equal(caps.pts.data_rate, 223750);
}

static void test_exchange_echo(void **state)
{
    (void)state;
    struct smc_card_caps caps;
    struct mock_link m;
    caps_for("3B 10 96", &link_3580, &caps);
    mock_init(&m);
    mock_expect(&m, "FF 10 96 79", "FF 10 96 79");
    assert_int_equal(smc_pps_exchange(&m.io, &caps, 0), STATUS_SUCCESS);
    mock_finish(&m);
    assert_int_equal(caps.fi, 9);
    assert_int_equal(caps.di, 6);
    assert_int_equal(caps.f, 512);
    assert_int_equal(caps.d, 32);
    assert_int_equal(caps.etu_us, 5);
    assert_int_equal(m.first_to[0], 997542); /* 9600 etu at F 372 */
}

static void test_exchange_t1_and_partial(void **state)
{
    (void)state;
    struct smc_link_params l = link_3580;
    struct smc_card_caps caps;
    struct mock_link m;
    caps_for("3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4", &l, &caps);
    assert_int_equal(caps.pts.di, 3);
    mock_init(&m);
    mock_expect(&m, "FF 11 13 FD", "FF 01 FE"); /* accepted without PPS1 */
    assert_int_equal(smc_pps_exchange(&m.io, &caps, 1), STATUS_SUCCESS);
    mock_finish(&m);
    assert_int_equal(caps.fi, 1);
    assert_int_equal(caps.di, 1);
    assert_int_equal(caps.etu_us, 104);

    mock_init(&m);
    mock_expect(&m, "FF 11 13 FD", "FF 11 13 FD");
    assert_int_equal(smc_pps_exchange(&m.io, &caps, 1), STATUS_SUCCESS);
    mock_finish(&m);
    assert_int_equal(caps.di, 3);
    assert_int_equal(caps.etu_us, 26);
}

static void test_exchange_default_type(void **state)
{
    (void)state;
    struct smc_card_caps caps;
    struct mock_link m;
    caps_for("3B 80 80 01 01", &link_3580, &caps); /* T=0 first, T=1 offered */
    caps.pts.type = PTS_TYPE_DEFAULT;
    caps.pts.fi = 1;
    caps.pts.di = 1;
    mock_init(&m);
    mock_expect(&m, "FF 01 FE", "FF 01 FE"); /* protocol only, no PPS1 */
    assert_int_equal(smc_pps_exchange(&m.io, &caps, 1), STATUS_SUCCESS);
    mock_finish(&m);
}

/* One refused or garbled answer: the call fails and nothing changes. */
static void expect_refusal(const char *answer, smc_status want)
{
    struct smc_card_caps caps;
    struct mock_link m;
    caps_for("3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4", &link_3580, &caps);
    mock_init(&m);
    mock_expect(&m, "FF 11 13 FD", answer);
    if (want == STATUS_NO_MEDIA)
        mock_remove_after_last(&m);
    smc_status rc = smc_pps_exchange(&m.io, &caps, 1);
    if (rc != want)
        fprintf(stderr, "# answer '%s': got %08X, want %08X\n", answer, rc, want);
    assert_int_equal(rc, want);
    mock_finish(&m);
    assert_int_equal(caps.fi, 1);
    assert_int_equal(caps.di, 1);
    assert_int_equal(caps.etu_us, 104);
}

static void test_exchange_refusals(void **state)
{
    (void)state;
    expect_refusal("FF 10 13 FC", STATUS_DEVICE_PROTOCOL_ERROR);    /* other protocol */
    expect_refusal("FF 11 94 7A", STATUS_DEVICE_PROTOCOL_ERROR);    /* other PPS1 */
    expect_refusal("FF 11 13 00", STATUS_DEVICE_PROTOCOL_ERROR);    /* bad PCK */
    expect_refusal("FE 11 13 FC", STATUS_DEVICE_PROTOCOL_ERROR);    /* bad PPSS */
    expect_refusal("FF 31 13 00 DD", STATUS_DEVICE_PROTOCOL_ERROR); /* PPS2 not asked for */
    expect_refusal("", STATUS_IO_TIMEOUT);                          /* silence */
    expect_refusal("FF 11", STATUS_DEVICE_PROTOCOL_ERROR);          /* stops half-way */
    expect_refusal("", STATUS_NO_MEDIA);                            /* card pulled */
}

static void test_exchange_specific_mode(void **state)
{
    (void)state;
    struct smc_card_caps caps;
    struct mock_link m;
    caps_for("3B 90 96 11 01 16", &link_3580, &caps);
    mock_init(&m); /* no step: nothing may be sent */
    assert_int_equal(smc_pps_exchange(&m.io, &caps, 1), STATUS_SUCCESS);
    assert_int_equal(smc_pps_exchange(&m.io, &caps, 0), STATUS_INVALID_PARAMETER);
    mock_finish(&m);
    assert_int_equal(m.n_send, 0);
    assert_int_equal(smc_pps_exchange(NULL, &caps, 1), STATUS_INVALID_PARAMETER);
}

static void test_exchange_inverse(void **state)
{
    (void)state;
    struct smc_card_caps caps;
    struct mock_link m;
    caps_for("3F 10 96", &link_3580, &caps);
    assert_true(caps.atr.inverse);
    mock_init(&m);
    m.invert = true;
    mock_expect(&m, "FF 10 96 79", "FF 10 96 79");
    assert_int_equal(smc_pps_exchange(&m.io, &caps, 0), STATUS_SUCCESS);
    mock_finish(&m);
    assert_int_equal(caps.di, 6);
}

static void test_exchange_waits_wt(void **state)
{
    (void)state;
    struct smc_card_caps caps;
    struct mock_link m;
    caps_for("3B 90 96 C0 14 00", &link_3580, &caps); /* WI 20: WT beyond 9600 etu */
    mock_init(&m);
    mock_expect(&m, "FF 10 96 79", "FF 10 96 79");
    assert_int_equal(smc_pps_exchange(&m.io, &caps, 0), STATUS_SUCCESS);
    mock_finish(&m);
    assert_int_equal(m.first_to[0], 1995084);
    assert_int_equal(m.char_to[0], 1995084);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose_card_maximum),
        cmocka_unit_test(test_choose_steps_d_down),
        cmocka_unit_test(test_choose_reader_lists),
        cmocka_unit_test(test_choose_default_cases),
        cmocka_unit_test(test_exchange_echo),
        cmocka_unit_test(test_exchange_t1_and_partial),
        cmocka_unit_test(test_exchange_default_type),
        cmocka_unit_test(test_exchange_refusals),
        cmocka_unit_test(test_exchange_specific_mode),
        cmocka_unit_test(test_exchange_inverse),
        cmocka_unit_test(test_exchange_waits_wt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
