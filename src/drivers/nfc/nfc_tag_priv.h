/*
 * Internals of the simulated tags shared by their source files:
 *
 *   nfc_tag.c         profiles, construction, activation, frame dispatch, the ISO-DEP application
 *   nfc_tag_mifare.c  MIFARE Classic (sectors, trailers, access bits, value blocks) and Ultralight
 *   nfc_tag_misc.c    FeliCa, ISO 15693 and Jewel / Topaz
 */
#ifndef SCRM_NFC_TAG_PRIV_H
#define SCRM_NFC_TAG_PRIV_H

#include "drivers/nfc/nfc_tag.h"

enum nfc_tag_type {
    TAG_ISO4A,
    TAG_ISO4B,
    TAG_CLASSIC,
    TAG_ULTRALIGHT,
    TAG_FELICA,
    TAG_ISO15693,
    TAG_JEWEL,
};

/* Classic authentication keys (bit mask of the keys allowed to do something). */
#define KEY_A  1u
#define KEY_B  2u
#define KEY_AB 3u

/* Sizes of the memories. */
#define FELICA_BLOCK      16u
#define FELICA_RW_BLOCKS  16u /* service 0009 */
#define FELICA_RO_BLOCKS  4u  /* service 000B */
#define FELICA_MAX_SVC    16u
#define FELICA_MAX_BLOCKS 15u
#define ISO15693_BLOCKS   28u
#define ISO15693_BLOCK    4u
#define JEWEL_MEM         120u /* blocks 0..E of 8 bytes */

struct nfc_tag {
    enum nfc_tag_type type;
    uint32_t protos;    /* offered protocols */
    uint32_t def_proto; /* default activation */
    uint32_t proto;     /* activated with (0: not activated) */
    uint8_t uid[NFC_MAX_UID];
    uint8_t uid_len;
    uint8_t atqa[2], sak;
    enum nfc_ul_type ul_type;
    uint8_t *mem; /* see nfc_tag_memory() */
    size_t mem_len;
    bool halted;
    uint64_t rng;

    /* MIFARE Classic */
    unsigned blocks;   /* 20, 64 or 256 */
    int auth_sector;   /* -1: not authenticated */
    unsigned auth_key; /* KEY_A or KEY_B */
    bool tbuf_valid;   /* transfer buffer of INCREMENT / DECREMENT / RESTORE */
    uint32_t tbuf;
    uint8_t tbuf_addr;

    /* MIFARE Ultralight */
    unsigned pages;          /* 16, 48, 20 */
    unsigned readable_pages; /* pages READ may return (ULC: key pages are write only) */

    /* FeliCa */
    uint8_t pmm[8];
    uint16_t sys_code;

    /* ISO 15693 */
    uint32_t locked; /* bit per block */
    uint8_t dsfid;

    /* Jewel / Topaz */
    uint8_t hr0, hr1;
};

/* Copy the characters of text, without its NUL, to dst (memory contents of fresh tags). */
static inline void put_text(uint8_t *dst, const char *text)
{
    while (*text)
        *dst++ = (uint8_t)*text++;
}

/* nfc_tag_mifare.c */
void classic_format(struct nfc_tag *t);
bool classic_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t *rx_len);
void ultralight_format(struct nfc_tag *t);
bool ultralight_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t *rx_len);

/* nfc_tag_misc.c */
void felica_format(struct nfc_tag *t);
bool felica_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t *rx_len);
void iso15693_format(struct nfc_tag *t);
bool iso15693_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t *rx_len);
void jewel_format(struct nfc_tag *t);
bool jewel_frame(struct nfc_tag *t, const uint8_t *tx, size_t n, uint8_t *rx, size_t *rx_len);

#endif
