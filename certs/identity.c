/* identity: decides whether a peer's certificate chain authenticates an
 * XMPP domain (RFC 6125 as profiled by RFC 6120 section 13.7.1.2 and
 * XEP-0178), and handles SHA-256 public-key pins. Nothing here does I/O.
 *
 * Every presented name is run through domain_normalise, the same function
 * that makes the reference domain, and the two are compared with strcmp:
 * case, trailing dot and IDNA are then handled in one place, and a name that
 * is not a domain (empty label, '_', '@', '*' anywhere but where we strip it
 * ourselves, a NUL byte) simply never matches.
 *
 * SRV-ID (RFC 4985) and id-on-xmppAddr are otherName values: GnuTLS hands
 * us the DER of the value and we decode the IA5String / UTF8String with
 * libtasn1 ourselves (older GnuTLS has no decoder for SRV-ID; one decoder
 * for both keeps them alike). A value of the wrong string type never
 * matches.
 *
 * The certificate's subjectAltName is read once as a whole extension and
 * walked with gnutls_subject_alt_names_get. A malformed extension is an
 * error (the caller fails closed), not "no names"; GnuTLS 3.7 already
 * refuses such a certificate when it parses it, so that is defence only. */
#include "identity.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509-ext.h>
#include <libtasn1.h>

#include "domain.h"

#define OID_SAN "2.5.29.17"
#define OID_SRV "1.3.6.1.5.5.7.8.7"  /* id-on-dnsSRV, RFC 4985 */
#define OID_XMPP "1.3.6.1.5.5.7.8.5" /* id-on-xmppAddr, RFC 6120 */
#define SRV_S2S "_xmpp-server."
#define PIN_PREFIX "sha256//"
#define PIN_B64_LEN 44 /* 32 octets in padded base64 */
#define PIN_HEX_LEN (2 * IDENT_PIN_LEN)

/* The reference identity, normalised once per check. */
struct ref {
	char dom[DOMAIN_MAX + 1];
	const char *parent; /* borrowed, into dom: after the first label; NULL if one label */
};

static int gt_errno(int rc)
{
	return rc == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EINVAL;
}

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* why is NULL when the caller does not want a reason. */
static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static const char *err_word(int rc)
{
	return rc == -ENOMEM ? "out of memory" : "malformed";
}

static int ref_init(struct ref *r, const char *domain)
{
	const char *dot;

	if (domain_normalise(domain, strlen(domain), r->dom, sizeof(r->dom)) < 0)
		return -EINVAL;
	dot = strchr(r->dom, '.');
	r->parent = dot ? dot + 1 : NULL;
	return 0;
}

static int all_ascii(const unsigned char *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] >= 0x80)
			return 0;
	return 1;
}

/* One presented name v[0..n) against r. wild: "*" may be the whole
 * left-most label, standing for exactly one label, if at least two labels
 * follow it. ascii: the value must be ASCII (dNSName and IA5String are;
 * a U-label there is malformed, not something to map). */
static int name_matches(const struct ref *r, const unsigned char *v, size_t n, int wild, int ascii)
{
	char pat[DOMAIN_MAX + 1];

	if (n == 0 || memchr(v, '\0', n))
		return 0;
	if (ascii && !all_ascii(v, n))
		return 0;
	if (wild && n > 2 && v[0] == '*' && v[1] == '.') {
		if (!r->parent)
			return 0;
		if (domain_normalise((const char *)v + 2, n - 2, pat, sizeof(pat)) < 0)
			return 0;
		/* "*.com": the pattern would cover a whole top-level domain. */
		if (!strchr(pat, '.'))
			return 0;
		return strcmp(pat, r->parent) == 0;
	}
	/* Any other '*' (x*.example, a.*.example) fails normalisation. */
	if (domain_normalise((const char *)v, n, pat, sizeof(pat)) < 0)
		return 0;
	return strcmp(pat, r->dom) == 0;
}

/* The content of a DER string of type etype that must fill der[0..n)
 * exactly. Returns 0 and a view into der, or -1. */
static int der_string(unsigned etype, const gnutls_datum_t *der, const unsigned char **str,
		      unsigned *len)
{
	if (asn1_decode_simple_der(etype, der->data, der->size, str, len) != ASN1_SUCCESS)
		return -1;
	if (*str + *len != der->data + der->size)
		return -1; /* trailing bytes after the string */
	return 0;
}

/* SRV-ID "_xmpp-server.<name>"; <name> follows the DNS-ID rules. */
static int srv_matches(const struct ref *r, const unsigned char *v, size_t n)
{
	size_t pl = strlen(SRV_S2S);

	if (n <= pl || memchr(v, '\0', n))
		return 0;
	if (strncasecmp((const char *)v, SRV_S2S, pl) != 0)
		return 0; /* _xmpp-client. and every other service */
	return name_matches(r, v + pl, n - pl, 1, 1);
}

/* id-on-xmppAddr: must be the bare domain JID; no wildcard ('*' does not
 * normalise, nor do '@' and '/'). */
static int xmpp_matches(const struct ref *r, const unsigned char *v, size_t n)
{
	return name_matches(r, v, n, 0, 0);
}

static int oid_is(const gnutls_datum_t *oid, const char *want)
{
	size_t n = oid->size;

	if (n && oid->data[n - 1] == '\0')
		n--;
	return n == strlen(want) && memcmp(oid->data, want, n) == 0;
}

/* One otherName. *has_id is set when it is an identifier type that rules
 * out the CN-ID fallback, even if it does not decode. */
static int othername_matches(const struct ref *r, const gnutls_datum_t *oid,
			     const gnutls_datum_t *val, int *has_id)
{
	const unsigned char *s;
	unsigned n;

	if (oid_is(oid, OID_SRV)) {
		*has_id = 1;
		return der_string(ASN1_ETYPE_IA5_STRING, val, &s, &n) == 0 && srv_matches(r, s, n);
	}
	if (oid_is(oid, OID_XMPP)) {
		*has_id = 1;
		return der_string(ASN1_ETYPE_UTF8_STRING, val, &s, &n) == 0 &&
		       xmpp_matches(r, s, n);
	}
	return 0;
}

/* Walks the subjectAltName. Returns 1 on a match, 0 if none, -errno if the
 * extension is malformed. *has_id: some DNS-ID, SRV-ID, xmppAddr or URI-ID
 * is present. */
static int sans_match(gnutls_x509_crt_t crt, const struct ref *r, int *has_id)
{
	gnutls_datum_t ext = {NULL, 0};
	gnutls_subject_alt_names_t sans = NULL;
	unsigned critical;
	int rc, match = 0;

	*has_id = 0;
	rc = gnutls_x509_crt_get_extension_by_oid2(crt, OID_SAN, 0, &ext, &critical);
	if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return 0;
	if (rc < 0)
		return gt_errno(rc);
	rc = gnutls_subject_alt_names_init(&sans);
	if (rc < 0) {
		rc = gt_errno(rc);
		goto out;
	}
	rc = gnutls_x509_ext_import_subject_alt_names(&ext, sans, 0);
	if (rc < 0) {
		rc = gt_errno(rc);
		goto out;
	}
	for (unsigned i = 0; !match; i++) {
		gnutls_datum_t san = {NULL, 0}, oid = {NULL, 0};
		unsigned type;

		/* san and oid stay owned by sans. */
		rc = gnutls_subject_alt_names_get(sans, i, &type, &san, &oid);
		if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (rc < 0) {
			rc = gt_errno(rc);
			goto out;
		}
		switch (type) {
		case GNUTLS_SAN_DNSNAME:
			*has_id = 1;
			match = name_matches(r, san.data, san.size, 1, 1);
			break;
		case GNUTLS_SAN_URI:
			*has_id = 1; /* RFC 6125 6.4.4: URI-ID also rules out CN-ID */
			break;
		case GNUTLS_SAN_OTHERNAME:
			match = othername_matches(r, &oid, &san, has_id);
			break;
		/* GnuTLS 3.7 hands these out as raw GNUTLS_SAN_OTHERNAME; a
		 * version that decodes them for us gives the string. */
		case GNUTLS_SAN_OTHERNAME_SRV:
			*has_id = 1;
			match = srv_matches(r, san.data, san.size);
			break;
		case GNUTLS_SAN_OTHERNAME_XMPP:
			*has_id = 1;
			match = xmpp_matches(r, san.data, san.size);
			break;
		default:
			break;
		}
	}
	rc = match;
out:
	gnutls_subject_alt_names_deinit(sans);
	gnutls_free(ext.data);
	return rc;
}

/* Legacy CN-ID: the subject must have exactly one commonName (with two,
 * which one names the service is anybody's guess). */
static int cn_matches(gnutls_x509_crt_t crt, const struct ref *r)
{
	char cn[DOMAIN_MAX + 2];
	size_t sz = sizeof(cn), sz2 = 0;

	if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &sz) < 0)
		return 0;
	if (sz >= sizeof(cn) || strlen(cn) != sz)
		return 0; /* NUL inside */
	if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 1, 0, NULL, &sz2) !=
	    GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return 0;
	return name_matches(r, (const unsigned char *)cn, sz, 1, 0);
}

int ident_match(gnutls_x509_crt_t crt, const char *domain, int allow_cn)
{
	struct ref r;
	int rc, has_id;

	if (!crt || !domain)
		return -EINVAL;
	if (ref_init(&r, domain) < 0)
		return 0;
	rc = sans_match(crt, &r, &has_id);
	if (rc != 0)
		return rc;
	if (allow_cn && !has_id)
		return cn_matches(crt, &r);
	return 0;
}

int ident_pin(gnutls_x509_crt_t crt, unsigned char out[IDENT_PIN_LEN])
{
	gnutls_pubkey_t pk = NULL;
	gnutls_datum_t spki = {NULL, 0};
	int rc;

	if (!crt || !out)
		return -EINVAL;
	rc = gnutls_pubkey_init(&pk);
	if (rc < 0)
		return gt_errno(rc);
	rc = gnutls_pubkey_import_x509(pk, crt, 0);
	if (rc >= 0)
		rc = gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &spki);
	if (rc >= 0)
		rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, out);
	gnutls_free(spki.data);
	gnutls_pubkey_deinit(pk);
	return rc < 0 ? gt_errno(rc) : 0;
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

int ident_pin_parse(const char *s, unsigned char out[IDENT_PIN_LEN])
{
	size_t pl = strlen(PIN_PREFIX), n;

	if (!s || !out)
		return -EINVAL;
	if (strncmp(s, PIN_PREFIX, pl) == 0) {
		gnutls_datum_t in, dec = {NULL, 0};
		int rc;

		s += pl;
		/* The decoder tolerates whitespace and missing padding; a
		 * config value should be exactly one canonical form. */
		if (strlen(s) != PIN_B64_LEN || s[PIN_B64_LEN - 1] != '=')
			return -EINVAL;
		for (size_t i = 0; i < PIN_B64_LEN - 1; i++)
			if (!is_b64(s[i]))
				return -EINVAL;
		in.data = (unsigned char *)s;
		in.size = PIN_B64_LEN;
		rc = gnutls_base64_decode2(&in, &dec);
		if (rc < 0)
			return gt_errno(rc);
		rc = dec.size == IDENT_PIN_LEN ? 0 : -EINVAL;
		if (rc == 0)
			memcpy(out, dec.data, IDENT_PIN_LEN);
		gnutls_free(dec.data);
		return rc;
	}
	n = strlen(s);
	if (n != PIN_HEX_LEN)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!is_hex(s[i]))
			return -EINVAL;
	{
		gnutls_datum_t in = {(unsigned char *)s, (unsigned)n};
		size_t sz = IDENT_PIN_LEN;

		if (gnutls_hex_decode(&in, out, &sz) < 0 || sz != IDENT_PIN_LEN)
			return -EINVAL;
	}
	return 0;
}

const char *ident_result_str(enum ident_result r)
{
	switch (r) {
	case IDENT_OK:
		return "ok";
	case IDENT_NO_CERT:
		return "no-cert";
	case IDENT_UNTRUSTED:
		return "untrusted";
	case IDENT_EXPIRED:
		return "expired";
	case IDENT_NOT_YET_VALID:
		return "not-yet-valid";
	case IDENT_NAME_MISMATCH:
		return "name-mismatch";
	case IDENT_PIN_MISMATCH:
		return "pin-mismatch";
	case IDENT_BAD_CERT:
		return "bad-cert";
	}
	return "unknown";
}

/* The GnuTLS status bits that mean "no trustworthy path", by name. */
static const struct {
	unsigned bit;
	const char *name;
} status_names[] = {
    {GNUTLS_CERT_SIGNER_NOT_FOUND, "signer-not-found"},
    {GNUTLS_CERT_SIGNER_NOT_CA, "signer-not-ca"},
    {GNUTLS_CERT_SIGNATURE_FAILURE, "signature-failure"},
    {GNUTLS_CERT_INSECURE_ALGORITHM, "insecure-algorithm"},
    {GNUTLS_CERT_REVOKED, "revoked"},
    {GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE, "signer-constraints-failure"},
    {GNUTLS_CERT_PURPOSE_MISMATCH, "purpose-mismatch"},
};

static enum ident_result check_chain(const gnutls_x509_crt_t *chain, unsigned n,
				     const struct ident_policy *p, char *why, size_t whylen)
{
	unsigned flags = 0, status = 0, other;
	int rc;

	if (p->now)
		flags |=
		    GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS;
	/* GnuTLS sorts a copy of the list; it does not write to it. */
	rc = gnutls_x509_trust_list_verify_crt2(p->trust, (gnutls_x509_crt_t *)chain, n, NULL, 0,
						flags, &status, NULL);
	if (rc < 0) {
		set_why(why, whylen, "chain verification failed: %s", gnutls_strerror_name(rc));
		return IDENT_UNTRUSTED;
	}
	if (status == 0)
		return IDENT_OK;
	other = status &
		~(unsigned)(GNUTLS_CERT_INVALID | GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED);
	if (other) {
		const char *name = "invalid";

		for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++)
			if (other & status_names[i].bit) {
				name = status_names[i].name;
				break;
			}
		set_why(why, whylen, "chain: %s", name);
		return IDENT_UNTRUSTED;
	}
	if (status & GNUTLS_CERT_EXPIRED) {
		set_why(why, whylen, "chain: a certificate has expired");
		return IDENT_EXPIRED;
	}
	if (status & GNUTLS_CERT_NOT_ACTIVATED) {
		set_why(why, whylen, "chain: a certificate is not yet valid");
		return IDENT_NOT_YET_VALID;
	}
	set_why(why, whylen, "chain: invalid");
	return IDENT_UNTRUSTED;
}

static enum ident_result check_leaf_time(gnutls_x509_crt_t leaf, time_t now, char *why,
					 size_t whylen)
{
	time_t from = gnutls_x509_crt_get_activation_time(leaf);
	time_t until = gnutls_x509_crt_get_expiration_time(leaf);

	if (from == (time_t)-1 || until == (time_t)-1) {
		set_why(why, whylen, "leaf validity period unreadable");
		return IDENT_BAD_CERT;
	}
	if (now < from) {
		set_why(why, whylen, "leaf not yet valid");
		return IDENT_NOT_YET_VALID;
	}
	if (now > until) {
		set_why(why, whylen, "leaf expired");
		return IDENT_EXPIRED;
	}
	return IDENT_OK;
}

static enum ident_result check_pins(gnutls_x509_crt_t leaf, const struct ident_policy *p, char *why,
				    size_t whylen)
{
	unsigned char pin[IDENT_PIN_LEN];
	int rc;

	if (!p->pins) {
		set_why(why, whylen, "npins > 0 but no pins");
		return IDENT_BAD_CERT;
	}
	rc = ident_pin(leaf, pin);
	if (rc < 0) {
		set_why(why, whylen, "leaf public key unreadable: %s", err_word(rc));
		return IDENT_BAD_CERT;
	}
	for (size_t i = 0; i < p->npins; i++)
		if (memcmp(pin, p->pins[i], IDENT_PIN_LEN) == 0)
			return IDENT_OK;
	set_why(why, whylen, "leaf key matches no pin");
	return IDENT_PIN_MISMATCH;
}

enum ident_result ident_verify(const gnutls_x509_crt_t *chain, unsigned n, const char *domain,
			       const struct ident_policy *p, char *why, size_t whylen)
{
	enum ident_result res;
	int rc;

	if (why && whylen)
		why[0] = '\0';
	if (!p || !domain) {
		set_why(why, whylen, "no policy or no domain");
		return IDENT_BAD_CERT;
	}
	if (!chain || n == 0 || !chain[0]) {
		set_why(why, whylen, "peer sent no certificate");
		return IDENT_NO_CERT;
	}
	if (!p->trust && p->npins == 0) {
		/* Fail closed: a name alone in a self-signed certificate
		 * proves nothing. */
		set_why(why, whylen, "no trust anchors and no pins");
		return IDENT_UNTRUSTED;
	}
	if (p->trust) {
		res = check_chain(chain, n, p, why, whylen);
		if (res != IDENT_OK)
			return res;
	}
	res = check_leaf_time(chain[0], p->now ? p->now : time(NULL), why, whylen);
	if (res != IDENT_OK)
		return res;
	if (p->npins > 0) {
		res = check_pins(chain[0], p, why, whylen);
		if (res != IDENT_OK)
			return res;
	}
	rc = ident_match(chain[0], domain, p->allow_cn);
	if (rc < 0) {
		set_why(why, whylen, "subjectAltName unreadable: %s", err_word(rc));
		return IDENT_BAD_CERT;
	}
	if (rc == 0) {
		set_why(why, whylen, "no presented identifier matches the domain");
		return IDENT_NAME_MISMATCH;
	}
	return IDENT_OK;
}
