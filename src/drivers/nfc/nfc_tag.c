/*
 * Simulated tags: the profile table, construction, RF activation, frame dispatch by the protocol
 * the tag is activated with, and the tiny ISO 7816-4 application of the ISO-DEP tags (see
 * nfc_tag.h). The memory-card command sets live in nfc_tag_mifare.c and nfc_tag_misc.c.
 */
#include <stdlib.h>
#include <string.h>

#include "drivers/nfc/nfc_tag_priv.h"
#include "smc/nfc.h"

struct profile {
    const char *name;
    enum nfc_tag_type type;
    uint32_t protos, def_proto;
    uint8_t sak, atqa[2];
    enum nfc_ul_type ul;
    unsigned size; /* Classic blocks or Ultralight pages */
    uint8_t hr0, hr1;
    uint8_t uid_len;
    uint8_t uid[NFC_MAX_UID];
};

#define A4 NFC_PROTO_ISO_DEP_A
#define MF NFC_PROTO_MIFARE

/* clang-format off */
static const struct profile profiles[] = {
    {"iso4a", TAG_ISO4A, A4, A4, 0x20, {0x44, 0x03}, NFC_UL_NONE, 0, 0, 0,
     7, {0x04, 0x53, 0x43, 0x52, 0x4D, 0x34, 0x41}},
    {"iso4b", TAG_ISO4B, NFC_PROTO_ISO_DEP_B, NFC_PROTO_ISO_DEP_B, 0, {0, 0}, NFC_UL_NONE, 0, 0, 0,
     4, {0x5C, 0x52, 0x4D, 0x42}},
    {"classic1k", TAG_CLASSIC, MF, MF, 0x08, {0x04, 0x00}, NFC_UL_NONE, 64, 0, 0,
     4, {0xC1, 0x4B, 0x31, 0x6B}},
    {"classic4k", TAG_CLASSIC, MF, MF, 0x18, {0x02, 0x00}, NFC_UL_NONE, 256, 0, 0,
     4, {0xC4, 0x4B, 0x34, 0x6B}},
    {"mini", TAG_CLASSIC, MF, MF, 0x09, {0x04, 0x00}, NFC_UL_NONE, 20, 0, 0,
     4, {0xC0, 0x4D, 0x49, 0x4E}},
    {"ultralight", TAG_ULTRALIGHT, MF, MF, 0x00, {0x44, 0x00}, NFC_UL, 16, 0, 0,
     7, {0x04, 0x55, 0x4C, 0x31, 0x36, 0x50, 0x47}},
    {"ultralight-c", TAG_ULTRALIGHT, MF, MF, 0x00, {0x44, 0x00}, NFC_UL_C, 48, 0, 0,
     7, {0x04, 0x55, 0x4C, 0x43, 0x34, 0x38, 0x50}},
    {"ultralight-ev1", TAG_ULTRALIGHT, MF, MF, 0x00, {0x44, 0x00}, NFC_UL_EV1, 20, 0, 0,
     7, {0x04, 0x55, 0x4C, 0x45, 0x56, 0x31, 0x31}},
    {"felica", TAG_FELICA, NFC_PROTO_FELICA, NFC_PROTO_FELICA, 0, {0, 0}, NFC_UL_NONE, 0, 0, 0,
     8, {0x01, 0x2E, 0x53, 0x43, 0x52, 0x4D, 0x46, 0x43}},
    /* ISO 15693 UIDs least significant byte first: ... IC type, manufacturer, E0. */
    {"icode-sli", TAG_ISO15693, NFC_PROTO_ISO15693, NFC_PROTO_ISO15693, 0, {0, 0}, NFC_UL_NONE, 0,
     0, 0, 8, {0x5A, 0x4C, 0x53, 0x4D, 0x52, 0x01, 0x04, 0xE0}},
    {"iso15693", TAG_ISO15693, NFC_PROTO_ISO15693, NFC_PROTO_ISO15693, 0, {0, 0}, NFC_UL_NONE, 0,
     0, 0, 8, {0x5A, 0x4C, 0x53, 0x4D, 0x52, 0x00, 0x07, 0xE0}},
    {"jewel", TAG_JEWEL, NFC_PROTO_JEWEL, NFC_PROTO_JEWEL, 0, {0x00, 0x0C}, NFC_UL_NONE, 0,
     0x01, 0x00, 4, {0x92, 0x4A, 0x57, 0x4C}},
    {"topaz", TAG_JEWEL, NFC_PROTO_JEWEL, NFC_PROTO_JEWEL, 0, {0x00, 0x0C}, NFC_UL_NONE, 0,
     0x11, 0x48, 4, {0x93, 0x54, 0x4F, 0x50}},
    {"jcop", TAG_ISO4A, A4 | MF, A4, 0x28, {0x04, 0x00}, NFC_UL_NONE, 64, 0, 0,
     4, {0x4A, 0x43, 0x4F, 0x50}},
};
/* clang-format on */

static const uint8_t ats_hist_iso4a[] = {'S', 'C', 'R', 'M', '-', 'N', 'F', 'C'};
static const uint8_t ats_hist_jcop[] = {0x80, 0x4A, 0x43, 0x4F, 0x50};
static const uint8_t atqb_app[4] = {0x53, 0x43, 0x52, 0x4D};
static const uint8_t atqb_proto[3] = {0x00, 0x81, 0x71};

static const struct profile *find_profile(const char *name)
{
    for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
        if (strcmp(profiles[i].name, name) == 0)
            return &profiles[i];
    return NULL;
}

const char *nfc_tag_profile_name(size_t i)
{
    return i < sizeof(profiles) / sizeof(profiles[0]) ? profiles[i].name : NULL;
}

bool nfc_tag_profile_exists(const char *profile)
{
    return find_profile(profile) != NULL;
}

static bool uid_len_ok(enum nfc_tag_type type, size_t len)
{
    switch (type) {
    case TAG_ISO4A:
    case TAG_CLASSIC:
    case TAG_ULTRALIGHT: return len == 4 || len == 7;
    case TAG_FELICA:
    case TAG_ISO15693: return len == 8;
    default: return len == 4; /* 14443-B PUPI, Jewel UID0..3 */
    }
}

/* Lay out the memory of a fresh tag of its type. */
static void format(struct nfc_tag *t)
{
    switch (t->type) {
    case TAG_ISO4A:
        if (t->blocks)
            classic_format(t); /* multi-protocol tag: Classic memory too */
        break;
    case TAG_CLASSIC: classic_format(t); break;
    case TAG_ULTRALIGHT: ultralight_format(t); break;
    case TAG_FELICA: felica_format(t); break;
    case TAG_ISO15693: iso15693_format(t); break;
    case TAG_JEWEL: jewel_format(t); break;
    default: break;
    }
}

static size_t mem_size(const struct profile *p)
{
    switch (p->type) {
    case TAG_CLASSIC:
    case TAG_ISO4A: return p->size * 16u; /* Classic memory (multi-protocol tags too) */
    case TAG_ULTRALIGHT: return p->size * 4u;
    case TAG_FELICA: return (FELICA_RW_BLOCKS + FELICA_RO_BLOCKS) * FELICA_BLOCK;
    case TAG_ISO15693: return ISO15693_BLOCKS * ISO15693_BLOCK;
    case TAG_JEWEL: return JEWEL_MEM;
    default: return 0;
    }
}

struct nfc_tag *nfc_tag_new(const char *profile, const uint8_t *uid, size_t uid_len)
{
    const struct profile *p = find_profile(profile);
    if (!p || (uid_len && !uid_len_ok(p->type, uid_len)))
        return NULL;
    struct nfc_tag *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->mem_len = mem_size(p);
    t->mem = t->mem_len ? calloc(1, t->mem_len) : NULL;
    if (t->mem_len && !t->mem) {
        free(t);
        return NULL;
    }
    t->type = p->type;
    t->protos = p->protos;
    t->def_proto = p->def_proto;
    t->sak = p->sak;
    memcpy(t->atqa, p->atqa, 2);
    t->ul_type = p->ul;
    t->hr0 = p->hr0;
    t->hr1 = p->hr1;
    t->uid_len = uid_len ? (uint8_t)uid_len : p->uid_len;
    memcpy(t->uid, uid_len ? uid : p->uid, t->uid_len);
    if (p->type == TAG_CLASSIC || (p->type == TAG_ISO4A && p->size))
        t->blocks = p->size;
    if (p->type == TAG_ULTRALIGHT)
        t->pages = p->size;
    t->auth_sector = -1;
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < t->uid_len; i++)
        seed = (seed ^ t->uid[i]) * 0x100000001B3ull;
    nfc_tag_seed(t, seed);
    format(t);
    return t;
}

void nfc_tag_free(struct nfc_tag *t)
{
    if (!t)
        return;
    free(t->mem);
    free(t);
}

void nfc_tag_seed(struct nfc_tag *t, uint64_t seed)
{
    t->rng = seed ? seed : 1;
}

static uint8_t next_random(struct nfc_tag *t)
{
    /* xorshift64 */
    t->rng ^= t->rng << 13;
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    return (uint8_t)(t->rng >> 32);
}

uint32_t nfc_tag_protocols(const struct nfc_tag *t)
{
    return t->protos;
}

uint32_t nfc_tag_default_protocol(const struct nfc_tag *t)
{
    return t->def_proto;
}

uint8_t *nfc_tag_memory(struct nfc_tag *t, size_t *len)
{
    *len = t->mem_len;
    return t->mem;
}

/* What the tag tells the reader during activation with `proto`. */
static void describe(const struct nfc_tag *t, uint32_t proto, struct nfc_target *out)
{
    memset(out, 0, sizeof(*out));
    out->proto = proto;
    out->protos = t->protos;
    memcpy(out->uid, t->uid, t->uid_len);
    out->uid_len = t->uid_len;
    memcpy(out->atqa, t->atqa, 2);
    out->sak = t->sak;
    out->ul_type = t->ul_type;
    if (proto == NFC_PROTO_ISO_DEP_A) {
        const uint8_t *h = t->blocks ? ats_hist_jcop : ats_hist_iso4a;
        size_t n = t->blocks ? sizeof(ats_hist_jcop) : sizeof(ats_hist_iso4a);
        memcpy(out->hist, h, n);
        out->hist_len = (uint8_t)n;
    } else if (proto == NFC_PROTO_ISO_DEP_B) {
        memcpy(out->atqb_app, atqb_app, sizeof(atqb_app));
        memcpy(out->atqb_proto, atqb_proto, sizeof(atqb_proto));
    } else if (proto == NFC_PROTO_FELICA) {
        memcpy(out->pmm, t->pmm, sizeof(out->pmm));
        out->sys_code = t->sys_code;
    } else if (proto == NFC_PROTO_JEWEL) {
        out->hr0 = t->hr0;
        out->hr1 = t->hr1;
    } else if (proto == NFC_PROTO_ISO15693) {
        out->dsfid = t->dsfid;
    }
}

bool nfc_tag_activate(struct nfc_tag *t, uint32_t proto, struct nfc_target *out)
{
    if (proto == 0)
        proto = t->def_proto;
    if (!(t->protos & proto) || (proto & (proto - 1)))
        return false;
    t->proto = proto;
    t->halted = false;
    t->auth_sector = -1;
    t->tbuf_valid = false;
    describe(t, proto, out);
    return true;
}

void nfc_tag_halt(struct nfc_tag *t)
{
    t->halted = true;
    t->auth_sector = -1;
    t->tbuf_valid = false;
}

/* ---- the ISO-DEP application ---- */

struct apdu {
    uint8_t cla, ins, p1, p2;
    const uint8_t *data;
    size_t nc;
    size_t ne; /* 0: no Le; Le 00 gives 256 */
    bool has_le;
};

/* Parse a short APDU (cases 1-4). False if malformed. */
static bool parse_apdu(const uint8_t *b, size_t n, struct apdu *a)
{
    memset(a, 0, sizeof(*a));
    if (n < 4)
        return false;
    a->cla = b[0];
    a->ins = b[1];
    a->p1 = b[2];
    a->p2 = b[3];
    if (n == 4)
        return true;
    if (n == 5) {
        a->has_le = true;
        a->ne = b[4] ? b[4] : 256;
        return true;
    }
    size_t lc = b[4];
    if (lc == 0 || n < 5 + lc || n > 6 + lc)
        return false;
    a->data = b + 5;
    a->nc = lc;
    if (n == 6 + lc) {
        a->has_le = true;
        a->ne = b[5 + lc] ? b[5 + lc] : 256;
    }
    return true;
}

static size_t put_sw(uint8_t *rx, size_t n, uint16_t sw)
{
    rx[n] = (uint8_t)(sw >> 8);
    rx[n + 1] = (uint8_t)sw;
    return n + 2;
}

static size_t app_select(const struct apdu *a, uint8_t *rx)
{
    if (a->p1 != 0x04)
        return put_sw(rx, 0, 0x6A86);
    if (a->nc == NFC_SIM_AID_LEN && memcmp(a->data, NFC_SIM_AID, NFC_SIM_AID_LEN) == 0)
        return put_sw(rx, 0, 0x9000);
    return put_sw(rx, 0, 0x6A82);
}

static size_t app_challenge(struct nfc_tag *t, const struct apdu *a, uint8_t *rx)
{
    if (a->nc || !a->has_le)
        return put_sw(rx, 0, 0x6700);
    size_t n = a->ne == 256 ? 8 : a->ne;
    for (size_t i = 0; i < n; i++)
        rx[i] = next_random(t);
    return put_sw(rx, n, 0x9000);
}

/* APDU in, response APDU out (the ISO-DEP layer is the field's business). */
static size_t app_execute(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx)
{
    struct apdu a;
    if (!parse_apdu(tx, n, &a))
        return put_sw(rx, 0, 0x6700);
    if (a.cla == 0x00 && a.ins == 0xA4)
        return app_select(&a, rx);
    if (a.cla == 0x00 && a.ins == 0x84)
        return app_challenge(t, &a, rx);
    if (a.cla == 0x80 && a.ins == 0xEC) {
        if (a.nc)
            memcpy(rx, a.data, a.nc);
        return put_sw(rx, a.nc, 0x9000);
    }
    if (a.cla != 0x00 && a.cla != 0x80)
        return put_sw(rx, 0, 0x6E00);
    return put_sw(rx, 0, 0x6D00);
}

bool nfc_tag_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t cap,
                   size_t *rx_len)
{
    *rx_len = 0;
    if (t->halted || t->proto == 0 || n == 0 || cap < 300)
        return false;
    switch (t->proto) {
    case NFC_PROTO_ISO_DEP_A:
    case NFC_PROTO_ISO_DEP_B:
        if (n > 261)
            return false; /* longer than a short APDU: the tiny application cannot take it */
        *rx_len = app_execute(t, tx, n, rx);
        return true;
    case NFC_PROTO_MIFARE:
        if (t->blocks)
            return classic_frame(t, tx, n, rx, rx_len);
        return ultralight_frame(t, tx, n, rx, rx_len);
    case NFC_PROTO_FELICA: return felica_frame(t, tx, n, rx, rx_len);
    case NFC_PROTO_ISO15693: return iso15693_frame(t, tx, n, rx, rx_len);
    case NFC_PROTO_JEWEL: return jewel_frame(t, tx, n, rx, rx_len);
    default: return false;
    }
}
