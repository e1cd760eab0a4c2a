/*
 * The vpcd wire format (vsmartcard's virtual reader protocol), as pure functions: every message is
 * a 2-byte big-endian length followed by that many bytes, in both directions. From the reader, a
 * 1-byte message is a control command (power off / on / reset / get ATR); anything longer is a
 * command APDU. The card answers only "get ATR" (with the ATR) and APDUs (with the response APDU).
 *
 * vpcd_frame_parse() judges the bytes received so far for one expected answer; it has no state
 * and touches nothing but its arguments (it is the libFuzzer target tests/fuzz/fuzz_vpcd.c).
 */
#ifndef SCRM_DRIVERS_VPCD_FRAME_H
#define SCRM_DRIVERS_VPCD_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define VPCD_HDR_LEN     2u
#define VPCD_MAX_PAYLOAD 0xFFFFu

/* Control commands (the payload of a 1-byte message). */
enum vpcd_ctrl {
    VPCD_CTRL_OFF = 0x00,
    VPCD_CTRL_ON = 0x01,
    VPCD_CTRL_RESET = 0x02,
    VPCD_CTRL_ATR = 0x04,
};

/* X(name, description): the verdicts of vpcd_frame_parse. */
#define VPCD_PARSE_RESULTS(X)                                  \
    X(VPCD_FRAME_OK, "a whole frame")                          \
    X(VPCD_FRAME_MORE, "incomplete frame")                     \
    X(VPCD_FRAME_EMPTY, "zero-length frame")                   \
    X(VPCD_FRAME_SHORT, "frame shorter than the answer needs") \
    X(VPCD_FRAME_LONG, "frame longer than the answer may be")  \
    X(VPCD_FRAME_TRAILING, "bytes after the frame (the card sent unasked data)")

enum vpcd_parse {
#define VPCD_X_ENUM(name, desc) name,
    VPCD_PARSE_RESULTS(VPCD_X_ENUM)
#undef VPCD_X_ENUM
};

/*
 * Judge `len` bytes received for one answer whose payload must be min..max bytes long (min >= 1,
 * max <= VPCD_MAX_PAYLOAD). OK: buf holds exactly one frame, its payload (*payload_len bytes)
 * starts at buf + VPCD_HDR_LEN. MORE: *need is the total number of bytes the frame needs (2 while
 * the length is incomplete). Every other verdict is final: the answer is bad whatever follows.
 * *payload_len and *need are always set (0 when unknown).
 */
enum vpcd_parse vpcd_frame_parse(const uint8_t *buf, size_t len, size_t min, size_t max,
                                 size_t *payload_len, size_t *need);

/* Write the frame of `n` payload bytes (n <= VPCD_MAX_PAYLOAD) to dst (cap >= n + 2). Returns the
 * frame length, or 0 if it does not fit or n is out of range. payload may alias dst + 2. */
size_t vpcd_frame_put(uint8_t *dst, size_t cap, const uint8_t *payload, size_t n);

/* Description of a verdict, for log lines. */
const char *vpcd_parse_text(enum vpcd_parse p);

#endif
