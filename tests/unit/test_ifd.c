/*
 * The IFD-handler bridge (src/drivers/ifd) against a fake handler library (fake_ifd.c, loaded
 * with dlopen as any pcsc-lite driver): slots as readers with pcscd's names and Luns, the IOCTL x
 * state rules of libsmc through the bridge, control codes passed unchanged, garbage lengths
 * refused, a hanging call (blocked in a system call, or looping in the handler's code)
 * interrupted by the watchdog with the reader leaving, a crashing handler contained (its readers
 * leave, the daemon's other readers go on), a device gone (TAG_IFD_DEVICE_REMOVED set before the
 * channel is closed), a KILLABLE polling function stopped by cancellation, an API v2 handler, and
 * the thread-safety tags honoured.
 */
#include "testutil.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "drivers/ifd/ifd_guard.h"
#include "drivers/registry.h"
#include "smc/smc.h"

enum {
    FAKE_OK,
    FAKE_GARBAGE_LEN,
    FAKE_LONG_ATR,
    FAKE_HANG,
    FAKE_GONE,
    FAKE_ERROR,
    FAKE_SPIN,
    FAKE_CRASH,
    FAKE_IO_SPIN
};

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

static struct {
    void *dl;
    void (*config)(int, int, int);
    void (*card)(int, bool);
    void (*fault)(int);
    void (*stats)(int *, int *, int *, int *, int *, uint32_t *, unsigned long *);
    void (*reset_inflight)(void);
    void (*mode)(int, int);
    void (*poll_stats)(int *, int *, unsigned long *, int *, int *);
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
    assert_int_equal(scrm_cond_init_monotonic(&f->cond), 0);
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
        *(void **)&fake.mode = dlsym(fake.dl, "fake_mode");
        *(void **)&fake.poll_stats = dlsym(fake.dl, "fake_poll_stats");
    }
    fake.config(2, 1, 1);
    fake.mode(0, 0);
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
        SCRM_IGNORE(smc_ioctl(h, present ? IOCTL_SMARTCARD_IS_PRESENT : IOCTL_SMARTCARD_IS_ABSENT,
                              NULL, 0, NULL, 0, &n),
                    "a wait for the change; GET_STATE above is the check");
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
        SCRM_IGNORE(smc_ioctl(h, IOCTL_SMARTCARD_IS_PRESENT, NULL, 0, NULL, 0, &n),
                    "a wait for the change; GET_STATE is the check");
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

/* Cold reset and T=1 on a fake reader's card, both of which must succeed. */
static void power_t1(struct smc_handle *h)
{
    uint8_t atr[40];
    size_t n;
    uint32_t sel;
    assert_int_equal(smc_power(h, SCARD_COLD_RESET, atr, sizeof(atr), &n), STATUS_SUCCESS);
    assert_int_equal(smc_set_protocol(h, SCARD_PROTOCOL_T1, &sel), STATUS_SUCCESS);
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
    power_t1(h);
    fake.fault(FAKE_GARBAGE_LEN);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_IO_DEVICE_ERROR);
    assert_int_equal(smc_ioctl(h, 0x42330012u, NULL, 0, out, sizeof(out), &n),
                     STATUS_IO_DEVICE_ERROR);
    fake.fault(FAKE_LONG_ATR);
    assert_int_equal(smc_power(h, SCARD_WARM_RESET, atr, sizeof(atr), &n), STATUS_IO_DEVICE_ERROR);
    fake.fault(FAKE_OK);
    power_t1(h);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_SUCCESS);
    smc_close(h);
}

/* A call that never returns (`how`): the caller gets an error after the watchdog, the reader
 * leaves with both slots, a log line names the driver and the call. */
/* A call that does not return (how): the watchdog takes it out after 300 ms; `never`, when not
 * NULL, must not appear in the log meanwhile. */
static void hung_call(void **state, int how, const char *never)
{
    struct fixture *f = new_fixture(",watchdog=300");
    *state = f;
    fake.card(0, true);
    assert_int_equal(smc_add_device(f->ctx, f->dev), STATUS_SUCCESS);
    struct smc_handle *h;
    assert_int_equal(smc_open(f->ctx, "ifd:fake", &h), STATUS_SUCCESS);
    size_t n;
    power_t1(h);
    struct test_log_capture cap;
    test_log_capture_start(&cap);
    fake.fault(how);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_DEVICE_NOT_CONNECTED);
    assert_true(wait_left(f, 2)); /* both slots */
    test_log_capture_stop();
    assert_non_null(strstr(cap.text, "IFDHTransmitToICC on reader 'Fake Reader 00 00' has not "
                                     "returned after 300 ms"));
    assert_non_null(strstr(cap.text, lib_path()));
    if (never)
        assert_null(strstr(cap.text, never));
    fake.fault(FAKE_OK);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_DEVICE_NOT_CONNECTED);
    smc_close(h);
}

static void test_hung_call_watchdog(void **state)
{
    hung_call(state, FAKE_HANG, NULL); /* blocked in read() */
}

/* Not under ThreadSanitizer: it delivers a signal only when the thread enters its runtime, never
 * to a loop in plain code; and its runtime does not hand a fault to the bridge (the debug build,
 * under ASan and UBSan, runs these two tests). */
#ifndef UNDER_TSAN
static void test_spinning_call_watchdog(void **state)
{
    hung_call(state, FAKE_SPIN, NULL); /* looping in the handler's own code */
}

#if defined(__x86_64__)
/* The address just after the first system call instruction of the C library's function `name`,
 * or NULL. */
static const uint8_t *after_syscall_in(const char *name)
{
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    assert_non_null(libc);
    const uint8_t *f = dlsym(libc, name);
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    const uint8_t *at = NULL;
    if (f && dladdr1(f, &info, (void **)&sym, RTLD_DL_SYMENT) && sym)
        for (size_t i = 0; i + 1 < sym->st_size && !at; i++)
            if (f[i] == 0x0F && f[i + 1] == 0x05)
                at = f + i + 2;
    dlclose(libc);
    return at;
}

/* The watchdog's rule for a thread just back from a system call: inside the C library's I/O
 * wrappers it may leave (they hold no lock), after any other system call it may not. */
static void test_io_wrapper_rule(void **state)
{
    (void)state;
    assert_true(ifd_guard_init());
    const uint8_t *rd = after_syscall_in("read"), *gp = after_syscall_in("getpid");
    assert_true(rd != NULL && gp != NULL);
    assert_true(ifd_guard_after_io_syscall(rd));
    assert_false(ifd_guard_after_io_syscall(rd - 1)); /* not after the instruction */
    assert_false(ifd_guard_after_io_syscall(gp));     /* not an I/O wrapper */
}
#endif

/* A handler looping on read() of a line that hung up (libccid's serial loop when
 * the reader's other end vanishes) is nearly always in the C library or the kernel, never where
 * the first rule (its own code) catches it: the watchdog takes it out just back from the system
 * call of the I/O wrapper, at the first tries, so it never has to say it cannot. */
static void test_io_spinning_call_watchdog(void **state)
{
    hung_call(state, FAKE_IO_SPIN, "cannot be interrupted");
}

/* A handler that crashes the call costs its own readers only: the caller gets an error, every
 * reader of that library leaves (PnP), the log names the driver and the call, the library is
 * never called or loaded again, and a reader of another library goes on working. */
static void test_crash_contained(void **state)
{
    const char *crash_lib = getenv("SCRM_TEST_FAKE_IFD_CRASH");
    assert_non_null(crash_lib);
    void *dl = dlopen(crash_lib, RTLD_NOW);
    assert_non_null(dl);
    void (*crash_card)(int, bool), (*crash_fault)(int);
    *(void **)&crash_card = dlsym(dl, "fake_card");
    *(void **)&crash_fault = dlsym(dl, "fake_fault");
    crash_card(0, true);
    crash_fault(FAKE_OK);
    fake.card(0, true);
    struct fixture *f = new_fixture("");
    *state = f;
    assert_int_equal(smc_add_device(f->ctx, f->dev), STATUS_SUCCESS);
    char dev[600];
    snprintf(dev, sizeof(dev), "ifd:crash:lib=%s,name=Crash,poll=20", crash_lib);
    assert_int_equal(smc_add_device(f->ctx, dev), STATUS_SUCCESS);
    snprintf(dev, sizeof(dev), "ifd:crash2:lib=%s,name=Crash,poll=20", crash_lib);
    assert_int_equal(smc_add_device(f->ctx, dev), STATUS_SUCCESS);
    struct smc_handle *ha, *hb;
    assert_int_equal(smc_open(f->ctx, "ifd:crash", &ha), STATUS_SUCCESS);
    assert_int_equal(smc_open(f->ctx, "ifd:fake", &hb), STATUS_SUCCESS);
    size_t n;
    power_t1(ha);
    power_t1(hb);
    assert_int_equal(transmit(ha, SCARD_PROTOCOL_T1, &n), STATUS_SUCCESS);
    struct test_log_capture cap;
    test_log_capture_start(&cap);
    crash_fault(FAKE_CRASH);
    assert_int_equal(transmit(ha, SCARD_PROTOCOL_T1, &n), STATUS_DEVICE_NOT_CONNECTED);
    assert_true(wait_left(f, 4)); /* both slots of both readers of the crashed library */
    test_log_capture_stop();
    assert_non_null(strstr(cap.text, "crashed in IFDHTransmitToICC on reader 'Crash 00 00'"));
    assert_non_null(strstr(cap.text, "SIGSEGV"));
    assert_non_null(strstr(cap.text, crash_lib));
    assert_int_equal(transmit(ha, SCARD_PROTOCOL_T1, &n), STATUS_DEVICE_NOT_CONNECTED);
    /* the other library's reader lives on */
    for (int i = 0; i < 10; i++)
        assert_int_equal(transmit(hb, SCARD_PROTOCOL_T1, &n), STATUS_SUCCESS);
    smc_close(ha);
    smc_close(hb);
    /* the crashed library is not loaded again */
    snprintf(dev, sizeof(dev), "ifd:crash3:lib=%s,name=Crash", crash_lib);
    assert_int_not_equal(smc_add_device(f->ctx, dev), STATUS_SUCCESS);
    crash_fault(FAKE_OK);
}
#endif

static void test_device_gone(void **state)
{
    fake.mode(0, 1); /* the handler supports TAG_IFD_DEVICE_REMOVED */
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
    /* as pcscd on an unplug: TAG_IFD_DEVICE_REMOVED set on each slot before its channel closes */
    int ps, pc, removed, closes_after;
    unsigned long timeout;
    fake.poll_stats(&ps, &pc, &timeout, &removed, &closes_after);
    assert_int_equal(removed, 2);
    assert_int_equal(closes_after, 2);
    fake.fault(FAKE_OK);
}

/* An ordinary removal (not an unplug) does not set TAG_IFD_DEVICE_REMOVED. */
static void test_removal_without_device_removed(void **state)
{
    fake.mode(0, 1);
    struct fixture *f = new_fixture("");
    *state = f;
    int ps, pc, removed0, removed1, ca;
    unsigned long timeout;
    fake.poll_stats(&ps, &pc, &timeout, &removed0, &ca);
    assert_int_equal(smc_add_device(f->ctx, f->dev), STATUS_SUCCESS);
    assert_int_equal(smc_remove_device(f->ctx, "ifd:fake"), STATUS_SUCCESS);
    assert_true(wait_left(f, 2));
    fake.poll_stats(&ps, &pc, &timeout, &removed1, &ca);
    assert_int_equal(removed1, removed0);
}

/* A KILLABLE polling function: card events come from it (no presence polling period: poll=10000
 * would take seconds), it is given no short timeout, and closing cancels it. */
static void test_killable_polling_thread(void **state)
{
    fake.mode(1, 0);
    struct fixture *f = calloc(1, sizeof(*f));
    *state = NULL;
    free(f);
    f = new_fixture("");
    *state = f;
    snprintf(f->dev, sizeof(f->dev), "ifd:fake:lib=%s,name=Fake%%20Reader,poll=10000", lib_path());
    assert_int_equal(smc_add_device(f->ctx, f->dev), STATUS_SUCCESS);
    struct smc_handle *h;
    assert_int_equal(smc_open(f->ctx, "ifd:fake", &h), STATUS_SUCCESS);
    uint64_t t0 = scrm_now_ns();
    fake.card(0, true); /* wakes the polling function */
    wait_card(h, true);
    fake.card(0, false);
    wait_card(h, false);
    assert_true(scrm_now_ns() - t0 < 5000000000u); /* not the 10 s poll period */
    int started, cancelled, removed, ca;
    unsigned long timeout;
    fake.poll_stats(&started, &cancelled, &timeout, &removed, &ca);
    assert_true(started >= 2);
    assert_true(timeout > 1000); /* killable: no short timeout needed to stop it */
    smc_close(h);
    assert_int_equal(smc_remove_device(f->ctx, "ifd:fake"), STATUS_SUCCESS);
    assert_true(wait_left(f, 2));
    int cancelled1;
    fake.poll_stats(&started, &cancelled1, &timeout, &removed, &ca);
    assert_int_equal(cancelled1 - cancelled, 2); /* both slots' polling functions cancelled */
    fake.mode(0, 0);
}

/* An API v2 handler (no IFDHCreateChannelByName): IFDHCreateChannel with the CHANNELID, the
 * v2 IFDHControl, APDUs as for v3. */
static void test_v2_handler(void **state)
{
    const char *v2 = getenv("SCRM_TEST_FAKE_IFD_V2");
    assert_non_null(v2);
    void *dl = dlopen(v2, RTLD_NOW);
    assert_non_null(dl);
    void (*card)(int, bool),
        (*stats)(int *, int *, int *, int *, int *, uint32_t *, unsigned long *);
    *(void **)&card = dlsym(dl, "fake_card");
    *(void **)&stats = dlsym(dl, "fake_stats");
    card(0, true);
    struct fixture *f = new_fixture("");
    *state = f;
    char dev[600];
    snprintf(dev, sizeof(dev), "ifd:old:lib=%s,device=/dev/ttyS9,channel=0x3F8,name=Old", v2);
    struct test_log_capture cap;
    test_log_capture_start(&cap);
    scrm_log_set_level(SCRM_LOG_CAT_drv, SCRM_LOG_info);
    smc_status st = smc_add_device(f->ctx, dev);
    test_log_capture_stop();
    assert_int_equal(st, STATUS_SUCCESS);
    assert_non_null(strstr(cap.text, "(IFD handler API v2)"));
    struct smc_handle *h;
    assert_int_equal(smc_open(f->ctx, "ifd:old", &h), STATUS_SUCCESS);
    int c, cl, t0, t1, p, m;
    uint32_t code;
    unsigned long lun;
    stats(&c, &cl, &t0, &p, &m, &code, &lun);
    assert_int_equal(c, 2); /* IFDHCreateChannel for both slots */
    uint8_t out[16];
    size_t n;
    power_t1(h);
    assert_int_equal(transmit(h, SCARD_PROTOCOL_T1, &n), STATUS_SUCCESS);
    stats(&c, &cl, &t1, &p, &m, &code, &lun);
    assert_int_equal(t1 - t0, 1);
    /* the v2 IFDHControl (no code): the fake echoes the command */
    static const uint8_t cmd[] = {1, 2, 3};
    assert_int_equal(smc_ioctl(h, SMC_CTL_CODE(2049), cmd, sizeof(cmd), out, sizeof(out), &n),
                     STATUS_SUCCESS);
    assert_bytes_hex(out, n, "01 02 03");
    stats(&c, &cl, &t1, &p, &m, &code, &lun);
    assert_int_equal(code, 2); /* the v2 entry point ran */
    smc_close(h);
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
#ifndef UNDER_TSAN
        cmocka_unit_test_setup_teardown(test_spinning_call_watchdog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_spinning_call_watchdog, setup, teardown),
#if defined(__x86_64__)
        cmocka_unit_test(test_io_wrapper_rule),
#endif
#endif
        cmocka_unit_test_setup_teardown(test_device_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removal_without_device_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killable_polling_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_thread_safe_serialised, setup, teardown),
#ifndef UNDER_TSAN
        cmocka_unit_test_setup_teardown(test_crash_contained, setup, teardown),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
