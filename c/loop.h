/* L1: the event loop of a Lua state.
 *
 * One mw_loop lives in the registry of each Lua state that loads
 * moonwatch.core. The loop never names its clients: they register
 * callbacks. Per turn, before it waits for I/O, it runs the hooks added with
 * loop_hook_add (Redis's before-sleep procedure). When the state closes it
 * runs the closers added with loop_at_close, the last added first, so a
 * module that registers after the modules it uses closes before them; then
 * it closes whatever handle is left (luv's loop_gc). Every fd watched for
 * readiness goes through the fd registry below, which knows its one owner.
 */
#ifndef MW_LOOP_H
#define MW_LOOP_H

#include <lua.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"

typedef struct mw_loop mw_loop;

typedef void (*mw_hook_fn)(mw_loop *loop, void *data);

/* A hook or a closer; embedded in its owner, which keeps it alive while it is
 * registered. */
typedef struct {
  mw_list link;
  mw_hook_fn fn;
  void *data;
} mw_hook;

/* A watched fd, embedded in its owner's socket state. Its uv_poll is the only
 * handle libuv has for the fd; it is freed only in on_close. */
typedef struct mw_fd mw_fd;
typedef void (*mw_fd_cb)(mw_fd *w, int status, int events);
typedef void (*mw_fd_close_cb)(mw_fd *w);

struct mw_fd {
  uv_poll_t poll;
  mw_loop *loop;
  int fd;
  int events;        /* what it watches now (0: stopped) */
  const void *owner; /* who opened it; lookups by anyone else miss */
  mw_fd_cb on_events;
  mw_fd_close_cb on_close;
};

#define MW_LOOP_EXT_MAX 16 /* modules with per-loop state; a linear scan finds them */

struct mw_loop {
  uv_loop_t uv;
  lua_State *L;  /* a stack for callbacks: the main thread, or core.run's */
  uint64_t turn; /* counts loop turns */
  int closed;    /* the state is closing: every handle is gone */
  /* the rest is the loop's own */
  uv_prepare_t prepare;
  mw_list hooks, closers;
  mw_fd **fds;
  int fds_cap;
  struct {
    const void *key;
    void *value;
  } ext[MW_LOOP_EXT_MAX];
};

/* Returns the loop of L's state, creating it on first use. */
mw_loop *loop_get(lua_State *L);
/* Raises "moonwatch: the event loop is closed" once it is. */
mw_loop *loop_check_open(lua_State *L);

/* A module's per-loop state, found by a key of its own (the address of a
 * static). loop_ext returns NULL until loop_set_ext. */
void *loop_ext(const mw_loop *loop, const void *key);
void loop_set_ext(mw_loop *loop, const void *key, void *value);

/* fn(loop, data) runs once per loop turn before the loop waits for I/O, and
 * from loop_hooks_run; removing a hook from inside a hook is allowed. */
void loop_hook_add(mw_loop *loop, mw_hook *hook, mw_hook_fn fn, void *data);
void loop_hook_remove(mw_hook *hook);
void loop_hooks_run(mw_loop *loop);
/* fn(loop, data) runs when the loop closes, in reverse order of
 * registration. A closer frees what it owns; removing it first (with
 * loop_hook_remove) cancels it. */
void loop_at_close(mw_loop *loop, mw_hook *closer, mw_hook_fn fn, void *data);

/* Starts watching fd for its owner: w is embedded in the owner's state and
 * on_close frees that. Returns 0, UV_EEXIST when fd is registered already
 * (by anyone), or another libuv error. */
int loop_fd_open(mw_loop *loop, mw_fd *w, int fd, const void *owner, mw_fd_cb on_events,
                 mw_fd_close_cb on_close);
/* Watches events (UV_READABLE | UV_WRITABLE; 0 stops), touching epoll only
 * when they change. */
int loop_fd_watch(mw_fd *w, int events);
/* Whether the fd keeps the loop running (it does from loop_fd_open). */
void loop_fd_keep_alive(mw_fd *w, int keep);
/* The registration of fd by owner, or NULL. */
mw_fd *loop_fd_find(const mw_loop *loop, int fd, const void *owner);
/* fd is a socket its caller just opened: a registration left for its number
 * is stale (its socket was closed without loop_fd_close; the kernel reuses
 * a number only once it is free), and is closed now. */
void loop_fd_forget(mw_loop *loop, int fd);
/* Stops watching; on_close runs from the loop. Call it before closing fd. */
void loop_fd_close(mw_fd *w);
/* Closes every fd owner has registered (at its shutdown). */
void loop_fd_close_all(mw_loop *loop, const void *owner);

/* uv handles that are active and keep the loop running. */
int loop_count_handles(mw_loop *loop);
/* Registers core.now, core.time and core.rusage in the table on top. */
void loop_register(lua_State *L);

#endif
