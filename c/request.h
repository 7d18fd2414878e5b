/* L4: HTTP requests: settings fixed once, performed again and again.
 *
 * A perform resolves the host with the resolver when needed, hands curl the
 * addresses, runs a borrowed transfer and follows redirects itself (so a
 * redirect to another host is resolved on the loop too). It ends by calling
 * the perform's done function once, unless it is aborted first. The Lua side
 * (request_lua.c) owns the memory of a request; this file owns its contents.
 */
#ifndef MW_REQUEST_H
#define MW_REQUEST_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "resolver.h"

typedef struct mw_request mw_request;

/* The settings of a request. The strings are copied by request_init; the
 * header list is taken over by it (freed with the request, or on failure). */
typedef struct {
  const char *url, *method, *body, *ca_file, *user_agent;
  size_t body_len; /* body != NULL: the request sends a body (maybe empty) */
  double timeout, connect_timeout;
  int follow, verify, fresh, trust_redirects, allow_insecure;
  int cert_info; /* read the expiry of the server's certificates */
  long max_redirects;
  size_t max_body;
  struct curl_slist *headers;
} mw_request_options;

/* What a successful perform got. The pointers are valid while done runs. */
typedef struct {
  long status;
  const char *head, *body; /* raw header block of the final response, body */
  size_t head_len, body_len;
  size_t size;   /* body bytes received (kept or not) */
  int truncated; /* the body went past max_body */
  const char *url, *ip;
  int redirects;
  long connects;
  int has_cert;        /* cert_info was asked for and the final response came over TLS */
  int64_t cert_expiry; /* Unix time: the earliest notAfter of the server's certificates */
  /* seconds from the start of the perform to the end of each phase */
  double dns, connect, tls, first_byte, total, redirect;
} mw_response;

/* Exactly one of res (a response) and kind/message (a failure: kind is one
 * of the documented failure kinds) is set. The request is idle again. */
typedef void (*mw_request_done_fn)(mw_request *req, const mw_response *res, const char *kind,
                                   const char *message, void *data);

/* The bytes a request needs; the caller provides them to request_init. */
size_t request_size(void);
/* Sets up req from o; NULL, or why the options cannot be used (req then
 * holds nothing: request_free is not needed). */
const char *request_init(mw_request *req, mw_http *http, mw_resolver *resolver,
                         mw_request_options *o);
/* Aborts a perform in flight and frees the settings. */
void request_free(mw_request *req);
/* NULL, or why url cannot be requested (scheme, syntax, bytes). */
const char *request_check_url(const char *url);

/* Starts a perform. Returns NULL when it runs (done will be called from the
 * loop), or why it could not start (*kind set; done will not be called). */
const char *request_perform(mw_request *req, mw_request_done_fn done, void *data,
                            const char **kind);
/* Stops a perform in flight without calling done. */
void request_abort(mw_request *req);
int request_busy(const mw_request *req);
const char *request_url(const mw_request *req);
const char *request_method(const mw_request *req);

#endif
