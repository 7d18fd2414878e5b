/* store.c (L0): SQLite files opened, checked, moved aside when corrupt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static char dir[] = "/tmp/mw_store_test_XXXXXX";

static int setup(void **state) {
  (void)state;
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void path_in(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%s", dir, name);
}

static mw_store_stmt stmt(const char *sql, mw_store_value *params, int n) {
  mw_store_stmt st = {(char *)sql, strlen(sql), params, n};
  return st;
}

static void test_values_round_trip(void **state) {
  (void)state;
  char path[200];
  path_in(path, sizeof path, "values.db");
  char *error = NULL, *notice = NULL;
  mw_store *db = store_open(path, MW_STORE_TIMEOUT_MS, &error, &notice);
  assert_non_null(db);
  assert_null(error);
  assert_null(notice);
  mw_store_value params[4] = {{.type = MW_STORE_NULL},
                              {.type = MW_STORE_INTEGER, .u.i = INT64_MIN},
                              {.type = MW_STORE_REAL, .u.r = 0.25},
                              {.type = MW_STORE_TEXT, .u.s = {"a\0b", 3}}};
  mw_store_stmt st = stmt("SELECT ? AS n, ? AS i, ? AS r, ? AS s", params, 4);
  mw_store_rows rows;
  int64_t changes = -1;
  assert_int_equal(store_run(db, &st, &rows, &changes, &error), 0);
  assert_int_equal(rows.nrows, 1);
  assert_int_equal(rows.ncols, 4);
  assert_string_equal(rows.names[3], "s");
  assert_int_equal(rows.cells[0].type, MW_STORE_NULL);
  assert_true(rows.cells[1].u.i == INT64_MIN);
  assert_true(rows.cells[2].u.r == 0.25);
  assert_int_equal(rows.cells[3].u.s.len, 3);
  assert_memory_equal(rows.cells[3].u.s.p, "a\0b", 3);
  store_rows_free(&rows);
  st = stmt("SELECT ?", params, 2);
  assert_int_equal(store_run(db, &st, NULL, NULL, &error), -1);
  assert_non_null(strstr(error, "the statement has 1 parameter(s), 2 given (in: SELECT ?)"));
  free(error);
  store_close(db);
}

static void test_rows_are_capped(void **state) {
  (void)state;
  char path[200];
  path_in(path, sizeof path, "cap.db");
  char *error = NULL, *notice = NULL;
  mw_store *db = store_open(path, MW_STORE_TIMEOUT_MS, &error, &notice);
  assert_non_null(db);
  mw_store_stmt st = stmt("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                          "SELECT x FROM c",
                          NULL, 0);
  mw_store_rows rows;
  assert_int_equal(store_run(db, &st, &rows, NULL, &error), -1);
  assert_non_null(strstr(error, "more rows than a query may return (100000)"));
  assert_int_equal(rows.nrows, 0); /* freed on failure */
  free(error);
  store_close(db);
}

static void write_garbage(const char *path) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  for (int i = 0; i < 512; i++)
    fputs("garbage!", f);
  fclose(f);
}

/* A second corrupt file within the same second does not replace the first
 * one moved aside. */
static void test_corrupt_moved_aside_without_replacing(void **state) {
  (void)state;
  char path[200], first[300], second[300];
  path_in(path, sizeof path, "bad.db");
  long now = (long)time(NULL);
  snprintf(first, sizeof first, "%s.corrupt-%ld", path, now);
  snprintf(second, sizeof second, "%s.corrupt-%ld-1", path, now);
  write_garbage(first); /* as if moved aside a moment ago */
  write_garbage(path);
  char *error = NULL, *notice = NULL;
  mw_store *db = store_open(path, MW_STORE_TIMEOUT_MS, &error, &notice);
  assert_non_null(db);
  assert_null(error);
  assert_non_null(notice);
  /* time() may have moved on: then the plain name was free */
  struct stat sb;
  if (time(NULL) == now) {
    assert_non_null(strstr(notice, second));
    assert_int_equal(stat(second, &sb), 0);
  }
  assert_int_equal(stat(first, &sb), 0);
  free(notice);
  store_close(db);
}

static void test_transaction_all_or_nothing(void **state) {
  (void)state;
  char path[200];
  path_in(path, sizeof path, "tx.db");
  char *error = NULL, *notice = NULL;
  mw_store *db = store_open(path, MW_STORE_TIMEOUT_MS, &error, &notice);
  assert_non_null(db);
  mw_store_stmt list[3] = {stmt("CREATE TABLE t(a)", NULL, 0),
                           stmt("INSERT INTO t VALUES (1)", NULL, 0),
                           stmt("INSERT INTO nope VALUES (1)", NULL, 0)};
  assert_int_equal(store_transaction(db, list, 3, &error), -1);
  assert_non_null(strstr(error, "statement 3 of the transaction: no such table: nope"));
  free(error);
  mw_store_stmt check = stmt("SELECT * FROM t", NULL, 0);
  mw_store_rows rows;
  assert_int_equal(store_run(db, &check, &rows, NULL, &error), -1);
  assert_non_null(strstr(error, "no such table: t"));
  free(error);
  assert_int_equal(store_transaction(db, list, 2, &error), 0);
  assert_int_equal(store_run(db, &check, &rows, NULL, &error), 0);
  assert_int_equal(rows.nrows, 1);
  store_rows_free(&rows);
  store_close(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_round_trip),
      cmocka_unit_test(test_rows_are_capped),
      cmocka_unit_test(test_corrupt_moved_aside_without_replacing),
      cmocka_unit_test(test_transaction_all_or_nothing),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
