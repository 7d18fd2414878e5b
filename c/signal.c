/* SIGTERM and SIGINT: the first runs the Lua handler as a task (a graceful
 * stop); a second one exits at once, for a stop that hangs. */
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"

struct mw_signals {
  uv_signal_t *handles[2];
  int handler_ref;
  int received;
};

static const int watched[2] = {SIGTERM, SIGINT};

static void signal_free(uv_handle_t *handle) {
  free(handle);
}

static void signal_on(uv_signal_t *handle, int signum) {
  mw_loop *loop = handle->data;
  mw_signals *s = loop->signals;
  const char *name = signum == SIGTERM ? "SIGTERM" : "SIGINT";
  if (s->received++) {
    char msg[96];
    int n = snprintf(msg, sizeof msg, "moonwatch: second %s, exiting at once\n", name);
    if (write(STDERR_FILENO, msg, (size_t)n) < 0) {
      /* nothing more to do: we are exiting */
    }
    _exit(128 + signum);
  }
  lua_State *L = loop->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->handler_ref);
  lua_pushstring(L, name);
  task_spawn(L, 1, 0);
  lua_pop(L, 1);
}

void signal_shutdown(mw_loop *loop) {
  mw_signals *s = loop->signals;
  if (!s)
    return;
  for (int i = 0; i < 2; i++)
    uv_close((uv_handle_t *)s->handles[i], signal_free);
  luaL_unref(loop->L, LUA_REGISTRYINDEX, s->handler_ref);
  free(s);
  loop->signals = NULL;
}

/* core.on_signal(fn): fn(signame) runs as a task on the first SIGTERM or
 * SIGINT; core.on_signal(nil) restores the default behaviour. The handles do
 * not keep the loop running. */
static int l_on_signal(lua_State *L) {
  mw_loop *loop = loop_get(L);
  if (lua_isnoneornil(L, 1)) {
    signal_shutdown(loop);
    return 0;
  }
  luaL_checktype(L, 1, LUA_TFUNCTION);
  mw_signals *s = loop->signals;
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s)
      return luaL_error(L, "core.on_signal: out of memory");
    for (int i = 0; i < 2; i++) {
      s->handles[i] = malloc(sizeof(uv_signal_t));
      if (!s->handles[i])
        return luaL_error(L, "core.on_signal: out of memory");
      uv_signal_init(&loop->uv, s->handles[i]);
      s->handles[i]->data = loop;
      uv_signal_start(s->handles[i], signal_on, watched[i]);
      uv_unref((uv_handle_t *)s->handles[i]);
    }
    s->handler_ref = LUA_NOREF;
    loop->signals = s;
  }
  luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
  lua_pushvalue(L, 1);
  s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  s->received = 0;
  return 0;
}

void signal_register(lua_State *L) {
  lua_pushcfunction(L, l_on_signal);
  lua_setfield(L, -2, "on_signal");
}
