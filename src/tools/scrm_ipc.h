/* A blocking client of scrm's socket protocol for administration commands (see scrm_ipc.c). */
#ifndef SCRM_TOOLS_SCRM_IPC_H
#define SCRM_TOOLS_SCRM_IPC_H

#include <stddef.h>
#include <stdint.h>

/*
 * Connect to scrmd ($SCRM_SOCKET), say HELLO, send IPC_CMD_READER_ADD (arg: a device string) or
 * IPC_CMD_READER_REMOVE (arg: a reader name), and return the reply's PC/SC status (cast to long;
 * SCARD_E_NO_SERVICE if scrmd cannot be reached, printed on stderr; SCARD_F_COMM_ERROR for a
 * broken conversation). name (cap bytes) gets the reader name the reply carries, or stays as is.
 */
long scrm_ipc_reader(uint16_t cmd, const char *arg, char *name, size_t cap);

#endif
