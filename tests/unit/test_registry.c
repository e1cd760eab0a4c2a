/* The driver registry (src/drivers/registry.h): the table matches the build, registration puts
 * every driver in a context, the names list is bounded. */
#include <string.h>

#include "testutil.h"

#include "drivers/registry.h"
#include "smc/driver.h"

static void test_table_matches_build(void **state)
{
    (void)state;
    size_t n = scrm_drivers_count();
#if SCRM_TEST_WITH_SIMULATORS
    assert_int_equal(n, 4); /* sim, nfc, ifd, vpcd */
#else
    assert_int_equal(n, 2); /* ifd, vpcd */
#endif
    for (size_t i = 0; i < n; i++) {
        assert_non_null(scrm_drivers_get(i));
        assert_non_null(scrm_drivers_get(i)->name);
    }
    assert_null(scrm_drivers_get(n));
}

static void test_register_all(void **state)
{
    (void)state;
    struct smc_ctx *ctx = smc_ctx_new();
    assert_non_null(ctx);
    assert_int_equal(scrm_drivers_register(ctx), STATUS_SUCCESS);
    /* a second registration of the same names is refused */
    if (scrm_drivers_count())
        assert_int_equal(scrm_drivers_register(ctx), STATUS_INVALID_PARAMETER);
#if SCRM_TEST_WITH_SIMULATORS
    assert_int_equal(smc_add_device(ctx, "sim:0"), STATUS_SUCCESS);
#endif
    assert_int_equal(smc_add_device(ctx, "nosuchdriver:0"), STATUS_NO_SUCH_DEVICE);
    smc_ctx_free(ctx);
}

static void test_names(void **state)
{
    (void)state;
    char buf[64];
    scrm_drivers_names(buf, sizeof(buf), ", ");
#if SCRM_TEST_WITH_SIMULATORS
    assert_string_equal(buf, "sim, nfc, ifd, vpcd");
    char small[5];
    assert_ptr_equal(scrm_drivers_names(small, sizeof(small), ", "), small);
    assert_string_equal(small, "sim,");
#else
    assert_string_equal(buf, "ifd, vpcd");
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_build),
        cmocka_unit_test(test_register_all),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
