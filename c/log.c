/* Logger: the format is compiled once into segments; a record is rendered
 * into a reusable buffer and queued; the queue goes out in one write(2)
 * whenever the output takes it.
 *
 * Text formats are the part of Python's %-formatting that log formats use:
 * %(key)s, a width (with '-' to pad on the right), %(key)0Nd for the integer
 * keys. created always prints with 6 decimals (Python's %(created)f) and
 * msecs as the integer milliseconds, so no float printer is needed there
 * (only number fields use snprintf); anything else is refused when the
 * format is compiled. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* MSG_NOSIGNAL, O_NOCTTY; localtime_r, clock_gettime */
#endif

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUF_INIT 4096
#define LOG_BATCH_MAX (64 * 1024) /* a batch this big is written at once */
#define LOG_PEND_INIT (16 * 1024)
#define LOG_LIMIT_MIN 4096
#define LOG_WIDTH_MAX 1000 /* larger is surely a typo */

enum {
  KEY_ASCTIME,
  KEY_LEVELNAME,
  KEY_LEVELNO,
  KEY_NAME,
  KEY_MESSAGE,
  KEY_CREATED,
  KEY_MSECS,
  KEY_PROCESS,
  KEY_MONITOR,
  SEG_LITERAL,
};

static const struct {
  const char *name;
  bool integer; /* takes d */
} log_keys[] = {
    [KEY_ASCTIME] = {"asctime", false}, [KEY_LEVELNAME] = {"levelname", false},
    [KEY_LEVELNO] = {"levelno", true},  [KEY_NAME] = {"name", false},
    [KEY_MESSAGE] = {"message", false}, [KEY_CREATED] = {"created", false},
    [KEY_MSECS] = {"msecs", true},      [KEY_PROCESS] = {"process", true},
    [KEY_MONITOR] = {"monitor", false},
};

typedef struct {
  unsigned char key; /* KEY_* or SEG_LITERAL */
  bool left;         /* '-' flag */
  bool zero;         /* '0' flag (d only) */
  bool plain;        /* bare %(key)s: copy the value, no padding work */
  int width;         /* 0: none */
  size_t lit_off, lit_len;
} log_seg;

/* Local time text for one second; refreshed only when the second changes,
 * because localtime_r + strftime dominate the cost of a record otherwise. */
typedef struct {
  bool valid;
  long long sec;
  char asc[32]; /* "2020-08-08 17:06:42" */
  size_t asc_len;
  char iso[32]; /* "2020-08-08T17:06:42" */
  size_t iso_len;
  char tz[8]; /* "+02:00" */
  size_t tz_len;
} log_time_cache;

enum {
  OUT_UNSET,  /* not looked at yet: fstat and reopen at the first write */
  OUT_FILE,   /* regular file (or anything else that cannot say EAGAIN) */
  OUT_STREAM, /* pipe, FIFO, terminal, character device: written non-blocking */
  OUT_SOCKET, /* send(MSG_DONTWAIT): no flag changes on a shared socket */
};

struct mw_logger {
  int level;
  bool json;
  bool shows_monitor; /* a text format with %(monitor)s */
  long long pid;      /* at creation: getpid() per record is a syscall */
  log_seg *segs;
  size_t nsegs;
  char *lits;
  log_time_cache tc;
  char *buf;
  size_t buf_cap;
  char *esc; /* escaped name or message, only for a padded or cut key */
  size_t esc_cap;

  /* the output */
  int fd; /* as given */
  bool fd_owned;
  int kind;       /* OUT_* */
  int wfd;        /* written to: fd, or our non-blocking reopening of it */
  int restore_fl; /* >= 0: fd's status flags before we set O_NONBLOCK */
  bool atomic;    /* a pipe: writes of whole records up to PIPE_BUF */
  char *path;     /* of logger_open_file, for logger_reopen */
  char what[256]; /* the output in messages: its path, "stdout", "fd 5" */

  /* the queue: whole records, the first maybe partly written */
  bool batch; /* records wait until logger_flush */
  char *pend;
  size_t pend_off, pend_len, pend_cap, pend_max;
  uint32_t *recs; /* lengths of the queued records, from rec_head */
  size_t rec_head, rec_n, rec_cap;
  size_t head_done;                 /* bytes of the first record already written */
  bool blocked;                     /* the output said EAGAIN: wait until it is writable */
  int err;                          /* errno of the failing output, said on stderr; 0: works */
  unsigned long long dropped;       /* since the last WARNING about it */
  unsigned long long lost;          /* dropped while err was set */
  unsigned long long dropped_total; /* since creation */
  char drop_why[320];               /* why the first of `dropped` went */
};

typedef struct {
  long long sec;
  int usec; /* 0..999999 */
} log_time;

/* ---- output buffer: counts everything, stores what fits (snprintf-like) ---- */

typedef struct {
  char *p;
  size_t cap;
  size_t len;
} log_out;

static inline void out_put(log_out *o, const void *s, size_t n) {
  if (n == 0) {
    return;
  }
  if (o->len < o->cap) {
    size_t room = o->cap - o->len;
    memcpy(o->p + o->len, s, n < room ? n : room);
  }
  o->len += n;
}

static inline void out_ch(log_out *o, char c) {
  if (o->len < o->cap) {
    o->p[o->len] = c;
  }
  o->len++;
}

static void out_fill(log_out *o, char c, size_t n) {
  if (o->len < o->cap) {
    size_t room = o->cap - o->len;
    memset(o->p + o->len, c, n < room ? n : room);
  }
  o->len += n;
}

/* ---- small helpers ---- */

/* Writes v's decimal digits ending just before end; returns the count. */
static size_t fmt_u64(char *end, unsigned long long v) {
  char *p = end;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return (size_t)(end - p);
}

static inline void put_3digits(char *p, int v) {
  p[0] = (char)('0' + v / 100);
  p[1] = (char)('0' + v / 10 % 10);
  p[2] = (char)('0' + v % 10);
}

static size_t utf8_chars(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++) {
    c += ((unsigned char)s[i] & 0xC0) != 0x80;
  }
  return c;
}

/* Largest cut <= max that does not split a UTF-8 sequence (s has > max bytes). */
static size_t utf8_cut(const char *s, size_t max) {
  size_t cut = max;
  while (cut > 0 && max - cut < 3 && ((unsigned char)s[cut] & 0xC0) == 0x80) {
    cut--;
  }
  return cut;
}

/* Length of the valid UTF-8 sequence at s, or 0 (Unicode table 3-7: no
 * overlongs, surrogates or code points above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  unsigned lo = 0x80, hi = 0xBF;
  size_t len;
  if (c < 0x80) {
    return 1;
  } else if (c < 0xC2) {
    return 0;
  } else if (c < 0xE0) {
    len = 2;
  } else if (c < 0xF0) {
    len = 3;
    lo = c == 0xE0 ? 0xA0 : 0x80;
    hi = c == 0xED ? 0x9F : 0xBF;
  } else if (c < 0xF5) {
    len = 4;
    lo = c == 0xF0 ? 0x90 : 0x80;
    hi = c == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if (n < len || s[1] < lo || s[1] > hi) {
    return 0;
  }
  for (size_t i = 2; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) {
      return 0;
    }
  }
  return len;
}

static log_time time_from_double(double t) {
  log_time r = {0, 0};
  if (!(t > -9e15 && t < 9e15)) { /* also NaN */
    return r;
  }
  r.sec = (long long)t;
  if ((double)r.sec > t) {
    r.sec--;
  }
  /* Round to the microsecond so 1596906402.033 (stored as ...032999992)
   * shows ,033; milliseconds then truncate like Python 3.13's msecs. */
  long long us = (long long)((t - (double)r.sec) * 1e6 + 0.5);
  if (us >= 1000000) {
    r.sec++;
    us -= 1000000;
  }
  r.usec = (int)us;
  return r;
}

static void time_cache_update(log_time_cache *tc, long long sec) {
  if (tc->valid && tc->sec == sec) {
    return;
  }
  time_t tt = (time_t)sec;
  struct tm tm;
  if (!localtime_r(&tt, &tm)) {
    memset(&tm, 0, sizeof tm);
  }
  tc->asc_len = strftime(tc->asc, sizeof tc->asc, "%Y-%m-%d %H:%M:%S", &tm);
  tc->iso_len = strftime(tc->iso, sizeof tc->iso, "%Y-%m-%dT%H:%M:%S", &tm);
  char z[16];
  if (strftime(z, sizeof z, "%z", &tm) == 5) { /* "+0200" -> "+02:00" (RFC 3339) */
    memcpy(tc->tz, z, 3);
    tc->tz[3] = ':';
    memcpy(tc->tz + 4, z + 3, 2);
    tc->tz_len = 6;
  } else {
    memcpy(tc->tz, "Z", 1);
    tc->tz_len = 1;
  }
  tc->sec = sec;
  tc->valid = true;
}

/* ---- levels ---- */

const char *logger_level_name(int level) {
  switch (level) {
  case MW_LOG_DEBUG:
    return "DEBUG";
  case MW_LOG_INFO:
    return "INFO";
  case MW_LOG_WARNING:
    return "WARNING";
  case MW_LOG_ERROR:
    return "ERROR";
  case MW_LOG_CRITICAL:
    return "CRITICAL";
  default:
    return NULL;
  }
}

/* Level name, or "Level N" (Python's label for unnamed levels) built in tmp. */
static const char *level_label(int level, char tmp[32], size_t *len) {
  const char *name = logger_level_name(level);
  if (name) {
    *len = strlen(name);
    return name;
  }
  *len = (size_t)snprintf(tmp, 32, "Level %d", level);
  return tmp;
}

static bool ascii_ieq(const char *s, size_t n, const char *upper) {
  size_t i = 0;
  for (; i < n && upper[i]; i++) {
    char c = s[i];
    if (c >= 'a' && c <= 'z') {
      c = (char)(c - 'a' + 'A');
    }
    if (c != upper[i]) {
      return false;
    }
  }
  return i == n && upper[i] == '\0';
}

int logger_parse_level(const char *s, size_t len, int *level) {
  static const struct {
    const char *name;
    int level;
  } names[] = {
      {"DEBUG", MW_LOG_DEBUG},    {"INFO", MW_LOG_INFO},   {"WARNING", MW_LOG_WARNING},
      {"WARN", MW_LOG_WARNING},   {"ERROR", MW_LOG_ERROR}, {"CRITICAL", MW_LOG_CRITICAL},
      {"FATAL", MW_LOG_CRITICAL},
  };
  if (!s || len == 0) {
    return -1;
  }
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (ascii_ieq(s, len, names[i].name)) {
      *level = names[i].level;
      return 0;
    }
  }
  long long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9' || i >= 9) { /* 9 digits keep it inside int */
      return -1;
    }
    v = v * 10 + (s[i] - '0');
  }
  *level = (int)v;
  return 0;
}

int logger_level(const mw_logger *lg) {
  return lg->level;
}

void logger_set_level(mw_logger *lg, int level) {
  lg->level = level;
}

bool logger_enabled(const mw_logger *lg, int level) {
  return level >= lg->level;
}

/* ---- format compilation ---- */

static void set_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errsz, const char *fmt, ...) {
  if (!err || errsz == 0) {
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errsz, fmt, ap);
  va_end(ap);
}

/* Directive text for error messages: at most 40 bytes of it. */
#define DIR_ARGS(start, end) (int)((end) - (start) > 40 ? 40 : (end) - (start)), (start)

static int parse_num(const char **pp, int *out) {
  const char *p = *pp;
  long v = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v <= LOG_WIDTH_MAX) { /* stop growing: no overflow on long digit runs */
      v = v * 10 + (*p - '0');
    }
  }
  *pp = p;
  if (v > LOG_WIDTH_MAX) {
    return -1;
  }
  *out = (int)v;
  return 0;
}

static int format_reject(char *err, size_t errsz, const char *fmt, const char *start,
                         const char *why, ...) __attribute__((format(printf, 5, 6)));

/* Refuses the directive at start, quoted through its conversion character
 * (what Python would take as the directive), with its position and why. */
static int format_reject(char *err, size_t errsz, const char *fmt, const char *start,
                         const char *why, ...) {
  char reason[160];
  va_list ap;
  va_start(ap, why);
  vsnprintf(reason, sizeof reason, why, ap);
  va_end(ap);
  const char *end = start + 1;
  if (*end == '(') {
    const char *close = strchr(end, ')');
    end = close ? close + 1 : end + strlen(end);
    end += strspn(end, "-0+ #.123456789*hlL");
  }
  if (*end) {
    end++;
  }
  set_err(err, errsz, "log.format: '%.*s' at position %zu is not supported (%s); use %s",
          DIR_ARGS(start, end), (size_t)(start - fmt), reason,
          "%(key)s, %(key)-8s, %(key)8s, %(msecs)03d or %%");
  return -1;
}

static int compile_format(mw_logger *lg, const char *fmt, char *err, size_t errsz) {
  size_t n = strlen(fmt);
  /* Each key segment takes >= 5 format bytes ("%(x)s") and literals merge,
   * so segments alternate: at most n / 2 + 2 of them. */
  lg->segs = calloc(n / 2 + 2, sizeof *lg->segs);
  lg->lits = malloc(n + 1);
  if (!lg->segs || !lg->lits) {
    set_err(err, errsz, "log.format: out of memory");
    return -1;
  }
  size_t lit_len = 0;
  log_seg *lit = NULL; /* literal segment being extended */
  const char *p = fmt;
  while (*p) {
    if (*p != '%' || p[1] == '%') {
      if (!lit) {
        lit = &lg->segs[lg->nsegs++];
        lit->key = SEG_LITERAL;
        lit->lit_off = lit_len;
      }
      lg->lits[lit_len++] = *p;
      p += *p == '%' ? 2 : 1;
      lit->lit_len++;
      continue;
    }
    const char *start = p;
    if (p[1] == '\0') {
      return format_reject(err, errsz, fmt, start, "a lone '%%' at the end");
    }
    if (p[1] != '(') {
      return format_reject(err, errsz, fmt, start, "no (key) after the '%%'");
    }
    const char *key = p + 2;
    const char *close = strchr(key, ')');
    if (!close) {
      return format_reject(err, errsz, fmt, start, "no ')' after the key");
    }
    size_t key_len = (size_t)(close - key);
    log_seg seg = {.key = SEG_LITERAL};
    for (unsigned k = 0; k < sizeof log_keys / sizeof log_keys[0]; k++) {
      if (strlen(log_keys[k].name) == key_len && memcmp(log_keys[k].name, key, key_len) == 0) {
        seg.key = (unsigned char)k;
      }
    }
    if (seg.key == SEG_LITERAL) {
      return format_reject(err, errsz, fmt, start,
                           "unknown key '%.*s'; the keys are asctime, levelname, levelno, name, "
                           "message, created, msecs, process, monitor",
                           (int)(key_len > 40 ? 40 : key_len), key);
    }
    p = close + 1;
    if (*p == '-') {
      seg.left = true;
      p++;
    } else if (*p == '0') {
      seg.zero = true;
      p++;
    }
    if (parse_num(&p, &seg.width) < 0) {
      return format_reject(err, errsz, fmt, start, "width over %d", LOG_WIDTH_MAX);
    }
    char conv = *p;
    if (conv == '\0') {
      return format_reject(err, errsz, fmt, start, "no conversion after the key");
    } else if (conv == '.') {
      return format_reject(err, errsz, fmt, start, "precision");
    } else if (strchr("-0+ #", conv)) {
      return format_reject(err, errsz, fmt, start, "flag '%c'", conv);
    } else if (strchr("hlL", conv)) {
      return format_reject(err, errsz, fmt, start, "length modifier '%c'", conv);
    } else if (conv != 's' && conv != 'd') {
      return format_reject(err, errsz, fmt, start, "conversion '%c'", conv);
    } else if (conv == 'd' && !log_keys[seg.key].integer) {
      return format_reject(err, errsz, fmt, start,
                           "d is for the integer keys levelno, msecs and process");
    } else if (seg.zero && conv != 'd') {
      return format_reject(err, errsz, fmt, start, "flag '0' needs d");
    }
    p++;
    seg.plain = seg.width == 0;
    lg->shows_monitor = lg->shows_monitor || seg.key == KEY_MONITOR;
    lg->segs[lg->nsegs++] = seg;
    lit = NULL;
  }
  return 0;
}

/* ---- record rendering ---- */

static void emit_padded(log_out *o, const log_seg *s, const char *p, size_t n, size_t chars) {
  size_t pad = (size_t)s->width > chars ? (size_t)s->width - chars : 0;
  if (!s->left) {
    out_fill(o, ' ', pad);
  }
  out_put(o, p, n);
  if (s->left) {
    out_fill(o, ' ', pad);
  }
}

static void emit_str(log_out *o, const log_seg *s, const char *p, size_t n) {
  if (s->plain) {
    out_put(o, p, n);
    return;
  }
  emit_padded(o, s, p, n, utf8_chars(p, n));
}

/* name and message: capped at MW_LOG_MSG_MAX bytes plus the marker. cut:
 * the caller already cut the text (escaping comes after the cap). */
static void emit_capped(log_out *o, const log_seg *s, const char *p, size_t n, bool cut) {
  if (n <= MW_LOG_MSG_MAX && !cut) {
    emit_str(o, s, p, n);
    return;
  }
  /* width is irrelevant: it is at most LOG_WIDTH_MAX characters */
  out_put(o, p, n <= MW_LOG_MSG_MAX ? n : utf8_cut(p, MW_LOG_MSG_MAX));
  out_put(o, MW_LOG_TRUNCATED, sizeof MW_LOG_TRUNCATED - 1);
}

/* Length of the character at s[i] when the text format shows it as it is,
 * else 0: C0 controls but newline and tab, DEL, C1 controls and bytes that
 * are not UTF-8 would reach a terminal raw. */
static inline size_t text_safe_at(const unsigned char *s, size_t i, size_t n) {
  unsigned c = s[i];
  if ((c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t') {
    return 1;
  }
  if (c < 0x80) {
    return 0;
  }
  size_t k = utf8_seq(s + i, n - i);
  return k && !(c == 0xC2 && s[i + 1] < 0xA0) ? k : 0;
}

/* Index of the first byte to escape, or n: one scan, no copy. */
static size_t text_unsafe(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    if (s[i] >= 0x20 && s[i] < 0x7f) { /* the common case, inline */
      i++;
      continue;
    }
    size_t k = text_safe_at(s, i, n);
    if (!k) {
      return i;
    }
    i += k;
  }
  return n;
}

/* Escaped text; the bytes before `from` are known to be safe. */
static void emit_text_escaped(log_out *o, const char *str, size_t n, size_t from) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str;
  size_t run = 0, i = from;
  while (i < n) {
    size_t k = text_safe_at(s, i, n);
    if (k) {
      i += k;
      continue;
    }
    out_put(o, s + run, i - run);
    unsigned c = s[i];
    if (c == 0xC2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] < 0xA0) { /* C1 control */
      char e[6] = {'\\', 'u', '0', '0', hex[s[i + 1] >> 4], hex[s[i + 1] & 15]};
      out_put(o, e, 6);
      i += 2;
    } else if (c == '\r') {
      out_put(o, "\\r", 2);
      i++;
    } else {
      char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
      out_put(o, e, 4);
      i++;
    }
    run = i;
  }
  out_put(o, s + run, i - run);
}

/* name or message in a text format: as it is when nothing needs escaping
 * (no copy), else escaped; a plain %(key)s streams the escapes, a padded or
 * cut one escapes into lg->esc first. */
static void emit_text(mw_logger *lg, log_out *o, const log_seg *s, const char *p, size_t n) {
  size_t scan = n > MW_LOG_MSG_MAX ? MW_LOG_MSG_MAX : n;
  size_t bad = text_unsafe(p, scan);
  if (bad == scan) {
    emit_capped(o, s, p, n, false);
    return;
  }
  bool cut = n > MW_LOG_MSG_MAX;
  if (cut) {
    n = utf8_cut(p, MW_LOG_MSG_MAX);
  }
  size_t need = 4 * n; /* an escape is at most 4 bytes per byte */
  if (!s->plain && lg->esc_cap < need) {
    char *e = realloc(lg->esc, need);
    if (e) {
      lg->esc = e;
      lg->esc_cap = need;
    }
  }
  if (s->plain || lg->esc_cap < need) { /* out of memory: unpadded, still escaped */
    emit_text_escaped(o, p, n, bad);
    if (cut) {
      out_put(o, MW_LOG_TRUNCATED, sizeof MW_LOG_TRUNCATED - 1);
    }
    return;
  }
  log_out e = {lg->esc, lg->esc_cap, 0};
  emit_text_escaped(&e, p, n, bad);
  emit_capped(o, s, lg->esc, e.len, cut);
}

/* An integer key, through s or d: padded with spaces, or zeros after the
 * sign with the '0' flag. */
static void emit_int(log_out *o, const log_seg *s, long long v) {
  char tmp[24];
  char *end = tmp + sizeof tmp;
  size_t nd = fmt_u64(end, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
  size_t total = nd + (v < 0);
  size_t pad = (size_t)s->width > total ? (size_t)s->width - total : 0;
  if (!s->left && !s->zero) {
    out_fill(o, ' ', pad);
  }
  if (v < 0) {
    out_ch(o, '-');
  }
  if (s->zero) {
    out_fill(o, '0', pad);
  }
  out_put(o, end - nd, nd);
  if (s->left) {
    out_fill(o, ' ', pad);
  }
}

/* created with 6 decimals, as Python's %(created)f prints it. */
static void emit_created(log_out *o, const log_seg *s, log_time t) {
  char tmp[32];
  char *end = tmp + sizeof tmp, *p = end;
  bool neg = t.sec < 0;
  /* usec counts up from the floored second: -1.5 is sec -2 + 500000 us */
  unsigned long long whole =
      neg ? (unsigned long long)-(t.sec + 1) + (t.usec == 0) : (unsigned long long)t.sec;
  int frac = neg && t.usec ? 1000000 - t.usec : t.usec;
  for (int i = 0; i < 6; i++) {
    *--p = (char)('0' + frac % 10);
    frac /= 10;
  }
  *--p = '.';
  p -= fmt_u64(p, whole);
  if (neg) {
    *--p = '-';
  }
  emit_padded(o, s, p, (size_t)(end - p), (size_t)(end - p));
}

/* A number field as JSON text (also what %(monitor)s shows), with digits
 * enough to read back as v and a ".0" when it would look like an integer;
 * NULL when not finite. */
static const char *number_text(double v, char tmp[40], size_t *len) {
  if (!isfinite(v)) {
    return NULL;
  }
  /* Timings and sizes have at most 6 decimals: integer digits then, when
   * n / 1e6 is v (the division rounds once, as strtod would read the
   * digits), without snprintf and strtod (~300 ns a number here). */
  double a = fabs(v);
  if (a < 9e9) {
    long long n = (long long)(a * 1e6 + 0.5);
    if ((double)n / 1e6 == a) {
      char *end = tmp + 40, *p = end;
      long long frac = n % 1000000;
      int digits = 6;
      for (; digits > 1 && frac % 10 == 0; digits--) {
        frac /= 10;
      }
      for (int i = 0; i < digits; i++) {
        *--p = (char)('0' + frac % 10);
        frac /= 10;
      }
      *--p = '.';
      p -= fmt_u64(p, (unsigned long long)(n / 1000000));
      if (signbit(v)) {
        *--p = '-';
      }
      *len = (size_t)(end - p);
      return p;
    }
  }
  int n = snprintf(tmp, 40, "%.15g", v);
  if (strtod(tmp, NULL) != v) {
    n = snprintf(tmp, 40, "%.17g", v);
  }
  size_t k = (size_t)n;
  for (size_t i = 0; i < k; i++) {
    if (tmp[i] == ',') { /* a config's os.setlocale made the point a comma */
      tmp[i] = '.';
    }
  }
  if (strspn(tmp, "-0123456789") == k) {
    tmp[k++] = '.';
    tmp[k++] = '0';
  }
  *len = k;
  return tmp;
}

static const mw_log_field *field_find(const mw_log_field *f, size_t n, const char *key,
                                      size_t key_len) {
  for (size_t i = 0; i < n; i++) {
    if (f[i].key_len == key_len && memcmp(f[i].key, key, key_len) == 0) {
      return &f[i];
    }
  }
  return NULL;
}

/* %(monitor)s: the field's value, "-" without one. Not inlined, like
 * json_fields: the code for fields stays out of format_at, which every
 * record runs. */
static __attribute__((noinline)) void emit_monitor(mw_logger *lg, log_out *o, const log_seg *s,
                                                   const mw_log_field *fields, size_t nfields) {
  const mw_log_field *f = field_find(fields, nfields, "monitor", 7);
  char tmp[40];
  size_t n = 1;
  const char *p = "-";
  if (f && f->type == MW_LOG_FIELD_STRING) {
    emit_text(lg, o, s, f->str, f->str_len);
    return;
  } else if (f && f->type == MW_LOG_FIELD_INT) {
    emit_int(o, s, f->i);
    return;
  } else if (f && f->type == MW_LOG_FIELD_NUMBER) {
    p = number_text(f->num, tmp, &n);
    if (!p) {
      n = (size_t)snprintf(tmp, sizeof tmp, "%g", f->num); /* nan, inf, -inf */
      p = tmp;
    }
  } else if (f && f->type == MW_LOG_FIELD_BOOL) {
    p = f->b ? "true" : "false";
    n = strlen(p);
  }
  emit_str(o, s, p, n);
}

static void render_text(mw_logger *lg, log_out *o, log_time t, int level, const char *name,
                        size_t name_len, const char *msg, size_t msg_len,
                        const mw_log_field *fields, size_t nfields) {
  for (size_t i = 0; i < lg->nsegs; i++) {
    const log_seg *s = &lg->segs[i];
    switch (s->key) {
    case SEG_LITERAL:
      out_put(o, lg->lits + s->lit_off, s->lit_len);
      break;
    case KEY_ASCTIME: {
      char tmp[48];
      size_t n = lg->tc.asc_len;
      memcpy(tmp, lg->tc.asc, n);
      tmp[n] = ',';
      put_3digits(tmp + n + 1, t.usec / 1000);
      emit_str(o, s, tmp, n + 4);
      break;
    }
    case KEY_LEVELNAME: {
      char tmp[32];
      size_t n;
      const char *l = level_label(level, tmp, &n);
      emit_str(o, s, l, n);
      break;
    }
    case KEY_NAME:
      emit_text(lg, o, s, name, name_len);
      break;
    case KEY_MESSAGE:
      emit_text(lg, o, s, msg, msg_len);
      break;
    case KEY_LEVELNO:
      emit_int(o, s, level);
      break;
    case KEY_CREATED:
      emit_created(o, s, t);
      break;
    case KEY_MSECS:
      emit_int(o, s, t.usec / 1000);
      break;
    case KEY_PROCESS:
      emit_int(o, s, lg->pid);
      break;
    case KEY_MONITOR:
      emit_monitor(lg, o, s, fields, nfields);
      break;
    }
  }
}

/* RFC 8259 string body; invalid UTF-8 bytes become U+FFFD, one per byte.
 * DEL and C1 controls are valid JSON as they are, but are escaped too: a
 * JSON log is also read on a terminal. */
static void emit_json_str(log_out *o, const char *str, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str;
  size_t run = 0, i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      i++;
      continue;
    }
    size_t k = c >= 0x80 ? utf8_seq(s + i, n - i) : 0;
    bool c1 = k == 2 && c == 0xC2 && s[i + 1] < 0xA0;
    if (k && !c1) {
      i += k;
      continue;
    }
    out_put(o, s + run, i - run);
    if (c1) {
      char e[6] = {'\\', 'u', '0', '0', hex[s[i + 1] >> 4], hex[s[i + 1] & 15]};
      out_put(o, e, 6);
      i++;
    } else if (c >= 0x80) {
      out_put(o, "\xef\xbf\xbd", 3);
    } else if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      out_put(o, e, 2);
    } else if (c == '\n') {
      out_put(o, "\\n", 2);
    } else if (c == '\t') {
      out_put(o, "\\t", 2);
    } else if (c == '\r') {
      out_put(o, "\\r", 2);
    } else {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      out_put(o, e, 6);
    }
    run = ++i;
  }
  out_put(o, s + run, i - run);
}

static void emit_json_capped(log_out *o, const char *p, size_t n) {
  if (n <= MW_LOG_MSG_MAX) {
    emit_json_str(o, p, n);
    return;
  }
  emit_json_str(o, p, utf8_cut(p, MW_LOG_MSG_MAX));
  out_put(o, MW_LOG_TRUNCATED, sizeof MW_LOG_TRUNCATED - 1);
}

/* The value of a field; depth: 0 at the top, objects inside objects are null. */
static void emit_json_value(log_out *o, const mw_log_field *f, int depth) {
  char tmp[40];
  size_t n;
  const char *p;
  switch (f->type) {
  case MW_LOG_FIELD_STRING:
    out_ch(o, '"');
    emit_json_capped(o, f->str, f->str_len);
    out_ch(o, '"');
    return;
  case MW_LOG_FIELD_INT: {
    unsigned long long v = f->i < 0 ? 0ULL - (unsigned long long)f->i : (unsigned long long)f->i;
    n = fmt_u64(tmp + sizeof tmp, v);
    if (f->i < 0) {
      tmp[sizeof tmp - ++n] = '-';
    }
    out_put(o, tmp + sizeof tmp - n, n);
    return;
  }
  case MW_LOG_FIELD_NUMBER:
    p = number_text(f->num, tmp, &n);
    if (p) {
      out_put(o, p, n);
    } else {
      out_put(o, "null", 4);
    }
    return;
  case MW_LOG_FIELD_BOOL:
    if (f->b) {
      out_put(o, "true", 4);
    } else {
      out_put(o, "false", 5);
    }
    return;
  case MW_LOG_FIELD_OBJECT:
    if (depth > 0) {
      break;
    }
    out_ch(o, '{');
    for (size_t i = 0; i < f->obj_n; i++) {
      const mw_log_field *m = &f->obj[i];
      out_put(o, i ? ",\"" : "\"", i ? 2 : 1);
      emit_json_capped(o, m->key, m->key_len);
      out_put(o, "\":", 2);
      emit_json_value(o, m, depth + 1);
    }
    out_ch(o, '}');
    return;
  }
  out_put(o, "null", 4); /* an object in an object, or an unknown type */
}

/* The standard members of a JSON record, which a field must not repeat. */
static bool json_reserved(const char *key, size_t n) {
  static const char *const names[] = {"time", "level", "logger", "message"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strlen(names[i]) == n && memcmp(names[i], key, n) == 0) {
      return true;
    }
  }
  return false;
}

/* ,"key":value for each field: a standard member's name gets "field_". */
static __attribute__((noinline)) void json_fields(log_out *o, const mw_log_field *fields,
                                                  size_t nfields) {
  for (size_t i = 0; i < nfields; i++) {
    const mw_log_field *f = &fields[i];
    bool renamed = json_reserved(f->key, f->key_len);
    if (renamed) {
      char pre[16];
      memcpy(pre, "field_", 6);
      memcpy(pre + 6, f->key, f->key_len); /* at most "message": 7 bytes */
      if (field_find(fields, nfields, pre, 6 + f->key_len)) {
        continue; /* "field_time" is given too: one of them must go */
      }
      out_put(o, ",\"field_", 8);
    } else {
      out_put(o, ",\"", 2);
    }
    emit_json_capped(o, f->key, f->key_len);
    out_put(o, "\":", 2);
    emit_json_value(o, f, 0);
  }
}

static void render_json(mw_logger *lg, log_out *o, log_time t, int level, const char *name,
                        size_t name_len, const char *msg, size_t msg_len,
                        const mw_log_field *fields, size_t nfields) {
  char tmp[96];
  size_t n = 0;
  memcpy(tmp, "{\"time\":\"", 9);
  n += 9;
  memcpy(tmp + n, lg->tc.iso, lg->tc.iso_len);
  n += lg->tc.iso_len;
  tmp[n++] = '.';
  put_3digits(tmp + n, t.usec / 1000);
  n += 3;
  memcpy(tmp + n, lg->tc.tz, lg->tc.tz_len);
  n += lg->tc.tz_len;
  memcpy(tmp + n, "\",\"level\":\"", 11);
  n += 11;
  out_put(o, tmp, n);
  char lbuf[32];
  const char *l = level_label(level, lbuf, &n);
  out_put(o, l, n);
  out_put(o, "\",\"logger\":\"", 12);
  emit_json_capped(o, name, name_len);
  out_put(o, "\",\"message\":\"", 13);
  emit_json_capped(o, msg, msg_len);
  out_ch(o, '"');
  if (nfields) {
    json_fields(o, fields, nfields);
  }
  out_ch(o, '}');
}

static size_t format_at(mw_logger *lg, char *buf, size_t cap, log_time t, int level,
                        const char *name, size_t name_len, const char *msg, size_t msg_len,
                        const mw_log_field *fields, size_t nfields) {
  log_out o = {buf, cap, 0};
  time_cache_update(&lg->tc, t.sec);
  if (lg->json) {
    render_json(lg, &o, t, level, name, name_len, msg, msg_len, fields, nfields);
  } else {
    render_text(lg, &o, t, level, name, name_len, msg, msg_len, fields, nfields);
  }
  out_ch(&o, '\n');
  if (o.len < cap) {
    buf[o.len] = '\0';
  }
  return o.len;
}

size_t logger_format(mw_logger *lg, char *buf, size_t cap, double wall_time, int level,
                     const char *name, size_t name_len, const char *msg, size_t msg_len) {
  return format_at(lg, buf, cap, time_from_double(wall_time), level, name, name_len, msg, msg_len,
                   NULL, 0);
}

size_t logger_format_fields(mw_logger *lg, char *buf, size_t cap, double wall_time, int level,
                            const char *name, size_t name_len, const char *msg, size_t msg_len,
                            const mw_log_field *fields, size_t nfields) {
  return format_at(lg, buf, cap, time_from_double(wall_time), level, name, name_len, msg, msg_len,
                   fields, nfields);
}

static const char *render_at(mw_logger *lg, log_time t, int level, const char *name,
                             size_t name_len, const char *msg, size_t msg_len,
                             const mw_log_field *fields, size_t nfields, size_t *len) {
  size_t n =
      format_at(lg, lg->buf, lg->buf_cap, t, level, name, name_len, msg, msg_len, fields, nfields);
  if (n >= lg->buf_cap) { /* rare: grow, keep the buffer, format again */
    size_t cap = lg->buf_cap;
    while (cap <= n) {
      cap *= 2;
    }
    char *nb = realloc(lg->buf, cap);
    if (!nb) {
      return NULL;
    }
    lg->buf = nb;
    lg->buf_cap = cap;
    n = format_at(lg, lg->buf, lg->buf_cap, t, level, name, name_len, msg, msg_len, fields,
                  nfields);
  }
  *len = n;
  return lg->buf;
}

const char *logger_render(mw_logger *lg, double wall_time, int level, const char *name,
                          size_t name_len, const char *msg, size_t msg_len, size_t *len) {
  return render_at(lg, time_from_double(wall_time), level, name, name_len, msg, msg_len, NULL, 0,
                   len);
}

const char *logger_render_fields(mw_logger *lg, double wall_time, int level, const char *name,
                                 size_t name_len, const char *msg, size_t msg_len,
                                 const mw_log_field *fields, size_t nfields, size_t *len) {
  return render_at(lg, time_from_double(wall_time), level, name, name_len, msg, msg_len, fields,
                   nfields, len);
}

/* ---- messages on stderr ---- */

/* One non-blocking attempt: a stalled terminal must not stall the loop with
 * a message about a stalled log either. */
static void stderr_write(const char *msg, size_t len) {
  struct stat st;
  ssize_t n = 0;
  if (fstat(2, &st) != 0) {
    return;
  }
  if (S_ISSOCK(st.st_mode)) {
    n = send(2, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
    return;
  }
  int fl = fcntl(2, F_GETFL);
  if (S_ISREG(st.st_mode) || fl < 0 || (fl & O_NONBLOCK)) {
    n = write(2, msg, len);
    (void)n;
    return;
  }
  int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0) {
    n = write(fd, msg, len);
    close(fd);
  } else if (fcntl(2, F_SETFL, fl | O_NONBLOCK) == 0) {
    n = write(2, msg, len);
    fcntl(2, F_SETFL, fl);
  }
  (void)n;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...) {
  char msg[1024];
  size_t n = (size_t)snprintf(msg, sizeof msg, "moonwatch: log: ");
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(msg + n, sizeof msg - n - 1, fmt, ap);
  va_end(ap);
  n += k < 0 ? 0 : (size_t)k < sizeof msg - n - 1 ? (size_t)k : sizeof msg - n - 2;
  msg[n++] = '\n';
  stderr_write(msg, n);
}

/* "1 MiB", "64 KiB", "5000 bytes" */
static const char *size_text(size_t bytes, char tmp[32]) {
  if (bytes % (1024 * 1024) == 0) {
    snprintf(tmp, 32, "%zu MiB", bytes / (1024 * 1024));
  } else if (bytes % 1024 == 0) {
    snprintf(tmp, 32, "%zu KiB", bytes / 1024);
  } else {
    snprintf(tmp, 32, "%zu bytes", bytes);
  }
  return tmp;
}

/* "1 record was", "3 log records were" */
static const char *records_text(unsigned long long n, const char *noun, char tmp[64]) {
  snprintf(tmp, 64, "%llu %s%s", n, noun, n == 1 ? " was" : "s were");
  return tmp;
}

/* ---- the output ---- */

static void output_name(mw_logger *lg) {
  if (lg->path) {
    snprintf(lg->what, sizeof lg->what, "%.250s", lg->path);
  } else if (lg->fd == 1) {
    snprintf(lg->what, sizeof lg->what, "stdout");
  } else if (lg->fd == 2) {
    snprintf(lg->what, sizeof lg->what, "stderr");
  } else {
    snprintf(lg->what, sizeof lg->what, "fd %d", lg->fd);
  }
}

/* Finds a way to write fd that never blocks. */
static void output_setup(mw_logger *lg) {
  lg->kind = OUT_FILE;
  lg->wfd = lg->fd;
  lg->restore_fl = -1;
  lg->atomic = false;
  struct stat st;
  if (fstat(lg->fd, &st) != 0) {
    return; /* writes fail and say why */
  }
  if (S_ISSOCK(st.st_mode)) {
    lg->kind = OUT_SOCKET;
    return;
  }
  if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
    return;
  }
  lg->kind = OUT_STREAM;
  lg->atomic = S_ISFIFO(st.st_mode);
  int fl = fcntl(lg->fd, F_GETFL);
  if (fl < 0 || (fl & O_NONBLOCK) || (fl & O_ACCMODE) == O_RDONLY) {
    return;
  }
  /* A new open file description: O_NONBLOCK on the inherited one would
   * reach the shell and every other process sharing it. */
  char proc[40];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", lg->fd);
  int fd = open(proc, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (fl & O_APPEND));
  struct stat nst;
  if (fd >= 0 && fstat(fd, &nst) == 0 && nst.st_dev == st.st_dev && nst.st_ino == st.st_ino) {
    lg->wfd = fd;
    return;
  }
  if (fd >= 0) {
    close(fd);
  }
  if (fcntl(lg->fd, F_SETFL, fl | O_NONBLOCK) == 0) { /* no /proc, or a FIFO without reader */
    lg->restore_fl = fl;
  }
}

static void output_release(mw_logger *lg, int next_fd) {
  if (lg->kind != OUT_UNSET) {
    if (lg->wfd != lg->fd) {
      close(lg->wfd);
    }
    if (lg->restore_fl >= 0) {
      fcntl(lg->fd, F_SETFL, lg->restore_fl);
    }
  }
  if (lg->fd_owned && lg->fd != next_fd) {
    close(lg->fd);
  }
  lg->kind = OUT_UNSET;
  lg->wfd = -1;
  lg->restore_fl = -1;
}

static ssize_t output_write(mw_logger *lg, const char *p, size_t len) {
  for (;;) {
    ssize_t n = lg->kind == OUT_SOCKET ? send(lg->wfd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL)
                                       : write(lg->wfd, p, len);
    if (n >= 0) {
      return n;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == ENOTSOCK && lg->kind == OUT_SOCKET) {
      lg->kind = OUT_STREAM;
      continue;
    }
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  }
}

static void output_failed(mw_logger *lg, int e) {
  if (lg->err) {
    return; /* said once */
  }
  lg->err = e;
  lg->lost = 0;
  char size[32];
  say("cannot write to %s: %s; records are kept and retried, dropped when %s is full", lg->what,
      strerror(e), size_text(lg->pend_max, size));
}

static void output_works(mw_logger *lg) {
  if (!lg->err) {
    return;
  }
  lg->err = 0;
  char tmp[64];
  if (lg->lost) {
    say("writing to %s works again; %s lost", lg->what, records_text(lg->lost, "record", tmp));
  } else {
    say("writing to %s works again; no records were lost", lg->what);
  }
}

/* ---- the queue ---- */

/* Room for a record of len bytes at the end of the queue, or NULL when the
 * queue is full (or memory is). pend_commit then makes it a record. */
static char *pend_room(mw_logger *lg, size_t len) {
  if (len > lg->pend_max || lg->pend_len > lg->pend_max - len) {
    return NULL;
  }
  if (lg->pend_off + lg->pend_len + len > lg->pend_cap) {
    if (lg->pend_off) {
      memmove(lg->pend, lg->pend + lg->pend_off, lg->pend_len);
      lg->pend_off = 0;
    }
    if (lg->pend_len + len > lg->pend_cap) {
      size_t cap = lg->pend_cap ? lg->pend_cap : LOG_PEND_INIT;
      while (cap < lg->pend_len + len) {
        cap *= 2;
      }
      char *nb = realloc(lg->pend, cap);
      if (!nb) {
        return NULL;
      }
      lg->pend = nb;
      lg->pend_cap = cap;
    }
  }
  if (lg->rec_head + lg->rec_n == lg->rec_cap) {
    if (lg->rec_head) {
      memmove(lg->recs, lg->recs + lg->rec_head, lg->rec_n * sizeof *lg->recs);
      lg->rec_head = 0;
    } else {
      size_t cap = lg->rec_cap ? 2 * lg->rec_cap : 256;
      uint32_t *nr = realloc(lg->recs, cap * sizeof *nr);
      if (!nr) {
        return NULL;
      }
      lg->recs = nr;
      lg->rec_cap = cap;
    }
  }
  return lg->pend + lg->pend_off + lg->pend_len;
}

static void pend_commit(mw_logger *lg, size_t len) {
  lg->recs[lg->rec_head + lg->rec_n++] = (uint32_t)len;
  lg->pend_len += len;
}

/* Removes n written bytes from the front. */
static void pend_consume(mw_logger *lg, size_t n) {
  lg->pend_off += n;
  lg->pend_len -= n;
  n += lg->head_done;
  while (lg->rec_n && n >= lg->recs[lg->rec_head]) {
    n -= lg->recs[lg->rec_head];
    lg->rec_head++;
    lg->rec_n--;
  }
  lg->head_done = n;
  if (!lg->pend_len) {
    lg->pend_off = lg->rec_head = lg->head_done = 0;
  }
}

static void note_drop(mw_logger *lg) {
  if (lg->dropped++ == 0) {
    if (lg->err) {
      snprintf(lg->drop_why, sizeof lg->drop_why, "cannot write to %s: %s", lg->what,
               strerror(lg->err));
    } else {
      snprintf(lg->drop_why, sizeof lg->drop_why, "%s did not keep up", lg->what);
    }
  }
  lg->dropped_total++;
  if (lg->err) {
    lg->lost++;
  }
}

static log_time time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (log_time){(long long)ts.tv_sec, (int)(ts.tv_nsec / 1000)};
}

/* Queues the WARNING about dropped records, in the logger's own format, if
 * `extra` more bytes still fit after it. */
static bool queue_drop_warning(mw_logger *lg, size_t extra) {
  char msg[512], size[32], tmp[64];
  int m = snprintf(msg, sizeof msg, "%s dropped: %s, and the %s log buffer was full",
                   records_text(lg->dropped, "log record", tmp), lg->drop_why,
                   size_text(lg->pend_max, size));
  size_t mlen = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
  log_time t = time_now();
  size_t len = format_at(lg, NULL, 0, t, MW_LOG_WARNING, "moonwatch", 9, msg, mlen, NULL, 0);
  if (len + 1 + extra > lg->pend_max - lg->pend_len) {
    return false;
  }
  char *p = pend_room(lg, len + 1); /* + 1: format_at ends it with a NUL */
  if (!p) {
    return false;
  }
  format_at(lg, p, len + 1, t, MW_LOG_WARNING, "moonwatch", 9, msg, mlen, NULL, 0);
  pend_commit(lg, len);
  lg->dropped = 0;
  return true;
}

/* A write to a regular file failed after part of a record went out: cuts
 * the file back to where the record began (a record is whole or absent) and
 * queues all of it again. If the file cannot be cut, the record continues
 * where it stopped. */
static void file_cut(mw_logger *lg) {
  off_t end = lseek(lg->wfd, 0, SEEK_CUR);
  off_t part = (off_t)lg->head_done;
  if (end < part || ftruncate(lg->wfd, end - part) != 0) {
    return;
  }
  lseek(lg->wfd, end - part, SEEK_SET); /* without O_APPEND: no hole */
  lg->pend_off -= lg->head_done;
  lg->pend_len += lg->head_done;
  lg->head_done = 0;
}

/* Bytes for the next write: all, or for a pipe whole records up to
 * PIPE_BUF, which the kernel writes whole or not at all, so that a process
 * sharing the pipe never cuts into one of ours (a longer record goes alone). */
static size_t write_size(const mw_logger *lg) {
  if (!lg->atomic || lg->pend_len <= PIPE_BUF) {
    return lg->pend_len;
  }
  size_t n = lg->recs[lg->rec_head] - lg->head_done;
  for (size_t i = 1; i < lg->rec_n && n + lg->recs[lg->rec_head + i] <= PIPE_BUF; i++) {
    n += lg->recs[lg->rec_head + i];
  }
  return n;
}

/* Writes what the output takes: 0 when the queue is empty, -EAGAIN, or the
 * -errno of a failed write (said on stderr once). */
static int drain(mw_logger *lg) {
  if (lg->kind == OUT_UNSET) {
    output_setup(lg);
  }
  lg->blocked = false;
  bool progress = false;
  while (lg->pend_len || (lg->dropped && queue_drop_warning(lg, 0))) {
    ssize_t n = output_write(lg, lg->pend + lg->pend_off, write_size(lg));
    if (n == -EAGAIN) {
      lg->blocked = true;
      if (progress) {
        output_works(lg);
      }
      return -EAGAIN;
    }
    if (n <= 0) {
      int e = n < 0 ? (int)-n : EIO;
      if (lg->head_done && lg->kind == OUT_FILE) {
        file_cut(lg);
      }
      output_failed(lg, e);
      return -e;
    }
    progress = true;
    pend_consume(lg, (size_t)n); /* after a short write, the next one says why */
  }
  if (progress) {
    output_works(lg);
  }
  return 0;
}

static int queue_record(mw_logger *lg, const char *rec, size_t len) {
  if (lg->dropped) {
    queue_drop_warning(lg, len); /* there is room again: say what went before */
  }
  char *p = pend_room(lg, len);
  if (!p) {
    note_drop(lg);
    return -ENOBUFS;
  }
  memcpy(p, rec, len);
  pend_commit(lg, len);
  if (!lg->blocked && (!lg->batch || lg->pend_len >= LOG_BATCH_MAX)) {
    drain(lg); /* a failure keeps the record queued and is said once */
  }
  return 0;
}

/* Inlined in both: logger_log costs what it did before fields. */
static inline int log_record(mw_logger *lg, int level, const char *name, size_t name_len,
                             const char *msg, size_t msg_len, const mw_log_field *fields,
                             size_t nfields) {
  if (level < lg->level) {
    return 0;
  }
  size_t len;
  const char *rec =
      render_at(lg, time_now(), level, name, name_len, msg, msg_len, fields, nfields, &len);
  if (!rec) {
    return -ENOMEM;
  }
  return queue_record(lg, rec, len);
}

int logger_log(mw_logger *lg, int level, const char *name, size_t name_len, const char *msg,
               size_t msg_len) {
  return log_record(lg, level, name, name_len, msg, msg_len, NULL, 0);
}

int logger_log_fields(mw_logger *lg, int level, const char *name, size_t name_len, const char *msg,
                      size_t msg_len, const mw_log_field *fields, size_t nfields) {
  return log_record(lg, level, name, name_len, msg, msg_len, fields, nfields);
}

int logger_fields_used(const mw_logger *lg) {
  if (lg->json) {
    return MW_LOG_FIELDS_ALL;
  }
  return lg->shows_monitor ? MW_LOG_FIELDS_MONITOR : MW_LOG_FIELDS_NONE;
}

int logger_flush(mw_logger *lg) {
  if (!lg->pend_len && !lg->dropped) {
    return 0;
  }
  return drain(lg);
}

int logger_set_batch(mw_logger *lg, bool batch) {
  lg->batch = batch;
  return batch ? 0 : logger_flush(lg);
}

int logger_wait_fd(const mw_logger *lg) {
  return lg->blocked && lg->pend_len ? lg->wfd : -1;
}

size_t logger_pending(const mw_logger *lg) {
  return lg->pend_len;
}

unsigned long long logger_dropped(const mw_logger *lg) {
  return lg->dropped_total;
}

void logger_set_limit(mw_logger *lg, size_t bytes) {
  if (bytes < LOG_LIMIT_MIN) {
    bytes = LOG_LIMIT_MIN;
  }
  if (bytes > UINT32_MAX) {
    bytes = UINT32_MAX;
  }
  lg->pend_max = bytes;
}

/* ---- lifecycle ---- */

static long long ms_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0->tv_sec) * 1000LL + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* The bounded last attempt of logger_free, then what was lost on stderr. */
static void final_flush(mw_logger *lg) {
  if (!lg->pend_len && !lg->dropped) {
    return;
  }
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int rc;
  while ((rc = drain(lg)) == -EAGAIN) {
    long long left = MW_LOG_FINAL_MS - ms_since(&t0);
    if (left <= 0) {
      break;
    }
    struct pollfd pfd = {.fd = lg->wfd, .events = POLLOUT};
    if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
      break;
    }
  }
  unsigned long long lost = lg->rec_n + lg->dropped;
  if (!lost) {
    return;
  }
  char tmp[64];
  const char *n = records_text(lost, "record", tmp);
  if (rc == -EAGAIN) {
    say("%s lost at exit: %s did not keep up (waited %d ms)", n, lg->what, MW_LOG_FINAL_MS);
  } else if (rc < 0) {
    say("%s lost at exit: cannot write to %s: %s", n, lg->what, strerror(-rc));
  } else {
    say("%s lost at exit: %s", n, lg->drop_why);
  }
}

mw_logger *logger_new(const char *format, int level, char *err, size_t errsz) {
  mw_logger *lg = calloc(1, sizeof *lg);
  if (!lg) {
    set_err(err, errsz, "log: out of memory");
    return NULL;
  }
  lg->level = level;
  lg->fd = 1;
  lg->kind = OUT_UNSET;
  lg->wfd = -1;
  lg->restore_fl = -1;
  lg->pend_max = MW_LOG_BUFFER_MAX;
  output_name(lg);
  lg->pid = (long long)getpid();
  lg->buf_cap = LOG_BUF_INIT;
  lg->buf = malloc(lg->buf_cap);
  if (!lg->buf) {
    set_err(err, errsz, "log: out of memory");
    logger_free(lg);
    return NULL;
  }
  if (!format) {
    format = MW_LOG_DEFAULT_FORMAT;
  }
  if (strcmp(format, MW_LOG_JSON) == 0) {
    lg->json = true;
  } else if (compile_format(lg, format, err, errsz) < 0) {
    logger_free(lg);
    return NULL;
  }
  return lg;
}

void logger_free(mw_logger *lg) {
  if (!lg) {
    return;
  }
  final_flush(lg);
  output_release(lg, -1);
  free(lg->path);
  free(lg->pend);
  free(lg->recs);
  free(lg->segs);
  free(lg->lits);
  free(lg->buf);
  free(lg->esc);
  free(lg);
}

/* Switches to fd (path: the file it was opened from, owned by lg now). */
static void output_switch(mw_logger *lg, int fd, bool owned, char *path) {
  if (lg->pend_len) {
    drain(lg); /* one attempt on the old output */
  }
  if (lg->head_done) { /* the rest of a record begun there would be garbage here */
    pend_consume(lg, lg->recs[lg->rec_head] - lg->head_done);
    note_drop(lg);
  }
  output_release(lg, fd);
  free(lg->path);
  lg->path = path;
  lg->fd = fd;
  lg->fd_owned = owned;
  lg->blocked = false;
  output_name(lg);
}

void logger_set_fd(mw_logger *lg, int fd, bool owned) {
  output_switch(lg, fd, owned, NULL);
}

static int open_log(const char *path) {
  int fd;
  do {
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
  } while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

int logger_open_file(mw_logger *lg, const char *path, char *err, size_t errsz) {
  int fd = open_log(path);
  if (fd < 0) {
    set_err(err, errsz, "log.file: cannot open '%.400s': %s", path, strerror(-fd));
    return fd;
  }
  char *copy = strdup(path);
  if (!copy) {
    close(fd);
    set_err(err, errsz, "log.file: out of memory");
    return -ENOMEM;
  }
  output_switch(lg, fd, true, copy);
  return 0;
}

int logger_reopen(mw_logger *lg, char *err, size_t errsz) {
  if (!lg->path) {
    set_err(err, errsz, "not a file logger");
    return -EINVAL;
  }
  int fd = open_log(lg->path);
  if (fd < 0) {
    set_err(err, errsz, "log.file: cannot reopen '%.400s': %s", lg->path, strerror(-fd));
    return fd;
  }
  char *path = lg->path;
  lg->path = NULL; /* output_switch frees the old one */
  output_switch(lg, fd, true, path);
  return 0;
}

int logger_fd(const mw_logger *lg) {
  return lg->fd;
}
