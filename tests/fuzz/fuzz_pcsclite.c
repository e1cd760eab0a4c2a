/*
 * libFuzzer target for the pcsc-lite front end's message parser (src/daemon/pcsclite_wire.c):
 * arbitrary bytes as a pcsc-lite client could send them, cut into reads whose sizes come from the
 * input, through the incremental receiver (pcl_rx) and the length check the worker uses to take a
 * request straight off the socket (pcl_request_length). Invariants (scrm_assert): the receiver
 * never asks for 0 bytes, a message is never larger than the largest request (header, the
 * biggest body, a PCL_MAX_BUFFER_EXT send buffer), a complete message is a known command with the
 * body size pcscd requires, and both paths agree on its length.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "daemon/pcsclite_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LARGEST (sizeof(struct pcl_hdr) + sizeof(struct pcl_getset) + PCL_MAX_BUFFER_EXT)

static void check_message(const uint8_t *msg, size_t len)
{
    struct pcl_hdr h;
    size_t total = 0;
    const char *why;

    scrm_assert(len >= sizeof h && len <= LARGEST);
    memcpy(&h, msg, sizeof h);
    scrm_assert(pcl_cmd_run(h.command) != PCL_RUN_NONE);
    why = pcl_request_length(msg, len, &total);
    scrm_assert(why == NULL && total == len);
    if (h.command == PCL_CMD_CONNECT) {
        struct pcl_connect c;
        memcpy(&c, msg + sizeof h, sizeof c);
        c.reader[sizeof c.reader - 1] = '\0';
        scrm_assert(strlen(c.reader) < PCL_MAX_READERNAME);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pcl_rx rx;
    size_t pos = 0, total = 0;
    unsigned step = size ? (data[0] % 19u) + 1u : 1u;

    /* the worker's path: the whole input as what a peek returned */
    if (pcl_request_length(data, size, &total) == NULL && total)
        scrm_assert(total <= LARGEST);

    pcl_rx_init(&rx);
    while (pos < size) {
        uint8_t *p;
        size_t want, n, len;
        const uint8_t *msg;
        const char *why = NULL;
        enum pcl_rx_result r;

        pcl_rx_space(&rx, &p, &want);
        scrm_assert(want > 0 && want <= LARGEST);
        n = want < step ? want : step;
        if (n > size - pos)
            n = size - pos;
        memcpy(p, data + pos, n);
        pos += n;
        step = step * 7u % 4093u + 1u;
        r = pcl_rx_advance(&rx, n, &msg, &len, &why);
        if (r == PCL_RX_ERROR) {
            scrm_assert(why != NULL);
            break; /* the daemon disconnects here */
        }
        if (r == PCL_RX_MESSAGE) {
            check_message(msg, len);
            pcl_rx_next(&rx);
        }
    }
    pcl_rx_free(&rx);
    return 0;
}
