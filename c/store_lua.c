/* L4: core.store_open(path) and store objects: SQLite off the loop.
 *
 * Each store has one connection and one serial work queue (workq.c) on
 * libuv's thread pool: opening and every statement run there, one at a time
 * and in order, while the calling task waits, so a slow or full disk delays
 * only the tasks that wait for the store, never the loop. A cancelled task's
 * statement still runs to its end (it may be a write worth keeping); only
 * its result is dropped. The connection state (conn) outlives its userdata
 * until its last job is done: nothing the pool uses is ever freed. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_lua.h"
#include "task.h"
#include "workq.h"

#define STORE_MT "moonwatch.store"

typedef enum { JOB_OPEN, JOB_EXEC, JOB_QUERY, JOB_TRANSACTION, JOB_CLOSE } job_kind;

typedef struct conn conn;

typedef struct {
  mw_workq_job w;
  conn *c;
  job_kind kind;
  mw_task *task; /* who waits for the result; NULL when nobody does */
  mw_store_stmt *stmts;
  int nstmts;
  int rc;
  char *error, *notice;
  int64_t changes;
  mw_store_rows rows;
} job;

struct conn {
  mw_workq queue;
  mw_loop *loop;
  mw_store *db; /* touched only by jobs, on the pool */
  char *path;
  int timeout_ms;
  int closing; /* takes no more statements; its close job is queued */
  int jobs;    /* queued or running, the close job included */
  int has_ud;  /* a userdata points here */
  job close_job;
  mw_hook closer;
};

typedef struct {
  conn *c; /* NULL once collected */
} store_ud;

static void conn_maybe_free(conn *c) {
  if (!c->closing || c->jobs > 0 || c->has_ud)
    return;
  loop_hook_remove(&c->closer);
  free(c->path);
  free(c);
}

static void job_free(job *j) {
  for (int i = 0; i < j->nstmts; i++)
    store_stmt_free(&j->stmts[i]);
  free(j->stmts);
  free(j->error);
  free(j->notice);
  store_rows_free(&j->rows);
  if (j != &j->c->close_job)
    free(j);
}

/* On the pool */

static void job_work(mw_workq_job *w) {
  job *j = (job *)w;
  conn *c = j->c;
  switch (j->kind) {
  case JOB_OPEN:
    c->db = store_open(c->path, c->timeout_ms, &j->error, &j->notice);
    j->rc = c->db ? 0 : -1;
    break;
  case JOB_EXEC:
  case JOB_QUERY:
    j->rc = store_run(c->db, &j->stmts[0], j->kind == JOB_QUERY ? &j->rows : NULL, &j->changes,
                      &j->error);
    break;
  case JOB_TRANSACTION:
    j->rc = store_transaction(c->db, j->stmts, j->nstmts, &j->error);
    break;
  case JOB_CLOSE:
    store_close(c->db);
    c->db = NULL;
    break;
  }
}

/* On the loop */

static void job_done(mw_workq_job *w);

/* No more statements: the connection closes once those queued have run. */
static void conn_close(conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  memset(&c->close_job, 0, sizeof c->close_job);
  c->close_job.c = c;
  c->close_job.kind = JOB_CLOSE;
  c->jobs++;
  workq_push(&c->queue, &c->close_job.w, job_work, job_done);
}

static void conn_on_loop_close(mw_loop *loop, void *data) {
  (void)loop;
  conn_close(data); /* its jobs end in the loop's last run */
}

static void push_rows(lua_State *co, const mw_store_rows *rows) {
  lua_createtable(co, rows->nrows > INT32_MAX ? 0 : (int)rows->nrows, 0);
  for (size_t r = 0; r < rows->nrows; r++) {
    lua_createtable(co, 0, rows->ncols);
    const mw_store_value *row = rows->cells + r * (size_t)rows->ncols;
    for (int col = 0; col < rows->ncols; col++) {
      const mw_store_value *v = &row[col];
      switch (v->type) {
      case MW_STORE_NULL:
        continue; /* an absent field */
      case MW_STORE_INTEGER:
        lua_pushinteger(co, (lua_Integer)v->u.i);
        break;
      case MW_STORE_REAL:
        lua_pushnumber(co, (lua_Number)v->u.r);
        break;
      case MW_STORE_TEXT:
        lua_pushlstring(co, v->u.s.p, v->u.s.len);
        break;
      }
      lua_setfield(co, -2, rows->names[col]);
    }
    lua_rawseti(co, -2, (lua_Integer)r + 1);
  }
}

/* Pushes the job's results onto the waiting task's stack; returns how many. */
static int push_result(lua_State *co, job *j) {
  lua_checkstack(co, 4);
  if (j->rc != 0) {
    lua_pushnil(co);
    lua_pushstring(co, j->error ? j->error : "store: out of memory");
    return 2;
  }
  switch (j->kind) {
  case JOB_OPEN: {
    store_ud *u = lua_newuserdatauv(co, sizeof *u, 0);
    u->c = j->c;
    j->c->has_ud = 1;
    luaL_setmetatable(co, STORE_MT);
    if (!j->notice)
      return 1;
    lua_pushstring(co, j->notice);
    return 2;
  }
  case JOB_EXEC:
    lua_pushinteger(co, (lua_Integer)j->changes);
    return 1;
  case JOB_QUERY:
    push_rows(co, &j->rows);
    return 1;
  default:
    lua_pushboolean(co, 1);
    return 1;
  }
}

static void job_done(mw_workq_job *w) {
  job *j = (job *)w;
  conn *c = j->c;
  mw_task *task = j->task;
  if (task && c->loop->closed) {
    /* The loop's last run: nothing is resumed any more. */
    if (task->wait_data == j) {
      task->wait_cancel = NULL;
      task->wait_data = NULL;
    }
    task = NULL;
  }
  int n = task ? push_result(task->co, j) : 0;
  if (j->kind == JOB_OPEN && (j->rc != 0 || !task))
    conn_close(c); /* failed, or nobody to hand it to */
  c->jobs--;
  job_free(j);
  /* Before resuming: the task may drop the store, and c is not touched
   * afterwards. */
  conn_maybe_free(c);
  if (task)
    task_resume(task, n);
}

static void job_cancel(void *data) {
  ((job *)data)->task = NULL;
}

static int job_submit(lua_State *L, mw_task *task, job *j) {
  j->task = task;
  j->c->jobs++;
  workq_push(&j->c->queue, &j->w, job_work, job_done);
  task_wait(task, job_cancel, j);
  return lua_yield(L, 0);
}

/* Building statements */

static const char *const accepted = "nil, boolean, number or string";

/* Raises unless the value at idx can be a parameter. */
static void param_check(lua_State *L, int idx, const char *what, int stmt, int pos) {
  int t = lua_type(L, idx);
  if (t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING)
    return;
  if (stmt)
    luaL_error(L, "%s: statement %d: parameter %d is a %s (%s expected)", what, stmt, pos,
               luaL_typename(L, idx), accepted);
  luaL_error(L, "%s: parameter %d is a %s (%s expected)", what, pos, luaL_typename(L, idx),
             accepted);
}

/* Copies the value at idx (checked by param_check); returns NULL or why not. */
static const char *value_copy(lua_State *L, int idx, mw_store_value *v) {
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN:
    v->type = MW_STORE_INTEGER;
    v->u.i = lua_toboolean(L, idx);
    return NULL;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      v->type = MW_STORE_INTEGER;
      v->u.i = (int64_t)lua_tointeger(L, idx);
    } else {
      v->type = MW_STORE_REAL;
      v->u.r = (double)lua_tonumber(L, idx);
    }
    return NULL;
  case LUA_TSTRING: {
    size_t len = 0;
    const char *s = lua_tolstring(L, idx, &len);
    if (len > MW_STORE_VALUE_MAX)
      return "a string parameter is longer than 16 MiB";
    char *copy = malloc(len + 1);
    if (!copy)
      return "out of memory";
    memcpy(copy, s, len + 1);
    v->type = MW_STORE_TEXT;
    v->u.s.p = copy;
    v->u.s.len = len;
    return NULL;
  }
  default:
    v->type = MW_STORE_NULL;
    return NULL;
  }
}

/* Fills st from the SQL at sql_idx and the n values from first on, or the
 * n values t[2..n+1] of the table at first when from_table. Never raises. */
static const char *stmt_build(lua_State *L, int sql_idx, int first, int n, int from_table,
                              mw_store_stmt *st) {
  size_t len = 0;
  const char *sql = lua_tolstring(L, sql_idx, &len);
  if (len > MW_STORE_SQL_MAX)
    return "the statement is longer than 65536 bytes";
  if (strlen(sql) != len) /* SQLite would stop reading there */
    return "the statement holds a NUL byte";
  if (n > MW_STORE_PARAMS_MAX)
    return "a statement takes at most 999 parameters";
  st->sql = malloc(len + 1);
  st->params = calloc(n > 0 ? (size_t)n : 1, sizeof *st->params);
  if (!st->sql || !st->params)
    return "out of memory";
  memcpy(st->sql, sql, len + 1);
  st->len = len;
  for (int i = 0; i < n; i++) {
    int idx = first + i;
    if (from_table) {
      lua_rawgeti(L, first, i + 2);
      idx = lua_gettop(L);
    }
    const char *why = value_copy(L, idx, &st->params[i]);
    if (from_table)
      lua_pop(L, 1);
    st->nparams = i + 1; /* what store_stmt_free frees */
    if (why)
      return why;
  }
  return NULL;
}

static job *job_new(conn *c, job_kind kind, int nstmts) {
  job *j = calloc(1, sizeof *j);
  if (!j)
    return NULL;
  j->c = c;
  j->kind = kind;
  j->stmts = calloc(nstmts > 0 ? (size_t)nstmts : 1, sizeof *j->stmts);
  j->nstmts = nstmts;
  if (!j->stmts) {
    free(j);
    return NULL;
  }
  return j;
}

static int push_fail(lua_State *L, conn *c, const char *why) {
  lua_pushnil(L);
  lua_pushfstring(L, "store %s: %s", c->path, why);
  return 2;
}

/* Lua API */

static conn *check_store(lua_State *L, int *closed) {
  store_ud *u = luaL_checkudata(L, 1, STORE_MT);
  *closed = !u->c || u->c->closing;
  return u->c;
}

static int push_closed(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "store is closed");
  return 2;
}

/* store:exec(sql, ...) and store:query(sql, ...) */
static int run_one(lua_State *L, job_kind kind, const char *what) {
  int closed = 0;
  conn *c = check_store(L, &closed);
  luaL_checktype(L, 2, LUA_TSTRING);
  int n = lua_gettop(L) - 2;
  for (int i = 0; i < n; i++)
    param_check(L, 3 + i, what, 0, i + 1);
  if (closed)
    return push_closed(L);
  mw_task *task = task_check_current(L, what);
  job *j = job_new(c, kind, 1);
  if (!j)
    return push_fail(L, c, "out of memory");
  const char *why = stmt_build(L, 2, 3, n, 0, &j->stmts[0]);
  if (why) {
    push_fail(L, c, why);
    job_free(j);
    return 2;
  }
  return job_submit(L, task, j);
}

/* store:exec(sql, ...) -> changed rows | nil, message */
static int l_exec(lua_State *L) {
  return run_one(L, JOB_EXEC, "store:exec");
}

/* store:query(sql, ...) -> { row, ... } | nil, message */
static int l_query(lua_State *L) {
  return run_one(L, JOB_QUERY, "store:query");
}

/* The number of parameters of entry (a table on top): n - 1 when it has a
 * field n (as table.pack makes, for a trailing nil), else #entry - 1. */
static int entry_params(lua_State *L, int idx) {
  int n;
  if (lua_getfield(L, idx, "n") == LUA_TNUMBER && lua_isinteger(L, -1))
    n = (int)lua_tointeger(L, -1) - 1;
  else
    n = (int)lua_rawlen(L, idx) - 1;
  lua_pop(L, 1);
  return n < 0 ? 0 : n;
}

/* store:transaction({ {sql, p1, ...}, ... }) -> true | nil, message */
static int l_transaction(lua_State *L) {
  const char *what = "store:transaction";
  int closed = 0;
  conn *c = check_store(L, &closed);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_Integer count = (lua_Integer)lua_rawlen(L, 2);
  for (lua_Integer i = 1; i <= count && i <= MW_STORE_BATCH_MAX; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TTABLE)
      luaL_error(L, "%s: statement %d is a %s ({sql, parameters...} expected)", what, (int)i,
                 luaL_typename(L, -1));
    if (lua_rawgeti(L, 3, 1) != LUA_TSTRING)
      luaL_error(L, "%s: statement %d: its first element is a %s (the SQL text expected)", what,
                 (int)i, luaL_typename(L, -1));
    lua_pop(L, 1);
    int n = entry_params(L, 3);
    for (int p = 0; p < n && p < MW_STORE_PARAMS_MAX; p++) {
      lua_rawgeti(L, 3, p + 2);
      param_check(L, -1, what, (int)i, p + 1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  if (closed)
    return push_closed(L);
  mw_task *task = task_check_current(L, what);
  if (count > MW_STORE_BATCH_MAX)
    return push_fail(L, c, "a transaction takes at most 10000 statements");
  if (count == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  job *j = job_new(c, JOB_TRANSACTION, (int)count);
  if (!j)
    return push_fail(L, c, "out of memory");
  for (int i = 0; i < (int)count; i++) {
    lua_rawgeti(L, 2, i + 1);
    lua_rawgeti(L, 3, 1);
    const char *why = stmt_build(L, 4, 3, entry_params(L, 3), 1, &j->stmts[i]);
    lua_settop(L, 2);
    if (why) {
      lua_pushnil(L);
      lua_pushfstring(L, "store %s: statement %d of the transaction: %s", c->path, i + 1, why);
      job_free(j);
      return 2;
    }
  }
  return job_submit(L, task, j);
}

/* store:close() -> true. The connection closes on the pool once the
 * statements queued before have run; the call does not wait. */
static int l_close(lua_State *L) {
  store_ud *u = luaL_checkudata(L, 1, STORE_MT);
  if (u->c && !u->c->loop->closed)
    conn_close(u->c);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_gc(lua_State *L) {
  store_ud *u = luaL_checkudata(L, 1, STORE_MT);
  conn *c = u->c;
  if (!c)
    return 0;
  u->c = NULL;
  c->has_ud = 0;
  if (!c->loop->closed)
    conn_close(c);
  conn_maybe_free(c);
  return 0;
}

static int l_tostring(lua_State *L) {
  store_ud *u = luaL_checkudata(L, 1, STORE_MT);
  if (!u->c || u->c->closing)
    lua_pushliteral(L, "moonwatch.store (closed)");
  else
    lua_pushfstring(L, "moonwatch.store (%s)", u->c->path);
  return 1;
}

/* The options of core.store_open: { timeout = seconds }. */
static int open_timeout_ms(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx))
    return MW_STORE_TIMEOUT_MS;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "timeout") != 0)
      luaL_error(L, "core.store_open: unknown option %s (the options are: timeout)",
                 luaL_tolstring(L, -1, NULL));
  }
  int t = lua_getfield(L, idx, "timeout");
  if (t == LUA_TNIL)
    return MW_STORE_TIMEOUT_MS;
  lua_Number s = lua_tonumber(L, -1);
  if (t != LUA_TNUMBER || !(s >= 0.001 && s <= 86400))
    luaL_error(L,
               "core.store_open: timeout must be a number of seconds from 0.001 to 86400, got %s",
               luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  return (int)(s * 1000);
}

/* core.store_open(path [, { timeout = seconds }]) -> store [, notice] | nil, message */
static int l_store_open(lua_State *L) {
  size_t len = 0;
  const char *path = luaL_checklstring(L, 1, &len);
  if (len == 0 || strlen(path) != len)
    return luaL_error(L, "core.store_open: the path must be a file name (not empty, no NUL)");
  int timeout_ms = open_timeout_ms(L, 2);
  mw_task *task = task_check_current(L, "core.store_open");
  conn *c = calloc(1, sizeof *c);
  job *j = NULL;
  if (c)
    c->path = strdup(path);
  if (c && c->path)
    j = job_new(c, JOB_OPEN, 0);
  if (!j) {
    if (c)
      free(c->path);
    free(c);
    lua_pushnil(L);
    lua_pushfstring(L, "store %s: out of memory", path);
    return 2;
  }
  c->loop = task->loop;
  c->timeout_ms = timeout_ms;
  workq_init(&c->queue, &c->loop->uv);
  loop_at_close(c->loop, &c->closer, conn_on_loop_close, c);
  return job_submit(L, task, j);
}

void store_lua_register(lua_State *L) {
  static const luaL_Reg methods[] = {{"exec", l_exec},
                                     {"query", l_query},
                                     {"transaction", l_transaction},
                                     {"close", l_close},
                                     {NULL, NULL}};
  if (luaL_newmetatable(L, STORE_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_store_open);
  lua_setfield(L, -2, "store_open");
}
