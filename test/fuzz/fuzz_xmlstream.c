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
 * must start with '<', end with '>', and re-parse under the canonical
 * header to the same name and namespace. */
#include "xmlstream.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CANON                                                                                      \
	"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "    \
	"xmlns:db='jabber:server:dialback'>"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	char log[65536]; /* events, truncated */
	size_t len;
	int reparse; /* re-parse each element (only in the first feeding) */
	int errors;
	enum xs_error err;
	const char *name; /* for the re-parse: what the element must be */
	const char *ns;
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

	if (strcmp(s->name, r->name) == 0 && strcmp(s->ns, r->ns) == 0)
		r->matched++;
	else
		abort();
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
	if (s->nchildren > XS_MAX_CHILDREN)
		abort();
	for (i = 0; i < s->nchildren; i++) {
		mix(r, &s->children[i].depth, sizeof(s->children[i].depth));
		mix_str(r, s->children[i].name);
		mix_str(r, s->children[i].ns);
		mix_str(r, s->children[i].text);
		if (strlen(s->children[i].text) > 1024)
			abort();
	}
	if (r->reparse) {
		static const struct xs_callbacks rcb = {NULL, on_reparsed, NULL, NULL};
		static struct run r2;
		struct xs *xs;
		char *copy = malloc(s->len);

		memset(&r2, 0, sizeof(r2));
		r2.name = s->name;
		r2.ns = s->ns;
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
	struct xs_limits lim = {opts & 2 ? 300 : 0, opts & 4 ? 4 : 0, 0};
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
