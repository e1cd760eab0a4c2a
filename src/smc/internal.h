/*
 * libsmc internals shared by its source files: the reader object (smclib's SMARTCARD_EXTENSION),
 * handles, requests and the context. Nothing here is visible to drivers or callers, which use the
 * accessor functions of <smc/driver.h> and <smc/smc.h>.
 *
 * Locking (see docs/libsmc.md):
 *   ctx->lock          the device list and driver table;
 *   reader->op_lock    serialises driver slots: no two slots of one reader run at once;
 *   reader->lock       state, card capabilities, the tracking slot, the busy request, every pending
 *                      request list of the reader's handles, counters. Never held while calling a
 *                      driver slot or a completion callback.
 * Order: op_lock before lock; ctx->lock is never held together with a reader lock.
 */
#ifndef SMC_INTERNAL_H
#define SMC_INTERNAL_H

#include "common/compiler.h"
#include <pthread.h>
#include <stdatomic.h>

#include "common/bytes.h"
#include "common/mutex.h"
#include "smc/driver.h"
#include "smc/smc.h"

struct smc_request {
    uint64_t id;
    uint32_t code;
    struct smc_handle *h;
    smc_completion_fn done;
    void *user;
    struct smc_request *next; /* in the handle's pending list */
};

struct smc_handle {
    struct smc_reader *r;
    struct smc_request *pending; /* under r->lock */
    bool closing;                /* under r->lock: smc_close started, no new requests */
    struct smc_handle *next;     /* in the reader's handle list, under r->lock */
};

struct smc_perf_counters {
    uint32_t transmissions;
    uint32_t bytes_sent;
    uint32_t bytes_received;
    uint32_t errors;
    uint64_t time_ns;
};

/*
 * Where the reader is with a driver slot that may complete later (docs/libsmc.md has the diagram).
 * A slot returning STATUS_PENDING for anything but card tracking leaves the driver working: the
 * reader answers DEVICE_BUSY (smc__slot_busy) until the driver calls smc_complete_pending(),
 * which may also come before the slot has returned or before its request is parked.
 */
enum smc_slot_state {
    SMC_SLOT_IDLE,         /* no slot runs, none is pending */
    SMC_SLOT_RUNNING,      /* a slot runs (op lock held) */
    SMC_SLOT_RUNNING_DONE, /* ... and the driver called smc_complete_pending() inside it */
    SMC_SLOT_PARKING,      /* the slot returned PENDING; its request is not parked yet */
    SMC_SLOT_PARKING_DONE, /* ... and smc_complete_pending() came meanwhile */
    SMC_SLOT_PENDING, /* parked in r->busy (NULL once cancelled) until smc_complete_pending() */
};

struct smc_reader {
    struct smc_ctx *ctx;
    char *device; /* "driver:address" */
    const struct smc_driver_ops *ops;
    void *priv;
    struct smc_vendor_attr vendor;
    struct smc_reader_caps caps;

    scrm_mutex op_lock;
    scrm_mutex lock;
    atomic_int refs; /* the context's reference plus one per handle */

    /* under lock */
    uint32_t state SCRM_GUARDED_BY(lock);
    struct smc_card_caps card SCRM_GUARDED_BY(lock);
    uint8_t atr[MAXIMUM_ATR_LENGTH] SCRM_GUARDED_BY(lock); /* as the last reset returned it */
    size_t atr_len SCRM_GUARDED_BY(lock);
    struct smc_request *tracking SCRM_GUARDED_BY(lock); /* the one IS_PRESENT / IS_ABSENT slot */
    /* the parked request of a slot that returned PENDING */
    struct smc_request *busy SCRM_GUARDED_BY(lock);
    enum smc_slot_state slot SCRM_GUARDED_BY(lock); /* docs/libsmc.md, "Pending slots" */
    smc_status early_status; /* SLOT_RUNNING_DONE, SLOT_PARKING_DONE: smc_complete_pending()'s */
    size_t early_info;
    /* IS_ABSENT's own slot when ops->split_tracking (`tracking` then holds IS_PRESENT only). */
    struct smc_request *tracking_absent;
    struct smc_handle *handles;
    unsigned n_handles;
    bool gone;
    bool confiscated;
    uint32_t last_error;
    uint32_t device_in_use;
    uint32_t suppress_ifs;
    struct smc_perf_counters perf;
    uint64_t next_req_id;

    /* under op_lock: protocol engine state and the bounce buffers */
    struct smc_t1 t1;
    uint8_t *xfer_buf; /* request copy + response, SMC_XFER_BUF bytes */

    char **siblings; /* smc_reader_add_sibling() during open: devices to add next */
    size_t n_siblings;
    bool gone_queued; /* smc_reader_gone() queued it for the reaper (under ctx->lock) */

    struct smc_reader *next;      /* in ctx->devices */
    struct smc_reader *gone_next; /* in ctx->gone_queue */
};

#define SMC_MAX_APDU  65544u /* 4 header + 3 Lc + 65535 data + 2 Le */
#define SMC_MAX_RAPDU 65538u /* 65536 data + SW1 SW2 */
#define SMC_XFER_BUF  (SMC_MAX_APDU + SMC_MAX_RAPDU + 16u)

struct smc_ctx {
    scrm_mutex lock;
    const struct smc_driver_ops **drivers;
    size_t n_drivers;
    struct smc_reader *devices;
    smc_pnp_fn pnp;
    void *pnp_user;
    /* The reaper thread: removes the devices whose drivers called smc_reader_gone(). */
    pthread_t reaper;
    bool reaper_started, reaper_stop;
    scrm_cond reaper_cond;
    struct smc_reader *gone_queue; /* each holds a reference */
};

/* reader.c */
void smc__reader_ref(struct smc_reader *r);
void smc__reader_unref(struct smc_reader *r);
/* Set state under r->lock (held); ABSENT/UNKNOWN clear the card. */
void smc__set_state_locked(struct smc_reader *r, uint32_t state) SCRM_REQUIRES(r->lock);

/* request.c: completion discipline. A request completes exactly once: whoever unlinks it under
 * r->lock (event path, cancel, cleanup) owns the completion and calls smc__finish() after dropping
 * the lock. Inside a driver slot on this thread, completions are deferred until the slot returns.
 */
struct smc_request *smc__request_new(struct smc_handle *h, uint32_t code, smc_completion_fn done,
                                     void *user);
/* (the analysis cannot tie req->h->r->lock to the caller's r->lock: asserted in debug builds) */
void smc__unlink_locked(struct smc_request *req);
void smc__finish(struct smc_request *req, smc_status status, size_t info);
void smc__slot_enter(void);
void smc__slot_leave(void);

/* ctx.c: call the PnP listener (no libsmc lock held). */
void smc__notify(struct smc_ctx *ctx, enum smc_pnp_event ev, const char *device);

/* dispatch.c */
/* A slot that returned PENDING is not finished: every request gets DEVICE_BUSY; r->lock held. */
SCRM_MUST_CHECK static inline bool smc__slot_busy(const struct smc_reader *r) SCRM_REQUIRES(r->lock)
{
    return r->slot == SMC_SLOT_PARKING || r->slot == SMC_SLOT_PARKING_DONE ||
           r->slot == SMC_SLOT_PENDING;
}
SCRM_MUST_CHECK smc_status smc__dispatch(struct smc_handle *h, struct smc_io *io,
                                         smc_completion_fn done, void *user, uint64_t *req_id);

/* Run the vendor slot for io (attribute ids the library does not answer) as dispatch does. */
SCRM_MUST_CHECK smc_status smc__run_vendor(struct smc_reader *r, struct smc_io *io);

/* tracking.c */
SCRM_MUST_CHECK smc_status smc__card_tracking(struct smc_handle *h, struct smc_io *io,
                                              smc_completion_fn done, void *user, uint64_t *req_id);

/* attr.c */
SCRM_MUST_CHECK smc_status smc__get_attribute(struct smc_reader *r, struct smc_io *io);
SCRM_MUST_CHECK smc_status smc__set_attribute(struct smc_reader *r, struct smc_io *io);

/* power.c */
SCRM_MUST_CHECK smc_status smc__power(struct smc_reader *r, struct smc_io *io);
/* Power command `cmd` through the driver plus ATR parsing; io->out receives the ATR if given. */
SCRM_MUST_CHECK smc_status smc__do_power(struct smc_reader *r, uint32_t cmd, struct smc_io *io);

/* Little-endian DWORD helpers for IOCTL buffers. */
#define smc__get_u32 scrm_get_u32le
#define smc__put_u32 scrm_put_u32le

#endif
