/*
 * Benchmark of the daemon's loop thread under status-change load: CLIENTS connections each start
 * a SCardGetStatusChange wait on ENTRIES reader names no reader has (every name distinct), then
 * all of them close; ROUNDS times. Meanwhile a probe client calls SCardListReaders in a loop;
 * the table gives the probe's latency (p50 / p99 / max), the time the waiters took to register
 * and to leave, and the daemon's resident memory while they waited. The target: p99 of
 * the probe under 5 ms with 1 000 x 4 096.
 *
 *   watch_load [clients [entries [rounds]]]     (default 1000 4096 2)
 *
 * The waiting clients speak the socket protocol directly (src/ipc), one socket each; the probe
 * uses libpcsclite.so.1. The daemon is bench_daemon_main (apdu_roundtrip_srv.c) in a child.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <PCSC/winscard.h>

#include "apdu_roundtrip.h"
#include "ipc/ipc.h"

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

/* ---- Probe ----------------------------------------------------------------------------------- */

struct probe {
    atomic_bool stop;
    uint64_t *lat;
    size_t n, cap;
    unsigned errors;
};

static void *probe_main(void *arg)
{
    struct probe *p = arg;
    SCARDCONTEXT ctx;
    if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx) != SCARD_S_SUCCESS) {
        p->errors++;
        return NULL;
    }
    while (!atomic_load(&p->stop)) {
        char buf[4096];
        DWORD len = sizeof buf;
        uint64_t t0 = now_ns();
        LONG rc = SCardListReaders(ctx, NULL, buf, &len);
        uint64_t dt = now_ns() - t0;
        if (rc != SCARD_S_SUCCESS)
            p->errors++;
        if (p->n == p->cap) {
            size_t cap = p->cap ? 2 * p->cap : 4096;
            uint64_t *v = realloc(p->lat, cap * sizeof *v);
            if (!v)
                break;
            p->lat = v;
            p->cap = cap;
        }
        p->lat[p->n++] = dt;
    }
    SCardReleaseContext(ctx);
    return NULL;
}

/* ---- Waiting clients ------------------------------------------------------------------------- */

static int send_msg(int fd, uint8_t *buf, size_t len)
{
    return ipc_send_all(fd, buf, len);
}

static int recv_reply(int fd, uint8_t *buf, size_t cap)
{
    struct ipc_hdr h;
    if (ipc_recv_all(fd, &h, sizeof h) < 0 || h.size < sizeof h || h.size > cap)
        return -1;
    memcpy(buf, &h, sizeof h);
    return ipc_recv_all(fd, buf + sizeof h, h.size - sizeof h) < 0 ? -1 : (int)h.status;
}

/* Connect, HELLO, and start a wait on `entries` unknown names; the socket, or -1. */
static int start_waiter(const char *path, unsigned id, unsigned entries, uint8_t *buf, size_t cap)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct ipc_hello_req hello = {.magic = IPC_MAGIC,
                                  .major = IPC_VERSION_MAJOR,
                                  .minor = IPC_VERSION_MINOR,
                                  .max_msg = IPC_MSG_MAX};
    struct ipc_gsc_req gsc = {.flags = IPC_GSC_WAIT, .count = entries};
    struct ipc_msg m;
    size_t len;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        goto fail;
    ipc_msg_start(&m, buf, cap, IPC_CMD_HELLO, 0, 1, 0);
    ipc_msg_put(&m, &hello, sizeof hello);
    len = ipc_msg_finish(&m);
    if (!len || send_msg(fd, buf, len) < 0 || recv_reply(fd, buf, cap) != 0)
        goto fail;
    ipc_msg_start(&m, buf, cap, IPC_CMD_GET_STATUS_CHANGE, 0, 2, 0);
    ipc_msg_put(&m, &gsc, sizeof gsc);
    for (unsigned i = 0; i < entries; i++) {
        char name[64];
        int n = snprintf(name, sizeof name, "Absent Reader %u-%u", id, i);
        ipc_msg_put_u32(&m, IPC_RS_MISSING);
        ipc_msg_put_u32(&m, 0);
        ipc_msg_put_u16(&m, (uint16_t)n);
        ipc_msg_put(&m, name, (size_t)n);
    }
    len = ipc_msg_finish(&m);
    if (!len || send_msg(fd, buf, len) < 0)
        goto fail;
    return fd;
fail:
    fprintf(stderr, "watch_load: client %u: %s\n", id, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int count_fds(pid_t pid)
{
    char path[64];
    int n = 0;
    snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Wait until the daemon has closed every waiter's socket (bench only: a short sleep loop). */
static void wait_fds(pid_t pid, int base)
{
    for (int i = 0; i < 60000 && count_fds(pid) > base; i++)
        usleep(1000);
}

int main(int argc, char **argv)
{
    unsigned clients = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000;
    unsigned entries = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 4096;
    unsigned rounds = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 2;
    char dir[64] = "/tmp/scrm-bench-XXXXXX", sock[108];
    struct rlimit rl;
    struct probe p = {.n = 0};
    pthread_t th;
    pid_t pid;
    int *fds = calloc(clients ? clients : 1, sizeof *fds);
    size_t cap = IPC_MSG_MAX;
    uint8_t *buf = malloc(cap);
    double reg_ms = 0, leave_ms = 0;
    long rss_max = 0;
    int rc = 1;

    if (!fds || !buf || entries > IPC_GSC_MAX || !mkdtemp(dir))
        return 1;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    snprintf(sock, sizeof sock, "%s/scrm.sock", dir);
    pid = fork();
    if (pid == 0)
        _exit(bench_daemon_main(2, 0, sock));
    for (int i = 0; i < 30000; i++) { /* wait for the socket (bench only: a short sleep loop) */
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        memcpy(sa.sun_path, sock, strlen(sock) + 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(fd);
            break;
        }
        close(fd);
        usleep(1000);
    }
    setenv("SCRM_SOCKET", sock, 1);
    int base_fds = count_fds(pid);
    atomic_init(&p.stop, false);
    if (pthread_create(&th, NULL, probe_main, &p) != 0)
        goto out;
    for (unsigned r = 0; r < rounds; r++) {
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < clients; i++) {
            fds[i] = start_waiter(sock, i, entries, buf, cap);
            if (fds[i] < 0) {
                atomic_store(&p.stop, true);
                pthread_join(th, NULL);
                goto out;
            }
        }
        reg_ms += (double)(now_ns() - t0) / 1e6;
        long kib = rss_kib(pid);
        if (kib > rss_max)
            rss_max = kib;
        t0 = now_ns();
        for (unsigned i = 0; i < clients; i++)
            close(fds[i]);
        wait_fds(pid, base_fds + 1); /* + the probe's */
        leave_ms += (double)(now_ns() - t0) / 1e6;
    }
    atomic_store(&p.stop, true);
    pthread_join(th, NULL);
    if (p.n == 0)
        goto out;
    qsort(p.lat, p.n, sizeof *p.lat, cmp_u64);
    printf("watch_load: %u clients x %u entries, %u rounds (register, then all leave)\n", clients,
           entries, rounds);
    printf("%-44s %12s\n", "figure", "value");
    printf("%-44s %12.1f\n", "register, ms per round (send side)", reg_ms / rounds);
    printf("%-44s %12.1f\n", "leave, ms per round (until all closed)", leave_ms / rounds);
    printf("%-44s %12ld\n", "daemon RSS with every wait, KiB", rss_max);
    printf("%-44s %12zu\n", "probe SCardListReaders calls", p.n);
    printf("%-44s %12.3f\n", "probe p50, ms", (double)p.lat[p.n / 2] / 1e6);
    printf("%-44s %12.3f\n", "probe p99, ms", (double)p.lat[p.n * 99 / 100] / 1e6);
    printf("%-44s %12.3f\n", "probe max, ms", (double)p.lat[p.n - 1] / 1e6);
    printf("%-44s %12u\n", "probe errors", p.errors);
    rc = p.errors ? 1 : 0;
out:
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    unlink(sock);
    rmdir(dir);
    free(p.lat);
    free(fds);
    free(buf);
    return rc;
}
