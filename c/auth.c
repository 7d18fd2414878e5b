/* L0: HTTP credentials in constant time (see auth.h), with OpenSSL's
 * digest, base64 decoder and CRYPTO_memcmp. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int digest(const void *p, size_t n, unsigned char out[MW_AUTH_DIGEST]) {
  unsigned int len = 0;
  return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 && len == MW_AUTH_DIGEST ? 0 : -1;
}

int auth_set_bearer(mw_auth *a, const char *token) {
  memset(a, 0, sizeof *a);
  if (digest(token, strlen(token), a->token) != 0)
    return -1;
  a->kind = MW_AUTH_BEARER;
  return 0;
}

int auth_set_basic(mw_auth *a, const char *user, const char *password) {
  memset(a, 0, sizeof *a);
  if (digest(user, strlen(user), a->token) != 0 ||
      digest(password, strlen(password), a->password) != 0)
    return -1;
  a->kind = MW_AUTH_BASIC;
  return 0;
}

static int same(const unsigned char want[MW_AUTH_DIGEST], const void *p, size_t n) {
  unsigned char got[MW_AUTH_DIGEST];
  if (digest(p, n, got) != 0)
    return 0;
  return CRYPTO_memcmp(want, got, MW_AUTH_DIGEST) == 0;
}

/* The credentials after "<scheme> " (the scheme in any case, RFC 9110). */
static const char *after_scheme(const char *value, const char *scheme) {
  size_t n = strlen(scheme);
  if (strncasecmp(value, scheme, n) != 0 || value[n] != ' ')
    return NULL;
  value += n;
  while (*value == ' ')
    value++;
  return value;
}

static int check_basic(const mw_auth *a, const char *b64) {
  size_t n = strlen(b64);
  while (n > 0 && b64[n - 1] == ' ')
    n--;
  if (n == 0 || n % 4 != 0 || n > 4096)
    return 0;
  unsigned char *plain = malloc(n / 4 * 3 + 1);
  if (!plain)
    return 0;
  int len = EVP_DecodeBlock(plain, (const unsigned char *)b64, (int)n);
  if (len >= 0) /* EVP_DecodeBlock counts the padding as bytes */
    len -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
  int ok = 0;
  const unsigned char *colon = len > 0 ? memchr(plain, ':', (size_t)len) : NULL;
  if (colon) {
    size_t ulen = (size_t)(colon - plain);
    /* both compared, so a wrong user takes as long as a wrong password */
    int user_ok = same(a->token, plain, ulen);
    int pass_ok = same(a->password, colon + 1, (size_t)len - ulen - 1);
    ok = user_ok & pass_ok;
  }
  OPENSSL_cleanse(plain, n / 4 * 3 + 1);
  free(plain);
  return ok;
}

int auth_check(const mw_auth *a, const char *authorization) {
  if (!authorization || a->kind == MW_AUTH_NONE)
    return 0;
  if (a->kind == MW_AUTH_BEARER) {
    const char *token = after_scheme(authorization, "Bearer");
    return token && same(a->token, token, strlen(token));
  }
  const char *b64 = after_scheme(authorization, "Basic");
  return b64 && check_basic(a, b64);
}

const char *auth_challenge(const mw_auth *a) {
  return a->kind == MW_AUTH_BASIC ? "Basic realm=\"moonwatch\", charset=\"UTF-8\""
                                  : "Bearer realm=\"moonwatch\"";
}
