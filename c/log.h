/* Logger: Python-logging-style records written to a fd without blocking.
 *
 * Pure C (no Lua, no libuv). A logger is not thread-safe: it owns a reusable
 * output buffer and a per-second time cache, so use one logger per thread. */
#ifndef MW_LOG_H
#define MW_LOG_H

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

/* Records waiting for the output are bounded: past this many bytes new ones
 * are dropped whole and counted (logger_set_limit changes it). */
#define MW_LOG_BUFFER_MAX (1024 * 1024)
/* How long logger_free waits for an output that does not keep up. */
#define MW_LOG_FINAL_MS 1000

typedef struct mw_logger mw_logger;

/* Creates a logger writing to fd 1. format: NULL for MW_LOG_DEFAULT_FORMAT,
 * MW_LOG_JSON, or a Python %-style format compiled here once. Supported:
 *   %(key)s    keys asctime, levelname, levelno, name, message, created,
 *              msecs, process, monitor (the record's "monitor" field, or "-"
 *              when it has none; see mw_log_field)
 *   %(key)8s   a width (at most 1000 characters) pads on the left, %(key)-8s
 *              on the right
 *   %(key)d    for levelno, msecs and process, with a width and '-' or '0'
 *              (%(msecs)03d)
 *   %%         a '%'
 * created prints with 6 decimals (Python's %(created)f: 1596906402.033000),
 * msecs as the integer milliseconds 0-999 (also through s). Anything else
 * (precision, other conversions or flags, length modifiers) is refused:
 * NULL, with a message in err (if errsz > 0) naming the directive, its
 * position (0-based byte offset of the '%') and why, e.g. "log.format:
 * '%(created).3f' at position 1 is not supported (precision); use %(key)s,
 * %(key)-8s, %(key)8s, %(msecs)03d or %%". NULL also when out of memory. */
mw_logger *logger_new(const char *format, int level, char *err, size_t errsz);
/* Gives pending records a last chance (up to MW_LOG_FINAL_MS while the
 * output does not keep up, one attempt after a write error), says on stderr
 * how many were lost, restores the fd's flags and closes the fd if the
 * logger owns it. NULL is a no-op. */
void logger_free(mw_logger *lg);

/* Output. Writes never block: a pipe, FIFO, terminal or character device is
 * written through a non-blocking reopening of /proc/self/fd/N (its own open
 * file description: the shell's stays blocking), else by setting O_NONBLOCK
 * on the fd until logger_free; a socket through send(MSG_DONTWAIT); a
 * regular file as it is. What the output does not take waits in a queue of
 * whole records (at most MW_LOG_BUFFER_MAX bytes) in order; a record is
 * written whole or not at all (a short write to a regular file is cut back
 * with ftruncate; a pipe continues where it stopped). When the queue is full
 * new records are dropped and counted, and once there is room again the
 * logger writes a WARNING record (name "moonwatch") saying how many and why.
 * A write error is said once on stderr ("moonwatch: log: cannot write to
 * ..."), the records stay queued and are retried at the next write or flush,
 * and recovery is said too, with the count of records lost. */

/* Writes to fd from now on; owned means logger_free/the next set closes it. A
 * previously owned fd is closed. Pending records get one attempt on the old
 * output; the rest go to the new one. */
void logger_set_fd(mw_logger *lg, int fd, bool owned);
/* Opens path O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC|O_NONBLOCK, 0644, and writes
 * there (owned). Returns 0, or -errno with "log.file: cannot open '<path>':
 * <strerror>" in err; the logger's current fd stays in place on failure. */
int logger_open_file(mw_logger *lg, const char *path, char *err, size_t errsz);
/* Opens the path of logger_open_file again (logrotate moved the file away):
 * pending records get one attempt on the old file, the rest go to the new
 * one. Returns 0, or -errno and "log.file: cannot reopen '<path>': <strerror>"
 * in err (the old file stays in use), or -EINVAL and "not a file logger". */
int logger_reopen(mw_logger *lg, char *err, size_t errsz);
/* The fd given to logger_set_fd or opened by logger_open_file. */
int logger_fd(const mw_logger *lg);
/* Bounds the queue of pending records (at least 4 KiB; default
 * MW_LOG_BUFFER_MAX). */
void logger_set_limit(mw_logger *lg, size_t bytes);

/* In batch mode logger_log only queues records and logger_flush writes them
 * in one write(2): a busy loop turn costs one syscall, and records still
 * never split or interleave. Past 64 KiB queued, logger_log writes at once. */
int logger_set_batch(mw_logger *lg, bool batch);
/* Writes the queued records: 0 when all are out, -EAGAIN when the output
 * takes no more now (wait for logger_wait_fd to be writable), or -errno of a
 * write error (the records stay queued). */
int logger_flush(mw_logger *lg);
/* The fd to wait on for writability before logger_flush can make progress
 * (records wait and the output said EAGAIN), else -1. */
int logger_wait_fd(const mw_logger *lg);
/* Bytes waiting in the queue. */
size_t logger_pending(const mw_logger *lg);
/* Records dropped since the logger was created. */
unsigned long long logger_dropped(const mw_logger *lg);

int logger_level(const mw_logger *lg);
void logger_set_level(mw_logger *lg, int level);
/* True when records of this level pass the logger's level (level >= it). */
bool logger_enabled(const mw_logger *lg, int level);

/* Parses a level name (case-insensitive; WARN = WARNING, FATAL = CRITICAL) or
 * a non-negative decimal number. Returns 0 and sets *level, or -1. */
int logger_parse_level(const char *s, size_t len, int *level);
/* "DEBUG" ... "CRITICAL" for the five named levels, NULL for any other. */
const char *logger_level_name(int level);

/* Fields of a record: typed values beside the message, for log shippers.
 * The JSON format writes each as a member after the standard ones (time,
 * level, logger, message), in the order given: strings escaped like the
 * message, MW_LOG_FIELD_INT as an integer, MW_LOG_FIELD_NUMBER with digits
 * enough to read back as the same double and a ".0" when it has no point
 * or exponent (null when not finite), booleans as true/false,
 * MW_LOG_FIELD_OBJECT as a flat object of its items (an object inside one is
 * null). A field named like a standard member is written as "field_<key>"
 * ("field_time"), unless a field of that name is given too: then it is
 * dropped. Keys of one record must be distinct. Text formats show only the
 * field "monitor", through %(monitor)s (a number or boolean as its JSON
 * text, an object as "-"). Nothing is copied: the pointers need to live
 * only for the call. */
enum {
  MW_LOG_FIELD_STRING,
  MW_LOG_FIELD_INT,
  MW_LOG_FIELD_NUMBER,
  MW_LOG_FIELD_BOOL,
  MW_LOG_FIELD_OBJECT,
};

typedef struct mw_log_field {
  const char *key; /* need not be NUL-terminated */
  size_t key_len;
  int type; /* MW_LOG_FIELD_* */
  union {
    struct {
      const char *str;
      size_t str_len;
    };
    long long i;
    double num;
    bool b;
    struct {
      const struct mw_log_field *obj;
      size_t obj_n;
    };
  };
} mw_log_field;

/* Formats one record, including its trailing "\n", for wall_time (seconds
 * since the epoch; local time zone as of the last tzset()). Like snprintf:
 * returns the full record length; when that is < cap, buf holds the whole
 * record NUL-terminated, otherwise only the first cap bytes were stored. No
 * level filtering. name/msg need not be NUL-terminated; NULL is fine when the
 * length is 0.
 *
 * Text formats show name and message with control bytes escaped, so that
 * bytes from a server cannot drive a terminal: CR as \r, other C0 controls
 * and DEL as \xNN, C1 controls (U+0080-U+009F) as \u0085, bytes that are not
 * UTF-8 as \xNN; newline and tab stay. JSON escapes them its own way (and
 * invalid bytes become U+FFFD). */
size_t logger_format(mw_logger *lg, char *buf, size_t cap, double wall_time, int level,
                     const char *name, size_t name_len, const char *msg, size_t msg_len);
/* With fields (NULL when nfields is 0). */
size_t logger_format_fields(mw_logger *lg, char *buf, size_t cap, double wall_time, int level,
                            const char *name, size_t name_len, const char *msg, size_t msg_len,
                            const mw_log_field *fields, size_t nfields);
/* Same, into the logger's own growing buffer: returns a pointer valid until
 * the next call on lg and sets *len, or NULL when out of memory. */
const char *logger_render(mw_logger *lg, double wall_time, int level, const char *name,
                          size_t name_len, const char *msg, size_t msg_len, size_t *len);
const char *logger_render_fields(mw_logger *lg, double wall_time, int level, const char *name,
                                 size_t name_len, const char *msg, size_t msg_len,
                                 const mw_log_field *fields, size_t nfields, size_t *len);

/* Formats a record stamped with the current time (CLOCK_REALTIME) and writes
 * or queues it, unless level is below the logger's level. Returns 0 (also
 * when filtered, and when a write error keeps the record queued), -ENOBUFS
 * when the record was dropped (the queue is full) or -ENOMEM. */
int logger_log(mw_logger *lg, int level, const char *name, size_t name_len, const char *msg,
               size_t msg_len);
int logger_log_fields(mw_logger *lg, int level, const char *name, size_t name_len, const char *msg,
                      size_t msg_len, const mw_log_field *fields, size_t nfields);

/* Which fields the format writes: all of them (JSON), only "monitor" (a
 * text format with %(monitor)s) or none, so a caller can skip reading the
 * others. */
enum { MW_LOG_FIELDS_NONE, MW_LOG_FIELDS_MONITOR, MW_LOG_FIELDS_ALL };
int logger_fields_used(const mw_logger *lg);

#endif
