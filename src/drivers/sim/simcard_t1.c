/*
 * T=1 on the card side (ISO/IEC 7816-3 clause 11).
 *
 * Bytes are collected into a block (NAD PCB LEN INF EDC; its length follows from LEN) and each
 * complete block is handled at once:
 *   - bad EDC → R-block with N(R) = the expected N(S) and error 1; bad framing (LEN FF, LEN over
 *     IFSC, RFU bits, S-block of the wrong length) → the same with error 2. When the card's last
 *     block was an S(request) it resends that instead (rule 7.3).
 *   - I-block with the expected N(S): its INF is appended to the command; with M set the card
 *     acknowledges with R(N(R)); without M the APDU runs and the response goes out as I-blocks of
 *     at most IFSD bytes (chained with M). An unexpected N(S) gets R(error 2).
 *   - R-block: during the card's chaining, N(R) = the next N(S) acknowledges (next piece) and
 *     N(R) = the last N(S) asks for that I-block again (also after an S-block in between); after
 *     the last I-block, N(R) = its N(S) asks for it again; after an R-block of the card that
 *     R-block is repeated; otherwise the card is missing the reader's I-block and answers
 *     R(N(R), error 2) so that the reader sends it again.
 *   - S(RESYNCH request) → N(S) = N(R) = 0, IFSD 32, IFSC from the ATR, everything pending
 *     dropped, S(RESYNCH response). S(IFS request) → new IFSD, S(IFS response) echoing it.
 *     S(ABORT request) → chains dropped, S(ABORT response). S(WTX response) and S(IFS response)
 *     are accepted only as the answer to the card's own request (WTX and IFS faults), with the
 *     same INF; then the response goes out.
 * Faults: LOSE drops received blocks before any check; BAD_EDC corrupts the EDC of the block on
 * the wire but keeps the good copy for a resend; GARBAGE replaces the block on the wire by random
 * bytes, the block still counting as sent.
 */
#include "drivers/sim/simcard_priv.h"

#include <string.h>

#define PCB_M         0x20
#define S_RESYNCH_REQ 0xC0
#define S_IFS_REQ     0xC1
#define S_ABORT_REQ   0xC2
#define S_WTX_REQ     0xC3
#define S_RESPONSE    0x20
#define R_ERR_EDC     0x01
#define R_ERR_OTHER   0x02

uint8_t sc_lrc(const uint8_t *data, size_t len)
{
    uint8_t x = 0;
    for (size_t i = 0; i < len; i++)
        x ^= data[i];
    return x;
}

/* CRC-16, polynomial 0x1021 processed LSB first (0x8408), initial FFFF, no final XOR. The
 * value is sent high byte first. See simcard.h. */
uint16_t sc_crc(const uint8_t *data, size_t len)
{
    uint16_t v = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        v ^= data[i];
        for (int k = 0; k < 8; k++)
            v = (v & 1) ? (uint16_t)((v >> 1) ^ 0x8408) : (uint16_t)(v >> 1);
    }
    return v;
}

static size_t edc_len(const struct simcard *c)
{
    return c->cfg.crc ? 2 : 1;
}

void sc_t1_reset(struct simcard *c)
{
    memset(&c->t1, 0, sizeof(c->t1));
    c->t1.ifsc = c->cfg.ifsc;
    c->t1.ifsd = 32;
}

/* Put the block last[0..last_len) on the wire, applying the BAD_EDC and GARBAGE faults. */
static void transmit_last(struct simcard *c)
{
    struct sc_t1 *t = &c->t1;
    if (c->fault.garbage) {
        sc_send_garbage(c, c->fault.garbage);
        c->fault.garbage = 0;
        return;
    }
    if (c->fault.bad_edc) {
        uint8_t copy[sizeof(t->last)];
        memcpy(copy, t->last, t->last_len);
        copy[t->last_len - 1] ^= 0x5A;
        c->fault.bad_edc--;
        sc_send(c, copy, t->last_len);
        return;
    }
    sc_send(c, t->last, t->last_len);
}

/* Build a block, remember it as the last one sent and transmit it. */
static void send_block(struct simcard *c, uint8_t pcb, const uint8_t *inf, size_t len,
                       enum sc_t1_last kind)
{
    struct sc_t1 *t = &c->t1;
    uint8_t *b = t->last;
    b[0] = t->nad;
    b[1] = pcb;
    b[2] = (uint8_t)len;
    if (len)
        memcpy(b + 3, inf, len);
    size_t n = 3 + len;
    if (c->cfg.crc) {
        uint16_t crc = sc_crc(b, n);
        b[n++] = (uint8_t)(crc >> 8);
        b[n++] = (uint8_t)crc;
    } else {
        b[n] = sc_lrc(b, n);
        n++;
    }
    t->last_len = n;
    t->last_kind = kind;
    transmit_last(c);
}

static void send_r(struct simcard *c, uint8_t err)
{
    send_block(c, (uint8_t)(0x80 | (c->t1.nr << 4) | err), NULL, 0, T1_LAST_R);
}

static void send_s(struct simcard *c, uint8_t pcb, const uint8_t *inf, size_t len)
{
    send_block(c, pcb, inf, len, (pcb & S_RESPONSE) ? T1_LAST_S_RESP : T1_LAST_S_REQ);
}

/* Send the next piece of the response in c->rsp as an I-block. */
static void send_next_piece(struct simcard *c)
{
    struct sc_t1 *t = &c->t1;
    size_t n = c->rsp_len - t->rsp_pos;
    if (n > t->ifsd)
        n = t->ifsd;
    if (c->fault.chain && n > c->fault.chain)
        n = c->fault.chain;
    bool more = t->rsp_pos + n < c->rsp_len;
    uint8_t pcb = (uint8_t)((t->ns << 6) | (more ? PCB_M : 0));
    send_block(c, pcb, c->rsp + t->rsp_pos, n, T1_LAST_I);
    memcpy(t->last_i, t->last, t->last_len);
    t->last_i_len = t->last_len;
    t->last_more = more;
    t->last_ns = t->ns;
    t->ns ^= 1;
    t->rsp_pos += n;
    t->sending = more;
}

/* The response is ready: an S(request) of a fault goes first, then the I-block(s). */
static void start_answer(struct simcard *c)
{
    struct sc_t1 *t = &c->t1;
    t->rsp_pos = 0;
    if (c->fault.wtx || c->fault.ifs) {
        bool wtx = c->fault.wtx != 0;
        t->sreq_pcb = wtx ? S_WTX_REQ : S_IFS_REQ;
        t->sreq_inf = (uint8_t)(wtx ? c->fault.wtx : c->fault.ifs);
        if (wtx)
            c->fault.wtx = 0;
        else
            c->fault.ifs = 0;
        send_s(c, t->sreq_pcb, &t->sreq_inf, 1);
        return;
    }
    send_next_piece(c);
}

static void resend_last(struct simcard *c)
{
    transmit_last(c);
}

/* An invalid block: repeat a pending S(request), otherwise ask with an R-block. */
static void bad_block(struct simcard *c, uint8_t err)
{
    if (c->t1.last_kind == T1_LAST_S_REQ)
        resend_last(c);
    else
        send_r(c, err);
}

static void on_i_block(struct simcard *c, uint8_t pcb, const uint8_t *inf, size_t len)
{
    struct sc_t1 *t = &c->t1;
    if (t->last_kind == T1_LAST_S_REQ || t->sending || ((pcb >> 6) & 1) != t->nr) {
        bad_block(c, R_ERR_OTHER);
        return;
    }
    t->nr ^= 1;
    if (c->cmd_len + len > SC_APDU_MAX)
        c->cmd_overflow = true;
    if (!c->cmd_overflow && len) {
        memcpy(c->cmd + c->cmd_len, inf, len);
        c->cmd_len += len;
    }
    if (pcb & PCB_M) {
        send_r(c, 0);
        return;
    }
    if (c->cmd_overflow) {
        c->rsp[0] = 0x67;
        c->rsp[1] = 0x00;
        c->rsp_len = 2;
    } else {
        sc_run_apdu(c, c->cmd, c->cmd_len);
    }
    c->cmd_len = 0;
    c->cmd_overflow = false;
    start_answer(c);
}

/* Send the last I-block again (it may have been followed by an S-block of the card). */
static void resend_i(struct simcard *c)
{
    struct sc_t1 *t = &c->t1;
    memcpy(t->last, t->last_i, t->last_i_len);
    t->last_len = t->last_i_len;
    t->last_kind = T1_LAST_I;
    transmit_last(c);
}

static void on_r_block(struct simcard *c, uint8_t pcb)
{
    struct sc_t1 *t = &c->t1;
    uint8_t n_r = (pcb >> 4) & 1;
    bool sreq = t->last_kind == T1_LAST_S_REQ;
    bool had_i = t->sending || t->last_kind == T1_LAST_I;
    if (!sreq && t->sending && n_r != t->last_ns)
        send_next_piece(c); /* acknowledgement of a chained I-block */
    else if (!sreq && had_i && n_r == t->last_ns)
        resend_i(c);
    else if (sreq || t->last_kind == T1_LAST_R)
        resend_last(c);
    else
        send_r(c, R_ERR_OTHER); /* the card misses the reader's I-block */
}

static void resynch(struct simcard *c)
{
    uint8_t nad = c->t1.nad;
    sc_t1_reset(c);
    c->t1.nad = nad;
    c->cmd_len = 0;
    c->cmd_overflow = false;
    send_s(c, S_RESYNCH_REQ | S_RESPONSE, NULL, 0);
}

/* The reader answered the card's S(request): adopt it and send the waiting response. */
static void on_s_response_to_card(struct simcard *c, uint8_t pcb, const uint8_t *inf, size_t len)
{
    struct sc_t1 *t = &c->t1;
    if (t->last_kind != T1_LAST_S_REQ) {
        send_r(c, R_ERR_OTHER);
        return;
    }
    if (pcb != (t->sreq_pcb | S_RESPONSE) || len != 1 || inf[0] != t->sreq_inf) {
        resend_last(c);
        return;
    }
    if (t->sreq_pcb == S_IFS_REQ)
        t->ifsc = t->sreq_inf;
    send_next_piece(c);
}

static void on_s_block(struct simcard *c, uint8_t pcb, const uint8_t *inf, size_t len)
{
    struct sc_t1 *t = &c->t1;
    if (pcb == S_RESYNCH_REQ && len == 0) {
        resynch(c);
    } else if (pcb == S_ABORT_REQ && len == 0) {
        t->sending = false;
        c->cmd_len = 0;
        c->cmd_overflow = false;
        send_s(c, S_ABORT_REQ | S_RESPONSE, NULL, 0);
    } else if (pcb & S_RESPONSE) {
        on_s_response_to_card(c, pcb, inf, len);
    } else if (t->last_kind == T1_LAST_S_REQ) {
        resend_last(c);
    } else if (pcb == S_IFS_REQ && len == 1 && inf[0] >= 1 && inf[0] <= 254) {
        t->ifsd = inf[0];
        send_s(c, S_IFS_REQ | S_RESPONSE, inf, 1);
    } else {
        send_r(c, R_ERR_OTHER);
    }
}

/* Framing rules beyond the EDC: LEN, RFU bits of the PCB. */
static bool framing_ok(const struct simcard *c, uint8_t pcb, size_t len)
{
    if (len == 0xFF)
        return false;
    if ((pcb & 0x80) == 0)
        return (pcb & 0x1F) == 0 && len <= c->t1.ifsc;
    if ((pcb & 0xC0) == 0x80)
        return len == 0 && (pcb & 0x20) == 0 && (pcb & 0x0F) <= 2;
    return len <= 1 && (pcb & 0x1C) == 0;
}

static void on_block(struct simcard *c, const uint8_t *b, size_t n)
{
    size_t e = edc_len(c);
    if (c->fault.lose) {
        c->fault.lose--;
        return;
    }
    bool edc_ok = c->cfg.crc ? sc_crc(b, n - e) == (uint16_t)(b[n - 2] << 8 | b[n - 1])
                             : sc_lrc(b, n - e) == b[n - 1];
    if (!edc_ok) {
        bad_block(c, R_ERR_EDC);
        return;
    }
    uint8_t pcb = b[1];
    size_t len = b[2];
    if (!framing_ok(c, pcb, len)) {
        bad_block(c, R_ERR_OTHER);
        return;
    }
    c->t1.nad = (uint8_t)(((b[0] & 0x07) << 4) | ((b[0] >> 4) & 0x07));
    if ((pcb & 0x80) == 0)
        on_i_block(c, pcb, b + 3, len);
    else if ((pcb & 0xC0) == 0x80)
        on_r_block(c, pcb);
    else
        on_s_block(c, pcb, b + 3, len);
}

void sc_t1_byte(struct simcard *c, uint8_t b)
{
    c->in[c->in_len++] = b;
    if (c->in_len < 3)
        return;
    size_t total = 3 + (size_t)c->in[2] + edc_len(c);
    if (c->in_len == total) {
        c->in_len = 0;
        on_block(c, c->in, total);
    }
}
