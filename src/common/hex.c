/* Hex encoding, decoding and dumps; see hex.h. */
#include "common/hex.h"

#include <ctype.h>

static const char digits[] = "0123456789ABCDEF";

size_t scrm_hex_encode(const uint8_t *data, size_t len, char sep, char *out, size_t outcap)
{
    size_t per = sep ? 3 : 2;
    size_t need = len ? len * per - (sep ? 1 : 0) : 0;
    size_t o = 0;
    if (outcap == 0)
        return need;
    for (size_t i = 0; i < len; i++) {
        size_t room = outcap - 1 - o;
        size_t want = 2 + (i + 1 < len && sep ? 1 : 0);
        if (room < want || (i + 1 < len && room < want + 2)) {
            /* Not enough for this pair plus a possible "..": mark truncation. */
            while (o > 0 && outcap - 1 - o < 2)
                o--;
            if (outcap - 1 - o >= 2) {
                out[o++] = '.';
                out[o++] = '.';
            }
            break;
        }
        out[o++] = digits[data[i] >> 4];
        out[o++] = digits[data[i] & 0xF];
        if (sep && i + 1 < len)
            out[o++] = sep;
    }
    out[o] = '\0';
    return need;
}

static int nibble(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

long scrm_hex_decode(const char *text, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = text; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == ':' || *p == '-' || *p == '\n') {
            if (hi >= 0)
                return -1; /* a separator inside a pair */
            continue;
        }
        int v = nibble((unsigned char)*p);
        if (v < 0)
            return -1;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n >= cap)
            return -1;
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    return hi >= 0 ? -1 : (long)n;
}

void scrm_hex_dump(FILE *f, const char *indent, const uint8_t *data, size_t len)
{
    for (size_t off = 0; off < len || off == 0; off += 16) {
        char line[100];
        size_t o = 0;
        for (size_t i = 0; i < 16; i++) {
            if (off + i < len) {
                line[o++] = digits[data[off + i] >> 4];
                line[o++] = digits[data[off + i] & 0xF];
            } else {
                line[o++] = ' ';
                line[o++] = ' ';
            }
            line[o++] = ' ';
        }
        line[o++] = ' ';
        for (size_t i = 0; i < 16 && off + i < len; i++)
            line[o++] = isprint(data[off + i]) ? (char)data[off + i] : '.';
        line[o] = '\0';
        fprintf(f, "%s%04zx  %s\n", indent ? indent : "", off, len ? line : "(empty)");
        if (len == 0)
            break;
    }
}
