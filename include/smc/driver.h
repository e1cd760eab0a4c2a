/*
 * libsmc for reader-driver authors: the driver operations table (the RDF_* slots plus discovery),
 * the reader object (smclib's SMARTCARD_EXTENSION role) and the event path.
 *
 * A driver is a const struct smc_driver_ops. libsmc calls `open` when a device of the driver is
 * created; the driver allocates its context, fills the reader's vendor attributes and capabilities,
 * and reports the initial card state. Afterwards libsmc validates every IOCTL (buffer sizes, reader
 * state, parameters), answers what it can by itself (GET_STATE, GET_LAST_ERROR, GET_PERF_CNTR,
 * standard attributes, already-satisfied card tracking), and calls a slot only for what the
 * hardware must do. Slots of one reader never run concurrently (libsmc holds the reader's operation
 * lock); the card-tracking slot only arms detection and returns STATUS_PENDING.
 *
 * The driver's event path (an interrupt, poll or worker thread) reports insertion and removal with
 * smc_card_inserted() / smc_card_removed(), which update the state and complete the pending
 * IS_PRESENT / IS_ABSENT. They are safe from any thread, including from inside a slot.
 */
#ifndef SMC_DRIVER_H
#define SMC_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smc/defs.h"
#include "smc/protocol.h"

struct smc_reader;
struct smc_ctx;

/* Identification (VENDOR_ATTR). Strings are NUL-terminated here; attributes return them without. */
struct smc_vendor_attr {
    char vendor_name[MAXIMUM_ATTR_STRING_LENGTH + 1]; /* SCARD_ATTR_VENDOR_NAME (required) */
    char ifd_type[MAXIMUM_ATTR_STRING_LENGTH + 1];    /* SCARD_ATTR_VENDOR_IFD_TYPE (required) */
    uint32_t unit;                                    /* SCARD_ATTR_DEVICE_UNIT */
    uint32_t ifd_version;                             /* 0xMMmmbbbb; 0 = not supported */
    char serial[MAXIMUM_ATTR_STRING_LENGTH + 1];      /* "" = not supported */
    /* SCARD_ATTR_DEVICE_FRIENDLY_NAME, the reader's name in the resource manager. "" (the usual
     * case): the attribute is NOT_SUPPORTED and the resource manager names the reader
     * "<vendor_name> <ifd_type> <unit>". A driver that must reproduce another stack's names (the
     * IFD-handler bridge: "FRIENDLYNAME 00 00") sets it during open. */
    char friendly_name[128];
};

/* Reader capabilities (SCARD_READER_CAPABILITIES), maintained by the driver. */
struct smc_reader_caps {
    uint32_t protocols;   /* SCARD_PROTOCOL_T0 | T1 | RAW the reader supports */
    uint32_t reader_type; /* SCARD_READER_TYPE_* */
    uint32_t channel;     /* low word of SCARD_ATTR_CHANNEL_ID */
    uint32_t mech;        /* SCARD_READER_SWALLOWS | EJECTS | CONFISCATES | CONTACTLESS */
    uint32_t clk_default_khz, clk_max_khz;
    uint32_t rate_default, rate_max;
    const uint32_t *clk_list; /* optional lists of selectable values (for PPS) */
    size_t n_clk;
    const uint32_t *rate_list;
    size_t n_rate;
    uint32_t max_ifsd;   /* announced to T=1 cards */
    uint32_t power_mgmt; /* SCARD_ATTR_POWER_MGMT_SUPPORT */
};

/* The request a slot works on (smclib's IoRequest + Major/MinorIoControlCode). */
struct smc_io {
    uint32_t code;     /* IOCTL code */
    uint32_t minor;    /* POWER: power command; SET_PROTOCOL: protocol mask */
    const uint8_t *in; /* caller input (TRANSMIT: 8-byte header + APDU) */
    size_t in_len;
    uint8_t *out; /* caller output; may alias `in` — read all input before writing */
    size_t out_len;
    size_t info; /* bytes written to out (the slot sets it) */
};

struct smc_driver_ops {
    const char *name; /* device-string prefix: "sim" for "sim:0" */

    /* ---- discovery and lifetime ---- */
    /* Optional. Report each device the driver can find by calling add(ctx, "name:address"). */
    void (*enumerate)(struct smc_ctx *ctx, void (*add)(struct smc_ctx *, const char *device));
    /* Mandatory. Create the driver context for device "address" with "options" (may be ""), fill
     * the reader's vendor attributes and capabilities (smc_reader_vendor/_caps) and set the initial
     * state. STATUS_INVALID_PARAMETER for bad options (log why). */
    smc_status (*open)(struct smc_reader *r, const char *address, const char *options);
    /* Mandatory. Stop event threads and free the context. No event may be reported afterwards. */
    void (*close)(struct smc_reader *r);
    /* Optional: a second handle on the device gets STATUS_ACCESS_DENIED when set. */
    bool exclusive;
    /* Optional: the address may itself contain ':' (host:port). The options are then the part
     * after the last ':' that precedes the first '=' ("vpcd:127.0.0.1:35963:timeout=500"), and
     * the address (and the device name) is everything before it. */
    bool address_colons;

    /* ---- RDF slots (NULL optional slot → STATUS_NOT_SUPPORTED, answered by libsmc) ---- */
    /* RDF_CARD_POWER (mandatory). io->minor is the command (a warm reset of an unpowered card
     * arrives as a cold reset). Reset: store the ATR with smc_reader_set_atr() (io->out is not
     * given to the driver); libsmc parses it, sets NEGOTIABLE / SPECIFIC and returns it to the
     * caller. POWER_DOWN: deactivate; libsmc sets SWALLOWED unless the driver set PRESENT. */
    smc_status (*power)(struct smc_reader *r, struct smc_io *io);
    /* RDF_TRANSMIT (mandatory). Usually: return smc_transmit(r, io, &link). */
    smc_status (*transmit)(struct smc_reader *r, struct smc_io *io);
    /* RDF_SET_PROTOCOL (mandatory). Usually: return smc_select_protocol(r, io, &link). */
    smc_status (*set_protocol)(struct smc_reader *r, struct smc_io *io);
    /* RDF_CARD_TRACKING (mandatory). Arm detection for `code` (IS_PRESENT / IS_ABSENT); return
     * STATUS_PENDING and later report the event. */
    smc_status (*card_tracking)(struct smc_reader *r, uint32_t code);
    smc_status (*eject)(struct smc_reader *r);      /* RDF_CARD_EJECT */
    smc_status (*swallow)(struct smc_reader *r);    /* RDF_READER_SWALLOW: state → SWALLOWED */
    smc_status (*confiscate)(struct smc_reader *r); /* RDF_CARD_CONFISCATE */
    /* RDF_IOCTL_VENDOR: vendor IOCTLs (2048..4095), GET_FEATURE_REQUEST, and attribute ids libsmc
     * does not know (io->code = GET_/SET_ATTRIBUTE). */
    smc_status (*ioctl_vendor)(struct smc_reader *r, struct smc_io *io);
    /* RDF_ATR_PARSE: called when libsmc cannot parse the ATR; fill caps yourself or fail. */
    smc_status (*atr_parse)(struct smc_reader *r, struct smc_card_caps *caps);

    /* ---- drivers that implement the IOCTL contract themselves ---- */
    /* Optional. When set, libsmc applies none of its IOCTL rules to this driver (no rule table,
     * buffer minimums, state checks, library-answered requests or attributes): once the device
     * is known to exist and the buffer pointers match their lengths, EVERY IOCTL comes here,
     * under the op lock, and its status and io->info are returned as they are. IS_PRESENT /
     * IS_ABSENT: return STATUS_PENDING to hand the request to libsmc's card tracking (satisfied
     * test, slot, card_tracking slot, event path, cancel, cleanup); any other status is final.
     * The NFC reader (docs/nfc.md) uses it: the NFC class extension does not use smclib. */
    smc_status (*dispatch)(struct smc_reader *r, struct smc_io *io);
    /* Optional: IS_PRESENT and IS_ABSENT each have their own one-request slot (docs/libsmc.md)
     * instead of sharing one; a second request of the same kind gets STATUS_DEVICE_BUSY. */
    bool split_tracking;
    /* Optional: a handle on the device was closed (after its pending requests were cancelled);
     * runs under the op lock. Not called when the device itself is being removed. */
    void (*handle_closed)(struct smc_reader *r);
    /* Optional: true for a vendor IOCTL code that changes the device for every user rather than
     * for the caller's own session (a simulator's card insertion, removal and faults, an NFC
     * simulator's tag entry and radio switch). scrmd lets only privileged clients (root, its own
     * user, the admin_group of scrmd.conf) send such a code through SCardControl. Must not block
     * and must not depend on the reader's state; may be called from any thread. */
    bool (*ioctl_privileged)(uint32_t code);
    /* Optional: the symbolic name of a vendor IOCTL or pcsc-lite control code this driver
     * understands ("SIM_IOCTL_INSERT"), or NULL. Used by the IOCTL trace; must not block and must
     * not depend on the reader's state; may be called from any thread. */
    const char *(*ioctl_vendor_name)(uint32_t code);
    /* Optional: the request parked by a slot that returned STATUS_PENDING was cancelled
     * (smc_cancel, smc_cancel_all, a handle closing); it completes CANCELLED right after this
     * returns. The driver should stop the operation and call smc_complete_pending() (its status
     * is then ignored) so the reader takes requests again. Called with no libsmc lock held. */
    void (*cancel_pending)(struct smc_reader *r);
};

/* Write the names name(0), name(1), ... (until NULL) into io->out, each NUL-terminated, and set
 * io->info; STATUS_BUFFER_TOO_SMALL (io->info = the size needed) if they do not fit. For vendor
 * IOCTLs that list what a driver accepts (simulator profiles). */
SMC_API SMC_MUST_CHECK smc_status smc_put_names(struct smc_io *io, const char *(*name)(size_t i));

/* ---- Reader object accessors for drivers ---------------------------------------------------- */

SMC_API void *smc_reader_priv(const struct smc_reader *r);
SMC_API void smc_reader_set_priv(struct smc_reader *r, void *priv);
/* Writable during open; read-only afterwards. */
SMC_API struct smc_vendor_attr *smc_reader_vendor(struct smc_reader *r);
SMC_API struct smc_reader_caps *smc_reader_caps(struct smc_reader *r);
/* Device name ("sim:0") of this reader. */
SMC_API const char *smc_reader_device(const struct smc_reader *r);

SMC_API uint32_t smc_reader_state(struct smc_reader *r);
/* Set the state (e.g. SWALLOWED after a swallow, PRESENT after power down). Moving to ABSENT clears
 * the card capabilities. Does not complete card tracking. */
SMC_API void smc_reader_set_state(struct smc_reader *r, uint32_t state);
/* Store the ATR a reset returned (raw, as received). Called from the power slot. */
SMC_API void smc_reader_set_atr(struct smc_reader *r, const uint8_t *atr, size_t len);
/* For a reader that runs the card protocol itself (TPDU/APDU-level hardware, the IFD-handler
 * bridge) and implements SET_PROTOCOL without smc_select_protocol(): record the protocol now in
 * force (SCARD_PROTOCOL_T0, T1 or RAW). Called from the set_protocol slot before it returns
 * success; TRANSMIT then accepts that protocol. */
SMC_API void smc_reader_set_protocol(struct smc_reader *r, uint32_t protocol);
/* Snapshot of the card capabilities (under the reader's state lock). */
SMC_API void smc_reader_card_caps(struct smc_reader *r, struct smc_card_caps *out);

/* Called from open only: once this device has been added (and announced), add `device` too, a
 * further slot of the same hardware ("ifd:vpcd/1"). Devices are added in the order asked, right
 * after this one; one that fails to open is logged and skipped. */
SMC_API SMC_MUST_CHECK smc_status smc_reader_add_sibling(struct smc_reader *r, const char *device);

/* The hardware is gone (unplugged, the handler reports no such device): libsmc removes the device
 * from its own thread as smc_remove_device() does (pending requests complete CANCELLED, close is
 * called, SMC_DEVICE_LEFT is announced). Safe from any thread, a slot or the driver's event thread
 * included; calling it again, or for a device already removed, does nothing. */
SMC_API void smc_reader_gone(struct smc_reader *r);

/* ---- The event path (safe from any thread) ---------------------------------------------------
 * The completion callbacks of the tracking requests run on the thread that reports the event, and
 * a caller may post its next request from there, which takes the reader's op lock. So a slot must
 * not wait for the driver's event thread while that thread reports an event; from inside a slot,
 * reporting is always safe (completions are deferred until the slot returns). */

/* A card arrived: state → `state` (PRESENT, or SWALLOWED for a reader that positions cards itself;
 * SPECIFIC for a contactless reader that activates it) and the pending tracking request completes.
 */
SMC_API void smc_card_inserted(struct smc_reader *r, uint32_t state);
/* The card left: state → ABSENT, card capabilities cleared, pending tracking request completes. */
SMC_API void smc_card_removed(struct smc_reader *r);
/* The reader stopped answering: state → UNKNOWN, pending tracking request completes. */
SMC_API void smc_reader_lost(struct smc_reader *r);
/* Complete the pending IS_PRESENT / IS_ABSENT with STATUS_SUCCESS, if there is one (smclib's
 * SmartcardCompleteCardTracking). Returns true if a request was completed. */
SMC_API SMC_MUST_CHECK bool smc_complete_card_tracking(struct smc_reader *r);
/* The device can serve again requests it refused (an NFC radio switched back on): tells the PnP
 * listener (SMC_DEVICE_CHANGED), which re-posts what it gave up. Any thread. */
SMC_API void smc_reader_changed(struct smc_reader *r);
/* Complete a request a non-tracking slot left STATUS_PENDING (library was answering DEVICE_BUSY).
 */
SMC_API void smc_complete_pending(struct smc_reader *r, smc_status status, size_t info);

/* ---- Protocol helpers for the transmit and set_protocol slots ---------------------------------
 */

/* TRANSMIT through the T=0 / T=1 / raw engine selected by SET_PROTOCOL, over `link`. Checks the
 * SCARD_IO_REQUEST header, writes header + response to io->out, and re-checks for removal. */
SMC_API SMC_MUST_CHECK smc_status smc_transmit(struct smc_reader *r, struct smc_io *io,
                                               const struct smc_card_io *link);
/* SET_PROTOCOL: choose the protocol from io->minor (T=1 preferred), run PPS unless DEFAULT or
 * specific mode, start T=1 (S(IFS) unless suppressed), write the chosen protocol to io->out,
 * state → SPECIFIC. A NULL link is a reader that exchanges APDUs with the card itself (a virtual
 * or APDU-level card): the protocol is chosen from the ATR the same way, with no PPS and no
 * S(IFS) exchange. */
SMC_API SMC_MUST_CHECK smc_status smc_select_protocol(struct smc_reader *r, struct smc_io *io,
                                                      const struct smc_card_io *link);

#endif
