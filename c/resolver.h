/* L3: name resolution on the loop with c-ares, so no lookup ever blocks it. */
#ifndef MW_RESOLVER_H
#define MW_RESOLVER_H

#include <lua.h>

#include "loop.h"

typedef struct mw_resolver mw_resolver;
typedef struct mw_dns_query mw_dns_query;

/* addrs is a comma-separated list in curl's CURLOPT_RESOLVE form (IPv6 in
 * brackets); on failure addrs is NULL and error names the kind and cause. */
typedef void (*mw_resolver_cb)(void *data, const char *addrs, const char *error);

/* The loop's resolver, made on first use (it closes with the loop). NULL and
 * *error when c-ares cannot start. */
mw_resolver *resolver_get(mw_loop *loop, const char **error);
/* Returns the cached addresses of host, or NULL. */
const char *resolver_cached(mw_resolver *r, const char *host);
/* The servers set by core.dns_configure (csv), or NULL: the system's. */
const char *resolver_servers(const mw_resolver *r);
/* Starts a lookup; cb runs from the loop later, never from inside this call.
 * Returns NULL when the lookup ended at once: then *addrs (malloc'd, the
 * caller frees it) holds the answer, or *error says why it failed. */
mw_dns_query *resolver_start(mw_resolver *r, const char *host, mw_resolver_cb cb, void *data,
                             char **addrs, const char **error);
/* The callback will not run; the query itself ends in c-ares's own time. */
void resolver_cancel(mw_dns_query *query);
/* Registers core.dns_configure in the table on top. */
void resolver_register(lua_State *L);

#endif
