/* audit: the record of policy decisions, one JSON object per line (json-c):
 * time, inbound and outbound peer, route, from, to, stanza kind, type, id,
 * decision, policy, rule, reason, condition, label. Never a body or any
 * other content of the stanza. To a file (appended, one write per line,
 * reopened on SIGHUP for log rotation) or to syslog (facility authpriv). */
#ifndef XT_AUDIT_H
#define XT_AUDIT_H

#include <stddef.h>
#include <time.h>

struct audit_rec {
	const char *decision; /* "reject", "pass", "drop" (an error is never bounced) */
	const char *in_peer, *out_peer, *route; /* NULL written as null */
	const char *from, *to;			/* the stanza's addresses as decoded */
	const char *kind, *type, *id;
	const char *policy, *rule, *reason, *condition, *label;
};

/* The line for r at time now (with '\n'). Returns its length or -ENOSPC,
 * -ENOMEM. */
int audit_format(const struct audit_rec *r, const struct timespec *now, char *out, size_t outsz);

/* Where records go from now on: file (absolute path) or syslog, or
 * neither (NULL, 0: records are not written). Keeps the open file when the
 * path did not change. 0 or -errno (the previous sink is kept). */
int audit_configure(const char *file, int use_syslog);
/* SIGHUP: close and reopen the file (after rotation). 0 or -errno. */
int audit_reopen(void);
/* Write one record now; failures are logged, once per burst. */
void audit_write(const struct audit_rec *r);
/* Whether a sink is configured. */
int audit_enabled(void);
void audit_close(void);

#endif
