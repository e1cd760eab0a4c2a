/*
 * The resource manager core of scrmd (no sockets): readers, the card-state monitor, the start-up,
 * connect and disconnect IOCTL sequences, sharing, transactions, dispositions and the IOCTL trace.
 * A PC/SC server (src/daemon) builds on this API; docs/resource-manager.md explains the design.
 *
 * Model
 *   - An rm drives the readers of one libsmc context, only through IOCTL_SMARTCARD_* requests on
 *     smc handles. Readers come from rm_add_reader(), rm_discover(), and at run time from the
 *     context's PnP listener (which the rm installs; one listener per context).
 *   - Each registered reader has a name "<vendor> <ifd type> <unit>" (GET_ATTRIBUTE VENDOR_NAME,
 *     VENDOR_IFD_TYPE, DEVICE_UNIT), a card-state monitor (IS_PRESENT / IS_ABSENT kept pending), an
 *     event counter incremented on each card event, and a power-down timer.
 *   - A connection ("card handle") belongs to an owner, an opaque 64-bit id chosen by the caller
 *     (the server's client id). Handles are 64-bit ids local to the rm, never reused, never 0;
 *     a stale or foreign id gives SCARD_E_INVALID_HANDLE, never a crash.
 *   - Every function returns a PC/SC result code (SCARD_S_SUCCESS or an SCARD_E_/W_/F_ code of
 *     common/scard_codes.h) unless stated otherwise.
 *
 * Threads
 *   Every function may be called from any thread, concurrently. Calls that must wait for another
 *   handle's transaction (connect, reconnect, disconnect other than LEAVE, begin_transaction,
 *   transmit, control, status, get/set_attrib) block the calling thread on a condition variable
 *   until the transaction ends, the handle's owner is cancelled (rm_cancel_waits / rm_owner_gone),
 *   the reader leaves or the rm is freed; rm_begin_transaction() also takes a timeout.
 *   Watch callbacks and the trace callback run on rm threads (or the caller's) with no rm lock
 *   held, with two exceptions. Watch callbacks run under the watch registry's own lock: a watch
 *   callback must not call rm_watch() / rm_unwatch(); it may call every other function. The trace
 *   callback of an IOCTL sent by a card sequence (connect, reconnect, disconnect, transaction end,
 *   transmit, control, status, attributes, power-up, power-down) runs under that reader's
 *   sequence lock: it must not call those functions for the same reader (it would wait for
 *   itself). Posting a card-tracking request is traced under the reader's monitor lock: the
 *   callback must not remove that reader or stop the rm; completions are traced with no rm lock
 *   held.
 *
 * Protocol numbers in this API are pcsc-lite's (RM_PROTOCOL_T0 1, T1 2, RAW 4); the rm converts
 * to and from libsmc's (RAW 0x10000) itself. Share modes and dispositions are SCARD_SHARE_* and
 * SCARD_LEAVE_CARD / RESET / UNPOWER / EJECT of common/scard_codes.h.
 */
#ifndef SCRM_RM_RM_H
#define SCRM_RM_RM_H

#include "common/compiler.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "common/scard_codes.h"

struct smc_ctx;
struct rm;

/* ---- Configuration and lifetime ------------------------------------------------------------- */

struct rm_config {
    uint32_t power_down_ms;    /* power-down timeout after insertion / last disconnect (5000) */
    unsigned workers;          /* threads of the rm's pool: monitor and timer work (2) */
    bool trace;                /* log every IOCTL at info in category ioctl (also on when
                                  SCRM_LOG enables ioctl:info) */
    unsigned defect_threshold; /* consecutive failures of the tracking IOCTLs that mark a reader
                                  defective until re-plugged (3) */
    uint32_t retry_ms;         /* delay before re-posting a failed tracking IOCTL (100) */
    bool power_on_insert;      /* power a newly inserted card to read its ATR (true) */
    uint32_t watchdog_ms;      /* an IOCTL not returned after this long is logged (reader and
                                  IOCTL) and the reader's pending requests are cancelled;
                                  0 = off (150000, the driver library documentation's 150 s) */
};

/* Fill cfg with the defaults shown above. */
void rm_config_init(struct rm_config *cfg);

/*
 * Create an rm on ctx (which must outlive it) and install ctx's PnP listener. Devices already in
 * ctx are registered (start-up sequence) before this returns. NULL if out of memory or if a
 * thread cannot be started.
 */
struct rm *rm_new(const struct rm_config *cfg, struct smc_ctx *ctx);

/*
 * Stop everything: remove the PnP listener, stop the timers, cancel the monitors, join the
 * threads, drop every connection (no disposition is applied) and close the reader handles. No
 * other rm call may run concurrently or afterwards. NULL is allowed.
 */
void rm_free(struct rm *rm);

/*
 * Add a configured reader by uniform device string ("sim:0:swallows=1"): smc_add_device() then
 * the start-up sequence, synchronously. Results: SCARD_S_SUCCESS; SCARD_E_DUPLICATE_READER (the
 * device or a reader of the same name exists; logged); SCARD_E_READER_UNAVAILABLE (the reader
 * cannot be named, or the device was refused by its driver); SCARD_E_UNKNOWN_READER (no such
 * driver); SCARD_E_INVALID_VALUE (malformed string or options); SCARD_E_NO_MEMORY.
 */
SCRM_MUST_CHECK scard_rc rm_add_reader(struct rm *rm, const char *device);

/*
 * Remove a reader at run time by its device ("sim:7", options ignored): the device leaves libsmc
 * (pending requests complete CANCELLED), the reader is unregistered and every PnP watcher and
 * every watcher of that reader is notified before this returns; its connections stay until they
 * are disconnected (their calls get SCARD_E_READER_UNAVAILABLE / SCARD_W_REMOVED_CARD).
 * SCARD_E_UNKNOWN_READER if no such device exists; SCARD_E_INVALID_VALUE for a malformed string.
 */
SCRM_MUST_CHECK scard_rc rm_remove_reader(struct rm *rm, const char *device);

/* Ask every driver to enumerate its devices and register each new one (synchronously). Returns the
 * number of readers registered by this call. */
SCRM_MUST_CHECK int rm_discover(struct rm *rm);

/* ---- IOCTL trace ------------------------------------------------------------------------------
 */

/* One IOCTL sent by the rm, as passed to the trace callback. */
struct rm_trace_entry {
    const char *reader; /* reader name; the device string ("sim:0") before it is named */
    uint32_t code;      /* IOCTL code */
    const char *ioctl;  /* "IOCTL_SMARTCARD_POWER" */
    const char *arg;    /* "SCARD_COLD_RESET", "SCARD_ATTR_VENDOR_NAME", "SCARD_PROTOCOL_T1",
                           "0x00312004" (vendor code), or NULL when the IOCTL has no argument */
    uint32_t status;    /* smc status (STATUS_*) */
    const char *status_name;
    uint64_t usec;   /* duration; for a completion: time since the request was posted */
    bool completion; /* the later completion of a request that answered STATUS_PENDING */
    bool has_value;  /* GET_STATE: value = state; SET_PROTOCOL: value = selected protocol
                        (libsmc numbering); DEVICE_UNIT / CHARACTERISTICS: the DWORD */
    uint32_t value;
    const char *line; /* "IOCTL_SMARTCARD_POWER SCARD_COLD_RESET -> STATUS_SUCCESS": the log
                         line without reader and time, for tests */
};
typedef void (*rm_trace_fn)(void *user, const struct rm_trace_entry *e);

/* Install (or with NULL remove) a callback that receives every IOCTL the rm sends, on the thread
 * that sent it (possibly several threads at once). Independent of the log: the callback is called
 * whether or not tracing is on. A call already under way when the callback is replaced may still
 * reach the old one. */
void rm_set_trace(struct rm *rm, rm_trace_fn fn, void *user);

/* ---- Reader list and events ------------------------------------------------------------------ */

#define RM_READER_NAME_MAX 128 /* including the NUL */
#define RM_ATR_MAX         33

/* Reader state flags; the values are those of pcsc-lite's SCARD_STATE_* bits, and they are set as
 * pcscd sets them in SCardGetStatusChange: an unavailable reader (defective, lost, radio off,
 * gone) is UNAVAILABLE alone (EXCLUSIVE may follow), else EMPTY or PRESENT (MUTE with a card that
 * does not answer a reset); INUSE only with a card in; EXCLUSIVE whenever an exclusive handle
 * exists. UNPOWERED is the rm's own information (scrm's tools); the PC/SC client library does not
 * report it, as pcscd never does. UNKNOWN is never set for a registered reader. */
#define RM_READER_UNKNOWN     0x0004u /* (not set: an unknown reader name) */
#define RM_READER_UNAVAILABLE 0x0008u /* defective, lost (state unknown, radio off), or gone */
#define RM_READER_EMPTY       0x0010u /* no card */
#define RM_READER_PRESENT     0x0020u /* a card is in the reader */
#define RM_READER_EXCLUSIVE   0x0080u /* a handle has it in exclusive mode */
#define RM_READER_INUSE       0x0100u /* a card is in and at least one handle is connected */
#define RM_READER_MUTE        0x0200u /* the card does not answer a reset */
#define RM_READER_UNPOWERED   0x0400u /* a card is present and not powered (rm only) */

/* The card state word pcsc-lite's SCardStatus reports (its SCARD_UNKNOWN .. SCARD_SPECIFIC bits):
 * what pcscd shows in the same situation, computed from the rm's snapshot (rm_pcsc_state). */
#define RM_PCSC_UNKNOWN 0x0001u /* the reader is unavailable (lost, radio off, defective) */
#define RM_PCSC_ABSENT  0x0002u
#define RM_PCSC_PRESENT \
    0x0004u                       /* card present, not powered by anyone: its ATR not read yet, or \
                                     powered down by a handle's SCARD_UNPOWER_CARD */
#define RM_PCSC_SWALLOWED 0x0008u /* with PRESENT: the card did not answer the reset (mute) */
#define RM_PCSC_POWERED   0x0010u
#define RM_PCSC_NEGOTIABLE \
    0x0020u                      /* PRESENT | POWERED | NEGOTIABLE: a usable card, whether idle, \
                                    connected in a specific protocol, or switched off by the     \
                                    power-down timer (pcscd reports 0x34 in all three) */
#define RM_PCSC_SPECIFIC 0x0040u /* never reported (pcscd does not either) */

/* pcsc-lite protocol numbers used by this API. */
#define RM_PROTOCOL_UNDEFINED 0x0u
#define RM_PROTOCOL_T0        0x1u
#define RM_PROTOCOL_T1        0x2u
#define RM_PROTOCOL_RAW       0x4u
#define RM_PROTOCOL_T15       0x8u
#define RM_PROTOCOL_ANY       0x3u    /* T0 | T1 */
#define RM_PROTOCOL_ANY_OLD   0x1000u /* pcsc-lite's old "any": the card's protocol */

/* Size of a device string as the rm keeps it ("sim:0", "nfc:1"), NUL included: libsmc's device
 * name (the driver prefix and its address), not the whole string with options. */
#define RM_DEVICE_NAME_MAX 64

struct rm_reader_info {
    char name[RM_READER_NAME_MAX];
    char device[RM_DEVICE_NAME_MAX]; /* "sim:0" */
    uint32_t flags;                  /* RM_READER_* */
    uint32_t event_counter;          /* +1 on each card event (insertion, removal, defect) */
    uint32_t state;                  /* driver state SCARD_UNKNOWN (0) .. SCARD_SPECIFIC (6) */
    uint32_t pcsc_state;             /* RM_PCSC_* bits: pcsc-lite's view of the card state */
    uint32_t protocol;               /* RM_PROTOCOL_* of the card, RM_PROTOCOL_UNDEFINED if none */
    int32_t sharing;                 /* -1 exclusive, 0 unused, n = number of connected handles */
    uint32_t characteristics;        /* SCARD_ATTR_CHARACTERISTICS (SCARD_READER_SWALLOWS ...) */
    bool power_down_pending;         /* the power-down timer is armed */
    bool defective;                  /* monitor stopped after repeated tracking failures */
    uint8_t atr[RM_ATR_MAX];
    size_t atr_len;
};

/*
 * Snapshot of every registered reader, in registration order. *out is a malloc'd array of *n
 * entries (NULL when n is 0) for the caller to free(). SCARD_S_SUCCESS or SCARD_E_NO_MEMORY.
 */
SCRM_MUST_CHECK scard_rc rm_list_readers(struct rm *rm, struct rm_reader_info **out, size_t *n);
/* One reader by name. SCARD_E_UNKNOWN_READER if there is none. */
SCRM_MUST_CHECK scard_rc rm_get_reader(struct rm *rm, const char *name, struct rm_reader_info *out);
/* Counter of reader arrivals and departures (the PnP "reader events" counter). Starts at 0. */
uint32_t rm_reader_events(struct rm *rm);

/*
 * Watch a reader by name, or the reader list when name is NULL (PnP). fn(user, name, counter) is
 * called after every change visible in that reader's rm_reader_info (card events increment the
 * counter; sharing changes, power-down, defect and departure are reported with the counter
 * unchanged), or, for a PnP watch, after every arrival or departure with name NULL and counter =
 * rm_reader_events(). A name that is not (yet) registered may be watched; it fires when the reader
 * arrives. Returns the watch (to pass to rm_unwatch() exactly once), or NULL if out of
 * memory. Both calls cost O(1) whatever the number of watches, and a notification calls
 * only the watches of that name (or the PnP ones). After rm_unwatch() returns, the
 * callback is not running and will not be called again.
 */
typedef void (*rm_watch_fn)(void *user, const char *name, uint32_t counter);
struct rm_watch;
struct rm_watch *rm_watch(struct rm *rm, const char *name, rm_watch_fn fn, void *user);
void rm_unwatch(struct rm *rm, struct rm_watch *w);

/* ---- Connections -------------------------------------------------------------------------------
 */

#define RM_INFINITE UINT32_MAX /* no timeout */

/*
 * Connect owner to the reader named `reader`. share: SCARD_SHARE_EXCLUSIVE / SHARED / DIRECT.
 * preferred: RM_PROTOCOL_* mask (ignored for DIRECT). Runs the connect sequence (GET_STATE loop,
 * SWALLOW / POWER / ATR, SET_PROTOCOL); DIRECT connects without touching the card. On success
 * *card gets the handle and *protocol the active protocol (RM_PROTOCOL_UNDEFINED for DIRECT
 * unless the card is already in a specific protocol).
 * Errors: SCARD_E_UNKNOWN_READER, SCARD_E_READER_UNAVAILABLE, SCARD_E_INVALID_VALUE (share or
 * protocols), SCARD_E_SHARING_VIOLATION, SCARD_E_NO_SMARTCARD, SCARD_W_UNRESPONSIVE_CARD,
 * SCARD_W_UNSUPPORTED_CARD, SCARD_E_PROTO_MISMATCH, SCARD_E_NOT_READY (the reader does not
 * progress), SCARD_E_CANCELLED, SCARD_E_NO_MEMORY, and the mapping of other driver statuses.
 */
SCRM_MUST_CHECK scard_rc rm_connect(struct rm *rm, uint64_t owner, const char *reader,
                                    uint32_t share, uint32_t preferred, uint64_t *card,
                                    uint32_t *protocol);

/*
 * Re-establish a handle: optionally change the share mode, apply `init` (SCARD_LEAVE_CARD,
 * SCARD_RESET_CARD = warm reset, SCARD_UNPOWER_CARD = power down then cold reset), run the connect
 * sequence again and clear the handle's "reset" / "removed" marks. SCARD_E_INVALID_VALUE for
 * SCARD_EJECT_CARD or an unknown value.
 */
SCRM_MUST_CHECK scard_rc rm_reconnect(struct rm *rm, uint64_t card, uint32_t share,
                                      uint32_t preferred, uint32_t init, uint32_t *protocol);

/*
 * Close a handle with a disposition: LEAVE nothing, RESET POWER(WARM_RESET), UNPOWER
 * POWER(POWER_DOWN), EJECT IOCTL_SMARTCARD_EJECT. A transaction the handle holds ends. After the
 * last handle of a reader the power-down timer starts. The handle is gone even when the
 * disposition fails (the failure is returned); on a removed reader or card it succeeds.
 */
SCRM_MUST_CHECK scard_rc rm_disconnect(struct rm *rm, uint64_t card, uint32_t disposition);

/*
 * Take the reader's transaction lock for this handle (nested calls by the same handle count).
 * Waits while another handle holds it, at most timeout_ms (RM_INFINITE: no limit): then
 * SCARD_E_TIMEOUT. SCARD_E_CANCELLED if rm_cancel_waits() / rm_owner_gone() hit the owner.
 */
SCRM_MUST_CHECK scard_rc rm_begin_transaction(struct rm *rm, uint64_t card, uint32_t timeout_ms);
/*
 * Event-driven transaction waits (scrmd): after rm_thread_nowait(true) the calls of this thread
 * that would wait without limit for another handle's transaction (begin with RM_INFINITE, and
 * every call that needs the card: connect, reconnect, disconnect with a disposition, status,
 * transmit, control, attributes) return RM_TX_BUSY at once, having done nothing, and
 * rm_thread_busy_reader() names the reader. The caller waits for the event instead of a thread:
 * a watch on the reader fires when its transaction is released (end, disconnect of the holder,
 * end of its owner, departure), and rm_reader_tx_free() tells whether it is free now. Watch
 * first, then test, then retry, so no release is missed. RM_TX_BUSY is not a PC/SC code and must
 * not reach an application.
 */
#define RM_TX_BUSY 0x8010FFF1u
void rm_thread_nowait(bool on);
const char *rm_thread_busy_reader(void);
SCRM_MUST_CHECK bool rm_reader_tx_free(struct rm *rm, const char *name);

/*
 * Event-driven waits for a busy reader (scrmd): after rm_thread_nowait_reader(true) the calls of
 * this thread that would wait for another request running on the same reader (its card sequence:
 * an APDU, a connect, a disposition, a power-up; possibly a slow card) return RM_READER_BUSY at
 * once, having done nothing, and rm_thread_busy_reader() names the reader. The caller parks the
 * request instead of a thread:
 *
 *   rm_reader_idle_wait(rm, name, w, fn): false if the reader is free now (or unknown, or gone):
 *     retry at once (the turn is w's if others are parked: end the retry with
 *     rm_reader_idle_done as for a wake-up). true: parked; fn(w) is called once, on the thread that frees the reader
 *     (with no rm lock held: it must only queue the retry), or when the reader leaves.
 *   rm_reader_idle_done(w): the retry of a request woken by fn has ended (whatever its result,
 *     unless it parked again with rm_reader_idle_wait on the same w). Required: woken requests
 *     are let through one at a time, and this lets the next one go.
 *   rm_reader_idle_cancel(w): true if w was parked and now is not (fn will not run); false if it
 *     was not parked, or fn has run or is running (then rm_reader_idle_done follows the retry).
 *
 * Parked requests of a reader are woken in order, one per release, so a release costs O(1)
 * whatever the number parked; a woken request that loses the reader to another caller parks again
 * at the head. Initialise w with {0}; its fields are the rm's.
 */
#define RM_READER_BUSY 0x8010FFF2u
struct rm_reader;
struct rm_idle_wait {
    void (*fn)(struct rm_idle_wait *w);
    struct rm_reader *r;            /* the reader parked on or woken by (referenced) */
    TAILQ_ENTRY(rm_idle_wait) link; /* the reader's parked list */
    bool linked;
};
void rm_thread_nowait_reader(bool on);
/* First come, first served (scrmd's request jobs): the requests of this thread are the ones w
 * parks. A reader with requests parked, or woken and not yet through, is busy for them unless w
 * itself holds the turn, so a client whose next request comes at once cannot overtake the
 * requests waiting for the reader. NULL (the default) for requests that may take a free reader
 * whatever is parked on it (a client's teardown). */
void rm_thread_park_turn(struct rm_idle_wait *w);
bool rm_reader_idle_wait(struct rm *rm, const char *name, struct rm_idle_wait *w,
                         void (*fn)(struct rm_idle_wait *w));
void rm_reader_idle_done(struct rm_idle_wait *w);
bool rm_reader_idle_cancel(struct rm_idle_wait *w);
/* Park a request for card handle `card` before running it, when it would only find the reader
 * busy (a request runs there, or others wait for it): true as rm_reader_idle_wait's true. False
 * (the handle is unknown, or the reader looked free): run the request; if w was given the turn
 * meanwhile, the run ends with rm_reader_idle_done as after a wake-up. For the thread that reads
 * requests, so that a request queued behind others costs no worker only to park. */
bool rm_card_park_if_busy(struct rm *rm, uint64_t card, struct rm_idle_wait *w,
                          void (*fn)(struct rm_idle_wait *w));

/* Release one level of the lock and apply the disposition. SCARD_E_NOT_TRANSACTED if no handle
 * holds it; SCARD_E_SHARING_VIOLATION (card untouched) if another handle does, as pcsc-lite. After
 * SCARD_RESET_CARD the handle keeps working (its protocol is set again on the reset card; the other
 * handles get SCARD_W_RESET_CARD); after SCARD_UNPOWER_CARD the card stays unpowered and this
 * handle's transmits get SCARD_W_UNPOWERED_CARD until it reconnects. */
SCRM_MUST_CHECK scard_rc rm_end_transaction(struct rm *rm, uint64_t card, uint32_t disposition);

struct rm_card_status {
    char reader[RM_READER_NAME_MAX];
    uint32_t state;      /* driver state 0..6 */
    uint32_t pcsc_state; /* RM_PCSC_* bits: the state word pcsc-lite's SCardStatus reports */
    uint32_t flags;      /* RM_READER_* of the reader */
    uint32_t event_counter;
    uint32_t protocol; /* active protocol of this handle (RM_PROTOCOL_*) */
    uint8_t atr[RM_ATR_MAX];
    size_t atr_len;
};
/* Status of a handle's reader and card. Fills *st also when it returns SCARD_W_REMOVED_CARD or
 * SCARD_W_RESET_CARD (the handle's marks), or SCARD_E_READER_UNAVAILABLE (reader gone). */
SCRM_MUST_CHECK scard_rc rm_status(struct rm *rm, uint64_t card, struct rm_card_status *st);

/*
 * Exchange an APDU. send_protocol: the protocol of the caller's send header (RM_PROTOCOL_*; 0 =
 * the handle's active protocol). *resp_len: in, capacity of resp; out, the response length (the
 * length needed with SCARD_E_INSUFFICIENT_BUFFER when the driver can tell it). *recv_protocol (may
 * be NULL) gets the protocol of the answer.
 */
SCRM_MUST_CHECK scard_rc rm_transmit(struct rm *rm, uint64_t card, uint32_t send_protocol,
                                     const uint8_t *apdu, size_t apdu_len, uint8_t *resp,
                                     size_t *resp_len, uint32_t *recv_protocol);

/*
 * Send a vendor IOCTL (SCardControl). code: a libsmc IOCTL code (SMC_CTL_CODE(n)) or pcsc-lite's
 * SCARD_CTL_CODE(n) = 0x42000000 + n; both reach function n. Only the vendor range (2048..4095,
 * e.g. the simulated reader's SIM_IOCTL_INSERT) and GET_FEATURE_REQUEST (3400) are passed on;
 * other codes: SCARD_E_UNSUPPORTED_FEATURE. Works in DIRECT mode without a card.
 */
SCRM_MUST_CHECK scard_rc rm_control(struct rm *rm, uint64_t card, uint32_t code, const void *in,
                                    size_t in_len, void *out, size_t out_cap, size_t *out_len);

/* Is `code` (as rm_control takes it) a control that the driver of this handle's reader declares
 * privileged (smc_ioctl_privileged: a simulator's insert / remove / faults, an NFC simulator's tag
 * and radio controls)? The server sends such a code only for privileged clients. false for an
 * unknown handle or a code rm_control would not pass on. */
SCRM_MUST_CHECK bool rm_control_privileged(struct rm *rm, uint64_t card, uint32_t code);

/* GET_ATTRIBUTE / SET_ATTRIBUTE. The rm answers SCARD_ATTR_DEVICE_FRIENDLY_NAME_A / _W and
 * DEVICE_SYSTEM_NAME_A / _W itself (the reader name, NUL-terminated; _W as UTF-16LE). Unsupported
 * attribute: SCARD_E_UNSUPPORTED_FEATURE. Too small a buffer: SCARD_E_INSUFFICIENT_BUFFER with
 * *out_len = the size needed. */
SCRM_MUST_CHECK scard_rc rm_get_attrib(struct rm *rm, uint64_t card, uint32_t attr, void *out,
                                       size_t out_cap, size_t *out_len);
SCRM_MUST_CHECK scard_rc rm_set_attrib(struct rm *rm, uint64_t card, uint32_t attr, const void *in,
                                       size_t len);

/* The name of the reader a handle is on, into name (NUL-terminated); false for an unknown handle.
 * Never waits (for the APDU spy). */
SCRM_MUST_CHECK bool rm_card_reader_name(struct rm *rm, uint64_t card, char *name, size_t cap);

/* Wake every call of this owner blocked on a transaction wait: they return SCARD_E_CANCELLED. */
void rm_cancel_waits(struct rm *rm, uint64_t owner);

/*
 * The owner is gone (client disconnected): wake its blocked calls, end its transactions, and
 * disconnect each of its handles with SCARD_RESET_CARD (LEAVE when another handle holds the
 * reader's transaction, so that transaction is not disturbed). Returns how many handles it closed.
 * On a thread in rm_thread_nowait_reader mode it stops at a handle whose reader is busy with
 * another request and returns -1 (that handle and the ones after it untouched,
 * rm_thread_busy_reader() names the reader): call it again when the reader is free
 * (rm_reader_idle_wait); the handles closed so far stay closed.
 */
SCRM_MUST_CHECK int rm_owner_gone(struct rm *rm, uint64_t owner);

/* ---- Driver status mapping ----------------------------------------------------------------- */

#endif
