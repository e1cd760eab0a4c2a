/*
 * The APDU spy: a privileged client sends SPY and then receives one text line per APDU and per
 * IOCTL the daemon handles, for every application at once (it replaces pcsc-lite's LD_PRELOAD
 * pcsc-spy). Lines:
 *
 *   12:00:01.123456 client 7 SimVendor SimReader 0 > 00 20 00 81 08 ** ** ** ** ** ** ** **
 *   12:00:01.123789 client 7 SimVendor SimReader 0 < 90 00  success (333 us)
 *   12:00:01.123801 ioctl SimVendor SimReader 0 IOCTL_SMARTCARD_POWER SCARD_COLD_RESET ->
 * STATUS_SUCCESS (41 us)
 *
 * APDUs are taken in the server core (srv_spy_apdu from srv_core_transmit), IOCTLs from the
 * resource manager's trace callback. The data of VERIFY (INS 20) and CHANGE REFERENCE DATA (INS
 * 24) is replaced by "**" per byte unless the spy asked for PINs (IPC_SPY_PINS).
 *
 * Cost without a spy: one atomic load per APDU and IOCTL. With spies, each line goes to each spy
 * with a non-blocking send under the spy session's lock; a spy that does not read fast enough
 * loses lines (counted, and reported in the next line it gets) rather than holding memory or
 * the sender: nothing is queued beyond one partly sent line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "common/hex.h"
#include "common/log.h"
#include "daemon/server_internal.h"
#include "rm/rm.h"

struct spy {
    struct session *s;
    bool pins;
    uint64_t dropped;
};

/* The spies of the process. Static, not in struct srv: the resource manager may still call the
 * trace callback shortly after it was removed (rm_set_trace), so its user data must outlive the
 * server; `srv` is NULL once the server is gone. */
static struct {
    scrm_mutex lock;
    struct srv *srv;
    struct spy *v;
    size_t n;
    atomic_uint live;
} hub = {.lock = SCRM_MUTEX_INITIALIZER};

bool srv_spy_active(void)
{
    return atomic_load(&hub.live) != 0;
}

static const char *sw_text(unsigned sw)
{
    if (sw == 0x9000)
        return "success";
    switch (sw >> 8) {
    case 0x61: return "more data (GET RESPONSE)";
    case 0x62:
    case 0x63:
        return sw >= 0x63C0 && sw <= 0x63CF ? "verification failed, counter in SW2" : "warning";
    case 0x67: return "wrong length";
    case 0x69:
        return sw == 0x6982   ? "security status not satisfied"
               : sw == 0x6983 ? "authentication method blocked"
                              : "command not allowed";
    case 0x6A: return sw == 0x6A82 ? "file or application not found" : "wrong parameters";
    case 0x6C: return "wrong Le (exact length in SW2)";
    case 0x6D: return "instruction not supported";
    case 0x6E: return "class not supported";
    default: return "error";
    }
}

/* Is this command APDU one whose data is a PIN (VERIFY, CHANGE REFERENCE DATA)? */
static bool pin_apdu(const uint8_t *apdu, size_t len)
{
    return len > 5 && (apdu[1] == 0x20 || apdu[1] == 0x24);
}

static void stamp(char *buf, size_t cap)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%06ld", (long)tv.tv_usec);
}

/* Send one event line to one spy; hub.lock held. */
static void send_line(struct srv *srv, struct spy *sp, const char *text, size_t len)
{
    struct session *s = sp->s;
    size_t total = sizeof(struct ipc_hdr) + sizeof(struct ipc_none) + len;
    uint8_t *msg = malloc(total);
    struct ipc_hdr h = {.size = (uint32_t)total,
                        .cmd = IPC_CMD_SPY,
                        .flags = IPC_FLAG_REPLY | IPC_FLAG_EVENT,
                        .seq = s->spy_seq};
    (void)srv;
    if (!msg) {
        sp->dropped++;
        return;
    }
    memcpy(msg, &h, sizeof h);
    memset(msg + sizeof h, 0, sizeof(struct ipc_none));
    memcpy(msg + sizeof h + sizeof(struct ipc_none), text, len);
    scrm_mutex_lock(&s->lock);
    if (s->closing || s->out_len > s->out_off) {
        sp->dropped++; /* the spy has not taken the previous line yet */
    } else {
        size_t off = 0;
        while (off < total) {
            ssize_t n = send(s->fd, msg + off, total - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        if (off == 0) {
            sp->dropped++;
        } else if (off < total) { /* keep the rest of this line for EPOLLOUT */
            free(s->out);
            s->out = malloc(total - off);
            if (s->out) {
                memcpy(s->out, msg + off, total - off);
                s->out_len = total - off;
                s->out_off = 0;
                session_rearm(s);
            } else {
                s->out_len = s->out_off = 0;
                shutdown(s->fd, SHUT_RDWR); /* a torn line: end the spy */
            }
        }
    }
    scrm_mutex_unlock(&s->lock);
    free(msg);
}

/* Send a line to every spy (the PIN-redacted or the full version). */
static void broadcast(struct srv *srv, const char *redacted, const char *full)
{
    scrm_mutex_lock(&hub.lock);
    for (size_t i = 0; hub.srv && i < hub.n; i++) {
        struct spy *sp = &hub.v[i];
        const char *text = sp->pins && full ? full : redacted;
        if (sp->dropped) {
            char note[96];
            int n = snprintf(note, sizeof note, "(%llu line(s) dropped: the spy read too slowly)",
                             (unsigned long long)sp->dropped);
            sp->dropped = 0;
            send_line(srv, sp, note, (size_t)n);
        }
        send_line(srv, sp, text, strlen(text));
    }
    scrm_mutex_unlock(&hub.lock);
}

static void hex_line(char *out, size_t cap, const uint8_t *b, size_t n, bool redact_data)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        bool hide = redact_data && i >= 5 && i < 5 + (size_t)b[4];
        o += (size_t)snprintf(out + o, cap - o, i ? " %02X" : "%02X", b[i]);
        if (hide)
            memcpy(out + o - 2, "**", 2);
    }
}

void srv_spy_apdu(struct session *s, uint64_t card, const uint8_t *apdu, size_t apdu_len,
                  const uint8_t *resp, size_t resp_len, uint32_t rc, uint64_t usec)
{
    struct srv *srv = s->srv;
    char reader[RM_READER_NAME_MAX] = "?", when[32];
    char *line = NULL, *line_red = NULL;
    /* hex of the longer APDU; a line adds the stamp, client, reader and status text to it */
    size_t hex_cap = 3 * (apdu_len > resp_len ? apdu_len : resp_len) + 8;
    size_t cap = hex_cap + sizeof reader + 512;
    bool pin = pin_apdu(apdu, apdu_len);

    if (!srv_spy_active())
        return;
    if (!rm_card_reader_name(srv->rm, card, reader, sizeof reader))
        snprintf(reader, sizeof reader, "?"); /* the handle went meanwhile: still spy the call */
    stamp(when, sizeof when);
    line = malloc(cap);
    line_red = malloc(cap);
    char *hex = malloc(hex_cap);
    if (!line || !line_red || !hex)
        goto out;
    hex_line(hex, hex_cap, apdu, apdu_len, false);
    /* the lines cannot be cut (cap covers every part); a failed format drops the line */
    if (snprintf(line, cap, "%s client %llu %s > %s", when, (unsigned long long)s->id, reader,
                 hex) < 0)
        goto out;
    hex_line(hex, hex_cap, apdu, apdu_len, pin);
    if (snprintf(line_red, cap, "%s client %llu %s > %s%s", when, (unsigned long long)s->id, reader,
                 hex, pin ? "  (PIN redacted)" : "") < 0)
        goto out;
    broadcast(srv, line_red, line);
    stamp(when, sizeof when);
    int n;
    if (rc == SCARD_S_SUCCESS && resp_len >= 2) {
        unsigned sw = (unsigned)resp[resp_len - 2] << 8 | resp[resp_len - 1];
        hex_line(hex, hex_cap, resp, resp_len, false);
        n = snprintf(line, cap, "%s client %llu %s < %s  %s (%llu us)", when,
                     (unsigned long long)s->id, reader, hex, sw_text(sw), (unsigned long long)usec);
    } else {
        n = snprintf(line, cap, "%s client %llu %s < %s (%llu us)", when, (unsigned long long)s->id,
                     reader, scard_code_name(rc) ? scard_code_name(rc) : "error",
                     (unsigned long long)usec);
    }
    if (n >= 0)
        broadcast(srv, line, NULL);
out:
    free(hex);
    free(line);
    free(line_red);
}

/* rm trace callback: every IOCTL (user is the hub, which outlives the server). */
static void spy_ioctl(void *user, const struct rm_trace_entry *e)
{
    char when[32], line[512];
    (void)user;
    if (!srv_spy_active())
        return;
    stamp(when, sizeof when);
    snprintf(line, sizeof line, "%s ioctl %s %s%s (%llu us)", when, e->reader, e->line,
             e->completion ? " [completed]" : "", (unsigned long long)e->usec);
    broadcast(NULL, line, NULL);
}

void srv_spy_init(struct srv *srv)
{
    scrm_mutex_lock(&hub.lock);
    hub.srv = srv;
    scrm_mutex_unlock(&hub.lock);
}

void srv_spy_destroy(struct srv *srv)
{
    rm_set_trace(srv->rm, NULL, NULL);
    scrm_mutex_lock(&hub.lock);
    for (size_t i = 0; i < hub.n; i++)
        session_unref(hub.v[i].s);
    free(hub.v);
    hub.v = NULL;
    hub.n = 0;
    hub.srv = NULL;
    atomic_store(&hub.live, 0);
    scrm_mutex_unlock(&hub.lock);
}

void srv_spy_forget(struct session *s)
{
    struct session *drop = NULL;
    if (!s->spy_seq)
        return;
    scrm_mutex_lock(&hub.lock);
    for (size_t i = 0; i < hub.n; i++) {
        if (hub.v[i].s != s)
            continue;
        drop = s;
        hub.v[i] = hub.v[--hub.n];
        atomic_fetch_sub(&hub.live, 1);
        if (!hub.n && hub.srv) /* the last spy: IOCTLs go untraced again (no cost) */
            rm_set_trace(hub.srv->rm, NULL, NULL);
        break;
    }
    scrm_mutex_unlock(&hub.lock);
    if (drop) {
        log_info(ipc, "client %llu: spy ended", (unsigned long long)s->id);
        session_unref(drop);
    }
}

void cmd_SPY(struct session *s, const struct ipc_hdr *h, const uint8_t *fixed, const uint8_t *var,
             size_t var_len)
{
    struct ipc_spy_req req;
    struct ipc_none rep = {0};
    uint32_t rc;
    (void)var;
    (void)var_len;

    memcpy(&req, fixed, sizeof req);
    rc = srv_require_privileged(s, "spy");
    if (rc == SCARD_S_SUCCESS && s->spy_seq)
        rc = SCARD_E_INVALID_VALUE; /* already spying */
    srv_reply(s, h, rc, &rep, sizeof rep, NULL, 0);
    if (rc != SCARD_S_SUCCESS)
        return;
    /* Listed after the reply, so that every event follows it. */
    s->spy_seq = h->seq ? h->seq : 1;
    scrm_mutex_lock(&hub.lock);
    struct spy *grown = realloc(hub.v, (hub.n + 1) * sizeof *grown);
    if (grown) {
        hub.v = grown;
        session_ref(s);
        grown[hub.n++] = (struct spy){.s = s, .pins = req.flags & IPC_SPY_PINS};
        atomic_fetch_add(&hub.live, 1);
        if (hub.n == 1) /* the first spy: the rm reports every IOCTL from now on */
            rm_set_trace(s->srv->rm, spy_ioctl, &hub);
    }
    scrm_mutex_unlock(&hub.lock);
    if (!grown) {
        shutdown(s->fd, SHUT_RDWR); /* out of memory: the spy sees its connection end */
        return;
    }
    log_info(ipc, "client %llu (pid %ld, uid %ld): spy started%s", (unsigned long long)s->id,
             (long)s->pid, (long)s->uid,
             req.flags & IPC_SPY_PINS ? " (PINs shown)" : " (PINs redacted)");
}
