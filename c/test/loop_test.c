/* The loop (L1): hooks, closers, per-module state and the fd registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"

static int order[16];
static int norder;

static void record(mw_loop *loop, void *data) {
  (void)loop;
  order[norder++] = (int)(intptr_t)data;
}

static mw_hook hooks[4];

static void record_and_remove(mw_loop *loop, void *data) {
  record(loop, data);
  loop_hook_remove(&hooks[0]); /* itself */
}

static void keep_alive_once(uv_idle_t *idle) {
  uv_idle_stop(idle);
}

/* One turn of the loop, kept alive by an idle handle for that turn. */
static void one_turn(mw_loop *loop) {
  uv_idle_t idle;
  uv_idle_init(&loop->uv, &idle);
  uv_idle_start(&idle, keep_alive_once);
  uv_run(&loop->uv, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&idle, NULL);
  uv_run(&loop->uv, UV_RUN_NOWAIT);
}

static void test_hooks_each_turn_in_order(void **state) {
  (void)state;
  lua_State *L = luaL_newstate();
  mw_loop *loop = loop_get(L);
  norder = 0;
  loop_hook_add(loop, &hooks[0], record_and_remove, (void *)1);
  loop_hook_add(loop, &hooks[1], record, (void *)2);
  uint64_t turn = loop->turn;
  one_turn(loop);
  assert_true(loop->turn > turn);
  assert_true(norder >= 2);
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 2);
  norder = 0;
  loop_hooks_run(loop); /* the first removed itself */
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], 2);
  loop_hook_remove(&hooks[1]);
  norder = 0;
  loop_hooks_run(loop);
  assert_int_equal(norder, 0);
  lua_close(L);
}

static void test_closers_last_first(void **state) {
  (void)state;
  lua_State *L = luaL_newstate();
  mw_loop *loop = loop_get(L);
  norder = 0;
  loop_at_close(loop, &hooks[0], record, (void *)1);
  loop_at_close(loop, &hooks[1], record, (void *)2);
  loop_at_close(loop, &hooks[2], record, (void *)3);
  loop_hook_remove(&hooks[1]); /* cancelled */
  assert_int_equal(norder, 0);
  lua_close(L);
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], 3);
  assert_int_equal(order[1], 1);
}

static void test_ext(void **state) {
  (void)state;
  static const char a_key = 'a', b_key = 'b';
  int a = 1, b = 2;
  lua_State *L = luaL_newstate();
  mw_loop *loop = loop_get(L);
  assert_ptr_equal(loop_get(L), loop);
  assert_null(loop_ext(loop, &a_key));
  loop_set_ext(loop, &a_key, &a);
  loop_set_ext(loop, &b_key, &b);
  assert_ptr_equal(loop_ext(loop, &a_key), &a);
  assert_ptr_equal(loop_ext(loop, &b_key), &b);
  loop_set_ext(loop, &a_key, NULL);
  assert_null(loop_ext(loop, &a_key));
  assert_ptr_equal(loop_ext(loop, &b_key), &b);
  lua_close(L);
}

/* An fd user: the registry's mw_fd embedded in its own state. */
typedef struct {
  mw_fd w;
  int events_seen, calls, closed;
} watcher;

static void on_events(mw_fd *w, int status, int events) {
  watcher *x = (watcher *)w;
  assert_int_equal(status, 0);
  x->events_seen |= events;
  x->calls++;
  loop_fd_watch(w, 0);
}

static void on_close(mw_fd *w) {
  ((watcher *)w)->closed++;
}

static const char owner_a = 'A', owner_b = 'B';

static void test_fd_registry(void **state) {
  (void)state;
  int sv[2], sv2[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
  lua_State *L = luaL_newstate();
  mw_loop *loop = loop_get(L);
  watcher a = {0}, again = {0}, b = {0};
  assert_int_equal(loop_fd_open(loop, &a.w, sv[0], &owner_a, on_events, on_close), 0);
  assert_ptr_equal(loop_fd_find(loop, sv[0], &owner_a), &a.w);
  assert_null(loop_fd_find(loop, sv[0], &owner_b)); /* not its fd */
  assert_null(loop_fd_find(loop, sv[1], &owner_a));
  /* one owner per fd */
  assert_int_equal(loop_fd_open(loop, &again.w, sv[0], &owner_b, on_events, on_close), UV_EEXIST);

  assert_int_equal(loop_fd_watch(&a.w, UV_READABLE), 0);
  assert_int_equal(write(sv[1], "x", 1), 1);
  uv_run(&loop->uv, UV_RUN_ONCE);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.events_seen, UV_READABLE);
  assert_int_equal(a.w.events, 0);

  assert_int_equal(loop_fd_open(loop, &b.w, sv2[0], &owner_b, on_events, on_close), 0);
  loop_fd_close_all(loop, &owner_a);
  uv_run(&loop->uv, UV_RUN_NOWAIT);
  assert_int_equal(a.closed, 1);
  assert_int_equal(b.closed, 0);
  assert_null(loop_fd_find(loop, sv[0], &owner_a));
  assert_ptr_equal(loop_fd_find(loop, sv2[0], &owner_b), &b.w);

  /* A number handed out again: the registration left for it is stale. */
  loop_fd_forget(loop, sv2[0]);
  uv_run(&loop->uv, UV_RUN_NOWAIT);
  assert_int_equal(b.closed, 1);
  assert_null(loop_fd_find(loop, sv2[0], &owner_b));
  lua_close(L);
  close(sv[0]);
  close(sv[1]);
  close(sv2[0]);
  close(sv2[1]);
}

static void test_fd_keep_alive(void **state) {
  (void)state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  lua_State *L = luaL_newstate();
  mw_loop *loop = loop_get(L);
  watcher a = {0};
  assert_int_equal(loop_fd_open(loop, &a.w, sv[0], &owner_a, on_events, on_close), 0);
  loop_fd_watch(&a.w, UV_READABLE);
  loop_fd_keep_alive(&a.w, 0);
  /* nothing else keeps the loop running: it returns at once */
  assert_int_equal(uv_run(&loop->uv, UV_RUN_DEFAULT), 0);
  assert_int_equal(a.calls, 0);
  loop_fd_keep_alive(&a.w, 1);
  assert_int_equal(loop_count_handles(loop), 1);
  lua_close(L); /* the loop closes what is still registered */
  assert_int_equal(a.closed, 1);
  close(sv[0]);
  close(sv[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hooks_each_turn_in_order),
      cmocka_unit_test(test_closers_last_first),
      cmocka_unit_test(test_ext),
      cmocka_unit_test(test_fd_registry),
      cmocka_unit_test(test_fd_keep_alive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
