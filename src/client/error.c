/*
 * The data objects and the one non-SCard function libpcsclite.so.1 exports: the three ready-made
 * protocol control structures (applications reach them through SCARD_PCI_T0/T1/RAW, so they must
 * be real exported objects) and pcsc_stringify_error().
 */
#include <stdio.h>

#include "client/client.h"
#include "common/scard_codes.h"

CLIENT_EXPORT const SCARD_IO_REQUEST g_rgSCardT0Pci = {SCARD_PROTOCOL_T0, sizeof(SCARD_IO_REQUEST)};
CLIENT_EXPORT const SCARD_IO_REQUEST g_rgSCardT1Pci = {SCARD_PROTOCOL_T1, sizeof(SCARD_IO_REQUEST)};
CLIENT_EXPORT const SCARD_IO_REQUEST g_rgSCardRawPci = {SCARD_PROTOCOL_RAW,
                                                        sizeof(SCARD_IO_REQUEST)};

/*
 * Text for a result code. Known codes give a constant string; an unknown one is formatted into a
 * per-thread buffer, so the result stays valid until the same thread calls again. Codes passed
 * through a 32-bit int (sign-extended) are recognised too.
 */
CLIENT_EXPORT const char *pcsc_stringify_error(const LONG pcscError)
{
    static _Thread_local char unknown[48];
    uint32_t code = (uint32_t)pcscError;

    if ((pcscError >= 0 && pcscError <= 0xFFFFFFFFL) ||
        (pcscError < 0 && pcscError >= -0x80000000L)) {
        if (scard_code_name(code) != NULL)
            return scard_code_message(code);
    }
    snprintf(unknown, sizeof unknown, "Unknown error: 0x%08lX", (unsigned long)pcscError);
    return unknown;
}
