/*
 * The client of `make bench-compare` (bench/compare/compare.py): one binary, linked against the
 * system's libpcsclite.so.1, run once against pcscd and once against scrmd (scrm's library through
 * LD_LIBRARY_PATH). Each command prints key=value figures on one line.
 *
 *   pcsc_compare wait N                    until N readers are listed (at most 30 s)
 *   pcsc_compare present READER...         until each reader has a card (at most 30 s)
 *   pcsc_compare absent READER...          until each reader is empty (at most 30 s)
 *   pcsc_compare apdu SECONDS READER...    one client thread per reader, SELECT MF in a loop:
 *                                          apdus, rate (/s), p50, p99 (µs)
 *   pcsc_compare events READER PORT N      N insertions and N removals of the fast card
 *                                          (vpcd_card.h) into the reader listening on PORT,
 *                                          each timed until SCardGetStatusChange returns: p50, p99
 *   pcsc_compare control SECONDS           SCardEstablishContext+Release, SCardListReaders,
 *                                          SCardGetStatusChange(timeout 0) on every reader: /s,
 *                                          each the best of 5 rounds
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

#include "vpcd_card.h"

static const BYTE select_mf[] = {0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00};

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

static double pct(uint64_t *v, size_t n, unsigned p)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), cmp_u64);
    size_t i = n * p / 100;
    return (double)v[i < n ? i : n - 1];
}

static void die(const char *what, LONG rc)
{
    fprintf(stderr, "pcsc_compare: %s: %s (0x%lX)\n", what, pcsc_stringify_error(rc),
            (unsigned long)rc);
    exit(1);
}

static SCARDCONTEXT establish(void)
{
    SCARDCONTEXT c;
    LONG rc = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &c);
    if (rc != SCARD_S_SUCCESS)
        die("SCardEstablishContext", rc);
    return c;
}

/* Reader names into a malloc'ed multi-string; *count gets their number. */
static char *list_readers(SCARDCONTEXT c, unsigned *count)
{
    DWORD len = SCARD_AUTOALLOCATE;
    char *ms = NULL;
    LONG rc = SCardListReaders(c, NULL, (LPSTR)&ms, &len);
    *count = 0;
    if (rc == SCARD_E_NO_READERS_AVAILABLE)
        return NULL;
    if (rc != SCARD_S_SUCCESS)
        die("SCardListReaders", rc);
    char *copy = malloc(len);
    memcpy(copy, ms, len);
    SCardFreeMemory(c, ms);
    for (const char *p = copy; *p; p += strlen(p) + 1)
        (*count)++;
    return copy;
}

static int cmd_wait(unsigned want)
{
    SCARDCONTEXT c = establish();
    uint64_t end = now_ns() + 30000000000u;
    for (;;) {
        unsigned n;
        free(list_readers(c, &n));
        if (n >= want)
            break;
        if (now_ns() > end) {
            fprintf(stderr, "pcsc_compare: only %u of %u readers\n", n, want);
            return 1;
        }
        /* Wait for the reader list to change (pcsc-lite's \\?PnP?\Notification). */
        SCARD_READERSTATE rs = {.szReader = "\\\\?PnP?\\Notification",
                                .dwCurrentState = (DWORD)n << 16};
        (void)SCardGetStatusChange(c, 1000, &rs, 1);
    }
    unsigned n;
    char *names = list_readers(c, &n);
    for (const char *p = names; p && *p; p += strlen(p) + 1)
        printf("reader=%s\n", p);
    free(names);
    SCardReleaseContext(c);
    printf("readers=%u\n", n);
    return 0;
}

/* Wait until the reader's state has (or, with absent, lacks) a card; returns the ns it took. */
static uint64_t await_card(SCARDCONTEXT c, const char *reader, bool present, uint32_t timeout_ms)
{
    uint64_t t0 = now_ns();
    SCARD_READERSTATE rs = {.szReader = reader, .dwCurrentState = SCARD_STATE_UNAWARE};
    for (;;) {
        LONG rc = SCardGetStatusChange(c, rs.dwCurrentState == SCARD_STATE_UNAWARE ? 0 : timeout_ms,
                                       &rs, 1);
        if (rc != SCARD_S_SUCCESS && rc != SCARD_E_TIMEOUT)
            die(reader, rc);
        DWORD st = rs.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
        if (present ? (st & SCARD_STATE_PRESENT) != 0 : (st & SCARD_STATE_EMPTY) != 0)
            return now_ns() - t0;
        rs.dwCurrentState = st;
        if (now_ns() - t0 > (uint64_t)timeout_ms * 1000000u) {
            fprintf(stderr, "pcsc_compare: %s: no %s\n", reader, present ? "card" : "removal");
            exit(1);
        }
    }
}

static int cmd_present(bool present, int argc, char **argv)
{
    SCARDCONTEXT c = establish();
    for (int i = 0; i < argc; i++)
        await_card(c, argv[i], present, 30000);
    SCardReleaseContext(c);
    printf("%s=%d\n", present ? "present" : "absent", argc);
    return 0;
}

/* ---- APDU round trips ---- */

struct worker {
    const char *reader;
    double seconds;
    pthread_barrier_t *start;
    uint64_t *lat;
    size_t n, cap;
};

static void *apdu_thread(void *arg)
{
    struct worker *w = arg;
    SCARDCONTEXT c = establish();
    SCARDHANDLE h;
    DWORD proto;
    LONG rc = SCardConnect(c, w->reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                           &h, &proto);
    if (rc != SCARD_S_SUCCESS)
        die(w->reader, rc);
    const SCARD_IO_REQUEST *pci = proto == SCARD_PROTOCOL_T1 ? SCARD_PCI_T1 : SCARD_PCI_T0;
    BYTE resp[258];
    pthread_barrier_wait(w->start);
    uint64_t end = now_ns() + (uint64_t)(w->seconds * 1e9);
    for (;;) {
        DWORD rlen = sizeof(resp);
        uint64_t t0 = now_ns();
        rc = SCardTransmit(h, pci, select_mf, sizeof(select_mf), NULL, resp, &rlen);
        uint64_t t1 = now_ns();
        if (rc != SCARD_S_SUCCESS)
            die("SCardTransmit", rc);
        if (rlen < 2 || resp[rlen - 2] != 0x90) {
            fprintf(stderr, "pcsc_compare: %s: unexpected answer\n", w->reader);
            exit(1);
        }
        if (w->n == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 4096;
            w->lat = realloc(w->lat, w->cap * sizeof(*w->lat));
        }
        w->lat[w->n++] = t1 - t0;
        if (t1 >= end)
            break;
    }
    SCardDisconnect(h, SCARD_LEAVE_CARD);
    SCardReleaseContext(c);
    return NULL;
}

static int cmd_apdu(double seconds, int argc, char **argv)
{
    unsigned n = (unsigned)argc;
    struct worker *w = calloc(n, sizeof(*w));
    pthread_t *t = calloc(n, sizeof(*t));
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, n + 1);
    for (unsigned i = 0; i < n; i++) {
        w[i] = (struct worker){.reader = argv[i], .seconds = seconds, .start = &start};
        pthread_create(&t[i], NULL, apdu_thread, &w[i]);
    }
    pthread_barrier_wait(&start);
    uint64_t t0 = now_ns();
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        total += w[i].n;
    }
    double elapsed = (double)(now_ns() - t0) / 1e9;
    uint64_t *all = malloc(total * sizeof(*all));
    size_t k = 0;
    for (unsigned i = 0; i < n; i++) {
        memcpy(all + k, w[i].lat, w[i].n * sizeof(*all));
        k += w[i].n;
        free(w[i].lat);
    }
    printf("clients=%u apdus=%zu rate=%.1f p50=%.1f p99=%.1f\n", n, total, (double)total / elapsed,
           pct(all, total, 50) / 1000.0, pct(all, total, 99) / 1000.0);
    free(all);
    free(w);
    free(t);
    return 0;
}

/* ---- insertion and removal ---- */

static void *serve_thread(void *arg)
{
    vpcd_card_serve(*(int *)arg, false);
    return NULL;
}

static int cmd_events(const char *reader, unsigned port, unsigned trials)
{
    SCARDCONTEXT c = establish();
    uint64_t *ins = calloc(trials, sizeof(*ins)), *rem = calloc(trials, sizeof(*rem));
    await_card(c, reader, false, 30000);
    for (unsigned i = 0; i < trials; i++) {
        uint64_t t0 = now_ns();
        int fd = vpcd_card_connect(port);
        if (fd < 0) {
            fprintf(stderr, "pcsc_compare: cannot connect a card to port %u\n", port);
            return 1;
        }
        pthread_t t;
        pthread_create(&t, NULL, serve_thread, &fd);
        await_card(c, reader, true, 10000);
        ins[i] = now_ns() - t0;
        t0 = now_ns();
        shutdown(fd, SHUT_RDWR); /* the card leaves */
        await_card(c, reader, false, 10000);
        rem[i] = now_ns() - t0;
        pthread_join(t, NULL);
        close(fd);
    }
    SCardReleaseContext(c);
    printf("trials=%u insert_p50=%.3f insert_p99=%.3f remove_p50=%.3f remove_p99=%.3f\n", trials,
           pct(ins, trials, 50) / 1e6, pct(ins, trials, 99) / 1e6, pct(rem, trials, 50) / 1e6,
           pct(rem, trials, 99) / 1e6);
    free(ins);
    free(rem);
    return 0;
}

/* ---- control path ---- */

/* Run op for `seconds`; returns calls per second. */
static double per_second(double seconds, void (*op)(void *), void *arg)
{
    uint64_t end = now_ns() + (uint64_t)(seconds * 1e9), t0 = now_ns(), n = 0, t;
    do {
        op(arg);
        n++;
        t = now_ns();
    } while (t < end);
    return (double)n / ((double)(t - t0) / 1e9);
}

static double best_of(double seconds, void (*op)(void *), void *arg)
{
    double best = 0;
    for (int round = 0; round < 5; round++) {
        double v = per_second(seconds / 5, op, arg);
        best = v > best ? v : best;
    }
    return best;
}

static void op_establish(void *arg)
{
    (void)arg;
    SCARDCONTEXT c = establish();
    SCardReleaseContext(c);
}

static void op_list(void *arg)
{
    SCARDCONTEXT c = *(SCARDCONTEXT *)arg;
    char buf[4096];
    DWORD len = sizeof(buf);
    LONG rc = SCardListReaders(c, NULL, buf, &len);
    if (rc != SCARD_S_SUCCESS)
        die("SCardListReaders", rc);
}

struct gsc_arg {
    SCARDCONTEXT c;
    SCARD_READERSTATE *rs;
    unsigned n;
};

static void op_gsc0(void *arg)
{
    struct gsc_arg *g = arg;
    for (unsigned i = 0; i < g->n; i++)
        g->rs[i].dwCurrentState = SCARD_STATE_UNAWARE;
    LONG rc = SCardGetStatusChange(g->c, 0, g->rs, g->n);
    if (rc != SCARD_S_SUCCESS && rc != SCARD_E_TIMEOUT)
        die("SCardGetStatusChange", rc);
}

static int cmd_control(double seconds)
{
    SCARDCONTEXT c = establish();
    unsigned n;
    char *names = list_readers(c, &n);
    SCARD_READERSTATE *rs = calloc(n ? n : 1, sizeof(*rs));
    const char *p = names;
    for (unsigned i = 0; i < n; i++, p += strlen(p) + 1)
        rs[i].szReader = p;
    struct gsc_arg g = {.c = c, .rs = rs, .n = n};
    /* Each call on its own, five rounds, the best round counts: on a shared machine a round that
     * other processes slowed down says nothing about the daemon. Establish+Release comes last:
     * a daemon may finish a released context's clean-up after the call returned, which would be
     * charged to whatever runs next. */
    double list = best_of(seconds, op_list, &c);
    double gsc = best_of(seconds, op_gsc0, &g);
    double est = best_of(seconds, op_establish, NULL);
    printf("establish=%.0f list=%.0f gsc0=%.0f readers=%u\n", est, list, gsc, n);
    free(rs);
    free(names);
    SCardReleaseContext(c);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && !strcmp(argv[1], "wait"))
        return cmd_wait((unsigned)strtoul(argv[2], NULL, 10));
    if (argc >= 3 && !strcmp(argv[1], "present"))
        return cmd_present(true, argc - 2, argv + 2);
    if (argc >= 3 && !strcmp(argv[1], "absent"))
        return cmd_present(false, argc - 2, argv + 2);
    if (argc >= 4 && !strcmp(argv[1], "apdu"))
        return cmd_apdu(strtod(argv[2], NULL), argc - 3, argv + 3);
    if (argc == 5 && !strcmp(argv[1], "events"))
        return cmd_events(argv[2], (unsigned)strtoul(argv[3], NULL, 10),
                          (unsigned)strtoul(argv[4], NULL, 10));
    if (argc == 3 && !strcmp(argv[1], "control"))
        return cmd_control(strtod(argv[2], NULL));
    fprintf(stderr, "usage: pcsc_compare wait N | present|absent READER... |\n"
                    "       apdu SECONDS READER... |\n"
                    "       events READER PORT N | control SECONDS\n");
    return 2;
}
