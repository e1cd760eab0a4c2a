/*
 * A fake IFD handler (a pcsc-lite reader driver, API v3) for the bridge's unit tests
 * (test_ifd.c): two slots by default, a card per slot that the test inserts and removes, and
 * misbehaviours on demand (garbage lengths, a call that hangs, the device gone). The test drives it
 * through the fake_* functions, found with dlsym on the same library the bridge loaded.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "drivers/ifd/ifd_abi.h"

#define EXPORT __attribute__((visibility("default")))

/* The test's controls and the handler's entry points (what the bridge looks up). */
EXPORT void fake_config(int slots, int thread_safe, int slot_thread_safe);
EXPORT void fake_card(int slot, bool present);
EXPORT void fake_fault(int fault);
EXPORT void fake_stats(int *creates, int *closes, int *transmits, int *powers, int *max_inflight,
                       uint32_t *last_control, unsigned long *last_lun);
EXPORT void fake_reset_inflight(void);
EXPORT ifd_rc IFDHCreateChannelByName(ifd_dword lun, char *device);
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
EXPORT ifd_rc IFDHControl(ifd_dword lun, ifd_dword code, unsigned char *tx, ifd_dword tx_len,
                          unsigned char *rx, ifd_dword rx_len, ifd_dword *returned);

enum fake_fault { FAKE_OK, FAKE_GARBAGE_LEN, FAKE_LONG_ATR, FAKE_HANG, FAKE_GONE, FAKE_ERROR };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
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

static void unlock_mu(void *arg)
{
    (void)arg;
    atomic_fetch_sub(&f.inflight, 1);
    pthread_mutex_unlock(&mu);
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
    pthread_mutex_unlock(&mu);
}

EXPORT void fake_fault(int fault)
{
    pthread_mutex_lock(&mu);
    f.fault = (enum fake_fault)fault;
    if (fault != FAKE_HANG)
        pthread_cond_broadcast(&cv);
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

EXPORT ifd_rc IFDHCreateChannelByName(ifd_dword lun, char *device)
{
    (void)device;
    pthread_mutex_lock(&mu);
    f.creates++;
    f.last_lun_created = lun;
    pthread_mutex_unlock(&mu);
    return IFD_SUCCESS;
}

EXPORT ifd_rc IFDHCreateChannel(ifd_dword lun, ifd_dword channel)
{
    (void)channel;
    return IFDHCreateChannelByName(lun, NULL);
}

EXPORT ifd_rc IFDHCloseChannel(ifd_dword lun)
{
    (void)lun;
    pthread_mutex_lock(&mu);
    f.closes++;
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
    (void)tag;
    (void)len;
    (void)value;
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
    pthread_cleanup_push(unlock_mu, NULL);
    while (f.fault == FAKE_HANG) {
        f.hung = true;
        pthread_cond_wait(&cv, &mu); /* a cancellation point, as a read() in a real driver */
    }
    pthread_cleanup_pop(0);
    enum fake_fault x = f.fault;
    pthread_mutex_unlock(&mu);
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
