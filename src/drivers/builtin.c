/* The drivers compiled into libsmc, registered in every new context. */
#include "smc/internal.h"

extern const struct smc_driver_ops smc_sim_driver;
extern const struct smc_driver_ops smc_nfc_driver;

void smc__register_builtin_drivers(struct smc_ctx *ctx)
{
    (void)smc_register_driver(ctx, &smc_sim_driver);
    (void)smc_register_driver(ctx, &smc_nfc_driver);
}
