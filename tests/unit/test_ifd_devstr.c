/* Tests for the IFD bridge's device string (src/drivers/ifd/ifd_devstr): parse, format, errors. */
#include "testutil.h"

#include <string.h>

#include "drivers/ifd/ifd_devstr.h"

static void test_parse_reader_conf_entry(void **state)
{
    (void)state;
    struct ifd_devspec s;
    char err[160];
    assert_true(ifd_devstr_parse("lib=/usr/lib/pcsc/drivers/serial/libifdvpcd.so,"
                                 "device=/dev/null:0x8C7B,channel=0x8C7B,name=Virtual%20PCD",
                                 &s, err, sizeof(err)));
    assert_string_equal(s.lib, "/usr/lib/pcsc/drivers/serial/libifdvpcd.so");
    assert_string_equal(s.device, "/dev/null:0x8C7B");
    assert_true(s.has_channel);
    assert_int_equal(s.channel, 0x8C7B);
    assert_string_equal(s.name, "Virtual PCD");
    assert_int_equal(s.poll_ms, IFD_POLL_DEFAULT);
    assert_int_equal(s.watchdog_ms, IFD_WATCHDOG_DEFAULT);
}

static void test_parse_options(void **state)
{
    (void)state;
    struct ifd_devspec s;
    char err[160];
    assert_true(
        ifd_devstr_parse("lib=/x.so,poll=50,watchdog=0,name=A%2CB%25", &s, err, sizeof(err)));
    assert_int_equal(s.poll_ms, 50);
    assert_int_equal(s.watchdog_ms, 0);
    assert_string_equal(s.name, "A,B%");
    assert_false(s.has_channel);
    assert_string_equal(s.device, "");
}

static void test_parse_errors(void **state)
{
    (void)state;
    struct ifd_devspec s;
    char err[160];
    static const char *const bad[] = {
        "",                      /* lib missing */
        "device=/dev/ttyS0",     /* lib missing */
        "lib=relative.so",       /* not absolute */
        "lib=/x.so,lib=/y.so",   /* repeated */
        "lib=/x.so,colour=red",  /* unknown key */
        "lib=/x.so,name",        /* no value */
        "lib=/x.so,name=",       /* empty value */
        "lib=/x.so,name=%4",     /* truncated escape */
        "lib=/x.so,name=%zz",    /* bad escape */
        "lib=/x.so,name=a%00b",  /* NUL byte */
        "lib=/x.so,channel=12x", /* not a number */
        "lib=/x.so,poll=1",      /* below the minimum */
        "lib=/x.so,poll=100000", /* above the maximum */
        "lib=/x.so,watchdog=-1", /* not a number */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_false(ifd_devstr_parse(bad[i], &s, err, sizeof(err)));
        assert_true(strlen(err) > 0);
    }
    char longname[200];
    memset(longname, 'n', sizeof(longname));
    memcpy(longname, "lib=/x.so,name=", 15);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(ifd_devstr_parse(longname, &s, err, sizeof(err)));
    assert_non_null(strstr(err, "longer"));
}

static void test_id(void **state)
{
    (void)state;
    assert_true(ifd_id_valid("vpcd"));
    assert_true(ifd_id_valid("usb-008-047.0"));
    assert_false(ifd_id_valid(""));
    assert_false(ifd_id_valid("a:b"));
    assert_false(ifd_id_valid("a/1"));
    assert_false(ifd_id_valid("a b"));
    char id[IFD_ID_MAX + 2];
    memset(id, 'a', sizeof(id));
    id[IFD_ID_MAX] = '\0';
    assert_true(ifd_id_valid(id));
    id[IFD_ID_MAX] = 'a';
    id[IFD_ID_MAX + 1] = '\0';
    assert_false(ifd_id_valid(id));
}

static void test_format_round_trip(void **state)
{
    (void)state;
    char buf[512];
    size_t n =
        ifd_devstr_format(buf, sizeof(buf), "twin", "/usr/lib/pcsc/drivers/serial/libccidtwin.so",
                          "/dev/ttyS0:GemPCTwin", false, 0, "GemPC Twin, serial");
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "ifd:twin:lib=/usr/lib/pcsc/drivers/serial/libccidtwin.so,"
                             "device=/dev/ttyS0:GemPCTwin,name=GemPC%20Twin%2C%20serial");
    /* the options part parses back to the same values */
    const char *opts = strchr(buf + 4, ':') + 1;
    struct ifd_devspec s;
    char err[160];
    assert_true(ifd_devstr_parse(opts, &s, err, sizeof(err)));
    assert_string_equal(s.device, "/dev/ttyS0:GemPCTwin");
    assert_string_equal(s.name, "GemPC Twin, serial");

    n = ifd_devstr_format(buf, sizeof(buf), "vpcd", "/l.so", NULL, true, 0x8C7B, NULL);
    assert_string_equal(buf, "ifd:vpcd:lib=/l.so,channel=0x8C7B");
    /* refusals: bad ID, relative lib, too small a buffer */
    assert_int_equal(ifd_devstr_format(buf, sizeof(buf), "a:b", "/l.so", NULL, false, 0, NULL), 0);
    assert_int_equal(ifd_devstr_format(buf, sizeof(buf), "a", "l.so", NULL, false, 0, NULL), 0);
    assert_int_equal(ifd_devstr_format(buf, 12, "a", "/l.so", NULL, false, 0, NULL), 0);
    assert_string_equal(buf, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_reader_conf_entry),
        cmocka_unit_test(test_parse_options),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_id),
        cmocka_unit_test(test_format_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
