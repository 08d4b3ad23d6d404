/* Check suite for relay/stats.c (counters, gauges, histogram, Prometheus
 * text) and relay/control.c's command interpreter (control_command). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "stats.h"

static char *render(void)
{
	char *t = NULL;
	size_t len = 0;

	ck_assert_int_eq(stats_render(&t, &len), 0);
	ck_assert_uint_eq(strlen(t), len);
	return t;
}

static void has(const char *text, const char *line)
{
	ck_assert_msg(strstr(text, line) != NULL, "missing \"%s\" in:\n%s", line, text);
}

START_TEST(test_counters)
{
	char *t;

	stats_free();
	ck_assert_uint_eq(stats_get(STATS_STANZAS_SENT, "a.example", "leaf-a"), 0);
	stats_count(STATS_STANZAS_SENT, "a.example", "leaf-a");
	stats_count(STATS_STANZAS_SENT, "a.example", "leaf-a");
	stats_count(STATS_STANZAS_SENT, "*.b.example", "leaf-b");
	stats_count(STATS_BOUNCES, "remote-server-timeout", NULL);
	ck_assert_uint_eq(stats_get(STATS_STANZAS_SENT, "a.example", "leaf-a"), 2);
	ck_assert_uint_eq(stats_get(STATS_STANZAS_SENT, "a.example", "leaf-b"), 0);
	ck_assert_uint_eq(stats_get(STATS_BOUNCES, "remote-server-timeout", NULL), 1);
	t = render();
	has(t, "# TYPE xtrunk_stanzas_sent_total counter\n");
	has(t, "\nxtrunk_stanzas_sent_total{route=\"a.example\",peer=\"leaf-a\"} 2\n");
	has(t, "\nxtrunk_stanzas_sent_total{route=\"*.b.example\",peer=\"leaf-b\"} 1\n");
	has(t, "\nxtrunk_bounces_total{condition=\"remote-server-timeout\"} 1\n");
	has(t, "# HELP xtrunk_policy_rejections_total ");
	free(t);
	stats_free();
	ck_assert_uint_eq(stats_get(STATS_STANZAS_SENT, "a.example", "leaf-a"), 0);
}
END_TEST

static void sum(void *ctx, const char *l1, const char *l2, uint64_t v)
{
	uint64_t *n = ctx;

	(void)l1;
	(void)l2;
	n[0] += v;
	n[1]++;
}

/* Label sets beyond STATS_MAX_SERIES fold into "_other"; nothing is lost. */
START_TEST(test_series_bound)
{
	uint64_t n[2] = {0, 0};
	char name[32];
	int i;

	stats_free();
	for (i = 0; i < STATS_MAX_SERIES + 100; i++) {
		snprintf(name, sizeof(name), "d%d.example", i);
		stats_count(STATS_STANZAS_RECEIVED, name, "p");
	}
	stats_foreach(STATS_STANZAS_RECEIVED, sum, n);
	ck_assert_uint_eq(n[0], STATS_MAX_SERIES + 100);
	ck_assert_uint_eq(n[1], STATS_MAX_SERIES + 1);
	ck_assert_uint_eq(stats_get(STATS_STANZAS_RECEIVED, "_other", "_other"), 100);
	ck_assert_uint_eq(stats_get(STATS_STANZAS_RECEIVED, "d7.example", "p"), 1);
	stats_free();
}
END_TEST

START_TEST(test_escaping_and_gauges)
{
	char *t;

	stats_free();
	stats_count(STATS_AUTH_FAILURES, "a\"b\\c\nd", NULL);
	stats_gauge_add(STATS_CONNECTIONS, "in", "established", 1);
	stats_gauge_add(STATS_CONNECTIONS, "in", "established", 1);
	stats_gauge_add(STATS_QUEUE_STANZAS, "leaf-a", NULL, 3);
	t = render();
	has(t, "xtrunk_auth_failures_total{reason=\"a\\\"b\\\\c\\nd\"} 1\n");
	has(t, "# TYPE xtrunk_connections gauge\n");
	has(t, "xtrunk_connections{direction=\"in\",state=\"established\"} 2\n");
	has(t, "xtrunk_queue_stanzas{peer=\"leaf-a\"} 3\n");
	free(t);
	stats_gauge_reset();
	t = render();
	ck_assert_ptr_null(strstr(t, "xtrunk_connections{"));
	ck_assert_ptr_nonnull(strstr(t, "auth_failures_total{"));
	free(t);
	stats_free();
}
END_TEST

START_TEST(test_histogram)
{
	char *t;

	stats_free();
	stats_latency(50);	 /* <= 0.0001 */
	stats_latency(100);	 /* <= 0.0001 (le is inclusive) */
	stats_latency(3000);	 /* <= 0.005 */
	stats_latency(60000000); /* beyond the last bucket: +Inf only */
	t = render();
	has(t, "# TYPE xtrunk_forward_latency_seconds histogram\n");
	has(t, "xtrunk_forward_latency_seconds_bucket{le=\"0.0001\"} 2\n");
	has(t, "xtrunk_forward_latency_seconds_bucket{le=\"0.0025\"} 2\n");
	has(t, "xtrunk_forward_latency_seconds_bucket{le=\"0.005\"} 3\n");
	has(t, "xtrunk_forward_latency_seconds_bucket{le=\"10\"} 3\n");
	has(t, "xtrunk_forward_latency_seconds_bucket{le=\"+Inf\"} 4\n");
	has(t, "xtrunk_forward_latency_seconds_count 4\n");
	has(t, "xtrunk_forward_latency_seconds_sum 60.003150\n");
	free(t);
	stats_free();
}
END_TEST

struct cmd_case {
	const char *line, *prefix, *contains;
};

static const struct cmd_case cmd_cases[] = {
    {"ping", "ok\n", NULL},
    {"status", "ok\nxtrunkd pid=", " streams-in=0 streams-out=0\n"},
    {"log debug", "ok\n", "log-level=debug"},
    {"log info", "ok\n", "log-level=info"},
    {"log loud", "error: ", "unknown level"},
    {"trace stanza on", "ok\n", "trace=stanza"},
    {"trace all off", "ok\n", "trace=none"},
    {"trace xml on", "error: ", "unknown trace category"},
    {"trace stanza maybe", "error: ", "unknown command"},
    {"reload", "error: ", "not available"},
    {"metrics", "ok\n# HELP xtrunk_", "xtrunk_forward_latency_seconds_count 0"},
    {"", "error: ", "empty"},
    {"status now please", "error: ", "unknown command"},
    {"shutdown", "error: ", "unknown command"},
};

START_TEST(test_control_commands)
{
	const struct cmd_case *c = &cmd_cases[_i];
	char *out = NULL;

	stats_free();
	ck_assert_int_eq(control_command(c->line, &out), 0);
	ck_assert_msg(strncmp(out, c->prefix, strlen(c->prefix)) == 0, "\"%s\" answered: %s",
		      c->line, out);
	if (c->contains != NULL)
		ck_assert_msg(strstr(out, c->contains) != NULL, "\"%s\" answered: %s", c->line,
			      out);
	free(out);
	log_set_level("info");
	log_set_trace("all", 0);
}
END_TEST

static Suite *stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_counters);
	tcase_add_test(tc, test_series_bound);
	tcase_add_test(tc, test_escaping_and_gauges);
	tcase_add_test(tc, test_histogram);
	tcase_add_loop_test(tc, test_control_commands, 0,
			    (int)(sizeof(cmd_cases) / sizeof(cmd_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(stats_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
