/*
 * libFuzzer target for scrmd's configuration file parser (src/daemon/config.c): arbitrary file
 * text through scrmd_config_load, then the same bytes cut at the first '=' (or in half) through
 * scrmd_config_set as one key and value, the way the command line reaches it. The parser must
 * answer every input with success or a message, never crash or leak; after a success the values
 * it stored must hold their documented ranges.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void load_file(const uint8_t *data, size_t size)
{
    struct scrmd_config cfg;
    char path[64], err[256];
    int fd = memfd_create("scrmd.conf", MFD_CLOEXEC);

    if (fd < 0 || scrmd_config_defaults(&cfg) < 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    if (write(fd, data, size) == (ssize_t)size) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        err[0] = '\0';
        if (scrmd_config_load(&cfg, path, err, sizeof err) == 0) {
            for (size_t i = 0; i < cfg.n_readers; i++)
                scrm_assert(cfg.readers[i] != NULL);
            scrm_assert((cfg.socket_mode & ~07777u) == 0);
        } else {
            scrm_assert(err[0] != '\0'); /* a refusal always says why */
        }
    }
    close(fd);
    scrmd_config_free(&cfg);
}

static void set_one(const uint8_t *data, size_t size)
{
    struct scrmd_config cfg;
    char err[256];
    char *text = malloc(size + 1), *eq;

    if (!text)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    eq = strchr(text, '=');
    if (!eq)
        eq = text + strlen(text) / 2;
    if (scrmd_config_defaults(&cfg) == 0) {
        char *value = *eq ? eq + 1 : eq;
        *eq = '\0';
        err[0] = '\0';
        if (scrmd_config_set(&cfg, text, value, err, sizeof err) < 0)
            scrm_assert(err[0] != '\0');
        scrmd_config_free(&cfg);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    load_file(data, size);
    set_one(data, size);
    return 0;
}
