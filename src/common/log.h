/*
 * Logging with named categories and levels.
 *
 * Every message belongs to a category (smc, ioctl, apdu, rm, ipc, ...) and has a level. The level
 * of each category comes from the SCRM_LOG environment variable, e.g.
 *
 *     SCRM_LOG=smc:debug,ipc:info        two categories
 *     SCRM_LOG=debug                     every category except apdu
 *     SCRM_LOG=all:trace                 every category, apdu included
 *
 * The macros test the level before they evaluate their arguments, so a disabled debug line costs
 * one relaxed atomic load. Output goes to stderr (default), to syslog, or to a sink installed by a
 * test. The apdu category is off by default because it shows card data.
 */
#ifndef SCRM_COMMON_LOG_H
#define SCRM_COMMON_LOG_H

#include "common/compiler.h"
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

/* X(name, description): the one list of categories. */
#define SCRM_LOG_CATEGORIES(X)                                  \
    X(core, "general messages")                                 \
    X(smc, "driver library: dispatch, states, card tracking")   \
    X(ioctl, "one line per IOCTL sent by the resource manager") \
    X(proto, "ATR, PPS, T=0 and T=1 engines")                   \
    X(apdu, "APDU bytes (shows card data; off by default)")     \
    X(drv, "reader drivers")                                    \
    X(rm, "resource manager")                                   \
    X(ipc, "socket protocol")                                   \
    X(client, "PC/SC client library")

enum scrm_log_cat {
#define SCRM_LOG_X_ENUM(name, desc) SCRM_LOG_CAT_##name,
    SCRM_LOG_CATEGORIES(SCRM_LOG_X_ENUM)
#undef SCRM_LOG_X_ENUM
        SCRM_LOG_CAT_COUNT
};

/* X(name, value): levels, in increasing verbosity. */
#define SCRM_LOG_LEVELS(X) \
    X(off, 0)              \
    X(error, 1)            \
    X(warn, 2)             \
    X(info, 3)             \
    X(debug, 4)            \
    X(trace, 5)

enum scrm_log_level {
#define SCRM_LOG_X_LEVEL(name, value) SCRM_LOG_##name = (value),
    SCRM_LOG_LEVELS(SCRM_LOG_X_LEVEL)
#undef SCRM_LOG_X_LEVEL
};

enum scrm_log_output { SCRM_LOG_TO_STDERR, SCRM_LOG_TO_SYSLOG };

/* A sink receives every enabled message instead of stderr/syslog (tests use it). */
typedef void (*scrm_log_sink_fn)(void *ctx, enum scrm_log_cat cat, enum scrm_log_level level,
                                 const char *msg);

/* Current level of each category; read through scrm_log_enabled(). */
extern _Atomic int scrm_log_levels[SCRM_LOG_CAT_COUNT];

SCRM_MUST_CHECK static inline bool scrm_log_enabled(enum scrm_log_cat cat,
                                                    enum scrm_log_level level)
{
    return atomic_load_explicit(&scrm_log_levels[cat], memory_order_relaxed) >= (int)level;
}

/*
 * Apply a specification such as "smc:debug,ipc:info". Unknown categories or levels are reported on
 * stderr and skipped; the valid entries still apply. Returns the number of rejected entries.
 */
SCRM_MUST_CHECK int scrm_log_configure(const char *spec);
/* Reset every category to its default, then apply $SCRM_LOG if set. */
void scrm_log_init_from_env(void);
void scrm_log_set_level(enum scrm_log_cat cat, enum scrm_log_level level);
void scrm_log_set_output(enum scrm_log_output output, const char *ident);
void scrm_log_set_sink(scrm_log_sink_fn fn, void *ctx);
/* Prefix stderr lines with the UTC time ("2026-01-02T03:04:05.678Z"), for log files. */
void scrm_log_set_timestamps(bool on);

const char *scrm_log_cat_name(enum scrm_log_cat cat);
const char *scrm_log_level_name(enum scrm_log_level level);

__attribute__((format(printf, 5, 6))) void scrm_log_write(enum scrm_log_cat cat,
                                                          enum scrm_log_level level,
                                                          const char *file, int line,
                                                          const char *fmt, ...);

#define scrm_log(cat, level, ...)                                                         \
    do {                                                                                  \
        if (scrm_log_enabled(SCRM_LOG_CAT_##cat, (level)))                                \
            scrm_log_write(SCRM_LOG_CAT_##cat, (level), __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

#define log_error(cat, ...) scrm_log(cat, SCRM_LOG_error, __VA_ARGS__)
#define log_warn(cat, ...)  scrm_log(cat, SCRM_LOG_warn, __VA_ARGS__)
#define log_info(cat, ...)  scrm_log(cat, SCRM_LOG_info, __VA_ARGS__)
#define log_debug(cat, ...) scrm_log(cat, SCRM_LOG_debug, __VA_ARGS__)
#define log_trace(cat, ...) scrm_log(cat, SCRM_LOG_trace, __VA_ARGS__)

/* A broken invariant: print file, line and the expression, then abort. */
#define scrm_assert(expr) ((expr) ? (void)0 : scrm_assert_fail(#expr, __FILE__, __LINE__, __func__))
_Noreturn void scrm_assert_fail(const char *expr, const char *file, int line, const char *func);

#endif
