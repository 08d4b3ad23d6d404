/* s2s_in: inbound streams (s2s_int.h): the header and features, STARTTLS,
 * SASL EXTERNAL and dialback (verified through an outbound stream),
 * and the checks every stanza passes before forward(): addresses,
 * reverse path, hop count, policy. */
#include "s2s.h"
#include "s2s_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "audit.h"
#include "authz.h"
#include "bounce.h"
#include "config.h"
#include "dialback.h"
#include "domain.h"
#include "identity.h"
#include "log.h"
#include "net.h"
#include "pairset.h"
#include "policy.h"
#include "route.h"
#include "runtime.h"
#include "stats.h"
#include "tls.h"
#include "xmlstream.h"

/* Our answer to a db:result we will not verify: type='error' with a
 * stanza error (t and f: the escaped to and from of the request). */
static void db_result_error(struct stream *s, const char *t, const char *f, const char *errtype,
			    const char *condition)
{
	swritef(s,
		"<db:result from='%s' to='%s' type='error'><error type='%s'><%s xmlns='" NS_STANZAS
		"'/></error></db:result>",
		t, f, errtype, condition);
}

/* Does the certificate on inbound stream s authenticate domain (the sender
 * side)? The domain's route names the peer whose policy applies; the
 * certificate must carry the peer's configured identity (a relay known
 * by its own name) or else the domain itself. */
static int in_cert_ok(struct stream *s, const char *domain, char *why, size_t whylen)
{
	const struct route *r = route_lookup(s->cfg->routes, domain);
	int peer = config_trunk_peer(s->cfg, domain); /* a trunk peer's own name */
	struct ident_policy pol;
	int res;

	if (s->tls && s->cert_memo.at != 0 && net_now_ms() - s->cert_memo.at < 2000 &&
	    strcmp(s->cert_memo.domain, domain) == 0) {
		snprintf(why, whylen, "%s", s->cert_memo.why);
		return s->cert_memo.ok;
	}
	if (peer < 0 && r == NULL) {
		snprintf(why, whylen, "no route for the domain");
		return 0;
	}
	if (peer < 0)
		peer = r->peer;
	if (peer_policy(s->rt, peer, &pol) < 0) {
		snprintf(why, whylen, "no trust anchors or pins for peer %s",
			 s->cfg->peers[peer].name);
		return 0;
	}
	why[0] = '\0';
	res = net_tls_check(
	    s->conn, s->cfg->peers[peer].identity != NULL ? s->cfg->peers[peer].identity : domain,
	    &pol, why, whylen);
	if (res != IDENT_OK) {
		/* a stable code first (for logs and tests), then the detail */
		char detail[96];

		snprintf(detail, sizeof(detail), "%s", why);
		snprintf(why, whylen, "%s: %.80s", ident_result_str((enum ident_result)res),
			 detail);
	}
	if (s->tls && strlen(domain) < sizeof(s->cert_memo.domain)) {
		s->cert_memo.at = net_now_ms();
		s->cert_memo.ok = res == IDENT_OK;
		snprintf(s->cert_memo.domain, sizeof(s->cert_memo.domain), "%s", domain);
		snprintf(s->cert_memo.why, sizeof(s->cert_memo.why), "%s", why);
	}
	return res == IDENT_OK;
}

static int dialback_allowed(const struct config *cfg, const char *domain)
{
	const struct route *r = route_lookup(cfg->routes, domain);

	return r != NULL && cfg->peers[r->peer].auth != CFG_AUTH_CERTIFICATE;
}

/* ---- inbound ---- */

static void in_send_features(struct stream *s)
{
	int offer_tls =
	    !s->tls && s->rt->server_creds != NULL && s->cfg->tls_inbound != CFG_TLS_NONE;

	swrites(s, "<stream:features>");
	if (offer_tls)
		swritef(s, "<starttls xmlns='" NS_TLS "'>%s</starttls>",
			s->cfg->tls_inbound == CFG_TLS_REQUIRED ? "<required/>" : "");
	if (!offer_tls && s->tls && !s->sasl_done && s->remote[0] != '\0') {
		char why[128];

		/* XEP-0178: offer EXTERNAL only when the certificate already
		 * authenticates the stream's 'from'; otherwise dialback only. */
		if (in_cert_ok(s, s->remote, why, sizeof(why)))
			swrites(s, "<mechanisms xmlns='" NS_SASL
				   "'><mechanism>EXTERNAL</mechanism></mechanisms>");
		else
			slog(s, "event=sasl-not-offered from=%s reason=\"%s\"", s->remote, why);
	}
	if (s->cfg->relay_name != NULL && strcmp(s->local, s->cfg->relay_name) == 0 &&
	    config_trunk_peer(s->cfg, s->remote) >= 0)
		swrites(s, "<bidi xmlns='" NS_BIDI_FEATURE "'/>");
	if (!offer_tls || s->cfg->tls_inbound != CFG_TLS_REQUIRED)
		swrites(s, "<dialback xmlns='" NS_DB_FEATURE "'><errors/></dialback>");
	swrites(s, "</stream:features>");
}

/* The header is addressed to our relay_name by a trunk peer's identity. */
static int in_trunk_header(struct stream *s, const char *to)
{
	char norm_to[DOMAIN_MAX + 1];

	if (s->cfg->relay_name == NULL || to == NULL || norm(to, norm_to) < 0 ||
	    strcmp(norm_to, s->cfg->relay_name) != 0 || config_trunk_peer(s->cfg, s->remote) < 0)
		return 0;
	snprintf(s->local, sizeof(s->local), "%s", s->cfg->relay_name);
	return 1;
}

void in_on_header(struct stream *s, const struct xs_header *h)
{
	const char *cond;

	make_id(s->id, sizeof(s->id));
	s->remote[0] = '\0';
	if (h->from != NULL && norm(h->from, s->remote) < 0)
		s->remote[0] = '\0';
	cond = authz_header(s->cfg->routes, h->to, h->version, s->local);
	if (cond != NULL && strcmp(cond, "host-unknown") == 0 && in_trunk_header(s, h->to))
		cond = NULL; /* a trunk peer opening its link to relay_name */
	if (cond != NULL) {
		if (strcmp(cond, "host-unknown") == 0)
			snprintf(s->local, sizeof(s->local), "%s", "xtrunk.invalid");
		stream_error(s, cond, NULL);
		return;
	}
	send_header(s, s->id);
	in_send_features(s);
	s->state = ST_OPEN;
	if (s->sasl_done && !s->sasl_open) {
		/* the restart after SASL: a trunk link with bidi is usable now */
		s->sasl_open = 1;
		if (s->trunk && s->bidi)
			trunk_yield(s);
	}
	slog(s, "event=header from=%s to=%s tls=%s", s->remote[0] ? s->remote : "-", s->local,
	     s->tls ? "yes" : "no");
}

static int in_tls_missing(struct stream *s)
{
	if (s->tls || s->cfg->tls_inbound != CFG_TLS_REQUIRED)
		return 0;
	stream_error(s, "policy-violation", "STARTTLS is required");
	return 1;
}

static void in_on_db_result(struct stream *s, const struct xs_stanza *st)
{
	char from[DOMAIN_MAX + 1], to[DOMAIN_MAX + 1], key[256];
	char f[DOMAIN_MAX * 6 + 1], t[DOMAIN_MAX * 6 + 1];
	const struct route *r;
	struct stream *o;
	struct vreq *v;

	if (in_tls_missing(s))
		return;
	if (s->trunk) {
		trunk_on_result(s, st);
		return;
	}
	if (st->type != NULL) {
		/* an answer nobody asked for (we never send db:result on an
		 * inbound stream): it authenticates nothing; drop it */
		slog(s, "event=dialback-unsolicited kind=result type=%.16s", st->type);
		return;
	}
	if (norm(st->from, from) < 0 || norm(st->to, to) < 0 ||
	    element_text(st->bytes, st->len, key, sizeof(key)) <= 0) {
		stream_error(s, "improper-addressing", "db:result needs from, to and a key");
		return;
	}
	esc(f, sizeof(f), from);
	esc(t, sizeof(t), to);
	if (route_lookup(s->cfg->routes, to) == NULL) {
		db_result_error(s, t, f, "cancel", "item-not-found");
		return;
	}
	r = route_lookup(s2s_g.rt->cfg->routes, from);
	if (r == NULL) {
		slog(s, "event=dialback-refused from=%s to=%s reason=no-route-for-sender", from,
		     to);
		stats_count(STATS_AUTH_FAILURES, "dialback-no-route", NULL);
		db_result_error(s, t, f, "cancel", "remote-server-not-found");
		return;
	}
	{
		char why[128];

		/* XEP-0344: the certificate of this session already vouches for
		 * the sender; checked now, when the result arrives. */
		if (s->tls && in_cert_ok(s, from, why, sizeof(why))) {
			if (authz_add(s->authz, from, to) < 0) {
				stream_error(s, "resource-constraint", "too many domain pairs");
				return;
			}
			slog(s, "event=dialback-valid from=%s to=%s auth=certificate", from, to);
			swritef(s, "<db:result from='%s' to='%s' type='valid'/>", t, f);
			arm_idle(s);
			return;
		}
		if (!dialback_allowed(s->cfg, from)) {
			slog(s,
			     "event=dialback-refused from=%s to=%s reason=\"peer requires a "
			     "certificate: %s\"",
			     from, to, why);
			stats_count(STATS_AUTH_FAILURES, "certificate-required", NULL);
			db_result_error(s, t, f, "auth", "not-authorized");
			return;
		}
	}
	if (s->pending_db >= MAX_PENDING_DB) {
		stream_error(s, "resource-constraint", "too many dialback requests in flight");
		return;
	}
	o = out_find(r->peer, to, from);
	if (o == NULL && peer_backoff_left(r->peer) > 0) {
		slog(s,
		     "event=dialback-error from=%s to=%s condition=remote-server-not-found "
		     "reason=peer-backoff",
		     from, to);
		db_result_error(s, t, f, "cancel", "remote-server-not-found");
		return;
	}
	if (o == NULL)
		o = out_new(r->peer, (unsigned)peer_pick_addr(r->peer), to, from);
	v = o != NULL ? calloc(1, sizeof(*v)) : NULL;
	if (v == NULL) {
		stream_error(s, "internal-server-error", NULL);
		return;
	}
	v->in_serial = s->serial;
	v->from = strdup(to);
	v->to = strdup(from);
	v->id = strdup(s->id);
	v->key = strdup(key);
	if (!v->from || !v->to || !v->id || !v->key) {
		free(v->from), free(v->to), free(v->id), free(v->key), free(v);
		stream_error(s, "internal-server-error", NULL);
		return;
	}
	v->next = o->vreqs;
	o->vreqs = v;
	s->pending_db++;
	slog(s, "event=dialback-result from=%s to=%s verify-via=%s", from, to,
	     s->cfg->peers[r->peer].name);
	if (o->state == ST_OPEN || o->state == ST_DBWAIT || o->state == ST_ESTABLISHED)
		out_send_vreqs(o);
}

/* The answer to a verification we asked for: valid 1, invalid 0, error -1. */
void in_verify_answer(unsigned in_serial, const char *from, const char *to, int valid,
		      const char *condition)
{
	struct stream *s = stream_by_serial(in_serial);
	char f[DOMAIN_MAX * 6 + 1], t[DOMAIN_MAX * 6 + 1];
	int rc;

	if (s == NULL || s->dir != DIR_IN || s->state == ST_CLOSING)
		return;
	s->pending_db--;
	esc(f, sizeof(f), from);
	esc(t, sizeof(t), to);
	if (valid < 0) {
		slog(s, "event=dialback-error from=%s to=%s condition=%s", from, to, condition);
		stats_count(STATS_AUTH_FAILURES, "dialback-unverifiable", NULL);
		db_result_error(s, t, f, "cancel", condition);
		return;
	}
	if (!valid) {
		slog(s, "event=dialback-invalid from=%s to=%s", from, to);
		stats_count(STATS_AUTH_FAILURES, "dialback-invalid", NULL);
		swritef(s, "<db:result from='%s' to='%s' type='invalid'/>", t, f);
		stream_close(s);
		return;
	}
	rc = authz_add(s->authz, from, to);
	if (rc < 0) {
		stream_error(s, rc == -ENOSPC ? "resource-constraint" : "internal-server-error",
			     rc == -ENOSPC ? "too many domain pairs" : NULL);
		return;
	}
	s->db_auth = 1;
	slog(s, "event=dialback-valid from=%s to=%s auth=dialback", from, to);
	swritef(s, "<db:result from='%s' to='%s' type='valid'/>", t, f);
	arm_idle(s);
}

static void in_on_db_verify(struct stream *s, const struct xs_stanza *st)
{
	char from[DOMAIN_MAX + 1], to[DOMAIN_MAX + 1], key[256];
	char f[DOMAIN_MAX * 6 + 1], t[DOMAIN_MAX * 6 + 1], id[256];
	int valid;

	if (in_tls_missing(s))
		return;
	if (norm(st->from, from) < 0 || norm(st->to, to) < 0 || st->id == NULL ||
	    element_text(st->bytes, st->len, key, sizeof(key)) < 0) {
		stream_error(s, "improper-addressing", "db:verify needs from, to, id and a key");
		return;
	}
	/* We are the authoritative server for 'to' (we originated its streams):
	 * the key is valid iff we made it, for this receiving server and id. */
	valid = db_key_check(s->cfg->dialback_secret, from, to, st->id, key);
	slog(s, "event=dialback-verify-answered from=%s to=%s valid=%s", from, to,
	     valid ? "yes" : "no");
	swritef(s, "<db:verify from='%s' to='%s' id='%s' type='%s'/>", esc(t, sizeof(t), to),
		esc(f, sizeof(f), from), esc(id, sizeof(id), st->id), valid ? "valid" : "invalid");
	arm_idle(s);
}

/* The policy (policy/) on an inbound stanza, judged on what the framer
 * recorded from the bytes to be forwarded. 1: forward it (the bytes with
 * a rewritten label in rw->bytes when one applies; the caller frees them);
 * 0: refused, bounced with no content of the stanza (an error is only
 * dropped), audited. How the sender authenticated is known per stream:
 * one pair by dialback makes every stanza on it count as dialback, never
 * stronger than it is. */
static int in_policy(struct stream *s, const struct xs_stanza *st, const char *from, const char *to,
		     const struct route *r, const struct route *back, const struct bounce_in *b,
		     struct policy_decision *rw)
{
	const struct config *cfg = s2s_g.rt->cfg;
	struct policy_input in = {st,
				  from,
				  to,
				  r->pattern,
				  back != NULL ? back->peer : -1,
				  r->peer,
				  s->tls,
				  s->db_auth ? POL_AUTH_DIALBACK : POL_AUTH_CERTIFICATE};
	struct policy_decision d;

	memset(rw, 0, sizeof(*rw));
	if (!policy_active(cfg->policies))
		return 1;
	policy_eval(cfg->policies, s2s_g.policy, &in, net_now_ms(), &d);
	if (d.reject || cfg->policies->audit_passes) {
		struct audit_rec a = {d.reject ? (bounce_allowed(b) ? "reject" : "drop") : "pass",
				      in.in_peer >= 0 ? cfg->peers[in.in_peer].name : NULL,
				      cfg->peers[r->peer].name,
				      r->pattern,
				      st->from,
				      st->to,
				      st->name,
				      st->type,
				      st->id,
				      d.policy,
				      d.rule,
				      d.reason,
				      d.reject ? d.condition : NULL,
				      d.label[0] ? d.label : NULL};

		audit_write(&a);
	}
	if (!d.reject) {
		*rw = d;
		return 1;
	}
	slog(s, "event=policy-reject kind=%s from=%s to=%s policy=%s rule=%s reason=\"%s\"",
	     st->name, from, to, d.policy, d.rule, d.reason);
	stats_count(STATS_POLICY_REJECTIONS, d.rule != NULL ? d.rule : "-", NULL);
	free(d.bytes);
	bounce_as(b, d.condition, d.errtype, NULL);
	return 0;
}

/* Loop safety. A stanza that has crossed limits.max_hops relays (counted
 * between xtrunkd trunk peers) is in a route cycle; one whose destination
 * routes to the very peer its sender lies behind would go back where it
 * came from. Either way: one bounce (never for an error), nothing
 * forwarded. 1 if the stanza may go on. */
static int in_loop_check(struct stream *s, const struct xs_stanza *st, const char *from,
			 const char *to, const struct route *r, const struct route *back,
			 const struct bounce_in *b)
{
	char text[DOMAIN_MAX + 160];

	if (s->hop_hint >= s->cfg->max_hops) {
		slog(s, "event=loop kind=%s id=%s from=%s to=%s hops=%u reason=hop-limit", st->name,
		     st->id != NULL ? st->id : "-", from, to, s->hop_hint);
		snprintf(text, sizeof(text), "xtrunk: routing loop toward %s: hop limit %u reached",
			 to, s->cfg->max_hops);
		bounce(b, "remote-server-not-found", text);
		return 0;
	}
	if (back != NULL && back->peer == r->peer) {
		slog(s, "event=loop kind=%s id=%s from=%s to=%s peer=%s reason=route-to-ingress",
		     st->name, st->id != NULL ? st->id : "-", from, to,
		     s2s_g.rt->cfg->peers[r->peer].name);
		snprintf(text, sizeof(text),
			 "xtrunk: the route for %s leads back to the peer the stanza came from",
			 to);
		bounce(b, "remote-server-not-found", text);
		return 0;
	}
	s2s_g.hops = s->hop_hint + 1;
	return 1;
}

void in_on_xmpp(struct stream *s, const struct xs_stanza *st)
{
	char from[DOMAIN_MAX + 1], to[DOMAIN_MAX + 1];
	struct policy_decision rewritten;
	const struct route *r, *back; /* to's route, and from's (the way back) */
	struct bounce_in b = {st->name, st->to, st->from, st->type, st->id};
	const char *cond = authz_stanza(s->authz, st->from, st->to, from, to);

	if (cond != NULL) {
		stream_error(s, cond, NULL);
		return;
	}
	r = route_lookup(s2s_g.rt->cfg->routes, to);
	if (r == NULL) { /* routes cannot change under a stream, but be safe */
		stream_error(s, "host-unknown", NULL);
		return;
	}
	log_trace(LOG_TRACE_STANZA, "stream=%u event=stanza kind=%s from=%s to=%s route=%s",
		  s->serial, st->name, from, to, r->pattern);
	back = route_lookup(s2s_g.rt->cfg->routes, from); /* one lookup for all three uses */
	if (!in_loop_check(s, st, from, to, r, back, &b))
		return;
	stats_count(STATS_STANZAS_RECEIVED, r->pattern,
		    back != NULL ? s2s_g.rt->cfg->peers[back->peer].name : "-");
	arm_idle(s);
	if (!in_policy(s, st, from, to, r, back, &b, &rewritten))
		return;
	s2s_g.t_read = stats_clock_us();
	s2s_g.cur_in = s;
	if (rewritten.bytes != NULL)
		forward(r->peer, from, to, rewritten.bytes, rewritten.len, &b);
	else
		forward(r->peer, from, to, st->bytes, st->len, &b);
	s2s_g.t_read = 0;
	s2s_g.cur_in = NULL;
	s2s_g.hops = 0;
	free(rewritten.bytes);
}

static void in_sasl_failure(struct stream *s, const char *condition, const char *why)
{
	slog(s, "event=sasl-failed from=%s condition=%s reason=\"%s\"",
	     s->remote[0] ? s->remote : "-", condition, why);
	stats_count(STATS_AUTH_FAILURES, "sasl-external-refused", NULL);
	/* the stream stays open: the peer may still use dialback (XEP-0178) */
	swritef(s, "<failure xmlns='" NS_SASL "'><%s/></failure>", condition);
}

static void in_on_sasl_auth(struct stream *s, const struct xs_stanza *st)
{
	char b64[1024], authzid[DOMAIN_MAX + 1], why[128];
	gnutls_datum_t in, out = {NULL, 0};
	const char *mech = NULL;
	int n;

	mech = xs_attr_get(st->attrs, st->nattrs, "mechanism");
	if (mech != NULL && strcmp(mech, "EXTERNAL") != 0)
		mech = NULL;
	if (!s->tls || s->sasl_done || s->remote[0] == '\0') {
		in_sasl_failure(s, "not-authorized", "SASL needs TLS and a stream 'from'");
		return;
	}
	if (mech == NULL) {
		in_sasl_failure(s, "invalid-mechanism", "only EXTERNAL is offered");
		return;
	}
	n = element_text(st->bytes, st->len, b64, sizeof(b64));
	if (n < 0) {
		in_sasl_failure(s, "malformed-request", "bad initial response");
		return;
	}
	authzid[0] = '\0';
	if (n > 0 && strcmp(b64, "=") != 0) {
		in.data = (unsigned char *)b64;
		in.size = (unsigned)n;
		if (gnutls_base64_decode2(&in, &out) < 0 || out.size == 0 ||
		    memchr(out.data, 0, out.size) != NULL ||
		    domain_normalise((const char *)out.data, out.size, authzid, sizeof(authzid)) <
			0) {
			gnutls_free(out.data);
			in_sasl_failure(s, "invalid-authzid", "authzid is not a domain");
			return;
		}
		gnutls_free(out.data);
		if (strcmp(authzid, s->remote) != 0) {
			in_sasl_failure(s, "invalid-authzid", "authzid is not the stream 'from'");
			return;
		}
	}
	if (!in_cert_ok(s, s->remote, why, sizeof(why))) {
		in_sasl_failure(s, "not-authorized", why);
		return;
	}
	if (authz_add(s->authz, s->remote, s->local) < 0) {
		stream_error(s, "resource-constraint", "too many domain pairs");
		return;
	}
	slog(s, "event=sasl-success from=%s to=%s auth=certificate", s->remote, s->local);
	swrites(s, "<success xmlns='" NS_SASL "'/>");
	if (s->cfg->relay_name != NULL && strcmp(s->local, s->cfg->relay_name) == 0 &&
	    (s->peer = config_trunk_peer(s->cfg, s->remote)) >= 0) {
		trunk_mark(s);
		s->bidi = s->bidi_asked;
		slog(s, "event=trunk-up peer=%s bidi=%s", s->cfg->peers[s->peer].name,
		     s->bidi ? "yes" : "no");
	} else {
		s->peer = 0;
	}
	s->sasl_done = 1;
	s->sasl_restart = 1;
	xs_stop(s->xs);
	arm_idle(s);
}

/* <hop xmlns='urn:xtrunk:0' n='N'/> from another xtrunkd: the next stanza
 * has crossed N relays. Only meaningful after authentication; a value that
 * is not a small number is a protocol error. */
void in_on_hop(struct stream *s, const struct xs_stanza *st)
{
	const char *n = xs_attr_get(st->attrs, st->nattrs, "n");
	char *end;
	unsigned long v;

	if (authz_count(s->authz) == 0 || n == NULL) {
		stream_error(s, "unsupported-stanza-type", "hop before authentication");
		return;
	}
	v = strtoul(n, &end, 10);
	if (end == n || *end != '\0' || n[0] == '-' || v > 255) {
		stream_error(s, "not-well-formed", "bad hop count");
		return;
	}
	s->hop_hint = (unsigned)v;
}

void in_on_stanza(struct stream *s, const struct xs_stanza *st)
{
	if (strcmp(st->ns, XS_NS_STREAM) == 0 && strcmp(st->name, "error") == 0) {
		/* never answer a stream error with one (RFC 6120 4.9.1.1) */
		slog(s, "event=peer-stream-error");
		stream_close(s);
		return;
	}
	if (strcmp(st->ns, NS_SASL) == 0 && strcmp(st->name, "auth") == 0) {
		in_on_sasl_auth(s, st);
		return;
	}
	if (strcmp(st->ns, NS_TLS) == 0 && strcmp(st->name, "starttls") == 0) {
		if (s->tls || s->rt->server_creds == NULL || s->cfg->tls_inbound == CFG_TLS_NONE) {
			swrites(s, "<failure xmlns='" NS_TLS "'/></stream:stream>");
			stream_close(s);
			return;
		}
		swrites(s, "<proceed xmlns='" NS_TLS "'/>");
		xs_stop(s->xs);
		s->start_tls = 1;
		return;
	}
	if (strcmp(st->ns, XS_NS_DIALBACK) == 0) {
		if (strcmp(st->name, "result") == 0)
			in_on_db_result(s, st);
		else if (strcmp(st->name, "verify") == 0)
			in_on_db_verify(s, st);
		else
			stream_error(s, "unsupported-stanza-type", NULL);
		return;
	}
	if (strcmp(st->ns, XS_NS_SERVER) == 0 &&
	    (strcmp(st->name, "message") == 0 || strcmp(st->name, "presence") == 0 ||
	     strcmp(st->name, "iq") == 0)) {
		if (!in_tls_missing(s))
			in_on_xmpp(s, st);
		s->hop_hint = 0; /* a hint counts for the next stanza only */
		return;
	}
	if (strcmp(st->ns, NS_XTRUNK) == 0 && strcmp(st->name, "hop") == 0) {
		in_on_hop(s, st);
		return;
	}
	if (strcmp(st->ns, NS_BIDI) == 0 && strcmp(st->name, "bidi") == 0) {
		/* XEP-0288; honoured only if the stream authenticates as a
		 * trunk peer (we offer it to no one else) */
		s->bidi_asked = 1;
		return;
	}
	stream_error(s, "unsupported-stanza-type", NULL);
}

static void in_on_tls(void *ctx, int status)
{
	struct stream *s = ctx;

	if (status < 0) {
		slog(s, "event=tls-failed reason=%s", net_tls_failure(s->conn));
		stats_count(STATS_TLS_FAILURES, "in", net_tls_failure(s->conn));
		s->state = ST_CLOSING;
		net_close(s->conn);
		return;
	}
	s->tls = 1;
	slog(s, "event=tls-up tls=%s presented=%s peer-certificate=%s", net_tls_describe(s->conn),
	     net_tls_presented(s->conn) ? net_tls_presented(s->conn) : "none",
	     net_tls_has_cert(s->conn) ? "yes" : "no");
	s->state = ST_HEADER;
	s->header_sent = 0;
}

static const struct net_callbacks in_net_cb = {
    .on_data = on_data,
    .on_tls = in_on_tls,
    .on_timeout = on_timeout,
    .on_error = on_error,
    .on_closed = on_closed,
    .on_drain = on_drain, /* a bidi trunk link we send on */
};

/* The address part of "ip:port" (IPv6 addresses contain ':' too). */
static size_t addr_len(const char *peer)
{
	const char *colon = strrchr(peer, ':');

	return colon != NULL ? (size_t)(colon - peer) : strlen(peer);
}

/* Inbound streams open from the address of s, s included. */
static unsigned in_from_same_address(const struct stream *s)
{
	const char *me = net_peer(s->conn);
	size_t n = addr_len(me);
	const struct stream *o;
	unsigned count = 0;

	for (o = s2s_g.streams; o != NULL; o = o->next)
		if (o->dir == DIR_IN && o->state != ST_CLOSING && o->conn != NULL &&
		    addr_len(net_peer(o->conn)) == n && memcmp(net_peer(o->conn), me, n) == 0)
			count++;
	return count;
}

void s2s_accept(void *uv_server, int direct)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return;
	s->dir = DIR_IN;
	s->state = ST_HEADER;
	s->qtail = &s->qhead; /* a trunk link with bidi queues like an outbound one */
	s->rt = runtime_ref(s2s_g.rt);
	s->cfg = s->rt->cfg;
	s->xs = xs_new(&stream_xs_cb, s, &s2s_g.limits);
	s->authz = authz_new(MAX_PAIRS);
	if (s->xs == NULL || s->authz == NULL) {
		stream_free(s);
		return;
	}
	stream_link(s);
	s->conn = net_accept(uv_server, &in_net_cb, s);
	if (s->conn == NULL) {
		stream_unlink(s);
		stream_free(s);
		return;
	}
	slog(s, "event=accepted%s", direct ? " direct-tls=yes" : "");
	stats_count(STATS_STREAMS_OPENED, "in", NULL);
	if (in_from_same_address(s) > s->cfg->connections_per_address) {
		/* before TLS, so cheap; the header goes first (RFC 6120 4.9.1.1) */
		slog(s, "event=refused reason=connections-per-address limit=%u",
		     s->cfg->connections_per_address);
		snprintf(s->local, sizeof(s->local), "%s", "xtrunk.invalid");
		if (direct) { /* the peer expects TLS: plain XML would be noise */
			s->state = ST_CLOSING;
			net_close(s->conn);
		} else {
			stream_error(s, "policy-violation",
				     "too many connections from your address");
		}
		return;
	}
	set_timer(s, s->cfg->handshake_timeout * 1000);
	if (direct) {
		/* XEP-0368: the certificate is chosen by SNI alone */
		s->state = ST_TLS;
		if (s->rt->server_creds == NULL ||
		    net_start_tls_server(s->conn, s->rt->server_creds, NULL, 1) < 0) {
			s->state = ST_CLOSING;
			net_close(s->conn);
		}
	}
}
