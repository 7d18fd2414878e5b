/* L3: the server's HTTP/1.1 protocol on byte buffers: http_parser reads a
 * connection's input, the request's route writes its output (see
 * server_private.h). One request at a time: the parser pauses at the end of
 * each and resumes once its response has gone out, so pipelined requests
 * wait in the bounded input buffer. */
#include <limits.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#include "server_private.h"

#define CHUNK_HEAD 10 /* "%08zx\r\n", filled in once the piece is written */

/* Request parsing */

static server_conn *conn_of(http_parser *p) {
  return p->data;
}

static int refuse(server_conn *c, int status) {
  if (!c->error_status)
    c->error_status = status;
  return -1;
}

/* Header bytes go into c->head as NUL-separated strings: the URL, then
 * each name (lower case) and value. */
static int head_add(server_conn *c, const char *p, size_t n, int lower) {
  c->head_bytes += n;
  if (c->head_bytes > c->s->opt.max_header_bytes)
    return refuse(c, 431);
  size_t at = c->head.len;
  if (sbuf_add(&c->head, p, n) != 0)
    return refuse(c, 503);
  if (lower)
    for (size_t i = at; i < c->head.len; i++)
      if (c->head.p[i] >= 'A' && c->head.p[i] <= 'Z')
        c->head.p[i] = (char)(c->head.p[i] + 32);
  return 0;
}

static int head_end_string(server_conn *c) {
  return sbuf_add(&c->head, "", 1) == 0 ? 0 : refuse(c, 503);
}

static int on_message_begin(http_parser *p) {
  server_conn *c = conn_of(p);
  c->in_message = 1;
  c->begun++;
  c->head.len = 0;
  c->body.len = 0;
  c->head_bytes = 0;
  c->nhdr = 0;
  c->last_cb = 0;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  server_conn *c = conn_of(p);
  c->last_cb = 1;
  return head_add(c, at, n, 0);
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  server_conn *c = conn_of(p);
  if (c->last_cb != 2) {
    if (head_end_string(c) != 0)
      return -1;
    if (c->nhdr == MW_SERVER_HEADERS_MAX)
      return refuse(c, 431);
    c->hdr[c->nhdr][0] = c->head.len;
    c->hdr[c->nhdr][1] = 0;
    c->nhdr++;
    c->last_cb = 2;
  }
  return head_add(c, at, n, 1);
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  server_conn *c = conn_of(p);
  if (c->last_cb != 3) {
    if (c->last_cb != 2 || head_end_string(c) != 0)
      return -1;
    c->hdr[c->nhdr - 1][1] = c->head.len;
    c->last_cb = 3;
  }
  return head_add(c, at, n, 0);
}

static const char *header_find(const server_conn *c, const char *name) {
  for (int i = 0; i < c->nhdr; i++)
    if (strcasecmp(c->head.p + c->hdr[i][0], name) == 0)
      return c->head.p + c->hdr[i][1];
  return NULL;
}

static int on_headers_complete(http_parser *p) {
  server_conn *c = conn_of(p);
  if (head_end_string(c) != 0)
    return -1;
  if (c->last_cb == 2) /* a name without a value: http_parser allows none */
    c->hdr[c->nhdr - 1][1] = c->head.len - 1;
  if (p->content_length != ULLONG_MAX && p->content_length > c->s->opt.max_body_bytes)
    return refuse(c, 413);
  const char *expect = header_find(c, "expect");
  if (expect && p->http_minor >= 1 && strcasecmp(expect, "100-continue") == 0) {
    if (sbuf_add(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 0)
      return refuse(c, 503);
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  server_conn *c = conn_of(p);
  if (c->body.len + n > c->s->opt.max_body_bytes)
    return refuse(c, 413);
  return sbuf_add(&c->body, at, n) == 0 ? 0 : refuse(c, 503);
}

static int on_message_complete(http_parser *p) {
  http_parser_pause(p, 1); /* answered before the next is read */
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void server_conn_setup(server_conn *c, mw_server *s) {
  c->s = s;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->res.c = c;
}

int server_conn_reading(const server_conn *c) {
  return !c->closed && !c->busy && !c->close_after && !c->rejected && c->in_len < sizeof c->in;
}

int server_conn_complete(const server_conn *c) {
  return c->busy && c->res.ended;
}

/* Responses */

static void date_now(char out[40]) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int clean(const char *s) {
  return s && !strpbrk(s, "\r\n");
}

static void res_reset(mw_server_res *res) {
  res->status = 0;
  res->started = res->ended = res->held = res->streaming = 0;
  res->head.len = res->body.len = 0;
  res->head_body_len = 0;
  res->produce = NULL;
  res->data = NULL;
  res->release = res->gone = NULL;
  res->gone_data = NULL;
}

void server_res_start(mw_server_res *res, int status, const char *content_type) {
  if (res->started || res->ended)
    return;
  res->started = 1;
  res->status = status >= 100 && status <= 999 ? status : 500;
  if (clean(content_type)) {
    char line[256];
    int n = snprintf(line, sizeof line, "Content-Type: %s\r\n", content_type);
    if (n > 0 && (size_t)n < sizeof line)
      sbuf_add(&res->head, line, (size_t)n);
  }
}

/* The headers the server writes itself: a second copy would corrupt the
 * framing. */
static int framing(const char *name) {
  return !strcasecmp(name, "content-length") || !strcasecmp(name, "transfer-encoding") ||
         !strcasecmp(name, "connection") || !strcasecmp(name, "date");
}

void server_res_header(mw_server_res *res, const char *name, const char *value) {
  if (!res->started || res->ended || res->streaming || !clean(name) || !clean(value) || !*name ||
      strpbrk(name, ": \t") || framing(name))
    return;
  sbuf_add(&res->head, name, strlen(name));
  sbuf_add(&res->head, ": ", 2);
  sbuf_add(&res->head, value, strlen(value));
  sbuf_add(&res->head, "\r\n", 2);
}

void server_res_write(mw_server_res *res, const char *p, size_t n) {
  /* a stream's pieces go out only from its produce function */
  if (!res->started || res->ended || res->streaming == 1)
    return;
  if (res->head_only) { /* counted for Content-Length, as GET would send it */
    res->head_body_len += n;
    return;
  }
  sbuf_add(res->streaming ? &res->c->out : &res->body, p, n);
}

/* The status line and the header lines but the framing ones. */
static void res_write_head(mw_server_res *res) {
  server_conn *c = res->c;
  char line[160], date[40];
  const char *reason = http_status_str((enum http_status)res->status);
  if (!strcmp(reason, "<unknown>"))
    reason = "Unknown";
  date_now(date);
  int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\nDate: %s\r\n", res->status, reason, date);
  sbuf_add(&c->out, line, (size_t)n);
  sbuf_add(&c->out, res->head.p, res->head.len);
  if (!res->keep_alive)
    sbuf_add(&c->out, "Connection: close\r\n", 19);
  else if (c->req.minor == 0)
    sbuf_add(&c->out, "Connection: keep-alive\r\n", 24);
}

void server_res_end(mw_server_res *res) {
  if (res->ended || res->streaming)
    return;
  if (!res->started)
    server_res_start(res, 204, NULL);
  server_conn *c = res->c;
  res_write_head(res);
  char line[64];
  int n = snprintf(line, sizeof line, "Content-Length: %zu\r\n\r\n",
                   res->head_only ? res->head_body_len : res->body.len);
  sbuf_add(&c->out, line, (size_t)n);
  if (!res->head_only)
    sbuf_add(&c->out, res->body.p, res->body.len);
  res->ended = 1;
  res->held = 0;
  if (!res->keep_alive)
    c->close_after = 1;
  server_conn_kick(c);
}

void server_res_stream(mw_server_res *res, mw_server_produce_fn produce, void *data,
                       mw_server_release_fn release) {
  if (res->ended || res->streaming) {
    if (release)
      release(data);
    return;
  }
  if (!res->started)
    server_res_start(res, 200, NULL);
  server_conn *c = res->c;
  if (c->req.minor == 0) /* no chunks in HTTP/1.0: the body ends at the close */
    res->keep_alive = 0;
  res_write_head(res);
  if (c->req.minor >= 1)
    sbuf_add(&c->out, "Transfer-Encoding: chunked\r\n", 28);
  sbuf_add(&c->out, "\r\n", 2);
  res->held = 0;
  if (!res->keep_alive)
    c->close_after = 1;
  if (res->head_only) {
    res->ended = 1;
    if (release)
      release(data);
  } else {
    res->streaming = 1;
    res->produce = produce;
    res->data = data;
    res->release = release;
  }
  server_conn_kick(c);
}

void server_res_hold(mw_server_res *res, mw_server_release_fn gone, void *data) {
  if (res->ended || res->streaming)
    return;
  res->held = 1;
  res->gone = gone;
  res->gone_data = data;
}

int server_res_is_head(const mw_server_res *res) {
  return res->head_only;
}

/* One piece of a stream, framed as a chunk in HTTP/1.1. */
static void stream_pump(server_conn *c) {
  mw_server_res *res = &c->res;
  int chunked = c->req.minor >= 1;
  size_t at = c->out.len;
  if (chunked && sbuf_add(&c->out, "0000000000", CHUNK_HEAD) != 0)
    return;
  res->streaming = 2;
  int done = res->produce(res->data, res);
  res->streaming = 1;
  if (c->closed) /* the producer cannot close it; be safe anyway */
    return;
  size_t n = c->out.len - at - (chunked ? CHUNK_HEAD : 0);
  if (chunked) {
    if (n == 0) {
      c->out.len = at;
    } else {
      char head[24]; /* 8 hex digits: a piece is far below 4 GiB */
      snprintf(head, sizeof head, "%08zx\r\n", n);
      memcpy(c->out.p + at, head, CHUNK_HEAD);
      sbuf_add(&c->out, "\r\n", 2);
    }
  }
  if (done) {
    if (chunked)
      sbuf_add(&c->out, "0\r\n\r\n", 5);
    mw_server_release_fn release = res->release;
    res->streaming = 0;
    res->release = NULL;
    res->ended = 1;
    if (release)
      release(res->data);
  }
}

void server_conn_error(server_conn *c, int status) {
  mw_server_res *res = &c->res;
  res_reset(res);
  res->keep_alive = 0;
  res->head_only = 0;
  c->busy = 1;
  c->in_message = 0;
  server_res_start(res, status, "text/plain; charset=utf-8");
  char body[96];
  int n = snprintf(body, sizeof body, "%d %s\n", status, http_status_str((enum http_status)status));
  server_res_write(res, body, (size_t)n);
  server_res_end(res);
}

/* Requests */

static int request_build(server_conn *c) {
  mw_server_req *req = &c->req;
  char *url = c->head.p;
  size_t url_len = strlen(url);
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (c->parser.method == HTTP_CONNECT || http_parser_parse_url(url, url_len, 0, &u) != 0)
    return -1;
  req->path = "/";
  req->query = NULL;
  if (u.field_set & (1 << UF_PATH)) {
    req->path = url + u.field_data[UF_PATH].off;
    url[u.field_data[UF_PATH].off + u.field_data[UF_PATH].len] = '\0';
  }
  if (req->path[0] != '/') /* "*" of OPTIONS: no route could have it */
    return -1;
  if (u.field_set & (1 << UF_QUERY)) {
    req->query = url + u.field_data[UF_QUERY].off;
    url[u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len] = '\0';
  }
  req->nheaders = c->nhdr;
  for (int i = 0; i < c->nhdr; i++) {
    req->names[i] = c->head.p + c->hdr[i][0];
    req->values[i] = c->head.p + c->hdr[i][1];
  }
  req->method = http_method_str((enum http_method)c->parser.method);
  req->body = c->body.p ? c->body.p : "";
  req->body_len = c->body.len;
  req->minor = c->parser.http_major == 1 ? c->parser.http_minor : 0;
  req->remote = c->remote;
  return 0;
}

static int path_protected(const mw_server *s, const char *path) {
  for (const server_path *p = s->protected_paths; p; p = p->next)
    if (!strcmp(p->path, path))
      return 1;
  return 0;
}

static void answer_401(server_conn *c) {
  mw_server_res *res = &c->res;
  server_res_start(res, 401, "text/plain; charset=utf-8");
  server_res_header(res, "WWW-Authenticate", auth_challenge(&c->s->auth));
  server_res_write(res, "401 Unauthorized\n", 17);
  server_res_end(res);
}

static void answer_text(server_conn *c, int status, const char *allow) {
  mw_server_res *res = &c->res;
  server_res_start(res, status, "text/plain; charset=utf-8");
  if (allow)
    server_res_header(res, "Allow", allow);
  char body[96];
  int n = snprintf(body, sizeof body, "%d %s\n", status, http_status_str((enum http_status)status));
  server_res_write(res, body, (size_t)n);
  server_res_end(res);
}

/* The routes of path: the one of method (GET for HEAD) and the methods
 * there are, for Allow. */
static const server_route *route_find(const mw_server *s, const char *method, const char *path,
                                      char *allow, size_t allow_cap, int *path_known) {
  const server_route *found = NULL;
  size_t len = 0;
  *path_known = 0;
  allow[0] = '\0';
  int is_head = !strcmp(method, "HEAD");
  for (const server_route *r = s->routes; r; r = r->next) {
    if (strcmp(r->path, path) != 0)
      continue;
    *path_known = 1;
    if (!strcmp(r->method, method) || (is_head && !strcmp(r->method, "GET")))
      found = r;
    int n = snprintf(allow + len, allow_cap - len, "%s%s%s", len ? ", " : "", r->method,
                     !strcmp(r->method, "GET") ? ", HEAD" : "");
    if (n > 0 && (size_t)n < allow_cap - len)
      len += (size_t)n;
  }
  return found;
}

static void request_dispatch(server_conn *c) {
  mw_server *s = c->s;
  mw_server_res *res = &c->res;
  c->in_message = 0;
  c->busy = 1;
  res_reset(res);
  res->keep_alive = http_should_keep_alive(&c->parser) && !c->parser.upgrade;
  res->head_only = c->parser.method == HTTP_HEAD;
  if (c->parser.http_major != 1) {
    server_conn_error(c, 505);
    return;
  }
  if (request_build(c) != 0) {
    server_conn_error(c, 400);
    return;
  }
  const mw_server_req *req = &c->req;
  char allow[256];
  int path_known;
  const server_route *r = route_find(s, req->method, req->path, allow, sizeof allow, &path_known);
  int marked = r ? (r->flags & MW_SERVER_AUTH_ALWAYS) : !path_known && path_protected(s, req->path);
  int needs = s->auth.kind != MW_AUTH_NONE && s->scope == MW_SERVER_AUTH_ALL;
  if (needs || marked) {
    if (s->auth.kind == MW_AUTH_NONE) {
      answer_text(c, 403, NULL);
      return;
    }
    if (!auth_check(&s->auth, server_req_header(req, "authorization"))) {
      answer_401(c);
      return;
    }
  }
  if (!r && path_known) {
    answer_text(c, 405, allow);
    return;
  }
  mw_server_route_fn fn = r ? r->fn : s->fallback;
  void *data = r ? r->data : s->fallback_data;
  if (!fn) {
    answer_text(c, 404, NULL);
    return;
  }
  fn(data, req, res);
  if (c->closed)
    return;
  if (!res->ended && !res->held && !res->streaming) {
    if (res->started) /* a route that forgot to end its response */
      server_res_end(res);
    else
      answer_text(c, 500, NULL);
  }
}

static int parser_error_status(server_conn *c) {
  if (c->error_status)
    return c->error_status;
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (e == HPE_HEADER_OVERFLOW)
    return 431;
  return 400;
}

void server_conn_process(server_conn *c) {
  while (!c->closed && !c->busy && !c->close_after && c->in_off < c->in_len) {
    size_t n = http_parser_execute(&c->parser, &settings, c->in + c->in_off, c->in_len - c->in_off);
    c->in_off += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
      http_parser_pause(&c->parser, 0);
      request_dispatch(c);
    } else if (e != HPE_OK) {
      server_conn_error(c, parser_error_status(c));
    } else if (n == 0 || c->parser.upgrade) {
      /* stuck, or a protocol switch we do not make */
      server_conn_error(c, 400);
    }
  }
  if (c->in_off == c->in_len)
    c->in_off = c->in_len = 0;
  else if (c->in_off > 0 && !c->busy) {
    memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
    c->in_len -= c->in_off;
    c->in_off = 0;
  }
}

void server_conn_sent(server_conn *c, int pump) {
  if (c->closed)
    return;
  if (c->res.streaming) {
    if (pump)
      stream_pump(c);
    return;
  }
  if (!server_conn_complete(c))
    return;
  c->busy = 0;
  c->res.ended = 0;
  c->out.len = c->out_off = 0;
  if (c->out.cap > 65536) /* a large response does not pin its buffer */
    sbuf_free(&c->out);
  if (c->body.cap > 65536)
    sbuf_free(&c->body);
  if (c->res.body.cap > 65536)
    sbuf_free(&c->res.body);
  if (!c->close_after)
    server_conn_process(c);
}

void server_conn_timeout(server_conn *c) {
  if (c->closed)
    return;
  if (c->busy && c->res.held && !c->res.ended) {
    /* the route never answered: give up on it */
    mw_server_release_fn gone = c->res.gone;
    void *data = c->res.gone_data;
    c->res.held = 0;
    c->res.gone = NULL;
    if (gone)
      gone(data);
    if (!c->closed)
      server_conn_error(c, 503);
  } else if (!c->busy && c->in_message) {
    server_conn_error(c, 408);
  }
}

void server_conn_release(server_conn *c) {
  mw_server_res *res = &c->res;
  if (res->held && !res->ended && res->gone) {
    mw_server_release_fn gone = res->gone;
    res->held = 0;
    res->gone = NULL;
    gone(res->gone_data);
  }
  if (res->streaming && res->release) {
    mw_server_release_fn release = res->release;
    res->streaming = 0;
    res->release = NULL;
    release(res->data);
  }
  sbuf_free(&c->head);
  sbuf_free(&c->body);
  sbuf_free(&c->out);
  sbuf_free(&res->head);
  sbuf_free(&res->body);
}

/* The request accessors */

const char *server_req_method(const mw_server_req *req) {
  return req->method;
}

const char *server_req_path(const mw_server_req *req) {
  return req->path;
}

const char *server_req_query(const mw_server_req *req) {
  return req->query;
}

const char *server_req_header(const mw_server_req *req, const char *name) {
  for (int i = 0; i < req->nheaders; i++)
    if (strcasecmp(req->names[i], name) == 0)
      return req->values[i];
  return NULL;
}

int server_req_header_count(const mw_server_req *req) {
  return req->nheaders;
}

void server_req_header_at(const mw_server_req *req, int i, const char **name, const char **value) {
  *name = req->names[i];
  *value = req->values[i];
}

const char *server_req_body(const mw_server_req *req, size_t *len) {
  if (len)
    *len = req->body_len;
  return req->body;
}

const char *server_req_remote(const mw_server_req *req) {
  return req->remote;
}

int server_req_minor(const mw_server_req *req) {
  return req->minor;
}
