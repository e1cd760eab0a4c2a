/*
 * A scripted byte link (struct smc_card_io) for the protocol engine tests (test_pps, test_t0,
 * test_t1). It is not a card: the test lists the exchange in advance as steps "the reader must
 * send exactly these bytes; the card then answers these bytes". Each send is compared with the
 * next step (a mismatch fails the test with both hex dumps) and queues that step's answer; recv
 * takes bytes from the queue and reports STATUS_IO_TIMEOUT when the queue runs dry (a silent
 * card), or STATUS_NO_MEDIA once the card has been "removed" by a step. Every recv records the
 * timeouts it was given, so tests can check BWT, WTX and WT.
 *
 * mock_finish() asserts that every step was used and every answer byte was read, then frees.
 */
#ifndef SCRM_TEST_MOCK_LINK_H
#define SCRM_TEST_MOCK_LINK_H

#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "smc/protocol.h"
#include "testutil.h"

#define MOCK_MAX_RECV 4096

struct mock_step {
    uint8_t *send;
    size_t send_len;
    uint8_t *reply;
    size_t reply_len;
    bool remove; /* the card is pulled once the reply has been read */
};

struct mock_link {
    struct smc_card_io io;
    struct mock_step *steps;
    size_t n_steps, cap_steps, next;
    uint8_t *q;
    size_t q_len, q_pos, q_cap;
    bool invert; /* steps are logical bytes; the wire carries them inverted */
    bool removed;
    uint32_t first_to[MOCK_MAX_RECV], char_to[MOCK_MAX_RECV];
    size_t n_recv, n_send;
};

static inline void mock_queue_bytes(struct mock_link *m, const uint8_t *b, size_t n)
{
    if (n == 0)
        return;
    if (m->q_len + n > m->q_cap) {
        m->q_cap = (m->q_len + n) * 2 + 64;
        m->q = realloc(m->q, m->q_cap);
        assert_non_null(m->q);
    }
    memcpy(m->q + m->q_len, b, n);
    if (m->invert)
        smc_invert(m->q + m->q_len, n);
    m->q_len += n;
}

static inline smc_status mock_send(void *ctx, const uint8_t *data, size_t len)
{
    struct mock_link *m = ctx;
    m->n_send++;
    if (m->removed && m->q_pos == m->q_len)
        return STATUS_NO_MEDIA;
    if (m->next >= m->n_steps) {
        fprintf(stderr, "# unexpected send of %zu bytes after the script ended\n", len);
        assert_bytes_equal(data, len, "", 0);
    }
    struct mock_step *s = &m->steps[m->next++];
    uint8_t *want = malloc(s->send_len + 1);
    assert_non_null(want);
    memcpy(want, s->send, s->send_len);
    if (m->invert)
        smc_invert(want, s->send_len);
    if (len != s->send_len || memcmp(data, want, len) != 0)
        fprintf(stderr, "# step %zu: reader sent other bytes than scripted\n", m->next - 1);
    test_assert_bytes_equal(data, len, want, s->send_len, __FILE__, __LINE__);
    free(want);
    mock_queue_bytes(m, s->reply, s->reply_len);
    if (s->remove)
        m->removed = true;
    return STATUS_SUCCESS;
}

static inline smc_status mock_recv(void *ctx, uint8_t *buf, size_t len, uint32_t first_us,
                                   uint32_t char_us, size_t *got)
{
    struct mock_link *m = ctx;
    if (m->n_recv < MOCK_MAX_RECV) {
        m->first_to[m->n_recv] = first_us;
        m->char_to[m->n_recv] = char_us;
    }
    m->n_recv++;
    size_t avail = m->q_len - m->q_pos, k = len < avail ? len : avail;
    if (k)
        memcpy(buf, m->q + m->q_pos, k);
    m->q_pos += k;
    *got = k;
    if (k == len)
        return STATUS_SUCCESS;
    return m->removed ? STATUS_NO_MEDIA : STATUS_IO_TIMEOUT;
}

static inline void mock_init(struct mock_link *m)
{
    memset(m, 0, sizeof(*m));
    m->io = (struct smc_card_io){.ctx = m, .send = mock_send, .recv = mock_recv};
}

static inline uint8_t *mock_dup(const uint8_t *b, size_t n)
{
    uint8_t *p = malloc(n + 1);
    assert_non_null(p);
    if (n)
        memcpy(p, b, n);
    return p;
}

/* Add a step from byte buffers. */
static inline void mock_expect_bytes(struct mock_link *m, const uint8_t *send, size_t send_len,
                                     const uint8_t *reply, size_t reply_len)
{
    if (m->n_steps == m->cap_steps) {
        m->cap_steps = m->cap_steps * 2 + 16;
        m->steps = realloc(m->steps, m->cap_steps * sizeof(*m->steps));
        assert_non_null(m->steps);
    }
    m->steps[m->n_steps++] = (struct mock_step){mock_dup(send, send_len), send_len,
                                                mock_dup(reply, reply_len), reply_len, false};
}

/* Add a step from hex text; reply may be "" (the card stays silent). */
static inline void mock_expect(struct mock_link *m, const char *send_hex, const char *reply_hex)
{
    static uint8_t s[70000], r[70000];
    long ns = scrm_hex_decode(send_hex, s, sizeof(s));
    long nr = scrm_hex_decode(reply_hex, r, sizeof(r));
    assert_true(ns >= 0 && nr >= 0);
    mock_expect_bytes(m, s, (size_t)ns, r, (size_t)nr);
}

/* The card is removed after the reply of the last step added. */
static inline void mock_remove_after_last(struct mock_link *m)
{
    assert_true(m->n_steps > 0);
    m->steps[m->n_steps - 1].remove = true;
}

static inline void mock_finish(struct mock_link *m)
{
    size_t steps_left = m->n_steps - m->next, bytes_left = m->q_len - m->q_pos;
    for (size_t i = 0; i < m->n_steps; i++) {
        free(m->steps[i].send);
        free(m->steps[i].reply);
    }
    free(m->steps);
    free(m->q);
    m->steps = NULL;
    m->q = NULL;
    if (steps_left || bytes_left)
        fprintf(stderr, "# script not finished: %zu steps and %zu card bytes left\n", steps_left,
                bytes_left);
    assert_int_equal(steps_left, 0);
    assert_int_equal(bytes_left, 0);
}

#endif
