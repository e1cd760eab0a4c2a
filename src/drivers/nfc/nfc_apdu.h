/*
 * Pseudo-APDUs of the NFC reader (docs/nfc.md) with the status words the driver generates itself
 * (docs/nfc.md). A storage card (anything but ISO 14443-4) understands only CLA FF commands, which
 * the driver translates into tag commands sent through the front end; an ISO 14443-4 card gets
 * every APDU unchanged, except Load Key and Switch Protocol, which the driver answers for every
 * card.
 *
 * Envelope commands (FF C2: Manage Session, Transparent Exchange, Increment / Decrement) answer
 * data objects preceded by the generic error status object C0 03 <index> <SW1> <SW2>, where
 * <index> is the 1-based number of the data object that failed (00 when all succeeded); the
 * APDU's own SW1 SW2 repeats that status.
 */
#ifndef SCRM_NFC_APDU_H
#define SCRM_NFC_APDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/nfc/nfc_card.h"

#define NFC_ISO4_TIMEOUT_MS    1500u /* APDU exchange with an ISO 14443-4 card */
#define NFC_STORAGE_TIMEOUT_MS 100u  /* one storage-card command */
#define NFC_RESP_MAX           600u  /* longest pseudo-APDU answer (data + SW) */

/* FF 82 ...: Load Key (recognised for every card). */
bool nfc_apdu_is_load_key(const uint8_t *apdu, size_t len);
/* Load Key into the card session's key table; returns SW1 SW2. */
uint16_t nfc_apdu_load_key(struct nfc_card *c, const uint8_t *apdu, size_t len);

/* FF C2 00 02 with exactly 9 bytes: Switch Protocol (recognised for every card). */
bool nfc_apdu_is_switch_protocol(const uint8_t *apdu, size_t len);
/* The protocol it asks for (NFC_PROTO_MIFARE or NFC_PROTO_ISO_DEP_A), 0 if none we know. */
uint32_t nfc_apdu_switch_target(const uint8_t *apdu, size_t len);

/* FF CA with exactly 5 bytes: Get Data. */
bool nfc_apdu_is_get_data(const uint8_t *apdu, size_t len);

/*
 * Get Data answered by the reader for an ISO 14443-4 card, as PC/SC part 3 readers do (unless the
 * reader option getdata=card sends it to the card, as the NFC class extension does): P1 00 the
 * UID (type A) or PUPI (type B), P1 01 the historical bytes of the ATS (type A) or the higher
 * layer response of the ATTRIB answer (type B; the simulated cards send none). Le and the status
 * words as for a storage card. Answer data + SW1 SW2 in resp.
 */
smc_status nfc_apdu_iso_get_data(struct nfc_card *c, const uint8_t *apdu, size_t len, uint8_t *resp,
                                 size_t cap, size_t *resp_len);

/*
 * A CLA FF APDU for a storage card: translate, exchange with the tag, answer data + SW1 SW2 in
 * resp (cap bytes). STATUS_SUCCESS with the answer; STATUS_NO_MEDIA (the tag left),
 * STATUS_INVALID_DEVICE_STATE (General Authenticate with no key loaded), STATUS_BUFFER_TOO_SMALL
 * (the answer does not fit cap).
 */
smc_status nfc_apdu_storage(struct nfc_card *c, const struct nfc_link *l, const uint8_t *apdu,
                            size_t len, uint8_t *resp, size_t cap, size_t *resp_len);

#endif
