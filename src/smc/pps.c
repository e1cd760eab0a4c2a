/*
 * Protocol and parameter selection (PPS, ISO/IEC 7816-3 §9; docs/libsmc.md "choosing PTS values").
 *
 * smc_pps_choose() looks for the fastest (Fi, Di) both sides support. The card offers Fi (with
 * its maximum clock fmax) and Di in TA1; the reader offers a maximum clock and data rate and, when
 * it can only run some values, lists of clocks and rates. Candidates keep the card's Fi and step
 * D down from the card's Di through every defined D value below it; F = 372 with D = 1 (the
 * default, no PPS1) always works. Each candidate is tried at every clock the reader can run (its
 * list, or its default and maximum clock) up to fmax; the resulting rate D * f / F must not exceed
 * the reader's maximum and, with a rate list, must match one entry within 1 %. The fastest
 * combination wins (the lower clock on a tie).
 *
 * smc_pps_exchange() sends PPSS PPS0 [PPS1] PCK and reads the answer field by field: PPSS, PPS0,
 * then exactly the optional bytes PPS0 announces, then PCK. An exact echo, or an answer without
 * PPS1 (partial acceptance: Fi = Di = 1 kept), succeeds; anything else is a refusal.
 */
#include <string.h>

#include "common/log.h"
#include "smc/proto_internal.h"
#include "smc/protocol.h"

#define PPSS      0xFFu
#define PPS0_PPS1 0x10u
#define PPS0_PPS2 0x20u
#define PPS0_PPS3 0x40u

struct pps_candidate {
    uint8_t fi, di;
    uint32_t clk_khz, rate;
};

/* Is rate acceptable to the reader (maximum, and list when there is one)? */
static bool rate_ok(const struct smc_link_params *link, uint32_t rate)
{
    if (link->rate_max && rate > link->rate_max)
        return false;
    if (!link->rate_list || link->n_rate == 0)
        return true;
    for (size_t i = 0; i < link->n_rate; i++) {
        uint64_t want = link->rate_list[i];
        uint64_t diff = rate > want ? rate - want : want - rate;
        if (diff * 100u <= want)
            return true;
    }
    return false;
}

/* Evaluate (fi, di) at reader clock clk (kHz); keep it in *best when it is faster. */
static void consider_at(const struct smc_link_params *link, uint8_t fi, uint8_t di, uint32_t clk,
                        struct pps_candidate *best)
{
    uint32_t f = smc_fi_to_f(fi), d = smc_di_to_d(di);
    if (!f || !d || !clk || clk > smc_fi_to_fmax_khz(fi) ||
        (link->clk_max_khz && clk > link->clk_max_khz))
        return;
    uint64_t rate = (uint64_t)clk * 1000u * d / f;
    if (rate > UINT32_MAX || !rate_ok(link, (uint32_t)rate))
        return;
    if (rate > best->rate || (rate == best->rate && clk < best->clk_khz))
        *best = (struct pps_candidate){fi, di, clk, (uint32_t)rate};
}

/* Evaluate (fi, di) at every clock the reader can run: its list, or its default and maximum. */
static void consider(const struct smc_link_params *link, uint8_t fi, uint8_t di,
                     struct pps_candidate *best)
{
    if (link->clk_list && link->n_clk) {
        for (size_t i = 0; i < link->n_clk; i++)
            consider_at(link, fi, di, link->clk_list[i], best);
        return;
    }
    consider_at(link, fi, di, link->clk_default_khz, best);
    consider_at(link, fi, di, link->clk_max_khz, best);
}

void smc_pps_choose(const struct smc_card_caps *caps, const struct smc_link_params *link,
                    struct smc_pts *pts)
{
    const struct smc_atr *a = &caps->atr;
    uint32_t clk0 = link->clk_default_khz ? link->clk_default_khz : 3580;
    *pts = (struct smc_pts){.type = PTS_TYPE_DEFAULT,
                            .fi = 1,
                            .di = 1,
                            .clk_khz = clk0,
                            .data_rate = clk0 * 1000u / 372u,
                            .stop_bits = a->n};
    if (a->specific_mode) { /* no PPS: report what is in force */
        pts->fi = caps->fi;
        pts->di = caps->di;
        if (smc_fi_to_f(caps->fi))
            pts->data_rate =
                (uint32_t)((uint64_t)clk0 * 1000u * smc_di_to_d(caps->di) / smc_fi_to_f(caps->fi));
        return;
    }
    uint32_t card_d = smc_di_to_d(a->di);
    if (!a->has_ta1 || !smc_fi_to_f(a->fi) || !card_d)
        return;
    struct pps_candidate best = {0};
    for (uint8_t di = 1; di < 16; di++) {
        uint32_t d = smc_di_to_d(di);
        if (d && d <= card_d)
            consider(link, a->fi, di, &best);
    }
    if (best.rate <= pts->data_rate || (best.fi == 1 && best.di == 1))
        return;
    pts->type = PTS_TYPE_OPTIMAL;
    pts->fi = best.fi;
    pts->di = best.di;
    pts->clk_khz = best.clk_khz;
    pts->data_rate = best.rate;
}

/* Build the request for protocol t; returns its length. */
static size_t pps_build(const struct smc_pts *pts, uint8_t t, uint8_t req[4])
{
    size_t n = 0;
    bool pps1 = pts->type != PTS_TYPE_DEFAULT || pts->fi != 1 || pts->di != 1;
    req[n++] = PPSS;
    req[n++] = (uint8_t)((pps1 ? PPS0_PPS1 : 0) | (t & 0x0F));
    if (pps1)
        req[n++] = (uint8_t)((pts->fi << 4) | (pts->di & 0x0F));
    uint8_t pck = 0;
    for (size_t i = 0; i < n; i++)
        pck ^= req[i];
    req[n++] = pck;
    return n;
}

/* Check the answer against the request. Sets *pps1 when the card accepted PPS1. */
static smc_status pps_check(const uint8_t *req, size_t req_len, const uint8_t *ans, size_t ans_len,
                            bool *pps1)
{
    uint8_t x = 0;
    for (size_t i = 0; i < ans_len; i++)
        x ^= ans[i];
    if (ans[0] != PPSS || x != 0) {
        log_info(proto, "PPS answer garbled (PPSS %02X, XOR %02X)", ans[0], x);
        return STATUS_DEVICE_PROTOCOL_ERROR;
    }
    if ((ans[1] & 0x0F) != (req[1] & 0x0F)) {
        log_info(proto, "PPS refused: card answered T=%u", ans[1] & 0x0F);
        return STATUS_DEVICE_PROTOCOL_ERROR;
    }
    if ((ans[1] & 0x70 & ~req[1]) != 0) { /* a byte the request did not have */
        log_info(proto, "PPS answer has PPS0 %02X for request PPS0 %02X", ans[1], req[1]);
        return STATUS_DEVICE_PROTOCOL_ERROR;
    }
    *pps1 = (ans[1] & PPS0_PPS1) != 0;
    if (*pps1 && (req_len < 4 || ans[2] != req[2])) {
        log_info(proto, "PPS refused: PPS1 %02X answered %02X", req[2], ans[2]);
        return STATUS_DEVICE_PROTOCOL_ERROR;
    }
    return STATUS_SUCCESS;
}

/* Read PPSS PPS0, then what PPS0 announces, then PCK. */
static smc_status pps_read(const struct smc_card_io *io, bool inverse, uint32_t wait,
                           uint8_t ans[6], size_t *ans_len)
{
    size_t got = 0;
    *ans_len = 0;
    smc_status rc = smc__link_recv(io, inverse, ans, 2, wait, wait, &got);
    *ans_len = got;
    if (rc)
        return got && rc == STATUS_IO_TIMEOUT ? STATUS_DEVICE_PROTOCOL_ERROR : rc;
    size_t more = 1;
    for (uint8_t bit = PPS0_PPS1; bit <= PPS0_PPS3; bit <<= 1)
        more += (ans[1] & bit) ? 1 : 0;
    rc = smc__link_recv(io, inverse, ans + 2, more, wait, wait, &got);
    *ans_len += got;
    if (rc == STATUS_IO_TIMEOUT)
        return STATUS_DEVICE_PROTOCOL_ERROR;
    return rc;
}

smc_status smc_pps_exchange(const struct smc_card_io *io, struct smc_card_caps *caps, uint8_t t)
{
    if (!io || !caps || t > 14)
        return STATUS_INVALID_PARAMETER;
    if (caps->atr.specific_mode) /* no PPS in specific mode */
        return t == caps->atr.specific_protocol ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
    uint8_t req[4], ans[6];
    size_t req_len = pps_build(&caps->pts, t, req), ans_len = 0;
    bool inverse = caps->atr.inverse, pps1 = false;
    /* The card answers within the initial waiting time, 9600 etu at F = 372, D = 1. */
    uint32_t clk = caps->clk_khz ? caps->clk_khz : 3580;
    uint32_t wait = smc__ceil_us(9600u * 372u * 1000ull, clk);
    if (caps->wt_us > wait)
        wait = caps->wt_us;
    smc_status rc = smc__link_send(io, inverse, req, req_len);
    if (rc == STATUS_SUCCESS)
        rc = pps_read(io, inverse, wait, ans, &ans_len);
    if (rc == STATUS_SUCCESS)
        rc = pps_check(req, req_len, ans, ans_len, &pps1);
    if (rc) {
        log_info(proto, "PPS for T=%u failed: %08X", t, rc);
        return rc;
    }
    if (pps1) {
        caps->fi = caps->pts.fi;
        caps->di = caps->pts.di;
        if (caps->pts.clk_khz)
            caps->clk_khz = caps->pts.clk_khz;
    } else {
        caps->fi = 1;
        caps->di = 1;
    }
    smc_caps_update_timing(caps);
    log_debug(proto, "PPS done: T=%u Fi %u Di %u clock %u kHz", t, caps->fi, caps->di,
              caps->clk_khz);
    return STATUS_SUCCESS;
}
