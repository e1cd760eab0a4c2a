/*
 * The reader object: accessors for drivers, state changes, and the event path
 * (smc_card_inserted / smc_card_removed / smc_reader_lost / smc_complete_card_tracking).
 *
 * The event path follows the card-tracking rules of the driver library: under the reader lock it
 * updates the state and takes the pending tracking request out of its slot; after dropping the lock
 * it completes that request with STATUS_SUCCESS. Every insertion or removal completes the request,
 * whichever of IS_PRESENT / IS_ABSENT it was; the caller re-reads the state.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "smc/internal.h"

void smc__reader_ref(struct smc_reader *r)
{
    atomic_fetch_add(&r->refs, 1);
}

void smc__reader_unref(struct smc_reader *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    scrm_mutex_destroy(&r->op_lock);
    scrm_mutex_destroy(&r->lock);
    for (size_t i = 0; i < r->n_siblings; i++)
        free(r->siblings[i]);
    free(r->siblings);
    free(r->xfer_buf);
    free(r->device);
    free(r);
}

void *smc_reader_priv(const struct smc_reader *r)
{
    return r->priv;
}

void smc_reader_set_priv(struct smc_reader *r, void *priv)
{
    r->priv = priv;
}

struct smc_vendor_attr *smc_reader_vendor(struct smc_reader *r)
{
    return &r->vendor;
}

struct smc_reader_caps *smc_reader_caps(struct smc_reader *r)
{
    return &r->caps;
}

const char *smc_reader_device(const struct smc_reader *r)
{
    return r->device;
}

uint32_t smc_reader_state(struct smc_reader *r)
{
    scrm_mutex_lock(&r->lock);
    uint32_t s = r->state;
    scrm_mutex_unlock(&r->lock);
    return s;
}

void smc__set_state_locked(struct smc_reader *r, uint32_t state) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    if (state != r->state)
        log_debug(smc, "%s: state %s -> %s", r->device, smc_state_name(r->state),
                  smc_state_name(state));
    r->state = state;
    if (state <= SCARD_ABSENT) {
        smc_caps_clear(&r->card);
        r->atr_len = 0;
    }
    if (state < SCARD_NEGOTIABLE)
        r->card.protocol_selected = SCARD_PROTOCOL_UNDEFINED;
}

void smc_reader_set_state(struct smc_reader *r, uint32_t state)
{
    scrm_mutex_lock(&r->lock);
    smc__set_state_locked(r, state);
    scrm_mutex_unlock(&r->lock);
}

void smc_reader_set_atr(struct smc_reader *r, const uint8_t *atr, size_t len)
{
    if (len > sizeof(r->atr))
        len = sizeof(r->atr);
    scrm_mutex_lock(&r->lock);
    memcpy(r->atr, atr, len);
    r->atr_len = len;
    scrm_mutex_unlock(&r->lock);
}

void smc_reader_set_protocol(struct smc_reader *r, uint32_t protocol)
{
    scrm_mutex_lock(&r->lock);
    r->card.protocol_selected = protocol;
    smc_caps_update_timing(&r->card);
    scrm_mutex_unlock(&r->lock);
}

smc_status smc_reader_add_sibling(struct smc_reader *r, const char *device)
{
    char **grown = realloc(r->siblings, (r->n_siblings + 1) * sizeof(*grown));
    if (!grown)
        return STATUS_INSUFFICIENT_RESOURCES;
    r->siblings = grown;
    if (!(grown[r->n_siblings] = strdup(device)))
        return STATUS_INSUFFICIENT_RESOURCES;
    r->n_siblings++;
    return STATUS_SUCCESS;
}

void smc_reader_card_caps(struct smc_reader *r, struct smc_card_caps *out)
{
    scrm_mutex_lock(&r->lock);
    *out = r->card;
    scrm_mutex_unlock(&r->lock);
}

/* Take the pending tracking requests out of their slots; r->lock held. Returns how many (0-2). */
static int take_tracking_locked(struct smc_reader *r, struct smc_request *out[2])
    SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    int n = 0;
    if (r->tracking)
        out[n++] = r->tracking;
    if (r->tracking_absent)
        out[n++] = r->tracking_absent;
    for (int i = 0; i < n; i++)
        smc__unlink_locked(out[i]);
    return n;
}

/* Set a state and take the tracking requests out of their slots in one critical section. */
static void event(struct smc_reader *r, bool set, uint32_t state)
{
    struct smc_request *req[2];
    scrm_mutex_lock(&r->lock);
    if (set)
        smc__set_state_locked(r, state);
    int n = take_tracking_locked(r, req);
    scrm_mutex_unlock(&r->lock);
    for (int i = 0; i < n; i++)
        smc__finish(req[i], STATUS_SUCCESS, 0);
}

void smc_card_inserted(struct smc_reader *r, uint32_t state)
{
    if (state <= SCARD_ABSENT)
        state = SCARD_PRESENT;
    log_info(smc, "%s: card inserted (%s)", r->device, smc_state_name(state));
    scrm_mutex_lock(&r->lock);
    r->confiscated = false;
    scrm_mutex_unlock(&r->lock);
    event(r, true, state);
}

void smc_card_removed(struct smc_reader *r)
{
    log_info(smc, "%s: card removed", r->device);
    event(r, true, SCARD_ABSENT);
}

void smc_reader_lost(struct smc_reader *r)
{
    log_warn(smc, "%s: reader stopped answering (state unknown)", r->device);
    event(r, true, SCARD_UNKNOWN);
}

bool smc_complete_card_tracking(struct smc_reader *r)
{
    struct smc_request *req[2];
    scrm_mutex_lock(&r->lock);
    int n = take_tracking_locked(r, req);
    scrm_mutex_unlock(&r->lock);
    for (int i = 0; i < n; i++)
        smc__finish(req[i], STATUS_SUCCESS, 0);
    return n > 0;
}

void smc_complete_pending(struct smc_reader *r, smc_status status, size_t info)
{
    struct smc_request *req = NULL;
    scrm_mutex_lock(&r->lock);
    switch (r->slot) {
    case SMC_SLOT_RUNNING:
    case SMC_SLOT_RUNNING_DONE:
    case SMC_SLOT_PARKING:
        /* The slot runs or has just returned: the dispatcher answers with this status directly. */
        r->slot = r->slot == SMC_SLOT_PARKING ? SMC_SLOT_PARKING_DONE : SMC_SLOT_RUNNING_DONE;
        r->early_status = status;
        r->early_info = info;
        break;
    case SMC_SLOT_PENDING:
        r->slot = SMC_SLOT_IDLE;
        req = r->busy; /* NULL if the request was cancelled meanwhile: only the busy state ends */
        if (req)
            smc__unlink_locked(req);
        break;
    case SMC_SLOT_IDLE:
    case SMC_SLOT_PARKING_DONE:
        scrm_mutex_unlock(&r->lock);
        log_warn(smc, "%s: smc_complete_pending() without a pending slot; ignored", r->device);
        return;
    }
    scrm_mutex_unlock(&r->lock);
    if (req)
        smc__finish(req, status, info);
}
