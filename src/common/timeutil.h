/* Monotonic time helpers and absolute deadlines for condition-variable waits. */
#ifndef SCRM_COMMON_TIMEUTIL_H
#define SCRM_COMMON_TIMEUTIL_H

#include "common/compiler.h"
#include <stdint.h>
#include <time.h>

/* Monotonic clock in nanoseconds. */
uint64_t scrm_now_ns(void);

/* Absolute CLOCK_MONOTONIC deadline `ms` milliseconds from now, for pthread_cond_timedwait on a
 * condition variable created with scrm_cond_init_monotonic(). */
struct timespec scrm_deadline_ms(uint32_t ms);

#include <pthread.h>
SCRM_MUST_CHECK int scrm_cond_init_monotonic(pthread_cond_t *cond);

#endif
