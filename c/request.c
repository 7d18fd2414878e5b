/* L4: request objects, the settings of a request performed again and
 * again. Each perform borrows a curl easy handle from the transfer pool;
 * connections are shared and reused by the multi handle.
 *
 * A perform resolves the host with c-ares when needed, hands curl the
 * addresses and starts the transfer. Redirects are followed here rather
 * than by curl, so a redirect to another host is resolved on the loop too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <strings.h>

#include "request.h"
#include "curl_kind.h"

#ifndef MOONWATCH_VERSION
#define MOONWATCH_VERSION "dev"
#endif

typedef enum { REQ_IDLE, REQ_RESOLVING, REQ_TRANSFER } request_phase;

struct mw_request {
  mw_loop *loop;
  mw_http *http;
  mw_resolver *resolver;
  uint64_t id;
  mw_endpoint *endpoint; /* of its own url */
  mw_transfer *xfer;     /* while the transfer runs */
  request_phase phase;
  mw_request_done_fn done; /* of the perform in flight */
  void *done_data;

  /* settings, fixed at init */
  char *url;
  char *method;
  char *body;
  size_t body_len;
  int has_body;
  char *ca_file;
  char *user_agent;
  int verify, fresh;
  int cert_info;
  double timeout, connect_timeout;
  int follow;
  long max_redirects;
  size_t max_body;
  struct curl_slist *headers_list;
  /* headers_list without credentials (Authorization, Cookie,
   * Proxy-Authorization), sent once a redirect leaves the origin */
  struct curl_slist *headers_public;
  int has_credentials;
  int trust_redirects; /* send credentials to any host a redirect names */
  int allow_insecure;  /* follow https -> http */

  /* the current hop */
  char *hop_url; /* NULL: the request's own url */
  char *host;
  long port;
  int https;
  int host_literal;
  int left_origin; /* a redirect of this perform went to another origin */
  char *resolved;  /* the CURLOPT_RESOLVE entry curl has, to set it only on change */
  struct curl_slist *resolve;
  mw_dns_query *dns;
  uv_timer_t *deadline; /* bounds the DNS phase; curl bounds the rest */
  uint64_t start_ns, hop_ns, dns_ns;
  int redirects;
  double redirect_s;
};

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

/* Makes the request idle and calls done. The transfer goes back to the pool
 * only after done returns: res and msg may point into it. */
static void request_finish(mw_request *req, const mw_response *res, const char *kind,
                           const char *msg) {
  mw_transfer *t = req->xfer;
  req->xfer = NULL;
  if (req->deadline)
    uv_timer_stop(req->deadline);
  req->phase = REQ_IDLE;
  mw_request_done_fn done = req->done;
  req->done = NULL;
  done(req, res, kind, msg, req->done_data);
  if (t)
    transfer_release(t);
}

void request_abort(mw_request *req) {
  if (req->phase == REQ_RESOLVING && req->dns) {
    resolver_cancel(req->dns);
    req->dns = NULL;
  }
  if (req->deadline)
    uv_timer_stop(req->deadline);
  if (req->xfer) {
    transfer_release(req->xfer); /* stops it if it runs */
    req->xfer = NULL;
  }
  req->phase = REQ_IDLE;
  req->done = NULL;
}

static void request_fail(mw_request *req, const char *kind, const char *msg) {
  request_finish(req, NULL, kind, msg);
}

/* Phase times from curl's own counters, shifted by the time spent in DNS and
 * earlier redirect hops, and made monotonic (curl reports 0 for the phases a
 * reused connection skips). */
static void response_times(mw_request *req, mw_response *res) {
  curl_off_t nl = 0, ct = 0, app = 0, st = 0, tt = 0;
  curl_easy_getinfo(req->xfer->easy, CURLINFO_NAMELOOKUP_TIME_T, &nl);
  curl_easy_getinfo(req->xfer->easy, CURLINFO_CONNECT_TIME_T, &ct);
  curl_easy_getinfo(req->xfer->easy, CURLINFO_APPCONNECT_TIME_T, &app);
  curl_easy_getinfo(req->xfer->easy, CURLINFO_STARTTRANSFER_TIME_T, &st);
  curl_easy_getinfo(req->xfer->easy, CURLINFO_TOTAL_TIME_T, &tt);
  double base = req->redirect_s + (double)req->dns_ns / 1e9;
  double t = base + (double)nl / 1e6;
  res->dns = t;
  if ((double)ct / 1e6 + base > t)
    t = base + (double)ct / 1e6;
  res->connect = t;
  if ((double)app / 1e6 + base > t)
    t = base + (double)app / 1e6;
  res->tls = t;
  if ((double)st / 1e6 + base > t)
    t = base + (double)st / 1e6;
  res->first_byte = t;
  if ((double)tt / 1e6 + base > t)
    t = base + (double)tt / 1e6;
  res->total = t;
  res->redirect = req->redirect_s;
}

static void request_succeed(mw_request *req, long status) {
  mw_transfer *t = req->xfer;
  mw_response res;
  memset(&res, 0, sizeof res);
  res.status = status;
  res.head = t->head.data ? t->head.data : "";
  res.head_len = t->head.len;
  res.body = t->body.data ? t->body.data : "";
  res.body_len = t->body.len;
  res.size = t->size;
  res.truncated = t->truncated;
  char *s = NULL;
  curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &s);
  res.url = s ? s : req->url;
  s = NULL;
  curl_easy_getinfo(t->easy, CURLINFO_PRIMARY_IP, &s);
  res.ip = s ? s : "";
  res.redirects = req->redirects;
  curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &res.connects);
  res.has_cert = t->has_cert;
  res.cert_expiry = t->cert_expiry;
  response_times(req, &res);
  request_finish(req, &res, NULL, NULL);
}

static const char *result_kind(mw_request *req, CURLcode rc) {
  return curl_kind(req->xfer->easy, rc);
}

static double request_remaining(mw_request *req) {
  return req->timeout - seconds_since(req->start_ns);
}

static void request_apply(mw_request *req, CURL *e);
static void request_on_transfer_done(mw_transfer *t, CURLcode result, void *data);

static const char *request_start_transfer(mw_request *req, const char *addrs, const char **kind) {
  if (!req->xfer) {
    int setup = 0;
    req->xfer = transfer_acquire(req->http, req->id, req->max_body, &setup);
    if (!req->xfer) {
      *kind = "error";
      return "out of memory";
    }
    if (setup)
      request_apply(req, req->xfer->easy);
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
  req->xfer->want_cert = req->cert_info;
  const char *err = transfer_start(req->xfer, request_on_transfer_done, req);
  if (err) {
    *kind = "error";
    return err;
  }
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
  const char *addrs = resolver_cached(req->resolver, req->host);
  if (addrs)
    return request_start_transfer(req, addrs, kind);
  char *answer = NULL;
  const char *error = NULL;
  mw_dns_query *q =
      resolver_start(req->resolver, req->host, request_on_resolved, req, &answer, &error);
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
    snprintf(buf, size, "the response headers exceeded the limit of %d bytes", MW_HTTP_HEAD_MAX);
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

static void request_on_transfer_done(mw_transfer *t, CURLcode result, void *data) {
  (void)t;
  mw_request *req = data;
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

/* The request's own options on an easy handle. */
static void request_apply(mw_request *req, CURL *e) {
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

static int is_credential(const char *header) {
  static const char *const names[] = {"authorization:", "cookie:", "proxy-authorization:", NULL};
  for (const char *const *n = names; *n; n++)
    if (strncasecmp(header, *n, strlen(*n)) == 0)
      return 1;
  return 0;
}

/* The headers without credentials; *had tells whether there were any.
 * Returns 0 when out of memory. */
static int headers_without_credentials(struct curl_slist *all, struct curl_slist **out_list,
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
      return 0;
    }
    out = grown;
  }
  *out_list = out;
  return 1;
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

size_t request_size(void) {
  return sizeof(mw_request);
}

const char *request_check_url(const char *url) {
  url_parts parts = {0};
  const char *err = url_parse(url, &parts);
  free(parts.host);
  return err;
}

const char *request_init(mw_request *req, mw_http *http, mw_resolver *resolver,
                         mw_request_options *o) {
  memset(req, 0, sizeof *req);
  req->headers_list = o->headers;
  o->headers = NULL;
  req->url = strdup(o->url);
  req->method = strdup(o->method);
  req->has_body = o->body != NULL;
  req->body = dup_or_null(o->body, o->body_len);
  req->body_len = o->body_len;
  req->ca_file = dup_or_null(o->ca_file, o->ca_file ? strlen(o->ca_file) : 0);
  req->user_agent = dup_or_null(o->user_agent, o->user_agent ? strlen(o->user_agent) : 0);
  const char *err = NULL;
  url_parts parts = {0};
  if (!req->url || !req->method || (o->body && !req->body) || (o->ca_file && !req->ca_file) ||
      (o->user_agent && !req->user_agent) ||
      !headers_without_credentials(req->headers_list, &req->headers_public, &req->has_credentials))
    err = "out of memory";
  else
    err = url_parse(o->url, &parts);
  if (!err) {
    request_set_hop(req, &parts);
    req->endpoint = http_endpoint_ref(http, req->host, req->port);
    if (!req->endpoint)
      err = "out of memory";
  }
  if (err) {
    request_free_settings(req);
    return err;
  }
  req->loop = http_loop(http);
  req->http = http;
  req->resolver = resolver;
  req->id = http_new_id(http);
  req->timeout = o->timeout;
  req->connect_timeout = o->connect_timeout;
  req->follow = o->follow;
  req->max_redirects = o->max_redirects;
  req->trust_redirects = o->trust_redirects;
  req->allow_insecure = o->allow_insecure;
  req->max_body = o->max_body;
  req->verify = o->verify;
  req->fresh = o->fresh;
  req->cert_info = o->cert_info;
  return NULL;
}

void request_free(mw_request *req) {
  if (!req->http)
    return;
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
}

const char *request_perform(mw_request *req, mw_request_done_fn done, void *data,
                            const char **kind) {
  if (req->hop_url) { /* the last perform was redirected */
    url_parts own = {0};
    if (url_parse(req->url, &own) != NULL) {
      *kind = "error";
      return "out of memory";
    }
    free(req->hop_url);
    req->hop_url = NULL;
    request_set_hop(req, &own);
  }
  req->left_origin = 0;
  req->start_ns = uv_hrtime();
  req->redirects = 0;
  req->redirect_s = 0;
  req->done = done;
  req->done_data = data;
  const char *err = request_begin_hop(req, kind);
  if (err)
    request_abort(req);
  return err;
}

int request_busy(const mw_request *req) {
  return req->phase != REQ_IDLE;
}

const char *request_url(const mw_request *req) {
  return req->url;
}

const char *request_method(const mw_request *req) {
  return req->method;
}
