/* The embedded server (L3): streamed C routes, 405 with Allow, HEAD, held
 * responses and their timeout on byte buffers (server_http.c without a
 * socket), then a large stream over a real socket to a slow reader: the
 * producer is called only as the socket takes what it wrote. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_private.h"

/* A stream of n pieces of `size` bytes each ('a', 'b', ...). */
typedef struct {
  int pieces, size, produced, released;
  size_t most_out; /* the connection's output buffer at its largest */
  server_conn *watch;
} stream;

static int produce(void *data, mw_server_res *res) {
  stream *st = data;
  if (st->watch && st->watch->out.len > st->most_out)
    st->most_out = st->watch->out.len;
  char buf[65536];
  memset(buf, 'a' + st->produced % 26, (size_t)st->size);
  server_res_write(res, buf, (size_t)st->size);
  return ++st->produced == st->pieces;
}

static void release(void *data) {
  ((stream *)data)->released++;
}

static void stream_route(void *data, const mw_server_req *req, mw_server_res *res) {
  (void)req;
  server_res_start(res, 200, "text/plain");
  server_res_stream(res, produce, data, release);
}

static void hello_route(void *data, const mw_server_req *req, mw_server_res *res) {
  (void)data;
  server_res_start(res, 200, "text/plain");
  server_res_header(res, "X-Path", server_req_path(req));
  server_res_header(res, "X-Bad", "a\r\nInjected: 1");
  server_res_write(res, "hello", 5);
  server_res_end(res);
}

static int gone_calls;
static mw_server_res *held_res;

static void on_gone(void *data) {
  (void)data;
  gone_calls++;
  held_res = NULL;
}

static void held_route(void *data, const mw_server_req *req, mw_server_res *res) {
  (void)data;
  (void)req;
  held_res = res;
  server_res_hold(res, on_gone, NULL);
}

/* A connection without a socket; what it writes is read from c->out. */
typedef struct {
  mw_server *s;
  server_conn *c;
  stream st;
} fixture;

static fixture *fixture_new(void) {
  fixture *f = calloc(1, sizeof *f);
  f->s = server_alloc(NULL);
  f->c = calloc(1, sizeof *f->c);
  server_conn_setup(f->c, f->s);
  f->st.pieces = 3;
  f->st.size = 4;
  server_route_add(f->s, "GET", "/stream", stream_route, &f->st);
  server_route_add(f->s, "GET", "/hello", hello_route, NULL);
  server_route_add(f->s, "POST", "/hello", hello_route, NULL);
  server_route_add(f->s, "GET", "/held", held_route, NULL);
  server_route_add_flags(f->s, "POST", "/admin", hello_route, NULL, MW_SERVER_AUTH_ALWAYS);
  gone_calls = 0;
  held_res = NULL;
  return f;
}

static void fixture_free(fixture *f) {
  server_conn_release(f->c);
  free(f->c);
  server_free(f->s);
  free(f);
}

static void feed(fixture *f, const char *s) {
  size_t n = strlen(s);
  assert_true(f->c->in_len + n <= sizeof f->c->in);
  memcpy(f->c->in + f->c->in_len, s, n);
  f->c->in_len += n;
  server_conn_process(f->c);
}

/* Takes what was written, then tells the connection it went out, as the
 * socket side does, until nothing more comes (at most rounds times). */
static char *drain(fixture *f, int rounds) {
  sbuf all = {0};
  sbuf_add(&all, "", 0);
  for (int i = 0; i < rounds; i++) {
    server_conn *c = f->c;
    size_t before = all.len;
    sbuf_add(&all, c->out.p + c->out_off, c->out.len - c->out_off);
    c->out.len = c->out_off = 0;
    server_conn_sent(c, 1);
    if (all.len == before && c->out.len == 0 && !c->res.streaming)
      break;
  }
  return all.p;
}

static void test_stream_is_chunked_and_released_once(void **state) {
  (void)state;
  fixture *f = fixture_new();
  feed(f, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  char *out = drain(f, 20);
  assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(out, "Transfer-Encoding: chunked\r\n"));
  assert_null(strstr(out, "Content-Length: 12"));
  assert_non_null(
      strstr(out, "\r\n\r\n00000004\r\naaaa\r\n00000004\r\nbbbb\r\n00000004\r\ncccc\r\n0\r\n\r\n"
                  "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(out, "hello"));
  assert_int_equal(f->st.produced, 3);
  assert_int_equal(f->st.released, 1);
  free(out);
  fixture_free(f);
}

static void test_stream_in_http10_ends_at_the_close(void **state) {
  (void)state;
  fixture *f = fixture_new();
  feed(f, "GET /stream HTTP/1.0\r\n\r\n");
  char *out = drain(f, 20);
  assert_non_null(strstr(out, "Connection: close\r\n"));
  assert_null(strstr(out, "chunked"));
  assert_non_null(strstr(out, "\r\n\r\naaaabbbbcccc"));
  assert_true(f->c->close_after);
  assert_int_equal(f->st.released, 1);
  free(out);
  fixture_free(f);
}

static void test_head_of_a_stream_produces_nothing(void **state) {
  (void)state;
  fixture *f = fixture_new();
  feed(f, "HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  char *out = drain(f, 20);
  assert_true(strlen(out) > 0 && !strcmp(out + strlen(out) - 4, "\r\n\r\n"));
  assert_int_equal(f->st.produced, 0);
  assert_int_equal(f->st.released, 1);
  free(out);
  fixture_free(f);
}

static void test_stream_dropped_midway_is_released(void **state) {
  (void)state;
  fixture *f = fixture_new();
  f->st.pieces = 1000;
  feed(f, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  free(drain(f, 3));
  assert_true(f->st.produced > 0 && f->st.produced < 1000);
  server_conn_release(f->c); /* the connection is gone */
  assert_int_equal(f->st.released, 1);
  server_conn_release(f->c);
  assert_int_equal(f->st.released, 1);
  fixture_free(f);
}

static void test_wrong_method_is_405_with_allow(void **state) {
  (void)state;
  fixture *f = fixture_new();
  feed(f, "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  char *out = drain(f, 5);
  assert_non_null(strstr(out, "HTTP/1.1 405 Method Not Allowed\r\n"));
  assert_non_null(strstr(out, "Allow: GET, HEAD, POST\r\n"));
  free(out);
  feed(f, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  out = drain(f, 5);
  assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(out, "Content-Length: 5\r\n"));
  assert_non_null(strstr(out, "X-Path: /hello\r\n"));
  assert_null(strstr(out, "Injected"));
  assert_null(strstr(out, "hello\r\n\r\n"));
  assert_true(!strcmp(out + strlen(out) - 4, "\r\n\r\n"));
  free(out);
  feed(f, "GET /none HTTP/1.1\r\nHost: x\r\n\r\n");
  out = drain(f, 5);
  assert_non_null(strstr(out, "HTTP/1.1 404 Not Found\r\n"));
  free(out);
  fixture_free(f);
}

static void test_auth_always_route(void **state) {
  (void)state;
  fixture *f = fixture_new();
  feed(f, "POST /admin HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  char *out = drain(f, 5);
  assert_non_null(strstr(out, "HTTP/1.1 403 Forbidden\r\n")); /* no credentials to check */
  free(out);
  assert_int_equal(server_auth_bearer(f->s, "t0ken"), 0);
  server_auth_scope(f->s, MW_SERVER_AUTH_MARKED);
  feed(f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  out = drain(f, 5);
  assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
  free(out);
  feed(f, "POST /admin HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  out = drain(f, 5);
  assert_non_null(strstr(out, "HTTP/1.1 401 Unauthorized\r\n"));
  assert_non_null(strstr(out, "WWW-Authenticate: Bearer realm=\"moonwatch\"\r\n"));
  free(out);
  feed(f, "POST /admin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0ken\r\n"
          "Content-Length: 0\r\n\r\n");
  out = drain(f, 5);
  assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
  free(out);
  fixture_free(f);
}

static void test_held_response_blocks_reading_then_times_out(void **state) {
  (void)state;
  fixture *f = fixture_new();
  feed(f, "GET /held HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(held_res);
  assert_false(server_conn_reading(f->c)); /* the next request waits */
  assert_int_equal(f->c->out.len, 0);
  server_conn_timeout(f->c);
  assert_int_equal(gone_calls, 1);
  char *out = drain(f, 5);
  assert_non_null(strstr(out, "HTTP/1.1 503 Service Unavailable\r\n"));
  assert_non_null(strstr(out, "Connection: close\r\n"));
  assert_null(strstr(out, "hello")); /* closed after the 503 */
  free(out);
  fixture_free(f);
}

static void test_held_response_ended_later(void **state) {
  (void)state;
  fixture *f = fixture_new();
  feed(f, "GET /held HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  server_res_start(held_res, 202, "text/plain");
  server_res_write(held_res, "later", 5);
  server_res_end(held_res);
  char *out = drain(f, 5);
  assert_non_null(strstr(out, "HTTP/1.1 202 Accepted\r\n"));
  assert_non_null(strstr(out, "later"));
  assert_non_null(strstr(out, "hello")); /* then the next one */
  assert_int_equal(gone_calls, 0);
  free(out);
  fixture_free(f);
}

/* Over a socket: a 4 MiB stream to a reader that takes 64 KiB per turn. */
static void test_stream_over_a_socket_follows_the_reader(void **state) {
  (void)state;
  lua_State *L = luaL_newstate();
  mw_loop *loop = loop_get(L);
  char err[256];
  mw_server *s = server_open(loop, "127.0.0.1:0", NULL, err, sizeof err);
  assert_non_null(s);
  stream st = {.pieces = 64, .size = 65536};
  server_route_add(s, "GET", "/big", stream_route, &st);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int small = 16384;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port(s))};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  const char *req = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
  fcntl(fd, F_SETFL, O_NONBLOCK);
  size_t got = 0;
  char buf[65536], tail[5] = {0};
  int turns = 0, ended = 0;
  while (!ended && turns < 100000) {
    uv_run(&loop->uv, UV_RUN_NOWAIT);
    turns++;
    if (!st.watch && list_first(&s->conns))
      st.watch = list_entry(list_first(&s->conns), server_conn, link);
    ssize_t n = read(fd, buf, sizeof buf);
    for (ssize_t i = 0; i < n; i++) { /* the last 5 bytes, across reads */
      memmove(tail, tail + 1, 4);
      tail[4] = buf[i];
    }
    if (n > 0) {
      got += (size_t)n;
      ended = !memcmp(tail, "0\r\n\r\n", 5);
    }
  }
  assert_true(ended);
  assert_true(got > (size_t)64 * 65536);
  assert_int_equal(st.produced, 64);
  assert_int_equal(st.released, 1);
  /* never more than about one piece waiting in our buffer */
  assert_true(st.most_out < 3 * 65536);
  close(fd);
  server_close(s);
  lua_close(L);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_is_chunked_and_released_once),
      cmocka_unit_test(test_stream_in_http10_ends_at_the_close),
      cmocka_unit_test(test_head_of_a_stream_produces_nothing),
      cmocka_unit_test(test_stream_dropped_midway_is_released),
      cmocka_unit_test(test_wrong_method_is_405_with_allow),
      cmocka_unit_test(test_auth_always_route),
      cmocka_unit_test(test_held_response_blocks_reading_then_times_out),
      cmocka_unit_test(test_held_response_ended_later),
      cmocka_unit_test(test_stream_over_a_socket_follows_the_reader),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
