/* regex.c (L0): PCRE2 compiled once, matched with bounded backtracking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "regex.h"

static mw_regex *compile(const char *pattern, int flags) {
  char err[200];
  mw_regex *re = regex_compile(pattern, strlen(pattern), flags, err, sizeof err);
  assert_non_null(re);
  return re;
}

static void test_find(void **state) {
  (void)state;
  mw_regex *re = compile("ok|healthy", 0);
  size_t start = 0, end = 0;
  const char *s = "all healthy, ok";
  assert_int_equal(regex_find(re, s, strlen(s), 0, &start, &end), 1);
  assert_int_equal(start, 4);
  assert_int_equal(end, 11);
  assert_int_equal(regex_find(re, s, strlen(s), 5, &start, &end), 1);
  assert_int_equal(start, 13);
  assert_int_equal(regex_find(re, "down", 4, 0, &start, &end), 0);
  assert_int_equal(regex_find(re, "ok", 2, 3, &start, &end), 0); /* past the end */
  size_t len = 0;
  assert_string_equal(regex_pattern(re, &len), "ok|healthy");
  assert_int_equal(len, 10);
  regex_free(re);
}

static void test_flags_and_nul(void **state) {
  (void)state;
  size_t start = 0, end = 0;
  mw_regex *re = compile("OK", MW_REGEX_CASELESS);
  assert_int_equal(regex_find(re, "ok", 2, 0, &start, &end), 1);
  regex_free(re);
  char err[200];
  re = regex_compile("a\0b", 3, 0, err, sizeof err);
  assert_non_null(re);
  assert_int_equal(regex_find(re, "xa\0b", 4, 0, &start, &end), 1);
  assert_int_equal(start, 1);
  assert_int_equal(end, 4);
  regex_free(re);
}

static void test_bad_pattern(void **state) {
  (void)state;
  char err[200];
  assert_null(regex_compile("x(", 2, 0, err, sizeof err));
  assert_string_equal(err, "missing closing parenthesis at offset 2");
  regex_free(NULL);
}

static void test_match_limit(void **state) {
  (void)state;
  mw_regex *re = compile("^(a|a?)+$", 0);
  char subject[5002];
  memset(subject, 'a', 5000);
  subject[5000] = '!';
  subject[5001] = '\0';
  size_t start = 0, end = 0;
  assert_int_equal(regex_find(re, subject, 5001, 0, &start, &end), MW_REGEX_LIMIT);
  assert_string_equal(regex_message(re), "regex match limit exceeded");
  assert_int_equal(regex_find(re, "aaa", 3, 0, &start, &end), 1);
  regex_free(re);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_find),
      cmocka_unit_test(test_flags_and_nul),
      cmocka_unit_test(test_bad_pattern),
      cmocka_unit_test(test_match_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
