/* L4: core.dns_query{ name, type, server, timeout }: the task waits for the
 * answer (dns_send.c) or its timeout, and gets the answer as a table
 * (dns_answer.c). */
#include <arpa/inet.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_answer.h"
#include "dns_lua.h"
#include "dns_send.h"
#include "opts.h"
#include "task.h"

#define WHAT "core.dns_query"
#define DEFAULT_TIMEOUT 5.0

static const char *const option_names[] = {"name", "type", "server", "timeout", NULL};

/* A waiting query; freed in its timer's close callback. */
typedef struct {
  uv_timer_t timer;
  mw_task *task;     /* NULL once resumed or cancelled */
  mw_dns_send *send; /* NULL once answered or abandoned */
  int qtype;
  double timeout;   /* seconds */
  uint64_t started; /* uv_hrtime */
  mw_list link;     /* in the loop's waits */
} dns_wait;

typedef struct {
  mw_list waits;
  mw_hook closer;
} wait_set;

static const char set_key = 'q';

static void wait_free(uv_handle_t *handle) {
  free(handle->data);
}

/* Ends the wait: the query is given up, the timer closes. */
static void wait_end(dns_wait *w) {
  if (w->send)
    dns_send_cancel(w->send);
  w->send = NULL;
  w->task = NULL;
  list_remove(&w->link);
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, wait_free);
}

static void push_failure(lua_State *co, const char *kind, const char *message) {
  lua_pushnil(co);
  lua_pushfstring(co, "%s: %s", kind, message);
  lua_pushstring(co, kind);
}

static void on_answer(void *data, const unsigned char *abuf, int alen, const char *kind,
                      const char *error) {
  dns_wait *w = data;
  mw_task *task = w->task;
  lua_State *co = task->co;
  w->send = NULL;
  int n = 3;
  lua_checkstack(co, 4);
  if (!abuf) {
    push_failure(co, kind, error);
  } else if (dns_answer_push(co, abuf, alen, w->qtype, &error) != 0) {
    lua_pushnil(co);
    lua_pushfstring(co, "protocol: malformed DNS answer (%s)", error);
    lua_pushliteral(co, "protocol");
  } else {
    lua_createtable(co, 0, 1);
    lua_pushnumber(co, (double)(uv_hrtime() - w->started) / 1e9);
    lua_setfield(co, -2, "total");
    lua_setfield(co, -2, "time");
    n = 1;
  }
  wait_end(w);
  task_resume(task, n);
}

static void on_timeout(uv_timer_t *timer) {
  dns_wait *w = timer->data;
  mw_task *task = w->task;
  char text[64];
  snprintf(text, sizeof text, "timeout: no answer within %g s", w->timeout);
  lua_checkstack(task->co, 3);
  lua_pushnil(task->co);
  lua_pushstring(task->co, text);
  lua_pushliteral(task->co, "timeout");
  wait_end(w);
  task_resume(task, 3);
}

static void on_cancel(void *data) {
  wait_end(data);
}

/* Closes before the query channels (registered after them): no task waits
 * when c-ares ends its queries. */
static void set_close(mw_loop *loop, void *data) {
  wait_set *set = data;
  mw_list *node;
  while ((node = list_first(&set->waits))) {
    dns_wait *w = list_entry(node, dns_wait, link);
    if (w->task)
      task_cancel(w->task); /* its on_cancel ends the wait */
    if (list_linked(&w->link))
      wait_end(w);
  }
  loop_set_ext(loop, &set_key, NULL);
  free(set);
}

static wait_set *set_get(lua_State *L, mw_loop *loop) {
  wait_set *set = loop_ext(loop, &set_key);
  if (set)
    return set;
  const char *error = NULL;
  if (dns_send_open(loop, &error) != 0)
    luaL_error(L, WHAT ": %s", error);
  set = calloc(1, sizeof *set);
  if (!set)
    luaL_error(L, WHAT ": out of memory");
  list_init(&set->waits);
  loop_set_ext(loop, &set_key, set);
  loop_at_close(loop, &set->closer, set_close, set);
  return set;
}

/* server "host[:port]" (IPv4, IPv6, [IPv6]:port) as c-ares's csv in out. */
static int parse_server(const char *s, char *out, size_t cap) {
  char host[INET6_ADDRSTRLEN + 1];
  const char *port = NULL;
  size_t hlen;
  int v6;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close || (close[1] && close[1] != ':'))
      return -1;
    hlen = (size_t)(close - s - 1);
    s++;
    port = close[1] ? close + 2 : NULL;
    v6 = 1;
  } else {
    const char *colon = strchr(s, ':');
    v6 = colon && strchr(colon + 1, ':');
    hlen = v6 || !colon ? strlen(s) : (size_t)(colon - s);
    port = v6 || !colon ? NULL : colon + 1;
  }
  if (hlen == 0 || hlen >= sizeof host)
    return -1;
  memcpy(host, s, hlen);
  host[hlen] = '\0';
  unsigned char addr[16];
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
    return -1;
  long p = 53;
  if (port) {
    char *end;
    p = strtol(port, &end, 10);
    if (!*port || *end || p < 1 || p > 65535)
      return -1;
  }
  snprintf(out, cap, v6 ? "[%s]:%ld" : "%s:%ld", host, p);
  return 0;
}

static const char *opt_string(lua_State *L, const char *name, int required) {
  int t = lua_getfield(L, 1, name);
  if (t == LUA_TNIL && !required) {
    lua_pop(L, 1);
    return NULL;
  }
  size_t len = 0;
  const char *v = t == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (!v || len == 0 || strlen(v) != len)
    luaL_error(L, WHAT ": option '%s' must be a non-empty string, got %s", name,
               t == LUA_TSTRING ? "an empty string or one with a NUL byte" : luaL_typename(L, -1));
  lua_pop(L, 1); /* the options table keeps it alive */
  return v;
}

typedef struct {
  const char *name;
  int qtype;
  int has_server;
  char servers[INET6_ADDRSTRLEN + 16];
  double timeout;
} query_opts;

/* Reads the options table at 1; raises naming what is wrong. */
static void check_options(lua_State *L, query_opts *o) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  opts_check_known(L, 1, option_names, WHAT);
  o->name = opt_string(L, "name", 1);
  const char *type = opt_string(L, "type", 0);
  const char *server = opt_string(L, "server", 0);
  o->qtype = dns_answer_type(type ? type : "A");
  if (!o->qtype)
    luaL_error(L,
               WHAT ": option 'type' must be A, AAAA, CNAME, MX, TXT, NS, SOA, SRV or CAA, "
                    "got '%s'",
               type);
  o->has_server = server != NULL;
  if (server && parse_server(server, o->servers, sizeof o->servers) != 0)
    luaL_error(L,
               WHAT ": option 'server' must be an IP address with an optional port "
                    "(127.0.0.1, 127.0.0.1:5353, ::1, [::1]:5353), got '%s'",
               server);
  o->timeout = DEFAULT_TIMEOUT;
  if (lua_getfield(L, 1, "timeout") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0) || lua_tonumber(L, -1) > 3600)
      luaL_error(L, WHAT ": option 'timeout' must be a number of seconds in (0, 3600]");
    o->timeout = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
}

/* core.dns_check(options) -> true, or raises as core.dns_query would */
static int l_dns_check(lua_State *L) {
  query_opts o;
  check_options(L, &o);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.dns_query{ name = "example.org", type = "A", server = "127.0.0.1:53",
 * timeout = 5 } -> answer | nil, message, kind */
static int l_dns_query(lua_State *L) {
  query_opts o;
  check_options(L, &o);
  int qtype = o.qtype;
  double timeout = o.timeout;
  const char *name = o.name;
  mw_task *task = task_check_current(L, WHAT);
  mw_loop *loop = loop_check_open(L);
  wait_set *set = set_get(L, loop);
  dns_wait *w = calloc(1, sizeof *w);
  if (!w)
    return luaL_error(L, WHAT ": out of memory");
  w->qtype = qtype;
  w->timeout = timeout;
  w->started = uv_hrtime();
  const char *error = NULL;
  w->send =
      dns_send_start(loop, o.has_server ? o.servers : NULL, name, qtype, on_answer, w, &error);
  if (!w->send) {
    free(w);
    push_failure(L, "dns", error);
    return 3;
  }
  w->task = task;
  list_push_front(&set->waits, &w->link);
  uv_timer_init(&loop->uv, &w->timer);
  w->timer.data = w;
  /* From the current time, and 1 ms more: the loop counts whole
   * milliseconds from the start of its cached one (see sleep.c). */
  uv_update_time(&loop->uv);
  uv_timer_start(&w->timer, on_timeout, (uint64_t)(timeout * 1000 + 0.999) + 1, 0);
  task_wait(task, on_cancel, w);
  return lua_yield(L, 0);
}

void dns_lua_register(lua_State *L) {
  lua_pushcfunction(L, l_dns_query);
  lua_setfield(L, -2, "dns_query");
  lua_pushcfunction(L, l_dns_check);
  lua_setfield(L, -2, "dns_check");
}
