/* test_leafconf: xtrunkctl leaf-config's generator: for a leaf behind a
 * relay, the DNS records, Prosody and ejabberd settings and trust material
 * its routes imply, for two relay configurations (one with a default route
 * and the relay's own certificate, one without a default route, with an
 * enclave CA and an IPv6 relay address); and the refusals. */
#include "leafconf.h"

#include "ca.h"
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/test_leafconf.XXXXXX";
static char conf1[256], conf2[256], conf3[256];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* conf1: default route, relay certificate, direct TLS listener.
 * conf2: no default route, enclave CA, IPv6, port 5299.
 * conf3: two listen addresses (no default relay address). */
static void setup(void)
{
	char cert[300], key[300], text[4096], err[512];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/ca.pem", dir);
	snprintf(key, sizeof(key), "%s/ca.key", dir);
	ck_assert_int_eq(
	    ca_create(cert, key, "leafconf test CA", time(NULL), 86400, err, sizeof(err)), 0);
	snprintf(conf1, sizeof(conf1), "%s/one.conf", dir);
	snprintf(conf2, sizeof(conf2), "%s/two.conf", dir);
	snprintf(conf3, sizeof(conf3), "%s/three.conf", dir);
	snprintf(text, sizeof(text),
		 "listen = ( { address = \"127.0.1.10\"; port = 5269; },\n"
		 "  { address = \"127.0.1.10\"; port = 5270; direct_tls = true; } );\n"
		 "dialback_secret = \"0123456789abcdef0123\";\n"
		 "tls = { certificate = \"%s\"; key = \"%s\"; };\n"
		 "peers = ( { name = \"leaf-a1\"; host = \"127.0.1.31\"; },\n"
		 "  { name = \"leaf-a2\"; host = \"127.0.1.32\"; },\n"
		 "  { name = \"relay-b\"; host = \"192.0.2.2\"; } );\n"
		 "routes = ( { domain = \"a1.example\"; peer = \"leaf-a1\"; },\n"
		 "  { domain = \"*.a1.example\"; peer = \"leaf-a1\"; },\n"
		 "  { domain = \"A2.Example.\"; peer = \"leaf-a2\"; },\n"
		 "  { domain = \"*.b.example\"; peer = \"relay-b\"; },\n"
		 "  { domain = \"*\"; peer = \"relay-b\"; } );\n",
		 cert, key);
	write_file(conf1, text);
	snprintf(
	    text, sizeof(text),
	    "listen = ( { address = \"::1\"; port = 5299; } );\n"
	    "dialback_secret = \"0123456789abcdef0123\";\n"
	    "tls = { ca_certificate = \"%s\"; ca_key = \"%s\"; trust = \"%s\"; };\n"
	    "peers = ( { name = \"leaf-x\"; host = \"::1\"; port = 5300; auth = \"certificate\"; "
	    "ca_file = \"%s\"; identity = \"x.example\"; },\n"
	    "  { name = \"relay\"; host = \"2001:db8::2\"; } );\n"
	    "routes = ( { domain = \"x.example\"; peer = \"leaf-x\"; },\n"
	    "  { domain = \"y.example\"; peer = \"relay\"; },\n"
	    "  { domain = \"*.z.example\"; peer = \"relay\"; } );\n",
	    cert, key, cert, cert);
	write_file(conf2, text);
	snprintf(text, sizeof(text),
		 "listen = ( { address = \"127.0.1.10\"; }, { address = \"192.0.2.1\"; } );\n"
		 "dialback_secret = \"0123456789abcdef0123\";\n"
		 "tls = { certificate = \"%s\"; key = \"%s\"; };\n"
		 "peers = ( { name = \"l\"; host = \"127.0.1.31\"; } );\n"
		 "routes = ( { domain = \"l.example\"; peer = \"l\"; } );\n",
		 cert, key);
	write_file(conf3, text);
}

static void teardown(void)
{
	const char *names[] = {"ca.pem", "ca.key", "one.conf", "two.conf", "three.conf"};
	char p[300];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

static struct config *load(const char *path)
{
	struct config *cfg = NULL;
	char err[1024];
	int rc = config_load(path, &cfg, err, sizeof(err));

	ck_assert_msg(rc == 0, "config_load: %s", err);
	return cfg;
}

/* Renders one format; the caller frees the text. */
static char *render(const char *conf, const char *leaf, const char *const *targets,
		    enum leafconf_format f)
{
	struct config *cfg = load(conf);
	struct leafconf lc;
	char err[1024], *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(out);
	ck_assert_msg(leafconf_init(&lc, cfg, leaf, err, sizeof(err)) == 0, "init: %s", err);
	if (targets[0] == NULL)
		ck_assert_msg(leafconf_default_target(&lc, err, sizeof(err)) == 0, "default: %s",
			      err);
	for (size_t i = 0; targets[i] != NULL; i++)
		ck_assert_msg(leafconf_add_target(&lc, targets[i], err, sizeof(err)) == 0,
			      "target %s: %s", targets[i], err);
	ck_assert_int_eq(leafconf_write(&lc, f, out), 0);
	ck_assert_int_eq(fclose(out), 0);
	config_unref(cfg);
	return buf;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

#define MAXCHECK 10

struct render_case {
	const char *name;
	int conf; /* 1, 2 */
	const char *leaf;
	const char *targets[3]; /* NULL-terminated; none: the default */
	enum leafconf_format f;
	const char *once[MAXCHECK]; /* each exactly once */
	const char *never[MAXCHECK];
};

static const struct render_case cases[] = {
    {"dnsmasq leaf a1",
     1,
     "a1.example",
     {NULL},
     LEAFCONF_DNSMASQ,
     {"host-record=relay1.xtrunk.internal,127.0.1.10\n", "local=/a1.example/\n",
      "local=/a2.example/\nhost-record=a2.example,127.0.1.10\n",
      "srv-host=_xmpp-server._tcp.a2.example,relay1.xtrunk.internal,5269,0,1\n",
      "srv-host=_xmpps-server._tcp.a2.example,relay1.xtrunk.internal,5270,0,1\n",
      "local=/b.example/\naddress=/b.example/127.0.1.10\n",
      "srv-host=_xmpp-server._tcp.b.example,relay1.xtrunk.internal,5269,0,1\n",
      "local=/#/\naddress=/#/127.0.1.10\n"},
     {"host-record=a1.example", "_tcp.a1.example", "address=/a1.example/", "WARNING"}},
    {"dnsmasq leaf a2, two instances",
     1,
     "a2.example",
     {"127.0.1.10", "relay-2.lab=127.0.1.11", NULL},
     LEAFCONF_DNSMASQ,
     {"host-record=relay-2.lab,127.0.1.11\n", "local=/a2.example/\n",
      "srv-host=_xmpp-server._tcp.a1.example,relay1.xtrunk.internal,5269,0,1\n",
      "srv-host=_xmpp-server._tcp.a1.example,relay-2.lab,5269,0,1\n",
      "local=/a1.example/\nhost-record=a1.example,127.0.1.10\n",
      "address=/a1.example/127.0.1.10\n"},
     {"_tcp.a2.example", "host-record=a2.example", "_xmpps-server._tcp.a1.example,relay-2.lab"}},
    {"bind leaf a1",
     1,
     "a1.example",
     {"127.0.1.10", NULL},
     LEAFCONF_BIND,
     {"$TTL 300\n", "relay1.xtrunk.internal.\t300\tIN\tA\t127.0.1.10\n",
      "_xmpp-server._tcp.a2.example.\t300\tIN\tSRV\t0 1 5269 relay1.xtrunk.internal.\n",
      "_xmpps-server._tcp.a2.example.\t300\tIN\tSRV\t0 1 5270 relay1.xtrunk.internal.\n",
      "\na2.example.\t300\tIN\tA\t127.0.1.10\n", "\nb.example.\t300\tIN\tA\t127.0.1.10\n",
      "*.b.example.\t300\tIN\tA\t127.0.1.10\n", "The default route has no zone form"},
     {"\na1.example.\t", "_tcp.a1.example"}},
    {"prosody leaf a1",
     1,
     "a1.example",
     {"127.0.1.10", NULL},
     LEAFCONF_PROSODY,
     {"modules_enabled = { \"s2sout_override\" }", "[\"a1.example\"] = true;",
      "[\"*.a1.example\"] = true;", "[\"a2.example\"] = \"tcp://127.0.1.10:5269\";",
      "[\"b.example\"] = \"tcp://127.0.1.10:5269\";",
      "[\"*.b.example\"] = \"tcp://127.0.1.10:5269\";", "[\"*\"] = \"tcp://127.0.1.10:5269\";",
      "s2s_require_encryption = true\n", "does not ship it"},
     {"cafile", "[\"a1.example\"] = \"tcp"}},
    {"ejabberd leaf a1",
     1,
     "a1.example",
     {"127.0.1.10", NULL},
     LEAFCONF_EJABBERD,
     {"s2s_use_starttls: required\n", "outgoing_s2s_families:\n  - ipv4\n",
      "outgoing_s2s_port: 5269\n", "the relay has a default route"},
     {"ipv6", "s2s_access:", "ca_file:"}},
    {"trust leaf a1",
     1,
     "a1.example",
     {"127.0.1.10", NULL},
     LEAFCONF_TRUST,
     {"relay_certificate_issuer=CN=leafconf test CA\n", "relay_certificate_pin=sha256//",
      "leaf_peer=leaf-a1\n", "leaf_auth=certificate or dialback\n", "leaf_tls=required\n"},
     {"\nca_file=", "cannot read"}},
    {"dnsmasq leaf x, IPv6, no default",
     2,
     "x.example",
     {NULL},
     LEAFCONF_DNSMASQ,
     {"host-record=relay1.xtrunk.internal,::1\n",
      "srv-host=_xmpp-server._tcp.y.example,relay1.xtrunk.internal,5299,0,1\n",
      "address=/z.example/::1\n", "WARNING: the relay listens on port 5299"},
     {"address=/#/", "local=/#/", "srv-host=_xmpps-server", "_tcp.x.example"}},
    {"bind leaf x",
     2,
     "x.example",
     {NULL},
     LEAFCONF_BIND,
     {"y.example.\t300\tIN\tAAAA\t::1\n", "*.z.example.\t300\tIN\tAAAA\t::1\n",
      "_xmpp-server._tcp.y.example.\t300\tIN\tSRV\t0 1 5299 relay1.xtrunk.internal.\n"},
     {"\tA\t", "no zone form"}},
    {"prosody leaf x",
     2,
     "x.example",
     {NULL},
     LEAFCONF_PROSODY,
     {"[\"y.example\"] = \"tcp://[::1]:5299\";", "[\"*.z.example\"] = \"tcp://[::1]:5299\";",
      "ssl = { cafile = \""},
     {"[\"*\"]"}},
    {"ejabberd leaf x",
     2,
     "x.example",
     {NULL},
     LEAFCONF_EJABBERD,
     {"outgoing_s2s_families:\n  - ipv6\n", "outgoing_s2s_port: 5299\n", "ca_file: \"",
      "    server:\n      - \"y.example\"\n      - \"z.example\"\n",
      "    server_glob:\n      - \"*.z.example\"\n", "s2s_access: xtrunk_s2s\n"},
     {"ipv4", "x.example\"\n"}},
    {"trust leaf x",
     2,
     "x.example",
     {NULL},
     LEAFCONF_TRUST,
     {"\nca_file=", "leaf_peer=leaf-x\n", "leaf_identity=x.example\n",
      "\nleaf_ca_file=", "leaf_auth=certificate (dialback refused"},
     {"relay_certificate"}},
};

START_TEST(test_render)
{
	const struct render_case *c = &cases[_i];
	char *text = render(c->conf == 1 ? conf1 : conf2, c->leaf, c->targets, c->f);

	for (size_t k = 0; k < MAXCHECK && c->once[k]; k++)
		ck_assert_msg(count(text, c->once[k]) == 1, "%s: '%s' %zu times, not once in:\n%s",
			      c->name, c->once[k], count(text, c->once[k]), text);
	for (size_t k = 0; k < MAXCHECK && c->never[k]; k++)
		ck_assert_msg(strstr(text, c->never[k]) == NULL, "%s: '%s' present in:\n%s",
			      c->name, c->never[k], text);
	/* the header names the leaf and the file; every line is a comment,
	 * blank or a setting, never a half-written one */
	ck_assert_ptr_nonnull(strstr(text, c->leaf));
	ck_assert_ptr_nonnull(strstr(text, c->conf == 1 ? conf1 : conf2));
	ck_assert(text[0] != '\0' && text[strlen(text) - 1] == '\n');
	free(text);
}
END_TEST

/* Each exact and wildcard route not served by the leaf gets an SRV record
 * per instance, whatever the order the table yields them in. */
START_TEST(test_every_route)
{
	const char *t[] = {"127.0.1.10", "127.0.1.11", "127.0.1.12", NULL};
	char *text = render(conf1, "a1.example", t, LEAFCONF_DNSMASQ);

	ck_assert_uint_eq(count(text, "srv-host=_xmpp-server._tcp."), 2 * 3);
	ck_assert_uint_eq(count(text, "srv-host=_xmpps-server._tcp."), 2); /* only .10 has 5270 */
	ck_assert_uint_eq(count(text, "\nhost-record=relay"), 3);
	/* routes in order: exact, wildcard, default */
	ck_assert_ptr_nonnull(strstr(text, "route a2.example"));
	ck_assert_ptr_nonnull(strstr(text, "route * "));
	ck_assert(strstr(text, "route a2.example") < strstr(text, "route *.b.example"));
	ck_assert(strstr(text, "route *.b.example") < strstr(text, "route * "));
	free(text);
}
END_TEST

struct refusal {
	const char *name;
	int conf;
	const char *leaf;
	const char *target; /* NULL: the default target */
	const char *why;    /* in the message */
};

static const struct refusal refusals[] = {
    {"unrouted leaf", 2, "nope.org", "::1", "no route at all"},
    {"leaf behind the default route only", 1, "zz.org", "127.0.1.10", "only the default"},
    {"not a domain", 1, "a..example", "127.0.1.10", "not a domain"},
    {"address is a name", 1, "a1.example", "relay.example", "not a numeric"},
    {"wildcard address", 1, "a1.example", "0.0.0.0", "wildcard"},
    {"bad target name", 1, "a1.example", "bad..name=127.0.1.10", "not a host name"},
    {"empty target name", 1, "a1.example", "=127.0.1.10", "not a host name"},
    {"several listen addresses", 3, "l.example", NULL, "several addresses"},
};

START_TEST(test_refusals)
{
	const struct refusal *r = &refusals[_i];
	const char *path = r->conf == 1 ? conf1 : r->conf == 2 ? conf2 : conf3;
	struct config *cfg = load(path);
	struct leafconf lc;
	char err[1024] = "";
	int rc = leafconf_init(&lc, cfg, r->leaf, err, sizeof(err));

	if (rc == 0)
		rc = r->target ? leafconf_add_target(&lc, r->target, err, sizeof(err))
			       : leafconf_default_target(&lc, err, sizeof(err));
	ck_assert_msg(rc == -EINVAL, "%s: rc %d", r->name, rc);
	ck_assert_msg(strstr(err, r->why) != NULL, "%s: message '%s'", r->name, err);
	config_unref(cfg);
}
END_TEST

START_TEST(test_limits)
{
	struct config *cfg = load(conf1);
	struct leafconf lc;
	char err[1024], spec[64];
	FILE *null = fopen("/dev/null", "w");

	ck_assert_int_eq(leafconf_init(&lc, cfg, "a1.example", err, sizeof(err)), 0);
	/* no target yet: nothing to point the leaf at */
	ck_assert_int_eq(leafconf_write(&lc, LEAFCONF_DNSMASQ, null), -EINVAL);
	ck_assert_int_eq(leafconf_add_target(&lc, "r.lab=127.0.1.10", err, sizeof(err)), 0);
	ck_assert_int_eq(leafconf_add_target(&lc, "R.LAB.=127.0.1.11", err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "used twice"));
	for (int i = 1; i < LEAFCONF_TARGETS_MAX; i++) {
		snprintf(spec, sizeof(spec), "127.0.2.%d", i);
		ck_assert_int_eq(leafconf_add_target(&lc, spec, err, sizeof(err)), 0);
	}
	ck_assert_int_eq(leafconf_add_target(&lc, "127.0.3.1", err, sizeof(err)), -ENOSPC);
	ck_assert_int_eq(leafconf_write(&lc, LEAFCONF_ALL, null), -EINVAL); /* one at a time */
	ck_assert_int_eq(leafconf_write(&lc, LEAFCONF_BIND, null), 0);
	fclose(null);
	config_unref(cfg);

	ck_assert_int_eq(leafconf_format_parse("dnsmasq"), LEAFCONF_DNSMASQ);
	ck_assert_int_eq(leafconf_format_parse("bind"), LEAFCONF_BIND);
	ck_assert_int_eq(leafconf_format_parse("prosody"), LEAFCONF_PROSODY);
	ck_assert_int_eq(leafconf_format_parse("ejabberd"), LEAFCONF_EJABBERD);
	ck_assert_int_eq(leafconf_format_parse("trust"), LEAFCONF_TRUST);
	ck_assert_int_eq(leafconf_format_parse("all"), LEAFCONF_ALL);
	ck_assert_int_eq(leafconf_format_parse("yaml"), 0);
	ck_assert_int_eq(leafconf_format_parse(NULL), 0);
}
END_TEST

static Suite *leafconf_suite(void)
{
	Suite *s = suite_create("leafconf");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_render, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_every_route);
	tcase_add_loop_test(tc, test_refusals, 0, (int)(sizeof(refusals) / sizeof(refusals[0])));
	tcase_add_test(tc, test_limits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(leafconf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
