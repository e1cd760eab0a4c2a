/*
 * The ISO/IEC 7816-3 engine of libsmc: ATR parsing, timing computation, PPS, T=0 and T=1.
 * (smclib's SmartcardUpdateCardCapabilities, the T=0/T=1/raw request and reply helpers and the
 * inverse convention.)
 *
 * The engines talk to the card through a byte-level link that the reader driver provides
 * (struct smc_card_io): "send these bytes", "receive exactly n bytes within these timeouts". A
 * serial reader maps it onto its UART; the simulated reader onto its simulated card. The link
 * carries bytes as a direct-convention UART sees them: the engines convert to and from the
 * inverse convention themselves when the ATR says so (atr.inverse).
 *
 * All functions are reentrant; state lives in the structures the caller passes.
 */
#ifndef SMC_PROTOCOL_H
#define SMC_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smc/defs.h"

/* ---- Byte-level link to the card (provided by the driver) ---------------------------------- */
struct smc_card_caps;
struct smc_card_io {
    void *ctx;
    /* Send len bytes to the card. STATUS_SUCCESS, STATUS_NO_MEDIA (card gone), STATUS_IO_TIMEOUT.
     */
    smc_status (*send)(void *ctx, const uint8_t *data, size_t len);
    /*
     * Receive exactly len bytes: the first within first_timeout_us, each further byte within
     * char_timeout_us of the previous one. *got = bytes stored (also on failure).
     * STATUS_SUCCESS, STATUS_IO_TIMEOUT (card silent), STATUS_NO_MEDIA (card removed).
     */
    smc_status (*recv)(void *ctx, uint8_t *buf, size_t len, uint32_t first_timeout_us,
                       uint32_t char_timeout_us, size_t *got);
    /*
     * Optional (NULL: nothing to do). Program the reader for the parameters now in force — clock,
     * Fi/Di (baud rate), guard and waiting times, EDC — after smc_select_protocol() changed them
     * by PPS or fell back to defaults, and before the first block of the protocol is sent.
     */
    smc_status (*set_params)(void *ctx, const struct smc_card_caps *caps);
};

/* ---- ATR ------------------------------------------------------------------------------------ */

/* Everything the ATR says, in direct convention. Defaults are filled in where the ATR is silent. */
struct smc_atr {
    /* The logical ATR: TS as 3B (direct) or 3F (inverse) followed by the decoded bytes, i.e. what
     * a reader that handles the convention itself reports. This is what callers see. */
    uint8_t raw[MAXIMUM_ATR_LENGTH];
    size_t len;
    bool inverse;   /* TS was 3F (or 03 seen by a non-inverting reader) */
    uint8_t fi, di; /* TA1 indices (default 1, 1) */
    bool has_ta1;
    uint8_t n;                 /* TC1 extra guard time (default 0; 255 = minimum) */
    bool specific_mode;        /* TA2 present */
    uint8_t specific_protocol; /* T from TA2 (when specific_mode) */
    bool implicit_params;      /* TA2 bit 5: parameters implicit, TA1 not applicable */
    uint32_t protocols;        /* SCARD_PROTOCOL_T0 / T1 bits offered */
    uint16_t t_mask;           /* bit T set for every T in a TDi (T=0 when no TD1), T=15 too */
    uint8_t first_protocol;    /* T of TD1, 0 if no TD1: the default protocol */
    uint8_t wi;                /* T=0: TC2 (default 10) */
    uint8_t ifsc;              /* T=1: first TA for T=1 (default 32) */
    uint8_t cwi, bwi;          /* T=1: first TB for T=1 (defaults 13, 4) */
    uint8_t edc;               /* T=1: first TC for T=1 bit 0: 1 = CRC, 0 = LRC */
    bool has_t15;              /* global bytes for T=15 present */
    uint8_t clock_stop;        /* T=15 first TA bits 8-7 (0 = not supported) */
    uint8_t class_indicator;   /* T=15 first TA bits 6-1 */
    uint8_t hist[15];          /* historical bytes */
    size_t hist_len;
    bool tck_present;
    bool tck_ok; /* true also when no TCK is required */
};

/*
 * Parse an ATR as received (TS 3B direct, 3F inverse, or 03: an inverse card seen by a reader that
 * does not invert). On error returns STATUS_UNRECOGNIZED_MEDIA and writes a one-line reason naming
 * what is wrong into why (if not NULL), e.g. "ATR truncated: TD2 announces TA3 but the ATR ends".
 * Errors: empty, longer than 33 bytes, invalid TS, truncated (interface bytes, historical bytes,
 * missing TCK), bytes after the end (after TCK, or after the historical bytes when only T=0 is
 * offered), TCK mismatch. out is filled as far as parsing got: after a TCK mismatch completely
 * (tck_present, !tck_ok). A card offering neither T=0 nor T=1 parses (protocols = 0).
 */
SMC_API SMC_MUST_CHECK smc_status smc_atr_parse(const uint8_t *atr, size_t len, struct smc_atr *out,
                                                char *why, size_t why_len);

/* Convert between inverse and direct convention in place (reverse bit order and complement). */
SMC_API void smc_invert(uint8_t *buf, size_t len);

/* Conversion tables of ISO 7816-3. F and fmax (kHz) by Fi; 0 = RFU. D by Di; 0 = RFU.
 */
SMC_API uint16_t smc_fi_to_f(uint8_t fi);
SMC_API uint32_t smc_fi_to_fmax_khz(uint8_t fi);
SMC_API uint8_t smc_di_to_d(uint8_t di);

/* ---- Card capabilities: the parsed ATR plus the parameters in force ---------------------------
 */

struct smc_pts {
    uint8_t type;       /* PTS_TYPE_DEFAULT / OPTIMAL / USER */
    uint8_t fi, di;     /* indices to negotiate */
    uint32_t clk_khz;   /* clock the reader must use */
    uint32_t data_rate; /* resulting bps */
    uint8_t stop_bits;  /* extra guard time to program */
};

struct smc_card_caps {
    struct smc_atr atr;
    bool valid;                 /* an ATR has been parsed */
    uint32_t protocol_selected; /* SCARD_PROTOCOL_UNDEFINED until SET_PROTOCOL */
    uint8_t fi, di;             /* in force (default 1, 1 until PPS) */
    uint32_t f, d;
    uint32_t clk_khz;                /* clock in use */
    uint32_t etu_us;                 /* F / (D f), rounded up, at least 1 */
    uint32_t gt_us;                  /* guard time */
    uint32_t wt_us;                  /* T=0 work waiting time */
    uint32_t cwt_us, bwt_us, bgt_us; /* T=1 */
    uint8_t ifsc, ifsd;              /* T=1 sizes in force */
    uint8_t edc;                     /* T1_CRC_CHECK or 0 */
    struct smc_pts pts;              /* what SET_PROTOCOL will negotiate */
};

/* Reader parameters the engine needs (from the reader capabilities). */
struct smc_link_params {
    uint32_t clk_default_khz, clk_max_khz;
    uint32_t rate_default, rate_max; /* bps */
    const uint32_t *clk_list;        /* optional supported clocks (kHz), n_clk entries */
    size_t n_clk;
    const uint32_t *rate_list; /* optional supported data rates (bps) */
    size_t n_rate;
    uint32_t max_ifsd;
};

/* Fill caps from a parsed ATR: default parameters (Fi=Di=1 unless specific mode with explicit
 * parameters), timings for the reader's default clock, and an OPTIMAL PTS proposal. */
SMC_API void smc_caps_from_atr(struct smc_card_caps *caps, const struct smc_atr *atr,
                               const struct smc_link_params *link);
/* Recompute every timing after fi/di/clk_khz changed (after PPS). */
SMC_API void smc_caps_update_timing(struct smc_card_caps *caps);
/* "No card": zero everything. */
SMC_API void smc_caps_clear(struct smc_card_caps *caps);

/* ---- PPS ------------------------------------------------------------------------------------ */

/* Choose the best Fi/Di the card (TA1) and the reader (max clock, max rate, optional lists) both
 * support; fills pts (type OPTIMAL, or DEFAULT when no speed-up is possible). */
SMC_API void smc_pps_choose(const struct smc_card_caps *caps, const struct smc_link_params *link,
                            struct smc_pts *pts);

/*
 * Exchange PPSS PPS0 [PPS1] PCK with the card for protocol t and the proposal in caps->pts
 * (PPS1 is sent unless the proposal is DEFAULT with Fi = Di = 1).
 * On an echo or a partial acceptance (PPS1 absent in the answer → Fi=Di=1 kept) updates caps
 * (fi, di, clk_khz, timing). STATUS_SUCCESS, STATUS_DEVICE_PROTOCOL_ERROR (refused or garbled; the
 * card must then be reset and used with default parameters), STATUS_IO_TIMEOUT (no answer at
 * all), STATUS_NO_MEDIA. In specific mode nothing is sent: STATUS_SUCCESS for the specific
 * protocol, STATUS_INVALID_PARAMETER for another.
 */
SMC_API SMC_MUST_CHECK smc_status smc_pps_exchange(const struct smc_card_io *io,
                                                   struct smc_card_caps *caps, uint8_t t);

/* ---- T=0 ------------------------------------------------------------------------------------ */

/*
 * Send a short APDU (cases 1-4) as TPDUs with procedure-byte handling, 61xx GET RESPONSE and 6Cxx
 * re-issue done here, so resp receives the full response data + SW1 SW2. Extended APDUs go through
 * ENVELOPE (INS C2) when the card accepts it; otherwise STATUS_INVALID_PARAMETER (extended APDUs
 * with Nc <= 255 become short TPDUs). GET RESPONSE runs only while the APDU's Ne allows: without
 * Le the card's 61xx is returned as is; after a 6Cxx re-issue the first Ne bytes are kept.
 * STATUS_SUCCESS, STATUS_BUFFER_TOO_SMALL, STATUS_INVALID_PARAMETER (malformed APDU),
 * STATUS_IO_TIMEOUT (WT exceeded), STATUS_NO_MEDIA, STATUS_DEVICE_PROTOCOL_ERROR.
 */
SMC_API SMC_MUST_CHECK smc_status smc_t0_transceive(const struct smc_card_io *io,
                                                    const struct smc_card_caps *caps,
                                                    const uint8_t *apdu, size_t len, uint8_t *resp,
                                                    size_t cap, size_t *resp_len);

/* ---- T=1 ------------------------------------------------------------------------------------ */

struct smc_t1 {
    uint8_t ns;  /* send sequence number N(S) of the next I-block */
    uint8_t nr;  /* expected N(S) of the card's next I-block */
    uint8_t nad; /* node address byte (drivers may set it) */
    uint8_t ifsc, ifsd;
    uint8_t edc; /* T1_CRC_CHECK or 0 */
    uint32_t bwt_us, cwt_us;
    uint8_t wtx;   /* multiplier for the next wait only (0 = none) */
    bool ifs_done; /* S(IFS request) with our IFSD has been attempted */
    /* statistics, for tests and GET_PERF_CNTR */
    uint32_t blocks_sent, blocks_received, retransmissions, resynchs;
    bool inverse;         /* convert every byte on the link (card uses the inverse convention) */
    uint8_t ifsc_initial; /* IFSC from the ATR: what S(RESYNCH) restores */
};

/* Reset the engine after a reset or SET_PROTOCOL (N(S)=N(R)=0, IFSC from the ATR, IFSD 32). */
SMC_API void smc_t1_init(struct smc_t1 *t1, const struct smc_card_caps *caps);

/* Send S(IFS request) with IFSD (1..254) and adopt it when the card answers S(IFS response);
 * up to three tries. Sets ifs_done whatever the outcome (the exchange is not repeated per APDU).
 * STATUS_SUCCESS, STATUS_DEVICE_PROTOCOL_ERROR (refused), STATUS_IO_TIMEOUT (silent),
 * STATUS_NO_MEDIA, STATUS_INVALID_PARAMETER. */
SMC_API SMC_MUST_CHECK smc_status smc_t1_negotiate_ifsd(struct smc_t1 *t1,
                                                        const struct smc_card_io *io, uint8_t ifsd);

/*
 * Exchange one APDU (up to 65 544 bytes) with chaining both ways, S(WTX), S(IFS) from the card, and
 * ISO 7816-3 error recovery (R-block retransmission, up to three tries, then S(RESYNCH), then
 * failure). After a resynchronisation the APDU fails even when the card answered it (it may or
 * may not have run); N(S), N(R), IFSC, IFSD are then reset and the next APDU starts clean.
 * STATUS_SUCCESS, STATUS_BUFFER_TOO_SMALL, STATUS_INVALID_PARAMETER,
 * STATUS_DEVICE_PROTOCOL_ERROR (also after S(ABORT) from the card), STATUS_IO_TIMEOUT (the card
 * stayed silent throughout), STATUS_NO_MEDIA.
 */
SMC_API SMC_MUST_CHECK smc_status smc_t1_transceive(struct smc_t1 *t1, const struct smc_card_io *io,
                                                    const uint8_t *apdu, size_t len, uint8_t *resp,
                                                    size_t cap, size_t *resp_len);

/* EDC helpers: LRC (XOR) and CRC. The CRC is the one reader stacks use for T=1 (OpenCT, CCID):
 * polynomial x^16 + x^12 + x^5 + 1 processed LSB first (0x8408), preset FFFF, no final XOR; the
 * block carries it high byte first. "123456789" gives 0x6F91. */
SMC_API uint8_t smc_t1_lrc(const uint8_t *data, size_t len);
SMC_API uint16_t smc_t1_crc(const uint8_t *data, size_t len);

#endif
