/* fuzz_http: libFuzzer target for http_parse_request (relay/http.c), the
 * parser of the only bytes the metrics listener reads from the network.
 *
 * The input is copied into a heap block of exactly its size, so
 * AddressSanitizer sees any read past len. Invariants beyond "no crash":
 *  - the verdict is one of the enum values;
 *  - prefixes are monotone: once a prefix gets a final verdict, every
 *    longer prefix gets one too (a refused request cannot become
 *    acceptable by sending more), and the complete input's verdict is
 *    HTTP_NEED_MORE only if every prefix's is;
 *  - HTTP_OK only for requests whose first line starts "GET /metrics" or
 *    "HEAD /metrics", and *head says which;
 *  - HTTP_NEED_MORE only below HTTP_MAX_REQUEST bytes. */
#include "http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int known(int v)
{
	return v == HTTP_NEED_MORE || v == HTTP_OK || v == HTTP_BAD_REQUEST ||
	       v == HTTP_NOT_FOUND || v == HTTP_NOT_ALLOWED || v == HTTP_TOO_LARGE ||
	       v == HTTP_BAD_VERSION;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *b;
	int head, v, prev = HTTP_NEED_MORE;
	size_t i, step;

	if (size > 2 * HTTP_MAX_REQUEST)
		return 0;
	b = malloc(size ? size : 1);
	if (b == NULL)
		return 0;
	memcpy(b, data, size);
	step = size > 512 ? size / 64 : 1;
	for (i = 0; i <= size; i += step) {
		v = http_parse_request(b, i, &head);
		if (!known(v))
			abort();
		if (prev != HTTP_NEED_MORE && v == HTTP_NEED_MORE)
			abort();
		prev = v;
	}
	v = http_parse_request(b, size, &head);
	if (!known(v) || (prev != HTTP_NEED_MORE && v == HTTP_NEED_MORE))
		abort();
	if (v == HTTP_OK && !((head == 0 && size >= 12 && memcmp(b, "GET /metrics", 12) == 0) ||
			      (head == 1 && size >= 13 && memcmp(b, "HEAD /metrics", 13) == 0)))
		abort();
	if (v == HTTP_NEED_MORE && size >= HTTP_MAX_REQUEST)
		abort();
	free(b);
	return 0;
}
