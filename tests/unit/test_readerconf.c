/*
 * reader.conf.d parser (src/sources/readerconf.c): the files Debian installs, several entries per
 * file, quotes and comments, entries that end at a repeated key, and every kind of mistake
 * refused with its file:line while the other entries of the file still count; directories (name
 * order, dot files skipped, a missing directory is empty) and the file checks of LIBPATH and
 * DEVICENAME against the real file system.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sources/readerconf.h"

/* Errors reported by the parser, one "file:line: why" per line. */
struct errs {
    char text[4096];
    unsigned n;
};

static void on_error(void *user, const char *file, unsigned line, const char *why)
{
    struct errs *e = user;
    size_t len = strlen(e->text);
    snprintf(e->text + len, sizeof e->text - len, "%s:%u: %s\n", file, line, why);
    e->n++;
}

static int parse(struct readerconf *c, struct errs *e, const char *text)
{
    memset(c, 0, sizeof *c);
    memset(e, 0, sizeof *e);
    return readerconf_parse(c, text, strlen(text), "f", READERCONF_NO_FS_CHECKS, on_error, e);
}

static void test_vpcd_file(void **state)
{
    (void)state;
    struct readerconf c;
    struct errs e;
    /* As vsmartcard installs it: all four keys, one entry. */
    assert_int_equal(parse(&c, &e,
                           "FRIENDLYNAME \"Virtual PCD\"\n"
                           "DEVICENAME   /dev/null:0x8C7B\n"
                           "LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\n"
                           "CHANNELID    0x8C7B\n"),
                     1);
    assert_int_equal(e.n, 0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.v[0].friendly_name, "Virtual PCD");
    assert_string_equal(c.v[0].device_name, "/dev/null:0x8C7B");
    assert_string_equal(c.v[0].lib_path, "/usr/lib/pcsc/drivers/serial/libifdvpcd.so");
    assert_true(c.v[0].has_channel);
    assert_int_equal(c.v[0].channel_id, 0x8C7B);
    assert_string_equal(c.v[0].file, "f");
    assert_int_equal(c.v[0].line, 1);
    readerconf_free(&c);
}

static void test_commented_template(void **state)
{
    (void)state;
    struct readerconf c;
    struct errs e;
    /* libccid's template: everything commented out gives no entry and no error. */
    assert_int_equal(parse(&c, &e,
                           "# Gemalto reader with serial communication\n"
                           "#  - n is the serial port (0..3)\n"
                           "#FRIENDLYNAME      \"GemPC Twin serial\"\n"
                           "#DEVICENAME        /dev/ttyS0\n"
                           "#LIBPATH           /usr/lib/pcsc/drivers/serial/libccidtwin.so\n"
                           "\n   \t\n"),
                     0);
    assert_int_equal(e.n, 0);
    assert_int_equal(c.refused, 0);
    readerconf_free(&c);
}

static void test_several_entries(void **state)
{
    (void)state;
    struct readerconf c;
    struct errs e;
    /* Three-key entries (no CHANNELID): the next FRIENDLYNAME closes the previous entry. */
    assert_int_equal(parse(&c, &e,
                           "FRIENDLYNAME 'GemPC Twin emu'   # trailing comment\n"
                           "DEVICENAME /tmp/x/reader:GemPCTwin\n"
                           "LIBPATH /usr/lib/pcsc/drivers/serial/libccidtwin.so\n"
                           "\r\n"
                           "FRIENDLYNAME Second\r\n"
                           "LIBPATH /lib/b.so\n"
                           "CHANNELID 3\n"
                           "FRIENDLYNAME Third\n"
                           "CHANNELID 0x10\n"
                           "LIBPATH /lib/c.so\n"),
                     3);
    assert_int_equal(e.n, 0);
    assert_string_equal(c.v[0].friendly_name, "GemPC Twin emu");
    assert_string_equal(c.v[0].device_name, "/tmp/x/reader:GemPCTwin");
    assert_false(c.v[0].has_channel);
    assert_string_equal(c.v[1].friendly_name, "Second");
    assert_null(c.v[1].device_name);
    assert_int_equal(c.v[1].channel_id, 3);
    assert_int_equal(c.v[1].line, 5);
    assert_int_equal(c.v[2].channel_id, 16);
    assert_int_equal(c.v[2].line, 8);
    readerconf_free(&c);
}

/* A bad entry in the middle: refused with its line; the entries around it are kept. */
static void check_one_bad(const char *bad_lines, unsigned want_line, const char *want_why)
{
    char text[2048];
    snprintf(text, sizeof text,
             "FRIENDLYNAME A\nDEVICENAME /dev/null\nLIBPATH /lib/a.so\nCHANNELID 1\n"
             "%s"
             "FRIENDLYNAME Z\nDEVICENAME /dev/null\nLIBPATH /lib/z.so\nCHANNELID 2\n",
             bad_lines);
    struct readerconf c;
    struct errs e;
    assert_int_equal(parse(&c, &e, text), 2);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.v[0].friendly_name, "A");
    assert_string_equal(c.v[1].friendly_name, "Z");
    assert_int_equal(c.refused, 1);
    assert_int_equal(e.n, 1);
    char want[256];
    snprintf(want, sizeof want, "f:%u: %s", want_line, want_why);
    if (!strstr(e.text, want))
        fail_msg("expected '%s', got '%s'", want, e.text);
    readerconf_free(&c);
}

static void test_mistakes(void **state)
{
    (void)state;
    check_one_bad("FRIENDLYNAME B\nLIBPATH /lib/b.so\nCOLOR red\nCHANNELID 3\n", 7,
                  "unknown key 'COLOR'");
    check_one_bad("FRIENDLYNAME B\nLIBPATH\nCHANNELID 3\nDEVICENAME /dev/null\n", 6,
                  "a key without a value");
    check_one_bad("FRIENDLYNAME B C\nLIBPATH /lib/b.so\nCHANNELID 3\n", 5,
                  "more than one value on the line");
    check_one_bad("FRIENDLYNAME \"B\nLIBPATH /lib/b.so\nCHANNELID 3\n", 5,
                  "unterminated quoted string");
    check_one_bad("FRIENDLYNAME B\nLIBPATH /lib/b.so\nCHANNELID 12z\n", 7,
                  "CHANNELID '12z' is not a number");
    check_one_bad("FRIENDLYNAME B\nLIBPATH /lib/b.so\nCHANNELID 0x100000000\n", 7,
                  "CHANNELID '0x100000000' is not a number up to 0xFFFFFFFF");
    check_one_bad("FRIENDLYNAME B\nLIBPATH lib/b.so\nCHANNELID 3\n", 6,
                  "LIBPATH is not an absolute path");
    check_one_bad("FRIENDLYNAME B;\nLIBPATH /lib/b.so\nCHANNELID 3\n", 5, "unexpected character");
    check_one_bad("FRIENDLYNAME B\nLIBPATH /lib/b.so\n", 5,
                  "incomplete reader entry: no DEVICENAME or CHANNELID");
    check_one_bad("LIBPATH /lib/b.so\nCHANNELID 3\n", 5,
                  "incomplete reader entry: no FRIENDLYNAME");
    check_one_bad("FRIENDLYNAME B\nCHANNELID 3\n", 5, "incomplete reader entry: no LIBPATH");
    check_one_bad("FRIENDLYNAME \"\"\nLIBPATH /lib/b.so\nCHANNELID 3\n", 5, "empty value");
    check_one_bad("\"FRIENDLYNAME\" B\nLIBPATH /lib/b.so\nCHANNELID 3\n", 5, "a quoted key");
    check_one_bad("FRIENDLYNAME \"tab\there\"\nLIBPATH /lib/b.so\nCHANNELID 3\n", 5,
                  "control character");
    char longname[300];
    memset(longname, 'n', sizeof longname);
    memcpy(longname, "FRIENDLYNAME ", 13);
    snprintf(longname + 13 + READERCONF_NAME_MAX + 1, 64, "\nLIBPATH /l.so\nCHANNELID 3\n");
    check_one_bad(longname, 5, "FRIENDLYNAME longer than");
}

static void test_nul_and_binary(void **state)
{
    (void)state;
    struct readerconf c = {0};
    struct errs e = {0};
    static const char text[] = "FRIENDLYNAME A\0B\nLIBPATH /l.so\nCHANNELID 1\n";
    assert_int_equal(
        readerconf_parse(&c, text, sizeof text - 1, "f", READERCONF_NO_FS_CHECKS, on_error, &e), 0);
    assert_int_equal(c.refused, 1);
    assert_non_null(strstr(e.text, "f:1: NUL byte"));
    readerconf_free(&c);
}

/* ---- files and directories --------------------------------------------------------------- */

static char tmpdir[64];

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_directory(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/scrm-test-rc-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char lib[300], sub[300];
    snprintf(sub, sizeof sub, "%s/sub", tmpdir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(lib, sizeof lib, "%s/sub/lib.so", tmpdir);
    put("sub/lib.so", "not really a library");
    char text[1024];
    /* b: a good entry whose LIBPATH and DEVICENAME exist; a: a missing library and a missing
     * device (one reason each); .hidden is skipped; a sub-directory is skipped. */
    snprintf(text, sizeof text, "FRIENDLYNAME B\nDEVICENAME %s\nLIBPATH %s\n", lib, lib);
    put("b", text);
    snprintf(text, sizeof text,
             "FRIENDLYNAME A1\nDEVICENAME /dev/null\nLIBPATH %s/missing.so\n"
             "FRIENDLYNAME A2\nDEVICENAME %s/no-such-tty\nLIBPATH %s\n"
             "FRIENDLYNAME A3\nDEVICENAME %s/no-such-tty:0x1\nLIBPATH %s\n",
             tmpdir, tmpdir, lib, tmpdir, lib);
    put("a", text);
    put(".hidden", "garbage here\n");

    struct readerconf c = {0};
    struct errs e = {0};
    assert_int_equal(readerconf_load(&c, tmpdir, 0, on_error, &e), 2);
    assert_int_equal(c.n, 2);
    /* name order: a before b; A3's device has a ':' so it is not checked */
    assert_string_equal(c.v[0].friendly_name, "A3");
    assert_string_equal(c.v[1].friendly_name, "B");
    assert_int_equal(c.refused, 2);
    char want[300];
    snprintf(want, sizeof want, "%s/a:3: library %s/missing.so: No such file", tmpdir, tmpdir);
    assert_non_null(strstr(e.text, want));
    snprintf(want, sizeof want, "%s/a:5: device %s/no-such-tty: No such file", tmpdir, tmpdir);
    assert_non_null(strstr(e.text, want));
    readerconf_free(&c);

    /* a single file given instead of a directory */
    char one[300];
    snprintf(one, sizeof one, "%s/b", tmpdir);
    memset(&e, 0, sizeof e);
    assert_int_equal(readerconf_load(&c, one, 0, on_error, &e), 1);
    assert_string_equal(c.v[0].file, one);
    readerconf_free(&c);

    /* a missing directory is empty, not an error */
    snprintf(one, sizeof one, "%s/none", tmpdir);
    assert_int_equal(readerconf_load(&c, one, 0, on_error, &e), 0);
    assert_int_equal(c.n, 0);

    const char *names[] = {"a", "b", ".hidden", "sub/lib.so"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(one, sizeof one, "%s/%s", tmpdir, names[i]);
        unlink(one);
    }
    rmdir(sub);
    rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vpcd_file),       cmocka_unit_test(test_commented_template),
        cmocka_unit_test(test_several_entries), cmocka_unit_test(test_mistakes),
        cmocka_unit_test(test_nul_and_binary),  cmocka_unit_test(test_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
