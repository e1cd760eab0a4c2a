/*
 * IOCTL_SMARTCARD_GET_ATTRIBUTE / SET_ATTRIBUTE (docs/libsmc.md).
 *
 * The library answers every id it can from the reader object: identification, reader capabilities,
 * mechanical characteristics, ICC state, the card parameters in force, performance counters and the
 * device names. Card attributes (ATR_STRING, CURRENT_*) need a reset card (NEGOTIABLE or SPECIFIC),
 * else STATUS_INVALID_DEVICE_STATE. Any other id goes to the driver's vendor slot, or gets
 * STATUS_NOT_SUPPORTED. Strings are returned without NUL. A too-small output buffer gets
 * STATUS_BUFFER_TOO_SMALL with the needed size in `returned`.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "smc/internal.h"

#define ATTR_MAX 128u /* largest value the library produces (UTF-16 names) */

struct value {
    uint8_t b[ATTR_MAX];
    size_t len;
};

static void put_dword(struct value *v, uint32_t x)
{
    smc__put_u32(v->b, x);
    v->len = 4;
}

static void put_byte(struct value *v, uint8_t x)
{
    v->b[0] = x;
    v->len = 1;
}

static smc_status put_string(struct value *v, const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return STATUS_NOT_SUPPORTED; /* optional string the driver did not provide */
    if (n > sizeof(v->b))
        n = sizeof(v->b);
    memcpy(v->b, s, n);
    v->len = n;
    return STATUS_SUCCESS;
}

/* UTF-16LE of an ASCII string, with its terminating NUL as Windows' _W names carry. */
static void put_wstring(struct value *v, const char *s)
{
    size_t n = 0;
    for (; *s && n + 4 <= sizeof(v->b); s++) {
        v->b[n++] = (uint8_t)*s;
        v->b[n++] = 0;
    }
    v->b[n++] = 0;
    v->b[n++] = 0;
    v->len = n;
}

/* The driver's own reader name (the IFD bridge: pcscd's "FRIENDLYNAME 00 00"); false if it gave
 * none. Reader names are the resource manager's business: it names every other reader
 * "<vendor> <ifd type> <unit>" from VENDOR_NAME, VENDOR_IFD_TYPE and DEVICE_UNIT. */
static bool friendly_name(const struct smc_reader *r, char *buf, size_t cap)
{
    if (!r->vendor.friendly_name[0])
        return false;
    snprintf(buf, cap, "%s", r->vendor.friendly_name);
    return true;
}

static uint8_t icc_presence(const struct smc_reader *r)
{
    if (r->confiscated)
        return SMC_ICC_CONFISCATED;
    if (r->state <= SCARD_ABSENT)
        return SMC_ICC_ABSENT;
    return r->state == SCARD_PRESENT ? SMC_ICC_PRESENT : SMC_ICC_SWALLOWED;
}

/* Reader-level ids, valid in every state. r->lock held. NOT_SUPPORTED: not a library id. */
static smc_status reader_attr(const struct smc_reader *r, uint32_t id, struct value *v)
    SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    const struct smc_reader_caps *c = &r->caps;
    char name[sizeof(r->vendor.friendly_name) + 1];
    switch (id) {
    case SCARD_ATTR_VENDOR_NAME: return put_string(v, r->vendor.vendor_name);
    case SCARD_ATTR_VENDOR_IFD_TYPE: return put_string(v, r->vendor.ifd_type);
    case SCARD_ATTR_VENDOR_IFD_SERIAL_NO: return put_string(v, r->vendor.serial);
    case SCARD_ATTR_VENDOR_IFD_VERSION:
        if (!r->vendor.ifd_version)
            return STATUS_NOT_SUPPORTED;
        put_dword(v, r->vendor.ifd_version);
        break;
    case SCARD_ATTR_CHANNEL_ID: put_dword(v, c->reader_type << 16 | (c->channel & 0xFFFF)); break;
    case SCARD_ATTR_PROTOCOL_TYPES: put_dword(v, c->protocols); break;
    case SCARD_ATTR_DEFAULT_CLK: put_dword(v, c->clk_default_khz); break;
    case SCARD_ATTR_MAX_CLK: put_dword(v, c->clk_max_khz); break;
    case SCARD_ATTR_DEFAULT_DATA_RATE: put_dword(v, c->rate_default); break;
    case SCARD_ATTR_MAX_DATA_RATE: put_dword(v, c->rate_max); break;
    case SCARD_ATTR_MAX_IFSD: put_dword(v, c->max_ifsd); break;
    case SCARD_ATTR_POWER_MGMT_SUPPORT: put_dword(v, c->power_mgmt); break;
    case SCARD_ATTR_CHARACTERISTICS: put_dword(v, c->mech); break;
    case SCARD_ATTR_DEVICE_UNIT: put_dword(v, r->vendor.unit); break;
    case SCARD_ATTR_DEVICE_IN_USE: put_dword(v, r->device_in_use); break;
    case SCARD_ATTR_SUPRESS_T1_IFS_REQUEST: put_dword(v, r->suppress_ifs); break;
    case SCARD_ATTR_ICC_PRESENCE: put_byte(v, icc_presence(r)); break;
    case SCARD_ATTR_ICC_INTERFACE_STATUS: put_byte(v, r->state >= SCARD_POWERED); break;
    case SCARD_ATTR_ICC_TYPE_PER_ATR:
        put_byte(v, r->card.valid && (r->card.atr.protocols & SCARD_PROTOCOL_Tx) ? 1 : 0);
        break;
    case SCARD_PERF_NUM_TRANSMISSIONS: put_dword(v, r->perf.transmissions); break;
    case SCARD_PERF_BYTES_TRANSMITTED:
        put_dword(v, r->perf.bytes_sent + r->perf.bytes_received);
        break;
    case SCARD_PERF_TRANSMISSION_TIME: put_dword(v, (uint32_t)(r->perf.time_ns / 1000u)); break;
    case SCARD_ATTR_DEVICE_FRIENDLY_NAME_A:
        if (!friendly_name(r, name, sizeof(name)))
            return STATUS_NOT_SUPPORTED;
        return put_string(v, name);
    case SCARD_ATTR_DEVICE_FRIENDLY_NAME_W:
        if (!friendly_name(r, name, sizeof(name)))
            return STATUS_NOT_SUPPORTED;
        put_wstring(v, name);
        break;
    case SCARD_ATTR_DEVICE_SYSTEM_NAME_A: return put_string(v, r->device);
    case SCARD_ATTR_DEVICE_SYSTEM_NAME_W: put_wstring(v, r->device); break;
    default: return STATUS_NOT_SUPPORTED;
    }
    return STATUS_SUCCESS;
}

static bool is_card_attr(uint32_t id)
{
    return id == SCARD_ATTR_ATR_STRING ||
           (id >= SCARD_ATTR_CURRENT_PROTOCOL_TYPE && id <= SCARD_ATTR_CURRENT_EBC_ENCODING);
}

/* Card-level ids; r->lock held and a reset card present. */
static void card_attr(const struct smc_reader *r, uint32_t id, struct value *v)
    SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    const struct smc_card_caps *k = &r->card;
    switch (id) {
    case SCARD_ATTR_ATR_STRING:
        memcpy(v->b, k->atr.raw, k->atr.len);
        v->len = k->atr.len;
        break;
    case SCARD_ATTR_CURRENT_PROTOCOL_TYPE: put_dword(v, k->protocol_selected); break;
    case SCARD_ATTR_CURRENT_CLK: put_dword(v, k->clk_khz); break;
    case SCARD_ATTR_CURRENT_F: put_dword(v, k->f); break;
    case SCARD_ATTR_CURRENT_D: put_dword(v, k->d); break;
    case SCARD_ATTR_CURRENT_N: put_dword(v, k->atr.n); break;
    case SCARD_ATTR_CURRENT_W: put_dword(v, k->atr.wi); break;
    case SCARD_ATTR_CURRENT_IFSC: put_dword(v, k->ifsc); break;
    case SCARD_ATTR_CURRENT_IFSD: put_dword(v, k->ifsd); break;
    case SCARD_ATTR_CURRENT_BWT: put_dword(v, k->bwt_us); break;
    case SCARD_ATTR_CURRENT_CWT: put_dword(v, k->cwt_us); break;
    default: put_dword(v, k->edc & T1_CRC_CHECK); break; /* CURRENT_EBC_ENCODING */
    }
}

/* Pass an id the library does not answer to the driver's vendor slot. */
static smc_status forward(struct smc_reader *r, struct smc_io *io)
{
    if (!r->ops->ioctl_vendor)
        return STATUS_NOT_SUPPORTED;
    return smc__run_vendor(r, io);
}

smc_status smc__get_attribute(struct smc_reader *r, struct smc_io *io)
{
    uint32_t id = smc__get_u32(io->in);
    struct value v = {.len = 0};
    smc_status st;
    scrm_mutex_lock(&r->lock);
    if (is_card_attr(id)) {
        bool reset = r->state >= SCARD_NEGOTIABLE && r->card.valid;
        if (reset)
            card_attr(r, id, &v);
        st = reset ? STATUS_SUCCESS : STATUS_INVALID_DEVICE_STATE;
    } else {
        st = reader_attr(r, id, &v);
    }
    scrm_mutex_unlock(&r->lock);
    if (st == STATUS_NOT_SUPPORTED)
        return forward(r, io);
    if (st != STATUS_SUCCESS)
        return st;
    io->info = v.len;
    if (io->out_len < v.len)
        return STATUS_BUFFER_TOO_SMALL;
    memcpy(io->out, v.b, v.len);
    return STATUS_SUCCESS;
}

smc_status smc__set_attribute(struct smc_reader *r, struct smc_io *io)
{
    uint32_t id = smc__get_u32(io->in);
    if (id != SCARD_ATTR_DEVICE_IN_USE && id != SCARD_ATTR_SUPRESS_T1_IFS_REQUEST)
        return forward(r, io);
    if (io->in_len < 8)
        return STATUS_INVALID_PARAMETER; /* the value DWORD is missing */
    uint32_t value = smc__get_u32(io->in + 4);
    scrm_mutex_lock(&r->lock);
    if (id == SCARD_ATTR_DEVICE_IN_USE)
        r->device_in_use = value;
    else
        r->suppress_ifs = value != 0;
    scrm_mutex_unlock(&r->lock);
    io->info = 0;
    return STATUS_SUCCESS;
}
