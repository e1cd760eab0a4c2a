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
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hex.h"
#include "tools/scrm.h"

#define PNP_READER "\\\\?PnP?\\Notification"

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
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name))
            return subcommands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "scrm: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}

/* ---- Helpers ----------------------------------------------------------------------------------
 */

int scrm_fail(const char *what, LONG rc)
{
    fprintf(stderr, "scrm: %s: %s (0x%08lX)\n", what, pcsc_stringify_error(rc), (unsigned long)rc);
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

/* Index in the list, exact name, or unique substring. */
static const char *match_reader(const char *list, const char *arg)
{
    const char *found = NULL;
    char *end;
    unsigned long idx = strtoul(arg, &end, 10);
    unsigned long i = 0;
    int partial = 0;

    for (const char *r = list; *r; r += strlen(r) + 1, i++) {
        if (!strcmp(r, arg) || (*arg && *end == '\0' && i == idx))
            return r;
        if (strstr(r, arg)) {
            found = r;
            partial++;
        }
    }
    return partial == 1 ? found : NULL;
}

bool scrm_reader(SCARDCONTEXT ctx, const char *arg, char *out, size_t cap)
{
    LONG rc;
    char *list = reader_list(ctx, &rc);
    const char *r;

    if (!list) {
        scrm_fail("cannot list readers", rc);
        return false;
    }
    r = match_reader(list, arg);
    if (!r || strlen(r) >= cap) {
        fprintf(stderr, "scrm: no reader (or more than one) matches '%s'; see `scrm list`\n", arg);
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
    if (with_counter)
        printf("%s: %s (event %lu)%s%s\n", r->szReader, words,
               (unsigned long)(r->dwEventState >> 16), *atr ? "\n    ATR: " : "", atr);
    else
        printf("%-40s  %-22s  %s\n", r->szReader, words, atr);
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
        for (DWORD i = 0; i < n; i++)
            print_reader(&rs[i], false);
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
};

/* Signal thread: SIGINT/SIGTERM release the context (not async-signal-safe, so not from a
 * handler). Releasing ends a wait in progress and refuses the next one, so a signal that comes
 * between two waits is not lost as an SCardCancel with nothing to cancel would be. */
static void *signal_thread(void *arg)
{
    struct watch_stop *ws = arg;
    int sig;
    if (sigwait(&ws->set, &sig) == 0) {
        atomic_store(&ws->stopped, 1);
        SCardReleaseContext(ws->ctx);
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
    if (pthread_create(&th, NULL, signal_thread, &ws) != 0)
        return scrm_fail("thread", SCARD_E_NO_MEMORY);
    while (r == 1) {
        LONG rc;
        DWORD n = 0;
        char *list = reader_list(ws.ctx, &rc);
        SCARD_READERSTATE *rs = states_for(list, true, &n);
        if (!rs) {
            free(list);
            break;
        }
        timestamp();
        printf("%lu reader(s)\n", (unsigned long)(n - 1));
        fflush(stdout);
        r = watch_round(&ws, rs, n);
        free(rs);
        free(list);
    }
    bool stopped = atomic_load(&ws.stopped);
    if (!stopped)
        pthread_cancel(th); /* sigwait() is a cancellation point */
    pthread_join(th, NULL);
    if (!atomic_load(&ws.stopped))
        SCardReleaseContext(ws.ctx);
    return r == 0 || atomic_load(&ws.stopped) ? SCRM_EXIT_OK : SCRM_EXIT_FAIL;
}
