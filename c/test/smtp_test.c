/* smtp.c (L4): the URL check, and sends that end without a server: a closed
 * port, a listener that never answers, an abort. Links the loop only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <lauxlib.h>
#include <lualib.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "smtp.h"

static lua_State *L;
static mw_loop *loop;

typedef struct {
  int calls;
  char kind[32];
  char message[1024];
} outcome;

static int setup(void **state) {
  (void)state;
  L = luaL_newstate();
  loop = loop_get(L);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  lua_close(L);
  return 0;
}

static void on_done(const char *kind, const char *message, void *data) {
  outcome *o = data;
  o->calls++;
  snprintf(o->kind, sizeof o->kind, "%s", kind ? kind : "");
  snprintf(o->message, sizeof o->message, "%s", message ? message : "");
}

/* A bound TCP socket on 127.0.0.1: listening (connections complete in the
 * backlog, nothing answers) or not (the port refuses). */
static int local_socket(int listening, int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  if (listening)
    assert_int_equal(listen(fd, 8), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

static mw_smtp *start(int port, double timeout, outcome *o) {
  char url[64];
  snprintf(url, sizeof url, "smtp://127.0.0.1:%d", port);
  mw_smtp_options opts = {.url = url,
                          .from = "a@example.com",
                          .message = "Subject: x\r\n\r\nbody\r\n",
                          .password = "s3cret",
                          .username = "u",
                          .rcpt = curl_slist_append(NULL, "b@example.com"),
                          .use_ssl = CURLUSESSL_NONE,
                          .verify = 1,
                          .timeout = timeout,
                          .connect_timeout = timeout};
  opts.message_len = strlen(opts.message);
  const char *error = NULL;
  mw_smtp *s = smtp_send(loop, &opts, on_done, o, &error);
  assert_non_null(s);
  assert_null(opts.rcpt); /* taken over */
  return s;
}

static void test_check_url(void **state) {
  (void)state;
  assert_null(smtp_check_url("smtp://mail.example.com:587"));
  assert_null(smtp_check_url("smtps://mail.example.com"));
  assert_null(smtp_check_url("smtp://127.0.0.1:25/client.example.org"));
  assert_non_null(strstr(smtp_check_url("http://example.com"), "unsupported scheme 'http'"));
  assert_non_null(strstr(smtp_check_url("smtp://u:pw@example.com"), "credentials"));
  assert_non_null(strstr(smtp_check_url("smtp://u@example.com"), "credentials"));
  assert_non_null(strstr(smtp_check_url("smtp://exa mple.com"), "offset 10"));
  assert_non_null(strstr(smtp_check_url("smtp://"), "bad url"));
}

static void test_refused(void **state) {
  (void)state;
  int port;
  close(local_socket(0, &port));
  outcome o = {0};
  start(port, 5, &o);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  assert_int_equal(o.calls, 1);
  assert_string_equal(o.kind, "refused");
  assert_null(strstr(o.message, "s3cret"));
}

static void test_timeout(void **state) {
  (void)state;
  int port;
  int fd = local_socket(1, &port);
  outcome o = {0};
  uint64_t t0 = uv_hrtime();
  start(port, 0.2, &o);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  double elapsed = (double)(uv_hrtime() - t0) / 1e9;
  close(fd);
  assert_int_equal(o.calls, 1);
  assert_string_equal(o.kind, "timeout");
  assert_true(elapsed >= 0.2 && elapsed < 1.2);
}

static void test_abort(void **state) {
  (void)state;
  int port;
  int fd = local_socket(1, &port);
  outcome o = {0};
  mw_smtp *s = start(port, 30, &o);
  smtp_abort(s);
  uint64_t t0 = uv_hrtime();
  uv_run(&loop->uv, UV_RUN_DEFAULT); /* until the worker has stopped */
  double elapsed = (double)(uv_hrtime() - t0) / 1e9;
  close(fd);
  assert_int_equal(o.calls, 0);
  assert_true(elapsed < 2.5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_url),
      cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
