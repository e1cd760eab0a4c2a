/*
 * Handler libraries and units of the IFD bridge: loading a handler with dlopen (API v3, v2 as a
 * fall-back), sharing one loaded library between the readers that use it (pcscd does the same:
 * its globals are shared), reader numbers, the call locks that honour the thread-safety tags,
 * and the host symbols the handlers import from their loader (log_msg,
 * log_xxd), routed to scrm's log.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "drivers/ifd/ifd_priv.h"

const char *ifd_rc_name(ifd_rc rc)
{
    switch (rc) {
#define IFD_X_NAME(name, v) \
    case v: return #name;
        IFD_RC_LIST(IFD_X_NAME)
#undef IFD_X_NAME
    default: return NULL;
    }
}

const char *ifd_rc_text(ifd_rc rc, char *buf, size_t cap)
{
    const char *n = ifd_rc_name(rc);
    if (n)
        snprintf(buf, cap, "%s (%ld)", n, rc);
    else
        snprintf(buf, cap, "unknown code %ld", rc);
    return buf;
}

/* ---- host symbols (exported from the executable through ifd_host.sym) ---- */

static enum scrm_log_level host_level(int priority)
{
    switch (priority) {
    case IFD_LOG_DEBUG: return SCRM_LOG_debug;
    case IFD_LOG_INFO: return SCRM_LOG_info;
    default: return SCRM_LOG_error; /* ERROR, CRITICAL and anything else */
    }
}

void log_msg(const int priority, const char *fmt, ...);
void log_xxd(const int priority, const char *msg, const unsigned char *buf, const int len);

__attribute__((visibility("default"), format(printf, 2, 3))) void log_msg(const int priority,
                                                                          const char *fmt, ...)
{
    enum scrm_log_level lv = host_level(priority);
    if (!fmt || !scrm_log_enabled(SCRM_LOG_CAT_drv, lv))
        return;
    ifd_guard_host_enter();
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    scrm_log_write(SCRM_LOG_CAT_drv, lv, __FILE__, __LINE__, "ifd handler: %s", text);
    ifd_guard_host_leave();
}

__attribute__((visibility("default"))) void log_xxd(const int priority, const char *msg,
                                                    const unsigned char *buf, const int len)
{
    enum scrm_log_level lv = host_level(priority);
    if (!scrm_log_enabled(SCRM_LOG_CAT_drv, lv))
        return;
    ifd_guard_host_enter();
    char hex[3 * 256 + 8];
    size_t n = buf && len > 0 ? (size_t)len : 0;
    scrm_hex_encode(buf, n, ' ', hex, sizeof(hex));
    scrm_log_write(SCRM_LOG_CAT_drv, lv, __FILE__, __LINE__, "ifd handler: %s%s", msg ? msg : "",
                   hex);
    ifd_guard_host_leave();
}

/* ---- the library registry ---- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ifd_lib *g_libs;   /* under g_lock */
static struct ifd_unit *g_units; /* every unit, under g_lock */

static void *sym(void *dl, const char *name)
{
    char under[64];
    snprintf(under, sizeof(under), "_%s", name);
    void *p = dlsym(dl, under);
    return p ? p : dlsym(dl, name);
}

/* Bind the entry points; false (logged) if a mandatory one is missing. */
static bool bind_lib(struct ifd_lib *l)
{
    l->f.create_by_name = (ifd_create_by_name_fn)sym(l->dl, "IFDHCreateChannelByName");
    l->f.create = (ifd_create_fn)sym(l->dl, "IFDHCreateChannel");
    l->f.close = (ifd_close_fn)sym(l->dl, "IFDHCloseChannel");
    l->f.get_caps = (ifd_get_caps_fn)sym(l->dl, "IFDHGetCapabilities");
    l->f.set_caps = (ifd_set_caps_fn)sym(l->dl, "IFDHSetCapabilities");
    l->f.set_proto = (ifd_set_proto_fn)sym(l->dl, "IFDHSetProtocolParameters");
    l->f.power = (ifd_power_fn)sym(l->dl, "IFDHPowerICC");
    l->f.transmit = (ifd_transmit_fn)sym(l->dl, "IFDHTransmitToICC");
    l->f.presence = (ifd_presence_fn)sym(l->dl, "IFDHICCPresence");
    void *control = sym(l->dl, "IFDHControl");
    l->version = l->f.create_by_name ? 3 : 2;
    if (l->version == 3)
        l->f.control = (ifd_control_fn)control;
    else
        l->f.control2 = (ifd_control2_fn)control;
    const char *missing = !l->f.create                  ? "IFDHCreateChannel"
                          : !l->f.close                 ? "IFDHCloseChannel"
                          : !l->f.get_caps              ? "IFDHGetCapabilities"
                          : !l->f.set_caps              ? "IFDHSetCapabilities"
                          : !l->f.power                 ? "IFDHPowerICC"
                          : !l->f.transmit              ? "IFDHTransmitToICC"
                          : !l->f.presence              ? "IFDHICCPresence"
                          : !control && l->version == 3 ? "IFDHControl"
                                                        : NULL;
    if (missing) {
        log_error(drv, "ifd: %s is not an IFD handler: %s is missing", l->path, missing);
        return false;
    }
    return true;
}

struct ifd_lib *ifd_lib_get(const char *path)
{
    pthread_mutex_lock(&g_lock);
    struct ifd_lib *l = g_libs;
    while (l && strcmp(l->path, path) != 0)
        l = l->next;
    if (l && atomic_load(&l->failed)) {
        log_error(drv,
                  "ifd: driver %s crashed earlier in this process and is not used again; "
                  "restart scrmd to use it",
                  path);
        pthread_mutex_unlock(&g_lock);
        return NULL;
    }
    if (l) {
        l->refs++;
        pthread_mutex_unlock(&g_lock);
        return l;
    }
    l = calloc(1, sizeof(*l));
    if (l)
        l->path = strdup(path);
    if (!l || !l->path) {
        if (l)
            free(l->path);
        free(l);
        pthread_mutex_unlock(&g_lock);
        return NULL;
    }
    dlerror();
    l->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!l->dl) {
        const char *e = dlerror();
        log_error(drv, "ifd: cannot load %s: %s", path, e ? e : "unknown error");
    }
    if (!l->dl || !bind_lib(l)) {
        if (l->dl)
            dlclose(l->dl);
        free(l->path);
        free(l);
        pthread_mutex_unlock(&g_lock);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    if (!ifd_guard_init())
        log_error(drv, "ifd: cannot install the signal handlers: a crash in %s is not contained",
                  path);
    l->text = ifd_text_of((const void *)l->f.transmit);
    l->refs = 1;
    l->next = g_libs;
    g_libs = l;
    log_info(drv, "ifd: loaded %s (IFD handler API v%d)", path, l->version);
    pthread_mutex_unlock(&g_lock);
    return l;
}

void ifd_lib_put(struct ifd_lib *l)
{
    pthread_mutex_lock(&g_lock);
    bool last = --l->refs == 0;
    if (last && atomic_load(&l->failed)) {
        /* A crashed library stays registered (and loaded) for the process's life, so that it is
         * never loaded and called again with whatever state the crash left. */
        pthread_mutex_unlock(&g_lock);
        return;
    }
    if (last) {
        for (struct ifd_lib **pp = &g_libs; *pp; pp = &(*pp)->next) {
            if (*pp == l) {
                *pp = l->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&g_lock);
    if (!last)
        return;
    if (l->tainted) {
        /* A cancelled call may have left the library's state half-changed, and an abandoned
         * thread may still run in it: its code stays mapped. */
        log_info(drv, "ifd: %s stays loaded (a call hung in it)", l->path);
    } else {
        log_info(drv, "ifd: unloading %s", l->path);
        dlclose(l->dl);
    }
    for (size_t i = 0; i < l->n_slot_locks; i++) {
        pthread_mutex_destroy(l->slot_locks[i]);
        free(l->slot_locks[i]);
    }
    free(l->slot_locks);
    pthread_mutex_destroy(&l->lock);
    free(l->path);
    free(l);
}

void ifd_lib_taint(struct ifd_lib *l)
{
    pthread_mutex_lock(&g_lock);
    l->tainted = true;
    pthread_mutex_unlock(&g_lock);
}

void ifd_lib_fail(struct ifd_lib *l)
{
    pthread_mutex_lock(&g_lock);
    l->tainted = true;
    bool first = !atomic_exchange(&l->failed, true);
    /* smc_reader_gone() only queues; it is safe under our lock (no driver call) */
    for (struct ifd_unit *u = g_units; first && u; u = u->next)
        for (unsigned i = 0; u->lib == l && u->slots && i < u->nslots; i++)
            if (u->slots[i] && u->slots[i]->r)
                smc_reader_gone(u->slots[i]->r);
    pthread_mutex_unlock(&g_lock);
}

pthread_mutex_t *ifd_lib_slot_lock(struct ifd_lib *l, unsigned slot)
{
    pthread_mutex_lock(&g_lock);
    pthread_mutex_t *m = NULL;
    if (slot < l->n_slot_locks) {
        m = l->slot_locks[slot];
    } else {
        pthread_mutex_t **grown = realloc(l->slot_locks, (slot + 1) * sizeof(pthread_mutex_t *));
        if (grown) {
            l->slot_locks = grown;
            while (l->n_slot_locks <= slot) {
                pthread_mutex_t *n = malloc(sizeof(*n));
                if (!n)
                    break;
                pthread_mutex_init(n, NULL);
                l->slot_locks[l->n_slot_locks++] = n;
            }
            if (slot < l->n_slot_locks)
                m = l->slot_locks[slot];
        }
    }
    pthread_mutex_unlock(&g_lock);
    return m ? m : &l->lock; /* out of memory: the library-wide lock is always safe */
}

/* ---- units ---- */

struct ifd_unit *ifd_unit_find(const char *id)
{
    pthread_mutex_lock(&g_lock);
    struct ifd_unit *u = g_units;
    while (u && strcmp(u->id, id) != 0)
        u = u->next;
    if (u)
        u->refs++;
    pthread_mutex_unlock(&g_lock);
    return u;
}

/* The lowest reader number no other unit of the library uses; g_lock held. */
static unsigned free_number_locked(const struct ifd_lib *l)
{
    for (unsigned n = 0;; n++) {
        bool used = false;
        for (const struct ifd_unit *u = g_units; u && !used; u = u->next)
            used = u->lib == l && u->number == n;
        if (!used)
            return n;
    }
}

struct ifd_unit *ifd_unit_new(struct ifd_lib *l, const char *id, const struct ifd_devspec *spec)
{
    struct ifd_unit *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    snprintf(u->id, sizeof(u->id), "%s", id);
    u->spec = *spec;
    u->lib = l;
    u->refs = 1;
    u->nslots = 1;
    pthread_mutex_init(&u->lock, NULL);
    pthread_mutex_lock(&g_lock);
    bool dup = false;
    for (const struct ifd_unit *o = g_units; o && !dup; o = o->next)
        dup = strcmp(o->id, id) == 0;
    if (!dup) {
        u->number = free_number_locked(l);
        u->next = g_units;
        g_units = u;
    }
    pthread_mutex_unlock(&g_lock);
    if (dup) {
        pthread_mutex_destroy(&u->lock);
        free(u);
        return NULL;
    }
    return u;
}

/* Another unit of the same library, referenced, or NULL. */
struct ifd_unit *ifd_unit_sibling_of_lib(const struct ifd_unit *u)
{
    pthread_mutex_lock(&g_lock);
    struct ifd_unit *o = g_units;
    while (o && (o == u || o->lib != u->lib || !o->ready))
        o = o->next;
    if (o)
        o->refs++;
    pthread_mutex_unlock(&g_lock);
    return o;
}

void ifd_unit_put(struct ifd_unit *u)
{
    pthread_mutex_lock(&g_lock);
    bool last = --u->refs == 0;
    if (last) {
        for (struct ifd_unit **pp = &g_units; *pp; pp = &(*pp)->next) {
            if (*pp == u) {
                *pp = u->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&g_lock);
    if (!last)
        return;
    struct ifd_lib *l = u->lib;
    free(u->slots);
    pthread_mutex_destroy(&u->lock);
    free(u);
    ifd_lib_put(l);
}

void ifd_unit_set_slot(struct ifd_unit *u, unsigned idx, struct ifd_slot *s)
{
    pthread_mutex_lock(&g_lock);
    if (idx < u->nslots && u->slots)
        u->slots[idx] = s;
    pthread_mutex_unlock(&g_lock);
}

/* The smc readers of the unit's other slots, for removal: fn(r) for each, under no lock. */
void ifd_unit_each_other_slot(struct ifd_unit *u, unsigned self, void (*fn)(struct smc_reader *r))
{
    pthread_mutex_lock(&g_lock);
    size_t n = 0;
    struct smc_reader **rs = calloc(u->nslots ? u->nslots : 1, sizeof(struct smc_reader *));
    for (unsigned i = 0; rs && u->slots && i < u->nslots; i++)
        if (i != self && u->slots[i] && u->slots[i]->r)
            rs[n++] = u->slots[i]->r;
    /* smc_reader_gone() only queues; it is safe under our lock (no driver call) */
    for (size_t i = 0; i < n; i++)
        fn(rs[i]);
    pthread_mutex_unlock(&g_lock);
    free(rs);
}
