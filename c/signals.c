/* L4: the signals the daemon handles.
 *
 * SIGTERM and SIGINT: the first runs the Lua handler as a task (a graceful
 * stop); a second one exits at once from the signal handler itself, so it
 * works whatever the loop is doing (blocked in a write, running a check that
 * never yields). SIGHUP, SIGUSR1 and SIGUSR2 run the Lua handler each time,
 * through libuv. Every other signal keeps its default action. */
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "signals.h"
#include "task.h"

#define NREPEATABLE 3

typedef struct {
  uv_async_t *stop; /* woken by the SIGTERM/SIGINT handler */
  uv_signal_t *each[NREPEATABLE];
  int handler_ref;
  mw_hook closer;
} mw_signals;

static const char signals_key = 'G';

static const int repeatable[NREPEATABLE] = {SIGHUP, SIGUSR1, SIGUSR2};

/* The handler's state: it can only touch these and async-signal-safe calls.
 * One loop owns the stop signals at a time, the last to call on_signal. */
static uv_async_t *volatile stop_async;
static volatile sig_atomic_t stop_received;

static void handle_free(uv_handle_t *handle) {
  free(handle);
}

static const char *signal_name(int signum) {
  switch (signum) {
  case SIGTERM:
    return "SIGTERM";
  case SIGINT:
    return "SIGINT";
  case SIGHUP:
    return "SIGHUP";
  case SIGUSR1:
    return "SIGUSR1";
  case SIGUSR2:
    return "SIGUSR2";
  default:
    return "signal";
  }
}

static void write_stderr(const char *s) {
  if (write(STDERR_FILENO, s, strlen(s)) < 0) {
    /* nothing more to do: we are exiting */
  }
}

static void on_stop_signal(int signum) {
  if (stop_received) {
    write_stderr(signum == SIGTERM ? "moonwatch: second SIGTERM, exiting at once\n"
                                   : "moonwatch: second SIGINT, exiting at once\n");
    _exit(128 + signum);
  }
  stop_received = signum;
  if (stop_async)
    uv_async_send(stop_async); /* async-signal-safe, as libuv documents */
}

static void stop_signals_default(void) {
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
}

static void run_handler(mw_loop *loop, int signum) {
  mw_signals *s = loop_ext(loop, &signals_key);
  if (!s)
    return;
  lua_State *L = loop->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->handler_ref);
  lua_pushstring(L, signal_name(signum));
  task_spawn(L, 1, 0);
  lua_pop(L, 1);
}

static void on_stop_async(uv_async_t *handle) {
  run_handler(handle->data, stop_received);
}

static void on_repeatable(uv_signal_t *handle, int signum) {
  run_handler(handle->data, signum);
}

static void signals_close(mw_loop *loop, void *data) {
  mw_signals *s = data;
  if (stop_async == s->stop) {
    stop_signals_default();
    stop_async = NULL;
  }
  uv_close((uv_handle_t *)s->stop, handle_free);
  for (int i = 0; i < NREPEATABLE; i++)
    uv_close((uv_handle_t *)s->each[i], handle_free);
  luaL_unref(loop->L, LUA_REGISTRYINDEX, s->handler_ref);
  free(s);
  loop_set_ext(loop, &signals_key, NULL);
}

static int signals_open(lua_State *L, mw_loop *loop) {
  mw_signals *s = calloc(1, sizeof *s);
  if (!s)
    return 0;
  s->handler_ref = LUA_NOREF;
  s->stop = malloc(sizeof *s->stop);
  int missing = !s->stop;
  for (int i = 0; i < NREPEATABLE; i++) {
    s->each[i] = malloc(sizeof *s->each[i]);
    missing |= !s->each[i];
  }
  if (missing) {
    free(s->stop);
    for (int i = 0; i < NREPEATABLE; i++)
      free(s->each[i]);
    free(s);
    return 0;
  }
  uv_async_init(&loop->uv, s->stop, on_stop_async);
  s->stop->data = loop;
  uv_unref((uv_handle_t *)s->stop);
  for (int i = 0; i < NREPEATABLE; i++) {
    uv_signal_init(&loop->uv, s->each[i]);
    s->each[i]->data = loop;
    uv_signal_start(s->each[i], on_repeatable, repeatable[i]);
    uv_unref((uv_handle_t *)s->each[i]);
  }
  loop_set_ext(loop, &signals_key, s);
  loop_at_close(loop, &s->closer, signals_close, s);
  (void)L;
  return 1;
}

/* core.on_signal(fn): fn(signame) runs as a task on the first SIGTERM or
 * SIGINT and on every SIGHUP and SIGUSR1; a second SIGTERM or SIGINT exits
 * at once with 128 + its number. core.on_signal(nil) restores the default
 * actions. The handles do not keep the loop running. */
static int l_on_signal(lua_State *L) {
  mw_loop *loop = loop_get(L);
  mw_signals *s = loop_ext(loop, &signals_key);
  if (lua_isnoneornil(L, 1)) {
    if (s) {
      loop_hook_remove(&s->closer);
      signals_close(loop, s);
    }
    return 0;
  }
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (!s && !signals_open(L, loop))
    return luaL_error(L, "core.on_signal: out of memory");
  s = loop_ext(loop, &signals_key);
  luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
  lua_pushvalue(L, 1);
  s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  stop_received = 0;
  stop_async = s->stop;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  return 0;
}

void signals_register(lua_State *L) {
  lua_pushcfunction(L, l_on_signal);
  lua_setfield(L, -2, "on_signal");
}
