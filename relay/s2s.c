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
 * never a pointer, so a stream may die at any moment.
 *
 * The module is four files sharing s2s_int.h: this one (stream I/O,
 * writing, stream errors, lifetime, bounces, the public functions),
 * s2s_out.c (outbound streams, the pool, forwarding), s2s_in.c (inbound
 * streams and the per-stanza checks) and s2s_trunk.c (XEP-0288 trunk
 * links between xtrunkd peers). */
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

struct s2s_globals s2s_g;

const char *const state_names[] = {"connect", "header", "features", "proceed",	   "tls",
				   "open",    "dbwait", "sasl",	    "established", "closing"};

/* ---- small helpers ---- */

void slog(const struct stream *s, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("stream=%u dir=%s peer=%s %s", s->serial, s->dir == DIR_IN ? "in" : "out",
		 s->conn != NULL ? net_peer(s->conn) : "-", msg);
}

int flood_ok(struct flood *f, const char *what)
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

void make_id(char *out, size_t outsz)
{
	unsigned char r[12];
	size_t i;

	if (gnutls_rnd(GNUTLS_RND_NONCE, r, sizeof(r)) < 0)
		memset(r, 0, sizeof(r));
	for (i = 0; i < sizeof(r) && 2 * i + 2 < outsz; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

void swrite(struct stream *s, const char *data, size_t len)
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
void arm_idle(struct stream *s)
{
	s->active_at = net_now_ms();
	if (s->conn != NULL && !s->idle_armed && s->paused_by == 0) {
		net_set_timer(s->conn, idle_period_ms(s));
		s->idle_armed = 1;
	}
}

/* The timer for anything but idleness (negotiation steps, keepalives). */
void set_timer(struct stream *s, unsigned ms)
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

void swrites(struct stream *s, const char *str)
{
	swrite(s, str, strlen(str));
}

/* printf into a buffer, escaping nothing: callers pass escaped values. */

void swritef(struct stream *s, const char *fmt, ...)
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

const char *esc(char *buf, size_t bufsz, const char *v)
{
	if (xs_escape(buf, bufsz, v != NULL ? v : "") >= bufsz)
		buf[0] = '\0';
	return buf;
}

void send_header(struct stream *s, const char *id)
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
void stream_error(struct stream *s, const char *condition, const char *text)
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

void stream_close(struct stream *s)
{
	if (s->state == ST_CLOSING)
		return;
	if (s->header_sent)
		swrites(s, "</stream:stream>");
	s->state = ST_CLOSING;
	net_stop_reading(s->conn);
	net_close(s->conn);
}

struct stream *stream_by_serial(unsigned serial)
{
	struct stream *s;

	for (s = s2s_g.streams; s != NULL; s = s->next)
		if (s->serial == serial)
			return s;
	return NULL;
}

void stream_link(struct stream *s)
{
	s->serial = ++s2s_g.next_serial;
	s->next = s2s_g.streams;
	if (s2s_g.streams != NULL)
		s2s_g.streams->prev = s;
	s2s_g.streams = s;
}

void stream_unlink(struct stream *s)
{
	if (s->dir == DIR_OUT)
		pool_del(s);
	if (s->trunk) {
		if (s->tprev != NULL)
			s->tprev->tnext = s->tnext;
		else
			s2s_g.trunks = s->tnext;
		if (s->tnext != NULL)
			s->tnext->tprev = s->tprev;
	}
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		s2s_g.streams = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
}

/* The text content of a simple element such as <db:result ...>KEY</db:result>:
 * what lies between the end of the first tag (quotes respected) and the next
 * '<'. Keys are hex, so no entity decoding is needed; anything else fails. */
int element_text(const char *b, size_t len, char *out, size_t outsz)
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

int norm(const char *v, char *out)
{
	if (v == NULL)
		return -EINVAL;
	return domain_normalise(v, strlen(v), out, DOMAIN_MAX + 1);
}

/* ---- lifetime ---- */

void vreq_free(struct vreq *v)
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
void bounce_as(const struct bounce_in *b, const char *condition, const char *errtype,
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
	    (r = route_lookup(s2s_g.rt->cfg->routes, td)) == NULL) {
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

void bounce(const struct bounce_in *b, const char *condition, const char *text)
{
	bounce_as(b, condition, NULL, text);
}

void stream_free(struct stream *s)
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

/* ---- backpressure ---- */

/* Every stream paused for o reads again. */
static void bp_release(struct stream *o)
{
	struct stream *s;

	if (!o->bp_waited)
		return;
	o->bp_waited = 0;
	for (s = s2s_g.streams; s != NULL; s = s->next)
		if (s->paused_by == o->serial) {
			s->paused_by = 0;
			if (s->conn != NULL)
				net_pause(s->conn, 0);
			slog(s, "event=resumed for-stream=%u", o->serial);
			arm_idle(s);
		}
}

/* Outbound stream o has no room for another stanza of len bytes: its
 * write queue is over queue_max_bytes, or, while it is negotiated, its
 * queue is full. If that stanza was read from an inbound stream that
 * carries one domain pair (so a pause holds up nothing else: never a trunk
 * link or a stream with several pairs), stop reading that stream until o
 * is up and has drained to half the bound (on_drain), for at most
 * limits.backpressure_timeout s: the sender's own TCP window then slows
 * it, where bouncing would make a bounce for every stanza of an overload
 * (and drop them when the way back is full too). When o is up the stanza
 * (and the rest of the current read) is taken, up to twice the bound: 1,
 * the caller writes it. When o is still negotiated the queue keeps its
 * bound (the bounces a failing hop returns must fit the way back): 0, the
 * caller bounces it, as it does when there is no sender to pause, pausing
 * is off, or o already failed to drain in time. */
int bp_hold(struct stream *o, size_t len)
{
	struct stream *in = s2s_g.cur_in;
	unsigned timeout = o->cfg->backpressure_timeout;
	int up = o->state == ST_ESTABLISHED;
	size_t waiting = up ? net_write_queue_size(o->conn) : o->qbytes;

	if (in == NULL || in->trunk || in->conn == NULL || in->authz == NULL ||
	    authz_count(in->authz) != 1 || timeout == 0 || o->bp_stuck || in->state == ST_CLOSING ||
	    (!up && o->trunk) || waiting + len > 2 * o->cfg->queue_max_bytes)
		return 0;
	if (in->paused_by == 0) {
		in->paused_by = o->serial;
		net_pause(in->conn, 1);
		set_timer(in, timeout * 1000);
		slog(in, "event=paused for-stream=%u queued=%zu", o->serial, waiting);
		stats_count(STATS_PAUSES, o->cfg->peers[o->peer].name, NULL);
	}
	o->bp_waited = 1;
	if (!up) /* out_established asks for the drain once the queue is written */
		return 0;
	net_want_drain(o->conn, o->cfg->queue_max_bytes / 2);
	return 1;
}

/* o's write queue fell to half the bound: its senders read again. */
void on_drain(void *ctx)
{
	struct stream *o = ctx;

	o->bp_stuck = 0;
	bp_release(o);
}

/* Paused stream s waited limits.backpressure_timeout: it reads again, and
 * until the next hop drains, what exceeds the bound is bounced. */
static void bp_expire(struct stream *s)
{
	struct stream *o = stream_by_serial(s->paused_by);

	slog(s, "event=pause-timeout for-stream=%u", s->paused_by);
	if (o != NULL) {
		o->bp_stuck = 1;
		bp_release(o);
	} else {
		s->paused_by = 0;
		net_pause(s->conn, 0);
		arm_idle(s);
	}
}

void on_closed(void *ctx)
{
	struct stream *s = ctx;

	bp_release(s);
	/* A stream closed for any reason (a stream error, a superseded link)
	 * with stanzas still queued: they go back to their senders, never
	 * freed unsent. Not after s2s_shutdown, which bounced them itself. */
	if (s->qhead != NULL && s2s_g.rt != NULL) {
		slog(s, "event=closed-with-queue queued=%zu", s->qcount);
		out_bounce_queue(s, "remote-server-timeout", "stream closed");
	}
	slog(s, "event=closed");
	s->conn = NULL;
	stream_unlink(s);
	stream_free(s);
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

const struct xs_callbacks stream_xs_cb = {
    .on_header = xs_on_header,
    .on_stanza = xs_on_stanza,
    .on_close = xs_on_close,
    .on_error = xs_on_error,
};

void on_data(void *ctx, const char *data, size_t len)
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

void on_timeout(void *ctx)
{
	struct stream *s = ctx;
	int open = s->dir == DIR_IN
		       ? authz_count(s->authz) > 0
		       : s->state == ST_ESTABLISHED || (s->state == ST_OPEN && s->vreqs == NULL);

	if (s->paused_by != 0) {
		bp_expire(s);
		return;
	}
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

void on_error(void *ctx, int status)
{
	struct stream *s = ctx;

	if (s->dir == DIR_OUT || s->qcount > 0) { /* or an inbound trunk link that queued */
		out_fail(s, "remote-server-timeout", "connection to next hop lost");
		return;
	}
	slog(s, "event=connection-lost status=%d", status);
	s->state = ST_CLOSING;
}

void s2s_init(struct runtime *rt)
{
	s2s_g.rt = runtime_ref(rt);
	s2s_g.policy = policy_state_new(); /* NULL: rate limits refuse (fail closed) */
	policy_audit_configure(rt->cfg->policies);
	backoff_reset(rt);
	s2s_g.limits.max_stanza_size = rt->cfg->max_stanza_size;
	s2s_g.limits.max_depth = rt->cfg->max_depth;
	s2s_g.limits.max_attrs = rt->cfg->max_attributes;
	s2s_g.limits.max_name_length = rt->cfg->max_name_length;
	s2s_g.limits.max_attr_length = rt->cfg->max_attribute_length;
}

void s2s_reload(struct runtime *rt)
{
	struct runtime *old = s2s_g.rt;
	struct stream *s;
	size_t in = 0, out = 0;

	s2s_g.rt = runtime_ref(rt);
	backoff_reset(rt);
	policy_audit_configure(rt->cfg->policies);
	s2s_g.limits.max_stanza_size = rt->cfg->max_stanza_size;
	s2s_g.limits.max_depth = rt->cfg->max_depth;
	s2s_g.limits.max_attrs = rt->cfg->max_attributes;
	s2s_g.limits.max_name_length = rt->cfg->max_name_length;
	s2s_g.limits.max_attr_length = rt->cfg->max_attribute_length;
	for (s = s2s_g.streams; s != NULL; s = s->next)
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

	s2s_g.draining = 1;
	for (s = s2s_g.streams; s != NULL; s = s->next) {
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

	for (s = s2s_g.streams; s != NULL; s = s->next)
		if (out_busy(s))
			n += s->qcount + 1;
	return n;
}

void s2s_foreach(void (*fn)(void *ctx, const struct s2s_info *i), void *ctx)
{
	const struct stream *s;

	for (s = s2s_g.streams; s != NULL; s = s->next) {
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
	for (s = s2s_g.streams; s != NULL; s = s->next)
		if (s->state != ST_CLOSING && s->qcount > 0)
			out_fail(s, "remote-server-timeout", "the relay is shutting down");
	for (s = s2s_g.streams; s != NULL; s = s->next) {
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
	runtime_unref(s2s_g.rt);
	s2s_g.rt = NULL;
	policy_state_free(s2s_g.policy);
	s2s_g.policy = NULL;
	audit_close();
	free(s2s_g.backoff);
	s2s_g.backoff = NULL;
	free(s2s_g.addr_base);
	s2s_g.addr_base = NULL;
	free(s2s_g.failback_at);
	s2s_g.failback_at = NULL;
	free(s2s_g.pool); /* the streams are gone: every chain is empty */
	s2s_g.pool = NULL;
	s2s_g.pool_nb = s2s_g.pool_n = 0;
	s2s_g.pool_off = 0;
	s2s_g.trunks = NULL;
}
