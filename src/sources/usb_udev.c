/*
 * The libudev USB source (usb.h): enumeration of subsystem "usb" (the interfaces among it), and a
 * netlink monitor filtered to usb/usb_interface whose descriptor the sources thread waits on.
 * For each interface the parent usb_device gives idVendor, idProduct, the device node and the
 * serial string; the interface gives bInterfaceNumber, bInterfaceClass and its string.
 */
#include <libudev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sources/usb.h"

struct udev_source {
    struct usb_source base;
    struct udev *udev;
    struct udev_monitor *mon;
};

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static int hexattr(struct udev_device *d, const char *name, int dflt)
{
    const char *v = udev_device_get_sysattr_value(d, name);
    if (!v)
        return dflt;
    char *end = NULL;
    long n = strtol(v, &end, 16);
    return end != v && n >= 0 && n <= 0xFFFF ? (int)n : dflt;
}

/* Fill iface from an interface device. false if it is not a usable USB interface. */
static bool describe(struct udev_device *dev, struct usb_iface *iface)
{
    memset(iface, 0, sizeof *iface);
    const char *devtype = udev_device_get_devtype(dev);
    if (!devtype || strcmp(devtype, "usb_interface") != 0)
        return false;
    copy(iface->sysname, sizeof iface->sysname, udev_device_get_sysname(dev));
    struct udev_device *parent =
        udev_device_get_parent_with_subsystem_devtype(dev, "usb", "usb_device");
    if (!parent || !udev_device_get_devnode(parent))
        return false;
    int vid = hexattr(parent, "idVendor", -1), pid = hexattr(parent, "idProduct", -1);
    if (vid < 0 || pid < 0)
        return false;
    iface->vid = (uint16_t)vid;
    iface->pid = (uint16_t)pid;
    iface->ifnum = hexattr(dev, "bInterfaceNumber", 0);
    iface->ifclass = hexattr(dev, "bInterfaceClass", -1);
    copy(iface->devnode, sizeof iface->devnode, udev_device_get_devnode(parent));
    copy(iface->serial, sizeof iface->serial, udev_device_get_sysattr_value(parent, "serial"));
    copy(iface->ifstring, sizeof iface->ifstring, udev_device_get_sysattr_value(dev, "interface"));
    return true;
}

static int udev_enumerate_ifaces(struct usb_source *src, usb_iface_fn fn, void *user)
{
    struct udev_source *s = (struct udev_source *)src;
    struct udev_enumerate *en = udev_enumerate_new(s->udev);
    if (!en || udev_enumerate_add_match_subsystem(en, "usb") < 0 ||
        udev_enumerate_scan_devices(en) < 0) {
        log_error(core, "USB: cannot enumerate the usb subsystem");
        udev_enumerate_unref(en);
        return -1;
    }
    struct udev_list_entry *e;
    udev_list_entry_foreach(e, udev_enumerate_get_list_entry(en))
    {
        struct udev_device *dev =
            udev_device_new_from_syspath(s->udev, udev_list_entry_get_name(e));
        struct usb_iface iface;
        if (dev && describe(dev, &iface))
            fn(user, &iface);
        udev_device_unref(dev);
    }
    udev_enumerate_unref(en);
    return 0;
}

static int udev_fd(struct usb_source *src)
{
    struct udev_source *s = (struct udev_source *)src;
    return s->mon ? udev_monitor_get_fd(s->mon) : -1;
}

static int udev_receive(struct usb_source *src, enum usb_action *action, struct usb_iface *iface)
{
    struct udev_source *s = (struct udev_source *)src;
    struct udev_device *dev = s->mon ? udev_monitor_receive_device(s->mon) : NULL;
    if (!dev)
        return 0;
    const char *act = udev_device_get_action(dev);
    int rc = 0;
    if (act && strcmp(act, "remove") == 0) {
        memset(iface, 0, sizeof *iface);
        copy(iface->sysname, sizeof iface->sysname, udev_device_get_sysname(dev));
        *action = USB_REMOVE;
        rc = 1;
    } else if (act && strcmp(act, "add") == 0 && describe(dev, iface)) {
        *action = USB_ADD;
        rc = 1;
    }
    udev_device_unref(dev);
    return rc;
}

static void udev_source_free(struct usb_source *src)
{
    struct udev_source *s = (struct udev_source *)src;
    udev_monitor_unref(s->mon);
    udev_unref(s->udev);
    free(s);
}

static const struct usb_source_ops udev_ops = {
    .enumerate = udev_enumerate_ifaces,
    .fd = udev_fd,
    .receive = udev_receive,
    .free = udev_source_free,
};

struct usb_source *usb_udev_new(void)
{
    struct udev_source *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base.ops = &udev_ops;
    s->udev = udev_new();
    if (!s->udev) {
        log_error(core, "USB: udev is not available; no USB readers");
        free(s);
        return NULL;
    }
    s->mon = udev_monitor_new_from_netlink(s->udev, "udev");
    if (!s->mon ||
        udev_monitor_filter_add_match_subsystem_devtype(s->mon, "usb", "usb_interface") < 0 ||
        udev_monitor_enable_receiving(s->mon) < 0) {
        log_warn(core, "USB: no udev monitor (hot-plug off); readers present at start-up only");
        udev_monitor_unref(s->mon);
        s->mon = NULL;
    }
    return &s->base;
}
