/* Logger: the format is compiled once into segments; a record is rendered
 * into a reusable buffer and goes out in one write(2). */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* localtime_r, clock_gettime, O_CLOEXEC */
#endif

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUF_INIT 4096
#define LOG_BATCH_MAX (64 * 1024)
#define LOG_WIDTH_MAX 1000 /* width and precision; larger is surely a typo */

enum {
  KEY_ASCTIME,
  KEY_LEVELNAME,
  KEY_LEVELNO,
  KEY_NAME,
  KEY_MESSAGE,
  KEY_CREATED,
  KEY_MSECS,
  KEY_PROCESS,
  SEG_LITERAL,
};

static const struct {
  const char *name;
  bool numeric;
} log_keys[] = {
    [KEY_ASCTIME] = {"asctime", false}, [KEY_LEVELNAME] = {"levelname", false},
    [KEY_LEVELNO] = {"levelno", true},  [KEY_NAME] = {"name", false},
    [KEY_MESSAGE] = {"message", false}, [KEY_CREATED] = {"created", true},
    [KEY_MSECS] = {"msecs", true},      [KEY_PROCESS] = {"process", true},
};

typedef struct {
  unsigned char key; /* KEY_* or SEG_LITERAL */
  char conv;         /* 's', 'd' or 'f' */
  bool left;         /* '-' flag */
  bool zero;         /* '0' flag */
  bool plain;        /* bare %(key)s: copy the value, no padding work */
  int width;         /* 0: none */
  int prec;          /* -1: none */
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

struct mw_logger {
  int level;
  int fd;
  bool fd_owned;
  bool json;
  long long pid; /* at creation: getpid() per record is a syscall */
  log_seg *segs;
  size_t nsegs;
  char *lits;
  log_time_cache tc;
  char *buf;
  size_t buf_cap;
  bool batch; /* records wait in pend until logger_flush */
  char *pend;
  size_t pend_len, pend_cap;
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

/* Byte length of the first `chars` characters of s. */
static size_t utf8_prefix(const char *s, size_t n, size_t chars) {
  size_t i = 0;
  for (; i < n; i++) {
    if (((unsigned char)s[i] & 0xC0) != 0x80 && chars-- == 0) {
      break;
    }
  }
  return i;
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
    size_t pos = (size_t)(p - fmt);
    if (p[1] == '\0') {
      set_err(err, errsz,
              "log.format: lone '%%' at end of format at position %zu (use %%%% for a '%%')", pos);
      return -1;
    }
    if (p[1] != '(') {
      set_err(err, errsz,
              "log.format: expected '(' after '%%' in %.2s at position %zu (use %%(key)s)", start,
              pos);
      return -1;
    }
    const char *key = p + 2;
    const char *close = strchr(key, ')');
    if (!close) {
      set_err(err, errsz, "log.format: unterminated key in %.*s at position %zu",
              DIR_ARGS(start, start + strlen(start)), pos);
      return -1;
    }
    log_seg seg = {.prec = -1};
    p = close + 1;
    for (;; p++) {
      if (*p == '-') {
        seg.left = true;
      } else if (*p == '0') {
        seg.zero = true;
      } else if (*p == '+' || *p == ' ' || *p == '#') {
        set_err(err, errsz, "log.format: unsupported flag '%c' in %.*s at position %zu", *p,
                DIR_ARGS(start, p + 1), pos);
        return -1;
      } else {
        break;
      }
    }
    if (parse_num(&p, &seg.width) < 0) {
      set_err(err, errsz, "log.format: width over %d in %.*s at position %zu", LOG_WIDTH_MAX,
              DIR_ARGS(start, p), pos);
      return -1;
    }
    if (*p == '.') {
      p++;
      if (parse_num(&p, &seg.prec) < 0) {
        set_err(err, errsz, "log.format: precision over %d in %.*s at position %zu", LOG_WIDTH_MAX,
                DIR_ARGS(start, p), pos);
        return -1;
      }
    }
    if (*p == 'h' || *p == 'l' || *p == 'L') { /* Python accepts and ignores these */
      p++;
    }
    if (*p == '\0') {
      set_err(err, errsz, "log.format: missing conversion type in %.*s at position %zu",
              DIR_ARGS(start, p), pos);
      return -1;
    }
    if (*p == 's' || *p == 'd' || *p == 'i' || *p == 'f') {
      seg.conv = *p == 'i' ? 'd' : *p;
    } else {
      set_err(err, errsz,
              "log.format: unsupported conversion '%c' in %.*s at position %zu (use s, d or f)", *p,
              DIR_ARGS(start, p + 1), pos);
      return -1;
    }
    p++;
    size_t key_len = (size_t)(close - key);
    seg.key = SEG_LITERAL;
    for (unsigned k = 0; k < sizeof log_keys / sizeof log_keys[0]; k++) {
      if (strlen(log_keys[k].name) == key_len && memcmp(log_keys[k].name, key, key_len) == 0) {
        seg.key = (unsigned char)k;
      }
    }
    if (seg.key == SEG_LITERAL) {
      set_err(err, errsz, "log.format: unknown key '%.*s' in %.*s at position %zu",
              (int)(key_len > 40 ? 40 : key_len), key, DIR_ARGS(start, p), pos);
      return -1;
    }
    if (!log_keys[seg.key].numeric && seg.conv != 's') {
      set_err(err, errsz, "log.format: key '%s' is text, use %%(%s)s not %.*s at position %zu",
              log_keys[seg.key].name, log_keys[seg.key].name, DIR_ARGS(start, p), pos);
      return -1;
    }
    seg.plain = seg.conv == 's' && seg.width == 0 && seg.prec < 0;
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
  if (s->prec >= 0) {
    n = utf8_prefix(p, n, (size_t)s->prec);
  }
  emit_padded(o, s, p, n, s->width ? utf8_chars(p, n) : 0);
}

/* name and message: capped at MW_LOG_MSG_MAX bytes plus the marker. */
static void emit_capped(log_out *o, const log_seg *s, const char *p, size_t n) {
  if (n > MW_LOG_MSG_MAX && s->prec >= 0) {
    size_t k = utf8_prefix(p, n, (size_t)s->prec);
    if (k <= MW_LOG_MSG_MAX) {
      n = k; /* precision already cuts it short enough */
    }
  }
  if (n <= MW_LOG_MSG_MAX) {
    emit_str(o, s, p, n);
    return;
  }
  /* width is irrelevant: it is at most LOG_WIDTH_MAX characters */
  out_put(o, p, utf8_cut(p, MW_LOG_MSG_MAX));
  out_put(o, MW_LOG_TRUNCATED, sizeof MW_LOG_TRUNCATED - 1);
}

/* A numeric key's value as fixed point: whole + usec / 1e6 (usec >= 0). */
static void emit_num(log_out *o, const log_seg *s, long long whole, int usec, bool is_float) {
  char tmp[64];
  char *end = tmp + sizeof tmp;
  char *p = end;
  bool neg = whole < 0;
  /* sign and magnitude, so rounding and digits work on non-negative values */
  unsigned long long mag =
      neg ? (unsigned long long)-(whole + 1) + (usec == 0) : (unsigned long long)whole;
  long long frac = neg && usec ? 1000000 - usec : usec;
  if (s->conv == 'f' || (s->conv == 's' && is_float)) {
    int prec = s->conv == 'f' ? (s->prec < 0 ? 6 : s->prec) : 6;
    int zeros = prec > 6 ? prec - 6 : 0; /* digits beyond microseconds are 0 */
    int digits = prec > 6 ? 6 : prec;
    long long q = 1;
    for (int i = digits; i < 6; i++) {
      q *= 10;
    }
    frac = (frac + q / 2) / q; /* round half up */
    if (frac >= 1000000 / q) {
      frac -= 1000000 / q;
      mag++;
    }
    if (s->conv == 's') { /* Python's str(float): drop trailing zeros, keep one */
      while (digits > 1 && frac % 10 == 0) {
        frac /= 10;
        digits--;
      }
    }
    if (digits > 0) {
      for (int i = 0; i < digits; i++) {
        *--p = (char)('0' + frac % 10);
        frac /= 10;
      }
      *--p = '.';
    }
    p -= fmt_u64(p, mag);
    size_t nd = (size_t)(end - p) + neg + (size_t)zeros;
    size_t pad = (size_t)s->width > nd ? (size_t)s->width - nd : 0;
    if (!s->left && !(s->zero && s->conv != 's')) {
      out_fill(o, ' ', pad);
    }
    if (neg) {
      out_ch(o, '-');
    }
    if (!s->left && s->zero && s->conv != 's') {
      out_fill(o, '0', pad);
    }
    out_put(o, p, (size_t)(end - p));
    out_fill(o, '0', (size_t)zeros);
    if (s->left) {
      out_fill(o, ' ', pad);
    }
    return;
  }
  /* %d truncates toward zero like Python's int(): drop frac; %s of an int is %d */
  neg = neg && mag;
  size_t nd = fmt_u64(end, mag);
  p = end - nd;
  size_t mind = s->conv == 'd' && s->prec > (int)nd ? (size_t)s->prec : nd;
  size_t total = mind + neg;
  size_t pad = (size_t)s->width > total ? (size_t)s->width - total : 0;
  bool zero_pad = s->zero && !s->left && s->conv == 'd' && s->prec < 0;
  if (!s->left && !zero_pad) {
    out_fill(o, ' ', pad);
  }
  if (neg) {
    out_ch(o, '-');
  }
  out_fill(o, '0', (mind - nd) + (zero_pad ? pad : 0));
  out_put(o, p, nd);
  if (s->left) {
    out_fill(o, ' ', pad);
  }
}

static void render_text(mw_logger *lg, log_out *o, log_time t, int level, const char *name,
                        size_t name_len, const char *msg, size_t msg_len) {
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
      emit_capped(o, s, name, name_len);
      break;
    case KEY_MESSAGE:
      emit_capped(o, s, msg, msg_len);
      break;
    case KEY_LEVELNO:
      emit_num(o, s, level, 0, false);
      break;
    case KEY_CREATED:
      emit_num(o, s, t.sec, t.usec, true);
      break;
    case KEY_MSECS:
      emit_num(o, s, t.usec / 1000, 0, true);
      break;
    case KEY_PROCESS:
      emit_num(o, s, lg->pid, 0, false);
      break;
    }
  }
}

/* RFC 8259 string body; invalid UTF-8 bytes become U+FFFD, one per byte. */
static void emit_json_str(log_out *o, const char *str, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str;
  size_t run = 0, i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    size_t k = c >= 0x80 ? utf8_seq(s + i, n - i) : 0;
    if (k) {
      i += k;
      continue;
    }
    out_put(o, s + run, i - run);
    if (c >= 0x80) {
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

static void render_json(mw_logger *lg, log_out *o, log_time t, int level, const char *name,
                        size_t name_len, const char *msg, size_t msg_len) {
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
  out_put(o, "\"}", 2);
}

static size_t format_at(mw_logger *lg, char *buf, size_t cap, log_time t, int level,
                        const char *name, size_t name_len, const char *msg, size_t msg_len) {
  log_out o = {buf, cap, 0};
  time_cache_update(&lg->tc, t.sec);
  if (lg->json) {
    render_json(lg, &o, t, level, name, name_len, msg, msg_len);
  } else {
    render_text(lg, &o, t, level, name, name_len, msg, msg_len);
  }
  out_ch(&o, '\n');
  if (o.len < cap) {
    buf[o.len] = '\0';
  }
  return o.len;
}

size_t logger_format(mw_logger *lg, char *buf, size_t cap, double wall_time, int level,
                     const char *name, size_t name_len, const char *msg, size_t msg_len) {
  return format_at(lg, buf, cap, time_from_double(wall_time), level, name, name_len, msg, msg_len);
}

static const char *render_at(mw_logger *lg, log_time t, int level, const char *name,
                             size_t name_len, const char *msg, size_t msg_len, size_t *len) {
  size_t n = format_at(lg, lg->buf, lg->buf_cap, t, level, name, name_len, msg, msg_len);
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
    n = format_at(lg, lg->buf, lg->buf_cap, t, level, name, name_len, msg, msg_len);
  }
  *len = n;
  return lg->buf;
}

const char *logger_render(mw_logger *lg, double wall_time, int level, const char *name,
                          size_t name_len, const char *msg, size_t msg_len, size_t *len) {
  return render_at(lg, time_from_double(wall_time), level, name, name_len, msg, msg_len, len);
}

/* ---- output ---- */

int logger_write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      /* a non-blocking pipe is full: wait rather than spin or drop */
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
        return -errno;
      }
    } else {
      return n < 0 ? -errno : -EIO;
    }
  }
  return 0;
}

int logger_log(mw_logger *lg, int level, const char *name, size_t name_len, const char *msg,
               size_t msg_len) {
  if (level < lg->level) {
    return 0;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  log_time t = {(long long)ts.tv_sec, (int)(ts.tv_nsec / 1000)};
  size_t len;
  const char *rec = render_at(lg, t, level, name, name_len, msg, msg_len, &len);
  if (!rec) {
    return -ENOMEM;
  }
  if (!lg->batch) {
    return logger_write_all(lg->fd, rec, len);
  }
  if (lg->pend_len + len > lg->pend_cap) {
    int rc = logger_flush(lg);
    if (rc < 0) {
      return rc;
    }
    if (len > lg->pend_cap) { /* bigger than the whole batch: on its own */
      return logger_write_all(lg->fd, rec, len);
    }
  }
  memcpy(lg->pend + lg->pend_len, rec, len);
  lg->pend_len += len;
  return 0;
}

int logger_flush(mw_logger *lg) {
  if (!lg->pend_len) {
    return 0;
  }
  size_t len = lg->pend_len;
  lg->pend_len = 0;
  return logger_write_all(lg->fd, lg->pend, len);
}

int logger_set_batch(mw_logger *lg, bool batch) {
  if (batch && !lg->pend) {
    lg->pend = malloc(LOG_BATCH_MAX);
    if (!lg->pend) {
      return -ENOMEM;
    }
    lg->pend_cap = LOG_BATCH_MAX;
  }
  int rc = batch ? 0 : logger_flush(lg);
  lg->batch = batch;
  return rc;
}

/* ---- lifecycle ---- */

mw_logger *logger_new(const char *format, int level, char *err, size_t errsz) {
  mw_logger *lg = calloc(1, sizeof *lg);
  if (!lg) {
    set_err(err, errsz, "log: out of memory");
    return NULL;
  }
  lg->level = level;
  lg->fd = 1;
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
  logger_flush(lg);
  if (lg->fd_owned) {
    close(lg->fd);
  }
  free(lg->pend);
  free(lg->segs);
  free(lg->lits);
  free(lg->buf);
  free(lg);
}

void logger_set_fd(mw_logger *lg, int fd, bool owned) {
  logger_flush(lg);
  if (lg->fd_owned && lg->fd != fd) {
    close(lg->fd);
  }
  lg->fd = fd;
  lg->fd_owned = owned;
}

int logger_open_file(mw_logger *lg, const char *path, char *err, size_t errsz) {
  int fd;
  do {
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int e = errno;
    set_err(err, errsz, "log.file: cannot open '%.400s': %s", path, strerror(e));
    return -e;
  }
  logger_set_fd(lg, fd, true);
  return 0;
}

int logger_fd(const mw_logger *lg) {
  return lg->fd;
}
