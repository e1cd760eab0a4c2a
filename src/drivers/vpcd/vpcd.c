/*
 * The vpcd reader driver ("vpcd"): a reader whose card is a program speaking vsmartcard's virtual
 * reader protocol over TCP (vicc, jCardSim, phone card emulators). See docs/vpcd.md.
 *
 *   vpcd:[ADDR:]PORT[:options]      listen on ADDR (default 127.0.0.1) port PORT for one card
 *   vpcd:connect:HOST:PORT[:opts]   reverse mode: connect out to a card that listens
 *
 * One TCP connection is one card: a connection is an insertion, its end is a removal. Both are
 * seen by the driver's event thread — one for all vpcd readers of the process, epoll on their
 * listening sockets, their cards' connections and reverse-mode timers — and reported at once
 * through smc_card_inserted / smc_card_removed: nothing polls. The card is APDU-level: SET_PROTOCOL
 * takes the protocol its ATR offers (no PPS), TRANSMIT sends the command APDU as one message and
 * waits for one answer.
 *
 * Who touches the card's socket: while no slot runs, the event thread watches it (an end of
 * connection is a removal; bytes the card sends unasked are a protocol violation and drop it).
 * A slot (power, transmit; they run one at a time under libsmc's op lock) takes the socket for
 * its exchange: under `lock` it marks the card busy and stops the event thread's watch on it
 * (EPOLL_CTL_MOD to no events), then writes and reads with no lock held, and gives it back the
 * same way. Every message goes out in one write (TCP_NODELAY). The answer is awaited at most
 * `timeout` ms (SO_RCVTIMEO plus a deadline); a card that stalls, closes or answers with a bad
 * frame is dropped: its connection is closed and the removal reported, so the request ends as
 * STATUS_NO_MEDIA, never as an empty success. Whoever closes the connection (under `lock`)
 * reports the removal, so each card is removed exactly once.
 *
 * Reverse mode has to retry while the card is not listening: a non-blocking connect from the event
 * thread, then again after 100 ms doubling to 2 s (a timerfd per reader); after a card left it
 * connects again at once, 2 s after a bad one. The listening mode has no timer at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/opts.h"
#include "common/timeutil.h"
#include "drivers/vpcd/vpcd_frame.h"
#include "smc/driver.h"

#define VPCD_DEFAULT_ADDR    "127.0.0.1"
#define VPCD_DEFAULT_TIMEOUT 10000u /* ms a card may take to answer */
#define RETRY_MIN_MS         100u
#define RETRY_MAX_MS         2000u
#define IO_HEADER_LEN        8u /* SCARD_IO_REQUEST in front of TRANSMIT data */

/* What an epoll event is about. */
enum ev_tag { EV_WAKE = 1, EV_LISTEN, EV_CARD, EV_CONNECT, EV_RETRY };

struct vpcd;

/* An epoll registration: data.ptr of the event points to it. */
struct watch {
    struct vpcd *s; /* NULL for the loop's own eventfd */
    enum ev_tag tag;
};

/*
 * The driver's one event thread, shared by every vpcd reader of the process (started by the first
 * open, ended by the last close). `batches` counts the epoll_wait results it has finished
 * handling: close() removes a reader's descriptors from the set, then waits for the batch in
 * progress to end, after which no event of that reader can be handled any more.
 */
static struct {
    pthread_mutex_t life; /* start and stop of the thread (loop_ref / loop_unref) */
    pthread_mutex_t lock; /* batches, stop */
    pthread_cond_t done;
    unsigned refs;
    int ep, wake;
    pthread_t thread;
    uint64_t batches;
    bool stop;
    struct watch wake_watch;
} loop = {.life = PTHREAD_MUTEX_INITIALIZER,
          .lock = PTHREAD_MUTEX_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER,
          .ep = -1,
          .wake = -1,
          .wake_watch = {NULL, EV_WAKE}};

struct vpcd {
    struct smc_reader *r;
    char where[300];              /* "127.0.0.1:35963", "connect:HOST:PORT": for log lines */
    bool reverse;                 /* connect out instead of listening */
    struct sockaddr_storage addr; /* listening address, or the card's in reverse mode */
    socklen_t addr_len;
    uint32_t timeout_ms;

    int lfd;   /* listening socket; -1 in reverse mode */
    int timer; /* reverse mode: timerfd of the next connect attempt; -1 otherwise */
    struct watch w_listen, w_card, w_connect, w_retry;

    pthread_mutex_t lock;
    int cfd;      /* the card's connection; -1 = no card (lock) */
    bool busy;    /* a slot works on cfd: the event thread leaves it alone (lock) */
    bool closing; /* close() runs: the event thread's handlers do nothing (lock) */
    uint64_t gen; /* number of the current card, +1 per connection (lock) */

    /* event thread only (and close, once the thread no longer sees this reader) */
    int pending; /* reverse mode: connect in progress, -1 = none */
    uint32_t retry_ms;

    /* slots only (op lock) */
    uint64_t powered_gen; /* gen of the card we powered; 0 = unpowered */
    uint8_t *buf;         /* VPCD_HDR_LEN + VPCD_MAX_PAYLOAD: the message out, then the answer */
};

static const char *dev(const struct vpcd *s)
{
    return smc_reader_device(s->r);
}

static bool closing(struct vpcd *s)
{
    pthread_mutex_lock(&s->lock);
    bool c = s->closing;
    pthread_mutex_unlock(&s->lock);
    return c;
}

static int ep_set(int op, int fd, struct watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(loop.ep, op, fd, &ev);
}

/* Address of a socket's peer as "1.2.3.4:5678". */
static void peer_text(int fd, char *buf, size_t cap)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    char host[64], port[16];
    if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0 ||
        getnameinfo((struct sockaddr *)&sa, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(buf, cap, "?");
        return;
    }
    snprintf(buf, cap, "%s:%s", host, port);
}

/* ---- the card's connection ---- */

static void retry_in(struct vpcd *s, uint32_t ms);

/* Socket options of a card connection: no Nagle delay, keepalive probes to notice a card whose
 * host vanished while idle, and the bound on every blocking read and write. */
static void card_sockopts(const struct vpcd *s, int fd)
{
    int one = 1, idle = 10, intvl = 5, cnt = 3;
    struct timeval tv = {.tv_sec = s->timeout_ms / 1000, .tv_usec = s->timeout_ms % 1000 * 1000};
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
        log_warn(drv, "%s: cannot set the card connection's socket options: %s", dev(s),
                 strerror(errno));
}

/* A card connected (fd is blocking): it becomes the reader's card, reported as inserted. */
static void card_arrived(struct vpcd *s, int fd)
{
    char peer[80];
    peer_text(fd, peer, sizeof(peer));
    card_sockopts(s, fd);
    pthread_mutex_lock(&s->lock);
    if (s->closing) {
        pthread_mutex_unlock(&s->lock);
        close(fd);
        return;
    }
    bool taken = s->cfd >= 0;
    if (!taken) {
        if (ep_set(EPOLL_CTL_ADD, fd, &s->w_card, EPOLLIN | EPOLLRDHUP) != 0) {
            pthread_mutex_unlock(&s->lock);
            log_error(drv, "%s: cannot watch the card from %s: %s", dev(s), peer, strerror(errno));
            close(fd);
            return;
        }
        s->cfd = fd;
        s->gen++;
    }
    pthread_mutex_unlock(&s->lock);
    if (taken) {
        log_warn(drv, "%s: second card connection from %s refused: a card is already in the reader",
                 dev(s), peer);
        close(fd);
        return;
    }
    log_info(drv, "%s: card connected from %s", dev(s), peer);
    /* No swallow mechanism: the card is in position at once. */
    smc_card_inserted(s->r, SCARD_SWALLOWED);
}

/* Drop the card whose connection is fd (if it still is the card): close it and report the
 * removal. `why` is logged (at warning level when `bad`). Safe from the event thread and from a
 * slot; the caller holds no lock. */
static void card_drop(struct vpcd *s, int fd, bool bad, const char *why)
{
    pthread_mutex_lock(&s->lock);
    bool mine = fd >= 0 && s->cfd == fd;
    if (mine) {
        (void)epoll_ctl(loop.ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
        s->cfd = -1;
    }
    s->busy = false;
    pthread_mutex_unlock(&s->lock);
    if (!mine)
        return;
    if (bad)
        log_warn(drv, "%s: %s; card dropped", dev(s), why);
    else
        log_info(drv, "%s: %s: card removed", dev(s), why);
    smc_card_removed(s->r);
    if (s->reverse) /* connect again: at once after a card left, later after a bad one */
        retry_in(s, bad ? RETRY_MAX_MS : 0);
}

/* A slot takes the card's connection for an exchange; -1 without a card. */
static int card_take(struct vpcd *s)
{
    pthread_mutex_lock(&s->lock);
    int fd = s->cfd;
    if (fd >= 0) {
        s->busy = true;
        /* The event thread must not see the answer: no events until card_give. */
        (void)ep_set(EPOLL_CTL_MOD, fd, &s->w_card, 0);
    }
    pthread_mutex_unlock(&s->lock);
    return fd;
}

static void card_give(struct vpcd *s, int fd)
{
    pthread_mutex_lock(&s->lock);
    if (s->cfd == fd) {
        s->busy = false;
        (void)ep_set(EPOLL_CTL_MOD, fd, &s->w_card, EPOLLIN | EPOLLRDHUP);
    }
    pthread_mutex_unlock(&s->lock);
}

/* Write all of buf (normally one write). */
static bool send_all(int fd, const uint8_t *buf, size_t n, char *why, size_t cap)
{
    while (n) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(why, cap, "cannot write to the card: %s",
                     w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? "timed out"
                                                                        : strerror(errno));
            return false;
        }
        buf += w;
        n -= (size_t)w;
    }
    return true;
}

/* Read one answer frame of min..max payload bytes into s->buf; *plen gets its length. */
static bool recv_frame(struct vpcd *s, int fd, size_t min, size_t max, const char *what,
                       size_t *plen, char *why, size_t cap)
{
    uint64_t deadline = scrm_now_ns() + (uint64_t)s->timeout_ms * 1000000u;
    size_t have = 0, room = VPCD_HDR_LEN + max;
    for (;;) {
        size_t need;
        enum vpcd_parse v = vpcd_frame_parse(s->buf, have, min, max, plen, &need);
        if (v == VPCD_FRAME_OK)
            return true;
        if (v != VPCD_FRAME_MORE) {
            snprintf(why, cap, "bad frame from the card (%s): %s, length %zu", what,
                     vpcd_parse_text(v), *plen);
            return false;
        }
        /* Ask for one byte more than the frame needs: a card that sent more is caught. */
        size_t want = (need + 1 < room ? need + 1 : room) - have;
        ssize_t got = recv(fd, s->buf + have, want, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got == 0) {
            snprintf(why, cap, "the card closed its connection while %s was awaited", what);
            return false;
        }
        if (got < 0) {
            snprintf(why, cap, "%s: %s", what,
                     errno == EAGAIN || errno == EWOULDBLOCK ? "the card did not answer in time"
                                                             : strerror(errno));
            return false;
        }
        have += (size_t)got;
        if (have < need && scrm_now_ns() > deadline) {
            snprintf(why, cap, "%s: the card did not answer in time", what);
            return false;
        }
    }
}

/* ---- the event thread ---- */

/* Reverse mode: (re)connect after `ms` milliseconds (at once for 0). */
static void retry_in(struct vpcd *s, uint32_t ms)
{
    struct itimerspec its = {.it_value = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L}};
    if (ms == 0)
        its.it_value.tv_nsec = 1; /* all zero would disarm the timer */
    if (timerfd_settime(s->timer, 0, &its, NULL) != 0)
        log_error(drv, "%s: cannot arm the reconnection timer: %s", dev(s), strerror(errno));
}

/* Reverse mode: the connect attempt failed; try again later. */
static void connect_failed(struct vpcd *s, int err)
{
    log_debug(drv, "%s: no card at %s (%s); retrying in %u ms", dev(s), s->where, strerror(err),
              s->retry_ms);
    retry_in(s, s->retry_ms);
    s->retry_ms = s->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : s->retry_ms * 2;
}

/* Reverse mode: the retry timer fired; connect unless a card is in or a connect is under way. */
static void start_connect(struct vpcd *s)
{
    uint64_t expirations;
    if (closing(s))
        return;
    (void)read(s->timer, &expirations, sizeof(expirations));
    pthread_mutex_lock(&s->lock);
    bool card = s->cfd >= 0;
    pthread_mutex_unlock(&s->lock);
    if (card || s->pending >= 0)
        return;
    int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        connect_failed(s, errno);
        return;
    }
    if (connect(fd, (struct sockaddr *)&s->addr, s->addr_len) != 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        connect_failed(s, err);
        return;
    }
    if (ep_set(EPOLL_CTL_ADD, fd, &s->w_connect, EPOLLOUT) != 0) {
        int err = errno;
        close(fd);
        connect_failed(s, err);
        return;
    }
    s->pending = fd;
}

static void connect_done(struct vpcd *s)
{
    int fd = s->pending, err = 0;
    if (fd < 0 || closing(s))
        return;
    socklen_t len = sizeof(err);
    s->pending = -1;
    (void)epoll_ctl(loop.ep, EPOLL_CTL_DEL, fd, NULL);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    int fl = fcntl(fd, F_GETFL);
    if (!err && (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0))
        err = errno;
    if (err) {
        close(fd);
        connect_failed(s, err);
        return;
    }
    s->retry_ms = RETRY_MIN_MS;
    card_arrived(s, fd);
}

static void accept_card(struct vpcd *s)
{
    if (closing(s))
        return;
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            log_warn(drv, "%s: accept: %s", dev(s), strerror(errno));
        return;
    }
    card_arrived(s, fd);
}

/* The idle card's connection is readable or closed. The event may be older than the current card
 * (a card replaced within one batch): only what the current connection shows counts. */
static void card_event(struct vpcd *s)
{
    pthread_mutex_lock(&s->lock);
    int fd = s->cfd;
    bool idle = fd >= 0 && !s->busy && !s->closing;
    uint8_t b[64];
    ssize_t n = -1;
    errno = EAGAIN;
    if (idle)
        n = recv(fd, b, sizeof(b), MSG_DONTWAIT | MSG_PEEK);
    int err = errno;
    pthread_mutex_unlock(&s->lock);
    if (!idle)
        return; /* a slot took it meanwhile, or it is gone: the slot sees what happened */
    if (n > 0) {
        char why[128];
        snprintf(why, sizeof(why), "bad frame from the card: %zd unasked byte%s while idle", n,
                 n == 1 ? "" : "s");
        card_drop(s, fd, true, why);
    } else if (n == 0) {
        card_drop(s, fd, false, "the card closed its connection");
    } else if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
        char why[128];
        snprintf(why, sizeof(why), "connection to the card failed: %s", strerror(err));
        card_drop(s, fd, true, why);
    }
}

static void *event_thread(void *arg)
{
    (void)arg;
    for (;;) {
        struct epoll_event evs[16];
        int n = epoll_wait(loop.ep, evs, 16, -1);
        if (n < 0 && errno != EINTR) {
            log_error(drv, "vpcd: epoll_wait: %s; the readers stop watching their cards",
                      strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct watch *w = evs[i].data.ptr;
            switch (w->tag) {
            case EV_WAKE: {
                uint64_t v;
                (void)read(loop.wake, &v, sizeof(v));
                break;
            }
            case EV_LISTEN: accept_card(w->s); break;
            case EV_CONNECT: connect_done(w->s); break;
            case EV_RETRY: start_connect(w->s); break;
            case EV_CARD: card_event(w->s); break;
            }
        }
        pthread_mutex_lock(&loop.lock);
        loop.batches++;
        bool stop = loop.stop;
        pthread_cond_broadcast(&loop.done);
        pthread_mutex_unlock(&loop.lock);
        if (stop)
            break;
    }
    return NULL;
}

/* Take a reference on the event thread, starting it for the first reader. */
static bool loop_ref(void)
{
    pthread_mutex_lock(&loop.life);
    bool ok = true;
    if (loop.refs == 0) {
        loop.stop = false;
        loop.ep = epoll_create1(EPOLL_CLOEXEC);
        loop.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ok = loop.ep >= 0 && loop.wake >= 0 &&
             ep_set(EPOLL_CTL_ADD, loop.wake, &loop.wake_watch, EPOLLIN) == 0 &&
             pthread_create(&loop.thread, NULL, event_thread, NULL) == 0;
        if (ok) { /* named here, before any caller looks: for top -H, gdb and the tests */
            (void)pthread_setname_np(loop.thread, "scrm-vpcd");
        } else {
            log_error(drv, "vpcd: cannot start the event thread: %s", strerror(errno));
            if (loop.ep >= 0)
                close(loop.ep);
            if (loop.wake >= 0)
                close(loop.wake);
            loop.ep = loop.wake = -1;
        }
    }
    if (ok)
        loop.refs++;
    pthread_mutex_unlock(&loop.life);
    return ok;
}

/* Wait until the event thread has finished the batch it may be handling now (the caller took its
 * descriptors out of the set before). */
static void loop_sync(void)
{
    pthread_mutex_lock(&loop.lock);
    if (!pthread_equal(pthread_self(), loop.thread)) {
        uint64_t want = loop.batches + 1;
        uint64_t one = 1;
        (void)write(loop.wake, &one, sizeof(one));
        while (loop.batches < want)
            pthread_cond_wait(&loop.done, &loop.lock);
    }
    pthread_mutex_unlock(&loop.lock);
}

/* Drop a reference; the last one stops the event thread. */
static void loop_unref(void)
{
    pthread_mutex_lock(&loop.life);
    if (--loop.refs == 0) {
        pthread_mutex_lock(&loop.lock);
        loop.stop = true;
        pthread_mutex_unlock(&loop.lock);
        uint64_t one = 1;
        (void)write(loop.wake, &one, sizeof(one));
        pthread_join(loop.thread, NULL);
        close(loop.ep);
        close(loop.wake);
        loop.ep = loop.wake = -1;
    }
    pthread_mutex_unlock(&loop.life);
}

/* ---- RDF slots ---- */

/* Send the n-byte message already framed in s->buf and, when answer_max is not 0, read the answer
 * (answer_min..answer_max payload bytes) into s->buf. A failure drops the card: NO_MEDIA. */
static smc_status exchange(struct vpcd *s, size_t n, size_t answer_min, size_t answer_max,
                           const char *what, size_t *plen)
{
    int fd = card_take(s);
    if (fd < 0)
        return STATUS_NO_MEDIA;
    char why[160];
    if (!send_all(fd, s->buf, n, why, sizeof(why)) ||
        (answer_max && !recv_frame(s, fd, answer_min, answer_max, what, plen, why, sizeof(why)))) {
        card_drop(s, fd, true, why);
        return STATUS_NO_MEDIA;
    }
    card_give(s, fd);
    return STATUS_SUCCESS;
}

static size_t put_ctrl(uint8_t *p, enum vpcd_ctrl c)
{
    p[0] = 0;
    p[1] = 1;
    p[2] = (uint8_t)c;
    return 3;
}

static uint64_t card_gen(struct vpcd *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t g = s->cfd >= 0 ? s->gen : 0;
    pthread_mutex_unlock(&s->lock);
    return g;
}

static smc_status vpcd_power(struct smc_reader *r, struct smc_io *io)
{
    struct vpcd *s = smc_reader_priv(r);
    uint64_t gen = card_gen(s);
    if (!gen)
        return STATUS_NO_MEDIA;
    size_t n = 0, plen = 0;
    if (io->minor == SCARD_POWER_DOWN) {
        n = put_ctrl(s->buf, VPCD_CTRL_OFF);
        s->powered_gen = 0;
        return exchange(s, n, 0, 0, "", &plen);
    }
    /* The commands and the ATR request go out together: the card answers only the last. */
    if (io->minor == SCARD_COLD_RESET) {
        if (s->powered_gen == gen)
            n += put_ctrl(s->buf + n, VPCD_CTRL_OFF);
        n += put_ctrl(s->buf + n, VPCD_CTRL_ON);
    } else {
        n += put_ctrl(s->buf + n, VPCD_CTRL_RESET);
    }
    n += put_ctrl(s->buf + n, VPCD_CTRL_ATR);
    smc_status st = exchange(s, n, 1, MAXIMUM_ATR_LENGTH, "the ATR", &plen);
    if (st != STATUS_SUCCESS)
        return st;
    s->powered_gen = gen;
    smc_reader_set_atr(r, s->buf + VPCD_HDR_LEN, plen);
    return STATUS_SUCCESS;
}

/* The card exchanges APDUs itself: the protocol is the one its ATR offers, without PPS. */
static smc_status vpcd_set_protocol(struct smc_reader *r, struct smc_io *io)
{
    return smc_select_protocol(r, io, NULL);
}

/* io->in: SCARD_IO_REQUEST header (protocol, header length) + command APDU; io->out: header +
 * response APDU. Everything is read from io->in before io->out is written (they may alias). */
static smc_status vpcd_transmit(struct smc_reader *r, struct smc_io *io)
{
    struct vpcd *s = smc_reader_priv(r);
    if (io->in_len < IO_HEADER_LEN)
        return STATUS_INVALID_PARAMETER;
    uint32_t hdr = scrm_get_u32le(io->in + 4);
    if (hdr < IO_HEADER_LEN || hdr >= io->in_len || io->in_len - hdr > VPCD_MAX_PAYLOAD)
        return STATUS_INVALID_PARAMETER;
    size_t n =
        vpcd_frame_put(s->buf, VPCD_HDR_LEN + VPCD_MAX_PAYLOAD, io->in + hdr, io->in_len - hdr);
    size_t plen = 0;
    smc_status st = exchange(s, n, 2, VPCD_MAX_PAYLOAD, "the response APDU", &plen);
    if (st != STATUS_SUCCESS)
        return st;
    io->info = IO_HEADER_LEN + plen;
    if (io->out_len < io->info)
        return STATUS_BUFFER_TOO_SMALL;
    struct smc_card_caps caps;
    smc_reader_card_caps(r, &caps);
    scrm_put_u32le(io->out, caps.protocol_selected);
    scrm_put_u32le(io->out + 4, IO_HEADER_LEN);
    memcpy(io->out + IO_HEADER_LEN, s->buf + VPCD_HDR_LEN, plen);
    return STATUS_SUCCESS;
}

/* Detection is always armed: the event thread reports connections and their ends. */
static smc_status vpcd_card_tracking(struct smc_reader *r, uint32_t code)
{
    (void)r;
    (void)code;
    return STATUS_PENDING;
}

static smc_status vpcd_vendor(struct smc_reader *r, struct smc_io *io)
{
    (void)r;
    if (io->code == IOCTL_SMARTCARD_GET_FEATURE_REQUEST) {
        io->info = 0; /* no PC/SC part 10 features */
        return STATUS_SUCCESS;
    }
    return STATUS_NOT_SUPPORTED;
}

/* ---- lifetime ---- */

/* Split "HOST:PORT" or "PORT" (host then `def`); [v6] brackets are removed. */
static bool split_hostport(const char *text, const char *def, char *host, size_t hcap,
                           uint32_t *port)
{
    const char *colon = strrchr(text, ':');
    const char *p = colon ? colon + 1 : text;
    if (!scrm_parse_u32(p, 65535, port))
        return false;
    if (!colon)
        return snprintf(host, hcap, "%s", def) < (int)hcap;
    size_t n = (size_t)(colon - text);
    if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
        text++;
        n -= 2;
    }
    if (n == 0 || n >= hcap)
        return false;
    memcpy(host, text, n);
    host[n] = '\0';
    return true;
}

static bool resolve(struct vpcd *s, const char *host, uint32_t port, bool passive)
{
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0 || !res) {
        log_error(drv, "vpcd: cannot resolve '%s': %s", host, gai_strerror(rc));
        return false;
    }
    memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
    s->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

static bool listen_on(struct vpcd *s)
{
    s->lfd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->lfd < 0 || setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(s->lfd, (struct sockaddr *)&s->addr, s->addr_len) != 0 || listen(s->lfd, 4) != 0) {
        log_error(drv, "vpcd: cannot listen on %s: %s", s->where, strerror(errno));
        return false;
    }
    /* Port 0 asks for any free port: name the one we got. */
    socklen_t len = sizeof(s->addr);
    if (getsockname(s->lfd, (struct sockaddr *)&s->addr, &len) != 0)
        return false;
    s->addr_len = len;
    return true;
}

static uint16_t addr_port(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

static bool apply_option(struct vpcd *s, const struct scrm_opt *o)
{
    struct smc_vendor_attr *va = smc_reader_vendor(s->r);
    if (!strcmp(o->key, "timeout"))
        return scrm_parse_u32(o->value, 3600000, &s->timeout_ms) && s->timeout_ms >= 10;
    if (!strcmp(o->key, "unit"))
        return scrm_parse_u32(o->value, 0xFFFF, &va->unit);
    if (!strcmp(o->key, "vendor"))
        return scrm_parse_string(o->value, va->vendor_name, sizeof(va->vendor_name));
    if (!strcmp(o->key, "ifd"))
        return scrm_parse_string(o->value, va->ifd_type, sizeof(va->ifd_type));
    return false;
}

static void vpcd_free(struct vpcd *s)
{
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->timer >= 0)
        close(s->timer);
    pthread_mutex_destroy(&s->lock);
    free(s->buf);
    free(s);
}

static void set_where(struct vpcd *s, const char *host, uint32_t port)
{
    bool v6 = strchr(host, ':') != NULL;
    snprintf(s->where, sizeof(s->where), "%s%s%s%s:%u", s->reverse ? "connect:" : "", v6 ? "[" : "",
             host, v6 ? "]" : "", port);
}

/* Parse the address, fill the reader's identification. false (logged) on a bad device string. */
static bool configure(struct vpcd *s, const char *address, const char *options)
{
    char host[256];
    uint32_t port = 0;
    s->reverse = strncmp(address, "connect:", 8) == 0;
    const char *hp = s->reverse ? address + 8 : address;
    if (!split_hostport(hp, VPCD_DEFAULT_ADDR, host, sizeof(host), &port) ||
        (s->reverse && (!strchr(hp, ':') || port == 0))) {
        log_error(drv,
                  "vpcd:%s: bad address (expected vpcd:[ADDR:]PORT or "
                  "vpcd:connect:HOST:PORT)",
                  address);
        return false;
    }
    if (!resolve(s, host, port, !s->reverse))
        return false;
    struct smc_vendor_attr *va = smc_reader_vendor(s->r);
    struct smc_reader_caps *c = smc_reader_caps(s->r);
    memcpy(va->vendor_name, "Virtual", sizeof("Virtual"));
    memcpy(va->ifd_type, "PCD", sizeof("PCD"));
    va->ifd_version = 0x01000000;
    va->unit = port;
    s->timeout_ms = VPCD_DEFAULT_TIMEOUT;
    struct scrm_opt o;
    const char *cur = options;
    bool unit_set = false;
    while (scrm_opts_next(&cur, &o)) {
        if (!o.key[0] || !apply_option(s, &o)) {
            log_error(drv,
                      "vpcd:%s: bad option '%s=%s' (options: timeout=MS, unit=N, vendor=, "
                      "ifd=)",
                      address, o.key, o.value);
            return false;
        }
        unit_set |= !strcmp(o.key, "unit");
    }
    set_where(s, host, port);
    if (!s->reverse) {
        if (!listen_on(s))
            return false;
        port = addr_port(&s->addr);
        set_where(s, host, port);
        if (!unit_set)
            va->unit = port;
    }
    size_t wl = strlen(s->where); /* the serial attribute holds 32 characters: keep the end */
    size_t keep = wl < sizeof(va->serial) ? wl : sizeof(va->serial) - 1;
    memcpy(va->serial, s->where + wl - keep, keep);
    va->serial[keep] = '\0';
    c->protocols = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1;
    c->reader_type = SCARD_READER_TYPE_VENDOR;
    c->channel = port;
    c->clk_default_khz = c->clk_max_khz = 3580;
    c->rate_default = c->rate_max = 9600;
    c->max_ifsd = 254;
    return true;
}

static smc_status vpcd_open(struct smc_reader *r, const char *address, const char *options)
{
    struct vpcd *s = calloc(1, sizeof(*s));
    if (!s)
        return STATUS_INSUFFICIENT_RESOURCES;
    s->r = r;
    s->lfd = s->timer = s->cfd = s->pending = -1;
    s->w_listen = (struct watch){s, EV_LISTEN};
    s->w_card = (struct watch){s, EV_CARD};
    s->w_connect = (struct watch){s, EV_CONNECT};
    s->w_retry = (struct watch){s, EV_RETRY};
    s->retry_ms = RETRY_MIN_MS;
    pthread_mutex_init(&s->lock, NULL);
    s->buf = malloc(VPCD_HDR_LEN + VPCD_MAX_PAYLOAD);
    if (!s->buf) {
        vpcd_free(s);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    if (!configure(s, address, options)) {
        vpcd_free(s);
        return STATUS_INVALID_PARAMETER;
    }
    if (s->reverse) {
        s->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (s->timer < 0) {
            log_error(drv, "vpcd:%s: timerfd: %s", address, strerror(errno));
            vpcd_free(s);
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    if (!loop_ref()) {
        vpcd_free(s);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    smc_reader_set_priv(r, s);
    smc_reader_set_state(r, SCARD_ABSENT);
    /* From here the event thread may report events for this reader. */
    int rc = s->reverse ? ep_set(EPOLL_CTL_ADD, s->timer, &s->w_retry, EPOLLIN)
                        : ep_set(EPOLL_CTL_ADD, s->lfd, &s->w_listen, EPOLLIN);
    if (rc != 0) {
        log_error(drv, "vpcd:%s: cannot watch its socket: %s", address, strerror(errno));
        smc_reader_set_priv(r, NULL);
        vpcd_free(s);
        loop_unref();
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    if (s->reverse)
        retry_in(s, 0);
    log_info(drv, "vpcd:%s: %s %s", address,
             s->reverse ? "connecting to a card at" : "listening on", s->where);
    return STATUS_SUCCESS;
}

/* Stop the event thread's work for this reader: from now on its handlers return at once; then
 * take its descriptors out of the set and wait until no batch can still hold one of its events. */
static void vpcd_close(struct smc_reader *r)
{
    struct vpcd *s = smc_reader_priv(r);
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    if (s->cfd >= 0)
        (void)epoll_ctl(loop.ep, EPOLL_CTL_DEL, s->cfd, NULL);
    pthread_mutex_unlock(&s->lock);
    if (s->lfd >= 0)
        (void)epoll_ctl(loop.ep, EPOLL_CTL_DEL, s->lfd, NULL);
    if (s->timer >= 0)
        (void)epoll_ctl(loop.ep, EPOLL_CTL_DEL, s->timer, NULL);
    loop_sync(); /* handlers that started before `closing` are done; s->pending is stable */
    if (s->pending >= 0) {
        (void)epoll_ctl(loop.ep, EPOLL_CTL_DEL, s->pending, NULL);
        loop_sync();
        close(s->pending);
    }
    if (s->cfd >= 0)
        close(s->cfd);
    vpcd_free(s);
    smc_reader_set_priv(r, NULL);
    loop_unref();
}

const struct smc_driver_ops smc_vpcd_driver = {
    .name = "vpcd",
    .address_colons = true,
    .open = vpcd_open,
    .close = vpcd_close,
    .power = vpcd_power,
    .transmit = vpcd_transmit,
    .set_protocol = vpcd_set_protocol,
    .card_tracking = vpcd_card_tracking,
    .ioctl_vendor = vpcd_vendor,
};
