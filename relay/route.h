/* route: the peering-control table. Patterns: "a.example" (exact),
 * "*.us" (the domain us and every subdomain), "*" (default). Longest match
 * wins: exact, then the longest wildcard suffix, then default. Lookup cost
 * does not grow with the number of routes (one hash probe per label). */
#ifndef XT_ROUTE_H
#define XT_ROUTE_H

#include <stddef.h>

struct route {
	char *pattern; /* owned, normalised: "a.example", "*.us" or "*" */
	int peer;      /* index into the config's peer array */
	int line;      /* config line, for messages */
};

struct route_table;

struct route_table *route_table_new(void);
/* Accepts NULL. */
void route_table_free(struct route_table *rt);

/* Adds a route; the pattern is normalised (case, trailing dot, IDNA).
 * Returns 0, -EINVAL (bad pattern), -EEXIST (same normalised pattern),
 * -ENOMEM. On -EEXIST, *prev_line (if not NULL) gets the earlier line. */
int route_add(struct route_table *rt, const char *pattern, int peer, int line, int *prev_line);

/* domain must already be normalised (domain_normalise). NULL if no route. */
const struct route *route_lookup(const struct route_table *rt, const char *domain);

size_t route_count(const struct route_table *rt);

/* Iteration over every route, the default last; the order is otherwise
 * unspecified (sort if it matters). Start with *pos = 0; returns the next
 * route and advances *pos, or NULL when there is none left. The table must
 * not change during the walk. */
const struct route *route_next(const struct route_table *rt, size_t *pos);

#endif
