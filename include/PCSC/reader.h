/*
 * Reader-level PC/SC constants: SCARD_ATTR_* attribute ids for SCardGetAttrib/SCardSetAttrib, the
 * SCardControl code macro, and the PC/SC part 10 feature codes and structures (PIN pads, TLV
 * properties), with pcsc-lite's names and values.
 *
 * SCARD_CTL_CODE(n) is 0x42000000 + n on Linux (pcsc-lite's convention, not the Windows CTL_CODE
 * layout). scrm maps the vendor range n = 2048..4095 onto the driver library's IOCTL codes; see
 * docs/pcsc.md ("Control codes").
 */
#ifndef SCRM_PCSC_READER_H
#define SCRM_PCSC_READER_H

#include <inttypes.h>

#include <PCSC/wintypes.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Attributes ------------------------------------------------------------------------------ */
#define SCARD_ATTR_VALUE(Class, Tag) ((((ULONG)(Class)) << 16) | ((ULONG)(Tag)))

#define SCARD_CLASS_VENDOR_INFO    1
#define SCARD_CLASS_COMMUNICATIONS 2
#define SCARD_CLASS_PROTOCOL       3
#define SCARD_CLASS_POWER_MGMT     4
#define SCARD_CLASS_SECURITY       5
#define SCARD_CLASS_MECHANICAL     6
#define SCARD_CLASS_VENDOR_DEFINED 7
#define SCARD_CLASS_IFD_PROTOCOL   8
#define SCARD_CLASS_ICC_STATE      9
#define SCARD_CLASS_SYSTEM         0x7fff

#define SCARD_ATTR_VENDOR_NAME              SCARD_ATTR_VALUE(SCARD_CLASS_VENDOR_INFO, 0x0100)
#define SCARD_ATTR_VENDOR_IFD_TYPE          SCARD_ATTR_VALUE(SCARD_CLASS_VENDOR_INFO, 0x0101)
#define SCARD_ATTR_VENDOR_IFD_VERSION       SCARD_ATTR_VALUE(SCARD_CLASS_VENDOR_INFO, 0x0102)
#define SCARD_ATTR_VENDOR_IFD_SERIAL_NO     SCARD_ATTR_VALUE(SCARD_CLASS_VENDOR_INFO, 0x0103)
#define SCARD_ATTR_CHANNEL_ID               SCARD_ATTR_VALUE(SCARD_CLASS_COMMUNICATIONS, 0x0110)
#define SCARD_ATTR_ASYNC_PROTOCOL_TYPES     SCARD_ATTR_VALUE(SCARD_CLASS_PROTOCOL, 0x0120)
#define SCARD_ATTR_DEFAULT_CLK              SCARD_ATTR_VALUE(SCARD_CLASS_PROTOCOL, 0x0121)
#define SCARD_ATTR_MAX_CLK                  SCARD_ATTR_VALUE(SCARD_CLASS_PROTOCOL, 0x0122)
#define SCARD_ATTR_DEFAULT_DATA_RATE        SCARD_ATTR_VALUE(SCARD_CLASS_PROTOCOL, 0x0123)
#define SCARD_ATTR_MAX_DATA_RATE            SCARD_ATTR_VALUE(SCARD_CLASS_PROTOCOL, 0x0124)
#define SCARD_ATTR_MAX_IFSD                 SCARD_ATTR_VALUE(SCARD_CLASS_PROTOCOL, 0x0125)
#define SCARD_ATTR_SYNC_PROTOCOL_TYPES      SCARD_ATTR_VALUE(SCARD_CLASS_PROTOCOL, 0x0126)
#define SCARD_ATTR_POWER_MGMT_SUPPORT       SCARD_ATTR_VALUE(SCARD_CLASS_POWER_MGMT, 0x0131)
#define SCARD_ATTR_USER_TO_CARD_AUTH_DEVICE SCARD_ATTR_VALUE(SCARD_CLASS_SECURITY, 0x0140)
#define SCARD_ATTR_USER_AUTH_INPUT_DEVICE   SCARD_ATTR_VALUE(SCARD_CLASS_SECURITY, 0x0142)
#define SCARD_ATTR_CHARACTERISTICS          SCARD_ATTR_VALUE(SCARD_CLASS_MECHANICAL, 0x0150)

#define SCARD_ATTR_CURRENT_PROTOCOL_TYPE SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x0201)
#define SCARD_ATTR_CURRENT_CLK           SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x0202)
#define SCARD_ATTR_CURRENT_F             SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x0203)
#define SCARD_ATTR_CURRENT_D             SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x0204)
#define SCARD_ATTR_CURRENT_N             SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x0205)
#define SCARD_ATTR_CURRENT_W             SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x0206)
#define SCARD_ATTR_CURRENT_IFSC          SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x0207)
#define SCARD_ATTR_CURRENT_IFSD          SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x0208)
#define SCARD_ATTR_CURRENT_BWT           SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x0209)
#define SCARD_ATTR_CURRENT_CWT           SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x020a)
#define SCARD_ATTR_CURRENT_EBC_ENCODING  SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x020b)
#define SCARD_ATTR_EXTENDED_BWT          SCARD_ATTR_VALUE(SCARD_CLASS_IFD_PROTOCOL, 0x020c)

#define SCARD_ATTR_ICC_PRESENCE         SCARD_ATTR_VALUE(SCARD_CLASS_ICC_STATE, 0x0300)
#define SCARD_ATTR_ICC_INTERFACE_STATUS SCARD_ATTR_VALUE(SCARD_CLASS_ICC_STATE, 0x0301)
#define SCARD_ATTR_CURRENT_IO_STATE     SCARD_ATTR_VALUE(SCARD_CLASS_ICC_STATE, 0x0302)
#define SCARD_ATTR_ATR_STRING           SCARD_ATTR_VALUE(SCARD_CLASS_ICC_STATE, 0x0303)
#define SCARD_ATTR_ICC_TYPE_PER_ATR     SCARD_ATTR_VALUE(SCARD_CLASS_ICC_STATE, 0x0304)

#define SCARD_ATTR_ESC_RESET       SCARD_ATTR_VALUE(SCARD_CLASS_VENDOR_DEFINED, 0xA000)
#define SCARD_ATTR_ESC_CANCEL      SCARD_ATTR_VALUE(SCARD_CLASS_VENDOR_DEFINED, 0xA003)
#define SCARD_ATTR_ESC_AUTHREQUEST SCARD_ATTR_VALUE(SCARD_CLASS_VENDOR_DEFINED, 0xA005)
#define SCARD_ATTR_MAXINPUT        SCARD_ATTR_VALUE(SCARD_CLASS_VENDOR_DEFINED, 0xA007)

#define SCARD_ATTR_DEVICE_UNIT            SCARD_ATTR_VALUE(SCARD_CLASS_SYSTEM, 0x0001)
#define SCARD_ATTR_DEVICE_IN_USE          SCARD_ATTR_VALUE(SCARD_CLASS_SYSTEM, 0x0002)
#define SCARD_ATTR_DEVICE_FRIENDLY_NAME_A SCARD_ATTR_VALUE(SCARD_CLASS_SYSTEM, 0x0003)
#define SCARD_ATTR_DEVICE_SYSTEM_NAME_A   SCARD_ATTR_VALUE(SCARD_CLASS_SYSTEM, 0x0004)
#define SCARD_ATTR_DEVICE_FRIENDLY_NAME_W SCARD_ATTR_VALUE(SCARD_CLASS_SYSTEM, 0x0005)
#define SCARD_ATTR_DEVICE_SYSTEM_NAME_W   SCARD_ATTR_VALUE(SCARD_CLASS_SYSTEM, 0x0006)
#define SCARD_ATTR_SUPRESS_T1_IFS_REQUEST SCARD_ATTR_VALUE(SCARD_CLASS_SYSTEM, 0x0007)

#ifdef UNICODE
#define SCARD_ATTR_DEVICE_FRIENDLY_NAME SCARD_ATTR_DEVICE_FRIENDLY_NAME_W
#define SCARD_ATTR_DEVICE_SYSTEM_NAME   SCARD_ATTR_DEVICE_SYSTEM_NAME_W
#else
#define SCARD_ATTR_DEVICE_FRIENDLY_NAME SCARD_ATTR_DEVICE_FRIENDLY_NAME_A
#define SCARD_ATTR_DEVICE_SYSTEM_NAME   SCARD_ATTR_DEVICE_SYSTEM_NAME_A
#endif

/* ---- SCardControl codes ---------------------------------------------------------------------- */
#define SCARD_CTL_CODE(code) (0x42000000 + (code))

/* PC/SC part 10: ask the reader which features it has (answer: a list of PCSC_TLV_STRUCTURE). */
#define CM_IOCTL_GET_FEATURE_REQUEST SCARD_CTL_CODE(3400)

#define FEATURE_VERIFY_PIN_START         0x01
#define FEATURE_VERIFY_PIN_FINISH        0x02
#define FEATURE_MODIFY_PIN_START         0x03
#define FEATURE_MODIFY_PIN_FINISH        0x04
#define FEATURE_GET_KEY_PRESSED          0x05
#define FEATURE_VERIFY_PIN_DIRECT        0x06
#define FEATURE_MODIFY_PIN_DIRECT        0x07
#define FEATURE_MCT_READER_DIRECT        0x08
#define FEATURE_MCT_UNIVERSAL            0x09
#define FEATURE_IFD_PIN_PROPERTIES       0x0A
#define FEATURE_ABORT                    0x0B
#define FEATURE_SET_SPE_MESSAGE          0x0C
#define FEATURE_VERIFY_PIN_DIRECT_APP_ID 0x0D
#define FEATURE_MODIFY_PIN_DIRECT_APP_ID 0x0E
#define FEATURE_WRITE_DISPLAY            0x0F
#define FEATURE_GET_KEY                  0x10
#define FEATURE_IFD_DISPLAY_PROPERTIES   0x11
#define FEATURE_GET_TLV_PROPERTIES       0x12
#define FEATURE_CCID_ESC_COMMAND         0x13
#define FEATURE_EXECUTE_PACE             0x20

/* Tags of the FEATURE_GET_TLV_PROPERTIES answer. */
#define PCSCv2_PART10_PROPERTY_wLcdLayout                1
#define PCSCv2_PART10_PROPERTY_bEntryValidationCondition 2
#define PCSCv2_PART10_PROPERTY_bTimeOut2                 3
#define PCSCv2_PART10_PROPERTY_wLcdMaxCharacters         4
#define PCSCv2_PART10_PROPERTY_wLcdMaxLines              5
#define PCSCv2_PART10_PROPERTY_bMinPINSize               6
#define PCSCv2_PART10_PROPERTY_bMaxPINSize               7
#define PCSCv2_PART10_PROPERTY_sFirmwareID               8
#define PCSCv2_PART10_PROPERTY_bPPDUSupport              9
#define PCSCv2_PART10_PROPERTY_dwMaxAPDUDataSize         10
#define PCSCv2_PART10_PROPERTY_wIdVendor                 11
#define PCSCv2_PART10_PROPERTY_wIdProduct                12

/* Multi-byte fields of the part 10 structures are little-endian (CCID order). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_TO_CCID_16(x) ((uint16_t)((((x) >> 8) & 0xFF) | (((x)&0xFF) << 8)))
#define HOST_TO_CCID_32(x) \
    ((((x) >> 24) & 0xFF) | (((x) >> 8) & 0xFF00) | (((x)&0xFF00) << 8) | (((x)&0xFF) << 24))
#else
#define HOST_TO_CCID_16(x) (x)
#define HOST_TO_CCID_32(x) (x)
#endif

/* ---- Part 10 structures: packed, as the reader receives them ------------------------------- */
#pragma pack(push, 1)

/* One entry of the CM_IOCTL_GET_FEATURE_REQUEST answer: feature tag, length 4, control code
 * (big-endian on the wire). */
typedef struct {
    uint8_t tag;
    uint8_t length;
    uint32_t value;
} PCSC_TLV_STRUCTURE;

/* Input of FEATURE_VERIFY_PIN_DIRECT (CCID PC_to_RDR_Secure, PIN verification). */
typedef struct {
    uint8_t bTimerOut;
    uint8_t bTimerOut2;
    uint8_t bmFormatString;
    uint8_t bmPINBlockString;
    uint8_t bmPINLengthFormat;
    uint16_t wPINMaxExtraDigit; /* min and max PIN length */
    uint8_t bEntryValidationCondition;
    uint8_t bNumberMessage;
    uint16_t wLangId;
    uint8_t bMsgIndex;
    uint8_t bTeoPrologue[3];
    uint32_t ulDataLength;
    uint8_t abData[]; /* APDU sent to the card */
} PIN_VERIFY_STRUCTURE;

/* Input of FEATURE_MODIFY_PIN_DIRECT (CCID PC_to_RDR_Secure, PIN modification). */
typedef struct {
    uint8_t bTimerOut;
    uint8_t bTimerOut2;
    uint8_t bmFormatString;
    uint8_t bmPINBlockString;
    uint8_t bmPINLengthFormat;
    uint8_t bInsertionOffsetOld;
    uint8_t bInsertionOffsetNew;
    uint16_t wPINMaxExtraDigit;
    uint8_t bConfirmPIN;
    uint8_t bEntryValidationCondition;
    uint8_t bNumberMessage;
    uint16_t wLangId;
    uint8_t bMsgIndex1;
    uint8_t bMsgIndex2;
    uint8_t bMsgIndex3;
    uint8_t bTeoPrologue[3];
    uint32_t ulDataLength;
    uint8_t abData[];
} PIN_MODIFY_STRUCTURE;

/* Answer of FEATURE_IFD_PIN_PROPERTIES. */
typedef struct {
    uint16_t wLcdLayout;
    uint8_t bEntryValidationCondition;
    uint8_t bTimeOut2;
} PIN_PROPERTIES_STRUCTURE;

#pragma pack(pop)

#ifdef __cplusplus
}
#endif

#endif
