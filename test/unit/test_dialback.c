/* test_dialback: XEP-0185 key vectors and the key check. */
#include "dialback.h"

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>

struct vector {
	const char *secret, *receiving, *originating, *id, *key;
};

/* XEP-0185 / XEP-0220 examples. */
static const struct vector vectors[] = {
    {"s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F",
     "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"},
    {"s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F",
     "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"},
    {"d14lb4ck43v3r", "capulet.example", "montague.example", "417GAF25",
     "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"},
};

#define NVECTORS ((int)(sizeof(vectors) / sizeof(vectors[0])))

START_TEST(test_key_vectors)
{
	const struct vector *v = &vectors[_i];
	char out[DB_KEY_LEN + 1];

	memset(out, 'x', sizeof(out));
	ck_assert_int_eq(db_key(v->secret, v->receiving, v->originating, v->id, out), 0);
	ck_assert_str_eq(out, v->key);
	ck_assert_int_eq(strlen(out), DB_KEY_LEN);
}
END_TEST

START_TEST(test_check_accepts)
{
	const struct vector *v = &vectors[_i];

	ck_assert_int_eq(db_key_check(v->secret, v->receiving, v->originating, v->id, v->key), 1);
}
END_TEST

START_TEST(test_check_rejects)
{
	const struct vector *v = &vectors[_i];
	char k[2 * DB_KEY_LEN + 2];

	/* Each input matters: secret, both domains (and their order), id. */
	ck_assert_int_eq(db_key_check("other", v->receiving, v->originating, v->id, v->key), 0);
	ck_assert_int_eq(db_key_check(v->secret, v->originating, v->receiving, v->id, v->key), 0);
	ck_assert_int_eq(db_key_check(v->secret, v->receiving, "x.example", v->id, v->key), 0);
	ck_assert_int_eq(db_key_check(v->secret, v->receiving, v->originating, "other", v->key), 0);
	/* One hex digit changed, first and last. */
	strcpy(k, v->key);
	k[0] = k[0] == '0' ? '1' : '0';
	ck_assert_int_eq(db_key_check(v->secret, v->receiving, v->originating, v->id, k), 0);
	strcpy(k, v->key);
	k[DB_KEY_LEN - 1] = k[DB_KEY_LEN - 1] == '0' ? '1' : '0';
	ck_assert_int_eq(db_key_check(v->secret, v->receiving, v->originating, v->id, k), 0);
	/* Upper case: keys are lower-case hex and pass through servers
	 * unchanged, so a key in another case is not one we made. */
	for (size_t i = 0; i < DB_KEY_LEN; i++)
		k[i] = (char)toupper((unsigned char)v->key[i]);
	k[DB_KEY_LEN] = '\0';
	ck_assert_int_eq(db_key_check(v->secret, v->receiving, v->originating, v->id, k), 0);
	/* Wrong lengths: a prefix, one character short, one too many, empty,
	 * the key twice. */
	strcpy(k, v->key);
	k[DB_KEY_LEN / 2] = '\0';
	ck_assert_int_eq(db_key_check(v->secret, v->receiving, v->originating, v->id, k), 0);
	strcpy(k, v->key);
	k[DB_KEY_LEN - 1] = '\0';
	ck_assert_int_eq(db_key_check(v->secret, v->receiving, v->originating, v->id, k), 0);
	strcpy(k, v->key);
	strcat(k, "0");
	ck_assert_int_eq(db_key_check(v->secret, v->receiving, v->originating, v->id, k), 0);
	ck_assert_int_eq(db_key_check(v->secret, v->receiving, v->originating, v->id, ""), 0);
	strcpy(k, v->key);
	strcat(k, v->key);
	ck_assert_int_eq(db_key_check(v->secret, v->receiving, v->originating, v->id, k), 0);
	ck_assert_int_eq(db_key_check(v->secret, v->receiving, v->originating, v->id, NULL), 0);
}
END_TEST

START_TEST(test_bad_args)
{
	char out[DB_KEY_LEN + 1];
	const char *k = vectors[0].key;

	ck_assert_int_eq(db_key(NULL, "a", "b", "c", out), -EINVAL);
	ck_assert_int_eq(db_key("s", NULL, "b", "c", out), -EINVAL);
	ck_assert_int_eq(db_key("s", "a", NULL, "c", out), -EINVAL);
	ck_assert_int_eq(db_key("s", "a", "b", NULL, out), -EINVAL);
	ck_assert_int_eq(db_key("s", "a", "b", "c", NULL), -EINVAL);
	ck_assert_int_eq(db_key_check(NULL, "a", "b", "c", k), 0);
	/* Empty strings are still inputs to the MAC, not errors. */
	ck_assert_int_eq(db_key("", "", "", "", out), 0);
	ck_assert_int_eq(strlen(out), DB_KEY_LEN);
	ck_assert_int_eq(db_key_check("", "", "", "", out), 1);
}
END_TEST

static Suite *dialback_suite(void)
{
	Suite *s = suite_create("dialback");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_key_vectors, 0, NVECTORS);
	tcase_add_loop_test(tc, test_check_accepts, 0, NVECTORS);
	tcase_add_loop_test(tc, test_check_rejects, 0, NVECTORS);
	tcase_add_test(tc, test_bad_args);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dialback_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
