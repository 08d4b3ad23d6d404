/* bounce: the error stanza sent back to the sender of a stanza that cannot
 * be delivered (RFC 6120 section 8.3). Never bounces an error, nor an IQ
 * result or error. No content of the original stanza is copied except its
 * name, id, and the swapped to/from. */
#ifndef XT_BOUNCE_H
#define XT_BOUNCE_H

#include <stddef.h>

struct bounce_in {
	const char *name;      /* "message", "presence" or "iq" */
	const char *to, *from; /* decoded attribute values */
	const char *type, *id; /* decoded, NULL if absent */
};

/* 1 if an error may be sent for this stanza (not type=error, not an iq of
 * type result or error, name is message/presence/iq, to and from present). */
int bounce_allowed(const struct bounce_in *in);

/* Writes into out (NUL-terminated):
 * <NAME xmlns='jabber:server' from='ORIG_TO' to='ORIG_FROM' type='error' id='ID'>
 *   <error type='ERRTYPE'><CONDITION xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
 *   <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>TEXT</text></error></NAME>
 * (one line, no whitespace between elements, attribute values escaped, id
 * omitted if absent, text omitted if NULL). errtype is "cancel", "wait",
 * "modify", "auth". Returns the length, -ENOSPC if outsz is too small,
 * -EPERM if !bounce_allowed(in). */
int bounce_build(const struct bounce_in *in, const char *condition, const char *errtype,
		 const char *text, char *out, size_t outsz);

#endif
