/* L3: TCP probes on the loop: connect to host:port (names through the
 * resolver, each address in turn within one timeout), optionally TLS on the
 * same non-blocking socket (OpenSSL), optionally send bytes and read the
 * reply. The socket is in the loop's fd registry; nothing blocks. */
#ifndef MW_TCP_H
#define MW_TCP_H

#include <stddef.h>

#include "loop.h"

typedef struct mw_tcp mw_tcp;

/* The settings of one probe; tcp_start copies what it keeps. */
typedef struct {
  const char *host; /* a name or an IP literal (IPv6 without brackets) */
  int port;
  int tls;
  int insecure;            /* TLS: a certificate that does not verify is still reported */
  const char *server_name; /* TLS: SNI and the name verified; NULL: host */
  const char *ca_file;     /* TLS: the CAs that verify; NULL: the system's */
  const char *send;
  size_t send_len;
  size_t read_max; /* 0: no reply is read */
  const char *read_until;
  size_t read_until_len; /* reading ends once the reply holds it; 0: it never does */
  double timeout;        /* seconds, the whole probe */
} mw_tcp_options;

/* What a probe saw, valid while its done function runs. Times are seconds
 * from the start, as curl counts them: each phase's end (0 when it did not
 * happen). */
typedef struct {
  const char *ip; /* the address connected to, or last tried ("" before) */
  int port;
  double dns, connect, tls, first_byte, total;
  const char *reply; /* NULL when no reply was read */
  size_t reply_len;
  const char *ended; /* why reading ended: "until", "limit", "closed" or "timeout" */
  void *ssl;         /* an OpenSSL SSL * once the handshake gave a certificate, or NULL */
  const char *tls_version, *cipher;
} mw_tcp_result;

/* kind is NULL when the probe succeeded, else its failure kind (dns,
 * refused, connect, timeout, tls, reset, closed, error) with message
 * saying why; res holds what was measured either way. Runs on the loop. */
typedef void (*mw_tcp_done_fn)(const mw_tcp_result *res, const char *kind, const char *message,
                               void *data);

/* Starts a probe; done runs once from the loop unless tcp_abort comes first.
 * NULL when it ended at once (a name that cannot resolve, a refused
 * loopback port, an unreadable ca_file): *kind and error (cap bytes) say
 * why, and done will not run. */
mw_tcp *tcp_start(mw_loop *loop, const mw_tcp_options *o, mw_tcp_done_fn done, void *data,
                  const char **kind, char *error, size_t cap);
/* done will not run; the socket, the TLS state and the timer are released. */
void tcp_abort(mw_tcp *t);

#endif
