/* identity: is this certificate chain good for this XMPP domain? RFC 6125
 * service identity as profiled for XMPP by RFC 6120 section 13.7.1.2 and
 * XEP-0178, plus SHA-256 public-key pins. Sans-I/O: pure functions over
 * certificates the caller already holds (e.g. from
 * gnutls_certificate_get_peers and gnutls_x509_crt_list_import). */
#ifndef XT_IDENTITY_H
#define XT_IDENTITY_H

#include <stddef.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define IDENT_PIN_LEN 32 /* SHA-256 */

struct ident_policy {
	/* borrowed; the anchors (and any intermediates) the chain must lead
	 * to. NULL: no chain check, and then npins must be > 0. */
	gnutls_x509_trust_list_t trust;
	/* Legacy CN-ID: the subject's one commonName is tried, and only when
	 * the certificate has no DNS-ID, SRV-ID, xmppAddr or URI-ID. Off (0)
	 * unless a peer is known to need it. */
	int allow_cn;
	/* borrowed, npins entries: SHA-256 of the SubjectPublicKeyInfo. If
	 * npins > 0 the leaf's key must be one of them. */
	const unsigned char (*pins)[IDENT_PIN_LEN];
	size_t npins;
	/* 0: time(NULL), and GnuTLS checks every certificate's validity
	 * period on the path. Otherwise a fixed time (tests, replay): GnuTLS
	 * time checks are switched off and only the leaf is checked, against
	 * this time. */
	time_t now;
};

enum ident_result {
	IDENT_OK = 0,
	IDENT_NO_CERT,	     /* empty chain */
	IDENT_UNTRUSTED,     /* no path to an anchor, bad signature, revoked; or no
				trust list and no pins */
	IDENT_EXPIRED,	     /* the leaf, or with now == 0 any path certificate */
	IDENT_NOT_YET_VALID, /* likewise, activation time in the future */
	IDENT_NAME_MISMATCH, /* no presented identifier matches the domain */
	IDENT_PIN_MISMATCH,  /* pins configured, leaf key is none of them */
	IDENT_BAD_CERT,	     /* unparsable certificate or extension; internal error */
};

/* "ok", "no-cert", "untrusted", "expired", "not-yet-valid", "name-mismatch",
 * "pin-mismatch", "bad-cert"; static storage. */
const char *ident_result_str(enum ident_result r);

/* Verifies chain[0..n) (leaf first; all borrowed) for the XMPP domain
 * 'domain' (normalised again here; one that does not normalise never
 * matches). Checks, in this order: chain against p->trust, leaf validity
 * period, pins, name (ident_match). The name is checked even when a pin
 * matches. On failure a short reason made only of our own words (nothing
 * copied from the certificate, so safe for a log line) is written to
 * why[0..whylen) when why is not NULL; on success why is set to "". */
enum ident_result ident_verify(const gnutls_x509_crt_t *chain, unsigned n, const char *domain,
			       const struct ident_policy *p, char *why, size_t whylen);

/* The name check alone on one certificate (borrowed). Presented
 * identifiers tried: DNS-ID (dNSName), SRV-ID (otherName
 * 1.3.6.1.5.5.7.8.7, "_xmpp-server." service only), id-on-xmppAddr
 * (otherName 1.3.6.1.5.5.7.8.5, a bare domain, no wildcard), then CN-ID
 * if allow_cn (see struct ident_policy). Wildcards: "*" as the whole
 * left-most label of a DNS-ID or SRV-ID name with at least three labels,
 * matching exactly one label. Values with a NUL byte never match.
 * Returns 1 (match), 0 (no match), -EINVAL (NULL argument or malformed
 * subjectAltName extension), -ENOMEM. */
int ident_match(gnutls_x509_crt_t crt, const char *domain, int allow_cn);

/* SHA-256 of the DER SubjectPublicKeyInfo of crt (borrowed) into out, as
 * GnuTLS re-encodes it (the same bytes curl's pinnedpubkey hashes).
 * Returns 0, -EINVAL or -ENOMEM. */
int ident_pin(gnutls_x509_crt_t crt, unsigned char out[IDENT_PIN_LEN]);

/* Parses a pin written as "sha256//" followed by 44 characters of padded
 * standard base64 (curl/HPKP style), or as 64 hex digits. Returns 0 or
 * -EINVAL (out is then unspecified). */
int ident_pin_parse(const char *s, unsigned char out[IDENT_PIN_LEN]);

#endif
