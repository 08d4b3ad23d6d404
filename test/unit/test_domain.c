/* test_domain: domain_normalise and jid_domain, table-driven. */
#include "domain.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct norm_case {
	const char *in;
	const char *want; /* NULL when an error is expected */
	int err;	  /* expected negative errno, 0 for success */
};

static const struct norm_case norm_cases[] = {
    {"example.com", "example.com", 0},
    {"EXAMPLE.Com", "example.com", 0},
    {"a.example.", "a.example", 0},
    {"a.example..", NULL, -EINVAL},
    {".a.example", NULL, -EINVAL},
    {"a..example", NULL, -EINVAL},
    {".", NULL, -EINVAL},
    {"..", NULL, -EINVAL},
    {"", NULL, -EINVAL},
    {"localhost", "localhost", 0},
    {"192.0.2.1", "192.0.2.1", 0},
    {"xn--bcher-kva.example", "xn--bcher-kva.example", 0},
    {"a-b.example", "a-b.example", 0},
    {"BÜcher.example", "xn--bcher-kva.example", 0},
    {"bücher.EXAMPLE.", "xn--bcher-kva.example", 0},
    {"例え。jp", "xn--r8jz45g.jp", 0},	/* U+3002 as a separator */
    {"例え.jp。", "xn--r8jz45g.jp", 0}, /* ... and as a trailing one */
    {"a_b.example", NULL, -EINVAL},
    {"a b.example", NULL, -EINVAL},
    {"a*.example", NULL, -EINVAL},
    {"*.example", NULL, -EINVAL},
    {"user@example", NULL, -EINVAL},
    {"[::1]", NULL, -EINVAL},		 /* IP literals are not supported */
    {"\xff\xfe.example", NULL, -EINVAL}, /* not UTF-8 */
    {"-ü.example", NULL, -EINVAL},	 /* IDNA refuses a leading hyphen */
    /* look-alikes stay distinct; invisible characters are refused, not
     * deleted (UTS #46 would map them to nothing) */
    {"\xd0\xb0.example", "xn--80a.example", 0},	 /* Cyrillic a */
    {"a.ex\xd0\xb0mple", "a.xn--exmple-4nf", 0}, /* Cyrillic a inside */
    {"\xef\xbd\x81.example", "a.example", 0},	 /* fullwidth a: width mapping */
    {"a\xe2\x80\x8b.example", NULL, -EINVAL},	 /* U+200B zero width space */
    {"a\xc2\xad.example", NULL, -EINVAL},	 /* U+00AD soft hyphen */
    {"a\xe2\x80\x8d.example", NULL, -EINVAL},	 /* U+200D zero width joiner */
    {"a\xe2\x80\xae.example", NULL, -EINVAL},	 /* U+202E right-to-left override */
    {"\xef\xbb\xbf"
     "a.example",
     NULL, -EINVAL},				     /* U+FEFF */
    {"a\xef\xb8\x8f.example", NULL, -EINVAL},	     /* U+FE0F variation selector */
    {"a\xf3\xa0\x80\x81.example", NULL, -EINVAL},    /* U+E0001 language tag */
    {"\xc3\xa4\xcd\x8f.example", NULL, -EINVAL},     /* U+034F combining grapheme joiner */
    {"\xc3\xa4\xed\xa0\x80.example", NULL, -EINVAL}, /* a surrogate */
    {"\xc3\xa4\xe0\x80\xae.example", NULL, -EINVAL}, /* overlong '.' */
};

START_TEST(test_normalise_table)
{
	const struct norm_case *c = &norm_cases[_i];
	char out[DOMAIN_MAX + 1];
	int rc;

	memset(out, 'x', sizeof(out));
	rc = domain_normalise(c->in, strlen(c->in), out, sizeof(out));
	if (c->want) {
		ck_assert_msg(rc == (int)strlen(c->want), "%s: rc=%d", c->in, rc);
		ck_assert_str_eq(out, c->want);
	} else {
		ck_assert_msg(rc == c->err, "%s: rc=%d want %d", c->in, rc, c->err);
	}
}
END_TEST

START_TEST(test_normalise_idempotent)
{
	const struct norm_case *c = &norm_cases[_i];
	char once[DOMAIN_MAX + 1], twice[DOMAIN_MAX + 1];
	int n;

	if (!c->want)
		return;
	n = domain_normalise(c->in, strlen(c->in), once, sizeof(once));
	ck_assert_int_ge(n, 0);
	ck_assert_int_eq(domain_normalise(once, (size_t)n, twice, sizeof(twice)), n);
	ck_assert_str_eq(once, twice);
}
END_TEST

/* A name of total length n made of labels of at most lab octets. */
static char *make_name(size_t n, size_t lab)
{
	char *s = malloc(n + 1);
	size_t run = 0;

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++) {
		if (run == lab && i + 1 < n) {
			s[i] = '.';
			run = 0;
		} else {
			s[i] = 'a';
			run++;
		}
	}
	s[n] = '\0';
	return s;
}

START_TEST(test_label_length)
{
	char *l63 = make_name(63, 63), *l64 = make_name(64, 64);
	char buf[200], out[DOMAIN_MAX + 1];

	snprintf(buf, sizeof(buf), "%s.example", l63);
	ck_assert_int_eq(domain_normalise(buf, strlen(buf), out, sizeof(out)), 63 + 8);
	snprintf(buf, sizeof(buf), "%s.example", l64);
	ck_assert_int_eq(domain_normalise(buf, strlen(buf), out, sizeof(out)), -EINVAL);
	snprintf(buf, sizeof(buf), "example.%s", l64);
	ck_assert_int_eq(domain_normalise(buf, strlen(buf), out, sizeof(out)), -EINVAL);
	/* A non-ASCII label is measured after IDNA: "ü" + 50 'a' fits,
	 * "ü" + 60 'a' is 61 characters but its A-label is longer than 63. */
	snprintf(buf, sizeof(buf), "\xc3\xbc%.50s.example", l63);
	ck_assert_int_gt(domain_normalise(buf, strlen(buf), out, sizeof(out)), 0);
	ck_assert_int_le(strchr(out, '.') - out, 63);
	snprintf(buf, sizeof(buf), "\xc3\xbc%.60s.example", l63);
	ck_assert_int_eq(domain_normalise(buf, strlen(buf), out, sizeof(out)), -EINVAL);
	free(l63);
	free(l64);
}
END_TEST

START_TEST(test_total_length)
{
	char *max = make_name(DOMAIN_MAX, 63), *over = make_name(DOMAIN_MAX + 1, 50);
	char *dotted = make_name(DOMAIN_MAX + 1, 63);
	char out[DOMAIN_MAX + 1], small[10];

	ck_assert_int_eq(domain_normalise(max, DOMAIN_MAX, out, sizeof(out)), DOMAIN_MAX);
	ck_assert_str_eq(out, max);
	ck_assert_int_eq(domain_normalise(over, DOMAIN_MAX + 1, out, sizeof(out)), -ENAMETOOLONG);
	/* DOMAIN_MAX octets plus the trailing dot that gets stripped. */
	memcpy(dotted, max, DOMAIN_MAX);
	dotted[DOMAIN_MAX] = '.';
	ck_assert_int_eq(domain_normalise(dotted, DOMAIN_MAX + 1, out, sizeof(out)), DOMAIN_MAX);
	/* Bounded by the output buffer too. */
	ck_assert_int_eq(domain_normalise("abcdefghi", 9, small, sizeof(small)), 9);
	ck_assert_int_eq(domain_normalise("abcdefghij", 10, small, sizeof(small)), -ENAMETOOLONG);
	ck_assert_int_eq(domain_normalise("a", 1, small, 0), -ENAMETOOLONG);
	ck_assert_int_eq(domain_normalise("a", 1, NULL, 0), -ENAMETOOLONG);
	/* A name far beyond any possible domain is refused before IDNA. */
	{
		size_t n = 64 * 1024;
		char *huge = malloc(n);

		ck_assert_ptr_nonnull(huge);
		for (size_t i = 0; i < n; i += 2) {
			huge[i] = (char)0xc3; /* "ü" repeated */
			huge[i + 1] = (char)0xbc;
		}
		ck_assert_int_eq(domain_normalise(huge, n, out, sizeof(out)), -ENAMETOOLONG);
		free(huge);
	}
	free(max);
	free(over);
	free(dotted);
}
END_TEST

START_TEST(test_nul_and_len)
{
	char out[64];

	ck_assert_int_eq(domain_normalise("a\0b.example", 11, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(domain_normalise("example.com\0", 12, out, sizeof(out)), -EINVAL);
	/* Only len octets are read: no terminator needed. */
	ck_assert_int_eq(domain_normalise("example.comXYZ", 11, out, sizeof(out)), 11);
	ck_assert_str_eq(out, "example.com");
	ck_assert_int_eq(domain_normalise(NULL, 3, out, sizeof(out)), -EINVAL);
}
END_TEST

struct jid_case {
	const char *jid;
	const char *want; /* NULL: expect -EINVAL */
};

static const struct jid_case jid_cases[] = {
    {"example.com", "example.com"},
    {"user@Example.COM", "example.com"},
    {"user@example.com/res", "example.com"},
    {"example.com/res", "example.com"},
    {"user@example.com/a@b/c", "example.com"},
    {"example.com/user@other.example", "example.com"},
    {"example.com/@", "example.com"},
    {"a@b@example.com/r", "example.com"}, /* last '@' before the '/' */
    {"user@example.com./r", "example.com"},
    {"user@BÜcher.example/r", "xn--bcher-kva.example"},
    {"@example.com", NULL},	 /* empty localpart */
    {"user@example.com/", NULL}, /* empty resourcepart */
    {"user@", NULL},
    {"user@/res", NULL},
    {"/res", NULL},
    {"", NULL},
    {"user@exa mple.com", NULL},
};

START_TEST(test_jid_table)
{
	const struct jid_case *c = &jid_cases[_i];
	char out[DOMAIN_MAX + 1];
	int rc = jid_domain(c->jid, out, sizeof(out));

	if (c->want) {
		ck_assert_msg(rc == (int)strlen(c->want), "%s: rc=%d", c->jid, rc);
		ck_assert_str_eq(out, c->want);
	} else {
		ck_assert_msg(rc == -EINVAL, "%s: rc=%d", c->jid, rc);
	}
}
END_TEST

START_TEST(test_jid_null)
{
	char out[16];

	ck_assert_int_eq(jid_domain(NULL, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(jid_domain("u@example.com/r", out, 5), -ENAMETOOLONG);
}
END_TEST

static Suite *domain_suite(void)
{
	Suite *s = suite_create("domain");
	TCase *tc = tcase_create("core");
	int nn = (int)(sizeof(norm_cases) / sizeof(norm_cases[0]));
	int nj = (int)(sizeof(jid_cases) / sizeof(jid_cases[0]));

	tcase_add_loop_test(tc, test_normalise_table, 0, nn);
	tcase_add_loop_test(tc, test_normalise_idempotent, 0, nn);
	tcase_add_test(tc, test_label_length);
	tcase_add_test(tc, test_total_length);
	tcase_add_test(tc, test_nul_and_len);
	tcase_add_loop_test(tc, test_jid_table, 0, nj);
	tcase_add_test(tc, test_jid_null);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(domain_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
