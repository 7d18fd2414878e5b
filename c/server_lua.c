/* L4: core.http_server{ listen = "127.0.0.1:0", handler = function(req) end,
 * ... }: options are checked here, server.c serves. The handler answers
 * every path no C route has, in a task of its own per request (it may wait
 * in core calls); what it returns becomes the response, an error in it a
 * 500 and a log record, and request_timeout bounds it (503). */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "opts.h"
#include "server_lua.h"
#include "task.h"

#define SERVER_MT "moonwatch.http_server"
#define WHAT "core.http_server"

static const char *const option_names[] = {"listen",          "handler",
                                           "max_connections", "max_header_bytes",
                                           "max_body_bytes",  "request_timeout",
                                           "idle_timeout",    "auth",
                                           "auth_always",     NULL};
static const char *const auth_names[] = {"bearer", "user", "password", "scope", NULL};

/* The server object's userdata: anchored while the server is open. */
typedef struct {
  mw_server *s; /* NULL once closed */
  mw_loop *loop;
  int self_ref, handler_ref;
} server_box;

/* A request the handler answers: a userdata (so lua_close frees it whatever
 * ran before), anchored while the handler runs. */
typedef struct {
  mw_server_res *res; /* NULL once the response is gone */
  mw_task *task;      /* NULL once the handler ended */
  mw_loop *loop;
  int self_ref;
  char what[96]; /* "GET /path", for the log */
} handler_call;

static void box_on_close(void *data) {
  server_box *box = data;
  lua_State *L = box->loop->L;
  box->s = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, box->handler_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, box->self_ref);
  box->handler_ref = box->self_ref = LUA_NOREF;
}

/* The log record of a handler that failed: through moonwatch.log, as every
 * record is, or on stderr when that cannot load. */
static int log_failure_body(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "moonwatch.log");
  lua_call(L, 1, 1);
  int log = lua_gettop(L);
  lua_getfield(L, log, "get");
  lua_pushliteral(L, "HttpServer");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "error");
  lua_insert(L, -2);
  lua_pushliteral(L, "%s failed (answered %d):\n%s");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_getfield(L, log, "lines");
  lua_pushvalue(L, 3);
  lua_call(L, 1, 1);
  lua_call(L, 5, 0);
  return 0;
}

static void log_failure(lua_State *L, const char *what, int status, const char *message) {
  lua_pushcfunction(L, log_failure_body);
  lua_pushstring(L, what);
  lua_pushinteger(L, status);
  lua_pushstring(L, message);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    fprintf(stderr, "moonwatch: %s failed (answered %d): %s\n", what, status, message);
    lua_pop(L, 1);
  }
}

static void respond_text(mw_server_res *res, int status, const char *text) {
  server_res_start(res, status, "text/plain; charset=utf-8");
  server_res_write(res, text, strlen(text));
  server_res_end(res);
}

static int header_ok(const char *s, size_t n, int name) {
  if (n == 0 && name)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0' || (name && (s[i] == ':' || s[i] == ' ')))
      return 0;
  return 1;
}

/* Checks the handler's return values on co (status, body, headers) before
 * anything is written; NULL when good, else what is wrong. */
static const char *returns_check(lua_State *co, int base, int n) {
  int isnum = 0;
  lua_Integer status = n >= 1 ? lua_tointegerx(co, base, &isnum) : 0;
  if (!isnum || status < 100 || status > 599)
    return "the handler must return a status from 100 to 599 first";
  if (n >= 2 && !lua_isnil(co, base + 1) && lua_type(co, base + 1) != LUA_TSTRING)
    return "the handler's second value (the body) must be a string or nil";
  if (n >= 3 && !lua_isnil(co, base + 2)) {
    if (!lua_istable(co, base + 2))
      return "the handler's third value (the headers) must be a table";
    lua_pushnil(co);
    while (lua_next(co, base + 2)) {
      size_t kn, vn;
      const char *k = lua_type(co, -2) == LUA_TSTRING ? lua_tolstring(co, -2, &kn) : NULL;
      const char *v = lua_type(co, -1) == LUA_TSTRING ? lua_tolstring(co, -1, &vn) : NULL;
      lua_pop(co, 1);
      if (!k || !v || !header_ok(k, kn, 1) || !header_ok(v, vn, 0)) {
        lua_pop(co, 1);
        return "the handler's headers must map names to string values without line breaks";
      }
    }
  }
  return NULL;
}

static void respond_returns(lua_State *co, mw_server_res *res, int n) {
  int base = lua_gettop(co) - n + 1;
  int status = (int)lua_tointeger(co, base);
  const char *ctype = "text/plain; charset=utf-8";
  if (n >= 3 && lua_istable(co, base + 2)) {
    lua_pushnil(co);
    while (lua_next(co, base + 2)) {
      if (strcasecmp(lua_tostring(co, -2), "content-type") == 0)
        ctype = lua_tostring(co, -1);
      lua_pop(co, 1);
    }
  }
  server_res_start(res, status, ctype);
  if (n >= 3 && lua_istable(co, base + 2)) {
    lua_pushnil(co);
    while (lua_next(co, base + 2)) {
      if (strcasecmp(lua_tostring(co, -2), "content-type") != 0)
        server_res_header(res, lua_tostring(co, -2), lua_tostring(co, -1));
      lua_pop(co, 1);
    }
  }
  if (n >= 2 && lua_type(co, base + 1) == LUA_TSTRING) {
    size_t len;
    const char *body = lua_tolstring(co, base + 1, &len);
    server_res_write(res, body, len);
  }
  server_res_end(res);
}

static void call_release(handler_call *call) {
  luaL_unref(call->loop->L, LUA_REGISTRYINDEX, call->self_ref);
  call->self_ref = LUA_NOREF;
}

static void call_on_done(mw_task *task, void *data) {
  handler_call *call = data;
  mw_server_res *res = call->res;
  call->task = NULL;
  call->res = NULL;
  if (res) {
    lua_State *co = task->co;
    lua_checkstack(co, 4);
    if (task->state == MW_TASK_DONE) {
      const char *bad = returns_check(co, lua_gettop(co) - task->nresults + 1, task->nresults);
      if (bad) {
        log_failure(call->loop->L, call->what, 500, bad);
        respond_text(res, 500, "500 Internal Server Error\n");
      } else {
        respond_returns(co, res, task->nresults);
      }
    } else if (task->state == MW_TASK_FAILED) {
      log_failure(call->loop->L, call->what, 500, lua_tostring(co, -1)); /* the traceback */
      respond_text(res, 500, "500 Internal Server Error\n");
    } else {
      respond_text(res, 503, "503 Service Unavailable\n");
    }
  }
  call_release(call);
}

/* The response cannot be sent any more (closed, timed out): the handler's
 * task is cancelled. */
static void call_gone(void *data) {
  handler_call *call = data;
  call->res = NULL;
  mw_task *task = call->task;
  if (task) {
    task_cancel(task); /* its on_done releases call */
    return;
  }
  call_release(call);
}

static void push_request(lua_State *L, const mw_server_req *req) {
  lua_createtable(L, 0, 7);
  lua_pushstring(L, server_req_method(req));
  lua_setfield(L, -2, "method");
  lua_pushstring(L, server_req_path(req));
  lua_setfield(L, -2, "path");
  if (server_req_query(req)) {
    lua_pushstring(L, server_req_query(req));
    lua_setfield(L, -2, "query");
  }
  lua_pushstring(L, server_req_remote(req));
  lua_setfield(L, -2, "remote");
  size_t len;
  const char *body = server_req_body(req, &len);
  lua_pushlstring(L, body, len);
  lua_setfield(L, -2, "body");
  int n = server_req_header_count(req);
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    const char *name, *value;
    server_req_header_at(req, i, &name, &value);
    if (lua_getfield(L, -1, name) == LUA_TSTRING) { /* repeated: joined as RFC 9110 allows */
      lua_pushliteral(L, ", ");
      lua_pushstring(L, value);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushstring(L, value);
    }
    lua_setfield(L, -2, name);
  }
  lua_setfield(L, -2, "headers");
}

static void handler_route(void *data, const mw_server_req *req, mw_server_res *res) {
  server_box *box = data;
  lua_State *L = box->loop->L;
  lua_checkstack(L, 6);
  handler_call *call = lua_newuserdatauv(L, sizeof *call, 0);
  memset(call, 0, sizeof *call);
  call->loop = box->loop;
  call->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  snprintf(call->what, sizeof call->what, "handler of %s %.80s", server_req_method(req),
           server_req_path(req));
  lua_rawgeti(L, LUA_REGISTRYINDEX, box->handler_ref);
  push_request(L, req);
  /* started by the loop's next turn, never inside the server's callback */
  mw_task *task = task_spawn(L, 1, 0);
  lua_pop(L, 1);
  task->on_done = call_on_done;
  task->on_done_data = call;
  call->task = task;
  call->res = res;
  server_res_hold(res, call_gone, call);
}

/* Options */

static int opt_error(lua_State *L, const char *name, const char *want) {
  return luaL_error(L, WHAT ": option '%s' must be %s, got %s", name, want,
                    luaL_tolstring(L, -1, NULL));
}

static lua_Integer opt_int(lua_State *L, const char *name, lua_Integer min, lua_Integer max,
                           lua_Integer dflt) {
  lua_getfield(L, 1, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return dflt;
  }
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v < min || v > max) {
    char want[96];
    snprintf(want, sizeof want, "an integer from %lld to %lld", (long long)min, (long long)max);
    opt_error(L, name, want);
  }
  lua_pop(L, 1);
  return v;
}

static double opt_seconds(lua_State *L, const char *name, double dflt) {
  lua_getfield(L, 1, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return dflt;
  }
  int isnum = 0;
  lua_Number v = lua_tonumberx(L, -1, &isnum);
  if (!isnum || !(v >= 0.001) || v > 86400)
    opt_error(L, name, "a number of seconds from 0.001 to 86400");
  lua_pop(L, 1);
  return (double)v;
}

static const char *auth_string(lua_State *L, int idx, const char *key) {
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  size_t n;
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
  if (!s || n == 0 || strlen(s) != n)
    luaL_error(L, WHAT ": option 'auth.%s' must be a non-empty string without NUL bytes", key);
  lua_pop(L, 1); /* the options table keeps it */
  return s;
}

typedef struct {
  const char *bearer, *user, *password;
  mw_server_auth_scope scope;
} auth_opts;

/* auth = { bearer = "..." } | { user = "...", password = "..." }, with
 * scope = "all" (the default) or "marked" (only auth_always paths). The
 * strings stay in the options table. */
static void opt_auth(lua_State *L, auth_opts *a) {
  memset(a, 0, sizeof *a);
  a->scope = MW_SERVER_AUTH_ALL;
  if (lua_getfield(L, 1, "auth") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1))
    opt_error(L, "auth", "a table: { bearer = token } or { user = name, password = secret }");
  int idx = lua_gettop(L);
  opts_check_known(L, idx, auth_names, WHAT ": auth");
  a->bearer = auth_string(L, idx, "bearer");
  a->user = auth_string(L, idx, "user");
  a->password = auth_string(L, idx, "password");
  if (a->bearer && (a->user || a->password))
    luaL_error(L, WHAT ": option 'auth' takes a bearer token or a user and password, not both");
  if (!a->bearer && !(a->user && a->password))
    luaL_error(L, WHAT ": option 'auth' needs bearer, or both user and password");
  if (lua_getfield(L, idx, "scope") != LUA_TNIL) {
    const char *scope = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING || (strcmp(scope, "all") && strcmp(scope, "marked")))
      opt_error(L, "auth.scope", "\"all\" or \"marked\"");
    a->scope = !strcmp(scope, "all") ? MW_SERVER_AUTH_ALL : MW_SERVER_AUTH_MARKED;
  }
  lua_pop(L, 2);
}

/* Checks auth_always (a list of paths); with s, marks them. */
static int opt_auth_always(lua_State *L, mw_server *s) {
  if (lua_getfield(L, 1, "auth_always") == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_istable(L, -1))
    opt_error(L, "auth_always", "a list of paths");
  int n = (int)luaL_len(L, -1), failed = 0;
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    const char *path = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING || path[0] != '/')
      luaL_error(L, WHAT ": option 'auth_always' must list paths starting with '/', got %s",
                 luaL_tolstring(L, -1, NULL));
    if (s && server_protect(s, path) != 0)
      failed = 1;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return failed ? -1 : 0;
}

/* core.http_server(options) -> server */
static int l_http_server(lua_State *L) {
  mw_loop *loop = loop_check_open(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  opts_check_known(L, 1, option_names, WHAT);
  lua_getfield(L, 1, "listen");
  if (lua_type(L, -1) != LUA_TSTRING)
    opt_error(L, "listen", "a string \"host:port\"");
  const char *listen = lua_tostring(L, -1);
  lua_getfield(L, 1, "handler");
  if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
    opt_error(L, "handler", "a function(req) returning status, body, headers");
  mw_server_options opt;
  server_options_default(&opt);
  opt.max_connections = (int)opt_int(L, "max_connections", 1, 100000, opt.max_connections);
  opt.max_header_bytes =
      (size_t)opt_int(L, "max_header_bytes", 256, 1024 * 1024, (lua_Integer)opt.max_header_bytes);
  opt.max_body_bytes =
      (size_t)opt_int(L, "max_body_bytes", 0, 1 << 30, (lua_Integer)opt.max_body_bytes);
  opt.request_timeout = opt_seconds(L, "request_timeout", opt.request_timeout);
  opt.idle_timeout = opt_seconds(L, "idle_timeout", opt.idle_timeout);
  auth_opts auth;
  opt_auth(L, &auth);
  opt_auth_always(L, NULL);
  server_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  memset(box, 0, sizeof *box);
  box->loop = loop;
  box->self_ref = box->handler_ref = LUA_NOREF;
  luaL_setmetatable(L, SERVER_MT);
  char err[256];
  mw_server *s = server_open(loop, listen, &opt, err, sizeof err);
  if (!s)
    return luaL_error(L, WHAT ": %s", err);
  int failed = auth.bearer ? server_auth_bearer(s, auth.bearer)
               : auth.user ? server_auth_basic(s, auth.user, auth.password)
                           : 0;
  server_auth_scope(s, auth.scope);
  if (failed || opt_auth_always(L, s) != 0) {
    server_close(s);
    return luaL_error(L, WHAT ": cannot set up the credentials (out of memory)");
  }
  box->s = s;
  server_on_close(s, box_on_close, box);
  if (lua_isfunction(L, 3)) {
    lua_pushvalue(L, 3);
    box->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    server_fallback(s, handler_route, box);
  }
  lua_pushvalue(L, -1);
  box->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* Methods */

mw_server *server_lua_check(lua_State *L, int idx) {
  server_box *box = luaL_checkudata(L, idx, SERVER_MT);
  if (!box->s || box->self_ref == LUA_NOREF)
    luaL_error(L, "http server: it is closed");
  return box->s;
}

/* server:address() -> host, port */
static int l_address(lua_State *L) {
  mw_server *s = server_lua_check(L, 1);
  lua_pushstring(L, server_host(s));
  lua_pushinteger(L, server_port(s));
  return 2;
}

static int l_is_loopback(lua_State *L) {
  lua_pushboolean(L, server_is_loopback(server_lua_check(L, 1)));
  return 1;
}

static int l_close(lua_State *L) {
  server_box *box = luaL_checkudata(L, 1, SERVER_MT);
  if (box->s && box->self_ref != LUA_NOREF)
    server_close(box->s);
  return 0;
}

static int l_gc(lua_State *L) {
  server_box *box = luaL_checkudata(L, 1, SERVER_MT);
  if (box->s) /* only as the state closes: it is anchored while open */
    server_close(box->s);
  return 0;
}

static int l_tostring(lua_State *L) {
  server_box *box = luaL_checkudata(L, 1, SERVER_MT);
  if (box->s && box->self_ref != LUA_NOREF)
    lua_pushfstring(L, "moonwatch.http_server (%s:%d)", server_host(box->s), server_port(box->s));
  else
    lua_pushliteral(L, "moonwatch.http_server (closed)");
  return 1;
}

void server_lua_register(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"address", l_address}, {"is_loopback", l_is_loopback}, {"close", l_close}, {NULL, NULL}};
  if (luaL_newmetatable(L, SERVER_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_http_server);
  lua_setfield(L, -2, "http_server");
}
