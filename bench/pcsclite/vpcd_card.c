/*
 * The fastest card pcscd can have for bench/pcsclite_compare.py: a minimal card for vsmartcard's
 * vpcd reader driver (the driver pcscd loads from /etc/reader.conf.d/vpcd). It connects to the
 * driver's TCP port and answers at once: 2-byte big-endian length + payload both ways; a 1-byte
 * payload is a control (0 power off, 1 power on, 2 reset: no answer; 4: send the ATR); anything
 * else is an APDU, answered 90 00. No Python, no card logic: pcscd's own cost is what remains.
 *
 *   vpcd_card PORT      (connects to 127.0.0.1:PORT, retrying until the driver listens)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int send_msg(int fd, const uint8_t *p, uint16_t n)
{
    uint8_t buf[2 + 64];
    buf[0] = (uint8_t)(n >> 8);
    buf[1] = (uint8_t)n;
    memcpy(buf + 2, p, n);
    return write(fd, buf, 2u + n) == 2 + n ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const uint8_t atr[] = {0x3B, 0x80, 0x80, 0x01, 0x01}; /* T=1 */
    static const uint8_t ok[] = {0x90, 0x00};
    struct sockaddr_in sa = {.sin_family = AF_INET};
    uint8_t buf[65536];
    int fd, one = 1;

    if (argc != 2)
        return 2;
    sa.sin_port = htons((uint16_t)strtoul(argv[1], NULL, 10));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (;;) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return 1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            break;
        close(fd);
        poll(NULL, 0, 50); /* the driver is not listening yet */
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (;;) {
        uint8_t hdr[2];
        uint16_t n;
        if (read_all(fd, hdr, 2) < 0)
            return 0;
        n = (uint16_t)(hdr[0] << 8 | hdr[1]);
        if (read_all(fd, buf, n) < 0)
            return 0;
        if (n == 1) {
            if (buf[0] == 4 && send_msg(fd, atr, sizeof atr) < 0)
                return 0;
        } else if (send_msg(fd, ok, sizeof ok) < 0) {
            return 0;
        }
    }
}
