/*
 * Internals of the pseudo-APDU translator shared by nfc_apdu.c (dispatch, Get Data, Read / Update
 * Binary, Load Key, General Authenticate) and nfc_apdu_env.c (the FF C2 envelope commands).
 */
#ifndef SCRM_NFC_APDU_PRIV_H
#define SCRM_NFC_APDU_PRIV_H

#include "common/buf.h"
#include "drivers/nfc/nfc_apdu.h"

/* Status words of docs/nfc.md (Load Key's are PC/SC part 3's). */
#define SW_OK           0x9000u
#define SW_LE_LONG      0x6282u /* Le longer than the data: zero-padded */
#define SW_INVALID      0x6300u /* invalid parameter / no information */
#define SW_NO_RESPONSE  0x6401u /* transparent exchange: the tag did not answer */
#define SW_MEMORY       0x6581u /* memory failure / authentication parameter error */
#define SW_LENGTH       0x6700u
#define SW_CLASS        0x6800u
#define SW_INCOMPATIBLE 0x6981u /* command incompatible with the card */
#define SW_SECURITY     0x6982u /* not authenticated */
#define SW_AUTH_VERSION 0x6983u /* wrong authentication version / key structure */
#define SW_LK_SECURED   0x6985u /* Load Key: secured transmission not supported */
#define SW_NOT_ALLOWED  0x6986u /* wrong key type / command not allowed */
#define SW_LK_NONVOL    0x6987u /* Load Key: non-volatile memory not available */
#define SW_KEY_NUMBER   0x6988u
#define SW_LK_KEYLEN    0x6989u /* Load Key: invalid key length */
#define SW_VALUE        0x6A80u
#define SW_FUNCTION     0x6A81u /* function not supported */
#define SW_ADDRESS      0x6A82u
#define SW_P1P2         0x6B00u
#define SW_LE_SHORT     0x6C00u /* | available length */
#define SW_UNKNOWN      0x6F00u

/* One pseudo-APDU being answered. */
struct apdu_ctx {
    struct nfc_card *c;
    const struct nfc_link *l;
    const uint8_t *a; /* the APDU */
    size_t n;
    struct scrm_buf out; /* response data (the SW is added at the end) */
    smc_status st;       /* set when the exchange must fail as a whole (tag gone, ...) */
};

/* One tag frame with a timeout. Returns STATUS_SUCCESS, STATUS_IO_TIMEOUT (silent tag) or
 * another failure; STATUS_NO_MEDIA is also recorded in x->st, which ends the APDU. */
smc_status apdu_xfer(struct apdu_ctx *x, const uint8_t *tx, size_t n, uint8_t *rx, size_t cap,
                     size_t *rx_len, uint32_t timeout_ms);

/* MIFARE Classic sector of a block, and the SW for a NAK on it (69 82 when the driver did not
 * authenticate that sector, 69 86 when it did). The authentication is gone after a NAK. */
unsigned apdu_classic_sector(unsigned block);
uint16_t apdu_classic_denied(struct apdu_ctx *x, unsigned block);

/* FF C2 P1 P2: Manage Session, Transparent Exchange, Increment / Decrement (nfc_apdu_env.c). */
uint16_t apdu_envelope(struct apdu_ctx *x);

#endif
