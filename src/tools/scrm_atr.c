/*
 * `scrm atr HEX...`: decode an ATR and name the card from pcsc-tools' smartcard_list.txt, offline.
 *
 * The ATR is parsed by libsmc's own parser (smc_atr_parse: conventions, TCK, protocols, Fi/Di,
 * T=0 and T=1 parameters, historical bytes); this file only walks the interface-byte chain again
 * to print each byte with its meaning, and the historical bytes (category indicator, compact-TLV
 * objects, status indicator).
 *
 * smartcard_list.txt (SCRM_SMARTCARD_LIST, else /usr/share/pcsc/smartcard_list.txt) holds ATR
 * patterns (hex bytes, '.' for any digit, regular-expression brackets) each followed by
 * tab-indented description lines. A pattern matches when the whole ATR, written as upper-case
 * bytes separated by spaces, matches it as an extended regular expression. Patterns are
 * compiled on first use only when their literal prefix (before the first wildcard) matches.
 *
 * `scrm atr --brief` reads one ATR per line on stdin and prints one line each:
 * ATR|status|protocols|TA1|historical bytes|TCK|first description (for the tests).
 */
#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "smc/protocol.h"
#include "tools/scrm_atr.h"

#define DEFAULT_LIST "/usr/share/pcsc/smartcard_list.txt"

/* ---- smartcard_list.txt -----------------------------------------------------------------------
 */

struct list_entry {
    char *pattern;  /* upper case */
    size_t literal; /* length of the prefix without regex characters */
    char *desc;     /* description lines joined with '\n' */
    regex_t re;
    int re_state; /* 0 not compiled, 1 compiled, -1 failed */
};

static struct {
    struct list_entry *e;
    size_t n;
    bool loaded;
    bool missing;
} list;

static const char *list_path(void)
{
    const char *p = getenv("SCRM_SMARTCARD_LIST");
    return p && *p ? p : DEFAULT_LIST;
}

static int append_desc(struct list_entry *e, const char *line)
{
    size_t old = e->desc ? strlen(e->desc) : 0, add = strlen(line);
    char *d = realloc(e->desc, old + add + 2);
    if (!d)
        return -1;
    if (old)
        d[old++] = '\n';
    memcpy(d + old, line, add + 1);
    e->desc = d;
    return 0;
}

static void load_list(void)
{
    FILE *f;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;

    if (list.loaded)
        return;
    list.loaded = true;
    f = fopen(list_path(), "re");
    if (!f) {
        list.missing = true;
        return;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!len || line[0] == '#')
            continue;
        if (line[0] == '\t' || line[0] == ' ') {
            if (list.n)
                (void)append_desc(&list.e[list.n - 1], line + strspn(line, "\t "));
            continue;
        }
        struct list_entry *grown = realloc(list.e, (list.n + 1) * sizeof *grown);
        if (!grown)
            break;
        list.e = grown;
        struct list_entry *e = &list.e[list.n];
        memset(e, 0, sizeof *e);
        if (!(e->pattern = strdup(line)))
            break;
        for (char *p = e->pattern; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        e->literal = strcspn(e->pattern, ".[]()*+?|\\^$");
        list.n++;
    }
    free(line);
    fclose(f);
}

/* The entry of the list matching the ATR text ("3B 8F ..."), from index *from on; NULL at end. */
static const struct list_entry *match_from(const char *text, size_t *from)
{
    size_t tlen = strlen(text);
    for (size_t i = *from; i < list.n; i++) {
        struct list_entry *e = &list.e[i];
        if (e->literal > tlen || strncmp(e->pattern, text, e->literal) != 0)
            continue;
        if (e->pattern[e->literal] == '\0') {
            if (e->literal != tlen)
                continue;
        } else {
            if (e->re_state == 0) {
                size_t n = strlen(e->pattern) + 3;
                char *anchored = malloc(n);
                e->re_state = -1;
                if (anchored) {
                    snprintf(anchored, n, "^%s$", e->pattern);
                    if (regcomp(&e->re, anchored, REG_EXTENDED | REG_NOSUB) == 0)
                        e->re_state = 1;
                    free(anchored);
                }
            }
            if (e->re_state != 1 || regexec(&e->re, text, 0, NULL, 0) != 0)
                continue;
        }
        *from = i + 1;
        return e;
    }
    *from = list.n;
    return NULL;
}

static void atr_text(const uint8_t *atr, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    scrm_hex_encode(atr, len, ' ', out, cap);
    for (char *p = out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

bool scrm_atr_name(const uint8_t *atr, size_t len, char *name, size_t cap)
{
    char text[3 * 40];
    size_t from = 0;
    const struct list_entry *e;
    load_list();
    atr_text(atr, len, text, sizeof text);
    e = match_from(text, &from);
    if (!e || !e->desc || !cap)
        return false;
    snprintf(name, cap, "%.*s", (int)strcspn(e->desc, "\n"), e->desc);
    return true;
}

/* ---- Decoding --------------------------------------------------------------------------------
 */

static void print_hist(const uint8_t *h, size_t n)
{
    static const char *const tags[16] = {NULL,
                                         "country code",
                                         "issuer identification",
                                         "card service data",
                                         "initial access data",
                                         "card issuer's data",
                                         "pre-issuing data",
                                         "card capabilities",
                                         "status indicator",
                                         NULL,
                                         NULL,
                                         NULL,
                                         NULL,
                                         NULL,
                                         NULL,
                                         "application identifier"};
    char hex[3 * 16];
    size_t end = n;

    scrm_hex_encode(h, n, ' ', hex, sizeof hex);
    printf("historical bytes (%zu): %s  \"", n, n ? hex : "none");
    for (size_t i = 0; i < n; i++)
        putchar(h[i] >= 0x20 && h[i] < 0x7F ? h[i] : '.');
    printf("\"\n");
    if (!n)
        return;
    switch (h[0]) {
    case 0x00:
        printf("  category 00: compact-TLV objects, then a status indicator in the last 3 bytes\n");
        end = n >= 4 ? n - 3 : 1;
        break;
    case 0x80: printf("  category 80: compact-TLV objects (status indicator optional)\n"); break;
    case 0x10:
        printf("  category 10: DIR data reference %s\n", n > 1 ? "follows" : "missing");
        return;
    default: printf("  category %02X: proprietary format\n", h[0]); return;
    }
    for (size_t i = 1; i < end;) {
        unsigned tag = h[i] >> 4, l = h[i] & 0x0F;
        if (i + 1 + l > end) {
            printf("  %02X: object of %u bytes runs past the end (not compact-TLV)\n", h[i], l);
            return;
        }
        scrm_hex_encode(h + i + 1, l, ' ', hex, sizeof hex);
        printf("  tag %X, %u byte(s): %s%s%s\n", tag, l, l ? hex : "", l ? "  " : "",
               tags[tag] ? tags[tag] : "RFU");
        if (tag == 0x8 && l == 3)
            printf("    life cycle %02X, status word %02X%02X\n", h[i + 1], h[i + 2], h[i + 3]);
        i += 1 + l;
    }
    if (h[0] == 0x00 && n >= 4)
        printf("  status indicator: life cycle %02X, status word %02X%02X\n", h[n - 3], h[n - 2],
               h[n - 1]);
}

/* One interface byte: name (TA1...) and meaning, given the protocol T it belongs to. */
static void print_iface(char kind, unsigned i, unsigned v, unsigned t)
{
    printf("T%c%u  %02X  ", kind, i, v);
    if (i == 1 && kind == 'A') {
        printf("Fi=%u (F=%u, fmax %u kHz), Di=%u (D=%u)\n", v >> 4, smc_fi_to_f(v >> 4),
               smc_fi_to_fmax_khz(v >> 4), v & 0xF, smc_di_to_d(v & 0xF));
    } else if ((i == 1 || i == 2) && kind == 'B') {
        printf("programming voltage (deprecated)\n");
    } else if (i == 1 && kind == 'C') {
        printf("extra guard time N=%u%s\n", v,
               v == 255 ? " (minimum: 11 etu T=0, 11 etu T=1)" : "");
    } else if (i == 2 && kind == 'A') {
        printf("specific mode: T=%u, parameters %s, %s\n", v & 0xF,
               v & 0x10 ? "implicit" : "from TA1", v & 0x80 ? "cannot change" : "can change");
    } else if (i == 2 && kind == 'C') {
        printf("T=0 waiting integer WI=%u\n", v);
    } else if (t == 1 && kind == 'A') {
        printf("T=1 IFSC %u\n", v);
    } else if (t == 1 && kind == 'B') {
        printf("T=1 BWI %u, CWI %u\n", v >> 4, v & 0xF);
    } else if (t == 1 && kind == 'C') {
        printf("T=1 error detection %s\n", v & 1 ? "CRC" : "LRC");
    } else if (t == 15 && kind == 'A') {
        static const char *const stop[] = {"not supported", "state L", "state H", "no preference"};
        printf("clock stop %s, class %s%s%s\n", stop[v >> 6], v & 1 ? "A " : "", v & 2 ? "B " : "",
               v & 4 ? "C" : "");
    } else if (t == 15 && kind == 'B') {
        printf("standard or proprietary use of contact C6 (SPU)\n");
    } else {
        printf("T=%u parameter\n", t);
    }
}

/* Walk the interface bytes of the logical ATR; returns the offset of the historical bytes. */
static size_t print_chain(const uint8_t *a, size_t len)
{
    size_t p = 2;
    uint8_t y = a[1] >> 4;
    unsigned t = 0;
    printf("TS   %02X  %s convention\n", a[0], a[0] == 0x3F ? "inverse" : "direct");
    printf("T0   %02X  Y1=%X: %s%s%s%sfollow; K=%u historical bytes\n", a[1], y,
           y & 1 ? "TA1 " : "", y & 2 ? "TB1 " : "", y & 4 ? "TC1 " : "", y & 8 ? "TD1 " : "",
           a[1] & 0xFu);
    for (unsigned i = 1; p < len; i++) {
        for (unsigned b = 0; b < 3 && p < len; b++)
            if (y & (1u << b))
                print_iface("ABC"[b], i, a[p++], t);
        if (!(y & 8) || p >= len)
            break;
        uint8_t td = a[p++];
        y = td >> 4;
        t = td & 0xF;
        printf("TD%u  %02X  protocol T=%u; Y%u=%X: %s%s%s%sfollow\n", i, td, t, i + 1, y,
               y & 1 ? "TA " : "", y & 2 ? "TB " : "", y & 4 ? "TC " : "", y & 8 ? "TD " : "");
    }
    return p;
}

static int decode(const char *arg)
{
    uint8_t raw[64];
    struct smc_atr atr;
    char why[160] = "", text[3 * 64], name[256];
    long n = scrm_hex_decode(arg, raw, sizeof raw);

    if (n <= 0) {
        fprintf(stderr, "scrm: '%s' is not an ATR in hex\n", arg);
        return SCRM_EXIT_USAGE;
    }
    atr_text(raw, (size_t)n, text, sizeof text);
    printf("ATR: %s\n", text);
    memset(&atr, 0, sizeof atr);
    smc_status st = smc_atr_parse(raw, (size_t)n, &atr, why, sizeof why);
    if (st != STATUS_SUCCESS)
        printf("libsmc: %s\n", why);
    if (atr.len >= 2) {
        print_chain(atr.raw, atr.len);
        print_hist(atr.hist, atr.hist_len);
        if (atr.tck_present)
            printf("TCK  %02X  %s\n", atr.raw[atr.len - 1], atr.tck_ok ? "correct" : "WRONG");
        else
            printf("TCK  none (not required: only T=0 offered)\n");
        bool t0 = atr.protocols & SCARD_PROTOCOL_T0, t1 = atr.protocols & SCARD_PROTOCOL_T1;
        printf("protocols: %s, default T=%u\n",
               t0 && t1 ? "T=0 and T=1"
               : t0     ? "T=0"
               : t1     ? "T=1"
                        : "neither T=0 nor T=1",
               atr.first_protocol);
        unsigned f = smc_fi_to_f(atr.fi), d = smc_di_to_d(atr.di);
        if (f && d)
            printf("speed: Fi=%u Di=%u: %u clocks per bit; %lu bps at 3.58 MHz, %lu bps at fmax "
                   "%u kHz%s\n",
                   atr.fi, atr.di, f / d, 3580000ul * d / f,
                   (unsigned long)smc_fi_to_fmax_khz(atr.fi) * 1000ul * d / f,
                   smc_fi_to_fmax_khz(atr.fi), atr.specific_mode ? " (specific mode)" : "");
        if (atr.protocols & SCARD_PROTOCOL_T1)
            printf("T=1: IFSC %u, BWI %u, CWI %u, %s\n", atr.ifsc, atr.bwi, atr.cwi,
                   atr.edc & 1 ? "CRC" : "LRC");
        if (atr.protocols & SCARD_PROTOCOL_T0)
            printf("T=0: WI %u\n", atr.wi);
    }
    load_list();
    if (list.missing) {
        printf("card: %s not found (Debian package pcsc-tools); no name lookup\n", list_path());
        return st == STATUS_SUCCESS ? SCRM_EXIT_OK : SCRM_EXIT_FAIL;
    }
    size_t from = 0;
    const struct list_entry *e;
    unsigned found = 0;
    while ((e = match_from(text, &from))) {
        printf("card (%s):\n", e->pattern);
        const char *d = e->desc ? e->desc : "";
        while (*d) {
            size_t l = strcspn(d, "\n");
            printf("  %.*s\n", (int)l, d);
            d += l + (d[l] == '\n');
        }
        found++;
    }
    if (!found)
        printf("card: not in %s\n", list_path());
    (void)name;
    return st == STATUS_SUCCESS ? SCRM_EXIT_OK : SCRM_EXIT_FAIL;
}

/* --brief: one line per ATR read from stdin. */
static int brief(void)
{
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) >= 0) {
        uint8_t raw[64];
        struct smc_atr atr;
        char why[160] = "", text[3 * 64], hist[3 * 16] = "", name[256] = "";
        line[strcspn(line, "\r\n")] = '\0';
        long n = scrm_hex_decode(line, raw, sizeof raw);
        if (n <= 0)
            continue;
        atr_text(raw, (size_t)n, text, sizeof text);
        memset(&atr, 0, sizeof atr);
        smc_status st = smc_atr_parse(raw, (size_t)n, &atr, why, sizeof why);
        scrm_hex_encode(atr.hist, atr.hist_len, ' ', hist, sizeof hist);
        (void)scrm_atr_name(raw, (size_t)n, name, sizeof name);
        printf("%s|%s|%s%s|%02X|%s|%s|%s\n", text, st == STATUS_SUCCESS ? "ok" : "error",
               atr.protocols & SCARD_PROTOCOL_T0 ? "0" : "",
               atr.protocols & SCARD_PROTOCOL_T1 ? "1" : "", atr.fi << 4 | atr.di, hist,
               !atr.tck_present ? "absent"
               : atr.tck_ok     ? "ok"
                                : "bad",
               name);
    }
    free(line);
    return SCRM_EXIT_OK;
}

int scrm_cmd_atr(int argc, char **argv)
{
    int rc = SCRM_EXIT_OK;
    if (argc == 2 && strcmp(argv[1], "--brief") == 0)
        return brief();
    if (argc < 2) {
        fprintf(stderr, "usage: scrm atr HEX...   (e.g. scrm atr '3B 8F 80 01 80 4F 0C ...')\n"
                        "       scrm atr --brief  (one ATR per line on stdin)\n");
        return SCRM_EXIT_USAGE;
    }
    /* One ATR given as several arguments (unquoted bytes) or several ATRs: join when every
     * argument is a single byte. */
    bool bytes = true;
    for (int i = 1; i < argc; i++)
        bytes = bytes && strlen(argv[i]) == 2;
    if (bytes && argc > 2) {
        char joined[3 * 64] = "";
        size_t len = 0;
        for (int i = 1; i < argc && len + 4 < sizeof joined; i++)
            len += (size_t)snprintf(joined + len, sizeof joined - len, "%s ", argv[i]);
        return decode(joined);
    }
    for (int i = 1; i < argc; i++) {
        if (i > 1)
            putchar('\n');
        int r = decode(argv[i]);
        if (r != SCRM_EXIT_OK)
            rc = r;
    }
    return rc;
}
