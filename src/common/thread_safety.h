/*
 * Clang's thread safety analysis (-Wthread-safety), behind macros that vanish for other
 * compilers. The clang build (build/clang, compiled by `make check`) turns every violation into
 * an error; gcc builds see plain declarations.
 *
 *   SCRM_CAPABILITY(name)      on a lock type (scrm_mutex in common/mutex.h)
 *   SCRM_GUARDED_BY(m)         on a field or variable: read and written only with m held
 *   SCRM_PT_GUARDED_BY(m)      on a pointer: the data it points to is guarded by m
 *   SCRM_REQUIRES(m...)        on a function: the caller holds m (the *_locked functions)
 *   SCRM_EXCLUDES(m...)        on a function: the caller must not hold m (it takes m itself)
 *   SCRM_ACQUIRE(m...)         the function returns with m held
 *   SCRM_RELEASE(m...)         the function returns with m released
 *   SCRM_TRY_ACQUIRE(ok, m...) m held when the function returns `ok`
 *   SCRM_ASSERT_CAPABILITY(m)  the function checks (asserts) that m is held
 *   SCRM_RETURN_CAPABILITY(m)  the function returns a reference to m
 *   SCRM_NO_THREAD_SAFETY_ANALYSIS  the function is not checked (say why next to it)
 *
 * Field guards: clang accepts guarded_by on a C struct member only from clang 19 on (Debian 12
 * has clang 14, which rejects a member name there). The annotations are written on the fields
 * whose lock is a member of the same struct, declared before them, and checked only when
 * SCRM_TSA_FIELDS is defined (clang >= 19: meson setup ... -Dc_args=-DSCRM_TSA_FIELDS). A field
 * guarded by another object's lock keeps its rule in its comment, and the functions relying on it
 * assert the lock (scrm_mutex_assert_held). What clang 14 checks in every clang build: the
 * REQUIRES / EXCLUDES / ACQUIRE / RELEASE contracts of functions, and that every lock taken on a
 * path is released on it.
 */
#ifndef SCRM_COMMON_THREAD_SAFETY_H
#define SCRM_COMMON_THREAD_SAFETY_H

#if defined(__clang__) && defined(__has_attribute)
#if __has_attribute(capability)
#define SCRM_TSA(x) __attribute__((x))
#endif
#endif
#ifndef SCRM_TSA
#define SCRM_TSA(x)
#endif

#define SCRM_CAPABILITY(name) SCRM_TSA(capability(name))
#ifdef SCRM_TSA_FIELDS
#define SCRM_GUARDED_BY(m)    SCRM_TSA(guarded_by(m))
#define SCRM_PT_GUARDED_BY(m) SCRM_TSA(pt_guarded_by(m))
#else
#define SCRM_GUARDED_BY(m)
#define SCRM_PT_GUARDED_BY(m)
#endif
#define SCRM_REQUIRES(...)             SCRM_TSA(requires_capability(__VA_ARGS__))
#define SCRM_EXCLUDES(...)             SCRM_TSA(locks_excluded(__VA_ARGS__))
#define SCRM_ACQUIRE(...)              SCRM_TSA(acquire_capability(__VA_ARGS__))
#define SCRM_RELEASE(...)              SCRM_TSA(release_capability(__VA_ARGS__))
#define SCRM_TRY_ACQUIRE(...)          SCRM_TSA(try_acquire_capability(__VA_ARGS__))
#define SCRM_ASSERT_CAPABILITY(m)      SCRM_TSA(assert_capability(m))
#define SCRM_RETURN_CAPABILITY(m)      SCRM_TSA(lock_returned(m))
#define SCRM_NO_THREAD_SAFETY_ANALYSIS SCRM_TSA(no_thread_safety_analysis)

#endif
