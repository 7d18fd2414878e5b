/* L4: core.regex(pattern [, flags]), compiled PCRE2 regular expressions for
 * Lua. A regex is compiled once; re:find allocates nothing, so conditions
 * can match every response body without garbage. */
#include <lauxlib.h>
#include <string.h>

#include "regex.h"
#include "regex_lua.h"

#define REGEX_MT "moonwatch.regex"
#define SHOWN_MAX 100 /* pattern bytes shown in a message */

typedef struct {
  mw_regex *re; /* NULL once collected */
} regex_ud;

/* Pushes /pattern/ with control bytes as escapes and a long one cut with an
 * ellipsis, for messages. */
static void push_shown(lua_State *L, const char *p, size_t len) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '/');
  size_t shown = len > SHOWN_MAX ? SHOWN_MAX : len;
  /* do not cut a UTF-8 sequence in two */
  while (shown < len && shown > 0 && ((unsigned char)p[shown] & 0xC0) == 0x80)
    shown--;
  for (size_t i = 0; i < shown; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '\n')
      luaL_addstring(&b, "\\n");
    else if (c == '\r')
      luaL_addstring(&b, "\\r");
    else if (c == '\t')
      luaL_addstring(&b, "\\t");
    else if (c < ' ' || c == 0x7f) {
      char esc[5];
      esc[0] = '\\';
      esc[1] = 'x';
      esc[2] = "0123456789abcdef"[c >> 4];
      esc[3] = "0123456789abcdef"[c & 15];
      esc[4] = '\0';
      luaL_addstring(&b, esc);
    } else
      luaL_addchar(&b, (char)c);
  }
  if (shown < len)
    luaL_addstring(&b, "\xe2\x80\xa6"); /* … */
  luaL_addchar(&b, '/');
  luaL_pushresult(&b);
}

static int parse_flags(lua_State *L, int idx) {
  size_t n = 0;
  const char *s = luaL_optlstring(L, idx, "", &n);
  int flags = 0;
  for (size_t i = 0; i < n; i++) {
    switch (s[i]) {
    case 'i':
      flags |= MW_REGEX_CASELESS;
      break;
    case 'm':
      flags |= MW_REGEX_MULTILINE;
      break;
    case 's':
      flags |= MW_REGEX_DOTALL;
      break;
    case 'x':
      flags |= MW_REGEX_EXTENDED;
      break;
    case 'u':
      flags |= MW_REGEX_UTF;
      break;
    default:
      luaL_error(L, "core.regex: unknown flag '%c' (use i, m, s, x, u)", s[i]);
    }
  }
  return flags;
}

/* core.regex(pattern [, flags]) -> regex | nil, message */
static int l_regex(lua_State *L) {
  size_t len = 0;
  const char *pattern = luaL_checklstring(L, 1, &len);
  int flags = parse_flags(L, 2);
  regex_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->re = NULL;
  luaL_setmetatable(L, REGEX_MT);
  char err[200];
  u->re = regex_compile(pattern, len, flags, err, sizeof err);
  if (!u->re) {
    lua_pushnil(L);
    lua_pushliteral(L, "bad regular expression ");
    push_shown(L, pattern, len);
    lua_pushfstring(L, ": %s", err);
    lua_concat(L, 3);
    return 2;
  }
  return 1;
}

static mw_regex *check_re(lua_State *L) {
  regex_ud *u = luaL_checkudata(L, 1, REGEX_MT);
  if (!u->re)
    luaL_error(L, "regex: this regex was freed");
  return u->re;
}

/* re:find(subject [, init]) -> start, end (1-based, inclusive, as
 * string.find) | nil (no match) | nil, message (a match limit was hit) */
static int l_find(lua_State *L) {
  mw_regex *re = check_re(L);
  size_t len = 0;
  const char *s = luaL_checklstring(L, 2, &len);
  lua_Integer init = luaL_optinteger(L, 3, 1);
  if (init < 0)
    init = (lua_Integer)len + init + 1;
  if (init < 1)
    init = 1;
  if ((size_t)init > len + 1) {
    lua_pushnil(L);
    return 1;
  }
  size_t start = 0, end = 0;
  int rc = regex_find(re, s, len, (size_t)init - 1, &start, &end);
  if (rc == 1) {
    lua_pushinteger(L, (lua_Integer)start + 1);
    lua_pushinteger(L, (lua_Integer)end);
    return 2;
  }
  lua_pushnil(L);
  if (rc == 0)
    return 1;
  lua_pushstring(L, regex_message(re));
  return 2;
}

/* re:jit() -> whether PCRE2's JIT compiled it */
static int l_jit(lua_State *L) {
  lua_pushboolean(L, regex_jit(check_re(L)));
  return 1;
}

static int l_tostring(lua_State *L) {
  regex_ud *u = luaL_checkudata(L, 1, REGEX_MT);
  if (!u->re) {
    lua_pushliteral(L, "moonwatch.regex (freed)");
    return 1;
  }
  size_t len = 0;
  const char *p = regex_pattern(u->re, &len);
  push_shown(L, p, len);
  return 1;
}

static int l_gc(lua_State *L) {
  regex_ud *u = luaL_checkudata(L, 1, REGEX_MT);
  regex_free(u->re);
  u->re = NULL;
  return 0;
}

void regex_lua_register(lua_State *L) {
  static const luaL_Reg methods[] = {{"find", l_find}, {"jit", l_jit}, {NULL, NULL}};
  if (luaL_newmetatable(L, REGEX_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_regex);
  lua_setfield(L, -2, "regex");
}
