/*
 * libFuzzer target for the ATR parser: smc_atr_parse() on arbitrary bytes, then, for what it
 * accepts or half-parses, the capability and PPS computations that consume struct smc_atr
 * (smc_caps_from_atr with and without reader lists, smc_pps_choose). Invariants that must hold
 * for any input are checked with scrm_assert, so a violation is a crash the fuzzer reports.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "smc/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t clks[] = {1000, 3580, 4915, 8000, 20000};
static const uint32_t rates[] = {9600, 19200, 38400, 57600, 115200, 230400, 1000000};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smc_atr a;
    char why[160];
    memset(why, 'x', sizeof(why));
    smc_status rc = smc_atr_parse(data, size, &a, why, sizeof(why));
    scrm_assert(memchr(why, '\0', sizeof(why)) != NULL);
    scrm_assert(a.hist_len <= sizeof(a.hist) && a.len <= sizeof(a.raw));
    if (rc == STATUS_SUCCESS) {
        scrm_assert(why[0] == '\0' && a.len == size);
        scrm_assert(a.raw[0] == 0x3B || a.raw[0] == 0x3F);
        scrm_assert(a.ifsc >= 1 && a.ifsc <= 254);
    } else {
        scrm_assert(rc == STATUS_UNRECOGNIZED_MEDIA && why[0] != '\0');
    }
    struct smc_link_params plain = {
        .clk_default_khz = 3580, .clk_max_khz = 20000, .rate_default = 9600, .rate_max = 10000000};
    struct smc_link_params lists = plain;
    lists.clk_list = clks;
    lists.n_clk = sizeof(clks) / sizeof(clks[0]);
    lists.rate_list = rates;
    lists.n_rate = sizeof(rates) / sizeof(rates[0]);
    struct smc_card_caps caps;
    smc_caps_from_atr(&caps, &a, &plain);
    scrm_assert(caps.etu_us >= 1 && caps.f && caps.d);
    smc_caps_from_atr(&caps, &a, &lists);
    scrm_assert(caps.pts.type == PTS_TYPE_DEFAULT || caps.pts.data_rate <= plain.rate_max);
    if (caps.pts.type == PTS_TYPE_OPTIMAL) {
        caps.fi = caps.pts.fi;
        caps.di = caps.pts.di;
        caps.clk_khz = caps.pts.clk_khz;
        smc_caps_update_timing(&caps);
        scrm_assert(caps.etu_us >= 1);
    }
    return 0;
}
