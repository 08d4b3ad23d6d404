/* route: the peering-control table, domain pattern -> peer, and the
 * longest-match lookup over it.
 *
 * One open-addressing hash table (linear probing, power-of-two size, kept at
 * most 3/4 full, doubled when it would not be) holds exact and wildcard
 * entries side by side; an entry's key is the normalised domain ("a.example")
 * or, for "*.us", the suffix "us", and its kind is part of the hash and of
 * equality. The default "*" sits outside the table.
 *
 * A lookup of d probes exact(d), then wild(s) for each suffix s of d that
 * starts a label, longest first, then falls back to the default: one probe
 * per label whatever the table size. The hash is FNV-1a run over the key
 * from its last byte to its first, so a single backward pass over d yields
 * the hash of every suffix and a hostile domain with 500 labels costs 1023
 * byte steps, not half a million. Each slot carries its entry's hash next
 * to the pointer, so a probe that misses (most of them: one per label)
 * reads one cache line of the slot array and never the entry itself. */
#include "route.h"

#include "domain.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
#define MAX_SUFFIXES DOMAIN_MAX /* even for a domain that is not normalised */
#define INITIAL_SLOTS 16

enum route_kind { KIND_EXACT = 0, KIND_WILD = 1 };

struct route_entry {
	struct route r;	 /* r.pattern points into buf, owned with the entry */
	uint64_t hash;	 /* of key and kind, see slot_hash() */
	const char *key; /* borrowed from buf: the domain or wildcard suffix */
	size_t keylen;
	unsigned char kind; /* enum route_kind */
	char buf[];	    /* the normalised pattern, NUL-terminated */
};

struct route_slot {
	uint64_t hash;	       /* e->hash, when e is set */
	struct route_entry *e; /* owned, NULL = empty */
};

struct route_table {
	struct route_slot *slots; /* owned array */
	size_t nslots;		  /* power of two */
	size_t nentries;	  /* in slots, not counting the default */
	struct route_entry *def;  /* owned, the "*" route, NULL if none */
};

/* One backward FNV-1a step: the hash of c followed by the suffix hashed in h. */
static uint64_t fnv_back(uint64_t h, unsigned char c)
{
	return (h ^ c) * FNV_PRIME;
}

static uint64_t fnv_back_str(const char *s, size_t n)
{
	uint64_t h = FNV_OFFSET;

	while (n > 0)
		h = fnv_back(h, (unsigned char)s[--n]);
	return h;
}

/* Mixes in the kind and spreads FNV's weak low bits (which pick the slot). */
static uint64_t slot_hash(uint64_t h, unsigned kind)
{
	h ^= kind ? 0x9e3779b97f4a7c15ULL : 0;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

struct route_table *route_table_new(void)
{
	struct route_table *rt = calloc(1, sizeof(*rt));

	if (!rt)
		goto fail;
	rt->slots = calloc(INITIAL_SLOTS, sizeof(*rt->slots));
	if (!rt->slots)
		goto fail;
	rt->nslots = INITIAL_SLOTS;
	return rt;
fail:
	free(rt);
	return NULL;
}

void route_table_free(struct route_table *rt)
{
	if (!rt)
		return;
	for (size_t i = 0; i < rt->nslots; i++)
		free(rt->slots[i].e);
	free(rt->slots);
	free(rt->def);
	free(rt);
}

size_t route_count(const struct route_table *rt)
{
	if (!rt)
		return 0;
	return rt->nentries + (rt->def ? 1 : 0);
}

const struct route *route_next(const struct route_table *rt, size_t *pos)
{
	if (!rt || !pos)
		return NULL;
	/* *pos runs over the slots, then one step for the default. */
	while (*pos < rt->nslots) {
		const struct route_entry *e = rt->slots[(*pos)++].e;

		if (e)
			return &e->r;
	}
	if (*pos == rt->nslots && rt->def) {
		(*pos)++;
		return &rt->def->r;
	}
	return NULL;
}

static struct route_entry *find(const struct route_table *rt, uint64_t hash, unsigned kind,
				const char *key, size_t keylen)
{
	size_t mask = rt->nslots - 1;

	/* Terminates: the table is never full. */
	for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
		const struct route_slot *sl = &rt->slots[i];

		if (!sl->e)
			return NULL;
		if (sl->hash == hash && sl->e->kind == kind && sl->e->keylen == keylen &&
		    memcmp(sl->e->key, key, keylen) == 0)
			return sl->e;
	}
}

static void place(struct route_slot *slots, size_t nslots, struct route_entry *e)
{
	size_t mask = nslots - 1, i = (size_t)e->hash & mask;

	while (slots[i].e)
		i = (i + 1) & mask;
	slots[i].hash = e->hash;
	slots[i].e = e;
}

static int grow(struct route_table *rt)
{
	size_t n = rt->nslots * 2;
	struct route_slot *slots;

	if (n < rt->nslots || n > SIZE_MAX / sizeof(*slots))
		return -ENOMEM;
	slots = calloc(n, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < rt->nslots; i++)
		if (rt->slots[i].e)
			place(slots, n, rt->slots[i].e);
	free(rt->slots);
	rt->slots = slots;
	rt->nslots = n;
	return 0;
}

static struct route_entry *entry_new(unsigned kind, const char *dom, size_t domlen, int peer,
				     int line)
{
	size_t prefix = kind == KIND_WILD ? 2 : 0;
	struct route_entry *e = malloc(sizeof(*e) + prefix + domlen + 1);

	if (!e)
		return NULL;
	memcpy(e->buf, "*.", prefix);
	memcpy(e->buf + prefix, dom, domlen + 1);
	e->r.pattern = e->buf;
	e->r.peer = peer;
	e->r.line = line;
	e->key = e->buf + prefix;
	e->keylen = domlen;
	e->kind = (unsigned char)kind;
	e->hash = slot_hash(fnv_back_str(e->key, domlen), kind);
	return e;
}

int route_add(struct route_table *rt, const char *pattern, int peer, int line, int *prev_line)
{
	char dom[DOMAIN_MAX + 1];
	unsigned kind = KIND_EXACT;
	struct route_entry *e, *old;
	const char *p = pattern;
	int n;

	if (!rt || !pattern)
		return -EINVAL;
	if (strcmp(pattern, "*") == 0) {
		if (rt->def) {
			if (prev_line)
				*prev_line = rt->def->r.line;
			return -EEXIST;
		}
		rt->def = entry_new(KIND_EXACT, "*", 1, peer, line);
		if (!rt->def)
			return -ENOMEM;
		/* The default is never looked up by key. */
		rt->def->key = NULL;
		rt->def->keylen = 0;
		return 0;
	}
	if (p[0] == '*' && p[1] == '.') {
		kind = KIND_WILD;
		p += 2;
	}
	/* Any other '*' is not a valid domain character: domain_normalise
	 * rejects it, and "*." with nothing after it is an empty domain. */
	n = domain_normalise(p, strlen(p), dom, sizeof(dom));
	if (n < 0)
		return n == -ENAMETOOLONG ? -EINVAL : n;

	e = entry_new(kind, dom, (size_t)n, peer, line);
	if (!e)
		return -ENOMEM;
	old = find(rt, e->hash, kind, e->key, e->keylen);
	if (old) {
		if (prev_line)
			*prev_line = old->r.line;
		free(e);
		return -EEXIST;
	}
	if ((rt->nentries + 1) * 4 > rt->nslots * 3 && grow(rt) < 0) {
		free(e);
		return -ENOMEM;
	}
	place(rt->slots, rt->nslots, e);
	rt->nentries++;
	return 0;
}

const struct route *route_lookup(const struct route_table *rt, const char *domain)
{
	uint64_t hashes[MAX_SUFFIXES];
	size_t starts[MAX_SUFFIXES], nsuf = 0, len;
	const struct route_entry *e;
	uint64_t h = FNV_OFFSET;

	if (!rt || !domain)
		return NULL;
	len = strlen(domain);
	/* No normalised domain is empty or longer: only the default can
	 * apply to such a string. */
	if (len > 0 && len <= DOMAIN_MAX) {
		/* Backward pass: record the hash of each label-starting
		 * suffix, shortest first. */
		for (size_t i = len; i-- > 0;) {
			h = fnv_back(h, (unsigned char)domain[i]);
			if ((i == 0 || domain[i - 1] == '.') && nsuf < MAX_SUFFIXES) {
				hashes[nsuf] = h;
				starts[nsuf] = i;
				nsuf++;
			}
		}
		e = find(rt, slot_hash(hashes[nsuf - 1], KIND_EXACT), KIND_EXACT, domain, len);
		if (e)
			return &e->r;
		while (nsuf-- > 0) {
			size_t at = starts[nsuf];

			e = find(rt, slot_hash(hashes[nsuf], KIND_WILD), KIND_WILD, domain + at,
				 len - at);
			if (e)
				return &e->r;
		}
	}
	return rt->def ? &rt->def->r : NULL;
}
