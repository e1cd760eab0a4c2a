/*
 * The envelope pseudo-APDUs FF C2 00 P2 (docs/nfc.md), whose data are BER-TLV data objects handled
 * one after the other:
 *
 *   P2 00 Manage Session       80 version (answers 80 03 01 00 00), 81 start / 82 end the
 *                              transparent session, 83 RF off / 84 RF on (inside a session; the
 *                              tag is halted and woken up), 5F46 timer (4 bytes, µs, LSB first);
 *                              FF6D / FF6E parameters are not supported (6A 81).
 *   P2 01 Transparent Exchange inside a session: 95 transceive (raw tag frame; answers
 *                              96 02 00 00 and 97 <tag answer>), 5F46 timer; the framing
 *                              options 90..94 are not supported (6A 81).
 *   P2 03 Increment/Decrement  MIFARE Classic value blocks: A0 (increment) / A1 (decrement)
 *                              containing 80 block (1 or 2 bytes) and 81 value (4 bytes, most
 *                              significant first); the result is transferred to the same block.
 *
 * The answer starts with C0 03 <index> <SW1> <SW2> (index of the failing data object, 00 when
 * all succeeded), followed by what the data objects returned; the APDU's SW1 SW2 repeats the
 * status. Ending the session, or a session left open by a reset, wakes the tag up again so the
 * raw frames leave no trace.
 */
#include <string.h>

#include "common/bytes.h"
#include "drivers/nfc/nfc_apdu_priv.h"

struct tlv {
    unsigned tag;
    size_t len;
    const uint8_t *v;
};

/* Next BER-TLV of [*p, end): 1 found, 0 at the end, -1 malformed. */
static int next_tlv(const uint8_t **p, const uint8_t *end, struct tlv *t)
{
    const uint8_t *q = *p;
    if (q >= end)
        return 0;
    t->tag = *q++;
    if ((t->tag & 0x1F) == 0x1F) {
        if (q >= end)
            return -1;
        t->tag = t->tag << 8 | *q++;
    }
    if (q >= end)
        return -1;
    size_t len = *q++;
    if (len == 0x81 || len == 0x82) {
        size_t k = len - 0x80;
        if ((size_t)(end - q) < k)
            return -1;
        len = k == 1 ? q[0] : (size_t)q[0] << 8 | q[1];
        q += k;
    } else if (len > 0x80) {
        return -1;
    }
    if ((size_t)(end - q) < len)
        return -1;
    t->v = q;
    t->len = len;
    *p = q + len;
    return 1;
}

static void put_tlv(struct scrm_buf *o, uint8_t tag, const uint8_t *v, size_t len)
{
    scrm_buf_put_u8(o, tag);
    if (len > 0xFF) { /* BER-TLV long form: 82 hh ll */
        scrm_buf_put_u8(o, 0x82);
        scrm_buf_put_u16be(o, (uint16_t)len);
    } else {
        if (len > 0x7F)
            scrm_buf_put_u8(o, 0x81);
        scrm_buf_put_u8(o, (uint8_t)len);
    }
    scrm_buf_put(o, v, len);
}

typedef uint16_t (*do_fn)(struct apdu_ctx *x, const struct tlv *t, struct scrm_buf *o);

/* Run fn over every data object; answer C0 + their output. */
static uint16_t run_dos(struct apdu_ctx *x, do_fn fn)
{
    uint8_t tmp[NFC_RESP_MAX];
    struct scrm_buf o;
    scrm_buf_init(&o, tmp, sizeof(tmp) - 16);
    const uint8_t *p = x->a + 5, *end = p + x->a[4];
    unsigned idx = 0;
    uint16_t sw = SW_OK;
    for (;;) {
        struct tlv t;
        int r = next_tlv(&p, end, &t);
        if (r == 0)
            break;
        idx++;
        sw = r < 0 ? SW_LENGTH : fn(x, &t, &o);
        if (x->st)
            return 0;
        if (sw != SW_OK)
            break;
    }
    if (o.overflow)
        sw = SW_UNKNOWN;
    uint8_t c0[5] = {0xC0, 0x03, (uint8_t)(sw == SW_OK ? 0 : idx), (uint8_t)(sw >> 8), (uint8_t)sw};
    scrm_buf_put(&x->out, c0, sizeof(c0));
    scrm_buf_put(&x->out, tmp, o.overflow ? 0 : o.len);
    return sw;
}

/* 5F46: the exchange timer, µs, least significant byte first. */
static uint16_t timer(struct apdu_ctx *x, const struct tlv *t)
{
    if (t->len != 4)
        return SW_VALUE;
    uint32_t us = scrm_get_u32le(t->v);
    uint32_t ms = us / 1000u + (us % 1000u != 0);
    x->c->timeout_ms = ms ? ms : 1;
    return SW_OK;
}

/* Wake the tag up again (RF on, end of session). */
static uint16_t reactivate(struct apdu_ctx *x)
{
    struct nfc_target t;
    smc_status st = x->l->ops->activate(x->l->fe, 0, &t);
    if (st == STATUS_NO_MEDIA)
        x->st = st;
    x->c->auth_sector = -1;
    x->c->rf_off = false;
    return st == STATUS_SUCCESS ? SW_OK : SW_UNKNOWN;
}

static uint16_t manage_do(struct apdu_ctx *x, const struct tlv *t, struct scrm_buf *o)
{
    static const uint8_t version[3] = {0x01, 0x00, 0x00};
    struct nfc_card *c = x->c;
    switch (t->tag) {
    case 0x80: put_tlv(o, 0x80, version, sizeof(version)); return SW_OK;
    case 0x81: c->transparent = true; return SW_OK;
    case 0x82:
        if (!c->transparent)
            return SW_OK;
        c->transparent = false;
        return reactivate(x);
    case 0x83:
    case 0x84:
        if (!c->transparent)
            return SW_NOT_ALLOWED;
        if (t->tag == 0x84)
            return reactivate(x);
        x->l->ops->deactivate(x->l->fe);
        c->rf_off = true;
        return SW_OK;
    case 0x5F46: return timer(x, t);
    default: return SW_FUNCTION; /* FF6D / FF6E parameters and anything else */
    }
}

static uint16_t transceive_do(struct apdu_ctx *x, const struct tlv *t, struct scrm_buf *o)
{
    static const uint8_t status_ok[2] = {0x00, 0x00};
    uint8_t rx[300];
    size_t n;
    if (x->c->rf_off)
        return SW_NO_RESPONSE;
    uint32_t ms = x->c->timeout_ms ? x->c->timeout_ms : NFC_ISO4_TIMEOUT_MS;
    smc_status st = apdu_xfer(x, t->v, t->len, rx, sizeof(rx), &n, ms);
    if (st == STATUS_IO_TIMEOUT)
        return SW_NO_RESPONSE;
    if (st != STATUS_SUCCESS)
        return SW_UNKNOWN;
    put_tlv(o, 0x96, status_ok, sizeof(status_ok));
    put_tlv(o, 0x97, rx, n);
    return SW_OK;
}

static uint16_t transparent_do(struct apdu_ctx *x, const struct tlv *t, struct scrm_buf *o)
{
    if (!x->c->transparent)
        return SW_NOT_ALLOWED;
    switch (t->tag) {
    case 0x95: return t->len ? transceive_do(x, t, o) : SW_VALUE;
    case 0x5F46: return timer(x, t);
    default: return SW_FUNCTION;
    }
}

/* Block (80) and value (81) inside an A0 / A1 object. */
static uint16_t value_args(const struct tlv *op, unsigned *block, uint32_t *value)
{
    const uint8_t *p = op->v, *end = op->v + op->len;
    bool have_block = false, have_value = false;
    struct tlv t;
    int r;
    while ((r = next_tlv(&p, end, &t)) > 0) {
        if (t.tag == 0x80 && (t.len == 1 || t.len == 2)) {
            *block = t.len == 1 ? t.v[0] : (unsigned)t.v[0] << 8 | t.v[1];
            have_block = true;
        } else if (t.tag == 0x81 && t.len == 4) {
            *value =
                (uint32_t)t.v[0] << 24 | (uint32_t)t.v[1] << 16 | (uint32_t)t.v[2] << 8 | t.v[3];
            have_value = true;
        } else {
            return SW_VALUE;
        }
    }
    if (r < 0)
        return SW_LENGTH;
    return have_block && have_value ? SW_OK : SW_VALUE;
}

/* One MIFARE value command with a 1-byte ACK / NAK answer. */
static uint16_t value_cmd(struct apdu_ctx *x, const uint8_t *tx, size_t n, unsigned block)
{
    uint8_t rx[4];
    size_t got;
    if (apdu_xfer(x, tx, n, rx, sizeof(rx), &got, NFC_STORAGE_TIMEOUT_MS) != STATUS_SUCCESS)
        return SW_UNKNOWN;
    if (got == 1 && rx[0] == MIFARE_ACK)
        return SW_OK;
    if (got == 1 && rx[0] == 0x00)
        return SW_VALUE; /* not a value block */
    return apdu_classic_denied(x, block);
}

static uint16_t incdec_do(struct apdu_ctx *x, const struct tlv *t, struct scrm_buf *o)
{
    (void)o;
    if (x->c->kind != NFC_CARD_CLASSIC)
        return SW_INCOMPATIBLE;
    if (t->tag != 0xA0 && t->tag != 0xA1)
        return SW_FUNCTION;
    unsigned block = 0;
    uint32_t value = 0;
    uint16_t sw = value_args(t, &block, &value);
    if (sw != SW_OK)
        return sw;
    if (block >= x->c->blocks)
        return SW_ADDRESS;
    uint8_t op[6] = {t->tag == 0xA0 ? 0xC1 : 0xC0, (uint8_t)block,         (uint8_t)value,
                     (uint8_t)(value >> 8),        (uint8_t)(value >> 16), (uint8_t)(value >> 24)};
    sw = value_cmd(x, op, sizeof(op), block);
    if (sw != SW_OK)
        return sw;
    uint8_t transfer[2] = {0xB0, (uint8_t)block};
    return value_cmd(x, transfer, sizeof(transfer), block);
}

uint16_t apdu_envelope(struct apdu_ctx *x)
{
    uint8_t p1 = x->a[2], p2 = x->a[3], lc = x->a[4];
    if (p1 != 0)
        return SW_P1P2;
    if (x->n != 5u + lc && x->n != 6u + lc)
        return SW_LENGTH;
    switch (p2) {
    case 0x00: return run_dos(x, manage_do);
    case 0x01: return run_dos(x, transparent_do);
    case 0x02: return SW_LENGTH; /* Switch Protocol is exactly 9 bytes */
    case 0x03: return run_dos(x, incdec_do);
    default: return SW_P1P2;
    }
}
