/*
 * Private helpers shared by the ISO/IEC 7816-3 engines of libsmc (atr.c, caps.c, pps.c, t0.c,
 * t1.c): link wrappers that apply the inverse convention and check what the driver reports, and
 * the integer timing arithmetic.
 *
 * The link (struct smc_card_io) carries bytes as a direct-convention UART sees them. For a card
 * using the inverse convention the wrappers convert every byte sent and received, so the engines
 * always work on logical (direct-convention) values.
 */
#ifndef SMC_PROTO_INTERNAL_H
#define SMC_PROTO_INTERNAL_H

#include "common/compiler.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smc/protocol.h"

/* Send len bytes, converted to the inverse convention first when inverse is set (data is not
 * modified). Returns the link's status. */
SCRM_MUST_CHECK smc_status smc__link_send(const struct smc_card_io *io, bool inverse,
                                          const uint8_t *data, size_t len);

/*
 * Receive exactly len bytes (first within first_us, each next within char_us), converting them
 * back when inverse is set. *got = bytes stored, never more than len even if the driver claims
 * so. A link that reports success with fewer than len bytes is treated as a timeout.
 */
SCRM_MUST_CHECK smc_status smc__link_recv(const struct smc_card_io *io, bool inverse, uint8_t *buf,
                                          size_t len, uint32_t first_us, uint32_t char_us,
                                          size_t *got);

/* ceil(num / den) clamped to [1, UINT32_MAX]; den 0 gives UINT32_MAX. */
uint32_t smc__ceil_us(uint64_t num, uint64_t den);

/* a * b clamped to UINT32_MAX (timeouts multiplied by a WTX factor). */
uint32_t smc__mul_sat(uint32_t a, uint32_t b);

#endif
