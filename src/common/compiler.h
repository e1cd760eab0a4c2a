/*
 * Compiler attributes used across scrm, empty where the compiler lacks them.
 *
 *   SCRM_MUST_CHECK  on a function whose result must not be ignored: every function returning a
 *                    status (smc_status, a SCARD_* code, an errno-style int). A caller that
 *                    really has nothing to do with a failure says so: `(void)` is not enough for
 *                    gcc, so it tests the result and logs or counts it.
 */
#ifndef SCRM_COMMON_COMPILER_H
#define SCRM_COMMON_COMPILER_H

#if defined(__GNUC__) || defined(__clang__)
#define SCRM_MUST_CHECK __attribute__((warn_unused_result))
#else
#define SCRM_MUST_CHECK
#endif

#endif
