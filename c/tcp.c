/* L3: TCP probes (see tcp.h): resolve, connect to each address in turn,
 * TLS on the same non-blocking socket, send, read the reply; one timer
 * bounds the whole probe.
 *
 * The socket is watched through the loop's fd registry; its registration
 * (tcp_conn) is freed in its close callback and outlives the probe, which
 * lets go of it first. Every TLS connection verifies (the CA store, the
 * name) but does not stop the handshake on a failure (SSL_VERIFY_NONE), so
 * a certificate that does not verify is still read and reported; the probe
 * fails after the handshake unless insecure is set. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "resolver.h"
#include "tcp.h"

#define ADDRS_MAX 16
#define READ_CHUNK 4096

/* A TLS context verifying against one CA file, remade when the file changes. */
typedef struct ca_ctx {
  struct ca_ctx *next;
  SSL_CTX *ctx;
  struct timespec mtime;
  off_t size;
  char path[];
} ca_ctx;

typedef struct {
  mw_resolver *resolver;
  SSL_CTX *system; /* the system's CAs; made on first use */
  ca_ctx *files;
  mw_hook closer;
} tcp_state;

static const char state_key = 'T';

enum { PHASE_RESOLVE, PHASE_CONNECT, PHASE_TLS, PHASE_SEND, PHASE_READ, PHASE_DONE };

typedef struct {
  mw_fd w;   /* first: the struct is freed in on_close */
  mw_tcp *t; /* NULL once the probe let it go */
} tcp_conn;

struct mw_tcp {
  mw_loop *loop;
  tcp_state *st;
  mw_tcp_done_fn done;
  void *data;
  int phase;
  int starting; /* inside tcp_start: an end is handed back there */
  const char *sync_kind;
  char *error;
  size_t error_cap;
  uint64_t t0;
  mw_dns_query *query;
  uv_timer_t *timer;
  tcp_conn *conn;
  SSL_CTX *ctx; /* not owned */
  SSL *ssl;
  int tls, insecure;
  struct sockaddr_storage addrs[ADDRS_MAX];
  int naddrs, next_addr, last_errno;
  mw_tcp_result res;
  char ip[INET6_ADDRSTRLEN];
  char where[INET6_ADDRSTRLEN + 16]; /* "ip:port" or "[ip]:port", for messages */
  char *host, *server_name, *send, *until, *reply;
  size_t send_len, sent, until_len, reply_len, reply_cap, read_max;
  double timeout;
  char message[768];
};

static double elapsed(const mw_tcp *t) {
  return (double)(uv_hrtime() - t->t0) / 1e9;
}

/* TLS contexts */

static SSL_CTX *ctx_new(const char *ca_file, char *error, size_t cap) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    snprintf(error, cap, "cannot make a TLS context: %s", ERR_reason_error_string(ERR_get_error()));
    return NULL;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  /* A peer that closes without close_notify has closed: the reply ends. */
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  ERR_clear_error();
  int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                   : SSL_CTX_set_default_verify_paths(ctx);
  if (ok != 1) {
    const char *why = ERR_reason_error_string(ERR_peek_last_error());
    snprintf(error, cap, "cannot load the CA file '%s': %s", ca_file ? ca_file : "(system)",
             why ? why : "unknown error");
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

static SSL_CTX *ctx_get(tcp_state *st, const char *ca_file, char *error, size_t cap) {
  if (!ca_file) {
    if (!st->system)
      st->system = ctx_new(NULL, error, cap);
    return st->system;
  }
  struct stat sb;
  if (stat(ca_file, &sb) != 0) {
    snprintf(error, cap, "cannot read the CA file '%s': %s", ca_file, strerror(errno));
    return NULL;
  }
  ca_ctx **link = &st->files;
  for (; *link; link = &(*link)->next)
    if (strcmp((*link)->path, ca_file) == 0)
      break;
  ca_ctx *c = *link;
  if (c && c->size == sb.st_size && c->mtime.tv_sec == sb.st_mtim.tv_sec &&
      c->mtime.tv_nsec == sb.st_mtim.tv_nsec)
    return c->ctx;
  SSL_CTX *ctx = ctx_new(ca_file, error, cap);
  if (!ctx)
    return NULL;
  if (!c) {
    size_t len = strlen(ca_file);
    c = calloc(1, sizeof *c + len + 1);
    if (!c) {
      SSL_CTX_free(ctx);
      snprintf(error, cap, "out of memory");
      return NULL;
    }
    memcpy(c->path, ca_file, len + 1);
    *link = c;
  }
  /* a probe in flight holds a reference to the context it started with */
  SSL_CTX_free(c->ctx);
  c->ctx = ctx;
  c->size = sb.st_size;
  c->mtime = sb.st_mtim;
  return ctx;
}

static void state_close(mw_loop *loop, void *data) {
  tcp_state *st = data;
  SSL_CTX_free(st->system);
  while (st->files) {
    ca_ctx *c = st->files;
    st->files = c->next;
    SSL_CTX_free(c->ctx);
    free(c);
  }
  loop_set_ext(loop, &state_key, NULL);
  free(st);
}

static tcp_state *state_get(mw_loop *loop, char *error, size_t cap) {
  tcp_state *st = loop_ext(loop, &state_key);
  if (st)
    return st;
  const char *why = NULL;
  /* made first, so it closes after us */
  mw_resolver *resolver = resolver_get(loop, &why);
  if (!resolver) {
    snprintf(error, cap, "%s", why);
    return NULL;
  }
  st = calloc(1, sizeof *st);
  if (!st) {
    snprintf(error, cap, "out of memory");
    return NULL;
  }
  st->resolver = resolver;
  loop_set_ext(loop, &state_key, st);
  loop_at_close(loop, &st->closer, state_close, st);
  return st;
}

/* Ending */

static void conn_on_close(mw_fd *w) {
  free(w); /* the first member of its tcp_conn */
}

static void conn_release(mw_tcp *t) {
  if (t->ssl) {
    SSL_free(t->ssl); /* its BIO does not close the fd */
    t->ssl = NULL;
    t->res.ssl = NULL;
  }
  if (t->conn) {
    int fd = t->conn->w.fd;
    t->conn->t = NULL;
    loop_fd_close(&t->conn->w);
    close(fd);
    t->conn = NULL;
  }
}

static void timer_free(uv_handle_t *handle) {
  free(handle);
}

static void probe_free(mw_tcp *t) {
  if (t->query)
    resolver_cancel(t->query);
  conn_release(t);
  if (t->timer)
    uv_close((uv_handle_t *)t->timer, timer_free);
  free(t->host);
  free(t->server_name);
  free(t->send);
  free(t->until);
  free(t->reply);
  free(t);
}

/* The probe ended: kind NULL is success. Inside tcp_start the end is handed
 * back to it; otherwise done runs, then everything goes. */
static void probe_end(mw_tcp *t, const char *kind, const char *fmt, ...) {
  t->message[0] = '\0';
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->message, sizeof t->message, fmt, ap);
    va_end(ap);
  }
  t->phase = PHASE_DONE;
  t->res.total = elapsed(t);
  t->res.reply = t->reply;
  t->res.reply_len = t->reply_len;
  if (t->starting) {
    t->sync_kind = kind;
    snprintf(t->error, t->error_cap, "%s", t->message);
    return;
  }
  if (!kind && t->ssl)
    SSL_shutdown(t->ssl); /* one close_notify, not waited for */
  ERR_clear_error();      /* nothing of ours left for curl's OpenSSL to read */
  t->done(&t->res, kind, t->message, t->data);
  probe_free(t);
}

/* Connecting */

static void set_where(mw_tcp *t, const struct sockaddr_storage *sa) {
  int v6 = sa->ss_family == AF_INET6;
  const void *src = v6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                       : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
  if (!inet_ntop(sa->ss_family, src, t->ip, sizeof t->ip))
    t->ip[0] = '\0';
  snprintf(t->where, sizeof t->where, v6 ? "[%s]:%d" : "%s:%d", t->ip, t->res.port);
  t->res.ip = t->ip;
}

static void connect_failed(mw_tcp *t) {
  int err = t->last_errno;
  char tried[48] = "";
  if (t->naddrs > 1)
    snprintf(tried, sizeof tried, " (the last of %d addresses of '%s')", t->naddrs, t->host);
  if (err == ECONNREFUSED)
    probe_end(t, "refused", "connection to %s refused%s", t->where, tried);
  else if (err == ETIMEDOUT)
    probe_end(t, "timeout", "connection to %s timed out%s", t->where, tried);
  else
    probe_end(t, "connect", "cannot connect to %s%s: %s", t->where, tried, strerror(err));
}

static void conn_on_events(mw_fd *w, int status, int events);

/* Tries the next address; ends the probe when none is left. */
static void try_connect(mw_tcp *t) {
  while (t->next_addr < t->naddrs) {
    struct sockaddr_storage *sa = &t->addrs[t->next_addr++];
    socklen_t len =
        sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    set_where(t, sa);
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      t->last_errno = errno;
      continue;
    }
    if (connect(fd, (struct sockaddr *)sa, len) != 0 && errno != EINPROGRESS) {
      t->last_errno = errno;
      close(fd);
      continue;
    }
    tcp_conn *c = calloc(1, sizeof *c);
    loop_fd_forget(t->loop, fd);
    if (!c || loop_fd_open(t->loop, &c->w, fd, t->st, conn_on_events, conn_on_close) != 0) {
      free(c);
      close(fd);
      probe_end(t, "error", "cannot watch the socket to %s", t->where);
      return;
    }
    c->t = t;
    t->conn = c;
    t->phase = PHASE_CONNECT;
    loop_fd_watch(&c->w, UV_WRITABLE);
    return;
  }
  connect_failed(t);
}

static int parse_ip(const char *text, int port, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  struct sockaddr_in *in4 = (struct sockaddr_in *)out;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    return 1;
  }
  if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    return 1;
  }
  return 0;
}

/* addrs: the resolver's list, "1.2.3.4,[::1]". */
static void connect_to(mw_tcp *t, const char *addrs) {
  t->res.dns = elapsed(t);
  for (const char *p = addrs; p && *p && t->naddrs < ADDRS_MAX;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *next = end ? end + 1 : NULL;
    char ip[INET6_ADDRSTRLEN + 2];
    if (len >= 2 && p[0] == '[' && p[len - 1] == ']') {
      p++;
      len -= 2;
    }
    if (len < sizeof ip) {
      memcpy(ip, p, len);
      ip[len] = '\0';
      if (parse_ip(ip, t->res.port, &t->addrs[t->naddrs]))
        t->naddrs++;
    }
    p = next;
  }
  if (t->naddrs == 0) {
    probe_end(t, "dns", "could not resolve host '%s': no address", t->host);
    return;
  }
  try_connect(t);
}

static void on_resolved(void *data, const char *addrs, const char *error) {
  mw_tcp *t = data;
  t->query = NULL;
  if (!addrs) {
    probe_end(t, "dns", "%s", error);
    return;
  }
  connect_to(t, addrs);
}

/* TLS, sending, reading */

static void begin_send(mw_tcp *t);
static void read_step(mw_tcp *t);

static int is_ip_literal(const char *name) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* OpenSSL's reason for the last failure, or what errno says. */
static const char *tls_reason(int rc, int err) {
  unsigned long e = ERR_peek_last_error();
  if (e) {
    const char *why = ERR_reason_error_string(e);
    return why ? why : "unknown TLS error";
  }
  if (err == SSL_ERROR_SYSCALL && errno && rc < 0)
    return strerror(errno);
  return "the server closed the connection";
}

static void tls_step(mw_tcp *t) {
  ERR_clear_error();
  errno = 0;
  int rc = SSL_connect(t->ssl);
  if (rc == 1) {
    t->res.tls = elapsed(t);
    t->res.tls_version = SSL_get_version(t->ssl);
    t->res.cipher = SSL_get_cipher_name(t->ssl);
    t->res.ssl = SSL_get0_peer_certificate(t->ssl) ? t->ssl : NULL;
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK && !t->insecure) {
      probe_end(t, "tls", "the certificate of %s (%s) did not verify: %s", t->where, t->server_name,
                X509_verify_cert_error_string(v));
      return;
    }
    begin_send(t);
    return;
  }
  int err = SSL_get_error(t->ssl, rc);
  if (err == SSL_ERROR_WANT_READ) {
    loop_fd_watch(&t->conn->w, UV_READABLE);
    return;
  }
  if (err == SSL_ERROR_WANT_WRITE) {
    loop_fd_watch(&t->conn->w, UV_WRITABLE);
    return;
  }
  t->res.ssl = SSL_get0_peer_certificate(t->ssl) ? t->ssl : NULL;
  /* a reset in the handshake too, as curl's CURLE_SSL_CONNECT_ERROR */
  probe_end(t, "tls", "TLS handshake with %s failed: %s", t->where, tls_reason(rc, err));
}

static void begin_tls(mw_tcp *t) {
  t->ssl = SSL_new(t->ctx);
  if (!t->ssl || SSL_set_fd(t->ssl, t->conn->w.fd) != 1) {
    probe_end(t, "error", "cannot start TLS: %s", ERR_reason_error_string(ERR_get_error()));
    return;
  }
  SSL_set_connect_state(t->ssl);
  const char *name = t->server_name;
  X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
  if (is_ip_literal(name)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name); /* no SNI for an address (RFC 6066) */
  } else {
    SSL_set_tlsext_host_name(t->ssl, name);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(t->ssl, name);
  }
  t->phase = PHASE_TLS;
  tls_step(t);
}

static void on_connected(mw_tcp *t) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(t->conn->w.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  if (err == ECONNRESET) {
    /* it connected: the server reset it before we looked */
    probe_end(t, "reset", "connection to %s was reset", t->where);
    return;
  }
  if (err) {
    t->last_errno = err;
    conn_release(t);
    try_connect(t);
    return;
  }
  t->res.connect = elapsed(t);
  if (t->tls)
    begin_tls(t);
  else
    begin_send(t);
}

static void begin_read(mw_tcp *t) {
  if (t->read_max == 0) {
    probe_end(t, NULL, NULL);
    return;
  }
  t->phase = PHASE_READ;
  loop_fd_watch(&t->conn->w, UV_READABLE);
  read_step(t); /* the handshake may have read some already */
}

static void send_step(mw_tcp *t) {
  while (t->sent < t->send_len) {
    const char *buf = t->send + t->sent;
    size_t left = t->send_len - t->sent;
    ssize_t n;
    if (t->ssl) {
      ERR_clear_error();
      errno = 0;
      int rc = SSL_write(t->ssl, buf, left > INT32_MAX ? INT32_MAX : (int)left);
      if (rc > 0) {
        t->sent += (size_t)rc;
        continue;
      }
      int err = SSL_get_error(t->ssl, rc);
      if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        loop_fd_watch(&t->conn->w, err == SSL_ERROR_WANT_READ ? UV_READABLE : UV_WRITABLE);
        return;
      }
      probe_end(t, "reset", "cannot send to %s: %s", t->where, tls_reason(rc, err));
      return;
    }
    n = send(t->conn->w.fd, buf, left, MSG_NOSIGNAL);
    if (n >= 0) {
      t->sent += (size_t)n;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      loop_fd_watch(&t->conn->w, UV_WRITABLE);
      return;
    } else if (errno != EINTR) {
      int reset = errno == ECONNRESET || errno == EPIPE;
      probe_end(t, reset ? "reset" : "error", "cannot send to %s: %s", t->where, strerror(errno));
      return;
    }
  }
  begin_read(t);
}

static void begin_send(mw_tcp *t) {
  if (t->send_len == 0) {
    begin_read(t);
    return;
  }
  t->phase = PHASE_SEND;
  send_step(t);
}

static void peer_closed(mw_tcp *t) {
  if (t->reply_len == 0) {
    probe_end(t, "closed", "%s closed the connection without replying", t->where);
    return;
  }
  t->res.ended = "closed";
  probe_end(t, NULL, NULL);
}

/* Room for the next read: the buffer grows by doubling up to read_max. */
static size_t reply_room(mw_tcp *t) {
  if (t->reply_len == t->reply_cap) {
    size_t cap = t->reply_cap ? t->reply_cap * 2 : READ_CHUNK;
    if (cap > t->read_max)
      cap = t->read_max;
    char *grown = realloc(t->reply, cap);
    if (!grown)
      return 0;
    t->reply = grown;
    t->reply_cap = cap;
  }
  return t->reply_cap - t->reply_len;
}

/* Whether the bytes just read (from offset from) complete read_until. */
static int reply_until(const mw_tcp *t, size_t from) {
  if (t->until_len == 0)
    return 0;
  size_t start = from >= t->until_len ? from - t->until_len + 1 : 0;
  return memmem(t->reply + start, t->reply_len - start, t->until, t->until_len) != NULL;
}

static void read_step(mw_tcp *t) {
  for (;;) {
    if (t->reply_len >= t->read_max) {
      t->res.ended = "limit";
      probe_end(t, NULL, NULL);
      return;
    }
    size_t room = reply_room(t);
    if (room == 0) {
      probe_end(t, "error", "out of memory for the reply");
      return;
    }
    ssize_t n;
    if (t->ssl) {
      ERR_clear_error();
      errno = 0;
      int rc = SSL_read(t->ssl, t->reply + t->reply_len, room > INT32_MAX ? INT32_MAX : (int)room);
      if (rc <= 0) {
        int err = SSL_get_error(t->ssl, rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
          loop_fd_watch(&t->conn->w, err == SSL_ERROR_WANT_READ ? UV_READABLE : UV_WRITABLE);
          return;
        }
        if (err == SSL_ERROR_ZERO_RETURN) {
          peer_closed(t);
          return;
        }
        int reset = err == SSL_ERROR_SYSCALL && (errno == ECONNRESET || errno == EPIPE);
        probe_end(t, reset ? "reset" : "tls", "reading from %s failed: %s", t->where,
                  tls_reason(rc, err));
        return;
      }
      n = rc;
    } else {
      n = recv(t->conn->w.fd, t->reply + t->reply_len, room, 0);
      if (n == 0) {
        peer_closed(t);
        return;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          loop_fd_watch(&t->conn->w, UV_READABLE);
          return;
        }
        if (errno == EINTR)
          continue;
        int reset = errno == ECONNRESET;
        probe_end(t, reset ? "reset" : "error", "reading from %s failed: %s", t->where,
                  strerror(errno));
        return;
      }
    }
    if (t->reply_len == 0)
      t->res.first_byte = elapsed(t);
    size_t from = t->reply_len;
    t->reply_len += (size_t)n;
    if (reply_until(t, from)) {
      t->res.ended = "until";
      probe_end(t, NULL, NULL);
      return;
    }
  }
}

static void conn_on_events(mw_fd *w, int status, int events) {
  (void)status, (void)events; /* each step reads the socket's own error */
  mw_tcp *t = ((tcp_conn *)w)->t;
  if (!t)
    return;
  switch (t->phase) {
  case PHASE_CONNECT:
    on_connected(t);
    break;
  case PHASE_TLS:
    tls_step(t);
    break;
  case PHASE_SEND:
    send_step(t);
    break;
  case PHASE_READ:
    read_step(t);
    break;
  default:
    break;
  }
}

static void on_timer(uv_timer_t *timer) {
  mw_tcp *t = timer->data;
  double s = t->timeout;
  switch (t->phase) {
  case PHASE_RESOLVE:
    probe_end(t, "timeout", "could not resolve host '%s' within %.3g s", t->host, s);
    break;
  case PHASE_CONNECT:
    probe_end(t, "timeout", "no connection to %s within %.3g s", t->where, s);
    break;
  case PHASE_TLS:
    probe_end(t, "timeout", "the TLS handshake with %s did not end within %.3g s", t->where, s);
    break;
  case PHASE_SEND:
    probe_end(t, "timeout", "could not send to %s within %.3g s", t->where, s);
    break;
  case PHASE_READ:
    if (t->reply_len > 0) {
      t->res.ended = "timeout";
      probe_end(t, NULL, NULL);
    } else {
      probe_end(t, "timeout", "no reply from %s within %.3g s", t->where, s);
    }
    break;
  default:
    break;
  }
}

/* Starting */

static char *dup_bytes(const char *s, size_t len) {
  char *d = malloc(len + 1);
  if (d) {
    memcpy(d, s, len);
    d[len] = '\0';
  }
  return d;
}

void tcp_abort(mw_tcp *t) {
  probe_free(t);
}

mw_tcp *tcp_start(mw_loop *loop, const mw_tcp_options *o, mw_tcp_done_fn done, void *data,
                  const char **kind, char *error, size_t cap) {
  *kind = "error";
  tcp_state *st = state_get(loop, error, cap);
  if (!st)
    return NULL;
  SSL_CTX *ctx = NULL;
  if (o->tls && !(ctx = ctx_get(st, o->ca_file, error, cap))) {
    *kind = "tls";
    return NULL;
  }
  mw_tcp *t = calloc(1, sizeof *t);
  if (!t) {
    snprintf(error, cap, "out of memory");
    return NULL;
  }
  t->loop = loop;
  t->st = st;
  t->done = done;
  t->data = data;
  t->error = error;
  t->error_cap = cap;
  t->ctx = ctx;
  t->tls = o->tls;
  t->insecure = o->insecure;
  t->read_max = o->read_max;
  t->timeout = o->timeout;
  t->res.port = o->port;
  t->res.ip = "";
  t->host = strdup(o->host);
  t->server_name = strdup(o->server_name ? o->server_name : o->host);
  t->send = o->send_len ? dup_bytes(o->send, o->send_len) : NULL;
  t->send_len = o->send_len;
  t->until = o->read_until_len ? dup_bytes(o->read_until, o->read_until_len) : NULL;
  t->until_len = o->read_until_len;
  t->timer = malloc(sizeof *t->timer);
  if (!t->host || !t->server_name || (o->send_len && !t->send) ||
      (o->read_until_len && !t->until) || !t->timer) {
    free(t->timer);
    t->timer = NULL;
    probe_free(t);
    snprintf(error, cap, "out of memory");
    return NULL;
  }
  snprintf(t->where, sizeof t->where, "%s:%d", o->host, o->port);
  uv_timer_init(&loop->uv, t->timer);
  t->timer->data = t;
  /* libuv counts whole milliseconds from its cached time, which is behind
   * the clock: aim at the first loop millisecond at or after the deadline,
   * so the probe never ends before its timeout (as sleep.c does). */
  uv_update_time(&loop->uv);
  t->t0 = uv_hrtime();
  uint64_t due_ms = (t->t0 + (uint64_t)(o->timeout * 1e9) + 999999) / 1000000;
  uint64_t now_ms = uv_now(&loop->uv);
  uv_timer_start(t->timer, on_timer, due_ms > now_ms ? due_ms - now_ms : 1, 0);
  t->starting = 1;
  t->phase = PHASE_RESOLVE;
  if (parse_ip(o->host, o->port, &t->addrs[0])) {
    t->naddrs = 1;
    try_connect(t);
  } else {
    char *addrs = NULL;
    const char *why = NULL;
    t->query = resolver_start(st->resolver, o->host, on_resolved, t, &addrs, &why);
    if (addrs) {
      connect_to(t, addrs);
      free(addrs);
    } else if (!t->query) {
      probe_end(t, "dns", "%s", why ? why : "could not resolve");
    }
  }
  t->starting = 0;
  if (t->phase != PHASE_DONE)
    return t;
  *kind = t->sync_kind;
  probe_free(t);
  return NULL;
}
