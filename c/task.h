/* L2: tasks, the Lua coroutines the loop resumes.
 *
 * A task runs until it waits in a core call (task_wait, then lua_yield);
 * whatever it waits on resumes it with task_resume, or releases it through
 * the cancel function when the task is cancelled. Only the loop resumes a
 * task: callbacks never call into Lua directly. */
#ifndef MW_TASK_H
#define MW_TASK_H

#include <lua.h>
#include <stdint.h>

#include "list.h"
#include "loop.h"

typedef struct mw_task mw_task;

/* A task's budget_ns for "no limit" (0 means the scheduler's default). */
#define MW_TASK_NO_BUDGET UINT64_MAX

typedef enum {
  MW_TASK_READY,     /* queued, will be resumed by the loop */
  MW_TASK_RUNNING,   /* executing Lua right now */
  MW_TASK_WAITING,   /* suspended in a core call (sleep, request, ...) */
  MW_TASK_DONE,      /* returned */
  MW_TASK_FAILED,    /* raised an error */
  MW_TASK_CANCELLED, /* stopped from outside */
} mw_task_state;

/* What a waiting task is blocked on; cancel must release it without resuming
 * the task. */
typedef void (*mw_task_cancel_fn)(void *data);
typedef void (*mw_task_done_fn)(mw_task *task, void *data);

struct mw_task {
  mw_loop *loop;
  struct mw_sched *sched;
  lua_State *co;
  int self_ref; /* registry ref anchoring the userdata (and its thread) */
  int nresults; /* once final: values left on co (see task_push_result) */
  mw_task_state state;
  int cancel_requested;
  int pooled;         /* a dispatcher check: its thread is reused once it ends */
  int exposed;        /* Lua got hold of it (core.current): never reused */
  int nargs;          /* values waiting on co's stack for the next resume */
  uint64_t budget_ns; /* CPU budget of one resume; 0: the scheduler's */
  mw_list ready_link, alive_link;
  mw_task_cancel_fn wait_cancel;
  void *wait_data;
  mw_task_done_fn on_done; /* runs once when the task ends, however it ends */
  void *on_done_data;
};

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
void task_wait(mw_task *task, mw_task_cancel_fn cancel, void *data);
int task_is_final(const mw_task *task);
/* Reads a CPU budget in seconds at idx (0: none); raises naming what. */
uint64_t task_check_budget(lua_State *L, int idx, const char *what);
/* Pushes true, results... | false, traceback, error | false, "cancelled". */
int task_push_result(lua_State *L, mw_task *task);
/* Registers core.run, core.spawn, core.current, core.cancel_all,
 * core.cpu_budget, core.cpu_limit and core.stats in the table on top. */
void task_register(lua_State *L);

#endif
