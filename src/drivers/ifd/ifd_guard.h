/*
 * Guarded handler calls (ifd_guard.c): an IFD handler is called on the caller's own thread, with
 * a recovery point around the call. A crash in the handler (SIGSEGV, SIGBUS, SIGILL, SIGFPE on
 * that thread, during that call) and a call the watchdog finds older than its bound both return
 * to the recovery point instead of taking the daemon down or holding its thread for ever.
 * docs/ifd.md, "Devices that leave, handlers that misbehave", says what follows from each.
 */
#ifndef SCRM_DRIVERS_IFD_GUARD_H
#define SCRM_DRIVERS_IFD_GUARD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "drivers/ifd/ifd_abi.h"

/* The code range of a loaded handler library (its executable segments, read at load time). */
struct ifd_text {
    uintptr_t lo, hi;
};

/* The watchdog's view of one slot's calls (embedded in the slot, registered for its life). */
struct ifd_watch {
    pthread_mutex_t mu; /* guards what follows */
    bool active;        /* a call is running */
    bool fired;         /* the current call passed its deadline */
    bool told;          /* "cannot be interrupted" logged for the current call */
    uint64_t deadline_ns, retry_ns;
    pthread_t thread; /* the calling thread */
    struct ifd_tls *tls;
    uint64_t seq;     /* the caller's call number (its thread-local counter) */
    const char *what; /* the call, for the watchdog's log line */
    const char *lib;  /* the library's path */
    const char *name; /* the reader's name */
    uint32_t limit_ms;
    struct ifd_watch *prev, *next; /* the registry (the watchdog's lock) */
};

enum ifd_call_end { IFD_CALL_RETURNED, IFD_CALL_HUNG, IFD_CALL_CRASHED };

/* What a crashed call died of. */
struct ifd_fault {
    int sig;
    uintptr_t addr;
};

typedef ifd_rc (*ifd_call_fn)(void *arg);

/* Install the signal handlers (once; later calls do nothing). False if sigaction failed. */
bool ifd_guard_init(void);

void ifd_watch_init(struct ifd_watch *w, const char *lib, const char *name);
/* Register (unregister) with the watchdog; register starts it the first time. */
bool ifd_watch_add(struct ifd_watch *w);
void ifd_watch_remove(struct ifd_watch *w);

/* Run fn(arg) on this thread within `limit_ms` (0 = no bound) for `w` (NULL = crashes only, no
 * bound). `text` is the handler's code: the watchdog interrupts a late call only while it runs
 * there or sits in an interruptible system call (not in a lock of the C library). *rc is fn's
 * result when it returned. */
enum ifd_call_end ifd_guard_call(struct ifd_watch *w, uint32_t limit_ms, const char *what,
                                 const struct ifd_text *text, ifd_call_fn fn, void *arg, ifd_rc *rc,
                                 struct ifd_fault *fault);

/* The host symbols (log_msg, log_xxd) mark the time the handler spends in scrm's own code: a
 * crash there is scrm's, not the handler's, and is not caught. */
void ifd_guard_host_enter(void);
void ifd_guard_host_leave(void);

/* The executable segments of the library that holds `sym` (any of its symbols). */
struct ifd_text ifd_text_of(const void *sym);

const char *ifd_signal_name(int sig);

/* Is pc just after the system call instruction of one of the C library's I/O wrappers (read,
 * select, poll...), where the watchdog may take a thread out of a handler call? (After
 * ifd_guard_init; exposed for the tests.) */
bool ifd_guard_after_io_syscall(const void *pc);

#endif
