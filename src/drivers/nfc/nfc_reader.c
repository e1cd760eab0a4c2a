/*
 * The NFC reader's IOCTL contract (docs/nfc.md); see nfc_reader.h.
 *
 * Order of the checks for every IOCTL: the driver's own vendor IOCTLs (radio, info, the front
 * end's tag control) are served in any state; any other code gets STATUS_DEVICE_POWERED_OFF while
 * the radio is off; then the code must be one of the table below (else
 * STATUS_INVALID_DEVICE_REQUEST) and its buffers at least the table's minimum (else
 * STATUS_INVALID_PARAMETER); then the handler.
 *
 * States: ABSENT without a card, SPECIFIC with an activated card. POWER_DOWN switches the card's
 * virtual power off (the tag is halted): SWALLOWED, where TRANSMIT, SET_PROTOCOL and the card
 * attributes get STATUS_INVALID_DEVICE_STATE; a cold or warm reset re-activates the tag over RF,
 * rebuilds the ATR, drops the Load Key table and the transmit session, and returns to SPECIFIC.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/mutex.h"
#include "common/log.h"
#include "drivers/nfc/nfc_apdu.h"
#include "drivers/nfc/nfc_reader.h"
#include "drivers/nfc/nfc_tag.h"
#include "smc/nfc.h"

struct nfc_reader {
    struct nfc_reader_config cfg;
    struct nfc_host host;
    const struct nfc_fe_ops *fe_ops;
    void *fe;

    scrm_mutex lock; /* the fields below */
    bool radio;
    uint32_t state;       /* SCARD_ABSENT, SCARD_SWALLOWED, SCARD_SPECIFIC */
    uint32_t generation;  /* +1 at every arrival and departure */
    bool session;         /* a TRANSMIT since the card was last activated */
    struct nfc_card card; /* valid while state > ABSENT */
};

static uint32_t current_state(struct nfc_reader *rd)
{
    scrm_mutex_lock(&rd->lock);
    uint32_t s = rd->state;
    scrm_mutex_unlock(&rd->lock);
    return s;
}

/* ---- events from the front end ---- */

static void on_arrived(void *ctx, const struct nfc_target *t)
{
    struct nfc_reader *rd = ctx;
    scrm_mutex_lock(&rd->lock);
    nfc_card_init(&rd->card, t);
    rd->state = SCARD_SPECIFIC;
    rd->generation++;
    rd->session = false;
    scrm_mutex_unlock(&rd->lock);
    log_info(drv, "nfc: card activated (protocol %#x)", t->proto);
    rd->host.arrived(rd->host.ctx);
}

static void on_left(void *ctx)
{
    struct nfc_reader *rd = ctx;
    scrm_mutex_lock(&rd->lock);
    bool had = rd->state != SCARD_ABSENT;
    rd->state = SCARD_ABSENT;
    rd->generation++;
    rd->session = false;
    scrm_mutex_unlock(&rd->lock);
    if (had)
        rd->host.left(rd->host.ctx);
}

struct nfc_fe_events nfc_reader_events(struct nfc_reader *rd)
{
    return (struct nfc_fe_events){.ctx = rd, .arrived = on_arrived, .left = on_left};
}

/* ---- lifetime ---- */

struct nfc_reader *nfc_reader_new(const struct nfc_reader_config *cfg, const struct nfc_host *host)
{
    struct nfc_reader *rd = calloc(1, sizeof(*rd));
    if (!rd)
        return NULL;
    rd->cfg = *cfg;
    rd->host = *host;
    rd->state = SCARD_ABSENT;
    scrm_mutex_init(&rd->lock);
    return rd;
}

/* Radio on: field on, then look for a tag. Radio off: the tag loses power. */
static void set_radio(struct nfc_reader *rd, bool on)
{
    scrm_mutex_lock(&rd->lock);
    bool was = rd->radio;
    rd->radio = on;
    scrm_mutex_unlock(&rd->lock);
    if (was == on)
        return;
    log_info(drv, "nfc: radio %s", on ? "on" : "off");
    (void)rd->fe_ops->field(rd->fe, on);
    if (!on) {
        on_left(rd);
        /* With an empty field nothing completed: complete the pending tracking request anyway,
         * so the host learns (DEVICE_POWERED_OFF on its next IOCTL) that the reader is off. */
        if (rd->host.unavailable)
            rd->host.unavailable(rd->host.ctx);
        return;
    }
    struct nfc_target t;
    if (rd->fe_ops->poll(rd->fe, &t) == STATUS_SUCCESS)
        on_arrived(rd, &t);
    if (rd->host.available)
        rd->host.available(rd->host.ctx);
}

void nfc_reader_start(struct nfc_reader *rd, const struct nfc_fe_ops *ops, void *fe)
{
    rd->fe_ops = ops;
    rd->fe = fe;
    rd->host.set_state(rd->host.ctx, SCARD_ABSENT);
    if (rd->cfg.radio)
        set_radio(rd, true);
}

void nfc_reader_free(struct nfc_reader *rd)
{
    if (!rd)
        return;
    if (rd->fe_ops)
        rd->fe_ops->close(rd->fe);
    scrm_mutex_destroy(&rd->lock);
    free(rd);
}

smc_status nfc_reader_can_track(struct nfc_reader *rd)
{
    scrm_mutex_lock(&rd->lock);
    bool radio = rd->radio;
    scrm_mutex_unlock(&rd->lock);
    return radio ? STATUS_PENDING : STATUS_DEVICE_POWERED_OFF;
}

/* ---- GET_ATTRIBUTE / SET_ATTRIBUTE (docs/nfc.md) ---- */

struct value {
    uint8_t b[NFC_ATR_MAX + 8];
    size_t len;
};

static void dword(struct value *v, uint32_t x)
{
    scrm_put_u32le(v->b, x);
    v->len = 4;
}

static void bytes(struct value *v, const void *p, size_t n)
{
    memcpy(v->b, p, n);
    v->len = n;
}

/* Attributes of the card: only with an activated card (SPECIFIC). */
static smc_status card_attr(struct nfc_reader *rd, uint32_t id, struct value *v)
{
    scrm_mutex_lock(&rd->lock);
    bool on = rd->state == SCARD_SPECIFIC;
    if (on && id == SCARD_ATTR_ATR_STRING) {
        bytes(v, rd->card.atr, rd->card.atr_len);
    } else if (on && id == SCARD_ATTR_ICC_TYPE_PER_ATR) {
        v->b[0] = nfc_icc_type(&rd->card.t);
        v->len = 1;
    } else if (on) {
        dword(v, SCARD_PROTOCOL_T1); /* CURRENT_PROTOCOL_TYPE */
    }
    scrm_mutex_unlock(&rd->lock);
    return on ? STATUS_SUCCESS : STATUS_INVALID_DEVICE_STATE;
}

static smc_status attr_value(struct nfc_reader *rd, uint32_t id, struct value *v)
{
    switch (id) {
    case SCARD_ATTR_VENDOR_NAME: bytes(v, rd->cfg.vendor, strlen(rd->cfg.vendor)); break;
    case SCARD_ATTR_VENDOR_IFD_TYPE: bytes(v, rd->cfg.ifd, strlen(rd->cfg.ifd)); break;
    case SCARD_ATTR_VENDOR_IFD_VERSION: dword(v, NFC_IFD_VERSION); break;
    case SCARD_ATTR_CHANNEL_ID: dword(v, (uint32_t)SCARD_READER_TYPE_NFC << 16); break;
    case SCARD_ATTR_PROTOCOL_TYPES: dword(v, SCARD_PROTOCOL_T1); break;
    case SCARD_ATTR_DEVICE_UNIT: dword(v, rd->cfg.unit); break;
    case SCARD_ATTR_DEFAULT_CLK:
    case SCARD_ATTR_MAX_CLK:
    case SCARD_ATTR_CURRENT_CLK: dword(v, 13560); break;
    case SCARD_ATTR_DEFAULT_DATA_RATE:
    case SCARD_ATTR_MAX_DATA_RATE:
    case SCARD_ATTR_CURRENT_D: dword(v, 1); break;
    case SCARD_ATTR_MAX_IFSD:
    case SCARD_ATTR_CURRENT_IFSD: dword(v, 254); break;
    case SCARD_ATTR_CURRENT_IFSC: dword(v, 32); break;
    case SCARD_ATTR_CURRENT_BWT: dword(v, 4); break;
    case SCARD_ATTR_CHARACTERISTICS: dword(v, SCARD_READER_CONTACTLESS); break;
    case SCARD_ATTR_ICC_PRESENCE:
        v->b[0] = current_state(rd) > SCARD_ABSENT ? SMC_ICC_PRESENT : SMC_ICC_ABSENT;
        v->len = 1;
        break;
    case SCARD_ATTR_CURRENT_PROTOCOL_TYPE:
    case SCARD_ATTR_ATR_STRING:
    case SCARD_ATTR_ICC_TYPE_PER_ATR: return card_attr(rd, id, v);
    case NFC_ATTR_VENDOR_BRAND_INFO:
    case NFC_ATTR_DEVICE_CAP_INFO:
        return STATUS_INVALID_PARAMETER; /* would go to a hardware client driver: none here */
    default: return STATUS_NOT_SUPPORTED;
    }
    return STATUS_SUCCESS;
}

static smc_status h_get_attribute(struct nfc_reader *rd, struct smc_io *io)
{
    struct value v = {.len = 0};
    smc_status st = attr_value(rd, scrm_get_u32le(io->in), &v);
    if (st != STATUS_SUCCESS)
        return st;
    io->info = v.len;
    if (io->out_len < v.len)
        return STATUS_BUFFER_TOO_SMALL; /* info: the size needed */
    memcpy(io->out, v.b, v.len);
    return STATUS_SUCCESS;
}

static smc_status h_set_attribute(struct nfc_reader *rd, struct smc_io *io)
{
    (void)rd;
    uint32_t id = scrm_get_u32le(io->in);
    if (id == SCARD_ATTR_DEVICE_IN_USE)
        return STATUS_SUCCESS;
    return id == NFC_ATTR_VENDOR_BRAND_INFO ? STATUS_INVALID_PARAMETER : STATUS_NOT_SUPPORTED;
}

/* ---- the answer-only IOCTLs ---- */

static smc_status h_get_state(struct nfc_reader *rd, struct smc_io *io)
{
    scrm_put_u32le(io->out, current_state(rd));
    io->info = 4;
    return STATUS_SUCCESS;
}

static smc_status h_last_error(struct nfc_reader *rd, struct smc_io *io)
{
    (void)rd;
    scrm_put_u32le(io->out, 0);
    io->info = 4;
    return STATUS_SUCCESS;
}

static smc_status h_not_supported(struct nfc_reader *rd, struct smc_io *io)
{
    (void)rd;
    (void)io;
    return STATUS_NOT_SUPPORTED;
}

/* IS_PRESENT / IS_ABSENT: no buffers at all; at once when satisfied, else PENDING (tracked). */
static smc_status h_tracking(struct nfc_reader *rd, struct smc_io *io)
{
    if (io->in_len || io->out_len)
        return STATUS_INVALID_PARAMETER;
    bool card = current_state(rd) > SCARD_ABSENT;
    bool want_card = io->code == IOCTL_SMARTCARD_IS_PRESENT;
    return card == want_card ? STATUS_SUCCESS : STATUS_PENDING;
}

/* ---- POWER ---- */

/* Re-activate the card over RF (cold or warm reset). */
static smc_status reset_card(struct nfc_reader *rd, struct smc_io *io)
{
    struct nfc_target t;
    smc_status st = rd->fe_ops->activate(rd->fe, 0, &t);
    if (st == STATUS_NO_MEDIA) {
        on_left(rd);
        return STATUS_SUCCESS; /* the tag left: no ATR, the RM reads the state */
    }
    if (st != STATUS_SUCCESS)
        return st;
    scrm_mutex_lock(&rd->lock);
    nfc_card_init(&rd->card, &t);
    rd->state = SCARD_SPECIFIC;
    rd->session = false;
    uint8_t atr[NFC_ATR_MAX];
    size_t len = rd->card.atr_len;
    memcpy(atr, rd->card.atr, len);
    scrm_mutex_unlock(&rd->lock);
    rd->host.set_state(rd->host.ctx, SCARD_SPECIFIC);
    if (io->out_len == 0)
        return STATUS_SUCCESS;
    if (io->out_len < len) {
        io->info = len;
        return STATUS_BUFFER_TOO_SMALL;
    }
    memcpy(io->out, atr, len);
    io->info = len;
    return STATUS_SUCCESS;
}

/* Switch the card's virtual power off: the tag is halted, state SWALLOWED. */
static smc_status power_down(struct nfc_reader *rd)
{
    (void)rd->fe_ops->deactivate(rd->fe);
    scrm_mutex_lock(&rd->lock);
    bool still = rd->state != SCARD_ABSENT;
    if (still) {
        rd->state = SCARD_SWALLOWED;
        rd->session = false;
        rd->card.auth_sector = -1;
        rd->card.transparent = false;
    }
    scrm_mutex_unlock(&rd->lock);
    if (still)
        rd->host.set_state(rd->host.ctx, SCARD_SWALLOWED);
    return STATUS_SUCCESS;
}

static smc_status h_power(struct nfc_reader *rd, struct smc_io *io)
{
    if (current_state(rd) == SCARD_ABSENT)
        return STATUS_NO_MEDIA;
    switch (scrm_get_u32le(io->in)) {
    case SCARD_COLD_RESET:
    case SCARD_WARM_RESET: return reset_card(rd, io);
    case SCARD_POWER_DOWN: return power_down(rd);
    default: return STATUS_INVALID_PARAMETER;
    }
}

/* ---- SET_PROTOCOL ---- */

static smc_status h_set_protocol(struct nfc_reader *rd, struct smc_io *io)
{
    uint32_t s = current_state(rd);
    if (s == SCARD_ABSENT)
        return STATUS_NO_MEDIA;
    if (s != SCARD_SPECIFIC)
        return STATUS_INVALID_DEVICE_STATE; /* virtual power off */
    uint32_t mask = scrm_get_u32le(io->in);
    if (mask == SCARD_PROTOCOL_OPTIMAL || (mask & (SCARD_PROTOCOL_DEFAULT | SCARD_PROTOCOL_T1))) {
        scrm_put_u32le(io->out, SCARD_PROTOCOL_T1);
        io->info = 4;
        return STATUS_SUCCESS;
    }
    if (mask & (SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_RAW))
        return STATUS_NOT_SUPPORTED;
    return STATUS_INVALID_DEVICE_REQUEST;
}

/* ---- TRANSMIT ---- */

/* Switch Protocol: re-activate with the protocol asked for; 6F 00 if that fails. */
static uint16_t switch_protocol(struct nfc_reader *rd, const uint8_t *apdu, size_t len,
                                smc_status *st)
{
    uint32_t proto = nfc_apdu_switch_target(apdu, len);
    struct nfc_target t;
    if (!proto || !(rd->card.t.protos & proto))
        return 0x6F00;
    (void)rd->fe_ops->deactivate(rd->fe);
    smc_status a = rd->fe_ops->activate(rd->fe, proto, &t);
    if (a != STATUS_SUCCESS)
        a = rd->fe_ops->activate(rd->fe, rd->card.t.proto, &t); /* back to where it was */
    if (a == STATUS_NO_MEDIA) {
        *st = STATUS_NO_MEDIA;
        return 0;
    }
    if (a != STATUS_SUCCESS || t.proto != proto)
        return 0x6F00;
    scrm_mutex_lock(&rd->lock);
    nfc_card_reinit(&rd->card, &t);
    scrm_mutex_unlock(&rd->lock);
    return 0x9000;
}

/* Answers the driver makes up itself: two status bytes. */
static smc_status sw_answer(uint16_t sw, uint8_t *resp, size_t cap, size_t *n)
{
    if (cap < 2)
        return STATUS_BUFFER_TOO_SMALL;
    resp[0] = (uint8_t)(sw >> 8);
    resp[1] = (uint8_t)sw;
    *n = 2;
    return STATUS_SUCCESS;
}

/* One APDU to the card; response (data + SW) in resp. */
static smc_status exchange(struct nfc_reader *rd, const uint8_t *apdu, size_t len, uint8_t *resp,
                           size_t cap, size_t *n)
{
    struct nfc_link link = {.ops = rd->fe_ops, .fe = rd->fe};
    smc_status st = STATUS_SUCCESS;
    *n = 0;
    if (nfc_apdu_is_load_key(apdu, len))
        return sw_answer(nfc_apdu_load_key(&rd->card, apdu, len), resp, cap, n);
    if (nfc_apdu_is_switch_protocol(apdu, len)) {
        uint16_t sw = switch_protocol(rd, apdu, len, &st);
        return st != STATUS_SUCCESS ? st : sw_answer(sw, resp, cap, n);
    }
    if (rd->card.kind == NFC_CARD_ISO4 && !rd->cfg.getdata_card && nfc_apdu_is_get_data(apdu, len))
        return nfc_apdu_iso_get_data(&rd->card, apdu, len, resp, cap, n);
    if (rd->card.kind == NFC_CARD_ISO4)
        return rd->fe_ops->transceive(rd->fe, apdu, len, resp, cap, n, NFC_ISO4_TIMEOUT_MS);
    return nfc_apdu_storage(&rd->card, &link, apdu, len, resp, cap, n);
}

static smc_status h_transmit(struct nfc_reader *rd, struct smc_io *io)
{
    if (scrm_get_u32le(io->in) != SCARD_PROTOCOL_T1)
        return STATUS_INVALID_DEVICE_STATE;
    scrm_mutex_lock(&rd->lock);
    uint32_t s = rd->state, gen = rd->generation;
    if (s == SCARD_SPECIFIC)
        rd->session = true;
    scrm_mutex_unlock(&rd->lock);
    if (s == SCARD_ABSENT)
        return STATUS_NO_MEDIA;
    if (s != SCARD_SPECIFIC)
        return STATUS_INVALID_DEVICE_STATE; /* virtual power off */
    size_t len = io->in_len - SMC_IO_HEADER_LENGTH;
    uint8_t *apdu = malloc(len); /* io->out may alias io->in */
    if (!apdu)
        return STATUS_INSUFFICIENT_RESOURCES;
    memcpy(apdu, io->in + SMC_IO_HEADER_LENGTH, len);
    size_t n = 0;
    smc_status st = exchange(rd, apdu, len, io->out + SMC_IO_HEADER_LENGTH,
                             io->out_len - SMC_IO_HEADER_LENGTH, &n);
    free(apdu);
    scrm_mutex_lock(&rd->lock);
    bool gone = rd->generation != gen;
    scrm_mutex_unlock(&rd->lock);
    if (gone || st == STATUS_NO_MEDIA)
        return STATUS_NO_MEDIA;
    if (st != STATUS_SUCCESS)
        return st;
    scrm_put_u32le(io->out, SCARD_PROTOCOL_T1);
    scrm_put_u32le(io->out + 4, SMC_IO_HEADER_LENGTH);
    io->info = SMC_IO_HEADER_LENGTH + n;
    return STATUS_SUCCESS;
}

/* ---- vendor IOCTLs ---- */

static smc_status vendor_info(struct nfc_reader *rd, struct smc_io *io)
{
    if (io->out_len < NFC_INFO_SIZE)
        return STATUS_BUFFER_TOO_SMALL;
    bool tag = false;
    uint32_t activations = 0;
    if (rd->fe_ops->info)
        rd->fe_ops->info(rd->fe, &tag, &activations);
    scrm_mutex_lock(&rd->lock);
    scrm_put_u32le(io->out, rd->radio);
    scrm_put_u32le(io->out + 4, tag);
    scrm_put_u32le(io->out + 8, activations);
    scrm_put_u32le(io->out + 12, rd->session);
    scrm_put_u32le(io->out + 16, rd->state == SCARD_SPECIFIC && rd->card.transparent);
    scrm_mutex_unlock(&rd->lock);
    io->info = NFC_INFO_SIZE;
    return STATUS_SUCCESS;
}

/* NFC_IOCTL_* codes; false if io->code is not one. */
static bool vendor(struct nfc_reader *rd, struct smc_io *io, smc_status *st)
{
    uint32_t f = SMC_IOCTL_FUNCTION(io->code);
    if (!SMC_IOCTL_IS_VENDOR(io->code) || f <= NFC_IOCTL_BASE || f >= NFC_IOCTL_BASE + 16)
        return false;
    if (io->code == NFC_IOCTL_RADIO) {
        uint32_t v = io->in_len >= 4 ? scrm_get_u32le(io->in) : 2;
        *st = v <= 1 ? STATUS_SUCCESS : STATUS_INVALID_PARAMETER;
        if (v <= 1)
            set_radio(rd, v == 1);
    } else if (io->code == NFC_IOCTL_INFO) {
        *st = vendor_info(rd, io);
    } else if (io->code == NFC_IOCTL_PROFILES) {
        *st = smc_put_names(io, nfc_tag_profile_name);
    } else if (rd->fe_ops->control) {
        *st = rd->fe_ops->control(rd->fe, io);
    } else {
        bool sim = io->code == NFC_IOCTL_TAG_ENTER || io->code == NFC_IOCTL_TAG_LEAVE ||
                   io->code == NFC_IOCTL_TAG_FAULT;
        *st = sim ? STATUS_NOT_SUPPORTED : STATUS_INVALID_DEVICE_REQUEST;
    }
    return true;
}

/* ---- the dispatcher ---- */

typedef smc_status (*handler_fn)(struct nfc_reader *rd, struct smc_io *io);

struct rule {
    uint32_t code;
    uint32_t min_in, min_out; /* shorter: STATUS_INVALID_PARAMETER */
    handler_fn handler;
};

/* clang-format off */
static const struct rule rules[] = {
    {IOCTL_SMARTCARD_GET_ATTRIBUTE,  4, 1,  h_get_attribute},
    {IOCTL_SMARTCARD_SET_ATTRIBUTE,  4, 0,  h_set_attribute},
    {IOCTL_SMARTCARD_GET_STATE,      0, 4,  h_get_state},
    {IOCTL_SMARTCARD_POWER,          4, 0,  h_power},
    {IOCTL_SMARTCARD_SET_PROTOCOL,   4, 4,  h_set_protocol},
    {IOCTL_SMARTCARD_IS_ABSENT,      0, 0,  h_tracking},
    {IOCTL_SMARTCARD_IS_PRESENT,     0, 0,  h_tracking},
    {IOCTL_SMARTCARD_TRANSMIT,       SMC_IO_HEADER_LENGTH + 1, SMC_IO_HEADER_LENGTH + 2, h_transmit},
    {IOCTL_SMARTCARD_EJECT,          0, 0,  h_not_supported},
    {IOCTL_SMARTCARD_GET_LAST_ERROR, 0, 4,  h_last_error},
    {IOCTL_SMARTCARD_SWALLOW,        0, 0,  h_not_supported},
    {IOCTL_SMARTCARD_CONFISCATE,     0, 0,  h_not_supported},
    {IOCTL_SMARTCARD_GET_PERF_CNTR,  0, 0,  h_not_supported},
};
/* clang-format on */

smc_status nfc_reader_ioctl(struct nfc_reader *rd, struct smc_io *io)
{
    smc_status st;
    io->info = 0;
    if (vendor(rd, io, &st))
        return st;
    scrm_mutex_lock(&rd->lock);
    bool radio = rd->radio;
    scrm_mutex_unlock(&rd->lock);
    if (!radio)
        return STATUS_DEVICE_POWERED_OFF;
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (rules[i].code != io->code)
            continue;
        if (io->in_len < rules[i].min_in || io->out_len < rules[i].min_out)
            return STATUS_INVALID_PARAMETER;
        return rules[i].handler(rd, io);
    }
    return STATUS_INVALID_DEVICE_REQUEST;
}

void nfc_reader_client_closed(struct nfc_reader *rd)
{
    scrm_mutex_lock(&rd->lock);
    bool reset = rd->session && rd->state == SCARD_SPECIFIC;
    rd->session = false;
    scrm_mutex_unlock(&rd->lock);
    if (!reset)
        return;
    log_debug(drv, "nfc: the client that transmitted left: re-activating the card");
    struct smc_io io = {.code = IOCTL_SMARTCARD_POWER};
    (void)reset_card(rd, &io);
}
