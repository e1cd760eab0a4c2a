/*
 * ATR parsing (ISO/IEC 7816-3 §8) and the conversion tables of the ISO/IEC 7816-3 tables
 *
 * smc_atr_parse() walks the ATR once, front to back: TS, T0, then each group of interface bytes
 * TAi TBi TCi TDi announced by the previous Y nibble, the K historical bytes, and TCK. Every read
 * is checked against the received length, so a truncated ATR is reported with the byte that
 * announced the missing one. Each interface byte is interpreted as it is read, by its group
 * number i and the protocol T of the group (the T of TD(i-1)):
 *
 *   i = 1 (global)   TA1 Fi/Di, TB1 ignored (Vpp, deprecated), TC1 N
 *   i = 2 (global)   TA2 specific mode, TB2 ignored, TC2 WI (specific to T=0)
 *   i >= 3, T = 1    first TA: IFSC, first TB: BWI/CWI, first TC: EDC
 *   i >= 3, T = 15   first TA: clock stop and class indicator
 *
 * TS 03 is an inverse-convention card read by a reader that does not convert: the whole buffer
 * is converted (smc_invert) before parsing, which turns TS into 3F. TS 3F is taken as already
 * decoded (what a converting reader, and the ATR lists, show). Either way inverse is set and
 * out->raw holds the logical ATR.
 *
 * TCK is required unless only T=0 is indicated (T=15 next to T=0 counts as "another T").
 * Anything after the structure (bytes after TCK, or bytes after the historical bytes when no TCK
 * is allowed) makes the ATR malformed. On a TCK mismatch the structure is complete, so out is
 * fully filled (tck_ok false) although the call fails.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "smc/protocol.h"

/* F and fmax (kHz) by Fi, D by Di (ISO/IEC 7816-3:2006 tables 7 and 8). 0 = RFU. Di 7 is D = 64
 * as in the 2006 edition (the DDK header marks it RFU; docs/libsmc.md item 1). */
static const uint16_t f_table[16] = {372, 372, 558, 744,  1116, 1488, 1860, 0,
                                     0,   512, 768, 1024, 1536, 2048, 0,    0};
static const uint32_t fmax_table[16] = {4000, 5000, 6000, 8000,  12000, 16000, 20000, 0,
                                        0,    5000, 7500, 10000, 15000, 20000, 0,     0};
static const uint8_t d_table[16] = {0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0};

uint16_t smc_fi_to_f(uint8_t fi)
{
    return fi < 16 ? f_table[fi] : 0;
}

uint32_t smc_fi_to_fmax_khz(uint8_t fi)
{
    return fi < 16 ? fmax_table[fi] : 0;
}

uint8_t smc_di_to_d(uint8_t di)
{
    return di < 16 ? d_table[di] : 0;
}

void smc_invert(uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t v = buf[i], r = 0;
        for (int b = 0; b < 8; b++)
            r = (uint8_t)(r | (((v >> b) & 1u) << (7 - b)));
        buf[i] = (uint8_t)~r;
    }
}

struct atr_parser {
    struct smc_atr *out;
    size_t pos; /* next byte of out->raw */
    char *why;
    size_t why_len;
    bool t1_a, t1_b, t1_c; /* first TA/TB/TC for T=1 already seen */
    bool t15_a;            /* first TA for T=15 already seen */
    bool tck_required;
};

__attribute__((format(printf, 2, 3))) static smc_status fail(struct atr_parser *p, const char *fmt,
                                                             ...)
{
    if (p->why && p->why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->why, p->why_len, fmt, ap);
        va_end(ap);
    }
    return STATUS_UNRECOGNIZED_MEDIA;
}

static void set_defaults(struct smc_atr *a)
{
    memset(a, 0, sizeof(*a));
    a->fi = 1;
    a->di = 1;
    a->wi = 10;
    a->ifsc = T1_IFSD_DEFAULT;
    a->cwi = T1_CWI_DEFAULT;
    a->bwi = T1_BWI_DEFAULT;
    a->tck_ok = true;
}

/* Interface bytes of the global groups 1 and 2. */
static void interpret_global(struct smc_atr *a, unsigned i, char kind, uint8_t v)
{
    if (i == 1 && kind == 'A') {
        a->has_ta1 = true;
        a->fi = v >> 4;
        a->di = v & 0x0F;
    } else if (i == 1 && kind == 'C') {
        a->n = v;
    } else if (i == 2 && kind == 'A') {
        a->specific_mode = true;
        a->specific_protocol = v & 0x0F;
        a->implicit_params = (v & 0x10) != 0;
    } else if (i == 2 && kind == 'C') {
        if (v)
            a->wi = v;
        else
            log_debug(proto, "ATR: TC2 = 00 (RFU), WI stays 10");
    }
}

/* T=1 specific bytes: only the first TA, TB and TC for T=1 count. */
static void interpret_t1(struct atr_parser *p, char kind, uint8_t v)
{
    struct smc_atr *a = p->out;
    if (kind == 'A' && !p->t1_a) {
        p->t1_a = true;
        if (v >= 1 && v <= SCARD_T1_MAX_IFS)
            a->ifsc = v;
        else
            log_debug(proto, "ATR: IFSC %02X is invalid, IFSC stays 32", v);
    } else if (kind == 'B' && !p->t1_b) {
        p->t1_b = true;
        a->bwi = v >> 4;
        a->cwi = v & 0x0F;
    } else if (kind == 'C' && !p->t1_c) {
        p->t1_c = true;
        a->edc = v & 0x01;
    }
}

/* One interface byte TAi/TBi/TCi (kind 'A'/'B'/'C') of group i whose protocol is t (-1 = global
 * group 1). */
static void interpret(struct atr_parser *p, unsigned i, int t, char kind, uint8_t v)
{
    if (i <= 2) {
        interpret_global(p->out, i, kind, v);
    } else if (t == 1) {
        interpret_t1(p, kind, v);
    } else if (t == 15 && kind == 'A' && !p->t15_a) {
        p->t15_a = true;
        p->out->clock_stop = v >> 6;
        p->out->class_indicator = v & 0x3F;
    }
}

/* Protocol T announced by TDi. */
static void record_protocol(struct atr_parser *p, unsigned i, uint8_t t)
{
    struct smc_atr *a = p->out;
    a->t_mask = (uint16_t)(a->t_mask | (1u << t));
    if (i == 1) {
        a->first_protocol = t;
        if (t == 15)
            log_debug(proto, "ATR: TD1 indicates T=15, which ISO 7816-3 reserves for TD2 on");
    }
    if (t == 0)
        a->protocols |= SCARD_PROTOCOL_T0;
    else if (t == 1)
        a->protocols |= SCARD_PROTOCOL_T1;
    else if (t == 15)
        a->has_t15 = true;
    if (t != 0)
        p->tck_required = true;
}

static smc_status truncated(struct atr_parser *p, unsigned i, char kind)
{
    char by[16];
    if (i == 1)
        snprintf(by, sizeof(by), "T0");
    else
        snprintf(by, sizeof(by), "TD%u", i - 1);
    return fail(p, "ATR truncated: %s announces T%c%u but the ATR ends after %zu bytes", by, kind,
                i, p->out->len);
}

/* The chain of interface byte groups, starting with Y1 from T0. */
static smc_status parse_groups(struct atr_parser *p)
{
    static const char kinds[3] = {'A', 'B', 'C'};
    const uint8_t *b = p->out->raw;
    size_t len = p->out->len;
    uint8_t y = b[1] >> 4;
    int t = -1;
    for (unsigned i = 1;; i++) {
        for (unsigned j = 0; j < 3; j++) {
            if (!(y & (1u << j)))
                continue;
            if (p->pos >= len)
                return truncated(p, i, kinds[j]);
            interpret(p, i, t, kinds[j], b[p->pos++]);
        }
        if (!(y & 0x08))
            return STATUS_SUCCESS;
        if (p->pos >= len)
            return truncated(p, i, 'D');
        uint8_t td = b[p->pos++];
        t = td & 0x0F;
        record_protocol(p, i, (uint8_t)t);
        y = td >> 4;
    }
}

/* Historical bytes, then the TCK rule and check. */
static smc_status parse_tail(struct atr_parser *p)
{
    struct smc_atr *a = p->out;
    size_t k = a->raw[1] & 0x0F;
    size_t left = a->len - p->pos;
    if (left < k)
        return fail(p, "ATR truncated: T0 announces %zu historical bytes but only %zu follow", k,
                    left);
    memcpy(a->hist, a->raw + p->pos, k);
    a->hist_len = k;
    left -= k;
    if (!p->tck_required) {
        if (left == 0)
            return STATUS_SUCCESS;
        if (k == 15)
            return fail(p,
                        "more than 15 historical bytes: %zu extra bytes after the 15 announced "
                        "by T0 (and no TCK is allowed when only T=0 is offered)",
                        left);
        return fail(p,
                    "ATR has %zu extra bytes after the %zu historical bytes announced by T0 (no "
                    "TCK is allowed when only T=0 is offered)",
                    left, k);
    }
    if (left == 0)
        return fail(p, "ATR truncated: TCK missing (required because a protocol other than T=0 is "
                       "offered)");
    a->tck_present = true;
    uint8_t x = 0;
    for (size_t i = 1; i < a->len; i++)
        x ^= a->raw[i];
    a->tck_ok = x == 0 && left == 1;
    if (left > 1)
        return fail(p, "ATR has %zu extra bytes after TCK", left - 1);
    if (x != 0)
        return fail(p, "TCK mismatch: XOR of T0..TCK is %02X instead of 00", x);
    return STATUS_SUCCESS;
}

/* TS: record the convention, convert a non-decoded inverse ATR. */
static smc_status parse_ts(struct atr_parser *p)
{
    struct smc_atr *a = p->out;
    if (a->raw[0] == 0x03) {
        smc_invert(a->raw, a->len);
        a->inverse = true;
    } else if (a->raw[0] == 0x3F) {
        a->inverse = true;
    } else if (a->raw[0] != 0x3B) {
        return fail(p,
                    "invalid TS %02X: expected 3B (direct), 3F (inverse) or 03 (inverse, not "
                    "converted by the reader)",
                    a->raw[0]);
    }
    if (a->len < 2)
        return fail(p, "ATR truncated: T0 missing after TS");
    return STATUS_SUCCESS;
}

smc_status smc_atr_parse(const uint8_t *atr, size_t len, struct smc_atr *out, char *why,
                         size_t why_len)
{
    struct atr_parser p = {.out = out, .pos = 2, .why = why, .why_len = why_len};
    if (why && why_len)
        why[0] = '\0';
    set_defaults(out);
    if (!atr || len == 0)
        return fail(&p, "ATR is empty");
    if (len > MAXIMUM_ATR_LENGTH)
        return fail(&p, "ATR is %zu bytes long; ISO 7816-3 allows at most %u", len,
                    MAXIMUM_ATR_LENGTH);
    memcpy(out->raw, atr, len);
    out->len = len;
    smc_status rc = parse_ts(&p);
    if (rc)
        return rc;
    rc = parse_groups(&p);
    if (rc)
        return rc;
    if (!(out->raw[1] & 0x80)) /* no TD1: T=0 only, by default */
        out->t_mask = 1u << 0;
    if (out->t_mask & 1u)
        out->protocols |= SCARD_PROTOCOL_T0;
    return parse_tail(&p);
}
