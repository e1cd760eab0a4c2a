/*
 * libFuzzer target for the T=0 engine: hostile card bytes (procedure bytes, data, status words)
 * fed to smc_t0_transceive() through a mock link. Input layout:
 *
 *   byte 0   bit 0 inverse convention; bits 1-3 APDU shape: 0 case 1, 1 case 2, 2 case 3,
 *            3 case 4, 4 case 2E (Ne from byte 1 * 300), 5 case 3E (Nc 300: ENVELOPE),
 *            6 case 4E (Nc 600), 7 case 3E of 510 bytes (two full ENVELOPE pieces)
 *   byte 1   Lc / Le parameter
 *   byte 2   response buffer size / 2 (255: 70 000 bytes)
 *   rest     everything the card sends, in order; when it runs out the card is silent
 *
 * Checked for any input: the engine returns one of its documented statuses, the response fits
 * the buffer, and the number of link calls stays bounded.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "smc/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_link {
    const uint8_t *card;
    size_t left;
    size_t calls;
};

static smc_status fl_send(void *ctx, const uint8_t *b, size_t len)
{
    struct fuzz_link *l = ctx;
    (void)b;
    scrm_assert(len >= 1 && len <= 255);
    l->calls++;
    return STATUS_SUCCESS;
}

static smc_status fl_recv(void *ctx, uint8_t *buf, size_t len, uint32_t first_us, uint32_t char_us,
                          size_t *got)
{
    struct fuzz_link *l = ctx;
    (void)first_us;
    (void)char_us;
    size_t k = len < l->left ? len : l->left;
    memcpy(buf, l->card, k);
    l->card += k;
    l->left -= k;
    *got = k;
    l->calls++;
    return k == len ? STATUS_SUCCESS : STATUS_IO_TIMEOUT;
}

/* Build the APDU selected by shape and p; returns its length. */
static size_t make_apdu(unsigned shape, uint8_t p, uint8_t *a)
{
    static const uint8_t hdr[4] = {0x00, 0xD6, 0x00, 0x00};
    size_t nc = 0, n = 4;
    memcpy(a, hdr, 4);
    memset(a + 4, 0x5A, 700);
    switch (shape) {
    case 0: return 4;
    case 1: a[4] = p; return 5;
    case 2:
        nc = p ? p : 1;
        a[4] = (uint8_t)nc;
        return 5 + nc;
    case 3:
        nc = p ? p : 1;
        a[4] = (uint8_t)nc;
        a[5 + nc] = p;
        return 6 + nc;
    case 4:
        a[4] = 0;
        a[5] = (uint8_t)((p * 300u) >> 8);
        a[6] = (uint8_t)(p * 300u);
        return 7;
    case 5: nc = 300; break;
    case 6:
        nc = 600;
        n = 2;
        break;
    default: nc = 503; break;
    }
    a[4] = 0;
    a[5] = (uint8_t)(nc >> 8);
    a[6] = (uint8_t)nc;
    return 7 + nc + (n == 2 ? 2 : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    static uint8_t apdu[720], resp[70000];
    struct smc_card_caps caps;
    memset(&caps, 0, sizeof(caps));
    caps.atr.inverse = data[0] & 1;
    caps.wt_us = 1000;
    size_t len = make_apdu((data[0] >> 1) & 7, data[1], apdu);
    size_t cap = data[2] == 255 ? sizeof(resp) : 2u * data[2];
    struct fuzz_link l = {data + 3, size - 3, 0};
    struct smc_card_io io = {.ctx = &l, .send = fl_send, .recv = fl_recv};
    size_t resp_len = 12345;
    smc_status rc = smc_t0_transceive(&io, &caps, apdu, len, resp, cap, &resp_len);
    scrm_assert(rc == STATUS_SUCCESS || rc == STATUS_BUFFER_TOO_SMALL ||
                rc == STATUS_INVALID_PARAMETER || rc == STATUS_DEVICE_PROTOCOL_ERROR ||
                rc == STATUS_IO_TIMEOUT);
    scrm_assert(rc == STATUS_SUCCESS ? resp_len >= 2 && resp_len <= cap : resp_len == 0);
    scrm_assert(l.calls <= 4 * size + 64);
    return 0;
}
