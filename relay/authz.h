/* authz: what an inbound stream may carry (sans-I/O). The set of domain
 * pairs authenticated on one stream, and the address checks on the stream
 * header and on each stanza, with the RFC 6120 stream error each failure
 * earns. */
#ifndef XT_AUTHZ_H
#define XT_AUTHZ_H

#include <stddef.h>

struct authz;
struct route_table;

/* max_pairs bounds the memory one peer can make us hold. */
struct authz *authz_new(size_t max_pairs);
/* Accepts NULL. */
void authz_free(struct authz *a);
/* from/to must be normalised. 0, or -ENOSPC when full, -ENOMEM. Adding a
 * pair twice is not an error. */
int authz_add(struct authz *a, const char *from, const char *to);
/* 1 if (from, to) was authenticated; to == NULL asks for any pair from. */
int authz_has(const struct authz *a, const char *from, const char *to);
size_t authz_count(const struct authz *a);

/* Stream header: 'to' must name a routed domain and version must be 1.x.
 * On success returns NULL and writes the normalised 'to' into local
 * (DOMAIN_MAX + 1 bytes); else the stream error condition. */
const char *authz_header(const struct route_table *rt, const char *to, const char *version,
			 char *local);

/* Stanza addresses (decoded attribute values, may be NULL). On success
 * returns NULL and writes both normalised domains (DOMAIN_MAX + 1 bytes
 * each); else improper-addressing (missing or malformed address),
 * invalid-from (sender domain not authenticated on this stream) or
 * host-unknown (sender not authenticated toward that target). */
const char *authz_stanza(struct authz *a, const char *from, const char *to, char *from_dom,
			 char *to_dom);

#endif
