/* xmlstream: frames one XMPP stream (sans-I/O) into its header and its
 * top-level elements, from the libxml2 SAX2 push parser, keeping the bytes
 * of every top-level element exactly as received.
 *
 * Ownership: every pointer handed to a callback is borrowed and valid only
 * during that callback. The caller owns the struct xs. */
#ifndef XT_XMLSTREAM_H
#define XT_XMLSTREAM_H

#include <stddef.h>

#define XS_NS_STREAM "http://etherx.jabber.org/streams"
#define XS_NS_SERVER "jabber:server"
#define XS_NS_DIALBACK "jabber:server:dialback"

/* RFC 6120 section 4.9.3 stream error conditions the framer can raise. */
enum xs_error {
	XS_ERR_NONE = 0,
	XS_ERR_NOT_WELL_FORMED,	    /* not-well-formed */
	XS_ERR_RESTRICTED_XML,	    /* restricted-xml: comment, PI, DTD, entity decl */
	XS_ERR_POLICY_VIOLATION,    /* policy-violation: size/depth/attribute limits */
	XS_ERR_INVALID_NAMESPACE,   /* invalid-namespace: header not stream:stream in
				       the streams ns, or default ns not jabber:server */
	XS_ERR_UNSUPPORTED_ENCODING /* unsupported-encoding: BOM or encoding != UTF-8 */
};

/* Returns the RFC 6120 condition element name, e.g. "not-well-formed". */
const char *xs_error_condition(enum xs_error err);

struct xs_limits {
	size_t max_stanza_size; /* bytes of one top-level element (0 = 262144) */
	unsigned max_depth;	/* element nesting below the stream (0 = 64) */
	unsigned max_attrs;	/* attributes, xmlns included, in one tag (0 = 64) */
	/* bytes of an element or attribute name, prefix included (0 = 256) */
	unsigned max_name_length;
	/* bytes of one attribute value or namespace name as written, entity
	 * references not expanded (0 = 8192; the longest JID is 3071) */
	unsigned max_attr_length;
};

struct xs_header {
	/* decoded attribute values (entities resolved), NUL-terminated, NULL if absent */
	const char *to, *from, *id, *version, *lang;
	/* the header declares a prefix bound to jabber:server:dialback */
	int has_dialback_ns;
};

/* A decoded attribute (entities resolved). */
struct xs_attr {
	const char *name;  /* local name */
	const char *ns;	   /* namespace URI, "" when unprefixed */
	const char *value; /* NUL-terminated */
};

/* One element below a top-level element, at depth 2, 3 or 4 below the
 * stream (e.g. <starttls/> in <stream:features> and <required/> in it;
 * message > securitylabel > label > esssecuritylabel). Recorded in
 * document order, each only if its parent was: at most XS_MAX_CHILDREN
 * at depth 2, and at most XS_MAX_DESCENDANTS below each of those, so a
 * large payload cannot crowd out the elements after it. */
struct xs_child {
	unsigned depth;		     /* 2 = child of the stanza, 3 = grandchild, 4 */
	const char *name, *ns;	     /* local name and namespace URI */
	const char *text;	     /* character data of the element (trimmed), "" if none */
	const struct xs_attr *attrs; /* the first XS_MAX_CHILD_ATTRS attributes */
	size_t nattrs;
	/* [start, end): the whole element within the stanza's bytes */
	size_t start, end;
	/* something of this element was not recorded: text longer than
	 * XS_TEXT_MAX, attributes beyond XS_MAX_CHILD_ATTRS, or (depth 2)
	 * descendants beyond XS_MAX_DESCENDANTS */
	int partial;
};

#define XS_MAX_CHILDREN 32     /* recorded elements at depth 2 */
#define XS_MAX_DESCENDANTS 16  /* recorded elements at depth 3-4 under each */
#define XS_MAX_CHILD_ATTRS 8   /* recorded attributes of each child */
#define XS_MAX_STANZA_ATTRS 32 /* recorded attributes of the top-level element */
#define XS_TEXT_MAX 1024       /* bytes of text kept per child element */

struct xs_stanza {
	/* The bytes of the whole element, exactly as received, except that when
	 * the inbound stream header bound prefixes or xml:lang differently from
	 * the canonical outbound header (xmlns='jabber:server'
	 * xmlns:stream='http://etherx.jabber.org/streams'
	 * xmlns:db='jabber:server:dialback', no xml:lang), the missing
	 * declarations and xml:lang are spliced into the first tag, so these
	 * bytes mean the same under the canonical header. */
	const char *bytes;
	size_t len;
	const char *name; /* local name: "message", "result", "features", ... */
	const char *ns;	  /* namespace URI of the element */
	/* decoded attribute values of the top-level element, NULL if absent */
	const char *to, *from, *type, *id;
	/* every attribute of the top-level element as received (up to
	 * XS_MAX_STANZA_ATTRS; spliced declarations are not attributes) */
	const struct xs_attr *attrs;
	size_t nattrs;
	/* the recorded elements at depth 2-4, document order */
	const struct xs_child *children;
	size_t nchildren;
	/* depth-2 elements or top-level attributes were left unrecorded */
	int partial;
};

/* The decoded value of attribute name (no namespace) in attrs, or NULL. */
const char *xs_attr_get(const struct xs_attr *attrs, size_t nattrs, const char *name);

struct xs_callbacks {
	void (*on_header)(void *ctx, const struct xs_header *h);
	void (*on_stanza)(void *ctx, const struct xs_stanza *s);
	void (*on_close)(void *ctx); /* </stream:stream> received */
	void (*on_error)(void *ctx, enum xs_error err, const char *detail);
};

struct xs;

/* limits may be NULL (defaults). cb is borrowed and must outlive the xs. */
struct xs *xs_new(const struct xs_callbacks *cb, void *ctx, const struct xs_limits *limits);

/* Feed bytes. Callbacks run inside this call. Returns 0, or -EPROTO once an
 * error was reported through on_error (exactly once per stream); later calls
 * return -EPROTO without callbacks. -EBUSY when called from inside one of
 * its own callbacks (so is xs_reset; xs_free there is deferred). */
int xs_feed(struct xs *xs, const char *data, size_t len);

/* From inside a callback: deliver no further events until xs_reset(). */
void xs_stop(struct xs *xs);

/* Bytes fed after the end of the last delivered element (header or
 * top-level element); used to refuse data after <starttls/>/<proceed/>. */
size_t xs_trailing(const struct xs *xs);

/* Stream restart (after STARTTLS or SASL): forget everything, expect a new
 * header. Never call from inside a callback. */
int xs_reset(struct xs *xs);

/* Accepts NULL. Never call from inside a callback. */
void xs_free(struct xs *xs);

/* Append the XML-escaped form of s (for attribute values and text) to out,
 * at most outsz-1 bytes + NUL. Returns the length needed (like snprintf). */
size_t xs_escape(char *out, size_t outsz, const char *s);

#endif
