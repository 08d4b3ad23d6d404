/* test_xmlstream: framing, splicing and refusals of the XML stream framer.
 * Table-driven; every input is fed all at once, one byte at a time and at
 * 50 random split points per case, and each feeding must produce the same
 * event log (header values, each element's exact bytes, name, namespace,
 * values and children, close, error condition). Every delivered element
 * is also re-parsed under the canonical outbound header and must be framed
 * to the same bytes and mean the same there. The exact bytes also check
 * libxml2's xmlByteConsumed() offsets for "</x>", "</x >" and "/>" ends,
 * and across its 4 KB input shrinking (test_memory_bounded). */
#include "xmlstream.h"

#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/xmlmemory.h>

/* ---- counting allocator: xmlstream allocates through xmlMalloc -------- */

static size_t live_bytes;

#define MEM_HDR 16

static void *count_malloc(size_t n)
{
	unsigned char *p = malloc(n + MEM_HDR);

	if (p == NULL)
		return NULL;
	memcpy(p, &n, sizeof(n));
	live_bytes += n;
	return p + MEM_HDR;
}

static void count_free(void *q)
{
	unsigned char *p = q;
	size_t n;

	if (p == NULL)
		return;
	p -= MEM_HDR;
	memcpy(&n, p, sizeof(n));
	live_bytes -= n;
	free(p);
}

static void *count_realloc(void *q, size_t n)
{
	unsigned char *p = q, *np;
	size_t old;

	if (p == NULL)
		return count_malloc(n);
	p -= MEM_HDR;
	memcpy(&old, p, sizeof(old));
	np = realloc(p, n + MEM_HDR);
	if (np == NULL)
		return NULL;
	live_bytes = live_bytes - old + n;
	memcpy(np, &n, sizeof(n));
	return np + MEM_HDR;
}

static char *count_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = count_malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

/* ---- event recorder ------------------------------------------------------ */

struct saved {
	char *bytes;
	size_t len;
	char *text; /* the stanza's log entry */
};

struct rec {
	char *log;
	size_t len, cap;
	struct xs *xs;
	const char *stop_on; /* xs_stop() after a stanza with this name */
	int stopped, failed;
	int free_on_stanza;
	struct saved *saved;
	size_t nsaved;
};

static void rec_add(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rec_add(struct rec *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	if (r->len + (size_t)n + 1 > r->cap) {
		r->cap = (r->len + (size_t)n + 1) * 2;
		r->log = realloc(r->log, r->cap);
		ck_assert_ptr_nonnull(r->log);
	}
	va_start(ap, fmt);
	vsnprintf(r->log + r->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	r->len += (size_t)n;
}

static const char *nz(const char *s)
{
	return s ? s : "-";
}

static void on_header(void *ctx, const struct xs_header *h)
{
	struct rec *r = ctx;

	rec_add(r, "H to=%s from=%s id=%s version=%s lang=%s db=%d\n", nz(h->to), nz(h->from),
		nz(h->id), nz(h->version), nz(h->lang), h->has_dialback_ns);
}

/* A child's byte range holds exactly that element: it starts with '<' and
 * its (possibly prefixed) name, ends with '>', and lies inside its parent's
 * range (the previous recorded element one level up). */
static void check_child_range(const struct xs_stanza *s, size_t i)
{
	const struct xs_child *c = &s->children[i];
	const char *p = s->bytes + c->start + 1, *colon;
	size_t nl = strlen(c->name);

	ck_assert_uint_lt(c->start, c->end);
	ck_assert_uint_le(c->end, s->len);
	ck_assert_int_eq(s->bytes[c->start], '<');
	ck_assert_int_eq(s->bytes[c->end - 1], '>');
	colon = memchr(p, ':', (size_t)(s->bytes + c->end - p));
	if (colon != NULL && colon < p + strcspn(p, " \t\r\n/>"))
		p = colon + 1;
	ck_assert_msg(strncmp(p, c->name, nl) == 0 && strchr(" \t\r\n/>", p[nl]) != NULL,
		      "child %zu range does not start with its name", i);
	for (size_t j = i; j-- > 0;)
		if (s->children[j].depth + 1 == c->depth) {
			ck_assert_uint_gt(c->start, s->children[j].start);
			ck_assert_uint_lt(c->end, s->children[j].end);
			break;
		}
	ck_assert(c->depth == 2 || i > 0);
}

static void on_stanza(void *ctx, const struct xs_stanza *s)
{
	struct rec *r = ctx;
	size_t start = r->len, i;
	struct saved *sv;

	ck_assert_uint_gt(s->len, 0);
	rec_add(r, "S %s {%s} to=%s from=%s type=%s id=%s\n  [%.*s]\n", s->name, s->ns, nz(s->to),
		nz(s->from), nz(s->type), nz(s->id), (int)s->len, s->bytes);
	ck_assert_uint_le(s->nchildren, XS_MAX_CHILDREN * (1 + XS_MAX_DESCENDANTS));
	ck_assert_uint_le(s->nattrs, XS_MAX_STANZA_ATTRS);
	for (i = 0; i < s->nchildren; i++) {
		const struct xs_child *c = &s->children[i];

		check_child_range(s, i);
		rec_add(r, "  C%u %s {%s} '%s'", c->depth, c->name, c->ns, c->text);
		for (size_t a = 0; a < c->nattrs; a++)
			rec_add(r, " @%s%s%s=%s", c->attrs[a].ns, c->attrs[a].ns[0] ? ":" : "",
				c->attrs[a].name, c->attrs[a].value);
		rec_add(r, "%s\n", c->partial ? " partial" : "");
	}

	r->saved = realloc(r->saved, (r->nsaved + 1) * sizeof(*r->saved));
	ck_assert_ptr_nonnull(r->saved);
	sv = &r->saved[r->nsaved++];
	sv->bytes = malloc(s->len);
	memcpy(sv->bytes, s->bytes, s->len);
	sv->len = s->len;
	sv->text = strndup(r->log + start, r->len - start);

	if (r->stop_on && strcmp(s->name, r->stop_on) == 0) {
		xs_stop(r->xs);
		r->stopped = 1;
	}
	if (r->free_on_stanza) {
		xs_free(r->xs); /* deferred until xs_feed returns */
		r->xs = NULL;
	}
}

static void on_close(void *ctx)
{
	rec_add(ctx, "C\n");
}

static void on_error(void *ctx, enum xs_error err, const char *detail)
{
	struct rec *r = ctx;

	ck_assert_ptr_nonnull(detail);
	rec_add(r, "E %s\n", xs_error_condition(err));
	r->failed = 1;
}

static const struct xs_callbacks cbs = {on_header, on_stanza, on_close, on_error};

static void rec_done(struct rec *r)
{
	size_t i;

	for (i = 0; i < r->nsaved; i++) {
		free(r->saved[i].bytes);
		free(r->saved[i].text);
	}
	free(r->saved);
	free(r->log);
	memset(r, 0, sizeof(*r));
}

/* ---- feeding ------------------------------------------------------------- */

enum feed_mode { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void feed(struct rec *r, const char *data, size_t len, enum feed_mode mode, uint32_t *seed)
{
	size_t off = 0;
	size_t span = 1 + rnd(seed) % 40; /* small and large pieces, per run */

	while (off < len) {
		size_t n = len - off;
		int want = r->failed ? -EPROTO : 0, rc;
		size_t before = r->len;

		if (mode == FEED_BYTES)
			n = 1;
		else if (mode == FEED_RANDOM)
			n = 1 + rnd(seed) % (rnd(seed) % 4 == 0 ? 512 : span);
		if (n > len - off)
			n = len - off;
		rc = xs_feed(r->xs, data + off, n);
		if (want == -EPROTO)
			ck_assert_uint_eq(r->len, before); /* no callbacks after an error */
		if (r->failed)
			want = -EPROTO;
		ck_assert_int_eq(rc, want);
		off += n;
	}
}

struct feed_case {
	const char *name;
	const char *parts[3]; /* fed in turn, with xs_reset() between */
	const char *want;     /* the event log of any feeding */
	size_t max_size;
	unsigned max_depth;
	const char *stop_on;
};

static void run_case(const struct feed_case *c, enum feed_mode mode, uint32_t seed, struct rec *r)
{
	struct xs_limits lim = {c->max_size, c->max_depth, 0, 0, 0};
	int p;

	memset(r, 0, sizeof(*r));
	r->stop_on = c->stop_on;
	r->xs = xs_new(&cbs, r, &lim);
	ck_assert_ptr_nonnull(r->xs);
	for (p = 0; p < 3 && c->parts[p]; p++) {
		if (p > 0) {
			ck_assert_int_eq(xs_reset(r->xs), 0);
			rec_add(r, "R\n");
			r->stopped = r->failed = 0;
		}
		feed(r, c->parts[p], strlen(c->parts[p]), mode, &seed);
		if (r->stopped)
			rec_add(r, "T %zu\n", xs_trailing(r->xs));
	}
	if (r->failed) {
		size_t before = r->len;

		ck_assert_int_eq(xs_feed(r->xs, "<presence/>", 11), -EPROTO);
		ck_assert_uint_eq(r->len, before);
	}
	xs_free(r->xs);
}

#define CANON                                                                                      \
	"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "    \
	"xmlns:db='jabber:server:dialback'"

/* Under the canonical outbound header, a delivered element must be framed
 * to the same bytes and mean the same: names, namespaces, values. */
static void check_reparse(const struct saved *sv)
{
	static const char hdr[] = CANON ">";
	struct rec r2;
	char *want;

	memset(&r2, 0, sizeof(r2));
	r2.xs = xs_new(&cbs, &r2, NULL);
	ck_assert_ptr_nonnull(r2.xs);
	ck_assert_int_eq(xs_feed(r2.xs, hdr, strlen(hdr)), 0);
	ck_assert_int_eq(xs_feed(r2.xs, sv->bytes, sv->len), 0);
	xs_free(r2.xs);
	ck_assert_int_ge(asprintf(&want, "H to=- from=- id=- version=- lang=- db=1\n%s", sv->text),
			 0);
	ck_assert_str_eq(r2.log ? r2.log : "", want);
	free(want);
	rec_done(&r2);
}

/* ---- the table ------------------------------------------------------------ */

#define HDR CANON " to='b.example' from='a.example' version='1.0'>"
#define H_EV "H to=b.example from=a.example id=- version=1.0 lang=- db=1\n"
#define SHORT_HDR                                                                                  \
	"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"
#define H_SHORT "H to=- from=- id=- version=- lang=- db=0\n"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"

#define S(name, ns, to, from, type, id, bytes)                                                     \
	"S " name " {" ns "} to=" to " from=" from " type=" type " id=" id "\n  [" bytes "]\n"
#define C2(name, ns, text) "  C2 " name " {" ns "} '" text "'\n"
#define C3(name, ns, text) "  C3 " name " {" ns "} '" text "'\n"
#define C4(name, ns, text) "  C4 " name " {" ns "} '" text "'\n"
#define E(cond) "E " cond "\n"

#define PRES1 "<presence from='a@a.example/r' to='b@b.example'/>"
#define MSG1 "<message type='chat' id='m1'><body>hi</body></message>"
#define IQ1                                                                                        \
	"<iq type='get' id='i1' to='b.example' from='a.example'><ping "                            \
	"xmlns='urn:xmpp:ping'/></iq>"
#define ENT                                                                                        \
	"<message to='b@b.example' from='a@a.example/x&amp;y' "                                    \
	"id='&lt;&#x41;&#65;&gt;&apos;&quot;&#38;amp;' type='chat'>"                               \
	"<body> a &amp; b &lt; c &#x41;\n</body>"                                                  \
	"<html xmlns='http://jabber.org/protocol/xhtml-im'>"                                       \
	"<body xmlns='http://www.w3.org/1999/xhtml'><p>hi</p> x </body></html></message>"
#define GT "<message id='a>b' type='x&gt;y'><body>1 > 0 &amp;&amp; 'q' \"Q\"</body></message>"
#define UTF "<message><body>h\xC3\xA9llo \xE2\x82\xAC\xF0\x9D\x84\x9E</body></message>"
#define CDATA "<message><body><![CDATA[<b>&amp;</b>]]></body></message>"
#define FEAT                                                                                       \
	"<stream:features><starttls xmlns='" NS_TLS "'><required/></starttls>"                     \
	"<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>"
#define FEAT_EV                                                                                    \
	S("features", "http://etherx.jabber.org/streams", "-", "-", "-", "-", FEAT)                \
	C2("starttls", NS_TLS, "")                                                                 \
	C3("required", NS_TLS, "")                                                                 \
	C2("dialback", "urn:xmpp:features:dialback", "")                                           \
	C3("errors", "urn:xmpp:features:dialback", "")
#define DBR "<db:result from='a.example' to='b.example'>abc123</db:result>"
#define DBV "<db:verify from='b.example' to='a.example' id='s1'>key</db:verify>"
#define DBF "<foo:result xmlns:foo='jabber:server:dialback' from='a.example' to='b.example'/>"
#define PROCEED "<proceed xmlns='" NS_TLS "'/>"
#define INJECT "<message to='b@b.example'>x</message>" /* 37 bytes */

#define A10 "aaaaaaaaaa"
#define A160 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10
#define BIG200 "<message><body>" A160 "aaaaaaaa</body></message>" /* 200 bytes */
#define BIG201 "<message><body>" A160 "aaaaaaaaa</body></message>"

static const struct feed_case cases[] = {
    {"prosody header",
     {"<?xml version='1.0'?><stream:stream xmlns:db='jabber:server:dialback' "
      "xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:server' "
      "to='b.example' from='a.example' version='1.0' id='abc&amp;d'>"},
     "H to=b.example from=a.example id=abc&d version=1.0 lang=- db=1\n",
     0,
     0,
     NULL},
    {"keepalives between stanzas",
     {HDR "\n" PRES1 " \n \r\n" MSG1 "  \t" IQ1 " \r\n "},
     H_EV S("presence", "jabber:server", "b@b.example", "a@a.example/r", "-", "-", PRES1)
	 S("message", "jabber:server", "-", "-", "chat", "m1", MSG1)
	     C2("body", "jabber:server", "hi") S("iq", "jabber:server", "b.example", "a.example",
						 "get", "i1", IQ1) C2("ping", "urn:xmpp:ping", ""),
     0,
     0,
     NULL},
    {"entities in attributes and text",
     {HDR ENT},
     H_EV S("message", "jabber:server", "b@b.example", "a@a.example/x&y", "chat", "<AA>'\"&amp;",
	    ENT) C2("body", "jabber:server", "a & b < c A")
	 C2("html", "http://jabber.org/protocol/xhtml-im", "")
	     C3("body", "http://www.w3.org/1999/xhtml", "x")
		 C4("p", "http://www.w3.org/1999/xhtml", "hi"),
     0,
     0,
     NULL},
    {"> in values and text",
     {HDR GT},
     H_EV S("message", "jabber:server", "-", "-", "x>y", "a>b", GT)
	 C2("body", "jabber:server", "1 > 0 && 'q' \"Q\""),
     0,
     0,
     NULL},
    {"multi-byte text",
     {HDR UTF},
     H_EV S("message", "jabber:server", "-", "-", "-", "-", UTF)
	 C2("body", "jabber:server", "h\xC3\xA9llo \xE2\x82\xAC\xF0\x9D\x84\x9E"),
     0,
     0,
     NULL},
    {"CDATA in a stanza",
     {HDR CDATA},
     H_EV S("message", "jabber:server", "-", "-", "-", "-", CDATA)
	 C2("body", "jabber:server", "<b>&amp;</b>"),
     0,
     0,
     NULL},
    {"blanks before the end of tags",
     {HDR "<message ><body >x</body ></message\n>"},
     H_EV S("message", "jabber:server", "-", "-", "-", "-",
	    "<message ><body >x</body ></message\n>") C2("body", "jabber:server", "x"),
     0,
     0,
     NULL},
    {"quotes and > inside values",
     {HDR "<message id=\"it's > 1\" type='say \">\"'><body>'\"</body></message>"},
     H_EV S("message", "jabber:server", "-", "-", "say \">\"", "it's > 1",
	    "<message id=\"it's > 1\" type='say \">\"'><body>'\"</body></message>")
	 C2("body", "jabber:server", "'\""),
     0,
     0,
     NULL},
    {"empty presence",
     {HDR "<presence/><presence type='unavailable' />"},
     H_EV S("presence", "jabber:server", "-", "-", "-", "-", "<presence/>")
	 S("presence", "jabber:server", "-", "-", "unavailable", "-",
	   "<presence type='unavailable' />"),
     0,
     0,
     NULL},
    {"dialback with db: prefix",
     {HDR DBR DBV},
     H_EV S("result", "jabber:server:dialback", "b.example", "a.example", "-", "-", DBR)
	 S("verify", "jabber:server:dialback", "a.example", "b.example", "-", "s1", DBV),
     0,
     0,
     NULL},
    {"dialback with another prefix",
     {HDR DBF},
     H_EV S("result", "jabber:server:dialback", "b.example", "a.example", "-", "-", DBF),
     0,
     0,
     NULL},
    {"stream features", {HDR FEAT}, H_EV FEAT_EV, 0, 0, NULL},
    {"close tag",
     {HDR "<presence/>\n</stream:stream><presence/>"},
     H_EV S("presence", "jabber:server", "-", "-", "-", "-", "<presence/>") "C\n",
     0,
     0,
     NULL},
    {"self-closed header",
     {CANON " to='b.example' from='a.example' version='1.0'/>"},
     H_EV "C\n",
     0,
     0,
     NULL},
    {"peer stream error",
     {HDR "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
	  "</stream:error></stream:stream>"},
     H_EV S("error", "http://etherx.jabber.org/streams", "-", "-", "-", "-",
	    "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
	    "</stream:error>")
	 C2("not-well-formed", "urn:ietf:params:xml:ns:xmpp-streams", "") "C\n",
     0,
     0,
     NULL},
    {"stream restart",
     {HDR FEAT "<starttls xmlns='" NS_TLS "'/>", "<?xml version='1.0'?>" HDR "<presence/>"},
     H_EV FEAT_EV S("starttls", NS_TLS, "-", "-", "-", "-",
		    "<starttls xmlns='" NS_TLS "'/>") "R\n" H_EV S("presence", "jabber:server", "-",
								   "-", "-", "-", "<presence/>"),
     0,
     0,
     NULL},
    {"proceed then injected bytes",
     {HDR PROCEED INJECT},
     H_EV S("proceed", NS_TLS, "-", "-", "-", "-", PROCEED) "T 37\n",
     0,
     0,
     "proceed"},
    {"proceed alone",
     {HDR PROCEED},
     H_EV S("proceed", NS_TLS, "-", "-", "-", "-", PROCEED) "T 0\n",
     0,
     0,
     "proceed"},
    {"proceed, restart",
     {HDR PROCEED, HDR "<presence/>"},
     H_EV S("proceed", NS_TLS, "-", "-", "-", "-", PROCEED) "T 0\nR\n" H_EV S(
	 "presence", "jabber:server", "-", "-", "-", "-", "<presence/>"),
     0,
     0,
     "proceed"},

    /* splice */
    {"splice: header prefix used in a stanza",
     {CANON " xmlns:foo='urn:foo' to='b.example'><message to='x'><foo:x/></message>"},
     "H to=b.example from=- id=- version=- lang=- db=1\n" S(
	 "message", "jabber:server", "x", "-", "-", "-",
	 "<message xmlns:foo='urn:foo' to='x'><foo:x/></message>") C2("x", "urn:foo", ""),
     0,
     0,
     NULL},
    {"splice: header xml:lang",
     {CANON " xml:lang='en'><message to='x'><body>hi</body></message>"
	    "<presence xml:lang='fr'/><presence/>"},
     "H to=- from=- id=- version=- lang=en db=1\n" S(
	 "message", "jabber:server", "x", "-", "-", "-",
	 "<message xml:lang='en' to='x'><body>hi</body></message>")
	 C2("body", "jabber:server", "hi")
	     S("presence", "jabber:server", "-", "-", "-", "-", "<presence xml:lang='fr'/>")
		 S("presence", "jabber:server", "-", "-", "-", "-", "<presence xml:lang='en'/>"),
     0,
     0,
     NULL},
    {"splice: the stanza declares the prefix itself",
     {CANON " xmlns:foo='urn:foo' xml:lang='en'>"
	    "<message xmlns:foo='urn:other'><foo:x/></message>"},
     "H to=- from=- id=- version=- lang=en db=1\n" S(
	 "message", "jabber:server", "-", "-", "-", "-",
	 "<message xml:lang='en' xmlns:foo='urn:other'><foo:x/></message>")
	 C2("x", "urn:other", ""),
     0,
     0,
     NULL},
    {"splice: another prefix for the streams namespace",
     {"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:server'>"
      "<s:features><x xmlns='urn:x'/></s:features>"},
     "H to=- from=- id=- version=- lang=- db=0\n" S(
	 "features", "http://etherx.jabber.org/streams", "-", "-", "-", "-",
	 "<s:features xmlns:s='http://etherx.jabber.org/streams'><x xmlns='urn:x'/></s:features>")
	 C2("x", "urn:x", ""),
     0,
     0,
     NULL},
    {"splice: db bound to another namespace",
     {"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
      "xmlns:db='urn:other'><db:x/>"},
     "H to=- from=- id=- version=- lang=- db=0\n" S("x", "urn:other", "-", "-", "-", "-",
						    "<db:x xmlns:db='urn:other'/>"),
     0,
     0,
     NULL},
    {"splice: no default namespace",
     {"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><message/>"},
     "H to=- from=- id=- version=- lang=- db=0\n" S("message", "", "-", "-", "-", "-",
						    "<message xmlns=''/>"),
     0,
     0,
     NULL},
    {"splice: values are escaped",
     {CANON " xmlns:foo='urn:a&amp;b' xml:lang=\"e'n\"><foo:x/>"},
     "H to=- from=- id=- version=- lang=e'n db=1\n" S(
	 "x", "urn:a&#38;b", "-", "-", "-", "-",
	 "<foo:x xmlns:foo='urn:a&amp;b' xml:lang='e&apos;n'/>"),
     0,
     0,
     NULL},

    /* restricted XML */
    {"comment between stanzas",
     {HDR "<presence/><!-- hi -->"},
     H_EV S("presence", "jabber:server", "-", "-", "-", "-", "<presence/>") E("restricted-xml"),
     0,
     0,
     NULL},
    {"comment in a stanza",
     {HDR "<message><!--x--></message>"},
     H_EV E("restricted-xml"),
     0,
     0,
     NULL},
    {"comment in the prolog",
     {"<?xml version='1.0'?><!-- c -->" HDR},
     E("restricted-xml"),
     0,
     0,
     NULL},
    {"comment holding a CR", {"<!-->\r!-->" HDR}, E("restricted-xml"), 0, 0, NULL},
    {"PI that looks like a declaration",
     {"<?xml-stylesheet href='a'?>" HDR},
     E("restricted-xml"),
     0,
     0,
     NULL},
    {"declaration not at the start",
     {" <?xml version='1.0'?>" HDR},
     E("restricted-xml"),
     0,
     0,
     NULL},
    {"half a comment", {HDR "<!-x-->"}, H_EV E("not-well-formed"), 0, 0, NULL},
    {"PI between stanzas", {HDR "<?foo bar?><presence/>"}, H_EV E("restricted-xml"), 0, 0, NULL},
    {"PI in the prolog", {"<?foo bar?>" HDR}, E("restricted-xml"), 0, 0, NULL},
    {"DOCTYPE",
     {"<?xml version='1.0'?><!DOCTYPE stream:stream>" HDR},
     E("restricted-xml"),
     0,
     0,
     NULL},
    {"entity declaration",
     {"<!DOCTYPE s [<!ENTITY e 'boom'>]>" HDR "<message>&e;</message>"},
     E("restricted-xml"),
     0,
     0,
     NULL},
    {"undefined entity in text",
     {HDR "<message><body>&foo;</body></message>"},
     H_EV E("restricted-xml"),
     0,
     0,
     NULL},
    {"undefined entity in a value",
     {HDR "<message id='&foo;'/>"},
     H_EV E("restricted-xml"),
     0,
     0,
     NULL},

    /* not well-formed */
    {"unbound element prefix",
     {HDR "<message><bar:x/></message>"},
     H_EV E("not-well-formed"),
     0,
     0,
     NULL},
    {"unbound attribute prefix",
     {HDR "<message bar:x='1'/>"},
     H_EV E("not-well-formed"),
     0,
     0,
     NULL},
    {"unbound stanza prefix", {HDR "<bar:message/>"}, H_EV E("not-well-formed"), 0, 0, NULL},
    {"overlong UTF-8",
     {HDR "<message><body>\xC0\x80</body></message>"},
     H_EV E("not-well-formed"),
     0,
     0,
     NULL},
    {"UTF-8 surrogate",
     {HDR "<message><body>\xED\xA0\x80</body></message>"},
     H_EV E("not-well-formed"),
     0,
     0,
     NULL},
    {"lone 0xFF",
     {HDR "<message><body>\xFF</body></message>"},
     H_EV E("not-well-formed"),
     0,
     0,
     NULL},
    {"bad UTF-8 in a value", {HDR "<message id='a\xFF'/>"}, H_EV E("not-well-formed"), 0, 0, NULL},
    {"bad UTF-8 in a name", {HDR "<mess\xC3(age/>"}, H_EV E("not-well-formed"), 0, 0, NULL},
    {"text between stanzas",
     {HDR "<presence/>hello<presence/>"},
     H_EV S("presence", "jabber:server", "-", "-", "-", "-", "<presence/>") E("not-well-formed"),
     0,
     0,
     NULL},
    {"character reference between stanzas",
     {HDR "&#32;<presence/>"},
     H_EV E("not-well-formed"),
     0,
     0,
     NULL},
    {"CDATA between stanzas",
     {HDR "<![CDATA[ ]]><presence/>"},
     H_EV E("not-well-formed"),
     0,
     0,
     NULL},
    {"mismatched end tag", {HDR "<message></iq>"}, H_EV E("not-well-formed"), 0, 0, NULL},
    {"empty prefix binding",
     {HDR "<message xmlns:foo=''/>"},
     H_EV E("not-well-formed"),
     0,
     0,
     NULL},
    {"duplicate attribute",
     {HDR "<message id='1' id='2'/>"},
     H_EV E("not-well-formed"),
     0,
     0,
     NULL},
    {"< in a value", {HDR "<message id='<'/><presence/>"}, H_EV E("not-well-formed"), 0, 0, NULL},
    {"junk before the header", {"hello" HDR}, E("not-well-formed"), 0, 0, NULL},

    /* encodings */
    {"BOM", {"\xEF\xBB\xBF<?xml version='1.0'?>" HDR}, E("unsupported-encoding"), 0, 0, NULL},
    {"ISO-8859-1",
     {"<?xml version='1.0' encoding='ISO-8859-1'?>" HDR},
     E("unsupported-encoding"),
     0,
     0,
     NULL},
    {"utf-8 in lower case", {"<?xml version=\"1.0\" encoding=\"utf-8\"?>" HDR}, H_EV, 0, 0, NULL},

    /* namespaces */
    {"header in another namespace",
     {"<stream:stream xmlns='jabber:server' xmlns:stream='http://example.com/streams'>"},
     E("invalid-namespace"),
     0,
     0,
     NULL},
    {"header with another name",
     {"<stream:foo xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"},
     E("invalid-namespace"),
     0,
     0,
     NULL},
    {"default namespace jabber:client",
     {"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"},
     E("invalid-namespace"),
     0,
     0,
     NULL},

    /* limits */
    {"too many header declarations",
     {CANON " xmlns:p0='urn:p' xmlns:p1='urn:p' xmlns:p2='urn:p' xmlns:p3='urn:p' xmlns:p4='urn:p' "
	    "xmlns:p5='urn:p' xmlns:p6='urn:p' xmlns:p7='urn:p' xmlns:p8='urn:p' xmlns:p9='urn:p' "
	    "xmlns:p10='urn:p' xmlns:p11='urn:p' xmlns:p12='urn:p' xmlns:p13='urn:p' "
	    "xmlns:p14='urn:p' xmlns:p15='urn:p' xmlns:p16='urn:p'>"},
     E("policy-violation"),
     0,
     0,
     NULL},

    {"stanza of exactly max_stanza_size",
     {SHORT_HDR "\n  " BIG200 " "},
     H_SHORT S("message", "jabber:server", "-", "-", "-", "-", BIG200)
	 C2("body", "jabber:server", A160 "aaaaaaaa"),
     200,
     0,
     NULL},
    {"stanza above max_stanza_size",
     {SHORT_HDR "<presence/>" BIG201},
     H_SHORT S("presence", "jabber:server", "-", "-", "-", "-", "<presence/>")
	 E("policy-violation"),
     200,
     0,
     NULL},
    {"header above max_stanza_size", {HDR}, E("policy-violation"), 100, 0, NULL},
    {"depth at max_depth",
     {HDR "<message><a><b/></a></message>"},
     H_EV S("message", "jabber:server", "-", "-", "-", "-", "<message><a><b/></a></message>")
	 C2("a", "jabber:server", "") C3("b", "jabber:server", ""),
     0,
     3,
     NULL},
    {"depth above max_depth",
     {HDR "<message><a><b><c/></b></a></message>"},
     H_EV E("policy-violation"),
     0,
     3,
     NULL},
    {"<![ not followed by CDATA[ (fuzzer: the error depended on the cuts)",
     {HDR "<![ \"x]]><?"},
     H_EV E("not-well-formed"),
     0,
     0,
     NULL},
    {"64 attributes",
     {HDR "<presence a0='x' a1='x' a2='x' a3='x' a4='x' a5='x' a6='x' a7='x' a8='x' a9='x' a10='x' "
	  "a11='x' a12='x' a13='x' a14='x' a15='x' a16='x' a17='x' a18='x' a19='x' a20='x' a21='x' "
	  "a22='x' a23='x' a24='x' a25='x' a26='x' a27='x' a28='x' a29='x' a30='x' a31='x' a32='x' "
	  "a33='x' a34='x' a35='x' a36='x' a37='x' a38='x' a39='x' a40='x' a41='x' a42='x' a43='x' "
	  "a44='x' a45='x' a46='x' a47='x' a48='x' a49='x' a50='x' a51='x' a52='x' a53='x' a54='x' "
	  "a55='x' a56='x' a57='x' a58='x' a59='x' a60='x' a61='x' a62='x' a63='x'/>"},
     H_EV S(
	 "presence", "jabber:server", "-", "-", "-", "-",
	 "<presence a0='x' a1='x' a2='x' a3='x' a4='x' a5='x' a6='x' a7='x' a8='x' a9='x' a10='x' "
	 "a11='x' a12='x' a13='x' a14='x' a15='x' a16='x' a17='x' a18='x' a19='x' a20='x' a21='x' "
	 "a22='x' a23='x' a24='x' a25='x' a26='x' a27='x' a28='x' a29='x' a30='x' a31='x' a32='x' "
	 "a33='x' a34='x' a35='x' a36='x' a37='x' a38='x' a39='x' a40='x' a41='x' a42='x' a43='x' "
	 "a44='x' a45='x' a46='x' a47='x' a48='x' a49='x' a50='x' a51='x' a52='x' a53='x' a54='x' "
	 "a55='x' a56='x' a57='x' a58='x' a59='x' a60='x' a61='x' a62='x' a63='x'/>"),
     0,
     0,
     NULL},
    {"65 attributes (libxml2 compares attributes pairwise)",
     {HDR "<presence a0='x' a1='x' a2='x' a3='x' a4='x' a5='x' a6='x' a7='x' a8='x' a9='x' a10='x' "
	  "a11='x' a12='x' a13='x' a14='x' a15='x' a16='x' a17='x' a18='x' a19='x' a20='x' a21='x' "
	  "a22='x' a23='x' a24='x' a25='x' a26='x' a27='x' a28='x' a29='x' a30='x' a31='x' a32='x' "
	  "a33='x' a34='x' a35='x' a36='x' a37='x' a38='x' a39='x' a40='x' a41='x' a42='x' a43='x' "
	  "a44='x' a45='x' a46='x' a47='x' a48='x' a49='x' a50='x' a51='x' a52='x' a53='x' a54='x' "
	  "a55='x' a56='x' a57='x' a58='x' a59='x' a60='x' a61='x' a62='x' a63='x' a64='x'/>"},
     H_EV E("policy-violation"),
     0,
     0,
     NULL},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

START_TEST(test_feed_table)
{
	const struct feed_case *c = &cases[_i];
	struct rec whole, other;
	uint32_t seed;
	size_t i;
	int k;

	run_case(c, FEED_WHOLE, 1, &whole);
	if (c->want)
		ck_assert_msg(whole.log && strcmp(whole.log, c->want) == 0,
			      "%s:\n--- got\n%s--- want\n%s", c->name, whole.log ? whole.log : "",
			      c->want);
	for (i = 0; i < whole.nsaved; i++)
		check_reparse(&whole.saved[i]);

	run_case(c, FEED_BYTES, 1, &other);
	ck_assert_msg(strcmp(other.log ? other.log : "", whole.log ? whole.log : "") == 0,
		      "%s byte by byte:\n%s", c->name, other.log ? other.log : "");
	rec_done(&other);
	for (k = 0; k < 50; k++) {
		seed = 0x9E3779B9u * (uint32_t)(k + 1) + (uint32_t)_i;
		run_case(c, FEED_RANDOM, seed, &other);
		ck_assert_msg(strcmp(other.log ? other.log : "", whole.log ? whole.log : "") == 0,
			      "%s split with seed %u:\n%s", c->name, seed,
			      other.log ? other.log : "");
		rec_done(&other);
	}
	rec_done(&whole);
}
END_TEST

/* libxml2 must never print: everything goes through on_error. */
START_TEST(test_silent)
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	struct rec r;
	size_t i;
	long size;

	ck_assert_ptr_nonnull(tmp);
	ck_assert_int_ge(saved, 0);
	fflush(stderr);
	ck_assert_int_eq(dup2(fileno(tmp), 2), 2);
	for (i = 0; i < NCASES; i++) {
		run_case(&cases[i], FEED_WHOLE, 1, &r);
		rec_done(&r);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fseek(tmp, 0, SEEK_END);
	size = ftell(tmp);
	fclose(tmp);
	ck_assert_int_eq(size, 0);
}
END_TEST

/* Framing offsets stay right across libxml2's input shrinking (it drops
 * consumed input in 4 KB steps) and memory does not grow with the stream. */
START_TEST(test_memory_bounded)
{
	struct rec r;
	char chunk[4096];
	size_t baseline = 0, peak = 0, used, n, i, k;
	char want[64];

	memset(&r, 0, sizeof(r));
	r.xs = xs_new(&cbs, &r, NULL);
	ck_assert_int_eq(xs_feed(r.xs, HDR, strlen(HDR)), 0);
	for (i = 0; i < 100000;) {
		/* pack a few stanzas per read, cut wherever the read ends */
		n = 0;
		for (k = 0; k < 50 && i < 100000; k++, i++)
			n += (size_t)snprintf(chunk + n, sizeof(chunk) - n,
					      "<message id='%zu'><body>x</body></message> ", i);
		ck_assert_int_eq(xs_feed(r.xs, chunk, n / 3), 0);
		ck_assert_int_eq(xs_feed(r.xs, chunk + n / 3, n - n / 3), 0);
		ck_assert_uint_eq(r.nsaved, k);
		for (k = 0; k < r.nsaved; k++) {
			snprintf(want, sizeof(want), "<message id='%zu'><body>x</body></message>",
				 i - r.nsaved + k);
			ck_assert_uint_eq(r.saved[k].len, strlen(want));
			ck_assert(memcmp(r.saved[k].bytes, want, r.saved[k].len) == 0);
		}
		free(r.log);
		r.log = NULL;
		r.len = r.cap = 0;
		for (k = 0; k < r.nsaved; k++) {
			free(r.saved[k].bytes);
			free(r.saved[k].text);
		}
		r.nsaved = 0;
		used = live_bytes;
		if (i == 1000)
			baseline = used;
		if (used > peak)
			peak = used;
	}
	ck_assert_msg(live_bytes <= baseline + 8192, "grew from %zu to %zu", baseline, live_bytes);
	ck_assert_msg(peak <= baseline + 16384, "peak %zu, baseline %zu", peak, baseline);
	xs_free(r.xs);
	rec_done(&r);
}
END_TEST

/* One large stanza, framed exactly, whichever way it is cut. */
START_TEST(test_large_stanza)
{
	size_t body = 100000, n, off, i;
	char *s = malloc(body + 64), *stream;
	uint32_t seed = 42;
	int k;

	n = (size_t)sprintf(s, "<message id='big'><body>");
	for (i = 0; i < body; i++)
		s[n++] = (char)('a' + i % 26);
	n += (size_t)sprintf(s + n, "</body></message>");
	stream = malloc(strlen(HDR) + n + 1);
	sprintf(stream, "%s%s", HDR, s);
	for (k = 0; k < 10; k++) {
		struct rec r;
		size_t len = strlen(stream);

		memset(&r, 0, sizeof(r));
		r.xs = xs_new(&cbs, &r, NULL);
		for (off = 0; off < len; off += i) {
			i = 1 + rnd(&seed) % 9000;
			if (i > len - off)
				i = len - off;
			ck_assert_int_eq(xs_feed(r.xs, stream + off, i), 0);
		}
		ck_assert_uint_eq(r.nsaved, 1);
		ck_assert_uint_eq(r.saved[0].len, n);
		ck_assert(memcmp(r.saved[0].bytes, s, n) == 0);
		xs_free(r.xs);
		rec_done(&r);
	}
	free(s);
	free(stream);
}
END_TEST

/* A tag trickled a byte at a time must not cost quadratic time (libxml2
 * rescans its buffer for every chunk holding a '>'). */
START_TEST(test_trickled_tag)
{
	struct rec r;
	clock_t t0 = clock();
	size_t i;
	struct xs_limits lim = {0, 0, 0, 0, 1 << 20}; /* a 200,000-byte value */

	memset(&r, 0, sizeof(r));
	r.xs = xs_new(&cbs, &r, &lim);
	ck_assert_int_eq(xs_feed(r.xs, HDR "<message id='", strlen(HDR) + 13), 0);
	for (i = 0; i < 200000; i++)
		ck_assert_int_eq(xs_feed(r.xs, ">", 1), 0);
	ck_assert_int_eq(xs_feed(r.xs, "'/>", 3), 0);
	ck_assert_uint_eq(r.nsaved, 1);
	ck_assert_uint_eq(r.saved[0].len, 200000 + 16);
	ck_assert_msg(clock() - t0 < 5 * CLOCKS_PER_SEC, "took %.1f s",
		      (double)(clock() - t0) / CLOCKS_PER_SEC);
	xs_free(r.xs);
	rec_done(&r);
}
END_TEST

static char last_text[2048];
static size_t last_nchildren;

static void keep_children(void *ctx, const struct xs_stanza *s)
{
	last_nchildren = s->nchildren;
	snprintf(last_text, sizeof(last_text), "%s", s->nchildren ? s->children[0].text : "");
	if (s->nchildren == XS_MAX_CHILDREN)
		ck_assert_str_eq(s->children[XS_MAX_CHILDREN - 1].name, "c31");
}

START_TEST(test_children_cap)
{
	static const struct xs_callbacks kc = {NULL, keep_children, NULL, NULL};
	struct xs *xs = xs_new(&kc, NULL, NULL);
	char buf[8192];
	size_t n, i;

	ck_assert_int_eq(xs_feed(xs, HDR, strlen(HDR)), 0);
	n = (size_t)sprintf(buf, "<message>");
	for (i = 0; i < 40; i++)
		n += (size_t)sprintf(buf + n, "<c%zu/>", i);
	n += (size_t)sprintf(buf + n, "</message>");
	ck_assert_int_eq(xs_feed(xs, buf, n), 0);
	ck_assert_uint_eq(last_nchildren, XS_MAX_CHILDREN);

	/* text is capped at 1 KiB on a character boundary: 'a' + 511 x U+00E9 */
	n = (size_t)sprintf(buf, "<message><body>  a");
	for (i = 0; i < 600; i++)
		n += (size_t)sprintf(buf + n, "\xC3\xA9");
	n += (size_t)sprintf(buf + n, "</body></message>");
	ck_assert_int_eq(xs_feed(xs, buf, n), 0);
	ck_assert_uint_eq(strlen(last_text), 1023);
	ck_assert_int_eq(last_text[0], 'a');
	ck_assert(memcmp(last_text + 1021, "\xC3\xA9", 2) == 0);
	xs_free(xs);
}
END_TEST

/* Attributes, depth 4, byte ranges and the per-parent descendant cap. */
static struct xs_stanza kept;
static char kept_bytes[8192];
static struct xs_child kept_children[XS_MAX_CHILDREN * (1 + XS_MAX_DESCENDANTS)];
static char kept_strs[64][128];
static size_t kept_nstrs;

static const char *keep_str(const char *v)
{
	ck_assert_uint_lt(kept_nstrs, 64);
	snprintf(kept_strs[kept_nstrs], sizeof(kept_strs[0]), "%s", v);
	return kept_strs[kept_nstrs++];
}

static void keep_stanza(void *ctx, const struct xs_stanza *s)
{
	kept = *s;
	ck_assert_uint_lt(s->len, sizeof(kept_bytes));
	memcpy(kept_bytes, s->bytes, s->len);
	kept.bytes = kept_bytes;
	memcpy(kept_children, s->children, s->nchildren * sizeof(*s->children));
	kept.children = kept_children;
	kept_nstrs = 0;
	/* what the test reads after the callback */
	kept.type = xs_attr_get(s->attrs, s->nattrs, "type") ? keep_str(s->type) : NULL;
	for (size_t i = 0; i < s->nchildren; i++) {
		const char *fg =
		    xs_attr_get(s->children[i].attrs, s->children[i].nattrs, "fgcolor");

		kept_children[i].text = keep_str(fg ? fg : "-");
		kept_children[i].attrs = NULL;
	}
	kept.attrs = NULL;
	for (size_t i = 0; i < s->nchildren; i++)
		check_child_range(s, i);
}

#define SECLABEL                                                                                   \
	"<securitylabel xmlns='urn:xmpp:sec-label:0'><displaymarking fgcolor='black' "             \
	"bgcolor='red'>SECRET</displaymarking><label><esssecuritylabel "                           \
	"xmlns='urn:xmpp:sec-label:ess:0'>MQYGBCsGAQI=</esssecuritylabel></label></securitylabel>"

START_TEST(test_children_detail)
{
	static const struct xs_callbacks kc = {NULL, keep_stanza, NULL, NULL};
	static const char msg[] = "<message type='chat' to='b@b.example' x:y='1' xmlns:x='urn:x'>"
				  "<body>hi</body>" SECLABEL "</message>";
	/* a header binding a prefix the canonical header does not: spliced */
	static const char hdr2[] = "<stream:stream xmlns='jabber:server' "
				   "xmlns:stream='http://etherx.jabber.org/streams' "
				   "xmlns:q='urn:q' to='b.example' version='1.0'>";
	struct xs *xs;
	char buf[8192];
	size_t n, i;
	const char *hdrs[2] = {HDR, hdr2};

	for (int h = 0; h < 2; h++) {
		const struct xs_child *sl;

		xs = xs_new(&kc, NULL, NULL);
		ck_assert_int_eq(xs_feed(xs, hdrs[h], strlen(hdrs[h])), 0);
		ck_assert_int_eq(xs_feed(xs, msg, strlen(msg)), 0);
		ck_assert_uint_eq(kept.nchildren, 5);
		ck_assert_int_eq(kept.partial, 0);
		ck_assert_uint_eq(kept.nattrs, 3);
		sl = &kept.children[1];
		ck_assert_str_eq(sl->name, "securitylabel");
		ck_assert_uint_eq(sl->depth, 2);
		ck_assert_uint_eq(sl->end - sl->start, strlen(SECLABEL));
		ck_assert(memcmp(kept.bytes + sl->start, SECLABEL, strlen(SECLABEL)) == 0);
		ck_assert_str_eq(kept.children[2].name, "displaymarking");
		ck_assert_str_eq(kept.children[2].text, "black"); /* the fgcolor attribute */
		ck_assert_uint_eq(kept.children[2].nattrs, 2);
		ck_assert_str_eq(kept.children[4].name, "esssecuritylabel");
		ck_assert_uint_eq(kept.children[4].depth, 4);
		ck_assert_str_eq(kept.children[4].ns, "urn:xmpp:sec-label:ess:0");
		ck_assert_str_eq(kept.children[0].name, "body");
		xs_free(xs);
	}

	/* a payload of many descendants does not crowd out the next child */
	xs = xs_new(&kc, NULL, NULL);
	ck_assert_int_eq(xs_feed(xs, HDR, strlen(HDR)), 0);
	n = (size_t)sprintf(buf, "<message><html>");
	for (i = 0; i < 40; i++)
		n += (size_t)sprintf(buf + n, "<p><b/></p>");
	n += (size_t)sprintf(buf + n, "</html>%s</message>", SECLABEL);
	ck_assert_int_eq(xs_feed(xs, buf, n), 0);
	ck_assert_uint_eq(kept.nchildren, 1 + XS_MAX_DESCENDANTS + 4);
	ck_assert_int_eq(kept.children[0].partial, 1);
	ck_assert_str_eq(kept.children[1 + XS_MAX_DESCENDANTS].name, "securitylabel");
	ck_assert_int_eq(kept.children[1 + XS_MAX_DESCENDANTS].partial, 0);

	/* over-long text and too many attributes mark the child partial */
	n = (size_t)sprintf(buf, "<message><a");
	for (i = 0; i < XS_MAX_CHILD_ATTRS + 1; i++)
		n += (size_t)sprintf(buf + n, " a%zu='v'", i);
	n += (size_t)sprintf(buf + n, "/><b>");
	for (i = 0; i < XS_TEXT_MAX + 1; i++)
		buf[n++] = 'x';
	n += (size_t)sprintf(buf + n, "</b><c/></message>");
	ck_assert_int_eq(xs_feed(xs, buf, n), 0);
	ck_assert_uint_eq(kept.nchildren, 3);
	ck_assert_int_eq(kept.children[0].partial, 1);
	ck_assert_uint_eq(kept.children[0].nattrs, XS_MAX_CHILD_ATTRS);
	ck_assert_int_eq(kept.children[1].partial, 1);
	ck_assert_int_eq(kept.children[2].partial, 0);

	/* more depth-2 children than recorded: the stanza is partial */
	n = (size_t)sprintf(buf, "<message>");
	for (i = 0; i < XS_MAX_CHILDREN + 1; i++)
		n += (size_t)sprintf(buf + n, "<c/>");
	n += (size_t)sprintf(buf + n, "</message>");
	ck_assert_int_eq(xs_feed(xs, buf, n), 0);
	ck_assert_int_eq(kept.partial, 1);
	ck_assert_uint_eq(kept.nchildren, XS_MAX_CHILDREN);
	xs_free(xs);
}
END_TEST

START_TEST(test_escape)
{
	char out[64];

	ck_assert_uint_eq(xs_escape(out, sizeof(out), "a&b<c>d'e\"f\tg\n"),
			  strlen("a&amp;b&lt;c&gt;d&apos;e&quot;f&#9;g&#10;"));
	ck_assert_str_eq(out, "a&amp;b&lt;c&gt;d&apos;e&quot;f&#9;g&#10;");
	/* truncation never leaves half an escape */
	ck_assert_uint_eq(xs_escape(out, 4, "a&b"), 7);
	ck_assert_str_eq(out, "a");
	ck_assert_uint_eq(xs_escape(out, 7, "a&b"), 7);
	ck_assert_str_eq(out, "a&amp;");
	ck_assert_uint_eq(xs_escape(NULL, 0, "\xC3\xA9"), 2);
	ck_assert_uint_eq(xs_escape(out, sizeof(out), ""), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_free_in_callback)
{
	struct rec r;

	memset(&r, 0, sizeof(r));
	r.free_on_stanza = 1;
	r.xs = xs_new(&cbs, &r, NULL);
	ck_assert_int_eq(xs_feed(r.xs, HDR "<presence/><presence/>", strlen(HDR) + 22), 0);
	ck_assert_uint_eq(r.nsaved, 1);
	ck_assert_ptr_null(r.xs);
	rec_done(&r);
}
END_TEST

static int reset_rc = 1, feed_rc = 1;
static struct xs *reset_target;

static void reset_inside(void *ctx, const struct xs_stanza *s)
{
	reset_rc = xs_reset(reset_target);
	feed_rc = xs_feed(reset_target, "<presence/>", 11);
}

/* The parser is never freed or re-entered under its own callback. */
START_TEST(test_reset_in_callback)
{
	static const struct xs_callbacks rc = {NULL, reset_inside, NULL, NULL};
	struct xs *xs = xs_new(&rc, NULL, NULL);

	reset_target = xs;
	ck_assert_int_eq(xs_feed(xs, HDR "<presence/>", strlen(HDR) + 11), 0);
	ck_assert_int_eq(reset_rc, -EBUSY);
	ck_assert_int_eq(feed_rc, -EBUSY);
	reset_rc = 1;
	ck_assert_int_eq(xs_reset(xs), 0);
	ck_assert_int_eq(xs_feed(xs, HDR "<presence/>", strlen(HDR) + 11), 0);
	ck_assert_int_eq(reset_rc, -EBUSY);
	xs_free(xs);
}
END_TEST

/* A peer inventing new element names forever hits the name dictionary
 * limit instead of growing memory. */
static enum xs_error dict_err;

static void note_error(void *ctx, enum xs_error err, const char *detail)
{
	dict_err = err;
}

START_TEST(test_dict_limit)
{
	static const struct xs_callbacks dc = {NULL, NULL, NULL, note_error};
	struct xs *xs = xs_new(&dc, NULL, NULL);
	char buf[64];
	size_t i, n;
	int rc = 0;

	ck_assert_int_eq(xs_feed(xs, HDR, strlen(HDR)), 0);
	for (i = 0; i < 2000000 && rc == 0; i++) {
		n = (size_t)snprintf(buf, sizeof(buf), "<x%zu/>", i);
		rc = xs_feed(xs, buf, n);
	}
	ck_assert_int_eq(rc, -EPROTO);
	ck_assert_int_eq(dict_err, XS_ERR_POLICY_VIOLATION);
	xs_free(xs);
}
END_TEST

START_TEST(test_utf16)
{
	static const char le[] = "<\0?\0x\0m\0l\0";
	static const char be[] = "\0<\0?\0x\0m\0l";
	struct rec r;

	memset(&r, 0, sizeof(r));
	r.xs = xs_new(&cbs, &r, NULL);
	ck_assert_int_eq(xs_feed(r.xs, le, sizeof(le) - 1), -EPROTO);
	ck_assert_str_eq(r.log, "E unsupported-encoding\n");
	xs_free(r.xs);
	rec_done(&r);
	r.xs = xs_new(&cbs, &r, NULL);
	ck_assert_int_eq(xs_feed(r.xs, be, sizeof(be) - 1), -EPROTO);
	ck_assert_str_eq(r.log, "E unsupported-encoding\n");
	xs_free(r.xs);
	rec_done(&r);
	r.xs = xs_new(&cbs, &r, NULL);
	ck_assert_int_eq(xs_feed(r.xs, le, 3), 0); /* four bytes tell */
	ck_assert_int_eq(xs_feed(r.xs, le + 3, 1), -EPROTO);
	ck_assert_str_eq(r.log, "E unsupported-encoding\n");
	xs_free(r.xs);
	rec_done(&r);
}
END_TEST

START_TEST(test_after_close)
{
	struct rec r;
	static const char s[] = HDR "</stream:stream> <presence/>";

	memset(&r, 0, sizeof(r));
	r.xs = xs_new(&cbs, &r, NULL);
	ck_assert_int_eq(xs_feed(r.xs, s, strlen(s)), 0);
	ck_assert_int_eq(xs_feed(r.xs, "<x/>", 4), 0);
	ck_assert_str_eq(r.log, H_EV "C\n");
	ck_assert_uint_eq(xs_trailing(r.xs), 16);
	/* restart after a close works like any other */
	ck_assert_int_eq(xs_reset(r.xs), 0);
	ck_assert_int_eq(xs_feed(r.xs, HDR "<presence/>", strlen(HDR) + 11), 0);
	ck_assert_str_eq(r.log, H_EV "C\n" H_EV S("presence", "jabber:server", "-", "-", "-", "-",
						  "<presence/>"));
	xs_free(r.xs);
	rec_done(&r);
	xs_free(NULL);
}
END_TEST

/* Feeds HDR (or head) then body; 1 if the stream failed with
 * policy-violation, 0 if it delivered the stanza, anything else fails. */
static int fails_on_length(const char *head, const char *body, const struct xs_limits *lim)
{
	struct rec r;
	size_t hl = strlen(head), bl = strlen(body);
	char *all = malloc(hl + bl + 1);
	int failed;

	ck_assert_ptr_nonnull(all);
	memcpy(all, head, hl);
	memcpy(all + hl, body, bl + 1);
	memset(&r, 0, sizeof(r));
	r.xs = xs_new(&cbs, &r, lim);
	ck_assert_ptr_nonnull(r.xs);
	xs_feed(r.xs, all, hl + bl);
	failed = r.failed;
	if (failed)
		ck_assert_msg(strstr(r.log, "E policy-violation\n") != NULL, "%s", r.log);
	else
		ck_assert_msg(r.nsaved == 1, "no stanza: %.200s", r.log);
	xs_free(r.xs);
	rec_done(&r);
	free(all);
	return failed;
}

/* A string of n copies of unit (caller frees). */
static char *rep(const char *unit, size_t n)
{
	size_t ul = strlen(unit);
	char *b = malloc(ul * n + 1);

	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < n; i++)
		memcpy(b + i * ul, unit, ul);
	b[ul * n] = '\0';
	return b;
}

/* Element and attribute names (prefix included), attribute values
 * (as written) and namespace names at the default bounds and one above, at
 * every depth and in the header; then configured bounds. */
START_TEST(test_length_limits)
{
	char buf[20000];
	char *n256 = rep("n", 256), *n255 = rep("n", 255), *n253 = rep("n", 253);
	char *v8192 = rep("v", 8192), *amp1638 = rep("&amp;", 1638);
	struct xs_limits small = {0, 0, 0, 13, 40}; /* the header needs 13 and 32 */

	snprintf(buf, sizeof(buf), "<message><%s/></message>", n256);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 0);
	snprintf(buf, sizeof(buf), "<message><%sx/></message>", n256);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 1);
	snprintf(buf, sizeof(buf), "<message><p:%s xmlns:p='urn:x'/></message>", n255);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 0);
	snprintf(buf, sizeof(buf), "<message><pp:%s xmlns:pp='urn:x'/></message>", n255);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 1);
	snprintf(buf, sizeof(buf), "<message %s='1'/>", n256);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 0);
	snprintf(buf, sizeof(buf), "<message %sxy='1'/>", n253);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 0);
	snprintf(buf, sizeof(buf), "<message><a><b><c d%s='1'/></b></a></message>", n256);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 1);

	snprintf(buf, sizeof(buf), "<message id='%s'/>", v8192);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 0);
	snprintf(buf, sizeof(buf), "<message id='%sv'/>", v8192);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 1);
	snprintf(buf, sizeof(buf), "<message><x xmlns='urn:%s'/></message>", v8192);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 1);
	snprintf(buf, sizeof(buf), CANON " to='%sv' version='1.0'>", v8192);
	ck_assert_int_eq(fails_on_length(buf, "", NULL), 1); /* the header too */

	/* counted as written: 1,638 "&amp;" are 8,190 bytes */
	snprintf(buf, sizeof(buf), "<message id='%sxx'/>", amp1638);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 0);
	snprintf(buf, sizeof(buf), "<message id='%s&amp;'/>", amp1638);
	ck_assert_int_eq(fails_on_length(HDR, buf, NULL), 1);

	ck_assert_int_eq(fails_on_length(HDR, "<message><abcdefghijklm/></message>", &small), 0);
	ck_assert_int_eq(fails_on_length(HDR, "<message><abcdefghijklmn/></message>", &small), 1);
	ck_assert_int_eq(fails_on_length(HDR,
					 "<message id='0123456789012345678901234567890123456789'/>",
					 &small),
			 0);
	ck_assert_int_eq(
	    fails_on_length(HDR, "<message id='0123456789012345678901234567890123456789X'/>",
			    &small),
	    1);
	free(n256);
	free(n255);
	free(n253);
	free(v8192);
	free(amp1638);
}
END_TEST

START_TEST(test_conditions)
{
	ck_assert_str_eq(xs_error_condition(XS_ERR_NOT_WELL_FORMED), "not-well-formed");
	ck_assert_str_eq(xs_error_condition(XS_ERR_RESTRICTED_XML), "restricted-xml");
	ck_assert_str_eq(xs_error_condition(XS_ERR_POLICY_VIOLATION), "policy-violation");
	ck_assert_str_eq(xs_error_condition(XS_ERR_INVALID_NAMESPACE), "invalid-namespace");
	ck_assert_str_eq(xs_error_condition(XS_ERR_UNSUPPORTED_ENCODING), "unsupported-encoding");
}
END_TEST

static Suite *xmlstream_suite(void)
{
	Suite *s = suite_create("xmlstream");
	TCase *tc = tcase_create("feed");

	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_feed_table, 0, (int)NCASES);
	tcase_add_test(tc, test_silent);
	tcase_add_test(tc, test_memory_bounded);
	tcase_add_test(tc, test_large_stanza);
	tcase_add_test(tc, test_trickled_tag);
	tcase_add_test(tc, test_children_cap);
	tcase_add_test(tc, test_children_detail);
	tcase_add_test(tc, test_escape);
	tcase_add_test(tc, test_free_in_callback);
	tcase_add_test(tc, test_reset_in_callback);
	tcase_add_test(tc, test_dict_limit);
	tcase_add_test(tc, test_utf16);
	tcase_add_test(tc, test_after_close);
	tcase_add_test(tc, test_conditions);
	tcase_add_test(tc, test_length_limits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	/* before any other libxml2 call: count what a stream allocates */
	xmlMemSetup(count_free, count_malloc, count_realloc, count_strdup);
	xmlInitParser();
	sr = srunner_create(xmlstream_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	xmlCleanupParser();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
