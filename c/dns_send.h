/* L3: one DNS query to a server, its raw answer handed back: c-ares on the
 * loop, over UDP and over TCP when the UDP answer is truncated. */
#ifndef MW_DNS_SEND_H
#define MW_DNS_SEND_H

#include "loop.h"

typedef struct mw_dns_send mw_dns_send;

/* An answer (abuf, alen: the whole message, any rcode), or abuf NULL with a
 * failure kind (timeout, refused, protocol, local, dns) and its message. */
typedef void (*mw_dns_send_fn)(void *data, const unsigned char *abuf, int alen, const char *kind,
                               const char *error);

/* Makes the loop's query channels' set (with the resolver), so that a
 * caller registers its closer after it. 0, or -1 and *error. */
int dns_send_open(mw_loop *loop, const char **error);
/* Sends a query for name and type (an RR type code) to servers (c-ares's
 * csv, "127.0.0.1:53,[::1]:5353"), or to the resolver's servers when NULL.
 * cb runs from the loop later, never from inside this call. NULL with
 * *error when the query cannot start. */
mw_dns_send *dns_send_start(mw_loop *loop, const char *servers, const char *name, int type,
                            mw_dns_send_fn cb, void *data, const char **error);
/* cb will not run; c-ares ends the query in its own time. */
void dns_send_cancel(mw_dns_send *q);

#endif
