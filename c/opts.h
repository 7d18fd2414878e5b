/* L0: checks shared by the option tables of the core's Lua calls. */
#ifndef MW_OPTS_H
#define MW_OPTS_H

#include <lua.h>

/* Raises "<what>: unknown option 'x'" for the first key of the table at idx
 * that is not a string in names (NULL-terminated). */
void opts_check_known(lua_State *L, int idx, const char *const *names, const char *what);

#endif
