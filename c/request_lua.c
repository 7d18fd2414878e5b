/* L4: the Lua side of requests: core.http_prepare, core.http_request,
 * core.http_check and request objects. Options are checked here, responses
 * become tables here; request.c performs them. A perform waits in the task
 * that called it; the request's userdata is anchored while it is in flight.
 */
#include <lauxlib.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"
#include "request.h"
#include "request_lua.h"
#include "task.h"

#define REQUEST_MT "moonwatch.request"
#define DEFAULT_TIMEOUT 30.0
#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_MAX_REDIRECTS 5

static const char *const option_names[] = {"url",
                                           "method",
                                           "headers",
                                           "body",
                                           "timeout",
                                           "connect_timeout",
                                           "follow_redirects",
                                           "max_redirects",
                                           "verify",
                                           "ca_file",
                                           "max_body",
                                           "fresh_connection",
                                           "user_agent",
                                           "trust_redirects",
                                           "allow_insecure_redirects",
                                           "cert_info",
                                           NULL};

/* The requests of a loop that are in flight, stopped when it closes. */
typedef struct {
  mw_http *http;
  mw_resolver *resolver;
  mw_list inflight;
  size_t count; /* in inflight */
  mw_hook closer;
} request_set;

/* A request object's userdata: its Lua side, then the request itself. */
typedef struct {
  request_set *set; /* NULL until the request is set up */
  mw_task *task;    /* the waiting task while in flight */
  int self_ref;     /* anchors the userdata while in flight */
  mw_list link;     /* in set->inflight */
  alignas(max_align_t) unsigned char req[];
} request_ud;

static const char set_key = 'Q';

static mw_request *ud_request(request_ud *u) {
  return (mw_request *)u->req;
}

/* Ends the wait of the task: unlinks and unanchors u. */
static void ud_detach(request_ud *u, lua_State *L) {
  if (list_linked(&u->link))
    u->set->count--;
  list_remove(&u->link);
  u->task = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, u->self_ref);
  u->self_ref = LUA_NOREF;
}

/* The closers run the last registered first: this one, registered after
 * http_get, stops every perform before the transport goes. */
static void set_close(mw_loop *loop, void *data) {
  request_set *set = data;
  mw_list *node;
  while ((node = list_first(&set->inflight))) {
    request_ud *u = list_entry(node, request_ud, link);
    if (u->task)
      task_cancel(u->task); /* its wait_cancel aborts the request */
    if (list_linked(&u->link)) {
      request_abort(ud_request(u));
      ud_detach(u, loop->L);
    }
  }
  loop_set_ext(loop, &set_key, NULL);
  free(set);
}

static request_set *set_get(lua_State *L) {
  mw_loop *loop = loop_check_open(L);
  request_set *set = loop_ext(loop, &set_key);
  if (set)
    return set;
  const char *error = NULL;
  mw_http *http = http_get(loop, &error);
  mw_resolver *resolver = http ? resolver_get(loop, &error) : NULL;
  if (!resolver)
    luaL_error(L, "http request: %s", error);
  set = calloc(1, sizeof *set);
  if (!set)
    luaL_error(L, "http request: out of memory");
  set->http = http;
  set->resolver = resolver;
  list_init(&set->inflight);
  loop_set_ext(loop, &set_key, set);
  loop_at_close(loop, &set->closer, set_close, set);
  return set;
}

/* Responses */

static void push_headers(lua_State *co, const char *raw, size_t len) {
  lua_createtable(co, 0, 8);
  const char *p = raw, *end = raw + len;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    if (colon && colon > p) {
      luaL_Buffer b;
      luaL_buffinit(co, &b);
      for (const char *c = p; c < colon; c++)
        luaL_addchar(&b, (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c));
      luaL_pushresult(&b);
      const char *v = colon + 1, *ve = line_end;
      while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      lua_pushvalue(co, -1);
      if (lua_rawget(co, -3) == LUA_TSTRING) { /* repeated: join as RFC 9110 allows */
        lua_pushliteral(co, ", ");
        lua_pushlstring(co, v, (size_t)(ve - v));
        lua_concat(co, 3);
      } else {
        lua_pop(co, 1);
        lua_pushlstring(co, v, (size_t)(ve - v));
      }
      lua_rawset(co, -3);
    }
    p = eol ? eol + 1 : NULL;
  }
}

#define RESPONSE_MT "moonwatch.response"

/* response.headers is parsed from response.raw_headers on first use: most
 * checks never read a header, and the table cost a dozen allocations. */
static int l_response_index(lua_State *L) {
  size_t klen;
  const char *key = lua_tolstring(L, 2, &klen);
  if (!key || klen != 7 || memcmp(key, "headers", 7) != 0)
    return 0;
  size_t len = 0;
  lua_getfield(L, 1, "raw_headers");
  const char *raw = lua_tolstring(L, -1, &len);
  push_headers(L, raw ? raw : "", raw ? len : 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, 1, "headers");
  return 1;
}

static void set_number(lua_State *co, const char *key, double value) {
  lua_pushnumber(co, value);
  lua_setfield(co, -2, key);
}

static void push_response(lua_State *co, const mw_response *res) {
  lua_checkstack(co, 8);
  lua_createtable(co, 0, 12);
  lua_pushinteger(co, res->status);
  lua_setfield(co, -2, "status");
  luaL_setmetatable(co, RESPONSE_MT);
  lua_pushlstring(co, res->head, res->head_len);
  lua_setfield(co, -2, "raw_headers");
  lua_pushlstring(co, res->body, res->body_len);
  lua_setfield(co, -2, "body");
  lua_pushinteger(co, (lua_Integer)res->size);
  lua_setfield(co, -2, "size");
  lua_pushboolean(co, res->truncated);
  lua_setfield(co, -2, "truncated");
  lua_pushstring(co, res->url);
  lua_setfield(co, -2, "url");
  lua_pushstring(co, res->ip);
  lua_setfield(co, -2, "ip");
  lua_pushinteger(co, res->redirects);
  lua_setfield(co, -2, "redirects");
  lua_pushinteger(co, res->connects);
  lua_setfield(co, -2, "connects");
  if (res->has_cert) {
    lua_pushinteger(co, (lua_Integer)res->cert_expiry);
    lua_setfield(co, -2, "cert_expiry");
  }
  lua_createtable(co, 0, 6);
  set_number(co, "dns", res->dns);
  set_number(co, "connect", res->connect);
  set_number(co, "tls", res->tls);
  set_number(co, "first_byte", res->first_byte);
  set_number(co, "total", res->total);
  set_number(co, "redirect", res->redirect);
  lua_setfield(co, -2, "time");
}

/* Performs */

static void on_done(mw_request *req, const mw_response *res, const char *kind, const char *message,
                    void *data) {
  (void)req;
  request_ud *u = data;
  mw_task *task = u->task;
  lua_State *co = task->co;
  /* Push before unanchoring: once unanchored, u may be collected. */
  int n = 1;
  if (res) {
    push_response(co, res);
  } else {
    lua_checkstack(co, 3);
    lua_pushnil(co);
    lua_pushfstring(co, "%s: %s", kind, message);
    lua_pushstring(co, kind);
    n = 3;
  }
  ud_detach(u, task->loop->L);
  task_resume(task, n);
}

static void on_wait_cancel(void *data) {
  request_ud *u = data;
  request_abort(ud_request(u));
  ud_detach(u, u->task->loop->L);
}

static request_ud *check_ud(lua_State *L, int idx) {
  request_ud *u = luaL_checkudata(L, idx, REQUEST_MT);
  if (!u->set)
    luaL_error(L, "request: this request was not set up");
  return u;
}

static int perform(lua_State *L, request_ud *u, int idx) {
  mw_request *req = ud_request(u);
  if (request_busy(req))
    return luaL_error(L, "request:perform(): this request is already in flight (a request "
                         "object serves one task at a time)");
  mw_task *task = task_check_current(L, "request:perform");
  const char *kind = NULL;
  const char *err = request_perform(req, on_done, u, &kind);
  if (err) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", kind, err);
    lua_pushstring(L, kind);
    return 3;
  }
  u->task = task;
  lua_pushvalue(L, idx);
  u->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  list_push_front(&u->set->inflight, &u->link);
  u->set->count++;
  task_wait(task, on_wait_cancel, u);
  return lua_yield(L, 0);
}

/* req:perform() -> response | nil, message, kind */
static int l_request_perform(lua_State *L) {
  return perform(L, check_ud(L, 1), 1);
}

/* req:busy() -> true while a perform is in flight */
static int l_request_busy(lua_State *L) {
  lua_pushboolean(L, request_busy(ud_request(check_ud(L, 1))));
  return 1;
}

static int l_request_gc(lua_State *L) {
  request_ud *u = luaL_checkudata(L, 1, REQUEST_MT);
  if (!u->set)
    return 0;
  if (u->task)
    task_cancel(u->task);
  if (list_linked(&u->link))
    ud_detach(u, L);
  request_free(ud_request(u));
  u->set = NULL;
  return 0;
}

static int l_request_tostring(lua_State *L) {
  request_ud *u = luaL_checkudata(L, 1, REQUEST_MT);
  const char *method = u->set ? request_method(ud_request(u)) : NULL;
  const char *url = u->set ? request_url(ud_request(u)) : NULL;
  lua_pushfstring(L, "moonwatch.request (%s %s)", method ? method : "?", url ? url : "?");
  return 1;
}

/* Options */

#define WHAT "http request"

static int valid_header_part(const char *s, size_t len, int name) {
  if (name && len == 0)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0' || (name && (s[i] == ':' || s[i] == ' ')))
      return 0;
  return 1;
}

static struct curl_slist *opt_headers(lua_State *L) {
  if (lua_getfield(L, 1, "headers") == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1))
    opts_error(L, WHAT, "headers", "a table");
  struct curl_slist *list = NULL;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    size_t nlen = 0, vlen = 0;
    const char *name, *value;
    if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TSTRING) {
      name = lua_tolstring(L, -1, &nlen); /* "Name: value" */
      const char *colon = memchr(name, ':', nlen);
      value = colon;
      if (!colon || !valid_header_part(name, (size_t)(colon - name), 1) ||
          !valid_header_part(colon, nlen - (size_t)(colon - name), 0)) {
        curl_slist_free_all(list);
        luaL_error(L,
                   "http request: header '%s' must look like 'Name: value' without "
                   "line breaks",
                   name);
      }
      lua_pushvalue(L, -1);
    } else if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
      name = lua_tolstring(L, -2, &nlen);
      value = lua_tolstring(L, -1, &vlen);
      if (!valid_header_part(name, nlen, 1) || !valid_header_part(value, vlen, 0)) {
        curl_slist_free_all(list);
        luaL_error(L, "http request: header '%s' has a bad name or a line break in its value",
                   name);
      }
      lua_pushfstring(L, "%s: %s", name, value);
    } else {
      curl_slist_free_all(list);
      luaL_error(L, "http request: headers must map names to strings or list 'Name: value' "
                    "strings");
      return NULL;
    }
    struct curl_slist *grown = curl_slist_append(list, lua_tostring(L, -1));
    if (!grown) {
      curl_slist_free_all(list);
      luaL_error(L, "http request: out of memory");
    }
    list = grown;
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  return list;
}

/* Reads and checks every option but headers and the URL's parts; raises
 * the error a bad one gives. */
static void options_read(lua_State *L, mw_request_options *o) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  opts_check_known(L, 1, option_names, WHAT);
  o->url = opts_string(L, 1, WHAT, "url", 0);
  if (!o->url)
    luaL_error(L, "http request: option 'url' is required");
  const char *method = opts_string(L, 1, WHAT, "method", 0);
  if (!method)
    method = "GET";
  for (const char *c = method; *c; c++)
    if (*c < 'A' || *c > 'Z' || c - method > 32)
      luaL_error(L, "http request: method '%s' is not an upper-case HTTP method", method);
  if (!*method)
    luaL_error(L, "http request: method must not be empty");
  o->method = method;
  o->body_len = 0;
  lua_getfield(L, 1, "body");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    opts_error(L, WHAT, "body", "a string");
  o->body = lua_tolstring(L, -1, &o->body_len);
  lua_pop(L, 1); /* still referenced by the options table */
  /* Servers expect a Content-Length on these even when empty. */
  if (!o->body &&
      (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0))
    o->body = "";
  o->timeout = opts_seconds(L, 1, WHAT, "timeout", DEFAULT_TIMEOUT);
  o->connect_timeout = opts_seconds(L, 1, WHAT, "connect_timeout", o->timeout);
  o->follow = opts_bool(L, 1, WHAT, "follow_redirects", 0);
  o->max_redirects = (long)opts_count(L, 1, WHAT, "max_redirects", DEFAULT_MAX_REDIRECTS, 1000);
  o->trust_redirects = opts_bool(L, 1, WHAT, "trust_redirects", 0);
  o->allow_insecure = opts_bool(L, 1, WHAT, "allow_insecure_redirects", 0);
  o->verify = opts_bool(L, 1, WHAT, "verify", 1);
  o->ca_file = opts_string(L, 1, WHAT, "ca_file", 0);
  o->max_body = (size_t)opts_count(L, 1, WHAT, "max_body", DEFAULT_MAX_BODY, (lua_Integer)1 << 40);
  o->fresh = opts_bool(L, 1, WHAT, "fresh_connection", 0);
  o->user_agent = opts_string(L, 1, WHAT, "user_agent", 0);
  o->cert_info = opts_bool(L, 1, WHAT, "cert_info", 0);
  o->headers = NULL;
}

/* core.http_check(options) -> true: raises the error http_prepare would,
 * without preparing anything (for --check and monitor constructors). */
static int l_check(lua_State *L) {
  mw_request_options o;
  options_read(L, &o);
  curl_slist_free_all(opt_headers(L));
  const char *err = request_check_url(o.url);
  if (err)
    return luaL_error(L, "http request: %s", err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.http_prepare(options) -> request */
static int l_prepare(lua_State *L) {
  mw_request_options o;
  options_read(L, &o);
  request_set *set = set_get(L);
  request_ud *u = lua_newuserdatauv(L, sizeof *u + request_size(), 0);
  memset(u, 0, sizeof *u);
  u->self_ref = LUA_NOREF;
  list_init(&u->link);
  luaL_setmetatable(L, REQUEST_MT);
  o.headers = opt_headers(L);
  const char *err = request_init(ud_request(u), set->http, set->resolver, &o);
  if (err)
    return luaL_error(L, "http request: %s", err);
  u->set = set;
  return 1;
}

/* core.http_request(options) -> response | nil, message, kind: a one-shot
 * prepare and perform. */
static int l_request(lua_State *L) {
  l_prepare(L);
  return perform(L, check_ud(L, -1), lua_gettop(L));
}

size_t request_lua_in_flight(mw_loop *loop) {
  request_set *set = loop_ext(loop, &set_key);
  return set ? set->count : 0;
}

void request_lua_register(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"perform", l_request_perform}, {"busy", l_request_busy}, {NULL, NULL}};
  if (luaL_newmetatable(L, REQUEST_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_request_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_request_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, RESPONSE_MT)) {
    lua_pushcfunction(L, l_response_index);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_prepare);
  lua_setfield(L, -2, "http_prepare");
  lua_pushcfunction(L, l_check);
  lua_setfield(L, -2, "http_check");
  lua_pushcfunction(L, l_request);
  lua_setfield(L, -2, "http_request");
}
