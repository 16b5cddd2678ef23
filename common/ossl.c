#include "common/ossl.h"

#include <stdarg.h>
#include <stdio.h>

#include <openssl/err.h>

#include "common/log.h"

void ossl_err_set(char *err, size_t errlen, enum ossl_pick pick,
		  const char *none, const char *fmt, ...)
{
	unsigned long e = pick == OSSL_PICK_FIRST ? ERR_peek_error() :
						    ERR_peek_last_error();
	/* OpenSSL 3.0's longest "error:..." line is under 100 bytes. */
	char what[256], reason[256];
	va_list ap;

	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	else
		snprintf(reason, sizeof(reason), "%s", none);
	ERR_clear_error();
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	err_set(err, errlen, "%s: %s", what, reason);
}
