/*
 * The mapping from driver statuses to PC/SC results (status_map.c), internal to the rm: its
 * functions and the tests of the table (test_rm.c) include this header, the rm's users do not.
 */
#ifndef SCRM_RM_STATUS_MAP_H
#define SCRM_RM_STATUS_MAP_H

#include "common/compiler.h"
#include <stdint.h>

#include "common/scard_codes.h"
#include "smc/defs.h"

/* What the rm was doing when a driver status came back: selects the row of the mapping. Bits;
 * combine RM_OP_CONNECT with the step (e.g. RM_OP_CONNECT | RM_OP_POWER). */
enum rm_op {
    RM_OP_OTHER = 0,
    RM_OP_CONNECT = 1 << 0,   /* connect / reconnect sequence: NO_MEDIA means "no card" */
    RM_OP_POWER = 1 << 1,     /* POWER (resets, power down) */
    RM_OP_PROTOCOL = 1 << 2,  /* SET_PROTOCOL */
    RM_OP_TRANSMIT = 1 << 3,  /* TRANSMIT with the card in a specific protocol */
    RM_OP_UNPOWERED = 1 << 4, /* TRANSMIT while the card is not in a specific protocol */
    RM_OP_ATTRIB = 1 << 5,    /* GET_ / SET_ATTRIBUTE */
    RM_OP_MECH = 1 << 6,      /* EJECT / SWALLOW / CONFISCATE */
    RM_OP_VENDOR = 1 << 7,    /* vendor IOCTL (SCardControl) */
    RM_OP_ADD = 1 << 8,       /* smc_add_device for rm_add_reader */
};
/* Driver status → SCARD result (docs/resource-manager.md), from one table (status_map.c). */
SCRM_MUST_CHECK scard_rc rm_scard_from_status(smc_status status, unsigned op);

#endif
