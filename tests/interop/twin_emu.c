/*
 * A GemPC Twin serial reader on a pseudo-terminal, for Debian's real libccidtwin.so: the serial
 * framing of the Twin (03 06 <CCID message> LRC, the echo of every host frame, NAK 03 15 16,
 * time-request bytes 0x80..0xFF, NotifySlotChange 50 02/50 03) in front of scrm's own byte-level
 * simulated cards (src/drivers/sim/simcard.h). The reader works at TPDU level as the real one:
 * PPS and T=1 blocks go to the card as they are; a T=0 command TPDU is run against the card with
 * its procedure bytes, and the answer is the data plus SW1 SW2.
 *
 * Usage: twin_emu [--nak-first]
 * Prints "pty /dev/pts/N" (the device for the driver), then reads commands on stdin, one per line,
 * each answered on stdout with "ok ..." or "error ...":
 *   insert PROFILE    a simcard profile (t1, t0, t0t1, ...) enters; "ok <ATR hex>"
 *   remove            the card leaves
 *   nak               NAK the next host frame (the driver resends escapes only)
 *   slow N            answer the next XfrBlock after N time-request bytes, 200 ms apart
 *   wtx N             the card asks for a T=1 waiting time extension (S(WTX)) of N on its next
 * answer vanish            at the next XfrBlock, send the echo and exit without answering state "ok
 * present=P powered=P protocol=T frames=N" quit Every host frame and answer is logged to stderr in
 * hex.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "drivers/sim/simcard.h"

#define MAX_FRAME 600

static struct {
    struct simcard *card;
    bool present, powered;
    int protocol; /* -1 none yet, 0, 1 (SetParameters) */
    bool nak_next, vanish_next;
    unsigned slow_next;
    uint8_t notify[2];
    size_t notify_len;
    unsigned frames;
    int fd;
} emu = {.protocol = -1, .fd = -1};

static void hexlog(const char *dir, const uint8_t *b, size_t n)
{
    fprintf(stderr, "%s", dir);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %02X", b[i]);
    fprintf(stderr, "\n");
}

static uint8_t lrc(const uint8_t *b, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= b[i];
    return x;
}

static bool write_all(const uint8_t *b, size_t n)
{
    while (n) {
        ssize_t w = write(emu.fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

static uint8_t icc_status(void)
{
    if (!emu.present)
        return 0x02;
    return emu.powered ? 0x00 : 0x01;
}

/* Build 03 06 <msg> LRC into out; returns its length. */
static size_t frame(uint8_t *out, uint8_t type, uint8_t seq, uint8_t status, uint8_t error,
                    uint8_t param, const uint8_t *data, size_t n)
{
    out[0] = 0x03;
    out[1] = 0x06;
    out[2] = type;
    out[3] = (uint8_t)n;
    out[4] = (uint8_t)(n >> 8);
    out[5] = out[6] = 0;
    out[7] = 0; /* bSlot */
    out[8] = seq;
    out[9] = status;
    out[10] = error;
    out[11] = param;
    if (n)
        memcpy(out + 12, data, n);
    out[12 + n] = lrc(out, 12 + n);
    return 13 + n;
}

/* Take exactly n card bytes (the card is zero-latency: what it says is queued at once). */
static bool card_take(uint8_t *b, size_t n)
{
    return simcard_tx(emu.card, b, n) == n;
}

/* The reader side of T=0 for one command TPDU: header, procedure bytes, data; out gets the data
 * received plus SW1 SW2. Returns the answer length, 0 if the card fell silent. */
static size_t t0_exchange(const uint8_t *cmd, size_t n, uint8_t *out, size_t cap)
{
    uint8_t hdr[5] = {0};
    memcpy(hdr, cmd, n < 5 ? n : 5);
    const uint8_t *data = n > 5 ? cmd + 5 : NULL;
    size_t to_send = n > 5 ? hdr[4] : 0;
    if (to_send > n - 5)
        to_send = n - 5;
    size_t to_recv = n == 5 ? (hdr[4] ? hdr[4] : 256) : 0;
    size_t got = 0, sent = 0;
    simcard_rx(emu.card, hdr, 5);
    for (;;) {
        uint8_t pb;
        if (!card_take(&pb, 1))
            return 0;
        if (pb == 0x60)
            continue; /* NULL: the card works */
        if ((pb & 0xF0) == 0x60 || (pb & 0xF0) == 0x90) {
            uint8_t sw2;
            if (!card_take(&sw2, 1) || got + 2 > cap)
                return 0;
            out[got++] = pb;
            out[got++] = sw2;
            return got;
        }
        uint8_t ins = hdr[1], ins_one = (uint8_t)(0xFFu - ins);
        bool all = pb == ins, one = pb == ins_one;
        if (!all && !one)
            return 0;
        if (sent < to_send) {
            size_t k = all ? to_send - sent : 1;
            simcard_rx(emu.card, data + sent, k);
            sent += k;
        } else if (got < to_recv) {
            size_t k = all ? to_recv - got : 1;
            if (got + k > cap || !card_take(out + got, k))
                return 0;
            got += k;
        }
    }
}

/* XfrBlock: the bytes go to the card; out gets what the reader returns in the DataBlock. */
static size_t xfr(const uint8_t *d, size_t n, uint8_t *out, size_t cap, uint8_t *status,
                  uint8_t *error)
{
    *status = *error = 0;
    if (!emu.present || !emu.powered) {
        *status = (uint8_t)(0x40 | icc_status());
        *error = 0xFE; /* card absent or mute */
        return 0;
    }
    size_t len = 0;
    if (emu.protocol == 0 && !(n && d[0] == 0xFF)) {
        len = t0_exchange(d, n, out, cap);
    } else {
        simcard_rx(emu.card, d, n); /* PPS or a T=1 block */
        len = simcard_tx(emu.card, out, cap);
    }
    if (len == 0) {
        *status = 0x40;
        *error = 0xFE; /* mute */
    }
    return len;
}

static void send_time_requests(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint8_t b = (uint8_t)(0x80 + i);
        (void)write_all(&b, 1);
        hexlog("R>H time request", &b, 1);
        (void)poll(NULL, 0, 200);
    }
}

/* Answer one complete host frame f (n bytes). Returns false when the emulator must stop. */
static bool answer(const uint8_t *f, size_t n)
{
    static uint8_t out[MAX_FRAME + 70000], data[70000];
    emu.frames++;
    hexlog("H>R", f, n);
    if (emu.nak_next) {
        emu.nak_next = false;
        static const uint8_t nak[] = {0x03, 0x15, 0x16};
        hexlog("R>H NAK", nak, 3);
        return write_all(nak, 3);
    }
    const uint8_t *m = f + 2;
    uint8_t type = m[0], seq = m[6];
    const uint8_t *d = m + 10;
    size_t dn = n - 13;
    size_t o = 0;
    memcpy(out, f, n); /* the echo */
    o = n;
    if (emu.notify_len) {
        memcpy(out + o, emu.notify, emu.notify_len);
        o += emu.notify_len;
        emu.notify_len = 0;
    }
    size_t len = 0;
    uint8_t st = 0, err = 0, rtype = 0x81, param = 0;
    switch (type) {
    case 0x65: st = icc_status(); break; /* GetSlotStatus */
    case 0x6B:                           /* Escape */
        rtype = 0x83;
        if (dn == 1 && d[0] == 0x02) {
            static const char fw[] = "scrm twin emu 1.0";
            memcpy(data, fw, sizeof(fw) - 1);
            len = sizeof(fw) - 1;
        } else if (!(dn == 3 && d[0] == 1 && d[1] == 1 && d[2] == 1)) {
            st = 0x40; /* not supported (GET_FIRMWARE_FEATURES "may fail") */
        }
        st |= icc_status();
        break;
    case 0x62: /* IccPowerOn */
        rtype = 0x80;
        if (!emu.present) {
            st = 0x42;
            err = 0xFE;
        } else {
            len = simcard_reset(emu.card, true, data, sizeof(data));
            emu.powered = len > 0;
            emu.protocol = -1;
            if (!len) {
                st = 0x41;
                err = 0xFE;
            }
        }
        break;
    case 0x63: /* IccPowerOff */
        if (emu.powered)
            simcard_power_off(emu.card);
        emu.powered = false;
        st = icc_status();
        break;
    case 0x61: /* SetParameters */
        rtype = 0x82;
        emu.protocol = m[7];
        memcpy(data, d, dn);
        len = dn;
        param = m[7];
        st = icc_status();
        break;
    case 0x6F: /* XfrBlock */
        rtype = 0x80;
        if (emu.vanish_next) {
            (void)write_all(out, o); /* the echo only, then gone */
            fprintf(stderr, "# vanishing mid-APDU\n");
            return false;
        }
        len = xfr(d, dn, data, sizeof(data), &st, &err);
        if (emu.slow_next) {
            (void)write_all(out, o);
            o = 0;
            send_time_requests(emu.slow_next);
            emu.slow_next = 0;
        }
        break;
    default:
        st = (uint8_t)(0x40 | icc_status());
        err = 0x00; /* command not supported */
        break;
    }
    size_t flen = frame(out + o, rtype, seq, st, err, param, data, len);
    hexlog("R>H", out + o, flen);
    return write_all(out, o + flen);
}

static void reply(const char *word, const char *arg)
{
    printf("%s%s%s\n", word, arg[0] ? " " : "", arg);
    fflush(stdout);
}

static bool command(char *line)
{
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = '\0';
    char *arg = strchr(line, ' ');
    if (arg)
        *arg++ = '\0';
    if (strcmp(line, "insert") == 0) {
        struct simcard_config cfg;
        if (!simcard_profile(arg ? arg : "t1", &cfg)) {
            reply("error unknown profile", arg ? arg : "");
            return true;
        }
        simcard_free(emu.card);
        emu.card = simcard_new(&cfg);
        uint8_t atr[40];
        size_t n = emu.card ? simcard_reset(emu.card, true, atr, sizeof(atr)) : 0;
        if (emu.card)
            simcard_power_off(emu.card);
        char hex[3 * sizeof(atr) + 1] = "";
        for (size_t i = 0; i < n; i++)
            snprintf(hex + 2 * i, sizeof(hex) - 2 * i, "%02X", atr[i]);
        emu.present = emu.card != NULL;
        emu.powered = false;
        emu.notify[0] = 0x50;
        emu.notify[1] = 0x03;
        emu.notify_len = 2;
        reply("ok", hex);
    } else if (strcmp(line, "remove") == 0) {
        emu.present = emu.powered = false;
        emu.notify[0] = 0x50;
        emu.notify[1] = 0x02;
        emu.notify_len = 2;
        reply("ok", "");
    } else if (strcmp(line, "nak") == 0) {
        emu.nak_next = true;
        reply("ok", "");
    } else if (strcmp(line, "slow") == 0) {
        emu.slow_next = arg ? (unsigned)strtoul(arg, NULL, 10) : 3;
        reply("ok", "");
    } else if (strcmp(line, "wtx") == 0 && emu.card) {
        simcard_set_fault(emu.card, SIMCARD_FAULT_WTX, arg ? (uint32_t)strtoul(arg, NULL, 10) : 2);
        reply("ok", "");
    } else if (strcmp(line, "vanish") == 0) {
        emu.vanish_next = true;
        reply("ok", "");
    } else if (strcmp(line, "state") == 0) {
        char s[96];
        snprintf(s, sizeof(s), "present=%d powered=%d protocol=%d frames=%u", emu.present,
                 emu.powered, emu.protocol, emu.frames);
        reply("ok", s);
    } else if (strcmp(line, "quit") == 0) {
        return false;
    } else {
        reply("error unknown command", line);
    }
    return true;
}

int main(int argc, char **argv)
{
    emu.nak_next = argc > 1 && strcmp(argv[1], "--nak-first") == 0;
    emu.fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (emu.fd < 0 || grantpt(emu.fd) < 0 || unlockpt(emu.fd) < 0) {
        perror("twin_emu: pty");
        return 1;
    }
    struct termios t;
    if (tcgetattr(emu.fd, &t) == 0) {
        cfmakeraw(&t);
        (void)tcsetattr(emu.fd, TCSANOW, &t);
    }
    /* Hold the slave open ourselves: the master then never sees a hang-up before the driver
     * opens it, and the driver sees one when this process ends. */
    const char *slave = ptsname(emu.fd);
    int keep = slave ? open(slave, O_RDWR | O_NOCTTY) : -1;
    if (keep < 0) {
        perror("twin_emu: slave");
        return 1;
    }
    printf("pty %s\n", slave);
    fflush(stdout);
    static uint8_t buf[MAX_FRAME * 4];
    size_t have = 0;
    char line[256];
    bool run = true;
    while (run) {
        struct pollfd p[2] = {{.fd = emu.fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents) {
            if (!fgets(line, sizeof(line), stdin))
                break; /* the test is gone */
            run = command(line);
        }
        if (p[0].revents & POLLIN) {
            ssize_t r = read(emu.fd, buf + have, sizeof(buf) - have);
            if (r <= 0)
                break;
            have += (size_t)r;
            /* drop anything that does not start a frame */
            while (have && buf[0] != 0x03) {
                memmove(buf, buf + 1, --have);
            }
            while (run && have >= 13 && buf[1] == 0x06) {
                size_t need = 13 + (size_t)(buf[3] | buf[4] << 8);
                if (need > MAX_FRAME) {
                    have = 0; /* not a frame the driver can send */
                    break;
                }
                if (have < need)
                    break;
                run = answer(buf, need);
                memmove(buf, buf + need, have - need);
                have -= need;
            }
            if (have >= 2 && buf[1] != 0x06)
                have = 0;
        } else if (p[0].revents & (POLLHUP | POLLERR)) {
            break;
        }
    }
    simcard_free(emu.card);
    close(emu.fd);
    close(keep);
    return 0;
}
