/*
 * A minimal blocking client of scrm's socket protocol for the administration commands that PC/SC
 * has no call for (READER_ADD, READER_REMOVE): used by `scrm reader` and bench/reader_pnp.
 */
#include "tools/scrm_ipc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/scard_codes.h"
#include "ipc/ipc.h"

/* A connection to scrmd after HELLO, or -1 (printed why). */
static int admin_connect(void)
{
    const char *path = ipc_socket_path();
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "scrm: socket path too long: %s\n", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "scrm: cannot reach scrmd at %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Send one request and read its reply into *rep (malloc'd, whole message). 0 or -1. */
static int exchange(int fd, uint16_t cmd, const void *fixed, size_t fixed_len, const void *var,
                    size_t var_len, uint8_t **rep, size_t *rep_len)
{
    static uint32_t seq;
    uint8_t buf[sizeof(struct ipc_hdr) + 16 + IPC_DEVICE_MAX];
    struct ipc_msg m;
    struct ipc_hdr h;
    ipc_msg_start(&m, buf, sizeof buf, cmd, 0, ++seq, 0);
    ipc_msg_put(&m, fixed, fixed_len);
    ipc_msg_put(&m, var, var_len);
    size_t len = ipc_msg_finish(&m);
    if (!len || ipc_send_all(fd, buf, len) < 0 || ipc_recv_all(fd, &h, sizeof h) < 0)
        return -1;
    if (ipc_check_header(&h, true) || h.cmd != cmd || h.seq != seq)
        return -1;
    uint8_t *msg = malloc(h.size);
    if (!msg)
        return -1;
    memcpy(msg, &h, sizeof h);
    if (ipc_recv_all(fd, msg + sizeof h, h.size - sizeof h) < 0) {
        free(msg);
        return -1;
    }
    *rep = msg;
    *rep_len = h.size;
    return 0;
}

long scrm_ipc_reader(uint16_t cmd, const char *arg, char *name, size_t cap)
{
    int fd = admin_connect();
    if (fd < 0)
        return (long)SCARD_E_NO_SERVICE;
    struct ipc_hello_req hello = {.magic = IPC_MAGIC,
                                  .major = IPC_VERSION_MAJOR,
                                  .minor = IPC_VERSION_MINOR,
                                  .max_msg = IPC_MSG_MAX};
    struct ipc_reader_req req = {.len = (uint32_t)strlen(arg)};
    uint8_t *rep = NULL;
    size_t len = 0;
    long rc = (long)SCARD_F_COMM_ERROR;
    struct ipc_hdr h;
    if (exchange(fd, IPC_CMD_HELLO, &hello, sizeof hello, NULL, 0, &rep, &len) == 0) {
        memcpy(&h, rep, sizeof h);
        free(rep);
        rep = NULL;
        if (h.status != SCARD_S_SUCCESS)
            rc = (long)h.status;
        else if (exchange(fd, cmd, &req, sizeof req, arg, req.len, &rep, &len) == 0)
            rc = 0;
    }
    close(fd);
    if (!rep)
        return rc;
    struct ipc_reader_rep rr = {0};
    memcpy(&h, rep, sizeof h);
    if (len >= sizeof h + sizeof rr)
        memcpy(&rr, rep + sizeof h, sizeof rr);
    if (rr.name_len < cap && sizeof h + sizeof rr + rr.name_len <= len) {
        memcpy(name, rep + sizeof h + sizeof rr, rr.name_len);
        name[rr.name_len] = '\0';
    }
    free(rep);
    return (long)h.status;
}
