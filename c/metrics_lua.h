/* L4: the Lua side of the metrics registry (core.metrics). */
#ifndef MW_METRICS_LUA_H
#define MW_METRICS_LUA_H

#include <lua.h>

#include "metrics.h"

/* Registers core.metrics in the table on top. */
void metrics_lua_register(lua_State *L);

/* The registry of the core.metrics() userdata at idx (raises otherwise).
 * To stream it with metrics_render over several loop turns, keep the
 * userdata anchored (luaL_ref) while the cursor is in use: its Lua
 * collectors run on the loop's stack at the start of a render. */
mw_metrics *metrics_lua_check(lua_State *L, int idx);

#endif
