/*
 * T=0 (ISO/IEC 7816-3 §10 and §12.2): APDUs carried as TPDUs with procedure bytes.
 *
 * The APDU is decoded into its case (1, 2, 3, 4; short or extended) and mapped onto one TPDU
 * "CLA INS P1 P2 P3" with data going out (cases 3, 4) or coming in (case 2). One TPDU runs as:
 * send the header, then read procedure bytes within WT each:
 *
 *   60            NULL: the card needs more time; read the next procedure byte
 *   INS           ACK: transfer all remaining data bytes
 *   INS ^ FF      ACK: transfer the next data byte only
 *   6X / 9X       SW1: read SW2; the TPDU is over
 *
 * Around the TPDU the engine completes the response the caller asked for: after 61xx it sends
 * GET RESPONSE (C0 00 00 min(xx, Ne left)) while Ne allows, and after 6Cxx on a TPDU that reads
 * data it re-sends the same header with P3 = xx (at most twice in a row), keeping the first Ne
 * bytes. The class of GET RESPONSE and ENVELOPE is the command's if interindustry, else 00 with
 * the command's channel bits. The data of every TPDU are appended to the caller's buffer, SW1 SW2
 * last. A response larger than the buffer is still read to the end (the card must finish its
 * exchange) and reported as STATUS_BUFFER_TOO_SMALL. Commands without Le (Ne = 0) get the card's
 * 61xx back unchanged.
 *
 * Extended APDUs: with Nc <= 255 they map onto a short TPDU (Ne > 256 is then collected through
 * GET RESPONSE); a larger Nc goes through ENVELOPE (INS C2): the whole APDU in pieces of 255
 * bytes, each expected to answer 9000, an empty ENVELOPE after a full last piece, the final 61xx
 * fetched by GET RESPONSE. A card that rejects the first ENVELOPE (6D00, 6E00, 6A81) makes the
 * call STATUS_INVALID_PARAMETER.
 *
 * Every loop is bounded (NULL bytes, GET RESPONSE rounds, re-issues), whatever the card sends.
 */
#include <string.h>

#include "common/log.h"
#include "smc/proto_internal.h"
#include "smc/protocol.h"

#define T0_MAX_NULLS      65536u /* NULL procedure bytes accepted per TPDU */
#define T0_MAX_GETRESP    300u   /* GET RESPONSE rounds: 65 536 / 256 and some slack */
#define T0_MAX_REISSUE    2u     /* 6Cxx re-issues in a row */
#define T0_ENVELOPE_CHUNK 255u
#define INS_GET_RESPONSE  0xC0u
#define INS_ENVELOPE      0xC2u

/* A decoded command APDU (ISO/IEC 7816-4 §5.1). */
struct apdu {
    uint8_t hdr[4];
    const uint8_t *data;
    size_t nc; /* command data length */
    size_t ne; /* expected response length, 0 = none; 256 / 65536 for "00" */
    bool extended;
    bool has_le;
};

/* One exchange: the engine's state while one APDU runs. */
struct t0_run {
    const struct smc_card_io *io;
    bool inverse;
    uint32_t wt;
    uint8_t *resp;
    size_t cap;
    size_t len;    /* data bytes stored so far (SW excluded) */
    size_t needed; /* data bytes received, stored or not */
};

/* One TPDU: header, and data out (out_len) or in (in_len); never both. */
struct tpdu {
    uint8_t hdr[5];
    const uint8_t *out;
    size_t out_len;
    size_t in_len;
};

static smc_status decode_short(const uint8_t *b, size_t len, struct apdu *a)
{
    size_t lc = b[4];
    if (len == 5) {
        a->ne = lc ? lc : 256;
        a->has_le = true;
        return STATUS_SUCCESS;
    }
    if (lc == 0 || (len != 5 + lc && len != 6 + lc))
        return STATUS_INVALID_PARAMETER;
    a->data = b + 5;
    a->nc = lc;
    if (len == 6 + lc) {
        a->ne = b[len - 1] ? b[len - 1] : 256;
        a->has_le = true;
    }
    return STATUS_SUCCESS;
}

static smc_status decode_extended(const uint8_t *b, size_t len, struct apdu *a)
{
    a->extended = true;
    size_t l = (size_t)b[5] << 8 | b[6];
    if (len == 7) {
        a->ne = l ? l : 65536;
        a->has_le = true;
        return STATUS_SUCCESS;
    }
    if (l == 0 || (len != 7 + l && len != 9 + l))
        return STATUS_INVALID_PARAMETER;
    a->data = b + 7;
    a->nc = l;
    if (len == 9 + l) {
        size_t le = (size_t)b[len - 2] << 8 | b[len - 1];
        a->ne = le ? le : 65536;
        a->has_le = true;
    }
    return STATUS_SUCCESS;
}

/* Decode cases 1-4, short and extended. CLA FF (PPSS) and INS 6X/9X cannot go over T=0. */
static smc_status apdu_decode(const uint8_t *b, size_t len, struct apdu *a)
{
    memset(a, 0, sizeof(*a));
    if (len < 4)
        return STATUS_INVALID_PARAMETER;
    memcpy(a->hdr, b, 4);
    if (b[0] == 0xFF || (b[1] & 0xF0) == 0x60 || (b[1] & 0xF0) == 0x90) {
        log_debug(proto, "T=0: CLA %02X INS %02X cannot be sent", b[0], b[1]);
        return STATUS_INVALID_PARAMETER;
    }
    if (len == 4)
        return STATUS_SUCCESS;
    if (b[4] != 0 || len == 5)
        return decode_short(b, len, a);
    if (len < 7)
        return STATUS_INVALID_PARAMETER;
    return decode_extended(b, len, a);
}

/* CLA for the GET RESPONSE and ENVELOPE commands the engine adds: the command's own class when it
 * is interindustry (keeps the logical channel), else class 00 on the same channel bits. */
static uint8_t interindustry_cla(uint8_t cla)
{
    return (cla & 0x80) ? (uint8_t)(cla & 0x03) : cla;
}

/* Store incoming data bytes (or only count them once the buffer is full). */
static void t0_store(struct t0_run *r, const uint8_t *d, size_t n)
{
    size_t room = r->cap - 2 - r->len; /* two bytes always kept for SW1 SW2 */
    size_t k = n < room ? n : room;
    memcpy(r->resp + r->len, d, k);
    r->len += k;
    r->needed += n;
}

/* Transfer count data bytes of the TPDU in the direction it has, from position *done. */
static smc_status t0_transfer(struct t0_run *r, const struct tpdu *t, size_t *done, size_t count)
{
    if (t->out_len) {
        smc_status rc = smc__link_send(r->io, r->inverse, t->out + *done, count);
        *done += count;
        return rc;
    }
    uint8_t in[256];
    size_t got = 0;
    smc_status rc = smc__link_recv(r->io, r->inverse, in, count, r->wt, r->wt, &got);
    t0_store(r, in, got);
    *done += got;
    return rc;
}

/* Run one TPDU; returns SW1 SW2 in sw. */
static smc_status t0_tpdu(struct t0_run *r, const struct tpdu *t, uint8_t sw[2])
{
    size_t total = t->out_len ? t->out_len : t->in_len, done = 0, got = 0;
    uint8_t ins = t->hdr[1], ins_one = (uint8_t)(0xFFu - t->hdr[1]), pb = 0;
    smc_status rc = smc__link_send(r->io, r->inverse, t->hdr, 5);
    for (uint32_t nulls = 0; rc == STATUS_SUCCESS;) {
        rc = smc__link_recv(r->io, r->inverse, &pb, 1, r->wt, r->wt, &got);
        if (rc)
            break;
        if (pb == 0x60) {
            if (++nulls > T0_MAX_NULLS)
                rc = STATUS_DEVICE_PROTOCOL_ERROR;
        } else if ((pb & 0xF0) == 0x60 || (pb & 0xF0) == 0x90) {
            sw[0] = pb;
            return smc__link_recv(r->io, r->inverse, &sw[1], 1, r->wt, r->wt, &got);
        } else if ((pb == ins || pb == ins_one) && done < total) {
            rc = t0_transfer(r, t, &done, pb == ins ? total - done : 1);
        } else {
            log_info(proto, "T=0: unexpected procedure byte %02X (INS %02X, %zu/%zu bytes)", pb,
                     ins, done, total);
            rc = STATUS_DEVICE_PROTOCOL_ERROR;
        }
    }
    return rc;
}

/*
 * Run t; after 6Cxx on a TPDU that reads data, run it again with P3 = xx (at most
 * T0_MAX_REISSUE times in a row). At most *ne_left data bytes are kept (a re-issue may bring more
 * than the caller's Le: ISO/IEC 7816-4 case 2S.3 keeps the first Ne); *ne_left is reduced by what
 * was kept.
 */
static smc_status t0_run_tpdu(struct t0_run *r, struct tpdu *t, size_t *ne_left, uint8_t sw[2])
{
    for (unsigned reissues = 0;; reissues++) {
        size_t len0 = r->len, needed0 = r->needed;
        smc_status rc = t0_tpdu(r, t, sw);
        if (rc)
            return rc;
        size_t got = r->needed - needed0;
        if (sw[0] == 0x6C && t->in_len && got == 0 && reissues < T0_MAX_REISSUE) {
            t->hdr[4] = sw[1];
            t->in_len = sw[1] ? sw[1] : 256;
            continue;
        }
        if (t->in_len && got > *ne_left) {
            got = *ne_left;
            r->needed = needed0 + got;
            if (r->len > len0 + got)
                r->len = len0 + got;
        }
        *ne_left -= got < *ne_left ? got : *ne_left;
        return STATUS_SUCCESS;
    }
}

/* After an answer sw: fetch the data 61xx announces with GET RESPONSE while Ne allows. */
static smc_status t0_get_responses(struct t0_run *r, uint8_t cla, size_t ne_left, uint8_t sw[2])
{
    for (unsigned rounds = 0; sw[0] == 0x61 && ne_left > 0 && rounds < T0_MAX_GETRESP; rounds++) {
        size_t xx = sw[1] ? sw[1] : 256, n = xx < ne_left ? xx : ne_left;
        struct tpdu t = {
            .hdr = {interindustry_cla(cla), INS_GET_RESPONSE, 0, 0, (uint8_t)(n & 0xFF)},
            .in_len = n};
        smc_status rc = t0_run_tpdu(r, &t, &ne_left, sw);
        if (rc)
            return rc;
    }
    return STATUS_SUCCESS;
}

/* Short TPDU for a command whose data fit in P3 (Nc <= 255). */
static smc_status t0_short(struct t0_run *r, const struct apdu *a, uint8_t sw[2])
{
    struct tpdu t = {.hdr = {a->hdr[0], a->hdr[1], a->hdr[2], a->hdr[3], 0}};
    size_t ne_left = a->ne;
    if (a->nc) {
        t.hdr[4] = (uint8_t)a->nc;
        t.out = a->data;
        t.out_len = a->nc;
    } else if (a->ne) {
        t.in_len = a->ne < 256 ? a->ne : 256;
        t.hdr[4] = (uint8_t)(t.in_len & 0xFF);
    }
    smc_status rc = t0_run_tpdu(r, &t, &ne_left, sw);
    return rc ? rc : t0_get_responses(r, a->hdr[0], ne_left, sw);
}

/*
 * Extended APDU with Nc > 255: the whole APDU in ENVELOPE pieces of 255 bytes, each answered
 * 9000 but the last. When the last piece is full and answered 9000, the card cannot know that
 * nothing (an Le) follows, so an empty ENVELOPE marks the end.
 */
static smc_status t0_envelope(struct t0_run *r, const uint8_t *apdu, size_t len,
                              const struct apdu *a, uint8_t sw[2])
{
    uint8_t cla = interindustry_cla(a->hdr[0]);
    size_t off = 0, n = 0, none = 0;
    while (off < len) {
        n = len - off < T0_ENVELOPE_CHUNK ? len - off : T0_ENVELOPE_CHUNK;
        struct tpdu t = {
            .hdr = {cla, INS_ENVELOPE, 0, 0, (uint8_t)n}, .out = apdu + off, .out_len = n};
        smc_status rc = t0_run_tpdu(r, &t, &none, sw);
        if (rc)
            return rc;
        uint16_t s = (uint16_t)(sw[0] << 8 | sw[1]);
        if (off == 0 && (s == 0x6D00 || s == 0x6E00 || s == 0x6A81)) {
            log_info(proto, "T=0: card refuses ENVELOPE (%04X); extended APDU not possible", s);
            return STATUS_INVALID_PARAMETER;
        }
        off += n;
        if (s != 0x9000)
            return t0_get_responses(r, cla, a->ne, sw); /* the card has answered */
    }
    if (n == T0_ENVELOPE_CHUNK) {
        struct tpdu t = {.hdr = {cla, INS_ENVELOPE, 0, 0, 0}};
        smc_status rc = t0_run_tpdu(r, &t, &none, sw);
        if (rc)
            return rc;
    }
    return t0_get_responses(r, cla, a->ne, sw);
}

smc_status smc_t0_transceive(const struct smc_card_io *io, const struct smc_card_caps *caps,
                             const uint8_t *apdu, size_t len, uint8_t *resp, size_t cap,
                             size_t *resp_len)
{
    if (resp_len)
        *resp_len = 0;
    if (!io || !caps || !apdu || !resp || !resp_len)
        return STATUS_INVALID_PARAMETER;
    struct apdu a;
    smc_status rc = apdu_decode(apdu, len, &a);
    if (rc)
        return rc;
    if (cap < 2)
        return STATUS_BUFFER_TOO_SMALL;
    struct t0_run r = {
        .io = io, .inverse = caps->atr.inverse, .wt = caps->wt_us, .resp = resp, .cap = cap};
    uint8_t sw[2] = {0, 0};
    if (a.extended && a.nc > 255)
        rc = t0_envelope(&r, apdu, len, &a, sw);
    else
        rc = t0_short(&r, &a, sw);
    if (rc)
        return rc;
    if (r.needed > r.len)
        return STATUS_BUFFER_TOO_SMALL;
    resp[r.len] = sw[0];
    resp[r.len + 1] = sw[1];
    *resp_len = r.len + 2;
    return STATUS_SUCCESS;
}
