/* L4: core.sleep. */
#ifndef MW_SLEEP_H
#define MW_SLEEP_H

#include <lua.h>

/* Registers core.sleep in the table on top. */
void sleep_register(lua_State *L);

#endif
