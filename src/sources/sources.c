/*
 * Reader sources at run time (sources.h): the configured set and its reload, USB matching and
 * hot-plug, and the thread that waits for SIGHUP and udev events without any timeout.
 */
#include "sources/sources.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/scard_codes.h"
#include "rm/rm.h"
#include "sources/bundle.h"
#include "sources/devstr.h"
#include "sources/readerconf.h"
#include "sources/usb.h"

/* ---- string lists -----------------------------------------------------------------------------
 */

int strlist_add(struct strlist *l, const char *s)
{
    char **grown = realloc(l->v, (l->n + 1) * sizeof(*grown));
    if (!grown)
        return -1;
    l->v = grown;
    if (!(l->v[l->n] = strdup(s)))
        return -1;
    l->n++;
    return 0;
}

bool strlist_has(const struct strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

static void strlist_remove_at(struct strlist *l, size_t i)
{
    free(l->v[i]);
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(*l->v));
    l->n--;
}

void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ---- the configured set ------------------------------------------------------------------------
 */

int sources_configured(char *const *readers, size_t n_readers, const char *reader_conf_dir,
                       struct strlist *out)
{
    for (size_t i = 0; i < n_readers; i++)
        if (!strlist_has(out, readers[i]) && strlist_add(out, readers[i]) < 0)
            return -1;
    if (!reader_conf_dir || !*reader_conf_dir)
        return 0;
    struct readerconf rc = {0};
    int rv = readerconf_load(&rc, reader_conf_dir, 0, NULL, NULL);
    char *buf = malloc(SOURCES_DEVSTR_MAX);
    if (!buf)
        rv = -1;
    for (size_t i = 0; rv >= 0 && i < rc.n; i++) {
        const struct readerconf_entry *e = &rc.v[i];
        if (!sources_devstr_conf(e, buf, SOURCES_DEVSTR_MAX)) {
            log_error(core,
                      "%s:%u: reader entry '%s' cannot be expressed as a device string; "
                      "refused",
                      e->file, e->line, e->friendly_name);
            continue;
        }
        if (!strlist_has(out, buf) && strlist_add(out, buf) < 0)
            rv = -1;
    }
    free(buf);
    readerconf_free(&rc);
    return rv < 0 ? -1 : 0;
}

/* ---- the object --------------------------------------------------------------------------------
 */

struct usb_reader {
    char sysname[64];
    char *device;
};

struct sources {
    struct sources_sink sink;
    struct strlist conf; /* configured device strings that are running */

    struct usb_source *usb;
    struct bundles bundles;
    pthread_mutex_t usb_lock; /* usb_readers (read by sources_usb_devices) */
    struct usb_reader *usb_readers;
    size_t n_usb;

    pthread_t thread;
    bool started;
    int stop_fd, reload_fd;
    sources_reload_fn reload;
    void *reload_user;
};

static uint32_t rm_sink_add(void *user, const char *device)
{
    return rm_add_reader(user, device);
}

static uint32_t rm_sink_remove(void *user, const char *device)
{
    return rm_remove_reader(user, device);
}

struct sources *sources_new_sink(const struct sources_sink *sink)
{
    struct sources *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->sink = *sink;
    s->stop_fd = -1;
    s->reload_fd = -1;
    pthread_mutex_init(&s->usb_lock, NULL);
    return s;
}

struct sources *sources_new(struct rm *rm)
{
    struct sources_sink sink = {.add = rm_sink_add, .remove = rm_sink_remove, .user = rm};
    return sources_new_sink(&sink);
}

size_t sources_apply(struct sources *s, const struct strlist *configured)
{
    unsigned removed = 0, started = 0, failed = 0;
    for (size_t i = s->conf.n; i-- > 0;) {
        if (strlist_has(configured, s->conf.v[i]))
            continue;
        uint32_t rc = s->sink.remove(s->sink.user, s->conf.v[i]);
        if (rc == SCARD_S_SUCCESS)
            removed++;
        log_info(core, "reader %s is no longer configured: removed (%s)", s->conf.v[i],
                 scard_code_name(rc));
        strlist_remove_at(&s->conf, i);
    }
    for (size_t i = 0; i < configured->n; i++) {
        const char *dev = configured->v[i];
        if (strlist_has(&s->conf, dev))
            continue;
        uint32_t rc = s->sink.add(s->sink.user, dev);
        if (rc == SCARD_S_SUCCESS) {
            started++;
            if (strlist_add(&s->conf, dev) < 0)
                log_error(core, "reader %s: out of memory; a reload will not remove it", dev);
        } else {
            failed++;
            log_error(core, "reader %s not added: %s", dev, scard_code_name(rc));
        }
    }
    log_info(core, "configured readers: %zu running (%u started, %u removed, %u failed)", s->conf.n,
             started, removed, failed);
    return s->conf.n;
}

/* ---- USB ----------------------------------------------------------------------------------------
 */

int sources_set_usb(struct sources *s, struct usb_source *usb, const char *driver_dir)
{
    int n = bundles_load_dir(&s->bundles, driver_dir);
    if (n <= 0) {
        log_info(core, "no driver bundles in %s: USB readers are not looked for", driver_dir);
        if (usb)
            usb->ops->free(usb);
        return 0;
    }
    size_t ids = 0;
    for (size_t i = 0; i < s->bundles.n; i++)
        ids += s->bundles.v[i].n_ids;
    log_info(core, "%d driver bundle(s) in %s, %zu USB reader ids", n, driver_dir, ids);
    s->usb = usb;
    return n;
}

/* The reader name prefix pcscd gives a USB reader: the bundle's friendly name, the interface
 * string in brackets, the serial in parentheses unless the interface string contains it. */
static void usb_name(const char *friendly, const struct usb_iface *i, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s", friendly);
    if (*i->ifstring && n >= 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, " [%s]", i->ifstring);
    if (*i->serial && !strstr(i->ifstring, i->serial) && n >= 0 && (size_t)n < cap &&
        snprintf(out + n, cap - (size_t)n, " (%s)", i->serial) < 0)
        out[n] = '\0'; /* an encoding error leaves the name without the serial */
}

static void usb_added(struct sources *s, const struct usb_iface *i)
{
    const struct bundle *primary, *fallback;
    const char *friendly;
    /* libccid serves the CCID class interface (0x0B) and vendor-specific ones (0xFF) only */
    if (i->ifclass >= 0 && i->ifclass != 0x0B && i->ifclass != 0xFF)
        return;
    if (!bundles_match(&s->bundles, i->vid, i->pid, &primary, &fallback, &friendly))
        return;
    pthread_mutex_lock(&s->usb_lock);
    bool known = false;
    for (size_t k = 0; k < s->n_usb && !known; k++)
        known = strcmp(s->usb_readers[k].sysname, i->sysname) == 0;
    pthread_mutex_unlock(&s->usb_lock);
    if (known)
        return;
    char name[READERCONF_NAME_MAX + 1], device[160];
    usb_name(friendly, i, name, sizeof name);
    snprintf(device, sizeof device, "usb:%04x/%04x:libudev:%d:%s", i->vid, i->pid, i->ifnum,
             i->devnode);
    char *buf = malloc(SOURCES_DEVSTR_MAX);
    if (!buf)
        return;
    uint32_t rc = SCARD_E_INVALID_VALUE;
    const struct bundle *tries[2] = {primary, fallback};
    for (int t = 0; t < 2 && rc != SCARD_S_SUCCESS && tries[t]; t++) {
        if (!sources_devstr_usb(i->sysname, tries[t]->lib, device, name, buf, SOURCES_DEVSTR_MAX))
            continue;
        rc = s->sink.add(s->sink.user, buf);
        log_info(core, "USB %04x:%04x at %s (%s) with %s: %s", i->vid, i->pid, i->sysname, name,
                 tries[t]->lib, scard_code_name(rc));
    }
    if (rc == SCARD_S_SUCCESS) {
        pthread_mutex_lock(&s->usb_lock);
        struct usb_reader *grown = realloc(s->usb_readers, (s->n_usb + 1) * sizeof(*grown));
        char *dev = strdup(buf);
        if (grown && dev) {
            s->usb_readers = grown;
            snprintf(grown[s->n_usb].sysname, sizeof grown[s->n_usb].sysname, "%s", i->sysname);
            grown[s->n_usb++].device = dev;
        } else {
            if (grown)
                s->usb_readers = grown;
            free(dev);
            log_error(core, "USB %s: out of memory; its removal will not be seen", i->sysname);
        }
        pthread_mutex_unlock(&s->usb_lock);
    } else {
        log_error(core, "USB reader %04x:%04x at %s (%s) not added: %s", i->vid, i->pid, i->sysname,
                  name, scard_code_name(rc));
    }
    free(buf);
}

static void usb_added_cb(void *user, const struct usb_iface *i)
{
    usb_added(user, i);
}

static void usb_removed(struct sources *s, const char *sysname)
{
    char *device = NULL;
    pthread_mutex_lock(&s->usb_lock);
    for (size_t k = 0; k < s->n_usb; k++) {
        if (strcmp(s->usb_readers[k].sysname, sysname) == 0) {
            device = s->usb_readers[k].device;
            s->usb_readers[k] = s->usb_readers[--s->n_usb];
            break;
        }
    }
    pthread_mutex_unlock(&s->usb_lock);
    if (!device)
        return;
    uint32_t rc = s->sink.remove(s->sink.user, device);
    log_info(core, "USB %s unplugged: reader %s removed (%s)", sysname, device,
             scard_code_name(rc));
    free(device);
}

int sources_usb_devices(struct sources *s, struct strlist *out)
{
    int rc = 0;
    pthread_mutex_lock(&s->usb_lock);
    for (size_t k = 0; k < s->n_usb && rc == 0; k++)
        rc = strlist_add(out, s->usb_readers[k].device);
    pthread_mutex_unlock(&s->usb_lock);
    return rc;
}

/* ---- the thread ---------------------------------------------------------------------------------
 */

static void *sources_thread(void *arg)
{
    struct sources *s = arg;
    for (;;) {
        struct pollfd p[3] = {
            {.fd = s->stop_fd, .events = POLLIN},
            {.fd = s->reload_fd, .events = POLLIN},
            {.fd = s->usb ? s->usb->ops->fd(s->usb) : -1, .events = POLLIN},
        };
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error(core, "reader sources: poll: %s; hot-plug and reload stop", strerror(errno));
            break;
        }
        if (p[0].revents)
            break;
        if (p[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(s->reload_fd, &si, sizeof si) == (ssize_t)sizeof si)
                ;
            log_info(core, "SIGHUP: reloading the reader configuration");
            if (s->reload)
                s->reload(s->reload_user, s);
        }
        if (s->usb && (p[2].revents & POLLIN)) {
            enum usb_action action;
            struct usb_iface iface;
            int r;
            while ((r = s->usb->ops->receive(s->usb, &action, &iface)) > 0) {
                if (action == USB_ADD)
                    usb_added(s, &iface);
                else
                    usb_removed(s, iface.sysname);
            }
            if (r < 0)
                break;
        }
    }
    return NULL;
}

int sources_start(struct sources *s, int reload_fd, sources_reload_fn reload, void *user)
{
    s->reload_fd = reload_fd;
    s->reload = reload;
    s->reload_user = user;
    if (s->usb)
        (void)s->usb->ops->enumerate(s->usb, usb_added_cb, s);
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->stop_fd < 0 || pthread_create(&s->thread, NULL, sources_thread, s) != 0) {
        log_error(core, "reader sources: cannot start the thread; no hot-plug, no reload");
        return -1;
    }
    s->started = true;
    return 0;
}

void sources_free(struct sources *s)
{
    if (!s)
        return;
    if (s->started) {
        uint64_t one = 1;
        if (write(s->stop_fd, &one, sizeof one) < 0)
            log_error(core, "reader sources: cannot stop the thread: %s", strerror(errno));
        pthread_join(s->thread, NULL);
    }
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    if (s->usb)
        s->usb->ops->free(s->usb);
    bundles_free(&s->bundles);
    for (size_t k = 0; k < s->n_usb; k++)
        free(s->usb_readers[k].device);
    free(s->usb_readers);
    strlist_free(&s->conf);
    pthread_mutex_destroy(&s->usb_lock);
    free(s);
}
