/*
 * Context, devices and handles: driver registration, device creation from uniform device strings
 * ("sim:0:vendor=ACME"), discovery, removal, open/close with cleanup, cancellation, and the
 * synchronous IOCTL built on the asynchronous path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "smc/internal.h"

struct smc_ctx *smc_ctx_new(void)
{
    struct smc_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    if (scrm_cond_init(&ctx->reaper_cond) != 0) {
        free(ctx);
        return NULL;
    }
    scrm_mutex_init(&ctx->lock);
    return ctx;
}

static void reaper_stop(struct smc_ctx *ctx);

void smc_ctx_free(struct smc_ctx *ctx)
{
    if (!ctx)
        return;
    reaper_stop(ctx);
    for (;;) {
        scrm_mutex_lock(&ctx->lock);
        struct smc_reader *r = ctx->devices;
        char *name = r ? strdup(r->device) : NULL;
        scrm_mutex_unlock(&ctx->lock);
        if (!r)
            break;
        if (!name || smc_remove_device(ctx, name) != STATUS_SUCCESS) {
            free(name);
            break; /* out of memory: leak the rest rather than loop */
        }
        free(name);
    }
    free(ctx->drivers);
    scrm_cond_destroy(&ctx->reaper_cond);
    scrm_mutex_destroy(&ctx->lock);
    free(ctx);
}

smc_status smc_register_driver(struct smc_ctx *ctx, const struct smc_driver_ops *ops)
{
    if (!ops || !ops->name || !ops->open || !ops->close || !ops->power || !ops->transmit ||
        !ops->set_protocol || !ops->card_tracking)
        return STATUS_INVALID_PARAMETER;
    scrm_mutex_lock(&ctx->lock);
    smc_status st = STATUS_SUCCESS;
    for (size_t i = 0; i < ctx->n_drivers; i++)
        if (strcmp(ctx->drivers[i]->name, ops->name) == 0)
            st = STATUS_INVALID_PARAMETER;
    if (st == STATUS_SUCCESS) {
        /* an array of pointers to ops tables: the element is a pointer on purpose */
        const struct smc_driver_ops **d =
            realloc(ctx->drivers, (ctx->n_drivers + 1) *
                                      sizeof(*ctx->drivers)); // NOLINT(bugprone-sizeof-expression)
        if (!d) {
            st = STATUS_INSUFFICIENT_RESOURCES;
        } else {
            d[ctx->n_drivers++] = ops;
            ctx->drivers = d;
        }
    }
    scrm_mutex_unlock(&ctx->lock);
    return st;
}

void smc_set_pnp_listener(struct smc_ctx *ctx, smc_pnp_fn fn, void *user)
{
    scrm_mutex_lock(&ctx->lock);
    ctx->pnp = fn;
    ctx->pnp_user = user;
    scrm_mutex_unlock(&ctx->lock);
}

void smc__notify(struct smc_ctx *ctx, enum smc_pnp_event ev, const char *device)
{
    scrm_mutex_lock(&ctx->lock);
    smc_pnp_fn fn = ctx->pnp;
    void *user = ctx->pnp_user;
    scrm_mutex_unlock(&ctx->lock);
    if (fn)
        fn(user, ev, device);
}

static const struct smc_driver_ops *find_driver(struct smc_ctx *ctx, const char *name, size_t n)
{
    const struct smc_driver_ops *ops = NULL;
    scrm_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < ctx->n_drivers && !ops; i++)
        if (strlen(ctx->drivers[i]->name) == n && strncmp(ctx->drivers[i]->name, name, n) == 0)
            ops = ctx->drivers[i];
    scrm_mutex_unlock(&ctx->lock);
    return ops;
}

/* The names of the registered drivers, ", "-separated, into buf (truncated to fit). */
static void driver_names(struct smc_ctx *ctx, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    scrm_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < ctx->n_drivers && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", ctx->drivers[i]->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    scrm_mutex_unlock(&ctx->lock);
}

/* Look up a device by name; ctx->lock held. */
static struct smc_reader *find_device_locked(struct smc_ctx *ctx, const char *name)
    SCRM_REQUIRES(ctx->lock)
{
    scrm_mutex_assert_held(&ctx->lock);
    for (struct smc_reader *r = ctx->devices; r; r = r->next)
        if (strcmp(r->device, name) == 0)
            return r;
    return NULL;
}

static struct smc_reader *reader_new(struct smc_ctx *ctx, const struct smc_driver_ops *ops,
                                     const char *name, size_t name_len)
{
    struct smc_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->device = strndup(name, name_len);
    r->xfer_buf = malloc(SMC_XFER_BUF);
    if (!r->device || !r->xfer_buf) {
        free(r->device);
        free(r->xfer_buf);
        free(r);
        return NULL;
    }
    r->ctx = ctx;
    r->ops = ops;
    r->state = SCARD_UNKNOWN;
    r->next_req_id = 1;
    atomic_init(&r->refs, 1);
    scrm_mutex_init(&r->op_lock);
    scrm_mutex_init(&r->lock);
    return r;
}

/* Split "driver:address[:options]" into its parts. Returns false if malformed. */
static bool split_device(const char *device, size_t *drv_len, const char **addr, size_t *addr_len,
                         const char **options)
{
    const char *c1 = strchr(device, ':');
    if (!c1 || c1 == device || c1[1] == '\0')
        return false;
    *drv_len = (size_t)(c1 - device);
    *addr = c1 + 1;
    const char *c2 = strchr(*addr, ':');
    *addr_len = c2 ? (size_t)(c2 - *addr) : strlen(*addr);
    *options = c2 ? c2 + 1 : "";
    return *addr_len > 0;
}

/* For a driver whose address contains ':' (host:port): the options start after the last ':'
 * before the first '=', or there are none. */
static void split_colon_address(const char *addr, size_t *addr_len, const char **options)
{
    const char *eq = strchr(addr, '=');
    const char *end = eq ? eq : addr + strlen(addr);
    const char *c = NULL;
    for (const char *p = addr; p < end; p++)
        if (*p == ':')
            c = p;
    if (!eq || !c) {
        *addr_len = strlen(addr);
        *options = "";
        return;
    }
    *addr_len = (size_t)(c - addr);
    *options = c + 1;
}

bool smc_device_name(struct smc_ctx *ctx, const char *device, char *out, size_t cap)
{
    size_t drv_len, addr_len;
    const char *addr, *options;
    if (!device || !split_device(device, &drv_len, &addr, &addr_len, &options))
        return false;
    const struct smc_driver_ops *ops = find_driver(ctx, device, drv_len);
    if (!ops)
        return false;
    if (ops->address_colons)
        split_colon_address(addr, &addr_len, &options);
    size_t n = drv_len + 1 + addr_len;
    if (n >= cap)
        return false;
    memcpy(out, device, n);
    out[n] = '\0';
    return true;
}

smc_status smc_add_device(struct smc_ctx *ctx, const char *device)
{
    size_t drv_len, addr_len;
    const char *addr, *options;
    if (!device || !split_device(device, &drv_len, &addr, &addr_len, &options)) {
        log_error(smc, "bad device string '%s' (expected driver:address[:options])",
                  device ? device : "(null)");
        return STATUS_INVALID_PARAMETER;
    }
    const struct smc_driver_ops *ops = find_driver(ctx, device, drv_len);
    if (!ops) {
        char names[256];
        driver_names(ctx, names, sizeof(names));
        log_error(smc, "device '%s': no driver '%.*s' (drivers: %s)", device, (int)drv_len, device,
                  names[0] ? names : "none");
        return STATUS_NO_SUCH_DEVICE;
    }
    if (ops->address_colons)
        split_colon_address(addr, &addr_len, &options);
    struct smc_reader *r = reader_new(ctx, ops, device, drv_len + 1 + addr_len);
    if (!r)
        return STATUS_INSUFFICIENT_RESOURCES;

    smc_status st = STATUS_DEVICE_BUSY;
    scrm_mutex_lock(&ctx->lock);
    bool exists = find_device_locked(ctx, r->device) != NULL;
    scrm_mutex_unlock(&ctx->lock);
    if (exists) {
        log_error(smc, "device '%s' exists already", r->device);
        goto fail;
    }

    char *address = strndup(addr, addr_len);
    st = address ? ops->open(r, address, options) : STATUS_INSUFFICIENT_RESOURCES;
    free(address);
    if (st != STATUS_SUCCESS) {
        log_error(smc, "device '%s': driver %s refused to open it: %s", device, ops->name,
                  smc_status_name(st));
        goto fail;
    }

    /* Another thread may have added the same name while the driver opened this one. */
    scrm_mutex_lock(&ctx->lock);
    exists = find_device_locked(ctx, r->device) != NULL;
    if (!exists) {
        struct smc_reader **pp = &ctx->devices;
        while (*pp)
            pp = &(*pp)->next;
        *pp = r;
    }
    scrm_mutex_unlock(&ctx->lock);
    if (exists) {
        log_error(smc, "device '%s' exists already", r->device);
        scrm_mutex_lock(&r->op_lock);
        ops->close(r);
        scrm_mutex_unlock(&r->op_lock);
        st = STATUS_DEVICE_BUSY;
        goto fail;
    }
    log_info(smc, "device %s arrived (%s %s %u)", r->device, r->vendor.vendor_name,
             r->vendor.ifd_type, r->vendor.unit);
    /* The siblings the driver asked for during open: taken now, the reader is public. */
    char **siblings = r->siblings;
    size_t n_siblings = r->n_siblings;
    r->siblings = NULL;
    r->n_siblings = 0;
    smc__notify(ctx, SMC_DEVICE_ARRIVED, r->device);
    for (size_t i = 0; i < n_siblings; i++) {
        if (smc_add_device(ctx, siblings[i]) != STATUS_SUCCESS)
            log_error(smc, "device %s: its sibling %s could not be added", device, siblings[i]);
        free(siblings[i]);
    }
    free(siblings);
    return STATUS_SUCCESS;

fail: /* the reader was never public: only this function holds it */
    smc__reader_unref(r);
    return st;
}

static void discover_add(struct smc_ctx *ctx, const char *device)
{
    SCRM_IGNORE(smc_add_device(ctx, device), "smc_add_device logs why it refuses a device");
}

int smc_discover(struct smc_ctx *ctx)
{
    int before = 0, after = 0;
    scrm_mutex_lock(&ctx->lock);
    for (struct smc_reader *r = ctx->devices; r; r = r->next)
        before++;
    size_t n = ctx->n_drivers;
    scrm_mutex_unlock(&ctx->lock);
    for (size_t i = 0; i < n; i++) {
        scrm_mutex_lock(&ctx->lock);
        const struct smc_driver_ops *ops = ctx->drivers[i];
        scrm_mutex_unlock(&ctx->lock);
        if (ops->enumerate)
            ops->enumerate(ctx, discover_add);
    }
    scrm_mutex_lock(&ctx->lock);
    for (struct smc_reader *r = ctx->devices; r; r = r->next)
        after++;
    scrm_mutex_unlock(&ctx->lock);
    return after - before;
}

/* Unlink every pending request of every handle of r; r->lock held. Returns them as a list. */
static struct smc_request *take_all_pending_locked(struct smc_reader *r) SCRM_REQUIRES(r->lock)
{
    scrm_mutex_assert_held(&r->lock);
    struct smc_request *all = NULL;
    for (struct smc_handle *h = r->handles; h; h = h->next) {
        while (h->pending) {
            struct smc_request *req = h->pending;
            smc__unlink_locked(req);
            req->next = all;
            all = req;
        }
    }
    return all;
}

static void finish_list(struct smc_request *list, smc_status st)
{
    while (list) {
        struct smc_request *next = list->next;
        smc__finish(list, st, 0);
        list = next;
    }
}

/* Remove r, already unlinked from ctx->devices (the caller owns the context's reference). */
static void remove_unlinked(struct smc_ctx *ctx, struct smc_reader *r)
{
    scrm_mutex_lock(&r->op_lock);
    scrm_mutex_lock(&r->lock);
    r->gone = true;
    struct smc_request *pending = take_all_pending_locked(r);
    scrm_mutex_unlock(&r->lock);
    r->ops->close(r);
    scrm_mutex_unlock(&r->op_lock);
    finish_list(pending, STATUS_CANCELLED);

    log_info(smc, "device %s left", r->device);
    smc__notify(ctx, SMC_DEVICE_LEFT, r->device);
    smc__reader_unref(r);
}

smc_status smc_remove_device(struct smc_ctx *ctx, const char *device)
{
    scrm_mutex_lock(&ctx->lock);
    struct smc_reader **pp = &ctx->devices;
    while (*pp && strcmp((*pp)->device, device) != 0)
        pp = &(*pp)->next;
    struct smc_reader *r = *pp;
    if (r)
        *pp = r->next;
    scrm_mutex_unlock(&ctx->lock);
    if (!r)
        return STATUS_NO_SUCH_DEVICE;
    remove_unlinked(ctx, r);
    return STATUS_SUCCESS;
}

/* ---- the reaper: removal of devices whose hardware is gone (smc_reader_gone) ---- */

static void *reaper_main(void *arg)
{
    struct smc_ctx *ctx = arg;
    scrm_mutex_lock(&ctx->lock);
    for (;;) {
        while (!ctx->gone_queue && !ctx->reaper_stop)
            scrm_cond_wait(&ctx->reaper_cond, &ctx->lock);
        if (ctx->reaper_stop)
            break;
        struct smc_reader *r = ctx->gone_queue;
        ctx->gone_queue = r->gone_next;
        /* Still a device of the context (not removed meanwhile)? Then unlink it here. */
        struct smc_reader **pp = &ctx->devices;
        while (*pp && *pp != r)
            pp = &(*pp)->next;
        bool listed = *pp != NULL;
        if (listed)
            *pp = r->next;
        scrm_mutex_unlock(&ctx->lock);
        if (listed) {
            log_info(smc, "device %s: the hardware is gone; removing it", r->device);
            remove_unlinked(ctx, r); /* drops the context's reference */
        }
        smc__reader_unref(r); /* the queue's reference */
        scrm_mutex_lock(&ctx->lock);
    }
    scrm_mutex_unlock(&ctx->lock);
    return NULL;
}

void smc_reader_gone(struct smc_reader *r)
{
    struct smc_ctx *ctx = r->ctx;
    scrm_mutex_lock(&ctx->lock);
    if (!r->gone_queued && !ctx->reaper_stop) {
        if (!ctx->reaper_started && pthread_create(&ctx->reaper, NULL, reaper_main, ctx) == 0)
            ctx->reaper_started = true;
        if (ctx->reaper_started) {
            r->gone_queued = true;
            smc__reader_ref(r);
            struct smc_reader **pp = &ctx->gone_queue;
            while (*pp)
                pp = &(*pp)->gone_next;
            r->gone_next = NULL;
            *pp = r;
            scrm_cond_signal(&ctx->reaper_cond);
        } else {
            log_error(smc, "device %s: cannot start the reaper thread; it stays", r->device);
        }
    }
    scrm_mutex_unlock(&ctx->lock);
}

/* Stop the reaper (what it has not removed yet, smc_ctx_free removes). */
static void reaper_stop(struct smc_ctx *ctx)
{
    scrm_mutex_lock(&ctx->lock);
    ctx->reaper_stop = true;
    bool started = ctx->reaper_started;
    scrm_cond_signal(&ctx->reaper_cond);
    scrm_mutex_unlock(&ctx->lock);
    if (started)
        pthread_join(ctx->reaper, NULL);
    scrm_mutex_lock(&ctx->lock);
    struct smc_reader *q = ctx->gone_queue;
    ctx->gone_queue = NULL;
    scrm_mutex_unlock(&ctx->lock);
    while (q) {
        struct smc_reader *next = q->gone_next;
        smc__reader_unref(q);
        q = next;
    }
}

void smc_list_devices(struct smc_ctx *ctx, void (*fn)(void *user, const char *device), void *user)
{
    /* Copy the names first so fn runs without the lock (it may add or remove devices). */
    scrm_mutex_lock(&ctx->lock);
    size_t n = 0;
    for (struct smc_reader *r = ctx->devices; r; r = r->next)
        n++;
    char **names = calloc(n ? n : 1, sizeof(*names));
    size_t i = 0;
    for (struct smc_reader *r = ctx->devices; r && names; r = r->next)
        names[i++] = strdup(r->device);
    scrm_mutex_unlock(&ctx->lock);
    if (!names)
        return;
    for (i = 0; i < n; i++) {
        if (names[i])
            fn(user, names[i]);
        free(names[i]);
    }
    free(names);
}

smc_status smc_open(struct smc_ctx *ctx, const char *device, struct smc_handle **out)
{
    *out = NULL;
    scrm_mutex_lock(&ctx->lock);
    struct smc_reader *r = find_device_locked(ctx, device);
    if (r)
        smc__reader_ref(r);
    scrm_mutex_unlock(&ctx->lock);
    if (!r)
        return STATUS_NO_SUCH_DEVICE;

    smc_status st = STATUS_INSUFFICIENT_RESOURCES;
    struct smc_handle *h = calloc(1, sizeof(*h));
    if (!h)
        goto fail;
    h->r = r;
    st = STATUS_SUCCESS;
    scrm_mutex_lock(&r->lock);
    if (r->gone)
        st = STATUS_NO_SUCH_DEVICE;
    else if (r->ops->exclusive && r->n_handles > 0)
        st = STATUS_ACCESS_DENIED;
    if (st == STATUS_SUCCESS) {
        h->next = r->handles;
        r->handles = h;
        r->n_handles++;
    }
    scrm_mutex_unlock(&r->lock);
    if (st != STATUS_SUCCESS)
        goto fail;
    *out = h;
    return STATUS_SUCCESS;

fail:
    free(h);
    smc__reader_unref(r);
    return st;
}

void smc_close(struct smc_handle *h)
{
    if (!h)
        return;
    struct smc_reader *r = h->r;
    /* From here no request can be added to the handle (a completion callback running on another
     * thread may try), so after the cancellation nothing is left pending on it. */
    scrm_mutex_lock(&r->lock);
    h->closing = true;
    scrm_mutex_unlock(&r->lock);
    SCRM_IGNORE(smc_cancel_all(h), "how many were pending does not matter to a close");
    if (r->ops->handle_closed) {
        /* Under the op lock, where the device cannot be closed under the driver's feet, and
         * while the handle still counts: an exclusive device cannot be re-opened meanwhile. */
        scrm_mutex_lock(&r->op_lock);
        smc__slot_enter();
        scrm_mutex_lock(&r->lock);
        bool gone = r->gone;
        scrm_mutex_unlock(&r->lock);
        if (!gone)
            r->ops->handle_closed(r);
        scrm_mutex_unlock(&r->op_lock);
        smc__slot_leave();
    }
    scrm_mutex_lock(&r->lock);
    for (struct smc_handle **pp = &r->handles; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            r->n_handles--;
            break;
        }
    }
    scrm_mutex_unlock(&r->lock);
    free(h);
    smc__reader_unref(r);
}

const char *smc_handle_device(const struct smc_handle *h)
{
    return h->r->device;
}

smc_status smc_put_names(struct smc_io *io, const char *(*name)(size_t i))
{
    size_t need = 0;
    for (size_t i = 0; name(i); i++)
        need += strlen(name(i)) + 1;
    io->info = need;
    if (!io->out || io->out_len < need)
        return STATUS_BUFFER_TOO_SMALL;
    need = 0;
    for (size_t i = 0; name(i); i++) {
        size_t l = strlen(name(i)) + 1;
        memcpy(io->out + need, name(i), l);
        need += l;
    }
    return STATUS_SUCCESS;
}

bool smc_ioctl_privileged(const struct smc_handle *h, uint32_t code)
{
    return h->r->ops->ioctl_privileged && h->r->ops->ioctl_privileged(code);
}

const char *smc_ioctl_vendor_name(const struct smc_handle *h, uint32_t code)
{
    return h->r->ops->ioctl_vendor_name ? h->r->ops->ioctl_vendor_name(code) : NULL;
}

bool smc_cancel(struct smc_handle *h, uint64_t req_id)
{
    struct smc_reader *r = h->r;
    scrm_mutex_lock(&r->lock);
    struct smc_request *req = h->pending;
    while (req && req->id != req_id)
        req = req->next;
    bool busy = req && req == r->busy;
    if (req)
        smc__unlink_locked(req);
    scrm_mutex_unlock(&r->lock);
    /* The driver ends its busy state first, so that a completion callback posting a new request
     * does not find the reader busy. */
    if (busy && r->ops->cancel_pending)
        r->ops->cancel_pending(r);
    if (req)
        smc__finish(req, STATUS_CANCELLED, 0);
    return req != NULL;
}

int smc_cancel_all(struct smc_handle *h)
{
    struct smc_reader *r = h->r;
    struct smc_request *all = NULL;
    int n = 0;
    bool busy = false;
    scrm_mutex_lock(&r->lock);
    while (h->pending) {
        struct smc_request *req = h->pending;
        busy = busy || req == r->busy;
        smc__unlink_locked(req);
        req->next = all;
        all = req;
        n++;
    }
    scrm_mutex_unlock(&r->lock);
    if (busy && r->ops->cancel_pending)
        r->ops->cancel_pending(r); /* first, as in smc_cancel */
    finish_list(all, STATUS_CANCELLED);
    return n;
}

smc_status smc_ioctl_async(struct smc_handle *h, uint32_t code, const void *in, size_t in_len,
                           void *out, size_t out_len, smc_completion_fn done, void *user,
                           uint64_t *req_id)
{
    struct smc_io io = {
        .code = code, .in = in, .in_len = in_len, .out = out, .out_len = out_len, .info = 0};
    if (req_id)
        *req_id = 0;
    if (!h)
        return STATUS_INVALID_PARAMETER;
    return smc__dispatch(h, &io, done, user, req_id);
}

/* The synchronous call waits on this for a request that pended. */
struct waiter {
    scrm_mutex m;
    scrm_cond c;
    bool done;
    smc_status status;
    size_t info;
};

static void wake(void *user, smc_status status, size_t info)
{
    struct waiter *w = user;
    scrm_mutex_lock(&w->m);
    w->done = true;
    w->status = status;
    w->info = info;
    scrm_cond_signal(&w->c);
    scrm_mutex_unlock(&w->m);
}

smc_status smc_ioctl(struct smc_handle *h, uint32_t code, const void *in, size_t in_len, void *out,
                     size_t out_len, size_t *returned)
{
    struct waiter w = {.done = false};
    if (scrm_cond_init(&w.c) != 0) {
        if (returned)
            *returned = 0;
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    scrm_mutex_init(&w.m);
    struct smc_io io = {
        .code = code, .in = in, .in_len = in_len, .out = out, .out_len = out_len, .info = 0};
    smc_status st = h ? smc__dispatch(h, &io, wake, &w, NULL) : STATUS_INVALID_PARAMETER;
    size_t info = io.info;
    if (st == STATUS_PENDING) {
        scrm_mutex_lock(&w.m);
        while (!w.done)
            scrm_cond_wait(&w.c, &w.m);
        scrm_mutex_unlock(&w.m);
        st = w.status;
        info = w.info;
    }
    scrm_cond_destroy(&w.c);
    scrm_mutex_destroy(&w.m);
    if (returned)
        *returned = info;
    return st;
}

smc_status smc_get_state(struct smc_handle *h, uint32_t *state)
{
    uint8_t b[4] = {0};
    size_t n = 0;
    smc_status st = smc_ioctl(h, IOCTL_SMARTCARD_GET_STATE, NULL, 0, b, sizeof(b), &n);
    *state = st == STATUS_SUCCESS ? smc__get_u32(b) : SCARD_UNKNOWN;
    return st;
}

smc_status smc_get_attr_dword(struct smc_handle *h, uint32_t attr, uint32_t *value)
{
    uint8_t in[4], out[4] = {0};
    size_t n = 0;
    smc__put_u32(in, attr);
    smc_status st = smc_ioctl(h, IOCTL_SMARTCARD_GET_ATTRIBUTE, in, 4, out, 4, &n);
    if (st == STATUS_SUCCESS && n != 4)
        st = STATUS_INVALID_DEVICE_REQUEST;
    *value = st == STATUS_SUCCESS ? smc__get_u32(out) : 0;
    return st;
}

smc_status smc_power(struct smc_handle *h, uint32_t command, uint8_t *atr, size_t atr_cap,
                     size_t *atr_len)
{
    uint8_t in[4];
    size_t n = 0;
    smc__put_u32(in, command);
    smc_status st = smc_ioctl(h, IOCTL_SMARTCARD_POWER, in, 4, atr, atr ? atr_cap : 0, &n);
    if (atr_len)
        *atr_len = n;
    return st;
}

smc_status smc_set_protocol(struct smc_handle *h, uint32_t mask, uint32_t *selected)
{
    uint8_t in[4], out[4] = {0};
    size_t n = 0;
    smc__put_u32(in, mask);
    smc_status st = smc_ioctl(h, IOCTL_SMARTCARD_SET_PROTOCOL, in, 4, out, 4, &n);
    if (selected)
        *selected = st == STATUS_SUCCESS ? smc__get_u32(out) : SCARD_PROTOCOL_UNDEFINED;
    return st;
}
