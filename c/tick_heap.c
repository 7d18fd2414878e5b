/* L0: the dispatcher's min-heap of ticks. */
#include <stdlib.h>

#include "tick_heap.h"

static int tick_before(const mw_tick *a, const mw_tick *b) {
  return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

int tick_heap_reserve(mw_tick_heap *h, int cap) {
  if (cap <= h->cap)
    return 1;
  mw_tick *ticks = realloc(h->ticks, (size_t)cap * sizeof *ticks);
  if (!ticks)
    return 0;
  h->ticks = ticks;
  h->cap = cap;
  return 1;
}

/* Puts t at i (a hole) or above it, as far up as it goes. */
static void sift_up(mw_tick_heap *h, int i, mw_tick t) {
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (!tick_before(&t, &h->ticks[parent]))
      break;
    h->ticks[i] = h->ticks[parent];
    i = parent;
  }
  h->ticks[i] = t;
}

void tick_heap_push(mw_tick_heap *h, uint64_t due_ms, void *item) {
  mw_tick t = {due_ms, h->seq++, item};
  sift_up(h, h->n++, t);
}

/* Puts t at i (a hole) or below it, as far down as it goes. */
static void sift_down(mw_tick_heap *h, int i, mw_tick last) {
  for (;;) {
    int child = 2 * i + 1;
    if (child >= h->n)
      break;
    if (child + 1 < h->n && tick_before(&h->ticks[child + 1], &h->ticks[child]))
      child++;
    if (!tick_before(&h->ticks[child], &last))
      break;
    h->ticks[i] = h->ticks[child];
    i = child;
  }
  h->ticks[i] = last;
}

void *tick_heap_pop(mw_tick_heap *h) {
  void *top = h->ticks[0].item;
  mw_tick last = h->ticks[--h->n];
  if (h->n > 0)
    sift_down(h, 0, last);
  return top;
}

int tick_heap_remove(mw_tick_heap *h, const void *item) {
  int i = 0;
  while (i < h->n && h->ticks[i].item != item)
    i++;
  if (i == h->n)
    return 0;
  mw_tick last = h->ticks[--h->n];
  if (i == h->n)
    return 1;
  /* the last tick fills the hole: it may belong above it or below it */
  if (i > 0 && tick_before(&last, &h->ticks[(i - 1) / 2]))
    sift_up(h, i, last);
  else
    sift_down(h, i, last);
  return 1;
}

void tick_heap_free(mw_tick_heap *h) {
  free(h->ticks);
  h->ticks = NULL;
  h->n = h->cap = 0;
}
