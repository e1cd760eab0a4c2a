/*
 * Resource manager: sharing (EXCLUSIVE / SHARED / DIRECT) and transactions with two and three
 * handles, waits that block on a condition and how they end (transaction released, timeout,
 * rm_cancel_waits, rm_owner_gone), dispositions and the "reset" / "removed" marks they leave on
 * the other handles, rm_owner_gone, and a threaded stress run (ThreadSanitizer suite).
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/scard_codes.h"
#include "common/timeutil.h"
#include "rm_harness.h"

#define R1 "SimVendor SimReader 1"
#define R2 "SimVendor SimReader 2"

static const uint8_t select_mf[] = {0x00, 0xA4, 0x00, 0x0C};

/* An rm with sim:1 holding a T=1 card (and sim:2 with a T=0 card when two). */
static struct rmt *setup(bool two)
{
    struct rm_config cfg;
    rmt_config(&cfg);
    cfg.power_down_ms = 60000;
    struct rmt *t = rmt_new(&cfg);
    assert_int_equal(rm_add_reader(t->rm, "sim:1:card=t1,ejects=1"), SCARD_S_SUCCESS);
    if (two)
        assert_int_equal(rm_add_reader(t->rm, "sim:2:card=t0"), SCARD_S_SUCCESS);
    rmt_clear(t);
    return t;
}

static uint64_t connect_ok(struct rmt *t, uint64_t owner, const char *reader, uint32_t share)
{
    uint64_t card = 0;
    uint32_t proto = 0;
    assert_int_equal(rm_connect(t->rm, owner, reader, share, RM_PROTOCOL_ANY, &card, &proto),
                     SCARD_S_SUCCESS);
    assert_true(card != 0);
    return card;
}

static uint32_t connect_rc(struct rmt *t, uint64_t owner, const char *reader, uint32_t share)
{
    uint64_t card = 0;
    uint32_t proto = 0;
    return rm_connect(t->rm, owner, reader, share, RM_PROTOCOL_ANY, &card, &proto);
}

/* SELECT MF; a wrong answer is SCARD_F_INTERNAL_ERROR (no cmocka call: used from threads). */
static uint32_t transmit(struct rmt *t, uint64_t card)
{
    uint8_t resp[64];
    size_t len = sizeof(resp);
    uint32_t rc = rm_transmit(t->rm, card, 0, select_mf, sizeof(select_mf), resp, &len, NULL);
    if (rc == SCARD_S_SUCCESS && (len != 2 || resp[0] != 0x90 || resp[1] != 0x00))
        rc = SCARD_F_INTERNAL_ERROR;
    return rc;
}

static bool is_empty(const struct rm_reader_info *i)
{
    return (i->flags & RM_READER_EMPTY) != 0;
}

/* ---- sharing ---- */

static void test_share_modes(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    uint64_t a = connect_ok(t, 1, R1, SCARD_SHARE_EXCLUSIVE);
    assert_int_equal(connect_rc(t, 2, R1, SCARD_SHARE_SHARED), SCARD_E_SHARING_VIOLATION);
    assert_int_equal(connect_rc(t, 2, R1, SCARD_SHARE_DIRECT), SCARD_E_SHARING_VIOLATION);
    assert_int_equal(connect_rc(t, 1, R1, SCARD_SHARE_EXCLUSIVE), SCARD_E_SHARING_VIOLATION);
    struct rm_reader_info i = rmt_info(t, R1);
    assert_int_equal(i.sharing, -1);
    assert_true(i.flags & RM_READER_EXCLUSIVE);

    uint32_t proto = 0;
    assert_int_equal(
        rm_reconnect(t->rm, a, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, SCARD_LEAVE_CARD, &proto),
        SCARD_S_SUCCESS);
    assert_int_equal(proto, RM_PROTOCOL_T1);
    uint64_t b = connect_ok(t, 2, R1, SCARD_SHARE_SHARED);
    assert_int_equal(connect_rc(t, 3, R1, SCARD_SHARE_EXCLUSIVE), SCARD_E_SHARING_VIOLATION);
    uint64_t c = connect_ok(t, 3, R1, SCARD_SHARE_SHARED);
    uint64_t d = connect_ok(t, 4, R1, SCARD_SHARE_DIRECT);
    i = rmt_info(t, R1);
    assert_int_equal(i.sharing, 4);
    assert_int_equal(i.flags & (RM_READER_INUSE | RM_READER_EXCLUSIVE), RM_READER_INUSE);
    /* Nobody may turn exclusive while others share. */
    assert_int_equal(
        rm_reconnect(t->rm, b, SCARD_SHARE_EXCLUSIVE, RM_PROTOCOL_ANY, SCARD_LEAVE_CARD, &proto),
        SCARD_E_SHARING_VIOLATION);
    assert_int_equal(transmit(t, a), SCARD_S_SUCCESS);
    assert_int_equal(transmit(t, b), SCARD_S_SUCCESS);
    assert_int_equal(transmit(t, c), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, a, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, b, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, d, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    /* The last one may become exclusive. */
    assert_int_equal(
        rm_reconnect(t->rm, c, SCARD_SHARE_EXCLUSIVE, RM_PROTOCOL_ANY, SCARD_LEAVE_CARD, &proto),
        SCARD_S_SUCCESS);
    assert_int_equal(rmt_info(t, R1).sharing, -1);
    assert_int_equal(rm_disconnect(t->rm, c, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rmt_info(t, R1).sharing, 0);
    rmt_free(t);
}

/* ---- transactions ---- */

static void test_transaction_rules(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    uint64_t a = connect_ok(t, 1, R1, SCARD_SHARE_SHARED);
    uint64_t b = connect_ok(t, 2, R1, SCARD_SHARE_SHARED);
    assert_int_equal(rm_begin_transaction(t->rm, a, RM_INFINITE), SCARD_S_SUCCESS);
    assert_int_equal(rm_begin_transaction(t->rm, a, 0), SCARD_S_SUCCESS); /* nested */
    uint64_t t0 = scrm_now_ns();
    assert_int_equal(rm_begin_transaction(t->rm, b, 50), SCARD_E_TIMEOUT);
    assert_true(scrm_now_ns() - t0 >= 50u * 1000000u);
    /* Another handle holds it: a sharing violation, as pcsc-lite, and nothing happens. */
    assert_int_equal(rm_end_transaction(t->rm, b, SCARD_RESET_CARD), SCARD_E_SHARING_VIOLATION);
    assert_int_equal(transmit(t, a), SCARD_S_SUCCESS);
    assert_int_equal(rm_end_transaction(t->rm, a, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_begin_transaction(t->rm, b, 0), SCARD_E_TIMEOUT); /* still held once */
    assert_int_equal(rm_end_transaction(t->rm, a, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_end_transaction(t->rm, a, SCARD_LEAVE_CARD), SCARD_E_NOT_TRANSACTED);
    assert_int_equal(rm_begin_transaction(t->rm, b, 0), SCARD_S_SUCCESS);
    assert_int_equal(rm_end_transaction(t->rm, b, 9), SCARD_E_INVALID_VALUE);
    assert_int_equal(rm_end_transaction(t->rm, b, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    /* Disconnect while holding the transaction releases it. */
    assert_int_equal(rm_begin_transaction(t->rm, a, 0), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, a, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_begin_transaction(t->rm, b, 0), SCARD_S_SUCCESS);
    assert_int_equal(rm_end_transaction(t->rm, b, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, b, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

struct call {
    struct rmt *t;
    uint64_t card;
    uint32_t rc;
    int what; /* 0 begin, 1 transmit, 2 disconnect RESET */
};

static void *call_thread(void *p)
{
    struct call *c = p;
    switch (c->what) {
    case 0: c->rc = rm_begin_transaction(c->t->rm, c->card, RM_INFINITE); break;
    case 1: c->rc = transmit(c->t, c->card); break;
    default: c->rc = rm_disconnect(c->t->rm, c->card, SCARD_RESET_CARD); break;
    }
    return NULL;
}

/* Another handle's transmit waits for the transaction: it runs after the holder's RESET, so it
 * sees SCARD_W_RESET_CARD (had it run inside the transaction it would have succeeded). */
/* Event-driven waits: with rm_thread_nowait the calls that would wait for another handle's
 * transaction return RM_TX_BUSY at once having done nothing; the release fires the reader's
 * watch and rm_reader_tx_free says so. */
static void test_transaction_nowait(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    uint64_t a = connect_ok(t, 1, R1, SCARD_SHARE_SHARED);
    uint64_t b = connect_ok(t, 2, R1, SCARD_SHARE_SHARED);
    struct rmt_counter c;
    rmt_counter_init(&c);
    assert_true(rm_reader_tx_free(t->rm, R1));
    assert_int_equal(rm_begin_transaction(t->rm, a, RM_INFINITE), SCARD_S_SUCCESS);
    assert_false(rm_reader_tx_free(t->rm, R1));
    rm_thread_nowait(true);
    assert_int_equal(rm_begin_transaction(t->rm, b, RM_INFINITE), RM_TX_BUSY);
    assert_string_equal(rm_thread_busy_reader(), R1);
    assert_int_equal(transmit(t, b), RM_TX_BUSY);
    assert_int_equal(transmit(t, a), SCARD_S_SUCCESS); /* the holder is not concerned */
    assert_int_equal(rm_begin_transaction(t->rm, b, 0), SCARD_E_TIMEOUT); /* a bounded wait */
    rm_thread_nowait(false);
    struct rm_watch *w = rm_watch(t->rm, R1, rmt_counter_cb, &c);
    assert_int_equal(rm_end_transaction(t->rm, a, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_true(rmt_counter_wait(&c, 1));
    assert_true(rm_reader_tx_free(t->rm, R1));
    assert_int_equal(rm_begin_transaction(t->rm, b, RM_INFINITE), SCARD_S_SUCCESS);
    assert_int_equal(rm_end_transaction(t->rm, b, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rm_unwatch(t->rm, w);
    rmt_counter_fini(&c);
    rmt_free(t);
}

static void test_transaction_blocks_other_handle(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    uint64_t a = connect_ok(t, 1, R1, SCARD_SHARE_SHARED);
    uint64_t b = connect_ok(t, 2, R1, SCARD_SHARE_SHARED);
    assert_int_equal(rm_begin_transaction(t->rm, a, RM_INFINITE), SCARD_S_SUCCESS);
    struct call cb = {t, b, 0, 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, call_thread, &cb), 0);
    assert_int_equal(transmit(t, a), SCARD_S_SUCCESS);
    assert_int_equal(rm_end_transaction(t->rm, a, SCARD_RESET_CARD), SCARD_S_SUCCESS);
    pthread_join(th, NULL);
    assert_int_equal(cb.rc, SCARD_W_RESET_CARD);
    assert_int_equal(transmit(t, a), SCARD_S_SUCCESS); /* the resetting handle is not marked */
    rmt_free(t);
}

/* A disconnect with a disposition waits for another handle's transaction; LEAVE does not. */
static void test_disconnect_waits_for_transaction(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    uint64_t a = connect_ok(t, 1, R1, SCARD_SHARE_SHARED);
    uint64_t b = connect_ok(t, 2, R1, SCARD_SHARE_SHARED);
    uint64_t c = connect_ok(t, 3, R1, SCARD_SHARE_SHARED);
    assert_int_equal(rm_begin_transaction(t->rm, a, RM_INFINITE), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, c, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    struct call cb = {t, b, 0, 2};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, call_thread, &cb), 0);
    assert_int_equal(transmit(t, a), SCARD_S_SUCCESS); /* not disturbed by b's reset */
    assert_int_equal(rm_end_transaction(t->rm, a, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    pthread_join(th, NULL);
    assert_int_equal(cb.rc, SCARD_S_SUCCESS);
    assert_int_equal(transmit(t, a), SCARD_W_RESET_CARD);
    rmt_free(t);
}

struct excl {
    struct rmt *t;
    uint64_t card;
    atomic_int *holders;
    atomic_int *max;
    uint32_t rc;
};

static void *excl_thread(void *p)
{
    struct excl *e = p;
    for (int i = 0; i < 20 && !e->rc; i++) {
        e->rc = rm_begin_transaction(e->t->rm, e->card, RM_INFINITE);
        if (e->rc)
            break;
        int h = atomic_fetch_add(e->holders, 1) + 1;
        int m = atomic_load(e->max);
        while (h > m && !atomic_compare_exchange_weak(e->max, &m, h))
            ;
        e->rc = transmit(e->t, e->card);
        atomic_fetch_sub(e->holders, 1);
        uint32_t end = rm_end_transaction(e->t->rm, e->card, SCARD_LEAVE_CARD);
        if (!e->rc)
            e->rc = end;
    }
    return NULL;
}

/* Three handles contend for the transaction: never two holders at once. */
static void test_three_handles_mutual_exclusion(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    atomic_int holders = 0, max = 0;
    struct excl e[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        e[i] = (struct excl){t, connect_ok(t, (uint64_t)i + 1, R1, SCARD_SHARE_SHARED), &holders,
                             &max, 0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, excl_thread, &e[i]), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(e[i].rc, SCARD_S_SUCCESS);
    }
    assert_int_equal(atomic_load(&max), 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rm_disconnect(t->rm, e[i].card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

/* ---- dispositions and marks ---- */

#define GS(state) "IOCTL_SMARTCARD_GET_STATE -> STATUS_SUCCESS = SCARD_" #state
#define ATR       "IOCTL_SMARTCARD_GET_ATTRIBUTE SCARD_ATTR_ATR_STRING -> STATUS_SUCCESS"
#define SETP_TX   "IOCTL_SMARTCARD_SET_PROTOCOL SCARD_PROTOCOL_T0|SCARD_PROTOCOL_T1 -> STATUS_SUCCESS"

static void test_reset_marks_other_handles(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    uint64_t a = connect_ok(t, 1, R1, SCARD_SHARE_SHARED);
    uint64_t b = connect_ok(t, 2, R1, SCARD_SHARE_SHARED);
    rmt_clear(t);
    /* a resets and reconnects: b is marked. */
    uint32_t proto = 0;
    assert_int_equal(
        rm_reconnect(t->rm, a, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, SCARD_RESET_CARD, &proto),
        SCARD_S_SUCCESS);
    RMT_EXPECT(t, "IOCTL_SMARTCARD_POWER SCARD_WARM_RESET -> STATUS_SUCCESS", GS(NEGOTIABLE),
               GS(NEGOTIABLE), ATR, SETP_TX);
    assert_int_equal(transmit(t, a), SCARD_S_SUCCESS);
    assert_int_equal(transmit(t, b), SCARD_W_RESET_CARD);
    struct rm_card_status st;
    assert_int_equal(rm_status(t->rm, b, &st), SCARD_W_RESET_CARD);
    assert_int_equal(rm_begin_transaction(t->rm, b, 0), SCARD_W_RESET_CARD);
    size_t n;
    char buf[64];
    assert_int_equal(rm_get_attrib(t->rm, b, SCARD_ATTR_VENDOR_NAME, buf, sizeof(buf), &n),
                     SCARD_W_RESET_CARD);
    rmt_clear(t);
    assert_int_equal(
        rm_reconnect(t->rm, b, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, SCARD_LEAVE_CARD, &proto),
        SCARD_S_SUCCESS);
    RMT_EXPECT(t, GS(SPECIFIC), ATR,
               "IOCTL_SMARTCARD_GET_ATTRIBUTE "
               "SCARD_ATTR_CURRENT_PROTOCOL_TYPE -> STATUS_SUCCESS",
               SETP_TX);
    assert_int_equal(transmit(t, b), SCARD_S_SUCCESS);
    rmt_clear(t);
    /* b unpowers and reconnects: a is marked; the card is powered again for b. */
    assert_int_equal(
        rm_reconnect(t->rm, b, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, SCARD_UNPOWER_CARD, &proto),
        SCARD_S_SUCCESS);
    RMT_EXPECT(t, "IOCTL_SMARTCARD_POWER SCARD_POWER_DOWN -> STATUS_SUCCESS", GS(SWALLOWED),
               GS(SWALLOWED), "IOCTL_SMARTCARD_POWER SCARD_COLD_RESET -> STATUS_SUCCESS",
               GS(NEGOTIABLE), ATR, SETP_TX);
    assert_int_equal(transmit(t, a), SCARD_W_RESET_CARD);
    assert_int_equal(
        rm_reconnect(t->rm, b, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, SCARD_EJECT_CARD, &proto),
        SCARD_E_INVALID_VALUE);
    /* a ejects the card on disconnect: b's card is removed. */
    rmt_clear(t);
    assert_int_equal(rm_disconnect(t->rm, a, SCARD_EJECT_CARD), SCARD_S_SUCCESS);
    assert_true(rmt_wait_line(t, "IOCTL_SMARTCARD_EJECT -> STATUS_SUCCESS"));
    assert_true(rmt_wait_info(t, R1, is_empty));
    assert_int_equal(transmit(t, b), SCARD_W_REMOVED_CARD);
    assert_int_equal(rm_disconnect(t->rm, b, SCARD_RESET_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

/* ---- owners ---- */

static void test_owner_gone_resets_and_releases(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    uint64_t a = connect_ok(t, 1, R1, SCARD_SHARE_SHARED);
    uint64_t a2 = connect_ok(t, 1, R2, SCARD_SHARE_EXCLUSIVE);
    uint64_t b = connect_ok(t, 2, R1, SCARD_SHARE_SHARED);
    assert_int_equal(rm_begin_transaction(t->rm, a, RM_INFINITE), SCARD_S_SUCCESS);
    struct call cb = {t, b, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, call_thread, &cb), 0);
    rmt_clear(t);
    assert_int_equal(rm_owner_gone(t->rm, 1), 2);
    pthread_join(th, NULL);
    /* a's transaction ended, and a's reset marked b. */
    assert_int_equal(cb.rc, SCARD_W_RESET_CARD);
    assert_true(rmt_wait_line(t, "IOCTL_SMARTCARD_POWER SCARD_WARM_RESET -> STATUS_SUCCESS"));
    assert_int_equal(transmit(t, a), SCARD_E_INVALID_HANDLE);
    assert_int_equal(rm_status(t->rm, a2, &(struct rm_card_status){0}), SCARD_E_INVALID_HANDLE);
    assert_int_equal(rmt_info(t, R2).sharing, 0);
    assert_int_equal(rm_owner_gone(t->rm, 1), 0);
    uint32_t proto;
    assert_int_equal(
        rm_reconnect(t->rm, b, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, SCARD_LEAVE_CARD, &proto),
        SCARD_S_SUCCESS);
    assert_int_equal(transmit(t, b), SCARD_S_SUCCESS);
    rmt_free(t);
}

/* An owner that leaves while another handle holds the transaction does not reset the card. */
static void test_owner_gone_leaves_foreign_transaction(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    uint64_t b = connect_ok(t, 2, R1, SCARD_SHARE_SHARED);
    (void)connect_ok(t, 3, R1, SCARD_SHARE_SHARED);
    assert_int_equal(rm_begin_transaction(t->rm, b, RM_INFINITE), SCARD_S_SUCCESS);
    rmt_clear(t);
    assert_int_equal(rm_owner_gone(t->rm, 3), 1);
    assert_int_equal(rmt_lines(t), 0); /* LEAVE: no IOCTL */
    assert_int_equal(transmit(t, b), SCARD_S_SUCCESS);
    assert_int_equal(rmt_info(t, R1).sharing, 1);
    assert_int_equal(rm_end_transaction(t->rm, b, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    rmt_free(t);
}

struct waiter {
    struct call c;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
};

static void *waiter_thread(void *p)
{
    struct waiter *w = p;
    call_thread(&w->c);
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* rm_cancel_waits ends a blocked begin of that owner with SCARD_E_CANCELLED. The cancel is
 * repeated on each 20 ms slice of a bounded wait, since the thread may not be waiting yet. */
static void test_cancel_waits(void **state)
{
    (void)state;
    struct rmt *t = setup(false);
    uint64_t a = connect_ok(t, 1, R1, SCARD_SHARE_SHARED);
    uint64_t b = connect_ok(t, 2, R1, SCARD_SHARE_SHARED);
    assert_int_equal(rm_begin_transaction(t->rm, a, RM_INFINITE), SCARD_S_SUCCESS);
    struct waiter w = {.c = {t, b, 0, 0}};
    pthread_mutex_init(&w.lock, NULL);
    assert_int_equal(scrm_cond_init_monotonic(&w.cond), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_thread, &w), 0);
    uint64_t end = scrm_now_ns() + (uint64_t)RMT_WAIT_MS * 1000000u;
    pthread_mutex_lock(&w.lock);
    while (!w.done && scrm_now_ns() < end) {
        pthread_mutex_unlock(&w.lock);
        rm_cancel_waits(t->rm, 1); /* another owner: no effect on b */
        rm_cancel_waits(t->rm, 2);
        pthread_mutex_lock(&w.lock);
        struct timespec dl = scrm_deadline_ms(20);
        if (!w.done)
            pthread_cond_timedwait(&w.cond, &w.lock, &dl);
    }
    pthread_mutex_unlock(&w.lock);
    pthread_join(th, NULL);
    assert_int_equal(w.c.rc, SCARD_E_CANCELLED);
    assert_int_equal(transmit(t, a), SCARD_S_SUCCESS); /* a still holds its transaction */
    assert_int_equal(rm_begin_transaction(t->rm, b, 0), SCARD_E_TIMEOUT);
    assert_int_equal(rm_end_transaction(t->rm, a, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    rmt_free(t);
}

/* ---- stress ---- */

struct stress {
    struct rmt *t;
    uint64_t owner;
    unsigned seed;
    int bad;
    uint32_t bad_rc;
    int bad_step;
};

static void note_bad(struct stress *s, int step, uint32_t rc)
{
    s->bad++;
    s->bad_rc = rc;
    s->bad_step = step;
}

static bool acceptable(uint32_t rc)
{
    switch (rc) {
    case SCARD_S_SUCCESS:
    case SCARD_E_SHARING_VIOLATION:
    case SCARD_E_NO_SMARTCARD:
    case SCARD_W_REMOVED_CARD:
    case SCARD_W_RESET_CARD:
    case SCARD_E_NOT_TRANSACTED:
    case SCARD_E_TIMEOUT: return true;
    default: return false;
    }
}

static void *stress_thread(void *p)
{
    struct stress *s = p;
    static const uint32_t shares[] = {SCARD_SHARE_SHARED, SCARD_SHARE_SHARED, SCARD_SHARE_DIRECT,
                                      SCARD_SHARE_EXCLUSIVE};
    for (int i = 0; i < 60; i++) {
        const char *reader = rand_r(&s->seed) % 2 ? R1 : R2;
        uint64_t card = 0;
        uint32_t proto;
        uint32_t rc = rm_connect(s->t->rm, s->owner, reader, shares[rand_r(&s->seed) % 4],
                                 RM_PROTOCOL_ANY, &card, &proto);
        if (!acceptable(rc))
            note_bad(s, 1, rc);
        if (rc)
            continue;
        if (rand_r(&s->seed) % 2 && !acceptable(rc = rm_begin_transaction(s->t->rm, card, 20)))
            note_bad(s, 2, rc);
        rc = transmit(s->t, card);
        if (!acceptable(rc) && rc != SCARD_W_UNPOWERED_CARD && rc != SCARD_E_PROTO_MISMATCH)
            note_bad(s, 3, rc);
        if (!acceptable(rc = rm_end_transaction(s->t->rm, card, rand_r(&s->seed) % 3)))
            note_bad(s, 4, rc);
        rc = rm_disconnect(s->t->rm, card, rand_r(&s->seed) % 3);
        if (!acceptable(rc) && rc != SCARD_W_UNRESPONSIVE_CARD)
            note_bad(s, 5, rc);
    }
    SCRM_IGNORE(rm_owner_gone(s->t->rm, s->owner), "how many handles were left varies by run");
    return NULL;
}

struct flipper {
    struct rmt *t;
    atomic_bool stop;
};

static void *flip_thread(void *p)
{
    struct flipper *f = p;
    for (int i = 0; !atomic_load(&f->stop) && i < 400; i++) {
        if (rmt_remove(f->t, "sim:2") == STATUS_NO_MEDIA)
            rmt_insert(f->t, "sim:2", "t0");
        else
            rmt_insert(f->t, "sim:2", "t1");
    }
    return NULL;
}

static void test_stress_threads(void **state)
{
    (void)state;
    struct rmt *t = setup(true);
    rm_set_trace(t->rm, NULL, NULL);
    enum { N = 6 };
    struct stress s[N];
    pthread_t th[N], fl;
    struct flipper f = {.t = t};
    atomic_init(&f.stop, false);
    rmt_ext(t, "sim:2", SIM_IOCTL_INFO, NULL, 0); /* open the outside handle before the threads */
    assert_int_equal(pthread_create(&fl, NULL, flip_thread, &f), 0);
    for (int i = 0; i < N; i++) {
        s[i] = (struct stress){t, (uint64_t)i + 1, (unsigned)i * 7919u + 1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, stress_thread, &s[i]), 0);
    }
    int bad = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (s[i].bad)
            print_error("thread %d: %d unexpected results, last %s at step %d\n", i, s[i].bad,
                        scard_code_name(s[i].bad_rc), s[i].bad_step);
        bad += s[i].bad;
    }
    atomic_store(&f.stop, true);
    pthread_join(fl, NULL);
    assert_int_equal(bad, 0);
    assert_int_equal(rmt_info(t, R1).sharing, 0);
    assert_int_equal(rmt_info(t, R2).sharing, 0);
    rmt_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_modes),
        cmocka_unit_test(test_transaction_rules),
        cmocka_unit_test(test_transaction_nowait),
        cmocka_unit_test(test_transaction_blocks_other_handle),
        cmocka_unit_test(test_disconnect_waits_for_transaction),
        cmocka_unit_test(test_three_handles_mutual_exclusion),
        cmocka_unit_test(test_reset_marks_other_handles),
        cmocka_unit_test(test_owner_gone_resets_and_releases),
        cmocka_unit_test(test_owner_gone_leaves_foreign_transaction),
        cmocka_unit_test(test_cancel_waits),
        cmocka_unit_test(test_stress_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
