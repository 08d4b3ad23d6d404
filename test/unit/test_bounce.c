/* test_bounce: which stanzas may be bounced, and the exact error built. */
#include "bounce.h"

#include <check.h>
#include <errno.h>
#include <string.h>

#define NS "urn:ietf:params:xml:ns:xmpp-stanzas"

struct allowed_case {
	struct bounce_in in;
	int allowed;
};

static const struct allowed_case allowed_cases[] = {
    {{"message", "b@b.example", "a@a.example", NULL, NULL}, 1},
    {{"message", "b@b.example", "a@a.example", "chat", "m1"}, 1},
    {{"message", "b@b.example", "a@a.example", "error", "m1"}, 0},
    {{"presence", "b.example", "a.example", NULL, NULL}, 1},
    {{"presence", "b.example", "a.example", "subscribe", "p1"}, 1},
    {{"presence", "b.example", "a.example", "error", NULL}, 0},
    {{"iq", "b.example", "a.example", "get", "q1"}, 1},
    {{"iq", "b.example", "a.example", "set", "q1"}, 1},
    {{"iq", "b.example", "a.example", "result", "q1"}, 0},
    {{"iq", "b.example", "a.example", "error", "q1"}, 0},
    {{"iq", "b.example", "a.example", NULL, "q1"}, 0},	/* malformed iq */
    {{"iq", "b.example", "a.example", "GET", "q1"}, 0}, /* ditto */
    {{"db:result", "b.example", "a.example", NULL, NULL}, 0},
    {{"starttls", "b.example", "a.example", NULL, NULL}, 0},
    {{"Message", "b.example", "a.example", NULL, NULL}, 0},
    {{"message", NULL, "a.example", NULL, NULL}, 0},
    {{"message", "b.example", NULL, NULL, NULL}, 0},
    {{"message", "", "a.example", NULL, NULL}, 0},
    {{"message", "b.example", "", NULL, NULL}, 0},
    {{NULL, "b.example", "a.example", NULL, NULL}, 0},
};

START_TEST(test_allowed_table)
{
	const struct allowed_case *c = &allowed_cases[_i];
	char out[1024];
	int rc;

	ck_assert_int_eq(bounce_allowed(&c->in), c->allowed);
	rc = bounce_build(&c->in, "service-unavailable", "cancel", NULL, out, sizeof(out));
	if (c->allowed)
		ck_assert_int_gt(rc, 0);
	else
		ck_assert_int_eq(rc, -EPERM);
}
END_TEST

struct build_case {
	struct bounce_in in;
	const char *condition, *errtype, *text;
	const char *want;
};

static const struct build_case build_cases[] = {
    {{"message", "juliet@capulet.example/balcony", "romeo@montague.example/orchard", "chat", "m1"},
     "remote-server-not-found",
     "cancel",
     NULL,
     "<message xmlns='jabber:server' from='juliet@capulet.example/balcony' "
     "to='romeo@montague.example/orchard' type='error' id='m1'><error type='cancel'>"
     "<remote-server-not-found xmlns='" NS "'/></error></message>"},
    {{"presence", "capulet.example", "montague.example", NULL, NULL},
     "remote-server-timeout",
     "wait",
     "no answer",
     "<presence xmlns='jabber:server' from='capulet.example' to='montague.example' "
     "type='error'><error type='wait'><remote-server-timeout xmlns='" NS "'/>"
     "<text xmlns='" NS "'>no answer</text></error></presence>"},
    {{"iq", "b.example", "a@a.example/r", "get", "q<1>&'\""},
     "policy-violation",
     "auth",
     "<b>&'\"",
     "<iq xmlns='jabber:server' from='b.example' to='a@a.example/r' type='error' "
     "id='q&lt;1&gt;&amp;&apos;&quot;'><error type='auth'><policy-violation xmlns='" NS
     "'/><text xmlns='" NS "'>&lt;b&gt;&amp;&apos;&quot;</text></error></iq>"},
    {{"iq", "b.example", "a.example/r'x", "set", ""},
     "resource-constraint",
     "wait",
     "",
     "<iq xmlns='jabber:server' from='b.example' to='a.example/r&apos;x' type='error' "
     "id=''><error type='wait'><resource-constraint xmlns='" NS "'/><text xmlns='" NS
     "'></text></error></iq>"},
    {{"message", "b.example", "a.example", NULL, "tab\there\nnl\rcr"},
     "bad-request",
     "modify",
     NULL,
     "<message xmlns='jabber:server' from='b.example' to='a.example' type='error' "
     "id='tab&#9;here&#10;nl&#13;cr'><error type='modify'><bad-request xmlns='" NS
     "'/></error></message>"},
    {{"message", "b.example", "a.example", "normal", "ü"},
     "service-unavailable",
     "cancel",
     "ünïcode",
     "<message xmlns='jabber:server' from='b.example' to='a.example' type='error' "
     "id='ü'><error type='cancel'><service-unavailable xmlns='" NS "'/><text xmlns='" NS
     "'>ünïcode</text></error></message>"},
};

#define NBUILD ((int)(sizeof(build_cases) / sizeof(build_cases[0])))

START_TEST(test_build_table)
{
	const struct build_case *c = &build_cases[_i];
	char out[1024];
	int rc = bounce_build(&c->in, c->condition, c->errtype, c->text, out, sizeof(out));

	ck_assert_int_eq(rc, (int)strlen(c->want));
	ck_assert_str_eq(out, c->want);
}
END_TEST

/* Every buffer size below the one needed fails cleanly; the exact one works. */
START_TEST(test_build_space)
{
	const struct build_case *c = &build_cases[_i];
	size_t need = strlen(c->want) + 1;
	char out[1024];

	for (size_t sz = 0; sz < need; sz++) {
		memset(out, 'x', sizeof(out));
		ck_assert_int_eq(bounce_build(&c->in, c->condition, c->errtype, c->text, out, sz),
				 -ENOSPC);
		if (sz > 0)
			ck_assert_int_eq(out[0], '\0');
		/* Nothing written past the buffer given. */
		for (size_t i = sz; i < sizeof(out); i++)
			ck_assert_int_eq(out[i], 'x');
	}
	ck_assert_int_eq(bounce_build(&c->in, c->condition, c->errtype, c->text, out, need),
			 (int)need - 1);
	ck_assert_str_eq(out, c->want);
}
END_TEST

START_TEST(test_build_bad_args)
{
	const struct bounce_in in = {"message", "b.example", "a.example", NULL, "m1"};
	const struct bounce_in ctl = {"message", "b.example", "a.example", NULL, "m\x01"};
	char out[512];

	ck_assert_int_eq(bounce_build(NULL, "bad-request", "modify", NULL, out, sizeof(out)),
			 -EINVAL);
	ck_assert_int_eq(bounce_allowed(NULL), 0);
	ck_assert_int_eq(bounce_build(&in, NULL, "modify", NULL, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(bounce_build(&in, "", "modify", NULL, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(bounce_build(&in, "x'/><y", "modify", NULL, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(bounce_build(&in, "bad-request", NULL, NULL, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(bounce_build(&in, "bad-request", "fatal", NULL, out, sizeof(out)),
			 -EINVAL);
	ck_assert_int_eq(bounce_build(&in, "bad-request", "modify", NULL, NULL, 10), -EINVAL);
	/* A control character cannot be written in XML 1.0. */
	ck_assert_int_eq(bounce_build(&ctl, "bad-request", "modify", NULL, out, sizeof(out)),
			 -EINVAL);
	ck_assert_int_eq(bounce_build(&in, "bad-request", "modify", "a\x1b", out, sizeof(out)),
			 -EINVAL);
	ck_assert_int_eq(out[0], '\0');
	/* -EPERM comes before argument checks on the condition. */
	{
		const struct bounce_in err = {"message", "b.example", "a.example", "error", "m1"};

		ck_assert_int_eq(bounce_build(&err, "bad-request", "modify", NULL, out, 0), -EPERM);
	}
}
END_TEST

static Suite *bounce_suite(void)
{
	Suite *s = suite_create("bounce");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_allowed_table, 0,
			    (int)(sizeof(allowed_cases) / sizeof(allowed_cases[0])));
	tcase_add_loop_test(tc, test_build_table, 0, NBUILD);
	tcase_add_loop_test(tc, test_build_space, 0, NBUILD);
	tcase_add_test(tc, test_build_bad_args);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(bounce_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
