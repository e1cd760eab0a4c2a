/*
 * Bounded byte buffers over caller-owned storage, for building and parsing frames (T=1 blocks,
 * socket messages) without ever writing or reading past the end.
 *
 * Writers and readers carry a sticky error flag: after the first overflow or underflow every
 * further call does nothing, so a sequence of puts/gets can be checked once at the end.
 */
#ifndef SCRM_COMMON_BUF_H
#define SCRM_COMMON_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct scrm_buf {
    uint8_t *data;
    size_t len; /* bytes written */
    size_t cap; /* capacity of data */
    bool overflow;
};

struct scrm_rbuf {
    const uint8_t *data;
    size_t len; /* bytes available */
    size_t pos; /* next byte to read */
    bool underflow;
};

static inline void scrm_buf_init(struct scrm_buf *b, uint8_t *storage, size_t cap)
{
    b->data = storage;
    b->len = 0;
    b->cap = cap;
    b->overflow = false;
}

static inline size_t scrm_buf_room(const struct scrm_buf *b)
{
    return b->overflow ? 0 : b->cap - b->len;
}

/* Append n bytes; on overflow nothing is written and the flag is set. Returns 0 or -1. */
int scrm_buf_put(struct scrm_buf *b, const void *p, size_t n);
int scrm_buf_put_u8(struct scrm_buf *b, uint8_t v);
int scrm_buf_put_u16be(struct scrm_buf *b, uint16_t v);
int scrm_buf_put_u32le(struct scrm_buf *b, uint32_t v);
int scrm_buf_put_u64le(struct scrm_buf *b, uint64_t v);

static inline void scrm_rbuf_init(struct scrm_rbuf *r, const uint8_t *data, size_t len)
{
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->underflow = false;
}

static inline size_t scrm_rbuf_left(const struct scrm_rbuf *r)
{
    return r->underflow ? 0 : r->len - r->pos;
}

/* Read n bytes into out (out may be NULL to skip). Returns 0, or -1 and sets the flag. */
int scrm_rbuf_get(struct scrm_rbuf *r, void *out, size_t n);
uint8_t scrm_rbuf_get_u8(struct scrm_rbuf *r);
uint16_t scrm_rbuf_get_u16be(struct scrm_rbuf *r);
uint32_t scrm_rbuf_get_u32le(struct scrm_rbuf *r);
uint64_t scrm_rbuf_get_u64le(struct scrm_rbuf *r);

#endif
