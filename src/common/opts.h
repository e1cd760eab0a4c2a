/*
 * Option lists of uniform device strings: "key=value,key=value,flag". Iterate with
 * scrm_opts_next(); parse numbers with scrm_parse_u32() (strict: whole text, in range).
 */
#ifndef SCRM_COMMON_OPTS_H
#define SCRM_COMMON_OPTS_H

#include "common/compiler.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct scrm_opt {
    char key[32];
    char value[96];
};

/* Take the next option from *cursor into opt. Returns false at the end, or when an entry is too
 * long (then opt->key is "" and *cursor moves past it so the caller can report and stop). */
SCRM_MUST_CHECK bool scrm_opts_next(const char **cursor, struct scrm_opt *opt);

/* Copy a non-empty option value that fits dst (NUL included); false otherwise, dst unchanged. */
SCRM_MUST_CHECK bool scrm_parse_string(const char *text, char *dst, size_t cap);

/* Parse a decimal (or 0x hex) unsigned number that fills the whole text and is <= max. */
SCRM_MUST_CHECK bool scrm_parse_u32(const char *text, uint32_t max, uint32_t *out);

/* The address of a numbered device ("sim:3"): decimal digits only, at most 65535. */
#define SCRM_UNIT_MAX 65535u
SCRM_MUST_CHECK bool scrm_parse_unit(const char *text, uint32_t *out);

#endif
