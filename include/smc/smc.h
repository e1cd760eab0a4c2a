/*
 * libsmc for its callers (the resource manager, tools, tests): open reader devices by their uniform
 * device string and send them IOCTL_SMARTCARD_* requests, synchronously or asynchronously.
 *
 * Model (the Windows driver model, in user space):
 *   - a context holds the registered drivers and the devices (readers) they have reported;
 *   - a device is named by a uniform device string "driver:address[:options]", e.g. "sim:0" or
 *     "sim:0:vendor=ACME,card=t1";
 *   - a handle is an open device (CreateFile); closing it is the cleanup step: every request still
 *     pending on it completes with STATUS_CANCELLED before smc_close() returns;
 *   - a request is one IOCTL. Most complete at once; IS_PRESENT / IS_ABSENT may pend until the
 *     driver's event path completes them, or until they are cancelled.
 *
 * Thread safety: every function may be called from any thread. Completion callbacks run on the
 * thread that completes the request (the driver's event thread, the cancelling thread or the
 * closing thread), with no libsmc lock held, so a callback may issue the next IOCTL on the same
 * handle.
 */
#ifndef SMC_SMC_H
#define SMC_SMC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smc/defs.h"

struct smc_ctx;
struct smc_handle;
struct smc_driver_ops;

/* ---- Context, drivers, devices ----------------------------------------------------------------
 */

/* A new context without any driver: register the drivers with smc_register_driver() (scrm's
 * programs register every driver of the build through src/drivers/registry.h). */
SMC_API struct smc_ctx *smc_ctx_new(void);
/* Close every device (pending requests complete CANCELLED) and free the context. */
SMC_API void smc_ctx_free(struct smc_ctx *ctx);

/* Register another driver (its ops table must outlive the context). STATUS_INVALID_PARAMETER if a
 * driver of that name exists or a mandatory slot is NULL. */
SMC_API SMC_MUST_CHECK smc_status smc_register_driver(struct smc_ctx *ctx,
                                                      const struct smc_driver_ops *ops);

/* Device arrival and departure, as reported by drivers. */
enum smc_pnp_event {
    SMC_DEVICE_ARRIVED,
    SMC_DEVICE_LEFT,
    SMC_DEVICE_CHANGED, /* the device can serve again what it refused (e.g. an NFC radio back on) */
};
typedef void (*smc_pnp_fn)(void *user, enum smc_pnp_event ev, const char *device);
/* One listener per context; called with no libsmc lock held. */
SMC_API void smc_set_pnp_listener(struct smc_ctx *ctx, smc_pnp_fn fn, void *user);

/*
 * Create the device named by a uniform device string through its driver's open slot (a configured
 * reader). The device string is normalised to "driver:address" as its name; options after the
 * second
 * ':' configure it. Reports SMC_DEVICE_ARRIVED. Errors: STATUS_NO_SUCH_DEVICE (no such driver),
 * STATUS_INVALID_PARAMETER (bad options; the driver logs why), STATUS_DEVICE_BUSY (name exists).
 */
SMC_API SMC_MUST_CHECK smc_status smc_add_device(struct smc_ctx *ctx, const char *device);

/* The name smc_add_device gives the device string `device` ("driver:address"; a driver whose
 * addresses contain ':' decides where its address ends), NUL-terminated in out. false if the
 * string is malformed, names no registered driver, or the name does not fit `cap` bytes. */
SMC_API SMC_MUST_CHECK bool smc_device_name(struct smc_ctx *ctx, const char *device, char *out,
                                            size_t cap);

/* Ask every driver to enumerate what it can discover; each found device is added. Returns the
 * number of devices added. */
SMC_API SMC_MUST_CHECK int smc_discover(struct smc_ctx *ctx);

/* Remove a device (surprise removal): pending requests of every handle complete CANCELLED, further
 * IOCTLs on its handles get STATUS_DEVICE_NOT_CONNECTED. Reports SMC_DEVICE_LEFT. */
SMC_API SMC_MUST_CHECK smc_status smc_remove_device(struct smc_ctx *ctx, const char *device);

/* Names of the current devices: calls fn once per device, in arrival order. */
SMC_API void smc_list_devices(struct smc_ctx *ctx, void (*fn)(void *user, const char *device),
                              void *user);

/* ---- Handles and requests -------------------------------------------------------------------- */

/* Open a handle on a device ("sim:0"). STATUS_NO_SUCH_DEVICE if there is none; STATUS_ACCESS_DENIED
 * if the driver allows one handle only and it is taken. */
SMC_API SMC_MUST_CHECK smc_status smc_open(struct smc_ctx *ctx, const char *device,
                                           struct smc_handle **out);

/* Cleanup and close: every request pending on the handle completes with STATUS_CANCELLED (its
 * callback runs before this returns), then the handle is freed. */
SMC_API void smc_close(struct smc_handle *h);

/* The device name a handle is open on. */
SMC_API const char *smc_handle_device(const struct smc_handle *h);

/* Does the driver of this handle's device declare `code` privileged (ioctl_privileged in
 * smc/driver.h)? false when the driver declares nothing. */
SMC_API SMC_MUST_CHECK bool smc_ioctl_privileged(const struct smc_handle *h, uint32_t code);

/* The name the driver of this handle's device gives a vendor IOCTL or pcsc-lite control code
 * (ioctl_vendor_name in smc/driver.h), or NULL. */
SMC_API const char *smc_ioctl_vendor_name(const struct smc_handle *h, uint32_t code);

/*
 * Synchronous IOCTL. `out` and `in` may be the same memory (METHOD_BUFFERED). *returned gets the
 * number of bytes written to out (for STATUS_BUFFER_TOO_SMALL on GET_ATTRIBUTE: the size needed).
 * A request that pends (IS_PRESENT / IS_ABSENT) blocks until it completes or is cancelled.
 */
SMC_API SMC_MUST_CHECK smc_status smc_ioctl(struct smc_handle *h, uint32_t code, const void *in,
                                            size_t in_len, void *out, size_t out_len,
                                            size_t *returned);

/* Called exactly once when a pending request completes. */
typedef void (*smc_completion_fn)(void *user, smc_status status, size_t returned);

/*
 * Asynchronous IOCTL. If the request completes at once its final status is returned and `done` is
 * NOT called. If it returns STATUS_PENDING, `done` is called exactly once later, and *req_id (if
 * not NULL) identifies the request for smc_cancel(). `in`/`out` must stay valid until completion.
 */
SMC_API SMC_MUST_CHECK smc_status smc_ioctl_async(struct smc_handle *h, uint32_t code,
                                                  const void *in, size_t in_len, void *out,
                                                  size_t out_len, smc_completion_fn done,
                                                  void *user, uint64_t *req_id);

/* Cancel one pending request: it completes with STATUS_CANCELLED (its callback runs before this
 * returns). Returns true if this call cancelled it, false if it had already completed. */
SMC_API SMC_MUST_CHECK bool smc_cancel(struct smc_handle *h, uint64_t req_id);

/* Cancel everything pending on the handle (CancelIo) without closing it. Returns how many. */
SMC_API SMC_MUST_CHECK int smc_cancel_all(struct smc_handle *h);

/* Output of IOCTL_SMARTCARD_GET_PERF_CNTR: five little-endian u32 counters, in this order:
 * transmissions, APDU bytes sent, response bytes received, failed transmissions, total
 * transmission time in µs. */
#define SMC_PERF_SIZE 20u

/* Helpers for the common DWORD-in / DWORD-out requests. */
SMC_API SMC_MUST_CHECK smc_status smc_get_state(struct smc_handle *h, uint32_t *state);
SMC_API SMC_MUST_CHECK smc_status smc_get_attr_dword(struct smc_handle *h, uint32_t attr,
                                                     uint32_t *value);
SMC_API SMC_MUST_CHECK smc_status smc_power(struct smc_handle *h, uint32_t command, uint8_t *atr,
                                            size_t atr_cap, size_t *atr_len);
SMC_API SMC_MUST_CHECK smc_status smc_set_protocol(struct smc_handle *h, uint32_t mask,
                                                   uint32_t *selected);

#endif
