/*
 * Symbolic names of the constants in <smc/defs.h>, generated from the same X-macro lists that
 * define the values. Lookups are linear scans of small const tables; they run on log and error
 * paths only.
 */
#include "smc/defs.h"

#include <stddef.h>

struct name_entry {
    uint32_t value;
    const char *name;
};

static const char *lookup(const struct name_entry *t, size_t n, uint32_t value)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].value == value)
            return t[i].name;
    return NULL;
}

#define COUNT(t) (sizeof(t) / sizeof((t)[0]))

static const struct name_entry ioctl_names[] = {
#define X(name, f) {SMC_CTL_CODE(f), "IOCTL_SMARTCARD_" #name},
    SMC_IOCTL_LIST(X)
#undef X
};

static const struct name_entry state_names[] = {
#define X(name, v) {(v), "SCARD_" #name},
    SMC_STATE_LIST(X)
#undef X
};

/* OPTIMAL (0) shares its value with UNDEFINED; the first entry wins. */
static const struct name_entry protocol_names[] = {
#define X(name, v) {(v), "SCARD_PROTOCOL_" #name},
    SMC_PROTOCOL_LIST(X)
#undef X
};

static const struct name_entry power_names[] = {
#define X(name, v) {(v), "SCARD_" #name},
    SMC_POWER_LIST(X)
#undef X
};

static const struct {
    uint32_t value;
    const char *name;
    enum smc_attr_format format;
} attr_table[] = {
#define X(name, v, fmt) {(v), "SCARD_ATTR_" #name, fmt},
    SMC_ATTR_LIST(X)
#undef X
#define X(name, v) {(v), "SCARD_PERF_" #name, SMC_AF_DWORD},
        SMC_PERF_LIST(X)
#undef X
};

static const struct {
    uint32_t value;
    const char *name;
    const char *message;
} status_table[] = {
#define X(name, v, msg) {(v), "STATUS_" #name, msg},
    SMC_STATUS_LIST(X)
#undef X
};

static const struct name_entry feature_names[] = {
#define X(name, v) {(v), "FEATURE_" #name},
    SMC_PCSC_FEATURE_LIST(X)
#undef X
};

static const struct name_entry reader_type_names[] = {
#define X(name, v) {(v), "SCARD_READER_TYPE_" #name},
    SMC_READER_TYPE_LIST(X)
#undef X
};

const char *smc_ioctl_name(uint32_t code)
{
    const char *n = lookup(ioctl_names, COUNT(ioctl_names), code);
    if (!n && SMC_IOCTL_IS_VENDOR(code))
        n = "IOCTL_SMARTCARD_VENDOR";
    return n;
}

const char *smc_state_name(uint32_t state)
{
    return lookup(state_names, COUNT(state_names), state);
}

const char *smc_protocol_name(uint32_t protocol)
{
    return lookup(protocol_names, COUNT(protocol_names), protocol);
}

const char *smc_power_name(uint32_t power)
{
    return lookup(power_names, COUNT(power_names), power);
}

const char *smc_attr_name(uint32_t attr)
{
    for (size_t i = 0; i < COUNT(attr_table); i++)
        if (attr_table[i].value == attr)
            return attr_table[i].name;
    return NULL;
}

enum smc_attr_format smc_attr_format(uint32_t attr)
{
    for (size_t i = 0; i < COUNT(attr_table); i++)
        if (attr_table[i].value == attr)
            return attr_table[i].format;
    return SMC_AF_NONE;
}

const char *smc_status_name(smc_status status)
{
    for (size_t i = 0; i < COUNT(status_table); i++)
        if (status_table[i].value == status)
            return status_table[i].name;
    return NULL;
}

const char *smc_status_message(smc_status status)
{
    for (size_t i = 0; i < COUNT(status_table); i++)
        if (status_table[i].value == status)
            return status_table[i].message;
    return NULL;
}

const char *smc_reader_type_name(uint32_t type)
{
    return lookup(reader_type_names, COUNT(reader_type_names), type);
}

const char *smc_pcsc_feature_name(uint32_t tag)
{
    return lookup(feature_names, COUNT(feature_names), tag);
}
