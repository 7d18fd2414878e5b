/* L5: luaopen_moonwatch_core, the C core as a Lua module. */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <sys/resource.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "dispatch.h"
#include "dns_lua.h"
#include "icmp_lua.h"
#include "log_lua.h"
#include "loop.h"
#include "metrics_lua.h"
#include "metrics_serve.h"
#include "regex_lua.h"
#include "request_lua.h"
#include "resolver.h"
#include "server_lua.h"
#include "signals.h"
#include "smtp_lua.h"
#include "sleep.h"
#include "store_lua.h"
#include "task.h"
#include "tcp_lua.h"
#include "tz_lua.h"

#ifndef MOONWATCH_VERSION
#define MOONWATCH_VERSION "dev"
#endif

/* Thousands of monitors need thousands of sockets. */
static rlim_t nofile_raise(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

void core_stdio_ensure(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
      continue;
    /* open returns the lowest free fd: this one, as the lower are open */
    int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (null >= 0 && null != fd) {
      dup2(null, fd);
      close(null);
    }
  }
}

extern char **environ;

/* core.environ() -> { NAME = value, ... }: the process environment, which
 * stock Lua can only probe name by name. */
static int l_environ(lua_State *L) {
  lua_newtable(L);
  for (char **e = environ; e && *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq || eq == *e)
      continue;
    lua_pushlstring(L, *e, (size_t)(eq - *e));
    lua_pushstring(L, eq + 1);
    lua_rawset(L, -3);
  }
  return 1;
}

int luaopen_moonwatch_core(lua_State *L) {
  core_stdio_ensure();
  /* A peer closing a socket must not kill us; curl gets EPIPE instead. */
  signal(SIGPIPE, SIG_IGN);
  rlim_t nofile = nofile_raise();
  lua_newtable(L);
  loop_register(L);
  task_register(L);
  sleep_register(L);
  request_lua_register(L);
  smtp_lua_register(L);
  tcp_lua_register(L);
  resolver_register(L);
  dns_lua_register(L);
  icmp_lua_register(L);
  dispatch_register(L);
  signals_register(L);
  log_lua_register(L);
  regex_lua_register(L);
  tz_lua_register(L);
  store_lua_register(L);
  server_lua_register(L);
  metrics_lua_register(L);
  metrics_serve_register(L);
  lua_pushcfunction(L, l_environ);
  lua_setfield(L, -2, "environ");
  lua_pushliteral(L, MOONWATCH_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, (lua_Integer)nofile);
  lua_setfield(L, -2, "nofile");
  return 1;
}
