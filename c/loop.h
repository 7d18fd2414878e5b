/* The per-Lua-state event loop and the task (coroutine) scheduler.
 *
 * One mw_loop lives in the registry of each Lua state that loads
 * moonwatch.core. Every uv handle the core opens belongs to its uv loop, and
 * the loop's finaliser closes them all, so lua_close() leaves nothing behind.
 */
#ifndef MW_LOOP_H
#define MW_LOOP_H

#include <lua.h>
#include <stdint.h>
#include <uv.h>

typedef struct mw_task mw_task;
typedef struct mw_http mw_http;
typedef struct mw_resolver mw_resolver;
typedef struct mw_signals mw_signals;

/* A task's budget_ns for "no limit" (0 means the loop's default). */
#define TASK_NO_BUDGET UINT64_MAX

typedef enum {
  TASK_READY,     /* queued, will be resumed by the loop */
  TASK_RUNNING,   /* executing Lua right now */
  TASK_WAITING,   /* suspended in a core call (sleep, request, ...) */
  TASK_DONE,      /* returned */
  TASK_FAILED,    /* raised an error */
  TASK_CANCELLED, /* stopped from outside */
} mw_task_state;

/* What a waiting task is blocked on; cancel must release it without resuming
 * the task. */
typedef void (*mw_wait_cancel_fn)(void *data);
typedef void (*mw_task_done_fn)(mw_task *task, void *data);

struct mw_task {
  struct mw_loop *loop;
  lua_State *co;
  int self_ref; /* registry ref anchoring the userdata (and its thread) */
  int nresults;
  mw_task_state state;
  int cancel_requested;
  int pooled;         /* a dispatcher check: its thread is reused once it ends */
  int exposed;        /* Lua got hold of it (core.current): never reused */
  int nargs;          /* values waiting on co's stack for the next resume */
  uint64_t budget_ns; /* CPU budget of one resume; 0: the loop's */
  mw_task *ready_prev, *ready_next;
  mw_task *alive_prev, *alive_next;
  mw_wait_cancel_fn wait_cancel;
  void *wait_data;
  mw_task_done_fn on_done;
  void *on_done_data;
};

typedef struct mw_loop {
  uv_loop_t uv;
  lua_State *L; /* main thread: a stack to work on in callbacks */
  uv_idle_t ready_idle;
  uv_prepare_t flush_prepare; /* flushes batched log records each turn */
  uint64_t turn;              /* counts loop turns */
  mw_task *ready_head, *ready_tail;
  mw_task *current;
  mw_task *alive; /* every task not yet ended */
  int pool_ref;   /* ended check tasks kept for reuse (a Lua table) */
  int pool_n;
  int tasks_alive;
  int running; /* inside core.run */
  int closed;
  uint64_t cpu_budget_ns; /* default CPU budget of a task's resume; 0: none */
  mw_http *http;
  mw_resolver *resolver;
  mw_signals *signals;
} mw_loop;

/* Returns the loop of L's state, creating it on first use. */
mw_loop *loop_get(lua_State *L);

/* Starts a task running the function below nargs arguments on L's stack
 * (both popped). The task starts on the next loop turn, or at once when
 * start_now is set (only from a loop callback). Returns the task, whose
 * userdata is left on L's stack. */
mw_task *task_spawn(lua_State *L, int nargs, int start_now);
/* Creates a task like task_spawn without starting it, so that the caller can
 * set on_done first; task_start then runs it at once (from the loop only). */
mw_task *task_new(lua_State *L, int nargs);
void task_start(mw_task *task);
/* Like task_new, for tasks nobody holds (dispatcher checks): reuses the
 * thread of one that ended, which saves a coroutine's allocation and
 * collection per check. */
mw_task *task_new_pooled(lua_State *L, int nargs);
/* Resumes a waiting task with nargs values already pushed onto task->co. */
void task_resume(mw_task *task, int nargs);
/* Aborts what the task waits on and ends it as cancelled. */
int task_cancel(mw_task *task);
/* Returns the task that L runs in, or raises "<what> must be called from a
 * task". */
mw_task *task_check_current(lua_State *L, const char *what);
/* Marks the current task as waiting on something that cancel releases. The
 * caller then returns lua_yield(L, 0). */
void task_wait(mw_task *task, mw_wait_cancel_fn cancel, void *data);
int task_is_final(const mw_task *task);
/* Reads a CPU budget in seconds at idx (0: none); raises naming what. */
uint64_t task_check_budget(lua_State *L, int idx, const char *what);
/* Pushes true, results... | false, traceback, error | false, "cancelled". */
int task_push_result(lua_State *L, mw_task *task);
void task_queue_init(mw_loop *loop);

void loop_register(lua_State *L);
void task_register(lua_State *L);
void timer_register(lua_State *L);
void http_register(lua_State *L);
void resolver_register(lua_State *L);
void dispatch_register(lua_State *L);
void signal_register(lua_State *L);

/* Drops the transport's poll for fd, if any: the fd was closed behind its
 * back and is about to be watched for something else. */
void http_forget_fd(mw_loop *loop, int fd);

/* Shutdown hooks called from the loop finaliser, in this order. */
void http_shutdown(mw_loop *loop);
void resolver_shutdown(mw_loop *loop);
void signal_shutdown(mw_loop *loop);

#endif
