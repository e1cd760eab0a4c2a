/*
 * The spy's capture file (spy_capture.h): pcap, raw IPv4, UDP, GSMTAP (SIM), command + response.
 */
#include "tools/spy_capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"

#define PCAP_MAGIC        0xA1B2C3D4u
#define PCAP_LINKTYPE_RAW 101u /* raw IPv4/IPv6, no link-layer header */
#define PCAP_SNAPLEN      65535u
#define GSMTAP_PORT       4729u
#define GSMTAP_VERSION    2u
#define GSMTAP_TYPE_SIM   4u
#define GSMTAP_HDR_LEN    16u /* bytes; the header gives it in 32-bit words */
#define IP_HDR_LEN        20u
#define UDP_HDR_LEN       8u
#define REDACTED_BYTE     0x2Au

struct spy_pending {
    char *key;
    size_t key_len;
    uint8_t *cmd;
    size_t len;
};

static bool hex_digit(char c, uint8_t *v)
{
    if (c >= '0' && c <= '9')
        *v = (uint8_t)(c - '0');
    else if (c >= 'A' && c <= 'F')
        *v = (uint8_t)(c - 'A' + 10);
    else if (c >= 'a' && c <= 'f')
        *v = (uint8_t)(c - 'a' + 10);
    else
        return false;
    return true;
}

/* The bytes of "00 A4 ** 9F" (tokens of two hex digits or "**", single spaces) up to the end or
 * a double space. NULL data and length 0 when the first token is not a byte. */
static bool parse_bytes(const char *p, struct spy_apdu_line *out)
{
    size_t n = 0;
    for (const char *q = p; q[0] && q[1] && (q[2] == ' ' || q[2] == '\0'); q += 3) {
        uint8_t hi, lo;
        if (!(q[0] == '*' && q[1] == '*') && !(hex_digit(q[0], &hi) && hex_digit(q[1], &lo)))
            break;
        n++;
        if (q[2] == '\0' || q[3] == ' ')
            break;
    }
    out->data = NULL;
    out->len = 0;
    if (n == 0)
        return true;
    out->data = malloc(n);
    if (!out->data)
        return false;
    for (size_t i = 0; i < n; i++, p += 3) {
        uint8_t hi = 0, lo = 0;
        if (p[0] == '*')
            out->data[i] = REDACTED_BYTE;
        else if (hex_digit(p[0], &hi) && hex_digit(p[1], &lo))
            out->data[i] = (uint8_t)(hi << 4 | lo);
    }
    out->len = n;
    return true;
}

bool spy_parse_apdu_line(const char *line, struct spy_apdu_line *out)
{
    /* "HH:MM:SS.uuuuuu client N READER > 00 A4 ..." / "... < 90 00  success (12 us)" */
    const char *p = strchr(line, ' ');
    if (!p || strncmp(p, " client ", 8) != 0)
        return false;
    const char *key = p + 1;
    char *end;
    errno = 0;
    unsigned long long id = strtoull(p + 8, &end, 10);
    if (errno || end == p + 8 || *end != ' ')
        return false;
    /* the direction mark is the last " > " / " < " of the line: reader names come before it */
    const char *mark = NULL;
    for (const char *q = end; (q = strchr(q, ' ')) != NULL; q++)
        if ((q[1] == '>' || q[1] == '<') && q[2] == ' ')
            mark = q;
    if (!mark || mark == end)
        return false;
    out->client = id;
    out->key = key;
    out->key_len = (size_t)(mark - key);
    out->command = mark[1] == '>';
    if (!parse_bytes(mark + 3, out))
        return false;
    if (out->command && out->len < 4) {
        free(out->data);
        out->data = NULL;
        return false;
    }
    return true;
}

static int put_record(FILE *f, const uint8_t *b, size_t n)
{
    return fwrite(b, 1, n, f) == n ? 0 : -1;
}

int spy_capture_open(struct spy_capture *c, const char *path)
{
    uint8_t h[24];
    memset(c, 0, sizeof *c);
    c->f = fopen(path, "wbe");
    if (!c->f)
        return -1;
    scrm_put_u32le(h, PCAP_MAGIC);
    h[4] = 2; /* version 2.4, little-endian fields */
    h[5] = 0;
    h[6] = 4;
    h[7] = 0;
    scrm_put_u32le(h + 8, 0);  /* thiszone */
    scrm_put_u32le(h + 12, 0); /* sigfigs */
    scrm_put_u32le(h + 16, PCAP_SNAPLEN);
    scrm_put_u32le(h + 20, PCAP_LINKTYPE_RAW);
    if (put_record(c->f, h, sizeof h) < 0 || fflush(c->f) != 0) {
        int e = errno;
        fclose(c->f);
        c->f = NULL;
        errno = e;
        return -1;
    }
    return 0;
}

static void put_be16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* One packet: IPv4 + UDP + GSMTAP + command + response. */
static int write_packet(struct spy_capture *c, uint64_t client, const uint8_t *cmd, size_t cmd_len,
                        const uint8_t *rsp, size_t rsp_len, const struct timeval *when)
{
    size_t apdu = cmd_len + rsp_len;
    size_t udp_len = UDP_HDR_LEN + GSMTAP_HDR_LEN + apdu;
    size_t total = IP_HDR_LEN + udp_len;
    if (total > PCAP_SNAPLEN)
        return 0; /* an extended APDU beyond one IPv4 packet: not representable, skipped */
    uint8_t *pkt = calloc(1, 16 + total);
    if (!pkt)
        return -1;
    uint8_t *ip = pkt + 16, *udp = ip + IP_HDR_LEN, *gt = udp + UDP_HDR_LEN;
    scrm_put_u32le(pkt, (uint32_t)when->tv_sec);
    scrm_put_u32le(pkt + 4, (uint32_t)when->tv_usec);
    scrm_put_u32le(pkt + 8, (uint32_t)total);
    scrm_put_u32le(pkt + 12, (uint32_t)total);
    ip[0] = 0x45; /* IPv4, 5-word header */
    put_be16(ip + 2, (uint32_t)total);
    ip[8] = 64; /* TTL */
    ip[9] = 17; /* UDP */
    ip[12] = ip[16] = 127;
    ip[15] = ip[19] = 1;
    uint32_t sum = 0;
    for (size_t i = 0; i < IP_HDR_LEN; i += 2)
        sum += (uint32_t)ip[i] << 8 | ip[i + 1];
    while (sum >> 16)
        sum = (sum & 0xFFFFu) + (sum >> 16);
    put_be16(ip + 10, ~sum & 0xFFFFu);
    put_be16(udp, (uint32_t)(client & 0xFFFFu)); /* source port: the client number */
    put_be16(udp + 2, GSMTAP_PORT);
    put_be16(udp + 4, (uint32_t)udp_len); /* checksum 0: none */
    gt[0] = GSMTAP_VERSION;
    gt[1] = GSMTAP_HDR_LEN / 4;
    gt[2] = GSMTAP_TYPE_SIM;
    memcpy(gt + GSMTAP_HDR_LEN, cmd, cmd_len);
    if (rsp_len)
        memcpy(gt + GSMTAP_HDR_LEN + cmd_len, rsp, rsp_len);
    int rc = put_record(c->f, pkt, 16 + total) == 0 && fflush(c->f) == 0 ? 0 : -1;
    free(pkt);
    if (rc == 0)
        c->packets++;
    return rc;
}

static struct spy_pending *find(struct spy_capture *c, const char *key, size_t len)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->pending[i].key_len == len && memcmp(c->pending[i].key, key, len) == 0)
            return &c->pending[i];
    return NULL;
}

static void drop(struct spy_capture *c, struct spy_pending *p)
{
    free(p->key);
    free(p->cmd);
    *p = c->pending[--c->n];
}

int spy_capture_line(struct spy_capture *c, const char *line, const struct timeval *when)
{
    struct spy_apdu_line l;
    if (!c->f || !spy_parse_apdu_line(line, &l))
        return 0;
    struct spy_pending *p = find(c, l.key, l.key_len);
    int rc = 0;
    if (l.command) {
        if (!p) { /* one pending command per client and reader: grow the table when needed */
            if (c->n == c->cap) {
                size_t cap = c->cap ? 2 * c->cap : 8;
                struct spy_pending *v = realloc(c->pending, cap * sizeof *v);
                if (!v) {
                    free(l.data);
                    return 0; /* out of memory: this exchange is not captured */
                }
                c->pending = v;
                c->cap = cap;
            }
            p = &c->pending[c->n];
            p->key = malloc(l.key_len);
            if (!p->key) {
                free(l.data);
                return 0;
            }
            memcpy(p->key, l.key, l.key_len);
            p->key_len = l.key_len;
            p->cmd = NULL;
            c->n++;
        }
        free(p->cmd); /* a command whose response line was dropped is replaced */
        p->cmd = l.data;
        p->len = l.len;
        return 0;
    }
    if (p && l.len >= 2)
        rc = write_packet(c, l.client, p->cmd, p->len, l.data, l.len, when);
    if (p)
        drop(c, p); /* an error answer (no bytes) ends the exchange without a packet */
    free(l.data);
    return rc;
}

int spy_capture_close(struct spy_capture *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->pending[i].key);
        free(c->pending[i].cmd);
    }
    free(c->pending);
    c->pending = NULL;
    c->n = c->cap = 0;
    int rc = c->f && fclose(c->f) != 0 ? -1 : 0;
    c->f = NULL;
    return rc;
}
