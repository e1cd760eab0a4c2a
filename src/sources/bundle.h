/*
 * Info.plist bundles of IFD-handler drivers (the USB drivers pcscd loads), read with expat:
 * <driver-dir>/<name>.bundle/Contents/Info.plist names the library (CFBundleExecutable, found in
 * Contents/Linux/) and the readers it serves as three parallel arrays ifdVendorID, ifdProductID
 * (hex strings) and ifdFriendlyName. A bundle whose CFBundleName is CCIDCLASSDRIVER is a class
 * driver: a device listed by another bundle too goes to the other one first (as under pcscd).
 */
#ifndef SCRM_SOURCES_BUNDLE_H
#define SCRM_SOURCES_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUNDLE_DEFAULT_DIR "/usr/lib/pcsc/drivers"
#define BUNDLE_PLIST_MAX   (8u << 20) /* larger Info.plist files are refused */

struct bundle_id {
    uint16_t vid, pid;
    char *name; /* ifdFriendlyName */
};

struct bundle {
    char *plist;       /* path of the Info.plist */
    char *lib;         /* absolute path of the library */
    bool class_driver; /* CFBundleName is CCIDCLASSDRIVER */
    struct bundle_id *ids;
    size_t n_ids;
};

struct bundles {
    struct bundle *v;
    size_t n;
};

/*
 * Read one Info.plist; lib_dir is where CFBundleExecutable lives (Contents/Linux). Appends one
 * bundle. Returns 0, or -1 with a reason in err (not well-formed XML, no CFBundleExecutable,
 * arrays of different lengths, an ID that is not a 16-bit hex number, too large).
 */
int bundles_load_plist(struct bundles *b, const char *plist, const char *lib_dir, char *err,
                       size_t err_cap);

/* Read every <name>.bundle of a driver directory (bad bundles are logged and skipped). Returns
 * the number of bundles read; a missing directory gives 0. */
int bundles_load_dir(struct bundles *b, const char *driver_dir);

/* The bundles serving vid:pid: *primary the preferred one (a non-class driver when there is
 * one), *fallback the class driver to try when the primary fails (NULL if none or the same);
 * *name the friendly name of the primary's entry. false if no bundle lists the device. */
bool bundles_match(const struct bundles *b, uint16_t vid, uint16_t pid,
                   const struct bundle **primary, const struct bundle **fallback,
                   const char **name);

void bundles_free(struct bundles *b);

#endif
