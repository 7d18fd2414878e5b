/* The transfer pool and its completion callback (L3). Links the transport
 * and the layers below it: resolver, loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_private.h"

static lua_State *L;
static mw_loop *loop;
static mw_http *http;

static int setup(void **state) {
  (void)state;
  L = luaL_newstate();
  loop = loop_get(L);
  const char *error = NULL;
  http = http_get(loop, &error);
  assert_non_null(http);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  lua_close(L); /* the transport's closer frees the pool */
  return 0;
}

static void test_reuses_its_settings(void **state) {
  (void)state;
  int setup_needed = 0;
  uint64_t id = http_new_id(http);
  mw_transfer *t = transfer_acquire(http, id, 1024, &setup_needed);
  assert_non_null(t);
  assert_true(setup_needed); /* new */
  transfer_release(t);
  mw_transfer *again = transfer_acquire(http, id, 1024, &setup_needed);
  assert_ptr_equal(again, t);
  assert_false(setup_needed); /* still holds them: no reset */
  transfer_release(again);
  uint64_t other = http_new_id(http);
  mw_transfer *t2 = transfer_acquire(http, other, 1024, &setup_needed);
  assert_ptr_equal(t2, t); /* the pool's only one, reset */
  assert_true(setup_needed);
  assert_int_equal(t2->configured, other);
  transfer_release(t2);
}

static void test_prefers_the_second_when_it_holds_them(void **state) {
  (void)state;
  int s = 0;
  uint64_t a = http_new_id(http), b = http_new_id(http);
  mw_transfer *ta = transfer_acquire(http, a, 1024, &s);
  mw_transfer *tb = transfer_acquire(http, b, 1024, &s);
  transfer_release(tb);
  transfer_release(ta); /* the pool: ta, tb */
  mw_transfer *got = transfer_acquire(http, b, 1024, &s);
  assert_ptr_equal(got, tb);
  assert_false(s);
  transfer_release(got);
}

static void test_dirty_and_forgotten_are_set_up_again(void **state) {
  (void)state;
  int s = 0;
  uint64_t id = http_new_id(http);
  mw_transfer *t = transfer_acquire(http, id, 1024, &s);
  t->dirty = 1; /* a redirect changed its url */
  transfer_release(t);
  t = transfer_acquire(http, id, 1024, &s);
  assert_true(s);
  assert_false(t->dirty);
  transfer_release(t);
  transfer_forget(http, id); /* the request object went away */
  t = transfer_acquire(http, id, 1024, &s);
  assert_true(s);
  transfer_release(t);
}

static void test_pool_bounded(void **state) {
  (void)state;
  enum { N = MW_HTTP_POOL_IDLE_MAX + 44 };
  static mw_transfer *ts[N];
  int s = 0;
  for (int i = 0; i < N; i++)
    ts[i] = transfer_acquire(http, http_new_id(http), 1024, &s);
  assert_int_equal(http->idle_count, 0);
  for (int i = 0; i < N; i++)
    transfer_release(ts[i]);
  assert_int_equal(http->idle_count, MW_HTTP_POOL_IDLE_MAX);
}

static void test_large_buffers_not_pooled(void **state) {
  (void)state;
  int s = 0;
  mw_transfer *t = transfer_acquire(http, http_new_id(http), 1 << 20, &s);
  t->body.cap = MW_HTTP_BODY_KEEP_MAX + 1;
  t->body.data = malloc(t->body.cap);
  t->head.cap = 512;
  t->head.data = malloc(t->head.cap);
  transfer_release(t);
  assert_null(t->body.data);
  assert_int_equal(t->body.cap, 0);
  assert_non_null(t->head.data); /* small: kept for the next response */
}

static int dones;
static CURLcode last_result;

static void on_done(mw_transfer *t, CURLcode result, void *data) {
  assert_ptr_equal(data, &dones);
  assert_false(t->running);
  dones++;
  last_result = result;
}

/* A port on 127.0.0.1 that refuses: bound, never listening. */
static int refusing_port(int *fd) {
  *fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  assert_int_equal(bind(*fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(getsockname(*fd, (struct sockaddr *)&sa, &len), 0);
  return ntohs(sa.sin_port);
}

static void test_done_through_the_callback(void **state) {
  (void)state;
  int fd;
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", refusing_port(&fd));
  int s = 0;
  mw_transfer *t = transfer_acquire(http, http_new_id(http), 1024, &s);
  curl_easy_setopt(t->easy, CURLOPT_URL, url);
  dones = 0;
  assert_null(transfer_start(t, on_done, &dones));
  assert_true(t->running);
  assert_int_equal(http->transfers, 1);
  while (dones == 0)
    uv_run(&loop->uv, UV_RUN_ONCE);
  assert_int_equal(dones, 1);
  assert_int_equal(last_result, CURLE_COULDNT_CONNECT);
  assert_int_equal(http->transfers, 0);
  /* stopped before it ends: the callback never runs */
  assert_null(transfer_start(t, on_done, &dones));
  transfer_stop(t);
  assert_false(t->running);
  assert_int_equal(http->transfers, 0);
  uv_run(&loop->uv, UV_RUN_NOWAIT);
  assert_int_equal(dones, 1);
  transfer_release(t);
  close(fd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_reuses_its_settings, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prefers_the_second_when_it_holds_them, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dirty_and_forgotten_are_set_up_again, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pool_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_buffers_not_pooled, setup, teardown),
      cmocka_unit_test_setup_teardown(test_done_through_the_callback, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
