/* L3: c-ares on libuv: one registered fd per c-ares socket and one timer
 * for c-ares's timeouts, for any channel (the resolver's, the queries'). */
#include <stdlib.h>
#include <string.h>

#include "dns_channel.h"

/* A c-ares socket, watched through the loop's fd registry. */
typedef struct {
  mw_fd w;
  mw_dns_channel *ch;
} dns_poll;

static void timer_free(uv_handle_t *handle) {
  free(handle);
}

static void poll_free(mw_fd *w) {
  free(w); /* the first member of its dns_poll */
}

static void channel_on_timer(uv_timer_t *timer) {
  mw_dns_channel *ch = timer->data;
  if (!ch->ok)
    return;
  ares_process_fd(ch->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  dns_channel_rearm(ch);
}

/* Queries nobody waits for any more still run inside c-ares until they time
 * out; they must not keep the loop alive, so the timer holds a reference
 * only while a live query waits. */
void dns_channel_rearm(mw_dns_channel *ch) {
  if (!ch->ok) {
    uv_timer_stop(ch->timer);
    return;
  }
  struct timeval tv, *tvp = ares_timeout(ch->channel, NULL, &tv);
  if (!tvp) {
    uv_timer_stop(ch->timer);
    return;
  }
  uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)(tvp->tv_usec + 999) / 1000;
  uv_timer_start(ch->timer, channel_on_timer, ms ? ms : 1, 0);
  if (ch->live > 0)
    uv_ref((uv_handle_t *)ch->timer);
  else
    uv_unref((uv_handle_t *)ch->timer);
}

static void channel_on_poll(mw_fd *w, int status, int events) {
  mw_dns_channel *ch = ((dns_poll *)w)->ch;
  ares_socket_t fd = w->fd;
  int readable = status < 0 || (events & UV_READABLE);
  int writable = status < 0 || (events & UV_WRITABLE);
  ares_process_fd(ch->channel, readable ? fd : ARES_SOCKET_BAD, writable ? fd : ARES_SOCKET_BAD);
  dns_channel_rearm(ch);
}

static void channel_on_sock_state(void *data, ares_socket_t fd, int readable, int writable) {
  mw_dns_channel *ch = data;
  mw_fd *w = loop_fd_find(ch->loop, fd, ch);
  if (!readable && !writable) {
    if (w)
      loop_fd_close(w);
    return;
  }
  if (!w) {
    dns_poll *p = calloc(1, sizeof *p);
    if (!p)
      return;
    p->ch = ch;
    loop_fd_forget(ch->loop, fd); /* c-ares has just opened it */
    if (loop_fd_open(ch->loop, &p->w, fd, ch, channel_on_poll, poll_free) != 0) {
      free(p);
      return;
    }
    w = &p->w;
    /* An idle c-ares socket must not keep the loop running; the timer and
     * the waiting task do that. */
    loop_fd_keep_alive(w, 0);
  }
  loop_fd_watch(w, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0));
}

int dns_channel_init(mw_dns_channel *ch, mw_loop *loop, const char **error) {
  static int library_ready;
  if (!library_ready) {
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
      *error = ares_strerror(rc);
      return -1;
    }
    library_ready = 1;
  }
  memset(ch, 0, sizeof *ch);
  ch->loop = loop;
  ch->timer = malloc(sizeof *ch->timer);
  if (!ch->timer) {
    *error = "out of memory";
    return -1;
  }
  uv_timer_init(&loop->uv, ch->timer);
  ch->timer->data = ch;
  return 0;
}

int dns_channel_open(mw_dns_channel *ch, struct ares_options *opts, int mask, const char *servers,
                     const char **error) {
  opts->sock_state_cb = channel_on_sock_state;
  opts->sock_state_cb_data = ch;
  int rc = ares_init_options(&ch->channel, opts, mask | ARES_OPT_SOCK_STATE_CB);
  if (rc != ARES_SUCCESS) {
    *error = ares_strerror(rc);
    return -1;
  }
  if (servers) {
    rc = ares_set_servers_ports_csv(ch->channel, servers);
    if (rc != ARES_SUCCESS) {
      *error = ares_strerror(rc);
      ares_destroy(ch->channel);
      return -1;
    }
  }
  ch->ok = 1;
  return 0;
}

void dns_channel_destroy(mw_dns_channel *ch) {
  if (ch->ok) {
    ch->ok = 0;
    ares_destroy(ch->channel);
  }
  loop_fd_close_all(ch->loop, ch);
  uv_timer_stop(ch->timer);
}

void dns_channel_close(mw_dns_channel *ch) {
  dns_channel_destroy(ch);
  uv_close((uv_handle_t *)ch->timer, timer_free);
  ch->timer = NULL;
}
