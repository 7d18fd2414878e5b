/* tz.c (L0): wall-clock time in named zones, TZ put back after each call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tz.h"

#define JAN_1_2026 1767225600 /* 00:00 UTC, a Thursday */
#define JUL_1_2026 1782864000

static struct tm local(time_t t, const char *zone) {
  struct tm tm;
  assert_int_equal(tz_localtime(t, zone, &tm), MW_TZ_OK);
  return tm;
}

static time_t wall(const char *zone, int year, int month, int day, int hour, int min) {
  struct tm w;
  memset(&w, 0, sizeof w);
  w.tm_year = year - 1900;
  w.tm_mon = month - 1;
  w.tm_mday = day;
  w.tm_hour = hour;
  w.tm_min = min;
  time_t t = 0;
  assert_int_equal(tz_mktime(&w, zone, &t), MW_TZ_OK);
  return t;
}

static void test_utc(void **state) {
  (void)state;
  struct tm tm = local(JAN_1_2026, "UTC");
  assert_int_equal(tm.tm_year, 126);
  assert_int_equal(tm.tm_hour, 0);
  assert_int_equal(tm.tm_wday, 4);
  assert_int_equal(tm.tm_gmtoff, 0);
  assert_int_equal(wall("UTC", 2026, 1, 1, 0, 0), JAN_1_2026);
}

static void test_zones(void **state) {
  (void)state;
  struct tm tm = local(JAN_1_2026, "Europe/Berlin");
  assert_int_equal(tm.tm_hour, 1);
  assert_int_equal(tm.tm_gmtoff, 3600);
  assert_int_equal(tm.tm_isdst, 0);
  tm = local(JUL_1_2026, "Europe/Berlin");
  assert_int_equal(tm.tm_hour, 2);
  assert_int_equal(tm.tm_gmtoff, 7200);
  assert_true(tm.tm_isdst > 0);
  tm = local(JAN_1_2026, "America/New_York");
  assert_int_equal(tm.tm_year, 125);
  assert_int_equal(tm.tm_mday, 31);
  assert_int_equal(tm.tm_hour, 19);
  assert_int_equal(tm.tm_gmtoff, -5 * 3600);
  tm = local(JAN_1_2026, "Asia/Kolkata");
  assert_int_equal(tm.tm_hour, 5);
  assert_int_equal(tm.tm_min, 30);
  assert_int_equal(tm.tm_gmtoff, 5 * 3600 + 1800);
  assert_int_equal(wall("Asia/Kolkata", 2026, 1, 1, 5, 30), JAN_1_2026);
  assert_int_equal(wall("America/New_York", 2025, 12, 31, 19, 0), JAN_1_2026);
}

static void test_gap_and_overlap(void **state) {
  (void)state;
  /* 29 March 2026, Berlin: 02:00 CET jumps to 03:00 CEST (01:00 UTC). */
  assert_int_equal(wall("Europe/Berlin", 2026, 3, 29, 1, 59), 1774745940);
  assert_int_equal(wall("Europe/Berlin", 2026, 3, 29, 2, 30), 1774747800); /* 03:30 CEST */
  assert_int_equal(wall("Europe/Berlin", 2026, 3, 29, 3, 30), 1774747800);
  /* 25 October 2026: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice. */
  assert_int_equal(wall("Europe/Berlin", 2026, 10, 25, 2, 30), 1792888200); /* 00:30 UTC */
  assert_int_equal(wall("Europe/Berlin", 2026, 10, 25, 3, 30), 1792895400);
  /* normalised: day 32 of December is 1 January */
  assert_int_equal(wall("UTC", 2025, 12, 32, 0, 0), JAN_1_2026);
}

static void test_unknown_and_refused(void **state) {
  (void)state;
  const char *bad[] = {"Mars/Olympus",
                       "../etc/passwd",
                       "/etc/localtime",
                       "Europe/../UTC",
                       "Europe",
                       "zone.tab",
                       "",
                       "Europe//Berlin",
                       "Europe/",
                       ".hidden",
                       "Europe/Ber lin",
                       "Europe/Berlin\n"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct tm tm;
    time_t t;
    assert_int_equal(tz_localtime(JAN_1_2026, bad[i], &tm), MW_TZ_UNKNOWN);
    memset(&tm, 0, sizeof tm);
    tm.tm_year = 126;
    tm.tm_mday = 1;
    assert_int_equal(tz_mktime(&tm, bad[i], &t), MW_TZ_UNKNOWN);
  }
}

/* The process's zone is as it was: TZ's value and what localtime_r says. */
static void test_restores_tz(void **state) {
  (void)state;
  setenv("TZ", "America/New_York", 1);
  tzset();
  (void)local(JAN_1_2026, "Asia/Kolkata");
  (void)wall("Europe/Berlin", 2026, 3, 29, 2, 30);
  assert_string_equal(getenv("TZ"), "America/New_York");
  time_t t = JAN_1_2026;
  struct tm tm;
  localtime_r(&t, &tm);
  assert_int_equal(tm.tm_gmtoff, -5 * 3600);
  unsetenv("TZ");
  tzset();
  (void)local(JAN_1_2026, "Asia/Kolkata");
  assert_null(getenv("TZ"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_utc),
      cmocka_unit_test(test_zones),
      cmocka_unit_test(test_gap_and_overlap),
      cmocka_unit_test(test_unknown_and_refused),
      cmocka_unit_test(test_restores_tz),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
