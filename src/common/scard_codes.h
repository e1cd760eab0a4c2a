/*
 * PC/SC result codes (SCARD_S_*, SCARD_E_*, SCARD_F_*, SCARD_W_*, SCARD_P_*) and the share-mode and
 * disposition constants, written once for the resource manager, the daemon and the client library.
 *
 * The values are those of pcsc-lite on Linux (pcsc-lite's pcsclite.h), which agree with
 * Windows (docs/libsmc.md) except for one quirk kept on purpose for binary
 * compatibility: SCARD_E_UNSUPPORTED_FEATURE is 0x8010001F, the value of SCARD_E_UNEXPECTED
 * (Windows uses 0x80100022). Because the two share a value, UNSUPPORTED_FEATURE comes first in
 * the list so that scard_code_name(0x8010001F) answers "SCARD_E_UNSUPPORTED_FEATURE".
 *
 * SCARD_CODE_LIST(X) calls X(NAME, value, message) once per code; the enum, scard_code_name() and
 * scard_code_message() are generated from it (scard_codes.c).
 *
 * Coexistence with include/PCSC/pcsclite.h: that header defines the same names as macros with
 * the same values. A file that includes the PC/SC headers first gets only the X-macro list and the
 * functions here (the enum and the constants are skipped); the values are identical either way.
 */
#ifndef SCRM_COMMON_SCARD_CODES_H
#define SCRM_COMMON_SCARD_CODES_H

#include <stdint.h>

/* X(NAME, value, message). Messages are scrm's own short descriptions. */
#define SCARD_CODE_LIST(X)                                                                    \
    X(S_SUCCESS, 0x00000000u, "Success.")                                                     \
    X(F_INTERNAL_ERROR, 0x80100001u, "Internal consistency check failed.")                    \
    X(E_CANCELLED, 0x80100002u, "The action was cancelled.")                                  \
    X(E_INVALID_HANDLE, 0x80100003u, "Invalid handle.")                                       \
    X(E_INVALID_PARAMETER, 0x80100004u, "Invalid parameter.")                                 \
    X(E_INVALID_TARGET, 0x80100005u, "Invalid target given.")                                 \
    X(E_NO_MEMORY, 0x80100006u, "Not enough memory.")                                         \
    X(F_WAITED_TOO_LONG, 0x80100007u, "An internal wait timed out.")                          \
    X(E_INSUFFICIENT_BUFFER, 0x80100008u, "The buffer is too small for the result.")          \
    X(E_UNKNOWN_READER, 0x80100009u, "Unknown reader.")                                       \
    X(E_TIMEOUT, 0x8010000Au, "The timeout expired.")                                         \
    X(E_SHARING_VIOLATION, 0x8010000Bu, "The card or reader is in use by another handle.")    \
    X(E_NO_SMARTCARD, 0x8010000Cu, "No card in the reader.")                                  \
    X(E_UNKNOWN_CARD, 0x8010000Du, "Unknown card.")                                           \
    X(E_CANT_DISPOSE, 0x8010000Eu, "The card cannot be disposed of as requested.")            \
    X(E_PROTO_MISMATCH, 0x8010000Fu, "The requested protocols do not match the card's.")      \
    X(E_NOT_READY, 0x80100010u, "The reader or card is not ready.")                           \
    X(E_INVALID_VALUE, 0x80100011u, "A parameter value is invalid.")                          \
    X(E_SYSTEM_CANCELLED, 0x80100012u, "The action was cancelled by the system.")             \
    X(F_COMM_ERROR, 0x80100013u, "Internal communication error.")                             \
    X(F_UNKNOWN_ERROR, 0x80100014u, "Unknown internal error.")                                \
    X(E_INVALID_ATR, 0x80100015u, "Invalid ATR.")                                             \
    X(E_NOT_TRANSACTED, 0x80100016u, "No transaction is in progress on this handle.")         \
    X(E_READER_UNAVAILABLE, 0x80100017u, "The reader is not available.")                      \
    X(P_SHUTDOWN, 0x80100018u, "The operation was aborted for a shutdown.")                   \
    X(E_PCI_TOO_SMALL, 0x80100019u, "The PCI receive buffer is too small.")                   \
    X(E_READER_UNSUPPORTED, 0x8010001Au, "The reader driver does not meet the requirements.") \
    X(E_DUPLICATE_READER, 0x8010001Bu, "A reader of that name exists already.")               \
    X(E_CARD_UNSUPPORTED, 0x8010001Cu, "The card driver does not meet the requirements.")     \
    X(E_NO_SERVICE, 0x8010001Du, "The smart card service is not running.")                    \
    X(E_SERVICE_STOPPED, 0x8010001Eu, "The smart card service has stopped.")                  \
    X(E_UNSUPPORTED_FEATURE, 0x8010001Fu, "The function is not supported.")                   \
    X(E_UNEXPECTED, 0x8010001Fu, "Unexpected card error.")                                    \
    X(E_ICC_INSTALLATION, 0x80100020u, "No primary provider for the card.")                   \
    X(E_ICC_CREATEORDER, 0x80100021u, "The creation order is not supported.")                 \
    X(E_DIR_NOT_FOUND, 0x80100023u, "Directory not found on the card.")                       \
    X(E_FILE_NOT_FOUND, 0x80100024u, "File not found on the card.")                           \
    X(E_NO_DIR, 0x80100025u, "The path is not a directory.")                                  \
    X(E_NO_FILE, 0x80100026u, "The path is not a file.")                                      \
    X(E_NO_ACCESS, 0x80100027u, "Access to the file is denied.")                              \
    X(E_WRITE_TOO_MANY, 0x80100028u, "The card is full.")                                     \
    X(E_BAD_SEEK, 0x80100029u, "Error while setting the file pointer.")                       \
    X(E_INVALID_CHV, 0x8010002Au, "The PIN is wrong.")                                        \
    X(E_UNKNOWN_RES_MNG, 0x8010002Bu, "Unknown resource manager error.")                      \
    X(E_NO_SUCH_CERTIFICATE, 0x8010002Cu, "The certificate does not exist.")                  \
    X(E_CERTIFICATE_UNAVAILABLE, 0x8010002Du, "The certificate cannot be obtained.")          \
    X(E_NO_READERS_AVAILABLE, 0x8010002Eu, "No reader is available.")                         \
    X(E_COMM_DATA_LOST, 0x8010002Fu, "Communication error with the card.")                    \
    X(E_NO_KEY_CONTAINER, 0x80100030u, "The key container does not exist.")                   \
    X(E_SERVER_TOO_BUSY, 0x80100031u, "The resource manager is too busy.")                    \
    X(E_PIN_CACHE_EXPIRED, 0x80100032u, "The PIN cache has expired.")                         \
    X(E_NO_PIN_CACHE, 0x80100033u, "There is no PIN cache.")                                  \
    X(E_READ_ONLY_CARD, 0x80100034u, "The card is read-only.")                                \
    X(W_UNSUPPORTED_CARD, 0x80100065u, "The card's ATR is not supported.")                    \
    X(W_UNRESPONSIVE_CARD, 0x80100066u, "The card does not answer a reset.")                  \
    X(W_UNPOWERED_CARD, 0x80100067u, "The card is not powered.")                              \
    X(W_RESET_CARD, 0x80100068u, "The card was reset.")                                       \
    X(W_REMOVED_CARD, 0x80100069u, "The card was removed.")                                   \
    X(W_SECURITY_VIOLATION, 0x8010006Au, "Access denied by the security policy.")             \
    X(W_WRONG_CHV, 0x8010006Bu, "Wrong PIN.")                                                 \
    X(W_CHV_BLOCKED, 0x8010006Cu, "The PIN is blocked.")                                      \
    X(W_EOF, 0x8010006Du, "End of the card file.")                                            \
    X(W_CANCELLED_BY_USER, 0x8010006Eu, "Cancelled by the user.")                             \
    X(W_CARD_NOT_AUTHENTICATED, 0x8010006Fu, "No PIN was presented to the card.")             \
    X(W_CACHE_ITEM_NOT_FOUND, 0x80100070u, "The item is not in the cache.")                   \
    X(W_CACHE_ITEM_STALE, 0x80100071u, "The cached item is stale.")                           \
    X(W_CACHE_ITEM_TOO_BIG, 0x80100072u, "The item is too big for the cache.")

#ifndef SCARD_S_SUCCESS /* not when the PC/SC headers were included first */
enum scard_code {
#define SCARD_X_ENUM(name, value, msg) SCARD_##name = (value),
    SCARD_CODE_LIST(SCARD_X_ENUM)
#undef SCARD_X_ENUM
};
/* A PC/SC result (SCARD_S_SUCCESS, SCARD_E_*, ...) as the rm and the daemon return it: an enum
 * type of its own, so that gcc (-Wenum-conversion, -Wextra) and clang flag a driver status
 * (smc_status, <smc/defs.h>) returned, assigned or compared where a PC/SC result belongs. */
typedef enum scard_code scard_rc;

/* SCardConnect / SCardReconnect share modes (pcsc-lite values). */
#define SCARD_SHARE_EXCLUSIVE 1u
#define SCARD_SHARE_SHARED    2u
#define SCARD_SHARE_DIRECT    3u

/* Dispositions of SCardDisconnect / SCardEndTransaction and initialisations of SCardReconnect. */
#define SCARD_LEAVE_CARD   0u
#define SCARD_RESET_CARD   1u
#define SCARD_UNPOWER_CARD 2u
#define SCARD_EJECT_CARD   3u
#endif

/* Symbolic name ("SCARD_E_NO_SMARTCARD") or NULL for a value not in the list. */
const char *scard_code_name(uint32_t rc);
/* Short message, or "Unknown error." for a value not in the list (never NULL). */
const char *scard_code_message(uint32_t rc);
/* Name of a share mode ("SCARD_SHARE_SHARED") or of a disposition ("SCARD_RESET_CARD"); NULL if
 * out of range. */
const char *scard_share_name(uint32_t share);
const char *scard_disposition_name(uint32_t disposition);

#endif
