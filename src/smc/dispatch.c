/*
 * IOCTL dispatch: smclib's SmartcardDeviceControl.
 *
 * Every request goes through the same steps, in this order:
 *   1. the device still exists                          else STATUS_DEVICE_NOT_CONNECTED
 *      (and the handle is not being closed               else STATUS_CANCELLED)
 *   2. no slot left pending (the library is serviceable) else STATUS_DEVICE_BUSY
 *   3. buffers: NULL pointer with a length              else STATUS_INVALID_PARAMETER
 *   4. the code is known (or a vendor code)             else STATUS_INVALID_DEVICE_REQUEST
 *   5. input / output sizes of the rule table            else INVALID_PARAMETER / BUFFER_TOO_SMALL
 *   6. the driver slot exists                           else STATUS_NOT_SUPPORTED
 *   7. the reader state allows it (docs/libsmc.md)           else STATUS_NO_MEDIA / INVALID_DEVICE_STATE
 *   8. the handler: answered by the library, or the driver slot under the reader's op lock.
 *
 * The rule table below is the one place where the per-IOCTL rules live. Its state column has one
 * character per state UNKNOWN ABSENT PRESENT SWALLOWED POWERED NEGOTIABLE SPECIFIC:
 * 'o' allowed, 'N' STATUS_NO_MEDIA, 'I' STATUS_INVALID_DEVICE_STATE.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "smc/internal.h"

typedef smc_status (*handler_fn)(struct smc_reader *r, struct smc_io *io);

/* Which driver slot a request needs (for the NULL-slot rule). */
enum slot {
    SLOT_NONE,
    SLOT_POWER,
    SLOT_TRANSMIT,
    SLOT_PROTOCOL,
    SLOT_EJECT,
    SLOT_SWALLOW,
    SLOT_CONFISCATE,
    SLOT_VENDOR
};

struct rule {
    uint32_t code;
    const char *states;
    uint32_t min_in;  /* shorter input: STATUS_INVALID_PARAMETER */
    uint32_t min_out; /* shorter output: STATUS_BUFFER_TOO_SMALL */
    enum slot slot;
    bool op_lock; /* the handler calls the driver: serialise */
    handler_fn handler;
};

static smc_status h_get_state(struct smc_reader *r, struct smc_io *io);
static smc_status h_last_error(struct smc_reader *r, struct smc_io *io);
static smc_status h_perf(struct smc_reader *r, struct smc_io *io);
static smc_status h_transmit(struct smc_reader *r, struct smc_io *io);
static smc_status h_set_protocol(struct smc_reader *r, struct smc_io *io);
static smc_status h_eject(struct smc_reader *r, struct smc_io *io);
static smc_status h_swallow(struct smc_reader *r, struct smc_io *io);
static smc_status h_confiscate(struct smc_reader *r, struct smc_io *io);
static smc_status h_vendor(struct smc_reader *r, struct smc_io *io);

#define ALL "ooooooo"
/* clang-format off */
static const struct rule rules[] = {
    /* code                                states     in  out            slot             op    handler */
    {IOCTL_SMARTCARD_GET_STATE,           ALL,        0, 4,               SLOT_NONE,       false, h_get_state},
    {IOCTL_SMARTCARD_GET_LAST_ERROR,      ALL,        0, 4,               SLOT_NONE,       false, h_last_error},
    {IOCTL_SMARTCARD_GET_PERF_CNTR,       ALL,        0, SMC_PERF_SIZE,   SLOT_NONE,       false, h_perf},
    {IOCTL_SMARTCARD_GET_ATTRIBUTE,       ALL,        4, 0,               SLOT_NONE,       false, smc__get_attribute},
    {IOCTL_SMARTCARD_SET_ATTRIBUTE,       ALL,        4, 0,               SLOT_NONE,       false, smc__set_attribute},
    {IOCTL_SMARTCARD_POWER,               "INooooo",  4, 0,               SLOT_POWER,      true,  smc__power},
    {IOCTL_SMARTCARD_SET_PROTOCOL,        "INIIIoo",  4, 4,               SLOT_PROTOCOL,   true,  h_set_protocol},
    {IOCTL_SMARTCARD_TRANSMIT,            "INIIIIo",  9, 10,              SLOT_TRANSMIT,   true,  h_transmit},
    {IOCTL_SMARTCARD_SWALLOW,             "INooooo",  0, 0,               SLOT_SWALLOW,    true,  h_swallow},
    {IOCTL_SMARTCARD_EJECT,               "INooooo",  0, 0,               SLOT_EJECT,      true,  h_eject},
    {IOCTL_SMARTCARD_CONFISCATE,          "INooooo",  0, 0,               SLOT_CONFISCATE, true,  h_confiscate},
    {IOCTL_SMARTCARD_GET_FEATURE_REQUEST, ALL,        0, 0,               SLOT_VENDOR,     true,  h_vendor},
};
/* clang-format on */
static const struct rule vendor_rule = {0, ALL, 0, 0, SLOT_VENDOR, true, h_vendor};
static smc_status run_slot(struct smc_reader *r, const struct rule *rule, struct smc_io *io);

smc_status smc__run_vendor(struct smc_reader *r, struct smc_io *io)
{
    return run_slot(r, &vendor_rule, io);
}
static smc_status h_driver(struct smc_reader *r, struct smc_io *io);
/* A driver with its own IOCTL contract (ops->dispatch): only "the device exists" is checked. */
static const struct rule driver_rule = {0, ALL, 0, 0, SLOT_NONE, true, h_driver};

static const struct rule *find_rule(uint32_t code)
{
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (rules[i].code == code)
            return &rules[i];
    return SMC_IOCTL_IS_VENDOR(code) || SMC_IOCTL_IS_PCSC_VENDOR(code) ? &vendor_rule : NULL;
}

static bool slot_present(const struct smc_driver_ops *ops, enum slot s)
{
    switch (s) {
    case SLOT_EJECT: return ops->eject != NULL;
    case SLOT_SWALLOW: return ops->swallow != NULL;
    case SLOT_CONFISCATE: return ops->confiscate != NULL;
    case SLOT_VENDOR: return ops->ioctl_vendor != NULL;
    default: return true; /* mandatory slots, checked at registration */
    }
}

/* The state column of a rule for the current state; r->lock held. */
static smc_status state_check_locked(const struct smc_reader *r, const struct rule *rule)
    SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    uint32_t s = r->state <= SCARD_SPECIFIC ? r->state : SCARD_UNKNOWN;
    switch (rule->states[s]) {
    case 'N': return STATUS_NO_MEDIA;
    case 'I': return STATUS_INVALID_DEVICE_STATE;
    default: return STATUS_SUCCESS;
    }
}

/* The device exists, the handle is not closing, no slot is left pending; r->lock held. */
static smc_status device_check_locked(const struct smc_reader *r, const struct smc_handle *h)
    SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    if (r->gone)
        return STATUS_DEVICE_NOT_CONNECTED;
    if (h && h->closing)
        return STATUS_CANCELLED;
    if (smc__slot_busy(r))
        return STATUS_DEVICE_BUSY;
    return STATUS_SUCCESS;
}

/* The device and state checks, under the reader lock. */
static smc_status precheck(struct smc_reader *r, const struct rule *rule)
{
    scrm_mutex_lock(&r->lock);
    smc_status st = device_check_locked(r, NULL);
    if (st == STATUS_SUCCESS)
        st = state_check_locked(r, rule);
    scrm_mutex_unlock(&r->lock);
    return st;
}

static bool is_tracking(uint32_t code)
{
    return code == IOCTL_SMARTCARD_IS_PRESENT || code == IOCTL_SMARTCARD_IS_ABSENT;
}

/* Run a handler that calls the driver under the op lock (taken here), completions deferred to the
 * end. A slot that returns PENDING (other than card tracking) makes the reader busy before the op
 * lock is released, so no other slot can start while the driver works on it. */
static smc_status run_slot(struct smc_reader *r, const struct rule *rule, struct smc_io *io)
{
    scrm_mutex_lock(&r->op_lock);
    smc__slot_enter();
    /* Re-check under the op lock: another slot may have changed the state meanwhile. */
    smc_status st = precheck(r, rule);
    if (st == STATUS_SUCCESS) {
        scrm_mutex_lock(&r->lock);
        r->slot = SMC_SLOT_RUNNING;
        scrm_mutex_unlock(&r->lock);
        st = rule->handler(r, io);
        scrm_mutex_lock(&r->lock);
        bool done = r->slot == SMC_SLOT_RUNNING_DONE;
        if (st == STATUS_PENDING && !is_tracking(io->code))
            /* busy until parked and smc_complete_pending() (which may have come already) */
            r->slot = done ? SMC_SLOT_PARKING_DONE : SMC_SLOT_PARKING;
        else
            r->slot = SMC_SLOT_IDLE; /* a completion for a slot that did not pend: void */
        scrm_mutex_unlock(&r->lock);
    }
    scrm_mutex_unlock(&r->op_lock);
    smc__slot_leave();
    return st;
}

/* GET_LAST_ERROR answers the status of the latest failed request on this reader. */
static void record_error(struct smc_reader *r, const struct smc_io *io, smc_status st)
{
    if (st == STATUS_SUCCESS || st == STATUS_PENDING || io->code == IOCTL_SMARTCARD_GET_LAST_ERROR)
        return;
    scrm_mutex_lock(&r->lock);
    r->last_error = st;
    scrm_mutex_unlock(&r->lock);
}

/* A non-tracking slot returned STATUS_PENDING: the library answers DEVICE_BUSY until the driver
 * calls smc_complete_pending(), which completes this request. If the driver did so already, or
 * the handle is closing, the final status is returned at once and `done` is not called. */
static smc_status park_busy(struct smc_handle *h, struct smc_io *io, smc_completion_fn done,
                            void *user, uint64_t *req_id)
{
    struct smc_reader *r = h->r;
    struct smc_request *req = smc__request_new(h, io->code, done, user);
    scrm_mutex_lock(&r->lock);
    smc_status st = STATUS_PENDING;
    if (r->slot == SMC_SLOT_PARKING)
        r->slot = SMC_SLOT_PENDING;
    if (r->slot == SMC_SLOT_PARKING_DONE) {
        r->slot = SMC_SLOT_IDLE;
        st = r->early_status;
        io->info = r->early_info;
    } else if (!req || h->closing) {
        st = req ? STATUS_CANCELLED : STATUS_INSUFFICIENT_RESOURCES;
    } else {
        req->id = r->next_req_id++;
        req->next = h->pending;
        h->pending = req;
        r->busy = req;
        if (req_id)
            *req_id = req->id;
    }
    scrm_mutex_unlock(&r->lock);
    if (st != STATUS_PENDING)
        free(req);
    return st;
}

/* Every IOCTL to a driver that implements the contract itself. STATUS_PENDING from it means
 * "track the card" for IS_PRESENT / IS_ABSENT, and "completes later" for anything else. */
static smc_status driver_dispatch(struct smc_handle *h, struct smc_io *io, smc_completion_fn done,
                                  void *user, uint64_t *req_id)
{
    struct smc_reader *r = h->r;
    smc_status st = run_slot(r, &driver_rule, io);
    if (st == STATUS_PENDING && is_tracking(io->code))
        return smc__card_tracking(h, io, done, user, req_id);
    if (st == STATUS_PENDING)
        return park_busy(h, io, done, user, req_id);
    log_debug(smc, "%s: %s -> %s (%zu bytes)", r->device, smc_ioctl_name(io->code),
              smc_status_name(st), io->info);
    return st;
}

smc_status smc__dispatch(struct smc_handle *h, struct smc_io *io, smc_completion_fn done,
                         void *user, uint64_t *req_id)
{
    struct smc_reader *r = h->r;
    scrm_mutex_lock(&r->lock);
    smc_status st = device_check_locked(r, h);
    scrm_mutex_unlock(&r->lock);
    if (st != STATUS_SUCCESS)
        return st;
    if ((!io->in && io->in_len) || (!io->out && io->out_len))
        return STATUS_INVALID_PARAMETER;
    if (r->ops->dispatch)
        return driver_dispatch(h, io, done, user, req_id);
    if (is_tracking(io->code))
        return smc__card_tracking(h, io, done, user, req_id);

    const struct rule *rule = find_rule(io->code);
    if (!rule)
        st = STATUS_INVALID_DEVICE_REQUEST;
    else if (io->in_len < rule->min_in)
        st = STATUS_INVALID_PARAMETER;
    else if (io->out_len < rule->min_out)
        st = STATUS_BUFFER_TOO_SMALL;
    else if (!slot_present(r->ops, rule->slot))
        st = STATUS_NOT_SUPPORTED;
    else
        st = precheck(r, rule);
    if (st != STATUS_SUCCESS) {
        log_debug(smc, "%s: %s refused: %s", r->device, smc_ioctl_name(io->code),
                  smc_status_name(st));
        record_error(r, io, st);
        return st;
    }

    st = rule->op_lock ? run_slot(r, rule, io) : rule->handler(r, io);
    if (st == STATUS_PENDING)
        return park_busy(h, io, done, user, req_id);
    record_error(r, io, st);
    log_debug(smc, "%s: %s -> %s (%zu bytes)", r->device, smc_ioctl_name(io->code),
              smc_status_name(st), io->info);
    return st;
}

/* ---- handlers answered by the library ---- */

static smc_status h_get_state(struct smc_reader *r, struct smc_io *io)
{
    scrm_mutex_lock(&r->lock);
    smc__put_u32(io->out, r->state);
    scrm_mutex_unlock(&r->lock);
    io->info = 4;
    return STATUS_SUCCESS;
}

static smc_status h_last_error(struct smc_reader *r, struct smc_io *io)
{
    scrm_mutex_lock(&r->lock);
    smc__put_u32(io->out, r->last_error);
    scrm_mutex_unlock(&r->lock);
    io->info = 4;
    return STATUS_SUCCESS;
}

/* GET_PERF_CNTR output: u32 transmissions, u32 bytes sent, u32 bytes received, u32 errors,
 * u32 transmission time in µs (all little-endian). */
static smc_status h_perf(struct smc_reader *r, struct smc_io *io)
{
    scrm_mutex_lock(&r->lock);
    struct smc_perf_counters p = r->perf;
    scrm_mutex_unlock(&r->lock);
    smc__put_u32(io->out, p.transmissions);
    smc__put_u32(io->out + 4, p.bytes_sent);
    smc__put_u32(io->out + 8, p.bytes_received);
    smc__put_u32(io->out + 12, p.errors);
    smc__put_u32(io->out + 16, (uint32_t)(p.time_ns / 1000u));
    io->info = SMC_PERF_SIZE;
    return STATUS_SUCCESS;
}

/* ---- handlers that call the driver (op lock held) ---- */

static smc_status h_transmit(struct smc_reader *r, struct smc_io *io)
{
    uint32_t proto = smc__get_u32(io->in);
    uint32_t pci_len = smc__get_u32(io->in + 4);
    scrm_mutex_lock(&r->lock);
    uint32_t selected = r->card.protocol_selected;
    scrm_mutex_unlock(&r->lock);
    if (pci_len < SMC_IO_HEADER_LENGTH || pci_len >= io->in_len)
        return STATUS_INVALID_PARAMETER;
    if (proto != selected)
        return STATUS_INVALID_DEVICE_STATE;
    uint64_t t0 = scrm_now_ns();
    smc_status st = r->ops->transmit(r, io);
    if (st == STATUS_SUCCESS && io->info > io->out_len)
        st = STATUS_BUFFER_TOO_SMALL; /* a driver overstated its output */
    /* Performance counters: every exchange that reached the driver. */
    scrm_mutex_lock(&r->lock);
    r->perf.transmissions++;
    r->perf.bytes_sent += (uint32_t)(io->in_len - pci_len);
    if (st == STATUS_SUCCESS)
        r->perf.bytes_received += (uint32_t)(io->info - SMC_IO_HEADER_LENGTH);
    else
        r->perf.errors++;
    r->perf.time_ns += scrm_now_ns() - t0;
    scrm_mutex_unlock(&r->lock);
    return st;
}

static smc_status h_set_protocol(struct smc_reader *r, struct smc_io *io)
{
    const uint32_t known = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1 | SCARD_PROTOCOL_RAW;
    uint32_t mask = smc__get_u32(io->in);
    if ((mask & ~(known | SCARD_PROTOCOL_DEFAULT)) || !(mask & known))
        return STATUS_INVALID_DEVICE_REQUEST;
    io->minor = mask;
    smc_status st = r->ops->set_protocol(r, io);
    if (st == STATUS_SUCCESS) {
        scrm_mutex_lock(&r->lock);
        if (r->state == SCARD_NEGOTIABLE)
            smc__set_state_locked(r, SCARD_SPECIFIC);
        scrm_mutex_unlock(&r->lock);
    }
    return st;
}

static smc_status h_swallow(struct smc_reader *r, struct smc_io *io)
{
    (void)io;
    if (smc_reader_state(r) >= SCARD_SWALLOWED)
        return STATUS_SUCCESS; /* already in position */
    smc_status st = r->ops->swallow(r);
    if (st == STATUS_SUCCESS) {
        scrm_mutex_lock(&r->lock);
        if (r->state == SCARD_PRESENT)
            smc__set_state_locked(r, SCARD_SWALLOWED);
        scrm_mutex_unlock(&r->lock);
    }
    return st;
}

/* After an eject or confiscation the card is gone; report it unless the driver did. */
static void card_left(struct smc_reader *r, bool confiscated)
{
    scrm_mutex_lock(&r->lock);
    bool still = r->state > SCARD_ABSENT;
    r->confiscated = confiscated;
    scrm_mutex_unlock(&r->lock);
    if (still)
        smc_card_removed(r);
}

static smc_status h_eject(struct smc_reader *r, struct smc_io *io)
{
    (void)io;
    smc_status st = r->ops->eject(r);
    if (st == STATUS_SUCCESS)
        card_left(r, false);
    return st;
}

static smc_status h_confiscate(struct smc_reader *r, struct smc_io *io)
{
    (void)io;
    smc_status st = r->ops->confiscate(r);
    if (st == STATUS_SUCCESS)
        card_left(r, true);
    return st;
}

static smc_status h_driver(struct smc_reader *r, struct smc_io *io)
{
    smc_status st = r->ops->dispatch(r, io);
    if (st == STATUS_SUCCESS && io->info > io->out_len)
        st = STATUS_BUFFER_TOO_SMALL; /* a driver overstated its output */
    return st;
}

static smc_status h_vendor(struct smc_reader *r, struct smc_io *io)
{
    smc_status st = r->ops->ioctl_vendor(r, io);
    if (st == STATUS_SUCCESS && io->info > io->out_len)
        st = STATUS_BUFFER_TOO_SMALL;
    return st;
}
