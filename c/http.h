/* The HTTP transport (http.c) and the request objects it runs (request.c). */
#ifndef MW_HTTP_H
#define MW_HTTP_H

#include <curl/curl.h>

#include "loop.h"
#include "resolver.h"

typedef struct mw_request mw_request;

struct mw_http {
  mw_loop *loop;
  CURLM *multi;
  uv_timer_t *timer;
  mw_request *inflight; /* list of requests between perform and result */
  int sockets;
  struct http_socket_s **by_fd; /* polls by fd, parked ones included */
  int by_fd_cap;
  int requests; /* request objects alive */
  long maxconnects;
};

typedef enum { REQ_IDLE, REQ_RESOLVING, REQ_TRANSFER } mw_request_phase;

typedef struct {
  char *data;
  size_t len, cap;
} mw_buf;

struct mw_request {
  mw_loop *loop;
  mw_http *http;
  CURL *easy;
  mw_task *task; /* the waiting task while in flight */
  int self_ref;  /* anchors the userdata while in flight */
  mw_request_phase phase;
  mw_request *prev, *next;

  /* settings, fixed at prepare */
  char *url;
  char *method;
  int has_body;
  double timeout, connect_timeout;
  int follow;
  long max_redirects;
  size_t max_body;
  struct curl_slist *headers_list;

  /* the current hop */
  char *hop_url; /* NULL: the request's own url */
  char *host;
  long port;
  int host_literal;
  char *resolved; /* the CURLOPT_RESOLVE entry curl has, to set it only on change */
  struct curl_slist *resolve;
  int method_changed; /* a 303 turned it into GET; restore at next perform */
  mw_dns_query *dns;
  uv_timer_t *deadline; /* bounds the DNS phase; curl bounds the rest */
  uint64_t start_ns, hop_ns, dns_ns;
  int redirects;
  double redirect_s;

  /* the response */
  mw_buf body, head;
  size_t size;
  int truncated;
  char errbuf[CURL_ERROR_SIZE];
};

mw_http *http_get(mw_loop *loop, const char **error);
int http_on_closesocket(void *clientp, curl_socket_t fd);
void http_drain(mw_http *http);
void http_count_requests(mw_http *http, int delta);

void request_transfer_done(mw_request *req, CURLcode result);
/* Stops the request without resuming its task. */
void request_abort(mw_request *req);

#endif
