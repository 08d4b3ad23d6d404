/* http: the strict, bounded parser for the one HTTP request the metrics
 * listener serves (GET /metrics, HTTP/1.0 or 1.1). Sans-I/O: bytes in, a
 * verdict out; the listener answers with the status it returns. */
#ifndef XT_HTTP_H
#define XT_HTTP_H

#include <stddef.h>

/* Largest request accepted (request line and headers), bytes. */
#define HTTP_MAX_REQUEST 4096

enum http_verdict {
	HTTP_NEED_MORE = 0, /* no blank line yet: read more (within the limit) */
	HTTP_OK = 200,	    /* GET /metrics */
	HTTP_BAD_REQUEST = 400,
	HTTP_NOT_FOUND = 404,
	HTTP_NOT_ALLOWED = 405, /* a method other than GET or HEAD */
	HTTP_TOO_LARGE = 431,	/* no end of headers within HTTP_MAX_REQUEST */
	HTTP_BAD_VERSION = 505
};

/* Judge the bytes received so far (len may exceed the limit: the verdict
 * is then HTTP_TOO_LARGE unless a complete request came first). *head is
 * set to 1 for HEAD, 0 for GET. Never reads beyond buf[len - 1]. */
enum http_verdict http_parse_request(const char *buf, size_t len, int *head);

/* The reason phrase for a status. */
const char *http_reason(int status);

#endif
