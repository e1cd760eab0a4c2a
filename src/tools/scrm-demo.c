/*
 * scrm-demo: the resource manager core driven in-process, to show the IOCTL sequences scrmd runs.
 *
 * It links src/rm directly (no socket, no client library) and uses two simulated readers: a
 * swallowing contact reader (sim:0:swallows=1) and one without a swallow mechanism (sim:1). It
 * inserts a card into each (through the simulator's vendor IOCTL, the stand-in for a hand),
 * connects, exchanges APDUs, disconnects, waits for the power-down timeout and removes the
 * cards, printing every IOCTL the resource manager sends, grouped by step. Waits are on watch
 * notifications with a bound, never sleeps.
 *
 *   scrm-demo [--power-down-ms N]     (default 400)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "drivers/registry.h"
#include "rm/rm.h"
#include "smc/sim.h"
#include "smc/smc.h"

#define R0 "SimVendor SimReader 0"
#define R1 "SimVendor SimReader 1"

struct demo {
    struct smc_ctx *ctx;
    struct rm *rm;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t events; /* watch notifications so far */
};

static void print_trace(void *user, const struct rm_trace_entry *e)
{
    (void)user;
    char extra[48] = "";
    if (e->code == IOCTL_SMARTCARD_GET_STATE && e->has_value)
        snprintf(extra, sizeof(extra), "   state %s", smc_state_name(e->value));
    else if (e->code == IOCTL_SMARTCARD_SET_PROTOCOL && e->has_value)
        snprintf(extra, sizeof(extra), "   selected %s", smc_protocol_name(e->value));
    printf("    %-22s %s%s%s (%llu \xC2\xB5s)\n", e->reader, e->completion ? "completed: " : "",
           e->line, extra, (unsigned long long)e->usec);
    fflush(stdout);
}

static void on_event(void *user, const char *name, uint32_t counter)
{
    (void)name;
    (void)counter;
    struct demo *d = user;
    pthread_mutex_lock(&d->lock);
    d->events++;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* Wait (at most 5 s) until the reader's snapshot satisfies pred. */
static bool wait_for(struct demo *d, const char *reader,
                     bool (*pred)(const struct rm_reader_info *))
{
    uint64_t end = scrm_now_ns() + 5000000000u;
    for (;;) {
        pthread_mutex_lock(&d->lock);
        uint32_t seen = d->events;
        pthread_mutex_unlock(&d->lock);
        struct rm_reader_info i;
        if (rm_get_reader(d->rm, reader, &i) == SCARD_S_SUCCESS && pred(&i))
            return true;
        if (scrm_now_ns() >= end)
            return false;
        pthread_mutex_lock(&d->lock);
        struct timespec dl = scrm_deadline_ms(100);
        if (d->events == seen)
            pthread_cond_timedwait(&d->cond, &d->lock, &dl);
        pthread_mutex_unlock(&d->lock);
    }
}

static bool has_card_settled(const struct rm_reader_info *i)
{
    return (i->flags & RM_READER_PRESENT) && i->atr_len > 0;
}

static bool powered_down(const struct rm_reader_info *i)
{
    return (i->flags & RM_READER_PRESENT) && !i->power_down_pending && i->state <= SCARD_SWALLOWED;
}

static bool empty(const struct rm_reader_info *i)
{
    return (i->flags & RM_READER_EMPTY) != 0;
}

static void step(const char *title)
{
    printf("\n== %s\n", title);
    fflush(stdout);
}

/* Insert a card as a person would: the simulator's vendor IOCTL on its own handle. */
static int hand(struct demo *d, const char *device, uint32_t code, const char *profile)
{
    struct smc_handle *h;
    if (smc_open(d->ctx, device, &h) != STATUS_SUCCESS)
        return -1;
    smc_status st = smc_ioctl(h, code, profile, profile ? strlen(profile) : 0, NULL, 0, NULL);
    smc_close(h);
    return st == STATUS_SUCCESS ? 0 : -1;
}

static void show_apdu(struct demo *d, uint64_t card, const char *hex)
{
    uint8_t apdu[64], resp[300];
    size_t len = sizeof(resp);
    long n = scrm_hex_decode(hex, apdu, sizeof(apdu));
    if (n <= 0)
        return;
    uint32_t rc = rm_transmit(d->rm, card, 0, apdu, (size_t)n, resp, &len, NULL);
    char out[1000];
    scrm_hex_encode(resp, rc ? 0 : len, ' ', out, sizeof(out));
    printf("  > %s\n  < %s  (%s)\n", hex, rc ? "-" : out, scard_code_name(rc));
}

static int connect_and_talk(struct demo *d, const char *reader)
{
    uint64_t card = 0;
    uint32_t proto = 0;
    uint32_t rc = rm_connect(d->rm, 1, reader, SCARD_SHARE_SHARED, RM_PROTOCOL_ANY, &card, &proto);
    printf("  connect -> %s, protocol %s\n", scard_code_name(rc),
           proto == RM_PROTOCOL_T1   ? "T=1"
           : proto == RM_PROTOCOL_T0 ? "T=0"
                                     : "none");
    if (rc)
        return -1;
    step("APDUs (TRANSMIT)");
    show_apdu(d, card, "00 A4 00 0C");                /* SELECT MF */
    show_apdu(d, card, "00 84 00 00 08");             /* GET CHALLENGE */
    show_apdu(d, card, "80 EC 00 00 03 0A 0B 0C 00"); /* ECHO (proprietary) */
    step("disconnect (SCARD_LEAVE_CARD): no IOCTL now, the power-down timeout starts");
    rc = rm_disconnect(d->rm, card, SCARD_LEAVE_CARD);
    printf("  disconnect -> %s\n", scard_code_name(rc));
    return 0;
}

static int run(struct demo *d)
{
    step("start-up of two readers: name, characteristics, card monitor");
    if (rm_add_reader(d->rm, "sim:0:swallows=1") || rm_add_reader(d->rm, "sim:1"))
        return -1;
    rm_watch(d->rm, R0, on_event, d);
    rm_watch(d->rm, R1, on_event, d);

    step("a card is inserted into the swallowing reader: the monitor reads its ATR");
    if (hand(d, "sim:0", SIM_IOCTL_INSERT, "t1") || !wait_for(d, R0, has_card_settled))
        return -1;
    step("connect to it at once (the card is still powered: NEGOTIABLE)");
    if (connect_and_talk(d, R0))
        return -1;
    step("power-down timeout fires");
    if (!wait_for(d, R0, powered_down))
        return -1;

    step("a T=0 card is inserted into the reader without a swallow mechanism");
    if (hand(d, "sim:1", SIM_IOCTL_INSERT, "t0") || !wait_for(d, R1, has_card_settled))
        return -1;
    step("insertion's power-down timeout fires before anyone connects");
    if (!wait_for(d, R1, powered_down))
        return -1;
    step("connect to the powered-down card (SWALLOWED: cold reset)");
    if (connect_and_talk(d, R1))
        return -1;
    step("power-down timeout fires");
    if (!wait_for(d, R1, powered_down))
        return -1;

    step("both cards are removed");
    if (hand(d, "sim:0", SIM_IOCTL_REMOVE, NULL) || !wait_for(d, R0, empty))
        return -1;
    if (hand(d, "sim:1", SIM_IOCTL_REMOVE, NULL) || !wait_for(d, R1, empty))
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    uint32_t power_down = 400;
    if (argc == 3 && strcmp(argv[1], "--power-down-ms") == 0)
        power_down = (uint32_t)strtoul(argv[2], NULL, 10);
    else if (argc != 1) {
        fprintf(stderr, "usage: scrm-demo [--power-down-ms N]\n");
        return 2;
    }
    scrm_log_init_from_env();
    printf("scrm-demo: the resource manager core (src/rm) running in this process with two\n"
           "simulated readers. No daemon, socket or client library is involved here: the calls\n"
           "rm_connect / rm_transmit / rm_disconnect are what scrmd's socket server makes for a\n"
           "PC/SC application. Each line below is one IOCTL the resource manager sends.\n"
           "Power-down timeout: %u ms.\n",
           power_down);
    struct demo d = {0};
    pthread_mutex_init(&d.lock, NULL);
    if (scrm_cond_init_monotonic(&d.cond) != 0) {
        fprintf(stderr, "scrm-demo: cannot create a condition variable\n");
        return 1;
    }
    struct rm_config cfg;
    rm_config_init(&cfg);
    cfg.power_down_ms = power_down;
    d.ctx = smc_ctx_new();
    d.rm = d.ctx && scrm_drivers_register(d.ctx) == STATUS_SUCCESS ? rm_new(&cfg, d.ctx) : NULL;
    int rc = 1;
    if (d.rm) {
        rm_set_trace(d.rm, print_trace, NULL);
        rc = run(&d) == 0 ? 0 : 1;
        rm_set_trace(d.rm, NULL, NULL);
    }
    printf("\n%s\n", rc ? "scrm-demo: FAILED (see above)" : "scrm-demo: done.");
    rm_free(d.rm);
    smc_ctx_free(d.ctx);
    pthread_cond_destroy(&d.cond);
    pthread_mutex_destroy(&d.lock);
    return rc;
}
