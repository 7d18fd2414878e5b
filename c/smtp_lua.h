/* L4: the Lua side of SMTP. */
#ifndef MW_SMTP_LUA_H
#define MW_SMTP_LUA_H

#include <lua.h>

/* Registers core.smtp_send and core.smtp_check in the table on top. */
void smtp_lua_register(lua_State *L);

#endif
