/* audit: formats decisions as JSON with json-c and appends them to the
 * audit file or sends them to syslog. The sink is process state, like the
 * log: configured from each config snapshot (audit_configure), reopened
 * on SIGHUP whether or not the new configuration loads, so rotation works
 * even while a broken config is being fixed. One write(2) per line on an
 * O_APPEND descriptor keeps lines whole when several writers share a file. */
#include "audit.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <json-c/json.h>

static struct {
	char *path; /* owned or NULL */
	int fd;	    /* -1 when closed */
	int use_syslog;
	int failing; /* the last write failed: log only the first */
} a = {NULL, -1, 0, 0};

static int add(struct json_object *o, const char *key, const char *v)
{
	struct json_object *s = v ? json_object_new_string(v) : NULL;

	if (v && !s)
		return -ENOMEM;
	/* json_object_object_add takes the reference, also on failure */
	return json_object_object_add(o, key, s) == 0 ? 0 : -ENOMEM;
}

int audit_format(const struct audit_rec *r, const struct timespec *now, char *out, size_t outsz)
{
	struct json_object *o = json_object_new_object();
	char ts[40];
	struct tm tm;
	const char *s;
	size_t n;
	int rc = 0;

	if (o == NULL)
		return -ENOMEM;
	gmtime_r(&now->tv_sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now->tv_nsec / 1000000);
	if (add(o, "time", ts) < 0 || add(o, "decision", r->decision) < 0 ||
	    add(o, "in_peer", r->in_peer) < 0 || add(o, "out_peer", r->out_peer) < 0 ||
	    add(o, "route", r->route) < 0 || add(o, "from", r->from) < 0 ||
	    add(o, "to", r->to) < 0 || add(o, "kind", r->kind) < 0 || add(o, "type", r->type) < 0 ||
	    add(o, "id", r->id) < 0 || add(o, "policy", r->policy) < 0 ||
	    add(o, "rule", r->rule) < 0 || add(o, "reason", r->reason) < 0 ||
	    add(o, "condition", r->condition) < 0 || add(o, "label", r->label) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	/* plain: one line, no pretty printing; '/' need not be escaped */
	s = json_object_to_json_string_ext(o,
					   JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	n = strlen(s);
	if (n + 2 > outsz) {
		rc = -ENOSPC;
		goto out;
	}
	memcpy(out, s, n);
	out[n] = '\n';
	out[n + 1] = '\0';
	rc = (int)n + 1;
out:
	json_object_put(o);
	return rc;
}

static int open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	return fd < 0 ? -errno : fd;
}

int audit_configure(const char *file, int use_syslog)
{
	int fd;
	char *p;

	if (file == NULL) {
		audit_close();
		a.use_syslog = use_syslog;
		return 0;
	}
	if (a.path != NULL && strcmp(a.path, file) == 0 && a.fd >= 0) {
		a.use_syslog = 0;
		return 0;
	}
	fd = open_file(file);
	if (fd < 0) {
		log_err("event=audit-open-failed file=%s error=\"%s\"", file, strerror(-fd));
		return fd;
	}
	p = strdup(file);
	if (p == NULL) {
		close(fd);
		return -ENOMEM;
	}
	audit_close();
	a.path = p;
	a.fd = fd;
	a.use_syslog = 0;
	return 0;
}

int audit_reopen(void)
{
	int fd;

	if (a.path == NULL)
		return 0;
	fd = open_file(a.path);
	if (fd < 0) {
		log_err("event=audit-reopen-failed file=%s error=\"%s\" keeping=old-file", a.path,
			strerror(-fd));
		return fd;
	}
	if (a.fd >= 0)
		close(a.fd);
	a.fd = fd;
	a.failing = 0;
	return 0;
}

int audit_enabled(void)
{
	return a.fd >= 0 || a.use_syslog;
}

void audit_write(const struct audit_rec *r)
{
	char line[8192];
	struct timespec now;
	int n;

	if (!audit_enabled())
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	n = audit_format(r, &now, line, sizeof(line));
	if (n < 0) {
		log_err("event=audit-format-failed rule=%s error=\"%s\"", r->rule ? r->rule : "-",
			strerror(-n));
		return;
	}
	if (a.use_syslog) {
		line[n - 1] = '\0';
		syslog(LOG_AUTHPRIV | LOG_NOTICE, "%s", line);
		return;
	}
	if (write(a.fd, line, (size_t)n) != n) {
		if (!a.failing)
			log_err("event=audit-write-failed file=%s error=\"%s\"", a.path,
				strerror(errno));
		a.failing = 1;
		return;
	}
	a.failing = 0;
}

void audit_close(void)
{
	if (a.fd >= 0)
		close(a.fd);
	a.fd = -1;
	free(a.path);
	a.path = NULL;
	a.use_syslog = 0;
	a.failing = 0;
}
