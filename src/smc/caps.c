/*
 * Card capabilities: from a parsed ATR to the parameters in force and the timings the engines
 * wait for (docs/libsmc.md; smclib's SmartcardUpdateCardCapabilities).
 *
 * Times are microseconds, computed from exact fractions in 64-bit integers and rounded up once at
 * the end, so the rounding of the etu (F / (D f)) does not accumulate:
 *
 *   etu = F / (D f)                 GT  = (12 + N) etu; N = 255: 12 etu (T=0), 11 etu (T=1)
 *   WT  = 960 WI F / f              CWT = (11 + 2^CWI) etu
 *   BWT = 11 etu + 2^BWI 960 372/f  BGT = 22 etu
 *
 * with f the reader clock (clk_khz) and F, D the values in force.
 */
#include <string.h>

#include "common/log.h"
#include "smc/proto_internal.h"
#include "smc/protocol.h"

/* Protocol the card will run, for the rules that depend on it (GT with N = 255). */
static uint8_t effective_protocol(const struct smc_card_caps *caps)
{
    if (caps->protocol_selected == SCARD_PROTOCOL_T1)
        return 1;
    if (caps->protocol_selected == SCARD_PROTOCOL_T0)
        return 0;
    return caps->atr.specific_mode ? caps->atr.specific_protocol : caps->atr.first_protocol;
}

void smc_caps_update_timing(struct smc_card_caps *caps)
{
    if (!smc_fi_to_f(caps->fi) || !smc_di_to_d(caps->di)) {
        log_debug(proto, "Fi %u / Di %u are RFU; timing uses Fi = Di = 1", caps->fi, caps->di);
        caps->fi = 1;
        caps->di = 1;
    }
    if (caps->clk_khz == 0)
        caps->clk_khz = 3580; /* the usual 3.58 MHz when the reader gave nothing */
    const struct smc_atr *a = &caps->atr;
    uint64_t f = smc_fi_to_f(caps->fi), d = smc_di_to_d(caps->di), clk = caps->clk_khz;
    caps->f = (uint32_t)f;
    caps->d = (uint32_t)d;
    /* One etu in µs is f*1000 / (d*clk): keep numerator and denominator apart. */
    uint64_t etu_num = f * 1000u, etu_den = d * clk;
    caps->etu_us = smc__ceil_us(etu_num, etu_den);

    uint64_t gt_etu = 12u + a->n;
    if (a->n == 255)
        gt_etu = effective_protocol(caps) == 1 ? 11u : 12u;
    caps->gt_us = smc__ceil_us(gt_etu * etu_num, etu_den);
    caps->wt_us = smc__ceil_us(960u * (uint64_t)a->wi * f * 1000u, clk);
    /* BWI 10..15 is RFU (ISO 7816-3): a card announcing it gets BWI 9 (about 200 s at 3.58 MHz)
     * rather than block waits of up to an hour that would hold the reader. */
    uint8_t cwi = a->cwi > 15 ? 15 : a->cwi, bwi = a->bwi > 9 ? 9 : a->bwi;
    caps->cwt_us = smc__ceil_us((11u + (1ull << cwi)) * etu_num, etu_den);
    /* BWT = 11 etu + 2^BWI * 960 * 372 / f, over the common denominator d * clk. */
    uint64_t bwt_num = 11u * etu_num + (1ull << bwi) * 960u * 372u * 1000u * d;
    caps->bwt_us = smc__ceil_us(bwt_num, etu_den);
    caps->bgt_us = smc__ceil_us(22u * etu_num, etu_den);
}

void smc_caps_from_atr(struct smc_card_caps *caps, const struct smc_atr *atr,
                       const struct smc_link_params *link)
{
    memset(caps, 0, sizeof(*caps));
    caps->atr = *atr;
    caps->valid = true;
    caps->protocol_selected = SCARD_PROTOCOL_UNDEFINED;
    caps->fi = 1;
    caps->di = 1;
    /* Specific mode with explicit parameters: the card already runs at TA1's values. */
    if (atr->specific_mode && !atr->implicit_params && atr->has_ta1 && smc_fi_to_f(atr->fi) &&
        smc_di_to_d(atr->di)) {
        caps->fi = atr->fi;
        caps->di = atr->di;
    }
    caps->clk_khz = link ? link->clk_default_khz : 0;
    smc_caps_update_timing(caps);
    caps->ifsc = atr->ifsc;
    caps->ifsd = T1_IFSD_DEFAULT;
    caps->edc = (atr->edc & 1u) ? T1_CRC_CHECK : 0;
    if (link) {
        smc_pps_choose(caps, link, &caps->pts);
    } else {
        caps->pts = (struct smc_pts){.type = PTS_TYPE_DEFAULT,
                                     .fi = 1,
                                     .di = 1,
                                     .clk_khz = caps->clk_khz,
                                     .data_rate = caps->clk_khz * 1000u / 372u,
                                     .stop_bits = atr->n};
    }
}

void smc_caps_clear(struct smc_card_caps *caps)
{
    memset(caps, 0, sizeof(*caps));
}
