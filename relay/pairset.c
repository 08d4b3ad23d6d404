/* pairset: open addressing with linear probing, power-of-two size, at most
 * half full. Each pair is one entry; each distinct `from` has one more
 * entry (to == NULL) so that "any pair from this domain?" is one probe
 * too. Nothing is ever removed: a stream's set lives as long as the
 * stream, and the bound keeps it small. */
#include "pairset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	uint64_t hash;
	char *from; /* owned allocation: from, then to; NULL = empty slot */
	char *to;   /* points into from's allocation; NULL = the from marker */
	int value;
};

struct pairset {
	struct entry *slots; /* owned array of nslots */
	size_t nslots, used; /* used counts markers too */
	size_t pairs, max;
};

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * FNV_PRIME;
	return h;
}

uint64_t pairset_hash(const char *from, const char *to)
{
	/* 0xff never occurs in UTF-8: ("a", "bc") and ("ab", "c") differ */
	return fnv((fnv(FNV_OFFSET, from) ^ 0xff) * FNV_PRIME, to);
}

/* The marker of `from` hashes differently from every pair. */
static uint64_t marker_hash(const char *from)
{
	return fnv(FNV_OFFSET, from) * FNV_PRIME;
}

struct pairset *pairset_new(size_t max_pairs)
{
	struct pairset *ps = calloc(1, sizeof(*ps));

	if (ps != NULL)
		ps->max = max_pairs;
	return ps;
}

void pairset_free(struct pairset *ps)
{
	if (ps == NULL)
		return;
	for (size_t i = 0; i < ps->nslots; i++)
		free(ps->slots[i].from);
	free(ps->slots);
	free(ps);
}

static struct entry *lookup(const struct pairset *ps, uint64_t hash, const char *from,
			    const char *to)
{
	size_t mask = ps->nslots - 1;

	if (ps->nslots == 0)
		return NULL;
	for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
		struct entry *e = &ps->slots[i];

		if (e->from == NULL)
			return NULL;
		if (e->hash == hash && (e->to == NULL) == (to == NULL) &&
		    strcmp(e->from, from) == 0 && (to == NULL || strcmp(e->to, to) == 0))
			return e;
	}
}

static void place(struct entry *slots, size_t nslots, const struct entry *e)
{
	size_t mask = nslots - 1, i = (size_t)e->hash & mask;

	while (slots[i].from != NULL)
		i = (i + 1) & mask;
	slots[i] = *e;
}

/* Room for two more entries (a pair and its marker) at most half full. */
static int reserve(struct pairset *ps)
{
	size_t n = ps->nslots ? ps->nslots : 8;
	struct entry *slots;

	while (2 * (ps->used + 2) > n)
		n *= 2;
	if (n == ps->nslots)
		return 0;
	slots = calloc(n, sizeof(*slots));
	if (slots == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < ps->nslots; i++)
		if (ps->slots[i].from != NULL)
			place(slots, n, &ps->slots[i]);
	free(ps->slots);
	ps->slots = slots;
	ps->nslots = n;
	return 0;
}

static int insert(struct pairset *ps, uint64_t hash, const char *from, const char *to, int value)
{
	size_t lf = strlen(from) + 1, lt = to != NULL ? strlen(to) + 1 : 0;
	struct entry e = {hash, malloc(lf + lt), NULL, value};

	if (e.from == NULL)
		return -ENOMEM;
	memcpy(e.from, from, lf);
	if (to != NULL) {
		e.to = e.from + lf;
		memcpy(e.to, to, lt);
	}
	place(ps->slots, ps->nslots, &e);
	ps->used++;
	return 0;
}

int pairset_add(struct pairset *ps, const char *from, const char *to, int value)
{
	uint64_t h = pairset_hash(from, to), mh = marker_hash(from);

	if (lookup(ps, h, from, to) != NULL)
		return 0;
	if (ps->pairs >= ps->max)
		return -ENOSPC;
	if (reserve(ps) < 0 || insert(ps, h, from, to, value) < 0)
		return -ENOMEM;
	ps->pairs++;
	/* Without its marker (no memory) the pair is held but has_from says
	 * no: authz then refuses the sender (fails closed). */
	if (lookup(ps, mh, from, NULL) == NULL && insert(ps, mh, from, NULL, 0) < 0)
		return -ENOMEM;
	return 0;
}

int *pairset_find(struct pairset *ps, const char *from, const char *to)
{
	struct entry *e = lookup(ps, pairset_hash(from, to), from, to);

	return e != NULL ? &e->value : NULL;
}

int pairset_has_from(const struct pairset *ps, const char *from)
{
	return lookup(ps, marker_hash(from), from, NULL) != NULL;
}

size_t pairset_count(const struct pairset *ps)
{
	return ps->pairs;
}
