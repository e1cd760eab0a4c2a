/*
 * Reader sources without hardware (src/sources): Info.plist bundles read with expat from the real
 * installed libccid bundle (a YubiKey, an ACR122U and a Gemalto PC Twin match, an unknown id does
 * not) and from broken ones; the ifd: device strings of reader.conf.d entries and USB interfaces;
 * the configured set applied and re-applied (what left goes, what is new starts, failures are
 * retried); and the sources thread fed by a scripted USB source: enumeration at start, hot-plug
 * add and remove, interfaces that are not CCID, the class driver as fallback, and the reload
 * descriptor. Readers go to a recording sink; every wait is a condition variable with a deadline.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/scard_codes.h"
#include "drivers/ifd/ifd_devstr.h"
#include "sources/bundle.h"
#include "sources/devstr.h"
#include "sources/readerconf.h"
#include "sources/sources.h"
#include "sources/usb.h"

#define CCID_PLIST "/usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Info.plist"
#define CCID_LIB   "/usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Linux/libccid.so"

/* ---- bundles ------------------------------------------------------------------------------- */

static void test_real_ccid_bundle(void **state)
{
    (void)state;
    struct stat st;
    if (stat(CCID_PLIST, &st) != 0)
        skip(); /* libccid is in install-deps' check profile; without it nothing to read */
    struct bundles b = {0};
    assert_int_equal(bundles_load_dir(&b, "/usr/lib/pcsc/drivers"), 1);
    assert_string_equal(b.v[0].lib, CCID_LIB);
    assert_true(b.v[0].class_driver); /* libccid's CFBundleName is CCIDCLASSDRIVER */
    assert_true(b.v[0].n_ids > 500);

    const struct bundle *p, *f;
    const char *name;
    assert_true(bundles_match(&b, 0x1050, 0x0407, &p, &f, &name));
    assert_ptr_equal(p, &b.v[0]);
    assert_null(f);
    assert_string_equal(name, "Yubico YubiKey OTP+FIDO+CCID");
    assert_true(bundles_match(&b, 0x072F, 0x2200, &p, &f, &name));
    assert_string_equal(name, "ACS ACR122U PICC Interface");
    assert_true(bundles_match(&b, 0x08E6, 0x3437, &p, &f, &name));
    assert_string_equal(name, "Gemalto PC Twin Reader");
    assert_false(bundles_match(&b, 0x1234, 0x5678, &p, &f, &name));
    assert_false(bundles_match(&b, 0x1050, 0x0001, &p, &f, &name));
    bundles_free(&b);
}

static char tmp[64];

static void put(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void mkdirs(const char *rel)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    for (char *p = path + strlen(tmp) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    }
    mkdir(path, 0700);
}

static void rm_tree(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
}

/* An Info.plist with one executable, a bundle name and the three arrays. */
static void plist(const char *rel, const char *exec, const char *bname, const char *vids,
                  const char *pids, const char *names)
{
    char text[4096];
    snprintf(text, sizeof text,
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n"
             "  <key>CFBundleExecutable</key> <string>%s</string>\n"
             "  <key>CFBundleName</key> <string>%s</string>\n"
             "  <key>ifdCapabilities</key> <string>0x00000000</string>\n"
             "  <key>ifdDriverOptions</key> <dict><key>x</key><array><string>y</string></array>"
             "</dict>\n"
             "  <key>ifdVendorID</key> <array>%s</array>\n"
             "  <key>ifdProductID</key> <array>%s</array>\n"
             "  <key>ifdFriendlyName</key> <array>%s</array>\n"
             "  <key>Copyright</key> <string>none</string>\n"
             "</dict>\n</plist>\n",
             exec, bname, vids, pids, names);
    put(rel, text);
}

static void test_bundle_errors_and_preference(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/scrm-test-bundle-XXXXXX");
    assert_non_null(mkdtemp(tmp));
    mkdirs("a.bundle/Contents/Linux");
    mkdirs("b.bundle/Contents/Linux");
    mkdirs("bad1.bundle/Contents");
    mkdirs("bad2.bundle/Contents");
    mkdirs("bad3.bundle/Contents");
    mkdirs("bad4.bundle/Contents");
    /* a: a class driver listing 1111:2222 and 1111:3333; b: a specific driver for 1111:2222 */
    plist("a.bundle/Contents/Info.plist", "libclass.so", "CCIDCLASSDRIVER",
          "<string>0x1111</string><string>0x1111</string>",
          "<string>0x2222</string><string>0x3333</string>",
          "<string>Class A</string><string>Class B</string>");
    plist("b.bundle/Contents/Info.plist", "libspecific.so", "Specific", "<string>0x1111</string>",
          "<string>0x2222</string>", "<string> Specific &amp; Co </string>");
    /* broken ones, each refused with a reason; the good ones still count */
    plist("bad1.bundle/Contents/Info.plist", "libx.so", "X", "<string>0x1</string>",
          "<string>0x1</string><string>0x2</string>", "<string>n</string>");
    plist("bad2.bundle/Contents/Info.plist", "libx.so", "X", "<string>0x1FFFF</string>",
          "<string>0x1</string>", "<string>n</string>");
    put("bad3.bundle/Contents/Info.plist", "<plist><dict><key>CFBundleExecutable</key>");
    plist("bad4.bundle/Contents/Info.plist", "../evil.so", "X", "", "", "");

    struct bundles b = {0};
    assert_int_equal(bundles_load_dir(&b, tmp), 2);
    const struct bundle *p, *f;
    const char *name;
    assert_true(bundles_match(&b, 0x1111, 0x2222, &p, &f, &name));
    assert_false(p->class_driver);
    assert_non_null(strstr(p->lib, "b.bundle/Contents/Linux/libspecific.so"));
    assert_string_equal(name, "Specific & Co");
    assert_non_null(f);
    assert_true(f->class_driver);
    assert_true(bundles_match(&b, 0x1111, 0x3333, &p, &f, &name));
    assert_true(p->class_driver);
    assert_null(f);
    assert_string_equal(name, "Class B");
    bundles_free(&b);

    char err[256], path[256], lib[256];
    snprintf(path, sizeof path, "%s/bad1.bundle/Contents/Info.plist", tmp);
    snprintf(lib, sizeof lib, "%s/bad1.bundle/Contents/Linux", tmp);
    assert_int_equal(bundles_load_plist(&b, path, lib, err, sizeof err), -1);
    assert_non_null(strstr(err, "different lengths"));
    snprintf(path, sizeof path, "%s/bad2.bundle/Contents/Info.plist", tmp);
    assert_int_equal(bundles_load_plist(&b, path, lib, err, sizeof err), -1);
    assert_non_null(strstr(err, "16-bit hex"));
    snprintf(path, sizeof path, "%s/bad3.bundle/Contents/Info.plist", tmp);
    assert_int_equal(bundles_load_plist(&b, path, lib, err, sizeof err), -1);
    snprintf(path, sizeof path, "%s/bad4.bundle/Contents/Info.plist", tmp);
    assert_int_equal(bundles_load_plist(&b, path, lib, err, sizeof err), -1);
    assert_non_null(strstr(err, "CFBundleExecutable"));
    assert_int_equal(b.n, 0);
    rm_tree();
}

/* ---- device strings ------------------------------------------------------------------------ */

static void test_devstr(void **state)
{
    (void)state;
    struct readerconf_entry e = {.friendly_name = "Virtual PCD",
                                 .device_name = "/dev/null:0x8C7B",
                                 .lib_path = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so",
                                 .has_channel = true,
                                 .channel_id = 0x8C7B};
    char a[SOURCES_DEVSTR_MAX], b2[SOURCES_DEVSTR_MAX];
    assert_true(sources_devstr_conf(&e, a, sizeof a) > 0);
    assert_memory_equal(a, "ifd:Virtual_PCD-", 16);
    /* the options part is what the bridge parses back */
    const char *opts = strchr(a + 4, ':') + 1;
    struct ifd_devspec spec;
    char err[128];
    assert_true(ifd_devstr_parse(opts, &spec, err, sizeof err));
    assert_string_equal(spec.lib, e.lib_path);
    assert_string_equal(spec.device, "/dev/null:0x8C7B");
    assert_string_equal(spec.name, "Virtual PCD");
    assert_true(spec.has_channel);
    assert_int_equal(spec.channel, 0x8C7B);
    /* stable for the same entry, different for another channel */
    assert_true(sources_devstr_conf(&e, b2, sizeof b2) > 0);
    assert_string_equal(a, b2);
    e.channel_id = 0x8C7C;
    assert_true(sources_devstr_conf(&e, b2, sizeof b2) > 0);
    assert_string_not_equal(a, b2);
    /* a name without ID characters still gives a valid ID */
    e.friendly_name = "%%%";
    assert_true(sources_devstr_conf(&e, b2, sizeof b2) > 0);
    assert_memory_equal(b2, "ifd:conf-", 9);
    assert_int_equal(sources_devstr_conf(&e, b2, 20), 0); /* too small */

    assert_true(sources_devstr_usb("1-5:1.0", CCID_LIB,
                                   "usb:1050/0407:libudev:0:/dev/bus/usb/001/005",
                                   "Yubico YubiKey OTP+FIDO+CCID", a, sizeof a) > 0);
    assert_memory_equal(a, "ifd:usb-1-5-1.0:", 16);
    assert_true(ifd_devstr_parse(strchr(a + 4, ':') + 1, &spec, err, sizeof err));
    assert_string_equal(spec.device, "usb:1050/0407:libudev:0:/dev/bus/usb/001/005");
    assert_string_equal(spec.name, "Yubico YubiKey OTP+FIDO+CCID");
    /* a long sysfs name is hashed into a valid ID */
    assert_true(sources_devstr_usb("1-2.3.4.5.6.7.8.9.10.11.12.13.14:1.0", CCID_LIB, "usb:x", "n",
                                   a, sizeof a) > 0);
    *strchr(a + 4, ':') = '\0';
    assert_true(ifd_id_valid(a + 4));
}

/* ---- the recording sink -------------------------------------------------------------------- */

struct rec {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char log[16384]; /* "+dev\n" / "-dev\n" */
    unsigned events;
    const char *fail_if; /* adds containing this fail */
    unsigned reloads;
};

static struct rec rec;

static void rec_reset(void)
{
    pthread_mutex_lock(&rec.lock);
    rec.log[0] = '\0';
    rec.events = 0;
    rec.fail_if = NULL;
    rec.reloads = 0;
    pthread_mutex_unlock(&rec.lock);
}

static uint32_t rec_note(char op, const char *device)
{
    pthread_mutex_lock(&rec.lock);
    size_t n = strlen(rec.log);
    snprintf(rec.log + n, sizeof rec.log - n, "%c%s\n", op, device);
    rec.events++;
    bool fail = op == '+' && rec.fail_if && strstr(device, rec.fail_if);
    pthread_cond_broadcast(&rec.cond);
    pthread_mutex_unlock(&rec.lock);
    return fail ? SCARD_E_READER_UNAVAILABLE : SCARD_S_SUCCESS;
}

static uint32_t rec_add(void *user, const char *device)
{
    (void)user;
    return rec_note('+', device);
}

static uint32_t rec_remove(void *user, const char *device)
{
    (void)user;
    return rec_note('-', device);
}

static const struct sources_sink sink = {.add = rec_add, .remove = rec_remove};

/* Wait (5 s at most) until the sink saw n events, or the reload callback ran r times. */
static bool rec_wait(unsigned n, unsigned r)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&rec.lock);
    int rc = 0;
    while ((rec.events < n || rec.reloads < r) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&rec.cond, &rec.lock, &dl);
    bool ok = rec.events >= n && rec.reloads >= r;
    pthread_mutex_unlock(&rec.lock);
    return ok;
}

static void list_of(struct strlist *l, const char *const *v)
{
    strlist_free(l);
    for (; *v; v++)
        assert_int_equal(strlist_add(l, *v), 0);
}

static void test_apply(void **state)
{
    (void)state;
    rec_reset();
    struct sources *s = sources_new_sink(&sink);
    assert_non_null(s);
    struct strlist want = {0};
    list_of(&want, (const char *const[]){"sim:0", "sim:1", "sim:2:card=t1", NULL});
    rec.fail_if = "sim:2";
    assert_int_equal(sources_apply(s, &want), 2);
    assert_string_equal(rec.log, "+sim:0\n+sim:1\n+sim:2:card=t1\n");
    /* sim:1 leaves, sim:3 arrives, sim:0 untouched, the failed sim:2 is tried again; a changed
     * option is a different device: sim:0 -> sim:0:card=t0 is a removal then an addition */
    rec_reset();
    list_of(&want, (const char *const[]){"sim:0:card=t0", "sim:2:card=t1", "sim:3", NULL});
    assert_int_equal(sources_apply(s, &want), 3);
    assert_string_equal(rec.log, "-sim:1\n-sim:0\n+sim:0:card=t0\n+sim:2:card=t1\n+sim:3\n");
    rec_reset();
    assert_int_equal(sources_apply(s, &want), 3);
    assert_string_equal(rec.log, ""); /* nothing changed: nothing happens */
    strlist_free(&want);
    sources_free(s);

    /* the configured set: reader lines, then reader.conf.d entries as ifd: strings */
    snprintf(tmp, sizeof tmp, "/tmp/scrm-test-srcconf-XXXXXX");
    assert_non_null(mkdtemp(tmp));
    put("vpcd", "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:0x8C7B\n"
                "LIBPATH /bin/sh\nCHANNELID 0x8C7B\n"
                "FRIENDLYNAME broken\nLIBPATH /no/such/lib.so\nCHANNELID 1\n");
    char *readers[] = {"sim:0", "sim:1", "sim:0"};
    struct strlist got = {0};
    assert_int_equal(sources_configured(readers, 3, tmp, &got), 0);
    assert_int_equal(got.n, 3);
    assert_string_equal(got.v[0], "sim:0");
    assert_string_equal(got.v[1], "sim:1");
    assert_memory_equal(got.v[2], "ifd:Virtual_PCD-", 16);
    assert_non_null(strstr(got.v[2], ":lib=/bin/sh,device=/dev/null:0x8C7B"));
    strlist_free(&got);
    assert_int_equal(sources_configured(readers, 1, "", &got), 0);
    assert_int_equal(got.n, 1);
    strlist_free(&got);
    rm_tree();
}

/* ---- a scripted USB source ---------------------------------------------------------------------
 */

struct fake_event {
    enum usb_action action;
    struct usb_iface iface;
};

struct fake_usb {
    struct usb_source base;
    int pipe[2];
    pthread_mutex_t lock;
    struct fake_event q[16];
    unsigned head, tail;
    struct usb_iface present[4];
    unsigned n_present;
};

static int fake_enumerate(struct usb_source *src, usb_iface_fn fn, void *user)
{
    struct fake_usb *f = (struct fake_usb *)src;
    for (unsigned i = 0; i < f->n_present; i++)
        fn(user, &f->present[i]);
    return 0;
}

static int fake_fd(struct usb_source *src)
{
    return ((struct fake_usb *)src)->pipe[0];
}

static int fake_receive(struct usb_source *src, enum usb_action *action, struct usb_iface *iface)
{
    struct fake_usb *f = (struct fake_usb *)src;
    char c;
    pthread_mutex_lock(&f->lock);
    int rc = 0;
    if (f->head != f->tail && read(f->pipe[0], &c, 1) == 1) {
        *action = f->q[f->head % 16].action;
        *iface = f->q[f->head % 16].iface;
        f->head++;
        rc = 1;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static void fake_free(struct usb_source *src)
{
    struct fake_usb *f = (struct fake_usb *)src;
    close(f->pipe[0]);
    close(f->pipe[1]);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static const struct usb_source_ops fake_ops = {fake_enumerate, fake_fd, fake_receive, fake_free};

static struct fake_usb *fake_new(void)
{
    struct fake_usb *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->base.ops = &fake_ops;
    assert_int_equal(pipe(f->pipe), 0);
    pthread_mutex_init(&f->lock, NULL);
    return f;
}

static struct usb_iface iface(const char *sysname, uint16_t vid, uint16_t pid, int ifclass,
                              const char *serial, const char *ifstring)
{
    struct usb_iface i = {.vid = vid, .pid = pid, .ifnum = 0, .ifclass = ifclass};
    snprintf(i.sysname, sizeof i.sysname, "%s", sysname);
    snprintf(i.devnode, sizeof i.devnode, "/dev/bus/usb/001/%03d", (int)strlen(sysname));
    snprintf(i.serial, sizeof i.serial, "%s", serial);
    snprintf(i.ifstring, sizeof i.ifstring, "%s", ifstring);
    return i;
}

static void fake_push(struct fake_usb *f, enum usb_action a, struct usb_iface i)
{
    pthread_mutex_lock(&f->lock);
    f->q[f->tail % 16].action = a;
    f->q[f->tail % 16].iface = i;
    f->tail++;
    pthread_mutex_unlock(&f->lock);
    assert_int_equal(write(f->pipe[1], "x", 1), 1);
}

static void on_reload(void *user, struct sources *s)
{
    (void)user;
    (void)s;
    pthread_mutex_lock(&rec.lock);
    rec.reloads++;
    pthread_cond_broadcast(&rec.cond);
    pthread_mutex_unlock(&rec.lock);
}

static void test_usb_hotplug(void **state)
{
    (void)state;
    rec_reset();
    /* one specific bundle (fails to add, so the class driver is the fallback) and a class one */
    snprintf(tmp, sizeof tmp, "/tmp/scrm-test-usb-XXXXXX");
    assert_non_null(mkdtemp(tmp));
    mkdirs("ccid.bundle/Contents/Linux");
    mkdirs("vendor.bundle/Contents/Linux");
    plist(
        "ccid.bundle/Contents/Info.plist", "libccid.so", "CCIDCLASSDRIVER",
        "<string>0x1050</string><string>0x072F</string>",
        "<string>0x0407</string><string>0x2200</string>",
        "<string>Yubico YubiKey OTP+FIDO+CCID</string><string>ACS ACR122U PICC Interface</string>");
    plist("vendor.bundle/Contents/Info.plist", "libvendor.so", "Vendor", "<string>0x072F</string>",
          "<string>0x2200</string>", "<string>ACR122U by vendor</string>");

    struct fake_usb *f = fake_new();
    f->present[f->n_present++] = iface("1-5:1.0", 0x1050, 0x0407, 0x0B, "12345", "");
    f->present[f->n_present++] = iface("1-5:1.1", 0x1050, 0x0407, 0x03, "12345", ""); /* HID */
    f->present[f->n_present++] = iface("1-6:1.0", 0x1234, 0x5678, 0x0B, "", "");      /* unknown */
    struct sources *s = sources_new_sink(&sink);
    assert_int_equal(sources_set_usb(s, &f->base, tmp), 2);
    int rp[2];
    assert_int_equal(pipe(rp), 0);
    assert_int_equal(sources_start(s, rp[0], on_reload, NULL), 0);

    /* enumeration at start: only the YubiKey's CCID interface */
    assert_true(rec_wait(1, 0));
    pthread_mutex_lock(&rec.lock);
    assert_non_null(strstr(rec.log, "+ifd:usb-1-5-1.0:lib="));
    assert_non_null(strstr(rec.log, "/ccid.bundle/Contents/Linux/libccid.so,device=usb:1050/"
                                    "0407:libudev:0:/dev/bus/usb/001/007,name=Yubico%20YubiKey%20"
                                    "OTP+FIDO+CCID%20(12345)\n"));
    assert_int_equal(rec.events, 1);
    rec.fail_if = "libvendor.so";
    pthread_mutex_unlock(&rec.lock);

    /* hot-plug: an ACR122U arrives; its vendor driver fails, the class driver takes it; the
     * interface string is in brackets and already holds the serial */
    fake_push(f, USB_ADD, iface("2-1:1.0", 0x072F, 0x2200, 0xFF, "S9", "PICC S9"));
    assert_true(rec_wait(3, 0));
    pthread_mutex_lock(&rec.lock);
    assert_non_null(strstr(rec.log, "+ifd:usb-2-1-1.0:lib=" /* first the vendor's */));
    assert_non_null(strstr(rec.log,
                           "libvendor.so,device=usb:072f/2200:libudev:0:"
                           "/dev/bus/usb/001/007,name=ACR122U%20by%20vendor%20[PICC%20S9]\n"
                           "+ifd:usb-2-1-1.0:lib="));
    assert_non_null(strstr(rec.log, "/ccid.bundle/Contents/Linux/libccid.so,device=usb:072f/2200"));
    pthread_mutex_unlock(&rec.lock);

    /* a remove of something never added is ignored; the YubiKey's removal removes its reader */
    fake_push(f, USB_REMOVE, iface("1-6:1.0", 0, 0, -1, "", ""));
    fake_push(f, USB_REMOVE, iface("1-5:1.0", 0, 0, -1, "", ""));
    assert_true(rec_wait(4, 0));
    pthread_mutex_lock(&rec.lock);
    assert_non_null(strstr(rec.log, "\n-ifd:usb-1-5-1.0:lib="));
    pthread_mutex_unlock(&rec.lock);
    struct strlist live = {0};
    assert_int_equal(sources_usb_devices(s, &live), 0);
    assert_int_equal(live.n, 1);
    assert_non_null(strstr(live.v[0], "ifd:usb-2-1-1.0:"));
    strlist_free(&live);

    /* the reload descriptor calls the reload function on the sources thread */
    assert_int_equal(write(rp[1], "h", 1), 1);
    assert_true(rec_wait(4, 1));

    sources_free(s);
    close(rp[0]);
    close(rp[1]);
    rm_tree();
}

/* The libudev source on this machine: whatever it enumerates is well-formed, and nothing is
 * pending on a fresh monitor (the receive does not block). Machines without USB enumerate none. */
static void check_iface(void *user, const struct usb_iface *i)
{
    unsigned *n = user;
    (*n)++;
    assert_true(i->sysname[0] != '\0');
    assert_memory_equal(i->devnode, "/dev/", 5);
}

static void test_udev_source(void **state)
{
    (void)state;
    struct usb_source *u = usb_udev_new();
    if (!u)
        skip();
    unsigned n = 0;
    assert_int_equal(u->ops->enumerate(u, check_iface, &n), 0);
    print_message("libudev enumerated %u USB interface(s)\n", n);
    enum usb_action a;
    struct usb_iface i;
    if (u->ops->fd(u) >= 0)
        assert_int_equal(u->ops->receive(u, &a, &i), 0);
    u->ops->free(u);
}

int main(void)
{
    pthread_mutex_init(&rec.lock, NULL);
    pthread_cond_init(&rec.cond, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_ccid_bundle),
        cmocka_unit_test(test_bundle_errors_and_preference),
        cmocka_unit_test(test_devstr),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_usb_hotplug),
        cmocka_unit_test(test_udev_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
