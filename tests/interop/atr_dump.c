/*
 * atr_dump: run libsmc's ATR parser over ATRs given as hex, one per line on stdin, and print one
 * line per ATR for tests/interop/test_atr_list.py:
 *
 *   <ATR hex>|<OK or ERR>|<T values offered, comma-separated>|<TA1 hex or ->|<historical bytes
 *   hex>|<TCK verdict: absent, ok, bad or malformed>|<reason when ERR>
 *
 * The fields come from struct smc_atr, which the parser fills as far as it got.
 */
#include <stdio.h>
#include <string.h>

#include "common/hex.h"
#include "smc/protocol.h"

static const char *tck_verdict(smc_status rc, const struct smc_atr *a, const char *why)
{
    if (rc == STATUS_SUCCESS)
        return a->tck_present ? "ok" : "absent";
    if (a->tck_present && strncmp(why, "TCK mismatch", 12) == 0)
        return "bad";
    return "malformed";
}

static void dump_one(const char *line)
{
    uint8_t atr[128];
    long n = scrm_hex_decode(line, atr, sizeof(atr));
    if (n < 0) {
        printf("%s|ERR|||||not hex\n", line);
        return;
    }
    struct smc_atr a;
    char why[200];
    smc_status rc = smc_atr_parse(atr, (size_t)n, &a, why, sizeof(why));
    char ts[64] = "";
    size_t tl = 0;
    for (unsigned t = 0; t < 16; t++)
        if (a.t_mask & (1u << t))
            tl += (size_t)snprintf(ts + tl, sizeof(ts) - tl, "%s%u", tl ? "," : "", t);
    char ta1[4] = "-", hist[3 * 15 + 1];
    if (a.has_ta1)
        snprintf(ta1, sizeof(ta1), "%02X", (unsigned)(a.fi << 4 | a.di));
    scrm_hex_encode(a.hist, a.hist_len, 0, hist, sizeof(hist));
    printf("%s|%s|%s|%s|%s|%s|%s\n", line, rc == STATUS_SUCCESS ? "OK" : "ERR", ts, ta1, hist,
           tck_verdict(rc, &a, why), rc == STATUS_SUCCESS ? "" : why);
}

int main(void)
{
    char line[512];
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0])
            dump_one(line);
    }
    return 0;
}
