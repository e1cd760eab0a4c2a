/*
 * libFuzzer target for the daemon's message decoder: arbitrary bytes as they would arrive on a
 * client socket, cut into reads whose sizes come from the input itself, through the incremental
 * receiver (ipc_rx), the request check (ipc_check_request) and the status-change entry decoder
 * (ipc_gsc_decode). Invariants checked with scrm_assert: the receiver never asks for 0 bytes or
 * holds a message larger than IPC_MSG_MAX, and a request that passes the check has a size
 * consistent with its command's fixed and variable parts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ipc/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode what the daemon would decode after the check. */
static void decode_request(const uint8_t *msg, size_t len)
{
    struct ipc_hdr h;
    const struct ipc_cmd_info *ci;
    const uint8_t *fixed, *var;
    size_t var_len;

    memcpy(&h, msg, sizeof h);
    ci = ipc_cmd_info(h.cmd);
    scrm_assert(ci != NULL && h.size == len && len <= IPC_MSG_MAX);
    scrm_assert(len >= sizeof h + ci->req_size && len - sizeof h - ci->req_size <= ci->var_max);
    fixed = msg + sizeof h;
    var = fixed + ci->req_size;
    var_len = len - sizeof h - ci->req_size;
    if (h.cmd == IPC_CMD_GET_STATUS_CHANGE) {
        struct ipc_gsc_req r;
        struct ipc_gsc_entry *e;
        memcpy(&r, fixed, sizeof r);
        scrm_assert(r.count <= IPC_GSC_MAX);
        e = calloc(r.count ? r.count : 1, sizeof *e);
        if (e && ipc_gsc_decode(var, var_len, r.count, e) == 0)
            for (uint32_t i = 0; i < r.count; i++)
                scrm_assert(e[i].name[0] != '\0' && strlen(e[i].name) < IPC_READER_NAME_MAX);
        free(e);
    } else if (h.cmd == IPC_CMD_CONNECT) {
        scrm_assert(var_len >= 1 && var_len < IPC_READER_NAME_MAX);
    } else if (h.cmd == IPC_CMD_TRANSMIT || h.cmd == IPC_CMD_CONTROL ||
               h.cmd == IPC_CMD_SET_ATTRIB) {
        scrm_assert(var_len <= IPC_DATA_MAX);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ipc_rx rx;
    size_t pos = 0;
    unsigned step = size ? (data[0] % 23u) + 1u : 1u; /* read sizes vary with the input */

    ipc_rx_init(&rx, false);
    while (pos < size) {
        uint8_t *p;
        size_t want, n, len;
        const uint8_t *msg;
        const char *why = NULL;
        enum ipc_rx_result r;

        ipc_rx_space(&rx, &p, &want);
        scrm_assert(want > 0 && want <= IPC_MSG_MAX);
        n = want < step ? want : step;
        if (n > size - pos)
            n = size - pos;
        memcpy(p, data + pos, n);
        pos += n;
        step = step * 7u % 4093u + 1u;
        r = ipc_rx_advance(&rx, n, &msg, &len, &why);
        if (r == IPC_RX_ERROR) {
            scrm_assert(why != NULL);
            break; /* the daemon disconnects here */
        }
        if (r == IPC_RX_MESSAGE) {
            scrm_assert(len >= sizeof(struct ipc_hdr) && len <= IPC_MSG_MAX);
            if (ipc_check_request(msg, len) == NULL)
                decode_request(msg, len);
            ipc_rx_next(&rx);
        }
    }
    ipc_rx_free(&rx);
    return 0;
}
