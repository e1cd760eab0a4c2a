/*
 * The device string of the IFD-handler bridge (docs/ifd.md):
 *
 *     ifd:ID:lib=LIBPATH[,device=DEVICENAME][,channel=CHANNELID][,name=FRIENDLYNAME]
 *            [,poll=MS][,watchdog=MS]
 *
 * ID names the device in libsmc ("ifd:ID"): 1..IFD_ID_MAX characters of [A-Za-z0-9._+@-]. The
 * bridge itself adds the extra slots of a multi-slot reader as "ifd:ID/N" (N = 1..); a producer
 * never writes the "/N" form. Values are the reader.conf.d fields as pcscd reads them, except that
 * '%', ',' and any byte outside printable ASCII are percent-encoded (%XX); ':' may appear as it is.
 * ifd_devstr_format() builds such a string; ifd_devstr_parse() reads the options part.
 */
#ifndef SCRM_DRIVERS_IFD_DEVSTR_H
#define SCRM_DRIVERS_IFD_DEVSTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IFD_ID_MAX           40u /* so "ifd:ID/NN" fits the 64-byte device names of the rm */
#define IFD_NAME_MAX         121u /* FRIENDLYNAME + " 00 00" + NUL = 128, as pcscd's MAX_READERNAME */
#define IFD_VALUE_MAX        1024u /* LIBPATH, DEVICENAME after decoding */
/* Presence poll period (ms) for handlers without a polling thread of their own. */
#define IFD_POLL_DEFAULT     200u
#define IFD_POLL_MIN         10u
#define IFD_POLL_MAX         10000u
#define IFD_WATCHDOG_DEFAULT 90000u /* a handler call running longer is reported (ms) */

struct ifd_devspec {
    char lib[IFD_VALUE_MAX];    /* LIBPATH (absolute) */
    char device[IFD_VALUE_MAX]; /* DEVICENAME ("" = none: IFDHCreateChannel(channel)) */
    char name[IFD_NAME_MAX];    /* FRIENDLYNAME ("" = the ID) */
    uint32_t channel;           /* CHANNELID (0 when absent) */
    bool has_channel;
    uint32_t poll_ms;     /* presence poll period without a handler polling thread */
    uint32_t watchdog_ms; /* a call not back by then is cancelled; 0 = off (caller's thread) */
};

/* Is `id` a valid device ID (the address part)? */
bool ifd_id_valid(const char *id);

/* Parse the options part (after "ifd:ID:") into *spec, with the defaults for what is absent.
 * Returns false for an unknown key, a repeated key, a bad value or a missing lib=, and writes a
 * one-line reason to err. */
bool ifd_devstr_parse(const char *options, struct ifd_devspec *spec, char *err, size_t err_cap);

/* Build "ifd:ID:lib=...,device=...,channel=...,name=..." into buf (values encoded). device and
 * name may be NULL or ""; has_channel says whether channel is written. Returns the length, or 0 if
 * buf is too small or an argument is invalid (ID, missing lib). */
size_t ifd_devstr_format(char *buf, size_t cap, const char *id, const char *lib, const char *device,
                         bool has_channel, uint32_t channel, const char *name);

#endif
