/*
 * Connections ("card handles") of the resource manager: the id table, sharing, transactions, the
 * calls made through a handle, and the end of an owner.
 *
 * Handles are 64-bit ids, never reused, found in a hash table (buckets indexed by the low bits of
 * the id, doubled when the load passes 2), so a call costs the same whatever the number of
 * clients. A call takes a reference on its connection for its duration; disconnect removes the
 * id from the table first, so a stale id is simply SCARD_E_INVALID_HANDLE.
 *
 * Sharing: EXCLUSIVE needs the reader free of other handles; nobody connects while an EXCLUSIVE
 * handle is there (SCARD_E_SHARING_VIOLATION). DIRECT handles count as users of the reader.
 *
 * Transactions: reader->tx_owner is the handle holding the reader's lock (nested begin/end
 * counted). A call of another handle that needs the card (conn_enter) waits on reader->cond until
 * the lock is free; it then takes reader->seq_lock and checks again that no other handle took the
 * transaction meanwhile, so no foreign request runs inside a transaction. Begin takes and releases
 * seq_lock once after taking the lock, to let a request already running finish first.
 *
 * Marks: a card removal marks every handle "removed" (SCARD_W_REMOVED_CARD), a reset or power-down
 * by one handle marks the others "reset" (SCARD_W_RESET_CARD), until each reconnects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "rm/internal.h"

/* pcsc-lite's SCARD_CTL_CODE(n) is 0x42000000 + n. */
#define PCSC_CTL_BASE 0x42000000u

/* ---- id table (rm->lock) ---- */

static int table_grow_locked(struct rm *rm) SCRM_REQUIRES(rm->lock)
{
    scrm_mutex_assert_held(&rm->lock);
    size_t nb = rm->conn_buckets ? rm->conn_buckets * 2 : 64;
    struct rm_conn **tab = calloc(nb, sizeof(void *)); /* an array of pointers */
    if (!tab)
        return -1;
    for (size_t i = 0; i < rm->conn_buckets; i++) {
        while (rm->conn_tab[i]) {
            struct rm_conn *c = rm->conn_tab[i];
            rm->conn_tab[i] = c->hnext;
            c->hnext = tab[c->id & (nb - 1)];
            tab[c->id & (nb - 1)] = c;
        }
    }
    free(rm->conn_tab);
    rm->conn_tab = tab;
    rm->conn_buckets = nb;
    return 0;
}

static int table_insert_locked(struct rm *rm, struct rm_conn *c) SCRM_REQUIRES(rm->lock)
{
    scrm_mutex_assert_held(&rm->lock);
    if (rm->n_conns >= rm->conn_buckets * 2 && table_grow_locked(rm) < 0 && !rm->conn_buckets)
        return -1;
    c->id = ++rm->next_conn_id;
    size_t b = c->id & (rm->conn_buckets - 1);
    c->hnext = rm->conn_tab[b];
    rm->conn_tab[b] = c;
    rm->n_conns++;
    c->refs++;
    return 0;
}

static struct rm_conn *table_find_locked(struct rm *rm, uint64_t id) SCRM_REQUIRES(rm->lock)
{
    scrm_mutex_assert_held(&rm->lock);
    if (!rm->conn_buckets || !id)
        return NULL;
    struct rm_conn *c = rm->conn_tab[id & (rm->conn_buckets - 1)];
    while (c && c->id != id)
        c = c->hnext;
    return c;
}

static void table_remove_locked(struct rm *rm, struct rm_conn *c) SCRM_REQUIRES(rm->lock)
{
    scrm_mutex_assert_held(&rm->lock);
    for (struct rm_conn **pp = &rm->conn_tab[c->id & (rm->conn_buckets - 1)]; *pp;
         pp = &(*pp)->hnext) {
        if (*pp == c) {
            *pp = c->hnext;
            rm->n_conns--;
            return;
        }
    }
}

/* The connection of an id, referenced. */
static struct rm_conn *conn_get(struct rm *rm, uint64_t id)
{
    scrm_mutex_lock(&rm->lock);
    struct rm_conn *c = table_find_locked(rm, id);
    if (c)
        c->refs++;
    scrm_mutex_unlock(&rm->lock);
    return c;
}

/* Remove an id from the table; the caller inherits the table's reference. */
static struct rm_conn *conn_take(struct rm *rm, uint64_t id)
{
    scrm_mutex_lock(&rm->lock);
    struct rm_conn *c = table_find_locked(rm, id);
    if (c)
        table_remove_locked(rm, c);
    scrm_mutex_unlock(&rm->lock);
    return c;
}

static void conn_put(struct rm_conn *c)
{
    struct rm *rm = c->r->rm;
    scrm_mutex_lock(&rm->lock);
    bool last = --c->refs == 0;
    scrm_mutex_unlock(&rm->lock);
    if (last) {
        rm_reader_unref(c->r);
        free(c);
    }
}

/* ---- waiting for the transaction ---- */

static uint64_t deadline_after(uint32_t ms)
{
    return ms == RM_INFINITE ? UINT64_MAX : scrm_now_ns() + (uint64_t)ms * 1000000u;
}

static void unlink_waiter_locked(struct rm_reader *r, struct rm_waiter *w) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    for (struct rm_waiter **pp = &r->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            return;
        }
    }
}

/* rm_thread_nowait(): this thread's calls return RM_TX_BUSY instead of waiting without limit,
 * and the reader that refused them. */
static _Thread_local bool tl_nowait;
static _Thread_local char tl_busy_reader[RM_READER_NAME_MAX];

void rm_thread_nowait(bool on)
{
    tl_nowait = on;
}

const char *rm_thread_busy_reader(void)
{
    return tl_busy_reader;
}

bool rm_reader_tx_free(struct rm *rm, const char *name)
{
    struct rm_reader *r = rm_reader_by_name(rm, name);
    bool free_ = true;
    if (!r)
        return true;
    scrm_mutex_lock(&r->lock);
    free_ = !r->tx_owner || r->gone;
    scrm_mutex_unlock(&r->lock);
    rm_reader_unref(r);
    return free_;
}

/* Wait until no handle other than `me` holds the reader's transaction; r->lock held. */
static scard_rc wait_turn_locked(struct rm_reader *r, uint64_t owner, const struct rm_conn *me,
                                 uint64_t deadline_ns) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    if (!r->tx_owner || r->tx_owner == me)
        return SCARD_S_SUCCESS;
    if (tl_nowait && deadline_ns == UINT64_MAX) {
        snprintf(tl_busy_reader, sizeof(tl_busy_reader), "%s", r->name);
        return RM_TX_BUSY;
    }
    struct rm_waiter w = {.owner = owner, .next = r->waiters};
    /* w lives on this stack frame only while linked: it is unlinked before returning. */
    // cppcheck-suppress autoVariables
    r->waiters = &w;
    scard_rc rc = SCARD_S_SUCCESS;
    while (r->tx_owner && r->tx_owner != me) {
        if (w.cancelled)
            rc = SCARD_E_CANCELLED;
        else if (r->gone)
            rc = SCARD_E_READER_UNAVAILABLE;
        else if (me && me->dead)
            rc = SCARD_E_INVALID_HANDLE;
        else if (atomic_load(&r->rm->closing))
            rc = SCARD_E_SYSTEM_CANCELLED;
        else if (deadline_ns != UINT64_MAX && scrm_now_ns() >= deadline_ns)
            rc = SCARD_E_TIMEOUT;
        if (rc)
            break;
        if (deadline_ns == UINT64_MAX) {
            scrm_cond_wait(&r->cond, &r->lock);
        } else {
            struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                                  .tv_nsec = (long)(deadline_ns % 1000000000u)};
            scrm_cond_timedwait(&r->cond, &r->lock, &ts);
        }
    }
    unlink_waiter_locked(r, &w);
    return rc;
}

/* Can this handle be used at all (and, with marks, has its card not changed)? r->lock held. */
static scard_rc conn_check_locked(const struct rm_reader *r, const struct rm_conn *c, bool marks)
    SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    if (c->dead)
        return SCARD_E_INVALID_HANDLE;
    if (r->gone || r->defective)
        return SCARD_E_READER_UNAVAILABLE;
    if (marks && c->removed)
        return SCARD_W_REMOVED_CARD;
    if (marks && c->reset)
        return SCARD_W_RESET_CARD;
    return SCARD_S_SUCCESS;
}

/* Wait for our turn and take reader->seq_lock. On success the caller must conn_leave(). */
static scard_rc conn_enter(struct rm_conn *c, bool marks, uint64_t deadline_ns)
    SCRM_TRY_ACQUIRE(SCARD_S_SUCCESS, c->r->seq_lock)
{
    struct rm_reader *r = c->r;
    for (;;) {
        scrm_mutex_lock(&r->lock);
        scard_rc rc = conn_check_locked(r, c, marks);
        if (!rc)
            rc = wait_turn_locked(r, c->owner, c, deadline_ns);
        scrm_mutex_unlock(&r->lock);
        if (rc)
            return rc;
        if (rm_thread_nowait_reader_on()) {
            /* Another request runs on the reader: the caller parks this one instead of its
             * thread (rm_reader_idle_wait). */
            if (!rm_seq_try_turn(r)) {
                snprintf(tl_busy_reader, sizeof(tl_busy_reader), "%s", r->name);
                return RM_READER_BUSY;
            }
        } else {
            rm_seq_lock(r);
        }
        scrm_mutex_lock(&r->lock);
        rc = conn_check_locked(r, c, marks);
        bool mine = !r->tx_owner || r->tx_owner == c;
        scrm_mutex_unlock(&r->lock);
        if (!rc && mine)
            return SCARD_S_SUCCESS;
        rm_seq_unlock(r);
        if (rc)
            return rc;
    }
}

static void conn_leave(struct rm_conn *c) SCRM_RELEASE(c->r->seq_lock)
{
    rm_seq_unlock(c->r);
}

/* ---- attaching to a reader ---- */

/* Link c to its reader if the share mode allows it; r->lock taken here. */
static scard_rc attach(struct rm_conn *c)
{
    struct rm_reader *r = c->r;
    scard_rc rc = SCARD_S_SUCCESS;
    scrm_mutex_lock(&r->lock);
    rm_monitor_settle_locked(r);
    /* A reader in an unknown state (lost, NFC radio off) is as unavailable to a card connect as
     * it is in the reader list; DIRECT still reaches it (e.g. to switch the radio back on). */
    if (r->gone || r->defective || (r->lost && c->share != SCARD_SHARE_DIRECT))
        rc = SCARD_E_READER_UNAVAILABLE;
    else if (r->exclusive || (c->share == SCARD_SHARE_EXCLUSIVE && r->n_conns > 0))
        rc = SCARD_E_SHARING_VIOLATION;
    if (!rc) {
        c->rnext = r->conns;
        r->conns = c;
        r->n_conns++;
        r->exclusive = c->share == SCARD_SHARE_EXCLUSIVE;
        rm_power_down_cancel_locked(r);
    }
    scrm_mutex_unlock(&r->lock);
    return rc;
}

/* Unlink c from its reader; start the power-down timer after the last handle. */
static void detach(struct rm_conn *c, bool arm_always)
{
    struct rm_reader *r = c->r;
    scrm_mutex_lock(&r->lock);
    for (struct rm_conn **pp = &r->conns; *pp; pp = &(*pp)->rnext) {
        if (*pp == c) {
            *pp = c->rnext;
            r->n_conns--;
            break;
        }
    }
    c->dead = true;
    if (c->share == SCARD_SHARE_EXCLUSIVE)
        r->exclusive = false;
    if (r->tx_owner == c) {
        r->tx_owner = NULL;
        r->tx_depth = 0;
    }
    if (r->n_conns == 0 && !r->gone && (arm_always || r->card_present))
        rm_power_down_arm_locked(r);
    scrm_cond_broadcast(&r->cond);
    scrm_mutex_unlock(&r->lock);
}

static bool valid_share(uint32_t share)
{
    return share == SCARD_SHARE_EXCLUSIVE || share == SCARD_SHARE_SHARED ||
           share == SCARD_SHARE_DIRECT;
}

/* Preferred protocols → libsmc mask; 0 if none usable. */
static uint32_t preferred_mask(uint32_t preferred)
{
    if (preferred & RM_PROTOCOL_ANY_OLD)
        preferred |= RM_PROTOCOL_ANY;
    return rm_proto_to_smc(preferred);
}

/* The protocol a DIRECT handle reports: the card's, if it is in a specific protocol. */
static uint32_t direct_protocol(struct rm_reader *r)
{
    scrm_mutex_lock(&r->lock);
    uint32_t p = r->state == SCARD_SPECIFIC ? r->protocol : 0;
    scrm_mutex_unlock(&r->lock);
    return p;
}

/* Run the connect sequence for c (or nothing for DIRECT); sets c->protocol. */
static scard_rc establish(struct rm_conn *c, uint32_t pref)
{
    uint32_t sel = 0, rc = SCARD_S_SUCCESS;
    if (c->share == SCARD_SHARE_DIRECT) {
        sel = direct_protocol(c->r);
    } else {
        rc = conn_enter(c, false, UINT64_MAX);
        if (rc)
            return rc;
        rc = rm_seq_connect(c->r, pref, &sel);
        conn_leave(c);
    }
    scrm_mutex_lock(&c->r->lock);
    c->protocol = rc ? 0 : sel;
    scrm_mutex_unlock(&c->r->lock);
    return rc;
}

scard_rc rm_connect(struct rm *rm, uint64_t owner, const char *reader, uint32_t share,
                    uint32_t preferred, uint64_t *card, uint32_t *protocol)
{
    if (!reader || !card)
        return SCARD_E_INVALID_PARAMETER;
    uint32_t pref = preferred_mask(preferred);
    if (!valid_share(share) || (share != SCARD_SHARE_DIRECT && !pref))
        return SCARD_E_INVALID_VALUE;
    struct rm_reader *r = rm_reader_by_name(rm, reader);
    if (!r)
        return SCARD_E_UNKNOWN_READER;
    struct rm_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        rm_reader_unref(r);
        return SCARD_E_NO_MEMORY;
    }
    c->r = r;
    c->owner = owner;
    c->share = share;
    c->refs = 1;
    scard_rc rc = attach(c);
    if (rc) {
        c->dead = true;
        goto out;
    }
    rc = establish(c, pref);
    if (!rc) {
        scrm_mutex_lock(&rm->lock);
        if (table_insert_locked(rm, c) < 0)
            rc = SCARD_E_NO_MEMORY;
        scrm_mutex_unlock(&rm->lock);
    }
    if (rc) {
        detach(c, false);
    } else {
        *card = c->id;
        if (protocol)
            *protocol = rm_proto_from_smc(c->protocol);
    }
    rm_notify_reader(r);
out:
    conn_put(c);
    return rc;
}

/* Switch c to a new share mode if the others allow it; r->lock taken here. */
static scard_rc reshare(struct rm_conn *c, uint32_t share)
{
    struct rm_reader *r = c->r;
    scard_rc rc = SCARD_S_SUCCESS;
    scrm_mutex_lock(&r->lock);
    if (share == SCARD_SHARE_EXCLUSIVE && r->n_conns > 1)
        rc = SCARD_E_SHARING_VIOLATION;
    if (!rc) {
        c->share = share;
        r->exclusive = share == SCARD_SHARE_EXCLUSIVE;
    }
    scrm_mutex_unlock(&r->lock);
    return rc;
}

scard_rc rm_reconnect(struct rm *rm, uint64_t card, uint32_t share, uint32_t preferred,
                      uint32_t init, uint32_t *protocol)
{
    uint32_t pref = preferred_mask(preferred);
    if (!valid_share(share) || (share != SCARD_SHARE_DIRECT && !pref) || init > SCARD_UNPOWER_CARD)
        return SCARD_E_INVALID_VALUE;
    struct rm_conn *c = conn_get(rm, card);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    scrm_mutex_lock(&c->r->lock);
    rm_monitor_settle_locked(c->r);
    scrm_mutex_unlock(&c->r->lock);
    scard_rc rc = conn_enter(c, false, UINT64_MAX);
    if (rc)
        goto out;
    rc = reshare(c, share);
    if (!rc && init != SCARD_LEAVE_CARD)
        rc = rm_seq_disposition(c->r, c, init);
    uint32_t sel = 0;
    if (!rc && share != SCARD_SHARE_DIRECT)
        rc = rm_seq_connect(c->r, pref, &sel);
    else if (!rc)
        sel = direct_protocol(c->r);
    scrm_mutex_lock(&c->r->lock);
    if (!rc) {
        c->removed = c->reset = false;
        c->protocol = sel;
    }
    scrm_mutex_unlock(&c->r->lock);
    conn_leave(c);
    if (!rc && protocol)
        *protocol = rm_proto_from_smc(sel);
    rm_notify_reader(c->r);
out:
    conn_put(c);
    return rc;
}

/* Apply a disposition with the reader's sequence lock held (released here); failures on a
 * vanished card are success. */
static scard_rc disposition_entered(struct rm_conn *c, uint32_t disposition)
    SCRM_RELEASE(c->r->seq_lock)
{
    scard_rc rc = SCARD_S_SUCCESS;
    scrm_mutex_lock(&c->r->lock);
    bool card = c->r->card_present && !c->removed;
    scrm_mutex_unlock(&c->r->lock);
    if (card)
        rc = rm_seq_disposition(c->r, c, disposition);
    conn_leave(c);
    if (rc == SCARD_W_REMOVED_CARD || rc == SCARD_E_NO_SMARTCARD ||
        rc == SCARD_E_READER_UNAVAILABLE)
        rc = SCARD_S_SUCCESS;
    return rc;
}

/* Apply a disposition for a handle that is leaving; failures on a vanished card are success. */
static scard_rc leave_disposition(struct rm_conn *c, uint32_t disposition)
{
    if (disposition == SCARD_LEAVE_CARD)
        return SCARD_S_SUCCESS;
    scard_rc rc = conn_enter(c, false, UINT64_MAX);
    if (rc == SCARD_E_READER_UNAVAILABLE)
        return SCARD_S_SUCCESS;
    if (rc)
        return rc;
    return disposition_entered(c, disposition);
}

/* The handle c (out of the table, the table's reference inherited) leaves its reader. */
static scard_rc disconnect_finish(struct rm_conn *c, uint32_t disposition, scard_rc rc)
{
    if (rc == RM_TX_BUSY || rc == RM_READER_BUSY) {
        /* taken in between: the handle is gone, the card is left as it is */
        log_info(rm, "reader '%s': disposition %s skipped: %s", c->r->name,
                 scard_disposition_name(disposition),
                 rc == RM_TX_BUSY ? "another handle's transaction" : "the reader is busy");
        rc = SCARD_S_SUCCESS;
    }
    if (rc)
        log_info(rm, "reader '%s': disposition %s failed: %s", c->r->name,
                 scard_disposition_name(disposition), scard_code_name(rc));
    detach(c, true);
    rm_notify_reader(c->r);
    conn_put(c);
    return rc;
}

/* The answer of a call that would have waited, for a thread that must not (no branch here: the
 * thread safety analysis loses track of a lock across one). */
static bool is_busy(scard_rc rc)
{
    return rc == RM_TX_BUSY || rc == RM_READER_BUSY;
}

/* rm_disconnect for a thread that must not wait (rm_thread_nowait / _reader): take the reader
 * first, then the handle, so that a disposition that would wait (for another handle's
 * transaction, or for the reader) says so while the handle still exists for the retry. *done is
 * false when the usual way must go on (a dead handle, or the reader gone). */
static scard_rc disconnect_nowait(struct rm *rm, uint64_t card, uint32_t disposition, bool *done)
{
    struct rm_conn *p = conn_get(rm, card);
    *done = true;
    if (!p)
        return SCARD_E_INVALID_HANDLE;
    scard_rc rc = conn_enter(p, false, UINT64_MAX);
    if (rc) {
        conn_put(p);
        *done = is_busy(rc);
        return rc;
    }
    struct rm_conn *c = conn_take(rm, card); /* p itself, unless it left meanwhile */
    if (!c) {
        conn_leave(p);
        conn_put(p);
        return SCARD_E_INVALID_HANDLE;
    }
    rc = disposition_entered(p, disposition);
    conn_put(p);
    return disconnect_finish(c, disposition, rc);
}

scard_rc rm_disconnect(struct rm *rm, uint64_t card, uint32_t disposition)
{
    if (disposition > SCARD_EJECT_CARD)
        return SCARD_E_INVALID_VALUE;
    if (disposition != SCARD_LEAVE_CARD && (tl_nowait || rm_thread_nowait_reader_on())) {
        bool done;
        scard_rc rc = disconnect_nowait(rm, card, disposition, &done);
        if (done)
            return rc;
    }
    struct rm_conn *c = conn_take(rm, card);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    return disconnect_finish(c, disposition, leave_disposition(c, disposition));
}

/* ---- transactions ---- */

scard_rc rm_begin_transaction(struct rm *rm, uint64_t card, uint32_t timeout_ms)
{
    struct rm_conn *c = conn_get(rm, card);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    struct rm_reader *r = c->r;
    scrm_mutex_lock(&r->lock);
    scard_rc rc = conn_check_locked(r, c, true);
    if (!rc)
        rc = wait_turn_locked(r, c->owner, c, deadline_after(timeout_ms));
    if (!rc)
        rc = conn_check_locked(r, c, true);
    if (!rc) {
        r->tx_owner = c;
        r->tx_depth++;
    }
    scrm_mutex_unlock(&r->lock);
    if (!rc && !rm_thread_nowait_reader_on()) {
        /* A request of another handle that entered before us finishes first. (A thread that
         * must not wait for the reader skips this: the handle's next request waits for it.) */
        rm_seq_lock(r);
        rm_seq_unlock(r);
    }
    conn_put(c);
    return rc;
}

scard_rc rm_end_transaction(struct rm *rm, uint64_t card, uint32_t disposition)
{
    if (disposition > SCARD_EJECT_CARD)
        return SCARD_E_INVALID_VALUE;
    struct rm_conn *c = conn_get(rm, card);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    struct rm_reader *r = c->r;
    scrm_mutex_lock(&r->lock);
    /* As pcsc-lite: ending another handle's transaction is a sharing violation (and leaves the
     * card alone); with no transaction at all, NOT_TRANSACTED. */
    scard_rc rc = r->tx_owner == c ? conn_check_locked(r, c, true)
                  : r->tx_owner    ? SCARD_E_SHARING_VIOLATION
                                   : SCARD_E_NOT_TRANSACTED;
    scrm_mutex_unlock(&r->lock);
    if (!rc && disposition != SCARD_LEAVE_CARD) {
        if (rm_thread_nowait_reader_on()) {
            if (!rm_seq_try_turn(r)) { /* the reader is busy: nothing done, the caller parks */
                snprintf(tl_busy_reader, sizeof(tl_busy_reader), "%s", r->name);
                conn_put(c);
                return RM_READER_BUSY;
            }
        } else {
            rm_seq_lock(r);
        }
        rc = rm_seq_disposition(r, c, disposition);
        scrm_mutex_lock(&r->lock);
        uint32_t mine = c->protocol;
        scrm_mutex_unlock(&r->lock);
        if (!rc && disposition == SCARD_RESET_CARD && mine) {
            /* The handle lives on: give it back its protocol on the fresh card. */
            uint32_t sel = 0;
            rc = rm_seq_connect(r, mine, &sel);
        }
        rm_seq_unlock(r);
    }
    scrm_mutex_lock(&r->lock);
    bool released = false;
    if (r->tx_owner == c && rc != SCARD_E_NOT_TRANSACTED && rc != SCARD_E_SHARING_VIOLATION &&
        --r->tx_depth == 0) {
        r->tx_owner = NULL;
        released = true;
        scrm_cond_broadcast(&r->cond);
    }
    scrm_mutex_unlock(&r->lock);
    if (released) /* the watchers of the reader learn that its transaction is free */
        rm_notify_reader(r);
    conn_put(c);
    return rc;
}

/* ---- calls through a handle ---- */

scard_rc rm_status(struct rm *rm, uint64_t card, struct rm_card_status *st)
{
    struct rm_conn *c = conn_get(rm, card);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    struct rm_reader *r = c->r;
    memset(st, 0, sizeof(*st));
    scrm_mutex_lock(&r->lock);
    scard_rc rc = c->dead ? SCARD_E_INVALID_HANDLE : SCARD_S_SUCCESS;
    if (!rc && !r->gone)
        rc = wait_turn_locked(r, c->owner, c, UINT64_MAX);
    if (!rc || rc == SCARD_E_READER_UNAVAILABLE) {
        snprintf(st->reader, sizeof(st->reader), "%s", r->name);
        st->state = r->gone ? SCARD_UNKNOWN : r->state;
        st->pcsc_state = rm_pcsc_state_locked(r);
        st->flags = rm_reader_flags_locked(r);
        st->event_counter = r->event_counter;
        st->protocol = rm_proto_from_smc(c->protocol);
        st->atr_len = r->card_present ? r->atr_len : 0;
        memcpy(st->atr, r->atr, st->atr_len);
        if (!rc)
            rc = conn_check_locked(r, c, true);
    }
    scrm_mutex_unlock(&r->lock);
    conn_put(c);
    return rc;
}

/* The protocol to send with, or an SCARD error; r->lock taken here. */
static scard_rc send_protocol_of(struct rm_conn *c, uint32_t send_protocol, uint32_t *proto,
                                 unsigned *op)
{
    scrm_mutex_lock(&c->r->lock);
    uint32_t mine = c->protocol;
    *op = c->r->state == SCARD_SPECIFIC ? RM_OP_TRANSMIT : RM_OP_UNPOWERED;
    scrm_mutex_unlock(&c->r->lock);
    /* 0 and pcsc-lite's old SCARD_PROTOCOL_ANY (0x1000) mean "the card's protocol" */
    bool any = send_protocol == 0 || send_protocol == RM_PROTOCOL_ANY_OLD;
    *proto = any ? mine : rm_proto_to_smc(send_protocol);
    if (!mine)
        return *op == RM_OP_UNPOWERED ? SCARD_W_UNPOWERED_CARD : SCARD_E_PROTO_MISMATCH;
    if (*proto != mine)
        return SCARD_E_PROTO_MISMATCH;
    return SCARD_S_SUCCESS;
}

/* One TRANSMIT through buf (header + APDU in, header + response out). */
static scard_rc do_transmit(struct rm_conn *c, uint32_t proto, unsigned op, const uint8_t *apdu,
                            size_t apdu_len, uint8_t *resp, size_t *resp_len, uint32_t *recv)
{
    size_t cap = *resp_len;
    size_t size = SMC_IO_HEADER_LENGTH + (apdu_len > cap ? apdu_len : cap);
    uint8_t *buf = malloc(size);
    if (!buf)
        return SCARD_E_NO_MEMORY;
    scrm_put_u32le(buf, proto);
    scrm_put_u32le(buf + 4, SMC_IO_HEADER_LENGTH);
    memcpy(buf + SMC_IO_HEADER_LENGTH, apdu, apdu_len);
    size_t ret = 0;
    smc_status st = rm_ioctl(c->r, IOCTL_SMARTCARD_TRANSMIT, buf, SMC_IO_HEADER_LENGTH + apdu_len,
                             buf, SMC_IO_HEADER_LENGTH + cap, &ret);
    scard_rc rc = rm_scard_from_status(st, op);
    if (st == STATUS_SUCCESS && ret < SMC_IO_HEADER_LENGTH)
        rc = SCARD_F_COMM_ERROR;
    if (!rc && ret - SMC_IO_HEADER_LENGTH > cap)
        rc = SCARD_E_INSUFFICIENT_BUFFER; /* a driver overstating its answer */
    if (!rc) {
        *resp_len = ret - SMC_IO_HEADER_LENGTH;
        if (*resp_len && resp)
            memcpy(resp, buf + SMC_IO_HEADER_LENGTH, *resp_len);
        if (recv)
            *recv = rm_proto_from_smc(scrm_get_u32le(buf));
    } else if (st == STATUS_BUFFER_TOO_SMALL && ret > SMC_IO_HEADER_LENGTH + cap) {
        *resp_len = ret - SMC_IO_HEADER_LENGTH;
    }
    if (st == STATUS_NO_MEDIA) {
        scrm_mutex_lock(&c->r->lock);
        c->removed = true;
        scrm_mutex_unlock(&c->r->lock);
    }
    free(buf);
    return rc;
}

scard_rc rm_transmit(struct rm *rm, uint64_t card, uint32_t send_protocol, const uint8_t *apdu,
                     size_t apdu_len, uint8_t *resp, size_t *resp_len, uint32_t *recv_protocol)
{
    if (!apdu || !apdu_len || !resp_len || (!resp && *resp_len))
        return SCARD_E_INVALID_PARAMETER;
    struct rm_conn *c = conn_get(rm, card);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    scard_rc rc = conn_enter(c, true, UINT64_MAX);
    if (!rc) {
        uint32_t proto = 0;
        unsigned op = RM_OP_TRANSMIT;
        rc = send_protocol_of(c, send_protocol, &proto, &op);
        if (!rc)
            rc = do_transmit(c, proto, op, apdu, apdu_len, resp, resp_len, recv_protocol);
        conn_leave(c);
    }
    conn_put(c);
    return rc;
}

/* Map a control code to a libsmc vendor IOCTL, or 0 if it may not be sent. */
static uint32_t control_code(uint32_t code)
{
    uint32_t fn = code & 0xFFFFu;
    if ((code & 0xFFFF0000u) == PCSC_CTL_BASE &&
        ((fn >= SMC_IOCTL_VENDOR_FIRST && fn <= SMC_IOCTL_VENDOR_LAST) ||
         code == PCSC_CTL_BASE + SMC_IOCTL_FUNCTION(IOCTL_SMARTCARD_GET_FEATURE_REQUEST)))
        code = SMC_CTL_CODE(fn);
    /* the other pcsc-lite codes (SCARD_CTL_CODE(1), reader features such as 0x42330012) go to
     * the driver's vendor slot as they are */
    if (SMC_IOCTL_IS_VENDOR(code) || SMC_IOCTL_IS_PCSC_VENDOR(code) ||
        code == IOCTL_SMARTCARD_GET_FEATURE_REQUEST)
        return code;
    return 0;
}

bool rm_card_park_if_busy(struct rm *rm, uint64_t card, struct rm_idle_wait *w,
                          void (*fn)(struct rm_idle_wait *w))
{
    struct rm_reader *r = NULL;
    scrm_mutex_lock(&rm->lock);
    struct rm_conn *c = table_find_locked(rm, card);
    if (c) {
        r = c->r;
        rm_reader_ref_locked(r);
    }
    scrm_mutex_unlock(&rm->lock);
    if (!r)
        return false;
    if (!rm_reader_queue_busy(r)) {
        rm_reader_unref(r);
        return false;
    }
    return rm_reader_park(r, w, fn);
}

bool rm_card_reader_name(struct rm *rm, uint64_t card, char *name, size_t cap)
{
    struct rm_conn *c = conn_get(rm, card);
    if (!c)
        return false;
    snprintf(name, cap, "%s", c->r->name);
    conn_put(c);
    return true;
}

bool rm_control_privileged(struct rm *rm, uint64_t card, uint32_t code)
{
    uint32_t ioctl = control_code(code);
    struct rm_conn *c = ioctl ? conn_get(rm, card) : NULL;
    if (!c)
        return false;
    bool privileged = smc_ioctl_privileged(c->r->h, ioctl);
    conn_put(c);
    return privileged;
}

scard_rc rm_control(struct rm *rm, uint64_t card, uint32_t code, const void *in, size_t in_len,
                    void *out, size_t out_cap, size_t *out_len)
{
    if ((!in && in_len) || (!out && out_cap))
        return SCARD_E_INVALID_PARAMETER;
    uint32_t ioctl = control_code(code);
    struct rm_conn *c = conn_get(rm, card);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    scard_rc rc = SCARD_E_UNSUPPORTED_FEATURE;
    if (ioctl) {
        rc = conn_enter(c, true, UINT64_MAX);
        if (!rc) {
            size_t ret = 0;
            smc_status st = rm_ioctl(c->r, ioctl, in, in_len, out, out_cap, &ret);
            rc = rm_scard_from_status(st, RM_OP_VENDOR);
            if (out_len)
                *out_len = ret;
            conn_leave(c);
        }
    }
    conn_put(c);
    return rc;
}

/* The reader name as SCARD_ATTR_DEVICE_*_NAME_A / _W. Returns false for other attributes. */
static bool name_attr(const struct rm_reader *r, uint32_t attr, uint8_t *out, size_t cap,
                      size_t *len, uint32_t *rc)
{
    bool wide =
        attr == SCARD_ATTR_DEVICE_FRIENDLY_NAME_W || attr == SCARD_ATTR_DEVICE_SYSTEM_NAME_W;
    if (!wide && attr != SCARD_ATTR_DEVICE_FRIENDLY_NAME_A &&
        attr != SCARD_ATTR_DEVICE_SYSTEM_NAME_A)
        return false;
    size_t n = strlen(r->name) + 1;
    *len = wide ? 2 * n : n;
    if (!out || cap < *len) {
        *rc = SCARD_E_INSUFFICIENT_BUFFER;
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (wide) {
            out[2 * i] = (uint8_t)r->name[i];
            out[2 * i + 1] = 0;
        } else {
            out[i] = (uint8_t)r->name[i];
        }
    }
    *rc = SCARD_S_SUCCESS;
    return true;
}

scard_rc rm_get_attrib(struct rm *rm, uint64_t card, uint32_t attr, void *out, size_t out_cap,
                       size_t *out_len)
{
    if ((!out && out_cap) || !out_len)
        return SCARD_E_INVALID_PARAMETER;
    struct rm_conn *c = conn_get(rm, card);
    if (!c)
        return SCARD_E_INVALID_HANDLE;
    scard_rc rc = conn_enter(c, true, UINT64_MAX);
    if (!rc) {
        if (!name_attr(c->r, attr, out, out_cap, out_len, &rc)) {
            smc_status st = rm_get_attr(c->r, attr, out, out_cap, out_len);
            rc = rm_scard_from_status(st, RM_OP_ATTRIB);
        }
        conn_leave(c);
    }
    conn_put(c);
    return rc;
}

scard_rc rm_set_attrib(struct rm *rm, uint64_t card, uint32_t attr, const void *in, size_t len)
{
    if ((!in && len) || len > 65536)
        return SCARD_E_INVALID_PARAMETER;
    uint8_t *buf = malloc(4 + len);
    if (!buf)
        return SCARD_E_NO_MEMORY;
    scrm_put_u32le(buf, attr);
    if (len)
        memcpy(buf + 4, in, len);
    struct rm_conn *c = conn_get(rm, card);
    scard_rc rc = SCARD_E_INVALID_HANDLE;
    if (c) {
        rc = conn_enter(c, true, UINT64_MAX);
        if (!rc) {
            smc_status st =
                rm_ioctl(c->r, IOCTL_SMARTCARD_SET_ATTRIBUTE, buf, 4 + len, NULL, 0, NULL);
            rc = rm_scard_from_status(st, RM_OP_ATTRIB);
            conn_leave(c);
        }
    }
    if (c)
        conn_put(c);
    free(buf);
    return rc;
}

/* ---- owners ---- */

void rm_cancel_waits(struct rm *rm, uint64_t owner)
{
    scrm_mutex_lock(&rm->lock);
    for (struct rm_reader *r = rm->all; r; r = r->all_next) {
        scrm_mutex_lock(&r->lock);
        bool hit = false;
        for (struct rm_waiter *w = r->waiters; w; w = w->next) {
            if (w->owner == owner) {
                w->cancelled = true;
                hit = true;
            }
        }
        if (hit)
            scrm_cond_broadcast(&r->cond);
        scrm_mutex_unlock(&r->lock);
    }
    scrm_mutex_unlock(&rm->lock);
}

/* Ids of every handle of an owner (malloc'd). */
static uint64_t *owner_handles(struct rm *rm, uint64_t owner, size_t *n)
{
    *n = 0;
    scrm_mutex_lock(&rm->lock);
    uint64_t *ids = rm->n_conns ? calloc(rm->n_conns, sizeof(*ids)) : NULL;
    for (size_t b = 0; ids && b < rm->conn_buckets; b++)
        for (struct rm_conn *c = rm->conn_tab[b]; c; c = c->hnext)
            if (c->owner == owner)
                ids[(*n)++] = c->id;
    scrm_mutex_unlock(&rm->lock);
    return ids;
}

int rm_owner_gone(struct rm *rm, uint64_t owner)
{
    rm_cancel_waits(rm, owner);
    size_t n = 0;
    uint64_t *ids = owner_handles(rm, owner, &n);
    int closed = 0;
    bool busy = false;
    for (size_t i = 0; i < n; i++) {
        struct rm_conn *c = conn_get(rm, ids[i]);
        if (!c)
            continue;
        scrm_mutex_lock(&c->r->lock);
        bool other_tx = c->r->tx_owner && c->r->tx_owner != c;
        scrm_mutex_unlock(&c->r->lock);
        conn_put(c);
        uint32_t disp = other_tx ? SCARD_LEAVE_CARD : SCARD_RESET_CARD;
        scard_rc rc = rm_disconnect(rm, ids[i], disp);
        if (rc == RM_TX_BUSY) /* another handle took the transaction meanwhile: leave the card */
            rc = rm_disconnect(rm, ids[i], SCARD_LEAVE_CARD);
        if (rc == RM_READER_BUSY) { /* the rest when that reader is free (nothing done here) */
            busy = true;
            break;
        }
        if (rc != SCARD_E_INVALID_HANDLE)
            closed++;
    }
    free(ids);
    if (closed)
        log_debug(rm, "owner %llu gone: %d handle(s) closed", (unsigned long long)owner, closed);
    return busy ? -1 : closed;
}

/* ---- used by the monitor and by rm_free ---- */

void rm_conns_mark_removed_locked(struct rm_reader *r) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    for (struct rm_conn *c = r->conns; c; c = c->rnext)
        c->removed = true;
}

void rm_conns_free_all(struct rm *rm)
{
    for (size_t b = 0; b < rm->conn_buckets; b++) {
        while (rm->conn_tab[b]) {
            struct rm_conn *c = rm->conn_tab[b];
            rm->conn_tab[b] = c->hnext;
            detach(c, false);
            rm_reader_unref(c->r);
            free(c);
        }
    }
    free(rm->conn_tab);
    rm->conn_tab = NULL;
    rm->conn_buckets = rm->n_conns = 0;
}
