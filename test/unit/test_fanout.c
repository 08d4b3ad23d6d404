/* Check suite for relay/fanout.c: the supervisor's sum of its workers'
 * Prometheus texts (also against stats_render's own output), the joined
 * control answers and the restart budget. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"
#include "stats.h"

static void has(const char *text, const char *line)
{
	ck_assert_msg(strstr(text, line) != NULL, "missing \"%s\" in:\n%s", line, text);
}

START_TEST(test_sum_simple)
{
	const char *a = "# HELP x_total X.\n# TYPE x_total counter\n"
			"x_total{route=\"a\",peer=\"p\"} 2\nx_total{route=\"b\",peer=\"p\"} 1\n"
			"# HELP g Gauge.\n# TYPE g gauge\ng{d=\"in\"} 3\n";
	const char *b = "# HELP x_total X.\n# TYPE x_total counter\n"
			"x_total{route=\"c\",peer=\"p\"} 7\nx_total{route=\"a\",peer=\"p\"} 5\n"
			"# HELP g Gauge.\n# TYPE g gauge\ng{d=\"in\"} 4\ng{d=\"out\"} 1\n";
	const char *texts[] = {a, b};
	char *out;
	size_t len;

	ck_assert_int_eq(fanout_sum_metrics(texts, 2, &out, &len), 0);
	ck_assert_uint_eq(strlen(out), len);
	/* one HELP/TYPE per family, the series summed, families kept together */
	ck_assert_str_eq(out, "# HELP x_total X.\n# TYPE x_total counter\n"
			      "x_total{route=\"a\",peer=\"p\"} 7\n"
			      "x_total{route=\"b\",peer=\"p\"} 1\n"
			      "x_total{route=\"c\",peer=\"p\"} 7\n"
			      "# HELP g Gauge.\n# TYPE g gauge\ng{d=\"in\"} 7\ng{d=\"out\"} 1\n");
	free(out);
}
END_TEST

/* A label value with a space or a brace does not confuse the split. */
START_TEST(test_sum_odd_labels)
{
	const char *a = "# TYPE y counter\ny{r=\"a b} c\"} 1\ny 2\n";
	const char *texts[] = {a, a, a};
	char *out;
	size_t len;

	ck_assert_int_eq(fanout_sum_metrics(texts, 3, &out, &len), 0);
	ck_assert_str_eq(out, "# TYPE y counter\ny{r=\"a b} c\"} 3\ny 6\n");
	free(out);
}
END_TEST

static const char *const bad_texts[] = {
    "x_total\n",		 /* no value */
    "x_total{a=\"b\"} twelve\n", /* not a number */
    "x_total nan\n",		 /* NaN sums to nonsense */
    " 3\n",			 /* no name */
};

START_TEST(test_sum_rejects)
{
	const char *texts[] = {bad_texts[_i]};
	char *out = NULL;
	size_t len;

	ck_assert_int_eq(fanout_sum_metrics(texts, 1, &out, &len), -EINVAL);
	ck_assert_ptr_null(out);
}
END_TEST

/* Two workers' real renderings: every counter and the histogram double. */
START_TEST(test_sum_stats_render)
{
	char *one, *sum;
	size_t len;
	const char *texts[2];

	stats_free();
	stats_count(STATS_STANZAS_SENT, "*.b.example", "leaf-b");
	stats_count(STATS_STANZAS_SENT, "*.b.example", "leaf-b");
	stats_count(STATS_BOUNCES, "remote-server-timeout", NULL);
	stats_latency(300);
	stats_latency(7000);
	ck_assert_int_eq(stats_render(&one, &len), 0);
	texts[0] = texts[1] = one;
	ck_assert_int_eq(fanout_sum_metrics(texts, 2, &sum, &len), 0);
	has(sum, "xtrunk_stanzas_sent_total{route=\"*.b.example\",peer=\"leaf-b\"} 4\n");
	has(sum, "xtrunk_bounces_total{condition=\"remote-server-timeout\"} 2\n");
	has(sum, "xtrunk_forward_latency_seconds_count 4\n");
	has(sum, "xtrunk_forward_latency_seconds_bucket{le=\"+Inf\"} 4\n");
	has(sum, "xtrunk_forward_latency_seconds_bucket{le=\"0.0005\"} 2\n");
	/* the same shape: as many lines as one worker's text */
	{
		size_t l1 = 0, l2 = 0;
		const char *p;

		for (p = one; *p; p++)
			l1 += *p == '\n';
		for (p = sum; *p; p++)
			l2 += *p == '\n';
		ck_assert_uint_eq(l1, l2);
	}
	free(one);
	free(sum);
	stats_free();
}
END_TEST

START_TEST(test_join)
{
	const char *answers[] = {"ok\nxtrunkd pid=10 uptime-s=1\nstream=1 dir=in\n", NULL,
				 "error: unknown level \"x\"\n"};
	char *out;
	unsigned failed;

	ck_assert_int_eq(fanout_join("ok\nhead\n", answers, 3, &out, &failed), 0);
	ck_assert_uint_eq(failed, 2);
	ck_assert_str_eq(out, "ok\nhead\nworker=1 xtrunkd pid=10 uptime-s=1\n"
			      "worker=1 stream=1 dir=in\nworker=2 error=\"no answer\"\n"
			      "worker=3 error=\"unknown level \"x\"\"\n");
	free(out);
	ck_assert_int_eq(fanout_join("", answers, 1, &out, &failed), 0);
	ck_assert_uint_eq(failed, 0);
	free(out);
}
END_TEST

START_TEST(test_restart_budget)
{
	uint64_t t[FANOUT_RESTARTS] = {0};
	int i;

	for (i = 0; i < FANOUT_RESTARTS; i++)
		ck_assert_int_eq(fanout_may_restart(t, 1000 + (uint64_t)i * 1000), 1);
	/* a sixth within the minute of the first: refused */
	ck_assert_int_eq(fanout_may_restart(t, 1000 + FANOUT_WINDOW_MS - 1), 0);
	/* once the first is a minute old, allowed again */
	ck_assert_int_eq(fanout_may_restart(t, 1000 + FANOUT_WINDOW_MS), 1);
	ck_assert_int_eq(fanout_may_restart(t, 1000 + FANOUT_WINDOW_MS + 1), 0);
	/* a worker that dies once an hour restarts for ever */
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(fanout_may_restart(t, 10000000 + (uint64_t)i * 3600000), 1);
}
END_TEST

static Suite *fanout_suite(void)
{
	Suite *s = suite_create("fanout");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_sum_simple);
	tcase_add_test(tc, test_sum_odd_labels);
	tcase_add_loop_test(tc, test_sum_rejects, 0,
			    (int)(sizeof(bad_texts) / sizeof(bad_texts[0])));
	tcase_add_test(tc, test_sum_stats_render);
	tcase_add_test(tc, test_join);
	tcase_add_test(tc, test_restart_budget);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fanout_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
