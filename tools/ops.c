/* ops: the operations commands of xtrunkctl. check and route read the
 * configuration file themselves (the same loader as xtrunkd); status,
 * reload, log, trace and metrics talk to the running daemon over its
 * control socket (one command line out, the answer back; the socket's
 * file-system permissions decide who may). */
#include "ops.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "domain.h"
#include "policy.h"
#include "route.h"
#include "runtime.h"
#include "store.h"

#define DEFAULT_CONFIG "/etc/xtrunk/xtrunkd.conf"
#define DEFAULT_SOCKET "/run/xtrunk/control.sock"
#define ANSWER_MAX (16u << 20)
#define TIMEOUT_MS 10000

static int ops_usage(const char *why)
{
	fprintf(stderr, "xtrunkctl: %s\n", why);
	return 2;
}

/* -f CONFIG and -s SOCKET, in any order before the command's arguments.
 * Returns the index of the first argument left. */
static int common_opts(int argc, char **argv, const char **config, const char **sock)
{
	int i = 1;

	while (i + 1 < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-f") == 0)
			*config = argv[i + 1];
		else if (strcmp(argv[i], "-s") == 0 && sock != NULL)
			*sock = argv[i + 1];
		else
			break;
		i += 2;
	}
	return i;
}

int ops_check(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	char err[4096];
	struct runtime *rt;
	int i = common_opts(argc, argv, &path, NULL);

	if (i != argc)
		return ops_usage("usage: xtrunkctl check [-f CONFIG]");
	rt = runtime_load(path, NULL, err, sizeof(err));
	if (rt == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("%s: configuration OK (%zu listeners, %zu peers, %zu routes)\n", path,
	       rt->cfg->nlisten, rt->cfg->npeers, route_count(rt->cfg->routes));
	runtime_unref(rt);
	return 0;
}

/* Where the certificate the relay presents for domain comes from. */
/* The policies a stanza to this route meets, in the order the relay
 * applies them (policy/policy.c): the inbound peer's (depends on the
 * sender, so all are listed), the route's, the outbound peer's. */
static void route_policies(const struct config *cfg, const struct route *r)
{
	const struct policy_set *ps = cfg->policies;
	const struct pol_route *pr;
	int any = 0;

	if (ps == NULL || !policy_active(ps)) {
		printf("policy:      none (no policy or clearance configured)\n");
		return;
	}
	pr = policy_route(ps, r->pattern);
	if (pr != NULL && pr->policy >= 0) {
		printf("policy:      route: %s\n", ps->policies[pr->policy].name);
		any = 1;
	}
	if ((size_t)r->peer < ps->npeers && ps->peers[r->peer].policy_out >= 0) {
		printf("policy:      outbound peer %s: %s\n", cfg->peers[r->peer].name,
		       ps->policies[ps->peers[r->peer].policy_out].name);
		any = 1;
	}
	if ((size_t)r->peer < ps->npeers && ps->peers[r->peer].has_clearance) {
		printf("policy:      outbound peer %s has a clearance: labels are checked\n",
		       cfg->peers[r->peer].name);
		any = 1;
	}
	for (size_t i = 0; i < ps->npeers && i < cfg->npeers; i++)
		if (ps->peers[i].policy_in >= 0) {
			printf("policy:      inbound from peer %s: %s\n", cfg->peers[i].name,
			       ps->policies[ps->peers[i].policy_in].name);
			any = 1;
		}
	if (!any)
		printf("policy:      none for this route\n");
}

static void route_certificate(struct runtime *rt, const char *domain)
{
	const struct config *cfg = rt->cfg;
	struct store_cert *c = NULL;
	int rc = rt->store != NULL ? store_select(rt->store, domain, &c) : -ENOENT;

	if (rc == 0) {
		const char *name = store_cert_name(c);
		char file[4096];
		struct stat st;
		int from_dir = 0;

		if (cfg->tls_store != NULL) {
			if (name[0] == '*')
				snprintf(file, sizeof(file), "%s/_wildcard.%s.pem", cfg->tls_store,
					 name + 2);
			else
				snprintf(file, sizeof(file), "%s/%s.pem", cfg->tls_store, name);
			from_dir = stat(file, &st) == 0;
		}
		if (from_dir)
			printf("certificate: %s (%s, from the store; chosen by SNI or the stream "
			       "'to')\n",
			       name, file);
		else
			printf("certificate: %s (issued on the fly by the enclave CA %s)\n", name,
			       cfg->tls_ca_certificate ? cfg->tls_ca_certificate : "-");
		store_cert_unref(c);
		return;
	}
	if (cfg->tls_certificate != NULL)
		printf("certificate: %s (tls.certificate: nothing in the store or from the CA "
		       "fits)\n",
		       cfg->tls_certificate);
	else
		printf("certificate: none (no store entry, CA or tls.certificate fits; TLS "
		       "handshakes for this domain fail)\n");
}

int ops_route(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG, *why;
	char err[4096], dom[DOMAIN_MAX + 1];
	const struct route *r;
	const struct cfg_peer *p;
	struct runtime *rt;
	int i = common_opts(argc, argv, &path, NULL);

	if (i + 1 != argc)
		return ops_usage("usage: xtrunkctl route [-f CONFIG] DOMAIN");
	if (domain_normalise(argv[i], strlen(argv[i]), dom, sizeof(dom)) < 0) {
		fprintf(stderr, "xtrunkctl: \"%s\" is not a domain name\n", argv[i]);
		return 1;
	}
	rt = runtime_load(path, NULL, err, sizeof(err));
	if (rt == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("domain:      %s\n", dom);
	r = route_lookup(rt->cfg->routes, dom);
	if (r == NULL) {
		printf("route:       none (no exact, wildcard or default route matches; streams "
		       "for it are refused with host-unknown)\n");
		runtime_unref(rt);
		return 1;
	}
	if (strcmp(r->pattern, "*") == 0)
		why = "default: no exact or wildcard route matches";
	else if (r->pattern[0] == '*')
		why = "wildcard: the longest matching suffix, no exact route";
	else
		why = "exact";
	p = &rt->cfg->peers[r->peer];
	if (r->line < 0) /* from routes_file */
		printf("route:       %s (%s; %s line %d)\n", r->pattern, why, rt->cfg->routes_file,
		       -r->line);
	else
		printf("route:       %s (%s; %s line %d)\n", r->pattern, why, path, r->line);
	printf("peer:        %s (%s line %d)\n", p->name, path, p->line);
	printf("next hop:    %s:%d (%s, tls %s, auth %s, identity %s)\n", p->host, p->port,
	       p->direct_tls ? "direct TLS" : "STARTTLS",
	       p->tls == CFG_TLS_REQUIRED   ? "required"
	       : p->tls == CFG_TLS_OPTIONAL ? "optional"
					    : "none",
	       p->auth == CFG_AUTH_CERTIFICATE ? "certificate" : "any",
	       p->identity != NULL ? p->identity : dom);
	route_policies(rt->cfg, r);
	route_certificate(rt, dom);
	runtime_unref(rt);
	return 0;
}

/* The socket: -s, else control.socket of the configuration, else the
 * default. */
static const char *socket_path(const char *sock, const char *config, char *buf, size_t buflen)
{
	struct config *cfg;
	char err[1024];

	if (sock != NULL)
		return sock;
	if (config_load(config, &cfg, err, sizeof(err)) == 0) {
		snprintf(buf, buflen, "%s",
			 cfg->control_socket != NULL ? cfg->control_socket : DEFAULT_SOCKET);
		config_unref(cfg);
		return buf;
	}
	return DEFAULT_SOCKET;
}

/* Send line to the daemon; the answer in *out (caller frees). */
static int ask(const char *path, const char *line, char **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = 0, cap = 65536;
	char *buf;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "xtrunkctl: socket path %s is too long\n", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		fprintf(stderr,
			"xtrunkctl: cannot connect to %s: %s; is xtrunkd running, and may this "
			"user open the socket? (-s SOCKET or -f CONFIG to name another)\n",
			path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line) || write(fd, "\n", 1) != 1) {
		fprintf(stderr, "xtrunkctl: cannot send to %s: %s\n", path, strerror(errno));
		close(fd);
		return -EIO;
	}
	buf = malloc(cap);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, TIMEOUT_MS) <= 0) {
			fprintf(stderr, "xtrunkctl: no answer from %s within %d s\n", path,
				TIMEOUT_MS / 1000);
			free(buf);
			close(fd);
			return -ETIMEDOUT;
		}
		if (len + 1 >= cap) {
			char *nb = cap < ANSWER_MAX ? realloc(buf, cap * 2) : NULL;

			if (nb == NULL) {
				free(buf);
				close(fd);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	return 0;
}

int ops_remote(int argc, char **argv)
{
	const char *config = DEFAULT_CONFIG, *sock = NULL, *path;
	char pathbuf[256], line[512], *answer = NULL;
	size_t used = 0;
	int i = common_opts(argc, argv, &config, &sock), j, rc;

	line[0] = '\0';
	/* argv[0] is the command; the options sit between it and its arguments */
	used = (size_t)snprintf(line, sizeof(line), "%s", argv[0]);
	for (j = i; j < argc; j++) {
		int n = snprintf(line + used, sizeof(line) - used, " %s", argv[j]);

		if (n < 0 || (size_t)n >= sizeof(line) - used || strchr(argv[j], '\n'))
			return ops_usage("command too long");
		used += (size_t)n;
	}
	path = socket_path(sock, config, pathbuf, sizeof(pathbuf));
	rc = ask(path, line, &answer);
	if (rc < 0)
		return 1;
	if (strncmp(answer, "ok\n", 3) == 0) {
		fputs(answer + 3, stdout);
		free(answer);
		return 0;
	}
	fprintf(stderr, "xtrunkctl: %s%s", answer[0] ? answer : "no answer (connection closed)",
		answer[0] && answer[strlen(answer) - 1] == '\n' ? "" : "\n");
	free(answer);
	return 1;
}
