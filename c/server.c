/* L3: the server's sockets: listening sockets and accepted connections in
 * the loop's fd registry, non-blocking reads and writes, one timer per
 * connection (request, idle, write and linger times), and the server's
 * routes and options. The protocol is server_http.c's. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_private.h"

#define ACCEPT_PER_EVENT 64
#define REJECT_MAX 64       /* connections answered 503 at once, at most */
#define LINGER_MS 2000      /* reading what a client still sends after our close */
#define LINGER_BYTES 65536  /* ... and how much of it */
#define ACCEPT_PAUSE_MS 100 /* out of fds: the time until accepting again */

enum { TIMER_NONE, TIMER_IDLE, TIMER_REQUEST, TIMER_WRITE, TIMER_LINGER };

void server_options_default(mw_server_options *opt) {
  opt->max_connections = 256;
  opt->max_header_bytes = 8192;
  opt->max_body_bytes = 1024 * 1024;
  opt->request_timeout = 10;
  opt->idle_timeout = 60;
}

mw_server *server_alloc(const mw_server_options *opt) {
  mw_server *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  if (opt)
    s->opt = *opt;
  else
    server_options_default(&s->opt);
  list_init(&s->conns);
  list_init(&s->closer.link);
  return s;
}

void server_free(mw_server *s) {
  for (server_route *r = s->routes, *next; r; r = next) {
    next = r->next;
    free(r->method);
    free(r->path);
    free(r);
  }
  for (server_path *p = s->protected_paths, *next; p; p = next) {
    next = p->next;
    free(p);
  }
  free(s);
}

static void server_unref(mw_server *s) {
  if (--s->refs == 0 && s->closed)
    server_free(s);
}

/* Connections */

static void conn_update(server_conn *c);

static void conn_free(server_conn *c) {
  mw_server *s = c->s;
  free(c);
  server_unref(s);
}

static void conn_on_fd_closed(mw_fd *w) {
  server_conn *c = (server_conn *)w;
  if (--c->handles == 0)
    conn_free(c);
}

static void conn_on_timer_closed(uv_handle_t *h) {
  server_conn *c = h->data;
  if (--c->handles == 0)
    conn_free(c);
}

static void conn_close(server_conn *c) {
  if (c->closed)
    return;
  c->closed = 1;
  mw_server *s = c->s;
  list_remove(&c->link);
  if (c->rejected)
    s->nrejected--;
  else
    s->nconns--;
  server_conn_release(c);
  int fd = c->w.fd;
  loop_fd_close(&c->w);
  close(fd);
  uv_close((uv_handle_t *)&c->timer, conn_on_timer_closed);
}

void server_conn_kick(server_conn *c) {
  if (!c->s->loop || c->in_transport || c->closed)
    return;
  conn_update(c);
}

static void conn_on_timer(uv_timer_t *t) {
  server_conn *c = t->data;
  int kind = c->timer_kind;
  c->timer_kind = TIMER_NONE;
  if (kind == TIMER_REQUEST) {
    c->in_transport = 1;
    server_conn_timeout(c);
    c->in_transport = 0;
    if (!c->closed) {
      conn_update(c);
      return;
    }
  }
  conn_close(c); /* idle, a write that stalled, or lingering done */
}

static uint64_t ms_of(double seconds) {
  return seconds <= 0 ? 1 : (uint64_t)(seconds * 1000.0 + 0.5);
}

static void timer_set(server_conn *c, int kind, uint64_t ms) {
  if (c->timer_kind == kind && kind != TIMER_WRITE)
    return;
  c->timer_kind = kind;
  if (kind == TIMER_NONE)
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, conn_on_timer, ms ? ms : 1, 0);
}

/* The time limit of what the connection waits for now. */
static void conn_timer_update(server_conn *c, int wrote) {
  mw_server *s = c->s;
  uint64_t now = uv_now(&s->loop->uv);
  if (c->lingering) {
    timer_set(c, TIMER_LINGER, LINGER_MS);
  } else if (c->out.len > c->out_off || c->res.streaming) {
    if (wrote || c->timer_kind != TIMER_WRITE)
      timer_set(c, TIMER_WRITE, ms_of(s->opt.idle_timeout));
  } else if (c->in_message || (c->busy && c->res.held)) {
    if (c->timer_kind != TIMER_REQUEST) {
      uint64_t end = c->request_start_ms + ms_of(s->opt.request_timeout);
      timer_set(c, TIMER_REQUEST, end > now ? end - now : 1);
    }
  } else if (!c->busy) {
    timer_set(c, TIMER_IDLE, ms_of(s->opt.idle_timeout));
  } else {
    timer_set(c, TIMER_NONE, 0);
  }
}

/* A request began during a protocol call: its time starts now, and the
 * timer is armed afresh for whatever comes next (an idle time counts from
 * the last request, not from the first). */
static void conn_note_begun(server_conn *c, unsigned before) {
  if (c->begun == before)
    return;
  c->request_start_ms = uv_now(&c->s->loop->uv);
  c->timer_kind = TIMER_NONE;
}

/* Returns -1 when the connection failed. */
static int conn_flush(server_conn *c, int *wrote) {
  while (c->out.len > c->out_off) {
    ssize_t n = send(c->w.fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_off += (size_t)n;
      *wrote = 1;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    return -1;
  }
  c->out.len = c->out_off = 0;
  return 0;
}

/* Sends what is written, ends requests whose response went out, and
 * watches what the connection waits for next. */
static void conn_update(server_conn *c) {
  int wrote = 0;
  c->in_transport = 1;
  for (;;) {
    if (conn_flush(c, &wrote) != 0) {
      c->in_transport = 0;
      conn_close(c);
      return;
    }
    if (c->out.len > c->out_off || !server_conn_complete(c))
      break;
    unsigned begun = c->begun;
    server_conn_sent(c, 0);
    if (c->closed)
      return;
    conn_note_begun(c, begun);
    if (c->out.len == 0)
      break;
  }
  c->in_transport = 0;
  if (c->close_after && c->out.len == 0 && !c->busy && !c->lingering) {
    /* Half-close and read what the client still sends, so our last
     * response is not lost to a reset. */
    c->lingering = 1;
    shutdown(c->w.fd, SHUT_WR);
  }
  int events = 0;
  if (c->lingering || server_conn_reading(c))
    events |= UV_READABLE;
  if (!c->lingering && (c->out.len > c->out_off || c->res.streaming))
    events |= UV_WRITABLE;
  if (loop_fd_watch(&c->w, events) != 0) {
    conn_close(c);
    return;
  }
  conn_timer_update(c, wrote);
}

static void conn_read(server_conn *c) {
  if (c->lingering) {
    char sink[4096];
    ssize_t n;
    size_t total = 0;
    while ((n = recv(c->w.fd, sink, sizeof sink, 0)) > 0 && total < LINGER_BYTES)
      total += (size_t)n;
    if (n == 0 || total >= LINGER_BYTES || (n < 0 && errno != EAGAIN && errno != EINTR))
      conn_close(c);
    return;
  }
  if (!server_conn_reading(c))
    return;
  ssize_t n = recv(c->w.fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (n <= 0) { /* the client is gone, or has nothing more to ask */
    conn_close(c);
    return;
  }
  unsigned begun = c->begun;
  c->in_len += (size_t)n;
  c->in_transport = 1;
  server_conn_process(c);
  c->in_transport = 0;
  if (c->closed)
    return;
  conn_note_begun(c, begun);
  conn_update(c);
}

static void conn_on_events(mw_fd *w, int status, int events) {
  server_conn *c = (server_conn *)w;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (events & UV_READABLE) {
    conn_read(c);
    if (c->closed)
      return;
  }
  if (events & UV_WRITABLE) {
    if (c->out.len == c->out_off && c->res.streaming) {
      c->in_transport = 1;
      server_conn_sent(c, 1);
      c->in_transport = 0;
      if (c->closed)
        return;
    }
    conn_update(c);
  }
}

static void remote_format(char *out, size_t cap, const struct sockaddr_storage *ss) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
  }
}

static void conn_accept(mw_server *s, int fd, const struct sockaddr_storage *ss) {
  int rejected = s->nconns >= s->opt.max_connections;
  server_conn *c = rejected && s->nrejected >= REJECT_MAX ? NULL : calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return;
  }
  loop_fd_forget(s->loop, fd);
  if (loop_fd_open(s->loop, &c->w, fd, s, conn_on_events, conn_on_fd_closed) != 0) {
    free(c);
    close(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  uv_timer_init(&s->loop->uv, &c->timer);
  c->timer.data = c;
  c->handles = 2;
  s->refs++;
  server_conn_setup(c, s);
  remote_format(c->remote, sizeof c->remote, ss);
  list_push_back(&s->conns, &c->link);
  if (rejected) {
    s->nrejected++;
    c->rejected = 1;
    c->in_transport = 1;
    server_conn_error(c, 503);
    c->in_transport = 0;
  } else {
    s->nconns++;
  }
  conn_update(c);
}

static void on_resume_accepting(uv_timer_t *t) {
  mw_server *s = t->data;
  for (int i = 0; i < s->nlisteners; i++)
    loop_fd_watch(&s->listeners[i]->w, UV_READABLE);
}

/* Out of fds: accepting again in a while, once some connections are gone. */
static void server_pause_accepting(mw_server *s) {
  for (int i = 0; i < s->nlisteners; i++)
    loop_fd_watch(&s->listeners[i]->w, 0);
  uv_timer_start(s->accept_timer, on_resume_accepting, ACCEPT_PAUSE_MS, 0);
}

static void listener_on_events(mw_fd *w, int status, int events) {
  (void)events;
  server_listener *l = (server_listener *)w;
  if (status < 0)
    return;
  for (int i = 0; i < ACCEPT_PER_EVENT && !l->s->closed; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(w->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        server_pause_accepting(l->s); /* else the backlog keeps the fd readable: a busy loop */
      return;                         /* EAGAIN: the rest come with the next event */
    }
    conn_accept(l->s, fd, &ss);
  }
}

static void listener_on_closed(mw_fd *w) {
  server_listener *l = (server_listener *)w;
  mw_server *s = l->s;
  free(l);
  server_unref(s);
}

/* Listening */

static int addr_is_loopback(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

static int listener_open(mw_server *s, struct sockaddr_storage *ss, socklen_t len, char *err,
                         size_t errsz) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errsz, "socket: %s", strerror(errno));
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss->ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)ss, len) != 0 || listen(fd, 511) != 0) {
    snprintf(err, errsz, "%s", strerror(errno));
    close(fd);
    return -1;
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &blen);
  int port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                               : ((struct sockaddr_in *)&bound)->sin_port);
  server_listener *l = calloc(1, sizeof *l);
  if (!l) {
    close(fd);
    snprintf(err, errsz, "out of memory");
    return -1;
  }
  l->s = s;
  l->loopback = addr_is_loopback(ss);
  loop_fd_forget(s->loop, fd);
  if (loop_fd_open(s->loop, &l->w, fd, s, listener_on_events, listener_on_closed) != 0) {
    snprintf(err, errsz, "cannot watch the socket");
    free(l);
    close(fd);
    return -1;
  }
  s->refs++;
  s->listeners[s->nlisteners++] = l;
  if (loop_fd_watch(&l->w, UV_READABLE) != 0) {
    snprintf(err, errsz, "cannot watch the socket");
    return -1; /* closed with the server */
  }
  return port;
}

static int addr_fill(struct sockaddr_storage *ss, socklen_t *len, const char *ip, int port) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof *a4;
    return 0;
  }
  if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof *a6;
    return 0;
  }
  return -1;
}

/* "host:port", "[v6]:port", ":port" into host and port. */
static int listen_parse(const char *listen, char *host, size_t cap, int *port) {
  const char *colon;
  if (listen[0] == '[') {
    const char *close = strchr(listen, ']');
    if (!close || close[1] != ':' || (size_t)(close - listen - 1) >= cap)
      return -1;
    memcpy(host, listen + 1, (size_t)(close - listen - 1));
    host[close - listen - 1] = '\0';
    colon = close + 1;
  } else {
    colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= cap || memchr(listen, ':', (size_t)(colon - listen)))
      return -1;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
  }
  char *end;
  errno = 0;
  long p = strtol(colon + 1, &end, 10);
  if (colon[1] < '0' || colon[1] > '9' || *end || errno || p < 0 || p > 65535)
    return -1;
  *port = (int)p;
  return 0;
}

static void server_on_loop_close(mw_loop *loop, void *data) {
  (void)loop;
  server_close(data);
}

mw_server *server_open(mw_loop *loop, const char *listen, const mw_server_options *opt, char *err,
                       size_t errsz) {
  char host[64];
  int port;
  if (listen_parse(listen, host, sizeof host, &port) != 0) {
    snprintf(err, errsz,
             "'%s' is not host:port (an IP address, [IPv6]:port, localhost, or :port for "
             "every interface; port 0 to 65535)",
             listen);
    return NULL;
  }
  const char *ips[2];
  int nips = 0;
  if (!strcmp(host, "localhost")) {
    ips[nips++] = "127.0.0.1";
    ips[nips++] = "::1";
  } else if (!host[0]) {
    ips[nips++] = "0.0.0.0";
    ips[nips++] = "::";
  } else {
    ips[nips++] = host;
  }
  struct sockaddr_storage ss;
  socklen_t len;
  if (addr_fill(&ss, &len, ips[0], port) != 0) {
    snprintf(err, errsz, "'%s': '%s' is not an IP address (or localhost)", listen, host);
    return NULL;
  }
  mw_server *s = server_alloc(opt);
  if (!s) {
    snprintf(err, errsz, "out of memory");
    return NULL;
  }
  s->loop = loop;
  s->accept_timer = malloc(sizeof *s->accept_timer);
  if (!s->accept_timer) {
    snprintf(err, errsz, "out of memory");
    server_free(s);
    return NULL;
  }
  uv_timer_init(&loop->uv, s->accept_timer);
  s->accept_timer->data = s;
  s->refs++; /* the timer, until its close callback */
  char why[128];
  int bound = listener_open(s, &ss, len, why, sizeof why);
  if (bound < 0) {
    snprintf(err, errsz, "cannot listen on %s: %s", listen, why);
    server_close(s);
    return NULL;
  }
  /* the second address of localhost or of every interface, on the same
   * port; a host without IPv6 keeps the first */
  if (nips == 2 && addr_fill(&ss, &len, ips[1], bound) == 0)
    listener_open(s, &ss, len, why, sizeof why);
  snprintf(s->host, sizeof s->host, "%s", nips == 2 ? ips[0] : host);
  s->port = bound;
  loop_at_close(loop, &s->closer, server_on_loop_close, s);
  return s;
}

static void accept_timer_closed(uv_handle_t *h) {
  mw_server *s = h->data;
  free(h);
  server_unref(s);
}

void server_close(mw_server *s) {
  if (s->closed)
    return;
  s->closed = 1;
  s->refs++; /* freed below at the earliest, not inside a close */
  if (s->loop)
    loop_hook_remove(&s->closer);
  for (int i = 0; i < s->nlisteners; i++) {
    int fd = s->listeners[i]->w.fd;
    loop_fd_close(&s->listeners[i]->w);
    close(fd);
  }
  s->nlisteners = 0;
  if (s->accept_timer)
    uv_close((uv_handle_t *)s->accept_timer, accept_timer_closed);
  mw_list *node;
  while ((node = list_first(&s->conns)))
    conn_close(list_entry(node, server_conn, link));
  if (s->on_close) {
    mw_server_release_fn fn = s->on_close;
    s->on_close = NULL;
    fn(s->on_close_data);
  }
  server_unref(s);
}

void server_on_close(mw_server *s, mw_server_release_fn on_close, void *data) {
  s->on_close = on_close;
  s->on_close_data = data;
}

const char *server_host(const mw_server *s) {
  return s->host;
}

int server_port(const mw_server *s) {
  return s->port;
}

int server_is_loopback(const mw_server *s) {
  for (int i = 0; i < s->nlisteners; i++)
    if (!s->listeners[i]->loopback)
      return 0;
  return 1;
}

/* Routes and options */

int server_route_add_flags(mw_server *s, const char *method, const char *path,
                           mw_server_route_fn fn, void *data, int flags) {
  for (server_route *r = s->routes; r; r = r->next)
    if (!strcmp(r->method, method) && !strcmp(r->path, path))
      return -1;
  server_route *r = calloc(1, sizeof *r);
  if (!r)
    return -1;
  r->method = strdup(method);
  r->path = strdup(path);
  if (!r->method || !r->path) {
    free(r->method);
    free(r->path);
    free(r);
    return -1;
  }
  r->fn = fn;
  r->data = data;
  r->flags = flags;
  server_route **tail = &s->routes; /* in order, for Allow */
  while (*tail)
    tail = &(*tail)->next;
  *tail = r;
  return 0;
}

int server_route_add(mw_server *s, const char *method, const char *path, mw_server_route_fn fn,
                     void *data) {
  return server_route_add_flags(s, method, path, fn, data, 0);
}

void server_fallback(mw_server *s, mw_server_route_fn fn, void *data) {
  s->fallback = fn;
  s->fallback_data = data;
}

int server_protect(mw_server *s, const char *path) {
  size_t n = strlen(path);
  server_path *p = malloc(sizeof *p + n + 1);
  if (!p)
    return -1;
  memcpy(p->path, path, n + 1);
  p->next = s->protected_paths;
  s->protected_paths = p;
  return 0;
}

int server_auth_bearer(mw_server *s, const char *token) {
  return auth_set_bearer(&s->auth, token);
}

int server_auth_basic(mw_server *s, const char *user, const char *password) {
  return auth_set_basic(&s->auth, user, password);
}

void server_auth_scope(mw_server *s, mw_server_auth_scope scope) {
  s->scope = scope;
}
