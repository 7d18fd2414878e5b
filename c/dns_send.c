/* L3: DNS queries with c-ares's ares_send, one channel per set of servers
 * (a channel's servers are fixed), each on the loop through dns_channel.c.
 * ARES_FLAG_NOCHECKRESP hands back SERVFAIL and REFUSED answers instead of
 * trying the next server and failing: a probe wants the rcode. Truncated UDP
 * answers are asked again over TCP (c-ares does it: IGNTC is not set). */
#include <ares.h>
#include <arpa/nameser.h>
#include <stdlib.h>
#include <string.h>

#include "dns_channel.h"
#include "dns_send.h"
#include "resolver.h"

#define CHANNELS_IDLE_MAX 16 /* idle channels kept; busy ones are never closed */
#define EDNS_UDP_SIZE 1232   /* the DNS flag day 2020 size */

typedef struct {
  mw_dns_channel ch;
  char *key;     /* the servers' csv; "" for the resolver's defaults */
  int pending;   /* queries inside c-ares, cancelled ones included */
  uint64_t used; /* loop time of the last query, for closing the idlest */
  mw_list link;
} channel_entry;

typedef struct {
  mw_loop *loop;
  mw_list channels;
  int count;
  mw_hook closer;
} send_set;

struct mw_dns_send {
  channel_entry *entry;
  mw_dns_send_fn cb; /* NULL once cancelled */
  void *data;
  int starting; /* inside ares_send: a failure is handed back there */
  const char *sync_error;
};

static const char set_key = 'D';

static send_set *set_get(mw_loop *loop, const char **error);

static void entry_close(channel_entry *e) {
  list_remove(&e->link);
  dns_channel_close(&e->ch);
  free(e->key);
  free(e);
}

static void set_close(mw_loop *loop, void *data) {
  send_set *set = data;
  mw_list *node;
  while ((node = list_first(&set->channels)))
    entry_close(list_entry(node, channel_entry, link));
  loop_set_ext(loop, &set_key, NULL);
  free(set);
}

int dns_send_open(mw_loop *loop, const char **error) {
  return set_get(loop, error) ? 0 : -1;
}

static send_set *set_get(mw_loop *loop, const char **error) {
  send_set *set = loop_ext(loop, &set_key);
  if (set)
    return set;
  /* the resolver first, so that it closes after us */
  if (!resolver_get(loop, error))
    return NULL;
  set = calloc(1, sizeof *set);
  if (!set) {
    *error = "out of memory";
    return NULL;
  }
  set->loop = loop;
  list_init(&set->channels);
  loop_set_ext(loop, &set_key, set);
  loop_at_close(loop, &set->closer, set_close, set);
  return set;
}

/* Closes the idle channel used longest ago while more than the cap are idle. */
static void set_trim(send_set *set) {
  int idle = 0;
  channel_entry *oldest = NULL;
  for (mw_list *n = set->channels.next; n != &set->channels; n = n->next) {
    channel_entry *e = list_entry(n, channel_entry, link);
    if (e->pending == 0) {
      idle++;
      if (!oldest || e->used < oldest->used)
        oldest = e;
    }
  }
  if (idle > CHANNELS_IDLE_MAX && oldest)
    entry_close(oldest);
}

static channel_entry *channel_for(send_set *set, const char *servers, const char **error) {
  const char *key = servers ? servers : "";
  for (mw_list *n = set->channels.next; n != &set->channels; n = n->next) {
    channel_entry *e = list_entry(n, channel_entry, link);
    if (strcmp(e->key, key) == 0)
      return e;
  }
  channel_entry *e = calloc(1, sizeof *e);
  if (!e || !(e->key = strdup(key))) {
    free(e);
    *error = "out of memory";
    return NULL;
  }
  if (dns_channel_init(&e->ch, set->loop, error) != 0) {
    free(e->key);
    free(e);
    return NULL;
  }
  struct ares_options opts;
  memset(&opts, 0, sizeof opts);
  opts.flags = ARES_FLAG_NOCHECKRESP;
  opts.timeout = 1000; /* c-ares doubles it at each round of retries */
  opts.tries = 3;
  e->used = uv_now(&set->loop->uv);
  list_push_front(&set->channels, &e->link);
  if (dns_channel_open(&e->ch, &opts, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES, servers,
                       error) != 0) {
    entry_close(e);
    return NULL;
  }
  set_trim(set);
  return e;
}

static const char *status_kind(int status) {
  switch (status) {
  case ARES_ETIMEOUT:
    return "timeout";
  case ARES_ECONNREFUSED:
    return "refused";
  case ARES_EBADRESP:
    return "protocol";
  case ARES_ENOMEM:
    return "local";
  default:
    return "dns";
  }
}

static const char *status_message(int status) {
  switch (status) {
  case ARES_ETIMEOUT:
    return "the DNS server did not answer";
  case ARES_ECONNREFUSED:
    return "the DNS server refused the query (connection refused)";
  case ARES_EBADRESP:
    return "malformed answer";
  default:
    return ares_strerror(status);
  }
}

static void send_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen) {
  (void)timeouts;
  mw_dns_send *q = arg;
  channel_entry *e = q->entry;
  e->pending--;
  if (q->starting) {
    q->sync_error = status == ARES_SUCCESS ? "the query ended at once" : status_message(status);
    return;
  }
  if (q->cb) {
    e->ch.live--;
    dns_channel_rearm(&e->ch);
    if (status == ARES_SUCCESS && abuf)
      q->cb(q->data, abuf, alen, NULL, NULL);
    else
      q->cb(q->data, NULL, 0, status_kind(status), status_message(status));
  }
  free(q);
}

mw_dns_send *dns_send_start(mw_loop *loop, const char *servers, const char *name, int type,
                            mw_dns_send_fn cb, void *data, const char **error) {
  send_set *set = set_get(loop, error);
  if (!set)
    return NULL;
  if (!servers) {
    mw_resolver *r = resolver_get(loop, error);
    if (!r)
      return NULL;
    servers = resolver_servers(r);
  }
  channel_entry *e = channel_for(set, servers, error);
  if (!e)
    return NULL;
  unsigned char *qbuf = NULL;
  int qlen = 0;
  int rc = ares_create_query(name, C_IN, type, 0, 1, &qbuf, &qlen, EDNS_UDP_SIZE);
  if (rc != ARES_SUCCESS) {
    *error = rc == ARES_EBADNAME ? "not a valid DNS name" : ares_strerror(rc);
    return NULL;
  }
  mw_dns_send *q = calloc(1, sizeof *q);
  if (!q) {
    ares_free_string(qbuf);
    *error = "out of memory";
    return NULL;
  }
  q->entry = e;
  q->cb = cb;
  q->data = data;
  q->starting = 1;
  e->pending++;
  e->used = uv_now(&loop->uv);
  ares_send(e->ch.channel, qbuf, qlen, send_done, q);
  ares_free_string(qbuf);
  q->starting = 0;
  if (q->sync_error) {
    *error = q->sync_error;
    free(q);
    return NULL;
  }
  e->ch.live++;
  dns_channel_rearm(&e->ch);
  return q;
}

void dns_send_cancel(mw_dns_send *q) {
  if (q->cb) {
    q->cb = NULL;
    q->entry->ch.live--;
    dns_channel_rearm(&q->entry->ch);
  }
}
