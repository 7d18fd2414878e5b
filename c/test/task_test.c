/* Tasks (L2): the ready queue, wait/resume, cancellation, results. Links the
 * loop below it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include "task.h"

static mw_task *waiting;
static int cancels, dones;
static void *cancel_data;

static void on_cancel(void *data) {
  cancels++;
  cancel_data = data;
  waiting = NULL;
}

static void on_done(mw_task *task, void *data) {
  (void)task;
  (void)data;
  dones++;
}

/* wait_here() waits until the test resumes the task, as a core call does. */
static int l_wait_here(lua_State *L) {
  mw_task *task = task_check_current(L, "wait_here");
  waiting = task;
  task_wait(task, on_cancel, &waiting);
  return lua_yield(L, 0);
}

static lua_State *L;

static int setup(void **state) {
  (void)state;
  L = luaL_newstate();
  luaL_openlibs(L);
  lua_newtable(L);
  task_register(L);
  lua_setglobal(L, "core");
  lua_register(L, "wait_here", l_wait_here);
  waiting = NULL;
  cancels = dones = 0;
  cancel_data = NULL;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  lua_close(L);
  return 0;
}

/* Compiles src and spawns it as a task, with on_done set. */
static mw_task *spawn(const char *src) {
  assert_int_equal(luaL_loadstring(L, src), LUA_OK);
  mw_task *task = task_new(L, 0);
  task->on_done = on_done;
  lua_pop(L, 1);
  /* task_new only creates it: what task_spawn queues, the test starts */
  return task;
}

static void run_once(void) {
  mw_loop *loop = loop_get(L);
  uv_run(&loop->uv, UV_RUN_NOWAIT);
}

static void test_ready_queue_in_order(void **state) {
  (void)state;
  assert_int_equal(luaL_dostring(L, "order = {}"), LUA_OK);
  for (int i = 1; i <= 3; i++) {
    char src[64];
    snprintf(src, sizeof src, "order[#order + 1] = %d", i);
    assert_int_equal(luaL_loadstring(L, src), LUA_OK);
    mw_task *task = task_spawn(L, 0, 0);
    assert_int_equal(task->state, MW_TASK_READY);
    lua_pop(L, 1);
  }
  run_once();
  assert_int_equal(luaL_dostring(L, "return table.concat(order, ',')"), LUA_OK);
  assert_string_equal(lua_tostring(L, -1), "1,2,3");
  lua_pop(L, 1);
}

static void test_wait_and_resume(void **state) {
  (void)state;
  mw_task *task = spawn("local a, b = wait_here(); return a + b, 'ok'");
  task_start(task);
  assert_int_equal(task->state, MW_TASK_WAITING);
  assert_ptr_equal(waiting, task);
  lua_pushinteger(task->co, 2);
  lua_pushinteger(task->co, 3);
  task_resume(task, 2);
  assert_int_equal(task->state, MW_TASK_DONE);
  assert_int_equal(dones, 1);
  assert_int_equal(cancels, 0);
  assert_int_equal(task_push_result(L, task), 3);
  assert_true(lua_toboolean(L, -3));
  assert_int_equal(lua_tointeger(L, -2), 5);
  assert_string_equal(lua_tostring(L, -1), "ok");
  lua_pop(L, 3);
}

static void test_cancel_waiting(void **state) {
  (void)state;
  mw_task *task = spawn("wait_here(); error('never resumed')");
  task_start(task);
  assert_int_equal(task->state, MW_TASK_WAITING);
  assert_true(task_cancel(task));
  assert_int_equal(cancels, 1); /* what it waited on was released */
  assert_ptr_equal(cancel_data, &waiting);
  assert_int_equal(task->state, MW_TASK_CANCELLED);
  assert_int_equal(dones, 1);
  assert_false(task_cancel(task)); /* once only */
  assert_int_equal(task_push_result(L, task), 2);
  assert_false(lua_toboolean(L, -2));
  assert_string_equal(lua_tostring(L, -1), "cancelled");
  lua_pop(L, 2);
}

static void test_cancel_ready(void **state) {
  (void)state;
  assert_int_equal(luaL_loadstring(L, "ran = true"), LUA_OK);
  mw_task *task = task_spawn(L, 0, 0);
  lua_pop(L, 1);
  assert_true(task_cancel(task));
  run_once();
  assert_int_equal(task->state, MW_TASK_CANCELLED);
  assert_int_equal(lua_getglobal(L, "ran"), LUA_TNIL);
  lua_pop(L, 1);
}

static void test_failed(void **state) {
  (void)state;
  mw_task *task = spawn("error({ code = 7 })");
  task_start(task);
  assert_int_equal(task->state, MW_TASK_FAILED);
  assert_int_equal(dones, 1);
  assert_int_equal(task_push_result(L, task), 3);
  assert_false(lua_toboolean(L, -3));
  assert_non_null(strstr(lua_tostring(L, -2), "stack traceback"));
  assert_true(lua_istable(L, -1)); /* the error object as raised */
  lua_pop(L, 3);
}

static void test_wait_outside_a_task(void **state) {
  (void)state;
  assert_int_not_equal(luaL_dostring(L, "wait_here()"), LUA_OK);
  assert_non_null(strstr(lua_tostring(L, -1), "wait_here must be called from a task"));
  lua_pop(L, 1);
  /* nor from a coroutine of its own inside a task */
  mw_task *task = spawn("return coroutine.wrap(function() return pcall(wait_here) end)()");
  task_start(task);
  assert_int_equal(task->state, MW_TASK_DONE);
  assert_int_equal(task_push_result(L, task), 3);
  assert_false(lua_toboolean(L, -2));
  lua_pop(L, 3);
}

static void test_run_returns_results(void **state) {
  (void)state;
  assert_int_equal(luaL_dostring(L, "return core.run(function(x) coroutine.yield(); return x * 2 "
                                    "end, 21)"),
                   LUA_OK);
  assert_int_equal(lua_tointeger(L, -1), 42);
  lua_pop(L, 1);
  assert_int_equal(luaL_dostring(L, "return core.stats().tasks"), LUA_OK);
  assert_int_equal(lua_tointeger(L, -1), 0);
  lua_pop(L, 1);
}

static void test_run_names_a_deadlock(void **state) {
  (void)state;
  assert_int_not_equal(luaL_dostring(L, "core.run(function() wait_here() end)"), LUA_OK);
  assert_non_null(strstr(lua_tostring(L, -1), "nothing will ever deliver"));
  lua_pop(L, 1);
  assert_int_equal(cancels, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_ready_queue_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wait_and_resume, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_waiting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_ready, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wait_outside_a_task, setup, teardown),
      cmocka_unit_test_setup_teardown(test_run_returns_results, setup, teardown),
      cmocka_unit_test_setup_teardown(test_run_names_a_deadlock, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
