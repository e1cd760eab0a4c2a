/*
 * scrmd configuration: defaults, the configuration file (simple "key = value" lines, documented in
 * scrmd(8)), command-line options and the environment, merged into one struct scrmd_config that
 * main.c hands to the resource manager and to the socket server (scrm_server_run).
 *
 * Precedence, lowest first: built-in defaults, the file (--config FILE, else
 * /etc/scrmd.conf if it exists), $SCRM_SOCKET, command-line options. Systemd socket activation
 * (LISTEN_PID = our pid, LISTEN_FDS = 1 or 2) gives the listening sockets from fd 3 on: the one
 * named "pcsclite" in LISTEN_FDNAMES, or bound to the pcsclite_socket path or to a path ending in
 * /pcscd.comm, is pcsclite_listen_fd; the other is listen_fd.
 */
#ifndef SCRM_DAEMON_CONFIG_H
#define SCRM_DAEMON_CONFIG_H

#include "common/compiler.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SCRMD_DEFAULT_SOCKET          "/run/scrm/scrm.sock" /* = IPC_DEFAULT_SOCKET (src/ipc/ipc.h) */
#define SCRMD_DEFAULT_CONFIG          "/etc/scrmd.conf"
#define SCRMD_DEFAULT_READER_CONF_DIR "/etc/reader.conf.d"
#define SCRMD_DEFAULT_DRIVER_DIR      "/usr/lib/pcsc/drivers"
/* Default quotas: sized so that every client at its worst (docs/pcsc.md, "Memory per client")
 * fits in well under 1 GB. */
#define SCRMD_DEFAULT_MAX_CLIENTS     256
#define SCRMD_DEFAULT_MAX_CARDS       64

struct scrmd_config {
    char **readers;       /* device strings to add ("sim:0:swallows=1"), n_readers entries */
    char **reader_origin; /* where each came from: "file:line", NULL for the command line */
    size_t n_readers;
    bool discover; /* also ask every driver to enumerate its devices (default true) */
    /* Reader sources (src/sources): reader.conf.d directory (NULL = the default, read only when
     * discover is on; "" = none) and the USB driver bundles; usb: 1 on, 0 off, -1 = discover. */
    char *reader_conf_dir;
    char *driver_dir; /* NULL = SCRMD_DEFAULT_DRIVER_DIR */
    int usb;
    uint32_t power_down_ms;    /* power-down timeout (default 5000) */
    unsigned workers;          /* rm pool threads (default 2) */
    unsigned defect_threshold; /* tracking failures before a reader is defective (default 3) */
    bool power_on_insert;      /* read the ATR at insertion (default true) */
    bool trace_ioctl;          /* log every IOCTL (default false) */
    /* SCHED_FIFO 1 for the loop thread and for a worker while clients queue for its reader,
     * when permitted (default true; src/daemon/rtprio.h) */
    bool realtime;

    /* an IOCTL hung this long is reported and cancelled (default 150000; 0 = off) */
    uint32_t ioctl_watchdog_ms;
    /* Quotas (0 = no limit): clients at once, card handles per client. (The server's worker
     * threads need no quota: each client has at most one request in flight.) */
    uint32_t max_clients;
    uint32_t max_cards_per_client;
    /* A client must send its HELLO, and complete each message it begins, within this many ms
     * (default 10000; 0 = no limit). An idle client with nothing half-sent is never cut. */
    uint32_t io_timeout_ms;
    /* Worker threads of the socket server at most (default 64; 0 = no cap). Waiting clients
     * hold no thread, so the cap only limits how many readers work in parallel. */
    uint32_t max_threads;
    char *log_spec;       /* SCRM_LOG-style levels, e.g. "rm:debug,ipc:info" (NULL = env) */
    char *socket_path;    /* Unix socket (default SCRMD_DEFAULT_SOCKET) */
    uint32_t socket_mode; /* permissions of the socket file (default 0666) */
    char *socket_group;   /* group allowed to connect (NULL = anyone the mode allows) */
    gid_t socket_gid;     /* resolved socket_group; (gid_t)-1 when none */
    /* Group whose members may use privileged commands (the simulators' insert / remove / fault /
     * radio controls, ...) besides root and the daemon's own user; NULL = none. */
    char *admin_group;
    gid_t admin_gid;        /* resolved admin_group; (gid_t)-1 when none */
    int listen_fd;          /* inherited listening socket (socket activation), -1 if none */
    char *pcsclite_socket;  /* pcsc-lite protocol socket (e.g. /run/pcscd/pcscd.comm), NULL: off */
    int pcsclite_listen_fd; /* inherited pcsc-lite socket (socket activation), -1 if none */
    bool foreground;        /* -f: stay in the foreground, log to stderr */
    char *config_file;      /* file that was read, NULL if none */
};

/* Defaults (no file read). Returns 0, or -1 if out of memory. */
SCRM_MUST_CHECK int scrmd_config_defaults(struct scrmd_config *cfg);

/*
 * Read a configuration file into cfg. Lines: "key = value", '#' comments (a whole line, or after
 * a blank following the value), blank lines. The file must be a readable regular file. Keys:
 * reader (repeatable), discover, reader_conf_dir, driver_dir, usb, power_down_ms,
 * ioctl_watchdog_ms, workers,
 * defect_threshold, power_on_insert, trace_ioctl, realtime, max_clients, max_cards_per_client, log, socket,
 * socket_mode (octal), socket_group, admin_group, pcsclite_socket (empty: off). Unknown keys and
 * bad values are errors naming file and line. Returns 0 or -1 (message in err).
 */
SCRM_MUST_CHECK int scrmd_config_load(struct scrmd_config *cfg, const char *path, char *err,
                                      size_t err_len);

/* Set one key from text (shared by the file reader and the command line). 0 or -1. */
SCRM_MUST_CHECK int scrmd_config_set(struct scrmd_config *cfg, const char *key, const char *value,
                                     char *err, size_t err_len);

/* sd_listen_fds semantics without libsystemd: if LISTEN_PID is our pid, take the LISTEN_FDS (1
 * or 2) sockets from fd 3 on as listen_fd / pcsclite_listen_fd (see above; close-on-exec) and
 * unset the variables. Returns the number of fds taken; more than two, or two of one kind, is
 * refused (-1, logged). */
SCRM_MUST_CHECK int scrmd_config_socket_activation(struct scrmd_config *cfg);

/* Free every string in cfg. */
void scrmd_config_free(struct scrmd_config *cfg);

#endif
