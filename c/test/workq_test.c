/* workq.c (L1): jobs of one queue run one at a time, in order, on libuv's
 * pool; different queues run side by side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "workq.h"

#define NJOBS 32

typedef struct {
  mw_workq_job job;
  int index;
  pthread_t ran_on, done_on;
} test_job;

static atomic_int inside;  /* jobs of the queue running now */
static atomic_int overlap; /* times two ran at once */
static int started[NJOBS], nstarted;
static int finished[NJOBS], nfinished;

static void pause_briefly(void) {
  struct timespec ts = {0, 200000}; /* 0.2 ms: lets an overlap show */
  nanosleep(&ts, NULL);
}

static void job_work(mw_workq_job *job) {
  test_job *t = (test_job *)job;
  if (atomic_fetch_add(&inside, 1) != 0)
    atomic_fetch_add(&overlap, 1);
  t->ran_on = pthread_self();
  started[nstarted++] = t->index; /* safe: never two at once */
  pause_briefly();
  atomic_fetch_sub(&inside, 1);
}

static void job_done(mw_workq_job *job) {
  test_job *t = (test_job *)job;
  t->done_on = pthread_self();
  finished[nfinished++] = t->index;
}

static void test_one_at_a_time_in_order(void **state) {
  (void)state;
  uv_loop_t uv;
  uv_loop_init(&uv);
  mw_workq q;
  workq_init(&q, &uv);
  assert_true(workq_idle(&q));
  test_job jobs[NJOBS];
  nstarted = nfinished = 0;
  for (int i = 0; i < NJOBS; i++) {
    jobs[i].index = i;
    workq_push(&q, &jobs[i].job, job_work, job_done);
  }
  assert_false(workq_idle(&q));
  uv_run(&uv, UV_RUN_DEFAULT); /* the queued jobs keep it running */
  assert_true(workq_idle(&q));
  assert_int_equal(atomic_load(&overlap), 0);
  assert_int_equal(nstarted, NJOBS);
  assert_int_equal(nfinished, NJOBS);
  for (int i = 0; i < NJOBS; i++) {
    assert_int_equal(started[i], i);
    assert_int_equal(finished[i], i);
    assert_false(pthread_equal(jobs[i].ran_on, pthread_self()));
    assert_true(pthread_equal(jobs[i].done_on, pthread_self()));
  }
  assert_int_equal(uv_loop_close(&uv), 0);
}

/* A done that pushes the next job, and one that frees its queue. */
typedef struct {
  mw_workq q;
  test_job job;
  int rounds;
} chain;

static void noop_work(mw_workq_job *job) {
  (void)job;
}

static void chain_done(mw_workq_job *job) {
  chain *c = (chain *)((char *)job - offsetof(chain, job));
  if (--c->rounds > 0) {
    workq_push(&c->q, &c->job.job, noop_work, chain_done);
    return;
  }
  assert_true(workq_idle(&c->q));
  test_free(c);
}

static void test_done_pushes_and_frees(void **state) {
  (void)state;
  uv_loop_t uv;
  uv_loop_init(&uv);
  chain *c = test_malloc(sizeof *c);
  workq_init(&c->q, &uv);
  c->rounds = 5;
  workq_push(&c->q, &c->job.job, noop_work, chain_done);
  uv_run(&uv, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&uv), 0);
}

/* Job a of one queue waits for job b of another: it ends only if they run
 * side by side (libuv's pool has 4 threads). */
static atomic_int b_ran;
static atomic_int a_saw_b;

static void wait_for_b(mw_workq_job *job) {
  (void)job;
  for (int i = 0; i < 25000 && !atomic_load(&b_ran); i++)
    pause_briefly(); /* at most 5 s */
  atomic_store(&a_saw_b, atomic_load(&b_ran));
}

static void mark_b(mw_workq_job *job) {
  (void)job;
  atomic_store(&b_ran, 1);
}

static void nothing_done(mw_workq_job *job) {
  (void)job;
}

static void test_queues_run_side_by_side(void **state) {
  (void)state;
  uv_loop_t uv;
  uv_loop_init(&uv);
  mw_workq qa, qb;
  workq_init(&qa, &uv);
  workq_init(&qb, &uv);
  mw_workq_job a, b;
  workq_push(&qa, &a, wait_for_b, nothing_done);
  workq_push(&qb, &b, mark_b, nothing_done);
  uv_run(&uv, UV_RUN_DEFAULT);
  assert_int_equal(atomic_load(&a_saw_b), 1);
  assert_int_equal(uv_loop_close(&uv), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_at_a_time_in_order),
      cmocka_unit_test(test_done_pushes_and_frees),
      cmocka_unit_test(test_queues_run_side_by_side),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
