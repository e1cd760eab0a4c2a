/*
 * The vpcd reader driver through libsmc's public API, with a scripted fake card in C on loopback
 * TCP: the frame parser, device strings, insertion and removal from connections (card tracking
 * completes at once), power / protocol / transmit with the exact bytes on the wire, libsmc's state
 * rules, a card that vanishes or stalls in the middle of an exchange (removal, never an empty
 * success), bad frames (zero length, too long, too short, trailing and unasked bytes), a second
 * connection while a card is in, reconnection, and the reverse (connect-out) mode.
 *
 * Every wait is bounded: the fake card polls its socket with a timeout, card tracking is awaited
 * on a condition variable with a deadline.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "drivers/vpcd/vpcd_frame.h"
#include "smc/driver.h"
#include "smc/smc.h"

extern const struct smc_driver_ops smc_vpcd_driver;

#define WAIT_MS 10000 /* bound on every wait; tests never get near it unless they fail */

/* The ATR of vicc's iso7816 card: T=1 only. */
#define ATR_HEX "3B 95 13 81 01 80 73 FF 01 00 0B"
#define ATR_LEN 11

/* ---- the fake card: a thread that runs a script on its socket ------------------------------- */

struct card {
    int fd;
    const char *const *script; /* steps; NULL ends */
    pthread_t thread;
    char error[256]; /* first failure, "" if the script ran through */
};

static void card_fail(struct card *c, const char *what, const char *arg)
{
    if (!c->error[0])
        snprintf(c->error, sizeof(c->error), "%s %s", what, arg);
}

/* Read exactly n bytes within WAIT_MS; false on EOF, error or timeout. */
static bool read_n(int fd, uint8_t *buf, size_t n)
{
    size_t have = 0;
    while (have < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, WAIT_MS) != 1)
            return false;
        ssize_t got = recv(fd, buf + have, n - have, 0);
        if (got <= 0)
            return false;
        have += (size_t)got;
    }
    return true;
}

static size_t hex(const char *text, uint8_t *out, size_t cap)
{
    long n = scrm_hex_decode(text, out, cap);
    assert_true(n >= 0);
    return (size_t)n;
}

/*
 * Steps: "<HEX" expect exactly these bytes; ">HEX" send them (one write); "eof" wait for the
 * reader to close; "close" close our side; "hold" wait until the reader closes (a stalled card).
 */
static void *card_main(void *arg)
{
    struct card *c = arg;
    for (const char *const *st = c->script; *st; st++) {
        const char *s = *st;
        uint8_t want[512], got[512];
        if (s[0] == '<') {
            long n = scrm_hex_decode(s + 1, want, sizeof(want));
            if (n < 0) {
                card_fail(c, "bad step", s);
                break;
            }
            if (!read_n(c->fd, got, (size_t)n) || memcmp(got, want, (size_t)n) != 0) {
                card_fail(c, "did not receive", s + 1);
                break;
            }
        } else if (s[0] == '>') {
            long n = scrm_hex_decode(s + 1, want, sizeof(want));
            if (n < 0 || send(c->fd, want, (size_t)n, MSG_NOSIGNAL) != (ssize_t)n) {
                card_fail(c, "cannot send", s + 1);
                break;
            }
        } else if (!strcmp(s, "eof") || !strcmp(s, "hold")) {
            uint8_t b;
            struct pollfd p = {.fd = c->fd, .events = POLLIN};
            /* Closed: end of stream, or a reset when the reader left our bytes unread. */
            ssize_t r = poll(&p, 1, WAIT_MS) == 1 ? recv(c->fd, &b, 1, 0) : 1;
            if (r > 0 || (r < 0 && errno != ECONNRESET))
                card_fail(c, "the reader did not close the connection:", s);
        } else if (!strcmp(s, "close")) {
            close(c->fd);
            c->fd = -1;
        }
    }
    return NULL;
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void card_run(struct card *c, int fd, const char *const *script)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->script = script;
    assert_int_equal(pthread_create(&c->thread, NULL, card_main, c), 0);
}

/* Wait for the script to end; it must have run through. */
static void card_join(struct card *c)
{
    pthread_join(c->thread, NULL);
    if (c->error[0])
        fail_msg("fake card: %s", c->error);
}

static void card_close(struct card *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* ---- the reader ------------------------------------------------------------------------------ */

struct fixture {
    struct smc_ctx *ctx;
    struct smc_handle *h;
    uint16_t port;
};

static struct fixture *open_dev(const char *device)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->ctx = smc_ctx_new();
    assert_non_null(f->ctx);
    assert_int_equal(smc_register_driver(f->ctx, &smc_vpcd_driver), STATUS_SUCCESS);
    assert_int_equal(smc_add_device(f->ctx, device), STATUS_SUCCESS);
    char name[128];
    assert_true(smc_device_name(f->ctx, device, name, sizeof(name)));
    assert_int_equal(smc_open(f->ctx, name, &f->h), STATUS_SUCCESS);
    uint32_t unit = 0;
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_DEVICE_UNIT, &unit), STATUS_SUCCESS);
    f->port = (uint16_t)unit; /* the unit is the port the reader listens on */
    return f;
}

static int setup(void **state)
{
    *state = open_dev("vpcd:127.0.0.1:0:timeout=300");
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    smc_close(f->h);
    smc_ctx_free(f->ctx);
    free(f);
    return 0;
}

static uint32_t state_of(struct smc_handle *h)
{
    uint32_t s = 0;
    assert_int_equal(smc_get_state(h, &s), STATUS_SUCCESS);
    return s;
}

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    smc_status st;
};

static void waiter_done(void *user, smc_status st, size_t returned)
{
    (void)returned;
    struct waiter *w = user;
    pthread_mutex_lock(&w->lock);
    w->done = true;
    w->st = st;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

struct tracking {
    struct waiter w;
    uint64_t id;
    smc_status first;
};

/* Post IS_PRESENT / IS_ABSENT; await() collects it. */
static void track(struct fixture *f, struct tracking *t, uint32_t code)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->w.lock, NULL);
    assert_int_equal(scrm_cond_init_monotonic(&t->w.cond), 0);
    t->first = smc_ioctl_async(f->h, code, NULL, 0, NULL, 0, waiter_done, &t->w, &t->id);
}

static smc_status await(struct fixture *f, struct tracking *t)
{
    smc_status st = t->first;
    if (st == STATUS_PENDING) {
        struct timespec dl = scrm_deadline_ms(WAIT_MS);
        pthread_mutex_lock(&t->w.lock);
        while (!t->w.done && pthread_cond_timedwait(&t->w.cond, &t->w.lock, &dl) == 0)
            ;
        bool done = t->w.done;
        st = t->w.st;
        pthread_mutex_unlock(&t->w.lock);
        if (!done) {
            SCRM_IGNORE(smc_cancel(f->h, t->id), "the test fails here anyway");
            fail_msg("card tracking did not complete");
        }
    }
    pthread_cond_destroy(&t->w.cond);
    pthread_mutex_destroy(&t->w.lock);
    return st;
}

/* Connect a card running `script` and wait until the reader has reported it. */
static void insert(struct fixture *f, struct card *c, const char *const *script)
{
    struct tracking t;
    track(f, &t, IOCTL_SMARTCARD_IS_PRESENT);
    card_run(c, tcp_connect(f->port), script);
    assert_int_equal(await(f, &t), STATUS_SUCCESS);
}

/* The script has run through; the card closes its connection: a removal the reader reports. */
static void unplug_card(struct fixture *f, struct card *c)
{
    card_join(c);
    struct tracking t;
    track(f, &t, IOCTL_SMARTCARD_IS_ABSENT);
    card_close(c);
    assert_int_equal(await(f, &t), STATUS_SUCCESS);
}

static void unplug(struct fixture *f, struct card *c)
{
    unplug_card(f, c);
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
}

static smc_status transmit(struct smc_handle *h, const char *apdu_hex, uint8_t *resp, size_t cap,
                           size_t *rlen)
{
    uint8_t in[8 + 300];
    memset(in, 0, 8);
    in[0] = 2; /* SCARD_PROTOCOL_T1 */
    in[4] = 8; /* header length */
    size_t n = hex(apdu_hex, in + 8, sizeof(in) - 8);
    size_t got = 0;
    smc_status st = smc_ioctl(h, IOCTL_SMARTCARD_TRANSMIT, in, 8 + n, resp, cap, &got);
    *rlen = got;
    return st;
}

/* Power the card (script must answer) and select T=1. */
static void power_and_select(struct fixture *f)
{
    uint8_t atr[40];
    size_t n = 0;
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_bytes_hex(atr, n, ATR_HEX);
    assert_int_equal(state_of(f->h), SCARD_NEGOTIABLE);
    uint32_t sel = 0;
    assert_int_equal(smc_set_protocol(f->h, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &sel),
                     STATUS_SUCCESS);
    assert_int_equal(sel, SCARD_PROTOCOL_T1);
    assert_int_equal(state_of(f->h), SCARD_SPECIFIC);
}

/* The power-up exchange every script starts with: power on + get ATR in one write. */
#define POWER_UP "<00 01 01 00 01 04", ">00 0B " ATR_HEX

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_frame_parse(void **state)
{
    (void)state;
    size_t plen, need;
    const uint8_t ok[] = {0x00, 0x02, 0x90, 0x00};
    assert_int_equal(vpcd_frame_parse(ok, 0, 1, 10, &plen, &need), VPCD_FRAME_MORE);
    assert_int_equal(need, 2);
    assert_int_equal(vpcd_frame_parse(ok, 1, 1, 10, &plen, &need), VPCD_FRAME_MORE);
    assert_int_equal(vpcd_frame_parse(ok, 3, 1, 10, &plen, &need), VPCD_FRAME_MORE);
    assert_int_equal(need, 4);
    assert_int_equal(vpcd_frame_parse(ok, 4, 1, 10, &plen, &need), VPCD_FRAME_OK);
    assert_int_equal(plen, 2);
    assert_int_equal(vpcd_frame_parse(ok, 4, 3, 10, &plen, &need), VPCD_FRAME_SHORT);
    assert_int_equal(vpcd_frame_parse(ok, 4, 1, 1, &plen, &need), VPCD_FRAME_LONG);
    const uint8_t zero[] = {0x00, 0x00};
    assert_int_equal(vpcd_frame_parse(zero, 2, 1, 10, &plen, &need), VPCD_FRAME_EMPTY);
    const uint8_t trailing[] = {0x00, 0x01, 0x3B, 0x00};
    assert_int_equal(vpcd_frame_parse(trailing, 4, 1, 10, &plen, &need), VPCD_FRAME_TRAILING);
    const uint8_t big[] = {0xFF, 0xFF};
    assert_int_equal(vpcd_frame_parse(big, 2, 1, VPCD_MAX_PAYLOAD, &plen, &need), VPCD_FRAME_MORE);
    assert_int_equal(need, 2 + 0xFFFF);
    assert_int_equal(vpcd_frame_parse(big, 2, 1, 33, &plen, &need), VPCD_FRAME_LONG);

    uint8_t buf[8] = {0};
    const uint8_t apdu[] = {0x00, 0xA4, 0x04, 0x00};
    assert_int_equal(vpcd_frame_put(buf, sizeof(buf), apdu, 4), 6);
    assert_bytes_hex(buf, 6, "00 04 00 A4 04 00");
    assert_int_equal(vpcd_frame_put(buf, 5, apdu, 4), 0);
    assert_int_equal(vpcd_frame_put(buf, sizeof(buf), apdu, 0), 0);
    assert_string_equal(vpcd_parse_text(VPCD_FRAME_EMPTY), "zero-length frame");
}

static void test_device_strings(void **state)
{
    (void)state;
    struct smc_ctx *ctx = smc_ctx_new();
    assert_int_equal(smc_register_driver(ctx, &smc_vpcd_driver), STATUS_SUCCESS);
    char name[128];
    assert_true(smc_device_name(ctx, "vpcd:127.0.0.1:0:timeout=500", name, sizeof(name)));
    assert_string_equal(name, "vpcd:127.0.0.1:0");
    assert_true(smc_device_name(ctx, "vpcd:0", name, sizeof(name)));
    assert_string_equal(name, "vpcd:0");
    assert_true(smc_device_name(ctx, "vpcd:connect:localhost:35963", name, sizeof(name)));
    assert_string_equal(name, "vpcd:connect:localhost:35963");
    assert_false(smc_device_name(ctx, "nodriver:1", name, sizeof(name)));
    assert_false(smc_device_name(ctx, "vpcd:127.0.0.1:0", name, 8));

    const char *bad[] = {"vpcd:x",
                         "vpcd:70000",
                         "vpcd:0:bogus=1",
                         "vpcd:0:timeout=5",
                         "vpcd:connect:1.2.3.4",
                         "vpcd:connect:1.2.3.4:0",
                         "vpcd:no.such.host.invalid:0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(smc_add_device(ctx, bad[i]), STATUS_INVALID_PARAMETER);

    /* Two readers on the same address are two devices; the same device string twice is not. */
    assert_int_equal(smc_add_device(ctx, "vpcd:127.0.0.1:0:unit=7,vendor=ACME,ifd=VR"),
                     STATUS_SUCCESS);
    assert_int_equal(smc_add_device(ctx, "vpcd:127.0.0.1:0"), STATUS_DEVICE_BUSY);
    assert_int_equal(smc_add_device(ctx, "vpcd:0"), STATUS_SUCCESS);
    struct smc_handle *h;
    assert_int_equal(smc_open(ctx, "vpcd:127.0.0.1:0", &h), STATUS_SUCCESS);
    uint32_t unit = 0;
    assert_int_equal(smc_get_attr_dword(h, SCARD_ATTR_DEVICE_UNIT, &unit), STATUS_SUCCESS);
    assert_int_equal(unit, 7);
    uint8_t in[4] = {(uint8_t)SCARD_ATTR_VENDOR_NAME, (uint8_t)(SCARD_ATTR_VENDOR_NAME >> 8),
                     (uint8_t)(SCARD_ATTR_VENDOR_NAME >> 16),
                     (uint8_t)(SCARD_ATTR_VENDOR_NAME >> 24)};
    char vendor[40];
    size_t n = 0;
    assert_int_equal(smc_ioctl(h, IOCTL_SMARTCARD_GET_ATTRIBUTE, in, 4, vendor, sizeof(vendor), &n),
                     STATUS_SUCCESS);
    assert_memory_equal(vendor, "ACME", 4);
    assert_int_equal(state_of(h), SCARD_ABSENT);
    smc_close(h);
    assert_int_equal(smc_remove_device(ctx, "vpcd:127.0.0.1:0"), STATUS_SUCCESS);
    smc_ctx_free(ctx);
}

static void test_insert_exchange_remove(void **state)
{
    struct fixture *f = *state;
    uint32_t ch = 0;
    assert_int_equal(smc_get_attr_dword(f->h, SCARD_ATTR_CHANNEL_ID, &ch), STATUS_SUCCESS);
    assert_int_equal(ch & 0xFFFF, f->port);
    /* Without a card: libsmc's rules answer, the driver is not asked. */
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
    uint8_t resp[300];
    size_t n = 0;
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, resp, sizeof(resp), &n), STATUS_NO_MEDIA);
    assert_int_equal(transmit(f->h, "00 A4 00 0C 02 3F 00", resp, sizeof(resp), &n),
                     STATUS_NO_MEDIA);

    const char *const script[] = {POWER_UP,
                                  "<00 07 00 A4 00 0C 02 3F 00",
                                  ">00 02 90 00", /* SELECT MF */
                                  "<00 05 00 B0 00 00 04",
                                  ">00 06 01 02 03 04 90 00", /* READ BINARY */
                                  "<00 01 02 00 01 04",
                                  ">00 0B " ATR_HEX, /* warm reset */
                                  "<00 01 00 00 01 01 00 01 04",
                                  ">00 0B " ATR_HEX, /* cold reset of a powered card */
                                  "<00 01 00",       /* power down */
                                  "<00 01 01 00 01 04",
                                  ">00 0B " ATR_HEX, /* cold reset, unpowered */
                                  NULL};
    struct card c;
    insert(f, &c, script);
    assert_int_equal(state_of(f->h), SCARD_SWALLOWED);
    power_and_select(f);
    assert_int_equal(transmit(f->h, "00 A4 00 0C 02 3F 00", resp, sizeof(resp), &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(resp, n, "02 00 00 00 08 00 00 00 90 00");
    assert_int_equal(transmit(f->h, "00 B0 00 00 04", resp, sizeof(resp), &n), STATUS_SUCCESS);
    assert_bytes_hex(resp + 8, n - 8, "01 02 03 04 90 00");
    assert_int_equal(smc_power(f->h, SCARD_WARM_RESET, resp, sizeof(resp), &n), STATUS_SUCCESS);
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, resp, sizeof(resp), &n), STATUS_SUCCESS);
    assert_int_equal(smc_power(f->h, SCARD_POWER_DOWN, NULL, 0, &n), STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_SWALLOWED);
    assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, resp, sizeof(resp), &n), STATUS_SUCCESS);
    assert_bytes_hex(resp, n, ATR_HEX);

    unplug(f, &c);
    assert_int_equal(state_of(f->h), SCARD_ABSENT);

    /* A new card connects: a new insertion, powered from scratch. */
    const char *const again[] = {POWER_UP, "<00 05 80 CA 00 00 00", ">00 02 6A 88", NULL};
    insert(f, &c, again);
    power_and_select(f);
    assert_int_equal(transmit(f->h, "80 CA 00 00 00", resp, sizeof(resp), &n), STATUS_SUCCESS);
    assert_bytes_hex(resp + 8, n - 8, "6A 88");
    unplug(f, &c);
}

static void test_small_buffer(void **state)
{
    struct fixture *f = *state;
    const char *const script[] = {POWER_UP,
                                  "<00 05 00 B0 00 00 04",
                                  ">00 06 01 02 03 04 90 00",
                                  "<00 07 00 A4 00 0C 02 3F 00",
                                  ">00 02 90 00",
                                  "eof",
                                  NULL};
    struct card c;
    insert(f, &c, script);
    power_and_select(f);
    uint8_t resp[300];
    size_t n = 0;
    assert_int_equal(transmit(f->h, "00 B0 00 00 04", resp, 10, &n), STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(transmit(f->h, "00 A4 00 0C 02 3F 00", resp, sizeof(resp), &n),
                     STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_SPECIFIC);
    assert_int_equal(smc_remove_device(f->ctx, "vpcd:127.0.0.1:0"), STATUS_SUCCESS);
    card_join(&c); /* the reader closed the connection with the device */
    card_close(&c);
}

/* A card whose answer is bad in `how`: the request ends NO_MEDIA, the card is removed, the
 * connection closed, and the reader takes the next card. */
static void bad_answer(struct fixture *f, const char *const *script, bool at_power)
{
    struct card c;
    insert(f, &c, script);
    uint8_t resp[300];
    size_t n = 0;
    if (at_power) {
        assert_int_equal(smc_power(f->h, SCARD_COLD_RESET, resp, sizeof(resp), &n),
                         STATUS_NO_MEDIA);
    } else {
        power_and_select(f);
        assert_int_equal(transmit(f->h, "00 A4 00 0C 02 3F 00", resp, sizeof(resp), &n),
                         STATUS_NO_MEDIA);
        assert_int_equal(n, 0);
    }
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
    card_join(&c);
    card_close(&c);
}

static void test_bad_frames(void **state)
{
    struct fixture *f = *state;
    const char *const empty[] = {POWER_UP, "<00 07 00 A4 00 0C 02 3F 00", ">00 00", "hold", NULL};
    bad_answer(f, empty, false);
    const char *const one_byte[] = {POWER_UP, "<00 07 00 A4 00 0C 02 3F 00", ">00 01 90", "hold",
                                    NULL};
    bad_answer(f, one_byte, false);
    const char *const trailing[] = {POWER_UP, "<00 07 00 A4 00 0C 02 3F 00", ">00 02 90 00 00 02",
                                    "hold", NULL};
    bad_answer(f, trailing, false);
    /* An "ATR" of 40 bytes: longer than any ATR. */
    const char *const long_atr[] = {"<00 01 01 00 01 04", ">00 28", "hold", NULL};
    bad_answer(f, long_atr, true);
    /* Text instead of frames ("HTTP" announces 18516 bytes): too long for an ATR. */
    const char *const garbage[] = {"<00 01 01 00 01 04", ">48 54 54 50 2F 31 2E 31", "hold", NULL};
    bad_answer(f, garbage, true);
    /* An ATR that never ends: the answer timeout (300 ms here) ends it as a removal. */
    const char *const cut[] = {"<00 01 01 00 01 04", ">00 0B 3B 95", "hold", NULL};
    bad_answer(f, cut, true);

    /* A good card afterwards works: only the bad cards paid. */
    const char *const good[] = {POWER_UP, "<00 07 00 A4 00 0C 02 3F 00", ">00 02 90 00", NULL};
    struct card c;
    insert(f, &c, good);
    power_and_select(f);
    uint8_t resp[300];
    size_t n = 0;
    assert_int_equal(transmit(f->h, "00 A4 00 0C 02 3F 00", resp, sizeof(resp), &n),
                     STATUS_SUCCESS);
    unplug(f, &c);
}

static void test_vanish_and_stall(void **state)
{
    struct fixture *f = *state;
    /* The card reads the APDU and closes: removal, not an empty success. */
    const char *const vanish[] = {POWER_UP, "<00 07 00 A4 00 0C 02 3F 00", "close", NULL};
    bad_answer(f, vanish, false);
    /* The card reads the APDU and never answers: after the timeout, removal. */
    const char *const stall[] = {POWER_UP, "<00 07 00 A4 00 0C 02 3F 00", "hold", NULL};
    bad_answer(f, stall, false);
}

static void test_unasked_bytes(void **state)
{
    struct fixture *f = *state;
    const char *const script[] = {POWER_UP, NULL};
    struct card c;
    insert(f, &c, script);
    power_and_select(f);
    card_join(&c);
    /* While idle the card sends something nobody asked for: the reader drops it. */
    struct tracking t;
    track(f, &t, IOCTL_SMARTCARD_IS_ABSENT);
    const char *const chatter[] = {">00 02 90 00", "eof", NULL};
    card_run(&c, c.fd, chatter);
    assert_int_equal(await(f, &t), STATUS_SUCCESS);
    assert_int_equal(state_of(f->h), SCARD_ABSENT);
    card_join(&c);
    card_close(&c);
}

static void test_second_connection(void **state)
{
    struct fixture *f = *state;
    const char *const script[] = {POWER_UP, "<00 07 00 A4 00 0C 02 3F 00", ">00 02 90 00", NULL};
    struct card c;
    insert(f, &c, script);
    /* A second card while one is in: its connection is closed; the first is not disturbed. */
    struct card intruder;
    const char *const refused[] = {"eof", NULL};
    card_run(&intruder, tcp_connect(f->port), refused);
    card_join(&intruder);
    card_close(&intruder);
    power_and_select(f);
    uint8_t resp[300];
    size_t n = 0;
    assert_int_equal(transmit(f->h, "00 A4 00 0C 02 3F 00", resp, sizeof(resp), &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(resp + 8, n - 8, "90 00");
    unplug(f, &c);
}

/* Removing the device with a card in and a tracking request pending: the request is cancelled,
 * the card's connection closed, nothing leaks. */
static void test_remove_device_with_card(void **state)
{
    struct fixture *f = *state;
    const char *const script[] = {"eof", NULL};
    struct card c;
    insert(f, &c, script);
    struct tracking t;
    track(f, &t, IOCTL_SMARTCARD_IS_ABSENT);
    assert_int_equal(smc_remove_device(f->ctx, "vpcd:127.0.0.1:0"), STATUS_SUCCESS);
    assert_int_equal(await(f, &t), STATUS_CANCELLED);
    card_join(&c);
    card_close(&c);
}

/* Reverse mode: the reader connects to a card that listens, and again after the card left. */
static void test_reverse(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    char device[64];
    snprintf(device, sizeof(device), "vpcd:connect:127.0.0.1:%u", ntohs(a.sin_port));
    struct fixture *f = open_dev(device);
    assert_int_equal(f->port, ntohs(a.sin_port));
    for (int round = 0; round < 2; round++) {
        struct tracking t;
        track(f, &t, IOCTL_SMARTCARD_IS_PRESENT);
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, WAIT_MS), 1);
        int fd = accept(lfd, NULL, NULL);
        assert_true(fd >= 0);
        const char *const script[] = {POWER_UP, "<00 07 00 A4 00 0C 02 3F 00", ">00 02 90 00",
                                      NULL};
        struct card c;
        card_run(&c, fd, script);
        assert_int_equal(await(f, &t), STATUS_SUCCESS);
        power_and_select(f);
        uint8_t resp[300];
        size_t n = 0;
        assert_int_equal(transmit(f->h, "00 A4 00 0C 02 3F 00", resp, sizeof(resp), &n),
                         STATUS_SUCCESS);
        unplug_card(f, &c); /* the reader connects again at once: the state may be either */
    }
    close(lfd);
    *state = f;
    teardown(state);
}

/* The ids of this process's vpcd event threads (named scrm-vpcd; a sanitizer's own threads are
 * left out), up to max; their number. */
#define MAX_EV 16
static int event_threads(long *tids)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < MAX_EV;) {
        char path[300], comm[32] = "";
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* it has just left */
        if (fgets(comm, sizeof comm, f) && strcmp(comm, "scrm-vpcd\n") == 0)
            tids[n++] = strtol(e->d_name, NULL, 10);
        fclose(f);
    }
    closedir(d);
    return n;
}

/* The event threads now that were not in old[0..nold): its number, the last one in *tid. An
 * earlier test's thread, joined but not yet out of /proc/self/task, is in old and not counted. */
static int new_event_threads(const long *old, int nold, long *tid)
{
    long now[MAX_EV];
    int n = event_threads(now), fresh = 0;
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int j = 0; j < nold; j++)
            seen |= now[i] == old[j];
        if (!seen) {
            fresh++;
            *tid = now[i];
        }
    }
    return fresh;
}

/* Whether thread tid is still listed, after waiting up to 5 s for it to go: a joined thread
 * leaves /proc/self/task a moment after pthread_join returns, and nothing signals that moment. */
static bool still_listed(long tid)
{
    for (int i = 0; i < 5000; i++) {
        long now[MAX_EV];
        int n = event_threads(now);
        bool listed = false;
        for (int j = 0; j < n; j++)
            listed |= now[j] == tid;
        if (!listed)
            return false;
        usleep(1000);
    }
    return true;
}

/* All vpcd readers of a process share one event thread: started by the first, ended (joined)
 * with the last. */
static void test_one_event_thread(void **state)
{
    (void)state;
    long before[MAX_EV], ev = 0, again = 0;
    int nbefore = event_threads(before);
    struct smc_ctx *ctx = smc_ctx_new();
    assert_int_equal(smc_register_driver(ctx, &smc_vpcd_driver), STATUS_SUCCESS);
    assert_int_equal(smc_add_device(ctx, "vpcd:0"), STATUS_SUCCESS);
    assert_int_equal(new_event_threads(before, nbefore, &ev), 1);
    assert_int_equal(smc_add_device(ctx, "vpcd:127.0.0.1:0"), STATUS_SUCCESS);
    assert_int_equal(smc_add_device(ctx, "vpcd:localhost:0"), STATUS_SUCCESS);
    assert_int_equal(new_event_threads(before, nbefore, &again), 1);
    assert_int_equal(again, ev);
    assert_int_equal(smc_remove_device(ctx, "vpcd:0"), STATUS_SUCCESS);
    assert_int_equal(smc_remove_device(ctx, "vpcd:127.0.0.1:0"), STATUS_SUCCESS);
    assert_int_equal(new_event_threads(before, nbefore, &again), 1);
    assert_int_equal(again, ev);
    assert_int_equal(smc_remove_device(ctx, "vpcd:localhost:0"), STATUS_SUCCESS);
    assert_false(still_listed(ev));
    smc_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_parse),
        cmocka_unit_test(test_device_strings),
        cmocka_unit_test_setup_teardown(test_insert_exchange_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vanish_and_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unasked_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_device_with_card, setup, teardown),
        cmocka_unit_test(test_reverse),
        cmocka_unit_test(test_one_event_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
