/*
 * One PC/SC client program for comparing daemons (bench/pcsclite_compare.py): the same binary
 * runs against pcscd, against scrmd's pcsc-lite listener (both through the libpcsclite.so.1 it is
 * linked with, the distribution's) and against scrmd's own protocol (LD_LIBRARY_PATH makes the
 * soname scrm's library). It prints one line of figures per run:
 *
 *   pcsc_client apdu THREADS SECONDS     APDU/s summed over THREADS threads, each with its own
 *                                        context and card handle on reader (i mod readers)
 *   pcsc_client control SECONDS          calls/s of the control path, one thread: establish +
 *                                        release, list readers, connect + disconnect, status,
 *                                        begin + end transaction, status change (timeout 0)
 *
 * Each line also gives the CPU time per call of this process (cpu_client_us) and, when
 * SCRM_BENCH_DAEMON_PID names the daemon, of the daemon (cpu_daemon_us, its threads' run time
 * from /proc): unlike calls/s, these hardly depend on what else the machine runs.
 *
 * The APDU is a 5-byte SELECT-like command answered with 90 00 by every card used.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <winscard.h>

#include "cpu_time.h"

#define MAX_THREADS 64

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* " cpu_client_us=X cpu_daemon_us=Y" per call since the marks, into buf. */
static const char *cpu_per_call(char *buf, size_t cap, double self0, double daemon0,
                                unsigned long calls)
{
    double daemon1 = cpu_daemon();
    int n = snprintf(buf, cap, " cpu_client_us=%.1f", (cpu_self() - self0) * 1e6 / (double)calls);
    if (daemon0 >= 0 && daemon1 >= 0 && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " cpu_daemon_us=%.1f",
                 (daemon1 - daemon0) * 1e6 / (double)calls);
    return buf;
}

static char readers[16][256];
static unsigned n_readers;
static double seconds;

static int list_readers(void)
{
    SCARDCONTEXT c;
    char buf[4096];
    DWORD len = sizeof buf;
    if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &c) != SCARD_S_SUCCESS)
        return -1;
    if (SCardListReaders(c, NULL, buf, &len) != SCARD_S_SUCCESS) {
        SCardReleaseContext(c);
        return -1;
    }
    for (char *p = buf; *p && n_readers < 16; p += strlen(p) + 1) {
        SCARDHANDLE h;
        DWORD proto;
        /* only readers with a card */
        if (SCardConnect(c, p, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &h,
                         &proto) != SCARD_S_SUCCESS)
            continue;
        SCardDisconnect(h, SCARD_LEAVE_CARD);
        snprintf(readers[n_readers++], sizeof readers[0], "%.255s", p);
    }
    SCardReleaseContext(c);
    return n_readers ? 0 : -1;
}

struct worker {
    unsigned index;
    unsigned long count;
    int failed;
};

static void *apdu_worker(void *arg)
{
    struct worker *w = arg;
    static const BYTE apdu[] = {0x00, 0xA4, 0x04, 0x00, 0x00};
    SCARDCONTEXT c;
    SCARDHANDLE h;
    DWORD proto;
    double end;

    if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &c) != SCARD_S_SUCCESS ||
        SCardConnect(c, readers[w->index % n_readers], SCARD_SHARE_SHARED,
                     SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &h, &proto) != SCARD_S_SUCCESS) {
        w->failed = 1;
        return NULL;
    }
    const SCARD_IO_REQUEST *pci = proto == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
    end = now() + seconds;
    while (now() < end) {
        for (int i = 0; i < 64; i++) {
            BYTE resp[258];
            DWORD len = sizeof resp;
            if (SCardTransmit(h, pci, apdu, sizeof apdu, NULL, resp, &len) != SCARD_S_SUCCESS ||
                len < 2) {
                w->failed = 1;
                goto out;
            }
            w->count++;
        }
    }
out:
    SCardDisconnect(h, SCARD_LEAVE_CARD);
    SCardReleaseContext(c);
    return NULL;
}

static int run_apdu(unsigned threads)
{
    pthread_t t[MAX_THREADS];
    struct worker w[MAX_THREADS];
    unsigned long total = 0;
    double start = now(), took, self0 = cpu_self(), daemon0 = cpu_daemon();
    char cpu[96];

    for (unsigned i = 0; i < threads; i++) {
        w[i] = (struct worker){.index = i};
        pthread_create(&t[i], NULL, apdu_worker, &w[i]);
    }
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        if (w[i].failed)
            return 1;
        total += w[i].count;
    }
    took = now() - start;
    printf("apdu threads=%u readers=%u apdu_per_s=%.0f%s\n", threads, n_readers,
           (double)total / took, cpu_per_call(cpu, sizeof cpu, self0, daemon0, total ? total : 1));
    return 0;
}

/* Calls per second of one control-path operation. */
#define MEASURE(name, ...)                                                            \
    do {                                                                              \
        unsigned long n = 0;                                                          \
        char cpu[96];                                                                 \
        double s0 = now(), e0 = s0 + seconds / 6, c0 = cpu_self(), d0 = cpu_daemon(); \
        while (now() < e0) {                                                          \
            for (int k = 0; k < 16; k++) {                                            \
                __VA_ARGS__;                                                          \
                n++;                                                                  \
            }                                                                         \
        }                                                                             \
        printf("control %s calls_per_s=%.0f%s\n", name, (double)n / (now() - s0),     \
               cpu_per_call(cpu, sizeof cpu, c0, d0, n));                             \
    } while (0)

static int run_control(void)
{
    SCARDCONTEXT c, c2;
    SCARDHANDLE h;
    DWORD proto;
    int bad = 0;

    if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &c) != SCARD_S_SUCCESS)
        return 1;
    MEASURE("establish+release", {
        bad |= SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &c2) != SCARD_S_SUCCESS;
        bad |= SCardReleaseContext(c2) != SCARD_S_SUCCESS;
    });
    MEASURE("list_readers", {
        char buf[4096];
        DWORD len = sizeof buf;
        bad |= SCardListReaders(c, NULL, buf, &len) != SCARD_S_SUCCESS;
    });
    MEASURE("connect+disconnect", {
        bad |= SCardConnect(c, readers[0], SCARD_SHARE_SHARED,
                            SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &h, &proto) != SCARD_S_SUCCESS;
        bad |= SCardDisconnect(h, SCARD_LEAVE_CARD) != SCARD_S_SUCCESS;
    });
    if (SCardConnect(c, readers[0], SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &h,
                     &proto) != SCARD_S_SUCCESS)
        return 1;
    MEASURE("status", {
        char name[256];
        DWORD nlen = sizeof name, st, pr, alen = 33;
        BYTE atr[33];
        bad |= SCardStatus(h, name, &nlen, &st, &pr, atr, &alen) != SCARD_S_SUCCESS;
    });
    MEASURE("begin+end_transaction", {
        bad |= SCardBeginTransaction(h) != SCARD_S_SUCCESS;
        bad |= SCardEndTransaction(h, SCARD_LEAVE_CARD) != SCARD_S_SUCCESS;
    });
    MEASURE("get_status_change_0", {
        SCARD_READERSTATE rs = {.szReader = readers[0], .dwCurrentState = SCARD_STATE_UNAWARE};
        bad |= SCardGetStatusChange(c, 0, &rs, 1) != SCARD_S_SUCCESS;
    });
    SCardDisconnect(h, SCARD_LEAVE_CARD);
    SCardReleaseContext(c);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pcsc_client apdu THREADS SECONDS | control SECONDS\n");
        return 2;
    }
    if (list_readers() < 0) {
        fprintf(stderr, "pcsc_client: no reader with a card\n");
        return 1;
    }
    if (strcmp(argv[1], "apdu") == 0 && argc == 4) {
        unsigned threads = (unsigned)strtoul(argv[2], NULL, 10);
        seconds = strtod(argv[3], NULL);
        if (threads < 1 || threads > MAX_THREADS)
            return 2;
        return run_apdu(threads);
    }
    if (strcmp(argv[1], "control") == 0) {
        seconds = strtod(argv[2], NULL);
        return run_control();
    }
    return 2;
}
