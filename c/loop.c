/* The loop of a Lua state: creation, core.run, clocks and shutdown. */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core.h"
#include "loop.h"
#include "watchdog.h"

static const char loop_key = 'L';

static void handle_close_orphan(uv_handle_t *handle, void *arg) {
  int *count = arg;
  if (!uv_is_closing(handle)) {
    /* Every subsystem closes its own handles; one left here is a bug, and
     * closing it without its callback leaks its memory but keeps us alive. */
    (*count)++;
    uv_close(handle, NULL);
  }
}

static void loop_on_prepare(uv_prepare_t *prepare) {
  mw_loop *loop = prepare->data;
  loop->turn++;
  lua_log_flush_all();
}

static int loop_gc(lua_State *L) {
  mw_loop *loop = lua_touserdata(L, 1);
  if (loop->closed)
    return 0;
  loop->L = L;
  http_shutdown(loop);
  resolver_shutdown(loop);
  signal_shutdown(loop);
  loop->closed = 1;
  uv_close((uv_handle_t *)&loop->ready_idle, NULL);
  uv_close((uv_handle_t *)&loop->flush_prepare, NULL);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  int orphans = 0;
  uv_walk(&loop->uv, handle_close_orphan, &orphans);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  if (orphans)
    fprintf(stderr, "moonwatch: %d uv handle(s) were still open at exit\n", orphans);
  if (uv_loop_close(&loop->uv) != 0)
    fprintf(stderr, "moonwatch: the event loop could not be closed\n");
  return 0;
}

mw_loop *loop_get(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &loop_key) == LUA_TUSERDATA) {
    mw_loop *loop = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return loop;
  }
  lua_pop(L, 1);
  mw_loop *loop = lua_newuserdatauv(L, sizeof *loop, 0);
  memset(loop, 0, sizeof *loop);
  int rc = uv_loop_init(&loop->uv);
  if (rc != 0)
    luaL_error(L, "moonwatch: cannot create the event loop: %s", uv_strerror(rc));
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, loop_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, "moonwatch.loop");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &loop_key);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  loop->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  loop->uv.data = loop;
  lua_newtable(L);
  loop->pool_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  task_queue_init(loop);
  loop->cpu_budget_ns = 1000000000u;
  watchdog_init(); /* without it (no thread), budgets are not enforced */
  uv_prepare_init(&loop->uv, &loop->flush_prepare);
  loop->flush_prepare.data = loop;
  uv_prepare_start(&loop->flush_prepare, loop_on_prepare);
  uv_unref((uv_handle_t *)&loop->flush_prepare); /* never keeps the loop alive */
  return loop;
}

static mw_loop *loop_check_open(lua_State *L) {
  mw_loop *loop = loop_get(L);
  if (loop->closed)
    luaL_error(L, "moonwatch: the event loop is closed");
  return loop;
}

/* Raises the error a failed task ended with: the original object when it is
 * not a string (busted's assertion errors), else message and traceback. */
static int run_raise(lua_State *L, int nres) {
  int base = lua_gettop(L) - nres; /* false, traceback, error */
  if (lua_type(L, base + 3) == LUA_TSTRING || lua_isnoneornil(L, base + 3))
    lua_pushvalue(L, base + 2);
  else
    lua_pushvalue(L, base + 3);
  return lua_error(L);
}

/* core.run() runs until nothing is left to do; core.run(fn, ...) spawns fn
 * as a task and runs until it ends; core.run(task) waits for that task. The
 * task's results are returned, its error raised. */
static int l_run(lua_State *L) {
  mw_loop *loop = loop_check_open(L);
  if (loop->running)
    return luaL_error(L, "core.run: the loop is already running (core.run cannot be "
                         "called from a task or a callback)");
  mw_task *target = NULL;
  if (lua_isfunction(L, 1)) {
    target = task_spawn(L, lua_gettop(L) - 1, 0);
  } else if (!lua_isnoneornil(L, 1)) {
    target = luaL_checkudata(L, 1, "moonwatch.task");
    lua_settop(L, 1);
  }
  int target_idx = lua_gettop(L);
  lua_State *outer = loop->L;
  loop->L = L;
  loop->running = 1;
  int deadlock = 0;
  if (!target) {
    uv_run(&loop->uv, UV_RUN_DEFAULT);
  } else {
    while (!task_is_final(target)) {
      if (uv_run(&loop->uv, UV_RUN_ONCE) == 0 && !task_is_final(target) && !loop->ready_head) {
        deadlock = 1;
        break;
      }
    }
  }
  loop->running = 0;
  loop->L = outer;
  lua_log_flush_all(); /* what the run logged is out when it returns */
  if (!target)
    return 0;
  if (deadlock) {
    task_cancel(target);
    return luaL_error(L, "core.run: the task waits for something that nothing will "
                         "ever deliver (no timer, transfer or signal is pending)");
  }
  lua_settop(L, target_idx);
  int nres = task_push_result(L, target);
  if (!lua_toboolean(L, target_idx + 1))
    return run_raise(L, nres);
  return nres - 1;
}

/* core.now() -> monotonic seconds, sub-microsecond resolution */
static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

/* core.time() -> wall-clock seconds since the epoch */
static int l_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* core.rusage() -> { user = s, system = s, maxrss = KiB } of this process */
static int l_rusage(lua_State *L) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, (lua_Number)ru.ru_utime.tv_sec + (lua_Number)ru.ru_utime.tv_usec / 1e6);
  lua_setfield(L, -2, "user");
  lua_pushnumber(L, (lua_Number)ru.ru_stime.tv_sec + (lua_Number)ru.ru_stime.tv_usec / 1e6);
  lua_setfield(L, -2, "system");
  lua_pushinteger(L, ru.ru_maxrss);
  lua_setfield(L, -2, "maxrss");
  return 1;
}

static void handle_count_active(uv_handle_t *handle, void *arg) {
  int *count = arg;
  if (uv_is_active(handle) && uv_has_ref(handle) && !uv_is_closing(handle))
    (*count)++;
}

/* core.stats() -> { tasks = alive tasks, handles = active uv handles that
 * keep the loop running }. Specs assert both are 0 after each test. */
static int l_stats(lua_State *L) {
  mw_loop *loop = loop_get(L);
  int handles = 0;
  if (!loop->closed)
    uv_walk(&loop->uv, handle_count_active, &handles);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, loop->tasks_alive);
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, handles);
  lua_setfield(L, -2, "handles");
  return 1;
}

void loop_register(lua_State *L) {
  static const luaL_Reg funcs[] = {{"run", l_run},     {"now", l_now},       {"time", l_time},
                                   {"stats", l_stats}, {"rusage", l_rusage}, {NULL, NULL}};
  loop_get(L);
  luaL_setfuncs(L, funcs, 0);
}
