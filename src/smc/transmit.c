/*
 * The protocol helpers drivers call from their transmit and set_protocol slots:
 * smc_transmit() runs one APDU through the T=0, T=1 or raw engine selected by SET_PROTOCOL;
 * smc_select_protocol() chooses the protocol, runs PPS (falling back to default parameters after a
 * reset when the card refuses) and starts T=1 with the S(IFS) exchange.
 *
 * Both run under the reader's op lock (they are called from slots), so they may use the reader's
 * T=1 state and its transfer buffer: the APDU is copied there before anything is written to the
 * caller's output, which may alias the input.
 */
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "smc/internal.h"

/* Log an APDU (category apdu, off by default). PIN-carrying commands have their data redacted. */
static void log_apdu(const struct smc_reader *r, const char *dir, const uint8_t *b, size_t n,
                     bool command)
{
    if (!scrm_log_enabled(SCRM_LOG_CAT_apdu, SCRM_LOG_debug))
        return;
    char hex[3 * 64 + 4];
    uint8_t ins = n > 1 ? b[1] : 0;
    bool secret = command && (ins == 0x20 || ins == 0x21 || ins == 0x24 || ins == 0x2C);
    scrm_hex_encode(b, secret && n > 5 ? 5 : n, ' ', hex, sizeof(hex));
    log_debug(apdu, "%s %s %s%s", r->device, dir, hex,
              secret && n > 5 ? " [PIN data redacted]" : "");
}

/* Raw protocol: send the bytes, collect the answer until the card falls silent. */
static smc_status raw_exchange(const struct smc_card_io *link, const struct smc_card_caps *caps,
                               const uint8_t *cmd, size_t n, uint8_t *resp, size_t cap,
                               size_t *rlen)
{
    smc_status st = link->send(link->ctx, cmd, n);
    *rlen = 0;
    while (st == STATUS_SUCCESS && *rlen < cap) {
        size_t got = 0;
        uint32_t first = *rlen ? caps->cwt_us + 1000 : caps->wt_us + 1000;
        st = link->recv(link->ctx, resp + *rlen, 1, first, first, &got);
        *rlen += got;
    }
    return st == STATUS_IO_TIMEOUT && *rlen > 0 ? STATUS_SUCCESS : st;
}

/* Announce our IFSD once per T=1 session, unless suppressed. */
static void t1_start(struct smc_reader *r, const struct smc_card_io *link)
{
    scrm_mutex_lock(&r->lock);
    bool suppress = r->suppress_ifs;
    scrm_mutex_unlock(&r->lock);
    uint32_t ifsd = r->caps.max_ifsd ? r->caps.max_ifsd : T1_IFSD_DEFAULT;
    if (ifsd > T1_IFSD)
        ifsd = T1_IFSD;
    if (suppress || r->t1.ifs_done || ifsd == T1_IFSD_DEFAULT)
        return;
    smc_status st = smc_t1_negotiate_ifsd(&r->t1, link, (uint8_t)ifsd);
    if (st != STATUS_SUCCESS)
        log_warn(proto, "%s: card did not accept IFSD %u (%s); staying at %u", r->device, ifsd,
                 smc_status_name(st), r->t1.ifsd);
    scrm_mutex_lock(&r->lock);
    r->card.ifsd = r->t1.ifsd;
    scrm_mutex_unlock(&r->lock);
}

smc_status smc_transmit(struct smc_reader *r, struct smc_io *io, const struct smc_card_io *link)
{
    uint32_t pci_len = smc__get_u32(io->in + 4);
    if (io->in_len < SMC_IO_HEADER_LENGTH || pci_len < SMC_IO_HEADER_LENGTH ||
        pci_len >= io->in_len || io->in_len - pci_len > SMC_MAX_APDU)
        return STATUS_INVALID_PARAMETER;
    size_t n = io->in_len - pci_len;
    uint8_t *cmd = r->xfer_buf;
    uint8_t *resp = r->xfer_buf + SMC_MAX_APDU;
    size_t cap = SMC_XFER_BUF - SMC_MAX_APDU, rlen = 0;
    memcpy(cmd, io->in + pci_len, n);

    struct smc_card_caps caps;
    smc_reader_card_caps(r, &caps);
    log_apdu(r, ">", cmd, n, true);
    smc_status st;
    switch (caps.protocol_selected) {
    case SCARD_PROTOCOL_T0: st = smc_t0_transceive(link, &caps, cmd, n, resp, cap, &rlen); break;
    case SCARD_PROTOCOL_T1:
        t1_start(r, link);
        st = smc_t1_transceive(&r->t1, link, cmd, n, resp, cap, &rlen);
        break;
    case SCARD_PROTOCOL_RAW: st = raw_exchange(link, &caps, cmd, n, resp, cap, &rlen); break;
    default: return STATUS_INVALID_DEVICE_REQUEST;
    }
    if (smc_reader_state(r) <= SCARD_ABSENT)
        return STATUS_NO_MEDIA; /* the card left during the exchange */
    if (st != STATUS_SUCCESS)
        return st;
    log_apdu(r, "<", resp, rlen, false);
    io->info = SMC_IO_HEADER_LENGTH + rlen;
    if (io->out_len < io->info)
        return STATUS_BUFFER_TOO_SMALL;
    smc__put_u32(io->out, caps.protocol_selected);
    smc__put_u32(io->out + 4, SMC_IO_HEADER_LENGTH);
    memcpy(io->out + SMC_IO_HEADER_LENGTH, resp, rlen);
    return STATUS_SUCCESS;
}

static uint32_t bit_of(uint8_t t)
{
    return t == 1 ? SCARD_PROTOCOL_T1 : SCARD_PROTOCOL_T0;
}

/* PPS refused: cold reset, then go on with default parameters (PPS only to pick a protocol
 * other than the card's first one, with Fi = Di = 1). */
static smc_status pps_fallback(struct smc_reader *r, const struct smc_card_io *link, uint8_t t,
                               struct smc_card_caps *caps)
{
    struct smc_io rio = {.code = IOCTL_SMARTCARD_POWER};
    log_info(proto, "%s: PPS refused; resetting and using default parameters", r->device);
    smc_status st = smc__do_power(r, SCARD_COLD_RESET, &rio);
    if (st != STATUS_SUCCESS)
        return st;
    smc_reader_card_caps(r, caps);
    if (t == caps->atr.first_protocol)
        return STATUS_SUCCESS;
    caps->pts.type = PTS_TYPE_DEFAULT;
    caps->pts.fi = 1;
    caps->pts.di = 1;
    return smc_pps_exchange(link, caps, t);
}

/* Raw mode: the bytes go to the card as they are; keep the parameters of the reset. */
static smc_status select_raw(struct smc_reader *r, struct smc_io *io, struct smc_card_caps *caps);

#define CHOOSE_RAW  0xFE /* raw (transparent) mode: no PPS, no protocol engine */
#define CHOOSE_NONE 0xFF

/* Protocol choice: T=1 preferred, then T=0 (both as the card offers them), then raw mode when
 * both the caller and the reader allow it (memory cards, vendor modes). */
static uint8_t choose(uint32_t mask, const struct smc_card_caps *caps, uint32_t reader)
{
    uint32_t avail = mask & caps->atr.protocols & reader;
    if (avail & SCARD_PROTOCOL_T1)
        return 1;
    if (avail & SCARD_PROTOCOL_T0)
        return 0;
    if (mask & reader & SCARD_PROTOCOL_RAW)
        return CHOOSE_RAW;
    return CHOOSE_NONE;
}

static smc_status select_raw(struct smc_reader *r, struct smc_io *io, struct smc_card_caps *caps)
{
    caps->protocol_selected = SCARD_PROTOCOL_RAW;
    scrm_mutex_lock(&r->lock);
    r->card = *caps;
    scrm_mutex_unlock(&r->lock);
    smc__put_u32(io->out, SCARD_PROTOCOL_RAW);
    io->info = 4;
    return STATUS_SUCCESS;
}

smc_status smc_select_protocol(struct smc_reader *r, struct smc_io *io,
                               const struct smc_card_io *link)
{
    uint32_t mask = io->minor;
    struct smc_card_caps caps;
    smc_reader_card_caps(r, &caps);
    if (caps.protocol_selected != SCARD_PROTOCOL_UNDEFINED) {
        /* Already SPECIFIC (specific mode, or an earlier SET_PROTOCOL): no change without reset. */
        if (!(caps.protocol_selected & mask))
            return STATUS_NOT_SUPPORTED;
        smc__put_u32(io->out, caps.protocol_selected);
        io->info = 4;
        return STATUS_SUCCESS;
    }
    uint8_t t = choose(mask, &caps, r->caps.protocols);
    if (t == CHOOSE_NONE)
        return STATUS_NOT_SUPPORTED;
    if (t == CHOOSE_RAW)
        return select_raw(r, io, &caps);

    bool speedup = caps.pts.type == PTS_TYPE_OPTIMAL;
    bool need_pps = !(mask & SCARD_PROTOCOL_DEFAULT) && (speedup || t != caps.atr.first_protocol);
    if ((mask & SCARD_PROTOCOL_DEFAULT) && t != caps.atr.first_protocol)
        need_pps = true; /* a protocol other than the first can only be chosen by PPS */
    if (!link)
        need_pps = false; /* APDU-level reader: there is no byte link to negotiate on */
    smc_status st = STATUS_SUCCESS;
    if (need_pps) {
        if (mask & SCARD_PROTOCOL_DEFAULT) {
            caps.pts.type = PTS_TYPE_DEFAULT;
            caps.pts.fi = 1;
            caps.pts.di = 1;
        }
        st = smc_pps_exchange(link, &caps, t);
        if (st == STATUS_DEVICE_PROTOCOL_ERROR || st == STATUS_IO_TIMEOUT)
            st = pps_fallback(r, link, t, &caps);
        if (st == STATUS_SUCCESS && link && link->set_params)
            st = link->set_params(link->ctx, &caps); /* the reader follows the new parameters */
        if (st != STATUS_SUCCESS)
            return st;
    }

    caps.protocol_selected = bit_of(t);
    smc_caps_update_timing(&caps); /* the guard time for N = 255 depends on the protocol */
    scrm_mutex_lock(&r->lock);
    r->card = caps;
    scrm_mutex_unlock(&r->lock);
    if (t == 1 && link) {
        smc_t1_init(&r->t1, &caps);
        t1_start(r, link);
    }
    if (smc_reader_state(r) <= SCARD_ABSENT)
        return STATUS_NO_MEDIA; /* the card left during PPS or the S(IFS) exchange */
    smc__put_u32(io->out, caps.protocol_selected);
    io->info = 4;
    return STATUS_SUCCESS;
}
