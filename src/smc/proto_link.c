/*
 * Link wrappers for the protocol engines: convention conversion and defensive checks of what the
 * driver's send/recv callbacks report (see proto_internal.h), plus saturating time arithmetic.
 */
#include "smc/proto_internal.h"

#include <string.h>

/* Large enough for every frame the engines send in one piece (T=1 block 259, T=0 data 255, PPS 6),
 * so each frame reaches the driver in a single send call. */
#define LINK_CHUNK 272

smc_status smc__link_send(const struct smc_card_io *io, bool inverse, const uint8_t *data,
                          size_t len)
{
    if (!inverse)
        return io->send(io->ctx, data, len);
    uint8_t tmp[LINK_CHUNK];
    size_t off = 0;
    smc_status rc = STATUS_SUCCESS;
    while (off < len && rc == STATUS_SUCCESS) {
        size_t n = len - off < sizeof(tmp) ? len - off : sizeof(tmp);
        memcpy(tmp, data + off, n);
        smc_invert(tmp, n);
        rc = io->send(io->ctx, tmp, n);
        off += n;
    }
    return rc;
}

smc_status smc__link_recv(const struct smc_card_io *io, bool inverse, uint8_t *buf, size_t len,
                          uint32_t first_us, uint32_t char_us, size_t *got)
{
    size_t n = 0;
    smc_status rc = io->recv(io->ctx, buf, len, first_us, char_us, &n);
    if (n > len)
        n = len; /* a driver bug must not make us read past buf */
    if (inverse)
        smc_invert(buf, n);
    if (rc == STATUS_SUCCESS && n < len)
        rc = STATUS_IO_TIMEOUT;
    *got = n;
    return rc;
}

uint32_t smc__ceil_us(uint64_t num, uint64_t den)
{
    if (den == 0)
        return UINT32_MAX;
    uint64_t q = num / den + (num % den ? 1 : 0);
    if (q > UINT32_MAX)
        return UINT32_MAX;
    return q ? (uint32_t)q : 1;
}

uint32_t smc__mul_sat(uint32_t a, uint32_t b)
{
    uint64_t p = (uint64_t)a * b;
    return p > UINT32_MAX ? UINT32_MAX : (uint32_t)p;
}
