/* L4: core.ping, ICMP echo from a task. */
#ifndef MW_ICMP_LUA_H
#define MW_ICMP_LUA_H

#include <lua.h>

/* Registers core.ping in the table on top. */
void icmp_lua_register(lua_State *L);

#endif
