/* s2s_trunk: trunk links between xtrunkd peers (s2s_int.h): one stream
 * per peer carrying every domain pair (XEP-0288 bidi), pairs asked with
 * db:result and answered from the config (XEP-0220 multiplexing). */
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

static int tpair_add(struct stream *s, const char *from, const char *to);
static int trunk_ready(const struct stream *s);
static struct stream *trunk_link_except(int peer, const struct stream *skip);

/* Outbound stream s (to a trunk peer, relay_name -> identity) becomes a
 * link: the pairs it carries are asked one by one. 0, or -ENOMEM (the
 * caller closes s). */
int trunk_make_link(struct stream *s)
{
	if (s->authz == NULL && (s->authz = authz_new(MAX_PAIRS)) == NULL)
		return -ENOMEM;
	trunk_mark(s);
	return 0;
}

/* s becomes a trunk link (XEP-0288); it is linked, the caller set s->peer. */
void trunk_mark(struct stream *s)
{
	s->trunk = 1;
	s->tprev = NULL;
	s->tnext = s2s_g.trunks;
	if (s2s_g.trunks != NULL)
		s2s_g.trunks->tprev = s;
	s2s_g.trunks = s;
}

/* A trunk link failed with stanzas waiting for their pairs: another link
 * to the same peer that is up (the peer's own, when both sides connected
 * at once) takes them instead of a bounce. 1 if it did. */
int trunk_rescue(struct stream *s)
{
	struct stream *t = s->rt == s2s_g.rt ? trunk_link_except(s->peer, s) : NULL;

	if (t == NULL || !trunk_ready(t))
		return 0;
	slog(s, "event=trunk-rescue queued=%zu to-stream=%u", s->qcount, t->serial);
	queue_move(s, t);
	trunk_pump(t);
	return 1;
}

/* ---- trunk links (XEP-0288 between xtrunkd peers) ----
 *
 * With a peer that is another xtrunkd (peers.[].trunk, its identity and our
 * relay_name set), one stream carries every domain pair, both ways:
 *   outbound: header relay_name -> identity, STARTTLS, <bidi/> when offered,
 *             SASL EXTERNAL (certificates only), restart: the link is up.
 *   inbound:  header identity -> relay_name, the same, mirrored; <bidi/>
 *             makes the inbound stream our link too.
 * A pair is announced with db:result before its first stanza (dialback
 * multiplexing, XEP-0220 2.5) and answered at once from the config of the
 * side that receives it (peers.[].authorize, else the routes: the sender
 * must lie behind the peer), not by dialing back. Stanzas wait per pair
 * until the answer; a refused pair is bounced. */

/* The state of the pair on s, or NULL; valid until the next tpair_add. */
static int *tpair_find(struct stream *s, const char *from, const char *to)
{
	return s->tpairs != NULL ? pairset_find(s->tpairs, from, to) : NULL;
}

static int tpair_add(struct stream *s, const char *from, const char *to)
{
	if (s->tpairs == NULL && (s->tpairs = pairset_new(MAX_PAIRS)) == NULL)
		return -ENOMEM;
	return pairset_add(s->tpairs, from, to, TP_ASKED);
}

/* s may carry stanzas toward its trunk peer now. */
static int trunk_ready(const struct stream *s)
{
	if (!s->trunk || s->state == ST_CLOSING)
		return 0;
	return s->dir == DIR_OUT ? s->state == ST_ESTABLISHED : s->bidi && s->sasl_open;
}

/* When both relays of a pair open links at once, one link must win: the
 * link opened by the relay whose relay_name sorts first. The other relay
 * yields (trunk_yield) and prefers the peer's link. */
static int trunk_we_yield(const struct config *cfg, int peer)
{
	return strcmp(cfg->relay_name, cfg->peers[peer].identity) > 0;
}

/* The link to trunk peer `peer` of s2s_g.rt (other than skip). If we keep our
 * links: our own when it is up; our own to the preferred address while it
 * comes up (traffic does not jump to whichever instance of the peer
 * connected to us meanwhile); the peer's (bidi) when it is up; our own to
 * a fallback address coming up. If we yield: the peer's first. NULL: open
 * one. */
static struct stream *trunk_link_except(int peer, const struct stream *skip)
{
	struct stream *s, *own_ready = NULL, *own_coming = NULL, *theirs = NULL;

	for (s = s2s_g.trunks; s != NULL; s = s->tnext) {
		if (s == skip || s->peer != peer || s->rt != s2s_g.rt || s->state == ST_CLOSING ||
		    s->superseded || (s->dir == DIR_IN && !s->bidi))
			continue;
		if (s->dir == DIR_OUT && trunk_ready(s) && own_ready == NULL)
			own_ready = s;
		else if (s->dir == DIR_OUT && (own_coming == NULL || s->addr < own_coming->addr))
			own_coming = s;
		else if (s->dir == DIR_IN && theirs == NULL && trunk_ready(s))
			theirs = s;
	}
	if (trunk_we_yield(s2s_g.rt->cfg, peer) && theirs != NULL)
		return theirs;
	if (own_ready != NULL)
		return own_ready;
	if (own_coming != NULL && own_coming->addr == 0)
		return own_coming;
	return theirs != NULL ? theirs : own_coming;
}

/* The peer's link l came up with bidi and we yield: our own links to that
 * peer hand what waits on them to l and close. */
void trunk_yield(struct stream *l)
{
	struct stream *o;

	if (l->rt != s2s_g.rt || !trunk_we_yield(l->cfg, l->peer)) {
		trunk_pump(l);
		return;
	}
	for (o = s2s_g.trunks; o != NULL; o = o->tnext) {
		if (o == l || o->dir != DIR_OUT || o->peer != l->peer || o->rt != l->rt ||
		    o->state == ST_CLOSING)
			continue;
		slog(o, "event=trunk-yield queued=%zu to-stream=%u", o->qcount, l->serial);
		queue_move(o, l);
		stream_close(o);
	}
	trunk_pump(l);
}

static struct stream *trunk_link(int peer)
{
	return trunk_link_except(peer, NULL);
}

/* Announce the pair (from -> to) with db:result; the peer answers. */
static int trunk_ask(struct stream *s, const char *from, const char *to)
{
	char key[DB_KEY_LEN + 1], f[DOMAIN_MAX * 6 + 1], t[DOMAIN_MAX * 6 + 1];

	if (tpair_add(s, from, to) < 0)
		return -ENOMEM;
	/* The peer answers from its config; a real key still lets it dial
	 * back instead, should it want to. */
	if (db_key(s->cfg->dialback_secret, to, from, s->id, key) < 0)
		snprintf(key, sizeof(key), "%s", "0");
	swritef(s, "<db:result from='%s' to='%s'>%s</db:result>", esc(f, sizeof(f), from),
		esc(t, sizeof(t), to), key);
	slog(s, "event=trunk-pair-asked from=%s to=%s", from, to);
	return 0;
}

/* Write what waits for pairs the peer accepted, ask for pairs not asked
 * yet, bounce what waits for pairs it refused. */
void trunk_pump(struct stream *s)
{
	struct qitem **qp = &s->qhead, *q, *refused = NULL, **rtail = &refused;

	if (!trunk_ready(s))
		return;
	while ((q = *qp) != NULL) {
		int *tp = tpair_find(s, q->from_dom, q->to_dom);

		if (tp == NULL && trunk_ask(s, q->from_dom, q->to_dom) == 0)
			tp = tpair_find(s, q->from_dom, q->to_dom);
		if (tp != NULL && *tp == TP_ASKED) {
			qp = &q->next;
			continue;
		}
		*qp = q->next;
		s->qcount--;
		s->qbytes -= q->len;
		if (tp != NULL && *tp == TP_OK) {
			write_hops(s, q->hops);
			swrite(s, q->bytes, q->len);
			count_sent(s, q->t_read);
			log_trace(LOG_TRACE_STANZA,
				  "stream=%u event=forward kind=%s from=%s to=%s peer=%s queued=1",
				  s->serial, q->name, q->from_dom, q->to_dom,
				  s->cfg->peers[s->peer].name);
			free(q);
		} else {
			q->next = NULL;
			*rtail = q;
			rtail = &q->next;
		}
	}
	s->qtail = qp;
	arm_idle(s);
	/* after the walk: a bounce may queue onto this very stream */
	while ((q = refused) != NULL) {
		struct bounce_in b = {q->name, q->to, q->from, q->type, q->id};

		refused = q->next;
		bounce(&b, "remote-server-timeout",
		       "xtrunk: the trunk peer refused the domain pair");
		free(q);
	}
}

void trunk_forward(int peer, const char *from_dom, const char *to_dom, const char *bytes,
		   size_t len, const struct bounce_in *b)
{
	const struct cfg_peer *p = &s2s_g.rt->cfg->peers[peer];
	const char *kind = b != NULL ? b->name : "error";
	struct stream *s = trunk_link(peer);
	int *tp;

	if (s == NULL) {
		int addr = peer_pick_addr(peer);

		if (addr < 0) {
			peer_unreachable(peer, from_dom, to_dom, b);
			return;
		}
		s = out_new(peer, (unsigned)addr, s2s_g.rt->cfg->relay_name, p->identity);
		if (s == NULL || trunk_make_link(s) < 0) {
			stats_count(STATS_DROPPED, "out-of-memory", NULL);
			log_err("event=drop reason=out-of-memory kind=%s from=%s to=%s", kind,
				from_dom, to_dom);
			if (s != NULL)
				stream_close(s);
			return;
		}
	} else {
		s = out_failback(s); /* a link on a fallback address */
	}
	tp = tpair_find(s, from_dom, to_dom);
	if (tp != NULL && *tp == TP_REFUSED) {
		if (b != NULL)
			bounce(b, "remote-server-timeout",
			       "xtrunk: the trunk peer refused the domain pair");
		return;
	}
	if (trunk_ready(s) && tp != NULL && *tp == TP_OK &&
	    (net_write_queue_size(s->conn) + len <= s->cfg->queue_max_bytes || bp_hold(s, len))) {
		send_now(s, from_dom, to_dom, bytes, len, b);
		return;
	}
	if ((trunk_ready(s) && tp != NULL && *tp == TP_OK) ||
	    s->qcount >= s->cfg->queue_max_stanzas || s->qbytes + len > s->cfg->queue_max_bytes) {
		queue_full(s, from_dom, to_dom, b);
		return;
	}
	if (queue_add(s, from_dom, to_dom, bytes, len, b) < 0)
		return;
	if (trunk_ready(s) && tp == NULL && trunk_ask(s, from_dom, to_dom) < 0) {
		stream_error(s, "resource-constraint", "too many domain pairs on the trunk link");
		return;
	}
}

/* The trunk peer asks to send from -> to: answered from the config. */
static void trunk_authorize(struct stream *s, const char *from, const char *to)
{
	const struct cfg_peer *p = &s->cfg->peers[s->peer];
	const struct route *rf = route_lookup(s->cfg->routes, from);
	const struct route *rt = route_lookup(s->cfg->routes, to);
	char f[DOMAIN_MAX * 6 + 1], t[DOMAIN_MAX * 6 + 1];
	const char *why = NULL;

	if (p->authorize != NULL ? route_lookup(p->authorize, from) == NULL
				 : rf == NULL || rf->peer != s->peer)
		why = p->authorize != NULL ? "not-in-authorize" : "reverse-path";
	else if (rt == NULL)
		why = "no-route-for-target";
	else if (rt->peer == s->peer)
		why = "route-to-ingress";
	else if (authz_add(s->authz, from, to) < 0)
		why = "too-many-pairs";
	esc(f, sizeof(f), from);
	esc(t, sizeof(t), to);
	if (why != NULL) {
		slog(s, "event=trunk-pair-refused from=%s to=%s reason=%s", from, to, why);
		stats_count(STATS_AUTH_FAILURES, "trunk-pair-refused", NULL);
		swritef(s, "<db:result from='%s' to='%s' type='invalid'/>", t, f);
		return;
	}
	slog(s, "event=dialback-valid from=%s to=%s auth=trunk", from, to);
	swritef(s, "<db:result from='%s' to='%s' type='valid'/>", t, f);
	arm_idle(s);
}

/* db:result on a trunk link: an answer to a pair we asked for, or a
 * request for a pair the peer wants to send. */
void trunk_on_result(struct stream *s, const struct xs_stanza *st)
{
	char from[DOMAIN_MAX + 1], to[DOMAIN_MAX + 1];
	int *tp;

	if (norm(st->from, from) < 0 || norm(st->to, to) < 0) {
		stream_error(s, "improper-addressing", "db:result needs from and to");
		return;
	}
	if (st->type == NULL) {
		trunk_authorize(s, from, to);
		return;
	}
	tp = tpair_find(s, to, from); /* the answer swaps from and to */
	if (tp == NULL || *tp != TP_ASKED) {
		slog(s, "event=dialback-unsolicited kind=result from=%s to=%s", from, to);
		return;
	}
	*tp = strcmp(st->type, "valid") == 0 ? TP_OK : TP_REFUSED;
	slog(s, "event=trunk-pair from=%s to=%s result=%s", to, from,
	     *tp == TP_OK ? "valid" : "refused");
	trunk_pump(s);
}
