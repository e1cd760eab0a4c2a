/* Device strings of the reader sources (see devstr.h). */
#include "sources/devstr.h"

#include <stdio.h>
#include <string.h>

#include "drivers/ifd/ifd_devstr.h"

/* 32-bit FNV-1a over a string, continuing from h (a NUL separates fields). */
static uint32_t fnv1a(uint32_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        h = (h ^ *p) * 16777619u;
    return (h ^ 0u) * 16777619u;
}

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '+' || c == '@' || c == '-';
}

/* Reduce text to ID characters (spaces and ':' become '_' / '-', others are dropped), at most
 * max characters. */
static size_t reduce(const char *text, char *out, size_t max)
{
    size_t n = 0;
    for (const char *p = text; *p && n < max; p++) {
        char c = *p == ' ' ? '_' : *p == ':' ? '-' : *p;
        if (id_char(c))
            out[n++] = c;
    }
    out[n] = '\0';
    return n;
}

size_t sources_devstr_conf(const struct readerconf_entry *e, char *buf, size_t cap)
{
    char id[IFD_ID_MAX + 1];
    char chan[16];
    snprintf(chan, sizeof chan, "%s%u", e->has_channel ? "c" : "", e->channel_id);
    uint32_t h = 2166136261u;
    h = fnv1a(h, e->friendly_name);
    h = fnv1a(h, e->device_name);
    h = fnv1a(h, e->lib_path);
    h = fnv1a(h, chan);
    size_t n = reduce(e->friendly_name, id, 28);
    if (n == 0)
        n = (size_t)snprintf(id, sizeof id, "conf");
    snprintf(id + n, sizeof id - n, "-%08x", h);
    return ifd_devstr_format(buf, cap, id, e->lib_path, e->device_name, e->has_channel,
                             e->channel_id, e->friendly_name);
}

size_t sources_devstr_usb(const char *sysname, const char *lib, const char *device,
                          const char *name, char *buf, size_t cap)
{
    char id[IFD_ID_MAX + 1];
    char reduced[IFD_ID_MAX - 3];
    size_t n = reduce(sysname, reduced, IFD_ID_MAX - 4);
    if (n == 0 || strlen(sysname) > IFD_ID_MAX - 4)
        snprintf(id, sizeof id, "usb-%08x", fnv1a(2166136261u, sysname));
    else
        snprintf(id, sizeof id, "usb-%s", reduced);
    return ifd_devstr_format(buf, cap, id, lib, device, false, 0, name);
}
