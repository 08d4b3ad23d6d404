/* policy: decides pass, pass with a rewritten label, or reject, for one
 * stanza, from the policy set of the config snapshot and the rate buckets
 * the caller keeps.
 *
 * Order. The policies that apply are, in this order: the inbound peer's
 * policy_in, the route's policy, the outbound peer's policy_out. Each is a
 * list of rules, first match wins; a rate_limit rule that matches and has
 * tokens left lets evaluation go on to the next rule, so limits layer over
 * allow/reject rules. A policy where no rule matches applies its default
 * (reject unless it says allow), named "default". The first policy that
 * rejects decides.
 *
 * Labels, after the rules allowed the stanza (rules cannot let a label
 * through that the clearance refuses): a securitylabel on a presence is a
 * violation; when the next hop has a clearance, the stanza's label (or the
 * default label of the route, else of the inbound peer, for an unlabelled
 * stanza) must be within it: directly when it is in the clearance's label
 * policy, else through an equivalentlabel of the stanza in that policy,
 * else through the equivalence table. Only a label judged through an
 * equivalent is rewritten: the securitylabel element is replaced, by its
 * byte range from the framer, with one in the clearance's policy (display
 * marking of that policy, the original label kept as equivalentlabel). A
 * label that is present but not understood is refused wherever a
 * clearance applies. Unlabelled stanzas with no default label pass the
 * label check (a rule with label = "absent" can refuse them).
 *
 * Everything judged is what the framer recorded from the bytes that are
 * forwarded: there is no second parse. */
#include "policy.h"

#include "audit.h"
#include "xmlstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_SLOTS 4096 /* rate buckets kept; idle ones are reused first */
#define KEY_MAX 320

/* ---- set ------------------------------------------------------------- */

static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void policy_set_free(struct policy_set *ps)
{
	if (ps == NULL)
		return;
	for (size_t i = 0; i < ps->npolicies; i++) {
		struct pol_policy *p = &ps->policies[i];

		for (size_t j = 0; j < p->nrules; j++) {
			struct pol_rule *r = &p->rules[j];

			free(r->name);
			free_strs(r->from, r->nfrom);
			free_strs(r->to, r->nto);
			free_strs(r->types, r->ntypes);
			free_strs(r->namespaces, r->nnamespaces);
		}
		free(p->rules);
		free(p->name);
	}
	free(ps->policies);
	free(ps->peers);
	for (size_t i = 0; i < ps->nroutes; i++)
		free(ps->routes[i].pattern);
	free(ps->routes);
	label_catalogue_free(ps->labels);
	free(ps->audit_file);
	free(ps);
}

int policy_active(const struct policy_set *ps)
{
	return ps != NULL && ps->active;
}

void policy_audit_configure(const struct policy_set *ps)
{
	audit_configure(ps ? ps->audit_file : NULL, ps ? ps->audit_syslog : 0);
}

const struct pol_route *policy_route(const struct policy_set *ps, const char *pattern)
{
	size_t lo = 0, hi = ps ? ps->nroutes : 0;

	while (pattern && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(pattern, ps->routes[mid].pattern);

		if (c == 0)
			return &ps->routes[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int policy_find(const struct policy_set *ps, const char *name)
{
	for (size_t i = 0; ps && i < ps->npolicies; i++)
		if (ps->policies[i].name != NULL && strcmp(ps->policies[i].name, name) == 0)
			return (int)i;
	return -1;
}

int policy_domain_match(const char *pattern, const char *domain)
{
	size_t pl, dl;

	if (strcmp(pattern, "*") == 0)
		return 1;
	if (pattern[0] != '*' || pattern[1] != '.')
		return strcmp(pattern, domain) == 0;
	pattern += 2;
	pl = strlen(pattern);
	dl = strlen(domain);
	if (dl == pl)
		return strcmp(pattern, domain) == 0;
	return dl > pl && domain[dl - pl - 1] == '.' && strcmp(domain + dl - pl, pattern) == 0;
}

/* ---- rate buckets ----------------------------------------------------- */

struct bucket {
	char key[KEY_MAX]; /* "" = free */
	uint64_t last_ms;
	double tokens;
};

struct policy_state {
	struct bucket slots[STATE_SLOTS];
};

struct policy_state *policy_state_new(void)
{
	return calloc(1, sizeof(struct policy_state));
}

void policy_state_free(struct policy_state *st)
{
	free(st);
}

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* Take one token from the bucket for key. 1 if there was one. A bucket
 * that has refilled completely is the same as a new one, so such slots
 * are reused when the probe window is full; if none is, the stanza is
 * refused (fail closed) rather than the limit forgotten. */
static int bucket_take(struct policy_state *st, const char *key, unsigned rate, unsigned burst,
		       uint64_t now)
{
	size_t i = (size_t)(fnv(key) % STATE_SLOTS), reuse = SIZE_MAX;
	struct bucket *b = NULL;

	for (size_t k = 0; k < 64; k++) {
		struct bucket *c = &st->slots[(i + k) % STATE_SLOTS];
		double full;

		if (c->key[0] == '\0' || strcmp(c->key, key) == 0) {
			b = c;
			break;
		}
		full = c->tokens + (double)(now - c->last_ms) * rate / 1000.0;
		if (reuse == SIZE_MAX && (now < c->last_ms || full >= burst))
			reuse = (i + k) % STATE_SLOTS;
	}
	if (b == NULL && reuse != SIZE_MAX) {
		b = &st->slots[reuse];
		b->key[0] = '\0';
	}
	if (b == NULL)
		return 0;
	if (b->key[0] == '\0') {
		snprintf(b->key, sizeof(b->key), "%s", key);
		b->tokens = burst;
		b->last_ms = now;
	}
	if (now > b->last_ms) {
		b->tokens += (double)(now - b->last_ms) * rate / 1000.0;
		if (b->tokens > burst)
			b->tokens = burst;
	}
	b->last_ms = now;
	if (b->tokens < 1.0)
		return 0;
	b->tokens -= 1.0;
	return 1;
}

/* ---- labels ----------------------------------------------------------- */

struct label_view {
	int rc; /* seclabel_find */
	struct seclabel sl;
	int judged;  /* a clearance applied */
	int within;  /* the effective label is within it */
	int rewrite; /* judged through an equivalent: rewrite to target */
	struct label_ref target;
	int above_in;	/* the label is above the sending peer's clearance */
	char name[128]; /* the effective label, for the audit */
};

/* A peer is not to send what it is not cleared to hold: 1 if the label
 * the stanza carries (rc 1, or rc 0 with a default resolved into ref when
 * have) is not within clr, judged in clr's policy directly, through an
 * equivalentlabel the sender gave, or through the equivalence table. A
 * label that cannot be judged (not understood, not in the catalogue, no
 * translation) counts as above. Unlabelled without a default: 0. */
static int above_clearance(const struct label_catalogue *cat, const struct label_view *lv, int have,
			   const struct label_ref *ref, const struct label_ref *clr)
{
	struct label_ref e, tr;

	if (lv->rc < 0)
		return 1;
	if (have && ref->policy == clr->policy)
		return !label_dominated(clr, ref);
	for (size_t i = 0; lv->rc == 1 && i < lv->sl.nequiv; i++)
		if (label_resolve(cat, &lv->sl.equiv[i], &e) == 0 && e.policy == clr->policy)
			return !label_dominated(clr, &e);
	if (!have)
		return lv->rc == 1;
	if (label_translate(cat, ref, clr->policy, &tr) == 0)
		return !label_dominated(clr, &tr);
	return 1;
}

static void judge_label(const struct policy_set *ps, const struct policy_input *in,
			struct label_view *lv)
{
	const struct label_catalogue *cat = ps->labels;
	const struct pol_peer *out = in->out_peer >= 0 && (size_t)in->out_peer < ps->npeers
					 ? &ps->peers[in->out_peer]
					 : NULL;
	const struct pol_peer *inp =
	    in->in_peer >= 0 && (size_t)in->in_peer < ps->npeers ? &ps->peers[in->in_peer] : NULL;
	const struct pol_route *rt = policy_route(ps, in->route);
	struct label_ref ref, tr;
	int have = 0;

	lv->rc = seclabel_find(in->st, &lv->sl);
	if (lv->rc < 0)
		snprintf(lv->name, sizeof(lv->name), "invalid");
	if (lv->rc == 1 && cat != NULL && label_resolve(cat, &lv->sl.label, &ref) == 0) {
		have = 1;
		label_ref_name(cat, &ref, lv->name, sizeof(lv->name));
	} else if (lv->rc == 1) {
		snprintf(lv->name, sizeof(lv->name), "oid:%.100s",
			 lv->sl.label.policy[0] ? lv->sl.label.policy : "-");
	} else if (lv->rc == 0 && cat != NULL) {
		if (rt != NULL && rt->has_default) {
			ref = rt->default_label;
			have = 1;
		} else if (inp != NULL && inp->has_default) {
			ref = inp->default_label;
			have = 1;
		}
		if (have) {
			char n[112];

			label_ref_name(cat, &ref, n, sizeof(n));
			snprintf(lv->name, sizeof(lv->name), "default:%s", n);
		}
	}
	if (inp != NULL && inp->has_clearance && cat != NULL)
		lv->above_in = above_clearance(cat, lv, have, &ref, &inp->clearance);
	if (out == NULL || !out->has_clearance || cat == NULL)
		return;
	lv->judged = 1;
	if (lv->rc < 0)
		return;
	if (lv->rc == 1) {
		/* an equivalentlabel the sender gave in the clearance's policy */
		for (size_t i = 0;
		     (!have || ref.policy != out->clearance.policy) && i < lv->sl.nequiv; i++) {
			struct label_ref e;

			if (label_resolve(cat, &lv->sl.equiv[i], &e) == 0 &&
			    e.policy == out->clearance.policy) {
				lv->target = e;
				lv->within = label_dominated(&out->clearance, &e);
				lv->rewrite = !have || ref.policy != e.policy;
				return;
			}
		}
		if (!have)
			return; /* not in the catalogue: not within */
	}
	if (!have) { /* unlabelled, no default */
		lv->judged = 0;
		return;
	}
	if (ref.policy == out->clearance.policy) {
		lv->within = label_dominated(&out->clearance, &ref);
		return;
	}
	if (label_translate(cat, &ref, out->clearance.policy, &tr) == 0) {
		lv->target = tr;
		lv->within = label_dominated(&out->clearance, &tr);
		lv->rewrite = lv->rc == 1;
	}
}

/* ---- rules ------------------------------------------------------------ */

static unsigned kind_of(const char *name)
{
	if (strcmp(name, "message") == 0)
		return POL_KIND_MESSAGE;
	if (strcmp(name, "presence") == 0)
		return POL_KIND_PRESENCE;
	if (strcmp(name, "iq") == 0)
		return POL_KIND_IQ;
	return 0;
}

static int any_match(char *const *pats, size_t n, const char *dom)
{
	for (size_t i = 0; i < n; i++)
		if (policy_domain_match(pats[i], dom))
			return 1;
	return 0;
}

static int rule_matches(const struct pol_rule *r, const struct policy_input *in,
			const struct label_view *lv)
{
	const struct xs_stanza *st = in->st;

	if (r->nfrom && !any_match(r->from, r->nfrom, in->from_dom))
		return 0;
	if (r->nto && !any_match(r->to, r->nto, in->to_dom))
		return 0;
	if (r->kinds && !(r->kinds & kind_of(st->name)))
		return 0;
	if (r->ntypes) {
		const char *t = st->type ? st->type : "none";
		size_t i;

		for (i = 0; i < r->ntypes && strcmp(r->types[i], t) != 0; i++)
			;
		if (i == r->ntypes)
			return 0;
	}
	if (r->nnamespaces) {
		int found = 0;

		for (size_t i = 0; i < st->nchildren && !found; i++)
			for (size_t j = 0; st->children[i].depth == 2 && j < r->nnamespaces; j++)
				if (strcmp(st->children[i].ns, r->namespaces[j]) == 0)
					found = 1;
		if (!found)
			return 0;
	}
	if (r->larger_than && st->len <= r->larger_than)
		return 0;
	if (r->auth && !(r->auth & in->auth))
		return 0;
	if (r->tls >= 0 && r->tls != (in->tls != 0))
		return 0;
	switch (r->label) {
	case POL_LABEL_ANY:
		break;
	case POL_LABEL_PRESENT:
		if (lv->rc == 0)
			return 0;
		break;
	case POL_LABEL_ABSENT:
		if (lv->rc != 0)
			return 0;
		break;
	case POL_LABEL_INVALID:
		if (lv->rc >= 0)
			return 0;
		break;
	case POL_LABEL_WITHIN:
		if (!lv->judged || !lv->within)
			return 0;
		break;
	case POL_LABEL_OVER:
		if (!lv->judged || lv->within)
			return 0;
		break;
	}
	return 1;
}

static void reject(struct policy_decision *d, const char *policy, const char *rule,
		   const char *reason, const char *condition, const char *errtype)
{
	d->reject = 1;
	d->policy = policy;
	d->rule = rule;
	d->reason = reason;
	d->condition = condition;
	d->errtype = errtype;
}

/* 1 if policy p rejected (d filled), 0 if it let the stanza through. A
 * pass is named by the first rule that explicitly allowed it, else by the
 * first default that did (*explicit says which d holds). */
static int run_policy(const struct pol_policy *p, struct policy_state *state,
		      const struct policy_input *in, const struct label_view *lv, uint64_t now,
		      struct policy_decision *d, int *explicit)
{
	for (size_t i = 0; i < p->nrules; i++) {
		const struct pol_rule *r = &p->rules[i];
		char key[KEY_MAX];

		if (!rule_matches(r, in, lv))
			continue;
		switch (r->action) {
		case POL_ALLOW:
			if (!*explicit) {
				d->policy = p->name;
				d->rule = r->name;
				*explicit = 1;
			}
			return 0;
		case POL_REJECT:
			reject(d, p->name, r->name, "rule", "policy-violation", r->errtype);
			return 1;
		case POL_RATE:
			snprintf(key, sizeof(key), "%s/%s/%s", p->name, r->name,
				 r->per_domain ? in->from_dom : (in->route ? in->route : "-"));
			if (state == NULL || !bucket_take(state, key, r->rate, r->burst, now)) {
				reject(d, p->name, r->name, "rate exceeded", r->exceeded,
				       strcmp(r->exceeded, "resource-constraint") == 0 ? "wait"
										       : "cancel");
				return 1;
			}
			break;
		}
	}
	if (p->dflt == POL_REJECT) {
		reject(d, p->name, "default", "no rule matched", "policy-violation", "cancel");
		return 1;
	}
	if (strcmp(d->rule, "none") == 0) {
		d->policy = p->name;
		d->rule = "default";
	}
	return 0;
}

static int splice_label(const struct policy_set *ps, const struct policy_input *in,
			const struct label_view *lv, struct policy_decision *d)
{
	char el[4096];
	int n = label_render(ps->labels, &lv->target, lv->sl.label_b64[0] ? lv->sl.label_b64 : NULL,
			     el, sizeof(el));
	const struct xs_stanza *st = in->st;
	size_t len;

	if (n < 0)
		return -EINVAL;
	len = st->len - (lv->sl.end - lv->sl.start) + (size_t)n;
	d->bytes = malloc(len);
	if (d->bytes == NULL)
		return -ENOMEM;
	memcpy(d->bytes, st->bytes, lv->sl.start);
	memcpy(d->bytes + lv->sl.start, el, (size_t)n);
	memcpy(d->bytes + lv->sl.start + (size_t)n, st->bytes + lv->sl.end, st->len - lv->sl.end);
	d->len = len;
	return 0;
}

int policy_eval(const struct policy_set *ps, struct policy_state *state,
		const struct policy_input *in, uint64_t now_ms, struct policy_decision *out)
{
	struct label_view *lv;
	int order[3] = {-1, -1, -1}, explicit = 0;
	const struct pol_route *rt;

	memset(out, 0, sizeof(*out));
	out->policy = "-";
	out->rule = "none";
	out->reason = "pass";
	if (ps == NULL)
		return 0;
	lv = calloc(1, sizeof(*lv));
	if (lv == NULL) {
		reject(out, "-", "internal", "out of memory", "resource-constraint", "wait");
		return -ENOMEM;
	}
	judge_label(ps, in, lv);
	snprintf(out->label, sizeof(out->label), "%s", lv->name);
	if (in->in_peer >= 0 && (size_t)in->in_peer < ps->npeers)
		order[0] = ps->peers[in->in_peer].policy_in;
	rt = policy_route(ps, in->route);
	if (rt != NULL)
		order[1] = rt->policy;
	if (in->out_peer >= 0 && (size_t)in->out_peer < ps->npeers)
		order[2] = ps->peers[in->out_peer].policy_out;
	for (int i = 0; i < 3; i++)
		if (order[i] >= 0 &&
		    run_policy(&ps->policies[order[i]], state, in, lv, now_ms, out, &explicit))
			goto done;
	if (lv->rc != 0 && strcmp(in->st->name, "presence") == 0) {
		reject(out, "-", "label-on-presence", "security label on presence",
		       "policy-violation", "modify");
		goto done;
	}
	if (lv->above_in) {
		reject(out, "-", "clearance-in",
		       lv->rc < 0 ? "label not understood"
				  : "label above the sending peer's clearance",
		       "policy-violation", lv->rc < 0 ? "modify" : "cancel");
		goto done;
	}
	if (lv->judged && !lv->within) {
		reject(out, "-", "clearance",
		       lv->rc < 0 ? "label not understood"
				  : "label not within the peer's clearance",
		       "policy-violation", lv->rc < 0 ? "modify" : "cancel");
		goto done;
	}
	if (lv->judged && lv->rewrite) {
		int r = splice_label(ps, in, lv, out);

		if (r < 0) {
			reject(out, "-", "clearance", "label cannot be rewritten",
			       "policy-violation", "cancel");
			free(lv);
			return r == -ENOMEM ? r : 0;
		}
		{
			char t[112];

			label_ref_name(ps->labels, &lv->target, t, sizeof(t));
			snprintf(out->label, sizeof(out->label), "%.60s->%.60s", lv->name, t);
		}
		out->reason = "label rewritten";
	}
done:
	free(lv);
	return 0;
}
