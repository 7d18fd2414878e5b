/* The moonwatch executable: Lua 5.4 with moonwatch.core preloaded.
 *
 *   moonwatch [options] [monitors.lua]   the daemon (lua/moonwatch/cli.lua)
 *   moonwatch -l script.lua [args...]    run a Lua script, as `nvim -l` does;
 *                                        this is how busted runs in the
 *                                        sanitizer build
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#ifndef MOONWATCH_LUA_DIR
#define MOONWATCH_LUA_DIR "/usr/local/share/lua/5.4"
#endif

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg)
    msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Our modules first: MOONWATCH_LUA_PATH, then the tree we were built from or
 * installed with, then Lua's defaults. */
static void path_setup(lua_State *L) {
  const char *dir = getenv("MOONWATCH_LUA_DIR");
  if (!dir || !*dir)
    dir = MOONWATCH_LUA_DIR;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_moonwatch_core);
  lua_setfield(L, -2, "moonwatch.core");
  lua_pop(L, 2);
}

/* arg as lua.c sets it: arg[0] the script, arg[-1] the program. */
static void args_setup(lua_State *L, int argc, char **argv, int script) {
  lua_createtable(L, argc - script - 1, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int run_protected(lua_State *L, int nargs, int nres) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  int rc = lua_pcall(L, nargs, nres, base);
  lua_remove(L, base);
  if (rc != LUA_OK) {
    fprintf(stderr, "moonwatch: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return rc;
}

static int script_run(lua_State *L, int argc, char **argv, int script) {
  args_setup(L, argc, argv, script);
  if (luaL_loadfile(L, argv[script]) != LUA_OK) {
    fprintf(stderr, "moonwatch: %s\n", lua_tostring(L, -1));
    return 1;
  }
  int nargs = argc - script - 1;
  luaL_checkstack(L, nargs, "too many arguments");
  for (int i = script + 1; i < argc; i++)
    lua_pushstring(L, argv[i]);
  return run_protected(L, nargs, 0) == LUA_OK ? 0 : 1;
}

static int daemon_run(lua_State *L, int argc, char **argv) {
  args_setup(L, argc, argv, 0);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "moonwatch.cli");
  if (run_protected(L, 1, 1) != LUA_OK)
    return 1;
  lua_getfield(L, -1, "main");
  lua_createtable(L, argc - 1, 0);
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  if (run_protected(L, 1, 1) != LUA_OK)
    return 1;
  int status = (int)lua_tointeger(L, -1);
  lua_pop(L, 2);
  return status;
}

int main(int argc, char **argv) {
  core_stdio_ensure();
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "moonwatch: cannot create a Lua state\n");
    return 1;
  }
  luaL_openlibs(L);
  path_setup(L);
  int status;
  if (argc >= 2 && strcmp(argv[1], "-l") == 0) {
    if (argc < 3) {
      fprintf(stderr, "moonwatch: -l needs a script: moonwatch -l script.lua [args...]\n");
      lua_close(L);
      return 2;
    }
    status = script_run(L, argc, argv, 2);
  } else {
    status = daemon_run(L, argc, argv);
  }
  lua_close(L); /* closes every handle: the loop's finaliser runs here */
  return status;
}
