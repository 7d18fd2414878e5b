/* L4: the Lua binding of regex.c. */
#ifndef MW_REGEX_LUA_H
#define MW_REGEX_LUA_H

#include <lua.h>

/* Registers core.regex in the table on top. */
void regex_lua_register(lua_State *L);

#endif
