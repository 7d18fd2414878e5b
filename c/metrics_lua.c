/* L4: the Lua side of the metrics registry.
 *
 *   core.metrics() -> registry, with moonwatch's global families made
 *   registry:monitor(name) -> series
 *   series:observe(up, duration_s[, status, content_length, redirects,
 *     resolve_s, connect_s, tls_s, processing_s, transfer_s, cert_expiry])
 *     (no status: a monitor that is not HTTP, probe_success and
 *     probe_duration_seconds only; cert_expiry nil: none)
 *   series:state("up"|"down"|"pending"|"maintenance"), series:remove()
 *   registry:gauge(name, help[, labelnames]) / registry:counter(...) -> family
 *   registry:family(name) -> an existing global family
 *   family:set(value, labelvalues...), family:add(...), family:value(...)
 *     (value: 0 for label values never set, which stay out of the text)
 *   registry:on_collect(fn): fn() runs at the start of every render
 *   registry:reloaded(ok[, time]): the config reload gauges
 *   registry:render() -> the exposition
 *
 * The process figures and the transfers in flight are collected here (the
 * second is request_lua.c's count); the dispatcher registers its own
 * (dispatch.c, d:metrics(registry)).
 */
#include <curl/curl.h>
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <uv.h>

#include "loop.h"
#include "metrics_lua.h"
#include "procstat.h"
#include "request_lua.h"

#ifndef MOONWATCH_VERSION
#define MOONWATCH_VERSION "dev"
#endif

#define REGISTRY_MT "moonwatch.metrics"
#define SERIES_MT "moonwatch.metrics.series"
#define FAMILY_MT "moonwatch.metrics.family"
#define LABELS_MAX 16

typedef struct {
  mw_metrics *m; /* NULL once collected */
  mw_loop *loop;
  lua_State *L; /* the stack of registry:render(), while it runs */
  mw_metrics_collector process, transfers, lua_collectors;
} registry_box;

typedef struct {
  mw_metrics_series *s; /* NULL once removed */
  registry_box *r;
} series_box;

typedef struct {
  mw_metrics_family *f;
  registry_box *r;
} family_box;

/* registry boxes -> their userdata, weak: how a collector finds its Lua
 * functions (the userdata's user value) without keeping it alive. */
static const char boxes_key = 'M';

static registry_box *check_registry(lua_State *L, int idx) {
  registry_box *r = luaL_checkudata(L, idx, REGISTRY_MT);
  if (!r->m)
    luaL_error(L, "metrics: the registry was collected");
  return r;
}

mw_metrics *metrics_lua_check(lua_State *L, int idx) {
  return check_registry(L, idx)->m;
}

static double now_unix(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Collectors */

static mw_metrics_sample *unlabelled(mw_metrics *m, const char *name) {
  mw_metrics_family *f = metrics_family_find(m, name);
  return f ? metrics_sample_get(f, NULL, NULL) : NULL;
}

static void set_unlabelled(mw_metrics *m, const char *name, double v) {
  mw_metrics_sample *s = unlabelled(m, name);
  if (s && v >= 0)
    metrics_sample_set(s, v);
}

static void collect_process(mw_metrics *m, void *data) {
  (void)data;
  mw_procstat p;
  if (!procstat_read(&p))
    return;
  set_unlabelled(m, "process_cpu_seconds_total", p.cpu_seconds);
  set_unlabelled(m, "process_resident_memory_bytes", p.resident_bytes);
  set_unlabelled(m, "process_virtual_memory_bytes", p.virtual_bytes);
  set_unlabelled(m, "process_open_fds", p.open_fds);
  set_unlabelled(m, "process_max_fds", p.max_fds);
  set_unlabelled(m, "process_start_time_seconds", p.start_time);
}

static void collect_transfers(mw_metrics *m, void *data) {
  registry_box *r = data;
  mw_metrics_sample *s = unlabelled(m, "moonwatch_http_transfers_in_flight");
  if (s && !r->loop->closed)
    metrics_sample_add(s, (double)request_lua_in_flight(r->loop));
}

/* The functions given to registry:on_collect, on render()'s stack or, for
 * a render from C (the HTTP server), on the loop's. */
static void collect_lua(mw_metrics *m, void *data) {
  (void)m;
  registry_box *r = data;
  lua_State *L = r->L ? r->L : r->loop->L;
  if (!L || !lua_checkstack(L, 4))
    return;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &boxes_key);
  if (lua_rawgetp(L, -1, r) != LUA_TUSERDATA || lua_getiuservalue(L, -1, 1) != LUA_TTABLE) {
    lua_settop(L, lua_gettop(L) - 3);
    return;
  }
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
      fprintf(stderr, "moonwatch: a metrics collector (registry:on_collect) failed: %s\n",
              lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 3);
}

/* The registry */

static mw_metrics_family *family_or_raise(lua_State *L, mw_metrics_family *f, const char *name,
                                          const char *error) {
  if (!f)
    luaL_error(L, "metrics: family '%s': %s", name, error);
  return f;
}

static void add_unlabelled(lua_State *L, mw_metrics *m, mw_metrics_type type, const char *name,
                           const char *help, int collected, double value) {
  const char *error = NULL;
  mw_metrics_family *f = family_or_raise(
      L, metrics_family_add(m, type, name, help, NULL, 0, NULL, 0, &error), name, error);
  mw_metrics_sample *s = metrics_sample_get(f, NULL, NULL);
  if (!s)
    luaL_error(L, "metrics: out of memory");
  metrics_sample_set(s, value);
  if (collected)
    metrics_family_collected(f);
}

/* Schedule lateness buckets, in seconds: from half a millisecond (a loop
 * keeping up) to 10 s (the dispatcher's own histogram ends there). */
static const double lateness_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};

static void add_families(lua_State *L, mw_metrics *m) {
  const char *error = NULL;
  static const char *const build_labels[] = {"version", "lua", "libcurl", "libuv"};
  mw_metrics_family *f = family_or_raise(
      L,
      metrics_family_add(m, MW_METRICS_GAUGE, "moonwatch_build_info",
                         "moonwatch's version and the versions of the libraries it runs on; "
                         "always 1.",
                         build_labels, 4, NULL, 0, &error),
      "moonwatch_build_info", error);
  const char *lua = LUA_VERSION_MAJOR "." LUA_VERSION_MINOR "." LUA_VERSION_RELEASE;
  const char *curl = curl_version_info(CURLVERSION_NOW)->version;
  const char *uv = uv_version_string();
  const char *values[] = {MOONWATCH_VERSION, lua, curl, uv};
  size_t lens[] = {strlen(values[0]), strlen(lua), strlen(curl), strlen(uv)};
  mw_metrics_sample *s = metrics_sample_get(f, values, lens);
  if (!s)
    luaL_error(L, "metrics: out of memory");
  metrics_sample_set(s, 1);
  add_unlabelled(L, m, MW_METRICS_GAUGE, "moonwatch_config_last_reload_successful",
                 "Whether the last configuration reload attempt was successful.", 0, 1);
  add_unlabelled(L, m, MW_METRICS_GAUGE, "moonwatch_config_last_reload_success_timestamp_seconds",
                 "Timestamp of the last successful configuration reload.", 0, now_unix());
  add_unlabelled(L, m, MW_METRICS_COUNTER, "moonwatch_ticks_skipped_total",
                 "Ticks of the schedule skipped: the monitor's check was still running, or the "
                 "loop fell a whole interval behind.",
                 1, 0);
  f = family_or_raise(
      L,
      metrics_family_add(m, MW_METRICS_HISTOGRAM, "moonwatch_schedule_lateness_seconds",
                         "How late checks started after their tick was due.", NULL, 0,
                         lateness_bounds, (int)(sizeof lateness_bounds / sizeof *lateness_bounds),
                         &error),
      "moonwatch_schedule_lateness_seconds", error);
  metrics_family_collected(f);
  add_unlabelled(L, m, MW_METRICS_GAUGE, "moonwatch_http_transfers_in_flight",
                 "HTTP requests in flight (one curl transfer each).", 1, 0);
  static const char *const notifier_outcome[] = {"notifier", "outcome"};
  family_or_raise(L,
                  metrics_family_add(m, MW_METRICS_COUNTER, "moonwatch_notifications_total",
                                     "Notifications by notifier and outcome: sent, retried "
                                     "(a failed attempt to be tried again), dropped_overflow "
                                     "(the outbox was full), dropped_max_age (retried too long).",
                                     notifier_outcome, 2, NULL, 0, &error),
                  "moonwatch_notifications_total", error);
  family_or_raise(L,
                  metrics_family_add(m, MW_METRICS_GAUGE, "moonwatch_notifications_queued",
                                     "Notifications waiting in a notifier's outbox or being "
                                     "delivered.",
                                     notifier_outcome, 1, NULL, 0, &error),
                  "moonwatch_notifications_queued", error);
  add_unlabelled(L, m, MW_METRICS_COUNTER, "process_cpu_seconds_total",
                 "Total user and system CPU time spent in seconds.", 1, 0);
  add_unlabelled(L, m, MW_METRICS_GAUGE, "process_resident_memory_bytes",
                 "Resident memory size in bytes.", 1, 0);
  add_unlabelled(L, m, MW_METRICS_GAUGE, "process_virtual_memory_bytes",
                 "Virtual memory size in bytes.", 1, 0);
  add_unlabelled(L, m, MW_METRICS_GAUGE, "process_open_fds", "Number of open file descriptors.", 1,
                 0);
  add_unlabelled(L, m, MW_METRICS_GAUGE, "process_max_fds",
                 "Maximum number of open file descriptors.", 1, 0);
  add_unlabelled(L, m, MW_METRICS_GAUGE, "process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.", 1, 0);
}

/* core.metrics() -> registry */
static int l_new(lua_State *L) {
  mw_loop *loop = loop_get(L);
  registry_box *r = lua_newuserdatauv(L, sizeof *r, 1);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, REGISTRY_MT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  r->loop = loop;
  r->m = metrics_new();
  if (!r->m)
    return luaL_error(L, "core.metrics: out of memory");
  add_families(L, r->m);
  metrics_collector_add(r->m, &r->process, collect_process, r);
  metrics_collector_add(r->m, &r->transfers, collect_transfers, r);
  metrics_collector_add(r->m, &r->lua_collectors, collect_lua, r);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &boxes_key);
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, r);
  lua_pop(L, 1);
  return 1;
}

static int l_gc(lua_State *L) {
  registry_box *r = luaL_checkudata(L, 1, REGISTRY_MT);
  metrics_free(r->m);
  r->m = NULL;
  return 0;
}

/* registry:monitor(name) -> series */
static int l_monitor(lua_State *L) {
  registry_box *r = check_registry(L, 1);
  size_t len;
  const char *name = luaL_checklstring(L, 2, &len);
  const char *error = NULL;
  mw_metrics_series *s = metrics_series_add(r->m, name, len, &error);
  if (!s)
    return luaL_error(L, "metrics: monitor '%s': %s", name, error);
  series_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->s = s;
  b->r = r;
  luaL_setmetatable(L, SERIES_MT);
  lua_pushvalue(L, 1); /* the registry lives as long as its handles */
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static int check_labels(lua_State *L, int idx, const char **names) {
  if (lua_isnoneornil(L, idx))
    return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)luaL_len(L, idx);
  if (n > LABELS_MAX)
    luaL_error(L, "metrics: at most %d label names", LABELS_MAX);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "metrics: label names must be strings, got %s", luaL_typename(L, -1));
    names[i] = lua_tostring(L, -1);
    lua_pop(L, 1); /* still in the table */
  }
  return n;
}

static int push_family(lua_State *L, registry_box *r, mw_metrics_family *f) {
  family_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->f = f;
  b->r = r;
  luaL_setmetatable(L, FAMILY_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static int new_family(lua_State *L, mw_metrics_type type) {
  registry_box *r = check_registry(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const char *help = luaL_checkstring(L, 3);
  const char *labels[LABELS_MAX];
  int n = check_labels(L, 4, labels);
  if (type == MW_METRICS_COUNTER) {
    size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 6, "_total") != 0)
      return luaL_error(L, "metrics: counter '%s': a counter's name ends in _total", name);
  }
  const char *error = NULL;
  mw_metrics_family *f = metrics_family_add(r->m, type, name, help, labels, n, NULL, 0, &error);
  family_or_raise(L, f, name, error);
  if (n == 0 && !metrics_sample_get(f, NULL, NULL))
    return luaL_error(L, "metrics: out of memory");
  return push_family(L, r, f);
}

static int l_gauge(lua_State *L) {
  return new_family(L, MW_METRICS_GAUGE);
}

static int l_counter(lua_State *L) {
  return new_family(L, MW_METRICS_COUNTER);
}

/* registry:family(name) -> family | nil */
static int l_family(lua_State *L) {
  registry_box *r = check_registry(L, 1);
  mw_metrics_family *f = metrics_family_find(r->m, luaL_checkstring(L, 2));
  if (!f || metrics_family_type(f) == MW_METRICS_HISTOGRAM) {
    lua_pushnil(L);
    return 1;
  }
  return push_family(L, r, f);
}

static int l_on_collect(lua_State *L) {
  check_registry(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
  return 0;
}

/* registry:reloaded(ok[, time]): as Prometheus's own, the timestamp is the
 * last success's. */
static int l_reloaded(lua_State *L) {
  registry_box *r = check_registry(L, 1);
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  int ok = lua_toboolean(L, 2);
  double t = luaL_optnumber(L, 3, now_unix());
  mw_metrics_sample *s = unlabelled(r->m, "moonwatch_config_last_reload_successful");
  if (s)
    metrics_sample_set(s, ok);
  s = unlabelled(r->m, "moonwatch_config_last_reload_success_timestamp_seconds");
  if (s && ok)
    metrics_sample_set(s, t);
  return 0;
}

static void write_buffer(void *ctx, const char *p, size_t n) {
  luaL_addlstring(ctx, p, n);
}

/* registry:render() -> the whole exposition */
static int l_render(lua_State *L) {
  registry_box *r = check_registry(L, 1);
  lua_settop(L, 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  mw_metrics_cursor c;
  memset(&c, 0, sizeof c);
  lua_State *outer = r->L;
  r->L = L;
  metrics_render(r->m, &c, (size_t)-1, write_buffer, &b);
  r->L = outer;
  luaL_pushresult(&b);
  return 1;
}

/* Series */

/* The metatable is the method's upvalue: observe runs for every check, and
 * luaL_checkudata would look it up by name each time. */
static series_box *check_series(lua_State *L) {
  series_box *b = lua_touserdata(L, 1);
  if (!b || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(1)))
    luaL_typeerror(L, 1, SERIES_MT);
  lua_pop(L, 1);
  if (!b->s || !b->r->m)
    luaL_error(L, "metrics: this monitor's series was removed");
  return b;
}

static const char *const observe_args[] = {
    "up",        "duration_s", "status",       "content_length", "redirects",  "resolve_s",
    "connect_s", "tls_s",      "processing_s", "transfer_s",     "cert_expiry"};

static double arg_number(lua_State *L, int idx, int required) {
  int isnum = 0;
  double v = lua_tonumberx(L, idx, &isnum);
  if (!isnum && (required || !lua_isnoneornil(L, idx)))
    luaL_error(L, "metrics: series:observe: %s must be a number, got %s", observe_args[idx - 2],
               luaL_typename(L, idx));
  return v;
}

static int l_observe(lua_State *L) {
  series_box *b = check_series(L);
  mw_metrics_probe p;
  p.up = lua_toboolean(L, 2);
  p.duration = arg_number(L, 3, 1);
  p.http = !lua_isnoneornil(L, 4);
  p.status = arg_number(L, 4, 0);
  p.content_length = arg_number(L, 5, 0);
  p.redirects = arg_number(L, 6, 0);
  for (int i = 0; i < MW_METRICS_PHASES; i++)
    p.phase[i] = arg_number(L, 7 + i, 0);
  p.has_cert = !lua_isnoneornil(L, 12);
  p.cert_expiry = arg_number(L, 12, 0);
  metrics_series_observe(b->s, &p);
  return 0;
}

static int l_state(lua_State *L) {
  static const char *const states[] = {"pending", "up", "down", "maintenance"};
  series_box *b = check_series(L);
  const char *st = lua_tostring(L, 2);
  for (int i = 0; st && i < MW_METRICS_STATES; i++)
    if (strcmp(st, states[i]) == 0) {
      metrics_series_state(b->s, (mw_metrics_state)i);
      return 0;
    }
  return luaL_error(L,
                    "metrics: series:state: the state must be \"up\", \"down\", "
                    "\"pending\" or \"maintenance\", got %s",
                    st ? lua_pushfstring(L, "'%s'", st) : luaL_typename(L, 2));
}

static int l_remove(lua_State *L) {
  series_box *b = luaL_checkudata(L, 1, SERIES_MT);
  if (b->s && b->r->m)
    metrics_series_remove(b->r->m, b->s);
  b->s = NULL;
  return 0;
}

/* Families */

static mw_metrics_sample *family_sample(lua_State *L, family_box *b, int first, int create) {
  int n = metrics_family_labels(b->f);
  int given = lua_gettop(L) - first + 1;
  if (given != n)
    luaL_error(L, "metrics: this family takes %d label values, got %d", n, given < 0 ? 0 : given);
  const char *values[LABELS_MAX];
  size_t lens[LABELS_MAX];
  for (int i = 0; i < n; i++) {
    if (lua_type(L, first + i) != LUA_TSTRING && lua_type(L, first + i) != LUA_TNUMBER)
      luaL_typeerror(L, first + i, "string");
    values[i] = lua_tolstring(L, first + i, &lens[i]);
  }
  mw_metrics_sample *s =
      create ? metrics_sample_get(b->f, values, lens) : metrics_sample_find(b->f, values, lens);
  if (!s && create)
    luaL_error(L, "metrics: out of memory");
  return s;
}

static family_box *check_family(lua_State *L) {
  family_box *b = luaL_checkudata(L, 1, FAMILY_MT);
  if (!b->r->m)
    luaL_error(L, "metrics: the registry was collected");
  return b;
}

static int l_set(lua_State *L) {
  family_box *b = check_family(L);
  double v = luaL_checknumber(L, 2);
  metrics_sample_set(family_sample(L, b, 3, 1), v);
  return 0;
}

static int l_add(lua_State *L) {
  family_box *b = check_family(L);
  double v = luaL_checknumber(L, 2);
  if (metrics_family_type(b->f) == MW_METRICS_COUNTER && !(v >= 0))
    return luaL_error(L, "metrics: a counter only goes up, got %f", v);
  metrics_sample_add(family_sample(L, b, 3, 1), v);
  return 0;
}

static int l_value(lua_State *L) {
  family_box *b = check_family(L);
  mw_metrics_sample *s = family_sample(L, b, 2, 0);
  lua_pushnumber(L, s ? metrics_sample_value(s) : 0); /* one never set is not written */
  return 1;
}

static void new_metatable(lua_State *L, const char *name, const luaL_Reg *methods,
                          lua_CFunction gc) {
  if (luaL_newmetatable(L, name)) {
    lua_newtable(L);
    lua_pushvalue(L, -2); /* the metatable, each method's upvalue (check_series) */
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__index");
    if (gc) {
      lua_pushcfunction(L, gc);
      lua_setfield(L, -2, "__gc");
    }
  }
  lua_pop(L, 1);
}

void metrics_lua_register(lua_State *L) {
  static const luaL_Reg registry_methods[] = {
      {"monitor", l_monitor},       {"gauge", l_gauge},
      {"counter", l_counter},       {"family", l_family},
      {"on_collect", l_on_collect}, {"reloaded", l_reloaded},
      {"render", l_render},         {NULL, NULL}};
  static const luaL_Reg series_methods[] = {
      {"observe", l_observe}, {"state", l_state}, {"remove", l_remove}, {NULL, NULL}};
  static const luaL_Reg family_methods[] = {
      {"set", l_set}, {"add", l_add}, {"value", l_value}, {NULL, NULL}};
  new_metatable(L, REGISTRY_MT, registry_methods, l_gc);
  new_metatable(L, SERIES_MT, series_methods, NULL);
  new_metatable(L, FAMILY_MT, family_methods, NULL);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &boxes_key) != LUA_TTABLE) {
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &boxes_key);
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "metrics");
}
