/*
 * USB devices for the reader sources, behind a small interface so that everything above it
 * (matching, naming, hot-plug handling) is tested without USB: usb_udev.c implements it with
 * libudev (enumeration of subsystem "usb" at start-up, then a netlink monitor filtered to
 * usb_interface devices), the tests with a scripted source.
 *
 * The unit is a USB interface, as pcscd's libudev back end sees it: its sysfs name identifies
 * it in add and remove events; vendor, product and device node come from its parent usb_device.
 */
#ifndef SCRM_SOURCES_USB_H
#define SCRM_SOURCES_USB_H

#include <stdbool.h>
#include <stdint.h>

struct usb_iface {
    char sysname[64];   /* "1-5:1.0": the key of add and remove events */
    uint16_t vid, pid;  /* idVendor, idProduct of the device */
    int ifnum;          /* bInterfaceNumber (0 when unknown) */
    int ifclass;        /* bInterfaceClass, -1 when unknown */
    char devnode[64];   /* "/dev/bus/usb/001/005" */
    char serial[128];   /* the device's serial string, "" if none */
    char ifstring[128]; /* the interface's string, "" if none */
};

enum usb_action { USB_ADD, USB_REMOVE };

struct usb_source;
typedef void (*usb_iface_fn)(void *user, const struct usb_iface *iface);

struct usb_source_ops {
    /* Report every interface present now. 0, or -1 (logged). */
    int (*enumerate)(struct usb_source *src, usb_iface_fn fn, void *user);
    /* A descriptor that is readable while an event is pending, or -1 when there are none. */
    int (*fd)(struct usb_source *src);
    /* Take one pending event: 1 (action and iface filled; for USB_REMOVE only sysname is
     * guaranteed), 0 if none is pending, -1 on error (logged). */
    int (*receive)(struct usb_source *src, enum usb_action *action, struct usb_iface *iface);
    void (*free)(struct usb_source *src);
};

struct usb_source {
    const struct usb_source_ops *ops;
};

/* The libudev source (usb_udev.c): NULL if udev is not available (logged). */
struct usb_source *usb_udev_new(void);

#endif
