/*
 * The IFD handler interface (pcsc-lite's reader-driver API, versions 2 and 3) as the handler
 * libraries see it on Linux: the types and constants from the public header ifdhandler.h of
 * pcsc-lite, restated here so the bridge needs no libpcsclite-dev. DWORD and RESPONSECODE are
 * `unsigned long` / `long` (8 bytes on 64-bit Linux), SCARD_IO_HEADER is passed by value.
 */
#ifndef SCRM_DRIVERS_IFD_ABI_H
#define SCRM_DRIVERS_IFD_ABI_H

typedef unsigned long ifd_dword;
typedef long ifd_rc;

struct ifd_io_header {
    ifd_dword protocol; /* 0 = T=0, 1 = T=1, 4 = raw */
    ifd_dword length;
};

/* X(name, value): return codes. */
#define IFD_RC_LIST(X)                    \
    X(IFD_SUCCESS, 0)                     \
    X(IFD_ERROR_TAG, 600)                 \
    X(IFD_ERROR_SET_FAILURE, 601)         \
    X(IFD_ERROR_VALUE_READ_ONLY, 602)     \
    X(IFD_ERROR_PTS_FAILURE, 605)         \
    X(IFD_ERROR_NOT_SUPPORTED, 606)       \
    X(IFD_PROTOCOL_NOT_SUPPORTED, 607)    \
    X(IFD_ERROR_POWER_ACTION, 608)        \
    X(IFD_ERROR_SWALLOW, 609)             \
    X(IFD_ERROR_EJECT, 610)               \
    X(IFD_ERROR_CONFISCATE, 611)          \
    X(IFD_COMMUNICATION_ERROR, 612)       \
    X(IFD_RESPONSE_TIMEOUT, 613)          \
    X(IFD_NOT_SUPPORTED, 614)             \
    X(IFD_ICC_PRESENT, 615)               \
    X(IFD_ICC_NOT_PRESENT, 616)           \
    X(IFD_NO_SUCH_DEVICE, 617)            \
    X(IFD_ERROR_INSUFFICIENT_BUFFER, 618) \
    X(IFD_PARITY_ERROR, 699)

enum ifd_rc_code {
#define IFD_X_RC(name, v) name = (v),
    IFD_RC_LIST(IFD_X_RC)
#undef IFD_X_RC
};

enum {
    IFD_POWER_UP = 500,
    IFD_POWER_DOWN = 501,
    IFD_RESET = 502,
    IFD_MAX_ATR = 33,                /* MAX_ATR_SIZE */
    IFD_MAX_BUFFER_EXTENDED = 65548, /* MAX_BUFFER_SIZE_EXTENDED */
    IFD_PCSC_CTL_BASE = 0x42000000,  /* pcsc-lite's SCARD_CTL_CODE(0) */
    IFD_LOG_DEBUG = 0,               /* log_msg priorities (debuglog.h) */
    IFD_LOG_INFO = 1,
    IFD_LOG_ERROR = 2,
    IFD_LOG_CRITICAL = 3,
};

/* Capability tags (TAG_IFD_*). */
enum {
    IFD_TAG_ATR = 0x0303,
    IFD_TAG_SLOT_THREAD_SAFE = 0x0FAC,
    IFD_TAG_THREAD_SAFE = 0x0FAD,
    IFD_TAG_SLOTS_NUMBER = 0x0FAE,
    IFD_TAG_SIMULTANEOUS_ACCESS = 0x0FAF,
    IFD_TAG_POLLING_THREAD = 0x0FB0,
    IFD_TAG_POLLING_THREAD_KILLABLE = 0x0FB1,
    IFD_TAG_STOP_POLLING_THREAD = 0x0FB2,
    IFD_TAG_POLLING_THREAD_WITH_TIMEOUT = 0x0FB3,
    IFD_TAG_DEVICE_REMOVED = 0x0FB4,
};

/* The entry points. */
typedef ifd_rc (*ifd_create_by_name_fn)(ifd_dword lun, char *device);
typedef ifd_rc (*ifd_create_fn)(ifd_dword lun, ifd_dword channel);
typedef ifd_rc (*ifd_close_fn)(ifd_dword lun);
typedef ifd_rc (*ifd_get_caps_fn)(ifd_dword lun, ifd_dword tag, ifd_dword *len,
                                  unsigned char *value);
typedef ifd_rc (*ifd_set_caps_fn)(ifd_dword lun, ifd_dword tag, ifd_dword len,
                                  unsigned char *value);
typedef ifd_rc (*ifd_set_proto_fn)(ifd_dword lun, ifd_dword protocol, unsigned char flags,
                                   unsigned char pts1, unsigned char pts2, unsigned char pts3);
typedef ifd_rc (*ifd_power_fn)(ifd_dword lun, ifd_dword action, unsigned char *atr,
                               ifd_dword *atr_len);
typedef ifd_rc (*ifd_transmit_fn)(ifd_dword lun, struct ifd_io_header send_pci, unsigned char *tx,
                                  ifd_dword tx_len, unsigned char *rx, ifd_dword *rx_len,
                                  struct ifd_io_header *recv_pci);
typedef ifd_rc (*ifd_presence_fn)(ifd_dword lun);
/* v3 Control */
typedef ifd_rc (*ifd_control_fn)(ifd_dword lun, ifd_dword code, unsigned char *tx, ifd_dword tx_len,
                                 unsigned char *rx, ifd_dword rx_len, ifd_dword *returned);
/* v2 Control: (Lun, TxBuffer, TxLength, RxBuffer, PDWORD RxLength) */
typedef ifd_rc (*ifd_control2_fn)(ifd_dword lun, unsigned char *tx, ifd_dword tx_len,
                                  unsigned char *rx, ifd_dword *rx_len);
/* TAG_IFD_POLLING_THREAD_WITH_TIMEOUT and TAG_IFD_STOP_POLLING_THREAD */
typedef ifd_rc (*ifd_poll_fn)(ifd_dword lun, int timeout_ms);
typedef ifd_rc (*ifd_stop_fn)(ifd_dword lun);

/* Name of a return code ("IFD_ICC_NOT_PRESENT"), or NULL. */
const char *ifd_rc_name(ifd_rc rc);

#endif
