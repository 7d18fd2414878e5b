/* L4: core.dns_query, a DNS query from a task. */
#ifndef MW_DNS_LUA_H
#define MW_DNS_LUA_H

#include <lua.h>

/* Registers core.dns_query in the table on top. */
void dns_lua_register(lua_State *L);

#endif
