/*
 * Compiler attributes used across scrm, empty where the compiler lacks them.
 *
 *   SCRM_MUST_CHECK  on a function whose result must not be ignored: every function returning a
 *                    status (smc_status, scard_rc, an errno-style int) or an answer (bool found,
 *                    parsed, ...) declared in the internal headers of libsmc, the rm, the daemon
 *                    and common (SMC_MUST_CHECK in libsmc's public headers). Exceptions, by
 *                    design: the scrm_buf writers and scrm_rbuf readers (sticky error, checked once at
 *                    the end) and scrm_cond_timedwait (its loop re-checks predicate and deadline).
 *   SCRM_IGNORE(expr, "why")
 *                    the one way to drop such a result, where dropping it is correct; the reason
 *                    (a string literal) is required. `(void)` is not enough for gcc. Anything
 *                    else reacts: an error path, or a log line saying what failed.
 */
#ifndef SCRM_COMMON_COMPILER_H
#define SCRM_COMMON_COMPILER_H

#if defined(__GNUC__) || defined(__clang__)
#define SCRM_MUST_CHECK __attribute__((warn_unused_result))
#else
#define SCRM_MUST_CHECK
#endif

#define SCRM_IGNORE(expr, why)                       \
    do {                                             \
        (void)sizeof("" why); /* a string literal */ \
        if (expr) {                                  \
        }                                            \
    } while (0)

#endif
