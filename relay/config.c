/* config: loads the libconfig file into an immutable, validated, refcounted
 * snapshot (struct config).
 *
 * Loading runs in three passes so that every message can name a line:
 *   1. libconfig parses the file (syntax errors come back with its line).
 *   2. walk_group() visits every setting and checks it against config_keys[]:
 *      unknown keys (with a "did you mean" suggestion), wrong types and
 *      integer ranges. After this pass every setting present is known and
 *      has the right type, so the extraction code below never re-checks
 *      types.
 *   3. The load_*() functions copy values into struct config, apply
 *      defaults, and check what the table cannot express: required keys,
 *      enum values, files, duplicates, references from routes to peers.
 * The message is "FILE:LINE: problem; fix". Pass 2 reports every unknown
 * key and wrong type in the file, one line each (xtrunkd -n and xtrunkctl
 * check list them all); pass 3 stops at its first error. */
#include "config.h"

#include "domain.h"
#include "identity.h"
#include "log.h"
#include "policy.h"
#include "policy_config.h"
#include "route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_MIN 16
#define SECRET_FILE_MAX 4096 /* bytes read from dialback_secret_file */
#define PATH_KEY_MAX 128     /* longest key path we build while walking */

/* dflt: "required" (bare word) means the key is mandatory; string defaults
 * are written with their quotes, as in the file, so the default value
 * "required" of tls.inbound is not mistaken for a mandatory key. */
const struct config_key config_keys[] = {
    {"listen", "list", "required", "no"},
    {"listen.[].address", "string", "required", "no"},
    {"listen.[].port", "int", "5269", "no"},
    {"listen.[].direct_tls", "bool", "false", "no"},
    {"dialback_secret", "string", "none", "yes"},
    {"dialback_secret_file", "string", "none", "yes"},
    {"relay_name", "string", "none", "yes"},
    {"tls", "group", "required", "yes"},
    {"tls.certificate", "string", "required", "yes"},
    {"tls.key", "string", "required", "yes"},
    {"tls.inbound", "string", "\"required\"", "yes"},
    {"tls.store", "string", "none", "yes"},
    {"tls.ca_certificate", "string", "none", "yes"},
    {"tls.ca_key", "string", "none", "yes"},
    {"tls.issue_lifetime", "int", "86400", "yes"},
    {"tls.trust", "string", "none", "yes"},
    {"tls.priority", "string", "see below", "yes"},
    {"limits", "group", "{}", "yes"},
    {"limits.connect_timeout", "int", "10", "yes"},
    {"limits.handshake_timeout", "int", "30", "yes"},
    {"limits.idle_timeout", "int", "600", "yes"},
    {"limits.queue_max_stanzas", "int", "1000", "yes"},
    {"limits.queue_max_bytes", "int", "4194304", "yes"},
    {"limits.max_stanza_size", "int", "262144", "yes"},
    {"limits.connections_per_address", "int", "100", "yes"},
    {"limits.max_depth", "int", "64", "yes"},
    {"limits.max_attributes", "int", "64", "yes"},
    {"limits.max_name_length", "int", "256", "yes"},
    {"limits.max_attribute_length", "int", "8192", "yes"},
    {"limits.backpressure_timeout", "int", "5", "yes"},
    {"limits.keepalive", "int", "60", "yes"},
    {"limits.failback", "int", "30", "yes"},
    {"limits.max_hops", "int", "8", "yes"},
    {"peers", "list", "()", "yes"},
    {"peers.[].name", "string", "required", "yes"},
    {"peers.[].host", "string", "required", "yes"},
    {"peers.[].port", "int", "5269", "yes"},
    {"peers.[].addresses", "list", "none", "yes"},
    {"peers.[].addresses.[].host", "string", "required", "yes"},
    {"peers.[].addresses.[].port", "int", "5269", "yes"},
    {"peers.[].addresses.[].priority", "int", "0", "yes"},
    {"peers.[].trunk", "bool", "false", "yes"},
    {"peers.[].authorize", "strings", "the routes", "yes"},
    {"peers.[].tls", "string", "\"required\"", "yes"},
    {"peers.[].ca_file", "string", "none", "yes"},
    {"peers.[].identity", "string", "none", "yes"},
    {"peers.[].auth", "string", "\"any\"", "yes"},
    {"peers.[].pins", "strings", "none", "yes"},
    {"peers.[].allow_cn", "bool", "false", "yes"},
    {"peers.[].direct_tls", "bool", "false", "yes"},
    {"peers.[].policy_in", "string", "none", "yes"},
    {"peers.[].policy_out", "string", "none", "yes"},
    {"peers.[].clearance", "string", "none", "yes"},
    {"peers.[].default_label", "string", "none", "yes"},
    {"workers", "int", "1", "no"},
    {"log", "group", "{}", "yes"},
    {"log.level", "string", "\"info\"", "yes"},
    {"log.traces", "strings", "[]", "yes"},
    {"control", "group", "{}", "no"},
    {"control.socket", "string", "\"/run/xtrunk/control.sock\"", "no"},
    {"metrics", "group", "none", "no"},
    {"metrics.address", "string", "\"127.0.0.1\"", "no"},
    {"metrics.port", "int", "9269", "no"},
    {"metrics.public", "bool", "false", "no"},
    {"routes", "list", "()", "yes"},
    {"routes.[].domain", "string", "required", "yes"},
    {"routes.[].peer", "string", "required", "yes"},
    {"routes.[].policy", "string", "none", "yes"},
    {"routes.[].default_label", "string", "none", "yes"},
    {"routes_file", "string", "none", "yes"},
    /* policy/: security labels, policies, audit (policy/policy_config.c) */
    {"security_labels", "group", "{}", "yes"},
    {"security_labels.policies", "list", "()", "yes"},
    {"security_labels.policies.[].name", "string", "required", "yes"},
    {"security_labels.policies.[].oid", "string", "required", "yes"},
    {"security_labels.policies.[].classifications", "list", "required", "yes"},
    {"security_labels.policies.[].classifications.[].name", "string", "required", "yes"},
    {"security_labels.policies.[].classifications.[].value", "int", "required", "yes"},
    {"security_labels.policies.[].classifications.[].marking", "string", "the name", "yes"},
    {"security_labels.policies.[].classifications.[].fgcolor", "string", "\"black\"", "yes"},
    {"security_labels.policies.[].classifications.[].bgcolor", "string", "\"white\"", "yes"},
    {"security_labels.policies.[].categories", "list", "()", "yes"},
    {"security_labels.policies.[].categories.[].name", "string", "required", "yes"},
    {"security_labels.policies.[].categories.[].type", "string", "required", "yes"},
    {"security_labels.policies.[].categories.[].value", "string", "the name", "yes"},
    {"security_labels.equivalences", "list", "()", "yes"},
    {"security_labels.equivalences.[].a", "string", "required", "yes"},
    {"security_labels.equivalences.[].b", "string", "required", "yes"},
    {"policies", "list", "()", "yes"},
    {"policies.[].name", "string", "required", "yes"},
    {"policies.[].default", "string", "\"reject\"", "yes"},
    {"policies.[].rules", "list", "()", "yes"},
    {"policies.[].rules.[].name", "string", "required", "yes"},
    {"policies.[].rules.[].action", "string", "required", "yes"},
    {"policies.[].rules.[].from", "strings", "any", "yes"},
    {"policies.[].rules.[].to", "strings", "any", "yes"},
    {"policies.[].rules.[].kinds", "strings", "any", "yes"},
    {"policies.[].rules.[].types", "strings", "any", "yes"},
    {"policies.[].rules.[].namespaces", "strings", "any", "yes"},
    {"policies.[].rules.[].larger_than", "int", "any", "yes"},
    {"policies.[].rules.[].auth", "string", "any", "yes"},
    {"policies.[].rules.[].tls", "bool", "any", "yes"},
    {"policies.[].rules.[].label", "string", "\"any\"", "yes"},
    {"policies.[].rules.[].error", "string", "\"cancel\"", "yes"},
    {"policies.[].rules.[].rate", "int", "required", "yes"},
    {"policies.[].rules.[].burst", "int", "the rate", "yes"},
    {"policies.[].rules.[].per", "string", "\"route\"", "yes"},
    {"policies.[].rules.[].exceeded", "string", "\"resource-constraint\"", "yes"},
    {"audit", "group", "{}", "yes"},
    {"audit.file", "string", "none", "yes"},
    {"audit.syslog", "bool", "false", "yes"},
    {"audit.passes", "bool", "false", "yes"},
    {NULL, NULL, NULL, NULL},
};

/* Ranges of the integer keys; walk_group() checks type and range together
 * so the message is the same for port = "x" and port = 70000. The man page
 * repeats these ranges. */
static const struct int_range {
	const char *path;
	long long min, max;
} int_ranges[] = {
    {"listen.[].port", 1, 65535},
    {"peers.[].port", 1, 65535},
    {"tls.issue_lifetime", 300, 31536000},
    {"limits.connect_timeout", 1, 3600},
    {"limits.handshake_timeout", 1, 3600},
    {"limits.idle_timeout", 1, 604800},
    {"limits.queue_max_stanzas", 1, 1000000},
    {"limits.queue_max_bytes", 10000, 1LL << 30},
    /* RFC 6120 13.12: a server must accept stanzas of at least 10000 bytes. */
    {"limits.max_stanza_size", 10000, 1LL << 26},
    {"limits.connections_per_address", 1, 1000000},
    {"limits.max_depth", 4, 255},
    {"limits.max_attributes", 8, 1024},
    /* the stream header's own names and namespaces must pass */
    {"limits.max_name_length", 16, 65536},
    {"limits.max_attribute_length", 64, 1LL << 24},
    {"limits.backpressure_timeout", 0, 600},
    {"limits.keepalive", 0, 3600},
    {"limits.failback", 1, 86400},
    {"limits.max_hops", 1, 64},
    {"peers.[].addresses.[].port", 1, 65535},
    {"peers.[].addresses.[].priority", 0, 65535},
    {"metrics.port", 1, 65535},
    {"workers", 1, 64},
    {"security_labels.policies.[].classifications.[].value", 0, 256},
    {"policies.[].rules.[].larger_than", 1, 1LL << 26},
    {"policies.[].rules.[].rate", 1, 1000000},
    {"policies.[].rules.[].burst", 1, 1000000},
    {NULL, 0, 0},
};

struct loader {
	const char *path; /* borrowed: the file name as given */
	char *err;	  /* borrowed: caller's buffer */
	size_t errlen;
	config_t cf;
	struct config *c;		    /* owned until handed to the caller */
	const struct cfg_peer **peer_order; /* owned array, borrowed peers sorted by name */
};

static void fail_line(struct loader *ld, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_line(struct loader *ld, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	size_t used;

	if (!ld->err || ld->errlen == 0)
		return;
	/* a later problem goes on its own line after the earlier ones */
	used = strlen(ld->err);
	if (used > 0 && used + 1 < ld->errlen)
		ld->err[used++] = '\n', ld->err[used] = '\0';
	else if (used > 0)
		return;
	n = snprintf(ld->err + used, ld->errlen - used, "%s:%d: ", file ? file : ld->path, line);
	if (n < 0 || (size_t)n >= ld->errlen - used)
		return;
	used += (size_t)n;
	va_start(ap, fmt);
	vsnprintf(ld->err + used, ld->errlen - used, fmt, ap);
	va_end(ap);
}

static int line_of(const config_setting_t *s)
{
	int line = s ? (int)config_setting_source_line(s) : 0;

	/* The root group has no line of its own; a key missing at the top level
	 * is reported against the start of the file. */
	return line > 0 ? line : 1;
}

static const char *file_of(const struct loader *ld, const config_setting_t *s)
{
	const char *f = s ? config_setting_source_file(s) : NULL;

	return f ? f : ld->path;
}

#define fail_at(ld, s, ...) fail_line((ld), file_of((ld), (s)), line_of(s), __VA_ARGS__)

/* ---- pass 2: the key table walk ---- */

static const struct config_key *key_find(const char *path)
{
	/* 10^6 routes ask for the same few paths 10^6 times each: remember
	 * the last key found per hash slot instead of walking the table */
	static const struct config_key *memo[64];
	unsigned h = 0;

	for (const char *p = path; *p; p++)
		h = h * 31 + (unsigned char)*p;
	if (memo[h % 64] != NULL && strcmp(memo[h % 64]->path, path) == 0)
		return memo[h % 64];
	for (const struct config_key *k = config_keys; k->path; k++)
		if (strcmp(k->path, path) == 0)
			return memo[h % 64] = k;
	return NULL;
}

static const struct int_range *range_find(const char *path)
{
	for (const struct int_range *r = int_ranges; r->path; r++)
		if (strcmp(r->path, path) == 0)
			return r;
	return NULL;
}

/* The last component of a key path, and whether the key sits directly
 * under parent ("" for the top level). */
static const char *key_leaf(const char *path)
{
	const char *dot = strrchr(path, '.');

	return dot ? dot + 1 : path;
}

static int key_under(const char *path, const char *parent)
{
	size_t n = strlen(parent);

	if (n == 0)
		return strchr(path, '.') == NULL;
	return strncmp(path, parent, n) == 0 && path[n] == '.' && !strchr(path + n + 1, '.');
}

/* Levenshtein distance, capped: names longer than 63 are never suggested. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64];

	if (la > 63 || lb > 63)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static void fail_unknown(struct loader *ld, const config_setting_t *s, const char *parent)
{
	const char *name = config_setting_name(s);
	const struct config_key *best = NULL;
	size_t best_d = SIZE_MAX, len = strlen(name);
	char allowed[256] = "";
	size_t used = 0;

	for (const struct config_key *k = config_keys; k->path; k++) {
		size_t d;

		if (!key_under(k->path, parent))
			continue;
		d = edit_distance(name, key_leaf(k->path));
		if (d < best_d) {
			best_d = d;
			best = k;
		}
		int n = snprintf(allowed + used, sizeof(allowed) - used, "%s%s", used ? ", " : "",
				 key_leaf(k->path));
		if (n > 0 && (size_t)n < sizeof(allowed) - used)
			used += (size_t)n;
	}
	if (best && best_d <= 2 && best_d < len) {
		fail_at(ld, s, "unknown key \"%s\"; did you mean \"%s\"?", name,
			key_leaf(best->path));
		return;
	}
	/* The other classic: the right key in the wrong group. */
	for (const struct config_key *k = config_keys; k->path; k++) {
		if (strcmp(key_leaf(k->path), name) == 0 && strcmp(k->type, "list") != 0 &&
		    strcmp(k->type, "group") != 0) {
			fail_at(ld, s, "unknown key \"%s\" here; did you mean \"%s\"?", name,
				k->path);
			return;
		}
	}
	fail_at(ld, s, "unknown key \"%s\"; remove it (keys allowed here: %s)", name, allowed);
}

static int check_type(struct loader *ld, const config_setting_t *s, const struct config_key *k,
		      const char *path)
{
	const char *name = config_setting_name(s);
	int t = config_setting_type(s);

	if (strcmp(k->type, "int") == 0) {
		const struct int_range *r = range_find(path);
		long long v;

		if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
			goto bad_int;
		v = config_setting_get_int64(s);
		if (r && (v < r->min || v > r->max))
			goto bad_int;
		return 0;
	bad_int:
		if (r)
			fail_at(ld, s,
				"%s must be an integer between %lld and %lld; write e.g. %s = %s;",
				name, r->min, r->max, name, k->dflt);
		else
			fail_at(ld, s, "%s must be an integer; write it without quotes", name);
		return -EINVAL;
	}
	if (strcmp(k->type, "string") == 0 && t != CONFIG_TYPE_STRING) {
		fail_at(ld, s, "%s must be a string; write %s = \"...\";", name, name);
		return -EINVAL;
	}
	if (strcmp(k->type, "bool") == 0 && t != CONFIG_TYPE_BOOL) {
		fail_at(ld, s, "%s must be true or false; write %s = true;", name, name);
		return -EINVAL;
	}
	if (strcmp(k->type, "strings") == 0) {
		int n = config_setting_length(s);

		if (t != CONFIG_TYPE_ARRAY) {
			fail_at(ld, s, "%s must be an array of strings; write %s = [ \"...\" ];",
				name, name);
			return -EINVAL;
		}
		for (int i = 0; i < n; i++)
			if (config_setting_type(config_setting_get_elem(s, (unsigned)i)) !=
			    CONFIG_TYPE_STRING) {
				fail_at(ld, s, "%s must hold strings only; quote each entry", name);
				return -EINVAL;
			}
	}
	if (strcmp(k->type, "group") == 0 && t != CONFIG_TYPE_GROUP) {
		fail_at(ld, s, "%s must be a group; write %s = { ... };", name, name);
		return -EINVAL;
	}
	if (strcmp(k->type, "list") == 0 && t != CONFIG_TYPE_LIST) {
		fail_at(ld, s, "%s must be a list of groups; write %s = ( { ... }, { ... } );",
			name, name);
		return -EINVAL;
	}
	return 0;
}

/* Checks every child of group g, whose key path is parent ("" at the top),
 * and goes on after a problem so that all of them are reported. */
static int walk_group(struct loader *ld, const config_setting_t *g, const char *parent)
{
	int n = config_setting_length(g), bad = 0;

	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct config_key *k;
		char path[PATH_KEY_MAX];
		int len;

		len = snprintf(path, sizeof(path), "%s%s%s", parent, *parent ? "." : "", name);
		k = (len > 0 && (size_t)len < sizeof(path)) ? key_find(path) : NULL;
		if (!k) {
			fail_unknown(ld, s, parent);
			bad = 1;
			continue;
		}
		if (check_type(ld, s, k, path) < 0) {
			bad = 1;
			continue;
		}
		if (strcmp(k->type, "group") == 0 && walk_group(ld, s, path) < 0)
			bad = 1;
		if (strcmp(k->type, "list") == 0) {
			char elem[PATH_KEY_MAX + 4];
			int m = config_setting_length(s);

			snprintf(elem, sizeof(elem), "%s.[]", path);
			for (int j = 0; j < m; j++) {
				config_setting_t *e = config_setting_get_elem(s, (unsigned)j);

				if (!config_setting_is_group(e)) {
					fail_at(ld, e,
						"each entry of %s must be a group; write %s = ( { "
						"... } );",
						name, name);
					bad = 1;
					continue;
				}
				if (walk_group(ld, e, elem) < 0)
					bad = 1;
			}
		}
	}
	return bad ? -EINVAL : 0;
}

/* ---- pass 3: extraction ---- */

/* Types are already checked, so a present key has the right type. */
static const char *get_str(const config_setting_t *g, const char *name)
{
	const char *v = NULL;

	if (g)
		config_setting_lookup_string(g, name, &v);
	return v;
}

static long long get_int(const config_setting_t *g, const char *name, long long dflt)
{
	config_setting_t *s = g ? config_setting_get_member(g, name) : NULL;

	return s ? config_setting_get_int64(s) : dflt;
}

static int dup_str(const char *v, char **out)
{
	if (!v) {
		*out = NULL;
		return 0;
	}
	*out = strdup(v);
	return *out ? 0 : -ENOMEM;
}

static int parse_tls(struct loader *ld, const config_setting_t *g, const char *name,
		     enum cfg_tls *out)
{
	config_setting_t *s = config_setting_get_member(g, name);
	const char *v;

	*out = CFG_TLS_REQUIRED;
	if (!s)
		return 0;
	v = config_setting_get_string(s);
	if (strcmp(v, "required") == 0)
		*out = CFG_TLS_REQUIRED;
	else if (strcmp(v, "optional") == 0)
		*out = CFG_TLS_OPTIONAL;
	else if (strcmp(v, "none") == 0)
		*out = CFG_TLS_NONE;
	else {
		fail_at(ld, s,
			"%s = \"%s\" is not a TLS mode; use \"required\", \"optional\" or \"none\"",
			name, v);
		return -EINVAL;
	}
	return 0;
}

static int check_readable(struct loader *ld, const config_setting_t *s, const char *what)
{
	const char *file = config_setting_get_string(s);

	if (access(file, R_OK) < 0) {
		int e = errno;

		fail_at(ld, s, "cannot read %s \"%s\": %s; fix the path or the file's permissions",
			what, file, strerror(e));
		return -e;
	}
	return 0;
}

static int load_listen(struct loader *ld, const config_setting_t *root)
{
	config_setting_t *l = config_setting_get_member(root, "listen");
	struct config *c = ld->c;
	int n;

	if (!l) {
		fail_at(
		    ld, root,
		    "missing required key \"listen\"; add listen = ( { address = \"127.0.0.1\"; "
		    "port = 5269; } );");
		return -EINVAL;
	}
	n = config_setting_length(l);
	if (n == 0) {
		fail_at(ld, l,
			"listen is empty; add at least one { address = \"...\"; port = 5269; }");
		return -EINVAL;
	}
	c->listen = calloc((size_t)n, sizeof(*c->listen));
	if (!c->listen)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		struct cfg_listen *li = &c->listen[i];
		const char *addr = get_str(e, "address");
		unsigned char bin[sizeof(struct in6_addr)];
		char canon[INET6_ADDRSTRLEN];
		int af;

		if (!addr) {
			fail_at(ld, e, "listen entry has no address; add address = \"127.0.0.1\";");
			return -EINVAL;
		}
		af = strchr(addr, ':') ? AF_INET6 : AF_INET;
		if (inet_pton(af, addr, bin) != 1 || !inet_ntop(af, bin, canon, sizeof(canon))) {
			fail_at(ld, config_setting_get_member(e, "address"),
				"address \"%s\" is not a numeric IPv4 or IPv6 address; write e.g. "
				"\"127.0.0.1\" or \"::1\" (names are not resolved)",
				addr);
			return -EINVAL;
		}
		li->port = (int)get_int(e, "port", 5269);
		{
			config_setting_t *d = config_setting_get_member(e, "direct_tls");

			li->direct_tls = d != NULL && config_setting_get_bool(d);
		}
		for (size_t j = 0; j < c->nlisten; j++) {
			if (c->listen[j].port == li->port &&
			    strcmp(c->listen[j].address, canon) == 0) {
				fail_at(ld, e,
					"listen address %s port %d is listed twice; remove one",
					canon, li->port);
				return -EINVAL;
			}
		}
		if (dup_str(canon, &li->address) < 0)
			return -ENOMEM;
		c->nlisten++;
	}
	return 0;
}

/* The first line of the file, without its line end. Read with read(2) into
 * a buffer we wipe, so no stdio buffer keeps a copy of the secret. */
static int read_secret_file(struct loader *ld, const config_setting_t *s)
{
	const char *file = config_setting_get_string(s);
	char buf[SECRET_FILE_MAX];
	size_t len = 0;
	struct stat st;
	int fd, e = 0;
	char *nl;

	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		e = errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		e = EINVAL;
		fail_at(ld, s, "dialback_secret_file \"%s\" is not a regular file; fix the path",
			file);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		log_warn("event=config_warning file=%s line=%d key=dialback_secret_file "
			 "problem=\"%s is accessible by group or others\" fix=\"chmod 600 %s\"",
			 file_of(ld, s), line_of(s), file, file);
	while (len < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (memchr(buf, '\n', len))
			break;
	}
	buf[len] = '\0';
	nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	else if (len == sizeof(buf) - 1) {
		e = EINVAL;
		fail_at(ld, s,
			"the first line of dialback_secret_file \"%s\" is too long; keep the "
			"secret under %d bytes",
			file, SECRET_FILE_MAX - 1);
		goto out;
	}
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len < SECRET_MIN) {
		e = EINVAL;
		fail_at(
		    ld, s,
		    "the secret in dialback_secret_file \"%s\" has %zu characters; use at least %d "
		    "(e.g. head -c 32 /dev/urandom | base64 > %s)",
		    file, len, SECRET_MIN, file);
		goto out;
	}
	ld->c->dialback_secret = strdup(buf);
	if (!ld->c->dialback_secret)
		e = ENOMEM;
	goto out;
fail:
	fail_at(ld, s,
		"cannot read dialback_secret_file \"%s\": %s; fix the path or the file's "
		"permissions",
		file, strerror(e));
out:
	explicit_bzero(buf, sizeof(buf));
	if (fd >= 0)
		close(fd);
	return -e;
}

static int load_secret(struct loader *ld, const config_setting_t *root)
{
	config_setting_t *inl = config_setting_get_member(root, "dialback_secret");
	config_setting_t *file = config_setting_get_member(root, "dialback_secret_file");

	if (inl && file) {
		fail_at(ld, line_of(inl) > line_of(file) ? inl : file,
			"dialback_secret and dialback_secret_file are both set; keep only one");
		return -EINVAL;
	}
	if (file)
		return read_secret_file(ld, file);
	if (!inl) {
		fail_at(ld, root,
			"missing required key \"dialback_secret_file\" (or "
			"\"dialback_secret\"); add dialback_secret_file = "
			"\"/etc/xtrunk/dialback.secret\";");
		return -EINVAL;
	}
	const char *v = config_setting_get_string(inl);
	size_t len = strlen(v);

	if (len < SECRET_MIN) {
		fail_at(ld, inl, "dialback_secret has %zu characters; use at least %d", len,
			SECRET_MIN);
		return -EINVAL;
	}
	ld->c->dialback_secret = strdup(v);
	return ld->c->dialback_secret ? 0 : -ENOMEM;
}

static int load_tls(struct loader *ld, const config_setting_t *root)
{
	config_setting_t *tls = config_setting_get_member(root, "tls");
	struct config *c = ld->c;
	static const char *const files[] = {"certificate", "key"};
	int r;

	static const char *const opt[] = {"store", "ca_certificate", "ca_key", "trust"};
	char **const optdst[] = {&c->tls_store, &c->tls_ca_certificate, &c->tls_ca_key,
				 &c->tls_trust};
	int have_other = 0;

	c->tls_inbound = CFG_TLS_REQUIRED;
	if (tls && (r = parse_tls(ld, tls, "inbound", &c->tls_inbound)) < 0)
		return r;
	c->tls_issue_lifetime = (unsigned)get_int(tls, "issue_lifetime", 86400);
	if (dup_str(get_str(tls, "priority"), &c->tls_priority) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < 4; i++) {
		config_setting_t *s = tls ? config_setting_get_member(tls, opt[i]) : NULL;
		char what[32];

		if (!s)
			continue;
		snprintf(what, sizeof(what), "tls.%s", opt[i]);
		if ((r = check_readable(ld, s, what)) < 0)
			return r;
		if (dup_str(config_setting_get_string(s), optdst[i]) < 0)
			return -ENOMEM;
	}
	if (!c->tls_ca_certificate != !c->tls_ca_key) {
		fail_at(ld, tls,
			"tls.ca_certificate and tls.ca_key go together; set both (the enclave CA "
			"made by xtrunkctl ca-create) or neither");
		return -EINVAL;
	}
	/* With a store or an enclave CA, a default certificate is optional. */
	have_other = c->tls_store != NULL || c->tls_ca_certificate != NULL;
	for (size_t i = 0; i < 2; i++) {
		config_setting_t *s = tls ? config_setting_get_member(tls, files[i]) : NULL;
		char **dst = i == 0 ? &c->tls_certificate : &c->tls_key;

		if (c->tls_inbound == CFG_TLS_NONE || (have_other && !s)) {
			/* Not presented to anyone, so neither required nor checked. */
			if (dup_str(s ? config_setting_get_string(s) : NULL, dst) < 0)
				return -ENOMEM;
			continue;
		}
		if (!s) {
			fail_at(ld, tls ? tls : root,
				"missing required key \"tls.%s\"; add tls = { certificate = "
				"\"/etc/xtrunk/relay.pem\"; key = \"/etc/xtrunk/relay.key\"; }; "
				"or set tls.inbound = \"none\"",
				files[i]);
			return -EINVAL;
		}
		if ((r = check_readable(ld, s, i == 0 ? "tls.certificate" : "tls.key")) < 0)
			return r;
		if (dup_str(config_setting_get_string(s), dst) < 0)
			return -ENOMEM;
	}
	return 0;
}

static void load_limits(struct loader *ld, const config_setting_t *root)
{
	config_setting_t *l = config_setting_get_member(root, "limits");
	struct config *c = ld->c;

	/* Ranges are checked by the walk; these casts cannot truncate. */
	c->connect_timeout = (unsigned)get_int(l, "connect_timeout", 10);
	c->handshake_timeout = (unsigned)get_int(l, "handshake_timeout", 30);
	c->idle_timeout = (unsigned)get_int(l, "idle_timeout", 600);
	c->queue_max_stanzas = (size_t)get_int(l, "queue_max_stanzas", 1000);
	c->queue_max_bytes = (size_t)get_int(l, "queue_max_bytes", 4194304);
	c->max_stanza_size = (size_t)get_int(l, "max_stanza_size", 262144);
	c->connections_per_address = (unsigned)get_int(l, "connections_per_address", 100);
	c->max_depth = (unsigned)get_int(l, "max_depth", 64);
	c->max_attributes = (unsigned)get_int(l, "max_attributes", 64);
	c->max_name_length = (unsigned)get_int(l, "max_name_length", 256);
	c->max_attribute_length = (unsigned)get_int(l, "max_attribute_length", 8192);
	c->backpressure_timeout = (unsigned)get_int(l, "backpressure_timeout", 5);
	c->keepalive = (unsigned)get_int(l, "keepalive", 60);
	c->failback = (unsigned)get_int(l, "failback", 30);
	c->max_hops = (unsigned)get_int(l, "max_hops", 8);
}

static int check_limits(struct loader *ld, const config_setting_t *root)
{
	config_setting_t *l = config_setting_get_member(root, "limits");
	struct config *c = ld->c;

	/* A queue that cannot hold one stanza of the allowed size would bounce
	 * every large stanza while a stream is negotiated. */
	if (c->queue_max_bytes < c->max_stanza_size) {
		config_setting_t *s = config_setting_get_member(l, "queue_max_bytes");

		fail_at(ld, s ? s : l,
			"queue_max_bytes (%zu) is smaller than max_stanza_size (%zu); raise "
			"queue_max_bytes or lower max_stanza_size",
			c->queue_max_bytes, c->max_stanza_size);
		return -EINVAL;
	}
	return 0;
}

static int cmp_peer_order(const void *a, const void *b)
{
	const struct cfg_peer *pa = *(const struct cfg_peer *const *)a;
	const struct cfg_peer *pb = *(const struct cfg_peer *const *)b;
	int r = strcmp(pa->name, pb->name);

	return r ? r : (pa->line > pb->line) - (pa->line < pb->line);
}

/* Peer index by name in O(log n), so loading many routes stays linear. */
static int peer_find(const struct loader *ld, const char *name)
{
	size_t lo = 0, hi = ld->c->npeers;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cfg_peer *p = ld->peer_order[mid];
		int r = strcmp(name, p->name);

		if (r == 0)
			return (int)(p - ld->c->peers);
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

static int cmp_addr(const void *a, const void *b)
{
	const struct cfg_addr *x = a, *y = b;

	return (x->priority > y->priority) - (x->priority < y->priority);
}

/* host/port, or addresses = ( { host; port; priority; }, ... ): exactly one
 * of the two forms. Sorted by priority, file order kept among equals. */
static int load_addrs(struct loader *ld, const config_setting_t *e, struct cfg_peer *p)
{
	config_setting_t *l = config_setting_get_member(e, "addresses");
	const char *host = get_str(e, "host");
	int n;

	if (l != NULL && (host != NULL || config_setting_get_member(e, "port") != NULL)) {
		fail_at(ld, l,
			"peer \"%s\" has both host/port and addresses; keep one: addresses = ( { "
			"host = \"...\"; priority = 1; }, ... ) for several",
			p->name);
		return -EINVAL;
	}
	if (l == NULL) {
		if (host == NULL || *host == '\0') {
			fail_at(ld, host ? config_setting_get_member(e, "host") : e,
				"peer has %s host; add host = \"...\"; or addresses = ( ... )",
				host ? "an empty" : "no");
			return -EINVAL;
		}
		p->addrs = calloc(1, sizeof(*p->addrs));
		if (p->addrs == NULL)
			return -ENOMEM;
		p->naddrs = 1;
		if (dup_str(host, &p->addrs[0].host) < 0)
			return -ENOMEM;
		p->addrs[0].port = (int)get_int(e, "port", 5269);
		return 0;
	}
	n = config_setting_length(l);
	if (n == 0) {
		fail_at(ld, l, "peer \"%s\" has an empty addresses list; add { host = \"...\"; }",
			p->name);
		return -EINVAL;
	}
	p->addrs = calloc((size_t)n, sizeof(*p->addrs));
	if (p->addrs == NULL)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *a = config_setting_get_elem(l, (unsigned)i);
		const char *h = get_str(a, "host");

		p->naddrs++;
		if (h == NULL || *h == '\0') {
			fail_at(ld, a, "address %d of peer \"%s\" has no host; add host = \"...\";",
				i + 1, p->name);
			return -EINVAL;
		}
		if (dup_str(h, &p->addrs[i].host) < 0)
			return -ENOMEM;
		p->addrs[i].port = (int)get_int(a, "port", 5269);
		p->addrs[i].priority = (int)get_int(a, "priority", 0);
	}
	/* qsort is not stable: make file order the tie-break */
	for (size_t i = 0; i < p->naddrs; i++)
		p->addrs[i].priority = p->addrs[i].priority * 1024 + (int)i;
	qsort(p->addrs, p->naddrs, sizeof(*p->addrs), cmp_addr);
	for (size_t i = 0; i < p->naddrs; i++)
		p->addrs[i].priority /= 1024;
	return 0;
}

static int load_peer(struct loader *ld, const config_setting_t *e, struct cfg_peer *p)
{
	config_setting_t *s;
	const char *name = get_str(e, "name");
	int r;

	p->line = line_of(e);
	if (!name || !*name) {
		fail_at(ld, name ? config_setting_get_member(e, "name") : e,
			"peer has %s name; add name = \"...\";", name ? "an empty" : "no");
		return -EINVAL;
	}
	if (dup_str(name, &p->name) < 0)
		return -ENOMEM;
	if ((r = load_addrs(ld, e, p)) < 0)
		return r;
	p->host = p->addrs[0].host;
	p->port = p->addrs[0].port;
	if ((s = config_setting_get_member(e, "trunk")))
		p->trunk = config_setting_get_bool(s);
	if ((s = config_setting_get_member(e, "authorize"))) {
		int n = config_setting_length(s);

		p->authorize = route_table_new();
		if (p->authorize == NULL)
			return -ENOMEM;
		for (int i = 0; i < n; i++) {
			const char *v = config_setting_get_string_elem(s, i);

			r = route_add(p->authorize, v, 0, line_of(s), NULL);
			if (r == -ENOMEM)
				return r;
			if (r == -EINVAL) {
				fail_at(ld, s,
					"authorize pattern \"%s\" is not a domain pattern; write "
					"\"a.example\", \"*.a.example\" or \"*\"",
					v);
				return -EINVAL;
			}
		}
	}
	if ((r = parse_tls(ld, e, "tls", &p->tls)) < 0)
		return r;
	if ((s = config_setting_get_member(e, "ca_file"))) {
		if ((r = check_readable(ld, s, "ca_file")) < 0)
			return r;
		if (dup_str(config_setting_get_string(s), &p->ca_file) < 0)
			return -ENOMEM;
	}
	if ((s = config_setting_get_member(e, "auth"))) {
		const char *v = config_setting_get_string(s);

		if (strcmp(v, "any") == 0)
			p->auth = CFG_AUTH_ANY;
		else if (strcmp(v, "certificate") == 0)
			p->auth = CFG_AUTH_CERTIFICATE;
		else {
			fail_at(ld, s,
				"auth = \"%s\" is not known; use \"any\" (certificate or "
				"dialback) or \"certificate\"",
				v);
			return -EINVAL;
		}
	}
	if ((s = config_setting_get_member(e, "allow_cn")))
		p->allow_cn = config_setting_get_bool(s);
	if ((s = config_setting_get_member(e, "direct_tls")))
		p->direct_tls = config_setting_get_bool(s);
	if ((s = config_setting_get_member(e, "pins")) && config_setting_length(s) > 0) {
		int n = config_setting_length(s);

		p->pins = calloc((size_t)n, sizeof(*p->pins));
		if (p->pins == NULL)
			return -ENOMEM;
		for (int i = 0; i < n; i++) {
			const char *v = config_setting_get_string_elem(s, i);

			if (ident_pin_parse(v, p->pins[i]) < 0) {
				fail_at(ld, s,
					"pin \"%s\" is not a SHA-256 public-key pin; write "
					"\"sha256//BASE64\" or 64 hex digits, as printed by "
					"xtrunkctl fingerprint",
					v);
				return -EINVAL;
			}
			p->npins++;
		}
	}
	if ((s = config_setting_get_member(e, "identity"))) {
		const char *v = config_setting_get_string(s);
		char norm[DOMAIN_MAX + 1];

		if (domain_normalise(v, strlen(v), norm, sizeof(norm)) < 0) {
			fail_at(ld, s,
				"identity \"%s\" is not a domain name; write the domain the peer's "
				"certificate is issued for, e.g. identity = \"a.example\";",
				v);
			return -EINVAL;
		}
		if (dup_str(norm, &p->identity) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int load_peers(struct loader *ld, const config_setting_t *root)
{
	config_setting_t *l = config_setting_get_member(root, "peers");
	struct config *c = ld->c;
	int n = l ? config_setting_length(l) : 0, r;

	if (n == 0)
		return 0;
	c->peers = calloc((size_t)n, sizeof(*c->peers));
	ld->peer_order = calloc((size_t)n, sizeof(*ld->peer_order));
	if (!c->peers || !ld->peer_order)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		/* Count first so a failure still frees what was copied. */
		c->npeers++;
		if ((r = load_peer(ld, config_setting_get_elem(l, (unsigned)i), &c->peers[i])) < 0)
			return r;
		ld->peer_order[i] = &c->peers[i];
	}
	qsort(ld->peer_order, c->npeers, sizeof(*ld->peer_order), cmp_peer_order);
	for (size_t i = 1; i < c->npeers; i++) {
		const struct cfg_peer *a = ld->peer_order[i - 1], *b = ld->peer_order[i];

		if (strcmp(a->name, b->name) == 0) {
			fail_line(
			    ld, NULL, b->line,
			    "peer \"%s\" is already defined at line %d; give each peer a unique "
			    "name",
			    b->name, a->line);
			return -EINVAL;
		}
	}
	return 0;
}

/* Append one "FILE:LINE: warning: ..." line to c->warnings. */
static int warn_line(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int warn_line(struct loader *ld, int line, const char *fmt, ...)
{
	char msg[512];
	size_t have = ld->c->warnings ? strlen(ld->c->warnings) : 0;
	int n;
	char *w;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = snprintf(NULL, 0, "%s:%d: warning: %s\n", ld->path, line, msg);
	w = realloc(ld->c->warnings, have + (size_t)n + 1);
	if (w == NULL)
		return -ENOMEM;
	snprintf(w + have, (size_t)n + 1, "%s:%d: warning: %s\n", ld->path, line, msg);
	ld->c->warnings = w;
	return 0;
}

/* A route whose next hop is one of this relay's own listeners sends every
 * stanza for it straight back to its ingress: a loop (the hop limit stops
 * it at run time; say so when the file is checked). */
static int check_self_routes(struct loader *ld)
{
	struct config *c = ld->c;

	for (size_t i = 0; i < c->npeers; i++)
		for (size_t j = 0; j < c->peers[i].naddrs; j++)
			for (size_t k = 0; k < c->nlisten; k++) {
				const struct cfg_addr *a = &c->peers[i].addrs[j];

				if (a->port != c->listen[k].port ||
				    strcmp(a->host, c->listen[k].address) != 0)
					continue;
				if (warn_line(
					ld, c->peers[i].line,
					"peer \"%s\" (%s:%d) is this relay's own listener; "
					"every route to it points back at its own ingress and "
					"loops; give the next hop's address",
					c->peers[i].name, a->host, a->port) < 0)
					return -ENOMEM;
			}
	return 0;
}

/* Where a route was defined, for messages: "FILE:LINE". */
static const char *route_where(const struct loader *ld, int line, char *buf, size_t len)
{
	if (line < 0)
		snprintf(buf, len, "%s:%d", ld->c->routes_file, -line);
	else
		snprintf(buf, len, "%s:%d", ld->path, line);
	return buf;
}

/* routes_file: one route per line, "PATTERN PEER" separated by blanks,
 * '#' to the end of the line is a comment. For tables too large for the
 * libconfig parser (10^6 routes load in about a second). Its routes join
 * those of `routes`; a pattern may appear once in all. Such a route has no
 * policy or default label of its own. */
static int load_routes_file(struct loader *ld, const config_setting_t *root)
{
	config_setting_t *s = config_setting_get_member(root, "routes_file");
	char *line = NULL, where[PATH_MAX + 32];
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, r = 0;
	FILE *fp;

	if (s == NULL)
		return 0;
	if ((r = check_readable(ld, s, "routes_file")) < 0)
		return r;
	if (dup_str(config_setting_get_string(s), &ld->c->routes_file) < 0)
		return -ENOMEM;
	fp = fopen(ld->c->routes_file, "r");
	if (fp == NULL) {
		fail_at(ld, s, "cannot open routes_file \"%s\": %s; fix the path or permissions",
			ld->c->routes_file, strerror(errno));
		return -errno;
	}
	while ((n = getline(&line, &cap, fp)) >= 0) {
		char *p = line, *pat, *peer, *extra, *hash = memchr(line, '#', (size_t)n);
		int idx, prev = 0;

		lineno++;
		if (hash != NULL)
			*hash = '\0';
		pat = strtok_r(p, " \t\r\n", &p);
		if (pat == NULL)
			continue;
		peer = strtok_r(NULL, " \t\r\n", &p);
		extra = peer ? strtok_r(NULL, " \t\r\n", &p) : NULL;
		if (peer == NULL || extra != NULL) {
			fail_line(ld, ld->c->routes_file, lineno,
				  "a route is \"PATTERN PEER\" (two words); fix this line");
			r = -EINVAL;
			break;
		}
		if ((idx = peer_find(ld, peer)) < 0) {
			fail_line(
			    ld, ld->c->routes_file, lineno,
			    "peer \"%s\" is not defined in %s; add it to peers or fix the name",
			    peer, ld->path);
			r = -EINVAL;
			break;
		}
		r = route_add(ld->c->routes, pat, idx, -lineno, &prev);
		if (r == -EEXIST)
			fail_line(ld, ld->c->routes_file, lineno,
				  "route for \"%s\" duplicates the route at %s; remove one of them",
				  pat, route_where(ld, prev, where, sizeof(where)));
		else if (r == -EINVAL)
			fail_line(
			    ld, ld->c->routes_file, lineno,
			    "\"%s\" is not a valid pattern; write \"a.example\", \"*.a.example\" "
			    "or \"*\"",
			    pat);
		else if (r < 0)
			fail_line(ld, ld->c->routes_file, lineno, "cannot add the route: %s",
				  strerror(-r));
		if (r < 0)
			break;
	}
	if (r == 0 && ferror(fp)) {
		fail_at(ld, s, "error reading routes_file \"%s\"", ld->c->routes_file);
		r = -EIO;
	}
	free(line);
	fclose(fp);
	return r;
}

/* relay_name: this relay's name on trunk links; normalised. A trunk peer
 * with an identity and no relay_name still works, one stream per domain
 * pair; say so, it is rarely what was meant. */
static int load_relay_name(struct loader *ld, const config_setting_t *root)
{
	config_setting_t *s = config_setting_get_member(root, "relay_name");
	struct config *c = ld->c;
	char norm[DOMAIN_MAX + 1];

	if (s != NULL) {
		const char *v = config_setting_get_string(s);

		if (domain_normalise(v, strlen(v), norm, sizeof(norm)) < 0) {
			fail_at(ld, s,
				"relay_name \"%s\" is not a domain name; write the name this "
				"relay's certificate carries, e.g. relay_name = "
				"\"relay-a.dmz.example\";",
				v);
			return -EINVAL;
		}
		if (dup_str(norm, &c->relay_name) < 0)
			return -ENOMEM;
	}
	for (size_t i = 0; i < c->npeers; i++) {
		const struct cfg_peer *p = &c->peers[i];

		if (!p->trunk || (p->identity != NULL && c->relay_name != NULL))
			continue;
		if (warn_line(ld, p->line,
			      "trunk peer \"%s\" gets one stream per domain pair: a single "
			      "multiplexed link needs its identity = \"...\"; and relay_name",
			      p->name) < 0)
			return -ENOMEM;
	}
	return 0;
}

int config_peer_is_link(const struct config *c, int peer)
{
	return c->relay_name != NULL && c->peers[peer].trunk && c->peers[peer].identity != NULL;
}

int config_trunk_peer(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->npeers; i++)
		if (config_peer_is_link(c, (int)i) && strcmp(c->peers[i].identity, name) == 0)
			return (int)i;
	return -1;
}

static int load_routes(struct loader *ld, const config_setting_t *root)
{
	config_setting_t *l = config_setting_get_member(root, "routes");
	int n = l ? config_setting_length(l) : 0;

	ld->c->routes = route_table_new();
	if (!ld->c->routes)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		const char *dom = get_str(e, "domain"), *peer = get_str(e, "peer");
		int line = line_of(e), prev = 0, idx, r;

		if (!dom || !peer) {
			fail_at(ld, e, "route has no %s; add %s = \"...\";",
				dom ? "peer" : "domain", dom ? "peer" : "domain");
			return -EINVAL;
		}
		idx = peer_find(ld, peer);
		if (idx < 0) {
			fail_at(ld, config_setting_get_member(e, "peer"),
				"peer \"%s\" in route for \"%s\" is not defined; add it to peers "
				"or fix "
				"the name",
				peer, dom);
			return -EINVAL;
		}
		r = route_add(ld->c->routes, dom, idx, line, &prev);
		if (r == -EEXIST) {
			fail_at(
			    ld, e,
			    "route for \"%s\" duplicates the route at line %d; remove one of them",
			    dom, prev);
			return r;
		}
		if (r == -EINVAL) {
			fail_at(ld, config_setting_get_member(e, "domain"),
				"route domain \"%s\" is not a valid pattern; write \"a.example\", "
				"\"*.a.example\" or \"*\"",
				dom);
			return r;
		}
		if (r < 0) {
			fail_at(ld, e, "cannot add route for \"%s\": %s; check memory limits", dom,
				strerror(-r));
			return r;
		}
	}
	return 0;
}

/* control and metrics: where xtrunkctl and Prometheus reach the daemon. */
/* log.level and log.traces: what -v and xtrunkctl log/trace set at run
 * time, from the file (applied at start and on each reload). */
static int load_log(struct loader *ld, const config_setting_t *g)
{
	config_setting_t *lv = g != NULL ? config_setting_get_member(g, "level") : NULL;
	config_setting_t *tr = g != NULL ? config_setting_get_member(g, "traces") : NULL;
	struct config *c = ld->c;

	c->log_level = -1;
	if (lv != NULL && (c->log_level = log_level_parse(config_setting_get_string(lv))) < 0) {
		fail_at(ld, lv,
			"log.level \"%s\" is not a level; use \"err\", \"warning\", \"notice\", "
			"\"info\" or \"debug\"",
			config_setting_get_string(lv));
		return -EINVAL;
	}
	for (int i = 0; tr != NULL && i < config_setting_length(tr); i++) {
		const char *v = config_setting_get_string_elem(tr, i);
		unsigned bit = log_trace_parse(v);

		if (bit == 0) {
			fail_at(ld, tr,
				"log.traces: \"%s\" is not a trace category; use \"stanza\", "
				"\"control\", \"metrics\" or \"all\"",
				v);
			return -EINVAL;
		}
		c->log_traces |= bit;
	}
	return 0;
}

static int load_ops(struct loader *ld, const config_setting_t *root)
{
	config_setting_t *ctl = config_setting_get_member(root, "control");
	config_setting_t *m = config_setting_get_member(root, "metrics");
	const char *sock = get_str(ctl, "socket");
	struct config *c = ld->c;

	if (sock != NULL && sock[0] != '/') {
		fail_at(ld, config_setting_get_member(ctl, "socket"),
			"control.socket \"%s\" is not an absolute path; write e.g. socket = "
			"\"/run/xtrunk/control.sock\";",
			sock);
		return -EINVAL;
	}
	if (dup_str(sock, &c->control_socket) < 0)
		return -ENOMEM;
	c->workers = (unsigned)get_int(root, "workers", 1);
	if (load_log(ld, config_setting_get_member(root, "log")) < 0)
		return -EINVAL;
	if (m == NULL)
		return 0;
	{
		const char *addr = get_str(m, "address");
		config_setting_t *pub = config_setting_get_member(m, "public");
		unsigned char bin[sizeof(struct in6_addr)];
		char canon[INET6_ADDRSTRLEN];
		int af, loopback;

		addr = addr != NULL ? addr : "127.0.0.1";
		af = strchr(addr, ':') ? AF_INET6 : AF_INET;
		if (inet_pton(af, addr, bin) != 1 || !inet_ntop(af, bin, canon, sizeof(canon))) {
			fail_at(ld, config_setting_get_member(m, "address"),
				"metrics address \"%s\" is not a numeric IPv4 or IPv6 address; "
				"write e.g. \"127.0.0.1\" or \"::1\"",
				addr);
			return -EINVAL;
		}
		loopback = af == AF_INET ? bin[0] == 127 : strcmp(canon, "::1") == 0;
		if (!loopback && (pub == NULL || !config_setting_get_bool(pub))) {
			fail_at(ld, config_setting_get_member(m, "address"),
				"metrics address %s is not a loopback address; the metrics are "
				"readable by anyone who can connect: use 127.0.0.1 or set "
				"public = true;",
				canon);
			return -EINVAL;
		}
		c->metrics_port = (int)get_int(m, "port", 9269);
		if (dup_str(canon, &c->metrics_address) < 0)
			return -ENOMEM;
	}
	return 0;
}

static void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->relay_name);
	free(c->routes_file);
	free(c->warnings);
	for (size_t i = 0; i < c->nlisten; i++)
		free(c->listen[i].address);
	free(c->listen);
	if (c->dialback_secret) {
		explicit_bzero(c->dialback_secret, strlen(c->dialback_secret));
		free(c->dialback_secret);
	}
	free(c->tls_certificate);
	free(c->tls_key);
	free(c->tls_store);
	free(c->tls_ca_certificate);
	free(c->tls_ca_key);
	free(c->tls_trust);
	free(c->tls_priority);
	free(c->control_socket);
	free(c->metrics_address);
	for (size_t i = 0; i < c->npeers; i++) {
		free(c->peers[i].name);
		for (size_t j = 0; j < c->peers[i].naddrs; j++)
			free(c->peers[i].addrs[j].host);
		free(c->peers[i].addrs);
		route_table_free(c->peers[i].authorize);
		free(c->peers[i].ca_file);
		free(c->peers[i].identity);
		free(c->peers[i].pins);
	}
	free(c->peers);
	route_table_free(c->routes);
	policy_set_free(c->policies);
	free(c);
}

/* libconfig keeps its own copy of an inline secret; wipe it before
 * config_destroy() frees it. The memory is libconfig's heap string. */
static void wipe_inline_secret(config_t *cf)
{
	config_setting_t *s = config_lookup(cf, "dialback_secret");
	const char *v =
	    s && config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;

	if (v)
		explicit_bzero((char *)v, strlen(v));
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct loader ld = {.path = path, .err = err, .errlen = errlen};
	config_setting_t *root;
	FILE *fp;
	int r;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	config_init(&ld.cf);
	fp = fopen(path, "re");
	if (!fp) {
		r = -errno;
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot open: %s; check the path given with -f",
				 path, strerror(-r));
		config_destroy(&ld.cf);
		return r;
	}
	if (config_read(&ld.cf, fp) != CONFIG_TRUE) {
		fclose(fp);
		fail_line(&ld, config_error_file(&ld.cf), config_error_line(&ld.cf),
			  "%s; fix the syntax (key = value; groups { }, lists ( ), strings in "
			  "double quotes)",
			  config_error_text(&ld.cf));
		r = -EINVAL;
		goto fail;
	}
	fclose(fp);
	root = config_root_setting(&ld.cf);

	ld.c = calloc(1, sizeof(*ld.c));
	if (!ld.c || !(ld.c->path = strdup(path))) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = walk_group(&ld, root, "")) < 0)
		goto fail;
	load_limits(&ld, root);
	if ((r = load_listen(&ld, root)) < 0 || (r = load_secret(&ld, root)) < 0 ||
	    (r = load_tls(&ld, root)) < 0 || (r = check_limits(&ld, root)) < 0 ||
	    (r = load_peers(&ld, root)) < 0 || (r = load_routes(&ld, root)) < 0 ||
	    (r = load_routes_file(&ld, root)) < 0 || (r = load_ops(&ld, root)) < 0 ||
	    (r = policy_set_load(root, path, ld.c->npeers, &ld.c->policies, err, errlen)) < 0)
		goto fail;

	if ((r = check_self_routes(&ld)) < 0 || (r = load_relay_name(&ld, root)) < 0)
		goto fail;
	wipe_inline_secret(&ld.cf);
	config_destroy(&ld.cf);
	free(ld.peer_order);
	ld.c->refs = 1;
	*out = ld.c;
	return 0;
fail:
	if (r == -ENOMEM && err && errlen && !err[0])
		snprintf(err, errlen, "%s: out of memory while loading; try again", path);
	wipe_inline_secret(&ld.cf);
	config_destroy(&ld.cf);
	free(ld.peer_order);
	config_free(ld.c);
	return r;
}

struct config *config_ref(struct config *c)
{
	if (c)
		c->refs++;
	return c;
}

void config_unref(struct config *c)
{
	if (c && --c->refs <= 0)
		config_free(c);
}

int config_peer_index(const struct config *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->npeers; i++)
		if (strcmp(c->peers[i].name, name) == 0)
			return (int)i;
	return -1;
}
