/*
 * The IFD-handler bridge (src/drivers/ifd) against a fake handler library (fake_ifd.c, loaded
 * with dlopen as any pcsc-lite driver): slots as readers with pcscd's names and Luns, the IOCTL x
 * state rules of libsmc through the bridge, control codes passed unchanged, garbage lengths
 * refused, a hanging call cancelled by the watchdog with the reader leaving, a device gone, and
 * the thread-safety tags honoured.
 */
#include "testutil.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "drivers/registry.h"
#include "smc/smc.h"

enum { FAKE_OK, FAKE_GARBAGE_LEN, FAKE_LONG_ATR, FAKE_HANG, FAKE_GONE, FAKE_ERROR };

static struct {
    void *dl;
    void (*config)(int, int, int);
    void (*card)(int, bool);
    void (*fault)(int);
    void (*stats)(int *, int *, int *, int *, int *, uint32_t *, unsigned long *);
    void (*reset_inflight)(void);
} fake;

struct fixture {
    struct smc_ctx *ctx;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int left; /* SMC_DEVICE_LEFT seen */
    char dev[512];
};

static void on_pnp(void *user, enum smc_pnp_event ev, const char *device)
{
    (void)device;
    struct fixture *f = user;
    pthread_mutex_lock(&f->lock);
    if (ev == SMC_DEVICE_LEFT)
        f->left++;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* Wait (bounded) until `n` devices have left. */
static bool wait_left(struct fixture *f, int n)
{
    struct timespec until = scrm_deadline_ms(10000);
    pthread_mutex_lock(&f->lock);
    while (f->left < n && pthread_cond_timedwait(&f->cond, &f->lock, &until) == 0) {
    }
    bool ok = f->left >= n;
    pthread_mutex_unlock(&f->lock);
    return ok;
}

static const char *lib_path(void)
{
    const char *p = getenv("SCRM_TEST_FAKE_IFD");
    return p ? p : "";
}

static struct fixture *new_fixture(const char *extra)
{
    struct fixture *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    scrm_cond_init_monotonic(&f->cond);
    f->ctx = smc_ctx_new();
    assert_int_equal(scrm_drivers_register(f->ctx), STATUS_SUCCESS);
    smc_set_pnp_listener(f->ctx, on_pnp, f);
    snprintf(f->dev, sizeof(f->dev), "ifd:fake:lib=%s,name=Fake%%20Reader,poll=20%s", lib_path(),
             extra);
    return f;
}

static void free_fixture(struct fixture *f)
{
    smc_ctx_free(f->ctx);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static int setup(void **state)
{
    if (!fake.dl) {
        fake.dl = dlopen(lib_path(), RTLD_NOW);
        assert_non_null(fake.dl);
        *(void **)&fake.config = dlsym(fake.dl, "fake_config");
        *(void **)&fake.card = dlsym(fake.dl, "fake_card");
        *(void **)&fake.fault = dlsym(fake.dl, "fake_fault");
        *(void **)&fake.stats = dlsym(fake.dl, "fake_stats");
        *(void **)&fake.reset_inflight = dlsym(fake.dl, "fake_reset_inflight");
    }
    fake.config(2, 1, 1);
    fake.fault(FAKE_OK);
    fake.card(0, false);
    fake.card(1, false);
    *state = NULL;
    return 0;
}

static int teardown(void **state)
{
    if (*state)
        free_fixture(*state);
    return 0;
}

static void string_attr(struct smc_handle *h, uint32_t id, char *out, size_t cap)
{
    uint8_t in[4] = {(uint8_t)id, (uint8_t)(id >> 8), (uint8_t)(id >> 16), (uint8_t)(id >> 24)};
    size_t n = 0;
    assert_int_equal(smc_ioctl(h, IOCTL_SMARTCARD_GET_ATTRIBUTE, in, 4, out, cap - 1, &n),
                     STATUS_SUCCESS);
    out[n] = '\0';
}

/* Wait (bounded, through card tracking) until the reader's state is at least / below ABSENT. */
static void wait_card(struct smc_handle *h, bool present)
{
    uint32_t st = 0;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(smc_get_state(h, &st), STATUS_SUCCESS);
        if ((st > SCARD_ABSENT) == present)
            return;
        size_t n = 0;
        (void)smc_ioctl(h, present ? IOCTL_SMARTCARD_IS_PRESENT : IOCTL_SMARTCARD_IS_ABSENT, NULL,
                        0, NULL, 0, &n);
    }
    fail_msg("the card did not %s", present ? "arrive" : "leave");
}

static smc_status transmit(struct smc_handle *h, uint32_t proto, size_t *n)
{
    uint8_t in[12] = {0}, out[300];
    in[0] = (uint8_t)proto;
    in[4] = 8;
    memcpy(in + 8, "\x00\xA4\x00\x0C", 4);
    return smc_ioctl(h, IOCTL_SMARTCARD_TRANSMIT, in, sizeof(in), out, sizeof(out), n);
}

static void test_slots_names_and_luns(void **state)
{
    struct fixture *f = new_fixture("");
    *state = f;
    assert_int_equal(smc_add_device(f->ctx, f->dev), STATUS_SUCCESS);
    struct smc_handle *h0, *h1, *h2;
    assert_int_equal(smc_open(f->ctx, "ifd:fake", &h0), STATUS_SUCCESS);
    assert_int_equal(smc_open(f->ctx, "ifd:fake/1", &h1), STATUS_SUCCESS); /* slot 1: its own */
    char name[160];
    string_attr(h0, SCARD_ATTR_DEVICE_FRIENDLY_NAME_A, name, sizeof(name));
    assert_string_equal(name, "Fake Reader 00 00");
    string_attr(h1, SCARD_ATTR_DEVICE_FRIENDLY_NAME_A, name, sizeof(name));
    assert_string_equal(name, "Fake Reader 00 01");
    string_attr(h0, SCARD_ATTR_VENDOR_NAME, name, sizeof(name)); /* from the handler at open */
    assert_string_equal(name, "FakeVendor");
    /* a second reader of the same library: reader number 01, Lun 0x10000 */
    char dev2[600];
    snprintf(dev2, sizeof(dev2), "ifd:other:lib=%s,name=Other", lib_path());
    assert_int_equal(smc_add_device(f->ctx, dev2), STATUS_SUCCESS);
    assert_int_equal(smc_open(f->ctx, "ifd:other", &h2), STATUS_SUCCESS);
    string_attr(h2, SCARD_ATTR_DEVICE_FRIENDLY_NAME_A, name, sizeof(name));
    assert_string_equal(name, "Other 01 00");
    int c, cl, t, p, m;
    uint32_t code;
    unsigned long lun;
    fake.stats(&c, &cl, &t, &p, &m, &code, &lun);
    assert_int_equal(lun, 0x10001); /* the last channel created: slot 1 of reader 01 */
    smc_close(h0);
    smc_close(h1);
    smc_close(h2);
    /* removing slot 0 removes the reader's other slots too */
    assert_int_equal(smc_remove_device(f->ctx, "ifd:fake"), STATUS_SUCCESS);
    assert_true(wait_left(f, 2));
    assert_int_equal(smc_open(f->ctx, "ifd:fake/1", &h1), STATUS_NO_SUCH_DEVICE);
}

/* The libsmc rules hold through the bridge: requests the state forbids never reach the handler. */
static void test_state_rules(void **state)
{
    struct fixture *f = new_fixture("");
    *state = f;
    assert_int_equal(smc_add_device(f->ctx, f->dev), STATUS_SUCCESS);
    struct smc_handle *h;
    assert_int_equal(smc_open(f->ctx, "ifd:fake", &h), STATUS_SUCCESS);
    int c, cl, t0, p0, m, t1, p1;
    uint32_t code;
    unsigned long lun;
    size_t n;
    uint8_t atr[40];
    uint32_t sel = 0, st = 0;
    /* ABSENT: power, protocol and transmit refused with NO_MEDIA, nothing reaches the handler */
    fake.stats(&c, &cl, &t0, &p0, &m, &code, &lun);
    assert_int_equal(smc_power(h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_NO_MEDIA);
    assert_int_equal(smc_set_protocol(h, SCARD_PROTOCOL_T1, &sel), STATUS_NO_MEDIA);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_NO_MEDIA);
    fake.stats(&c, &cl, &t1, &p1, &m, &code, &lun);
    assert_int_equal(t1, t0);
    assert_int_equal(p1, p0);
    /* SWALLOWED after the handler reports the card; protocol / transmit: wrong state */
    fake.card(0, true);
    wait_card(h, true);
    assert_int_equal(smc_get_state(h, &st), STATUS_SUCCESS);
    assert_int_equal(st, SCARD_SWALLOWED);
    assert_int_equal(smc_set_protocol(h, SCARD_PROTOCOL_T1, &sel), STATUS_INVALID_DEVICE_STATE);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_INVALID_DEVICE_STATE);
    /* cold reset: the handler's ATR, NEGOTIABLE; transmit before SET_PROTOCOL refused */
    assert_int_equal(smc_power(h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_int_equal(n, 5);
    assert_bytes_hex(atr, n, "3B 80 80 01 01");
    assert_int_equal(smc_get_state(h, &st), STATUS_SUCCESS);
    assert_int_equal(st, SCARD_NEGOTIABLE);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_INVALID_DEVICE_STATE);
    /* SET_PROTOCOL T=1 (the card offers it), SPECIFIC, transmit */
    assert_int_equal(smc_set_protocol(h, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &sel),
                     STATUS_SUCCESS);
    assert_int_equal(sel, SCARD_PROTOCOL_T1);
    assert_int_equal(smc_get_state(h, &st), STATUS_SUCCESS);
    assert_int_equal(st, SCARD_SPECIFIC);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_SUCCESS);
    assert_int_equal(n, 10);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T0, &n), STATUS_INVALID_DEVICE_STATE);
    /* the card leaves: ABSENT, transmit NO_MEDIA */
    fake.card(0, false);
    wait_card(h, false);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_NO_MEDIA);
    /* a presence error: UNKNOWN (reader lost), the next good answer is an insertion */
    fake.fault(FAKE_ERROR);
    for (int i = 0; i < 50 && st != SCARD_UNKNOWN; i++) {
        (void)smc_ioctl(h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, &n);
        assert_int_equal(smc_get_state(h, &st), STATUS_SUCCESS);
    }
    assert_int_equal(st, SCARD_UNKNOWN);
    assert_int_equal(smc_power(h, SCARD_COLD_RESET, atr, sizeof(atr), &n),
                     STATUS_INVALID_DEVICE_STATE);
    fake.fault(FAKE_OK);
    fake.card(0, true);
    wait_card(h, true);
    smc_close(h);
}

static void test_control_codes_and_garbage(void **state)
{
    struct fixture *f = new_fixture("");
    *state = f;
    fake.card(0, true);
    assert_int_equal(smc_add_device(f->ctx, f->dev), STATUS_SUCCESS);
    struct smc_handle *h;
    assert_int_equal(smc_open(f->ctx, "ifd:fake", &h), STATUS_SUCCESS);
    uint8_t out[64];
    size_t n = 0;
    int c, cl, t, p, m;
    uint32_t code;
    unsigned long lun;
    /* GET_FEATURE_REQUEST reaches IFDHControl as pcsc-lite's 0x42000D48 */
    assert_int_equal(
        smc_ioctl(h, IOCTL_SMARTCARD_GET_FEATURE_REQUEST, NULL, 0, out, sizeof(out), &n),
        STATUS_SUCCESS);
    fake.stats(&c, &cl, &t, &p, &m, &code, &lun);
    assert_int_equal(code, 0x42000D48);
    assert_bytes_hex(out, n, "42 00 0D 48");
    /* a reader feature code 0x42330012 and a vendor IOCTL SCARD_CTL_CODE(2049) */
    assert_int_equal(smc_ioctl(h, 0x42330012u, NULL, 0, out, sizeof(out), &n), STATUS_SUCCESS);
    fake.stats(&c, &cl, &t, &p, &m, &code, &lun);
    assert_int_equal(code, 0x42330012u);
    assert_int_equal(smc_ioctl(h, SMC_CTL_CODE(2049), NULL, 0, out, sizeof(out), &n),
                     STATUS_SUCCESS);
    fake.stats(&c, &cl, &t, &p, &m, &code, &lun);
    assert_int_equal(code, 0x42000000u + 2049);
    /* garbage lengths are refused, and the reader goes on working */
    uint8_t atr[40];
    uint32_t sel;
    assert_int_equal(smc_power(h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_int_equal(smc_set_protocol(h, SCARD_PROTOCOL_T1, &sel), STATUS_SUCCESS);
    fake.fault(FAKE_GARBAGE_LEN);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_IO_DEVICE_ERROR);
    assert_int_equal(smc_ioctl(h, 0x42330012u, NULL, 0, out, sizeof(out), &n),
                     STATUS_IO_DEVICE_ERROR);
    fake.fault(FAKE_LONG_ATR);
    assert_int_equal(smc_power(h, SCARD_WARM_RESET, atr, sizeof(atr), &n), STATUS_IO_DEVICE_ERROR);
    fake.fault(FAKE_OK);
    assert_int_equal(smc_power(h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_int_equal(smc_set_protocol(h, SCARD_PROTOCOL_T1, &sel), STATUS_SUCCESS);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_SUCCESS);
    smc_close(h);
}

static void test_hung_call_watchdog(void **state)
{
    struct fixture *f = new_fixture(",watchdog=300");
    *state = f;
    fake.card(0, true);
    assert_int_equal(smc_add_device(f->ctx, f->dev), STATUS_SUCCESS);
    struct smc_handle *h;
    assert_int_equal(smc_open(f->ctx, "ifd:fake", &h), STATUS_SUCCESS);
    uint8_t atr[40];
    size_t n;
    uint32_t sel;
    assert_int_equal(smc_power(h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_int_equal(smc_set_protocol(h, SCARD_PROTOCOL_T1, &sel), STATUS_SUCCESS);
    fake.fault(FAKE_HANG);
    /* the call never returns: the caller gets an error after the watchdog, the reader leaves */
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_DEVICE_NOT_CONNECTED);
    assert_true(wait_left(f, 2)); /* both slots */
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_DEVICE_NOT_CONNECTED);
    smc_close(h);
    fake.fault(FAKE_OK);
}

static void test_device_gone(void **state)
{
    struct fixture *f = new_fixture("");
    *state = f;
    assert_int_equal(smc_add_device(f->ctx, f->dev), STATUS_SUCCESS);
    struct smc_handle *h;
    assert_int_equal(smc_open(f->ctx, "ifd:fake", &h), STATUS_SUCCESS);
    int c0, cl0, t, p, m;
    uint32_t code;
    unsigned long lun;
    fake.stats(&c0, &cl0, &t, &p, &m, &code, &lun);
    fake.fault(FAKE_GONE); /* the next presence poll reports IFD_NO_SUCH_DEVICE */
    assert_true(wait_left(f, 2));
    size_t n;
    uint32_t st;
    assert_int_equal(smc_get_state(h, &st), STATUS_DEVICE_NOT_CONNECTED);
    (void)n;
    smc_close(h);
    int c1, cl1;
    fake.stats(&c1, &cl1, &t, &p, &m, &code, &lun);
    assert_int_equal(cl1 - cl0, 2); /* both channels closed */
    fake.fault(FAKE_OK);
}

struct hammer {
    struct smc_handle *h;
    int errors;
};

static void *hammer_main(void *arg)
{
    struct hammer *hm = arg;
    for (int i = 0; i < 300; i++) {
        size_t n;
        if (transmit(hm->h, SCARD_PROTOCOL_T1, &n) != STATUS_SUCCESS)
            hm->errors++;
    }
    return NULL;
}

/* THREAD_SAFE 0 and SLOT_THREAD_SAFE 0: the handler never sees two calls at once. */
static void test_not_thread_safe_serialised(void **state)
{
    fake.config(2, 0, 0);
    struct fixture *f = new_fixture("");
    *state = f;
    fake.card(0, true);
    fake.card(1, true);
    assert_int_equal(smc_add_device(f->ctx, f->dev), STATUS_SUCCESS);
    struct hammer hm[2] = {{0}};
    const char *devs[2] = {"ifd:fake", "ifd:fake/1"};
    for (int i = 0; i < 2; i++) {
        uint8_t atr[40];
        size_t n;
        uint32_t sel;
        assert_int_equal(smc_open(f->ctx, devs[i], &hm[i].h), STATUS_SUCCESS);
        assert_int_equal(smc_power(hm[i].h, SCARD_COLD_RESET, atr, sizeof(atr), &n),
                         STATUS_SUCCESS);
        assert_int_equal(smc_set_protocol(hm[i].h, SCARD_PROTOCOL_T1, &sel), STATUS_SUCCESS);
    }
    fake.reset_inflight();
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, hammer_main, &hm[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    int c, cl, t, p, m;
    uint32_t code;
    unsigned long lun;
    fake.stats(&c, &cl, &t, &p, &m, &code, &lun);
    assert_int_equal(m, 1);
    assert_int_equal(hm[0].errors + hm[1].errors, 0);
    smc_close(hm[0].h);
    smc_close(hm[1].h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slots_names_and_luns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_codes_and_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hung_call_watchdog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_thread_safe_serialised, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
