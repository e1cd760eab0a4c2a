/*
 * `scrm send`, `scrm sim` and `scrm nfc`.
 *
 * send: connects shared (T=0 or T=1, whatever the card offers), sends each APDU argument (hex,
 * spaces or colons allowed, one APDU per argument) and prints the response data and the status
 * word with its ISO 7816-4 meaning. A 61xx or 6Cxx status is printed as it comes; no automatic
 * GET RESPONSE, so what is shown is exactly what the card said.
 *
 * sim: the simulated reader is driven through SCardControl on a DIRECT connection with its vendor
 * control codes SCARD_CTL_CODE(2049) (insert, input: profile name) and SCARD_CTL_CODE(2050)
 * (remove); see include/smc/sim.h and docs/pcsc.md.
 *
 * nfc: the contactless reader (nfc driver) the same way, with its vendor codes
 * SCARD_CTL_CODE(2304 + n): 2306 a tag enters the field (input "profile" or "profile:uidhex"),
 * 2307 the tag leaves, 2305 the radio (u32 0 off / 1 on); see include/smc/nfc.h and docs/nfc.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "tools/scrm.h"

#define SIM_CTL_INSERT   ((DWORD)SCARD_CTL_CODE(2048 + 1))
#define SIM_CTL_REMOVE   ((DWORD)SCARD_CTL_CODE(2048 + 2))
#define NFC_CTL_RADIO    ((DWORD)SCARD_CTL_CODE(2304 + 1))
#define NFC_CTL_ENTER    ((DWORD)SCARD_CTL_CODE(2304 + 2))
#define NFC_CTL_LEAVE    ((DWORD)SCARD_CTL_CODE(2304 + 3))
#define SIM_CTL_PROFILES ((DWORD)SCARD_CTL_CODE(2048 + 5))
#define NFC_CTL_PROFILES ((DWORD)SCARD_CTL_CODE(2304 + 6))

const char *scrm_sw_text(uint16_t sw)
{
    static const struct {
        uint16_t sw, mask;
        const char *text;
    } table[] = {
        {0x9000, 0xFFFF, "success"},
        {0x6100, 0xFF00, "more data available (GET RESPONSE)"},
        {0x6282, 0xFFFF, "end of file reached before Le bytes"},
        {0x6283, 0xFFFF, "selected file deactivated"},
        {0x63C0, 0xFFF0, "verification failed, counter in low nibble"},
        {0x6581, 0xFFFF, "memory failure"},
        {0x6700, 0xFFFF, "wrong length"},
        {0x6881, 0xFFFF, "logical channel not supported"},
        {0x6882, 0xFFFF, "secure messaging not supported"},
        {0x6884, 0xFFFF, "command chaining not supported"},
        {0x6981, 0xFFFF, "command incompatible with file structure"},
        {0x6982, 0xFFFF, "security status not satisfied"},
        {0x6983, 0xFFFF, "authentication method blocked"},
        {0x6985, 0xFFFF, "conditions of use not satisfied"},
        {0x6986, 0xFFFF, "command not allowed (no current EF)"},
        {0x6A80, 0xFFFF, "incorrect data"},
        {0x6A81, 0xFFFF, "function not supported"},
        {0x6A82, 0xFFFF, "file or application not found"},
        {0x6A84, 0xFFFF, "not enough memory space"},
        {0x6A86, 0xFFFF, "incorrect P1-P2"},
        {0x6A88, 0xFFFF, "referenced data not found"},
        {0x6B00, 0xFFFF, "wrong P1-P2 (offset outside the EF)"},
        {0x6C00, 0xFF00, "wrong Le (exact length in SW2)"},
        {0x6D00, 0xFFFF, "instruction not supported"},
        {0x6E00, 0xFFFF, "class not supported"},
        {0x6F00, 0xFFFF, "no precise diagnosis"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if ((sw & table[i].mask) == table[i].sw)
            return table[i].text;
    if ((sw & 0xFF00) == 0x6200 || (sw & 0xFF00) == 0x6300)
        return "warning";
    return "error";
}

/* Send one APDU and print the exchange. */
static int send_one(SCARDHANDLE card, DWORD proto, const char *hex)
{
    uint8_t apdu[MAX_BUFFER_SIZE_EXTENDED], resp[MAX_BUFFER_SIZE_EXTENDED];
    char text[3 * 64 + 4];
    DWORD resp_len = sizeof resp;
    long n = scrm_hex_decode(hex, apdu, sizeof apdu);
    const SCARD_IO_REQUEST *pci = proto == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
    LONG rc;
    uint16_t sw;

    if (n < 4) {
        fprintf(stderr, "scrm: '%s' is not an APDU (hex, at least 4 bytes)\n", hex);
        return SCRM_EXIT_USAGE;
    }
    scrm_hex_encode(apdu, (size_t)n, ' ', text, sizeof text);
    printf("> %s\n", text);
    rc = SCardTransmit(card, pci, apdu, (DWORD)n, NULL, resp, &resp_len);
    if (rc != SCARD_S_SUCCESS)
        return scrm_fail("transmit", rc);
    if (resp_len < 2) {
        fprintf(stderr, "scrm: response of %lu byte(s) has no status word\n",
                (unsigned long)resp_len);
        return SCRM_EXIT_FAIL;
    }
    sw = (uint16_t)(resp[resp_len - 2] << 8 | resp[resp_len - 1]);
    if (resp_len > 2) {
        scrm_hex_encode(resp, resp_len - 2, ' ', text, sizeof text);
        printf("< %s\n", text);
    }
    printf("< %04X  %s\n", sw, scrm_sw_text(sw));
    return SCRM_EXIT_OK;
}

int scrm_cmd_send(int argc, char **argv)
{
    SCARDCONTEXT ctx;
    SCARDHANDLE card;
    DWORD proto;
    char reader[MAX_READERNAME];
    int r = SCRM_EXIT_OK;
    LONG rc;

    if (argc < 3) {
        fprintf(stderr, "usage: scrm send READER APDU...\n");
        return SCRM_EXIT_USAGE;
    }
    if (!scrm_context(&ctx))
        return SCRM_EXIT_FAIL;
    if (!scrm_reader(ctx, argv[1], reader, sizeof reader)) {
        SCardReleaseContext(ctx);
        return SCRM_EXIT_FAIL;
    }
    rc = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &card,
                      &proto);
    if (rc != SCARD_S_SUCCESS) {
        SCardReleaseContext(ctx);
        return scrm_fail(reader, rc);
    }
    for (int i = 2; i < argc && r == SCRM_EXIT_OK; i++)
        r = send_one(card, proto, argv[i]);
    SCardDisconnect(card, SCARD_LEAVE_CARD);
    SCardReleaseContext(ctx);
    return r;
}

/* What a simulator control is, for the specific error messages. */
struct control {
    const char *what;    /* "insert", "remove", "enter", "leave", "radio" */
    const char *kind;    /* "sim" or "nfc" */
    const char *profile; /* insert / enter: the profile asked for */
    DWORD profiles_code; /* the control that lists the profiles */
};

/* The profile names a reader's driver accepts, as "a, b, c" (from its PROFILES control). */
static void profile_list(SCARDHANDLE card, DWORD code, char *out, size_t cap)
{
    char names[2048];
    DWORD got = 0;
    size_t n = 0;
    out[0] = '\0';
    if (SCardControl(card, code, NULL, 0, names, sizeof names, &got) != SCARD_S_SUCCESS)
        return;
    for (DWORD i = 0; i < got && n + 1 < cap; i += (DWORD)strlen(names + i) + 1) {
        names[sizeof names - 1] = '\0';
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", names + i);
    }
}

/* The specific situation behind a failed simulator control, on stderr. */
static void explain_control(SCARDHANDLE card, const struct control *c, const char *reader, LONG rc)
{
    char list[1024];
    bool sim = !strcmp(c->kind, "sim");
    if (rc == SCARD_W_SECURITY_VIOLATION) {
        fprintf(stderr, "scrm: driving a simulator needs root, scrmd's own user or a member of "
                        "scrmd's admin_group (see scrmd(8))\n");
    } else if (rc == SCARD_E_UNSUPPORTED_FEATURE) {
        fprintf(stderr,
                "scrm: %s is not %s reader: `scrm %s` drives only %s: readers (see "
                "`scrm list`)\n",
                reader, sim ? "a simulated contact (sim)" : "an NFC (nfc)", c->kind, c->kind);
    } else if (rc == SCARD_E_NOT_READY &&
               (!strcmp(c->what, "insert") || !strcmp(c->what, "enter"))) {
        fprintf(stderr, "scrm: %s already holds a %s: `scrm %s %s '%s'` first\n", reader,
                sim ? "card" : "tag in its field", c->kind, sim ? "remove" : "leave", reader);
    } else if (rc == SCARD_W_REMOVED_CARD || rc == SCARD_E_NO_SMARTCARD) {
        fprintf(stderr, "scrm: %s is empty: there is no %s to %s\n", reader, sim ? "card" : "tag",
                c->what);
    } else if (rc == SCARD_E_INVALID_PARAMETER && c->profile) {
        profile_list(card, c->profiles_code, list, sizeof list);
        fprintf(stderr, "scrm: unknown %s profile '%s'%s%s\n", sim ? "card" : "tag", c->profile,
                *list ? "; profiles: " : "", list);
    }
}

/* SCardControl(code, in) on a DIRECT connection to the reader named by `arg`; the full name goes
 * to reader. Prints the error and the specific situation, returns SCRM_EXIT_FAIL on failure. */
static int direct_control(const char *arg, DWORD code, const void *in, DWORD len, char *reader,
                          const struct control *c)
{
    SCARDCONTEXT ctx;
    SCARDHANDLE card;
    DWORD proto, got = 0;
    LONG rc;

    if (!scrm_context(&ctx))
        return SCRM_EXIT_FAIL;
    if (!scrm_reader(ctx, arg, reader, MAX_READERNAME)) {
        SCardReleaseContext(ctx);
        return SCRM_EXIT_FAIL;
    }
    rc = SCardConnect(ctx, reader, SCARD_SHARE_DIRECT, 0, &card, &proto);
    if (rc != SCARD_S_SUCCESS) {
        SCardReleaseContext(ctx);
        return scrm_fail(reader, rc);
    }
    rc = SCardControl(card, code, in, len, NULL, 0, &got);
    if (rc != SCARD_S_SUCCESS) {
        scrm_fail(c->what, rc);
        explain_control(card, c, reader, rc);
    }
    SCardDisconnect(card, SCARD_LEAVE_CARD);
    SCardReleaseContext(ctx);
    return rc == SCARD_S_SUCCESS ? SCRM_EXIT_OK : SCRM_EXIT_FAIL;
}

int scrm_cmd_sim(int argc, char **argv)
{
    char reader[MAX_READERNAME];
    const char *profile = argc > 3 ? argv[3] : "";
    bool insert = argc > 1 && strcmp(argv[1], "insert") == 0;
    bool remove = argc > 1 && strcmp(argv[1], "remove") == 0;

    if (argc < 3 || argc > 4 || (!insert && !remove) || (remove && argc != 3)) {
        fprintf(stderr, "usage: scrm sim insert READER [PROFILE] | scrm sim remove READER\n");
        return SCRM_EXIT_USAGE;
    }
    DWORD code = insert ? SIM_CTL_INSERT : SIM_CTL_REMOVE;
    struct control c = {argv[1], "sim", insert ? profile : NULL, SIM_CTL_PROFILES};
    int r = direct_control(argv[2], code, profile, (DWORD)strlen(profile), reader, &c);
    if (r == SCRM_EXIT_OK)
        printf("%s: card %s\n", reader, insert ? "inserted" : "removed");
    return r;
}

int scrm_cmd_nfc(int argc, char **argv)
{
    char reader[MAX_READERNAME];
    const char *op = argc > 1 ? argv[1] : "";
    bool enter = !strcmp(op, "enter") && argc == 4;
    bool leave = !strcmp(op, "leave") && argc == 3;
    bool radio =
        !strcmp(op, "radio") && argc == 4 && (!strcmp(argv[3], "on") || !strcmp(argv[3], "off"));
    uint8_t on[4] = {radio && !strcmp(argv[3], "on") ? 1 : 0, 0, 0, 0};
    int r;

    if (!enter && !leave && !radio) {
        fprintf(stderr, "usage: scrm nfc enter READER PROFILE[:UID] | scrm nfc leave READER | "
                        "scrm nfc radio READER on|off\n");
        return SCRM_EXIT_USAGE;
    }
    struct control c = {op, "nfc", enter ? argv[3] : NULL, NFC_CTL_PROFILES};
    if (enter)
        r = direct_control(argv[2], NFC_CTL_ENTER, argv[3], (DWORD)strlen(argv[3]), reader, &c);
    else if (leave)
        r = direct_control(argv[2], NFC_CTL_LEAVE, NULL, 0, reader, &c);
    else
        r = direct_control(argv[2], NFC_CTL_RADIO, on, sizeof on, reader, &c);
    if (r != SCRM_EXIT_OK)
        return r;
    if (enter)
        printf("%s: tag %s entered the field\n", reader, argv[3]);
    else if (leave)
        printf("%s: the tag left the field\n", reader);
    else
        printf("%s: radio %s\n", reader, argv[3]);
    return SCRM_EXIT_OK;
}
