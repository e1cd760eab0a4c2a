/*
 * scrmd's reader sources at run time: the configured readers (the `reader =` lines and
 * reader.conf.d), kept in step with the configuration on SIGHUP, and USB devices matched against
 * the driver bundles, added and removed on hot-plug (usb.h).
 *
 * One thread (started by sources_start) sleeps in poll() on three descriptors and never wakes
 * on a timer: the SIGHUP signalfd (main.c blocks SIGHUP in every thread; nothing runs in a
 * signal handler), the USB monitor, and an eventfd that sources_free() writes to stop it.
 *
 * Configured readers are tracked by their whole device string: on a reload the strings that
 * are no longer wanted leave first (rm_remove_reader), then the new ones start (rm_add_reader),
 * so a reader whose options changed is restarted and an unchanged one keeps its connections.
 * Only readers that started are tracked: a reload retries the ones that failed. Readers added
 * with `scrm reader add` and USB readers are not configured readers; a reload leaves them alone.
 */
#ifndef SCRM_SOURCES_SOURCES_H
#define SCRM_SOURCES_SOURCES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rm;
struct sources;
struct usb_source;

/* A growable list of strings. */
struct strlist {
    char **v;
    size_t n;
};
/* Append a copy; 0 or -1 (out of memory). */
int strlist_add(struct strlist *l, const char *s);
bool strlist_has(const struct strlist *l, const char *s);
void strlist_free(struct strlist *l);

/*
 * The configured readers: the device strings `readers` (in order), then one "ifd:" string per
 * usable entry of reader.conf.d (`reader_conf_dir`, NULL or "" for none; bad entries are logged
 * with file:line and skipped). Appends to out. 0, or -1 if out of memory.
 */
int sources_configured(char *const *readers, size_t n_readers, const char *reader_conf_dir,
                       struct strlist *out);

/* Where readers go: rm_add_reader / rm_remove_reader for scrmd; a recorder in the tests. Both
 * return a PC/SC result code. */
struct sources_sink {
    uint32_t (*add)(void *user, const char *device);
    uint32_t (*remove)(void *user, const char *device);
    void *user;
};

/* The sources of one rm (which must outlive them). NULL if out of memory. */
struct sources *sources_new(struct rm *rm);
/* The same with another sink. */
struct sources *sources_new_sink(const struct sources_sink *sink);

/* Use USB: read the bundles of driver_dir, then (once started) enumerate `usb` and follow its
 * hot-plug events. usb is taken over (freed here when there are no bundles). Returns the number
 * of bundles read (0: USB stays off, logged). */
int sources_set_usb(struct sources *s, struct usb_source *usb, const char *driver_dir);

/* The device string of every running USB reader, for tests and logs (copied into out). */
int sources_usb_devices(struct sources *s, struct strlist *out);

/* Make the configured readers the given list (see above). Returns how many of them are running
 * afterwards. Called at start-up and on every reload; not thread-safe against itself (the
 * sources thread is the only caller once it runs). */
size_t sources_apply(struct sources *s, const struct strlist *configured);

/* Re-read the configuration and call sources_apply(); runs on the sources thread on SIGHUP. */
typedef void (*sources_reload_fn)(void *user, struct sources *s);

/*
 * Start the thread: the USB devices present are matched and added first (before this returns),
 * then the thread waits; reload_fd (a signalfd for SIGHUP, or -1) calls reload(user, s) each
 * time it is readable (the signal is read here). 0, or -1 if the thread cannot start.
 */
int sources_start(struct sources *s, int reload_fd, sources_reload_fn reload, void *user);

/* Stop the thread (if started), free everything. The readers stay in the rm. NULL allowed. */
void sources_free(struct sources *s);

#endif
