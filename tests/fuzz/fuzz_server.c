/*
 * libFuzzer target for scrmd's server: whole conversations through the real server (socket,
 * framing, conversation rules, the command handlers, the server core, the resource manager and
 * simulated readers with cards), one connection per input, run in this process (the server on
 * its own thread, started once, on a socket in a private temporary directory).
 *
 * Input: the first byte chooses the mode.
 *   raw (bit 0 set): the rest is written to the socket as it is, while replies are read; then
 *     the harness half-closes and reads until the server closes.
 *   records (bit 0 clear): the rest is a list of records (1 byte command, 2 bytes body length,
 *     the body). The harness makes each record a well-framed request (size, command, sequence
 *     number) and sends them one at a time, waiting for the reply to each, so conversations get
 *     deep: with bit 1 it sends a valid HELLO first; with bit 2 it fills the length fields of
 *     CONNECT / TRANSMIT / CONTROL / SET_ATTRIB from the body. A card handle field whose first
 *     byte is below 0xF0 is replaced by one of the handles the server gave on this connection,
 *     and a CONNECT name whose first byte is below 4 by the name of a configured reader, so
 *     that handles and names need not be guessed.
 * Every input ends with the connection closed and the server's teardown of it finished (the
 * server closes its end only after the teardown), so inputs do not leak into each other except
 * through the readers (cards may have been removed or inserted).
 *
 * Checks: the server never crashes (sanitizers), every reply is well framed and answers the
 * request (same command and sequence number), and a request is answered within 60 s unless a
 * transaction of this connection may be what it waits for.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/server.h"
#include "drivers/registry.h"
#include "ipc/ipc.h"
#include "rm/rm.h"
#include "smc/sim.h"
#include "smc/smc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLY_TIMEOUT_MS 60000 /* generous: a loaded machine is slow, a hang is forever */
#define MAX_HANDLES      16

static const char *const readers[] = {"SimVendor SimReader 0", "SimVendor SimReader 1",
                                      "SimVendor SimReader 2"};
static char sock_path[108];

static int stop_fd = -1; /* the server runs until it is written (scrm_fuzz_replay_done) */
static pthread_t server_thread;

static void *server_main(void *arg)
{
    static struct scrmd_config cfg;
    struct rm_config rc;
    struct smc_ctx *ctx = smc_ctx_new();
    struct rm *rm;
    (void)arg;

    scrm_assert(ctx && scrm_drivers_register(ctx) == STATUS_SUCCESS);
    rm_config_init(&rc);
    rm = rm_new(&rc, ctx);
    scrm_assert(rm != NULL);
    scrm_assert(rm_add_reader(rm, "sim:0:card=t1") == 0);
    scrm_assert(rm_add_reader(rm, "sim:1:card=t0") == 0);
    scrm_assert(rm_add_reader(rm, "sim:2") == 0);
    memset(&cfg, 0, sizeof cfg);
    cfg.socket_path = sock_path;
    cfg.socket_mode = 0600;
    cfg.socket_gid = (gid_t)-1;
    cfg.admin_gid = (gid_t)-1;
    cfg.listen_fd = -1;
    cfg.pcsclite_listen_fd = -1;
    if (scrm_server_run(rm, &cfg, stop_fd) != 0) /* until scrm_fuzz_replay_done, if ever */
        abort();                                 /* the harness cannot go on without it */
    rm_free(rm);
    smc_ctx_free(ctx);
    return NULL;
}

static void start_server(void)
{
    char dir[] = "/tmp/scrm-fuzz-XXXXXX";

    if (stop_fd >= 0)
        return;
    if (getenv("SCRM_FUZZ_LOG")) /* to see what the server did with an input */
        SCRM_IGNORE(scrm_log_configure(getenv("SCRM_FUZZ_LOG")), "reports bad settings itself");
    else
        for (int c = 0; c < SCRM_LOG_CAT_COUNT; c++)
            scrm_log_set_level((enum scrm_log_cat)c, SCRM_LOG_off);
    scrm_assert(mkdtemp(dir) != NULL);
    snprintf(sock_path, sizeof sock_path, "%s/scrm.sock", dir);
    stop_fd = eventfd(0, EFD_CLOEXEC);
    scrm_assert(stop_fd >= 0 && pthread_create(&server_thread, NULL, server_main, NULL) == 0);
    for (;;) { /* until the socket answers (start-up only) */
        struct pollfd none = {.fd = -1};
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(fd);
            return;
        }
        close(fd);
        poll(&none, 0, 5);
    }
}

static int open_conn(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    scrm_assert(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    return fd;
}

/* poll() one descriptor for up to timeout_ms, whatever signals arrive meanwhile: libFuzzer's
 * SIGALRM (its -timeout watchdog, every timeout/2 + 1 s) interrupts poll(), which is never
 * restarted, and an EINTR taken for a timeout made the harness report a request as unanswered
 * while its answer was on its way (the "slow reply" of earlier runs). > 0 ready, 0 timed out. */
static int poll_one(struct pollfd *p, int timeout_ms)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int left = timeout_ms, rc;
        if (timeout_ms > 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long spent =
                (now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000LL;
            left = spent >= timeout_ms ? 0 : (int)(timeout_ms - spent);
        }
        rc = poll(p, 1, left);
        if (rc >= 0 || errno != EINTR)
            return rc < 0 ? 0 : rc;
    }
}

/* ---- Reading replies --------------------------------------------------------------------------
 */

struct conv {
    int fd;
    bool eof;
    struct ipc_rx rx;
    uint64_t handles[MAX_HANDLES];
    unsigned n_handles;
    bool tx_held;      /* a BEGIN_TRANSACTION of this connection succeeded */
    bool records;      /* the harness numbered the requests (records mode) */
    uint32_t want_seq; /* the request whose reply is awaited */
    uint16_t want_cmd;
    bool got;
};

/* A complete reply: check it answers a request, learn handles. */
static void on_reply(struct conv *cv, const uint8_t *msg, size_t len)
{
    struct ipc_hdr h;
    const struct ipc_cmd_info *ci;

    memcpy(&h, msg, sizeof h);
    ci = ipc_cmd_info(h.cmd);
    scrm_assert(ci != NULL && len == h.size && len >= sizeof h + ci->rep_size);
    if (cv->records && h.seq == cv->want_seq) {
        scrm_assert(h.cmd == cv->want_cmd);
        cv->got = true;
    }
    if (h.cmd == IPC_CMD_CONNECT && h.status == 0 && cv->n_handles < MAX_HANDLES) {
        struct ipc_connect_rep rep;
        memcpy(&rep, msg + sizeof h, sizeof rep);
        cv->handles[cv->n_handles++] = rep.card;
    }
    if (h.cmd == IPC_CMD_BEGIN_TRANSACTION && h.status == 0)
        cv->tx_held = true;
}

/* Read what is there (wait up to timeout_ms for something); false at EOF. */
static bool read_some(struct conv *cv, int timeout_ms)
{
    struct pollfd p = {.fd = cv->fd, .events = POLLIN};
    if (cv->eof)
        return false;
    if (poll_one(&p, timeout_ms) <= 0)
        return true;
    for (;;) {
        uint8_t *dst;
        size_t want, len;
        const uint8_t *msg;
        const char *why = NULL;
        ssize_t n;

        ipc_rx_space(&cv->rx, &dst, &want);
        n = recv(cv->fd, dst, want, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) {
            cv->eof = true;
            return false;
        }
        switch (ipc_rx_advance(&cv->rx, (size_t)n, &msg, &len, &why)) {
        case IPC_RX_MORE: break;
        case IPC_RX_MESSAGE:
            on_reply(cv, msg, len);
            ipc_rx_next(&cv->rx);
            break;
        case IPC_RX_ERROR: scrm_assert(!"the server sent a malformed reply"); break;
        }
    }
}

/* Write all of buf, reading replies meanwhile (the server stops reading while its replies are
 * not taken). False if the connection ended. */
static bool write_all(struct conv *cv, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        struct pollfd p = {.fd = cv->fd, .events = POLLIN | POLLOUT};
        ssize_t n;
        if (poll_one(&p, REPLY_TIMEOUT_MS) <= 0) {
            scrm_assert(cv->tx_held || !"the server neither reads nor answers");
            return false;
        }
        if ((p.revents & POLLIN) && !read_some(cv, 0))
            return false;
        if (!(p.revents & POLLOUT))
            continue;
        n = send(cv->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Half-close and read until the server has torn the session down and closed. */
static void finish(struct conv *cv)
{
    shutdown(cv->fd, SHUT_WR);
    while (read_some(cv, REPLY_TIMEOUT_MS)) {
    }
    close(cv->fd);
    ipc_rx_free(&cv->rx);
}

/* ---- Records ----------------------------------------------------------------------------------
 */

static bool card_command(uint16_t cmd)
{
    return cmd >= IPC_CMD_RECONNECT && cmd <= IPC_CMD_SET_ATTRIB;
}

/* Make the body of a record usable: handle, reader name, length fields. */
static size_t fix_body(struct conv *cv, uint16_t cmd, uint8_t *body, size_t len, bool lengths)
{
    const struct ipc_cmd_info *ci = ipc_cmd_info(cmd);
    size_t fixed = ci ? ci->req_size : 0;

    if (card_command(cmd) && len >= 8 && body[0] < 0xF0 && cv->n_handles) {
        uint64_t h = cv->handles[body[0] % cv->n_handles];
        memcpy(body, &h, sizeof h);
    }
    if (cmd == IPC_CMD_CONNECT && len > fixed && body[fixed] < 4) {
        const char *name = readers[body[fixed] % 3];
        size_t nl = strlen(name);
        memcpy(body + fixed, name, nl);
        len = fixed + nl;
    }
    if (cmd == IPC_CMD_CONTROL && len >= 12) {
        /* A simulator fault (a mute card, a lost or hung reader) would stay for every later
         * input: the fault function, in either encoding of its code, becomes INFO. */
        uint32_t code, fn;
        memcpy(&code, body + 8, 4);
        fn = code - 0x42000000u < 0x1000u ? code - 0x42000000u : (code >> 2) & 0xFFFu;
        if (fn == 2048u + 3u) {
            code = SIM_IOCTL_INFO;
            memcpy(body + 8, &code, 4);
        }
    }
    if (lengths && len >= fixed) {
        uint32_t var = (uint32_t)(len - fixed);
        switch (cmd) {
        case IPC_CMD_CONNECT: memcpy(body + 8, &var, 4); break;
        case IPC_CMD_TRANSMIT:
        case IPC_CMD_CONTROL: memcpy(body + 16, &var, 4); break;
        case IPC_CMD_SET_ATTRIB: memcpy(body + 12, &var, 4); break;
        default: break;
        }
    }
    return len;
}

static void run_records(struct conv *cv, const uint8_t *data, size_t size, uint8_t mode)
{
    static uint8_t msg[sizeof(struct ipc_hdr) + 65536 + 256];
    uint32_t seq = 0;
    size_t pos = 0;

    cv->records = true;
    if (mode & 2) {
        struct ipc_hello_req req = {.magic = IPC_MAGIC,
                                    .major = IPC_VERSION_MAJOR,
                                    .minor = IPC_VERSION_MINOR,
                                    .max_msg = IPC_MSG_MAX};
        struct ipc_hdr h = {.size = sizeof h + sizeof req, .cmd = IPC_CMD_HELLO, .seq = ++seq};
        memcpy(msg, &h, sizeof h);
        memcpy(msg + sizeof h, &req, sizeof req);
        cv->want_seq = seq;
        cv->want_cmd = IPC_CMD_HELLO;
        cv->got = false;
        if (!write_all(cv, msg, h.size))
            return;
        while (!cv->got && read_some(cv, REPLY_TIMEOUT_MS)) {
        }
    }
    while (pos + 3 <= size && !cv->eof) {
        uint16_t cmd = data[pos] & 0x0F;
        size_t len = (size_t)(data[pos + 1] | (data[pos + 2] << 8)) & 0x3FFF, have;
        struct ipc_hdr h = {.cmd = cmd, .seq = ++seq};
        bool wait_reply;

        pos += 3;
        have = size - pos < len ? size - pos : len;
        memset(msg + sizeof h, 0, len);
        memcpy(msg + sizeof h, data + pos, have);
        pos += have;
        len = fix_body(cv, cmd, msg + sizeof h, len, (mode & 4) != 0);
        h.size = (uint32_t)(sizeof h + len);
        memcpy(msg, &h, sizeof h);
        /* No reply to wait for: STOP_WAIT has none, a status-change wait may last. */
        wait_reply = cmd != IPC_CMD_STOP_WAIT;
        if (cmd == IPC_CMD_GET_STATUS_CHANGE && len >= 4 && (msg[sizeof h] & IPC_GSC_WAIT))
            wait_reply = false;
        cv->want_seq = seq;
        cv->want_cmd = cmd;
        cv->got = false;
        if (!write_all(cv, msg, h.size))
            return;
        if (!wait_reply) {
            read_some(cv, 0);
            continue;
        }
        while (!cv->got && !cv->eof) {
            struct pollfd p = {.fd = cv->fd, .events = POLLIN};
            if (poll_one(&p, REPLY_TIMEOUT_MS) <= 0) {
                /* Only a transaction of this very connection may hold a request this long. */
                scrm_assert(cv->tx_held || !"the server did not answer a request");
                return;
            }
            read_some(cv, 0);
        }
    }
}

/* The replay's end (replay.c): stop the server and join it, so that its pool joins the workers
 * that left after a second idle (a replay longer than that otherwise ends with one unjoined,
 * which ThreadSanitizer reports as a thread leak). libFuzzer never calls it. */
void scrm_fuzz_replay_done(void);
void scrm_fuzz_replay_done(void)
{
    uint64_t one = 1;
    if (stop_fd < 0)
        return;
    scrm_assert(write(stop_fd, &one, sizeof one) == (ssize_t)sizeof one);
    scrm_assert(pthread_join(server_thread, NULL) == 0);
    close(stop_fd);
    stop_fd = -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct conv cv = {.fd = -1};

    if (size < 1 || size > 200000)
        return 0;
    start_server();
    cv.fd = open_conn();
    ipc_rx_init(&cv.rx, true);
    if (data[0] & 1)
        (void)write_all(&cv, data + 1, size - 1);
    else
        run_records(&cv, data + 1, size - 1, data[0]);
    finish(&cv);
    return 0;
}
