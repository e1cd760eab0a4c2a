/* The fast virtual card: see vpcd_card.h. */
#include "vpcd_card.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const uint8_t atr_msg[] = {0x00, 0x0B, 0x3B, 0x95, 0x13, 0x81, 0x01,
                                  0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B};
static const uint8_t ok_msg[] = {0x00, 0x02, 0x90, 0x00};

int vpcd_card_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int put(int fd, const uint8_t *b, size_t n)
{
    return send(fd, b, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

long vpcd_card_serve(int fd, bool quickack)
{
    static _Thread_local uint8_t buf[2 + 65535 + 4096];
    size_t have = 0;
    long apdus = 0;
    int one = 1;
    for (;;) {
        ssize_t got = recv(fd, buf + have, sizeof(buf) - have, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return apdus;
        if (quickack)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
        have += (size_t)got;
        size_t off = 0;
        while (have - off >= 2) {
            size_t n = (size_t)buf[off] << 8 | buf[off + 1];
            if (have - off < 2 + n)
                break;
            const uint8_t *p = buf + off + 2;
            off += 2 + n;
            if (n == 1 && p[0] == 0x04) {
                if (put(fd, atr_msg, sizeof(atr_msg)) != 0)
                    return apdus;
            } else if (n > 1) {
                if (put(fd, ok_msg, sizeof(ok_msg)) != 0)
                    return apdus;
                apdus++;
            } /* power off / on / reset: no answer */
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
}
