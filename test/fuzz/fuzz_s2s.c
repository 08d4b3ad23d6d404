/* fuzz_s2s: libFuzzer target for the stream negotiation state machines.
 * The whole relay (relay/s2s*.c and everything below it) runs on the fake
 * network (test/fakenet); the input is a script of network events:
 *
 *   op % 10  0 accept an inbound connection (next byte: direct TLS)
 *            1 raw bytes to a connection (index, length, bytes)
 *            2 a canned protocol element to a connection (index, which)
 *            3 an outbound connect completes (index, ok or refused)
 *            4 a TLS handshake completes (index, ok or failed)
 *            5 a connection is reset by the peer (index)
 *            6 time passes (byte * 100 ms; timers fire)
 *            7 a well-behaved answer to what the relay last asked on an
 *              outbound connection (header+features, db:result valid,
 *              db:verify valid/invalid with the right id)
 *            8 SIGTERM drain
 *            9 backpressure on a connection (queued bytes big or none)
 *
 * so that coverage gets past the handshakes as well as into garbage at
 * every step. Checked after every input, beyond "no crash, no leak":
 *   - everything the relay wrote on every connection is a well-formed
 *     XMPP stream (each stream header starts a new one);
 *   - no message, presence or iq is ever written to an inbound connection
 *     (a stanza never goes back where it came from; bounces travel on
 *     outbound streams like any stanza);
 *   - after shutdown every connection has been closed (no stream leaks).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakenet.h"
#include "identity.h"
#include "log.h"
#include "s2s.h"
#include "scenario.h"
#include "xmlstream.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CONNS 24

static const char conf[] =
    "listen = ( { address = \"127.0.0.1\"; port = 5269; } );\n"
    "relay_name = \"relay.example\";\n"
    "dialback_secret = \"0123456789abcdef0123456789abcdef\";\n"
    "tls = { certificate = \"@DIR@/relay.pem\"; key = \"@DIR@/relay.key\";\n"
    "        inbound = \"optional\"; trust = \"@DIR@/ca.pem\"; };\n"
    "limits = { connect_timeout = 2; handshake_timeout = 5; idle_timeout = 20; keepalive = 3;\n"
    "           failback = 2; max_hops = 8;\n"
    "           queue_max_stanzas = 4; queue_max_bytes = 70000; max_stanza_size = 65536;\n"
    "           connections_per_address = 6; };\n"
    "peers = ( { name = \"leaf-a\"; host = \"10.0.0.1\"; tls = \"optional\"; trunk = true; },\n"
    "          { name = \"leaf-b\"; tls = \"required\"; trunk = true;\n"
    "            addresses = ( { host = \"10.0.0.2\"; priority = 1; },\n"
    "                          { host = \"10.0.0.4\"; priority = 2; } ); },\n"
    "          { name = \"relay-d\"; host = \"10.0.0.5\"; trunk = true;\n"
    "            identity = \"relay-d.example\"; },\n"
    "          { name = \"leaf-c\"; host = \"10.0.0.3\"; tls = \"optional\";\n"
    "            auth = \"certificate\"; } );\n"
    "routes = ( { domain = \"*.a.example\"; peer = \"leaf-a\"; },\n"
    "           { domain = \"*.b.example\"; peer = \"leaf-b\"; },\n"
    "           { domain = \"c.example\"; peer = \"leaf-c\"; },\n"
    "           { domain = \"*.d.example\"; peer = \"relay-d\"; } );\n";

#define HDR(from, to)                                                                              \
	"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "                               \
	"xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "       \
	"from='" from "' to='" to "' version='1.0'>"

static const char *const canned[] = {
    HDR("a.example", "x.b.example"),
    HDR("c.example", "a.example"),
    HDR("x.b.example", "a.example"),
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='a.example'>",
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    "<db:result from='a.example' to='x.b.example'>k3y</db:result>",
    "<db:result from='c.example' to='a.example'>k3y</db:result>",
    "<db:verify from='a.example' to='x.b.example' id='abc'>k3y</db:verify>",
    "<message from='alice@a.example/r' to='bob@x.b.example' id='m1'><body>hi</body></message>",
    "<iq from='alice@a.example/r' to='x.b.example' id='i1' type='get'><q xmlns='x'/></iq>",
    "<presence from='alice@a.example/r' to='bob@x.b.example'/>",
    "<message from='bob@x.b.example/r' to='alice@a.example' id='m2' type='error'>"
    "<error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    "<message from='mallory@evil.example' to='bob@x.b.example' id='m3'/>",
    "<message from='alice@c.example' to='carol@a.example' id='m4'/>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>",
    "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
    "</stream:features>",
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL"
    "</mechanism></mechanisms></stream:features>",
    "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>",
    "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    "</stream:stream>",
    " ",
    "<hop xmlns='urn:xtrunk:0' n='3'/>",
    "<hop xmlns='urn:xtrunk:0' n='8'/>",
    "<message from='alice@a.example' to='bob@other.a.example' id='m5'/>",
    HDR("relay-d.example", "relay.example"),
    "<bidi xmlns='urn:xmpp:bidi'/>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>"
    "cmVsYXktZC5leGFtcGxl</auth>",
    "<stream:features><bidi xmlns='urn:xmpp:features:bidi'/><mechanisms "
    "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>"
    "</stream:features>",
    "<db:result from='x.d.example' to='a.example'>k</db:result>",
    "<db:result from='a.example' to='x.d.example' type='valid'/>",
    "<message from='bob@x.d.example' to='alice@a.example' id='m6'/>",
    "<message from='alice@a.example' to='bob@x.d.example' id='m7'/>",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc;
	(void)argv;
	log_init(1, 0);
	log_set_level(getenv("FUZZ_S2S_LOG") != NULL ? "debug" : "err");
	if (scen_setup(conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_s2s: %s\n", err);
		abort();
	}
	atexit((void (*)(void))scen_teardown);
	return 0;
}

struct in {
	const uint8_t *p;
	size_t n;
};

static int next(struct in *in)
{
	if (in->n == 0)
		return -1;
	in->n--;
	return *in->p++;
}

static struct net_conn *pick(struct in *in)
{
	size_t n = fakenet_count();
	int b = next(in);

	if (n == 0 || b < 0)
		return NULL;
	return fakenet_nth((size_t)b % n);
}

/* Copy into buf the value of attr in the last <elem ...> of w, or "". */
static void last_attr(const char *w, const char *elem, const char *attr, char *buf, size_t len)
{
	char pat[32], apat[32];
	const char *e = NULL, *p = w, *a, *q, *gt;

	buf[0] = '\0';
	snprintf(pat, sizeof(pat), "<%s ", elem);
	snprintf(apat, sizeof(apat), " %s='", attr);
	while ((p = strstr(p, pat)) != NULL)
		e = p++;
	if (e == NULL || (gt = strchr(e, '>')) == NULL || (a = strstr(e, apat)) == NULL || a > gt ||
	    (q = strchr(a + strlen(apat), '\'')) == NULL)
		return;
	a += strlen(apat);
	snprintf(buf, len, "%.*s", (int)(q - a), a);
}

/* Op 7: what a correct next hop would say now. */
static void answer(struct net_conn *c, int valid)
{
	char buf[2048], from[300], to[300], id[300];
	size_t len;
	const char *w = fakenet_written(c, &len);

	if (!fakenet_is_outbound(c) || len == 0)
		return;
	if (strstr(w, "<db:verify ") != NULL) {
		last_attr(w, "db:verify", "from", from, sizeof(from));
		last_attr(w, "db:verify", "to", to, sizeof(to));
		last_attr(w, "db:verify", "id", id, sizeof(id));
		snprintf(buf, sizeof(buf), "<db:verify from='%s' to='%s' id='%s' type='%s'/>", to,
			 from, id, valid ? "valid" : "invalid");
	} else if (strstr(w, "<db:result ") != NULL) {
		last_attr(w, "db:result", "from", from, sizeof(from));
		last_attr(w, "db:result", "to", to, sizeof(to));
		snprintf(buf, sizeof(buf), "<db:result from='%s' to='%s' type='%s'/>", to, from,
			 valid ? "valid" : "invalid");
	} else if (strstr(w, "<starttls") != NULL) {
		snprintf(buf, sizeof(buf), "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	} else if (strstr(w, "<stream:stream ") != NULL) {
		last_attr(w, "stream:stream", "from", from, sizeof(from));
		last_attr(w, "stream:stream", "to", to, sizeof(to));
		snprintf(buf, sizeof(buf),
			 "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
			 "xmlns:stream='http://etherx.jabber.org/streams' "
			 "xmlns:db='jabber:server:dialback' id='peer1' from='%s' to='%s' "
			 "version='1.0'><stream:features>%s<dialback "
			 "xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
			 "</stream:features>",
			 to, from,
			 fakenet_tls_active(c)
			     ? ""
			     : "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	} else {
		return;
	}
	fakenet_take(c, len);
	fakenet_data(c, buf, strlen(buf));
}

/* ---- checks on what the relay wrote */

struct check {
	int error;
	int stanza; /* a message, presence or iq was delivered */
	char detail[128];
};

static void ck_header(void *ctx, const struct xs_header *h)
{
	(void)ctx;
	(void)h;
}

static void ck_stanza(void *ctx, const struct xs_stanza *s)
{
	struct check *k = ctx;

	if (strcmp(s->name, "message") == 0 || strcmp(s->name, "presence") == 0 ||
	    strcmp(s->name, "iq") == 0)
		k->stanza = 1;
}

static void ck_close(void *ctx)
{
	(void)ctx;
}

static void ck_error(void *ctx, enum xs_error err, const char *detail)
{
	struct check *k = ctx;

	k->error = (int)err;
	snprintf(k->detail, sizeof(k->detail), "%s", detail != NULL ? detail : "");
}

static const struct xs_callbacks ck_cb = {ck_header, ck_stanza, ck_close, ck_error};

/* One stream the relay wrote, from one header to the next. */
static void check_segment(const char *p, size_t n, int inbound, const char *all)
{
	struct check k = {0};
	struct xs_limits lim = {1 << 20, 200, 200, 1 << 16, 1 << 20};
	struct xs *xs = xs_new(&ck_cb, &k, &lim);

	if (xs == NULL)
		return;
	xs_feed(xs, p, n);
	xs_free(xs);
	if (k.error != 0) {
		fprintf(stderr, "fuzz_s2s: the relay wrote a malformed stream (%s: %s):\n%s\n",
			xs_error_condition((enum xs_error)k.error), k.detail, all);
		abort();
	}
	if (inbound && k.stanza) {
		fprintf(stderr, "fuzz_s2s: a stanza was written to an inbound connection:\n%s\n",
			all);
		abort();
	}
}

static void check_written(void)
{
	for (size_t i = 0; i < fakenet_count(); i++) {
		struct net_conn *c = fakenet_nth(i);
		size_t len;
		const char *all = fakenet_all_written(c, &len), *p = all, *q;

		while (p < all + len) {
			q = strstr(p + 1, "<?xml ");
			if (q == NULL)
				q = all + len;
			check_segment(p, (size_t)(q - p), !fakenet_is_outbound(c), all);
			p = q;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	struct net_conn *c;
	int op, b, drained = 0;

	while ((op = next(&in)) >= 0) {
		switch (op % 10) {
		case 0:
			b = next(&in);
			if (fakenet_count() < MAX_CONNS)
				s2s_accept(NULL, b >= 0 && (b & 1));
			fakenet_pump();
			break;
		case 1:
			c = pick(&in);
			b = next(&in);
			if (c != NULL && b >= 0) {
				size_t n = (size_t)b < in.n ? (size_t)b : in.n;

				fakenet_data(c, (const char *)in.p, n);
				in.p += n;
				in.n -= n;
			}
			break;
		case 2:
			c = pick(&in);
			b = next(&in);
			if (c != NULL && b >= 0) {
				const char *s =
				    canned[(size_t)b % (sizeof(canned) / sizeof(*canned))];

				fakenet_data(c, s, strlen(s));
			}
			break;
		case 3:
			c = pick(&in);
			b = next(&in);
			if (c != NULL)
				fakenet_connected(c, b >= 0 && (b & 1) ? -ECONNREFUSED : 0);
			break;
		case 4:
			c = pick(&in);
			b = next(&in);
			if (c != NULL) {
				if (b >= 0 && (b & 2))
					fakenet_set_peer_cert(
					    c, 1, (b & 4) ? IDENT_OK : IDENT_NAME_MISMATCH);
				fakenet_tls_done(c, b >= 0 && (b & 1) ? -EPROTO : 0);
			}
			break;
		case 5:
			c = pick(&in);
			if (c != NULL)
				fakenet_error(c, -ECONNRESET);
			break;
		case 6:
			b = next(&in);
			fakenet_advance(b >= 0 ? (uint64_t)b * 100 : 1000);
			break;
		case 7:
			c = pick(&in);
			b = next(&in);
			if (c != NULL)
				answer(c, b < 0 || (b & 1) == 0);
			break;
		case 8:
			if (!drained) {
				drained = 1;
				s2s_drain();
				fakenet_pump();
			}
			break;
		case 9:
			c = pick(&in);
			b = next(&in);
			if (c != NULL)
				fakenet_set_queued(c, b >= 0 && (b & 1) ? 1 << 20 : 0);
			break;
		}
	}
	check_written();
	if (scen_restart() != 0) {
		fprintf(stderr, "fuzz_s2s: connections left open after s2s_shutdown\n");
		abort();
	}
	return 0;
}
