/*
 * The simulated card's frame: configuration and named profiles, the ATR built from the
 * configuration, reset and power, the PPS exchange, the byte queues to and from the reader with
 * the inverse convention applied at the wire, faults and the card's random generator.
 *
 * Bytes from the reader are converted to direct convention, then routed by phase: right after
 * the ATR a first byte FF starts a PPS request, any other byte starts the default protocol; from
 * then on every byte goes to the T=0 or T=1 engine (simcard_t0.c, simcard_t1.c). The engines
 * queue their answers with sc_send(), which converts back for an inverse card.
 */
#include "drivers/sim/simcard_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/log.h"

/* ---- profiles ---------------------------------------------------------------------------- */

struct profile {
    const char *name;
    void (*apply)(struct simcard_config *cfg);
};

static void set_hist(struct simcard_config *cfg, const char *text)
{
    size_t n = strlen(text);
    if (n > sizeof(cfg->hist))
        n = sizeof(cfg->hist);
    memcpy(cfg->hist, text, n);
    cfg->hist_len = n;
}

/* The base of every profile: T=1 only, direct convention, IFSC 254, BWI 4 / CWI 5, LRC. */
static void base_t1(struct simcard_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->t1 = true;
    cfg->fi = 1;
    cfg->di = 1;
    cfg->wi = 10;
    cfg->ifsc = 254;
    cfg->bwi = 4;
    cfg->cwi = 5;
    cfg->accept_pps = true;
    set_hist(cfg, "SCRM-T1");
}

static void prof_t1(struct simcard_config *cfg)
{
    base_t1(cfg);
}

/* T=0 only with TC1 = 2: ATR without TD1 and without TCK. */
static void prof_t0(struct simcard_config *cfg)
{
    base_t1(cfg);
    cfg->t0 = true;
    cfg->t1 = false;
    cfg->n = 2;
    set_hist(cfg, "SCRM-T0");
}

/* T=0 (default) and T=1; TC2 = 20; T=1 parameters left at their defaults except TB3. */
static void prof_t0t1(struct simcard_config *cfg)
{
    base_t1(cfg);
    cfg->t0 = true;
    cfg->wi = 20;
    cfg->ifsc = 32;
    cfg->bwi = 5;
    cfg->cwi = 3;
    set_hist(cfg, "SCRM-DUAL");
}

static void prof_t1_crc(struct simcard_config *cfg)
{
    base_t1(cfg);
    cfg->crc = true;
    set_hist(cfg, "SCRM-CRC");
}

/* Inverse convention, T=0 (default) and T=1. */
static void prof_inverse(struct simcard_config *cfg)
{
    base_t1(cfg);
    cfg->t0 = true;
    cfg->inverse = true;
    set_hist(cfg, "SCRM-INV");
}

/* Specific mode T=1 with TA1 = 18 in force from the start. */
static void prof_specific(struct simcard_config *cfg)
{
    base_t1(cfg);
    cfg->specific = true;
    cfg->fi = 1;
    cfg->di = 8;
    set_hist(cfg, "SCRM-SPEC");
}

static void prof_fast(struct simcard_config *cfg)
{
    base_t1(cfg);
    cfg->fi = 9;
    cfg->di = 6;
    set_hist(cfg, "SCRM-FAST");
}

static void prof_pps_refuse(struct simcard_config *cfg)
{
    prof_fast(cfg);
    cfg->accept_pps = false;
    set_hist(cfg, "SCRM-NOPPS");
}

static void prof_pps_partial(struct simcard_config *cfg)
{
    prof_fast(cfg);
    cfg->pps_partial = true;
    set_hist(cfg, "SCRM-PART");
}

static void prof_t0_envelope(struct simcard_config *cfg)
{
    prof_t0(cfg);
    cfg->envelope = true;
    set_hist(cfg, "SCRM-ENV");
}

/* Imperfect ATRs (the card itself works): ISO 7816-3 parsers refuse them, pcsc-lite accepts them.
 */
static void prof_bad_tck(struct simcard_config *cfg)
{
    base_t1(cfg);
    cfg->atr_flaw = SIMCARD_ATR_BAD_TCK;
    set_hist(cfg, "SCRM-BADTCK");
}

static void prof_atr_extra(struct simcard_config *cfg)
{
    prof_t0(cfg);
    cfg->atr_flaw = SIMCARD_ATR_EXTRA;
    set_hist(cfg, "SCRM-EXTRA");
}

static void prof_short_hist(struct simcard_config *cfg)
{
    prof_t0(cfg);
    cfg->atr_flaw = SIMCARD_ATR_SHORT_HIST;
    set_hist(cfg, "SCRM-SHORT");
}

static const struct profile profiles[] = {
    {"t1", prof_t1},
    {"t0", prof_t0},
    {"t0t1", prof_t0t1},
    {"t1-crc", prof_t1_crc},
    {"inverse", prof_inverse},
    {"specific", prof_specific},
    {"fast", prof_fast},
    {"pps-refuse", prof_pps_refuse},
    {"pps-partial", prof_pps_partial},
    {"t0-envelope", prof_t0_envelope},
    {"bad-tck", prof_bad_tck},
    {"atr-extra", prof_atr_extra},
    {"short-hist", prof_short_hist},
};

const char *simcard_profile_name(size_t i)
{
    return i < sizeof(profiles) / sizeof(profiles[0]) ? profiles[i].name : NULL;
}

bool simcard_profile(const char *name, struct simcard_config *cfg)
{
    for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
        if (strcmp(profiles[i].name, name) == 0) {
            profiles[i].apply(cfg);
            snprintf(cfg->name, sizeof(cfg->name), "%s", name);
            return true;
        }
    }
    return false;
}

/* ---- ATR --------------------------------------------------------------------------------- */

/* Interface bytes of one group; -1 = absent. */
struct atr_group {
    int ta, tb, tc;
};

static bool t1_params_differ(const struct simcard_config *cfg)
{
    return cfg->ifsc != 32 || cfg->bwi != 4 || cfg->cwi != 13 || cfg->crc;
}

static int default_protocol(const struct simcard_config *cfg)
{
    return (cfg->t1_first || !cfg->t0) ? 1 : 0;
}

/*
 * The protocol types written in TD1, TD2, ... The first is the default protocol; T=1's own
 * parameters need a TDi with i >= 2 indicating T=1 (they sit in the group after it); T=0 alone
 * with nothing for group 2 needs no TD at all. Returns the count and the group of the T=1
 * parameters in *t1_group (0 if none).
 */
static size_t atr_tds(const struct simcard_config *cfg, int tds[4], size_t *t1_group)
{
    size_t n = 0;
    int first = default_protocol(cfg);
    bool group2 = cfg->specific || (cfg->t0 && cfg->wi != 10);
    *t1_group = 0;
    if (first == 0 && !cfg->t1 && !group2)
        return 0;
    tds[n++] = first;
    bool need_t1 = cfg->t1 && t1_params_differ(cfg);
    /* TD2 = T=1: offers T=1 after T=0, or repeats it to open group 3 for its parameters */
    if ((first == 0 && cfg->t1) || (first == 1 && need_t1))
        tds[n++] = 1;
    if (need_t1)
        *t1_group = 3;
    if (first == 1 && cfg->t0)
        tds[n++] = 0;
    return n;
}

/* Interface bytes per group (index 1..4) from the configuration. */
static void atr_groups(const struct simcard_config *cfg, size_t t1_group, struct atr_group g[5])
{
    for (size_t i = 0; i < 5; i++)
        g[i].ta = g[i].tb = g[i].tc = -1;
    if (cfg->fi != 1 || cfg->di != 1)
        g[1].ta = (cfg->fi << 4) | cfg->di;
    if (cfg->n)
        g[1].tc = cfg->n;
    if (cfg->specific)
        g[2].ta = default_protocol(cfg);
    if (cfg->t0 && cfg->wi != 10)
        g[2].tc = cfg->wi;
    if (t1_group) {
        if (cfg->ifsc != 32)
            g[t1_group].ta = cfg->ifsc;
        if (cfg->bwi != 4 || cfg->cwi != 13)
            g[t1_group].tb = (cfg->bwi << 4) | (cfg->cwi & 0x0F);
        if (cfg->crc)
            g[t1_group].tc = 0x01;
    }
}

/*
 * Build the ATR in direct convention (TS = 3B; the wire form is made in simcard_reset): T0 and
 * each TDi carry the presence bits of the next group; TCK closes the ATR unless only T=0 is
 * indicated.
 */
static size_t atr_build(const struct simcard_config *cfg, uint8_t *atr)
{
    struct atr_group g[5];
    int tds[4];
    size_t t1_group;
    size_t ntd = atr_tds(cfg, tds, &t1_group);
    atr_groups(cfg, t1_group, g);
    size_t len = 0;
    atr[len++] = 0x3B;
    size_t y_pos = len++;
    atr[y_pos] = (uint8_t)cfg->hist_len;
    bool tck = false;
    for (size_t i = 1; i <= ntd + 1; i++) {
        const int v[3] = {g[i].ta, g[i].tb, g[i].tc};
        for (int k = 0; k < 3; k++)
            if (v[k] >= 0)
                atr[y_pos] |= (uint8_t)(0x10 << k);
        if (i <= ntd)
            atr[y_pos] |= 0x80;
        for (int k = 0; k < 3; k++)
            if (v[k] >= 0)
                atr[len++] = (uint8_t)v[k];
        if (i <= ntd) {
            y_pos = len++;
            atr[y_pos] = (uint8_t)tds[i - 1];
            tck = tck || tds[i - 1] != 0;
        }
    }
    memcpy(atr + len, cfg->hist, cfg->hist_len);
    len += cfg->hist_len;
    if (tck) {
        uint8_t x = 0;
        for (size_t i = 1; i < len; i++)
            x ^= atr[i];
        atr[len++] = cfg->atr_flaw == SIMCARD_ATR_BAD_TCK ? (uint8_t)(x ^ 0x5A) : x;
    }
    if (cfg->atr_flaw == SIMCARD_ATR_EXTRA) {
        atr[len++] = 0x90;
        atr[len++] = 0x00;
    }
    if (cfg->atr_flaw == SIMCARD_ATR_SHORT_HIST && (atr[1] & 0x0F) < 15)
        atr[1]++;
    return len;
}

/* ---- wire conversion, queues, random ----------------------------------------------------- */

/* Inverse convention: reverse the bit order and complement (its own inverse). */
static uint8_t invert_byte(uint8_t b)
{
    uint8_t r = 0;
    for (int i = 0; i < 8; i++)
        if (b & (1u << i))
            r |= (uint8_t)(0x80u >> i);
    return (uint8_t)~r;
}

static void queue_raw(struct simcard *c, uint8_t b)
{
    if (c->out_head > 0 && c->out_head == c->out_len)
        c->out_head = c->out_len = 0;
    if (c->out_len == c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 1024;
        uint8_t *p = realloc(c->out, cap);
        scrm_assert(p != NULL);
        c->out = p;
        c->out_cap = cap;
    }
    c->out[c->out_len++] = b;
}

void sc_send(struct simcard *c, const uint8_t *data, size_t len)
{
    if (c->fault.mute || c->phase == SC_OFF)
        return;
    for (size_t i = 0; i < len; i++)
        queue_raw(c, c->cfg.inverse ? invert_byte(data[i]) : data[i]);
}

void sc_send_byte(struct simcard *c, uint8_t b)
{
    sc_send(c, &b, 1);
}

/* xorshift64*: a per-card generator, good enough for challenges and garbage. */
uint64_t sc_random(struct simcard *c)
{
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void sc_random_bytes(struct simcard *c, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(sc_random(c) >> 56);
}

void sc_send_garbage(struct simcard *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sc_send_byte(c, (uint8_t)(sc_random(c) >> 56));
}

void simcard_seed(struct simcard *c, uint64_t seed)
{
    c->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

static bool config_valid(const struct simcard_config *cfg)
{
    if (!cfg->t0 && !cfg->t1)
        return false;
    if (cfg->hist_len > sizeof(cfg->hist) || cfg->fi > 15 || cfg->di > 15)
        return false;
    if (cfg->t1 && (cfg->ifsc == 0 || cfg->ifsc == 255 || cfg->bwi > 15 || cfg->cwi > 15))
        return false;
    return true;
}

struct simcard *simcard_new(const struct simcard_config *cfg)
{
    if (!config_valid(cfg))
        return NULL;
    struct simcard *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = *cfg;
    c->cmd = malloc(SC_APDU_MAX);
    c->rsp = malloc(SC_RESP_MAX);
    if (!c->cmd || !c->rsp || sc_app_init(&c->app) != 0) {
        simcard_free(c);
        return NULL;
    }
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)c;
    simcard_seed(c, seed);
    c->phase = SC_OFF;
    c->protocol = -1;
    return c;
}

void simcard_free(struct simcard *c)
{
    if (!c)
        return;
    sc_app_free(&c->app);
    free(c->cmd);
    free(c->rsp);
    free(c->out);
    free(c);
}

static void protocol_state_clear(struct simcard *c)
{
    c->in_len = 0;
    c->out_head = c->out_len = 0;
    c->protocol = -1;
    c->pps_done = false;
    c->fi = c->cfg.specific ? c->cfg.fi : 1;
    c->di = c->cfg.specific ? c->cfg.di : 1;
    c->cmd_len = 0;
    c->cmd_overflow = false;
    c->rsp_len = 0;
    sc_t0_reset(c);
    sc_t1_reset(c);
}

size_t simcard_reset(struct simcard *c, bool cold, uint8_t *atr, size_t cap)
{
    uint8_t buf[40];
    (void)cold; /* the card answers a warm reset exactly like a cold one */
    protocol_state_clear(c);
    sc_app_reset(&c->app);
    if (c->fault.mute) {
        c->phase = SC_SILENT;
        return 0;
    }
    size_t len = atr_build(&c->cfg, buf);
    if (len > cap) {
        c->phase = SC_SILENT;
        return 0;
    }
    if (c->cfg.inverse) {
        buf[0] = 0x3F; /* TS of the inverse convention, which a direct UART reads as 03 */
        for (size_t i = 0; i < len; i++)
            buf[i] = invert_byte(buf[i]);
    }
    memcpy(atr, buf, len);
    c->phase = SC_ATR;
    log_debug(drv, "simcard %s: reset, ATR of %zu bytes", c->cfg.name, len);
    return len;
}

void simcard_power_off(struct simcard *c)
{
    protocol_state_clear(c);
    sc_app_reset(&c->app);
    c->phase = SC_OFF;
}

/* ---- PPS --------------------------------------------------------------------------------- */

static unsigned ppsx_f(uint8_t fi)
{
    static const unsigned f[16] = {372, 372, 558, 744,  1116, 1488, 1860, 0,
                                   0,   512, 768, 1024, 1536, 2048, 0,    0};
    return f[fi & 15];
}

static unsigned ppsx_d(uint8_t di)
{
    static const unsigned d[16] = {0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0};
    return d[di & 15];
}

/* PPS1 acceptable: defaults, or the card's own F with a D not above its D. */
static bool pps1_acceptable(const struct simcard_config *cfg, uint8_t pps1)
{
    uint8_t fi = pps1 >> 4, di = pps1 & 15;
    unsigned f = ppsx_f(fi), d = ppsx_d(di);
    if (f == 0 || d == 0)
        return false;
    if (f == 372 && d == 1)
        return true;
    return f == ppsx_f(cfg->fi) && d <= ppsx_d(cfg->di);
}

static size_t pps_length(uint8_t pps0)
{
    size_t n = 3;
    for (int bit = 4; bit <= 6; bit++)
        if (pps0 & (1u << bit))
            n++;
    return n;
}

/* The request in c->in is complete: answer it or fall silent. */
static void pps_answer(struct simcard *c)
{
    const uint8_t *r = c->in;
    uint8_t pps0 = r[1], t = pps0 & 0x0F, x = 0;
    for (size_t i = 0; i < c->in_len; i++)
        x ^= r[i];
    bool offered = (t == 0 && c->cfg.t0) || (t == 1 && c->cfg.t1);
    if (x != 0 || (pps0 & 0x80) || !offered || !c->cfg.accept_pps) {
        log_debug(drv, "simcard %s: PPS refused (silent)", c->cfg.name);
        c->phase = SC_SILENT;
        return;
    }
    size_t pos = 2;
    int pps1 = -1, pps2 = -1;
    if (pps0 & 0x10)
        pps1 = r[pos++];
    if (pps0 & 0x20)
        pps2 = r[pos++];
    uint8_t ans[5], n = 0;
    bool take1 = pps1 >= 0 && !c->cfg.pps_partial && pps1_acceptable(&c->cfg, (uint8_t)pps1);
    ans[n++] = 0xFF;
    ans[n++] = (uint8_t)(t | (take1 ? 0x10 : 0) | (pps2 >= 0 ? 0x20 : 0));
    if (take1)
        ans[n++] = (uint8_t)pps1;
    if (pps2 >= 0)
        ans[n++] = (uint8_t)pps2;
    uint8_t pck = 0;
    for (uint8_t i = 0; i < n; i++)
        pck ^= ans[i];
    ans[n++] = pck;
    sc_send(c, ans, n);
    c->fi = take1 ? (uint8_t)(pps1 >> 4) : 1;
    c->di = take1 ? (uint8_t)(pps1 & 15) : 1;
    c->protocol = t;
    c->pps_done = true;
    c->phase = t == 0 ? SC_T0 : SC_T1;
}

static void pps_byte(struct simcard *c, uint8_t b)
{
    c->in[c->in_len++] = b;
    if (c->in_len >= 2 && c->in_len == pps_length(c->in[1])) {
        pps_answer(c);
        c->in_len = 0;
    }
}

/* ---- reader → card ------------------------------------------------------------------------ */

static void protocol_byte(struct simcard *c, uint8_t b)
{
    if (c->phase == SC_T0)
        sc_t0_byte(c, b);
    else
        sc_t1_byte(c, b);
}

static void first_byte(struct simcard *c, uint8_t b)
{
    if (b == 0xFF) {
        if (c->cfg.specific) {
            log_debug(drv, "simcard %s: PPS in specific mode refused", c->cfg.name);
            c->phase = SC_SILENT;
            return;
        }
        c->phase = SC_PPS;
        c->in_len = 0;
        pps_byte(c, b);
        return;
    }
    c->protocol = default_protocol(&c->cfg);
    c->phase = c->protocol == 0 ? SC_T0 : SC_T1;
    protocol_byte(c, b);
}

void simcard_rx(struct simcard *c, const uint8_t *data, size_t len)
{
    c->rx_count += len;
    for (size_t i = 0; i < len; i++) {
        if (c->fault.mute)
            return;
        uint8_t b = c->cfg.inverse ? invert_byte(data[i]) : data[i];
        switch (c->phase) {
        case SC_ATR: first_byte(c, b); break;
        case SC_PPS: pps_byte(c, b); break;
        case SC_T0:
        case SC_T1: protocol_byte(c, b); break;
        case SC_OFF:
        case SC_SILENT: return;
        }
    }
}

size_t simcard_tx(struct simcard *c, uint8_t *buf, size_t cap)
{
    size_t n = c->out_len - c->out_head;
    if (n > cap)
        n = cap;
    if (n) {
        memcpy(buf, c->out + c->out_head, n);
        c->out_head += n;
    }
    if (c->out_head == c->out_len)
        c->out_head = c->out_len = 0;
    return n;
}

size_t simcard_pending(const struct simcard *c)
{
    return c->out_len - c->out_head;
}

uint64_t simcard_bytes_received(const struct simcard *c)
{
    return c->rx_count;
}

/* ---- faults and inspection ---------------------------------------------------------------- */

void simcard_set_fault(struct simcard *c, enum simcard_fault f, uint32_t count)
{
    switch (f) {
    case SIMCARD_FAULT_NONE: memset(&c->fault, 0, sizeof(c->fault)); break;
    case SIMCARD_FAULT_BAD_EDC: c->fault.bad_edc = count ? count : 1; break;
    case SIMCARD_FAULT_LOSE_BLOCK: c->fault.lose = count ? count : 1; break;
    case SIMCARD_FAULT_WTX: c->fault.wtx = count ? (count > 255 ? 255 : count) : 2; break;
    case SIMCARD_FAULT_IFS: c->fault.ifs = count ? (count > 254 ? 254 : count) : 16; break;
    case SIMCARD_FAULT_CHAIN: c->fault.chain = count ? count : 16; break;
    case SIMCARD_FAULT_MUTE: c->fault.mute = true; break;
    case SIMCARD_FAULT_GARBAGE: c->fault.garbage = count ? (count > 4096 ? 4096 : count) : 8; break;
    }
    log_debug(drv, "simcard %s: fault %d count %u", c->cfg.name, (int)f, count);
}

void simcard_info(const struct simcard *c, struct simcard_info *info)
{
    info->powered = c->phase != SC_OFF;
    info->protocol = c->protocol;
    info->pps_done = c->pps_done;
    info->fi = c->fi;
    info->di = c->di;
    info->ifsc = c->t1.ifsc;
    info->ifsd = c->t1.ifsd;
}

uint32_t simcard_verify_retries(const struct simcard *c)
{
    return c->app.pin_tries;
}

/* Parse and execute a complete command APDU; leave data + SW in c->rsp. */
void sc_run_apdu(struct simcard *c, const uint8_t *buf, size_t len)
{
    struct sc_apdu a;
    size_t n = 0;
    uint16_t sw = sc_apdu_parse(buf, len, &a);
    if (sw == 0)
        sw = sc_app_execute(c, &a, c->rsp, SC_RESP_MAX - 2, &n);
    c->rsp[n] = (uint8_t)(sw >> 8);
    c->rsp[n + 1] = (uint8_t)sw;
    c->rsp_len = n + 2;
    log_debug(drv, "simcard %s: APDU of %zu bytes -> %zu data bytes, SW %04X", c->cfg.name, len, n,
              sw);
}
