/* L0: the metrics registry and its Prometheus text exposition (0.0.4).
 *
 * Per-monitor series (probe_*, moonwatch_monitor_state, moonwatch_checks_total)
 * sit in one array ordered by registration; global families (gauges,
 * counters, one histogram shape) hold samples keyed by their label values.
 * Collectors registered by the code that owns a figure (the dispatcher, the
 * transfers, the process) refresh their families at the start of each
 * render, so this file reads no one's state itself.
 */
#ifndef MW_METRICS_H
#define MW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "list.h"

typedef struct mw_metrics mw_metrics;
typedef struct mw_metrics_series mw_metrics_series;
typedef struct mw_metrics_family mw_metrics_family;
typedef struct mw_metrics_sample mw_metrics_sample;

typedef enum { MW_METRICS_GAUGE, MW_METRICS_COUNTER, MW_METRICS_HISTOGRAM } mw_metrics_type;

typedef enum {
  MW_METRICS_PENDING,
  MW_METRICS_UP,
  MW_METRICS_DOWN,
  MW_METRICS_MAINTENANCE,
  MW_METRICS_STATES
} mw_metrics_state;

/* The phases of probe_http_duration_seconds, in blackbox_exporter's sense. */
enum {
  MW_METRICS_RESOLVE,
  MW_METRICS_CONNECT,
  MW_METRICS_TLS,
  MW_METRICS_PROCESSING,
  MW_METRICS_TRANSFER,
  MW_METRICS_PHASES
};

/* What one check measured. http: status and the fields after it are set (an
 * HTTP monitor); has_cert: cert_expiry is set (Unix time). */
typedef struct {
  int up;
  int http;
  int has_cert;
  double duration;
  double status, content_length, redirects;
  double phase[MW_METRICS_PHASES];
  double cert_expiry;
} mw_metrics_probe;

/* Where a render stands between calls: zero it to start one. It counts
 * positions (a family's index, a series' registration number, a sample's
 * index), never pointers, so monitors added or removed between two calls
 * are neither a crash nor a duplicate. */
typedef struct {
  uint32_t family;  /* the family being written */
  uint32_t started; /* its HELP and TYPE are written */
  uint32_t begun;   /* the collectors ran */
  uint64_t next;    /* the first series number or sample index still to write */
} mw_metrics_cursor;

typedef void (*mw_metrics_write_fn)(void *ctx, const char *p, size_t n);

/* A collector sets the figures it owns, at the start of each render (the
 * families it set with metrics_family_collected were zeroed just before, so
 * several collectors may add into one). */
typedef void (*mw_metrics_collect_fn)(mw_metrics *m, void *data);

typedef struct {
  mw_list link;
  mw_metrics *m; /* NULL once it or the registry is gone */
  mw_metrics_collect_fn fn;
  void *data;
} mw_metrics_collector;

mw_metrics *metrics_new(void);
/* Frees the registry, its series and families; the collectors still
 * registered are unlinked (their m becomes NULL). */
void metrics_free(mw_metrics *m);

/* A new series for the monitor named name (any bytes; escaped once here).
 * NULL and *error when the name is taken or memory is out. */
mw_metrics_series *metrics_series_add(mw_metrics *m, const char *name, size_t len,
                                      const char **error);
void metrics_series_remove(mw_metrics *m, mw_metrics_series *s);
mw_metrics_series *metrics_series_find(const mw_metrics *m, const char *name, size_t len);
/* One check's result: the probe_* values and the checks counter. */
void metrics_series_observe(mw_metrics_series *s, const mw_metrics_probe *p);
void metrics_series_state(mw_metrics_series *s, mw_metrics_state state);
size_t metrics_series_count(const mw_metrics *m);

/* A global family; labels: its label names (none for a histogram). A
 * histogram takes nbounds upper bounds, increasing (the +Inf bucket is
 * implicit). NULL and *error for a bad or taken name, or out of memory. */
mw_metrics_family *metrics_family_add(mw_metrics *m, mw_metrics_type type, const char *name,
                                      const char *help, const char *const *labels, int nlabels,
                                      const double *bounds, int nbounds, const char **error);
mw_metrics_family *metrics_family_find(const mw_metrics *m, const char *name);
int metrics_family_labels(const mw_metrics_family *f);
mw_metrics_type metrics_family_type(const mw_metrics_family *f);
/* Zeroes the family's samples before each render's collectors run. */
void metrics_family_collected(mw_metrics_family *f);
/* The sample of these label values (as many as the family has labels),
 * made on first use. NULL when out of memory. */
mw_metrics_sample *metrics_sample_get(mw_metrics_family *f, const char *const *values,
                                      const size_t *lens);
/* The sample of these label values if it was made, else NULL. */
mw_metrics_sample *metrics_sample_find(mw_metrics_family *f, const char *const *values,
                                       const size_t *lens);
void metrics_sample_set(mw_metrics_sample *s, double v);
void metrics_sample_add(mw_metrics_sample *s, double v);
double metrics_sample_value(const mw_metrics_sample *s);
/* A histogram's one sample: adds count observations counted in buckets
 * (non-cumulative, one per bound and one past the last) and their sum. */
/* A histogram's bounds (returns their number). */
int metrics_histogram_bounds(const mw_metrics_family *f, const double **bounds);
void metrics_histogram_add(mw_metrics_family *f, const uint64_t *buckets, double sum);

void metrics_collector_add(mw_metrics *m, mw_metrics_collector *c, mw_metrics_collect_fn fn,
                           void *data);
void metrics_collector_remove(mw_metrics_collector *c);

/* Writes the exposition from *cursor on, about budget bytes at most (whole
 * lines, at least one series or sample per call), and returns 1 when it is
 * complete. A cursor starts zeroed; monitors added or removed between calls
 * neither crash nor duplicate a series. */
int metrics_render(mw_metrics *m, mw_metrics_cursor *cursor, size_t budget,
                   mw_metrics_write_fn write, void *ctx);

/* Checks a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or a label name
 * ([a-zA-Z_][a-zA-Z0-9_]*, not __-prefixed). */
int metrics_valid_name(const char *name, int label);

#endif
