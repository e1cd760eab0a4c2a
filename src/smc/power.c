/*
 * IOCTL_SMARTCARD_POWER: the library side of RDF_CARD_POWER.
 *
 * Before the slot: validate the command; a warm reset of an unpowered card (state <= SWALLOWED) is
 * carried out as a cold reset. After a successful reset: parse the ATR the driver stored with
 * smc_reader_set_atr() (or let the driver's atr_parse slot do it), fill the card capabilities, move
 * the state to NEGOTIABLE — or SPECIFIC when the ATR announces specific mode — and return the ATR.
 * After a power down: state SWALLOWED (the card stays in position), card capabilities cleared.
 * Whatever the driver answers, a reader that now reports ABSENT makes the call STATUS_NO_MEDIA.
 */
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "smc/internal.h"

static void link_params(const struct smc_reader *r, struct smc_link_params *lp)
{
    const struct smc_reader_caps *c = &r->caps;
    *lp = (struct smc_link_params){
        .clk_default_khz = c->clk_default_khz,
        .clk_max_khz = c->clk_max_khz,
        .rate_default = c->rate_default,
        .rate_max = c->rate_max,
        .clk_list = c->clk_list,
        .n_clk = c->n_clk,
        .rate_list = c->rate_list,
        .n_rate = c->n_rate,
        .max_ifsd = c->max_ifsd,
    };
}

/*
 * An ATR that does not follow ISO 7816-3 (bad TCK, bytes after the end, missing historical or
 * interface bytes) but starts with a valid TS and T0: the card is used as pcsc-lite uses such
 * cards, with default parameters — the first offered protocol (T=0 when TD1 is missing, unreadable
 * or names another protocol), Fi/Di 1/1 and no PPS, the default waiting times — and the ATR as
 * read. `a` holds what the parser got (the logical ATR, the convention, TD1, the historical bytes
 * if it got there).
 */
static void lenient_atr(struct smc_atr *a)
{
    static const uint8_t minimal[2] = {0x3B, 0x00}; /* T=0, nothing else: every default */
    struct smc_atr d;
    smc_status parsed = smc_atr_parse(minimal, sizeof(minimal), &d, NULL, 0);
    scrm_assert(parsed == STATUS_SUCCESS); /* a constant, valid ATR */
    uint8_t t = a->first_protocol <= 1 ? a->first_protocol : 0;
    memcpy(d.raw, a->raw, a->len);
    d.len = a->len;
    d.inverse = a->inverse;
    memcpy(d.hist, a->hist, a->hist_len <= sizeof(d.hist) ? a->hist_len : 0);
    d.hist_len = a->hist_len <= sizeof(d.hist) ? a->hist_len : 0;
    d.first_protocol = t;
    d.t_mask = (uint16_t)(1u << t);
    d.protocols = t ? SCARD_PROTOCOL_T1 : SCARD_PROTOCOL_T0;
    d.tck_present = a->tck_present;
    d.tck_ok = false;
    *a = d;
}

/* Parse the stored ATR into caps (library parser, then the driver's atr_parse slot, then the
 * lenient defaults). */
static smc_status parse_atr(struct smc_reader *r, const uint8_t *atr, size_t len,
                            struct smc_card_caps *caps)
{
    struct smc_atr a;
    char why[160] = "";
    struct smc_link_params lp;
    link_params(r, &lp);
    smc_status st = smc_atr_parse(atr, len, &a, why, sizeof(why));
    if (st == STATUS_SUCCESS) {
        smc_caps_from_atr(caps, &a, &lp);
        return STATUS_SUCCESS;
    }
    char hex[3 * MAXIMUM_ATR_LENGTH + 4];
    scrm_hex_encode(atr, len, ' ', hex, sizeof(hex));
    if (r->ops->atr_parse) {
        smc_caps_clear(caps);
        memcpy(caps->atr.raw, atr, len);
        caps->atr.len = len;
        if (r->ops->atr_parse(r, caps) == STATUS_SUCCESS) {
            log_warn(smc, "%s: ATR %s does not follow ISO 7816-3 (%s); the driver parsed it",
                     r->device, hex, why);
            return STATUS_SUCCESS;
        }
        smc_caps_clear(caps);
    }
    bool ts_ok = len >= 2 && (atr[0] == 0x3B || atr[0] == 0x3F || atr[0] == 0x03);
    if (!ts_ok) {
        /* not even a character frame the reader understood: powered, ATR not usable */
        log_warn(smc, "%s: ATR %s not usable: %s", r->device, hex, why);
        return STATUS_UNRECOGNIZED_MEDIA;
    }
    lenient_atr(&a);
    smc_caps_from_atr(caps, &a, &lp);
    log_warn(smc,
             "%s: ATR %s does not follow ISO 7816-3 (%s); the card is used with default "
             "parameters: T=%u, Fi/Di 1/1, no PPS",
             r->device, hex, why, a.first_protocol);
    return STATUS_SUCCESS;
}

static uint32_t protocol_bit(uint8_t t)
{
    return t == 0 ? SCARD_PROTOCOL_T0 : t == 1 ? SCARD_PROTOCOL_T1 : SCARD_PROTOCOL_UNDEFINED;
}

/* After a successful reset: parse, set state, return the ATR. op_lock held. */
static smc_status after_reset(struct smc_reader *r, struct smc_io *io)
{
    uint8_t atr[MAXIMUM_ATR_LENGTH];
    scrm_mutex_lock(&r->lock);
    size_t len = r->atr_len;
    memcpy(atr, r->atr, len);
    scrm_mutex_unlock(&r->lock);
    if (len == 0)
        return STATUS_IO_TIMEOUT; /* the driver reported success but no ATR: a mute card */

    struct smc_card_caps caps;
    smc_caps_clear(&caps);
    smc_status st = parse_atr(r, atr, len, &caps);
    scrm_mutex_lock(&r->lock);
    if (r->state <= SCARD_ABSENT) {
        st = STATUS_NO_MEDIA;
    } else if (st != STATUS_SUCCESS) {
        smc__set_state_locked(r, SCARD_POWERED); /* powered, ATR not usable */
        smc_caps_clear(&r->card);                /* nothing of the previous card remains */
    } else {
        caps.valid = true;
        if (caps.atr.specific_mode)
            caps.protocol_selected = protocol_bit(caps.atr.specific_protocol);
        r->card = caps;
        smc__set_state_locked(r, caps.atr.specific_mode ? SCARD_SPECIFIC : SCARD_NEGOTIABLE);
        r->card.protocol_selected = caps.protocol_selected;
    }
    scrm_mutex_unlock(&r->lock);
    if (st != STATUS_SUCCESS)
        return st;
    if (caps.protocol_selected == SCARD_PROTOCOL_T1)
        smc_t1_init(&r->t1, &caps);

    const uint8_t *out_atr = caps.atr.len ? caps.atr.raw : atr;
    size_t out_len = caps.atr.len ? caps.atr.len : len;
    if (io->out_len == 0)
        return STATUS_SUCCESS; /* caller did not ask for the ATR */
    if (io->out_len < out_len) {
        io->info = out_len;
        return STATUS_BUFFER_TOO_SMALL;
    }
    memcpy(io->out, out_atr, out_len);
    io->info = out_len;
    return STATUS_SUCCESS;
}

/* Run one power command through the driver and the library's post-processing. op_lock held. */
smc_status smc__do_power(struct smc_reader *r, uint32_t cmd, struct smc_io *io)
{
    scrm_mutex_lock(&r->lock);
    if (cmd == SCARD_WARM_RESET && r->state <= SCARD_SWALLOWED)
        cmd = SCARD_COLD_RESET;
    r->atr_len = 0;
    scrm_mutex_unlock(&r->lock);

    /* The driver writes nothing to out; the library returns the ATR. */
    struct smc_io dio = *io;
    dio.minor = cmd;
    dio.out = NULL;
    dio.out_len = 0;
    dio.info = 0;
    io->info = 0;
    smc_status st = r->ops->power(r, &dio);
    if (smc_reader_state(r) <= SCARD_ABSENT)
        return STATUS_NO_MEDIA;
    if (st != STATUS_SUCCESS)
        return st;
    if (cmd != SCARD_POWER_DOWN)
        return after_reset(r, io);

    scrm_mutex_lock(&r->lock);
    if (r->state >= SCARD_POWERED)
        smc__set_state_locked(r, SCARD_SWALLOWED);
    smc_caps_clear(&r->card);
    scrm_mutex_unlock(&r->lock);
    return STATUS_SUCCESS;
}

smc_status smc__power(struct smc_reader *r, struct smc_io *io)
{
    uint32_t cmd = smc__get_u32(io->in);
    if (cmd > SCARD_WARM_RESET)
        return STATUS_INVALID_PARAMETER;
    return smc__do_power(r, cmd, io);
}
