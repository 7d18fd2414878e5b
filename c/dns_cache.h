/* L0: the resolver's cache of answers, by host name, with a TTL. Times are
 * the caller's milliseconds (the loop's clock), so a test can inject them. */
#ifndef MW_DNS_CACHE_H
#define MW_DNS_CACHE_H

#include <stdint.h>

#define MW_DNS_CACHE_BUCKETS 1024
/* Past this many names the cache starts over: bounded whatever names
 * redirects lead to. */
#define MW_DNS_CACHE_MAX 4096
#define MW_DNS_CACHE_TTL_MAX_MS 300000

typedef struct mw_dns_entry mw_dns_entry;

typedef struct {
  int enabled;
  int count;
  mw_dns_entry *buckets[MW_DNS_CACHE_BUCKETS];
} mw_dns_cache;

/* Keeps addrs for host for ttl_s seconds (at most MW_DNS_CACHE_TTL_MAX_MS);
 * nothing when disabled, when ttl_s <= 0 or when out of memory. */
void dns_cache_put(mw_dns_cache *c, const char *host, const char *addrs, int ttl_s,
                   uint64_t now_ms);
/* The addresses of host, or NULL (an expired entry is dropped). */
const char *dns_cache_get(mw_dns_cache *c, const char *host, uint64_t now_ms);
void dns_cache_clear(mw_dns_cache *c);

#endif
