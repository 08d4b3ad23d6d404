/* authz: the authenticated domain pairs of one inbound stream and the
 * address checks made against them. A leaf's stream carries a pair or two,
 * a trunk link up to a thousand, and every stanza asks twice: a pairset
 * (hash); the bound keeps a hostile peer from growing it without limit. */
#include "authz.h"

#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "pairset.h"
#include "route.h"

/* The last domainpart as written and its normalised form: a stream
 * carries the same few domains stanza after stanza, and normalising one
 * (IDNA checks, lower-casing) costs more than comparing a few bytes. Only
 * short names are remembered: about 260 bytes per stream. */
#define AUTHZ_MEMO_MAX 63
struct authz_memo {
	unsigned char raw_len; /* 0: empty */
	unsigned char norm_len;
	char raw[AUTHZ_MEMO_MAX];
	char norm[AUTHZ_MEMO_MAX + 1];
};

struct authz {
	struct pairset *pairs;	   /* owned */
	struct authz_memo memo[2]; /* from, to */
};

struct authz *authz_new(size_t max_pairs)
{
	struct authz *a = calloc(1, sizeof(*a));

	if (a != NULL && (a->pairs = pairset_new(max_pairs)) == NULL) {
		free(a);
		a = NULL;
	}
	return a;
}

void authz_free(struct authz *a)
{
	if (a == NULL)
		return;
	pairset_free(a->pairs);
	free(a);
}

int authz_has(const struct authz *a, const char *from, const char *to)
{
	if (to == NULL)
		return pairset_has_from(a->pairs, from);
	return pairset_find(a->pairs, from, to) != NULL;
}

int authz_add(struct authz *a, const char *from, const char *to)
{
	return pairset_add(a->pairs, from, to, 0);
}

size_t authz_count(const struct authz *a)
{
	return pairset_count(a->pairs);
}

const char *authz_header(const struct route_table *rt, const char *to, const char *version,
			 char *local)
{
	if (to == NULL || domain_normalise(to, strlen(to), local, DOMAIN_MAX + 1) < 0 ||
	    route_lookup(rt, local) == NULL)
		return "host-unknown";
	/* RFC 6120 4.7.5: we speak 1.0; a missing version means pre-1.0. */
	if (version == NULL || strncmp(version, "1.", 2) != 0)
		return "unsupported-version";
	return NULL;
}

/* jid_domain() into out (DOMAIN_MAX + 1 bytes), through the memo. */
static int authz_jid_domain(struct authz_memo *m, const char *jid, char *out)
{
	const char *dom;
	size_t len;
	int rc = jid_domain_part(jid, &dom, &len);

	if (rc < 0)
		return rc;
	if (len > 0 && len == m->raw_len && memcmp(dom, m->raw, len) == 0) {
		memcpy(out, m->norm, (size_t)m->norm_len + 1);
		return m->norm_len;
	}
	rc = domain_normalise(dom, len, out, DOMAIN_MAX + 1);
	if (rc >= 0 && len <= AUTHZ_MEMO_MAX && rc <= AUTHZ_MEMO_MAX) {
		memcpy(m->raw, dom, len);
		m->raw_len = (unsigned char)len;
		memcpy(m->norm, out, (size_t)rc + 1);
		m->norm_len = (unsigned char)rc;
	}
	return rc;
}

const char *authz_stanza(struct authz *a, const char *from, const char *to, char *from_dom,
			 char *to_dom)
{
	if (from == NULL || to == NULL || authz_jid_domain(&a->memo[0], from, from_dom) < 0 ||
	    authz_jid_domain(&a->memo[1], to, to_dom) < 0)
		return "improper-addressing";
	if (!authz_has(a, from_dom, NULL))
		return "invalid-from";
	if (!authz_has(a, from_dom, to_dom))
		return "host-unknown";
	return NULL;
}
