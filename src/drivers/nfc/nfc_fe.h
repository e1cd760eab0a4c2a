/*
 * The contactless front end seen by the NFC reader driver: an ops table that a hardware backend
 * (a libnfc device, later) and the simulated RF field (nfc_simfield.c) both implement, so the
 * driver above them is the same.
 *
 * The front end owns the radio and the RF protocols below the data the driver exchanges:
 *   - field on/off; poll = look for one target and activate it;
 *   - activate = (re)activate the target in the field, optionally with another of its protocols
 *     (multi-protocol tags), deactivate = halt / deselect it;
 *   - transceive = one frame to the activated target and its answer, with a timeout. For an
 *     ISO-DEP target (ISO 14443-4) the frame is an APDU: the front end does the block protocol.
 *     For the other targets it is the tag command without CRC, as a PN53x-class chip accepts it
 *     (MIFARE Classic authentication frames carry the key: the chip does the cipher).
 *     Answers of 4-bit ACK/NAK commands are one byte: MIFARE_ACK or a NAK value;
 *   - events: a target entered the field (activated, described) or the activated one left it.
 *
 * Events come from inside a front-end call made by the driver (the simulated field) or from the
 * front end's own thread (a hardware poller); the driver's handlers take only its small state
 * lock and may call libsmc's event path.
 *
 * Statuses: STATUS_SUCCESS, STATUS_NO_MEDIA (no target / it left), STATUS_IO_TIMEOUT (the target
 * did not answer in time), STATUS_BUFFER_TOO_SMALL (answer longer than rx), STATUS_NOT_SUPPORTED.
 */
#ifndef SCRM_NFC_FE_H
#define SCRM_NFC_FE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smc/defs.h"

struct smc_io;

/* RF protocols a target offers or is activated with (bit set). */
enum nfc_proto {
    NFC_PROTO_ISO_DEP_A = 1u << 0, /* ISO 14443-4 over type A (ATS) */
    NFC_PROTO_ISO_DEP_B = 1u << 1, /* ISO 14443-4 over type B (ATQB, ATTRIB) */
    NFC_PROTO_MIFARE = 1u << 2,    /* ISO 14443-3 A memory commands: MIFARE Classic, Ultralight */
    NFC_PROTO_FELICA = 1u << 3,    /* JIS X 6319-4 */
    NFC_PROTO_ISO15693 = 1u << 4,  /* vicinity cards */
    NFC_PROTO_JEWEL = 1u << 5,     /* Jewel / Topaz (NFC Forum type 1) */
};

/* Ultralight family member, told apart by the front end for SAK 00 (GET_VERSION, AUTHENTICATE). */
enum nfc_ul_type { NFC_UL_NONE, NFC_UL, NFC_UL_C, NFC_UL_EV1 };

#define NFC_MAX_UID  10u
#define NFC_MAX_HIST 32u

/* An activated target, as the front end reports it. */
struct nfc_target {
    uint32_t proto;  /* the protocol it is activated with (one enum nfc_proto bit) */
    uint32_t protos; /* every protocol it offers */
    /* Identifier: 14443-A UID, 14443-B PUPI (4), FeliCa IDm (8), ISO 15693 UID (8, least
     * significant byte first, as sent on air), Jewel UID0..UID3 (4). */
    uint8_t uid[NFC_MAX_UID];
    uint8_t uid_len;
    uint8_t atqa[2], sak;       /* type A */
    enum nfc_ul_type ul_type;   /* SAK 00 */
    uint8_t hist[NFC_MAX_HIST]; /* ISO-DEP A: historical bytes of the ATS */
    uint8_t hist_len;
    uint8_t atqb_app[4];   /* ISO-DEP B: application data of the ATQB */
    uint8_t atqb_proto[3]; /* ISO-DEP B: protocol info of the ATQB */
    uint8_t pmm[8];        /* FeliCa */
    uint16_t sys_code;     /* FeliCa */
    uint8_t hr0, hr1;      /* Jewel header ROM */
    uint8_t dsfid;         /* ISO 15693 */
};

#define MIFARE_ACK 0x0Au

struct nfc_fe_events {
    void *ctx;
    /* A target entered the field and was activated. */
    void (*arrived)(void *ctx, const struct nfc_target *t);
    /* The target left the field (or lost the field's power). */
    void (*left)(void *ctx);
};

struct nfc_fe_ops {
    const char *name; /* "sim" */
    /* Open the front end with the device's options (the keys it does not know are the driver's);
     * events go to ev (copied). STATUS_INVALID_PARAMETER for a bad option value. */
    smc_status (*open)(const char *options, const struct nfc_fe_events *ev, void **fe);
    void (*close)(void *fe);
    /* Radio on / off. Off deactivates the target; no event is reported for it. */
    smc_status (*field)(void *fe, bool on);
    /* Look for a target now and activate it with its default protocol. STATUS_NO_MEDIA: none. */
    smc_status (*poll)(void *fe, struct nfc_target *t);
    /* Re-activate the target in the field (RF reset: halt, wake up, select, and RATS/ATTRIB for
     * ISO-DEP) with protocol `proto` (0: the one it had). STATUS_NOT_SUPPORTED if the target does
     * not offer proto; STATUS_NO_MEDIA if it is gone. */
    smc_status (*activate)(void *fe, uint32_t proto, struct nfc_target *t);
    /* Halt / deselect the activated target (the field stays on). */
    smc_status (*deactivate)(void *fe);
    smc_status (*transceive)(void *fe, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t cap,
                             size_t *rx_len, uint32_t timeout_ms);
    /* Optional: front-end specific vendor IOCTLs (the simulator's tag control). NULL or
     * STATUS_INVALID_DEVICE_REQUEST: not a code of this front end. */
    smc_status (*control)(void *fe, struct smc_io *io);
    /* Optional: counters for NFC_IOCTL_INFO (tag in the field, RF activations so far). */
    void (*info)(void *fe, bool *tag_in_field, uint32_t *activations);
};

/* The front ends compiled in. */
extern const struct nfc_fe_ops nfc_simfield_ops;

#endif
