/*
 * Simulated contactless tags: memory contents, UID and the tag side of each RF command set, for
 * the simulated RF field (nfc_simfield.c). A tag is a frame machine with zero latency: the field
 * hands it one reader frame (without CRC, as a PN53x-class chip passes it) and gets its answer,
 * or silence.
 *
 * Command sets (first byte of the frame):
 *   ISO-DEP (14443-4 A/B)  the frame is an APDU; a tiny ISO 7816-4 application answers it:
 *                          SELECT by AID 00 A4 04 00 (NFC_SIM_AID, else 6A82), GET CHALLENGE
 *                          00 84 00 00 Le, ECHO 80 EC 00 00 Lc data; 6D00 / 6E00 otherwise.
 *   MIFARE Classic         60/61 AUTH A/B (block, key[6], uid[4]: the key is compared, no
 *                          Crypto1; a wrong key leaves the tag silent and halted), 30 READ,
 *                          A0 WRITE (16 bytes in one frame), C1 INCREMENT, C0 DECREMENT,
 *                          C2 RESTORE (block, value[4] LE), B0 TRANSFER, 50 00 HALT. Access bits
 *                          of each sector trailer are enforced for keys A and B as the MIFARE
 *                          Classic data sheet tables give them; key A never reads back, key B
 *                          cannot authenticate where it is readable. Answers: 16 data bytes,
 *                          MIFARE_ACK, NAK 04 (not authenticated / not allowed; authentication
 *                          is dropped), NAK 00 (not a valid value block).
 *   MIFARE Ultralight      30 READ (4 pages, rolling over), A2 WRITE, A0 COMPATIBILITY WRITE,
 *                          60 GET_VERSION (EV1 only); lock bits (page 2) and OTP (page 3) are
 *                          OR-written; NAK 00 for a bad or locked page.
 *   FeliCa                 [len 06 IDm ...] Read Without Encryption, [len 08 IDm ...] Write
 *                          Without Encryption, [len 00 sys rc tsn] Polling; status flags
 *                          FF A1 service count, 01 A6 service code, FF A2 block count,
 *                          01 A1 block list.
 *   ISO 15693              [flags cmd (uid[8] if addressed) ...]: 20 READ SINGLE BLOCK,
 *                          21 WRITE SINGLE BLOCK, 22 LOCK BLOCK; errors [01 code]: 10 block
 *                          not available, 12 block locked, 01 command not supported.
 *   Jewel / Topaz          78 RID, 00 RALL, 01 READ, 53 WRITE-E, 02 READ8, 54 WRITE-E8,
 *                          10 RSEG; block 0 and block D are read only, lock bytes 0x70 0x71
 *                          protect blocks 1..C; a refused write is silent.
 *
 * Not thread-safe: the simulated field serialises access.
 */
#ifndef SCRM_NFC_TAG_H
#define SCRM_NFC_TAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/nfc/nfc_fe.h"

struct nfc_tag;

/* True if `profile` names a tag profile (see include/smc/nfc.h). */
bool nfc_tag_profile_exists(const char *profile);
/* The i-th tag profile name, NULL past the end. */
const char *nfc_tag_profile_name(size_t i);

/* A new tag of a profile. uid_len 0 keeps the profile's UID; otherwise the UID must have a length
 * the tag type allows (4 or 7 for 14443-A, 4 for 14443-B and Jewel, 8 for FeliCa and ISO 15693).
 * NULL for an unknown profile, a bad UID length, or no memory. */
struct nfc_tag *nfc_tag_new(const char *profile, const uint8_t *uid, size_t uid_len);
void nfc_tag_free(struct nfc_tag *t);

/* Seed the tag's random generator (GET CHALLENGE); nfc_tag_new seeds it from the UID. */
void nfc_tag_seed(struct nfc_tag *t, uint64_t seed);

/* Protocols the tag offers (enum nfc_proto bits), and the one it is activated with by default. */
uint32_t nfc_tag_protocols(const struct nfc_tag *t);
uint32_t nfc_tag_default_protocol(const struct nfc_tag *t);

/* RF activation with `proto` (0 = the default): the tag wakes up, forgets its volatile state
 * (authentication, selection, halt) and describes itself in *out. False if it does not offer
 * proto. */
bool nfc_tag_activate(struct nfc_tag *t, uint32_t proto, struct nfc_target *out);
/* Halt / deselect: the tag ignores frames until the next activation. */
void nfc_tag_halt(struct nfc_tag *t);

/* One frame from the reader. Writes the answer to rx (at most cap bytes; cap >= 300) and returns
 * true, or returns false when the tag stays silent (halted, wrong key, unknown frame, ...). */
bool nfc_tag_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t cap,
                   size_t *rx_len);

/* The tag's memory (for tests): Classic blocks, Ultralight pages, FeliCa blocks of service 0009
 * then 000B, ISO 15693 blocks, Jewel bytes; NULL for ISO-DEP tags. */
uint8_t *nfc_tag_memory(struct nfc_tag *t, size_t *len);

#endif
