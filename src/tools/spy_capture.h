/*
 * `scrm spy --pcap FILE`: the APDUs of the spy's lines written as a capture file that Wireshark and
 * tshark dissect as ISO 7816-4 / GSM 11.11 APDUs.
 *
 * Format: a classic pcap file (libpcap 2.4, microsecond time stamps) of link type 101 (raw IPv4),
 * one packet per command/response exchange: IPv4 127.0.0.1 -> 127.0.0.1, UDP to port 4729
 * (GSMTAP), a GSMTAP version 2 header of type 4 (SIM), then the command APDU followed by the
 * response (data and status word), the layout Osmocom's SIMtrace uses and Wireshark's "gsm_sim"
 * dissector reads. The time stamp is when the response line arrived. Which client and reader an
 * exchange belongs to is not in the packet: the UDP source port is the client number modulo
 * 65536. Redacted PIN bytes are written as 0x2A ('*').
 */
#ifndef SCRM_TOOLS_SPY_CAPTURE_H
#define SCRM_TOOLS_SPY_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>

/* One APDU line of the spy, parsed (see src/daemon/server_spy.c for the format). */
struct spy_apdu_line {
    uint64_t client;
    const char *key; /* "client N READER", key_len bytes: pairs a response with its command */
    size_t key_len;
    bool command;  /* '>' (true) or '<' */
    uint8_t *data; /* malloc'd bytes (NULL when none: a response that is an error name) */
    size_t len;
};

/* Parse one spy line. false for a line that is not an APDU line (an IOCTL line, a note) or is
 * malformed. On success the caller frees out->data. */
bool spy_parse_apdu_line(const char *line, struct spy_apdu_line *out);

struct spy_capture {
    FILE *f;
    struct spy_pending *pending; /* commands waiting for their response */
    size_t n, cap;
    uint64_t packets;
};

/* Create (truncate) the file and write the pcap header. 0, or -1 with errno set. */
int spy_capture_open(struct spy_capture *c, const char *path);
/* Feed one spy line received at `when`; writes a packet when it completes an exchange. 0, or -1
 * when the file cannot be written (errno set). */
int spy_capture_line(struct spy_capture *c, const char *line, const struct timeval *when);
/* Close the file (exchanges still waiting for a response are not written). */
int spy_capture_close(struct spy_capture *c);

#endif
