/* L4: core.on_signal. */
#ifndef MW_SIGNALS_H
#define MW_SIGNALS_H

#include <lua.h>

/* Registers core.on_signal in the table on top. */
void signals_register(lua_State *L);

#endif
