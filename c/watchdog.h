/* The CPU watchdog: bounds how long Lua runs without giving the loop back.
 *
 * The loop thread arms it around a stretch of Lua (a task's resume, a config
 * being evaluated); a thread of its own samples the loop thread's CPU clock
 * and, past the budget, interrupts it with a signal whose handler installs a
 * Lua hook (lua_sethook is safe there, as lua.c does for SIGINT). The hook
 * yields a task, which pcall cannot catch, or raises an error where a yield
 * is impossible. Arming costs two atomic stores: no syscall per resume. */
#ifndef MW_WATCHDOG_H
#define MW_WATCHDOG_H

#include <lua.h>
#include <stdint.h>

/* Budgets below this are refused: the sampling period is a fraction of it. */
#define MW_WATCHDOG_MIN_NS 10000000ull /* 10 ms */

typedef enum {
  MW_WATCHDOG_YIELD, /* a task: yield it (watchdog_fired tells the resumer) */
  MW_WATCHDOG_RAISE, /* the main thread: raise an error */
} mw_watchdog_mode;

typedef struct {
  lua_State *L;
  uint64_t budget_ns;
  mw_watchdog_mode mode;
  int armed;
} mw_watchdog_state;

/* Starts the sampling thread and installs the signal handler, once per
 * process. 0, or -errno. */
int watchdog_init(void);
/* Arms for L (0 budget: nothing is armed) and returns what was armed before,
 * for watchdog_restore. */
mw_watchdog_state watchdog_arm(lua_State *L, uint64_t budget_ns, mw_watchdog_mode mode);
/* Disarms (removing the hook if it fired) and re-arms what was saved. Returns
 * 1 if the watchdog fired during this arm. */
int watchdog_restore(mw_watchdog_state saved);
/* A coroutine resumed from the armed thread runs in the same stretch:
 * watchdog_enter points the hook at co and returns what to give
 * watchdog_leave when the resume returns (NULL: nothing is armed). An
 * overrun inside co stops co, then the thread that resumed it. */
lua_State *watchdog_enter(lua_State *co);
void watchdog_leave(lua_State *co, lua_State *prev);
/* The message of a task ended for its overrun. */
void watchdog_push_message(lua_State *L, uint64_t budget_ns);

#endif
