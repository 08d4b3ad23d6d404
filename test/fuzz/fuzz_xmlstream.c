/* fuzz_xmlstream: libFuzzer target for the XML stream framer.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Irelay \
 *       $(pkg-config --cflags libxml-2.0) test/fuzz/fuzz_xmlstream.c relay/xmlstream.c \
 *       $(pkg-config --libs libxml-2.0) -o fuzz_xmlstream
 *
 * The first byte picks options (prepend a valid header, small limits, how
 * to cut the input); the rest is the stream. The input is fed whole and
 * then cut into pieces. The delivered headers, elements and closes must
 * agree (one log a prefix of the other), and when both feedings fail they
 * must fail for the same reason. Not more: libxml2's push parser looks at
 * some bytes only once more arrive (text under 300 bytes not followed by
 * '<'), so at the end of the input one feeding may still be waiting where
 * the other has already refused the stream. Every delivered element
 * must start with '<', end with '>', and round-trip: wrapped in the
 * canonical outbound header it re-parses with a fresh xs as exactly one
 * element with the same name, namespace, to/from/type/id, attributes and
 * children (depth, names, namespaces, attributes, text, byte ranges and
 * partial flags); abort() otherwise. The one allowed difference is the
 * xml:lang the splice adds from the inbound header. */
#include "xmlstream.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CANON                                                                                      \
	"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "    \
	"xmlns:db='jabber:server:dialback'>"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Everything the framer says about an element, as one comparable string. */
struct sig {
	char b[262144];
	size_t n;
};

static void sig_add(struct sig *g, const void *p, size_t n)
{
	if (n > sizeof(g->b) - g->n)
		abort(); /* bounded: 544 children x 8 attributes x short values */
	memcpy(g->b + g->n, p, n);
	g->n += n;
}

static void sig_str(struct sig *g, const char *s)
{
	sig_add(g, s ? s : "\x01", s ? strlen(s) + 1 : 1);
}

static int is_xml_lang(const struct xs_attr *a)
{
	return strcmp(a->ns, "http://www.w3.org/XML/1998/namespace") == 0 &&
	       strcmp(a->name, "lang") == 0;
}

/* skip_lang: leave out an xml:lang attribute of the element (the splice
 * adds one that the original bytes did not carry). */
static void sig_make(struct sig *g, const struct xs_stanza *s, int skip_lang)
{
	size_t i, j;

	g->n = 0;
	sig_str(g, s->name);
	sig_str(g, s->ns);
	sig_str(g, s->to);
	sig_str(g, s->from);
	sig_str(g, s->type);
	sig_str(g, s->id);
	/* the spliced xml:lang comes first and may push the last recorded
	 * attribute out: compare the first XS_MAX_STANZA_ATTRS - 1 */
	for (i = 0, j = 0; i < s->nattrs && j < XS_MAX_STANZA_ATTRS - 1; i++) {
		if (skip_lang && is_xml_lang(&s->attrs[i]))
			continue;
		j++;
		sig_str(g, s->attrs[i].name);
		sig_str(g, s->attrs[i].ns);
		sig_str(g, s->attrs[i].value);
	}
	sig_add(g, &s->nchildren, sizeof(s->nchildren));
	for (i = 0; i < s->nchildren; i++) {
		const struct xs_child *c = &s->children[i];

		sig_add(g, &c->depth, sizeof(c->depth));
		sig_add(g, &c->start, sizeof(c->start));
		sig_add(g, &c->end, sizeof(c->end));
		sig_add(g, &c->partial, sizeof(c->partial));
		sig_str(g, c->name);
		sig_str(g, c->ns);
		sig_str(g, c->text);
		for (j = 0; j < c->nattrs; j++) {
			sig_str(g, c->attrs[j].name);
			sig_str(g, c->attrs[j].ns);
			sig_str(g, c->attrs[j].value);
		}
	}
}

struct run {
	char log[65536]; /* events, truncated */
	size_t len;
	int reparse; /* re-parse each element (only in the first feeding) */
	int errors;
	enum xs_error err;
	struct sig *want; /* for the re-parse: what the element must be */
	int skip_lang;
	int matched;
};

static void mix(struct run *r, const void *p, size_t n)
{
	size_t room = sizeof(r->log) - r->len;

	if (n + 1 > room)
		n = room > 0 ? room - 1 : 0;
	memcpy(r->log + r->len, p, n);
	r->len += n;
	if (r->len < sizeof(r->log))
		r->log[r->len++] = '\0';
}

static void mix_str(struct run *r, const char *s)
{
	mix(r, s ? s : "\x01", s ? strlen(s) : 1);
}

static void on_header(void *ctx, const struct xs_header *h)
{
	struct run *r = ctx;

	mix(r, "H", 1);
	mix_str(r, h->to);
	mix_str(r, h->from);
	mix_str(r, h->id);
	mix_str(r, h->version);
	mix_str(r, h->lang);
	mix(r, &h->has_dialback_ns, sizeof(h->has_dialback_ns));
}

static void on_reparsed(void *ctx, const struct xs_stanza *s)
{
	struct run *r = ctx;
	static struct sig got;

	sig_make(&got, s, r->skip_lang);
	if (got.n != r->want->n || memcmp(got.b, r->want->b, got.n) != 0)
		abort();
	r->matched++;
}

static void on_stanza(void *ctx, const struct xs_stanza *s)
{
	struct run *r = ctx;
	size_t i;

	if (s->len < 3 || s->bytes[0] != '<' || s->bytes[s->len - 1] != '>')
		abort();
	mix(r, "S", 1);
	mix(r, s->bytes, s->len);
	mix_str(r, s->name);
	mix_str(r, s->ns);
	mix_str(r, s->to);
	mix_str(r, s->from);
	mix_str(r, s->type);
	mix_str(r, s->id);
	if (s->nchildren > XS_MAX_CHILDREN * (1 + XS_MAX_DESCENDANTS) ||
	    s->nattrs > XS_MAX_STANZA_ATTRS)
		abort();
	for (i = 0; i < s->nattrs; i++) {
		mix_str(r, s->attrs[i].name);
		mix_str(r, s->attrs[i].ns);
		mix_str(r, s->attrs[i].value);
	}
	for (i = 0; i < s->nchildren; i++) {
		const struct xs_child *c = &s->children[i];

		mix(r, &c->depth, sizeof(c->depth));
		mix_str(r, c->name);
		mix_str(r, c->ns);
		mix_str(r, c->text);
		mix(r, &c->start, sizeof(c->start));
		mix(r, &c->end, sizeof(c->end));
		mix(r, &c->partial, sizeof(c->partial));
		if (strlen(c->text) > XS_TEXT_MAX || c->nattrs > XS_MAX_CHILD_ATTRS ||
		    c->depth < 2 || c->depth > 4 || c->start >= c->end || c->end > s->len ||
		    s->bytes[c->start] != '<' || s->bytes[c->end - 1] != '>')
			abort();
		for (size_t j = 0; j < c->nattrs; j++) {
			mix_str(r, c->attrs[j].name);
			mix_str(r, c->attrs[j].value);
		}
	}
	if (r->reparse) {
		static const struct xs_callbacks rcb = {NULL, on_reparsed, NULL, NULL};
		static struct run r2;
		static struct sig want;
		struct xs *xs;
		char *copy = malloc(s->len);
		int has_lang = 0;

		for (i = 0; i < s->nattrs; i++)
			has_lang |= is_xml_lang(&s->attrs[i]);
		memset(&r2, 0, sizeof(r2));
		r2.want = &want;
		r2.skip_lang = !has_lang;
		sig_make(&want, s, 0);
		memcpy(copy, s->bytes, s->len);
		xs = xs_new(&rcb, &r2, NULL);
		if (xs_feed(xs, CANON, strlen(CANON)) != 0 || xs_feed(xs, copy, s->len) != 0 ||
		    r2.matched != 1)
			abort();
		xs_free(xs);
		free(copy);
	}
}

static void on_close(void *ctx)
{
	mix(ctx, "C", 1);
}

static void on_error(void *ctx, enum xs_error err, const char *detail)
{
	struct run *r = ctx;

	r->errors++;
	r->err = err;
	if (err == XS_ERR_NONE || detail == NULL)
		abort();
}

static const struct xs_callbacks cbs = {on_header, on_stanza, on_close, on_error};

static void feed(struct run *r, const uint8_t *d, size_t n, unsigned opts, int cut, int reparse)
{
	struct xs_limits lim = {opts & 2 ? 300 : 0, opts & 4 ? 4 : 0, 0, 0, 0};
	struct xs *xs;
	uint32_t seed = 2463534242u ^ (uint32_t)n;
	size_t off = 0, t;
	int rc, failed = 0;

	memset(r, 0, sizeof(*r));
	r->reparse = reparse;
	xs = xs_new(&cbs, r, &lim);
	if (xs == NULL)
		abort();
	if ((opts & 1) && xs_feed(xs, CANON, strlen(CANON)) != 0)
		abort();
	while (off < n) {
		size_t k = n - off;

		if (cut) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			k = 1 + seed % (opts & 8 ? 3 : 64);
			if (k > n - off)
				k = n - off;
		}
		rc = xs_feed(xs, (const char *)d + off, k);
		if (rc != (failed || r->errors ? -EPROTO : 0))
			abort();
		failed = r->errors > 0;
		off += k;
	}
	if (r->errors > 1)
		abort();
	t = xs_trailing(xs);
	if (t > n + strlen(CANON))
		abort();
	xs_free(xs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run whole, cut;
	unsigned opts;

	if (size < 1)
		return 0;
	opts = data[0];
	feed(&whole, data + 1, size - 1, opts, 0, 1);
	feed(&cut, data + 1, size - 1, opts, 1, 0);
	if (memcmp(whole.log, cut.log, whole.len < cut.len ? whole.len : cut.len) != 0)
		abort();
	if (whole.errors && cut.errors && whole.err != cut.err)
		abort();
	return 0;
}
