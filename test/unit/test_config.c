/* test_config: the configuration loader. Every case writes its file into a
 * mkdtemp directory made for the suite ("@D@" in a text stands for that
 * directory), loads it, and checks either the parsed snapshot or that the
 * error message names the right line and says what is wrong. */
#include "config.h"
#include "log.h"

#include "route.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/xt-config-XXXXXX";

/* Writes text to dir/name with every "@D@" replaced by dir. */
static void write_file(const char *name, const char *text, mode_t mode)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (const char *p = text; *p; p++) {
		if (strncmp(p, "@D@", 3) == 0) {
			fputs(dir, f);
			p += 2;
		} else {
			fputc(*p, f);
		}
	}
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static int load_text(const char *text, struct config **c, char *err, size_t errlen)
{
	char path[256];

	write_file("relay.conf", text, 0600);
	snprintf(path, sizeof(path), "%s/relay.conf", dir);
	return config_load(path, c, err, errlen);
}

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
	/* The loader checks these are readable; it never parses them. */
	write_file("cert.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
	write_file("key.pem", "-----BEGIN PRIVATE KEY-----\n", 0600);
	write_file("ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
	write_file("secret", "0123456789abcdef0123\r\nsecond line is ignored\n", 0600);
	write_file("short", "0123456789\n0123456789\n", 0600);
}

static void teardown(void)
{
	static const char *const files[] = {"cert.pem", "key.pem", "ca.pem",	 "secret",
					    "short",	"loose",   "relay.conf", "routes"};
	char path[256];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* Three lines every error case starts with, so its line numbers start at 4. */
#define HEAD                                                                                       \
	"listen = ( { address = \"127.0.0.1\"; } );\n"                                             \
	"dialback_secret = \"0123456789abcdef\";\n"                                                \
	"tls = { certificate = \"@D@/cert.pem\"; key = \"@D@/key.pem\"; };\n"
#define PEER_A "peers = ( { name = \"leaf-a\"; host = \"127.0.0.2\"; } );\n"

static const char full_conf[] =
    "# a full configuration: every key\n"
    "listen = ( { address = \"127.0.0.10\"; port = 5270; },\n"
    "           { address = \"0:0::1\"; } );\n"
    "dialback_secret = \"s3cr3tf0rd14lb4ck\";\n"
    "tls = {\n"
    "  certificate = \"@D@/cert.pem\";\n"
    "  key = \"@D@/key.pem\";\n"
    "  inbound = \"optional\";\n"
    "};\n"
    "limits = {\n"
    "  connect_timeout = 5; handshake_timeout = 20; idle_timeout = 300;\n"
    "  queue_max_stanzas = 50; queue_max_bytes = 1000000000L; max_stanza_size = 65536;\n"
    "};\n"
    "peers = (\n"
    "  { name = \"leaf-a\"; host = \"127.0.0.2\"; port = 5271; tls = \"none\";\n"
    "    ca_file = \"@D@/ca.pem\"; identity = \"A.Example.\"; },\n"
    "  { name = \"leaf-b\"; host = \"leaf-b.example\"; tls = \"optional\"; },\n"
    "  { name = \"upstream\"; host = \"::1\"; }\n"
    ");\n"
    "routes = (\n"
    "  { domain = \"a.example\"; peer = \"leaf-a\"; },\n"
    "  { domain = \"*.b.example\"; peer = \"leaf-b\"; },\n"
    "  { domain = \"*\"; peer = \"upstream\"; }\n"
    ");\n";

START_TEST(test_full)
{
	struct config *c;
	char err[512];
	const struct route *r;

	ck_assert_msg(load_text(full_conf, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(c->refs, 1);
	ck_assert_ptr_nonnull(strstr(c->path, "relay.conf"));
	ck_assert_uint_eq(c->nlisten, 2);
	ck_assert_str_eq(c->listen[0].address, "127.0.0.10");
	ck_assert_int_eq(c->listen[0].port, 5270);
	ck_assert_str_eq(c->listen[1].address, "::1"); /* canonical form */
	ck_assert_int_eq(c->listen[1].port, 5269);
	ck_assert_str_eq(c->dialback_secret, "s3cr3tf0rd14lb4ck");
	ck_assert_ptr_nonnull(strstr(c->tls_certificate, "/cert.pem"));
	ck_assert_ptr_nonnull(strstr(c->tls_key, "/key.pem"));
	ck_assert_int_eq(c->tls_inbound, CFG_TLS_OPTIONAL);
	ck_assert_uint_eq(c->connect_timeout, 5);
	ck_assert_uint_eq(c->handshake_timeout, 20);
	ck_assert_uint_eq(c->idle_timeout, 300);
	ck_assert_uint_eq(c->queue_max_stanzas, 50);
	ck_assert_uint_eq(c->queue_max_bytes, 1000000000u);
	ck_assert_uint_eq(c->max_stanza_size, 65536);

	ck_assert_uint_eq(c->npeers, 3);
	ck_assert_str_eq(c->peers[0].name, "leaf-a");
	ck_assert_str_eq(c->peers[0].host, "127.0.0.2");
	ck_assert_int_eq(c->peers[0].port, 5271);
	ck_assert_int_eq(c->peers[0].tls, CFG_TLS_NONE);
	ck_assert_ptr_nonnull(strstr(c->peers[0].ca_file, "/ca.pem"));
	ck_assert_str_eq(c->peers[0].identity, "a.example"); /* normalised */
	ck_assert_int_eq(c->peers[0].line, 15);
	ck_assert_str_eq(c->peers[1].host, "leaf-b.example");
	ck_assert_int_eq(c->peers[1].port, 5269);
	ck_assert_int_eq(c->peers[1].tls, CFG_TLS_OPTIONAL);
	ck_assert_ptr_null(c->peers[1].ca_file);
	ck_assert_ptr_null(c->peers[1].identity);
	ck_assert_int_eq(c->peers[2].tls, CFG_TLS_REQUIRED);
	ck_assert_int_eq(config_peer_index(c, "upstream"), 2);
	ck_assert_int_eq(config_peer_index(c, "nobody"), -1);

	ck_assert_uint_eq(route_count(c->routes), 3);
	r = route_lookup(c->routes, "a.example");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->peer, 0);
	ck_assert_int_eq(r->line, 21);
	ck_assert_int_eq(route_lookup(c->routes, "b.example")->peer, 1);
	ck_assert_int_eq(route_lookup(c->routes, "x.y.b.example")->peer, 1);
	ck_assert_int_eq(route_lookup(c->routes, "x.a.example")->peer, 2);
	ck_assert_int_eq(route_lookup(c->routes, "elsewhere.org")->peer, 2);

	ck_assert_ptr_eq(config_ref(c), c);
	ck_assert_int_eq(c->refs, 2);
	config_unref(c);
	ck_assert_int_eq(c->refs, 1);
	config_unref(c);
	config_unref(NULL);
}
END_TEST

START_TEST(test_defaults)
{
	struct config *c;
	char err[512];

	ck_assert_int_eq(load_text(HEAD, &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(c->nlisten, 1);
	ck_assert_int_eq(c->listen[0].port, 5269);
	ck_assert_int_eq(c->tls_inbound, CFG_TLS_REQUIRED);
	ck_assert_uint_eq(c->connect_timeout, 10);
	ck_assert_uint_eq(c->handshake_timeout, 30);
	ck_assert_uint_eq(c->idle_timeout, 600);
	ck_assert_uint_eq(c->queue_max_stanzas, 1000);
	ck_assert_uint_eq(c->queue_max_bytes, 4194304);
	ck_assert_uint_eq(c->max_stanza_size, 262144);
	ck_assert_uint_eq(c->npeers, 0);
	ck_assert_ptr_nonnull(c->routes);
	ck_assert_uint_eq(route_count(c->routes), 0);
	ck_assert_ptr_null(route_lookup(c->routes, "a.example"));
	config_unref(c);
}
END_TEST

START_TEST(test_secret_file)
{
	struct config *c;
	char err[512];

	/* First line only, CR LF stripped. */
	ck_assert_int_eq(load_text("listen = ( { address = \"::\"; } );\n"
				   "dialback_secret_file = \"@D@/secret\";\n"
				   "tls = { inbound = \"none\"; };\n",
				   &c, err, sizeof(err)),
			 0);
	ck_assert_str_eq(c->dialback_secret, "0123456789abcdef0123");
	ck_assert_int_eq(c->tls_inbound, CFG_TLS_NONE);
	ck_assert_ptr_null(c->tls_certificate);
	config_unref(c);

	/* Readable by others: a warning, not an error. */
	write_file("loose", "0123456789abcdefXYZ", 0644);
	ck_assert_int_eq(load_text("listen = ( { address = \"::\"; } );\n"
				   "dialback_secret_file = \"@D@/loose\";\n"
				   "tls = { inbound = \"none\"; };\n",
				   &c, err, sizeof(err)),
			 0);
	ck_assert_str_eq(c->dialback_secret, "0123456789abcdefXYZ");
	config_unref(c);
}
END_TEST

START_TEST(test_inbound_none_no_tls_files)
{
	struct config *c;
	char err[512];

	/* With inbound TLS off, certificate files are neither required nor checked. */
	ck_assert_int_eq(
	    load_text("listen = ( { address = \"127.0.0.1\"; } );\n"
		      "dialback_secret = \"0123456789abcdef\";\n"
		      "tls = { inbound = \"none\"; certificate = \"/nonexistent.pem\"; };\n",
		      &c, err, sizeof(err)),
	    0);
	ck_assert_str_eq(c->tls_certificate, "/nonexistent.pem");
	ck_assert_ptr_null(c->tls_key);
	config_unref(c);
}
END_TEST

START_TEST(test_missing_file)
{
	struct config *c = (struct config *)1;
	char err[512];

	ck_assert_int_eq(config_load("/nonexistent/xtrunkd.conf", &c, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/xtrunkd.conf: "));
	ck_assert_ptr_nonnull(strstr(err, "No such file or directory"));
}
END_TEST

START_TEST(test_small_err_buffer)
{
	struct config *c;
	char err[8];

	ck_assert_int_lt(load_text("listn = 1;\n", &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
	ck_assert_int_lt(load_text("listn = 1;\n", &c, NULL, 0), 0);
}
END_TEST

/* Unknown keys and wrong types are all reported, one line each, in file
 * order, so an administrator fixes them in one go. */
START_TEST(test_every_problem)
{
	struct config *c;
	char err[2048];
	const char *p;
	int lines = 1;

	ck_assert_int_eq(load_text(HEAD "listn = 1;\n"
					"limits = { idle_timeout = \"x\"; bogus = 2; };\n"
					"peers = ( { name = \"a\"; host = \"h\"; prot = 1; } );\n",
				   &c, err, sizeof(err)),
			 -EINVAL);
	for (p = err; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	ck_assert_msg(lines == 4, "%d lines: %s", lines, err);
	ck_assert_ptr_nonnull(strstr(err, "relay.conf:4: unknown key \"listn\""));
	ck_assert_ptr_nonnull(strstr(err, "relay.conf:5: idle_timeout must be an integer"));
	ck_assert_ptr_nonnull(strstr(err, "relay.conf:5: unknown key \"bogus\""));
	ck_assert_ptr_nonnull(
	    strstr(err, "relay.conf:6: unknown key \"prot\"; did you mean \"port\""));
	ck_assert(strstr(err, ":4: ") < strstr(err, ":6: "));
}
END_TEST

START_TEST(test_key_table)
{
	size_t n = 0;

	for (const struct config_key *k = config_keys; k->path; k++, n++) {
		ck_assert_ptr_nonnull(k->type);
		ck_assert_ptr_nonnull(k->dflt);
		ck_assert(strcmp(k->type, "string") == 0 || strcmp(k->type, "int") == 0 ||
			  strcmp(k->type, "bool") == 0 || strcmp(k->type, "list") == 0 ||
			  strcmp(k->type, "group") == 0 || strcmp(k->type, "strings") == 0);
		/* This version reloads everything but the listening sockets, the
		 * control socket, the metrics listener and the worker count. */
		ck_assert_str_eq(k->reload, strncmp(k->path, "listen", 6) == 0 ||
						    strcmp(k->path, "workers") == 0 ||
						    strncmp(k->path, "control", 7) == 0 ||
						    strncmp(k->path, "metrics", 7) == 0
						? "no"
						: "yes");
		for (const struct config_key *o = k + 1; o->path; o++)
			ck_assert_str_ne(k->path, o->path);
		/* Every key inside a list element or group has its parent in the table. */
		const char *dot = strrchr(k->path, '.');
		if (dot) {
			char parent[64];
			size_t plen = (size_t)(dot - k->path);
			int found = 0;

			if (plen >= 3 && strncmp(dot - 3, ".[]", 3) == 0)
				plen -= 3;
			snprintf(parent, sizeof(parent), "%.*s", (int)plen, k->path);
			for (const struct config_key *o = config_keys; o->path; o++)
				found |= strcmp(o->path, parent) == 0;
			ck_assert_msg(found, "%s has no parent row", k->path);
		}
	}
	/* 40 + control.socket, metrics.address/port/public and two groups, 47
	 * of policy/ (peers, routes, security_labels, policies, audit), and 8
	 * of trunk links (limits.keepalive/failback/max_hops, peers.[].trunk,
	 * peers.[].addresses and its host/port/priority), relay_name and
	 * peers.[].authorize, workers, limits.max_name_length,
	 * limits.max_attribute_length, limits.backpressure_timeout and the
	 * log group with level and traces */
	ck_assert_uint_eq(n, 111);
}
END_TEST

/* log.level and log.traces: parsed here, applied by main at start and
 * on reload; unset means info and no traces. */
START_TEST(test_log_settings)
{
	struct config *c;
	char err[512];

	ck_assert_msg(load_text(HEAD, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(c->log_level, -1);
	ck_assert_uint_eq(c->log_traces, 0);
	config_unref(c);
	ck_assert_msg(load_text(HEAD "log = { level = \"warning\"; traces = [ \"stanza\", "
				     "\"metrics\" ]; };\n",
				&c, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_int_eq(c->log_level, LOG_WARNING);
	ck_assert_uint_eq(c->log_traces, LOG_TRACE_STANZA | LOG_TRACE_METRICS);
	config_unref(c);
	ck_assert_int_lt(load_text(HEAD "log = {\n level = \"loud\"; };\n", &c, err, sizeof(err)),
			 0);
	ck_assert_msg(strstr(err, "relay.conf:5: log.level \"loud\" is not a level"), "%s", err);
	ck_assert_int_lt(
	    load_text(HEAD "log = { traces = [\n \"everything\" ]; };\n", &c, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "\"everything\" is not a trace category"), "%s", err);
}
END_TEST

START_TEST(test_addresses)
{
	struct config *c;
	char err[512];
	const char *text = HEAD "limits = { keepalive = 0; failback = 7; max_hops = 3; };\n"
				"peers = ( { name = \"b\"; trunk = true; addresses = (\n"
				"  { host = \"10.0.0.3\"; priority = 20; },\n"
				"  { host = \"10.0.0.2\"; port = 5270; priority = 10; },\n"
				"  { host = \"10.0.0.4\"; priority = 20; } ); },\n"
				"  { name = \"a\"; host = \"10.0.0.1\"; } );\n";

	ck_assert_msg(load_text(text, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(c->keepalive, 0);
	ck_assert_uint_eq(c->failback, 7);
	ck_assert_uint_eq(c->max_hops, 3);
	ck_assert_uint_eq(c->peers[0].naddrs, 3);
	ck_assert(c->peers[0].trunk);
	/* sorted by priority, file order among equals; host/port = preferred */
	ck_assert_str_eq(c->peers[0].addrs[0].host, "10.0.0.2");
	ck_assert_int_eq(c->peers[0].addrs[0].port, 5270);
	ck_assert_int_eq(c->peers[0].addrs[0].priority, 10);
	ck_assert_str_eq(c->peers[0].addrs[1].host, "10.0.0.3");
	ck_assert_int_eq(c->peers[0].addrs[1].port, 5269);
	ck_assert_str_eq(c->peers[0].addrs[2].host, "10.0.0.4");
	ck_assert_int_eq(c->peers[0].addrs[2].priority, 20);
	ck_assert_str_eq(c->peers[0].host, "10.0.0.2");
	ck_assert_int_eq(c->peers[0].port, 5270);
	ck_assert_uint_eq(c->peers[1].naddrs, 1);
	ck_assert(!c->peers[1].trunk);
	ck_assert_str_eq(c->peers[1].addrs[0].host, "10.0.0.1");
	/* a trunk peer without identity and relay_name: no single link */
	ck_assert_ptr_nonnull(c->warnings);
	ck_assert_ptr_nonnull(strstr(c->warnings, "one stream per domain pair"));
	ck_assert(!config_peer_is_link(c, 0));
	config_unref(c);

	ck_assert_int_eq(load_text(HEAD, &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(c->keepalive, 60);
	ck_assert_uint_eq(c->failback, 30);
	ck_assert_uint_eq(c->max_hops, 8);
	config_unref(c);
}
END_TEST

/* routes_file: "PATTERN PEER" lines joining the routes list. */
START_TEST(test_routes_file)
{
	struct config *c;
	char err[1024] = "", path[512], text[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/routes", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("# enclave B\n*.b.example   leaf-a\n\n  x.example\tleaf-a   # exact\n", f);
	fclose(f);
	snprintf(text, sizeof(text),
		 HEAD PEER_A "routes_file = \"%s\";\n"
			     "routes = ( { domain = \"a.example\"; peer = \"leaf-a\"; } );\n",
		 path);
	ck_assert_msg(load_text(text, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(route_count(c->routes), 3);
	ck_assert_int_eq(route_lookup(c->routes, "y.b.example")->line, -2);
	ck_assert_int_eq(route_lookup(c->routes, "x.example")->line, -4);
	ck_assert_int_gt(route_lookup(c->routes, "a.example")->line, 0);
	config_unref(c);

	/* errors name the routes file and its line */
	f = fopen(path, "w");
	fputs("*.b.example leaf-a\na.example leaf-a\n", f);
	fclose(f);
	ck_assert_int_eq(load_text(text, &c, err, sizeof(err)), -EEXIST);
	ck_assert_msg(strstr(err, "/routes:2: route for \"a.example\" duplicates the route at ") &&
			  strstr(err, "relay.conf:6"),
		      "%s", err);
	f = fopen(path, "w");
	fputs("*.b.example nobody\n", f);
	fclose(f);
	ck_assert_int_eq(load_text(text, &c, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "/routes:1: peer \"nobody\" is not defined"), "%s", err);
	f = fopen(path, "w");
	fputs("*.b.example leaf-a extra\n", f);
	fclose(f);
	ck_assert_int_eq(load_text(text, &c, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "/routes:1: a route is \"PATTERN PEER\""), "%s", err);
	f = fopen(path, "w");
	fputs("a..b leaf-a\n", f);
	fclose(f);
	ck_assert_int_eq(load_text(text, &c, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "/routes:1: \"a..b\" is not a valid pattern"), "%s", err);
}
END_TEST

/* A peer at one of our own listeners: loaded, with a FILE:LINE warning. */
START_TEST(test_warn_route_to_self)
{
	struct config *c;
	char err[512];
	const char *text = HEAD "peers = ( { name = \"me\"; host = \"127.0.0.1\"; },\n"
				"  { name = \"ok\"; host = \"127.0.0.11\"; } );\n"
				"routes = ( { domain = \"*\"; peer = \"me\"; } );\n";

	ck_assert_msg(load_text(text, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_ptr_nonnull(c->warnings);
	ck_assert_msg(strstr(c->warnings, "relay.conf:4: warning: peer \"me\"") != NULL, "%s",
		      c->warnings);
	ck_assert_ptr_nonnull(strstr(c->warnings, "own ingress"));
	ck_assert_ptr_null(strstr(c->warnings, "\"ok\""));
	config_unref(c);
}
END_TEST

/* 100000 routes: loading must stay linear (peer names are looked up by
 * binary search, the route table hashes). */
START_TEST(test_many_routes)
{
	enum { NROUTES = 100000, NPEERS = 200 };
	struct config *c;
	char path[256], err[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/relay.conf", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "listen = ( { address = \"127.0.0.1\"; } );\n"
		   "dialback_secret = \"0123456789abcdef\";\n"
		   "tls = { inbound = \"none\"; };\npeers = (\n");
	for (int i = 0; i < NPEERS; i++)
		fprintf(f, "%s{ name = \"p%d\"; host = \"10.0.%d.%d\"; }\n", i ? "," : "", i,
			i / 256, i % 256);
	fprintf(f, ");\nroutes = (\n");
	for (int i = 0; i < NROUTES; i++)
		fprintf(f, "%s{ domain = \"%sd%d.example\"; peer = \"p%d\"; }\n", i ? "," : "",
			i % 2 ? "*." : "", i, i % NPEERS);
	fprintf(f, ");\n");
	ck_assert_int_eq(fclose(f), 0);

	ck_assert_int_eq(config_load(path, &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(route_count(c->routes), NROUTES);
	ck_assert_int_eq(route_lookup(c->routes, "d12344.example")->peer, 12344 % NPEERS);
	ck_assert_int_eq(route_lookup(c->routes, "x.d99999.example")->peer, 99999 % NPEERS);
	ck_assert_ptr_null(route_lookup(c->routes, "x.d12344.example"));
	config_unref(c);
}
END_TEST

struct err_case {
	const char *name;
	const char *text;
	const char *want[4]; /* substrings of the message; the first one is the place */
};

static const struct err_case err_cases[] = {
    {"bad pin",
     HEAD "peers = ( { name = \"a\"; host = \"h\";\n pins = [ \"sha256//nope\" ]; } );\n",
     {"relay.conf:5: ", "pin \"sha256//nope\"", "xtrunkctl fingerprint"}},
    {"pins not strings",
     HEAD "peers = ( { name = \"a\"; host = \"h\";\n pins = [ 1, 2 ]; } );\n",
     {"relay.conf:5: ", "pins must hold strings"}},
    {"bad auth",
     HEAD "peers = ( { name = \"a\"; host = \"h\";\n auth = \"password\"; } );\n",
     {"relay.conf:5: ", "auth = \"password\"", "\"certificate\""}},
    {"allow_cn not bool",
     HEAD "peers = ( { name = \"a\"; host = \"h\";\n allow_cn = \"yes\"; } );\n",
     {"relay.conf:5: ", "allow_cn must be true or false"}},
    {"host and addresses",
     HEAD "peers = ( { name = \"a\"; host = \"h\";\n addresses = ( { host = \"i\"; } ); } );\n",
     {"relay.conf:5: ", "both host/port and addresses", "keep one"}},
    {"empty addresses",
     HEAD "peers = ( { name = \"a\";\n addresses = ( ); } );\n",
     {"relay.conf:5: ", "empty addresses list"}},
    {"address without host",
     HEAD "peers = ( { name = \"a\"; addresses = (\n { port = 5270; } ); } );\n",
     {"relay.conf:5: ", "address 1 of peer \"a\" has no host"}},
    {"address priority range",
     HEAD "peers = ( { name = \"a\"; addresses = (\n { host = \"h\"; priority = -1; } ); } );\n",
     {"relay.conf:5: ", "priority"}},
    {"max_hops range", HEAD "limits = {\n max_hops = 0; };\n", {"relay.conf:5: ", "max_hops"}},
    {"workers range", HEAD "workers = 65;\n", {"relay.conf:4: ", "workers"}},
    {"workers zero", HEAD "workers = 0;\n", {"relay.conf:4: ", "workers"}},
    {"syntax",
     HEAD "peers = ( { name = \"a\"; host = = \"h\"; } );\n",
     {"relay.conf:4: ", "syntax error", "fix the syntax"}},
    {"libconfig duplicate",
     HEAD "limits = {\n idle_timeout = 5;\n idle_timeout = 6;\n};\n",
     {"relay.conf:6: ", "duplicate setting"}},
    {"unknown top key",
     "listn = ( { address = \"127.0.0.1\"; } );\n",
     {"relay.conf:1: ", "unknown key \"listn\"", "did you mean \"listen\"?"}},
    {"unknown nested key",
     HEAD "limits = {\n  idle_timout = 5;\n};\n",
     {"relay.conf:5: ", "unknown key \"idle_timout\"", "did you mean \"idle_timeout\"?"}},
    {"unknown key in list entry",
     HEAD "peers = ( { name = \"a\"; host = \"h\";\n  colour = \"red\"; } );\n",
     {"relay.conf:5: ", "unknown key \"colour\"", "keys allowed here: name, host, port"}},
    {"key in wrong group",
     HEAD "certificate = \"x.pem\";\n",
     {"relay.conf:4: ", "unknown key \"certificate\"", "\"tls.certificate\""}},
    {"port not an integer",
     "listen = ( { address = \"127.0.0.1\"; port = \"5269\"; } );\n",
     {"relay.conf:1: ", "port must be an integer between 1 and 65535"}},
    {"port out of range",
     HEAD "peers = ( { name = \"a\"; host = \"h\";\n  port = 70000; } );\n",
     {"relay.conf:5: ", "port must be an integer between 1 and 65535"}},
    {"port float",
     HEAD "peers = ( { name = \"a\"; host = \"h\"; port = 5269.0; } );\n",
     {"relay.conf:4: ", "port must be an integer"}},
    {"limit too small",
     HEAD "limits = { max_stanza_size = 100; };\n",
     {"relay.conf:4: ", "max_stanza_size must be an integer between 10000"}},
    {"name length below the header's",
     HEAD "limits = { max_name_length = 8; };\n",
     {"relay.conf:4: ", "max_name_length must be an integer between 16 and 65536"}},
    {"queue smaller than stanza",
     HEAD "limits = {\n  queue_max_bytes = 20000;\n  max_stanza_size = 30000;\n};\n",
     {"relay.conf:5: ", "queue_max_bytes", "smaller than max_stanza_size"}},
    {"string expected",
     "listen = ( { address = \"127.0.0.1\"; } );\ndialback_secret = 42;\n",
     {"relay.conf:2: ", "dialback_secret must be a string"}},
    {"list expected",
     "listen = { address = \"127.0.0.1\"; };\n",
     {"relay.conf:1: ", "listen must be a list"}},
    {"group expected", HEAD "limits = 5;\n", {"relay.conf:4: ", "limits must be a group"}},
    {"list entry not a group",
     HEAD "peers = ( \"leaf-a\" );\n",
     {"relay.conf:4: ", "each entry of peers must be a group"}},
    {"missing listen",
     "dialback_secret = \"0123456789abcdef\";\ntls = { inbound = \"none\"; };\n",
     {"relay.conf:1: ", "missing required key \"listen\""}},
    {"empty listen", "\nlisten = ( );\n", {"relay.conf:2: ", "listen is empty"}},
    {"listen without address",
     "listen = (\n  { port = 5269; }\n);\n",
     {"relay.conf:2: ", "no address", "address = "}},
    {"listen address not numeric",
     "listen = ( { address = \"localhost\"; } );\n",
     {"relay.conf:1: ", "\"localhost\" is not a numeric IPv4 or IPv6 address"}},
    {"listen twice",
     "listen = ( { address = \"::1\"; },\n  { address = \"0::1\"; port = 5269; } );\n",
     {"relay.conf:2: ", "listed twice"}},
    {"missing secret",
     "listen = ( { address = \"127.0.0.1\"; } );\ntls = { inbound = \"none\"; };\n",
     {"relay.conf:1: ", "missing required key", "dialback_secret"}},
    {"both secrets",
     HEAD "dialback_secret_file = \"@D@/secret\";\n",
     {"relay.conf:4: ", "both set", "keep only one"}},
    {"secret too short",
     "listen = ( { address = \"127.0.0.1\"; } );\n\ndialback_secret = \"0123456789abcde\";\n",
     {"relay.conf:3: ", "dialback_secret has 15 characters", "at least 16"}},
    {"secret file unreadable",
     "listen = ( { address = \"127.0.0.1\"; } );\ndialback_secret_file = \"@D@/nosecret\";\n",
     {"relay.conf:2: ", "cannot read dialback_secret_file", "nosecret",
      "No such file or directory"}},
    {"secret file too short",
     "listen = ( { address = \"127.0.0.1\"; } );\ndialback_secret_file = \"@D@/short\";\n"
     "tls = { inbound = \"none\"; };\n",
     {"relay.conf:2: ", "has 10 characters", "at least 16"}},
    {"secret file is a directory",
     "listen = ( { address = \"127.0.0.1\"; } );\ndialback_secret_file = \"@D@\";\n",
     {"relay.conf:2: ", "not a regular file"}},
    {"tls missing",
     "listen = ( { address = \"127.0.0.1\"; } );\ndialback_secret = \"0123456789abcdef\";\n",
     {"relay.conf:1: ", "missing required key \"tls.certificate\"", "tls.inbound = \"none\""}},
    {"tls key missing",
     "listen = ( { address = \"127.0.0.1\"; } );\ndialback_secret = \"0123456789abcdef\";\n"
     "tls = {\n  certificate = \"@D@/cert.pem\";\n};\n",
     {"relay.conf:3: ", "missing required key \"tls.key\""}},
    {"certificate unreadable",
     "listen = ( { address = \"127.0.0.1\"; } );\ndialback_secret = \"0123456789abcdef\";\n"
     "tls = {\n  certificate = \"@D@/nocert.pem\";\n  key = \"@D@/key.pem\";\n};\n",
     {"relay.conf:4: ", "cannot read tls.certificate", "nocert.pem", "No such file"}},
    {"key unreadable",
     "listen = ( { address = \"127.0.0.1\"; } );\ndialback_secret = \"0123456789abcdef\";\n"
     "tls = {\n  certificate = \"@D@/cert.pem\";\n  key = \"@D@/nokey.pem\";\n};\n",
     {"relay.conf:5: ", "cannot read tls.key", "nokey.pem", "No such file"}},
    {"bad inbound tls",
     "listen = ( { address = \"127.0.0.1\"; } );\ndialback_secret = \"0123456789abcdef\";\n"
     "tls = {\n  inbound = \"maybe\";\n};\n",
     {"relay.conf:4: ", "inbound = \"maybe\"", "\"required\", \"optional\" or \"none\""}},
    {"bad peer tls",
     HEAD "peers = ( { name = \"a\"; host = \"h\"; tls = \"yes\"; } );\n",
     {"relay.conf:4: ", "tls = \"yes\" is not a TLS mode"}},
    {"peer without name",
     HEAD "peers = (\n  { host = \"h\"; }\n);\n",
     {"relay.conf:5: ", "peer has no name"}},
    {"peer without host",
     HEAD "peers = (\n  { name = \"a\"; }\n);\n",
     {"relay.conf:5: ", "peer has no host"}},
    {"peer with empty name",
     HEAD "peers = ( { name = \"\"; host = \"h\"; } );\n",
     {"relay.conf:4: ", "peer has an empty name"}},
    {"duplicate peer",
     HEAD "peers = (\n  { name = \"leaf-a\"; host = \"h1\"; },\n  { name = \"leaf-b\"; host = "
	  "\"h2\"; },\n  { name = \"leaf-a\"; host = \"h3\"; }\n);\n",
     {"relay.conf:7: ", "peer \"leaf-a\" is already defined at line 5", "unique"}},
    {"ca_file unreadable",
     HEAD "peers = ( { name = \"a\"; host = \"h\";\n  ca_file = \"@D@/noca.pem\"; } );\n",
     {"relay.conf:5: ", "cannot read ca_file", "noca.pem", "No such file"}},
    {"bad identity",
     HEAD "peers = ( { name = \"a\"; host = \"h\"; identity = \"a..example\"; } );\n",
     {"relay.conf:4: ", "identity \"a..example\" is not a domain name"}},
    {"route to undefined peer",
     HEAD PEER_A "routes = (\n  { domain = \"a.example\"; peer = \"leaf-a\"; },\n"
		 "  { domain = \"c.example\"; peer = \"leaf-c\"; }\n);\n",
     {"relay.conf:7: ", "peer \"leaf-c\" in route for \"c.example\" is not defined",
      "add it to peers or fix the name"}},
    {"duplicate route",
     HEAD PEER_A "routes = (\n  { domain = \"*.a.example\"; peer = \"leaf-a\"; },\n"
		 "  { domain = \"*.A.Example.\"; peer = \"leaf-a\"; }\n);\n",
     {"relay.conf:7: ", "duplicates the route at line 6", "remove one"}},
    {"duplicate default route",
     HEAD PEER_A "routes = (\n  { domain = \"*\"; peer = \"leaf-a\"; },\n"
		 "  { domain = \"*\"; peer = \"leaf-a\"; }\n);\n",
     {"relay.conf:7: ", "duplicates the route at line 6"}},
    {"bad route pattern",
     HEAD PEER_A "routes = (\n  { domain = \"a.*.example\"; peer = \"leaf-a\"; }\n);\n",
     {"relay.conf:6: ", "\"a.*.example\" is not a valid pattern"}},
    {"route without peer",
     HEAD PEER_A "routes = (\n  { domain = \"a.example\"; }\n);\n",
     {"relay.conf:6: ", "route has no peer"}},
    {"route without domain",
     HEAD PEER_A "routes = (\n  { peer = \"leaf-a\"; }\n);\n",
     {"relay.conf:6: ", "route has no domain"}},
};

START_TEST(test_errors)
{
	const struct err_case *t = &err_cases[_i];
	struct config *c = (struct config *)1;
	char err[512];
	int r;

	r = load_text(t->text, &c, err, sizeof(err));
	ck_assert_msg(r < 0, "%s: loaded", t->name);
	ck_assert_ptr_null(c);
	/* FILE:LINE: problem; fix */
	ck_assert_msg(strncmp(err, dir, strlen(dir)) == 0, "%s: %s", t->name, err);
	ck_assert_msg(strstr(err, "; ") != NULL, "%s: no fix in: %s", t->name, err);
	for (size_t i = 0; i < 4 && t->want[i]; i++)
		ck_assert_msg(strstr(err, t->want[i]) != NULL, "%s: want \"%s\" in: %s", t->name,
			      t->want[i], err);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("load");

	/* Once, in the parent: the directory goes even when a test fails. */
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_secret_file);
	tcase_add_test(tc, test_inbound_none_no_tls_files);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_small_err_buffer);
	tcase_add_test(tc, test_every_problem);
	tcase_add_test(tc, test_key_table);
	tcase_add_test(tc, test_many_routes);
	tcase_add_test(tc, test_addresses);
	tcase_add_test(tc, test_log_settings);
	tcase_add_test(tc, test_warn_route_to_self);
	tcase_add_test(tc, test_routes_file);
	tcase_add_loop_test(tc, test_errors, 0, (int)(sizeof(err_cases) / sizeof(err_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
