/* L0: the metrics registry and its Prometheus text exposition (0.0.4).
 *
 * A render goes family by family (HELP and TYPE once, then every sample of
 * it), and can stop after any series and resume from a cursor: a scrape of
 * 10,000 monitors is written over several loop turns. Series are kept in
 * registration order and numbered, so the cursor is a number, and a series
 * added or removed meanwhile is neither missed twice nor written twice.
 * Monitor names are escaped once, when registered; an observe writes a few
 * numbers into the series and allocates nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "metrics.h"

struct mw_metrics_series {
  uint64_t seq;  /* registration number: the cursor's position */
  uint32_t hash; /* of name */
  mw_metrics_series *chain;
  char *name; /* raw, then the escaped label value after it */
  size_t name_len;
  char *label;
  size_t label_len;
  int has_result;
  mw_metrics_state state;
  mw_metrics_probe last;
  uint64_t checks_up, checks_down;
};

struct mw_metrics_sample {
  uint32_t hash;
  char *labels; /* rendered: a="x",b="y" (also its key: escaping is one-to-one) */
  size_t labels_len;
  double value;
};

struct mw_metrics_family {
  mw_metrics_type type;
  int collected;
  char *name;
  char *help; /* escaped */
  char **labels;
  int nlabels;
  mw_metrics_sample **samples;
  size_t n, cap;
  /* a histogram's */
  double *bounds;
  int nbounds;
  uint64_t *buckets; /* nbounds + 1, not cumulative */
  double sum;
};

struct mw_metrics {
  mw_metrics_series **series; /* by seq, increasing */
  size_t n, cap;
  uint64_t next_seq;
  mw_metrics_series **table; /* by name, chained */
  size_t table_size;         /* a power of two */
  mw_metrics_family **families;
  size_t nfamilies, families_cap;
  mw_list collectors;
};

/* The per-monitor families, before the global ones. */
enum {
  F_SUCCESS,
  F_DURATION,
  F_STATUS,
  F_LENGTH,
  F_REDIRECTS,
  F_PHASES,
  F_CERT,
  F_STATE,
  F_CHECKS,
  F_PER_MONITOR
};

static const struct {
  const char *name, *type, *help;
} per_monitor[F_PER_MONITOR] = {
    {"probe_success", "gauge", "Whether the monitor's last check succeeded (1) or failed (0)."},
    {"probe_duration_seconds", "gauge", "How long the monitor's last check took, in seconds."},
    {"probe_http_status_code", "gauge",
     "HTTP status of the last check's response, 0 when none came."},
    {"probe_http_content_length", "gauge", "Body bytes of the last check's response."},
    {"probe_http_redirects", "gauge", "Redirects the last check followed."},
    {"probe_http_duration_seconds", "gauge",
     "Duration of each phase of the last check's HTTP request (its last hop), in seconds."},
    {"probe_ssl_earliest_cert_expiry", "gauge",
     "Earliest notAfter of the certificates the last check's TLS peer sent, in Unix time."},
    {"moonwatch_monitor_state", "gauge", "The monitor's state: 1 for the current one, else 0."},
    {"moonwatch_checks_total", "counter", "Checks of the monitor, by result."},
};

static const char *const phase_names[MW_METRICS_PHASES] = {"resolve", "connect", "tls",
                                                           "processing", "transfer"};
static const char *const state_names[MW_METRICS_STATES] = {"pending", "up", "down", "maintenance"};

/* Escaping */

/* A label value's escapes: backslash, double quote, line feed. help: HELP
 * text's (backslash and line feed only). Returns the length; writes to out
 * when it is not NULL (at most twice len bytes). */
static size_t escape(const char *s, size_t len, char *out, int help) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    const char *e = NULL;
    if (c == '\\')
      e = "\\\\";
    else if (c == '\n')
      e = "\\n";
    else if (c == '"' && !help)
      e = "\\\"";
    if (e) {
      if (out) {
        out[n] = e[0];
        out[n + 1] = e[1];
      }
      n += 2;
    } else {
      if (out)
        out[n] = c;
      n++;
    }
  }
  return n;
}

static char *escaped_copy(const char *s, size_t len, int help, size_t *out_len) {
  size_t n = escape(s, len, NULL, help);
  char *p = malloc(n + 1);
  if (!p)
    return NULL;
  escape(s, len, p, help);
  p[n] = '\0';
  if (out_len)
    *out_len = n;
  return p;
}

int metrics_valid_name(const char *name, int label) {
  if (!name || !*name)
    return 0;
  if (label && name[0] == '_' && name[1] == '_')
    return 0;
  for (const char *c = name; *c; c++) {
    int alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_';
    int digit = *c >= '0' && *c <= '9';
    if (!alpha && !(c > name && digit) && !(!label && *c == ':'))
      return 0;
  }
  return 1;
}

/* Registry */

mw_metrics *metrics_new(void) {
  mw_metrics *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  m->table_size = 64;
  m->table = calloc(m->table_size, sizeof *m->table);
  if (!m->table) {
    free(m);
    return NULL;
  }
  list_init(&m->collectors);
  return m;
}

static void family_free(mw_metrics_family *f) {
  for (size_t i = 0; i < f->n; i++) {
    free(f->samples[i]->labels);
    free(f->samples[i]);
  }
  for (int i = 0; i < f->nlabels; i++)
    free(f->labels[i]);
  free(f->labels);
  free(f->samples);
  free(f->bounds);
  free(f->buckets);
  free(f->name);
  free(f->help);
  free(f);
}

void metrics_free(mw_metrics *m) {
  if (!m)
    return;
  mw_list *node, *next;
  list_each(node, next, &m->collectors) {
    list_remove(node);
    list_entry(node, mw_metrics_collector, link)->m = NULL;
  }
  for (size_t i = 0; i < m->n; i++) {
    free(m->series[i]->name);
    free(m->series[i]);
  }
  for (size_t i = 0; i < m->nfamilies; i++)
    family_free(m->families[i]);
  free(m->series);
  free(m->table);
  free(m->families);
  free(m);
}

/* Series */

static mw_metrics_series **bucket_of(const mw_metrics *m, uint32_t hash) {
  return &m->table[hash & (m->table_size - 1)];
}

mw_metrics_series *metrics_series_find(const mw_metrics *m, const char *name, size_t len) {
  uint32_t h = hash_bytes(name, len);
  for (mw_metrics_series *s = *bucket_of(m, h); s; s = s->chain)
    if (s->hash == h && s->name_len == len && memcmp(s->name, name, len) == 0)
      return s;
  return NULL;
}

static int table_grow(mw_metrics *m) {
  size_t size = m->table_size * 2;
  mw_metrics_series **table = calloc(size, sizeof *table);
  if (!table)
    return 0;
  for (size_t i = 0; i < m->n; i++) {
    mw_metrics_series *s = m->series[i];
    mw_metrics_series **b = &table[s->hash & (size - 1)];
    s->chain = *b;
    *b = s;
  }
  free(m->table);
  m->table = table;
  m->table_size = size;
  return 1;
}

mw_metrics_series *metrics_series_add(mw_metrics *m, const char *name, size_t len,
                                      const char **error) {
  if (metrics_series_find(m, name, len)) {
    *error = "a series of this monitor exists already";
    return NULL;
  }
  *error = "out of memory";
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    mw_metrics_series **series = realloc(m->series, cap * sizeof *series);
    if (!series)
      return NULL;
    m->series = series;
    m->cap = cap;
  }
  if (m->n >= m->table_size && !table_grow(m))
    return NULL;
  mw_metrics_series *s = calloc(1, sizeof *s);
  size_t label_len = escape(name, len, NULL, 0);
  char *text = malloc(len + label_len + 2);
  if (!s || !text) {
    free(s);
    free(text);
    return NULL;
  }
  memcpy(text, name, len);
  text[len] = '\0';
  s->label = text + len + 1;
  escape(name, len, s->label, 0);
  s->label[label_len] = '\0';
  s->name = text;
  s->name_len = len;
  s->label_len = label_len;
  s->hash = hash_bytes(name, len);
  s->seq = m->next_seq++;
  s->state = MW_METRICS_PENDING;
  mw_metrics_series **b = bucket_of(m, s->hash);
  s->chain = *b;
  *b = s;
  m->series[m->n++] = s;
  *error = NULL;
  return s;
}

/* The position of the first series numbered seq or more. */
static size_t series_from(const mw_metrics *m, uint64_t seq) {
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (m->series[mid]->seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

void metrics_series_remove(mw_metrics *m, mw_metrics_series *s) {
  for (mw_metrics_series **p = bucket_of(m, s->hash); *p; p = &(*p)->chain)
    if (*p == s) {
      *p = s->chain;
      break;
    }
  size_t i = series_from(m, s->seq);
  /* Order kept (a cursor counts on it); removals are rare (a reload). */
  memmove(&m->series[i], &m->series[i + 1], (m->n - i - 1) * sizeof *m->series);
  m->n--;
  free(s->name);
  free(s);
}

/* Durations to whole nanoseconds: more than any clock here measures, and the
 * exposition then writes them without printf. */
static double to_ns(double v) {
  return fabs(v) < 9e6 ? nearbyint(v * 1e9) / 1e9 : v;
}

void metrics_series_observe(mw_metrics_series *s, const mw_metrics_probe *p) {
  s->last = *p;
  s->last.duration = to_ns(p->duration);
  for (int i = 0; i < MW_METRICS_PHASES; i++)
    s->last.phase[i] = to_ns(p->phase[i]);
  s->has_result = 1;
  if (p->up)
    s->checks_up++;
  else
    s->checks_down++;
}

void metrics_series_state(mw_metrics_series *s, mw_metrics_state state) {
  if (state < MW_METRICS_STATES)
    s->state = state;
}

size_t metrics_series_count(const mw_metrics *m) {
  return m->n;
}

/* Families */

mw_metrics_family *metrics_family_find(const mw_metrics *m, const char *name) {
  for (size_t i = 0; i < m->nfamilies; i++)
    if (strcmp(m->families[i]->name, name) == 0)
      return m->families[i];
  return NULL;
}

static int reserved_name(const char *name) {
  for (int i = 0; i < F_PER_MONITOR; i++)
    if (strcmp(per_monitor[i].name, name) == 0)
      return 1;
  return 0;
}

mw_metrics_family *metrics_family_add(mw_metrics *m, mw_metrics_type type, const char *name,
                                      const char *help, const char *const *labels, int nlabels,
                                      const double *bounds, int nbounds, const char **error) {
  if (!metrics_valid_name(name, 0)) {
    *error = "a metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*";
    return NULL;
  }
  if (reserved_name(name) || metrics_family_find(m, name)) {
    *error = "a family of this name exists already";
    return NULL;
  }
  for (int i = 0; i < nlabels; i++) {
    if (!metrics_valid_name(labels[i], 1) || (type == MW_METRICS_HISTOGRAM) ||
        strcmp(labels[i], "le") == 0) {
      *error = "a label name must match [a-zA-Z_][a-zA-Z0-9_]*, not start with __ and not "
               "be le (histograms take no labels)";
      return NULL;
    }
    for (int j = 0; j < i; j++)
      if (strcmp(labels[i], labels[j]) == 0) {
        *error = "a label name is given twice";
        return NULL;
      }
  }
  for (int i = 1; i < nbounds; i++)
    if (!(bounds[i] > bounds[i - 1])) {
      *error = "a histogram's bounds must increase";
      return NULL;
    }
  *error = "out of memory";
  if (m->nfamilies == m->families_cap) {
    size_t cap = m->families_cap ? m->families_cap * 2 : 16;
    mw_metrics_family **families = realloc(m->families, cap * sizeof *families);
    if (!families)
      return NULL;
    m->families = families;
    m->families_cap = cap;
  }
  mw_metrics_family *f = calloc(1, sizeof *f);
  if (!f)
    return NULL;
  f->type = type;
  f->name = strdup(name);
  f->help = escaped_copy(help ? help : "", help ? strlen(help) : 0, 1, NULL);
  f->labels = nlabels ? calloc((size_t)nlabels, sizeof *f->labels) : NULL;
  int ok = f->name && f->help && (f->labels || !nlabels);
  for (int i = 0; ok && i < nlabels; i++) {
    f->labels[i] = strdup(labels[i]);
    ok = f->labels[i] != NULL;
    f->nlabels = i + 1;
  }
  if (ok && type == MW_METRICS_HISTOGRAM) {
    f->nbounds = nbounds;
    f->bounds = malloc((size_t)(nbounds ? nbounds : 1) * sizeof *f->bounds);
    f->buckets = calloc((size_t)nbounds + 1, sizeof *f->buckets);
    ok = f->bounds && f->buckets;
    if (ok && nbounds)
      memcpy(f->bounds, bounds, (size_t)nbounds * sizeof *bounds);
  }
  if (!ok) {
    family_free(f);
    return NULL;
  }
  m->families[m->nfamilies++] = f;
  *error = NULL;
  return f;
}

int metrics_family_labels(const mw_metrics_family *f) {
  return f->nlabels;
}

mw_metrics_type metrics_family_type(const mw_metrics_family *f) {
  return f->type;
}

void metrics_family_collected(mw_metrics_family *f) {
  f->collected = 1;
}

static mw_metrics_sample *sample_lookup(mw_metrics_family *f, const char *const *values,
                                        const size_t *lens, int create) {
  size_t len = 0;
  for (int i = 0; i < f->nlabels; i++)
    len += strlen(f->labels[i]) + 4 + escape(values[i], lens[i], NULL, 0);
  char stack[512];
  char *key = len < sizeof stack ? stack : malloc(len + 1);
  if (!key)
    return NULL;
  size_t n = 0;
  for (int i = 0; i < f->nlabels; i++) {
    if (i)
      key[n++] = ',';
    size_t l = strlen(f->labels[i]);
    memcpy(key + n, f->labels[i], l);
    n += l;
    key[n++] = '=';
    key[n++] = '"';
    n += escape(values[i], lens[i], key + n, 0);
    key[n++] = '"';
  }
  key[n] = '\0';
  uint32_t h = hash_bytes(key, n);
  mw_metrics_sample *s = NULL;
  for (size_t i = 0; i < f->n && !s; i++)
    if (f->samples[i]->hash == h && f->samples[i]->labels_len == n &&
        memcmp(f->samples[i]->labels, key, n) == 0)
      s = f->samples[i];
  if (!s && create && f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 8;
    mw_metrics_sample **samples = realloc(f->samples, cap * sizeof *samples);
    if (samples) {
      f->samples = samples;
      f->cap = cap;
    }
  }
  if (!s && create && f->n < f->cap && (s = calloc(1, sizeof *s))) {
    s->labels = malloc(n + 1);
    if (s->labels) {
      memcpy(s->labels, key, n + 1);
      s->labels_len = n;
      s->hash = h;
      f->samples[f->n++] = s;
    } else {
      free(s);
      s = NULL;
    }
  }
  if (key != stack)
    free(key);
  return s;
}

mw_metrics_sample *metrics_sample_get(mw_metrics_family *f, const char *const *values,
                                      const size_t *lens) {
  return sample_lookup(f, values, lens, 1);
}

mw_metrics_sample *metrics_sample_find(mw_metrics_family *f, const char *const *values,
                                       const size_t *lens) {
  return sample_lookup(f, values, lens, 0);
}

void metrics_sample_set(mw_metrics_sample *s, double v) {
  s->value = v;
}

void metrics_sample_add(mw_metrics_sample *s, double v) {
  s->value += v;
}

double metrics_sample_value(const mw_metrics_sample *s) {
  return s->value;
}

int metrics_histogram_bounds(const mw_metrics_family *f, const double **bounds) {
  *bounds = f->bounds;
  return f->nbounds;
}

void metrics_histogram_add(mw_metrics_family *f, const uint64_t *buckets, double sum) {
  for (int i = 0; i <= f->nbounds; i++)
    f->buckets[i] += buckets[i];
  f->sum += sum;
}

/* Collectors */

void metrics_collector_add(mw_metrics *m, mw_metrics_collector *c, mw_metrics_collect_fn fn,
                           void *data) {
  c->m = m;
  c->fn = fn;
  c->data = data;
  list_push_back(&m->collectors, &c->link);
}

void metrics_collector_remove(mw_metrics_collector *c) {
  list_remove(&c->link);
  c->m = NULL;
}

static void collect(mw_metrics *m) {
  for (size_t i = 0; i < m->nfamilies; i++) {
    mw_metrics_family *f = m->families[i];
    if (!f->collected)
      continue;
    for (size_t j = 0; j < f->n; j++)
      f->samples[j]->value = 0;
    if (f->buckets)
      memset(f->buckets, 0, ((size_t)f->nbounds + 1) * sizeof *f->buckets);
    f->sum = 0;
  }
  mw_list *node, *next;
  list_each(node, next, &m->collectors) {
    mw_metrics_collector *c = list_entry(node, mw_metrics_collector, link);
    c->fn(m, c->data);
  }
}

/* Rendering */

typedef struct {
  mw_metrics_write_fn write;
  void *ctx;
  size_t total, len;
  char buf[16384];
} out;

static void out_flush(out *o) {
  if (o->len)
    o->write(o->ctx, o->buf, o->len);
  o->len = 0;
}

static void put(out *o, const char *p, size_t n) {
  o->total += n;
  if (o->len + n > sizeof o->buf) {
    out_flush(o);
    if (n > sizeof o->buf) {
      o->write(o->ctx, p, n);
      return;
    }
  }
  memcpy(o->buf + o->len, p, n);
  o->len += n;
}

#define PUT_LITERAL(o, s) put((o), (s), sizeof(s) - 1)

static void put_str(out *o, const char *s) {
  put(o, s, strlen(s));
}

/* Go's and Prometheus's spellings of the special values; integers without
 * an exponent; anything else in the fewest digits that read back the same. */
static void put_number(out *o, double v) {
  char b[40];
  int n;
  if (isnan(v)) {
    PUT_LITERAL(o, "NaN");
    return;
  }
  if (isinf(v)) {
    if (v > 0)
      PUT_LITERAL(o, "+Inf");
    else
      PUT_LITERAL(o, "-Inf");
    return;
  }
  if (v == floor(v) && fabs(v) < 1e15) {
    long long i = (long long)v;
    char *p = b + sizeof b;
    unsigned long long u = i < 0 ? (unsigned long long)-i : (unsigned long long)i;
    do {
      *--p = (char)('0' + u % 10);
      u /= 10;
    } while (u);
    if (i < 0)
      *--p = '-';
    put(o, p, (size_t)(b + sizeof b - p));
    return;
  }
  if (fabs(v) < 9e6) {
    /* A whole number of nanoseconds (a duration, rounded so when observed):
     * integer digits only. m / 1e9 is v exactly, so the decimal m * 10^-9
     * reads back as v. */
    long long ns = llround(v * 1e9);
    if ((double)ns / 1e9 == v) {
      char *p = b + sizeof b;
      unsigned long long u = ns < 0 ? (unsigned long long)-ns : (unsigned long long)ns;
      unsigned long long frac = u % 1000000000ull, whole = u / 1000000000ull;
      int digits = 9;
      while (frac % 10 == 0) { /* frac is not 0: v is not whole */
        frac /= 10;
        digits--;
      }
      for (; digits > 0; digits--) {
        *--p = (char)('0' + frac % 10);
        frac /= 10;
      }
      *--p = '.';
      do {
        *--p = (char)('0' + whole % 10);
        whole /= 10;
      } while (whole);
      if (ns < 0)
        *--p = '-';
      put(o, p, (size_t)(b + sizeof b - p));
      return;
    }
  }
  for (int digits = 15; digits <= 17; digits++) {
    n = snprintf(b, sizeof b, "%.*g", digits, v);
    if (digits == 17 || strtod(b, NULL) == v)
      break;
  }
  put(o, b, (size_t)n);
}

static void put_header(out *o, const char *name, const char *type, const char *help) {
  PUT_LITERAL(o, "# HELP ");
  put_str(o, name);
  PUT_LITERAL(o, " ");
  put_str(o, help);
  PUT_LITERAL(o, "\n# TYPE ");
  put_str(o, name);
  PUT_LITERAL(o, " ");
  put_str(o, type);
  PUT_LITERAL(o, "\n");
}

/* name{monitor="..."[,extra="value"]} value */
static void put_monitor_sample(out *o, const char *name, const mw_metrics_series *s,
                               const char *extra, const char *value, double v) {
  put_str(o, name);
  PUT_LITERAL(o, "{monitor=\"");
  put(o, s->label, s->label_len);
  if (extra) {
    PUT_LITERAL(o, "\",");
    put_str(o, extra);
    PUT_LITERAL(o, "=\"");
    put_str(o, value);
  }
  PUT_LITERAL(o, "\"} ");
  put_number(o, v);
  PUT_LITERAL(o, "\n");
}

/* The series' lines in family f; returns whether it wrote any. */
static int put_series(out *o, int f, const mw_metrics_series *s) {
  const char *name = per_monitor[f].name;
  const mw_metrics_probe *p = &s->last;
  if (f == F_STATE) {
    for (int i = 0; i < MW_METRICS_STATES; i++)
      put_monitor_sample(o, name, s, "state", state_names[i], s->state == (mw_metrics_state)i);
    return 1;
  }
  if (f == F_CHECKS) {
    put_monitor_sample(o, name, s, "result", "up", (double)s->checks_up);
    put_monitor_sample(o, name, s, "result", "down", (double)s->checks_down);
    return 1;
  }
  /* A monitor not checked yet has no probe_* samples (see README). */
  if (!s->has_result || (f >= F_STATUS && !p->http) || (f == F_CERT && !p->has_cert))
    return 0;
  switch (f) {
  case F_SUCCESS:
    put_monitor_sample(o, name, s, NULL, NULL, p->up ? 1 : 0);
    break;
  case F_DURATION:
    put_monitor_sample(o, name, s, NULL, NULL, p->duration);
    break;
  case F_STATUS:
    put_monitor_sample(o, name, s, NULL, NULL, p->status);
    break;
  case F_LENGTH:
    put_monitor_sample(o, name, s, NULL, NULL, p->content_length);
    break;
  case F_REDIRECTS:
    put_monitor_sample(o, name, s, NULL, NULL, p->redirects);
    break;
  case F_PHASES:
    for (int i = 0; i < MW_METRICS_PHASES; i++)
      put_monitor_sample(o, name, s, "phase", phase_names[i], p->phase[i]);
    break;
  default: /* F_CERT */
    put_monitor_sample(o, name, s, NULL, NULL, p->cert_expiry);
  }
  return 1;
}

static const char *type_name(mw_metrics_type t) {
  return t == MW_METRICS_COUNTER ? "counter" : t == MW_METRICS_GAUGE ? "gauge" : "histogram";
}

static void put_histogram(out *o, const mw_metrics_family *f) {
  uint64_t cum = 0;
  for (int i = 0; i <= f->nbounds; i++) {
    cum += f->buckets[i];
    put_str(o, f->name);
    PUT_LITERAL(o, "_bucket{le=\"");
    if (i < f->nbounds)
      put_number(o, f->bounds[i]);
    else
      PUT_LITERAL(o, "+Inf");
    PUT_LITERAL(o, "\"} ");
    put_number(o, (double)cum);
    PUT_LITERAL(o, "\n");
  }
  put_str(o, f->name);
  PUT_LITERAL(o, "_sum ");
  put_number(o, f->sum);
  PUT_LITERAL(o, "\n");
  put_str(o, f->name);
  PUT_LITERAL(o, "_count ");
  put_number(o, (double)cum);
  PUT_LITERAL(o, "\n");
}

static void put_sample(out *o, const mw_metrics_family *f, const mw_metrics_sample *s) {
  put_str(o, f->name);
  if (s->labels_len) {
    PUT_LITERAL(o, "{");
    put(o, s->labels, s->labels_len);
    PUT_LITERAL(o, "}");
  }
  PUT_LITERAL(o, " ");
  put_number(o, s->value);
  PUT_LITERAL(o, "\n");
}

int metrics_render(mw_metrics *m, mw_metrics_cursor *c, size_t budget, mw_metrics_write_fn write,
                   void *ctx) {
  out o;
  o.write = write;
  o.ctx = ctx;
  o.total = 0;
  o.len = 0;
  if (!c->begun) {
    collect(m);
    c->begun = 1;
  }
  int wrote = 0;
  while (c->family < F_PER_MONITOR + m->nfamilies) {
    if (wrote && o.total >= budget) {
      out_flush(&o);
      return 0;
    }
    int per = c->family < F_PER_MONITOR;
    const mw_metrics_family *f = per ? NULL : m->families[c->family - F_PER_MONITOR];
    if (!c->started) {
      if (per)
        put_header(&o, per_monitor[c->family].name, per_monitor[c->family].type,
                   per_monitor[c->family].help);
      else
        put_header(&o, f->name, type_name(f->type), f->help);
      c->started = 1;
      c->next = 0;
      wrote = 1;
      continue;
    }
    int done;
    if (per) {
      size_t i = series_from(m, c->next);
      done = i == m->n;
      if (!done) {
        wrote |= put_series(&o, (int)c->family, m->series[i]);
        c->next = m->series[i]->seq + 1;
      }
    } else if (f->type == MW_METRICS_HISTOGRAM) {
      done = c->next > 0;
      if (!done) {
        put_histogram(&o, f);
        c->next = 1;
        wrote = 1;
      }
    } else {
      done = c->next >= f->n;
      if (!done) {
        put_sample(&o, f, f->samples[c->next++]);
        wrote = 1;
      }
    }
    if (done) {
      c->family++;
      c->started = 0;
    }
  }
  out_flush(&o);
  return 1;
}
