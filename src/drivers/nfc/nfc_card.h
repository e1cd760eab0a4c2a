/*
 * The activated contactless card as the NFC driver sees it: what the front end reported, what the
 * driver made of it (kind, synthesized ATR, geometry), and the per-card-session state the
 * pseudo-APDUs keep (Load Key table, MIFARE authentication, transparent session).
 *
 * nfc_atr.c builds the ATR (docs/nfc.md); nfc_apdu.c runs the pseudo-APDUs (docs/nfc.md).
 */
#ifndef SCRM_NFC_CARD_H
#define SCRM_NFC_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/nfc/nfc_fe.h"

enum nfc_card_kind {
    NFC_CARD_ISO4,       /* ISO 14443-4 (A or B): APDUs go to the card unchanged */
    NFC_CARD_CLASSIC,    /* MIFARE Classic / Mini / Plus SL2 */
    NFC_CARD_ULTRALIGHT, /* MIFARE Ultralight / C / EV1 */
    NFC_CARD_FELICA,
    NFC_CARD_ISO15693,
    NFC_CARD_JEWEL,   /* Jewel / Topaz */
    NFC_CARD_STORAGE, /* another 14443-3 A memory card: no read or write emulated */
};

/* PC/SC part 3 standard byte (SS) and card names (NN, low byte) of the storage-card ATR. */
#define NFC_SS_NONE         0x00u
#define NFC_SS_14443A_3     0x03u
#define NFC_SS_15693_4      0x0Cu
#define NFC_SS_FELICA       0x11u
#define NFC_NN_NONE         0x00u
#define NFC_NN_CLASSIC_1K   0x01u
#define NFC_NN_CLASSIC_4K   0x02u
#define NFC_NN_ULTRALIGHT   0x03u
#define NFC_NN_ICODE_SLI    0x14u
#define NFC_NN_MINI         0x26u
#define NFC_NN_JEWEL        0x2Fu
#define NFC_NN_TOPAZ        0x30u
#define NFC_NN_PLUS_SL2_2K  0x38u
#define NFC_NN_PLUS_SL2_4K  0x39u
#define NFC_NN_ULTRALIGHT_C 0x3Au
#define NFC_NN_FELICA       0x3Bu
#define NFC_NN_UL_EV1       0x3Du

#define NFC_KEY_SLOTS      8u    /* keys a card session holds */
#define NFC_KEY_NUMBER_MAX 0x1Fu /* key numbers (Load Key P2) 00..1F */
#define NFC_ATR_MAX        33u

struct nfc_key {
    uint8_t number;
    uint8_t key[6];
};

struct nfc_card {
    struct nfc_target t;
    enum nfc_card_kind kind;
    uint8_t atr[NFC_ATR_MAX];
    size_t atr_len;
    uint8_t ss, nn;
    unsigned blocks;   /* Classic blocks / Ultralight pages (0: not known) */
    unsigned readable; /* Ultralight: pages READ may start at */
    struct nfc_key keys[NFC_KEY_SLOTS];
    unsigned n_keys;
    int auth_sector;     /* MIFARE Classic sector authenticated, -1 none */
    bool transparent;    /* a transparent session is open (Manage Session) */
    bool rf_off;         /* RF switched off inside that session */
    uint32_t timeout_ms; /* Transparent Exchange timer */
};

/* The front end a card is reached through. */
struct nfc_link {
    const struct nfc_fe_ops *ops;
    void *fe;
};

/* ---- nfc_atr.c ---- */

/* Build the ATR of an activated target (docs/nfc.md) into atr (NFC_ATR_MAX bytes); returns its
 * length. ss / nn (may be NULL) get the standard and card-name bytes (ISO-DEP: 0). */
size_t nfc_atr_build(const struct nfc_target *t, uint8_t *atr, uint8_t *ss, uint8_t *nn);
/* Card name byte for a 14443-3 A target from its SAK (and Ultralight sub-type). */
uint8_t nfc_nn_from_sak(uint8_t sak, enum nfc_ul_type ul);
/* SCARD_ATTR_ICC_TYPE_PER_ATR of a target. */
uint8_t nfc_icc_type(const struct nfc_target *t);

/* Fill *c for a newly activated target: kind, ATR, geometry; key table and session cleared. */
void nfc_card_init(struct nfc_card *c, const struct nfc_target *t);
/* The same card activated again with another protocol (Switch Protocol): the keys survive. */
void nfc_card_reinit(struct nfc_card *c, const struct nfc_target *t);

#endif
