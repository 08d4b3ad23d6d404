/* ca: the enclave CA. Loads a CA certificate and key, issues short-lived
 * ECDSA P-256 leaf certificates for XMPP domains, and creates a new
 * self-signed enclave CA. Sans-I/O apart from reading and writing the PEM
 * files named by the caller; the current time is always passed in. */
#ifndef XT_CA_H
#define XT_CA_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

struct ca;

/* ca_issue flags. Both are off by default: ejabberd 23.01 crashes its
 * inbound s2s process on a certificate with id-on-xmppAddr (DESIGN.md,
 * "Peer facts"), so only ask for it for peers known to cope. */
#define CA_ISSUE_SRV 0x1      /* add SRV-ID _xmpp-server.DOMAIN (RFC 4985 otherName) */
#define CA_ISSUE_XMPPADDR 0x2 /* add id-on-xmppAddr DOMAIN (RFC 6120 section 13.7.1.4) */

/* Load the enclave CA: cert_file holds the CA certificate first (it may be
 * followed by its own issuers, which are then sent after every issued
 * leaf), key_file its private key (PEM; must not be readable by group or
 * others). Checks that the certificate is a CA allowed to sign
 * certificates and that the key matches it. Returns 0 with *out holding
 * one reference, or -errno with a message naming the file and the fix. */
int ca_load(const char *cert_file, const char *key_file, struct ca **out, char *err, size_t errlen);
/* Take another reference; returns c. */
struct ca *ca_ref(struct ca *c);
/* Drop a reference; frees on the last. Accepts NULL. */
void ca_unref(struct ca *c);

/* Issue a certificate for domain (normalised with domain_normalise; a
 * leading "*." asks for a wildcard certificate, without SRV-ID or
 * xmppAddr) with a fresh ECDSA P-256 key: subject CN=domain (omitted, and
 * the SAN marked critical, when longer than the 64 octets X.520 allows),
 * SAN dNSName, plus the otherNames selected by flags; key usage
 * digitalSignature, extended key usage serverAuth and clientAuth, a random
 * 16-byte serial, valid from now - 5 minutes to now + lifetime (clamped to
 * the CA's own expiry). On success *crt and *key are new objects owned by
 * the caller (gnutls_x509_crt_deinit / gnutls_x509_privkey_deinit).
 * Returns 0, -EINVAL (bad domain or flags), -EKEYEXPIRED (the CA has
 * expired), -ENOMEM or -EIO (GnuTLS failure). */
int ca_issue(struct ca *c, const char *domain, time_t now, unsigned lifetime, unsigned flags,
	     gnutls_x509_crt_t *crt, gnutls_x509_privkey_t *key);

/* The certificates to send after an issued leaf: those in the CA file that
 * are not self-signed (none for a CA made by ca_create). Borrowed; valid
 * while the reference to c is held. */
const gnutls_x509_crt_t *ca_chain(const struct ca *c, unsigned *n);
/* The CA certificate itself (borrowed, like ca_chain). */
gnutls_x509_crt_t ca_cert(const struct ca *c);

/* Create a new self-signed enclave CA: ECDSA P-256, subject CN=name,
 * basicConstraints CA:TRUE pathlen 0 (critical), key usage keyCertSign and
 * cRLSign, valid from now - 5 minutes for lifetime seconds. Writes the key
 * to key_file (mode 0600) and the certificate to cert_file (mode 0644);
 * both are created with O_EXCL and never overwrite an existing file. On
 * failure nothing is left behind. Returns 0 or -errno with a message. */
int ca_create(const char *cert_file, const char *key_file, const char *name, time_t now,
	      unsigned lifetime, char *err, size_t errlen);

/* Helpers shared with the certificate store and xtrunkctl. */

/* Read a whole PEM file (at most 1 MiB) into out->data (owned by the
 * caller: gnutls_free, after gnutls_memset for keys). With secret set,
 * refuse a file readable by group or others (-EPERM, the message says
 * chmod 600). Returns 0 or -errno with a message naming the file. */
int ca_read_file(const char *path, int secret, gnutls_datum_t *out, char *err, size_t errlen);
/* Create path with O_EXCL and exactly the given mode, write data, fsync.
 * On failure the file is removed. Returns 0 or -errno with a message. */
int ca_write_file(const char *path, const void *data, size_t len, mode_t mode, char *err,
		  size_t errlen);
/* Write crt followed by chain[0..n) to cert_file (0644) and key to
 * key_file (0600), both PEM, both created with O_EXCL; on failure neither
 * is left behind. Returns 0 or -errno with a message. */
int ca_write_pair(const char *cert_file, const char *key_file, gnutls_x509_crt_t crt,
		  const gnutls_x509_crt_t *chain, unsigned n, gnutls_x509_privkey_t key, char *err,
		  size_t errlen);

#endif
