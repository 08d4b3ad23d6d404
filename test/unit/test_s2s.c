/* Scenario tests: the whole relay (relay/s2s*.c and everything under it)
 * driven through the fake network (test/fakenet): scripted bytes in,
 * expected bytes out, fake time. Each test plays the leaves by hand. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakenet.h"
#include "log.h"
#include "scenario.h"
#include "s2s.h"
#include "stats.h"

#define HDR_FMT                                                                                    \
	"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "                               \
	"xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "       \
	"from='%s' to='%s' version='1.0'%s>"
#define FEATURES_DB                                                                                \
	"<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"       \
	"</stream:features>"

/* What every scenario configuration starts with. */
#define CONF_COMMON                                                                                \
	"listen = ( { address = \"127.0.0.1\"; port = 5269; } );\n"                                \
	"dialback_secret = \"0123456789abcdef0123456789abcdef\";\n"
#define CONF_TLS "tls = { certificate = \"@DIR@/relay.pem\"; key = \"@DIR@/relay.key\"; };\n"
#define CONF_LIMITS(extra)                                                                         \
	"limits = { connect_timeout = 2; handshake_timeout = 5; queue_max_stanzas = 3;\n"          \
	"           queue_max_bytes = 100000; max_stanza_size = 65536;" extra " };\n"
#define CONF_PEERS_ROUTES                                                                          \
	"peers = ( { name = \"leaf-a\"; host = \"10.0.0.1\"; tls = \"optional\"; },\n"             \
	"          { name = \"leaf-b\"; host = \"10.0.0.2\"; tls = \"optional\"; } );\n"           \
	"routes = ( { domain = \"a.example\"; peer = \"leaf-a\"; },\n"                             \
	"           { domain = \"*.b.example\"; peer = \"leaf-b\"; }"
#define CONF_BASE CONF_COMMON CONF_TLS CONF_LIMITS("") CONF_PEERS_ROUTES

static const char conf[] = CONF_BASE " );\n";

/* conf without backpressure: a slow next hop's excess is bounced at once */
static const char conf_nobp[] =
    CONF_COMMON CONF_TLS CONF_LIMITS(" backpressure_timeout = 0;") CONF_PEERS_ROUTES " );\n";

/* conf with an inbound policy on leaf-a: headline messages refused */
static const char conf_policy[] = CONF_COMMON CONF_TLS CONF_LIMITS(
    "") "policies = ( { name = \"in\"; default = \"allow\"; rules = (\n"
	"  { name = \"no-headline\"; kinds = [ \"message\" ]; types = [ \"headline\" ];\n"
	"    action = \"reject\"; } ); } );\n"
	"peers = ( { name = \"leaf-a\"; host = \"10.0.0.1\"; tls = \"optional\"; policy_in = "
	"\"in\"; "
	"},\n"
	"          { name = \"leaf-b\"; host = \"10.0.0.2\"; tls = \"optional\"; } );\n"
	"routes = ( { domain = \"a.example\"; peer = \"leaf-a\"; },\n"
	"           { domain = \"*.b.example\"; peer = \"leaf-b\"; } );\n";

/* conf plus a route for c.example, for the reload test */
static const char conf_more[] = CONF_BASE ",\n { domain = \"c.example\"; peer = \"leaf-b\"; } );\n";

/* Logs at warning unless SCEN_LOG is set (then everything, on stderr). */
static void setup_with(const char *template)
{
	char err[512] = "";

	log_init(1, 0);
	if (getenv("SCEN_LOG") == NULL)
		log_set_level("warning");
	ck_assert_msg(scen_setup(template, err, sizeof(err)) == 0, "%s", err);
}

static void setup(void)
{
	setup_with(conf);
}

static void teardown(void)
{
	ck_assert_uint_eq(scen_teardown(), 0);
}

static void send_str(struct net_conn *c, const char *s)
{
	fakenet_data(c, s, strlen(s));
}

static void sendf(struct net_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sendf(struct net_conn *c, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	send_str(c, buf);
}

static int has(struct net_conn *c, const char *needle)
{
	size_t len;
	const char *w = fakenet_written(c, &len);

	return strstr(w, needle) != NULL;
}

/* Assert c was sent needle; consume everything written so far. */
static void expect(struct net_conn *c, const char *needle)
{
	size_t len;
	const char *w = fakenet_written(c, &len);

	ck_assert_msg(strstr(w, needle) != NULL, "expected %s in: %s", needle, w);
	fakenet_take(c, len);
}

/* Value of attribute attr in the first <elem ...> written to c, or "". */
static const char *attr(struct net_conn *c, const char *elem, const char *attr_name)
{
	static char val[512];
	char pat[64], apat[64];
	size_t len;
	const char *w = fakenet_written(c, &len), *e, *a, *q;

	val[0] = '\0';
	snprintf(pat, sizeof(pat), "<%s ", elem);
	snprintf(apat, sizeof(apat), " %s='", attr_name);
	if ((e = strstr(w, pat)) == NULL || (a = strstr(e, apat)) == NULL ||
	    (q = strchr(a + strlen(apat), '\'')) == NULL)
		return val;
	a += strlen(apat);
	snprintf(val, sizeof(val), "%.*s", (int)(q - a), a);
	return val;
}

/* Text content of the first <elem ...>...</elem> written to c. */
static const char *text(struct net_conn *c, const char *elem)
{
	static char val[512];
	char pat[64], end[64];
	size_t len;
	const char *w = fakenet_written(c, &len), *e, *gt, *close;

	val[0] = '\0';
	snprintf(pat, sizeof(pat), "<%s ", elem);
	snprintf(end, sizeof(end), "</%s>", elem);
	if ((e = strstr(w, pat)) == NULL || (gt = strchr(e, '>')) == NULL ||
	    (close = strstr(gt, end)) == NULL)
		return val;
	snprintf(val, sizeof(val), "%.*s", (int)(close - gt - 1), gt + 1);
	return val;
}

/* Outbound connections the relay ever opened to host (closed ones too);
 * *last gets the newest. */
static size_t out_to(const char *host, struct net_conn **last)
{
	size_t n = 0;

	*last = NULL;
	for (size_t i = 0; i < fakenet_count(); i++) {
		struct net_conn *c = fakenet_nth(i);

		if (fakenet_is_outbound(c) && strcmp(fakenet_host(c), host) == 0) {
			n++;
			*last = c;
		}
	}
	return n;
}

/* An inbound stream from -> to, through STARTTLS, up to the features
 * after TLS (dialback offered). */
static struct net_conn *in_open(const char *from, const char *to)
{
	struct net_conn *c;

	s2s_accept(NULL, 0);
	c = fakenet_last();
	ck_assert_ptr_nonnull(c);
	sendf(c, HDR_FMT, from, to, "");
	expect(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>");
	send_str(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	expect(c, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	ck_assert_int_eq(fakenet_tls_pending(c), 1);
	fakenet_tls_done(c, 0);
	sendf(c, HDR_FMT, from, to, "");
	expect(c, "<dialback xmlns='urn:xmpp:features:dialback'>");
	return c;
}

/* The next hop accepts the relay's outbound stream: header, features with
 * dialback (no STARTTLS: the peers are tls = "optional"). */
static void out_accept(struct net_conn *o, const char *me)
{
	ck_assert(fakenet_connect_pending(o));
	fakenet_connected(o, 0);
	ck_assert_str_eq(attr(o, "stream:stream", "to"), me);
	sendf(o, HDR_FMT, me, attr(o, "stream:stream", "from"), " id='peer-stream-1'");
	send_str(o, FEATURES_DB);
}

/* Dialback for from -> to on inbound c; leaf-a answers the relay's
 * db:verify as valid. */
static void in_dialback(struct net_conn *c, const char *from, const char *to)
{
	struct net_conn *o;
	char id[512], key[512];

	sendf(c, "<db:result from='%s' to='%s'>%s</db:result>", from, to, "k3y");
	ck_assert_uint_eq(out_to("10.0.0.1", &o), 1);
	out_accept(o, from);
	ck_assert_msg(has(o, "<db:verify "), "no db:verify");
	snprintf(id, sizeof(id), "%s", attr(o, "db:verify", "id"));
	snprintf(key, sizeof(key), "%s", text(o, "db:verify"));
	ck_assert_str_eq(key, "k3y");
	ck_assert_str_eq(attr(o, "db:verify", "from"), to);
	fakenet_take(o, (size_t)-1);
	sendf(o, "<db:verify from='%s' to='%s' id='%s' type='valid'/>", from, to, id);
	expect(c, "type='valid'");
}

/* The relay's outbound stream o for local -> remote authenticates with
 * dialback: it sends db:result, the next hop says valid. */
static void out_dialback(struct net_conn *o, const char *local, const char *remote)
{
	ck_assert_msg(has(o, "<db:result "), "no db:result");
	ck_assert_str_eq(attr(o, "db:result", "from"), local);
	ck_assert_str_eq(attr(o, "db:result", "to"), remote);
	fakenet_take(o, (size_t)-1);
	sendf(o, "<db:result from='%s' to='%s' type='valid'/>", remote, local);
}

static const char msg1[] = "<message from='alice@a.example/r' to='bob@x.b.example' id='m1' "
			   "type='chat'><body>hello</body></message>";

START_TEST(test_relay_message)
{
	struct net_conn *c = in_open("a.example", "x.b.example"), *o;

	in_dialback(c, "a.example", "x.b.example");
	send_str(c, msg1);
	ck_assert_uint_eq(out_to("10.0.0.2", &o), 1);
	out_accept(o, "x.b.example");
	out_dialback(o, "a.example", "x.b.example");
	expect(o, msg1);
	/* the next stanza goes straight through the same stream */
	send_str(c, "<iq from='alice@a.example/r' to='x.b.example' id='i2' type='get'>"
		    "<ping xmlns='urn:xmpp:ping'/></iq>");
	expect(o, "id='i2'");
	ck_assert_uint_eq(out_to("10.0.0.2", &o), 1);
}
END_TEST

/* The bounce for a stanza from alice@a.example: on the relay's stream
 * toward leaf-a, whatever stream of those carries it. */
static int bounced(const char *id, const char *condition)
{
	char want_id[64], want_cond[128];

	snprintf(want_id, sizeof(want_id), "id='%s'", id);
	snprintf(want_cond, sizeof(want_cond), "<%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>",
		 condition);
	for (size_t i = 0; i < fakenet_count(); i++) {
		struct net_conn *c = fakenet_nth(i);
		size_t len;
		const char *p = fakenet_written(c, &len), *end;

		if (!fakenet_is_outbound(c) || strcmp(fakenet_host(c), "10.0.0.1") != 0)
			continue;
		for (; (p = strstr(p, "<message ")) != NULL; p = end) {
			size_t n;

			if ((end = strstr(p, "</message>")) == NULL)
				break;
			n = (size_t)(end - p);
			if (memmem(p, n, want_id, strlen(want_id)) != NULL &&
			    memmem(p, n, "type='error'", 12) != NULL &&
			    memmem(p, n, want_cond, strlen(want_cond)) != NULL)
				return 1;
		}
	}
	return 0;
}

/* leaf-a's stream for bounces from x.b.example is opened on demand:
 * accept it and authenticate it, so the bounce can be seen. */
static void accept_bounce_stream(void)
{
	struct net_conn *o;

	out_to("10.0.0.1", &o);
	if (o == NULL)
		return;
	if (fakenet_connect_pending(o))
		out_accept(o, "a.example");
	if (has(o, "<db:result "))
		out_dialback(o, "x.b.example", "a.example");
}

START_TEST(test_bounce_connect_refused)
{
	struct net_conn *c = in_open("a.example", "x.b.example"), *o;

	in_dialback(c, "a.example", "x.b.example");
	send_str(c, msg1);
	ck_assert_uint_eq(out_to("10.0.0.2", &o), 1);
	fakenet_connected(o, -ECONNREFUSED);
	accept_bounce_stream();
	ck_assert_msg(bounced("m1", "remote-server-not-found"),
		      "no remote-server-not-found bounce");
	ck_assert_msg(!has(c, "stream:error"), "the inbound stream got a stream error");
}
END_TEST

START_TEST(test_bounce_handshake_timeout)
{
	struct net_conn *c = in_open("a.example", "x.b.example"), *o;

	in_dialback(c, "a.example", "x.b.example");
	send_str(c, msg1);
	ck_assert_uint_eq(out_to("10.0.0.2", &o), 1);
	fakenet_connected(o, 0); /* TCP up, then the next hop says nothing */
	fakenet_advance(4000);
	ck_assert(!bounced("m1", "remote-server-timeout"));
	fakenet_advance(1500);
	accept_bounce_stream();
	ck_assert_msg(bounced("m1", "remote-server-timeout"), "no remote-server-timeout bounce");
}
END_TEST

START_TEST(test_backoff)
{
	struct net_conn *c = in_open("a.example", "x.b.example"), *o;

	in_dialback(c, "a.example", "x.b.example");
	send_str(c, msg1);
	out_to("10.0.0.2", &o);
	fakenet_connected(o, -ECONNREFUSED);
	accept_bounce_stream();
	/* within the backoff: bounced at once, no new connection */
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='m2'/>");
	ck_assert_uint_eq(out_to("10.0.0.2", &o), 1);
	ck_assert_msg(bounced("m2", "remote-server-not-found"), "m2 not bounced during backoff");
	/* after it: tried again */
	fakenet_advance(1001);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='m3'/>");
	ck_assert_uint_eq(out_to("10.0.0.2", &o), 2);
	ck_assert(fakenet_connect_pending(o));
	ck_assert(!bounced("m3", "remote-server-not-found"));
}
END_TEST

/* Without backpressure, a full queue toward a next hop still negotiating
 * bounces the next stanza. */
START_TEST(test_queue_full)
{
	char err[512] = "";
	struct net_conn *c, *o;

	ck_assert_msg(scen_reload(conf_nobp, err, sizeof(err)) == 0, "%s", err);
	c = in_open("a.example", "x.b.example");
	in_dialback(c, "a.example", "x.b.example");
	for (int i = 0; i < 4; i++)
		sendf(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='q%d'/>", i);
	accept_bounce_stream();
	ck_assert_msg(bounced("q3", "resource-constraint"), "4th stanza not bounced");
	ck_assert(!bounced("q2", "resource-constraint"));
	out_to("10.0.0.2", &o);
	out_accept(o, "x.b.example");
	out_dialback(o, "a.example", "x.b.example");
	ck_assert(has(o, "id='q0'") && has(o, "id='q1'") && has(o, "id='q2'") &&
		  !has(o, "id='q3'"));
}
END_TEST

/* With backpressure: when the queue toward a next hop still negotiating
 * is full, the stanza bounces (the queue keeps its bound) and the sender is
 * no longer read until the hop is up and drained. */
START_TEST(test_queue_full_pauses)
{
	struct net_conn *c = in_open("a.example", "x.b.example"), *o;

	in_dialback(c, "a.example", "x.b.example");
	for (int i = 0; i < 3; i++)
		sendf(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='q%d'/>", i);
	ck_assert(!fakenet_paused(c));
	sendf(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='q3'/>");
	ck_assert(fakenet_paused(c));
	accept_bounce_stream();
	ck_assert_msg(bounced("q3", "resource-constraint"), "4th stanza not bounced");
	ck_assert(!bounced("q2", "resource-constraint"));
	out_to("10.0.0.2", &o);
	out_accept(o, "x.b.example");
	out_dialback(o, "a.example", "x.b.example");
	ck_assert(has(o, "id='q0'") && has(o, "id='q1'") && has(o, "id='q2'"));
	ck_assert(fakenet_paused(c)); /* the queue went out: wait for the drain */
	fakenet_set_queued(o, 0);
	ck_assert(!fakenet_paused(c));
}
END_TEST

/* The pause times out while the next hop is still negotiated: the sender
 * reads again and the excess bounces; once the hop is up and drained,
 * pausing works again (the drain is asked for at establishment). */
START_TEST(test_pause_timeout_while_negotiating)
{
	struct net_conn *c = in_open("a.example", "x.b.example"), *o;

	in_dialback(c, "a.example", "x.b.example");
	for (int i = 0; i < 4; i++)
		sendf(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='q%d'/>", i);
	ck_assert(fakenet_paused(c));
	fakenet_advance(5000);
	ck_assert(!fakenet_paused(c));
	sendf(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='q4'/>");
	ck_assert(!fakenet_paused(c)); /* the hop failed to drain in time */
	accept_bounce_stream();
	ck_assert(bounced("q4", "resource-constraint"));
	out_to("10.0.0.2", &o);
	out_accept(o, "x.b.example");
	out_dialback(o, "a.example", "x.b.example");
	fakenet_set_queued(o, 100000);
	sendf(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='q5'/>");
	ck_assert(!fakenet_paused(c)); /* still failed: not drained yet */
	ck_assert(bounced("q5", "resource-constraint"));
	fakenet_set_queued(o, 0); /* drained */
	fakenet_set_queued(o, 100000);
	sendf(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='q6'/>");
	ck_assert(fakenet_paused(c));
	expect(o, "id='q6'");
}
END_TEST

/* An established next hop, and c the inbound stream feeding it. */
static struct net_conn *established(struct net_conn **c)
{
	struct net_conn *o;

	*c = in_open("a.example", "x.b.example");
	in_dialback(*c, "a.example", "x.b.example");
	send_str(*c, msg1);
	out_to("10.0.0.2", &o);
	out_accept(o, "x.b.example");
	out_dialback(o, "a.example", "x.b.example");
	expect(o, msg1);
	return o;
}

/* The policy judges each stanza on the relay path: a refused one comes
 * back as policy-violation carrying nothing of the stanza, never reaches
 * the next hop, and the stream goes on carrying the others. */
START_TEST(test_policy_rejects_on_path)
{
	char err[512] = "";
	struct net_conn *c, *o;
	size_t len;
	const char *w;

	ck_assert_msg(scen_reload(conf_policy, err, sizeof(err)) == 0, "%s", err);
	o = established(&c);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='h1' "
		    "type='headline'><body>secret words</body></message>");
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='n1'/>");
	expect(o, "id='n1'");
	ck_assert(!has(o, "id='h1'"));
	accept_bounce_stream();
	ck_assert_msg(bounced("h1", "policy-violation"), "no policy-violation bounce");
	for (size_t i = 0; i < fakenet_count(); i++) {
		struct net_conn *b = fakenet_nth(i);

		if (!fakenet_is_outbound(b) || strcmp(fakenet_host(b), "10.0.0.1") != 0)
			continue;
		w = fakenet_all_written(b, &len);
		ck_assert_msg(strstr(w, "secret words") == NULL, "the bounce carries the body");
	}
	ck_assert_uint_eq(stats_get(STATS_POLICY_REJECTIONS, "no-headline", NULL), 1);
}
END_TEST

/* Without backpressure, what exceeds the next hop's write bound bounces. */
START_TEST(test_write_backlog)
{
	char err[512] = "";
	struct net_conn *c, *o;

	ck_assert_msg(scen_reload(conf_nobp, err, sizeof(err)) == 0, "%s", err);
	o = established(&c);
	/* the next hop stops reading: the kernel-bound queue is at the limit */
	fakenet_set_queued(o, 100000);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='w1'/>");
	ck_assert(!has(o, "id='w1'"));
	ck_assert(!fakenet_paused(c));
	accept_bounce_stream();
	ck_assert_msg(bounced("w1", "resource-constraint"), "no resource-constraint bounce");
	/* it drains: stanzas flow again on the same stream */
	fakenet_set_queued(o, 0);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='w2'/>");
	expect(o, "id='w2'");
}
END_TEST

/* With backpressure (the default): the stanza goes out, the sender's stream
 * is not read until the next hop drains to half the bound, nothing bounces. */
START_TEST(test_backpressure_pauses_sender)
{
	struct net_conn *c, *o = established(&c);

	fakenet_set_queued(o, 100000);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='w1'/>"
		    "<message from='alice@a.example/r' to='bob@x.b.example' id='w2'/>");
	ck_assert(fakenet_paused(c));
	expect(o, "id='w2'");	      /* the rest of the read goes out too */
	fakenet_set_queued(o, 60000); /* above half the bound: still paused */
	ck_assert(fakenet_paused(c));
	fakenet_set_queued(o, 50000);
	ck_assert(!fakenet_paused(c));
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='w3'/>");
	expect(o, "id='w3'");
	ck_assert(!fakenet_paused(c));
	accept_bounce_stream();
	for (int i = 1; i <= 3; i++) {
		char id[32];

		snprintf(id, sizeof(id), "w%d", i);
		ck_assert_msg(!bounced(id, "resource-constraint"), "%s bounced", id);
	}
	ck_assert_uint_eq(stats_get(STATS_PAUSES, "leaf-b", NULL), 1);
}
END_TEST

/* A next hop that does not drain within limits.backpressure_timeout (5 s):
 * the sender reads again and the excess bounces until the hop drains; the
 * pause never exceeds twice the bound. */
START_TEST(test_backpressure_timeout)
{
	struct net_conn *c, *o = established(&c);

	fakenet_set_queued(o, 100000);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='w1'/>");
	ck_assert(fakenet_paused(c));
	fakenet_advance(4999);
	ck_assert(fakenet_paused(c));
	fakenet_advance(1);
	ck_assert(!fakenet_paused(c));
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='w2'/>");
	ck_assert(!fakenet_paused(c));
	accept_bounce_stream();
	ck_assert_msg(bounced("w2", "resource-constraint"), "w2 not bounced after the pause");
	ck_assert(!bounced("w1", "resource-constraint"));
	/* drained: pausing works again */
	fakenet_set_queued(o, 0);
	fakenet_set_queued(o, 100000);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='w3'/>");
	ck_assert(fakenet_paused(c));
	ck_assert(!bounced("w3", "resource-constraint"));
	/* at twice the bound the stanza is bounced even while paused */
	fakenet_set_queued(o, 200000);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='w4'/>");
	ck_assert_msg(bounced("w4", "resource-constraint"), "w4 over twice the bound not bounced");
	/* the next hop goes away: its paused sender reads again */
	fakenet_error(o, -ECONNRESET);
	ck_assert(!fakenet_paused(c));
}
END_TEST

/* Lines containing needle in the NUL-terminated text. */
static unsigned count_lines(const char *text, const char *needle)
{
	unsigned n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* Under overload every refused stanza is bounced, but the log carries at
 * most 100 queue-full lines a second and then one line with the count of
 * the rest (the lines had cost more than the stanzas). */
START_TEST(test_overload_log_capped)
{
	char path[256], *text;
	struct net_conn *c, *o;
	int fd, saved;
	long len;
	FILE *f;
	char err[512] = "";

	/* the bounce path: what happens without backpressure (or past it) */
	ck_assert_msg(scen_reload(conf_nobp, err, sizeof(err)) == 0, "%s", err);
	snprintf(path, sizeof(path), "%s/stderr", scen_dir());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	saved = dup(2);
	ck_assert_int_ge(saved, 0);
	dup2(fd, 2);
	log_set_level("info");

	c = in_open("a.example", "x.b.example");
	in_dialback(c, "a.example", "x.b.example");
	out_to("10.0.0.2", &o); /* never answers: the queue (3) fills */
	for (int i = 0; i < 250; i++) {
		sendf(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='o%d'/>", i);
		if (i == 3) /* the first bounce opened the way back */
			accept_bounce_stream();
	}
	fakenet_advance(1000);
	sendf(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='o250'/>");
	fakenet_pump();

	dup2(saved, 2);
	close(saved);
	unlink(path); /* the scenario's directory is removed by name */
	f = fdopen(fd, "r");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)len + 1);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(fread(text, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	/* 247 refused in the first second: 100 lines, then 147 counted; the
	 * 248th, a second later, is logged again */
	ck_assert_uint_eq(count_lines(text, "event=queue-full"), 101);
	ck_assert_msg(count_lines(text, "event=log-suppressed what=queue-full lines=147 ") == 1,
		      "%.300s", strstr(text, "event=log-suppressed") ?: "no event=log-suppressed");
	free(text);
	/* and every one of them was bounced, none only logged */
	for (int i = 3; i <= 250; i++) {
		char id[16];

		snprintf(id, sizeof(id), "o%d", i);
		ck_assert_msg(bounced(id, "resource-constraint"), "%s not bounced", id);
	}
	ck_assert(!bounced("o0", "resource-constraint"));
}
END_TEST

START_TEST(test_error_not_bounced)
{
	struct net_conn *c = in_open("a.example", "x.b.example"), *o;

	in_dialback(c, "a.example", "x.b.example");
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='e1' type='error'>"
		    "<error type='cancel'><item-not-found "
		    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
	send_str(c, "<iq from='alice@a.example/r' to='x.b.example' id='e2' type='result'/>");
	out_to("10.0.0.2", &o);
	fakenet_connected(o, -ECONNREFUSED);
	accept_bounce_stream();
	out_to("10.0.0.1", &o);
	ck_assert_msg(!has(o, "id='e1'") && !has(o, "id='e2'"), "an error or result was bounced");
	/* not silently: the metrics count both */
	ck_assert_uint_eq(stats_get(STATS_DROPPED, "error-not-bounced", NULL), 2);
}
END_TEST

START_TEST(test_invalid_from)
{
	struct net_conn *c = in_open("a.example", "x.b.example");

	in_dialback(c, "a.example", "x.b.example");
	send_str(c, "<message from='mallory@\xd0\xb0.example' to='bob@x.b.example' id='s1'/>");
	expect(c, "<invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
	ck_assert(fakenet_closing(c));
}
END_TEST

START_TEST(test_reload_keeps_streams)
{
	struct net_conn *c = in_open("a.example", "x.b.example"), *o;
	char err[512] = "";

	in_dialback(c, "a.example", "x.b.example");
	send_str(c, msg1);
	out_to("10.0.0.2", &o);
	out_accept(o, "x.b.example");
	out_dialback(o, "a.example", "x.b.example");
	expect(o, msg1);
	ck_assert_msg(scen_reload(conf_more, err, sizeof(err)) == 0, "%s", err);
	/* the inbound stream keeps working; the routing is the new one */
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='r1'/>");
	ck_assert(!fakenet_closing(c));
	ck_assert(!has(c, "stream:error"));
	ck_assert(fakenet_alive(o) && !fakenet_closing(o));
}
END_TEST

START_TEST(test_drain_delivers_queue)
{
	struct net_conn *c = in_open("a.example", "x.b.example"), *o;

	in_dialback(c, "a.example", "x.b.example");
	send_str(c, msg1);
	out_to("10.0.0.2", &o);
	s2s_drain();
	ck_assert(fakenet_closing(c)); /* inbound closed at once */
	ck_assert_uint_gt(s2s_pending(), 0);
	out_accept(o, "x.b.example");
	out_dialback(o, "a.example", "x.b.example");
	expect(o, msg1);
	ck_assert_uint_eq(s2s_pending(), 0);
}
END_TEST

/* At shutdown, stanzas still waiting for a next hop are bounced over the
 * streams that are up, not dropped. */
START_TEST(test_shutdown_bounces_queue)
{
	struct net_conn *c = in_open("a.example", "x.b.example"), *o;

	in_dialback(c, "a.example", "x.b.example");
	send_str(c, msg1); /* refused: brings up the bounce stream to leaf-a */
	out_to("10.0.0.2", &o);
	fakenet_connected(o, -ECONNREFUSED);
	accept_bounce_stream();
	ck_assert(bounced("m1", "remote-server-not-found"));
	fakenet_advance(1001);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='sd1'/>");
	ck_assert_uint_eq(out_to("10.0.0.2", &o), 2);
	ck_assert(fakenet_connect_pending(o));
	s2s_shutdown();
	ck_assert_msg(bounced("sd1", "remote-server-timeout"), "queued stanza not bounced");
}
END_TEST

START_TEST(test_peer_stream_error_not_answered)
{
	struct net_conn *c = in_open("a.example", "x.b.example");

	send_str(c, "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
		    "</stream:error>");
	ck_assert(fakenet_closing(c));
	ck_assert(!has(c, "stream:error"));
}
END_TEST

/* ---- several addresses, trunk peers, keepalive */

static const char conf_trunk[] = CONF_COMMON CONF_TLS
    "limits = { connect_timeout = 2; handshake_timeout = 5; idle_timeout = 300;\n"
    "           keepalive = 60; failback = 10; max_hops = 4; };\n"
    "peers = ( { name = \"leaf-a\"; host = \"10.0.0.1\"; tls = \"optional\"; trunk = true; },\n"
    "          { name = \"leaf-b\"; tls = \"optional\"; trunk = true;\n"
    "            addresses = ( { host = \"10.0.0.3\"; priority = 2; },\n"
    "                          { host = \"10.0.0.2\"; priority = 1; } ); } );\n"
    "routes = ( { domain = \"*.a.example\"; peer = \"leaf-a\"; },\n"
    "           { domain = \"*.b.example\"; peer = \"leaf-b\"; } );\n";

static void setup_trunk(void)
{
	setup_with(conf_trunk);
}

/* an authenticated inbound stream a.example -> x.b.example (leaf-a, a
 * trunk peer, answers the relay's db:verify) */
static struct net_conn *trunk_in(void)
{
	struct net_conn *c = in_open("a.example", "x.b.example");

	in_dialback(c, "a.example", "x.b.example");
	return c;
}

/* The preferred address is refused: the queued stanza moves to the next
 * address, nothing is bounced; later traffic falls back to the preferred
 * address once it answers again, and the fallback stream closes. */
START_TEST(test_failover_and_failback)
{
	struct net_conn *c = trunk_in(), *o, *o2;

	send_str(c, msg1);
	ck_assert_uint_eq(out_to("10.0.0.2", &o), 1); /* priority 1 first */
	ck_assert_uint_eq(out_to("10.0.0.3", &o2), 0);
	fakenet_connected(o, -ECONNREFUSED);
	ck_assert_uint_eq(out_to("10.0.0.3", &o2), 1);
	accept_bounce_stream();
	ck_assert(!bounced("m1", "remote-server-not-found"));
	out_accept(o2, "x.b.example");
	out_dialback(o2, "a.example", "x.b.example");
	expect(o2, "<hop xmlns='urn:xtrunk:0' n='1'/>");
	/* before the failback interval: stays on the fallback address */
	fakenet_advance(5000);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='f1'/>");
	expect(o2, "id='f1'");
	ck_assert_uint_eq(out_to("10.0.0.2", &o), 1);
	/* after it: the preferred address is tried; the stanza waits there */
	fakenet_advance(6000);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='f2'/>");
	ck_assert_uint_eq(out_to("10.0.0.2", &o), 2);
	ck_assert(!has(o2, "id='f2'"));
	out_accept(o, "x.b.example");
	out_dialback(o, "a.example", "x.b.example");
	expect(o, "id='f2'");
	ck_assert_msg(fakenet_closing(o2), "the fallback stream stays open");
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='f3'/>");
	expect(o, "id='f3'");
}
END_TEST

/* Every address refused: bounced once, with the backoff of the soonest. */
START_TEST(test_all_addresses_refused)
{
	struct net_conn *c = trunk_in(), *o;

	send_str(c, msg1);
	out_to("10.0.0.2", &o);
	fakenet_connected(o, -ECONNREFUSED);
	out_to("10.0.0.3", &o);
	fakenet_connected(o, -ECONNREFUSED);
	accept_bounce_stream();
	ck_assert(bounced("m1", "remote-server-not-found"));
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='r2'/>");
	ck_assert_uint_eq(out_to("10.0.0.2", &o) + out_to("10.0.0.3", &o), 2);
	ck_assert(bounced("r2", "remote-server-not-found"));
}
END_TEST

/* Toward trunk peers each stanza carries the relays it crossed; past
 * limits.max_hops it is bounced once, never forwarded. */
START_TEST(test_hop_limit)
{
	struct net_conn *c = trunk_in(), *o;

	send_str(c, "<hop xmlns='urn:xtrunk:0' n='2'/>");
	send_str(c, msg1);
	out_to("10.0.0.2", &o);
	out_accept(o, "x.b.example");
	out_dialback(o, "a.example", "x.b.example");
	expect(o, "<hop xmlns='urn:xtrunk:0' n='3'/><message");
	/* the hint counted for one stanza only */
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='h0'/>");
	expect(o, "<hop xmlns='urn:xtrunk:0' n='1'/><message");
	send_str(c, "<hop xmlns='urn:xtrunk:0' n='4'/>");
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='loop1'/>");
	ck_assert(!has(o, "loop1"));
	accept_bounce_stream();
	ck_assert_msg(bounced("loop1", "remote-server-not-found"), "no bounce at the hop limit");
	/* an error at the hop limit is dropped, not answered */
	send_str(c, "<hop xmlns='urn:xtrunk:0' n='4'/>");
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='loop2' "
		    "type='error'/>");
	ck_assert(!has(o, "loop2"));
	out_to("10.0.0.1", &o);
	ck_assert(!has(o, "loop2"));
	ck_assert(!fakenet_closing(c));
}
END_TEST

START_TEST(test_hop_garbage)
{
	struct net_conn *c = trunk_in();

	send_str(c, "<hop xmlns='urn:xtrunk:0' n='-1'/>");
	expect(c, "<not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
}
END_TEST

/* A destination that routes to the peer the sender lies behind. */
START_TEST(test_route_to_ingress)
{
	struct net_conn *c = in_open("a.example", "other.a.example"), *o;

	in_dialback(c, "a.example", "other.a.example");
	send_str(c, "<message from='alice@a.example/r' to='bob@other.a.example' id='in1'/>");
	/* the bounce goes to a.example over the verify stream (other.a.example
	 * -> a.example); the stanza itself goes nowhere */
	out_to("10.0.0.1", &o);
	if (has(o, "<db:result "))
		out_dialback(o, "other.a.example", "a.example");
	ck_assert_msg(bounced("in1", "remote-server-not-found"), "no bounce for a hairpin");
	ck_assert_uint_eq(out_to("10.0.0.1", &o), 1);
	ck_assert_uint_eq(out_to("10.0.0.2", &o) + out_to("10.0.0.3", &o), 0);
}
END_TEST

/* Whitespace keepalives on a quiet stream; closed at the idle timeout. */
START_TEST(test_keepalive_then_idle)
{
	struct net_conn *c = trunk_in(), *o;

	send_str(c, msg1);
	out_to("10.0.0.2", &o);
	out_accept(o, "x.b.example");
	out_dialback(o, "a.example", "x.b.example");
	expect(o, "id='m1'");
	fakenet_advance(60000);
	expect(o, " ");
	ck_assert(!fakenet_closing(o));
	fakenet_advance(60000);
	expect(o, " ");
	fakenet_advance(200000);
	ck_assert_msg(fakenet_closing(o), "not closed after idle_timeout");
}
END_TEST

/* Each stanza is activity: the keepalive comes one period after the last
 * one on the stream, not after the first (the timer is re-armed lazily). */
START_TEST(test_keepalive_after_last_stanza)
{
	struct net_conn *c = trunk_in(), *o;
	size_t len;

	send_str(c, msg1);
	out_to("10.0.0.2", &o);
	out_accept(o, "x.b.example");
	out_dialback(o, "a.example", "x.b.example");
	expect(o, "id='m1'");
	fakenet_advance(40000);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='m2'/>");
	expect(o, "id='m2'");
	fakenet_advance(30000); /* 70 s after m1, 30 s after m2 */
	fakenet_written(o, &len);
	ck_assert_msg(len == 0, "keepalive 60 s after the first stanza, not the last");
	ck_assert(!fakenet_closing(o));
	fakenet_advance(30000); /* 60 s after m2 */
	expect(o, " ");
	fakenet_advance(300000);
	ck_assert_msg(fakenet_closing(o), "not closed after idle_timeout");
}
END_TEST

/* ---- trunk links between relays (XEP-0288, pairs answered from config) */

static const char conf_link[] =
    CONF_COMMON "relay_name = \"relay.example\";\n"
		"tls = { certificate = \"@DIR@/relay.pem\"; key = \"@DIR@/relay.key\";\n"
		"        trust = \"@DIR@/ca.pem\"; };\n"
		"limits = { connect_timeout = 2; handshake_timeout = 5; };\n"
		"peers = ( { name = \"leaf-a\"; host = \"10.0.0.1\"; tls = \"optional\"; },\n"
		"          { name = \"relay-b\"; host = \"10.0.0.9\"; trunk = true;\n"
		"            identity = \"relay-b.example\"; } );\n"
		"routes = ( { domain = \"*.a.example\"; peer = \"leaf-a\"; },\n"
		"           { domain = \"*.b.example\"; peer = \"relay-b\"; } );\n";

#define SASL_FEATURES                                                                              \
	"<stream:features><bidi xmlns='urn:xmpp:features:bidi'/><mechanisms "                      \
	"xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>"    \
	"</stream:features>"

static void setup_link(void)
{
	setup_with(conf_link);
}

/* conf_link with two addresses for relay-b */
static const char conf_link2[] =
    CONF_COMMON "relay_name = \"relay.example\";\n"
		"tls = { certificate = \"@DIR@/relay.pem\"; key = \"@DIR@/relay.key\";\n"
		"        trust = \"@DIR@/ca.pem\"; };\n"
		"limits = { connect_timeout = 2; handshake_timeout = 5; };\n"
		"peers = ( { name = \"leaf-a\"; host = \"10.0.0.1\"; tls = \"optional\"; },\n"
		"          { name = \"relay-b\"; trunk = true; identity = \"relay-b.example\";\n"
		"            addresses = ( { host = \"10.0.0.9\"; priority = 1; },\n"
		"                          { host = \"10.0.0.8\"; priority = 2; } ); } );\n"
		"routes = ( { domain = \"*.a.example\"; peer = \"leaf-a\"; },\n"
		"           { domain = \"*.b.example\"; peer = \"relay-b\"; } );\n";

/* Play relay-b accepting the relay's outbound trunk link on o, up to the
 * point where the link is up. */
static void link_accept(struct net_conn *o)
{
	fakenet_connected(o, 0);
	ck_assert_str_eq(attr(o, "stream:stream", "from"), "relay.example");
	ck_assert_str_eq(attr(o, "stream:stream", "to"), "relay-b.example");
	fakenet_take(o, (size_t)-1);
	sendf(o, HDR_FMT, "relay-b.example", "relay.example", " id='rb1'");
	send_str(o, "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
		    "<required/></starttls></stream:features>");
	expect(o, "<starttls");
	send_str(o, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	ck_assert_int_eq(fakenet_tls_pending(o), 2);
	fakenet_set_peer_cert(o, 1, 0 /* IDENT_OK */);
	fakenet_tls_done(o, 0);
	expect(o, "<stream:stream");
	sendf(o, HDR_FMT, "relay-b.example", "relay.example", " id='rb2'");
	send_str(o, SASL_FEATURES);
	ck_assert_msg(has(o, "<bidi xmlns='urn:xmpp:bidi'/>"), "no bidi request");
	/* base64("relay.example") */
	expect(o, "mechanism='EXTERNAL'>cmVsYXkuZXhhbXBsZQ==</auth>");
	send_str(o, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
	expect(o, "<stream:stream");
	sendf(o, HDR_FMT, "relay-b.example", "relay.example", " id='rb3'");
	send_str(o, "<stream:features/>");
}

/* The link asks for the pair; relay-b accepts it. */
static void link_pair_ok(struct net_conn *o, const char *from, const char *to)
{
	char want[256];

	snprintf(want, sizeof(want), "<db:result from='%s' to='%s'>", from, to);
	ck_assert_msg(has(o, want), "pair %s -> %s not asked", from, to);
	sendf(o, "<db:result from='%s' to='%s' type='valid'/>", to, from);
}

/* a.example -> x.b.example comes in and sends msg1: the relay opens its
 * one trunk link to relay-b (10.0.0.9), which accepts it. Returns the
 * link; *in gets the inbound stream. */
static struct net_conn *link_with_msg1(struct net_conn **in)
{
	struct net_conn *o;

	*in = in_open("a.example", "x.b.example");
	in_dialback(*in, "a.example", "x.b.example");
	send_str(*in, msg1);
	ck_assert_uint_eq(out_to("10.0.0.9", &o), 1);
	link_accept(o);
	return o;
}

/* The preferred address of a trunk peer refuses: the link is brought up
 * on the next address, as a link (SASL EXTERNAL, bidi, pairs asked), and
 * what waited is delivered over it; later traffic falls back to the
 * preferred address. */
START_TEST(test_link_failover_and_failback)
{
	char err[512] = "", id[512];
	struct net_conn *c, *c2, *o, *o2, *v;

	ck_assert_msg(scen_reload(conf_link2, err, sizeof(err)) == 0, "%s", err);
	c = in_open("a.example", "x.b.example");
	in_dialback(c, "a.example", "x.b.example");
	send_str(c, msg1);
	ck_assert_uint_eq(out_to("10.0.0.9", &o), 1);
	fakenet_connected(o, -ECONNREFUSED);
	ck_assert_uint_eq(out_to("10.0.0.8", &o2), 1);
	link_accept(o2);
	link_pair_ok(o2, "a.example", "x.b.example");
	expect(o2, "<hop xmlns='urn:xtrunk:0' n='1'/>"
		   "<message from='alice@a.example/r'");
	accept_bounce_stream();
	ck_assert(!bounced("m1", "remote-server-not-found"));
	/* a second pair asked on the fallback link, not answered yet */
	c2 = in_open("a.example", "y.b.example");
	sendf(c2, "<db:result from='a.example' to='y.b.example'>k3y</db:result>");
	out_to("10.0.0.1", &v); /* the verify stream y -> a */
	out_accept(v, "a.example");
	snprintf(id, sizeof(id), "%s", attr(v, "db:verify", "id"));
	sendf(v, "<db:verify from='a.example' to='y.b.example' id='%s' type='valid'/>", id);
	expect(c2, "type='valid'");
	send_str(c2, "<message from='alice@a.example/r' to='bob@y.b.example' id='y1'/>");
	ck_assert(has(o2, "<db:result from='a.example' to='y.b.example'>"));
	/* limits.failback (30 s) later the preferred address is tried again,
	 * as a link; once it is up the fallback link closes and what waited on
	 * it is asked for and sent on the new one */
	fakenet_advance(31000);
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='fb1'/>");
	ck_assert_uint_eq(out_to("10.0.0.9", &o), 2);
	ck_assert(!has(o2, "id='fb1'"));
	link_accept(o);
	ck_assert(fakenet_closing(o2));
	link_pair_ok(o, "a.example", "x.b.example");
	link_pair_ok(o, "a.example", "y.b.example");
	ck_assert_msg(has(o, "id='fb1'") && has(o, "id='y1'"),
		      "fb1 or y1 not sent on the new link");
	ck_assert(!bounced("y1", "remote-server-timeout"));
}
END_TEST

/* The link is closed with a stream error (the peer answered a pair without
 * from/to) while a stanza waits for that pair: the stanza comes back to its
 * sender, it is not freed with the stream. */
START_TEST(test_link_error_bounces_waiting)
{
	struct net_conn *c, *o = link_with_msg1(&c);

	ck_assert(has(o, "<db:result from='a.example' to='x.b.example'>"));
	send_str(o, "<db:result type='valid'/>");
	ck_assert(has(o, "<improper-addressing"));
	ck_assert(fakenet_closing(o));
	fakenet_pump();
	accept_bounce_stream();
	ck_assert_msg(bounced("m1", "remote-server-timeout"), "m1 lost with the link");
}
END_TEST

/* Two domain pairs over one connection to relay-b, each announced once. */
START_TEST(test_link_multiplexes_pairs)
{
	struct net_conn *c, *o = link_with_msg1(&c);

	link_pair_ok(o, "a.example", "x.b.example");
	expect(o, "<hop xmlns='urn:xtrunk:0' n='1'/>"
		  "<message from='alice@a.example/r'");
	/* a second stanza of the pair goes straight through */
	send_str(c, "<message from='alice@a.example/r' to='bob@x.b.example' id='p2'/>");
	ck_assert(!has(o, "<db:result"));
	expect(o, "id='p2'");
	/* a second pair: announced on the same link */
	c = in_open("a.example", "y.b.example");
	{
		struct net_conn *v;
		char id[512];

		sendf(c, "<db:result from='a.example' to='y.b.example'>k3y</db:result>");
		ck_assert_uint_eq(out_to("10.0.0.1", &v), 2); /* verify stream y -> a */
		out_accept(v, "a.example");
		snprintf(id, sizeof(id), "%s", attr(v, "db:verify", "id"));
		sendf(v, "<db:verify from='a.example' to='y.b.example' id='%s' type='valid'/>", id);
		expect(c, "type='valid'");
	}
	send_str(c, "<message from='alice@a.example/r' to='bob@y.b.example' id='p3'/>");
	link_pair_ok(o, "a.example", "y.b.example");
	expect(o, "id='p3'");
	ck_assert_uint_eq(out_to("10.0.0.9", &o), 1);
}
END_TEST

/* relay-b sends over the relay's own link (bidi); pairs it asks for are
 * answered from the routes: the sender must lie behind relay-b. */
START_TEST(test_link_bidi_receive)
{
	struct net_conn *c, *o = link_with_msg1(&c), *l;

	link_pair_ok(o, "a.example", "x.b.example");
	fakenet_take(o, (size_t)-1);
	send_str(o, "<db:result from='z.b.example' to='a.example'>any</db:result>");
	expect(o, "<db:result from='a.example' to='z.b.example' type='valid'/>");
	send_str(o, "<db:result from='evil.example' to='a.example'>any</db:result>");
	expect(o, "<db:result from='a.example' to='evil.example' type='invalid'/>");
	send_str(o, "<hop xmlns='urn:xtrunk:0' n='1'/><message from='zed@z.b.example/r' "
		    "to='alice@a.example' id='back1'><body>hi a</body></message>");
	/* toward leaf-a: a stream per pair, no hop element */
	ck_assert_uint_eq(out_to("10.0.0.1", &l), 2);
	out_accept(l, "a.example");
	out_dialback(l, "z.b.example", "a.example");
	expect(l, "<message from='zed@z.b.example/r' to='alice@a.example' id='back1'>");
	ck_assert(!has(l, "urn:xtrunk:0"));
	/* a pair it was not granted is a stream error */
	send_str(o, "<message from='mallory@evil.example' to='alice@a.example' id='back2'/>");
	expect(o, "<invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
}
END_TEST

/* relay-b opens the link: the relay takes it as its own link to relay-b
 * (bidi), no connection of its own. */
/* relay-b connects to the relay: its link, with bidi, up to the restart
 * after SASL. */
static struct net_conn *link_inbound(void)
{
	struct net_conn *t;

	s2s_accept(NULL, 0);
	t = fakenet_last();
	sendf(t, HDR_FMT, "relay-b.example", "relay.example", "");
	expect(t, "<bidi xmlns='urn:xmpp:features:bidi'/>");
	send_str(t, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	expect(t, "<proceed");
	fakenet_set_peer_cert(t, 1, 0 /* IDENT_OK */);
	fakenet_tls_done(t, 0);
	sendf(t, HDR_FMT, "relay-b.example", "relay.example", "");
	expect(t, "<mechanism>EXTERNAL</mechanism>");
	send_str(t, "<bidi xmlns='urn:xmpp:bidi'/>");
	send_str(t, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>"
		    "cmVsYXktYi5leGFtcGxl</auth>"); /* relay-b.example */
	expect(t, "<success");
	sendf(t, HDR_FMT, "relay-b.example", "relay.example", "");
	ck_assert(has(t, "<stream:features>"));
	return t;
}

START_TEST(test_link_inbound_bidi)
{
	struct net_conn *c, *t = link_inbound(), *o;

	/* a leaf of ours sends toward relay-b's domains: over relay-b's link */
	c = in_open("a.example", "x.b.example");
	in_dialback(c, "a.example", "x.b.example");
	send_str(c, msg1);
	ck_assert_uint_eq(out_to("10.0.0.9", &o), 0);
	link_pair_ok(t, "a.example", "x.b.example");
	expect(t, "<hop xmlns='urn:xtrunk:0' n='1'/><message");
	/* and relay-b sends its own pairs on it */
	send_str(t, "<db:result from='z.b.example' to='a.example'>any</db:result>");
	expect(t, "type='valid'");
}
END_TEST

/* Both relays open a link at once: the one whose relay_name sorts later
 * ("relay.example" > "relay-b.example": us) yields; what waited on our
 * link moves to relay-b's, ours closes, nothing is bounced. */
START_TEST(test_link_yield)
{
	struct net_conn *c = in_open("a.example", "x.b.example"), *o, *t;

	in_dialback(c, "a.example", "x.b.example");
	send_str(c, msg1);
	ck_assert_uint_eq(out_to("10.0.0.9", &o), 1);
	t = link_inbound();
	ck_assert_msg(fakenet_closing(o), "our own link stays open");
	link_pair_ok(t, "a.example", "x.b.example");
	expect(t, "id='m1'");
	accept_bounce_stream();
	ck_assert(!bounced("m1", "remote-server-timeout"));
	ck_assert(!bounced("m1", "remote-server-not-found"));
}
END_TEST

/* A pair relay-b refuses: what waited for it is bounced, once. */
START_TEST(test_link_pair_refused)
{
	struct net_conn *c, *o = link_with_msg1(&c);

	ck_assert(has(o, "<db:result from='a.example' to='x.b.example'>"));
	send_str(o, "<db:result from='x.b.example' to='a.example' type='invalid'/>");
	accept_bounce_stream();
	ck_assert_msg(bounced("m1", "remote-server-timeout"), "refused pair not bounced");
	ck_assert(!has(o, "id='m1'"));
}
END_TEST

static Suite *s2s_suite(void)
{
	Suite *s = suite_create("s2s");
	TCase *tc = tcase_create("scenarios");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_relay_message);
	tcase_add_test(tc, test_bounce_connect_refused);
	tcase_add_test(tc, test_bounce_handshake_timeout);
	tcase_add_test(tc, test_backoff);
	tcase_add_test(tc, test_queue_full);
	tcase_add_test(tc, test_queue_full_pauses);
	tcase_add_test(tc, test_pause_timeout_while_negotiating);
	tcase_add_test(tc, test_write_backlog);
	tcase_add_test(tc, test_policy_rejects_on_path);
	tcase_add_test(tc, test_backpressure_pauses_sender);
	tcase_add_test(tc, test_backpressure_timeout);
	tcase_add_test(tc, test_overload_log_capped);
	tcase_add_test(tc, test_error_not_bounced);
	tcase_add_test(tc, test_invalid_from);
	tcase_add_test(tc, test_reload_keeps_streams);
	tcase_add_test(tc, test_drain_delivers_queue);
	tcase_add_test(tc, test_shutdown_bounces_queue);
	tcase_add_test(tc, test_peer_stream_error_not_answered);
	suite_add_tcase(s, tc);
	tc = tcase_create("trunk");
	tcase_add_checked_fixture(tc, setup_trunk, teardown);
	tcase_add_test(tc, test_failover_and_failback);
	tcase_add_test(tc, test_all_addresses_refused);
	tcase_add_test(tc, test_hop_limit);
	tcase_add_test(tc, test_hop_garbage);
	tcase_add_test(tc, test_route_to_ingress);
	tcase_add_test(tc, test_keepalive_then_idle);
	tcase_add_test(tc, test_keepalive_after_last_stanza);
	suite_add_tcase(s, tc);
	tc = tcase_create("link");
	tcase_add_checked_fixture(tc, setup_link, teardown);
	tcase_add_test(tc, test_link_multiplexes_pairs);
	tcase_add_test(tc, test_link_failover_and_failback);
	tcase_add_test(tc, test_link_error_bounces_waiting);
	tcase_add_test(tc, test_link_bidi_receive);
	tcase_add_test(tc, test_link_inbound_bidi);
	tcase_add_test(tc, test_link_pair_refused);
	tcase_add_test(tc, test_link_yield);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(s2s_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
