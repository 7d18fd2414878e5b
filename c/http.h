/* The HTTP transport (http.c) and the request objects it runs (request.c). */
#ifndef MW_HTTP_H
#define MW_HTTP_H

#include <curl/curl.h>

#include "loop.h"
#include "resolver.h"

typedef struct mw_request mw_request;
typedef struct mw_transfer mw_transfer;

#define HTTP_ENDPOINT_BUCKETS 4096
/* Response headers past this fail the transfer (curl's own limits are 100
 * KiB a line, 300 KiB in all). */
#define HTTP_HEAD_MAX (256 * 1024)

/* A host:port that request objects point at, counted to size curl's
 * connection cache. */
typedef struct http_endpoint {
  struct http_endpoint *next;
  int refs;
  uint32_t bucket;
  char key[];
} http_endpoint;

struct mw_http {
  mw_loop *loop;
  CURLM *multi;
  uv_timer_t *timer;
  mw_request *inflight;         /* list of requests between perform and result */
  struct http_socket_s **by_fd; /* polls by fd, parked ones included */
  int by_fd_cap;
  long maxconnects;
  http_endpoint *endpoints[HTTP_ENDPOINT_BUCKETS];
  int nendpoints;
  int transfers; /* in curl's hands */
  int window_peak, prev_peak;
  uint64_t window_start;
  uint64_t next_request_id;
  mw_transfer *idle; /* the transfer pool */
  int idle_count;
};

typedef enum { REQ_IDLE, REQ_RESOLVING, REQ_TRANSFER } mw_request_phase;

typedef struct {
  char *data;
  size_t len, cap;
} mw_buf;

/* A curl easy handle from the pool, and the response it receives. */
struct mw_transfer {
  CURL *easy;
  mw_http *http;
  mw_request *req;     /* the request it runs now, NULL when idle */
  uint64_t configured; /* id of the request whose settings it holds */
  int dirty;           /* settings changed since (a redirect, a freed request) */
  size_t max_body;
  mw_buf body, head;
  size_t size;
  int truncated;
  size_t head_size; /* header bytes of the current response */
  int head_over;    /* they passed the limit: the transfer was stopped */
  int head_done;    /* the current response's header block has ended */
  int socket_errno; /* why the last socket could not be opened, or 0 */
  char errbuf[CURL_ERROR_SIZE];
  struct mw_transfer *next; /* in the idle pool */
};

struct mw_request {
  mw_loop *loop;
  mw_http *http;
  uint64_t id;
  http_endpoint *endpoint; /* of its own url */
  mw_transfer *xfer;       /* while the transfer runs */
  mw_task *task;           /* the waiting task while in flight */
  int self_ref;            /* anchors the userdata while in flight */
  mw_request_phase phase;
  mw_request *prev, *next;

  /* settings, fixed at prepare */
  char *url;
  char *method;
  char *body;
  size_t body_len;
  int has_body;
  char *ca_file;
  char *user_agent;
  int verify, fresh;
  double timeout, connect_timeout;
  int follow;
  long max_redirects;
  size_t max_body;
  struct curl_slist *headers_list;
  /* headers_list without credentials (Authorization, Cookie,
   * Proxy-Authorization), sent once a redirect leaves the origin */
  struct curl_slist *headers_public;
  int has_credentials;
  int trust_redirects; /* send credentials to any host a redirect names */
  int allow_insecure;  /* follow https -> http */

  /* the current hop */
  char *hop_url; /* NULL: the request's own url */
  char *host;
  long port;
  int https;
  int host_literal;
  int left_origin; /* a redirect of this perform went to another origin */
  char *resolved;  /* the CURLOPT_RESOLVE entry curl has, to set it only on change */
  struct curl_slist *resolve;
  mw_dns_query *dns;
  uv_timer_t *deadline; /* bounds the DNS phase; curl bounds the rest */
  uint64_t start_ns, hop_ns, dns_ns;
  int redirects;
  double redirect_s;
};

mw_http *http_get(mw_loop *loop, const char **error);
int http_on_closesocket(void *clientp, curl_socket_t fd);
curl_socket_t http_on_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr);
void http_drain(mw_http *http);
http_endpoint *http_endpoint_ref(mw_http *http, const char *host, long port);
void http_endpoint_unref(mw_http *http, http_endpoint *e);
void http_count_transfer(mw_http *http, int delta);

void request_transfer_done(mw_request *req, CURLcode result);
/* Sets the request's own options on an easy handle. */
void request_apply(mw_request *req, CURL *easy);

mw_transfer *transfer_acquire(mw_http *http, mw_request *req);
void transfer_release(mw_transfer *t);
/* Forgets the last response, before the transfer runs again. */
void transfer_clear(mw_transfer *t);
/* A request object is going away: transfers holding its settings must be
 * set up again before their next use. */
void transfer_forget(mw_http *http, uint64_t request_id);
void transfer_pool_free(mw_http *http);
/* Stops the request without resuming its task. */
void request_abort(mw_request *req);

#endif
