/* L3: the embedded HTTP/1.1 server, on the loop's fd registry.
 *
 * A server listens on one address (both loopbacks for "localhost"), parses
 * requests with http_parser and answers each with a route: a C function
 * for an exact path and method, or the fallback for any other path. A route
 * answers at once (start, header, write, end), later (server_res_hold, then
 * end from a loop callback), or as a stream its produce function writes a
 * bounded piece of per loop turn. The limits (connections, header and body
 * bytes, request and idle time) are answered with their status and never
 * grow memory without bound; while a response waits for the socket the
 * connection is not read (bounded pipelining).
 */
#ifndef MW_SERVER_H
#define MW_SERVER_H

#include <stddef.h>

#include "loop.h"

typedef struct mw_server mw_server;
typedef struct mw_server_req mw_server_req; /* read-only: method, path, query, headers, body */
typedef struct mw_server_res mw_server_res; /* the response being written */

typedef void (*mw_server_route_fn)(void *data, const mw_server_req *req, mw_server_res *res);
/* Returns 1 when the body is complete, 0 to be called again (next loop turn,
 * once the socket took what was written). */
typedef int (*mw_server_produce_fn)(void *data, mw_server_res *res);
typedef void (*mw_server_release_fn)(void *data);

typedef struct {
  int max_connections;     /* open at once; one more gets 503 and is closed */
  size_t max_header_bytes; /* request line and headers: 431 past it */
  size_t max_body_bytes;   /* 413 past it */
  double request_timeout;  /* seconds from a request's first byte to its response: 408 */
  double idle_timeout;     /* seconds a kept-alive connection may wait for a request */
} mw_server_options;

/* The defaults: 256 connections, 8 KiB of headers, 1 MiB of body, 10 s per
 * request, 60 s idle. */
void server_options_default(mw_server_options *opt);

/* Listens on "host:port": an IPv4 or IPv6 literal ("[::1]:8080"),
 * "localhost" (127.0.0.1 and ::1) or an empty host (every interface); port
 * 0 picks a free one. Returns NULL and a message in err on failure. The
 * server closes by server_close or when the loop closes. */
mw_server *server_open(mw_loop *loop, const char *listen, const mw_server_options *opt, char *err,
                       size_t errsz);
/* Stops listening and closes every connection (a response in progress is
 * dropped: its hold's gone or its stream's release runs). Its memory goes
 * once the loop has closed its handles. Calling it again does nothing. */
void server_close(mw_server *s);
/* on_close(data) runs once when the server closes, however it closes. */
void server_on_close(mw_server *s, mw_server_release_fn on_close, void *data);
/* The address bound: host as given (or the first address of localhost)
 * and the port, the chosen one for port 0. */
const char *server_host(const mw_server *s);
int server_port(const mw_server *s);
/* Whether every listening socket is on a loopback address. */
int server_is_loopback(const mw_server *s);

/* Routes */

#define MW_SERVER_AUTH_ALWAYS 1 /* needs credentials whatever the auth scope */

/* Answers method (GET also answers HEAD) on the exact path. Returns 0, or
 * -1 when out of memory or the route exists. */
int server_route_add(mw_server *s, const char *method, const char *path, mw_server_route_fn fn,
                     void *data);
int server_route_add_flags(mw_server *s, const char *method, const char *path,
                           mw_server_route_fn fn, void *data, int flags);
/* Answers every path no route has (404 without one). */
void server_fallback(mw_server *s, mw_server_route_fn fn, void *data);
/* path, served by the fallback, needs credentials whatever the scope. */
int server_protect(mw_server *s, const char *path);

/* Authentication: none (the default), a bearer token, or basic auth. The
 * scope says which requests need it: every one, or only those of routes
 * and paths marked always (MW_SERVER_AUTH_ALWAYS, server_protect). A
 * request without valid credentials gets 401 and WWW-Authenticate; a marked
 * one on a server without credentials gets 403. */
typedef enum { MW_SERVER_AUTH_ALL, MW_SERVER_AUTH_MARKED } mw_server_auth_scope;
int server_auth_bearer(mw_server *s, const char *token);
int server_auth_basic(mw_server *s, const char *user, const char *password);
void server_auth_scope(mw_server *s, mw_server_auth_scope scope);

/* Requests: valid until the response ends (or is gone). Strings are
 * NUL-terminated; the path and query are as sent (not percent-decoded). */
const char *server_req_method(const mw_server_req *req);
const char *server_req_path(const mw_server_req *req);
const char *server_req_query(const mw_server_req *req); /* NULL without '?' */
/* The first header of that name (any case), or NULL. */
const char *server_req_header(const mw_server_req *req, const char *name);
int server_req_header_count(const mw_server_req *req);
/* The i-th header (0-based): its name in lower case and its value. */
void server_req_header_at(const mw_server_req *req, int i, const char **name, const char **value);
const char *server_req_body(const mw_server_req *req, size_t *len);
/* The peer as "ip:port" ("[ip]:port" for IPv6). */
const char *server_req_remote(const mw_server_req *req);
/* 0 for HTTP/1.0, 1 for HTTP/1.1. */
int server_req_minor(const mw_server_req *req);

/* Responses */

void server_res_start(mw_server_res *res, int status, const char *content_type);
/* A header line of the response; names and values with CR, LF or NUL are
 * dropped (the server sets Content-Length, Transfer-Encoding, Connection
 * and Date itself). */
void server_res_header(mw_server_res *res, const char *name, const char *value);
void server_res_write(mw_server_res *res, const char *p, size_t n); /* copies */
void server_res_end(mw_server_res *res);
/* A streamed body (chunked in HTTP/1.1, to the close in HTTP/1.0): produce
 * writes with server_res_write a bounded amount per call; release(data) is
 * called once, when done or when the connection is gone mid-stream. */
void server_res_stream(mw_server_res *res, mw_server_produce_fn produce, void *data,
                       mw_server_release_fn release);
/* The route returns before answering: it ends the response later, from a
 * loop callback. gone(data) runs instead if the response can no longer be
 * sent (the connection closed, the request timed out: 503); res is invalid
 * after it. */
void server_res_hold(mw_server_res *res, mw_server_release_fn gone, void *data);
/* Whether the response is to a HEAD request (its body is not sent). */
int server_res_is_head(const mw_server_res *res);

#endif
