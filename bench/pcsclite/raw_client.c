/*
 * The daemon side of each protocol alone, without a client library (bench/pcsclite/compare.py):
 * one connection speaks pcsc-lite's protocol or scrm's own on a raw socket, with exactly one
 * round trip per row, so that the two front ends of one scrmd are compared message for message.
 *
 *   raw_client PCSCLITE_SOCKET SCRM_SOCKET READER SECONDS
 *   raw_client PCSCLITE_SOCKET SCRM_SOCKET READER 0 ROW.VARIANT N   (count mode: N calls of one
 *                      row, a = pcsc-lite, b = its second variant, c = scrm; bench/pcsclite/
 *                      instructions.py runs it against scrmd under callgrind)
 *
 * Rows (calls/s, one connection, one round trip each unless said):
 *   transmit           pcsc-lite TRANSMIT written at once | written as libpcsclite 1.9.9 writes it
 *                      (header, struct, APDU: three writes) | scrm TRANSMIT (one write)
 *   status             pcsc-lite STATUS | scrm STATUS
 *   reader table       pcsc-lite GET_READERS_STATE (16 x 184 bytes) | scrm LIST_READERS
 *   begin / end        BEGIN then END (two round trips) in each protocol
 *   connect / disc.    CONNECT then DISCONNECT (two round trips) in each protocol
 *   new connection     connect(2) + VERSION + close | the same + ESTABLISH (two round trips, as
 *                      SCardEstablishContext) | connect(2) + HELLO + close
 *
 * Lines: "raw ROW pcsclite=N [VARIANT=N] scrm=N", calls/s, then with SCRM_BENCH_DAEMON_PID the
 * daemon's CPU microseconds per call of each (cpu_pcsclite=, cpu_scrm=, cpu_VARIANT=). Not a test:
 * calls/s vary with the load, CPU per call much less.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cpu_time.h"
#include "daemon/pcsclite_wire.h"
#include "ipc/ipc.h"

static double seconds;
static const char *reader;
static const uint8_t apdu[] = {0x00, 0xA4, 0x04, 0x00, 0x00};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "raw_client: %s\n", what);
    exit(1);
}

static int dial(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("cannot connect");
    return fd;
}

static void put(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k <= 0)
            die("send");
        b += k;
        n -= (size_t)k;
    }
}

static void get(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t k = recv(fd, b, n, 0);
        if (k <= 0)
            die("recv");
        b += k;
        n -= (size_t)k;
    }
}

/* ---- pcsc-lite ------------------------------------------------------------------------------- */

/* Header and body in one write; returns after reading rep_len bytes. */
static void pcl_call(int fd, uint32_t cmd, const void *body, size_t len, void *rep, size_t rep_len)
{
    uint8_t buf[sizeof(struct pcl_hdr) + 256];
    struct pcl_hdr h = {.size = (uint32_t)len, .command = cmd};
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, body, len);
    put(fd, buf, sizeof h + len);
    get(fd, rep, rep_len);
}

static int pcl_open(const char *path, int32_t *context)
{
    int fd = dial(path);
    struct pcl_version v = {.major = PCL_VERSION_MAJOR, .minor = 4};
    struct pcl_establish e = {.scope = 2};
    pcl_call(fd, PCL_CMD_VERSION, &v, sizeof v, &v, sizeof v);
    pcl_call(fd, PCL_CMD_ESTABLISH_CONTEXT, &e, sizeof e, &e, sizeof e);
    if (v.rv || e.rv)
        die("pcsc-lite handshake");
    *context = (int32_t)e.context;
    return fd;
}

static int32_t pcl_connect(int fd, int32_t context)
{
    struct pcl_connect c = {.context = (uint32_t)context, .share = 2, .preferred = 3};
    snprintf(c.reader, sizeof c.reader, "%s", reader);
    pcl_call(fd, PCL_CMD_CONNECT, &c, sizeof c, &c, sizeof c);
    if (c.rv)
        die("pcsc-lite CONNECT");
    return c.card;
}

static void pcl_disconnect(int fd, int32_t card)
{
    struct pcl_card_disp d = {.card = card};
    pcl_call(fd, PCL_CMD_DISCONNECT, &d, sizeof d, &d, sizeof d);
    if (d.rv)
        die("pcsc-lite DISCONNECT");
}

/* TRANSMIT in one write, or in three as libpcsclite 1.9.9 sends it. */
static void pcl_transmit(int fd, int32_t card, int split)
{
    /* the size covers the struct only: the APDU follows outside it */
    struct pcl_hdr h = {.size = sizeof(struct pcl_transmit), .command = PCL_CMD_TRANSMIT};
    struct pcl_transmit t = {.card = card,
                             .send_pci_protocol = 2,
                             .send_pci_length = 16,
                             .send_length = sizeof apdu,
                             .recv_pci_protocol = 3,
                             .recv_pci_length = 16,
                             .recv_length = 258};
    uint8_t resp[258];
    if (split) {
        put(fd, &h, sizeof h);
        put(fd, &t, sizeof t);
        put(fd, apdu, sizeof apdu);
    } else {
        struct iovec iov[3] = {{&h, sizeof h}, {&t, sizeof t}, {(void *)apdu, sizeof apdu}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};
        if (sendmsg(fd, &m, MSG_NOSIGNAL) != (ssize_t)(sizeof h + sizeof t + sizeof apdu))
            die("sendmsg");
    }
    get(fd, &t, sizeof t);
    if (t.rv || t.recv_length > sizeof resp)
        die("pcsc-lite TRANSMIT");
    get(fd, resp, t.recv_length);
}

/* ---- scrm's protocol ------------------------------------------------------------------------- */

static uint32_t seq;

/* One request (fixed part + variable part) in one write; the reply's body into rep. */
static uint32_t scrm_call(int fd, uint16_t cmd, const void *fixed, size_t flen, const void *var,
                          size_t vlen, void *rep, size_t rep_cap)
{
    uint8_t buf[512];
    struct ipc_hdr h = {
        .size = (uint32_t)(sizeof h + flen + vlen), .cmd = cmd, .seq = ++seq, .status = 0};
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, fixed, flen);
    if (vlen)
        memcpy(buf + sizeof h + flen, var, vlen);
    put(fd, buf, h.size);
    get(fd, &h, sizeof h);
    if (h.size < sizeof h || h.size - sizeof h > rep_cap || h.seq != seq)
        die("scrm reply");
    get(fd, rep, h.size - sizeof h);
    return h.status;
}

static int scrm_open(const char *path)
{
    int fd = dial(path);
    struct ipc_hello_req q = {.magic = IPC_MAGIC,
                              .major = IPC_VERSION_MAJOR,
                              .minor = IPC_VERSION_MINOR,
                              .max_msg = IPC_MSG_MAX};
    struct ipc_hello_rep r;
    if (scrm_call(fd, IPC_CMD_HELLO, &q, sizeof q, NULL, 0, &r, sizeof r))
        die("HELLO");
    return fd;
}

static uint64_t scrm_connect(int fd)
{
    struct ipc_connect_req q = {.share = 2, .protocols = 3, .name_len = (uint32_t)strlen(reader)};
    struct ipc_connect_rep r;
    if (scrm_call(fd, IPC_CMD_CONNECT, &q, sizeof q, reader, q.name_len, &r, sizeof r))
        die("scrm CONNECT");
    return r.card;
}

static void scrm_disconnect(int fd, uint64_t card)
{
    struct ipc_card_disp_req q = {.card = card};
    struct ipc_none r;
    if (scrm_call(fd, IPC_CMD_DISCONNECT, &q, sizeof q, NULL, 0, &r, sizeof r))
        die("scrm DISCONNECT");
}

/* ---- Rows ------------------------------------------------------------------------------------ */

/* One operation of each row and protocol, for the count mode. */
static const char *pcl_path, *scrm_path;
static int pfd, sfd;
static int32_t ctx, pcard;
static uint64_t scard;

static void op_transmit(void)
{
    pcl_transmit(pfd, pcard, 0);
}
static void op_transmit_split(void)
{
    pcl_transmit(pfd, pcard, 1);
}
static void op_transmit_scrm(void)
{
    struct ipc_transmit_req q = {.card = scard, .recv_max = 258, .send_len = sizeof apdu};
    uint8_t r[sizeof(struct ipc_transmit_rep) + 258];
    if (scrm_call(sfd, IPC_CMD_TRANSMIT, &q, sizeof q, apdu, sizeof apdu, r, sizeof r))
        die("scrm TRANSMIT");
}
static void op_status(void)
{
    struct pcl_card q = {.card = pcard};
    pcl_call(pfd, PCL_CMD_STATUS, &q, sizeof q, &q, sizeof q);
}
static void op_status_scrm(void)
{
    struct ipc_card_req q = {.card = scard};
    uint8_t r[sizeof(struct ipc_status_rep) + IPC_READER_NAME_MAX];
    if (scrm_call(sfd, IPC_CMD_STATUS, &q, sizeof q, NULL, 0, r, sizeof r))
        die("scrm STATUS");
}
static void op_table(void)
{
    static struct pcl_reader_state table[PCL_FIXED_READERS];
    pcl_call(pfd, PCL_CMD_GET_READERS_STATE, NULL, 0, table, sizeof table);
}
static void op_table_scrm(void)
{
    struct ipc_none q = {0};
    static uint8_t r[IPC_MSG_MAX];
    if (scrm_call(sfd, IPC_CMD_LIST_READERS, &q, sizeof q, NULL, 0, r, sizeof r))
        die("scrm LIST_READERS");
}
static void op_beginend(void)
{
    struct pcl_card q = {.card = pcard};
    struct pcl_card_disp d = {.card = pcard};
    pcl_call(pfd, PCL_CMD_BEGIN_TRANSACTION, &q, sizeof q, &q, sizeof q);
    pcl_call(pfd, PCL_CMD_END_TRANSACTION, &d, sizeof d, &d, sizeof d);
}
static void op_beginend_scrm(void)
{
    struct ipc_card_req q = {.card = scard};
    struct ipc_card_disp_req d = {.card = scard};
    struct ipc_none r;
    if (scrm_call(sfd, IPC_CMD_BEGIN_TRANSACTION, &q, sizeof q, NULL, 0, &r, sizeof r) ||
        scrm_call(sfd, IPC_CMD_END_TRANSACTION, &d, sizeof d, NULL, 0, &r, sizeof r))
        die("scrm BEGIN/END");
}
static void op_connect(void)
{
    pcl_disconnect(pfd, pcl_connect(pfd, ctx));
}
static void op_connect_scrm(void)
{
    scrm_disconnect(sfd, scrm_connect(sfd));
}
static void op_newconn(void)
{
    int fd = dial(pcl_path);
    struct pcl_version v = {.major = PCL_VERSION_MAJOR, .minor = 4};
    pcl_call(fd, PCL_CMD_VERSION, &v, sizeof v, &v, sizeof v);
    close(fd);
}
static void op_newconn_est(void)
{
    int32_t x;
    close(pcl_open(pcl_path, &x));
}
static void op_newconn_scrm(void)
{
    close(scrm_open(scrm_path));
}

/* A row: its name, then the pcsc-lite variants and scrm's (NULL: none). */
static const struct row {
    const char *name, *label_b;
    void (*a)(void), (*b)(void), (*c)(void);
} rows[] = {
    {"transmit", "pcsclite_split", op_transmit, op_transmit_split, op_transmit_scrm},
    {"status", NULL, op_status, NULL, op_status_scrm},
    {"reader_table", NULL, op_table, NULL, op_table_scrm},
    {"begin+end", NULL, op_beginend, NULL, op_beginend_scrm},
    {"connect+disconnect", NULL, op_connect, NULL, op_connect_scrm},
    {"new_connection", "pcsclite_establish", op_newconn, op_newconn_est, op_newconn_scrm},
};

/* Calls/s of op; *cpu: the daemon's CPU microseconds per call (SCRM_BENCH_DAEMON_PID), or -1. */
static double rate(void (*op)(void), double *cpu)
{
    unsigned long n = 0;
    double s0 = now(), end = s0 + seconds, d0 = cpu_daemon(), d1;
    while (now() < end)
        for (int k = 0; k < 16; k++, n++)
            op();
    d1 = cpu_daemon();
    *cpu = d0 >= 0 && d1 >= 0 ? (d1 - d0) * 1e6 / (double)n : -1;
    return (double)n / (now() - s0);
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 7) {
        fprintf(stderr, "usage: raw_client PCSCLITE_SOCKET SCRM_SOCKET READER SECONDS\n"
                        "       raw_client PCSCLITE_SOCKET SCRM_SOCKET READER 0 ROW.VARIANT N\n");
        return 2;
    }
    pcl_path = argv[1];
    scrm_path = argv[2];
    reader = argv[3];
    seconds = strtod(argv[4], NULL) / (2.0 * (double)(sizeof rows / sizeof rows[0]));
    pfd = pcl_open(pcl_path, &ctx);
    pcard = pcl_connect(pfd, ctx);
    sfd = scrm_open(scrm_path);
    scard = scrm_connect(sfd);
    if (argc == 7) {
        /* Count mode (instruction counts of the daemon, e.g. under callgrind): ROW.a, .b or .c
         * done N times. */
        const char *dot = strrchr(argv[5], '.');
        long n = strtol(argv[6], NULL, 10);
        void (*op)(void) = NULL;
        for (size_t i = 0; dot && i < sizeof rows / sizeof rows[0]; i++)
            if (strlen(rows[i].name) == (size_t)(dot - argv[5]) &&
                strncmp(rows[i].name, argv[5], (size_t)(dot - argv[5])) == 0)
                op = dot[1] == 'a' ? rows[i].a : dot[1] == 'b' ? rows[i].b : rows[i].c;
        if (!op)
            die("unknown row");
        for (long i = 0; i < n; i++)
            op();
    } else {
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
            const struct row *r = &rows[i];
            double ca, cb = -1, cc, a = rate(r->a, &ca), c = rate(r->c, &cc);
            double b = r->b ? rate(r->b, &cb) : 0;
            printf("raw %s pcsclite=%.0f", r->name, a);
            if (r->b)
                printf(" %s=%.0f", r->label_b, b);
            printf(" scrm=%.0f", c);
            if (ca >= 0)
                printf(" cpu_pcsclite=%.1f cpu_scrm=%.1f", ca, cc);
            if (cb >= 0)
                printf(" cpu_%s=%.1f", r->label_b, cb);
            printf("\n");
        }
    }
    pcl_disconnect(pfd, pcard);
    scrm_disconnect(sfd, scard);
    close(pfd);
    close(sfd);
    return 0;
}
