/* Monotonic time helpers; see timeutil.h. */
#include "common/timeutil.h"

#include <string.h>
#include <sys/timerfd.h>

uint64_t scrm_clock_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t scrm_now_ns(void)
{
    return scrm_clock_ns(CLOCK_MONOTONIC);
}

struct timespec scrm_ns_timespec(uint64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u),
                             .tv_nsec = (long)(ns % 1000000000u)};
}

int scrm_timerfd_at(int fd, uint64_t at_ns)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value = scrm_ns_timespec(at_ns);
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
}

struct timespec scrm_deadline_ms(uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int scrm_cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!rc)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}
