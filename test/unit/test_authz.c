/* Unit tests for authz: stream header and stanza address checks, and the
 * pairset that holds a stream's pairs. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "domain.h"
#include "pairset.h"
#include "route.h"

static struct route_table *routes(void)
{
	struct route_table *rt = route_table_new();

	ck_assert_ptr_nonnull(rt);
	ck_assert_int_eq(route_add(rt, "a.example", 0, 1, NULL), 0);
	ck_assert_int_eq(route_add(rt, "*.b.example", 1, 2, NULL), 0);
	return rt;
}

static const struct {
	const char *to, *version, *cond, *local;
} header_cases[] = {
    {"a.example", "1.0", NULL, "a.example"},
    {"A.Example.", "1.0", NULL, "a.example"},	     /* case and trailing dot */
    {"b.example", "1.0", NULL, "b.example"},	     /* *.b.example covers b.example */
    {"x.y.b.example", "1.0", NULL, "x.y.b.example"}, /* and its subdomains */
    {"a.example", "1.1", NULL, "a.example"},
    {"c.example", "1.0", "host-unknown", NULL},	 /* no route, no default */
    {"xa.example", "1.0", "host-unknown", NULL}, /* not a suffix match */
    {NULL, "1.0", "host-unknown", NULL},	 /* no 'to' */
    {"", "1.0", "host-unknown", NULL},
    {"a..example", "1.0", "host-unknown", NULL},
    {"a.example", NULL, "unsupported-version", NULL}, /* pre-1.0 stream */
    {"a.example", "0.9", "unsupported-version", NULL},
    {"a.example", "2.0", "unsupported-version", NULL},
};

START_TEST(test_header)
{
	struct route_table *rt = routes();
	char local[DOMAIN_MAX + 1];
	const char *cond = authz_header(rt, header_cases[_i].to, header_cases[_i].version, local);

	if (header_cases[_i].cond == NULL) {
		ck_assert_msg(cond == NULL, "case %d: unexpected %s", _i, cond);
		ck_assert_str_eq(local, header_cases[_i].local);
	} else {
		ck_assert_msg(cond != NULL, "case %d: accepted", _i);
		ck_assert_str_eq(cond, header_cases[_i].cond);
	}
	route_table_free(rt);
}
END_TEST

static const struct {
	const char *from, *to, *cond, *from_dom, *to_dom;
} stanza_cases[] = {
    {"alice@a.example/r", "bob@b.example", NULL, "a.example", "b.example"},
    {"a.example", "b.example", NULL, "a.example", "b.example"},
    {"alice@A.EXAMPLE./r", "bob@B.example.", NULL, "a.example", "b.example"},
    {"alice@a.example/r@x/y", "bob@b.example/res/with@", NULL, "a.example", "b.example"},
    {"alice@a.example", "bob@sub.b.example", "host-unknown", NULL, NULL}, /* pair not verified */
    {"mallory@evil.example", "bob@b.example", "invalid-from", NULL, NULL},
    {"mallory@a.example.evil", "bob@b.example", "invalid-from", NULL, NULL},
    {"b.example", "a.example", "invalid-from", NULL, NULL}, /* reversed pair */
    {NULL, "bob@b.example", "improper-addressing", NULL, NULL},
    {"alice@a.example", NULL, "improper-addressing", NULL, NULL},
    {"alice@", "bob@b.example", "improper-addressing", NULL, NULL},
    {"alice@a.example", "bob@b..example", "improper-addressing", NULL, NULL},
};

START_TEST(test_stanza)
{
	struct authz *a = authz_new(8);
	char f[DOMAIN_MAX + 1], t[DOMAIN_MAX + 1];
	const char *cond;

	ck_assert_int_eq(authz_add(a, "a.example", "b.example"), 0);
	cond = authz_stanza(a, stanza_cases[_i].from, stanza_cases[_i].to, f, t);
	if (stanza_cases[_i].cond == NULL) {
		ck_assert_msg(cond == NULL, "case %d: unexpected %s", _i, cond);
		ck_assert_str_eq(f, stanza_cases[_i].from_dom);
		ck_assert_str_eq(t, stanza_cases[_i].to_dom);
	} else {
		ck_assert_msg(cond != NULL, "case %d: accepted", _i);
		ck_assert_str_eq(cond, stanza_cases[_i].cond);
	}
	authz_free(a);
}
END_TEST

START_TEST(test_bound)
{
	struct authz *a = authz_new(2);

	ck_assert_int_eq(authz_add(a, "a", "b"), 0);
	ck_assert_int_eq(authz_add(a, "a", "b"), 0); /* again: no new entry */
	ck_assert_int_eq(authz_count(a), 1);
	ck_assert_int_eq(authz_add(a, "a", "c"), 0);
	ck_assert_int_eq(authz_add(a, "a", "d"), -ENOSPC);
	ck_assert_int_eq(authz_count(a), 2);
	ck_assert(authz_has(a, "a", "c"));
	ck_assert(!authz_has(a, "a", "d"));
	ck_assert(authz_has(a, "a", NULL));
	ck_assert(!authz_has(a, "b", NULL));
	authz_free(a);
	authz_free(NULL);
}
END_TEST

/* A thousand pairs (a trunk link's bound) against a plain array: every
 * member found with its value across the growths, nothing else found,
 * keys that concatenate alike kept apart. */
START_TEST(test_pairset_many)
{
	enum { N = 1000 };
	struct pairset *ps = pairset_new(N);
	char from[N][32], to[N][32];

	ck_assert_ptr_nonnull(ps);
	ck_assert_ptr_null(pairset_find(ps, "a", "b")); /* empty */
	ck_assert(!pairset_has_from(ps, "a"));
	for (int i = 0; i < N; i++) {
		/* 40 senders, each toward several targets */
		snprintf(from[i], sizeof(from[i]), "d%d.example", i % 40);
		snprintf(to[i], sizeof(to[i]), "t%d.example", i);
		ck_assert_int_eq(pairset_add(ps, from[i], to[i], i), 0);
		ck_assert_int_eq(pairset_count(ps), (size_t)i + 1);
	}
	ck_assert_int_eq(pairset_add(ps, "x", "y", 0), -ENOSPC);
	ck_assert_int_eq(pairset_add(ps, from[7], to[7], -1), 0); /* present: kept */
	for (int i = 0; i < N; i++) {
		int *v = pairset_find(ps, from[i], to[i]);

		ck_assert_ptr_nonnull(v);
		ck_assert_int_eq(*v, i);
		*v = -i; /* the value is the caller's to change */
		ck_assert_ptr_null(pairset_find(ps, to[i], from[i])); /* order matters */
		ck_assert(pairset_has_from(ps, from[i]));
		ck_assert(!pairset_has_from(ps, to[i]));
	}
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(*pairset_find(ps, from[i], to[i]), -i);
	ck_assert(!pairset_has_from(ps, "d40.example"));
	pairset_free(ps);

	ps = pairset_new(4);
	ck_assert_int_eq(pairset_add(ps, "a", "bc", 1), 0);
	ck_assert_ptr_null(pairset_find(ps, "ab", "c"));
	ck_assert_ptr_null(pairset_find(ps, "a", "b"));
	ck_assert(!pairset_has_from(ps, "ab"));
	ck_assert_int_eq(pairset_add(ps, "ab", "c", 2), 0);
	ck_assert_int_eq(*pairset_find(ps, "a", "bc"), 1);
	ck_assert_int_eq(*pairset_find(ps, "ab", "c"), 2);
	ck_assert_uint_ne(pairset_hash("a", "bc"), pairset_hash("ab", "c"));
	pairset_free(ps);
	pairset_free(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("authz");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_header, 0, sizeof(header_cases) / sizeof(header_cases[0]));
	tcase_add_loop_test(tc, test_stanza, 0, sizeof(stanza_cases) / sizeof(stanza_cases[0]));
	tcase_add_test(tc, test_bound);
	tcase_add_test(tc, test_pairset_many);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
