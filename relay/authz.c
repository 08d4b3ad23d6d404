/* authz: the authenticated domain pairs of one inbound stream and the
 * address checks made against them. A stream carries few pairs (one per
 * sending domain and target), so a short list is the right structure; the
 * bound keeps a hostile peer from growing it without limit. */
#include "authz.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "route.h"

struct authz_pair {
	struct authz_pair *next; /* owned */
	char *from;		 /* owned, normalised */
	char *to;		 /* owned, normalised */
};

struct authz {
	struct authz_pair *pairs; /* owned list */
	size_t count, max;
};

struct authz *authz_new(size_t max_pairs)
{
	struct authz *a = calloc(1, sizeof(*a));

	if (a != NULL)
		a->max = max_pairs;
	return a;
}

void authz_free(struct authz *a)
{
	struct authz_pair *p;

	if (a == NULL)
		return;
	while ((p = a->pairs) != NULL) {
		a->pairs = p->next;
		free(p->from);
		free(p->to);
		free(p);
	}
	free(a);
}

int authz_has(const struct authz *a, const char *from, const char *to)
{
	const struct authz_pair *p;

	for (p = a->pairs; p != NULL; p = p->next)
		if (strcmp(p->from, from) == 0 && (to == NULL || strcmp(p->to, to) == 0))
			return 1;
	return 0;
}

int authz_add(struct authz *a, const char *from, const char *to)
{
	struct authz_pair *p;

	if (authz_has(a, from, to))
		return 0;
	if (a->count >= a->max)
		return -ENOSPC;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->from = strdup(from);
	p->to = strdup(to);
	if (p->from == NULL || p->to == NULL) {
		free(p->from);
		free(p->to);
		free(p);
		return -ENOMEM;
	}
	p->next = a->pairs;
	a->pairs = p;
	a->count++;
	return 0;
}

size_t authz_count(const struct authz *a)
{
	return a->count;
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
