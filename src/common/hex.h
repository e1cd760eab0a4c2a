/*
 * Hex helpers: encode bytes as "3B 8F 80", decode user-typed hex ("3B8F80", "3b:8f 80"), and a
 * multi-line dump with offsets and ASCII for logs and test failures.
 */
#ifndef SCRM_COMMON_HEX_H
#define SCRM_COMMON_HEX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Write bytes as upper-case hex pairs separated by `sep` (0 for none) into out, always
 * NUL-terminated. If out is too small the text is cut at a pair boundary and ends in "..".
 * Returns the number of characters the full text needs (without the NUL).
 */
size_t scrm_hex_encode(const uint8_t *data, size_t len, char sep, char *out, size_t outcap);

/*
 * Parse hex digits, ignoring spaces, tabs, ':' and '-' between pairs. Returns the number of bytes
 * written, or -1 if the text has an odd number of digits, a character that is not hex, or more
 * bytes than cap.
 */
long scrm_hex_decode(const char *text, uint8_t *out, size_t cap);

/* Classic dump: "0000  3B 8F 80 01 ...  ;...." lines of 16 bytes, each prefixed by indent. */
void scrm_hex_dump(FILE *f, const char *indent, const uint8_t *data, size_t len);

#endif
