/*
 * The card-state monitor of each reader, and its power-down timer. Event-driven, no polling:
 *
 *   1. Keep one tracking request pending: IS_PRESENT while no card is known, IS_ABSENT while one
 * is.
 *   2. When it completes (on the driver's event thread), the completion callback only records the
 *      status and queues the reader's monitor job on the pool.
 *   3. The job re-reads GET_STATE, updates the snapshot and the event counter (+1 per insertion,
 *      +1 per removal), marks the connections of a removed card, and on insertion powers the card
 *      to read its ATR (sequence.c) and arms the power-down timer. It notifies the watchers of
 *      that reader only, then posts the next request (back to 1). A request that completes at
 *      once is handled in the same loop.
 *   4. A failed tracking request is re-posted after cfg.retry_ms (timer, not sleep); after
 *      cfg.defect_threshold consecutive failures the reader is marked defective (logged) and the
 *      monitor stops until the device is re-plugged. A request ended by the device's departure
 *      (DEVICE_NOT_CONNECTED) stops the monitor quietly.
 *   5. STATUS_DEVICE_POWERED_OFF (an NFC reader whose radio is switched off, docs/libsmc.md) is not a
 *      failure: a known card is reported removed, the reader is "lost" (UNKNOWN, UNAVAILABLE)
 *      and the monitor goes idle until the driver reports the radio back (SMC_DEVICE_CHANGED
 *      through libsmc's PnP listener), then posts IS_PRESENT again. A change that arrives while
 *      the refused request is being handled is caught by a generation count, so none is lost.
 *
 * The power-down timer fires on the timer thread, which queues a job; the job runs the power-down
 * sequence only if no handle is connected and the timer was not re-armed or cancelled since
 * (pd_token). A connect cancels the timer.
 */
#include <stdlib.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "rm/internal.h"

enum mon_next { MON_WAIT, MON_AGAIN, MON_STOP };

/* STATUS_PENDING in mon_status means "nothing completed: just post" (retry timer). */
#define MON_JUST_POST STATUS_PENDING

static void monitor_run(struct rm_reader *r, smc_status st);

/* The monitor's view is behind the card: set before its job is queued; connects wait for it
 * (rm_monitor_settle). Returns the submission's generation. */
static uint64_t set_busy(struct rm_reader *r)
{
    scrm_mutex_lock(&r->lock);
    r->mon_busy = true;
    uint64_t gen = ++r->mon_submits;
    scrm_mutex_unlock(&r->lock);
    return gen;
}

/* The job of submission `gen` has handled everything and waits again. A completion that arrived
 * after its post was submitted anew (a later generation) and keeps the reader busy until its own
 * job ends: clearing here would let a connect see the snapshot before that event. */
static void clear_busy(struct rm_reader *r, uint64_t gen)
{
    scrm_mutex_lock(&r->lock);
    if (r->mon_submits == gen) {
        r->mon_busy = false;
        scrm_cond_broadcast(&r->cond);
    }
    scrm_mutex_unlock(&r->lock);
}

static uint64_t current_gen(struct rm_reader *r)
{
    scrm_mutex_lock(&r->lock);
    uint64_t gen = r->mon_submits;
    scrm_mutex_unlock(&r->lock);
    return gen;
}

/* Queue the monitor's job to handle `st`. */
static void submit(struct rm_reader *r, smc_status st)
{
    uint64_t gen = set_busy(r);
    r->mon_status = st;
    if (!rm_pool_submit(&r->rm->pool, &r->mon_job)) {
        log_debug(rm, "reader '%s': monitor job not queued (stopping)", r->name);
        clear_busy(r, gen);
    }
}

static void mon_done(void *user, smc_status st, size_t returned)
{
    struct rm_reader *r = user;
    (void)returned;
    rm_trace_completion(r, r->mon_code, st, r->mon_posted_ns);
    submit(r, st);
}

void rm_monitor_settle_locked(struct rm_reader *r) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    while (r->mon_busy && !r->gone && !atomic_load(&r->rm->closing))
        scrm_cond_wait(&r->cond, &r->lock);
}

static void mon_job_fn(struct rm_job *job)
{
    struct rm_reader *r = (struct rm_reader *)((char *)job - offsetof(struct rm_reader, mon_job));
    monitor_run(r, r->mon_status);
}

static bool stopping(struct rm_reader *r)
{
    scrm_mutex_lock(&r->mon_lock);
    bool s = r->mon_stopping;
    scrm_mutex_unlock(&r->mon_lock);
    return s;
}

/* Post the next tracking request. MON_WAIT if it pends, MON_AGAIN with *st if it completed. */
static enum mon_next post(struct rm_reader *r, smc_status *st)
{
    scrm_mutex_lock(&r->mon_lock);
    if (r->mon_stopping) {
        scrm_mutex_unlock(&r->mon_lock);
        return MON_STOP;
    }
    uint32_t code = r->mon_present ? IOCTL_SMARTCARD_IS_ABSENT : IOCTL_SMARTCARD_IS_PRESENT;
    r->mon_code = code;
    r->mon_posted_ns = scrm_now_ns();
    r->mon_gen = r->change_gen;
    r->mon_idle = false;
    /* Posted under mon_lock, so that a stop (which cancels what is pending) cannot come between
     * the check above and the request's existence. */
    *st = rm_ioctl_async(r, code, mon_done, r, NULL);
    scrm_mutex_unlock(&r->mon_lock);
    if (*st != STATUS_PENDING)
        return MON_AGAIN;
    if (code == IOCTL_SMARTCARD_IS_PRESENT) {
        /* IS_PRESENT pends only when there is no card: an empty reader, known without GET_STATE
         * (also after the radio came back on). */
        scrm_mutex_lock(&r->lock);
        bool radio_back = r->radio_off;
        if (radio_back)
            r->radio_off = r->lost = false;
        if (r->state == SCARD_UNKNOWN && !r->lost)
            r->state = SCARD_ABSENT;
        scrm_mutex_unlock(&r->lock);
        if (radio_back)
            rm_notify_reader(r);
    }
    return MON_WAIT;
}

static void retry_fired(struct rm *rm, uint64_t id, uint64_t token)
{
    (void)token;
    struct rm_reader *r = rm_reader_by_id(rm, id);
    if (!r)
        return;
    submit(r, MON_JUST_POST);
    rm_reader_unref(r);
}

/* Post the tracking request again after cfg.retry_ms. */
static enum mon_next retry_later(struct rm_reader *r)
{
    struct rm *rm = r->rm;
    scrm_mutex_lock(&r->mon_lock);
    bool armed =
        !r->mon_stopping && rm_timer_arm(&rm->timers, &r->retry_timer, rm->cfg.retry_ms, r->id, 0);
    scrm_mutex_unlock(&r->mon_lock);
    return armed ? MON_WAIT : MON_STOP;
}

/* A tracking request failed: retry later, or declare the reader defective. */
static enum mon_next tracking_failed(struct rm_reader *r, smc_status st)
{
    struct rm *rm = r->rm;
    if (st == STATUS_CANCELLED && atomic_load(&r->wd_cancels) > 0) {
        /* The IOCTL watchdog cancelled the reader's requests to free a hung one: not a failure
         * of card tracking. */
        atomic_fetch_sub(&r->wd_cancels, 1);
        log_debug(rm, "reader '%s': %s cancelled by the IOCTL watchdog; posting again", r->name,
                  smc_ioctl_name(r->mon_code));
        return MON_AGAIN;
    }
    r->mon_failures++;
    if (st == STATUS_CANCELLED && r->mon_failures < rm->cfg.defect_threshold) {
        /* Usually the device leaving (its departure is reported after the cancel): post again
         * at once; a departed device answers DEVICE_NOT_CONNECTED and the monitor ends. */
        log_debug(rm, "reader '%s': %s cancelled; posting again", r->name,
                  smc_ioctl_name(r->mon_code));
        return MON_AGAIN;
    }
    log_warn(rm, "reader '%s': %s failed: %s (%u of %u)", r->name, smc_ioctl_name(r->mon_code),
             smc_status_name(st), r->mon_failures, rm->cfg.defect_threshold);
    if (r->mon_failures >= rm->cfg.defect_threshold) {
        scrm_mutex_lock(&r->lock);
        r->defective = true;
        r->event_counter++;
        rm_power_down_cancel_locked(r);
        scrm_mutex_unlock(&r->lock);
        log_error(rm,
                  "reader '%s' is defective: %u consecutive failures of the card-tracking "
                  "requests; it stays unavailable until it is re-plugged",
                  r->name, r->mon_failures);
        rm_notify_reader(r);
        return MON_STOP;
    }
    return retry_later(r);
}

/* Removal: r->lock held. */
static void card_left_locked(struct rm_reader *r) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    r->card_present = false;
    r->atr_len = 0;
    r->protocol = 0;
    r->mute = false;
    r->app_unpowered = false;
    r->event_counter++;
    rm_conns_mark_removed_locked(r);
    rm_power_down_cancel_locked(r);
}

/* The reader answered STATUS_DEVICE_POWERED_OFF (NFC radio off): not a defect. A known card is
 * gone and the card state is unknown; the monitor idles until the device reports a change, unless
 * one came since the refused request was posted (then it posts again at once). */
static enum mon_next radio_off(struct rm_reader *r, smc_status *st)
{
    scrm_mutex_lock(&r->lock);
    bool changed = !r->radio_off || r->card_present;
    if (r->card_present)
        card_left_locked(r);
    r->radio_off = r->lost = true;
    r->state = SCARD_UNKNOWN;
    scrm_mutex_unlock(&r->lock);
    if (changed)
        log_info(rm, "reader '%s': radio off (STATUS_DEVICE_POWERED_OFF); waiting for it", r->name);
    r->mon_present = false;
    r->mon_failures = 0;
    if (changed)
        rm_notify_reader(r);
    scrm_mutex_lock(&r->mon_lock);
    enum mon_next next = MON_WAIT;
    if (r->mon_stopping)
        next = MON_STOP;
    else if (r->change_gen != r->mon_gen)
        next = MON_AGAIN;
    else
        r->mon_idle = true;
    scrm_mutex_unlock(&r->mon_lock);
    *st = MON_JUST_POST;
    return next;
}

void rm_monitor_device_changed(struct rm_reader *r)
{
    scrm_mutex_lock(&r->mon_lock);
    r->change_gen++;
    bool wake = r->mon_idle && !r->mon_stopping;
    r->mon_idle = false;
    scrm_mutex_unlock(&r->mon_lock);
    if (!wake)
        return;
    log_debug(rm, "reader '%s': device changed, monitor resumes", r->name);
    submit(r, MON_JUST_POST);
}

/* A tracking request completed: GET_STATE and update. Returns the GET_STATE status. */
static smc_status card_event(struct rm_reader *r)
{
    uint32_t state = SCARD_UNKNOWN;
    smc_status st = rm_get_state(r, &state);
    if (st != STATUS_SUCCESS)
        return st;
    bool now = state > SCARD_ABSENT;
    scrm_mutex_lock(&r->lock);
    bool was = r->card_present, was_lost = r->lost;
    /* IS_ABSENT completed (the card left at some point) but a card is there: replaced. */
    bool swap = was && now && r->mon_code == IOCTL_SMARTCARD_IS_ABSENT;
    if ((was && !now) || swap)
        card_left_locked(r);
    r->lost = state == SCARD_UNKNOWN;
    r->radio_off = false;
    r->state = state;
    bool power = r->rm->cfg.power_on_insert;
    scrm_mutex_unlock(&r->lock);

    bool insertion = (!was && now) || swap;
    if (insertion) {
        if (power) {
            rm_seq_lock(r);
            rm_seq_power_up(r, state);
            rm_seq_unlock(r);
        }
        scrm_mutex_lock(&r->lock);
        r->card_present = r->state > SCARD_ABSENT;
        r->event_counter++;
        if (r->n_conns == 0 && r->card_present && power)
            rm_power_down_arm_locked(r);
        scrm_mutex_unlock(&r->lock);
    }
    r->mon_present = now;
    if (insertion || was != now || was_lost != (state == SCARD_UNKNOWN))
        rm_notify_reader(r);
    return STATUS_SUCCESS;
}

static bool device_gone_status(smc_status st)
{
    return st == STATUS_DEVICE_NOT_CONNECTED || st == STATUS_NO_SUCH_DEVICE ||
           st == STATUS_DELETE_PENDING;
}

/* One step: handle the completion `*st`, then post the next request. */
static enum mon_next monitor_step(struct rm_reader *r, smc_status *st)
{
    if (stopping(r))
        return MON_STOP;
    if (*st == STATUS_SUCCESS) {
        smc_status gs = card_event(r);
        if (gs != STATUS_SUCCESS)
            *st = gs;
        else
            r->mon_failures = 0;
    }
    if (device_gone_status(*st)) {
        log_debug(rm, "reader '%s': device gone, monitor ends", r->name);
        return MON_STOP;
    }
    if (*st == STATUS_DEVICE_POWERED_OFF)
        return radio_off(r, st);
    if (*st != STATUS_SUCCESS && *st != MON_JUST_POST) {
        enum mon_next n = tracking_failed(r, *st);
        if (n != MON_AGAIN)
            return n;
    }
    return post(r, st);
}

static void monitor_run(struct rm_reader *r, smc_status st)
{
    uint64_t gen = current_gen(r); /* this job's submission */
    for (unsigned i = 0; i < 64; i++) {
        enum mon_next n = monitor_step(r, &st);
        if (n == MON_WAIT) {
            clear_busy(r, gen);
            return;
        }
        if (n == MON_STOP) {
            clear_busy(r, current_gen(r)); /* no job follows a stopped monitor */
            rm_reader_unref(r);            /* the monitor's reference */
            return;
        }
    }
    /* A reader whose state flips at every request: yield the worker, continue later. */
    submit(r, st);
}

void rm_monitor_start(struct rm_reader *r)
{
    struct rm *rm = r->rm;
    scrm_mutex_lock(&rm->lock);
    rm_reader_ref_locked(r);
    scrm_mutex_unlock(&rm->lock);
    r->mon_job.fn = mon_job_fn;
    r->retry_timer.fn = retry_fired;
    r->mon_present = false;
    monitor_run(r, MON_JUST_POST);
}

void rm_monitor_stop(struct rm_reader *r)
{
    scrm_mutex_lock(&r->mon_lock);
    bool already = r->mon_stopping;
    r->mon_stopping = true;
    bool was_waiting = rm_timer_cancel(&r->rm->timers, &r->retry_timer) || r->mon_idle;
    r->mon_idle = false;
    scrm_mutex_unlock(&r->mon_lock);
    if (already)
        return;
    if (was_waiting) {
        rm_reader_unref(r); /* nobody will resume the monitor */
        return;
    }
    /* The pending request completes CANCELLED; the job then sees mon_stopping and ends. */
    SCRM_IGNORE(smc_cancel_all(r->h), "none pending: the job sees mon_stopping by itself");
}

/* ---- power-down timer ---- */

struct pd_job {
    struct rm_job job;
    struct rm *rm;
    uint64_t id, token;
};

static void pd_job_fn(struct rm_job *job)
{
    struct pd_job *p = (struct pd_job *)job;
    struct rm_reader *r = rm_reader_by_id(p->rm, p->id);
    if (r) {
        rm_seq_lock(r);
        scrm_mutex_lock(&r->lock);
        bool run =
            p->token == r->pd_token && r->n_conns == 0 && !r->gone && !atomic_load(&p->rm->closing);
        if (run)
            r->pd_armed = false;
        scrm_mutex_unlock(&r->lock);
        if (run)
            rm_seq_power_down(r);
        rm_seq_unlock(r);
        if (run)
            rm_notify_reader(r);
        rm_reader_unref(r);
    }
    free(p);
}

static void pd_fired(struct rm *rm, uint64_t id, uint64_t token)
{
    struct pd_job *p = calloc(1, sizeof(*p));
    if (!p) {
        log_error(rm, "power-down timer: out of memory, card left powered");
        return;
    }
    p->job.fn = pd_job_fn;
    p->rm = rm;
    p->id = id;
    p->token = token;
    if (!rm_pool_submit(&rm->pool, &p->job))
        free(p);
}

void rm_power_down_arm_locked(struct rm_reader *r) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    r->pd_token++;
    r->pd_timer.fn = pd_fired;
    if (atomic_load(&r->rm->pd_manual)) {
        r->pd_armed = true;
        if (r->pd_expire_next) {
            r->pd_expire_next = false;
            pd_fired(r->rm, r->id, r->pd_token); /* the pool's lock is a leaf */
        }
        return;
    }
    r->pd_armed =
        rm_timer_arm(&r->rm->timers, &r->pd_timer, r->rm->cfg.power_down_ms, r->id, r->pd_token);
}

void rm_power_down_manual(struct rm *rm)
{
    atomic_store(&rm->pd_manual, true);
}

bool rm_power_down_expire(struct rm *rm, const char *reader)
{
    struct rm_reader *r = rm_reader_by_name(rm, reader);
    if (!r)
        return false;
    scrm_mutex_lock(&r->lock);
    if (r->pd_armed)
        pd_fired(rm, r->id, r->pd_token);
    else
        r->pd_expire_next = true;
    scrm_mutex_unlock(&r->lock);
    rm_reader_unref(r);
    return true;
}

void rm_power_down_cancel_locked(struct rm_reader *r) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    r->pd_token++;
    if (r->pd_armed) {
        SCRM_IGNORE(rm_timer_cancel(&r->rm->timers, &r->pd_timer),
                    "a timer already firing sees the new pd_token and does nothing");
        r->pd_armed = false;
    }
}
