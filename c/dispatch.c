/* L4: the dispatcher, fixed-rate scheduling of many monitors.
 *
 * The monitors' next ticks sit in a binary min-heap (an array of due time
 * and slot entries), and one uv timer is armed for the earliest.
 * One timer per monitor made libuv's pointer-linked timer heap 10,000 nodes
 * deep, and every curl timer update walked it: 8 % of the CPU at 10,000
 * checks/s. The next check is due one interval after the previous one was
 * due, not after it ended; a check still running when its next tick comes is
 * not started twice: the tick is skipped and counted. Each check runs
 * `monitor:check()` in a task of its own.
 *
 * A reload changes the set while it runs: d:remove(id) cancels the check's
 * running task and takes its tick off the heap; d:add on a running
 * dispatcher schedules the new check as d:start would (at once, or at its
 * spread offset from now); replacing is both. The other checks keep their
 * ticks. A removed check's id is given to a later add.
 */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "hash.h"
#include "metrics_lua.h"
#include "task.h"
#include "tick_heap.h"

#define DISPATCHER_MT "moonwatch.dispatcher"
/* Lateness histogram: 0.05 ms steps up to 100 ms, then 1 ms steps up to
 * 10 s, so an overloaded loop still shows its quantiles (not its max). */
#define LATE_FINE 2000
#define LATE_STEP_MS 0.05
#define LATE_FINE_MS (LATE_FINE * LATE_STEP_MS)
#define LATE_COARSE 9900
#define LATE_BUCKETS (LATE_FINE + LATE_COARSE)
/* Checks started in one loop turn at most. After a stall, the ticks that
 * came due meanwhile start over several turns: started all at once they
 * each needed a new connection (none was free yet), which slowed the next
 * turns further. */
#define TURN_BUDGET 256

typedef struct mw_dispatcher mw_dispatcher;

typedef struct {
  mw_dispatcher *d;
  int monitor_ref;
  int index;
  int scheduled; /* its next tick is on the heap */
  uint64_t interval_ms, offset_ms, due_ms;
  uint64_t budget_ns; /* CPU budget of its checks; 0: the loop's */
  mw_task *running;
} slot;

/* Lives outside the Lua userdata (which holds a pointer to it) because its
 * uv handles may only be freed in their close callbacks. */
struct mw_dispatcher {
  mw_loop *loop;
  uv_timer_t timer; /* armed for the earliest tick */
  uv_idle_t resume; /* the next turn, when the turn budget ran out */
  int closing;      /* handles still to close */
  slot **slots;     /* by id - 1; NULL where a check was removed */
  int n, cap;
  int live;  /* slots that are not NULL */
  int *free; /* ids of removed slots, for the next adds */
  int nfree;
  mw_tick_heap heap;
  int started;
  int spread;
  int self_ref;
  int on_error_ref;
  uint64_t scheduled, run, skipped, failed, down, cancelled;
  uint64_t late_count, late_over;
  uint64_t turn; /* the loop turn turn_started counts */
  int turn_started;
  double late_max, late_sum;
  uint32_t late[LATE_BUCKETS];
  mw_metrics_collector metrics; /* d:metrics(registry) */
  int metrics_ref;              /* that registry, alive while it is used */
};

static void heap_push(mw_dispatcher *d, slot *s) {
  tick_heap_push(&d->heap, s->due_ms, s);
  s->scheduled = 1;
}

static slot *heap_pop(mw_dispatcher *d) {
  slot *top = tick_heap_pop(&d->heap);
  top->scheduled = 0;
  return top;
}

static void late_record(mw_dispatcher *d, double ms) {
  if (ms < 0)
    ms = 0;
  if (ms > d->late_max)
    d->late_max = ms;
  d->late_sum += ms;
  size_t b =
      ms < LATE_FINE_MS ? (size_t)(ms / LATE_STEP_MS) : LATE_FINE + (size_t)(ms - LATE_FINE_MS);
  if (b < LATE_BUCKETS)
    d->late[b]++;
  else
    d->late_over++;
  d->late_count++;
}

static double late_quantile(const mw_dispatcher *d, double q) {
  if (!d->late_count)
    return 0;
  uint64_t want = (uint64_t)(q * (double)d->late_count);
  if (want >= d->late_count)
    want = d->late_count - 1;
  uint64_t seen = 0;
  for (size_t b = 0; b < LATE_BUCKETS; b++) {
    seen += d->late[b];
    if (seen > want) { /* the bucket's upper edge, but never past the max */
      double edge = b < LATE_FINE ? (double)(b + 1) * LATE_STEP_MS
                                  : LATE_FINE_MS + (double)(b - LATE_FINE + 1);
      return edge < d->late_max ? edge : d->late_max;
    }
  }
  return d->late_max;
}

/* The collector of d:metrics(registry): skipped ticks, and the lateness
 * histogram in the registry's buckets (each of ours goes to the first
 * bound at or above its upper edge). */
static void collect_metrics(mw_metrics *m, void *data) {
  mw_dispatcher *d = data;
  mw_metrics_family *f = metrics_family_find(m, "moonwatch_ticks_skipped_total");
  mw_metrics_sample *s = f ? metrics_sample_get(f, NULL, NULL) : NULL;
  if (s)
    metrics_sample_add(s, (double)d->skipped);
  f = metrics_family_find(m, "moonwatch_schedule_lateness_seconds");
  const double *bounds = NULL;
  int nb = f && metrics_family_type(f) == MW_METRICS_HISTOGRAM
               ? metrics_histogram_bounds(f, &bounds)
               : -1;
  uint64_t counts[65] = {0};
  if (nb < 0 || nb > 64)
    return;
  int k = 0;
  for (size_t b = 0; b < LATE_BUCKETS; b++) {
    double edge_s = (b < LATE_FINE ? (double)(b + 1) * LATE_STEP_MS
                                   : LATE_FINE_MS + (double)(b - LATE_FINE + 1)) /
                    1000.0;
    while (k < nb && bounds[k] < edge_s - 1e-12)
      k++;
    counts[k] += d->late[b];
  }
  counts[nb] += d->late_over;
  metrics_histogram_add(f, counts, d->late_sum / 1000.0);
}

static void metrics_detach(lua_State *L, mw_dispatcher *d) {
  metrics_collector_remove(&d->metrics);
  luaL_unref(L, LUA_REGISTRYINDEX, d->metrics_ref);
  d->metrics_ref = LUA_NOREF;
}

/* The body of a check task: monitor:check(), looked up at each tick so a
 * spy or stub put in place later is the one called. */
static int check_done(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 1;
}

/* Returns the check's first result: nil or false counts the target down. */
static int check_run(lua_State *L) {
  lua_getfield(L, 1, "check");
  lua_insert(L, 1);
  lua_callk(L, 1, 1, 0, check_done);
  return 1;
}

static void report_failure(mw_dispatcher *d, slot *s, mw_task *task) {
  lua_State *L = d->loop->L;
  lua_State *co = task->co;
  if (d->on_error_ref == LUA_NOREF) {
    fprintf(stderr, "moonwatch: a monitor check failed: %s\n", lua_tostring(co, -1));
    return;
  }
  lua_checkstack(L, 5);
  lua_rawgeti(L, LUA_REGISTRYINDEX, d->on_error_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->monitor_ref);
  lua_pushvalue(co, -1); /* traceback */
  lua_pushvalue(co, -3); /* error object */
  lua_xmove(co, L, 2);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    fprintf(stderr, "moonwatch: the dispatcher's on_error handler failed: %s\n",
            lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}

static void slot_check_done(mw_task *task, void *data) {
  slot *s = data;
  s->running = NULL;
  if (task->state == MW_TASK_FAILED) {
    s->d->failed++;
    report_failure(s->d, s, task);
  } else if (task->state == MW_TASK_CANCELLED) {
    s->d->cancelled++;
  } else if (task->nresults > 0 && !lua_toboolean(task->co, -task->nresults)) {
    s->d->down++; /* check returned nil or false: what it watches is down */
  }
}

/* One tick of s, taken off the heap: its check starts (or the tick is
 * skipped), and its next tick goes back on the heap. */
static void slot_tick(mw_dispatcher *d, slot *s, uint64_t now) {
  d->scheduled++;
  if (s->running) {
    d->skipped++;
  } else {
    late_record(d, (double)uv_hrtime() / 1e6 - (double)s->due_ms);
    d->run++;
    d->turn_started++;
    lua_State *L = d->loop->L;
    lua_pushcfunction(L, check_run);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->monitor_ref);
    mw_task *task = task_new_pooled(L, 1);
    lua_pop(L, 1);
    task->on_done = slot_check_done;
    task->on_done_data = s;
    task->budget_ns = s->budget_ns;
    s->running = task;
    task_start(task);
  }
  if (!d->started || s->scheduled) /* the check stopped or restarted it */
    return;
  s->due_ms += s->interval_ms;
  if (s->due_ms <= now) {
    /* The loop fell a whole interval behind: skip the missed ticks rather
     * than run them in a burst. */
    uint64_t missed = (now - s->due_ms) / s->interval_ms + 1;
    s->due_ms += missed * s->interval_ms;
    d->scheduled += missed;
    d->skipped += missed;
  }
  heap_push(d, s);
}

static void dispatcher_on_timer(uv_timer_t *timer);
static void dispatcher_on_resume(uv_idle_t *idle);

/* Arms the timer for the earliest tick, unless the next turn resumes. */
static void dispatcher_arm(mw_dispatcher *d, uint64_t now) {
  if (!d->started || uv_is_active((uv_handle_t *)&d->resume))
    return;
  const mw_tick *top = tick_heap_top(&d->heap);
  if (!top) {
    uv_timer_stop(&d->timer);
    return;
  }
  uint64_t due = top->due_ms;
  /* never 0 ms: libuv 1.44 spins on a 0 ms timer started from a timer
   * callback */
  uv_timer_start(&d->timer, dispatcher_on_timer, due > now ? due - now : 1, 0);
}

/* Starts every check that is due, TURN_BUDGET per loop turn at most. */
static void dispatcher_run_due(mw_dispatcher *d) {
  mw_loop *loop = d->loop;
  uint64_t now = uv_now(&loop->uv);
  if (d->turn != loop->turn) {
    d->turn = loop->turn;
    d->turn_started = 0;
  }
  const mw_tick *top;
  while (d->started && (top = tick_heap_top(&d->heap)) && top->due_ms <= now) {
    if (!((slot *)top->item)->running && d->turn_started >= TURN_BUDGET) {
      /* still due: the rest start in the next turns */
      uv_timer_stop(&d->timer);
      uv_idle_start(&d->resume, dispatcher_on_resume);
      return;
    }
    slot_tick(d, heap_pop(d), now);
  }
  uv_idle_stop(&d->resume);
  dispatcher_arm(d, now);
}

static void dispatcher_on_timer(uv_timer_t *timer) {
  dispatcher_run_due(timer->data);
}

static void dispatcher_on_resume(uv_idle_t *idle) {
  mw_dispatcher *d = idle->data;
  if (d->turn == d->loop->turn) /* this turn's budget is spent */
    return;
  dispatcher_run_due(d);
}

/* now: the loop time, updated by the caller, since d:start() may come long
 * after the loop last ran. One start instant for every monitor keeps the
 * spread exact and costs one clock read, not one per monitor. */
static void slot_start(mw_dispatcher *d, slot *s, uint64_t now) {
  s->due_ms = now + (d->spread ? s->offset_ms : 0);
  if (s->due_ms <= now)
    s->due_ms = now + 1;
  heap_push(d, s);
}

typedef struct {
  mw_dispatcher *d; /* NULL once collected */
} dispatcher_box;

static mw_dispatcher *check_dispatcher(lua_State *L) {
  dispatcher_box *box = luaL_checkudata(L, 1, DISPATCHER_MT);
  if (!box->d)
    luaL_error(L, "dispatcher: already collected");
  return box->d;
}

/* core.dispatcher{ on_error = function(monitor, traceback, err) end,
 * spread = true } */
static int l_new(lua_State *L) {
  lua_settop(L, 1);
  if (!lua_isnoneornil(L, 1))
    luaL_checktype(L, 1, LUA_TTABLE);
  mw_loop *loop = loop_get(L);
  dispatcher_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->d = NULL;
  luaL_setmetatable(L, DISPATCHER_MT);
  mw_dispatcher *d = calloc(1, sizeof *d);
  if (!d)
    return luaL_error(L, "core.dispatcher: out of memory");
  box->d = d;
  d->loop = loop;
  d->self_ref = LUA_NOREF;
  d->on_error_ref = LUA_NOREF;
  d->metrics_ref = LUA_NOREF;
  list_init(&d->metrics.link);
  d->spread = 1;
  uv_timer_init(&loop->uv, &d->timer);
  d->timer.data = d;
  uv_idle_init(&loop->uv, &d->resume);
  d->resume.data = d;
  if (lua_istable(L, 1)) {
    if (lua_getfield(L, 1, "on_error") != LUA_TNIL) {
      luaL_argexpected(L, lua_isfunction(L, -1), 1, "on_error to be a function");
      d->on_error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
      lua_pop(L, 1);
    }
    if (lua_getfield(L, 1, "spread") != LUA_TNIL)
      d->spread = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  return 1;
}

/* d:add(monitor, { interval = seconds, name = "...", cpu_budget = seconds })
 * -> index */
static int l_add(lua_State *L) {
  mw_dispatcher *d = check_dispatcher(L);
  luaL_checkany(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_getfield(L, 3, "name");
  size_t name_len = 0;
  const char *name = lua_tolstring(L, -1, &name_len);
  lua_getfield(L, 3, "interval");
  int isnum = 0;
  lua_Number interval = lua_tonumberx(L, -1, &isnum);
  /* Ticks are whole milliseconds: a shorter interval would silently become
   * one. */
  if (!isnum || !(interval >= 0.001) || interval > 86400 * 365)
    return luaL_error(L,
                      "dispatcher:add: monitor '%s': interval must be a number of seconds "
                      "greater than 0, from 0.001 (the scheduler's resolution) to one year, "
                      "got %s",
                      name ? name : "?", luaL_tolstring(L, -1, NULL));
  uint64_t budget_ns = 0;
  if (lua_getfield(L, 3, "cpu_budget") != LUA_TNIL) {
    budget_ns = task_check_budget(L, -1, "dispatcher:add: cpu_budget");
    if (!budget_ns)
      budget_ns = MW_TASK_NO_BUDGET;
  }
  lua_pop(L, 1);
  if (!d->nfree && d->n == d->cap) {
    int cap = d->cap ? d->cap * 2 : 16;
    slot **slots = realloc(d->slots, (size_t)cap * sizeof *slots);
    if (!slots)
      return luaL_error(L, "dispatcher:add: out of memory");
    d->slots = slots;
    if (!tick_heap_reserve(&d->heap, cap))
      return luaL_error(L, "dispatcher:add: out of memory");
    /* room for every id to be freed: a remove never allocates */
    int *free_ids = realloc(d->free, (size_t)cap * sizeof *free_ids);
    if (!free_ids)
      return luaL_error(L, "dispatcher:add: out of memory");
    d->free = free_ids;
    d->cap = cap;
  }
  slot *s = calloc(1, sizeof *s);
  if (!s)
    return luaL_error(L, "dispatcher:add: out of memory");
  s->d = d;
  s->index = d->nfree ? d->free[--d->nfree] : d->n + 1;
  s->interval_ms = (uint64_t)(interval * 1000.0 + 0.5);
  s->budget_ns = budget_ns;
  /* Spread first runs over the interval, the same way on every start. */
  uint32_t h = name ? hash_bytes(name, name_len) : (uint32_t)s->index * 2654435761u;
  s->offset_ms = h % s->interval_ms;
  lua_pushvalue(L, 2);
  s->monitor_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  d->slots[s->index - 1] = s;
  if (s->index > d->n)
    d->n = s->index;
  d->live++;
  if (d->started) {
    uv_update_time(&d->loop->uv);
    uint64_t now = uv_now(&d->loop->uv);
    slot_start(d, s, now);
    dispatcher_arm(d, now);
  }
  lua_pushinteger(L, s->index);
  return 1;
}

/* d:remove(id) -> whether a running check was cancelled. The check's tick
 * leaves the heap and its task is cancelled without reporting (no result
 * comes of it). A check cannot remove itself while its Lua runs: its tick
 * is still being handled below it on the C stack. */
static int l_remove(lua_State *L) {
  mw_dispatcher *d = check_dispatcher(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  slot *s = id >= 1 && id <= d->n ? d->slots[id - 1] : NULL;
  if (!s)
    return luaL_error(L, "dispatcher:remove: no check with id %d", (int)id);
  if (s->running && s->running->state == MW_TASK_RUNNING)
    return luaL_error(L,
                      "dispatcher:remove: check %d is running Lua right now (a check "
                      "cannot remove itself)",
                      (int)id);
  if (s->scheduled)
    tick_heap_remove(&d->heap, s);
  int cancelled = 0;
  if (s->running) {
    s->running->on_done = NULL;
    if (task_cancel(s->running)) {
      d->cancelled++;
      cancelled = 1;
    }
  }
  luaL_unref(L, LUA_REGISTRYINDEX, s->monitor_ref);
  d->slots[id - 1] = NULL;
  d->free[d->nfree++] = (int)id;
  d->live--;
  free(s);
  if (d->started) {
    uv_update_time(&d->loop->uv);
    dispatcher_arm(d, uv_now(&d->loop->uv));
  }
  lua_pushboolean(L, cancelled);
  return 1;
}

static int l_start(lua_State *L) {
  mw_dispatcher *d = check_dispatcher(L);
  if (d->started)
    return 0;
  d->started = 1;
  lua_pushvalue(L, 1);
  d->self_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* alive while its timers run */
  uv_update_time(&d->loop->uv);
  uint64_t now = uv_now(&d->loop->uv);
  for (int i = 0; i < d->n; i++)
    if (d->slots[i])
      slot_start(d, d->slots[i], now);
  dispatcher_arm(d, now);
  return 0;
}

static int dispatcher_stop(lua_State *L, mw_dispatcher *d) {
  int cancelled = 0;
  d->started = 0;
  uv_timer_stop(&d->timer);
  uv_idle_stop(&d->resume);
  for (int i = 0; i < d->heap.n; i++)
    ((slot *)d->heap.ticks[i].item)->scheduled = 0;
  d->heap.n = 0;
  for (int i = 0; i < d->n; i++) {
    slot *s = d->slots[i];
    if (s && s->running && task_cancel(s->running))
      cancelled++;
  }
  luaL_unref(L, LUA_REGISTRYINDEX, d->self_ref);
  d->self_ref = LUA_NOREF;
  return cancelled;
}

/* d:stop() -> number of running checks cancelled. The loop then ends by
 * itself once nothing else is pending. */
static int l_stop(lua_State *L) {
  lua_pushinteger(L, dispatcher_stop(L, check_dispatcher(L)));
  return 1;
}

/* d:next_due(id) -> seconds until the monitor's next tick (0 when it is
 * due), or nil when none is scheduled (stopped, or its check is running
 * past its tick). */
static int l_next_due(lua_State *L) {
  mw_dispatcher *d = check_dispatcher(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  const slot *s = id >= 1 && id <= d->n ? d->slots[id - 1] : NULL;
  luaL_argcheck(L, s != NULL, 2, "no check has that id");
  if (!d->started || !s->scheduled)
    return 0;
  double now_ms = (double)uv_hrtime() / 1e6;
  double left = ((double)s->due_ms - now_ms) / 1000.0;
  lua_pushnumber(L, left > 0 ? left : 0);
  return 1;
}

static void set_int(lua_State *L, const char *key, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, key);
}

/* d:stats() -> counters, and schedule lateness in milliseconds */
static int l_stats(lua_State *L) {
  mw_dispatcher *d = check_dispatcher(L);
  int running = 0;
  for (int i = 0; i < d->n; i++)
    running += d->slots[i] && d->slots[i]->running != NULL;
  lua_createtable(L, 0, 9);
  set_int(L, "monitors", (uint64_t)d->live);
  set_int(L, "scheduled", d->scheduled);
  set_int(L, "run", d->run);
  set_int(L, "skipped", d->skipped);
  set_int(L, "failed", d->failed);
  set_int(L, "down", d->down);
  set_int(L, "cancelled", d->cancelled);
  set_int(L, "running", (uint64_t)running);
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, late_quantile(d, 0.5));
  lua_setfield(L, -2, "p50");
  lua_pushnumber(L, late_quantile(d, 0.99));
  lua_setfield(L, -2, "p99");
  lua_pushnumber(L, d->late_max);
  lua_setfield(L, -2, "max");
  lua_setfield(L, -2, "lateness");
  return 1;
}

/* d:metrics(registry): the schedule's figures go to the registry's
 * renders (one registry at a time; a second call moves them). */
static int l_metrics(lua_State *L) {
  mw_dispatcher *d = check_dispatcher(L);
  mw_metrics *m = metrics_lua_check(L, 2);
  metrics_detach(L, d);
  lua_pushvalue(L, 2);
  d->metrics_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  metrics_collector_add(m, &d->metrics, collect_metrics, d);
  return 0;
}

static void dispatcher_on_close(uv_handle_t *handle) {
  mw_dispatcher *d = handle->data;
  if (--d->closing == 0)
    free(d);
}

static int l_gc(lua_State *L) {
  dispatcher_box *box = luaL_checkudata(L, 1, DISPATCHER_MT);
  mw_dispatcher *d = box->d;
  if (!d)
    return 0;
  box->d = NULL;
  for (int i = 0; i < d->n; i++) {
    slot *s = d->slots[i];
    if (!s)
      continue;
    if (s->running) {
      s->running->on_done = NULL;
      task_cancel(s->running);
      s->running = NULL;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, s->monitor_ref);
    free(s);
  }
  luaL_unref(L, LUA_REGISTRYINDEX, d->on_error_ref);
  metrics_detach(L, d);
  free(d->slots);
  free(d->free);
  d->free = NULL;
  tick_heap_free(&d->heap);
  d->slots = NULL;
  d->n = 0;
  d->started = 0;
  d->closing = 2;
  uv_close((uv_handle_t *)&d->timer, dispatcher_on_close);
  uv_close((uv_handle_t *)&d->resume, dispatcher_on_close);
  return 0;
}

void dispatch_register(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"add", l_add},     {"remove", l_remove},     {"start", l_start},     {"stop", l_stop},
      {"stats", l_stats}, {"next_due", l_next_due}, {"metrics", l_metrics}, {NULL, NULL}};
  if (luaL_newmetatable(L, DISPATCHER_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "dispatcher");
}
