/*
 * Contexts, card handles and the transport of libpcsclite.so.1 (see client.h).
 *
 * A context connects with a close-on-exec Unix stream socket to $SCRM_SOCKET (default
 * IPC_DEFAULT_SOCKET) and sends HELLO. Requests are written with one sendmsg() (header, fixed
 * part, payload) and the reply is read into the context's buffer (waiting in poll(), not in a
 * blocking recv, which the daemon's reading of the request would wake for nothing: ipc_recv_all)
 * and checked: reply flag, same
 * command and sequence number, size within the protocol bound and at least the command's fixed
 * reply part. Any mismatch or I/O failure drops the connection; the next context-level call
 * reconnects, so a context survives a daemon restart (its card handles do not).
 */
#include "client/client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/scard_codes.h"

/* The process-wide registry (see client.h for why it exists). */
static struct {
    scrm_mutex lock;
    struct idmap contexts; /* SCARDCONTEXT -> struct cctx * */
    struct idmap cards;    /* SCARDHANDLE -> struct cctx * */
} reg = {.lock = SCRM_MUTEX_INITIALIZER};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_logging(void)
{
    scrm_log_init_from_env();
}

void client_init_once(void)
{
    pthread_once(&init_once, init_logging);
}

/* ---- Connection -------------------------------------------------------------------------------
 */

static int open_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;
    size_t n = strlen(path);

    if (n >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, n + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Connect and say HELLO. call_lock held (or the context not yet shared). */
static LONG cctx_connect(struct cctx *c)
{
    struct ipc_hello_req req = {.magic = IPC_MAGIC,
                                .major = IPC_VERSION_MAJOR,
                                .minor = IPC_VERSION_MINOR,
                                .max_msg = IPC_MSG_MAX};
    struct ipc_hello_rep rep;
    struct creply r;
    const char *path = ipc_socket_path();
    LONG rc;

    c->fd = open_socket(path);
    if (c->fd < 0) {
        int e = errno;
        const char *env = getenv(IPC_SOCKET_ENV);
        /* Quiet by default; SCRM_LOG=client:info shows why (`scrm doctor` explains it). */
        log_info(client, "cannot connect to scrmd at %s (%s): %s%s", path,
                 env && *env ? "$SCRM_SOCKET" : "default", strerror(e),
                 e == ENOENT         ? "; is scrmd running? (scrm doctor)"
                 : e == EACCES       ? "; this user may not use the socket (its group)"
                 : e == ECONNREFUSED ? "; a stale socket: scrmd stopped"
                                     : "");
        return SCARD_E_NO_SERVICE;
    }
    rc = cctx_call(c, IPC_CMD_HELLO, true, &req, sizeof req, NULL, 0, &r);
    if (rc != SCARD_S_SUCCESS) {
        log_info(client,
                 "%s accepted the connection but did not answer as scrmd (a pcscd "
                 "socket?): %s",
                 path, scard_code_name((uint32_t)rc) ? scard_code_name((uint32_t)rc) : "?");
        return rc;
    }
    memcpy(&rep, r.fixed, sizeof rep);
    if (r.status != 0 || rep.magic != IPC_MAGIC || rep.major != IPC_VERSION_MAJOR) {
        log_warn(client, "%s speaks protocol %u.%u, this library %u.%u", path, rep.major, rep.minor,
                 IPC_VERSION_MAJOR, IPC_VERSION_MINOR);
        cctx_disconnect(c);
        return SCARD_E_SERVICE_STOPPED;
    }
    log_debug(client, "connected to %s as client %llu", path, (unsigned long long)rep.client_id);
    return SCARD_S_SUCCESS;
}

static void forget_card(void *user, uint64_t id, uint64_t value)
{
    (void)user;
    (void)value;
    idmap_del(&reg.cards, id);
}

void cctx_disconnect(struct cctx *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    scrm_mutex_lock(&reg.lock);
    idmap_each(&c->cards, forget_card, NULL);
    scrm_mutex_unlock(&reg.lock);
    idmap_free(&c->cards);
}

/* ---- Registry ---------------------------------------------------------------------------------
 */

static void cctx_destroy(struct cctx *c)
{
    if (c->fd >= 0)
        close(c->fd);
    if (c->wait_fd >= 0)
        close(c->wait_fd);
    scrm_mutex_destroy(&c->wait_lock);
    if (c->cancel_fd >= 0)
        close(c->cancel_fd);
    idmap_free(&c->cards);
    scrm_mutex_destroy(&c->call_lock);
    scrm_mutex_destroy(&c->cancel_lock);
    free(c->rx);
    free(c);
}

static struct cctx *cctx_alloc(void)
{
    struct cctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = -1;
    c->wait_fd = -1;
    c->refs = 1;
    idmap_init(&c->cards);
    scrm_mutex_init(&c->wait_lock);
    scrm_mutex_init(&c->call_lock);
    scrm_mutex_init(&c->cancel_lock);
    c->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->cancel_fd < 0) {
        cctx_destroy(c);
        return NULL;
    }
    return c;
}

LONG cctx_create(struct cctx **out)
{
    struct cctx *c;
    LONG rc;

    client_init_once();
    c = cctx_alloc();
    if (!c)
        return SCARD_E_NO_MEMORY;
    rc = cctx_connect(c);
    if (rc != SCARD_S_SUCCESS)
        goto fail;
    scrm_mutex_lock(&reg.lock);
    do {
        c->id = idmap_random_id();
    } while (idmap_get(&reg.contexts, c->id, NULL));
    if (idmap_put_ptr(&reg.contexts, c->id, c) < 0)
        rc = SCARD_E_NO_MEMORY;
    scrm_mutex_unlock(&reg.lock);
    if (rc != SCARD_S_SUCCESS)
        goto fail;
    *out = c;
    return SCARD_S_SUCCESS;
fail:
    cctx_destroy(c);
    return rc;
}

struct cctx *cctx_get(SCARDCONTEXT id)
{
    struct cctx *c = NULL;
    scrm_mutex_lock(&reg.lock);
    if (id > 0 && (c = idmap_get_ptr(&reg.contexts, (uint64_t)id)) != NULL)
        c->refs++;
    scrm_mutex_unlock(&reg.lock);
    return c;
}

struct cctx *cctx_get_card(SCARDHANDLE card)
{
    struct cctx *c = NULL;
    scrm_mutex_lock(&reg.lock);
    if (card > 0 && (c = idmap_get_ptr(&reg.cards, (uint64_t)card)) != NULL)
        c->refs++;
    scrm_mutex_unlock(&reg.lock);
    return c;
}

void cctx_put(struct cctx *c)
{
    bool last;
    scrm_mutex_lock(&reg.lock);
    last = --c->refs == 0;
    scrm_mutex_unlock(&reg.lock);
    if (last)
        cctx_destroy(c);
}

LONG cctx_release(SCARDCONTEXT id)
{
    struct cctx *c = NULL;
    uint64_t one = 1;

    scrm_mutex_lock(&reg.lock);
    if (id > 0 && (c = idmap_get_ptr(&reg.contexts, (uint64_t)id)) != NULL) {
        idmap_del(&reg.contexts, (uint64_t)id);
        c->released = true;
    }
    scrm_mutex_unlock(&reg.lock);
    if (!c)
        return SCARD_E_INVALID_HANDLE;

    /* A thread waiting in SCardGetStatusChange on this context returns SCARD_E_CANCELLED; one
     * that has not started its wait yet sees `released` and does not start it. */
    scrm_mutex_lock(&c->cancel_lock);
    c->released_for_waits = true;
    if (c->waiting && write(c->cancel_fd, &one, sizeof one) < 0)
        log_debug(client, "cancel write: %s", strerror(errno));
    scrm_mutex_unlock(&c->cancel_lock);

    /* Closing the connection makes the daemon reset this context's cards and end its
     * transactions, as pcsc-lite does for a released context. */
    scrm_mutex_lock(&c->call_lock);
    cctx_disconnect(c);
    scrm_mutex_unlock(&c->call_lock);
    cctx_put(c);
    return SCARD_S_SUCCESS;
}

int cctx_add_card(struct cctx *c, uint64_t card)
{
    int rc;
    if (idmap_put(&c->cards, card, 1) < 0)
        return -1;
    scrm_mutex_lock(&reg.lock);
    rc = idmap_get(&reg.cards, card, NULL) ? -1 : idmap_put_ptr(&reg.cards, card, c);
    scrm_mutex_unlock(&reg.lock);
    if (rc < 0)
        idmap_del(&c->cards, card);
    return rc;
}

void cctx_del_card(struct cctx *c, uint64_t card)
{
    idmap_del(&c->cards, card);
    scrm_mutex_lock(&reg.lock);
    idmap_del(&reg.cards, card);
    scrm_mutex_unlock(&reg.lock);
}

/* ---- Transport --------------------------------------------------------------------------------
 */

LONG cctx_send(struct cctx *c, uint16_t cmd, bool card, const void *fixed, size_t fixed_len,
               const void *var, size_t var_len)
{
    struct ipc_hdr h = {.cmd = cmd, .flags = 0, .status = 0};
    struct iovec iov[3];
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 3};
    size_t total = sizeof h + fixed_len + var_len, done = 0;

    if (c->fd < 0) {
        LONG rc;
        if (card || c->released)
            return card ? SCARD_E_INVALID_HANDLE : SCARD_E_NO_SERVICE;
        rc = cctx_connect(c);
        if (rc != SCARD_S_SUCCESS)
            return rc;
    }
    if (total > IPC_MSG_MAX)
        return SCARD_E_INSUFFICIENT_BUFFER;
    h.size = (uint32_t)total;
    h.seq = ++c->seq;
    iov[0] = (struct iovec){&h, sizeof h};
    /* iovec wants non-const pointers; sendmsg only reads them. */
    memcpy(&iov[1].iov_base, &fixed, sizeof fixed);
    iov[1].iov_len = fixed_len;
    memcpy(&iov[2].iov_base, &var, sizeof var);
    iov[2].iov_len = var_len;
    while (done < total) {
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_debug(client, "send %s: %s", ipc_cmd_name(cmd), strerror(errno));
            cctx_disconnect(c);
            return SCARD_E_NO_SERVICE;
        }
        done += (size_t)n;
        /* Skip what was written (rare: large payloads on a full socket). */
        while (mh.msg_iovlen > 0 && (size_t)n >= mh.msg_iov[0].iov_len) {
            n -= (ssize_t)mh.msg_iov[0].iov_len;
            mh.msg_iov++;
            mh.msg_iovlen--;
        }
        if (mh.msg_iovlen > 0) {
            mh.msg_iov[0].iov_base = (uint8_t *)mh.msg_iov[0].iov_base + n;
            mh.msg_iov[0].iov_len -= (size_t)n;
        }
    }
    return SCARD_S_SUCCESS;
}

/* Why a reply header is unacceptable, or NULL. */
static const char *check_reply(const struct ipc_hdr *h, uint16_t cmd, uint32_t seq)
{
    const char *why = ipc_check_header(h, true);
    const struct ipc_cmd_info *ci = ipc_cmd_info(cmd);
    if (why)
        return why;
    if (h->cmd != cmd || h->seq != seq)
        return "reply does not answer the request";
    if (!ci || h->size < sizeof *h + ci->rep_size)
        return "reply shorter than its fixed part";
    return NULL;
}

LONG cctx_recv(struct cctx *c, uint16_t cmd, uint32_t seq, struct creply *rep)
{
    struct ipc_hdr h;
    const char *why;

    if (ipc_recv_all(c->fd, &h, sizeof h) < 0) {
        log_debug(client, "receive %s: %s", ipc_cmd_name(cmd), strerror(errno));
        cctx_disconnect(c);
        return SCARD_E_NO_SERVICE;
    }
    why = check_reply(&h, cmd, seq);
    if (why) {
        log_warn(client, "bad reply to %s from scrmd: %s", ipc_cmd_name(cmd), why);
        cctx_disconnect(c);
        return SCARD_F_COMM_ERROR;
    }
    if (c->rx_cap < h.size) {
        uint8_t *nb = realloc(c->rx, h.size);
        if (!nb) {
            cctx_disconnect(c);
            return SCARD_E_NO_MEMORY;
        }
        c->rx = nb;
        c->rx_cap = h.size;
    }
    memcpy(c->rx, &h, sizeof h);
    if (ipc_recv_all(c->fd, c->rx + sizeof h, h.size - sizeof h) < 0) {
        log_debug(client, "receive %s body: %s", ipc_cmd_name(cmd), strerror(errno));
        cctx_disconnect(c);
        return SCARD_E_NO_SERVICE;
    }
    rep->status = h.status;
    rep->fixed = c->rx + sizeof h;
    rep->var = rep->fixed + ipc_cmd_info(cmd)->rep_size;
    rep->var_len = h.size - sizeof h - ipc_cmd_info(cmd)->rep_size;
    return SCARD_S_SUCCESS;
}

/* One request and its reply on the transaction-wait connection (wait_lock held). */
static int wait_conn_call(struct cctx *c, uint16_t cmd, const void *fixed, size_t fixed_len,
                          const void *var, size_t var_len, void *rep, size_t rep_len)
{
    uint8_t buf[sizeof(struct ipc_hdr) + sizeof(struct ipc_hello_req) + IPC_READER_NAME_MAX];
    struct ipc_hdr h = {
        .size = (uint32_t)(sizeof h + fixed_len + var_len), .cmd = cmd, .seq = ++c->wait_seq};
    struct ipc_hdr r;

    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, fixed, fixed_len);
    if (var_len)
        memcpy(buf + sizeof h + fixed_len, var, var_len);
    if (ipc_send_all(c->wait_fd, buf, h.size) < 0 || ipc_recv_all(c->wait_fd, &r, sizeof r) < 0)
        return -1;
    if (ipc_check_header(&r, true) || r.cmd != cmd || r.seq != h.seq ||
        r.size != sizeof r + rep_len || ipc_recv_all(c->wait_fd, rep, rep_len) < 0)
        return -1;
    return (int)(r.status != 0);
}

/* Wait until the reader's transaction is free (call_lock not held). */
static LONG wait_tx(struct cctx *c, const char *reader, size_t len)
{
    struct ipc_none none = {0}, nrep;
    LONG rc = SCARD_S_SUCCESS;

    scrm_mutex_lock(&c->wait_lock);
    if (c->wait_fd < 0) {
        struct ipc_hello_req req = {.magic = IPC_MAGIC,
                                    .major = IPC_VERSION_MAJOR,
                                    .minor = IPC_VERSION_MINOR,
                                    .max_msg = IPC_MSG_MAX};
        struct ipc_hello_rep hrep;
        c->wait_fd = open_socket(ipc_socket_path());
        if (c->wait_fd >= 0 &&
            (wait_conn_call(c, IPC_CMD_HELLO, &req, sizeof req, NULL, 0, &hrep, sizeof hrep) != 0 ||
             hrep.minor < 1)) {
            close(c->wait_fd);
            c->wait_fd = -1;
        }
    }
    if (c->wait_fd < 0 || wait_conn_call(c, IPC_CMD_WAIT_TX, &none, sizeof none, reader, len, &nrep,
                                         sizeof nrep) < 0) {
        log_debug(client, "transaction wait: %s", strerror(errno));
        if (c->wait_fd >= 0)
            close(c->wait_fd);
        c->wait_fd = -1;
        rc = SCARD_E_NO_SERVICE;
    }
    scrm_mutex_unlock(&c->wait_lock);
    return rc;
}

static LONG call_once(struct cctx *c, uint16_t cmd, bool card, const void *fixed, size_t fixed_len,
                      const void *var, size_t var_len, struct creply *rep)
{
    bool had_connection = c->fd >= 0;
    LONG rc = cctx_send(c, cmd, card, fixed, fixed_len, var, var_len);
    if (rc == SCARD_S_SUCCESS)
        rc = cctx_recv(c, cmd, c->seq, rep);
    /* A context-level request on a connection that died since the last call (daemon restart)
     * is tried once more on a new connection. */
    if (rc == SCARD_E_NO_SERVICE && had_connection && !card) {
        rc = cctx_send(c, cmd, card, fixed, fixed_len, var, var_len);
        if (rc == SCARD_S_SUCCESS)
            rc = cctx_recv(c, cmd, c->seq, rep);
    }
    return rc;
}

LONG cctx_call(struct cctx *c, uint16_t cmd, bool card, const void *fixed, size_t fixed_len,
               const void *var, size_t var_len, struct creply *rep) SCRM_NO_THREAD_SAFETY_ANALYSIS
{
    /* The callers hold call_lock (most through card_begin(), which the analysis cannot follow), or
     * the context is not shared yet (HELLO while it is created); it is dropped around WAIT_TX. */
    for (;;) {
        char reader[IPC_READER_NAME_MAX];
        size_t len;
        LONG rc = call_once(c, cmd, card, fixed, fixed_len, var, var_len, rep);
        if (rc != SCARD_S_SUCCESS || rep->status != IPC_S_TX_BUSY)
            return rc;
        len = rep->var_len;
        if (len == 0 || len >= sizeof reader) {
            rep->status = SCARD_F_COMM_ERROR;
            return SCARD_S_SUCCESS;
        }
        memcpy(reader, rep->var, len);
        scrm_mutex_unlock(&c->call_lock);
        rc = wait_tx(c, reader, len);
        scrm_mutex_lock(&c->call_lock);
        if (rc != SCARD_S_SUCCESS)
            return rc;
    }
}
