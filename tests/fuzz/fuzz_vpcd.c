/*
 * libFuzzer target for the vpcd frame parser (src/drivers/vpcd/vpcd_frame.c), the code that judges
 * the bytes a virtual card sends to the vpcd reader. The first two input bytes choose the answer's
 * bounds (min, max) the way the driver asks for an ATR (1..33) or a response APDU (2..65535); the
 * rest is what the card sent. Every prefix is judged, as the driver does while bytes arrive, and
 * the verdicts must be consistent: the frame length comes from the header alone, a final verdict
 * never changes when more bytes come (except a whole frame turning into one with bytes after it),
 * and a frame written by vpcd_frame_put parses back to the same payload.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "drivers/vpcd/vpcd_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t frame[VPCD_HDR_LEN + VPCD_MAX_PAYLOAD];

static void check_prefixes(const uint8_t *msg, size_t len, size_t min, size_t max)
{
    enum vpcd_parse final = VPCD_FRAME_MORE;
    for (size_t k = 0; k <= len; k++) {
        size_t plen = 99, need = 99;
        enum vpcd_parse v = vpcd_frame_parse(msg, k, min, max, &plen, &need);
        scrm_assert(vpcd_parse_text(v)[0] != '\0');
        if (k < VPCD_HDR_LEN) {
            scrm_assert(v == VPCD_FRAME_MORE && plen == 0 && need == VPCD_HDR_LEN);
            continue;
        }
        size_t n = (size_t)msg[0] << 8 | msg[1];
        scrm_assert(plen == n && need == VPCD_HDR_LEN + n);
        switch (v) {
        case VPCD_FRAME_OK: scrm_assert(k == need && n >= min && n <= max && n > 0); break;
        case VPCD_FRAME_MORE: scrm_assert(k < need && n >= min && n <= max && n > 0); break;
        case VPCD_FRAME_EMPTY: scrm_assert(n == 0); break;
        case VPCD_FRAME_SHORT: scrm_assert(n > 0 && n < min); break;
        case VPCD_FRAME_LONG: scrm_assert(n > max && n >= min); break;
        case VPCD_FRAME_TRAILING: scrm_assert(k > need && n >= min && n <= max); break;
        }
        /* Once final, the verdict stays (a whole frame may only gain trailing bytes). */
        if (final != VPCD_FRAME_MORE && final != VPCD_FRAME_OK)
            scrm_assert(v == final);
        if (final == VPCD_FRAME_OK)
            scrm_assert(v == VPCD_FRAME_TRAILING);
        final = v;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t min = 1 + data[0] % 4;                                  /* 1..4 */
    size_t max = data[1] & 0x80 ? VPCD_MAX_PAYLOAD : data[1] + 1u; /* 1..128 or all */
    if (max < min)
        max = min;
    data += 2;
    size -= 2;
    check_prefixes(data, size, min, max);

    /* The same bytes as a payload: framed, they parse back to themselves. */
    size_t n = size > VPCD_MAX_PAYLOAD ? VPCD_MAX_PAYLOAD : size;
    size_t flen = vpcd_frame_put(frame, sizeof(frame), data, n);
    if (n == 0) {
        scrm_assert(flen == 0);
        return 0;
    }
    scrm_assert(flen == n + VPCD_HDR_LEN);
    size_t plen = 0, need = 0;
    scrm_assert(vpcd_frame_parse(frame, flen, 1, VPCD_MAX_PAYLOAD, &plen, &need) == VPCD_FRAME_OK);
    scrm_assert(plen == n && memcmp(frame + VPCD_HDR_LEN, data, n) == 0);
    scrm_assert(vpcd_frame_put(frame, n + 1, data, n) == 0); /* no room for the header */
    return 0;
}
