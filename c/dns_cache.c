/* L0: the resolver's TTL cache: a chained hash table of host -> addresses. */
#include <stdlib.h>
#include <string.h>

#include "dns_cache.h"
#include "hash.h"

struct mw_dns_entry {
  mw_dns_entry *next;
  uint64_t expires_ms;
  char *addrs;
  char host[];
};

void dns_cache_clear(mw_dns_cache *c) {
  for (int i = 0; i < MW_DNS_CACHE_BUCKETS; i++) {
    mw_dns_entry *e = c->buckets[i];
    while (e) {
      mw_dns_entry *next = e->next;
      free(e->addrs);
      free(e);
      e = next;
    }
    c->buckets[i] = NULL;
  }
  c->count = 0;
}

void dns_cache_put(mw_dns_cache *c, const char *host, const char *addrs, int ttl_s,
                   uint64_t now_ms) {
  if (!c->enabled || ttl_s <= 0)
    return;
  if (c->count >= MW_DNS_CACHE_MAX)
    dns_cache_clear(c);
  uint32_t b = hash_string(host) % MW_DNS_CACHE_BUCKETS;
  uint64_t ttl_ms = (uint64_t)ttl_s * 1000;
  if (ttl_ms > MW_DNS_CACHE_TTL_MAX_MS)
    ttl_ms = MW_DNS_CACHE_TTL_MAX_MS;
  for (mw_dns_entry *e = c->buckets[b]; e; e = e->next) {
    if (strcmp(e->host, host) == 0) {
      char *copy = strdup(addrs);
      if (!copy)
        return;
      free(e->addrs);
      e->addrs = copy;
      e->expires_ms = now_ms + ttl_ms;
      return;
    }
  }
  size_t len = strlen(host);
  mw_dns_entry *e = malloc(sizeof *e + len + 1);
  if (!e)
    return;
  e->addrs = strdup(addrs);
  if (!e->addrs) {
    free(e);
    return;
  }
  memcpy(e->host, host, len + 1);
  e->expires_ms = now_ms + ttl_ms;
  e->next = c->buckets[b];
  c->buckets[b] = e;
  c->count++;
}

const char *dns_cache_get(mw_dns_cache *c, const char *host, uint64_t now_ms) {
  if (!c->enabled)
    return NULL;
  uint32_t b = hash_string(host) % MW_DNS_CACHE_BUCKETS;
  for (mw_dns_entry **p = &c->buckets[b]; *p; p = &(*p)->next) {
    mw_dns_entry *e = *p;
    if (strcmp(e->host, host) != 0)
      continue;
    if (e->expires_ms > now_ms)
      return e->addrs;
    *p = e->next;
    free(e->addrs);
    free(e);
    c->count--;
    return NULL;
  }
  return NULL;
}
