/* policy_config: the policy part of the configuration. Runs after the
 * config loader walked the file against config_keys[], so every setting
 * present is a known key of the right type and in range; what is checked
 * here is what the table cannot say: names that must exist or be unique,
 * enumerated values, OIDs, domain patterns, label names against the
 * catalogue, classification order. The first error wins. */
#include "policy_config.h"

#include "domain.h"
#include "label.h"
#include "policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pl {
	const char *path; /* borrowed */
	char *err;	  /* borrowed */
	size_t errlen;
	struct policy_set *ps; /* owned until handed over */
};

static void fail(struct pl *pl, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct pl *pl, const config_setting_t *s, const char *fmt, ...)
{
	const char *file = s ? config_setting_source_file(s) : NULL;
	int line = s ? (int)config_setting_source_line(s) : 0;
	va_list ap;
	int n;

	if (!pl->err || pl->errlen == 0)
		return;
	n = snprintf(pl->err, pl->errlen, "%s:%d: ", file ? file : pl->path, line > 0 ? line : 1);
	if (n < 0 || (size_t)n >= pl->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(pl->err + n, pl->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static const char *str_of(const config_setting_t *g, const char *name)
{
	const char *v = NULL;

	if (g)
		config_setting_lookup_string(g, name, &v);
	return v;
}

static config_setting_t *member(const config_setting_t *g, const char *name)
{
	return g ? config_setting_get_member(g, name) : NULL;
}

static int sdup(const char *v, char **out)
{
	*out = v ? strdup(v) : NULL;
	return v && !*out ? -ENOMEM : 0;
}

/* A required, non-empty string member. */
static int need_str(struct pl *pl, const config_setting_t *g, const char *name, const char *what,
		    const char **out)
{
	const char *v = str_of(g, name);

	if (v == NULL || *v == '\0') {
		fail(pl, v ? member(g, name) : g, "%s has %s %s; add %s = \"...\";", what,
		     v ? "an empty" : "no", name, name);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* "*", "*.domain" or "domain", normalised as route patterns are. */
static int norm_pattern(const char *in, char **out)
{
	char dom[DOMAIN_MAX + 3];
	int wild = in[0] == '*' && in[1] == '.';
	int n;

	if (strcmp(in, "*") == 0)
		return sdup("*", out);
	n = domain_normalise(in + (wild ? 2 : 0), strlen(in + (wild ? 2 : 0)), dom + 2,
			     sizeof(dom) - 2);
	if (n < 0)
		return -EINVAL;
	if (wild) {
		dom[0] = '*';
		dom[1] = '.';
		return sdup(dom, out);
	}
	return sdup(dom + 2, out);
}

static int valid_oid(const char *oid)
{
	struct ess_label l;
	unsigned char der[LABEL_DER_MAX];
	size_t n;

	/* libtasn1 decides what an OID is: encode one label with it */
	memset(&l, 0, sizeof(l));
	if (strlen(oid) >= sizeof(l.policy) || strspn(oid, "0123456789.") != strlen(oid))
		return 0;
	snprintf(l.policy, sizeof(l.policy), "%s", oid);
	return ess_encode(&l, der, sizeof(der), &n) == 0;
}

/* ---- audit ---------------------------------------------------------- */

static int load_audit(struct pl *pl, const config_setting_t *root)
{
	config_setting_t *a = member(root, "audit"), *s;

	if (a == NULL)
		return 0;
	if ((s = member(a, "syslog")))
		pl->ps->audit_syslog = config_setting_get_bool(s);
	if ((s = member(a, "passes")))
		pl->ps->audit_passes = config_setting_get_bool(s);
	if ((s = member(a, "file"))) {
		const char *v = config_setting_get_string(s);

		if (pl->ps->audit_syslog) {
			fail(pl, s, "audit.file and audit.syslog = true are both set; keep one");
			return -EINVAL;
		}
		if (*v != '/') {
			fail(pl, s,
			     "audit.file \"%s\" is not an absolute path; write e.g. file = "
			     "\"/var/log/xtrunk/audit.log\";",
			     v);
			return -EINVAL;
		}
		if (sdup(v, &pl->ps->audit_file) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* ---- security labels ------------------------------------------------ */

static int load_label_policy(struct pl *pl, const config_setting_t *e, struct label_policy *p)
{
	config_setting_t *cl = member(e, "classifications"), *ca = member(e, "categories");
	const char *name, *oid;
	int n, r;

	if ((r = need_str(pl, e, "name", "label policy", &name)) < 0 ||
	    (r = need_str(pl, e, "oid", "label policy", &oid)) < 0)
		return r;
	if (strchr(name, ':') || strchr(name, '+')) {
		fail(pl, member(e, "name"),
		     "label policy name \"%s\" contains ':' or '+'; use letters, digits and '-'",
		     name);
		return -EINVAL;
	}
	if (!valid_oid(oid)) {
		fail(pl, member(e, "oid"),
		     "oid \"%s\" is not an object identifier; write it dotted, e.g. oid = "
		     "\"1.3.6.1.4.1.99999.1\";",
		     oid);
		return -EINVAL;
	}
	if (sdup(name, &p->name) < 0 || sdup(oid, &p->oid) < 0)
		return -ENOMEM;
	n = cl ? config_setting_length(cl) : 0;
	if (n == 0) {
		fail(pl, cl ? cl : e,
		     "label policy \"%s\" has no classifications; add classifications = ( { name "
		     "= \"UNCLASSIFIED\"; value = 1; } );",
		     name);
		return -EINVAL;
	}
	p->classes = calloc((size_t)n, sizeof(*p->classes));
	if (p->classes == NULL)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *c = config_setting_get_elem(cl, (unsigned)i), *v;
		struct label_class *k = &p->classes[i];
		const char *cn;

		p->nclasses++;
		if ((r = need_str(pl, c, "name", "classification", &cn)) < 0)
			return r;
		if (strchr(cn, '+') || strchr(cn, ':')) {
			fail(pl, member(c, "name"),
			     "classification name \"%s\" contains ':' or '+'; use letters, digits "
			     "and '-'",
			     cn);
			return -EINVAL;
		}
		v = member(c, "value");
		if (v == NULL) {
			fail(pl, c,
			     "classification \"%s\" has no value; add value = 1; (the ESS "
			     "security-classification, 0 to 256)",
			     cn);
			return -EINVAL;
		}
		k->value = (long)config_setting_get_int64(v);
		if (i > 0 && k->value <= p->classes[i - 1].value) {
			fail(pl, v,
			     "classification \"%s\" has value %ld, not above \"%s\" (%ld); list "
			     "classifications from least to most sensitive with rising values",
			     cn, k->value, p->classes[i - 1].name, p->classes[i - 1].value);
			return -EINVAL;
		}
		for (int j = 0; j < i; j++)
			if (strcmp(p->classes[j].name, cn) == 0) {
				fail(pl, c, "classification \"%s\" is listed twice; remove one",
				     cn);
				return -EINVAL;
			}
		if (sdup(cn, &k->name) < 0 || sdup(str_of(c, "marking"), &k->marking) < 0 ||
		    sdup(str_of(c, "fgcolor"), &k->fg) < 0 ||
		    sdup(str_of(c, "bgcolor"), &k->bg) < 0)
			return -ENOMEM;
	}
	n = ca ? config_setting_length(ca) : 0;
	if (n > LABEL_CAT_POLICY) {
		fail(pl, ca, "label policy \"%s\" has %d categories; at most %d are supported",
		     name, n, LABEL_CAT_POLICY);
		return -EINVAL;
	}
	p->cats = calloc(n > 0 ? (size_t)n : 1, sizeof(*p->cats));
	if (p->cats == NULL)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *c = config_setting_get_elem(ca, (unsigned)i);
		struct label_category *k = &p->cats[i];
		const char *cn, *type, *value;

		p->ncats++;
		if ((r = need_str(pl, c, "name", "category", &cn)) < 0 ||
		    (r = need_str(pl, c, "type", "category", &type)) < 0)
			return r;
		if (strchr(cn, '+') || strchr(cn, ':')) {
			fail(
			    pl, member(c, "name"),
			    "category name \"%s\" contains ':' or '+'; use letters, digits and '-'",
			    cn);
			return -EINVAL;
		}
		if (!valid_oid(type)) {
			fail(pl, member(c, "type"),
			     "category type \"%s\" is not an object identifier; write it dotted",
			     type);
			return -EINVAL;
		}
		value = str_of(c, "value") ? str_of(c, "value") : cn;
		if (ess_utf8_value(value, k->value, sizeof(k->value), &k->value_len) < 0) {
			fail(pl, c, "category value \"%.40s\" is too long; keep it under %d bytes",
			     value, LABEL_CAT_DER - 4);
			return -EINVAL;
		}
		for (int j = 0; j < i; j++)
			if (strcmp(p->cats[j].name, cn) == 0) {
				fail(pl, c, "category \"%s\" is listed twice; remove one", cn);
				return -EINVAL;
			}
		if (sdup(cn, &k->name) < 0 || sdup(type, &k->type) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int parse_label(struct pl *pl, const config_setting_t *s, struct label_ref *out)
{
	const char *v = config_setting_get_string(s);

	if (pl->ps->labels == NULL) {
		fail(pl, s,
		     "%s = \"%s\" names a label but security_labels defines no label policy; add "
		     "security_labels = { policies = ( ... ); };",
		     config_setting_name(s), v);
		return -EINVAL;
	}
	if (label_ref_parse(pl->ps->labels, v, out) < 0) {
		fail(pl, s,
		     "%s = \"%s\" is not a label of the catalogue; write \"POLICY:CLASSIFICATION\" "
		     "or \"POLICY:CLASSIFICATION+CATEGORY\" with names from security_labels",
		     config_setting_name(s), v);
		return -EINVAL;
	}
	return 0;
}

static int load_labels(struct pl *pl, const config_setting_t *root)
{
	config_setting_t *sl = member(root, "security_labels");
	config_setting_t *l = member(sl, "policies"), *eq = member(sl, "equivalences");
	struct label_catalogue *c;
	int n = l ? config_setting_length(l) : 0, r;

	if (n == 0) {
		if (eq && config_setting_length(eq) > 0) {
			fail(pl, eq,
			     "equivalences need label policies; add security_labels.policies");
			return -EINVAL;
		}
		return 0;
	}
	c = pl->ps->labels = calloc(1, sizeof(*c));
	if (c == NULL || !(c->policies = calloc((size_t)n, sizeof(*c->policies))))
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);

		c->npolicies++;
		if ((r = load_label_policy(pl, e, &c->policies[i])) < 0)
			return r;
		for (int j = 0; j < i; j++)
			if (strcmp(c->policies[j].name, c->policies[i].name) == 0 ||
			    strcmp(c->policies[j].oid, c->policies[i].oid) == 0) {
				fail(pl, e,
				     "label policy \"%s\" repeats the name or oid of \"%s\"; give "
				     "each its own",
				     c->policies[i].name, c->policies[j].name);
				return -EINVAL;
			}
	}
	n = eq ? config_setting_length(eq) : 0;
	c->equivs = calloc(n > 0 ? (size_t)n : 1, sizeof(*c->equivs));
	if (c->equivs == NULL)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(eq, (unsigned)i);
		config_setting_t *a = member(e, "a"), *b = member(e, "b");
		struct label_ref ra, rb;

		if (a == NULL || b == NULL) {
			fail(pl, e,
			     "equivalence has no %s; write { a = \"uk:SECRET\"; b = "
			     "\"nato:SECRET\"; "
			     "}",
			     a ? "b" : "a");
			return -EINVAL;
		}
		if ((r = parse_label(pl, a, &ra)) < 0 || (r = parse_label(pl, b, &rb)) < 0)
			return r;
		if (ra.cats || rb.cats || ra.policy == rb.policy) {
			fail(pl, e,
			     "an equivalence maps a classification of one label policy to one of "
			     "another, without categories (categories map by name); fix a or b");
			return -EINVAL;
		}
		c->equivs[c->nequivs++] =
		    (struct label_equiv){ra.policy, ra.rank, rb.policy, rb.rank};
	}
	return 0;
}

/* ---- policies ------------------------------------------------------- */

static int load_strs(struct pl *pl, const config_setting_t *r, const char *name, int patterns,
		     char ***out, size_t *nout)
{
	config_setting_t *s = member(r, name);
	int n = s ? config_setting_length(s) : 0;

	if (n == 0)
		return 0;
	*out = calloc((size_t)n, sizeof(**out));
	if (*out == NULL)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		const char *v = config_setting_get_string_elem(s, i);
		int rc = patterns ? norm_pattern(v, &(*out)[i]) : sdup(v, &(*out)[i]);

		if (rc == -EINVAL) {
			fail(pl, s,
			     "%s pattern \"%s\" is not valid; write \"a.example\", \"*.a.example\" "
			     "or \"*\"",
			     name, v);
			return rc;
		}
		if (rc < 0)
			return rc;
		(*nout)++;
	}
	return 0;
}

/* Index of v in names (NULL-terminated) or -1 with the error set. */
static int pick(struct pl *pl, const config_setting_t *s, const char *const *names)
{
	const char *v = config_setting_get_string(s);
	char list[160] = "";
	size_t used = 0;

	for (int i = 0; names[i]; i++) {
		if (strcmp(names[i], v) == 0)
			return i;
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s\"%s\"",
					 i ? ", " : "", names[i]);
		if (used >= sizeof(list))
			used = sizeof(list) - 1;
	}
	fail(pl, s, "%s = \"%s\" is not known; use one of %s", config_setting_name(s), v, list);
	return -1;
}

static int load_rule(struct pl *pl, const config_setting_t *e, struct pol_rule *r)
{
	static const char *const actions[] = {"allow", "reject", "rate_limit", NULL};
	static const char *const kinds[] = {"message", "presence", "iq", NULL};
	static const char *const auths[] = {"dialback", "certificate", NULL};
	static const char *const labels[] = {
	    "any", "present", "absent", "invalid", "within-clearance", "over-clearance", NULL};
	static const char *const errtypes[] = {"cancel", "modify", NULL};
	static const char *const pers[] = {"route", "domain", NULL};
	static const char *const exceeded[] = {"resource-constraint", "policy-violation", NULL};
	config_setting_t *s;
	const char *name;
	int rc, k;

	r->line = (int)config_setting_source_line(e);
	r->tls = -1;
	r->errtype = "cancel";
	r->exceeded = "resource-constraint";
	if ((rc = need_str(pl, e, "name", "rule", &name)) < 0)
		return rc;
	if (sdup(name, &r->name) < 0)
		return -ENOMEM;
	s = member(e, "action");
	if (s == NULL) {
		fail(pl, e,
		     "rule \"%s\" has no action; add action = \"allow\"; (or \"reject\", "
		     "\"rate_limit\")",
		     name);
		return -EINVAL;
	}
	if ((k = pick(pl, s, actions)) < 0)
		return -EINVAL;
	r->action = k == 0 ? POL_ALLOW : k == 1 ? POL_REJECT : POL_RATE;
	if ((rc = load_strs(pl, e, "from", 1, &r->from, &r->nfrom)) < 0 ||
	    (rc = load_strs(pl, e, "to", 1, &r->to, &r->nto)) < 0 ||
	    (rc = load_strs(pl, e, "types", 0, &r->types, &r->ntypes)) < 0 ||
	    (rc = load_strs(pl, e, "namespaces", 0, &r->namespaces, &r->nnamespaces)) < 0)
		return rc;
	if ((s = member(e, "kinds")))
		for (int i = 0; i < config_setting_length(s); i++) {
			const char *v = config_setting_get_string_elem(s, i);

			for (k = 0; kinds[k] && strcmp(kinds[k], v) != 0; k++)
				;
			if (!kinds[k]) {
				fail(pl, s,
				     "kinds entry \"%s\" is not a stanza kind; use \"message\", "
				     "\"presence\" or \"iq\"",
				     v);
				return -EINVAL;
			}
			r->kinds |= 1u << k;
		}
	if ((s = member(e, "larger_than")))
		r->larger_than = (size_t)config_setting_get_int64(s);
	if ((s = member(e, "auth"))) {
		if ((k = pick(pl, s, auths)) < 0)
			return -EINVAL;
		r->auth = k == 0 ? POL_AUTH_DIALBACK : POL_AUTH_CERTIFICATE;
	}
	if ((s = member(e, "tls")))
		r->tls = config_setting_get_bool(s);
	if ((s = member(e, "label"))) {
		if ((k = pick(pl, s, labels)) < 0)
			return -EINVAL;
		r->label = (enum pol_label)k;
	}
	if ((s = member(e, "error"))) {
		if ((k = pick(pl, s, errtypes)) < 0)
			return -EINVAL;
		if (r->action != POL_REJECT) {
			fail(pl, s, "error applies to action = \"reject\" only; remove it");
			return -EINVAL;
		}
		r->errtype = errtypes[k];
	}
	if (r->action == POL_RATE) {
		if ((s = member(e, "rate")) == NULL) {
			fail(pl, e,
			     "rule \"%s\" limits a rate but has none; add rate = 10; (stanzas per "
			     "second)",
			     name);
			return -EINVAL;
		}
		r->rate = (unsigned)config_setting_get_int64(s);
		r->burst = r->rate;
		if ((s = member(e, "burst")))
			r->burst = (unsigned)config_setting_get_int64(s);
		if ((s = member(e, "per"))) {
			if ((k = pick(pl, s, pers)) < 0)
				return -EINVAL;
			r->per_domain = k == 1;
		}
		if ((s = member(e, "exceeded"))) {
			if ((k = pick(pl, s, exceeded)) < 0)
				return -EINVAL;
			r->exceeded = exceeded[k];
		}
	} else {
		static const char *const rate_keys[] = {"rate", "burst", "per", "exceeded"};

		for (size_t i = 0; i < 4; i++)
			if ((s = member(e, rate_keys[i]))) {
				fail(pl, s,
				     "%s applies to action = \"rate_limit\" only; remove it or "
				     "change the action",
				     rate_keys[i]);
				return -EINVAL;
			}
	}
	return 0;
}

static int load_policies(struct pl *pl, const config_setting_t *root)
{
	config_setting_t *l = member(root, "policies");
	struct policy_set *ps = pl->ps;
	int n = l ? config_setting_length(l) : 0, rc;

	if (n == 0)
		return 0;
	ps->policies = calloc((size_t)n, sizeof(*ps->policies));
	if (ps->policies == NULL)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i), *s;
		config_setting_t *rules = member(e, "rules");
		struct pol_policy *p = &ps->policies[i];
		const char *name;
		int m = rules ? config_setting_length(rules) : 0;

		ps->npolicies++;
		p->line = (int)config_setting_source_line(e);
		p->dflt = POL_REJECT;
		if ((rc = need_str(pl, e, "name", "policy", &name)) < 0)
			return rc;
		if (policy_find(ps, name) >= 0) {
			fail(pl, e,
			     "policy \"%s\" is already defined; give each policy a unique name",
			     name);
			return -EINVAL;
		}
		if ((s = member(e, "default"))) {
			static const char *const d[] = {"reject", "allow", NULL};
			int k = pick(pl, s, d);

			if (k < 0)
				return -EINVAL;
			p->dflt = k == 0 ? POL_REJECT : POL_ALLOW;
		}
		p->rules = calloc(m > 0 ? (size_t)m : 1, sizeof(*p->rules));
		if (p->rules == NULL)
			return -ENOMEM;
		for (int j = 0; j < m; j++) {
			config_setting_t *re = config_setting_get_elem(rules, (unsigned)j);

			p->nrules++;
			if ((rc = load_rule(pl, re, &p->rules[j])) < 0)
				return rc;
			for (int q = 0; q < j; q++)
				if (strcmp(p->rules[q].name, p->rules[j].name) == 0) {
					fail(pl, re,
					     "rule \"%s\" is already in policy \"%s\" (line %d); "
					     "rule names identify decisions in the audit log: make "
					     "them unique",
					     p->rules[j].name, name, p->rules[q].line);
					return -EINVAL;
				}
		}
		/* the name last, so policy_find above never sees this entry */
		if (sdup(name, &p->name) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int policy_ref(struct pl *pl, const config_setting_t *g, const char *key, int *out)
{
	config_setting_t *s = member(g, key);
	const char *v;

	*out = -1;
	if (s == NULL)
		return 0;
	v = config_setting_get_string(s);
	*out = policy_find(pl->ps, v);
	if (*out < 0) {
		fail(pl, s, "%s = \"%s\" names no policy; define it in policies or fix the name",
		     key, v);
		return -EINVAL;
	}
	return 0;
}

static int load_peers(struct pl *pl, const config_setting_t *root, size_t npeers)
{
	config_setting_t *l = member(root, "peers");
	struct policy_set *ps = pl->ps;
	int rc;

	ps->peers = calloc(npeers > 0 ? npeers : 1, sizeof(*ps->peers));
	if (ps->peers == NULL)
		return -ENOMEM;
	ps->npeers = npeers;
	for (size_t i = 0; i < npeers; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i), *s;
		struct pol_peer *p = &ps->peers[i];

		if ((rc = policy_ref(pl, e, "policy_in", &p->policy_in)) < 0 ||
		    (rc = policy_ref(pl, e, "policy_out", &p->policy_out)) < 0)
			return rc;
		if ((s = member(e, "clearance"))) {
			if ((rc = parse_label(pl, s, &p->clearance)) < 0)
				return rc;
			p->has_clearance = 1;
		}
		if ((s = member(e, "default_label"))) {
			if ((rc = parse_label(pl, s, &p->default_label)) < 0)
				return rc;
			p->has_default = 1;
		}
	}
	return 0;
}

static int cmp_route(const void *a, const void *b)
{
	return strcmp(((const struct pol_route *)a)->pattern,
		      ((const struct pol_route *)b)->pattern);
}

static int load_routes(struct pl *pl, const config_setting_t *root)
{
	config_setting_t *l = member(root, "routes");
	struct policy_set *ps = pl->ps;
	int n = l ? config_setting_length(l) : 0, rc;

	ps->routes = calloc(n > 0 ? (size_t)n : 1, sizeof(*ps->routes));
	if (ps->routes == NULL)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i), *s;
		struct pol_route *r = &ps->routes[ps->nroutes];
		const char *dom = str_of(e, "domain");

		if (!member(e, "policy") && !member(e, "default_label"))
			continue;
		if (dom == NULL || norm_pattern(dom, &r->pattern) < 0)
			continue; /* the route loader has reported it */
		ps->nroutes++;
		if ((rc = policy_ref(pl, e, "policy", &r->policy)) < 0)
			return rc;
		if ((s = member(e, "default_label"))) {
			if ((rc = parse_label(pl, s, &r->default_label)) < 0)
				return rc;
			r->has_default = 1;
		}
	}
	qsort(ps->routes, ps->nroutes, sizeof(*ps->routes), cmp_route);
	return 0;
}

int policy_set_load(const config_setting_t *root, const char *path, size_t npeers,
		    struct policy_set **out, char *err, size_t errlen)
{
	struct pl pl = {path, err, errlen, NULL};
	int rc;

	*out = NULL;
	pl.ps = calloc(1, sizeof(*pl.ps));
	if (pl.ps == NULL)
		return -ENOMEM;
	if ((rc = load_audit(&pl, root)) < 0 || (rc = load_labels(&pl, root)) < 0 ||
	    (rc = load_policies(&pl, root)) < 0 || (rc = load_peers(&pl, root, npeers)) < 0 ||
	    (rc = load_routes(&pl, root)) < 0) {
		if (rc == -ENOMEM && err && errlen && !err[0])
			snprintf(err, errlen, "%s: out of memory while loading policies", path);
		policy_set_free(pl.ps);
		return rc;
	}
	for (size_t i = 0; i < pl.ps->npeers; i++)
		pl.ps->active |= pl.ps->peers[i].policy_in >= 0 ||
				 pl.ps->peers[i].policy_out >= 0 || pl.ps->peers[i].has_clearance;
	for (size_t i = 0; i < pl.ps->nroutes; i++)
		pl.ps->active |= pl.ps->routes[i].policy >= 0;
	*out = pl.ps;
	return 0;
}
