/*
 * Driver status → PC/SC result (docs/resource-manager.md), in one table.
 *
 * Each row is (driver status, context bits, result). The first row whose status matches and whose
 * context is 0 ("any") or shares a bit with the caller's context wins, so the specific rows of a
 * status come before its general row. A row marked `any` matches every status in its context (the
 * context's fallback, placed after the context's specific rows). A status with no row is
 * SCARD_F_UNKNOWN_ERROR.
 */
#include "rm/internal.h"

struct map_row {
    smc_status status;
    unsigned ops; /* RM_OP_* bits; 0 = any context */
    scard_rc result;
    bool any; /* every status (in the row's context) */
};

/* clang-format off */
static const struct map_row status_map[] = {
    {STATUS_SUCCESS,                0,                                             SCARD_S_SUCCESS},
    /* adding a device (rm_add_reader): the driver could not open it */
    {STATUS_DEVICE_BUSY,            RM_OP_ADD,                                     SCARD_E_DUPLICATE_READER},
    {STATUS_NO_SUCH_DEVICE,         RM_OP_ADD,                                     SCARD_E_UNKNOWN_READER},
    {STATUS_INVALID_PARAMETER,      RM_OP_ADD,                                     SCARD_E_INVALID_VALUE},
    {STATUS_INSUFFICIENT_RESOURCES, RM_OP_ADD,                                     SCARD_E_NO_MEMORY},
    {0,                             RM_OP_ADD,                                     SCARD_E_READER_UNAVAILABLE, .any = true},
    {STATUS_NO_MEDIA,               RM_OP_CONNECT,                                 SCARD_E_NO_SMARTCARD},
    {STATUS_NO_MEDIA,               0,                                             SCARD_W_REMOVED_CARD},
    {STATUS_IO_TIMEOUT,             RM_OP_POWER,                                   SCARD_W_UNRESPONSIVE_CARD},
    {STATUS_IO_TIMEOUT,             0,                                             SCARD_E_TIMEOUT},
    {STATUS_UNRECOGNIZED_MEDIA,     0,                                             SCARD_W_UNSUPPORTED_CARD},
    {STATUS_NOT_SUPPORTED,          RM_OP_PROTOCOL,                                SCARD_E_PROTO_MISMATCH},
    {STATUS_INVALID_DEVICE_REQUEST, RM_OP_PROTOCOL | RM_OP_TRANSMIT | RM_OP_UNPOWERED, SCARD_E_PROTO_MISMATCH},
    {STATUS_INVALID_DEVICE_REQUEST, RM_OP_VENDOR,                                  SCARD_E_UNSUPPORTED_FEATURE},
    {STATUS_NOT_SUPPORTED,          0,                                             SCARD_E_UNSUPPORTED_FEATURE},
    {STATUS_NOT_IMPLEMENTED,        0,                                             SCARD_E_UNSUPPORTED_FEATURE},
    {STATUS_BUFFER_TOO_SMALL,       0,                                             SCARD_E_INSUFFICIENT_BUFFER},
    {STATUS_BUFFER_OVERFLOW,        0,                                             SCARD_E_INSUFFICIENT_BUFFER},
    {STATUS_CANCELLED,              0,                                             SCARD_E_CANCELLED},
    {STATUS_DEVICE_BUSY,            0,                                             SCARD_E_NOT_READY},
    {STATUS_INVALID_DEVICE_STATE,   RM_OP_UNPOWERED,                               SCARD_W_UNPOWERED_CARD},
    {STATUS_INVALID_DEVICE_STATE,   RM_OP_TRANSMIT,                                SCARD_E_PROTO_MISMATCH},
    {STATUS_INVALID_DEVICE_STATE,   0,                                             SCARD_E_NOT_READY},
    {STATUS_DEVICE_PROTOCOL_ERROR,  0,                                             SCARD_E_COMM_DATA_LOST},
    {STATUS_CRC_ERROR,              0,                                             SCARD_E_COMM_DATA_LOST},
    {STATUS_IO_DEVICE_ERROR,        0,                                             SCARD_F_COMM_ERROR},
    {STATUS_DELETE_PENDING,         0,                                             SCARD_E_READER_UNAVAILABLE},
    {STATUS_DEVICE_NOT_CONNECTED,   0,                                             SCARD_E_READER_UNAVAILABLE},
    {STATUS_NO_SUCH_DEVICE,         0,                                             SCARD_E_READER_UNAVAILABLE},
    {STATUS_DEVICE_POWERED_OFF,     0,                                             SCARD_E_READER_UNAVAILABLE},
    {STATUS_DEVICE_OFF_LINE,        0,                                             SCARD_E_READER_UNAVAILABLE},
    {STATUS_INVALID_PARAMETER,      0,                                             SCARD_E_INVALID_PARAMETER},
    {STATUS_INVALID_PARAMETER_1,    0,                                             SCARD_E_INVALID_PARAMETER},
    {STATUS_INVALID_PARAMETER_2,    0,                                             SCARD_E_INVALID_PARAMETER},
    {STATUS_INSUFFICIENT_RESOURCES, 0,                                             SCARD_E_NO_MEMORY},
    {STATUS_ACCESS_DENIED,          0,                                             SCARD_E_SHARING_VIOLATION},
};
/* clang-format on */

scard_rc rm_scard_from_status(smc_status status, unsigned op)
{
    for (size_t i = 0; i < sizeof(status_map) / sizeof(status_map[0]); i++) {
        const struct map_row *row = &status_map[i];
        if ((row->any || row->status == status) && (row->ops == 0 || (row->ops & op)))
            return row->result;
    }
    return SCARD_F_UNKNOWN_ERROR;
}

uint32_t rm_proto_to_smc(uint32_t pcsc)
{
    uint32_t p = 0;
    if (pcsc & RM_PROTOCOL_T0)
        p |= SCARD_PROTOCOL_T0;
    if (pcsc & RM_PROTOCOL_T1)
        p |= SCARD_PROTOCOL_T1;
    if (pcsc & RM_PROTOCOL_RAW)
        p |= SCARD_PROTOCOL_RAW;
    return p;
}

uint32_t rm_proto_from_smc(uint32_t smc)
{
    uint32_t p = 0;
    if (smc & SCARD_PROTOCOL_T0)
        p |= RM_PROTOCOL_T0;
    if (smc & SCARD_PROTOCOL_T1)
        p |= RM_PROTOCOL_T1;
    if (smc & SCARD_PROTOCOL_RAW)
        p |= RM_PROTOCOL_RAW;
    return p;
}
