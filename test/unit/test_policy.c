/* test_policy: the policy engine end to end from a config file: rule
 * evaluation (first match, named decisions, every condition), labels
 * against clearances with rewriting, rate limits on fake time, config
 * errors with FILE:LINE, and the audit line format read back with json-c. */
#include "audit.h"
#include "config.h"
#include "label.h"
#include "policy.h"
#include "xmlstream.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#define BASE                                                                                       \
	"listen = ( { address = \"127.0.0.1\"; port = 5269; } );\n"                                \
	"dialback_secret = \"0123456789abcdef\";\n"                                                \
	"tls = { inbound = \"none\"; };\n"

/* uk SECRET = 1.3.6.1.4.1.99999.1 class 4; nato SECRET = .2 class 4 */
#define LABELS                                                                                     \
	"security_labels = {\n"                                                                    \
	"  policies = (\n"                                                                         \
	"    { name = \"uk\"; oid = \"1.3.6.1.4.1.99999.1\";\n"                                    \
	"      classifications = ( { name = \"OFFICIAL\"; value = 1; },\n"                         \
	"        { name = \"SECRET\"; value = 4; marking = \"UK SECRET\"; bgcolor = \"red\"; },\n" \
	"        { name = \"TOP-SECRET\"; value = 5; } );\n"                                       \
	"      categories = ( { name = \"EYES\"; type = \"1.3.6.1.4.1.99999.9\"; } ); },\n"        \
	"    { name = \"nato\"; oid = \"1.3.6.1.4.1.99999.2\";\n"                                  \
	"      classifications = ( { name = \"UNCLASSIFIED\"; value = 1; },\n"                     \
	"        { name = \"RESTRICTED\"; value = 2; },\n"                                         \
	"        { name = \"SECRET\"; value = 4; marking = \"NATO SECRET\"; fgcolor = "            \
	"\"white\";\n"                                                                             \
	"          bgcolor = \"blue\"; } ); }\n"                                                   \
	"  );\n"                                                                                   \
	"  equivalences = ( { a = \"uk:SECRET\"; b = \"nato:SECRET\"; },\n"                        \
	"                   { a = \"uk:OFFICIAL\"; b = \"nato:UNCLASSIFIED\"; } );\n"              \
	"};\n"

static const char conf_main[] = BASE LABELS
    "policies = (\n"
    "  { name = \"in\"; default = \"allow\"; rules = (\n"
    "      { name = \"no-iq-set\"; kinds = [ \"iq\" ]; types = [ \"set\" ]; action = \"reject\";\n"
    "        error = \"modify\"; },\n"
    "      { name = \"big\"; larger_than = 2000; action = \"reject\"; },\n"
    "      { name = \"no-oob\"; namespaces = [ \"jabber:x:oob\" ]; action = \"reject\"; },\n"
    "      { name = \"evil\"; from = [ \"*.evil.example\" ]; action = \"reject\"; } ); },\n"
    "  { name = \"boundary\"; rules = (\n"
    "      { name = \"dialback-no\"; auth = \"dialback\"; action = \"reject\"; },\n"
    "      { name = \"plain-no\"; tls = false; action = \"reject\"; },\n"
    "      { name = \"flood\"; action = \"rate_limit\"; rate = 2; burst = 3; per = \"domain\"; },\n"
    "      { name = \"chat\"; kinds = [ \"message\" ]; types = [ \"chat\", \"normal\", \"none\" "
    "];\n"
    "        action = \"allow\"; },\n"
    "      { name = \"ping\"; kinds = [ \"iq\" ]; namespaces = [ \"urn:xmpp:ping\" ];\n"
    "        action = \"allow\"; } ); },\n"
    "  { name = \"out-b\"; default = \"allow\"; rules = (\n"
    "      { name = \"unlabelled-no\"; label = \"absent\"; kinds = [ \"message\" ];\n"
    "        to = [ \"strict.b.example\" ]; action = \"reject\"; } ); }\n"
    ");\n"
    "peers = (\n"
    "  { name = \"leaf-a\"; host = \"127.0.0.1\"; policy_in = \"in\"; },\n"
    "  { name = \"leaf-b\"; host = \"127.0.0.2\"; policy_out = \"out-b\";\n"
    "    clearance = \"nato:SECRET\"; },\n"
    "  { name = \"leaf-c\"; host = \"127.0.0.3\"; clearance = \"uk:SECRET+EYES\";\n"
    "    default_label = \"uk:OFFICIAL\"; }\n"
    ");\n"
    "routes = (\n"
    "  { domain = \"a.example\"; peer = \"leaf-a\"; },\n"
    "  { domain = \"*.evil.example\"; peer = \"leaf-a\"; },\n"
    "  { domain = \"*.b.example\"; peer = \"leaf-b\"; policy = \"boundary\"; },\n"
    "  { domain = \"c.example\"; peer = \"leaf-c\"; default_label = \"uk:TOP-SECRET\"; }\n"
    ");\n"
    "audit = { file = \"/tmp/xt-audit-unit.log\"; };\n";

static char conf_path[64];

static struct config *load(const char *text, char *err, size_t errlen)
{
	struct config *c = NULL;
	FILE *fp;
	int fd;

	strcpy(conf_path, "/tmp/xt-policy-XXXXXX");
	fd = mkstemp(conf_path);
	ck_assert_int_ge(fd, 0);
	fp = fdopen(fd, "w");
	fputs(text, fp);
	fclose(fp);
	if (config_load(conf_path, &c, err, errlen) < 0)
		c = NULL;
	unlink(conf_path);
	return c;
}

/* ---- stanzas through the framer ----------------------------------------- */

#define HDR                                                                                        \
	"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "    \
	"xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version='1.0'>"

/* uk SECRET, uk SECRET+EYES, uk TOP-SECRET, nato SECRET, uk OFFICIAL */
static char ess_uk_secret[128], ess_uk_secret_eyes[128], ess_uk_ts[128], ess_nato_secret[128],
    ess_uk_official[128];

static struct {
	const struct policy_set *ps;
	struct policy_state *state;
	struct policy_input in;
	uint64_t now;
	struct policy_decision d;
	int rc;
	char bytes[8192];
	size_t len;
} ev;

static void on_stanza(void *ctx, const struct xs_stanza *st)
{
	ev.in.st = st;
	ev.rc = policy_eval(ev.ps, ev.state, &ev.in, ev.now, &ev.d);
	ck_assert_uint_lt(st->len, sizeof(ev.bytes));
	memcpy(ev.bytes, st->bytes, st->len);
	ev.len = st->len;
}

static void eval(const char *stanza)
{
	static const struct xs_callbacks cb = {NULL, on_stanza, NULL, NULL};
	struct xs *xs = xs_new(&cb, NULL, NULL);

	free(ev.d.bytes);
	memset(&ev.d, 0, sizeof(ev.d));
	ev.rc = -1000;
	ck_assert_int_eq(xs_feed(xs, HDR, strlen(HDR)), 0);
	ck_assert_int_eq(xs_feed(xs, stanza, strlen(stanza)), 0);
	ck_assert_int_eq(ev.rc, 0);
	xs_free(xs);
}

static void make_ess(const struct label_catalogue *cat, const char *name, char *out)
{
	struct label_ref r;
	struct ess_label e;

	ck_assert_int_eq(label_ref_parse(cat, name, &r), 0);
	label_to_ess(cat, &r, &e);
	ck_assert_int_eq(ess_to_base64(&e, out, 128), 0);
}

#define LBL(b64)                                                                                   \
	"<securitylabel xmlns='urn:xmpp:sec-label:0'><label><esssecuritylabel "                    \
	"xmlns='urn:xmpp:sec-label:ess:0'>",                                                       \
	    b64, "</esssecuritylabel></label></securitylabel>"

/* One case: a stanza (parts joined: text and label base64 from above),
 * where it comes from and goes, and the decision. */
struct eval_case {
	const char *name;
	const char *parts[8];
	int in_peer, out_peer;
	const char *route, *from_dom, *to_dom;
	int tls;
	unsigned auth;
	int reject;
	const char *rule, *condition, *errtype;
};

#define MSG_AB "<message from='x@a.example' to='y@b.example' type='chat' id='m1'><body>s</body>"
#define CERT POL_AUTH_CERTIFICATE

static const struct eval_case eval_cases[] = {
    /* no policy anywhere: passes, named "none" */
    {"no policy",
     {"<message from='x@b.example' to='y@a.example'/>"},
     -1,
     0,
     "a.example",
     "b.example",
     "a.example",
     1,
     CERT,
     0,
     "none",
     NULL,
     NULL},
    /* the inbound peer's policy first: first match wins */
    {"iq set refused (modify)",
     {"<iq type='set' id='q' from='a.example' to='b.example'><query "
      "xmlns='jabber:iq:version'/></iq>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     1,
     "no-iq-set",
     "policy-violation",
     "modify"},
    {"oob namespace refused",
     {"<message from='x@a.example' to='y@b.example'><x xmlns='jabber:x:oob'/></message>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     1,
     "no-oob",
     "policy-violation",
     "cancel"},
    {"sender pattern: subdomain",
     {"<message from='m@h.evil.example' to='y@b.example'/>"},
     0,
     1,
     "*.b.example",
     "h.evil.example",
     "x.b.example",
     1,
     CERT,
     1,
     "evil",
     NULL,
     NULL},
    {"sender pattern: the domain itself",
     {"<message from='m@evil.example' to='y@b.example'/>"},
     0,
     1,
     "*.b.example",
     "evil.example",
     "x.b.example",
     1,
     CERT,
     1,
     "evil",
     NULL,
     NULL},
    {"sender pattern: not a suffix",
     {"<message from='m@notevil.example' to='y@b.example' type='chat'/>"},
     0,
     1,
     "*.b.example",
     "notevil.example",
     "x.b.example",
     1,
     CERT,
     0,
     "chat",
     NULL,
     NULL},
    /* then the route's policy */
    {"chat allowed",
     {MSG_AB "</message>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     0,
     "chat",
     NULL,
     NULL},
    {"message without type allowed ('none')",
     {"<message from='x@a.example' to='y@b.example'/>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     0,
     "chat",
     NULL,
     NULL},
    {"headline refused by default",
     {"<message from='x@a.example' to='y@b.example' type='headline'/>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     1,
     "default",
     "policy-violation",
     "cancel"},
    {"presence refused by default",
     {"<presence from='x@a.example' to='y@b.example'/>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     1,
     "default",
     NULL,
     NULL},
    {"ping allowed",
     {"<iq type='get' id='p' from='a.example' to='b.example'><ping xmlns='urn:xmpp:ping'/></iq>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     0,
     "ping",
     NULL,
     NULL},
    {"dialback refused",
     {MSG_AB "</message>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     POL_AUTH_DIALBACK,
     1,
     "dialback-no",
     NULL,
     NULL},
    {"no TLS refused",
     {MSG_AB "</message>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     0,
     CERT,
     1,
     "plain-no",
     NULL,
     NULL},
    {"too large",
     {MSG_AB "<x xmlns='urn:pad'>",
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "...."
      "............................................................................................"
      "....",
      "</x></message>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     1,
     "big",
     NULL,
     NULL},
    /* labels against leaf-b's clearance nato:SECRET */
    {"nato SECRET within",
     {MSG_AB, LBL(ess_nato_secret), "</message>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     0,
     "chat",
     NULL,
     NULL},
    {"uk SECRET rewritten to nato",
     {MSG_AB, LBL(ess_uk_secret), "</message>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     0,
     "chat",
     NULL,
     NULL},
    {"uk TOP-SECRET: no equivalent",
     {MSG_AB, LBL(ess_uk_ts), "</message>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     1,
     "clearance",
     "policy-violation",
     "cancel"},
    {"malformed label",
     {MSG_AB, LBL("MQkGBCsGAQICAQI="), "</message>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "x.b.example",
     1,
     CERT,
     1,
     "clearance",
     "policy-violation",
     "modify"},
    {"unlabelled refused by the outbound policy",
     {"<message from='x@a.example' to='y@strict.b.example' type='chat'/>"},
     0,
     1,
     "*.b.example",
     "a.example",
     "strict.b.example",
     1,
     CERT,
     1,
     "unlabelled-no",
     NULL,
     NULL},
    /* leaf-c: clearance uk:SECRET+EYES, route default uk:TOP-SECRET */
    {"uk SECRET+EYES within",
     {MSG_AB, LBL(ess_uk_secret_eyes), "</message>"},
     0,
     2,
     "c.example",
     "a.example",
     "c.example",
     1,
     CERT,
     0,
     "default",
     NULL,
     NULL},
    {"unlabelled: route default TOP-SECRET over",
     {"<message from='x@a.example' to='y@c.example'/>"},
     0,
     2,
     "c.example",
     "a.example",
     "c.example",
     1,
     CERT,
     1,
     "clearance",
     NULL,
     NULL},
    /* leaf-c sending: its own clearance uk:SECRET+EYES bounds what it may send */
    {"from leaf-c: uk SECRET within its clearance",
     {"<message from='x@c.example' to='y@a.example'>", LBL(ess_uk_secret), "</message>"},
     2,
     0,
     "a.example",
     "c.example",
     "a.example",
     1,
     CERT,
     0,
     "none",
     NULL,
     NULL},
    {"from leaf-c: uk TOP-SECRET above its clearance",
     {"<message from='x@c.example' to='y@a.example'>", LBL(ess_uk_ts), "</message>"},
     2,
     0,
     "a.example",
     "c.example",
     "a.example",
     1,
     CERT,
     1,
     "clearance-in",
     "policy-violation",
     "cancel"},
    {"from leaf-c: a label not understood",
     {"<message from='x@c.example' to='y@a.example'>", LBL("MQkGBCsGAQICAQI="), "</message>"},
     2,
     0,
     "a.example",
     "c.example",
     "a.example",
     1,
     CERT,
     1,
     "clearance-in",
     "policy-violation",
     "modify"},
    {"label on presence",
     {"<presence from='x@a.example' to='y@c.example'>", LBL(ess_uk_official), "</presence>"},
     0,
     2,
     "c.example",
     "a.example",
     "c.example",
     1,
     CERT,
     1,
     "label-on-presence",
     "policy-violation",
     "modify"},
};

static struct config *main_cfg;

static void setup(void)
{
	char err[512];

	main_cfg = load(conf_main, err, sizeof(err));
	ck_assert_msg(main_cfg != NULL, "%s", err);
	make_ess(main_cfg->policies->labels, "uk:SECRET", ess_uk_secret);
	make_ess(main_cfg->policies->labels, "uk:SECRET+EYES", ess_uk_secret_eyes);
	make_ess(main_cfg->policies->labels, "uk:TOP-SECRET", ess_uk_ts);
	make_ess(main_cfg->policies->labels, "nato:SECRET", ess_nato_secret);
	make_ess(main_cfg->policies->labels, "uk:OFFICIAL", ess_uk_official);
	memset(&ev, 0, sizeof(ev));
	ev.ps = main_cfg->policies;
	ev.state = policy_state_new();
}

static void teardown(void)
{
	free(ev.d.bytes);
	ev.d.bytes = NULL;
	policy_state_free(ev.state);
	config_unref(main_cfg);
}

static void run(const struct eval_case *c)
{
	char stanza[8192] = "";

	for (int i = 0; i < 8 && c->parts[i]; i++)
		strcat(stanza, c->parts[i]);
	ev.in.in_peer = c->in_peer;
	ev.in.out_peer = c->out_peer;
	ev.in.route = c->route;
	ev.in.from_dom = c->from_dom;
	ev.in.to_dom = c->to_dom;
	ev.in.tls = c->tls;
	ev.in.auth = c->auth;
	eval(stanza);
}

START_TEST(test_eval_table)
{
	const struct eval_case *c = &eval_cases[_i];

	run(c);
	ck_assert_msg(ev.d.reject == c->reject, "%s: reject=%d rule=%s reason=%s", c->name,
		      ev.d.reject, ev.d.rule, ev.d.reason);
	ck_assert_msg(strcmp(ev.d.rule, c->rule) == 0, "%s: rule %s, want %s", c->name, ev.d.rule,
		      c->rule);
	if (c->condition)
		ck_assert_str_eq(ev.d.condition, c->condition);
	if (c->errtype)
		ck_assert_str_eq(ev.d.errtype, c->errtype);
	if (!c->reject && strstr(c->name, "rewritten") == NULL)
		ck_assert_ptr_null(ev.d.bytes);
}
END_TEST

static struct seclabel found;
static int found_rc;

static void on_found(void *ctx, const struct xs_stanza *st)
{
	found_rc = seclabel_find(st, &found);
	ck_assert_str_eq(xs_attr_get(st->attrs, st->nattrs, "id"), "m1");
	ck_assert_uint_eq(st->nchildren, 7); /* body + the new label's six */
}

START_TEST(test_rewrite)
{
	static const struct xs_callbacks cb = {NULL, on_found, NULL, NULL};
	const struct label_catalogue *cat = main_cfg->policies->labels;
	struct label_ref r;
	struct xs *xs;

	run(&eval_cases[15]);
	ck_assert_str_eq(eval_cases[15].name, "uk SECRET rewritten to nato");
	ck_assert_int_eq(ev.d.reject, 0);
	ck_assert_ptr_nonnull(ev.d.bytes);
	ck_assert_str_eq(ev.d.label, "uk:SECRET->nato:SECRET");
	/* everything outside the label is the bytes received */
	ck_assert(memcmp(ev.d.bytes, MSG_AB, strlen(MSG_AB)) == 0);
	ck_assert(memcmp(ev.d.bytes + ev.d.len - 10, "</message>", 10) == 0);
	ck_assert_ptr_nonnull(memmem(ev.d.bytes, ev.d.len, "NATO SECRET</displaymarking>", 28));
	ck_assert_ptr_nonnull(memmem(ev.d.bytes, ev.d.len, "fgcolor='white' bgcolor='blue'", 30));
	/* the next hop reads a nato SECRET label, the uk one as equivalent */
	xs = xs_new(&cb, NULL, NULL);
	ck_assert_int_eq(xs_feed(xs, HDR, strlen(HDR)), 0);
	ck_assert_int_eq(xs_feed(xs, ev.d.bytes, ev.d.len), 0);
	xs_free(xs);
	ck_assert_int_eq(found_rc, 1);
	ck_assert_int_eq(label_resolve(cat, &found.label, &r), 0);
	ck_assert_str_eq(cat->policies[r.policy].name, "nato");
	ck_assert_str_eq(cat->policies[r.policy].classes[r.rank].name, "SECRET");
	ck_assert_uint_eq(found.nequiv, 1);
	ck_assert_int_eq(label_resolve(cat, &found.equiv[0], &r), 0);
	ck_assert_str_eq(cat->policies[r.policy].name, "uk");
	ck_assert_str_eq(found.label_b64, ess_nato_secret);
}
END_TEST

START_TEST(test_equivalentlabel_used)
{
	/* a TOP-SECRET uk label with a nato SECRET equivalent given by the
	 * sender: the equivalent in the clearance's policy decides */
	char stanza[4096];

	snprintf(stanza, sizeof(stanza),
		 MSG_AB "<securitylabel xmlns='urn:xmpp:sec-label:0'><label><esssecuritylabel "
			"xmlns='urn:xmpp:sec-label:ess:0'>%s</esssecuritylabel></label>"
			"<equivalentlabel><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>%s"
			"</esssecuritylabel></equivalentlabel></securitylabel></message>",
		 ess_uk_ts, ess_nato_secret);
	ev.in =
	    (struct policy_input){NULL, "a.example", "x.b.example", "*.b.example", 0, 1, 1, CERT};
	eval(stanza);
	ck_assert_int_eq(ev.d.reject, 0);
	ck_assert_ptr_nonnull(ev.d.bytes); /* relabelled nato for the next hop */
}
END_TEST

START_TEST(test_rate_limit)
{
	/* rate 2/s, burst 3, per sending domain: fake time */
	ev.in =
	    (struct policy_input){NULL, "a.example", "x.b.example", "*.b.example", 0, 1, 1, CERT};
	ev.now = 1000000;
	for (int i = 0; i < 3; i++) {
		eval(MSG_AB "</message>");
		ck_assert_int_eq(ev.d.reject, 0);
	}
	eval(MSG_AB "</message>");
	ck_assert_int_eq(ev.d.reject, 1);
	ck_assert_str_eq(ev.d.rule, "flood");
	ck_assert_str_eq(ev.d.condition, "resource-constraint");
	ck_assert_str_eq(ev.d.errtype, "wait");
	/* another sending domain has its own bucket */
	ev.in.from_dom = "a2.example";
	eval("<message from='x@a2.example' to='y@b.example'/>");
	ck_assert_int_eq(ev.d.reject, 0);
	ev.in.from_dom = "a.example";
	/* 499 ms: still under one token; 500 ms: one more */
	ev.now += 499;
	eval(MSG_AB "</message>");
	ck_assert_int_eq(ev.d.reject, 1);
	ev.now += 1;
	eval(MSG_AB "</message>");
	ck_assert_int_eq(ev.d.reject, 0);
	eval(MSG_AB "</message>");
	ck_assert_int_eq(ev.d.reject, 1);
	/* after a long pause, the burst again, never more */
	ev.now += 3600000;
	for (int i = 0; i < 3; i++) {
		eval(MSG_AB "</message>");
		ck_assert_int_eq(ev.d.reject, 0);
	}
	eval(MSG_AB "</message>");
	ck_assert_int_eq(ev.d.reject, 1);
}
END_TEST

START_TEST(test_rate_many_domains)
{
	/* more sending domains than buckets: the limit is never forgotten for
	 * a domain still in its window (refused rather than reset) */
	char s[256], d[64];
	int refused = 0;

	ev.in = (struct policy_input){NULL, NULL, "x.b.example", "*.b.example", 0, 1, 1, CERT};
	ev.now = 5000;
	for (int i = 0; i < 6000; i++) {
		snprintf(d, sizeof(d), "d%d.example", i);
		snprintf(s, sizeof(s), "<message from='x@%s' to='y@b.example'/>", d);
		ev.in.from_dom = d;
		eval(s);
		refused += ev.d.reject;
	}
	ck_assert_int_gt(refused, 0);
	ck_assert_int_lt(refused, 6000);
}
END_TEST

/* ---- domain patterns --------------------------------------------------- */

START_TEST(test_domain_match)
{
	ck_assert(policy_domain_match("*", "a.example"));
	ck_assert(policy_domain_match("a.example", "a.example"));
	ck_assert(!policy_domain_match("a.example", "b.a.example"));
	ck_assert(policy_domain_match("*.a.example", "a.example"));
	ck_assert(policy_domain_match("*.a.example", "x.y.a.example"));
	ck_assert(!policy_domain_match("*.a.example", "xa.example"));
	ck_assert(!policy_domain_match("*.a.example", "example"));
}
END_TEST

/* ---- config errors --------------------------------------------------------- */

struct err_case {
	const char *text;
	const char *want; /* substring; the line is checked as ":LINE:" */
	int line;
};

#define P(rules) "policies = ( { name = \"p\";\n rules = ( " rules " ); } );\n"

static const struct err_case err_cases[] = {
    {BASE P("{ name = \"r\"; }"), "rule \"r\" has no action", 5},
    {BASE P("{ name = \"r\"; action = \"deny\"; }"), "action = \"deny\" is not known", 5},
    {BASE P("{ name = \"r\"; action = \"allow\"; kinds = [ \"msg\" ]; }"),
     "kinds entry \"msg\" is not a stanza kind", 5},
    {BASE P("{ name = \"r\"; action = \"rate_limit\"; }"), "add rate = 10", 5},
    {BASE P("{ name = \"r\"; action = \"allow\"; rate = 3; }"), "rate applies to action", 5},
    {BASE P("{ name = \"r\"; action = \"allow\"; error = \"modify\"; }"), "error applies to", 5},
    {BASE P("{ name = \"r\"; action = \"allow\"; },\n { name = \"r\"; action = \"reject\"; }"),
     "rule \"r\" is already in policy \"p\"", 6},
    {BASE P("{ name = \"r\"; action = \"allow\"; from = [ \"a..b\" ]; }"),
     "from pattern \"a..b\" is not valid", 5},
    {BASE P("{ name = \"r\"; action = \"allow\"; label = \"secret\"; }"),
     "label = \"secret\" is not known", 5},
    {BASE P("{ name = \"r\"; action = \"allow\"; rate_limit = 1; }"), "unknown key \"rate_limit\"",
     5},
    {BASE "peers = ( { name = \"x\"; host = \"h\"; policy_in = \"nope\"; } );\n",
     "policy_in = \"nope\" names no policy", 4},
    {BASE "peers = ( { name = \"x\"; host = \"h\"; clearance = \"nato:SECRET\"; } );\n",
     "security_labels defines no label policy", 4},
    {BASE LABELS "peers = ( { name = \"x\"; host = \"h\";\n clearance = \"nato:SEKRIT\"; } );\n",
     "is not a label of the catalogue", 21},
    {BASE "peers = ( { name = \"x\"; host = \"h\"; } );\n"
	  "routes = ( { domain = \"a\"; peer = \"x\"; policy = \"q\"; } );\n",
     "policy = \"q\" names no policy", 5},
    {BASE "security_labels = { policies = ( { name = \"n\"; oid = \"1.x\";\n"
	  " classifications = ( { name = \"A\"; value = 1; } ); } ); };\n",
     "oid \"1.x\" is not an object identifier", 4},
    {BASE
     "security_labels = { policies = ( { name = \"n\"; oid = \"1.2.3\";\n"
     " classifications = ( { name = \"A\"; value = 2; },\n { name = \"B\"; value = 1; } ); } ); "
     "};\n",
     "not above \"A\"", 6},
    {BASE "security_labels = { policies = ( { name = \"n\"; oid = \"1.2.3\";\n"
	  " classifications = ( { name = \"A\"; value = 300; } ); } ); };\n",
     "value must be an integer between 0 and 256", 5},
    {BASE "security_labels = { policies = ( { name = \"n\"; oid = \"1.2.3\"; } ); };\n",
     "has no classifications", 4},
    {BASE LABELS "policies = ();\n"
		 "audit = { file = \"relative.log\"; };\n",
     "is not an absolute path", 21},
    {BASE "audit = { file = \"/tmp/a\"; syslog = true; };\n", "keep one", 4},
};

START_TEST(test_config_errors)
{
	const struct err_case *e = &err_cases[_i];
	char err[512], line[16];
	struct config *c = load(e->text, err, sizeof(err));

	ck_assert_msg(c == NULL, "case %d loaded", _i);
	ck_assert_msg(strstr(err, e->want) != NULL, "case %d: %s", _i, err);
	snprintf(line, sizeof(line), ":%d: ", e->line);
	ck_assert_msg(strstr(err, line) != NULL, "case %d: want line %d: %s", _i, e->line, err);
	ck_assert_msg(strncmp(err, conf_path, strlen(conf_path)) == 0, "no file name: %s", err);
}
END_TEST

/* ---- audit ------------------------------------------------------------------ */

START_TEST(test_audit_format)
{
	struct audit_rec r = {"reject",
			      "leaf-a",
			      "leaf-b",
			      "*.b.example",
			      "x@a.example/r",
			      "y@b.example",
			      "message",
			      "chat",
			      "m\"1\n<x>",
			      "boundary",
			      "flood",
			      "rate exceeded",
			      "resource-constraint",
			      "uk:SECRET->nato:SECRET"};
	struct timespec t = {1700000000, 123456789};
	char line[2048];
	struct json_object *o, *v;
	int n = audit_format(&r, &t, line, sizeof(line));
	static const char *const keys[] = {"time",   "decision", "in_peer", "out_peer",	 "route",
					   "from",   "to",	 "kind",    "type",	 "id",
					   "policy", "rule",	 "reason",  "condition", "label"};

	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(line[n - 1], '\n');
	ck_assert_ptr_null(memchr(line, '\n', (size_t)n - 1)); /* one line */
	o = json_tokener_parse(line);
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(json_object_object_length(o), 15);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		ck_assert_msg(json_object_object_get_ex(o, keys[i], &v), "no %s", keys[i]);
	json_object_object_get_ex(o, "time", &v);
	ck_assert_str_eq(json_object_get_string(v), "2023-11-14T22:13:20.123Z");
	json_object_object_get_ex(o, "id", &v);
	ck_assert_str_eq(json_object_get_string(v), "m\"1\n<x>");
	json_object_object_get_ex(o, "rule", &v);
	ck_assert_str_eq(json_object_get_string(v), "flood");
	json_object_put(o);
	/* absent values are null; too small a buffer is refused */
	r.in_peer = NULL;
	n = audit_format(&r, &t, line, sizeof(line));
	o = json_tokener_parse(line);
	ck_assert(json_object_object_get_ex(o, "in_peer", &v) && v == NULL);
	json_object_put(o);
	ck_assert_int_eq(audit_format(&r, &t, line, 40), -ENOSPC);
}
END_TEST

START_TEST(test_audit_file)
{
	char path[] = "/tmp/xt-audit-XXXXXX", buf[4096];
	struct audit_rec r = {"reject",		  "a",	"b",  "*", "x@a", "y@b",
			      "message",	  NULL, "i1", "p", "r",	  "why",
			      "policy-violation", ""};
	int fd = mkstemp(path);
	FILE *fp;
	int lines = 0;

	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(audit_configure(path, 0), 0);
	ck_assert(audit_enabled());
	audit_write(&r);
	/* rotation: the file is moved away, SIGHUP reopens the path */
	{
		char moved[64];

		snprintf(moved, sizeof(moved), "%s.1", path);
		ck_assert_int_eq(rename(path, moved), 0);
		audit_write(&r); /* still into the moved file */
		ck_assert_int_eq(audit_reopen(), 0);
		audit_write(&r);
		fp = fopen(moved, "r");
		while (fgets(buf, sizeof(buf), fp))
			lines++;
		fclose(fp);
		ck_assert_int_eq(lines, 2);
		unlink(moved);
	}
	fp = fopen(path, "r");
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), fp));
	ck_assert_ptr_null(fgets(buf + 2048, 2048, fp));
	fclose(fp);
	{
		struct json_object *o = json_tokener_parse(buf);

		ck_assert_ptr_nonnull(o);
		json_object_put(o);
	}
	audit_close();
	ck_assert(!audit_enabled());
	unlink(path);
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("eval");
	TCase *tc2 = tcase_create("config");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_eval_table, 0, sizeof(eval_cases) / sizeof(eval_cases[0]));
	tcase_add_test(tc, test_rewrite);
	tcase_add_test(tc, test_equivalentlabel_used);
	tcase_add_test(tc, test_rate_limit);
	tcase_add_test(tc, test_rate_many_domains);
	suite_add_tcase(s, tc);
	tcase_add_test(tc2, test_domain_match);
	tcase_add_loop_test(tc2, test_config_errors, 0, sizeof(err_cases) / sizeof(err_cases[0]));
	tcase_add_test(tc2, test_audit_format);
	tcase_add_test(tc2, test_audit_file);
	suite_add_tcase(s, tc2);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(policy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
