/*
 * One side of the IFD-bridge comparison (bench/ifd/ifd_compare.sh runs it against scrmd + the
 * bridge + libifdvpcd.so, then against pcscd + libifdvpcd.so, the same binary each time): a fast
 * vpcd card in C (threads that connect to vpcd's ports and answer at once) and PC/SC clients.
 *
 *   ifd_compare PORT READER0 READER1 SECONDS TRIALS
 *
 * Prints key=value lines:
 *   apdu clients=N rate=APDU/s p50_us=.. p99_us=..   for 1, 2 and 8 clients (client i on reader
 * i%2) insert p50_ms=.. p99_ms=.. max_ms=..   card connect → SCardGetStatusChange reports PRESENT
 *   remove p50_ms=.. p99_ms=.. max_ms=..   card disconnect → SCardGetStatusChange reports EMPTY
 * (IFD_COMPARE_CLIENTS=N: the APDU row of N clients alone, 0: none; TRIALS 0: no event rows.)
 * With IFD_COMPARE_SLICES set, each apdu line is followed by
 *   apdu_slices clients=N rates=R1,R2,..   the row's rate in each quarter second of it
 * which shows whether a rate held over the row or moved between levels (thread placement).
 * With IFD_COMPARE_PID=PID (the daemon), each apdu line also carries what the daemon and this
 * process (its clients and the card) spent per APDU between the moment every client was connected
 * and the moment the last one stopped: voluntary context switches (a thread blocked; summed over the
 * daemon's threads from /proc/PID/task/<tid>/status, over this process's from getrusage) and CPU
 * time (the daemon's utime + stime from /proc/PID/stat, this process's from getrusage). Both are
 * counts, not rates: they do not depend on how loaded the machine is.
 * The same PC/SC calls on both sides: the binary is linked with the system's libpcsclite.so.1 and
 * the script points LD_LIBRARY_PATH at scrm's for the scrm side.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <winscard.h>

static const uint8_t atr[] = {0x3B, 0x80, 0x80, 0x01, 0x01}; /* T=1, no historical bytes */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the card ---- */

struct card {
    int port;
    int fd;
    pthread_t thread;
    uint64_t t_connected;
};

static int card_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (int i = 0; i < 500; i++) {
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            return fd;
        poll(NULL, 0, 10); /* vpcd not listening yet (daemon starting) */
    }
    close(fd);
    return -1;
}

static int read_full(int fd, uint8_t *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, b + got, n - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        int one = 1; /* vpcd writes the length and the data apart: ACK at once */
        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }
    return 0;
}

static void *card_main(void *arg)
{
    struct card *c = arg;
    uint8_t buf[70000], out[300];
    for (;;) {
        uint8_t h[2];
        if (read_full(c->fd, h, 2) < 0)
            break;
        size_t n = (size_t)h[0] << 8 | h[1];
        if (n > sizeof(buf) || read_full(c->fd, buf, n) < 0)
            break;
        size_t len = 0;
        if (n == 1 && buf[0] == 4) { /* get ATR */
            memcpy(out + 2, atr, sizeof(atr));
            len = sizeof(atr);
        } else if (n == 1) {
            continue; /* power off / on / reset: no answer */
        } else {
            out[2] = 0x90;
            out[3] = 0x00;
            len = 2;
        }
        out[0] = (uint8_t)(len >> 8);
        out[1] = (uint8_t)len;
        if (send(c->fd, out, len + 2, MSG_NOSIGNAL) != (ssize_t)(len + 2))
            break;
    }
    return NULL;
}

static int card_start(struct card *c, int port)
{
    c->port = port;
    c->fd = card_connect(port);
    if (c->fd < 0)
        return -1;
    c->t_connected = now_ns();
    return pthread_create(&c->thread, NULL, card_main, c);
}

static void card_stop(struct card *c)
{
    shutdown(c->fd, SHUT_RDWR);
    pthread_join(c->thread, NULL);
    close(c->fd);
}

/* ---- statistics ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, unsigned p)
{
    if (!n)
        return 0;
    size_t i = (n * p + 99) / 100;
    return v[i ? i - 1 : 0];
}

/* ---- cost counters (IFD_COMPARE_PID) ---- */

/* One of the daemon's threads and its voluntary switches at a sample. */
struct tid_count {
    long tid;
    uint64_t n;
};

struct cost {
    uint64_t d_csw, d_cpu_us, c_csw, c_cpu_us;
    struct tid_count *tids; /* the daemon's threads at this sample (free with cost_free) */
    size_t ntids;
};

static int g_daemon_pid;

static uint64_t task_csw(int pid, const char *tid)
{
    char path[320], line[128];
    snprintf(path, sizeof(path), "/proc/%d/task/%s/status", pid, tid);
    FILE *f = fopen(path, "r");
    uint64_t n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;
        if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
            n += v; /* a thread that blocked; involuntary ones measure the machine's load */
    }
    fclose(f);
    return n;
}

static uint64_t count_at(const struct cost *c, long tid)
{
    for (size_t i = 0; i < c->ntids; i++)
        if (c->tids[i].tid == tid)
            return c->tids[i].n;
    return 0; /* a thread started since */
}

static void cost_free(struct cost *c)
{
    free(c->tids);
    c->tids = NULL;
    c->ntids = 0;
}

/* This process's counters, and the daemon's: c->d_csw is the daemon's voluntary switches since
 * the sample `since` (none for the first sample of a row), each thread counted from its own value
 * there, so that a thread leaving during the row takes its switches with it instead of making the
 * sum go backwards. */
static void cost_sample(struct cost *c, const struct cost *since)
{
    memset(c, 0, sizeof(*c));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    c->c_csw = (uint64_t)ru.ru_nvcsw;
    c->c_cpu_us = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
                  (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    if (!g_daemon_pid)
        return;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", g_daemon_pid);
    DIR *d = opendir(path);
    size_t cap = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        long tid = strtol(e->d_name, NULL, 10);
        uint64_t n = task_csw(g_daemon_pid, e->d_name);
        if (since) {
            uint64_t n0 = count_at(since, tid);
            c->d_csw += n >= n0 ? n - n0 : 0;
        }
        if (c->ntids == cap) {
            cap = cap ? 2 * cap : 64;
            struct tid_count *t = realloc(c->tids, cap * sizeof(*t));
            if (!t) {
                fprintf(stderr, "ifd_compare: out of memory\n");
                exit(1);
            }
            c->tids = t;
        }
        c->tids[c->ntids++] = (struct tid_count){tid, n};
    }
    if (d)
        closedir(d);
    snprintf(path, sizeof(path), "/proc/%d/stat", g_daemon_pid);
    FILE *f = fopen(path, "r");
    char buf[1024];
    if (f && fgets(buf, sizeof(buf), f)) {
        const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
        unsigned long long ut = 0, st = 0;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
            c->d_cpu_us = (ut + st) * 1000000u / (uint64_t)sysconf(_SC_CLK_TCK);
    }
    if (f)
        fclose(f);
}

/* ---- PC/SC ---- */

struct client {
    const char *reader;
    double seconds;
    uint64_t *lat;
    size_t n, cap;
    int failed;
    pthread_barrier_t *ready, *start, *end;
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    SCARDCONTEXT ctx;
    SCARDHANDLE h;
    DWORD proto;
    if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx) != SCARD_S_SUCCESS ||
        SCardConnect(ctx, c->reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &h,
                     &proto) != SCARD_S_SUCCESS) {
        c->failed = 1;
        pthread_barrier_wait(c->ready);
        pthread_barrier_wait(c->start);
        pthread_barrier_wait(c->end);
        return NULL;
    }
    const SCARD_IO_REQUEST *pci = proto == SCARD_PROTOCOL_T1 ? SCARD_PCI_T1 : SCARD_PCI_T0;
    static const BYTE apdu[] = {0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00};
    pthread_barrier_wait(c->ready); /* connected: the daemon's threads for us exist */
    pthread_barrier_wait(c->start);
    uint64_t end = now_ns() + (uint64_t)(c->seconds * 1e9);
    while (now_ns() < end) {
        BYTE resp[258];
        DWORD rlen = sizeof(resp);
        uint64_t t0 = now_ns();
        LONG rv = SCardTransmit(h, pci, apdu, sizeof(apdu), NULL, resp, &rlen);
        uint64_t t1 = now_ns();
        if (rv != SCARD_S_SUCCESS || rlen != 2 || resp[0] != 0x90) {
            c->failed = 1;
            break;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 4096;
            c->lat = realloc(c->lat, c->cap * sizeof(*c->lat));
        }
        c->lat[c->n++] = t1 - t0;
    }
    pthread_barrier_wait(c->end); /* still connected: the daemon's threads for us still exist */
    SCardDisconnect(h, SCARD_LEAVE_CARD);
    SCardReleaseContext(ctx);
    return NULL;
}

/* "R1,R2,..": the clients' APDUs per second in each quarter second of the row, an APDU counted
 * in the quarter its client's running sum of latencies ends in (the clients send back to back). */
static char *quarter_rates(const struct client *cl, int nclients, double seconds)
{
    enum { QUARTER_NS = 250000000, MAX_Q = 240, ITEM = 24 };
    unsigned long q[MAX_Q] = {0};
    size_t whole = (size_t)(seconds * 4); /* a last, partial quarter is left out */
    size_t max_q = whole < MAX_Q ? whole : MAX_Q, nq = 0;
    for (int i = 0; i < nclients; i++) {
        uint64_t sum = 0;
        for (size_t j = 0; j < cl[i].n; j++) {
            sum += cl[i].lat[j];
            size_t k = sum / QUARTER_NS;
            if (k < max_q) {
                q[k]++;
                nq = k + 1 > nq ? k + 1 : nq;
            }
        }
    }
    char *out = malloc(nq * ITEM + 1);
    if (!out)
        return NULL;
    size_t off = 0;
    out[0] = '\0';
    for (size_t k = 0; k < nq; k++)
        off += (size_t)snprintf(out + off, nq * ITEM + 1 - off, "%s%lu", k ? "," : "", q[k] * 4);
    return out;
}

static int apdu_row(const char *r0, const char *r1, int nclients, double seconds)
{
    struct client cl[8] = {0};
    pthread_t th[8];
    pthread_barrier_t ready, start, end;
    pthread_barrier_init(&ready, NULL, (unsigned)nclients + 1);
    pthread_barrier_init(&start, NULL, (unsigned)nclients + 1);
    pthread_barrier_init(&end, NULL, (unsigned)nclients + 1);
    for (int i = 0; i < nclients; i++) {
        cl[i] = (struct client){.reader = i % 2 ? r1 : r0,
                                .seconds = seconds,
                                .ready = &ready,
                                .start = &start,
                                .end = &end};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    struct cost c0, c1;
    pthread_barrier_wait(&ready);
    cost_sample(&c0, NULL);
    pthread_barrier_wait(&start);
    uint64_t t0 = now_ns();
    pthread_barrier_wait(&end);
    uint64_t t_end = now_ns();
    cost_sample(&c1, &c0);
    size_t total = 0;
    int failed = 0;
    for (int i = 0; i < nclients; i++) {
        pthread_join(th[i], NULL);
        total += cl[i].n;
        failed |= cl[i].failed;
    }
    double el = (double)(t_end - t0) / 1e9;
    char *slices = getenv("IFD_COMPARE_SLICES") ? quarter_rates(cl, nclients, seconds) : NULL;
    uint64_t *all = malloc((total ? total : 1) * sizeof(*all));
    size_t k = 0;
    for (int i = 0; i < nclients; i++) {
        memcpy(all + k, cl[i].lat, cl[i].n * sizeof(*all));
        k += cl[i].n;
        free(cl[i].lat);
    }
    qsort(all, total, sizeof(*all), cmp_u64);
    double per = total ? 1.0 / (double)total : 0;
    printf("apdu clients=%d rate=%.0f p50_us=%.1f p99_us=%.1f failed=%d d_csw=%.2f d_cpu_us=%.1f "
           "c_csw=%.2f c_cpu_us=%.1f\n",
           nclients, (double)total / el, (double)pct(all, total, 50) / 1e3,
           (double)pct(all, total, 99) / 1e3, failed, (double)c1.d_csw * per,
           (double)(c1.d_cpu_us - c0.d_cpu_us) * per, (double)(c1.c_csw - c0.c_csw) * per,
           (double)(c1.c_cpu_us - c0.c_cpu_us) * per);
    if (slices)
        printf("apdu_slices clients=%d rates=%s\n", nclients, slices);
    free(slices);
    cost_free(&c0);
    cost_free(&c1);
    fflush(stdout);
    free(all);
    pthread_barrier_destroy(&ready);
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&end);
    return failed;
}

/* Wait until the reader's state has `flag`; returns the time it was seen (ns), 0 on error. */
static uint64_t wait_flag(SCARDCONTEXT ctx, const char *reader, DWORD flag)
{
    SCARD_READERSTATE rs = {.szReader = reader, .dwCurrentState = SCARD_STATE_UNAWARE};
    if (SCardGetStatusChange(ctx, 0, &rs, 1) != SCARD_S_SUCCESS)
        return 0;
    while (!(rs.dwEventState & flag)) {
        rs.dwCurrentState = rs.dwEventState & ~SCARD_STATE_CHANGED;
        if (SCardGetStatusChange(ctx, 10000, &rs, 1) != SCARD_S_SUCCESS)
            return 0;
    }
    return now_ns();
}

static void event_rows(int port, const char *r1, int trials)
{
    SCARDCONTEXT ctx;
    if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx) != SCARD_S_SUCCESS)
        return;
    uint64_t *ins = calloc((size_t)trials, sizeof(*ins)), *rem = calloc((size_t)trials, 8);
    int n = 0;
    srand(1);
    for (int i = 0; i < trials; i++) {
        if (!wait_flag(ctx, r1, SCARD_STATE_EMPTY))
            break;
        poll(NULL, 0, 50 + rand() % 400); /* a random phase against the daemons' poll periods */
        struct card c;
        if (card_start(&c, port + 1) < 0)
            break;
        uint64_t t = wait_flag(ctx, r1, SCARD_STATE_PRESENT);
        if (!t)
            break;
        ins[n] = t - c.t_connected;
        poll(NULL, 0, 50 + rand() % 400);
        uint64_t t0 = now_ns();
        card_stop(&c);
        t = wait_flag(ctx, r1, SCARD_STATE_EMPTY);
        if (!t)
            break;
        rem[n++] = t - t0;
    }
    qsort(ins, (size_t)n, sizeof(*ins), cmp_u64);
    qsort(rem, (size_t)n, sizeof(*rem), cmp_u64);
    printf("insert trials=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", n,
           (double)pct(ins, (size_t)n, 50) / 1e6, (double)pct(ins, (size_t)n, 99) / 1e6,
           n ? (double)ins[n - 1] / 1e6 : 0.0);
    printf("remove trials=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", n,
           (double)pct(rem, (size_t)n, 50) / 1e6, (double)pct(rem, (size_t)n, 99) / 1e6,
           n ? (double)rem[n - 1] / 1e6 : 0.0);
    free(ins);
    free(rem);
    SCardReleaseContext(ctx);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s PORT READER0 READER1 SECONDS TRIALS\n", argv[0]);
        return 2;
    }
    int port = (int)strtol(argv[1], NULL, 10);
    double seconds = strtod(argv[4], NULL);
    int trials = (int)strtol(argv[5], NULL, 10);
    const char *pid = getenv("IFD_COMPARE_PID");
    g_daemon_pid = pid ? (int)strtol(pid, NULL, 10) : 0;
    SCARDCONTEXT ctx;
    if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx) != SCARD_S_SUCCESS)
        return 1;
    /* A run before this one has taken its cards away: start once the daemon has seen that (a
     * daemon that polls would otherwise still show the old card as present) */
    if (!wait_flag(ctx, argv[2], SCARD_STATE_EMPTY) ||
        !wait_flag(ctx, argv[3], SCARD_STATE_EMPTY)) {
        fprintf(stderr, "ifd_compare: the readers did not show up empty\n");
        return 1;
    }
    struct card c0;
    if (card_start(&c0, port) < 0) {
        fprintf(stderr, "ifd_compare: cannot reach vpcd on port %d\n", port);
        return 1;
    }
    struct card c1;
    if (card_start(&c1, port + 1) < 0)
        return 1;
    if (!wait_flag(ctx, argv[2], SCARD_STATE_PRESENT) ||
        !wait_flag(ctx, argv[3], SCARD_STATE_PRESENT)) {
        fprintf(stderr, "ifd_compare: the cards did not show up\n");
        return 1;
    }
    SCardReleaseContext(ctx);
    int failed = 0;
    static const int clients[] = {1, 2, 8};
    const char *only = getenv("IFD_COMPARE_CLIENTS"); /* e.g. "2": that row alone */
    for (size_t i = 0; i < 3; i++)
        if (!only || (int)strtol(only, NULL, 10) == clients[i])
            failed |= apdu_row(argv[2], argv[3], clients[i], seconds);
    card_stop(&c1);
    if (trials > 0)
        event_rows(port, argv[3], trials);
    card_stop(&c0);
    return failed;
}
