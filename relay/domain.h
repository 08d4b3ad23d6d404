/* domain: normalised XMPP domains (RFC 7622): IDNA A-labels via GnuTLS's
 * IDNA support, lower-case, no trailing dot; and the domainpart of a JID. */
#ifndef XT_DOMAIN_H
#define XT_DOMAIN_H

#include <stddef.h>

#define DOMAIN_MAX 1023 /* octets, RFC 7622 */

/* Normalise in[0..len) into out (NUL-terminated). Returns the length, or
 * -EINVAL (empty, empty label, label > 63, bad character, IDNA failure) or
 * -ENAMETOOLONG (> DOMAIN_MAX or > outsz-1). */
int domain_normalise(const char *in, size_t len, char *out, size_t outsz);

/* The normalised domainpart of a JID string: drops "local@" and "/resource"
 * (the resource may contain '@' and '/'). Same returns. */
int jid_domain(const char *jid, char *out, size_t outsz);
/* The domainpart of a JID as written, not normalised: *dom points into jid,
 * *len bytes. 0, or -EINVAL for a JID jid_domain refuses before it looks
 * at the domain (NULL, empty localpart, empty resourcepart). */
int jid_domain_part(const char *jid, const char **dom, size_t *len);

#endif
