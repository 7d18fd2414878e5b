/* L0: certificate expiry from an OpenSSL connection. The chain is the one
 * the peer sent (leaf first), as blackbox_exporter's
 * probe_ssl_earliest_cert_expiry reads it, so an intermediate that expires
 * before the leaf is what counts. */
#include <openssl/asn1.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <time.h>

#include "cert.h"

static int not_after_of(X509 *cert, int64_t *out) {
  const ASN1_TIME *t = cert ? X509_get0_notAfter(cert) : NULL;
  struct tm tm;
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
    return 0;
  *out = (int64_t)timegm(&tm);
  return 1;
}

int cert_chain_expiry(void *ssl, int64_t *not_after) {
  int found = 0;
  int64_t earliest = 0, t = 0;
  /* NULL on a resumed session that kept no chain: the leaf is still known */
  STACK_OF(X509) *chain = SSL_get_peer_cert_chain((SSL *)ssl);
  for (int i = 0; chain && i < sk_X509_num(chain); i++) {
    if (not_after_of(sk_X509_value(chain, i), &t) && (!found || t < earliest)) {
      earliest = t;
      found = 1;
    }
  }
  if (!found && not_after_of(SSL_get0_peer_certificate((SSL *)ssl), &t)) {
    earliest = t;
    found = 1;
  }
  if (found)
    *not_after = earliest;
  return found;
}
