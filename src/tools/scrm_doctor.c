/*
 * `scrm doctor` and the explanation scrm prints when it cannot reach the daemon.
 *
 * doctor checks, in the order a user would check by hand: which socket and why ($SCRM_SOCKET or
 * the default; the socket of /etc/scrmd.conf when it differs), does it exist and is it a socket,
 * may this user open it, does a scrm daemon answer (HELLO: protocol version and pid, its
 * executable's version), how many readers it has, is a pcscd running too, and which
 * libpcsclite.so.1 this process loaded. Each line starts with "ok" or "PROBLEM" and says what to
 * do. The exit status is 0 when every check passed.
 *
 * The probe speaks scrm's socket protocol directly (src/ipc): a HELLO and its reply, with a
 * bounded wait, so a socket of another program (pcscd) is told apart from a scrm daemon.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "tools/scrm.h"

#define PROBE_TIMEOUT_MS 3000
#define PCSCD_SOCKET     "/run/pcscd/pcscd.comm"

enum probe {
    PROBE_OK,
    PROBE_TOO_LONG,
    PROBE_MISSING,     /* no such file */
    PROBE_NOT_SOCKET,  /* a file that is not a socket */
    PROBE_NO_ACCESS,   /* connect: EACCES / EPERM */
    PROBE_REFUSED,     /* connect: ECONNREFUSED (stale file, nobody listens) */
    PROBE_ERROR,       /* another connect error (errno in err) */
    PROBE_NO_ANSWER,   /* accepted, no reply within the timeout */
    PROBE_NOT_SCRM,    /* a reply that is not scrm's HELLO */
    PROBE_OTHER_MAJOR, /* a scrm daemon of another protocol major version */
};

struct probe_result {
    enum probe what;
    int err;
    struct ipc_hello_rep hello;
};

/* Read exactly n bytes within the deadline; 0 or -1. */
static int read_full(int fd, void *buf, size_t n, int timeout_ms)
{
    uint8_t *p = buf;
    while (n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t got = read(fd, p, n);
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

static void probe(const char *path, struct probe_result *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    memset(out, 0, sizeof *out);
    if (strlen(path) >= sizeof sa.sun_path) {
        out->what = PROBE_TOO_LONG;
        return;
    }
    if (stat(path, &st) < 0) {
        out->err = errno;
        out->what = errno == ENOENT   ? PROBE_MISSING
                    : errno == EACCES ? PROBE_NO_ACCESS
                                      : PROBE_ERROR;
        return;
    }
    if (!S_ISSOCK(st.st_mode)) {
        out->what = PROBE_NOT_SOCKET;
        return;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        out->err = errno;
        out->what = errno == EACCES || errno == EPERM ? PROBE_NO_ACCESS
                    : errno == ECONNREFUSED           ? PROBE_REFUSED
                                                      : PROBE_ERROR;
        if (fd >= 0)
            close(fd);
        return;
    }
    struct {
        struct ipc_hdr h;
        struct ipc_hello_req req;
    } msg = {.h = {.size = sizeof msg, .cmd = IPC_CMD_HELLO, .seq = 1},
             .req = {.magic = IPC_MAGIC,
                     .major = IPC_VERSION_MAJOR,
                     .minor = IPC_VERSION_MINOR,
                     .max_msg = IPC_MSG_MAX}};
    struct ipc_hdr h;
    if (ipc_send_all(fd, &msg, sizeof msg) < 0 ||
        read_full(fd, &h, sizeof h, PROBE_TIMEOUT_MS) < 0) {
        out->what = PROBE_NO_ANSWER;
    } else if (h.cmd != IPC_CMD_HELLO || h.size != sizeof h + sizeof out->hello ||
               read_full(fd, &out->hello, sizeof out->hello, PROBE_TIMEOUT_MS) < 0 ||
               out->hello.magic != IPC_MAGIC) {
        out->what = PROBE_NOT_SCRM;
    } else {
        out->what = h.status == 0 ? PROBE_OK : PROBE_OTHER_MAJOR;
    }
    close(fd);
}

/* One sentence: what is wrong with the socket and what to do. */
static void explain(FILE *f, const char *path, const struct probe_result *r)
{
    switch (r->what) {
    case PROBE_OK: fprintf(f, "scrmd answers on %s\n", path); break;
    case PROBE_TOO_LONG:
        fprintf(f,
                "the socket path %s is too long for a Unix socket; set SCRM_SOCKET to a "
                "shorter path\n",
                path);
        break;
    case PROBE_MISSING:
        fprintf(f,
                "%s does not exist (%s): scrmd is not running there. Start it "
                "(systemctl start scrmd.socket, or scrmd -f -r sim:0 to try), or point "
                "SCRM_SOCKET at the socket of the scrmd you started\n",
                path, strerror(r->err));
        break;
    case PROBE_NOT_SOCKET:
        fprintf(f, "%s exists but is not a socket; check SCRM_SOCKET (or remove the file)\n", path);
        break;
    case PROBE_NO_ACCESS:
        fprintf(f,
                "permission denied on %s (%s): this user may not use the readers. Ask to be "
                "added to the socket's group (socket_group in scrmd.conf) or check socket_mode\n",
                path, strerror(r->err));
        break;
    case PROBE_REFUSED:
        fprintf(f,
                "nobody listens on %s (%s): a scrmd that stopped left the file. Start scrmd "
                "again (it replaces the stale file)\n",
                path, strerror(r->err));
        break;
    case PROBE_ERROR: fprintf(f, "cannot connect to %s: %s\n", path, strerror(r->err)); break;
    case PROBE_NO_ANSWER:
        fprintf(f,
                "%s accepted the connection but sent no answer within %d ms: scrmd is "
                "overloaded or hung, or another program owns the socket\n",
                path, PROBE_TIMEOUT_MS);
        break;
    case PROBE_NOT_SCRM:
        fprintf(f,
                "%s answers, but not as scrmd (%s): point SCRM_SOCKET at scrmd's socket "
                "(default %s)\n",
                path,
                strcmp(path, PCSCD_SOCKET) == 0 ? "that is pcscd's socket"
                                                : "a pcscd or another program?",
                IPC_DEFAULT_SOCKET);
        break;
    case PROBE_OTHER_MAJOR:
        fprintf(f,
                "%s is a scrmd of protocol %u.x, this scrm speaks %u.x: use the scrm and "
                "libpcsclite.so.1 installed with that scrmd\n",
                path, r->hello.major, IPC_VERSION_MAJOR);
        break;
    }
}

void scrm_explain_no_service(void)
{
    const char *path = ipc_socket_path();
    const char *env = getenv(IPC_SOCKET_ENV);
    struct probe_result r;
    probe(path, &r);
    fprintf(stderr, "scrm: socket %s (%s): ", path, env && *env ? "from $SCRM_SOCKET" : "default");
    explain(stderr, path, &r);
}

/* ---- doctor ---------------------------------------------------------------------------------
 */

static unsigned problems;

static void problem(void)
{
    problems++;
    printf("PROBLEM  ");
}

/* The `socket =` of /etc/scrmd.conf, if any (malloc'd). */
static char *config_socket(void)
{
    FILE *f = fopen("/etc/scrmd.conf", "re");
    char line[1100];
    char *found = NULL;
    if (!f)
        return NULL;
    while (fgets(line, sizeof line, f)) {
        char *p = line + strspn(line, " \t");
        if (strncmp(p, "socket", 6) != 0)
            continue;
        p += 6 + strspn(p + 6, " \t");
        if (*p != '=')
            continue;
        p++;
        p += strspn(p, " \t");
        p[strcspn(p, " \t\r\n#")] = '\0';
        free(found);
        found = strdup(p);
    }
    fclose(f);
    return found;
}

/* Is a process named pcscd running? Its pid, or 0. */
static long pcscd_pid(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long pid = 0;
    if (!d)
        return 0;
    while (!pid && (e = readdir(d))) {
        char path[300], comm[64] = "";
        char *end;
        long p = strtol(e->d_name, &end, 10);
        if (*end || p <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f) && strcmp(comm, "pcscd\n") == 0)
            pid = p;
        fclose(f);
    }
    closedir(d);
    return pid;
}

static void check_socket_choice(const char *path)
{
    const char *env = getenv(IPC_SOCKET_ENV);
    char *conf = config_socket();
    printf("ok       socket   %s (%s)\n", path, env && *env ? "from $SCRM_SOCKET" : "the default");
    if (conf && strcmp(conf, path) != 0) {
        problem();
        printf("/etc/scrmd.conf has socket = %s but clients use %s: set SCRM_SOCKET=%s\n", conf,
               path, conf);
    }
    free(conf);
}

static bool check_reachable(const char *path, struct probe_result *r)
{
    probe(path, r);
    if (r->what == PROBE_OK) {
        printf("ok       access   %s is a socket this user may open\n", path);
        return true;
    }
    problem();
    explain(stdout, path, r);
    return false;
}

static void check_daemon(const struct probe_result *r)
{
    char exe[64], target[4096] = "";
    snprintf(exe, sizeof exe, "/proc/%u/exe", r->hello.server_pid);
    ssize_t n = readlink(exe, target, sizeof target - 1);
    if (n > 0)
        target[n] = '\0';
    printf("ok       daemon   scrmd pid %u, protocol %u.%u%s%s\n", r->hello.server_pid,
           r->hello.major, r->hello.minor, n > 0 ? ", " : " (another pid namespace or user)",
           n > 0 ? target : "");
}

static void check_readers(void)
{
    SCARDCONTEXT ctx;
    DWORD len = 0;
    LONG rc = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
    if (rc != SCARD_S_SUCCESS) {
        problem();
        printf("SCardEstablishContext: %s\n", scrm_error_text(rc));
        return;
    }
    rc = SCardListReaders(ctx, NULL, NULL, &len);
    if (rc == SCARD_E_NO_READERS_AVAILABLE) {
        problem();
        printf("readers  none: add one (reader = ... in /etc/scrmd.conf, `scrm reader add "
               "sim:0`, or plug one in)\n");
    } else if (rc != SCARD_S_SUCCESS) {
        problem();
        printf("SCardListReaders: %s\n", scrm_error_text(rc));
    } else {
        char *list = malloc(len);
        unsigned count = 0;
        if (list && SCardListReaders(ctx, NULL, list, &len) == SCARD_S_SUCCESS)
            for (const char *p = list; *p; p += strlen(p) + 1)
                count++;
        printf("ok       readers  %u (see `scrm list`)\n", count);
        free(list);
    }
    SCardReleaseContext(ctx);
}

static void check_pcscd(void)
{
    long pid = pcscd_pid();
    struct stat st;
    if (pid) {
        problem();
        printf("pcscd    pcscd runs too (pid %ld): it and scrmd both claim USB readers; stop it "
               "(systemctl disable --now pcscd.socket pcscd.service)\n",
               pid);
    } else if (stat(PCSCD_SOCKET, &st) == 0) {
        printf("ok       pcscd    not running (%s exists: socket activation may start it)\n",
               PCSCD_SOCKET);
    } else {
        printf("ok       pcscd    not running\n");
    }
}

static void check_library(void)
{
    Dl_info info;
    char real[4096];
    if (dladdr((void *)SCardEstablishContext, &info) && info.dli_fname) {
        const char *name = realpath(info.dli_fname, real) ? real : info.dli_fname;
        printf("ok       library  this process uses %s; an application started the same way "
               "(LD_LIBRARY_PATH=%s) uses it too\n",
               name, getenv("LD_LIBRARY_PATH") ? getenv("LD_LIBRARY_PATH") : "");
    } else {
        problem();
        printf("library  cannot tell which libpcsclite.so.1 is loaded\n");
    }
}

int scrm_cmd_doctor(int argc, char **argv)
{
    const char *path = ipc_socket_path();
    struct probe_result r;
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: scrm doctor\n");
        return SCRM_EXIT_USAGE;
    }
    problems = 0;
    check_socket_choice(path);
    if (check_reachable(path, &r)) {
        check_daemon(&r);
        check_readers();
    }
    check_pcscd();
    check_library();
    printf("%s\n", problems ? "some checks failed: see PROBLEM above" : "all checks passed");
    return problems ? SCRM_EXIT_FAIL : SCRM_EXIT_OK;
}
