/*
 * The one wrapper through which the resource manager sends every IOCTL: it times the request, and
 * reports it to the trace callback and, when category `ioctl` is at info, to the log as exactly
 *
 *     ioctl <reader name> <IOCTL_NAME> [<argument name>] -> <STATUS_NAME> (<µs> µs)
 *
 * e.g. "ioctl SimVendor SimReader 0 IOCTL_SMARTCARD_POWER SCARD_COLD_RESET -> STATUS_SUCCESS
 * (41 µs)". The argument is the power command, the attribute id, the protocol mask (bit names
 * joined by '|') or, for vendor IOCTLs and pcsc-lite control codes, the driver's name of the code
 * with the code in hex ("SIM_IOCTL_INSERT (0x00312004)", "FEATURE_VERIFY_PIN_DIRECT
 * (0x42330006)"; the hex code alone when the driver names none). A tracking request that pends is reported
 * once when posted (-> STATUS_PENDING) and once when it completes (time since it was posted).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "rm/internal.h"

/* Protocol mask as "SCARD_PROTOCOL_T0|SCARD_PROTOCOL_T1". */
static void mask_name(uint32_t mask, char *buf, size_t cap)
{
    static const uint32_t bits[] = {SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_PROTOCOL_RAW,
                                    SCARD_PROTOCOL_DEFAULT};
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
        if (!(mask & bits[i]))
            continue;
        int w = snprintf(buf + n, cap - n, "%s%s", n ? "|" : "", smc_protocol_name(bits[i]));
        if (w < 0 || (size_t)w >= cap - n)
            return;
        n += (size_t)w;
        mask &= ~bits[i];
    }
    if (mask || n == 0)
        snprintf(buf + n, cap - n, "%s0x%08X", n ? "|" : "", mask);
}

/* The argument name of a request, or NULL. A vendor code is shown as the driver names it, with
 * the code in hex: "SIM_IOCTL_INSERT (0x00312004)". */
static const char *arg_name(const struct smc_handle *h, uint32_t code, const void *in,
                            size_t in_len, char *buf, size_t cap)
{
    if ((SMC_IOCTL_IS_VENDOR(code) || SMC_IOCTL_IS_PCSC_VENDOR(code)) &&
        code != IOCTL_SMARTCARD_GET_FEATURE_REQUEST) {
        const char *name = smc_ioctl_vendor_name(h, code);
        if (name)
            snprintf(buf, cap, "%s (0x%08X)", name, code);
        else
            snprintf(buf, cap, "0x%08X", code);
        return buf;
    }
    if (in_len < 4 || !in)
        return NULL;
    uint32_t v = scrm_get_u32le(in);
    const char *name = NULL;
    switch (code) {
    case IOCTL_SMARTCARD_POWER: name = smc_power_name(v); break;
    case IOCTL_SMARTCARD_GET_ATTRIBUTE:
    case IOCTL_SMARTCARD_SET_ATTRIBUTE: name = smc_attr_name(v); break;
    case IOCTL_SMARTCARD_SET_PROTOCOL: mask_name(v, buf, cap); return buf;
    default: return NULL;
    }
    if (!name) {
        snprintf(buf, cap, "0x%08X", v);
        return buf;
    }
    return name;
}

/* The DWORD result worth showing to a trace callback. */
static bool out_value(uint32_t code, const void *in, const void *out, size_t returned,
                      uint32_t *value)
{
    if (returned != 4 || !out)
        return false;
    if (code == IOCTL_SMARTCARD_GET_STATE || code == IOCTL_SMARTCARD_SET_PROTOCOL) {
        *value = scrm_get_u32le(out);
        return true;
    }
    if (code == IOCTL_SMARTCARD_GET_ATTRIBUTE && in &&
        smc_attr_format(scrm_get_u32le(in)) == SMC_AF_DWORD) {
        *value = scrm_get_u32le(out);
        return true;
    }
    return false;
}

static void report(struct rm_reader *r, struct rm_trace_entry *e)
{
    const char *reader = r->name[0] ? r->name : r->device;
    char line[160];
    snprintf(line, sizeof(line), "%s%s%s -> %s", e->ioctl, e->arg ? " " : "", e->arg ? e->arg : "",
             e->status_name);
    e->reader = reader;
    e->line = line;
    if (scrm_log_enabled(SCRM_LOG_CAT_ioctl, SCRM_LOG_info)) {
        /* The log line: wall-clock time, "completed:" for a pending request's completion, and
         * the result GET_STATE and SET_PROTOCOL return. */
        char when[32], result[64] = "";
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(when, sizeof when, "%H:%M:%S", &tm);
        snprintf(when + n, sizeof when - n, ".%06ld", ts.tv_nsec / 1000L);
        if (e->has_value && e->code == IOCTL_SMARTCARD_GET_STATE)
            snprintf(result, sizeof result, " = %s",
                     smc_state_name(e->value) ? smc_state_name(e->value) : "?");
        else if (e->has_value && e->code == IOCTL_SMARTCARD_SET_PROTOCOL)
            snprintf(result, sizeof result, " = %s",
                     smc_protocol_name(e->value) ? smc_protocol_name(e->value) : "?");
        log_info(ioctl, "ioctl [%s] %s %s%s%s (%llu \xC2\xB5s)", when, reader,
                 e->completion ? "completed: " : "", line, result, (unsigned long long)e->usec);
    }

    struct rm *rm = r->rm;
    scrm_mutex_lock(&rm->trace_lock);
    rm_trace_fn fn = rm->trace_fn;
    void *user = rm->trace_user;
    scrm_mutex_unlock(&rm->trace_lock);
    if (fn)
        fn(user, e);
    e->line = NULL; /* it pointed into this frame */
}

/* Is anyone looking at IOCTLs (a trace callback, or the ioctl log at info)? Most of the time
 * nobody: then an IOCTL formats nothing and takes no lock for its report. */
static bool watched(const struct rm_reader *r)
{
    return atomic_load_explicit(&r->rm->tracing, memory_order_relaxed) ||
           scrm_log_enabled(SCRM_LOG_CAT_ioctl, SCRM_LOG_info);
}

static void fill_names(struct rm_trace_entry *e, uint32_t code, smc_status st)
{
    e->code = code;
    e->ioctl = smc_ioctl_name(code);
    if (!e->ioctl && SMC_IOCTL_IS_PCSC_VENDOR(code))
        e->ioctl = "IOCTL_SMARTCARD_VENDOR";
    if (!e->ioctl)
        e->ioctl = "IOCTL_UNKNOWN";
    e->status = st;
    e->status_name = smc_status_name(st);
    if (!e->status_name)
        e->status_name = "STATUS_UNKNOWN";
}

smc_status rm_ioctl(struct rm_reader *r, uint32_t code, const void *in, size_t in_len, void *out,
                    size_t out_len, size_t *returned)
{
    size_t ret = 0;
    struct rm_wd_entry wd;
    bool report_it = watched(r); /* decided before: the time is taken only for a report */
    rm_watchdog_enter(&r->rm->watchdog, &wd, r, code);
    uint64_t t0 = report_it ? scrm_now_ns() : 0;
    smc_status st = smc_ioctl(r->h, code, in, in_len, out, out_len, &ret);
    uint64_t t1 = report_it ? scrm_now_ns() : 0;
    rm_watchdog_leave(&r->rm->watchdog, &wd);
    if (returned)
        *returned = ret;
    if (!report_it)
        return st;

    struct rm_trace_entry e = {0};
    char abuf[96];
    fill_names(&e, code, st);
    e.arg = arg_name(r->h, code, in, in_len, abuf, sizeof(abuf));
    e.usec = (t1 - t0) / 1000u;
    e.has_value = st == STATUS_SUCCESS && out_value(code, in, out, ret, &e.value);
    report(r, &e);
    return st;
}

smc_status rm_ioctl_async(struct rm_reader *r, uint32_t code, smc_completion_fn done, void *user,
                          uint64_t *req_id)
{
    bool report_it = watched(r);
    uint64_t t0 = report_it ? scrm_now_ns() : 0;
    smc_status st = smc_ioctl_async(r->h, code, NULL, 0, NULL, 0, done, user, req_id);
    if (!report_it)
        return st;
    struct rm_trace_entry e = {0};
    fill_names(&e, code, st);
    e.usec = (scrm_now_ns() - t0) / 1000u;
    report(r, &e);
    return st;
}

void rm_trace_completion(struct rm_reader *r, uint32_t code, smc_status st, uint64_t posted_ns)
{
    if (!watched(r))
        return;
    struct rm_trace_entry e = {0};
    fill_names(&e, code, st);
    e.usec = (scrm_now_ns() - posted_ns) / 1000u;
    e.completion = true;
    report(r, &e);
}

smc_status rm_get_state(struct rm_reader *r, uint32_t *state)
{
    uint8_t out[4] = {0};
    size_t n = 0;
    smc_status st = rm_ioctl(r, IOCTL_SMARTCARD_GET_STATE, NULL, 0, out, sizeof(out), &n);
    if (st == STATUS_SUCCESS && n != 4)
        st = STATUS_DEVICE_PROTOCOL_ERROR;
    if (st == STATUS_SUCCESS)
        *state = scrm_get_u32le(out);
    return st;
}

smc_status rm_get_attr(struct rm_reader *r, uint32_t attr, void *out, size_t cap, size_t *len)
{
    uint8_t in[4];
    scrm_put_u32le(in, attr);
    return rm_ioctl(r, IOCTL_SMARTCARD_GET_ATTRIBUTE, in, sizeof(in), out, cap, len);
}

smc_status rm_power(struct rm_reader *r, uint32_t cmd, uint8_t *atr, size_t cap, size_t *len)
{
    uint8_t in[4];
    scrm_put_u32le(in, cmd);
    size_t n = 0;
    smc_status st = rm_ioctl(r, IOCTL_SMARTCARD_POWER, in, sizeof(in), atr, atr ? cap : 0, &n);
    if (len)
        *len = n;
    return st;
}
