/* bounce: builds the error stanza returned to the sender of a stanza the
 * relay cannot or will not deliver (RFC 6120 section 8.3), and decides
 * whether one may be sent at all.
 *
 * Never answered: anything of type "error" (errors are never answered with
 * errors, which is what keeps two relays from bouncing forever), and any iq
 * whose type is not "get" or "set": result and error by RFC 6120 8.2.3, and a
 * missing or unknown type because such an iq is malformed and not a request.
 * Only the name, the id and the swapped addresses of the original are used;
 * its content never is (DESIGN.md: no content from the stanza in the error).
 *
 * Attribute values and text are escaped for either quote; tab, newline and
 * carriage return become character references so that they survive attribute
 * value normalisation; any other control character is refused (-EINVAL), as
 * it cannot be written in XML 1.0. */
#include "bounce.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define STANZAS_NS "urn:ietf:params:xml:ns:xmpp-stanzas"

struct out_buf {
	char *p;     /* borrowed: the caller's buffer */
	size_t size; /* of p */
	size_t len;  /* written so far, or would have been */
	int bad;     /* a character that cannot be written was seen */
};

static void put(struct out_buf *o, const char *s, size_t n)
{
	if (o->len < o->size && n < o->size - o->len)
		memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void put_str(struct out_buf *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_escaped(struct out_buf *o, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '&':
			put_str(o, "&amp;");
			break;
		case '<':
			put_str(o, "&lt;");
			break;
		case '>':
			put_str(o, "&gt;");
			break;
		case '\'':
			put_str(o, "&apos;");
			break;
		case '"':
			put_str(o, "&quot;");
			break;
		case '\t':
			put_str(o, "&#9;");
			break;
		case '\n':
			put_str(o, "&#10;");
			break;
		case '\r':
			put_str(o, "&#13;");
			break;
		default:
			if (c < 0x20)
				o->bad = 1;
			else
				put(o, s, 1);
		}
	}
}

static void put_attr(struct out_buf *o, const char *name, const char *value)
{
	put_str(o, " ");
	put_str(o, name);
	put_str(o, "='");
	put_escaped(o, value);
	put_str(o, "'");
}

static int is_set(const char *s)
{
	return s && *s;
}

int bounce_allowed(const struct bounce_in *in)
{
	if (!in || !in->name || !is_set(in->to) || !is_set(in->from))
		return 0;
	if (in->type && strcmp(in->type, "error") == 0)
		return 0;
	if (strcmp(in->name, "iq") == 0)
		return in->type && (strcmp(in->type, "get") == 0 || strcmp(in->type, "set") == 0);
	return strcmp(in->name, "message") == 0 || strcmp(in->name, "presence") == 0;
}

/* A defined condition is a lower-case name with hyphens (RFC 6120 8.3.3);
 * it is written unescaped as an element name, so nothing else may pass. */
static int valid_condition(const char *c)
{
	if (!is_set(c))
		return 0;
	for (; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || *c == '-'))
			return 0;
	return 1;
}

static int valid_errtype(const char *t)
{
	return t && (strcmp(t, "cancel") == 0 || strcmp(t, "wait") == 0 ||
		     strcmp(t, "modify") == 0 || strcmp(t, "auth") == 0);
}

int bounce_build(const struct bounce_in *in, const char *condition, const char *errtype,
		 const char *text, char *out, size_t outsz)
{
	struct out_buf o = {out, outsz, 0, 0};

	if (!in || (!out && outsz > 0))
		return -EINVAL;
	if (out && outsz > 0)
		out[0] = '\0';
	if (!bounce_allowed(in))
		return -EPERM;
	if (!valid_condition(condition) || !valid_errtype(errtype))
		return -EINVAL;

	/* in->name is one of three literals, checked by bounce_allowed. */
	put_str(&o, "<");
	put_str(&o, in->name);
	put_str(&o, " xmlns='jabber:server'");
	put_attr(&o, "from", in->to);
	put_attr(&o, "to", in->from);
	put_str(&o, " type='error'");
	if (in->id)
		put_attr(&o, "id", in->id);
	put_str(&o, "><error type='");
	put_str(&o, errtype);
	put_str(&o, "'><");
	put_str(&o, condition);
	put_str(&o, " xmlns='" STANZAS_NS "'/>");
	if (text) {
		put_str(&o, "<text xmlns='" STANZAS_NS "'>");
		put_escaped(&o, text);
		put_str(&o, "</text>");
	}
	put_str(&o, "</error></");
	put_str(&o, in->name);
	put_str(&o, ">");

	if (o.bad) {
		if (outsz > 0)
			out[0] = '\0';
		return -EINVAL;
	}
	if (o.len >= outsz || o.len > (size_t)INT_MAX) {
		if (outsz > 0)
			out[0] = '\0';
		return -ENOSPC;
	}
	out[o.len] = '\0';
	return (int)o.len;
}
