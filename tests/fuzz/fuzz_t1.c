/*
 * libFuzzer target for the T=1 engine: hostile card bytes fed to smc_t1_transceive() through a
 * mock link. Input layout:
 *
 *   byte 0   flags: bit 0 CRC, bit 1 inverse convention, bit 2 negotiate IFSD 254 first,
 *            bit 3 long APDU (3000 bytes, so the reader chains), bit 4 a second APDU after
 *   byte 1   IFSC from the "ATR" (0 and 255 are replaced by 32 and 254)
 *   byte 2   APDU length - 4 (short APDUs)
 *   byte 3   response buffer size / 2 (255: 70 000 bytes)
 *   rest     everything the card sends, in order; when it runs out the card is silent
 *
 * The link checks what the engine sends: whole blocks of at most 3 + 254 + 2 bytes with a valid
 * EDC. After each call the response length must fit the buffer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "smc/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_link {
    const uint8_t *card;
    size_t left;
    bool inverse, crc;
    size_t sends;
};

static smc_status fl_send(void *ctx, const uint8_t *data, size_t len)
{
    struct fuzz_link *l = ctx;
    uint8_t b[3 + 254 + 2];
    scrm_assert(len >= 4 && len <= sizeof(b));
    memcpy(b, data, len);
    if (l->inverse)
        smc_invert(b, len);
    size_t el = l->crc ? 2 : 1;
    scrm_assert(len == 3 + (size_t)b[2] + el);
    if (l->crc)
        scrm_assert(smc_t1_crc(b, len - 2) == (uint16_t)(b[len - 2] << 8 | b[len - 1]));
    else
        scrm_assert(smc_t1_lrc(b, len) == 0);
    l->sends++;
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
    return k == len ? STATUS_SUCCESS : STATUS_IO_TIMEOUT;
}

static void check_status(smc_status rc)
{
    scrm_assert(rc == STATUS_SUCCESS || rc == STATUS_BUFFER_TOO_SMALL ||
                rc == STATUS_DEVICE_PROTOCOL_ERROR || rc == STATUS_IO_TIMEOUT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    static uint8_t apdu[3000], resp[70000];
    uint8_t flags = data[0];
    struct smc_card_caps caps;
    memset(&caps, 0, sizeof(caps));
    caps.ifsc = data[1] == 0 ? 32 : data[1] == 255 ? 254 : data[1];
    caps.edc = flags & 1 ? T1_CRC_CHECK : 0;
    caps.atr.inverse = (flags & 2) != 0;
    caps.bwt_us = 1000;
    caps.cwt_us = 100;
    struct smc_t1 t1;
    smc_t1_init(&t1, &caps);
    struct fuzz_link l = {data + 4, size - 4, caps.atr.inverse, flags & 1};
    struct smc_card_io io = {.ctx = &l, .send = fl_send, .recv = fl_recv};
    size_t len = flags & 8 ? sizeof(apdu) : 4u + data[2];
    size_t cap = data[3] == 255 ? sizeof(resp) : 2u * data[3];
    for (size_t i = 0; i < len; i++)
        apdu[i] = (uint8_t)(i * 31 + 7);
    if (flags & 4)
        check_status(smc_t1_negotiate_ifsd(&t1, &io, 254));
    for (int round = 0; round < (flags & 16 ? 2 : 1); round++) {
        size_t resp_len = 12345;
        smc_status rc = smc_t1_transceive(&t1, &io, apdu, len, resp, cap, &resp_len);
        check_status(rc);
        scrm_assert(rc == STATUS_SUCCESS ? resp_len <= cap : resp_len == 0);
        scrm_assert(t1.ns <= 1 && t1.nr <= 1 && t1.ifsc >= 1 && t1.ifsc <= 254);
        scrm_assert(t1.ifsd >= 1 && t1.ifsd <= 254);
    }
    return 0;
}
