/* xmlstream: frames one inbound XMPP stream into its header and its
 * top-level elements (stanzas, features, dialback, TLS/SASL negotiation),
 * sans-I/O: bytes in, callbacks out.
 *
 * Framing. The relay forwards a stanza as the bytes it received
 * (DESIGN.md "Data path"), so the framer must say exactly which bytes make
 * up each top-level element. libxml2's SAX2 push parser decides what is
 * well-formed; we keep our own copy of every byte fed since the end of the
 * last delivered element and, when a depth-1 element ends, cut it out of
 * that copy: from its '<' (only whitespace may precede it, which we check
 * on the raw bytes) to xmlByteConsumed(), which at endElementNs time is
 * the absolute offset just past the closing '>', for "</x>" and "/>"
 * alike (at startElementNs it points at the '>' or "/>"). The copy is
 * compacted after each element and bytes are counted before they reach
 * libxml2, so memory stays bounded by max_stanza_size.
 *
 * Holding tags back. libxml2 rescans its buffer for every chunk holding a
 * '>', so a tag trickled a byte at a time (a long value full of '>') costs
 * quadratic time, and a '>' inside a quote not yet closed can leave it
 * waiting or not depending on where chunks were cut. A small lexer
 * (xs_lex) finds the end of the last byte outside any tag or CDATA
 * section; only that much is handed on, so libxml2 always sees them whole. The lexer also refuses
 * comments, PIs, DTDs and '<' in values itself, so that what a stream is
 * refused for never depends on how its bytes were cut.
 *
 * Splice. A stanza inherits prefixes and xml:lang from the inbound header.
 * When these differ from the canonical outbound header, the differing
 * declarations are inserted after the element name of the stanza's first
 * tag, so the bytes mean the same on the outbound stream. Otherwise the
 * stanza is handed over in place, without a copy.
 *
 * States. Prolog: bytes are held until the first four (and any XML
 * declaration) show UTF-8 without a BOM, so libxml2 never switches to a
 * converter (which would also break byte offsets). Then the header, then
 * top-level elements, until one of: closed (</stream:stream>), stopped
 * (xs_stop) or failed (on_error, once). Nothing is delivered after those;
 * xs_reset() starts over with a new parser.
 *
 * Stops are deferred: xmlStopParser() in libxml2 2.9 frees the input
 * buffer under the running parser. Inside a callback we only disable SAX
 * (as libxml2 does on its own fatal errors) and call xmlStopParser() once
 * xmlParseChunk() has returned.
 *
 * RFC 6120 section 11: comments, processing instructions, DTDs and entity
 * references other than the five predefined ones are restricted-xml. All
 * allocations go through xmlMalloc() so one allocator hook accounts for
 * the whole footprint of a stream (the unit test checks it stays flat). */
#include "xmlstream.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlmemory.h>

#define XS_DEFAULT_STANZA 262144
#define XS_DEFAULT_DEPTH 64
#define XS_LIBXML_DEPTH 255   /* libxml2 refuses deeper nesting without HUGE */
#define XS_DECL_MAX 512	      /* longest XML declaration we wait for */
#define XS_BUF_KEEP 16384     /* framing buffer kept between stanzas */
#define XS_DICT_MIN (1 << 20) /* floor of libxml2's name dictionary limit */
#define XS_HEADER_DECLS 16    /* header bindings to splice; servers use 2 or 3 */
/* Attributes (namespace declarations included) in one tag. libxml2 checks
 * duplicates pairwise, so a tag of 60,000 tiny attributes inside the
 * stanza size limit would cost billions of comparisons; the lexer counts
 * them before libxml2 sees the tag. */
#define XS_MAX_ATTRS 64
#define XS_MAX_NAME_LENGTH 256
#define XS_MAX_ATTR_LENGTH 8192
#define XS_NO_STR SIZE_MAX

static const char xs_ns_xml[] = "http://www.w3.org/XML/1998/namespace";

enum xs_halt {
	XS_RUNNING = 0,
	XS_STOPPED, /* xs_stop() */
	XS_CLOSED,  /* </stream:stream> delivered */
	XS_FAILED   /* on_error delivered */
};

/* Where the tag lexer is; see xs_lex(). */
enum xs_lex {
	XL_TEXT = 0, /* character data, or nothing yet */
	XL_LT,	     /* after '<' */
	XL_BANG,     /* after "<!" */
	XL_BANG_DASH,
	XL_TAG,	       /* inside a start or end tag */
	XL_QUOTE1,     /* inside a '...' value */
	XL_QUOTE2,     /* inside a "..." value */
	XL_DECL,       /* inside the XML declaration */
	XL_CDATA_OPEN, /* after "<![": "CDATA[" must follow */
	XL_CDATA       /* inside "<![CDATA[...]]>" */
};

/* A child at depth 2, 3 or 4 whose text is being collected. */
struct xs_open_child {
	size_t idx; /* index in children[], XS_NO_STR when not recorded */
	size_t len;
	int full;
	char text[XS_TEXT_MAX];
};

/* What is known of a recorded child before delivery. */
struct xs_crec {
	size_t text;	   /* offset in strs, or XS_NO_STR */
	size_t attr0;	   /* its first attribute in attrs[] */
	size_t start, end; /* absolute stream offsets */
	size_t parent2;	   /* the depth-2 ancestor's index, or XS_NO_STR */
	unsigned ndesc;	   /* depth 2: descendants recorded */
};

/* A namespace declaration of the inbound header that the canonical
 * outbound header does not make. */
struct xs_decl {
	char *prefix;	 /* owned; NULL for the default namespace */
	size_t off, len; /* its " xmlns:p='uri'" text within splice */
};

/* The attributes of a stanza decoded into struct xs_stanza, in order. */
#define XS_STANZA_ATTR_NAMES "to", "from", "type", "id"

struct xs {
	const struct xs_callbacks *cb; /* borrowed */
	void *ctx;		       /* borrowed, handed back to callbacks */
	size_t max_size;
	unsigned max_depth;
	unsigned max_attrs;
	unsigned max_name, max_value; /* name and attribute value lengths */
	/* "to", "from", "type", "id" as interned in the parser's dictionary
	 * (libxml2 hands attribute names over interned, so one pointer
	 * comparison finds them); NULL without a dictionary */
	const xmlChar *st_names[4];
	xmlParserCtxtPtr parser; /* owned */

	/* Framing. Offsets are absolute: bytes since the stream (re)start. */
	char *buf; /* owned: stream bytes [base, base + len) */
	size_t cap, len, base;
	size_t head;	 /* first byte still needed */
	size_t xml_fed;	 /* bytes handed to libxml2 */
	size_t in_total; /* bytes passed to xs_feed() */
	size_t last_end; /* end of the last delivered element */
	size_t lex_pos;	 /* bytes seen by the tag lexer */
	size_t lex_safe; /* end of the last byte outside a tag */
	size_t lex_bad;	 /* where the lexer refused the stream, or XS_NO_STR */
	enum xs_error lex_err;
	const char *lex_why; /* static */
	enum xs_lex lex;
	unsigned lex_run;   /* ']' or '?' just before, for the end markers */
	unsigned lex_attrs; /* attribute values seen in the current tag */

	enum xs_halt halt;
	int prolog_ok;	 /* the first bytes and XML declaration were checked */
	int has_decl;	 /* the stream starts with an XML declaration */
	int header_done; /* on_header delivered */
	int header_empty;
	unsigned level; /* open elements, the stream header included */
	int in_feed;
	int free_pending;

	/* The open top-level element. */
	size_t el_start, el_name_end;
	const xmlChar *el_name, *el_ns; /* borrowed from the parser dictionary */
	size_t el_attr[4];		/* to, from, type, id: offsets in strs */
	/* Recorded children: name and ns borrowed from the parser dictionary;
	 * text, attributes and offsets set from crec on delivery. Grown on
	 * demand, bounded by XS_MAX_CHILDREN * (1 + XS_MAX_DESCENDANTS). */
	struct xs_child *children; /* owned */
	struct xs_crec *crec;	   /* owned, parallel to children */
	size_t children_cap, crec_cap, nchildren, n2;
	/* Recorded attributes: the top-level element's first (el_nattrs),
	 * then each child's; values set from attr_val on delivery. */
	struct xs_attr *attrs; /* owned */
	size_t *attr_val;      /* owned, offsets in strs, parallel to attrs */
	size_t attrs_cap, attrv_cap, nattrs, el_nattrs;
	int el_partial;
	struct xs_open_child open[3]; /* depth 2, 3 and 4 */

	/* Decoded values of the current header or element. */
	char *strs; /* owned */
	size_t strs_cap, strs_len;

	/* Splice, computed from the header. */
	char *splice; /* owned: the text of every declaration */
	size_t splice_len, splice_cap;
	struct xs_decl decls[XS_HEADER_DECLS];
	size_t ndecls;
	unsigned char skip[XS_HEADER_DECLS]; /* the element declares it itself */
	size_t lang_off, lang_len;
	int has_lang, lang_skip;
	char *out; /* owned: spliced copy of the current element */
	size_t out_cap;

	char detail[160];
};

const char *xs_error_condition(enum xs_error err)
{
	switch (err) {
	case XS_ERR_NONE:
		return "none";
	case XS_ERR_NOT_WELL_FORMED:
		return "not-well-formed";
	case XS_ERR_RESTRICTED_XML:
		return "restricted-xml";
	case XS_ERR_POLICY_VIOLATION:
		return "policy-violation";
	case XS_ERR_INVALID_NAMESPACE:
		return "invalid-namespace";
	case XS_ERR_UNSUPPORTED_ENCODING:
		return "unsupported-encoding";
	}
	return "undefined-condition";
}

static int xs_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int xs_streq(const xmlChar *a, const char *b)
{
	return a != NULL && strcmp((const char *)a, b) == 0;
}

/* Both NULL, or the same string. */
static int xs_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Grow *p to hold at least need bytes; geometric, so appends stay linear. */
static int xs_reserve(char **p, size_t *cap, size_t need)
{
	size_t ncap;
	char *n;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 256;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	n = xmlRealloc(*p, ncap);
	if (n == NULL)
		return -ENOMEM;
	*p = n;
	*cap = ncap;
	return 0;
}

/* Grow an array of elements of size el to hold need of them. */
static int xs_grow(void **p, size_t *cap, size_t need, size_t el)
{
	size_t ncap;
	void *n;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	if (ncap < need)
		ncap = need;
	if (ncap > SIZE_MAX / el)
		return -ENOMEM;
	n = xmlRealloc(*p, ncap * el);
	if (n == NULL)
		return -ENOMEM;
	*p = n;
	*cap = ncap;
	return 0;
}

/* Ask libxml2 to stop parsing without pulling its input from under it:
 * this is how libxml2 itself reacts to a fatal error. */
static void xs_soft_stop(struct xs *xs)
{
	if (xs->parser == NULL)
		return;
	xs->parser->disableSAX = 1;
	if (xs->parser->errNo == XML_ERR_OK)
		xs->parser->errNo = XML_ERR_USER_STOP;
}

static void xs_fail(struct xs *xs, enum xs_error err, const char *detail)
{
	size_t n;

	if (xs->halt != XS_RUNNING)
		return;
	xs->halt = XS_FAILED;
	xs_soft_stop(xs);
	n = strlen(detail);
	while (n > 0 && xs_blank((unsigned char)detail[n - 1]))
		n--;
	if (n >= sizeof(xs->detail))
		n = sizeof(xs->detail) - 1;
	memcpy(xs->detail, detail, n);
	xs->detail[n] = '\0';
	if (xs->cb->on_error)
		xs->cb->on_error(xs->ctx, err, xs->detail);
}

/* ---- decoded strings ---------------------------------------------------- */

static int xs_xml_char(unsigned long c)
{
	return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
	       (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

static size_t xs_utf8(unsigned long c, char *o)
{
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xC0 | (c >> 6));
		o[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xE0 | (c >> 12));
		o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		o[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (c >> 18));
	o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	o[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

/* p points at '&'. Returns the length of the reference and sets *c, or 0
 * when p does not start a reference. */
static size_t xs_ref(const char *p, const char *end, unsigned long *c)
{
	static const struct {
		const char *name;
		char c;
	} pre[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"apos;", '\''}, {"quot;", '"'}};
	const char *q = p + 1;
	unsigned long v = 0;
	int base = 10, digits = 0;
	size_t i;

	if (q < end && *q != '#') {
		for (i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
			size_t n = strlen(pre[i].name);

			if ((size_t)(end - q) >= n && memcmp(q, pre[i].name, n) == 0) {
				*c = (unsigned char)pre[i].c;
				return n + 1;
			}
		}
		return 0;
	}
	q++;
	if (q < end && *q == 'x') {
		base = 16;
		q++;
	}
	for (; q < end && digits < 8; q++, digits++) {
		int d;

		if (*q >= '0' && *q <= '9')
			d = *q - '0';
		else if (base == 16 && *q >= 'a' && *q <= 'f')
			d = *q - 'a' + 10;
		else if (base == 16 && *q >= 'A' && *q <= 'F')
			d = *q - 'A' + 10;
		else
			break;
		v = v * (unsigned long)base + (unsigned long)d;
	}
	if (digits == 0 || q >= end || *q != ';' || !xs_xml_char(v))
		return 0;
	*c = v;
	return (size_t)(q + 1 - p);
}

/* Decode s[0..n) into out (room for n + 1 bytes: a reference is never
 * shorter than its UTF-8). libxml2 resolves most references in attribute
 * values but hands '&' over as "&#38;"; whatever is left is resolved here,
 * once. Returns the decoded length. */
static size_t xs_decode(const char *s, size_t n, char *out)
{
	const char *end = s + n;
	size_t o = 0;

	if (memchr(s, '&', n) == NULL) { /* the common case: nothing to decode */
		memcpy(out, s, n);
		out[n] = '\0';
		return n;
	}
	while (s < end) {
		unsigned long c;
		size_t r;

		if (*s == '&' && (r = xs_ref(s, end, &c)) > 0) {
			o += xs_utf8(c, out + o);
			s += r;
		} else {
			out[o++] = *s++;
		}
	}
	out[o] = '\0';
	return o;
}

/* Store a decoded copy in strs; returns its offset or XS_NO_STR. */
static size_t xs_put(struct xs *xs, const char *s, size_t n, int decode)
{
	size_t off = xs->strs_len;

	if (n >= SIZE_MAX - off - 1 || xs_reserve(&xs->strs, &xs->strs_cap, off + n + 1) < 0) {
		xs_fail(xs, XS_ERR_POLICY_VIOLATION, "out of memory");
		return XS_NO_STR;
	}
	if (decode) {
		xs->strs_len += xs_decode(s, n, xs->strs + off) + 1;
	} else {
		memcpy(xs->strs + off, s, n);
		xs->strs[off + n] = '\0';
		xs->strs_len += n + 1;
	}
	return off;
}

static const char *xs_str(const struct xs *xs, size_t off)
{
	return off == XS_NO_STR ? NULL : xs->strs + off;
}

size_t xs_escape(char *out, size_t outsz, const char *s)
{
	size_t need = 0, w = 0;
	int full = outsz == 0;

	for (; *s; s++) {
		char one[2] = {*s, '\0'};
		const char *e;
		size_t n;

		switch (*s) {
		case '&':
			e = "&amp;";
			break;
		case '<':
			e = "&lt;";
			break;
		case '>':
			e = "&gt;";
			break;
		case '\'':
			e = "&apos;";
			break;
		case '"':
			e = "&quot;";
			break;
		case '\t': /* would be normalised to a space in an attribute */
			e = "&#9;";
			break;
		case '\n':
			e = "&#10;";
			break;
		case '\r':
			e = "&#13;";
			break;
		default:
			e = one;
			break;
		}
		n = strlen(e);
		/* never write half an escape: a truncated result stays well-formed */
		if (!full && w + n < outsz) {
			memcpy(out + w, e, n);
			w += n;
		} else {
			full = 1;
		}
		need += n;
	}
	if (outsz > 0)
		out[w] = '\0';
	return need;
}

/* ---- header ------------------------------------------------------------- */

static void xs_add_decl(struct xs *xs, const xmlChar *prefix, const char *uri)
{
	struct xs_decl *d;
	char tmp[8];
	size_t esc, need, ulen = strlen(uri);
	char *dec;

	if (xs->ndecls == XS_HEADER_DECLS) {
		xs_fail(xs, XS_ERR_POLICY_VIOLATION,
			"too many namespace declarations in the header");
		return;
	}
	d = &xs->decls[xs->ndecls];
	d->prefix = NULL;
	if (prefix != NULL && (d->prefix = (char *)xmlStrdup(prefix)) == NULL)
		goto oom;
	xs->ndecls++;

	/* libxml2 keeps "&#38;" in namespace names: decode, then escape */
	dec = xmlMalloc(ulen + 1);
	if (dec == NULL)
		goto oom;
	xs_decode(uri, ulen, dec);
	esc = xs_escape(tmp, 0, dec);
	need = xs->splice_len + esc + (prefix ? strlen((const char *)prefix) : 0) + 16;
	if (xs_reserve(&xs->splice, &xs->splice_cap, need) < 0) {
		xmlFree(dec);
		goto oom;
	}
	d->off = xs->splice_len;
	xs->splice_len +=
	    (size_t)snprintf(xs->splice + xs->splice_len, need - xs->splice_len, " xmlns%s%s='",
			     prefix ? ":" : "", prefix ? (const char *)prefix : "");
	xs->splice_len += xs_escape(xs->splice + xs->splice_len, need - xs->splice_len, dec);
	xs->splice[xs->splice_len++] = '\'';
	xs->splice[xs->splice_len] = '\0';
	d->len = xs->splice_len - d->off;
	xmlFree(dec);
	return;
oom:
	xs_fail(xs, XS_ERR_POLICY_VIOLATION, "out of memory");
}

static void xs_add_lang(struct xs *xs, const char *lang)
{
	char tmp[8];
	size_t esc = xs_escape(tmp, 0, lang);
	size_t need = xs->splice_len + esc + 16;

	if (xs_reserve(&xs->splice, &xs->splice_cap, need) < 0) {
		xs_fail(xs, XS_ERR_POLICY_VIOLATION, "out of memory");
		return;
	}
	xs->lang_off = xs->splice_len;
	xs->splice_len +=
	    (size_t)snprintf(xs->splice + xs->splice_len, need - xs->splice_len, " xml:lang='");
	xs->splice_len += xs_escape(xs->splice + xs->splice_len, need - xs->splice_len, lang);
	xs->splice[xs->splice_len++] = '\'';
	xs->splice[xs->splice_len] = '\0';
	xs->lang_len = xs->splice_len - xs->lang_off;
	xs->has_lang = 1;
}

/* Is prefix=uri one of the canonical outbound header's bindings? */
static int xs_canonical(const xmlChar *prefix, const xmlChar *uri)
{
	if (prefix == NULL)
		return xs_streq(uri, XS_NS_SERVER);
	if (xs_streq(prefix, "stream"))
		return xs_streq(uri, XS_NS_STREAM);
	if (xs_streq(prefix, "db"))
		return xs_streq(uri, XS_NS_DIALBACK);
	return 0;
}

static void xs_on_header(struct xs *xs, const xmlChar *localname, const xmlChar *uri,
			 int nb_namespaces, const xmlChar **namespaces, int nb_attributes,
			 const xmlChar **attributes)
{
	struct xs_header h;
	size_t off[5] = {XS_NO_STR, XS_NO_STR, XS_NO_STR, XS_NO_STR, XS_NO_STR};
	static const char *const names[4] = {"to", "from", "id", "version"};
	int i, default_seen = 0, dialback = 0;
	size_t pos, end;
	long consumed;

	if (xs->parser->input != NULL && xs->parser->input->buf != NULL &&
	    xs->parser->input->buf->encoder != NULL) {
		xs_fail(xs, XS_ERR_UNSUPPORTED_ENCODING, "only UTF-8 is supported");
		return;
	}
	if (!xs_streq(localname, "stream") || !xs_streq(uri, XS_NS_STREAM)) {
		xs_fail(xs, XS_ERR_INVALID_NAMESPACE, "header is not stream in " XS_NS_STREAM);
		return;
	}
	for (i = 0; i < nb_namespaces; i++) {
		const xmlChar *p = namespaces[2 * i], *u = namespaces[2 * i + 1];

		if (p == NULL) {
			default_seen = 1;
			if (!xs_streq(u, XS_NS_SERVER)) {
				xs_fail(xs, XS_ERR_INVALID_NAMESPACE,
					"default namespace is not " XS_NS_SERVER);
				return;
			}
		}
		if (p != NULL && xs_streq(u, XS_NS_DIALBACK))
			dialback = 1;
		if (!xs_canonical(p, u))
			xs_add_decl(xs, p, u ? (const char *)u : "");
		if (xs->halt != XS_RUNNING)
			return;
	}
	if (!default_seen)
		xs_add_decl(xs, NULL, ""); /* unqualified stanzas stay unqualified */

	xs->strs_len = 0;
	for (i = 0; i < nb_attributes; i++) {
		const xmlChar **a = &attributes[5 * i];
		const char *v = (const char *)a[3];
		size_t n = (size_t)(a[4] - a[3]);
		int k;

		if (a[1] == NULL) {
			for (k = 0; k < 4; k++)
				if (xs_streq(a[0], names[k]))
					off[k] = xs_put(xs, v, n, 1);
		} else if (xs_streq(a[2], xs_ns_xml) && xs_streq(a[0], "lang")) {
			off[4] = xs_put(xs, v, n, 1);
			if (off[4] != XS_NO_STR)
				xs_add_lang(xs, xs->strs + off[4]);
		}
	}
	if (xs->halt != XS_RUNNING)
		return;

	/* libxml2 reports the start tag with its cursor on the closing '>' or
	 * "/>"; find the end of the tag in our copy. */
	consumed = xmlByteConsumed(xs->parser);
	if (consumed < 0 || (size_t)consumed < xs->base) {
		xs_fail(xs, XS_ERR_NOT_WELL_FORMED, "framing: bad parser offset");
		return;
	}
	end = xs->base + xs->len;
	for (pos = (size_t)consumed; pos < end && xs->buf[pos - xs->base] != '>'; pos++)
		;
	if (pos >= end) {
		xs_fail(xs, XS_ERR_NOT_WELL_FORMED, "framing: header end not found");
		return;
	}
	xs->header_empty = pos > xs->base && xs->buf[pos - 1 - xs->base] == '/';
	xs->last_end = xs->head = pos + 1;
	xs->header_done = 1;

	h.to = xs_str(xs, off[0]);
	h.from = xs_str(xs, off[1]);
	h.id = xs_str(xs, off[2]);
	h.version = xs_str(xs, off[3]);
	h.lang = xs_str(xs, off[4]);
	h.has_dialback_ns = dialback;
	if (xs->cb->on_header)
		xs->cb->on_header(xs->ctx, &h);
}

/* ---- top-level elements ------------------------------------------------- */

/* The element's '<' is the first byte after the previous element that is
 * not whitespace; anything else there (a character reference, a CDATA
 * section) is text between top-level elements. Checks that the tag name
 * there is the one libxml2 reported. Returns the offset of '<' or
 * XS_NO_STR. */
static size_t xs_find_start(struct xs *xs, const xmlChar *prefix, const xmlChar *localname,
			    size_t *name_end)
{
	size_t pos = xs->head, end = xs->base + xs->len;
	size_t plen = prefix ? strlen((const char *)prefix) : 0;
	size_t llen = strlen((const char *)localname);
	const char *p;

	while (pos < end && xs_blank((unsigned char)xs->buf[pos - xs->base]))
		pos++;
	if (end - pos < 2 + plen + (plen ? 1 : 0) + llen)
		return XS_NO_STR;
	p = xs->buf + (pos - xs->base);
	if (*p++ != '<')
		return XS_NO_STR;
	if (plen) {
		if (memcmp(p, prefix, plen) != 0 || p[plen] != ':')
			return XS_NO_STR;
		p += plen + 1;
	}
	if (memcmp(p, localname, llen) != 0)
		return XS_NO_STR;
	p += llen;
	if (*p != '>' && *p != '/' && !xs_blank((unsigned char)*p))
		return XS_NO_STR;
	*name_end = xs->base + (size_t)(p - xs->buf);
	return pos;
}

/* Record up to max of the SAX2 attributes; sets *partial when some are
 * left out. Returns how many were recorded. */
static size_t xs_put_attrs(struct xs *xs, int nb_attributes, const xmlChar **attributes, size_t max,
			   int *partial)
{
	size_t n = 0;

	for (int i = 0; i < nb_attributes; i++) {
		const xmlChar **a = &attributes[5 * i];
		struct xs_attr *at;

		if (n == max) {
			*partial = 1;
			break;
		}
		if (xs_grow((void **)&xs->attrs, &xs->attrs_cap, xs->nattrs + 1,
			    sizeof(*xs->attrs)) < 0 ||
		    xs_grow((void **)&xs->attr_val, &xs->attrv_cap, xs->nattrs + 1,
			    sizeof(*xs->attr_val)) < 0) {
			xs_fail(xs, XS_ERR_POLICY_VIOLATION, "out of memory");
			break;
		}
		at = &xs->attrs[xs->nattrs];
		at->name = (const char *)a[0];
		at->ns = a[2] ? (const char *)a[2] : "";
		at->value = NULL;
		xs->attr_val[xs->nattrs++] =
		    xs_put(xs, (const char *)a[3], (size_t)(a[4] - a[3]), 1);
		n++;
	}
	return n;
}

static void xs_start_stanza(struct xs *xs, const xmlChar *localname, const xmlChar *prefix,
			    const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
			    int nb_attributes, const xmlChar **attributes)
{
	static const char *const names[4] = {XS_STANZA_ATTR_NAMES};
	size_t start, d;
	int i, k;

	start = xs_find_start(xs, prefix, localname, &xs->el_name_end);
	if (start == XS_NO_STR) {
		xs_fail(xs, XS_ERR_NOT_WELL_FORMED, "text between top-level elements");
		return;
	}
	xs->el_start = xs->head = start;
	xs->el_name = localname;
	xs->el_ns = uri;
	xs->strs_len = 0;
	xs->nchildren = xs->n2 = 0;
	xs->nattrs = xs->el_nattrs = 0;
	xs->el_partial = 0;
	for (k = 0; k < 3; k++)
		xs->open[k].idx = XS_NO_STR;
	for (k = 0; k < 4; k++)
		xs->el_attr[k] = XS_NO_STR;
	memset(xs->skip, 0, sizeof(xs->skip));
	xs->lang_skip = 0;

	/* a declaration the tag makes itself must not be spliced in again */
	for (i = 0; i < nb_namespaces; i++)
		for (d = 0; d < xs->ndecls; d++)
			if (xs_same(xs->decls[d].prefix, (const char *)namespaces[2 * i]))
				xs->skip[d] = 1;
	xs->el_nattrs =
	    xs_put_attrs(xs, nb_attributes, attributes, XS_MAX_STANZA_ATTRS, &xs->el_partial);
	for (i = 0; i < nb_attributes; i++) {
		const xmlChar **a = &attributes[5 * i];

		if (a[1] == NULL) {
			for (k = 0; k < 4; k++)
				if (xs->st_names[k] != NULL ? a[0] == xs->st_names[k]
							    : xs_streq(a[0], names[k]))
					/* recorded attributes are decoded already */
					xs->el_attr[k] = (size_t)i < xs->el_nattrs
							     ? xs->attr_val[i]
							     : xs_put(xs, (const char *)a[3],
								      (size_t)(a[4] - a[3]), 1);
		} else if (xs_streq(a[2], xs_ns_xml) && xs_streq(a[0], "lang")) {
			xs->lang_skip = 1;
		}
	}
}

/* Where the tag whose '>' or "/>" libxml2 has reached starts: the last
 * '<' before it (values cannot hold a '<', the lexer refuses it). */
static size_t xs_tag_start(const struct xs *xs)
{
	long consumed = xmlByteConsumed(xs->parser);
	size_t p;

	if (consumed < 0 || (size_t)consumed <= xs->el_start ||
	    (size_t)consumed > xs->base + xs->len)
		return XS_NO_STR;
	for (p = (size_t)consumed; p > xs->el_start; p--)
		if (xs->buf[p - 1 - xs->base] == '<')
			return p - 1;
	return XS_NO_STR;
}

static void xs_start_child(struct xs *xs, unsigned depth, const xmlChar *localname,
			   const xmlChar *uri, int nb_attributes, const xmlChar **attributes)
{
	struct xs_open_child *o = &xs->open[depth - 2];
	size_t parent2 = XS_NO_STR, idx, start;
	struct xs_child *c;
	struct xs_crec *r;

	o->idx = XS_NO_STR;
	o->len = 0;
	o->full = 0;
	if (depth == 2) {
		if (xs->n2 >= XS_MAX_CHILDREN) {
			xs->el_partial = 1;
			return;
		}
	} else {
		size_t pidx = xs->open[depth - 3].idx;

		if (pidx == XS_NO_STR) /* the parent was not recorded */
			return;
		parent2 = depth == 3 ? pidx : xs->crec[pidx].parent2;
		if (xs->crec[parent2].ndesc >= XS_MAX_DESCENDANTS) {
			xs->children[parent2].partial = 1;
			return;
		}
	}
	start = xs_tag_start(xs);
	if (start == XS_NO_STR) {
		xs_fail(xs, XS_ERR_NOT_WELL_FORMED, "framing: bad parser offset");
		return;
	}
	if (xs_grow((void **)&xs->children, &xs->children_cap, xs->nchildren + 1,
		    sizeof(*xs->children)) < 0 ||
	    xs_grow((void **)&xs->crec, &xs->crec_cap, xs->nchildren + 1, sizeof(*xs->crec)) < 0) {
		xs_fail(xs, XS_ERR_POLICY_VIOLATION, "out of memory");
		return;
	}
	idx = xs->nchildren++;
	if (depth == 2)
		xs->n2++;
	else
		xs->crec[parent2].ndesc++;
	o->idx = idx;
	c = &xs->children[idx];
	r = &xs->crec[idx];
	memset(c, 0, sizeof(*c));
	c->depth = depth;
	c->name = (const char *)localname;
	c->ns = uri ? (const char *)uri : "";
	c->text = "";
	r->text = XS_NO_STR;
	r->start = start;
	r->end = start;
	r->parent2 = parent2;
	r->ndesc = 0;
	r->attr0 = xs->nattrs;
	c->nattrs = xs_put_attrs(xs, nb_attributes, attributes, XS_MAX_CHILD_ATTRS, &c->partial);
}

static void xs_end_child(struct xs *xs, unsigned depth)
{
	struct xs_open_child *o = &xs->open[depth - 2];
	long consumed = xmlByteConsumed(xs->parser);
	struct xs_crec *r;

	if (o->idx == XS_NO_STR)
		return;
	r = &xs->crec[o->idx];
	if (consumed < 0 || (size_t)consumed <= r->start || (size_t)consumed > xs->base + xs->len ||
	    xs->buf[(size_t)consumed - 1 - xs->base] != '>') {
		xs_fail(xs, XS_ERR_NOT_WELL_FORMED, "framing: bad parser offset");
		return;
	}
	r->end = (size_t)consumed;
	if (o->full)
		xs->children[o->idx].partial = 1;
	while (o->len > 0 && xs_blank((unsigned char)o->text[o->len - 1]))
		o->len--;
	r->text = xs_put(xs, o->text, o->len, 0);
	o->idx = XS_NO_STR;
}

static void xs_child_text(struct xs_open_child *o, const char *s, size_t n)
{
	size_t room;

	if (o->idx == XS_NO_STR || o->full)
		return;
	if (o->len == 0)
		while (n > 0 && xs_blank((unsigned char)*s)) {
			s++;
			n--;
		}
	room = XS_TEXT_MAX - o->len;
	if (n > room) {
		/* cut on a character boundary */
		while (room > 0 && ((unsigned char)s[room] & 0xC0) == 0x80)
			room--;
		n = room;
		o->full = 1;
	}
	memcpy(o->text + o->len, s, n);
	o->len += n;
}

/* Returns the bytes to deliver: our copy, or a spliced copy of it. */
static const char *xs_spliced(struct xs *xs, size_t end, size_t *len)
{
	const char *el = xs->buf + (xs->el_start - xs->base);
	size_t n = end - xs->el_start, head = xs->el_name_end - xs->el_start;
	size_t add = 0, o, d;

	for (d = 0; d < xs->ndecls; d++)
		if (!xs->skip[d])
			add += xs->decls[d].len;
	if (xs->has_lang && !xs->lang_skip)
		add += xs->lang_len;
	*len = n;
	if (add == 0)
		return el;
	if (xs_reserve(&xs->out, &xs->out_cap, n + add) < 0) {
		xs_fail(xs, XS_ERR_POLICY_VIOLATION, "out of memory");
		return NULL;
	}
	memcpy(xs->out, el, head);
	o = head;
	for (d = 0; d < xs->ndecls; d++)
		if (!xs->skip[d]) {
			memcpy(xs->out + o, xs->splice + xs->decls[d].off, xs->decls[d].len);
			o += xs->decls[d].len;
		}
	if (xs->has_lang && !xs->lang_skip) {
		memcpy(xs->out + o, xs->splice + xs->lang_off, xs->lang_len);
		o += xs->lang_len;
	}
	memcpy(xs->out + o, el + head, n - head);
	*len = n + add;
	return xs->out;
}

static void xs_end_stanza(struct xs *xs)
{
	struct xs_stanza s;
	long consumed = xmlByteConsumed(xs->parser);
	size_t end, i, add;

	/* just past the closing '>', for "</x>" and "/>" alike */
	if (consumed < 0 || (size_t)consumed <= xs->el_start ||
	    (size_t)consumed > xs->base + xs->len ||
	    xs->buf[(size_t)consumed - 1 - xs->base] != '>') {
		xs_fail(xs, XS_ERR_NOT_WELL_FORMED, "framing: bad parser offset");
		return;
	}
	end = (size_t)consumed;
	s.bytes = xs_spliced(xs, end, &s.len);
	if (s.bytes == NULL)
		return;
	s.name = (const char *)xs->el_name;
	s.ns = xs->el_ns ? (const char *)xs->el_ns : "";
	s.to = xs_str(xs, xs->el_attr[0]);
	s.from = xs_str(xs, xs->el_attr[1]);
	s.type = xs_str(xs, xs->el_attr[2]);
	s.id = xs_str(xs, xs->el_attr[3]);
	for (i = 0; i < xs->nattrs; i++) {
		const char *v = xs_str(xs, xs->attr_val[i]);

		xs->attrs[i].value = v ? v : "";
	}
	/* children sit after the first tag's name, behind any splice */
	add = s.len - (end - xs->el_start);
	for (i = 0; i < xs->nchildren; i++) {
		const struct xs_crec *r = &xs->crec[i];
		const char *t = xs_str(xs, r->text);
		struct xs_child *c = &xs->children[i];

		c->text = t ? t : "";
		c->attrs = c->nattrs > 0 ? xs->attrs + r->attr0 : NULL;
		c->start = r->start - xs->el_start + add;
		c->end = r->end - xs->el_start + add;
	}
	s.attrs = xs->attrs;
	s.nattrs = xs->el_nattrs;
	s.children = xs->children;
	s.nchildren = xs->nchildren;
	s.partial = xs->el_partial;
	xs->last_end = xs->head = end;
	if (xs->cb->on_stanza)
		xs->cb->on_stanza(xs->ctx, &s);
}

static void xs_end_stream(struct xs *xs)
{
	long consumed = xmlByteConsumed(xs->parser);
	size_t pos = xs->head, end = xs->base + xs->len;

	if (!xs->header_empty) {
		while (pos < end && xs_blank((unsigned char)xs->buf[pos - xs->base]))
			pos++;
		if (end - pos < 2 || xs->buf[pos - xs->base] != '<' ||
		    xs->buf[pos + 1 - xs->base] != '/') {
			xs_fail(xs, XS_ERR_NOT_WELL_FORMED, "text between top-level elements");
			return;
		}
	}
	if (consumed >= 0 && (size_t)consumed <= end)
		xs->last_end = xs->head = (size_t)consumed;
	xs->halt = XS_CLOSED;
	xs_soft_stop(xs);
	if (xs->cb->on_close)
		xs->cb->on_close(xs->ctx);
}

/* ---- SAX handlers ------------------------------------------------------- */

static size_t xs_len(const xmlChar *s)
{
	return s != NULL ? strlen((const char *)s) : 0;
}

/* Name and value lengths of one tag. libxml2 has the whole tag by now, and
 * the lexer bounded it by the stanza size as its bytes arrived; this bounds
 * what the handlers and the policy are asked to look at. NULL or why. */
static const char *xs_tag_too_long(const struct xs *xs, const xmlChar *localname,
				   const xmlChar *prefix, int nb_namespaces,
				   const xmlChar **namespaces, int nb_attributes,
				   const xmlChar **attributes)
{
	if (xs_len(localname) + xs_len(prefix) > xs->max_name)
		return "element name too long";
	for (int i = 0; i < nb_namespaces; i++) {
		if (xs_len(namespaces[2 * i]) > xs->max_name)
			return "namespace prefix too long";
		if (xs_len(namespaces[2 * i + 1]) > xs->max_value)
			return "namespace name too long";
	}
	for (int i = 0; i < nb_attributes; i++) {
		const xmlChar *const *a = &attributes[5 * i]; /* name, prefix, URI, value, end */

		if (xs_len(a[0]) + xs_len(a[1]) > xs->max_name)
			return "attribute name too long";
		if (a[3] != NULL && a[4] != NULL && (size_t)(a[4] - a[3]) > xs->max_value)
			return "attribute value too long";
	}
	return NULL;
}

static void xs_sax_start(void *ud, const xmlChar *localname, const xmlChar *prefix,
			 const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
			 int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
	struct xs *xs = ud;
	const char *why;
	unsigned depth;

	if (xs->halt != XS_RUNNING)
		return;
	depth = xs->level++; /* 0 = the header, 1 = a top-level element */
	why = xs_tag_too_long(xs, localname, prefix, nb_namespaces, namespaces, nb_attributes,
			      attributes);
	if (why != NULL) {
		xs_fail(xs, XS_ERR_POLICY_VIOLATION, why);
		return;
	}
	if (depth == 0) {
		xs_on_header(xs, localname, uri, nb_namespaces, namespaces, nb_attributes,
			     attributes);
		return;
	}
	if (depth > xs->max_depth) {
		xs_fail(xs, XS_ERR_POLICY_VIOLATION, "element nesting too deep");
		return;
	}
	if (depth == 1)
		xs_start_stanza(xs, localname, prefix, uri, nb_namespaces, namespaces,
				nb_attributes, attributes);
	else if (depth <= 4)
		xs_start_child(xs, depth, localname, uri, nb_attributes, attributes);
}

static void xs_sax_end(void *ud, const xmlChar *localname, const xmlChar *prefix,
		       const xmlChar *uri)
{
	struct xs *xs = ud;
	unsigned depth;

	if (xs->halt != XS_RUNNING || xs->level == 0)
		return;
	depth = --xs->level;
	if (depth == 0)
		xs_end_stream(xs);
	else if (depth == 1)
		xs_end_stanza(xs);
	else if (depth <= 4)
		xs_end_child(xs, depth);
}

static void xs_sax_text(void *ud, const xmlChar *ch, int len)
{
	struct xs *xs = ud;
	int i;

	if (xs->halt != XS_RUNNING || len <= 0)
		return;
	if (xs->level == 1) {
		for (i = 0; i < len; i++)
			if (!xs_blank(ch[i])) {
				xs_fail(xs, XS_ERR_NOT_WELL_FORMED,
					"text between top-level elements");
				return;
			}
	} else if (xs->level >= 3 && xs->level <= 5) {
		xs_child_text(&xs->open[xs->level - 3], (const char *)ch, (size_t)len);
	}
}

static void xs_sax_cdata(void *ud, const xmlChar *ch, int len)
{
	struct xs *xs = ud;

	if (xs->halt == XS_RUNNING && xs->level == 1)
		xs_fail(xs, XS_ERR_NOT_WELL_FORMED, "CDATA between top-level elements");
	else
		xs_sax_text(ud, ch, len);
}

static void xs_restricted(void *ud, const char *what)
{
	xs_fail(ud, XS_ERR_RESTRICTED_XML, what);
}

static void xs_sax_comment(void *ud, const xmlChar *value)
{
	xs_restricted(ud, "comment");
}

static void xs_sax_pi(void *ud, const xmlChar *target, const xmlChar *data)
{
	xs_restricted(ud, "processing instruction");
}

static void xs_sax_subset(void *ud, const xmlChar *name, const xmlChar *external_id,
			  const xmlChar *system_id)
{
	xs_restricted(ud, "document type declaration");
}

static void xs_sax_entity_decl(void *ud, const xmlChar *name, int type, const xmlChar *public_id,
			       const xmlChar *system_id, xmlChar *content)
{
	xs_restricted(ud, "entity declaration");
}

static void xs_sax_attr_decl(void *ud, const xmlChar *elem, const xmlChar *fullname, int type,
			     int def, const xmlChar *default_value, xmlEnumerationPtr tree)
{
	xs_restricted(ud, "attribute list declaration");
	xmlFreeEnumeration(tree); /* the handler owns it */
}

static void xs_sax_elem_decl(void *ud, const xmlChar *name, int type, xmlElementContentPtr content)
{
	xs_restricted(ud, "element declaration");
}

static void xs_sax_notation_decl(void *ud, const xmlChar *name, const xmlChar *public_id,
				 const xmlChar *system_id)
{
	xs_restricted(ud, "notation declaration");
}

static void xs_sax_unparsed_decl(void *ud, const xmlChar *name, const xmlChar *public_id,
				 const xmlChar *system_id, const xmlChar *notation)
{
	xs_restricted(ud, "entity declaration");
}

/* libxml2 resolves the five predefined entities itself and asks only for
 * the others. */
static xmlEntityPtr xs_sax_entity(void *ud, const xmlChar *name)
{
	xs_restricted(ud, "entity reference");
	return NULL;
}

static void xs_sax_reference(void *ud, const xmlChar *name)
{
	xs_restricted(ud, "entity reference");
}

static void xs_sax_error(void *ud, xmlErrorPtr e)
{
	struct xs *xs = ud;
	enum xs_error err = XS_ERR_NOT_WELL_FORMED;

	/* warnings (relative namespace URI, unknown XML version) are not
	 * errors; namespace errors (unbound prefix) are level ERROR */
	if (e == NULL || e->level < XML_ERR_ERROR)
		return;
	if (e->code == XML_ERR_NO_MEMORY) {
		/* also how the name dictionary limit shows */
		xs_fail(xs, XS_ERR_POLICY_VIOLATION, "too many names, or out of memory");
		return;
	} else if (e->code == XML_ERR_UNSUPPORTED_ENCODING)
		err = XS_ERR_UNSUPPORTED_ENCODING;
	xs_fail(xs, err, e->message ? e->message : "parser error");
}

/* ---- feeding ------------------------------------------------------------ */

static int xs_open_parser(struct xs *xs)
{
	xmlSAXHandler sax;
	size_t dict_limit;

	memset(&sax, 0, sizeof(sax));
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = xs_sax_start;
	sax.endElementNs = xs_sax_end;
	sax.characters = xs_sax_text;
	sax.ignorableWhitespace = xs_sax_text;
	sax.cdataBlock = xs_sax_cdata;
	sax.comment = xs_sax_comment;
	sax.processingInstruction = xs_sax_pi;
	sax.internalSubset = xs_sax_subset;
	sax.externalSubset = xs_sax_subset;
	sax.entityDecl = xs_sax_entity_decl;
	sax.attributeDecl = xs_sax_attr_decl;
	sax.elementDecl = xs_sax_elem_decl;
	sax.notationDecl = xs_sax_notation_decl;
	sax.unparsedEntityDecl = xs_sax_unparsed_decl;
	sax.getEntity = xs_sax_entity;
	sax.getParameterEntity = xs_sax_entity;
	sax.reference = xs_sax_reference;
	sax.serror = xs_sax_error;

	xs->parser = xmlCreatePushParserCtxt(&sax, xs, NULL, 0, NULL);
	if (xs->parser == NULL)
		return -ENOMEM;
	/* no NOENT, DTDLOAD or HUGE; IGNORE_ENC as well as our own check */
	xmlCtxtUseOptions(xs->parser, XML_PARSE_NONET | XML_PARSE_IGNORE_ENC);
	/* names are interned per stream: a peer inventing new ones forever
	 * must hit a limit, far below libxml2's 10 MB default */
	dict_limit = xs->max_size > XS_DICT_MIN / 2 ? 2 * xs->max_size : XS_DICT_MIN;
	memset(xs->st_names, 0, sizeof(xs->st_names)); /* the last parser's are gone */
	if (xs->parser->dict != NULL) {
		static const char *const names[4] = {XS_STANZA_ATTR_NAMES};

		xmlDictSetLimit(xs->parser->dict, dict_limit);
		for (int k = 0; k < 4; k++)
			xs->st_names[k] =
			    xmlDictLookup(xs->parser->dict, (const xmlChar *)names[k], -1);
	}
	return 0;
}

/* memmem() without relying on _GNU_SOURCE. */
static const char *xs_find(const char *p, size_t n, const char *needle)
{
	size_t k = strlen(needle), i;

	for (i = 0; i + k <= n; i++)
		if (memcmp(p + i, needle, k) == 0)
			return p + i;
	return NULL;
}

static int xs_prefix_of(const char *s, size_t n, const char *full)
{
	size_t fl = strlen(full);

	return memcmp(s, full, n < fl ? n : fl) == 0;
}

/* The stream must start in UTF-8 with no BOM, so libxml2 never switches
 * to a converter (which would also break byte offsets). Returns 1 when the
 * bytes may go to libxml2, 0 to wait for more, -1 after on_error. */
static int xs_check_prolog(struct xs *xs)
{
	const char *p = xs->buf;
	size_t n = xs->len, vlen;
	const char *e, *v, *end;
	char q;

	/* each verdict depends on a fixed prefix and they are tried in this
	 * order, so the outcome does not depend on how the bytes were cut */
	if (n == 0)
		return 0;
	if ((unsigned char)p[0] == 0xEF || (unsigned char)p[0] == 0xFE ||
	    (unsigned char)p[0] == 0xFF || p[0] == '\0') {
		xs_fail(xs, XS_ERR_UNSUPPORTED_ENCODING, "byte order mark or UTF-16/32");
		return -1;
	}
	if (p[0] != '<' && !xs_blank((unsigned char)p[0])) {
		xs_fail(xs, XS_ERR_NOT_WELL_FORMED, "stream does not start with markup");
		return -1;
	}
	if (n < 4)
		return 0;
	if (p[1] == '\0' || p[2] == '\0' || p[3] == '\0') {
		xs_fail(xs, XS_ERR_UNSUPPORTED_ENCODING, "UTF-16 or UTF-32");
		return -1;
	}
	if (n < 6)
		return xs_prefix_of(p, n, "<?xml") ? 0 : 1;
	if (memcmp(p, "<?xml", 5) != 0 || !xs_blank((unsigned char)p[5]))
		return 1;
	xs->has_decl = 1;
	end = xs_find(p, n < XS_DECL_MAX ? n : XS_DECL_MAX, "?>");
	if (end == NULL) {
		if (n < XS_DECL_MAX)
			return 0;
		xs_fail(xs, XS_ERR_NOT_WELL_FORMED, "XML declaration too long");
		return -1;
	}
	e = xs_find(p, (size_t)(end - p), "encoding");
	if (e == NULL)
		return 1;
	for (v = e + 8; v < end && xs_blank((unsigned char)*v); v++)
		;
	if (v < end && *v == '=')
		v++;
	while (v < end && xs_blank((unsigned char)*v))
		v++;
	if (v >= end || (*v != '\'' && *v != '"'))
		return 1; /* malformed: libxml2 will say so */
	q = *v++;
	for (vlen = 0; v + vlen < end && v[vlen] != q; vlen++)
		;
	if (vlen != 5 || strncasecmp(v, "UTF-8", 5) != 0) {
		xs_fail(xs, XS_ERR_UNSUPPORTED_ENCODING, "only UTF-8 is supported");
		return -1;
	}
	return 1;
}

static void xs_lex_bad(struct xs *xs, size_t at, enum xs_error err, const char *why)
{
	xs->lex_bad = at;
	xs->lex_pos = at;
	xs->lex_err = err;
	xs->lex_why = why;
}

/* Advance the tag lexer over new bytes; lex_safe becomes the end of the
 * last byte outside any start tag, end tag or CDATA section (see the top
 * of the file; an unfinished CDATA section can also leave libxml2 waiting
 * or not depending on the chunks). Comments, PIs and <!DOCTYPE are refused
 * here, at a fixed point in the bytes: libxml2's push parser reports some
 * of them differently depending on the chunks (a comment holding a CR,
 * cut after it). Its SAX handlers for them stay as a second line. */
static void xs_lex(struct xs *xs)
{
	const char *b = xs->buf;
	size_t i = xs->lex_pos, end = xs->base + xs->len;

	while (i < end) {
		const char *q;
		char c = b[i - xs->base];

		switch (xs->lex) {
		case XL_TEXT:
			q = memchr(b + (i - xs->base), '<', end - i);
			if (q == NULL) {
				i = end;
				xs->lex_safe = end;
				continue;
			}
			i = xs->base + (size_t)(q - b);
			xs->lex_safe = i;
			xs->lex = XL_LT;
			break;
		case XL_LT:
			xs->lex_run = 0;
			if (c == '!') {
				xs->lex = XL_BANG;
			} else if (c == '?' && i == 1 && xs->has_decl) {
				xs->lex = XL_DECL;
			} else if (c == '?') {
				xs_lex_bad(xs, i - 1, XS_ERR_RESTRICTED_XML,
					   "processing instruction");
				return;
			} else {
				xs->lex = XL_TAG;
				xs->lex_attrs = 0;
				continue; /* look at c again as part of the tag */
			}
			break;
		case XL_BANG:
			if (c == '[') {
				xs->lex = XL_CDATA_OPEN;
				xs->lex_run = 0;
			} else if (c == '-') {
				xs->lex = XL_BANG_DASH;
			} else {
				xs_lex_bad(xs, i - 2, XS_ERR_RESTRICTED_XML,
					   "document type declaration");
				return;
			}
			break;
		case XL_BANG_DASH:
			if (c == '-')
				xs_lex_bad(xs, i - 3, XS_ERR_RESTRICTED_XML, "comment");
			else
				xs_lex_bad(xs, i - 3, XS_ERR_NOT_WELL_FORMED, "bad markup");
			return;
		case XL_TAG: {
			/* most bytes of a tag mean nothing here: skip them */
			const char *p = b + (i - xs->base), *e = b + (end - xs->base);

			while (p < e && *p != '\'' && *p != '"' && *p != '>')
				p++;
			i = xs->base + (size_t)(p - b);
			if (i == end)
				continue;
			c = *p;
		}
			if ((c == '\'' || c == '"') && ++xs->lex_attrs > xs->max_attrs) {
				xs_lex_bad(xs, i, XS_ERR_POLICY_VIOLATION, "too many attributes");
				return;
			}
			if (c == '\'')
				xs->lex = XL_QUOTE1;
			else if (c == '"')
				xs->lex = XL_QUOTE2;
			else if (c == '>')
				xs->lex = XL_TEXT;
			break;
		case XL_QUOTE1:
		case XL_QUOTE2: {
			/* inside a value only its closing quote and '<' matter */
			const char *p = b + (i - xs->base), *e = b + (end - xs->base);
			char quote = xs->lex == XL_QUOTE1 ? '\'' : '"';

			while (p < e && *p != quote && *p != '<')
				p++;
			i = xs->base + (size_t)(p - b);
			if (i == end)
				continue;
			c = *p;
		}
			if (c == (xs->lex == XL_QUOTE1 ? '\'' : '"')) {
				xs->lex = XL_TAG;
			} else if (c == '<') {
				/* libxml2 would take it for the start of a tag and
				 * wait, or not, depending on the chunks */
				xs_lex_bad(xs, i, XS_ERR_NOT_WELL_FORMED,
					   "'<' in an attribute value");
				return;
			}
			break;
		case XL_CDATA_OPEN:
			/* anything but "<![CDATA[" is refused here, at a fixed
			 * byte, whatever the chunks (the fuzzer found "<![ " taken
			 * for CDATA, so the error depended on the cuts) */
			if (c != "CDATA["[xs->lex_run]) {
				xs_lex_bad(xs, i, XS_ERR_NOT_WELL_FORMED, "bad markup after <![");
				return;
			}
			if (++xs->lex_run == 6) {
				xs->lex = XL_CDATA;
				xs->lex_run = 0;
			}
			break;
		case XL_CDATA:
			if (c == '>' && xs->lex_run >= 2)
				xs->lex = XL_TEXT;
			else
				xs->lex_run = c == ']' ? xs->lex_run + 1 : 0;
			break;
		case XL_DECL:
			if (c == '>' && xs->lex_run)
				xs->lex = XL_TEXT;
			else
				xs->lex_run = c == '?';
			break;
		}
		i++;
		if (xs->lex == XL_TEXT || xs->lex == XL_DECL)
			xs->lex_safe = i;
	}
	xs->lex_pos = end;
}

/* Hand libxml2 every byte of our copy it has not seen yet, up to the end
 * of the last complete tag. */
static void xs_push(struct xs *xs)
{
	size_t upto;

	if (!xs->prolog_ok) {
		int r = xs_check_prolog(xs);

		if (r <= 0)
			return;
		xs->prolog_ok = 1;
	}
	if (xs->lex_bad == XS_NO_STR)
		xs_lex(xs);
	/* Before refusing what the lexer found, let libxml2 judge the text in
	 * front of it: it parses text only once a '<' follows (or 300 bytes
	 * wait), so hand it that '<' too. It cannot complete anything with it. */
	upto = xs->lex_bad == XS_NO_STR ? xs->lex_safe : xs->lex_bad + 1;
	while (xs->halt == XS_RUNNING && xs->xml_fed < upto) {
		size_t n = upto - xs->xml_fed;
		const char *p = xs->buf + (xs->xml_fed - xs->base);
		int rc;

		if (n > INT_MAX)
			n = INT_MAX;
		xs->xml_fed += n;
		rc = xmlParseChunk(xs->parser, p, (int)n, 0);
		if (xs->halt == XS_RUNNING && rc != 0 &&
		    (xs->parser->wellFormed == 0 || xs->parser->instate == XML_PARSER_EOF))
			xs_fail(xs, XS_ERR_NOT_WELL_FORMED, "parser error");
	}
	if (xs->lex_bad != XS_NO_STR)
		xs_fail(xs, xs->lex_err, xs->lex_why);
	if (xs->halt != XS_RUNNING)
		xmlStopParser(xs->parser); /* outside any callback now */
}

/* Drop what is no longer needed: delivered elements and whitespace that
 * libxml2 has already seen between top-level elements. */
static void xs_compact(struct xs *xs)
{
	size_t drop;

	if (xs->header_done && xs->level == 1)
		while (xs->head < xs->xml_fed &&
		       xs_blank((unsigned char)xs->buf[xs->head - xs->base]))
			xs->head++;
	drop = xs->head - xs->base;
	if (drop > 0) {
		memmove(xs->buf, xs->buf + drop, xs->len - drop);
		xs->len -= drop;
		xs->base = xs->head;
	}
	if (xs->out_cap > XS_BUF_KEEP) { /* only used while delivering */
		xmlFree(xs->out);
		xs->out = NULL;
		xs->out_cap = 0;
	}
	if (xs->strs_cap > XS_BUF_KEEP && xs->header_done && xs->level == 1) {
		xmlFree(xs->strs);
		xs->strs = NULL;
		xs->strs_cap = xs->strs_len = 0;
	}
	if (xs->cap > XS_BUF_KEEP && xs->len <= XS_BUF_KEEP / 2) {
		char *n = xmlRealloc(xs->buf, XS_BUF_KEEP);

		if (n != NULL) {
			xs->buf = n;
			xs->cap = XS_BUF_KEEP;
		}
	}
}

static void xs_destroy(struct xs *xs);

int xs_feed(struct xs *xs, const char *data, size_t len)
{
	int rc;

	if (xs->in_feed)
		return -EBUSY; /* from a callback: libxml2 is not re-entrant */
	xs->in_total += len;
	if (xs->halt == XS_FAILED)
		return -EPROTO;
	xs->in_feed = 1;
	while (len > 0 && xs->halt == XS_RUNNING) {
		size_t room, n;

		xs_compact(xs);
		room = xs->max_size - xs->len;
		if (room == 0) {
			xs_fail(xs, XS_ERR_POLICY_VIOLATION,
				xs->header_done ? "element too large" : "stream header too large");
			break;
		}
		n = len < room ? len : room;
		if (xs_reserve(&xs->buf, &xs->cap, xs->len + n) < 0) {
			xs_fail(xs, XS_ERR_POLICY_VIOLATION, "out of memory");
			break;
		}
		memcpy(xs->buf + xs->len, data, n);
		xs->len += n;
		data += n;
		len -= n;
		xs_push(xs);
	}
	xs->in_feed = 0;
	rc = xs->halt == XS_FAILED ? -EPROTO : 0;
	if (xs->free_pending)
		xs_destroy(xs);
	return rc;
}

void xs_stop(struct xs *xs)
{
	if (xs == NULL || xs->halt != XS_RUNNING)
		return;
	xs->halt = XS_STOPPED;
	xs_soft_stop(xs);
	if (!xs->in_feed && xs->parser != NULL)
		xmlStopParser(xs->parser);
}

size_t xs_trailing(const struct xs *xs)
{
	return xs->in_total - xs->last_end;
}

static void xs_clear(struct xs *xs)
{
	size_t i;

	if (xs->parser != NULL) {
		xmlFreeParserCtxt(xs->parser);
		xs->parser = NULL;
	}
	for (i = 0; i < xs->ndecls; i++)
		xmlFree(xs->decls[i].prefix);
	xs->ndecls = 0;
	xs->splice_len = 0;
	xs->has_lang = xs->lang_skip = 0;
	xs->len = xs->base = xs->head = xs->xml_fed = xs->in_total = xs->last_end = 0;
	xs->lex_pos = xs->lex_safe = 0;
	xs->lex_bad = XS_NO_STR;
	xs->has_decl = 0;
	xs->lex = XL_TEXT;
	xs->lex_run = 0;
	xs->halt = XS_RUNNING;
	xs->prolog_ok = xs->header_done = xs->header_empty = 0;
	xs->level = 0;
	xs->nchildren = xs->n2 = 0;
	xs->nattrs = xs->el_nattrs = 0;
	xs->strs_len = 0;
	xs->detail[0] = '\0';
}

int xs_reset(struct xs *xs)
{
	if (xs->in_feed)
		return -EBUSY;
	xs_clear(xs);
	if (xs->cap > XS_BUF_KEEP) {
		xmlFree(xs->buf);
		xs->buf = NULL;
		xs->cap = 0;
	}
	return xs_open_parser(xs);
}

struct xs *xs_new(const struct xs_callbacks *cb, void *ctx, const struct xs_limits *limits)
{
	struct xs *xs;

	xmlInitParser();
	xs = xmlMalloc(sizeof(*xs));
	if (xs == NULL)
		return NULL;
	memset(xs, 0, sizeof(*xs));
	xs_clear(xs);
	xs->cb = cb;
	xs->ctx = ctx;
	xs->max_size =
	    limits && limits->max_stanza_size ? limits->max_stanza_size : XS_DEFAULT_STANZA;
	xs->max_depth = limits && limits->max_depth ? limits->max_depth : XS_DEFAULT_DEPTH;
	xs->max_attrs = limits && limits->max_attrs ? limits->max_attrs : XS_MAX_ATTRS;
	xs->max_name =
	    limits && limits->max_name_length ? limits->max_name_length : XS_MAX_NAME_LENGTH;
	xs->max_value =
	    limits && limits->max_attr_length ? limits->max_attr_length : XS_MAX_ATTR_LENGTH;
	if (xs->max_depth > XS_LIBXML_DEPTH)
		xs->max_depth = XS_LIBXML_DEPTH;
	if (xs_open_parser(xs) < 0)
		goto fail;
	return xs;
fail:
	xs_free(xs);
	return NULL;
}

static void xs_destroy(struct xs *xs)
{
	xs_clear(xs);
	xmlFree(xs->buf);
	xmlFree(xs->strs);
	xmlFree(xs->splice);
	xmlFree(xs->out);
	xmlFree(xs->children);
	xmlFree(xs->crec);
	xmlFree(xs->attrs);
	xmlFree(xs->attr_val);
	xmlFree(xs);
}

void xs_free(struct xs *xs)
{
	if (xs == NULL)
		return;
	if (xs->in_feed) { /* from a callback: finish the feed first */
		xs->free_pending = 1;
		xs_stop(xs);
		return;
	}
	xs_destroy(xs);
}

const char *xs_attr_get(const struct xs_attr *attrs, size_t nattrs, const char *name)
{
	for (size_t i = 0; i < nattrs; i++)
		if (attrs[i].ns[0] == '\0' && strcmp(attrs[i].name, name) == 0)
			return attrs[i].value;
	return NULL;
}
