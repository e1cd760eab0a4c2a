/*
 * libFuzzer target for the reader.conf.d parser (src/sources/readerconf.c): arbitrary bytes as
 * the text of one file, parsed without file-system checks. Invariants checked with scrm_assert:
 * every entry kept is complete (FRIENDLYNAME and LIBPATH set, DEVICENAME or CHANNELID), its
 * strings are non-empty, free of control characters and bounded, and its line lies within the
 * input; kept and refused entries never outnumber the lines.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "sources/readerconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(void *user, const char *file, unsigned line, const char *why)
{
    (void)file;
    (void)why;
    unsigned *max_line = user;
    if (line > *max_line)
        *max_line = line;
}

static void check_string(const char *s, size_t max)
{
    scrm_assert(s != NULL && *s != '\0' && strlen(s) <= max);
    for (; *s; s++)
        scrm_assert((unsigned char)*s >= 0x20 && *s != 0x7F);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct readerconf c = {0};
    unsigned max_err_line = 0;
    unsigned lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    int n = readerconf_parse(&c, (const char *)data, size, "fuzz", READERCONF_NO_FS_CHECKS, quiet,
                             &max_err_line);
    scrm_assert(n < 0 || (size_t)n == c.n);
    scrm_assert(max_err_line <= lines);
    scrm_assert(c.n + c.refused <= lines);
    for (size_t i = 0; i < c.n; i++) {
        const struct readerconf_entry *e = &c.v[i];
        check_string(e->friendly_name, READERCONF_NAME_MAX);
        check_string(e->lib_path, 4096);
        scrm_assert(e->lib_path[0] == '/');
        scrm_assert(e->device_name != NULL || e->has_channel);
        if (e->device_name)
            check_string(e->device_name, 4096);
        scrm_assert(e->line >= 1 && e->line <= lines);
    }
    readerconf_free(&c);
    return 0;
}
