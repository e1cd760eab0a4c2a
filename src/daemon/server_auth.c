/*
 * Who a client is and what it may do: the peer credentials recorded at accept, and the one
 * answer to "is this client privileged?" that every privileged command asks (the simulators'
 * vendor controls today; the APDU spy and runtime reader add/remove use the same function).
 *
 * A client is privileged when its user is root, when it runs as the daemon's own user (a
 * private scrmd started by a user for tests), or when the admin group of scrmd.conf
 * (admin_group, --admin-group) is its primary group or one of its supplementary groups.
 *
 * The credentials are those the kernel recorded when the peer called connect(): SO_PEERCRED
 * (pid, uid, gid) and SO_PEERGROUPS (the supplementary groups, Linux 4.13 and later). Both are
 * taken atomically at connect time and cannot change afterwards, so there is no race: reading
 * /proc/<pid>/status later would look at whatever process holds that pid by then (the client may
 * have exited and its pid been reused, or it may have changed its groups since), and the group
 * database (getgrouplist) says what the user could have, not what the connecting process has
 * (a process that dropped its groups with setgroups() would still count). When the kernel does
 * not support SO_PEERGROUPS the client is given only its primary group, never more: the check
 * fails closed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/server_internal.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59 /* Linux 4.13 (asm-generic/socket.h) */
#endif

/* The supplementary groups of the peer of fd, malloc'ed into *out. 0, or -1 (none recorded). */
static int peer_groups(int fd, gid_t **out, size_t *n_out)
{
    socklen_t len = (socklen_t)(16 * sizeof(gid_t));
    gid_t *g = NULL;

    *out = NULL;
    *n_out = 0;
    for (int tries = 0; tries < 4; tries++) {
        gid_t *grown = realloc(g, len ? len : sizeof(gid_t));
        if (!grown)
            break;
        g = grown;
        socklen_t want = len;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &want) == 0) {
            *out = g;
            *n_out = want / sizeof(gid_t);
            return 0;
        }
        if (errno != ERANGE || want <= len)
            break;
        len = want; /* the kernel says how much it needs */
    }
    free(g);
    return -1;
}

void srv_peer_record(struct session *s, int fd)
{
    struct ucred cred = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
    socklen_t len = sizeof cred;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        log_warn(ipc, "client %llu: no peer credentials: %s", (unsigned long long)s->id,
                 strerror(errno));
    s->pid = cred.pid;
    s->uid = cred.uid;
    s->gid = cred.gid;
    if (peer_groups(fd, &s->groups, &s->n_groups) < 0)
        log_debug(ipc, "client %llu: no supplementary groups recorded: %s",
                  (unsigned long long)s->id, strerror(errno));
}

void srv_peer_forget(struct session *s)
{
    free(s->groups);
    s->groups = NULL;
    s->n_groups = 0;
}

bool srv_client_in_group(const struct session *s, gid_t gid)
{
    if (gid == (gid_t)-1)
        return false;
    if (s->gid == gid)
        return true;
    for (size_t i = 0; i < s->n_groups; i++)
        if (s->groups[i] == gid)
            return true;
    return false;
}

bool srv_client_privileged(const struct session *s)
{
    if (s->uid == (uid_t)-1) /* no credentials: never privileged */
        return false;
    return s->uid == 0 || s->uid == s->srv->uid || srv_client_in_group(s, s->srv->admin_gid);
}

uint32_t srv_require_privileged(const struct session *s, const char *what)
{
    if (srv_client_privileged(s))
        return SCARD_S_SUCCESS;
    log_warn(ipc, "client %llu (pid %ld, uid %ld): %s refused: needs root or the admin group",
             (unsigned long long)s->id, (long)s->pid, (long)s->uid, what);
    return SRV_E_NOT_PRIVILEGED;
}
