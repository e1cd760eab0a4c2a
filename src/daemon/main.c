/*
 * scrmd, the smart card resource manager daemon.
 *
 * main() gathers the configuration (config.c: defaults, file, $SCRM_SOCKET, options, socket
 * activation), blocks SIGTERM and SIGINT and receives them through a signalfd, detaches unless
 * -f, creates the libsmc context and the resource manager (src/rm), adds the configured readers,
 * the readers of reader.conf.d and USB (src/sources), lets drivers enumerate theirs, starts the
 * reader sources thread (USB hot-plug; SIGHUP, blocked everywhere and read from a second
 * signalfd, re-reads the configuration and starts or removes readers to match), then hands the
 * rm to the socket server (scrm_server_run in
 * server.c) with the signalfd as its stop descriptor: the server returns once a signal is
 * pending. With --no-socket the rm runs alone (monitoring, power management, IOCTL trace) until
 * a signal arrives. Shutdown is the reverse order: server, rm, context.
 *
 * Logging: stderr in the foreground, syslog (ident "scrmd") as a daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/config.h"
#include "daemon/rtprio.h"
#include "daemon/server.h"
#include "drivers/registry.h"
#include "rm/rm.h"
#include "smc/smc.h"
#include "sources/sources.h"
#include "sources/usb.h"

#ifndef SCRM_VERSION
#define SCRM_VERSION "unknown"
#endif

enum {
    OPT_TRACE = 256,
    OPT_POWER_DOWN,
    OPT_NO_DISCOVER,
    OPT_NO_SOCKET,
    OPT_READER_CONF_DIR,
    OPT_DRIVER_DIR,
    OPT_NO_USB,
    OPT_ADMIN_GROUP,
    OPT_LOG_FILE,
    OPT_PID_FILE,
    OPT_PCSCLITE,
    OPT_NO_REALTIME
};

static const struct option long_opts[] = {
    {"foreground", no_argument, NULL, 'f'},
    {"config", required_argument, NULL, 'c'},
    {"reader", required_argument, NULL, 'r'},
    {"socket", required_argument, NULL, 's'},
    {"log", required_argument, NULL, 'l'},
    {"trace-ioctl", no_argument, NULL, OPT_TRACE},
    {"power-down-ms", required_argument, NULL, OPT_POWER_DOWN},
    {"no-discover", no_argument, NULL, OPT_NO_DISCOVER},
    {"reader-conf-dir", required_argument, NULL, OPT_READER_CONF_DIR},
    {"driver-dir", required_argument, NULL, OPT_DRIVER_DIR},
    {"no-usb", no_argument, NULL, OPT_NO_USB},
    {"no-socket", no_argument, NULL, OPT_NO_SOCKET},
    {"admin-group", required_argument, NULL, OPT_ADMIN_GROUP},
    {"debug", no_argument, NULL, 'd'},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"pid-file", required_argument, NULL, OPT_PID_FILE},
    {"pcsclite-socket", required_argument, NULL, OPT_PCSCLITE},
    {"no-realtime", no_argument, NULL, OPT_NO_REALTIME},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};
static const char short_opts[] = "fc:r:s:l:dhV";

static void usage(FILE *out)
{
    char drivers[256];
    fprintf(out,
            "Usage: scrmd [options]\n"
            "The scrm smart card resource manager: serves PC/SC applications on a Unix socket.\n"
            "\n"
            "  -f, --foreground        stay in the foreground, log to stderr\n"
            "  -c, --config FILE       configuration file (default %s if it exists)\n"
            "  -r, --reader DEVICE     add a reader, e.g. sim:0:swallows=1 (repeatable)\n"
            "      --no-discover       do not ask the drivers to enumerate their devices, do not\n"
            "                          read %s or look for USB readers\n"
            "      --reader-conf-dir DIR  readers declared in DIR (pcsc-lite format; \"\" = none)\n"
            "      --driver-dir DIR    USB driver bundles (default %s)\n"
            "      --no-usb            do not look for USB readers\n"
            "  -s, --socket PATH       socket path (default $SCRM_SOCKET, else %s)\n"
            "      --no-socket         run the resource manager without serving clients\n"
            "      --admin-group GROUP members may use privileged commands (simulator\n"
            "                          controls); root and scrmd's own user always may\n"
            "      --pcsclite-socket PATH  also serve pcsc-lite's protocol on PATH, e.g.\n"
            "                          /run/pcscd/pcscd.comm (drop-in for pcscd)\n"
            "      --no-realtime       every thread at normal priority (default: the loop\n"
            "                          thread and busy readers' workers at SCHED_FIFO 1)\n"
            "      --trace-ioctl       log every IOCTL the resource manager sends\n"
            "      --power-down-ms N   power-down timeout in milliseconds (default 5000)\n"
            "  -l, --log SPEC          log levels, e.g. rm:debug,ipc:info (default $SCRM_LOG)\n"
            "  -d, --debug             debug logging in every category (not APDU data)\n"
            "      --log-file FILE     log to FILE (appended, time-stamped) instead of syslog\n"
            "      --pid-file FILE     write scrmd's pid to FILE, removed at exit\n"
            "  -h, --help              this help\n"
            "  -V, --version           print the version\n"
            "\n"
            "Drivers in this build (DEVICE = driver:address[:option=value,...]): %s\n"
            "See scrmd(8) for the device strings and the configuration file.\n",
            SCRMD_DEFAULT_CONFIG, SCRMD_DEFAULT_READER_CONF_DIR, SCRMD_DEFAULT_DRIVER_DIR,
            SCRMD_DEFAULT_SOCKET, scrm_drivers_names(drivers, sizeof drivers, ", "));
}

struct run_opts {
    bool no_socket;
    bool debug;
    const char *log_file, *pid_file;
    const char *socket_env; /* $SCRM_SOCKET when it replaced the file's socket (logged) */
    const char *log_opt;    /* -l SPEC */
    bool log_env_override;  /* $SCRM_LOG applied over the file's `log =` (logged) */
};

/* First pass: only --config, --help, --version. Returns 1 to exit 0, -1 to exit 1, 0 to go on. */
static int first_pass(int argc, char **argv, const char **config)
{
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
        if (c == 'c')
            *config = optarg;
        else if (c == 'h') {
            usage(stdout);
            return 1;
        } else if (c == 'V') {
            printf("scrmd %s\n", SCRM_VERSION);
            return 1;
        }
    }
    optind = 1;
    opterr = 1;
    return 0;
}

/* One option of the second pass. 0, or -1 after printing why. */
static int apply_option(struct scrmd_config *cfg, struct run_opts *ro, int c, const char *arg)
{
    char err[256] = "";
    int rc = 0;
    switch (c) {
    case 'f': cfg->foreground = true; break;
    case 'c': break; /* read in the first pass */
    case 'r': rc = scrmd_config_set(cfg, "reader", arg, err, sizeof(err)); break;
    case 's': rc = scrmd_config_set(cfg, "socket", arg, err, sizeof(err)); break;
    case 'l': ro->log_opt = arg; break;
    case OPT_TRACE: cfg->trace_ioctl = true; break;
    case OPT_POWER_DOWN: rc = scrmd_config_set(cfg, "power_down_ms", arg, err, sizeof(err)); break;
    case OPT_NO_DISCOVER: cfg->discover = false; break;
    case OPT_READER_CONF_DIR:
        rc = scrmd_config_set(cfg, "reader_conf_dir", arg, err, sizeof(err));
        break;
    case OPT_DRIVER_DIR: rc = scrmd_config_set(cfg, "driver_dir", arg, err, sizeof(err)); break;
    case OPT_NO_USB: cfg->usb = 0; break;
    case OPT_NO_SOCKET: ro->no_socket = true; break;
    case OPT_ADMIN_GROUP: rc = scrmd_config_set(cfg, "admin_group", arg, err, sizeof(err)); break;
    case 'd': ro->debug = true; break;
    case OPT_LOG_FILE: ro->log_file = arg; break;
    case OPT_PID_FILE: ro->pid_file = arg; break;
    case OPT_NO_REALTIME: cfg->realtime = false; break;
    case OPT_PCSCLITE: rc = scrmd_config_set(cfg, "pcsclite_socket", arg, err, sizeof(err)); break;
    default: usage(stderr); return -1;
    }
    if (rc < 0)
        fprintf(stderr, "scrmd: %s\n", err);
    return rc;
}

/* Defaults, file, environment, options. 0, 1 (exit 0) or -1 (exit 1). */
static int configure(int argc, char **argv, struct scrmd_config *cfg, struct run_opts *ro)
{
    const char *config = NULL;
    int rc = first_pass(argc, argv, &config);
    if (rc)
        return rc;
    if (scrmd_config_defaults(cfg) < 0)
        return -1;
    char err[512];
    if (!config && access(SCRMD_DEFAULT_CONFIG, F_OK) == 0)
        config = SCRMD_DEFAULT_CONFIG;
    if (config && scrmd_config_load(cfg, config, err, sizeof(err)) < 0) {
        fprintf(stderr, "scrmd: %s\n", err);
        return -1;
    }
    const char *env = getenv("SCRM_SOCKET");
    if (env && *env) {
        if (strcmp(env, cfg->socket_path) != 0)
            ro->socket_env = env;
        if (scrmd_config_set(cfg, "socket", env, err, sizeof(err)) < 0) {
            fprintf(stderr, "scrmd: SCRM_SOCKET: %s\n", err);
            return -1;
        }
    }
    int c;
    while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1)
        if (apply_option(cfg, ro, c, optarg) < 0)
            return -1;
    if (optind < argc) {
        fprintf(stderr, "scrmd: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* Detach from the terminal: fork twice, new session, stdio on /dev/null. */
static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        return -1;
    umask(022);
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ? -1 : 0;
    close(fd);
    return rc;
}

/* Block SIGTERM / SIGINT in every thread and return a signalfd that becomes readable on them. */
static int stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Block SIGHUP in every thread and return a signalfd for it: the reader sources thread reloads
 * the configuration when it is readable (no signal handler runs). */
static int reload_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* The reader.conf.d directory in effect: the configured one, else the default when drivers
 * may discover readers. NULL or "" for none. */
static const char *reader_conf_dir(const struct scrmd_config *cfg)
{
    if (cfg->reader_conf_dir)
        return cfg->reader_conf_dir;
    return cfg->discover ? SCRMD_DEFAULT_READER_CONF_DIR : NULL;
}

/* Make the configured readers (reader = lines, reader.conf.d) those of cfg. Returns how many
 * run, or -1 if out of memory. */
static ssize_t apply_configured(struct sources *src, const struct scrmd_config *cfg)
{
    struct strlist want = {0};
    ssize_t n = -1;
    if (sources_configured(cfg->readers, cfg->n_readers, reader_conf_dir(cfg), &want) == 0)
        n = (ssize_t)sources_apply(src, &want);
    else
        log_error(core, "out of memory reading the reader configuration");
    strlist_free(&want);
    return n;
}

/* Register the configured readers, let the drivers enumerate, set up USB. Returns how many
 * readers work. */
static size_t add_readers(struct rm *rm, struct sources *src, const struct scrmd_config *cfg)
{
    ssize_t n = apply_configured(src, cfg);
    size_t ok = n > 0 ? (size_t)n : 0;
    if (cfg->discover) {
        int d = rm_discover(rm);
        if (d > 0)
            ok += (size_t)d;
    }
    if (cfg->usb == 1 || (cfg->usb < 0 && cfg->discover)) {
        struct usb_source *usb = usb_udev_new();
        if (usb)
            (void)sources_set_usb(src, usb,
                                  cfg->driver_dir ? cfg->driver_dir : SCRMD_DEFAULT_DRIVER_DIR);
    }
    return ok;
}

/* Does a running reader come from the device string dev ("sim:0:card=t1" runs as "sim:0")? */
static bool running(struct smc_ctx *ctx, const struct rm_reader_info *list, size_t n,
                    const char *dev)
{
    char name[sizeof list->device];
    if (!smc_device_name(ctx, dev, name, sizeof name))
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].device, name) == 0)
            return true;
    return false;
}

/* The start-up summary at the default log level: what runs, where, with which readers, and
 * each configured reader that did not start with the file and line it came from (the reason is
 * the driver's or the resource manager's error just above). */
static void log_startup(struct smc_ctx *ctx, struct rm *rm, const struct scrmd_config *cfg,
                        const struct run_opts *ro)
{
    struct rm_reader_info *list = NULL;
    size_t n = 0;
    unsigned refused = 0;
    char drivers[256];

    if (ro->socket_env)
        log_info(core, "socket %s from $SCRM_SOCKET (overrides the configuration's)",
                 ro->socket_env);
    if (ro->log_env_override)
        log_info(core, "log levels: $SCRM_LOG applied over 'log = %s' of %s", cfg->log_spec,
                 cfg->config_file ? cfg->config_file : "the configuration");
    /* Which fd is which: systemd documents an order only among the sockets of one unit. */
    char sock[64], pcl[96] = "";
    if (cfg->listen_fd >= 0)
        snprintf(sock, sizeof sock, "fd %d from systemd", cfg->listen_fd);
    if (cfg->pcsclite_listen_fd >= 0)
        snprintf(pcl, sizeof pcl, ", pcsc-lite socket fd %d from systemd", cfg->pcsclite_listen_fd);
    log_info(core, "scrmd %s starting: socket %s%s, configuration %s, drivers %s", SCRM_VERSION,
             ro->no_socket         ? "none (--no-socket)"
             : cfg->listen_fd >= 0 ? sock
                                   : cfg->socket_path,
             pcl, cfg->config_file ? cfg->config_file : "none (built-in defaults)",
             scrm_drivers_names(drivers, sizeof drivers, ", "));
    if (rm_list_readers(rm, &list, &n) != SCARD_S_SUCCESS)
        n = 0;
    for (size_t i = 0; i < cfg->n_readers; i++) {
        if (running(ctx, list, n, cfg->readers[i]))
            continue;
        refused++;
        log_warn(core, "%s: reader %s refused (reason above; drivers in this build: %s)",
                 cfg->reader_origin && cfg->reader_origin[i] ? cfg->reader_origin[i]
                                                             : "command line",
                 cfg->readers[i], drivers);
    }
    for (size_t i = 0; i < n; i++)
        log_info(core, "reader '%s' (%s) started", list[i].name, list[i].device);
    free(list);
    if (n == 0)
        log_warn(core,
                 "no readers%s: clients will see SCARD_E_NO_READERS_AVAILABLE until one is "
                 "added (reader = ... in the configuration, or -r sim:0 to try the simulator)",
                 refused ? " started" : " configured");
    else
        log_info(core, "%zu reader(s) started, %u refused", n, refused);
}

/* The command line, kept for SIGHUP: the configuration is read again exactly as at start-up. */
struct reload_ctx {
    int argc;
    char **argv;
    const char *config_file; /* the file read at start-up (NULL if none) */
};

static int configure(int argc, char **argv, struct scrmd_config *cfg, struct run_opts *ro);

/* SIGHUP (on the sources thread): re-read file and options; apply the reader settings. */
static void reload(void *user, struct sources *src)
{
    struct reload_ctx *rc = user;
    struct scrmd_config cfg = {0};
    struct run_opts ro = {false};
    optind = 0; /* getopt starts over (glibc) */
    if (configure(rc->argc, rc->argv, &cfg, &ro) != 0) {
        /* configure() printed the reason on stderr, which a daemon does not have: read the
         * file once more to put it in the log. */
        char err[512] = "see the messages before this one";
        struct scrmd_config probe;
        if (rc->config_file && scrmd_config_defaults(&probe) == 0) {
            if (scrmd_config_load(&probe, rc->config_file, err, sizeof err) == 0)
                snprintf(err, sizeof err, "in the command line");
            scrmd_config_free(&probe);
        }
        log_error(core, "SIGHUP: the configuration has errors (%s); configuration kept", err);
    } else {
        ssize_t n = apply_configured(src, &cfg);
        log_info(core, "SIGHUP: configuration reloaded, %zd configured reader(s)", n);
    }
    scrmd_config_free(&cfg);
}

/* Wait for SIGTERM / SIGINT without a socket server. */
static void wait_for_signal(int sfd)
{
    struct pollfd p = {.fd = sfd, .events = POLLIN};
    while (poll(&p, 1, -1) < 0 && errno == EINTR)
        ;
}

/* The names are spelled here: strsignal() is not required to be thread-safe (POSIX), and other
 * threads still run. */
static void log_stop_reason(int sfd)
{
    struct signalfd_siginfo si;
    if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        log_info(core, "%s received, stopping",
                 si.ssi_signo == SIGTERM  ? "Terminated"
                 : si.ssi_signo == SIGINT ? "Interrupt"
                                          : "signal");
}

/* Everything after the configuration: returns the exit status. */
static int serve(struct scrmd_config *cfg, const struct run_opts *ro, int sfd, int hup,
                 struct reload_ctx *rctx)
{
    struct rm_config rc;
    rm_config_init(&rc);
    rc.power_down_ms = cfg->power_down_ms;
    rc.watchdog_ms = cfg->ioctl_watchdog_ms;
    rc.workers = cfg->workers;
    rc.trace = cfg->trace_ioctl;
    rc.defect_threshold = cfg->defect_threshold;
    rc.power_on_insert = cfg->power_on_insert;
    struct smc_ctx *ctx = smc_ctx_new();
    struct rm *rm = ctx && scrm_drivers_register(ctx) == STATUS_SUCCESS ? rm_new(&rc, ctx) : NULL;
    struct sources *src = rm ? sources_new(rm) : NULL;
    int status = 1;
    if (!rm || !src) {
        log_error(core, "cannot start the resource manager");
        goto out;
    }
    (void)add_readers(rm, src, cfg);
    if (sources_start(src, hup, reload, rctx) < 0)
        goto out;
    log_startup(ctx, rm, cfg, ro);
    if (ro->no_socket) {
        wait_for_signal(sfd);
        status = 0;
    } else {
        (void)scrm_rt_setup(cfg->realtime);
        status = scrm_server_run(rm, cfg, sfd) == 0 ? 0 : 1;
    }
    log_stop_reason(sfd);
out:
    sources_free(src);
    rm_free(rm);
    smc_ctx_free(ctx);
    return status;
}

/* Log levels, lowest precedence first: defaults (core:info, so the start-up lines show, the rest
 * warn), `log =` of the file, $SCRM_LOG, -l, -d. */
static void set_log_levels(const struct scrmd_config *cfg, struct run_opts *ro)
{
    const char *env = getenv("SCRM_LOG");
    char *saved = env ? strdup(env) : NULL;
    unsetenv("SCRM_LOG");
    scrm_log_init_from_env(); /* the library defaults */
    scrm_log_set_level(SCRM_LOG_CAT_core, SCRM_LOG_info);
    if (cfg->log_spec && scrm_log_configure(cfg->log_spec) != 0)
        fprintf(stderr, "scrmd: some log settings in '%s' were ignored\n", cfg->log_spec);
    if (saved) {
        SCRM_IGNORE(scrm_log_configure(saved), "its errors were reported at start-up");
        ro->log_env_override = cfg->log_spec != NULL;
        setenv("SCRM_LOG", saved, 1);
        free(saved);
    }
    if (ro->log_opt && scrm_log_configure(ro->log_opt) != 0)
        fprintf(stderr, "scrmd: some log settings in '%s' were ignored\n", ro->log_opt);
    for (int i = 0; ro->debug && i < SCRM_LOG_CAT_COUNT; i++)
        if (i != SCRM_LOG_CAT_apdu && !scrm_log_enabled((enum scrm_log_cat)i, SCRM_LOG_debug))
            scrm_log_set_level((enum scrm_log_cat)i, SCRM_LOG_debug);
}

/* --log-file: the file becomes stderr (appended), messages get a time stamp. */
static int open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "scrmd: --log-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = dup2(fd, 2) < 0 ? -1 : 0;
    close(fd);
    if (rc == 0)
        scrm_log_set_timestamps(true);
    return rc;
}

/* path made absolute against the current directory (daemon mode changes it to /). malloc'd. */
static char *absolute(const char *path)
{
    char cwd[4096];
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
        return strdup(path);
    size_t len = strlen(cwd) + strlen(path) + 2;
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "%s/%s", cwd, path);
    return out;
}

/* --pid-file: our pid and a newline; 0 or -1 (reported). */
static int write_pid_file(const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
        log_error(core, "--pid-file %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    scrm_log_init_from_env();
    struct scrmd_config cfg = {0};
    struct run_opts ro = {.no_socket = false};
    int rc = configure(argc, argv, &cfg, &ro);
    if (rc != 0) {
        scrmd_config_free(&cfg);
        return rc < 0 ? 1 : 0;
    }
    set_log_levels(&cfg, &ro);
    int status = 1;
    int sfd = -1, hup = -1;
    struct reload_ctx rctx = {argc, argv, NULL};
    bool pid_written = false;
    char *log_file = ro.log_file ? absolute(ro.log_file) : NULL;
    char *pid_file = ro.pid_file ? absolute(ro.pid_file) : NULL;
    if ((ro.log_file && !log_file) || (ro.pid_file && !pid_file))
        goto out;
    if (scrmd_config_socket_activation(&cfg) < 0)
        goto out;
    sfd = stop_signals();
    hup = reload_signal();
    if (sfd < 0 || hup < 0) {
        fprintf(stderr, "scrmd: cannot set up signal handling: %s\n", strerror(errno));
        goto out;
    }
    if (!cfg.foreground) {
        if (daemonize() < 0) {
            fprintf(stderr, "scrmd: cannot detach: %s\n", strerror(errno));
            goto out;
        }
        if (!ro.log_file)
            scrm_log_set_output(SCRM_LOG_TO_SYSLOG, "scrmd");
    }
    if (log_file && open_log_file(log_file) < 0)
        goto out;
    if (pid_file) {
        if (write_pid_file(pid_file) < 0)
            goto out;
        pid_written = true;
    }
    rctx.config_file = cfg.config_file;
    status = serve(&cfg, &ro, sfd, hup, &rctx);
    log_info(core, "scrmd stopped");
out:
    if (pid_written)
        unlink(pid_file);
    free(pid_file);
    free(log_file);
    if (sfd >= 0)
        close(sfd);
    if (hup >= 0)
        close(hup);
    scrmd_config_free(&cfg);
    return status;
}
