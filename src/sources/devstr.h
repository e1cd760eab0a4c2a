/*
 * Device strings for the readers the sources find: a reader.conf.d entry or a USB device matched
 * to a bundle becomes an "ifd:ID:lib=...,device=...,channel=...,name=..." string of the IFD-handler
 * bridge (docs/ifd.md), which rm_add_reader() takes like any configured reader.
 *
 * The ID (the device's name in libsmc, at most IFD_ID_MAX characters) is stable: the same entry
 * or the same USB interface always gets the same ID, so a reload recognises what did not change.
 *   reader.conf.d  the friendly name reduced to [A-Za-z0-9._+@-] (28 characters at most), "-",
 *                  and 8 hex digits of a hash of every field ("Virtual_PCD-3f2a19c0");
 *   USB            "usb-" and the interface's sysfs name with ':' as '-' ("usb-1-5-1.0"), hashed
 *                  the same way when it would be longer than IFD_ID_MAX.
 */
#ifndef SCRM_SOURCES_DEVSTR_H
#define SCRM_SOURCES_DEVSTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sources/readerconf.h"

/* Longest device string built here (LIBPATH and DEVICENAME up to 1024 bytes each, encoded). */
#define SOURCES_DEVSTR_MAX 8192u

/* The device string of a reader.conf.d entry into buf. Returns its length, or 0 if it does not
 * fit or the entry is not usable (logged by the caller). */
size_t sources_devstr_conf(const struct readerconf_entry *e, char *buf, size_t cap);

/* The device string of a matched USB interface: lib is the bundle's library, device the
 * DEVICENAME ("usb:VVVV/PPPP:libudev:IF:/dev/bus/usb/BBB/DDD"), name the reader name prefix,
 * sysname the interface's sysfs name ("1-5:1.0"). Returns the length, or 0. */
size_t sources_devstr_usb(const char *sysname, const char *lib, const char *device,
                          const char *name, char *buf, size_t cap);

#endif
