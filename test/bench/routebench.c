/* routebench: the cost of one route lookup (relay/route) at 10, 10^3,
 * 10^5 and 10^6 routes, and the time to build each table. Prints one
 * key=value line per size. Domains looked up are a mix of exact hits,
 * wildcard hits several labels below the pattern, and misses that fall
 * to the default route, drawn in an order fixed by a seed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route.h"

#define LOOKUPS 2000000
#define NDOMAINS 4096

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = {10, 1000, 100000, 1000000};
	static char doms[NDOMAINS][96];
	size_t only = argc > 1 ? (size_t)atol(argv[1]) : 0;

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k], hits = 0;
		struct route_table *rt;
		char pat[96];
		double t0, t1, t2, t3;
		volatile uintptr_t sink = 0;

		if (only != 0 && only != n)
			continue;
		rt = route_table_new();
		if (rt == NULL)
			return 1;
		t0 = now_s();
		/* half exact domains, half wildcards, and a default */
		for (size_t i = 0; i < n; i++) {
			if (i % 2 == 0)
				snprintf(pat, sizeof(pat), "host%zu.enclave%zu.example", i, i % 97);
			else
				snprintf(pat, sizeof(pat), "*.zone%zu.enclave%zu.example", i,
					 i % 89);
			if (route_add(rt, pat, (int)(i % 16), (int)i + 1, NULL) != 0) {
				fprintf(stderr, "routebench: route_add %s failed\n", pat);
				return 1;
			}
		}
		route_add(rt, "*", 0, 0, NULL);
		t1 = now_s();
		t2 = t1;
		for (size_t d = 0; d < NDOMAINS; d++) {
			size_t i = (size_t)(next_rand() % n);

			switch (d % 3) {
			case 0: /* exact (or, on an odd index, the wildcard's own domain) */
				if (i % 2 == 0)
					snprintf(doms[d], sizeof(doms[d]),
						 "host%zu.enclave%zu.example", i, i % 97);
				else
					snprintf(doms[d], sizeof(doms[d]),
						 "zone%zu.enclave%zu.example", i, i % 89);
				break;
			case 1: /* below a wildcard */
				i |= 1;
				if (i >= n)
					i = 1;
				snprintf(doms[d], sizeof(doms[d]),
					 "muc.chat.zone%zu.enclave%zu.example", i, i % 89);
				break;
			default: /* nothing but the default route */
				snprintf(doms[d], sizeof(doms[d]), "nowhere%zu.other.test",
					 (size_t)next_rand() % 1000000);
			}
		}
		t2 = now_s();
		for (size_t j = 0; j < LOOKUPS; j++) {
			const struct route *r = route_lookup(rt, doms[j % NDOMAINS]);

			sink += (uintptr_t)r;
			hits += r != NULL && r->pattern[0] != '*' ? 1 : 0;
		}
		t3 = now_s();
		printf("routes=%zu build_s=%.3f lookup_ns=%.1f exact_hits=%zu lookups=%d\n", n,
		       t1 - t0, (t3 - t2) * 1e9 / LOOKUPS, hits, LOOKUPS);
		(void)sink;
		route_table_free(rt);
	}
	return 0;
}
