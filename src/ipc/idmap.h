/*
 * A small hash map from 64-bit ids to 64-bit values, and the random ids themselves. Both sides of
 * the socket use it: the daemon maps the random card handles it gave a client to the resource
 * manager's handles, the client library maps context and card handles to its own objects.
 *
 * Open addressing with linear probing and backward-shift deletion; id 0 is reserved for "empty".
 * Not thread-safe: the owner locks.
 */
#ifndef SCRM_IPC_IDMAP_H
#define SCRM_IPC_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct idmap_slot {
    uint64_t id;
    union {
        uint64_t u; /* idmap_put / idmap_get */
        void *p;    /* idmap_put_ptr / idmap_get_ptr */
    } v;
};

struct idmap {
    struct idmap_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
};

void idmap_init(struct idmap *m);
void idmap_free(struct idmap *m);
/* Insert or replace. 0, or -1 if out of memory (or id is 0). */
int idmap_put(struct idmap *m, uint64_t id, uint64_t value);
/* Look up; true and *value set if present (value may be NULL). */
bool idmap_get(const struct idmap *m, uint64_t id, uint64_t *value);
/* The same for maps whose values are pointers (a map uses one kind only). */
int idmap_put_ptr(struct idmap *m, uint64_t id, void *ptr);
void *idmap_get_ptr(const struct idmap *m, uint64_t id); /* NULL if absent */
/* Remove; true if it was present. */
bool idmap_del(struct idmap *m, uint64_t id);
/* Visit every entry (the map must not change during the walk). */
void idmap_each(const struct idmap *m, void (*fn)(void *user, uint64_t id, uint64_t value),
                void *user);

/* A random id in 1 .. 2^63-1 (positive as a signed 64-bit LONG), from getrandom(). */
uint64_t idmap_random_id(void);

#endif
