/*
 * Little-endian 32-bit values in byte buffers: the DWORDs of IOCTL buffers, vendor IOCTL
 * arguments and MIFARE value blocks. The one place these conversions are written.
 */
#ifndef SCRM_COMMON_BYTES_H
#define SCRM_COMMON_BYTES_H

#include <stdint.h>

static inline uint32_t scrm_get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void scrm_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#endif
