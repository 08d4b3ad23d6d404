/* leafconf: xtrunkctl leaf-config. From the relay's routes, the
 * configuration one leaf (a server behind this relay) needs so that every
 * other routed domain reaches it through the relay: DNS (dnsmasq lines and
 * a BIND zone fragment), a Prosody snippet (mod_s2sout_override), ejabberd
 * settings, and the trust material. */
#ifndef XT_LEAFCONF_H
#define XT_LEAFCONF_H

#include <stddef.h>
#include <stdio.h>

#include "domain.h"

struct config;

#define LEAFCONF_NAME_MAX 256
#define LEAFCONF_ADDR_MAX 46 /* INET6_ADDRSTRLEN */
#define LEAFCONF_TARGETS_MAX 16

enum leafconf_format {
	LEAFCONF_DNSMASQ = 1,
	LEAFCONF_BIND = 2,
	LEAFCONF_PROSODY = 4,
	LEAFCONF_EJABBERD = 8,
	LEAFCONF_TRUST = 16,
	LEAFCONF_ALL = 31
};

/* Where the leaf reaches the relay: one SRV target per relay instance. */
struct leafconf_target {
	char name[LEAFCONF_NAME_MAX]; /* SRV target host name */
	char addr[LEAFCONF_ADDR_MAX]; /* numeric */
	int v6;
	int port;     /* plain (STARTTLS) port */
	int tls_port; /* XEP-0368 direct TLS port, 0 if none */
};

struct leafconf {
	const struct config *cfg; /* borrowed */
	char leaf[DOMAIN_MAX + 1];
	int leaf_peer; /* index of the peer the leaf's domain is routed to */
	struct leafconf_target targets[LEAFCONF_TARGETS_MAX];
	size_t ntargets;
	const char *ca_copy; /* borrowed or NULL: where the enclave CA was copied
				for the leaf (else the relay's own path is named) */
};

/* Parses "FORMAT" (dnsmasq, bind, prosody, ejabberd, trust, all); 0 if
 * unknown. */
enum leafconf_format leafconf_format_parse(const char *s);

/* Sets up lc for leaf (a domain name) behind the relay of cfg: the leaf
 * must have a route of its own (not only the default). Returns 0, or
 * -EINVAL with a message in err. */
int leafconf_init(struct leafconf *lc, const struct config *cfg, const char *leaf, char *err,
		  size_t errlen);

/* Adds a relay target from "[NAME=]ADDR" (default NAME relayN.xtrunk.internal);
 * the ports come from cfg's listen entries. Returns 0 or -EINVAL/-ENOSPC
 * with a message. */
int leafconf_add_target(struct leafconf *lc, const char *spec, char *err, size_t errlen);

/* Without --relay-address: the relay's only non-wildcard listen address.
 * Returns 0 or -EINVAL with a message. */
int leafconf_default_target(struct leafconf *lc, char *err, size_t errlen);

/* Writes one format (not LEAFCONF_ALL) to out. Returns 0 or -errno. */
int leafconf_write(const struct leafconf *lc, enum leafconf_format f, FILE *out);

/* The leaf-config command; argv[0] is the command name. Exit status. */
int leafconf_main(int argc, char **argv);

#endif
