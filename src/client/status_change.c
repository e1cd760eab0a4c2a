/*
 * SCardGetStatusChange and SCardCancel.
 *
 * The daemon keeps one event counter per reader and a counter of reader arrivals/departures; the
 * client turns its snapshots into PC/SC state bits here. One call runs in rounds:
 *   1. a GET_STATUS_CHANGE query returns the current state of the named readers (an unknown name
 *      fails the call with SCARD_E_UNKNOWN_READER);
 *   2. every entry is evaluated against the caller's dwCurrentState; if one differs, the call
 *      returns with SCARD_STATE_CHANGED on those entries;
 *   3. otherwise a GET_STATUS_CHANGE wait carries the snapshot back; the daemon answers only when
 *      one of these readers (or, with \\?PnP?\Notification, the reader list) changes, and the
 *      client goes back to step 2 with the new snapshot.
 * The wait blocks in poll() on the socket and on the context's eventfd, which SCardCancel (and
 * SCardReleaseContext) write. On cancel or timeout the client sends STOP_WAIT and reads the one
 * reply the wait still owes: either "cancelled", or a snapshot that crossed the STOP_WAIT, which
 * is then evaluated like any other.
 *
 * What counts as a change (pcsc-lite's rules, which applications rely on):
 *   - dwCurrentState UNAWARE: always;
 *   - a non-zero counter in the upper 16 bits of dwCurrentState that differs from the reader's;
 *   - PRESENT / EMPTY / MUTE / UNAVAILABLE / UNKNOWN differing from the caller's bits;
 *   - INUSE / EXCLUSIVE only when the caller claims one of them and it no longer holds (a caller
 *     passing just SCARD_STATE_PRESENT is not woken by others connecting);
 *   - a reader that disappears: UNKNOWN | UNAVAILABLE, a change unless the caller says UNKNOWN.
 * \\?PnP?\Notification changes when the reader list changes during the call, or when the caller
 * passed a non-zero counter that differs from the list counter (never 0, 1..65535).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/log.h"

#define PNP_NAME "\\\\?PnP?\\Notification"

/* Bits compared both ways, and bits compared only when the caller claims them. */
#define SYMMETRIC_BITS                                                                         \
    (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE | SCARD_STATE_EMPTY | SCARD_STATE_PRESENT | \
     SCARD_STATE_MUTE)
#define SHARING_BITS  (SCARD_STATE_EXCLUSIVE | SCARD_STATE_INUSE)
/* UNPOWERED is not reported: pcscd never sets it (a card it switched off stays "present"). */
#define REPORTED_BITS (SYMMETRIC_BITS | SHARING_BITS)

struct gsc {
    SCARD_READERSTATE *rs;
    DWORD n;
    int *req_of;                   /* rs index -> request index, -1 for ignored / PnP */
    uint32_t nreq;                 /* readers in the request */
    struct ipc_reader_state *snap; /* latest state of each requested reader */
    bool pnp;                      /* a \\?PnP?\Notification entry is present */
    uint32_t pnp_start, pnp_now;   /* reader-list counter at the start and now */
    uint8_t *names;                /* request variable part; known values patched per round */
    size_t names_len;
};

static uint32_t pnp_report(uint32_t counter)
{
    return counter % 0xFFFFu + 1u;
}

static bool is_pnp(const char *name)
{
    return strcasecmp(name, PNP_NAME) == 0;
}

/* Evaluate one reader entry against its snapshot; true if it changed. */
static bool eval_reader(SCARD_READERSTATE *r, const struct ipc_reader_state *s)
{
    DWORD cur = r->dwCurrentState, ev;
    DWORD cur_count = (cur >> 16) & 0xFFFFu, count = s->counter & 0xFFFFu;
    bool changed = (cur & 0xFFFFu) == SCARD_STATE_UNAWARE;

    if (s->flags & IPC_RS_MISSING) {
        r->dwEventState = SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE;
        r->cbAtr = 0;
        changed = !(cur & SCARD_STATE_UNKNOWN);
    } else {
        ev = (count << 16) | (s->flags & REPORTED_BITS);
        if (cur_count != 0 && cur_count != count)
            changed = true;
        if ((cur ^ ev) & SYMMETRIC_BITS)
            changed = true;
        if ((cur & SHARING_BITS) && ((cur ^ ev) & SHARING_BITS))
            changed = true;
        r->dwEventState = ev;
        if ((s->flags & IPC_RS_PRESENT) && s->atr_len <= MAX_ATR_SIZE) {
            memcpy(r->rgbAtr, s->atr, s->atr_len);
            r->cbAtr = s->atr_len;
        } else {
            r->cbAtr = 0;
        }
    }
    if (changed)
        r->dwEventState |= SCARD_STATE_CHANGED;
    return changed;
}

static bool eval_pnp(SCARD_READERSTATE *r, uint32_t start, uint32_t now)
{
    DWORD cur_count = (r->dwCurrentState >> 16) & 0xFFFFu, count = pnp_report(now);
    bool changed = start != now || (cur_count != 0 && cur_count != count);
    r->dwEventState = (count << 16) | (changed ? SCARD_STATE_CHANGED : 0);
    r->cbAtr = 0;
    return changed;
}

/* Evaluate every entry; true if any changed. */
static bool evaluate(struct gsc *g)
{
    bool any = false;
    for (DWORD i = 0; i < g->n; i++) {
        SCARD_READERSTATE *r = &g->rs[i];
        if (r->dwCurrentState & SCARD_STATE_IGNORE)
            continue;
        if (g->req_of[i] < 0)
            any |= eval_pnp(r, g->pnp_start, g->pnp_now);
        else
            any |= eval_reader(r, &g->snap[g->req_of[i]]);
    }
    return any;
}

/* Build the request entries (names, known values zero for now). */
static LONG build_request(struct gsc *g)
{
    size_t len = 0, pos = 0;
    g->req_of = calloc(g->n, sizeof *g->req_of);
    if (!g->req_of)
        return SCARD_E_NO_MEMORY;
    for (DWORD i = 0; i < g->n; i++) {
        const char *name = g->rs[i].szReader;
        g->req_of[i] = -1;
        if (g->rs[i].dwCurrentState & SCARD_STATE_IGNORE)
            continue;
        if (is_pnp(name)) {
            g->pnp = true;
            continue;
        }
        if (strnlen(name, IPC_READER_NAME_MAX) >= IPC_READER_NAME_MAX || !*name)
            return SCARD_E_UNKNOWN_READER;
        if (g->nreq >= IPC_GSC_MAX)
            return SCARD_E_INVALID_PARAMETER;
        g->req_of[i] = (int)g->nreq++;
        len += IPC_GSC_ENTRY_HDR + strlen(name);
    }
    g->snap = calloc(g->nreq ? g->nreq : 1, sizeof *g->snap);
    g->names = malloc(len ? len : 1);
    if (!g->snap || !g->names)
        return SCARD_E_NO_MEMORY;
    for (DWORD i = 0; i < g->n; i++) {
        uint16_t nl;
        if (g->req_of[i] < 0)
            continue;
        nl = (uint16_t)strlen(g->rs[i].szReader);
        memset(g->names + pos, 0, 8);
        memcpy(g->names + pos + 8, &nl, 2);
        memcpy(g->names + pos + IPC_GSC_ENTRY_HDR, g->rs[i].szReader, nl);
        pos += IPC_GSC_ENTRY_HDR + nl;
    }
    g->names_len = len;
    return SCARD_S_SUCCESS;
}

/* Put the latest snapshot into the request's known values. */
static void patch_known(struct gsc *g)
{
    size_t pos = 0;
    for (uint32_t k = 0; k < g->nreq; k++) {
        uint16_t nl;
        memcpy(g->names + pos, &g->snap[k].flags, 4);
        memcpy(g->names + pos + 4, &g->snap[k].counter, 4);
        memcpy(&nl, g->names + pos + 8, 2);
        pos += IPC_GSC_ENTRY_HDR + nl;
    }
}

/* Take a snapshot out of a reply. */
static LONG take_snapshot(struct gsc *g, const struct creply *r)
{
    struct ipc_gsc_rep rep;
    memcpy(&rep, r->fixed, sizeof rep);
    if (rep.count != g->nreq || r->var_len != (size_t)rep.count * sizeof *g->snap)
        return SCARD_F_COMM_ERROR;
    memcpy(g->snap, r->var, r->var_len);
    g->pnp_now = rep.pnp_counter;
    return SCARD_S_SUCCESS;
}

static LONG send_gsc(struct cctx *c, struct gsc *g, uint32_t flags)
{
    struct ipc_gsc_req req = {
        .flags = flags | (g->pnp ? IPC_GSC_PNP : 0), .count = g->nreq, .pnp_counter = g->pnp_now};
    return cctx_send(c, IPC_CMD_GET_STATUS_CHANGE, false, &req, sizeof req, g->names, g->names_len);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait until the socket has the reply (0), SCardCancel fired (1) or the deadline passed (2). */
static int wait_reply(struct cctx *c, bool infinite, uint64_t deadline)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                              {.fd = c->cancel_fd, .events = POLLIN}};
        int timeout = -1, n;
        if (!infinite) {
            uint64_t now = now_ms();
            if (now >= deadline)
                return 2;
            timeout = deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
        }
        n = poll(p, 2, timeout);
        if (n < 0 && errno != EINTR)
            return 0; /* let the receive report the failure */
        if (n > 0 && (p[1].revents & POLLIN))
            return 1;
        if (n > 0 && p[0].revents)
            return 0;
    }
}

/*
 * One wait round. SCARD_S_SUCCESS: a new snapshot is in g. SCARD_E_TIMEOUT / SCARD_E_CANCELLED:
 * nothing new (a snapshot that crossed our STOP_WAIT is taken and *crossed set). Other values:
 * failures.
 */
static LONG wait_round(struct cctx *c, struct gsc *g, bool infinite, uint64_t deadline,
                       bool *crossed)
{
    struct creply r;
    LONG rc;
    int why;

    uint32_t seq;

    patch_known(g);
    rc = send_gsc(c, g, IPC_GSC_WAIT);
    if (rc != SCARD_S_SUCCESS)
        return rc;
    seq = c->seq;
    why = wait_reply(c, infinite, deadline);
    if (why != 0) {
        struct ipc_none none = {0};
        rc = cctx_send(c, IPC_CMD_STOP_WAIT, false, &none, sizeof none, NULL, 0);
        if (rc != SCARD_S_SUCCESS)
            return rc;
    }
    rc = cctx_recv(c, IPC_CMD_GET_STATUS_CHANGE, seq, &r); /* the wait's reply, never STOP's */
    if (rc != SCARD_S_SUCCESS)
        return rc;
    if (r.status == (uint32_t)SCARD_S_SUCCESS) {
        rc = take_snapshot(g, &r);
        if (rc != SCARD_S_SUCCESS || why == 0)
            return rc;
        *crossed = true;
    } else if (r.status != (uint32_t)SCARD_E_CANCELLED) {
        return (LONG)r.status;
    }
    if (why == 0) /* the daemon cancelled by itself (shutting down) */
        return SCARD_E_CANCELLED;
    return why == 1 ? SCARD_E_CANCELLED : SCARD_E_TIMEOUT;
}

/* The query round: current state, unknown names rejected. Through cctx_call, so that a context
 * whose daemon restarted reconnects here like every other context-level call. */
static LONG first_round(struct cctx *c, struct gsc *g)
{
    struct creply r;
    struct ipc_gsc_req req = {
        .flags = g->pnp ? IPC_GSC_PNP : 0, .count = g->nreq, .pnp_counter = g->pnp_now};
    LONG rc = cctx_call(c, IPC_CMD_GET_STATUS_CHANGE, false, &req, sizeof req, g->names,
                        g->names_len, &r);
    if (rc != SCARD_S_SUCCESS)
        return rc;
    if (r.status != 0)
        return (LONG)r.status;
    rc = take_snapshot(g, &r);
    if (rc != SCARD_S_SUCCESS)
        return rc;
    for (uint32_t k = 0; k < g->nreq; k++)
        if (g->snap[k].flags & IPC_RS_MISSING)
            return SCARD_E_UNKNOWN_READER;
    g->pnp_start = g->pnp_now;
    return SCARD_S_SUCCESS;
}

static LONG run_rounds(struct cctx *c, struct gsc *g, DWORD timeout)
{
    bool infinite = timeout >= INFINITE;
    uint64_t deadline = infinite ? 0 : now_ms() + timeout;
    LONG rc = first_round(c, g);

    while (rc == SCARD_S_SUCCESS) {
        bool crossed = false;
        if (evaluate(g))
            return SCARD_S_SUCCESS;
        if (timeout == 0)
            return SCARD_E_TIMEOUT;
        rc = wait_round(c, g, infinite, deadline, &crossed);
        if (crossed && evaluate(g))
            return SCARD_S_SUCCESS;
    }
    return rc;
}

/* Mark the context waiting (or not). Returns false if the context was released meanwhile: then
 * the caller must not wait (SCardReleaseContext may have come before the wait was marked). */
static bool set_waiting(struct cctx *c, bool on)
{
    uint64_t v;
    scrm_mutex_lock(&c->cancel_lock);
    bool released = c->released_for_waits;
    c->waiting = on;
    if (!released)
        while (read(c->cancel_fd, &v, sizeof v) == (ssize_t)sizeof v)
            ; /* drain: a cancel belongs to the wait it was aimed at */
    scrm_mutex_unlock(&c->cancel_lock);
    return !released;
}

CLIENT_EXPORT LONG SCardGetStatusChange(SCARDCONTEXT hContext, DWORD dwTimeout,
                                        SCARD_READERSTATE *rgReaderStates, DWORD cReaders)
{
    struct gsc g = {.rs = rgReaderStates, .n = cReaders};
    struct cctx *c;
    bool all_ignored = true;
    LONG rc;

    if (rgReaderStates == NULL && cReaders > 0)
        return SCARD_E_INVALID_PARAMETER;
    c = cctx_get(hContext);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    for (DWORD i = 0; i < cReaders; i++) {
        if (rgReaderStates[i].szReader == NULL) {
            cctx_put(c);
            return SCARD_E_INVALID_VALUE;
        }
        if (!(rgReaderStates[i].dwCurrentState & SCARD_STATE_IGNORE))
            all_ignored = false;
    }
    if (all_ignored) { /* nothing to watch (also cReaders == 0) */
        cctx_put(c);
        return SCARD_S_SUCCESS;
    }
    scrm_mutex_lock(&c->call_lock);
    rc = set_waiting(c, true) ? build_request(&g) : SCARD_E_CANCELLED;
    if (rc == SCARD_S_SUCCESS)
        rc = run_rounds(c, &g, dwTimeout);
    (void)set_waiting(c, false);
    scrm_mutex_unlock(&c->call_lock);
    cctx_put(c);
    free(g.req_of);
    free(g.snap);
    free(g.names);
    return rc;
}

CLIENT_EXPORT LONG SCardCancel(SCARDCONTEXT hContext)
{
    struct cctx *c = cctx_get(hContext);
    uint64_t one = 1;

    if (!c)
        return SCARD_E_INVALID_HANDLE;
    scrm_mutex_lock(&c->cancel_lock);
    if (c->waiting && write(c->cancel_fd, &one, sizeof one) < 0)
        log_debug(client, "cancel: %s", strerror(errno));
    scrm_mutex_unlock(&c->cancel_lock);
    cctx_put(c);
    return SCARD_S_SUCCESS;
}
