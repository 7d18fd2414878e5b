/* L2: tasks, Lua coroutines resumed only by the loop, and core.run.
 *
 * A task's userdata holds its thread in a user value and is anchored in the
 * registry from spawn until it ends, so a waiting coroutine is never
 * collected. The running task is the scheduler's current; a waiting core
 * call checks that it runs on that task's own thread, which rejects the main
 * thread and coroutines nested inside a task without any per-thread
 * bookkeeping.
 */
#include <lauxlib.h>
#include <string.h>

#include "task.h"
#include "watchdog.h"

#define TASK_MT "moonwatch.task"
#define TASK_POOL_MAX 256

/* The tasks of one loop. A userdata without __gc (so its memory outlives
 * every finaliser at lua_close), anchored in the registry. */
typedef struct mw_sched {
  mw_loop *loop;
  uv_idle_t ready_idle;
  mw_list ready; /* tasks to resume, in order */
  mw_list alive; /* every task not yet ended */
  mw_task *current;
  int pool_ref; /* ended check tasks kept for reuse (a Lua table) */
  int pool_n;
  int tasks_alive;
  int running;            /* inside core.run */
  uint64_t cpu_budget_ns; /* default CPU budget of a task's resume; 0: none */
  mw_hook closer;
} mw_sched;

static const char sched_key = 'S';

static void sched_close(mw_loop *loop, void *data) {
  (void)loop;
  mw_sched *s = data;
  uv_close((uv_handle_t *)&s->ready_idle, NULL);
}

static mw_sched *sched_get(lua_State *L) {
  mw_loop *loop = loop_get(L);
  mw_sched *s = loop_ext(loop, &sched_key);
  if (s)
    return s;
  s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &sched_key);
  s->loop = loop;
  list_init(&s->ready);
  list_init(&s->alive);
  lua_newtable(L);
  s->pool_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  s->cpu_budget_ns = 1000000000u;
  watchdog_init(); /* without it (no thread), budgets are not enforced */
  uv_idle_init(&loop->uv, &s->ready_idle);
  s->ready_idle.data = s;
  loop_set_ext(loop, &sched_key, s);
  loop_at_close(loop, &s->closer, sched_close, s);
  return s;
}

static const char *const state_names[] = {"ready", "running", "waiting",
                                          "done",  "failed",  "cancelled"};

int task_is_final(const mw_task *task) {
  return task->state >= MW_TASK_DONE;
}

static void ready_process(uv_idle_t *idle) {
  mw_sched *s = idle->data;
  /* Only the tasks queued before this turn run now, so a task that keeps
   * yielding cannot starve I/O. */
  int budget = 0;
  mw_list *node, *next;
  list_each(node, next, &s->ready) budget++;
  while (budget-- > 0 && (node = list_first(&s->ready))) {
    mw_task *task = list_entry(node, mw_task, ready_link);
    list_remove(node);
    task_resume(task, task->nargs);
  }
  if (list_empty(&s->ready))
    uv_idle_stop(&s->ready_idle);
}

static void ready_push(mw_task *task) {
  mw_sched *s = task->sched;
  task->state = MW_TASK_READY;
  list_push_back(&s->ready, &task->ready_link);
  if (!uv_is_active((uv_handle_t *)&s->ready_idle))
    uv_idle_start(&s->ready_idle, ready_process);
}

static void alive_add(mw_task *task) {
  task->sched->tasks_alive++;
  list_push_front(&task->sched->alive, &task->alive_link);
}

static void task_finish(mw_task *task, mw_task_state state) {
  mw_sched *s = task->sched;
  mw_loop *loop = task->loop;
  task->state = state;
  task->wait_cancel = NULL;
  task->wait_data = NULL;
  s->tasks_alive--;
  list_remove(&task->alive_link);
  if (task->on_done) {
    mw_task_done_fn done = task->on_done;
    task->on_done = NULL;
    done(task, task->on_done_data);
  }
  if (task->pooled && !task->exposed && s->pool_n < TASK_POOL_MAX && !loop->closed) {
    lua_State *L = loop->L;
    lua_resetthread(task->co);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->pool_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, task->self_ref);
    lua_rawseti(L, -2, ++s->pool_n);
    lua_pop(L, 1);
  }
  luaL_unref(loop->L, LUA_REGISTRYINDEX, task->self_ref);
  task->self_ref = LUA_NOREF;
}

mw_task *task_new(lua_State *L, int nargs) {
  mw_sched *s = sched_get(L);
  int fn = lua_absindex(L, -(nargs + 1));
  lua_State *co = lua_newthread(L);
  mw_task *task = lua_newuserdatauv(L, sizeof *task, 1);
  memset(task, 0, sizeof *task);
  task->loop = s->loop;
  task->sched = s;
  task->co = co;
  list_init(&task->ready_link);
  task->state = MW_TASK_READY;
  luaL_setmetatable(L, TASK_MT);
  lua_rotate(L, -2, 1); /* ... fn args task thread */
  lua_setiuservalue(L, -2, 1);
  lua_rotate(L, fn, 1); /* task fn args */
  lua_xmove(L, co, nargs + 1);
  lua_pushvalue(L, -1);
  task->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  task->nargs = nargs;
  alive_add(task);
  return task;
}

mw_task *task_new_pooled(lua_State *L, int nargs) {
  mw_sched *s = sched_get(L);
  if (s->pool_n == 0) {
    mw_task *task = task_new(L, nargs);
    task->pooled = 1;
    return task;
  }
  int fn = lua_absindex(L, -(nargs + 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->pool_ref);
  lua_rawgeti(L, -1, s->pool_n);
  lua_pushnil(L);
  lua_rawseti(L, -3, s->pool_n--);
  lua_remove(L, -2); /* fn args task */
  mw_task *task = lua_touserdata(L, -1);
  lua_rotate(L, fn, 1); /* task fn args */
  lua_xmove(L, task->co, nargs + 1);
  lua_pushvalue(L, -1);
  task->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  task->state = MW_TASK_READY;
  task->nargs = nargs;
  task->nresults = 0;
  task->cancel_requested = 0;
  task->budget_ns = 0;
  task->on_done = NULL;
  task->wait_cancel = NULL;
  task->wait_data = NULL;
  alive_add(task);
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
  task_finish(task, MW_TASK_FAILED);
}

void task_resume(mw_task *task, int nargs) {
  mw_sched *s = task->sched;
  mw_task *outer = s->current;
  int nres = 0;
  task->state = MW_TASK_RUNNING;
  task->wait_cancel = NULL;
  task->wait_data = NULL;
  s->current = task;
  uint64_t budget = task->budget_ns ? task->budget_ns : s->cpu_budget_ns;
  if (budget == MW_TASK_NO_BUDGET)
    budget = 0;
  mw_watchdog_state saved = watchdog_arm(task->co, budget, MW_WATCHDOG_YIELD);
  int status = lua_resume(task->co, NULL, nargs, &nres);
  int overran = watchdog_restore(saved);
  s->current = outer;
  if ((status == LUA_YIELD || status == LUA_OK) && overran && task->state == MW_TASK_RUNNING) {
    /* The watchdog's hook yielded it, or stopped a coroutine it resumed (its
     * results are then not to be trusted): end it as failed. */
    lua_pop(task->co, nres);
    task_fail_overrun(task, budget);
    return;
  }
  if (status == LUA_YIELD) {
    lua_pop(task->co, nres);
    if (task->state == MW_TASK_RUNNING) {
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
    task_finish(task, MW_TASK_DONE);
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
  task_finish(task, MW_TASK_FAILED);
}

int task_cancel(mw_task *task) {
  switch (task->state) {
  case MW_TASK_READY:
    list_remove(&task->ready_link);
    /* the idle would keep the loop turning with nothing to resume */
    if (list_empty(&task->sched->ready))
      uv_idle_stop(&task->sched->ready_idle);
    lua_settop(task->co, 0);
    break;
  case MW_TASK_WAITING:
    if (task->wait_cancel)
      task->wait_cancel(task->wait_data);
    /* Run pending to-be-closed variables, as coroutine.close does. */
    if (!task->loop->closed)
      lua_resetthread(task->co);
    break;
  case MW_TASK_RUNNING:
    /* It cancels itself (e.g. a check stopping the dispatcher): honour it at
     * its next wait. */
    task->cancel_requested = 1;
    return 1;
  default:
    return 0;
  }
  task->nresults = 0;
  task_finish(task, MW_TASK_CANCELLED);
  return 1;
}

mw_task *task_check_current(lua_State *L, const char *what) {
  mw_task *task = sched_get(L)->current;
  if (!task || task->co != L)
    luaL_error(L,
               "%s must be called from a task (use core.spawn or core.run), "
               "not from the main thread or a coroutine of your own",
               what);
  return task;
}

void task_wait(mw_task *task, mw_task_cancel_fn cancel, void *data) {
  task->state = MW_TASK_WAITING;
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
  mw_sched *s = sched_get(L);
  int n = 0, progress = 1;
  /* Cancelling one task may end others (a dispatcher's checks), so start
   * over from the head after each. Running tasks cannot be cancelled. */
  while (progress) {
    progress = 0;
    mw_list *node, *next;
    list_each(node, next, &s->alive) {
      mw_task *t = list_entry(node, mw_task, alive_link);
      if (t->state != MW_TASK_RUNNING) {
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

/* Seconds as a CPU budget in ns: 0 (none) or at least MW_WATCHDOG_MIN_NS. */
static uint64_t check_budget(lua_State *L, int idx, const char *what) {
  lua_Number s = luaL_checknumber(L, idx);
  if (s == 0)
    return 0;
  if (!(s >= (lua_Number)MW_WATCHDOG_MIN_NS / 1e9) || s > 86400)
    luaL_error(L, "%s must be 0 (no limit) or a number of seconds in [%f, 86400], got %f", what,
               (lua_Number)MW_WATCHDOG_MIN_NS / 1e9, s);
  return (uint64_t)(s * 1e9);
}

uint64_t task_check_budget(lua_State *L, int idx, const char *what) {
  return check_budget(L, idx, what);
}

/* core.cpu_budget([seconds]) -> seconds: the CPU a task may spend in one
 * resume (between two waits) before it is ended as failed; 0: no limit. */
static int l_cpu_budget(lua_State *L) {
  mw_sched *s = sched_get(L);
  if (!lua_isnoneornil(L, 1))
    s->cpu_budget_ns = check_budget(L, 1, "core.cpu_budget");
  lua_pushnumber(L, (lua_Number)s->cpu_budget_ns / 1e9);
  return 1;
}

/* core.cpu_limit(seconds, fn, ...) -> fn(...): raises "<where>: CPU budget
 * exceeded..." inside fn once it has run that much CPU, for code that runs
 * outside a task (a config being evaluated). */
static int l_cpu_limit(lua_State *L) {
  uint64_t ns = check_budget(L, 1, "core.cpu_limit");
  luaL_checkany(L, 2); /* anything callable */
  mw_watchdog_state saved = watchdog_arm(L, ns, MW_WATCHDOG_RAISE);
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
  mw_task *current = sched_get(L)->current;
  if (!current || current->co != L || current->self_ref == LUA_NOREF)
    return 0;
  current->exposed = 1; /* Lua may keep it: not to be reused */
  lua_rawgeti(L, LUA_REGISTRYINDEX, current->self_ref);
  return 1;
}

/* Pushes the results of a final task: true, ... | false, message, error. */
int task_push_result(lua_State *L, mw_task *task) {
  switch (task->state) {
  case MW_TASK_DONE:
    lua_pushboolean(L, 1);
    luaL_checkstack(L, task->nresults, "too many task results");
    luaL_checkstack(task->co, task->nresults, "too many task results");
    for (int i = 0; i < task->nresults; i++) /* each push moves the top */
      lua_pushvalue(task->co, -task->nresults);
    lua_xmove(task->co, L, task->nresults);
    return 1 + task->nresults;
  case MW_TASK_FAILED:
    lua_pushboolean(L, 0);
    lua_pushvalue(task->co, -1); /* traceback */
    lua_pushvalue(task->co, -3); /* error object */
    lua_xmove(task->co, L, 2);
    return 3;
  case MW_TASK_CANCELLED:
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

/* core.run */

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
  mw_sched *s = sched_get(L);
  if (s->running)
    return luaL_error(L, "core.run: the loop is already running (core.run cannot be "
                         "called from a task or a callback)");
  mw_task *target = NULL;
  if (lua_isfunction(L, 1)) {
    target = task_spawn(L, lua_gettop(L) - 1, 0);
  } else if (!lua_isnoneornil(L, 1)) {
    target = luaL_checkudata(L, 1, TASK_MT);
    lua_settop(L, 1);
  }
  int target_idx = lua_gettop(L);
  lua_State *outer = loop->L;
  loop->L = L;
  s->running = 1;
  int deadlock = 0;
  if (!target) {
    uv_run(&loop->uv, UV_RUN_DEFAULT);
  } else {
    while (!task_is_final(target)) {
      if (uv_run(&loop->uv, UV_RUN_ONCE) == 0 && !task_is_final(target) && list_empty(&s->ready)) {
        deadlock = 1;
        break;
      }
    }
  }
  s->running = 0;
  loop->L = outer;
  loop_hooks_run(loop); /* what the run logged is out when it returns */
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

/* core.stats() -> { tasks = alive tasks, handles = active uv handles that
 * keep the loop running }. Specs assert both are 0 after each test. */
static int l_stats(lua_State *L) {
  mw_sched *s = sched_get(L);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, s->tasks_alive);
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, loop_count_handles(s->loop));
  lua_setfield(L, -2, "handles");
  return 1;
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
  sched_get(L);
  static const luaL_Reg funcs[] = {{"run", l_run},
                                   {"stats", l_stats},
                                   {"spawn", l_spawn},
                                   {"current", l_current},
                                   {"cancel_all", l_cancel_all},
                                   {"cpu_budget", l_cpu_budget},
                                   {"cpu_limit", l_cpu_limit},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  task_wrap_coroutines(L);
}
