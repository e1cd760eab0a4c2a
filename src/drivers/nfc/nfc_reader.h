/*
 * The NFC reader: the smart-card IOCTL contract of an NFC class driver (docs/nfc.md) over
 * a contactless front end (nfc_fe.h). It keeps the reader state (ABSENT, SPECIFIC, SWALLOWED after
 * POWER_DOWN), the radio switch, the activated card (nfc_card.h) and the transmit session, and
 * answers every IOCTL itself, without libsmc's generic checks, the way the NFC class extension
 * does without smclib.
 *
 * It does not know libsmc's reader object: the glue (nfc.c) passes it the IOCTLs and gives it a
 * host whose callbacks mirror its state into libsmc (event path: card arrived / left; plain state
 * changes). IS_PRESENT / IS_ABSENT that are not satisfied at once return STATUS_PENDING: the host
 * parks them (libsmc's card tracking, two slots) until the next arrival or departure.
 *
 * Concurrency: the IOCTL entry points are called one at a time (libsmc's op lock). Front-end
 * events may come from inside those calls or from a front-end thread; they take the reader's
 * state lock only, and call the host without it.
 */
#ifndef SCRM_NFC_READER_H
#define SCRM_NFC_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/nfc/nfc_card.h"
#include "smc/driver.h"

struct nfc_host {
    void *ctx;
    void (*arrived)(void *ctx);                   /* state SPECIFIC; completes card tracking */
    void (*left)(void *ctx);                      /* state ABSENT; completes card tracking */
    void (*set_state)(void *ctx, uint32_t state); /* any other state change */
    void (*available)(void *ctx);   /* the radio is back on: refused requests may be re-posted */
    void (*unavailable)(void *ctx); /* the radio went off: a pending card-tracking request
                                       completes, so its owner re-reads the state (NULL: none) */
};

struct nfc_reader_config {
    char vendor[MAXIMUM_ATTR_STRING_LENGTH + 1]; /* SCARD_ATTR_VENDOR_NAME */
    char ifd[MAXIMUM_ATTR_STRING_LENGTH + 1];    /* SCARD_ATTR_VENDOR_IFD_TYPE */
    uint32_t unit;                               /* SCARD_ATTR_DEVICE_UNIT */
    bool radio;                                  /* radio on at start */
    /* getdata=card: ISO 14443-4 Get Data goes to the card (NFC class extension); default
     * getdata=reader: the driver answers it (PC/SC part 3) */
    bool getdata_card;
};

/* SCARD_ATTR_VENDOR_IFD_VERSION: 0xMMmmbbbb = 1.0, build 1. */
#define NFC_IFD_VERSION 0x01000001u

struct nfc_reader;

/* A reader with state ABSENT and no front end yet. NULL when out of memory. */
struct nfc_reader *nfc_reader_new(const struct nfc_reader_config *cfg, const struct nfc_host *host);
/* The events the front end must report to (pass them to its open). */
struct nfc_fe_events nfc_reader_events(struct nfc_reader *rd);
/* Attach the opened front end (the reader closes it) and start: report ABSENT, switch the radio on
 * if configured, and activate a tag already in the field (then SPECIFIC). */
void nfc_reader_start(struct nfc_reader *rd, const struct nfc_fe_ops *ops, void *fe);
/* Close the front end and free. */
void nfc_reader_free(struct nfc_reader *rd);

/* One IOCTL (any code): the status and io->info / io->out as the NFC reader answers them.
 * STATUS_PENDING only for IS_PRESENT / IS_ABSENT that must wait. */
smc_status nfc_reader_ioctl(struct nfc_reader *rd, struct smc_io *io);

/* The client handle went away: if it transmitted, the card is re-activated (clean session). */
void nfc_reader_client_closed(struct nfc_reader *rd);

/* Whether card tracking may wait now (radio on): STATUS_PENDING, else STATUS_DEVICE_POWERED_OFF. */
smc_status nfc_reader_can_track(struct nfc_reader *rd);

#endif
