/* Bounded byte buffers; see buf.h. */
#include "common/buf.h"

#include <string.h>

int scrm_buf_put(struct scrm_buf *b, const void *p, size_t n)
{
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = true;
        return -1;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int scrm_buf_put_u8(struct scrm_buf *b, uint8_t v)
{
    return scrm_buf_put(b, &v, 1);
}

int scrm_buf_put_u16be(struct scrm_buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return scrm_buf_put(b, t, 2);
}

int scrm_buf_put_u32le(struct scrm_buf *b, uint32_t v)
{
    uint8_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    return scrm_buf_put(b, t, 4);
}

int scrm_buf_put_u64le(struct scrm_buf *b, uint64_t v)
{
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    return scrm_buf_put(b, t, 8);
}

int scrm_rbuf_get(struct scrm_rbuf *r, void *out, size_t n)
{
    if (r->underflow || n > r->len - r->pos) {
        r->underflow = true;
        if (out && n)
            memset(out, 0, n);
        return -1;
    }
    if (out && n)
        memcpy(out, r->data + r->pos, n);
    r->pos += n;
    return 0;
}

uint8_t scrm_rbuf_get_u8(struct scrm_rbuf *r)
{
    uint8_t v;
    (void)scrm_rbuf_get(r, &v, 1);
    return v;
}

uint16_t scrm_rbuf_get_u16be(struct scrm_rbuf *r)
{
    uint8_t t[2];
    (void)scrm_rbuf_get(r, t, 2);
    return (uint16_t)(t[0] << 8 | t[1]);
}

uint32_t scrm_rbuf_get_u32le(struct scrm_rbuf *r)
{
    uint8_t t[4];
    (void)scrm_rbuf_get(r, t, 4);
    return (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
}

uint64_t scrm_rbuf_get_u64le(struct scrm_rbuf *r)
{
    uint8_t t[8];
    uint64_t v = 0;
    (void)scrm_rbuf_get(r, t, 8);
    for (int i = 7; i >= 0; i--)
        v = v << 8 | t[i];
    return v;
}
