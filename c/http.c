/* HTTP transport: libcurl's multi_socket interface driven by libuv.
 *
 * One multi handle per loop (so connections are shared and reused), one
 * uv_poll per curl socket attached with curl_multi_assign, one timer that
 * follows CURLMOPT_TIMERFUNCTION. Finished transfers are collected after
 * every socket action; that is the only place a task is resumed, never from
 * inside a curl callback. See ../shared/CURL_LIBUV_NOTES.md.
 */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

typedef struct {
  uv_poll_t poll;
  curl_socket_t fd;
  int events;
  mw_http *http;
} http_socket;

static void handle_free(uv_handle_t *handle) {
  free(handle->data);
}

static void timer_free(uv_handle_t *handle) {
  free(handle);
}

static void http_on_timeout(uv_timer_t *timer);

void http_drain(mw_http *http) {
  CURLMsg *msg;
  int pending;
  while ((msg = curl_multi_info_read(http->multi, &pending))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    mw_request *req = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req);
    curl_multi_remove_handle(http->multi, easy);
    request_transfer_done(req, result);
  }
}

static void http_on_poll(uv_poll_t *handle, int status, int events) {
  http_socket *sock = handle->data;
  mw_http *http = sock->http;
  int flags = 0;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  if (status < 0) {
    /* libuv saw POLLERR (a reset) and stopped the poll. CURL_CSELECT_ERR
     * would only say "select/poll returned error"; letting curl read and
     * write gives it the real cause (ECONNRESET...). */
    flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
  }
  int running;
  curl_multi_socket_action(http->multi, sock->fd, flags, &running);
  /* The socket survives when curl still wants it; closing frees it only in
   * the close callback, so sock is still readable here. */
  if (status < 0 && !uv_is_closing((uv_handle_t *)handle) && sock->events)
    uv_poll_start(handle, sock->events, http_on_poll);
  http_drain(http);
}

static int http_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)easy;
  mw_http *http = userp;
  http_socket *sock = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (sock) {
      /* Closing stops epoll now, before curl closes the fd. */
      curl_multi_assign(http->multi, fd, NULL);
      uv_close((uv_handle_t *)&sock->poll, handle_free);
      http->sockets--;
    }
    return 0;
  }
  if (!sock) {
    sock = malloc(sizeof *sock);
    if (!sock)
      return -1;
    if (uv_poll_init_socket(&http->loop->uv, &sock->poll, fd) != 0) {
      free(sock);
      return -1;
    }
    sock->fd = fd;
    sock->http = http;
    sock->poll.data = sock;
    curl_multi_assign(http->multi, fd, sock);
    http->sockets++;
  }
  int events = 0;
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  sock->events = events;
  uv_poll_start(&sock->poll, events, http_on_poll);
  return 0;
}

static int http_on_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  mw_http *http = userp;
  if (timeout_ms < 0)
    uv_timer_stop(http->timer);
  else /* libuv 1.44 spins on a 0 ms timer started from a timer callback */
    uv_timer_start(http->timer, http_on_timeout, timeout_ms ? (uint64_t)timeout_ms : 1, 0);
  return 0;
}

static void http_on_timeout(uv_timer_t *timer) {
  mw_http *http = timer->data;
  int running;
  curl_multi_socket_action(http->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  http_drain(http);
}

mw_http *http_get(mw_loop *loop, const char **error) {
  if (loop->http)
    return loop->http;
  static int global_ready;
  if (!global_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      *error = "curl_global_init failed";
      return NULL;
    }
    global_ready = 1;
  }
  mw_http *http = calloc(1, sizeof *http);
  uv_timer_t *timer = malloc(sizeof *timer);
  CURLM *multi = curl_multi_init();
  if (!http || !timer || !multi) {
    free(http);
    free(timer);
    if (multi)
      curl_multi_cleanup(multi);
    *error = "out of memory";
    return NULL;
  }
  http->loop = loop;
  http->multi = multi;
  http->timer = timer;
  uv_timer_init(&loop->uv, timer);
  timer->data = http;
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, http_on_socket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, http);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, http_on_timer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, http);
  loop->http = http;
  return http;
}

void http_count_requests(mw_http *http, int delta) {
  http->requests += delta;
  /* curl sizes its connection cache to 4 x the transfers in flight, not to
   * the endpoints we keep warm; size it to the request objects. */
  if (delta > 0 && http->requests + 16 > http->maxconnects) {
    http->maxconnects = http->requests * 2 + 16;
    curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS, http->maxconnects);
  }
}

void http_shutdown(mw_loop *loop) {
  mw_http *http = loop->http;
  if (!http)
    return;
  /* Remove every transfer first: cleaning a multi with transfers attached
   * left a poll on a closed fd. */
  while (http->inflight) {
    mw_request *req = http->inflight;
    if (req->task)
      task_cancel(req->task);
    if (http->inflight == req)
      request_abort(req);
  }
  curl_multi_cleanup(http->multi); /* closes cached connections via callbacks */
  http->multi = NULL;
  uv_close((uv_handle_t *)http->timer, timer_free);
  free(http);
  loop->http = NULL;
}
