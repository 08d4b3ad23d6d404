/* s2s_out: outbound streams (s2s_int.h): the pool of streams per next hop
 * and domain pair, connecting with address failover and back-off, the
 * outbound handshake (STARTTLS, SASL EXTERNAL or dialback), the queue of
 * stanzas waiting for it, and forward(), which routes one stanza. */
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

static struct stream *pool_next(const struct stream *s);
static void out_on_tls(void *ctx, int status);

/* The most preferred address of a s2s_g.rt peer that may be tried now, or -1. */
int peer_pick_addr(int peer)
{
	const struct cfg_peer *p = &s2s_g.rt->cfg->peers[peer];
	uint64_t now = net_now_ms();

	for (size_t i = 0; i < p->naddrs; i++)
		if (s2s_g.backoff == NULL ||
		    s2s_g.backoff[s2s_g.addr_base[peer] + i].retry_at <= now)
			return (int)i;
	return -1;
}

/* Seconds until some address of peer may be tried again, 0 if now. Only
 * for s2s_g.rt peers. */
unsigned peer_backoff_left(int peer)
{
	const struct cfg_peer *p = &s2s_g.rt->cfg->peers[peer];
	uint64_t now = net_now_ms(), soonest = UINT64_MAX;

	if (s2s_g.backoff == NULL || peer_pick_addr(peer) >= 0)
		return 0;
	for (size_t i = 0; i < p->naddrs; i++)
		if (s2s_g.backoff[s2s_g.addr_base[peer] + i].retry_at < soonest)
			soonest = s2s_g.backoff[s2s_g.addr_base[peer] + i].retry_at;
	return (unsigned)((soonest - now + 999) / 1000);
}

static void peer_reached(const struct stream *s, int ok)
{
	struct addr_backoff *b;

	if (s2s_g.backoff == NULL || s->rt != s2s_g.rt)
		return;
	b = &s2s_g.backoff[s2s_g.addr_base[s->peer] + s->addr];
	if (ok) {
		b->fails = 0;
		b->retry_at = 0;
		return;
	}
	/* Connects already under way when the first one failed count as the
	 * same round: one doubling per round, not per parallel connect (the
	 * soak saw four refusals in one millisecond jump from 8 s to 64 s). */
	if (b->retry_at > net_now_ms())
		return;
	b->fails++;
	b->retry_at = net_now_ms() + (1000ull << (b->fails > 7 ? 6 : b->fails - 1));
	log_info("event=peer-backoff peer=%s addr=%s:%d failures=%u retry-in-ms=%llu",
		 s->cfg->peers[s->peer].name, s->cfg->peers[s->peer].addrs[s->addr].host,
		 s->cfg->peers[s->peer].addrs[s->addr].port, b->fails,
		 (unsigned long long)(b->retry_at - net_now_ms()));
}

/* ---- the outbound pool's hash ---- */

static uint64_t pool_hash(int peer, const char *from, const char *to)
{
	return pairset_hash(from, to) ^ (unsigned)peer * 0x9e3779b97f4a7c15ull;
}

/* The first stream to look at for (peer, from, to); go on with pool_next
 * and compare the key, chains hold other pairs too. */
static struct stream *pool_first(int peer, const char *from, const char *to)
{
	if (s2s_g.pool == NULL)
		return s2s_g.streams;
	return s2s_g.pool[pool_hash(peer, from, to) & (s2s_g.pool_nb - 1)];
}

static struct stream *pool_next(const struct stream *s)
{
	return s2s_g.pool != NULL ? s->hnext : s->next;
}

static void pool_grow(void)
{
	size_t nb = s2s_g.pool_nb ? 2 * s2s_g.pool_nb : 64;
	struct stream **t = calloc(nb, sizeof(*t));

	if (t == NULL) {
		if (s2s_g.pool == NULL)
			s2s_g.pool_off = 1;
		return; /* longer chains, still correct */
	}
	for (size_t i = 0; i < s2s_g.pool_nb; i++) {
		struct stream *s, *n;

		for (s = s2s_g.pool[i]; s != NULL; s = n) {
			n = s->hnext;
			s->hnext = t[s->hash & (nb - 1)];
			t[s->hash & (nb - 1)] = s;
		}
	}
	free(s2s_g.pool);
	s2s_g.pool = t;
	s2s_g.pool_nb = nb;
}

/* Outbound s, linked, with peer, local and remote set: into the pool. */
static void pool_add(struct stream *s)
{
	struct stream **b;

	if (!s2s_g.pool_off && (s2s_g.pool == NULL || s2s_g.pool_n >= 2 * s2s_g.pool_nb))
		pool_grow();
	if (s2s_g.pool == NULL)
		return;
	s->hash = pool_hash(s->peer, s->local, s->remote);
	b = &s2s_g.pool[s->hash & (s2s_g.pool_nb - 1)];
	s->hnext = *b; /* newest first, like the list */
	*b = s;
	s2s_g.pool_n++;
}

void pool_del(struct stream *s)
{
	struct stream **pp;

	if (s2s_g.pool == NULL)
		return;
	for (pp = &s2s_g.pool[s->hash & (s2s_g.pool_nb - 1)]; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			s2s_g.pool_n--;
			return;
		}
}

/* o belongs to the pool slot of (peer, from, to). */
static int pool_match(const struct stream *o, int peer, const char *from, const char *to)
{
	return o->dir == DIR_OUT && o->peer == peer && strcmp(o->local, from) == 0 &&
	       strcmp(o->remote, to) == 0;
}

/* The certificate policy for a peer: its own anchors (ca_file) or the
 * global tls.trust, its pins and CN setting. 0 if the peer's certificates
 * can be checked at all, -ENOKEY when nothing is configured to check them. */
int peer_policy(const struct runtime *rt, int peer, struct ident_policy *p)
{
	const struct cfg_peer *cp = &rt->cfg->peers[peer];

	memset(p, 0, sizeof(*p));
	p->trust = rt->peer_trust[peer] != NULL ? rt->peer_trust[peer] : rt->trust;
	p->pins = (const unsigned char(*)[IDENT_PIN_LEN])cp->pins;
	p->npins = cp->npins;
	p->allow_cn = cp->allow_cn;
	return p->trust == NULL && p->npins == 0 ? -ENOKEY : 0;
}

/* ---- outbound failure: bounce the queue, answer pending verifications ---- */

/* Append from's queue to to's (order kept); from's becomes empty. */
void queue_move(struct stream *from, struct stream *to)
{
	if (from->qhead == NULL)
		return;
	*to->qtail = from->qhead;
	to->qtail = from->qtail;
	to->qcount += from->qcount;
	to->qbytes += from->qbytes;
	from->qhead = NULL;
	from->qtail = &from->qhead;
	from->qcount = from->qbytes = 0;
}

/* Everything queued on s goes to another link to the same trunk peer, if
 * s is a link and one is up, else back to its senders (condition). */
void out_bounce_queue(struct stream *s, const char *condition, const char *why)
{
	struct qitem *q;

	if (s->trunk && s->qhead != NULL)
		trunk_rescue(s); /* what it cannot take is bounced below */
	while ((q = s->qhead) != NULL) {
		struct bounce_in b = {q->name, q->to, q->from, q->type, q->id};
		char text[DOMAIN_MAX + 256];

		s->qhead = q->next;
		snprintf(text, sizeof(text), "xtrunk: next hop for %s: %s", s->remote, why);
		bounce(&b, condition, text);
		free(q);
	}
	s->qtail = &s->qhead;
	s->qcount = s->qbytes = 0;
}

void out_fail(struct stream *s, const char *condition, const char *why)
{
	struct vreq *v;
	size_t n = s->qcount;

	if (s->state == ST_CLOSING)
		return;
	slog(s,
	     "event=next-hop-failed from=%s to=%s state=%s condition=%s reason=\"%s\" queued=%zu",
	     s->local, s->remote, state_names[s->state], condition, why, n);
	/* Out of the pool first, so bounces never pick this stream. */
	s->state = ST_CLOSING;
	net_stop_reading(s->conn);
	if (s->header_sent)
		swrite(s, "</stream:stream>", 16);
	net_close(s->conn);
	out_bounce_queue(s, condition, why);
	while ((v = s->vreqs) != NULL) {
		s->vreqs = v->next;
		/* v->from is the domain we acted for (the inbound 'to'), v->to the sender */
		in_verify_answer(v->in_serial, v->to, v->from, -1, condition);
		vreq_free(v);
	}
}

/* ---- outbound ---- */

/* One stanza written to outbound stream s; t_read 0 for our own. */
void count_sent(struct stream *s, uint64_t t_read)
{
	if (s->sent_route == NULL) {
		const struct route *r = route_lookup(s->cfg->routes, s->remote);

		s->sent_route = r != NULL ? r->pattern : "-";
	}
	stats_count(STATS_STANZAS_SENT, s->sent_route, s->cfg->peers[s->peer].name);
	if (t_read != 0)
		stats_latency(stats_clock_us() - t_read);
}

void out_send_vreqs(struct stream *s)
{
	struct vreq *v;
	char f[DOMAIN_MAX * 6 + 1], t[DOMAIN_MAX * 6 + 1], id[256], key[256];

	for (v = s->vreqs; v != NULL; v = v->next) {
		if (v->sent)
			continue;
		v->sent = 1;
		swritef(s, "<db:verify from='%s' to='%s' id='%s'>%s</db:verify>",
			esc(f, sizeof(f), v->from), esc(t, sizeof(t), v->to),
			esc(id, sizeof(id), v->id), esc(key, sizeof(key), v->key));
		slog(s, "event=dialback-verify-sent from=%s to=%s", v->from, v->to);
		/* an authoritative server that never answers must not hold the
		 * inbound stream's dialback forever */
		if (s->state == ST_OPEN)
			set_timer(s, s->cfg->handshake_timeout * 1000);
	}
}

/* Toward another xtrunkd (peers.[].trunk), each stanza is preceded by
 * <hop xmlns='urn:xtrunk:0' n='N'/>: the relays it has crossed. The next
 * relay adds one and refuses it past limits.max_hops, so a route cycle
 * between relays ends with one bounce. Leaves never see it. */
void write_hops(struct stream *s, unsigned hops)
{
	if (s->cfg->peers[s->peer].trunk)
		swritef(s, "<hop xmlns='" NS_XTRUNK "' n='%u'/>", hops);
}

static void out_flush(struct stream *s)
{
	struct qitem *q;

	if (s->trunk) {
		trunk_pump(s);
		return;
	}
	while ((q = s->qhead) != NULL && s->state == ST_ESTABLISHED) {
		s->qhead = q->next;
		write_hops(s, q->hops);
		swrite(s, q->bytes, q->len);
		count_sent(s, q->t_read);
		log_trace(LOG_TRACE_STANZA,
			  "stream=%u event=forward kind=%s from=%s to=%s peer=%s queued=1",
			  s->serial, q->name, s->local, s->remote, s->cfg->peers[s->peer].name);
		free(q);
	}
	if (s->qhead == NULL)
		s->qtail = &s->qhead;
	s->qcount = s->qbytes = 0;
}

static void out_send_result(struct stream *s)
{
	char key[DB_KEY_LEN + 1];
	char f[DOMAIN_MAX * 6 + 1], t[DOMAIN_MAX * 6 + 1];

	if (s->result_sent || s->state != ST_OPEN)
		return;
	if (db_key(s->cfg->dialback_secret, s->remote, s->local, s->id, key) < 0) {
		out_fail(s, "internal-server-error", "cannot compute dialback key");
		return;
	}
	s->result_sent = 1;
	s->state = ST_DBWAIT;
	set_timer(s, s->cfg->handshake_timeout * 1000);
	swritef(s, "<db:result from='%s' to='%s'>%s</db:result>", esc(f, sizeof(f), s->local),
		esc(t, sizeof(t), s->remote), key);
	slog(s, "event=dialback-result-sent from=%s to=%s", s->local, s->remote);
}

/* The address of s could not be reached: move its queue and pending
 * verifications to the pair's stream on the next address that may be
 * tried (a superseded one still up, or a new one). 1 if moved; then s
 * closes without bouncing anything. */
static int out_failover(struct stream *s, const char *why)
{
	struct stream *t = NULL, *o;
	struct vreq **vp;
	int next;

	if (s->rt != s2s_g.rt || (next = peer_pick_addr(s->peer)) < 0 || (unsigned)next == s->addr)
		return 0;
	for (o = pool_first(s->peer, s->local, s->remote); o != NULL; o = pool_next(o))
		if (o != s && o->state != ST_CLOSING && o->rt == s2s_g.rt &&
		    o->addr == (unsigned)next && pool_match(o, s->peer, s->local, s->remote)) {
			t = o;
			break;
		}
	if (t == NULL && (t = out_new(s->peer, (unsigned)next, s->local, s->remote)) == NULL)
		return 0;
	/* a trunk link fails over to a trunk link, as trunk_forward makes one */
	if (s->trunk && !t->trunk && trunk_make_link(t) < 0) {
		stream_close(t);
		return 0;
	}
	t->superseded = 0;
	slog(s, "event=failover from=%s to=%s reason=%s next-addr=%s:%d queued=%zu", s->local,
	     s->remote, why, s->cfg->peers[s->peer].addrs[next].host,
	     s->cfg->peers[s->peer].addrs[next].port, s->qcount);
	if (s->qhead != NULL && !t->trunk) /* a link asks for each pair instead */
		t->want_auth = 1;
	queue_move(s, t);
	for (vp = &t->vreqs; *vp != NULL; vp = &(*vp)->next)
		;
	*vp = s->vreqs;
	for (; *vp != NULL; vp = &(*vp)->next)
		(*vp)->sent = 0;
	s->vreqs = NULL;
	s->state = ST_CLOSING; /* net closes a failed connect itself */
	if (t->state == ST_ESTABLISHED) {
		out_send_vreqs(t);
		out_flush(t);
	} else if (t->state == ST_OPEN) {
		out_send_vreqs(t);
		if (t->qcount > 0 && !t->result_sent)
			out_send_result(t);
	}
	return 1;
}

static void out_on_connected(void *ctx, int status)
{
	struct stream *s = ctx;

	if (status < 0) {
		peer_reached(s, 0);
		if (out_failover(s, status == -ETIMEDOUT ? "connect-timeout" : "refused"))
			return;
		out_fail(s, "remote-server-not-found",
			 status == -ETIMEDOUT ? "connect timed out" : "connection refused");
		return;
	}
	peer_reached(s, 1);
	slog(s, "event=connected from=%s to=%s", s->local, s->remote);
	set_timer(s, s->cfg->handshake_timeout * 1000);
	if (s->cfg->peers[s->peer].direct_tls) {
		/* XEP-0368: TLS first, SNI = the target domain; the header
		 * follows the handshake (out_on_tls) */
		s->state = ST_TLS;
		if (net_start_tls_client(s->conn, s->rt->peer_creds[s->peer], s->remote, s->local,
					 1) < 0)
			out_fail(s, "remote-server-timeout", "cannot start direct TLS");
		return;
	}
	s->state = ST_HEADER;
	send_header(s, NULL);
}

static int has_child(const struct xs_stanza *st, unsigned depth, const char *name, const char *ns)
{
	size_t i;

	for (i = 0; i < st->nchildren; i++)
		if (st->children[i].depth == depth && strcmp(st->children[i].name, name) == 0 &&
		    strcmp(st->children[i].ns, ns) == 0)
			return 1;
	return 0;
}

static int has_child_text(const struct xs_stanza *st, unsigned depth, const char *name,
			  const char *ns, const char *text)
{
	size_t i;

	for (i = 0; i < st->nchildren; i++)
		if (st->children[i].depth == depth && strcmp(st->children[i].name, name) == 0 &&
		    strcmp(st->children[i].ns, ns) == 0 && strcmp(st->children[i].text, text) == 0)
			return 1;
	return 0;
}

/* The pair's stream on a more preferred address is up: the streams it
 * superseded take nothing new; close those with no verification pending. */
/* s is up on a preferred address: the streams it superseded close, handing
 * it what still waits on them (on a link, stanzas whose pair was still
 * being asked; s asks again), so that nothing is freed unsent. */
static void out_close_superseded(struct stream *s)
{
	struct stream *o;

	for (o = pool_first(s->peer, s->local, s->remote); o != NULL; o = pool_next(o))
		if (o != s && o->superseded && o->state != ST_CLOSING && o->rt == s->rt &&
		    o->vreqs == NULL && pool_match(o, s->peer, s->local, s->remote)) {
			slog(o, "event=failback from=%s to=%s queued=%zu", o->local, o->remote,
			     o->qcount);
			queue_move(o, s);
			stream_close(o);
		}
}

static void out_established(struct stream *s, const char *auth)
{
	s->state = ST_ESTABLISHED;
	if (s->rt == s2s_g.rt && s2s_g.failback_at != NULL && s->addr > 0)
		s2s_g.failback_at[s->peer] = net_now_ms() + s->cfg->failback * 1000ull;
	out_close_superseded(s);
	s->auth = auth;
	slog(s, "event=established from=%s to=%s tls=%s auth=%s", s->local, s->remote,
	     net_tls_describe(s->conn), auth);
	arm_idle(s);
	out_send_vreqs(s);
	out_flush(s);
	/* senders paused while it was negotiated, or a pause that timed out
	 * then (bp_stuck): the drain ends both */
	if (s->bp_waited || s->bp_stuck)
		net_want_drain(s->conn, s->cfg->queue_max_bytes / 2);
	if (s2s_g.draining && s->vreqs == NULL)
		stream_close(s);
}

/* SASL EXTERNAL (XEP-0178) with the client certificate we presented for
 * our 'from'; authzid = our 'from'. */
static void out_send_auth(struct stream *s)
{
	gnutls_datum_t in = {(unsigned char *)s->local, (unsigned)strlen(s->local)}, out = {0};

	if (gnutls_base64_encode2(&in, &out) < 0) {
		out_fail(s, "internal-server-error", "cannot encode the SASL authzid");
		return;
	}
	s->sasl_tried = 1;
	s->state = ST_SASL;
	swritef(s, "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>%.*s</auth>", (int)out.size,
		(const char *)out.data);
	gnutls_free(out.data);
	slog(s, "event=sasl-auth-sent from=%s certificate=%s", s->local,
	     net_tls_presented(s->conn));
	set_timer(s, s->cfg->handshake_timeout * 1000);
}

/* Negotiated, to be authenticated with dialback. A stream that only
 * carries db:verify requests stays here, so from now on it is timed as
 * idle; db:result restarts the handshake timer. */
static void out_open(struct stream *s)
{
	s->state = ST_OPEN;
	arm_idle(s);
	out_send_vreqs(s);
	if (s->want_auth)
		out_send_result(s);
}

static void out_on_features(struct stream *s, const struct xs_stanza *st)
{
	const struct cfg_peer *p = &s->cfg->peers[s->peer];

	s->db_offered = has_child(st, 2, "dialback", NS_DB_FEATURE);
	if (s->sasl_done) { /* features after the SASL restart */
		out_established(s, "certificate");
		return;
	}
	if (!s->tls && p->tls != CFG_TLS_NONE && has_child(st, 2, "starttls", NS_TLS)) {
		swrites(s, "<starttls xmlns='" NS_TLS "'/>");
		s->state = ST_PROCEED;
		return;
	}
	if (!s->tls && p->tls == CFG_TLS_REQUIRED) {
		out_fail(s, "remote-server-timeout", "next hop does not offer STARTTLS");
		return;
	}
	if (s->trunk && !s->bidi && has_child(st, 2, "bidi", NS_BIDI_FEATURE)) {
		/* XEP-0288: before authentication */
		swrites(s, "<bidi xmlns='" NS_BIDI "'/>");
		s->bidi = 1;
	}
	if (s->tls && !s->sasl_tried && net_tls_presented(s->conn) != NULL &&
	    has_child_text(st, 3, "mechanism", NS_SASL, "EXTERNAL")) {
		out_send_auth(s);
		return;
	}
	if (s->trunk) {
		out_fail(s, "remote-server-timeout",
			 net_tls_presented(s->conn) == NULL
			     ? "trunk link: the relay has no certificate for relay_name"
			     : "trunk link: the peer does not offer SASL EXTERNAL");
		return;
	}
	if (p->auth == CFG_AUTH_CERTIFICATE) {
		out_fail(s, "remote-server-timeout",
			 net_tls_presented(s->conn) == NULL
			     ? "peer requires certificates and the relay has none for this domain"
			     : "next hop does not offer SASL EXTERNAL");
		return;
	}
	out_open(s);
}

static void out_on_db(struct stream *s, const struct xs_stanza *st)
{
	char from[DOMAIN_MAX + 1], to[DOMAIN_MAX + 1];
	struct vreq **vp, *v;

	if (s->trunk && s->state == ST_ESTABLISHED && strcmp(st->name, "result") == 0) {
		trunk_on_result(s, st);
		return;
	}
	if (norm(st->from, from) < 0 || norm(st->to, to) < 0) {
		stream_error(s, "improper-addressing", NULL);
		return;
	}
	if (strcmp(st->name, "result") == 0) {
		/* only the answer to our own db:result counts (no unsolicited results) */
		if (!s->result_sent || s->state != ST_DBWAIT || strcmp(from, s->remote) != 0 ||
		    strcmp(to, s->local) != 0) {
			slog(s, "event=dialback-unsolicited kind=result from=%s to=%s", from, to);
			return;
		}
		if (st->type != NULL && strcmp(st->type, "valid") == 0) {
			out_established(s, "dialback");
		} else {
			stats_count(STATS_AUTH_FAILURES, "next-hop-refused-dialback", NULL);
			out_fail(s, "remote-server-timeout", "next hop refused our dialback");
		}
		return;
	}
	/* db:verify answer: correlate with a request on this stream */
	for (vp = &s->vreqs; (v = *vp) != NULL; vp = &v->next)
		if (v->sent && strcmp(v->from, to) == 0 && strcmp(v->to, from) == 0 &&
		    st->id != NULL && strcmp(v->id, st->id) == 0)
			break;
	if (v == NULL) {
		slog(s, "event=dialback-unsolicited kind=verify from=%s to=%s", from, to);
		return;
	}
	*vp = v->next;
	if (s->vreqs == NULL && s->state == ST_OPEN)
		arm_idle(s);
	in_verify_answer(v->in_serial, from, to, st->type != NULL && strcmp(st->type, "valid") == 0,
			 NULL);
	vreq_free(v);
}

void out_on_stanza(struct stream *s, const struct xs_stanza *st)
{
	if (strcmp(st->ns, XS_NS_STREAM) == 0 && strcmp(st->name, "features") == 0) {
		if (s->state == ST_FEATURES)
			out_on_features(s, st);
		return;
	}
	if (strcmp(st->ns, XS_NS_STREAM) == 0 && strcmp(st->name, "error") == 0) {
		char why[96];

		snprintf(why, sizeof(why), "next hop sent the stream error %.40s",
			 st->nchildren > 0 ? st->children[0].name : "(none)");
		out_fail(s, "remote-server-timeout", why);
		return;
	}
	if (strcmp(st->ns, NS_TLS) == 0) {
		if (s->state == ST_PROCEED && strcmp(st->name, "proceed") == 0) {
			xs_stop(s->xs);
			s->start_tls = 1;
		} else {
			out_fail(s, "remote-server-timeout", "next hop refused STARTTLS");
		}
		return;
	}
	if (strcmp(st->ns, XS_NS_DIALBACK) == 0) {
		out_on_db(s, st);
		return;
	}
	if (strcmp(st->ns, NS_SASL) == 0 && s->state == ST_SASL) {
		if (strcmp(st->name, "success") == 0) {
			s->sasl_done = 1;
			s->sasl_restart = 1;
			xs_stop(s->xs);
			slog(s, "event=sasl-success from=%s to=%s", s->local, s->remote);
			return;
		}
		slog(s, "event=sasl-failed from=%s to=%s", s->local, s->remote);
		stats_count(STATS_AUTH_FAILURES, "next-hop-refused-sasl-external", NULL);
		if (s->cfg->peers[s->peer].auth == CFG_AUTH_CERTIFICATE) {
			out_fail(s, "remote-server-timeout", "next hop refused our certificate");
			return;
		}
		if (!s->db_offered) {
			out_fail(s, "remote-server-timeout",
				 "next hop refused our certificate and offers no dialback");
			return;
		}
		/* XEP-0178: fall back to dialback on the same stream */
		out_open(s);
		return;
	}
	/* With bidi the trunk peer sends on our stream as on its own. */
	if (s->trunk && s->bidi && s->state == ST_ESTABLISHED) {
		if (strcmp(st->ns, NS_XTRUNK) == 0 && strcmp(st->name, "hop") == 0) {
			in_on_hop(s, st);
			return;
		}
		if (strcmp(st->ns, XS_NS_SERVER) == 0 &&
		    (strcmp(st->name, "message") == 0 || strcmp(st->name, "presence") == 0 ||
		     strcmp(st->name, "iq") == 0)) {
			in_on_xmpp(s, st);
			s->hop_hint = 0;
			return;
		}
	}
	/* Without bidi the next hop has no business sending stanzas here. */
	stream_error(s, "unsupported-stanza-type", NULL);
}

void out_on_header(struct stream *s, const struct xs_header *h)
{
	if (h->id == NULL || h->id[0] == '\0' || strlen(h->id) >= sizeof(s->id)) {
		out_fail(s, "remote-server-timeout", "next hop sent no usable stream id");
		return;
	}
	snprintf(s->id, sizeof(s->id), "%s", h->id);
	s->state = ST_FEATURES;
}

static void out_on_tls(void *ctx, int status)
{
	struct stream *s = ctx;
	const struct cfg_peer *p = &s->cfg->peers[s->peer];
	const char *identity = p->identity != NULL ? p->identity : s->remote;

	if (status < 0) {
		stats_count(STATS_TLS_FAILURES, "out", net_tls_failure(s->conn));
		out_fail(s, "remote-server-timeout", "TLS handshake with next hop failed");
		return;
	}
	struct ident_policy pol;
	char why[128] = "";
	int checked = peer_policy(s->rt, s->peer, &pol) == 0;

	int res = checked ? net_tls_check(s->conn, identity, &pol, why, sizeof(why)) : IDENT_OK;

	if (res != IDENT_OK && p->auth == CFG_AUTH_CERTIFICATE) {
		char reason[300];

		slog(s, "event=certificate-refused identity=%s reason=\"%s: %s\"", identity,
		     ident_result_str((enum ident_result)res), why);
		stats_count(STATS_AUTH_FAILURES, "next-hop-certificate-refused", NULL);
		snprintf(reason, sizeof(reason), "next hop certificate refused: %s: %s",
			 ident_result_str((enum ident_result)res), why);
		out_fail(s, "remote-server-timeout", reason);
		return;
	}
	if (res != IDENT_OK) {
		/* peers.auth = "any": dialback still authenticates us to the
		 * next hop, whose address is configured, not looked up */
		slog(s,
		     "event=certificate-unverified identity=%s reason=\"%s: %s\" fallback=dialback",
		     identity, ident_result_str((enum ident_result)res), why);
		checked = 0;
	}
	s->tls = 1;
	slog(s, "event=tls-up tls=%s verified=%s", net_tls_describe(s->conn),
	     checked ? identity : "no");
	s->state = ST_HEADER;
	send_header(s, NULL);
}

/* ---- the outbound pool ---- */

struct stream *out_find(int peer, const char *from, const char *to)
{
	struct stream *s;

	for (s = pool_first(peer, from, to); s != NULL; s = pool_next(s))
		if (s->state != ST_CLOSING && s->rt == s2s_g.rt && !s->superseded &&
		    pool_match(s, peer, from, to))
			return s;
	return NULL;
}

static const struct net_callbacks out_net_cb = {
    .on_connected = out_on_connected,
    .on_data = on_data,
    .on_tls = out_on_tls,
    .on_timeout = on_timeout,
    .on_error = on_error,
    .on_closed = on_closed,
    .on_drain = on_drain,
};

/* A new outbound stream for the pair; the caller looked in the pool. */
struct stream *out_new(int peer, unsigned addr, const char *from, const char *to)
{
	const struct cfg_peer *p = &s2s_g.rt->cfg->peers[peer];
	const struct cfg_addr *a = &p->addrs[addr];
	struct stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->dir = DIR_OUT;
	s->state = ST_CONNECT;
	s->peer = peer;
	s->addr = addr;
	s->rt = runtime_ref(s2s_g.rt);
	s->cfg = s->rt->cfg;
	s->qtail = &s->qhead;
	snprintf(s->local, sizeof(s->local), "%s", from);
	snprintf(s->remote, sizeof(s->remote), "%s", to);
	s->xs = xs_new(&stream_xs_cb, s, &s2s_g.limits);
	if (s->xs == NULL)
		goto fail;
	stream_link(s);
	pool_add(s);
	s->conn = net_connect(a->host, a->port, s->cfg->connect_timeout * 1000, &out_net_cb, s);
	if (s->conn == NULL) {
		stream_unlink(s);
		goto fail;
	}
	log_info("stream=%u dir=out event=connecting peer=%s addr=%s:%d priority=%d from=%s to=%s",
		 s->serial, p->name, a->host, a->port, a->priority, from, to);
	stats_count(STATS_STREAMS_OPENED, "out", NULL);
	return s;
fail:
	stream_free(s);
	return NULL;
}

/* s, up on a fallback address of its peer: now and then (limits.failback)
 * bring the preferred address back. The new stream (a link when s is one)
 * takes the stanzas from now on; s takes none and closes once the new one
 * is up (out_established), or takes over again if it fails (out_failover).
 * Returns the stream to use. */
struct stream *out_failback(struct stream *s)
{
	int peer = s->peer, better;
	struct stream *n;

	if (s->dir != DIR_OUT || s->addr == 0 || s->state != ST_ESTABLISHED || s->rt != s2s_g.rt ||
	    s2s_g.failback_at == NULL || net_now_ms() < s2s_g.failback_at[peer])
		return s;
	s2s_g.failback_at[peer] = net_now_ms() + s->cfg->failback * 1000ull;
	better = peer_pick_addr(peer);
	if (better < 0 || (unsigned)better >= s->addr)
		return s;
	n = out_new(peer, (unsigned)better, s->local, s->remote);
	if (n == NULL)
		return s;
	if (s->trunk && trunk_make_link(n) < 0) {
		stream_close(n);
		return s;
	}
	slog(s, "event=failback-try from=%s to=%s addr=%s:%d", s->local, s->remote,
	     s->cfg->peers[peer].addrs[better].host, s->cfg->peers[peer].addrs[better].port);
	s->superseded = 1;
	return n;
}

/* Write one stanza on s now (its hop count first, toward a trunk peer). */
void send_now(struct stream *s, const char *from_dom, const char *to_dom, const char *bytes,
	      size_t len, const struct bounce_in *b)
{
	write_hops(s, s2s_g.hops);
	swrite(s, bytes, len);
	count_sent(s, b != NULL ? s2s_g.t_read : 0);
	arm_idle(s);
	log_trace(LOG_TRACE_STANZA, "stream=%u event=forward kind=%s from=%s to=%s peer=%s",
		  s->serial, b != NULL ? b->name : "error", from_dom, to_dom,
		  s->cfg->peers[s->peer].name);
}

/* No room toward the next hop: bounce (our own errors are only logged). */
void queue_full(struct stream *s, const char *from_dom, const char *to_dom,
		const struct bounce_in *b)
{
	const char *kind = b != NULL ? b->name : "error";
	static struct flood full, drop;

	if (flood_ok(&full, "queue-full"))
		slog(s, "event=queue-full kind=%s from=%s to=%s", kind, from_dom, to_dom);
	if (b != NULL) {
		bounce(b, "resource-constraint", "xtrunk: queue toward next hop is full");
		return;
	}
	/* an error stanza: never answered with an error */
	stats_count(STATS_DROPPED, "queue-full", NULL);
	if (flood_ok(&drop, "drop"))
		log_info("event=drop reason=queue-full kind=%s from=%s to=%s", kind, from_dom,
			 to_dom);
}

/* Every address of peer waits out its back-off: bounce at once. */
void peer_unreachable(int peer, const char *from_dom, const char *to_dom, const struct bounce_in *b)
{
	char text[128];

	snprintf(text, sizeof(text), "xtrunk: next hop %.40s unreachable; next attempt in %u s",
		 s2s_g.rt->cfg->peers[peer].name, peer_backoff_left(peer));
	if (b != NULL)
		bounce(b, "remote-server-not-found", text);
	else {
		stats_count(STATS_DROPPED, "peer-backoff", NULL);
		log_info("event=drop reason=peer-backoff kind=error from=%s to=%s", from_dom,
			 to_dom);
	}
}

/* Append a copy of the stanza to s's queue (with what a bounce needs). 0,
 * or -ENOMEM (logged; the stanza is dropped). */
int queue_add(struct stream *s, const char *from_dom, const char *to_dom, const char *bytes,
	      size_t len, const struct bounce_in *b)
{
	const char *kind = b != NULL ? b->name : "error";
	struct qitem *q;
	size_t need;
	char *p;

	need = sizeof(*q) + len + 1 + strlen(from_dom) + strlen(to_dom) + 2;
	if (b != NULL)
		need += strlen(b->name) + strlen(b->to) + strlen(b->from) +
			(b->type ? strlen(b->type) : 0) + (b->id ? strlen(b->id) : 0) + 5;
	q = malloc(need);
	if (q == NULL) {
		stats_count(STATS_DROPPED, "out-of-memory", NULL);
		log_err("event=drop reason=out-of-memory kind=%s", kind);
		return -ENOMEM;
	}
	memset(q, 0, sizeof(*q));
	p = (char *)(q + 1);
	q->bytes = p;
	memcpy(p, bytes, len);
	p[len] = '\0';
	p += len + 1;
	q->len = len;
	q->from_dom = p;
	p = stpcpy(p, from_dom) + 1;
	q->to_dom = p;
	p = stpcpy(p, to_dom) + 1;
	q->t_read = b != NULL ? s2s_g.t_read : 0;
	q->hops = s2s_g.hops;
	q->name = (char *)"error";
	if (b != NULL) {
#define QCOPY(f)                                                                                   \
	if (b->f != NULL) {                                                                        \
		q->f = p;                                                                          \
		p = stpcpy(p, b->f) + 1;                                                           \
	}
		QCOPY(name) QCOPY(to) QCOPY(from) QCOPY(type) QCOPY(id)
#undef QCOPY
	} else {
		q->type = (char *)"error"; /* never bounced */
	}
	*s->qtail = q;
	s->qtail = &q->next;
	s->qcount++;
	s->qbytes += len;
	s->want_auth = 1;
	log_trace(LOG_TRACE_STANZA, "stream=%u event=queued kind=%s from=%s to=%s state=%s",
		  s->serial, kind, from_dom, to_dom, state_names[s->state]);
	return 0;
}

/* Queue or write one stanza toward peer for (from_dom -> to_dom). b describes
 * the stanza for a bounce; NULL for our own error stanzas (never bounced). */
void forward(int peer, const char *from_dom, const char *to_dom, const char *bytes, size_t len,
	     const struct bounce_in *b)
{
	const char *kind = b != NULL ? b->name : "error";
	struct stream *s;

	if (config_peer_is_link(s2s_g.rt->cfg, peer)) {
		trunk_forward(peer, from_dom, to_dom, bytes, len, b);
		return;
	}
	s = out_find(peer, from_dom, to_dom); /* one search per stanza */
	if (s == NULL) {
		int addr = peer_pick_addr(peer);

		if (addr < 0) {
			peer_unreachable(peer, from_dom, to_dom, b);
			return;
		}
		s = out_new(peer, (unsigned)addr, from_dom, to_dom);
	} else {
		s = out_failback(s);
	}
	if (s == NULL) {
		stats_count(STATS_DROPPED, "out-of-memory", NULL);
		log_err("event=drop reason=out-of-memory kind=%s from=%s to=%s", kind, from_dom,
			to_dom);
		return;
	}
	/* A next hop that reads slower than we receive: the bytes waiting in
	 * its write queue count against the same bound as the pending queue,
	 * so memory stays bounded and the excess is bounced, not lost. */
	if (s->state == ST_ESTABLISHED &&
	    (net_write_queue_size(s->conn) + len <= s->cfg->queue_max_bytes || bp_hold(s, len))) {
		send_now(s, from_dom, to_dom, bytes, len, b);
		return;
	}
	if (s->state == ST_ESTABLISHED || s->qcount >= s->cfg->queue_max_stanzas ||
	    s->qbytes + len > s->cfg->queue_max_bytes) {
		if (s->state != ST_ESTABLISHED)
			(void)bp_hold(s, len); /* pauses the sender; this one bounces */
		queue_full(s, from_dom, to_dom, b);
		return;
	}
	if (queue_add(s, from_dom, to_dom, bytes, len, b) < 0)
		return;
	if (s->state == ST_OPEN)
		out_send_result(s);
}

void backoff_reset(const struct runtime *rt)
{
	size_t n = 0, np = rt->cfg->npeers ? rt->cfg->npeers : 1;

	free(s2s_g.backoff);
	free(s2s_g.addr_base);
	free(s2s_g.failback_at);
	s2s_g.addr_base = calloc(np, sizeof(*s2s_g.addr_base));
	s2s_g.failback_at = calloc(np, sizeof(*s2s_g.failback_at));
	for (size_t i = 0; i < rt->cfg->npeers; i++) {
		if (s2s_g.addr_base != NULL)
			s2s_g.addr_base[i] = n;
		n += rt->cfg->peers[i].naddrs;
	}
	s2s_g.backoff = calloc(n ? n : 1, sizeof(*s2s_g.backoff));
	if (s2s_g.addr_base == NULL || s2s_g.failback_at == NULL || s2s_g.backoff == NULL) {
		/* without the tables every address is always tried */
		free(s2s_g.backoff);
		free(s2s_g.addr_base);
		free(s2s_g.failback_at);
		s2s_g.backoff = NULL;
		s2s_g.addr_base = NULL;
		s2s_g.failback_at = NULL;
	}
}
