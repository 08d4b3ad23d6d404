/* Check suite for relay/http.c: the metrics listener's request parser.
 * Every case is judged whole and byte by byte (each proper prefix of a
 * complete request must ask for more, never be refused or accepted). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

struct http_case {
	const char *req;
	int want; /* enum http_verdict */
	int head;
};

static const struct http_case cases[] = {
    {"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9269\r\nAccept: text/plain\r\n\r\n", HTTP_OK, 0},
    {"GET /metrics HTTP/1.0\r\n\r\n", HTTP_OK, 0},
    {"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_OK, 1},
    {"GET /metrics?name[]=x HTTP/1.1\r\n\r\n", HTTP_OK, 0},
    {"GET /metricsx HTTP/1.1\r\n\r\n", HTTP_NOT_FOUND, 0},
    {"GET / HTTP/1.1\r\n\r\n", HTTP_NOT_FOUND, 0},
    {"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", HTTP_NOT_ALLOWED, 0},
    {"GET /metrics HTTP/2.0\r\n\r\n", HTTP_BAD_VERSION, 0},
    {"GET /metrics HTTP/1.1\n\n", HTTP_BAD_REQUEST, 0},
    {"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", HTTP_BAD_REQUEST, 0},
    {"GET /metrics HTTP/1.1\r\n folded\r\n\r\n", HTTP_BAD_REQUEST, 0},
    {"GET  /metrics HTTP/1.1\r\n\r\n", HTTP_BAD_REQUEST, 0},
    {"get /metrics HTTP/1.1\r\n\r\n", HTTP_BAD_REQUEST, 0},
    {"GET metrics HTTP/1.1\r\n\r\n", HTTP_BAD_REQUEST, 0},
    {"GET /metrics HTTP/1.1\rX\r\n\r\n", HTTP_BAD_REQUEST, 0},
    {"GET /met\x01rics HTTP/1.1\r\n\r\n", HTTP_BAD_REQUEST, 0},
    {"GET /metrics HTTP/1.1\r\nX: \xc3\xa9\r\n\r\n", HTTP_BAD_REQUEST, 0},
    {"GET /metrics FTP/1.1\r\n\r\n", HTTP_BAD_REQUEST, 0},
};
#define NCASES (int)(sizeof(cases) / sizeof(cases[0]))

START_TEST(test_whole)
{
	const struct http_case *c = &cases[_i];
	int head = -1;

	ck_assert_int_eq(http_parse_request(c->req, strlen(c->req), &head), c->want);
	if (c->want == HTTP_OK)
		ck_assert_int_eq(head, c->head);
}
END_TEST

/* A request arriving one byte at a time: every prefix either asks for
 * more or already gets the final verdict, and once refused stays refused. */
START_TEST(test_bytewise)
{
	const struct http_case *c = &cases[_i];
	size_t n = strlen(c->req), i;
	int head, decided = 0;

	for (i = 1; i <= n; i++) {
		char *copy = malloc(i); /* exact size: ASan catches reads beyond */
		int v;

		memcpy(copy, c->req, i);
		v = http_parse_request(copy, i, &head);
		free(copy);
		if (v != HTTP_NEED_MORE)
			decided = 1;
		if (decided)
			ck_assert_msg(v != HTTP_NEED_MORE, "case %d: undecided again at %zu", _i,
				      i);
		if (c->want == HTTP_OK || c->want == HTTP_NOT_FOUND)
			ck_assert_msg(v == HTTP_NEED_MORE || i == n,
				      "case %d: verdict %d before the end (%zu of %zu)", _i, v, i,
				      n);
	}
	ck_assert_int_eq(http_parse_request(c->req, n, &head), c->want);
}
END_TEST

START_TEST(test_too_large)
{
	size_t n = HTTP_MAX_REQUEST + 10, i;
	char *b = malloc(n);
	int head;

	memcpy(b, "GET /metrics HTTP/1.1\r\n", 23);
	for (i = 23; i < n; i++)
		b[i] = 'a';
	/* one endless header line: no end in sight */
	ck_assert_int_eq(http_parse_request(b, HTTP_MAX_REQUEST - 1, &head), HTTP_NEED_MORE);
	ck_assert_int_eq(http_parse_request(b, n, &head), HTTP_TOO_LARGE);
	free(b);
	/* a complete request before the limit is judged even with more bytes after */
	{
		const char *ok = "GET /metrics HTTP/1.1\r\n\r\n";

		b = calloc(1, n);
		memcpy(b, ok, strlen(ok));
		ck_assert_int_eq(http_parse_request(b, strlen(ok), &head), HTTP_OK);
		free(b);
	}
}
END_TEST

START_TEST(test_many_headers)
{
	char b[HTTP_MAX_REQUEST];
	size_t len = 0;
	int i, head;

	len += (size_t)snprintf(b, sizeof(b), "GET /metrics HTTP/1.1\r\n");
	for (i = 0; i < 65; i++)
		len += (size_t)snprintf(b + len, sizeof(b) - len, "X-%d: y\r\n", i);
	len += (size_t)snprintf(b + len, sizeof(b) - len, "\r\n");
	ck_assert_int_eq(http_parse_request(b, len, &head), HTTP_BAD_REQUEST);
	ck_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
	ck_assert_str_eq(http_reason(200), "OK");
}
END_TEST

static Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_whole, 0, NCASES);
	tcase_add_loop_test(tc, test_bytewise, 0, NCASES);
	tcase_add_test(tc, test_too_large);
	tcase_add_test(tc, test_many_headers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(http_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
