/*
 * T=0 on the card side (ISO/IEC 7816-3 clause 10, 7816-4 annex on T=0 transport).
 *
 * The card reads the 5-byte header CLA INS P1 P2 P3, then asks the application how P3 is meant
 * (sc_app_t0_class): Lc for commands that take data, Le for commands that only return data.
 *   - data to the card: procedure bytes ACK (INS: send everything), INS^FF (send one byte) or
 *     NULL (60: wait), chosen per command to exercise every form; after the last byte the
 *     command runs; response data are announced with 61xx and fetched with GET RESPONSE
 *     (00 C0 00 00 Le): a Le above what is left gets 6Cxx, a shorter one gets that many bytes
 *     and 61xx for the rest.
 *   - data from the card: the command runs at once; when the data length differs from Le the
 *     card answers 6Cxx (xx = the exact length, 00 = 256), otherwise procedure byte(s), data and
 *     SW1 SW2.
 *   - unknown or refused commands get SW1 SW2 at once, without procedure byte.
 * ENVELOPE (INS C2, when configured) carries an extended C-APDU in pieces: the pieces are
 * collected; the C-APDU runs when a piece comes with P3 = 0, or when a piece without the chaining
 * bit (CLA 10) completes a well-formed APDU that is either shorter than 255 bytes or ends with Le
 * (a complete APDU without Le that ends exactly a 255-byte piece may still get its Le: the card
 * waits for the next piece or an empty ENVELOPE). Intermediate pieces get 9000. The response is
 * fetched with GET RESPONSE (61 00 = 256 or more bytes left); an empty ENVELOPE after the run
 * repeats its status.
 */
#include "drivers/sim/simcard_priv.h"

#include <string.h>

#define INS_GET_RESPONSE 0xC0
#define INS_ENVELOPE     0xC2
#define PROC_NULL        0x60

void sc_t0_reset(struct simcard *c)
{
    memset(&c->t0, 0, sizeof(c->t0));
    c->t0.st = T0_HEADER;
}

static void send_sw(struct simcard *c, uint16_t sw)
{
    uint8_t b[2] = {(uint8_t)(sw >> 8), (uint8_t)sw};
    sc_send(c, b, 2);
}

/* Size of the next 61xx piece: at most 256 bytes (coded 00), or the CHAIN fault's size. */
static size_t piece(const struct simcard *c, size_t left)
{
    size_t n = left > 256 ? 256 : left;
    if (c->fault.chain && n > c->fault.chain)
        n = c->fault.chain;
    return n;
}

/* Announce response data kept in c->rsp[0..c->rsp_len): 61xx, or the SW when there is none. */
static void announce(struct simcard *c, uint16_t sw)
{
    struct sc_t0 *t = &c->t0;
    if (c->rsp_len == 0) {
        t->rsp_pending = false;
        send_sw(c, sw);
        return;
    }
    t->rsp_pending = true;
    t->rsp_pos = 0;
    t->rsp_sw = sw;
    send_sw(c, (uint16_t)(0x6100 | (piece(c, c->rsp_len) & 0xFF)));
}

/* Run the command whose header (and data) the card has now, as the application sees it. */
static uint16_t execute(struct simcard *c, size_t nc, size_t ne, bool wild)
{
    const uint8_t *h = c->t0.hdr;
    struct sc_apdu a = {
        .cla = h[0],
        .ins = h[1],
        .p1 = h[2],
        .p2 = h[3],
        .data = nc ? c->t0.data : NULL,
        .nc = nc,
        .ne = ne,
        .le_present = ne > 0,
        .le_wild = wild,
        .extended = false,
    };
    size_t n = 0;
    uint16_t sw = sc_app_execute(c, &a, c->rsp, SC_RESP_MAX - 2, &n);
    c->rsp_len = n;
    return sw;
}

/* Queue data bytes to the reader with the procedure bytes of style p, then SW1 SW2. */
static void send_out(struct simcard *c, uint8_t ins, enum sc_t0_proc p, const uint8_t *d, size_t n,
                     uint16_t sw)
{
    size_t i = 0;
    if (p == SC_PROC_NULL_FIRST)
        sc_send_byte(c, PROC_NULL);
    if (p == SC_PROC_EACH) {
        for (; i < n; i++) {
            sc_send_byte(c, (uint8_t)~ins);
            sc_send_byte(c, d[i]);
        }
        sc_send_byte(c, PROC_NULL);
    } else if (p != SC_PROC_ACK && n > 0) {
        sc_send_byte(c, (uint8_t)~ins);
        sc_send_byte(c, d[i++]);
    }
    if (i < n) {
        sc_send_byte(c, ins);
        sc_send(c, d + i, n - i);
    }
    send_sw(c, sw);
}

/* GET RESPONSE: hand out the kept response in pieces (ISO 7816-4 annex A, case 4S). */
static void get_response(struct simcard *c)
{
    struct sc_t0 *t = &c->t0;
    const uint8_t *h = t->hdr;
    if (h[0] != 0x00 || h[2] != 0 || h[3] != 0) {
        send_sw(c, h[0] != 0x00 ? 0x6E00 : 0x6A86);
        return;
    }
    if (!t->rsp_pending) {
        send_sw(c, 0x6985);
        return;
    }
    size_t le = h[4] ? h[4] : 256;
    size_t left = c->rsp_len - t->rsp_pos;
    if (le > left) {
        send_sw(c, (uint16_t)(0x6C00 | (left & 0xFF)));
        return;
    }
    const uint8_t *d = c->rsp + t->rsp_pos;
    t->rsp_pos += le;
    left -= le;
    uint16_t sw = t->rsp_sw;
    if (left)
        sw = (uint16_t)(0x6100 | (piece(c, left) & 0xFF));
    else
        t->rsp_pending = false;
    send_out(c, INS_GET_RESPONSE, SC_PROC_ACK, d, le, sw);
}

/* Case 2: the command runs now; 6Cxx when Le is not the length of the answer. */
static void run_out(struct simcard *c)
{
    const uint8_t *h = c->t0.hdr;
    size_t le = h[4] ? h[4] : 256;
    uint16_t sw = execute(c, 0, le, h[4] == 0);
    if (c->rsp_len == 0)
        send_sw(c, sw);
    else if (c->rsp_len != le)
        send_sw(c, (uint16_t)(0x6C00 | (c->rsp_len & 0xFF)));
    else
        send_out(c, h[1], c->t0.cls.proc, c->rsp, c->rsp_len, sw);
}

static void envelope_execute(struct simcard *c)
{
    struct sc_t0 *t = &c->t0;
    uint16_t sw = 0x6700;
    c->rsp_len = 0;
    if (!c->cmd_overflow) {
        sc_run_apdu(c, c->cmd, c->cmd_len);
        c->rsp_len -= 2;
        sw = (uint16_t)(c->rsp[c->rsp_len] << 8 | c->rsp[c->rsp_len + 1]);
    }
    c->cmd_len = 0;
    c->cmd_overflow = false;
    announce(c, sw);
    t->env_done = true;
    t->env_last_sw = t->rsp_pending ? (uint16_t)(0x6100 | (piece(c, c->rsp_len) & 0xFF)) : sw;
}

/* One ENVELOPE piece has been received completely (see the file comment). */
static void envelope_piece(struct simcard *c, size_t n)
{
    struct sc_t0 *t = &c->t0;
    if (n == 0) {
        if (c->cmd_len > 0)
            envelope_execute(c);
        else
            send_sw(c, t->env_done ? t->env_last_sw : 0x6700);
        return;
    }
    t->env_done = false;
    if (c->cmd_len + n > SC_APDU_MAX)
        c->cmd_overflow = true;
    else
        memcpy(c->cmd + c->cmd_len, t->data, n);
    c->cmd_len += c->cmd_overflow ? 0 : n;
    struct sc_apdu a;
    bool chained = (t->hdr[0] & 0x10) != 0;
    bool complete = !c->cmd_overflow && sc_apdu_parse(c->cmd, c->cmd_len, &a) == 0;
    /* a full piece may be followed by more unless the APDU ends with Le (it cannot grow) */
    if (!chained && complete && (n < 255 || a.le_present))
        envelope_execute(c);
    else
        send_sw(c, 0x9000);
}

/* All data of a command taking data are in: run it and answer. */
static void run_in(struct simcard *c)
{
    struct sc_t0 *t = &c->t0;
    if (t->cls.proc == SC_PROC_EACH && t->want > 0)
        sc_send_byte(c, PROC_NULL);
    if (t->hdr[1] == INS_ENVELOPE && c->cfg.envelope) {
        envelope_piece(c, t->want);
        return;
    }
    uint16_t sw = execute(c, t->want, 256, true);
    announce(c, sw);
}

/* Ask for the next data byte(s) with the procedure byte of the command's style. */
static void ask_data(struct simcard *c)
{
    struct sc_t0 *t = &c->t0;
    uint8_t ins = t->hdr[1];
    bool one = t->cls.proc == SC_PROC_EACH || (t->got == 0 && t->cls.proc != SC_PROC_ACK);
    if (t->got == 0 && t->cls.proc == SC_PROC_NULL_FIRST)
        sc_send_byte(c, PROC_NULL);
    sc_send_byte(c, one ? (uint8_t)~ins : ins);
    t->burst = one ? 1 : t->want - t->got;
}

/* Classify the command: GET RESPONSE and ENVELOPE are this layer's, the rest the application's. */
static struct sc_t0_class classify(struct simcard *c)
{
    const uint8_t *h = c->t0.hdr;
    struct sc_t0_class k = {SC_T0_NONE, SC_PROC_ACK};
    if ((h[1] & 0xF0) == 0x60 || (h[1] & 0xF0) == 0x90)
        return k; /* not an instruction in T=0 */
    if (h[1] == INS_GET_RESPONSE) {
        k.dir = SC_T0_OUT;
        return k;
    }
    if (h[1] == INS_ENVELOPE && c->cfg.envelope) {
        if ((h[0] == 0x00 || h[0] == 0x10) && h[2] == 0 && h[3] == 0)
            k.dir = SC_T0_IN;
        return k;
    }
    return sc_app_t0_class(h[0], h[1], h[2]);
}

/* Answer a command that is refused before any data: the application gives the SW. */
static void reject(struct simcard *c)
{
    const uint8_t *h = c->t0.hdr;
    uint16_t sw = 0x6D00;
    if ((h[1] & 0xF0) != 0x60 && (h[1] & 0xF0) != 0x90) {
        if (h[1] == INS_ENVELOPE && c->cfg.envelope)
            sw = (h[0] == 0x00 || h[0] == 0x10) ? 0x6A86 : 0x6E00;
        else
            sw = execute(c, 0, 0, false);
    }
    c->rsp_len = 0;
    send_sw(c, sw);
}

/* Fault handling at a new header; returns true when the command is dropped. */
static bool header_faults(struct simcard *c)
{
    if (c->fault.lose) {
        c->fault.lose--;
        return true;
    }
    if (c->fault.garbage) {
        sc_send_garbage(c, c->fault.garbage);
        c->fault.garbage = 0;
        return true;
    }
    for (; c->fault.wtx; c->fault.wtx--)
        sc_send_byte(c, PROC_NULL);
    return false;
}

static void header_done(struct simcard *c)
{
    struct sc_t0 *t = &c->t0;
    t->hdr_len = 0;
    if (header_faults(c))
        return;
    t->cls = classify(c);
    bool keeps = t->hdr[1] == INS_GET_RESPONSE || t->hdr[1] == INS_ENVELOPE;
    /* an empty ENVELOPE after the C-APDU ran only repeats its status: the response stays */
    bool repeat = t->hdr[1] == INS_ENVELOPE && t->hdr[4] == 0 && c->cmd_len == 0 && t->env_done;
    if (t->hdr[1] != INS_GET_RESPONSE && !repeat)
        t->rsp_pending = false;
    if (!keeps) {
        c->cmd_len = 0; /* any other command ends an ENVELOPE sequence */
        c->cmd_overflow = false;
        t->env_done = false;
    }
    if (t->cls.dir == SC_T0_NONE) {
        reject(c);
    } else if (t->hdr[1] == INS_GET_RESPONSE) {
        get_response(c);
    } else if (t->cls.dir == SC_T0_OUT) {
        run_out(c);
    } else {
        t->want = t->hdr[4];
        t->got = 0;
        if (t->want == 0) {
            run_in(c);
            return;
        }
        t->st = T0_DATA;
        ask_data(c);
    }
}

void sc_t0_byte(struct simcard *c, uint8_t b)
{
    struct sc_t0 *t = &c->t0;
    if (t->st == T0_HEADER) {
        t->hdr[t->hdr_len++] = b;
        if (t->hdr_len == 5)
            header_done(c);
        return;
    }
    t->data[t->got++] = b;
    if (t->burst)
        t->burst--;
    if (t->got == t->want) {
        t->st = T0_HEADER;
        run_in(c);
    } else if (t->burst == 0) {
        ask_data(c);
    }
}
