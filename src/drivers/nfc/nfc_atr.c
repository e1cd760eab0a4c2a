/*
 * ATR synthesis for contactless cards (docs/nfc.md PC/SC part 3 style) and the card record built
 * around it.
 *
 * ISO 14443-4 cards: 3B 8n 80 01 <historical bytes> TCK, where the historical bytes are those of
 * the ATS (type A; at most 15 are kept, the T0 nibble cannot count more) or the 4 application data
 * bytes + 3 protocol info bytes of the ATQB + 00 (type B, n = 8).
 * Storage cards: the fixed 20 bytes 3B 8F 80 01 80 4F 0C A0 00 00 03 06 SS 00 NN 00 00 00 00 TCK,
 * with SS/NN from the card type (SAK for MIFARE, HR0 for Jewel / Topaz, UID for ISO 15693).
 * TCK is the XOR of every byte after TS.
 */
#include <string.h>

#include "drivers/nfc/nfc_card.h"
#include "smc/nfc.h"

static const uint8_t storage_prefix[12] = {0x3B, 0x8F, 0x80, 0x01, 0x80, 0x4F,
                                           0x0C, 0xA0, 0x00, 0x00, 0x03, 0x06};

uint8_t nfc_nn_from_sak(uint8_t sak, enum nfc_ul_type ul)
{
    switch (sak) {
    case 0x00:
        if (ul == NFC_UL_C)
            return NFC_NN_ULTRALIGHT_C;
        return ul == NFC_UL_EV1 ? NFC_NN_UL_EV1 : NFC_NN_ULTRALIGHT;
    case 0x08: return NFC_NN_CLASSIC_1K;
    case 0x09: return NFC_NN_MINI;
    case 0x10: return NFC_NN_PLUS_SL2_2K;
    case 0x11: return NFC_NN_PLUS_SL2_4K;
    case 0x18: return NFC_NN_CLASSIC_4K;
    case 0x28: return NFC_NN_CLASSIC_1K; /* JCOP multi-protocol: its Classic side */
    case 0x38: return NFC_NN_CLASSIC_4K; /* SmartMX multi-protocol */
    default: return NFC_NN_NONE;
    }
}

static uint8_t jewel_nn(uint8_t hr0)
{
    switch (hr0) {
    case 0x01:
    case 0x04:
    case 0x05:
    case 0x06:
    case 0x07:
    case 0x08: return NFC_NN_JEWEL;
    case 0x11:
    case 0x12: return NFC_NN_TOPAZ;
    default: return NFC_NN_NONE;
    }
}

/* NXP (manufacturer 04) ICODE SLI / SLIX, -S, -L: IC type 01..03 in the byte before it. */
static uint8_t iso15693_nn(const struct nfc_target *t)
{
    if (t->uid_len == 8 && t->uid[6] == 0x04 && t->uid[5] >= 0x01 && t->uid[5] <= 0x03)
        return NFC_NN_ICODE_SLI;
    return NFC_NN_NONE;
}

static void storage_ss_nn(const struct nfc_target *t, uint8_t *ss, uint8_t *nn)
{
    switch (t->proto) {
    case NFC_PROTO_MIFARE:
        *ss = NFC_SS_14443A_3;
        *nn = nfc_nn_from_sak(t->sak, t->ul_type);
        break;
    case NFC_PROTO_FELICA:
        *ss = NFC_SS_FELICA;
        *nn = NFC_NN_FELICA;
        break;
    case NFC_PROTO_ISO15693:
        *ss = NFC_SS_15693_4;
        *nn = iso15693_nn(t);
        break;
    default: /* Jewel / Topaz: no standard byte */
        *ss = NFC_SS_NONE;
        *nn = jewel_nn(t->hr0);
        break;
    }
}

static uint8_t tck(const uint8_t *atr, size_t len)
{
    uint8_t x = 0;
    for (size_t i = 1; i < len; i++)
        x ^= atr[i];
    return x;
}

size_t nfc_atr_build(const struct nfc_target *t, uint8_t *atr, uint8_t *ss, uint8_t *nn)
{
    uint8_t s = 0, n = 0;
    size_t len;
    if (t->proto == NFC_PROTO_ISO_DEP_A || t->proto == NFC_PROTO_ISO_DEP_B) {
        uint8_t hist[15];
        size_t k;
        if (t->proto == NFC_PROTO_ISO_DEP_A) {
            k = t->hist_len > 15 ? 15 : t->hist_len;
            memcpy(hist, t->hist, k);
        } else {
            memcpy(hist, t->atqb_app, 4);
            memcpy(hist + 4, t->atqb_proto, 3);
            hist[7] = 0x00;
            k = 8;
        }
        atr[0] = 0x3B;
        atr[1] = (uint8_t)(0x80 | k);
        atr[2] = 0x80;
        atr[3] = 0x01;
        memcpy(atr + 4, hist, k);
        len = 4 + k;
    } else {
        storage_ss_nn(t, &s, &n);
        memcpy(atr, storage_prefix, sizeof(storage_prefix));
        atr[12] = s;
        atr[13] = 0x00;
        atr[14] = n;
        memset(atr + 15, 0, 4);
        len = 19;
    }
    atr[len] = tck(atr, len);
    if (ss)
        *ss = s;
    if (nn)
        *nn = n;
    return len + 1;
}

uint8_t nfc_icc_type(const struct nfc_target *t)
{
    switch (t->proto) {
    case NFC_PROTO_ISO_DEP_A:
    case NFC_PROTO_MIFARE: return NFC_ICC_TYPE_14443A;
    case NFC_PROTO_ISO_DEP_B: return NFC_ICC_TYPE_14443B;
    case NFC_PROTO_ISO15693: return NFC_ICC_TYPE_ISO15693;
    default: return NFC_ICC_TYPE_UNKNOWN; /* FeliCa, Jewel / Topaz */
    }
}

/* Card kind and Classic / Ultralight geometry from the card name. */
static void classify(struct nfc_card *c)
{
    c->blocks = 0;
    c->readable = 0;
    switch (c->t.proto) {
    case NFC_PROTO_ISO_DEP_A:
    case NFC_PROTO_ISO_DEP_B: c->kind = NFC_CARD_ISO4; return;
    case NFC_PROTO_FELICA: c->kind = NFC_CARD_FELICA; return;
    case NFC_PROTO_ISO15693: c->kind = NFC_CARD_ISO15693; return;
    case NFC_PROTO_JEWEL: c->kind = NFC_CARD_JEWEL; return;
    default: break;
    }
    static const struct {
        uint8_t nn;
        enum nfc_card_kind kind;
        unsigned blocks, readable;
    } geo[] = {
        {NFC_NN_CLASSIC_1K, NFC_CARD_CLASSIC, 64, 64},
        {NFC_NN_CLASSIC_4K, NFC_CARD_CLASSIC, 256, 256},
        {NFC_NN_MINI, NFC_CARD_CLASSIC, 20, 20},
        {NFC_NN_PLUS_SL2_2K, NFC_CARD_CLASSIC, 128, 128},
        {NFC_NN_PLUS_SL2_4K, NFC_CARD_CLASSIC, 256, 256},
        {NFC_NN_ULTRALIGHT, NFC_CARD_ULTRALIGHT, 16, 16},
        {NFC_NN_ULTRALIGHT_C, NFC_CARD_ULTRALIGHT, 48, 44},
        {NFC_NN_UL_EV1, NFC_CARD_ULTRALIGHT, 20, 20},
    };
    c->kind = NFC_CARD_STORAGE;
    for (size_t i = 0; i < sizeof(geo) / sizeof(geo[0]); i++) {
        if (geo[i].nn == c->nn) {
            c->kind = geo[i].kind;
            c->blocks = geo[i].blocks;
            c->readable = geo[i].readable;
        }
    }
}

void nfc_card_reinit(struct nfc_card *c, const struct nfc_target *t)
{
    c->t = *t;
    c->atr_len = nfc_atr_build(t, c->atr, &c->ss, &c->nn);
    classify(c);
    c->auth_sector = -1;
    c->transparent = false;
    c->rf_off = false;
    c->timeout_ms = 0;
}

void nfc_card_init(struct nfc_card *c, const struct nfc_target *t)
{
    memset(c, 0, sizeof(*c));
    nfc_card_reinit(c, t);
}
