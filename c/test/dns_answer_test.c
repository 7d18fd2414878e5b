/* DNS answer messages read into Lua tables (L0): well-formed answers with
 * compression, and malformed ones, which must fail with a reason and leave
 * the stack as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "dns_answer.h"

/* header: id 1, QR AA RD RA, qd 1, an n; question a.test A IN */
#define HEADER(an) 0, 1, 0x85, 0x80, 0, 1, 0, an, 0, 0, 0, 0
#define QUESTION 1, 'a', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1
#define A_RR(ttl3, b) 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, ttl3, 0, 4, 192, 0, 2, b

static lua_State *L;

static int setup(void **state) {
  (void)state;
  L = luaL_newstate();
  return L ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  lua_close(L);
  return 0;
}

static void test_types_and_rcodes(void **state) {
  (void)state;
  assert_int_equal(dns_answer_type("A"), 1);
  assert_int_equal(dns_answer_type("caa"), 257);
  assert_int_equal(dns_answer_type("PTR"), 0);
  char buf[16];
  assert_string_equal(dns_answer_rcode_name(3, buf, sizeof buf), "NXDOMAIN");
  assert_string_equal(dns_answer_rcode_name(13, buf, sizeof buf), "RCODE13");
}

static void test_a_answers(void **state) {
  (void)state;
  const unsigned char msg[] = {HEADER(2), QUESTION, A_RR(60, 1), A_RR(30, 2)};
  const char *error = NULL;
  assert_int_equal(dns_answer_push(L, msg, (int)sizeof msg, 1, &error), 0);
  assert_int_equal(lua_gettop(L), 1);
  lua_getfield(L, 1, "rcode");
  assert_string_equal(lua_tostring(L, -1), "NOERROR");
  lua_getfield(L, 1, "answers");
  assert_int_equal(luaL_len(L, -1), 2);
  lua_geti(L, -1, 2);
  lua_getfield(L, -1, "address");
  assert_string_equal(lua_tostring(L, -1), "192.0.2.2");
  lua_getfield(L, -2, "ttl");
  assert_int_equal(lua_tointeger(L, -1), 30);
  lua_getfield(L, -3, "name");
  assert_string_equal(lua_tostring(L, -1), "a.test");
  lua_settop(L, 0);
}

static void test_top_bit_ttl_is_zero(void **state) {
  (void)state;
  const unsigned char msg[] = {HEADER(1), QUESTION, 0xC0, 12, 0, 1,   0, 1, 0x80,
                               0,         0,        0,    0,  4, 192, 0, 2, 1};
  const char *error = NULL;
  assert_int_equal(dns_answer_push(L, msg, (int)sizeof msg, 1, &error), 0);
  lua_getfield(L, 1, "answers");
  lua_geti(L, -1, 1);
  lua_getfield(L, -1, "ttl");
  assert_int_equal(lua_tointeger(L, -1), 0);
  lua_settop(L, 0);
}

static void expect_malformed(const unsigned char *msg, int len, int qtype, const char *why) {
  const char *error = NULL;
  lua_pushliteral(L, "below");
  assert_int_equal(dns_answer_push(L, msg, len, qtype, &error), -1);
  assert_non_null(error);
  assert_non_null(strstr(error, why));
  assert_int_equal(lua_gettop(L), 1); /* nothing left pushed */
  lua_settop(L, 0);
}

static void test_malformed(void **state) {
  (void)state;
  const unsigned char short_header[] = {0, 1, 0x85};
  expect_malformed(short_header, (int)sizeof short_header, 1, "header");
  const unsigned char no_question[] = {HEADER(0)};
  expect_malformed(no_question, (int)sizeof no_question, 1, "name");
  const unsigned char loop[] = {HEADER(1), QUESTION, 0xC0, 29, 0, 1};
  expect_malformed(loop, (int)sizeof loop, 1, "name");
  const unsigned char cut_record[] = {HEADER(1), QUESTION, 0xC0, 12, 0, 1, 0, 1};
  expect_malformed(cut_record, (int)sizeof cut_record, 1, "truncated record");
  const unsigned char long_rdata[] = {HEADER(1), QUESTION, 0xC0, 12, 0, 1, 0, 1, 0,
                                      0,         0,        1,    0,  9, 1, 2, 3, 4};
  expect_malformed(long_rdata, (int)sizeof long_rdata, 1, "longer than the message");
  const unsigned char bad_a[] = {HEADER(1), QUESTION, 0xC0, 12, 0, 1, 0, 1, 0,
                                 0,         0,        1,    0,  3, 1, 2, 3};
  expect_malformed(bad_a, (int)sizeof bad_a, 1, "bad address");
  /* TXT whose string runs past its rdata */
  const unsigned char bad_txt[] = {HEADER(1), QUESTION, 0xC0, 12, 0, 16, 0,   1,  0,
                                   0,         0,        1,    0,  3, 5,  'a', 'b'};
  expect_malformed(bad_txt, (int)sizeof bad_txt, 16, "TXT");
  /* SOA with its numbers cut */
  const unsigned char bad_soa[] = {HEADER(1), QUESTION, 0xC0, 12, 0,    6,  0,    1,  0, 0,
                                   0,         1,        0,    6,  0xC0, 12, 0xC0, 12, 0, 1};
  expect_malformed(bad_soa, (int)sizeof bad_soa, 6, "SOA");
  /* CAA with an empty tag */
  const unsigned char bad_caa[] = {HEADER(1), QUESTION, 0xC0, 12, 1, 1, 0, 1,
                                   0,         0,        0,    1,  0, 2, 0, 0};
  expect_malformed(bad_caa, (int)sizeof bad_caa, 257, "CAA");
}

static void test_other_types_skipped(void **state) {
  (void)state;
  /* a PTR record in an A answer is not one of ours: skipped, not an error */
  const unsigned char msg[] = {HEADER(2), QUESTION, 0xC0, 12, 0, 12,   0,  1,         0,
                               0,         0,        1,    0,  2, 0xC0, 12, A_RR(5, 9)};
  const char *error = NULL;
  assert_int_equal(dns_answer_push(L, msg, (int)sizeof msg, 1, &error), 0);
  lua_getfield(L, 1, "answers");
  assert_int_equal(luaL_len(L, -1), 1);
  lua_settop(L, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_types_and_rcodes),
      cmocka_unit_test_setup_teardown(test_a_answers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_top_bit_ttl_is_zero, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_other_types_skipped, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
