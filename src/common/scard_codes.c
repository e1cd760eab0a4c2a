/*
 * Names and messages of the PC/SC result codes, generated from SCARD_CODE_LIST (scard_codes.h).
 * A linear table lookup: the list has about seventy entries and the functions serve logs and
 * pcsc_stringify_error, not a hot path. For a value listed twice (0x8010001F) the first entry
 * wins.
 */
#include "common/scard_codes.h"

#include <stddef.h>

struct scard_entry {
    uint32_t value;
    const char *name;
    const char *message;
};

static const struct scard_entry scard_table[] = {
#define SCARD_X_ENTRY(name, value, msg) {(value), "SCARD_" #name, (msg)},
    SCARD_CODE_LIST(SCARD_X_ENTRY)
#undef SCARD_X_ENTRY
};

static const struct scard_entry *scard_find(uint32_t rc)
{
    for (size_t i = 0; i < sizeof(scard_table) / sizeof(scard_table[0]); i++)
        if (scard_table[i].value == rc)
            return &scard_table[i];
    return NULL;
}

const char *scard_code_name(uint32_t rc)
{
    const struct scard_entry *e = scard_find(rc);
    return e ? e->name : NULL;
}

const char *scard_code_message(uint32_t rc)
{
    const struct scard_entry *e = scard_find(rc);
    return e ? e->message : "Unknown error.";
}

const char *scard_share_name(uint32_t share)
{
    static const char *const names[] = {NULL, "SCARD_SHARE_EXCLUSIVE", "SCARD_SHARE_SHARED",
                                        "SCARD_SHARE_DIRECT"};
    return share < sizeof(names) / sizeof(names[0]) ? names[share] : NULL;
}

const char *scard_disposition_name(uint32_t disposition)
{
    static const char *const names[] = {"SCARD_LEAVE_CARD", "SCARD_RESET_CARD",
                                        "SCARD_UNPOWER_CARD", "SCARD_EJECT_CARD"};
    return disposition < sizeof(names) / sizeof(names[0]) ? names[disposition] : NULL;
}
