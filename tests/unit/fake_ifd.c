/*
 * A fake IFD handler (a pcsc-lite reader driver, API v3) for the bridge's unit tests
 * (test_ifd.c): two slots by default, a card per slot that the test inserts and removes, and
 * misbehaviours on demand (garbage lengths, a call that hangs in a system call or spins in its
 * own code, a call that crashes, the device gone). The test drives it through the fake_*
 * functions, found with dlsym on the same library the bridge loaded. Built three times
 * (tests/unit/meson.build): fake_ifd; fake_ifd_crash, the same code as a separate library the
 * crash test may ruin; and fake_ifd_v2 (-DFAKE_V2: API v2, no IFDHCreateChannelByName and the
 * v2 IFDHControl).
 * Optional behaviours (fake_mode): a polling function (TAG_IFD_POLLING_THREAD_WITH_TIMEOUT) that
 * is KILLABLE and blocks in read() until a card event, and TAG_IFD_DEVICE_REMOVED.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "drivers/ifd/ifd_abi.h"

#define EXPORT __attribute__((visibility("default")))

/* The test's controls and the handler's entry points (what the bridge looks up). */
EXPORT void fake_config(int slots, int thread_safe, int slot_thread_safe);
EXPORT void fake_card(int slot, bool present);
EXPORT void fake_fault(int fault);
EXPORT void fake_stats(int *creates, int *closes, int *transmits, int *powers, int *max_inflight,
                       uint32_t *last_control, unsigned long *last_lun);
EXPORT void fake_reset_inflight(void);
EXPORT void fake_mode(int killable_poll, int device_removed);
EXPORT void fake_poll_stats(int *polls_started, int *polls_cancelled, unsigned long *last_timeout,
                            int *removed_sets, int *closes_after_removed);
#ifndef FAKE_V2
EXPORT ifd_rc IFDHCreateChannelByName(ifd_dword lun, char *device);
#endif
EXPORT ifd_rc IFDHCreateChannel(ifd_dword lun, ifd_dword channel);
EXPORT ifd_rc IFDHCloseChannel(ifd_dword lun);
EXPORT ifd_rc IFDHGetCapabilities(ifd_dword lun, ifd_dword tag, ifd_dword *len,
                                  unsigned char *value);
EXPORT ifd_rc IFDHSetCapabilities(ifd_dword lun, ifd_dword tag, ifd_dword len,
                                  unsigned char *value);
EXPORT ifd_rc IFDHSetProtocolParameters(ifd_dword lun, ifd_dword protocol, unsigned char flags,
                                        unsigned char pts1, unsigned char pts2, unsigned char pts3);
EXPORT ifd_rc IFDHPowerICC(ifd_dword lun, ifd_dword action, unsigned char *out, ifd_dword *len);
EXPORT ifd_rc IFDHTransmitToICC(ifd_dword lun, struct ifd_io_header send, unsigned char *tx,
                                ifd_dword tx_len, unsigned char *rx, ifd_dword *rx_len,
                                struct ifd_io_header *recv);
EXPORT ifd_rc IFDHICCPresence(ifd_dword lun);
#ifdef FAKE_V2
EXPORT ifd_rc IFDHControl(ifd_dword lun, unsigned char *tx, ifd_dword tx_len, unsigned char *rx,
                          ifd_dword *rx_len);
#else
EXPORT ifd_rc IFDHControl(ifd_dword lun, ifd_dword code, unsigned char *tx, ifd_dword tx_len,
                          unsigned char *rx, ifd_dword rx_len, ifd_dword *returned);
#endif

enum fake_fault {
    FAKE_OK,
    FAKE_GARBAGE_LEN,
    FAKE_LONG_ATR,
    FAKE_HANG, /* IFDHTransmitToICC blocks in read() on a pipe nobody writes */
    FAKE_GONE,
    FAKE_ERROR,
    FAKE_SPIN,    /* IFDHTransmitToICC loops in its own code */
    FAKE_CRASH,   /* IFDHTransmitToICC writes through a null pointer */
    FAKE_IO_SPIN, /* IFDHTransmitToICC loops on read() of a line that hung up */
};

static struct {
    int killable_poll, device_removed;
    int polls_started;
    atomic_int polls_cancelled; /* written by a cleanup handler during cancellation: atomic, as
                                   ThreadSanitizer does not see locks taken there */
    unsigned long last_timeout;
    int removed_sets, closes_after_removed;
    int event_pipe[4][2]; /* per slot: a byte per card change, for the polling function */
    int hang_pipe[2];
} fm = {.event_pipe = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}}, .hang_pipe = {-1, -1}};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int slots, thread_safe, slot_thread_safe;
    bool present[4], powered[4];
    enum fake_fault fault;
    uint32_t last_control;
    ifd_dword last_lun_created;
    int creates, closes, transmits, powers;
    atomic_int inflight, max_inflight;
    bool hung;
} f = {.slots = 2, .thread_safe = 1, .slot_thread_safe = 1};

static const unsigned char atr[] = {0x3B, 0x80, 0x80, 0x01, 0x01};

static void enter(void)
{
    int n = atomic_fetch_add(&f.inflight, 1) + 1;
    int m = atomic_load(&f.max_inflight);
    while (n > m && !atomic_compare_exchange_weak(&f.max_inflight, &m, n)) {
    }
}

static void leave(void)
{
    atomic_fetch_sub(&f.inflight, 1);
}

static int slot_of(ifd_dword lun)
{
    return (int)(lun & 0xFFFF) % 4;
}

/* ---- control from the test ---- */

EXPORT void fake_config(int slots, int thread_safe, int slot_thread_safe)
{
    pthread_mutex_lock(&mu);
    f.slots = slots;
    f.thread_safe = thread_safe;
    f.slot_thread_safe = slot_thread_safe;
    pthread_mutex_unlock(&mu);
}

EXPORT void fake_card(int slot, bool present)
{
    pthread_mutex_lock(&mu);
    f.present[slot] = present;
    if (!present)
        f.powered[slot] = false;
    int w = fm.killable_poll ? fm.event_pipe[slot][1] : -1;
    pthread_mutex_unlock(&mu);
    if (w >= 0 && write(w, "e", 1) != 1)
        return;
}

EXPORT void fake_mode(int killable_poll, int device_removed)
{
    pthread_mutex_lock(&mu);
    fm.killable_poll = killable_poll;
    fm.device_removed = device_removed;
    for (int i = 0; killable_poll && i < 4; i++)
        if (fm.event_pipe[i][0] < 0 && pipe(fm.event_pipe[i]) != 0)
            fm.event_pipe[i][0] = fm.event_pipe[i][1] = -1;
    pthread_mutex_unlock(&mu);
}

EXPORT void fake_poll_stats(int *polls_started, int *polls_cancelled, unsigned long *last_timeout,
                            int *removed_sets, int *closes_after_removed)
{
    pthread_mutex_lock(&mu);
    *polls_started = fm.polls_started;
    *polls_cancelled = atomic_load(&fm.polls_cancelled);
    *last_timeout = fm.last_timeout;
    *removed_sets = fm.removed_sets;
    *closes_after_removed = fm.closes_after_removed;
    pthread_mutex_unlock(&mu);
}

static void poll_cancelled(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fm.polls_cancelled, 1);
}

/* The polling function: returns when a card event arrives (a byte in the event pipe) or after
 * the timeout; killable (read() is a cancellation point). */
static ifd_rc poll_events(ifd_dword lun, int timeout_ms)
{
    pthread_mutex_lock(&mu);
    fm.polls_started++;
    fm.last_timeout = (unsigned long)timeout_ms;
    int fd = fm.event_pipe[slot_of(lun)][0];
    pthread_mutex_unlock(&mu);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    pthread_cleanup_push(poll_cancelled, NULL);
    if (poll(&p, 1, timeout_ms) == 1) {
        char c;
        if (read(fd, &c, 1) != 1)
            c = 0;
    }
    pthread_cleanup_pop(0);
    return IFD_SUCCESS;
}

EXPORT void fake_fault(int fault)
{
    pthread_mutex_lock(&mu);
    f.fault = (enum fake_fault)fault;
    pthread_mutex_unlock(&mu);
}

EXPORT void fake_stats(int *creates, int *closes, int *transmits, int *powers, int *max_inflight,
                       uint32_t *last_control, unsigned long *last_lun)
{
    pthread_mutex_lock(&mu);
    *creates = f.creates;
    *closes = f.closes;
    *transmits = f.transmits;
    *powers = f.powers;
    *max_inflight = atomic_load(&f.max_inflight);
    *last_control = f.last_control;
    *last_lun = f.last_lun_created;
    pthread_mutex_unlock(&mu);
}

EXPORT void fake_reset_inflight(void)
{
    atomic_store(&f.inflight, 0); /* a call the bridge interrupted never left */
    atomic_store(&f.max_inflight, 0);
}

static enum fake_fault fault(void)
{
    pthread_mutex_lock(&mu);
    enum fake_fault x = f.fault;
    pthread_mutex_unlock(&mu);
    return x;
}

/* ---- the handler ---- */

#ifndef FAKE_V2
EXPORT ifd_rc IFDHCreateChannelByName(ifd_dword lun, char *device)
{
    (void)device;
    pthread_mutex_lock(&mu);
    f.creates++;
    f.last_lun_created = lun;
    pthread_mutex_unlock(&mu);
    return IFD_SUCCESS;
}
#endif

EXPORT ifd_rc IFDHCreateChannel(ifd_dword lun, ifd_dword channel)
{
    (void)channel;
    pthread_mutex_lock(&mu);
    f.creates++;
    f.last_lun_created = lun;
    pthread_mutex_unlock(&mu);
    return IFD_SUCCESS;
}

EXPORT ifd_rc IFDHCloseChannel(ifd_dword lun)
{
    (void)lun;
    pthread_mutex_lock(&mu);
    f.closes++;
    if (fm.removed_sets)
        fm.closes_after_removed++;
    pthread_mutex_unlock(&mu);
    return IFD_SUCCESS;
}

EXPORT ifd_rc IFDHGetCapabilities(ifd_dword lun, ifd_dword tag, ifd_dword *len,
                                  unsigned char *value)
{
    (void)lun;
    int one = -1;
    switch (tag) {
    case IFD_TAG_SLOTS_NUMBER: one = f.slots; break;
    case IFD_TAG_THREAD_SAFE: one = f.thread_safe; break;
    case IFD_TAG_SLOT_THREAD_SAFE: one = f.slot_thread_safe; break;
    case IFD_TAG_SIMULTANEOUS_ACCESS: one = 4; break;
    case IFD_TAG_POLLING_THREAD_KILLABLE: one = fm.killable_poll; break;
    case IFD_TAG_DEVICE_REMOVED: one = fm.device_removed; break;
    case IFD_TAG_POLLING_THREAD_WITH_TIMEOUT:
        if (!fm.killable_poll)
            return IFD_ERROR_TAG;
        if (*len < sizeof(void *))
            return IFD_ERROR_INSUFFICIENT_BUFFER;
        {
            ifd_poll_fn fn = poll_events;
            memcpy(value, &fn, sizeof(fn));
        }
        *len = sizeof(void *);
        return IFD_SUCCESS;
    case 0x00010100: /* SCARD_ATTR_VENDOR_NAME */
        if (*len < 10)
            return IFD_ERROR_INSUFFICIENT_BUFFER;
        memcpy(value, "FakeVendor", 10);
        *len = fault() == FAKE_GARBAGE_LEN ? *len + 100 : 10;
        return IFD_SUCCESS;
    default: return IFD_ERROR_TAG;
    }
    if (*len < 1)
        return IFD_ERROR_INSUFFICIENT_BUFFER;
    value[0] = (unsigned char)one;
    *len = 1;
    return IFD_SUCCESS;
}

EXPORT ifd_rc IFDHSetCapabilities(ifd_dword lun, ifd_dword tag, ifd_dword len, unsigned char *value)
{
    (void)lun;
    if (tag == IFD_TAG_DEVICE_REMOVED && len == 1 && value[0] == 1) {
        pthread_mutex_lock(&mu);
        bool ok = fm.device_removed;
        if (ok)
            fm.removed_sets++;
        pthread_mutex_unlock(&mu);
        return ok ? IFD_SUCCESS : IFD_ERROR_TAG;
    }
    return IFD_NOT_SUPPORTED;
}

EXPORT ifd_rc IFDHSetProtocolParameters(ifd_dword lun, ifd_dword protocol, unsigned char flags,
                                        unsigned char pts1, unsigned char pts2, unsigned char pts3)
{
    (void)lun;
    (void)flags;
    (void)pts1;
    (void)pts2;
    (void)pts3;
    return protocol == 2 || protocol == 1 ? IFD_SUCCESS : IFD_PROTOCOL_NOT_SUPPORTED;
}

EXPORT ifd_rc IFDHPowerICC(ifd_dword lun, ifd_dword action, unsigned char *out, ifd_dword *len)
{
    int s = slot_of(lun);
    enter();
    pthread_mutex_lock(&mu);
    f.powers++;
    bool present = f.present[s];
    if (present)
        f.powered[s] = action != IFD_POWER_DOWN;
    pthread_mutex_unlock(&mu);
    ifd_rc rc = IFD_SUCCESS;
    if (!present) {
        rc = IFD_ICC_NOT_PRESENT;
    } else if (action != IFD_POWER_DOWN) {
        if (*len < sizeof(atr)) {
            rc = IFD_ERROR_INSUFFICIENT_BUFFER;
        } else {
            memcpy(out, atr, sizeof(atr));
            *len = fault() == FAKE_LONG_ATR ? 40 : sizeof(atr);
        }
    }
    leave();
    return rc;
}

EXPORT ifd_rc IFDHTransmitToICC(ifd_dword lun, struct ifd_io_header send, unsigned char *tx,
                                ifd_dword tx_len, unsigned char *rx, ifd_dword *rx_len,
                                struct ifd_io_header *recv)
{
    (void)send;
    (void)tx;
    (void)tx_len;
    int s = slot_of(lun);
    enter();
    pthread_mutex_lock(&mu);
    f.transmits++;
    bool present = f.present[s];
    enum fake_fault x = f.fault;
    if (x == FAKE_HANG && fm.hang_pipe[0] < 0 && pipe(fm.hang_pipe) != 0)
        fm.hang_pipe[0] = fm.hang_pipe[1] = -1;
    int hang_fd = fm.hang_pipe[0];
    f.hung |= x == FAKE_HANG;
    pthread_mutex_unlock(&mu);
    if (x == FAKE_HANG) { /* as a driver waiting for a reader that never answers */
        char c;
        while (read(hang_fd, &c, 1) != 1) {
        }
    } else if (x == FAKE_SPIN) { /* as a driver looping on a line that is gone */
        static volatile unsigned long spins;
        for (;;)
            spins++;
    } else if (x == FAKE_IO_SPIN) { /* as libccid on a serial port whose other end is gone */
        int dead[2] = {-1, -1};
        if (pipe(dead) == 0)
            close(dead[1]); /* read() returns 0 at once, for ever */
        char c;
        while (read(dead[0], &c, 1) <= 0) { /* nearly all of it in the C library or the kernel */
        }
    } else if (x == FAKE_CRASH) { /* a real fault (a null store would be caught by UBSan) */
        volatile char *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        page[0] = 1;
    }
    ifd_rc rc = IFD_SUCCESS;
    if (x == FAKE_GONE) {
        rc = IFD_NO_SUCH_DEVICE;
    } else if (!present) {
        rc = IFD_ICC_NOT_PRESENT;
    } else {
        rx[0] = 0x90;
        rx[1] = 0x00;
        *rx_len = x == FAKE_GARBAGE_LEN ? *rx_len + 1000 : 2;
        recv->protocol = 1;
    }
    leave();
    return rc;
}

EXPORT ifd_rc IFDHICCPresence(ifd_dword lun)
{
    int s = slot_of(lun);
    enum fake_fault x = fault();
    if (x == FAKE_GONE)
        return IFD_NO_SUCH_DEVICE;
    if (x == FAKE_ERROR)
        return IFD_COMMUNICATION_ERROR;
    pthread_mutex_lock(&mu);
    bool present = f.present[s];
    pthread_mutex_unlock(&mu);
    return present ? IFD_ICC_PRESENT : IFD_ICC_NOT_PRESENT;
}

#ifdef FAKE_V2
/* API v2: no control code (the bridge passes none); the answer echoes what it was sent. */
EXPORT ifd_rc IFDHControl(ifd_dword lun, unsigned char *tx, ifd_dword tx_len, unsigned char *rx,
                          ifd_dword *rx_len)
{
    (void)lun;
    pthread_mutex_lock(&mu);
    f.last_control = 2;
    pthread_mutex_unlock(&mu);
    if (*rx_len < tx_len)
        return IFD_ERROR_INSUFFICIENT_BUFFER;
    memcpy(rx, tx, tx_len);
    *rx_len = tx_len;
    return IFD_SUCCESS;
}
#else
EXPORT ifd_rc IFDHControl(ifd_dword lun, ifd_dword code, unsigned char *tx, ifd_dword tx_len,
                          unsigned char *rx, ifd_dword rx_len, ifd_dword *returned)
{
    (void)lun;
    (void)tx;
    (void)tx_len;
    pthread_mutex_lock(&mu);
    f.last_control = (uint32_t)code;
    pthread_mutex_unlock(&mu);
    if (rx_len < 4)
        return IFD_ERROR_INSUFFICIENT_BUFFER;
    for (int i = 0; i < 4; i++)
        rx[i] = (unsigned char)(code >> (24 - 8 * i));
    *returned = fault() == FAKE_GARBAGE_LEN ? rx_len + 5 : 4;
    return IFD_SUCCESS;
}
#endif
