/*
 * Requests and their completion.
 *
 * A pending request sits in its handle's pending list (and, for card tracking, in the reader's
 * tracking slot). Three paths can end it: the driver's event path, smc_cancel(), and cleanup
 * (smc_close / device removal). Each path unlinks the request under the reader lock; only the path
 * that found it linked goes on to complete it, so a request completes exactly once and is never
 * touched after its callback returned.
 *
 * Callbacks run without libsmc locks. When the event path runs inside a driver slot on the same
 * thread (the simulated reader inserts a card from its vendor IOCTL), the op lock is still held, so
 * the completion is deferred to a thread-local list that is drained when the slot returns; the
 * callback may then issue the next IOCTL on the same reader without deadlocking. Device-changed
 * notifications (smc_reader_changed) from inside a slot are deferred the same way.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "smc/internal.h"

/* A completion, or a device-changed notification (req NULL), waiting for the slot to return. */
struct deferred {
    struct smc_request *req;
    smc_status status;
    size_t info;
    struct smc_ctx *ctx; /* notification: context and device name */
    char *device;
    struct deferred *next;
};

static _Thread_local int slot_depth;
static _Thread_local struct deferred *deferred_head, *deferred_last;

struct smc_request *smc__request_new(struct smc_handle *h, uint32_t code, smc_completion_fn done,
                                     void *user)
{
    struct smc_request *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->code = code;
    req->h = h;
    req->done = done;
    req->user = user;
    return req;
}

/* Remove req from its handle's pending list and from the reader's slots. r->lock held. */
void smc__unlink_locked(struct smc_request *req)
{
    struct smc_reader *r = req->h->r;
    scrm_mutex_assert_held(&r->lock);
    for (struct smc_request **pp = &req->h->pending; *pp; pp = &(*pp)->next) {
        if (*pp == req) {
            *pp = req->next;
            break;
        }
    }
    req->next = NULL;
    if (r->tracking == req)
        r->tracking = NULL;
    if (r->tracking_absent == req)
        r->tracking_absent = NULL;
    if (r->busy == req)
        r->busy = NULL;
}

static void run_completion(struct smc_request *req, smc_status status, size_t info)
{
    log_debug(smc, "%s: %s completes %s", smc_reader_device(req->h->r), smc_ioctl_name(req->code),
              smc_status_name(status));
    if (req->done)
        req->done(req->user, status, info);
    free(req);
}

/* Append d to this thread's deferred list. */
static void defer(struct deferred *d)
{
    d->next = NULL;
    if (deferred_last)
        deferred_last->next = d;
    else
        deferred_head = d;
    deferred_last = d;
}

/* Complete an unlinked request: now, or when the current slot returns (see above). */
void smc__finish(struct smc_request *req, smc_status status, size_t info)
{
    if (slot_depth == 0) {
        run_completion(req, status, info);
        return;
    }
    struct deferred *d = malloc(sizeof(*d));
    if (!d) {
        /* Cannot defer: complete now rather than lose the completion. */
        run_completion(req, status, info);
        return;
    }
    d->req = req;
    d->status = status;
    d->info = info;
    d->ctx = NULL;
    d->device = NULL;
    defer(d);
}

void smc_reader_changed(struct smc_reader *r)
{
    log_debug(smc, "%s: device changed", r->device);
    struct deferred *d = slot_depth ? calloc(1, sizeof(*d)) : NULL;
    if (d)
        d->device = strdup(r->device);
    if (!d || !d->device) {
        /* Not inside a slot (or out of memory): the listener runs now. */
        free(d);
        smc__notify(r->ctx, SMC_DEVICE_CHANGED, r->device);
        return;
    }
    /* Inside a slot the op lock is held: notify once it is released, like completions. */
    d->ctx = r->ctx;
    defer(d);
}

void smc__slot_enter(void)
{
    slot_depth++;
}

/* Called after the op lock is released. */
void smc__slot_leave(void)
{
    if (--slot_depth > 0)
        return;
    while (deferred_head) {
        struct deferred *d = deferred_head;
        deferred_head = d->next;
        if (!deferred_head)
            deferred_last = NULL;
        if (d->req) {
            run_completion(d->req, d->status, d->info);
        } else {
            smc__notify(d->ctx, SMC_DEVICE_CHANGED, d->device);
            free(d->device);
        }
        free(d);
    }
}
