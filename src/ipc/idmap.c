/*
 * Id map (see idmap.h). The table doubles when it is 3/4 full; deletion shifts the following
 * entries of the probe run back so lookups never need tombstones.
 */
#include "ipc/idmap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void idmap_init(struct idmap *m)
{
    memset(m, 0, sizeof *m);
}

void idmap_free(struct idmap *m)
{
    free(m->slots);
    idmap_init(m);
}

static size_t slot_of(uint64_t id, size_t cap)
{
    /* Ids are random already; mix anyway so sequential ids spread too. */
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

static int grow(struct idmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct idmap_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        size_t j;
        if (m->slots[i].id == 0)
            continue;
        j = slot_of(m->slots[i].id, ncap);
        while (ns[j].id != 0)
            j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

/* Slot for id, inserting it if absent; NULL if out of memory or id is 0. */
static struct idmap_slot *slot_for(struct idmap *m, uint64_t id)
{
    size_t i;
    if (id == 0)
        return NULL;
    if ((m->count + 1) * 4 > m->cap * 3 && grow(m) < 0)
        return NULL;
    i = slot_of(id, m->cap);
    while (m->slots[i].id != 0 && m->slots[i].id != id)
        i = (i + 1) & (m->cap - 1);
    if (m->slots[i].id == 0)
        m->count++;
    m->slots[i].id = id;
    return &m->slots[i];
}

int idmap_put(struct idmap *m, uint64_t id, uint64_t value)
{
    struct idmap_slot *s = slot_for(m, id);
    if (!s)
        return -1;
    s->v.u = value;
    return 0;
}

int idmap_put_ptr(struct idmap *m, uint64_t id, void *ptr)
{
    struct idmap_slot *s = slot_for(m, id);
    if (!s)
        return -1;
    s->v.p = ptr;
    return 0;
}

/* Index of id, or SIZE_MAX. */
static size_t find(const struct idmap *m, uint64_t id)
{
    size_t i;
    if (id == 0 || m->cap == 0)
        return SIZE_MAX;
    i = slot_of(id, m->cap);
    while (m->slots[i].id != 0) {
        if (m->slots[i].id == id)
            return i;
        i = (i + 1) & (m->cap - 1);
    }
    return SIZE_MAX;
}

bool idmap_get(const struct idmap *m, uint64_t id, uint64_t *value)
{
    size_t i = find(m, id);
    if (i == SIZE_MAX)
        return false;
    if (value)
        *value = m->slots[i].v.u;
    return true;
}

void *idmap_get_ptr(const struct idmap *m, uint64_t id)
{
    size_t i = find(m, id);
    return i == SIZE_MAX ? NULL : m->slots[i].v.p;
}

bool idmap_del(struct idmap *m, uint64_t id)
{
    size_t i = find(m, id), j;
    if (i == SIZE_MAX)
        return false;
    m->slots[i].id = 0;
    m->count--;
    /* Backward shift: move later members of the run into the hole when their home allows. */
    j = i;
    for (;;) {
        size_t home;
        j = (j + 1) & (m->cap - 1);
        if (m->slots[j].id == 0)
            break;
        home = slot_of(m->slots[j].id, m->cap);
        /* The entry at j may fill the hole at i unless its home lies cyclically in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->slots[i] = m->slots[j];
            m->slots[j].id = 0;
            i = j;
        }
    }
    return true;
}

void idmap_each(const struct idmap *m, void (*fn)(void *user, uint64_t id, uint64_t value),
                void *user)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].id != 0)
            fn(user, m->slots[i].id, m->slots[i].v.u);
}

uint64_t idmap_random_id(void)
{
    uint64_t v = 0;
    for (int tries = 0; v == 0; tries++) {
        if (tries < 8) {
            if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
                v = 0; /* interrupted: try again */
        } else {
            /* getrandom() unusable: a time-seeded mix is still unpredictable enough to keep
             * handles from colliding, which is all a fallback has to do. */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            v = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
            v = (uint64_t)slot_of(v, (size_t)1 << 62) | (v << 62);
        }
        v &= 0x7FFFFFFFFFFFFFFFULL;
    }
    return v;
}
