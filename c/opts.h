/* L0: checks shared by the option tables of the core's Lua calls. */
#ifndef MW_OPTS_H
#define MW_OPTS_H

#include <lua.h>

/* Raises "<what>: unknown option 'x'" for the first key of the table at idx
 * that is not a string in names (NULL-terminated). */
void opts_check_known(lua_State *L, int idx, const char *const *names, const char *what);

/* Readers of option `name` of the table at idx. A wrong value raises
 * "<what>: option 'name' must be <want>, got <value>" (opts_error, with the
 * value on top of the stack); nil gives the default. A string is kept alive
 * by the options table. */
int opts_error(lua_State *L, const char *what, const char *name, const char *want);
/* A number of seconds in (0, 86400]. */
double opts_seconds(lua_State *L, int idx, const char *what, const char *name, double def);
/* An integer in [0, max]. */
lua_Integer opts_count(lua_State *L, int idx, const char *what, const char *name, lua_Integer def,
                       lua_Integer max);
int opts_bool(lua_State *L, int idx, const char *what, const char *name, int def);
/* A string without NUL bytes, or NULL when nil (an error if required). */
const char *opts_string(lua_State *L, int idx, const char *what, const char *name, int required);

#endif
