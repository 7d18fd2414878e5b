/* Request objects: the settings of a request, performed again and again.
 * Each perform borrows a curl easy handle from the transfer pool
 * (transfer.c); connections are shared and reused by the multi handle.
 *
 * A perform resolves the host with c-ares when needed, hands curl the
 * addresses, adds the transfer and yields the task. Redirects are followed
 * here rather than by curl, so a redirect to another host is resolved on the
 * loop too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <strings.h>

#include "http.h"

#define REQUEST_MT "moonwatch.request"
#define DEFAULT_TIMEOUT 30.0
#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_MAX_REDIRECTS 5

#ifndef MOONWATCH_VERSION
#define MOONWATCH_VERSION "dev"
#endif

static const char *const option_names[] = {"url",
                                           "method",
                                           "headers",
                                           "body",
                                           "timeout",
                                           "connect_timeout",
                                           "follow_redirects",
                                           "max_redirects",
                                           "verify",
                                           "ca_file",
                                           "max_body",
                                           "fresh_connection",
                                           "user_agent",
                                           "trust_redirects",
                                           "allow_insecure_redirects",
                                           NULL};

static char url_error[512];

/* URLs */

typedef struct {
  char *host;
  long port;
  int https, literal;
} url_parts;

/* A URL with a space or a control byte is refused rather than sent: curl
 * would send it as it is (or cut it at a NUL). The message shows the URL
 * with such bytes as \xNN. */
static const char *url_check_bytes(const char *url, size_t len) {
  size_t bad = len;
  for (size_t i = 0; i < len && bad == len; i++)
    if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f)
      bad = i;
  if (bad == len)
    return NULL;
  char shown[200];
  size_t n = 0;
  for (size_t i = 0; i < len && n + 5 < sizeof shown; i++) {
    unsigned char c = (unsigned char)url[i];
    if (c < ' ' || c == 0x7f)
      n += (size_t)snprintf(shown + n, sizeof shown - n, "\\x%02x", c);
    else
      shown[n++] = (char)c;
  }
  shown[n] = '\0';
  snprintf(url_error, sizeof url_error, "bad url '%s': %s at offset %zu (percent-encode it)", shown,
           url[bad] == ' ' ? "a space" : "a control character", bad);
  return url_error;
}

/* Splits url into scheme, host and port: NULL, or the reason it cannot be
 * used. On success parts->host is the caller's to free. */
static const char *url_parse(const char *url, url_parts *parts) {
  const char *error = url_check_bytes(url, strlen(url));
  if (error)
    return error;
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL;
  CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
  if (uc == CURLUE_OK)
    uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  if (uc == CURLUE_OK && strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
    snprintf(url_error, sizeof url_error, "unsupported scheme '%s' in '%s' (use http or https)",
             scheme, url);
    error = url_error;
  }
  if (!error && uc == CURLUE_OK)
    uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  if (!error && uc == CURLUE_OK)
    uc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
  if (!error && uc != CURLUE_OK) {
    snprintf(url_error, sizeof url_error, "bad url '%s': %s", url, curl_url_strerror(uc));
    error = url_error;
  }
  if (!error) {
    parts->host = strdup(host);
    if (!parts->host) {
      error = "out of memory";
    } else {
      struct in_addr v4;
      parts->port = strtol(port, NULL, 10);
      parts->https = strcmp(scheme, "https") == 0;
      parts->literal = host[0] == '[' || inet_pton(AF_INET, host, &v4) == 1;
    }
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return error;
}

/* Makes parts the request's current hop (taking its host). */
static void request_set_hop(mw_request *req, url_parts *parts) {
  free(req->host);
  req->host = parts->host;
  req->port = parts->port;
  req->https = parts->https;
  req->host_literal = parts->literal;
  parts->host = NULL;
}

/* Scheme, host and port: what credentials are scoped to (RFC 6454). */
static int request_same_origin(const mw_request *req, const url_parts *parts) {
  return req->https == parts->https && req->port == parts->port &&
         strcasecmp(req->host, parts->host) == 0;
}

/* The life of a perform */

static double seconds_since(uint64_t ns) {
  return (double)(uv_hrtime() - ns) / 1e9;
}

static void request_detach(mw_request *req) {
  mw_http *http = req->http;
  if (req->prev)
    req->prev->next = req->next;
  else if (http->inflight == req)
    http->inflight = req->next;
  if (req->next)
    req->next->prev = req->prev;
  req->prev = req->next = NULL;
  if (req->deadline)
    uv_timer_stop(req->deadline);
  if (req->xfer) {
    transfer_release(req->xfer);
    req->xfer = NULL;
  }
  req->phase = REQ_IDLE;
  req->task = NULL;
  luaL_unref(req->loop->L, LUA_REGISTRYINDEX, req->self_ref);
  req->self_ref = LUA_NOREF;
}

void request_abort(mw_request *req) {
  if (req->phase == REQ_RESOLVING && req->dns) {
    resolver_cancel(req->dns);
    req->dns = NULL;
  } else if (req->phase == REQ_TRANSFER) {
    curl_multi_remove_handle(req->http->multi, req->xfer->easy);
    http_count_transfer(req->http, -1);
  }
  request_detach(req);
}

static void request_wait_cancel(void *data) {
  request_abort(data);
}

static void request_fail(mw_request *req, const char *kind, const char *msg) {
  mw_task *task = req->task;
  lua_State *co = task->co;
  /* Push before detaching: once unanchored, req may be collected. */
  lua_checkstack(co, 3);
  lua_pushnil(co);
  lua_pushfstring(co, "%s: %s", kind, msg);
  lua_pushstring(co, kind);
  request_detach(req);
  task_resume(task, 3);
}

static void push_headers(lua_State *co, const char *raw, size_t len) {
  lua_createtable(co, 0, 8);
  const char *p = raw, *end = raw + len;
  while (p && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    if (colon && colon > p) {
      luaL_Buffer b;
      luaL_buffinit(co, &b);
      for (const char *c = p; c < colon; c++)
        luaL_addchar(&b, (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c));
      luaL_pushresult(&b);
      const char *v = colon + 1, *ve = line_end;
      while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      lua_pushvalue(co, -1);
      if (lua_rawget(co, -3) == LUA_TSTRING) { /* repeated: join as RFC 9110 allows */
        lua_pushliteral(co, ", ");
        lua_pushlstring(co, v, (size_t)(ve - v));
        lua_concat(co, 3);
      } else {
        lua_pop(co, 1);
        lua_pushlstring(co, v, (size_t)(ve - v));
      }
      lua_rawset(co, -3);
    }
    p = eol ? eol + 1 : NULL;
  }
}

#define RESPONSE_MT "moonwatch.response"

/* response.headers is parsed from response.raw_headers on first use: most
 * checks never read a header, and the table cost a dozen allocations. */
static int l_response_index(lua_State *L) {
  size_t klen;
  const char *key = lua_tolstring(L, 2, &klen);
  if (!key || klen != 7 || memcmp(key, "headers", 7) != 0)
    return 0;
  size_t len = 0;
  lua_getfield(L, 1, "raw_headers");
  const char *raw = lua_tolstring(L, -1, &len);
  push_headers(L, raw ? raw : "", raw ? len : 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, 1, "headers");
  return 1;
}

static void set_number(lua_State *co, const char *key, double value) {
  lua_pushnumber(co, value);
  lua_setfield(co, -2, key);
}

/* Phase times from curl's own counters, shifted by the time spent in DNS and
 * earlier redirect hops, and made monotonic (curl reports 0 for the phases a
 * reused connection skips). */
static void push_times(lua_State *co, mw_request *req) {
  curl_off_t nl = 0, ct = 0, app = 0, st = 0, tt = 0;
  curl_easy_getinfo(req->xfer->easy, CURLINFO_NAMELOOKUP_TIME_T, &nl);
  curl_easy_getinfo(req->xfer->easy, CURLINFO_CONNECT_TIME_T, &ct);
  curl_easy_getinfo(req->xfer->easy, CURLINFO_APPCONNECT_TIME_T, &app);
  curl_easy_getinfo(req->xfer->easy, CURLINFO_STARTTRANSFER_TIME_T, &st);
  curl_easy_getinfo(req->xfer->easy, CURLINFO_TOTAL_TIME_T, &tt);
  double base = req->redirect_s + (double)req->dns_ns / 1e9;
  double t = base + (double)nl / 1e6;
  lua_createtable(co, 0, 6);
  set_number(co, "dns", t);
  if ((double)ct / 1e6 + base > t)
    t = base + (double)ct / 1e6;
  set_number(co, "connect", t);
  if ((double)app / 1e6 + base > t)
    t = base + (double)app / 1e6;
  set_number(co, "tls", t);
  if ((double)st / 1e6 + base > t)
    t = base + (double)st / 1e6;
  set_number(co, "first_byte", t);
  if ((double)tt / 1e6 + base > t)
    t = base + (double)tt / 1e6;
  set_number(co, "total", t);
  set_number(co, "redirect", req->redirect_s);
  lua_setfield(co, -2, "time");
}

static void request_succeed(mw_request *req, long status) {
  mw_task *task = req->task;
  lua_State *co = task->co;
  lua_checkstack(co, 8);
  lua_createtable(co, 0, 12);
  lua_pushinteger(co, status);
  lua_setfield(co, -2, "status");
  mw_transfer *t = req->xfer;
  luaL_setmetatable(co, RESPONSE_MT);
  lua_pushlstring(co, t->head.data ? t->head.data : "", t->head.len);
  lua_setfield(co, -2, "raw_headers");
  lua_pushlstring(co, t->body.data ? t->body.data : "", t->body.len);
  lua_setfield(co, -2, "body");
  lua_pushinteger(co, (lua_Integer)t->size);
  lua_setfield(co, -2, "size");
  lua_pushboolean(co, t->truncated);
  lua_setfield(co, -2, "truncated");
  char *s = NULL;
  curl_easy_getinfo(req->xfer->easy, CURLINFO_EFFECTIVE_URL, &s);
  lua_pushstring(co, s ? s : req->url);
  lua_setfield(co, -2, "url");
  s = NULL;
  curl_easy_getinfo(req->xfer->easy, CURLINFO_PRIMARY_IP, &s);
  lua_pushstring(co, s ? s : "");
  lua_setfield(co, -2, "ip");
  lua_pushinteger(co, req->redirects);
  lua_setfield(co, -2, "redirects");
  long connects = 0;
  curl_easy_getinfo(req->xfer->easy, CURLINFO_NUM_CONNECTS, &connects);
  lua_pushinteger(co, connects);
  lua_setfield(co, -2, "connects");
  push_times(co, req);
  request_detach(req);
  task_resume(task, 1);
}

static const char *result_kind(mw_request *req, CURLcode rc) {
  switch (rc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return "dns";
  case CURLE_COULDNT_CONNECT: {
    long err = 0;
    curl_easy_getinfo(req->xfer->easy, CURLINFO_OS_ERRNO, &err);
    return err == ECONNREFUSED ? "refused" : "connect";
  }
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_USE_SSL_FAILED:
    return "tls";
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_GOT_NOTHING:
    return "reset";
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_PARTIAL_FILE:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_UNSUPPORTED_PROTOCOL:
    return "protocol";
  case CURLE_TOO_MANY_REDIRECTS:
    return "too_many_redirects";
  case CURLE_URL_MALFORMAT:
    return "url";
  default:
    return "error";
  }
}

static double request_remaining(mw_request *req) {
  return req->timeout - seconds_since(req->start_ns);
}

static const char *request_start_transfer(mw_request *req, const char *addrs, const char **kind) {
  if (!req->xfer) {
    req->xfer = transfer_acquire(req->http, req);
    if (!req->xfer) {
      *kind = "error";
      return "out of memory";
    }
  }
  CURL *easy = req->xfer->easy;
  if (addrs) {
    char entry[1024];
    snprintf(entry, sizeof entry, "%s:%ld:%s", req->host, req->port, addrs);
    if (!req->resolved || strcmp(req->resolved, entry) != 0) {
      struct curl_slist *list = curl_slist_append(NULL, entry);
      char *copy = strdup(entry);
      if (!list || !copy) {
        curl_slist_free_all(list);
        free(copy);
        *kind = "error";
        return "out of memory";
      }
      curl_easy_setopt(easy, CURLOPT_RESOLVE, list);
      curl_slist_free_all(req->resolve);
      free(req->resolved);
      req->resolve = list;
      req->resolved = copy;
    }
  }
  double remaining = request_remaining(req);
  if (remaining <= 0) {
    *kind = "timeout";
    return "the timeout ran out before the connection could start";
  }
  long ms = (long)(remaining * 1000.0);
  long connect_ms = (long)(req->connect_timeout * 1000.0);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   connect_ms < ms ? (connect_ms > 0 ? connect_ms : 1) : (ms > 0 ? ms : 1));
  transfer_clear(req->xfer);
  CURLMcode mc = curl_multi_add_handle(req->http->multi, easy);
  if (mc != CURLM_OK) {
    *kind = "error";
    return curl_multi_strerror(mc);
  }
  http_count_transfer(req->http, 1);
  req->phase = REQ_TRANSFER;
  return NULL;
}

static void request_on_resolved(void *data, const char *addrs, const char *error) {
  mw_request *req = data;
  req->dns = NULL;
  req->dns_ns = uv_hrtime() - req->hop_ns;
  if (req->deadline)
    uv_timer_stop(req->deadline);
  if (!addrs) {
    request_fail(req, "dns", error);
    return;
  }
  const char *kind = NULL;
  const char *err = request_start_transfer(req, addrs, &kind);
  if (err)
    request_fail(req, kind, err);
}

static void request_on_deadline(uv_timer_t *timer) {
  mw_request *req = timer->data;
  if (req->phase != REQ_RESOLVING)
    return;
  resolver_cancel(req->dns);
  req->dns = NULL;
  char msg[512];
  snprintf(msg, sizeof msg, "could not resolve host '%s': no answer within the %.3g s timeout",
           req->host, req->timeout);
  request_fail(req, "dns", msg);
}

static const char *request_begin_hop(mw_request *req, const char **kind) {
  req->hop_ns = uv_hrtime();
  req->dns_ns = 0;
  if (req->host_literal)
    return request_start_transfer(req, NULL, kind);
  const char *addrs = resolver_cached(req->loop, req->host);
  if (addrs)
    return request_start_transfer(req, addrs, kind);
  char *answer = NULL;
  const char *error = NULL;
  mw_dns_query *q = resolver_start(req->loop, req->host, request_on_resolved, req, &answer, &error);
  if (q) {
    req->dns = q;
    req->phase = REQ_RESOLVING;
    if (!req->deadline) {
      req->deadline = malloc(sizeof *req->deadline);
      if (!req->deadline) {
        resolver_cancel(q);
        *kind = "error";
        return "out of memory";
      }
      uv_timer_init(&req->loop->uv, req->deadline);
      req->deadline->data = req;
    }
    double remaining = request_remaining(req);
    uint64_t ms = remaining > 0 ? (uint64_t)(remaining * 1000.0) : 0;
    uv_update_time(&req->loop->uv);
    uv_timer_start(req->deadline, request_on_deadline, ms ? ms : 1, 0);
    return NULL;
  }
  if (!answer) {
    *kind = "dns";
    return error;
  }
  req->dns_ns = uv_hrtime() - req->hop_ns;
  const char *err = request_start_transfer(req, answer, kind);
  free(answer);
  return err;
}

static void request_apply_method(mw_request *req, CURL *easy) {
  int get = strcmp(req->method, "GET") == 0;
  int head = strcmp(req->method, "HEAD") == 0;
  int post = strcmp(req->method, "POST") == 0;
  if (head)
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  else if (req->has_body)
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
  else
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  int plain = head || (get && !req->has_body) || (post && req->has_body);
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, plain ? NULL : req->method);
}

/* The message of a failed transfer, where curl's would mislead. */
static const char *failure_message(mw_request *req, CURLcode result, const char **kind, char *buf,
                                   size_t size) {
  mw_transfer *t = req->xfer;
  const char *curl_msg = t->errbuf[0] ? t->errbuf : curl_easy_strerror(result);
  if (result == CURLE_COULDNT_CONNECT && (t->socket_errno == EMFILE || t->socket_errno == ENFILE)) {
    struct rlimit rl;
    *kind = "local";
    if (t->socket_errno == ENFILE)
      return "too many open files in the system (ENFILE): no socket could be opened";
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      snprintf(buf, size, "too many open files (EMFILE, limit %llu): no socket could be opened",
               (unsigned long long)rl.rlim_cur);
    else
      snprintf(buf, size, "too many open files (EMFILE): no socket could be opened");
    return buf;
  }
  if (result == CURLE_WRITE_ERROR && t->head_over) {
    *kind = "protocol";
    snprintf(buf, size, "the response headers exceeded the limit of %d bytes", HTTP_HEAD_MAX);
    return buf;
  }
  /* curl's buffer for one header line stops at 100 KiB and says only "Out of
   * memory". */
  if (result == CURLE_OUT_OF_MEMORY && !t->head_done) {
    *kind = "protocol";
    return "a response header line exceeded curl's limit of 102400 bytes";
  }
  if (result == CURLE_RECV_ERROR &&
      (strstr(curl_msg, "chunked-encoding") || strstr(curl_msg, "response headers"))) {
    *kind = "protocol"; /* the server's framing, not a reset connection */
    return curl_msg;
  }
  *kind = result_kind(req, result);
  return curl_msg;
}

/* Why a redirect from the current hop to next must not be followed, or NULL.
 * Marks the request as having left its origin. */
static const char *request_check_redirect(mw_request *req, const url_parts *next,
                                          const char *location, const char **kind, char *buf,
                                          size_t size) {
  if (req->https && !next->https && !req->allow_insecure) {
    *kind = "insecure_redirect";
    snprintf(buf, size,
             "refused to follow a redirect from https to plain http (%s); set "
             "allow_insecure_redirects = true to allow it",
             location);
    return buf;
  }
  if (!request_same_origin(req, next))
    req->left_origin = 1;
  return NULL;
}

void request_transfer_done(mw_request *req, CURLcode result) {
  req->phase = REQ_IDLE; /* curl no longer holds it */
  char msg[1024];
  if (result != CURLE_OK) {
    const char *kind = NULL;
    const char *text = failure_message(req, result, &kind, msg, sizeof msg);
    request_fail(req, kind, text);
    return;
  }
  long status = 0;
  curl_easy_getinfo(req->xfer->easy, CURLINFO_RESPONSE_CODE, &status);
  char *location = NULL;
  if (req->follow &&
      (status == 301 || status == 302 || status == 303 || status == 307 || status == 308))
    curl_easy_getinfo(req->xfer->easy, CURLINFO_REDIRECT_URL, &location);
  if (!location) {
    request_succeed(req, status);
    return;
  }
  if (req->redirects >= req->max_redirects) {
    snprintf(msg, sizeof msg, "stopped after %d redirect(s) (max_redirects); the next was to %s",
             req->redirects, location);
    request_fail(req, "too_many_redirects", msg);
    return;
  }
  url_parts next = {0};
  const char *err = url_parse(location, &next);
  if (err) {
    request_fail(req, "url", err);
    return;
  }
  const char *kind = NULL;
  err = request_check_redirect(req, &next, location, &kind, msg, sizeof msg);
  if (err) {
    free(next.host);
    request_fail(req, kind, err);
    return;
  }
  char *next_url = strdup(location);
  if (!next_url) {
    free(next.host);
    request_fail(req, "error", "out of memory");
    return;
  }
  CURL *easy = req->xfer->easy;
  free(req->hop_url);
  req->hop_url = next_url;
  request_set_hop(req, &next);
  req->redirects++;
  req->redirect_s = seconds_since(req->start_ns);
  /* As browsers and curl do: 303 (but for HEAD), and 301/302 after a POST,
   * go on as GET without the body. */
  int head = strcmp(req->method, "HEAD") == 0;
  if ((status == 303 && !head) ||
      ((status == 301 || status == 302) && strcmp(req->method, "POST") == 0)) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, NULL);
  }
  /* Credentials are for the origin they were written for, as curl -L and
   * browsers scope them; once a redirect leaves it they stay behind. */
  if (req->left_origin && req->has_credentials && !req->trust_redirects)
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->headers_public);
  curl_easy_setopt(easy, CURLOPT_URL, req->hop_url);
  req->xfer->dirty = 1; /* its url (and maybe method) are no longer ours */
  err = request_begin_hop(req, &kind);
  if (err)
    request_fail(req, kind, err);
}

/* Lua API */

static mw_request *check_request(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, REQUEST_MT);
}

static int request_perform(lua_State *L, mw_request *req, int idx) {
  if (req->phase != REQ_IDLE)
    return luaL_error(L, "request:perform(): this request is already in flight (a request "
                         "object serves one task at a time)");
  mw_task *task = task_check_current(L, "request:perform");
  if (req->hop_url) { /* the last perform was redirected */
    url_parts own = {0};
    if (url_parse(req->url, &own) != NULL)
      return luaL_error(L, "request:perform(): out of memory");
    free(req->hop_url);
    req->hop_url = NULL;
    request_set_hop(req, &own);
  }
  req->left_origin = 0;
  req->start_ns = uv_hrtime();
  req->redirects = 0;
  req->redirect_s = 0;
  const char *kind = NULL;
  const char *err = request_begin_hop(req, &kind);
  if (err) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", kind, err);
    lua_pushstring(L, kind);
    return 3;
  }
  req->task = task;
  lua_pushvalue(L, idx);
  req->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  req->next = req->http->inflight;
  if (req->next)
    req->next->prev = req;
  req->http->inflight = req;
  task_wait(task, request_wait_cancel, req);
  return lua_yield(L, 0);
}

/* req:perform() -> response | nil, message, kind */
static int l_request_perform(lua_State *L) {
  return request_perform(L, check_request(L, 1), 1);
}

/* req:busy() -> true while a perform is in flight */
static int l_request_busy(lua_State *L) {
  lua_pushboolean(L, check_request(L, 1)->phase != REQ_IDLE);
  return 1;
}

static int opt_error(lua_State *L, const char *name, const char *want) {
  /* a number out of range is shown, anything else by its type */
  const char *got =
      lua_type(L, -1) == LUA_TNUMBER ? luaL_tolstring(L, -1, NULL) : luaL_typename(L, -1);
  return luaL_error(L, "http request: option '%s' must be %s, got %s", name, want, got);
}

static double opt_seconds(lua_State *L, const char *name, double def) {
  int t = lua_getfield(L, 1, name);
  double v = def;
  if (t != LUA_TNIL) {
    if (t != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0) || lua_tonumber(L, -1) > 86400)
      opt_error(L, name, "a number of seconds in (0, 86400]");
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static lua_Integer opt_count(lua_State *L, const char *name, lua_Integer def, lua_Integer max) {
  int t = lua_getfield(L, 1, name);
  lua_Integer v = def;
  if (t != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > max)
      opt_error(L, name, "a non-negative integer");
    v = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static int opt_bool(lua_State *L, const char *name, int def) {
  int t = lua_getfield(L, 1, name);
  int v = def;
  if (t != LUA_TNIL) {
    if (t != LUA_TBOOLEAN)
      opt_error(L, name, "a boolean");
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* Returns the option's string, kept alive by the options table, or NULL. */
static const char *opt_string(lua_State *L, const char *name) {
  int t = lua_getfield(L, 1, name);
  const char *v = NULL;
  if (t != LUA_TNIL) {
    if (t != LUA_TSTRING)
      opt_error(L, name, "a string");
    size_t len = 0;
    v = lua_tolstring(L, -1, &len);
    if (strlen(v) != len)
      luaL_error(L, "http request: option '%s' must not contain a NUL byte", name);
  }
  lua_pop(L, 1);
  return v;
}

static int valid_header_part(const char *s, size_t len, int name) {
  if (name && len == 0)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0' || (name && (s[i] == ':' || s[i] == ' ')))
      return 0;
  return 1;
}

static struct curl_slist *opt_headers(lua_State *L) {
  if (lua_getfield(L, 1, "headers") == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1))
    opt_error(L, "headers", "a table");
  struct curl_slist *list = NULL;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    size_t nlen = 0, vlen = 0;
    const char *name, *value;
    if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TSTRING) {
      name = lua_tolstring(L, -1, &nlen); /* "Name: value" */
      const char *colon = memchr(name, ':', nlen);
      value = colon;
      if (!colon || !valid_header_part(name, (size_t)(colon - name), 1) ||
          !valid_header_part(colon, nlen - (size_t)(colon - name), 0)) {
        curl_slist_free_all(list);
        luaL_error(L,
                   "http request: header '%s' must look like 'Name: value' without "
                   "line breaks",
                   name);
      }
      lua_pushvalue(L, -1);
    } else if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
      name = lua_tolstring(L, -2, &nlen);
      value = lua_tolstring(L, -1, &vlen);
      if (!valid_header_part(name, nlen, 1) || !valid_header_part(value, vlen, 0)) {
        curl_slist_free_all(list);
        luaL_error(L, "http request: header '%s' has a bad name or a line break in its value",
                   name);
      }
      lua_pushfstring(L, "%s: %s", name, value);
    } else {
      curl_slist_free_all(list);
      luaL_error(L, "http request: headers must map names to strings or list 'Name: value' "
                    "strings");
      return NULL;
    }
    struct curl_slist *grown = curl_slist_append(list, lua_tostring(L, -1));
    if (!grown) {
      curl_slist_free_all(list);
      luaL_error(L, "http request: out of memory");
    }
    list = grown;
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  return list;
}

static void request_free_settings(mw_request *req) {
  free(req->url);
  free(req->method);
  free(req->body);
  free(req->ca_file);
  free(req->user_agent);
  free(req->host);
  free(req->hop_url);
  free(req->resolved);
  curl_slist_free_all(req->resolve);
  curl_slist_free_all(req->headers_list);
  curl_slist_free_all(req->headers_public);
  req->url = req->method = req->body = req->ca_file = req->user_agent = NULL;
  req->host = req->hop_url = req->resolved = NULL;
  req->resolve = req->headers_list = req->headers_public = NULL;
}

static int l_request_gc(lua_State *L) {
  mw_request *req = check_request(L, 1);
  if (!req->http)
    return 0;
  if (req->task)
    task_cancel(req->task);
  if (req->phase != REQ_IDLE)
    request_abort(req);
  transfer_forget(req->http, req->id);
  if (req->deadline) {
    uv_close((uv_handle_t *)req->deadline, (uv_close_cb)free);
    req->deadline = NULL;
  }
  request_free_settings(req);
  http_endpoint_unref(req->http, req->endpoint);
  req->endpoint = NULL;
  req->http = NULL;
  return 0;
}

static int l_request_tostring(lua_State *L) {
  mw_request *req = check_request(L, 1);
  lua_pushfstring(L, "moonwatch.request (%s %s)", req->method ? req->method : "?",
                  req->url ? req->url : "?");
  return 1;
}

void request_apply(mw_request *req, CURL *e) {
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  if (req->ca_file)
    curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, req->verify ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, req->verify ? 2L : 0L);
  curl_easy_setopt(e, CURLOPT_USERAGENT,
                   req->user_agent ? req->user_agent : "moonwatch/" MOONWATCH_VERSION);
  if (req->headers_list)
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers_list);
  if (req->has_body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
  }
  request_apply_method(req, e);
  if (req->fresh) {
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  }
}

static char *dup_or_null(const char *s, size_t len) {
  if (!s)
    return NULL;
  char *copy = malloc(len + 1);
  if (copy) {
    memcpy(copy, s, len);
    copy[len] = '\0';
  }
  return copy;
}

/* The options of a request, as read from the table at index 1 (whose
 * strings they point into). */
typedef struct {
  const char *url, *method, *body, *ca_file, *user_agent;
  size_t body_len;
  double timeout, connect_timeout;
  int follow, verify, fresh, trust_redirects, allow_insecure;
  lua_Integer max_redirects, max_body;
} request_options;

/* Reads and checks every option but headers and the URL's parts; raises
 * the error a bad one gives. */
static void options_read(lua_State *L, request_options *o) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    int known = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char *const *n = option_names; *n && !known; n++)
        known = strcmp(*n, lua_tostring(L, -1)) == 0;
    if (!known)
      luaL_error(L, "http request: unknown option '%s'", luaL_tolstring(L, -1, NULL));
  }
  o->url = opt_string(L, "url");
  if (!o->url)
    luaL_error(L, "http request: option 'url' is required");
  const char *method = opt_string(L, "method");
  if (!method)
    method = "GET";
  for (const char *c = method; *c; c++)
    if (*c < 'A' || *c > 'Z' || c - method > 32)
      luaL_error(L, "http request: method '%s' is not an upper-case HTTP method", method);
  if (!*method)
    luaL_error(L, "http request: method must not be empty");
  o->method = method;
  o->body_len = 0;
  lua_getfield(L, 1, "body");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    opt_error(L, "body", "a string");
  o->body = lua_tolstring(L, -1, &o->body_len);
  lua_pop(L, 1); /* still referenced by the options table */
  /* Servers expect a Content-Length on these even when empty. */
  if (!o->body &&
      (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0))
    o->body = "";
  o->timeout = opt_seconds(L, "timeout", DEFAULT_TIMEOUT);
  o->connect_timeout = opt_seconds(L, "connect_timeout", o->timeout);
  o->follow = opt_bool(L, "follow_redirects", 0);
  o->max_redirects = opt_count(L, "max_redirects", DEFAULT_MAX_REDIRECTS, 1000);
  o->trust_redirects = opt_bool(L, "trust_redirects", 0);
  o->allow_insecure = opt_bool(L, "allow_insecure_redirects", 0);
  o->verify = opt_bool(L, "verify", 1);
  o->ca_file = opt_string(L, "ca_file");
  o->max_body = opt_count(L, "max_body", DEFAULT_MAX_BODY, (lua_Integer)1 << 40);
  o->fresh = opt_bool(L, "fresh_connection", 0);
  o->user_agent = opt_string(L, "user_agent");
}

static int is_credential(const char *header) {
  static const char *const names[] = {"authorization:", "cookie:", "proxy-authorization:", NULL};
  for (const char *const *n = names; *n; n++)
    if (strncasecmp(header, *n, strlen(*n)) == 0)
      return 1;
  return 0;
}

/* The headers without credentials; *had tells whether there were any. */
static struct curl_slist *headers_without_credentials(lua_State *L, struct curl_slist *all,
                                                      int *had) {
  struct curl_slist *out = NULL;
  *had = 0;
  for (struct curl_slist *h = all; h; h = h->next) {
    if (is_credential(h->data)) {
      *had = 1;
      continue;
    }
    struct curl_slist *grown = curl_slist_append(out, h->data);
    if (!grown) {
      curl_slist_free_all(out);
      luaL_error(L, "http request: out of memory");
    }
    out = grown;
  }
  return out;
}

/* core.http_check(options) -> true: raises the error http_prepare would,
 * without preparing anything (for --check and monitor constructors). */
static int l_check(lua_State *L) {
  request_options o;
  options_read(L, &o);
  curl_slist_free_all(opt_headers(L));
  url_parts parts = {0};
  const char *err = url_parse(o.url, &parts);
  if (err)
    return luaL_error(L, "http request: %s", err);
  free(parts.host);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.http_prepare(options) -> request */
static int l_prepare(lua_State *L) {
  request_options o;
  options_read(L, &o);
  const char *error = NULL;
  mw_loop *loop = loop_get(L);
  mw_http *http = http_get(loop, &error);
  if (!http)
    return luaL_error(L, "http request: %s", error);
  /* From here the userdata's __gc frees whatever was set when an error is
   * raised. */
  mw_request *req = lua_newuserdatauv(L, sizeof *req, 0);
  memset(req, 0, sizeof *req);
  req->loop = loop;
  req->http = http;
  req->id = ++http->next_request_id;
  req->self_ref = LUA_NOREF;
  luaL_setmetatable(L, REQUEST_MT);
  req->url = strdup(o.url);
  req->method = strdup(o.method);
  req->has_body = o.body != NULL;
  req->body = dup_or_null(o.body, o.body_len);
  req->body_len = o.body_len;
  req->ca_file = dup_or_null(o.ca_file, o.ca_file ? strlen(o.ca_file) : 0);
  req->user_agent = dup_or_null(o.user_agent, o.user_agent ? strlen(o.user_agent) : 0);
  if (!req->url || !req->method || (o.body && !req->body) || (o.ca_file && !req->ca_file) ||
      (o.user_agent && !req->user_agent))
    return luaL_error(L, "http request: out of memory");
  url_parts parts = {0};
  const char *err = url_parse(o.url, &parts);
  if (err)
    return luaL_error(L, "http request: %s", err);
  request_set_hop(req, &parts);
  req->endpoint = http_endpoint_ref(http, req->host, req->port);
  if (!req->endpoint)
    return luaL_error(L, "http request: out of memory");
  req->timeout = o.timeout;
  req->connect_timeout = o.connect_timeout;
  req->follow = o.follow;
  req->max_redirects = (long)o.max_redirects;
  req->trust_redirects = o.trust_redirects;
  req->allow_insecure = o.allow_insecure;
  req->max_body = (size_t)o.max_body;
  req->verify = o.verify;
  req->fresh = o.fresh;
  req->headers_list = opt_headers(L);
  req->headers_public = headers_without_credentials(L, req->headers_list, &req->has_credentials);
  return 1;
}

/* core.http_request(options) -> response | nil, message, kind: a one-shot
 * prepare and perform. */
static int l_request(lua_State *L) {
  l_prepare(L);
  return request_perform(L, check_request(L, -1), lua_gettop(L));
}

void http_register(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"perform", l_request_perform}, {"busy", l_request_busy}, {NULL, NULL}};
  if (luaL_newmetatable(L, REQUEST_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_request_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_request_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, RESPONSE_MT)) {
    lua_pushcfunction(L, l_response_index);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_prepare);
  lua_setfield(L, -2, "http_prepare");
  lua_pushcfunction(L, l_check);
  lua_setfield(L, -2, "http_check");
  lua_pushcfunction(L, l_request);
  lua_setfield(L, -2, "http_request");
}
