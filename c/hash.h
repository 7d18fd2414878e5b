/* The one string hash of the core (FNV-1a, 32 bits): small tables keyed by
 * host names and monitor names, where speed matters more than spread. */
#ifndef MW_HASH_H
#define MW_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t hash_bytes(const char *s, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

static inline uint32_t hash_string(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

#endif
