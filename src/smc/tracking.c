/*
 * Card tracking: IOCTL_SMARTCARD_IS_PRESENT and IOCTL_SMARTCARD_IS_ABSENT (docs/libsmc.md).
 *
 *   - No buffers allowed (STATUS_INVALID_PARAMETER otherwise).
 *   - Already satisfied (IS_PRESENT with a card, IS_ABSENT with state ABSENT): STATUS_SUCCESS at
 * once, the driver is not called.
 *   - Otherwise the request takes the reader's one tracking slot (shared by both codes); if the
 * slot is taken: STATUS_DEVICE_BUSY. The state test and taking the slot happen in one critical
 *     section, so an insertion between them cannot be missed.
 *   - The driver's card_tracking slot arms detection. STATUS_PENDING: the request stays until the
 *     event path, a cancel, or cleanup ends it. Any other status: the request leaves the slot and
 *     that status is returned (unless the event path completed it meanwhile: then PENDING, and its
 *     callback has run or is running).
 *
 * A pending tracking request holds no lock, so it blocks no other IOCTL.
 */
#include <stdlib.h>

#include "common/log.h"
#include "smc/internal.h"

static bool satisfied(uint32_t code, uint32_t state)
{
    if (code == IOCTL_SMARTCARD_IS_PRESENT)
        return state > SCARD_ABSENT;
    return state == SCARD_ABSENT;
}

/* The slot a tracking request takes: one shared slot, or one per code with split_tracking. */
static struct smc_request **tracking_slot(struct smc_reader *r, uint32_t code)
{
    if (r->ops->split_tracking && code == IOCTL_SMARTCARD_IS_ABSENT)
        return &r->tracking_absent;
    return &r->tracking;
}

/* Test the state and take the slot; r->lock held. *queued tells whether req is now in the slot. */
static smc_status take_slot_locked(struct smc_reader *r, struct smc_request *req, bool *queued)
    SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    *queued = false;
    if (r->gone)
        return STATUS_DEVICE_NOT_CONNECTED;
    if (req->h->closing)
        return STATUS_CANCELLED;
    if (smc__slot_busy(r))
        return STATUS_DEVICE_BUSY;
    if (satisfied(req->code, r->state))
        return STATUS_SUCCESS;
    struct smc_request **slot = tracking_slot(r, req->code);
    if (*slot)
        return STATUS_DEVICE_BUSY;
    req->id = r->next_req_id++;
    *slot = req;
    req->next = req->h->pending;
    req->h->pending = req;
    *queued = true;
    return STATUS_PENDING;
}

/* Call the driver's card_tracking slot for a queued request; returns the final answer. */
static smc_status arm_driver(struct smc_reader *r, struct smc_request *req, uint32_t code,
                             uint64_t id)
{
    scrm_mutex_lock(&r->op_lock);
    smc__slot_enter();
    /* The device may have been removed since the slot was taken: then the request was completed
     * CANCELLED by the removal, and the driver (closed) must not be called. */
    scrm_mutex_lock(&r->lock);
    bool gone = r->gone;
    scrm_mutex_unlock(&r->lock);
    smc_status st = gone ? STATUS_PENDING : r->ops->card_tracking(r, code);
    scrm_mutex_unlock(&r->op_lock);
    if (st != STATUS_PENDING) {
        /* req may have completed and been freed meanwhile: compare ids, not pointers. */
        scrm_mutex_lock(&r->lock);
        const struct smc_request *cur = *tracking_slot(r, code);
        bool still_mine = cur && cur->id == id;
        if (still_mine)
            smc__unlink_locked(req);
        scrm_mutex_unlock(&r->lock);
        if (still_mine) {
            log_debug(smc, "%s: card tracking slot answered %s", r->device, smc_status_name(st));
            free(req);
        } else {
            st = STATUS_PENDING; /* the event path completed it: its callback reports */
        }
    }
    smc__slot_leave();
    return st;
}

smc_status smc__card_tracking(struct smc_handle *h, struct smc_io *io, smc_completion_fn done,
                              void *user, uint64_t *req_id)
{
    struct smc_reader *r = h->r;
    if (io->in_len || io->out_len)
        return STATUS_INVALID_PARAMETER;
    struct smc_request *req = smc__request_new(h, io->code, done, user);
    if (!req)
        return STATUS_INSUFFICIENT_RESOURCES;

    bool queued;
    scrm_mutex_lock(&r->lock);
    smc_status st = take_slot_locked(r, req, &queued);
    uint64_t id = req->id;
    scrm_mutex_unlock(&r->lock);
    if (!queued) {
        free(req);
        log_debug(smc, "%s: %s -> %s", r->device, smc_ioctl_name(io->code), smc_status_name(st));
        return st;
    }
    if (req_id)
        *req_id = id;
    st = arm_driver(r, req, io->code, id);
    if (st != STATUS_PENDING && req_id)
        *req_id = 0;
    return st;
}
