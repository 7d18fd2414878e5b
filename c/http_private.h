/* L3: what http.c and transfer.c, the two halves of the HTTP transport,
 * share. Nothing else includes it. */
#ifndef MW_HTTP_PRIVATE_H
#define MW_HTTP_PRIVATE_H

#include "http.h"

#define MW_HTTP_ENDPOINT_BUCKETS 4096
#define MW_HTTP_POOL_IDLE_MAX 256
#define MW_HTTP_BODY_KEEP_MAX (64 * 1024) /* larger body buffers are not pooled */
#define MW_HTTP_HEAD_KEEP_MAX (16 * 1024)

struct mw_endpoint {
  mw_endpoint *next;
  int refs;
  uint32_t bucket;
  char key[];
};

struct mw_http {
  mw_loop *loop;
  CURLM *multi;
  uv_timer_t *timer;
  long maxconnects;
  mw_endpoint *endpoints[MW_HTTP_ENDPOINT_BUCKETS];
  int nendpoints;
  int transfers; /* in curl's hands */
  int window_peak, prev_peak;
  uint64_t window_start;
  uint64_t next_id;
  mw_transfer *idle; /* the transfer pool */
  int idle_count;
  mw_hook closer;
};

/* curl's socket callbacks for each easy handle (http.c). */
int http_on_closesocket(void *clientp, curl_socket_t fd);
curl_socket_t http_on_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr);
/* Counts transfers in curl's hands, to size its connection cache. */
void http_count_transfer(mw_http *http, int delta);
void transfer_pool_free(mw_http *http);

#endif
