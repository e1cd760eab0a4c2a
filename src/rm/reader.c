/*
 * Readers of the resource manager: the start-up sequence, the device records that make a start-up
 * happen once per device whoever asks first (rm_add_reader, rm_discover, a PnP arrival), the
 * departure of a device, reference counts, the snapshot and the watch registry.
 *
 * Start-up of a device (docs/resource-manager.md, "Start-up sequence"): open a handle, name the reader from
 * GET_ATTRIBUTE VENDOR_NAME, VENDOR_IFD_TYPE and DEVICE_UNIT ("<vendor> <ifd type> <unit>"), after
 * asking DEVICE_FRIENDLY_NAME for a driver-given name (only the IFD bridge has one); a reader that
 * cannot be named is not registered, GET_ATTRIBUTE
 * CHARACTERISTICS, then the card monitor (monitor.c). A second reader with a name already
 * registered is refused (logged, SCARD_E_DUPLICATE_READER). The thread pool of that sequence's step 2
 * is the rm's pool (pool.c), shared by all readers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "rm/internal.h"

/* ---- references ---- */

void rm_reader_ref_locked(struct rm_reader *r)
{
    scrm_mutex_assert_held(&r->rm->lock);
    r->refs++;
}

void rm_reader_destroy(struct rm_reader *r)
{
    /* The last reference is gone: a timer that fires now finds no reader by its id. */
    SCRM_IGNORE(rm_timer_cancel(&r->rm->timers, &r->pd_timer), "idle or firing: both harmless");
    SCRM_IGNORE(rm_timer_cancel(&r->rm->timers, &r->retry_timer), "idle or firing: both harmless");
    if (r->h)
        smc_close(r->h);
    scrm_cond_destroy(&r->cond);
    scrm_mutex_destroy(&r->lock);
    scrm_mutex_destroy(&r->seq_lock);
    scrm_mutex_destroy(&r->mon_lock);
    free(r);
}

void rm_reader_unref(struct rm_reader *r)
{
    struct rm *rm = r->rm;
    scrm_mutex_lock(&rm->lock);
    bool last = --r->refs == 0;
    if (last) {
        for (struct rm_reader **pp = &rm->all; *pp; pp = &(*pp)->all_next) {
            if (*pp == r) {
                *pp = r->all_next;
                break;
            }
        }
    }
    scrm_mutex_unlock(&rm->lock);
    if (last)
        rm_reader_destroy(r);
}

struct rm_reader *rm_reader_by_id(struct rm *rm, uint64_t id)
{
    scrm_mutex_lock(&rm->lock);
    struct rm_reader *r = rm->all;
    while (r && r->id != id)
        r = r->all_next;
    if (r)
        rm_reader_ref_locked(r);
    scrm_mutex_unlock(&rm->lock);
    return r;
}

struct rm_reader *rm_reader_by_name(struct rm *rm, const char *name)
{
    scrm_mutex_lock(&rm->lock);
    struct rm_reader *r = rm->readers;
    while (r && strcmp(r->name, name) != 0)
        r = r->next;
    if (r)
        rm_reader_ref_locked(r);
    scrm_mutex_unlock(&rm->lock);
    return r;
}

/* A new reader object with one reference (the caller's), in rm->all. */
static struct rm_reader *reader_new(struct rm *rm, const char *device)
{
    struct rm_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->rm = rm;
    snprintf(r->device, sizeof(r->device), "%s", device);
    scrm_mutex_init(&r->seq_lock);
    scrm_mutex_init(&r->lock);
    scrm_mutex_init(&r->mon_lock);
    TAILQ_INIT(&r->parked);
    if (scrm_cond_init(&r->cond) != 0) {
        scrm_mutex_destroy(&r->mon_lock);
        scrm_mutex_destroy(&r->lock);
        scrm_mutex_destroy(&r->seq_lock);
        free(r);
        return NULL;
    }
    r->state = SCARD_UNKNOWN;
    scrm_mutex_lock(&rm->lock);
    r->id = ++rm->next_reader_id;
    r->refs = 1;
    r->all_next = rm->all;
    rm->all = r;
    scrm_mutex_unlock(&rm->lock);
    return r;
}

/* ---- naming ---- */

/* A string attribute without trailing NULs into buf. STATUS_* of the request. */
static smc_status string_attr(struct rm_reader *r, uint32_t attr, char *buf, size_t cap)
{
    size_t n = 0;
    smc_status st = rm_get_attr(r, attr, buf, cap - 1, &n);
    if (st != STATUS_SUCCESS)
        return st;
    while (n > 0 && buf[n - 1] == '\0')
        n--;
    buf[n] = '\0';
    return n ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL;
}

/* Name the reader "<vendor> <ifd type> <unit>" from VENDOR_NAME, VENDOR_IFD_TYPE and DEVICE_UNIT,
 * the smart card resource manager's rule. A driver that names its readers itself answers
 * DEVICE_FRIENDLY_NAME (the IFD bridge, so a bridged reader keeps pcscd's "FRIENDLYNAME 00 00"
 * name); libsmc answers NOT_SUPPORTED for every other driver, and the rule applies. Returns false
 * (logged) if the reader cannot be named. */
static bool name_reader(struct rm_reader *r)
{
    if (string_attr(r, SCARD_ATTR_DEVICE_FRIENDLY_NAME_A, r->name, sizeof(r->name)) ==
        STATUS_SUCCESS)
        return true;
    char vendor[48], ifd[48]; /* attribute strings are at most 32 characters */
    uint8_t unit_le[4] = {0};
    size_t n = 0;
    smc_status st = string_attr(r, SCARD_ATTR_VENDOR_NAME, vendor, sizeof(vendor));
    if (st == STATUS_SUCCESS)
        st = string_attr(r, SCARD_ATTR_VENDOR_IFD_TYPE, ifd, sizeof(ifd));
    if (st == STATUS_SUCCESS)
        st = rm_get_attr(r, SCARD_ATTR_DEVICE_UNIT, unit_le, sizeof(unit_le), &n);
    if (st == STATUS_SUCCESS && n != 4)
        st = STATUS_UNSUCCESSFUL;
    if (st != STATUS_SUCCESS) {
        log_error(rm, "device %s: cannot determine the reader name (%s); reader not registered",
                  r->device, smc_status_name(st));
        return false;
    }
    uint32_t unit = scrm_get_u32le(unit_le);
    snprintf(r->name, sizeof(r->name), "%s %s %u", vendor, ifd, unit);
    return true;
}

/* Open, name, characteristics. SCARD result; *out gets the reader (also on failure, or NULL);
 * *gone is set when the device is no longer in libsmc (a late arrival job after its removal). */
static scard_rc startup(struct rm *rm, const char *device, struct rm_reader **out, bool *gone)
{
    struct rm_reader *r = reader_new(rm, device);
    *out = r;
    if (!r)
        return SCARD_E_NO_MEMORY;
    smc_status st = smc_open(rm->ctx, device, &r->h);
    if (st != STATUS_SUCCESS) {
        r->h = NULL;
        *gone = st == STATUS_NO_SUCH_DEVICE;
        if (*gone)
            log_debug(rm, "device %s: gone before its start-up", device);
        else
            log_error(rm, "device %s: cannot open it: %s", device, smc_status_name(st));
        return SCARD_E_READER_UNAVAILABLE;
    }
    if (!name_reader(r))
        return SCARD_E_READER_UNAVAILABLE;
    uint8_t ch[4] = {0};
    size_t n = 0;
    st = rm_get_attr(r, SCARD_ATTR_CHARACTERISTICS, ch, sizeof(ch), &n);
    if (st == STATUS_SUCCESS && n == 4)
        r->characteristics = scrm_get_u32le(ch);
    else
        log_warn(rm, "reader '%s': no characteristics (%s)", r->name, smc_status_name(st));
    return SCARD_S_SUCCESS;
}

/* ---- device records ---- */

static struct rm_dev *find_dev_locked(struct rm *rm, const char *device) SCRM_REQUIRES(rm->lock)
{
    scrm_mutex_assert_held(&rm->lock);
    struct rm_dev *d = rm->devs;
    while (d && strcmp(d->name, device) != 0)
        d = d->next;
    return d;
}

static void unlink_dev_locked(struct rm *rm, struct rm_dev *d) SCRM_REQUIRES(rm->lock)
{
    scrm_mutex_assert_held(&rm->lock);
    for (struct rm_dev **pp = &rm->devs; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
}

static bool name_taken_locked(struct rm *rm, const char *name) SCRM_REQUIRES(rm->lock)
{
    scrm_mutex_assert_held(&rm->lock);
    for (struct rm_reader *r = rm->readers; r; r = r->next)
        if (strcmp(r->name, name) == 0)
            return true;
    return false;
}

/* After the start-up IOCTLs: register the reader (still RM_DEV_STARTING until its monitor runs)
 * or refuse it. rm->lock held. */
static scard_rc settle_locked(struct rm *rm, struct rm_dev *d, struct rm_reader *r, scard_rc rc)
    SCRM_REQUIRES(rm->lock)
{
    scrm_mutex_assert_held(&rm->lock);
    if (rc == SCARD_S_SUCCESS && d->left)
        rc = SCARD_E_READER_UNAVAILABLE;
    if (rc == SCARD_S_SUCCESS && name_taken_locked(rm, r->name)) {
        log_error(rm, "device %s: a reader named '%s' exists already; this one is refused", d->name,
                  r->name);
        rc = SCARD_E_DUPLICATE_READER;
    }
    if (rc == SCARD_S_SUCCESS) {
        struct rm_reader **pp = &rm->readers;
        while (*pp)
            pp = &(*pp)->next;
        *pp = r; /* the list takes the creation reference */
        d->reader = r;
        rm->reader_events++;
        return rc;
    }
    d->st = RM_DEV_REFUSED;
    d->result = rc;
    if (d->left) {
        unlink_dev_locked(rm, d);
        free(d);
    }
    scrm_cond_broadcast(&rm->dev_cond);
    return rc;
}

static void unlink_reader_locked(struct rm *rm, struct rm_reader *r) SCRM_REQUIRES(rm->lock)
{
    scrm_mutex_assert_held(&rm->lock);
    for (struct rm_reader **pp = &rm->readers; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    rm->reader_events++;
}

/* A registered reader's device left (already unlinked from the list): mark it gone, stop its
 * monitor, wake its waiters, notify, drop the list's reference. */
static void reader_departed(struct rm *rm, struct rm_reader *r, uint32_t events)
{
    scrm_mutex_lock(&r->lock);
    r->gone = true;
    rm_power_down_cancel_locked(r);
    scrm_cond_broadcast(&r->cond);
    scrm_mutex_unlock(&r->lock);
    rm_park_wake_all(r); /* parked requests retry and find it gone */
    rm_monitor_stop(r);
    log_info(rm, "reader '%s' (%s) left", r->name, r->device);
    rm_notify_reader(r);
    rm_notify(rm, NULL, events, true);
    rm_reader_unref(r); /* the list's reference */
}

scard_rc rm_reader_start(struct rm *rm, const char *device)
{
    struct rm_dev *d;
    for (;;) {
        scrm_mutex_lock(&rm->lock);
        if (atomic_load(&rm->closing)) {
            scrm_mutex_unlock(&rm->lock);
            return SCARD_E_SERVICE_STOPPED;
        }
        d = find_dev_locked(rm, device);
        if (!d)
            break; /* ours to start; rm->lock held */
        /* d may be freed while we wait (the device left): look it up again after each wake-up */
        while (d && d->st == RM_DEV_STARTING) {
            scrm_cond_wait(&rm->dev_cond, &rm->lock);
            d = find_dev_locked(rm, device);
        }
        if (d) {
            scard_rc rc = d->result;
            scrm_mutex_unlock(&rm->lock);
            return rc;
        }
        /* The record went with a departure while we waited; the device may be back (removed
         * and added again): start over. */
        scrm_mutex_unlock(&rm->lock);
    }
    d = calloc(1, sizeof(*d));
    if (!d) {
        scrm_mutex_unlock(&rm->lock);
        return SCARD_E_NO_MEMORY;
    }
    snprintf(d->name, sizeof(d->name), "%s", device);
    d->st = RM_DEV_STARTING;
    d->next = rm->devs;
    rm->devs = d;
    scrm_mutex_unlock(&rm->lock);

    struct rm_reader *r = NULL;
    bool gone = false;
    scard_rc rc = startup(rm, device, &r, &gone);
    scrm_mutex_lock(&rm->lock);
    if (gone)
        d->left = true; /* no record stays behind for a device libsmc no longer has */
    rc = settle_locked(rm, d, r, rc);
    scrm_mutex_unlock(&rm->lock);
    if (rc != SCARD_S_SUCCESS) {
        if (r)
            rm_reader_unref(r);
        return rc;
    }
    rm_monitor_start(r);
    /* Only now is the device settled: whoever waits for it sees the monitor's first state. */
    scrm_mutex_lock(&rm->lock);
    d->st = RM_DEV_READY;
    d->result = rc;
    bool left = d->left;
    if (left) {
        unlink_dev_locked(rm, d);
        free(d);
        unlink_reader_locked(rm, r);
    }
    uint32_t events = rm->reader_events;
    scrm_cond_broadcast(&rm->dev_cond);
    scrm_mutex_unlock(&rm->lock);
    if (left) {
        reader_departed(rm, r, events);
        return SCARD_E_READER_UNAVAILABLE;
    }
    log_info(rm, "reader '%s' registered (%s)", r->name, r->device);
    rm_notify(rm, NULL, events, true);
    return rc;
}

/* A device left: unregister its reader; its connections stay until disconnected. */
static void device_left(struct rm *rm, const char *device)
{
    scrm_mutex_lock(&rm->lock);
    struct rm_dev *d = find_dev_locked(rm, device);
    struct rm_reader *r = NULL;
    if (d && d->st == RM_DEV_STARTING) {
        d->left = true; /* the start-up finishes the job */
        d = NULL;
    } else if (d) {
        r = d->reader;
        unlink_dev_locked(rm, d);
        free(d);
    }
    if (r)
        unlink_reader_locked(rm, r);
    uint32_t events = rm->reader_events;
    scrm_mutex_unlock(&rm->lock);
    if (r)
        reader_departed(rm, r, events);
}

struct arrival {
    struct rm_job job;
    struct rm *rm;
    char device[RM_DEVICE_NAME_MAX];
};

static void arrival_job(struct rm_job *job)
{
    struct arrival *a = (struct arrival *)job;
    if (!atomic_load(&a->rm->closing)) {
        scard_rc rc = rm_reader_start(a->rm, a->device);
        if (rc != SCARD_S_SUCCESS && rc != SCARD_E_SERVICE_STOPPED)
            log_warn(rm, "device %s arrived but its reader did not start: %s", a->device,
                     scard_code_name(rc));
    }
    free(a);
}

/* The device can serve again what it refused (an NFC radio back on): wake its monitor. */
static void device_changed(struct rm *rm, const char *device)
{
    scrm_mutex_lock(&rm->lock);
    struct rm_dev *d = find_dev_locked(rm, device);
    struct rm_reader *r = d && d->st == RM_DEV_READY ? d->reader : NULL;
    if (r)
        rm_reader_ref_locked(r);
    scrm_mutex_unlock(&rm->lock);
    if (!r)
        return;
    rm_monitor_device_changed(r);
    rm_reader_unref(r);
}

void rm_pnp_listener(void *user, enum smc_pnp_event ev, const char *device)
{
    struct rm *rm = user;
    if (ev == SMC_DEVICE_LEFT) {
        device_left(rm, device);
        return;
    }
    if (ev == SMC_DEVICE_CHANGED) {
        device_changed(rm, device);
        return;
    }
    if (atomic_load(&rm->closing))
        return;
    struct arrival *a = calloc(1, sizeof(*a));
    if (!a) {
        log_error(rm, "device %s arrived: out of memory, not registered", device);
        return;
    }
    a->job.fn = arrival_job;
    a->rm = rm;
    snprintf(a->device, sizeof(a->device), "%s", device);
    if (!rm_pool_submit(&rm->pool, &a->job))
        free(a);
}

/* ---- snapshot ---- */

/* As pcscd's SCardGetStatusChange: an unavailable reader shows UNAVAILABLE alone; INUSE needs a
 * card; EXCLUSIVE shows even on an empty or unavailable reader. */
uint32_t rm_reader_flags_locked(const struct rm_reader *r) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    uint32_t f = 0;
    bool unavailable = r->gone || r->defective || r->lost;
    if (unavailable) {
        f |= RM_READER_UNAVAILABLE;
    } else if (r->card_present) {
        f |= RM_READER_PRESENT;
        if (r->mute)
            f |= RM_READER_MUTE;
        if (r->state < SCARD_POWERED)
            f |= RM_READER_UNPOWERED;
    } else {
        f |= RM_READER_EMPTY;
    }
    if (r->exclusive)
        f |= RM_READER_EXCLUSIVE;
    else if (r->n_conns && r->card_present && !unavailable)
        f |= RM_READER_INUSE;
    return f;
}

/* As pcscd's reader state: 0x34 for a card that answered its reset (powered or not since: pcscd
 * keeps the word when its power-down timer switches the card off), PRESENT alone while nobody
 * powered it (no ATR yet) or after a handle's UNPOWER, PRESENT | SWALLOWED for a mute card. */
uint32_t rm_pcsc_state_locked(const struct rm_reader *r) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    if (r->gone || r->defective || r->lost)
        return RM_PCSC_UNKNOWN;
    if (!r->card_present)
        return RM_PCSC_ABSENT;
    if (r->mute)
        return RM_PCSC_PRESENT | RM_PCSC_SWALLOWED;
    if (r->atr_len == 0 || r->app_unpowered)
        return RM_PCSC_PRESENT;
    return RM_PCSC_PRESENT | RM_PCSC_POWERED | RM_PCSC_NEGOTIABLE;
}

static void fill_info_locked(const struct rm_reader *r, struct rm_reader_info *out)
    SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    memset(out, 0, sizeof(*out));
    /* plain copies: snprintf was most of the cost of listing the readers */
    memcpy(out->name, r->name, strnlen(r->name, sizeof(out->name) - 1));
    memcpy(out->device, r->device, strnlen(r->device, sizeof(out->device) - 1));
    out->flags = rm_reader_flags_locked(r);
    out->event_counter = r->event_counter;
    out->state = r->state;
    out->pcsc_state = rm_pcsc_state_locked(r);
    out->protocol = rm_proto_from_smc(r->protocol);
    out->sharing = r->exclusive ? -1 : (int32_t)r->n_conns;
    out->characteristics = r->characteristics;
    out->power_down_pending = r->pd_armed;
    out->defective = r->defective;
    out->atr_len = r->card_present ? r->atr_len : 0;
    memcpy(out->atr, r->atr, out->atr_len);
}

scard_rc rm_list_readers(struct rm *rm, struct rm_reader_info **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    scrm_mutex_lock(&rm->lock);
    size_t count = 0;
    for (struct rm_reader *r = rm->readers; r; r = r->next)
        count++;
    struct rm_reader_info *v = count ? calloc(count, sizeof(*v)) : NULL;
    if (count && !v) {
        scrm_mutex_unlock(&rm->lock);
        return SCARD_E_NO_MEMORY;
    }
    size_t i = 0;
    for (struct rm_reader *r = rm->readers; r; r = r->next, i++) {
        scrm_mutex_lock(&r->lock);
        fill_info_locked(r, &v[i]);
        scrm_mutex_unlock(&r->lock);
    }
    scrm_mutex_unlock(&rm->lock);
    *out = v;
    *n = count;
    return SCARD_S_SUCCESS;
}

scard_rc rm_get_reader(struct rm *rm, const char *name, struct rm_reader_info *out)
{
    struct rm_reader *r = name ? rm_reader_by_name(rm, name) : NULL;
    if (!r)
        return SCARD_E_UNKNOWN_READER;
    scrm_mutex_lock(&r->lock);
    fill_info_locked(r, out);
    scrm_mutex_unlock(&r->lock);
    rm_reader_unref(r);
    return SCARD_S_SUCCESS;
}

uint32_t rm_reader_events(struct rm *rm)
{
    scrm_mutex_lock(&rm->lock);
    uint32_t v = rm->reader_events;
    scrm_mutex_unlock(&rm->lock);
    return v;
}

/* ---- watches ---- */

#define WATCH_MOVE_STEP 8u /* old chains moved per registry call while growing */

static uint32_t watch_hash(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static void chain_insert(struct rm_watch **head, struct rm_watch *w)
{
    w->next = *head;
    if (w->next)
        w->next->pprev = &w->next;
    w->pprev = head;
    *head = w;
}

static void chain_remove(struct rm_watch *w)
{
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
}

/* Move a few chains of the old table into the current one; watch_lock held. */
static void watches_move_some(struct rm_watches *ws)
{
    for (unsigned k = 0; k < WATCH_MOVE_STEP && ws->old.n; k++) {
        struct rm_watch *w = ws->old.b[ws->old_pos];
        while (w) {
            struct rm_watch *next = w->next;
            chain_insert(&ws->cur.b[w->hash & (ws->cur.n - 1)], w);
            w = next;
        }
        ws->old.b[ws->old_pos] = NULL;
        if (++ws->old_pos == ws->old.n) {
            free(ws->old.b);
            ws->old.b = NULL;
            ws->old.n = 0;
            ws->old_pos = 0;
        }
    }
}

/* Start growing when the load passes 2 and no move is in progress; watch_lock held. A failed
 * allocation only leaves the chains longer. The move finishes long before the next growth: it
 * needs old.n / WATCH_MOVE_STEP calls, the next growth 2 * old.n inserts. */
static void watches_maybe_grow(struct rm_watches *ws)
{
    size_t n = ws->cur.n ? ws->cur.n * 4 : 64;
    struct rm_watch **b;
    if (ws->old.n || (ws->cur.n && ws->count < 2 * ws->cur.n))
        return;
    b = calloc(n, sizeof(struct rm_watch *));
    if (!b)
        return;
    ws->old = ws->cur;
    ws->old_pos = 0;
    ws->cur.b = b;
    ws->cur.n = n;
    if (!ws->old.n) { /* first table: nothing to move */
        free(ws->old.b);
        ws->old.b = NULL;
    }
}

struct rm_watch *rm_watch(struct rm *rm, const char *name, rm_watch_fn fn, void *user)
{
    struct rm_watch *w = calloc(1, sizeof(*w));
    struct rm_watches *ws = &rm->watches;
    if (!w || !fn || (name && !(w->name = strdup(name))))
        goto fail;
    w->fn = fn;
    w->user = user;
    w->hash = name ? watch_hash(name) : 0;
    scrm_mutex_lock(&rm->watch_lock);
    if (!name) {
        chain_insert(&ws->pnp, w);
    } else {
        watches_move_some(ws);
        watches_maybe_grow(ws);
        if (!ws->cur.n) {
            scrm_mutex_unlock(&rm->watch_lock);
            goto fail;
        }
        chain_insert(&ws->cur.b[w->hash & (ws->cur.n - 1)], w);
        ws->count++;
    }
    scrm_mutex_unlock(&rm->watch_lock);
    return w;

fail:
    if (w)
        free(w->name);
    free(w);
    return NULL;
}

void rm_unwatch(struct rm *rm, struct rm_watch *w)
{
    if (!w)
        return;
    scrm_mutex_lock(&rm->watch_lock);
    chain_remove(w);
    if (w->name) {
        rm->watches.count--;
        watches_move_some(&rm->watches);
    }
    scrm_mutex_unlock(&rm->watch_lock);
    free(w->name);
    free(w);
}

static void notify_chain(struct rm_watch *w, const char *name, uint32_t hash, uint32_t counter)
{
    for (; w; w = w->next)
        if (w->hash == hash && strcmp(w->name, name) == 0)
            w->fn(w->user, name, counter);
}

void rm_notify(struct rm *rm, const char *name, uint32_t counter, bool pnp)
{
    struct rm_watches *ws = &rm->watches;
    scrm_mutex_lock(&rm->watch_lock);
    if (pnp) {
        for (struct rm_watch *w = ws->pnp; w; w = w->next)
            w->fn(w->user, NULL, counter);
    } else if (name) {
        uint32_t h = watch_hash(name);
        if (ws->cur.n)
            notify_chain(ws->cur.b[h & (ws->cur.n - 1)], name, h, counter);
        if (ws->old.n)
            notify_chain(ws->old.b[h & (ws->old.n - 1)], name, h, counter);
    }
    scrm_mutex_unlock(&rm->watch_lock);
}

void rm_watches_free(struct rm *rm)
{
    struct rm_watches *ws = &rm->watches;
    struct rm_watch_tab *tabs[2] = {&ws->cur, &ws->old};
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < tabs[t]->n; i++) {
            while (tabs[t]->b[i]) {
                struct rm_watch *w = tabs[t]->b[i];
                tabs[t]->b[i] = w->next;
                free(w->name);
                free(w);
            }
        }
        free(tabs[t]->b);
        tabs[t]->b = NULL;
        tabs[t]->n = 0;
    }
    while (ws->pnp) {
        struct rm_watch *w = ws->pnp;
        ws->pnp = w->next;
        free(w);
    }
}

void rm_notify_reader(struct rm_reader *r)
{
    scrm_mutex_lock(&r->lock);
    uint32_t counter = r->event_counter;
    scrm_mutex_unlock(&r->lock);
    rm_notify(r->rm, r->name, counter, false);
}
