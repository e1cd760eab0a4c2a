/*
 * Pseudo-APDUs for storage cards (docs/nfc.md): the CLA FF dispatcher, Get Data, Read Binary
 * and Update Binary for each card type, Load Key and General Authenticate. The envelope commands
 * (FF C2) are in nfc_apdu_env.c.
 *
 * Common rules: CLA other than FF → 68 00; fewer than 5 bytes → 63 00; an INS not emulated →
 * 6A 81. Address checks use the card's geometry where the driver knows it (Classic blocks,
 * Ultralight pages, Jewel blocks); otherwise the tag's own error is mapped (ISO 15693 "block not
 * available" → 6A 82, "locked" → 65 81). A tag that does not answer → 6F 00, except a refused
 * write where the tag type answers refusals with silence (Jewel) → 65 81.
 *
 * Tag frames sent (see nfc_tag.h): MIFARE 30 / A0 / A2 / 60 61, ISO 15693 addressed
 * [22 20 uid blk] / [22 21 uid blk data], Jewel 78 / 00 / 01 / 02 / 10 / 53 / 54 with UID0..3,
 * FeliCa [len 06|08 IDm services blocks (data)].
 */
#include <string.h>

#include "common/log.h"
#include "drivers/nfc/nfc_apdu_priv.h"

#define V_FLAGS_ADDRESSED 0x22u /* high data rate, addressed */

smc_status apdu_xfer(struct apdu_ctx *x, const uint8_t *tx, size_t n, uint8_t *rx, size_t cap,
                     size_t *rx_len, uint32_t timeout_ms)
{
    *rx_len = 0;
    smc_status st = x->l->ops->transceive(x->l->fe, tx, n, rx, cap, rx_len, timeout_ms);
    if (st == STATUS_NO_MEDIA)
        x->st = st;
    return st;
}

unsigned apdu_classic_sector(unsigned block)
{
    return block < 128 ? block / 4 : 32 + (block - 128) / 16;
}

uint16_t apdu_classic_denied(struct apdu_ctx *x, unsigned block)
{
    bool authenticated = x->c->auth_sector == (int)apdu_classic_sector(block);
    x->c->auth_sector = -1;
    return authenticated ? SW_NOT_ALLOWED : SW_SECURITY;
}

static uint16_t put(struct apdu_ctx *x, const void *data, size_t n, uint16_t sw)
{
    scrm_buf_put(&x->out, data, n);
    return sw;
}

/* ---- Get Data ---- */

/* FF CA P1 00 Le: P1 00 the identifier, 01 the historical bytes of the ATR (storage card) or of
 * the ATS (ISO 14443-4 A; the ATTRIB answer's higher layer response for B: none here). */
static uint16_t get_data(struct apdu_ctx *x)
{
    const struct nfc_card *c = x->c;
    uint8_t p1 = x->a[2], p2 = x->a[3], le = x->a[4];
    const uint8_t *v;
    size_t len;
    if (p2 != 0 || p1 > 1)
        return SW_P1P2;
    if (p1 == 0) {
        v = c->t.uid;
        len = c->t.uid_len;
    } else if (c->kind == NFC_CARD_ISO4) {
        bool a = c->t.proto == NFC_PROTO_ISO_DEP_A;
        v = c->t.hist;
        len = a ? c->t.hist_len : 0;
    } else {
        v = c->atr + 4; /* storage-card ATR: 15 historical bytes after 3B 8F 80 01 */
        len = c->atr_len - 5;
    }
    if (le == 0 || le == len)
        return put(x, v, len, SW_OK);
    if (le < len)
        return (uint16_t)(SW_LE_SHORT | len);
    static const uint8_t zeros[255];
    put(x, v, len, SW_OK);
    return put(x, zeros, le - len, SW_LE_LONG);
}

/* ---- Read Binary ---- */

static bool le_is(uint8_t le, uint8_t size)
{
    return le == size || le == 0;
}

static uint16_t read_mifare(struct apdu_ctx *x, unsigned addr, uint8_t le)
{
    struct nfc_card *c = x->c;
    if (x->n != 5 || !le_is(le, 16))
        return SW_LENGTH;
    unsigned limit = c->kind == NFC_CARD_CLASSIC ? c->blocks : c->readable;
    if (addr >= limit)
        return SW_ADDRESS;
    uint8_t tx[2] = {0x30, (uint8_t)addr}, rx[32];
    size_t n;
    smc_status st = apdu_xfer(x, tx, sizeof(tx), rx, sizeof(rx), &n, NFC_STORAGE_TIMEOUT_MS);
    if (st != STATUS_SUCCESS)
        return SW_UNKNOWN;
    if (n == 16)
        return put(x, rx, 16, SW_OK);
    if (c->kind == NFC_CARD_CLASSIC)
        return apdu_classic_denied(x, addr);
    return SW_ADDRESS;
}

/* ISO 15693 error code of an answer [01 code] as a status word. */
static uint16_t v_error(const uint8_t *rx, size_t n, bool write)
{
    if (n >= 2 && rx[0] == 0x01 && rx[1] == 0x10)
        return SW_ADDRESS;
    if (write && n >= 2 && rx[0] == 0x01 && (rx[1] == 0x12 || rx[1] == 0x13))
        return SW_MEMORY;
    return SW_UNKNOWN;
}

static size_t v_frame(const struct nfc_card *c, uint8_t cmd, uint8_t block, uint8_t *tx)
{
    tx[0] = V_FLAGS_ADDRESSED;
    tx[1] = cmd;
    memcpy(tx + 2, c->t.uid, 8);
    tx[10] = block;
    return 11;
}

static uint16_t read_iso15693(struct apdu_ctx *x, uint8_t p1, uint8_t p2, uint8_t le)
{
    if (x->n != 5 || !le_is(le, 4))
        return SW_LENGTH;
    if (p2 != 0)
        return SW_P1P2;
    uint8_t tx[16], rx[16];
    size_t n;
    size_t tn = v_frame(x->c, 0x20, p1, tx);
    if (apdu_xfer(x, tx, tn, rx, sizeof(rx), &n, NFC_STORAGE_TIMEOUT_MS) != STATUS_SUCCESS)
        return SW_UNKNOWN;
    if (n == 5 && rx[0] == 0x00)
        return put(x, rx + 1, 4, SW_OK);
    return v_error(rx, n, false);
}

/* Jewel frame: cmd, a, then 0 / data, padded to 7 or 14 bytes, then UID0..3. */
static size_t j_frame(const struct nfc_card *c, uint8_t cmd, uint8_t a, const uint8_t *d, size_t dn,
                      bool eight, uint8_t *tx)
{
    size_t len = eight ? 14 : 7;
    memset(tx, 0, len);
    tx[0] = cmd;
    tx[1] = a;
    if (dn)
        memcpy(tx + 2, d, dn);
    memcpy(tx + len - 4, c->t.uid, 4);
    return len;
}

/* Which Jewel read Le selects, with its P1 / P2 rules: 0 = bad P1/P2, -1 = bad Le. */
static int jewel_read_frame(const struct nfc_card *c, uint8_t p1, uint8_t p2, uint8_t le,
                            uint8_t *tx, size_t *tn)
{
    switch (le) {
    case 0x00: /* READ ALL */
    case 0x06: /* RID */
        if (p1 || p2)
            return 0;
        *tn =
            le ? j_frame(c, 0x78, 0, NULL, 0, false, tx) : j_frame(c, 0x00, 0, NULL, 0, false, tx);
        return 1;
    case 0x01: /* READ one byte: block P1, byte P2 */
        if (p1 > 0x0F || p2 > 0x07)
            return 0;
        *tn = j_frame(c, 0x01, (uint8_t)(p1 << 3 | p2), NULL, 0, false, tx);
        return 1;
    case 0x08: /* READ8: block P1 */
        if (p2)
            return 0;
        *tn = j_frame(c, 0x02, p1, NULL, 0, true, tx);
        return 1;
    case 0x80: /* READ SEGMENT P2 */
        if (p1 || p2 > 0x03)
            return 0;
        *tn = j_frame(c, 0x10, (uint8_t)(p2 << 4), NULL, 0, true, tx);
        return 1;
    default: return -1;
    }
}

static uint16_t read_jewel(struct apdu_ctx *x, uint8_t p1, uint8_t p2, uint8_t le)
{
    uint8_t tx[16], rx[160];
    size_t tn = 0, n;
    if (x->n != 5)
        return SW_LENGTH;
    int ok = jewel_read_frame(x->c, p1, p2, le, tx, &tn);
    if (ok < 0)
        return SW_LENGTH;
    if (ok == 0)
        return SW_P1P2;
    if (((le == 0x01 || le == 0x08) && p1 > 0x0E) || (le == 0x80 && p2 > 0))
        return SW_ADDRESS; /* 120-byte memory: blocks 0..E, one segment */
    if (apdu_xfer(x, tx, tn, rx, sizeof(rx), &n, NFC_STORAGE_TIMEOUT_MS) != STATUS_SUCCESS)
        return SW_UNKNOWN;
    bool addressed = le == 0x01 || le == 0x08 || le == 0x80; /* answer starts with the address */
    if (addressed && n < 2)
        return SW_UNKNOWN;
    return put(x, rx + (addressed ? 1 : 0), n - (addressed ? 1 : 0), SW_OK);
}

/* FeliCa service / block list of a Read or Update Binary: the driver's structural checks. */
static uint16_t felica_layout(const uint8_t *d, size_t n, bool update)
{
    size_t i = 0;
    if (n < 1 || d[0] == 0 || d[0] > 16)
        return 0xFFA1;
    i = 1 + 2u * d[0];
    if (i >= n)
        return 0x01A1;
    unsigned nblk = d[i++];
    if (nblk == 0 || nblk > 15)
        return 0xFFA2;
    for (unsigned b = 0; b < nblk; b++) {
        if (i >= n)
            return 0x01A1;
        i += (d[i] & 0x80) ? 2u : 3u;
        if (i > n)
            return 0x01A1;
    }
    size_t want = update ? nblk * 16u : 0;
    return n - i == want ? 0 : 0x01A9;
}

/* FeliCa Read / Write Without Encryption from the APDU's data (FF B0|D6 00 00 Lc data). */
static uint16_t felica_rw(struct apdu_ctx *x, bool update)
{
    uint8_t p1 = x->a[2], p2 = x->a[3], lc = x->a[4];
    if (p1 || p2)
        return SW_P1P2;
    if (x->n < 6 || (x->n != 5u + lc && x->n != 6u + lc) || lc > 255 - 10)
        return SW_LENGTH;
    uint16_t sf = felica_layout(x->a + 5, lc, update);
    if (sf)
        return sf;
    uint8_t tx[256], rx[300];
    size_t n;
    tx[0] = (uint8_t)(10 + lc);
    tx[1] = update ? 0x08 : 0x06;
    memcpy(tx + 2, x->c->t.uid, 8);
    memcpy(tx + 10, x->a + 5, lc);
    if (apdu_xfer(x, tx, tx[0], rx, sizeof(rx), &n, NFC_STORAGE_TIMEOUT_MS) != STATUS_SUCCESS ||
        n < 12)
        return SW_UNKNOWN;
    if (rx[10] || rx[11])
        return (uint16_t)(rx[10] << 8 | rx[11]);
    if (update)
        return SW_OK;
    if (n < 13 || n != 13u + rx[12] * 16u)
        return SW_UNKNOWN;
    return put(x, rx + 13, n - 13, SW_OK);
}

static uint16_t read_binary(struct apdu_ctx *x)
{
    uint8_t p1 = x->a[2], p2 = x->a[3], le = x->a[4];
    switch (x->c->kind) {
    case NFC_CARD_CLASSIC: return read_mifare(x, (unsigned)p1 << 8 | p2, le);
    case NFC_CARD_ULTRALIGHT: return p1 ? SW_ADDRESS : read_mifare(x, p2, le);
    case NFC_CARD_ISO15693: return read_iso15693(x, p1, p2, le);
    case NFC_CARD_JEWEL: return read_jewel(x, p1, p2, le);
    case NFC_CARD_FELICA: return felica_rw(x, false);
    default: return SW_FUNCTION;
    }
}

/* ---- Update Binary ---- */

static uint16_t write_classic(struct apdu_ctx *x, unsigned block, const uint8_t *d, size_t lc)
{
    if (lc != 16)
        return SW_LENGTH;
    if (block >= x->c->blocks)
        return SW_ADDRESS;
    uint8_t tx[18], rx[4];
    size_t n;
    tx[0] = 0xA0;
    tx[1] = (uint8_t)block;
    memcpy(tx + 2, d, 16);
    if (apdu_xfer(x, tx, sizeof(tx), rx, sizeof(rx), &n, NFC_STORAGE_TIMEOUT_MS) != STATUS_SUCCESS)
        return SW_UNKNOWN;
    if (n == 1 && rx[0] == MIFARE_ACK)
        return SW_OK;
    return apdu_classic_denied(x, block);
}

static uint16_t write_ultralight(struct apdu_ctx *x, uint8_t p1, uint8_t p2, const uint8_t *d,
                                 size_t lc)
{
    if (lc != 4)
        return SW_LENGTH;
    if (p1 || p2 >= x->c->blocks)
        return SW_ADDRESS;
    uint8_t tx[6] = {0xA2, p2, d[0], d[1], d[2], d[3]}, rx[4];
    size_t n;
    if (apdu_xfer(x, tx, sizeof(tx), rx, sizeof(rx), &n, NFC_STORAGE_TIMEOUT_MS) != STATUS_SUCCESS)
        return SW_UNKNOWN;
    return n == 1 && rx[0] == MIFARE_ACK ? SW_OK : SW_MEMORY; /* locked or read-only page */
}

static uint16_t write_iso15693(struct apdu_ctx *x, uint8_t p1, uint8_t p2, const uint8_t *d,
                               size_t lc)
{
    if (lc != 4)
        return SW_LENGTH;
    if (p2 != 0)
        return SW_P1P2;
    uint8_t tx[16], rx[8];
    size_t n;
    size_t tn = v_frame(x->c, 0x21, p1, tx);
    memcpy(tx + tn, d, 4);
    if (apdu_xfer(x, tx, tn + 4, rx, sizeof(rx), &n, NFC_STORAGE_TIMEOUT_MS) != STATUS_SUCCESS)
        return SW_UNKNOWN;
    if (n == 1 && rx[0] == 0x00)
        return SW_OK;
    return v_error(rx, n, true);
}

/* WRITE-E (Lc 1: block P1, byte P2) and WRITE-E8 (Lc 8: block P1, P2 00). */
static uint16_t write_jewel(struct apdu_ctx *x, uint8_t p1, uint8_t p2, const uint8_t *d, size_t lc)
{
    uint8_t tx[16], rx[16];
    size_t tn, n;
    if (lc == 1) {
        if (p1 > 0x0F || p2 > 0x07)
            return SW_P1P2;
        tn = j_frame(x->c, 0x53, (uint8_t)(p1 << 3 | p2), d, 1, false, tx);
    } else if (lc == 8) {
        if (p2 != 0)
            return SW_P1P2;
        tn = j_frame(x->c, 0x54, p1, d, 8, true, tx);
    } else {
        return SW_LENGTH;
    }
    if (p1 > 0x0E)
        return SW_ADDRESS;
    smc_status st = apdu_xfer(x, tx, tn, rx, sizeof(rx), &n, NFC_STORAGE_TIMEOUT_MS);
    if (st == STATUS_IO_TIMEOUT)
        return SW_MEMORY; /* a Jewel answers a refused write with silence */
    return st == STATUS_SUCCESS ? SW_OK : SW_UNKNOWN;
}

static uint16_t update_binary(struct apdu_ctx *x)
{
    uint8_t p1 = x->a[2], p2 = x->a[3], lc = x->a[4];
    if (x->c->kind == NFC_CARD_FELICA)
        return felica_rw(x, true);
    if (x->n < 6 || x->n != 5u + lc)
        return SW_LENGTH;
    const uint8_t *d = x->a + 5;
    switch (x->c->kind) {
    case NFC_CARD_CLASSIC: return write_classic(x, (unsigned)p1 << 8 | p2, d, lc);
    case NFC_CARD_ULTRALIGHT: return write_ultralight(x, p1, p2, d, lc);
    case NFC_CARD_ISO15693: return write_iso15693(x, p1, p2, d, lc);
    case NFC_CARD_JEWEL: return write_jewel(x, p1, p2, d, lc);
    default: return SW_FUNCTION;
    }
}

/* ---- Load Key, General Authenticate ---- */

bool nfc_apdu_is_load_key(const uint8_t *apdu, size_t len)
{
    return len >= 4 && apdu[0] == 0xFF && apdu[1] == 0x82;
}

/* FF 82 P1 P2 06 key[6]: P1 = key structure (00: plain, volatile), P2 = key number. */
uint16_t nfc_apdu_load_key(struct nfc_card *c, const uint8_t *apdu, size_t len)
{
    if (len != 11)
        return SW_LENGTH;
    uint8_t p1 = apdu[2], number = apdu[3];
    if (p1 & 0x80)
        return SW_AUTH_VERSION; /* reader key not supported */
    if (p1 & 0x40)
        return SW_LK_SECURED;
    if (p1 & 0x20)
        return SW_LK_NONVOL;
    if (p1)
        return SW_INVALID;
    if (apdu[4] != 6)
        return SW_LK_KEYLEN;
    if (number > NFC_KEY_NUMBER_MAX)
        return SW_KEY_NUMBER;
    unsigned i = 0;
    while (i < c->n_keys && c->keys[i].number != number)
        i++;
    if (i == c->n_keys) {
        if (c->n_keys == NFC_KEY_SLOTS)
            return SW_KEY_NUMBER; /* key table full */
        c->n_keys++;
    }
    c->keys[i].number = number;
    memcpy(c->keys[i].key, apdu + 5, 6);
    return SW_OK;
}

static const struct nfc_key *find_key(const struct nfc_card *c, uint8_t number)
{
    for (unsigned i = 0; i < c->n_keys; i++)
        if (c->keys[i].number == number)
            return &c->keys[i];
    return NULL;
}

/* The key check failed: the tag halted; wake it up again so the session can go on. */
static uint16_t auth_failed(struct apdu_ctx *x)
{
    struct nfc_target t;
    x->c->auth_sector = -1;
    if (x->l->ops->activate(x->l->fe, 0, &t) == STATUS_NO_MEDIA)
        x->st = STATUS_NO_MEDIA;
    return SW_INVALID;
}

/* FF 86 00 00 05 {01, block MSB, block LSB, key type 60|61, key number}. */
static uint16_t general_authenticate(struct apdu_ctx *x)
{
    const uint8_t *a = x->a;
    struct nfc_card *c = x->c;
    if (c->kind != NFC_CARD_CLASSIC)
        return SW_INCOMPATIBLE;
    if (x->n != 10 || a[4] != 5)
        return SW_LENGTH;
    if (a[2] || a[3])
        return SW_P1P2;
    if (a[5] != 0x01)
        return SW_AUTH_VERSION;
    if (a[8] != 0x60 && a[8] != 0x61)
        return SW_NOT_ALLOWED;
    if (c->n_keys == 0) {
        x->st = STATUS_INVALID_DEVICE_STATE; /* no key loaded at all */
        return 0;
    }
    const struct nfc_key *k = find_key(c, a[9]);
    if (!k)
        return SW_KEY_NUMBER;
    unsigned block = (unsigned)a[6] << 8 | a[7];
    if (block >= c->blocks)
        return SW_ADDRESS;
    uint8_t tx[12], rx[4];
    size_t n;
    tx[0] = a[8];
    tx[1] = (uint8_t)block;
    memcpy(tx + 2, k->key, 6);
    memcpy(tx + 8, c->t.uid_len == 7 ? c->t.uid + 3 : c->t.uid, 4);
    smc_status st = apdu_xfer(x, tx, sizeof(tx), rx, sizeof(rx), &n, NFC_STORAGE_TIMEOUT_MS);
    if (x->st)
        return 0;
    if (st != STATUS_SUCCESS || n != 0)
        return auth_failed(x);
    c->auth_sector = (int)apdu_classic_sector(block);
    return SW_OK;
}

/* ---- Switch Protocol ---- */

bool nfc_apdu_is_switch_protocol(const uint8_t *apdu, size_t len)
{
    return len == 9 && apdu[0] == 0xFF && apdu[1] == 0xC2 && apdu[2] == 0x00 && apdu[3] == 0x02;
}

/* FF C2 00 02 Lc 8F 02 <standard 00> <layer 03 | 04>. */
uint32_t nfc_apdu_switch_target(const uint8_t *apdu, size_t len)
{
    if (!nfc_apdu_is_switch_protocol(apdu, len) || apdu[7] != 0x00)
        return 0;
    if (apdu[8] == 0x03)
        return NFC_PROTO_MIFARE;
    if (apdu[8] == 0x04)
        return NFC_PROTO_ISO_DEP_A;
    return 0;
}

/* ---- the dispatcher ---- */

static uint16_t dispatch(struct apdu_ctx *x)
{
    if (x->a[0] != 0xFF)
        return SW_CLASS;
    if (x->n < 5)
        return SW_INVALID;
    switch (x->a[1]) {
    case 0xCA: return get_data(x);
    case 0xB0: return read_binary(x);
    case 0xD6: return update_binary(x);
    case 0x86: return general_authenticate(x);
    case 0xC2: return apdu_envelope(x);
    default: return SW_FUNCTION;
    }
}

bool nfc_apdu_is_get_data(const uint8_t *apdu, size_t len)
{
    return len == 5 && apdu[0] == 0xFF && apdu[1] == 0xCA;
}

/* Run one answering function and put data + SW into resp. */
static smc_status answer(struct nfc_card *c, const struct nfc_link *l, const uint8_t *apdu,
                         size_t len, uint16_t (*fn)(struct apdu_ctx *), uint8_t *resp, size_t cap,
                         size_t *resp_len)
{
    uint8_t buf[NFC_RESP_MAX];
    struct apdu_ctx x = {.c = c, .l = l, .a = apdu, .n = len, .st = STATUS_SUCCESS};
    *resp_len = 0;
    if (len == 0)
        return STATUS_INVALID_PARAMETER;
    scrm_buf_init(&x.out, buf, sizeof(buf) - 2);
    uint16_t sw = fn(&x);
    if (x.st != STATUS_SUCCESS)
        return x.st;
    if (x.out.overflow)
        sw = SW_UNKNOWN; /* cannot happen with the answers above; never return half an answer */
    size_t n = x.out.overflow ? 0 : x.out.len;
    buf[n] = (uint8_t)(sw >> 8);
    buf[n + 1] = (uint8_t)sw;
    if (n + 2 > cap)
        return STATUS_BUFFER_TOO_SMALL;
    memcpy(resp, buf, n + 2);
    *resp_len = n + 2;
    log_debug(drv, "nfc: pseudo-APDU %02X %02X -> SW %04X (%zu data bytes)", apdu[0],
              len > 1 ? apdu[1] : 0, sw, n);
    return STATUS_SUCCESS;
}

smc_status nfc_apdu_storage(struct nfc_card *c, const struct nfc_link *l, const uint8_t *apdu,
                            size_t len, uint8_t *resp, size_t cap, size_t *resp_len)
{
    return answer(c, l, apdu, len, dispatch, resp, cap, resp_len);
}

smc_status nfc_apdu_iso_get_data(struct nfc_card *c, const uint8_t *apdu, size_t len, uint8_t *resp,
                                 size_t cap, size_t *resp_len)
{
    return answer(c, NULL, apdu, len, get_data, resp, cap, resp_len);
}
