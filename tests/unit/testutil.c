/* Test helpers; see testutil.h. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "common/hex.h"

void test_assert_bytes_equal(const uint8_t *got, size_t got_len, const uint8_t *want,
                             size_t want_len, const char *file, int line)
{
    if (got_len == want_len && (want_len == 0 || memcmp(got, want, want_len) == 0))
        return;
    size_t first = 0;
    while (first < got_len && first < want_len && got[first] == want[first])
        first++;
    fprintf(stderr, "# byte buffers differ (got %zu bytes, want %zu; first difference at %zu)\n",
            got_len, want_len, first);
    fprintf(stderr, "# got:\n");
    scrm_hex_dump(stderr, "#   ", got, got_len);
    fprintf(stderr, "# want:\n");
    scrm_hex_dump(stderr, "#   ", want, want_len);
    _fail(file, line);
}

void test_assert_bytes_hex(const uint8_t *got, size_t got_len, const char *hex, const char *file,
                           int line)
{
    uint8_t want[70000];
    long n = scrm_hex_decode(hex, want, sizeof(want));
    if (n < 0) {
        fprintf(stderr, "# bad hex literal in test: %s\n", hex);
        _fail(file, line);
    }
    test_assert_bytes_equal(got, got_len, want, (size_t)n, file, line);
}

static void capture_sink(void *ctx, enum scrm_log_cat cat, enum scrm_log_level level,
                         const char *msg)
{
    struct test_log_capture *cap = ctx;
    int n = snprintf(cap->text + cap->len, sizeof(cap->text) - cap->len, "%s %s: %s\n",
                     scrm_log_cat_name(cat), scrm_log_level_name(level), msg);
    if (n > 0) {
        size_t add = (size_t)n;
        if (add > sizeof(cap->text) - cap->len - 1)
            add = sizeof(cap->text) - cap->len - 1;
        cap->len += add;
    }
    cap->lines++;
}

void test_log_capture_start(struct test_log_capture *cap)
{
    memset(cap, 0, sizeof(*cap));
    scrm_log_set_sink(capture_sink, cap);
}

void test_log_capture_stop(void)
{
    scrm_log_set_sink(NULL, NULL);
}
