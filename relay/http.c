/* http: request parser for the metrics listener (see http.h).
 *
 * Accepted: "METHOD SP /path[?query] SP HTTP/1.x CRLF", then header lines
 * "name: value CRLF" (name a token, value visible characters, spaces and
 * tabs; no line folding), then CRLF, all within HTTP_MAX_REQUEST bytes.
 * Anything else is refused with the most specific status. A request body
 * is not expected and not read. */
#include "http.h"

#include <string.h>

#define MAX_HEADERS 64

static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_vchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e;
}

/* The end of the line starting at p (the index of its CR), -1 if not
 * there yet, -2 for a bare CR or LF. */
static long line_end(const char *b, size_t p, size_t len)
{
	size_t i;

	for (i = p; i < len; i++) {
		if (b[i] == '\n')
			return -2; /* a line feed without its carriage return */
		if (b[i] == '\r' && i + 1 < len)
			return b[i + 1] == '\n' ? (long)i : -2;
	}
	return -1;
}

static enum http_verdict request_line(const char *b, size_t n, int *head)
{
	size_t i = 0, m, t0, t1;

	while (i < n && b[i] >= 'A' && b[i] <= 'Z')
		i++;
	m = i;
	if (m == 0 || i >= n || b[i] != ' ')
		return HTTP_BAD_REQUEST;
	t0 = ++i;
	while (i < n && is_vchar((unsigned char)b[i]))
		i++;
	t1 = i;
	if (t1 == t0 || b[t0] != '/' || i >= n || b[i] != ' ')
		return HTTP_BAD_REQUEST;
	i++;
	if (n - i != 8 || memcmp(b + i, "HTTP/", 5) != 0 || b[i + 5] < '0' || b[i + 5] > '9' ||
	    b[i + 6] != '.' || b[i + 7] < '0' || b[i + 7] > '9')
		return HTTP_BAD_REQUEST;
	if (b[i + 5] != '1')
		return HTTP_BAD_VERSION;
	if (m == 3 && memcmp(b, "GET", 3) == 0)
		*head = 0;
	else if (m == 4 && memcmp(b, "HEAD", 4) == 0)
		*head = 1;
	else
		return HTTP_NOT_ALLOWED;
	if ((t1 - t0 == 8 || (t1 - t0 > 8 && b[t0 + 8] == '?')) &&
	    memcmp(b + t0, "/metrics", 8) == 0)
		return HTTP_OK;
	return HTTP_NOT_FOUND;
}

static int header_line(const char *b, size_t n)
{
	size_t i = 0;

	while (i < n && is_tchar((unsigned char)b[i]))
		i++;
	if (i == 0 || i >= n || b[i] != ':')
		return -1;
	for (i++; i < n; i++)
		if (!is_vchar((unsigned char)b[i]) && b[i] != ' ' && b[i] != '\t')
			return -1;
	return 0;
}

enum http_verdict http_parse_request(const char *buf, size_t len, int *head)
{
	size_t lim = len < HTTP_MAX_REQUEST ? len : HTTP_MAX_REQUEST, p = 0, i;
	enum http_verdict v = HTTP_NEED_MORE;
	unsigned nheaders = 0;
	long e;

	*head = 0;
	/* Cheap early refusal of what can never become a request. */
	for (i = 0; i < lim; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c >= 0x7f || (c < 0x20 && c != '\r' && c != '\n' && c != '\t'))
			return HTTP_BAD_REQUEST;
	}
	e = line_end(buf, 0, lim);
	if (e == -2)
		return HTTP_BAD_REQUEST;
	if (e < 0)
		return len >= HTTP_MAX_REQUEST ? HTTP_TOO_LARGE : HTTP_NEED_MORE;
	v = request_line(buf, (size_t)e, head);
	if (v == HTTP_BAD_REQUEST || v == HTTP_BAD_VERSION)
		return v;
	p = (size_t)e + 2;
	for (;;) {
		e = line_end(buf, p, lim);
		if (e == -2)
			return HTTP_BAD_REQUEST;
		if (e < 0)
			return len >= HTTP_MAX_REQUEST ? HTTP_TOO_LARGE : HTTP_NEED_MORE;
		if ((size_t)e == p)
			return v; /* the blank line: complete */
		if (buf[p] == ' ' || buf[p] == '\t' || ++nheaders > MAX_HEADERS ||
		    header_line(buf + p, (size_t)e - p) < 0)
			return HTTP_BAD_REQUEST;
		p = (size_t)e + 2;
	}
}

const char *http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}
