/*
 * scrmd configuration (src/daemon/config.c): defaults, the key = value file with comments and
 * errors that name the line, single settings as the command line uses them, and socket
 * activation (LISTEN_PID / LISTEN_FDS).
 */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"

/* Write text to a fresh temporary file; returns its path (static buffer). */
static const char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/scrm-test-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    (void)state;
    struct scrmd_config cfg;
    assert_int_equal(scrmd_config_defaults(&cfg), 0);
    assert_int_equal(cfg.power_down_ms, 5000);
    assert_int_equal(cfg.ioctl_watchdog_ms, 150000);
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.defect_threshold, 3);
    assert_int_equal(cfg.max_clients, SCRMD_DEFAULT_MAX_CLIENTS);
    assert_int_equal(cfg.max_cards_per_client, SCRMD_DEFAULT_MAX_CARDS);
    assert_int_equal(cfg.io_timeout_ms, 10000);
    assert_true(cfg.discover);
    assert_true(cfg.power_on_insert);
    assert_false(cfg.trace_ioctl);
    assert_true(cfg.realtime);
    assert_string_equal(cfg.socket_path, SCRMD_DEFAULT_SOCKET);
    assert_int_equal(cfg.socket_mode, 0666);
    assert_int_equal(cfg.socket_gid, (gid_t)-1);
    assert_int_equal(cfg.admin_gid, (gid_t)-1);
    assert_null(cfg.admin_group);
    assert_int_equal(cfg.listen_fd, -1);
    assert_int_equal(cfg.n_readers, 0);
    scrmd_config_free(&cfg);
}

static void test_load_file(void **state)
{
    (void)state;
    const char *path = write_file("# scrmd test configuration\n"
                                  "\n"
                                  "reader = sim:0:swallows=1\n"
                                  "  reader=sim:1  \n"
                                  "power_down_ms = 250\n"
                                  "ioctl_watchdog_ms = 0\n"
                                  "workers = 4\n"
                                  "defect_threshold = 5\n"
                                  "max_clients = 10\n"
                                  "max_cards_per_client = 3\n"
                                  "discover = no\n"
                                  "power_on_insert = off\n"
                                  "trace_ioctl = yes\n"
                                  "realtime = no\n"
                                  "log = rm:debug,ipc:info\n"
                                  "socket = /tmp/x.sock\n"
                                  "socket_mode = 0660\n"
                                  "socket_group = 0\n");
    struct scrmd_config cfg;
    assert_int_equal(scrmd_config_defaults(&cfg), 0);
    char err[256] = "";
    assert_int_equal(scrmd_config_load(&cfg, path, err, sizeof(err)), 0);
    assert_int_equal(cfg.n_readers, 2);
    assert_string_equal(cfg.readers[0], "sim:0:swallows=1");
    assert_string_equal(cfg.readers[1], "sim:1");
    assert_int_equal(cfg.power_down_ms, 250);
    assert_int_equal(cfg.ioctl_watchdog_ms, 0);
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(cfg.defect_threshold, 5);
    assert_int_equal(cfg.max_clients, 10);
    assert_int_equal(cfg.max_cards_per_client, 3);
    assert_false(cfg.discover);
    assert_false(cfg.power_on_insert);
    assert_true(cfg.trace_ioctl);
    assert_false(cfg.realtime);
    assert_string_equal(cfg.log_spec, "rm:debug,ipc:info");
    assert_string_equal(cfg.socket_path, "/tmp/x.sock");
    assert_int_equal(cfg.socket_mode, 0660);
    assert_int_equal(cfg.socket_gid, 0);
    assert_string_equal(cfg.config_file, path);
    scrmd_config_free(&cfg);
    unlink(path);
}

/* The reader-source keys: reader.conf.d directory, driver bundles, USB switch. */
static void test_reader_sources(void **state)
{
    (void)state;
    struct scrmd_config cfg;
    assert_int_equal(scrmd_config_defaults(&cfg), 0);
    assert_null(cfg.reader_conf_dir); /* the default, read while discover is on */
    assert_null(cfg.driver_dir);
    assert_int_equal(cfg.usb, -1); /* follows discover */
    const char *path = write_file("reader_conf_dir = /srv/readers\n"
                                  "driver_dir = /opt/drivers\n"
                                  "usb = no\n");
    char err[256] = "";
    assert_int_equal(scrmd_config_load(&cfg, path, err, sizeof(err)), 0);
    assert_string_equal(cfg.reader_conf_dir, "/srv/readers");
    assert_string_equal(cfg.driver_dir, "/opt/drivers");
    assert_int_equal(cfg.usb, 0);
    assert_int_equal(scrmd_config_set(&cfg, "reader_conf_dir", "", err, sizeof(err)), 0);
    assert_string_equal(cfg.reader_conf_dir, ""); /* none */
    assert_int_equal(scrmd_config_set(&cfg, "usb", "yes", err, sizeof(err)), 0);
    assert_int_equal(cfg.usb, 1);
    assert_int_equal(scrmd_config_set(&cfg, "reader_conf_dir", "rel/dir", err, sizeof(err)), -1);
    assert_int_equal(scrmd_config_set(&cfg, "driver_dir", "", err, sizeof(err)), -1);
    assert_int_equal(scrmd_config_set(&cfg, "usb", "sometimes", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bad value 'sometimes' for 'usb'"));
    scrmd_config_free(&cfg);
    unlink(path);
}

/* Each bad line is reported with the file name and its line number. */
static void test_errors_name_the_line(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"workers = 2\nbogus = 1\n", ":2: unknown setting 'bogus'"},
        {"power_down_ms = soon\n", ":1: bad value 'soon' for 'power_down_ms'"},
        {"\n\nsocket = relative.sock\n", ":3: bad value 'relative.sock' for 'socket'"},
        {"socket_mode = 0999\n", ":1: bad value '0999' for 'socket_mode'"},
        {"workers = 0\n", ":1: bad value '0' for 'workers'"},
        {"discover = maybe\n", ":1: bad value 'maybe' for 'discover'"},
        {"reader\n", ":1: expected 'key = value'"},
        {"socket_group = no-such-group-scrm\n", ":1: bad value 'no-such-group-scrm'"},
        {"reader = sim\n", ":1: bad device string 'sim'"},
        {"reader = :0\n", ":1: bad device string ':0'"},
        {"reader = sim::x\n", ":1: bad device string 'sim::x'"},
        {"reader = sim:0 extra\n", ":1: blank or control character in device string"},
        {"workers = 2#no blank before the comment\n", ":1: bad value '2#no"},
        {"workers = 2 4\n", ":1: bad value '2 4'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = write_file(cases[i].text);
        struct scrmd_config cfg;
        assert_int_equal(scrmd_config_defaults(&cfg), 0);
        char err[256] = "";
        assert_int_equal(scrmd_config_load(&cfg, path, err, sizeof(err)), -1);
        if (!strstr(err, cases[i].msg) || strncmp(err, path, strlen(path)) != 0)
            fail_msg("case %zu: got '%s', want '%s%s'", i, err, path, cases[i].msg);
        scrmd_config_free(&cfg);
        unlink(path);
    }
    struct scrmd_config cfg;
    assert_int_equal(scrmd_config_defaults(&cfg), 0);
    char err[256] = "";
    assert_int_equal(scrmd_config_load(&cfg, "/nonexistent/scrmd.conf", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/scrmd.conf: "));
    scrmd_config_free(&cfg);
}

/* Comments after values, the origin of each reader, NUL bytes, directories. */
static void test_comments_and_origins(void **state)
{
    (void)state;
    const char *path = write_file("reader = sim:0   # first\n"
                                  "# a comment line\n"
                                  "reader = sim:1:vendor=A#B\t# '#' inside a value stays\n"
                                  "workers = 3 # three\n");
    struct scrmd_config cfg;
    assert_int_equal(scrmd_config_defaults(&cfg), 0);
    char err[256] = "", want[300];
    assert_int_equal(scrmd_config_load(&cfg, path, err, sizeof(err)), 0);
    assert_int_equal(cfg.n_readers, 2);
    assert_string_equal(cfg.readers[0], "sim:0");
    assert_string_equal(cfg.readers[1], "sim:1:vendor=A#B");
    assert_int_equal(cfg.workers, 3);
    snprintf(want, sizeof want, "%s:1", path);
    assert_string_equal(cfg.reader_origin[0], want);
    snprintf(want, sizeof want, "%s:3", path);
    assert_string_equal(cfg.reader_origin[1], want);
    assert_int_equal(scrmd_config_set(&cfg, "reader", "sim:2", err, sizeof(err)), 0);
    assert_null(cfg.reader_origin[2]); /* the command line */
    scrmd_config_free(&cfg);
    unlink(path);

    char tmpl[] = "/tmp/scrm-cfg-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    static const char nul_line[] = "workers = 2\nreader = sim:0\0:card=t1\n";
    assert_int_equal(write(fd, nul_line, sizeof nul_line - 1), (ssize_t)(sizeof nul_line - 1));
    close(fd);
    assert_int_equal(scrmd_config_defaults(&cfg), 0);
    assert_int_equal(scrmd_config_load(&cfg, tmpl, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":2: the line holds a NUL byte"));
    scrmd_config_free(&cfg);
    unlink(tmpl);

    assert_int_equal(scrmd_config_defaults(&cfg), 0);
    assert_int_equal(scrmd_config_load(&cfg, "/tmp", err, sizeof(err)), -1);
    assert_string_equal(err, "/tmp: is a directory, not a configuration file");
    scrmd_config_free(&cfg);
}

static void test_long_line(void **state)
{
    (void)state;
    char text[2100];
    memset(text, 'a', sizeof(text) - 2);
    memcpy(text, "log = ", 6);
    text[sizeof(text) - 2] = '\n';
    text[sizeof(text) - 1] = '\0';
    const char *path = write_file(text);
    struct scrmd_config cfg;
    assert_int_equal(scrmd_config_defaults(&cfg), 0);
    char err[256] = "";
    assert_int_equal(scrmd_config_load(&cfg, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":1: line longer than"));
    scrmd_config_free(&cfg);
    unlink(path);
}

static void test_set_single(void **state)
{
    (void)state;
    struct scrmd_config cfg;
    assert_int_equal(scrmd_config_defaults(&cfg), 0);
    char err[128];
    assert_int_equal(scrmd_config_set(&cfg, "power_down_ms", "0", err, sizeof(err)), 0);
    assert_int_equal(cfg.power_down_ms, 0);
    assert_int_equal(scrmd_config_set(&cfg, "power_down_ms", "99999999", err, sizeof(err)), -1);
    assert_int_equal(scrmd_config_set(&cfg, "reader", "", err, sizeof(err)), -1);
    assert_int_equal(scrmd_config_set(&cfg, "socket_group", "root", err, sizeof(err)), 0);
    assert_int_equal(cfg.socket_gid, 0);
    assert_int_equal(scrmd_config_set(&cfg, "socket_group", "", err, sizeof(err)), 0);
    assert_int_equal(cfg.socket_gid, (gid_t)-1);
    assert_null(cfg.socket_group);
    assert_int_equal(scrmd_config_set(&cfg, "admin_group", "4242", err, sizeof(err)), 0);
    assert_int_equal(cfg.admin_gid, 4242);
    assert_string_equal(cfg.admin_group, "4242");
    assert_int_equal(scrmd_config_set(&cfg, "admin_group", "root", err, sizeof(err)), 0);
    assert_int_equal(cfg.admin_gid, 0);
    assert_int_equal(scrmd_config_set(&cfg, "admin_group", "no-such-group-scrm", err, sizeof(err)),
                     -1);
    assert_int_equal(cfg.admin_gid, 0); /* a bad value leaves the setting as it was */
    assert_int_equal(scrmd_config_set(&cfg, "admin_group", "", err, sizeof(err)), 0);
    assert_int_equal(cfg.admin_gid, (gid_t)-1);
    assert_null(cfg.admin_group);
    scrmd_config_free(&cfg);
}

static void test_socket_activation(void **state)
{
    (void)state;
    struct scrmd_config cfg;
    assert_int_equal(scrmd_config_defaults(&cfg), 0);
    char pid[32];
    /* Not for us: another pid. */
    snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
    assert_int_equal(scrmd_config_socket_activation(&cfg), 0);
    assert_int_equal(cfg.listen_fd, -1);
    /* For us, one fd (fd 3 made valid first). */
    int saved = dup(3);
    int nul = open("/dev/null", O_RDONLY);
    assert_true(nul >= 0);
    assert_int_equal(dup2(nul, 3), 3);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    setenv("LISTEN_PID", pid, 1);
    assert_int_equal(scrmd_config_socket_activation(&cfg), 1);
    assert_int_equal(cfg.listen_fd, 3);
    assert_null(getenv("LISTEN_PID"));
    assert_null(getenv("LISTEN_FDS"));
    assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
    /* Two fds: refused. */
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    assert_int_equal(scrmd_config_socket_activation(&cfg), -1);
    if (saved >= 0) {
        dup2(saved, 3);
        close(saved);
    } else {
        close(3);
    }
    close(nul);
    scrmd_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_reader_sources),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_comments_and_origins),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_set_single),
        cmocka_unit_test(test_socket_activation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
