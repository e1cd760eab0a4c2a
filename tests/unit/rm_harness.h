/*
 * Test harness for the resource manager tests (test_rm.c, test_rm_share.c): an smc context with
 * an rm whose IOCTL trace is captured line by line, helpers that drive simulated readers from the
 * outside (insert, remove, faults) through their own smc handles, bounded waits on trace lines
 * and on watch notifications, and "tdrv", a tiny test driver whose behaviour is chosen by device
 * options:
 *
 *   tdrv:<n>[:opt,...]   vendor "TestVendor", ifd "TestReader", unit n
 *     powered      the first reset after each insertion returns an ATR with an invalid TS (→
 * POWERED) failtrack    the card_tracking slot fails with STATUS_IO_DEVICE_ERROR noname       empty
 * vendor name (the reader cannot be named) Vendor IOCTLs: TDRV_INSERT (u32 state, default PRESENT),
 * TDRV_REMOVE. No swallow slot.
 *
 * Captured trace lines are the rm's "<IOCTL> [<arg>] -> <STATUS>" with " = <STATE>" appended
 * for GET_STATE, and "done " prepended for the completion of a pending request.
 */
#ifndef SCRM_TESTS_RM_HARNESS_H
#define SCRM_TESTS_RM_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rm/rm.h"
#include "smc/driver.h"
#include "smc/sim.h"
#include "smc/smc.h"

#define TDRV_INSERT SMC_CTL_CODE(2048 + 100)
#define TDRV_REMOVE SMC_CTL_CODE(2048 + 101)

#define RMT_WAIT_MS 5000 /* bound of every wait */

extern const struct smc_driver_ops tdrv_ops;

struct rmt_trace {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char **lines;
    size_t n, cap;
    bool only; /* capture only the lines of thread `only_thread` */
    pthread_t only_thread;
};

struct rmt_counter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t calls;
    uint32_t last;
};

struct rmt {
    struct smc_ctx *ctx;
    struct rm *rm;
    struct rmt_trace tr;
    struct smc_handle *ext[4]; /* the test's own handles on devices ("outside hands") */
    char ext_dev[4][32];
};

/* New context (tdrv registered) and rm with cfg (NULL: defaults with power_down_ms 50). */
struct rmt *rmt_new(const struct rm_config *cfg);
void rmt_free(struct rmt *t);
/* rm_config with test defaults: power-down 50 ms, retry 10 ms. The power-down timeout never runs
 * on the clock in these tests (rm_power_down_manual): rmt_power_down makes it elapse. */
void rmt_config(struct rm_config *cfg);
/* The power-down timeout of `reader` elapses now, or as soon as it is armed (the monitor may not
 * have armed it yet after an insertion). */
void rmt_power_down(struct rmt *t, const char *reader);

/* Send a vendor IOCTL to a device through the test's own handle. Returns the smc status. */
uint32_t rmt_ext(struct rmt *t, const char *device, uint32_t code, const void *in, size_t len);
uint32_t rmt_insert(struct rmt *t, const char *device, const char *profile);
uint32_t rmt_remove(struct rmt *t, const char *device);
uint32_t rmt_fault(struct rmt *t, const char *device, uint32_t fault, uint32_t param);

/* Trace: wait (bounded) until at least n lines are captured, compare them with want exactly (a
 * diff is printed on mismatch) and clear the capture. */
void rmt_expect(struct rmt *t, const char *const *want, size_t n, const char *file, int line);
#define RMT_EXPECT(t, ...)                                                            \
    do {                                                                              \
        static const char *const want_[] = {__VA_ARGS__};                             \
        rmt_expect((t), want_, sizeof(want_) / sizeof(want_[0]), __FILE__, __LINE__); \
    } while (0)
/* Wait (bounded) until `line` has been captured. */
bool rmt_wait_line(struct rmt *t, const char *line);
/* Capture only the IOCTLs sent by the calling thread (on), or every IOCTL again (off). */
void rmt_trace_only_me(struct rmt *t, bool on);
/* The capture callback installed by rmt_new (user = &t->tr), for tests that chain their own. */
void rmt_trace_cb(void *user, const struct rm_trace_entry *e);
/* Drop what was captured so far. */
void rmt_clear(struct rmt *t);
/* Number of lines captured so far. */
size_t rmt_lines(struct rmt *t);

/* Watch counter: callback for rm_watch that counts calls. */
void rmt_counter_init(struct rmt_counter *c);
void rmt_counter_fini(struct rmt_counter *c);
void rmt_counter_cb(void *user, const char *name, uint32_t counter);
/* Wait (bounded) until at least n calls were counted. */
bool rmt_counter_wait(struct rmt_counter *c, uint32_t n);

/* The reader's snapshot (asserts it exists). */
struct rm_reader_info rmt_info(struct rmt *t, const char *name);

/* Wait (bounded) until the predicate on the reader's snapshot holds (re-checked on each watch
 * notification of that reader). */
bool rmt_wait_info(struct rmt *t, const char *name, bool (*pred)(const struct rm_reader_info *));

#endif
