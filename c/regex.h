/* L0: regular expressions, PCRE2 compiled once and matched again and again.
 *
 * A match allocates nothing: each regex owns its match data and a match
 * context whose limits bound the backtracking of a catastrophic pattern
 * (so one body cannot stall the loop for long). JIT is used when PCRE2 has
 * it. Subjects are bytes (NULs included) unless the pattern asked for UTF. */
#ifndef MW_REGEX_H
#define MW_REGEX_H

#include <stddef.h>

typedef struct mw_regex mw_regex;

/* Compile flags. */
#define MW_REGEX_CASELESS 0x1
#define MW_REGEX_MULTILINE 0x2
#define MW_REGEX_DOTALL 0x4
#define MW_REGEX_EXTENDED 0x8
#define MW_REGEX_UTF 0x10 /* UTF-8 and Unicode properties; invalid UTF-8 never matches */

/* Backtracking steps, and KiB of backtracking memory, one match may take. */
#define MW_REGEX_MATCH_LIMIT 1000000
#define MW_REGEX_HEAP_LIMIT_KIB 8192
/* The largest JIT stack a regex may get. */
#define MW_REGEX_JIT_STACK_MAX (1024 * 1024)

/* What regex_find returns besides a match (1) and no match (0). */
#define MW_REGEX_LIMIT (-1) /* a limit above was hit */
#define MW_REGEX_FAILED (-2)

/* NULL and a message in err ("missing closing parenthesis at offset 2") when
 * the pattern is bad or memory ran out. */
mw_regex *regex_compile(const char *pattern, size_t len, int flags, char *err, size_t err_size);
void regex_free(mw_regex *re);
/* Finds the first match in subject at or after offset from: 1 and the
 * match's [*start, *end) byte range, 0, or MW_REGEX_LIMIT / MW_REGEX_FAILED
 * (regex_message says why). */
int regex_find(mw_regex *re, const char *subject, size_t len, size_t from, size_t *start,
               size_t *end);
/* Why the last regex_find of re failed. */
const char *regex_message(const mw_regex *re);
/* The pattern as given, and its length. */
const char *regex_pattern(const mw_regex *re, size_t *len);
/* 1 when the regex runs JIT-compiled. */
int regex_jit(const mw_regex *re);

#endif
