/* L4: the Lua binding of the logger: core.logger{...} and core.log_levels.
 *
 * log.c never blocks and never waits: when a flush leaves records queued
 * because the output said EAGAIN, this file watches the fd through the
 * loop's fd registry (it never keeps the loop alive) and flushes when it is
 * writable. A loop hook flushes batched records once per turn. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif

#include "log.h"
#include "log_lua.h"
#include "loop.h"

#include <lauxlib.h>
#include <lua.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOGGER_MT "moonwatch.logger"
#define LEVEL_HINT "(use DEBUG, INFO, WARNING, ERROR, CRITICAL)"

struct bound_logger;

/* Freed only in its close callback. */
typedef struct {
  mw_fd w;
  struct bound_logger *owner; /* NULL once the logger is collected */
} log_watch;

typedef struct bound_logger {
  mw_logger *lg;    /* NULL once collected */
  mw_loop *loop;    /* the loop of the state that made it */
  log_watch *watch; /* NULL until the output first said EAGAIN */
  bool watching;    /* watch started */
  mw_list link;     /* every logger, for the loop's flush hook */
  /* A record's fields, reused: reading a fields table costs no allocation
   * once these are big enough. */
  mw_log_field *fields;
  size_t fields_cap;
  mw_log_field *items; /* the members of the fields that are tables, in their order */
  size_t items_cap;
} bound_logger;

static mw_list loggers = {&loggers, &loggers};
static const char log_owner = 'W'; /* the registry owner of every watch */
static const char hook_key = 'F';

static void watch_free(mw_fd *w) {
  log_watch *lw = (log_watch *)w;
  if (lw->owner) { /* closed by the loop closing */
    lw->owner->watch = NULL;
    lw->owner->watching = false;
  }
  free(lw);
}

/* Before the fd it watches is closed, and when the logger goes. */
static void watch_close(bound_logger *u) {
  log_watch *w = u->watch;
  if (!w)
    return;
  u->watch = NULL;
  u->watching = false;
  w->owner = NULL;
  loop_fd_close(&w->w);
}

static void watch_update(bound_logger *u);

static void on_writable(mw_fd *w, int status, int events) {
  (void)events;
  bound_logger *u = ((log_watch *)w)->owner;
  if (!u)
    return;
  if (status < 0) { /* retried by the flush hook instead */
    loop_fd_watch(w, 0);
    u->watching = false;
    return;
  }
  logger_flush(u->lg);
  watch_update(u);
}

/* Watches the output while the logger waits for it, stops when it does not. */
static void watch_update(bound_logger *u) {
  int fd = logger_wait_fd(u->lg);
  if (fd < 0) {
    if (u->watching) {
      loop_fd_watch(&u->watch->w, 0);
      u->watching = false;
    }
    return;
  }
  if (u->watch && u->watch->w.fd != fd)
    watch_close(u);
  if (!u->watch) {
    if (u->loop->closed)
      return;
    log_watch *w = calloc(1, sizeof *w);
    if (!w)
      return;
    /* uv_poll_init sets O_NONBLOCK, which must not reach a socket we share
     * with other processes (we send with MSG_DONTWAIT instead). */
    int fl = fcntl(fd, F_GETFL);
    int rc = loop_fd_open(u->loop, &w->w, fd, &log_owner, on_writable, watch_free);
    if (fl >= 0 && !(fl & O_NONBLOCK))
      fcntl(fd, F_SETFL, fl);
    /* Another logger watches the same fd: the records wait for the flush
     * hook, at the next turn. */
    if (rc != 0) {
      free(w);
      return;
    }
    w->owner = u;
    loop_fd_keep_alive(&w->w, 0);
    u->watch = w;
  }
  if (!u->watching && loop_fd_watch(&u->watch->w, UV_WRITABLE) == 0)
    u->watching = true;
}

/* Once per loop turn, before it waits for I/O: batched records go out, and
 * records kept after a write error are retried. */
static void flush_hook(mw_loop *loop, void *data) {
  (void)data;
  mw_list *node, *next;
  list_each(node, next, &loggers) {
    bound_logger *u = list_entry(node, bound_logger, link);
    if (u->watching || u->loop != loop)
      continue; /* its poll flushes it */
    logger_flush(u->lg);
    if (logger_wait_fd(u->lg) >= 0)
      watch_update(u);
  }
}

static void hook_close(mw_loop *loop, void *data) {
  loop_hook_remove(data);
  free(data);
  loop_set_ext(loop, &hook_key, NULL);
}

/* Methods get the metatable as upvalue 1: comparing it is cheaper than
 * luaL_checkudata's registry lookup on every log call. */
static bound_logger *check_udata(lua_State *L) {
  bound_logger *u = lua_touserdata(L, 1);
  if (u && lua_getmetatable(L, 1)) {
    int ours = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (ours && u->lg) {
      return u;
    }
  }
  luaL_typeerror(L, 1, LOGGER_MT);
  return NULL;
}

static mw_logger *check_logger(lua_State *L) {
  return check_udata(L)->lg;
}

static int check_level(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TNUMBER: {
    int isint;
    lua_Integer n = lua_tointegerx(L, idx, &isint);
    if (!isint || n < 0 || n > INT_MAX) {
      return luaL_error(L, "logger: level must be a non-negative integer, got %s",
                        luaL_tolstring(L, idx, NULL));
    }
    return (int)n;
  }
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    int level;
    if (logger_parse_level(s, len, &level) < 0) {
      return luaL_error(L, "logger: unknown level '%s' " LEVEL_HINT, s);
    }
    return level;
  }
  default:
    return luaL_error(L, "logger: level must be a name or a number, got %s", luaL_typename(L, idx));
  }
}

/* Strings and numbers without copying (lua_tolstring); anything else through
 * tostring(), which is the slow path. */
static const char *arg_text(lua_State *L, int idx, size_t *len) {
  const char *s = lua_tolstring(L, idx, len);
  return s ? s : luaL_tolstring(L, idx, len);
}

/* ---- fields: lg:log(level, name, msg, fields?, base?) ----
 *
 * fields and base are tables of name -> string, number, boolean, or a table
 * of name -> number; a name in fields hides the same name in base (the
 * logger's static fields), without building a merged table per record. The
 * strings stay in the tables, on the stack, for the call. */

typedef struct {
  size_t n, items; /* used in u->fields, u->items */
} fields_fill;

/* Room for need fields in *p (of *cap). */
static int grow(mw_log_field **p, size_t *cap, size_t need) {
  if (need <= *cap) {
    return 0;
  }
  size_t ncap = *cap ? 2 * *cap : 16;
  while (ncap < need) {
    ncap *= 2;
  }
  mw_log_field *np = realloc(*p, ncap * sizeof *np);
  if (!np) {
    return -1;
  }
  *p = np;
  *cap = ncap;
  return 0;
}

static int key_before(const mw_log_field *a, const mw_log_field *b) {
  size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
  int c = memcmp(a->key, b->key, n);
  return c < 0 || (c == 0 && a->key_len < b->key_len);
}

static int key_cmp(const void *a, const void *b) {
  return key_before(a, b) ? -1 : key_before(b, a);
}

/* Sorted by name: lua_next's order changes from run to run, a log line
 * should not. Insertion sort for the handful of fields of a record. */
static void sort_fields(mw_log_field *f, size_t n) {
  if (n > 16) {
    qsort(f, n, sizeof *f, key_cmp);
    return;
  }
  for (size_t i = 1; i < n; i++) {
    mw_log_field t = f[i];
    size_t j = i;
    for (; j > 0 && key_before(&t, &f[j - 1]); j--) {
      f[j] = f[j - 1];
    }
    f[j] = t;
  }
}

static int field_error(lua_State *L, const char *key, const char *what) {
  return luaL_error(L,
                    "logger: field '%s' must be a string, number, boolean or table of numbers, "
                    "got %s",
                    key, what);
}

/* The value on top into f (whose key is set); a table's members go to
 * u->items. */
static int read_value(lua_State *L, bound_logger *u, fields_fill *fill, mw_log_field *f) {
  switch (lua_type(L, -1)) {
  case LUA_TSTRING:
    f->type = MW_LOG_FIELD_STRING;
    f->str = lua_tolstring(L, -1, &f->str_len);
    return 0;
  case LUA_TNUMBER:
    if (lua_isinteger(L, -1)) {
      f->type = MW_LOG_FIELD_INT;
      f->i = (long long)lua_tointeger(L, -1);
    } else {
      f->type = MW_LOG_FIELD_NUMBER;
      f->num = (double)lua_tonumber(L, -1);
    }
    return 0;
  case LUA_TBOOLEAN:
    f->type = MW_LOG_FIELD_BOOL;
    f->b = lua_toboolean(L, -1);
    return 0;
  case LUA_TTABLE:
    break;
  default:
    return field_error(L, f->key, luaL_typename(L, -1));
  }
  f->type = MW_LOG_FIELD_OBJECT;
  f->obj = NULL; /* set once u->items stops moving */
  f->obj_n = 0;
  int t = lua_gettop(L);
  for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TNUMBER) {
      const char *what = lua_type(L, -2) != LUA_TSTRING
                             ? lua_pushfstring(L, "a table with a %s key", luaL_typename(L, -2))
                             : lua_pushfstring(L, "a table with a %s value", luaL_typename(L, -1));
      return field_error(L, f->key, what);
    }
    if (grow(&u->items, &u->items_cap, fill->items + 1) < 0) {
      return -1;
    }
    mw_log_field *m = &u->items[fill->items++];
    m->key = lua_tolstring(L, -2, &m->key_len);
    read_value(L, u, fill, m); /* a number: no recursion */
    f->obj_n++;
  }
  sort_fields(u->items + fill->items - f->obj_n, f->obj_n);
  return 0;
}

/* Appends the fields of the table at idx, but those named in the table at
 * hide (0: none). */
static int read_table(lua_State *L, bound_logger *u, fields_fill *fill, int idx, int hide) {
  size_t first = fill->n;
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      return luaL_error(L, "logger: field names must be strings, got %s", luaL_typename(L, -2));
    }
    if (hide) {
      lua_pushvalue(L, -2);
      int hidden = lua_rawget(L, hide) != LUA_TNIL;
      lua_pop(L, 1);
      if (hidden) {
        continue;
      }
    }
    if (grow(&u->fields, &u->fields_cap, fill->n + 1) < 0) {
      return -1;
    }
    mw_log_field *f = &u->fields[fill->n];
    f->key = lua_tolstring(L, -2, &f->key_len);
    if (read_value(L, u, fill, f) < 0) {
      return -1;
    }
    fill->n++;
  }
  sort_fields(u->fields + first, fill->n - first);
  return 0;
}

static int check_fields_arg(lua_State *L, int idx, int top) {
  int t = idx <= top ? lua_type(L, idx) : LUA_TNONE;
  if (t != LUA_TNONE && t != LUA_TNIL && t != LUA_TTABLE) {
    luaL_error(L, "logger: fields must be a table, got %s", luaL_typename(L, idx));
  }
  return t == LUA_TTABLE;
}

/* Only "monitor", this record's over the logger's: what a text format shows. */
static int read_monitor(lua_State *L, bound_logger *u, int rec, int base, size_t *n) {
  for (int i = 0; i < 2; i++) {
    int t = i == 0 ? rec : base;
    if (!t) {
      continue;
    }
    if (lua_getfield(L, t, "monitor") == LUA_TNIL) {
      lua_pop(L, 1);
      continue;
    }
    if (grow(&u->fields, &u->fields_cap, 1) < 0) {
      return -1;
    }
    fields_fill fill = {0, 0};
    u->fields[0].key = "monitor";
    u->fields[0].key_len = 7;
    /* The value stays in its table, so the string outlives the pop. A
     * table shows as "-": its members are not read. */
    int rc = 0;
    if (lua_type(L, -1) == LUA_TTABLE) {
      u->fields[0].type = MW_LOG_FIELD_OBJECT;
      u->fields[0].obj = NULL;
      u->fields[0].obj_n = 0;
    } else {
      rc = read_value(L, u, &fill, &u->fields[0]);
    }
    lua_pop(L, 1);
    if (rc < 0) {
      return -1;
    }
    *n = 1;
    return 0;
  }
  return 0;
}

/* The fields of the tables at idx (this record's) and idx + 1 (the
 * logger's): base first, so a logger's "monitor" leads. top: the caller's
 * last argument (arg_text may have pushed strings since). used
 * (MW_LOG_FIELDS_*): fields the format does not write are not looked at,
 * like those of a record filtered out. Returns 0 and sets fields and n (NULL
 * and 0 without tables), or -1 when out of memory. */
static int read_fields(lua_State *L, bound_logger *u, int idx, int top, int used,
                       const mw_log_field **fields, size_t *n) {
  *fields = NULL;
  *n = 0;
  int rec = check_fields_arg(L, idx, top), base = check_fields_arg(L, idx + 1, top);
  if ((!rec && !base) || used == MW_LOG_FIELDS_NONE) {
    return 0;
  }
  if (used == MW_LOG_FIELDS_MONITOR) {
    int rc = read_monitor(L, u, rec ? idx : 0, base ? idx + 1 : 0, n);
    if (rc == 0 && *n > 0) {
      *fields = u->fields;
    }
    return rc;
  }
  fields_fill fill = {0, 0};
  if (base && read_table(L, u, &fill, idx + 1, rec ? idx : 0) < 0) {
    return -1;
  }
  if (rec && read_table(L, u, &fill, idx, 0) < 0) {
    return -1;
  }
  size_t off = 0;
  for (size_t i = 0; i < fill.n; i++) {
    mw_log_field *f = &u->fields[i];
    if (f->type == MW_LOG_FIELD_OBJECT) {
      f->obj = u->items + off; /* items are in the order of their objects */
      off += f->obj_n;
    }
  }
  *fields = u->fields;
  *n = fill.n;
  return 0;
}

static void push_level_name(lua_State *L, int level) {
  const char *name = logger_level_name(level);
  if (name) {
    lua_pushstring(L, name);
  } else {
    lua_pushfstring(L, "Level %d", level);
  }
}

/* Returns true when written or queued, false when filtered out, nil +
 * message when the record was dropped (a failing log must not take the
 * caller down). Arguments from arg: name, message, fields?, base?. */
static int log_at(lua_State *L, bound_logger *u, int level, int arg) {
  mw_logger *lg = u->lg;
  if (!logger_enabled(lg, level)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  int top = lua_gettop(L);
  size_t name_len = 4, msg_len, nfields;
  const char *name = lua_isnoneornil(L, arg) ? "root" : arg_text(L, arg, &name_len);
  const char *msg = arg_text(L, arg + 1, &msg_len);
  const mw_log_field *fields;
  int rc;
  if (top < arg + 2) { /* no fields: the call of before there were any */
    rc = logger_log(lg, level, name, name_len, msg, msg_len);
  } else if (read_fields(L, u, arg + 2, top, logger_fields_used(lg), &fields, &nfields) < 0) {
    rc = -ENOMEM;
  } else {
    rc = logger_log_fields(lg, level, name, name_len, msg, msg_len, fields, nfields);
  }
  if (!u->watching && logger_wait_fd(lg) >= 0) {
    watch_update(u);
  }
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, rc == -ENOBUFS ? "logger: record dropped: the log buffer is full"
                                     : "logger: out of memory");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_log(lua_State *L) {
  bound_logger *u = check_udata(L);
  return log_at(L, u, check_level(L, 2), 3);
}

static int l_debug(lua_State *L) {
  return log_at(L, check_udata(L), MW_LOG_DEBUG, 2);
}

static int l_info(lua_State *L) {
  return log_at(L, check_udata(L), MW_LOG_INFO, 2);
}

static int l_warning(lua_State *L) {
  return log_at(L, check_udata(L), MW_LOG_WARNING, 2);
}

static int l_error(lua_State *L) {
  return log_at(L, check_udata(L), MW_LOG_ERROR, 2);
}

static int l_critical(lua_State *L) {
  return log_at(L, check_udata(L), MW_LOG_CRITICAL, 2);
}

static int l_enabled(lua_State *L) {
  mw_logger *lg = check_logger(L);
  lua_pushboolean(L, logger_enabled(lg, check_level(L, 2)));
  return 1;
}

static int l_level(lua_State *L) {
  mw_logger *lg = check_logger(L);
  push_level_name(L, logger_level(lg));
  lua_pushinteger(L, logger_level(lg));
  return 2;
}

static int l_set_level(lua_State *L) {
  mw_logger *lg = check_logger(L);
  logger_set_level(lg, check_level(L, 2));
  return 0;
}

/* lg:format(level, name, message, time?, fields?, base?) -> the record (with
 * its "\n") that lg:log would write; never filtered. time defaults to now. */
static int l_format(lua_State *L) {
  bound_logger *u = check_udata(L);
  mw_logger *lg = u->lg;
  int top = lua_gettop(L);
  int level = check_level(L, 2);
  double t;
  if (lua_isnoneornil(L, 5)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  } else {
    t = (double)luaL_checknumber(L, 5);
  }
  size_t name_len = 4, msg_len, len;
  const char *name = lua_isnoneornil(L, 3) ? "root" : arg_text(L, 3, &name_len);
  const char *msg = arg_text(L, 4, &msg_len);
  const mw_log_field *fields;
  size_t nfields;
  const char *rec;
  if (top < 6) {
    rec = logger_render(lg, t, level, name, name_len, msg, msg_len, &len);
  } else if (read_fields(L, u, 6, top, MW_LOG_FIELDS_ALL, &fields, &nfields) < 0) {
    rec = NULL;
  } else {
    rec = logger_render_fields(lg, t, level, name, name_len, msg, msg_len, fields, nfields, &len);
  }
  if (!rec) {
    return luaL_error(L, "logger: out of memory");
  }
  lua_pushlstring(L, rec, len);
  return 1;
}

/* At lua_close this runs before the loop's finaliser (the loop was made
 * first), so the watch is closed while the loop still runs callbacks. */
static int l_gc(lua_State *L) {
  bound_logger *u = lua_touserdata(L, 1);
  if (u && u->lg) {
    list_remove(&u->link);
    watch_close(u);
    logger_free(u->lg); /* the last, bounded attempt at what is queued */
    u->lg = NULL;
    free(u->fields);
    free(u->items);
    u->fields = u->items = NULL;
  }
  return 0;
}

static int l_tostring(lua_State *L) {
  bound_logger *u = lua_touserdata(L, 1);
  if (!u || !u->lg) {
    lua_pushstring(L, LOGGER_MT " (closed)");
    return 1;
  }
  push_level_name(L, logger_level(u->lg));
  lua_pushfstring(L, LOGGER_MT " (%s, fd %d): %p", lua_tostring(L, -1), logger_fd(u->lg),
                  (void *)u);
  return 1;
}

static const char *const options[] = {"level", "format", "fd", "file", "batch", NULL};

/* core.logger{ level = "INFO", format = <format or "json">, fd = 1 | file = path,
 * batch = false }: with batch, the records of one loop turn go out together
 * when the loop is about to wait (or at lg:flush()). */
static int l_logger_new(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  for (lua_pushnil(L); lua_next(L, 1); lua_pop(L, 1)) {
    int known = 0;
    if (lua_type(L, -2) == LUA_TSTRING) {
      for (int i = 0; options[i]; i++) {
        known |= strcmp(lua_tostring(L, -2), options[i]) == 0;
      }
    }
    if (!known) {
      lua_pushvalue(L, -2); /* luaL_tolstring on the key itself would confuse lua_next */
      return luaL_error(L, "logger: unknown option '%s' (use level, format, fd, file, batch)",
                        luaL_tolstring(L, -1, NULL));
    }
  }

  int level = MW_LOG_INFO;
  if (lua_getfield(L, 1, "level") != LUA_TNIL) {
    level = check_level(L, 2);
  }
  const char *format = NULL;
  if (lua_getfield(L, 1, "format") != LUA_TNIL) { /* index 3 */
    if (lua_type(L, 3) != LUA_TSTRING) {
      return luaL_error(L, "logger: format must be a string, got %s", luaL_typename(L, 3));
    }
    format = lua_tostring(L, 3);
  }
  int fd = 1;
  int has_fd = lua_getfield(L, 1, "fd") != LUA_TNIL; /* index 4 */
  if (has_fd) {
    int isint = 0;
    lua_Integer n = lua_type(L, 4) == LUA_TNUMBER ? lua_tointegerx(L, 4, &isint) : -1;
    if (!isint || n < 0 || n > INT_MAX) {
      return luaL_error(L, "logger: fd must be a non-negative integer, got %s",
                        lua_type(L, 4) == LUA_TNUMBER ? luaL_tolstring(L, 4, NULL)
                                                      : luaL_typename(L, 4));
    }
    fd = (int)n;
  }
  const char *file = NULL;
  if (lua_getfield(L, 1, "file") != LUA_TNIL) { /* index 5 */
    if (lua_type(L, 5) != LUA_TSTRING) {
      return luaL_error(L, "logger: file must be a string, got %s", luaL_typename(L, 5));
    }
    if (has_fd) {
      return luaL_error(L, "logger: give either fd or file, not both");
    }
    file = lua_tostring(L, 5);
  }

  /* The userdata exists before the logger so __gc frees it if a later step
   * raises. */
  int batch = lua_getfield(L, 1, "batch") != LUA_TNIL && lua_toboolean(L, -1);
  lua_pop(L, 1);
  mw_loop *loop = loop_get(L);
  bound_logger *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  list_init(&u->link);
  u->loop = loop;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setmetatable(L, -2);
  char err[MW_LOG_ERR_SIZE];
  u->lg = logger_new(format, level, err, sizeof err);
  if (!u->lg) {
    return luaL_error(L, "%s", err);
  }
  if (file) {
    if (logger_open_file(u->lg, file, err, sizeof err) < 0) {
      return luaL_error(L, "%s", err);
    }
  } else {
    logger_set_fd(u->lg, fd, false);
  }
  if (batch)
    logger_set_batch(u->lg, true);
  list_push_front(&loggers, &u->link);
  return 1;
}

/* lg:flush() writes the records the logger holds: true when all are out,
 * false when the output takes no more now (they follow when it does), nil +
 * message on a write error (they are kept and retried). */
static int l_flush(lua_State *L) {
  bound_logger *u = check_udata(L);
  int rc = logger_flush(u->lg);
  watch_update(u);
  if (rc == -EAGAIN) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "logger: write failed: %s", strerror(-rc));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* lg:reopen() opens the file again (after logrotate): true, or nil +
 * message ("not a file logger" for an fd). */
static int l_reopen(lua_State *L) {
  bound_logger *u = check_udata(L);
  char err[MW_LOG_ERR_SIZE];
  watch_close(u); /* it watches the fd about to be closed */
  int rc = logger_reopen(u->lg, err, sizeof err);
  watch_update(u);
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* lg:pending() -> bytes waiting for the output, records dropped so far */
static int l_pending(lua_State *L) {
  mw_logger *lg = check_logger(L);
  lua_pushinteger(L, (lua_Integer)logger_pending(lg));
  lua_pushinteger(L, (lua_Integer)logger_dropped(lg));
  return 2;
}

static const luaL_Reg logger_methods[] = {
    {"log", l_log},         {"debug", l_debug}, {"info", l_info},
    {"warning", l_warning}, {"error", l_error}, {"critical", l_critical},
    {"enabled", l_enabled}, {"level", l_level}, {"set_level", l_set_level},
    {"format", l_format},   {"flush", l_flush}, {"reopen", l_reopen},
    {"pending", l_pending}, {"__gc", l_gc},     {"__tostring", l_tostring},
    {NULL, NULL},
};

/* core.log_plain(...) -> true when every argument is a number, boolean, nil
 * or a string without a line break: what string.format may take as it is
 * for a text record. One C call instead of a Lua loop of type() and find()
 * calls, which cost a check 2 % of its time. */
static int l_plain(lua_State *L) {
  int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) {
    switch (lua_type(L, i)) {
    case LUA_TNUMBER:
    case LUA_TBOOLEAN:
    case LUA_TNIL:
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *str = lua_tolstring(L, i, &len);
      if (memchr(str, '\n', len) || memchr(str, '\r', len)) {
        lua_pushboolean(L, 0);
        return 1;
      }
      break;
    }
    default:
      lua_pushboolean(L, 0);
      return 1;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

void log_lua_register(lua_State *L) {
  int mod = lua_gettop(L);
  mw_loop *loop = loop_get(L);
  if (!loop_ext(loop, &hook_key)) {
    /* Two hooks of one allocation: the flush each turn, and its closer. */
    mw_hook *hooks = calloc(2, sizeof *hooks);
    if (!hooks)
      luaL_error(L, "moonwatch: out of memory");
    loop_hook_add(loop, &hooks[0], flush_hook, NULL);
    loop_at_close(loop, &hooks[1], hook_close, &hooks[0]);
    loop_set_ext(loop, &hook_key, hooks);
  }
  luaL_newmetatable(L, LOGGER_MT); /* also sets __name */
  lua_pushvalue(L, -1);
  luaL_setfuncs(L, logger_methods, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pushcclosure(L, l_logger_new, 1);
  lua_setfield(L, mod, "logger");
  lua_pushcfunction(L, l_plain);
  lua_setfield(L, mod, "log_plain");

  static const struct {
    const char *name;
    int level;
  } levels[] = {
      {"DEBUG", MW_LOG_DEBUG}, {"INFO", MW_LOG_INFO},         {"WARNING", MW_LOG_WARNING},
      {"ERROR", MW_LOG_ERROR}, {"CRITICAL", MW_LOG_CRITICAL},
  };
  lua_createtable(L, 0, 5);
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
    lua_pushinteger(L, levels[i].level);
    lua_setfield(L, -2, levels[i].name);
  }
  lua_setfield(L, mod, "log_levels");
}
