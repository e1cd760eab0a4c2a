/*
 * The reader drivers compiled into this build. libsmc knows no driver: a program (scrmd,
 * scrm-demo, the tests and benchmarks) registers the drivers it wants in its context, usually all
 * of them with scrm_drivers_register().
 *
 * SCRM_DRIVERS is the one list: one line per driver, X(ops, kind), where `ops` is the driver's
 * `const struct smc_driver_ops` (whose `name` is the driver name of device strings) and `kind` is
 * ALWAYS (built in every configuration) or SIMULATOR (built only with the meson option
 * simulators=true, the default). Adding a driver = its meson subdirectory in
 * src/drivers/meson.build + one line here.
 */
#ifndef SCRM_DRIVERS_REGISTRY_H
#define SCRM_DRIVERS_REGISTRY_H

#include <stddef.h>

#include "smc/smc.h"

/* clang-format off */
#define SCRM_DRIVERS(X)                 \
    X(smc_sim_driver, SIMULATOR)        \
    X(smc_nfc_driver, SIMULATOR)        \
    X(smc_ifd_driver, ALWAYS)          \
    X(smc_vpcd_driver, ALWAYS)
/* clang-format on */

/* Number of drivers in this build. */
size_t scrm_drivers_count(void);

/* The i-th driver of this build (i < scrm_drivers_count()), NULL past the end. */
const struct smc_driver_ops *scrm_drivers_get(size_t i);

/* Register every driver of this build in ctx. The first failure is returned (the drivers before it
 * stay registered); STATUS_SUCCESS otherwise. */
smc_status scrm_drivers_register(struct smc_ctx *ctx);

/* The drivers' names separated by `sep` ("sim, nfc"), NUL-terminated and truncated to fit `size`
 * bytes; "(none)" in a build without any driver. Returns buf. */
char *scrm_drivers_names(char *buf, size_t size, const char *sep);

#endif
