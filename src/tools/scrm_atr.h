/*
 * The parts of `scrm` that use libsmc's ATR parser (scrm_atr.c). Kept apart from scrm.h because
 * libsmc's headers and the PC/SC headers define some of the same constants.
 */
#ifndef SCRM_TOOLS_SCRM_ATR_H
#define SCRM_TOOLS_SCRM_ATR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses of scrm. */
#define SCRM_EXIT_OK    0
#define SCRM_EXIT_FAIL  1 /* a PC/SC call failed */
#define SCRM_EXIT_USAGE 2

/* The first description of the ATR in pcsc-tools' smartcard_list.txt; false if none. */
bool scrm_atr_name(const uint8_t *atr, size_t len, char *name, size_t cap);
/* `scrm atr HEX...` / `scrm atr --brief`. */
int scrm_cmd_atr(int argc, char **argv);

#endif
