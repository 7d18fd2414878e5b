/* L4: the Lua side of TCP probes: core.tcp_check (a probe the calling task
 * waits for) and core.tcp_validate (its options checked, nothing sent).
 * Options are checked here and results become tables here; tcp.c probes. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "cert.h"
#include "opts.h"
#include "task.h"
#include "tcp.h"
#include "tcp_lua.h"

#define WHAT "tcp check"
#define DEFAULT_TIMEOUT 10.0
#define DEFAULT_READ_MAX 4096
#define READ_MAX_LIMIT (16 * 1024 * 1024)

static const char *const option_names[] = {"host",       "port",     "tls",  "server_name",
                                           "ca_file",    "insecure", "send", "read_max",
                                           "read_until", "timeout",  NULL};

/* The probes of a loop in flight: their tasks are cancelled when it closes. */
typedef struct {
  mw_list inflight;
  mw_hook closer;
} probe_set;

typedef struct {
  mw_list link;
  mw_task *task;
  mw_tcp *tcp;
} probe_wait;

static const char set_key = 'P';

static void set_close(mw_loop *loop, void *data) {
  probe_set *set = data;
  mw_list *node;
  while ((node = list_first(&set->inflight)))
    task_cancel(list_entry(node, probe_wait, link)->task); /* on_wait_cancel unlinks it */
  loop_set_ext(loop, &set_key, NULL);
  free(set);
}

static probe_set *set_get(lua_State *L) {
  mw_loop *loop = loop_check_open(L);
  probe_set *set = loop_ext(loop, &set_key);
  if (set)
    return set;
  set = calloc(1, sizeof *set);
  if (!set)
    luaL_error(L, WHAT ": out of memory");
  list_init(&set->inflight);
  loop_set_ext(loop, &set_key, set);
  loop_at_close(loop, &set->closer, set_close, set);
  return set;
}

/* Results */

static void set_number(lua_State *co, const char *key, double value) {
  lua_pushnumber(co, value);
  lua_setfield(co, -2, key);
}

static void set_string(lua_State *co, const char *key, const char *value) {
  if (!value)
    return;
  lua_pushstring(co, value);
  lua_setfield(co, -2, key);
}

static void push_result(lua_State *co, const mw_tcp_result *res) {
  lua_checkstack(co, 8);
  lua_createtable(co, 0, 12);
  set_string(co, "ip", res->ip);
  lua_pushinteger(co, res->port);
  lua_setfield(co, -2, "port");
  if (res->reply) {
    lua_pushlstring(co, res->reply, res->reply_len);
    lua_setfield(co, -2, "reply");
    lua_pushinteger(co, (lua_Integer)res->reply_len);
    lua_setfield(co, -2, "size");
  }
  set_string(co, "ended", res->ended);
  set_string(co, "tls_version", res->tls_version);
  set_string(co, "cipher", res->cipher);
  if (res->ssl) {
    cert_push_facts(co, res->ssl);
    lua_getfield(co, -1, "expiry");
    lua_setfield(co, -3, "cert_expiry");
    lua_setfield(co, -2, "cert");
  }
  lua_createtable(co, 0, 5);
  set_number(co, "dns", res->dns);
  set_number(co, "connect", res->connect);
  set_number(co, "tls", res->tls);
  set_number(co, "first_byte", res->first_byte);
  set_number(co, "total", res->total);
  lua_setfield(co, -2, "time");
}

static void on_done(const mw_tcp_result *res, const char *kind, const char *message, void *data) {
  probe_wait *w = data;
  mw_task *task = w->task;
  lua_State *co = task->co;
  list_remove(&w->link);
  free(w);
  if (!kind) {
    push_result(co, res);
    task_resume(task, 1);
    return;
  }
  lua_checkstack(co, 4);
  lua_pushnil(co);
  lua_pushfstring(co, "%s: %s", kind, message);
  lua_pushstring(co, kind);
  push_result(co, res);
  task_resume(task, 4);
}

static void on_wait_cancel(void *data) {
  probe_wait *w = data;
  tcp_abort(w->tcp);
  list_remove(&w->link);
  free(w);
}

/* Options */

/* The option's string (kept alive by the options table), or NULL. */
static const char *opt_string(lua_State *L, const char *name, size_t *len, int binary) {
  int t = lua_getfield(L, 1, name);
  const char *v = NULL;
  size_t n = 0;
  if (t != LUA_TNIL) {
    if (t != LUA_TSTRING)
      opts_error(L, WHAT, name, "a string");
    v = lua_tolstring(L, -1, &n);
    if (!binary && strlen(v) != n)
      luaL_error(L, WHAT ": option '%s' must not contain a NUL byte", name);
  }
  lua_pop(L, 1);
  if (len)
    *len = n;
  return v;
}

/* Reads and checks every option; raises the error a bad one gives. The
 * strings stay referenced by the options table at index 1, the host (its
 * brackets taken off) by index 2. */
static void options_read(lua_State *L, mw_tcp_options *o) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  opts_check_known(L, 1, option_names, WHAT);
  memset(o, 0, sizeof *o);
  size_t len = 0;
  const char *host = opt_string(L, "host", &len, 0);
  if (!host)
    luaL_error(L, WHAT ": option 'host' is required");
  if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
    host++;
    len -= 2;
  }
  if (len == 0)
    luaL_error(L, WHAT ": option 'host' must not be empty");
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)host[i] <= ' ' || host[i] == '/' || host[i] == 0x7f)
      luaL_error(L, WHAT ": option 'host' must be a host name or an IP address, got '%s'", host);
  lua_pushlstring(L, host, len);
  o->host = lua_tostring(L, 2);
  lua_getfield(L, 1, "port");
  if (lua_isnil(L, -1))
    luaL_error(L, WHAT ": option 'port' is required");
  if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > 65535)
    opts_error(L, WHAT, "port", "an integer from 1 to 65535");
  o->port = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  o->tls = opts_bool(L, 1, WHAT, "tls", 0);
  o->insecure = opts_bool(L, 1, WHAT, "insecure", 0);
  o->server_name = opt_string(L, "server_name", NULL, 0);
  o->ca_file = opt_string(L, "ca_file", NULL, 0);
  if (!o->tls && (o->server_name || o->ca_file || o->insecure))
    luaL_error(L, WHAT ": option '%s' needs tls = true",
               o->server_name ? "server_name"
               : o->ca_file   ? "ca_file"
                              : "insecure");
  if (o->server_name && !*o->server_name)
    luaL_error(L, WHAT ": option 'server_name' must not be empty");
  o->send = opt_string(L, "send", &o->send_len, 1);
  o->read_until = opt_string(L, "read_until", &o->read_until_len, 1);
  lua_Integer read_max = o->send || o->read_until ? DEFAULT_READ_MAX : 0;
  if (lua_getfield(L, 1, "read_max") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > READ_MAX_LIMIT)
      opts_error(L, WHAT, "read_max", "a number of bytes from 0 to 16777216");
    read_max = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  o->read_max = (size_t)read_max;
  if (!o->read_until) {
    o->read_until = "\n"; /* a line: a banner, +PONG */
    o->read_until_len = 1;
  }
  o->timeout = DEFAULT_TIMEOUT;
  if (lua_getfield(L, 1, "timeout") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0) || lua_tonumber(L, -1) > 86400)
      opts_error(L, WHAT, "timeout", "a number of seconds in (0, 86400]");
    o->timeout = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
}

/* core.tcp_validate(options) -> true: raises the error tcp_check would,
 * without probing (for --check and monitor constructors). */
static int l_validate(lua_State *L) {
  mw_tcp_options o;
  options_read(L, &o);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.tcp_check(options) -> result | nil, message, kind, result */
static int l_check(lua_State *L) {
  mw_tcp_options o;
  options_read(L, &o);
  mw_task *task = task_check_current(L, "core.tcp_check");
  probe_set *set = set_get(L);
  probe_wait *w = calloc(1, sizeof *w);
  if (!w)
    return luaL_error(L, WHAT ": out of memory");
  const char *kind = NULL;
  char error[768];
  w->task = task;
  w->tcp = tcp_start(task->loop, &o, on_done, w, &kind, error, sizeof error);
  if (!w->tcp) {
    free(w);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", kind, error);
    lua_pushstring(L, kind);
    return 3;
  }
  list_push_front(&set->inflight, &w->link);
  task_wait(task, on_wait_cancel, w);
  return lua_yield(L, 0);
}

void tcp_lua_register(lua_State *L) {
  lua_pushcfunction(L, l_check);
  lua_setfield(L, -2, "tcp_check");
  lua_pushcfunction(L, l_validate);
  lua_setfield(L, -2, "tcp_validate");
}
