/* runtime: builds and releases configuration snapshots (see runtime.h).
 * The order matters only for error messages: the file first, then the TLS
 * priority, the store and CA, the credentials and the anchors. */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <gnutls/gnutls.h>

#include "ca.h"
#include "config.h"
#include "route.h"
#include "store.h"
#include "tls.h"

static int is_routed(void *ctx, const char *domain)
{
	const struct config *cfg = ctx;

	return route_lookup(cfg->routes, domain) != NULL;
}

/* The certificate store and enclave CA, when configured. */
static int load_store(struct runtime *rt, const struct runtime *prev, char *err, size_t errlen)
{
	struct config *cfg = rt->cfg;
	struct store_params p = {0};
	struct ca *ca = NULL;
	int rc;

	if (cfg->tls_store == NULL && cfg->tls_ca_certificate == NULL)
		return 0;
	if (cfg->tls_ca_certificate != NULL &&
	    ca_load(cfg->tls_ca_certificate, cfg->tls_ca_key, &ca, err, errlen) < 0)
		return -EINVAL;
	p.dir = cfg->tls_store;
	p.ca = ca;
	p.routed = is_routed;
	p.routed_ctx = cfg; /* the store never outlives rt, which holds cfg */
	p.lifetime = cfg->tls_issue_lifetime;
	p.prev = prev != NULL ? prev->store : NULL;
	rc = store_load(&p, &rt->store, err, errlen);
	ca_unref(ca); /* the store holds its own reference */
	return rc;
}

static int load_trust(const char *file, gnutls_x509_trust_list_t *out, char *err, size_t errlen)
{
	int n;

	if (gnutls_x509_trust_list_init(out, 0) < 0)
		return -ENOMEM;
	n = gnutls_x509_trust_list_add_trust_file(*out, file, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
	if (n <= 0) {
		snprintf(err, errlen, "%s: no CA certificate loaded (%s); give a PEM file", file,
			 n < 0 ? gnutls_strerror(n) : "the file holds none");
		gnutls_x509_trust_list_deinit(*out, 1);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

struct runtime *runtime_load(const char *path, const struct runtime *prev, char *err, size_t errlen)
{
	struct runtime *rt = calloc(1, sizeof(*rt));
	struct config *cfg;
	char why[768];
	size_t i;

	if (rt == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	rt->refs = 1;
	if (config_load(path, &rt->cfg, err, errlen) < 0)
		goto fail;
	cfg = rt->cfg;
	why[0] = '\0';
	if (load_store(rt, prev, why, sizeof(why)) < 0)
		goto fail_tls;
	if (cfg->tls_inbound != CFG_TLS_NONE &&
	    tls_creds_server(cfg->tls_certificate, cfg->tls_key, rt->store, &rt->server_creds, why,
			     sizeof(why)) < 0)
		goto fail_tls;
	rt->peer_creds = calloc(cfg->npeers ? cfg->npeers : 1, sizeof(*rt->peer_creds));
	rt->peer_trust = calloc(cfg->npeers ? cfg->npeers : 1, sizeof(*rt->peer_trust));
	if (rt->peer_creds == NULL || rt->peer_trust == NULL) {
		snprintf(why, sizeof(why), "out of memory");
		goto fail_tls;
	}
	for (i = 0; i < cfg->npeers; i++) {
		if (tls_creds_client(rt->store, &rt->peer_creds[i], why, sizeof(why)) < 0)
			goto fail_tls;
		/* a trunk link authenticates as relay_name: tls.certificate is
		 * its certificate when the store has none */
		if (config_peer_is_link(cfg, (int)i) && cfg->tls_certificate != NULL &&
		    cfg->tls_key != NULL &&
		    tls_creds_client_default(rt->peer_creds[i], cfg->tls_certificate, cfg->tls_key,
					     why, sizeof(why)) < 0)
			goto fail_tls;
		if (cfg->peers[i].ca_file != NULL &&
		    load_trust(cfg->peers[i].ca_file, &rt->peer_trust[i], why, sizeof(why)) < 0)
			goto fail_tls;
	}
	if (cfg->tls_trust != NULL && load_trust(cfg->tls_trust, &rt->trust, why, sizeof(why)) < 0)
		goto fail_tls;
	/* last: it is process-wide, so change it only when all else worked */
	if (tls_set_priority(cfg->tls_priority, why, sizeof(why)) < 0)
		goto fail_tls;
	return rt;
fail_tls:
	snprintf(err, errlen, "%s: tls: %s", path, why);
fail:
	runtime_unref(rt);
	return NULL;
}

struct runtime *runtime_ref(struct runtime *rt)
{
	rt->refs++;
	return rt;
}

void runtime_unref(struct runtime *rt)
{
	size_t i, n;

	if (rt == NULL || --rt->refs > 0)
		return;
	n = rt->cfg != NULL ? rt->cfg->npeers : 0;
	for (i = 0; i < n; i++) {
		if (rt->peer_creds != NULL)
			tls_creds_free(rt->peer_creds[i]);
		if (rt->peer_trust != NULL && rt->peer_trust[i] != NULL)
			gnutls_x509_trust_list_deinit(rt->peer_trust[i], 1);
	}
	free(rt->peer_creds);
	free(rt->peer_trust);
	if (rt->trust != NULL)
		gnutls_x509_trust_list_deinit(rt->trust, 1);
	tls_creds_free(rt->server_creds);
	store_unref(rt->store);
	config_unref(rt->cfg);
	free(rt);
}
