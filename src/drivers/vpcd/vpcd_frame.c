/* The vpcd wire format: see vpcd_frame.h. */
#include "drivers/vpcd/vpcd_frame.h"

#include <string.h>

enum vpcd_parse vpcd_frame_parse(const uint8_t *buf, size_t len, size_t min, size_t max,
                                 size_t *payload_len, size_t *need)
{
    *payload_len = 0;
    *need = VPCD_HDR_LEN;
    if (len < VPCD_HDR_LEN)
        return VPCD_FRAME_MORE;
    size_t n = (size_t)buf[0] << 8 | buf[1];
    *payload_len = n;
    *need = VPCD_HDR_LEN + n;
    if (n == 0)
        return VPCD_FRAME_EMPTY;
    if (n < min)
        return VPCD_FRAME_SHORT;
    if (n > max)
        return VPCD_FRAME_LONG;
    if (len < VPCD_HDR_LEN + n)
        return VPCD_FRAME_MORE;
    if (len > VPCD_HDR_LEN + n)
        return VPCD_FRAME_TRAILING;
    return VPCD_FRAME_OK;
}

size_t vpcd_frame_put(uint8_t *dst, size_t cap, const uint8_t *payload, size_t n)
{
    if (n == 0 || n > VPCD_MAX_PAYLOAD || cap < VPCD_HDR_LEN || cap - VPCD_HDR_LEN < n)
        return 0;
    memmove(dst + VPCD_HDR_LEN, payload, n);
    dst[0] = (uint8_t)(n >> 8);
    dst[1] = (uint8_t)n;
    return VPCD_HDR_LEN + n;
}

const char *vpcd_parse_text(enum vpcd_parse p)
{
    switch (p) {
#define VPCD_X_TEXT(name, desc) \
    case name: return desc;
        VPCD_PARSE_RESULTS(VPCD_X_TEXT)
#undef VPCD_X_TEXT
    }
    return "unknown verdict";
}
