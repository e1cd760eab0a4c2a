/*
 * scrm — command-line tool of the scrm smart card stack.
 *
 *   scrm list                          readers, their state and the ATR of the card
 *   scrm watch                         card and reader events until interrupted
 *   scrm send READER APDU...           send APDUs (hex), print responses and status words
 *   scrm sim insert READER [PROFILE]   insert a simulated card (sim driver readers)
 *   scrm sim remove READER             remove it
 *   scrm nfc enter READER PROFILE[:UID] a simulated tag enters the field (nfc driver readers)
 *   scrm nfc leave READER              it leaves; `scrm nfc radio READER on|off` the radio
 *   scrm reader add DEVICE             add a reader to the running scrmd (privileged)
 *   scrm reader remove READER          remove one (privileged)
 *
 * READER is a reader name, its index in `scrm list`, or a unique part of its name. The daemon's
 * socket is $SCRM_SOCKET (default /run/scrm/scrm.sock). This file holds the subcommand table,
 * the shared helpers and `list` / `watch`; scrm_send.c has `send`, `sim` and `nfc`; scrm_reader.c
 * has `reader`.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "common/hex.h"
#include "ipc/ipc.h"
#include "tools/scrm.h" /* the PC/SC headers first: scard_codes.h then adds only its functions */
#include "common/scard_codes.h"

#define PNP_READER "\\\\?PnP?\\Notification"

#ifndef SCRM_VERSION
#define SCRM_VERSION "unknown"
#endif

struct subcommand {
    const char *name;
    const char *usage;
    int (*fn)(int argc, char **argv);
};

static const struct subcommand subcommands[] = {
    {"list", "list                          readers, state and ATR", scrm_cmd_list},
    {"watch", "watch                         card and reader events until interrupted",
     scrm_cmd_watch},
    {"send", "send READER APDU...          send APDUs given in hex", scrm_cmd_send},
    {"sim", "sim insert|remove READER [PROFILE]   drive a simulated reader", scrm_cmd_sim},
    {"nfc", "nfc enter|leave|radio READER [PROFILE[:UID]|on|off]   drive an nfc reader",
     scrm_cmd_nfc},
    {"reader", "reader add DEVICE | remove READER   add or remove a reader (root, admin group)",
     scrm_cmd_reader},
    {"atr", "atr HEX...                    decode an ATR and name the card (offline)",
     scrm_cmd_atr},
    {"spy", "spy [--pins] [--pcap FILE]     every APDU and IOCTL live (root, admin group)",
     scrm_cmd_spy},
    {"doctor", "doctor                        check the way to scrmd step by step",
     scrm_cmd_doctor},
};

static int usage(FILE *f)
{
    fprintf(f, "usage: scrm COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(f, "  %s\n", subcommands[i].usage);
    fprintf(f, "\nREADER: a reader name, its index in `scrm list`, or a unique part of it.\n"
               "The daemon socket is $SCRM_SOCKET (default /run/scrm/scrm.sock).\n");
    return f == stdout ? SCRM_EXIT_OK : SCRM_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
        return usage(stdout);
    if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
        printf("scrm %s\n", SCRM_VERSION);
        return SCRM_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name))
            return subcommands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "scrm: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}

/* ---- Helpers ----------------------------------------------------------------------------------
 */

const char *scrm_error_text(LONG rc)
{
    static char buf[256];
    const char *name = scard_code_name((uint32_t)rc);
    snprintf(buf, sizeof buf, "%s (0x%08lX): %s", name ? name : "unknown code",
             (unsigned long)(uint32_t)rc, pcsc_stringify_error(rc));
    return buf;
}

int scrm_fail(const char *what, LONG rc)
{
    fprintf(stderr, "scrm: %s: %s\n", what, scrm_error_text(rc));
    if (rc == SCARD_E_NO_SERVICE || rc == SCARD_E_SERVICE_STOPPED)
        scrm_explain_no_service();
    return SCRM_EXIT_FAIL;
}

bool scrm_context(SCARDCONTEXT *ctx)
{
    LONG rc = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, ctx);
    if (rc != SCARD_S_SUCCESS) {
        scrm_fail("cannot reach scrmd", rc);
        return false;
    }
    return true;
}

/* The reader list as a malloc'd multi-string (NULL and rc on failure). */
static char *reader_list(SCARDCONTEXT ctx, LONG *rc)
{
    DWORD len = 0;
    char *list;
    *rc = SCardListReaders(ctx, NULL, NULL, &len);
    if (*rc != SCARD_S_SUCCESS)
        return NULL;
    list = malloc(len);
    if (!list) {
        *rc = SCARD_E_NO_MEMORY;
        return NULL;
    }
    *rc = SCardListReaders(ctx, NULL, list, &len);
    if (*rc != SCARD_S_SUCCESS) {
        free(list);
        return NULL;
    }
    return list;
}

/* Index in the list, exact name, or unique substring; *partial counts substring matches. */
static const char *match_reader(const char *list, const char *arg, int *partial)
{
    const char *found = NULL;
    char *end;
    unsigned long idx = strtoul(arg, &end, 10);
    unsigned long i = 0;

    *partial = 0;
    for (const char *r = list; *r; r += strlen(r) + 1, i++) {
        if (!strcmp(r, arg) || (*arg && *end == '\0' && i == idx))
            return r;
        if (strstr(r, arg)) {
            found = r;
            (*partial)++;
        }
    }
    return *partial == 1 ? found : NULL;
}

bool scrm_reader(SCARDCONTEXT ctx, const char *arg, char *out, size_t cap)
{
    LONG rc;
    char *list = reader_list(ctx, &rc);
    const char *r;

    int partial = 0;
    if (!list && rc == SCARD_E_NO_READERS_AVAILABLE) {
        fprintf(stderr, "scrm: scrmd has no readers (%s)\n", scrm_error_text(rc));
        return false;
    }
    if (!list) {
        scrm_fail("cannot list readers", rc);
        return false;
    }
    r = match_reader(list, arg, &partial);
    if (!r || strlen(r) >= cap) {
        unsigned long i = 0;
        if (partial > 1) {
            fprintf(stderr, "scrm: '%s' matches %d readers; say which (name or index):\n", arg,
                    partial);
            for (const char *c = list; *c; c += strlen(c) + 1, i++)
                if (strstr(c, arg))
                    fprintf(stderr, "  %lu  %s\n", i, c);
        } else {
            fprintf(stderr, "scrm: no reader matches '%s'; the readers are:\n", arg);
            for (const char *c = list; *c; c += strlen(c) + 1, i++)
                fprintf(stderr, "  %lu  %s\n", i, c);
        }
        free(list);
        return false;
    }
    memcpy(out, r, strlen(r) + 1);
    free(list);
    return true;
}

/* "card present, in use" etc. from event-state bits. */
static void state_words(DWORD st, char *out, size_t cap)
{
    static const struct {
        DWORD bit;
        const char *word;
    } words[] = {
        {SCARD_STATE_UNKNOWN, "unknown reader"},
        {SCARD_STATE_UNAVAILABLE, "unavailable"},
        {SCARD_STATE_EMPTY, "empty"},
        {SCARD_STATE_PRESENT, "card present"},
        {SCARD_STATE_EXCLUSIVE, "exclusive"},
        {SCARD_STATE_INUSE, "in use"},
        {SCARD_STATE_MUTE, "mute"},
        {SCARD_STATE_UNPOWERED, "unpowered"},
    };
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (st & words[i].bit)
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s", n ? ", " : "",
                                  words[i].word);
}

static void print_reader(const SCARD_READERSTATE *r, bool with_counter)
{
    char words[128], atr[3 * MAX_ATR_SIZE + 1] = "";
    state_words(r->dwEventState, words, sizeof words);
    if (r->cbAtr)
        scrm_hex_encode(r->rgbAtr, r->cbAtr, ' ', atr, sizeof atr);
    (void)with_counter;
    printf("%s: %s (event %lu)%s%s\n", r->szReader, words, (unsigned long)(r->dwEventState >> 16),
           *atr ? "\n    ATR: " : "", atr);
}

/* One row of `scrm list`: index, reader, state, ATR, card name. */
struct list_row {
    char idx[24], state[128], atr[3 * MAX_ATR_SIZE + 1], card[256];
    const char *reader;
};

/* Print cells padded to the widths, two spaces apart, without trailing blanks. */
static void print_row(const char *const cells[5], const size_t width[5])
{
    char line[1024];
    size_t n = 0;
    for (int c = 0; c < 5; c++)
        n += (size_t)snprintf(line + n, n < sizeof line ? sizeof line - n : 0, "%-*s%s",
                              (int)width[c], cells[c], c < 4 ? "  " : "");
    n = strlen(line);
    while (n && line[n - 1] == ' ')
        line[--n] = '\0';
    puts(line);
}

static void print_table(const SCARD_READERSTATE *rs, DWORD n)
{
    struct list_row *rows = calloc(n ? n : 1, sizeof *rows);
    static const char *const head[5] = {"#", "READER", "STATE", "ATR", "CARD"};
    size_t width[5];
    if (!rows)
        return;
    for (int c = 0; c < 5; c++)
        width[c] = strlen(head[c]);
    for (DWORD i = 0; i < n; i++) {
        struct list_row *r = &rows[i];
        snprintf(r->idx, sizeof r->idx, "%lu", (unsigned long)i);
        r->reader = rs[i].szReader;
        state_words(rs[i].dwEventState, r->state, sizeof r->state);
        if (rs[i].cbAtr) {
            scrm_hex_encode(rs[i].rgbAtr, rs[i].cbAtr, ' ', r->atr, sizeof r->atr);
            if (!scrm_atr_name(rs[i].rgbAtr, rs[i].cbAtr, r->card, sizeof r->card))
                r->card[0] = '\0';
        }
        const char *cells[5] = {r->idx, r->reader, r->state, r->atr, r->card};
        for (int c = 0; c < 5; c++)
            if (strlen(cells[c]) > width[c])
                width[c] = strlen(cells[c]);
    }
    print_row(head, width);
    for (DWORD i = 0; i < n; i++) {
        const char *cells[5] = {rows[i].idx, rows[i].reader, rows[i].state, rows[i].atr,
                                rows[i].card};
        print_row(cells, width);
    }
    free(rows);
}

/* ---- list -------------------------------------------------------------------------------------
 */

/* A SCARD_READERSTATE array for every reader of the multi-string, plus the PnP entry if asked. */
static SCARD_READERSTATE *states_for(const char *list, bool pnp, DWORD *n)
{
    SCARD_READERSTATE *rs;
    DWORD count = pnp ? 1 : 0, i = 0;
    for (const char *r = list; r && *r; r += strlen(r) + 1)
        count++;
    rs = calloc(count ? count : 1, sizeof *rs);
    if (!rs)
        return NULL;
    for (const char *r = list; r && *r; r += strlen(r) + 1)
        rs[i++].szReader = r;
    if (pnp)
        rs[i].szReader = PNP_READER;
    *n = count;
    return rs;
}

int scrm_cmd_list(int argc, char **argv)
{
    SCARDCONTEXT ctx;
    SCARD_READERSTATE *rs;
    char *list;
    DWORD n = 0;
    LONG rc;
    (void)argv;

    if (argc != 1)
        return usage(stderr);
    if (!scrm_context(&ctx))
        return SCRM_EXIT_FAIL;
    list = reader_list(ctx, &rc);
    if (rc == SCARD_E_NO_READERS_AVAILABLE) {
        printf("no readers\n");
        SCardReleaseContext(ctx);
        return SCRM_EXIT_OK;
    }
    rs = list ? states_for(list, false, &n) : NULL;
    if (rs)
        rc = SCardGetStatusChange(ctx, 0, rs, n);
    if (rs && rc == SCARD_S_SUCCESS)
        print_table(rs, n);
    free(rs);
    free(list);
    SCardReleaseContext(ctx);
    return rc == SCARD_S_SUCCESS ? SCRM_EXIT_OK : scrm_fail("list", rc);
}

/* ---- watch ------------------------------------------------------------------------------------
 */

struct watch_stop {
    SCARDCONTEXT ctx;
    sigset_t set;
    atomic_int stopped;
    int wake_fd; /* eventfd: the signal thread wakes the wait for the daemon's return */
    LONG last_rc;
};

/* Signal thread: SIGINT/SIGTERM release the context (not async-signal-safe, so not from a
 * handler). Releasing ends a wait in progress and refuses the next one, so a signal that comes
 * between two waits is not lost as an SCardCancel with nothing to cancel would be. */
static void *signal_thread(void *arg)
{
    struct watch_stop *ws = arg;
    int sig;
    if (sigwait(&ws->set, &sig) == 0) {
        uint64_t one = 1;
        atomic_store(&ws->stopped, 1);
        SCardReleaseContext(ws->ctx);
        if (write(ws->wake_fd, &one, sizeof one) < 0)
            perror("scrm: eventfd");
    }
    return NULL;
}

static void timestamp(void)
{
    char buf[32];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%H:%M:%S", &tm);
    printf("[%s] ", buf);
}

/* Does rc mean the connection to the daemon is gone (it stopped or restarts)? */
static bool daemon_gone(LONG rc)
{
    return rc == SCARD_E_NO_SERVICE || rc == SCARD_E_SERVICE_STOPPED || rc == SCARD_F_COMM_ERROR;
}

/* Wait until the daemon answers again (1) or the user stops (0), -1 on a local error. Wakes up
 * when a file appears in the socket's directory (inotify: the daemon creates its socket) and, as
 * a fallback for a daemon that was still starting when its socket appeared, once a second. */
static int wait_for_daemon(struct watch_stop *ws)
{
    char dir[4096];
    const char *path = ipc_socket_path();
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash && slash != path ? (int)(slash - path) : 1,
             slash ? path : ".");
    int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ino >= 0 && inotify_add_watch(ino, dir, IN_CREATE | IN_MOVED_TO | IN_ATTRIB) < 0) {
        close(ino);
        ino = -1; /* the directory is gone too: the one-second check still works */
    }
    for (;;) {
        DWORD len = 0;
        if (atomic_load(&ws->stopped))
            break;
        LONG rc = SCardListReaders(ws->ctx, NULL, NULL, &len);
        if (!daemon_gone(rc)) {
            if (ino >= 0)
                close(ino);
            return atomic_load(&ws->stopped) ? 0 : 1;
        }
        struct pollfd p[2] = {{.fd = ws->wake_fd, .events = POLLIN}, {.fd = ino, .events = POLLIN}};
        if (poll(p, ino >= 0 ? 2 : 1, 1000) < 0 && errno != EINTR)
            break;
        if (p[1].revents & POLLIN) {
            char buf[4096];
            while (read(ino, buf, sizeof buf) > 0)
                ;
        }
    }
    if (ino >= 0)
        close(ino);
    return 0;
}

/* Watch one reader list until it changes (1), the user stops (0) or an error (-1). */
static int watch_round(struct watch_stop *ws, SCARD_READERSTATE *rs, DWORD n)
{
    for (DWORD i = 0; i < n; i++)
        rs[i].dwCurrentState = SCARD_STATE_UNAWARE;
    for (;;) {
        LONG rc = SCardGetStatusChange(ws->ctx, INFINITE, rs, n);
        if (atomic_load(&ws->stopped))
            return 0;
        if (rc != SCARD_S_SUCCESS) {
            ws->last_rc = rc;
            if (!daemon_gone(rc))
                scrm_fail("waiting for events", rc);
            return -1;
        }
        for (DWORD i = 0; i + 1 < n; i++)
            if (rs[i].dwEventState & SCARD_STATE_CHANGED) {
                timestamp();
                print_reader(&rs[i], true);
            }
        if (rs[n - 1].dwEventState & SCARD_STATE_CHANGED) /* reader list changed */
            return 1;
        for (DWORD i = 0; i < n; i++)
            rs[i].dwCurrentState = rs[i].dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
        fflush(stdout);
    }
}

int scrm_cmd_watch(int argc, char **argv)
{
    struct watch_stop ws = {.stopped = 0}; /* atomic_int: zero-initialised */
    pthread_t th;
    int r = 1;
    (void)argv;

    if (argc != 1)
        return usage(stderr);
    sigemptyset(&ws.set);
    sigaddset(&ws.set, SIGINT);
    sigaddset(&ws.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &ws.set, NULL);
    if (!scrm_context(&ws.ctx))
        return SCRM_EXIT_FAIL;
    ws.wake_fd = eventfd(0, EFD_CLOEXEC);
    if (ws.wake_fd < 0 || pthread_create(&th, NULL, signal_thread, &ws) != 0)
        return scrm_fail("thread", SCARD_E_NO_MEMORY);
    while (r == 1) {
        LONG rc;
        DWORD n = 0;
        ws.last_rc = SCARD_S_SUCCESS;
        char *list = reader_list(ws.ctx, &rc);
        if (!list && daemon_gone(rc))
            ws.last_rc = rc;
        SCARD_READERSTATE *rs = states_for(list, true, &n);
        if (!rs) {
            free(list);
            break;
        }
        timestamp();
        printf("%lu reader(s)\n", (unsigned long)(n - 1));
        fflush(stdout);
        r = watch_round(&ws, rs, n);
        if (r < 0 && daemon_gone(ws.last_rc) && !atomic_load(&ws.stopped)) {
            timestamp();
            printf("scrmd went away (%s); waiting for it to come back\n",
                   scard_code_name((uint32_t)ws.last_rc));
            fflush(stdout);
            r = wait_for_daemon(&ws);
            if (r == 1) {
                timestamp();
                printf("scrmd is back\n");
            }
        }
        free(rs);
        free(list);
    }
    bool stopped = atomic_load(&ws.stopped);
    if (!stopped)
        pthread_cancel(th); /* sigwait() is a cancellation point */
    pthread_join(th, NULL);
    if (!atomic_load(&ws.stopped))
        SCardReleaseContext(ws.ctx);
    close(ws.wake_fd);
    return r == 0 || atomic_load(&ws.stopped) ? SCRM_EXIT_OK : SCRM_EXIT_FAIL;
}
