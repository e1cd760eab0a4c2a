/*
 * ABI check, part 2: an application compiled and linked against pcsc-lite (Debian's
 * libpcsclite-dev headers and libpcsclite.so), run with scrm's libpcsclite.so.1 in its place.
 * It exercises every exported function and data object once against a reader with a T=1 card
 * (argv[1]) and an empty reader (argv[2]) and prints one line per check; exit status 0 if all
 * passed. SCARD_PCI_T1 goes through a copy relocation, so the exported object must be real.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <reader.h>
#include <winscard.h>

static int failures;

static void check(const char *what, LONG got, LONG want)
{
    int ok = got == want;
    printf("%s %s: %s (0x%lX)\n", ok ? "ok" : "FAIL", what, pcsc_stringify_error(got),
           (unsigned long)got);
    failures += !ok;
}

static void card_checks(SCARDCONTEXT ctx, const char *reader)
{
    SCARDHANDLE card;
    DWORD proto, len, state, atr_len = MAX_ATR_SIZE;
    BYTE resp[64], atr[MAX_ATR_SIZE];
    char name[MAX_READERNAME];
    static const BYTE echo[] = {0x80, 0xEC, 0x00, 0x00, 0x02, 0x12, 0x34, 0x00};
    SCARD_IO_REQUEST rpci;
    LPBYTE attr = NULL;

    check("SCardConnect",
          SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T1, &card, &proto),
          SCARD_S_SUCCESS);
    check("protocol T=1", (LONG)proto, SCARD_PROTOCOL_T1);
    len = sizeof resp;
    check("SCardTransmit", SCardTransmit(card, SCARD_PCI_T1, echo, sizeof echo, &rpci, resp, &len),
          SCARD_S_SUCCESS);
    check("echo response", len == 4 && resp[0] == 0x12 && resp[3] == 0x00, 1);
    len = sizeof name;
    check("SCardStatus", SCardStatus(card, name, &len, &state, &proto, atr, &atr_len),
          SCARD_S_SUCCESS);
    check("status name", strcmp(name, reader) == 0, 1);
    check("SCardBeginTransaction", SCardBeginTransaction(card), SCARD_S_SUCCESS);
    check("SCardEndTransaction", SCardEndTransaction(card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
    len = SCARD_AUTOALLOCATE;
    check("SCardGetAttrib", SCardGetAttrib(card, SCARD_ATTR_ATR_STRING, (LPBYTE)&attr, &len),
          SCARD_S_SUCCESS);
    check("attribute = status ATR", len == atr_len && memcmp(attr, atr, len) == 0, 1);
    check("SCardFreeMemory", SCardFreeMemory(ctx, attr), SCARD_S_SUCCESS);
    check("SCardSetAttrib unsupported", SCardSetAttrib(card, 0x7FFF00FF, atr, 1) != 0, 1);
    check("SCardControl feature request",
          SCardControl(card, CM_IOCTL_GET_FEATURE_REQUEST, NULL, 0, resp, sizeof resp, &len),
          SCARD_S_SUCCESS);
    check("SCardReconnect",
          SCardReconnect(card, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T1, SCARD_RESET_CARD, &proto),
          SCARD_S_SUCCESS);
    check("SCardDisconnect", SCardDisconnect(card, SCARD_LEAVE_CARD), SCARD_S_SUCCESS);
}

int main(int argc, char **argv)
{
    SCARDCONTEXT ctx;
    DWORD len = 0;
    char *readers = NULL;
    SCARD_READERSTATE rs[2];

    if (argc < 3)
        return 2;
    check("SCardEstablishContext", SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx),
          SCARD_S_SUCCESS);
    check("SCardIsValidContext", SCardIsValidContext(ctx), SCARD_S_SUCCESS);
    check("SCardListReaderGroups", SCardListReaderGroups(ctx, NULL, &len), SCARD_S_SUCCESS);
    len = SCARD_AUTOALLOCATE;
    check("SCardListReaders", SCardListReaders(ctx, NULL, (LPSTR)&readers, &len), SCARD_S_SUCCESS);
    check("reader listed", readers && strcmp(readers, argv[1]) == 0, 1);
    SCardFreeMemory(ctx, readers);
    memset(rs, 0, sizeof rs);
    rs[0].szReader = argv[1];
    rs[1].szReader = argv[2];
    check("SCardGetStatusChange", SCardGetStatusChange(ctx, 0, rs, 2), SCARD_S_SUCCESS);
    check("card present", (rs[0].dwEventState & SCARD_STATE_PRESENT) != 0, 1);
    check("reader empty", (rs[1].dwEventState & SCARD_STATE_EMPTY) != 0, 1);
    rs[1].dwCurrentState = rs[1].dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
    check("SCardGetStatusChange timeout", SCardGetStatusChange(ctx, 10, &rs[1], 1),
          SCARD_E_TIMEOUT);
    check("SCardCancel", SCardCancel(ctx), SCARD_S_SUCCESS);
    check("g_rgSCardT0Pci", (LONG)g_rgSCardT0Pci.dwProtocol, SCARD_PROTOCOL_T0);
    check("g_rgSCardRawPci", (LONG)SCARD_PCI_RAW->cbPciLength, (LONG)sizeof(SCARD_IO_REQUEST));
    card_checks(ctx, argv[1]);
    check("SCardReleaseContext", SCardReleaseContext(ctx), SCARD_S_SUCCESS);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
