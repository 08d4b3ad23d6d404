/* ca: the enclave CA. It turns a domain that has a route into a
 * short-lived leaf certificate the enclave's leaves trust, so that no leaf
 * ever needs a certificate with every domain as a SubjectAltName.
 *
 * Leaves carry a DNS-ID always, and SRV-ID / id-on-xmppAddr only when
 * asked: ejabberd 23.01 crashes its inbound s2s process on xmppAddr
 * (DESIGN.md, "Peer facts"). The otherName values are DER strings built
 * here (IA5String for SRV-ID per RFC 4985, UTF8String for xmppAddr per
 * RFC 6120 section 13.7.1.4) and handed to GnuTLS as raw otherNames, so
 * what is written does not depend on the GnuTLS version's conveniences.
 *
 * The SubjectAltName extension is built as one unit and set with an
 * explicit criticality: RFC 5280 section 4.2.1.6 wants it critical when
 * the subject is empty, which happens for domains longer than the 64
 * octets a CN may hold.
 *
 * Private keys are never written over an existing file (O_EXCL) and are
 * wiped from memory once exported. */
#include "ca.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509-ext.h>

#include "domain.h"

#define CA_FILE_MAX (1024 * 1024)
#define CA_BACKDATE 300 /* seconds: tolerate peers whose clock is a little behind */
#define CA_CN_MAX 64	/* ub-common-name, RFC 5280 appendix A */
#define OID_SRV "1.3.6.1.5.5.7.8.7"
#define OID_XMPPADDR "1.3.6.1.5.5.7.8.5"
#define SRV_PREFIX "_xmpp-server."

struct ca {
	int refs;
	gnutls_x509_crt_t *certs; /* owned: every certificate of the CA file, certs[0] the CA */
	unsigned ncerts;
	gnutls_x509_crt_t *chain; /* owned array; the certificates in it are borrowed from certs */
	unsigned nchain;
	gnutls_privkey_t key; /* owned: the CA's private key */
	gnutls_digest_algorithm_t dig;
	unsigned char akid[64]; /* the CA's subject key id, becomes each leaf's authority key id */
	size_t akid_len;
	time_t not_after;
};

static int gnutls_errno(int rc)
{
	return rc == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EIO;
}

int ca_read_file(const char *path, int secret, gnutls_datum_t *out, char *err, size_t errlen)
{
	struct stat st;
	unsigned char *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, rc;

	out->data = NULL;
	out->size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open: %s; check the path and permissions", path,
			 strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(-rc));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file; give the PEM file itself", path);
		goto fail;
	}
	if (secret && (st.st_mode & 077) != 0) {
		rc = -EPERM;
		snprintf(err, errlen,
			 "%s: private key is readable by group or others (mode %04o); "
			 "run chmod 600 %s",
			 path, (unsigned)(st.st_mode & 07777), path);
		goto fail;
	}
	if (st.st_size > CA_FILE_MAX) {
		rc = -EFBIG;
		snprintf(err, errlen, "%s: larger than %d bytes; is it really a PEM file?", path,
			 CA_FILE_MAX);
		goto fail;
	}
	buf = gnutls_malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
			goto fail;
		}
		if (n == 0)
			break; /* shrank while we read: take what is there */
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(fd);
	out->data = buf;
	out->size = (unsigned)got;
	return 0;
fail:
	if (buf != NULL) {
		gnutls_memset(buf, 0, got);
		gnutls_free(buf);
	}
	close(fd);
	return rc;
}

int ca_write_file(const char *path, const void *data, size_t len, mode_t mode, char *err,
		  size_t errlen)
{
	const unsigned char *p = data;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = -errno;
		if (rc == -EEXIST)
			snprintf(err, errlen, "%s: already exists; remove it or write elsewhere",
				 path);
		else
			snprintf(err, errlen, "%s: cannot create: %s; check the directory", path,
				 strerror(-rc));
		return rc;
	}
	/* the umask may have taken bits away; the mode is part of the contract */
	if (fchmod(fd, mode) < 0)
		goto fail_errno;
	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail_errno;
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0)
		goto fail_errno;
	if (close(fd) < 0) {
		fd = -1;
		goto fail_errno;
	}
	return 0;
fail_errno:
	rc = -errno;
	snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
	if (fd >= 0)
		close(fd);
	unlink(path);
	return rc;
}

int ca_write_pair(const char *cert_file, const char *key_file, gnutls_x509_crt_t crt,
		  const gnutls_x509_crt_t *chain, unsigned n, gnutls_x509_privkey_t key, char *err,
		  size_t errlen)
{
	gnutls_datum_t k = {NULL, 0}, one = {NULL, 0};
	char *pem = NULL, *grown;
	size_t len = 0;
	int rc;

	for (unsigned i = 0; i <= n; i++) {
		rc =
		    gnutls_x509_crt_export2(i == 0 ? crt : chain[i - 1], GNUTLS_X509_FMT_PEM, &one);
		if (rc < 0)
			goto fail_tls;
		grown = realloc(pem, len + one.size);
		if (grown == NULL) {
			rc = GNUTLS_E_MEMORY_ERROR;
			goto fail_tls;
		}
		pem = grown;
		memcpy(pem + len, one.data, one.size);
		len += one.size;
		gnutls_free(one.data);
		one.data = NULL;
	}
	rc = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
					       &k);
	if (rc < 0)
		goto fail_tls;
	/* key first: if the certificate cannot be written, the key we just
	 * created is removed, and nothing that existed before is touched */
	rc = ca_write_file(key_file, k.data, k.size, 0600, err, errlen);
	if (rc == 0) {
		rc = ca_write_file(cert_file, pem, len, 0644, err, errlen);
		if (rc < 0)
			unlink(key_file);
	}
	gnutls_memset(k.data, 0, k.size);
	gnutls_free(k.data);
	free(pem);
	return rc;
fail_tls:
	snprintf(err, errlen, "%s: cannot export certificate or key: %s", cert_file,
		 gnutls_strerror(rc));
	gnutls_free(one.data);
	free(pem);
	return gnutls_errno(rc);
}

/* The key id both sides of a pair share: SHA-256 over the public key. */
static int pubkey_id(gnutls_pubkey_t pub, unsigned char *id, size_t *len)
{
	return gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id, len);
}

void ca_unref(struct ca *c)
{
	if (c == NULL || --c->refs > 0)
		return;
	for (unsigned i = 0; i < c->ncerts; i++)
		gnutls_x509_crt_deinit(c->certs[i]);
	gnutls_free(c->certs);
	free(c->chain);
	if (c->key != NULL)
		gnutls_privkey_deinit(c->key);
	free(c);
}

struct ca *ca_ref(struct ca *c)
{
	c->refs++;
	return c;
}

/* Checks the CA certificate can sign certificates and the key is its own. */
static int ca_check(struct ca *c, const char *cert_file, const char *key_file, char *err,
		    size_t errlen)
{
	gnutls_pubkey_t pub = NULL;
	unsigned char kid[64], cid[64];
	size_t klen = sizeof(kid), clen = sizeof(cid);
	unsigned critical = 0, is_ca = 0, usage = 0;
	int pathlen = -1, rc;

	rc = gnutls_x509_crt_get_basic_constraints(c->certs[0], &critical, &is_ca, &pathlen);
	if (rc < 0 || !is_ca) {
		snprintf(err, errlen,
			 "%s: the first certificate is not a CA (basicConstraints CA:TRUE); "
			 "give the enclave CA certificate, e.g. one made by xtrunkctl ca-create",
			 cert_file);
		return -EINVAL;
	}
	rc = gnutls_x509_crt_get_key_usage(c->certs[0], &usage, &critical);
	if (rc >= 0 && !(usage & GNUTLS_KEY_KEY_CERT_SIGN)) {
		snprintf(err, errlen,
			 "%s: the CA certificate's key usage lacks keyCertSign; "
			 "reissue the CA with keyCertSign",
			 cert_file);
		return -EINVAL;
	}
	if (gnutls_pubkey_init(&pub) < 0)
		return -ENOMEM;
	rc = gnutls_pubkey_import_privkey(pub, c->key, 0, 0);
	if (rc >= 0)
		rc = pubkey_id(pub, kid, &klen);
	if (rc >= 0)
		rc = gnutls_x509_crt_get_key_id(c->certs[0], GNUTLS_KEYID_USE_SHA256, cid, &clen);
	if (rc >= 0) {
		unsigned dummy = 0;

		rc = gnutls_pubkey_get_preferred_hash_algorithm(pub, &c->dig, &dummy);
	}
	gnutls_pubkey_deinit(pub);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot use the key: %s", key_file, gnutls_strerror(rc));
		return -EINVAL;
	}
	if (klen != clen || memcmp(kid, cid, klen) != 0) {
		snprintf(err, errlen,
			 "%s: the key does not belong to the certificate in %s; give the matching "
			 "pair",
			 key_file, cert_file);
		return -EINVAL;
	}
	c->akid_len = sizeof(c->akid);
	rc = gnutls_x509_crt_get_subject_key_id(c->certs[0], c->akid, &c->akid_len, &critical);
	if (rc < 0) {
		/* no subjectKeyIdentifier: RFC 5280 method 1 (SHA-1 of the key) */
		c->akid_len = sizeof(c->akid);
		if (gnutls_x509_crt_get_key_id(c->certs[0], 0, c->akid, &c->akid_len) < 0)
			c->akid_len = 0;
	}
	return 0;
}

int ca_load(const char *cert_file, const char *key_file, struct ca **out, char *err, size_t errlen)
{
	gnutls_datum_t data = {NULL, 0};
	struct ca *c;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->refs = 1;
	rc = ca_read_file(cert_file, 0, &data, err, errlen);
	if (rc < 0)
		goto fail;
	rc = gnutls_x509_crt_list_import2(&c->certs, &c->ncerts, &data, GNUTLS_X509_FMT_PEM,
					  GNUTLS_X509_CRT_LIST_SORT);
	gnutls_free(data.data);
	data.data = NULL;
	if (rc < 0 || c->ncerts == 0) {
		snprintf(err, errlen, "%s: no usable PEM certificate (%s); give the CA certificate",
			 cert_file, rc < 0 ? gnutls_strerror(rc) : "none found");
		c->ncerts = 0;
		rc = -EINVAL;
		goto fail;
	}
	c->chain = calloc(c->ncerts, sizeof(*c->chain));
	if (c->chain == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < c->ncerts; i++)
		if (!gnutls_x509_crt_check_issuer(c->certs[i], c->certs[i]))
			c->chain[c->nchain++] = c->certs[i];
	c->not_after = gnutls_x509_crt_get_expiration_time(c->certs[0]);

	rc = ca_read_file(key_file, 1, &data, err, errlen);
	if (rc < 0)
		goto fail;
	rc = gnutls_privkey_init(&c->key);
	if (rc >= 0)
		rc = gnutls_privkey_import_x509_raw(c->key, &data, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_memset(data.data, 0, data.size);
	gnutls_free(data.data);
	if (rc < 0) {
		snprintf(err, errlen,
			 "%s: cannot read the private key (%s); give an unencrypted "
			 "PEM key",
			 key_file, gnutls_strerror(rc));
		rc = -EINVAL;
		goto fail;
	}
	rc = ca_check(c, cert_file, key_file, err, errlen);
	if (rc < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	ca_unref(c);
	return rc;
}

const gnutls_x509_crt_t *ca_chain(const struct ca *c, unsigned *n)
{
	*n = c->nchain;
	return c->chain;
}

gnutls_x509_crt_t ca_cert(const struct ca *c)
{
	return c->certs[0];
}

/* DER tag-length-value for a string of n octets; 0 if it does not fit. */
static size_t der_string(unsigned char tag, const char *s, size_t n, unsigned char *out,
			 size_t outsz)
{
	size_t h;

	if (n < 0x80) {
		h = 2;
		if (outsz < h + n)
			return 0;
		out[1] = (unsigned char)n;
	} else if (n <= 0xff) {
		h = 3;
		if (outsz < h + n)
			return 0;
		out[1] = 0x81;
		out[2] = (unsigned char)n;
	} else if (n <= 0xffff) {
		h = 4;
		if (outsz < h + n)
			return 0;
		out[1] = 0x82;
		out[2] = (unsigned char)(n >> 8);
		out[3] = (unsigned char)n;
	} else {
		return 0;
	}
	out[0] = tag;
	memcpy(out + h, s, n);
	return h + n;
}

static int add_othername(gnutls_subject_alt_names_t sans, const char *oid, unsigned char tag,
			 const char *prefix, const char *name)
{
	unsigned char der[DOMAIN_MAX + sizeof(SRV_PREFIX) + 8];
	char value[DOMAIN_MAX + sizeof(SRV_PREFIX)];
	gnutls_datum_t d;
	int n;

	n = snprintf(value, sizeof(value), "%s%s", prefix, name);
	if (n < 0 || (size_t)n >= sizeof(value))
		return GNUTLS_E_INVALID_REQUEST;
	d.data = der;
	d.size = (unsigned)der_string(tag, value, (size_t)n, der, sizeof(der));
	if (d.size == 0)
		return GNUTLS_E_INVALID_REQUEST;
	return gnutls_subject_alt_names_set(sans, GNUTLS_SAN_OTHERNAME, &d, oid);
}

/* The SubjectAltName extension of a leaf, set as one unit. */
static int set_sans(gnutls_x509_crt_t crt, const char *name, const char *base, unsigned flags,
		    unsigned critical)
{
	gnutls_subject_alt_names_t sans = NULL;
	gnutls_datum_t d = {(unsigned char *)name, (unsigned)strlen(name)}, ext = {NULL, 0};
	int rc;

	rc = gnutls_subject_alt_names_init(&sans);
	if (rc < 0)
		return rc;
	rc = gnutls_subject_alt_names_set(sans, GNUTLS_SAN_DNSNAME, &d, NULL);
	if (rc >= 0 && (flags & CA_ISSUE_SRV))
		rc = add_othername(sans, OID_SRV, 0x16 /* IA5String */, SRV_PREFIX, base);
	if (rc >= 0 && (flags & CA_ISSUE_XMPPADDR))
		rc = add_othername(sans, OID_XMPPADDR, 0x0c /* UTF8String */, "", base);
	if (rc >= 0)
		rc = gnutls_x509_ext_export_subject_alt_names(sans, &ext);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_extension_by_oid(crt, GNUTLS_X509EXT_OID_SAN, ext.data,
							  ext.size, critical);
	gnutls_free(ext.data);
	gnutls_subject_alt_names_deinit(sans);
	return rc;
}

/* A positive 16-byte serial (RFC 5280 allows up to 20 octets). */
static int set_serial(gnutls_x509_crt_t crt)
{
	unsigned char serial[16];
	int rc = gnutls_rnd(GNUTLS_RND_RANDOM, serial, sizeof(serial));

	if (rc < 0)
		return rc;
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
	return gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
}

static int set_subject_key_id(gnutls_x509_crt_t crt)
{
	unsigned char id[64];
	size_t len = sizeof(id);
	int rc = gnutls_x509_crt_get_key_id(crt, 0, id, &len);

	if (rc < 0)
		return rc;
	return gnutls_x509_crt_set_subject_key_id(crt, id, len);
}

/* A certificate built in memory lacks the raw encodings GnuTLS keeps for
 * imported ones (its issuer DN, for one, so gnutls_x509_crt_verify reports
 * "signer not found"): hand out the parsed form of its DER instead. */
static int reimport(gnutls_x509_crt_t *crt)
{
	gnutls_datum_t der = {NULL, 0};
	gnutls_x509_crt_t fresh = NULL;
	int rc = gnutls_x509_crt_export2(*crt, GNUTLS_X509_FMT_DER, &der);

	if (rc >= 0)
		rc = gnutls_x509_crt_init(&fresh);
	if (rc >= 0)
		rc = gnutls_x509_crt_import(fresh, &der, GNUTLS_X509_FMT_DER);
	gnutls_free(der.data);
	if (rc < 0) {
		if (fresh != NULL)
			gnutls_x509_crt_deinit(fresh);
		return rc;
	}
	gnutls_x509_crt_deinit(*crt);
	*crt = fresh;
	return 0;
}

static int new_p256(gnutls_x509_privkey_t *key)
{
	int rc = gnutls_x509_privkey_init(key);

	if (rc < 0)
		return rc;
	rc = gnutls_x509_privkey_generate(*key, GNUTLS_PK_ECDSA,
					  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (rc < 0) {
		gnutls_x509_privkey_deinit(*key);
		*key = NULL;
	}
	return rc;
}

int ca_issue(struct ca *c, const char *domain, time_t now, unsigned lifetime, unsigned flags,
	     gnutls_x509_crt_t *out_crt, gnutls_x509_privkey_t *out_key)
{
	char base[DOMAIN_MAX + 1], name[DOMAIN_MAX + 3];
	gnutls_x509_crt_t crt = NULL;
	gnutls_x509_privkey_t key = NULL;
	const char *in = domain;
	int wildcard = 0, rc;
	size_t nlen;
	time_t until;

	*out_crt = NULL;
	*out_key = NULL;
	if (domain == NULL || lifetime == 0)
		return -EINVAL;
	if (strncmp(in, "*.", 2) == 0) {
		wildcard = 1;
		in += 2;
	}
	rc = domain_normalise(in, strlen(in), base, sizeof(base));
	if (rc < 0)
		return -EINVAL;
	/* a wildcard needs a registrable name under it, and an SRV-ID or
	 * xmppAddr for "*.x" would claim no domain at all */
	if (wildcard && (strchr(base, '.') == NULL || flags != 0))
		return -EINVAL;
	snprintf(name, sizeof(name), "%s%s", wildcard ? "*." : "", base);
	nlen = strlen(name);
	if (now >= c->not_after)
		return -EKEYEXPIRED;
	until = now + (time_t)lifetime;
	if (until > c->not_after || until < now)
		until = c->not_after;

	rc = new_p256(&key);
	if (rc < 0)
		return gnutls_errno(rc);
	rc = gnutls_x509_crt_init(&crt);
	if (rc < 0)
		goto fail;
	if ((rc = gnutls_x509_crt_set_version(crt, 3)) < 0 || (rc = set_serial(crt)) < 0 ||
	    (rc = gnutls_x509_crt_set_activation_time(crt, now - CA_BACKDATE)) < 0 ||
	    (rc = gnutls_x509_crt_set_expiration_time(crt, until)) < 0 ||
	    (rc = gnutls_x509_crt_set_key(crt, key)) < 0)
		goto fail;
	if (nlen <= CA_CN_MAX) {
		rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name,
						   (unsigned)nlen);
		if (rc < 0)
			goto fail;
	}
	if ((rc = set_sans(crt, name, base, flags, nlen > CA_CN_MAX)) < 0 ||
	    (rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0)) < 0 ||
	    (rc = set_subject_key_id(crt)) < 0)
		goto fail;
	if (c->akid_len > 0) {
		rc = gnutls_x509_crt_set_authority_key_id(crt, c->akid, c->akid_len);
		if (rc < 0)
			goto fail;
	}
	rc = gnutls_x509_crt_privkey_sign(crt, c->certs[0], c->key, c->dig, 0);
	if (rc < 0)
		goto fail;
	rc = reimport(&crt);
	if (rc < 0)
		goto fail;
	*out_crt = crt;
	*out_key = key;
	return 0;
fail:
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return gnutls_errno(rc);
}

int ca_create(const char *cert_file, const char *key_file, const char *name, time_t now,
	      unsigned lifetime, char *err, size_t errlen)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_x509_privkey_t key = NULL;
	size_t nlen = name != NULL ? strlen(name) : 0;
	int rc;

	if (nlen == 0 || nlen > CA_CN_MAX) {
		snprintf(err, errlen, "CA name must be 1 to %d characters", CA_CN_MAX);
		return -EINVAL;
	}
	if (lifetime == 0) {
		snprintf(err, errlen, "CA lifetime must be at least one second");
		return -EINVAL;
	}
	rc = new_p256(&key);
	if (rc < 0)
		goto fail_tls;
	rc = gnutls_x509_crt_init(&crt);
	if (rc < 0)
		goto fail_tls;
	if ((rc = gnutls_x509_crt_set_version(crt, 3)) < 0 || (rc = set_serial(crt)) < 0 ||
	    (rc = gnutls_x509_crt_set_activation_time(crt, now - CA_BACKDATE)) < 0 ||
	    (rc = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)lifetime)) < 0 ||
	    (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name,
						(unsigned)nlen)) < 0 ||
	    (rc = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (rc = gnutls_x509_crt_set_basic_constraints(crt, 1, 0)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN |
							 GNUTLS_KEY_CRL_SIGN)) < 0 ||
	    (rc = set_subject_key_id(crt)) < 0 ||
	    (rc = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0)
		goto fail_tls;
	rc = ca_write_pair(cert_file, key_file, crt, NULL, 0, key, err, errlen);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return rc;
fail_tls:
	snprintf(err, errlen, "cannot make the CA certificate: %s", gnutls_strerror(rc));
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (key != NULL)
		gnutls_x509_privkey_deinit(key);
	return gnutls_errno(rc);
}
