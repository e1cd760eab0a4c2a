/*
 * The simulated RF field: a contactless front end (nfc_fe.h) whose "antenna" holds at most one
 * simulated tag (nfc_tag.h). Tags enter and leave through the vendor IOCTLs NFC_IOCTL_TAG_ENTER /
 * _LEAVE (include/smc/nfc.h), which reach the field through the front end's control slot; faults
 * (a mute tag, a tag that leaves in the middle of a frame) through NFC_IOCTL_TAG_FAULT.
 *
 * With the field on, a tag that enters is activated with its default protocol and reported to the
 * driver (arrived event); a tag that leaves is reported (left event). With the field off the tag
 * has no power: nothing is reported, and poll finds it when the field comes back. Exchanges have
 * zero latency: a silent tag is a timeout at once, whatever the timeout asked for.
 *
 * Every call comes from the driver with libsmc's op lock held, so the field needs no lock; events
 * are raised from inside those calls.
 */
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/hex.h"
#include "common/log.h"
#include "drivers/nfc/nfc_fe.h"
#include "drivers/nfc/nfc_tag.h"
#include "smc/driver.h"
#include "smc/nfc.h"

#define TAG_FRAME_MAX 512u

struct simfield {
    struct nfc_fe_events ev;
    bool field;          /* radio on */
    struct nfc_tag *tag; /* in the field */
    bool active;         /* activated and not halted */
    uint32_t proto;      /* activated with */
    uint32_t activations;
    bool mute, leave_next;
};

static smc_status sf_open(const char *options, const struct nfc_fe_events *ev, void **fe)
{
    (void)options; /* the field has no options of its own */
    struct simfield *f = calloc(1, sizeof(*f));
    if (!f)
        return STATUS_INSUFFICIENT_RESOURCES;
    f->ev = *ev;
    *fe = f;
    return STATUS_SUCCESS;
}

static void sf_close(void *fe)
{
    struct simfield *f = fe;
    nfc_tag_free(f->tag);
    free(f);
}

static smc_status sf_field(void *fe, bool on)
{
    struct simfield *f = fe;
    f->field = on;
    if (!on) {
        if (f->tag)
            nfc_tag_halt(f->tag); /* no power: the tag forgets everything volatile */
        f->active = false;
    }
    return STATUS_SUCCESS;
}

static void tag_leaves(struct simfield *f);

static smc_status sf_activate(void *fe, uint32_t proto, struct nfc_target *t)
{
    struct simfield *f = fe;
    if (!f->field || !f->tag)
        return STATUS_NO_MEDIA;
    if (f->leave_next) {
        tag_leaves(f);
        return STATUS_NO_MEDIA;
    }
    uint32_t want = proto ? proto : (f->proto ? f->proto : nfc_tag_default_protocol(f->tag));
    if (!(nfc_tag_protocols(f->tag) & want))
        return STATUS_NOT_SUPPORTED;
    if (!nfc_tag_activate(f->tag, want, t))
        return STATUS_NOT_SUPPORTED;
    f->active = true;
    f->proto = want;
    f->activations++;
    return STATUS_SUCCESS;
}

static smc_status sf_poll(void *fe, struct nfc_target *t)
{
    struct simfield *f = fe;
    if (!f->field || !f->tag)
        return STATUS_NO_MEDIA;
    f->proto = 0;
    return sf_activate(fe, 0, t);
}

static smc_status sf_deactivate(void *fe)
{
    struct simfield *f = fe;
    if (f->tag)
        nfc_tag_halt(f->tag);
    f->active = false;
    return f->tag ? STATUS_SUCCESS : STATUS_NO_MEDIA;
}

/* The tag leaves the field; the driver hears of it if it could know the tag. */
static void tag_leaves(struct simfield *f)
{
    bool report = f->field;
    nfc_tag_free(f->tag);
    f->tag = NULL;
    f->active = false;
    f->proto = 0;
    f->mute = f->leave_next = false;
    if (report && f->ev.left)
        f->ev.left(f->ev.ctx);
}

static smc_status sf_transceive(void *fe, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t cap,
                                size_t *rx_len, uint32_t timeout_ms)
{
    struct simfield *f = fe;
    (void)timeout_ms; /* zero latency: silence is a timeout at once */
    *rx_len = 0;
    if (!f->field || !f->tag)
        return STATUS_NO_MEDIA;
    if (f->leave_next) {
        tag_leaves(f);
        return STATUS_NO_MEDIA;
    }
    uint8_t buf[TAG_FRAME_MAX];
    size_t n = 0;
    if (!f->active || f->mute || !nfc_tag_frame(f->tag, tx, tx_len, buf, sizeof(buf), &n))
        return STATUS_IO_TIMEOUT;
    if (n > cap)
        return STATUS_BUFFER_TOO_SMALL;
    memcpy(rx, buf, n);
    *rx_len = n;
    return STATUS_SUCCESS;
}

/* NFC_IOCTL_TAG_ENTER: "profile" or "profile:uidhex". */
static smc_status tag_enter(struct simfield *f, const struct smc_io *io)
{
    if (f->tag)
        return STATUS_DEVICE_BUSY;
    char spec[64];
    if (io->in_len == 0 || io->in_len >= sizeof(spec))
        return STATUS_INVALID_PARAMETER;
    memcpy(spec, io->in, io->in_len);
    spec[io->in_len] = '\0';
    uint8_t uid[NFC_MAX_UID];
    long uid_len = 0;
    char *colon = strchr(spec, ':');
    if (colon) {
        *colon = '\0';
        uid_len = scrm_hex_decode(colon + 1, uid, sizeof(uid));
        if (uid_len <= 0)
            return STATUS_INVALID_PARAMETER;
    }
    f->tag = nfc_tag_new(spec, uid, (size_t)uid_len);
    if (!f->tag) {
        log_warn(drv, "nfc: no tag profile '%s' (or a bad UID for it)", spec);
        return STATUS_INVALID_PARAMETER;
    }
    log_info(drv, "nfc: tag %s enters the field", spec);
    struct nfc_target t;
    if (f->field && sf_poll(f, &t) == STATUS_SUCCESS && f->ev.arrived)
        f->ev.arrived(f->ev.ctx, &t);
    return STATUS_SUCCESS;
}

static smc_status tag_fault(struct simfield *f, const struct smc_io *io)
{
    if (io->in_len < 4)
        return STATUS_INVALID_PARAMETER;
    if (!f->tag)
        return STATUS_NO_MEDIA;
    switch (scrm_get_u32le(io->in)) {
    case NFC_FAULT_NONE: f->mute = f->leave_next = false; break;
    case NFC_FAULT_MUTE: f->mute = true; break;
    case NFC_FAULT_LEAVE_NEXT: f->leave_next = true; break;
    default: return STATUS_INVALID_PARAMETER;
    }
    return STATUS_SUCCESS;
}

static smc_status sf_control(void *fe, struct smc_io *io)
{
    struct simfield *f = fe;
    switch (io->code) {
    case NFC_IOCTL_TAG_ENTER: return tag_enter(f, io);
    case NFC_IOCTL_TAG_LEAVE:
        if (!f->tag)
            return STATUS_NO_MEDIA;
        log_info(drv, "nfc: tag leaves the field");
        tag_leaves(f);
        return STATUS_SUCCESS;
    case NFC_IOCTL_TAG_FAULT: return tag_fault(f, io);
    default: return STATUS_INVALID_DEVICE_REQUEST;
    }
}

static void sf_info(void *fe, bool *tag_in_field, uint32_t *activations)
{
    const struct simfield *f = fe;
    *tag_in_field = f->tag != NULL;
    *activations = f->activations;
}

const struct nfc_fe_ops nfc_simfield_ops = {
    .name = "sim",
    .open = sf_open,
    .close = sf_close,
    .field = sf_field,
    .poll = sf_poll,
    .activate = sf_activate,
    .deactivate = sf_deactivate,
    .transceive = sf_transceive,
    .control = sf_control,
    .info = sf_info,
};
