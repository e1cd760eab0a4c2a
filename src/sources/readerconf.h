/*
 * reader.conf.d: readers that are not found by USB matching (serial readers, virtual readers),
 * declared in the format pcsc-lite reads from /etc/reader.conf.d, so the files Debian packages
 * install there (libccid's libccidtwin template, vsmartcard's vpcd) work unchanged.
 *
 * Format (one `KEY value` pair per line, `#` starts a comment to the end of the line):
 *
 *     FRIENDLYNAME "Virtual PCD"                              reader name prefix
 *     DEVICENAME   /dev/null:0x8C7B                           passed to the driver
 *     LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so the IFD handler library
 *     CHANNELID    0x8C7B                                     legacy channel number
 *
 * A value is a bare token of letters, digits and `\ / - . _ @ : =`, or a string in double or
 * single quotes (the quotes are removed). An entry needs FRIENDLYNAME, LIBPATH and DEVICENAME or
 * CHANNELID (or both); a file may hold several entries. FRIENDLYNAME starts an entry; it ends
 * at the next FRIENDLYNAME, once all four keys are set, or at the end of the file. A mistake
 * (unknown key, a key twice in one entry, missing or extra value, bad character, unterminated
 * quote, a number that is not one, a missing library or device file, an incomplete entry)
 * refuses that entry only, with the file, the line and the reason; the other entries still count.
 */
#ifndef SCRM_SOURCES_READERCONF_H
#define SCRM_SOURCES_READERCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define READERCONF_DEFAULT_DIR "/etc/reader.conf.d"
#define READERCONF_NAME_MAX    120u       /* FRIENDLYNAME; " 00 00" and the NUL fit in 128 */
#define READERCONF_FILE_MAX    (1u << 20) /* larger files are refused as a whole */

struct readerconf_entry {
    char *friendly_name;
    char *device_name; /* NULL when the entry has none */
    char *lib_path;
    uint32_t channel_id; /* 0 when the entry has none */
    bool has_channel;
    char *file; /* where it was declared, for messages */
    unsigned line;
};

struct readerconf {
    struct readerconf_entry *v;
    size_t n;
    unsigned refused; /* entries (or whole files) refused, each reported once */
};

/* Called once per refused entry or unreadable file: "file:line: why" (line 0: the whole file). */
typedef void (*readerconf_error_fn)(void *user, const char *file, unsigned line, const char *why);

/* Parser flags. */
#define READERCONF_NO_FS_CHECKS 0x1u /* do not stat LIBPATH / DEVICENAME (tests, fuzzing) */

/*
 * Parse one file's text (len bytes, NUL bytes are an error) into conf, appending entries.
 * `file` names it in messages. err may be NULL (errors are then logged in category core).
 * Returns the number of entries appended, or -1 if out of memory.
 */
int readerconf_parse(struct readerconf *conf, const char *text, size_t len, const char *file,
                     unsigned flags, readerconf_error_fn err, void *user);

/*
 * Read every regular file of a directory whose name does not start with '.', in name order (or
 * `path` itself when it is a regular file). A missing directory is not an error (no entries).
 * Returns the number of entries appended, or -1 if the directory cannot be read or memory runs
 * out (reported through err).
 */
int readerconf_load(struct readerconf *conf, const char *path, unsigned flags,
                    readerconf_error_fn err, void *user);

void readerconf_free(struct readerconf *conf);

#endif
