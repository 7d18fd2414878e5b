/* L3: what server.c (sockets, timers) and server_http.c (the protocol on
 * byte buffers) share. A connection's protocol side runs without a socket
 * too: the fuzzer feeds it bytes and drops what it writes. */
#ifndef MW_SERVER_PRIVATE_H
#define MW_SERVER_PRIVATE_H

#include <http_parser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "server.h"

#define MW_SERVER_HEADERS_MAX 100
#define MW_SERVER_READ_CHUNK 16384
#define MW_SERVER_LISTENERS_MAX 2

/* A growable byte buffer. */
typedef struct {
  char *p;
  size_t len, cap;
} sbuf;

static inline int sbuf_add(sbuf *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *grown = realloc(b->p, cap);
    if (!grown)
      return -1;
    b->p = grown;
    b->cap = cap;
  }
  if (n)
    memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

static inline void sbuf_free(sbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

typedef struct server_route {
  struct server_route *next;
  char *method, *path;
  int flags;
  mw_server_route_fn fn;
  void *data;
} server_route;

typedef struct server_path {
  struct server_path *next;
  char path[];
} server_path;

typedef struct {
  mw_fd w;
  mw_server *s;
  int loopback;
} server_listener;

struct mw_server {
  mw_loop *loop; /* NULL: a server without sockets (the fuzzer's) */
  mw_server_options opt;
  mw_auth auth;
  mw_server_auth_scope scope;
  server_route *routes;
  server_path *protected_paths;
  mw_server_route_fn fallback;
  void *fallback_data;
  mw_server_release_fn on_close;
  void *on_close_data;
  server_listener *listeners[MW_SERVER_LISTENERS_MAX];
  int nlisteners;
  uv_timer_t *accept_timer; /* accepting again after running out of fds */
  char host[64];
  int port;
  mw_list conns;
  int nconns, nrejected;
  int refs; /* listeners and connections not yet freed */
  int closed;
  mw_hook closer;
};

struct mw_server_req {
  const char *method, *path, *query, *remote;
  const char *names[MW_SERVER_HEADERS_MAX], *values[MW_SERVER_HEADERS_MAX];
  int nheaders;
  const char *body;
  size_t body_len;
  int minor;
};

typedef struct server_conn server_conn;

struct mw_server_res {
  server_conn *c;
  int status;
  int started, ended, held, streaming, head_only, keep_alive;
  sbuf head, body;
  size_t head_body_len; /* what a HEAD's body would have been */
  mw_server_produce_fn produce;
  void *data;
  mw_server_release_fn release, gone;
  void *gone_data;
};

struct server_conn {
  mw_fd w; /* the socket, when there is one */
  uv_timer_t timer;
  int handles; /* still to close before the memory goes */
  int timer_kind;
  uint64_t request_start_ms;
  mw_server *s;
  mw_list link;
  int closed, lingering, rejected;
  int in_transport; /* server.c is updating it: a kick waits for that */
  char remote[64];
  /* the protocol */
  http_parser parser;
  int busy;        /* a request is being answered: no parsing meanwhile */
  int in_message;  /* a request has begun and is not complete */
  unsigned begun;  /* requests begun so far */
  int close_after; /* close once what is written is sent */
  int last_cb;     /* the last header callback: 1 url, 2 field, 3 value */
  int error_status;
  size_t head_bytes;
  size_t hdr[MW_SERVER_HEADERS_MAX][2]; /* offsets of names and values in head */
  int nhdr;
  char in[MW_SERVER_READ_CHUNK];
  size_t in_off, in_len;
  sbuf head, body, out;
  size_t out_off;
  mw_server_req req;
  mw_server_res res;
};

/* server.c */
mw_server *server_alloc(const mw_server_options *opt);
void server_free(mw_server *s);
/* The protocol side wrote or ended a response outside server.c's own
 * callbacks: flush it. Nothing without a socket. */
void server_conn_kick(server_conn *c);

/* server_http.c */
void server_conn_setup(server_conn *c, mw_server *s);
/* Parses the buffered input and answers what is complete. */
void server_conn_process(server_conn *c);
/* Everything written has gone out: a complete response ends its request
 * (and the next buffered one is processed); a stream, if pump, writes its
 * next piece. */
void server_conn_sent(server_conn *c, int pump);
/* The connection's time ran out in its current phase. */
void server_conn_timeout(server_conn *c);
/* Whether it wants more input now. */
int server_conn_reading(const server_conn *c);
/* The response is written and ends its request once sent. */
int server_conn_complete(const server_conn *c);
/* Drops a response in progress (its gone or release runs) and frees the
 * buffers. */
void server_conn_release(server_conn *c);
/* Writes a whole response with a short text body and Connection: close. */
void server_conn_error(server_conn *c, int status);

#endif
