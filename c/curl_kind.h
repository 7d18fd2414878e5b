/* L0: the failure kind of a curl result code, shared by every transport. */
#ifndef MW_CURL_KIND_H
#define MW_CURL_KIND_H

#include <curl/curl.h>

/* "dns", "refused", "connect", "timeout", "tls", "reset", "protocol",
 * "too_many_redirects", "url" or "error"; e tells a refused connection
 * from another failure to connect. */
const char *curl_kind(CURL *e, CURLcode rc);

#endif
