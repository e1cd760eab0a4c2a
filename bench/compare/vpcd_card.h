/*
 * A fast virtual card for the vpcd protocol (2-byte big-endian length + payload each way): answers
 * "get ATR" with the ATR of vicc's iso7816 card and every command APDU with 90 00, at once, in one
 * write, with TCP_NODELAY. Optionally (quickack) it also sets TCP_QUICKACK after every read, so a
 * reader that writes a message's length and body in two writes (pcsc-lite's vpcd) is not held up
 * by this card's delayed ACK; ordinary card programs (vicc, jCardSim) do not do that.
 */
#ifndef SCRM_BENCH_VPCD_CARD_H
#define SCRM_BENCH_VPCD_CARD_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

/* Connect to a vpcd reader listening on 127.0.0.1:port; -1 on failure. */
int vpcd_card_connect(unsigned port);

/* Serve the protocol on fd until the reader closes the connection or fd is shut down. Returns the
 * number of APDUs answered. */
long vpcd_card_serve(int fd, bool quickack);

#endif
