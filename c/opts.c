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
