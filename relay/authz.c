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

struct authz {
	struct pairset *pairs; /* owned */
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

const char *authz_stanza(const struct authz *a, const char *from, const char *to, char *from_dom,
			 char *to_dom)
{
	if (from == NULL || to == NULL || jid_domain(from, from_dom, DOMAIN_MAX + 1) < 0 ||
	    jid_domain(to, to_dom, DOMAIN_MAX + 1) < 0)
		return "improper-addressing";
	if (!authz_has(a, from_dom, NULL))
		return "invalid-from";
	if (!authz_has(a, from_dom, to_dom))
		return "host-unknown";
	return NULL;
}
