/* The resolver's TTL cache (L0), with the clock injected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "dns_cache.h"

static mw_dns_cache cache;

static int setup(void **state) {
  (void)state;
  memset(&cache, 0, sizeof cache);
  cache.enabled = 1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  dns_cache_clear(&cache);
  return 0;
}

static void test_put_get(void **state) {
  (void)state;
  dns_cache_put(&cache, "a.test", "192.0.2.1", 60, 1000);
  assert_string_equal(dns_cache_get(&cache, "a.test", 1000), "192.0.2.1");
  assert_null(dns_cache_get(&cache, "b.test", 1000));
  assert_int_equal(cache.count, 1);
}

static void test_expires_after_ttl(void **state) {
  (void)state;
  dns_cache_put(&cache, "a.test", "192.0.2.1", 2, 1000);
  assert_non_null(dns_cache_get(&cache, "a.test", 2999));
  assert_null(dns_cache_get(&cache, "a.test", 3000));
  assert_int_equal(cache.count, 0); /* the expired entry was dropped */
}

static void test_ttl_capped(void **state) {
  (void)state;
  dns_cache_put(&cache, "a.test", "192.0.2.1", 86400, 0);
  assert_non_null(dns_cache_get(&cache, "a.test", MW_DNS_CACHE_TTL_MAX_MS - 1));
  assert_null(dns_cache_get(&cache, "a.test", MW_DNS_CACHE_TTL_MAX_MS));
}

static void test_zero_ttl_not_kept(void **state) {
  (void)state;
  dns_cache_put(&cache, "a.test", "192.0.2.1", 0, 0);
  dns_cache_put(&cache, "b.test", "192.0.2.2", -5, 0);
  assert_null(dns_cache_get(&cache, "a.test", 0));
  assert_null(dns_cache_get(&cache, "b.test", 0));
  assert_int_equal(cache.count, 0);
}

static void test_disabled(void **state) {
  (void)state;
  dns_cache_put(&cache, "a.test", "192.0.2.1", 60, 0);
  cache.enabled = 0;
  assert_null(dns_cache_get(&cache, "a.test", 0));
  dns_cache_put(&cache, "b.test", "192.0.2.2", 60, 0);
  cache.enabled = 1;
  assert_null(dns_cache_get(&cache, "b.test", 0));
}

static void test_replace(void **state) {
  (void)state;
  dns_cache_put(&cache, "a.test", "192.0.2.1", 1, 0);
  dns_cache_put(&cache, "a.test", "192.0.2.9,[2001:db8::1]", 60, 500);
  assert_string_equal(dns_cache_get(&cache, "a.test", 5000), "192.0.2.9,[2001:db8::1]");
  assert_int_equal(cache.count, 1);
}

static void test_bounded(void **state) {
  (void)state;
  char host[32];
  for (int i = 0; i < MW_DNS_CACHE_MAX; i++) {
    snprintf(host, sizeof host, "h%d.test", i);
    dns_cache_put(&cache, host, "192.0.2.1", 60, 0);
  }
  assert_int_equal(cache.count, MW_DNS_CACHE_MAX);
  dns_cache_put(&cache, "one-more.test", "192.0.2.2", 60, 0);
  assert_int_equal(cache.count, 1); /* started over */
  assert_non_null(dns_cache_get(&cache, "one-more.test", 0));
  assert_null(dns_cache_get(&cache, "h0.test", 0));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expires_after_ttl, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ttl_capped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_zero_ttl_not_kept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_disabled, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
