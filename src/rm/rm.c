/*
 * Lifetime of the resource manager: configuration defaults, creation (threads, PnP listener,
 * devices already in the context), configured readers, discovery, the trace switch, and the
 * ordered shutdown of rm_free():
 *
 *   1. remove the PnP listener and set `closing` (new arrivals and waits stop), then wait for
 *      the start-ups already under way (an arrival job, rm_add_reader) to settle: they write
 *      their reader's handle and may start its monitor, which step 2 must see;
 *   2. stop every monitor: no new tracking request is posted, pending ones are cancelled and their
 *      completions queue the monitor jobs, which end;
 *   3. stop the timer thread, then drain and join the pool;
 *   4. free the connections, the device records and every reader object (closing the handles).
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "rm/internal.h"

void rm_config_init(struct rm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->power_down_ms = 5000;
    cfg->workers = 2;
    cfg->trace = false;
    cfg->defect_threshold = 3;
    cfg->retry_ms = 100;
    cfg->power_on_insert = true;
    cfg->watchdog_ms = 150000;
}

static void collect_device(void *user, const char *device)
{
    char ***list = user;
    size_t n = 0;
    while (*list && (*list)[n])
        n++;
    char **grown = realloc(*list, (n + 2) * sizeof(**list));
    if (!grown)
        return;
    grown[n] = strdup(device);
    grown[n + 1] = NULL;
    *list = grown;
}

/* Start every device of the context that is not registered yet. Returns how many succeeded. */
static int start_known_devices(struct rm *rm)
{
    char **list = NULL;
    smc_list_devices(rm->ctx, collect_device, &list);
    int ok = 0;
    for (size_t i = 0; list && list[i]; i++) {
        scrm_mutex_lock(&rm->lock);
        bool known = false;
        for (struct rm_dev *d = rm->devs; d && !known; d = d->next)
            known = strcmp(d->name, list[i]) == 0;
        scrm_mutex_unlock(&rm->lock);
        if (!known && rm_reader_start(rm, list[i]) == SCARD_S_SUCCESS)
            ok++;
        free(list[i]);
    }
    free(list);
    return ok;
}

struct rm *rm_new(const struct rm_config *cfg, struct smc_ctx *ctx)
{
    struct rm *rm = calloc(1, sizeof(*rm));
    if (!rm)
        return NULL;
    if (cfg)
        rm->cfg = *cfg;
    else
        rm_config_init(&rm->cfg);
    if (!rm->cfg.defect_threshold)
        rm->cfg.defect_threshold = 1;
    rm->ctx = ctx;
    atomic_init(&rm->closing, false);
    atomic_init(&rm->pd_manual, false);
    scrm_mutex_init(&rm->lock);
    if (scrm_cond_init(&rm->dev_cond) != 0) {
        scrm_mutex_destroy(&rm->lock);
        free(rm);
        return NULL;
    }
    scrm_mutex_init(&rm->watch_lock);
    scrm_mutex_init(&rm->trace_lock);
    if (rm->cfg.trace)
        scrm_log_set_level(SCRM_LOG_CAT_ioctl, SCRM_LOG_info);
    int rc = rm_timers_start(&rm->timers, rm);
    if (rc == 0)
        rc = rm_pool_start(&rm->pool, rm->cfg.workers);
    if (rc == 0)
        rc = rm_watchdog_start(&rm->watchdog, rm->cfg.watchdog_ms);
    if (rc < 0) {
        rm_free(rm);
        return NULL;
    }
    smc_set_pnp_listener(ctx, rm_pnp_listener, rm);
    start_known_devices(rm);
    return rm;
}

void rm_free(struct rm *rm)
{
    if (!rm)
        return;
    smc_set_pnp_listener(rm->ctx, NULL, NULL);
    atomic_store(&rm->closing, true);

    scrm_mutex_lock(&rm->lock);
    for (;;) { /* start-ups under way settle (rm_reader_start broadcasts dev_cond) */
        bool starting = false;
        for (struct rm_dev *d = rm->devs; d && !starting; d = d->next)
            starting = d->st == RM_DEV_STARTING;
        if (!starting)
            break;
        scrm_cond_wait(&rm->dev_cond, &rm->lock);
    }
    for (struct rm_reader *r = rm->all; r; r = r->all_next)
        rm_reader_ref_locked(r); /* keep every object until the end */
    struct rm_reader *all = rm->all;
    scrm_mutex_unlock(&rm->lock);
    for (struct rm_reader *r = all; r; r = r->all_next) {
        scrm_mutex_lock(&r->lock);
        scrm_cond_broadcast(&r->cond);
        scrm_mutex_unlock(&r->lock);
        if (r->h)
            rm_monitor_stop(r);
    }
    rm_timers_stop(&rm->timers);
    if (rm->pool.threads)
        rm_pool_stop(&rm->pool);
    rm_watchdog_stop(&rm->watchdog);

    rm_conns_free_all(rm);
    while (rm->devs) {
        struct rm_dev *d = rm->devs;
        rm->devs = d->next;
        free(d);
    }
    while (rm->all) {
        struct rm_reader *r = rm->all;
        rm->all = r->all_next;
        rm_reader_destroy(r);
    }
    rm_watches_free(rm);
    rm_timers_fini(&rm->timers);
    rm_watchdog_fini(&rm->watchdog);
    scrm_mutex_destroy(&rm->trace_lock);
    scrm_mutex_destroy(&rm->watch_lock);
    scrm_cond_destroy(&rm->dev_cond);
    scrm_mutex_destroy(&rm->lock);
    free(rm);
}

scard_rc rm_add_reader(struct rm *rm, const char *device)
{
    char name[RM_DEVICE_NAME_MAX];
    if (!device)
        return SCARD_E_INVALID_VALUE;
    /* libsmc names the device (the driver decides where its address ends). A string it cannot
     * name still goes to smc_add_device, which logs why it is refused. */
    bool named = smc_device_name(rm->ctx, device, name, sizeof(name));
    smc_status st = smc_add_device(rm->ctx, device);
    if (st == STATUS_SUCCESS && !named) {
        char longname[512];
        log_error(rm, "reader %s: device name too long", device);
        smc_status rs = smc_device_name(rm->ctx, device, longname, sizeof(longname))
                            ? smc_remove_device(rm->ctx, longname)
                            : STATUS_BUFFER_TOO_SMALL;
        if (rs != STATUS_SUCCESS)
            log_error(rm, "reader %s: the device stays in libsmc: %s", device, smc_status_name(rs));
        return SCARD_E_INVALID_VALUE;
    }
    if (st == STATUS_DEVICE_BUSY)
        log_error(rm, "reader %s: the device exists already", device);
    if (st != STATUS_SUCCESS)
        return rm_scard_from_status(st, RM_OP_ADD);
    return rm_reader_start(rm, name);
}

scard_rc rm_remove_reader(struct rm *rm, const char *device)
{
    char name[RM_DEVICE_NAME_MAX];
    if (!device || !strchr(device, ':'))
        return SCARD_E_INVALID_VALUE;
    if (!smc_device_name(rm->ctx, device, name, sizeof(name)))
        return SCARD_E_UNKNOWN_READER; /* no such driver, so no such device */
    /* libsmc reports SMC_DEVICE_LEFT to rm_pnp_listener on this thread: the reader is
     * unregistered, its waiters woken and the PnP watchers notified before this returns. */
    smc_status st = smc_remove_device(rm->ctx, name);
    if (st == STATUS_NO_SUCH_DEVICE)
        return SCARD_E_UNKNOWN_READER;
    return st == STATUS_SUCCESS ? SCARD_S_SUCCESS : SCARD_E_READER_UNAVAILABLE;
}

int rm_discover(struct rm *rm)
{
    int added = smc_discover(rm->ctx);
    log_debug(rm, "discovery: %d new device(s) in libsmc", added);
    return start_known_devices(rm);
}

void rm_set_trace(struct rm *rm, rm_trace_fn fn, void *user)
{
    scrm_mutex_lock(&rm->trace_lock);
    rm->trace_fn = fn;
    rm->trace_user = user;
    atomic_store(&rm->tracing, fn != NULL);
    scrm_mutex_unlock(&rm->trace_lock);
}
