/* libFuzzer: arbitrary bytes into a connection's protocol side (the parser,
 * limits, routes, auth and responses of server_http.c), with no socket. The
 * first byte sets how the input is cut into reads; routes answer at once,
 * stream, or hold their response and end it (or time out) later.
 *   make fuzz FUZZ_SECONDS=60 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server_private.h"

static int produce(void *data, mw_server_res *res) {
  int *left = data;
  server_res_write(res, "piece", 5);
  return --*left <= 0;
}

static void release(void *data) {
  *(int *)data -= 1000; /* a second release is caught below */
}

static int pieces;

static void stream_route(void *data, const mw_server_req *req, mw_server_res *res) {
  (void)data;
  pieces = 3;
  server_res_start(res, 200, "text/plain");
  server_res_header(res, "X-Query", server_req_query(req) ? server_req_query(req) : "-");
  server_res_stream(res, produce, &pieces, release);
}

static void echo_route(void *data, const mw_server_req *req, mw_server_res *res) {
  (void)data;
  size_t len;
  const char *body = server_req_body(req, &len);
  server_res_start(res, 200, server_req_header(req, "content-type"));
  for (int i = 0; i < server_req_header_count(req); i++) {
    const char *name, *value;
    server_req_header_at(req, i, &name, &value);
    server_res_header(res, name, value); /* hostile names and values */
  }
  server_res_write(res, body, len);
  server_res_write(res, server_req_remote(req), strlen(server_req_remote(req)));
  server_res_end(res);
}

static mw_server_res *held;

static void gone(void *data) {
  (void)data;
  held = NULL;
}

static void held_route(void *data, const mw_server_req *req, mw_server_res *res) {
  (void)data;
  (void)req;
  held = res;
  server_res_hold(res, gone, NULL);
}

static void drain(server_conn *c, int *round) {
  for (int i = 0; i < 16 && !c->closed; i++) {
    c->out.len = c->out_off = 0;
    server_conn_sent(c, 1);
    if (held && (*round)++ % 2 == 0) {
      server_res_start(held, 201, "text/plain");
      server_res_write(held, "later", 5);
      server_res_end(held);
      held = NULL;
    } else if (held) {
      server_conn_timeout(c);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  mw_server_options opt;
  server_options_default(&opt);
  opt.max_header_bytes = 1024;
  opt.max_body_bytes = 2048;
  mw_server *s = server_alloc(&opt);
  server_route_add(s, "GET", "/stream", stream_route, NULL);
  server_route_add(s, "POST", "/echo", echo_route, NULL);
  server_route_add(s, "GET", "/echo", echo_route, NULL);
  server_route_add_flags(s, "POST", "/admin", echo_route, NULL, MW_SERVER_AUTH_ALWAYS);
  server_fallback(s, held_route, NULL);
  server_protect(s, "/-/reload");
  if (data[0] & 1)
    server_auth_basic(s, "user", "pass");
  else
    server_auth_bearer(s, "token");
  server_auth_scope(s, data[0] & 2 ? MW_SERVER_AUTH_ALL : MW_SERVER_AUTH_MARKED);
  server_conn *c = calloc(1, sizeof *c);
  server_conn_setup(c, s);
  snprintf(c->remote, sizeof c->remote, "127.0.0.1:1");
  size_t cut = (size_t)(data[0] >> 2) + 1, at = 1;
  int round = 0;
  held = NULL;
  while (at < size && !c->close_after) {
    size_t room = sizeof c->in - c->in_len;
    size_t n = size - at < cut ? size - at : cut;
    if (n > room)
      n = room;
    if (n == 0) { /* not reading: let the response go out */
      drain(c, &round);
      if (sizeof c->in - c->in_len == 0)
        break;
      continue;
    }
    memcpy(c->in + c->in_len, data + at, n);
    c->in_len += n;
    at += n;
    server_conn_process(c);
    drain(c, &round);
  }
  server_conn_timeout(c);
  drain(c, &round);
  server_conn_release(c);
  if (pieces < -1000) /* released twice */
    __builtin_trap();
  free(c);
  server_free(s);
  return 0;
}
