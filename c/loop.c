/* L1: the loop of a Lua state: creation, hooks, closers, the fd registry,
 * clocks. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "loop.h"

static const char loop_key = 'L';

void *loop_ext(const mw_loop *loop, const void *key) {
  for (int i = 0; i < MW_LOOP_EXT_MAX; i++)
    if (loop->ext[i].key == key)
      return loop->ext[i].value;
  return NULL;
}

void loop_set_ext(mw_loop *loop, const void *key, void *value) {
  int free_slot = -1;
  for (int i = 0; i < MW_LOOP_EXT_MAX; i++) {
    if (loop->ext[i].key == key) {
      loop->ext[i].value = value;
      return;
    }
    if (!loop->ext[i].key && free_slot < 0)
      free_slot = i;
  }
  if (free_slot < 0) { /* a fixed set of modules: more is a bug */
    fprintf(stderr, "moonwatch: more than %d modules keep state in the loop\n", MW_LOOP_EXT_MAX);
    abort();
  }
  loop->ext[free_slot].key = key;
  loop->ext[free_slot].value = value;
}

/* Hooks and closers */

void loop_hook_add(mw_loop *loop, mw_hook *hook, mw_hook_fn fn, void *data) {
  hook->fn = fn;
  hook->data = data;
  list_push_back(&loop->hooks, &hook->link);
}

void loop_hook_remove(mw_hook *hook) {
  list_remove(&hook->link);
}

void loop_hooks_run(mw_loop *loop) {
  mw_list *node, *next;
  list_each(node, next, &loop->hooks) {
    mw_hook *hook = list_entry(node, mw_hook, link);
    hook->fn(loop, hook->data);
  }
}

void loop_at_close(mw_loop *loop, mw_hook *closer, mw_hook_fn fn, void *data) {
  closer->fn = fn;
  closer->data = data;
  list_push_back(&loop->closers, &closer->link);
}

static void loop_on_prepare(uv_prepare_t *prepare) {
  mw_loop *loop = prepare->data;
  loop->turn++;
  loop_hooks_run(loop);
}

/* The fd registry */

static void fd_on_poll(uv_poll_t *poll, int status, int events) {
  mw_fd *w = poll->data;
  if (status < 0)
    w->events = 0; /* libuv stopped the poll */
  w->on_events(w, status, events);
}

static void fd_on_closed(uv_handle_t *handle) {
  mw_fd *w = handle->data;
  w->on_close(w);
}

void loop_fd_close(mw_fd *w) {
  mw_loop *loop = w->loop;
  if (uv_is_closing((uv_handle_t *)&w->poll))
    return;
  if (w->fd < loop->fds_cap && loop->fds[w->fd] == w)
    loop->fds[w->fd] = NULL;
  uv_close((uv_handle_t *)&w->poll, fd_on_closed);
}

void loop_fd_forget(mw_loop *loop, int fd) {
  if (fd >= 0 && fd < loop->fds_cap && loop->fds[fd])
    loop_fd_close(loop->fds[fd]);
}

int loop_fd_open(mw_loop *loop, mw_fd *w, int fd, const void *owner, mw_fd_cb on_events,
                 mw_fd_close_cb on_close) {
  if (fd < 0)
    return UV_EBADF;
  if (fd >= loop->fds_cap) {
    int cap = loop->fds_cap ? loop->fds_cap : 64;
    while (cap <= fd)
      cap *= 2;
    mw_fd **grown = realloc(loop->fds, (size_t)cap * sizeof *grown);
    if (!grown)
      return UV_ENOMEM;
    memset(grown + loop->fds_cap, 0, (size_t)(cap - loop->fds_cap) * sizeof *grown);
    loop->fds = grown;
    loop->fds_cap = cap;
  }
  if (loop->fds[fd])
    return UV_EEXIST;
  int rc = uv_poll_init(&loop->uv, &w->poll, fd);
  if (rc != 0)
    return rc;
  w->poll.data = w;
  w->loop = loop;
  w->fd = fd;
  w->events = 0;
  w->owner = owner;
  w->on_events = on_events;
  w->on_close = on_close;
  loop->fds[fd] = w;
  return 0;
}

int loop_fd_watch(mw_fd *w, int events) {
  if (events == w->events)
    return 0;
  w->events = events;
  if (!events)
    return uv_poll_stop(&w->poll);
  return uv_poll_start(&w->poll, events, fd_on_poll);
}

void loop_fd_keep_alive(mw_fd *w, int keep) {
  if (keep)
    uv_ref((uv_handle_t *)&w->poll);
  else
    uv_unref((uv_handle_t *)&w->poll);
}

mw_fd *loop_fd_find(const mw_loop *loop, int fd, const void *owner) {
  if (fd < 0 || fd >= loop->fds_cap || !loop->fds[fd] || loop->fds[fd]->owner != owner)
    return NULL;
  return loop->fds[fd];
}

void loop_fd_close_all(mw_loop *loop, const void *owner) {
  for (int fd = 0; fd < loop->fds_cap; fd++)
    if (loop->fds[fd] && loop->fds[fd]->owner == owner)
      loop_fd_close(loop->fds[fd]);
}

/* Closing */

static void handle_close_orphan(uv_handle_t *handle, void *arg) {
  int *count = arg;
  if (!uv_is_closing(handle)) {
    /* Every module closes its own handles; one left here is a bug, and
     * closing it without its callback leaks its memory but keeps us alive. */
    (*count)++;
    uv_close(handle, NULL);
  }
}

static int loop_gc(lua_State *L) {
  mw_loop *loop = lua_touserdata(L, 1);
  if (loop->closed)
    return 0;
  loop->L = L;
  mw_list *last;
  while ((last = list_empty(&loop->closers) ? NULL : loop->closers.prev)) {
    list_remove(last);
    mw_hook *closer = list_entry(last, mw_hook, link);
    closer->fn(loop, closer->data);
  }
  for (int fd = 0; fd < loop->fds_cap; fd++)
    if (loop->fds[fd])
      loop_fd_close(loop->fds[fd]);
  loop->closed = 1;
  uv_close((uv_handle_t *)&loop->prepare, NULL);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  int orphans = 0;
  uv_walk(&loop->uv, handle_close_orphan, &orphans);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  if (orphans)
    fprintf(stderr, "moonwatch: %d uv handle(s) were still open at exit\n", orphans);
  if (uv_loop_close(&loop->uv) != 0)
    fprintf(stderr, "moonwatch: the event loop could not be closed\n");
  free(loop->fds);
  loop->fds = NULL;
  loop->fds_cap = 0;
  return 0;
}

mw_loop *loop_get(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &loop_key) == LUA_TUSERDATA) {
    mw_loop *loop = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return loop;
  }
  lua_pop(L, 1);
  mw_loop *loop = lua_newuserdatauv(L, sizeof *loop, 0);
  memset(loop, 0, sizeof *loop);
  int rc = uv_loop_init(&loop->uv);
  if (rc != 0)
    luaL_error(L, "moonwatch: cannot create the event loop: %s", uv_strerror(rc));
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, loop_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, "moonwatch.loop");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &loop_key);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  loop->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  loop->uv.data = loop;
  list_init(&loop->hooks);
  list_init(&loop->closers);
  uv_prepare_init(&loop->uv, &loop->prepare);
  loop->prepare.data = loop;
  uv_prepare_start(&loop->prepare, loop_on_prepare);
  uv_unref((uv_handle_t *)&loop->prepare); /* never keeps the loop alive */
  return loop;
}

mw_loop *loop_check_open(lua_State *L) {
  mw_loop *loop = loop_get(L);
  if (loop->closed)
    luaL_error(L, "moonwatch: the event loop is closed");
  return loop;
}

static void handle_count_active(uv_handle_t *handle, void *arg) {
  int *count = arg;
  if (uv_is_active(handle) && uv_has_ref(handle) && !uv_is_closing(handle))
    (*count)++;
}

int loop_count_handles(mw_loop *loop) {
  int handles = 0;
  if (!loop->closed)
    uv_walk(&loop->uv, handle_count_active, &handles);
  return handles;
}

/* Clocks */

/* core.now() -> monotonic seconds, sub-microsecond resolution */
static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

/* core.time() -> wall-clock seconds since the epoch */
static int l_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* core.rusage() -> { user = s, system = s, maxrss = KiB } of this process */
static int l_rusage(lua_State *L) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, (lua_Number)ru.ru_utime.tv_sec + (lua_Number)ru.ru_utime.tv_usec / 1e6);
  lua_setfield(L, -2, "user");
  lua_pushnumber(L, (lua_Number)ru.ru_stime.tv_sec + (lua_Number)ru.ru_stime.tv_usec / 1e6);
  lua_setfield(L, -2, "system");
  lua_pushinteger(L, ru.ru_maxrss);
  lua_setfield(L, -2, "maxrss");
  return 1;
}

void loop_register(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"now", l_now}, {"time", l_time}, {"rusage", l_rusage}, {NULL, NULL}};
  loop_get(L);
  luaL_setfuncs(L, funcs, 0);
}
