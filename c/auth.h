/* L0: HTTP credentials, checked in constant time: a bearer token or a user
 * and password (basic auth). */
#ifndef MW_AUTH_H
#define MW_AUTH_H

#define MW_AUTH_DIGEST 32

typedef enum { MW_AUTH_NONE, MW_AUTH_BEARER, MW_AUTH_BASIC } mw_auth_kind;

/* Only digests of the secrets are kept: comparing digests takes the same
 * time whatever the length of what was presented. */
typedef struct {
  mw_auth_kind kind;
  unsigned char token[MW_AUTH_DIGEST]; /* bearer token, or basic's user */
  unsigned char password[MW_AUTH_DIGEST];
} mw_auth;

/* Return 0, or -1 when the digest cannot be computed. */
int auth_set_bearer(mw_auth *a, const char *token);
int auth_set_basic(mw_auth *a, const char *user, const char *password);
/* Whether an Authorization header value (NULL: none) carries the
 * credentials. With MW_AUTH_NONE nothing does. */
int auth_check(const mw_auth *a, const char *authorization);
/* The WWW-Authenticate value of a 401. */
const char *auth_challenge(const mw_auth *a);

#endif
