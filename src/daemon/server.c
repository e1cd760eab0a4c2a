/*
 * scrmd's socket server: the listening socket, the epoll loop and the orderly stop (see
 * server_internal.h for the threads and server_session.c for one connection).
 *
 * The epoll set holds the listening socket, stop_fd (from main), wake_fd (an eventfd the watch
 * callbacks write) and every client socket; every entry is level-triggered. Each client's peer
 * credentials (SO_PEERCRED, SO_PEERGROUPS; server_auth.c) are recorded at accept and name it in
 * the log. Access control is the socket file's mode and group; when a group is configured, a peer
 * that is neither root nor in that group (primary or supplementary, as recorded at connect) is
 * refused as well, in case the socket was passed on by other means. Privileged commands ask
 * srv_client_privileged() (server_auth.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/server.h"
#include "daemon/server_internal.h"
#include "rm/rm.h"

/* Tags for the non-session epoll entries (sessions use their pointer). */
static char tag_listen, tag_pcl_listen, tag_stop, tag_wake, tag_timer, tag_linger;

/* ---- Listening socket -------------------------------------------------------------------------
 */

/* Is a daemon answering on path? */
static bool socket_alive(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool alive;
    if (fd < 0)
        return false;
    alive = connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0;
    close(fd);
    return alive;
}

/* Create the socket file's directory (one level) if it is missing. */
static void make_parent(const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *slash;
    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = '\0';
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        log_warn(ipc, "cannot create %s: %s", dir, strerror(errno));
}

static int set_permissions(const char *path, const struct scrmd_config *cfg)
{
    if (chmod(path, cfg->socket_mode & 07777) < 0) {
        log_error(ipc, "chmod %s: %s", path, strerror(errno));
        return -1;
    }
    if (cfg->socket_gid != (gid_t)-1 && chown(path, (uid_t)-1, cfg->socket_gid) < 0) {
        log_error(ipc, "chown %s to group %ld: %s", path, (long)cfg->socket_gid, strerror(errno));
        return -1;
    }
    return 0;
}

/* Listen on path (or take the inherited fd when >= 0). what names the protocol in the log. */
static int open_listener(const struct scrmd_config *cfg, const char *path, int inherited,
                         const char *what, bool *created)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd;

    *created = false;
    if (inherited >= 0) {
        /* inherited (socket activation): accept must not block the loop */
        int fl = fcntl(inherited, F_GETFL);
        if (fl < 0 || fcntl(inherited, F_SETFL, fl | O_NONBLOCK) < 0) {
            log_error(ipc, "inherited socket for %s: cannot make it non-blocking: %s", what,
                      strerror(errno));
            return -1;
        }
        log_info(ipc, "serving %s on an inherited socket", what);
        return inherited;
    }
    if (strlen(path) >= sizeof sa.sun_path) {
        log_error(ipc, "socket path too long: %s", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    make_parent(path);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode) || socket_alive(&sa)) {
            log_error(ipc, "%s is in use (another scrmd?)", path);
            return -1;
        }
        unlink(path); /* stale socket of a daemon that died */
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        log_error(ipc, "cannot bind %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *created = true;
    if (set_permissions(path, cfg) < 0 || listen(fd, SRV_LISTEN_BACKLOG) < 0) {
        unlink(path);
        close(fd);
        return -1;
    }
    log_info(ipc, "listening on %s for %s (mode %04o)", path, what,
             (unsigned)(cfg->socket_mode & 07777));
    return fd;
}

/* ---- Accepting --------------------------------------------------------------------------------
 */

/* The socket group (socket_group) admits root and its members; see server_auth.c for why the
 * groups recorded at connect are used rather than /proc. */
static bool peer_allowed(const struct srv *srv, const struct session *s)
{
    return srv->group == (gid_t)-1 || s->uid == 0 || srv_client_in_group(s, srv->group);
}

static void accept_one(struct srv *srv, int fd, enum srv_front front)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
    struct session *s;

    bool full = srv->max_clients && srv->n_sessions >= srv->max_clients;
    if (full || !(s = session_new(srv, fd, front))) {
        log_warn(ipc, "refusing a client: %s",
                 full ? "max_clients reached (scrmd.conf)" : "out of memory");
        close(fd);
        return;
    }
    srv_peer_record(s, fd);
    if (!peer_allowed(srv, s)) {
        log_warn(ipc, "client %llu (pid %ld, uid %ld): not in the allowed group; refused",
                 (unsigned long long)s->id, (long)s->pid, (long)s->uid);
        session_unref(s);
        return;
    }
    ev.data.ptr = s;
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        log_error(ipc, "epoll_ctl: %s", strerror(errno));
        session_unref(s);
        return;
    }
    LIST_INSERT_HEAD(&srv->sessions, s, link);
    srv->n_sessions++;
    srv_deadline_arm(srv, s); /* until its first message */
    log_info(ipc, "client %llu connected (pid %ld, uid %ld, gid %ld%s)", (unsigned long long)s->id,
             (long)s->pid, (long)s->uid, (long)s->gid,
             front == SRV_FRONT_PCSCLITE ? ", pcsc-lite protocol" : "");
}

/* Watch (events EPOLLIN) or stop watching (0) both listening sockets. */
static int listen_interest(struct srv *srv, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = &tag_listen};
    int rc = epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->listen_fd, &ev);
    if (rc == 0 && srv->pcl_listen_fd >= 0) {
        ev.data.ptr = &tag_pcl_listen;
        rc = epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->pcl_listen_fd, &ev);
    }
    return rc;
}

void srv_session_gone(struct srv *srv)
{
    if (!srv->accept_paused)
        return;
    if (listen_interest(srv, EPOLLIN) == 0) {
        srv->accept_paused = false;
        log_info(ipc, "accepting connections again");
    }
}

static void accept_all(struct srv *srv, int listen_fd, enum srv_front front)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            accept_one(srv, fd, front);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The listening socket stays readable: stop watching it until a client leaves,
             * instead of spinning on it (level-triggered). */
            log_warn(ipc, "accept: %s; new connections wait until a client leaves",
                     strerror(errno));
            if (listen_interest(srv, 0) == 0)
                srv->accept_paused = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            log_warn(ipc, "accept: %s", strerror(errno));
        }
        return;
    }
}

/* ---- Loop -------------------------------------------------------------------------------------
 */

/* Re-evaluate the waits of every session a watch callback queued. */
static void run_ready(struct srv *srv)
{
    uint64_t v;
    struct session *list;

    if (read(srv->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_debug(ipc, "wake read: %s", strerror(errno));
    scrm_mutex_lock(&srv->ready_lock);
    list = srv->ready;
    srv->ready = NULL;
    scrm_mutex_unlock(&srv->ready_lock);
    /* A session stays marked in_ready until it is taken off this list, so a watch firing
     * meanwhile cannot queue it again and overwrite ready_next under our feet; once taken off,
     * it may be queued anew and is then evaluated again on the next wake-up. */
    while (list) {
        scrm_mutex_lock(&srv->ready_lock);
        struct session *s = list;
        list = s->ready_next;
        s->ready_next = NULL;
        s->in_ready = false;
        scrm_mutex_unlock(&srv->ready_lock);
        session_wait_fired(s);
        session_unref(s); /* the ready list's reference */
    }
}

static void loop(struct srv *srv)
{
    struct epoll_event evs[64];

    for (;;) {
        scrm_rt_enter(); /* every client's way in (rtprio.h): raised unless busy */
        int n = epoll_wait(srv->epfd, evs, 64, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_error(ipc, "epoll_wait: %s", strerror(errno));
            return;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &tag_stop)
                return;
            if (p == &tag_listen) {
                accept_all(srv, srv->listen_fd, SRV_FRONT_SCRM);
            } else if (p == &tag_pcl_listen) {
                accept_all(srv, srv->pcl_listen_fd, SRV_FRONT_PCSCLITE);
            } else if (p == &tag_timer) {
                srv_deadline_expired(srv);
            } else if (p == &tag_linger) {
                srv_linger_expired(srv);
            } else if (p == &tag_wake) {
                run_ready(srv);
            } else {
                struct session *s = p;
                session_ref(s); /* closing inside the handler must not free it under us */
                session_event(s, evs[i].events);
                session_unref(s);
            }
        }
    }
}

/* Disconnect every client and wait for their teardown. */
static void close_all(struct srv *srv)
{
    while (!LIST_EMPTY(&srv->sessions)) {
        struct session *s = LIST_FIRST(&srv->sessions);
        session_ref(s);
        session_close(s, "server stopping", false);
        session_unref(s);
    }
    srv_pool_drain(&srv->pool);
    run_ready(srv); /* drop the references of sessions still queued */
}

static int add_tag(struct srv *srv, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
    return epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int srv_setup(struct srv *srv, struct rm *rm, const struct scrmd_config *cfg, int stop_fd)
{
    memset(srv, 0, sizeof *srv);
    TAILQ_INIT(&srv->tq);
    atomic_init(&srv->pcl_past_16, 0);
    srv->rm = rm;
    srv->stop_fd = stop_fd;
    srv->group = cfg->socket_gid;
    srv->admin_gid = cfg->admin_gid;
    srv->uid = geteuid();
    srv->pid = getpid();
    srv->loop_thread = pthread_self();
    srv->listen_fd = srv->pcl_listen_fd = srv->epfd = srv->wake_fd = srv->timer_fd = -1;
    scrm_mutex_init(&srv->ready_lock);
    if (srv_linger_init(srv) < 0)
        return -1;
    srv_spy_init(srv);
    srv->max_clients = cfg->max_clients;
    srv->max_cards = cfg->max_cards_per_client;
    srv->io_timeout_ms = cfg->io_timeout_ms;
    srv->max_threads = cfg->max_threads;
    if (srv_pool_init(&srv->pool, cfg->max_threads) < 0)
        return -1;
    srv->pool.chain_end = session_chain_end; /* before any job: submit's lock orders it */
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->epfd < 0 || srv->wake_fd < 0)
        return -1;
    srv->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (add_tag(srv, stop_fd, &tag_stop) < 0 || add_tag(srv, srv->wake_fd, &tag_wake) < 0 ||
        srv->timer_fd < 0 || add_tag(srv, srv->timer_fd, &tag_timer) < 0 ||
        add_tag(srv, srv->linger_fd, &tag_linger) < 0)
        return -1;
    return 0;
}

int scrm_server_run(struct rm *rm, const struct scrmd_config *cfg, int stop_fd)
{
    struct srv srv;
    bool created = false, pcl_created = false;
    const char *path = cfg->socket_path ? cfg->socket_path : IPC_DEFAULT_SOCKET;
    int rc = -1;

    if (srv_setup(&srv, rm, cfg, stop_fd) < 0) {
        log_error(ipc, "server setup: %s", strerror(errno));
        goto out;
    }
    srv.listen_fd = open_listener(cfg, path, cfg->listen_fd, "scrm's protocol", &created);
    if (srv.listen_fd < 0)
        goto out;
    srv.socket_path = created ? path : NULL;
    /* inherited sockets start at fd 3 (socket activation); 0 in a zeroed config means none */
    if (cfg->pcsclite_listen_fd >= 3 || cfg->pcsclite_socket) {
        int inherited = cfg->pcsclite_listen_fd >= 3 ? cfg->pcsclite_listen_fd : -1;
        srv.pcl_listen_fd = open_listener(cfg, cfg->pcsclite_socket, inherited,
                                          "pcsc-lite's protocol", &pcl_created);
        if (srv.pcl_listen_fd < 0)
            goto out;
        srv.pcl_socket_path = pcl_created ? cfg->pcsclite_socket : NULL;
    }
    if (add_tag(&srv, srv.listen_fd, &tag_listen) < 0 ||
        (srv.pcl_listen_fd >= 0 && add_tag(&srv, srv.pcl_listen_fd, &tag_pcl_listen) < 0)) {
        log_error(ipc, "epoll_ctl: %s", strerror(errno));
        goto out;
    }
    loop(&srv);
    scrm_rt_leave(); /* the shutdown is no critical path */
    log_info(ipc, "stopping: %u client(s) connected", srv.n_sessions);
    close_all(&srv);
    rc = 0;
out:
    srv_pool_destroy(&srv.pool);
    if (srv.socket_path)
        unlink(srv.socket_path);
    if (created)
        close(srv.listen_fd);
    if (srv.pcl_socket_path)
        unlink(srv.pcl_socket_path);
    if (pcl_created)
        close(srv.pcl_listen_fd);
    if (srv.wake_fd >= 0)
        close(srv.wake_fd);
    if (srv.timer_fd >= 0)
        close(srv.timer_fd);
    srv_linger_destroy(&srv);
    if (srv.epfd >= 0)
        close(srv.epfd);
    scrm_mutex_destroy(&srv.ready_lock);
    srv_spy_destroy(&srv);
    return rc;
}
