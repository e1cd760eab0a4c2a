/*
 * The resource manager's IOCTL watchdog against a simulated reader whose next POWER or TRANSMIT
 * hangs (SIM_FAULT_HANG: the driver slot pends and nothing completes it). With a short watchdog
 * (the default is 150 s) the hung IOCTL is reported by a warning naming the reader and the IOCTL,
 * the reader's requests are cancelled, the caller gets SCARD_E_CANCELLED, the card monitor keeps
 * tracking (the cancel is not counted as a tracking failure) and the reader works again. No sleep:
 * the test waits on the call's return, which only the watchdog can bring.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/scard_codes.h"
#include "rm_harness.h"

#define R1 "SimVendor SimReader 1"

static const uint8_t select_mf[] = {0x00, 0xA4, 0x00, 0x0C};

/* Warnings of category rm, captured. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char warned[512];
static int other_warnings;

static void sink(void *ctx, enum scrm_log_cat cat, enum scrm_log_level level, const char *msg)
{
    (void)ctx;
    if (cat != SCRM_LOG_CAT_rm || level != SCRM_LOG_warn)
        return;
    pthread_mutex_lock(&log_lock);
    if (strstr(msg, "IOCTL watchdog"))
        snprintf(warned, sizeof(warned), "%s", msg);
    else if (!strstr(msg, "nothing to cancel"))
        other_warnings++, fprintf(stderr, "# other warning: %s\n", msg);
    pthread_mutex_unlock(&log_lock);
}

static struct rmt *setup(uint32_t watchdog_ms)
{
    struct rm_config cfg;
    rmt_config(&cfg);
    cfg.power_down_ms = 60000;
    cfg.watchdog_ms = watchdog_ms;
    struct rmt *t = rmt_new(&cfg);
    assert_int_equal(rm_add_reader(t->rm, "sim:1"), SCARD_S_SUCCESS);
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    return t;
}

static void test_hung_transmit_is_cancelled(void **state)
{
    (void)state;
    warned[0] = '\0';
    scrm_log_set_sink(sink, NULL);
    struct rmt *t = setup(50);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_T1, &card, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(rmt_fault(t, "sim:1", SIM_FAULT_HANG, 1), STATUS_SUCCESS);
    rmt_clear(t);
    uint8_t resp[64];
    size_t n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, 0, select_mf, sizeof(select_mf), resp, &n, NULL),
                     SCARD_E_CANCELLED);
    assert_true(rmt_wait_line(t, "IOCTL_SMARTCARD_TRANSMIT -> STATUS_CANCELLED"));
    pthread_mutex_lock(&log_lock);
    assert_non_null(strstr(warned, "reader '" R1 "': IOCTL_SMARTCARD_TRANSMIT has not returned"));
    pthread_mutex_unlock(&log_lock);
    /* the monitor's IS_ABSENT was cancelled too; it is posted again, the reader is fine */
    assert_true(rmt_wait_line(t, "IOCTL_SMARTCARD_IS_ABSENT -> STATUS_PENDING"));
    assert_false(rmt_info(t, R1).defective);
    n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, 0, select_mf, sizeof(select_mf), resp, &n, NULL),
                     SCARD_S_SUCCESS);
    assert_bytes_hex(resp, n, "90 00");
    /* a hung reset during a reconnect is freed the same way */
    assert_int_equal(rmt_fault(t, "sim:1", SIM_FAULT_HANG, 1), STATUS_SUCCESS);
    assert_int_equal(
        rm_reconnect(t->rm, card, SCARD_SHARE_SHARED, RM_PROTOCOL_T1, SCARD_RESET_CARD, &proto),
        SCARD_E_CANCELLED);
    assert_int_equal(
        rm_reconnect(t->rm, card, SCARD_SHARE_SHARED, RM_PROTOCOL_T1, SCARD_RESET_CARD, &proto),
        SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
    scrm_log_set_sink(NULL, NULL);
    pthread_mutex_lock(&log_lock);
    assert_int_equal(other_warnings, 0); /* e.g. no tracking failure counted */
    pthread_mutex_unlock(&log_lock);
}

/* watchdog_ms 0 switches the watchdog off; the default is the documented 150 s. */
static void test_config(void **state)
{
    (void)state;
    struct rm_config cfg;
    rm_config_init(&cfg);
    assert_int_equal(cfg.watchdog_ms, 150000);
    struct rmt *t = setup(0);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_T1, &card, &proto),
                     SCARD_S_SUCCESS);
    uint8_t resp[64];
    size_t n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, card, 0, select_mf, sizeof(select_mf), resp, &n, NULL),
                     SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hung_transmit_is_cancelled),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
