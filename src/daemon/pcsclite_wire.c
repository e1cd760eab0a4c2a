/*
 * pcsc-lite's socket protocol: command table, receiver, request checks and the reader-state
 * record (see pcsclite_wire.h).
 */
#include "daemon/pcsclite_wire.h"

#include <stdlib.h>
#include <string.h>

struct pcl_cmd_info {
    const char *name;
    uint32_t body;
    enum pcl_run run;
};

static const struct pcl_cmd_info cmd_table[PCL_CMD_LIMIT] = {
#define PCL_X_INFO(n, code, b, r) [code] = {#n, (uint32_t)(b), PCL_RUN_##r},
    PCL_COMMAND_LIST(PCL_X_INFO)
#undef PCL_X_INFO
};

enum pcl_run pcl_cmd_run(uint32_t cmd)
{
    return cmd < PCL_CMD_LIMIT ? cmd_table[cmd].run : PCL_RUN_NONE;
}

bool pcl_cmd_pooled(uint32_t cmd)
{
    enum pcl_run run = pcl_cmd_run(cmd);
    return run == PCL_RUN_POOL || run == PCL_RUN_STREAM;
}

const char *pcl_cmd_name(uint32_t cmd)
{
    return pcl_cmd_run(cmd) != PCL_RUN_NONE ? cmd_table[cmd].name : "?";
}

/* Offset of the send-buffer length in the body of TRANSMIT / CONTROL, or 0 for other commands. */
static size_t send_len_offset(uint32_t cmd)
{
    if (cmd == PCL_CMD_TRANSMIT)
        return offsetof(struct pcl_transmit, send_length);
    if (cmd == PCL_CMD_CONTROL)
        return offsetof(struct pcl_control, send_length);
    return 0;
}

/* ---- Receiver ---------------------------------------------------------------------------------
 */

void pcl_rx_init(struct pcl_rx *rx)
{
    memset(rx, 0, sizeof *rx);
}

void pcl_rx_free(struct pcl_rx *rx)
{
    free(rx->msg);
    pcl_rx_init(rx);
}

void pcl_rx_next(struct pcl_rx *rx)
{
    pcl_rx_free(rx);
}

uint8_t *pcl_rx_take(struct pcl_rx *rx)
{
    uint8_t *m = rx->msg;
    rx->msg = NULL;
    pcl_rx_init(rx);
    return m;
}

bool pcl_rx_partial(const struct pcl_rx *rx)
{
    return rx->have > 0;
}

void pcl_rx_space(struct pcl_rx *rx, uint8_t **p, size_t *n)
{
    if (!rx->msg) {
        *p = rx->hdr + rx->have;
        *n = sizeof rx->hdr - rx->have;
    } else {
        *p = rx->msg + rx->have;
        *n = rx->need - rx->have;
    }
}

/* The header is complete: check it and size the message. NULL or a reason. */
static const char *start_body(struct pcl_rx *rx)
{
    struct pcl_hdr h;
    enum pcl_run run;
    size_t body;

    memcpy(&h, rx->hdr, sizeof h);
    run = pcl_cmd_run(h.command);
    if (run == PCL_RUN_NONE)
        return "unknown command";
    body = cmd_table[h.command].body;
    if (body && h.size != body)
        return "wrong length for its command";
    rx->need = sizeof h + body;
    rx->msg = malloc(rx->need);
    if (!rx->msg)
        return "out of memory";
    memcpy(rx->msg, rx->hdr, sizeof h);
    return NULL;
}

enum pcl_rx_result pcl_rx_advance(struct pcl_rx *rx, size_t n, const uint8_t **msg, size_t *len,
                                  const char **why)
{
    rx->have += n;
    if (!rx->msg) {
        if (rx->have < sizeof rx->hdr)
            return PCL_RX_MORE;
        *why = start_body(rx);
        if (*why)
            return PCL_RX_ERROR;
    }
    if (rx->have < rx->need)
        return PCL_RX_MORE;
    if (!rx->extra) {
        struct pcl_hdr h;
        size_t off;
        memcpy(&h, rx->msg, sizeof h);
        off = send_len_offset(h.command);
        rx->extra = true;
        if (off) {
            uint32_t extra;
            memcpy(&extra, rx->msg + sizeof h + off, sizeof extra);
            if (extra > PCL_MAX_BUFFER_EXT) {
                *why = "send buffer larger than pcsc-lite allows";
                return PCL_RX_ERROR;
            }
            if (extra) {
                uint8_t *m = realloc(rx->msg, rx->need + extra);
                if (!m) {
                    *why = "out of memory";
                    return PCL_RX_ERROR;
                }
                rx->msg = m;
                rx->need += extra;
            }
            if (rx->have < rx->need)
                return PCL_RX_MORE;
        }
    }
    *msg = rx->msg;
    *len = rx->need;
    return PCL_RX_MESSAGE;
}

const char *pcl_request_length(const uint8_t *buf, size_t len, size_t *total)
{
    struct pcl_hdr h;
    size_t need, off;

    *total = 0;
    if (len < sizeof h)
        return NULL;
    memcpy(&h, buf, sizeof h);
    if (pcl_cmd_run(h.command) == PCL_RUN_NONE)
        return "unknown command";
    if (cmd_table[h.command].body && h.size != cmd_table[h.command].body)
        return "wrong length for its command";
    need = sizeof h + cmd_table[h.command].body;
    off = send_len_offset(h.command);
    if (off) {
        uint32_t extra;
        if (len < need)
            return NULL;
        memcpy(&extra, buf + sizeof h + off, sizeof extra);
        if (extra > PCL_MAX_BUFFER_EXT)
            return "send buffer larger than pcsc-lite allows";
        need += extra;
    }
    *total = need;
    return NULL;
}

/* ---- Reader state -----------------------------------------------------------------------------
 */

void pcl_reader_state_fill(struct pcl_reader_state *rs, const char *name, uint32_t pcsc_state,
                           uint32_t event_counter, int32_t sharing, const uint8_t *atr,
                           size_t atr_len, uint32_t protocol)
{
    memset(rs, 0, sizeof *rs);
    if (!name) {
        rs->atr_len = PCL_ATR_UNUSED_SLOT;
        return;
    }
    strncpy(rs->name, name, sizeof rs->name - 1);
    rs->event_counter = event_counter & 0xFFFFu; /* pcscd wraps at 0xFFFF */
    rs->state = pcsc_state;                      /* the rm's word, as pcscd shows it */
    rs->sharing = sharing;
    if ((pcsc_state & PCL_SCARD_PRESENT) && !(pcsc_state & PCL_SCARD_SWALLOWED) &&
        atr_len <= PCL_MAX_ATR_SIZE) {
        memcpy(rs->atr, atr, atr_len);
        rs->atr_len = (uint32_t)atr_len;
        rs->protocol = protocol;
    }
}
