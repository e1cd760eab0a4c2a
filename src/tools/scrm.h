/*
 * Internals of the `scrm` command-line tool. scrm is an ordinary PC/SC application: every
 * subcommand goes through libpcsclite.so.1 (the public API), so what it shows is what any
 * application would see; only the administration commands (`scrm reader add/remove`), which
 * PC/SC has no call for, speak scrm's socket protocol directly. Subcommands are listed once in
 * scrm.c's table {name, usage, function}.
 */
#ifndef SCRM_TOOLS_SCRM_H
#define SCRM_TOOLS_SCRM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <PCSC/reader.h>
#include <PCSC/winscard.h>

#include "tools/scrm_atr.h" /* exit statuses, scrm atr */

/* Establish a context; prints the error and returns false on failure. */
bool scrm_context(SCARDCONTEXT *ctx);
/* Print "scrm: what: SCARD_E_NAME (0x...): text" to stderr and return SCRM_EXIT_FAIL. When the
 * daemon cannot be reached, also why (socket path, system error) and what to do. */
int scrm_fail(const char *what, LONG rc);
/* "SCARD_E_NAME (0x8010000C): text" for rc (static buffer). */
const char *scrm_error_text(LONG rc);
/* Explain why the daemon's socket cannot be used, on stderr (scrm_doctor.c). */
void scrm_explain_no_service(void);

/* Resolve a reader argument: an exact name, or an index into the reader list ("0", "1"), or a
 * unique substring of a name. out gets the full name. Prints why on failure. */
bool scrm_reader(SCARDCONTEXT ctx, const char *arg, char *out, size_t cap);
/* Human-readable meaning of an ISO 7816-4 status word ("success", "file not found", ...). */
const char *scrm_sw_text(uint16_t sw);

/* Subcommands (argv[0] is the subcommand name). */
int scrm_cmd_list(int argc, char **argv);
int scrm_cmd_watch(int argc, char **argv);
int scrm_cmd_send(int argc, char **argv);
int scrm_cmd_sim(int argc, char **argv);
int scrm_cmd_nfc(int argc, char **argv);
int scrm_cmd_reader(int argc, char **argv);
int scrm_cmd_doctor(int argc, char **argv);
int scrm_cmd_spy(int argc, char **argv);

#endif
