/* Tasks: Lua coroutines resumed only by the loop.
 *
 * A task's userdata holds its thread in a user value and is anchored in the
 * registry from spawn until it ends, so a waiting coroutine is never
 * collected. The running task is loop->current; a waiting core call checks
 * that it runs on that task's own thread, which rejects the main thread and
 * coroutines nested inside a task without any per-thread bookkeeping.
 */
#include <lauxlib.h>
#include <string.h>

#include "loop.h"
#include "watchdog.h"

#define TASK_MT "moonwatch.task"
#define TASK_POOL_MAX 256

static const char *const state_names[] = {"ready", "running", "waiting",
                                          "done",  "failed",  "cancelled"};

int task_is_final(const mw_task *task) {
  return task->state >= TASK_DONE;
}

static void ready_remove(mw_task *task) {
  mw_loop *loop = task->loop;
  if (task->ready_prev)
    task->ready_prev->ready_next = task->ready_next;
  else
    loop->ready_head = task->ready_next;
  if (task->ready_next)
    task->ready_next->ready_prev = task->ready_prev;
  else
    loop->ready_tail = task->ready_prev;
  task->ready_prev = task->ready_next = NULL;
}

static void ready_process(uv_idle_t *idle) {
  mw_loop *loop = idle->data;
  /* Only the tasks queued before this turn run now, so a task that keeps
   * yielding cannot starve I/O. */
  int budget = 0;
  for (mw_task *t = loop->ready_head; t; t = t->ready_next)
    budget++;
  while (budget-- > 0 && loop->ready_head) {
    mw_task *task = loop->ready_head;
    ready_remove(task);
    task_resume(task, task->nargs);
  }
  if (!loop->ready_head)
    uv_idle_stop(&loop->ready_idle);
}

static void ready_push(mw_task *task) {
  mw_loop *loop = task->loop;
  task->state = TASK_READY;
  task->ready_next = NULL;
  task->ready_prev = loop->ready_tail;
  if (loop->ready_tail)
    loop->ready_tail->ready_next = task;
  else
    loop->ready_head = task;
  loop->ready_tail = task;
  if (!uv_is_active((uv_handle_t *)&loop->ready_idle))
    uv_idle_start(&loop->ready_idle, ready_process);
}

void task_queue_init(mw_loop *loop) {
  uv_idle_init(&loop->uv, &loop->ready_idle);
  loop->ready_idle.data = loop;
}

static void task_finish(mw_task *task, mw_task_state state) {
  mw_loop *loop = task->loop;
  task->state = state;
  task->wait_cancel = NULL;
  task->wait_data = NULL;
  loop->tasks_alive--;
  if (task->alive_prev)
    task->alive_prev->alive_next = task->alive_next;
  else
    loop->alive = task->alive_next;
  if (task->alive_next)
    task->alive_next->alive_prev = task->alive_prev;
  task->alive_prev = task->alive_next = NULL;
  if (task->on_done) {
    mw_task_done_fn done = task->on_done;
    task->on_done = NULL;
    done(task, task->on_done_data);
  }
  if (task->pooled && !task->exposed && loop->pool_n < TASK_POOL_MAX && !loop->closed) {
    lua_State *L = loop->L;
    lua_resetthread(task->co);
    lua_rawgeti(L, LUA_REGISTRYINDEX, loop->pool_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, task->self_ref);
    lua_rawseti(L, -2, ++loop->pool_n);
    lua_pop(L, 1);
  }
  luaL_unref(loop->L, LUA_REGISTRYINDEX, task->self_ref);
  task->self_ref = LUA_NOREF;
}

mw_task *task_new(lua_State *L, int nargs) {
  mw_loop *loop = loop_get(L);
  int fn = lua_absindex(L, -(nargs + 1));
  lua_State *co = lua_newthread(L);
  mw_task *task = lua_newuserdatauv(L, sizeof *task, 1);
  memset(task, 0, sizeof *task);
  task->loop = loop;
  task->co = co;
  task->state = TASK_READY;
  luaL_setmetatable(L, TASK_MT);
  lua_rotate(L, -2, 1); /* ... fn args task thread */
  lua_setiuservalue(L, -2, 1);
  lua_rotate(L, fn, 1); /* task fn args */
  lua_xmove(L, co, nargs + 1);
  lua_pushvalue(L, -1);
  task->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  task->nargs = nargs;
  loop->tasks_alive++;
  task->alive_next = loop->alive;
  if (loop->alive)
    loop->alive->alive_prev = task;
  loop->alive = task;
  return task;
}

mw_task *task_new_pooled(lua_State *L, int nargs) {
  mw_loop *loop = loop_get(L);
  if (loop->pool_n == 0) {
    mw_task *task = task_new(L, nargs);
    task->pooled = 1;
    return task;
  }
  int fn = lua_absindex(L, -(nargs + 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->pool_ref);
  lua_rawgeti(L, -1, loop->pool_n);
  lua_pushnil(L);
  lua_rawseti(L, -3, loop->pool_n--);
  lua_remove(L, -2); /* fn args task */
  mw_task *task = lua_touserdata(L, -1);
  lua_rotate(L, fn, 1); /* task fn args */
  lua_xmove(L, task->co, nargs + 1);
  lua_pushvalue(L, -1);
  task->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  task->state = TASK_READY;
  task->nargs = nargs;
  task->nresults = 0;
  task->cancel_requested = 0;
  task->budget_ns = 0;
  task->on_done = NULL;
  task->wait_cancel = NULL;
  task->wait_data = NULL;
  task->ready_prev = task->ready_next = NULL;
  loop->tasks_alive++;
  task->alive_prev = NULL;
  task->alive_next = loop->alive;
  if (loop->alive)
    loop->alive->alive_prev = task;
  loop->alive = task;
  return task;
}

void task_start(mw_task *task) {
  task_resume(task, task->nargs);
}

mw_task *task_spawn(lua_State *L, int nargs, int start_now) {
  mw_task *task = task_new(L, nargs);
  if (start_now)
    task_start(task);
  else
    ready_push(task);
  return task;
}

/* Leaves the error and its traceback on the suspended thread, as a failed
 * resume does. */
static void task_fail_overrun(mw_task *task, uint64_t budget) {
  lua_State *co = task->co;
  lua_checkstack(co, 4);
  luaL_where(co, 0);
  watchdog_push_message(co, budget);
  lua_concat(co, 2);
  luaL_traceback(co, co, lua_tostring(co, -1), 0);
  task->nresults = 2;
  task_finish(task, TASK_FAILED);
}

void task_resume(mw_task *task, int nargs) {
  mw_loop *loop = task->loop;
  mw_task *outer = loop->current;
  int nres = 0;
  task->state = TASK_RUNNING;
  task->wait_cancel = NULL;
  task->wait_data = NULL;
  loop->current = task;
  uint64_t budget = task->budget_ns ? task->budget_ns : loop->cpu_budget_ns;
  if (budget == TASK_NO_BUDGET)
    budget = 0;
  watchdog_state saved = watchdog_arm(task->co, budget, WATCHDOG_YIELD);
  int status = lua_resume(task->co, NULL, nargs, &nres);
  int overran = watchdog_restore(saved);
  loop->current = outer;
  if ((status == LUA_YIELD || status == LUA_OK) && overran && task->state == TASK_RUNNING) {
    /* The watchdog's hook yielded it, or stopped a coroutine it resumed (its
     * results are then not to be trusted): end it as failed. */
    lua_pop(task->co, nres);
    task_fail_overrun(task, budget);
    return;
  }
  if (status == LUA_YIELD) {
    lua_pop(task->co, nres);
    if (task->state == TASK_RUNNING) {
      /* A plain coroutine.yield() inside a task: let others run first. */
      task->nargs = 0;
      ready_push(task);
    }
    if (task->cancel_requested) /* it cancelled itself while running */
      task_cancel(task);
    return;
  }
  if (status == LUA_OK) {
    task->nresults = nres;
    task_finish(task, TASK_DONE);
    return;
  }
  /* Keep the error object as raised (busted's assertion errors are tables)
   * and a traceback string next to it. */
  int top = lua_gettop(task->co);
  const char *msg = lua_tostring(task->co, -1);
  if (!msg)
    msg = luaL_tolstring(task->co, -1, NULL);
  luaL_traceback(task->co, task->co, msg, 0);
  if (lua_gettop(task->co) == top + 2)
    lua_remove(task->co, -2); /* the luaL_tolstring copy */
  task->nresults = 2;         /* error object, traceback */
  task_finish(task, TASK_FAILED);
}

int task_cancel(mw_task *task) {
  switch (task->state) {
  case TASK_READY:
    ready_remove(task);
    lua_settop(task->co, 0);
    break;
  case TASK_WAITING:
    if (task->wait_cancel)
      task->wait_cancel(task->wait_data);
    /* Run pending to-be-closed variables, as coroutine.close does. */
    if (!task->loop->closed)
      lua_resetthread(task->co);
    break;
  case TASK_RUNNING:
    /* It cancels itself (e.g. a check stopping the dispatcher): honour it at
     * its next wait. */
    task->cancel_requested = 1;
    return 1;
  default:
    return 0;
  }
  task->nresults = 0;
  task_finish(task, TASK_CANCELLED);
  return 1;
}

mw_task *task_check_current(lua_State *L, const char *what) {
  mw_loop *loop = loop_get(L);
  mw_task *task = loop->current;
  if (!task || task->co != L)
    luaL_error(L,
               "%s must be called from a task (use core.spawn or core.run), "
               "not from the main thread or a coroutine of your own",
               what);
  return task;
}

void task_wait(mw_task *task, mw_wait_cancel_fn cancel, void *data) {
  task->state = TASK_WAITING;
  task->wait_cancel = cancel;
  task->wait_data = data;
}

/* Lua API */

static mw_task *check_task(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, TASK_MT);
}

/* core.spawn(fn, ...) -> task */
static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  task_spawn(L, lua_gettop(L) - 1, 0);
  return 1;
}

/* core.cancel_all() -> number of tasks cancelled. Specs use it to clean up
 * after a test that left tasks behind, so the next test starts clean. */
static int l_cancel_all(lua_State *L) {
  mw_loop *loop = loop_get(L);
  int n = 0, progress = 1;
  /* Cancelling one task may end others (a dispatcher's checks), so start
   * over from the head after each. Running tasks cannot be cancelled. */
  while (progress) {
    progress = 0;
    for (mw_task *t = loop->alive; t; t = t->alive_next) {
      if (t->state != TASK_RUNNING) {
        task_cancel(t);
        n++;
        progress = 1;
        break;
      }
    }
  }
  lua_pushinteger(L, n);
  return 1;
}

/* Seconds as a CPU budget in ns: 0 (none) or at least WATCHDOG_MIN_NS. */
static uint64_t check_budget(lua_State *L, int idx, const char *what) {
  lua_Number s = luaL_checknumber(L, idx);
  if (s == 0)
    return 0;
  if (!(s >= (lua_Number)WATCHDOG_MIN_NS / 1e9) || s > 86400)
    luaL_error(L, "%s must be 0 (no limit) or a number of seconds in [%f, 86400], got %f", what,
               (lua_Number)WATCHDOG_MIN_NS / 1e9, s);
  return (uint64_t)(s * 1e9);
}

uint64_t task_check_budget(lua_State *L, int idx, const char *what) {
  return check_budget(L, idx, what);
}

/* core.cpu_budget([seconds]) -> seconds: the CPU a task may spend in one
 * resume (between two waits) before it is ended as failed; 0: no limit. */
static int l_cpu_budget(lua_State *L) {
  mw_loop *loop = loop_get(L);
  if (!lua_isnoneornil(L, 1))
    loop->cpu_budget_ns = check_budget(L, 1, "core.cpu_budget");
  lua_pushnumber(L, (lua_Number)loop->cpu_budget_ns / 1e9);
  return 1;
}

/* core.cpu_limit(seconds, fn, ...) -> fn(...): raises "<where>: CPU budget
 * exceeded..." inside fn once it has run that much CPU, for code that runs
 * outside a task (a config being evaluated). */
static int l_cpu_limit(lua_State *L) {
  uint64_t ns = check_budget(L, 1, "core.cpu_limit");
  luaL_checkany(L, 2); /* anything callable */
  watchdog_state saved = watchdog_arm(L, ns, WATCHDOG_RAISE);
  int rc = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
  watchdog_restore(saved);
  if (rc != LUA_OK)
    return lua_error(L);
  return lua_gettop(L) - 1;
}

/* coroutine.resume and coroutine.wrap, wrapped so that the CPU budget
 * follows a check into the coroutines it makes: the watchdog's hook is per
 * Lua thread. Upvalue 1: the standard function. */
static int l_co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "thread"); /* named as the caller knows it */
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_State *prev = watchdog_enter(co);
  int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0); /* only out of memory */
  watchdog_leave(co, prev);
  if (rc != LUA_OK)
    return lua_error(L);
  return lua_gettop(L);
}

/* The function coroutine.wrap returns. Upvalues: the standard one, its
 * thread. */
static int l_co_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_State *prev = watchdog_enter(co);
  int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  watchdog_leave(co, prev);
  if (rc != LUA_OK)
    return lua_error(L);
  return lua_gettop(L);
}

static int l_co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  /* the standard wrapper keeps its thread as its only upvalue */
  if (!lua_getupvalue(L, -1, 1) || !lua_isthread(L, -1)) {
    lua_pop(L, 1);
    return 1; /* another implementation: left as it is */
  }
  lua_pushcclosure(L, l_co_wrapped, 2);
  return 1;
}

static void task_wrap_coroutines(lua_State *L) {
  if (lua_getglobal(L, "coroutine") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_getfield(L, -1, "resume");
  if (lua_tocfunction(L, -1) == l_co_resume) { /* loaded twice */
    lua_pop(L, 2);
    return;
  }
  lua_pushcclosure(L, l_co_resume, 1);
  lua_setfield(L, -2, "resume");
  lua_getfield(L, -1, "wrap");
  lua_pushcclosure(L, l_co_wrap, 1);
  lua_setfield(L, -2, "wrap");
  lua_pop(L, 1);
}

/* core.current() -> task | nil */
static int l_current(lua_State *L) {
  mw_loop *loop = loop_get(L);
  if (!loop->current || loop->current->co != L || loop->current->self_ref == LUA_NOREF)
    return 0;
  loop->current->exposed = 1; /* Lua may keep it: not to be reused */
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->current->self_ref);
  return 1;
}

/* Pushes the results of a final task: true, ... | false, message, error. */
int task_push_result(lua_State *L, mw_task *task) {
  switch (task->state) {
  case TASK_DONE:
    lua_pushboolean(L, 1);
    luaL_checkstack(L, task->nresults, "too many task results");
    luaL_checkstack(task->co, task->nresults, "too many task results");
    for (int i = 0; i < task->nresults; i++) /* each push moves the top */
      lua_pushvalue(task->co, -task->nresults);
    lua_xmove(task->co, L, task->nresults);
    return 1 + task->nresults;
  case TASK_FAILED:
    lua_pushboolean(L, 0);
    lua_pushvalue(task->co, -1); /* traceback */
    lua_pushvalue(task->co, -3); /* error object */
    lua_xmove(task->co, L, 2);
    return 3;
  case TASK_CANCELLED:
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "cancelled");
    return 2;
  default:
    return luaL_error(L, "task:result(): the task has not ended (it is %s)",
                      state_names[task->state]);
  }
}

static int l_task_result(lua_State *L) {
  return task_push_result(L, check_task(L, 1));
}

static int l_task_status(lua_State *L) {
  lua_pushstring(L, state_names[check_task(L, 1)->state]);
  return 1;
}

static int l_task_cancel(lua_State *L) {
  lua_pushboolean(L, task_cancel(check_task(L, 1)));
  return 1;
}

static int l_task_tostring(lua_State *L) {
  mw_task *task = check_task(L, 1);
  lua_pushfstring(L, "moonwatch.task (%s): %p", state_names[task->state], (void *)task);
  return 1;
}

/* A task that is still anchored cannot be collected, so only ended tasks and
 * tasks of a closing state reach here. */
static int l_task_gc(lua_State *L) {
  mw_task *task = check_task(L, 1);
  if (!task_is_final(task)) {
    task->on_done = NULL;
    task_cancel(task);
  }
  return 0;
}

void task_register(lua_State *L) {
  static const luaL_Reg methods[] = {{"result", l_task_result},
                                     {"status", l_task_status},
                                     {"cancel", l_task_cancel},
                                     {NULL, NULL}};
  if (luaL_newmetatable(L, TASK_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_task_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, l_task_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_spawn);
  lua_setfield(L, -2, "spawn");
  lua_pushcfunction(L, l_current);
  lua_setfield(L, -2, "current");
  lua_pushcfunction(L, l_cancel_all);
  lua_setfield(L, -2, "cancel_all");
  lua_pushcfunction(L, l_cpu_budget);
  lua_setfield(L, -2, "cpu_budget");
  lua_pushcfunction(L, l_cpu_limit);
  lua_setfield(L, -2, "cpu_limit");
  task_wrap_coroutines(L);
}
