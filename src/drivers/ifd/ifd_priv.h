/* Internals of the IFD-handler bridge (ifd.c, ifd_lib.c). */
#ifndef SCRM_DRIVERS_IFD_PRIV_H
#define SCRM_DRIVERS_IFD_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "drivers/ifd/ifd_abi.h"
#include "drivers/ifd/ifd_devstr.h"
#include "drivers/ifd/ifd_guard.h"
#include "smc/driver.h"

/* One loaded handler library, shared by every unit that names the same path. */
struct ifd_lib {
    char *path;
    void *dl;
    int version; /* 3, or 2 without IFDHCreateChannelByName */
    struct {
        ifd_create_by_name_fn create_by_name;
        ifd_create_fn create;
        ifd_close_fn close;
        ifd_get_caps_fn get_caps;
        ifd_set_caps_fn set_caps;
        ifd_set_proto_fn set_proto; /* optional */
        ifd_power_fn power;
        ifd_transmit_fn transmit;
        ifd_presence_fn presence;
        ifd_control_fn control;   /* v3 */
        ifd_control2_fn control2; /* v2 */
    } f;
    struct ifd_text text;   /* its code, for the watchdog (ifd_guard.h) */
    unsigned refs;          /* units using it (g_lock) */
    bool tainted;           /* a call hung or crashed in it: never unloaded (g_lock) */
    atomic_bool failed;     /* a call crashed in it: never called again, stays registered */
    bool thread_safe_known; /* TAG_IFD_THREAD_SAFE asked (of the first unit) */
    bool thread_safe;       /* readers of this library may be called concurrently */
    pthread_mutex_t lock;   /* the library-wide call lock */
    pthread_mutex_t *
        *slot_locks; /* per slot index, library-wide (THREAD_SAFE 0, SLOT_THREAD_SAFE 1) */
    size_t n_slot_locks;
    struct ifd_lib *next;
};

/* One reader (one reader.conf entry, one USB device): a channel per slot, one reader number. */
struct ifd_unit {
    char id[IFD_ID_MAX + 1];
    struct ifd_devspec spec;
    struct ifd_lib *lib;
    unsigned number; /* the RR of "NAME RR SS", the high word of the Lun */
    unsigned nslots;
    bool slot_thread_safe;
    bool ready;              /* slot 0 is open */
    atomic_bool gone;        /* the device was unplugged (a slot saw IFD_NO_SUCH_DEVICE) */
    pthread_mutex_t lock;    /* the unit-wide call lock */
    struct ifd_slot **slots; /* nslots entries, NULL while closed (g_lock) */
    unsigned refs;           /* g_lock */
    struct ifd_unit *next;
};

/* The arguments and results of the slot's current handler call (slot memory, see ifd.c). */
struct ifd_args {
    int op;
    bool by_name;
    ifd_dword channel, tag, len, action, protocol, code, tx_len, rx_len, returned;
    struct ifd_io_header send, recv;
    uint8_t *buf, *tx, *rx;
};

/* One slot = one libsmc reader. */
struct ifd_slot {
    struct ifd_unit *unit;
    struct smc_reader *r;
    unsigned idx;
    ifd_dword lun;
    char name[IFD_NAME_MAX + 8]; /* "NAME RR SS" */
    pthread_mutex_t *call_lock;
    pthread_mutex_t own_lock; /* when the slot may run alone */

    /* the event thread */
    pthread_t thread;
    bool thread_started;
    ifd_poll_fn poll_fn; /* the handler's polling function (TAG_IFD_POLLING_THREAD_WITH_TIMEOUT) */
    ifd_stop_fn stop_fn;
    bool killable;
    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t cv;
    bool stop;
    int present; /* -1 unknown, 0 absent, 1 present (as last reported to libsmc) */
    bool gone;

    /* the current call (ifd.c, "calls") */
    pthread_mutex_t cm; /* one caller at a time */
    atomic_bool hung;   /* a call was interrupted by the watchdog: out of service */
    struct ifd_watch watch;
    struct ifd_args a;
    char device[IFD_VALUE_MAX]; /* DEVICENAME, the handler's own copy */
    uint8_t cap[256 + 16];
    uint8_t atr[IFD_MAX_ATR + 16];
    uint8_t *rx, *tx; /* IFD_MAX_BUFFER_EXTENDED + guard each */
};

const char *ifd_rc_text(ifd_rc rc, char *buf, size_t cap);

struct ifd_lib *ifd_lib_get(const char *path);
void ifd_lib_put(struct ifd_lib *l);
void ifd_lib_taint(struct ifd_lib *l);
/* A call crashed in the library: never call it again, remove every reader that uses it. */
void ifd_lib_fail(struct ifd_lib *l);
pthread_mutex_t *ifd_lib_slot_lock(struct ifd_lib *l, unsigned slot);

struct ifd_unit *ifd_unit_new(struct ifd_lib *l, const char *id, const struct ifd_devspec *spec);
struct ifd_unit *ifd_unit_find(const char *id);
struct ifd_unit *ifd_unit_sibling_of_lib(const struct ifd_unit *u);
void ifd_unit_put(struct ifd_unit *u);
void ifd_unit_set_slot(struct ifd_unit *u, unsigned idx, struct ifd_slot *s);
void ifd_unit_each_other_slot(struct ifd_unit *u, unsigned self, void (*fn)(struct smc_reader *r));

#endif
