/* Tests for src/common/hex: encode, decode and truncation rules. */
#include "testutil.h"

#include <string.h>

#include "common/hex.h"

static void test_encode(void **state)
{
    (void)state;
    const uint8_t b[] = {0x3B, 0x8F, 0x80, 0x01};
    char out[32];
    assert_int_equal(scrm_hex_encode(b, 4, ' ', out, sizeof(out)), 11);
    assert_string_equal(out, "3B 8F 80 01");
    assert_int_equal(scrm_hex_encode(b, 4, 0, out, sizeof(out)), 8);
    assert_string_equal(out, "3B8F8001");
    assert_int_equal(scrm_hex_encode(b, 0, ' ', out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

static void test_encode_truncates_with_marker(void **state)
{
    (void)state;
    const uint8_t b[] = {0x01, 0x02, 0x03, 0x04, 0x05};
    char out[9];
    assert_int_equal(scrm_hex_encode(b, 5, ' ', out, sizeof(out)), 14);
    assert_true(strlen(out) < sizeof(out));
    assert_non_null(strstr(out, ".."));
    assert_memory_equal(out, "01 ", 3);
}

static void test_decode(void **state)
{
    (void)state;
    uint8_t out[8];
    assert_int_equal(scrm_hex_decode("00 a4:04-00", out, sizeof(out)), 4);
    assert_bytes_hex(out, 4, "00A40400");
    assert_int_equal(scrm_hex_decode("", out, sizeof(out)), 0);
}

static void test_decode_errors(void **state)
{
    (void)state;
    uint8_t out[2];
    assert_int_equal(scrm_hex_decode("abc", out, sizeof(out)), -1);
    assert_int_equal(scrm_hex_decode("zz", out, sizeof(out)), -1);
    assert_int_equal(scrm_hex_decode("a b", out, sizeof(out)), -1);
    assert_int_equal(scrm_hex_decode("010203", out, sizeof(out)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_encode_truncates_with_marker),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_decode_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
