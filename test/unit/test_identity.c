/* test_identity: ident_verify, ident_match, ident_pin, ident_pin_parse.
 * The PKI (a CA, an intermediate, an unrelated CA, one leaf per case) is
 * made at test time with GnuTLS, ECDSA P-256; each leaf goes through DER
 * and back so it is parsed like a peer's. */
#include "identity.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libtasn1.h>

#define DAY (24L * 3600)
#define OID_SRV "1.3.6.1.5.5.7.8.7"
#define OID_XMPP "1.3.6.1.5.5.7.8.5"

enum issuer { ISS_CA, ISS_OTHER, ISS_SELF, ISS_INTER };

struct cert_spec {
	const char *cn, *cn2; /* cn2: a second commonName */
	const char *dns[2];
	const char *dns_raw; /* dNSName with a NUL inside: dns_raw[0..raw_len) */
	const char *srv;     /* SRV-ID IA5String value, srv[0..raw_len) if raw_len */
	const char *xmpp;    /* id-on-xmppAddr UTF8String value */
	const char *uri;
	size_t raw_len;
	unsigned etype;		    /* string type for srv or xmpp if not the right one */
	long not_before, not_after; /* relative to t0 */
	enum issuer issuer;
	int with_inter; /* the chain presented is [leaf, intermediate] */
};

enum cert_id {
	C_DNS,
	C_DNS_UPPER,
	C_MULTI,
	C_WILD,
	C_WILD_TLD,
	C_WILD_PARTIAL,
	C_WILD_MID,
	C_SRV,
	C_SRV_UPPER,
	C_SRV_WILD,
	C_SRV_CLIENT,
	C_SRV_NUL,
	C_XMPP,
	C_XMPP_IDN,
	C_XMPP_WILD,
	C_XMPP_USER,
	C_CN,
	C_CN_WILD,
	C_CN_DNS,
	C_CN_SRV_CLIENT,
	C_CN_URI,
	C_CN_TWO,
	C_DNS_NUL,
	C_SRV_UTF8,
	C_XMPP_IA5,
	C_EXPIRED,
	C_FUTURE,
	C_UNTRUSTED,
	C_SELF,
	C_INTER,
	C_INTER_ALONE,
	C_COUNT
};

#define VALID .not_before = -DAY, .not_after = 365 * DAY
#define NUL_NAME "example.com\0.evil.com"
#define NUL_SRV "_xmpp-server.example.com\0.evil.com"

static const struct cert_spec specs[C_COUNT] = {
    [C_DNS] = {.dns = {"example.com"}, VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_DNS_UPPER] = {.dns = {"EXAMPLE.Com."}, VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_MULTI] = {.dns = {"a.example.net", "example.com"}, VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_WILD] = {.dns = {"*.example.com"}, VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_WILD_TLD] = {.dns = {"*.com"}, VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_WILD_PARTIAL] = {.dns = {"x*.example.com"}, VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_WILD_MID] = {.dns = {"a.*.example.com"}, VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_SRV] = {.srv = "_xmpp-server.example.com", VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_SRV_UPPER] = {.srv = "_XMPP-Server.Example.COM", VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_SRV_WILD] = {.srv = "_xmpp-server.*.example.com", VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_SRV_CLIENT] = {.srv = "_xmpp-client.example.com", VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_SRV_NUL] =
	{.srv = NUL_SRV, .raw_len = sizeof(NUL_SRV) - 1, VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_XMPP] = {.xmpp = "example.com", VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_XMPP_IDN] = {.xmpp = "b\xc3\xbc"
			    "cher.example",
		    VALID,
		    ISS_CA,
		    0},
    [C_XMPP_WILD] = {.xmpp = "*.example.com", VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_XMPP_USER] = {.xmpp = "user@example.com", VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_CN] = {.cn = "example.com", VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_CN_WILD] = {.cn = "*.example.com", VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_CN_DNS] = {.cn = "example.com",
		  .dns = {"other.example.net"},
		  VALID,
		  .issuer = ISS_CA,
		  .with_inter = 0},
    [C_CN_SRV_CLIENT] = {.cn = "example.com",
			 .srv = "_xmpp-client.example.com",
			 VALID,
			 .issuer = ISS_CA,
			 .with_inter = 0},
    [C_CN_URI] =
	{.cn = "example.com", .uri = "xmpp:example.com", VALID, .issuer = ISS_CA, .with_inter = 0},
    [C_CN_TWO] = {.cn = "example.com", .cn2 = "other.example", VALID, .issuer = ISS_CA},
    [C_SRV_UTF8] = {.srv = "_xmpp-server.example.com",
		    .etype = ASN1_ETYPE_UTF8_STRING,
		    VALID,
		    .issuer = ISS_CA},
    [C_XMPP_IA5] = {.xmpp = "example.com", .etype = ASN1_ETYPE_IA5_STRING, VALID, .issuer = ISS_CA},
    [C_DNS_NUL] = {.dns_raw = NUL_NAME,
		   .raw_len = sizeof(NUL_NAME) - 1,
		   VALID,
		   .issuer = ISS_CA,
		   .with_inter = 0},
    [C_EXPIRED] = {.dns = {"example.com"},
		   .not_before = -2 * DAY,
		   .not_after = -DAY,
		   .issuer = ISS_CA,
		   .with_inter = 0},
    [C_FUTURE] = {.dns = {"example.com"},
		  .not_before = DAY,
		  .not_after = 2 * DAY,
		  .issuer = ISS_CA,
		  .with_inter = 0},
    [C_UNTRUSTED] = {.dns = {"example.com"}, VALID, .issuer = ISS_OTHER, .with_inter = 0},
    [C_SELF] = {.dns = {"example.com"}, VALID, .issuer = ISS_SELF, .with_inter = 0},
    [C_INTER] = {.dns = {"example.com"}, VALID, .issuer = ISS_INTER, .with_inter = 1},
    [C_INTER_ALONE] = {.dns = {"example.com"}, VALID, .issuer = ISS_INTER, .with_inter = 0},
};

/* The test PKI; all owned by this file, freed by pki_free. */
static time_t t0;
static gnutls_x509_privkey_t ca_key, other_key, inter_key, leaf_key[C_COUNT];
static gnutls_x509_crt_t ca, other_ca, inter, leaf[C_COUNT];
static gnutls_x509_trust_list_t trust_ca;
static unsigned serial;

/* The PKI is made before the runner starts, outside any test: fail by
 * exiting, not with ck_assert. */
static void need(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "test_identity: %s failed\n", what);
		exit(EXIT_FAILURE);
	}
}

static void gt(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "test_identity: %s: %s\n", what, gnutls_strerror(rc));
		exit(EXIT_FAILURE);
	}
}

static gnutls_x509_privkey_t new_key(void)
{
	gnutls_x509_privkey_t k;

	gt(gnutls_x509_privkey_init(&k), "privkey_init");
	gt(gnutls_x509_privkey_generate(k, GNUTLS_PK_ECDSA,
					GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
	   "privkey_generate");
	return k;
}

/* DER TLV of a universal string type; returns the length written to out. */
static size_t der_string(unsigned etype, const char *s, size_t n, unsigned char *out, size_t outsz)
{
	unsigned tl = (unsigned)outsz;

	need(asn1_encode_simple_der(etype, (const unsigned char *)s, (unsigned)n, out, &tl) ==
		 ASN1_SUCCESS,
	     "asn1_encode_simple_der");
	need(tl + n <= outsz, "string fits");
	memcpy(out + tl, s, n);
	return tl + n;
}

static void add_othername(gnutls_x509_crt_t c, const char *oid, unsigned etype, const char *s,
			  size_t n)
{
	unsigned char der[256];
	size_t len = der_string(etype, s, n, der, sizeof(der));

	gt(gnutls_x509_crt_set_subject_alt_othername(c, oid, der, (unsigned)len,
						     GNUTLS_FSAN_APPEND),
	   "set othername");
}

/* A dNSName with a NUL inside: GnuTLS will not write one (it maps dNSName
 * through IDNA), so write the whole extension: SEQUENCE { [2] name }. */
static void set_raw_dns_san(gnutls_x509_crt_t c, const char *name, size_t n)
{
	unsigned char ext[256], len[8];
	int ll;
	size_t at = 0, body;

	asn1_length_der((unsigned long)n, len, &ll);
	body = 1 + (size_t)ll + n;
	need(body < 128, "short SAN");
	ext[at++] = 0x30;
	ext[at++] = (unsigned char)body;
	ext[at++] = 0x82; /* [2] IMPLICIT IA5String: dNSName */
	memcpy(ext + at, len, (size_t)ll);
	at += (size_t)ll;
	memcpy(ext + at, name, n);
	at += n;
	gt(gnutls_x509_crt_set_extension_by_oid(c, "2.5.29.17", ext, at, 0), "set raw SAN");
}

/* Signs and returns a parsed copy; the unsigned working copy is freed. */
static gnutls_x509_crt_t make_crt(const char *cn, int is_ca, long nb, long na,
				  gnutls_x509_privkey_t key, gnutls_x509_crt_t issuer,
				  gnutls_x509_privkey_t ikey, const struct cert_spec *s)
{
	gnutls_x509_crt_t c, out;
	unsigned char id[64], ser[4];
	size_t idlen = sizeof(id);
	gnutls_datum_t der;

	gt(gnutls_x509_crt_init(&c), "crt_init");
	gt(gnutls_x509_crt_set_version(c, 3), "version");
	serial++;
	ser[0] = 0x01;
	ser[1] = (unsigned char)(serial >> 16);
	ser[2] = (unsigned char)(serial >> 8);
	ser[3] = (unsigned char)serial;
	gt(gnutls_x509_crt_set_serial(c, ser, sizeof(ser)), "serial");
	gt(gnutls_x509_crt_set_activation_time(c, t0 + nb), "activation");
	gt(gnutls_x509_crt_set_expiration_time(c, t0 + na), "expiration");
	gt(gnutls_x509_crt_set_key(c, key), "set_key");
	gt(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, "xtrunk test",
					 11),
	   "O");
	if (cn)
		gt(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						 (unsigned)strlen(cn)),
		   "CN");
	gt(gnutls_x509_crt_set_basic_constraints(c, is_ca, -1), "basic constraints");
	gt(gnutls_x509_crt_set_key_usage(c, is_ca ? GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN
						  : GNUTLS_KEY_DIGITAL_SIGNATURE),
	   "key usage");
	gt(gnutls_x509_crt_get_key_id(c, 0, id, &idlen), "key id");
	gt(gnutls_x509_crt_set_subject_key_id(c, id, idlen), "ski");
	if (issuer) {
		idlen = sizeof(id);
		gt(gnutls_x509_crt_get_subject_key_id(issuer, id, &idlen, NULL), "issuer ski");
		gt(gnutls_x509_crt_set_authority_key_id(c, id, idlen), "aki");
	}
	if (s) {
		for (size_t i = 0; i < 2 && s->dns[i]; i++)
			gt(gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_DNSNAME, s->dns[i],
								(unsigned)strlen(s->dns[i]),
								GNUTLS_FSAN_APPEND),
			   "dNSName");
		if (s->dns_raw)
			set_raw_dns_san(c, s->dns_raw, s->raw_len);
		if (s->cn2)
			gt(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, s->cn2,
							 (unsigned)strlen(s->cn2)),
			   "CN 2");
		if (s->srv)
			add_othername(c, OID_SRV, s->etype ? s->etype : ASN1_ETYPE_IA5_STRING,
				      s->srv, s->raw_len ? s->raw_len : strlen(s->srv));
		if (s->xmpp)
			add_othername(c, OID_XMPP, s->etype ? s->etype : ASN1_ETYPE_UTF8_STRING,
				      s->xmpp, strlen(s->xmpp));
		if (s->uri)
			gt(gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_URI, s->uri,
								(unsigned)strlen(s->uri),
								GNUTLS_FSAN_APPEND),
			   "URI");
	}
	gt(gnutls_x509_crt_sign2(c, issuer ? issuer : c, ikey ? ikey : key, GNUTLS_DIG_SHA256, 0),
	   "sign");
	gt(gnutls_x509_crt_export2(c, GNUTLS_X509_FMT_DER, &der), "export");
	gnutls_x509_crt_deinit(c);
	gt(gnutls_x509_crt_init(&out), "crt_init");
	gt(gnutls_x509_crt_import(out, &der, GNUTLS_X509_FMT_DER), "import");
	gnutls_free(der.data);
	return out;
}

static void pki_init(void)
{
	t0 = time(NULL);
	ca_key = new_key();
	other_key = new_key();
	inter_key = new_key();
	ca = make_crt("xtrunk test CA", 1, -365 * DAY, 7300 * DAY, ca_key, NULL, NULL, NULL);
	other_ca = make_crt("unrelated CA", 1, -365 * DAY, 7300 * DAY, other_key, NULL, NULL, NULL);
	inter = make_crt("xtrunk test intermediate", 1, -365 * DAY, 7300 * DAY, inter_key, ca,
			 ca_key, NULL);
	for (int i = 0; i < C_COUNT; i++) {
		const struct cert_spec *s = &specs[i];
		gnutls_x509_crt_t iss = NULL;
		gnutls_x509_privkey_t ikey = NULL;

		leaf_key[i] = new_key();
		switch (s->issuer) {
		case ISS_CA:
			iss = ca, ikey = ca_key;
			break;
		case ISS_OTHER:
			iss = other_ca, ikey = other_key;
			break;
		case ISS_INTER:
			iss = inter, ikey = inter_key;
			break;
		case ISS_SELF:
			break;
		}
		leaf[i] =
		    make_crt(s->cn, 0, s->not_before, s->not_after, leaf_key[i], iss, ikey, s);
	}
	gt(gnutls_x509_trust_list_init(&trust_ca, 0), "trust_list_init");
	/* The list takes the certificate: give it a copy. */
	{
		gnutls_x509_crt_t copy;
		gnutls_datum_t der;

		gt(gnutls_x509_crt_export2(ca, GNUTLS_X509_FMT_DER, &der), "export ca");
		gt(gnutls_x509_crt_init(&copy), "crt_init");
		gt(gnutls_x509_crt_import(copy, &der, GNUTLS_X509_FMT_DER), "import ca");
		gnutls_free(der.data);
		need(gnutls_x509_trust_list_add_cas(trust_ca, &copy, 1, 0) == 1, "add_cas");
	}
}

static void pki_free(void)
{
	gnutls_x509_trust_list_deinit(trust_ca, 1);
	for (int i = 0; i < C_COUNT; i++) {
		gnutls_x509_crt_deinit(leaf[i]);
		gnutls_x509_privkey_deinit(leaf_key[i]);
	}
	gnutls_x509_crt_deinit(inter);
	gnutls_x509_crt_deinit(other_ca);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_privkey_deinit(inter_key);
	gnutls_x509_privkey_deinit(other_key);
	gnutls_x509_privkey_deinit(ca_key);
}

enum trust { TR_CA, TR_NONE };
enum pins { P_NONE, P_LEAF, P_WRONG, P_BOTH };
enum when { N_REAL, N_PAST, N_FUTURE, N_DAY_AND_HALF };

struct vcase {
	enum cert_id cert;
	const char *domain;
	int allow_cn;
	enum trust trust;
	enum pins pins;
	enum when now;
	enum ident_result want;
};

#define OK IDENT_OK
#define MISMATCH IDENT_NAME_MISMATCH

static const struct vcase vcases[] = {
    /* DNS-ID exact, case, trailing dot */
    {C_DNS, "example.com", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_DNS, "EXAMPLE.com", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_DNS, "example.com.", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_DNS, "a.example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_DNS, "example.org", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_DNS, "com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_DNS, "", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_DNS, "example..com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_DNS_UPPER, "example.com", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_MULTI, "example.com", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_MULTI, "a.example.net", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_MULTI, "b.example.net", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    /* wildcards */
    {C_WILD, "a.example.com", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_WILD, "A.Example.COM.", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_WILD,
     "b\xc3\xbc"
     "cher.example.com",
     0, TR_CA, P_NONE, N_REAL, OK},
    {C_WILD, "a.b.example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_WILD, "example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_WILD, "a.example.org", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_WILD_TLD, "example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_WILD_TLD, "com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_WILD_PARTIAL, "xa.example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_WILD_PARTIAL, "x.example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_WILD_MID, "a.b.example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    /* SRV-ID */
    {C_SRV, "example.com", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_SRV, "Example.COM.", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_SRV, "a.example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_SRV, "_xmpp-server.example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_SRV_UPPER, "example.com", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_SRV_WILD, "a.example.com", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_SRV_WILD, "example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_SRV_WILD, "a.b.example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_SRV_CLIENT, "example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_SRV_NUL, "example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_SRV_NUL, "evil.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    /* id-on-xmppAddr */
    {C_XMPP, "example.com", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_XMPP, "EXAMPLE.COM.", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_XMPP, "a.example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_XMPP_IDN, "xn--bcher-kva.example", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_XMPP_IDN,
     "B\xc3\x9c"
     "cher.example",
     0, TR_CA, P_NONE, N_REAL, OK},
    {C_XMPP_WILD, "a.example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_XMPP_USER, "example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    /* CN-ID: off by default; on only without any SAN identifier */
    {C_CN, "example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_CN, "example.com", 1, TR_CA, P_NONE, N_REAL, OK},
    {C_CN, "a.example.com", 1, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_CN_WILD, "a.example.com", 1, TR_CA, P_NONE, N_REAL, OK},
    {C_CN_WILD, "a.b.example.com", 1, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_CN_DNS, "example.com", 1, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_CN_DNS, "other.example.net", 1, TR_CA, P_NONE, N_REAL, OK},
    {C_CN_SRV_CLIENT, "example.com", 1, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_CN_URI, "example.com", 1, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_DNS, "example.com", 1, TR_CA, P_NONE, N_REAL, OK},
    {C_CN_TWO, "example.com", 1, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_CN_TWO, "other.example", 1, TR_CA, P_NONE, N_REAL, MISMATCH},
    /* otherName values of the wrong string type never match (GnuTLS
     * refuses a malformed subjectAltName already when it parses the
     * certificate, so that path cannot be built here) */
    {C_SRV_UTF8, "example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_XMPP_IA5, "example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    /* NUL inside a dNSName */
    {C_DNS_NUL, "example.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_DNS_NUL, "evil.com", 0, TR_CA, P_NONE, N_REAL, MISMATCH},
    {C_DNS_NUL, "example.com", 1, TR_CA, P_NONE, N_REAL, MISMATCH},
    /* validity period, checked by GnuTLS (real time) and by us (fixed) */
    {C_EXPIRED, "example.com", 0, TR_CA, P_NONE, N_REAL, IDENT_EXPIRED},
    {C_FUTURE, "example.com", 0, TR_CA, P_NONE, N_REAL, IDENT_NOT_YET_VALID},
    {C_FUTURE, "example.com", 0, TR_CA, P_NONE, N_DAY_AND_HALF, OK},
    {C_DNS, "example.com", 0, TR_CA, P_NONE, N_FUTURE, IDENT_EXPIRED},
    {C_DNS, "example.com", 0, TR_CA, P_NONE, N_PAST, IDENT_NOT_YET_VALID},
    {C_EXPIRED, "example.com", 0, TR_NONE, P_LEAF, N_REAL, IDENT_EXPIRED},
    {C_FUTURE, "example.com", 0, TR_NONE, P_LEAF, N_REAL, IDENT_NOT_YET_VALID},
    /* chain */
    {C_UNTRUSTED, "example.com", 0, TR_CA, P_NONE, N_REAL, IDENT_UNTRUSTED},
    {C_SELF, "example.com", 0, TR_CA, P_NONE, N_REAL, IDENT_UNTRUSTED},
    {C_INTER, "example.com", 0, TR_CA, P_NONE, N_REAL, OK},
    {C_INTER_ALONE, "example.com", 0, TR_CA, P_NONE, N_REAL, IDENT_UNTRUSTED},
    {C_DNS, "example.com", 0, TR_NONE, P_NONE, N_REAL, IDENT_UNTRUSTED},
    /* pins */
    {C_SELF, "example.com", 0, TR_NONE, P_LEAF, N_REAL, OK},
    {C_SELF, "example.com", 0, TR_NONE, P_BOTH, N_REAL, OK},
    {C_SELF, "example.com", 0, TR_NONE, P_WRONG, N_REAL, IDENT_PIN_MISMATCH},
    {C_SELF, "other.example", 0, TR_NONE, P_LEAF, N_REAL, MISMATCH},
    {C_SELF, "example.com", 0, TR_CA, P_LEAF, N_REAL, IDENT_UNTRUSTED},
    {C_DNS, "example.com", 0, TR_CA, P_LEAF, N_REAL, OK},
    {C_DNS, "example.com", 0, TR_CA, P_WRONG, N_REAL, IDENT_PIN_MISMATCH},
};

static time_t when(enum when w)
{
	switch (w) {
	case N_REAL:
		break;
	case N_PAST:
		return t0 - 30 * DAY;
	case N_FUTURE:
		return t0 + 3650 * DAY;
	case N_DAY_AND_HALF:
		return t0 + DAY + DAY / 2;
	}
	return 0;
}

START_TEST(test_verify_table)
{
	const struct vcase *c = &vcases[_i];
	unsigned char pins[2][IDENT_PIN_LEN];
	gnutls_x509_crt_t chain[2] = {leaf[c->cert], inter};
	struct ident_policy p = {0};
	enum ident_result got;
	char why[128];

	memset(why, 'x', sizeof(why));
	p.trust = c->trust == TR_CA ? trust_ca : NULL;
	p.allow_cn = c->allow_cn;
	p.now = when(c->now);
	ck_assert_int_eq(ident_pin(ca, pins[0]), 0); /* some other key */
	ck_assert_int_eq(ident_pin(leaf[c->cert], pins[1]), 0);
	p.pins = (const unsigned char(*)[IDENT_PIN_LEN])pins;
	switch (c->pins) {
	case P_NONE:
		p.npins = 0;
		break;
	case P_LEAF:
		p.pins = (const unsigned char(*)[IDENT_PIN_LEN]) & pins[1];
		p.npins = 1;
		break;
	case P_WRONG:
		p.npins = 1;
		break;
	case P_BOTH:
		p.npins = 2;
		break;
	}
	got =
	    ident_verify(chain, specs[c->cert].with_inter ? 2 : 1, c->domain, &p, why, sizeof(why));
	ck_assert_msg(got == c->want, "case %d (cert %d, %s): got %s want %s (%s)", _i, c->cert,
		      c->domain, ident_result_str(got), ident_result_str(c->want), why);
	ck_assert_msg(memchr(why, '\0', sizeof(why)), "why not terminated");
	if (got == IDENT_OK)
		ck_assert_str_eq(why, "");
	else
		ck_assert_msg(why[0] != '\0', "case %d: empty why", _i);
	/* ident_match agrees with the name part of the verdict. */
	if (got == IDENT_OK || got == MISMATCH)
		ck_assert_int_eq(ident_match(leaf[c->cert], c->domain, c->allow_cn), got == OK);
}
END_TEST

START_TEST(test_verify_edges)
{
	unsigned char pin[IDENT_PIN_LEN];
	struct ident_policy p = {.trust = trust_ca};
	gnutls_x509_crt_t none = NULL;
	char why[8];

	ck_assert_int_eq(ident_verify(NULL, 0, "example.com", &p, NULL, 0), IDENT_NO_CERT);
	ck_assert_int_eq(ident_verify(&leaf[C_DNS], 0, "example.com", &p, NULL, 0), IDENT_NO_CERT);
	ck_assert_int_eq(ident_verify(&none, 1, "example.com", &p, NULL, 0), IDENT_NO_CERT);
	ck_assert_int_eq(ident_verify(&leaf[C_DNS], 1, NULL, &p, NULL, 0), IDENT_BAD_CERT);
	ck_assert_int_eq(ident_verify(&leaf[C_DNS], 1, "example.com", NULL, NULL, 0),
			 IDENT_BAD_CERT);
	/* why is truncated, never overrun */
	ck_assert_int_eq(ident_verify(&leaf[C_DNS], 1, "example.org", &p, why, sizeof(why)),
			 MISMATCH);
	ck_assert_uint_eq(strlen(why), sizeof(why) - 1);
	/* npins without pins is a caller bug, reported, not a crash */
	p.npins = 1;
	ck_assert_int_eq(ident_verify(&leaf[C_DNS], 1, "example.com", &p, NULL, 0), IDENT_BAD_CERT);
	/* intermediates out of order, the root included: GnuTLS sorts */
	{
		gnutls_x509_crt_t unsorted[3] = {leaf[C_INTER], ca, inter};

		p.npins = 0;
		ck_assert_int_eq(ident_verify(unsorted, 3, "example.com", &p, NULL, 0), OK);
	}
	ck_assert_int_eq(ident_match(NULL, "example.com", 0), -EINVAL);
	ck_assert_int_eq(ident_match(leaf[C_DNS], NULL, 0), -EINVAL);
	ck_assert_int_eq(ident_pin(NULL, pin), -EINVAL);
}
END_TEST

START_TEST(test_result_str)
{
	static const char *const want[] = {"ok",	   "no-cert",	    "untrusted",
					   "expired",	   "not-yet-valid", "name-mismatch",
					   "pin-mismatch", "bad-cert"};

	for (int r = IDENT_OK; r <= IDENT_BAD_CERT; r++)
		ck_assert_str_eq(ident_result_str((enum ident_result)r), want[r]);
	ck_assert_str_eq(ident_result_str((enum ident_result)99), "unknown");
}
END_TEST

/* ident_pin hashes the SubjectPublicKeyInfo: GnuTLS's SHA-256 key ID is
 * defined the same way, and the pins of different keys differ. */
START_TEST(test_pin_is_spki_hash)
{
	unsigned char a[IDENT_PIN_LEN], b[IDENT_PIN_LEN], id[IDENT_PIN_LEN];
	size_t idlen = sizeof(id);

	ck_assert_int_eq(ident_pin(leaf[C_SELF], a), 0);
	gt(gnutls_x509_crt_get_key_id(leaf[C_SELF], GNUTLS_KEYID_USE_SHA256, id, &idlen), "key id");
	ck_assert_uint_eq(idlen, IDENT_PIN_LEN);
	ck_assert_mem_eq(a, id, IDENT_PIN_LEN);
	ck_assert_int_eq(ident_pin(leaf[C_DNS], b), 0);
	ck_assert(memcmp(a, b, IDENT_PIN_LEN) != 0);
}
END_TEST

/* A pin written out as sha256//base64 and as hex parses back. */
START_TEST(test_pin_round_trip)
{
	unsigned char pin[IDENT_PIN_LEN], got[IDENT_PIN_LEN];
	gnutls_datum_t raw = {pin, IDENT_PIN_LEN}, b64;
	char text[128], hex[2 * IDENT_PIN_LEN + 1];
	size_t hexlen = sizeof(hex);

	ck_assert_int_eq(ident_pin(leaf[C_SELF], pin), 0);
	gt(gnutls_base64_encode2(&raw, &b64), "base64");
	snprintf(text, sizeof(text), "sha256//%.*s", (int)b64.size, (const char *)b64.data);
	gnutls_free(b64.data);
	memset(got, 0, sizeof(got));
	ck_assert_int_eq(ident_pin_parse(text, got), 0);
	ck_assert_mem_eq(got, pin, IDENT_PIN_LEN);
	gt(gnutls_hex_encode(&raw, hex, &hexlen), "hex");
	memset(got, 0, sizeof(got));
	ck_assert_int_eq(ident_pin_parse(hex, got), 0);
	ck_assert_mem_eq(got, pin, IDENT_PIN_LEN);
}
END_TEST

struct pcase {
	const char *in;
	int ok; /* 1: parses to the bytes 0x00..0x1f */
};

static const struct pcase pcases[] = {
    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 1},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 1},
    {"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", 1},
    {"", 0},
    {"sha256//", 0},
    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", 0},	  /* no padding */
    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==", 0}, /* too long */
    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh==", 0},  /* 31 octets */
    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd Hh8=", 0}, /* space */
    {"sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd-h8=", 0},  /* url-safe alphabet */
    {"SHA256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 0},
    {"sha1//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 0},
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1", 0},   /* 63 */
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0", 0}, /* 65 */
    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g", 0},
    {"00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13:14:15:16", 0},
    {"garbage", 0},
};

START_TEST(test_pin_parse_table)
{
	const struct pcase *c = &pcases[_i];
	unsigned char out[IDENT_PIN_LEN], want[IDENT_PIN_LEN];

	for (int i = 0; i < IDENT_PIN_LEN; i++)
		want[i] = (unsigned char)i;
	if (c->ok) {
		ck_assert_msg(ident_pin_parse(c->in, out) == 0, "%s", c->in);
		ck_assert_mem_eq(out, want, IDENT_PIN_LEN);
	} else {
		ck_assert_msg(ident_pin_parse(c->in, out) == -EINVAL, "%s", c->in);
	}
}
END_TEST

START_TEST(test_pin_parse_null)
{
	unsigned char out[IDENT_PIN_LEN];

	ck_assert_int_eq(ident_pin_parse(NULL, out), -EINVAL);
	ck_assert_int_eq(ident_pin_parse("garbage", NULL), -EINVAL);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *identity_suite(void)
{
	Suite *s = suite_create("identity");
	TCase *tc = tcase_create("verify");

	tcase_add_loop_test(tc, test_verify_table, 0, N(vcases));
	tcase_add_test(tc, test_verify_edges);
	tcase_add_test(tc, test_result_str);
	suite_add_tcase(s, tc);
	tc = tcase_create("pins");
	tcase_add_test(tc, test_pin_is_spki_hash);
	tcase_add_test(tc, test_pin_round_trip);
	tcase_add_loop_test(tc, test_pin_parse_table, 0, N(pcases));
	tcase_add_test(tc, test_pin_parse_null);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	pki_init();
	sr = srunner_create(identity_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	pki_free();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
