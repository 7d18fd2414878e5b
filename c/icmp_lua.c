/* L4: core.ping{ host, count, interval, timeout }: the task waits while
 * icmp.c sends the echo requests and collects the replies. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "icmp.h"
#include "icmp_lua.h"
#include "opts.h"
#include "resolver.h"
#include "task.h"

#define WHAT "core.ping"

static const char *const option_names[] = {"host", "count", "interval", "timeout", NULL};

typedef struct {
  mw_icmp *icmp;
  mw_task *task;
  uint64_t started; /* uv_hrtime */
  mw_list link;     /* in the loop's pings */
} ping_wait;

typedef struct {
  mw_list waits;
  mw_hook closer;
} wait_set;

static const char set_key = 'p';

static void wait_end(ping_wait *w) {
  list_remove(&w->link);
  free(w);
}

static void set_number(lua_State *co, const char *key, double v) {
  lua_pushnumber(co, v);
  lua_setfield(co, -2, key);
}

static void push_result(lua_State *co, const mw_icmp_result *res, double total) {
  lua_createtable(co, 0, 9);
  lua_pushstring(co, res->address);
  lua_setfield(co, -2, "address");
  lua_pushstring(co, res->socket);
  lua_setfield(co, -2, "socket");
  lua_pushinteger(co, res->sent);
  lua_setfield(co, -2, "sent");
  lua_pushinteger(co, res->received);
  lua_setfield(co, -2, "received");
  set_number(co, "loss", res->sent ? 100.0 * (res->sent - res->received) / res->sent : 100.0);
  double min = 0, max = 0, sum = 0;
  lua_createtable(co, res->sent, 0);
  for (int i = 0; i < res->sent; i++) {
    double rtt = res->rtt[i];
    if (rtt >= 0) {
      if (sum == 0 || rtt < min)
        min = rtt;
      if (rtt > max)
        max = rtt;
      sum += rtt;
      lua_pushnumber(co, rtt);
    } else {
      lua_pushboolean(co, 0);
    }
    lua_rawseti(co, -2, i + 1);
  }
  lua_setfield(co, -2, "rtts");
  if (res->received > 0) {
    lua_createtable(co, 0, 3);
    set_number(co, "min", min);
    set_number(co, "avg", sum / res->received);
    set_number(co, "max", max);
    lua_setfield(co, -2, "rtt");
  }
  lua_createtable(co, 0, 1);
  set_number(co, "total", total);
  lua_setfield(co, -2, "time");
}

static void on_done(void *data, const mw_icmp_result *res, const char *kind, const char *error) {
  ping_wait *w = data;
  mw_task *task = w->task;
  lua_State *co = task->co;
  lua_checkstack(co, 6);
  int n = 1;
  if (res) {
    push_result(co, res, (double)(uv_hrtime() - w->started) / 1e9);
  } else {
    lua_pushnil(co);
    lua_pushfstring(co, "%s: %s", kind, error);
    lua_pushstring(co, kind);
    n = 3;
  }
  wait_end(w);
  task_resume(task, n);
}

static void on_cancel(void *data) {
  ping_wait *w = data;
  icmp_cancel(w->icmp);
  wait_end(w);
}

/* Closes before the resolver: no ping is left waiting on it. */
static void set_close(mw_loop *loop, void *data) {
  wait_set *set = data;
  mw_list *node;
  while ((node = list_first(&set->waits))) {
    ping_wait *w = list_entry(node, ping_wait, link);
    if (w->task)
      task_cancel(w->task); /* its on_cancel ends the wait */
    if (list_first(&set->waits) == node)
      on_cancel(w);
  }
  loop_set_ext(loop, &set_key, NULL);
  free(set);
}

static wait_set *set_get(lua_State *L, mw_loop *loop) {
  wait_set *set = loop_ext(loop, &set_key);
  if (set)
    return set;
  const char *error = NULL;
  if (!resolver_get(loop, &error))
    luaL_error(L, WHAT ": %s", error);
  set = calloc(1, sizeof *set);
  if (!set)
    luaL_error(L, WHAT ": out of memory");
  list_init(&set->waits);
  loop_set_ext(loop, &set_key, set);
  loop_at_close(loop, &set->closer, set_close, set);
  return set;
}

static double opt_seconds(lua_State *L, const char *name, double def, double min, double max) {
  double v = def;
  if (lua_getfield(L, 1, name) != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) >= min) ||
        lua_tonumber(L, -1) > max)
      luaL_error(L, WHAT ": option '%s' must be a number of seconds from %f to %f", name, min, max);
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

typedef struct {
  const char *host;
  int count;
  double interval, timeout;
} ping_opts;

/* Reads the options table at 1; raises naming what is wrong. */
static void check_options(lua_State *L, ping_opts *o) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  opts_check_known(L, 1, option_names, WHAT);
  size_t len = 0;
  o->host = lua_getfield(L, 1, "host") == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (!o->host || len == 0 || strlen(o->host) != len)
    luaL_error(L, WHAT ": option 'host' must be a host name or an IP address");
  lua_pop(L, 1); /* the options table keeps it */
  o->count = 3;
  if (lua_getfield(L, 1, "count") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
        lua_tointeger(L, -1) > MW_ICMP_COUNT_MAX)
      luaL_error(L, WHAT ": option 'count' must be an integer from 1 to %d", MW_ICMP_COUNT_MAX);
    o->count = (int)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  o->interval = opt_seconds(L, "interval", 1, 0.01, 60);
  o->timeout = opt_seconds(L, "timeout", 1, 0.01, 60);
}

/* core.ping_check(options) -> true, or raises as core.ping would */
static int l_ping_check(lua_State *L) {
  ping_opts o;
  check_options(L, &o);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.ping{ host = "127.0.0.1", count = 3, interval = 1, timeout = 1 }
 * -> result | nil, message, kind */
static int l_ping(lua_State *L) {
  ping_opts o;
  check_options(L, &o);
  mw_task *task = task_check_current(L, WHAT);
  mw_loop *loop = loop_check_open(L);
  wait_set *set = set_get(L, loop);
  ping_wait *w = calloc(1, sizeof *w);
  if (!w)
    return luaL_error(L, WHAT ": out of memory");
  w->started = uv_hrtime();
  const char *kind = NULL, *error = NULL;
  w->icmp = icmp_start(loop, o.host, o.count, o.interval, o.timeout, on_done, w, &kind, &error);
  if (!w->icmp) {
    free(w);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", kind, error);
    lua_pushstring(L, kind);
    return 3;
  }
  w->task = task;
  list_push_front(&set->waits, &w->link);
  task_wait(task, on_cancel, w);
  return lua_yield(L, 0);
}

void icmp_lua_register(lua_State *L) {
  lua_pushcfunction(L, l_ping);
  lua_setfield(L, -2, "ping");
  lua_pushcfunction(L, l_ping_check);
  lua_setfield(L, -2, "ping_check");
}
