/*
 * Numeric constants of the smart card driver interface: IOCTL codes, reader states, protocol and
 * power values, SCARD_ATTR_* ids, status codes (NTSTATUS meanings), reader types and mechanical
 * characteristics. The values are those of the Windows smart card DDK headers (winsmcrd.h,
 * smclib.h, ntstatus.h) as digested in docs/libsmc.md; drivers and tools are written
 * against them.
 *
 * Each table is one X-macro list. The list generates the enum and the *_name() lookup, so a value
 * is written once. tests/unit/test_defs.c checks every value against
 * literals typed from those headers' documentation.
 */
#ifndef SMC_DEFS_H
#define SMC_DEFS_H

#include <stdint.h>

#if defined(SMC_BUILDING) && defined(__GNUC__)
#define SMC_API __attribute__((visibility("default")))
#else
#define SMC_API
#endif

/* On functions whose result must not be ignored: every function returning a status or an answer
 * (docs/architecture.md, Conventions). */
#if defined(__GNUC__) || defined(__clang__)
#define SMC_MUST_CHECK __attribute__((warn_unused_result))
#else
#define SMC_MUST_CHECK
#endif

/* ---- IOCTL codes: SCARD_CTL_CODE(f) = CTL_CODE(FILE_DEVICE_SMARTCARD 0x31, f, METHOD_BUFFERED, 0)
 */
#define SMC_CTL_CODE(f)          (0x00310000u | ((uint32_t)(f) << 2))
#define SMC_IOCTL_FUNCTION(code) (((code) >> 2) & 0xFFFu)
#define SMC_IOCTL_VENDOR_FIRST   2048u /* vendor IOCTLs: functions 2048..4095 */
#define SMC_IOCTL_VENDOR_LAST    4095u
#define SMC_IOCTL_IS_VENDOR(code) \
    (((code)&0xFFFFC003u) == 0x00310000u && SMC_IOCTL_FUNCTION(code) >= SMC_IOCTL_VENDOR_FIRST)

/* pcsc-lite's SCardControl codes SCARD_CTL_CODE(f) = 0x42000000 + f whose function does not fit
 * a Windows vendor IOCTL (f > 4095, e.g. libccid's PC/SC part 10 features 0x42330000 + n): they
 * go to the driver's vendor slot unchanged (the IFD-handler bridge passes them to IFDHControl). */
#define SMC_IOCTL_IS_PCSC_VENDOR(code) (((code)&0xFF000000u) == 0x42000000u)

/* X(NAME, function): IOCTL_SMARTCARD_<NAME> = SMC_CTL_CODE(function). */
#define SMC_IOCTL_LIST(X)                                              \
    X(POWER, 1)                                                        \
    X(GET_ATTRIBUTE, 2)                                                \
    X(SET_ATTRIBUTE, 3)                                                \
    X(CONFISCATE, 4)                                                   \
    X(TRANSMIT, 5)                                                     \
    X(EJECT, 6)                                                        \
    X(SWALLOW, 7)                                                      \
    X(READ, 8)  /* obsolete; answered STATUS_INVALID_DEVICE_REQUEST */ \
    X(WRITE, 9) /* obsolete; answered STATUS_INVALID_DEVICE_REQUEST */ \
    X(IS_PRESENT, 10)                                                  \
    X(IS_ABSENT, 11)                                                   \
    X(SET_PROTOCOL, 12)                                                \
    X(GET_STATE, 14)                                                   \
    X(GET_LAST_ERROR, 15)                                              \
    X(GET_PERF_CNTR, 16)                                               \
    X(GET_FEATURE_REQUEST, 3400) /* PC/SC part 10 */

enum smc_ioctl {
#define SMC_X_IOCTL(name, f) IOCTL_SMARTCARD_##name = SMC_CTL_CODE(f),
    SMC_IOCTL_LIST(SMC_X_IOCTL)
#undef SMC_X_IOCTL
};

/* ---- Reader states (ordered: "state <= ABSENT" means no card). X(NAME, value) -> SCARD_<NAME> */
#define SMC_STATE_LIST(X) \
    X(UNKNOWN, 0)         \
    X(ABSENT, 1)          \
    X(PRESENT, 2)         \
    X(SWALLOWED, 3)       \
    X(POWERED, 4)         \
    X(NEGOTIABLE, 5)      \
    X(SPECIFIC, 6)

enum smc_state {
#define SMC_X_STATE(name, v) SCARD_##name = (v),
    SMC_STATE_LIST(SMC_X_STATE)
#undef SMC_X_STATE
};

/* ---- Protocols and modifiers. X(NAME, value) -> SCARD_PROTOCOL_<NAME> */
#define SMC_PROTOCOL_LIST(X)  \
    X(UNDEFINED, 0x00000000u) \
    X(T0, 0x00000001u)        \
    X(T1, 0x00000002u)        \
    X(RAW, 0x00010000u)       \
    X(Tx, 0x00000003u)        \
    X(DEFAULT, 0x80000000u)   \
    X(OPTIMAL, 0x00000000u)

enum smc_protocol {
#define SMC_X_PROTO(name, v) SCARD_PROTOCOL_##name = (v),
    SMC_PROTOCOL_LIST(SMC_X_PROTO)
#undef SMC_X_PROTO
};

/* ---- Power commands (input of IOCTL_SMARTCARD_POWER). X(NAME, value) -> SCARD_<NAME> */
#define SMC_POWER_LIST(X) \
    X(POWER_DOWN, 0)      \
    X(COLD_RESET, 1)      \
    X(WARM_RESET, 2)

enum smc_power {
#define SMC_X_POWER(name, v) SCARD_##name = (v),
    SMC_POWER_LIST(SMC_X_POWER)
#undef SMC_X_POWER
};

/* ---- SCARD_ATTR_* ids. SCARD_ATTR_VALUE(class, tag) = class << 16 | tag.
 * X(NAME, value, format): format says how the library encodes the value. */
#define SMC_ATTR_VALUE(cls, tag) (((uint32_t)(cls) << 16) | (uint32_t)(tag))
#define SMC_ATTR_CLASS_LIST(X) \
    X(VENDOR_INFO, 1)          \
    X(COMMUNICATIONS, 2)       \
    X(PROTOCOL, 3)             \
    X(POWER_MGMT, 4)           \
    X(SECURITY, 5)             \
    X(MECHANICAL, 6)           \
    X(VENDOR_DEFINED, 7)       \
    X(IFD_PROTOCOL, 8)         \
    X(ICC_STATE, 9)            \
    X(PERF, 0x7FFE)            \
    X(SYSTEM, 0x7FFF)

enum smc_attr_class {
#define SMC_X_ACLASS(name, v) SCARD_CLASS_##name = (v),
    SMC_ATTR_CLASS_LIST(SMC_X_ACLASS)
#undef SMC_X_ACLASS
};

enum smc_attr_format {
    SMC_AF_DWORD,  /* 4-byte little-endian value */
    SMC_AF_BYTE,   /* one byte */
    SMC_AF_STRING, /* ASCII, returned without NUL */
    SMC_AF_BYTES,  /* raw bytes */
    SMC_AF_NONE,   /* defined id with no library-level value */
};

#define SMC_ATTR_LIST(X)                                  \
    X(VENDOR_NAME, 0x00010100u, SMC_AF_STRING)            \
    X(VENDOR_IFD_TYPE, 0x00010101u, SMC_AF_STRING)        \
    X(VENDOR_IFD_VERSION, 0x00010102u, SMC_AF_DWORD)      \
    X(VENDOR_IFD_SERIAL_NO, 0x00010103u, SMC_AF_STRING)   \
    X(CHANNEL_ID, 0x00020110u, SMC_AF_DWORD)              \
    X(PROTOCOL_TYPES, 0x00030120u, SMC_AF_DWORD)          \
    X(DEFAULT_CLK, 0x00030121u, SMC_AF_DWORD)             \
    X(MAX_CLK, 0x00030122u, SMC_AF_DWORD)                 \
    X(DEFAULT_DATA_RATE, 0x00030123u, SMC_AF_DWORD)       \
    X(MAX_DATA_RATE, 0x00030124u, SMC_AF_DWORD)           \
    X(MAX_IFSD, 0x00030125u, SMC_AF_DWORD)                \
    X(SYNC_PROTOCOL_TYPES, 0x00030126u, SMC_AF_NONE)      \
    X(POWER_MGMT_SUPPORT, 0x00040131u, SMC_AF_DWORD)      \
    X(USER_TO_CARD_AUTH_DEVICE, 0x00050140u, SMC_AF_NONE) \
    X(USER_AUTH_INPUT_DEVICE, 0x00050142u, SMC_AF_NONE)   \
    X(CHARACTERISTICS, 0x00060150u, SMC_AF_DWORD)         \
    X(CURRENT_PROTOCOL_TYPE, 0x00080201u, SMC_AF_DWORD)   \
    X(CURRENT_CLK, 0x00080202u, SMC_AF_DWORD)             \
    X(CURRENT_F, 0x00080203u, SMC_AF_DWORD)               \
    X(CURRENT_D, 0x00080204u, SMC_AF_DWORD)               \
    X(CURRENT_N, 0x00080205u, SMC_AF_DWORD)               \
    X(CURRENT_W, 0x00080206u, SMC_AF_DWORD)               \
    X(CURRENT_IFSC, 0x00080207u, SMC_AF_DWORD)            \
    X(CURRENT_IFSD, 0x00080208u, SMC_AF_DWORD)            \
    X(CURRENT_BWT, 0x00080209u, SMC_AF_DWORD)             \
    X(CURRENT_CWT, 0x0008020Au, SMC_AF_DWORD)             \
    X(CURRENT_EBC_ENCODING, 0x0008020Bu, SMC_AF_DWORD)    \
    X(EXTENDED_BWT, 0x0008020Cu, SMC_AF_DWORD)            \
    X(ICC_PRESENCE, 0x00090300u, SMC_AF_BYTE)             \
    X(ICC_INTERFACE_STATUS, 0x00090301u, SMC_AF_BYTE)     \
    X(CURRENT_IO_STATE, 0x00090302u, SMC_AF_NONE)         \
    X(ATR_STRING, 0x00090303u, SMC_AF_BYTES)              \
    X(ICC_TYPE_PER_ATR, 0x00090304u, SMC_AF_BYTE)         \
    X(ESC_RESET, 0x0007A000u, SMC_AF_NONE)                \
    X(ESC_CANCEL, 0x0007A003u, SMC_AF_NONE)               \
    X(ESC_AUTHREQUEST, 0x0007A005u, SMC_AF_NONE)          \
    X(MAXINPUT, 0x0007A007u, SMC_AF_NONE)                 \
    X(VENDOR_SPECIFIC_INFO, 0x0007A008u, SMC_AF_NONE)     \
    X(DEVICE_UNIT, 0x7FFF0001u, SMC_AF_DWORD)             \
    X(DEVICE_IN_USE, 0x7FFF0002u, SMC_AF_DWORD)           \
    X(DEVICE_FRIENDLY_NAME_A, 0x7FFF0003u, SMC_AF_STRING) \
    X(DEVICE_SYSTEM_NAME_A, 0x7FFF0004u, SMC_AF_STRING)   \
    X(DEVICE_FRIENDLY_NAME_W, 0x7FFF0005u, SMC_AF_BYTES)  \
    X(DEVICE_SYSTEM_NAME_W, 0x7FFF0006u, SMC_AF_BYTES)    \
    X(SUPRESS_T1_IFS_REQUEST, 0x7FFF0007u, SMC_AF_DWORD)

enum smc_attr {
#define SMC_X_ATTR(name, v, fmt) SCARD_ATTR_##name = (v),
    SMC_ATTR_LIST(SMC_X_ATTR)
#undef SMC_X_ATTR
    /* Aliases: ASYNC_PROTOCOL_TYPES is PROTOCOL_TYPES; without UNICODE the plain names are _A. */
    SCARD_ATTR_ASYNC_PROTOCOL_TYPES = SCARD_ATTR_PROTOCOL_TYPES,
    SCARD_ATTR_DEVICE_FRIENDLY_NAME = SCARD_ATTR_DEVICE_FRIENDLY_NAME_A,
    SCARD_ATTR_DEVICE_SYSTEM_NAME = SCARD_ATTR_DEVICE_SYSTEM_NAME_A,
};

/* Performance counter ids (class PERF). X(NAME, value) -> SCARD_PERF_<NAME> */
#define SMC_PERF_LIST(X)              \
    X(NUM_TRANSMISSIONS, 0x7FFE0001u) \
    X(BYTES_TRANSMITTED, 0x7FFE0002u) \
    X(TRANSMISSION_TIME, 0x7FFE0003u)

enum smc_perf {
#define SMC_X_PERF(name, v) SCARD_PERF_##name = (v),
    SMC_PERF_LIST(SMC_X_PERF)
#undef SMC_X_PERF
};

/* ---- Status codes with their NTSTATUS values. X(NAME, value, message) -> STATUS_<NAME> */
#define SMC_STATUS_LIST(X)                                                                \
    X(SUCCESS, 0x00000000u, "success")                                                    \
    X(TIMEOUT, 0x00000102u, "wait timed out")                                             \
    X(PENDING, 0x00000103u, "request pending")                                            \
    X(BUFFER_OVERFLOW, 0x80000005u, "data does not fit the request buffer")               \
    X(DEVICE_POWERED_OFF, 0x8000000Fu, "device powered off")                              \
    X(DEVICE_OFF_LINE, 0x80000010u, "device off line")                                    \
    X(DEVICE_BUSY, 0x80000011u, "device busy")                                            \
    X(UNSUCCESSFUL, 0xC0000001u, "unsuccessful")                                          \
    X(NOT_IMPLEMENTED, 0xC0000002u, "not implemented")                                    \
    X(INVALID_PARAMETER, 0xC000000Du, "invalid parameter")                                \
    X(NO_SUCH_DEVICE, 0xC000000Eu, "no such device")                                      \
    X(INVALID_DEVICE_REQUEST, 0xC0000010u, "invalid device request")                      \
    X(UNRECOGNIZED_MEDIA, 0xC0000014u, "unrecognized card (ATR not usable)")              \
    X(MORE_PROCESSING_REQUIRED, 0xC0000016u, "more processing required")                  \
    X(ACCESS_DENIED, 0xC0000022u, "access denied")                                        \
    X(BUFFER_TOO_SMALL, 0xC0000023u, "output buffer too small")                           \
    X(CRC_ERROR, 0xC000003Fu, "CRC error")                                                \
    X(DELETE_PENDING, 0xC0000056u, "device is being removed")                             \
    X(INSUFFICIENT_RESOURCES, 0xC000009Au, "insufficient resources")                      \
    X(DEVICE_NOT_CONNECTED, 0xC000009Du, "device not connected")                          \
    X(IO_TIMEOUT, 0xC00000B5u, "card or reader did not answer")                           \
    X(NOT_SUPPORTED, 0xC00000BBu, "not supported")                                        \
    X(INVALID_PARAMETER_1, 0xC00000EFu, "invalid first parameter")                        \
    X(INVALID_PARAMETER_2, 0xC00000F0u, "invalid second parameter")                       \
    X(CANCELLED, 0xC0000120u, "cancelled")                                                \
    X(NO_MEDIA, 0xC0000178u, "no card in the reader")                                     \
    X(INVALID_DEVICE_STATE, 0xC0000184u, "request not valid in the current reader state") \
    X(IO_DEVICE_ERROR, 0xC0000185u, "I/O device error")                                   \
    X(DEVICE_PROTOCOL_ERROR, 0xC0000186u, "card protocol error")

enum smc_status_code {
#define SMC_X_STATUS(name, v, msg) STATUS_##name = (v),
    SMC_STATUS_LIST(SMC_X_STATUS)
#undef SMC_X_STATUS
};
typedef enum smc_status_code smc_status;

/* ---- Reader types (SCARD_ATTR_CHANNEL_ID high word). X(NAME, value) -> SCARD_READER_TYPE_<NAME>
 */
#define SMC_READER_TYPE_LIST(X) \
    X(SERIAL, 0x01u)            \
    X(PARALELL, 0x02u)          \
    X(KEYBOARD, 0x04u)          \
    X(SCSI, 0x08u)              \
    X(IDE, 0x10u)               \
    X(USB, 0x20u)               \
    X(PCMCIA, 0x40u)            \
    X(TPM, 0x80u)               \
    X(NFC, 0x100u)              \
    X(UICC, 0x200u)             \
    X(NGC, 0x400u)              \
    X(EMBEDDEDSE, 0x800u)       \
    X(VENDOR, 0xF0u)

enum smc_reader_type {
#define SMC_X_RTYPE(name, v) SCARD_READER_TYPE_##name = (v),
    SMC_READER_TYPE_LIST(SMC_X_RTYPE)
#undef SMC_X_RTYPE
};

/* ---- PC/SC part 10 feature tags (the CM_IOCTL_GET_FEATURE_REQUEST answer). X(NAME, tag) ->
 * FEATURE_<NAME>; only names are generated here (applications get the constants from
 * <PCSC/reader.h>). */
#define SMC_PCSC_FEATURE_LIST(X)       \
    X(VERIFY_PIN_START, 0x01u)         \
    X(VERIFY_PIN_FINISH, 0x02u)        \
    X(MODIFY_PIN_START, 0x03u)         \
    X(MODIFY_PIN_FINISH, 0x04u)        \
    X(GET_KEY_PRESSED, 0x05u)          \
    X(VERIFY_PIN_DIRECT, 0x06u)        \
    X(MODIFY_PIN_DIRECT, 0x07u)        \
    X(MCT_READER_DIRECT, 0x08u)        \
    X(MCT_UNIVERSAL, 0x09u)            \
    X(IFD_PIN_PROPERTIES, 0x0Au)       \
    X(ABORT, 0x0Bu)                    \
    X(SET_SPE_MESSAGE, 0x0Cu)          \
    X(VERIFY_PIN_DIRECT_APP_ID, 0x0Du) \
    X(MODIFY_PIN_DIRECT_APP_ID, 0x0Eu) \
    X(WRITE_DISPLAY, 0x0Fu)            \
    X(GET_KEY, 0x10u)                  \
    X(IFD_DISPLAY_PROPERTIES, 0x11u)   \
    X(GET_TLV_PROPERTIES, 0x12u)       \
    X(CCID_ESC_COMMAND, 0x13u)         \
    X(EXECUTE_PACE, 0x20u)

/* ---- Mechanical characteristics (SCARD_ATTR_CHARACTERISTICS). X(NAME, bit) -> SCARD_READER_<NAME>
 */
#define SMC_MECH_LIST(X) \
    X(SWALLOWS, 0x1u)    \
    X(EJECTS, 0x2u)      \
    X(CONFISCATES, 0x4u) \
    X(CONTACTLESS, 0x8u)

enum smc_mech {
#define SMC_X_MECH(name, v) SCARD_READER_##name = (v),
    SMC_MECH_LIST(SMC_X_MECH)
#undef SMC_X_MECH
};

/* ---- Sizes and T=1 constants of the DDK headers. */
#define SMCLIB_VERSION               0x150u
#define SMCLIB_VERSION_REQUIRED      0x100u
#define MIN_BUFFER_SIZE              288u
#define MAXIMUM_ATR_CODES            4u
#define MAXIMUM_ATR_LENGTH           33u
#define SCARD_ATR_LENGTH             33u
#define MAXIMUM_ATTR_STRING_LENGTH   32u
#define MAXIMUM_SMARTCARD_READERS    10u
#define SCARD_T0_HEADER_LENGTH       7u
#define SCARD_T0_CMD_LENGTH          5u
#define SCARD_T1_PROLOGUE_LENGTH     3u
#define SCARD_T1_EPILOGUE_LENGTH     2u
#define SCARD_T1_EPILOGUE_LENGTH_LRC 1u
#define SCARD_T1_MAX_IFS             254u
#define SMC_IO_HEADER_LENGTH         8u /* SCARD_IO_REQUEST { u32 dwProtocol; u32 cbPciLength; } */

#define T1_INIT             0u
#define T1_START            1u
#define T1_I_BLOCK          2u
#define T1_R_BLOCK          3u
#define T1_RESTART          4u
#define T1_RESYNCH_REQUEST  0xC0u
#define T1_RESYNCH_RESPONSE 0xE0u
#define T1_IFS_REQUEST      0xC1u
#define T1_IFS_RESPONSE     0xE1u
#define T1_ABORT_REQUEST    0xC2u
#define T1_ABORT_RESPONSE   0xE2u
#define T1_WTX_REQUEST      0xC3u
#define T1_WTX_RESPONSE     0xE3u
#define T1_VPP_ERROR        0xE4u
#define T1_IFSD             254u
#define T1_IFSD_DEFAULT     32u
#define T1_MAX_RETRIES      2u
#define T1_MORE_DATA        0x20u
#define T1_ERROR_CHKSUM     1u
#define T1_ERROR_OTHER      2u
#define T1_CRC_CHECK        1u
#define T1_CWI_DEFAULT      13u
#define T1_BWI_DEFAULT      4u

#define PTS_TYPE_DEFAULT 0u
#define PTS_TYPE_OPTIMAL 1u
#define PTS_TYPE_USER    2u

/* SCARD_ATTR_ICC_PRESENCE values */
#define SMC_ICC_ABSENT      0u
#define SMC_ICC_PRESENT     1u
#define SMC_ICC_SWALLOWED   2u
#define SMC_ICC_CONFISCATED 4u

/* ---- Names. Each returns the symbolic name ("IOCTL_SMARTCARD_POWER", "STATUS_NO_MEDIA", ...) or
 * NULL for a value not in its list (smc_ioctl_name also names the vendor range). */
SMC_API const char *smc_ioctl_name(uint32_t code);
SMC_API const char *smc_state_name(uint32_t state);
SMC_API const char *smc_protocol_name(uint32_t protocol);
SMC_API const char *smc_power_name(uint32_t power);
SMC_API const char *smc_attr_name(uint32_t attr);
SMC_API const char *smc_status_name(smc_status status);
SMC_API const char *smc_status_message(smc_status status);
SMC_API const char *smc_reader_type_name(uint32_t type);
/* "FEATURE_VERIFY_PIN_DIRECT" for the PC/SC part 10 feature tag 0x06. */
SMC_API const char *smc_pcsc_feature_name(uint32_t tag);
/* Format for an attribute id: SMC_AF_NONE also for ids outside the list. */
SMC_API enum smc_attr_format smc_attr_format(uint32_t attr);

#endif
