/*
 * Test harness of the resource manager tests; see rm_harness.h.
 */
#include "rm_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "drivers/registry.h"
#include "rm/internal.h"
#include "testutil.h"

/* ---- tdrv: the test driver ---- */

struct tdrv {
    bool powered, failtrack, noname;
    bool card;
    bool bad_next_reset; /* "powered": the next reset gives an unusable ATR */
};

static smc_status td_open(struct smc_reader *r, const char *address, const char *options)
{
    struct tdrv *d = calloc(1, sizeof(*d));
    if (!d)
        return STATUS_INSUFFICIENT_RESOURCES;
    d->powered = strstr(options, "powered") != NULL;
    d->failtrack = strstr(options, "failtrack") != NULL;
    d->noname = strstr(options, "noname") != NULL;
    struct smc_vendor_attr *va = smc_reader_vendor(r);
    snprintf(va->vendor_name, sizeof(va->vendor_name), "%s", d->noname ? "" : "TestVendor");
    snprintf(va->ifd_type, sizeof(va->ifd_type), "TestReader");
    va->unit = (uint32_t)strtoul(address, NULL, 10);
    struct smc_reader_caps *c = smc_reader_caps(r);
    c->protocols = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1;
    c->reader_type = SCARD_READER_TYPE_VENDOR;
    c->clk_default_khz = c->clk_max_khz = 3580;
    c->rate_default = c->rate_max = 9600;
    c->max_ifsd = 254;
    smc_reader_set_priv(r, d);
    smc_reader_set_state(r, SCARD_ABSENT);
    return STATUS_SUCCESS;
}

static void td_close(struct smc_reader *r)
{
    free(smc_reader_priv(r));
    smc_reader_set_priv(r, NULL);
}

static smc_status td_power(struct smc_reader *r, struct smc_io *io)
{
    struct tdrv *d = smc_reader_priv(r);
    if (!d->card)
        return STATUS_NO_MEDIA;
    if (io->minor == SCARD_POWER_DOWN)
        return STATUS_SUCCESS;
    static const uint8_t bad[] = {0x42, 0x00};  /* invalid TS: not usable even leniently */
    static const uint8_t good[] = {0x3B, 0x00}; /* T=0, nothing else */
    if (d->bad_next_reset) {
        d->bad_next_reset = false;
        smc_reader_set_atr(r, bad, sizeof(bad));
    } else {
        smc_reader_set_atr(r, good, sizeof(good));
    }
    return STATUS_SUCCESS;
}

static smc_status td_transmit(struct smc_reader *r, struct smc_io *io)
{
    (void)r;
    if (io->out_len < 10)
        return STATUS_BUFFER_TOO_SMALL;
    memcpy(io->out, "\x01\0\0\0\x08\0\0\0\x90\x00", 10);
    io->info = 10;
    return STATUS_SUCCESS;
}

static smc_status td_set_protocol(struct smc_reader *r, struct smc_io *io)
{
    (void)r;
    if (!(io->minor & SCARD_PROTOCOL_T0))
        return STATUS_NOT_SUPPORTED;
    if (io->out_len < 4)
        return STATUS_BUFFER_TOO_SMALL;
    memcpy(io->out, "\x01\0\0\0", 4);
    io->info = 4;
    return STATUS_SUCCESS;
}

static smc_status td_tracking(struct smc_reader *r, uint32_t code)
{
    (void)code;
    struct tdrv *d = smc_reader_priv(r);
    return d->failtrack ? STATUS_IO_DEVICE_ERROR : STATUS_PENDING;
}

static smc_status td_vendor(struct smc_reader *r, struct smc_io *io)
{
    struct tdrv *d = smc_reader_priv(r);
    switch (io->code) {
    case TDRV_INSERT: {
        uint32_t state = SCARD_PRESENT;
        if (io->in_len >= 4)
            state = (uint32_t)io->in[0] | (uint32_t)io->in[1] << 8;
        if (d->card)
            return STATUS_DEVICE_BUSY;
        d->card = true;
        d->bad_next_reset = d->powered;
        smc_card_inserted(r, state);
        return STATUS_SUCCESS;
    }
    case TDRV_REMOVE:
        if (!d->card)
            return STATUS_NO_MEDIA;
        d->card = false;
        smc_card_removed(r);
        return STATUS_SUCCESS;
    default: return STATUS_NOT_SUPPORTED;
    }
}

const struct smc_driver_ops tdrv_ops = {
    .name = "tdrv",
    .open = td_open,
    .close = td_close,
    .power = td_power,
    .transmit = td_transmit,
    .set_protocol = td_set_protocol,
    .card_tracking = td_tracking,
    .ioctl_vendor = td_vendor,
};

/* ---- trace capture ---- */

void rmt_trace_cb(void *user, const struct rm_trace_entry *e)
{
    struct rmt_trace *tr = user;
    pthread_mutex_lock(&tr->lock);
    bool skip = tr->only && !pthread_equal(tr->only_thread, pthread_self());
    pthread_mutex_unlock(&tr->lock);
    if (skip)
        return;
    char line[256];
    const char *state =
        e->code == IOCTL_SMARTCARD_GET_STATE && e->has_value ? smc_state_name(e->value) : NULL;
    snprintf(line, sizeof(line), "%s%s%s%s", e->completion ? "done " : "", e->line,
             state ? " = " : "", state ? state : "");
    pthread_mutex_lock(&tr->lock);
    if (tr->n == tr->cap) {
        size_t cap = tr->cap ? tr->cap * 2 : 64;
        char **l = realloc(tr->lines, cap * sizeof(*l));
        if (!l) {
            pthread_mutex_unlock(&tr->lock);
            return;
        }
        tr->lines = l;
        tr->cap = cap;
    }
    tr->lines[tr->n++] = strdup(line);
    pthread_cond_broadcast(&tr->cond);
    pthread_mutex_unlock(&tr->lock);
}

static void clear_locked(struct rmt_trace *tr)
{
    for (size_t i = 0; i < tr->n; i++)
        free(tr->lines[i]);
    tr->n = 0;
}

void rmt_clear(struct rmt *t)
{
    pthread_mutex_lock(&t->tr.lock);
    clear_locked(&t->tr);
    pthread_mutex_unlock(&t->tr.lock);
}

void rmt_trace_only_me(struct rmt *t, bool on)
{
    pthread_mutex_lock(&t->tr.lock);
    t->tr.only = on;
    t->tr.only_thread = pthread_self();
    pthread_mutex_unlock(&t->tr.lock);
}

size_t rmt_lines(struct rmt *t)
{
    pthread_mutex_lock(&t->tr.lock);
    size_t n = t->tr.n;
    pthread_mutex_unlock(&t->tr.lock);
    return n;
}

/* Wait on tr->cond until pred holds or the bound passes; tr->lock held. */
static bool wait_until_locked(struct rmt_trace *tr, bool (*pred)(struct rmt_trace *, const void *),
                              const void *arg)
{
    struct timespec dl = scrm_deadline_ms(RMT_WAIT_MS);
    while (!pred(tr, arg))
        if (pthread_cond_timedwait(&tr->cond, &tr->lock, &dl) != 0)
            return pred(tr, arg);
    return true;
}

static bool have_n(struct rmt_trace *tr, const void *arg)
{
    return tr->n >= *(const size_t *)arg;
}

static bool have_line(struct rmt_trace *tr, const void *arg)
{
    for (size_t i = 0; i < tr->n; i++)
        if (strcmp(tr->lines[i], arg) == 0)
            return true;
    return false;
}

void rmt_expect(struct rmt *t, const char *const *want, size_t n, const char *file, int line)
{
    struct rmt_trace *tr = &t->tr;
    pthread_mutex_lock(&tr->lock);
    wait_until_locked(tr, have_n, &n);
    bool same = tr->n == n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(tr->lines[i], want[i]) == 0;
    if (!same) {
        print_error("IOCTL trace mismatch at %s:%d\n  expected (%zu):\n", file, line, n);
        for (size_t i = 0; i < n; i++)
            print_error("    %s\n", want[i]);
        print_error("  got (%zu):\n", tr->n);
        for (size_t i = 0; i < tr->n; i++)
            print_error("    %s\n", tr->lines[i]);
    }
    clear_locked(tr);
    pthread_mutex_unlock(&tr->lock);
    if (!same)
        _fail(file, line);
}

bool rmt_wait_line(struct rmt *t, const char *line)
{
    pthread_mutex_lock(&t->tr.lock);
    bool ok = wait_until_locked(&t->tr, have_line, line);
    pthread_mutex_unlock(&t->tr.lock);
    return ok;
}

/* ---- environment ---- */

void rmt_config(struct rm_config *cfg)
{
    rm_config_init(cfg);
    cfg->power_down_ms = 50;
    cfg->retry_ms = 10;
}

struct rmt *rmt_new(const struct rm_config *cfg)
{
    struct rmt *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    pthread_mutex_init(&t->tr.lock, NULL);
    assert_int_equal(scrm_cond_init_monotonic(&t->tr.cond), 0);
    t->ctx = smc_ctx_new();
    assert_non_null(t->ctx);
    assert_int_equal(scrm_drivers_register(t->ctx), STATUS_SUCCESS);
    assert_int_equal(smc_register_driver(t->ctx, &tdrv_ops), STATUS_SUCCESS);
    struct rm_config def;
    rmt_config(&def);
    t->rm = rm_new(cfg ? cfg : &def, t->ctx);
    assert_non_null(t->rm);
    rm_power_down_manual(t->rm); /* before any reader: no timeout runs on the clock */
    rm_set_trace(t->rm, rmt_trace_cb, &t->tr);
    return t;
}

void rmt_power_down(struct rmt *t, const char *reader)
{
    assert_true(rm_power_down_expire(t->rm, reader));
}

void rmt_free(struct rmt *t)
{
    rm_free(t->rm);
    for (int i = 0; i < 4; i++)
        if (t->ext[i])
            smc_close(t->ext[i]);
    smc_ctx_free(t->ctx);
    clear_locked(&t->tr);
    free(t->tr.lines);
    pthread_cond_destroy(&t->tr.cond);
    pthread_mutex_destroy(&t->tr.lock);
    free(t);
}

static struct smc_handle *ext_handle(struct rmt *t, const char *device)
{
    for (int i = 0; i < 4; i++)
        if (t->ext[i] && strcmp(t->ext_dev[i], device) == 0)
            return t->ext[i];
    for (int i = 0; i < 4; i++) {
        if (!t->ext[i]) {
            assert_int_equal(smc_open(t->ctx, device, &t->ext[i]), STATUS_SUCCESS);
            snprintf(t->ext_dev[i], sizeof(t->ext_dev[i]), "%s", device);
            return t->ext[i];
        }
    }
    fail_msg("too many outside handles");
    return NULL;
}

uint32_t rmt_ext(struct rmt *t, const char *device, uint32_t code, const void *in, size_t len)
{
    return smc_ioctl(ext_handle(t, device), code, in, len, NULL, 0, NULL);
}

uint32_t rmt_insert(struct rmt *t, const char *device, const char *profile)
{
    return rmt_ext(t, device, SIM_IOCTL_INSERT, profile, profile ? strlen(profile) : 0);
}

uint32_t rmt_remove(struct rmt *t, const char *device)
{
    return rmt_ext(t, device, SIM_IOCTL_REMOVE, NULL, 0);
}

uint32_t rmt_fault(struct rmt *t, const char *device, uint32_t fault, uint32_t param)
{
    uint8_t in[8];
    for (int i = 0; i < 4; i++) {
        in[i] = (uint8_t)(fault >> (8 * i));
        in[4 + i] = (uint8_t)(param >> (8 * i));
    }
    return rmt_ext(t, device, SIM_IOCTL_FAULT, in, sizeof(in));
}

/* ---- watch counters ---- */

void rmt_counter_init(struct rmt_counter *c)
{
    pthread_mutex_init(&c->lock, NULL);
    assert_int_equal(scrm_cond_init_monotonic(&c->cond), 0);
    c->calls = c->last = 0;
}

void rmt_counter_fini(struct rmt_counter *c)
{
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
}

void rmt_counter_cb(void *user, const char *name, uint32_t counter)
{
    (void)name;
    struct rmt_counter *c = user;
    pthread_mutex_lock(&c->lock);
    c->calls++;
    c->last = counter;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

bool rmt_counter_wait(struct rmt_counter *c, uint32_t n)
{
    struct timespec dl = scrm_deadline_ms(RMT_WAIT_MS);
    pthread_mutex_lock(&c->lock);
    bool ok = true;
    while (c->calls < n && ok)
        ok = pthread_cond_timedwait(&c->cond, &c->lock, &dl) == 0 || c->calls >= n;
    ok = c->calls >= n;
    pthread_mutex_unlock(&c->lock);
    return ok;
}

struct rm_reader_info rmt_info(struct rmt *t, const char *name)
{
    struct rm_reader_info info;
    assert_int_equal(rm_get_reader(t->rm, name, &info), SCARD_S_SUCCESS);
    return info;
}

bool rmt_wait_info(struct rmt *t, const char *name, bool (*pred)(const struct rm_reader_info *))
{
    struct rmt_counter c;
    rmt_counter_init(&c);
    struct rm_watch *w = rm_watch(t->rm, name, rmt_counter_cb, &c);
    uint64_t end = scrm_now_ns() + (uint64_t)RMT_WAIT_MS * 1000000u;
    bool ok = false;
    for (;;) {
        pthread_mutex_lock(&c.lock);
        uint32_t seen = c.calls;
        pthread_mutex_unlock(&c.lock);
        struct rm_reader_info info;
        if (rm_get_reader(t->rm, name, &info) == SCARD_S_SUCCESS && pred(&info)) {
            ok = true;
            break;
        }
        if (scrm_now_ns() >= end)
            break;
        pthread_mutex_lock(&c.lock);
        struct timespec dl = scrm_deadline_ms(100);
        if (c.calls == seen)
            pthread_cond_timedwait(&c.cond, &c.lock, &dl);
        pthread_mutex_unlock(&c.lock);
    }
    rm_unwatch(t->rm, w);
    rmt_counter_fini(&c);
    return ok;
}
