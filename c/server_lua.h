/* L4: core.http_server, the Lua side of the embedded HTTP server. */
#ifndef MW_SERVER_LUA_H
#define MW_SERVER_LUA_H

#include <lua.h>

#include "server.h"

/* The server of the server object at idx; raises when it is not one or is
 * closed. For other C bindings that mount routes on it (/metrics). */
mw_server *server_lua_check(lua_State *L, int idx);
/* Registers core.http_server in the table on top. */
void server_lua_register(lua_State *L);

#endif
