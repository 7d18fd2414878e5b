/* L4: e-mail over SMTP, one curl_easy_perform per send on libuv's thread
 * pool (see smtp.h for why not on the loop's multi handle).
 *
 * The worker touches only its mw_smtp and its own easy handle; the loop
 * reads the outcome in the after-work callback. A timer on the loop bounds
 * the wait whatever curl does (its threaded resolver may outlive a timeout).
 * An aborted send is told so through an atomic flag that curl's progress
 * callback reads (curl calls it at least once a second, even in its blocking
 * waits); its memory is freed when the worker has finished.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp.h"
#include "curl_kind.h"

/* The wait on the loop ends this long after curl's own timeout should have. */
#define SMTP_BACKSTOP_MS 1000

struct mw_smtp {
  uv_work_t work;
  uv_timer_t *timer;    /* the backstop; NULL once closed */
  mw_smtp_done_fn done; /* NULL once aborted or reported */
  void *done_data;
  atomic_int abort;
  atomic_int delivered; /* the server accepted the message (QUIT may still be pending) */
  /* settings, copied */
  char *url, *from, *message, *username, *password, *ca_file;
  size_t message_len, sent;
  struct curl_slist *rcpt;
  long use_ssl;
  int verify;
  double timeout;
  long timeout_ms, connect_timeout_ms;
  /* the dialogue so far, written by the worker */
  char command[256]; /* the last command: MAIL and RCPT whole, others their verb only */
  char reply[512];   /* the last reply line */
  int reply_code;
  int body_sent; /* DATA was answered with 354: the next reply is the verdict */
  int quitting;  /* QUIT was sent: what failed before stays noted */
  /* the outcome, written by the worker */
  const char *kind;
  char text[1024];
  char errbuf[CURL_ERROR_SIZE];
};

static int global_ready;

/* The worker's side */

static size_t on_read(char *buf, size_t size, size_t n, void *userp) {
  mw_smtp *s = userp;
  size_t room = size * n, left = s->message_len - s->sent;
  size_t take = left < room ? left : room;
  memcpy(buf, s->message + s->sent, take);
  s->sent += take;
  return take;
}

static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  mw_smtp *s = userp;
  return atomic_load(&s->abort) ? 1 : 0;
}

static size_t line_length(const char *data, size_t size) {
  size_t n = 0;
  while (n < size && data[n] != '\r' && data[n] != '\n')
    n++;
  return n;
}

static void note_command(mw_smtp *s, const char *data, size_t size) {
  size_t n = line_length(data, size);
  if (n == 4 && strncasecmp(data, "QUIT", 4) == 0) {
    s->quitting = 1;
    return;
  }
  /* A line that starts no command of ours is a step of AUTH (AUTH LOGIN
   * sends the user and password alone on lines): never kept. */
  static const char *const verbs[] = {"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL",
                                      "RCPT", "DATA", "RSET",     NULL};
  int known = 0;
  for (const char *const *v = verbs; *v && !known; v++) {
    size_t len = strlen(*v);
    known = n >= len && strncasecmp(data, *v, len) == 0 && (n == len || data[len] == ' ');
  }
  if (!known)
    return;
  /* Addresses are no secret; AUTH's argument is a credential, so of every
   * other command only the verb is kept. */
  int whole = (n >= 10 && strncasecmp(data, "MAIL FROM:", 10) == 0) ||
              (n >= 8 && strncasecmp(data, "RCPT TO:", 8) == 0);
  /* MAIL and RCPT up to the address (no parameters), others the verb */
  size_t cut = whole ? (size_t)(memchr(data, ':', n) - (void *)data) + 1 : 0;
  while (whole && cut < n && data[cut] == ' ')
    cut++;
  while (cut < n && data[cut] != ' ')
    cut++;
  n = cut;
  if (n >= sizeof s->command)
    n = sizeof s->command - 1;
  memcpy(s->command, data, n);
  s->command[n] = '\0';
  s->body_sent = 0;
}

static void note_reply(mw_smtp *s, const char *data, size_t size) {
  size_t n = line_length(data, size);
  if (s->quitting || n < 3 || data[0] < '1' || data[0] > '5')
    return;
  int final = n == 3 || data[3] == ' ';
  if (n >= sizeof s->reply)
    n = sizeof s->reply - 1;
  memcpy(s->reply, data, n);
  s->reply[n] = '\0';
  s->reply_code = (data[0] - '0') * 100 + (data[1] - '0') * 10 + (data[2] - '0');
  if (!final)
    return;
  if (strcasecmp(s->command, "DATA") == 0 && !s->body_sent && s->reply_code == 354)
    s->body_sent = 1;
  else if (s->body_sent && s->reply_code / 100 == 2)
    atomic_store(&s->delivered, 1);
}

/* SMTP commands reach curl's debug callback as HEADER_OUT, the server's
 * replies as HEADER_IN, one line at a time: the only place that tells which
 * command a reply answers. */
static int on_debug(CURL *e, curl_infotype type, char *data, size_t size, void *userp) {
  (void)e;
  if (type == CURLINFO_HEADER_OUT)
    note_command(userp, data, size);
  else if (type == CURLINFO_HEADER_IN)
    note_reply(userp, data, size);
  return 0;
}

/* Replaces every copy of secret in text with "***" (no server should echo
 * it; this makes sure no message ever shows it). */
static void scrub(char *text, const char *secret) {
  size_t len = secret ? strlen(secret) : 0;
  char *p;
  if (!len)
    return;
  while ((p = strstr(text, secret))) {
    size_t rest = strlen(p + len);
    memmove(p + 3, p + len, rest + 1);
    memcpy(p, "***", 3);
  }
}

static void describe_refusal(mw_smtp *s) {
  const char *reply = s->reply[0] ? s->reply : "no reply";
  if (strncasecmp(s->command, "RCPT TO:", 8) == 0)
    snprintf(s->text, sizeof s->text, "recipient %s refused: %s", s->command + 8, reply);
  else if (strncasecmp(s->command, "MAIL FROM:", 10) == 0)
    snprintf(s->text, sizeof s->text, "sender %s refused: %s", s->command + 10, reply);
  else if (strcasecmp(s->command, "DATA") == 0)
    snprintf(s->text, sizeof s->text, "message refused after DATA: %s", reply);
  else if (s->command[0])
    snprintf(s->text, sizeof s->text, "the server refused %s: %s", s->command, reply);
  else
    snprintf(s->text, sizeof s->text, "the server refused the connection: %s", reply);
}

static void classify(mw_smtp *s, CURL *e, CURLcode rc) {
  const char *curl_msg = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc);
  snprintf(s->text, sizeof s->text, "%s", curl_msg);
  switch (rc) {
  case CURLE_ABORTED_BY_CALLBACK:
    s->kind = "cancelled";
    break;
  case CURLE_LOGIN_DENIED:
  case CURLE_AUTH_ERROR:
    s->kind = "auth";
    if (s->reply_code >= 400)
      snprintf(s->text, sizeof s->text, "login denied: %s", s->reply);
    break;
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_REMOTE_ACCESS_DENIED:
    if (s->reply_code >= 400 && s->reply_code < 600) {
      /* RFC 4954: 530 is "authentication required" */
      s->kind = s->reply_code == 530 ? "auth" : "rejected";
      describe_refusal(s);
    } else {
      s->kind = rc == CURLE_WEIRD_SERVER_REPLY ? "protocol" : "reset";
      /* curl's own words name a read, not the server that hung up */
      if (!s->reply[0] && rc != CURLE_WEIRD_SERVER_REPLY)
        snprintf(s->text, sizeof s->text,
                 "the server closed the connection before its greeting (%s)", curl_msg);
    }
    break;
  default:
    s->kind = curl_kind(e, rc);
  }
  scrub(s->text, s->password);
}

static void smtp_setup(mw_smtp *s, CURL *e) {
  curl_easy_setopt(e, CURLOPT_URL, s->url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
  curl_easy_setopt(e, CURLOPT_MAIL_FROM, s->from);
  curl_easy_setopt(e, CURLOPT_MAIL_RCPT, s->rcpt);
  /* curl dot-stuffs the message and ends it with CRLF.CRLF itself. */
  curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(e, CURLOPT_READDATA, s);
  curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)s->message_len);
  curl_easy_setopt(e, CURLOPT_USE_SSL, s->use_ssl);
  if (s->username)
    curl_easy_setopt(e, CURLOPT_USERNAME, s->username);
  if (s->password)
    curl_easy_setopt(e, CURLOPT_PASSWORD, s->password);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, s->verify ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, s->verify ? 2L : 0L);
  curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
  if (s->ca_file)
    curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
  /* Bounds each wait for a reply, QUIT's included, which the overall
   * timeout does not cover. */
  curl_easy_setopt(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, (long)ceil(s->timeout));
  /* One connection per send: alerts are rare, and a cached SMTP connection
   * would be closed (with QUIT) by whichever transfer evicts it. */
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, s);
  curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
  curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
  curl_easy_setopt(e, CURLOPT_DEBUGDATA, s);
}

static void smtp_work(uv_work_t *work) {
  mw_smtp *s = work->data;
  if (atomic_load(&s->abort)) {
    s->kind = "cancelled";
    return;
  }
  CURL *e = curl_easy_init();
  if (!e) {
    s->kind = "error";
    snprintf(s->text, sizeof s->text, "out of memory");
    return;
  }
  smtp_setup(s, e);
  CURLcode rc = curl_easy_perform(e);
  /* Once the message is accepted, a failed QUIT changes nothing. */
  if (rc != CURLE_OK && !atomic_load(&s->delivered))
    classify(s, e, rc);
  curl_easy_cleanup(e);
}

/* The loop's side */

static void smtp_free(mw_smtp *s) {
  free(s->url);
  free(s->from);
  free(s->message);
  free(s->username);
  if (s->password) {
    /* a credential: not left behind in freed memory */
    memset(s->password, 0, strlen(s->password));
    free(s->password);
  }
  free(s->ca_file);
  curl_slist_free_all(s->rcpt);
  free(s);
}

static void timer_free(uv_handle_t *handle) {
  free(handle);
}

static void smtp_close_timer(mw_smtp *s) {
  if (!s->timer)
    return;
  uv_close((uv_handle_t *)s->timer, timer_free);
  s->timer = NULL;
}

static void smtp_report(mw_smtp *s, const char *kind, const char *text) {
  mw_smtp_done_fn done = s->done;
  s->done = NULL;
  smtp_close_timer(s);
  if (done)
    done(kind, text, s->done_data);
}

static void smtp_after_work(uv_work_t *work, int status) {
  (void)status;
  mw_smtp *s = work->data;
  if (s->done)
    smtp_report(s, s->kind, s->text);
  smtp_close_timer(s);
  smtp_free(s);
}

static void smtp_on_backstop(uv_timer_t *timer) {
  mw_smtp *s = timer->data;
  char text[256];
  atomic_store(&s->abort, 1);
  if (atomic_load(&s->delivered)) {
    smtp_report(s, NULL, NULL);
    return;
  }
  snprintf(text, sizeof text, "no outcome within the %.3g s timeout (the send was abandoned)",
           s->timeout);
  smtp_report(s, "timeout", text);
}

void smtp_abort(mw_smtp *s) {
  s->done = NULL;
  atomic_store(&s->abort, 1);
  smtp_close_timer(s);
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

/* The URL of a send: smtp or smtps, a host, no credentials (they would show
 * in messages and logs: username and password are options of their own). */
const char *smtp_check_url(const char *url) {
  static char error[512];
  for (const char *c = url; *c; c++)
    if ((unsigned char)*c <= ' ' || *c == 0x7f) {
      snprintf(error, sizeof error, "bad url: a space or control character at offset %d",
               (int)(c - url));
      return error;
    }
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
  const char *err = NULL;
  CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
  if (uc == CURLUE_OK)
    uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  if (uc == CURLUE_OK)
    uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  if (uc != CURLUE_OK) {
    snprintf(error, sizeof error, "bad url '%s': %s", url, curl_url_strerror(uc));
    err = error;
  } else if (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0) {
    snprintf(error, sizeof error, "unsupported scheme '%s' in '%s' (use smtp or smtps)", scheme,
             url);
    err = error;
  } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
             curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
    err = "the url must not hold credentials: use the options username and password";
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(user);
  curl_free(password);
  curl_url_cleanup(u);
  return err;
}

mw_smtp *smtp_send(mw_loop *loop, mw_smtp_options *o, mw_smtp_done_fn done, void *data,
                   const char **error) {
  struct curl_slist *rcpt = o->rcpt;
  o->rcpt = NULL;
  if (!global_ready) {
    /* Before any thread uses curl. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      curl_slist_free_all(rcpt);
      *error = "curl_global_init failed";
      return NULL;
    }
    global_ready = 1;
  }
  mw_smtp *s = calloc(1, sizeof *s);
  if (!s) {
    curl_slist_free_all(rcpt);
    *error = "out of memory";
    return NULL;
  }
  s->rcpt = rcpt;
  s->url = strdup(o->url);
  s->from = strdup(o->from);
  s->message = malloc(o->message_len ? o->message_len : 1);
  s->username = dup_or_null(o->username);
  s->password = dup_or_null(o->password);
  s->ca_file = dup_or_null(o->ca_file);
  s->timer = malloc(sizeof *s->timer);
  if (!s->url || !s->from || !s->message || (o->username && !s->username) ||
      (o->password && !s->password) || (o->ca_file && !s->ca_file) || !s->timer) {
    free(s->timer);
    s->timer = NULL;
    smtp_free(s);
    *error = "out of memory";
    return NULL;
  }
  memcpy(s->message, o->message, o->message_len);
  s->message_len = o->message_len;
  s->use_ssl = o->use_ssl;
  s->verify = o->verify;
  s->timeout = o->timeout;
  s->timeout_ms = (long)(o->timeout * 1000.0);
  s->connect_timeout_ms = (long)(o->connect_timeout * 1000.0);
  if (s->timeout_ms < 1)
    s->timeout_ms = 1;
  if (s->connect_timeout_ms < 1 || s->connect_timeout_ms > s->timeout_ms)
    s->connect_timeout_ms = s->timeout_ms;
  s->done = done;
  s->done_data = data;
  s->work.data = s;
  int rc = uv_queue_work(&loop->uv, &s->work, smtp_work, smtp_after_work);
  if (rc != 0) {
    free(s->timer);
    s->timer = NULL;
    smtp_free(s);
    *error = uv_strerror(rc);
    return NULL;
  }
  uv_timer_init(&loop->uv, s->timer);
  s->timer->data = s;
  uv_update_time(&loop->uv);
  uv_timer_start(s->timer, smtp_on_backstop, (uint64_t)s->timeout_ms + SMTP_BACKSTOP_MS, 0);
  return s;
}
