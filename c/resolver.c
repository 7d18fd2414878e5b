/* L3: name resolution with c-ares: one channel per loop (dns_channel.c puts
 * it on the loop), and a small TTL cache of answers.
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
#include "dns_channel.h"
#include "resolver.h"

#define ADDRS_MAX 8

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
  mw_dns_channel chan; /* chan.live: lookups started and not cancelled */
  char *servers;       /* csv for ares_set_servers_ports_csv, or NULL */
  int timeout_ms, tries;
  char error[256]; /* the reason of the last lookup that failed at once */
  mw_hook closer;
  mw_dns_cache cache;
};

static const char resolver_key = 'R';

const char *resolver_cached(mw_resolver *r, const char *host) {
  return dns_cache_get(&r->cache, host, uv_now(&r->loop->uv));
}

const char *resolver_servers(const mw_resolver *r) {
  return r->servers;
}

static int resolver_open_channel(mw_resolver *r, const char **error) {
  struct ares_options opts;
  memset(&opts, 0, sizeof opts);
  opts.timeout = r->timeout_ms;
  opts.tries = r->tries;
  return dns_channel_open(&r->chan, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES, r->servers,
                          error) == 0;
}

static void resolver_close(mw_loop *loop, void *data);

mw_resolver *resolver_get(mw_loop *loop, const char **error) {
  mw_resolver *found = loop_ext(loop, &resolver_key);
  if (found)
    return found;
  mw_resolver *r = calloc(1, sizeof *r);
  if (!r) {
    *error = "out of memory";
    return NULL;
  }
  r->loop = loop;
  r->timeout_ms = 2000;
  r->tries = 2;
  r->cache.enabled = 1;
  if (dns_channel_init(&r->chan, loop, error) != 0) {
    free(r);
    return NULL;
  }
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
    r->chan.live--;
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
  if (!r->chan.ok && !resolver_open_channel(r, error))
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
  r->chan.live++;
  struct ares_addrinfo_hints hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_flags = ARES_AI_NOSORT;
  q->starting = 1;
  ares_getaddrinfo(r->chan.channel, host, NULL, &hints, query_done, q);
  q->starting = 0;
  dns_channel_rearm(&r->chan);
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
    query->resolver->chan.live--;
    dns_channel_rearm(&query->resolver->chan);
  }
}

static void resolver_close(mw_loop *loop, void *data) {
  mw_resolver *r = data;
  dns_channel_close(&r->chan); /* runs pending callbacks with ARES_EDESTRUCTION */
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
  if (r->chan.live > 0)
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
  dns_channel_destroy(&r->chan);
  if (!resolver_open_channel(r, &error))
    return luaL_error(L, "core.dns_configure: %s", error);
  lua_pushboolean(L, 1);
  return 1;
}

void resolver_register(lua_State *L) {
  lua_pushcfunction(L, l_dns_configure);
  lua_setfield(L, -2, "dns_configure");
}
