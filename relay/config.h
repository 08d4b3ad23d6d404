/* config: the daemon's configuration, loaded from a libconfig file into an
 * immutable, validated, refcounted snapshot. Every error names the file,
 * the line and what to change. One key table (config_keys) drives parsing,
 * the -n config test and the man page check. */
#ifndef XT_CONFIG_H
#define XT_CONFIG_H

#include <stddef.h>

struct policy_set;

enum cfg_tls {
	CFG_TLS_REQUIRED = 0, /* STARTTLS must succeed (default) */
	CFG_TLS_OPTIONAL,     /* use it when offered */
	CFG_TLS_NONE	      /* never (lab use only) */
};

/* How the domains routed to a peer may authenticate. */
enum cfg_auth {
	CFG_AUTH_ANY = 0,    /* certificate (SASL EXTERNAL, XEP-0344) or dialback */
	CFG_AUTH_CERTIFICATE /* certificate only: dialback is refused, both ways */
};

#define CFG_PIN_LEN 32 /* SHA-256 of a SubjectPublicKeyInfo */

struct cfg_listen {
	char *address; /* owned, numeric IPv4 or IPv6 */
	int port;
	int direct_tls; /* XEP-0368: TLS from the first byte, no STARTTLS */
};

/* One address of a next hop; a peer may have several (peers.[].addresses). */
struct cfg_addr {
	char *host;   /* owned, numeric address or host name */
	int port;     /* default 5269 */
	int priority; /* lower is preferred (like SRV); ties keep file order */
};

struct cfg_peer {
	char *name;		/* owned, unique */
	char *host;		/* borrowed from addrs[0]: the preferred address */
	int port;		/* addrs[0].port */
	struct cfg_addr *addrs; /* owned array, naddrs >= 1, sorted by priority */
	size_t naddrs;
	int trunk; /* the peer is another xtrunkd: hop counts travel on its streams */
	/* owned or NULL: domain patterns the trunk peer may send from (the
	 * pairs it asks for are answered from here); NULL: the domains whose
	 * route leads to the peer */
	struct route_table *authorize;
	enum cfg_tls tls;
	char *ca_file; /* owned or NULL: verify the next hop's chain against it */
	char
	    *identity; /* owned or NULL: expected certificate identity (default: the stream 'to') */
	enum cfg_auth auth;
	unsigned char (*pins)[CFG_PIN_LEN]; /* owned array or NULL */
	size_t npins;
	int allow_cn;	/* accept the legacy CN-ID */
	int direct_tls; /* XEP-0368: connect with TLS from the first byte */
	int line;
};

struct config {
	char *path;		   /* owned */
	struct cfg_listen *listen; /* owned array */
	size_t nlisten;
	char *dialback_secret; /* owned; from dialback_secret or dialback_secret_file */
	char *relay_name; /* owned or NULL: this relay's own name on trunk links (normalised) */
	char *tls_certificate;	     /* owned, PEM path: presented on inbound streams */
	char *tls_key;		     /* owned, PEM path */
	enum cfg_tls tls_inbound;    /* required (default) or optional for inbound streams */
	char *tls_store;	     /* owned or NULL: directory of per-domain certificates */
	char *tls_ca_certificate;    /* owned or NULL: enclave CA issuing on the fly */
	char *tls_ca_key;	     /* owned or NULL */
	unsigned tls_issue_lifetime; /* seconds, default 86400 */
	char *tls_trust;	     /* owned or NULL: anchors for peers' certificates */
	char *tls_priority;	     /* owned or NULL: GnuTLS priority string */
	struct cfg_peer *peers;	     /* owned array */
	size_t npeers;
	struct route_table *routes;	  /* owned; a route's line is negative when it comes from
					     routes_file (-line of that file) */
	char *routes_file;		  /* owned or NULL: the routes_file path */
	unsigned connect_timeout;	  /* seconds, default 10 */
	unsigned handshake_timeout;	  /* seconds, default 30: TCP connect to authenticated */
	unsigned idle_timeout;		  /* seconds, default 600 */
	size_t queue_max_stanzas;	  /* per outbound stream, default 1000 */
	size_t queue_max_bytes;		  /* per outbound stream, default 4 MiB */
	size_t max_stanza_size;		  /* default 262144 */
	unsigned connections_per_address; /* inbound streams from one address, default 100 */
	unsigned max_depth;		  /* XML nesting below the stream, default 64 */
	unsigned max_attributes;	  /* attributes in one tag, default 64 */
	unsigned max_name_length;	  /* element/attribute name bytes, default 256 */
	unsigned max_attribute_length;	  /* attribute value bytes as written, default 8192 */
	unsigned backpressure_timeout;	  /* s a sender may wait for a slow next hop, 0 = off */
	unsigned keepalive;		  /* seconds between whitespace keepalives, 0 = off */
	unsigned failback;		  /* seconds between tries of a preferred address */
	unsigned max_hops;		  /* relays a stanza may cross between trunk peers */
	char *warnings;	       /* owned or NULL: "FILE:LINE: warning: ...\n" lines (config test) */
	char *control_socket;  /* owned or NULL: control.socket (NULL: the default,
				  opened if possible) */
	char *metrics_address; /* owned or NULL: no metrics listener */
	int metrics_port;      /* default 9269 */
	unsigned workers;      /* worker processes, default 1 (no supervisor) */
	int log_level;	       /* syslog level from log.level, -1 = not set (info) */
	unsigned log_traces;   /* LOG_TRACE_* bits from log.traces */
	struct policy_set *policies; /* owned: policies, labels, audit (policy/) */
	int refs;
};

/* One row per configuration key: used by the loader, the -k listing and
 * the man page check. */
struct config_key {
	const char *path;   /* e.g. "peers.[].port" */
	const char *type;   /* "string", "int", "bool", "list", "group" */
	const char *dflt;   /* default as written in the man page, or "required" */
	const char *reload; /* "yes", "no" */
};
extern const struct config_key config_keys[];

/* Loads and validates. On failure returns -EINVAL (or -errno) and writes
 * "FILE:LINE: problem; fix" into err. On success *out has refs == 1. */
int config_load(const char *path, struct config **out, char *err, size_t errlen);
struct config *config_ref(struct config *c);
/* Accepts NULL. */
void config_unref(struct config *c);
/* Index of the peer named name, or -1. */
int config_peer_index(const struct config *c, const char *name);
/* A peer that gets one multiplexed trunk link (XEP-0288) rather than a
 * stream per domain pair: trunk = true, its identity set, and relay_name. */
int config_peer_is_link(const struct config *c, int peer);
/* Index of the trunk peer whose identity is name (normalised), or -1. */
int config_trunk_peer(const struct config *c, const char *name);

#endif
