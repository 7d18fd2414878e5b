/* Unit tests for the logger (cmocka). Times are fixed and TZ=UTC unless a
 * test says otherwise. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, usleep, F_SETPIPE_SZ */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T0 1596906402.033 /* 2020-08-08 17:06:42.033 UTC */

static char out[1 << 20];

static void use_tz(const char *tz) {
  setenv("TZ", tz, 1);
  tzset();
}

static mw_logger *new_logger(const char *format) {
  char err[MW_LOG_ERR_SIZE] = "";
  mw_logger *lg = logger_new(format, MW_LOG_DEBUG, err, sizeof err);
  if (!lg) {
    fail_msg("logger_new(%s): %s", format ? format : "NULL", err);
  }
  return lg;
}

/* Formats one record into `out`; returns it. */
static const char *fmt_rec(mw_logger *lg, double t, int level, const char *name, const char *msg) {
  size_t n = logger_format(lg, out, sizeof out, t, level, name, strlen(name), msg, strlen(msg));
  assert_true(n < sizeof out);
  assert_int_equal(strlen(out), n);
  return out;
}

/* Formats with a one-off format string. */
static void check_format(const char *format, double t, int level, const char *name, const char *msg,
                         const char *want) {
  mw_logger *lg = new_logger(format);
  assert_string_equal(fmt_rec(lg, t, level, name, msg), want);
  logger_free(lg);
}

static void check_error(const char *format, const char *want) {
  char err[MW_LOG_ERR_SIZE] = "";
  mw_logger *lg = logger_new(format, MW_LOG_INFO, err, sizeof err);
  if (lg) {
    logger_free(lg);
    fail_msg("format '%s' compiled, expected: %s", format, want);
  }
  assert_string_equal(err, want);
}

static int valid_utf8(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 : 4;
    if (c >= 0xF5 || (c >= 0x80 && c < 0xC2) || i + len > n) {
      return 0;
    }
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) {
        return 0;
      }
    }
    if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) ||
        (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F)) {
      return 0;
    }
    i += len;
  }
  return 1;
}

/* ---- text format ---- */

static void test_default_format(void **state) {
  (void)state;
  mw_logger *lg = new_logger(NULL);
  assert_string_equal(
      fmt_rec(lg, T0, MW_LOG_INFO, "HttpMonitor", "Check\n    GET http://example.com"),
      "[2020-08-08 17:06:42,033] [INFO] [HttpMonitor]: Check\n"
      "    GET http://example.com\n");
  assert_string_equal(fmt_rec(lg, T0, MW_LOG_WARNING, "x", ""),
                      "[2020-08-08 17:06:42,033] [WARNING] [x]: \n");
  logger_free(lg);
  /* the explicit default string compiles to the same thing */
  check_format(MW_LOG_DEFAULT_FORMAT, T0, MW_LOG_ERROR, "n", "m",
               "[2020-08-08 17:06:42,033] [ERROR] [n]: m\n");
}

static void test_every_key(void **state) {
  (void)state;
  char want[256];
  snprintf(want, sizeof want,
           "2020-08-08 17:06:42,033|INFO|20|HttpMonitor|hello|1596906402.033000|33|033|%d|%%\n",
           (int)getpid());
  check_format("%(asctime)s|%(levelname)s|%(levelno)d|%(name)s|%(message)s|%(created)s|"
               "%(msecs)d|%(msecs)03d|%(process)d|%%",
               T0, MW_LOG_INFO, "HttpMonitor", "hello", want);
  /* integer keys through s print as through d; msecs is whole milliseconds */
  snprintf(want, sizeof want, "40 33 %d\n", (int)getpid());
  check_format("%(levelno)s %(msecs)s %(process)s", T0, MW_LOG_ERROR, "n", "m", want);
  /* created: always 6 decimals, rounded to the microsecond */
  check_format("%(created)s", 1596906402.0, MW_LOG_INFO, "n", "m", "1596906402.000000\n");
  check_format("%(created)s", 1596906402.9999996, MW_LOG_INFO, "n", "m", "1596906403.000000\n");
  check_format("%(created)s %(created)s %(created)s", -1.5, MW_LOG_INFO, "n", "m",
               "-1.500000 -1.500000 -1.500000\n");
  check_format("%(created)s", -2.0, MW_LOG_INFO, "n", "m", "-2.000000\n");
  check_format("%(levelname)s %(levelno)d", T0, 25, "n", "m", "Level 25 25\n");
  check_format("no keys at all", T0, MW_LOG_INFO, "n", "m", "no keys at all\n");
  check_format("", T0, MW_LOG_INFO, "n", "m", "\n");
}

static void test_width_and_flags(void **state) {
  (void)state;
  check_format("%(levelname)-8s|%(levelname)8s|%(levelname)s|%(levelname)-s", T0, MW_LOG_INFO, "n",
               "m", "INFO    |    INFO|INFO|INFO\n");
  check_format("[%(name)8s] [%(name)-8s] [%(name)3s]", T0, MW_LOG_INFO, "Http", "m",
               "[    Http] [Http    ] [Http]\n");
  check_format("%(levelno)05d|%(levelno)-5d|%(levelno)5d|%(levelno)5s|%(levelno)-05d|", T0,
               MW_LOG_INFO, "n", "m", "00020|20   |   20|   20|20   |\n");
  check_format("%(msecs)03d %(msecs)3d %(msecs)d %(msecs)-3d|", 1596906402.005, MW_LOG_INFO, "n",
               "m", "005   5 5 5  |\n");
  char want[32];
  snprintf(want, sizeof want, "%010d|%-8d|\n", (int)getpid(), (int)getpid());
  check_format("%(process)010d|%(process)-8d|", T0, MW_LOG_INFO, "n", "m", want);
  /* width counts characters, not bytes */
  check_format("[%(name)-4s] [%(name)4s]", T0, MW_LOG_INFO, "\xc3\xa9t\xc3\xa9", "m",
               "[\xc3\xa9t\xc3\xa9 ] [ \xc3\xa9t\xc3\xa9]\n");
  check_format("%(created)20s|%(created)-18s|", T0, MW_LOG_INFO, "n", "m",
               "   1596906402.033000|1596906402.033000 |\n");
  check_format("%(asctime)30s|%(message)-4s|", T0, MW_LOG_INFO, "n", "m",
               "       2020-08-08 17:06:42,033|m   |\n");
  /* a padded name or message pads its escaped text */
  check_format("[%(name)8s] [%(message)-6s]", T0, MW_LOG_INFO, "a\x1b", "\r",
               "[   a\\x1b] [\\r    ]\n");
}

static void test_percent(void **state) {
  (void)state;
  check_format("100%% %(message)s %%%%", T0, MW_LOG_INFO, "n", "done", "100% done %%\n");
  check_format("%%(message)s", T0, MW_LOG_INFO, "n", "m", "%(message)s\n");
}

#define SUPPORTED "; use %(key)s, %(key)-8s, %(key)8s, %(msecs)03d or %%"

static void test_format_errors(void **state) {
  (void)state;
  /* what Python has and this logger does not: named, with where and why */
  check_error("[%(created).3f] %(message)s",
              "log.format: '%(created).3f' at position 1 is not supported (precision)" SUPPORTED);
  check_error("%(name).5s", "log.format: '%(name).5s' at position 0 is not supported "
                            "(precision)" SUPPORTED);
  check_error(
      "%(created)f",
      "log.format: '%(created)f' at position 0 is not supported (conversion 'f')" SUPPORTED);
  check_error(
      "%(levelno)i",
      "log.format: '%(levelno)i' at position 0 is not supported (conversion 'i')" SUPPORTED);
  check_error(
      "%(message)r",
      "log.format: '%(message)r' at position 0 is not supported (conversion 'r')" SUPPORTED);
  check_error(
      "%(levelno)*d",
      "log.format: '%(levelno)*d' at position 0 is not supported (conversion '*')" SUPPORTED);
  check_error("%(levelno)+d",
              "log.format: '%(levelno)+d' at position 0 is not supported (flag '+')" SUPPORTED);
  check_error("%(levelno) d",
              "log.format: '%(levelno) d' at position 0 is not supported (flag ' ')" SUPPORTED);
  check_error("%(levelno)#5d",
              "log.format: '%(levelno)#5d' at position 0 is not supported (flag '#')" SUPPORTED);
  check_error("%(levelno)0-5d",
              "log.format: '%(levelno)0-5d' at position 0 is not supported (flag '-')" SUPPORTED);
  check_error(
      "%(name)05s",
      "log.format: '%(name)05s' at position 0 is not supported (flag '0' needs d)" SUPPORTED);
  check_error("%(levelno)ld", "log.format: '%(levelno)ld' at position 0 is not supported "
                              "(length modifier 'l')" SUPPORTED);
  check_error("x %(name)d", "log.format: '%(name)d' at position 2 is not supported (d is for the "
                            "integer keys levelno, msecs and process)" SUPPORTED);
  check_error("%(created)d", "log.format: '%(created)d' at position 0 is not supported (d is for "
                             "the integer keys levelno, msecs and process)" SUPPORTED);
  check_error("abc%(foo)s",
              "log.format: '%(foo)s' at position 3 is not supported (unknown key 'foo'; the keys "
              "are asctime, levelname, levelno, name, message, created, msecs, process, "
              "monitor)" SUPPORTED);
  check_error(
      "%()s",
      "log.format: '%()s' at position 0 is not supported (unknown key ''; the keys are "
      "asctime, levelname, levelno, name, message, created, msecs, process, monitor)" SUPPORTED);
  check_error(
      "%(name)5000s",
      "log.format: '%(name)5000s' at position 0 is not supported (width over 1000)" SUPPORTED);
  /* malformed directives */
  check_error("[%(asctime)s] %(levelname", "log.format: '%(levelname' at position 14 is not "
                                           "supported (no ')' after the key)" SUPPORTED);
  check_error("x %", "log.format: '%' at position 2 is not supported (a lone '%' at the "
                     "end)" SUPPORTED);
  check_error("%s", "log.format: '%s' at position 0 is not supported (no (key) after the "
                    "'%')" SUPPORTED);
  check_error("%(message)-8", "log.format: '%(message)-8' at position 0 is not supported (no "
                              "conversion after the key)" SUPPORTED);
  /* a long directive is quoted in part */
  check_error(
      "%(messagemessagemessagemessagemessagemessage)s",
      "log.format: '%(messagemessagemessagemessagemessagemes' at position 0 is not "
      "supported (unknown key 'messagemessagemessagemessagemessagemessa'; the keys are "
      "asctime, levelname, levelno, name, message, created, msecs, process, monitor)" SUPPORTED);
  /* the longest message fits MW_LOG_ERR_SIZE */
  char err[MW_LOG_ERR_SIZE];
  assert_null(logger_new("%(xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx)s",
                         MW_LOG_INFO, err, sizeof err));
  assert_true(strlen(err) < sizeof err - 1);
  assert_non_null(strstr(err, SUPPORTED));
  /* a NULL or zero-size err buffer is fine */
  assert_null(logger_new("%(foo)s", MW_LOG_INFO, NULL, 0));
}

/* ---- JSON ---- */

static void test_json(void **state) {
  (void)state;
  mw_logger *lg = new_logger(MW_LOG_JSON);
  assert_string_equal(fmt_rec(lg, T0, MW_LOG_INFO, "HttpMonitor", "Check\n    GET http://x/"),
                      "{\"time\":\"2020-08-08T17:06:42.033+00:00\",\"level\":\"INFO\","
                      "\"logger\":\"HttpMonitor\",\"message\":\"Check\\n    GET http://x/\"}\n");
  assert_string_equal(fmt_rec(lg, T0, 5, "n", "m"),
                      "{\"time\":\"2020-08-08T17:06:42.033+00:00\",\"level\":\"Level 5\","
                      "\"logger\":\"n\",\"message\":\"m\"}\n");
  logger_free(lg);

  /* the offset follows the local zone (CEST in August) */
  use_tz("CET-1CEST,M3.5.0,M10.5.0/3");
  lg = new_logger(MW_LOG_JSON);
  assert_string_equal(fmt_rec(lg, T0, MW_LOG_ERROR, "n", "m"),
                      "{\"time\":\"2020-08-08T19:06:42.033+02:00\",\"level\":\"ERROR\","
                      "\"logger\":\"n\",\"message\":\"m\"}\n");
  assert_string_equal(fmt_rec(lg, T0 - 100 * 86400, MW_LOG_ERROR, "n", "m"),
                      "{\"time\":\"2020-04-30T19:06:42.033+02:00\",\"level\":\"ERROR\","
                      "\"logger\":\"n\",\"message\":\"m\"}\n");
  assert_string_equal(fmt_rec(lg, T0 + 100 * 86400, MW_LOG_ERROR, "n", "m"),
                      "{\"time\":\"2020-11-16T18:06:42.033+01:00\",\"level\":\"ERROR\","
                      "\"logger\":\"n\",\"message\":\"m\"}\n");
  logger_free(lg);
  use_tz("UTC");
}

static void check_json_message(const char *msg, size_t len, const char *want_message) {
  mw_logger *lg = new_logger(MW_LOG_JSON);
  size_t n = logger_format(lg, out, sizeof out, T0, MW_LOG_INFO, "n", 1, msg, len);
  char want[1024];
  snprintf(want, sizeof want,
           "{\"time\":\"2020-08-08T17:06:42.033+00:00\",\"level\":\"INFO\",\"logger\":\"n\","
           "\"message\":\"%s\"}\n",
           want_message);
  assert_string_equal(out, want);
  assert_true(valid_utf8((const unsigned char *)out, n));
  logger_free(lg);
}

#define JSON_MSG(lit, want) check_json_message(lit, sizeof lit - 1, want)

static void test_json_escaping(void **state) {
  (void)state;
  JSON_MSG("say \"hi\" \\o/", "say \\\"hi\\\" \\\\o/");
  JSON_MSG("a\nb\tc\rd", "a\\nb\\tc\\rd");
  JSON_MSG("\x01\x08\x0c\x1f\x7f", "\\u0001\\u0008\\u000c\\u001f\\u007f");
  JSON_MSG("nul\0byte", "nul\\u0000byte");
  /* valid UTF-8 passes through untouched */
  JSON_MSG("\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
           "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf");
  /* invalid bytes: each becomes U+FFFD */
  JSON_MSG("a\xff"
           "b",
           "a\xef\xbf\xbd"
           "b");
  JSON_MSG("\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd");                                 /* truncated */
  JSON_MSG("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");                                 /* overlong */
  JSON_MSG("\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");                 /* overlong */
  JSON_MSG("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");                 /* surrogate */
  JSON_MSG("\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* > U+10FFFF */
  JSON_MSG("\x80x", "\xef\xbf\xbdx"); /* stray continuation byte */

  /* the logger name is escaped too */
  mw_logger *lg = new_logger(MW_LOG_JSON);
  assert_string_equal(fmt_rec(lg, T0, MW_LOG_INFO, "a\"b\xff", "m"),
                      "{\"time\":\"2020-08-08T17:06:42.033+00:00\",\"level\":\"INFO\","
                      "\"logger\":\"a\\\"b\xef\xbf\xbd\",\"message\":\"m\"}\n");
  logger_free(lg);

  /* every single byte value yields valid UTF-8 */
  lg = new_logger(MW_LOG_JSON);
  char all[256];
  for (int i = 0; i < 256; i++) {
    all[i] = (char)i;
  }
  size_t n = logger_format(lg, out, sizeof out, T0, MW_LOG_INFO, "n", 1, all, sizeof all);
  assert_true(valid_utf8((const unsigned char *)out, n));
  logger_free(lg);
}

/* ---- fields ---- */

#define F_STR(k, v)                                                                                \
  {                                                                                                \
    .key = k, .key_len = sizeof k - 1, .type = MW_LOG_FIELD_STRING, .str = v,                      \
    .str_len = sizeof v - 1                                                                        \
  }
#define F_INT(k, v)                                                                                \
  { .key = k, .key_len = sizeof k - 1, .type = MW_LOG_FIELD_INT, .i = v }
#define F_NUM(k, v)                                                                                \
  { .key = k, .key_len = sizeof k - 1, .type = MW_LOG_FIELD_NUMBER, .num = v }
#define F_BOOL(k, v)                                                                               \
  { .key = k, .key_len = sizeof k - 1, .type = MW_LOG_FIELD_BOOL, .b = v }
#define F_OBJ(k, items)                                                                            \
  {                                                                                                \
    .key = k, .key_len = sizeof k - 1, .type = MW_LOG_FIELD_OBJECT, .obj = items,                  \
    .obj_n = sizeof items / sizeof items[0]                                                        \
  }
#define NFIELDS(a) (sizeof a / sizeof a[0])
#define JSON_HEAD                                                                                  \
  "{\"time\":\"2020-08-08T17:06:42.033+00:00\",\"level\":\"INFO\",\"logger\":\"n\","               \
  "\"message\":\"m\""

static const char *fmt_fields(mw_logger *lg, const mw_log_field *f, size_t n) {
  size_t len = logger_format_fields(lg, out, sizeof out, T0, MW_LOG_INFO, "n", 1, "m", 1, f, n);
  assert_true(len < sizeof out);
  assert_int_equal(strlen(out), len);
  return out;
}

static void test_json_fields(void **state) {
  (void)state;
  mw_logger *lg = new_logger(MW_LOG_JSON);
  /* no fields: the record of logger_format */
  assert_string_equal(fmt_fields(lg, NULL, 0), JSON_HEAD "}\n");
  const mw_log_field timings[] = {F_NUM("dns", 0.001), F_NUM("connect", 0.002),
                                  F_NUM("total", 0.01), F_INT("redirects", 2)};
  const mw_log_field result[] = {
      F_STR("monitor", "example"), F_STR("url", "http://x/"),
      F_INT("status", 500),        F_INT("size", 0),
      F_NUM("duration", 0.25),     F_BOOL("up", false),
      F_BOOL("tls", true),         F_OBJ("timings", timings),
  };
  assert_string_equal(fmt_fields(lg, result, NFIELDS(result)),
                      JSON_HEAD ",\"monitor\":\"example\",\"url\":\"http://x/\",\"status\":500,"
                                "\"size\":0,\"duration\":0.25,\"up\":false,\"tls\":true,"
                                "\"timings\":{\"dns\":0.001,\"connect\":0.002,\"total\":0.01,"
                                "\"redirects\":2}}\n");
  /* integers: no point, the whole range */
  const mw_log_field ints[] = {F_INT("a", -7), F_INT("b", LLONG_MAX), F_INT("c", LLONG_MIN)};
  assert_string_equal(fmt_fields(lg, ints, NFIELDS(ints)),
                      JSON_HEAD ",\"a\":-7,\"b\":9223372036854775807,"
                                "\"c\":-9223372036854775808}\n");
  /* floats: digits enough to read back the same double, a point when they
   * would look like an integer, null when not finite */
  const mw_log_field nums[] = {
      F_NUM("a", 0.1 + 0.2), F_NUM("b", 2.0),          F_NUM("c", -0.0),     F_NUM("d", 1e20),
      F_NUM("e", 1.5e-7),    F_NUM("f", NAN),          F_NUM("g", INFINITY), F_NUM("h", -INFINITY),
      F_NUM("i", 123456.75), F_NUM("j", 1e15 + 0.5),   F_NUM("k", 1e-6),     F_NUM("l", -0.5),
      F_NUM("m", 1.0000005), F_NUM("n", 8999999999.5),
  };
  assert_string_equal(fmt_fields(lg, nums, NFIELDS(nums)),
                      JSON_HEAD ",\"a\":0.30000000000000004,\"b\":2.0,\"c\":-0.0,\"d\":1e+20,"
                                "\"e\":1.5e-07,\"f\":null,\"g\":null,\"h\":null,\"i\":123456.75,"
                                "\"j\":1000000000000000.5,\"k\":0.000001,\"l\":-0.5,"
                                "\"m\":1.0000005,\"n\":8999999999.5}\n");
  /* an object: flat, empty is {}, NaN inside is null, an object inside is null */
  const mw_log_field inner[] = {F_INT("x", 1)};
  const mw_log_field outer[] = {F_NUM("nan", NAN), F_OBJ("deep", inner), F_STR("s", "v")};
  const mw_log_field objs[] = {
      F_OBJ("o", outer),
      {.key = "empty", .key_len = 5, .type = MW_LOG_FIELD_OBJECT, .obj = NULL, .obj_n = 0},
  };
  assert_string_equal(fmt_fields(lg, objs, NFIELDS(objs)),
                      JSON_HEAD ",\"o\":{\"nan\":null,\"deep\":null,\"s\":\"v\"},\"empty\":{}}\n");
  logger_free(lg);
}

/* Every finite double reads back as itself, through both the fast path
 * (at most 6 decimals, below 9e9) and snprintf. */
static void test_json_number_roundtrip(void **state) {
  (void)state;
  mw_logger *lg = new_logger(MW_LOG_JSON);
  uint64_t x = 88172645463325252ULL; /* xorshift64: the same values every run */
  size_t head = strlen(JSON_HEAD ",\"v\":");
  for (int i = 0; i < 200000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    double v;
    switch (i % 4) {
    case 0: /* any bit pattern */
      memcpy(&v, &x, sizeof v);
      break;
    case 1: /* a timing: whole microseconds */
      v = (double)(x % 100000000000ULL) / 1e6;
      break;
    case 2: /* near a microsecond multiple */
      v = (double)(x % 10000000000ULL) / 1e6 + (double)(x >> 60) * 1e-13;
      break;
    default: /* around the fast path's bound */
      v = 9e9 + ((double)(x % 2000000) - 1e6) / 1e3;
      break;
    }
    if (x & 1) {
      v = -v;
    }
    const mw_log_field f[] = {F_NUM("v", v)};
    fmt_fields(lg, f, 1);
    if (!isfinite(v)) {
      assert_string_equal(out + head, "null}\n");
      continue;
    }
    char *end;
    double back = strtod(out + head, &end);
    if (back != v || strcmp(end, "}\n") != 0 || !strpbrk(out + head, ".e")) {
      fail_msg("%.17g written as %s", v, out + head);
    }
  }
  logger_free(lg);
}

static void test_json_field_escaping(void **state) {
  (void)state;
  mw_logger *lg = new_logger(MW_LOG_JSON);
  const mw_log_field f[] = {
      F_STR("reason", "said \"no\"\n\x1b[2J\xff"),
      F_STR("k\"e\\y\n\x01", "v"),
      F_INT("\xc3\xa9t\xc3\xa9", 1),
  };
  size_t n = strlen(fmt_fields(lg, f, NFIELDS(f)));
  assert_string_equal(out, JSON_HEAD ",\"reason\":\"said \\\"no\\\"\\n\\u001b[2J\xef\xbf\xbd\","
                                     "\"k\\\"e\\\\y\\n\\u0001\":\"v\",\"\xc3\xa9t\xc3\xa9\":1}\n");
  assert_true(valid_utf8((const unsigned char *)out, n));
  /* a NUL inside a key or value is data, not the end */
  const mw_log_field nul[] = {
      {.key = "a\0b", .key_len = 3, .type = MW_LOG_FIELD_STRING, .str = "c\0d", .str_len = 3}};
  assert_string_equal(fmt_fields(lg, nul, 1), JSON_HEAD ",\"a\\u0000b\":\"c\\u0000d\"}\n");
  logger_free(lg);
}

static void test_json_reserved_fields(void **state) {
  (void)state;
  mw_logger *lg = new_logger(MW_LOG_JSON);
  /* a standard member's name gets "field_", so no member repeats; the names
   * of text format keys are not members and stay */
  const mw_log_field f[] = {F_STR("message", "x"), F_INT("time", 1),      F_STR("level", "y"),
                            F_STR("logger", "z"),  F_STR("name", "w"),    F_STR("levelname", "v"),
                            F_STR("asctime", "u"), F_STR("messages", "t")};
  assert_string_equal(fmt_fields(lg, f, NFIELDS(f)),
                      JSON_HEAD ",\"field_message\":\"x\",\"field_time\":1,\"field_level\":\"y\","
                                "\"field_logger\":\"z\",\"name\":\"w\",\"levelname\":\"v\","
                                "\"asctime\":\"u\",\"messages\":\"t\"}\n");
  /* "field_time" given as well: the renamed one is dropped */
  const mw_log_field both[] = {F_INT("time", 1), F_INT("field_time", 2)};
  assert_string_equal(fmt_fields(lg, both, NFIELDS(both)), JSON_HEAD ",\"field_time\":2}\n");
  /* the renaming is for the record's members only, not inside an object */
  const mw_log_field t[] = {F_NUM("time", 0.5)};
  const mw_log_field obj[] = {F_OBJ("timings", t)};
  assert_string_equal(fmt_fields(lg, obj, 1), JSON_HEAD ",\"timings\":{\"time\":0.5}}\n");
  logger_free(lg);
}

static void check_monitor(const char *format, const mw_log_field *f, size_t n, const char *want) {
  mw_logger *lg = new_logger(format);
  assert_string_equal(fmt_fields(lg, f, n), want);
  logger_free(lg);
}

static void test_monitor_key(void **state) {
  (void)state;
  const mw_log_field f[] = {F_INT("status", 500), F_STR("monitor", "example")};
  check_monitor("[%(monitor)s] %(message)s", f, NFIELDS(f), "[example] m\n");
  /* without the field, or without fields at all: "-" */
  check_monitor("[%(monitor)s] %(message)s", f, 1, "[-] m\n");
  check_monitor("[%(monitor)s] %(message)s", NULL, 0, "[-] m\n");
  check_format("[%(monitor)s]", T0, MW_LOG_INFO, "n", "m", "[-]\n");
  /* widths, as for the other string keys (in characters) */
  check_monitor("[%(monitor)10s|%(monitor)-10s|%(monitor)3s]", f, NFIELDS(f),
                "[   example|example   |example]\n");
  check_monitor("[%(monitor)3s|%(monitor)-3s]", NULL, 0, "[  -|-  ]\n");
  const mw_log_field u[] = {F_STR("monitor", "\xc3\xa9t\xc3\xa9")};
  check_monitor("[%(monitor)-4s]", u, 1, "[\xc3\xa9t\xc3\xa9 ]\n");
  /* escaped like a name: a monitor named by a config cannot drive a terminal */
  const mw_log_field e[] = {F_STR("monitor", "a\x1b[2J\rb")};
  check_monitor("[%(monitor)s] [%(monitor)12s]", e, 1, "[a\\x1b[2J\\rb] [ a\\x1b[2J\\rb]\n");
  /* other types print as their JSON text, an object as "-" */
  const mw_log_field i[] = {F_INT("monitor", -42)};
  check_monitor("[%(monitor)5s]", i, 1, "[  -42]\n");
  const mw_log_field b[] = {F_BOOL("monitor", true)};
  check_monitor("[%(monitor)s]", b, 1, "[true]\n");
  const mw_log_field d[] = {F_NUM("monitor", 2.5), F_NUM("x", 0)};
  check_monitor("[%(monitor)s]", d, 1, "[2.5]\n");
  const mw_log_field nan[] = {F_NUM("monitor", NAN)};
  check_monitor("[%(monitor)s]", nan, 1, "[nan]\n");
  const mw_log_field o[] = {F_OBJ("monitor", d)};
  check_monitor("[%(monitor)s]", o, 1, "[-]\n");
  /* other fields are not shown in text formats */
  check_monitor("%(message)s", f, NFIELDS(f), "m\n");
  /* monitor takes s only */
  check_error("%(monitor)d", "log.format: '%(monitor)d' at position 0 is not supported (d is for "
                             "the integer keys levelno, msecs and process)" SUPPORTED);
  check_error(
      "%(monitor)05s",
      "log.format: '%(monitor)05s' at position 0 is not supported (flag '0' needs d)" SUPPORTED);
}

static void test_fields_records(void **state) {
  (void)state;
  /* logger_log_fields writes them; a filtered record is not formatted */
  int p[2];
  assert_int_equal(pipe(p), 0);
  char err[MW_LOG_ERR_SIZE];
  mw_logger *lg = logger_new("%(levelname)s %(monitor)s %(message)s", MW_LOG_INFO, err, sizeof err);
  assert_non_null(lg);
  logger_set_fd(lg, p[1], true);
  const mw_log_field f[] = {F_STR("monitor", "example"), F_INT("status", 500)};
  assert_int_equal(logger_log_fields(lg, MW_LOG_DEBUG, "n", 1, "quiet", 5, f, 2), 0);
  assert_int_equal(logger_log_fields(lg, MW_LOG_WARNING, "n", 1, "down", 4, f, 2), 0);
  assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, "plain", 5), 0);
  char got[128];
  ssize_t n = read(p[0], got, sizeof got - 1);
  assert_true(n > 0);
  got[n] = '\0';
  assert_string_equal(got, "WARNING example down\nINFO - plain\n");
  logger_free(lg);
  close(p[0]);

  /* a record longer than the render buffer grows it; snprintf-like sizes */
  lg = new_logger(MW_LOG_JSON);
  static char big[10000];
  memset(big, 'b', sizeof big);
  const mw_log_field g[] = {{.key = "body",
                             .key_len = 4,
                             .type = MW_LOG_FIELD_STRING,
                             .str = big,
                             .str_len = sizeof big}};
  size_t len;
  const char *rec = logger_render_fields(lg, T0, MW_LOG_INFO, "n", 1, "m", 1, g, 1, &len);
  assert_non_null(rec);
  size_t head = strlen(JSON_HEAD ",\"body\":\"");
  assert_int_equal(len, head + sizeof big + 3);
  assert_memory_equal(rec + len - 3, "\"}\n", 3);
  assert_int_equal(logger_format_fields(lg, NULL, 0, T0, MW_LOG_INFO, "n", 1, "m", 1, g, 1), len);
  char small[20];
  assert_int_equal(
      logger_format_fields(lg, small, sizeof small, T0, MW_LOG_INFO, "n", 1, "m", 1, g, 1), len);
  assert_memory_equal(small, JSON_HEAD, sizeof small);
  logger_free(lg);
}

/* ---- size limits and buffers ---- */

/* What a server sends (a Location with ESC sequences, a reason phrase)
 * cannot move the cursor or pass for bytes it is not: control bytes but
 * newline and tab, C1 controls and invalid UTF-8 are written escaped. */
static void test_text_escaping(void **state) {
  (void)state;
  mw_logger *lg = new_logger("%(message)s");
  assert_string_equal(fmt_rec(lg, T0, MW_LOG_INFO, "n", "to \x1b[2J\x1b]0;pwned\x07 here"),
                      "to \\x1b[2J\\x1b]0;pwned\\x07 here\n");
  assert_string_equal(fmt_rec(lg, T0, MW_LOG_INFO, "n", "cr\rdel\x7f bs\x08"),
                      "cr\\rdel\\x7f bs\\x08\n");
  assert_string_equal(fmt_rec(lg, T0, MW_LOG_INFO, "n",
                              "c1 \xc2\x9b"
                              "31m"),
                      "c1 \\u009b31m\n");
  assert_string_equal(fmt_rec(lg, T0, MW_LOG_INFO, "n", "bad \xff\xc3("), "bad \\xff\\xc3(\n");
  /* valid UTF-8, newlines and tabs stay */
  assert_string_equal(fmt_rec(lg, T0, MW_LOG_INFO, "n", "\xc3\xa9\xe2\x82\xac\n\tok"),
                      "\xc3\xa9\xe2\x82\xac\n\tok\n");
  logger_free(lg);
  /* the logger name is escaped too */
  lg = new_logger("[%(name)s] %(message)s");
  assert_string_equal(fmt_rec(lg, T0, MW_LOG_INFO,
                              "a\x1b"
                              "b",
                              "m"),
                      "[a\\x1bb] m\n");
  logger_free(lg);
}

static void test_truncation(void **state) {
  (void)state;
  size_t big = 100 * 1024;
  char *msg = malloc(big);
  assert_non_null(msg);
  memset(msg, 'a', big);

  const char *prefix = "[2020-08-08 17:06:42,033] [INFO] [n]: ";
  mw_logger *lg = new_logger(NULL);
  size_t len;
  const char *rec = logger_render(lg, T0, MW_LOG_INFO, "n", 1, msg, big, &len);
  assert_non_null(rec);
  size_t plen = strlen(prefix);
  size_t mark = strlen(MW_LOG_TRUNCATED);
  assert_int_equal(len, plen + MW_LOG_MSG_MAX + mark + 1);
  assert_memory_equal(rec, prefix, plen);
  assert_memory_equal(rec + plen, msg, MW_LOG_MSG_MAX);
  assert_memory_equal(rec + plen + MW_LOG_MSG_MAX, "\xe2\x80\xa6[truncated]\n", mark + 1);

  /* exactly at the cap: no marker */
  rec = logger_render(lg, T0, MW_LOG_INFO, "n", 1, msg, MW_LOG_MSG_MAX, &len);
  assert_int_equal(len, plen + MW_LOG_MSG_MAX + 1);

  /* the cut never splits a UTF-8 character */
  msg[0] = 'x';
  for (size_t i = 1; i + 1 < big; i += 2) {
    memcpy(msg + i, "\xc3\xa9", 2);
  }
  rec = logger_render(lg, T0, MW_LOG_INFO, "n", 1, msg, big - 1, &len);
  assert_int_equal(len, plen + MW_LOG_MSG_MAX - 1 + mark + 1);
  assert_true(valid_utf8((const unsigned char *)rec, len));
  logger_free(lg);

  /* JSON: the marker goes inside the string */
  lg = new_logger(MW_LOG_JSON);
  rec = logger_render(lg, T0, MW_LOG_INFO, "n", 1, msg, big - 1, &len);
  assert_true(valid_utf8((const unsigned char *)rec, len));
  assert_true(len > 17);
  assert_memory_equal(rec + len - 17, "\xe2\x80\xa6[truncated]\"}\n", 17);
  logger_free(lg);

  /* a padded message is cut the same way */
  lg = new_logger("%(message)-10s");
  rec = logger_render(lg, T0, MW_LOG_INFO, "n", 1, msg, big - 1, &len);
  assert_int_equal(len, MW_LOG_MSG_MAX - 1 + mark + 1);
  logger_free(lg);
  free(msg);
}

static void test_small_buffer(void **state) {
  (void)state;
  mw_logger *lg = new_logger(NULL);
  const char *want = "[2020-08-08 17:06:42,033] [INFO] [n]: hello\n";
  size_t full = strlen(want);
  assert_int_equal(logger_format(lg, NULL, 0, T0, MW_LOG_INFO, "n", 1, "hello", 5), full);
  char small[11];
  memset(small, '#', sizeof small);
  assert_int_equal(logger_format(lg, small, 10, T0, MW_LOG_INFO, "n", 1, "hello", 5), full);
  assert_memory_equal(small, want, 10);
  assert_int_equal(small[10], '#'); /* nothing past cap */
  /* NULL name/message with zero length */
  assert_int_equal(logger_format(lg, out, sizeof out, T0, MW_LOG_INFO, NULL, 0, NULL, 0),
                   strlen("[2020-08-08 17:06:42,033] [INFO] []: \n"));
  logger_free(lg);
}

/* ---- levels ---- */

static int parse(const char *s) {
  int level = -12345;
  return logger_parse_level(s, strlen(s), &level) == 0 ? level : -1;
}

static void test_levels(void **state) {
  (void)state;
  assert_int_equal(parse("DEBUG"), 10);
  assert_int_equal(parse("info"), 20);
  assert_int_equal(parse("Warning"), 30);
  assert_int_equal(parse("WARN"), 30);
  assert_int_equal(parse("warn"), 30);
  assert_int_equal(parse("ERROR"), 40);
  assert_int_equal(parse("critical"), 50);
  assert_int_equal(parse("FATAL"), 50);
  assert_int_equal(parse("25"), 25);
  assert_int_equal(parse("0"), 0);
  assert_int_equal(parse("LOUD"), -1);
  assert_int_equal(parse(""), -1);
  assert_int_equal(parse("WARNINGS"), -1);
  assert_int_equal(parse("WAR"), -1);
  assert_int_equal(parse("-1"), -1);
  assert_int_equal(parse("1234567890"), -1);
  assert_int_equal(parse("20x"), -1);
  int level = 0;
  assert_int_equal(logger_parse_level("INFOx", 4, &level), 0); /* length-bounded */
  assert_int_equal(level, 20);

  assert_string_equal(logger_level_name(MW_LOG_CRITICAL), "CRITICAL");
  assert_string_equal(logger_level_name(MW_LOG_WARNING), "WARNING");
  assert_null(logger_level_name(25));

  mw_logger *lg = logger_new(NULL, MW_LOG_WARNING, NULL, 0);
  assert_non_null(lg);
  assert_int_equal(logger_level(lg), MW_LOG_WARNING);
  assert_false(logger_enabled(lg, MW_LOG_INFO));
  assert_true(logger_enabled(lg, MW_LOG_WARNING));
  assert_true(logger_enabled(lg, MW_LOG_ERROR));
  logger_set_level(lg, MW_LOG_DEBUG);
  assert_true(logger_enabled(lg, MW_LOG_DEBUG));
  assert_false(logger_enabled(lg, 5));
  logger_free(lg);
}

/* ---- time ---- */

static void test_second_cache(void **state) {
  (void)state;
  mw_logger *lg = new_logger("%(asctime)s %(created)s");
  assert_string_equal(fmt_rec(lg, 1596906402.999, 20, "n", "m"),
                      "2020-08-08 17:06:42,999 1596906402.999000\n");
  assert_string_equal(fmt_rec(lg, 1596906403.0, 20, "n", "m"),
                      "2020-08-08 17:06:43,000 1596906403.000000\n");
  /* back in time (clock step): the cache must notice */
  assert_string_equal(fmt_rec(lg, 1596906402.5, 20, "n", "m"),
                      "2020-08-08 17:06:42,500 1596906402.500000\n");
  /* a minute and a day boundary */
  assert_string_equal(fmt_rec(lg, 1596906420.0, 20, "n", "m"),
                      "2020-08-08 17:07:00,000 1596906420.000000\n");
  assert_string_equal(fmt_rec(lg, 1596931200.25, 20, "n", "m"),
                      "2020-08-09 00:00:00,250 1596931200.250000\n");
  /* milliseconds truncate (Python 3.13's msecs) after rounding to the
   * microsecond, which absorbs the binary representation error... */
  assert_string_equal(fmt_rec(lg, 1596906402.9995, 20, "n", "m"),
                      "2020-08-08 17:06:42,999 1596906402.999500\n");
  /* ...and carries into the next second instead of printing ",1000" */
  assert_string_equal(fmt_rec(lg, 1596906402.9999996, 20, "n", "m"),
                      "2020-08-08 17:06:43,000 1596906403.000000\n");
  assert_string_equal(fmt_rec(lg, 1596906402.0 + (1.0 - 0x1p-22), 20, "n", "m"),
                      "2020-08-08 17:06:43,000 1596906403.000000\n");
  /* every millisecond value round-trips, and no fraction shows ",1000" */
  for (int ms = 0; ms < 1000; ms++) {
    char want[64];
    snprintf(want, sizeof want, "2020-08-08 17:06:42,%03d 1596906402.%03d000\n", ms, ms);
    assert_string_equal(fmt_rec(lg, 1596906402.0 + ms / 1000.0, 20, "n", "m"), want);
  }
  for (int i = 0; i < 100000; i++) {
    double t = 1596906402.0 + i / 100000.0 + 1e-7 * (i % 17);
    fmt_rec(lg, t, 20, "n", "m");
    assert_null(strstr(out, ",1000"));
    assert_int_equal(strlen(out), 42);
  }
  logger_free(lg);

  /* local time follows TZ */
  use_tz("CET-1CEST,M3.5.0,M10.5.0/3");
  check_format(NULL, T0, MW_LOG_INFO, "n", "m", "[2020-08-08 19:06:42,033] [INFO] [n]: m\n");
  use_tz("UTC");
}

/* ---- output ---- */

static void test_write_seqpacket(void **state) {
  (void)state;
  /* SOCK_SEQPACKET keeps write(2) boundaries: each recv is exactly one write */
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  mw_logger *lg = new_logger("%(levelname)s %(name)s: %(message)s");
  logger_set_fd(lg, sv[0], true);
  assert_int_equal(logger_fd(lg), sv[0]);
  assert_int_equal(logger_log(lg, MW_LOG_INFO, "a", 1, "one", 3), 0);
  assert_int_equal(logger_log(lg, MW_LOG_WARNING, "b", 1, "two\nlines", 9), 0);
  logger_set_level(lg, MW_LOG_ERROR);
  assert_int_equal(logger_log(lg, MW_LOG_WARNING, "c", 1, "filtered", 8), 0);
  assert_int_equal(logger_log(lg, MW_LOG_CRITICAL, "d", 1, "three", 5), 0);
  logger_free(lg); /* closes sv[0]: the reader then sees EOF */

  const char *want[] = {"INFO a: one\n", "WARNING b: two\nlines\n", "CRITICAL d: three\n"};
  char buf[256];
  for (int i = 0; i < 3; i++) {
    ssize_t n = recv(sv[1], buf, sizeof buf, 0);
    assert_int_equal(n, strlen(want[i]));
    assert_memory_equal(buf, want[i], (size_t)n);
  }
  assert_int_equal(recv(sv[1], buf, sizeof buf, 0), 0);
  close(sv[1]);
}

static size_t read_all(int fd, char *buf, size_t cap) {
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    assert_true(n >= 0);
    if (n == 0) {
      return len;
    }
    len += (size_t)n;
    assert_true(len < cap);
  }
}

static void test_write_pipe_concurrent(void **state) {
  (void)state;
  /* several processes share one pipe; one write per record keeps lines whole */
  enum { WRITERS = 4, RECORDS = 500 };
  int p[2];
  assert_int_equal(pipe(p), 0);
  for (int w = 0; w < WRITERS; w++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(p[0]);
      mw_logger *lg = logger_new("%(name)s %(message)s", MW_LOG_INFO, NULL, 0);
      char name[8], msg[200];
      snprintf(name, sizeof name, "w%d", w);
      memset(msg, 'a' + w, sizeof msg);
      logger_set_fd(lg, p[1], true);
      int rc = 0;
      for (int i = 0; i < RECORDS && rc == 0; i++) {
        rc = logger_log(lg, MW_LOG_INFO, name, strlen(name), msg, sizeof msg);
      }
      logger_free(lg);
      _exit(rc == 0 ? 0 : 1);
    }
  }
  close(p[1]);
  size_t len = read_all(p[0], out, sizeof out);
  close(p[0]);
  int counts[WRITERS] = {0};
  size_t rec_len = 3 + 200 + 1;
  assert_int_equal(len, (size_t)WRITERS * RECORDS * rec_len);
  for (size_t off = 0; off < len; off += rec_len) {
    const char *r = out + off;
    assert_int_equal(r[0], 'w');
    int w = r[1] - '0';
    assert_true(w >= 0 && w < WRITERS);
    assert_int_equal(r[2], ' ');
    for (size_t i = 3; i < rec_len - 1; i++) {
      assert_int_equal(r[i], 'a' + w);
    }
    assert_int_equal(r[rec_len - 1], '\n');
    counts[w]++;
  }
  for (int w = 0; w < WRITERS; w++) {
    int status;
    assert_true(wait(&status) > 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(counts[w], RECORDS);
  }
}

/* ---- output that does not keep up ---- */

/* Captures what the logger says on stderr (fd 2 goes to a pipe). */
typedef struct {
  int saved, rd;
} stderr_capture;

static void stderr_begin(stderr_capture *c) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  fflush(stderr);
  c->saved = dup(2);
  assert_true(c->saved >= 0);
  assert_int_equal(dup2(p[1], 2), 2);
  close(p[1]);
  c->rd = p[0];
}

/* Restores fd 2 and returns what was said (NUL-terminated, in buf). */
static const char *stderr_end(stderr_capture *c, char *buf, size_t cap) {
  assert_int_equal(dup2(c->saved, 2), 2); /* the pipe's last writer is gone: EOF */
  close(c->saved);
  size_t n = read_all(c->rd, buf, cap - 1);
  close(c->rd);
  buf[n] = '\0';
  return buf;
}

static void small_pipe(int p[2]) {
  assert_int_equal(pipe(p), 0);
#ifdef F_SETPIPE_SZ
  fcntl(p[1], F_SETPIPE_SZ, 4096);
#endif
}

/* Reads what the pipe holds now, without waiting. */
static size_t read_ready(int fd, char *buf, size_t cap) {
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, cap - len);
    if (n <= 0) {
      assert_true(n == 0 || errno == EAGAIN || errno == EINTR);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      break;
    }
    len += (size_t)n;
    assert_true(len < cap);
  }
  fcntl(fd, F_SETFL, fl);
  return len;
}

static void test_pipe_never_blocks(void **state) {
  (void)state;
  alarm(20); /* a write that blocks ends the test instead of hanging it */
  /* a blocking pipe nobody reads: logging must return at once, records of
   * any size wait in order, and the shell's description stays blocking */
  int p[2];
  small_pipe(p);
  mw_logger *lg = new_logger("%(message)s");
  logger_set_fd(lg, p[1], false);
  enum { COUNT = 40 };
  static char want[COUNT * 7000];
  size_t want_len = 0;
  char msg[7000];
  for (int i = 0; i < COUNT; i++) {
    size_t n = i % 3 == 0 ? 6000 : 100 + (size_t)i; /* longer and shorter than PIPE_BUF */
    memset(msg, 'a' + i % 26, n);
    snprintf(msg, 8, "%03d", i);
    msg[3] = ' ';
    assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, msg, n), 0);
    memcpy(want + want_len, msg, n);
    want_len += n;
    want[want_len++] = '\n';
  }
  assert_true(logger_pending(lg) > 0);
  int wfd = logger_wait_fd(lg);
  assert_true(wfd >= 0);
  assert_int_not_equal(wfd, p[1]); /* its own open file description */
  assert_true(fcntl(wfd, F_GETFL) & O_NONBLOCK);
  assert_false(fcntl(p[1], F_GETFL) & O_NONBLOCK);

  /* the reader catches up a little at a time; partial writes of the long
   * records continue where they stopped */
  size_t got = 0;
  int rc;
  while ((rc = logger_flush(lg)) != 0) {
    assert_int_equal(rc, -EAGAIN);
    ssize_t n = read(p[0], out + got, 1500); /* the pipe is full: no wait */
    assert_true(n > 0);
    got += (size_t)n;
  }
  assert_int_equal(logger_wait_fd(lg), -1);
  logger_free(lg);
  close(p[1]);
  got += read_all(p[0], out + got, sizeof out - got);
  close(p[0]);
  assert_int_equal(got, want_len);
  assert_memory_equal(out, want, want_len);
  alarm(0);
}

static void test_socket_never_blocks(void **state) {
  (void)state;
  alarm(20);
  /* sockets are written with MSG_DONTWAIT: no flag changes on a socket that
   * other processes may share */
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int small = 4096;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  mw_logger *lg = new_logger("%(message)s");
  logger_set_fd(lg, sv[0], true);
  char msg[1000];
  memset(msg, 's', sizeof msg);
  int i = 0;
  while (logger_wait_fd(lg) < 0) {
    assert_true(i++ < 10000);
    assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, msg, sizeof msg), 0);
  }
  assert_int_equal(logger_wait_fd(lg), sv[0]);
  assert_false(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
  size_t got = 0;
  while (logger_flush(lg) != 0) {
    ssize_t n = read(sv[1], out + got, 4096);
    assert_true(n > 0);
    got += (size_t)n;
  }
  logger_free(lg); /* closes sv[0] */
  got += read_all(sv[1], out + got, sizeof out - got);
  close(sv[1]);
  assert_int_equal(got, (size_t)i * (sizeof msg + 1));
  alarm(0);
}

/* The record the format "%(levelname)s %(name)s: %(message)s" gives. */
static size_t rec_text(char *buf, size_t cap, const char *level, const char *msg) {
  return (size_t)snprintf(buf, cap, "%s n: %s\n", level, msg);
}

static void test_full_buffer_drops_and_warns(void **state) {
  (void)state;
  int p[2];
  small_pipe(p);
  stderr_capture cap;
  stderr_begin(&cap);
  mw_logger *lg = new_logger("%(levelname)s %(name)s: %(message)s");
  logger_set_limit(lg, 4096);
  logger_set_fd(lg, p[1], false);
  static char want[1 << 16];
  size_t want_len = 0;
  char msg[600];
  int dropped = 0;
  for (int i = 0; i < 40; i++) {
    snprintf(msg, sizeof msg, "%03d %0500d", i, 0);
    int rc = logger_log(lg, MW_LOG_INFO, "n", 1, msg, strlen(msg));
    if (rc == 0) {
      assert_int_equal(dropped, 0); /* nobody reads: once full, full */
      want_len += rec_text(want + want_len, sizeof want - want_len, "INFO", msg);
    } else {
      assert_int_equal(rc, -ENOBUFS);
      dropped++;
    }
  }
  assert_true(dropped > 0);
  assert_int_equal(logger_dropped(lg), dropped);
  assert_true(logger_pending(lg) <= 4096);

  /* the reader comes back: the kept records, then the logger's own WARNING */
  size_t got = 0;
  while (logger_flush(lg) != 0) {
    got += read_ready(p[0], out + got, sizeof out - got);
  }
  char warn[256];
  snprintf(warn, sizeof warn,
           "%d log records were dropped: fd %d did not keep up, and the 4 KiB log buffer was "
           "full",
           dropped, p[1]);
  want_len +=
      (size_t)snprintf(want + want_len, sizeof want - want_len, "WARNING moonwatch: %s\n", warn);

  /* a second time, with a gap in the middle: the WARNING marks the gap */
  int before = 0, lost = 0;
  for (int i = 0; i < 40; i++) {
    snprintf(msg, sizeof msg, "%03d %0500d", 100 + i, 1);
    if (logger_log(lg, MW_LOG_INFO, "n", 1, msg, strlen(msg)) == 0) {
      before++;
      want_len += rec_text(want + want_len, sizeof want - want_len, "INFO", msg);
    } else {
      lost++;
    }
  }
  assert_true(before > 0 && lost > 0);
  ssize_t n = read(p[0], out + got, 1500); /* the pipe is full: no wait */
  assert_true(n > 0);
  got += (size_t)n;
  assert_int_equal(logger_flush(lg), -EAGAIN); /* room in the queue again, not all out yet */
  assert_int_equal(logger_log(lg, MW_LOG_ERROR, "n", 1, "after", 5), 0);
  snprintf(warn, sizeof warn,
           "%d log records were dropped: fd %d did not keep up, and the 4 KiB log buffer was "
           "full",
           lost, p[1]);
  want_len += (size_t)snprintf(want + want_len, sizeof want - want_len,
                               "WARNING moonwatch: %s\nERROR n: after\n", warn);
  while (logger_flush(lg) != 0) {
    got += read_ready(p[0], out + got, sizeof out - got);
  }
  logger_free(lg);
  close(p[1]);
  got += read_all(p[0], out + got, sizeof out - got);
  close(p[0]);
  out[got] = '\0';
  want[want_len] = '\0';
  assert_string_equal(out, want);
  char said[512];
  assert_string_equal(stderr_end(&cap, said, sizeof said), ""); /* not an error: no message */
}

static void test_full_disk_then_recovery(void **state) {
  (void)state;
  /* /dev/full says ENOSPC; the records stay queued, whole, until the fd is
   * swapped for one that works */
  stderr_capture cap;
  stderr_begin(&cap);
  int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
  assert_true(full >= 0);
  mw_logger *lg = new_logger("%(levelname)s %(name)s: %(message)s");
  logger_set_limit(lg, 4096);
  logger_set_fd(lg, full, true);
  static char want[1 << 16];
  size_t want_len = 0;
  assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, "one", 3), 0);
  want_len += rec_text(want + want_len, sizeof want - want_len, "INFO", "one");
  assert_int_equal(logger_pending(lg), want_len);
  assert_int_equal(logger_flush(lg), -ENOSPC);
  char msg[600];
  int lost = 0;
  for (int i = 0; i < 20; i++) {
    snprintf(msg, sizeof msg, "%03d %0500d", i, 0);
    if (logger_log(lg, MW_LOG_INFO, "n", 1, msg, strlen(msg)) == 0) {
      want_len += rec_text(want + want_len, sizeof want - want_len, "INFO", msg);
    } else {
      lost++;
    }
  }
  assert_true(lost > 0);
  assert_int_equal(logger_pending(lg), want_len); /* no partial record went anywhere */

  int p[2];
  assert_int_equal(pipe(p), 0);
  logger_set_fd(lg, p[1], true); /* closes /dev/full */
  assert_int_equal(fcntl(full, F_GETFD), -1);
  assert_int_equal(logger_flush(lg), 0);
  want_len +=
      (size_t)snprintf(want + want_len, sizeof want - want_len,
                       "WARNING moonwatch: %d log records were dropped: cannot write to fd %d: No "
                       "space left on device, and the 4 KiB log buffer was full\n",
                       lost, full);
  logger_free(lg);
  size_t got = read_all(p[0], out, sizeof out);
  close(p[0]);
  out[got] = '\0';
  want[want_len] = '\0';
  assert_string_equal(out, want);

  char said[1024], expect[1024];
  snprintf(expect, sizeof expect,
           "moonwatch: log: cannot write to fd %d: No space left on device; records are kept and "
           "retried, dropped when 4 KiB is full\n"
           "moonwatch: log: writing to fd %d works again; %d records were lost\n",
           full, p[1], lost);
  assert_string_equal(stderr_end(&cap, said, sizeof said), expect);
}

static void test_short_write_to_file(void **state) {
  (void)state;
  /* RLIMIT_FSIZE stops a file like a full disk does: the write that crosses
   * it is short, the next fails. No partial record may stay in the file. */
  char dir[] = "/tmp/log_test_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/m.log", dir);
  stderr_capture cap;
  stderr_begin(&cap);
  mw_logger *lg = new_logger("%(message)s");
  char err[MW_LOG_ERR_SIZE];
  assert_int_equal(logger_open_file(lg, path, err, sizeof err), 0);

  struct rlimit old, rl;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  rl = old;
  rl.rlim_cur = 100;
  void (*old_xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
  char want[256], msg[32];
  size_t want_len = 0;
  for (int i = 0; i < 5; i++) { /* 30-byte records: 3 fit */
    snprintf(msg, sizeof msg, "record %d %020d", i, 0);
    assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, msg, strlen(msg)), 0);
    want_len += (size_t)snprintf(want + want_len, sizeof want - want_len, "%s\n", msg);
  }
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 90);
  assert_int_equal(logger_pending(lg), 60);
  assert_int_equal(logger_flush(lg), -EFBIG);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 90);

  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0); /* space again */
  signal(SIGXFSZ, old_xfsz);
  assert_int_equal(logger_flush(lg), 0);
  logger_free(lg);
  int fd = open(path, O_RDONLY);
  size_t got = read_all(fd, out, sizeof out);
  close(fd);
  assert_int_equal(got, want_len);
  assert_memory_equal(out, want, want_len);

  char said[1024], expect[1024];
  snprintf(expect, sizeof expect,
           "moonwatch: log: cannot write to %s: File too large; records are kept and retried, "
           "dropped when 1 MiB is full\n"
           "moonwatch: log: writing to %s works again; no records were lost\n",
           path, path);
  assert_string_equal(stderr_end(&cap, said, sizeof said), expect);
  unlink(path);
  rmdir(dir);
}

static void test_final_attempt_is_bounded(void **state) {
  (void)state;
  alarm(20);
  /* at exit nobody reads: logger_free waits MW_LOG_FINAL_MS, not forever,
   * and says what was lost */
  int p[2];
  small_pipe(p);
  stderr_capture cap;
  stderr_begin(&cap);
  mw_logger *lg = new_logger("%(message)s");
  logger_set_fd(lg, p[1], false);
  char msg[3000];
  memset(msg, 'x', sizeof msg);
  for (int i = 0; i < 10; i++) {
    assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, msg, sizeof msg), 0);
  }
  size_t left = logger_pending(lg);
  assert_true(left > 0);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  logger_free(lg);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  assert_true(waited >= MW_LOG_FINAL_MS / 1000.0 * 0.9);
  assert_true(waited < MW_LOG_FINAL_MS / 1000.0 + 2);
  char said[512], expect[512];
  snprintf(expect, sizeof expect,
           "moonwatch: log: %zu records were lost at exit: fd %d did not keep up (waited 1000 "
           "ms)\n",
           left / sizeof msg, p[1]);
  assert_string_equal(stderr_end(&cap, said, sizeof said), expect);
  close(p[0]);
  close(p[1]);
  alarm(0);
}

static void test_write_errors(void **state) {
  (void)state;
  /* a reader that went away: EPIPE is said once, the record is kept */
  int p[2];
  assert_int_equal(pipe(p), 0);
  close(p[0]);
  stderr_capture cap;
  stderr_begin(&cap);
  mw_logger *lg = new_logger("%(message)s");
  logger_set_fd(lg, p[1], true);
  assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, "x", 1), 0);
  assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, "y", 1), 0);
  assert_int_equal(logger_flush(lg), -EPIPE);
  assert_int_equal(logger_pending(lg), 4);
  logger_free(lg);
  char said[1024], expect[1024];
  snprintf(expect, sizeof expect,
           "moonwatch: log: cannot write to fd %d: Broken pipe; records are kept and retried, "
           "dropped when 1 MiB is full\n"
           "moonwatch: log: 2 records were lost at exit: cannot write to fd %d: Broken pipe\n",
           p[1], p[1]);
  assert_string_equal(stderr_end(&cap, said, sizeof said), expect);
}

static void test_reopen(void **state) {
  (void)state;
  /* logrotate: the file is renamed, reopen makes a new one at the path */
  char dir[] = "/tmp/log_test_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64], rotated[64];
  snprintf(path, sizeof path, "%s/m.log", dir);
  snprintf(rotated, sizeof rotated, "%s/m.log.1", dir);
  char err[MW_LOG_ERR_SIZE] = "";
  mw_logger *lg = new_logger("%(message)s");
  assert_int_equal(logger_reopen(lg, err, sizeof err), -EINVAL);
  assert_string_equal(err, "not a file logger");
  assert_int_equal(logger_open_file(lg, path, err, sizeof err), 0);
  int old_fd = logger_fd(lg);
  assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, "before", 6), 0);
  assert_int_equal(rename(path, rotated), 0);
  assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, "still old", 9), 0);
  assert_int_equal(logger_reopen(lg, err, sizeof err), 0);
  assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, "after", 5), 0);
  assert_true(logger_fd(lg) >= 0);

  /* a failed reopen keeps the file in use */
  char moved[64];
  snprintf(moved, sizeof moved, "%s.gone", dir);
  assert_int_equal(rename(dir, moved), 0);
  assert_int_equal(logger_reopen(lg, err, sizeof err), -ENOENT);
  char want[160];
  snprintf(want, sizeof want, "log.file: cannot reopen '%s': No such file or directory", path);
  assert_string_equal(err, want);
  assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, "kept", 4), 0);
  assert_int_equal(rename(moved, dir), 0);
  logger_free(lg);
  (void)old_fd;

  int fd = open(rotated, O_RDONLY);
  size_t len = read_all(fd, out, sizeof out);
  close(fd);
  assert_int_equal(len, strlen("before\nstill old\n"));
  assert_memory_equal(out, "before\nstill old\n", len);
  fd = open(path, O_RDONLY);
  len = read_all(fd, out, sizeof out);
  close(fd);
  assert_int_equal(len, strlen("after\nkept\n"));
  assert_memory_equal(out, "after\nkept\n", len);
  unlink(path);
  unlink(rotated);
  rmdir(dir);
}

static void test_file_output(void **state) {
  (void)state;
  char dir[] = "/tmp/log_test_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/m.log", dir);

  char err[MW_LOG_ERR_SIZE] = "";
  mw_logger *lg = new_logger("%(levelname)s %(message)s");
  assert_int_equal(logger_open_file(lg, path, err, sizeof err), 0);
  assert_int_equal(logger_log(lg, MW_LOG_INFO, "n", 1, "first", 5), 0);
  logger_free(lg);
  lg = new_logger("%(levelname)s %(message)s");
  assert_int_equal(logger_open_file(lg, path, err, sizeof err), 0);
  int fd = logger_fd(lg);
  assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  assert_true(fcntl(fd, F_GETFL) & O_APPEND);
  assert_int_equal(logger_log(lg, MW_LOG_ERROR, "n", 1, "second", 6), 0);
  logger_free(lg);
  assert_int_equal(fcntl(fd, F_GETFD), -1); /* the owned fd was closed */

  int rfd = open(path, O_RDONLY);
  assert_true(rfd >= 0);
  size_t len = read_all(rfd, out, sizeof out);
  close(rfd);
  assert_int_equal(len, strlen("INFO first\nERROR second\n"));
  assert_memory_equal(out, "INFO first\nERROR second\n", len);

  lg = new_logger(NULL);
  char bad[96];
  snprintf(bad, sizeof bad, "%s/missing/m.log", dir);
  assert_int_equal(logger_open_file(lg, bad, err, sizeof err), -ENOENT);
  char want[160];
  snprintf(want, sizeof want, "log.file: cannot open '%s': No such file or directory", bad);
  assert_string_equal(err, want);
  assert_int_equal(logger_fd(lg), 1); /* unchanged */
  logger_free(lg);

  unlink(path);
  rmdir(dir);
}

int main(void) {
  use_tz("UTC");
  signal(SIGPIPE, SIG_IGN); /* as the core does: EPIPE instead */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_format),
      cmocka_unit_test(test_every_key),
      cmocka_unit_test(test_width_and_flags),
      cmocka_unit_test(test_percent),
      cmocka_unit_test(test_format_errors),
      cmocka_unit_test(test_json),
      cmocka_unit_test(test_json_escaping),
      cmocka_unit_test(test_json_fields),
      cmocka_unit_test(test_json_number_roundtrip),
      cmocka_unit_test(test_json_field_escaping),
      cmocka_unit_test(test_json_reserved_fields),
      cmocka_unit_test(test_monitor_key),
      cmocka_unit_test(test_fields_records),
      cmocka_unit_test(test_text_escaping),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_small_buffer),
      cmocka_unit_test(test_levels),
      cmocka_unit_test(test_second_cache),
      cmocka_unit_test(test_write_seqpacket),
      cmocka_unit_test(test_write_pipe_concurrent),
      cmocka_unit_test(test_pipe_never_blocks),
      cmocka_unit_test(test_socket_never_blocks),
      cmocka_unit_test(test_full_buffer_drops_and_warns),
      cmocka_unit_test(test_full_disk_then_recovery),
      cmocka_unit_test(test_short_write_to_file),
      cmocka_unit_test(test_final_attempt_is_bounded),
      cmocka_unit_test(test_write_errors),
      cmocka_unit_test(test_reopen),
      cmocka_unit_test(test_file_output),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
