/* L0: a binary min-heap of ticks (due time, item), the dispatcher's
 * schedule. Entries carry their key, so sifting reads only the heap's
 * array; ticks due at the same time come out in the order they went in. */
#ifndef MW_TICK_HEAP_H
#define MW_TICK_HEAP_H

#include <stdint.h>

typedef struct {
  uint64_t due_ms;
  uint64_t seq; /* ties on due_ms go in the order the ticks were pushed */
  void *item;
} mw_tick;

typedef struct {
  mw_tick *ticks;
  int n, cap;
  uint64_t seq;
} mw_tick_heap;

/* Makes room for cap ticks in all; 0 when out of memory (nothing changes). */
int tick_heap_reserve(mw_tick_heap *h, int cap);
/* Pushes a tick; there must be room (tick_heap_reserve). */
void tick_heap_push(mw_tick_heap *h, uint64_t due_ms, void *item);
/* Removes the earliest tick and returns its item; the heap must not be
 * empty. */
void *tick_heap_pop(mw_tick_heap *h);
/* The earliest tick, or NULL when empty. */
static inline const mw_tick *tick_heap_top(const mw_tick_heap *h) {
  return h->n > 0 ? &h->ticks[0] : 0;
}
/* Removes the tick of item, wherever it is in the heap; 0 when item has
 * none. A linear search: for the rare removals (a reload), not per tick. */
int tick_heap_remove(mw_tick_heap *h, const void *item);
void tick_heap_free(mw_tick_heap *h);

#endif
