/*
 * Internals of the simulated card shared by its source files: the card object, the T=0 and T=1
 * card-side state, the ISO 7816-4 application and the helpers each part calls.
 *
 * simcard.c    configuration, profiles, ATR, reset, PPS, byte queues, faults, random numbers
 * simcard_t0.c T=0 card side: header, procedure bytes, 61xx/6Cxx, GET RESPONSE, ENVELOPE
 * simcard_t1.c T=1 card side: blocks, sequence numbers, chaining, S-blocks, error recovery
 * simcard_app.c the ISO 7816-4 application: APDU parsing, file system, commands
 *
 * Everything the protocol engines handle is in direct convention: simcard.c converts at the wire.
 */
#ifndef SCRM_SIMCARD_PRIV_H
#define SCRM_SIMCARD_PRIV_H

#include "drivers/sim/simcard.h"

/* Largest command APDU (case 4E with 65 535 data bytes) and response (65 536 data + SW). */
#define SC_APDU_MAX 65544u
#define SC_RESP_MAX 65538u

/* ---- the ISO 7816-4 application ---------------------------------------------------------- */

/* A parsed command APDU. ne is 0 when Le is absent; le_wild marks Le = 00 / 0000 ("maximum"). */
struct sc_apdu {
    uint8_t cla, ins, p1, p2;
    const uint8_t *data;
    size_t nc;
    size_t ne;
    bool le_present, le_wild, extended;
};

/* How a T=0 card treats P3 of a command, and which procedure bytes it uses. */
enum sc_t0_dir {
    SC_T0_NONE, /* unknown or rejected before data: answer SW1 SW2 at once */
    SC_T0_IN,   /* P3 = Lc: data comes to the card (cases 1, 3, 4) */
    SC_T0_OUT,  /* P3 = Le: data goes to the reader (case 2) */
};
enum sc_t0_proc {
    SC_PROC_ACK,        /* INS: all bytes at once */
    SC_PROC_EACH,       /* INS^FF before every byte (and a NULL 60 before SW1 SW2) */
    SC_PROC_FIRST_ONE,  /* INS^FF for the first byte, then INS for the rest */
    SC_PROC_NULL_FIRST, /* NULL 60, INS^FF + one byte, then INS for the rest */
};

struct sc_t0_class {
    enum sc_t0_dir dir;
    enum sc_t0_proc proc;
};

#define SC_APP_FILES 6

struct sc_app {
    uint8_t *mem;       /* contents of every EF, one allocation */
    int cur_df;         /* index in the file table */
    int cur_ef;         /* -1: none */
    uint32_t pin_tries; /* left */
    bool pin_ok;
};

int sc_app_init(struct sc_app *app);
void sc_app_free(struct sc_app *app);
/* Back to the MF with the PIN not verified (after a reset). */
void sc_app_reset(struct sc_app *app);

/*
 * Parse a command APDU (short or extended). Returns 0, or the SW to answer (6700) when the
 * encoding is invalid.
 */
uint16_t sc_apdu_parse(const uint8_t *buf, size_t len, struct sc_apdu *out);

/*
 * Execute one command. Writes at most cap response data bytes to resp (cap >= 65 536) and returns
 * SW1 SW2; *resp_len is the number of data bytes.
 */
struct simcard;
uint16_t sc_app_execute(struct simcard *c, const struct sc_apdu *a, uint8_t *resp, size_t cap,
                        size_t *resp_len);

/* T=0 treatment of a command header (CLA, INS, P1). */
struct sc_t0_class sc_app_t0_class(uint8_t cla, uint8_t ins, uint8_t p1);

/* ---- protocol state ---------------------------------------------------------------------- */

enum sc_phase {
    SC_OFF,    /* no power */
    SC_ATR,    /* ATR sent: the first byte decides between PPS and the default protocol */
    SC_PPS,    /* reading a PPS request */
    SC_T0,     /* T=0 running */
    SC_T1,     /* T=1 running */
    SC_SILENT, /* refused PPS: nothing until the next reset */
};

enum sc_t0_state {
    T0_HEADER, /* collecting the 5-byte header */
    T0_DATA,   /* collecting data bytes after a procedure byte */
};

struct sc_t0 {
    enum sc_t0_state st;
    uint8_t hdr[5];
    size_t hdr_len;
    struct sc_t0_class cls;
    uint8_t data[256];
    size_t want; /* data bytes announced by P3 */
    size_t got;
    size_t burst; /* bytes still allowed by the last procedure byte */
    /* response waiting for GET RESPONSE (in c->rsp) */
    bool rsp_pending;
    size_t rsp_pos;
    uint16_t rsp_sw;
    /* ENVELOPE: C-APDU collected in c->cmd */
    bool env_done;        /* the last ENVELOPE executed the collected APDU */
    uint16_t env_last_sw; /* what that ENVELOPE answered */
};

enum sc_t1_last {
    T1_LAST_NONE,
    T1_LAST_I, /* last block sent was an I-block (last_more: with M) */
    T1_LAST_R,
    T1_LAST_S_REQ,  /* an S(IFS/WTX request) of the card, awaiting the response */
    T1_LAST_S_RESP, /* an S(... response) to the reader */
};

struct sc_t1 {
    uint8_t ns;   /* N(S) of the card's next I-block */
    uint8_t nr;   /* N(S) expected in the reader's next I-block */
    uint8_t ifsc; /* the card's receive size */
    uint8_t ifsd; /* the reader's receive size */
    uint8_t nad;  /* NAD to answer with */
    uint8_t last[3 + 254 + 2];
    size_t last_len;
    enum sc_t1_last last_kind;
    bool last_more;
    uint8_t last_ns;
    uint8_t last_i[3 + 254 + 2]; /* the last I-block, for a resend after an S-block */
    size_t last_i_len;
    bool sending;     /* a response is being sent (chained) from c->rsp */
    size_t rsp_pos;   /* next response byte to send */
    uint8_t sreq_pcb; /* C1 or C3 while T1_LAST_S_REQ */
    uint8_t sreq_inf;
};

struct sc_faults {
    uint32_t bad_edc, lose, wtx, ifs, chain, garbage;
    bool mute;
};

struct simcard {
    struct simcard_config cfg;
    enum sc_phase phase;
    int protocol;
    bool pps_done;
    uint8_t fi, di;
    uint8_t in[300]; /* PPS request or T=1 block being received */
    size_t in_len;
    uint8_t *out; /* queue to the reader, wire form */
    size_t out_head, out_len, out_cap;
    uint64_t rx_count;
    uint64_t rng;
    struct sc_faults fault;
    uint8_t *cmd; /* command APDU being collected (T=1 chain, ENVELOPE) */
    size_t cmd_len;
    bool cmd_overflow;
    uint8_t *rsp; /* response data + SW1 SW2 */
    size_t rsp_len;
    struct sc_t0 t0;
    struct sc_t1 t1;
    struct sc_app app;
};

/* Queue bytes for the reader (direct convention; converted for inverse cards). */
void sc_send(struct simcard *c, const uint8_t *data, size_t len);
void sc_send_byte(struct simcard *c, uint8_t b);
/* Queue n random bytes (the garbage fault). */
void sc_send_garbage(struct simcard *c, size_t n);
uint64_t sc_random(struct simcard *c);
void sc_random_bytes(struct simcard *c, uint8_t *out, size_t n);

/* Run a complete command APDU in buf and leave data + SW in c->rsp / c->rsp_len. */
void sc_run_apdu(struct simcard *c, const uint8_t *buf, size_t len);

void sc_t0_reset(struct simcard *c);
void sc_t0_byte(struct simcard *c, uint8_t b);
void sc_t1_reset(struct simcard *c);
/* One T=1 byte: collects a block and handles it when complete. */
void sc_t1_byte(struct simcard *c, uint8_t b);

/* EDC of T=1. */
uint8_t sc_lrc(const uint8_t *data, size_t len);
uint16_t sc_crc(const uint8_t *data, size_t len);

#endif
