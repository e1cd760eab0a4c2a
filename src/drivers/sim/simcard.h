/*
 * A simulated smart card at the byte level: the card side of ISO/IEC 7816-3 (ATR, PPS, T=0 with
 * procedure bytes, T=1 blocks) and a small ISO/IEC 7816-4 application on top. It is written apart
 * from the reader-side engine in src/smc so that each side checks the other.
 *
 * The card is a byte pipe with zero latency: the reader writes bytes with simcard_rx(); the card
 * reacts at once and queues its answer, which the reader takes with simcard_tx(). A card that has
 * nothing to say (mute, or waiting for more bytes) has an empty queue; the reader sees a timeout.
 *
 * Wire format. Bytes passed to simcard_rx() and taken from simcard_tx() are the bytes on the
 * line as a direct-convention UART sees them. An inverse-convention card sends every byte (ATR,
 * PPS, T=0, T=1) inverted: bit order reversed and complemented (smc_invert), TS included: its
 * TS 3F reads 03 on the wire, which is how a reader recognises the convention (smc_atr_parse
 * takes 03 + inverted bytes, or 3F + decoded bytes from a reader that converts). The card
 * expects the reader's bytes inverted the same way.
 *
 * After a reset the card is in negotiable mode (unless `specific`): if the first byte it gets is
 * FF it reads a PPS request (PPSS PPS0 [PPS1] [PPS2] [PPS3] PCK) and answers it (see
 * struct simcard_config); any other first byte starts the default protocol (TD1's, or TA2's in
 * specific mode). A refused or malformed PPS leaves the card silent until the next reset.
 *
 * T=1 CRC: ISO/IEC 7816-3 names the ISO 3309 CRC; the variant every public reader stack uses
 * (OpenCT proto-t1 / CCID's checksum.c) and this card too: CRC-16 with polynomial x^16+x^12+x^5+1
 * processed LSB first (reflected 0x8408), initial value FFFF, no final XOR, sent high byte first
 * (catalogue name CRC-16/MCRF4XX; "123456789" gives 6F91, sent as 6F 91).
 *
 * The application (ISO/IEC 7816-4), CLA 00 unless stated:
 *   MF 3F00
 *   ├── EF 2F01   32 bytes "SCRM simulated card EF 2F01 ...", SFI 1, free access
 *   ├── EF 0002    8 bytes  card serial number, SFI 2, read only (UPDATE → 6982 never allowed)
 *   └── DF 5000   AID F0 53 43 52 4D 00 01 (SIMCARD_AID)
 *       ├── EF 5001  256 bytes (byte i = i), SFI 3, free access
 *       └── EF 5002 4096 bytes (byte i = i * 7 mod 256), SFI 4, UPDATE needs the PIN
 *   SELECT A4 (P1 00 by FID / empty = MF, 01 child DF, 02 EF of the current DF, 04 by AID;
 *     P2 00 FCI, 04 FCP, 0C nothing), READ BINARY B0, UPDATE BINARY D6 (kept in the card's memory
 *     across resets), GET CHALLENGE 84, VERIFY 20 (P2 80, PIN "1234" padded with FF to 8 bytes,
 *     3 tries: 63Cx, 6983 when blocked; no data = ask the counter), GET DATA CA 005A (serial
 *     number, exactly 8 bytes: a shorter Le gets 6C08), GET RESPONSE C0 (T=0), ENVELOPE C2 (T=0,
 *     when `envelope`: CLA 00 or 10, P1 P2 00 00; pieces of an extended C-APDU, which runs on an
 *     empty ENVELOPE, or on a piece without CLA bit 10 that completes it, see simcard_t0.c).
 *   Proprietary, CLA 80: ECHO (INS EC) returns its data (up to Ne bytes; cases 3/4, short or
 *     extended up to 65 535 bytes); FILL (INS EE) returns Ne bytes where byte i = i mod 256
 *     (case 2, up to 65 536 bytes).
 *   Errors: 6D00 unknown INS, 6E00 unknown CLA, 6881 logical channel, 6700 wrong length,
 *     6A82 file not found, 6A86 wrong P1-P2, 6B00 offset out of the file, 6986 no current EF,
 *     6981 not a transparent EF, 6982 security status (PIN not verified, or EF 0002), 6A84
 *     UPDATE past the end of the EF, 6A88 unknown PIN or data object, 6985 GET RESPONSE with
 *     nothing pending, 6882 secure messaging, 6884 command chaining (CLA 10) not supported.
 *
 * Not thread-safe: the simulated reader serialises access.
 */
#ifndef SCRM_SIMCARD_H
#define SCRM_SIMCARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Card configuration. simcard_profile() gives named presets; fields may be adjusted after. */
struct simcard_config {
    char name[32];
    bool t0, t1;      /* protocols offered (first offered = default) */
    bool t1_first;    /* offer T=1 in TD1 (default protocol T=1) */
    bool inverse;     /* inverse convention (TS 3F, read 03 on the wire) */
    bool specific;    /* specific mode: TA2 present with the default protocol */
    uint8_t fi, di;   /* TA1 (1,1 = no TA1 sent) */
    uint8_t n;        /* TC1 (0 = not sent) */
    uint8_t wi;       /* TC2 for T=0 (10 = not sent) */
    uint8_t ifsc;     /* T=1 IFSC (TA3; 32 = not sent) */
    uint8_t bwi, cwi; /* T=1 TB3 (4, 13 = not sent) */
    bool crc;         /* T=1 EDC CRC (TC3 = 01; not sent for LRC) */
    bool accept_pps;  /* answer PPS by echo; false = stay silent (refusal) */
    bool pps_partial; /* answer PPS without PPS1 (keep Fi/Di = 1) */
    bool envelope;    /* T=0: accept ENVELOPE (INS C2) for extended APDUs */
    uint8_t hist[15];
    size_t hist_len;
    enum {
        SIMCARD_ATR_OK = 0,
        SIMCARD_ATR_BAD_TCK,    /* the TCK is wrong */
        SIMCARD_ATR_EXTRA,      /* two bytes (90 00) follow the last byte */
        SIMCARD_ATR_SHORT_HIST, /* T0 announces one historical byte more than sent */
    } atr_flaw;                 /* an imperfect ATR, as some real cards send (ISO 7816-3 aside) */
};

/* Fill cfg with the named profile: "t1" (default), "t0", "t0t1", "t1-crc", "inverse", "specific",
 * "fast" (TA1 = 0x96, PPS accepted), "pps-refuse", "pps-partial", "t0-envelope", and cards with
 * imperfect ATRs: "bad-tck" (T=1, wrong TCK), "atr-extra" (T=0, 90 00 after the historical
 * bytes), "short-hist" (T=0, one historical byte fewer than T0 announces). Returns false for
 * unknown names (cfg untouched). */
bool simcard_profile(const char *name, struct simcard_config *cfg);
/* The i-th profile name, NULL past the end. */
const char *simcard_profile_name(size_t i);

/* Faults, for protocol tests. Each applies to the next exchange(s) as described; faults of
 * different kinds combine. count 0 means a default (1 block, WTX 2, IFS 16, CHAIN 16, GARBAGE 8).
 * SIMCARD_FAULT_NONE clears every fault. */
enum simcard_fault {
    SIMCARD_FAULT_NONE = 0,
    SIMCARD_FAULT_BAD_EDC = 1,    /* T=1: corrupt the EDC of the next `count` blocks sent */
    SIMCARD_FAULT_LOSE_BLOCK = 2, /* drop (do not answer) the next `count` blocks received
                                     (T=0: the next `count` command headers) */
    SIMCARD_FAULT_WTX = 3,        /* answer the next command with S(WTX request, count) first
                                     (T=0: `count` NULL procedure bytes 60 first) */
    SIMCARD_FAULT_IFS = 4,        /* T=1: send S(IFS request, count) before the next answer */
    SIMCARD_FAULT_CHAIN = 5,      /* send responses chained in pieces of `count` bytes until
                                     cleared (T=0: 61xx pieces of at most `count` bytes) */
    SIMCARD_FAULT_MUTE = 6,       /* stop answering entirely, also to resets, until cleared */
    SIMCARD_FAULT_GARBAGE = 7,    /* answer the next block with `count` random bytes (T=1: the
                                     real block still counts as sent and is what an R-block
                                     gets; T=0: the command is dropped) */
};

/* Proprietary commands of the application (CLA 80). */
#define SIMCARD_CLA_PROPRIETARY 0x80
#define SIMCARD_INS_ECHO        0xEC
#define SIMCARD_INS_FILL        0xEE
/* AID of DF 5000 ("\xF0" "SCRM" 00 01) and the PIN (reference 80). */
#define SIMCARD_AID             "\xF0\x53\x43\x52\x4D\x00\x01"
#define SIMCARD_AID_LEN         7
#define SIMCARD_PIN             "1234"
#define SIMCARD_PIN_TRIES       3

struct simcard;

/* NULL when out of memory or when cfg offers no protocol / has more than 15 historical bytes. */
struct simcard *simcard_new(const struct simcard_config *cfg);
void simcard_free(struct simcard *c);

/* Seed the card's random generator (GET CHALLENGE, garbage); simcard_new seeds it from the OS. */
void simcard_seed(struct simcard *c, uint64_t seed);

/* Reset (cold or warm): restart the protocol state, write the ATR as sent on the wire (inverse
 * convention applied) to atr, return its length (0 if mute or cap too small). Pending bytes in
 * both directions are dropped. File contents and the PIN counter survive; the PIN state and the
 * current file go back to the MF. */
size_t simcard_reset(struct simcard *c, bool cold, uint8_t *atr, size_t cap);
void simcard_power_off(struct simcard *c);

/* Reader → card bytes. Ignored while powered off, mute or silent after a refused PPS. */
void simcard_rx(struct simcard *c, const uint8_t *data, size_t len);
/* Card → reader: take up to cap queued bytes; returns how many. */
size_t simcard_tx(struct simcard *c, uint8_t *buf, size_t cap);
/* Bytes queued for the reader. */
size_t simcard_pending(const struct simcard *c);
/* Bytes the reader has written with simcard_rx since simcard_new (powered or not), so the
 * simulated reader can pull the card after N bytes. */
uint64_t simcard_bytes_received(const struct simcard *c);

void simcard_set_fault(struct simcard *c, enum simcard_fault f, uint32_t count);

/* Protocol state, for the simulated reader and tests. */
struct simcard_info {
    bool powered;
    int protocol;   /* -1 until the first byte after the ATR decides it, then 0 or 1 */
    bool pps_done;  /* a PPS exchange was answered */
    uint8_t fi, di; /* in force (1, 1 unless PPS1 was accepted or specific mode) */
    uint8_t ifsc;   /* T=1: the card's receive size in force */
    uint8_t ifsd;   /* T=1: the reader's receive size the card respects */
};
void simcard_info(const struct simcard *c, struct simcard_info *info);

/* Inspection for tests: the ISO 7816-4 application state. */
uint32_t simcard_verify_retries(const struct simcard *c);

#endif
