/*
 * Readers added and removed at run time through the socket: READER_ADD (a device string) and
 * READER_REMOVE (a reader name), for privileged clients only (server_auth.c: root, scrmd's own
 * user, or a member of the admin group; others get SRV_E_NOT_PRIVILEGED). The rm does the work
 * (rm_add_reader / rm_remove_reader) and notifies every PnP watcher, so clients blocked in
 * SCardGetStatusChange on \\?PnP?\Notification wake at once. Both run on the worker pool:
 * adding a reader runs its start-up IOCTLs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/server_internal.h"
#include "rm/rm.h"

/* Copy the variable part (checked: no NUL, bounded) into a NUL-terminated string. */
static char *arg_string(const uint8_t *var, size_t var_len)
{
    char *str = malloc(var_len + 1);
    if (str) {
        memcpy(str, var, var_len);
        str[var_len] = '\0';
    }
    return str;
}

/* The name of the reader registered on device: the reader whose device name ("driver:address",
 * where the driver decides how far the address goes) is the longest prefix of the string that
 * ends at a ':' or at its end. */
static bool reader_of_device(struct rm *rm, const char *device, char *name, size_t cap)
{
    struct rm_reader_info *list = NULL;
    size_t n = 0, best = 0;
    if (rm_list_readers(rm, &list, &n) != SCARD_S_SUCCESS)
        return false;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(list[i].device);
        if (len > best && strncmp(list[i].device, device, len) == 0 &&
            (device[len] == ':' || device[len] == '\0')) {
            snprintf(name, cap, "%s", list[i].name);
            best = len;
        }
    }
    free(list);
    return best > 0;
}

void cmd_READER_ADD(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                    const uint8_t *var, size_t var_len)
{
    struct ipc_reader_rep rep = {0};
    char name[RM_READER_NAME_MAX] = "";
    uint32_t rc;
    char *device;
    (void)fixed;

    rc = srv_require_privileged(s, "reader add");
    if (rc != SCARD_S_SUCCESS) {
        srv_reply(s, h, rc, &rep, sizeof rep, NULL, 0);
        return;
    }
    device = arg_string(var, var_len);
    if (!device) {
        srv_reply(s, h, SCARD_E_NO_MEMORY, &rep, sizeof rep, NULL, 0);
        return;
    }
    rc = rm_add_reader(s->srv->rm, device);
    log_info(core, "client %llu (pid %ld, uid %ld): reader add %s: %s", (unsigned long long)s->id,
             (long)s->pid, (long)s->uid, device, scard_code_name(rc));
    if (rc == SCARD_S_SUCCESS && reader_of_device(s->srv->rm, device, name, sizeof name))
        rep.name_len = (uint32_t)strlen(name);
    free(device);
    srv_reply(s, h, rc, &rep, sizeof rep, name, rep.name_len);
}

void cmd_READER_REMOVE(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                       const uint8_t *var, size_t var_len)
{
    struct ipc_reader_rep rep = {0};
    struct rm_reader_info info;
    uint32_t rc;
    char *name;
    (void)fixed;

    rc = srv_require_privileged(s, "reader remove");
    if (rc != SCARD_S_SUCCESS) {
        srv_reply(s, h, rc, &rep, sizeof rep, NULL, 0);
        return;
    }
    name = arg_string(var, var_len);
    if (!name) {
        srv_reply(s, h, SCARD_E_NO_MEMORY, &rep, sizeof rep, NULL, 0);
        return;
    }
    rc = rm_get_reader(s->srv->rm, name, &info);
    if (rc == SCARD_S_SUCCESS)
        rc = rm_remove_reader(s->srv->rm, info.device);
    log_info(core, "client %llu (pid %ld, uid %ld): reader remove '%s': %s",
             (unsigned long long)s->id, (long)s->pid, (long)s->uid, name, scard_code_name(rc));
    free(name);
    srv_reply(s, h, rc, &rep, sizeof rep, NULL, 0);
}
