/* The CPU watchdog (see watchdog.h). */
#include "watchdog.h"

#include <dlfcn.h>
#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

/* SIGURG is ignored by default and unused by sockets we do not F_SETOWN; Go
 * preempts goroutines with it for the same reason. */
#define WATCHDOG_SIGNAL SIGURG
#define PERIOD_NS 20000000L /* sampling period: precision of a budget */
/* After a raised overrun, error handlers get this many instructions before
 * the next error, so a traceback can still be made. */
#define RAISE_AGAIN_COUNT 1000

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_error;
static pthread_t loop_thread;
static clockid_t loop_clock;

/* Odd while armed; every arm and disarm moves it on, so the sampler tells
 * one stretch of Lua from the next. */
static _Atomic uint64_t seq;
static _Atomic uint64_t budget;
static _Atomic uint64_t fire_seq; /* the stretch the sampler signalled for */

/* Written by the loop thread and read by the signal handler, which runs on
 * that thread. */
static mw_watchdog_state current;
static volatile sig_atomic_t fired;  /* the handler installed the hook */
static volatile sig_atomic_t struck; /* the hook yielded or raised */

static void hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  struck = 1;
  if (current.mode == MW_WATCHDOG_YIELD && lua_isyieldable(L)) {
    lua_yield(L, 0); /* must be the hook's last call */
    return;
  }
  lua_sethook(L, hook, LUA_MASKCOUNT, RAISE_AGAIN_COUNT);
  luaL_where(L, 0); /* a hook has no frame of its own: 0 is the function */
  lua_pushfstring(L, "CPU limit exceeded: still running after %f s of CPU",
                  (double)current.budget_ns / 1e9);
  lua_concat(L, 2);
  lua_error(L);
}

static void on_signal(int signum) {
  (void)signum;
  int saved_errno = errno;
  uint64_t s = atomic_load(&seq);
  if ((s & 1) && s == atomic_load(&fire_seq) && !fired && current.L) {
    fired = 1;
    lua_sethook(current.L, hook, LUA_MASKCOUNT, 1);
  }
  errno = saved_errno;
}

static uint64_t cpu_now(void) {
  struct timespec ts;
  if (clock_gettime(loop_clock, &ts) != 0)
    return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *sampler(void *arg) {
  (void)arg;
  uint64_t last = 0, start = 0;
  const struct timespec period = {0, PERIOD_NS};
  for (;;) {
    nanosleep(&period, NULL);
    uint64_t s = atomic_load(&seq);
    if (!(s & 1)) {
      last = s;
      continue;
    }
    uint64_t now = cpu_now();
    if (s != last) {
      last = s;
      start = now;
    } else if (now - start >= atomic_load(&budget) && atomic_load(&fire_seq) != s) {
      atomic_store(&fire_seq, s);
      pthread_kill(loop_thread, WATCHDOG_SIGNAL);
    }
  }
  return NULL;
}

/* The sampler runs until exit, so the code it runs must outlive lua_close,
 * which unloads a C module (stock lua5.4 loading moonwatch.core). */
static void pin_module(void) {
  Dl_info info;
  if (dladdr((void *)sampler, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static void init_once(void) {
  pin_module();
  loop_thread = pthread_self();
  int rc = pthread_getcpuclockid(loop_thread, &loop_clock);
  if (rc != 0) {
    init_error = -rc;
    return;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(WATCHDOG_SIGNAL, &sa, NULL) != 0) {
    init_error = -errno;
    return;
  }
  /* The sampler blocks every signal, so the process's signals (SIGTERM...)
   * and ours reach the loop thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  rc = pthread_create(&t, NULL, sampler, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    init_error = -rc;
    return;
  }
  pthread_detach(t);
}

int watchdog_init(void) {
  pthread_once(&once, init_once);
  return init_error;
}

static void disarm(void) {
  atomic_fetch_add(&seq, 1); /* even: the handler does nothing from here */
  if (fired)
    lua_sethook(current.L, NULL, 0, 0);
  fired = 0;
  current.armed = 0;
}

static void arm(lua_State *L, uint64_t budget_ns, mw_watchdog_mode mode) {
  current.L = L;
  current.budget_ns = budget_ns;
  current.mode = mode;
  current.armed = 1;
  struck = 0;
  atomic_store(&budget, budget_ns);
  atomic_fetch_add(&seq, 1);
}

mw_watchdog_state watchdog_arm(lua_State *L, uint64_t budget_ns, mw_watchdog_mode mode) {
  mw_watchdog_state saved = current;
  if (current.armed)
    disarm();
  if (budget_ns && !init_error)
    arm(L, budget_ns, mode);
  return saved;
}

int watchdog_restore(mw_watchdog_state saved) {
  int hit = struck;
  if (current.armed)
    disarm();
  struck = 0;
  if (saved.armed)
    arm(saved.L, saved.budget_ns, saved.mode);
  return hit;
}

lua_State *watchdog_enter(lua_State *co) {
  if (!current.armed)
    return NULL;
  lua_State *prev = current.L;
  current.L = co;
  if (fired) /* already over budget: co stops at once */
    lua_sethook(co, hook, LUA_MASKCOUNT, 1);
  return prev;
}

void watchdog_leave(lua_State *co, lua_State *prev) {
  if (!prev || !current.armed)
    return;
  current.L = prev;
  if (fired) {
    lua_sethook(co, NULL, 0, 0);
    lua_sethook(prev, hook, LUA_MASKCOUNT, 1);
  }
}

void watchdog_push_message(lua_State *L, uint64_t budget_ns) {
  lua_pushfstring(L,
                  "CPU budget exceeded: ran Lua for %f s of CPU without yielding "
                  "(cpu_budget)",
                  (double)budget_ns / 1e9);
}
