/* fuzz_config: libFuzzer target for the configuration loader
 * (relay/config.c): libconfig syntax, the key-table walk, and every
 * load_*() check, on an arbitrary file. config_load takes a path, so the
 * input is written to one memfd made on the first call and rewritten for
 * each input; the path is /proc/self/fd/N. Seeds use /dev/null and
 * /etc/passwd where a readable file is needed.
 *
 * log_msg is defined here (relay/log.c is not linked): the loader's log
 * lines are kept for the secret check below instead of going to stderr.
 *
 * Invariants beyond "no crash, no leak":
 *  - config_load returns 0 with a config, or < 0 with none and an error
 *    "FILE:LINE: problem; fix" (":LINE: " and "; " present unless the
 *    message was cut at the buffer size); the error never runs past errlen;
 *  - loading the same bytes twice gives the same return and message;
 *  - a loaded config is what the validation promises: refs 1, at least one
 *    canonical numeric listen address, ports and limits in range,
 *    queue_max_bytes >= max_stanza_size, a secret of >= 16 characters,
 *    certificate and key unless tls.inbound is none or a store or CA is
 *    set, ca_certificate and ca_key together, unique peer names (found by
 *    config_peer_index), normalised peer identities, pins only with npins,
 *    one route per routes entry, and each exact route domain looking up to
 *    its own peer; config_ref/config_unref keep it alive until the last;
 *  - the inline dialback_secret never appears in an error or log line:
 *    the input is re-parsed with libconfig, its secret replaced by a fresh
 *    random canary, written back and loaded again, and the canary must not
 *    show up in err or in what was logged.
 *
 * One leak is suppressed, in libconfig itself: 1.5 (Debian 12) drops the
 * string token discarded during syntax-error recovery
 * (hyperrealm/libconfig#142, fixed by #155 in 1.7.3). Only allocations
 * made in the scanner (strbuf_append, libconfig_yylex) are suppressed; a
 * config_t the loader failed to destroy would still show as leaked
 * settings. */
#include "config.h"
#include "domain.h"
#include "log.h"
#include "route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

const char *__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

#define ERRLEN 512

static int memfd = -1;
static char path[64];
static char logbuf[4096];
static size_t loglen;

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;
	int n;

	(void)prio;
	if (loglen >= sizeof(logbuf) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(logbuf + loglen, sizeof(logbuf) - loglen, fmt, ap);
	va_end(ap);
	if (n > 0)
		loglen +=
		    (size_t)n < sizeof(logbuf) - loglen ? (size_t)n : sizeof(logbuf) - 1 - loglen;
}

static void put_file(const void *p, size_t n)
{
	if (memfd < 0) {
		memfd = memfd_create("fuzz_config", MFD_CLOEXEC);
		if (memfd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) < 0 || (n && pwrite(memfd, p, n, 0) != (ssize_t)n))
		abort();
}

/* ":<digits>: " somewhere, and "; " after it, unless cut at ERRLEN. */
static void check_err(const char *err)
{
	size_t len = strnlen(err, ERRLEN);
	const char *p;

	if (len == 0 || len >= ERRLEN)
		abort();
	if (len == ERRLEN - 1)
		return;
	for (p = strchr(err, ':'); p; p = strchr(p + 1, ':')) {
		const char *q = p + 1;

		while (*q >= '0' && *q <= '9')
			q++;
		if (q > p + 1 && q[0] == ':' && q[1] == ' ')
			break;
	}
	if (!p || !strstr(p, "; "))
		abort();
}

static int canonical_addr(const char *a)
{
	unsigned char bin[sizeof(struct in6_addr)];
	char back[INET6_ADDRSTRLEN];
	int af = strchr(a, ':') ? AF_INET6 : AF_INET;

	return inet_pton(af, a, bin) == 1 && inet_ntop(af, bin, back, sizeof(back)) &&
	       strcmp(a, back) == 0;
}

/* Routes as libconfig sees the same bytes (NUL-free input only). */
static void check_routes(const struct config *c, const char *text)
{
	config_t cf;
	config_setting_t *l;
	int n;

	config_init(&cf);
	if (config_read_string(&cf, text) != CONFIG_TRUE) {
		config_destroy(&cf); /* libconfig reads a string and a file alike */
		return;
	}
	l = config_lookup(&cf, "routes");
	n = l ? config_setting_length(l) : 0;
	if (route_count(c->routes) != (size_t)n)
		abort();
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		const char *dom = NULL, *peer = NULL;
		char norm[DOMAIN_MAX + 1];
		const struct route *r;

		config_setting_lookup_string(e, "domain", &dom);
		config_setting_lookup_string(e, "peer", &peer);
		if (!dom || !peer || dom[0] == '*')
			continue;
		if (domain_normalise(dom, strlen(dom), norm, sizeof(norm)) < 0)
			abort();
		r = route_lookup(c->routes, norm);
		if (!r || strcmp(r->pattern, norm) != 0 || r->peer < 0 ||
		    (size_t)r->peer >= c->npeers || strcmp(c->peers[r->peer].name, peer) != 0)
			abort();
	}
	config_destroy(&cf);
}

static void check_config(struct config *c)
{
	if (c->refs != 1 || c->nlisten < 1 || !c->dialback_secret ||
	    strlen(c->dialback_secret) < 16 || !c->routes || !c->path)
		abort();
	for (size_t i = 0; i < c->nlisten; i++)
		if (!c->listen[i].address || !canonical_addr(c->listen[i].address) ||
		    c->listen[i].port < 1 || c->listen[i].port > 65535 ||
		    (unsigned)c->listen[i].direct_tls > 1)
			abort();
	if ((unsigned)c->tls_inbound > CFG_TLS_NONE)
		abort();
	if (c->tls_inbound != CFG_TLS_NONE && !c->tls_store && !c->tls_ca_certificate &&
	    (!c->tls_certificate || !c->tls_key))
		abort();
	if (!c->tls_ca_certificate != !c->tls_ca_key)
		abort();
	if (c->tls_issue_lifetime < 300 || c->tls_issue_lifetime > 31536000 ||
	    c->connect_timeout < 1 || c->connect_timeout > 3600 || c->handshake_timeout < 1 ||
	    c->handshake_timeout > 3600 || c->idle_timeout < 1 || c->idle_timeout > 604800 ||
	    c->queue_max_stanzas < 1 || c->queue_max_stanzas > 1000000 ||
	    c->queue_max_bytes < 10000 || c->queue_max_bytes > (1u << 30) ||
	    c->max_stanza_size < 10000 || c->max_stanza_size > (1u << 26) ||
	    c->queue_max_bytes < c->max_stanza_size)
		abort();
	for (size_t i = 0; i < c->npeers; i++) {
		const struct cfg_peer *p = &c->peers[i];

		if (!p->name || !p->name[0] || !p->host || !p->host[0] || p->port < 1 ||
		    p->port > 65535 || (unsigned)p->tls > CFG_TLS_NONE ||
		    (unsigned)p->auth > CFG_AUTH_CERTIFICATE || (unsigned)p->allow_cn > 1 ||
		    (unsigned)p->direct_tls > 1 || !p->npins != !p->pins ||
		    config_peer_index(c, p->name) != (int)i)
			abort();
		if (p->identity) {
			const char *id = p->identity;
			char norm[DOMAIN_MAX + 1];

			if (domain_normalise(id, strlen(id), norm, sizeof(norm)) < 0 ||
			    strcmp(norm, id) != 0)
				abort();
		}
	}
	if (config_ref(c) != c || c->refs != 2)
		abort();
	config_unref(c);
	if (c->refs != 1)
		abort();
}

/* Loads path; returns rc, copies err into errout (ERRLEN). */
static int load(struct config **out, char *errout)
{
	char *err = malloc(ERRLEN);
	int rc = config_load(path, out, err, ERRLEN);

	if (rc == 0) {
		if (!*out)
			abort();
		errout[0] = '\0';
	} else {
		if (rc > 0 || *out)
			abort();
		check_err(err);
		memcpy(errout, err, ERRLEN);
	}
	free(err);
	return rc;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

/* Reload with the inline secret replaced by a canary the input cannot know. */
static void check_secret(const char *text)
{
	config_t cf;
	config_setting_t *s;
	char canary[40], err[ERRLEN];
	struct config *c = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *mem;

	config_init(&cf);
	if (config_read_string(&cf, text) != CONFIG_TRUE ||
	    !(s = config_lookup(&cf, "dialback_secret")) ||
	    config_setting_type(s) != CONFIG_TYPE_STRING) {
		config_destroy(&cf);
		return;
	}
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	snprintf(canary, sizeof(canary), "Qz%016llxKv", (unsigned long long)rng_state);
	config_setting_set_string(s, canary);
	mem = open_memstream(&buf, &len);
	if (!mem)
		abort();
	config_write(&cf, mem);
	fclose(mem);
	config_destroy(&cf);
	put_file(buf, len);
	free(buf);
	loglen = 0;
	logbuf[0] = '\0';
	if (load(&c, err) == 0)
		config_unref(c);
	if (strstr(err, canary) || strstr(logbuf, canary))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err1[ERRLEN], err2[ERRLEN];
	struct config *c1 = NULL, *c2 = NULL;
	int rc1, rc2;
	char *text;

	put_file(data, size);
	loglen = 0;
	rc1 = load(&c1, err1);
	rc2 = load(&c2, err2);
	if (rc1 != rc2 || strcmp(err1, err2) != 0)
		abort();
	text = memchr(data, '\0', size) ? NULL : malloc(size + 1);
	if (text) {
		memcpy(text, data, size);
		text[size] = '\0';
	}
	if (rc1 == 0) {
		check_config(c1);
		if (c1->nlisten != c2->nlisten || c1->npeers != c2->npeers ||
		    route_count(c1->routes) != route_count(c2->routes))
			abort();
		if (text)
			check_routes(c1, text);
	}
	config_unref(c1);
	config_unref(c2);
	if (text)
		check_secret(text);
	free(text);
	return 0;
}
