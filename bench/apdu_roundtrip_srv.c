/*
 * Daemon side of bench/apdu_roundtrip: a scrmd in a child process (an rm with n simulated
 * readers holding zero-latency T=1 cards, served by scrm_server_run on a given socket), and the
 * raw Unix-socket echo server that gives the floor. Kept apart from apdu_roundtrip.c because the
 * PC/SC headers and the driver-library headers define some names differently.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "apdu_roundtrip.h"
#include "daemon/server.h"
#include "drivers/registry.h"
#include "rm/rm.h"
#include "smc/smc.h"

int bench_daemon_main(unsigned readers, unsigned empty, const char *sock)
{
    struct scrmd_config cfg;
    struct rm_config rc;
    struct smc_ctx *ctx;
    struct rm *rm;
    sigset_t ss;
    int sfd, status;

    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigprocmask(SIG_BLOCK, &ss, NULL); /* before any thread exists */
    memset(&cfg, 0, sizeof cfg);
    cfg.socket_path = (char *)sock;
    cfg.socket_mode = 0600;
    cfg.socket_gid = (gid_t)-1;
    cfg.admin_gid = (gid_t)-1;
    cfg.listen_fd = -1;
    cfg.pcsclite_listen_fd = -1;
    rm_config_init(&rc);
    ctx = smc_ctx_new();
    rm = ctx && scrm_drivers_register(ctx) == STATUS_SUCCESS ? rm_new(&rc, ctx) : NULL;
    if (!rm)
        return 1;
    for (unsigned i = 0; i < readers + empty; i++) {
        char dev[48];
        snprintf(dev, sizeof dev, i < readers ? "sim:%u:card=t1" : "sim:%u", i);
        if (rm_add_reader(rm, dev) != 0) {
            fprintf(stderr, "bench: cannot add %s\n", dev);
            return 1;
        }
    }
    sfd = signalfd(-1, &ss, SFD_CLOEXEC);
    status = scrm_server_run(rm, &cfg, sfd);
    rm_free(rm);
    smc_ctx_free(ctx);
    close(sfd);
    return status == 0 ? 0 : 1;
}

void bench_echo_server(int fd, size_t req_len, size_t rep_len)
{
    uint8_t buf[4096];
    for (;;) {
        size_t got = 0;
        while (got < req_len) {
            ssize_t n = read(fd, buf + got, req_len - got);
            if (n <= 0)
                return;
            got += (size_t)n;
        }
        if (write(fd, buf, rep_len) != (ssize_t)rep_len)
            return;
    }
}
