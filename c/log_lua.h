/* L4: the Lua binding of the logger (log.c). */
#ifndef MW_LOG_LUA_H
#define MW_LOG_LUA_H

#include <lua.h>

/* Registers core.logger, core.log_levels and core.log_plain in the table on
 * top. */
void log_lua_register(lua_State *L);

#endif
