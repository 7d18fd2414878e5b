/* L0: wall-clock time in a named IANA time zone ("Europe/Berlin", "UTC"),
 * which the C library (and Lua's os.date) knows only for the process's zone.
 *
 * Zones are the TZif files of Debian's tzdata under MW_TZ_DIR. A name is
 * refused unless it is a relative path of plain components (no "..", no
 * leading '/') naming a TZif file there; "UTC" is known without tzdata. */
#ifndef MW_TZ_H
#define MW_TZ_H

#include <time.h>

#define MW_TZ_DIR "/usr/share/zoneinfo"
#define MW_TZ_NAME_MAX 255

/* Makes TZ set for good (":/etc/localtime", what an unset TZ means, when it
 * is unset), so that later swaps only replace its value and never add or
 * remove an environment entry: threads of libuv's pool (SQLite, curl's
 * SMTP) may read the environment meanwhile. Call before any such thread
 * starts; idempotent. */
void tz_init(void);

/* What tz_localtime and tz_mktime return. */
#define MW_TZ_OK 0
#define MW_TZ_UNKNOWN (-1) /* no such zone, or a name that is not a zone's */
#define MW_TZ_RANGE (-2)   /* a time the C library cannot represent */
#define MW_TZ_NOMEM (-3)   /* no memory to swap TZ */

/* t's wall clock in zone into *out (tm_gmtoff: seconds east of UTC,
 * tm_isdst: 1 in summer time). */
int tz_localtime(time_t t, const char *zone, struct tm *out);

/* The Unix time at which zone's wall clock reads *wall (tm_year, tm_mon,
 * tm_mday, tm_hour, tm_min, tm_sec; out-of-range fields are normalised as
 * timegm does, so day 32 is the next month's first; tm_isdst is ignored).
 * A wall time skipped by a change of offset (the spring-forward gap) is read
 * with the offset before the change, so it lands as far after the jump as
 * it was after the gap's start (02:30 in Berlin's gap is 03:30 CEST); a wall
 * time that happens twice (the autumn overlap) is its first occurrence.
 * Offsets are looked up a day either side, so this holds for zones whose
 * changes are more than two days apart, which is all of tzdata's today. */
int tz_mktime(const struct tm *wall, const char *zone, time_t *out);

#endif
