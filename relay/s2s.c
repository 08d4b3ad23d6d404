/* s2s: the stream state machines and the routing between them.
 *
 * Inbound stream (a leaf or relay connects to us):
 *   HEADER      wait for the stream header; its 'to' must have a route
 *               (else host-unknown). Answer with our header and features:
 *               STARTTLS (required unless tls.inbound says otherwise), and
 *               after TLS the dialback feature with <errors/>.
 *   <starttls/> -> <proceed/>, TLS handshake, stream restart (HEADER).
 *   OPEN        db:result (from=a to=b): verified by sending db:verify to
 *               a's authoritative server, the next hop of a's route, over
 *               an outbound stream (b -> a). On the answer the pair (a, b)
 *               is authorised on this stream and db:result type=valid sent.
 *               db:verify: answered from our own XEP-0185 key (we are the
 *               authoritative server for every domain we originate).
 *               Stanzas: from/to present, the pair authorised (invalid-from
 *               otherwise), then forwarded.
 *
 * Outbound stream (we connect to the next hop for a pair local -> remote):
 *   CONNECT     TCP connect (failure bounces remote-server-not-found)
 *   HEADER      header sent, wait for the peer's header and features
 *   PROCEED     <starttls/> sent; on <proceed/> TLS with SNI = remote,
 *               optional chain/identity check, stream restart (HEADER)
 *   OPEN        features after TLS: pending db:verify requests are sent;
 *               when stanzas wait, db:result with our key is sent
 *   DBWAIT      wait for db:result type=valid
 *   ESTABLISHED queued stanzas flushed, later ones written straight through
 * Any failure before ESTABLISHED bounces every queued stanza
 * (remote-server-timeout) and answers pending verifications with an error.
 *
 * Streams are found through one list; everything that refers to another
 * stream across time (a pending verification) holds its serial number,
 * never a pointer, so a stream may die at any moment. */
#include "s2s.h"

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

#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_STREAMS_ERR "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_DB_FEATURE "urn:xmpp:features:dialback"
#define NS_XTRUNK "urn:xtrunk:0" /* hop counts between xtrunkd peers */
#define NS_BIDI "urn:xmpp:bidi"	 /* XEP-0288: the request */
#define NS_BIDI_FEATURE "urn:xmpp:features:bidi"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define MAX_PENDING_DB 64 /* dialback requests in flight per stream */
#define MAX_PAIRS 1024	  /* authorised pairs per inbound stream */

enum s2s_dir { DIR_IN, DIR_OUT };

enum s2s_state {
	ST_CONNECT,
	ST_HEADER,
	ST_FEATURES,
	ST_PROCEED,
	ST_TLS,
	ST_OPEN,
	ST_DBWAIT,
	ST_SASL,
	ST_ESTABLISHED,
	ST_CLOSING
};

static const char *const state_names[] = {"connect",	 "header", "features", "proceed",
					  "tls",	 "open",   "dbwait",   "sasl",
					  "established", "closing"};

/* A stanza waiting for its outbound stream; one allocation. */
struct qitem {
	struct qitem *next; /* owned */
	size_t len;
	uint64_t t_read; /* stats_clock_us() when the stanza was read, 0 for our own */
	unsigned hops;	 /* relays crossed so far (sent to trunk peers) */
	char *bytes;	 /* points into this allocation */
	/* for the bounce, pointing into this allocation or NULL */
	char *name, *to, *from, *type, *id;
	/* the domain pair, pointing into this allocation (trunk links queue
	 * every pair on one stream) */
	char *from_dom, *to_dom;
};

/* A domain pair we asked a trunk peer to accept on a trunk link: the value
 * of the pair in the stream's tpairs. */
enum tpair_state { TP_ASKED = 1, TP_OK, TP_REFUSED };

/* A db:verify we sent (or will send) on behalf of an inbound stream. */
struct vreq {
	struct vreq *next;  /* owned */
	unsigned in_serial; /* the inbound stream waiting for the answer */
	int sent;
	char *from, *to, *id, *key; /* owned; from = the domain we act for */
};

struct stream {
	struct stream *next, *prev;   /* the global list (borrowed links) */
	struct stream *hnext;	      /* outbound: the pool's hash chain (borrowed) */
	uint64_t hash;		      /* outbound: pool_hash(peer, local, remote) */
	struct stream *tnext, *tprev; /* trunk links: g.trunks (borrowed links) */
	unsigned serial;
	enum s2s_dir dir;
	enum s2s_state state;
	struct net_conn *conn; /* owned until on_closed */
	struct xs *xs;	       /* owned */
	struct runtime *rt;    /* ref: the snapshot this stream started with */
	struct config *cfg;    /* borrowed from rt */
	int tls;	       /* TLS is up */
	int header_sent;
	int restart;	  /* after this feed: xs_reset (stream restart) */
	int start_tls;	  /* after this feed: check injection, start TLS */
	int sasl_restart; /* after this feed: stream restart after SASL success */
	int sasl_done;	  /* SASL EXTERNAL succeeded on this stream */
	int sasl_tried;	  /* outbound: auth sent (no second try) */
	/* inbound: the last certificate check (in_cert_ok), kept for a
	 * moment: the features and the SASL answer ask the same question one
	 * round trip apart, and a chain verification is most of a handshake */
	struct {
		uint64_t at; /* net_now_ms() of the check, 0 = none */
		int ok;
		char domain[DOMAIN_MAX + 1], why[128];
	} cert_memo;
	int db_offered;		     /* outbound: the next hop advertised dialback */
	int pending_db;		     /* inbound: dialback verifications in flight */
	int db_auth;		     /* inbound: a pair was authenticated by dialback */
	char id[40];		     /* inbound: our stream id; outbound: the peer's */
	char local[DOMAIN_MAX + 1];  /* in: header 'to'; out: our 'from' */
	char remote[DOMAIN_MAX + 1]; /* in: header 'from' (may be empty); out: 'to' */
	uint64_t active_at;	     /* net_now_ms() of the last stanza (idle, keepalive) */
	int idle_armed;		     /* the timer runs for idle/keepalive, see arm_idle */
	/* Trunk link (XEP-0288) with a trunk peer: one stream carries every
	 * domain pair; with bidi, in both directions. */
	int trunk;		/* this stream is the link to/from trunk peer `peer` */
	int bidi;		/* bidi negotiated: it sends and receives */
	int bidi_asked;		/* inbound: the peer sent <bidi/> before authenticating */
	int sasl_open;		/* inbound: restarted after SASL success: may carry stanzas */
	struct pairset *tpairs; /* owned: pairs we send, and their tpair_state */
	/* inbound */
	struct authz *authz; /* owned: pairs authenticated on this stream */
	unsigned hop_hint;   /* hops announced for the next stanza by a trunk peer */
	/* outbound */
	int peer;	  /* index in cfg->peers */
	unsigned addr;	  /* index in cfg->peers[peer].addrs */
	int superseded;	  /* a more preferred address is being brought up: no new stanzas */
	int want_auth;	  /* stanzas wait: authenticate with db:result */
	const char *auth; /* static: how the next hop accepted us, or NULL */
	int result_sent;
	struct qitem *qhead, **qtail; /* owned list */
	size_t qcount, qbytes;
	struct vreq *vreqs; /* owned list */
};

static struct {
	struct runtime *rt;	/* ref: the current snapshot, for new streams and routing */
	struct stream *streams; /* the list; each stream is owned by its connection */
	/* Every outbound stream, also chained in a hash of (peer, from, to):
	 * the per-stanza pool search looks at one chain, not at every stream
	 * (1,000 inbound streams feeding one outbound stream made it a walk
	 * of the whole list). NULL with pool_off: the table could not be
	 * allocated and searches walk the list. */
	struct stream **pool; /* owned array of pool_nb chain heads */
	size_t pool_nb, pool_n;
	int pool_off;
	struct stream *trunks; /* the trunk links, both directions (a short list) */
	unsigned next_serial;
	struct xs_limits limits;
	int draining;		     /* SIGTERM: finish what is queued, take nothing new */
	struct policy_state *policy; /* owned: rate buckets, kept across reloads */
	uint64_t t_read;	     /* while in_on_xmpp routes a stanza: when it was read */
	unsigned hops;		     /* while in_on_xmpp routes a stanza: relays it crossed */
	/* Per address of every peer of g.rt (peer p's addresses start at
	 * addr_base[p]): an address that could not be reached is not tried
	 * again before retry_at (1 s, doubling to 64 s); when every address of
	 * a peer waits, its stanzas are bounced at once. Reset by a reload and
	 * by a connection. */
	struct addr_backoff {
		unsigned fails;
		uint64_t retry_at; /* ms, net_now_ms() */
	} * backoff;		   /* owned array, one per address */
	size_t *addr_base;	   /* owned array, g.rt->cfg->npeers entries */
	uint64_t *failback_at;	   /* owned array: next try of a preferred address, per peer */
} g;

/* The most preferred address of a g.rt peer that may be tried now, or -1. */
static int peer_pick_addr(int peer)
{
	const struct cfg_peer *p = &g.rt->cfg->peers[peer];
	uint64_t now = net_now_ms();

	for (size_t i = 0; i < p->naddrs; i++)
		if (g.backoff == NULL || g.backoff[g.addr_base[peer] + i].retry_at <= now)
			return (int)i;
	return -1;
}

/* Seconds until some address of peer may be tried again, 0 if now. Only
 * for g.rt peers. */
static unsigned peer_backoff_left(int peer)
{
	const struct cfg_peer *p = &g.rt->cfg->peers[peer];
	uint64_t now = net_now_ms(), soonest = UINT64_MAX;

	if (g.backoff == NULL || peer_pick_addr(peer) >= 0)
		return 0;
	for (size_t i = 0; i < p->naddrs; i++)
		if (g.backoff[g.addr_base[peer] + i].retry_at < soonest)
			soonest = g.backoff[g.addr_base[peer] + i].retry_at;
	return (unsigned)((soonest - now + 999) / 1000);
}

static void peer_reached(const struct stream *s, int ok)
{
	struct addr_backoff *b;

	if (g.backoff == NULL || s->rt != g.rt)
		return;
	b = &g.backoff[g.addr_base[s->peer] + s->addr];
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

static void out_send_result(struct stream *s);
static void in_verify_answer(unsigned in_serial, const char *from, const char *to, int valid,
			     const char *condition);
static void forward(int peer, const char *from_dom, const char *to_dom, const char *bytes,
		    size_t len, const struct bounce_in *b);
/* used by outbound trunk links with bidi, which also receive */
static void trunk_on_result(struct stream *s, const struct xs_stanza *st);
static void in_on_hop(struct stream *s, const struct xs_stanza *st);
static void in_on_xmpp(struct stream *s, const struct xs_stanza *st);

/* ---- small helpers ---- */

static void slog(const struct stream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void slog(const struct stream *s, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("stream=%u dir=%s peer=%s %s", s->serial, s->dir == DIR_IN ? "in" : "out",
		 s->conn != NULL ? net_peer(s->conn) : "-", msg);
}

/* Lines logged once per stanza when something goes wrong (queue full,
 * bounce, drop) come in floods when a next hop falls behind, and writing
 * each one made the relay slower exactly then (a 1.2x overload fell to a
 * tenth of the rate). At most FLOOD_LINES of each kind per second are
 * logged; the rest are counted and reported in one event=log-suppressed
 * line when the next one of that kind comes in a later second. The
 * metrics still count every one. */
#define FLOOD_LINES 100

struct flood {
	uint64_t second; /* net_now_ms() / 1000 of the current window */
	unsigned lines, suppressed;
};

static int flood_ok(struct flood *f, const char *what)
{
	uint64_t now = net_now_ms() / 1000;

	if (now != f->second) {
		if (f->suppressed > 0)
			log_info("event=log-suppressed what=%s lines=%u seconds=%llu", what,
				 f->suppressed, (unsigned long long)(now - f->second));
		f->second = now;
		f->lines = f->suppressed = 0;
	}
	if (f->lines < FLOOD_LINES) {
		f->lines++;
		return 1;
	}
	f->suppressed++;
	return 0;
}

static void make_id(char *out, size_t outsz)
{
	unsigned char r[12];
	size_t i;

	if (gnutls_rnd(GNUTLS_RND_NONCE, r, sizeof(r)) < 0)
		memset(r, 0, sizeof(r));
	for (i = 0; i < sizeof(r) && 2 * i + 2 < outsz; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static void swrite(struct stream *s, const char *data, size_t len)
{
	if (s->state == ST_CLOSING || s->conn == NULL)
		return;
	if (net_write(s->conn, data, len) < 0) {
		slog(s, "event=write-failed");
		net_close(s->conn);
		s->state = ST_CLOSING;
	}
}

/* The stream carried a stanza: the idle clock restarts. The timer fires at
 * the next whitespace keepalive (limits.keepalive) or at the idle timeout,
 * whichever comes first; on_timeout tells them apart. */
static unsigned idle_period_ms(const struct stream *s)
{
	unsigned idle = s->cfg->idle_timeout, ka = s->cfg->keepalive;

	return (ka != 0 && ka < idle ? ka : idle) * 1000;
}

/* Every stanza counts as activity. Restarting the timer for each (a heap
 * removal and insertion among every stream's timers, twice per forwarded
 * stanza) cost more than the rest of the bookkeeping with 1,000 streams, so
 * the timer stays armed and on_timeout re-arms it for what is left when the
 * stream was active meanwhile: it still fires one period after the last
 * stanza. Any other use of the timer (set_timer) ends that mode. */
static void arm_idle(struct stream *s)
{
	s->active_at = net_now_ms();
	if (s->conn != NULL && !s->idle_armed) {
		net_set_timer(s->conn, idle_period_ms(s));
		s->idle_armed = 1;
	}
}

/* The timer for anything but idleness (negotiation steps, keepalives). */
static void set_timer(struct stream *s, unsigned ms)
{
	s->idle_armed = 0;
	net_set_timer(s->conn, ms);
}

/* From on_timeout: if the stream is not idle yet, send a whitespace
 * keepalive (RFC 6120 4.6.1) and re-arm; 1 if it did. A link that died
 * silently then fails the write, or the kernel gives up on the unacked
 * bytes (net_set_dead_timeout), instead of waiting for the idle timeout. */
static int keepalive_due(struct stream *s)
{
	uint64_t idle = (uint64_t)s->cfg->idle_timeout * 1000, ka = s->cfg->keepalive * 1000ull,
		 elapsed;

	if (ka == 0 || s->conn == NULL)
		return 0;
	elapsed = net_now_ms() - s->active_at;
	if (elapsed >= idle)
		return 0;
	if (net_write(s->conn, " ", 1) < 0)
		return 0;
	net_set_dead_timeout(s->conn, (unsigned)(3 * ka));
	set_timer(s, (unsigned)(idle - elapsed < ka ? idle - elapsed : ka));
	return 1;
}

static void swrites(struct stream *s, const char *str)
{
	swrite(s, str, strlen(str));
}

/* printf into a buffer, escaping nothing: callers pass escaped values. */
static void swritef(struct stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void swritef(struct stream *s, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		slog(s, "event=internal-error reason=element-too-long");
		return;
	}
	swrite(s, buf, (size_t)n);
}

static const char *esc(char *buf, size_t bufsz, const char *v)
{
	if (xs_escape(buf, bufsz, v != NULL ? v : "") >= bufsz)
		buf[0] = '\0';
	return buf;
}

static void send_header(struct stream *s, const char *id)
{
	char f[DOMAIN_MAX * 6 + 1], t[DOMAIN_MAX * 6 + 1];

	esc(f, sizeof(f), s->local);
	esc(t, sizeof(t), s->remote);
	swritef(s,
		"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
		"xmlns:stream='http://etherx.jabber.org/streams' "
		"xmlns:db='jabber:server:dialback'%s%s%s from='%s'%s%s%s version='1.0'>",
		id != NULL ? " id='" : "", id != NULL ? id : "", id != NULL ? "'" : "", f,
		t[0] ? " to='" : "", t, t[0] ? "'" : "");
	s->header_sent = 1;
}

/* Stream error, then close (RFC 6120 4.9). On an inbound stream whose
 * header we have not answered yet, our header goes first. */
static void stream_error(struct stream *s, const char *condition, const char *text)
{
	char id[40];

	if (s->state == ST_CLOSING)
		return;
	slog(s, "event=stream-error condition=%s%s%s", condition, text ? " text=" : "",
	     text ? text : "");
	if (!s->header_sent) {
		make_id(id, sizeof(id));
		send_header(s, s->dir == DIR_IN ? id : NULL);
	}
	swritef(s, "<stream:error><%s xmlns='" NS_STREAMS_ERR "'/>", condition);
	if (text != NULL)
		swritef(s, "<text xmlns='" NS_STREAMS_ERR "'>%s</text>", text);
	swrites(s, "</stream:error></stream:stream>");
	s->state = ST_CLOSING;
	net_stop_reading(s->conn);
	net_close(s->conn);
}

static void stream_close(struct stream *s)
{
	if (s->state == ST_CLOSING)
		return;
	if (s->header_sent)
		swrites(s, "</stream:stream>");
	s->state = ST_CLOSING;
	net_stop_reading(s->conn);
	net_close(s->conn);
}

static struct stream *stream_by_serial(unsigned serial)
{
	struct stream *s;

	for (s = g.streams; s != NULL; s = s->next)
		if (s->serial == serial)
			return s;
	return NULL;
}

static void stream_link(struct stream *s)
{
	s->serial = ++g.next_serial;
	s->next = g.streams;
	if (g.streams != NULL)
		g.streams->prev = s;
	g.streams = s;
}

static void pool_del(struct stream *s);

static void stream_unlink(struct stream *s)
{
	if (s->dir == DIR_OUT)
		pool_del(s);
	if (s->trunk) {
		if (s->tprev != NULL)
			s->tprev->tnext = s->tnext;
		else
			g.trunks = s->tnext;
		if (s->tnext != NULL)
			s->tnext->tprev = s->tprev;
	}
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		g.streams = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
}

/* s becomes a trunk link (XEP-0288); it is linked, the caller set s->peer. */
static void trunk_mark(struct stream *s)
{
	s->trunk = 1;
	s->tprev = NULL;
	s->tnext = g.trunks;
	if (g.trunks != NULL)
		g.trunks->tprev = s;
	g.trunks = s;
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
	if (g.pool == NULL)
		return g.streams;
	return g.pool[pool_hash(peer, from, to) & (g.pool_nb - 1)];
}

static struct stream *pool_next(const struct stream *s)
{
	return g.pool != NULL ? s->hnext : s->next;
}

static void pool_grow(void)
{
	size_t nb = g.pool_nb ? 2 * g.pool_nb : 64;
	struct stream **t = calloc(nb, sizeof(*t));

	if (t == NULL) {
		if (g.pool == NULL)
			g.pool_off = 1;
		return; /* longer chains, still correct */
	}
	for (size_t i = 0; i < g.pool_nb; i++) {
		struct stream *s, *n;

		for (s = g.pool[i]; s != NULL; s = n) {
			n = s->hnext;
			s->hnext = t[s->hash & (nb - 1)];
			t[s->hash & (nb - 1)] = s;
		}
	}
	free(g.pool);
	g.pool = t;
	g.pool_nb = nb;
}

/* Outbound s, linked, with peer, local and remote set: into the pool. */
static void pool_add(struct stream *s)
{
	struct stream **b;

	if (!g.pool_off && (g.pool == NULL || g.pool_n >= 2 * g.pool_nb))
		pool_grow();
	if (g.pool == NULL)
		return;
	s->hash = pool_hash(s->peer, s->local, s->remote);
	b = &g.pool[s->hash & (g.pool_nb - 1)];
	s->hnext = *b; /* newest first, like the list */
	*b = s;
	g.pool_n++;
}

static void pool_del(struct stream *s)
{
	struct stream **pp;

	if (g.pool == NULL)
		return;
	for (pp = &g.pool[s->hash & (g.pool_nb - 1)]; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			g.pool_n--;
			return;
		}
}

/* o belongs to the pool slot of (peer, from, to). */
static int pool_match(const struct stream *o, int peer, const char *from, const char *to)
{
	return o->dir == DIR_OUT && o->peer == peer && strcmp(o->local, from) == 0 &&
	       strcmp(o->remote, to) == 0;
}

/* The text content of a simple element such as <db:result ...>KEY</db:result>:
 * what lies between the end of the first tag (quotes respected) and the next
 * '<'. Keys are hex, so no entity decoding is needed; anything else fails. */
static int element_text(const char *b, size_t len, char *out, size_t outsz)
{
	size_t i = 0, n = 0;
	char q = 0;

	for (; i < len; i++) {
		if (q) {
			if (b[i] == q)
				q = 0;
		} else if (b[i] == '\'' || b[i] == '"') {
			q = b[i];
		} else if (b[i] == '>') {
			break;
		}
	}
	if (i >= len || (i > 0 && b[i - 1] == '/'))
		return out[0] = '\0', 0;
	for (i++; i < len && b[i] != '<'; i++) {
		if (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n')
			continue;
		if (n + 1 >= outsz || b[i] == '&')
			return -EINVAL;
		out[n++] = b[i];
	}
	out[n] = '\0';
	return (int)n;
}

static int norm(const char *v, char *out)
{
	if (v == NULL)
		return -EINVAL;
	return domain_normalise(v, strlen(v), out, DOMAIN_MAX + 1);
}

/* The certificate policy for a peer: its own anchors (ca_file) or the
 * global tls.trust, its pins and CN setting. 0 if the peer's certificates
 * can be checked at all, -ENOKEY when nothing is configured to check them. */
static int peer_policy(const struct runtime *rt, int peer, struct ident_policy *p)
{
	const struct cfg_peer *cp = &rt->cfg->peers[peer];

	memset(p, 0, sizeof(*p));
	p->trust = rt->peer_trust[peer] != NULL ? rt->peer_trust[peer] : rt->trust;
	p->pins = (const unsigned char(*)[IDENT_PIN_LEN])cp->pins;
	p->npins = cp->npins;
	p->allow_cn = cp->allow_cn;
	return p->trust == NULL && p->npins == 0 ? -ENOKEY : 0;
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

/* ---- lifetime ---- */

static void vreq_free(struct vreq *v)
{
	free(v->from);
	free(v->to);
	free(v->id);
	free(v->key);
	free(v);
}

/* Return an error to the sender of the stanza b describes (RFC 6120 8.3),
 * from the domain of its 'to', routed like any stanza. Errors are never
 * answered with errors: bounce_build refuses them. Logs what it did. */
static void bounce_as(const struct bounce_in *b, const char *condition, const char *errtype,
		      const char *text)
{
	const char *type = errtype != NULL ? errtype
			   : strcmp(condition, "remote-server-timeout") == 0 ||
				   strcmp(condition, "resource-constraint") == 0
			       ? "wait"
			       : "cancel";
	char buf[32768], fd[DOMAIN_MAX + 1], td[DOMAIN_MAX + 1];
	const struct route *r;
	int n = bounce_build(b, condition, type, text, buf, sizeof(buf));

	if (n < 0) {
		const char *why = n == -EPERM ? "error-not-bounced" : "bounce-not-built";

		stats_count(STATS_DROPPED, why, NULL);
		log_info("event=drop reason=%s kind=%s type=%s", why, b->name,
			 b->type != NULL ? b->type : "-");
		return;
	}
	if (jid_domain(b->to, fd, sizeof(fd)) < 0 || jid_domain(b->from, td, sizeof(td)) < 0 ||
	    (r = route_lookup(g.rt->cfg->routes, td)) == NULL) {
		stats_count(STATS_DROPPED, "no-route-for-bounce", NULL);
		log_warn("event=drop reason=no-route-for-bounce kind=%s", b->name);
		return;
	}
	{
		static struct flood fl;

		if (flood_ok(&fl, "bounce"))
			log_info("event=bounce kind=%s id=%s from=%s to=%s condition=%s", b->name,
				 b->id != NULL ? b->id : "-", fd, td, condition);
	}
	stats_count(STATS_BOUNCES, condition, NULL);
	forward(r->peer, fd, td, buf, (size_t)n, NULL);
}

static void bounce(const struct bounce_in *b, const char *condition, const char *text)
{
	bounce_as(b, condition, NULL, text);
}

static void stream_free(struct stream *s)
{
	struct qitem *q;
	struct vreq *v;

	authz_free(s->authz);
	pairset_free(s->tpairs);
	while ((q = s->qhead) != NULL) {
		s->qhead = q->next;
		free(q);
	}
	while ((v = s->vreqs) != NULL) {
		s->vreqs = v->next;
		vreq_free(v);
	}
	xs_free(s->xs);
	runtime_unref(s->rt);
	free(s);
}

static void on_closed(void *ctx)
{
	struct stream *s = ctx;

	slog(s, "event=closed");
	s->conn = NULL;
	stream_unlink(s);
	stream_free(s);
}

/* ---- outbound failure: bounce the queue, answer pending verifications ---- */

static struct stream *trunk_link_except(int peer, const struct stream *skip);
static void trunk_pump(struct stream *s);
static int trunk_ready(const struct stream *s);

/* Append from's queue to to's (order kept); from's becomes empty. */
static void queue_move(struct stream *from, struct stream *to)
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

/* A trunk link failed with stanzas waiting for their pairs: another link
 * to the same peer that is up (the peer's own, when both sides connected
 * at once) takes them instead of a bounce. 1 if it did. */
static int trunk_rescue(struct stream *s)
{
	struct stream *t = s->rt == g.rt ? trunk_link_except(s->peer, s) : NULL;

	if (t == NULL || !trunk_ready(t))
		return 0;
	slog(s, "event=trunk-rescue queued=%zu to-stream=%u", s->qcount, t->serial);
	queue_move(s, t);
	trunk_pump(t);
	return 1;
}

static void out_fail(struct stream *s, const char *condition, const char *why)
{
	struct qitem *q;
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
	while ((v = s->vreqs) != NULL) {
		s->vreqs = v->next;
		/* v->from is the domain we acted for (the inbound 'to'), v->to the sender */
		in_verify_answer(v->in_serial, v->to, v->from, -1, condition);
		vreq_free(v);
	}
}

/* ---- outbound ---- */

/* One stanza written to outbound stream s; t_read 0 for our own. */
static void count_sent(const struct stream *s, uint64_t t_read)
{
	const struct route *r = route_lookup(s->cfg->routes, s->remote);

	stats_count(STATS_STANZAS_SENT, r != NULL ? r->pattern : "-", s->cfg->peers[s->peer].name);
	if (t_read != 0)
		stats_latency(stats_clock_us() - t_read);
}

static void out_send_vreqs(struct stream *s)
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
static void write_hops(struct stream *s, unsigned hops)
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

static struct stream *out_new(int peer, unsigned addr, const char *from, const char *to);

/* The address of s could not be reached: move its queue and pending
 * verifications to the pair's stream on the next address that may be
 * tried (a superseded one still up, or a new one). 1 if moved; then s
 * closes without bouncing anything. */
static int out_failover(struct stream *s, const char *why)
{
	struct stream *t = NULL, *o;
	struct vreq **vp;
	int next;

	if (s->rt != g.rt || (next = peer_pick_addr(s->peer)) < 0 || (unsigned)next == s->addr)
		return 0;
	for (o = pool_first(s->peer, s->local, s->remote); o != NULL; o = pool_next(o))
		if (o != s && o->state != ST_CLOSING && o->rt == g.rt &&
		    o->addr == (unsigned)next && pool_match(o, s->peer, s->local, s->remote)) {
			t = o;
			break;
		}
	if (t == NULL && (t = out_new(s->peer, (unsigned)next, s->local, s->remote)) == NULL)
		return 0;
	t->superseded = 0;
	slog(s, "event=failover from=%s to=%s reason=%s next-addr=%s:%d queued=%zu", s->local,
	     s->remote, why, s->cfg->peers[s->peer].addrs[next].host,
	     s->cfg->peers[s->peer].addrs[next].port, s->qcount);
	if (s->qhead != NULL)
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
static void out_close_superseded(const struct stream *s)
{
	struct stream *o;

	for (o = pool_first(s->peer, s->local, s->remote); o != NULL; o = pool_next(o))
		if (o != s && o->superseded && o->state != ST_CLOSING && o->rt == s->rt &&
		    o->vreqs == NULL && pool_match(o, s->peer, s->local, s->remote)) {
			slog(o, "event=failback from=%s to=%s", o->local, o->remote);
			stream_close(o);
		}
}

static void out_established(struct stream *s, const char *auth)
{
	s->state = ST_ESTABLISHED;
	if (s->rt == g.rt && g.failback_at != NULL && s->addr > 0)
		g.failback_at[s->peer] = net_now_ms() + s->cfg->failback * 1000ull;
	out_close_superseded(s);
	s->auth = auth;
	slog(s, "event=established from=%s to=%s tls=%s auth=%s", s->local, s->remote,
	     net_tls_describe(s->conn), auth);
	arm_idle(s);
	out_send_vreqs(s);
	out_flush(s);
	if (g.draining && s->vreqs == NULL)
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

static void out_on_stanza(struct stream *s, const struct xs_stanza *st)
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

static void out_on_header(struct stream *s, const struct xs_header *h)
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
		stats_count(STATS_TLS_FAILURES, "outbound-handshake", NULL);
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

static struct stream *out_find(int peer, const char *from, const char *to)
{
	struct stream *s;

	for (s = pool_first(peer, from, to); s != NULL; s = pool_next(s))
		if (s->state != ST_CLOSING && s->rt == g.rt && !s->superseded &&
		    pool_match(s, peer, from, to))
			return s;
	return NULL;
}

static void on_data(void *ctx, const char *data, size_t len);
static void on_timeout(void *ctx);
static void on_error(void *ctx, int status);

static const struct net_callbacks out_net_cb = {
    .on_connected = out_on_connected,
    .on_data = on_data,
    .on_tls = out_on_tls,
    .on_timeout = on_timeout,
    .on_error = on_error,
    .on_closed = on_closed,
};

static const struct xs_callbacks stream_xs_cb;

/* A new outbound stream for the pair; the caller looked in the pool. */
static struct stream *out_new(int peer, unsigned addr, const char *from, const char *to)
{
	const struct cfg_peer *p = &g.rt->cfg->peers[peer];
	const struct cfg_addr *a = &p->addrs[addr];
	struct stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->dir = DIR_OUT;
	s->state = ST_CONNECT;
	s->peer = peer;
	s->addr = addr;
	s->rt = runtime_ref(g.rt);
	s->cfg = s->rt->cfg;
	s->qtail = &s->qhead;
	snprintf(s->local, sizeof(s->local), "%s", from);
	snprintf(s->remote, sizeof(s->remote), "%s", to);
	s->xs = xs_new(&stream_xs_cb, s, &g.limits);
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

/* Write one stanza on s now (its hop count first, toward a trunk peer). */
static void send_now(struct stream *s, const char *from_dom, const char *to_dom, const char *bytes,
		     size_t len, const struct bounce_in *b)
{
	write_hops(s, g.hops);
	swrite(s, bytes, len);
	count_sent(s, b != NULL ? g.t_read : 0);
	arm_idle(s);
	log_trace(LOG_TRACE_STANZA, "stream=%u event=forward kind=%s from=%s to=%s peer=%s",
		  s->serial, b != NULL ? b->name : "error", from_dom, to_dom,
		  s->cfg->peers[s->peer].name);
}

/* No room toward the next hop: bounce (our own errors are only logged). */
static void queue_full(struct stream *s, const char *from_dom, const char *to_dom,
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
static void peer_unreachable(int peer, const char *from_dom, const char *to_dom,
			     const struct bounce_in *b)
{
	char text[128];

	snprintf(text, sizeof(text), "xtrunk: next hop %.40s unreachable; next attempt in %u s",
		 g.rt->cfg->peers[peer].name, peer_backoff_left(peer));
	if (b != NULL)
		bounce(b, "remote-server-not-found", text);
	else {
		stats_count(STATS_DROPPED, "peer-backoff", NULL);
		log_info("event=drop reason=peer-backoff kind=error from=%s to=%s", from_dom,
			 to_dom);
	}
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

/* The link to trunk peer `peer` of g.rt (other than skip). If we keep our
 * links: our own when it is up; our own to the preferred address while it
 * comes up (traffic does not jump to whichever instance of the peer
 * connected to us meanwhile); the peer's (bidi) when it is up; our own to
 * a fallback address coming up. If we yield: the peer's first. NULL: open
 * one. */
static struct stream *trunk_link_except(int peer, const struct stream *skip)
{
	struct stream *s, *own_ready = NULL, *own_coming = NULL, *theirs = NULL;

	for (s = g.trunks; s != NULL; s = s->tnext) {
		if (s == skip || s->peer != peer || s->rt != g.rt || s->state == ST_CLOSING ||
		    s->superseded || (s->dir == DIR_IN && !s->bidi))
			continue;
		if (s->dir == DIR_OUT && trunk_ready(s) && own_ready == NULL)
			own_ready = s;
		else if (s->dir == DIR_OUT && (own_coming == NULL || s->addr < own_coming->addr))
			own_coming = s;
		else if (s->dir == DIR_IN && theirs == NULL && trunk_ready(s))
			theirs = s;
	}
	if (trunk_we_yield(g.rt->cfg, peer) && theirs != NULL)
		return theirs;
	if (own_ready != NULL)
		return own_ready;
	if (own_coming != NULL && own_coming->addr == 0)
		return own_coming;
	return theirs != NULL ? theirs : own_coming;
}

/* The peer's link l came up with bidi and we yield: our own links to that
 * peer hand what waits on them to l and close. */
static void trunk_yield(struct stream *l)
{
	struct stream *o;

	if (l->rt != g.rt || !trunk_we_yield(l->cfg, l->peer)) {
		trunk_pump(l);
		return;
	}
	for (o = g.trunks; o != NULL; o = o->tnext) {
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
static void trunk_pump(struct stream *s)
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

static struct stream *out_new(int peer, unsigned addr, const char *from, const char *to);
static int queue_add(struct stream *s, const char *from_dom, const char *to_dom, const char *bytes,
		     size_t len, const struct bounce_in *b);

static void trunk_forward(int peer, const char *from_dom, const char *to_dom, const char *bytes,
			  size_t len, const struct bounce_in *b)
{
	const struct cfg_peer *p = &g.rt->cfg->peers[peer];
	const char *kind = b != NULL ? b->name : "error";
	struct stream *s = trunk_link(peer);
	int *tp;

	if (s == NULL) {
		int addr = peer_pick_addr(peer);

		if (addr < 0) {
			peer_unreachable(peer, from_dom, to_dom, b);
			return;
		}
		s = out_new(peer, (unsigned)addr, g.rt->cfg->relay_name, p->identity);
		if (s == NULL || (s->authz = authz_new(MAX_PAIRS)) == NULL) {
			stats_count(STATS_DROPPED, "out-of-memory", NULL);
			log_err("event=drop reason=out-of-memory kind=%s from=%s to=%s", kind,
				from_dom, to_dom);
			if (s != NULL)
				stream_close(s);
			return;
		}
		trunk_mark(s);
	}
	tp = tpair_find(s, from_dom, to_dom);
	if (tp != NULL && *tp == TP_REFUSED) {
		if (b != NULL)
			bounce(b, "remote-server-timeout",
			       "xtrunk: the trunk peer refused the domain pair");
		return;
	}
	if (trunk_ready(s) && tp != NULL && *tp == TP_OK &&
	    net_write_queue_size(s->conn) + len <= s->cfg->queue_max_bytes) {
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
static void trunk_on_result(struct stream *s, const struct xs_stanza *st)
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

/* Append a copy of the stanza to s's queue (with what a bounce needs). 0,
 * or -ENOMEM (logged; the stanza is dropped). */
static int queue_add(struct stream *s, const char *from_dom, const char *to_dom, const char *bytes,
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
	q->t_read = b != NULL ? g.t_read : 0;
	q->hops = g.hops;
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
static void forward(int peer, const char *from_dom, const char *to_dom, const char *bytes,
		    size_t len, const struct bounce_in *b)
{
	const char *kind = b != NULL ? b->name : "error";
	struct stream *s;

	if (config_peer_is_link(g.rt->cfg, peer)) {
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
	} else if (s->addr > 0 && s->state == ST_ESTABLISHED && g.failback_at != NULL &&
		   net_now_ms() >= g.failback_at[peer]) {
		/* on a fallback address: now and then bring the preferred one
		 * back; this stream takes no new stanzas meanwhile and closes
		 * once the new one is up (out_established) */
		int better = peer_pick_addr(peer);

		g.failback_at[peer] = net_now_ms() + s->cfg->failback * 1000ull;
		if (better >= 0 && (unsigned)better < s->addr) {
			struct stream *n = out_new(peer, (unsigned)better, from_dom, to_dom);

			if (n != NULL) {
				slog(s, "event=failback-try from=%s to=%s addr=%s:%d", from_dom,
				     to_dom, g.rt->cfg->peers[peer].addrs[better].host,
				     g.rt->cfg->peers[peer].addrs[better].port);
				s->superseded = 1;
				s = n;
			}
		}
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
	    net_write_queue_size(s->conn) + len <= s->cfg->queue_max_bytes) {
		send_now(s, from_dom, to_dom, bytes, len, b);
		return;
	}
	if (s->state == ST_ESTABLISHED || s->qcount >= s->cfg->queue_max_stanzas ||
	    s->qbytes + len > s->cfg->queue_max_bytes) {
		queue_full(s, from_dom, to_dom, b);
		return;
	}
	if (queue_add(s, from_dom, to_dom, bytes, len, b) < 0)
		return;
	if (s->state == ST_OPEN)
		out_send_result(s);
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

static void in_on_header(struct stream *s, const struct xs_header *h)
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
		swritef(s,
			"<db:result from='%s' to='%s' type='error'><error type='cancel'>"
			"<item-not-found xmlns='" NS_STANZAS "'/></error></db:result>",
			t, f);
		return;
	}
	r = route_lookup(g.rt->cfg->routes, from);
	if (r == NULL) {
		slog(s, "event=dialback-refused from=%s to=%s reason=no-route-for-sender", from,
		     to);
		stats_count(STATS_AUTH_FAILURES, "dialback-no-route", NULL);
		swritef(s,
			"<db:result from='%s' to='%s' type='error'><error type='cancel'>"
			"<remote-server-not-found xmlns='" NS_STANZAS "'/></error></db:result>",
			t, f);
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
			swritef(s,
				"<db:result from='%s' to='%s' type='error'><error type='auth'>"
				"<not-authorized xmlns='" NS_STANZAS "'/></error></db:result>",
				t, f);
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
		swritef(s,
			"<db:result from='%s' to='%s' type='error'><error type='cancel'>"
			"<remote-server-not-found xmlns='" NS_STANZAS "'/></error></db:result>",
			t, f);
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
static void in_verify_answer(unsigned in_serial, const char *from, const char *to, int valid,
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
		swritef(s,
			"<db:result from='%s' to='%s' type='error'><error type='cancel'>"
			"<%s xmlns='" NS_STANZAS "'/></error></db:result>",
			t, f, condition);
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
	const struct config *cfg = g.rt->cfg;
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
	policy_eval(cfg->policies, g.policy, &in, net_now_ms(), &d);
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
		     g.rt->cfg->peers[r->peer].name);
		snprintf(text, sizeof(text),
			 "xtrunk: the route for %s leads back to the peer the stanza came from",
			 to);
		bounce(b, "remote-server-not-found", text);
		return 0;
	}
	g.hops = s->hop_hint + 1;
	return 1;
}

static void in_on_xmpp(struct stream *s, const struct xs_stanza *st)
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
	r = route_lookup(g.rt->cfg->routes, to);
	if (r == NULL) { /* routes cannot change under a stream, but be safe */
		stream_error(s, "host-unknown", NULL);
		return;
	}
	log_trace(LOG_TRACE_STANZA, "stream=%u event=stanza kind=%s from=%s to=%s route=%s",
		  s->serial, st->name, from, to, r->pattern);
	back = route_lookup(g.rt->cfg->routes, from); /* one lookup for all three uses */
	if (!in_loop_check(s, st, from, to, r, back, &b))
		return;
	stats_count(STATS_STANZAS_RECEIVED, r->pattern,
		    back != NULL ? g.rt->cfg->peers[back->peer].name : "-");
	arm_idle(s);
	if (!in_policy(s, st, from, to, r, back, &b, &rewritten))
		return;
	g.t_read = stats_clock_us();
	if (rewritten.bytes != NULL)
		forward(r->peer, from, to, rewritten.bytes, rewritten.len, &b);
	else
		forward(r->peer, from, to, st->bytes, st->len, &b);
	g.t_read = 0;
	g.hops = 0;
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
static void in_on_hop(struct stream *s, const struct xs_stanza *st)
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

static void in_on_stanza(struct stream *s, const struct xs_stanza *st)
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
		slog(s, "event=tls-failed");
		stats_count(STATS_TLS_FAILURES, "inbound-handshake", NULL);
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

/* ---- shared stream callbacks ---- */

static void xs_on_header(void *ctx, const struct xs_header *h)
{
	struct stream *s = ctx;

	if (s->dir == DIR_IN)
		in_on_header(s, h);
	else
		out_on_header(s, h);
}

static void xs_on_stanza(void *ctx, const struct xs_stanza *st)
{
	struct stream *s = ctx;

	if (s->state == ST_CLOSING)
		return;
	if (s->dir == DIR_IN)
		in_on_stanza(s, st);
	else
		out_on_stanza(s, st);
}

static void xs_on_close(void *ctx)
{
	struct stream *s = ctx;

	slog(s, "event=peer-closed-stream");
	if (s->dir == DIR_OUT)
		out_fail(s, "remote-server-timeout", "next hop closed the stream");
	else
		stream_close(s);
}

static void xs_on_error(void *ctx, enum xs_error err, const char *detail)
{
	struct stream *s = ctx;

	if (s->dir == DIR_OUT) {
		out_fail(s, "remote-server-timeout", "next hop sent bad XML");
		return;
	}
	stream_error(s, xs_error_condition(err), NULL);
	(void)detail;
}

static const struct xs_callbacks stream_xs_cb = {
    .on_header = xs_on_header,
    .on_stanza = xs_on_stanza,
    .on_close = xs_on_close,
    .on_error = xs_on_error,
};

static void on_data(void *ctx, const char *data, size_t len)
{
	struct stream *s = ctx;
	int rc;

	if (s->state == ST_CLOSING)
		return;
	rc = xs_feed(s->xs, data, len);
	if (rc < 0 || s->state == ST_CLOSING)
		return;
	if (s->sasl_restart) {
		s->sasl_restart = 0;
		/* the peer must wait for <success/> before its new header */
		if (xs_trailing(s->xs) > 0) {
			slog(s, "event=sasl-injection bytes=%zu", xs_trailing(s->xs));
			if (s->dir == DIR_OUT)
				out_fail(s, "remote-server-timeout",
					 "data injected after <success/>");
			else
				stream_close(s);
			return;
		}
		xs_reset(s->xs);
		s->state = ST_HEADER;
		if (s->dir == DIR_IN)
			s->header_sent = 0;
		else
			send_header(s, NULL);
		return;
	}
	if (s->start_tls) {
		s->start_tls = 0;
		/* bytes after <starttls/> or <proceed/> in the same read: injection */
		if (xs_trailing(s->xs) > 0) {
			slog(s, "event=starttls-injection bytes=%zu", xs_trailing(s->xs));
			if (s->dir == DIR_OUT)
				out_fail(s, "remote-server-timeout",
					 "data injected after <proceed/>");
			else {
				s->state = ST_CLOSING;
				net_close(s->conn);
			}
			return;
		}
		xs_reset(s->xs);
		s->state = ST_TLS;
		if (s->dir == DIR_IN)
			rc = net_start_tls_server(s->conn, s->rt->server_creds, s->local, 0);
		else
			rc = net_start_tls_client(s->conn, s->rt->peer_creds[s->peer], s->remote,
						  s->local, 0);
		if (rc < 0) {
			if (s->dir == DIR_OUT)
				out_fail(s, "remote-server-timeout", "cannot start TLS");
			else
				stream_close(s);
		}
	}
}

static void on_timeout(void *ctx)
{
	struct stream *s = ctx;
	int open = s->dir == DIR_IN
		       ? authz_count(s->authz) > 0
		       : s->state == ST_ESTABLISHED || (s->state == ST_OPEN && s->vreqs == NULL);

	if (s->idle_armed) {
		uint64_t elapsed = net_now_ms() - s->active_at;

		if (s->conn != NULL && elapsed < idle_period_ms(s)) { /* active since */
			net_set_timer(s->conn, idle_period_ms(s) - (unsigned)elapsed);
			return;
		}
		s->idle_armed = 0;
	}
	if (open && keepalive_due(s))
		return;
	if (s->dir == DIR_OUT && s->state != ST_ESTABLISHED) {
		out_fail(s, "remote-server-timeout",
			 s->state != ST_OPEN ? "stream negotiation timed out"
			 : s->vreqs != NULL  ? "dialback verification timed out"
					     : "idle");
		return;
	}
	slog(s, "event=idle-timeout state=%s", state_names[s->state]);
	if (s->dir == DIR_OUT)
		out_fail(s, "remote-server-timeout", "idle");
	else if (authz_count(s->authz) == 0)
		stream_error(s, "connection-timeout", NULL);
	else
		stream_close(s);
}

static void on_error(void *ctx, int status)
{
	struct stream *s = ctx;

	if (s->dir == DIR_OUT || s->qcount > 0) { /* or an inbound trunk link that queued */
		out_fail(s, "remote-server-timeout", "connection to next hop lost");
		return;
	}
	slog(s, "event=connection-lost status=%d", status);
	s->state = ST_CLOSING;
}

static const struct net_callbacks in_net_cb = {
    .on_data = on_data,
    .on_tls = in_on_tls,
    .on_timeout = on_timeout,
    .on_error = on_error,
    .on_closed = on_closed,
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

	for (o = g.streams; o != NULL; o = o->next)
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
	s->rt = runtime_ref(g.rt);
	s->cfg = s->rt->cfg;
	s->xs = xs_new(&stream_xs_cb, s, &g.limits);
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

static void backoff_reset(const struct runtime *rt)
{
	size_t n = 0, np = rt->cfg->npeers ? rt->cfg->npeers : 1;

	free(g.backoff);
	free(g.addr_base);
	free(g.failback_at);
	g.addr_base = calloc(np, sizeof(*g.addr_base));
	g.failback_at = calloc(np, sizeof(*g.failback_at));
	for (size_t i = 0; i < rt->cfg->npeers; i++) {
		if (g.addr_base != NULL)
			g.addr_base[i] = n;
		n += rt->cfg->peers[i].naddrs;
	}
	g.backoff = calloc(n ? n : 1, sizeof(*g.backoff));
	if (g.addr_base == NULL || g.failback_at == NULL || g.backoff == NULL) {
		/* without the tables every address is always tried */
		free(g.backoff);
		free(g.addr_base);
		free(g.failback_at);
		g.backoff = NULL;
		g.addr_base = NULL;
		g.failback_at = NULL;
	}
}

void s2s_init(struct runtime *rt)
{
	g.rt = runtime_ref(rt);
	g.policy = policy_state_new(); /* NULL: rate limits refuse (fail closed) */
	policy_audit_configure(rt->cfg->policies);
	backoff_reset(rt);
	g.limits.max_stanza_size = rt->cfg->max_stanza_size;
	g.limits.max_depth = rt->cfg->max_depth;
	g.limits.max_attrs = rt->cfg->max_attributes;
	g.limits.max_name_length = rt->cfg->max_name_length;
	g.limits.max_attr_length = rt->cfg->max_attribute_length;
}

void s2s_reload(struct runtime *rt)
{
	struct runtime *old = g.rt;
	struct stream *s;
	size_t in = 0, out = 0;

	g.rt = runtime_ref(rt);
	backoff_reset(rt);
	policy_audit_configure(rt->cfg->policies);
	g.limits.max_stanza_size = rt->cfg->max_stanza_size;
	g.limits.max_depth = rt->cfg->max_depth;
	g.limits.max_attrs = rt->cfg->max_attributes;
	g.limits.max_name_length = rt->cfg->max_name_length;
	g.limits.max_attr_length = rt->cfg->max_attribute_length;
	for (s = g.streams; s != NULL; s = s->next)
		s->dir == DIR_IN ? in++ : out++;
	/* Streams keep the snapshot they started with; new streams, routing
	 * and the outbound pool use the new one. */
	log_info("event=reloaded routes=%zu peers=%zu streams-in=%zu streams-out=%zu",
		 route_count(rt->cfg->routes), rt->cfg->npeers, in, out);
	runtime_unref(old);
}

/* An outbound stream that still has work: stanzas waiting for it to be
 * authenticated, or dialback verifications in flight. */
static int out_busy(const struct stream *s)
{
	return s->dir == DIR_OUT && s->state != ST_CLOSING && (s->qcount > 0 || s->vreqs != NULL);
}

void s2s_drain(void)
{
	struct stream *s;

	g.draining = 1;
	for (s = g.streams; s != NULL; s = s->next) {
		if (s->state == ST_CLOSING)
			continue;
		/* inbound: no new stanzas; outbound: close what has nothing left */
		if (s->dir == DIR_IN || !out_busy(s))
			stream_close(s);
	}
}

size_t s2s_pending(void)
{
	const struct stream *s;
	size_t n = 0;

	for (s = g.streams; s != NULL; s = s->next)
		if (out_busy(s))
			n += s->qcount + 1;
	return n;
}

void s2s_foreach(void (*fn)(void *ctx, const struct s2s_info *i), void *ctx)
{
	const struct stream *s;

	for (s = g.streams; s != NULL; s = s->next) {
		struct s2s_info i = {0};

		i.serial = s->serial;
		i.direction = s->dir == DIR_IN ? "in" : "out";
		i.state = state_names[s->state];
		i.address = s->conn != NULL ? net_peer(s->conn) : "-";
		i.local = s->local[0] ? s->local : "-";
		i.remote = s->remote[0] ? s->remote : "-";
		i.tls = s->tls && s->conn != NULL ? net_tls_describe(s->conn) : "none";
		i.certificate = s->tls && s->conn != NULL && net_tls_presented(s->conn) != NULL
				    ? net_tls_presented(s->conn)
				    : "-";
		i.peer_certificate = s->tls && s->conn != NULL && net_tls_has_cert(s->conn);
		if (s->dir == DIR_IN) {
			const struct route *r =
			    s->remote[0] ? route_lookup(s->cfg->routes, s->remote) : NULL;

			i.peer = r != NULL ? s->cfg->peers[r->peer].name : "-";
			i.auth = s->sasl_done		     ? "sasl-external"
				 : authz_count(s->authz) > 0 ? "dialback"
							     : "none";
			i.pairs = authz_count(s->authz);
		} else {
			i.peer = s->cfg->peers[s->peer].name;
			i.auth = s->auth != NULL ? s->auth : "none";
			i.queued = s->qcount;
			i.queued_bytes = s->qbytes;
		}
		fn(ctx, &i);
	}
}

void s2s_shutdown(void)
{
	struct stream *s;

	/* Stanzas still waiting for a next hop go back to their senders over
	 * the streams that are up (closing flushes what was written); only
	 * bounces that would need a new stream themselves are lost, and
	 * counted. New streams go to the head of the list, so this pass does
	 * not visit them. */
	for (s = g.streams; s != NULL; s = s->next)
		if (s->state != ST_CLOSING && s->qcount > 0)
			out_fail(s, "remote-server-timeout", "the relay is shutting down");
	for (s = g.streams; s != NULL; s = s->next) {
		if (s->dir == DIR_OUT && s->qcount > 0)
			slog(s,
			     "event=shutdown-drop queued=%zu reason=\"bounces for a next hop not "
			     "ready at shutdown\"",
			     s->qcount);
		stream_close(s);
	}
}

void s2s_free(void)
{
	runtime_unref(g.rt);
	g.rt = NULL;
	policy_state_free(g.policy);
	g.policy = NULL;
	audit_close();
	free(g.backoff);
	g.backoff = NULL;
	free(g.addr_base);
	g.addr_base = NULL;
	free(g.failback_at);
	g.failback_at = NULL;
	free(g.pool); /* the streams are gone: every chain is empty */
	g.pool = NULL;
	g.pool_nb = g.pool_n = 0;
	g.pool_off = 0;
	g.trunks = NULL;
}
