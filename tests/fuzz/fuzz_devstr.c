/*
 * libFuzzer target for uniform device strings ("driver:address:key=value,..."), as they come from
 * scrmd.conf, the command line and `scrm reader add`: libsmc's split into driver, address and
 * options and the option parsers of the simulated drivers (smc_add_device on a context with the
 * sim and nfc drivers, then smc_remove_device), and the IFD bridge's option parser
 * (ifd_devstr_parse). Drivers that reach outside the process (the IFD bridge loads libraries,
 * others open sockets) are not registered: their option parsers are called directly where they
 * have one. A device that was added must be removable again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "drivers/ifd/ifd_devstr.h"
#include "drivers/registry.h"
#include "smc/driver.h"
#include "smc/smc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct smc_ctx *ctx;

static struct smc_ctx *context(void)
{
    if (ctx)
        return ctx;
    for (int c = 0; c < SCRM_LOG_CAT_COUNT; c++)
        scrm_log_set_level((enum scrm_log_cat)c, SCRM_LOG_off);
    ctx = smc_ctx_new();
    scrm_assert(ctx != NULL);
    for (size_t i = 0; i < scrm_drivers_count(); i++) {
        const struct smc_driver_ops *ops = scrm_drivers_get(i);
        if (strcmp(ops->name, "sim") == 0 || strcmp(ops->name, "nfc") == 0)
            scrm_assert(smc_register_driver(ctx, ops) == STATUS_SUCCESS);
    }
    return ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ifd_devspec spec;
    char err[256];
    char *text;

    if (size > 4096)
        return 0;
    text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (strlen(text) == size) { /* C strings only: an embedded NUL cannot reach the parsers */
        if (smc_add_device(context(), text) == STATUS_SUCCESS) {
            /* The device is named by "driver:address", without the options. */
            char *c1 = strchr(text, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (c2)
                *c2 = '\0';
            scrm_assert(smc_remove_device(context(), text) == STATUS_SUCCESS);
        }
        memset(&spec, 0, sizeof spec);
        (void)ifd_devstr_parse(text, &spec, err, sizeof err);
    }
    free(text);
    return 0;
}
