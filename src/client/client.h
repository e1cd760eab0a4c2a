/*
 * Internals of libpcsclite.so.1 (src/client): contexts, card handles and the request/reply
 * transport to scrmd. Nothing here is exported; the public surface is include/PCSC/winscard.h.
 *
 * Objects
 *   - A context (struct cctx) owns one connection to the daemon. Its SCARDCONTEXT value is a
 *     random positive 63-bit number, looked up in the process-wide registry.
 *   - A card handle is the daemon's random 63-bit value for the connection; the registry maps it
 *     to its context. Handles of a connection that was lost are dropped from the registry, so
 *     using them gives SCARD_E_INVALID_HANDLE.
 *
 * The registry is the library's only process-wide state; the PC/SC API, which identifies
 * contexts and cards by integers, makes it unavoidable. It has its own mutex and holds no
 * context lock while taken.
 *
 * Locking order: registry lock, then a context's cancel_lock; a context's call_lock is taken with
 * no other lock held and serialises the calls that use its socket (one request at a time, as the
 * protocol wants). SCardCancel takes only cancel_lock, so it works while another thread waits in
 * SCardGetStatusChange.
 */
#ifndef SCRM_CLIENT_CLIENT_H
#define SCRM_CLIENT_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <PCSC/winscard.h>

#include "common/mutex.h"
#include "ipc/idmap.h"
#include "ipc/ipc.h"

#if defined(__GNUC__)
#define CLIENT_EXPORT __attribute__((visibility("default")))
#else
#define CLIENT_EXPORT
#endif

struct cctx {
    uint64_t id;             /* SCARDCONTEXT value */
    unsigned refs;           /* registry entry + callers holding it; under the registry lock */
    bool released;           /* SCardReleaseContext ran; under the registry lock */
    bool released_for_waits; /* the same, under cancel_lock: no new status-change wait */
    scrm_mutex call_lock;    /* one request at a time on fd */
    int fd SCRM_GUARDED_BY(call_lock);             /* connection to scrmd, -1 when lost */
    uint32_t seq SCRM_GUARDED_BY(call_lock);       /* last request sequence number */
    struct idmap cards SCRM_GUARDED_BY(call_lock); /* card handles of the current connection */
    uint8_t *rx SCRM_GUARDED_BY(call_lock);        /* reply buffer */
    size_t rx_cap SCRM_GUARDED_BY(call_lock);
    scrm_mutex cancel_lock;
    int cancel_fd; /* eventfd written by SCardCancel while `waiting` (set once at creation) */
    bool waiting SCRM_GUARDED_BY(cancel_lock); /* inside a cancellable SCardGetStatusChange wait */
    /* Transaction waits (IPC_S_TX_BUSY): a second connection of the context, opened on first
     * need, on which WAIT_TX waits while call_lock is free for the context's other threads (the
     * one that ends the transaction may be one of them). */
    scrm_mutex wait_lock; /* one WAIT_TX at a time on wait_fd */
    int wait_fd SCRM_GUARDED_BY(wait_lock);
    uint32_t wait_seq SCRM_GUARDED_BY(wait_lock);
};

/* A decoded reply: pointers into the context's reply buffer, valid until its next call. */
struct creply {
    uint32_t status;      /* hdr.status */
    const uint8_t *fixed; /* the command's fixed reply part */
    const uint8_t *var;   /* the rest */
    size_t var_len;
};

/* ---- Registry (context.c) ---------------------------------------------------------------------
 */

/* Create a context connected to the daemon. SCARD_S_SUCCESS and *out, or SCARD_E_NO_MEMORY,
 * SCARD_E_NO_SERVICE (no daemon), SCARD_E_SERVICE_STOPPED (incompatible daemon). */
LONG cctx_create(struct cctx **out);
/* Take a reference to the context with this value; NULL if there is none (or it is released). */
struct cctx *cctx_get(SCARDCONTEXT id);
/* Take a reference to the context that owns this card handle; NULL if unknown. */
struct cctx *cctx_get_card(SCARDHANDLE card);
/* Drop a reference; the last one frees the context. */
void cctx_put(struct cctx *c);
/* Remove from the registry, wake a waiting SCardGetStatusChange, close the connection once the
 * running call ends, and drop the registry's reference. SCARD_E_INVALID_HANDLE if unknown. */
LONG cctx_release(SCARDCONTEXT id);

/* Card handles of a context (call_lock held). */
int cctx_add_card(struct cctx *c, uint64_t card);
void cctx_del_card(struct cctx *c, uint64_t card);

/* ---- Transport (context.c); call_lock held ----------------------------------------------------
 */

/*
 * Send one request (header + fixed + var) and read its reply into *rep. If the connection was
 * lost earlier, a context-level command (card == false) first reconnects. A request the daemon
 * answers with IPC_S_TX_BUSY (another handle holds the reader's transaction) is sent again once
 * the transaction is free; meanwhile call_lock is released (the caller holds it again on
 * return), so another thread of the same context can end that transaction. Returns SCARD_S_SUCCESS
 * when a well-formed reply arrived (its own status is rep->status), else SCARD_E_NO_SERVICE (the
 * daemon is gone; the connection is dropped with its card handles) or SCARD_E_NO_MEMORY.
 */
LONG cctx_call(struct cctx *c, uint16_t cmd, bool card, const void *fixed, size_t fixed_len,
               const void *var, size_t var_len, struct creply *rep);
/* The parts of cctx_call, for the cancellable wait: send a request (its sequence number is then
 * c->seq), read the reply to the request numbered seq. */
LONG cctx_send(struct cctx *c, uint16_t cmd, bool card, const void *fixed, size_t fixed_len,
               const void *var, size_t var_len);
LONG cctx_recv(struct cctx *c, uint16_t cmd, uint32_t seq, struct creply *rep);
/* Drop the connection (after a protocol error or I/O failure) and its card handles. */
void cctx_disconnect(struct cctx *c);

/* ---- Helpers (winscard.c) ---------------------------------------------------------------------
 */

/* Copy len bytes to an application buffer following the PC/SC conventions: buf NULL -> length
 * only; *buf_len == SCARD_AUTOALLOCATE -> malloc'd, stored in *(void **)buf; too small ->
 * SCARD_E_INSUFFICIENT_BUFFER. *buf_len always gets len. */
LONG client_copy_out(const void *src, size_t len, void *buf, DWORD *buf_len);

/* Initialise logging once per process (SCRM_LOG). */
void client_init_once(void);

#endif
