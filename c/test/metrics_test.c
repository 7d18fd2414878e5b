/* The metrics registry and its exposition (L0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

typedef struct {
  char *data;
  size_t len, cap;
  size_t calls;
} text;

static void text_write(void *ctx, const char *p, size_t n) {
  text *t = ctx;
  if (t->len + n + 1 > t->cap) {
    t->cap = (t->len + n + 1) * 2;
    t->data = realloc(t->data, t->cap);
    assert_non_null(t->data);
  }
  memcpy(t->data + t->len, p, n);
  t->len += n;
  t->data[t->len] = '\0';
}

/* Renders in calls of budget bytes; returns the calls it took. */
static size_t render(mw_metrics *m, size_t budget, text *t) {
  mw_metrics_cursor c;
  memset(&c, 0, sizeof c);
  size_t calls = 0;
  size_t before;
  do {
    before = t->len;
    calls++;
    assert_true(calls < 1000000);
    if (metrics_render(m, &c, budget, text_write, t))
      break;
    assert_true(t->len > before); /* every call makes progress */
  } while (1);
  return calls;
}

/* The text may hold NUL bytes (a monitor's name may): memmem, not strstr. */
static size_t count_in(const text *t, const char *needle) {
  size_t n = 0, len = strlen(needle);
  const char *p = t->data, *end = t->data + t->len;
  while ((p = memmem(p, (size_t)(end - p), needle, len))) {
    n++;
    p += len;
  }
  return n;
}

#define count(t, needle) count_in(&(t), needle)
#define has(t, needle) assert_true(count_in(&(t), needle) > 0)

static mw_metrics_probe probe_up(double duration) {
  mw_metrics_probe p;
  memset(&p, 0, sizeof p);
  p.up = 1;
  p.http = 1;
  p.duration = duration;
  p.status = 200;
  p.content_length = 648;
  for (int i = 0; i < MW_METRICS_PHASES; i++)
    p.phase[i] = 0.001 * (i + 1);
  return p;
}

static mw_metrics *sample_registry(int monitors) {
  mw_metrics *m = metrics_new();
  assert_non_null(m);
  const char *err = NULL;
  for (int i = 0; i < monitors; i++) {
    char name[32];
    snprintf(name, sizeof name, "monitor-%d", i);
    mw_metrics_series *s = metrics_series_add(m, name, strlen(name), &err);
    assert_non_null(s);
    if (i % 3 != 2) { /* every third stays pending */
      mw_metrics_probe p = probe_up(0.25 + i);
      p.up = i % 3 == 0;
      p.has_cert = i % 2;
      p.cert_expiry = 1.9e9;
      metrics_series_observe(s, &p);
      metrics_series_state(s, p.up ? MW_METRICS_UP : MW_METRICS_DOWN);
    }
  }
  const char *labels[] = {"notifier", "outcome"};
  mw_metrics_family *f = metrics_family_add(m, MW_METRICS_COUNTER, "moonwatch_notifications_total",
                                            "Notifications.", labels, 2, NULL, 0, &err);
  assert_non_null(f);
  const char *v[] = {"webhook", "sent"};
  size_t lens[] = {7, 4};
  metrics_sample_set(metrics_sample_get(f, v, lens), 3);
  double bounds[] = {0.001, 0.01, 0.1};
  f = metrics_family_add(m, MW_METRICS_HISTOGRAM, "lateness_seconds", "Lateness.", NULL, 0, bounds,
                         3, &err);
  assert_non_null(f);
  uint64_t buckets[] = {1, 2, 3, 4};
  metrics_histogram_add(f, buckets, 1.5);
  return m;
}

/* Any budget gives the same text as one call. */
static void test_budgets(void **state) {
  (void)state;
  mw_metrics *m = sample_registry(50);
  text whole = {0};
  assert_int_equal(render(m, (size_t)-1, &whole), 1);
  size_t budgets[] = {0, 1, 7, 100, 333, 4096};
  for (size_t i = 0; i < sizeof budgets / sizeof *budgets; i++) {
    text t = {0};
    size_t calls = render(m, budgets[i], &t);
    assert_true(calls > 1);
    assert_int_equal(t.len, whole.len);
    assert_string_equal(t.data, whole.data);
    free(t.data);
  }
  assert_int_equal(count(whole, "# TYPE "), 9 + 2);
  assert_int_equal(count(whole, "# HELP probe_success "), 1);
  size_t results = 0, certs = 0;
  for (int i = 0; i < 50; i++) {
    results += i % 3 != 2;
    certs += i % 3 != 2 && i % 2;
  }
  assert_int_equal(count(whole, "\nprobe_success{"), results);
  assert_int_equal(count(whole, "\nprobe_ssl_earliest_cert_expiry{"), certs);
  assert_int_equal(count(whole, "\nmoonwatch_monitor_state{"), 200);
  has(whole, "probe_success{monitor=\"monitor-0\"} 1\n");
  has(whole, "probe_success{monitor=\"monitor-1\"} 0\n");
  assert_int_equal(count(whole, "probe_success{monitor=\"monitor-2\"}"), 0);
  has(whole, "moonwatch_monitor_state{monitor=\"monitor-2\","
             "state=\"pending\"} 1\n");
  has(whole, "probe_duration_seconds{monitor=\"monitor-1\"} 1.25\n");
  has(whole, "probe_http_duration_seconds{monitor=\"monitor-0\","
             "phase=\"tls\"} 0.003\n");
  has(whole, "lateness_seconds_bucket{le=\"0.01\"} 3\n"
             "lateness_seconds_bucket{le=\"0.1\"} 6\n"
             "lateness_seconds_bucket{le=\"+Inf\"} 10\n"
             "lateness_seconds_sum 1.5\n"
             "lateness_seconds_count 10\n");
  has(whole, "moonwatch_notifications_total{notifier=\"webhook\","
             "outcome=\"sent\"} 3\n");
  free(whole.data);
  metrics_free(m);
}

/* Series added and removed in the middle of a render: none written twice,
 * every one kept from start to end written once, no crash. */
static void test_add_remove_between_calls(void **state) {
  (void)state;
  enum { N = 300 };
  mw_metrics *m = metrics_new();
  mw_metrics_series *series[N + 1000];
  const char *err;
  for (int i = 0; i < N; i++) {
    char name[32];
    snprintf(name, sizeof name, "m%d", i);
    series[i] = metrics_series_add(m, name, strlen(name), &err);
    metrics_series_state(series[i], MW_METRICS_UP);
  }
  text t = {0};
  mw_metrics_cursor c;
  memset(&c, 0, sizeof c);
  int added = N, calls = 0;
  srand(7);
  while (!metrics_render(m, &c, 1000, text_write, &t)) {
    calls++;
    /* remove a random live one of the first N (never m0) and add one */
    int i = 1 + rand() % (N - 1);
    if (series[i]) {
      metrics_series_remove(m, series[i]);
      series[i] = NULL;
    }
    char name[32];
    snprintf(name, sizeof name, "new%d", added);
    series[added++] = metrics_series_add(m, name, strlen(name), &err);
    assert_true(added < N + 1000);
  }
  assert_true(calls > 10);
  /* each name at most once per family; m0, never removed, once */
  for (int i = 0; i < added; i++) {
    char needle[64];
    snprintf(needle, sizeof needle, "{monitor=\"%s%d\",state=\"up\"}", i < N ? "m" : "new", i);
    assert_true(count(t, needle) <= 1);
  }
  assert_int_equal(count(t, "{monitor=\"m0\",state=\"up\"} 1\n"), 1);
  assert_int_equal(count(t, "# TYPE moonwatch_monitor_state gauge"), 1);
  free(t.data);
  metrics_free(m);
}

static void test_escaping(void **state) {
  (void)state;
  mw_metrics *m = metrics_new();
  const char *err;
  const char odd[] = "a\"b\\c\nd\0e";
  mw_metrics_series *s = metrics_series_add(m, odd, sizeof odd - 1, &err);
  assert_non_null(s);
  assert_null(metrics_series_add(m, odd, sizeof odd - 1, &err));
  assert_string_equal(err, "a series of this monitor exists already");
  assert_ptr_equal(metrics_series_find(m, odd, sizeof odd - 1), s);
  assert_null(metrics_series_find(m, odd, 3));
  const char *labels[] = {"l"};
  mw_metrics_family *f = metrics_family_add(m, MW_METRICS_GAUGE, "g", "back\\slash\nand \"quotes\"",
                                            labels, 1, NULL, 0, &err);
  const char *v[] = {"x\"\\\ny"};
  size_t lens[] = {5};
  metrics_sample_set(metrics_sample_get(f, v, lens), -0.5);
  text t = {0};
  render(m, (size_t)-1, &t);
  has(t, "{monitor=\"a\\\"b\\\\c\\nd\0e");
  has(t, "# HELP g back\\\\slash\\nand \"quotes\"\n");
  has(t, "g{l=\"x\\\"\\\\\\ny\"} -0.5\n");
  free(t.data);
  metrics_free(m);
}

static void test_names(void **state) {
  (void)state;
  assert_true(metrics_valid_name("moonwatch_x:y", 0));
  assert_false(metrics_valid_name("9x", 0));
  assert_false(metrics_valid_name("a-b", 0));
  assert_false(metrics_valid_name("", 0));
  assert_true(metrics_valid_name("notifier", 1));
  assert_false(metrics_valid_name("a:b", 1));
  assert_false(metrics_valid_name("__x", 1));
  mw_metrics *m = metrics_new();
  const char *err;
  assert_null(metrics_family_add(m, MW_METRICS_GAUGE, "probe_success", "", NULL, 0, NULL, 0, &err));
  assert_string_equal(err, "a family of this name exists already");
  const char *dup[] = {"a", "a"};
  assert_null(metrics_family_add(m, MW_METRICS_GAUGE, "x", "", dup, 2, NULL, 0, &err));
  double bad[] = {1, 1};
  assert_null(metrics_family_add(m, MW_METRICS_HISTOGRAM, "h", "", NULL, 0, bad, 2, &err));
  metrics_free(m);
}

static void test_numbers(void **state) {
  (void)state;
  mw_metrics *m = metrics_new();
  const char *err;
  const char *labels[] = {"k"};
  mw_metrics_family *f = metrics_family_add(m, MW_METRICS_GAUGE, "n", "", labels, 1, NULL, 0, &err);
  const char *keys[] = {"a", "b", "c", "d", "e", "f"};
  double values[] = {0.1, 1e300, -3, 1.0 / 0.0, 0.0 / 0.0, 1e15};
  for (int i = 0; i < 6; i++) {
    size_t one = 1;
    metrics_sample_set(metrics_sample_get(f, &keys[i], &one), values[i]);
  }
  text t = {0};
  render(m, (size_t)-1, &t);
  has(t, "n{k=\"a\"} 0.1\n");
  has(t, "n{k=\"b\"} 1e+300\n");
  has(t, "n{k=\"c\"} -3\n");
  has(t, "n{k=\"d\"} +Inf\n");
  has(t, "n{k=\"e\"} NaN\n");
  has(t, "n{k=\"f\"} 1e+15\n");
  free(t.data);
  metrics_free(m);
}

static int collected;

static void collector(mw_metrics *m, void *data) {
  (void)data;
  collected++;
  mw_metrics_family *f = metrics_family_find(m, "c_total");
  metrics_sample_add(metrics_sample_get(f, NULL, NULL), 2);
}

/* Collectors run once per render, after their families were zeroed; a
 * collector outliving its registry is unlinked. */
static void test_collectors(void **state) {
  (void)state;
  mw_metrics *m = metrics_new();
  const char *err;
  mw_metrics_family *f =
      metrics_family_add(m, MW_METRICS_COUNTER, "c_total", "", NULL, 0, NULL, 0, &err);
  metrics_family_collected(f);
  mw_metrics_collector a, b;
  metrics_collector_add(m, &a, collector, NULL);
  metrics_collector_add(m, &b, collector, NULL);
  text t = {0};
  render(m, 10, &t);
  assert_int_equal(collected, 2);
  has(t, "c_total 4\n");
  metrics_collector_remove(&a);
  t.len = 0;
  render(m, (size_t)-1, &t);
  assert_int_equal(collected, 3);
  has(t, "c_total 2\n");
  metrics_free(m);
  assert_null(b.m);
  metrics_collector_remove(&b);
  free(t.data);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_budgets),  cmocka_unit_test(test_add_remove_between_calls),
      cmocka_unit_test(test_escaping), cmocka_unit_test(test_names),
      cmocka_unit_test(test_numbers),  cmocka_unit_test(test_collectors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
