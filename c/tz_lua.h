/* L4: the Lua binding of tz.c. */
#ifndef MW_TZ_LUA_H
#define MW_TZ_LUA_H

#include <lua.h>

/* Registers core.tz_localtime and core.tz_mktime in the table on top. */
void tz_lua_register(lua_State *L);

#endif
