/* fuzz_identity: libFuzzer target for the certificate identity checks
 * (certs/identity.c): ident_match, ident_pin and ident_verify over a
 * certificate a peer chose. The input is imported as one DER
 * certificate; inputs GnuTLS refuses stop there.
 *
 * The reference domains are a fixed list plus names read from the
 * certificate itself (each dNSName and xmppAddr, a wildcard's "*" replaced
 * by a label, the commonName), so mutated certificates keep reaching the
 * matching code rather than only the mismatch path.
 *
 * Invariants beyond "no crash, no leak", for each domain D:
 *  - ident_match returns 1, 0, -EINVAL or -ENOMEM; a D that does not
 *    normalise (empty label, '*', '@', ...) gives 0;
 *  - allow_cn only adds: a match without it is a match with it, and an
 *    error without it is the same error with it;
 *  - spelling does not matter: for an ASCII D, upper case and a trailing
 *    dot give the same answer;
 *  - completeness: a plain ASCII dNSName that normalises matches itself,
 *    and "*.rest" (rest with two labels or more) matches "w.rest",
 *    unless the extension is refused (< 0); with no subjectAltName and one
 *    commonName that normalises, allow_cn matches the commonName;
 *  - ident_pin is stable; ident_verify with the leaf's own pin, no trust
 *    list and a time inside the validity period says ok / name-mismatch /
 *    bad-cert exactly as ident_match says 1 / 0 / < 0, and just outside
 *    the period says expired / not-yet-valid; with a pin of another key it
 *    never says ok; with the certificate as its own anchor, ok implies a
 *    name match. 'why' is "" on ok, else non-empty printable ASCII. */
#include "domain.h"
#include "identity.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DOMAINS 16
#define NAME_MAX_LEN (DOMAIN_MAX + 8)

static const char *const fixed[] = {
    "example.com",   "xmpp.example.com", "EXAMPLE.com.",
    "a.example.net", "other.example",	 "b\303\274cher.example",
    "com",	     "a..example",	 "*.example.com",
};

/* must: 0 no claim; 1 ident_match without allow_cn must not say 0; 2 the
 * same with allow_cn. (< 0, a refused extension, is allowed: fail closed.) */
struct dom {
	char name[NAME_MAX_LEN];
	int must;
};

static struct dom doms[MAX_DOMAINS];
static size_t ndoms;

static void add_dom(const char *s, size_t n, int must)
{
	if (ndoms == MAX_DOMAINS || n >= NAME_MAX_LEN || memchr(s, '\0', n))
		return;
	memcpy(doms[ndoms].name, s, n);
	doms[ndoms].name[n] = '\0';
	doms[ndoms].must = must;
	ndoms++;
}

/* 1 if s[0..n) normalises and, when dot is set, to more than one label. */
static int normalises(const char *s, size_t n, int dot)
{
	char out[DOMAIN_MAX + 1];

	return domain_normalise(s, n, out, sizeof(out)) >= 0 && (!dot || strchr(out, '.'));
}

static int ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

/* A presented name v[0..n): as D itself, or "*.rest" as "w.rest"; the
 * claim must is dropped when the name could not match by the rules. */
static void add_presented(const char *v, size_t n, int must)
{
	char w[NAME_MAX_LEN];

	if (memchr(v, '\0', n))
		return;
	if (n > 2 && v[0] == '*' && v[1] == '.') {
		if (n + 1 > sizeof(w))
			return;
		w[0] = 'w';
		memcpy(w + 1, v + 1, n - 1);
		if (!normalises(v + 2, n - 2, 1) || !normalises(w, n, 0))
			must = 0;
		add_dom(w, n, must);
		return;
	}
	add_dom(v, n, normalises(v, n, 0) ? must : 0);
}

/* The names in the certificate; returns 1 if it has a subjectAltName. */
static int collect(gnutls_x509_crt_t crt)
{
	char buf[NAME_MAX_LEN];
	int has_san = 0;

	for (unsigned i = 0; i < 8; i++) {
		size_t sz = sizeof(buf);
		unsigned critical;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &sz, &critical);

		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		has_san = 1;
		if (type == GNUTLS_SAN_DNSNAME)
			add_presented(buf, sz, ascii(buf, sz) ? 1 : 0);
		else if (type == GNUTLS_SAN_OTHERNAME_XMPP)
			add_presented(buf, sz, 0);
	}
	return has_san;
}

/* The commonName: a required match (with allow_cn) only when there is no
 * subjectAltName at all and exactly one commonName. */
static void collect_cn(gnutls_x509_crt_t crt, int has_san)
{
	char cn[DOMAIN_MAX + 2];
	size_t sz = sizeof(cn), sz2 = 0;
	int one;

	if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &sz) < 0 ||
	    sz >= sizeof(cn) || strlen(cn) != sz)
		return;
	one = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 1, 0, NULL, &sz2) ==
	      GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE;
	add_presented(cn, sz, !has_san && one ? 2 : 0);
}

static int match_checked(gnutls_x509_crt_t crt, const char *d, int allow_cn)
{
	int m = ident_match(crt, d, allow_cn);

	if (m != 0 && m != 1 && m != -EINVAL && m != -ENOMEM)
		abort();
	return m;
}

static void check_why(enum ident_result r, const char *why)
{
	if (r == IDENT_OK) {
		if (why[0])
			abort();
		return;
	}
	if (!why[0])
		abort();
	for (const char *p = why; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			abort();
}

static enum ident_result verify(gnutls_x509_crt_t crt, const char *d, const struct ident_policy *p)
{
	char why[128];
	enum ident_result r = ident_verify(&crt, 1, d, p, why, sizeof(why));

	if ((unsigned)r > IDENT_BAD_CERT)
		abort();
	check_why(r, why);
	return r;
}

static void check_domain(gnutls_x509_crt_t crt, const struct dom *d, const struct ident_policy *own,
			 const struct ident_policy *other)
{
	size_t n = strlen(d->name);
	int m0 = match_checked(crt, d->name, 0), m1 = match_checked(crt, d->name, 1);

	if ((m0 == 1 && m1 != 1) || (m0 < 0 && m1 != m0))
		abort();
	if (!normalises(d->name, n, 0) && (m0 != 0 || m1 != 0))
		abort();
	if ((d->must == 1 && m0 == 0) || (d->must == 2 && m1 == 0))
		abort();
	if (ascii(d->name, n) && n > 0) {
		char *v = malloc(n + 2);

		for (size_t i = 0; i < n; i++)
			v[i] = d->name[i] >= 'a' && d->name[i] <= 'z' ? (char)(d->name[i] - 32)
								      : d->name[i];
		v[n] = '\0';
		if (match_checked(crt, v, 0) != m0 || match_checked(crt, v, 1) != m1)
			abort();
		if (d->name[n - 1] != '.') {
			memcpy(v, d->name, n);
			memcpy(v + n, ".", 2);
			if (match_checked(crt, v, 0) != m0)
				abort();
		}
		free(v);
	}
	if (own) {
		enum ident_result r = verify(crt, d->name, own);
		enum ident_result want = m0 == 1   ? IDENT_OK
					 : m0 == 0 ? IDENT_NAME_MISMATCH
						   : IDENT_BAD_CERT;

		if (r != want)
			abort();
	}
	if (verify(crt, d->name, other) == IDENT_OK)
		abort();
}

/* Verification with the certificate as its own trust anchor. */
static void check_self_anchor(gnutls_x509_crt_t crt, const uint8_t *data, size_t size)
{
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_x509_crt_t anchor = NULL;
	gnutls_datum_t der = {(unsigned char *)data, (unsigned)size};
	struct ident_policy p = {0};

	if (gnutls_x509_crt_init(&anchor) < 0)
		abort();
	if (gnutls_x509_crt_import(anchor, &der, GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_x509_trust_list_init(&tl, 0) < 0) {
		gnutls_x509_crt_deinit(anchor);
		return;
	}
	if (gnutls_x509_trust_list_add_cas(tl, &anchor, 1, 0) != 1) {
		gnutls_x509_crt_deinit(anchor);
		gnutls_x509_trust_list_deinit(tl, 0);
		return;
	}
	/* anchor now belongs to tl. */
	p.trust = tl;
	p.now = 1700000000;
	for (size_t i = 0; i < ndoms && i < 2; i++)
		if (verify(crt, doms[i].name, &p) == IDENT_OK &&
		    match_checked(crt, doms[i].name, 0) != 1)
			abort();
	gnutls_x509_trust_list_deinit(tl, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t der = {(unsigned char *)data, (unsigned)size};
	unsigned char pin[1][IDENT_PIN_LEN], pin2[IDENT_PIN_LEN];
	static const unsigned char zero[1][IDENT_PIN_LEN];
	struct ident_policy own = {0}, other = {0};
	time_t from, until;
	int has_san, pinned;

	if (size > 65536 || gnutls_x509_crt_init(&crt) < 0)
		return 0;
	if (gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(crt);
		return 0;
	}
	ndoms = 0;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		add_dom(fixed[i], strlen(fixed[i]), 0);
	has_san = collect(crt);
	collect_cn(crt, has_san);

	pinned = ident_pin(crt, pin[0]) == 0;
	if (pinned && (ident_pin(crt, pin2) != 0 || memcmp(pin[0], pin2, IDENT_PIN_LEN) != 0))
		abort();
	other.pins = zero;
	other.npins = 1;
	other.now = 1700000000;
	from = gnutls_x509_crt_get_activation_time(crt);
	until = gnutls_x509_crt_get_expiration_time(crt);
	own.pins = pin;
	own.npins = 1;
	if (pinned && from != (time_t)-1 && until != (time_t)-1 && from <= until && from > 1 &&
	    until < INT64_MAX / 2) {
		own.now = from + (until - from) / 2;
		for (size_t i = 0; i < ndoms; i++)
			check_domain(crt, &doms[i], &own, &other);
		own.now = until + 1;
		if (verify(crt, "example.com", &own) != IDENT_EXPIRED)
			abort();
		own.now = from - 1;
		if (verify(crt, "example.com", &own) != IDENT_NOT_YET_VALID)
			abort();
	} else {
		for (size_t i = 0; i < ndoms; i++)
			check_domain(crt, &doms[i], NULL, &other);
	}
	check_self_anchor(crt, data, size);
	gnutls_x509_crt_deinit(crt);
	return 0;
}
