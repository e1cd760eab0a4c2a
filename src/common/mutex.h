/*
 * scrm's mutex and condition variable: thin wrappers of pthread's whose lock and unlock carry the
 * thread safety annotations (common/thread_safety.h), so clang's analysis follows every lock.
 * Every mutex of scrm is a scrm_mutex; every condition variable is a scrm_cond on the
 * CLOCK_MONOTONIC clock (timed waits take a scrm_deadline_ms() deadline).
 *
 * Debug builds (NDEBUG not defined) also record the owning thread, so scrm_mutex_assert_held()
 * aborts where a function relies on a lock the analysis cannot see (a lock of another object).
 * Errors of pthread_mutex_init/lock/unlock on a default mutex cannot happen (glibc); the init of
 * a condition variable with its clock attribute can, and returns its error (SCRM_MUST_CHECK).
 */
#ifndef SCRM_COMMON_MUTEX_H
#define SCRM_COMMON_MUTEX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/compiler.h"
#include "common/thread_safety.h"

typedef struct SCRM_CAPABILITY("mutex") scrm_mutex {
    pthread_mutex_t m;
#ifndef NDEBUG
    atomic_uintptr_t owner; /* scrm__thread_id() of the holder, 0 when free */
#endif
} scrm_mutex;

typedef struct scrm_cond {
    pthread_cond_t c;
} scrm_cond;

#ifndef NDEBUG
#define SCRM_MUTEX_INITIALIZER       \
    {                                \
        PTHREAD_MUTEX_INITIALIZER, 0 \
    }
/* The calling thread, as a non-zero integer (glibc's pthread_t is its descriptor's address). */
static inline uintptr_t scrm__thread_id(void)
{
    return (uintptr_t)pthread_self();
}
#else
#define SCRM_MUTEX_INITIALIZER    \
    {                             \
        PTHREAD_MUTEX_INITIALIZER \
    }
#endif

/* A default (non-recursive) mutex; glibc's init of one cannot fail. */
static inline void scrm_mutex_init(scrm_mutex *mu)
{
#ifndef NDEBUG
    atomic_init(&mu->owner, 0);
#endif
    (void)pthread_mutex_init(&mu->m, NULL);
}

static inline void scrm_mutex_destroy(scrm_mutex *mu)
{
    (void)pthread_mutex_destroy(&mu->m);
}

static inline void scrm_mutex_lock(scrm_mutex *mu) SCRM_ACQUIRE(mu) SCRM_NO_THREAD_SAFETY_ANALYSIS
{
    (void)pthread_mutex_lock(&mu->m);
#ifndef NDEBUG
    atomic_store_explicit(&mu->owner, scrm__thread_id(), memory_order_relaxed);
#endif
}

SCRM_MUST_CHECK static inline bool scrm_mutex_trylock(scrm_mutex *mu)
    SCRM_TRY_ACQUIRE(true, mu) SCRM_NO_THREAD_SAFETY_ANALYSIS
{
    if (pthread_mutex_trylock(&mu->m) != 0)
        return false;
#ifndef NDEBUG
    atomic_store_explicit(&mu->owner, scrm__thread_id(), memory_order_relaxed);
#endif
    return true;
}

static inline void scrm_mutex_unlock(scrm_mutex *mu) SCRM_RELEASE(mu) SCRM_NO_THREAD_SAFETY_ANALYSIS
{
#ifndef NDEBUG
    atomic_store_explicit(&mu->owner, 0, memory_order_relaxed);
#endif
    (void)pthread_mutex_unlock(&mu->m);
}

/* Debug builds: abort unless the calling thread holds mu. For the analysis: mu is held from here.
 */
#ifndef NDEBUG
void scrm_mutex_assert_fail(const char *file, int line, const char *func);
#define scrm_mutex_assert_held(mu) scrm__mutex_assert_held((mu), __FILE__, __LINE__, __func__)
static inline void scrm__mutex_assert_held(const scrm_mutex *mu, const char *file, int line,
                                           const char *func) SCRM_ASSERT_CAPABILITY(mu)
{
    if (atomic_load_explicit(&mu->owner, memory_order_relaxed) != scrm__thread_id())
        scrm_mutex_assert_fail(file, line, func);
}
#else
static inline void scrm_mutex_assert_held(const scrm_mutex *mu) SCRM_ASSERT_CAPABILITY(mu)
{
    (void)mu;
}
#endif

/* A condition variable on CLOCK_MONOTONIC. */
SCRM_MUST_CHECK int scrm_cond_init(scrm_cond *cv);

static inline void scrm_cond_destroy(scrm_cond *cv)
{
    (void)pthread_cond_destroy(&cv->c);
}

static inline void scrm_cond_signal(scrm_cond *cv)
{
    (void)pthread_cond_signal(&cv->c);
}

static inline void scrm_cond_broadcast(scrm_cond *cv)
{
    (void)pthread_cond_broadcast(&cv->c);
}

/* Wait for cv; mu is released while waiting and held again on return. */
static inline void scrm_cond_wait(scrm_cond *cv, scrm_mutex *mu) SCRM_REQUIRES(mu)
{
#ifndef NDEBUG
    atomic_store_explicit(&mu->owner, 0, memory_order_relaxed);
#endif
    (void)pthread_cond_wait(&cv->c, &mu->m);
#ifndef NDEBUG
    atomic_store_explicit(&mu->owner, scrm__thread_id(), memory_order_relaxed);
#endif
}

/* As scrm_cond_wait until the absolute CLOCK_MONOTONIC deadline (scrm_deadline_ms()); returns
 * ETIMEDOUT once it passed, 0 otherwise. */
static inline int scrm_cond_timedwait(scrm_cond *cv, scrm_mutex *mu,
                                      const struct timespec *deadline) SCRM_REQUIRES(mu)
{
#ifndef NDEBUG
    atomic_store_explicit(&mu->owner, 0, memory_order_relaxed);
#endif
    int rc = pthread_cond_timedwait(&cv->c, &mu->m, deadline);
#ifndef NDEBUG
    atomic_store_explicit(&mu->owner, scrm__thread_id(), memory_order_relaxed);
#endif
    return rc;
}

#endif
