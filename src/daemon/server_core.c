/*
 * The transport-independent half of scrmd's commands: what a card request does on the resource
 * manager for one session, whatever protocol it arrived in (scrm's own in server_cmds.c,
 * pcsc-lite's in server_pcsclite.c). Each front end decodes its message, calls one of these, and
 * encodes the result; sharing, transactions and events live in the rm, the per-connection handle
 * table and the quotas here, so no front end has a copy of them.
 *
 * Card handles: a session gives each rm card a random wire handle of its own (idmap), drawn below
 * a limit the front end chooses (scrm: 63 bits; pcsc-lite: 31 bits, since its hCard is an int32).
 * A handle is only looked up in the session that made it, so another connection's handle is
 * SCARD_E_INVALID_HANDLE before the rm sees it. Only the thread executing the session's current
 * request touches the table (see server_internal.h).
 */
#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/server_internal.h"
#include "rm/rm.h"

bool srv_core_has_card(struct session *s, uint64_t handle)
{
    return idmap_get(&s->cards, handle, NULL);
}

static bool card_of(struct session *s, uint64_t handle, uint64_t *card)
{
    return idmap_get(&s->cards, handle, card);
}

uint32_t srv_core_connect(struct session *s, const char *reader, uint32_t share, uint32_t protocols,
                          uint64_t handle_max, uint64_t *handle, uint32_t *protocol)
{
    uint64_t card = 0, h;
    uint32_t rc = SCARD_E_NO_MEMORY;

    *handle = 0;
    *protocol = 0;
    if (!s->srv->max_cards || s->cards.count < s->srv->max_cards)
        rc = rm_connect(s->srv->rm, s->id, reader, share, protocols, &card, protocol);
    if (rc != SCARD_S_SUCCESS) {
        *protocol = 0;
        return rc;
    }
    do {
        h = idmap_random_id();
        if (handle_max)
            h %= handle_max;
    } while (h == 0 || idmap_get(&s->cards, h, NULL));
    if (idmap_put(&s->cards, h, card) < 0) {
        scard_rc drop = rm_disconnect(s->srv->rm, card, SCARD_LEAVE_CARD);
        if (drop != SCARD_S_SUCCESS)
            log_warn(ipc,
                     "client %" PRIu64 ": dropping card handle after an allocation failure: %s",
                     s->id, scard_code_name(drop));
        *protocol = 0;
        return SCARD_E_NO_MEMORY;
    }
    *handle = h;
    return SCARD_S_SUCCESS;
}

uint32_t srv_core_reconnect(struct session *s, uint64_t handle, uint32_t share, uint32_t protocols,
                            uint32_t init, uint32_t *protocol)
{
    uint64_t card;
    if (!card_of(s, handle, &card))
        return SCARD_E_INVALID_HANDLE;
    return rm_reconnect(s->srv->rm, card, share, protocols, init, protocol);
}

uint32_t srv_core_disconnect(struct session *s, uint64_t handle, uint32_t disposition)
{
    uint64_t card;
    uint32_t rc;
    if (!card_of(s, handle, &card))
        return SCARD_E_INVALID_HANDLE;
    rc = rm_disconnect(s->srv->rm, card, disposition);
    /* The rm dropped the handle, except for a bad disposition or a disposition that has to wait
     * for another handle's transaction (RM_TX_BUSY: the client sends it again) or for the reader
     * (RM_READER_BUSY: the request runs again). */
    if (rc != SCARD_E_INVALID_VALUE && rc != RM_TX_BUSY && rc != RM_READER_BUSY)
        idmap_del(&s->cards, handle);
    return rc;
}

uint32_t srv_core_begin_transaction(struct session *s, uint64_t handle)
{
    uint64_t card;
    if (!card_of(s, handle, &card))
        return SCARD_E_INVALID_HANDLE;
    return rm_begin_transaction(s->srv->rm, card, RM_INFINITE);
}

uint32_t srv_core_end_transaction(struct session *s, uint64_t handle, uint32_t disposition)
{
    uint64_t card;
    if (!card_of(s, handle, &card))
        return SCARD_E_INVALID_HANDLE;
    return rm_end_transaction(s->srv->rm, card, disposition);
}

uint32_t srv_core_status(struct session *s, uint64_t handle, struct rm_card_status *st)
{
    uint64_t card;
    memset(st, 0, sizeof *st);
    if (!card_of(s, handle, &card))
        return SCARD_E_INVALID_HANDLE;
    return rm_status(s->srv->rm, card, st);
}

uint32_t srv_core_transmit(struct session *s, uint64_t handle, uint32_t send_protocol,
                           const uint8_t *apdu, size_t apdu_len, uint8_t *resp, size_t resp_cap,
                           size_t recv_max, size_t *resp_len, uint32_t *recv_protocol)
{
    uint64_t card;
    uint32_t rc;

    *resp_len = resp_cap;
    if (!card_of(s, handle, &card)) {
        *resp_len = 0;
        return SCARD_E_INVALID_HANDLE;
    }
    uint64_t t0 = srv_spy_active() ? scrm_now_ns() : 0;
    rc =
        rm_transmit(s->srv->rm, card, send_protocol, apdu, apdu_len, resp, resp_len, recv_protocol);
    if (t0 && rc != RM_READER_BUSY) /* a parked APDU is shown when it runs */
        srv_spy_apdu(s, card, apdu, apdu_len, resp, rc == SCARD_S_SUCCESS ? *resp_len : 0, rc,
                     (scrm_now_ns() - t0) / 1000u);
    if (rc == SCARD_S_SUCCESS && *resp_len > recv_max)
        rc = SCARD_E_INSUFFICIENT_BUFFER; /* the card answered; the client's buffer is short */
    if (rc != SCARD_S_SUCCESS && rc != SCARD_E_INSUFFICIENT_BUFFER)
        *resp_len = 0;
    return rc;
}

uint32_t srv_core_control(struct session *s, uint64_t handle, uint32_t code, const void *in,
                          size_t in_len, void *out, size_t out_cap, size_t *out_len)
{
    uint64_t card;
    uint32_t rc;

    *out_len = 0;
    if (!card_of(s, handle, &card))
        return SCARD_E_INVALID_HANDLE;
    /* A simulator's insert / remove / fault / radio controls act for everyone (server_auth.c). */
    if (rm_control_privileged(s->srv->rm, card, code)) {
        rc = srv_require_privileged(s, "a privileged control code (simulator)");
        if (rc != SCARD_S_SUCCESS)
            return rc;
    }
    rc = rm_control(s->srv->rm, card, code, in, in_len, out, out_cap, out_len);
    if (rc == SCARD_S_SUCCESS && *out_len > out_cap)
        rc = SCARD_F_INTERNAL_ERROR;
    if (rc != SCARD_S_SUCCESS && rc != SCARD_E_INSUFFICIENT_BUFFER)
        *out_len = 0;
    return rc;
}

uint32_t srv_core_get_attrib(struct session *s, uint64_t handle, uint32_t attr, void *out,
                             size_t out_cap, size_t *out_len)
{
    uint64_t card;
    uint32_t rc;

    *out_len = 0;
    if (!card_of(s, handle, &card))
        return SCARD_E_INVALID_HANDLE;
    rc = rm_get_attrib(s->srv->rm, card, attr, out, out_cap, out_len);
    if (rc == SCARD_S_SUCCESS && *out_len > out_cap)
        rc = SCARD_F_INTERNAL_ERROR;
    if (rc != SCARD_S_SUCCESS && rc != SCARD_E_INSUFFICIENT_BUFFER)
        *out_len = 0;
    return rc;
}

uint32_t srv_core_set_attrib(struct session *s, uint64_t handle, uint32_t attr, const void *in,
                             size_t len)
{
    uint64_t card;
    if (!card_of(s, handle, &card))
        return SCARD_E_INVALID_HANDLE;
    return rm_set_attrib(s->srv->rm, card, attr, in, len);
}

void srv_core_close_all(struct session *s)
{
    /* What scrm's own protocol does when a client goes: each handle is reset (left alone when
     * another client holds the reader's transaction) and the context's transactions end. */
    int n = rm_owner_gone(s->srv->rm, s->id);
    if (n > 0)
        log_debug(ipc, "client %llu: context released, %d card handle(s) reset and closed",
                  (unsigned long long)s->id, n);
    else if (n < 0) /* a reader busy with another request: its handles are reset at teardown */
        log_debug(ipc, "client %llu: context released, handles on '%s' closed when it leaves",
                  (unsigned long long)s->id, rm_thread_busy_reader());
    idmap_free(&s->cards);
}
