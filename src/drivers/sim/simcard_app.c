/*
 * The simulated card's ISO/IEC 7816-4 application: APDU parsing (short and extended), a small
 * file system (MF, two EFs, one DF with an AID and two EFs; see simcard.h), and the commands,
 * dispatched through a table {CLA, INS, T=0 treatment, handler}. The T=0 treatment tells the T=0
 * engine whether P3 is Lc or Le and which procedure bytes to use; it does not change what the
 * command does.
 *
 * Handlers get the parsed APDU and a response buffer of at least 65 536 bytes; they return
 * SW1 SW2 and the number of response data bytes. Response data are never longer than Ne; with
 * Le absent there are none.
 */
#include "drivers/sim/simcard_priv.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define SW_OK            0x9000
#define SW_EOF           0x6282
#define SW_WRONG_LENGTH  0x6700
#define SW_NO_CHANNEL    0x6881
#define SW_NO_SM         0x6882
#define SW_NO_CHAINING   0x6884
#define SW_NOT_EF        0x6981
#define SW_SECURITY      0x6982
#define SW_BLOCKED       0x6983
#define SW_NO_RESPONSE   0x6985
#define SW_NO_CURRENT_EF 0x6986
#define SW_NOT_FOUND     0x6A82
#define SW_NO_ROOM       0x6A84
#define SW_WRONG_P1P2    0x6A86
#define SW_NO_REFERENCE  0x6A88
#define SW_WRONG_OFFSET  0x6B00
#define SW_WRONG_LE      0x6C00
#define SW_UNKNOWN_INS   0x6D00
#define SW_UNKNOWN_CLA   0x6E00

/* ---- file system ------------------------------------------------------------------------- */

enum file_kind { FILE_DF, FILE_EF };
enum update_rule { UPD_FREE, UPD_PIN, UPD_NEVER };

struct file_desc {
    uint16_t fid;
    enum file_kind kind;
    int parent;  /* index, -1 for the MF */
    uint8_t sfi; /* EFs: short identifier */
    size_t size; /* EFs */
    enum update_rule upd;
    const char *aid; /* DFs with a name */
    size_t aid_len;
};

static const struct file_desc files[SC_APP_FILES] = {
    {0x3F00, FILE_DF, -1, 0, 0, UPD_NEVER, NULL, 0},
    {0x2F01, FILE_EF, 0, 1, 32, UPD_FREE, NULL, 0},
    {0x0002, FILE_EF, 0, 2, 8, UPD_NEVER, NULL, 0},
    {0x5000, FILE_DF, 0, 0, 0, UPD_NEVER, SIMCARD_AID, SIMCARD_AID_LEN},
    {0x5001, FILE_EF, 3, 3, 256, UPD_FREE, NULL, 0},
    {0x5002, FILE_EF, 3, 4, 4096, UPD_PIN, NULL, 0},
};

#define FILE_EF_SERIAL 2

static size_t file_offset(int idx)
{
    size_t off = 0;
    for (int i = 0; i < idx; i++)
        off += files[i].size;
    return off;
}

static uint8_t *file_data(struct sc_app *app, int idx)
{
    return app->mem + file_offset(idx);
}

/* Initial contents: text in EF 2F01, a serial number, byte patterns in the DF's EFs. */
int sc_app_init(struct sc_app *app)
{
    static const char text[] = "SCRM simulated card EF 2F01";
    static const uint8_t serial[8] = {0x53, 0x43, 0x52, 0x4D, 0x00, 0x00, 0x00, 0x01};
    memset(app, 0, sizeof(*app));
    app->mem = calloc(1, file_offset(SC_APP_FILES));
    if (!app->mem)
        return -1;
    memcpy(file_data(app, 1), text, sizeof(text) - 1);
    memcpy(file_data(app, FILE_EF_SERIAL), serial, sizeof(serial));
    for (size_t i = 0; i < files[4].size; i++)
        file_data(app, 4)[i] = (uint8_t)i;
    for (size_t i = 0; i < files[5].size; i++)
        file_data(app, 5)[i] = (uint8_t)(i * 7);
    app->pin_tries = SIMCARD_PIN_TRIES;
    sc_app_reset(app);
    return 0;
}

void sc_app_free(struct sc_app *app)
{
    free(app->mem);
    app->mem = NULL;
}

void sc_app_reset(struct sc_app *app)
{
    app->cur_df = 0;
    app->cur_ef = -1;
    app->pin_ok = false;
}

/* ---- APDU parsing ------------------------------------------------------------------------ */

/* Le from its encoded value: 00 / 0000 mean the maximum (256 / 65 536). */
static void set_le(struct sc_apdu *a, size_t value, bool extended)
{
    a->le_present = true;
    a->le_wild = value == 0;
    a->ne = value ? value : (extended ? 65536 : 256);
}

/* Extended length: 00 then Lc on two bytes and/or Le on two bytes (buf[4] == 0, len >= 7). */
static uint16_t parse_extended(const uint8_t *buf, size_t len, struct sc_apdu *out)
{
    out->extended = true;
    if (len == 7) { /* case 2E */
        set_le(out, (size_t)buf[5] << 8 | buf[6], true);
        return 0;
    }
    size_t lc = (size_t)buf[5] << 8 | buf[6];
    if (lc == 0 || (len != 7 + lc && len != 9 + lc))
        return SW_WRONG_LENGTH;
    out->data = buf + 7;
    out->nc = lc;
    if (len == 9 + lc)
        set_le(out, (size_t)buf[7 + lc] << 8 | buf[8 + lc], true);
    return 0;
}

uint16_t sc_apdu_parse(const uint8_t *buf, size_t len, struct sc_apdu *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 4)
        return SW_WRONG_LENGTH;
    out->cla = buf[0];
    out->ins = buf[1];
    out->p1 = buf[2];
    out->p2 = buf[3];
    if (len == 4)
        return 0;
    if (len == 5) { /* case 2S */
        set_le(out, buf[4], false);
        return 0;
    }
    if (buf[4] == 0)
        return len >= 7 ? parse_extended(buf, len, out) : SW_WRONG_LENGTH;
    size_t lc = buf[4]; /* case 3S / 4S */
    if (len != 5 + lc && len != 6 + lc)
        return SW_WRONG_LENGTH;
    out->data = buf + 5;
    out->nc = lc;
    if (len == 6 + lc)
        set_le(out, buf[5 + lc], false);
    return 0;
}

/* ---- helpers for handlers ---------------------------------------------------------------- */

/* Copy response data, cut to Ne (nothing when Le is absent). */
static size_t put(const struct sc_apdu *a, uint8_t *resp, const uint8_t *d, size_t n)
{
    if (!a->le_present)
        return 0;
    if (n > a->ne)
        n = a->ne;
    if (n)
        memcpy(resp, d, n);
    return n;
}

static int find_child(int parent, uint16_t fid, int kind)
{
    for (int i = 0; i < SC_APP_FILES; i++)
        if (files[i].parent == parent && files[i].fid == fid &&
            (kind < 0 || (int)files[i].kind == kind))
            return i;
    return -1;
}

/* FCP: 62 L { 82 descriptor, 83 FID, 80 size (EF), 84 name (DF), 8A life cycle }. */
static size_t build_fcp(int idx, uint8_t tag, uint8_t *out)
{
    const struct file_desc *f = &files[idx];
    size_t n = 2;
    out[n++] = 0x82;
    out[n++] = 1;
    out[n++] = f->kind == FILE_DF ? 0x38 : 0x01;
    out[n++] = 0x83;
    out[n++] = 2;
    out[n++] = (uint8_t)(f->fid >> 8);
    out[n++] = (uint8_t)f->fid;
    if (f->kind == FILE_EF) {
        out[n++] = 0x80;
        out[n++] = 2;
        out[n++] = (uint8_t)(f->size >> 8);
        out[n++] = (uint8_t)f->size;
    }
    if (f->aid) {
        out[n++] = 0x84;
        out[n++] = (uint8_t)f->aid_len;
        memcpy(out + n, f->aid, f->aid_len);
        n += f->aid_len;
    }
    out[n++] = 0x8A;
    out[n++] = 1;
    out[n++] = 0x05;
    out[0] = tag;
    out[1] = (uint8_t)(n - 2);
    return n;
}

static void make_current(struct sc_app *app, int idx)
{
    if (files[idx].kind == FILE_DF) {
        app->cur_df = idx;
        app->cur_ef = -1;
    } else {
        app->cur_df = files[idx].parent;
        app->cur_ef = idx;
    }
}

/* ---- commands ---------------------------------------------------------------------------- */

/* SELECT by FID: the MF, a child of the current DF, the current DF, or a sibling of it. */
static int select_fid(const struct sc_app *app, uint16_t fid)
{
    if (fid == 0x3F00)
        return 0;
    int i = find_child(app->cur_df, fid, -1);
    if (i < 0 && files[app->cur_df].fid == fid)
        i = app->cur_df;
    if (i < 0 && files[app->cur_df].parent >= 0)
        i = find_child(files[app->cur_df].parent, fid, -1);
    return i;
}

static int select_aid(const uint8_t *name, size_t len)
{
    for (int i = 0; i < SC_APP_FILES; i++)
        if (files[i].aid && len <= files[i].aid_len && memcmp(files[i].aid, name, len) == 0)
            return i;
    return -1;
}

/* Which file the SELECT designates; -1 not found; -2 wrong P1; -3 wrong length. */
static int select_target(const struct sc_app *app, const struct sc_apdu *a)
{
    uint16_t fid = a->nc == 2 ? (uint16_t)(a->data[0] << 8 | a->data[1]) : 0;
    switch (a->p1) {
    case 0x00:
        if (a->nc == 0)
            return 0;
        return a->nc == 2 ? select_fid(app, fid) : -3;
    case 0x01: return a->nc == 2 ? find_child(app->cur_df, fid, FILE_DF) : -3;
    case 0x02: return a->nc == 2 ? find_child(app->cur_df, fid, FILE_EF) : -3;
    case 0x03:
        return a->nc == 0 ? (files[app->cur_df].parent >= 0 ? files[app->cur_df].parent : 0) : -3;
    case 0x04:
        if (a->nc == 0 || a->nc > 16)
            return -3;
        return (a->p2 & 0x03) == 0 ? select_aid(a->data, a->nc) : -1;
    default: return -2;
    }
}

static uint16_t cmd_select(struct simcard *c, const struct sc_apdu *a, uint8_t *resp, size_t *n)
{
    uint8_t p2 = a->p2 & 0xFC;
    if (p2 != 0x00 && p2 != 0x04 && p2 != 0x0C)
        return SW_WRONG_P1P2;
    int idx = select_target(&c->app, a);
    if (idx == -2)
        return SW_WRONG_P1P2;
    if (idx == -3)
        return SW_WRONG_LENGTH;
    if (idx < 0)
        return SW_NOT_FOUND;
    make_current(&c->app, idx);
    if (p2 != 0x0C) {
        uint8_t fcp[64];
        size_t len = build_fcp(idx, p2 == 0x04 ? 0x62 : 0x6F, fcp);
        *n = put(a, resp, fcp, len);
    }
    return SW_OK;
}

/* Offset and file of READ/UPDATE BINARY (P1 bit 8: short EF identifier, offset P2). */
static uint16_t binary_target(struct sc_app *app, const struct sc_apdu *a, int *idx, size_t *off)
{
    if (a->p1 & 0x80) {
        if (a->p1 & 0x60)
            return SW_WRONG_P1P2;
        int found = -1;
        for (int i = 0; i < SC_APP_FILES; i++)
            if (files[i].parent == app->cur_df && files[i].kind == FILE_EF &&
                files[i].sfi == (a->p1 & 0x1F))
                found = i;
        if (found < 0)
            return SW_NOT_FOUND;
        make_current(app, found);
        *off = a->p2;
    } else {
        if (app->cur_ef < 0)
            return SW_NO_CURRENT_EF;
        *off = (size_t)a->p1 << 8 | a->p2;
    }
    *idx = app->cur_ef;
    if (files[*idx].kind != FILE_EF)
        return SW_NOT_EF;
    return *off > files[*idx].size ? SW_WRONG_OFFSET : 0;
}

static uint16_t cmd_read_binary(struct simcard *c, const struct sc_apdu *a, uint8_t *resp,
                                size_t *n)
{
    int idx;
    size_t off;
    if (!a->le_present || a->nc)
        return SW_WRONG_LENGTH;
    uint16_t sw = binary_target(&c->app, a, &idx, &off);
    if (sw)
        return sw;
    size_t avail = files[idx].size - off;
    *n = put(a, resp, file_data(&c->app, idx) + off, avail);
    return (!a->le_wild && a->ne > avail) ? SW_EOF : SW_OK;
}

static uint16_t cmd_update_binary(struct simcard *c, const struct sc_apdu *a, uint8_t *resp,
                                  size_t *n)
{
    int idx;
    size_t off;
    (void)resp;
    (void)n;
    if (a->nc == 0)
        return SW_WRONG_LENGTH;
    uint16_t sw = binary_target(&c->app, a, &idx, &off);
    if (sw)
        return sw;
    if (files[idx].upd == UPD_NEVER || (files[idx].upd == UPD_PIN && !c->app.pin_ok))
        return SW_SECURITY;
    if (off + a->nc > files[idx].size)
        return SW_NO_ROOM;
    memcpy(file_data(&c->app, idx) + off, a->data, a->nc);
    return SW_OK;
}

static uint16_t cmd_get_challenge(struct simcard *c, const struct sc_apdu *a, uint8_t *resp,
                                  size_t *n)
{
    if (a->p1 || a->p2)
        return SW_WRONG_P1P2;
    if (!a->le_present || a->nc || (a->ne > 256 && !a->le_wild))
        return SW_WRONG_LENGTH;
    *n = a->ne > 256 ? 256 : a->ne;
    sc_random_bytes(c, resp, *n);
    return SW_OK;
}

static uint16_t cmd_verify(struct simcard *c, const struct sc_apdu *a, uint8_t *resp, size_t *n)
{
    static const uint8_t pin[8] = {'1', '2', '3', '4', 0xFF, 0xFF, 0xFF, 0xFF};
    struct sc_app *app = &c->app;
    (void)resp;
    (void)n;
    if (a->p1 != 0)
        return SW_WRONG_P1P2;
    if (a->p2 != 0x80)
        return SW_NO_REFERENCE;
    if (app->pin_tries == 0)
        return SW_BLOCKED;
    if (a->nc == 0)
        return app->pin_ok ? SW_OK : (uint16_t)(0x63C0 | app->pin_tries);
    if (a->nc != sizeof(pin))
        return SW_WRONG_LENGTH;
    if (memcmp(a->data, pin, sizeof(pin)) == 0) {
        app->pin_ok = true;
        app->pin_tries = SIMCARD_PIN_TRIES;
        return SW_OK;
    }
    app->pin_ok = false;
    app->pin_tries--;
    return app->pin_tries ? (uint16_t)(0x63C0 | app->pin_tries) : SW_BLOCKED;
}

/* GET DATA 005A: the serial number, exactly 8 bytes (a shorter Le gets 6C08). */
static uint16_t cmd_get_data(struct simcard *c, const struct sc_apdu *a, uint8_t *resp, size_t *n)
{
    size_t len = files[FILE_EF_SERIAL].size;
    if (a->p1 != 0x00 || a->p2 != 0x5A)
        return SW_NO_REFERENCE;
    if (!a->le_present || a->nc)
        return SW_WRONG_LENGTH;
    if (a->ne < len)
        return (uint16_t)(SW_WRONG_LE | len);
    *n = put(a, resp, file_data(&c->app, FILE_EF_SERIAL), len);
    return SW_OK;
}

/* GET RESPONSE reaches the application only when nothing is pending (T=1, or T=0 sequence). */
static uint16_t cmd_get_response(struct simcard *c, const struct sc_apdu *a, uint8_t *resp,
                                 size_t *n)
{
    (void)c;
    (void)a;
    (void)resp;
    (void)n;
    return SW_NO_RESPONSE;
}

static uint16_t cmd_echo(struct simcard *c, const struct sc_apdu *a, uint8_t *resp, size_t *n)
{
    (void)c;
    if (a->p1 || a->p2)
        return SW_WRONG_P1P2;
    *n = put(a, resp, a->data, a->nc);
    return SW_OK;
}

static uint16_t cmd_fill(struct simcard *c, const struct sc_apdu *a, uint8_t *resp, size_t *n)
{
    (void)c;
    if (a->p1 || a->p2)
        return SW_WRONG_P1P2;
    if (!a->le_present || a->nc)
        return SW_WRONG_LENGTH;
    for (size_t i = 0; i < a->ne; i++)
        resp[i] = (uint8_t)i;
    *n = a->ne;
    return SW_OK;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

typedef uint16_t (*cmd_fn)(struct simcard *c, const struct sc_apdu *a, uint8_t *resp, size_t *n);

struct cmd_entry {
    uint8_t cla, ins;
    struct sc_t0_class t0;
    cmd_fn fn;
};

static const struct cmd_entry commands[] = {
    {0x00, 0xA4, {SC_T0_IN, SC_PROC_ACK}, cmd_select},
    {0x00, 0xB0, {SC_T0_OUT, SC_PROC_ACK}, cmd_read_binary},
    {0x00, 0xD6, {SC_T0_IN, SC_PROC_FIRST_ONE}, cmd_update_binary},
    {0x00, 0x84, {SC_T0_OUT, SC_PROC_NULL_FIRST}, cmd_get_challenge},
    {0x00, 0x20, {SC_T0_IN, SC_PROC_EACH}, cmd_verify},
    {0x00, 0xCA, {SC_T0_OUT, SC_PROC_ACK}, cmd_get_data},
    {0x00, 0xC0, {SC_T0_OUT, SC_PROC_ACK}, cmd_get_response},
    {SIMCARD_CLA_PROPRIETARY, SIMCARD_INS_ECHO, {SC_T0_IN, SC_PROC_ACK}, cmd_echo},
    {SIMCARD_CLA_PROPRIETARY, SIMCARD_INS_FILL, {SC_T0_OUT, SC_PROC_ACK}, cmd_fill},
};

static const struct cmd_entry *lookup(uint8_t cla, uint8_t ins)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (commands[i].cla == cla && commands[i].ins == ins)
            return &commands[i];
    return NULL;
}

/* SW for a CLA the card does not serve; 0 when the class is one it knows (00, 80). */
static uint16_t class_error(uint8_t cla)
{
    if (cla == 0x00 || cla == SIMCARD_CLA_PROPRIETARY)
        return 0;
    if (cla == 0xFF || (cla & 0x80))
        return SW_UNKNOWN_CLA;
    if (cla & 0x03)
        return SW_NO_CHANNEL;
    if (cla & 0x0C)
        return SW_NO_SM;
    if (cla & 0x10)
        return SW_NO_CHAINING;
    return SW_UNKNOWN_CLA;
}

struct sc_t0_class sc_app_t0_class(uint8_t cla, uint8_t ins, uint8_t p1)
{
    struct sc_t0_class none = {SC_T0_NONE, SC_PROC_ACK};
    (void)p1;
    const struct cmd_entry *e = class_error(cla) ? NULL : lookup(cla, ins);
    return e ? e->t0 : none;
}

uint16_t sc_app_execute(struct simcard *c, const struct sc_apdu *a, uint8_t *resp, size_t cap,
                        size_t *resp_len)
{
    *resp_len = 0;
    scrm_assert(cap >= 65536);
    uint16_t sw = class_error(a->cla);
    if (sw)
        return sw;
    const struct cmd_entry *e = lookup(a->cla, a->ins);
    if (!e)
        return SW_UNKNOWN_INS;
    return e->fn(c, a, resp, resp_len);
}
