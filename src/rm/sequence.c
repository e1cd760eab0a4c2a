/*
 * The IOCTL sequences the resource manager runs against a reader (docs/resource-manager.md,
 * "Start-up sequence", "Connect sequence", "Disconnect and the power-down timeout"). Every function runs with reader->seq_lock held, so one
 * sequence at a time touches a reader; each updates the reader's snapshot as it learns the state.
 *
 * Connect: a bounded loop on GET_STATE —
 *     UNKNOWN / ABSENT   no card: SCARD_E_NO_SMARTCARD
 *     PRESENT            SWALLOW (a reader answering NOT_SUPPORTED goes on with a cold reset)
 *     SWALLOWED          POWER(SCARD_COLD_RESET)
 *     POWERED            POWER(SCARD_WARM_RESET)
 *     NEGOTIABLE         GET_ATTRIBUTE ATR_STRING, leave the loop
 *     SPECIFIC           GET_ATTRIBUTE ATR_STRING and CURRENT_PROTOCOL_TYPE, leave the loop
 *   then SET_PROTOCOL with the application's preferred protocols. A step that answers
 *   INVALID_DEVICE_STATE (the card changed under us) sends the loop round again. A reader still
 *   not connected after RM_CONNECT_STEPS turns gets SCARD_E_NOT_READY and a log line.
 *
 * Power-down (when the timer fires): loop on GET_STATE; POWERED / NEGOTIABLE / SPECIFIC →
 * POWER(SCARD_POWER_DOWN); any other state ends the loop.
 *
 * Power-up at insertion: SWALLOW if the card is PRESENT, POWER(SCARD_COLD_RESET) to read the ATR
 * (or GET_ATTRIBUTE ATR_STRING if the reader reports the card already reset), then GET_STATE.
 *
 * Dispositions: LEAVE nothing; RESET POWER(WARM_RESET); UNPOWER POWER(POWER_DOWN); EJECT EJECT;
 * RESET and UNPOWER mark the reader's other handles "reset" (SCARD_W_RESET_CARD until they
 * reconnect), then GET_STATE refreshes the snapshot.
 */
#include <string.h>

#include "common/bytes.h"
#include "common/log.h"
#include "rm/internal.h"

#define RM_CONNECT_STEPS    8
#define RM_POWER_DOWN_STEPS 4

static void set_state(struct rm_reader *r, uint32_t state)
{
    scrm_mutex_lock(&r->lock);
    r->state = state;
    if (state < SCARD_SPECIFIC)
        r->protocol = 0;
    scrm_mutex_unlock(&r->lock);
}

static void set_atr(struct rm_reader *r, const uint8_t *atr, size_t len)
{
    scrm_mutex_lock(&r->lock);
    memcpy(r->atr, atr, len);
    r->atr_len = len;
    r->mute = false;
    r->app_unpowered = false;
    scrm_mutex_unlock(&r->lock);
}

/* Read ATR_STRING (and the protocol in SPECIFIC) into the snapshot. */
static smc_status read_atr(struct rm_reader *r, bool with_protocol)
{
    uint8_t atr[RM_ATR_MAX];
    size_t n = 0;
    smc_status st = rm_get_attr(r, SCARD_ATTR_ATR_STRING, atr, sizeof(atr), &n);
    if (st != STATUS_SUCCESS)
        return st;
    set_atr(r, atr, n);
    if (!with_protocol)
        return STATUS_SUCCESS;
    uint8_t p[4] = {0};
    st = rm_get_attr(r, SCARD_ATTR_CURRENT_PROTOCOL_TYPE, p, sizeof(p), &n);
    if (st == STATUS_SUCCESS && n == 4) {
        scrm_mutex_lock(&r->lock);
        r->protocol = scrm_get_u32le(p);
        scrm_mutex_unlock(&r->lock);
    }
    return st;
}

/* One turn of the connect loop for `state`: the driver status of its step. *ready when the ATR
 * is known. */
static smc_status connect_turn(struct rm_reader *r, uint32_t state, bool *ready, unsigned *op)
{
    smc_status st;
    uint8_t atr[RM_ATR_MAX];
    size_t n = 0;
    *op = RM_OP_CONNECT | RM_OP_POWER;
    switch (state) {
    case SCARD_PRESENT:
        st = rm_ioctl(r, IOCTL_SMARTCARD_SWALLOW, NULL, 0, NULL, 0, NULL);
        if (st == STATUS_NOT_SUPPORTED)
            st = rm_power(r, SCARD_COLD_RESET, atr, sizeof(atr), &n);
        return st;
    case SCARD_SWALLOWED:
    case SCARD_POWERED:
        return rm_power(r, state == SCARD_SWALLOWED ? SCARD_COLD_RESET : SCARD_WARM_RESET, atr,
                        sizeof(atr), &n);
    case SCARD_NEGOTIABLE:
    case SCARD_SPECIFIC:
        *op = RM_OP_CONNECT | RM_OP_ATTRIB;
        st = read_atr(r, state == SCARD_SPECIFIC);
        *ready = st == STATUS_SUCCESS;
        return st;
    default: return STATUS_NO_MEDIA; /* UNKNOWN, ABSENT */
    }
}

/* SET_PROTOCOL with `pref`; on success the snapshot says SPECIFIC with the selected protocol. */
static smc_status set_protocol(struct rm_reader *r, uint32_t pref, uint32_t *protocol)
{
    uint8_t in[4];
    scrm_put_u32le(in, pref);
    uint8_t out[4] = {0};
    size_t n = 0;
    smc_status st = rm_ioctl(r, IOCTL_SMARTCARD_SET_PROTOCOL, in, sizeof(in), out, sizeof(out), &n);
    if (st != STATUS_SUCCESS)
        return st;
    uint32_t sel = scrm_get_u32le(out);
    scrm_mutex_lock(&r->lock);
    r->state = SCARD_SPECIFIC;
    r->protocol = sel;
    r->app_unpowered = false;
    scrm_mutex_unlock(&r->lock);
    *protocol = sel;
    return STATUS_SUCCESS;
}

/*
 * A step answering INVALID_DEVICE_STATE found the card in another state than GET_STATE said (it
 * was replaced, reset or removed meanwhile): the loop reads the state again instead of failing.
 * Every turn counts against RM_CONNECT_STEPS.
 */
scard_rc rm_seq_connect(struct rm_reader *r, uint32_t pref, uint32_t *protocol)
{
    uint32_t state = SCARD_UNKNOWN;
    for (int step = 0; step < RM_CONNECT_STEPS; step++) {
        smc_status st = rm_get_state(r, &state);
        if (st != STATUS_SUCCESS)
            return rm_scard_from_status(st, RM_OP_CONNECT);
        set_state(r, state);
        bool ready = false;
        unsigned op;
        st = connect_turn(r, state, &ready, &op);
        if (ready) {
            op = RM_OP_CONNECT | RM_OP_PROTOCOL;
            st = set_protocol(r, pref, protocol);
            if (st == STATUS_SUCCESS)
                return SCARD_S_SUCCESS;
        }
        if (st != STATUS_SUCCESS && st != STATUS_INVALID_DEVICE_STATE)
            return rm_scard_from_status(st, op);
    }
    log_error(rm,
              "reader '%s': the card does not reach NEGOTIABLE or SPECIFIC after %d connect "
              "steps (last state %s); giving up",
              r->name, RM_CONNECT_STEPS, smc_state_name(state));
    return SCARD_E_NOT_READY;
}

void rm_seq_power_down(struct rm_reader *r)
{
    for (int step = 0; step < RM_POWER_DOWN_STEPS; step++) {
        uint32_t state = SCARD_UNKNOWN;
        if (rm_get_state(r, &state) != STATUS_SUCCESS)
            return;
        set_state(r, state);
        if (state < SCARD_POWERED)
            return; /* SWALLOWED, PRESENT, ABSENT, UNKNOWN: nothing to do */
        smc_status st = rm_power(r, SCARD_POWER_DOWN, NULL, 0, NULL);
        if (st != STATUS_SUCCESS) {
            log_warn(rm, "reader '%s': power down failed: %s", r->name, smc_status_name(st));
            return;
        }
    }
}

void rm_seq_power_up(struct rm_reader *r, uint32_t state)
{
    scrm_mutex_lock(&r->lock);
    bool busy = false;
    /* A handle still marked "removed" belongs to the previous card: it cannot have connected to
     * this one (it must reconnect first), so it does not count. */
    for (const struct rm_conn *c = r->conns; c && !busy; c = c->rnext)
        busy = c->share != SCARD_SHARE_DIRECT && !c->removed;
    scrm_mutex_unlock(&r->lock);
    if (busy)
        return; /* a handle connected meanwhile: its connect sequence powered the card */
    smc_status st;
    if (state >= SCARD_NEGOTIABLE) {
        st = read_atr(r, false);
    } else {
        if (state == SCARD_PRESENT) {
            st = rm_ioctl(r, IOCTL_SMARTCARD_SWALLOW, NULL, 0, NULL, 0, NULL);
            if (st != STATUS_SUCCESS && st != STATUS_NOT_SUPPORTED)
                log_warn(rm, "reader '%s': swallow failed: %s", r->name, smc_status_name(st));
        }
        uint8_t atr[RM_ATR_MAX];
        size_t n = 0;
        st = rm_power(r, SCARD_COLD_RESET, atr, sizeof(atr), &n);
        if (st == STATUS_SUCCESS)
            set_atr(r, atr, n);
    }
    if (st != STATUS_SUCCESS)
        log_info(rm, "reader '%s': cannot read the ATR of the new card: %s", r->name,
                 smc_status_name(st));
    uint32_t now = state;
    if (rm_get_state(r, &now) == STATUS_SUCCESS)
        set_state(r, now);
    scrm_mutex_lock(&r->lock);
    r->mute = st == STATUS_IO_TIMEOUT;
    scrm_mutex_unlock(&r->lock);
}

/* Mark every handle but `by` reset; r->lock held. */
static void mark_reset_locked(struct rm_reader *r, const struct rm_conn *by) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    for (struct rm_conn *c = r->conns; c; c = c->rnext)
        if (c != by)
            c->reset = true;
}

scard_rc rm_seq_disposition(struct rm_reader *r, struct rm_conn *by, uint32_t disposition)
{
    smc_status st;
    uint8_t atr[RM_ATR_MAX];
    size_t n = 0;
    switch (disposition) {
    case SCARD_LEAVE_CARD: return SCARD_S_SUCCESS;
    case SCARD_RESET_CARD: st = rm_power(r, SCARD_WARM_RESET, atr, sizeof(atr), &n); break;
    case SCARD_UNPOWER_CARD: st = rm_power(r, SCARD_POWER_DOWN, NULL, 0, NULL); break;
    case SCARD_EJECT_CARD:
        st = rm_ioctl(r, IOCTL_SMARTCARD_EJECT, NULL, 0, NULL, 0, NULL);
        return rm_scard_from_status(st, RM_OP_MECH);
    default: return SCARD_E_INVALID_VALUE;
    }
    if (st == STATUS_SUCCESS || st == STATUS_IO_TIMEOUT || st == STATUS_UNRECOGNIZED_MEDIA) {
        scrm_mutex_lock(&r->lock);
        mark_reset_locked(r, by);
        scrm_mutex_unlock(&r->lock);
    }
    if (st == STATUS_SUCCESS && disposition == SCARD_RESET_CARD)
        set_atr(r, atr, n);
    if (st == STATUS_SUCCESS && disposition == SCARD_UNPOWER_CARD) {
        scrm_mutex_lock(&r->lock);
        r->app_unpowered = true;
        scrm_mutex_unlock(&r->lock);
    }
    uint32_t state;
    if (rm_get_state(r, &state) == STATUS_SUCCESS)
        set_state(r, state);
    return rm_scard_from_status(st, RM_OP_POWER);
}
