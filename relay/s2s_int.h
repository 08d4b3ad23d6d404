/* s2s_int.h: what the parts of s2s (s2s.c: streams, I/O and lifetime;
 * s2s_out.c; s2s_in.c; s2s_trunk.c) share: the stream, its queue, the
 * module's state and the functions one part calls in another. Not for
 * other modules: they use s2s.h. */
#ifndef XT_S2S_INT_H
#define XT_S2S_INT_H

#include <stddef.h>
#include <stdint.h>

#include "bounce.h"
#include "config.h"
#include "domain.h"
#include "identity.h"
#include "net.h"
#include "runtime.h"
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

/* s2s_state as text, for logs and status */
extern const char *const state_names[];

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
	struct stream *tnext, *tprev; /* trunk links: s2s_g.trunks (borrowed links) */
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
	/* out: the route pattern of remote, the label of the sent counter;
	 * borrowed from cfg, looked up at the first stanza sent */
	const char *sent_route;
	uint64_t active_at; /* net_now_ms() of the last stanza (idle, keepalive) */
	int idle_armed;	    /* the timer runs for idle/keepalive, see arm_idle */
	/* Backpressure (bp_hold): an inbound stream not read while the next
	 * hop of its stanzas drains; an outbound stream it waits for. */
	unsigned paused_by; /* inbound: serial of the stream it waits for, 0 = reading */
	int bp_waited;	    /* outbound: some stream was paused for it */
	int bp_stuck;	    /* outbound: a pause timed out; bounce until it drains */
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

struct s2s_globals {
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
	struct stream *cur_in;	     /* while in_on_xmpp routes a stanza: its stream */
	unsigned hops;		     /* while in_on_xmpp routes a stanza: relays it crossed */
	/* Per address of every peer of s2s_g.rt (peer p's addresses start at
	 * addr_base[p]): an address that could not be reached is not tried
	 * again before retry_at (1 s, doubling to 64 s); when every address of
	 * a peer waits, its stanzas are bounced at once. Reset by a reload and
	 * by a connection. */
	struct addr_backoff {
		unsigned fails;
		uint64_t retry_at; /* ms, net_now_ms() */
	} * backoff;		   /* owned array, one per address */
	size_t *addr_base;	   /* owned array, s2s_g.rt->cfg->npeers entries */
	uint64_t *failback_at;	   /* owned array: next try of a preferred address, per peer */
};

extern struct s2s_globals s2s_g; /* defined in s2s.c */

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

/* s2s.c: stream I/O, writing, errors, lifetime, bounces */
void slog(const struct stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int flood_ok(struct flood *f, const char *what);
void make_id(char *out, size_t outsz);
void swrite(struct stream *s, const char *data, size_t len);
void arm_idle(struct stream *s);
void set_timer(struct stream *s, unsigned ms);
void swrites(struct stream *s, const char *str);
void swritef(struct stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *esc(char *buf, size_t bufsz, const char *v);
void send_header(struct stream *s, const char *id);
void stream_error(struct stream *s, const char *condition, const char *text);
void stream_close(struct stream *s);
struct stream *stream_by_serial(unsigned serial);
void stream_link(struct stream *s);
void stream_unlink(struct stream *s);
int element_text(const char *b, size_t len, char *out, size_t outsz);
int norm(const char *v, char *out);
void vreq_free(struct vreq *v);
void bounce_as(const struct bounce_in *b, const char *condition, const char *errtype,
	       const char *text);
void bounce(const struct bounce_in *b, const char *condition, const char *text);
void stream_free(struct stream *s);
void on_closed(void *ctx);
extern const struct xs_callbacks stream_xs_cb;
void on_data(void *ctx, const char *data, size_t len);
void on_timeout(void *ctx);
void on_error(void *ctx, int status);
void on_drain(void *ctx);
int bp_hold(struct stream *o, size_t len);

/* s2s_out.c: outbound streams, the pool, forwarding */
int peer_pick_addr(int peer);
unsigned peer_backoff_left(int peer);
void pool_del(struct stream *s);
int peer_policy(const struct runtime *rt, int peer, struct ident_policy *p);
void queue_move(struct stream *from, struct stream *to);
void out_fail(struct stream *s, const char *condition, const char *why);
void out_bounce_queue(struct stream *s, const char *condition, const char *why);
void count_sent(struct stream *s, uint64_t t_read);
void out_send_vreqs(struct stream *s);
void write_hops(struct stream *s, unsigned hops);
void out_on_stanza(struct stream *s, const struct xs_stanza *st);
void out_on_header(struct stream *s, const struct xs_header *h);
struct stream *out_find(int peer, const char *from, const char *to);
struct stream *out_new(int peer, unsigned addr, const char *from, const char *to);
struct stream *out_failback(struct stream *s);
void send_now(struct stream *s, const char *from_dom, const char *to_dom, const char *bytes,
	      size_t len, const struct bounce_in *b);
void queue_full(struct stream *s, const char *from_dom, const char *to_dom,
		const struct bounce_in *b);
void peer_unreachable(int peer, const char *from_dom, const char *to_dom,
		      const struct bounce_in *b);
int queue_add(struct stream *s, const char *from_dom, const char *to_dom, const char *bytes,
	      size_t len, const struct bounce_in *b);
void forward(int peer, const char *from_dom, const char *to_dom, const char *bytes, size_t len,
	     const struct bounce_in *b);
void backoff_reset(const struct runtime *rt);

/* s2s_in.c: inbound streams */
void in_on_header(struct stream *s, const struct xs_header *h);
void in_verify_answer(unsigned in_serial, const char *from, const char *to, int valid,
		      const char *condition);
void in_on_xmpp(struct stream *s, const struct xs_stanza *st);
void in_on_hop(struct stream *s, const struct xs_stanza *st);
void in_on_stanza(struct stream *s, const struct xs_stanza *st);

/* s2s_trunk.c: trunk links */
void trunk_mark(struct stream *s);
int trunk_make_link(struct stream *s);
int trunk_rescue(struct stream *s);
void trunk_yield(struct stream *l);
void trunk_pump(struct stream *s);
void trunk_forward(int peer, const char *from_dom, const char *to_dom, const char *bytes,
		   size_t len, const struct bounce_in *b);
void trunk_on_result(struct stream *s, const struct xs_stanza *st);

#endif
