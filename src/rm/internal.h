/*
 * Private structures of the resource manager core, shared by the files of src/rm.
 *
 * Objects
 *   struct rm         one per daemon: the smc context, the config, the device records, the
 *                     registered readers, the connection table, the watch registry, the pool and
 *                     the timer thread.
 *   struct rm_reader  one per registered reader: its smc handle, name, snapshot (state, ATR,
 *                     counter, flags), connections, transaction, monitor and power-down timer.
 *   struct rm_conn    one per connection (card handle), found by id in a hash table.
 *
 * Locks, in the order they may be nested (outer first):
 *
 *   reader->seq_lock   one card sequence (connect, disposition, transmit, power-up, power-down)
 *                      at a time per reader. Held across the sequence's IOCTLs (into libsmc and
 *                      the driver) and so across the trace callback of those IOCTLs; never held
 *                      while waiting for a transaction. Taken and released only through
 *                      rm_seq_lock / rm_seq_trylock / rm_seq_unlock (park.c); probed with a
 *                      trylock under reader->lock (never waited for there).
 *   rm->lock           device records, reader list, connection table, reference counts.
 *   reader->lock       the reader's snapshot, connections list, transaction and waiters; its
 *                      condition variable `cond` carries the transaction waits and the monitor's
 *                      settling (mon_busy).
 *   reader->mon_lock   the monitor's flags (stopping, idle, generation) vs. stopping the
 *                      monitor. Not a leaf: the tracking request is posted under it (post() in
 *                      monitor.c), so libsmc's locks, the driver's card_tracking slot, the trace
 *                      lock and the trace callback run inside it, and the timers' lock (the
 *                      retry timer is armed and cancelled under it). Nothing called from there
 *                      may stop or wake the monitor synchronously (drivers report DEVICE_CHANGED
 *                      outside their slots).
 *   rm->watch_lock     the watch registry; held while watch callbacks run, with no other lock.
 *   pool, timers, watchdog and trace locks: leaves.
 *
 * clang's -Wthread-safety (common/thread_safety.h) checks that each *_locked function's lock is
 * held by its callers (SCRM_REQUIRES) and that every lock taken is released; clang 14 cannot check
 * field guards in C, so the SCRM_GUARDED_BY annotations and "under ..." comments on the fields
 * below are the rule there, and the *_locked functions assert their lock in debug builds.
 *
 * Reference counts (under rm->lock): a reader is referenced by the reader list while registered,
 * by each connection, by its monitor while it runs, and temporarily by callers. A connection is
 * referenced by the table while open and by each call in progress. Timers and queued jobs refer to
 * readers by id and look them up, so they need no reference.
 */
#ifndef SCRM_RM_INTERNAL_H
#define SCRM_RM_INTERNAL_H

#include "common/compiler.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "common/mutex.h"
#include "rm/rm.h"
#include "rm/status_map.h"
#include "smc/smc.h"

/* ---- pool.c: worker threads and the timer thread -----------------------------------------------
 */

/* A job; embed it in the object it works on. fn runs on a pool thread. */
struct rm_job {
    void (*fn)(struct rm_job *job);
    struct rm_job *next;
    bool queued;
};

struct rm_pool {
    scrm_mutex lock;
    scrm_cond cond;
    struct rm_job *head, *tail;
    pthread_t *threads;
    unsigned n_threads;
    bool stop;
};

SCRM_MUST_CHECK int rm_pool_start(struct rm_pool *p, unsigned n);
/* Queue a job unless it is queued already or the pool is stopped. Returns true if queued. */
SCRM_MUST_CHECK bool rm_pool_submit(struct rm_pool *p, struct rm_job *job);
/* Run every queued job, then join the threads. Later submits are refused. */
void rm_pool_stop(struct rm_pool *p);

/* A one-shot timer. When it expires fn(rm, id, token) runs on the timer thread with no lock held.
 */
struct rm_timer {
    uint64_t deadline_ns;
    void (*fn)(struct rm *rm, uint64_t id, uint64_t token);
    uint64_t id, token;
    bool armed;
    struct rm_timer *next;
};

struct rm_timers {
    scrm_mutex lock;
    scrm_cond cond;        /* CLOCK_MONOTONIC */
    struct rm_timer *head; /* sorted by deadline */
    pthread_t thread;
    bool stop, started;
    struct rm *rm;
};

SCRM_MUST_CHECK int rm_timers_start(struct rm_timers *t, struct rm *rm);
/* (Re)arm: fire `ms` from now with this id and token. False if the timers are stopped. */
SCRM_MUST_CHECK bool rm_timer_arm(struct rm_timers *t, struct rm_timer *tm, uint32_t ms,
                                  uint64_t id, uint64_t token);
/* Disarm. True if it was armed (and will not fire); false if idle or already firing. */
SCRM_MUST_CHECK bool rm_timer_cancel(struct rm_timers *t, struct rm_timer *tm);
/* Stop the thread; every timer is disarmed, later arms are refused, cancel still works. */
void rm_timers_stop(struct rm_timers *t);
/* Destroy the lock (after the last cancel). */
void rm_timers_fini(struct rm_timers *t);

/* ---- watchdog.c: IOCTLs that do not return ---------------------------------------------------
 */

struct rm_reader;

/* One watched IOCTL (in the calling thread's frame). */
struct rm_wd_entry {
    TAILQ_ENTRY(rm_wd_entry) link;
    uint64_t deadline_ns;
    struct rm_reader *r;
    uint32_t code;
    bool linked, fired;
};

struct rm_watchdog {
    scrm_mutex lock;
    scrm_cond cond;                 /* CLOCK_MONOTONIC: the head's deadline, or a new head */
    scrm_cond done;                 /* the entry being handled is done */
    TAILQ_HEAD(, rm_wd_entry) fifo; /* deadline order (one timeout for all) */
    struct rm_wd_entry *handling;
    uint64_t wake_ns; /* the thread sleeps until then; 0: until signalled; UINT64_MAX: awake */
    pthread_t thread;
    uint32_t ms; /* 0: off */
    bool stop, started, inited;
};

/* Start the thread (none when ms is 0). -1 if it cannot be created. */
SCRM_MUST_CHECK int rm_watchdog_start(struct rm_watchdog *w, uint32_t ms);
void rm_watchdog_stop(struct rm_watchdog *w);
void rm_watchdog_fini(struct rm_watchdog *w);
/* Watch an IOCTL about to be sent to r / stop watching it when it returned (waits while the
 * watchdog is handling this entry). */
void rm_watchdog_enter(struct rm_watchdog *w, struct rm_wd_entry *e, struct rm_reader *r,
                       uint32_t code);
void rm_watchdog_leave(struct rm_watchdog *w, struct rm_wd_entry *e);

/* ---- the objects ------------------------------------------------------------------------------
 */

struct rm_conn;

/* A call waiting for another handle's transaction (on the stack of the waiting thread). */
struct rm_waiter {
    uint64_t owner;
    bool cancelled;
    struct rm_waiter *next;
};

struct rm_reader {
    struct rm *rm;
    uint64_t id;                     /* for timers and jobs */
    unsigned refs;                   /* rm->lock */
    char device[RM_DEVICE_NAME_MAX]; /* "sim:0" */
    char name[RM_READER_NAME_MAX];   /* set once during start-up, before the reader is visible */
    struct smc_handle *h;
    uint32_t characteristics;

    scrm_mutex seq_lock;
    scrm_mutex lock;
    scrm_cond cond;

    /* snapshot (lock) */
    uint32_t state SCRM_GUARDED_BY(lock);    /* last driver state seen */
    uint32_t protocol SCRM_GUARDED_BY(lock); /* libsmc protocol bit of the card, 0 if none */
    uint32_t event_counter SCRM_GUARDED_BY(lock);
    uint8_t atr[RM_ATR_MAX] SCRM_GUARDED_BY(lock);
    size_t atr_len SCRM_GUARDED_BY(lock);
    bool card_present SCRM_GUARDED_BY(lock);
    bool mute SCRM_GUARDED_BY(lock);
    bool lost SCRM_GUARDED_BY(lock);
    bool defective SCRM_GUARDED_BY(lock);
    bool gone SCRM_GUARDED_BY(lock);
    /* a handle's SCARD_UNPOWER_CARD switched the card off (pcsc: PRESENT) */
    bool app_unpowered SCRM_GUARDED_BY(lock);
    /* tracking answered DEVICE_POWERED_OFF (NFC radio off); lost meanwhile */
    bool radio_off SCRM_GUARDED_BY(lock);
    atomic_uint wd_cancels; /* cancels by the IOCTL watchdog not yet seen by the monitor */
    /* a tracking completion (or a retry) is queued or being handled by the monitor: the
     * snapshot may lag the card; connects wait on `cond` */
    bool mon_busy SCRM_GUARDED_BY(lock);
    /* counts the monitor's job submissions: a job that ends clears mon_busy only if no completion
     * was submitted after it started (that one's job clears it) */
    uint64_t mon_submits SCRM_GUARDED_BY(lock);

    /* connections and transaction (lock) */
    struct rm_conn *conns SCRM_GUARDED_BY(lock);
    unsigned n_conns SCRM_GUARDED_BY(lock);
    bool exclusive SCRM_GUARDED_BY(lock);
    struct rm_conn *tx_owner SCRM_GUARDED_BY(lock);
    unsigned tx_depth SCRM_GUARDED_BY(lock);
    struct rm_waiter *waiters SCRM_GUARDED_BY(lock);

    /* requests parked until the card sequence is free (park.c): a FIFO under lock, its length
     * readable without it by the releasing thread, and how many woken ones are retrying */
    TAILQ_HEAD(, rm_idle_wait) parked SCRM_GUARDED_BY(lock);
    atomic_uint n_parked;
    unsigned park_inflight SCRM_GUARDED_BY(lock);

    /* power-down timer (token under lock; timer under the timers' lock) */
    struct rm_timer pd_timer;
    uint64_t pd_token SCRM_GUARDED_BY(lock);
    bool pd_armed SCRM_GUARDED_BY(lock);
    bool pd_expire_next SCRM_GUARDED_BY(lock); /* manual clock: fire when armed next */

    /* monitor */
    scrm_mutex mon_lock;
    bool mon_stopping SCRM_GUARDED_BY(mon_lock);
    struct rm_job mon_job;
    smc_status mon_status; /* result handed to mon_job */
    uint32_t mon_code;     /* IS_PRESENT / IS_ABSENT last posted */
    uint64_t mon_posted_ns;
    unsigned mon_failures;
    struct rm_timer retry_timer;
    bool mon_present; /* the monitor's own view: card present (monitor thread only) */
    /* nothing posted, waiting for SMC_DEVICE_CHANGED (radio off) */
    bool mon_idle SCRM_GUARDED_BY(mon_lock);
    uint64_t change_gen SCRM_GUARDED_BY(mon_lock); /* device-changed events so far */
    uint64_t mon_gen SCRM_GUARDED_BY(mon_lock);    /* change_gen when the last request was posted */

    struct rm_reader *next;     /* rm->readers (registered) */
    struct rm_reader *all_next; /* rm->all (every live object) */
};

struct rm_conn {
    uint64_t id, owner;
    struct rm_reader *r;   /* referenced */
    unsigned refs;         /* rm->lock */
    struct rm_conn *hnext; /* hash chain (rm->lock) */
    /* under r->lock: */
    struct rm_conn *rnext;
    uint32_t share;
    uint32_t protocol; /* libsmc protocol bit, 0 = none */
    bool removed, reset, dead;
};

/* A device known to the rm (registered, refused, or starting). */
enum rm_dev_state { RM_DEV_STARTING, RM_DEV_READY, RM_DEV_REFUSED };
struct rm_dev {
    char name[RM_DEVICE_NAME_MAX];
    enum rm_dev_state st;
    uint32_t result;
    bool left;
    struct rm_reader *reader; /* READY: the registered reader (not referenced) */
    struct rm_dev *next;
};

struct rm_watch {
    char *name;    /* NULL: PnP */
    uint32_t hash; /* of name */
    rm_watch_fn fn;
    void *user;
    struct rm_watch *next, **pprev; /* bucket chain (or the PnP list) */
};

/* One table of the watch registry: chains of watches by hash of the reader name. */
struct rm_watch_tab {
    struct rm_watch **b;
    size_t n; /* buckets, a power of two (0: no table) */
};

/* The watch registry: watches by reader name in a hash table that grows incrementally (a new
 * table takes the inserts while each registry call moves a few chains of the old one), so no
 * call ever rehashes everything at once; PnP watches on their own list. rm_watch and rm_unwatch
 * cost O(1); a notification walks only the chain of that name. */
struct rm_watches {
    struct rm_watch_tab cur, old; /* old.n != 0 while chains are being moved */
    size_t old_pos;               /* next old bucket to move */
    size_t count;                 /* named watches */
    struct rm_watch *pnp;
};

struct rm {
    struct rm_config cfg;
    struct smc_ctx *ctx;
    atomic_bool closing;
    atomic_bool pd_manual; /* tests: the power-down timeout runs on rm_power_down_expire() */

    scrm_mutex lock;
    scrm_cond dev_cond; /* a device left RM_DEV_STARTING */
    struct rm_dev *devs SCRM_GUARDED_BY(lock);
    struct rm_reader *readers SCRM_GUARDED_BY(lock); /* registered, in registration order */
    struct rm_reader *all SCRM_GUARDED_BY(lock);     /* every reader object still alive */
    uint64_t next_reader_id SCRM_GUARDED_BY(lock);
    uint32_t reader_events SCRM_GUARDED_BY(lock);
    /* connection table */
    struct rm_conn **conn_tab SCRM_GUARDED_BY(lock);
    size_t conn_buckets SCRM_GUARDED_BY(lock);
    size_t n_conns SCRM_GUARDED_BY(lock);
    uint64_t next_conn_id SCRM_GUARDED_BY(lock);

    scrm_mutex watch_lock;
    struct rm_watches watches SCRM_GUARDED_BY(watch_lock);

    scrm_mutex trace_lock;
    rm_trace_fn trace_fn SCRM_GUARDED_BY(trace_lock);
    void *trace_user SCRM_GUARDED_BY(trace_lock);
    atomic_bool tracing; /* trace_fn is set: read without the lock on every IOCTL */

    struct rm_pool pool;
    struct rm_timers timers;
    struct rm_watchdog watchdog;
};

/* ---- ioctl.c: the one IOCTL wrapper (trace) ---------------------------------------------------
 */

SCRM_MUST_CHECK smc_status rm_ioctl(struct rm_reader *r, uint32_t code, const void *in,
                                    size_t in_len, void *out, size_t out_len, size_t *returned);
/* Shorthands. */
SCRM_MUST_CHECK smc_status rm_get_state(struct rm_reader *r, uint32_t *state);
SCRM_MUST_CHECK smc_status rm_get_attr(struct rm_reader *r, uint32_t attr, void *out, size_t cap,
                                       size_t *len);
SCRM_MUST_CHECK smc_status rm_power(struct rm_reader *r, uint32_t cmd, uint8_t *atr, size_t cap,
                                    size_t *len);
/* Post a tracking request; completions are traced by rm_trace_completion. */
SCRM_MUST_CHECK smc_status rm_ioctl_async(struct rm_reader *r, uint32_t code,
                                          smc_completion_fn done, void *user, uint64_t *req_id);
void rm_trace_completion(struct rm_reader *r, uint32_t code, smc_status st, uint64_t posted_ns);

/* ---- reader.c: registry, references, snapshot, notifications ----------------------------------
 */

/* (the analysis cannot tie r->rm->lock to the caller's rm->lock: asserted in debug builds) */
void rm_reader_ref_locked(struct rm_reader *r);
void rm_reader_unref(struct rm_reader *r);
/* Free a reader object (close its handle). Only when unreferenced or at rm_free. */
void rm_reader_destroy(struct rm_reader *r);
/* A live reader object by id, referenced; NULL if gone. */
struct rm_reader *rm_reader_by_id(struct rm *rm, uint64_t id);
/* A registered reader by name, referenced; NULL if none. */
struct rm_reader *rm_reader_by_name(struct rm *rm, const char *name);
/* Flags of the snapshot; r->lock held. */
uint32_t rm_reader_flags_locked(const struct rm_reader *r) SCRM_REQUIRES(r->lock);
/* pcsc-lite's SCardStatus state word (RM_PCSC_*) of the snapshot; r->lock held. */
uint32_t rm_pcsc_state_locked(const struct rm_reader *r) SCRM_REQUIRES(r->lock);
/* Call the watches of r's name (and of the list when pnp). No lock held. */
void rm_notify(struct rm *rm, const char *name, uint32_t counter, bool pnp);
void rm_notify_reader(struct rm_reader *r);
/* Free every watch left (rm_free). */
void rm_watches_free(struct rm *rm);
/* PnP listener installed on the context. */
void rm_pnp_listener(void *user, enum smc_pnp_event ev, const char *device);
/* Register a device (start-up sequence) unless known; returns its result. */
SCRM_MUST_CHECK scard_rc rm_reader_start(struct rm *rm, const char *device);

/* ---- monitor.c --------------------------------------------------------------------------------
 */

/* Start the monitor of a registered reader (takes the monitor's reference). */
void rm_monitor_start(struct rm_reader *r);
/* Stop posting tracking requests and cancel the pending one (rm_free, departure). */
void rm_monitor_stop(struct rm_reader *r);
/* The device can serve again (SMC_DEVICE_CHANGED): wake a monitor idle since the radio went off. */
void rm_monitor_device_changed(struct rm_reader *r);
/* Wait until the monitor has handled every tracking completion already delivered (r->lock held;
 * waits on r->cond). A connect calls it first, so that a handle never sees a card the snapshot
 * does not know yet (empty ATR, lagging event counter). Ends early if the reader leaves. */
void rm_monitor_settle_locked(struct rm_reader *r) SCRM_REQUIRES(r->lock);
/* Arm the power-down timer (r->lock held). */
void rm_power_down_arm_locked(struct rm_reader *r) SCRM_REQUIRES(r->lock);
/* Disarm it (r->lock held). */
void rm_power_down_cancel_locked(struct rm_reader *r) SCRM_REQUIRES(r->lock);
/* Tests (tests/unit/rm_harness.c): the power-down timeout is time injected instead of measured.
 * After rm_power_down_manual() it never runs on the clock; rm_power_down_expire() makes the
 * reader's timeout elapse now (what the timer thread would do at the deadline), or, if none is
 * armed yet, as soon as the next one is armed. False if there is no such reader. */
void rm_power_down_manual(struct rm *rm);
SCRM_MUST_CHECK bool rm_power_down_expire(struct rm *rm, const char *reader);

/* ---- sequence.c: the IOCTL sequences (reader->seq_lock held) ----------------------------------
 */

/* Connect sequence: GET_STATE loop, then SET_PROTOCOL with `pref` (libsmc bits). */
SCRM_MUST_CHECK scard_rc rm_seq_connect(struct rm_reader *r, uint32_t pref, uint32_t *protocol);
/* Disposition LEAVE / RESET / UNPOWER / EJECT; `by` gets no "reset" mark. */
SCRM_MUST_CHECK scard_rc rm_seq_disposition(struct rm_reader *r, struct rm_conn *by,
                                            uint32_t disposition);
/* Power-down sequence: GET_STATE loop, POWER(POWER_DOWN) from POWERED / NEGOTIABLE / SPECIFIC. */
void rm_seq_power_down(struct rm_reader *r);
/* Insertion: read the ATR (SWALLOW if needed, cold reset), then GET_STATE. */
void rm_seq_power_up(struct rm_reader *r, uint32_t state);

/* ---- conn.c -----------------------------------------------------------------------------------
 */

/* Mark every connection of r removed (card left); r->lock held. */
void rm_conns_mark_removed_locked(struct rm_reader *r) SCRM_REQUIRES(r->lock);
/* Free every connection (rm_free). */
void rm_conns_free_all(struct rm *rm);

/* ---- park.c: the card sequence lock, and requests parked until it is free ---------------------
 */

/* Take / release reader->seq_lock. Every release goes through rm_seq_unlock, which wakes the
 * first parked request (rm_reader_idle_wait) when the reader is free. rm_seq_trylock for the
 * threads that must not wait (rm_thread_nowait_reader). */
void rm_seq_lock(struct rm_reader *r) SCRM_ACQUIRE(r->seq_lock);
bool rm_seq_trylock(struct rm_reader *r) SCRM_TRY_ACQUIRE(true, r->seq_lock);
/* rm_seq_trylock for a nowait thread, first come first served (rm_thread_park_turn): false also
 * when the lock is free but requests parked or woken before this one are waiting for it. */
bool rm_seq_try_turn(struct rm_reader *r) SCRM_TRY_ACQUIRE(true, r->seq_lock);
void rm_seq_unlock(struct rm_reader *r) SCRM_RELEASE(r->seq_lock);
/* rm_reader_idle_wait on a reader already found (r referenced or NULL; the reference is the
 * call's: kept by w while parked or in flight, dropped otherwise). */
bool rm_reader_park(struct rm_reader *r, struct rm_idle_wait *w,
                    void (*fn)(struct rm_idle_wait *w));
/* Would a request arriving now wait for its turn (one runs, or others are parked or woken)? A
 * hint: the answer may change as soon as it is given. */
bool rm_reader_queue_busy(struct rm_reader *r);

/* The reader left: wake every parked request (they retry and find it gone). */
void rm_park_wake_all(struct rm_reader *r);
/* rm_thread_nowait_reader() of the calling thread. */
bool rm_thread_nowait_reader_on(void);

/* ---- protocol numbering -----------------------------------------------------------------------
 */

uint32_t rm_proto_to_smc(uint32_t pcsc);
uint32_t rm_proto_from_smc(uint32_t smc);

#endif
