/* L0: the expiry of a TLS peer's certificates, read from OpenSSL. */
#ifndef MW_CERT_H
#define MW_CERT_H

#include <stdint.h>

/* The earliest notAfter (Unix time) of the certificates the peer of ssl (an
 * OpenSSL SSL *, as CURLINFO_TLS_SSL_PTR gives it) sent: 1 and *not_after,
 * or 0 when it sent none. */
int cert_chain_expiry(void *ssl, int64_t *not_after);

#endif
