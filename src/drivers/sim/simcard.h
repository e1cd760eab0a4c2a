/*
 * A simulated smart card at the byte level: the card side of ISO/IEC 7816-3 (ATR, PPS, T=0 with
 * procedure bytes, T=1 blocks) and a small ISO/IEC 7816-4 application on top. It is written apart
 * from the reader-side engine in src/smc so that each side checks the other.
 *
 * The card is a byte pipe with zero latency: the reader writes bytes with simcard_rx(); the card
 * reacts at once and queues its answer, which the reader takes with simcard_tx(). A card that has
 * nothing to say (mute, or waiting for more bytes) has an empty queue; the reader sees a timeout.
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
    bool t0, t1;              /* protocols offered (first offered = default) */
    bool t1_first;            /* offer T=1 in TD1 (default protocol T=1) */
    bool inverse;             /* inverse convention (TS 3F on the wire) */
    bool specific;            /* specific mode: TA2 present with the default protocol */
    uint8_t fi, di;           /* TA1 (1,1 = no TA1 sent) */
    uint8_t n;                /* TC1 */
    uint8_t wi;               /* TC2 for T=0 (10 = not sent) */
    uint8_t ifsc;             /* T=1 IFSC (TA3) */
    uint8_t bwi, cwi;         /* T=1 TB3 */
    bool crc;                 /* T=1 EDC CRC (TC3 bit 0) */
    bool accept_pps;          /* answer PPS by echo; false = stay silent (refusal) */
    bool pps_partial;         /* answer PPS without PPS1 (keep Fi/Di = 1) */
    bool envelope;            /* T=0: accept ENVELOPE (INS C2) for extended APDUs */
    uint8_t hist[15];
    size_t hist_len;
};

/* Fill cfg with the named profile: "t1" (default), "t0", "t0t1", "t1-crc", "inverse", "specific",
 * "fast" (TA1 = 0x96, PPS accepted), "pps-refuse", "t0-envelope". Returns false for unknown names. */
bool simcard_profile(const char *name, struct simcard_config *cfg);

/* Faults, for protocol tests. Each applies to the next exchange(s) as described. */
enum simcard_fault {
    SIMCARD_FAULT_NONE = 0,
    SIMCARD_FAULT_BAD_EDC = 1,       /* corrupt the EDC of the next `count` blocks sent */
    SIMCARD_FAULT_LOSE_BLOCK = 2,    /* drop (do not answer) the next `count` blocks received */
    SIMCARD_FAULT_WTX = 3,           /* answer the next command with S(WTX request, count) first */
    SIMCARD_FAULT_IFS = 4,           /* send S(IFS request, count) before the next answer */
    SIMCARD_FAULT_CHAIN = 5,         /* send responses chained in pieces of `count` bytes */
    SIMCARD_FAULT_MUTE = 6,          /* stop answering entirely */
    SIMCARD_FAULT_GARBAGE = 7,       /* answer the next block with `count` random bytes */
};

struct simcard;

struct simcard *simcard_new(const struct simcard_config *cfg);
void simcard_free(struct simcard *c);

/* Reset (cold or warm): restart the protocol state, write the ATR as sent on the wire (inverse
 * convention applied) to atr, return its length (0 if mute). */
size_t simcard_reset(struct simcard *c, bool cold, uint8_t *atr, size_t cap);
void simcard_power_off(struct simcard *c);

/* Reader → card bytes. */
void simcard_rx(struct simcard *c, const uint8_t *data, size_t len);
/* Card → reader: take up to cap queued bytes; returns how many. */
size_t simcard_tx(struct simcard *c, uint8_t *buf, size_t cap);
/* Bytes queued for the reader. */
size_t simcard_pending(const struct simcard *c);

void simcard_set_fault(struct simcard *c, enum simcard_fault f, uint32_t count);

/* Inspection for tests: the ISO 7816-4 application state. */
uint32_t simcard_verify_retries(const struct simcard *c);

#endif
