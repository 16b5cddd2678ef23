/*
 * Reporting an OpenSSL failure, for the modules that use OpenSSL (the
 * acme-tls/1 handshakes in proxy/, the certificate builder in solver-api/).
 * Kept out of edge_common so that what links only that stays free of
 * OpenSSL.
 */
#ifndef EDGE_OSSL_H
#define EDGE_OSSL_H

#include <stddef.h>

/* Which entry of the thread's OpenSSL error queue names a failure. */
enum ossl_pick {
	OSSL_PICK_FIRST,	/* the cause; later ones are layers giving up */
	OSSL_PICK_LAST,		/* the most recent call's own complaint */
};

/*
 * Formats "<fmt ...>: <reason>" into err as err_set() does, the reason
 * being the queue entry pick names, or none when the queue is empty. Then
 * empties the thread's queue whatever err is: a stale entry would blame a
 * later, unrelated failure on this thread, and SSL_get_error() would read
 * it as SSL_ERROR_SSL.
 */
void ossl_err_set(char *err, size_t errlen, enum ossl_pick pick,
		  const char *none, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif
