/* L3: the HTTP transport: libcurl's multi handle on the loop, and a pool of
 * transfers (curl easy handles) that its users borrow.
 *
 * A user borrows a transfer, sets its own options on it when asked, starts
 * it, and is called back once when it ends (CURLINFO_PRIVATE is the only link
 * from curl to the transfer, as in curl's multi-uv.c). The transport never
 * calls its users otherwise; a user stops its own transfers before it
 * closes, and registers its closer after http_get so that it runs first. */
#ifndef MW_HTTP_H
#define MW_HTTP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

/* Response headers past this fail the transfer (curl's own limits are 100
 * KiB a line, 300 KiB in all). */
#define MW_HTTP_HEAD_MAX (256 * 1024)

typedef struct mw_http mw_http;
typedef struct mw_transfer mw_transfer;
typedef struct mw_endpoint mw_endpoint;

/* A transfer ended (result CURLE_OK: a response came); it is out of curl's
 * hands and may be started again or released from here. */
typedef void (*mw_transfer_done_fn)(mw_transfer *t, CURLcode result, void *data);

typedef struct {
  char *data;
  size_t len, cap;
} mw_buf;

struct mw_transfer {
  CURL *easy;
  /* what the current response brought */
  mw_buf body, head;
  size_t size;         /* body bytes received, kept or not */
  int truncated;       /* the body went past max_body */
  int head_over;       /* the headers passed MW_HTTP_HEAD_MAX: the transfer stopped */
  int head_done;       /* the current response's header block has ended */
  int socket_errno;    /* why the last socket could not be opened, or 0 */
  int has_cert;        /* cert_expiry was read from this response's connection */
  int64_t cert_expiry; /* the earliest notAfter of the peer's certificates */
  char errbuf[CURL_ERROR_SIZE];
  /* Set by the user before each start: read the peer's certificates (the
   * transfer costs nothing more without it). */
  int want_cert;
  /* Set by the user when it changes the transfer's options mid-use (a
   * redirect): the next user must set its own again. */
  int dirty;
  /* the transport's own */
  mw_http *http;
  uint64_t configured; /* the settings it holds (a user's id), 0: none */
  size_t max_body;
  size_t head_size; /* header bytes of the current response */
  int running;      /* in curl's hands */
  mw_transfer_done_fn done;
  void *done_data;
  mw_transfer *next; /* in the idle pool */
};

/* The loop's transport, made on first use (with the resolver, which it
 * outlives by closing first). NULL and *error when curl cannot start. */
mw_http *http_get(mw_loop *loop, const char **error);
mw_loop *http_loop(const mw_http *http);
/* A new id for a user's settings (never 0). */
uint64_t http_new_id(mw_http *http);

/* A host:port that users point at, counted to size curl's connection cache.
 * NULL when out of memory. */
mw_endpoint *http_endpoint_ref(mw_http *http, const char *host, long port);
void http_endpoint_unref(mw_http *http, mw_endpoint *e);

/* Borrows a transfer for the settings with id config; prefers one that holds
 * them already. *setup is set when they must be set on t->easy now (the
 * handle is new or was reset). NULL when out of memory. */
mw_transfer *transfer_acquire(mw_http *http, uint64_t config, size_t max_body, int *setup);
/* Clears the last response and hands the transfer to curl; done runs once
 * when it ends. Returns NULL, or why it could not start. */
const char *transfer_start(mw_transfer *t, mw_transfer_done_fn done, void *data);
/* Takes a running transfer back from curl; done does not run. */
void transfer_stop(mw_transfer *t);
/* Gives the transfer back to the pool (stopping it first if it runs). */
void transfer_release(mw_transfer *t);
/* The settings with id config are going away: transfers holding them are
 * set up again before their next use. */
void transfer_forget(mw_http *http, uint64_t config);

#endif
