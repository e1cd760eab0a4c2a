/* Option lists and strict number parsing; see opts.h. */
#include "common/opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool scrm_opts_next(const char **cursor, struct scrm_opt *opt)
{
    const char *p = *cursor;
    while (*p == ',')
        p++;
    if (*p == '\0') {
        *cursor = p;
        return false;
    }
    size_t n = strcspn(p, ",");
    *cursor = p + n;
    const char *eq = memchr(p, '=', n);
    size_t kn = eq ? (size_t)(eq - p) : n;
    size_t vn = eq ? n - kn - 1 : 0;
    opt->key[0] = opt->value[0] = '\0';
    if (kn == 0 || kn >= sizeof(opt->key) || vn >= sizeof(opt->value))
        return true; /* empty key: malformed entry, caller reports */
    memcpy(opt->key, p, kn);
    opt->key[kn] = '\0';
    if (eq)
        memcpy(opt->value, eq + 1, vn);
    opt->value[vn] = '\0';
    return true;
}

bool scrm_parse_string(const char *text, char *dst, size_t cap)
{
    size_t n = strlen(text);
    if (n == 0 || n >= cap)
        return false;
    memcpy(dst, text, n + 1);
    return true;
}

bool scrm_parse_u32(const char *text, uint32_t max, uint32_t *out)
{
    if (!text || !*text || *text == '-' || *text == '+' || *text == ' ')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long v = strtoul(text, &end, 0);
    if (errno || !end || *end != '\0' || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

bool scrm_parse_unit(const char *text, uint32_t *out)
{
    uint32_t v = 0;
    if (!text || !*text || strlen(text) > 5)
        return false;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10u + (uint32_t)(*p - '0');
    }
    if (v > SCRM_UNIT_MAX)
        return false;
    *out = v;
    return true;
}
