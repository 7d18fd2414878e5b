/* L3: ICMP echo (ping) on the loop, IPv4 and IPv6: an unprivileged ICMP
 * datagram socket where net.ipv4.ping_group_range allows it, else a raw
 * socket (CAP_NET_RAW). */
#ifndef MW_ICMP_H
#define MW_ICMP_H

#include "loop.h"

#define MW_ICMP_COUNT_MAX 100

typedef struct mw_icmp mw_icmp;

typedef struct {
  const char *address; /* the address pinged */
  const char *socket;  /* "dgram" or "raw" */
  int sent, received;
  double rtt[MW_ICMP_COUNT_MAX]; /* seconds, per echo sent; < 0: no reply in time */
} mw_icmp_result;

/* res, or NULL with a failure kind (dns, permission, unreachable, local)
 * and its message. */
typedef void (*mw_icmp_fn)(void *data, const mw_icmp_result *res, const char *kind,
                           const char *error);

/* Sends count echo requests to host (an address, or a name resolved by the
 * resolver, IPv4 first), one every interval seconds, and waits up to
 * timeout seconds for each reply. cb runs from the loop, never from inside
 * this call. NULL with *kind and *error when it cannot start. The
 * environment's MOONWATCH_ICMP_SOCKETS ("dgram", "raw", "none"; default
 * both) limits the sockets tried. */
mw_icmp *icmp_start(mw_loop *loop, const char *host, int count, double interval, double timeout,
                    mw_icmp_fn cb, void *data, const char **kind, const char **error);
/* cb will not run; everything is freed from the loop. */
void icmp_cancel(mw_icmp *p);

#endif
