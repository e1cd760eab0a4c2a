/*
 * The IFD-handler bridge: a libsmc driver over a pcsc-lite reader driver (docs/ifd.md).
 *
 *   open        load the library (shared), CreateChannelByName / CreateChannel, the slot count,
 *               thread-safety tags, the polling function, the initial presence, the event thread;
 *               further slots are added as sibling devices "ifd:ID/N"
 *   power       IFDHPowerICC (presence checked first, as pcscd does)
 *   set_protocol  IFDHSetProtocolParameters (T=1 preferred; the handler does PPS)
 *   transmit    IFDHTransmitToICC with the APDU (the handler runs T=0 / T=1)
 *   ioctl_vendor  attributes → IFDHGetCapabilities / IFDHSetCapabilities; vendor and PC/SC
 *               control codes → IFDHControl with pcsc-lite's code (0x42000000 + function)
 *   events      the handler's polling function when it has one, else IFDHICCPresence every
 *               `poll` ms; IFD_NO_SUCH_DEVICE removes the device (smc_reader_gone)
 *
 * Every handler call runs on the caller's own thread, under the call lock the thread-safety tags
 * require, guarded against hanging past `watchdog` ms and against crashing (see "calls" below
 * and ifd_guard.c). Lengths a handler returns are checked against the buffers given.
 */
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/opts.h"
#include "common/timeutil.h"
#include "drivers/ifd/ifd_priv.h"
#include "smc/smc.h"

#define RX_GUARD 16u
static const uint8_t guard_byte = 0xA5;

/* ---- calls ----
 *
 * Every handler call runs on the caller's own thread (ifd_guard_call), under the call lock the
 * thread-safety tags require, with a recovery point around it: the watchdog interrupts a call
 * older than `watchdog` ms (the slot is then out of service: IFD_HUNG, and the reader is
 * removed), and a crash in the handler returns to the bridge (the library is then never called
 * again and all its readers are removed). The arguments and every buffer the handler gets are
 * slot memory (s->a, s->cap, s->atr, s->rx, s->tx); one caller at a time (s->cm).
 */
#define IFD_HUNG (-1L) /* internal: the slot (or its library) is out of service */

enum ifd_op {
    OP_CREATE,
    OP_CLOSE,
    OP_GET_CAPS,
    OP_SET_CAPS,
    OP_SET_PROTO,
    OP_POWER,
    OP_TRANSMIT,
    OP_PRESENCE,
    OP_CONTROL
};

static const char *const op_names[] = {
    [OP_CREATE] = "IFDHCreateChannel",
    [OP_CLOSE] = "IFDHCloseChannel",
    [OP_GET_CAPS] = "IFDHGetCapabilities",
    [OP_SET_CAPS] = "IFDHSetCapabilities",
    [OP_SET_PROTO] = "IFDHSetProtocolParameters",
    [OP_POWER] = "IFDHPowerICC",
    [OP_TRANSMIT] = "IFDHTransmitToICC",
    [OP_PRESENCE] = "IFDHICCPresence",
    [OP_CONTROL] = "IFDHControl",
};

static ifd_rc execute(void *arg)
{
    struct ifd_slot *s = arg;
    const struct ifd_lib *l = s->unit->lib;
    struct ifd_args *a = &s->a;
    switch (a->op) {
    case OP_CREATE:
        return a->by_name ? l->f.create_by_name(s->lun, s->device)
                          : l->f.create(s->lun, a->channel);
    case OP_CLOSE: return l->f.close(s->lun);
    case OP_GET_CAPS: return l->f.get_caps(s->lun, a->tag, &a->len, a->buf);
    case OP_SET_CAPS: return l->f.set_caps(s->lun, a->tag, a->len, a->buf);
    case OP_SET_PROTO: return l->f.set_proto(s->lun, a->protocol, 0, 0, 0, 0);
    case OP_POWER: return l->f.power(s->lun, a->action, a->buf, &a->len);
    case OP_TRANSMIT:
        return l->f.transmit(s->lun, a->send, a->tx, a->tx_len, a->rx, &a->rx_len, &a->recv);
    case OP_PRESENCE: return l->f.presence(s->lun);
    case OP_CONTROL:
        if (l->version == 3)
            return l->f.control(s->lun, a->code, a->tx, a->tx_len, a->rx, a->rx_len, &a->returned);
        if (!l->f.control2)
            return IFD_ERROR_NOT_SUPPORTED;
        a->returned = a->rx_len;
        return l->f.control2(s->lun, a->tx, a->tx_len, a->rx, &a->returned);
    }
    return IFD_ERROR_NOT_SUPPORTED;
}

static void log_rc(const struct ifd_slot *s, const char *fn, ifd_rc rc)
{
    char t[48];
    log_info(drv, "ifd: driver %s: %s on reader '%s' returned %s", s->unit->lib->path, fn, s->name,
             ifd_rc_text(rc, t, sizeof(t)));
}

static bool out_of_service(const struct ifd_slot *s)
{
    return atomic_load(&s->hung) || atomic_load(&s->unit->lib->failed);
}

/* Take the slot's call (s->cm) unless the slot is out of service. */
static bool begin(struct ifd_slot *s)
{
    pthread_mutex_lock(&s->cm);
    if (!out_of_service(s))
        return true;
    pthread_mutex_unlock(&s->cm);
    return false;
}

/* A crash in the handler: logged with the driver and the call; the library is never called
 * again and every reader that uses it leaves. */
static void crashed(struct ifd_slot *s, const char *what, const struct ifd_fault *fault)
{
    log_error(drv,
              "ifd: driver %s crashed in %s on reader '%s' (Lun 0x%lX): %s at address 0x%lx; "
              "the library is not called again and its readers are taken out of service",
              s->unit->lib->path, what, s->name, (unsigned long)s->lun, ifd_signal_name(fault->sig),
              (unsigned long)fault->addr);
    ifd_lib_fail(s->unit->lib);
}

/* Run the call described in s->a (s->cm held) on this thread, under the call lock. */
static ifd_rc call(struct ifd_slot *s, enum ifd_op op)
{
    struct ifd_lib *l = s->unit->lib;
    s->a.op = op;
    if (out_of_service(s))
        return IFD_HUNG;
    ifd_rc rc = IFD_HUNG;
    struct ifd_fault fault = {0};
    pthread_mutex_lock(s->call_lock);
    enum ifd_call_end end = ifd_guard_call(&s->watch, s->unit->spec.watchdog_ms, op_names[op],
                                           &l->text, execute, s, &rc, &fault);
    pthread_mutex_unlock(s->call_lock);
    if (end == IFD_CALL_RETURNED)
        return rc;
    if (end == IFD_CALL_CRASHED) {
        crashed(s, op_names[op], &fault);
        return IFD_HUNG;
    }
    atomic_store(&s->hung, true);
    ifd_lib_taint(l);
    log_error(drv, "ifd: reader '%s' (driver %s, Lun 0x%lX): %s interrupted; the reader leaves",
              s->name, l->path, (unsigned long)s->lun, op_names[op]);
    smc_reader_gone(s->r); /* nothing happens when it is not added yet (open fails) */
    return IFD_HUNG;
}

static ifd_rc get_caps(struct ifd_slot *s, ifd_dword tag, uint8_t *buf, ifd_dword *len)
{
    ifd_dword cap = *len;
    if (!begin(s)) {
        *len = 0;
        return IFD_HUNG;
    }
    bool big = cap > sizeof(s->cap) - RX_GUARD;
    s->a.tag = tag;
    s->a.len = cap;
    s->a.buf = big ? s->rx : s->cap;
    memset(s->a.buf + cap, guard_byte, RX_GUARD);
    ifd_rc rc = call(s, OP_GET_CAPS);
    bool overrun = false;
    for (size_t i = 0; rc == IFD_SUCCESS && i < RX_GUARD; i++)
        overrun |= s->a.buf[cap + i] != guard_byte;
    if (rc == IFD_SUCCESS && (s->a.len > cap || overrun)) {
        log_error(drv,
                  "ifd: driver %s: IFDHGetCapabilities(0x%lX) on reader '%s' returned %lu "
                  "bytes for a buffer of %lu%s; refused",
                  s->unit->lib->path, tag, s->name, (unsigned long)s->a.len, (unsigned long)cap,
                  overrun ? " and wrote past it" : "");
        rc = IFD_COMMUNICATION_ERROR;
    }
    *len = rc == IFD_SUCCESS ? s->a.len : 0;
    if (rc == IFD_SUCCESS)
        memcpy(buf, s->a.buf, *len);
    pthread_mutex_unlock(&s->cm);
    return rc;
}

/* One simple call (s->a filled by the caller, no buffers), serialised. */
static ifd_rc simple_call(struct ifd_slot *s, enum ifd_op op)
{
    if (!begin(s))
        return IFD_HUNG;
    ifd_rc rc = call(s, op);
    pthread_mutex_unlock(&s->cm);
    return rc;
}

/* A one-byte capability, or -1. */
static int cap_byte(struct ifd_slot *s, ifd_dword tag)
{
    uint8_t b[8] = {0};
    ifd_dword len = 1;
    ifd_rc rc = get_caps(s, tag, b, &len);
    return rc == IFD_SUCCESS && len == 1 ? b[0] : -1;
}

/* A function pointer capability, or NULL. */
static void *cap_fn(struct ifd_slot *s, ifd_dword tag)
{
    union {
        void *p;
        uint8_t b[sizeof(void *) + 8];
    } v = {.p = NULL};
    ifd_dword len = sizeof(void *);
    ifd_rc rc = get_caps(s, tag, v.b, &len);
    return rc == IFD_SUCCESS && len == sizeof(void *) ? v.p : NULL;
}

/* ---- presence and events ---- */

static void mark_gone(struct ifd_slot *s, const char *fn)
{
    pthread_mutex_lock(&s->mu);
    bool first = !s->gone;
    s->gone = true;
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->unit->gone, true); /* every slot of it is unplugged */
    if (!first)
        return;
    log_info(drv, "ifd: reader '%s': %s reports the device is gone; removing the reader", s->name,
             fn);
    smc_reader_gone(s->r);
    ifd_unit_each_other_slot(s->unit, s->idx, smc_reader_gone);
}

/* Report a presence result to libsmc when it changes what libsmc knows. */
static void report(struct ifd_slot *s, int present)
{
    pthread_mutex_lock(&s->mu);
    int was = s->present;
    s->present = present;
    pthread_mutex_unlock(&s->mu);
    if (was == present)
        return;
    if (present == 1)
        smc_card_inserted(s->r, SCARD_SWALLOWED);
    else if (present == 0)
        smc_card_removed(s->r);
    else
        smc_reader_lost(s->r);
}

/* IFDHICCPresence: 1 present, 0 absent, -1 error, -2 device gone. */
static int presence(struct ifd_slot *s)
{
    ifd_rc rc = simple_call(s, OP_PRESENCE);
    switch (rc) {
    case IFD_SUCCESS:
    case IFD_ICC_PRESENT: return 1;
    case IFD_ICC_NOT_PRESENT: return 0;
    case IFD_NO_SUCH_DEVICE:
    case IFD_HUNG: return -2;
    default: {
        pthread_mutex_lock(&s->mu);
        bool known = s->present != -1;
        pthread_mutex_unlock(&s->mu);
        if (known)
            log_rc(s, "IFDHICCPresence", rc);
        return -1;
    }
    }
}

/* Wait ms or until stopped; true if stopped. */
static bool wait_stop(struct ifd_slot *s, uint32_t ms)
{
    struct timespec until = scrm_deadline_ms(ms);
    pthread_mutex_lock(&s->mu);
    while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0) {
    }
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static bool stopping(struct ifd_slot *s)
{
    pthread_mutex_lock(&s->mu);
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* The polling function's timeout: long when it can be interrupted, short enough otherwise that
 * closing the reader does not wait long. */
static int poll_timeout_ms(const struct ifd_slot *s)
{
    return s->stop_fn || s->killable ? 600000 : 1000;
}

/* The handler's polling function, on the event thread (cancellable there when killable). */
static ifd_rc run_poll(void *arg)
{
    struct ifd_slot *s = arg;
    if (s->killable)
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    ifd_rc rc = s->poll_fn(s->lun, poll_timeout_ms(s));
    if (s->killable)
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    return rc;
}

static void *event_main(void *arg)
{
    struct ifd_slot *s = arg;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    for (;;) {
        if (s->poll_fn) {
            ifd_rc rc = IFD_COMMUNICATION_ERROR;
            struct ifd_fault fault = {0};
            /* no time bound: it waits for card events by design; a crash is caught */
            if (out_of_service(s) ||
                ifd_guard_call(NULL, 0, "the polling function", &s->unit->lib->text, run_poll, s,
                               &rc, &fault) == IFD_CALL_CRASHED) {
                if (fault.sig)
                    crashed(s, "the polling function", &fault);
                break;
            }
            if (rc == IFD_NO_SUCH_DEVICE) {
                mark_gone(s, "the polling function");
                break;
            }
            if (rc != IFD_SUCCESS && wait_stop(s, s->unit->spec.poll_ms))
                break;
        } else if (wait_stop(s, s->unit->spec.poll_ms)) {
            break;
        }
        if (stopping(s))
            break;
        int p = presence(s);
        if (p == -2) {
            mark_gone(s, "IFDHICCPresence");
            break;
        }
        report(s, p);
    }
    return NULL;
}

/* Stop the event thread; false if it had to be abandoned (a library that crashed or a call
 * that hung may keep it in the handler: its slot memory then stays allocated). */
static bool event_stop(struct ifd_slot *s)
{
    if (!s->thread_started)
        return true;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    bool broken = out_of_service(s);
    if (s->poll_fn && s->stop_fn && !broken) {
        (void)s->stop_fn(s->lun);
    } else if (s->poll_fn && s->killable) {
        pthread_cancel(s->thread);
    }
    s->thread_started = false;
    if (!broken) {
        pthread_join(s->thread, NULL);
        return true;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    if (pthread_timedjoin_np(s->thread, NULL, &until) == 0)
        return true;
    log_error(drv, "ifd: reader '%s': its event thread is still in the handler; it is abandoned",
              s->name);
    pthread_detach(s->thread);
    return false;
}

/* ---- status mapping ---- */

static smc_status map_rc(struct ifd_slot *s, const char *fn, ifd_rc rc)
{
    switch (rc) {
    case IFD_SUCCESS: return STATUS_SUCCESS;
    case IFD_ICC_NOT_PRESENT: report(s, 0); return STATUS_NO_MEDIA;
    case IFD_NO_SUCH_DEVICE: mark_gone(s, fn); return STATUS_DEVICE_NOT_CONNECTED;
    case IFD_HUNG: return STATUS_DEVICE_NOT_CONNECTED;
    case IFD_ERROR_NOT_SUPPORTED:
    case IFD_NOT_SUPPORTED:
    case IFD_PROTOCOL_NOT_SUPPORTED:
    case IFD_ERROR_TAG: return STATUS_NOT_SUPPORTED;
    case IFD_ERROR_INSUFFICIENT_BUFFER: return STATUS_BUFFER_TOO_SMALL;
    case IFD_RESPONSE_TIMEOUT: log_rc(s, fn, rc); return STATUS_IO_TIMEOUT;
    case IFD_ERROR_PTS_FAILURE:
    case IFD_PARITY_ERROR: log_rc(s, fn, rc); return STATUS_DEVICE_PROTOCOL_ERROR;
    default: log_rc(s, fn, rc); return STATUS_IO_DEVICE_ERROR;
    }
}

/* ---- slots ---- */

static smc_status ifd_power(struct smc_reader *r, struct smc_io *io)
{
    struct ifd_slot *s = smc_reader_priv(r);
    const struct ifd_lib *l = s->unit->lib;
    if (io->minor != SCARD_POWER_DOWN) {
        int p = presence(s); /* as pcscd: no power-up of an absent card */
        if (p == -2) {
            mark_gone(s, "IFDHICCPresence");
            return STATUS_DEVICE_NOT_CONNECTED;
        }
        if (p == 0) {
            report(s, 0);
            return STATUS_NO_MEDIA;
        }
    }
    ifd_dword actions[2];
    size_t n = 0;
    if (io->minor == SCARD_POWER_DOWN) {
        actions[n++] = IFD_POWER_DOWN;
    } else if (io->minor == SCARD_WARM_RESET) {
        actions[n++] = IFD_RESET;
    } else {
        if (smc_reader_state(r) >= SCARD_POWERED)
            actions[n++] = IFD_POWER_DOWN; /* a cold reset of a powered card */
        actions[n++] = IFD_POWER_UP;
    }
    uint8_t atr[IFD_MAX_ATR + RX_GUARD];
    ifd_dword atr_len = 0;
    ifd_rc rc = IFD_SUCCESS;
    if (!begin(s))
        return STATUS_DEVICE_NOT_CONNECTED;
    for (size_t i = 0; i < n && rc == IFD_SUCCESS; i++) {
        memset(s->atr, guard_byte, sizeof(s->atr));
        s->a.buf = s->atr;
        s->a.len = IFD_MAX_ATR;
        s->a.action = actions[i];
        rc = call(s, OP_POWER);
    }
    atr_len = s->a.len;
    memcpy(atr, s->atr, sizeof(atr));
    pthread_mutex_unlock(&s->cm);
    if (rc != IFD_SUCCESS) {
        smc_status st = map_rc(s, "IFDHPowerICC", rc);
        /* a card that does not come up is mute for libsmc */
        return st == STATUS_IO_DEVICE_ERROR && io->minor != SCARD_POWER_DOWN ? STATUS_IO_TIMEOUT
                                                                             : st;
    }
    if (io->minor == SCARD_POWER_DOWN)
        return STATUS_SUCCESS; /* vpcd leaves AtrLength as it was: not an ATR */
    if (atr_len > IFD_MAX_ATR || atr[IFD_MAX_ATR] != guard_byte) {
        log_error(drv,
                  "ifd: driver %s: IFDHPowerICC on reader '%s' returned an ATR length of %lu "
                  "(at most %u fit); refused",
                  l->path, s->name, (unsigned long)atr_len, IFD_MAX_ATR);
        return STATUS_IO_DEVICE_ERROR;
    }
    if (atr_len == 0)
        return STATUS_IO_TIMEOUT;
    smc_reader_set_atr(r, atr, atr_len);
    return STATUS_SUCCESS;
}

static smc_status ifd_set_protocol(struct smc_reader *r, struct smc_io *io)
{
    struct ifd_slot *s = smc_reader_priv(r);
    const struct ifd_lib *l = s->unit->lib;
    struct smc_card_caps caps;
    smc_reader_card_caps(r, &caps);
    uint32_t mask = io->minor;
    uint32_t chosen = SCARD_PROTOCOL_UNDEFINED;
    if (caps.protocol_selected != SCARD_PROTOCOL_UNDEFINED) {
        /* specific mode (TA2): the card's protocol is fixed */
        if (!(caps.protocol_selected & mask))
            return STATUS_NOT_SUPPORTED;
        chosen = caps.protocol_selected;
    } else {
        uint32_t offered = caps.atr.protocols ? caps.atr.protocols : SCARD_PROTOCOL_T0;
        uint32_t avail = mask & offered & (SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1);
        uint32_t first = caps.atr.first_protocol == 1 ? SCARD_PROTOCOL_T1 : SCARD_PROTOCOL_T0;
        if (avail & SCARD_PROTOCOL_T1)
            chosen = SCARD_PROTOCOL_T1;
        else if (avail & SCARD_PROTOCOL_T0)
            chosen = SCARD_PROTOCOL_T0;
        else if (mask & SCARD_PROTOCOL_RAW)
            chosen = SCARD_PROTOCOL_RAW;
        else
            return STATUS_NOT_SUPPORTED;
        if (chosen != SCARD_PROTOCOL_RAW && l->f.set_proto) {
            if (!begin(s))
                return STATUS_DEVICE_NOT_CONNECTED;
            s->a.protocol = chosen;
            ifd_rc rc = call(s, OP_SET_PROTO);
            pthread_mutex_unlock(&s->cm);
            if ((rc == IFD_PROTOCOL_NOT_SUPPORTED || rc == IFD_ERROR_NOT_SUPPORTED) &&
                chosen != first && (mask & first)) {
                chosen = first; /* as pcscd: the card's default protocol, no PPS */
            } else if (rc == IFD_NOT_SUPPORTED) {
                if (!(mask & first))
                    return STATUS_NOT_SUPPORTED;
                chosen = first;
            } else if (rc != IFD_SUCCESS) {
                smc_status st = map_rc(s, "IFDHSetProtocolParameters", rc);
                return st == STATUS_NOT_SUPPORTED ? st : STATUS_DEVICE_PROTOCOL_ERROR;
            }
        }
    }
    smc_reader_set_protocol(r, chosen);
    scrm_put_u32le(io->out, chosen);
    io->info = 4;
    return STATUS_SUCCESS;
}

/* Guard bytes after the response area: a handler that wrote past what it was given. */
static bool overran(const uint8_t *b)
{
    bool over = false;
    for (size_t i = 0; i < RX_GUARD; i++)
        over |= b[i] != guard_byte;
    return over;
}

static smc_status ifd_transmit(struct smc_reader *r, struct smc_io *io)
{
    struct ifd_slot *s = smc_reader_priv(r);
    const struct ifd_lib *l = s->unit->lib;
    uint32_t proto = scrm_get_u32le(io->in);
    uint32_t pci_len = scrm_get_u32le(io->in + 4);
    const uint8_t *apdu = io->in + pci_len;
    size_t apdu_len = io->in_len - pci_len;
    if (apdu_len > IFD_MAX_BUFFER_EXTENDED)
        return STATUS_INVALID_PARAMETER;
    const ifd_dword cap = IFD_MAX_BUFFER_EXTENDED;
    if (!begin(s))
        return STATUS_DEVICE_NOT_CONNECTED;
    struct ifd_args *a = &s->a;
    a->send.protocol = proto == SCARD_PROTOCOL_T1 ? 1 : proto == SCARD_PROTOCOL_T0 ? 0 : 4;
    a->send.length = pci_len;
    a->recv = a->send;
    a->rx = s->rx;
    a->rx_len = cap;
    memset(s->rx + cap, guard_byte, RX_GUARD);
    a->tx = s->tx; /* its own copy of the command: io->out may alias io->in */
    a->tx_len = apdu_len;
    memcpy(s->tx, apdu, apdu_len);
    ifd_rc rc = call(s, OP_TRANSMIT);
    ifd_dword rx_len = a->rx_len;
    bool overrun = rc == IFD_SUCCESS && overran(s->rx + cap);
    smc_status st = STATUS_SUCCESS;
    if (rc != IFD_SUCCESS) {
        st = map_rc(s, "IFDHTransmitToICC", rc);
    } else if (rx_len > cap || overrun) {
        log_error(drv,
                  "ifd: driver %s: IFDHTransmitToICC on reader '%s' returned %lu bytes for a "
                  "buffer of %lu%s; refused",
                  l->path, s->name, (unsigned long)rx_len, (unsigned long)cap,
                  overrun ? " and wrote past it" : "");
        st = STATUS_IO_DEVICE_ERROR;
    } else if (rx_len < 2 && proto != SCARD_PROTOCOL_RAW) {
        /* vpcd answers success with no bytes when its card went away mid-APDU */
        log_info(drv, "ifd: reader '%s': the handler returned %lu response bytes (no status word)",
                 s->name, (unsigned long)rx_len);
        st = STATUS_IO_TIMEOUT;
    } else if (io->out_len < SMC_IO_HEADER_LENGTH + rx_len) {
        st = STATUS_BUFFER_TOO_SMALL;
    } else {
        scrm_put_u32le(io->out, proto);
        scrm_put_u32le(io->out + 4, SMC_IO_HEADER_LENGTH);
        memcpy(io->out + SMC_IO_HEADER_LENGTH, s->rx, rx_len);
        io->info = SMC_IO_HEADER_LENGTH + rx_len;
    }
    pthread_mutex_unlock(&s->cm);
    return st;
}

static smc_status ifd_card_tracking(struct smc_reader *r, uint32_t code)
{
    (void)r;
    (void)code;
    return STATUS_PENDING; /* the event thread always watches */
}

/* GET_ATTRIBUTE ids libsmc does not answer itself → IFDHGetCapabilities. */
static smc_status get_attr(struct ifd_slot *s, struct smc_io *io)
{
    uint32_t id = scrm_get_u32le(io->in);
    ifd_dword len = io->out_len < IFD_MAX_BUFFER_EXTENDED ? io->out_len : IFD_MAX_BUFFER_EXTENDED;
    ifd_rc rc = get_caps(s, id, io->out, &len);
    if (rc == IFD_ERROR_TAG || rc == IFD_ERROR_NOT_SUPPORTED || rc == IFD_NOT_SUPPORTED)
        return STATUS_NOT_SUPPORTED;
    if (rc == IFD_ERROR_INSUFFICIENT_BUFFER)
        return STATUS_BUFFER_TOO_SMALL;
    if (rc != IFD_SUCCESS)
        return map_rc(s, "IFDHGetCapabilities", rc);
    io->info = len;
    return STATUS_SUCCESS;
}

static smc_status set_attr(struct ifd_slot *s, struct smc_io *io)
{
    uint32_t id = scrm_get_u32le(io->in);
    size_t n = io->in_len - 4;
    if (n > IFD_MAX_BUFFER_EXTENDED)
        return STATUS_INVALID_PARAMETER;
    if (!begin(s))
        return STATUS_DEVICE_NOT_CONNECTED;
    memcpy(s->tx, io->in + 4, n);
    s->a.tag = id;
    s->a.len = n;
    s->a.buf = s->tx;
    ifd_rc rc = call(s, OP_SET_CAPS);
    pthread_mutex_unlock(&s->cm);
    if (rc == IFD_ERROR_TAG || rc == IFD_ERROR_NOT_SUPPORTED || rc == IFD_NOT_SUPPORTED ||
        rc == IFD_ERROR_VALUE_READ_ONLY)
        return STATUS_NOT_SUPPORTED;
    if (rc == IFD_ERROR_SET_FAILURE)
        return STATUS_INVALID_PARAMETER;
    io->info = 0;
    return map_rc(s, "IFDHSetCapabilities", rc);
}

/* pcsc-lite's control code for a libsmc vendor IOCTL: SCARD_CTL_CODE(function). */
static uint32_t pcsc_code(uint32_t code)
{
    if (SMC_IOCTL_IS_PCSC_VENDOR(code))
        return code;
    return IFD_PCSC_CTL_BASE + SMC_IOCTL_FUNCTION(code);
}

static smc_status control(struct ifd_slot *s, struct smc_io *io)
{
    const struct ifd_lib *l = s->unit->lib;
    if (io->in_len > IFD_MAX_BUFFER_EXTENDED)
        return STATUS_INVALID_PARAMETER;
    ifd_dword cap = io->out_len < IFD_MAX_BUFFER_EXTENDED ? io->out_len : IFD_MAX_BUFFER_EXTENDED;
    if (!begin(s))
        return STATUS_DEVICE_NOT_CONNECTED;
    struct ifd_args *a = &s->a;
    if (io->in_len)
        memcpy(s->tx, io->in, io->in_len);
    memset(s->rx + cap, guard_byte, RX_GUARD);
    a->code = pcsc_code(io->code);
    a->tx = s->tx;
    a->tx_len = io->in_len;
    a->rx = s->rx;
    a->rx_len = cap;
    a->returned = 0;
    ifd_rc rc = call(s, OP_CONTROL);
    ifd_dword returned = a->returned;
    bool overrun = rc == IFD_SUCCESS && overran(s->rx + cap);
    smc_status st = STATUS_SUCCESS;
    if (rc != IFD_SUCCESS) {
        st = map_rc(s, "IFDHControl", rc);
    } else if (returned > cap || overrun) {
        log_error(drv,
                  "ifd: driver %s: IFDHControl(0x%X) on reader '%s' returned %lu bytes for "
                  "a buffer of %lu%s; refused",
                  l->path, pcsc_code(io->code), s->name, (unsigned long)returned,
                  (unsigned long)cap, overrun ? " and wrote past it" : "");
        st = STATUS_IO_DEVICE_ERROR;
    } else {
        memcpy(io->out, s->rx, returned);
        io->info = returned;
    }
    pthread_mutex_unlock(&s->cm);
    return st;
}

static smc_status ifd_vendor(struct smc_reader *r, struct smc_io *io)
{
    struct ifd_slot *s = smc_reader_priv(r);
    if (io->code == IOCTL_SMARTCARD_GET_ATTRIBUTE)
        return get_attr(s, io);
    if (io->code == IOCTL_SMARTCARD_SET_ATTRIBUTE)
        return set_attr(s, io);
    return control(s, io);
}

/* ---- open / close ---- */

/* A string capability into dst (trimmed of NULs), or false. */
static bool cap_string(struct ifd_slot *s, ifd_dword tag, char *dst, size_t cap)
{
    uint8_t b[64];
    ifd_dword len = sizeof(b) - 1;
    if (get_caps(s, tag, b, &len) != IFD_SUCCESS)
        return false;
    while (len > 0 && b[len - 1] == '\0')
        len--;
    if (len == 0 || len >= cap)
        return false;
    for (size_t i = 0; i < len; i++)
        if (b[i] < 0x20 || b[i] > 0x7E)
            return false;
    memcpy(dst, b, len);
    dst[len] = '\0';
    return true;
}

static void describe(struct ifd_slot *s)
{
    struct smc_vendor_attr *va = smc_reader_vendor(s->r);
    const struct ifd_devspec *spec = &s->unit->spec;
    if (!cap_string(s, 0x00010100u, va->vendor_name, sizeof(va->vendor_name)))
        snprintf(va->vendor_name, sizeof(va->vendor_name), "IFD handler");
    if (!cap_string(s, 0x00010101u, va->ifd_type, sizeof(va->ifd_type))) {
        const char *base = strrchr(spec->lib, '/');
        snprintf(va->ifd_type, sizeof(va->ifd_type), "%.*s", (int)(sizeof(va->ifd_type) - 1),
                 base ? base + 1 : spec->lib);
    }
    (void)cap_string(s, 0x00010103u, va->serial, sizeof(va->serial));
    uint8_t v[8] = {0};
    ifd_dword len = 4;
    if (get_caps(s, 0x00010102u, v, &len) == IFD_SUCCESS && len == 4)
        va->ifd_version = scrm_get_u32le(v);
    va->unit = s->idx;
    snprintf(va->friendly_name, sizeof(va->friendly_name), "%.*s",
             (int)sizeof(va->friendly_name) - 1, s->name);

    struct smc_reader_caps *c = smc_reader_caps(s->r);
    c->protocols = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1 | SCARD_PROTOCOL_RAW;
    c->reader_type = strncmp(spec->device, "usb:", 4) == 0       ? SCARD_READER_TYPE_USB
                     : strncmp(spec->device, "/dev/tty", 8) == 0 ? SCARD_READER_TYPE_SERIAL
                                                                 : SCARD_READER_TYPE_VENDOR;
    c->channel = (uint32_t)s->lun;
    c->max_ifsd = 254;
}

static void slot_free(struct ifd_slot *s)
{
    ifd_watch_remove(&s->watch);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->own_lock);
    pthread_mutex_destroy(&s->cm);
    free(s->rx);
    free(s->tx);
    free(s);
}

/* Close the channel of an open slot (not for one out of service: call() refuses). */
static void close_channel(struct ifd_slot *s, bool quiet)
{
    ifd_rc rc = simple_call(s, OP_CLOSE);
    if (rc != IFD_SUCCESS && rc != IFD_HUNG && !quiet)
        log_rc(s, "IFDHCloseChannel", rc);
}

/* Choose the slot's call lock from the thread-safety tags (see docs/ifd.md). */
static void choose_lock(struct ifd_slot *s)
{
    struct ifd_unit *u = s->unit;
    bool ts = u->lib->thread_safe, sts = u->slot_thread_safe;
    if (ts && (sts || u->nslots == 1))
        s->call_lock = &s->own_lock;
    else if (ts)
        s->call_lock = &u->lock;
    else if (sts || u->nslots == 1)
        s->call_lock = ifd_lib_slot_lock(u->lib, s->idx);
    else
        s->call_lock = &u->lib->lock;
}

static smc_status slot_open(struct smc_reader *r, struct ifd_unit *u, unsigned idx)
{
    struct ifd_slot *s = calloc(1, sizeof(*s));
    uint8_t *rx = malloc((size_t)IFD_MAX_BUFFER_EXTENDED + RX_GUARD);
    uint8_t *tx = malloc((size_t)IFD_MAX_BUFFER_EXTENDED + RX_GUARD);
    if (!s || !rx || !tx) {
        free(s);
        free(rx);
        free(tx);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    s->rx = rx;
    s->tx = tx;
    s->unit = u;
    s->r = r;
    s->idx = idx;
    s->lun = ((ifd_dword)u->number << 16) | idx;
    s->present = -1;
    snprintf(s->name, sizeof(s->name), "%s %02X %02X", u->spec.name, u->number & 0xFFu, idx);
    snprintf(s->device, sizeof(s->device), "%s", u->spec.device);
    int cv_err = scrm_cond_init_monotonic(&s->cv);
    if (cv_err) {
        log_error(drv, "ifd: reader '%s': cannot create its condition variable: %s", s->name,
                  strerror(cv_err));
        free(s);
        free(rx);
        free(tx);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    pthread_mutex_init(&s->own_lock, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->cm, NULL);
    ifd_watch_init(&s->watch, u->lib->path, s->name);
    const struct ifd_lib *l = u->lib;
    /* Create the channel under the library-wide lock: nothing else runs in a library that is
     * not thread safe, and the first unit has not told yet. */
    s->call_lock = &u->lib->lock;
    if (!ifd_watch_add(&s->watch)) {
        pthread_mutex_destroy(&s->watch.mu);
        s->watch.prev = s->watch.next = NULL;
        free(s->rx);
        free(s->tx);
        free(s);
        return STATUS_INSUFFICIENT_RESOURCES;
    }

    s->a.by_name = l->version == 3 && u->spec.device[0];
    s->a.channel = u->spec.channel;
    ifd_rc rc = simple_call(s, OP_CREATE);
    if (rc != IFD_SUCCESS) {
        char t[48];
        log_error(drv, "ifd: driver %s: %s(Lun 0x%lX, %s) for reader '%s' failed: %s", l->path,
                  s->a.by_name ? "IFDHCreateChannelByName" : "IFDHCreateChannel",
                  (unsigned long)s->lun, s->a.by_name ? u->spec.device : "channel", s->name,
                  ifd_rc_text(rc, t, sizeof(t)));
        slot_free(s);
        return rc == IFD_NO_SUCH_DEVICE ? STATUS_NO_SUCH_DEVICE : STATUS_DEVICE_NOT_CONNECTED;
    }
    smc_reader_set_priv(r, s);
    if (idx == 0) {
        if (!u->lib->thread_safe_known) {
            u->lib->thread_safe = cap_byte(s, IFD_TAG_THREAD_SAFE) == 1;
            u->lib->thread_safe_known = true;
        }
        int n = cap_byte(s, IFD_TAG_SLOTS_NUMBER);
        u->nslots = n > 0 ? (unsigned)n : 1;
        if (u->nslots > 1)
            u->slot_thread_safe = cap_byte(s, IFD_TAG_SLOT_THREAD_SAFE) == 1;
        u->slots = calloc(u->nslots, sizeof(struct ifd_slot *));
    }
    choose_lock(s);
    s->poll_fn = (ifd_poll_fn)cap_fn(s, IFD_TAG_POLLING_THREAD_WITH_TIMEOUT);
    if (s->poll_fn) {
        s->stop_fn = (ifd_stop_fn)cap_fn(s, IFD_TAG_STOP_POLLING_THREAD);
        s->killable = cap_byte(s, IFD_TAG_POLLING_THREAD_KILLABLE) == 1;
    }
    describe(s);
    int p = presence(s); /* as pcscd's initial check: an error fails the reader */
    s->present = p;
    if (p >= 0)
        smc_reader_set_state(r, p ? SCARD_SWALLOWED : SCARD_ABSENT);
    bool started = p >= 0 && pthread_create(&s->thread, NULL, event_main, s) == 0;
    if (!started) {
        log_error(drv, "ifd: reader '%s': %s", s->name,
                  p < 0 ? "the initial presence check failed" : "cannot start its event thread");
        close_channel(s, true);
        smc_reader_set_priv(r, NULL);
        slot_free(s);
        return p < 0 ? STATUS_DEVICE_NOT_CONNECTED : STATUS_INSUFFICIENT_RESOURCES;
    }
    s->thread_started = true;
    ifd_unit_set_slot(u, idx, s);
    log_info(drv, "ifd: reader '%s' open (%s, Lun 0x%lX, %s)", s->name, l->path,
             (unsigned long)s->lun,
             s->poll_fn ? "the handler's polling thread" : "presence polled by scrm");
    return STATUS_SUCCESS;
}

static smc_status open_sibling(struct smc_reader *r, const char *address)
{
    const char *slash = strchr(address, '/');
    char id[IFD_ID_MAX + 1];
    uint32_t idx = 0;
    size_t n = (size_t)(slash - address);
    if (n == 0 || n > IFD_ID_MAX || !scrm_parse_u32(slash + 1, 255, &idx) || idx == 0) {
        log_error(drv, "ifd: bad slot device ifd:%s", address);
        return STATUS_INVALID_PARAMETER;
    }
    memcpy(id, address, n);
    id[n] = '\0';
    struct ifd_unit *u = ifd_unit_find(id);
    if (!u || !u->ready || idx >= u->nslots) {
        log_error(drv, "ifd: ifd:%s: no open reader ifd:%s with a slot %u", address, id, idx);
        if (u)
            ifd_unit_put(u);
        return STATUS_NO_SUCH_DEVICE;
    }
    smc_status st = slot_open(r, u, idx);
    if (st != STATUS_SUCCESS)
        ifd_unit_put(u);
    return st;
}

static smc_status ifd_open(struct smc_reader *r, const char *address, const char *options)
{
    if (strchr(address, '/'))
        return open_sibling(r, address);
    if (!ifd_id_valid(address)) {
        log_error(drv, "ifd: bad device ID '%s' (1..%u characters of A-Z a-z 0-9 . _ + @ -)",
                  address, IFD_ID_MAX);
        return STATUS_INVALID_PARAMETER;
    }
    struct ifd_devspec *spec = malloc(sizeof(*spec));
    if (!spec)
        return STATUS_INSUFFICIENT_RESOURCES;
    char err[256];
    if (!ifd_devstr_parse(options, spec, err, sizeof(err))) {
        log_error(drv, "ifd:%s: %s", address, err);
        free(spec);
        return STATUS_INVALID_PARAMETER;
    }
    if (!spec->name[0])
        snprintf(spec->name, sizeof(spec->name), "%s", address);
    struct ifd_lib *l = ifd_lib_get(spec->lib);
    if (!l) {
        free(spec);
        return STATUS_NO_SUCH_DEVICE;
    }
    struct ifd_unit *u = ifd_unit_new(l, address, spec);
    free(spec);
    if (!u) {
        ifd_lib_put(l);
        return STATUS_DEVICE_BUSY;
    }
    /* As pcscd: a further reader of the same library must fit its SIMULTANEOUS_ACCESS. */
    struct ifd_unit *other = ifd_unit_sibling_of_lib(u);
    if (other) {
        int max = other->slots && other->slots[0]
                      ? cap_byte(other->slots[0], IFD_TAG_SIMULTANEOUS_ACCESS)
                      : -1;
        ifd_unit_put(other);
        if (max > 0 && u->number >= (unsigned)max) {
            log_error(drv, "ifd: driver %s does not support more than %d reader(s)", l->path, max);
            ifd_unit_put(u);
            return STATUS_DEVICE_BUSY;
        }
    }
    smc_status st = slot_open(r, u, 0);
    if (st != STATUS_SUCCESS) {
        ifd_unit_put(u);
        return st;
    }
    u->ready = true;
    char dev[sizeof(u->id) + 32];
    for (unsigned i = 1; i < u->nslots; i++) {
        snprintf(dev, sizeof(dev), "ifd:%s/%u", u->id, i);
        if (smc_reader_add_sibling(r, dev) != STATUS_SUCCESS)
            log_error(drv, "ifd: reader ifd:%s: out of memory for slot %u", u->id, i);
    }
    return STATUS_SUCCESS;
}

static void ifd_close(struct smc_reader *r)
{
    struct ifd_slot *s = smc_reader_priv(r);
    if (!s)
        return;
    struct ifd_unit *u = s->unit;
    bool stopped = event_stop(s);
    ifd_unit_set_slot(u, s->idx, NULL);
    /* Removing slot 0 removes the whole reader, as pcscd does. */
    if (s->idx == 0)
        ifd_unit_each_other_slot(u, 0, smc_reader_gone);
    pthread_mutex_lock(&s->mu);
    bool gone = s->gone || atomic_load(&u->gone);
    pthread_mutex_unlock(&s->mu);
    /* as pcscd on an unplug: tell a handler that supports it before closing */
    if (gone && !out_of_service(s) && cap_byte(s, IFD_TAG_DEVICE_REMOVED) == 1 && begin(s)) {
        s->cap[0] = 1;
        s->a.tag = IFD_TAG_DEVICE_REMOVED;
        s->a.len = 1;
        s->a.buf = s->cap;
        (void)call(s, OP_SET_CAPS);
        pthread_mutex_unlock(&s->cm);
    }
    close_channel(s, gone);
    log_info(drv, "ifd: reader '%s' closed", s->name);
    smc_reader_set_priv(r, NULL);
    if (stopped)
        slot_free(s); /* else the abandoned event thread may still use it (a logged leak) */
    ifd_unit_put(u);
}

/* libccid numbers the control code of PC/SC part 10 feature n SCARD_CTL_CODE(0x330000 + n)
 * (its CLASS2_IOCTL_MAGIC); other handlers take their codes from the same convention or announce
 * theirs in the GET_FEATURE_REQUEST answer, which the trace cannot see. */
static const char *ifd_ioctl_vendor_name(uint32_t code)
{
    if ((code & 0xFFFFFF00u) == IFD_PCSC_CTL_BASE + 0x330000u)
        return smc_pcsc_feature_name(code & 0xFFu);
    return NULL;
}

const struct smc_driver_ops smc_ifd_driver = {
    .name = "ifd",
    .open = ifd_open,
    .close = ifd_close,
    .power = ifd_power,
    .transmit = ifd_transmit,
    .set_protocol = ifd_set_protocol,
    .card_tracking = ifd_card_tracking,
    .ioctl_vendor = ifd_vendor,
    .ioctl_vendor_name = ifd_ioctl_vendor_name,
};
