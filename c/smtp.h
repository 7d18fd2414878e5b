/* L4: sending e-mail over SMTP with libcurl (core.smtp_send's mechanism).
 *
 * A send runs on libuv's thread pool, not on the loop's curl multi handle:
 * libcurl's SMTP waits for the server's verdict on a message, and for its
 * answer to QUIT, in a blocking loop of its own (lib/smtp.c, smtp_done and
 * smtp_disconnect call smtp_block_statemach, in 7.88.1 as in 8.22), which on
 * the loop would stall every monitor for as long as the server takes:
 * measured, a server taking 1.5 s to accept a message held one
 * curl_multi_perform call for 1.503 s. */
#ifndef MW_SMTP_H
#define MW_SMTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "loop.h"

typedef struct mw_smtp mw_smtp;

/* The settings of one send. The strings are copied by smtp_send; the
 * recipient list is taken over (freed with the send, or on failure). */
typedef struct {
  const char *url, *from, *message, *username, *password, *ca_file;
  size_t message_len;
  struct curl_slist *rcpt;
  long use_ssl; /* CURLUSESSL_* */
  int verify;
  double timeout, connect_timeout; /* seconds */
} mw_smtp_options;

/* The send ended: kind is NULL when the server accepted the message, else
 * one of the documented failure kinds, with message saying why (never the
 * password). Runs on the loop. */
typedef void (*mw_smtp_done_fn)(const char *kind, const char *message, void *data);

/* NULL, or why url cannot be used (scheme, syntax, credentials in it). */
const char *smtp_check_url(const char *url);
/* Starts a send; done runs once from the loop unless smtp_abort comes first.
 * NULL and *error when it cannot start (done will not run). */
mw_smtp *smtp_send(mw_loop *loop, mw_smtp_options *o, mw_smtp_done_fn done, void *data,
                   const char **error);
/* done will not run; the worker stops within about a second and the send's
 * memory goes when it has. */
void smtp_abort(mw_smtp *s);

#endif
