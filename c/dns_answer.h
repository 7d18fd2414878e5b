/* L0: DNS answer messages (RFC 1035) read into Lua tables. */
#ifndef MW_DNS_ANSWER_H
#define MW_DNS_ANSWER_H

#include <lua.h>

/* The code of a record type this module reads ("A", "MX", ...; case is
 * ignored), or 0. */
int dns_answer_type(const char *name);
/* The name of an rcode ("NOERROR", "NXDOMAIN", ... or "RCODE<n>"), in buf. */
const char *dns_answer_rcode_name(int rcode, char *buf, size_t cap);
/* Pushes { rcode, authoritative, truncated, answers, cnames } read from the
 * message abuf, answers holding the records of type qtype (CNAMEs met on
 * the way are in cnames). Returns 0, or -1 with *error (nothing pushed) for
 * a malformed message. */
int dns_answer_push(lua_State *L, const unsigned char *abuf, int alen, int qtype,
                    const char **error);

#endif
