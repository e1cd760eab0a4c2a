/*
 * Benchmark of the PC/SC path, printed as one table:
 *   - the floor: a raw Unix-socket ping-pong between two processes (as client and daemon are)
 *     with the byte counts of a TRANSMIT request and reply (49 and 29 bytes); the same between two
 *     threads of one process is printed for comparison;
 *   - SCardTransmit round trips through the whole stack (libpcsclite.so.1 -> scrmd -> rm -> libsmc
 *     -> simulated reader with a zero-latency T=1 card), p50/p99 and APDUs/s, for 1, 2 and 8
 *     client threads each on its own reader, with 8 and with 256 readers in the daemon;
 *   - card-event latency: from the moment a simulated insertion/removal is requested
 *     (SCardControl on a DIRECT handle opened beforehand) until a SCardGetStatusChange waiting in
 *     another thread returns, p50/p99;
 *   - the daemon's resident memory (VmRSS) with 1 and 256 readers, after traffic.
 * Each daemon runs in a forked child (bench_daemon_main) on a private socket.
 *
 *   apdu_roundtrip [apdus-per-thread]     (default 20000)
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <PCSC/reader.h>
#include <PCSC/winscard.h>

#include "apdu_roundtrip.h"

#define MAX_THREADS 8
#define EVENTS      200

static const BYTE apdu[] = {0x80, 0xEC, 0x00, 0x00, 0x03, 0x01, 0x02, 0x03, 0x00};
static unsigned iterations = 20000;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* p50 and p99 of n samples (sorted in place), in microseconds. */
static void percentiles(uint64_t *v, size_t n, double *p50, double *p99)
{
    size_t i50 = n / 2, i99 = n * 99 / 100;
    qsort(v, n, sizeof *v, cmp_u64);
    *p50 = (double)v[i50] / 1000.0;
    *p99 = (double)v[i99] / 1000.0;
}

/* ---- Daemons ----------------------------------------------------------------------------------
 */

struct daemon {
    pid_t pid;
    char dir[64], sock[108];
};

static int start_daemon(struct daemon *d, unsigned readers, unsigned empty)
{
    snprintf(d->dir, sizeof d->dir, "/tmp/scrm-bench-XXXXXX");
    if (!mkdtemp(d->dir))
        return -1;
    snprintf(d->sock, sizeof d->sock, "%s/scrm.sock", d->dir);
    d->pid = fork();
    if (d->pid == 0)
        _exit(bench_daemon_main(readers, empty, d->sock));
    for (int i = 0; i < 30000; i++) { /* wait for the socket (bench only: a short sleep loop) */
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(fd);
            setenv("SCRM_SOCKET", d->sock, 1);
            return 0;
        }
        close(fd);
        if (waitpid(d->pid, NULL, WNOHANG) == d->pid)
            return -1;
        usleep(1000);
    }
    return -1;
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static void stop_daemon(struct daemon *d)
{
    char path[128];
    kill(d->pid, SIGTERM);
    waitpid(d->pid, NULL, 0);
    snprintf(path, sizeof path, "%s/scrm.sock", d->dir);
    unlink(path);
    rmdir(d->dir);
}

/* ---- Full-stack APDUs -------------------------------------------------------------------------
 */

struct worker {
    unsigned reader;
    pthread_barrier_t *start;
    uint64_t *lat, elapsed;
    LONG rc;
};

static void *apdu_thread(void *arg)
{
    struct worker *w = arg;
    SCARDCONTEXT ctx = 0;
    SCARDHANDLE card = 0;
    DWORD proto;
    char name[64];
    BYTE resp[64];

    snprintf(name, sizeof name, "SimVendor SimReader %u", w->reader);
    w->rc = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
    if (w->rc == SCARD_S_SUCCESS)
        w->rc = SCardConnect(ctx, name, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T1, &card, &proto);
    for (unsigned i = 0; w->rc == SCARD_S_SUCCESS && i < 500; i++) { /* warm up */
        DWORD n = sizeof resp;
        w->rc = SCardTransmit(card, SCARD_PCI_T1, apdu, sizeof apdu, NULL, resp, &n);
    }
    pthread_barrier_wait(w->start);
    uint64_t t_start = now_ns();
    for (unsigned i = 0; w->rc == SCARD_S_SUCCESS && i < iterations; i++) {
        DWORD n = sizeof resp;
        uint64_t t0 = now_ns();
        w->rc = SCardTransmit(card, SCARD_PCI_T1, apdu, sizeof apdu, NULL, resp, &n);
        w->lat[i] = now_ns() - t0;
    }
    w->elapsed = now_ns() - t_start;
    SCardReleaseContext(ctx);
    return NULL;
}

static int run_apdus(const char *label, unsigned threads)
{
    struct worker w[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    pthread_barrier_t start;
    uint64_t *all = calloc((size_t)threads * iterations, sizeof *all), wall = 0;
    double p50, p99;

    pthread_barrier_init(&start, NULL, threads);
    for (unsigned t = 0; t < threads; t++) {
        w[t] = (struct worker){.reader = t, .start = &start, .lat = all + (size_t)t * iterations};
        pthread_create(&th[t], NULL, apdu_thread, &w[t]);
    }
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        if (w[t].rc != SCARD_S_SUCCESS) {
            fprintf(stderr, "apdu_roundtrip: %s\n", pcsc_stringify_error(w[t].rc));
            free(all);
            return -1;
        }
        if (w[t].elapsed > wall)
            wall = w[t].elapsed;
    }
    pthread_barrier_destroy(&start);
    percentiles(all, (size_t)threads * iterations, &p50, &p99);
    printf("%-34s %7u %9.1f %9.1f %11.0f\n", label, threads, p50, p99,
           (double)threads * iterations * 1e9 / (double)wall);
    free(all);
    return 0;
}

/* ---- Raw socket floor -------------------------------------------------------------------------
 */

struct echo {
    int fd;
};

static void *echo_thread(void *arg)
{
    struct echo *e = arg;
    bench_echo_server(e->fd, 49, 29);
    return NULL;
}

/*
 * Ping-pong with the byte counts of a TRANSMIT request and reply. The floor for the full stack is
 * the two-process form: client and daemon are separate processes, and a switch between processes
 * costs more than one between threads of a process, which is printed too for comparison.
 */
static double raw_pingpong(bool processes)
{
    int sv[2];
    pthread_t th;
    pid_t child = -1;
    struct echo e;
    uint8_t buf[64] = {0};
    uint64_t *lat = calloc(iterations, sizeof *lat);
    double p50, p99;

    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    e.fd = sv[1];
    if (processes) {
        child = fork();
        if (child == 0) {
            close(sv[0]);
            bench_echo_server(sv[1], 49, 29);
            _exit(0);
        }
        close(sv[1]);
    } else {
        pthread_create(&th, NULL, echo_thread, &e);
    }
    uint64_t t_start = now_ns();
    for (unsigned i = 0; i < iterations; i++) {
        uint64_t t0 = now_ns();
        size_t got = 0;
        if (write(sv[0], buf, 49) != 49)
            break;
        while (got < 29) {
            ssize_t n = read(sv[0], buf, 29 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        lat[i] = now_ns() - t0;
    }
    uint64_t wall = now_ns() - t_start;
    close(sv[0]);
    if (processes) {
        waitpid(child, NULL, 0);
    } else {
        pthread_join(th, NULL);
        close(sv[1]);
    }
    percentiles(lat, iterations, &p50, &p99);
    printf("%-34s %7u %9.1f %9.1f %11.0f\n",
           processes ? "raw ping-pong, 2 processes (floor)" : "raw ping-pong, 2 threads", 1u, p50,
           p99, (double)iterations * 1e9 / (double)wall);
    free(lat);
    return p50;
}

/* ---- Card events ------------------------------------------------------------------------------
 */

struct waiter {
    SCARDCONTEXT ctx;
    const char *reader;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int armed, done; /* waits started / events seen so far */
    uint64_t returned;
    DWORD state;
};

static void *event_thread(void *arg)
{
    struct waiter *w = arg;
    SCARD_READERSTATE rs = {.szReader = w->reader};
    for (int i = 0; i < EVENTS; i++) {
        rs.dwCurrentState = w->state;
        pthread_mutex_lock(&w->lock);
        w->armed++;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        do {
            if (SCardGetStatusChange(w->ctx, INFINITE, &rs, 1) != SCARD_S_SUCCESS)
                return NULL;
            rs.dwCurrentState = rs.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
        } while (((rs.dwEventState ^ w->state) & (SCARD_STATE_PRESENT | SCARD_STATE_EMPTY)) == 0);
        pthread_mutex_lock(&w->lock);
        w->returned = now_ns();
        w->state = rs.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
        w->done++;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

/* Wait until *counter (armed or done) reaches n. */
static void wait_count(struct waiter *w, const int *counter, int n)
{
    pthread_mutex_lock(&w->lock);
    while (*counter < n)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

static int run_events(const char *reader)
{
    struct waiter w = {.reader = reader};
    SCARDCONTEXT ctl;
    SCARDHANDLE direct;
    SCARD_READERSTATE rs = {.szReader = reader};
    DWORD proto, got;
    pthread_t th;
    uint64_t lat[EVENTS];
    double p50, p99;

    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &w.ctx) ||
        SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctl) ||
        SCardConnect(ctl, reader, SCARD_SHARE_DIRECT, 0, &direct, &proto)) {
        fprintf(stderr, "apdu_roundtrip: cannot open %s\n", reader);
        return -1;
    }
    SCardGetStatusChange(w.ctx, 0, &rs, 1);
    w.state = rs.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
    pthread_create(&th, NULL, event_thread, &w);
    for (int i = 0; i < EVENTS; i++) {
        bool insert = i % 2 == 0;
        wait_count(&w, &w.armed, i + 1);
        /* The DIRECT handle saw the previous removal; clear the warning outside the timing. */
        SCardReconnect(direct, SCARD_SHARE_DIRECT, 0, SCARD_LEAVE_CARD, &proto);
        usleep(2000); /* let the waiter reach the daemon (bench only) */
        uint64_t t0 = now_ns();
        LONG rc = SCardControl(direct, insert ? SCARD_CTL_CODE(2049) : SCARD_CTL_CODE(2050), NULL,
                               0, NULL, 0, &got);
        if (rc != SCARD_S_SUCCESS) {
            fprintf(stderr, "apdu_roundtrip: simulated %s: %s\n", insert ? "insertion" : "removal",
                    pcsc_stringify_error(rc));
            return -1;
        }
        wait_count(&w, &w.done, i + 1);
        lat[i] = w.returned - t0;
    }
    pthread_join(th, NULL);
    percentiles(lat, EVENTS, &p50, &p99);
    printf("%-34s %7s %9.1f %9.1f %11s\n", "card event -> GetStatusChange", "-", p50, p99, "-");
    SCardDisconnect(direct, SCARD_LEAVE_CARD);
    SCardReleaseContext(ctl);
    SCardReleaseContext(w.ctx);
    return 0;
}

/* ---- Main -------------------------------------------------------------------------------------
 */

static int full_stack(unsigned readers, bool events, long *rss)
{
    struct daemon d = {0};
    static const unsigned counts[] = {1, 2, 8};
    char label[48];
    int rc = 0;

    if (start_daemon(&d, readers, 1) < 0) {
        fprintf(stderr, "apdu_roundtrip: cannot start a daemon with %u readers\n", readers);
        return -1;
    }
    snprintf(label, sizeof label, "full stack, %u readers", readers);
    for (size_t i = 0; i < sizeof counts / sizeof counts[0] && rc == 0; i++)
        if (counts[i] <= readers)
            rc = run_apdus(label, counts[i]);
    if (rc == 0 && events) {
        char reader[64];
        snprintf(reader, sizeof reader, "SimVendor SimReader %u", readers);
        rc = run_events(reader);
    }
    *rss = rss_kib(d.pid);
    stop_daemon(&d);
    return rc;
}

int main(int argc, char **argv)
{
    long rss1 = 0, rss8 = 0, rss256 = 0;
    double floor;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1)
        iterations = (unsigned)strtoul(argv[1], NULL, 10);
    if (iterations < 100)
        iterations = 100;
    printf("scrm PC/SC round trip: %u APDUs per thread, APDU 80 EC 00 00 03 01 02 03 00 (T=1)\n\n",
           iterations);
    printf("%-34s %7s %9s %9s %11s\n", "measurement", "threads", "p50 us", "p99 us", "per second");
    (void)raw_pingpong(false);
    floor = raw_pingpong(true);
    if (full_stack(1, false, &rss1) || full_stack(8, true, &rss8) ||
        full_stack(256, false, &rss256))
        return 1;
    printf("\ndaemon resident memory (VmRSS): %ld KiB with 1 reader, %ld KiB with 8, %ld KiB with "
           "256\n",
           rss1, rss8, rss256);
    printf("floor p50 %.1f us; targets: full-stack p50 <= 3x floor (%.1f us), event p99 < 2000 "
           "us, 256-reader latency within 10%% of 1-reader\n",
           floor, 3 * floor);
    return 0;
}
