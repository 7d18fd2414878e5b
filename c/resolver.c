/* L3: c-ares on libuv: one channel per loop, one registered fd per c-ares
 * socket, one timer for c-ares's timeouts, and a small TTL cache of answers.
 *
 * Debian's libcurl resolves on a thread per lookup and joins it on the loop
 * thread when a transfer is cancelled; resolving here and handing curl the
 * addresses (CURLOPT_RESOLVE) keeps a dead DNS server from stalling the loop.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "dns_cache.h"
#include "resolver.h"

#define ADDRS_MAX 8

/* A c-ares socket, watched through the loop's fd registry. */
typedef struct {
  mw_fd w;
  mw_resolver *r;
} dns_poll;

struct mw_dns_query {
  mw_resolver *resolver;
  mw_resolver_cb cb; /* NULL once cancelled */
  void *data;
  int starting; /* inside resolver_start: answers are handed back there */
  int sync_done;
  char *sync_addrs;
  char host[];
};

struct mw_resolver {
  mw_loop *loop;
  ares_channel channel;
  int channel_ok;
  uv_timer_t *timer;
  int live_queries; /* started and not cancelled */
  char *servers;    /* csv for ares_set_servers_ports_csv, or NULL */
  int timeout_ms, tries;
  char error[256]; /* the reason of the last lookup that failed at once */
  mw_hook closer;
  mw_dns_cache cache;
};

static const char resolver_key = 'R';

const char *resolver_cached(mw_resolver *r, const char *host) {
  return dns_cache_get(&r->cache, host, uv_now(&r->loop->uv));
}

static void timer_free(uv_handle_t *handle) {
  free(handle);
}

static void poll_free(mw_fd *w) {
  free(w); /* the first member of its dns_poll */
}

/* Cancelled queries still run inside c-ares until they time out; they must
 * not keep the loop alive, so the timer holds a reference only while a live
 * query waits. */
static void resolver_on_timer(uv_timer_t *timer);

static void resolver_rearm(mw_resolver *r) {
  struct timeval tv, *tvp = ares_timeout(r->channel, NULL, &tv);
  if (!tvp) {
    uv_timer_stop(r->timer);
    return;
  }
  uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)(tvp->tv_usec + 999) / 1000;
  uv_timer_start(r->timer, resolver_on_timer, ms ? ms : 1, 0);
  if (r->live_queries > 0)
    uv_ref((uv_handle_t *)r->timer);
  else
    uv_unref((uv_handle_t *)r->timer);
}

static void resolver_on_timer(uv_timer_t *timer) {
  mw_resolver *r = timer->data;
  ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  if (r->channel_ok)
    resolver_rearm(r);
}

static void resolver_on_poll(mw_fd *w, int status, int events) {
  mw_resolver *r = ((dns_poll *)w)->r;
  ares_socket_t fd = w->fd;
  int readable = status < 0 || (events & UV_READABLE);
  int writable = status < 0 || (events & UV_WRITABLE);
  ares_process_fd(r->channel, readable ? fd : ARES_SOCKET_BAD, writable ? fd : ARES_SOCKET_BAD);
  if (r->channel_ok)
    resolver_rearm(r);
}

static void resolver_on_sock_state(void *data, ares_socket_t fd, int readable, int writable) {
  mw_resolver *r = data;
  mw_fd *w = loop_fd_find(r->loop, fd, r);
  if (!readable && !writable) {
    if (w)
      loop_fd_close(w);
    return;
  }
  if (!w) {
    dns_poll *p = calloc(1, sizeof *p);
    if (!p)
      return;
    p->r = r;
    loop_fd_forget(r->loop, fd); /* c-ares has just opened it */
    if (loop_fd_open(r->loop, &p->w, fd, r, resolver_on_poll, poll_free) != 0) {
      free(p);
      return;
    }
    w = &p->w;
    /* An idle c-ares socket must not keep the loop running; the timer and
     * the waiting request do that. */
    loop_fd_keep_alive(w, 0);
  }
  loop_fd_watch(w, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0));
}

static int resolver_open_channel(mw_resolver *r, const char **error) {
  struct ares_options opts;
  memset(&opts, 0, sizeof opts);
  opts.sock_state_cb = resolver_on_sock_state;
  opts.sock_state_cb_data = r;
  opts.timeout = r->timeout_ms;
  opts.tries = r->tries;
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  int rc = ares_init_options(&r->channel, &opts, mask);
  if (rc != ARES_SUCCESS) {
    *error = ares_strerror(rc);
    return 0;
  }
  if (r->servers) {
    rc = ares_set_servers_ports_csv(r->channel, r->servers);
    if (rc != ARES_SUCCESS) {
      *error = ares_strerror(rc);
      ares_destroy(r->channel);
      return 0;
    }
  }
  r->channel_ok = 1;
  return 1;
}

static void resolver_close(mw_loop *loop, void *data);

mw_resolver *resolver_get(mw_loop *loop, const char **error) {
  mw_resolver *found = loop_ext(loop, &resolver_key);
  if (found)
    return found;
  static int library_ready;
  if (!library_ready) {
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
      *error = ares_strerror(rc);
      return NULL;
    }
    library_ready = 1;
  }
  mw_resolver *r = calloc(1, sizeof *r);
  if (!r) {
    *error = "out of memory";
    return NULL;
  }
  r->loop = loop;
  r->timeout_ms = 2000;
  r->tries = 2;
  r->cache.enabled = 1;
  r->timer = malloc(sizeof *r->timer);
  if (!r->timer) {
    free(r);
    *error = "out of memory";
    return NULL;
  }
  uv_timer_init(&loop->uv, r->timer);
  r->timer->data = r;
  loop_set_ext(loop, &resolver_key, r);
  loop_at_close(loop, &r->closer, resolver_close, r);
  return r;
}

static void query_append_addr(char *out, size_t cap, size_t *len, const struct sockaddr *sa) {
  char ip[INET6_ADDRSTRLEN];
  int v6 = sa->sa_family == AF_INET6;
  const void *src = v6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                       : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
  if (!inet_ntop(sa->sa_family, src, ip, sizeof ip))
    return;
  size_t need = strlen(ip) + (v6 ? 2 : 0) + 1;
  if (*len + need + 1 > cap)
    return;
  *len += (size_t)snprintf(out + *len, cap - *len, "%s%s%s%s", *len ? "," : "", v6 ? "[" : "", ip,
                           v6 ? "]" : "");
}

static void query_done(void *arg, int status, int timeouts, struct ares_addrinfo *res) {
  (void)timeouts;
  mw_dns_query *q = arg;
  mw_resolver *r = q->resolver;
  if (q->cb)
    r->live_queries--;
  char addrs[ADDRS_MAX * (INET6_ADDRSTRLEN + 3)];
  size_t len = 0;
  int ttl = MW_DNS_CACHE_TTL_MAX_MS / 1000;
  if (status == ARES_SUCCESS && res) {
    /* IPv4 first: curl tries the first family first and falls back to the
     * other after its happy-eyeballs delay. */
    for (int family = 0; family < 2; family++) {
      int n = 0;
      for (struct ares_addrinfo_node *node = res->nodes; node && n < ADDRS_MAX;
           node = node->ai_next) {
        if ((family == 0) != (node->ai_family == AF_INET))
          continue;
        query_append_addr(addrs, sizeof addrs, &len, node->ai_addr);
        if (node->ai_ttl < ttl)
          ttl = node->ai_ttl;
        n++;
      }
    }
  }
  if (res)
    ares_freeaddrinfo(res);
  if (q->starting) {
    /* Answered inside ares_getaddrinfo (hosts file): resolver_start hands
     * the answer back, so the caller is never called back re-entrantly. */
    q->sync_done = 1;
    if (status == ARES_SUCCESS && len > 0)
      q->sync_addrs = strdup(addrs);
  }
  if (status == ARES_SUCCESS && len > 0)
    dns_cache_put(&r->cache, q->host, addrs, ttl, uv_now(&r->loop->uv));
  else
    snprintf(r->error, sizeof r->error, "could not resolve host '%s': %s", q->host,
             status == ARES_SUCCESS     ? "no address"
             : status == ARES_ENOTFOUND ? "not found"
             : status == ARES_ETIMEOUT  ? "the DNS server did not answer"
                                        : ares_strerror(status));
  if (q->starting)
    return;
  if (q->cb)
    q->cb(q->data, len > 0 && status == ARES_SUCCESS ? addrs : NULL, r->error);
  free(q);
}

/* Whether host is the special-use name or a name under it (RFC 6761). */
static int name_is_under(const char *host, const char *name) {
  size_t len = strlen(host), n = strlen(name);
  if (len && host[len - 1] == '.')
    len--;
  return (len == n && strncasecmp(host, name, n) == 0) ||
         (len > n && host[len - n - 1] == '.' && strncasecmp(host + len - n, name, n) == 0);
}

mw_dns_query *resolver_start(mw_resolver *r, const char *host, mw_resolver_cb cb, void *data,
                             char **addrs, const char **error) {
  *addrs = NULL;
  /* RFC 6761: .invalid never resolves and localhost is the loopback, with
   * or without a hosts file, so neither sends a query. */
  if (name_is_under(host, "invalid")) {
    snprintf(r->error, sizeof r->error, "could not resolve host '%s': not found", host);
    *error = r->error;
    return NULL;
  }
  if (name_is_under(host, "localhost")) {
    *addrs = strdup("127.0.0.1,[::1]");
    if (!*addrs)
      *error = "out of memory";
    return NULL;
  }
  if (!r->channel_ok && !resolver_open_channel(r, error))
    return NULL;
  size_t len = strlen(host);
  mw_dns_query *q = malloc(sizeof *q + len + 1);
  if (!q) {
    *error = "out of memory";
    return NULL;
  }
  memset(q, 0, sizeof *q);
  q->resolver = r;
  q->cb = cb;
  q->data = data;
  memcpy(q->host, host, len + 1);
  r->live_queries++;
  struct ares_addrinfo_hints hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_flags = ARES_AI_NOSORT;
  q->starting = 1;
  ares_getaddrinfo(r->channel, host, NULL, &hints, query_done, q);
  q->starting = 0;
  resolver_rearm(r);
  if (!q->sync_done)
    return q;
  *addrs = q->sync_addrs;
  if (!*addrs)
    *error = r->error;
  free(q);
  return NULL;
}

void resolver_cancel(mw_dns_query *query) {
  if (query->cb) {
    query->cb = NULL;
    query->resolver->live_queries--;
    resolver_rearm(query->resolver);
  }
}

static void resolver_close(mw_loop *loop, void *data) {
  mw_resolver *r = data;
  if (r->channel_ok) {
    r->channel_ok = 0;
    ares_destroy(r->channel); /* runs pending callbacks with ARES_EDESTRUCTION */
  }
  loop_fd_close_all(loop, r);
  uv_close((uv_handle_t *)r->timer, timer_free);
  dns_cache_clear(&r->cache);
  free(r->servers);
  free(r);
  loop_set_ext(loop, &resolver_key, NULL);
}

/* core.dns_configure{ servers = {"127.0.0.1:53", ...}, timeout = 2, tries = 2,
 * cache = true } */
static int l_dns_configure(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  mw_loop *loop = loop_get(L);
  const char *error = NULL;
  mw_resolver *r = resolver_get(loop, &error);
  if (!r)
    return luaL_error(L, "core.dns_configure: %s", error);
  if (r->live_queries > 0)
    return luaL_error(L, "core.dns_configure: lookups are in progress; configure the "
                         "resolver before starting checks");
  int have_servers = 0;
  if (lua_getfield(L, 1, "servers") != LUA_TNIL) {
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, -1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; i <= n; i++) {
      if (lua_geti(L, 2, i) != LUA_TSTRING)
        return luaL_error(L,
                          "core.dns_configure: servers[%d] must be a string like "
                          "'127.0.0.1:53'",
                          (int)i);
      if (i > 1)
        luaL_addchar(&b, ',');
      luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    have_servers = 1;
  }
  lua_Number timeout = 0;
  lua_Integer tries = 0;
  if (lua_getfield(L, 1, "timeout") != LUA_TNIL) {
    timeout = luaL_checknumber(L, -1);
    if (!(timeout > 0 && timeout <= 3600))
      return luaL_error(L, "core.dns_configure: timeout must be seconds in (0, 3600]");
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "tries") != LUA_TNIL) {
    tries = luaL_checkinteger(L, -1);
    if (tries < 1 || tries > 10)
      return luaL_error(L, "core.dns_configure: tries must be an integer from 1 to 10");
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "cache") != LUA_TNIL)
    r->cache.enabled = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (have_servers) {
    char *servers = strdup(lua_tostring(L, -1));
    if (!servers)
      return luaL_error(L, "core.dns_configure: out of memory");
    free(r->servers);
    r->servers = servers;
  }
  if (timeout > 0)
    r->timeout_ms = (int)(timeout * 1000);
  if (tries > 0)
    r->tries = (int)tries;
  dns_cache_clear(&r->cache);
  if (r->channel_ok) {
    r->channel_ok = 0;
    ares_destroy(r->channel);
  }
  if (!resolver_open_channel(r, &error))
    return luaL_error(L, "core.dns_configure: %s", error);
  lua_pushboolean(L, 1);
  return 1;
}

void resolver_register(lua_State *L) {
  lua_pushcfunction(L, l_dns_configure);
  lua_setfield(L, -2, "dns_configure");
}
