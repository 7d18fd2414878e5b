/* L0: checks shared by the option tables of the core's Lua calls (see opts.h). */
#include "opts.h"

#include <lauxlib.h>
#include <string.h>

void opts_check_known(lua_State *L, int idx, const char *const *names, const char *what) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int known = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char *const *n = names; *n && !known; n++)
        known = strcmp(*n, lua_tostring(L, -1)) == 0;
    if (!known)
      luaL_error(L, "%s: unknown option '%s'", what, luaL_tolstring(L, -1, NULL));
  }
}

int opts_error(lua_State *L, const char *what, const char *name, const char *want) {
  /* a number out of range is shown, anything else by its type */
  const char *got =
      lua_type(L, -1) == LUA_TNUMBER ? luaL_tolstring(L, -1, NULL) : luaL_typename(L, -1);
  return luaL_error(L, "%s: option '%s' must be %s, got %s", what, name, want, got);
}

double opts_seconds(lua_State *L, int idx, const char *what, const char *name, double def) {
  int t = lua_getfield(L, idx, name);
  double v = def;
  if (t != LUA_TNIL) {
    if (t != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0) || lua_tonumber(L, -1) > 86400)
      opts_error(L, what, name, "a number of seconds in (0, 86400]");
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

lua_Integer opts_count(lua_State *L, int idx, const char *what, const char *name, lua_Integer def,
                       lua_Integer max) {
  int t = lua_getfield(L, idx, name);
  lua_Integer v = def;
  if (t != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > max)
      opts_error(L, what, name, "a non-negative integer");
    v = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

int opts_bool(lua_State *L, int idx, const char *what, const char *name, int def) {
  int t = lua_getfield(L, idx, name);
  int v = def;
  if (t != LUA_TNIL) {
    if (t != LUA_TBOOLEAN)
      opts_error(L, what, name, "a boolean");
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

const char *opts_string(lua_State *L, int idx, const char *what, const char *name, int required) {
  int t = lua_getfield(L, idx, name);
  const char *v = NULL;
  if (t == LUA_TNIL && required)
    luaL_error(L, "%s: option '%s' is required", what, name);
  if (t != LUA_TNIL) {
    if (t != LUA_TSTRING)
      opts_error(L, what, name, "a string");
    size_t len = 0;
    v = lua_tolstring(L, -1, &len);
    if (strlen(v) != len)
      luaL_error(L, "%s: option '%s' must not contain a NUL byte", what, name);
  }
  lua_pop(L, 1); /* still referenced by the options table */
  return v;
}
