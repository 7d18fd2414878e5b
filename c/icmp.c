/* L3: ping. One socket per ping, in the fd registry, and one timer that
 * sends the next echo request or ends the wait. Replies are matched by
 * identifier and sequence number: a datagram socket's identifier is the
 * one the kernel gave it (its "port"), and the kernel hands it only its own
 * replies; a raw socket sees every ICMP message of the host, so ours are
 * picked by the identifier we chose. Both handles are freed in their close
 * callbacks. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "icmp.h"
#include "resolver.h"

#define PAYLOAD 16

struct mw_icmp {
  mw_loop *loop;
  mw_fd w;
  uv_timer_t timer;
  int fd;
  int open_handles; /* the fd's and the timer's; freed at 0 */
  mw_icmp_fn cb;    /* NULL once done or cancelled */
  void *data;
  mw_dns_query *lookup; /* while the name resolves */
  int count;
  uint64_t interval_ms, timeout_ms;
  int v6, raw;
  uint16_t id;
  uint64_t sent_at[MW_ICMP_COUNT_MAX]; /* uv_hrtime */
  struct sockaddr_storage dest;
  socklen_t dest_len;
  mw_icmp_result res;
  char address[INET6_ADDRSTRLEN];
  char error[400];
};

/* The message of a failure, cut to fit. */
__attribute__((format(printf, 2, 3))) static void set_error(mw_icmp *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->error, sizeof p->error, fmt, ap);
  va_end(ap);
}

static void ping_unref(mw_icmp *p) {
  if (--p->open_handles == 0)
    free(p);
}

static void on_timer_closed(uv_handle_t *h) {
  ping_unref(h->data);
}

static void on_fd_closed(mw_fd *w) {
  ping_unref((mw_icmp *)((char *)w - offsetof(mw_icmp, w)));
}

/* Closes what is open; the struct goes with the last close callback. */
static void ping_close(mw_icmp *p) {
  p->cb = NULL;
  if (p->lookup) {
    resolver_cancel(p->lookup);
    p->lookup = NULL;
  }
  if (p->fd >= 0) {
    loop_fd_close(&p->w);
    close(p->fd);
    p->fd = -1;
  }
  if (!uv_is_closing((uv_handle_t *)&p->timer)) {
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
  }
}

static void ping_finish(mw_icmp *p, const char *kind, const char *error) {
  mw_icmp_fn cb = p->cb;
  void *data = p->data;
  mw_icmp_result res = p->res;
  ping_close(p);
  if (cb)
    cb(data, kind ? NULL : &res, kind, error);
}

static uint16_t checksum(const unsigned char *b, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2)
    sum += (uint32_t)(b[i] << 8 | b[i + 1]);
  if (len & 1)
    sum += (uint32_t)b[len - 1] << 8;
  while (sum >> 16)
    sum = (sum & 0xFFFF) + (sum >> 16);
  return (uint16_t)~sum;
}

static void on_timer(uv_timer_t *timer);

/* Sends echo request number res.sent; a failure ends the ping. */
static void ping_send(mw_icmp *p) {
  unsigned char pkt[8 + PAYLOAD];
  int seq = p->res.sent;
  memset(pkt, 0, sizeof pkt);
  pkt[0] = p->v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
  pkt[4] = (unsigned char)(p->id >> 8);
  pkt[5] = (unsigned char)p->id;
  pkt[6] = (unsigned char)(seq >> 8);
  pkt[7] = (unsigned char)seq;
  memcpy(pkt + 8, "moonwatch ping  ", PAYLOAD);
  if (!p->v6) { /* the kernel sums ICMPv6 itself */
    uint16_t sum = checksum(pkt, sizeof pkt);
    pkt[2] = (unsigned char)(sum >> 8);
    pkt[3] = (unsigned char)sum;
  }
  p->sent_at[seq] = uv_hrtime();
  p->res.rtt[seq] = -1;
  p->res.sent++;
  if (sendto(p->fd, pkt, sizeof pkt, 0, (struct sockaddr *)&p->dest, p->dest_len) < 0 &&
      errno != EAGAIN && errno != ENOBUFS) {
    int e = errno;
    set_error(p, "cannot send to %s: %s", p->address, strerror(e));
    ping_finish(
        p, e == EHOSTUNREACH || e == ENETUNREACH || e == EADDRNOTAVAIL ? "unreachable" : "local",
        p->error);
    return;
  }
  /* From the current time, and 1 ms more: the loop counts whole
   * milliseconds from the start of its cached one, so an interval or a
   * wait is never shorter than asked. */
  uv_update_time(&p->loop->uv);
  uv_timer_start(&p->timer, on_timer, (p->res.sent < p->count ? p->interval_ms : p->timeout_ms) + 1,
                 0);
}

static void on_timer(uv_timer_t *timer) {
  mw_icmp *p = timer->data;
  if (p->res.sent < p->count)
    ping_send(p);
  else
    ping_finish(p, NULL, NULL);
}

static int all_answered(const mw_icmp *p) {
  return p->res.sent == p->count && p->res.received == p->count;
}

static void on_readable(mw_fd *w, int status, int events) {
  (void)events;
  mw_icmp *p = (mw_icmp *)((char *)w - offsetof(mw_icmp, w));
  if (status < 0)
    return;
  unsigned char buf[1500];
  for (;;) {
    ssize_t n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0)
      return;
    const unsigned char *icmp = buf;
    if (p->raw && !p->v6) { /* a raw IPv4 socket hands over the IP header too */
      size_t ihl = (size_t)(buf[0] & 0x0F) * 4;
      if ((size_t)n < ihl + 8)
        continue;
      icmp += ihl;
      n -= (ssize_t)ihl;
    }
    if (n < 8 || icmp[0] != (p->v6 ? ICMP6_ECHO_REPLY : ICMP_ECHOREPLY))
      continue;
    uint16_t id = (uint16_t)(icmp[4] << 8 | icmp[5]);
    int seq = icmp[6] << 8 | icmp[7];
    if ((p->raw && id != p->id) || seq >= p->res.sent || p->res.rtt[seq] >= 0)
      continue;
    double rtt = (double)(uv_hrtime() - p->sent_at[seq]) / 1e9;
    if (rtt * 1000 > (double)p->timeout_ms)
      continue; /* too late: lost */
    p->res.rtt[seq] = rtt;
    p->res.received++;
    if (all_answered(p)) {
      ping_finish(p, NULL, NULL);
      return;
    }
  }
}

/* Opens the socket: datagram first, then raw. The error names both. */
static int ping_open(mw_icmp *p, const char **kind) {
  const char *allowed = getenv("MOONWATCH_ICMP_SOCKETS");
  int try_dgram = !allowed || strstr(allowed, "dgram") != NULL;
  int try_raw = !allowed || strstr(allowed, "raw") != NULL;
  int family = p->v6 ? AF_INET6 : AF_INET;
  int proto = p->v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
  int dgram_errno = 0, raw_errno = 0;
  p->fd = -1;
  if (try_dgram) {
    p->fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    if (p->fd < 0)
      dgram_errno = errno;
  }
  if (p->fd < 0 && try_raw) {
    p->fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    if (p->fd < 0)
      raw_errno = errno;
    else
      p->raw = 1;
  }
  if (p->fd >= 0) {
    p->res.socket = p->raw ? "raw" : "dgram";
    return 0;
  }
  int e = dgram_errno ? dgram_errno : raw_errno;
  if (e == EMFILE || e == ENFILE || e == ENOMEM || e == ENOBUFS) {
    set_error(p, "cannot open an ICMP socket: %s", strerror(e));
    *kind = "local";
    return -1;
  }
  char range[64] = "unreadable";
  FILE *f = fopen("/proc/sys/net/ipv4/ping_group_range", "r");
  if (f) {
    if (fgets(range, sizeof range, f))
      range[strcspn(range, "\n")] = '\0';
    fclose(f);
    for (char *c = range; *c; c++)
      if (*c == '\t')
        *c = ' ';
  }
  char skipped[96];
  snprintf(skipped, sizeof skipped, "not tried (MOONWATCH_ICMP_SOCKETS=%s)",
           allowed ? allowed : "");
  set_error(p,
            "cannot open an ICMP socket: unprivileged datagram socket: %s (it needs "
            "net.ipv4.ping_group_range, now \"%s\", to include group %u); raw socket: %s (it "
            "needs CAP_NET_RAW)",
            try_dgram ? strerror(dgram_errno) : skipped, range, (unsigned)getgid(),
            try_raw ? strerror(raw_errno) : skipped);
  *kind = "permission";
  return -1;
}

/* send_now: from a loop callback; from icmp_start the timer sends, so that
 * a failure to send reaches cb from the loop. */
static int ping_begin(mw_icmp *p, const char **kind, int send_now) {
  if (ping_open(p, kind) != 0)
    return -1;
  loop_fd_forget(p->loop, p->fd);
  if (loop_fd_open(p->loop, &p->w, p->fd, p, on_readable, on_fd_closed) != 0) {
    close(p->fd);
    p->fd = -1;
    set_error(p, "cannot watch the ICMP socket");
    *kind = "local";
    return -1;
  }
  p->open_handles++;
  if (p->raw) {
    /* our identifier; a datagram socket gets the kernel's */
    p->id = (uint16_t)(((uintptr_t)p >> 4) ^ (uintptr_t)getpid() ^ uv_hrtime());
    if (p->v6) {
      struct icmp6_filter filter;
      ICMP6_FILTER_SETBLOCKALL(&filter);
      ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
      setsockopt(p->fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter);
    }
  }
  loop_fd_watch(&p->w, UV_READABLE);
  if (send_now)
    ping_send(p);
  else
    uv_timer_start(&p->timer, on_timer, 0, 0);
  return 0;
}

static int parse_address(mw_icmp *p, const char *text) {
  struct sockaddr_in *in = (struct sockaddr_in *)&p->dest;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&p->dest;
  char host[INET6_ADDRSTRLEN + 2];
  size_t len = strlen(text);
  if (len >= 2 && text[0] == '[' && text[len - 1] == ']' && len - 2 < sizeof host) {
    memcpy(host, text + 1, len - 2);
    host[len - 2] = '\0';
    text = host;
  }
  memset(&p->dest, 0, sizeof p->dest);
  if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    p->dest_len = sizeof *in;
    p->v6 = 0;
  } else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    p->dest_len = sizeof *in6;
    p->v6 = 1;
  } else {
    return -1;
  }
  inet_ntop(p->v6 ? AF_INET6 : AF_INET, p->v6 ? (void *)&in6->sin6_addr : (void *)&in->sin_addr,
            p->address, sizeof p->address);
  p->res.address = p->address;
  return 0;
}

/* The first address of the resolver's list ("1.2.3.4,[::1]"). */
static int use_first(mw_icmp *p, const char *addrs) {
  char first[INET6_ADDRSTRLEN + 3];
  size_t n = strcspn(addrs, ",");
  if (n >= sizeof first)
    return -1;
  memcpy(first, addrs, n);
  first[n] = '\0';
  return parse_address(p, first);
}

static void on_resolved(void *data, const char *addrs, const char *error) {
  mw_icmp *p = data;
  p->lookup = NULL;
  const char *kind = "dns";
  if (!addrs) {
    set_error(p, "%s", error);
    ping_finish(p, kind, p->error);
  } else if (use_first(p, addrs) != 0) {
    set_error(p, "could not resolve host: a bad address '%s'", addrs);
    ping_finish(p, kind, p->error);
  } else if (ping_begin(p, &kind, 1) != 0) {
    ping_finish(p, kind, p->error);
  }
}

mw_icmp *icmp_start(mw_loop *loop, const char *host, int count, double interval, double timeout,
                    mw_icmp_fn cb, void *data, const char **kind, const char **error) {
  static char failure[400];
  mw_icmp *p = calloc(1, sizeof *p);
  if (!p) {
    *kind = "local";
    *error = "out of memory";
    return NULL;
  }
  p->loop = loop;
  p->fd = -1;
  p->cb = cb;
  p->data = data;
  p->count = count < 1 ? 1 : count > MW_ICMP_COUNT_MAX ? MW_ICMP_COUNT_MAX : count;
  p->interval_ms = (uint64_t)(interval * 1000 + 0.5);
  p->timeout_ms = (uint64_t)(timeout * 1000 + 0.5);
  if (!p->interval_ms)
    p->interval_ms = 1;
  uv_timer_init(&loop->uv, &p->timer);
  p->timer.data = p;
  p->open_handles = 1;
  int started;
  if (parse_address(p, host) == 0) {
    started = ping_begin(p, kind, 0);
  } else {
    mw_resolver *r = resolver_get(loop, error);
    char *addrs = NULL;
    started = -1;
    *kind = "dns";
    if (r) {
      p->lookup = resolver_start(r, host, on_resolved, p, &addrs, error);
      if (p->lookup)
        return p;
      if (addrs && use_first(p, addrs) == 0)
        started = ping_begin(p, kind, 0);
      else if (addrs)
        set_error(p, "could not resolve host '%s'", host);
      else
        set_error(p, "%s", *error);
      free(addrs);
    }
  }
  if (started == 0)
    return p;
  snprintf(failure, sizeof failure, "%s", p->error);
  *error = failure;
  ping_close(p);
  return NULL;
}

void icmp_cancel(mw_icmp *p) {
  ping_close(p);
}
