/* fuzz_route: libFuzzer target for the route table (relay/route.c): the
 * hash table, its growth and the one-probe-per-label longest match.
 *
 * Input: lines. Those before the first empty line are patterns for
 * route_add (at most MAX_ROUTES); the rest are domains to look up (at most
 * MAX_LOOKUPS), each looked up as written and, when it normalises, in its
 * normalised form. A NUL inside a line ends that line's string.
 *
 * Invariants beyond "no crash, no leak", checked against a plain list of
 * the routes added (the model):
 *  - route_add returns 0, -EINVAL exactly when the pattern (after "*.")
 *    does not normalise, or -EEXIST with *prev_line = the line of the
 *    earlier route with the same normalised pattern; route_count follows;
 *  - route_lookup(d) returns the route the model picks: the exact route
 *    for d, else "*.s" for the longest s that is d or a label suffix of d,
 *    else "*", else NULL; so the pattern returned is always d itself,
 *    "*." + a suffix of d, or "*";
 *  - every added pattern, the bare domain of every wildcard and one
 *    subdomain of it find what the model says too. */
#include "domain.h"
#include "route.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROUTES 128
#define MAX_LOOKUPS 128

enum kind { K_EXACT, K_WILD, K_DEFAULT };

struct mroute {
	enum kind kind;
	char key[DOMAIN_MAX + 1]; /* normalised domain, or the suffix of "*.suffix" */
	size_t keylen;
	int line;
};

static struct mroute model[MAX_ROUTES];
static size_t nmodel;

static const struct mroute *model_find(enum kind kind, const char *key)
{
	for (size_t i = 0; i < nmodel; i++)
		if (model[i].kind == kind && (kind == K_DEFAULT || strcmp(model[i].key, key) == 0))
			return &model[i];
	return NULL;
}

static const struct mroute *model_lookup(const char *d)
{
	size_t len = strlen(d);
	const struct mroute *best = NULL;

	if (len == 0 || len > DOMAIN_MAX)
		return model_find(K_DEFAULT, NULL);
	if ((best = model_find(K_EXACT, d)) != NULL)
		return best;
	for (size_t i = 0; i < nmodel; i++) {
		const struct mroute *m = &model[i];
		size_t k = m->keylen;

		if (m->kind != K_WILD || k > len || memcmp(d + len - k, m->key, k) != 0)
			continue;
		if (k < len && d[len - k - 1] != '.')
			continue;
		if (!best || k > best->keylen)
			best = m;
	}
	return best ? best : model_find(K_DEFAULT, NULL);
}

static void check_lookup(const struct route_table *rt, const char *d)
{
	const struct route *r = route_lookup(rt, d);
	const struct mroute *m = model_lookup(d);
	size_t len = strlen(d), pl;

	if (!m) {
		if (r)
			abort();
		return;
	}
	if (!r || r->line != m->line || r->peer != m->line)
		abort();
	if (strcmp(r->pattern, "*") == 0)
		return;
	if (strcmp(r->pattern, d) == 0)
		return;
	/* "*." + d, or "*." + a label suffix of d. */
	pl = strlen(r->pattern);
	if (pl < 3 || memcmp(r->pattern, "*.", 2) != 0 || pl - 2 > len ||
	    strcmp(d + len - (pl - 2), r->pattern + 2) != 0 ||
	    (pl - 2 < len && d[len - (pl - 2) - 1] != '.'))
		abort();
}

static void add(struct route_table *rt, const char *pat, int line)
{
	char dom[DOMAIN_MAX + 1];
	enum kind kind = K_EXACT;
	const char *p = pat;
	const struct mroute *old;
	int n = 0, prev = -1, rc, want;

	if (strcmp(pat, "*") == 0) {
		kind = K_DEFAULT;
		dom[0] = '\0';
	} else {
		if (p[0] == '*' && p[1] == '.') {
			kind = K_WILD;
			p += 2;
		}
		n = domain_normalise(p, strlen(p), dom, sizeof(dom));
	}
	old = n >= 0 ? model_find(kind, dom) : NULL;
	want = n < 0 ? -EINVAL : old ? -EEXIST : 0;
	rc = route_add(rt, pat, line, line, &prev);
	if (rc != want || (old && prev != old->line))
		abort();
	if (rc == 0) {
		struct mroute *m = &model[nmodel++];

		m->kind = kind;
		memcpy(m->key, dom, (size_t)n + 1);
		m->keylen = (size_t)n;
		m->line = line;
	}
	if (route_count(rt) != nmodel)
		abort();
}

static void lookup_both(const struct route_table *rt, const char *d)
{
	char dom[DOMAIN_MAX + 1];

	check_lookup(rt, d);
	if (domain_normalise(d, strlen(d), dom, sizeof(dom)) >= 0)
		check_lookup(rt, dom);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct route_table *rt = route_table_new();
	char *line = malloc(size + 1), *sub = malloc(DOMAIN_MAX + 4);
	size_t off = 0, nlook = 0;
	int adding = 1, lineno = 0;

	if (!rt || !line || !sub)
		abort();
	nmodel = 0;
	while (off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t n = nl ? (size_t)(nl - (data + off)) : size - off;

		memcpy(line, data + off, n);
		line[n] = '\0';
		off += n + (nl ? 1 : 0);
		lineno++;
		if (adding && n == 0) {
			adding = 0;
			continue;
		}
		if (adding && nmodel < MAX_ROUTES)
			add(rt, line, lineno);
		else if (!adding && nlook++ < MAX_LOOKUPS)
			lookup_both(rt, line);
	}
	for (size_t i = 0; i < nmodel; i++) {
		const struct mroute *m = &model[i];

		if (m->kind == K_DEFAULT)
			continue;
		check_lookup(rt, m->key);
		memcpy(sub, "zz.", 3);
		memcpy(sub + 3, m->key, m->keylen + 1);
		check_lookup(rt, sub);
	}
	check_lookup(rt, "");
	route_table_free(rt);
	free(sub);
	free(line);
	return 0;
}
