/* L4: the dispatcher, fixed-rate scheduling of many monitors. */
#ifndef MW_DISPATCH_H
#define MW_DISPATCH_H

#include <lua.h>

/* Registers core.dispatcher in the table on top. */
void dispatch_register(lua_State *L);

#endif
