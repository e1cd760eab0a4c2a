/*
 * Compiled by `scripts/lint.sh types` (lint-types): driver statuses (smc_status) and PC/SC results
 * (scard_rc) are distinct enum types, so a function that hands one back where the other belongs
 * must not compile under -Werror. With -DSCRM_NO_MIXUP the same file maps the status properly
 * and must compile, which shows the failure comes from the mix-up and not from the setup.
 */
#include "common/scard_codes.h"
#include "smc/defs.h"

scard_rc lint_result_of(smc_status st);

scard_rc lint_result_of(smc_status st)
{
#ifdef SCRM_NO_MIXUP
    return st == STATUS_SUCCESS ? SCARD_S_SUCCESS : SCARD_F_UNKNOWN_ERROR;
#else
    return st; /* the mix-up: a driver status returned as a PC/SC result */
#endif
}
