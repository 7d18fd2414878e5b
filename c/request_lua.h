/* L4: the Lua side of HTTP requests. */
#ifndef MW_REQUEST_LUA_H
#define MW_REQUEST_LUA_H

#include <lua.h>
#include <stddef.h>

#include "loop.h"

/* Registers core.http_prepare, core.http_request and core.http_check in the
 * table on top. */
void request_lua_register(lua_State *L);

/* Requests of the loop in flight (a transfer each): the metrics' figure. */
size_t request_lua_in_flight(mw_loop *loop);

#endif
