/* L4: wall-clock time in a named zone, for Lua (maintenance windows):
 *
 *   core.tz_localtime(t, zone) -> { year, month, day, hour, min, sec, wday,
 *     yday, isdst, offset }   (wday 1 = Sunday, yday 1 = 1 January, as
 *     os.date("*t"); offset: seconds east of UTC)
 *   core.tz_mktime(fields, zone) -> Unix time of that wall clock in zone
 *     (fields as above; hour, min and sec default to 0; out-of-range fields
 *     are normalised, so day + 1 is the next day; a time in the spring-forward
 *     gap moves on by the gap, one in the autumn overlap is the first)
 *
 * zone is an IANA name ("Europe/Berlin", "UTC"); an unknown one gives nil and
 * "unknown time zone 'X'". A malformed argument raises, as os.time's do. */
#include <lauxlib.h>
#include <math.h>
#include <string.h>

#include "tz.h"
#include "tz_lua.h"

#define SHOWN_MAX 100      /* bytes of a zone name shown in a message */
#define FIELD_MAX 10000000 /* |field|: keeps tm's ints and time_t far from overflow */

static int push_failure(lua_State *L, int rc, const char *zone) {
  if (rc == MW_TZ_NOMEM)
    return luaL_error(L, "not enough memory");
  lua_pushnil(L);
  if (rc != MW_TZ_UNKNOWN) {
    lua_pushliteral(L, "time out of range");
    return 2;
  }
  size_t len = strlen(zone);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "unknown time zone '");
  luaL_addlstring(&b, zone, len > SHOWN_MAX ? SHOWN_MAX : len);
  if (len > SHOWN_MAX)
    luaL_addstring(&b, "\xe2\x80\xa6"); /* … */
  luaL_addchar(&b, '\'');
  luaL_pushresult(&b);
  return 2;
}

static void set_int(lua_State *L, const char *key, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, key);
}

static int l_tz_localtime(lua_State *L) {
  lua_Number n = luaL_checknumber(L, 1);
  const char *zone = luaL_checkstring(L, 2);
  lua_Integer i;
  if (!lua_numbertointeger(floor(n), &i))
    return luaL_argerror(L, 1, "time out of range");
  struct tm tm;
  int rc = tz_localtime((time_t)i, zone, &tm);
  if (rc != MW_TZ_OK)
    return push_failure(L, rc, zone);
  lua_createtable(L, 0, 10);
  set_int(L, "year", (lua_Integer)tm.tm_year + 1900);
  set_int(L, "month", tm.tm_mon + 1);
  set_int(L, "day", tm.tm_mday);
  set_int(L, "hour", tm.tm_hour);
  set_int(L, "min", tm.tm_min);
  set_int(L, "sec", tm.tm_sec);
  set_int(L, "wday", tm.tm_wday + 1);
  set_int(L, "yday", tm.tm_yday + 1);
  lua_pushboolean(L, tm.tm_isdst > 0);
  lua_setfield(L, -2, "isdst");
  set_int(L, "offset", tm.tm_gmtoff);
  return 1;
}

/* fields[key] as an int, or def when absent (def < 0: required). */
static int get_field(lua_State *L, const char *key, int def, int delta) {
  int t = lua_getfield(L, 1, key);
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  lua_pop(L, 1);
  if (!isnum) {
    if (t != LUA_TNIL)
      return luaL_error(L, "field '%s' is not an integer", key);
    if (def < 0)
      return luaL_error(L, "field '%s' missing in date table", key);
    return def;
  }
  if (v > FIELD_MAX || v < -FIELD_MAX)
    return luaL_error(L, "field '%s' is out of range", key);
  return (int)v - delta;
}

static int l_tz_mktime(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *zone = luaL_checkstring(L, 2);
  struct tm wall;
  memset(&wall, 0, sizeof wall);
  wall.tm_year = get_field(L, "year", -1, 1900);
  wall.tm_mon = get_field(L, "month", -1, 1);
  wall.tm_mday = get_field(L, "day", -1, 0);
  wall.tm_hour = get_field(L, "hour", 0, 0);
  wall.tm_min = get_field(L, "min", 0, 0);
  wall.tm_sec = get_field(L, "sec", 0, 0);
  time_t t;
  int rc = tz_mktime(&wall, zone, &t);
  if (rc != MW_TZ_OK)
    return push_failure(L, rc, zone);
  lua_pushinteger(L, (lua_Integer)t);
  return 1;
}

void tz_lua_register(lua_State *L) {
  tz_init(); /* at load, before any pool thread */
  lua_pushcfunction(L, l_tz_localtime);
  lua_setfield(L, -2, "tz_localtime");
  lua_pushcfunction(L, l_tz_mktime);
  lua_setfield(L, -2, "tz_mktime");
}
