/*
 * libsmc benchmark: the cost of one IOCTL through the library against the simulated reader with a
 * zero-latency card. Prints one table: GET_STATE, and TRANSMIT for T=0 short APDUs and T=1 APDUs of
 * 5 bytes, 255 bytes and 4 KiB (extended), in ns per operation and operations per second.
 *
 *   bench/smc_bench [iterations]     (default 200000 for GET_STATE, scaled down for big APDUs)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "drivers/registry.h"
#include "smc/sim.h"
#include "smc/smc.h"

static struct smc_handle *open_reader(struct smc_ctx *ctx, const char *dev, const char *name,
                                      const char *profile, uint32_t proto)
{
    struct smc_handle *h;
    if (smc_add_device(ctx, dev) != STATUS_SUCCESS || smc_open(ctx, name, &h) != STATUS_SUCCESS)
        return NULL;
    uint8_t atr[33];
    size_t n;
    uint32_t sel;
    if (smc_ioctl(h, SIM_IOCTL_INSERT, profile, strlen(profile), NULL, 0, NULL) ||
        smc_power(h, SCARD_COLD_RESET, atr, sizeof(atr), &n) || smc_set_protocol(h, proto, &sel) ||
        sel != proto) {
        fprintf(stderr, "smc_bench: cannot set up %s\n", dev);
        return NULL;
    }
    return h;
}

/* SCARD_IO_REQUEST header for the protocol; the APDU follows at buf + 8. */
static void header(uint8_t *buf, uint32_t proto)
{
    memset(buf, 0, 8);
    buf[0] = (uint8_t)proto;
    buf[4] = 8;
}

/* Case 2 "80 EE 00 00 Le" (the card's FILL command returns Le bytes). Returns the input length. */
static size_t build_fill(uint8_t *buf, uint32_t proto, uint8_t le)
{
    header(buf, proto);
    memcpy(buf + 8, "\x80\xEE\x00\x00", 4);
    buf[12] = le;
    return 13;
}

/* Case 4 "80 EC 00 00 Lc data Le" (ECHO), short or extended by the length. */
static size_t build_echo(uint8_t *buf, uint32_t proto, size_t len)
{
    header(buf, proto);
    uint8_t *a = buf + 8;
    size_t o = 4;
    memcpy(a, "\x80\xEC\x00\x00", 4);
    bool ext = len > 255;
    if (ext) {
        a[o++] = 0;
        a[o++] = (uint8_t)(len >> 8);
    }
    a[o++] = (uint8_t)len;
    for (size_t i = 0; i < len; i++)
        a[o++] = (uint8_t)i;
    a[o++] = 0; /* Le: everything */
    if (ext)
        a[o++] = 0;
    return 8 + o;
}

static void row(const char *what, double ns)
{
    printf("| %-34s | %12.0f | %12.0f |\n", what, ns, 1e9 / ns);
}

static double time_state(struct smc_handle *h, long iters)
{
    uint32_t s;
    uint64_t t0 = scrm_now_ns();
    for (long i = 0; i < iters; i++)
        if (smc_get_state(h, &s) != STATUS_SUCCESS)
            abort(); /* the figures would mean nothing */
    return (double)(scrm_now_ns() - t0) / (double)iters;
}

static double time_transmit(struct smc_handle *h, const uint8_t *in, size_t in_len, long iters)
{
    static uint8_t out[70000];
    size_t n;
    uint64_t t0 = scrm_now_ns();
    for (long i = 0; i < iters; i++) {
        if (smc_ioctl(h, IOCTL_SMARTCARD_TRANSMIT, in, in_len, out, sizeof(out), &n) ||
            out[n - 2] != 0x90) {
            fprintf(stderr, "smc_bench: transmit failed\n");
            exit(1);
        }
    }
    return (double)(scrm_now_ns() - t0) / (double)iters;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    if (iters <= 0)
        iters = 200000;
    struct smc_ctx *ctx = smc_ctx_new();
    if (!ctx || scrm_drivers_register(ctx) != STATUS_SUCCESS)
        return 1;
    struct smc_handle *t0 = open_reader(ctx, "sim:0", "sim:0", "t0", SCARD_PROTOCOL_T0);
    struct smc_handle *t1 = open_reader(ctx, "sim:1", "sim:1", "t1", SCARD_PROTOCOL_T1);
    if (!t0 || !t1)
        return 1;
    static uint8_t in[70000];
    printf("libsmc through the simulated reader (zero-latency card), %ld iterations\n\n", iters);
    printf("| %-34s | %12s | %12s |\n", "operation", "ns/op", "ops/s");
    printf("|%s|%s|%s|\n", "------------------------------------", "--------------",
           "--------------");
    row("GET_STATE", time_state(t1, iters));
    size_t n = build_fill(in, SCARD_PROTOCOL_T0, 0x10);
    row("TRANSMIT T=0 case 2 (5-byte APDU)", time_transmit(t0, in, n, iters / 4));
    n = build_echo(in, SCARD_PROTOCOL_T0, 16);
    row("TRANSMIT T=0 case 4 (16 bytes)", time_transmit(t0, in, n, iters / 4));
    n = build_fill(in, SCARD_PROTOCOL_T1, 0x10);
    row("TRANSMIT T=1 case 2 (5-byte APDU)", time_transmit(t1, in, n, iters / 4));
    n = build_echo(in, SCARD_PROTOCOL_T1, 250);
    row("TRANSMIT T=1 255-byte APDU", time_transmit(t1, in, n, iters / 10));
    n = build_echo(in, SCARD_PROTOCOL_T1, 4096);
    row("TRANSMIT T=1 4 KiB extended APDU", time_transmit(t1, in, n, iters / 100));
    smc_close(t0);
    smc_close(t1);
    smc_ctx_free(ctx);
    return 0;
}
