/* L3: a c-ares channel on the loop: its sockets in the fd registry, one timer
 * for its timeouts. The resolver and DNS queries each own channels. */
#ifndef MW_DNS_CHANNEL_H
#define MW_DNS_CHANNEL_H

#include <ares.h>

#include "loop.h"

typedef struct {
  mw_loop *loop;
  ares_channel channel;
  int ok;            /* channel is open */
  uv_timer_t *timer; /* freed in its close callback */
  int live;          /* queries someone waits for: only they keep the loop running */
} mw_dns_channel;

/* Makes the timer (no channel yet). 0, or -1 and *error. */
int dns_channel_init(mw_dns_channel *ch, mw_loop *loop, const char **error);
/* Opens the c-ares channel with opts (mask: ARES_OPT_*; the socket state
 * callback is set here) and servers (csv, or NULL for the system's). */
int dns_channel_open(mw_dns_channel *ch, struct ares_options *opts, int mask, const char *servers,
                     const char **error);
/* Ends the channel: c-ares runs every pending callback with
 * ARES_EDESTRUCTION; its sockets leave the registry. The timer stays. */
void dns_channel_destroy(mw_dns_channel *ch);
/* Re-arms the timer from c-ares's next timeout; call after starting a
 * query or changing live. */
void dns_channel_rearm(mw_dns_channel *ch);
/* dns_channel_destroy, then closes the timer. */
void dns_channel_close(mw_dns_channel *ch);

#endif
