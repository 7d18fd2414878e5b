/* L0: an SQLite database file, the durable store (see store.h). */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store.h"

#define SHOWN_MAX 80 /* bytes of a statement shown in a message */

struct mw_store {
  sqlite3 *db;
  char *path;
  int timeout_ms;
  uint64_t deadline_ns; /* of the running call; 0: none */
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* SQLite calls it every few thousand instructions: a long statement ends
 * with SQLITE_INTERRUPT at its deadline instead of holding the store. */
static int on_progress(void *data) {
  mw_store *s = data;
  return s->deadline_ns && now_ns() > s->deadline_ns;
}

static void deadline_start(mw_store *s) {
  s->deadline_ns = now_ns() + (uint64_t)s->timeout_ms * 1000000u;
}

/* SQLite's message for the last error, or the timeout's. */
static const char *step_message(mw_store *s, char *buf, size_t size) {
  if (sqlite3_errcode(s->db) != SQLITE_INTERRUPT)
    return sqlite3_errmsg(s->db);
  snprintf(buf, size, "interrupted at the store's timeout (%g s)", s->timeout_ms / 1000.0);
  return buf;
}

static char *format(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  return s;
}

/* SQLite's message, and the system's when SQLite says it comes from there
 * ("unable to open database file" alone does not say why). */
static char *db_error(sqlite3 *db, const char *path, const char *what) {
  int code = db ? sqlite3_errcode(db) : SQLITE_NOMEM;
  int sys = db ? sqlite3_system_errno(db) : 0;
  const char *msg = db ? sqlite3_errmsg(db) : "out of memory";
  if (sys && (code == SQLITE_CANTOPEN || code == SQLITE_IOERR || code == SQLITE_FULL ||
              code == SQLITE_READONLY || code == SQLITE_PERM))
    return format("store %s: %s%s (%s)", path, what, msg, strerror(sys));
  return format("store %s: %s%s", path, what, msg);
}

/* Runs a pragma and keeps the first column of its first row in *first
 * (quick_check's "ok"); returns the SQLite code. */
static int pragma(sqlite3 *db, const char *sql, char *first, size_t first_size) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return rc;
  if (first)
    first[0] = '\0';
  int row = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *text = sqlite3_column_text(st, 0);
    if (first && row++ == 0 && text)
      snprintf(first, first_size, "%s", (const char *)text);
    else if (first && row > 1) /* quick_check lists every problem */
      snprintf(first, first_size, "%s", "more than one problem");
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Opens and checks: 0 when fine, 1 when the file is not a sound database
 * (*why says how), -1 on another error (*error is set). */
static int db_open(const char *path, int timeout_ms, sqlite3 **out, char *why, size_t why_size,
                   char **error) {
  sqlite3 *db = NULL;
  *out = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc != SQLITE_OK) {
    *error = db_error(db, path, "cannot open: ");
    sqlite3_close(db);
    return -1;
  }
  sqlite3_busy_timeout(db, timeout_ms);
  char first[200];
  rc = pragma(db, "PRAGMA quick_check", first, sizeof first);
  if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT || (rc == SQLITE_OK && strcmp(first, "ok"))) {
    snprintf(why, why_size, "%s", rc == SQLITE_OK ? first : sqlite3_errmsg(db));
    sqlite3_close(db);
    return 1;
  }
  /* WAL: readers never block the writer, and a commit appends to one file.
   * synchronous=NORMAL syncs at checkpoints, not at every commit: a crash of
   * the process loses nothing, a power cut may lose the last commits but
   * never corrupts the file; a state change costs no fsync on the disk. */
  if (rc == SQLITE_OK)
    rc = pragma(db, "PRAGMA journal_mode=WAL", NULL, 0);
  if (rc == SQLITE_OK)
    rc = pragma(db, "PRAGMA synchronous=NORMAL", NULL, 0);
  if (rc != SQLITE_OK) {
    *error = db_error(db, path, "cannot open: ");
    sqlite3_close(db);
    return -1;
  }
  *out = db;
  return 0;
}

/* Moves path (and its -wal and -shm files) to <path>.corrupt-<time>[-n];
 * returns the new name or NULL with *error set. */
static char *quarantine(const char *path, char **error) {
  long now = (long)time(NULL);
  char *to = NULL;
  struct stat sb;
  for (int n = 0; n < 100; n++) {
    free(to);
    to = n ? format("%s.corrupt-%ld-%d", path, now, n) : format("%s.corrupt-%ld", path, now);
    if (!to || lstat(to, &sb) != 0)
      break;
  }
  if (!to || rename(path, to) != 0) {
    *error = format("store %s: it is not a sound database and cannot be moved aside: %s", path,
                    to ? strerror(errno) : "out of memory");
    free(to);
    return NULL;
  }
  static const char *const sides[] = {"-wal", "-shm"};
  for (int i = 0; i < 2; i++) {
    char *from_side = format("%s%s", path, sides[i]);
    char *to_side = format("%s%s", to, sides[i]);
    if (from_side && to_side)
      rename(from_side, to_side); /* absent when the file was not ours */
    free(from_side);
    free(to_side);
  }
  return to;
}

mw_store *store_open(const char *path, int timeout_ms, char **error, char **notice) {
  *error = NULL;
  *notice = NULL;
  char why[200];
  sqlite3 *db = NULL;
  int rc = db_open(path, timeout_ms, &db, why, sizeof why, error);
  if (rc == 1) {
    struct stat sb;
    /* Only a regular file is ours to move; never a device or a link. */
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      *error = format("store %s: not a sound database (%s), and not a regular file", path, why);
      return NULL;
    }
    char *to = quarantine(path, error);
    if (!to)
      return NULL;
    rc = db_open(path, timeout_ms, &db, why, sizeof why, error);
    if (rc == 0)
      *notice = format("store %s: the file was not a sound database (%s); it was moved to %s "
                       "and a fresh database started",
                       path, why, to);
    else if (rc == 1)
      *error = format("store %s: a fresh database fails its check too (%s)", path, why);
    free(to);
  }
  if (rc != 0)
    return NULL;
  mw_store *s = calloc(1, sizeof *s);
  if (s)
    s->path = strdup(path);
  if (!s || !s->path) {
    free(s);
    sqlite3_close(db);
    *error = format("store %s: out of memory", path);
    return NULL;
  }
  s->db = db;
  s->timeout_ms = timeout_ms;
  sqlite3_progress_handler(db, 1000, on_progress, s);
  return s;
}

void store_close(mw_store *s) {
  if (!s)
    return;
  sqlite3_close(s->db);
  free(s->path);
  free(s);
}

/* A message with the statement's start (cut at SHOWN_MAX), which the caller
 * prefixes with the path. */
static char *stmt_error(const mw_store_stmt *st, const char *msg) {
  int shown = st->len > SHOWN_MAX ? SHOWN_MAX : (int)st->len;
  return format("%s (in: %.*s%s)", msg, shown, st->sql, st->len > SHOWN_MAX ? "..." : "");
}

static int bind(mw_store *s, sqlite3_stmt *ps, const mw_store_stmt *st, char **error) {
  int want = sqlite3_bind_parameter_count(ps);
  if (want != st->nparams) {
    char msg[100];
    snprintf(msg, sizeof msg, "the statement has %d parameter(s), %d given", want, st->nparams);
    *error = stmt_error(st, msg);
    return -1;
  }
  for (int i = 0; i < st->nparams; i++) {
    const mw_store_value *v = &st->params[i];
    int rc = SQLITE_OK;
    switch (v->type) {
    case MW_STORE_NULL:
      rc = sqlite3_bind_null(ps, i + 1);
      break;
    case MW_STORE_INTEGER:
      rc = sqlite3_bind_int64(ps, i + 1, v->u.i);
      break;
    case MW_STORE_REAL:
      rc = sqlite3_bind_double(ps, i + 1, v->u.r);
      break;
    case MW_STORE_TEXT:
      rc = sqlite3_bind_text64(ps, i + 1, v->u.s.p, v->u.s.len, SQLITE_STATIC, SQLITE_UTF8);
      break;
    }
    if (rc != SQLITE_OK) {
      *error = stmt_error(st, sqlite3_errmsg(s->db));
      return -1;
    }
  }
  return 0;
}

/* Appends the current row of ps to rows; returns NULL or a message. */
static const char *row_add(sqlite3_stmt *ps, mw_store_rows *rows) {
  if (rows->nrows >= MW_STORE_ROWS_MAX)
    return "the result has more rows than a query may return (100000)";
  size_t need = (rows->nrows + 1) * (size_t)rows->ncols;
  if (need > rows->cap) {
    size_t cap = rows->cap ? rows->cap * 2 : (size_t)rows->ncols * 16;
    while (cap < need)
      cap *= 2;
    mw_store_value *cells = realloc(rows->cells, cap * sizeof *cells);
    if (!cells)
      return "out of memory";
    rows->cells = cells;
    rows->cap = cap;
  }
  mw_store_value *row = rows->cells + rows->nrows * (size_t)rows->ncols;
  for (int c = 0; c < rows->ncols; c++)
    row[c].type = MW_STORE_NULL; /* so that a partial row is freed cleanly */
  rows->nrows++;
  for (int c = 0; c < rows->ncols; c++) {
    mw_store_value *v = &row[c];
    switch (sqlite3_column_type(ps, c)) {
    case SQLITE_INTEGER:
      v->type = MW_STORE_INTEGER;
      v->u.i = sqlite3_column_int64(ps, c);
      break;
    case SQLITE_FLOAT:
      v->type = MW_STORE_REAL;
      v->u.r = sqlite3_column_double(ps, c);
      break;
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      const void *p = sqlite3_column_type(ps, c) == SQLITE_TEXT
                          ? (const void *)sqlite3_column_text(ps, c)
                          : sqlite3_column_blob(ps, c);
      size_t len = (size_t)sqlite3_column_bytes(ps, c);
      if (rows->bytes + len > MW_STORE_RESULT_MAX)
        return "the result is larger than a query may return (64 MiB)";
      char *copy = malloc(len + 1);
      if (!copy)
        return "out of memory";
      if (len)
        memcpy(copy, p, len);
      copy[len] = '\0';
      rows->bytes += len;
      v->type = MW_STORE_TEXT;
      v->u.s.p = copy;
      v->u.s.len = len;
      break;
    }
    default:
      break;
    }
  }
  return NULL;
}

static const char *rows_start(sqlite3_stmt *ps, mw_store_rows *rows) {
  rows->ncols = sqlite3_column_count(ps);
  if (rows->ncols == 0)
    return NULL;
  rows->names = calloc((size_t)rows->ncols, sizeof *rows->names);
  if (!rows->names)
    return "out of memory";
  for (int c = 0; c < rows->ncols; c++) {
    const char *name = sqlite3_column_name(ps, c);
    rows->names[c] = strdup(name ? name : "?");
    if (!rows->names[c])
      return "out of memory";
  }
  return NULL;
}

/* Whether text holds another statement than whitespace and comments. */
static int has_more(mw_store *s, const char *tail, size_t len) {
  sqlite3_stmt *next = NULL;
  if (len == 0)
    return 0;
  int rc = sqlite3_prepare_v2(s->db, tail, (int)len, &next, NULL);
  sqlite3_finalize(next);
  return rc != SQLITE_OK || next != NULL;
}

static int run(mw_store *s, const mw_store_stmt *st, mw_store_rows *rows, int64_t *changes,
               char **error) {
  *error = NULL;
  if (changes)
    *changes = 0;
  if (rows)
    memset(rows, 0, sizeof *rows);
  sqlite3_stmt *ps = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v2(s->db, st->sql, (int)st->len, &ps, &tail);
  if (rc != SQLITE_OK) {
    *error = stmt_error(st, sqlite3_errmsg(s->db));
    return -1;
  }
  if (!ps) {
    *error = stmt_error(st, "no statement");
    return -1;
  }
  if (has_more(s, tail, st->len - (size_t)(tail - st->sql))) {
    sqlite3_finalize(ps);
    *error = stmt_error(st, "one statement per call (a transaction takes several)");
    return -1;
  }
  if (bind(s, ps, st, error) != 0) {
    sqlite3_finalize(ps);
    return -1;
  }
  const char *fail = rows ? rows_start(ps, rows) : NULL;
  while (!fail && (rc = sqlite3_step(ps)) == SQLITE_ROW)
    if (rows && rows->ncols)
      fail = row_add(ps, rows);
  char buf[100];
  if (!fail && rc != SQLITE_DONE)
    *error = stmt_error(st, step_message(s, buf, sizeof buf));
  else if (fail)
    *error = stmt_error(st, fail);
  sqlite3_finalize(ps);
  if (*error) {
    if (rows)
      store_rows_free(rows);
    return -1;
  }
  if (changes)
    *changes = sqlite3_changes64(s->db);
  return 0;
}

int store_run(mw_store *s, const mw_store_stmt *st, mw_store_rows *rows, int64_t *changes,
              char **error) {
  deadline_start(s);
  int rc = run(s, st, rows, changes, error);
  s->deadline_ns = 0;
  if (rc == 0)
    return 0;
  char *msg = *error;
  *error = format("store %s: %s", s->path, msg ? msg : "out of memory");
  free(msg);
  return -1;
}

int store_transaction(mw_store *s, const mw_store_stmt *list, int n, char **error) {
  *error = NULL;
  char *msg = NULL;
  deadline_start(s);
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
    s->deadline_ns = 0;
    *error = format("store %s: cannot begin a transaction: %s", s->path, msg ? msg : "?");
    sqlite3_free(msg);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    char *err = NULL;
    if (run(s, &list[i], NULL, NULL, &err) != 0) {
      s->deadline_ns = 0; /* the rollback is never interrupted */
      *error = format("store %s: statement %d of the transaction: %s", s->path, i + 1,
                      err ? err : "out of memory");
      free(err);
      if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
      return -1;
    }
  }
  s->deadline_ns = 0; /* nor the commit of work done in time */
  if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
    *error = format("store %s: cannot commit: %s", s->path, msg ? msg : "?");
    sqlite3_free(msg);
    if (!sqlite3_get_autocommit(s->db))
      sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
  }
  return 0;
}

static void value_free(mw_store_value *v) {
  if (v->type == MW_STORE_TEXT)
    free(v->u.s.p);
  v->type = MW_STORE_NULL;
}

void store_rows_free(mw_store_rows *rows) {
  for (size_t i = 0; i < rows->nrows * (size_t)rows->ncols; i++)
    value_free(&rows->cells[i]);
  if (rows->names)
    for (int c = 0; c < rows->ncols; c++)
      free(rows->names[c]);
  free(rows->names);
  free(rows->cells);
  memset(rows, 0, sizeof *rows);
}

void store_stmt_free(mw_store_stmt *st) {
  for (int i = 0; i < st->nparams; i++)
    value_free(&st->params[i]);
  free(st->params);
  free(st->sql);
  memset(st, 0, sizeof *st);
}
