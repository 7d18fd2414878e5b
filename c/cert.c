/* L0: the certificates of an OpenSSL connection: the earliest expiry, for
 * HTTP monitors through curl, and the leaf's facts, for TCP probes. The
 * chain is the one the peer sent (leaf first), as blackbox_exporter's
 * probe_ssl_earliest_cert_expiry reads it, so an intermediate that expires
 * before the leaf is what counts. */
#include <arpa/inet.h>
#include <lauxlib.h>
#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
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

/* X509_NAME as RFC 2253 text ("CN=localhost,O=Example"). */
static void push_name(lua_State *L, const X509_NAME *name) {
  BIO *bio = BIO_new(BIO_s_mem());
  char *text = NULL;
  long len = 0;
  if (bio && X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0)
    len = BIO_get_mem_data(bio, &text);
  lua_pushlstring(L, text ? text : "", text && len > 0 ? (size_t)len : 0);
  BIO_free(bio);
}

static void push_time(lua_State *L, const ASN1_TIME *t) {
  struct tm tm;
  if (t && ASN1_TIME_to_tm(t, &tm) == 1)
    lua_pushinteger(L, (lua_Integer)timegm(&tm));
  else
    lua_pushnil(L);
}

/* Sets t.san_dns and t.san_ip (t on top) from the leaf's subjectAltName. */
static void push_sans(lua_State *L, X509 *cert) {
  GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  int ndns = 0, nip = 0;
  lua_newtable(L); /* dns */
  lua_newtable(L); /* ip */
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_DNS) {
      const ASN1_IA5STRING *s = gn->d.dNSName;
      lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
      lua_rawseti(L, -3, ++ndns);
    } else if (gn->type == GEN_IPADD) {
      const ASN1_OCTET_STRING *s = gn->d.iPAddress;
      int len = ASN1_STRING_length(s);
      char ip[INET6_ADDRSTRLEN];
      int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
      if (family && inet_ntop(family, ASN1_STRING_get0_data(s), ip, sizeof ip)) {
        lua_pushstring(L, ip);
        lua_rawseti(L, -2, ++nip);
      }
    }
  }
  GENERAL_NAMES_free(names);
  lua_setfield(L, -3, "san_ip");
  lua_setfield(L, -2, "san_dns");
}

static void push_hex(lua_State *L, const unsigned char *bytes, size_t n) {
  static const char digits[] = "0123456789abcdef";
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    luaL_addchar(&b, digits[bytes[i] >> 4]);
    luaL_addchar(&b, digits[bytes[i] & 15]);
  }
  luaL_pushresult(&b);
}

void cert_push_facts(lua_State *L, void *ssl) {
  X509 *leaf = SSL_get0_peer_certificate((SSL *)ssl);
  if (!leaf) {
    lua_pushnil(L);
    return;
  }
  lua_checkstack(L, 8);
  lua_createtable(L, 0, 12);
  push_name(L, X509_get_subject_name(leaf));
  lua_setfield(L, -2, "subject");
  push_name(L, X509_get_issuer_name(leaf));
  lua_setfield(L, -2, "issuer");
  push_sans(L, leaf);
  push_time(L, X509_get0_notBefore(leaf));
  lua_setfield(L, -2, "not_before");
  push_time(L, X509_get0_notAfter(leaf));
  lua_setfield(L, -2, "not_after");
  int64_t expiry = 0;
  if (cert_chain_expiry(ssl, &expiry)) {
    lua_pushinteger(L, (lua_Integer)expiry);
    lua_setfield(L, -2, "expiry");
  }
  STACK_OF(X509) *chain = SSL_get_peer_cert_chain((SSL *)ssl);
  lua_pushinteger(L, chain ? sk_X509_num(chain) : 1);
  lua_setfield(L, -2, "chain");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (X509_digest(leaf, EVP_sha256(), md, &mdlen) == 1) {
    push_hex(L, md, mdlen);
    lua_setfield(L, -2, "sha256");
  }
  const ASN1_INTEGER *serial = X509_get0_serialNumber(leaf);
  if (serial) {
    push_hex(L, ASN1_STRING_get0_data(serial), (size_t)ASN1_STRING_length(serial));
    lua_setfield(L, -2, "serial");
  }
  long v = SSL_get_verify_result((SSL *)ssl);
  lua_pushstring(L, v == X509_V_OK ? "ok" : X509_verify_cert_error_string(v));
  lua_setfield(L, -2, "verify");
}
