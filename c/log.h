/* Logger: Python-logging-style records written to a fd, one write(2) per record.
 *
 * Pure C (no Lua, no libuv). A logger is not thread-safe: it owns a reusable
 * output buffer and a per-second time cache, so use one logger per thread. */
#ifndef MOONWATCH_LOG_H
#define MOONWATCH_LOG_H

#include <stdbool.h>
#include <stddef.h>

/* Python logging's level numbers. Any non-negative int is a valid level; the
 * ones without a name print as "Level N", like Python. */
enum {
  MW_LOG_DEBUG = 10,
  MW_LOG_INFO = 20,
  MW_LOG_WARNING = 30,
  MW_LOG_ERROR = 40,
  MW_LOG_CRITICAL = 50,
};

#define MW_LOG_DEFAULT_FORMAT "[%(asctime)s] [%(levelname)s] [%(name)s]: %(message)s"
/* format = MW_LOG_JSON selects JSON lines instead of a %-format. */
#define MW_LOG_JSON "json"
/* Longer messages (and logger names) are cut to this many bytes, at a UTF-8
 * character boundary, and get MW_LOG_TRUNCATED appended. */
#define MW_LOG_MSG_MAX (64 * 1024)
#define MW_LOG_TRUNCATED "\xe2\x80\xa6[truncated]"
/* Enough for every error message this module produces (longer paths are cut). */
#define MW_LOG_ERR_SIZE 512

typedef struct mw_logger mw_logger;

/* Creates a logger writing to fd 1. format: NULL for MW_LOG_DEFAULT_FORMAT,
 * MW_LOG_JSON, or a Python %-style format compiled here once. Keys: asctime,
 * levelname, levelno, name, message, created, msecs, process; flags '-' and
 * '0', width, .precision; conversions s, d (or i), f; "%%" for '%'.
 * Returns NULL and an error message in err (if errsz > 0) on a bad format,
 * e.g. "log.format: unknown key 'foo' in %(foo)s at position 3" (positions
 * are 0-based byte offsets of the '%'), or when out of memory. */
mw_logger *logger_new(const char *format, int level, char *err, size_t errsz);
/* Closes the fd if the logger owns it. NULL is a no-op. */
void logger_free(mw_logger *lg);

/* Writes to fd from now on; owned means logger_free/the next set closes it. A
 * previously owned fd is closed. */
void logger_set_fd(mw_logger *lg, int fd, bool owned);
/* Opens path O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, 0644, and writes there
 * (owned). Returns 0, or -errno with "log.file: cannot open '<path>': <strerror>"
 * in err; the logger's current fd stays in place on failure. */
int logger_open_file(mw_logger *lg, const char *path, char *err, size_t errsz);
int logger_fd(const mw_logger *lg);

/* In batch mode logger_log queues whole records (up to 64 KiB) and
 * logger_flush writes them in one write(2): a busy loop turn costs one
 * syscall, and records still never split or interleave. */
int logger_set_batch(mw_logger *lg, bool batch);
/* Writes the queued records; 0 or -errno. */
int logger_flush(mw_logger *lg);

int logger_level(const mw_logger *lg);
void logger_set_level(mw_logger *lg, int level);
/* True when records of this level pass the logger's level (level >= it). */
bool logger_enabled(const mw_logger *lg, int level);

/* Parses a level name (case-insensitive; WARN = WARNING, FATAL = CRITICAL) or
 * a non-negative decimal number. Returns 0 and sets *level, or -1. */
int logger_parse_level(const char *s, size_t len, int *level);
/* "DEBUG" ... "CRITICAL" for the five named levels, NULL for any other. */
const char *logger_level_name(int level);

/* Formats one record, including its trailing "\n", for wall_time (seconds
 * since the epoch; local time zone as of the last tzset()). Like snprintf:
 * returns the full record length; when that is < cap, buf holds the whole
 * record NUL-terminated, otherwise only the first cap bytes were stored. No
 * level filtering. name/msg need not be NUL-terminated; NULL is fine when the
 * length is 0. */
size_t logger_format(mw_logger *lg, char *buf, size_t cap, double wall_time, int level,
                     const char *name, size_t name_len, const char *msg, size_t msg_len);
/* Same, into the logger's own growing buffer: returns a pointer valid until
 * the next call on lg and sets *len, or NULL when out of memory. */
const char *logger_render(mw_logger *lg, double wall_time, int level, const char *name,
                          size_t name_len, const char *msg, size_t msg_len, size_t *len);

/* Formats a record stamped with the current time (CLOCK_REALTIME) and writes
 * it, unless level is below the logger's level. Returns 0 (also when
 * filtered), or -errno when formatting ran out of memory or the write failed. */
int logger_log(mw_logger *lg, int level, const char *name, size_t name_len, const char *msg,
               size_t msg_len);

/* Writes all of buf with a single write(2) when the fd takes it (always for a
 * regular file or up to PIPE_BUF on a pipe); retries the rest after EINTR,
 * partial writes and EAGAIN (polling for POLLOUT). Returns 0 or -errno. */
int logger_write_all(int fd, const char *buf, size_t len);

/* Lua binding (lua_log.c): with the module table on top of the stack, sets
 * core.logger and core.log_levels. Declared here so log.h stays Lua-free. */
struct lua_State;
void lua_log_register(struct lua_State *L);

#endif
