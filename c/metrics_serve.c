/* L4: core.metrics_serve(server, registry[, path]): GET path ("/metrics")
 * answers the registry's Prometheus text, streamed: each loop turn renders
 * at most CHUNK bytes from the request's cursor (about 2 ms of rendering),
 * and the server asks for the next piece only once the socket took the
 * last. A scrape of 10,000 monitors (about 13 MB) so holds no turn long,
 * yet needs few turns: with 64 KiB pieces it took 200 turns, 6 s on a
 * saturated loop, past Prometheus's scrape timeout. */
#include <lauxlib.h>
#include <stdlib.h>

#include "metrics_lua.h"
#include "metrics_serve.h"
#include "server_lua.h"

#define CHUNK (512 * 1024)
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What a mounted path serves. A userdata anchored for good, as is its
 * registry: a route may be asked for as long as the server lives, and both
 * go when the state closes. */
typedef struct {
  mw_metrics *m;
} mount;

typedef struct {
  mw_metrics *m;
  mw_metrics_cursor cursor;
} scrape;

static void write_res(void *ctx, const char *p, size_t n) {
  server_res_write(ctx, p, n);
}

static int produce(void *data, mw_server_res *res) {
  scrape *sc = data;
  return metrics_render(sc->m, &sc->cursor, CHUNK, write_res, res);
}

static void release(void *data) {
  free(data);
}

static void on_scrape(void *data, const mw_server_req *req, mw_server_res *res) {
  (void)req;
  mount *mt = data;
  scrape *sc = server_res_is_head(res) ? NULL : calloc(1, sizeof *sc);
  if (!server_res_is_head(res) && !sc) {
    server_res_start(res, 503, "text/plain");
    server_res_write(res, "out of memory\n", 14);
    server_res_end(res);
    return;
  }
  server_res_start(res, 200, CONTENT_TYPE);
  if (!sc) {
    server_res_end(res);
    return;
  }
  sc->m = mt->m;
  server_res_stream(res, produce, sc, release);
}

static int l_metrics_serve(lua_State *L) {
  mw_server *s = server_lua_check(L, 1);
  mw_metrics *m = metrics_lua_check(L, 2);
  const char *path = luaL_optstring(L, 3, "/metrics");
  if (path[0] != '/')
    return luaL_error(L, "core.metrics_serve: the path must start with '/', got '%s'", path);
  mount *mt = lua_newuserdatauv(L, sizeof *mt, 0);
  mt->m = m;
  if (server_route_add(s, "GET", path, on_scrape, mt) != 0)
    return luaL_error(L, "core.metrics_serve: cannot serve %s (taken, or out of memory)", path);
  luaL_ref(L, LUA_REGISTRYINDEX); /* the mount */
  lua_pushvalue(L, 2);
  luaL_ref(L, LUA_REGISTRYINDEX); /* its registry */
  return 0;
}

void metrics_serve_register(lua_State *L) {
  lua_pushcfunction(L, l_metrics_serve);
  lua_setfield(L, -2, "metrics_serve");
}
