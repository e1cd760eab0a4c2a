/*
 * Simulated FeliCa, ISO 15693 (ICODE SLI and others) and Jewel / Topaz tags: memory layout and
 * the tag side of their commands (see nfc_tag.h for the command sets).
 *
 * FeliCa: two services without encryption, 0009 (16 read/write blocks) and 000B (4 read-only
 * blocks), each block 16 bytes. A block list element is 2 bytes (80|service index, block) or 3
 * bytes (service index, block LE). Errors come back as status flags 1 and 2.
 * ISO 15693: 28 blocks of 4 bytes; LOCK BLOCK makes a block read only.
 * Jewel / Topaz: 120 bytes in blocks 0..E of 8 bytes; block 0 (UID) and D are read only, the lock
 * bytes (0x70, 0x71) protect blocks 1..C; commands carry UID0..3, which must match.
 */
#include <string.h>

#include "drivers/nfc/nfc_tag_priv.h"

/* ---- FeliCa ---- */

#define FELICA_CHECK   0x06u
#define FELICA_UPDATE  0x08u
#define FELICA_POLLING 0x00u
#define FELICA_SVC_RW  0x0009u
#define FELICA_SVC_RO  0x000Bu

void felica_format(struct nfc_tag *t)
{
    static const uint8_t pmm[8] = {0x01, 0x20, 0x22, 0x04, 0x27, 0x67, 0x4D, 0x00};
    memcpy(t->pmm, pmm, sizeof(pmm));
    t->sys_code = 0x12FC;
    put_text(t->mem, "SCRM FeliCa blk0");
    for (unsigned i = 0; i < FELICA_RO_BLOCKS; i++) {
        uint8_t *b = t->mem + (FELICA_RW_BLOCKS + i) * FELICA_BLOCK;
        put_text(b, "READ-ONLY BLOCK ");
        b[15] = (uint8_t)('0' + i);
    }
}

struct felica_req {
    uint8_t nsvc;
    uint16_t svc[FELICA_MAX_SVC];
    uint8_t nblk;
    uint8_t blk_svc[FELICA_MAX_BLOCKS]; /* service index of each element */
    uint16_t blk_num[FELICA_MAX_BLOCKS];
    const uint8_t *data; /* UPDATE: the block data */
    size_t data_len;
};

/* Parse services and block list after the IDm; returns status flags (0 = fine). */
static uint16_t felica_parse(const uint8_t *p, size_t n, struct felica_req *r)
{
    size_t i = 0;
    if (n < 1)
        return 0xFFA1;
    r->nsvc = p[i++];
    if (r->nsvc == 0 || r->nsvc > FELICA_MAX_SVC || n < i + 2u * r->nsvc + 1)
        return 0xFFA1;
    for (unsigned s = 0; s < r->nsvc; s++, i += 2)
        r->svc[s] = (uint16_t)(p[i] | p[i + 1] << 8);
    r->nblk = p[i++];
    if (r->nblk == 0 || r->nblk > FELICA_MAX_BLOCKS)
        return 0xFFA2;
    for (unsigned b = 0; b < r->nblk; b++) {
        bool two = i < n && (p[i] & 0x80);
        if (i + (two ? 2u : 3u) > n)
            return 0x01A1;
        r->blk_svc[b] = p[i] & 0x0F;
        r->blk_num[b] = two ? p[i + 1] : (uint16_t)(p[i + 1] | p[i + 2] << 8);
        i += two ? 2u : 3u;
    }
    r->data = p + i;
    r->data_len = n - i;
    return 0;
}

/* Memory of block `b` of the request, or NULL if the element is invalid; *svc gets its code. */
static uint8_t *felica_block(struct nfc_tag *t, const struct felica_req *r, unsigned b,
                             uint16_t *svc)
{
    if (r->blk_svc[b] >= r->nsvc)
        return NULL;
    *svc = r->svc[r->blk_svc[b]];
    unsigned num = r->blk_num[b];
    if (*svc == FELICA_SVC_RW && num < FELICA_RW_BLOCKS)
        return t->mem + num * FELICA_BLOCK;
    if (*svc == FELICA_SVC_RO && num < FELICA_RO_BLOCKS)
        return t->mem + (FELICA_RW_BLOCKS + num) * FELICA_BLOCK;
    return NULL;
}

static uint16_t felica_check_services(const struct felica_req *r, bool update)
{
    for (unsigned s = 0; s < r->nsvc; s++) {
        bool known = r->svc[s] == FELICA_SVC_RW || r->svc[s] == FELICA_SVC_RO;
        if (!known || (update && r->svc[s] != FELICA_SVC_RW))
            return 0x01A6;
    }
    return 0;
}

/* Read / Write Without Encryption; the answer's data follows the status flags. */
static uint16_t felica_rw(struct nfc_tag *t, const struct felica_req *r, bool update, uint8_t *out,
                          size_t *out_len)
{
    uint16_t sf = felica_check_services(r, update);
    if (sf)
        return sf;
    if (update && r->data_len != (size_t)r->nblk * FELICA_BLOCK)
        return 0x01A9;
    uint8_t *blocks[FELICA_MAX_BLOCKS];
    for (unsigned b = 0; b < r->nblk; b++) {
        uint16_t svc;
        blocks[b] = felica_block(t, r, b, &svc);
        if (!blocks[b])
            return 0x01A1;
    }
    for (unsigned b = 0; b < r->nblk; b++) {
        if (update)
            memcpy(blocks[b], r->data + b * FELICA_BLOCK, FELICA_BLOCK);
        else
            memcpy(out + 1 + b * FELICA_BLOCK, blocks[b], FELICA_BLOCK);
    }
    if (!update) {
        out[0] = r->nblk;
        *out_len = 1 + (size_t)r->nblk * FELICA_BLOCK;
    }
    return 0;
}

static bool felica_polling(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx,
                           size_t *rx_len)
{
    if (n != 6)
        return false;
    uint16_t sc = (uint16_t)(tx[2] << 8 | tx[3]);
    if (sc != 0xFFFF && sc != t->sys_code)
        return false;
    size_t len = 18;
    rx[1] = 0x01;
    memcpy(rx + 2, t->uid, 8);
    memcpy(rx + 10, t->pmm, 8);
    if (tx[4] == 0x01) {
        rx[18] = (uint8_t)(t->sys_code >> 8);
        rx[19] = (uint8_t)t->sys_code;
        len = 20;
    }
    rx[0] = (uint8_t)len;
    *rx_len = len;
    return true;
}

bool felica_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t *rx_len)
{
    if (n < 2 || tx[0] != n)
        return false;
    if (tx[1] == FELICA_POLLING)
        return felica_polling(t, tx, n, rx, rx_len);
    if ((tx[1] != FELICA_CHECK && tx[1] != FELICA_UPDATE) || n < 10 ||
        memcmp(tx + 2, t->uid, 8) != 0)
        return false;
    bool update = tx[1] == FELICA_UPDATE;
    struct felica_req r;
    size_t data_len = 0;
    uint16_t sf = felica_parse(tx + 10, n - 10, &r);
    if (!sf)
        sf = felica_rw(t, &r, update, rx + 12, &data_len);
    rx[1] = (uint8_t)(tx[1] + 1);
    memcpy(rx + 2, t->uid, 8);
    rx[10] = (uint8_t)(sf >> 8);
    rx[11] = (uint8_t)sf;
    *rx_len = 12 + (sf ? 0 : data_len);
    rx[0] = (uint8_t)*rx_len;
    return true;
}

/* ---- ISO 15693 ---- */

#define V_FLAG_ADDRESSED 0x20u
#define V_FLAG_OPTION    0x40u
#define V_ERR_NOT_SUPP   0x01u
#define V_ERR_UNKNOWN    0x0Fu
#define V_ERR_BLOCK      0x10u
#define V_ERR_LOCKED_ALR 0x11u
#define V_ERR_LOCKED     0x12u

void iso15693_format(struct nfc_tag *t)
{
    put_text(t->mem, "SCRM ICODE SLI blocks 0..27.....");
    t->dsfid = 0x00;
}

static bool v_error(uint8_t code, uint8_t *rx, size_t *rx_len)
{
    rx[0] = 0x01;
    rx[1] = code;
    *rx_len = 2;
    return true;
}

static bool v_read(struct nfc_tag *t, uint8_t flags, unsigned b, uint8_t *rx, size_t *rx_len)
{
    if (b >= ISO15693_BLOCKS)
        return v_error(V_ERR_BLOCK, rx, rx_len);
    size_t i = 0;
    rx[i++] = 0x00;
    if (flags & V_FLAG_OPTION)
        rx[i++] = (t->locked >> b) & 1u;
    memcpy(rx + i, t->mem + b * ISO15693_BLOCK, ISO15693_BLOCK);
    *rx_len = i + ISO15693_BLOCK;
    return true;
}

static bool v_write(struct nfc_tag *t, unsigned b, const uint8_t *d, uint8_t *rx, size_t *rx_len)
{
    if (b >= ISO15693_BLOCKS)
        return v_error(V_ERR_BLOCK, rx, rx_len);
    if (t->locked & (1u << b))
        return v_error(V_ERR_LOCKED, rx, rx_len);
    memcpy(t->mem + b * ISO15693_BLOCK, d, ISO15693_BLOCK);
    rx[0] = 0x00;
    *rx_len = 1;
    return true;
}

static bool v_lock(struct nfc_tag *t, unsigned b, uint8_t *rx, size_t *rx_len)
{
    if (b >= ISO15693_BLOCKS)
        return v_error(V_ERR_BLOCK, rx, rx_len);
    if (t->locked & (1u << b))
        return v_error(V_ERR_LOCKED_ALR, rx, rx_len);
    t->locked |= 1u << b;
    rx[0] = 0x00;
    *rx_len = 1;
    return true;
}

static bool v_system_info(struct nfc_tag *t, uint8_t *rx, size_t *rx_len)
{
    rx[0] = 0x00;
    rx[1] = 0x0F; /* DSFID, AFI, memory size and IC reference present */
    memcpy(rx + 2, t->uid, 8);
    rx[10] = t->dsfid;
    rx[11] = 0x00; /* AFI */
    rx[12] = ISO15693_BLOCKS - 1;
    rx[13] = ISO15693_BLOCK - 1;
    rx[14] = 0x01; /* IC reference */
    *rx_len = 15;
    return true;
}

bool iso15693_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t *rx_len)
{
    if (n < 2)
        return false;
    uint8_t flags = tx[0], cmd = tx[1];
    size_t p = 2;
    if (flags & V_FLAG_ADDRESSED) {
        if (n < 10 || memcmp(tx + 2, t->uid, 8) != 0)
            return false; /* addressed to another tag */
        p = 10;
    }
    switch (cmd) {
    case 0x20:
        return n == p + 1 ? v_read(t, flags, tx[p], rx, rx_len)
                          : v_error(V_ERR_UNKNOWN, rx, rx_len);
    case 0x21:
        if (n != p + 1 + ISO15693_BLOCK)
            return v_error(V_ERR_UNKNOWN, rx, rx_len);
        return v_write(t, tx[p], tx + p + 1, rx, rx_len);
    case 0x22:
        return n == p + 1 ? v_lock(t, tx[p], rx, rx_len) : v_error(V_ERR_UNKNOWN, rx, rx_len);
    case 0x2B: return v_system_info(t, rx, rx_len);
    default: return v_error(V_ERR_NOT_SUPP, rx, rx_len);
    }
}

/* ---- Jewel / Topaz ---- */

#define J_RID    0x78u
#define J_RALL   0x00u
#define J_READ   0x01u
#define J_WRITEE 0x53u
#define J_READ8  0x02u
#define J_WRITE8 0x54u
#define J_RSEG   0x10u
#define J_BLOCKS (JEWEL_MEM / 8u)

void jewel_format(struct nfc_tag *t)
{
    static const uint8_t cc[4] = {0xE1, 0x10, 0x0E, 0x00}; /* NFC Forum type 1 capability */
    memcpy(t->mem, t->uid, 4);
    t->mem[4] = 0x53; /* UID4..6 */
    t->mem[5] = 0x43;
    t->mem[6] = 0x52;
    memcpy(t->mem + 8, cc, sizeof(cc));
    put_text(t->mem + 16, "SCRM JEWEL/TOPAZ DATA BLOCK 2..C");
}

static bool jewel_writable(const struct nfc_tag *t, unsigned block)
{
    if (block == 0 || block == 0xD || block >= J_BLOCKS)
        return false;
    if (block == 0xE)
        return true;
    unsigned lock = t->mem[0x70] | (unsigned)t->mem[0x71] << 8;
    return !(lock & (1u << block));
}

static bool jewel_rall(struct nfc_tag *t, uint8_t *rx, size_t *rx_len)
{
    rx[0] = t->hr0;
    rx[1] = t->hr1;
    memcpy(rx + 2, t->mem, JEWEL_MEM);
    *rx_len = 2 + JEWEL_MEM;
    return true;
}

/* READ8 / WRITE-E8 / RSEG: 14-byte frames. */
static bool jewel_eight(struct nfc_tag *t, const uint8_t *tx, uint8_t *rx, size_t *rx_len)
{
    unsigned b = tx[1];
    rx[0] = tx[1];
    if (tx[0] == J_RSEG) {
        if (b != 0)
            return false; /* only segment 0 exists */
        memcpy(rx + 1, t->mem, JEWEL_MEM);
        memset(rx + 1 + JEWEL_MEM, 0, 128 - JEWEL_MEM);
        *rx_len = 1 + 128;
        return true;
    }
    if (b >= J_BLOCKS || (tx[0] == J_WRITE8 && !jewel_writable(t, b)))
        return false;
    if (tx[0] == J_WRITE8)
        memcpy(t->mem + 8 * b, tx + 2, 8);
    memcpy(rx + 1, t->mem + 8 * b, 8);
    *rx_len = 9;
    return true;
}

bool jewel_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t *rx_len)
{
    if (n == 7 && tx[0] == J_RID) {
        rx[0] = t->hr0;
        rx[1] = t->hr1;
        memcpy(rx + 2, t->uid, 4);
        *rx_len = 6;
        return true;
    }
    if ((n != 7 && n != 14) || memcmp(tx + n - 4, t->uid, 4) != 0)
        return false;
    if (n == 14 && (tx[0] == J_READ8 || tx[0] == J_WRITE8 || tx[0] == J_RSEG))
        return jewel_eight(t, tx, rx, rx_len);
    if (n != 7)
        return false;
    unsigned addr = tx[1];
    switch (tx[0]) {
    case J_RALL: return jewel_rall(t, rx, rx_len);
    case J_READ:
    case J_WRITEE:
        if (addr >= JEWEL_MEM || (tx[0] == J_WRITEE && !jewel_writable(t, addr / 8)))
            return false;
        if (tx[0] == J_WRITEE)
            t->mem[addr] = tx[2];
        rx[0] = (uint8_t)addr;
        rx[1] = t->mem[addr];
        *rx_len = 2;
        return true;
    default: return false;
    }
}
