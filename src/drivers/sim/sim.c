/*
 * The simulated reader driver ("sim"): a contact reader holding a byte-level simulated card
 * (simcard.h). It is the worked example of a libsmc driver (docs/writing-a-driver.md).
 *
 * Every slot runs under libsmc's op lock, so the card and the fault switches need no lock of their
 * own: card insertion and removal arrive as vendor IOCTLs (SIM_IOCTL_INSERT / _REMOVE from any
 * thread), which libsmc serialises with power, transmit and set_protocol. Insertion and removal are
 * reported through the real event path (smc_card_inserted / smc_card_removed), which completes the
 * pending IS_PRESENT / IS_ABSENT.
 *
 * The link to the card has zero latency: bytes sent are processed by the card at once, and a
 * receive that finds fewer bytes than wanted is a timeout (a mute card), without waiting.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/opts.h"
#include "drivers/sim/simcard.h"
#include "smc/driver.h"
#include "smc/sim.h"

struct sim {
    struct smc_reader *r;
    struct simcard *card;    /* NULL: no card */
    struct simcard *outside; /* the last card removed, kept with its memory for re-insertion */
    char outside_profile[32];
    char card_profile[32]; /* profile of `card` */
    char profile[32];      /* card inserted when SIM_IOCTL_INSERT names none */
    bool mute;             /* SIM_FAULT_MUTE */
    bool lost;             /* SIM_FAULT_READER_LOST */
    uint32_t remove_after; /* SIM_FAULT_REMOVE_AFTER countdown; 0 = off */
    bool remove_on_reset;  /* SIM_FAULT_REMOVE_ON_RESET */
    unsigned hang_next;    /* SIM_FAULT_HANG: this many next POWER / TRANSMIT pend */
    atomic_bool hung;      /* a slot pends because of hang_next, until cancel_pending */
    uint32_t insertions, removals;
};

/* ---- the card link ---- */

/* The card leaves the reader. Like a real card it keeps its memory: re-inserting the same profile
 * brings the same card back (and makes insertion cheap for stress tests). */
static void pull_card(struct sim *s)
{
    simcard_power_off(s->card);
    simcard_free(s->outside);
    s->outside = s->card;
    memcpy(s->outside_profile, s->card_profile, sizeof(s->outside_profile));
    s->card = NULL;
    s->removals++;
    smc_card_removed(s->r);
}

static smc_status link_send(void *ctx, const uint8_t *data, size_t len)
{
    struct sim *s = ctx;
    if (!s->card)
        return STATUS_NO_MEDIA;
    if (s->lost)
        return STATUS_IO_TIMEOUT;
    if (s->remove_after) {
        if (len >= s->remove_after) {
            simcard_rx(s->card, data, s->remove_after);
            s->remove_after = 0;
            pull_card(s);
            return STATUS_NO_MEDIA;
        }
        s->remove_after -= (uint32_t)len;
    }
    if (!s->mute)
        simcard_rx(s->card, data, len);
    return STATUS_SUCCESS;
}

static smc_status link_recv(void *ctx, uint8_t *buf, size_t len, uint32_t first_timeout_us,
                            uint32_t char_timeout_us, size_t *got)
{
    struct sim *s = ctx;
    (void)first_timeout_us;
    (void)char_timeout_us;
    *got = 0;
    if (!s->card)
        return STATUS_NO_MEDIA;
    if (s->mute || s->lost)
        return STATUS_IO_TIMEOUT;
    *got = simcard_tx(s->card, buf, len);
    return *got == len ? STATUS_SUCCESS : STATUS_IO_TIMEOUT;
}

static struct smc_card_io make_link(struct sim *s)
{
    return (struct smc_card_io){.ctx = s, .send = link_send, .recv = link_recv};
}

/* ---- RDF slots ---- */

/* SIM_FAULT_HANG: the slot pends and nothing will complete it but a cancel. */
static bool hang(struct sim *s)
{
    if (!s->hang_next)
        return false;
    s->hang_next--;
    atomic_store(&s->hung, true);
    log_info(drv, "%s: hanging (SIM_FAULT_HANG) until cancelled", smc_reader_device(s->r));
    return true;
}

static void sim_cancel_pending(struct smc_reader *r)
{
    struct sim *s = smc_reader_priv(r);
    if (s && atomic_exchange(&s->hung, false))
        smc_complete_pending(r, STATUS_CANCELLED, 0);
}

static smc_status sim_power(struct smc_reader *r, struct smc_io *io)
{
    struct sim *s = smc_reader_priv(r);
    if (!s->card)
        return STATUS_NO_MEDIA;
    if (hang(s))
        return STATUS_PENDING;
    if (s->lost)
        return STATUS_IO_TIMEOUT;
    if (io->minor == SCARD_POWER_DOWN) {
        simcard_power_off(s->card);
        return STATUS_SUCCESS;
    }
    if (s->remove_on_reset) {
        s->remove_on_reset = false;
        pull_card(s);
        return STATUS_NO_MEDIA;
    }
    uint8_t atr[MAXIMUM_ATR_LENGTH];
    size_t n =
        s->mute ? 0 : simcard_reset(s->card, io->minor == SCARD_COLD_RESET, atr, sizeof(atr));
    if (n == 0)
        return STATUS_IO_TIMEOUT;
    smc_reader_set_atr(r, atr, n);
    return STATUS_SUCCESS;
}

static smc_status sim_transmit(struct smc_reader *r, struct smc_io *io)
{
    struct sim *s = smc_reader_priv(r);
    if (hang(s))
        return STATUS_PENDING;
    struct smc_card_io link = make_link(s);
    return smc_transmit(r, io, &link);
}

static smc_status sim_set_protocol(struct smc_reader *r, struct smc_io *io)
{
    struct sim *s = smc_reader_priv(r);
    struct smc_card_io link = make_link(s);
    return smc_select_protocol(r, io, &link);
}

/* Detection is always armed: insertion and removal are reported as they happen. */
static smc_status sim_card_tracking(struct smc_reader *r, uint32_t code)
{
    (void)r;
    (void)code;
    return STATUS_PENDING;
}

static smc_status mechanism(struct smc_reader *r, uint32_t bit)
{
    struct sim *s = smc_reader_priv(r);
    if (!(smc_reader_caps(r)->mech & bit))
        return STATUS_NOT_SUPPORTED;
    return s->card ? STATUS_SUCCESS : STATUS_NO_MEDIA;
}

static smc_status sim_swallow(struct smc_reader *r)
{
    return mechanism(r, SCARD_READER_SWALLOWS);
}

/* The card leaves the reader: the slot reports the removal itself. */
static smc_status eject_like(struct smc_reader *r, uint32_t bit)
{
    smc_status st = mechanism(r, bit);
    if (st == STATUS_SUCCESS)
        pull_card(smc_reader_priv(r));
    return st;
}

static smc_status sim_eject(struct smc_reader *r)
{
    return eject_like(r, SCARD_READER_EJECTS);
}

static smc_status sim_confiscate(struct smc_reader *r)
{
    return eject_like(r, SCARD_READER_CONFISCATES);
}

/* ---- vendor IOCTLs: the simulator's control panel ---- */

static smc_status sim_insert(struct sim *s, const struct smc_io *io)
{
    if (s->card)
        return STATUS_DEVICE_BUSY;
    char name[32];
    size_t n = io->in_len < sizeof(name) - 1 ? io->in_len : sizeof(name) - 1;
    if (n)
        memcpy(name, io->in, n);
    name[n] = '\0';
    const char *want = n ? name : s->profile;
    struct simcard_config cfg;
    if (!simcard_profile(want, &cfg)) {
        log_warn(drv, "%s: no card profile '%s'", smc_reader_device(s->r), want);
        return STATUS_INVALID_PARAMETER;
    }
    if (s->outside && strcmp(s->outside_profile, want) == 0) {
        s->card = s->outside;
        s->outside = NULL;
    } else {
        s->card = simcard_new(&cfg);
        if (!s->card)
            return STATUS_INSUFFICIENT_RESOURCES;
    }
    snprintf(s->card_profile, sizeof(s->card_profile), "%s", want);
    s->insertions++;
    bool swallows = smc_reader_caps(s->r)->mech & SCARD_READER_SWALLOWS;
    /* A reader without a swallow mechanism has the card in position at once. */
    smc_card_inserted(s->r, swallows ? SCARD_PRESENT : SCARD_SWALLOWED);
    return STATUS_SUCCESS;
}

static smc_status sim_fault(struct sim *s, const struct smc_io *io)
{
    if (io->in_len < 8)
        return STATUS_INVALID_PARAMETER;
    const uint8_t *p = io->in;
    uint32_t fault = scrm_get_u32le(p);
    uint32_t param = scrm_get_u32le(p + 4);
    switch (fault) {
    case SIM_FAULT_NONE:
        s->mute = s->remove_on_reset = false;
        s->hang_next = 0;
        s->remove_after = 0;
        break;
    case SIM_FAULT_REMOVE_ON_RESET: s->remove_on_reset = true; break;
    case SIM_FAULT_HANG: s->hang_next = param; break;
    case SIM_FAULT_MUTE: s->mute = param != 0; break;
    case SIM_FAULT_REMOVE_AFTER: s->remove_after = param; break;
    case SIM_FAULT_READER_LOST:
        s->lost = true;
        smc_reader_lost(s->r);
        break;
    case SIM_FAULT_READER_BACK:
        s->lost = false;
        if (s->card)
            smc_card_inserted(s->r, SCARD_SWALLOWED);
        else
            smc_card_removed(s->r);
        break;
    case SIM_FAULT_CARD:
        if (!s->card)
            return STATUS_NO_MEDIA;
        simcard_set_fault(s->card, (enum simcard_fault)(param & 0xFF), param >> 8);
        break;
    default: return STATUS_INVALID_PARAMETER;
    }
    return STATUS_SUCCESS;
}

static smc_status sim_vendor(struct smc_reader *r, struct smc_io *io)
{
    struct sim *s = smc_reader_priv(r);
    switch (io->code) {
    case SIM_IOCTL_INSERT: return sim_insert(s, io);
    case SIM_IOCTL_REMOVE:
        if (!s->card)
            return STATUS_NO_MEDIA;
        pull_card(s);
        return STATUS_SUCCESS;
    case SIM_IOCTL_FAULT: return sim_fault(s, io);
    case SIM_IOCTL_INFO:
        if (io->out_len < 12)
            return STATUS_BUFFER_TOO_SMALL;
        scrm_put_u32le(io->out, s->card ? 1u : 0u);
        scrm_put_u32le(io->out + 4, s->insertions);
        scrm_put_u32le(io->out + 8, s->removals);
        io->info = 12;
        return STATUS_SUCCESS;
    case SIM_IOCTL_PROFILES: return smc_put_names(io, simcard_profile_name);
    case IOCTL_SMARTCARD_GET_FEATURE_REQUEST:
        io->info = 0; /* no PC/SC part 10 features (no PIN pad) */
        return STATUS_SUCCESS;
    default: return STATUS_NOT_SUPPORTED; /* unknown vendor code or attribute */
    }
}

/* Insertion, removal and faults change the reader for everyone: scrmd keeps them for privileged
 * clients. SIM_IOCTL_INFO only reads. */
static bool sim_ioctl_privileged(uint32_t code)
{
    return code == SIM_IOCTL_INSERT || code == SIM_IOCTL_REMOVE || code == SIM_IOCTL_FAULT;
}

static const char *sim_ioctl_vendor_name(uint32_t code)
{
    switch (code) {
    case SIM_IOCTL_INSERT: return "SIM_IOCTL_INSERT";
    case SIM_IOCTL_REMOVE: return "SIM_IOCTL_REMOVE";
    case SIM_IOCTL_FAULT: return "SIM_IOCTL_FAULT";
    case SIM_IOCTL_INFO: return "SIM_IOCTL_INFO";
    case SIM_IOCTL_PROFILES: return "SIM_IOCTL_PROFILES";
    default: return NULL;
    }
}

/* ---- lifetime ---- */

static bool set_protocols(struct smc_reader_caps *c, const char *v)
{
    c->protocols = 0;
    while (*v) {
        size_t n = strcspn(v, "+");
        if (n == 2 && strncmp(v, "t0", 2) == 0)
            c->protocols |= SCARD_PROTOCOL_T0;
        else if (n == 2 && strncmp(v, "t1", 2) == 0)
            c->protocols |= SCARD_PROTOCOL_T1;
        else if (n == 3 && strncmp(v, "raw", 3) == 0)
            c->protocols |= SCARD_PROTOCOL_RAW;
        else
            return false;
        v += n + (v[n] == '+');
    }
    return c->protocols != 0;
}

static bool set_flag(uint32_t *mech, uint32_t bit, const char *v)
{
    if (strcmp(v, "1") == 0)
        *mech |= bit;
    else if (strcmp(v, "0") == 0)
        *mech &= ~bit;
    else
        return false;
    return true;
}

/* Apply one option; false if the key is unknown or the value invalid. */
static bool apply_option(struct sim *s, const struct scrm_opt *o)
{
    struct smc_vendor_attr *va = smc_reader_vendor(s->r);
    struct smc_reader_caps *c = smc_reader_caps(s->r);
    const char *k = o->key, *v = o->value;
    if (!strcmp(k, "vendor"))
        return scrm_parse_string(v, va->vendor_name, sizeof(va->vendor_name));
    if (!strcmp(k, "ifd"))
        return scrm_parse_string(v, va->ifd_type, sizeof(va->ifd_type));
    if (!strcmp(k, "unit"))
        return scrm_parse_u32(v, 0xFFFF, &va->unit);
    if (!strcmp(k, "swallows"))
        return set_flag(&c->mech, SCARD_READER_SWALLOWS, v);
    if (!strcmp(k, "ejects"))
        return set_flag(&c->mech, SCARD_READER_EJECTS, v);
    if (!strcmp(k, "confiscates"))
        return set_flag(&c->mech, SCARD_READER_CONFISCATES, v);
    if (!strcmp(k, "protocols"))
        return set_protocols(c, v);
    if (!strcmp(k, "clk"))
        return scrm_parse_u32(v, 100000, &c->clk_default_khz) && c->clk_default_khz;
    if (!strcmp(k, "maxclk"))
        return scrm_parse_u32(v, 100000, &c->clk_max_khz) && c->clk_max_khz;
    if (!strcmp(k, "rate"))
        return scrm_parse_u32(v, 10000000, &c->rate_default) && c->rate_default;
    if (!strcmp(k, "maxrate"))
        return scrm_parse_u32(v, 10000000, &c->rate_max) && c->rate_max;
    if (!strcmp(k, "ifsd"))
        return scrm_parse_u32(v, T1_IFSD, &c->max_ifsd) && c->max_ifsd >= 1;
    if (!strcmp(k, "card")) {
        struct simcard_config cfg;
        return scrm_parse_string(v, s->profile, sizeof(s->profile)) &&
               (!strcmp(v, "none") || simcard_profile(v, &cfg));
    }
    return false;
}

static void set_defaults(struct sim *s, const char *address)
{
    struct smc_vendor_attr *va = smc_reader_vendor(s->r);
    struct smc_reader_caps *c = smc_reader_caps(s->r);
    memcpy(va->vendor_name, "SimVendor", sizeof("SimVendor"));
    memcpy(va->ifd_type, "SimReader", sizeof("SimReader"));
    SCRM_IGNORE(scrm_parse_unit(address, &va->unit), "sim_open checked the address");
    va->ifd_version = 0x01000001; /* 1.0, build 1 */
    c->protocols = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1;
    c->reader_type = SCARD_READER_TYPE_VENDOR;
    c->channel = va->unit;
    c->clk_default_khz = c->clk_max_khz = 3580;
    c->rate_default = 9600;
    c->rate_max = 9600 * 32; /* up to D = 32 at the default clock */
    c->max_ifsd = T1_IFSD;
    memcpy(s->profile, "t1", sizeof("t1"));
}

static smc_status sim_open(struct smc_reader *r, const char *address, const char *options)
{
    uint32_t unit;
    if (!scrm_parse_unit(address, &unit)) {
        log_error(drv, "sim:%s: bad address '%s': a unit number from 0 to %u", address, address,
                  SCRM_UNIT_MAX);
        return STATUS_INVALID_PARAMETER;
    }
    struct sim *s = calloc(1, sizeof(*s));
    if (!s)
        return STATUS_INSUFFICIENT_RESOURCES;
    s->r = r;
    set_defaults(s, address);
    struct scrm_opt o;
    const char *cur = options;
    while (scrm_opts_next(&cur, &o)) {
        if (!o.key[0] || !apply_option(s, &o)) {
            log_error(drv, "sim:%s: bad option '%s=%s' (options: scrmd(8))", address, o.key,
                      o.value);
            free(s);
            return STATUS_INVALID_PARAMETER;
        }
    }
    smc_reader_set_priv(r, s);
    smc_reader_set_state(r, SCARD_ABSENT);
    /* A card named in the options is in the reader from the start. */
    if (strcmp(s->profile, "none") != 0 && strstr(options, "card=")) {
        struct smc_io io = {.code = SIM_IOCTL_INSERT};
        if (sim_insert(s, &io) != STATUS_SUCCESS) {
            free(s);
            return STATUS_INVALID_PARAMETER;
        }
    }
    return STATUS_SUCCESS;
}

static void sim_close(struct smc_reader *r)
{
    struct sim *s = smc_reader_priv(r);
    simcard_free(s->card);
    simcard_free(s->outside);
    free(s);
    smc_reader_set_priv(r, NULL);
}

const struct smc_driver_ops smc_sim_driver = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .power = sim_power,
    .transmit = sim_transmit,
    .set_protocol = sim_set_protocol,
    .card_tracking = sim_card_tracking,
    .eject = sim_eject,
    .swallow = sim_swallow,
    .confiscate = sim_confiscate,
    .ioctl_vendor = sim_vendor,
    .ioctl_privileged = sim_ioctl_privileged,
    .ioctl_vendor_name = sim_ioctl_vendor_name,
    .cancel_pending = sim_cancel_pending,
};
