/* L0: an SQLite database file, the durable store (states, sent alerts, the
 * outbox). Plain C with no loop and no Lua: every function here blocks on
 * the disk, so store_lua.c calls them from libuv's thread pool, one at a
 * time per connection. Values are copied in and out, as the Lua state
 * cannot be touched from the pool. */
#ifndef MW_STORE_H
#define MW_STORE_H

#include <stddef.h>
#include <stdint.h>

/* Bounds on what one call may hold in memory; past them it fails. */
#define MW_STORE_SQL_MAX 65536                 /* bytes of one statement's text */
#define MW_STORE_PARAMS_MAX 999                /* parameters of one statement */
#define MW_STORE_VALUE_MAX (16 * 1024 * 1024)  /* bytes of one string parameter */
#define MW_STORE_ROWS_MAX 100000               /* rows of one query's result */
#define MW_STORE_RESULT_MAX (64 * 1024 * 1024) /* bytes of strings in one result */
#define MW_STORE_BATCH_MAX 10000               /* statements of one transaction */
/* The default timeout of a store: how long a statement (or a transaction)
 * may run, lock waits included, before it is interrupted. */
#define MW_STORE_TIMEOUT_MS 10000

typedef struct mw_store mw_store;

typedef enum {
  MW_STORE_NULL,
  MW_STORE_INTEGER,
  MW_STORE_REAL,
  MW_STORE_TEXT, /* text or blob: bytes with a length */
} mw_store_type;

typedef struct {
  mw_store_type type;
  union {
    int64_t i;
    double r;
    struct {
      char *p; /* owned by whoever owns the value */
      size_t len;
    } s;
  } u;
} mw_store_value;

/* One statement: SQL text with positional parameters (?). */
typedef struct {
  char *sql;
  size_t len;
  mw_store_value *params;
  int nparams;
} mw_store_stmt;

/* A query's result: nrows rows of ncols cells, row-major. */
typedef struct {
  int ncols;
  char **names;
  mw_store_value *cells;
  size_t nrows, cap, bytes;
} mw_store_rows;

/* Opens (creating) the database at path, in WAL mode, and checks it. A file
 * that is not a database or fails the check is moved aside to
 * <path>.corrupt-<unix time> and a fresh one is made; *notice then says so.
 * Returns NULL and sets *error when it cannot be opened. Messages are
 * malloc'ed and name the path. timeout_ms bounds each later call. */
mw_store *store_open(const char *path, int timeout_ms, char **error, char **notice);
/* Runs one statement, keeping its rows in *rows when rows is not NULL.
 * Returns 0, or -1 with *error set. *changes: rows the statement changed. */
int store_run(mw_store *db, const mw_store_stmt *st, mw_store_rows *rows, int64_t *changes,
              char **error);
/* Runs the statements in one transaction: all of them or none. */
int store_transaction(mw_store *db, const mw_store_stmt *list, int n, char **error);
/* Closes the connection (NULL is allowed). */
void store_close(mw_store *db);
void store_rows_free(mw_store_rows *rows);
void store_stmt_free(mw_store_stmt *st);

#endif
