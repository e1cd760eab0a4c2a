/*
 * Real-time priority for the threads on scrmd's critical path (docs/pcsc.md, "Real-time
 * priority"): the loop thread, and a worker while it serves a reader other clients queue for.
 *
 * Such a thread runs SCHED_FIFO at priority 1 with SCHED_RESET_ON_FORK, so the threads it starts
 * (another worker, a driver's own thread) start at normal priority. A guard keeps the priority
 * from costing the rest of the machine: RLIMIT_RTTIME's soft limit makes the kernel send SIGXCPU
 * to a thread that has run SCRM_RT_GUARD_MS at real-time priority without blocking, and the
 * handler puts that thread back to normal priority (counted, and logged by the next enter or
 * leave). That is the backstop for a thread stuck in one driver call; between requests,
 * scrm_rt_enter applies a finer rule (busy, below) and raises a thread the guard put back only
 * once it is no longer busy.
 *
 * Everything here is a no-op until scrm_rt_setup(true) has succeeded, so a server run in-process
 * (tests, benchmarks) stays at normal priority unless it asks.
 */
#ifndef SCRM_DAEMON_RTPRIO_H
#define SCRM_DAEMON_RTPRIO_H

#include <stdbool.h>

#define SCRM_RT_GUARD_MS     5
#define SCRM_RT_WINDOW_US    1000
#define SCRM_RT_BUSY_PERCENT 75

/* Turn the feature on (once, before the threads that use it start) if `want` and the process
 * may use SCHED_FIFO (root, CAP_SYS_NICE or RLIMIT_RTPRIO ≥ 1); installs the guard. Logs what
 * it decided. Returns whether it is on. */
bool scrm_rt_setup(bool want);

/* The calling thread to real-time priority (no-op if off, or already there), unless it is busy:
 * over its last window of at least SCRM_RT_WINDOW_US between two calls it ran more than
 * SCRM_RT_BUSY_PERCENT of the time (or the guard has put it back and no window has passed
 * since). A busy thread goes back to normal priority until a window shows it waiting again: its
 * priority would gain it nothing (it waits for no device) and keep the clients queued on its CPU
 * from running. A clock read per call, a CPU-time read per window: cheap enough for every turn
 * of a loop and every request. */
void scrm_rt_enter(void);

/* The calling thread back to normal priority, if scrm_rt_enter put it at real-time. */
void scrm_rt_leave(void);

/* Did scrm_rt_enter put the calling thread at real-time priority (and the guard not put it
 * back)? No system call. */
bool scrm_rt_raised(void);

/* Is the calling thread at real-time priority now (per the kernel)? */
bool scrm_rt_thread_is_rt(void);

/* Threads the guard has put back to normal priority so far. */
unsigned scrm_rt_demotions(void);

#endif
