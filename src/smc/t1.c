/*
 * T=1, the block transmission protocol (ISO/IEC 7816-3 §11), reader side.
 *
 * A block is NAD PCB LEN INF[LEN] EDC. PCB says the kind:
 *
 *   I-block  0 N(S) M 00000         information; M = more blocks follow (chaining)
 *   R-block  1 0 0 N(R) 00ee        receive ready: acknowledges a chained I-block, or with ee = 1
 *                                   (EDC error) / 2 (other error) asks for a retransmission
 *   S-block  1 1 r 000tt            supervisory; r = response; tt = 0 RESYNCH, 1 IFS, 2 ABORT,
 *                                   3 WTX
 *
 * smc_t1_transceive() runs one APDU as a small state machine over struct t1_xfer. It sends the
 * APDU in I-blocks of at most IFSC bytes; while M is set each must be acknowledged by an R-block
 * whose N(R) names the next block. The card's answer is an I-block with the expected N(S); if the
 * card chains, each piece is acknowledged with R(N(R)). S-requests from the card are answered in
 * between: WTX (the multiplier stretches the next wait only), IFS (the new IFSC applies to the
 * next I-blocks), ABORT (answered, then the exchange fails).
 *
 * Error recovery: a block that times out, has a bad EDC or breaks a rule is answered by an
 * R-block with N(R) = the N(S) we expect and ee = 1 (EDC) or 2 (other); an R-block from the card
 * that asks for our last block makes us send it again. After three such recovery blocks without
 * progress the engine sends S(RESYNCH request) (up to three times); whether or not the card
 * answers, the APDU fails (STATUS_DEVICE_PROTOCOL_ERROR, or STATUS_IO_TIMEOUT when the card stayed
 * silent throughout), since it may or may not have been executed. A successful resynch resets
 * N(S), N(R), IFSC and IFSD, and a previously negotiated IFSD is announced again.
 *
 * EDC: LRC = XOR of NAD..INF (1 byte), or CRC (2 bytes). ISO/IEC 7816-3 points to the ISO 3309
 * CRC; what reader stacks actually send (OpenCT proto-t1, and CCID's copy of it, hence the
 * readers and cards tested against them) is CRC-16 with polynomial x^16 + x^12 + x^5 + 1
 * processed LSB first (reflected, 0x8408), preset FFFF, no final complement, high byte of the
 * register sent first ("CRC-16/MCRF4XX": "123456789" gives 6F91, sent 6F 91). We do the same.
 *
 * The card is hostile input: LEN is checked against IFSD before anything is stored, every loop
 * has a bound (recovery tries, consecutive S-requests, total blocks per APDU, total response
 * size), and the response never goes past the caller's buffer (an oversized response is read to
 * the end and reported as STATUS_BUFFER_TOO_SMALL).
 */
#include <string.h>

#include "common/log.h"
#include "smc/proto_internal.h"
#include "smc/protocol.h"

#define PCB_I_NS    0x40u
#define PCB_I_MORE  0x20u
#define PCB_R       0x80u
#define PCB_R_NR    0x10u
#define PCB_S       0xC0u
#define PCB_S_RESP  0x20u
#define S_RESYNCH   0x00u
#define S_IFS       0x01u
#define S_ABORT     0x02u
#define S_WTX       0x03u
#define R_ERR_EDC   0x01u
#define R_ERR_OTHER 0x02u

#define T1_BLOCK_MAX (3u + 255u + 2u) /* room for any LEN the card may claim */
#define T1_TRIES     3u               /* recovery blocks before S(RESYNCH) */
#define T1_S_TRIES   3u               /* attempts of one S(request) */
#define T1_MAX_S_ROW 512u             /* card S-requests in a row without progress */
#define T1_MAX_APDU  65544u           /* 4 + 3 + 65 535 + 2: the longest extended APDU */
#define T1_MAX_RESP  65538u           /* 65 536 data bytes + SW1 SW2 */
#define T1_MAX_STEPS (2u * T1_MAX_APDU + 1024u)

enum rx_err { RX_OK, RX_EDC, RX_OTHER, RX_TIMEOUT };

struct t1_block {
    uint8_t pcb;
    uint8_t len;
    const uint8_t *inf;
};

/* State of one smc_t1_transceive() call. */
struct t1_xfer {
    struct smc_t1 *t1;
    const struct smc_card_io *io;
    const uint8_t *apdu;
    size_t apdu_len;
    size_t off, chunk; /* INF of our current I-block: apdu[off .. off + chunk) */
    bool sending;      /* the card has not answered our last I-block yet */
    bool done;
    uint8_t *resp;
    size_t cap, stored, total;
    unsigned tries; /* recovery blocks since the last progress */
    unsigned s_row; /* S-requests from the card since the last progress */
    bool silent;    /* nothing at all received since the last progress */
    uint8_t tx[T1_BLOCK_MAX];
    size_t tx_len; /* last block sent */
    uint8_t rx[T1_BLOCK_MAX];
};

uint8_t smc_t1_lrc(const uint8_t *data, size_t len)
{
    uint8_t x = 0;
    for (size_t i = 0; i < len; i++)
        x ^= data[i];
    return x;
}

uint16_t smc_t1_crc(const uint8_t *data, size_t len)
{
    uint16_t v = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        v ^= data[i];
        for (int b = 0; b < 8; b++)
            v = (v & 1u) ? (uint16_t)((v >> 1) ^ 0x8408u) : (uint16_t)(v >> 1);
    }
    return v;
}

static size_t edc_len(const struct smc_t1 *t1)
{
    return (t1->edc & T1_CRC_CHECK) ? 2 : 1;
}

/* Build NAD PCB LEN INF EDC into out (T1_BLOCK_MAX bytes); returns the block length. */
static size_t t1_build(const struct smc_t1 *t1, uint8_t pcb, const uint8_t *inf, size_t n,
                       uint8_t *out)
{
    out[0] = t1->nad;
    out[1] = pcb;
    out[2] = (uint8_t)n;
    if (n)
        memcpy(out + 3, inf, n);
    size_t len = 3 + n;
    if (t1->edc & T1_CRC_CHECK) {
        uint16_t c = smc_t1_crc(out, len);
        out[len++] = (uint8_t)(c >> 8);
        out[len++] = (uint8_t)(c & 0xFF);
    } else {
        out[len] = smc_t1_lrc(out, len);
        len++;
    }
    return len;
}

static smc_status t1_send(struct smc_t1 *t1, const struct smc_card_io *io, const uint8_t *blk,
                          size_t len)
{
    t1->blocks_sent++;
    return smc__link_send(io, t1->inverse, blk, len);
}

/* Rules a block must follow beyond its EDC. */
static bool t1_block_valid(const struct smc_t1 *t1, const struct t1_block *b)
{
    if (!(b->pcb & 0x80))
        return b->len <= t1->ifsd;
    if ((b->pcb & 0xC0) == PCB_R)
        return b->len == 0 && !(b->pcb & 0x20);
    return (b->pcb & 0x1F) <= S_WTX;
}

/*
 * Receive one block into buf: the first byte within BWT (times a pending WTX, which is then
 * used up), the next ones within CWT. Link failures other than a timeout are returned; a timeout,
 * a bad EDC or an invalid block are reported in *err with STATUS_SUCCESS.
 */
static smc_status t1_recv(struct smc_t1 *t1, const struct smc_card_io *io, uint8_t *buf,
                          struct t1_block *b, enum rx_err *err)
{
    uint32_t first = t1->wtx ? smc__mul_sat(t1->bwt_us, t1->wtx) : t1->bwt_us;
    size_t got = 0, el = edc_len(t1);
    t1->wtx = 0;
    smc_status rc = smc__link_recv(io, t1->inverse, buf, 3, first, t1->cwt_us, &got);
    bool started = got > 0;
    if (rc == STATUS_SUCCESS)
        rc = smc__link_recv(io, t1->inverse, buf + 3, (size_t)buf[2] + el, t1->cwt_us, t1->cwt_us,
                            &got);
    if (rc == STATUS_IO_TIMEOUT) {
        *err = started ? RX_OTHER : RX_TIMEOUT;
        log_debug(proto, "T=1: %s", started ? "block incomplete (CWT)" : "no block (BWT)");
        return STATUS_SUCCESS;
    }
    if (rc)
        return rc;
    size_t n = 3 + (size_t)buf[2];
    bool edc_ok = el == 2 ? smc_t1_crc(buf, n) == (uint16_t)(buf[n] << 8 | buf[n + 1])
                          : smc_t1_lrc(buf, n) == buf[n];
    *b = (struct t1_block){.pcb = buf[1], .len = buf[2], .inf = buf + 3};
    *err = !edc_ok ? RX_EDC : t1_block_valid(t1, b) ? RX_OK : RX_OTHER;
    if (*err == RX_OK)
        t1->blocks_received++;
    else
        log_debug(proto, "T=1: bad block PCB %02X LEN %u (%s)", b->pcb, b->len,
                  *err == RX_EDC ? "EDC" : "invalid");
    return STATUS_SUCCESS;
}

/* ---- S-request exchanges started by the reader (IFS, RESYNCH) ---------------------------- */

/* Is b a valid S(WTX request)? */
static bool is_wtx_request(const struct t1_block *b)
{
    return b->pcb == (PCB_S | S_WTX) && b->len == 1 && b->inf[0] != 0;
}

/* Answer S(WTX request) with S(WTX response) and arm the multiplier for the next wait. */
static smc_status t1_answer_wtx(struct smc_t1 *t1, const struct smc_card_io *io,
                                const struct t1_block *b, uint8_t *out, size_t *out_len)
{
    uint8_t mult = b->inf[0];
    *out_len = t1_build(t1, PCB_S | PCB_S_RESP | S_WTX, &mult, 1, out);
    smc_status rc = t1_send(t1, io, out, *out_len);
    t1->wtx = mult;
    log_debug(proto, "T=1: WTX x%u", mult);
    return rc;
}

/* Wait for S(type response) echoing inf; answers WTX requests meanwhile. *matched on success. */
static smc_status t1_s_await(struct smc_t1 *t1, const struct smc_card_io *io, uint8_t type,
                             const uint8_t *inf, size_t n, bool *matched, bool *silent)
{
    uint8_t rx[T1_BLOCK_MAX], tx[T1_BLOCK_MAX];
    *matched = false;
    for (unsigned row = 0; row < T1_MAX_S_ROW; row++) {
        struct t1_block b;
        enum rx_err err;
        size_t tx_len;
        smc_status rc = t1_recv(t1, io, rx, &b, &err);
        if (rc || err == RX_TIMEOUT)
            return rc;
        *silent = false;
        if (err)
            return STATUS_SUCCESS;
        if (!is_wtx_request(&b)) {
            *matched = b.pcb == (PCB_S | PCB_S_RESP | type) && b.len == n &&
                       (n == 0 || memcmp(b.inf, inf, n) == 0);
            return STATUS_SUCCESS;
        }
        rc = t1_answer_wtx(t1, io, &b, tx, &tx_len);
        if (rc)
            return rc;
    }
    return STATUS_SUCCESS;
}

/* Send S(type request) with inf until the card answers the matching response (T1_S_TRIES). */
static smc_status t1_s_exchange(struct smc_t1 *t1, const struct smc_card_io *io, uint8_t type,
                                const uint8_t *inf, size_t n)
{
    uint8_t blk[T1_BLOCK_MAX];
    size_t len = t1_build(t1, PCB_S | type, inf, n, blk);
    bool silent = true, matched = false;
    for (unsigned tries = 0; tries < T1_S_TRIES && !matched; tries++) {
        if (tries)
            t1->retransmissions++;
        smc_status rc = t1_send(t1, io, blk, len);
        if (rc == STATUS_SUCCESS)
            rc = t1_s_await(t1, io, type, inf, n, &matched, &silent);
        if (rc)
            return rc;
    }
    if (matched)
        return STATUS_SUCCESS;
    return silent ? STATUS_IO_TIMEOUT : STATUS_DEVICE_PROTOCOL_ERROR;
}

smc_status smc_t1_negotiate_ifsd(struct smc_t1 *t1, const struct smc_card_io *io, uint8_t ifsd)
{
    if (!t1 || !io || ifsd == 0 || ifsd > T1_IFSD)
        return STATUS_INVALID_PARAMETER;
    smc_status rc = t1_s_exchange(t1, io, S_IFS, &ifsd, 1);
    t1->ifs_done = true; /* attempted: not repeated for every APDU */
    if (rc == STATUS_SUCCESS)
        t1->ifsd = ifsd;
    log_debug(proto, "T=1: IFSD %u %s", ifsd, rc ? "refused" : "accepted");
    return rc;
}

/* S(RESYNCH): on success N(S) = N(R) = 0, IFSC/IFSD back to their initial values, and an IFSD
 * negotiated before is announced again (best effort). */
static smc_status t1_resynch(struct smc_t1 *t1, const struct smc_card_io *io)
{
    uint8_t ifsd = t1->ifsd;
    t1->resynchs++;
    smc_status rc = t1_s_exchange(t1, io, S_RESYNCH, NULL, 0);
    if (rc)
        return rc;
    t1->ns = 0;
    t1->nr = 0;
    t1->ifsc = t1->ifsc_initial;
    t1->ifsd = T1_IFSD_DEFAULT;
    t1->wtx = 0;
    log_info(proto, "T=1: resynchronised");
    if (ifsd != T1_IFSD_DEFAULT && smc_t1_negotiate_ifsd(t1, io, ifsd) != STATUS_SUCCESS)
        log_info(proto, "T=1: IFSD %u refused after the resynchronisation; blocks stay at %u",
                 (unsigned)ifsd, (unsigned)T1_IFSD_DEFAULT);
    return STATUS_SUCCESS;
}

/* ---- The APDU exchange ------------------------------------------------------------------ */

static bool chain_pending(const struct t1_xfer *x)
{
    return x->off + x->chunk < x->apdu_len;
}

/* Send (or send again) our current I-block. */
static smc_status xfer_send_i(struct t1_xfer *x)
{
    uint8_t pcb = (uint8_t)((x->t1->ns ? PCB_I_NS : 0) | (chain_pending(x) ? PCB_I_MORE : 0));
    x->tx_len = t1_build(x->t1, pcb, x->apdu + x->off, x->chunk, x->tx);
    return t1_send(x->t1, x->io, x->tx, x->tx_len);
}

static smc_status xfer_send(struct t1_xfer *x, uint8_t pcb, const uint8_t *inf, size_t n)
{
    x->tx_len = t1_build(x->t1, pcb, inf, n, x->tx);
    return t1_send(x->t1, x->io, x->tx, x->tx_len);
}

static void xfer_progress(struct t1_xfer *x)
{
    x->tries = 0;
    x->s_row = 0;
    x->silent = true;
}

/* Recovery is exhausted: resynchronise, and fail the APDU either way. */
static smc_status xfer_give_up(struct t1_xfer *x)
{
    log_info(proto, "T=1: no valid block after %u tries; resynchronising", T1_TRIES);
    smc_status rc = t1_resynch(x->t1, x->io);
    if (rc == STATUS_NO_MEDIA)
        return rc;
    if (rc == STATUS_IO_TIMEOUT && x->silent)
        return STATUS_IO_TIMEOUT;
    return STATUS_DEVICE_PROTOCOL_ERROR;
}

/* A bad block or a timeout: ask for the expected block again with R(N(R), error). */
static smc_status xfer_on_error(struct t1_xfer *x, enum rx_err err)
{
    if (err != RX_TIMEOUT)
        x->silent = false;
    if (x->tries >= T1_TRIES)
        return xfer_give_up(x);
    x->tries++;
    x->t1->retransmissions++;
    uint8_t pcb =
        (uint8_t)(PCB_R | (x->t1->nr ? PCB_R_NR : 0) | (err == RX_EDC ? R_ERR_EDC : R_ERR_OTHER));
    return xfer_send(x, pcb, NULL, 0);
}

/* The card asks for our last block again. */
static smc_status xfer_retransmit(struct t1_xfer *x)
{
    x->silent = false;
    if (x->tries >= T1_TRIES)
        return xfer_give_up(x);
    x->tries++;
    x->t1->retransmissions++;
    if (x->sending)
        return xfer_send_i(x);
    return t1_send(x->t1, x->io, x->tx, x->tx_len);
}

/* Keep INF of a response block (or count it once the caller's buffer is full). */
static smc_status xfer_store(struct t1_xfer *x, const struct t1_block *b)
{
    if (x->total + b->len > T1_MAX_RESP) {
        log_info(proto, "T=1: card sends more than %u response bytes", T1_MAX_RESP);
        return STATUS_DEVICE_PROTOCOL_ERROR;
    }
    size_t room = x->cap - x->stored, k = b->len < room ? b->len : room;
    memcpy(x->resp + x->stored, b->inf, k);
    x->stored += k;
    x->total += b->len;
    return STATUS_SUCCESS;
}

static smc_status xfer_on_i(struct t1_xfer *x, const struct t1_block *b)
{
    struct smc_t1 *t1 = x->t1;
    uint8_t ns = (b->pcb & PCB_I_NS) ? 1 : 0;
    if ((x->sending && chain_pending(x)) || ns != t1->nr)
        return xfer_on_error(x, RX_OTHER);
    if (x->sending) { /* the answer acknowledges our last I-block */
        x->sending = false;
        t1->ns ^= 1u;
    }
    smc_status rc = xfer_store(x, b);
    if (rc)
        return rc;
    t1->nr ^= 1u;
    xfer_progress(x);
    if (!(b->pcb & PCB_I_MORE)) {
        x->done = true;
        return STATUS_SUCCESS;
    }
    return xfer_send(x, (uint8_t)(PCB_R | (t1->nr ? PCB_R_NR : 0)), NULL, 0);
}

static smc_status xfer_on_r(struct t1_xfer *x, const struct t1_block *b)
{
    struct smc_t1 *t1 = x->t1;
    uint8_t nr = (b->pcb & PCB_R_NR) ? 1 : 0;
    if (!x->sending)
        return xfer_retransmit(x);          /* card wants our last R-block / S-response again */
    if (chain_pending(x) && nr != t1->ns) { /* acknowledges the chained block */
        t1->ns ^= 1u;
        x->off += x->chunk;
        size_t left = x->apdu_len - x->off;
        x->chunk = left < t1->ifsc ? left : t1->ifsc;
        xfer_progress(x);
        return xfer_send_i(x);
    }
    if (nr == t1->ns)
        return xfer_retransmit(x);
    return xfer_on_error(x, RX_OTHER);
}

static smc_status xfer_on_s(struct t1_xfer *x, const struct t1_block *b)
{
    struct smc_t1 *t1 = x->t1;
    uint8_t type = b->pcb & 0x1F;
    x->silent = false;
    if (b->pcb & PCB_S_RESP)
        return xfer_on_error(x, RX_OTHER); /* we asked nothing */
    if (++x->s_row > T1_MAX_S_ROW) {
        log_info(proto, "T=1: more than %u S-requests in a row", T1_MAX_S_ROW);
        return STATUS_DEVICE_PROTOCOL_ERROR;
    }
    if (type == S_WTX && is_wtx_request(b))
        return t1_answer_wtx(t1, x->io, b, x->tx, &x->tx_len);
    if (type == S_IFS && b->len == 1 && b->inf[0] >= 1 && b->inf[0] <= SCARD_T1_MAX_IFS) {
        t1->ifsc = b->inf[0];
        log_debug(proto, "T=1: card sets IFSC %u", t1->ifsc);
        return xfer_send(x, PCB_S | PCB_S_RESP | S_IFS, b->inf, 1);
    }
    if (type == S_ABORT) {
        log_info(proto, "T=1: card aborts the chain");
        smc_status rc = xfer_send(x, PCB_S | PCB_S_RESP | S_ABORT, NULL, 0);
        return rc ? rc : STATUS_DEVICE_PROTOCOL_ERROR;
    }
    return xfer_on_error(x, RX_OTHER);
}

/* One received block (or failure to receive one): advance the state machine. */
static smc_status xfer_step(struct t1_xfer *x)
{
    struct t1_block b;
    enum rx_err err;
    smc_status rc = t1_recv(x->t1, x->io, x->rx, &b, &err);
    if (rc)
        return rc;
    if (err)
        return xfer_on_error(x, err);
    if (!(b.pcb & 0x80))
        return xfer_on_i(x, &b);
    if ((b.pcb & 0xC0) == PCB_R)
        return xfer_on_r(x, &b);
    return xfer_on_s(x, &b);
}

smc_status smc_t1_transceive(struct smc_t1 *t1, const struct smc_card_io *io, const uint8_t *apdu,
                             size_t len, uint8_t *resp, size_t cap, size_t *resp_len)
{
    if (resp_len)
        *resp_len = 0;
    if (!t1 || !io || !apdu || !resp || !resp_len || len < 4 || len > T1_MAX_APDU ||
        t1->ifsc == 0 || t1->ifsc > SCARD_T1_MAX_IFS)
        return STATUS_INVALID_PARAMETER;
    struct t1_xfer x = {.t1 = t1,
                        .io = io,
                        .apdu = apdu,
                        .apdu_len = len,
                        .sending = true,
                        .resp = resp,
                        .cap = cap,
                        .silent = true};
    x.chunk = len < t1->ifsc ? len : t1->ifsc;
    t1->wtx = 0;
    smc_status rc = xfer_send_i(&x);
    for (uint32_t steps = 0; rc == STATUS_SUCCESS && !x.done; steps++) {
        if (steps >= T1_MAX_STEPS) {
            log_info(proto, "T=1: exchange exceeds %u blocks", T1_MAX_STEPS);
            rc = STATUS_DEVICE_PROTOCOL_ERROR;
            break;
        }
        rc = xfer_step(&x);
    }
    if (rc == STATUS_SUCCESS && x.total > x.stored)
        rc = STATUS_BUFFER_TOO_SMALL;
    if (rc == STATUS_SUCCESS)
        *resp_len = x.stored;
    return rc;
}

void smc_t1_init(struct smc_t1 *t1, const struct smc_card_caps *caps)
{
    memset(t1, 0, sizeof(*t1));
    uint8_t ifsc = caps->ifsc ? caps->ifsc : caps->atr.ifsc;
    t1->ifsc = ifsc >= 1 && ifsc <= SCARD_T1_MAX_IFS ? ifsc : T1_IFSD_DEFAULT;
    t1->ifsc_initial = t1->ifsc;
    t1->ifsd = T1_IFSD_DEFAULT;
    t1->edc = caps->edc & T1_CRC_CHECK;
    t1->bwt_us = caps->bwt_us;
    t1->cwt_us = caps->cwt_us;
    t1->inverse = caps->atr.inverse;
}
