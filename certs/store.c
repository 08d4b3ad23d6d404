/* store: picks the certificate the relay presents for a domain, from a
 * directory of pairs or from the enclave CA.
 *
 * Selection is first match: the exact domain, then the wildcard entry one
 * label up (RFC 6125 section 6.4.3: "*" stands for exactly one whole
 * label, so b.a.example.com is not covered by *.example.com), then a
 * certificate from the enclave CA, but only for a domain that has a
 * route: the relay must not become an oracle that mints certificates for
 * any name a peer puts in its SNI.
 *
 * Entries are refcounted apart from the store: the table (or cache) holds
 * one reference, and every TLS session that presented an entry holds
 * another through its binding, because GnuTLS uses the chain and key we
 * hand it (retrieve_function2 does not copy them) for the rest of the
 * session. So an entry evicted from the cache, or a whole store replaced
 * by a reload, lives on until the last session that uses it is freed.
 *
 * The CA cache is a hash table plus a least-recently-used list bounded by
 * cache_max. A cached certificate is re-issued once less than a third of
 * its lifetime remains; if re-issue fails, the old one is served while it
 * is still valid. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gnutls/x509.h>

#include "ca.h"
#include "domain.h"

#define WILDCARD_PREFIX "_wildcard."
#define WILDCARD_PROBE "xtrunk-wildcard-probe."

struct store_cert {
	int refs;
	char *name;		/* owned: "example.com" or "*.example.com" */
	const char *key;	/* borrowed: the table key, name without any "*." */
	gnutls_pcert_st *chain; /* owned: nchain parsed certificates, leaf first */
	unsigned nchain;
	gnutls_privkey_t pkey;	  /* owned */
	time_t issued;		  /* CA entries: when issued (store clock) */
	time_t not_after;	  /* CA entries: expiry of the leaf */
	struct store_cert *hnext; /* borrowed: next in the same hash bucket */
	struct store_cert *older; /* borrowed: CA cache order, towards eviction */
	struct store_cert *newer; /* borrowed: CA cache order, towards the newest */
};

struct table {
	struct store_cert **b; /* owned array; each entry in it holds one reference */
	size_t nb;	       /* buckets, a power of two (0 when empty) */
	size_t n;
};

struct store {
	int refs;
	struct table exact;		    /* DOMAIN.pem entries, by domain */
	struct table wild;		    /* _wildcard.DOMAIN.pem entries, by DOMAIN */
	struct table cache;		    /* CA-issued entries, by domain */
	struct store_cert *newest, *oldest; /* borrowed: the cache entries in use order */
	struct ca *ca;			    /* ref, or NULL */
	int (*routed)(void *ctx, const char *domain);
	void *routed_ctx; /* borrowed */
	unsigned lifetime;
	unsigned flags;
	size_t cache_max;
	time_t (*now)(void);
};

struct store_binding {
	struct store *store;	 /* ref */
	struct store_cert *cert; /* ref: the certificate presented, or NULL */
	enum store_role role;
	char name[DOMAIN_MAX + 1];   /* the stream 'to' (server) or 'from' (client); "" if unset */
	char sought[DOMAIN_MAX + 1]; /* the name last looked up, for logs; "" if none */
};

/* ---- entries ---- */

static void cert_free(struct store_cert *c)
{
	for (unsigned i = 0; i < c->nchain; i++)
		gnutls_pcert_deinit(&c->chain[i]);
	free(c->chain);
	if (c->pkey != NULL)
		gnutls_privkey_deinit(c->pkey);
	free(c->name);
	free(c);
}

void store_cert_unref(struct store_cert *c)
{
	if (c != NULL && --c->refs == 0)
		cert_free(c);
}

void store_cert_get(const struct store_cert *c, gnutls_pcert_st **chain, unsigned *nchain,
		    gnutls_privkey_t *key)
{
	*chain = c->chain;
	*nchain = c->nchain;
	*key = c->pkey;
}

const char *store_cert_name(const struct store_cert *c)
{
	return c->name;
}

static struct store_cert *cert_new(const char *domain, int wildcard)
{
	struct store_cert *c = calloc(1, sizeof(*c));
	size_t n = strlen(domain);

	if (c == NULL)
		return NULL;
	c->name = malloc(n + 3);
	if (c->name == NULL) {
		free(c);
		return NULL;
	}
	snprintf(c->name, n + 3, "%s%s", wildcard ? "*." : "", domain);
	c->key = c->name + (wildcard ? 2 : 0);
	c->refs = 1;
	return c;
}

/* ---- hash tables ---- */

static size_t hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return (size_t)h;
}

static struct store_cert *table_find(const struct table *t, const char *key)
{
	if (t->nb == 0)
		return NULL;
	for (struct store_cert *c = t->b[hash(key) & (t->nb - 1)]; c != NULL; c = c->hnext)
		if (strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

static int table_add(struct table *t, struct store_cert *c)
{
	size_t i;

	if (t->n >= t->nb) {
		size_t nb = t->nb ? t->nb * 2 : 16;
		struct store_cert **b = calloc(nb, sizeof(*b));

		if (b == NULL)
			return -ENOMEM;
		for (i = 0; i < t->nb; i++) {
			while (t->b[i] != NULL) {
				struct store_cert *e = t->b[i];
				size_t j = hash(e->key) & (nb - 1);

				t->b[i] = e->hnext;
				e->hnext = b[j];
				b[j] = e;
			}
		}
		free(t->b);
		t->b = b;
		t->nb = nb;
	}
	i = hash(c->key) & (t->nb - 1);
	c->hnext = t->b[i];
	t->b[i] = c;
	t->n++;
	return 0;
}

/* Unlinks c; the table's reference passes to the caller. */
static void table_del(struct table *t, struct store_cert *c)
{
	struct store_cert **p = &t->b[hash(c->key) & (t->nb - 1)];

	while (*p != NULL && *p != c)
		p = &(*p)->hnext;
	if (*p == c) {
		*p = c->hnext;
		c->hnext = NULL;
		t->n--;
	}
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nb; i++) {
		while (t->b[i] != NULL) {
			struct store_cert *c = t->b[i];

			t->b[i] = c->hnext;
			c->hnext = NULL;
			store_cert_unref(c);
		}
	}
	free(t->b);
	t->b = NULL;
	t->nb = t->n = 0;
}

/* ---- CA cache order ---- */

static void lru_unlink(struct store *s, struct store_cert *c)
{
	if (c->newer != NULL)
		c->newer->older = c->older;
	else
		s->newest = c->older;
	if (c->older != NULL)
		c->older->newer = c->newer;
	else
		s->oldest = c->newer;
	c->older = c->newer = NULL;
}

static void lru_push(struct store *s, struct store_cert *c)
{
	c->older = s->newest;
	c->newer = NULL;
	if (s->newest != NULL)
		s->newest->newer = c;
	else
		s->oldest = c;
	s->newest = c;
}

/* Drops c from the cache (and the cache's reference). */
static void cache_drop(struct store *s, struct store_cert *c)
{
	table_del(&s->cache, c);
	lru_unlink(s, c);
	store_cert_unref(c);
}

/* Adds c (the cache takes the caller's reference) and evicts beyond the bound. */
static int cache_add(struct store *s, struct store_cert *c)
{
	int rc = table_add(&s->cache, c);

	if (rc < 0)
		return rc;
	lru_push(s, c);
	while (s->cache.n > s->cache_max && s->oldest != NULL && s->oldest != c)
		cache_drop(s, s->oldest);
	return 0;
}

/* ---- loading ---- */

void store_unref(struct store *s)
{
	if (s == NULL || --s->refs > 0)
		return;
	table_free(&s->exact);
	table_free(&s->wild);
	table_free(&s->cache);
	ca_unref(s->ca);
	free(s);
}

struct store *store_ref(struct store *s)
{
	s->refs++;
	return s;
}

static int key_matches(gnutls_x509_crt_t crt, gnutls_privkey_t key)
{
	unsigned char a[64], b[64];
	size_t alen = sizeof(a), blen = sizeof(b);
	gnutls_pubkey_t pub;
	int rc;

	if (gnutls_pubkey_init(&pub) < 0)
		return 0;
	rc = gnutls_pubkey_import_privkey(pub, key, 0, 0);
	if (rc >= 0)
		rc = gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, a, &alen);
	gnutls_pubkey_deinit(pub);
	if (rc < 0 || gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, b, &blen) < 0)
		return 0;
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* Loads dir/file_base.pem and .key as the entry for domain. */
static int load_pair(struct store *s, const char *dir, const char *file_base, const char *domain,
		     int wildcard, char *err, size_t errlen)
{
	char cpath[PATH_MAX], kpath[PATH_MAX], probe[DOMAIN_MAX + sizeof(WILDCARD_PROBE)];
	gnutls_datum_t data = {NULL, 0};
	gnutls_x509_crt_t *crts = NULL;
	unsigned ncrts = 0;
	struct store_cert *c = NULL;
	int rc;

	if ((size_t)snprintf(cpath, sizeof(cpath), "%s/%s.pem", dir, file_base) >= sizeof(cpath) ||
	    (size_t)snprintf(kpath, sizeof(kpath), "%s/%s.key", dir, file_base) >= sizeof(kpath)) {
		snprintf(err, errlen, "%s/%s.pem: path too long", dir, file_base);
		return -ENAMETOOLONG;
	}
	if (table_find(wildcard ? &s->wild : &s->exact, domain) != NULL) {
		snprintf(err, errlen,
			 "%s: another file in %s is for the same domain %s%s; keep one of them",
			 cpath, dir, wildcard ? "*." : "", domain);
		return -EEXIST;
	}
	c = cert_new(domain, wildcard);
	if (c == NULL)
		return -ENOMEM;

	/* the key first: a missing or exposed key is the likelier mistake */
	rc = ca_read_file(kpath, 1, &data, err, errlen);
	if (rc == -ENOENT)
		snprintf(err, errlen, "%s: no key for %s.pem; add %s.key beside it or remove it",
			 kpath, file_base, file_base);
	if (rc < 0)
		goto fail;
	rc = gnutls_privkey_init(&c->pkey);
	if (rc >= 0)
		rc = gnutls_privkey_import_x509_raw(c->pkey, &data, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_memset(data.data, 0, data.size);
	gnutls_free(data.data);
	if (rc < 0) {
		snprintf(err, errlen,
			 "%s: cannot read the private key (%s); give an unencrypted PEM key", kpath,
			 gnutls_strerror(rc));
		rc = -EINVAL;
		goto fail;
	}
	rc = ca_read_file(cpath, 0, &data, err, errlen);
	if (rc < 0)
		goto fail;
	rc = gnutls_x509_crt_list_import2(&crts, &ncrts, &data, GNUTLS_X509_FMT_PEM,
					  GNUTLS_X509_CRT_LIST_SORT);
	gnutls_free(data.data);
	data.data = NULL;
	if (rc < 0 || ncrts == 0) {
		snprintf(err, errlen,
			 "%s: no usable PEM certificate chain (%s); give the certificate, then "
			 "its intermediates",
			 cpath, rc < 0 ? gnutls_strerror(rc) : "none found");
		ncrts = 0;
		rc = -EINVAL;
		goto fail;
	}
	snprintf(probe, sizeof(probe), "%s%s", wildcard ? WILDCARD_PROBE : "", domain);
	if (!gnutls_x509_crt_check_hostname2(crts[0], probe, 0)) {
		snprintf(err, errlen,
			 "%s: the certificate is not valid for %s; rename the file after a name "
			 "it covers, or reissue it",
			 cpath, c->name);
		rc = -EINVAL;
		goto fail;
	}

	if (!key_matches(crts[0], c->pkey)) {
		snprintf(err, errlen,
			 "%s: the key does not belong to the certificate in %s; give the matching "
			 "pair",
			 kpath, cpath);
		rc = -EINVAL;
		goto fail;
	}

	c->chain = calloc(ncrts, sizeof(*c->chain));
	if (c->chain == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	c->nchain = ncrts;
	rc = gnutls_pcert_import_x509_list(c->chain, crts, &c->nchain, 0);
	if (rc < 0) {
		c->nchain = 0;
		snprintf(err, errlen, "%s: cannot use the certificate chain: %s", cpath,
			 gnutls_strerror(rc));
		rc = -EINVAL;
		goto fail;
	}
	rc = table_add(wildcard ? &s->wild : &s->exact, c);
	if (rc < 0)
		goto fail;
	c = NULL;
fail:
	for (unsigned i = 0; i < ncrts; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	if (c != NULL)
		cert_free(c);
	return rc;
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n > k && strcmp(s + n - k, suffix) == 0;
}

/* One directory entry: a pair's .pem (loaded), an orphan .key (refused),
 * anything else (ignored). */
static int load_entry(struct store *s, const char *dir, const char *fname, char *err, size_t errlen)
{
	char base[NAME_MAX + 1], domain[DOMAIN_MAX + 1], path[PATH_MAX];
	size_t n = strlen(fname);
	const char *dom;
	struct stat st;
	int wildcard, rc;

	if (fname[0] == '.' || n > NAME_MAX)
		return 0;
	if (ends_with(fname, n, ".key")) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%.*s.pem", dir, (int)(n - 4), fname) <
			sizeof(path) &&
		    stat(path, &st) == 0)
			return 0; /* loaded with its .pem */
		snprintf(err, errlen, "%s/%s: key without certificate; add %.*s.pem or remove it",
			 dir, fname, (int)(n - 4), fname);
		return -ENOENT;
	}
	if (!ends_with(fname, n, ".pem"))
		return 0;
	memcpy(base, fname, n - 4);
	base[n - 4] = '\0';
	wildcard = strncmp(base, WILDCARD_PREFIX, strlen(WILDCARD_PREFIX)) == 0;
	dom = wildcard ? base + strlen(WILDCARD_PREFIX) : base;
	rc = domain_normalise(dom, strlen(dom), domain, sizeof(domain));
	if (rc < 0 || (wildcard && strchr(domain, '.') == NULL)) {
		snprintf(err, errlen,
			 "%s/%s: the file name is not DOMAIN.pem or _wildcard.DOMAIN.pem (a "
			 "wildcard needs at least two labels); rename it or move it out of %s",
			 dir, fname, dir);
		return -EINVAL;
	}
	return load_pair(s, dir, base, domain, wildcard, err, errlen);
}

static int load_dir(struct store *s, const char *dir, char *err, size_t errlen)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int rc = 0;

	if (d == NULL) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open the certificate directory: %s", dir,
			 strerror(-rc));
		return rc;
	}
	while (rc == 0) {
		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				rc = -errno;
				snprintf(err, errlen, "%s: cannot read: %s", dir, strerror(-rc));
			}
			break;
		}
		rc = load_entry(s, dir, de->d_name, err, errlen);
	}
	closedir(d);
	return rc;
}

/* Moves prev's CA cache into s, oldest first so the order is kept. */
static int adopt_cache(struct store *s, struct store *prev)
{
	int rc;

	while (prev->oldest != NULL) {
		struct store_cert *c = prev->oldest;

		table_del(&prev->cache, c);
		lru_unlink(prev, c);
		rc = cache_add(s, c);
		if (rc < 0) {
			store_cert_unref(c);
			return rc;
		}
	}
	return 0;
}

int store_load(const struct store_params *p, struct store **out, char *err, size_t errlen)
{
	struct store *s;
	int rc;

	*out = NULL;
	if (p->ca != NULL && p->routed == NULL) {
		snprintf(err, errlen, "certificate store: a CA needs a route check (internal)");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->refs = 1;
	s->ca = p->ca != NULL ? ca_ref(p->ca) : NULL;
	s->routed = p->routed;
	s->routed_ctx = p->routed_ctx;
	s->lifetime = p->lifetime ? p->lifetime : STORE_ISSUE_LIFETIME;
	s->flags = p->flags;
	s->cache_max = p->cache_max ? p->cache_max : STORE_CACHE_MAX;
	s->now = p->now;
	if (p->dir != NULL) {
		rc = load_dir(s, p->dir, err, errlen);
		if (rc < 0)
			goto fail;
	}
	/* certificates already issued by the same CA with the same contents
	 * stay valid across a reload: no burst of re-issues on SIGHUP */
	if (p->prev != NULL && p->prev->ca == s->ca && s->ca != NULL &&
	    p->prev->flags == s->flags && p->prev->lifetime == s->lifetime) {
		rc = adopt_cache(s, p->prev);
		if (rc < 0)
			goto fail;
	}
	*out = s;
	return 0;
fail:
	store_unref(s);
	return rc;
}

/* ---- selection ---- */

static time_t store_now(const struct store *s)
{
	return s->now != NULL ? s->now() : time(NULL);
}

/* Whether c has at least a third of its lifetime left at now. */
static int fresh(const struct store_cert *c, time_t now)
{
	int64_t life = (int64_t)c->not_after - (int64_t)c->issued;
	int64_t left = (int64_t)c->not_after - (int64_t)now;

	return left > 0 && left * 3 >= life;
}

static int issue(struct store *s, const char *domain, time_t now, struct store_cert **out)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_x509_privkey_t xkey = NULL;
	const gnutls_x509_crt_t *extra;
	struct store_cert *c;
	unsigned nextra;
	int rc;

	rc = ca_issue(s->ca, domain, now, s->lifetime, s->flags, &crt, &xkey);
	if (rc < 0)
		return rc;
	c = cert_new(domain, 0);
	if (c == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	extra = ca_chain(s->ca, &nextra);
	c->chain = calloc(1 + nextra, sizeof(*c->chain));
	if (c->chain == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i <= nextra; i++) {
		rc = gnutls_pcert_import_x509(&c->chain[i], i == 0 ? crt : extra[i - 1], 0);
		if (rc < 0) {
			rc = -EIO;
			goto out;
		}
		c->nchain++;
	}
	rc = gnutls_privkey_init(&c->pkey);
	if (rc >= 0)
		rc = gnutls_privkey_import_x509(c->pkey, xkey, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
	if (rc < 0) {
		rc = -EIO;
		goto out;
	}
	xkey = NULL; /* now owned by c->pkey */
	c->issued = now;
	c->not_after = gnutls_x509_crt_get_expiration_time(crt);
	*out = c;
	c = NULL;
	rc = 0;
out:
	if (c != NULL)
		cert_free(c);
	if (xkey != NULL)
		gnutls_x509_privkey_deinit(xkey);
	gnutls_x509_crt_deinit(crt);
	return rc;
}

static int select_ca(struct store *s, const char *domain, struct store_cert **out)
{
	struct store_cert *old = table_find(&s->cache, domain), *c = NULL;
	time_t now;
	int rc;

	if (!s->routed(s->routed_ctx, domain)) {
		/* the route went away since we issued: forget the certificate */
		if (old != NULL)
			cache_drop(s, old);
		return -ENOENT;
	}
	now = store_now(s);
	if (old != NULL && fresh(old, now)) {
		c = old;
	} else {
		rc = issue(s, domain, now, &c);
		if (rc < 0) {
			if (old == NULL || now >= old->not_after)
				return rc;
			c = old; /* still valid: better than nothing */
		} else {
			if (old != NULL)
				cache_drop(s, old);
			rc = cache_add(s, c);
			if (rc < 0) {
				store_cert_unref(c);
				return rc;
			}
		}
	}
	lru_unlink(s, c);
	lru_push(s, c);
	c->refs++;
	*out = c;
	return 0;
}

int store_select(struct store *s, const char *name, struct store_cert **out)
{
	char domain[DOMAIN_MAX + 1];
	struct store_cert *c;
	const char *dot;

	*out = NULL;
	if (name == NULL || domain_normalise(name, strlen(name), domain, sizeof(domain)) < 0)
		return -EINVAL;
	c = table_find(&s->exact, domain);
	if (c == NULL && (dot = strchr(domain, '.')) != NULL)
		c = table_find(&s->wild, dot + 1);
	if (c != NULL) {
		c->refs++;
		*out = c;
		return 0;
	}
	if (s->ca == NULL)
		return -ENOENT;
	return select_ca(s, domain, out);
}

/* ---- GnuTLS glue ---- */

struct store_binding *store_binding_new(struct store *s, enum store_role role)
{
	struct store_binding *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->store = store_ref(s);
	b->role = role;
	return b;
}

int store_binding_set_name(struct store_binding *b, const char *name)
{
	if (name == NULL) {
		b->name[0] = '\0';
		return 0;
	}
	if (domain_normalise(name, strlen(name), b->name, sizeof(b->name)) < 0) {
		b->name[0] = '\0';
		return -EINVAL;
	}
	return 0;
}

const char *store_binding_presented(const struct store_binding *b)
{
	return b->cert != NULL ? b->cert->name : NULL;
}

const char *store_binding_sought(const struct store_binding *b)
{
	return b->sought;
}

void store_binding_free(struct store_binding *b)
{
	if (b == NULL)
		return;
	store_cert_unref(b->cert);
	store_unref(b->store);
	free(b);
}

int store_retrieve_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
			    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
			    gnutls_pcert_st **pcert, unsigned int *pcert_length,
			    gnutls_privkey_t *privkey)
{
	struct store_binding *b = gnutls_session_get_ptr(session);
	struct store_cert *c = NULL, *old;
	char sni[DOMAIN_MAX + 1];
	size_t len = sizeof(sni);
	unsigned type = 0;
	int rc = -ENOENT;

	*pcert = NULL;
	*pcert_length = 0;
	*privkey = NULL;
	if (b == NULL)
		return -1;
	/* A server honours the SNI first; a client's SNI is the peer's name,
	 * never its own, so a client only ever uses the binding's name. */
	b->sought[0] = '\0';
	if (b->role == STORE_SERVER &&
	    gnutls_server_name_get(session, sni, &len, &type, 0) == GNUTLS_E_SUCCESS &&
	    type == GNUTLS_NAME_DNS) {
		/* peer input: only its normalised form reaches a log line */
		if (domain_normalise(sni, strlen(sni), b->sought, sizeof(b->sought)) < 0)
			snprintf(b->sought, sizeof(b->sought), "(not a domain)");
		rc = store_select(b->store, sni, &c);
	}
	if (rc < 0 && b->name[0] != '\0') {
		if (b->sought[0] == '\0')
			snprintf(b->sought, sizeof(b->sought), "%s", b->name);
		rc = store_select(b->store, b->name, &c);
	}
	if (rc < 0)
		return 0;
	/* keep what GnuTLS now points at alive for the whole session */
	old = b->cert;
	b->cert = c;
	store_cert_unref(old);
	store_cert_get(c, pcert, pcert_length, privkey);
	return 0;
}
