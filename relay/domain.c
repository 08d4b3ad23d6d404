/* domain: turns a domain (or the domainpart of a JID) as written by a peer or
 * in the config into the one form used for routing and comparison: IDNA2008
 * A-labels, lower-case ASCII, no trailing dot (RFC 7622 section 3.2).
 *
 * Labels are mapped one at a time rather than the whole name at once:
 * libidn2 (behind gnutls_idna_map) refuses names longer than 253 octets, but
 * an XMPP domainpart may have up to 1023, and splitting first lets us tell
 * "too long" (-ENAMETOOLONG) from "not a domain" (-EINVAL). The label
 * separators are the ones IDNA2003 knows (RFC 7622 says to strip a final one
 * of those before anything else): '.', U+3002, U+FF0E and U+FF61.
 *
 * IP literals are not supported: '[' is rejected like any other character
 * outside a-z 0-9 '-' '.'. Dotted IPv4 addresses pass as ordinary names. */
#include "domain.h"

#include <errno.h>
#include <string.h>

#include <gnutls/gnutls.h>

#define LABEL_MAX 63

/* A UTF-8 name this much longer than DOMAIN_MAX cannot map to a valid one
 * unless it is mostly characters IDNA maps to nothing; refuse it before
 * spending IDNA work on it. */
#define INPUT_MAX (4 * (DOMAIN_MAX + 1))

/* Length in octets of the label separator starting at s (0 if none). */
static size_t sep_len(const unsigned char *s, size_t avail)
{
	if (avail >= 1 && s[0] == '.')
		return 1;
	if (avail >= 3 && ((s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x82) || /* U+3002 */
			   (s[0] == 0xef && s[1] == 0xbc && s[2] == 0x8e) || /* U+FF0E */
			   (s[0] == 0xef && s[1] == 0xbd && s[2] == 0xa1)))  /* U+FF61 */
		return 3;
	return 0;
}

/* Length of a separator that ends the name s[0..len), 0 if none. */
static size_t trailing_sep_len(const unsigned char *s, size_t len)
{
	if (len >= 1 && s[len - 1] == '.')
		return 1;
	if (len >= 3 && sep_len(s + len - 3, 3) == 3)
		return 3;
	return 0;
}

static int ldh_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Appends one label, ASCII after mapping, to out at *pos, lower-cased. */
static int put_label(const char *lab, size_t n, char *out, size_t outsz, size_t *pos)
{
	size_t need, at = *pos;

	if (n == 0 || n > LABEL_MAX)
		return -EINVAL;
	need = at + (at ? 1 : 0) + n;
	if (need > DOMAIN_MAX || need + 1 > outsz)
		return -ENAMETOOLONG;
	if (at)
		out[at++] = '.';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)lab[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (!ldh_char(c))
			return -EINVAL;
		out[at++] = (char)c;
	}
	out[at] = '\0';
	*pos = at;
	return 0;
}

/* Unicode Default_Ignorable_Code_Point (DerivedCoreProperties.txt): soft
 * hyphen, zero-width characters, bidi controls, variation selectors, tags.
 * The UTS #46 mapping behind gnutls_idna_map deletes some of them, so
 * "a<U+200B>.example" would come out as "a.example": a name that looks
 * like, and is compared as, another one it does not spell. IDNA2008 itself
 * disallows them (RFC 5892), and RFC 7622 wants that form on the wire, so a
 * domain carrying one is refused instead of mapped. */
static int ignorable(unsigned long cp)
{
	return cp == 0xad || cp == 0x34f || cp == 0x61c || (cp >= 0x115f && cp <= 0x1160) ||
	       (cp >= 0x17b4 && cp <= 0x17b5) || (cp >= 0x180b && cp <= 0x180f) ||
	       (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2060 && cp <= 0x206f) || cp == 0x3164 || (cp >= 0xfe00 && cp <= 0xfe0f) ||
	       cp == 0xfeff || cp == 0xffa0 || (cp >= 0xfff0 && cp <= 0xfff8) ||
	       (cp >= 0x1bca0 && cp <= 0x1bca3) || (cp >= 0x1d173 && cp <= 0x1d17a) ||
	       (cp >= 0xe0000 && cp <= 0xe0fff);
}

/* 1 if the UTF-8 in lab[0..n) holds a default-ignorable code point, -1 if
 * it is not well-formed UTF-8 (overlong, surrogate, truncated), else 0. */
static int has_ignorable(const unsigned char *lab, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = lab[i];
		unsigned long cp;
		size_t len;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4, cp = c & 0x07;
		else
			return -1;
		if (i + len > n)
			return -1;
		for (size_t k = 1; k < len; k++) {
			if ((lab[i + k] & 0xc0) != 0x80)
				return -1;
			cp = (cp << 6) | (lab[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return -1;
		if (ignorable(cp))
			return 1;
		i += len;
	}
	return 0;
}

/* One label in[0..n), possibly non-ASCII, through IDNA to its A-label. */
static int map_label(const unsigned char *lab, size_t n, char *out, size_t outsz, size_t *pos)
{
	gnutls_datum_t a = {NULL, 0};
	int ascii = 1, rc;

	for (size_t i = 0; i < n; i++)
		if (lab[i] >= 0x80)
			ascii = 0;
	if (ascii)
		return put_label((const char *)lab, n, out, outsz, pos);
	if (has_ignorable(lab, n) != 0)
		return -EINVAL;
	/* n <= INPUT_MAX, so it fits. */
	rc = gnutls_idna_map((const char *)lab, (unsigned)n, &a, GNUTLS_IDNA_FORCE_2008);
	if (rc == GNUTLS_E_MEMORY_ERROR)
		return -ENOMEM;
	if (rc < 0)
		return -EINVAL;
	/* A mapping that yields a dot (e.g. from a compatibility character)
	 * would smuggle in a second label: put_label rejects '.'. */
	rc = put_label((const char *)a.data, a.size, out, outsz, pos);
	gnutls_free(a.data);
	return rc;
}

int domain_normalise(const char *in, size_t len, char *out, size_t outsz)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t pos = 0, start = 0, i = 0;
	int rc;

	if (!in || len == 0)
		return -EINVAL;
	if (memchr(in, '\0', len))
		return -EINVAL;
	len -= trailing_sep_len(s, len);
	if (len == 0)
		return -EINVAL;
	if (len > INPUT_MAX)
		return -ENAMETOOLONG;
	if (!out || outsz == 0)
		return -ENAMETOOLONG;
	out[0] = '\0';

	/* Split on every separator; an empty label anywhere (leading dot,
	 * "a..b", a second trailing dot) is rejected by put_label. */
	while (i <= len) {
		size_t sl = i < len ? sep_len(s + i, len - i) : 0;

		if (i == len || sl) {
			rc = map_label(s + start, i - start, out, outsz, &pos);
			if (rc < 0)
				goto fail;
			if (i == len)
				break;
			i += sl;
			start = i;
			continue;
		}
		i++;
	}
	return (int)pos;
fail:
	out[0] = '\0';
	return rc;
}

int jid_domain_part(const char *jid, const char **dom, size_t *len)
{
	const char *slash, *at;
	size_t end;

	if (!jid)
		return -EINVAL;
	slash = strchr(jid, '/');
	end = slash ? (size_t)(slash - jid) : strlen(jid);
	/* RFC 7622: the resourcepart, if its separator is there, must not be
	 * empty; nor may the localpart. */
	if (slash && slash[1] == '\0')
		return -EINVAL;
	at = NULL;
	for (size_t i = 0; i < end; i++)
		if (jid[i] == '@')
			at = jid + i;
	if (at == jid)
		return -EINVAL;
	*dom = at ? at + 1 : jid;
	*len = end - (size_t)(*dom - jid);
	return 0;
}

int jid_domain(const char *jid, char *out, size_t outsz)
{
	const char *dom;
	size_t len;
	int rc = jid_domain_part(jid, &dom, &len);

	return rc < 0 ? rc : domain_normalise(dom, len, out, outsz);
}
