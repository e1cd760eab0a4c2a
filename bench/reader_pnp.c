/*
 * Reader arrival and departure as PC/SC clients see them: a client thread blocks in
 * SCardGetStatusChange(INFINITE) on \\?PnP?\Notification while the main thread adds a reader
 * (READER_ADD, as `scrm reader add sim:100` sends it) and removes it again (READER_REMOVE). Prints,
 * for each direction, the time from sending the command to its reply and to the waiting client's
 * return, p50 / p99 / max in microseconds. The daemon is a forked in-process server with one
 * simulated reader (apdu_roundtrip_srv.c).
 *
 *   bench/reader_pnp [rounds]     (default 500)
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <PCSC/winscard.h>

#include "apdu_roundtrip.h"
#include "common/timeutil.h"
#include "ipc/ipc.h"
#include "tools/scrm_ipc.h"

#define PNP "\\\\?PnP?\\Notification"

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    SCARDCONTEXT ctx;
    DWORD known;
    unsigned wakes;
    uint64_t t_ns;
    bool stop;
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    for (;;) {
        SCARD_READERSTATE rs = {.szReader = PNP, .dwCurrentState = w->known};
        LONG rc = SCardGetStatusChange(w->ctx, INFINITE, &rs, 1);
        uint64_t now = scrm_now_ns();
        pthread_mutex_lock(&w->lock);
        if (rc != SCARD_S_SUCCESS || w->stop) {
            if (!w->stop)
                fprintf(stderr, "reader_pnp: wait ended with 0x%lX\n", (unsigned long)rc);
            pthread_mutex_unlock(&w->lock);
            return NULL;
        }
        w->known = rs.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
        w->wakes++;
        w->t_ns = now;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void row(const char *what, uint64_t *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_u64);
    printf("%-34s %8.1f %8.1f %8.1f\n", what, v[n / 2] / 1e3, v[(n * 99) / 100] / 1e3,
           v[n - 1] / 1e3);
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 500;
    if (rounds == 0)
        rounds = 1;
    char dir[64], sock[96];
    snprintf(dir, sizeof dir, "/tmp/scrm-bench-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(sock, sizeof sock, "%s/scrm.sock", dir);
    pid_t pid = fork();
    if (pid == 0)
        _exit(bench_daemon_main(1, 0, sock));
    int up = 0;
    for (int i = 0; i < 30000 && !up; i++) { /* wait for the socket (bench only) */
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        memcpy(sa.sun_path, sock, strlen(sock) + 1);
        up = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (!up)
            usleep(1000);
    }
    setenv("SCRM_SOCKET", sock, 1);
    struct waiter w = {.known = 0};
    pthread_mutex_init(&w.lock, NULL);
    if (scrm_cond_init_monotonic(&w.cond) != 0)
        return 1;
    pthread_t th;
    int status = 1;
    uint64_t *add_reply = calloc(rounds, sizeof(uint64_t)),
             *add_wake = calloc(rounds, sizeof(uint64_t)),
             *rem_reply = calloc(rounds, sizeof(uint64_t)),
             *rem_wake = calloc(rounds, sizeof(uint64_t));
    if (!up || !add_reply || !add_wake || !rem_reply || !rem_wake ||
        SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &w.ctx) != SCARD_S_SUCCESS) {
        fprintf(stderr, "reader_pnp: no daemon\n");
        goto out;
    }
    SCARD_READERSTATE rs = {.szReader = PNP, .dwCurrentState = SCARD_STATE_UNAWARE};
    (void)SCardGetStatusChange(w.ctx, 0, &rs, 1);
    w.known = rs.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
    pthread_create(&th, NULL, wait_thread, &w);
    for (unsigned i = 0; i < rounds * 2; i++) {
        bool add = i % 2 == 0;
        char name[128] = "";
        pthread_mutex_lock(&w.lock);
        unsigned before = w.wakes;
        pthread_mutex_unlock(&w.lock);
        uint64_t t0 = scrm_now_ns();
        long rc =
            scrm_ipc_reader(add ? IPC_CMD_READER_ADD : IPC_CMD_READER_REMOVE,
                            add ? "sim:100:card=t1" : "SimVendor SimReader 100", name, sizeof name);
        uint64_t t1 = scrm_now_ns();
        if (rc != 0) {
            fprintf(stderr, "reader_pnp: %s failed: 0x%lX\n", add ? "add" : "remove", rc);
            break;
        }
        struct timespec dl = scrm_deadline_ms(5000);
        pthread_mutex_lock(&w.lock);
        int wrc = 0;
        while (w.wakes == before && wrc == 0)
            wrc = pthread_cond_timedwait(&w.cond, &w.lock, &dl);
        uint64_t tw = w.t_ns;
        pthread_mutex_unlock(&w.lock);
        if (wrc) {
            fprintf(stderr, "reader_pnp: the PnP waiter did not wake (round %u, wakes %u)\n", i,
                    before);
            break;
        }
        (add ? add_reply : rem_reply)[i / 2] = t1 - t0;
        (add ? add_wake : rem_wake)[i / 2] = tw - t0;
        if (i + 1 == rounds * 2)
            status = 0;
    }
    /* Stop the waiter with one more reader arrival: an SCardCancel could land between two of
     * its waits and be lost. */
    pthread_mutex_lock(&w.lock);
    w.stop = true;
    pthread_mutex_unlock(&w.lock);
    char ignored[128];
    if (scrm_ipc_reader(IPC_CMD_READER_ADD, "sim:101", ignored, sizeof ignored) != 0)
        SCardCancel(w.ctx); /* the waiter is gone already, or the daemon is */
    pthread_join(th, NULL);
    SCardReleaseContext(w.ctx);
    if (status == 0) {
        printf("reader arrival/departure through the socket, %u rounds (us)\n", rounds);
        printf("%-34s %8s %8s %8s\n", "", "p50", "p99", "max");
        row("add: command -> reply", add_reply, rounds);
        row("add: command -> PnP waiter wakes", add_wake, rounds);
        row("remove: command -> reply", rem_reply, rounds);
        row("remove: command -> PnP waiter wakes", rem_wake, rounds);
    }
out:
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    unlink(sock);
    rmdir(dir);
    free(add_reply);
    free(add_wake);
    free(rem_reply);
    free(rem_wake);
    return status;
}
