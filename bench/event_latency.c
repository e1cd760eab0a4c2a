/*
 * Card-event latency of the resource manager: from a simulated insertion or removal (the
 * simulator's vendor IOCTL, which completes the monitor's pending IS_PRESENT / IS_ABSENT) to the
 * moment the reader's snapshot is updated and its watchers are called. That path is: completion
 * callback → pool job → GET_STATE → (insertion: SWALLOW/POWER to read the ATR, GET_STATE) →
 * snapshot → watch callback. Prints p50 / p99 / max in microseconds per scenario.
 *
 *   bench/event_latency [events]     (default 2000 per scenario)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "drivers/registry.h"
#include "rm/rm.h"
#include "smc/sim.h"
#include "smc/smc.h"

struct probe {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t calls;
    uint64_t t_ns;
};

static void on_event(void *user, const char *name, uint32_t counter)
{
    (void)name;
    (void)counter;
    struct probe *p = user;
    uint64_t now = scrm_now_ns();
    pthread_mutex_lock(&p->lock);
    p->calls++;
    p->t_ns = now;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void ignore_event(void *user, const char *name, uint32_t counter)
{
    (void)user;
    (void)name;
    (void)counter;
}

/* Send `code` and return the ns until the next watch call (0 on timeout or failure). */
static uint64_t one_event(struct smc_handle *h, struct probe *p, uint32_t code)
{
    pthread_mutex_lock(&p->lock);
    uint32_t before = p->calls;
    pthread_mutex_unlock(&p->lock);
    uint64_t t0 = scrm_now_ns();
    const char *profile = code == SIM_IOCTL_INSERT ? "t1" : NULL;
    if (smc_ioctl(h, code, profile, profile ? 2 : 0, NULL, 0, NULL) != STATUS_SUCCESS)
        return 0;
    struct timespec dl = scrm_deadline_ms(5000);
    pthread_mutex_lock(&p->lock);
    while (p->calls == before)
        if (pthread_cond_timedwait(&p->cond, &p->lock, &dl) != 0)
            break;
    uint64_t dt = p->calls != before ? p->t_ns - t0 : 0;
    pthread_mutex_unlock(&p->lock);
    return dt;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1000.0;
}

static void row(const char *name, uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    printf("%-44s %9.1f %9.1f %9.1f\n", name, pct_us(v, n, 0.50), pct_us(v, n, 0.99),
           (double)v[n - 1] / 1000.0);
}

struct scenario {
    const char *insert_name, *remove_name;
    bool power_on_insert;
    unsigned extra_readers; /* other readers, each with 4 watches that must not be called */
};

static int run(const struct scenario *s, size_t n)
{
    struct rm_config cfg;
    rm_config_init(&cfg);
    cfg.power_on_insert = s->power_on_insert;
    struct smc_ctx *ctx = smc_ctx_new();
    struct rm *rm = ctx && scrm_drivers_register(ctx) == STATUS_SUCCESS ? rm_new(&cfg, ctx) : NULL;
    struct probe p = {.calls = 0};
    pthread_mutex_init(&p.lock, NULL);
    if (scrm_cond_init_monotonic(&p.cond) != 0)
        return 1;
    struct smc_handle *h = NULL;
    int rc = -1;
    uint64_t *ins = calloc(n, sizeof(*ins)), *rem = calloc(n, sizeof(*rem));
    if (!rm || !ins || !rem || rm_add_reader(rm, "sim:0") != SCARD_S_SUCCESS ||
        smc_open(ctx, "sim:0", &h) != STATUS_SUCCESS)
        goto out;
    for (unsigned i = 0; i < s->extra_readers; i++) {
        char dev[32], name[64];
        snprintf(dev, sizeof(dev), "sim:%u", i + 1);
        snprintf(name, sizeof(name), "SimVendor SimReader %u", i + 1);
        if (rm_add_reader(rm, dev) != SCARD_S_SUCCESS)
            goto out;
        for (int k = 0; k < 4; k++)
            rm_watch(rm, name, ignore_event, NULL);
    }
    rm_watch(rm, "SimVendor SimReader 0", on_event, &p);
    for (size_t i = 0; i < n; i++) {
        ins[i] = one_event(h, &p, SIM_IOCTL_INSERT);
        rem[i] = one_event(h, &p, SIM_IOCTL_REMOVE);
        if (!ins[i] || !rem[i]) {
            fprintf(stderr, "event_latency: event %zu lost\n", i);
            goto out;
        }
    }
    row(s->insert_name, ins, n);
    if (s->remove_name)
        row(s->remove_name, rem, n);
    rc = 0;
out:
    if (h)
        smc_close(h);
    rm_free(rm);
    smc_ctx_free(ctx);
    free(ins);
    free(rem);
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
    if (n == 0)
        n = 1;
    static const struct scenario scenarios[] = {
        {"insertion, ATR read (1 reader)", "removal (1 reader)", true, 0},
        {"insertion, no power-up (1 reader)", NULL, false, 0},
        {"insertion, ATR read (16 readers, 60 watches)", "removal (16 readers, 60 watches)", true,
         15},
    };
    printf("event_latency: simulated card event -> rm snapshot updated and watchers called\n");
    printf("%zu events per scenario, microseconds\n\n", n);
    printf("%-44s %9s %9s %9s\n", "scenario", "p50", "p99", "max");
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        if (run(&scenarios[i], n) < 0)
            return 1;
    return 0;
}
