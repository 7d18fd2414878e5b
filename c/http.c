/* L3: the HTTP transport: libcurl's multi_socket interface driven by libuv.
 *
 * One multi handle per loop (so connections are shared and reused), one
 * registered fd per curl socket attached with curl_multi_assign, one timer that
 * follows CURLMOPT_TIMERFUNCTION. A poll is changed only when the events
 * curl wants change (each uv_poll_start is an epoll DEL and ADD), and a
 * connection back in curl's cache keeps its stopped poll until curl closes
 * the socket, so the next request on it needs no new handle. */
#include <errno.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hash.h"
#include "http_private.h"
#include "resolver.h"

/* A curl socket, registered with the loop (owner: the mw_http). */
typedef struct {
  mw_fd w;  /* first: the registry's pointer is the socket's */
  int want; /* what curl asked to watch */
  int idle; /* curl does not watch it now: an idle cached connection */
  mw_http *http;
} http_socket;

static const char http_key = 'H';

static void socket_free(mw_fd *w) {
  free(w);
}

static void timer_free(uv_handle_t *handle) {
  free(handle);
}

static void http_on_timeout(uv_timer_t *timer);
static void http_size_cache(mw_http *http);

static void http_drain(mw_http *http) {
  CURLMsg *msg;
  int pending;
  while ((msg = curl_multi_info_read(http->multi, &pending))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    mw_transfer *t = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
    curl_multi_remove_handle(http->multi, easy);
    http_count_transfer(http, -1);
    t->running = 0;
    t->done(t, result, t->done_data);
  }
}

static void http_on_poll(mw_fd *w, int status, int events) {
  http_socket *sock = (http_socket *)w;
  mw_http *http = sock->http;
  if (sock->idle) {
    /* The server closed an idle connection (or sent what it should not):
     * stop watching; curl finds it dead when it next picks it. */
    loop_fd_watch(&sock->w, 0);
    return;
  }
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
  curl_multi_socket_action(http->multi, w->fd, flags, &running);
  /* Closing frees sock only in the close callback, so it is still readable
   * here; if curl still wants the socket, watch it again. */
  if (status < 0 && !uv_is_closing((uv_handle_t *)&w->poll) && !sock->idle)
    loop_fd_watch(&sock->w, sock->want);
  http_drain(http);
}

static int http_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)easy;
  mw_http *http = userp;
  http_socket *sock = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (sock) {
      curl_multi_assign(http->multi, fd, NULL);
      sock->idle = 1;
      sock->want = 0;
      /* Left registered when it watches just reading: the next request on
       * this connection usually wants exactly that, so it costs no epoll
       * call. Any other mask is removed now, while the fd is still open. */
      if (sock->w.events != UV_READABLE)
        loop_fd_watch(&sock->w, 0);
      loop_fd_keep_alive(&sock->w, 0); /* idle: the loop may end */
    }
    return 0;
  }
  if (!sock)
    sock = (http_socket *)loop_fd_find(http->loop, fd, http);
  if (!sock) {
    sock = malloc(sizeof *sock);
    if (!sock)
      return -1;
    if (loop_fd_open(http->loop, &sock->w, fd, http, http_on_poll, socket_free) != 0) {
      free(sock);
      return -1;
    }
    sock->want = 0;
    sock->http = http;
    sock->idle = 1; /* assigned to curl just below */
  }
  if (sock->idle) {
    sock->idle = 0;
    loop_fd_keep_alive(&sock->w, 1);
    curl_multi_assign(http->multi, fd, sock);
  }
  int events = 0;
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  sock->want = events;
  loop_fd_watch(&sock->w, events);
  return 0;
}

static int http_on_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  mw_http *http = userp;
  if (timeout_ms < 0) {
    uv_timer_stop(http->timer);
    return 0;
  }
  /* libuv 1.44 spins on a 0 ms timer started from a timer callback. */
  uint64_t ms = timeout_ms ? (uint64_t)timeout_ms : 1;
  /* Keep a sooner deadline: curl asks again after every new transfer, and
   * re-arming each time pushed the timer out for as long as checks kept
   * starting (10,000 a second never let it fire). Firing early is harmless. */
  if (uv_is_active((uv_handle_t *)http->timer) && uv_timer_get_due_in(http->timer) <= ms)
    return 0;
  uv_timer_start(http->timer, http_on_timeout, ms, 0);
  return 0;
}

static void http_on_timeout(uv_timer_t *timer) {
  mw_http *http = timer->data;
  int running;
  curl_multi_socket_action(http->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  http_drain(http);
}

curl_socket_t http_on_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr) {
  (void)purpose;
  mw_transfer *t = clientp;
  curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);
  if (fd == CURL_SOCKET_BAD) {
    t->socket_errno = errno; /* curl says only "couldn't connect" */
    return fd;
  }
  /* curl closes some sockets without the close callback (its own cache
   * handle does): a registration left for this number is stale. */
  loop_fd_forget(t->http->loop, fd);
  return fd;
}

/* Every socket curl closes passes here (CURLOPT_CLOSESOCKETFUNCTION of each
 * request): its poll goes first, so epoll never watches a closed fd. */
int http_on_closesocket(void *clientp, curl_socket_t fd) {
  mw_http *http = clientp;
  mw_fd *w = loop_fd_find(http->loop, fd, http);
  if (w)
    loop_fd_close(w);
  return close(fd);
}

static void http_close(mw_loop *loop, void *data);

mw_http *http_get(mw_loop *loop, const char **error) {
  mw_http *found = loop_ext(loop, &http_key);
  if (found)
    return found;
  /* First what it uses, so that it closes before them. */
  if (!resolver_get(loop, error))
    return NULL;
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
  loop_set_ext(loop, &http_key, http);
  loop_at_close(loop, &http->closer, http_close, http);
  http_size_cache(http);
  return http;
}

mw_loop *http_loop(const mw_http *http) {
  return http->loop;
}

uint64_t http_new_id(mw_http *http) {
  return ++http->next_id;
}

/* curl sizes its connection cache to 4 x the transfers in flight, not to the
 * endpoints we keep warm (2,000 hosts opened a connection per request); a
 * cache far larger than the endpoints fills one host's bundle with idle
 * connections that every request to it scans. So: one per endpoint, plus
 * curl's own 4 per transfer at the busiest so far. */
static void http_size_cache(mw_http *http) {
  int peak = http->window_peak > http->prev_peak ? http->window_peak : http->prev_peak;
  long want = http->nendpoints + 4L * peak + 16;
  if (want != http->maxconnects) {
    http->maxconnects = want;
    curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS, want);
  }
}

mw_endpoint *http_endpoint_ref(mw_http *http, const char *host, long port) {
  char key[512];
  snprintf(key, sizeof key, "%s:%ld", host, port);
  uint32_t b = hash_string(key) % MW_HTTP_ENDPOINT_BUCKETS;
  mw_endpoint *e = http->endpoints[b];
  while (e && strcmp(e->key, key) != 0)
    e = e->next;
  if (!e) {
    size_t len = strlen(key);
    e = malloc(sizeof *e + len + 1);
    if (!e)
      return NULL;
    memcpy(e->key, key, len + 1);
    e->refs = 0;
    e->bucket = b;
    e->next = http->endpoints[b];
    http->endpoints[b] = e;
    http->nendpoints++;
    http_size_cache(http);
  }
  e->refs++;
  return e;
}

/* The peak counts over the last 10 to 20 s, so a burst's connections are
 * let go once it has passed instead of lengthening every scan for good. */
void http_count_transfer(mw_http *http, int delta) {
  http->transfers += delta;
  uint64_t now = uv_now(&http->loop->uv);
  if (now - http->window_start >= 10000) {
    http->prev_peak = http->window_peak;
    http->window_peak = http->transfers;
    http->window_start = now;
    http_size_cache(http);
  }
  if (http->transfers > http->window_peak) {
    http->window_peak = http->transfers;
    http_size_cache(http);
  }
}

void http_endpoint_unref(mw_http *http, mw_endpoint *e) {
  if (!e || --e->refs > 0)
    return;
  mw_endpoint **p = &http->endpoints[e->bucket];
  while (*p != e)
    p = &(*p)->next;
  *p = e->next;
  free(e);
  http->nendpoints--;
  http_size_cache(http);
}

static void http_close(mw_loop *loop, void *data) {
  mw_http *http = data;
  /* Users stopped their transfers in their own closers, which ran first. */
  transfer_pool_free(http);
  curl_multi_cleanup(http->multi);
  http->multi = NULL;
  for (int b = 0; b < MW_HTTP_ENDPOINT_BUCKETS; b++) {
    while (http->endpoints[b]) {
      mw_endpoint *e = http->endpoints[b];
      http->endpoints[b] = e->next;
      free(e);
    }
  }
  /* curl closes its cache with a handle of its own, without our close
   * callback: the fds left are ones curl has closed. */
  loop_fd_close_all(loop, http);
  uv_close((uv_handle_t *)http->timer, timer_free);
  loop_set_ext(loop, &http_key, NULL);
  free(http);
}
