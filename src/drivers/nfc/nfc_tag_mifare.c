/*
 * Simulated MIFARE Classic (Mini, 1K, 4K, and the Classic side of a multi-protocol tag) and
 * MIFARE Ultralight (plain, C, EV1) tags: memory layout and the tag side of their commands.
 *
 * Classic memory: sectors 0..31 of 4 blocks, then (4K) sectors 32..39 of 16 blocks; the last block
 * of a sector is its trailer: key A (6), access bits (3), general purpose byte, key B (6). Access
 * conditions come from the C1 C2 C3 bits of each block group (data groups 0..2, the trailer 3);
 * a group whose inverted copy disagrees allows nothing. Authentication compares the key sent in
 * the AUTH frame with the trailer (the Crypto1 cipher is not simulated); a wrong key halts the tag
 * like a real one, which stays silent until it is woken up again.
 *
 * Value blocks: value (LE), its complement, value, then address, ~address, address, ~address.
 * INCREMENT / DECREMENT / RESTORE load the transfer buffer, TRANSFER writes it to a block.
 */
#include <string.h>

#include "common/bytes.h"
#include "drivers/nfc/nfc_tag_priv.h"

#define NAK_INVALID 0x00u /* invalid argument / not a value block */
#define NAK_DENIED  0x04u /* not authenticated or not allowed */

/* ---- Classic geometry ---- */

static unsigned sector_of(unsigned block)
{
    return block < 128 ? block / 4 : 32 + (block - 128) / 16;
}

static unsigned sector_first(unsigned sector)
{
    return sector < 32 ? sector * 4 : 128 + (sector - 32) * 16;
}

static unsigned sector_blocks(unsigned sector)
{
    return sector < 32 ? 4 : 16;
}

static unsigned trailer_of(unsigned sector)
{
    return sector_first(sector) + sector_blocks(sector) - 1;
}

/* Access group of a block: 0..2 data, 3 the trailer (big sectors group 5 blocks per bit set). */
static unsigned group_of(unsigned block)
{
    unsigned s = sector_of(block);
    unsigned off = block - sector_first(s);
    if (sector_blocks(s) == 4)
        return off;
    return off == 15 ? 3 : off / 5;
}

static uint8_t *blk(struct nfc_tag *t, unsigned block)
{
    return t->mem + 16u * block;
}

/* C1 C2 C3 of group g (as the number C1C2C3), or -1 if the inverted copies disagree. */
static int access_bits(const uint8_t *trailer, unsigned g)
{
    unsigned b6 = trailer[6], b7 = trailer[7], b8 = trailer[8];
    unsigned c1 = (b7 >> (4 + g)) & 1u, c2 = (b8 >> g) & 1u, c3 = (b8 >> (4 + g)) & 1u;
    unsigned n1 = (b6 >> g) & 1u, n2 = (b6 >> (4 + g)) & 1u, n3 = (b7 >> g) & 1u;
    if (c1 == n1 || c2 == n2 || c3 == n3)
        return -1;
    return (int)(c1 << 2 | c2 << 1 | c3);
}

/* Data blocks: which keys may read, write, increment, decrement/transfer/restore. */
enum { OP_READ, OP_WRITE, OP_INC, OP_DEC };
static const uint8_t data_rights[8][4] = {
    [0] = {KEY_AB, KEY_AB, KEY_AB, KEY_AB}, /* 000 transport configuration */
    [2] = {KEY_AB, 0, 0, 0},                /* 010 read only */
    [4] = {KEY_AB, KEY_B, 0, 0},            /* 100 */
    [6] = {KEY_AB, KEY_B, KEY_B, KEY_AB},   /* 110 value block */
    [1] = {KEY_AB, 0, 0, KEY_AB},           /* 001 value block, decrement only */
    [3] = {KEY_B, KEY_B, 0, 0},             /* 011 */
    [5] = {KEY_B, 0, 0, 0},                 /* 101 */
    [7] = {0, 0, 0, 0},                     /* 111 */
};

/* Trailer: who writes key A, reads / writes the access bits, reads / writes key B. */
enum { TR_KEYA_W, TR_ACC_R, TR_ACC_W, TR_KEYB_R, TR_KEYB_W };
static const uint8_t trailer_rights[8][5] = {
    [0] = {KEY_A, KEY_A, 0, KEY_A, KEY_A},
    [2] = {0, KEY_A, 0, KEY_A, 0},
    [4] = {KEY_B, KEY_AB, 0, 0, KEY_B},
    [6] = {0, KEY_AB, 0, 0, 0},
    [1] = {KEY_A, KEY_A, KEY_A, KEY_A, KEY_A}, /* 001 transport configuration */
    [3] = {KEY_B, KEY_AB, KEY_B, 0, KEY_B},
    [5] = {0, KEY_AB, KEY_B, 0, 0},
    [7] = {0, KEY_AB, 0, 0, 0},
};

static const uint8_t *trailer(struct nfc_tag *t, unsigned block)
{
    return blk(t, trailer_of(sector_of(block)));
}

/* Keys allowed to do `op` (data) on block; 0 for broken access bits. */
static unsigned data_allowed(struct nfc_tag *t, unsigned block, unsigned op)
{
    int c = access_bits(trailer(t, block), group_of(block));
    return c < 0 ? 0 : data_rights[c][op];
}

static unsigned trailer_allowed(struct nfc_tag *t, unsigned block, unsigned what)
{
    int c = access_bits(trailer(t, block), 3);
    return c < 0 ? 0 : trailer_rights[c][what];
}

void classic_format(struct nfc_tag *t)
{
    static const uint8_t factory_trailer[16] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x07,
                                                0x80, 0x69, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    uint8_t *b0 = blk(t, 0);
    memcpy(b0, t->uid, t->uid_len);
    if (t->uid_len == 4) {
        b0[4] = (uint8_t)(t->uid[0] ^ t->uid[1] ^ t->uid[2] ^ t->uid[3]);
        b0[5] = t->sak;
        b0[6] = t->atqa[0];
        b0[7] = t->atqa[1];
    } else {
        b0[7] = t->sak;
        b0[8] = t->atqa[0];
        b0[9] = t->atqa[1];
    }
    put_text(b0 + 10, "SCRM00"); /* manufacturer data */
    for (unsigned s = 0; s <= sector_of(t->blocks - 1); s++)
        memcpy(blk(t, trailer_of(s)), factory_trailer, 16);
}

/* A NAK also ends the authentication, as the card falls back to its idle state. */
static bool nak(struct nfc_tag *t, uint8_t code, uint8_t *rx, size_t *rx_len)
{
    if (code == NAK_DENIED)
        t->auth_sector = -1;
    rx[0] = code;
    *rx_len = 1;
    return true;
}

static bool ack(uint8_t *rx, size_t *rx_len)
{
    rx[0] = MIFARE_ACK;
    *rx_len = 1;
    return true;
}

static bool key_b_readable(struct nfc_tag *t, unsigned block)
{
    return trailer_allowed(t, block, TR_KEYB_R) != 0;
}

/* AUTH: 60/61, block, key[6], uid[4]. Success is an empty answer; failure halts the tag. */
static bool classic_auth(struct nfc_tag *t, const uint8_t *tx, size_t n, size_t *rx_len)
{
    const uint8_t *uid4 = t->uid_len == 7 ? t->uid + 3 : t->uid;
    if (n != 12 || tx[1] >= t->blocks || memcmp(tx + 8, uid4, 4) != 0)
        goto fail;
    unsigned key = tx[0] == 0x60 ? KEY_A : KEY_B;
    const uint8_t *tr = trailer(t, tx[1]);
    if (memcmp(tx + 2, key == KEY_A ? tr : tr + 10, 6) != 0)
        goto fail;
    if (key == KEY_B && key_b_readable(t, tx[1]))
        goto fail; /* a readable key B is data, not a key */
    t->auth_sector = (int)sector_of(tx[1]);
    t->auth_key = key;
    *rx_len = 0;
    return true;
fail:
    nfc_tag_halt(t);
    return false;
}

/* The key of the current authentication may do `op` on block (data blocks). */
static bool may(struct nfc_tag *t, unsigned block, unsigned op)
{
    return t->auth_sector == (int)sector_of(block) && (data_allowed(t, block, op) & t->auth_key);
}

static bool is_trailer(unsigned block)
{
    return block == trailer_of(sector_of(block));
}

static bool classic_read(struct nfc_tag *t, unsigned block, uint8_t *rx, size_t *rx_len)
{
    if (t->auth_sector != (int)sector_of(block))
        return nak(t, NAK_DENIED, rx, rx_len);
    if (is_trailer(block)) {
        const uint8_t *tr = blk(t, block);
        memset(rx, 0, 16); /* key A never reads back */
        if (trailer_allowed(t, block, TR_ACC_R) & t->auth_key)
            memcpy(rx + 6, tr + 6, 4);
        if (trailer_allowed(t, block, TR_KEYB_R) & t->auth_key)
            memcpy(rx + 10, tr + 10, 6);
    } else {
        if (!may(t, block, OP_READ))
            return nak(t, NAK_DENIED, rx, rx_len);
        memcpy(rx, blk(t, block), 16);
    }
    *rx_len = 16;
    return true;
}

/* Writing a trailer changes only the parts the current key may write. */
static bool trailer_write(struct nfc_tag *t, unsigned block, const uint8_t *d, uint8_t *rx,
                          size_t *rx_len)
{
    bool ka = trailer_allowed(t, block, TR_KEYA_W) & t->auth_key;
    bool acc = trailer_allowed(t, block, TR_ACC_W) & t->auth_key;
    bool kb = trailer_allowed(t, block, TR_KEYB_W) & t->auth_key;
    if (!ka && !acc && !kb)
        return nak(t, NAK_DENIED, rx, rx_len);
    uint8_t *tr = blk(t, block);
    if (ka)
        memcpy(tr, d, 6);
    if (acc)
        memcpy(tr + 6, d + 6, 4);
    if (kb)
        memcpy(tr + 10, d + 10, 6);
    return ack(rx, rx_len);
}

static bool classic_write(struct nfc_tag *t, unsigned block, const uint8_t *d, uint8_t *rx,
                          size_t *rx_len)
{
    if (t->auth_sector != (int)sector_of(block) || block == 0)
        return nak(t, NAK_DENIED, rx, rx_len); /* block 0 is the manufacturer's */
    if (is_trailer(block))
        return trailer_write(t, block, d, rx, rx_len);
    if (!may(t, block, OP_WRITE))
        return nak(t, NAK_DENIED, rx, rx_len);
    memcpy(blk(t, block), d, 16);
    return ack(rx, rx_len);
}

/* A well-formed value block: value, ~value, value, addr, ~addr, addr, ~addr. */
static bool value_block(const uint8_t *b, uint32_t *value)
{
    uint32_t v = scrm_get_u32le(b), nv = scrm_get_u32le(b + 4), v2 = scrm_get_u32le(b + 8);
    if (v != v2 || v != ~nv || b[12] != b[14] || b[13] != b[15] || (b[12] ^ b[13]) != 0xFF)
        return false;
    *value = v;
    return true;
}

/* INCREMENT C1 / DECREMENT C0 / RESTORE C2: block, operand (LE) → transfer buffer. */
static bool classic_value_op(struct nfc_tag *t, const uint8_t *tx, uint8_t *rx, size_t *rx_len)
{
    unsigned block = tx[1];
    unsigned op = tx[0] == 0xC1 ? OP_INC : OP_DEC;
    if (is_trailer(block) || !may(t, block, op))
        return nak(t, NAK_DENIED, rx, rx_len);
    uint32_t v;
    if (!value_block(blk(t, block), &v))
        return nak(t, NAK_INVALID, rx, rx_len);
    uint32_t operand = scrm_get_u32le(tx + 2);
    if (tx[0] == 0xC1)
        v += operand;
    else if (tx[0] == 0xC0)
        v -= operand;
    t->tbuf = v;
    t->tbuf_addr = blk(t, block)[12];
    t->tbuf_valid = true;
    return ack(rx, rx_len);
}

static bool classic_transfer(struct nfc_tag *t, unsigned block, uint8_t *rx, size_t *rx_len)
{
    if (!t->tbuf_valid || is_trailer(block) || !may(t, block, OP_DEC))
        return nak(t, NAK_DENIED, rx, rx_len);
    uint8_t *b = blk(t, block);
    scrm_put_u32le(b, t->tbuf);
    scrm_put_u32le(b + 4, ~t->tbuf);
    scrm_put_u32le(b + 8, t->tbuf);
    b[12] = b[14] = t->tbuf_addr;
    b[13] = b[15] = (uint8_t)~t->tbuf_addr;
    t->tbuf_valid = false;
    return ack(rx, rx_len);
}

bool classic_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t *rx_len)
{
    if (n >= 2 && tx[1] >= t->blocks && tx[0] != 0x50)
        return nak(t, NAK_INVALID, rx, rx_len);
    switch (tx[0]) {
    case 0x60:
    case 0x61: return classic_auth(t, tx, n, rx_len);
    case 0x30: return n == 2 ? classic_read(t, tx[1], rx, rx_len) : false;
    case 0xA0: return n == 18 ? classic_write(t, tx[1], tx + 2, rx, rx_len) : false;
    case 0xC0:
    case 0xC1:
    case 0xC2: return n == 6 ? classic_value_op(t, tx, rx, rx_len) : false;
    case 0xB0: return n == 2 ? classic_transfer(t, tx[1], rx, rx_len) : false;
    case 0x50: nfc_tag_halt(t); return false; /* HALT is never answered */
    default: return nak(t, NAK_INVALID, rx, rx_len);
    }
}

/* ---- Ultralight ---- */

static uint8_t *page(struct nfc_tag *t, unsigned p)
{
    return t->mem + 4u * p;
}

void ultralight_format(struct nfc_tag *t)
{
    const uint8_t *u = t->uid; /* 7 bytes, or 4 padded with zeros */
    uint8_t *p0 = page(t, 0);
    p0[0] = u[0];
    p0[1] = u[1];
    p0[2] = u[2];
    p0[3] = (uint8_t)(0x88 ^ u[0] ^ u[1] ^ u[2]);
    memcpy(page(t, 1), u + 3, 4);
    page(t, 2)[0] = (uint8_t)(u[3] ^ u[4] ^ u[5] ^ u[6]);
    page(t, 2)[1] = 0x48;
    put_text(page(t, 4), "SCRM-UL-TAG-DATA");
    t->readable_pages = t->pages;
    if (t->ul_type == NFC_UL_C) {
        page(t, 0x2A)[0] = 0x30;                     /* AUTH0: no page protected */
        put_text(page(t, 0x2C), "IEMKAERB!NACUOYF"); /* factory 3DES key */
        t->readable_pages = 0x2C;                    /* the key pages are write only */
    } else if (t->ul_type == NFC_UL_EV1) {
        static const uint8_t cfg[8] = {0x04, 0x00, 0x00, 0xFF, 0x00, 0x05, 0x00, 0x00};
        memcpy(page(t, 0x10), cfg, 8);
        memset(page(t, 0x12), 0xFF, 4); /* PWD */
    }
}

/* Lock bits of page 2 protect pages 3..15. */
static bool page_locked(struct nfc_tag *t, unsigned p)
{
    const uint8_t *l = page(t, 2);
    if (p == 3)
        return l[2] & 0x08;
    if (p >= 4 && p <= 7)
        return l[2] & (1u << p);
    if (p >= 8 && p <= 15)
        return l[3] & (1u << (p - 8));
    return false;
}

static bool ul_read(struct nfc_tag *t, unsigned p, uint8_t *rx, size_t *rx_len)
{
    if (p >= t->readable_pages)
        return nak(t, NAK_INVALID, rx, rx_len);
    for (unsigned i = 0; i < 4; i++) {
        unsigned q = (p + i) % t->readable_pages;
        bool secret = t->ul_type == NFC_UL_EV1 && q >= 0x12; /* PWD, PACK */
        if (secret)
            memset(rx + 4 * i, 0, 4);
        else
            memcpy(rx + 4 * i, page(t, q), 4);
    }
    *rx_len = 16;
    return true;
}

static bool ul_write(struct nfc_tag *t, unsigned p, const uint8_t *d, uint8_t *rx, size_t *rx_len)
{
    if (p < 2 || p >= t->pages || page_locked(t, p))
        return nak(t, NAK_INVALID, rx, rx_len);
    uint8_t *q = page(t, p);
    if (p == 2) {
        q[2] |= d[2]; /* lock bits can only be set */
        q[3] |= d[3];
    } else if (p == 3) {
        for (int i = 0; i < 4; i++)
            q[i] |= d[i]; /* one-time programmable */
    } else {
        memcpy(q, d, 4);
    }
    return ack(rx, rx_len);
}

bool ultralight_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t *rx_len)
{
    static const uint8_t ev1_version[8] = {0x00, 0x04, 0x03, 0x01, 0x01, 0x00, 0x0B, 0x03};
    switch (tx[0]) {
    case 0x30: return n == 2 ? ul_read(t, tx[1], rx, rx_len) : false;
    case 0xA2: return n == 6 ? ul_write(t, tx[1], tx + 2, rx, rx_len) : false;
    case 0xA0: return n == 18 ? ul_write(t, tx[1], tx + 2, rx, rx_len) : false;
    case 0x60:
        if (t->ul_type != NFC_UL_EV1 || n != 1)
            return nak(t, NAK_INVALID, rx, rx_len);
        memcpy(rx, ev1_version, sizeof(ev1_version));
        *rx_len = sizeof(ev1_version);
        return true;
    case 0x50: nfc_tag_halt(t); return false;
    default: return nak(t, NAK_INVALID, rx, rx_len);
    }
}
