/* pairset: a bounded set of (from, to) domain pairs, each carrying an int
 * (sans-I/O). What a stream has authenticated (authz) or asked its trunk
 * peer for (s2s) is looked up once or twice per stanza, and a trunk link
 * may carry a thousand pairs: a hash, not a list. */
#ifndef XT_PAIRSET_H
#define XT_PAIRSET_H

#include <stddef.h>
#include <stdint.h>

struct pairset;

/* max_pairs bounds the memory one peer can make us hold. NULL: no memory. */
struct pairset *pairset_new(size_t max_pairs);
/* Accepts NULL. */
void pairset_free(struct pairset *ps);

/* Adds (from, to) with value; a pair already there keeps its value.
 * 0, or -ENOSPC when max_pairs are held, -ENOMEM. The strings are copied. */
int pairset_add(struct pairset *ps, const char *from, const char *to, int value);
/* The value of (from, to), or NULL. The pointer is the caller's to read
 * and write until the next pairset_add or pairset_free. */
int *pairset_find(struct pairset *ps, const char *from, const char *to);
/* 1 if some pair (from, *) is held. */
int pairset_has_from(const struct pairset *ps, const char *from);
size_t pairset_count(const struct pairset *ps);

/* The hash the set uses (FNV-1a over from, a separator, to), for callers
 * that key their own tables by a domain pair. */
uint64_t pairset_hash(const char *from, const char *to);

#endif
