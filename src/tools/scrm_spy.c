/*
 * `scrm spy [--pins] [--pcap FILE]`: a live view of every APDU and IOCTL scrmd handles, for all applications at
 * once. scrm's socket protocol directly: HELLO, SPY, then one event message per line until the
 * user stops it (Ctrl-C) or the daemon goes away. Only root, scrmd's own user and members of its
 * admin_group may spy (SCARD_W_SECURITY_VIOLATION otherwise). The PIN data of VERIFY and CHANGE
 * REFERENCE DATA is shown as ** unless --pins is given. Lines are formatted by the daemon
 * (src/daemon/server_spy.c). With --pcap the APDU exchanges also go to a capture file that
 * Wireshark and tshark read (spy_capture.h).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "tools/scrm.h"
#include "tools/spy_capture.h"

static int read_full(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t got = read(fd, p, n);
        if (got < 0 && errno == EINTR)
            return -1; /* a signal: stop */
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* One message; body malloc'd into *body (body_len bytes). 0 or -1. */
static int read_msg(int fd, struct ipc_hdr *h, uint8_t **body, size_t *body_len)
{
    *body = NULL;
    if (read_full(fd, h, sizeof *h) < 0 || h->size < sizeof *h || h->size > IPC_MSG_MAX)
        return -1;
    *body_len = h->size - sizeof *h;
    *body = malloc(*body_len ? *body_len : 1);
    if (!*body || read_full(fd, *body, *body_len) < 0) {
        free(*body);
        *body = NULL;
        return -1;
    }
    return 0;
}

static int send_msg(int fd, uint16_t cmd, uint32_t seq, const void *fixed, size_t len)
{
    uint8_t buf[sizeof(struct ipc_hdr) + 64];
    struct ipc_hdr h = {.size = (uint32_t)(sizeof h + len), .cmd = cmd, .seq = seq};
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, fixed, len);
    return ipc_send_all(fd, buf, sizeof h + len);
}

static void on_signal(int sig)
{
    (void)sig; /* read() returns EINTR: the loop ends */
}

static int usage(void)
{
    fprintf(stderr, "usage: scrm spy [--pins] [--pcap FILE]\n");
    return SCRM_EXIT_USAGE;
}

int scrm_cmd_spy(int argc, char **argv)
{
    bool pins = false;
    const char *pcap = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pins") == 0 && !pins)
            pins = true;
        else if (strcmp(argv[i], "--pcap") == 0 && !pcap && i + 1 < argc && argv[i + 1][0])
            pcap = argv[++i];
        else
            return usage();
    }
    const char *path = ipc_socket_path();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct ipc_hdr h;
    uint8_t *body = NULL;
    size_t len;
    int fd;

    if (strlen(path) >= sizeof sa.sun_path)
        return scrm_fail("spy", SCARD_E_NO_SERVICE);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (fd >= 0)
            close(fd);
        return scrm_fail("spy", SCARD_E_NO_SERVICE);
    }
    struct ipc_hello_req hello = {.magic = IPC_MAGIC,
                                  .major = IPC_VERSION_MAJOR,
                                  .minor = IPC_VERSION_MINOR,
                                  .max_msg = IPC_MSG_MAX};
    struct ipc_spy_req req = {.flags = pins ? IPC_SPY_PINS : 0};
    if (send_msg(fd, IPC_CMD_HELLO, 1, &hello, sizeof hello) < 0 ||
        read_msg(fd, &h, &body, &len) < 0 || h.status != 0) {
        free(body);
        close(fd);
        return scrm_fail("spy", SCARD_E_NO_SERVICE);
    }
    free(body);
    if (send_msg(fd, IPC_CMD_SPY, 2, &req, sizeof req) < 0 || read_msg(fd, &h, &body, &len) < 0) {
        close(fd);
        return scrm_fail("spy", SCARD_F_COMM_ERROR);
    }
    free(body);
    if (h.status != 0) {
        scrm_fail("spy", (LONG)h.status);
        if (h.status == SCARD_W_SECURITY_VIOLATION)
            fprintf(stderr, "scrm: spying needs root, scrmd's own user or a member of scrmd's "
                            "admin_group (see scrmd(8))\n");
        close(fd);
        return SCRM_EXIT_FAIL;
    }
    struct sigaction act = {.sa_handler = on_signal}; /* no SA_RESTART: read() is interrupted */
    sigaction(SIGINT, &act, NULL);
    sigaction(SIGTERM, &act, NULL);
    struct spy_capture cap = {0};
    if (pcap && spy_capture_open(&cap, pcap) < 0) {
        fprintf(stderr, "scrm: spy: cannot write the capture file %s: %s\n", pcap, strerror(errno));
        close(fd);
        return SCRM_EXIT_FAIL;
    }
    fprintf(stderr, "scrm: spying on %s%s; Ctrl-C to stop\n", path,
            pins ? " (PINs shown)" : " (PINs redacted; --pins shows them)");
    if (pcap)
        fprintf(stderr, "scrm: writing APDU exchanges to %s (pcap, GSMTAP SIM; tshark -r %s)\n",
                pcap, pcap);
    int rc = SCRM_EXIT_OK;
    while (read_msg(fd, &h, &body, &len) == 0) {
        size_t skip = sizeof(struct ipc_none);
        if (h.cmd == IPC_CMD_SPY && (h.flags & IPC_FLAG_EVENT) && len >= skip) {
            printf("%.*s\n", (int)(len - skip), (const char *)body + skip);
            if (pcap) {
                char *line = strndup((const char *)body + skip, len - skip);
                struct timeval now;
                gettimeofday(&now, NULL);
                if (line && spy_capture_line(&cap, line, &now) < 0) {
                    fprintf(stderr, "scrm: spy: writing %s: %s\n", pcap, strerror(errno));
                    rc = SCRM_EXIT_FAIL;
                    free(line);
                    free(body);
                    break;
                }
                free(line);
            }
        }
        fflush(stdout);
        free(body);
    }
    close(fd);
    if (pcap) {
        if (spy_capture_close(&cap) < 0) {
            fprintf(stderr, "scrm: spy: closing %s: %s\n", pcap, strerror(errno));
            rc = SCRM_EXIT_FAIL;
        } else {
            fprintf(stderr, "scrm: %llu APDU exchange(s) written to %s\n",
                    (unsigned long long)cap.packets, pcap);
        }
    }
    return rc;
}
