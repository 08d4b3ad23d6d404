/* runtime: one immutable snapshot of everything streams need from the
 * configuration: the validated config, the certificate store and enclave
 * CA, the TLS credentials and the trust anchors. Built whole or not at all,
 * so a bad file on SIGHUP leaves the running snapshot untouched;
 * refcounted, so every stream keeps the snapshot it started with. */
#ifndef XT_RUNTIME_H
#define XT_RUNTIME_H

#include <stddef.h>

#include <gnutls/x509.h>

struct config;
struct store;
struct tls_creds;

struct runtime {
	int refs;
	struct config *cfg;		      /* ref */
	struct store *store;		      /* ref or NULL */
	struct tls_creds *server_creds;	      /* owned or NULL (tls.inbound = "none") */
	struct tls_creds **peer_creds;	      /* owned array, cfg->npeers entries */
	gnutls_x509_trust_list_t *peer_trust; /* owned array: per peer ca_file or NULL */
	gnutls_x509_trust_list_t trust;	      /* owned or NULL: tls.trust */
};

/* Load path. prev (may be NULL) is the snapshot being replaced: its
 * CA-issued certificates are carried over. Returns NULL with err set
 * ("FILE:LINE: problem; fix" or "FILE: tls: ..."). */
struct runtime *runtime_load(const char *path, const struct runtime *prev, char *err,
			     size_t errlen);
struct runtime *runtime_ref(struct runtime *rt);
/* Accepts NULL. */
void runtime_unref(struct runtime *rt);

#endif
