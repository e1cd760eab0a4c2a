/*
 * The contactless (NFC) reader driver ("nfc", src/drivers/nfc; its only front end is simulated, so
 * -Dsimulators=false leaves it out). It implements the smart-card IOCTL contract of an NFC reader
 * (docs/nfc.md) on top of a contactless front end; the front end compiled in today is a simulated
 * RF field in which simulated tags enter and leave at run time. docs/nfc.md describes the behaviour
 * in full.
 *
 * Device string:  nfc:<address>[:option=value,...]
 *   vendor=<s>     SCARD_ATTR_VENDOR_NAME      (default "SCRM")
 *   ifd=<s>        SCARD_ATTR_VENDOR_IFD_TYPE  (default "IFD")
 *   unit=<n>       SCARD_ATTR_DEVICE_UNIT      (default 0, as an NFC reader reports)
 *   radio=on|off   state of the NFC radio at start (default on)
 *   frontend=sim   the contactless front end (only "sim" so far)
 *   tag=<profile>  a tag in the field from the start (default none); profiles below
 *   uid=<hex>      UID of that tag (default: the profile's own UID)
 *
 * Reader states: ABSENT (no card) and SPECIFIC (a tag is activated), plus SWALLOWED after a
 * POWER_DOWN switched the card's "virtual" power off (the documented reading of docs/nfc.md); a
 * cold or warm reset re-activates the tag over RF and returns to SPECIFIC.
 *
 * Vendor IOCTLs (also accepted while the radio is off; every other IOCTL then gets
 * STATUS_DEVICE_POWERED_OFF):
 */
#ifndef SMC_NFC_H
#define SMC_NFC_H

#include "smc/defs.h"

#define NFC_IOCTL_BASE 2304u /* vendor functions 2304..2319 */

/* Input: u32 (little-endian) 0 = radio off, 1 = radio on. Switching the radio off takes the power
 * from the tag in the field: a connected card is reported removed. Switching it on discovers the
 * tag in the field, if any. */
#define NFC_IOCTL_RADIO     SMC_CTL_CODE(NFC_IOCTL_BASE + 1)
/* Input: "<profile>" or "<profile>:<uid hex>" (bytes, no NUL needed). The tag enters the RF field
 * and, with the radio on, is activated and reported (state SPECIFIC). STATUS_DEVICE_BUSY if a tag
 * is already in the field, STATUS_INVALID_PARAMETER for an unknown profile or a bad UID,
 * STATUS_NOT_SUPPORTED with a front end that is not simulated. */
#define NFC_IOCTL_TAG_ENTER SMC_CTL_CODE(NFC_IOCTL_BASE + 2)
/* No input. The tag leaves the field. STATUS_NO_MEDIA if there is none. */
#define NFC_IOCTL_TAG_LEAVE SMC_CTL_CODE(NFC_IOCTL_BASE + 3)
/* Input: u32 fault (enum nfc_fault). STATUS_NO_MEDIA if no tag is in the field. */
#define NFC_IOCTL_TAG_FAULT SMC_CTL_CODE(NFC_IOCTL_BASE + 4)
/* Output (NFC_INFO_SIZE bytes): u32 radio on, u32 tag in the field, u32 RF activations so far,
 * u32 transmit session open, u32 transparent session open. */
#define NFC_IOCTL_INFO      SMC_CTL_CODE(NFC_IOCTL_BASE + 5)
#define NFC_INFO_SIZE       20u
/* Output: the tag profile names NFC_IOCTL_TAG_ENTER accepts, each NUL-terminated. */
#define NFC_IOCTL_PROFILES  SMC_CTL_CODE(NFC_IOCTL_BASE + 6)

enum nfc_fault {
    NFC_FAULT_NONE = 0,       /* clear the faults */
    NFC_FAULT_MUTE = 1,       /* the tag stops answering frames (STATUS_IO_TIMEOUT / no answer) */
    NFC_FAULT_LEAVE_NEXT = 2, /* the tag leaves the field during the next frame sent to it or
                                 the next activation (a reset) */
};

/*
 * Tag profiles (the simulated tags), with what the driver makes of them:
 *   iso4a          ISO 14443-4 type A, 7-byte UID, ATS with historical bytes; answers APDUs
 *   iso4b          ISO 14443-4 type B, PUPI, ATQB application data and protocol info; APDUs
 *   classic1k      MIFARE Classic 1K (SAK 08), 4-byte UID, factory keys FF..FF, transport access
 *   classic4k      MIFARE Classic 4K (SAK 18)
 *   mini           MIFARE Mini (SAK 09), 5 sectors
 *   ultralight     MIFARE Ultralight (SAK 00), 16 pages, 7-byte UID
 *   ultralight-c   MIFARE Ultralight C, 48 pages (3DES authentication not simulated)
 *   ultralight-ev1 MIFARE Ultralight EV1 (MF0UL11), 20 pages, answers GET_VERSION
 *   felica         FeliCa, IDm/PMm, services 0009 (read/write) and 000B (read only)
 *   icode-sli      ISO 15693 NXP ICODE SLI, 28 blocks of 4 bytes
 *   iso15693       ISO 15693 tag of another manufacturer, 28 blocks
 *   jewel          Jewel (HR0 01), 120 bytes
 *   topaz          Topaz (HR0 11), 120 bytes
 *   jcop           multi-protocol (SAK 28): ISO 14443-4 A and MIFARE Classic 1K; Switch Protocol
 *                  moves between them
 * The 14443-4 tags run a tiny ISO 7816-4 application: SELECT by AID (NFC_SIM_AID), GET CHALLENGE
 * (00 84 00 00 Le, Le random bytes, 8 for Le 00) and ECHO (80 EC 00 00 Lc data: returns data).
 */
#define NFC_SIM_AID     "\xF0\x53\x43\x52\x4D\x4E\x46\x43" /* F0 "SCRMNFC" */
#define NFC_SIM_AID_LEN 8

/* SCARD_ATTR_ICC_TYPE_PER_ATR values of an NFC reader. */
#define NFC_ICC_TYPE_UNKNOWN  0u
#define NFC_ICC_TYPE_14443A   5u
#define NFC_ICC_TYPE_14443B   6u
#define NFC_ICC_TYPE_ISO15693 7u

/* Attribute ids an NFC reader forwards to its hardware driver (vendor brand / device capability
 * information); the simulated front end has none: STATUS_INVALID_PARAMETER. */
#define NFC_ATTR_VENDOR_BRAND_INFO 0x00000180u
#define NFC_ATTR_DEVICE_CAP_INFO   0x00000181u

#endif
