/* Name resolution on the loop with c-ares, so no lookup ever blocks it. */
#ifndef MW_RESOLVER_H
#define MW_RESOLVER_H

#include "loop.h"

typedef struct mw_dns_query mw_dns_query;

/* addrs is a comma-separated list in curl's CURLOPT_RESOLVE form (IPv6 in
 * brackets); on failure addrs is NULL and error names the kind and cause. */
typedef void (*mw_resolve_cb)(void *data, const char *addrs, const char *error);

/* Returns the cached addresses of host, or NULL. */
const char *resolver_cached(mw_loop *loop, const char *host);
/* Starts a lookup; cb runs from the loop later, never from inside this call.
 * Returns NULL when the lookup ended at once: then *addrs (malloc'd, the
 * caller frees it) holds the answer, or *error says why it failed. */
mw_dns_query *resolver_start(mw_loop *loop, const char *host, mw_resolve_cb cb, void *data,
                             char **addrs, const char **error);
/* The callback will not run; the query itself ends in c-ares's own time. */
void resolver_cancel(mw_dns_query *query);

#endif
