/*
 * The simulated reader driver ("sim", src/drivers/sim; left out by -Dsimulators=false): the
 * default reader of scrm, used by every test and by `make demo`. It holds byte-level simulated
 * cards that speak T=0 and T=1.
 *
 * Device string:  sim:<address>[:option=value,...]
 *   vendor=<s>        SCARD_ATTR_VENDOR_NAME        (default "SimVendor")
 *   ifd=<s>           SCARD_ATTR_VENDOR_IFD_TYPE    (default "SimReader")
 *   unit=<n>          SCARD_ATTR_DEVICE_UNIT        (default: the address if numeric, else 0)
 *   swallows=0|1, ejects=0|1, confiscates=0|1       mechanical characteristics (default 0)
 *   protocols=t0+t1   reader protocols: t0, t1, raw joined by '+'   (default t0+t1)
 *   clk=<kHz>, maxclk=<kHz>, rate=<bps>, maxrate=<bps>              (defaults 3580, 3580, 9600,
 * 9600*) ifsd=<n>          max IFSD (default 254) card=<profile>    card inserted at start: a
 * profile name (see simcard.h) or "none" (default)
 *
 * Control through vendor IOCTLs (RDF_IOCTL_VENDOR), so tests, the resource manager and, through
 * SCardControl, applications and the CLI drive it with the public API. Insertion and removal go
 * through the real event path (smc_card_inserted / smc_card_removed).
 */
#ifndef SMC_SIM_H
#define SMC_SIM_H

#include "smc/defs.h"

/* Input: card profile name (bytes, no NUL needed); empty = the reader's configured/default card.
 * STATUS_DEVICE_BUSY if a card is already in; STATUS_INVALID_PARAMETER for an unknown profile. */
#define SIM_IOCTL_INSERT   SMC_CTL_CODE(2048 + 1)
/* No input. STATUS_NO_MEDIA if no card. */
#define SIM_IOCTL_REMOVE   SMC_CTL_CODE(2048 + 2)
/* Input: u32 fault (little-endian), u32 parameter. See enum sim_fault. */
#define SIM_IOCTL_FAULT    SMC_CTL_CODE(2048 + 3)
/* Output: u32 state of the simulated card slot, u32 insertions so far, u32 removals so far. */
#define SIM_IOCTL_INFO     SMC_CTL_CODE(2048 + 4)
/* Output: the card profile names SIM_IOCTL_INSERT accepts, each NUL-terminated. */
#define SIM_IOCTL_PROFILES SMC_CTL_CODE(2048 + 5)

enum sim_fault {
    SIM_FAULT_NONE = 0,            /* clear every fault */
    SIM_FAULT_MUTE = 1,            /* the card stops answering (IO_TIMEOUT) */
    SIM_FAULT_REMOVE_AFTER = 2,    /* the card is pulled after `param` more bytes sent to it */
    SIM_FAULT_READER_LOST = 3,     /* the reader stops answering: state UNKNOWN */
    SIM_FAULT_READER_BACK = 4,     /* the reader answers again: state re-detected */
    SIM_FAULT_CARD = 5,            /* card-level fault: param = enum simcard_fault | count << 8 */
    SIM_FAULT_REMOVE_ON_RESET = 6, /* the card is pulled during the next reset */
    SIM_FAULT_HANG = 7,            /* the next `param` POWER or TRANSMIT requests never return
                                      (their slot pends) until cancelled, one after the other;
                                      then the reader works */
};

#endif
