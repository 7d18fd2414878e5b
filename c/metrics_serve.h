/* L4: serving a metrics registry over the embedded server. */
#ifndef MW_METRICS_SERVE_H
#define MW_METRICS_SERVE_H

#include <lua.h>

/* Registers core.metrics_serve in the table on top. */
void metrics_serve_register(lua_State *L);

#endif
