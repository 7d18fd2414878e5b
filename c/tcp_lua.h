/* L4: the Lua side of TCP probes. */
#ifndef MW_TCP_LUA_H
#define MW_TCP_LUA_H

#include <lua.h>

/* Registers core.tcp_check and core.tcp_validate in the table on top. */
void tcp_lua_register(lua_State *L);

#endif
