/* L0: PCRE2 behind a small interface (regex.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "regex.h"

struct mw_regex {
  pcre2_code *code;
  pcre2_match_data *match; /* room for the whole match only: no groups are read */
  pcre2_match_context *mctx;
  pcre2_jit_stack *stack; /* made the first time the default 32 KiB is not enough */
  int jit;
  char message[128];
  size_t len;
  char pattern[]; /* NUL-terminated copy, for messages */
};

mw_regex *regex_compile(const char *pattern, size_t len, int flags, char *err, size_t err_size) {
  uint32_t options = 0;
  if (flags & MW_REGEX_CASELESS)
    options |= PCRE2_CASELESS;
  if (flags & MW_REGEX_MULTILINE)
    options |= PCRE2_MULTILINE;
  if (flags & MW_REGEX_DOTALL)
    options |= PCRE2_DOTALL;
  if (flags & MW_REGEX_EXTENDED)
    options |= PCRE2_EXTENDED;
  if (flags & MW_REGEX_UTF)
    options |= PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  else
    options |= PCRE2_NEVER_UTF; /* "(*UTF)" in a byte pattern is refused, not obeyed */
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, options, &code, &offset, NULL);
  if (!re) {
    PCRE2_UCHAR msg[120];
    if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
      snprintf((char *)msg, sizeof msg, "error %d", code);
    snprintf(err, err_size, "%s at offset %zu", (const char *)msg, (size_t)offset);
    return NULL;
  }
  mw_regex *r = calloc(1, sizeof *r + len + 1);
  pcre2_match_data *md = pcre2_match_data_create(1, NULL);
  pcre2_match_context *mctx = pcre2_match_context_create(NULL);
  if (!r || !md || !mctx) {
    free(r);
    pcre2_match_data_free(md);
    pcre2_match_context_free(mctx);
    pcre2_code_free(re);
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  pcre2_set_match_limit(mctx, MW_REGEX_MATCH_LIMIT);
  pcre2_set_heap_limit(mctx, MW_REGEX_HEAP_LIMIT_KIB);
  /* Without JIT (not built in, or no executable memory) the interpreter does
   * the same work, more slowly. */
  r->jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
  r->code = re;
  r->match = md;
  r->mctx = mctx;
  r->len = len;
  memcpy(r->pattern, pattern, len);
  r->pattern[len] = '\0';
  return r;
}

void regex_free(mw_regex *re) {
  if (!re)
    return;
  pcre2_jit_stack_free(re->stack);
  pcre2_match_data_free(re->match);
  pcre2_match_context_free(re->mctx);
  pcre2_code_free(re->code);
  free(re);
}

int regex_find(mw_regex *re, const char *subject, size_t len, size_t from, size_t *start,
               size_t *end) {
  if (from > len)
    return 0;
  int rc = pcre2_match(re->code, (PCRE2_SPTR)subject, len, from, 0, re->match, re->mctx);
  /* The JIT's default stack is 32 KiB, which a repeated group over a long
   * body outgrows: give this regex a larger one (reserved, touched only as
   * used), and past that let the interpreter, bounded by the heap limit, try. */
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !re->stack) {
    re->stack = pcre2_jit_stack_create(32 * 1024, MW_REGEX_JIT_STACK_MAX, NULL);
    if (re->stack) {
      pcre2_jit_stack_assign(re->mctx, NULL, re->stack);
      rc = pcre2_match(re->code, (PCRE2_SPTR)subject, len, from, 0, re->match, re->mctx);
    }
  }
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
    rc = pcre2_match(re->code, (PCRE2_SPTR)subject, len, from, PCRE2_NO_JIT, re->match, re->mctx);
  if (rc >= 0) {
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->match);
    *start = ov[0];
    *end = ov[1];
    return 1;
  }
  if (rc == PCRE2_ERROR_NOMATCH)
    return 0;
  if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT) {
    snprintf(re->message, sizeof re->message, "regex match limit exceeded");
    return MW_REGEX_LIMIT;
  }
  PCRE2_UCHAR msg[100];
  if (pcre2_get_error_message(rc, msg, sizeof msg) < 0)
    snprintf((char *)msg, sizeof msg, "error %d", rc);
  snprintf(re->message, sizeof re->message, "regex match failed: %s", (const char *)msg);
  return MW_REGEX_FAILED;
}

const char *regex_message(const mw_regex *re) {
  return re->message;
}

const char *regex_pattern(const mw_regex *re, size_t *len) {
  if (len)
    *len = re->len;
  return re->pattern;
}

int regex_jit(const mw_regex *re) {
  return re->jit;
}
