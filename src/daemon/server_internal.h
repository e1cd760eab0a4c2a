/*
 * Internals of scrmd's socket server (server.c, server_session.c, server_core.c, server_cmds.c,
 * server_pool.c).
 *
 * Threads
 *   - The loop thread (the caller of scrm_server_run) owns the epoll set: it accepts clients,
 *     reads and checks every message, answers the quick commands itself (HELLO, LIST_READERS),
 *     and closes sessions. Nothing it does costs more than the message at hand or grows with
 *     the number of other clients or of their waits.
 *   - Everything else runs on the worker pool: requests that may block on a reader (CONNECT ...
 *     SET_ATTRIB), and the status-change waits (GET_STATUS_CHANGE, STOP_WAIT): registering one,
 *     comparing its readers when a watch fires, and ending it cost O(the client's entries) and
 *     are done by a worker, so a client with thousands of entries never holds up the loop. The pool
 *     grows on demand (a new thread when a job arrives and no idle thread is free for it),
 * so a slow card or a long transaction wait on one reader does not hold up clients of other
 *     readers. The worker writes the reply to the socket itself.
 *   - Reader events arrive on rm threads through watch callbacks, which only queue the session on
 *     the ready list and poke an eventfd; the loop thread hands the session to a worker that
 *     compares the wait's readers again (one watch per distinct reader name and client).
 *
 * A session processes one request at a time. While a worker runs one (`busy`), the loop does not
 * read from that client (its epoll interest drops EPOLLIN), which also gives back-pressure against
 * a client that sends without reading. Pending output works the same way. The epoll interest is
 * always recomputed from the session state by session_rearm(), under the session lock.
 *
 * Lifetime: a session is reference-counted (the server's list, a queued job, a ready-list entry).
 * Closing is done by the loop thread: the fd leaves the epoll set, the owner's blocked rm calls
 * are cancelled, its waits unwatched; once no worker runs for it, a pool job calls
 * rm_owner_gone() (which resets its cards and ends its transactions) and drops the last
 * reference, which closes the fd and frees the session.
 */
#ifndef SCRM_DAEMON_SERVER_INTERNAL_H
#define SCRM_DAEMON_SERVER_INTERNAL_H

#include "common/compiler.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "common/scard_codes.h"
#include "common/mutex.h"
#include "daemon/rtprio.h"
#include "ipc/idmap.h"
#include "ipc/ipc.h"
#include "rm/rm.h"

struct rm;

#define SRV_LISTEN_BACKLOG SOMAXCONN
/* A worker with nothing more to run waits this long for the next request of the clients
 * lingering on it (cut short when jobs queue with no thread free for them: srv_pool_starve_fd),
 * and a lingering client waits at most this long for its worker's current request before the
 * loop thread takes it back (server_linger.c). Long enough for a client that shares the CPU with
 * others to get its turn: 200 us lost most lingers with 2 clients on 2 cores
 * (docs/ifd-figures.md). */
#define SRV_LINGER_US      2000u
/* At most this many sessions linger on one worker (server_session.c): it looks at all of them
 * between two requests (one ppoll), so the cost stays flat however many clients share a reader;
 * the others go back to the loop thread as before. */
#define SRV_LINGER_MAX     8u
#define SRV_READ_BUDGET    (64u * 1024u) /* bytes the loop reads from one client per wake-up */

/* ---- Worker pool (server_pool.c) --------------------------------------------------------------
 */
struct srv_job {
    void (*fn)(struct srv_job *job);
    struct srv_job *next;
};

/* An idle worker leaves after this (the last one stays, in reserve: server_pool.c). Short, so
 * that a burst of requests after a pause runs on new threads, which the kernel spreads over the
 * CPUs, not on the ones left from the last burst, wherever those last ran (docs/pcsc.md). */
#define SRV_POOL_IDLE_MS 1000u

struct srv_worker;
struct srv_pool {
    scrm_mutex lock;
    scrm_cond drained;            /* a thread finished its job or left */
    struct srv_job *head, *tail;  /* jobs that found no idle thread */
    LIST_HEAD(, srv_worker) idle; /* idle threads, the most recently idle first */
    unsigned threads, running, queued;
    unsigned held; /* jobs parked outside the queue that will be submitted (srv_pool_hold) */
    unsigned max;  /* cap on threads, 0 = none */
    unsigned peak; /* most threads at once */
    bool stop;
    bool create_failed; /* the last pthread_create failed (logged once) */
    bool starved;       /* starve_fd is signalled */
    /* Called on a worker when its chain of jobs (a job and what it deferred) ends; it may defer
     * another job, which then runs on this worker. NULL: nothing. */
    void (*chain_end)(void);
    int starve_fd;   /* eventfd, readable while a job waits with no thread free for it */
    pthread_t *dead; /* threads that left, to join */
    unsigned n_dead, dead_cap;
};

/* The end of a worker's chain of jobs (srv_pool.chain_end; server_session.c). */
void session_chain_end(void);
/* Start the pool with its first thread (which never leaves); -1 if it cannot be created. */
SCRM_MUST_CHECK int srv_pool_init(struct srv_pool *p, unsigned max_threads);
/* Queue a job; starts a thread if none is free and the cap allows (if that fails, the job waits
 * for a running thread). */
void srv_pool_submit(struct srv_pool *p, struct srv_job *job);
/* srv_pool_submit for a client's request that opens a card or carries its APDUs, read by the
 * loop thread: it runs on a new thread while the cap allows, not on an idle one (server_pool.c,
 * "New threads for card streams"). */
void srv_pool_submit_new(struct srv_pool *p, struct srv_job *job);
/* srv_pool_submit, except on a worker of p between jobs' code: the job runs on this thread as
 * soon as its current job returns (one deferred job per thread; a second one is submitted). For
 * the request a worker wakes by freeing its reader (or takes from a lingering session): it runs
 * next on the thread that freed the reader (warm, and the sole candidate anyway) instead of
 * costing another thread's wake-up. */
void srv_pool_defer(struct srv_pool *p, struct srv_job *job);
/* True if the calling worker has a deferred job to run: its current job must not linger. */
bool srv_pool_deferred(void);
/* A descriptor that is readable while a queued job finds no thread free for it (cap reached or
 * no thread could be started): a worker lingering for a client's next request polls it too and
 * lets go at once. */
int srv_pool_starve_fd(struct srv_pool *p);
/* Current and peak number of threads. */
void srv_pool_stats(struct srv_pool *p, unsigned *threads, unsigned *peak);
/* A job parked outside the pool (a teardown waiting for a busy reader) will be submitted later:
 * drain and destroy wait for it until srv_pool_release (called after its submit). */
void srv_pool_hold(struct srv_pool *p);
void srv_pool_release(struct srv_pool *p);
/* Wait until no job is queued, running or held. */
void srv_pool_drain(struct srv_pool *p);
/* Drain, stop and join every thread. */
void srv_pool_destroy(struct srv_pool *p);

/* ---- Sessions ---------------------------------------------------------------------------------
 */

/* A GET_STATUS_CHANGE or WAIT_TX wait (set up, evaluated and ended by the worker that has the
 * session). */
struct srv_wait {
    uint16_t cmd; /* GET_STATUS_CHANGE, or WAIT_TX (one entry: the reader whose transaction) */
    uint32_t seq;
    uint32_t count;
    bool pnp;
    uint32_t pnp_known;
    struct ipc_gsc_entry *entries;
    struct rm_watch **watches; /* one per distinct name (+1 with pnp) */
    size_t n_watches;
};

struct srv;
struct pcl_session;

/* Which protocol a session speaks: the listener it came from. */
enum srv_front { SRV_FRONT_SCRM, SRV_FRONT_PCSCLITE };

struct session {
    struct srv *srv;
    enum srv_front front;
    struct pcl_session *pcl; /* pcsc-lite state (server_pcsclite.c), NULL for scrm's protocol */
    uint64_t id;             /* client id; also the owner id given to the rm */
    int fd;
    pid_t pid; /* peer credentials at connect (server_auth.c) */
    uid_t uid;
    gid_t gid;
    gid_t *groups;    /* supplementary groups at connect, n_groups entries */
    uint32_t spy_seq; /* SPY accepted: the seq its events carry (server_spy.c), 0 if none */
    size_t n_groups;
    atomic_uint refs;

    scrm_mutex lock; /* busy, closing, output, epoll interest */
    bool busy;       /* a worker has the session (a request, or a wait to evaluate) */
    bool wait_dirty; /* a watch fired while busy: evaluate the wait before letting go */
    bool closing;    /* session_close ran (loop thread) */
    uint8_t *out;    /* unsent reply bytes */
    size_t out_len, out_off;

    /* Loop thread only. */
    struct ipc_rx rx;
    /* set by the HELLO handler, which may run on a worker that took the client's next request;
     * read by the loop thread's deadlines */
    atomic_bool hello_done;
    /* Transaction waits are the client's (rm_thread_nowait while its requests run): the core
     * calls then return RM_TX_BUSY instead of holding the worker. scrm's front end sets it for
     * clients of minor >= 1 and answers IPC_S_TX_BUSY; a front end whose clients expect the
     * daemon to wait leaves it false (or answers as its protocol does, e.g. pcscd's
     * SCARD_E_SHARING_VIOLATION). RM_TX_BUSY must never reach a client as such. */
    bool nowait;
    /* A request waiting for its reader, busy with another handle's request (the rm answered
     * RM_READER_BUSY; rm_reader_idle_wait): the session stays busy, no thread waits, and the
     * request in job_msg runs again when the rm wakes it. park_req: the reply path saw
     * RM_READER_BUSY (the thread executing the request). parked: under lock. park: under
     * park_lock (taken before any rm lock; nothing takes it from an rm callback). */
    bool park_req;
    bool parked;
    scrm_mutex park_lock;
    struct rm_idle_wait park;
    /* The pending status-change wait: set and cleared only by the worker that has the session
     * (busy) or by its teardown; others read it only while the session is not busy. */
    struct srv_wait *wait;
    LIST_ENTRY(session) link; /* the server's list */

    /* The worker executing a request only (serialised by `busy`). */
    struct idmap cards; /* random handle -> rm card id */
    uint8_t *job_msg;   /* request being executed */
    size_t job_len;
    uint8_t *reply; /* reply buffer, grown on demand */
    size_t reply_cap;
    struct srv_job job;          /* request job */
    struct srv_job gone;         /* teardown job */
    struct session *linger_next; /* on a worker's linger set (server_linger.c) */

    /* Deadline (loop thread, server_timeout.c): armed before HELLO and while a message is
     * half-received. */
    uint64_t deadline_ns;
    bool tq_on;
    TAILQ_ENTRY(session) tq_link;

    bool in_ready; /* on the ready list (srv->ready_lock) */
    struct session *ready_next;
};

struct srv {
    struct rm *rm;
    int epfd, listen_fd, stop_fd, wake_fd;
    pthread_t loop_thread;   /* session_close and the session list belong to it (asserted) */
    int pcl_listen_fd;       /* pcsc-lite's protocol, -1 when not configured */
    const char *socket_path; /* file to remove at the end, NULL if inherited */
    const char *pcl_socket_path;
    atomic_uint pcl_past_16; /* readers last reported as too many for 4:4 / 4:5 clients */
    gid_t group;             /* allowed group, (gid_t)-1 for any */
    gid_t admin_gid;         /* admin_group, (gid_t)-1 for none (root and uid only) */
    uid_t uid;               /* the daemon's own user: privileged as well */
    pid_t pid;
    uint64_t next_id;
    unsigned n_sessions;
    uint32_t max_clients, max_cards; /* quotas from the configuration, 0 = none */
    uint32_t io_timeout_ms;          /* deadline of HELLO and of a begun message, 0 = none */
    uint32_t max_threads;            /* worker pool cap, 0 = none */
    int timer_fd;                    /* timerfd at the earliest deadline (server_timeout.c) */
    TAILQ_HEAD(, session) tq;        /* sessions with a deadline, earliest first */
    bool accept_paused; /* out of file descriptors: the listening socket is not watched */
    LIST_HEAD(, session) sessions;
    scrm_mutex ready_lock;
    struct session *ready; /* sessions whose watched readers changed */
    struct srv_pool pool;
    /* Lingering sessions (server_linger.c). */
    scrm_mutex linger_lock;
    LIST_HEAD(, srv_linger) lingers SCRM_GUARDED_BY(linger_lock); /* sets of workers in a chain */
    bool linger_timer_on SCRM_GUARDED_BY(linger_lock);            /* linger_fd is armed */
    int linger_fd; /* timerfd: the oldest waiting set is due */
};

/* What a worker found in a lingering session's socket: nothing yet (or only part of a request,
 * kept), something for the loop thread (left in the socket), or a whole request (in job_msg). */
enum srv_take { SRV_TAKE_NONE, SRV_TAKE_OTHER, SRV_TAKE_OK };

/* ---- Lingering sessions (server_linger.c) ---------------------------------------------------
 */
/* A worker's sessions kept after their answer, for their next request (server_session.c). */
struct srv_linger {
    scrm_mutex lock;                            /* head and since_ns: the worker, the loop */
    struct session *head SCRM_GUARDED_BY(lock); /* through session.linger_next */
    uint64_t since_ns SCRM_GUARDED_BY(lock);    /* left for a request then; 0: the worker looks */
    struct srv *srv;                            /* the worker's; set when first listed */
    LIST_ENTRY(srv_linger) link;                /* srv->lingers (srv->linger_lock) */
    bool listed;                                /* on srv->lingers (written by the worker) */
};
/* The calling worker's lingering sessions, taken off its set (NULL if none). */
struct session *srv_linger_detach(void);
/* Give the calling worker's set these sessions (its set is empty). job_follows: the worker runs
 * a request before it looks at them again, and the loop takes them if that lasts SRV_LINGER_US;
 * the set is listed for the loop's timer until srv_linger_chain_end. */
void srv_linger_attach(struct srv *srv, struct session *list, bool job_follows);
/* The calling worker's chain of jobs has ended with its set empty: off the loop's list. */
void srv_linger_chain_end(void);
/* Loop thread: linger_fd fired. */
void srv_linger_expired(struct srv *srv);
SCRM_MUST_CHECK int srv_linger_init(struct srv *srv);
void srv_linger_destroy(struct srv *srv);
/* Loop thread: a session taken from a worker's set goes back to reading (server_session.c). */
void session_linger_return(struct session *s);

/* ---- Authorization (server_auth.c) ------------------------------------------------------------
 */

/* The status a privileged command returns to a client that is not: "Access denied by the
 * security policy" (documented in scrmd(8) and docs/pcsc.md). */
#define SRV_E_NOT_PRIVILEGED SCARD_W_SECURITY_VIOLATION

/* Record the peer's credentials (SO_PEERCRED, SO_PEERGROUPS) at accept. */
void srv_peer_record(struct session *s, int fd);
/* Free what srv_peer_record allocated. */
void srv_peer_forget(struct session *s);
/* Is gid the client's primary group or one of its supplementary groups at connect time? */
SCRM_MUST_CHECK bool srv_client_in_group(const struct session *s, gid_t gid);
/* Root, the daemon's own user, or a member of admin_group. */
SCRM_MUST_CHECK bool srv_client_privileged(const struct session *s);
/* SCARD_S_SUCCESS for a privileged client; otherwise log the refusal of `what` and return
 * SRV_E_NOT_PRIVILEGED. */
uint32_t srv_require_privileged(const struct session *s, const char *what);

/* server_timeout.c (loop thread): give the session a deadline unless it has one; remove it;
 * arm or disarm from the session's state (no HELLO yet, or a message half-received); close the
 * sessions whose deadline passed (the timerfd fired). */
void srv_deadline_arm(struct srv *srv, struct session *s);
void srv_deadline_disarm(struct srv *srv, struct session *s);
void srv_deadline_update(struct srv *srv, struct session *s);
void srv_deadline_expired(struct srv *srv);

/* ---- APDU spy (server_spy.c) -------------------------------------------------------------------
 */
/* Is anyone spying? One atomic load. */
SCRM_MUST_CHECK bool srv_spy_active(void);
void srv_spy_init(struct srv *srv);
void srv_spy_destroy(struct srv *srv);
/* The session closes: it stops spying (loop thread). */
void srv_spy_forget(struct session *s);
/* An APDU and its answer (or rc), for the spies; cheap when nobody spies. */
void srv_spy_apdu(struct session *s, uint64_t card, const uint8_t *apdu, size_t apdu_len,
                  const uint8_t *resp, size_t resp_len, uint32_t rc, uint64_t usec);
void cmd_SPY(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed, const uint8_t *var,
             size_t var_len);

/* server.c: a session closed; resume accepting if descriptors ran out before. */
void srv_session_gone(struct srv *srv);

/* server_session.c */
struct session *session_new(struct srv *srv, int fd, enum srv_front front);
void session_ref(struct session *s);
void session_unref(struct session *s);
/* An epoll event for the session's fd (loop thread). */
void session_event(struct session *s, uint32_t events);
/* Close with a reason for the log (loop thread only: asserted); idempotent. A worker that finds
 * a reason to drop its client answers with an error instead, or shuts the socket down. */
void session_close(struct session *s, const char *why, bool violation);
/* A watch of the session's wait fired (loop thread): queue a pool job that compares its readers
 * again, or, while a worker has the session, have that worker do it before letting go. */
void session_wait_fired(struct session *s);
/* Compare the wait's readers with what the client knows and answer if they differ (the worker
 * that has the session). */
void session_wait_eval(struct session *s);
/* Queue a reply (any thread): sends what the socket takes, keeps the rest. */
void session_send(struct session *s, const uint8_t *msg, size_t len);
/* Recompute the epoll interest from the state; s->lock held. */
void session_rearm(struct session *s) SCRM_REQUIRES(s->lock);
/* End the wait (if any) with an empty reply of status rc (the worker that has the session). */
void session_end_wait(struct session *s, uint32_t rc);
/* Start a WAIT_TX wait for the reader's transaction; it may answer at once. The worker that has
 * the session. */
void session_start_tx_wait(struct session *s, const struct ipc_hdr *h, const char *reader);
/* Start a status-change wait on the decoded entries (which it takes over); it may answer at
 * once. 0, or -1 if out of memory (entries not taken). The worker that has the session. */
SCRM_MUST_CHECK int session_start_wait(struct session *s, const struct ipc_hdr *h,
                                       const struct ipc_gsc_req *req,
                                       struct ipc_gsc_entry *entries);

/* server_core.c: the commands on the rm for one session, whatever protocol carried them. Card
 * handles are the session's own random wire handles (below handle_max when it is not 0). Every
 * function returns a PC/SC result code; run by the thread executing the session's request. */
struct rm_card_status;
SCRM_MUST_CHECK bool srv_core_has_card(struct session *s, uint64_t handle);
uint32_t srv_core_connect(struct session *s, const char *reader, uint32_t share, uint32_t protocols,
                          uint64_t handle_max, uint64_t *handle, uint32_t *protocol);
uint32_t srv_core_reconnect(struct session *s, uint64_t handle, uint32_t share, uint32_t protocols,
                            uint32_t init, uint32_t *protocol);
uint32_t srv_core_disconnect(struct session *s, uint64_t handle, uint32_t disposition);
uint32_t srv_core_begin_transaction(struct session *s, uint64_t handle);
uint32_t srv_core_end_transaction(struct session *s, uint64_t handle, uint32_t disposition);
/* Fills *st also with SCARD_W_REMOVED_CARD / SCARD_W_RESET_CARD (see rm_status). */
uint32_t srv_core_status(struct session *s, uint64_t handle, struct rm_card_status *st);
/* resp has resp_cap bytes; a response longer than recv_max (the client's buffer) is
 * SCARD_E_INSUFFICIENT_BUFFER with *resp_len the length needed. *resp_len is 0 on other errors. */
uint32_t srv_core_transmit(struct session *s, uint64_t handle, uint32_t send_protocol,
                           const uint8_t *apdu, size_t apdu_len, uint8_t *resp, size_t resp_cap,
                           size_t recv_max, size_t *resp_len, uint32_t *recv_protocol);
/* *out_len: the data length on success, the length needed with SCARD_E_INSUFFICIENT_BUFFER,
 * else 0. */
uint32_t srv_core_control(struct session *s, uint64_t handle, uint32_t code, const void *in,
                          size_t in_len, void *out, size_t out_cap, size_t *out_len);
uint32_t srv_core_get_attrib(struct session *s, uint64_t handle, uint32_t attr, void *out,
                             size_t out_cap, size_t *out_len);
uint32_t srv_core_set_attrib(struct session *s, uint64_t handle, uint32_t attr, const void *in,
                             size_t len);

/* server_readers.c: readers added and removed at run time (privileged clients only). */
void cmd_READER_ADD(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                    const uint8_t *var, size_t var_len);
void cmd_READER_REMOVE(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed,
                       const uint8_t *var, size_t var_len);
/* Hand a complete request (malloc'd, taken over) to the pool: the session becomes busy. */
void session_submit(struct session *s, uint8_t *msg, size_t len);
/* End the session's watches without a reply (loop thread). */
void session_free_wait(struct session *s);
/* A watch on one reader whose firing calls session_wait_fired (the front end's wait_fired for
 * pcsc-lite); NULL if out of memory. */
struct rm_watch *session_watch_reader(struct session *s, const char *name);
/* Watch every reader and the reader list for the session (loop thread): s->wait with no
 * entries; the first change calls the front end's wait_fired. 0, or -1 if out of memory. */
SCRM_MUST_CHECK int session_watch_all(struct session *s);
/* Disconnect every card handle of the session (RELEASE of pcsc-lite's protocol): as when a
 * client goes, each is reset unless another client holds the reader's transaction. */
void srv_core_close_all(struct session *s);

/* server_pcsclite.c: pcsc-lite's protocol on a session (front SRV_FRONT_PCSCLITE). */
SCRM_MUST_CHECK int pcl_session_init(struct session *s);
void pcl_session_free(struct session *s);
SCRM_MUST_CHECK bool pcl_session_partial(const struct session *s);
void pcl_read_input(struct session *s); /* loop thread */
void pcl_wait_fired(struct session *s); /* loop thread */
/* Execute the request s->job_msg (msg), or park it (s->job_msg NULL then) when it waits for
 * another handle's transaction: a watch on the reader, no thread held (worker). */
void pcl_exec(struct session *s, const uint8_t *msg, size_t len);
/* A lingering session's next request, read without waiting (worker; server_session.c's
 * "Lingering"): a request for the pool, or a reader-table fetch of a client before 4:6, read
 * into the receiver, possibly over several calls (a part read stays there, and the loop thread
 * goes on with it if the session goes back to it). */
SCRM_MUST_CHECK enum srv_take pcl_take_ready(struct session *s);
/* The session handle of the card a request is for, if it is one that may wait for its reader
 * before it runs (TRANSMIT); false for any other request. */
SCRM_MUST_CHECK bool pcl_request_card(const uint8_t *msg, size_t len, uint64_t *handle);
/* A request of run class PCL_RUN_STREAM (it opens a card or carries its APDUs). */
SCRM_MUST_CHECK bool pcl_stream_request(const uint8_t *msg, size_t len);
/* A request is parked: the session reads no input until it is answered (any thread). */
SCRM_MUST_CHECK bool pcl_session_parked(const struct session *s);
/* Take the parked request back into s->job_msg to run it again; false if none (the thread
 * that has the session). */
SCRM_MUST_CHECK bool pcl_unpark_job(struct session *s);
/* Teardown: drop a parked request and its watch (no-op for scrm's protocol). */
void pcl_session_end(struct session *s);

/* server_cmds.c: one handler per command, generated dispatch. */
/* STREAM: a pool request that opens a card or carries its APDUs, which starts on a new thread
 * when the loop thread read it (server_pool.c, "New threads for card streams"). */
enum srv_run { SRV_LOOP, SRV_POOL, SRV_STREAM };
/* How a command runs, or -1 for a code the protocol does not have. */
SCRM_MUST_CHECK int srv_cmd_run(uint16_t cmd);
/* Execute a request (validated by ipc_check_request) on the calling thread. */
void srv_cmd_exec(struct session *s, const uint8_t *msg, size_t len);
/* The session's reply buffer, at least n bytes (NULL if out of memory). Used by the thread that
 * executes the session's current request or wait. */
uint8_t *srv_reply_buf(struct session *s, size_t n);
/* Build and send a reply: header + fixed + var (copied into the reply buffer). */
void srv_reply(struct session *s, const struct ipc_hdr *req, uint32_t status, const void *fixed,
               size_t fixed_len, const void *var, size_t var_len);
/* Snapshot of one reader for a status-change reply. */
void srv_reader_state(struct srv *srv, const char *name, struct ipc_reader_state *st);

#endif
