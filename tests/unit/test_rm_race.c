/*
 * The connect/monitor race of the resource manager: a card inserted and connected to at once. The
 * insertion completes the monitor's IS_PRESENT before the insert IOCTL returns, but the monitor
 * handles it later on a pool thread; a connect arriving in between must still give a handle that
 * sees the card's ATR, a PRESENT reader and the event counter of that insertion. The loop repeats
 * insert / connect / status / disconnect / remove many times, so that every interleaving of the
 * connect with the monitor's job turns up (on the old code about one turn in a few dozen failed).
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "common/scard_codes.h"
#include "rm_harness.h"

#define R1    "SimVendor SimReader 1"
#define TURNS 400

static struct rmt *setup(bool power_on_insert)
{
    struct rm_config cfg;
    rmt_config(&cfg);
    cfg.power_on_insert = power_on_insert;
    cfg.power_down_ms = 60000;
    struct rmt *t = rmt_new(&cfg);
    rm_set_trace(t->rm, NULL, NULL); /* hundreds of turns: no capture */
    assert_int_equal(rm_add_reader(t->rm, "sim:1"), SCARD_S_SUCCESS);
    return t;
}

/* One turn: insert, connect at once, check what the handle sees, leave, remove. `turn` counts
 * from 0; each turn adds two events (insertion, removal). */
static void one_turn(struct rmt *t, uint32_t share, uint32_t turn, const uint8_t *want_atr,
                     size_t want_len)
{
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    uint64_t card = 0;
    uint32_t proto = 0;
    uint32_t pref = share == SCARD_SHARE_DIRECT ? 0 : RM_PROTOCOL_T1;
    assert_int_equal(rm_connect(t->rm, 1, R1, share, pref, &card, &proto), SCARD_S_SUCCESS);
    struct rm_card_status st;
    assert_int_equal(rm_status(t->rm, card, &st), SCARD_S_SUCCESS);
    if (st.atr_len != want_len || memcmp(st.atr, want_atr, want_len) != 0 ||
        !(st.flags & RM_READER_PRESENT) || st.event_counter != 2 * turn + 1)
        fail_msg("turn %u: ATR of %zu bytes, flags 0x%x, counter %u (want %zu bytes, PRESENT, %u)",
                 turn, st.atr_len, st.flags, st.event_counter, want_len, 2 * turn + 1);
    struct rm_reader_info i = rmt_info(t, R1);
    assert_int_equal(i.event_counter, 2 * turn + 1);
    assert_int_equal(i.flags & (RM_READER_PRESENT | RM_READER_EMPTY), RM_READER_PRESENT);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rmt_remove(t, "sim:1"), STATUS_SUCCESS);
}

/* The ATR of the t1 profile, read once with all the time in the world. */
static size_t reference_atr(struct rmt *t, uint8_t *atr)
{
    assert_int_equal(rmt_insert(t, "sim:1", "t1"), STATUS_SUCCESS);
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_T1, &card, &proto),
                     SCARD_S_SUCCESS);
    struct rm_card_status st;
    assert_int_equal(rm_status(t->rm, card, &st), SCARD_S_SUCCESS);
    assert_true(st.atr_len > 2);
    memcpy(atr, st.atr, st.atr_len);
    assert_int_equal(rm_disconnect(t->rm, card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rmt_remove(t, "sim:1"), STATUS_SUCCESS);
    return st.atr_len;
}

static void run(uint32_t share, bool power_on_insert)
{
    struct rmt *t = setup(power_on_insert);
    uint8_t atr[RM_ATR_MAX];
    size_t n = reference_atr(t, atr);
    for (uint32_t turn = 1; turn <= TURNS; turn++)
        one_turn(t, share, turn, atr, n);
    rmt_free(t);
}

static void test_insert_connect_shared(void **state)
{
    (void)state;
    run(SCARD_SHARE_SHARED, true);
}

static void test_insert_connect_exclusive_no_power_on_insert(void **state)
{
    (void)state;
    run(SCARD_SHARE_EXCLUSIVE, false);
}

/* A DIRECT handle does not power the card, but it sees the same snapshot (ATR once read). */
static void test_insert_connect_direct(void **state)
{
    (void)state;
    run(SCARD_SHARE_DIRECT, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_connect_shared),
        cmocka_unit_test(test_insert_connect_exclusive_no_power_on_insert),
        cmocka_unit_test(test_insert_connect_direct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
