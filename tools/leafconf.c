/* leafconf: xtrunkctl leaf-config, the configuration of one leaf generated
 * from the relay's routes.
 *
 * The leaf serves the domains routed to its own peer (the peer its domain's
 * route names). Every other route must lead the leaf to the relay:
 *   exact "d"    SRV _xmpp-server._tcp.d -> each relay instance (equal
 *                priority and weight), and an A/AAAA record for d;
 *   wildcard "*.x"  x and every name below it resolve to the relay
 *                (dnsmasq address=/x/, BIND x and *.x); leaves then use
 *                their A-record fallback on port 5269, so SRV only for x;
 *   default "*"  every other name resolves to the relay (dnsmasq
 *                address=/#/); a BIND zone cannot say that, so it is a
 *                comment there.
 * The leaf's own domains are marked local (never sent to the relay).
 * Prosody gets the same map for mod_s2sout_override, ejabberd (which has
 * no static s2s routes) the settings that make it follow that DNS and an
 * s2s access list of the routed domains, and both the trust anchor for the
 * relay's certificates.
 *
 * Sans-I/O apart from leafconf_main (files, the relay's certificate): the
 * writers take a FILE and an already loaded configuration. */
#include "leafconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config.h"
#include "route.h"

#define DEFAULT_CONFIG "/etc/xtrunk/xtrunkd.conf"
#define DEFAULT_PORT 5269
#define TARGET_SUFFIX "xtrunk.internal"
#define SRV_WEIGHT 1
#define ZONE_TTL 300
#define CA_COPY_NAME "xtrunk-ca.pem"

enum lc_kind { KIND_EXACT = 0, KIND_WILD = 1, KIND_DEFAULT = 2 };

struct lc_route {
	const char *pattern; /* borrowed from the route table */
	const char *base;    /* borrowed: the domain, or the suffix of "*.x" */
	int peer;
	int kind; /* enum lc_kind */
	int own;  /* routed to the leaf's own peer */
};

static const struct {
	const char *name;
	enum leafconf_format f;
	const char *file; /* under -o DIR */
} formats[] = {
    {"dnsmasq", LEAFCONF_DNSMASQ, "dnsmasq.conf"},
    {"bind", LEAFCONF_BIND, "xtrunk.zone"},
    {"prosody", LEAFCONF_PROSODY, "prosody.cfg.lua"},
    {"ejabberd", LEAFCONF_EJABBERD, "ejabberd.yml"},
    {"trust", LEAFCONF_TRUST, "trust.txt"},
};
#define NFORMATS (sizeof(formats) / sizeof(formats[0]))

enum leafconf_format leafconf_format_parse(const char *s)
{
	if (s == NULL)
		return 0;
	if (strcmp(s, "all") == 0)
		return LEAFCONF_ALL;
	for (size_t i = 0; i < NFORMATS; i++)
		if (strcmp(s, formats[i].name) == 0)
			return formats[i].f;
	return 0;
}

static int is_wildcard_addr(const char *a)
{
	return strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0;
}

int leafconf_init(struct leafconf *lc, const struct config *cfg, const char *leaf, char *err,
		  size_t errlen)
{
	const struct route *r;

	memset(lc, 0, sizeof(*lc));
	lc->cfg = cfg;
	if (leaf == NULL || domain_normalise(leaf, strlen(leaf), lc->leaf, sizeof(lc->leaf)) < 0) {
		snprintf(err, errlen, "--leaf %s: not a domain name; give the leaf's XMPP domain",
			 leaf ? leaf : "(none)");
		return -EINVAL;
	}
	r = route_lookup(cfg->routes, lc->leaf);
	if (r == NULL || strcmp(r->pattern, "*") == 0) {
		snprintf(err, errlen,
			 "%s: no route of its own in %s (%s); a leaf is a domain routed to the "
			 "peer serving it: add a route for it",
			 lc->leaf, cfg->path, r ? "only the default route" : "no route at all");
		return -EINVAL;
	}
	lc->leaf_peer = r->peer;
	return 0;
}

/* The listen port for addr: a listener on that address (or a wildcard one)
 * of the wanted kind; for the plain port, any plain listener, then 5269. */
static int listen_port(const struct config *cfg, const char *addr, int direct_tls)
{
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < cfg->nlisten; i++) {
			const struct cfg_listen *l = &cfg->listen[i];

			if ((l->direct_tls != 0) != (direct_tls != 0))
				continue;
			if (pass == 0 && strcmp(l->address, addr) == 0)
				return l->port;
			if (pass == 1 && is_wildcard_addr(l->address))
				return l->port;
		}
	if (direct_tls)
		return 0;
	for (size_t i = 0; i < cfg->nlisten; i++)
		if (!cfg->listen[i].direct_tls)
			return cfg->listen[i].port;
	return DEFAULT_PORT;
}

int leafconf_add_target(struct leafconf *lc, const char *spec, char *err, size_t errlen)
{
	struct leafconf_target *t;
	const char *eq = strchr(spec, '='), *addr = eq ? eq + 1 : spec;
	unsigned char buf[16];

	if (lc->ntargets >= LEAFCONF_TARGETS_MAX) {
		snprintf(err, errlen, "at most %d --relay-address", LEAFCONF_TARGETS_MAX);
		return -ENOSPC;
	}
	t = &lc->targets[lc->ntargets];
	memset(t, 0, sizeof(*t));
	if (strlen(addr) >= sizeof(t->addr) ||
	    (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1)) {
		snprintf(err, errlen,
			 "--relay-address %s: not a numeric IPv4 or IPv6 address; give "
			 "[NAME=]ADDRESS",
			 spec);
		return -EINVAL;
	}
	if (is_wildcard_addr(addr)) {
		snprintf(err, errlen,
			 "--relay-address %s: a wildcard address; give the address the leaf "
			 "connects to",
			 spec);
		return -EINVAL;
	}
	if (eq != NULL) {
		size_t n = (size_t)(eq - spec);

		if (n == 0 || n >= sizeof(t->name) ||
		    domain_normalise(spec, n, t->name, sizeof(t->name)) < 0) {
			snprintf(err, errlen, "--relay-address %s: NAME is not a host name", spec);
			return -EINVAL;
		}
	} else {
		snprintf(t->name, sizeof(t->name), "relay%zu." TARGET_SUFFIX, lc->ntargets + 1);
	}
	for (size_t i = 0; i < lc->ntargets; i++)
		if (strcmp(lc->targets[i].name, t->name) == 0) {
			snprintf(err, errlen, "--relay-address %s: the name %s is used twice", spec,
				 t->name);
			return -EINVAL;
		}
	memcpy(t->addr, addr, strlen(addr) + 1);
	t->v6 = strchr(addr, ':') != NULL;
	t->port = listen_port(lc->cfg, addr, 0);
	t->tls_port = listen_port(lc->cfg, addr, 1);
	lc->ntargets++;
	return 0;
}

int leafconf_default_target(struct leafconf *lc, char *err, size_t errlen)
{
	const char *only = NULL;
	size_t n = 0;

	for (size_t i = 0; i < lc->cfg->nlisten; i++) {
		const char *a = lc->cfg->listen[i].address;

		if (is_wildcard_addr(a) || (only != NULL && strcmp(only, a) == 0))
			continue;
		only = a;
		n++;
	}
	if (n != 1) {
		snprintf(err, errlen,
			 "%s listens on %s; say where the leaf reaches the relay with "
			 "--relay-address ADDRESS (repeat it for each instance)",
			 lc->cfg->path, n == 0 ? "wildcard addresses only" : "several addresses");
		return -EINVAL;
	}
	return leafconf_add_target(lc, only, err, errlen);
}

static int route_cmp(const void *a, const void *b)
{
	const struct lc_route *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind - y->kind;
	return strcmp(x->pattern, y->pattern);
}

/* Every route, exact ones first, then wildcards, then the default; each
 * group by name. *out is owned by the caller (free). */
static int collect(const struct leafconf *lc, struct lc_route **out, size_t *n)
{
	size_t pos = 0, i = 0, count = route_count(lc->cfg->routes);
	struct lc_route *v = calloc(count ? count : 1, sizeof(*v));
	const struct route *r;

	if (v == NULL)
		return -ENOMEM;
	while ((r = route_next(lc->cfg->routes, &pos)) != NULL && i < count) {
		struct lc_route *e = &v[i++];

		e->pattern = r->pattern;
		e->peer = r->peer;
		e->own = r->peer == lc->leaf_peer;
		if (strcmp(r->pattern, "*") == 0) {
			e->kind = KIND_DEFAULT;
			e->base = r->pattern;
		} else if (strncmp(r->pattern, "*.", 2) == 0) {
			e->kind = KIND_WILD;
			e->base = r->pattern + 2;
		} else {
			e->kind = KIND_EXACT;
			e->base = r->pattern;
		}
	}
	qsort(v, i, sizeof(*v), route_cmp);
	*out = v;
	*n = i;
	return 0;
}

/* Whether an own route before v[i] already covered the domain base. */
static int seen_own(const struct lc_route *v, size_t i, const char *base)
{
	while (i-- > 0)
		if (v[i].own && v[i].kind != KIND_DEFAULT && strcmp(v[i].base, base) == 0)
			return 1;
	return 0;
}

/* Whether an exact route before v[i] is for base itself. */
static int has_exact(const struct lc_route *v, size_t i, const char *base)
{
	while (i-- > 0)
		if (v[i].kind == KIND_EXACT && strcmp(v[i].base, base) == 0)
			return 1;
	return 0;
}

static const char *peer_name(const struct leafconf *lc, int peer)
{
	if (peer < 0 || (size_t)peer >= lc->cfg->npeers)
		return "?";
	return lc->cfg->peers[peer].name;
}

/* The relay's trust anchor for the leaf, if the relay config names one. */
static const char *ca_path(const struct leafconf *lc)
{
	if (lc->cfg->tls_ca_certificate == NULL)
		return NULL;
	return lc->ca_copy != NULL ? lc->ca_copy : lc->cfg->tls_ca_certificate;
}

/* A string as a double-quoted Lua or YAML scalar (both accept \" and \\). */
static void put_quoted(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		if ((unsigned char)*s < 0x20)
			fprintf(out, "\\%03o", (unsigned char)*s);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

static void header(const struct leafconf *lc, FILE *out, const char *c, const char *what)
{
	fprintf(out, "%s %s for the leaf %s behind the xtrunk relay\n", c, what, lc->leaf);
	fprintf(out, "%s generated by xtrunkctl leaf-config from %s (%zu routes)\n", c,
		lc->cfg->path, route_count(lc->cfg->routes));
	fprintf(out, "%s the leaf's peer in that file: %s\n", c, peer_name(lc, lc->leaf_peer));
}

static void write_dnsmasq(const struct leafconf *lc, const struct lc_route *v, size_t n, FILE *out)
{
	const struct leafconf_target *t0 = &lc->targets[0];

	header(lc, out, "#", "dnsmasq lines");
	fputs("# Load into the dnsmasq the leaf resolves with (conf-file=THIS FILE).\n"
	      "# local=/D/ answers every other lookup under D here (AAAA,\n"
	      "# _xmpps-server: empty at once), so none is forwarded upstream.\n"
	      "# The relay instances, SRV targets of equal priority and weight:\n",
	      out);
	for (size_t i = 0; i < lc->ntargets; i++)
		fprintf(out, "host-record=%s,%s\n", lc->targets[i].name, lc->targets[i].addr);
	for (size_t i = 0; i < n; i++) {
		const struct lc_route *r = &v[i];

		fprintf(out, "# route %s -> peer %s%s\n", r->pattern, peer_name(lc, r->peer),
			r->own ? " (the leaf's own peer: served there, never via the relay)" : "");
		if (r->own) {
			if (r->kind != KIND_DEFAULT && !seen_own(v, i, r->base))
				fprintf(out, "local=/%s/\n", r->base);
			else
				fputs("# (the default route leads to the leaf itself: nothing to "
				      "add)\n",
				      out);
			continue;
		}
		if (r->kind == KIND_DEFAULT) {
			fputs("# every domain not named above: dnsmasq's '#' matches all domains;\n"
			      "# leaves then connect to the A record on port 5269 (no SRV)\n",
			      out);
			fprintf(out, "local=/#/\naddress=/#/%s\n", t0->addr);
			if (t0->port != DEFAULT_PORT)
				fprintf(
				    out,
				    "# WARNING: the relay listens on port %d, not 5269: domains "
				    "reached only through this line will not work\n",
				    t0->port);
			continue;
		}
		if (r->kind == KIND_WILD) {
			int exact = has_exact(v, i, r->base);

			fprintf(out,
				"# %s and every name below it (dnsmasq domain match); below it "
				"the leaf\n# uses the A record on port 5269\n",
				r->base);
			if (!exact)
				fprintf(out, "local=/%s/\n", r->base);
			fprintf(out, "address=/%s/%s\n", r->base, t0->addr);
			if (t0->port != DEFAULT_PORT)
				fprintf(out,
					"# WARNING: the relay listens on port %d, not 5269: names "
					"below %s will not work\n",
					t0->port, r->base);
			if (exact) /* its own route gave it its records */
				continue;
		} else {
			fprintf(out, "local=/%s/\nhost-record=%s,%s\n", r->base, r->base, t0->addr);
		}
		for (size_t k = 0; k < lc->ntargets; k++) {
			const struct leafconf_target *t = &lc->targets[k];

			fprintf(out, "srv-host=_xmpp-server._tcp.%s,%s,%d,0,%d\n", r->base, t->name,
				t->port, SRV_WEIGHT);
			if (t->tls_port)
				fprintf(out, "srv-host=_xmpps-server._tcp.%s,%s,%d,0,%d\n", r->base,
					t->name, t->tls_port, SRV_WEIGHT);
		}
	}
}

static void zone_addr(FILE *out, const char *owner, const struct leafconf_target *t)
{
	fprintf(out, "%s.\t%d\tIN\t%s\t%s\n", owner, ZONE_TTL, t->v6 ? "AAAA" : "A", t->addr);
}

static void zone_srv(const struct leafconf *lc, FILE *out, const char *d)
{
	for (size_t k = 0; k < lc->ntargets; k++) {
		const struct leafconf_target *t = &lc->targets[k];

		fprintf(out, "_xmpp-server._tcp.%s.\t%d\tIN\tSRV\t0 %d %d %s.\n", d, ZONE_TTL,
			SRV_WEIGHT, t->port, t->name);
		if (t->tls_port)
			fprintf(out, "_xmpps-server._tcp.%s.\t%d\tIN\tSRV\t0 %d %d %s.\n", d,
				ZONE_TTL, SRV_WEIGHT, t->tls_port, t->name);
	}
}

static void write_bind(const struct leafconf *lc, const struct lc_route *v, size_t n, FILE *out)
{
	header(lc, out, ";", "BIND zone data");
	fputs("; Absolute names: load them into the zones the leaf's resolver serves\n"
	      "; for these domains (or a response-policy zone).\n",
	      out);
	fprintf(out, "$TTL %d\n", ZONE_TTL);
	fputs("; the relay instances\n", out);
	for (size_t i = 0; i < lc->ntargets; i++)
		zone_addr(out, lc->targets[i].name, &lc->targets[i]);
	for (size_t i = 0; i < n; i++) {
		const struct lc_route *r = &v[i];

		fprintf(out, "; route %s -> peer %s%s\n", r->pattern, peer_name(lc, r->peer),
			r->own ? ": the leaf's own peer, no records" : "");
		if (r->own)
			continue;
		if (r->kind == KIND_DEFAULT) {
			fputs(
			    "; The default route has no zone form: resolve every other domain to\n"
			    "; the relay in the leaf's resolver (e.g. the dnsmasq output's\n"
			    "; address=/#/) or list the domains as exact routes.\n",
			    out);
			continue;
		}
		for (size_t k = 0; k < lc->ntargets; k++) {
			if (!has_exact(v, i, r->base))
				zone_addr(out, r->base, &lc->targets[k]);
			if (r->kind == KIND_WILD) {
				char owner[DOMAIN_MAX + 3];

				snprintf(owner, sizeof(owner), "*.%s", r->base);
				zone_addr(out, owner, &lc->targets[k]);
			}
		}
		if (!has_exact(v, i, r->base))
			zone_srv(lc, out, r->base);
	}
}

static void uri(FILE *out, const struct leafconf_target *t)
{
	if (t->v6)
		fprintf(out, "\"tcp://[%s]:%d\"", t->addr, t->port);
	else
		fprintf(out, "\"tcp://%s:%d\"", t->addr, t->port);
}

static void write_prosody(const struct leafconf *lc, const struct lc_route *v, size_t n, FILE *out)
{
	const char *ca = ca_path(lc);

	header(lc, out, "--", "Prosody settings");
	fputs("-- mod_s2sout_override is a community module (prosody-modules), for\n"
	      "-- Prosody 0.12.4 or later; Debian 12's prosody-modules does not ship it.\n"
	      "-- Without it, give the leaf's resolver the DNS records of this command\n"
	      "-- (e.g. unbound = { forward = \"ADDR@PORT\" } with lua-unbound).\n"
	      "modules_enabled = { \"s2sout_override\" } -- merge into your list\n"
	      "s2sout_override = {\n",
	      out);
	for (size_t i = 0; i < n; i++) {
		const struct lc_route *r = &v[i];

		if (r->kind == KIND_DEFAULT)
			continue;
		if (r->own) {
			/* only needed to bypass the catch-all; harmless otherwise */
			if (!seen_own(v, i, r->base))
				fprintf(out, "\t[\"%s\"] = true; -- own peer %s: standard DNS\n",
					r->base, peer_name(lc, r->peer));
			if (r->kind == KIND_WILD)
				fprintf(out, "\t[\"*.%s\"] = true;\n", r->base);
			continue;
		}
		if (!has_exact(v, i, r->base)) {
			fprintf(out, "\t[\"%s\"] = ", r->base);
			uri(out, &lc->targets[0]);
			fprintf(out, "; -- route %s -> peer %s\n", r->pattern,
				peer_name(lc, r->peer));
		}
		if (r->kind == KIND_WILD) {
			fprintf(out, "\t[\"*.%s\"] = ", r->base);
			uri(out, &lc->targets[0]);
			fputs("; -- one level only: deeper names need the catch-all or DNS\n", out);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == KIND_DEFAULT && !v[i].own) {
			fputs("\t[\"*\"] = ", out);
			uri(out, &lc->targets[0]);
			fprintf(out, "; -- default route -> peer %s\n", peer_name(lc, v[i].peer));
		}
	fputs("}\n", out);
	if (lc->ntargets > 1) {
		fputs("-- The module takes one address per domain; the other relay instances\n"
		      "-- (reached through the DNS records) are:",
		      out);
		for (size_t k = 1; k < lc->ntargets; k++) {
			fputc(' ', out);
			uri(out, &lc->targets[k]);
		}
		fputc('\n', out);
	}
	fprintf(out, "s2s_require_encryption = %s\n",
		lc->cfg->tls_inbound == CFG_TLS_REQUIRED ? "true" : "false");
	if (ca != NULL) {
		fputs("-- The relay issues its certificates from this CA: trust it (global ssl\n"
		      "-- or the VirtualHost's, beside its certificate and key).\n"
		      "ssl = { cafile = ",
		      out);
		put_quoted(out, ca);
		fputs("; }\n", out);
	} else {
		fputs("-- No enclave CA in the relay config: the relay presents tls.certificate\n"
		      "-- (see the trust output); without a certificate for the domains it\n"
		      "-- carries, the leaf authenticates it by dialback.\n",
		      out);
	}
}

static void write_ejabberd(const struct leafconf *lc, const struct lc_route *v, size_t n, FILE *out)
{
	const char *ca = ca_path(lc);
	int v4 = 0, v6 = 0, have_default = 0, nserver = 0, nglob = 0;

	for (size_t k = 0; k < lc->ntargets; k++)
		*(lc->targets[k].v6 ? &v6 : &v4) = 1;
	for (size_t i = 0; i < n; i++) {
		if (v[i].own)
			continue;
		if (v[i].kind == KIND_DEFAULT)
			have_default = 1;
		else
			nserver++;
		if (v[i].kind == KIND_WILD)
			nglob++;
	}
	header(lc, out, "#", "ejabberd settings");
	fputs("# ejabberd has no static s2s routes: it finds the relay through DNS.\n"
	      "# Its SRV lookups use Erlang's resolver (ERL_INETRC), its A/AAAA lookups\n"
	      "# libc (/etc/resolv.conf): point both at a server holding this command's\n"
	      "# dnsmasq or BIND output. Merge these top-level options into ejabberd.yml.\n",
	      out);
	fprintf(out, "s2s_use_starttls: %s\n",
		lc->cfg->tls_inbound == CFG_TLS_REQUIRED ? "required" : "optional");
	fputs("outgoing_s2s_families:\n", out);
	if (v4)
		fputs("  - ipv4\n", out);
	if (v6)
		fputs("  - ipv6\n", out);
	fprintf(out,
		"# port used where no SRV record answers (wildcard and default routes)\n"
		"outgoing_s2s_port: %d\n",
		lc->targets[0].port);
	if (ca != NULL) {
		fputs("# the relay issues its certificates from this CA\nca_file: ", out);
		put_quoted(out, ca);
		fputc('\n', out);
	} else {
		fputs("# no enclave CA in the relay config: see the trust output; without a\n"
		      "# certificate for the domains it carries the relay uses dialback\n"
		      "# (mod_s2s_dialback must stay enabled)\n",
		      out);
	}
	if (have_default) {
		fputs("# the relay has a default route: s2s to any domain goes through it,\n"
		      "# so no s2s access list follows from the routes\n",
		      out);
		return;
	}
	fputs("# s2s only with the domains the relay routes (merge into acl and\n"
	      "# access_rules if you have them)\n"
	      "acl:\n"
	      "  xtrunk_routed:\n",
	      out);
	if (nserver > 0) {
		fputs("    server:\n", out);
		for (size_t i = 0; i < n; i++)
			if (!v[i].own && v[i].kind != KIND_DEFAULT &&
			    (v[i].kind == KIND_EXACT || !has_exact(v, i, v[i].base)))
				fprintf(out, "      - \"%s\"\n", v[i].base);
	}
	if (nglob > 0) {
		fputs("    server_glob:\n", out);
		for (size_t i = 0; i < n; i++)
			if (!v[i].own && v[i].kind == KIND_WILD)
				fprintf(out, "      - \"*.%s\"\n", v[i].base);
	}
	fputs("access_rules:\n"
	      "  xtrunk_s2s:\n"
	      "    allow: xtrunk_routed\n"
	      "s2s_access: xtrunk_s2s\n",
	      out);
}

/* The SHA-256 public-key pin and the issuer of the first certificate in
 * file; 0 or -1 (why in err). */
static int cert_facts(const char *file, char *pin, size_t pinsz, char *issuer, size_t issz,
		      char *err, size_t errlen)
{
	gnutls_datum_t pem = {NULL, 0}, spki = {NULL, 0}, b64 = {NULL, 0}, dn = {NULL, 0};
	unsigned char d[32];
	gnutls_datum_t digest = {d, sizeof(d)};
	gnutls_x509_crt_t crt = NULL;
	gnutls_pubkey_t pub = NULL;
	int rc, ret = -1;

	if ((rc = gnutls_load_file(file, &pem)) < 0 || (rc = gnutls_x509_crt_init(&crt)) < 0 ||
	    (rc = gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM)) < 0 ||
	    (rc = gnutls_pubkey_init(&pub)) < 0 ||
	    (rc = gnutls_pubkey_import_x509(pub, crt, 0)) < 0 ||
	    (rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki)) < 0 ||
	    (rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, d)) < 0 ||
	    (rc = gnutls_base64_encode2(&digest, &b64)) < 0) {
		snprintf(err, errlen, "%s: %s", file, gnutls_strerror(rc));
		goto out;
	}
	snprintf(pin, pinsz, "sha256//%.*s", (int)b64.size, (const char *)b64.data);
	if (gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) >= 0)
		snprintf(issuer, issz, "%.*s", (int)dn.size, (const char *)dn.data);
	else
		snprintf(issuer, issz, "?");
	ret = 0;
out:
	gnutls_free(dn.data);
	gnutls_free(b64.data);
	gnutls_free(spki.data);
	if (pub != NULL)
		gnutls_pubkey_deinit(pub);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	gnutls_free(pem.data);
	return ret;
}

static void write_trust(const struct leafconf *lc, FILE *out)
{
	const struct config *cfg = lc->cfg;
	const struct cfg_peer *p = &cfg->peers[lc->leaf_peer];
	const char *ca = ca_path(lc);
	char pin[128], issuer[512], err[512];

	header(lc, out, "#", "trust material");
	fputs("# key=value; what the leaf must trust to authenticate the relay, and what\n"
	      "# the relay expects from the leaf.\n",
	      out);
	if (ca != NULL)
		fprintf(out,
			"# the relay issues per-domain certificates from its enclave CA:\n"
			"# Prosody ssl.cafile, ejabberd ca_file\n"
			"ca_file=%s\n",
			ca);
	if (cfg->tls_certificate != NULL) {
		fprintf(out,
			"# the relay's own certificate (for domains it holds no other one for)\n"
			"relay_certificate=%s\n",
			cfg->tls_certificate);
		if (cert_facts(cfg->tls_certificate, pin, sizeof(pin), issuer, sizeof(issuer), err,
			       sizeof(err)) == 0)
			fprintf(out, "relay_certificate_issuer=%s\nrelay_certificate_pin=%s\n",
				issuer, pin);
		else
			fprintf(out, "# cannot read it here: %s\n", err);
	}
	if (cfg->tls_store != NULL)
		fprintf(out,
			"# the relay also presents the certificates of this directory: trust "
			"their issuers\nrelay_store=%s\n",
			cfg->tls_store);
	if (ca == NULL && cfg->tls_certificate == NULL && cfg->tls_store == NULL)
		fputs("# the relay names no certificate here\n", out);
	fprintf(out, "# the relay's peer for the leaf: %s\nleaf_peer=%s\n", p->name, p->name);
	if (p->ca_file != NULL)
		fprintf(out, "# the leaf's certificate must chain to\nleaf_ca_file=%s\n",
			p->ca_file);
	else if (cfg->tls_trust != NULL)
		fprintf(out, "# the leaf's certificate must chain to\nleaf_ca_file=%s\n",
			cfg->tls_trust);
	fprintf(out, "leaf_identity=%s\n", p->identity != NULL ? p->identity : "(the stream's to)");
	for (size_t i = 0; i < p->npins; i++) {
		gnutls_datum_t d = {p->pins[i], CFG_PIN_LEN}, b64 = {NULL, 0};

		if (gnutls_base64_encode2(&d, &b64) == 0)
			fprintf(out, "leaf_pin=sha256//%.*s\n", (int)b64.size,
				(const char *)b64.data);
		gnutls_free(b64.data);
	}
	fprintf(out, "leaf_auth=%s\n",
		p->auth == CFG_AUTH_CERTIFICATE
		    ? "certificate (dialback refused: the leaf needs a certificate for its "
		      "domain)"
		    : "certificate or dialback");
	fprintf(out, "leaf_tls=%s\n",
		p->tls == CFG_TLS_REQUIRED   ? "required"
		: p->tls == CFG_TLS_OPTIONAL ? "optional"
					     : "none");
}

int leafconf_write(const struct leafconf *lc, enum leafconf_format f, FILE *out)
{
	struct lc_route *v = NULL;
	size_t n = 0;
	int rc;

	if (lc->ntargets == 0)
		return -EINVAL;
	if ((rc = collect(lc, &v, &n)) < 0)
		return rc;
	switch (f) {
	case LEAFCONF_DNSMASQ:
		write_dnsmasq(lc, v, n, out);
		break;
	case LEAFCONF_BIND:
		write_bind(lc, v, n, out);
		break;
	case LEAFCONF_PROSODY:
		write_prosody(lc, v, n, out);
		break;
	case LEAFCONF_EJABBERD:
		write_ejabberd(lc, v, n, out);
		break;
	case LEAFCONF_TRUST:
		write_trust(lc, out);
		break;
	default:
		rc = -EINVAL;
	}
	free(v);
	if (rc == 0 && ferror(out))
		rc = -EIO;
	return rc;
}

/* ---------------------------------------------------------------- command */

static const char leaf_usage[] = "usage: xtrunkctl leaf-config [-f RELAY.conf] --leaf DOMAIN\n"
				 "           [--format dnsmasq|bind|prosody|ejabberd|trust|all]\n"
				 "           [--relay-address [NAME=]ADDRESS]... [-o DIR]\n";

static int lc_usage(const char *why)
{
	fprintf(stderr, "xtrunkctl: %s\n%s", why, leaf_usage);
	return 2;
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen)
{
	char buf[8192];
	int in = open(from, O_RDONLY | O_CLOEXEC), o = -1, ret = -1;
	ssize_t r;

	if (in < 0) {
		snprintf(err, errlen, "%s: %s", from, strerror(errno));
		return -1;
	}
	o = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (o < 0) {
		snprintf(err, errlen, "%s: %s", to, strerror(errno));
		goto out;
	}
	while ((r = read(in, buf, sizeof(buf))) > 0)
		if (write(o, buf, (size_t)r) != r) {
			snprintf(err, errlen, "%s: %s", to, strerror(errno));
			goto out;
		}
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", from, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (o >= 0 && close(o) < 0 && ret == 0) {
		snprintf(err, errlen, "%s: %s", to, strerror(errno));
		ret = -1;
	}
	close(in);
	return ret;
}

int leafconf_main(int argc, char **argv)
{
	enum { OPT_LEAF = 256, OPT_FORMAT, OPT_RELAY };
	static const struct option opts[] = {{"leaf", required_argument, NULL, OPT_LEAF},
					     {"format", required_argument, NULL, OPT_FORMAT},
					     {"relay-address", required_argument, NULL, OPT_RELAY},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *path = DEFAULT_CONFIG, *leaf = NULL, *dir = NULL;
	const char *relays[LEAFCONF_TARGETS_MAX];
	size_t nrelays = 0;
	enum leafconf_format fmt = LEAFCONF_ALL;
	struct config *cfg = NULL;
	struct leafconf lc;
	char err[2 * PATH_MAX + 256], ca_copy[PATH_MAX];
	int c, status = 1;

	while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			path = optarg;
			break;
		case 'o':
			dir = optarg;
			break;
		case OPT_LEAF:
			leaf = optarg;
			break;
		case OPT_FORMAT:
			fmt = leafconf_format_parse(optarg);
			if (fmt == 0)
				return lc_usage("--format: dnsmasq, bind, prosody, ejabberd, trust "
						"or all");
			break;
		case OPT_RELAY:
			if (nrelays >= LEAFCONF_TARGETS_MAX)
				return lc_usage("too many --relay-address");
			relays[nrelays++] = optarg;
			break;
		case 'h':
			fputs(leaf_usage, stdout);
			return 0;
		default:
			return lc_usage("unknown option");
		}
	}
	if (leaf == NULL)
		return lc_usage("leaf-config needs --leaf DOMAIN");
	if (optind != argc)
		return lc_usage("leaf-config takes no operands");
	if (config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (leafconf_init(&lc, cfg, leaf, err, sizeof(err)) < 0)
		goto fail;
	for (size_t i = 0; i < nrelays; i++)
		if (leafconf_add_target(&lc, relays[i], err, sizeof(err)) < 0)
			goto fail;
	if (nrelays == 0 && leafconf_default_target(&lc, err, sizeof(err)) < 0)
		goto fail;
	if (dir != NULL) {
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			snprintf(err, sizeof(err), "%s: cannot create the directory: %s", dir,
				 strerror(errno));
			goto fail;
		}
		if (cfg->tls_ca_certificate != NULL && (fmt & ~LEAFCONF_BIND & ~LEAFCONF_DNSMASQ)) {
			if (snprintf(ca_copy, sizeof(ca_copy), "%s/%s", dir, CA_COPY_NAME) >=
			    (int)sizeof(ca_copy)) {
				snprintf(err, sizeof(err), "%s: path too long", dir);
				goto fail;
			}
			if (copy_file(cfg->tls_ca_certificate, ca_copy, err, sizeof(err)) < 0)
				goto fail;
			lc.ca_copy = ca_copy;
			printf("wrote %s (the enclave CA: the leaf's trust anchor)\n", ca_copy);
		}
	}
	for (size_t i = 0; i < NFORMATS; i++) {
		char file[PATH_MAX];
		FILE *out = stdout;
		int rc;

		if (!(fmt & formats[i].f))
			continue;
		if (dir != NULL) {
			if (snprintf(file, sizeof(file), "%s/%s", dir, formats[i].file) >=
			    (int)sizeof(file)) {
				snprintf(err, sizeof(err), "%s: path too long", dir);
				goto fail;
			}
			out = fopen(file, "w");
			if (out == NULL) {
				snprintf(err, sizeof(err), "%s: %s", file, strerror(errno));
				goto fail;
			}
		} else if (fmt == LEAFCONF_ALL && i > 0) {
			fputc('\n', stdout);
		}
		rc = leafconf_write(&lc, formats[i].f, out);
		if (out != stdout && fclose(out) != 0 && rc == 0)
			rc = -errno;
		if (rc < 0) {
			snprintf(err, sizeof(err), "%s: %s", dir ? file : "stdout", strerror(-rc));
			goto fail;
		}
		if (dir != NULL)
			printf("wrote %s\n", file);
	}
	status = 0;
	goto out;
fail:
	fprintf(stderr, "xtrunkctl: %s\n", err);
out:
	config_unref(cfg);
	return status;
}
