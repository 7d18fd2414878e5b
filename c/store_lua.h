/* L4: the Lua binding of store.c: core.store_open and store objects. */
#ifndef MW_STORE_LUA_H
#define MW_STORE_LUA_H

#include <lua.h>

/* Registers core.store_open in the table on top. */
void store_lua_register(lua_State *L);

#endif
