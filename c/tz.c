/* L0: wall-clock time in a named time zone (see tz.h).
 *
 * The C library converts only in the zone TZ names, so a conversion sets TZ
 * to the zone's file, calls tzset, converts with localtime_r, then puts TZ
 * back as it was (or unsets it) and calls tzset again, all before it
 * returns. That is safe here because the environment and the zone state are
 * written only by the loop's thread: the watchdog's sampler thread reads
 * clocks and sends a signal, nothing else; curl is handed c-ares's addresses,
 * so it starts no resolver thread; and threads that may read the environment
 * (libuv's pool) see TZ's entry replaced in place, never added or removed,
 * once tz_init has run (glibc keeps the strings setenv replaced). The
 * logger (log.c) calls localtime_r on the loop's thread too, so never in the
 * middle of a swap, and what it caches is the text of one second in the
 * process's zone, which is the zone again by the time it runs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* tm_gmtoff, timegm */
#endif

#include "tz.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY 86400
#define TZ_VALUE_MAX (sizeof ":" MW_TZ_DIR "/" + MW_TZ_NAME_MAX)

/* The last zone found to be a TZif file: checking opens it, and callers ask
 * about the same few zones again and again. */
static char known_zone[MW_TZ_NAME_MAX + 1];

static bool is_utc(const char *zone) {
  return strcmp(zone, "UTC") == 0;
}

/* A relative path of components of letters, digits and "_+-.", none empty
 * nor starting with '.', so nothing climbs out of MW_TZ_DIR. */
static bool name_plain(const char *zone, size_t len) {
  if (len == 0 || len > MW_TZ_NAME_MAX)
    return false;
  bool component_start = true;
  for (size_t i = 0; i < len; i++) {
    char c = zone[i];
    if (c == '/') {
      if (component_start)
        return false;
      component_start = true;
      continue;
    }
    if (component_start && c == '.')
      return false;
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '+' || c == '-' || c == '.';
    if (!ok)
      return false;
    component_start = false;
  }
  return !component_start;
}

/* True when path is a regular file starting with TZif's magic: the zone
 * directory also holds tables (zone.tab, tzdata.zi) that glibc would
 * silently read as UTC. */
static bool is_tzif(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  struct stat st;
  char magic[4];
  bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
            read(fd, magic, sizeof magic) == (ssize_t)sizeof magic && memcmp(magic, "TZif", 4) == 0;
  close(fd);
  return ok;
}

/* Writes TZ's value for zone (":/usr/share/zoneinfo/Europe/Berlin", the
 * file itself, so TZDIR cannot point elsewhere) into value; false when zone
 * is not a zone. */
static bool zone_value(const char *zone, char *value) {
  size_t len = strlen(zone);
  if (!name_plain(zone, len))
    return false;
  memcpy(value, ":" MW_TZ_DIR "/", sizeof ":" MW_TZ_DIR "/" - 1);
  memcpy(value + sizeof ":" MW_TZ_DIR "/" - 1, zone, len + 1);
  if (strcmp(known_zone, zone) == 0)
    return true;
  if (!is_tzif(value + 1))
    return false;
  memcpy(known_zone, zone, len + 1);
  return true;
}

void tz_init(void) {
  if (!getenv("TZ")) {
    setenv("TZ", ":/etc/localtime", 1);
    tzset();
  }
}

typedef struct {
  char *saved; /* TZ's value before the swap, or NULL when it was unset */
} tz_swap;

static bool swap_in(tz_swap *sw, const char *value) {
  const char *old = getenv("TZ");
  sw->saved = NULL;
  if (old && !(sw->saved = strdup(old)))
    return false;
  if (setenv("TZ", value, 1) != 0) {
    free(sw->saved);
    return false;
  }
  tzset();
  return true;
}

static void swap_out(tz_swap *sw) {
  if (sw->saved)
    setenv("TZ", sw->saved, 1);
  else
    unsetenv("TZ");
  free(sw->saved);
  tzset();
}

int tz_localtime(time_t t, const char *zone, struct tm *out) {
  if (is_utc(zone))
    return gmtime_r(&t, out) ? MW_TZ_OK : MW_TZ_RANGE;
  char value[TZ_VALUE_MAX];
  if (!zone_value(zone, value))
    return MW_TZ_UNKNOWN;
  tz_swap sw;
  if (!swap_in(&sw, value))
    return MW_TZ_NOMEM;
  bool ok = localtime_r(&t, out) != NULL;
  swap_out(&sw);
  return ok ? MW_TZ_OK : MW_TZ_RANGE;
}

static bool offset_at(time_t t, long *offset) {
  struct tm tm;
  if (!localtime_r(&t, &tm))
    return false;
  *offset = tm.tm_gmtoff;
  return true;
}

static bool fits_offset(time_t t, time_t naive) {
  long offset;
  return offset_at(t, &offset) && t + offset == naive;
}

/* naive: the wall time read as if it were UTC. The instant is naive minus
 * the offset in force then, which is the offset a day before or a day after;
 * either, both (an overlap: the earlier) or neither (a gap: the one before)
 * fits. In the process's zone, which the caller set. */
static int wall_resolve(time_t naive, time_t *out) {
  long before, after;
  if (!offset_at(naive - DAY, &before) || !offset_at(naive + DAY, &after))
    return MW_TZ_RANGE;
  time_t early = naive - before, late = naive - after;
  if (early > late) {
    time_t swap = early;
    early = late;
    late = swap;
  }
  if (fits_offset(early, naive))
    *out = early;
  else if (fits_offset(late, naive))
    *out = late;
  else
    *out = naive - before;
  return MW_TZ_OK;
}

int tz_mktime(const struct tm *wall, const char *zone, time_t *out) {
  struct tm w = *wall;
  w.tm_isdst = 0;
  time_t naive = timegm(&w);
  if (naive == (time_t)-1 &&
      !(w.tm_year == 69 && w.tm_yday == 364 && w.tm_hour == 23 && w.tm_min == 59 && w.tm_sec == 59))
    return MW_TZ_RANGE;
  if (is_utc(zone)) {
    *out = naive;
    return MW_TZ_OK;
  }
  char value[TZ_VALUE_MAX];
  if (!zone_value(zone, value))
    return MW_TZ_UNKNOWN;
  tz_swap sw;
  if (!swap_in(&sw, value))
    return MW_TZ_NOMEM;
  int rc = wall_resolve(naive, out);
  swap_out(&sw);
  return rc;
}
