/*
 * The driver registry: the table of the drivers compiled into this build, generated from
 * SCRM_DRIVERS (registry.h). A driver whose kind is left out of the build contributes nothing.
 */
#include "drivers/registry.h"

#include <stdio.h>
#include <string.h>

#include "smc/driver.h"

#ifndef SCRM_WITH_SIMULATORS
#define SCRM_WITH_SIMULATORS 1
#endif

/* SCRM_DRIVER_IF_<kind>(...): the arguments when drivers of that kind are in this build, nothing
 * otherwise. */
#define SCRM_DRIVER_IF_ALWAYS(...) __VA_ARGS__
#if SCRM_WITH_SIMULATORS
#define SCRM_DRIVER_IF_SIMULATOR(...) __VA_ARGS__
#else
#define SCRM_DRIVER_IF_SIMULATOR(...)
#endif

#define SCRM_DRIVER_DECLARE(ops, kind) \
    SCRM_DRIVER_IF_##kind(extern const struct smc_driver_ops ops;)
SCRM_DRIVERS(SCRM_DRIVER_DECLARE)

#define SCRM_DRIVER_ENTRY(ops, kind) SCRM_DRIVER_IF_##kind(&(ops), )
static const struct smc_driver_ops *const drivers[] = {SCRM_DRIVERS(SCRM_DRIVER_ENTRY) NULL};

size_t scrm_drivers_count(void)
{
    return sizeof(drivers) / sizeof(drivers[0]) - 1; /* the NULL that ends the table */
}

const struct smc_driver_ops *scrm_drivers_get(size_t i)
{
    return i < scrm_drivers_count() ? drivers[i] : NULL;
}

smc_status scrm_drivers_register(struct smc_ctx *ctx)
{
    for (size_t i = 0; i < scrm_drivers_count(); i++) {
        smc_status st = smc_register_driver(ctx, drivers[i]);
        if (st != STATUS_SUCCESS)
            return st;
    }
    return STATUS_SUCCESS;
}

char *scrm_drivers_names(char *buf, size_t size, const char *sep)
{
    if (!size)
        return buf;
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < scrm_drivers_count() && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? sep : "", drivers[i]->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (!scrm_drivers_count())
        snprintf(buf, size, "(none)");
    return buf;
}
