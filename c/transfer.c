/* L3: transfers, a pool of curl easy handles shared by all request objects.
 *
 * A request object holds only its settings; a perform borrows a transfer for
 * as long as it is in flight. So memory follows the requests in flight, not
 * the monitors declared: curl keeps a 16 KiB buffer per easy handle, and one
 * per monitor made 10,000 monitors cost 400 MB. A transfer that goes back to
 * the request it last ran for keeps its settings (no reset).
 */
#include <stdlib.h>
#include <string.h>

#include "cert.h"
#include "http_private.h"

static int buf_append(mw_buf *b, const char *data, size_t len, size_t limit) {
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + len)
      cap *= 2;
    if (cap > limit)
      cap = limit;
    char *p = realloc(b->data, cap);
    if (!p)
      return 0;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 1;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp) {
  mw_transfer *t = userp;
  size_t len = size * n;
  t->size += len;
  size_t room = t->max_body - t->body.len;
  size_t take = len < room ? len : room;
  /* Past max_body the bytes are counted and dropped: memory stays bounded
   * whatever the server sends. */
  if (take && !buf_append(&t->body, data, take, t->max_body))
    t->truncated = 1;
  if (take < len)
    t->truncated = 1;
  return len;
}

/* The certificates are read while curl still holds the connection: after the
 * transfer ends curl detaches it and CURLINFO_TLS_SSL_PTR gives nothing.
 * CURLINFO_CERTINFO would be empty on a reused connection; the SSL object
 * keeps the peer's chain for as long as the connection lives. */
static void transfer_read_cert(mw_transfer *t) {
  struct curl_tlssessioninfo *tsi = NULL;
  if (curl_easy_getinfo(t->easy, CURLINFO_TLS_SSL_PTR, &tsi) != CURLE_OK || !tsi ||
      tsi->backend != CURLSSLBACKEND_OPENSSL || !tsi->internals)
    return;
  t->has_cert = cert_chain_expiry(tsi->internals, &t->cert_expiry);
}

static size_t on_header(char *data, size_t size, size_t n, void *userp) {
  mw_transfer *t = userp;
  size_t len = size * n;
  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
    /* a new response (after 100 Continue) starts over */
    t->head.len = 0;
    t->head_size = len;
    t->head_done = 0;
    return len;
  }
  t->head_size += len;
  if (t->head_size > MW_HTTP_HEAD_MAX) {
    t->head_over = 1;
    return 0; /* stops the transfer: CURLE_WRITE_ERROR */
  }
  if ((len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n')) {
    t->head_done = 1;
    if (t->want_cert && !t->has_cert)
      transfer_read_cert(t);
  }
  if (!buf_append(&t->head, data, len, MW_HTTP_HEAD_MAX))
    return 0;
  return len;
}

/* The options every transfer has, whatever request it runs. */
static void transfer_setup(mw_transfer *t) {
  CURL *e = t->easy;
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, http_on_closesocket);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, t->http);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, http_on_opensocket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  /* Debian's default CA path disables curl's CA-store cache: 52 vs 1,560
   * new verified connections/s. */
  curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
}

static void transfer_clear(mw_transfer *t) {
  t->head.len = t->body.len = 0;
  t->size = t->head_size = 0;
  t->truncated = t->head_over = t->head_done = 0;
  t->socket_errno = 0;
  t->has_cert = 0;
  t->cert_expiry = 0;
  t->errbuf[0] = '\0';
}

mw_transfer *transfer_acquire(mw_http *http, uint64_t config, size_t max_body, int *setup) {
  /* Prefer the transfer these settings used last: it still holds them. Only
   * the first two are looked at; the pool can be large. */
  mw_transfer **pick = &http->idle;
  if (*pick && (*pick)->configured != config && (*pick)->next &&
      (*pick)->next->configured == config)
    pick = &(*pick)->next;
  mw_transfer *t = *pick;
  if (t) {
    *pick = t->next;
    http->idle_count--;
  } else {
    t = calloc(1, sizeof *t);
    if (!t)
      return NULL;
    t->http = http;
    t->easy = curl_easy_init();
    if (!t->easy) {
      free(t);
      return NULL;
    }
    transfer_setup(t);
  }
  t->next = NULL;
  *setup = 0;
  if (t->configured != config || t->dirty) {
    if (t->configured) {
      curl_easy_reset(t->easy);
      transfer_setup(t);
    }
    *setup = 1;
    t->configured = config;
    t->dirty = 0;
  }
  t->max_body = max_body;
  t->want_cert = 0;
  return t; /* cleared before each start (transfer_clear) */
}

const char *transfer_start(mw_transfer *t, mw_transfer_done_fn done, void *data) {
  transfer_clear(t);
  CURLMcode mc = curl_multi_add_handle(t->http->multi, t->easy);
  if (mc != CURLM_OK)
    return curl_multi_strerror(mc);
  t->done = done;
  t->done_data = data;
  t->running = 1;
  http_count_transfer(t->http, 1);
  return NULL;
}

void transfer_stop(mw_transfer *t) {
  if (!t->running)
    return;
  curl_multi_remove_handle(t->http->multi, t->easy);
  http_count_transfer(t->http, -1);
  t->running = 0;
}

static void transfer_free(mw_transfer *t) {
  curl_easy_cleanup(t->easy);
  free(t->body.data);
  free(t->head.data);
  free(t);
}

void transfer_release(mw_transfer *t) {
  mw_http *http = t->http;
  transfer_stop(t);
  t->done = NULL;
  t->done_data = NULL;
  if (http->idle_count >= MW_HTTP_POOL_IDLE_MAX) {
    transfer_free(t);
    return;
  }
  if (t->body.cap > MW_HTTP_BODY_KEEP_MAX) {
    free(t->body.data);
    t->body.data = NULL;
    t->body.cap = 0;
  }
  if (t->head.cap > MW_HTTP_HEAD_KEEP_MAX) {
    free(t->head.data);
    t->head.data = NULL;
    t->head.cap = 0;
  }
  t->next = http->idle;
  http->idle = t;
  http->idle_count++;
}

void transfer_forget(mw_http *http, uint64_t config) {
  for (mw_transfer *t = http->idle; t; t = t->next)
    if (t->configured == config)
      t->dirty = 1; /* its settings point at memory being freed */
}

void transfer_pool_free(mw_http *http) {
  while (http->idle) {
    mw_transfer *t = http->idle;
    http->idle = t->next;
    transfer_free(t);
  }
  http->idle_count = 0;
}
