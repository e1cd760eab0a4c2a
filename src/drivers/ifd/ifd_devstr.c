/* The bridge's device string: parsing of the options and formatting; see ifd_devstr.h. */
#include "drivers/ifd/ifd_devstr.h"

#include <stdio.h>
#include <string.h>

#include "common/opts.h"

bool ifd_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > IFD_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '+' || c == '@' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode n bytes of an option value into dst (NUL-terminated). false: bad escape, NUL byte, too
 * long or empty. */
static bool decode(const char *src, size_t n, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(src[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(src[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= cap)
            return false;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return o > 0;
}

#define FAIL(...)                            \
    do {                                     \
        snprintf(err, err_cap, __VA_ARGS__); \
        return false;                        \
    } while (0)

bool ifd_devstr_parse(const char *options, struct ifd_devspec *spec, char *err, size_t err_cap)
{
    memset(spec, 0, sizeof(*spec));
    spec->poll_ms = IFD_POLL_DEFAULT;
    spec->watchdog_ms = IFD_WATCHDOG_DEFAULT;
    unsigned seen = 0;
    const char *p = options ? options : "";
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        if (n == 0) {
            p++;
            continue;
        }
        if (!eq)
            FAIL("option '%.*s' has no value (key=value expected)", (int)n, p);
        size_t kn = (size_t)(eq - p), vn = n - kn - 1;
        static const char *const keys[] = {"lib", "device", "channel", "name", "poll", "watchdog"};
        size_t k = 0;
        while (k < sizeof(keys) / sizeof(keys[0]) &&
               !(strlen(keys[k]) == kn && strncmp(keys[k], p, kn) == 0))
            k++;
        if (k == sizeof(keys) / sizeof(keys[0]))
            FAIL("unknown option '%.*s' (lib, device, channel, name, poll, watchdog)", (int)kn, p);
        if (seen & (1u << k))
            FAIL("option '%s' given twice", keys[k]);
        seen |= 1u << k;
        char value[IFD_VALUE_MAX];
        if (!decode(eq + 1, vn, value, sizeof(value)))
            FAIL("option '%s': empty, too long or badly encoded value", keys[k]);
        switch (k) {
        case 0:
            if (value[0] != '/')
                FAIL("lib=%s: an absolute path is needed", value);
            memcpy(spec->lib, value, sizeof(spec->lib));
            break;
        case 1: memcpy(spec->device, value, sizeof(spec->device)); break;
        case 2:
            if (!scrm_parse_u32(value, UINT32_MAX, &spec->channel))
                FAIL("channel=%s: not a number", value);
            spec->has_channel = true;
            break;
        case 3:
            if (strlen(value) >= sizeof(spec->name))
                FAIL("name: longer than %u characters", IFD_NAME_MAX - 1);
            memcpy(spec->name, value, strlen(value) + 1);
            break;
        case 4:
            if (!scrm_parse_u32(value, IFD_POLL_MAX, &spec->poll_ms) ||
                spec->poll_ms < IFD_POLL_MIN)
                FAIL("poll=%s: %u..%u ms expected", value, IFD_POLL_MIN, IFD_POLL_MAX);
            break;
        default:
            if (!scrm_parse_u32(value, 24u * 3600u * 1000u, &spec->watchdog_ms))
                FAIL("watchdog=%s: milliseconds expected (0 = off)", value);
            break;
        }
        p += n;
    }
    if (!spec->lib[0])
        FAIL("lib=LIBPATH is missing");
    return true;
}

/* Append `s` encoded; false if it does not fit. */
static bool put_encoded(char *buf, size_t cap, size_t *o, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = c > 0x20 && c < 0x7F && c != '%' && c != ',';
        size_t need = plain ? 1 : 3;
        if (*o + need >= cap)
            return false;
        if (plain) {
            buf[(*o)++] = (char)c;
        } else {
            buf[(*o)++] = '%';
            buf[(*o)++] = hex[c >> 4];
            buf[(*o)++] = hex[c & 15];
        }
    }
    buf[*o] = '\0';
    return true;
}

static bool put_raw(char *buf, size_t cap, size_t *o, const char *s)
{
    size_t n = strlen(s);
    if (*o + n >= cap)
        return false;
    memcpy(buf + *o, s, n + 1);
    *o += n;
    return true;
}

size_t ifd_devstr_format(char *buf, size_t cap, const char *id, const char *lib, const char *device,
                         bool has_channel, uint32_t channel, const char *name)
{
    size_t o = 0;
    if (!buf || cap == 0 || !ifd_id_valid(id) || !lib || lib[0] != '/')
        return 0;
    buf[0] = '\0';
    bool ok = put_raw(buf, cap, &o, "ifd:") && put_raw(buf, cap, &o, id) &&
              put_raw(buf, cap, &o, ":lib=") && put_encoded(buf, cap, &o, lib);
    if (ok && device && *device)
        ok = put_raw(buf, cap, &o, ",device=") && put_encoded(buf, cap, &o, device);
    if (ok && has_channel) {
        char num[24];
        snprintf(num, sizeof(num), ",channel=0x%X", channel);
        ok = put_raw(buf, cap, &o, num);
    }
    if (ok && name && *name)
        ok = put_raw(buf, cap, &o, ",name=") && put_encoded(buf, cap, &o, name);
    if (!ok) {
        buf[0] = '\0';
        return 0;
    }
    return o;
}
