/* Monotonic time helpers and absolute deadlines for condition-variable waits. */
#ifndef SCRM_COMMON_TIMEUTIL_H
#define SCRM_COMMON_TIMEUTIL_H

#include "common/compiler.h"
#include <stdint.h>
#include <time.h>

/* Monotonic clock in nanoseconds. */
uint64_t scrm_now_ns(void);

/* Any clock in nanoseconds (CLOCK_THREAD_CPUTIME_ID: the calling thread's CPU time); 0 if it
 * cannot be read. */
uint64_t scrm_clock_ns(clockid_t clock);

/* Nanoseconds as a timespec (an absolute time for a timed wait or a timerfd). */
struct timespec scrm_ns_timespec(uint64_t ns);

/* Arm a CLOCK_MONOTONIC timerfd for the absolute time at_ns, or disarm it (0). -1 (errno) on
 * failure. */
SCRM_MUST_CHECK int scrm_timerfd_at(int fd, uint64_t at_ns);

/* Absolute CLOCK_MONOTONIC deadline `ms` milliseconds from now, for pthread_cond_timedwait on a
 * condition variable created with scrm_cond_init_monotonic(). */
struct timespec scrm_deadline_ms(uint32_t ms);

#include <pthread.h>
SCRM_MUST_CHECK int scrm_cond_init_monotonic(pthread_cond_t *cond);

#endif
