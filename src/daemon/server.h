/*
 * The PC/SC socket server of scrmd: serves scrm's protocol (src/ipc) to client libraries on a
 * Unix stream socket and carries out their requests on the resource manager (src/rm).
 *
 * main.c builds the rm from the configuration, then calls scrm_server_run(), which returns when
 * stop_fd becomes readable (main's signal handling writes to it) after every client has been
 * disconnected and every thread joined. See server_internal.h for the design.
 */
#ifndef SCRM_DAEMON_SERVER_H
#define SCRM_DAEMON_SERVER_H

#include "common/compiler.h"
#include "daemon/config.h"

struct rm;

/*
 * Listen on cfg->listen_fd if it is >= 0 (socket activation), else create cfg->socket_path with
 * mode cfg->socket_mode and group cfg->socket_gid (when not (gid_t)-1), refusing to replace a
 * socket a live daemon still answers on. Serve until stop_fd is readable. Returns 0 after a clean
 * stop, -1 if the socket cannot be set up (logged). The socket file it created is removed.
 */
SCRM_MUST_CHECK int scrm_server_run(struct rm *rm, const struct scrmd_config *cfg, int stop_fd);

#endif
