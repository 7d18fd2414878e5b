/* L0: the certificates of a TLS peer, read from OpenSSL. */
#ifndef MW_CERT_H
#define MW_CERT_H

#include <lua.h>
#include <stdint.h>

/* The earliest notAfter (Unix time) of the certificates the peer of ssl (an
 * OpenSSL SSL *, as CURLINFO_TLS_SSL_PTR gives it) sent: 1 and *not_after,
 * or 0 when it sent none. */
int cert_chain_expiry(void *ssl, int64_t *not_after);

/* Pushes the facts of ssl's peer certificate as a table: subject, issuer
 * (RFC 2253 text), san_dns, san_ip (lists), not_before, not_after (the
 * leaf's, Unix time), expiry (the earliest notAfter of the chain sent),
 * chain (how many certificates were sent), sha256 (the leaf's fingerprint,
 * hex), serial (hex) and verify ("ok" or OpenSSL's reason the chain or name
 * did not verify). Pushes nil when the peer sent no certificate. */
void cert_push_facts(lua_State *L, void *ssl);

#endif
