/* store: the certificates the relay presents. Inbound, the one for the
 * SNI name (or the stream 'to' when the peer sent no SNI); outbound, the
 * client certificate for the stream's 'from' domain. Entries come from a
 * directory of per-domain and wildcard pairs and, with an enclave CA, are
 * issued on the fly for routed domains and cached.
 *
 * A store is immutable apart from its CA cache and refcounted: a reload
 * (SIGHUP) builds a new one with store_load, and the old one is freed when
 * its last user (each TLS session bound to it holds a reference) lets go.
 * Single-threaded: every call comes from the event loop thread. */
#ifndef XT_STORE_H
#define XT_STORE_H

#include <stddef.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

struct ca;
struct store;
struct store_cert;
struct store_binding;

#define STORE_CACHE_MAX 10000	   /* default bound on CA-issued certificates kept */
#define STORE_ISSUE_LIFETIME 86400 /* default lifetime of CA-issued certificates, seconds */

struct store_params {
	/* Directory of pairs, or NULL for none. For each DOMAIN.pem (leaf
	 * first, then intermediates; must cover DOMAIN) there must be a
	 * DOMAIN.key (unencrypted PEM, mode 0600 or stricter, else the load
	 * fails and says chmod 600). _wildcard.DOMAIN.pem / .key covers the
	 * names exactly one label below DOMAIN (RFC 6125 section 6.4.3), and
	 * DOMAIN must have at least two labels. A name that is not a domain
	 * ('*' is not used: it is a shell glob), a .pem without its .key or a
	 * .key without its .pem fails the load; files that end in neither and
	 * dot files are ignored. Borrowed for the call. */
	const char *dir;
	/* Enclave CA, or NULL. The store takes its own reference. */
	struct ca *ca;
	/* Whether a (normalised) domain has a route: nonzero if so. Asked
	 * before every CA issuance and before a cached CA certificate is
	 * handed out; the CA never issues for a domain without a route.
	 * Required when ca is set. */
	int (*routed)(void *ctx, const char *domain);
	void *routed_ctx;  /* borrowed: must outlive the store */
	unsigned lifetime; /* of CA-issued certificates, seconds; 0: STORE_ISSUE_LIFETIME */
	unsigned flags;	   /* CA_ISSUE_SRV, CA_ISSUE_XMPPADDR (ca.h) for issued certificates */
	size_t cache_max;  /* 0: STORE_CACHE_MAX */
	/* Clock for issuance and re-issue decisions; NULL: time(). */
	time_t (*now)(void);
	/* The store being replaced, or NULL. When it has the same CA object,
	 * its cached CA certificates are carried over (borrowed for the call). */
	struct store *prev;
};

/* Build a store. Returns 0 with *out holding one reference, or -errno with
 * a message naming the file and the fix. */
int store_load(const struct store_params *p, struct store **out, char *err, size_t errlen);
/* Take another reference; returns s. */
struct store *store_ref(struct store *s);
/* Drop a reference; frees on the last. Accepts NULL. */
void store_unref(struct store *s);

/* The certificate for name (an SNI name, a stream 'to' or 'from'; it is
 * normalised here): an exact entry, else the wildcard entry one label up,
 * else, with a CA, a certificate issued for name if the routed callback
 * says it has a route. A CA certificate is cached (least recently used
 * evicted beyond cache_max) and re-issued once less than a third of its
 * lifetime remains. On success *out holds a reference (store_cert_unref).
 * Returns 0, -ENOENT (nothing fits), -EINVAL (not a domain), or the error
 * of a failed issuance. */
int store_select(struct store *s, const char *name, struct store_cert **out);
/* The chain (leaf first) and key of a selected certificate, borrowed while
 * the reference to c is held. */
void store_cert_get(const struct store_cert *c, gnutls_pcert_st **chain, unsigned *nchain,
		    gnutls_privkey_t *key);
/* The entry's name: "example.com" or "*.example.com". Borrowed like above. */
const char *store_cert_name(const struct store_cert *c);
/* Accepts NULL. */
void store_cert_unref(struct store_cert *c);

/* Per-session glue for GnuTLS. Install store_retrieve_callback on the
 * certificate credentials (gnutls_certificate_set_retrieve_function2;
 * the credentials then need no certificate of their own), and for each
 * session:
 *
 *	b = store_binding_new(store, STORE_SERVER);   (or STORE_CLIENT)
 *	gnutls_session_set_ptr(session, b);
 *	store_binding_set_name(b, stream_to);          (client: stream_from)
 *	... handshake ...
 *	gnutls_deinit(session);
 *	store_binding_free(b);
 *
 * The session pointer belongs to this binding. A server session presents
 * the certificate for the SNI name; if there is none, or nothing fits it,
 * the certificate for the binding's name (the stream 'to', known before
 * STARTTLS). A client session presents the certificate for the binding's
 * name (the stream 'from') when the peer asks for one, and no certificate
 * when the store has none for it. The binding keeps the store and the
 * presented certificate alive until store_binding_free, which must come
 * after gnutls_deinit. */
enum store_role { STORE_SERVER, STORE_CLIENT };

/* Takes a reference to s. NULL when out of memory. */
struct store_binding *store_binding_new(struct store *s, enum store_role role);
/* Set (or with NULL clear) the name. Returns 0 or -EINVAL (not a domain). */
int store_binding_set_name(struct store_binding *b, const char *name);
/* Name of the certificate presented so far (for logs), or NULL. */
const char *store_binding_presented(const struct store_binding *b);
/* The name the session looked a certificate up for: the SNI name if the
 * peer sent one (normalised, or "(not a domain)"), else the
 * binding's name; "" before the lookup or when there was neither. With
 * store_binding_presented() == NULL after a failed handshake, it says
 * "no certificate for NAME" (GnuTLS itself only reports that no cipher
 * suite fits). */
const char *store_binding_sought(const struct store_binding *b);
/* Accepts NULL. Only after gnutls_deinit of the session that used it. */
void store_binding_free(struct store_binding *b);

/* gnutls_certificate_retrieve_function2. Returns 0 with the chosen chain,
 * or 0 with no certificate when nothing fits (a server handshake then
 * fails with GnuTLS's "insufficient credentials"), -1 on internal error
 * (no binding on the session). */
int store_retrieve_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
			    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
			    gnutls_pcert_st **pcert, unsigned int *pcert_length,
			    gnutls_privkey_t *privkey);

#endif
