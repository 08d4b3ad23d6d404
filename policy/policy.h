/* policy: the peering-control decision for one stanza (sans-I/O). Named
 * policies of ordered rules (first match wins, every decision names its
 * rule) attached to routes and to peers (inbound and outbound), XEP-0258
 * label checks against the next hop's clearance with rewriting through the
 * equivalence table, and token-bucket rate limits whose state lives in a
 * struct policy_state the caller keeps across reloads. Time is passed in. */
#ifndef XT_POLICY_H
#define XT_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "label.h"

struct xs_stanza;

enum pol_action { POL_ALLOW = 0, POL_REJECT, POL_RATE };

/* What the rule's label condition asks about the stanza's label, judged
 * against the next hop's clearance. */
enum pol_label {
	POL_LABEL_ANY = 0,
	POL_LABEL_PRESENT, /* a securitylabel element, understood or not */
	POL_LABEL_ABSENT,  /* none (a default label may still apply) */
	POL_LABEL_INVALID, /* present but not understood */
	POL_LABEL_WITHIN,  /* effective label within the next hop's clearance */
	POL_LABEL_OVER	   /* not within it (or not understood) */
};

#define POL_KIND_MESSAGE 1u
#define POL_KIND_PRESENCE 2u
#define POL_KIND_IQ 4u

/* How the sending domain authenticated on the inbound hop. */
#define POL_AUTH_DIALBACK 1u
#define POL_AUTH_CERTIFICATE 2u

struct pol_rule {
	char *name;	   /* owned */
	char **from, **to; /* owned arrays of owned normalised patterns */
	size_t nfrom, nto;
	unsigned kinds; /* POL_KIND_* bits, 0 = any */
	char **types;	/* owned; "none" matches a missing type */
	size_t ntypes;
	char **namespaces; /* owned: any of these on a child of the stanza */
	size_t nnamespaces;
	size_t larger_than; /* 0 = any size */
	unsigned auth;	    /* POL_AUTH_* bits that match, 0 = any */
	int tls;	    /* -1 any, 0 without TLS, 1 with */
	enum pol_label label;
	enum pol_action action;
	const char *errtype;  /* static: "cancel" or "modify" (reject) */
	const char *exceeded; /* static: condition when a rate is exceeded */
	unsigned rate, burst; /* stanzas per second, bucket size */
	int per_domain;	      /* rate per sending domain, else per route */
	int line;
};

struct pol_policy {
	char *name;		/* owned */
	struct pol_rule *rules; /* owned array */
	size_t nrules;
	enum pol_action dflt; /* POL_ALLOW or POL_REJECT when no rule matches */
	int line;
};

struct pol_peer {
	int policy_in, policy_out; /* index in policies, -1 none */
	int has_clearance;
	struct label_ref clearance;
	int has_default;
	struct label_ref default_label; /* for unlabelled stanzas from this peer */
};

struct pol_route {
	char *pattern; /* owned, normalised as in struct route */
	int policy;    /* -1 none */
	int has_default;
	struct label_ref default_label;
};

struct policy_set {
	struct pol_policy *policies; /* owned array */
	size_t npolicies;
	struct pol_peer *peers; /* owned array, one per config peer, same order */
	size_t npeers;
	struct pol_route *routes; /* owned array sorted by pattern: routes with settings */
	size_t nroutes;
	struct label_catalogue *labels; /* owned or NULL */
	char *audit_file;		/* owned or NULL */
	int audit_syslog;
	int audit_passes;
	int active; /* some peer or route has a policy or a clearance */
};

/* Accepts NULL. */
void policy_set_free(struct policy_set *ps);
/* 1 if policy_eval can refuse or rewrite anything under ps. */
int policy_active(const struct policy_set *ps);
/* Point the audit log (policy/audit.c) where ps says (NULL: nowhere). */
void policy_audit_configure(const struct policy_set *ps);
/* Settings of the route with this (normalised) pattern, or NULL. */
const struct pol_route *policy_route(const struct policy_set *ps, const char *pattern);
/* Index of the named policy or -1. */
int policy_find(const struct policy_set *ps, const char *name);
/* 1 if the normalised domain matches the normalised pattern ("a.example",
 * "*.example" = example and its subdomains, "*"). */
int policy_domain_match(const char *pattern, const char *domain);

/* Rate-limit buckets, kept by the caller across config reloads. */
struct policy_state;
struct policy_state *policy_state_new(void);
void policy_state_free(struct policy_state *st);

struct policy_input {
	const struct xs_stanza *st;    /* borrowed */
	const char *from_dom, *to_dom; /* normalised */
	const char *route;	       /* pattern of the route taken, or NULL */
	int in_peer, out_peer;	       /* peer indexes, -1 unknown */
	int tls;		       /* the inbound hop runs TLS */
	unsigned auth;		       /* POL_AUTH_* of the sending domain */
};

struct policy_decision {
	int reject;	       /* 1: bounce (or drop an error) */
	const char *policy;    /* borrowed from the set: the deciding policy, or "-" */
	const char *rule;      /* borrowed or static: the deciding rule */
	const char *reason;    /* static */
	const char *condition; /* static: "policy-violation", "resource-constraint" */
	const char *errtype;   /* static: "cancel", "modify", "wait" */
	char label[128];       /* the label judged, "" when none */
	char *bytes;	       /* owned (free()) or NULL: the stanza with its label rewritten */
	size_t len;
};

/* Decide for in. ps may be NULL (everything passes). Returns 0, or -ENOMEM
 * (then the decision is a rejection). */
int policy_eval(const struct policy_set *ps, struct policy_state *state,
		const struct policy_input *in, uint64_t now_ms, struct policy_decision *out);

#endif
