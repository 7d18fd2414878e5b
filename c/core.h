/* L5: the entry point of the moonwatch.core Lua module. */
#ifndef MW_CORE_H
#define MW_CORE_H

#include <lua.h>

int luaopen_moonwatch_core(lua_State *L);
/* Opens /dev/null onto any of fds 0-2 that is closed, before anything else
 * can take them: otherwise libuv's epoll fd becomes fd 1 and every record
 * goes into it. */
void core_stdio_ensure(void);

#endif
