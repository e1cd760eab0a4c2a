/*
 * The contactless reader driver ("nfc") for libsmc: device-string options, the front end, and the
 * glue between libsmc's reader object and the NFC reader core (nfc_reader.c).
 *
 * An NFC class driver does not use the driver library's generic IOCTL checks (docs/nfc.md: its rules
 * differ: minimum buffers, DEVICE_POWERED_OFF while the radio is off, mask rules of SET_PROTOCOL,
 * GET_LAST_ERROR answering 0, two card-tracking slots). The driver therefore uses libsmc's
 * `dispatch` slot: every IOCTL goes to the core, and libsmc keeps what is generic — handles (one
 * at a time: `exclusive`), the card-tracking requests the core leaves pending (one slot each for
 * IS_PRESENT and IS_ABSENT: `split_tracking`), cancel and cleanup. When a handle closes
 * (`handle_closed`) the core re-activates a card the client transmitted to.
 *
 * The core mirrors its state into libsmc through the event path: smc_card_inserted(SPECIFIC) on
 * arrival, smc_card_removed() on departure, smc_reader_set_state() for SWALLOWED after POWER_DOWN
 * and back to SPECIFIC after a reset, so libsmc's already-satisfied test of card tracking agrees.

 */
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/opts.h"
#include "drivers/nfc/nfc_reader.h"
#include "drivers/nfc/nfc_tag.h"
#include "smc/driver.h"
#include "smc/nfc.h"

/* What the options ask for beyond the reader configuration. */
struct start {
    const struct nfc_fe_ops *fe;
    char tag[48]; /* "profile[:uid]" of a tag in the field from the start; "" none */
    char uid[24];
};

/* ---- host callbacks: the core's state into libsmc ---- */

static void host_arrived(void *ctx)
{
    smc_card_inserted(ctx, SCARD_SPECIFIC);
}

static void host_left(void *ctx)
{
    smc_card_removed(ctx);
}

static void host_set_state(void *ctx, uint32_t state)
{
    smc_reader_set_state(ctx, state);
}

static void host_available(void *ctx)
{
    smc_reader_changed(ctx);
}

static void host_unavailable(void *ctx)
{
    SCRM_IGNORE(smc_complete_card_tracking(ctx), "no tracking request pending: nothing to wake");
}

/* ---- options ---- */

static bool set_uid(struct start *s, const char *v)
{
    uint8_t uid[NFC_MAX_UID];
    long n = scrm_hex_decode(v, uid, sizeof(uid));
    return n > 0 && scrm_parse_string(v, s->uid, sizeof(s->uid));
}

/* Apply one option; false if the key is unknown or the value invalid. */
static bool apply_option(struct nfc_reader_config *cfg, struct start *s, const struct scrm_opt *o)
{
    const char *k = o->key, *v = o->value;
    if (!strcmp(k, "vendor"))
        return scrm_parse_string(v, cfg->vendor, sizeof(cfg->vendor));
    if (!strcmp(k, "ifd"))
        return scrm_parse_string(v, cfg->ifd, sizeof(cfg->ifd));
    if (!strcmp(k, "unit"))
        return scrm_parse_u32(v, 0xFFFF, &cfg->unit);
    if (!strcmp(k, "radio")) {
        cfg->radio = !strcmp(v, "on");
        return cfg->radio || !strcmp(v, "off");
    }
    if (!strcmp(k, "getdata")) {
        cfg->getdata_card = !strcmp(v, "card");
        return cfg->getdata_card || !strcmp(v, "reader");
    }
    if (!strcmp(k, "frontend"))
        return !strcmp(v, nfc_simfield_ops.name); /* the only front end so far */
    if (!strcmp(k, "tag"))
        return nfc_tag_profile_exists(v) && scrm_parse_string(v, s->tag, sizeof(s->tag));
    if (!strcmp(k, "uid"))
        return set_uid(s, v);
    return false;
}

static smc_status parse_options(const char *address, const char *options,
                                struct nfc_reader_config *cfg, struct start *s)
{
    uint32_t unit;
    if (!scrm_parse_unit(address, &unit)) {
        log_error(drv, "nfc:%s: bad address '%s': a reader number from 0 to %u", address, address,
                  SCRM_UNIT_MAX);
        return STATUS_INVALID_PARAMETER;
    }
    memset(cfg, 0, sizeof(*cfg));
    memset(s, 0, sizeof(*s));
    memcpy(cfg->vendor, "SCRM", sizeof("SCRM"));
    memcpy(cfg->ifd, "IFD", sizeof("IFD"));
    cfg->radio = true;
    s->fe = &nfc_simfield_ops;
    struct scrm_opt o;
    const char *cur = options;
    while (scrm_opts_next(&cur, &o)) {
        if (!o.key[0] || !apply_option(cfg, s, &o)) {
            log_error(drv, "nfc:%s: bad option '%s=%s' (options: scrmd(8))", address, o.key,
                      o.value);
            return STATUS_INVALID_PARAMETER;
        }
    }
    if (s->uid[0] && !s->tag[0]) {
        log_error(drv, "nfc:%s: uid= needs tag=", address);
        return STATUS_INVALID_PARAMETER;
    }
    return STATUS_SUCCESS;
}

/* Identification and capabilities in libsmc's reader object (logs, tools). */
static void describe_reader(struct smc_reader *r, const struct nfc_reader_config *cfg)
{
    struct smc_vendor_attr *va = smc_reader_vendor(r);
    struct smc_reader_caps *c = smc_reader_caps(r);
    memcpy(va->vendor_name, cfg->vendor, sizeof(va->vendor_name));
    memcpy(va->ifd_type, cfg->ifd, sizeof(va->ifd_type));
    va->unit = cfg->unit;
    va->ifd_version = NFC_IFD_VERSION;
    c->protocols = SCARD_PROTOCOL_T1;
    c->reader_type = SCARD_READER_TYPE_NFC;
    c->mech = SCARD_READER_CONTACTLESS;
    c->clk_default_khz = c->clk_max_khz = 13560;
    c->rate_default = c->rate_max = 1;
    c->max_ifsd = T1_IFSD;
}

/* The tag of the options enters the field (through the simulator's control IOCTL). */
static smc_status enter_start_tag(struct nfc_reader *rd, const struct start *s)
{
    char spec[80];
    int n = snprintf(spec, sizeof(spec), "%s%s%s", s->tag, s->uid[0] ? ":" : "", s->uid);
    if (n < 0 || (size_t)n >= sizeof(spec))
        return STATUS_INVALID_PARAMETER;
    struct smc_io io = {
        .code = NFC_IOCTL_TAG_ENTER, .in = (const uint8_t *)spec, .in_len = (size_t)n};
    return nfc_reader_ioctl(rd, &io);
}

/* ---- driver slots ---- */

static smc_status nfc_open(struct smc_reader *r, const char *address, const char *options)
{
    struct nfc_reader_config cfg;
    struct start s;
    smc_status st = parse_options(address, options, &cfg, &s);
    if (st != STATUS_SUCCESS)
        return st;
    describe_reader(r, &cfg);
    struct nfc_host host = {
        .ctx = r,
        .arrived = host_arrived,
        .left = host_left,
        .set_state = host_set_state,
        .available = host_available,
        .unavailable = host_unavailable,
    };
    struct nfc_reader *rd = nfc_reader_new(&cfg, &host);
    if (!rd)
        return STATUS_INSUFFICIENT_RESOURCES;
    struct nfc_fe_events ev = nfc_reader_events(rd);
    void *fe = NULL;
    st = s.fe->open(options, &ev, &fe);
    if (st != STATUS_SUCCESS) {
        nfc_reader_free(rd);
        return st;
    }
    smc_reader_set_priv(r, rd);
    nfc_reader_start(rd, s.fe, fe);
    if (s.tag[0] && (st = enter_start_tag(rd, &s)) != STATUS_SUCCESS) {
        log_error(drv, "nfc:%s: tag %s:%s: %s", address, s.tag, s.uid, smc_status_name(st));
        nfc_reader_free(rd);
        smc_reader_set_priv(r, NULL);
        return STATUS_INVALID_PARAMETER;
    }
    return STATUS_SUCCESS;
}

static void nfc_close(struct smc_reader *r)
{
    nfc_reader_free(smc_reader_priv(r));
    smc_reader_set_priv(r, NULL);
}

static smc_status nfc_dispatch(struct smc_reader *r, struct smc_io *io)
{
    return nfc_reader_ioctl(smc_reader_priv(r), io);
}

static void nfc_handle_closed(struct smc_reader *r)
{
    nfc_reader_client_closed(smc_reader_priv(r));
}

/* libsmc calls it for a tracking request the core left pending: detection is always armed while
 * the radio is on (the front end reports arrivals and departures). */
static smc_status nfc_card_tracking(struct smc_reader *r, uint32_t code)
{
    (void)code;
    return nfc_reader_can_track(smc_reader_priv(r));
}

/* Mandatory slots libsmc never calls for a driver with its own dispatch. */
static smc_status nfc_unused_slot(struct smc_reader *r, struct smc_io *io)
{
    (void)r;
    (void)io;
    return STATUS_INVALID_DEVICE_REQUEST;
}

/* The radio switch, tag entry / exit and tag faults change the field for everyone: scrmd keeps
 * them for privileged clients. NFC_IOCTL_INFO only reads. */
static bool nfc_ioctl_privileged(uint32_t code)
{
    return code == NFC_IOCTL_RADIO || code == NFC_IOCTL_TAG_ENTER || code == NFC_IOCTL_TAG_LEAVE ||
           code == NFC_IOCTL_TAG_FAULT;
}

static const char *nfc_ioctl_vendor_name(uint32_t code)
{
    switch (code) {
    case NFC_IOCTL_RADIO: return "NFC_IOCTL_RADIO";
    case NFC_IOCTL_TAG_ENTER: return "NFC_IOCTL_TAG_ENTER";
    case NFC_IOCTL_TAG_LEAVE: return "NFC_IOCTL_TAG_LEAVE";
    case NFC_IOCTL_TAG_FAULT: return "NFC_IOCTL_TAG_FAULT";
    case NFC_IOCTL_INFO: return "NFC_IOCTL_INFO";
    case NFC_IOCTL_PROFILES: return "NFC_IOCTL_PROFILES";
    default: return NULL;
    }
}

const struct smc_driver_ops smc_nfc_driver = {
    .name = "nfc",
    .open = nfc_open,
    .close = nfc_close,
    .exclusive = true,
    .power = nfc_unused_slot,
    .transmit = nfc_unused_slot,
    .set_protocol = nfc_unused_slot,
    .card_tracking = nfc_card_tracking,
    .dispatch = nfc_dispatch,
    .split_tracking = true,
    .handle_closed = nfc_handle_closed,
    .ioctl_privileged = nfc_ioctl_privileged,
    .ioctl_vendor_name = nfc_ioctl_vendor_name,
};
