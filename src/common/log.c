/*
 * Logging implementation: category levels, SCRM_LOG parsing, and the three outputs (stderr, syslog,
 * test sink). Messages are formatted into a stack buffer and written with one call so lines from
 * different threads do not interleave.
 */
#include "common/log.h"
#include "common/mutex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <pthread.h>

#define DEFAULT_LEVEL         SCRM_LOG_warn
/* apdu shows card data, so it is off unless asked for. */
#define DEFAULT_LEVEL_OF(cat) ((cat) == SCRM_LOG_CAT_apdu ? SCRM_LOG_off : DEFAULT_LEVEL)

_Atomic int scrm_log_levels[SCRM_LOG_CAT_COUNT] = {
#define SCRM_LOG_X_INIT(name, desc) [SCRM_LOG_CAT_##name] = DEFAULT_LEVEL_OF(SCRM_LOG_CAT_##name),
    SCRM_LOG_CATEGORIES(SCRM_LOG_X_INIT)
#undef SCRM_LOG_X_INIT
};

static const char *const cat_names[] = {
#define SCRM_LOG_X_NAME(name, desc) [SCRM_LOG_CAT_##name] = #name,
    SCRM_LOG_CATEGORIES(SCRM_LOG_X_NAME)
#undef SCRM_LOG_X_NAME
};
_Static_assert(sizeof(cat_names) / sizeof(cat_names[0]) == SCRM_LOG_CAT_COUNT, "category names");

static const struct {
    const char *name;
    int value;
} level_table[] = {
#define SCRM_LOG_X_LNAME(name, value) {#name, value},
    SCRM_LOG_LEVELS(SCRM_LOG_X_LNAME)
#undef SCRM_LOG_X_LNAME
};

static scrm_mutex out_lock = SCRM_MUTEX_INITIALIZER;
static enum scrm_log_output out_kind = SCRM_LOG_TO_STDERR;
static bool stamps;
static scrm_log_sink_fn sink_fn;
static void *sink_ctx;

const char *scrm_log_cat_name(enum scrm_log_cat cat)
{
    return (unsigned)cat < SCRM_LOG_CAT_COUNT ? cat_names[cat] : "?";
}

const char *scrm_log_level_name(enum scrm_log_level level)
{
    for (size_t i = 0; i < sizeof(level_table) / sizeof(level_table[0]); i++)
        if (level_table[i].value == (int)level)
            return level_table[i].name;
    return "?";
}

void scrm_log_set_level(enum scrm_log_cat cat, enum scrm_log_level level)
{
    if ((unsigned)cat < SCRM_LOG_CAT_COUNT)
        atomic_store_explicit(&scrm_log_levels[cat], (int)level, memory_order_relaxed);
}

static int parse_level(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof(level_table) / sizeof(level_table[0]); i++)
        if (strlen(level_table[i].name) == n && strncmp(level_table[i].name, s, n) == 0)
            return level_table[i].value;
    return -1;
}

static int parse_cat(const char *s, size_t n)
{
    for (int i = 0; i < SCRM_LOG_CAT_COUNT; i++)
        if (strlen(cat_names[i]) == n && strncmp(cat_names[i], s, n) == 0)
            return i;
    return -1;
}

/* Apply one "cat:level", "all:level" or "level" entry of length n. Returns 0 or -1. */
static int apply_entry(const char *e, size_t n)
{
    const char *colon = memchr(e, ':', n);
    if (!colon) {
        int lvl = parse_level(e, n);
        if (lvl < 0)
            return -1;
        for (int i = 0; i < SCRM_LOG_CAT_COUNT; i++)
            if (i != SCRM_LOG_CAT_apdu)
                scrm_log_set_level((enum scrm_log_cat)i, (enum scrm_log_level)lvl);
        return 0;
    }
    size_t cn = (size_t)(colon - e);
    int lvl = parse_level(colon + 1, n - cn - 1);
    if (lvl < 0)
        return -1;
    if ((cn == 3 && strncmp(e, "all", 3) == 0) || (cn == 1 && e[0] == '*')) {
        for (int i = 0; i < SCRM_LOG_CAT_COUNT; i++)
            scrm_log_set_level((enum scrm_log_cat)i, (enum scrm_log_level)lvl);
        return 0;
    }
    int cat = parse_cat(e, cn);
    if (cat < 0)
        return -1;
    scrm_log_set_level((enum scrm_log_cat)cat, (enum scrm_log_level)lvl);
    return 0;
}

int scrm_log_configure(const char *spec)
{
    int rejected = 0;
    const char *p = spec;
    while (p && *p) {
        size_t n = strcspn(p, ", ");
        if (n > 0 && apply_entry(p, n) < 0) {
            fprintf(stderr,
                    "scrm: SCRM_LOG: ignoring '%.*s' (expected category:level; levels are "
                    "off, error, warn, info, debug, trace)\n",
                    (int)n, p);
            rejected++;
        }
        p += n;
        p += strspn(p, ", ");
    }
    return rejected;
}

void scrm_log_init_from_env(void)
{
    for (int i = 0; i < SCRM_LOG_CAT_COUNT; i++)
        scrm_log_set_level((enum scrm_log_cat)i, DEFAULT_LEVEL_OF(i));
    const char *spec = getenv("SCRM_LOG");
    if (spec)
        SCRM_IGNORE(scrm_log_configure(spec), "it reports each setting it ignores on stderr");
}

void scrm_log_set_output(enum scrm_log_output output, const char *ident)
{
    scrm_mutex_lock(&out_lock);
    if (output == SCRM_LOG_TO_SYSLOG && out_kind != SCRM_LOG_TO_SYSLOG)
        openlog(ident ? ident : "scrm", LOG_PID, LOG_DAEMON);
    out_kind = output;
    scrm_mutex_unlock(&out_lock);
}

void scrm_log_set_timestamps(bool on)
{
    scrm_mutex_lock(&out_lock);
    stamps = on;
    scrm_mutex_unlock(&out_lock);
}

/* "2026-01-02T03:04:05.678Z " into buf, or "" when time stamps are off. */
static void stamp(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    buf[0] = '\0';
    if (!stamps || clock_gettime(CLOCK_REALTIME, &ts) != 0 || !gmtime_r(&ts.tv_sec, &tm))
        return;
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03ldZ ", ts.tv_nsec / 1000000L);
}

void scrm_log_set_sink(scrm_log_sink_fn fn, void *ctx)
{
    scrm_mutex_lock(&out_lock);
    sink_fn = fn;
    sink_ctx = ctx;
    scrm_mutex_unlock(&out_lock);
}

static int syslog_priority(enum scrm_log_level level)
{
    switch (level) {
    case SCRM_LOG_error: return LOG_ERR;
    case SCRM_LOG_warn: return LOG_WARNING;
    case SCRM_LOG_info: return LOG_INFO;
    default: return LOG_DEBUG;
    }
}

void scrm_log_write(enum scrm_log_cat cat, enum scrm_log_level level, const char *file, int line,
                    const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;

    scrm_mutex_lock(&out_lock);
    if (sink_fn) {
        sink_fn(sink_ctx, cat, level, msg);
    } else if (out_kind == SCRM_LOG_TO_SYSLOG) {
        syslog(syslog_priority(level), "[%s] %s", scrm_log_cat_name(cat), msg);
    } else {
        const char *base = strrchr(file, '/');
        char ts[40];
        stamp(ts, sizeof ts);
        if (level >= SCRM_LOG_debug)
            fprintf(stderr, "%sscrm[%s] %s: %s (%s:%d)\n", ts, scrm_log_cat_name(cat),
                    scrm_log_level_name(level), msg, base ? base + 1 : file, line);
        else
            fprintf(stderr, "%sscrm[%s] %s: %s\n", ts, scrm_log_cat_name(cat),
                    scrm_log_level_name(level), msg);
    }
    scrm_mutex_unlock(&out_lock);
}

void scrm_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "scrm: assertion failed: %s at %s:%d in %s()\n", expr, file, line, func);
    abort();
}
