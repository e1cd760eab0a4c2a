/*
 * Helpers shared by the cmocka tests: typed byte-buffer assertions that print both buffers as hex
 * dumps on mismatch, and a log capture sink for asserting log lines.
 */
#ifndef SCRM_TESTUTIL_H
#define SCRM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/hex.h"
#include "common/log.h"

void test_assert_bytes_equal(const uint8_t *got, size_t got_len, const uint8_t *want,
                             size_t want_len, const char *file, int line);

/* Compare got[0..got_len) with want[0..want_len); on mismatch dump both and fail the test. */
#define assert_bytes_equal(got, got_len, want, want_len)                                \
    test_assert_bytes_equal((const uint8_t *)(got), (got_len), (const uint8_t *)(want), \
                            (want_len), __FILE__, __LINE__)

/* Compare against a hex literal: assert_bytes_hex(buf, len, "90 00"). */
#define assert_bytes_hex(got, got_len, hex) \
    test_assert_bytes_hex((const uint8_t *)(got), (got_len), (hex), __FILE__, __LINE__)
void test_assert_bytes_hex(const uint8_t *got, size_t got_len, const char *hex, const char *file,
                           int line);

/* Log capture: collects every message of the given categories into one text buffer. */
struct test_log_capture {
    char text[16384];
    size_t len;
    unsigned lines;
};
void test_log_capture_start(struct test_log_capture *cap);
void test_log_capture_stop(void);

#endif
