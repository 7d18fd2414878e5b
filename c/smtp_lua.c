/* L4: the Lua side of SMTP: core.smtp_send and core.smtp_check. Options are
 * checked here; smtp.c sends. A send waits in the task that called it. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"
#include "smtp.h"
#include "smtp_lua.h"
#include "task.h"

#define DEFAULT_TIMEOUT 30.0
#define ADDRESS_MAX 254     /* RFC 5321's path limit, less the brackets */
#define LINE_MAX_OCTETS 998 /* RFC 5322 2.1.1 */

static const char *const option_names[] = {
    "url",      "from",   "to",      "message", "starttls",        "username",
    "password", "verify", "ca_file", "timeout", "connect_timeout", NULL};

/* The sends of a loop that are in flight: their tasks are cancelled when the
 * loop closes, before the workers' last callbacks run. */
typedef struct {
  mw_list inflight;
  mw_hook closer;
} send_set;

typedef struct {
  mw_list link;
  mw_task *task;
  mw_smtp *smtp;
} send_wait;

static const char set_key = 'M';

static void set_close(mw_loop *loop, void *data) {
  send_set *set = data;
  mw_list *node;
  while ((node = list_first(&set->inflight)))
    task_cancel(list_entry(node, send_wait, link)->task); /* on_wait_cancel unlinks it */
  loop_set_ext(loop, &set_key, NULL);
  free(set);
}

static send_set *set_get(lua_State *L) {
  mw_loop *loop = loop_check_open(L);
  send_set *set = loop_ext(loop, &set_key);
  if (set)
    return set;
  set = calloc(1, sizeof *set);
  if (!set)
    luaL_error(L, "smtp send: out of memory");
  list_init(&set->inflight);
  loop_set_ext(loop, &set_key, set);
  loop_at_close(loop, &set->closer, set_close, set);
  return set;
}

static void on_done(const char *kind, const char *message, void *data) {
  send_wait *w = data;
  mw_task *task = w->task;
  lua_State *co = task->co;
  list_remove(&w->link);
  free(w);
  if (!kind) {
    lua_pushboolean(co, 1);
    task_resume(task, 1);
    return;
  }
  lua_checkstack(co, 3);
  lua_pushnil(co);
  lua_pushfstring(co, "%s: %s", kind, message);
  lua_pushstring(co, kind);
  task_resume(task, 3);
}

static void on_wait_cancel(void *data) {
  send_wait *w = data;
  smtp_abort(w->smtp);
  list_remove(&w->link);
  free(w);
}

/* Options */

#define WHAT "smtp send"

/* An envelope address: curl puts it in angle brackets; a space, a bracket
 * or a control character would end the command or start another. */
static void check_address(lua_State *L, const char *what, int idx) {
  size_t len = 0;
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "smtp send: %s must be an address string, got %s", what, luaL_typename(L, idx));
  const char *a = lua_tolstring(L, idx, &len);
  if (len == 0)
    luaL_error(L, "smtp send: %s must not be empty", what);
  if (len > ADDRESS_MAX)
    luaL_error(L, "smtp send: %s is longer than %d bytes", what, ADDRESS_MAX);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)a[i];
    if (c < ' ' || c == 0x7f)
      luaL_error(L, "smtp send: %s must not contain a control character (CR, LF, NUL...)", what);
    if (c == ' ' || c == '<' || c == '>')
      luaL_error(L, "smtp send: %s ('%s') must be a bare address: no spaces or angle brackets",
                 what, a);
  }
}

/* Checks the option 'to' and leaves it on the stack. */
static void check_recipients(lua_State *L) {
  int t = lua_getfield(L, 1, "to");
  if (t == LUA_TNIL)
    luaL_error(L, "smtp send: option 'to' is required");
  if (t != LUA_TTABLE)
    opts_error(L, WHAT, "to", "a list of addresses");
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  if (n == 0)
    luaL_error(L, "smtp send: option 'to' must list at least one address");
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n)
      luaL_error(L, "smtp send: option 'to' must be a list (a sequence) of addresses");
  }
  char what[48];
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    snprintf(what, sizeof what, "option 'to' [%lld]", (long long)i);
    check_address(L, what, -1);
    lua_pop(L, 1);
  }
}

/* The checked recipients (the list on top) as curl's list; NULL when out of
 * memory. */
static struct curl_slist *recipients_list(lua_State *L) {
  struct curl_slist *list = NULL;
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    struct curl_slist *grown = curl_slist_append(list, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (!grown) {
      curl_slist_free_all(list);
      return NULL;
    }
    list = grown;
  }
  return list;
}

/* The message: CRLF line endings (curl sends the bytes as they are) and no
 * line past RFC 5322's limit. */
static void check_message(lua_State *L, const char *m, size_t len) {
  if (len == 0)
    luaL_error(L, "smtp send: option 'message' must not be empty");
  size_t line_start = 0;
  for (size_t i = 0; i < len; i++) {
    if (m[i] == '\0')
      luaL_error(L, "smtp send: option 'message' must not contain a NUL byte");
    int cr = m[i] == '\r';
    if ((cr && (i + 1 == len || m[i + 1] != '\n')) ||
        (m[i] == '\n' && (i == 0 || m[i - 1] != '\r')))
      luaL_error(L, "smtp send: option 'message' must use CRLF line endings (a bare %s at byte %d)",
                 cr ? "CR" : "LF", (int)i + 1);
    if (m[i] == '\n')
      line_start = i + 1;
    else if (!cr && i - line_start >= LINE_MAX_OCTETS)
      luaL_error(L, "smtp send: option 'message' has a line longer than %d bytes (at byte %d)",
                 LINE_MAX_OCTETS, (int)i + 1);
  }
}

static long opt_starttls(lua_State *L, int smtps) {
  int t = lua_getfield(L, 1, "starttls");
  long v = CURLUSESSL_ALL;
  if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))
    v = CURLUSESSL_NONE;
  else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "try") == 0)
    v = CURLUSESSL_TRY;
  else if (t != LUA_TNIL && !(t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "required") == 0))
    luaL_error(L, "smtp send: option 'starttls' must be \"required\", \"try\" or false, got %s",
               t == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
  lua_pop(L, 1);
  return smtps ? CURLUSESSL_ALL : v;
}

/* Reads and checks every option; raises the error a bad one gives. The
 * strings stay referenced by the options table at index 1. */
static void options_read(lua_State *L, mw_smtp_options *o) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  opts_check_known(L, 1, option_names, WHAT);
  memset(o, 0, sizeof *o);
  o->url = opts_string(L, 1, WHAT, "url", 1);
  const char *err = smtp_check_url(o->url);
  if (err)
    luaL_error(L, "smtp send: option 'url': %s", err);
  lua_getfield(L, 1, "from");
  if (lua_isnil(L, -1))
    luaL_error(L, "smtp send: option 'from' is required");
  check_address(L, "option 'from'", -1);
  o->from = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "message") == LUA_TNIL)
    luaL_error(L, "smtp send: option 'message' is required");
  if (lua_type(L, -1) != LUA_TSTRING)
    opts_error(L, WHAT, "message", "a string");
  o->message = lua_tolstring(L, -1, &o->message_len);
  check_message(L, o->message, o->message_len);
  lua_pop(L, 1);
  o->use_ssl = opt_starttls(L, strncmp(o->url, "smtps:", 6) == 0);
  o->username = opts_string(L, 1, WHAT, "username", 0);
  o->password = opts_string(L, 1, WHAT, "password", 0);
  if (o->password && !o->username)
    luaL_error(L, "smtp send: option 'password' needs the option 'username'");
  if (lua_getfield(L, 1, "verify") != LUA_TNIL && !lua_isboolean(L, -1))
    opts_error(L, WHAT, "verify", "a boolean");
  o->verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  o->ca_file = opts_string(L, 1, WHAT, "ca_file", 0);
  o->timeout = opts_seconds(L, 1, WHAT, "timeout", DEFAULT_TIMEOUT);
  o->connect_timeout = opts_seconds(L, 1, WHAT, "connect_timeout", o->timeout);
  check_recipients(L); /* left on the stack, for recipients_list */
}

/* core.smtp_check(options) -> true: raises the error smtp_send would,
 * without sending (for --check). */
static int l_check(lua_State *L) {
  mw_smtp_options o;
  options_read(L, &o);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.smtp_send(options) -> true | nil, message, kind */
static int l_send(lua_State *L) {
  mw_smtp_options o;
  options_read(L, &o);
  mw_task *task = task_check_current(L, "core.smtp_send");
  send_set *set = set_get(L);
  send_wait *w = malloc(sizeof *w);
  if (w)
    o.rcpt = recipients_list(L);
  if (!w || !o.rcpt) {
    free(w);
    return luaL_error(L, "smtp send: out of memory");
  }
  const char *error = NULL;
  w->task = task;
  w->smtp = smtp_send(task->loop, &o, on_done, w, &error);
  if (!w->smtp) {
    free(w);
    lua_pushnil(L);
    lua_pushfstring(L, "error: %s", error);
    lua_pushliteral(L, "error");
    return 3;
  }
  list_push_front(&set->inflight, &w->link);
  task_wait(task, on_wait_cancel, w);
  return lua_yield(L, 0);
}

void smtp_lua_register(lua_State *L) {
  lua_pushcfunction(L, l_send);
  lua_setfield(L, -2, "smtp_send");
  lua_pushcfunction(L, l_check);
  lua_setfield(L, -2, "smtp_check");
}
