/*
 * libsmc core: IOCTL dispatch, the state x IOCTL table of docs/libsmc.md buffer rules, card tracking
 * statuses, cancellation and cleanup, NULL slots, exclusive devices, pending vendor slots, device
 * removal, GET_LAST_ERROR and GET_PERF_CNTR. A mock driver defined here lets each test put the
 * reader in any state through the real event path.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "smc/driver.h"
#include "smc/smc.h"

/* ---- mock driver ---- */

struct mock {
    struct smc_reader *r;
    int power_calls, transmit_calls, protocol_calls, tracking_calls, vendor_calls;
    int eject_calls, swallow_calls, confiscate_calls;
    smc_status tracking_answer; /* what card_tracking returns (default PENDING) */
    bool vendor_pends;
    bool vendor_completes_inside; /* calls smc_complete_pending() before returning PENDING */
};
static struct mock *mk; /* the mock of the device the current test opened */

/* Slot overlap detector: every slot enters and leaves; two slots inside at once is a bug. */
static atomic_int inside, overlaps;

static void enter(void)
{
    if (atomic_fetch_add(&inside, 1) != 0)
        atomic_fetch_add(&overlaps, 1);
}

static void leave(void)
{
    atomic_fetch_sub(&inside, 1);
}

static smc_status m_power(struct smc_reader *r, struct smc_io *io)
{
    mk->power_calls++;
    if (io->minor != SCARD_POWER_DOWN) {
        static const uint8_t atr[] = {0x3B, 0x02, 0x14, 0x50}; /* T=0 only, 2 historical bytes */
        smc_reader_set_atr(r, atr, sizeof(atr));
    }
    return STATUS_SUCCESS;
}

static smc_status m_transmit(struct smc_reader *r, struct smc_io *io)
{
    (void)r;
    enter();
    mk->transmit_calls++;
    memcpy(io->out, "\x01\0\0\0\x08\0\0\0\x90\x00", 10);
    io->info = 10;
    leave();
    return STATUS_SUCCESS;
}

static smc_status m_set_protocol(struct smc_reader *r, struct smc_io *io)
{
    enter();
    mk->protocol_calls++;
    smc_status st = smc_select_protocol(r, io, NULL); /* T=0 card without TA1: no PPS, no link */
    leave();
    return st;
}

static smc_status m_tracking(struct smc_reader *r, uint32_t code)
{
    (void)r;
    (void)code;
    mk->tracking_calls++;
    return mk->tracking_answer;
}

static smc_status m_eject(struct smc_reader *r)
{
    (void)r;
    mk->eject_calls++;
    return STATUS_SUCCESS;
}

static smc_status m_swallow(struct smc_reader *r)
{
    (void)r;
    mk->swallow_calls++;
    return STATUS_SUCCESS;
}

static smc_status m_confiscate(struct smc_reader *r)
{
    (void)r;
    mk->confiscate_calls++;
    return STATUS_SUCCESS;
}

static smc_status m_vendor(struct smc_reader *r, struct smc_io *io)
{
    enter();
    mk->vendor_calls++;
    smc_status st = STATUS_SUCCESS;
    if (mk->vendor_completes_inside) {
        smc_complete_pending(r, STATUS_SUCCESS, 0);
        st = STATUS_PENDING;
    } else if (mk->vendor_pends) {
        st = STATUS_PENDING;
    } else if (io->code == IOCTL_SMARTCARD_GET_ATTRIBUTE)
        st = STATUS_NOT_SUPPORTED;
    io->info = 0;
    leave();
    return st;
}

static smc_status m_open(struct smc_reader *r, const char *address, const char *options)
{
    (void)address;
    (void)options;
    mk = calloc(1, sizeof(*mk));
    mk->r = r;
    mk->tracking_answer = STATUS_PENDING;
    struct smc_vendor_attr *va = smc_reader_vendor(r);
    memcpy(va->vendor_name, "Mock", 5);
    memcpy(va->ifd_type, "Reader", 7);
    va->unit = 3;
    struct smc_reader_caps *c = smc_reader_caps(r);
    c->protocols = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1;
    c->clk_default_khz = c->clk_max_khz = 4000;
    c->rate_default = c->rate_max = 10752;
    c->max_ifsd = 254;
    c->mech = SCARD_READER_SWALLOWS | SCARD_READER_EJECTS | SCARD_READER_CONFISCATES;
    smc_reader_set_priv(r, mk);
    smc_reader_set_state(r, SCARD_ABSENT);
    return STATUS_SUCCESS;
}

static void m_close(struct smc_reader *r)
{
    free(smc_reader_priv(r));
}

static const struct smc_driver_ops mock_ops = {
    .name = "mock",
    .open = m_open,
    .close = m_close,
    .power = m_power,
    .transmit = m_transmit,
    .set_protocol = m_set_protocol,
    .card_tracking = m_tracking,
    .eject = m_eject,
    .swallow = m_swallow,
    .confiscate = m_confiscate,
    .ioctl_vendor = m_vendor,
};

/* The same driver without optional slots, and exclusive. */
static const struct smc_driver_ops bare_ops = {
    .name = "bare",
    .open = m_open,
    .close = m_close,
    .power = m_power,
    .transmit = m_transmit,
    .set_protocol = m_set_protocol,
    .card_tracking = m_tracking,
    .exclusive = true,
};

struct fixture {
    struct smc_ctx *ctx;
    struct smc_handle *h;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->ctx = smc_ctx_new();
    assert_int_equal(smc_register_driver(f->ctx, &mock_ops), STATUS_SUCCESS);
    assert_int_equal(smc_register_driver(f->ctx, &bare_ops), STATUS_SUCCESS);
    assert_int_equal(smc_add_device(f->ctx, "mock:0"), STATUS_SUCCESS);
    assert_int_equal(smc_open(f->ctx, "mock:0", &f->h), STATUS_SUCCESS);
    *state = f;
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

/* ---- helpers ---- */

static smc_status ioctl_u32(struct smc_handle *h, uint32_t code, uint32_t arg, void *out,
                            size_t out_len, size_t *ret)
{
    uint8_t in[4] = {(uint8_t)arg, (uint8_t)(arg >> 8), (uint8_t)(arg >> 16), (uint8_t)(arg >> 24)};
    return smc_ioctl(h, code, in, 4, out, out_len, ret);
}

struct completion {
    int calls;
    smc_status status;
};

static void on_done(void *user, smc_status st, size_t info)
{
    struct completion *c = user;
    assert_int_equal(info, 0);
    c->calls++;
    c->status = st;
}

/* Bring the mock reader into `state` through the real paths. */
static void reach(struct smc_handle *h, uint32_t state)
{
    smc_card_removed(mk->r);
    if (state == SCARD_UNKNOWN) {
        smc_reader_lost(mk->r);
    } else if (state == SCARD_PRESENT || state == SCARD_SWALLOWED) {
        smc_card_inserted(mk->r, state);
    } else if (state == SCARD_POWERED) {
        smc_card_inserted(mk->r, SCARD_SWALLOWED);
        smc_reader_set_state(mk->r, SCARD_POWERED);
    } else if (state >= SCARD_NEGOTIABLE) {
        smc_card_inserted(mk->r, SCARD_SWALLOWED);
        assert_int_equal(smc_power(h, SCARD_COLD_RESET, NULL, 0, NULL), STATUS_SUCCESS);
        if (state == SCARD_SPECIFIC) {
            uint32_t sel = 0;
            assert_int_equal(smc_set_protocol(h, SCARD_PROTOCOL_T0, &sel), STATUS_SUCCESS);
            assert_int_equal(sel, SCARD_PROTOCOL_T0);
        }
    }
    uint32_t got;
    assert_int_equal(smc_get_state(h, &got), STATUS_SUCCESS);
    assert_int_equal(got, state);
}

/* ---- the state x IOCTL table (docs/libsmc.md) ---- */

enum { OK, NM, IDS, PEND, SUCC }; /* expected outcome of one cell */

struct row {
    const char *what;
    uint32_t code;
    uint32_t arg; /* DWORD input, or attribute id */
    int in_len;   /* -1: the DWORD only */
    int cell[7];  /* UNKNOWN ABSENT PRESENT SWALLOWED POWERED NEGOTIABLE SPECIFIC */
};

/* Typed from the spec table; 'OK' means passed to the driver slot or answered by the library. */
static const struct row table[] = {
    {"GET_STATE", IOCTL_SMARTCARD_GET_STATE, 0, 0, {OK, OK, OK, OK, OK, OK, OK}},
    {"GET_LAST_ERROR", IOCTL_SMARTCARD_GET_LAST_ERROR, 0, 0, {OK, OK, OK, OK, OK, OK, OK}},
    {"GET_ATTRIBUTE vendor",
     IOCTL_SMARTCARD_GET_ATTRIBUTE,
     SCARD_ATTR_VENDOR_NAME,
     -1,
     {OK, OK, OK, OK, OK, OK, OK}},
    {"GET_ATTRIBUTE ICC_PRESENCE",
     IOCTL_SMARTCARD_GET_ATTRIBUTE,
     SCARD_ATTR_ICC_PRESENCE,
     -1,
     {OK, OK, OK, OK, OK, OK, OK}},
    {"GET_ATTRIBUTE ICC_INTERFACE_STATUS",
     IOCTL_SMARTCARD_GET_ATTRIBUTE,
     SCARD_ATTR_ICC_INTERFACE_STATUS,
     -1,
     {OK, OK, OK, OK, OK, OK, OK}},
    {"GET_ATTRIBUTE ATR_STRING",
     IOCTL_SMARTCARD_GET_ATTRIBUTE,
     SCARD_ATTR_ATR_STRING,
     -1,
     {IDS, IDS, IDS, IDS, IDS, OK, OK}},
    {"GET_ATTRIBUTE CURRENT_PROTOCOL",
     IOCTL_SMARTCARD_GET_ATTRIBUTE,
     SCARD_ATTR_CURRENT_PROTOCOL_TYPE,
     -1,
     {IDS, IDS, IDS, IDS, IDS, OK, OK}},
    {"SET_ATTRIBUTE",
     IOCTL_SMARTCARD_SET_ATTRIBUTE,
     SCARD_ATTR_DEVICE_IN_USE,
     8,
     {OK, OK, OK, OK, OK, OK, OK}},
    {"IS_PRESENT", IOCTL_SMARTCARD_IS_PRESENT, 0, 0, {PEND, PEND, SUCC, SUCC, SUCC, SUCC, SUCC}},
    {"IS_ABSENT", IOCTL_SMARTCARD_IS_ABSENT, 0, 0, {PEND, SUCC, PEND, PEND, PEND, PEND, PEND}},
    {"POWER", IOCTL_SMARTCARD_POWER, SCARD_POWER_DOWN, -1, {IDS, NM, OK, OK, OK, OK, OK}},
    {"SET_PROTOCOL",
     IOCTL_SMARTCARD_SET_PROTOCOL,
     SCARD_PROTOCOL_T0,
     -1,
     {IDS, NM, IDS, IDS, IDS, OK, OK}},
    {"TRANSMIT", IOCTL_SMARTCARD_TRANSMIT, 0, 0, {IDS, NM, IDS, IDS, IDS, IDS, OK}},
    {"SWALLOW", IOCTL_SMARTCARD_SWALLOW, 0, 0, {IDS, NM, OK, OK, OK, OK, OK}},
    {"EJECT", IOCTL_SMARTCARD_EJECT, 0, 0, {IDS, NM, OK, OK, OK, OK, OK}},
    {"CONFISCATE", IOCTL_SMARTCARD_CONFISCATE, 0, 0, {IDS, NM, OK, OK, OK, OK, OK}},
    {"vendor", SMC_CTL_CODE(3000), 0, 0, {OK, OK, OK, OK, OK, OK, OK}},
};

static smc_status run_cell(struct smc_handle *h, const struct row *row, uint32_t s,
                           struct completion *c, uint64_t *id)
{
    uint8_t in[300] = {0}, out[300];
    size_t in_len = row->in_len < 0 ? 4 : (size_t)row->in_len, out_len = sizeof(out);
    for (int i = 0; i < 4; i++)
        in[i] = (uint8_t)(row->arg >> (8 * i));
    if (row->code == IOCTL_SMARTCARD_TRANSMIT) {
        /* header protocol = the selected one (T=0 in SPECIFIC, undefined below) */
        in[0] = s == SCARD_SPECIFIC ? SCARD_PROTOCOL_T0 : 0;
        in[4] = 8;
        memcpy(in + 8, "\x00\xA4\x00\x00", 4);
        in_len = 12;
    }
    if (row->code == IOCTL_SMARTCARD_IS_PRESENT || row->code == IOCTL_SMARTCARD_IS_ABSENT) {
        in_len = out_len = 0;
    }
    return smc_ioctl_async(h, row->code, in_len ? in : NULL, in_len, out_len ? out : NULL, out_len,
                           on_done, c, id);
}

static void test_state_ioctl_table(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        for (uint32_t s = 0; s <= SCARD_SPECIFIC; s++) {
            reach(f->h, s);
            int before = mk->power_calls + mk->protocol_calls + mk->transmit_calls +
                         mk->vendor_calls + mk->eject_calls + mk->swallow_calls +
                         mk->confiscate_calls;
            struct completion c = {0};
            uint64_t id = 0;
            smc_status st = run_cell(f->h, &table[i], s, &c, &id);
            int after = mk->power_calls + mk->protocol_calls + mk->transmit_calls +
                        mk->vendor_calls + mk->eject_calls + mk->swallow_calls +
                        mk->confiscate_calls;
            const char *sn = smc_state_name(s);
            switch (table[i].cell[s]) {
            case OK:
                if (st != STATUS_SUCCESS)
                    fail_msg("%s in %s: %s, want success", table[i].what, sn, smc_status_name(st));
                break;
            case NM:
            case IDS: {
                smc_status want =
                    table[i].cell[s] == NM ? STATUS_NO_MEDIA : STATUS_INVALID_DEVICE_STATE;
                if (st != want)
                    fail_msg("%s in %s: %s, want %s", table[i].what, sn, smc_status_name(st),
                             smc_status_name(want));
                if (after != before)
                    fail_msg("%s in %s: refused request reached the driver", table[i].what, sn);
                break;
            }
            case SUCC:
                if (st != STATUS_SUCCESS || c.calls != 0)
                    fail_msg("%s in %s: %s, want immediate success", table[i].what, sn,
                             smc_status_name(st));
                break;
            case PEND:
                if (st != STATUS_PENDING)
                    fail_msg("%s in %s: %s, want pending", table[i].what, sn, smc_status_name(st));
                assert_true(smc_cancel(f->h, id));
                assert_int_equal(c.calls, 1);
                assert_int_equal(c.status, STATUS_CANCELLED);
                break;
            }
        }
    }
}

/* ---- buffer rules ---- */

static void test_buffer_rules(void **state)
{
    struct fixture *f = *state;
    uint8_t b[64];
    size_t n = 99;
    reach(f->h, SCARD_SPECIFIC);
    /* NULL buffers with a length */
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_GET_STATE, NULL, 4, b, 4, &n),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_GET_STATE, NULL, 0, NULL, 4, &n),
                     STATUS_INVALID_PARAMETER);
    /* output too small */
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_GET_STATE, NULL, 0, b, 3, &n),
                     STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_GET_LAST_ERROR, NULL, 0, b, 2, &n),
                     STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_GET_PERF_CNTR, NULL, 0, b, 8, &n),
                     STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(ioctl_u32(f->h, IOCTL_SMARTCARD_SET_PROTOCOL, 1, b, 2, &n),
                     STATUS_BUFFER_TOO_SMALL);
    /* input too short */
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_POWER, b, 2, NULL, 0, &n),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_GET_ATTRIBUTE, b, 3, b, 64, &n),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_SET_PROTOCOL, b, 0, b, 4, &n),
                     STATUS_INVALID_PARAMETER);
    /* tracking requests take no buffers */
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_IS_PRESENT, b, 4, NULL, 0, &n),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, b, 4, &n),
                     STATUS_INVALID_PARAMETER);
    /* unknown, unused and obsolete codes */
    assert_int_equal(smc_ioctl(f->h, SMC_CTL_CODE(13), NULL, 0, NULL, 0, &n),
                     STATUS_INVALID_DEVICE_REQUEST);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_READ, NULL, 0, NULL, 0, &n),
                     STATUS_INVALID_DEVICE_REQUEST);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_WRITE, NULL, 0, NULL, 0, &n),
                     STATUS_INVALID_DEVICE_REQUEST);
    assert_int_equal(smc_ioctl(f->h, 0x00220000u, NULL, 0, NULL, 0, &n),
                     STATUS_INVALID_DEVICE_REQUEST);
    /* bad power command and protocol masks */
    assert_int_equal(ioctl_u32(f->h, IOCTL_SMARTCARD_POWER, 3, NULL, 0, &n),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(ioctl_u32(f->h, IOCTL_SMARTCARD_SET_PROTOCOL, 0, b, 4, &n),
                     STATUS_INVALID_DEVICE_REQUEST);
    assert_int_equal(ioctl_u32(f->h, IOCTL_SMARTCARD_SET_PROTOCOL, 0x100, b, 4, &n),
                     STATUS_INVALID_DEVICE_REQUEST);
    assert_int_equal(
        ioctl_u32(f->h, IOCTL_SMARTCARD_SET_PROTOCOL, SCARD_PROTOCOL_DEFAULT, b, 4, &n),
        STATUS_INVALID_DEVICE_REQUEST);
    assert_int_equal(mk->power_calls, 1); /* only the reset of reach() got through */
}

static void test_transmit_header_rules(void **state)
{
    struct fixture *f = *state;
    reach(f->h, SCARD_SPECIFIC);
    uint8_t req[16] = {1, 0, 0, 0, 8, 0, 0, 0, 0x00, 0xB0, 0x00, 0x00, 0x02};
    uint8_t out[64];
    size_t n;
    /* header only, no APDU */
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_TRANSMIT, req, 8, out, 64, &n),
                     STATUS_INVALID_PARAMETER);
    /* protocol in the header differs from the selected one */
    req[0] = SCARD_PROTOCOL_T1;
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_TRANSMIT, req, 13, out, 64, &n),
                     STATUS_INVALID_DEVICE_STATE);
    req[0] = SCARD_PROTOCOL_T0;
    /* cbPciLength below 8 or beyond the input */
    req[4] = 4;
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_TRANSMIT, req, 13, out, 64, &n),
                     STATUS_INVALID_PARAMETER);
    req[4] = 40;
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_TRANSMIT, req, 13, out, 64, &n),
                     STATUS_INVALID_PARAMETER);
    req[4] = 8;
    /* output cannot hold header + SW */
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_TRANSMIT, req, 13, out, 9, &n),
                     STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(mk->transmit_calls, 0);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_TRANSMIT, req, 13, out, 64, &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(out, n, "01000000 08000000 9000");
}

/* ---- card tracking: the five statuses of the IOCTL_SMARTCARD_IS_PRESENT / IS_ABSENT pages ---- */

static void test_tracking_pending_then_success(void **state)
{
    struct fixture *f = *state;
    reach(f->h, SCARD_ABSENT);
    struct completion c = {0};
    uint64_t id;
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &c, &id),
        STATUS_PENDING);
    assert_int_equal(mk->tracking_calls, 1);
    assert_int_equal(c.calls, 0);
    smc_card_inserted(mk->r, SCARD_PRESENT);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, STATUS_SUCCESS);
    assert_false(smc_cancel(f->h, id)); /* completed: cancel finds nothing */
    assert_false(smc_complete_card_tracking(mk->r));
    assert_int_equal(c.calls, 1);
}

static void test_tracking_completes_on_any_change(void **state)
{
    struct fixture *f = *state;
    reach(f->h, SCARD_PRESENT);
    struct completion c = {0};
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, on_done, &c, NULL),
        STATUS_PENDING);
    /* the driver reports a change that is not a removal: still completed, caller re-reads */
    assert_true(smc_complete_card_tracking(mk->r));
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, STATUS_SUCCESS);
}

static void test_tracking_immediate_success(void **state)
{
    struct fixture *f = *state;
    reach(f->h, SCARD_NEGOTIABLE);
    size_t n = 7;
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, 0);
    reach(f->h, SCARD_ABSENT);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, &n),
                     STATUS_SUCCESS);
    assert_int_equal(mk->tracking_calls, 0); /* answered without the driver */
}

static void test_tracking_device_busy(void **state)
{
    struct fixture *f = *state;
    reach(f->h, SCARD_ABSENT);
    struct completion c1 = {0}, c2 = {0};
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &c1, NULL),
        STATUS_PENDING);
    /* the one slot is shared by IS_PRESENT and IS_ABSENT, across handles */
    struct smc_handle *h2;
    assert_int_equal(smc_open(f->ctx, "mock:0", &h2), STATUS_SUCCESS);
    assert_int_equal(
        smc_ioctl_async(h2, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &c2, NULL),
        STATUS_DEVICE_BUSY);
    reach(f->h, SCARD_PRESENT); /* completes c1 */
    assert_int_equal(
        smc_ioctl_async(h2, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, on_done, &c2, NULL),
        STATUS_PENDING);
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, on_done, &c1, NULL),
        STATUS_DEVICE_BUSY);
    smc_close(h2); /* cleanup cancels h2's request */
    assert_int_equal(c2.calls, 1);
    assert_int_equal(c2.status, STATUS_CANCELLED);
    assert_int_equal(c1.calls, 1);
}

static void test_tracking_invalid_device_state(void **state)
{
    struct fixture *f = *state;
    reach(f->h, SCARD_ABSENT);
    mk->tracking_answer = STATUS_INVALID_DEVICE_STATE;
    struct completion c = {0};
    uint64_t id = 77;
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &c, &id),
        STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(id, 0);
    assert_int_equal(c.calls, 0);
    /* the slot was released: a new request can pend */
    mk->tracking_answer = STATUS_PENDING;
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &c, &id),
        STATUS_PENDING);
    assert_true(smc_cancel(f->h, id));
    assert_int_equal(c.status, STATUS_CANCELLED);
}

static void test_tracking_cancelled(void **state)
{
    struct fixture *f = *state;
    reach(f->h, SCARD_SPECIFIC);
    struct completion c = {0};
    uint64_t id;
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, on_done, &c, &id),
        STATUS_PENDING);
    assert_true(smc_cancel(f->h, id));
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, STATUS_CANCELLED);
    assert_false(smc_cancel(f->h, id));
    smc_card_removed(mk->r); /* the event path finds no request: nothing completes twice */
    assert_int_equal(c.calls, 1);
}

static void test_pending_request_blocks_nothing(void **state)
{
    struct fixture *f = *state;
    reach(f->h, SCARD_SPECIFIC);
    struct completion c = {0};
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_ABSENT, NULL, 0, NULL, 0, on_done, &c, NULL),
        STATUS_PENDING);
    uint8_t req[] = {1, 0, 0, 0, 8, 0, 0, 0, 0x00, 0xB0, 0x00, 0x00, 0x02}, out[32];
    size_t n;
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_TRANSMIT, req, sizeof(req), out, 32, &n),
                     STATUS_SUCCESS);
    assert_int_equal(ioctl_u32(f->h, IOCTL_SMARTCARD_POWER, SCARD_WARM_RESET, out, 32, &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(out, n, "3B 02 14 50");
    assert_int_equal(c.calls, 0);
    smc_card_removed(mk->r);
    assert_int_equal(c.calls, 1);
}

/* ---- slots, handles, devices ---- */

static void test_null_slots_and_exclusive(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(smc_add_device(f->ctx, "bare:1"), STATUS_SUCCESS);
    struct smc_handle *h, *h2;
    assert_int_equal(smc_open(f->ctx, "bare:1", &h), STATUS_SUCCESS);
    assert_int_equal(smc_open(f->ctx, "bare:1", &h2), STATUS_ACCESS_DENIED);
    smc_card_inserted(mk->r, SCARD_PRESENT);
    size_t n;
    assert_int_equal(smc_ioctl(h, IOCTL_SMARTCARD_EJECT, NULL, 0, NULL, 0, &n),
                     STATUS_NOT_SUPPORTED);
    assert_int_equal(smc_ioctl(h, IOCTL_SMARTCARD_SWALLOW, NULL, 0, NULL, 0, &n),
                     STATUS_NOT_SUPPORTED);
    assert_int_equal(smc_ioctl(h, IOCTL_SMARTCARD_CONFISCATE, NULL, 0, NULL, 0, &n),
                     STATUS_NOT_SUPPORTED);
    assert_int_equal(smc_ioctl(h, SMC_CTL_CODE(2500), NULL, 0, NULL, 0, &n), STATUS_NOT_SUPPORTED);
    uint8_t id[4] = {0x42, 0, 0, 0}, out[8];
    assert_int_equal(smc_ioctl(h, IOCTL_SMARTCARD_GET_ATTRIBUTE, id, 4, out, 8, &n),
                     STATUS_NOT_SUPPORTED);
    smc_close(h);
    assert_int_equal(smc_open(f->ctx, "bare:1", &h2), STATUS_SUCCESS);
    smc_close(h2);
    /* registration rules */
    assert_int_equal(smc_register_driver(f->ctx, &bare_ops), STATUS_INVALID_PARAMETER);
    struct smc_driver_ops broken = bare_ops;
    broken.name = "broken";
    broken.transmit = NULL;
    assert_int_equal(smc_register_driver(f->ctx, &broken), STATUS_INVALID_PARAMETER);
}

static void test_device_strings(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(smc_add_device(f->ctx, "nosuch:0"), STATUS_NO_SUCH_DEVICE);
    assert_int_equal(smc_add_device(f->ctx, "mock"), STATUS_INVALID_PARAMETER);
    assert_int_equal(smc_add_device(f->ctx, "mock:"), STATUS_INVALID_PARAMETER);
    assert_int_equal(smc_add_device(f->ctx, ":0"), STATUS_INVALID_PARAMETER);
    assert_int_equal(smc_add_device(f->ctx, "mock:0:x=1"), STATUS_DEVICE_BUSY);
    struct smc_handle *h;
    assert_int_equal(smc_open(f->ctx, "mock:9", &h), STATUS_NO_SUCH_DEVICE);
    assert_string_equal(smc_handle_device(f->h), "mock:0");
}

static void test_device_removal(void **state)
{
    struct fixture *f = *state;
    reach(f->h, SCARD_ABSENT);
    struct completion c = {0};
    assert_int_equal(
        smc_ioctl_async(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &c, NULL),
        STATUS_PENDING);
    assert_int_equal(smc_remove_device(f->ctx, "mock:0"), STATUS_SUCCESS);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, STATUS_CANCELLED);
    uint32_t st;
    assert_int_equal(smc_get_state(f->h, &st), STATUS_DEVICE_NOT_CONNECTED);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, NULL),
                     STATUS_DEVICE_NOT_CONNECTED);
    assert_int_equal(smc_remove_device(f->ctx, "mock:0"), STATUS_NO_SUCH_DEVICE);
}

static void test_vendor_pending_makes_library_busy(void **state)
{
    struct fixture *f = *state;
    mk->vendor_pends = true;
    struct completion c = {0};
    uint64_t id;
    assert_int_equal(smc_ioctl_async(f->h, SMC_CTL_CODE(2100), NULL, 0, NULL, 0, on_done, &c, &id),
                     STATUS_PENDING);
    uint32_t s;
    assert_int_equal(smc_get_state(f->h, &s), STATUS_DEVICE_BUSY);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, NULL),
                     STATUS_DEVICE_BUSY);
    smc_complete_pending(mk->r, STATUS_SUCCESS, 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, STATUS_SUCCESS);
    assert_int_equal(smc_get_state(f->h, &s), STATUS_SUCCESS);
}

/* A cancelled pending slot does not end the busy state: only the driver's completion does, and
 * a completion for the cancelled request is not kept for the next one. */
static void test_cancelled_pending_slot_stays_busy(void **state)
{
    struct fixture *f = *state;
    mk->vendor_pends = true;
    struct completion c = {0}, c2 = {0};
    uint64_t id;
    assert_int_equal(smc_ioctl_async(f->h, SMC_CTL_CODE(2100), NULL, 0, NULL, 0, on_done, &c, &id),
                     STATUS_PENDING);
    assert_true(smc_cancel(f->h, id));
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, STATUS_CANCELLED);
    uint32_t s;
    assert_int_equal(smc_get_state(f->h, &s), STATUS_DEVICE_BUSY); /* the driver still works */
    smc_complete_pending(mk->r, STATUS_SUCCESS, 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(smc_get_state(f->h, &s), STATUS_SUCCESS);
    assert_int_equal(smc_ioctl_async(f->h, SMC_CTL_CODE(2100), NULL, 0, NULL, 0, on_done, &c2, &id),
                     STATUS_PENDING);
    assert_int_equal(c2.calls, 0); /* not completed by the stale completion */
    assert_int_equal(smc_get_state(f->h, &s), STATUS_DEVICE_BUSY);
    smc_complete_pending(mk->r, STATUS_IO_TIMEOUT, 0);
    assert_int_equal(c2.calls, 1);
    assert_int_equal(c2.status, STATUS_IO_TIMEOUT);
    smc_complete_pending(mk->r, STATUS_SUCCESS, 0); /* nothing pends: ignored */
    assert_int_equal(smc_get_state(f->h, &s), STATUS_SUCCESS);
}

/* A driver that completes its pending slot before the slot returns: the caller gets the final
 * status at once and no callback. */
static void test_pending_slot_completed_early(void **state)
{
    struct fixture *f = *state;
    mk->vendor_completes_inside = true;
    struct completion c = {0};
    uint64_t id = 9;
    assert_int_equal(smc_ioctl_async(f->h, SMC_CTL_CODE(2100), NULL, 0, NULL, 0, on_done, &c, &id),
                     STATUS_SUCCESS);
    assert_int_equal(c.calls, 0);
    uint32_t s;
    assert_int_equal(smc_get_state(f->h, &s), STATUS_SUCCESS);
    mk->vendor_completes_inside = false;
    assert_int_equal(smc_ioctl(f->h, SMC_CTL_CODE(2100), NULL, 0, NULL, 0, NULL), STATUS_SUCCESS);
}

/* ---- races with device removal and addition (run under TSan too) ---- */

struct race_dev {
    atomic_int closed;      /* the driver's close ran */
    atomic_int after_close; /* a slot ran after close: a use-after-free in a real driver */
};
static struct race_dev race_devs[64];
static atomic_int race_next;

static smc_status r_open(struct smc_reader *r, const char *address, const char *options)
{
    (void)address;
    (void)options;
    int i = atomic_fetch_add(&race_next, 1) % 64;
    atomic_store(&race_devs[i].closed, 0);
    smc_reader_set_priv(r, &race_devs[i]);
    memcpy(smc_reader_vendor(r)->vendor_name, "Race", 5);
    memcpy(smc_reader_vendor(r)->ifd_type, "R", 2);
    smc_reader_set_state(r, SCARD_ABSENT);
    return STATUS_SUCCESS;
}

static void r_close(struct smc_reader *r)
{
    struct race_dev *d = smc_reader_priv(r);
    atomic_store(&d->closed, 1);
}

static smc_status r_check(struct smc_reader *r)
{
    struct race_dev *d = smc_reader_priv(r);
    if (atomic_load(&d->closed))
        atomic_fetch_add(&d->after_close, 1);
    return STATUS_SUCCESS;
}

static smc_status r_track(struct smc_reader *r, uint32_t code)
{
    (void)code;
    (void)r_check(r);
    return STATUS_PENDING;
}

static smc_status r_vendor(struct smc_reader *r, struct smc_io *io)
{
    (void)io;
    (void)r_check(r);
    return STATUS_NOT_SUPPORTED;
}

static smc_status r_slot(struct smc_reader *r, struct smc_io *io)
{
    (void)io;
    return r_check(r);
}

static const struct smc_driver_ops race_ops = {
    .name = "race",
    .open = r_open,
    .close = r_close,
    .power = r_slot,
    .transmit = r_slot,
    .set_protocol = r_slot,
    .card_tracking = r_track,
    .ioctl_vendor = r_vendor,
};

struct racer {
    struct smc_handle *h;
    struct completion c;
};

static void *race_requests(void *arg)
{
    struct racer *rc = arg;
    uint8_t id[4] = {0x42, 0, 0, 0}, out[8];
    /* Racing the removal, any status is right; the test checks that nothing crashes or leaks. */
    SCRM_IGNORE(
        smc_ioctl_async(rc->h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, on_done, &rc->c, NULL),
        "any status is right in this race");
    SCRM_IGNORE(smc_ioctl(rc->h, IOCTL_SMARTCARD_GET_ATTRIBUTE, id, 4, out, sizeof(out), NULL),
                "any status is right in this race");
    return NULL;
}

static void *race_remove(void *arg)
{
    assert_int_equal(smc_remove_device(arg, "race:0"), STATUS_SUCCESS);
    return NULL;
}

/* Requests racing with the device's removal: no slot runs after the driver's close, and the
 * pending request completes exactly once (CANCELLED). */
static void test_requests_race_device_removal(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(smc_register_driver(f->ctx, &race_ops), STATUS_SUCCESS);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(smc_add_device(f->ctx, "race:0"), STATUS_SUCCESS);
        struct racer rc = {.c = {0}};
        assert_int_equal(smc_open(f->ctx, "race:0", &rc.h), STATUS_SUCCESS);
        pthread_t a, b;
        assert_int_equal(pthread_create(&a, NULL, race_requests, &rc), 0);
        assert_int_equal(pthread_create(&b, NULL, race_remove, f->ctx), 0);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        smc_close(rc.h);
        assert_true(rc.c.calls <= 1);
    }
    for (int i = 0; i < 64; i++)
        assert_int_equal(atomic_load(&race_devs[i].after_close), 0);
}

static void *race_add(void *arg)
{
    return (void *)(uintptr_t)smc_add_device(arg, "race:9");
}

static void count_race9(void *user, const char *device)
{
    if (strcmp(device, "race:9") == 0)
        (*(int *)user)++;
}

/* Two threads adding one device name: one wins, the other gets DEVICE_BUSY. */
static void test_concurrent_add_same_name(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(smc_register_driver(f->ctx, &race_ops), STATUS_SUCCESS);
    for (int i = 0; i < 200; i++) {
        pthread_t a, b;
        void *ra, *rb;
        assert_int_equal(pthread_create(&a, NULL, race_add, f->ctx), 0);
        assert_int_equal(pthread_create(&b, NULL, race_add, f->ctx), 0);
        pthread_join(a, &ra);
        pthread_join(b, &rb);
        smc_status sa = (smc_status)(uintptr_t)ra, sb = (smc_status)(uintptr_t)rb;
        assert_true((sa == STATUS_SUCCESS) != (sb == STATUS_SUCCESS));
        assert_true(sa == STATUS_DEVICE_BUSY || sb == STATUS_DEVICE_BUSY);
        int n = 0;
        smc_list_devices(f->ctx, count_race9, &n);
        assert_int_equal(n, 1);
        assert_int_equal(smc_remove_device(f->ctx, "race:9"), STATUS_SUCCESS);
    }
}

struct pnp_log {
    int arrived, left;
};

static void on_pnp(void *user, enum smc_pnp_event ev, const char *device)
{
    struct pnp_log *l = user;
    assert_string_equal(device, "mock:5");
    if (ev == SMC_DEVICE_ARRIVED)
        l->arrived++;
    else
        l->left++;
}

static void test_pnp_and_list(void **state)
{
    struct fixture *f = *state;
    struct pnp_log l = {0};
    smc_set_pnp_listener(f->ctx, on_pnp, &l);
    assert_int_equal(smc_add_device(f->ctx, "mock:5"), STATUS_SUCCESS);
    assert_int_equal(smc_remove_device(f->ctx, "mock:5"), STATUS_SUCCESS);
    assert_int_equal(l.arrived, 1);
    assert_int_equal(l.left, 1);
    smc_set_pnp_listener(f->ctx, NULL, NULL);
}

/* ---- answered by the library ---- */

static void test_last_error_and_perf(void **state)
{
    struct fixture *f = *state;
    uint8_t out[32];
    size_t n;
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_GET_LAST_ERROR, NULL, 0, out, 4, &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, 4);
    assert_bytes_hex(out, 4, "00000000");
    reach(f->h, SCARD_ABSENT);
    assert_int_equal(ioctl_u32(f->h, IOCTL_SMARTCARD_POWER, SCARD_COLD_RESET, out, 32, &n),
                     STATUS_NO_MEDIA);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_GET_LAST_ERROR, NULL, 0, out, 4, &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(out, 4, "780100C0"); /* STATUS_NO_MEDIA little-endian */

    reach(f->h, SCARD_SPECIFIC);
    uint8_t req[] = {1, 0, 0, 0, 8, 0, 0, 0, 0x00, 0xB0, 0x00, 0x00, 0x02};
    for (int i = 0; i < 3; i++)
        assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_TRANSMIT, req, sizeof(req), out, 32, &n),
                         STATUS_SUCCESS);
    req[0] = 2;
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_TRANSMIT, req, sizeof(req), out, 32, &n),
                     STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(smc_ioctl(f->h, IOCTL_SMARTCARD_GET_PERF_CNTR, NULL, 0, out, 32, &n),
                     STATUS_SUCCESS);
    assert_int_equal(n, SMC_PERF_SIZE);
    /* 3 successful transmissions of 5 APDU bytes, 2 response bytes each; the refused one is not
     * counted (it never reached the engine) */
    assert_bytes_hex(out, 16, "03000000 0F000000 06000000 00000000");
}

struct hammer {
    struct smc_handle *h;
    int kind;
};

static void *hammer_thread(void *arg)
{
    struct hammer *hm = arg;
    uint8_t req[] = {1, 0, 0, 0, 8, 0, 0, 0, 0x00, 0xB0, 0x00, 0x00, 0x02}, out[64];
    uint8_t attr[4] = {0x42, 0, 0, 0};
    size_t n;
    for (int i = 0; i < 3000; i++) {
        smc_status st;
        switch (hm->kind) {
        case 0:
            st = smc_ioctl(hm->h, IOCTL_SMARTCARD_TRANSMIT, req, sizeof(req), out, 64, &n);
            break;
        case 1: st = smc_ioctl(hm->h, SMC_CTL_CODE(2222), NULL, 0, NULL, 0, &n); break;
        case 2:
            st = smc_ioctl(hm->h, IOCTL_SMARTCARD_GET_ATTRIBUTE, attr, 4, out, 64, &n);
            st = st == STATUS_NOT_SUPPORTED ? STATUS_SUCCESS : st;
            break;
        default: st = smc_set_protocol(hm->h, SCARD_PROTOCOL_T0, NULL); break;
        }
        if (st != STATUS_SUCCESS)
            return (void *)1;
    }
    return NULL;
}

/* Slots of one reader never run concurrently, whatever the callers do (run under TSan too). */
static void test_slots_never_overlap(void **state)
{
    struct fixture *f = *state;
    reach(f->h, SCARD_SPECIFIC);
    atomic_store(&overlaps, 0);
    pthread_t t[4];
    struct hammer hm[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(smc_open(f->ctx, "mock:0", &hm[i].h), STATUS_SUCCESS);
        hm[i].kind = i;
        assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &hm[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        assert_null(rv);
        smc_close(hm[i].h);
    }
    assert_int_equal(atomic_load(&overlaps), 0);
    assert_int_equal(mk->transmit_calls, 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_ioctl_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transmit_header_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tracking_pending_then_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tracking_completes_on_any_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tracking_immediate_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tracking_device_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tracking_invalid_device_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tracking_cancelled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_request_blocks_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_slots_and_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vendor_pending_makes_library_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pnp_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_pending_slot_stays_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_slot_completed_early, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_race_device_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_add_same_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_error_and_perf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slots_never_overlap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
