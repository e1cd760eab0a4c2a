/* Tests for src/common/buf: bounded writes and reads with sticky errors. */
#include "testutil.h"

#include "common/buf.h"

static void test_put_and_get(void **state)
{
    (void)state;
    uint8_t s[16];
    struct scrm_buf b;
    scrm_buf_init(&b, s, sizeof(s));
    assert_int_equal(scrm_buf_put_u8(&b, 0xAB), 0);
    assert_int_equal(scrm_buf_put_u16be(&b, 0x1234), 0);
    assert_int_equal(scrm_buf_put_u32le(&b, 0xDEADBEEF), 0);
    assert_int_equal(scrm_buf_put_u64le(&b, 0x0102030405060708ull), 0);
    assert_int_equal(b.len, 15);
    assert_bytes_hex(s, b.len, "AB 1234 EFBEADDE 0807060504030201");

    struct scrm_rbuf r;
    scrm_rbuf_init(&r, s, b.len);
    assert_int_equal(scrm_rbuf_get_u8(&r), 0xAB);
    assert_int_equal(scrm_rbuf_get_u16be(&r), 0x1234);
    assert_int_equal(scrm_rbuf_get_u32le(&r), 0xDEADBEEF);
    assert_true(scrm_rbuf_get_u64le(&r) == 0x0102030405060708ull);
    assert_int_equal(scrm_rbuf_left(&r), 0);
    assert_false(r.underflow);
}

static void test_overflow_is_sticky(void **state)
{
    (void)state;
    uint8_t s[3] = {0};
    struct scrm_buf b;
    scrm_buf_init(&b, s, sizeof(s));
    assert_int_equal(scrm_buf_put_u16be(&b, 0x0102), 0);
    assert_int_equal(scrm_buf_put_u16be(&b, 0x0304), -1);
    assert_true(b.overflow);
    assert_int_equal(scrm_buf_put_u8(&b, 0x05), -1); /* would fit, but the flag is sticky */
    assert_int_equal(b.len, 2);
    assert_bytes_hex(s, 3, "01 02 00");
    assert_int_equal(scrm_buf_room(&b), 0);
}

static void test_underflow_is_sticky_and_zeroes(void **state)
{
    (void)state;
    const uint8_t s[] = {0x11, 0x22, 0x33};
    struct scrm_rbuf r;
    scrm_rbuf_init(&r, s, sizeof(s));
    assert_int_equal(scrm_rbuf_get_u16be(&r), 0x1122);
    assert_int_equal(scrm_rbuf_get_u32le(&r), 0);
    assert_true(r.underflow);
    assert_int_equal(scrm_rbuf_get_u8(&r), 0); /* one byte is left but the flag is sticky */
    assert_int_equal(scrm_rbuf_left(&r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_and_get),
        cmocka_unit_test(test_overflow_is_sticky),
        cmocka_unit_test(test_underflow_is_sticky_and_zeroes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
