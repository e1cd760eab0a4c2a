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
#include <time.h>

#include "common/log.h"
#include "common/scard_codes.h"
#include "rm_harness.h"

#define R1 "SimVendor SimReader 1"

static const uint8_t select_mf[] = {0x00, 0xA4, 0x00, 0x0C};

/* Warnings of category rm, captured. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char warned[512];
static int other_warnings;
static pthread_cond_t log_cond = PTHREAD_COND_INITIALIZER;
static bool hanging; /* the simulated reader's slot hangs now (its drv info line) */

static void sink(void *ctx, enum scrm_log_cat cat, enum scrm_log_level level, const char *msg)
{
    (void)ctx;
    if (cat == SCRM_LOG_CAT_drv && strstr(msg, "hanging (SIM_FAULT_HANG)")) {
        pthread_mutex_lock(&log_lock);
        hanging = true;
        pthread_cond_broadcast(&log_cond);
        pthread_mutex_unlock(&log_lock);
        return;
    }
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

/* A parked request: how often the rm woke it. */
struct parked {
    struct rm_idle_wait w; /* first: the callback finds its struct from it */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int woken;
};

static void parked_fired(struct rm_idle_wait *w)
{
    struct parked *p = (struct parked *)w;
    pthread_mutex_lock(&p->lock);
    p->woken++;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static bool parked_wait(struct parked *p, int n)
{
    struct timespec dl;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 20;
    pthread_mutex_lock(&p->lock);
    while (p->woken < n && rc == 0)
        rc = pthread_cond_timedwait(&p->cond, &p->lock, &dl);
    bool ok = p->woken >= n;
    pthread_mutex_unlock(&p->lock);
    return ok;
}

static int parked_count(struct parked *p)
{
    pthread_mutex_lock(&p->lock);
    int n = p->woken;
    pthread_mutex_unlock(&p->lock);
    return n;
}

struct hung_call {
    struct rm *rm;
    uint64_t card;
    uint32_t rc;
};

static void *hung_transmit(void *arg)
{
    struct hung_call *c = arg;
    uint8_t resp[64];
    size_t n = sizeof(resp);
    c->rc = rm_transmit(c->rm, c->card, 0, select_mf, sizeof(select_mf), resp, &n, NULL);
    return NULL;
}

/* Make sim:1's card hang and start a TRANSMIT on `card` that hangs in the driver; returns once
 * the driver logged that it is hanging (the reader is then busy). */
static void start_hung_transmit(struct rmt *t, struct hung_call *hc, uint64_t card, pthread_t *th)
{
    assert_int_equal(rmt_fault(t, "sim:1", SIM_FAULT_HANG, 1), STATUS_SUCCESS);
    *hc = (struct hung_call){.rm = t->rm, .card = card};
    assert_int_equal(pthread_create(th, NULL, hung_transmit, hc), 0);
    pthread_mutex_lock(&log_lock);
    while (!hanging)
        pthread_cond_wait(&log_cond, &log_lock);
    pthread_mutex_unlock(&log_lock);
}

/* The parking tests: the driver's log captured (to see the slot hang), sim:1 with a card and the
 * given watchdog, and two shared T=1 handles on it (owners 1 and 2). */
static struct rmt *park_setup(uint32_t watchdog_ms, uint64_t *a, uint64_t *b)
{
    uint32_t proto = 0;
    scrm_log_set_sink(sink, NULL);
    scrm_log_set_level(SCRM_LOG_CAT_drv, SCRM_LOG_info);
    pthread_mutex_lock(&log_lock);
    hanging = false;
    pthread_mutex_unlock(&log_lock);
    struct rmt *t = setup(watchdog_ms);
    assert_int_equal(rm_connect(t->rm, 1, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_T1, a, &proto),
                     SCARD_S_SUCCESS);
    assert_int_equal(rm_connect(t->rm, 2, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_T1, b, &proto),
                     SCARD_S_SUCCESS);
    return t;
}

static void park_teardown(struct rmt *t)
{
    rmt_free(t);
    scrm_log_set_level(SCRM_LOG_CAT_drv, SCRM_LOG_warn);
    scrm_log_set_sink(NULL, NULL);
}

/* A busy reader (one handle's TRANSMIT hangs in the driver until the watchdog cancels it) and
 * threads that must not wait for it (rm_thread_nowait_reader): their calls answer RM_READER_BUSY
 * at once having done nothing (a disconnect keeps its handle), park with rm_reader_idle_wait, and
 * are woken one at a time when the reader is free: the first when the hung call returns, the
 * next when the first's retry is done. A cancelled park is never woken. */
static void test_busy_reader_parks(void **state)
{
    (void)state;
    uint64_t a = 0, b = 0, c = 0;
    uint32_t proto = 0;
    struct rmt *t = park_setup(2000, &a, &b);
    assert_int_equal(rm_connect(t->rm, 3, R1, SCARD_SHARE_SHARED, RM_PROTOCOL_T1, &c, &proto),
                     SCARD_S_SUCCESS);
    struct hung_call hc;
    pthread_t th;
    start_hung_transmit(t, &hc, a, &th);

    rm_thread_nowait_reader(true);
    uint8_t resp[64];
    size_t n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, b, 0, select_mf, sizeof(select_mf), resp, &n, NULL),
                     RM_READER_BUSY);
    assert_string_equal(rm_thread_busy_reader(), R1);
    assert_int_equal(rm_disconnect(t->rm, c, SCARD_RESET_CARD), RM_READER_BUSY);
    char rname[RM_READER_NAME_MAX];
    assert_true(rm_card_reader_name(t->rm, c, rname, sizeof(rname))); /* still there */
    struct rm_card_status st;
    assert_int_equal(rm_status(t->rm, b, &st), SCARD_S_SUCCESS); /* needs no sequence */

    struct parked pb = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    struct parked pc = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    struct parked px = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    assert_true(rm_reader_idle_wait(t->rm, R1, &pb.w, parked_fired));
    assert_true(rm_reader_idle_wait(t->rm, R1, &px.w, parked_fired));
    assert_true(rm_reader_idle_wait(t->rm, R1, &pc.w, parked_fired));
    assert_true(rm_reader_idle_cancel(&px.w));
    assert_false(rm_reader_idle_cancel(&px.w));
    assert_false(rm_reader_idle_wait(t->rm, "no such reader", &px.w, parked_fired));

    /* the watchdog cancels the hung TRANSMIT: the reader is free, the first parked goes */
    pthread_join(th, NULL);
    assert_int_equal(hc.rc, SCARD_E_CANCELLED);
    assert_true(parked_wait(&pb, 1));
    assert_int_equal(parked_count(&pc), 0); /* one at a time */
    /* first come, first served: the reader is free, but a newcomer finds it busy while the
     * woken request has the turn, and parks behind the one still parked */
    struct parked pz = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    rm_thread_park_turn(&pz.w);
    n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, a, 0, select_mf, sizeof(select_mf), resp, &n, NULL),
                     RM_READER_BUSY);
    assert_true(rm_reader_idle_wait(t->rm, R1, &pz.w, parked_fired));
    rm_thread_park_turn(&pb.w);
    n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, b, 0, select_mf, sizeof(select_mf), resp, &n, NULL),
                     SCARD_S_SUCCESS);
    rm_reader_idle_done(&pb.w);
    assert_true(parked_wait(&pc, 1)); /* its turn now */
    assert_int_equal(parked_count(&pz), 0);
    rm_thread_park_turn(&pc.w);
    assert_int_equal(rm_disconnect(t->rm, c, SCARD_RESET_CARD), SCARD_S_SUCCESS);
    rm_reader_idle_done(&pc.w);
    assert_false(rm_card_reader_name(t->rm, c, rname, sizeof(rname)));
    assert_true(parked_wait(&pz, 1)); /* the newcomer last */
    rm_thread_park_turn(&pz.w);
    n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, a, 0, select_mf, sizeof(select_mf), resp, &n, NULL),
                     SCARD_W_RESET_CARD); /* it ran: c's disconnect reset the card */
    rm_reader_idle_done(&pz.w);
    /* a free reader parks nobody: the request goes at once (and says when it is through) */
    assert_false(rm_reader_idle_wait(t->rm, R1, &px.w, parked_fired));
    rm_reader_idle_done(&px.w);
    rm_thread_park_turn(NULL);
    rm_thread_nowait_reader(false);
    assert_int_equal(parked_count(&pb), 1);
    assert_int_equal(parked_count(&px), 0);
    assert_int_equal(rm_disconnect(t->rm, a, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, b, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    park_teardown(t);
}

/* rm_card_park_if_busy (scrmd's loop thread parks a TRANSMIT before any worker runs it): a free
 * reader or an unknown handle parks nothing and leaves w unused; a busy reader parks the request
 * in arrival order with the others, and it is woken when its turn comes like any parked one. */
static void test_card_park_if_busy(void **state)
{
    (void)state;
    uint64_t a = 0, b = 0;
    struct rmt *t = park_setup(2000, &a, &b);
    struct parked p1 = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    struct parked p2 = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    assert_false(rm_card_park_if_busy(t->rm, b, &p1.w, parked_fired)); /* free: run it */
    assert_null(p1.w.r);                                               /* nothing held */
    assert_false(rm_card_park_if_busy(t->rm, b + a + 1000, &p1.w, parked_fired));
    assert_null(p1.w.r);

    struct hung_call hc;
    pthread_t th;
    start_hung_transmit(t, &hc, a, &th);
    assert_true(rm_card_park_if_busy(t->rm, b, &p1.w, parked_fired));
    assert_true(rm_reader_idle_wait(t->rm, R1, &p2.w, parked_fired)); /* behind it */
    pthread_join(th, NULL); /* the watchdog cancels the hung call: the reader is free */
    assert_int_equal(hc.rc, SCARD_E_CANCELLED);
    assert_true(parked_wait(&p1, 1));
    assert_int_equal(parked_count(&p2), 0); /* one at a time, in arrival order */

    rm_thread_nowait_reader(true);
    rm_thread_park_turn(&p1.w);
    uint8_t resp[64];
    size_t n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, b, 0, select_mf, sizeof(select_mf), resp, &n, NULL),
                     SCARD_S_SUCCESS);
    rm_reader_idle_done(&p1.w);
    assert_true(parked_wait(&p2, 1));
    rm_reader_idle_done(&p2.w);
    rm_thread_park_turn(NULL);
    rm_thread_nowait_reader(false);
    assert_false(rm_card_park_if_busy(t->rm, b, &p1.w, parked_fired)); /* free again */
    assert_null(p1.w.r);
    assert_int_equal(parked_count(&p1), 1);
    assert_int_equal(rm_disconnect(t->rm, a, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, b, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    park_teardown(t);
}

/* A reader that leaves wakes every request parked on it; their retries find it gone. */
static void test_departure_wakes_parked(void **state)
{
    (void)state;
    /* The departure cancels the hung call too, except when it comes while the slot has not
     * yet handed its pending request to libsmc (that cancel is lost): the watchdog frees the
     * call then, long after the departure woke the parked requests. */
    uint64_t a = 0, b = 0;
    struct rmt *t = park_setup(10000, &a, &b);
    struct hung_call hc;
    pthread_t th;
    start_hung_transmit(t, &hc, a, &th);
    struct parked p1 = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    struct parked p2 = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    assert_true(rm_reader_idle_wait(t->rm, R1, &p1.w, parked_fired));
    assert_true(rm_reader_idle_wait(t->rm, R1, &p2.w, parked_fired));
    assert_int_equal(rm_remove_reader(t->rm, "sim:1"), SCARD_S_SUCCESS);
    assert_int_equal(parked_count(&p1), 1); /* woken by the departure itself */
    assert_int_equal(parked_count(&p2), 1);
    rm_thread_nowait_reader(true);
    uint8_t resp[64];
    size_t n = sizeof(resp);
    assert_int_equal(rm_transmit(t->rm, b, 0, select_mf, sizeof(select_mf), resp, &n, NULL),
                     SCARD_E_READER_UNAVAILABLE);
    rm_thread_nowait_reader(false);
    rm_reader_idle_done(&p1.w);
    rm_reader_idle_done(&p2.w);
    pthread_join(th, NULL);
    assert_int_not_equal(hc.rc, SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, a, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    assert_int_equal(rm_disconnect(t->rm, b, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    park_teardown(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hung_transmit_is_cancelled), cmocka_unit_test(test_config),
        cmocka_unit_test(test_busy_reader_parks),          cmocka_unit_test(test_card_park_if_busy),
        cmocka_unit_test(test_departure_wakes_parked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
