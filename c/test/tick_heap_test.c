/* The dispatcher's heap of ticks (L0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

#include "tick_heap.h"

static void test_empty(void **state) {
  (void)state;
  mw_tick_heap h = {0};
  assert_null(tick_heap_top(&h));
  assert_true(tick_heap_reserve(&h, 4));
  assert_null(tick_heap_top(&h));
  tick_heap_free(&h);
}

/* Pops come out by due time whatever the order of the pushes. */
static void test_order(void **state) {
  (void)state;
  enum { N = 5000 };
  static int items[N];
  mw_tick_heap h = {0};
  assert_true(tick_heap_reserve(&h, N));
  srand(42);
  for (int i = 0; i < N; i++) {
    items[i] = rand() % 100000;
    tick_heap_push(&h, (uint64_t)items[i], &items[i]);
  }
  int last = -1;
  for (int i = 0; i < N; i++) {
    assert_non_null(tick_heap_top(&h));
    int due = (int)tick_heap_top(&h)->due_ms;
    int *item = tick_heap_pop(&h);
    assert_int_equal(*item, due);
    assert_true(due >= last);
    last = due;
  }
  assert_null(tick_heap_top(&h));
  tick_heap_free(&h);
}

/* Ticks due at the same millisecond keep the order they were pushed in, so
 * monitors with the same interval run in the order they were added. */
static void test_ties_in_push_order(void **state) {
  (void)state;
  enum { N = 300 };
  static int items[N];
  mw_tick_heap h = {0};
  assert_true(tick_heap_reserve(&h, N));
  for (int i = 0; i < N; i++) {
    items[i] = i;
    tick_heap_push(&h, (uint64_t)(i % 3 == 0 ? 10 : 20), &items[i]);
  }
  int prev = -1;
  for (int i = 0; i < N / 3; i++) { /* the ticks due at 10 first, in order */
    int *item = tick_heap_pop(&h);
    assert_int_equal(*item % 3, 0);
    assert_true(*item > prev);
    prev = *item;
  }
  prev = -1;
  while (tick_heap_top(&h)) {
    int *item = tick_heap_pop(&h);
    assert_int_not_equal(*item % 3, 0);
    assert_true(*item > prev);
    prev = *item;
  }
  tick_heap_free(&h);
}

/* Interleaved pops and pushes, as the dispatcher does each tick. */
static void test_interleaved(void **state) {
  (void)state;
  static int items[64];
  mw_tick_heap h = {0};
  assert_true(tick_heap_reserve(&h, 64));
  for (int i = 0; i < 64; i++)
    tick_heap_push(&h, (uint64_t)(i * 7 % 64), &items[i]);
  uint64_t now = 0;
  for (int round = 0; round < 1000; round++) {
    const mw_tick *top = tick_heap_top(&h);
    assert_true(top->due_ms >= now);
    now = top->due_ms;
    void *item = tick_heap_pop(&h);
    tick_heap_push(&h, now + 64, item);
  }
  assert_int_equal(h.n, 64);
  tick_heap_free(&h);
}

/* Removing ticks anywhere (a reload) keeps the rest in order. */
static void test_remove(void **state) {
  (void)state;
  static int items[200];
  mw_tick_heap h = {0};
  assert_true(tick_heap_reserve(&h, 200));
  for (int i = 0; i < 200; i++) {
    items[i] = (i * 37) % 200; /* due times in a scrambled order */
    tick_heap_push(&h, (uint64_t)items[i], &items[i]);
  }
  for (int i = 0; i < 200; i += 3)
    assert_true(tick_heap_remove(&h, &items[i]));
  assert_false(tick_heap_remove(&h, &items[0])); /* gone already */
  assert_int_equal(h.n, 200 - 67);
  int prev = -1, seen = 0;
  while (tick_heap_top(&h)) {
    int *item = tick_heap_pop(&h);
    assert_int_not_equal((item - items) % 3, 0);
    assert_true(*item > prev);
    prev = *item;
    seen++;
  }
  assert_int_equal(seen, 200 - 67);
  tick_heap_push(&h, 5, &items[1]);
  assert_true(tick_heap_remove(&h, &items[1])); /* the only tick */
  assert_null(tick_heap_top(&h));
  tick_heap_free(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_order),
      cmocka_unit_test(test_ties_in_push_order),
      cmocka_unit_test(test_interleaved),
      cmocka_unit_test(test_remove),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
