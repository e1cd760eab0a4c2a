/*
 * Real-time priority for scrmd's critical path; see rtprio.h.
 *
 * Why: with several clients queued on one reader, the worker that gets the card's answer wakes
 * its client with the reply and then sends the next client's APDU. At normal priority the woken
 * client (or anything else) may preempt the worker in between, and the reader idles until the
 * worker runs again; the scheduler also spreads the worker and its card's process over idle CPUs,
 * so every hop wakes a CPU. At SCHED_FIFO 1 the worker keeps its CPU until it blocks on the card,
 * and the reader's next APDU goes out at once (docs/pcsc.md, "Real-time priority", has the
 * figures). A single client gains nothing from it (there is no next APDU to send), which is why
 * a worker is raised only while others wait for its reader; and a thread that keeps its CPU busy
 * (an in-process reader: no device to wait for) gains nothing either and would hold the clients
 * queued on that CPU, which is why a busy thread is not raised.
 */
#include <errno.h>
#include <signal.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "daemon/rtprio.h"

static atomic_bool rt_on;
static atomic_uint rt_demoted, rt_logged;
static _Thread_local bool tl_fifo, tl_unblocked; /* SCHED_FIFO as this file set it */
/* The busy rule's window: its start (monotonic) and the thread's CPU time then, and the verdict
 * of the last window. */
static _Thread_local uint64_t tl_win_ns, tl_win_cpu;
static _Thread_local bool tl_busy;
static _Thread_local volatile sig_atomic_t tl_guarded; /* the guard put it back */

/* SIGXCPU from RLIMIT_RTTIME: the thread that ran too long without blocking gets the signal
 * (the kernel sends it from that thread's tick); it goes back to normal priority. Only a system
 * call, a flag of its own thread and an atomic add: async-signal-safe. */
static void on_xcpu(int sig)
{
    (void)sig;
    struct sched_param sp = {.sched_priority = 0};
    int saved = errno;
    if (syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, &sp) == 0) {
        tl_guarded = 1;
        atomic_fetch_add(&rt_demoted, 1);
    }
    errno = saved;
}

static void log_demotions(void)
{
    unsigned n = atomic_load(&rt_demoted);
    unsigned seen = atomic_load(&rt_logged);
    if (n != seen && atomic_compare_exchange_strong(&rt_logged, &seen, n))
        log_warn(core,
                 "%u thread(s) ran %u ms at real-time priority without blocking and were put back "
                 "to normal priority (%u so far)",
                 n - seen, SCRM_RT_GUARD_MS, n);
}

static int set_fifo(void)
{
    struct sched_param sp = {.sched_priority = sched_get_priority_min(SCHED_FIFO)};
    return sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp);
}

static void set_other(void)
{
    struct sched_param sp = {.sched_priority = 0};
    if (sched_setscheduler(0, SCHED_OTHER, &sp) != 0)
        log_debug(core, "back to normal priority: %s", strerror(errno));
}

bool scrm_rt_setup(bool want)
{
    struct sigaction sa;
    struct rlimit rl;

    if (!want) {
        log_info(core, "real-time priority off (realtime = no)");
        return false;
    }
    if (set_fifo() != 0) {
        log_info(core,
                 "real-time priority not permitted (%s; needs root, CAP_SYS_NICE or "
                 "RLIMIT_RTPRIO >= 1): every thread runs at normal priority",
                 strerror(errno));
        return false;
    }
    set_other(); /* only a probe: the threads that need it enter themselves */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_xcpu;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGXCPU, &sa, NULL) != 0 || getrlimit(RLIMIT_RTTIME, &rl) != 0) {
        log_warn(core, "real-time priority off: cannot install its guard: %s", strerror(errno));
        return false;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)SCRM_RT_GUARD_MS * 1000)
        rl.rlim_cur = (rlim_t)SCRM_RT_GUARD_MS * 1000; /* microseconds; lowering it is allowed */
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max <= rl.rlim_cur) {
        /* the hard limit would kill scrmd before the soft one can demote the thread */
        log_info(core, "real-time priority off: RLIMIT_RTTIME's hard limit is %llu us",
                 (unsigned long long)rl.rlim_max);
        return false;
    }
    if (setrlimit(RLIMIT_RTTIME, &rl) != 0) {
        log_warn(core, "real-time priority off: cannot set RLIMIT_RTTIME: %s", strerror(errno));
        return false;
    }
    atomic_store(&rt_on, true);
    log_info(core,
             "real-time priority on: the loop thread, and a worker while clients queue for its "
             "reader, run SCHED_FIFO 1 (at most %u ms without blocking)",
             SCRM_RT_GUARD_MS);
    return true;
}

void scrm_rt_enter(void)
{
    if (!atomic_load_explicit(&rt_on, memory_order_relaxed))
        return;
    if (!tl_unblocked) { /* the guard's signal must reach this thread */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGXCPU);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        tl_unblocked = true;
    }
    uint64_t now = scrm_now_ns();
    if (tl_guarded) { /* put back by the guard: busy until a window says otherwise */
        tl_guarded = 0;
        tl_fifo = false;
        tl_busy = true;
        tl_win_ns = 0;
        log_demotions();
    }
    if (tl_win_ns == 0) {
        tl_win_ns = now;
        tl_win_cpu = scrm_clock_ns(CLOCK_THREAD_CPUTIME_ID);
    } else if (now - tl_win_ns >= (uint64_t)SCRM_RT_WINDOW_US * 1000) {
        /* Busy: it ran more than SCRM_RT_BUSY_PERCENT of the window (requests of an in-process
         * reader back to back, a burst on the loop thread). Its priority would gain it nothing
         * (it waits for no device) and only keep the clients queued on its CPU from running. */
        uint64_t cpu = scrm_clock_ns(CLOCK_THREAD_CPUTIME_ID);
        tl_busy = (cpu - tl_win_cpu) * 100 > (now - tl_win_ns) * SCRM_RT_BUSY_PERCENT;
        tl_win_ns = now;
        tl_win_cpu = cpu;
    }
    if (tl_busy == !tl_fifo)
        return;
    if (tl_busy) {
        set_other();
        tl_fifo = false;
    } else if (set_fifo() == 0) {
        tl_fifo = true;
    } else {
        log_debug(core, "real-time priority: %s", strerror(errno));
    }
}

void scrm_rt_leave(void)
{
    if (tl_guarded) {
        tl_guarded = 0;
        tl_fifo = false;
        log_demotions();
    }
    if (!tl_fifo)
        return;
    tl_fifo = false;
    set_other();
}

bool scrm_rt_raised(void)
{
    return tl_fifo && !tl_guarded;
}

bool scrm_rt_thread_is_rt(void)
{
    int p = sched_getscheduler(0);
    return p >= 0 && (p & ~SCHED_RESET_ON_FORK) == SCHED_FIFO;
}

unsigned scrm_rt_demotions(void)
{
    return atomic_load(&rt_demoted);
}
