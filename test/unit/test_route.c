/* test_route: the route table: precedence, patterns, duplicates, scale. */
#include "route.h"

#include "domain.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Peers are numbered by the line of the route that names them. */
static const char *const table_patterns[] = {
    "a.b.example", /* line 1 */
    "*.b.example", /* line 2 */
    "*.example",   /* line 3 */
    "*.us",	   /* line 4 */
    "*",	   /* line 5 */
    "b.example",   /* line 6: exact, beside the wildcard *.b.example */
};

struct lookup_case {
	const char *domain;
	int line; /* of the route expected, 0 for none */
};

static const struct lookup_case lookup_cases[] = {
    {"a.b.example", 1},	  /* exact beats every wildcard */
    {"x.a.b.example", 2}, /* the exact a.b.example does not cover subdomains */
    {"c.b.example", 2},	  /* longest wildcard wins over *.example */
    {"b.example", 6},	  /* exact beats *.b.example, which also matches */
    {"example", 3},	  /* "*.example" matches "example" itself */
    {"z.example", 3},
    {"us", 4},
    {"a.b.c.d.us", 4},
    {"xus", 5}, /* a suffix must start a label */
    {"us.example.org", 5},
    {"org", 5},
    {"", 5},
};

static struct route_table *load(int with_default)
{
	struct route_table *rt = route_table_new();

	ck_assert_ptr_nonnull(rt);
	for (size_t i = 0; i < sizeof(table_patterns) / sizeof(table_patterns[0]); i++) {
		if (!with_default && strcmp(table_patterns[i], "*") == 0)
			continue;
		ck_assert_int_eq(route_add(rt, table_patterns[i], (int)i + 1, (int)i + 1, NULL), 0);
	}
	return rt;
}

START_TEST(test_lookup_table)
{
	const struct lookup_case *c = &lookup_cases[_i];
	struct route_table *rt = load(1);
	const struct route *r = route_lookup(rt, c->domain);

	ck_assert_ptr_nonnull(r);
	ck_assert_msg(r->line == c->line, "%s: got line %d (%s), want %d", c->domain, r->line,
		      r->pattern, c->line);
	ck_assert_int_eq(r->peer, c->line);
	route_table_free(rt);
}
END_TEST

START_TEST(test_no_default)
{
	struct route_table *rt = load(0);

	ck_assert_ptr_null(route_lookup(rt, "org"));
	ck_assert_ptr_null(route_lookup(rt, "xus"));
	ck_assert_ptr_nonnull(route_lookup(rt, "us"));
	ck_assert_int_eq(route_count(rt), 5);
	route_table_free(rt);

	rt = route_table_new();
	ck_assert_ptr_null(route_lookup(rt, "example.com"));
	ck_assert_int_eq(route_count(rt), 0);
	ck_assert_ptr_null(route_lookup(NULL, "example.com"));
	ck_assert_ptr_null(route_lookup(rt, NULL));
	route_table_free(rt);
	route_table_free(NULL);
}
END_TEST

START_TEST(test_pattern_normalised)
{
	struct route_table *rt = route_table_new();
	const struct route *r;
	int prev = 0;

	ck_assert_int_eq(route_add(rt, "A.Example.", 1, 10, NULL), 0);
	ck_assert_int_eq(route_add(rt, "*.US.", 2, 11, NULL), 0);
	ck_assert_int_eq(route_add(rt, "*.BÜcher.example", 3, 12, NULL), 0);
	r = route_lookup(rt, "a.example");
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->pattern, "a.example");
	r = route_lookup(rt, "x.us");
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->pattern, "*.us");
	r = route_lookup(rt, "shop.xn--bcher-kva.example");
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->pattern, "*.xn--bcher-kva.example");
	ck_assert_int_eq(r->peer, 3);
	/* The same routes written differently are duplicates. */
	ck_assert_int_eq(route_add(rt, "a.example", 4, 20, &prev), -EEXIST);
	ck_assert_int_eq(prev, 10);
	ck_assert_int_eq(route_add(rt, "*.us", 4, 21, &prev), -EEXIST);
	ck_assert_int_eq(prev, 11);
	ck_assert_int_eq(route_add(rt, "*.xn--bcher-kva.EXAMPLE", 4, 22, &prev), -EEXIST);
	ck_assert_int_eq(prev, 12);
	ck_assert_int_eq(route_count(rt), 3);
	route_table_free(rt);
}
END_TEST

START_TEST(test_duplicates)
{
	struct route_table *rt = route_table_new();
	int prev = 0;

	ck_assert_int_eq(route_add(rt, "*", 1, 7, NULL), 0);
	ck_assert_int_eq(route_add(rt, "*", 2, 9, &prev), -EEXIST);
	ck_assert_int_eq(prev, 7);
	ck_assert_int_eq(route_add(rt, "*", 2, 9, NULL), -EEXIST);
	/* Exact and wildcard for the same name are different routes. */
	ck_assert_int_eq(route_add(rt, "us", 3, 12, NULL), 0);
	ck_assert_int_eq(route_add(rt, "*.us", 4, 13, NULL), 0);
	ck_assert_int_eq(route_add(rt, "US.", 5, 14, &prev), -EEXIST);
	ck_assert_int_eq(prev, 12);
	ck_assert_int_eq(route_lookup(rt, "us")->line, 12);
	ck_assert_int_eq(route_lookup(rt, "a.us")->line, 13);
	ck_assert_int_eq(route_lookup(rt, "a.example")->line, 7);
	ck_assert_int_eq(route_count(rt), 3);
	route_table_free(rt);
}
END_TEST

static const char *const bad_patterns[] = {
    "",
    "a.*.b",
    "**",
    "*.",
    "*.*",
    "*a.example",
    "a.example*",
    "*example",
    ".example",
    "a..example",
    "*..example",
    "*.example..",
    "a_b.example",
    "a example",
    ".",
    "*.*.example",
};

START_TEST(test_bad_patterns)
{
	struct route_table *rt = route_table_new();
	const char *p = bad_patterns[_i];

	ck_assert_msg(route_add(rt, p, 1, 1, NULL) == -EINVAL, "pattern '%s' accepted", p);
	ck_assert_int_eq(route_count(rt), 0);
	route_table_free(rt);
}
END_TEST

START_TEST(test_bad_args)
{
	struct route_table *rt = route_table_new();
	char longname[DOMAIN_MAX + 10];

	ck_assert_int_eq(route_add(NULL, "a.example", 1, 1, NULL), -EINVAL);
	ck_assert_int_eq(route_add(rt, NULL, 1, 1, NULL), -EINVAL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	for (size_t i = 50; i < sizeof(longname) - 1; i += 51)
		longname[i] = '.';
	ck_assert_int_eq(route_add(rt, longname, 1, 1, NULL), -EINVAL);
	ck_assert_int_eq(route_count(NULL), 0);
	route_table_free(rt);
}
END_TEST

/* Many routes: every one is found and unrouted names fall to the default. */
START_TEST(test_many)
{
	enum { N = 100000 };
	struct route_table *rt = route_table_new();
	const struct route *r;
	char name[64];

	for (int i = 0; i < N; i++) {
		if (i % 2)
			snprintf(name, sizeof(name), "host%d.Example%d.org", i, i % 97);
		else
			snprintf(name, sizeof(name), "*.zone%d.example", i);
		ck_assert_int_eq(route_add(rt, name, i, i + 1, NULL), 0);
	}
	ck_assert_int_eq(route_add(rt, "*", -1, N + 1, NULL), 0);
	ck_assert_int_eq(route_count(rt), N + 1);
	for (int i = 0; i < N; i++) {
		if (i % 2)
			snprintf(name, sizeof(name), "host%d.example%d.org", i, i % 97);
		else
			snprintf(name, sizeof(name), "deep.sub.zone%d.example", i);
		r = route_lookup(rt, name);
		ck_assert_ptr_nonnull(r);
		ck_assert_int_eq(r->peer, i);
	}
	r = route_lookup(rt, "unrouted.example.net");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->peer, -1);
	r = route_lookup(rt, "zone1.example"); /* odd numbers are not zones */
	ck_assert_int_eq(r->peer, -1);
	r = route_lookup(rt, "host2.example2.org");
	ck_assert_int_eq(r->peer, -1);
	route_table_free(rt);
}
END_TEST

/* A domain with the most labels a domain can have: one probe per label. */
START_TEST(test_many_labels)
{
	struct route_table *rt = route_table_new();
	char dom[DOMAIN_MAX + 1];

	for (size_t i = 0; i < DOMAIN_MAX; i++)
		dom[i] = (i % 2) ? '.' : 'a';
	dom[DOMAIN_MAX] = '\0';
	ck_assert_ptr_null(route_lookup(rt, dom));
	ck_assert_int_eq(route_add(rt, "*.a", 1, 1, NULL), 0);
	ck_assert_int_eq(route_lookup(rt, dom)->peer, 1);
	ck_assert_int_eq(route_add(rt, "*.a.a.a", 2, 2, NULL), 0);
	ck_assert_int_eq(route_lookup(rt, dom)->peer, 2);
	ck_assert_int_eq(route_add(rt, dom, 3, 3, NULL), 0);
	ck_assert_int_eq(route_lookup(rt, dom)->peer, 3);
	route_table_free(rt);
}
END_TEST

/* route_next visits every route once, the default last; an empty table
 * and NULL give nothing. */
START_TEST(test_iterate)
{
	size_t n = sizeof(table_patterns) / sizeof(table_patterns[0]), pos = 0, seen = 0;
	int mask = 0;
	const struct route *r, *last = NULL;

	for (int with_default = 0; with_default <= 1; with_default++) {
		struct route_table *rt = load(with_default);

		pos = seen = 0;
		mask = 0;
		while ((r = route_next(rt, &pos)) != NULL) {
			ck_assert_int_ge(r->line, 1);
			ck_assert_int_le(r->line, (int)n);
			ck_assert_int_eq(mask & (1 << r->line), 0);
			mask |= 1 << r->line;
			last = r;
			seen++;
		}
		ck_assert_uint_eq(seen, with_default ? n : n - 1);
		ck_assert_uint_eq(seen, route_count(rt));
		if (with_default)
			ck_assert_str_eq(last->pattern, "*");
		/* exhausted stays exhausted */
		ck_assert_ptr_null(route_next(rt, &pos));
		route_table_free(rt);
	}
	pos = 0;
	ck_assert_ptr_null(route_next(NULL, &pos));
	{
		struct route_table *rt = route_table_new();

		ck_assert_ptr_null(route_next(rt, &pos));
		ck_assert_ptr_null(route_next(rt, NULL));
		route_table_free(rt);
	}
}
END_TEST

static Suite *route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("core");
	TCase *big = tcase_create("scale");

	tcase_add_loop_test(tc, test_lookup_table, 0,
			    (int)(sizeof(lookup_cases) / sizeof(lookup_cases[0])));
	tcase_add_test(tc, test_no_default);
	tcase_add_test(tc, test_pattern_normalised);
	tcase_add_test(tc, test_duplicates);
	tcase_add_loop_test(tc, test_bad_patterns, 0,
			    (int)(sizeof(bad_patterns) / sizeof(bad_patterns[0])));
	tcase_add_test(tc, test_bad_args);
	tcase_add_test(tc, test_many_labels);
	tcase_add_test(tc, test_iterate);
	tcase_set_timeout(big, 120); /* valgrind */
	tcase_add_test(big, test_many);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, big);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(route_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
