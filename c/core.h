/* The entry point of the moonwatch.core Lua module. */
#ifndef MW_CORE_H
#define MW_CORE_H

#include <lua.h>

int luaopen_moonwatch_core(lua_State *L);
void lua_log_register(lua_State *L);
void lua_log_flush_all(void);

#endif
