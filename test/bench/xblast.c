/* xblast: the load tool of the benchmark ladder (make bench, make
 * bench-smoke). One process plays both ends of a server-to-server hop,
 * N authenticated s2s streams (TLS 1.3, SASL EXTERNAL, <message/> stanzas
 * of --size bytes, open loop or flat out), and spends almost no CPU while
 * it measures, so that the middle box can have the machine's cores:
 *
 *   sender  every stream is negotiated live (TCP, STARTTLS or direct TLS,
 *           SASL EXTERNAL) and sends one priming stanza; then the whole run
 *           is encrypted in advance into memory (relay/tls with its
 *           ciphertext captured, so the records are exactly what a live
 *           TLS sender would write), and the run itself only write()s
 *           those bytes: open loop, stanza k of stream i is scheduled at
 *           start + ((k-1)·N + i)/rate and written at the first --tick-us
 *           tick after it (a timerfd); flat out, as fast as the socket
 *           takes them;
 *   sink    accepts s2s streams (STARTTLS or direct TLS, SASL EXTERNAL
 *           checked against --ca), negotiates and reads the priming
 *           stanzas live; during the run it only read()s ciphertext into
 *           memory laid out in advance, with the time of every read; after
 *           the run it decrypts and frames it (relay/tls, relay/xmlstream)
 *           and gives every stanza the time of the read that completed it.
 *
 * Rate = stanzas that arrived within the measured window, per second.
 * Latency = arrival (that read's time) - schedule; stanzas are checked in
 * order per sending stream, bounces (type='error', on any stream) counted.
 * One thread (two while encrypting in advance), epoll; no libuv. The
 * traffic line also has precompute_s and exhausted (flat out: a stream
 * wrote everything encrypted for it, and the window ended there,
 * window_s). sent counts stanzas written; unsent, those precomputed and
 * due that were never written (the next hop read too slowly); lost = sent
 * - received - bounced after up to 10 s. Exit 0 with --check only when
 * nothing was lost, out of order, duplicated, bounced, and every stream
 * authenticated.
 *
 * Other modes: idle (open --streams streams, hold them --hold s, report
 * the RSS growth of --watch per stream) and handshake (--total full
 * negotiations, --streams at a time, per second and per CPU-second of
 * --watch).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "identity.h"
#include "log.h"
#include "store.h"
#include "tls.h"
#include "xmlstream.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define MAX_WATCH 4
#define MAX_CONNECTING 128
#define READ_MAX (256 * 1024)	   /* one read() during the run */
#define WRITE_MAX (1024 * 1024)	   /* one write() during the run */
#define FLAT_BATCH 48		   /* stanzas per record batch, flat out */
#define SEG_MIN (64 * 1024 * 1024) /* capture segment when the first is full */
#define LOWAT (64 * 1024)	   /* flat out: bytes a read waits for */
#define PRE_THREADS 2
#define QUIET_NS                                                                                   \
	200000000ull /* after the run: no read for this long, then decode */ /* threads encrypting \
										the run in advance \
									      */

enum kind { K_SEND, K_SINK, K_LISTEN, K_LISTEN_TLS, K_TIMER };
enum mode { MODE_TRAFFIC, MODE_IDLE, MODE_HANDSHAKE };

/* One stream (either end) or a listener / the timer, as epoll data. */
struct lconn {
	enum kind kind;
	int fd;
	struct lconn *next; /* every stream, for the end (owned list) */
	int index;	    /* sender: stream number */
	int direct, connected, tls_up, authed, ready, dead, eof;
	int finished;		 /* handshake mode: negotiated and closed by us, to be freed */
	int restart, start_tls;	 /* after this feed */
	int precomputing;	 /* on_cipher goes to pre, not out */
	int want_out;		 /* EPOLLOUT registered */
	int lowat;		 /* SO_RCVLOWAT raised (flat out, during the run) */
	struct tls_session *tls; /* owned, NULL before TLS */
	struct xs *xs;		 /* owned */
	char from[256];		 /* sink: the stream 'from' */
	uint64_t now;		 /* arrival time of the bytes being fed */
	char *out;		 /* owned: live bytes waiting for the socket */
	size_t out_len, out_off, out_cap;
	/* sender: the run, encrypted in advance (owned mapping) */
	char *pre;
	size_t pre_len, pre_cap, pre_off;
	size_t *mark_off;   /* owned: byte offset after mark k */
	uint64_t *mark_seq; /* owned: stanzas 1..mark_seq[k] lie before it */
	size_t nmark, mark_cap;
};

/* Bytes read during the run, in order of arrival. */
struct chunk {
	struct lconn *c;
	const char *p;
	size_t len;
	uint64_t t;
};

struct seg {
	char *base;
	size_t len, cap;
	struct seg *next;
};

static struct {
	/* options */
	const char *connect_host, *listen_host, *listen_tls_host;
	int connect_port, listen_port, listen_tls_port;
	int direct;
	const char *store_dir, *ca_file, *from, *to, *label;
	enum mode mode;
	int nstreams, total;
	double rate, seconds, warmup, budget_rate, hold;
	size_t size;
	unsigned label_every, tick_us;
	int watch[MAX_WATCH], nwatch;
	int check;
	/* state */
	int ep;
	struct lconn listener, listener_tls, timer;
	struct lconn *conns;	/* owned list */
	struct lconn **streams; /* owned array of borrowed: the sending streams */
	struct tls_creds *client_creds, *server_creds; /* owned */
	struct store *store;			       /* owned reference */
	gnutls_x509_trust_list_t trust;		       /* owned */
	uint64_t *expect; /* owned: next sequence number expected per stream */
	int nopened, nready, nauthfail, nclosed_early, nprimed;
	int nactive, ndone;   /* handshake mode: negotiating now, negotiated */
	uint64_t t_ready;     /* idle mode: every stream up */
	long rss0[MAX_WATCH]; /* idle mode: RSS before the streams */
	int capture;
	struct seg *segs, *seg_cur; /* owned capture memory */
	struct chunk *chunks;	    /* owned */
	size_t nchunks, chunk_cap, chunk_done;
	uint64_t last_read;		    /* time of the last read captured */
	uint64_t t_start, t_measure, t_end; /* ns */
	int phase;			    /* 0 connect, 1 prime, 2 run, 3 drain, 4 done */
	uint64_t sent, unsent, received, bounced, out_of_order, dup, recv_window, bytes_window;
	uint32_t *lat; /* owned: latency samples, microseconds */
	size_t nlat, lat_cap;
	long watch_cpu0[MAX_WATCH], watch_cpu1[MAX_WATCH];
	struct rusage self0, self1;
	int measuring, exhausted;
	double precompute_s;
	char *pad; /* owned: body filler */
	int exit_code;
} B = {
    .nstreams = 10,
    .total = 1000,
    .hold = 2,
    .seconds = 5,
    .warmup = 1,
    .size = 300,
    .label_every = 1,
    .tick_us = 1000,
    .budget_rate = 2500000,
    .from = "a.bench",
    .to = "b.bench",
};

static volatile sig_atomic_t interrupted;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *why)
{
	fprintf(stderr, "xblast: %s\n", why);
	exit(2);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL)
		die("out of memory");
	return p;
}

/* utime + stime of a process in clock ticks; -1 if gone. */
static long proc_cpu_ticks(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (long)(ut + st);
}

/* ---- memory ---- */

/* A private anonymous mapping; populate: fault every page in now, so the
 * run does not pay for it. */
static char *map(size_t len, int populate)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		die("out of memory (mmap)");
	/* gigabytes: 2 MiB pages fault (and clear) much faster where allowed */
	(void)madvise(p, len, MADV_HUGEPAGE);
	if (populate && madvise(p, len, MADV_POPULATE_WRITE) < 0)
		memset(p, 0, len);
	return p;
}

static void seg_add(size_t cap, int populate)
{
	struct seg *s = calloc(1, sizeof(*s));

	if (s == NULL)
		die("out of memory");
	s->base = map(cap, populate);
	s->cap = cap;
	if (B.seg_cur != NULL)
		B.seg_cur->next = s;
	else
		B.segs = s;
	B.seg_cur = s;
}

/* Room for at least want bytes of capture; returns where, and how many. */
static char *capture_room(size_t want, size_t *room)
{
	struct seg *s = B.seg_cur;

	if (s == NULL || s->cap - s->len < want)
		seg_add(want > SEG_MIN ? want : SEG_MIN, 0);
	s = B.seg_cur;
	*room = s->cap - s->len;
	return s->base + s->len;
}

static void capture(struct lconn *c, size_t len, uint64_t t)
{
	if (B.nchunks == B.chunk_cap) {
		B.chunk_cap = B.chunk_cap ? B.chunk_cap * 2 : 65536;
		B.chunks = xrealloc(B.chunks, B.chunk_cap * sizeof(*B.chunks));
	}
	B.chunks[B.nchunks++] =
	    (struct chunk){.c = c, .p = B.seg_cur->base + B.seg_cur->len, .len = len, .t = t};
	B.seg_cur->len += len;
	B.last_read = t;
}

/* ---- the live byte path ---- */

static void ep_mod(struct lconn *c, int out)
{
	struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};

	if (c->dead || c->want_out == out)
		return;
	c->want_out = out;
	(void)epoll_ctl(B.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_dead(struct lconn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = 1;
	(void)epoll_ctl(B.ep, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->kind == K_SEND)
		B.nactive--;
	if (c->kind == K_SEND && B.phase < 4 && !c->finished) {
		fprintf(stderr, "xblast: stream %d: %s\n", c->index, why);
		B.nclosed_early++;
	}
}

/* Write what waits in out; 0, or -1 when the connection is gone. */
static int flush_out(struct lconn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ep_mod(c, 1);
			return 0;
		}
		conn_dead(c, "write failed");
		return -1;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

static void out_append(struct lconn *c, const char *data, size_t len)
{
	if (c->out_len + len > c->out_cap) {
		c->out_cap = (c->out_len + len) * 2;
		c->out = xrealloc(c->out, c->out_cap);
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
}

static int on_cipher(void *ctx, const char *data, size_t len)
{
	struct lconn *c = ctx;

	if (c->precomputing) {
		if (c->pre_len + len > c->pre_cap)
			die("precomputed run larger than its estimate");
		memcpy(c->pre + c->pre_len, data, len);
		c->pre_len += len;
		return 0;
	}
	if (c->kind == K_SEND && B.phase >= 2) {
		/* anything live now would land inside the precomputed records */
		fprintf(stderr, "xblast: stream %d had to write during the run\n", c->index);
		B.nauthfail++;
		return 0;
	}
	out_append(c, data, len);
	return 0;
}

/* Plaintext to the peer: through TLS once it is up. */
static void say(struct lconn *c, const char *s)
{
	if (c->dead)
		return;
	if (c->tls != NULL) {
		if (tls_write(c->tls, s, strlen(s)) < 0)
			conn_dead(c, "TLS write failed");
	} else {
		out_append(c, s, strlen(s));
	}
	if (!c->precomputing)
		(void)flush_out(c);
}

static void send_header(struct lconn *c)
{
	char h[512];

	if (c->kind == K_SEND)
		snprintf(h, sizeof(h),
			 "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
			 "xmlns:stream='" XS_NS_STREAM "' xmlns:db='" XS_NS_DIALBACK
			 "' from='%s' to='%s' version='1.0'>",
			 B.from, B.to);
	else
		snprintf(h, sizeof(h),
			 "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
			 "xmlns:stream='" XS_NS_STREAM "' xmlns:db='" XS_NS_DIALBACK
			 "' id='blast%p' version='1.0'>",
			 (void *)c);
	say(c, h);
}

static void on_handshake(void *ctx, int status);
static void on_plain(void *ctx, const char *data, size_t len);
static const struct tls_callbacks blast_tls_cb = {
    .on_cipher = on_cipher, .on_plain = on_plain, .on_handshake = on_handshake};

static void start_tls(struct lconn *c)
{
	if (c->kind == K_SEND) {
		c->tls = tls_client_new(B.client_creds, B.to, B.from, &blast_tls_cb, c);
		if (c->tls == NULL || (c->direct && tls_set_alpn(c->tls) < 0) ||
		    tls_start(c->tls) < 0) {
			conn_dead(c, "TLS start failed");
			return;
		}
		(void)flush_out(c);
	} else {
		c->tls = tls_server_new(B.server_creds, B.to, &blast_tls_cb, c);
		if (c->tls == NULL || (c->direct && tls_set_alpn(c->tls) < 0))
			conn_dead(c, "TLS start failed");
	}
}

/* After the parser was stopped for a restart or STARTTLS. */
static void after_feed(struct lconn *c)
{
	if (c->start_tls) {
		c->start_tls = 0;
		if (xs_trailing(c->xs) != 0) {
			conn_dead(c, "data after STARTTLS");
			return;
		}
		xs_reset(c->xs);
		start_tls(c);
		return;
	}
	if (c->restart) {
		c->restart = 0;
		xs_reset(c->xs);
		if (c->kind == K_SEND)
			send_header(c);
	}
}

static void on_plain(void *ctx, const char *data, size_t len)
{
	struct lconn *c = ctx;

	if (c->dead && !B.capture)
		return;
	if (xs_feed(c->xs, data, len) < 0) {
		conn_dead(c, "stream error");
		if (c->tls != NULL)
			tls_stop(c->tls);
		return;
	}
	after_feed(c);
}

/* Bytes from the socket (live, or the capture of a read). */
static void feed_in(struct lconn *c, const char *data, size_t len)
{
	int r;

	if (c->tls == NULL) {
		on_plain(c, data, len);
		return;
	}
	r = tls_feed(c->tls, data, len);
	if (r < 0 && !c->eof)
		conn_dead(c, r == -ECONNRESET ? "TLS closed" : "TLS error");
	if (!c->dead && !c->precomputing)
		(void)flush_out(c);
}

static void on_handshake(void *ctx, int status)
{
	struct lconn *c = ctx;
	char why[160];

	if (status < 0) {
		fprintf(stderr, "xblast: TLS handshake failed\n");
		B.nauthfail++;
		conn_dead(c, "TLS handshake failed");
		return;
	}
	c->tls_up = 1;
	if (c->kind == K_SEND) {
		if (tls_peer_check(c->tls, B.to, &(struct ident_policy){.trust = B.trust}, why,
				   sizeof(why)) != 0) {
			fprintf(stderr, "xblast: server certificate for %s: %s\n", B.to, why);
			B.nauthfail++;
			conn_dead(c, "bad server certificate");
			return;
		}
		send_header(c);
	}
}

/* ---- stanzas ---- */

/* "xb.<stream>.<seq>.<scheduled ns after the start>" */
static void sink_message(const struct xs_stanza *st, uint64_t t)
{
	unsigned long stream;
	unsigned long long seq, off;
	uint64_t sched;

	if (st->id == NULL || sscanf(st->id, "xb.%lu.%llu.%llu", &stream, &seq, &off) != 3 ||
	    stream >= (unsigned long)B.nstreams) {
		fprintf(stderr, "xblast: stanza without a bench id\n");
		B.out_of_order++;
		return;
	}
	if (st->type != NULL && strcmp(st->type, "error") == 0) {
		B.bounced++;
		return;
	}
	if (seq == 0) {
		B.nprimed++;
		B.expect[stream] = 1;
		return;
	}
	B.received++;
	if (seq < B.expect[stream]) {
		B.dup++;
		return;
	}
	if (seq != B.expect[stream])
		B.out_of_order++;
	B.expect[stream] = seq + 1;
	sched = B.t_start + off;
	/* delivered: arrived within the window (open loop too: under
	 * overload what was due arrives later, and is not delivered then) */
	if (t >= B.t_measure && t < B.t_end) {
		B.recv_window++;
		B.bytes_window += st->len;
	}
	if (B.rate > 0 && sched >= B.t_measure && sched < B.t_end) {
		uint64_t us = t > sched ? (t - sched) / 1000 : 0;

		if (B.nlat == B.lat_cap) {
			B.lat_cap = B.lat_cap ? B.lat_cap * 2 : 65536;
			B.lat = xrealloc(B.lat, B.lat_cap * sizeof(*B.lat));
		}
		B.lat[B.nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	}
}

static int has_child(const struct xs_stanza *st, const char *name, const char *ns)
{
	for (size_t i = 0; i < st->nchildren; i++)
		if (strcmp(st->children[i].name, name) == 0 && strcmp(st->children[i].ns, ns) == 0)
			return 1;
	return 0;
}

static void sender_stanza(struct lconn *c, const struct xs_stanza *st)
{
	char auth[600];
	gnutls_datum_t in = {(unsigned char *)B.from, (unsigned)strlen(B.from)}, out = {0};

	if (strcmp(st->name, "features") == 0) {
		if (c->authed) {
			c->ready = 1;
			B.nready++;
			if (B.mode == MODE_HANDSHAKE) {
				/* one full negotiation done: close and free it */
				B.ndone++;
				say(c, "</stream:stream>");
				tls_bye(c->tls);
				(void)flush_out(c);
				c->finished = 1;
				conn_dead(c, "done");
			}
		} else if (c->tls == NULL && has_child(st, "starttls", NS_TLS)) {
			say(c, "<starttls xmlns='" NS_TLS "'/>");
		} else if (c->tls != NULL && has_child(st, "mechanisms", NS_SASL)) {
			if (gnutls_base64_encode2(&in, &out) < 0)
				die("base64");
			snprintf(auth, sizeof(auth),
				 "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>%.*s</auth>",
				 (int)out.size, (const char *)out.data);
			gnutls_free(out.data);
			say(c, auth);
		} else {
			fprintf(stderr, "xblast: no SASL EXTERNAL offered on stream %d\n",
				c->index);
			B.nauthfail++;
			conn_dead(c, "no SASL EXTERNAL");
		}
	} else if (strcmp(st->name, "proceed") == 0) {
		c->start_tls = 1;
		xs_stop(c->xs);
	} else if (strcmp(st->name, "success") == 0) {
		c->authed = 1;
		c->restart = 1;
		xs_stop(c->xs);
	} else if (strcmp(st->name, "failure") == 0 || strcmp(st->name, "error") == 0) {
		fprintf(stderr, "xblast: stream %d refused: %s\n", c->index, st->name);
		B.nauthfail++;
		conn_dead(c, "refused");
	} else if (strcmp(st->name, "message") == 0) {
		sink_message(st, c->now); /* a bounce on our own stream */
	}
}

static void sink_stanza(struct lconn *c, const struct xs_stanza *st)
{
	char why[160];

	if (strcmp(st->name, "starttls") == 0 && c->tls == NULL) {
		say(c, "<proceed xmlns='" NS_TLS "'/>");
		c->start_tls = 1;
		xs_stop(c->xs);
	} else if (strcmp(st->name, "auth") == 0 && c->tls_up && !c->authed) {
		if (tls_peer_check(c->tls, c->from, &(struct ident_policy){.trust = B.trust}, why,
				   sizeof(why)) != 0) {
			fprintf(stderr, "xblast: sink: client certificate for %s: %s\n", c->from,
				why);
			B.nauthfail++;
			say(c, "<failure xmlns='" NS_SASL "'><not-authorized/></failure>");
			return;
		}
		say(c, "<success xmlns='" NS_SASL "'/>");
		c->authed = 1;
		c->restart = 1;
		xs_stop(c->xs);
	} else if (strcmp(st->name, "message") == 0 && c->authed) {
		sink_message(st, c->now);
	} else if (strcmp(st->name, "message") == 0) {
		fprintf(stderr, "xblast: sink: stanza before authentication\n");
		B.nauthfail++;
		conn_dead(c, "stanza before authentication");
	}
}

static void xs_header(void *ctx, const struct xs_header *h)
{
	struct lconn *c = ctx;

	if (c->kind == K_SEND)
		return;
	snprintf(c->from, sizeof(c->from), "%s", h->from != NULL ? h->from : "");
	send_header(c);
	if (c->tls == NULL) {
		say(c, "<stream:features><starttls xmlns='" NS_TLS
		       "'><required/></starttls></stream:features>");
	} else if (!c->authed && tls_peer_has_cert(c->tls)) {
		say(c, "<stream:features><mechanisms xmlns='" NS_SASL
		       "'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>");
	} else {
		say(c, "<stream:features/>");
		if (c->authed)
			c->ready = 1;
	}
}

static void xs_stanza(void *ctx, const struct xs_stanza *st)
{
	struct lconn *c = ctx;

	if (c->kind == K_SEND)
		sender_stanza(c, st);
	else
		sink_stanza(c, st);
}

static void xs_close(void *ctx)
{
	struct lconn *c = ctx;

	if (B.phase < 4)
		conn_dead(c, "stream closed by the peer");
}

static void xs_error(void *ctx, enum xs_error err, const char *detail)
{
	struct lconn *c = ctx;

	fprintf(stderr, "xblast: %s stream: %s (%s)\n", c->kind == K_SEND ? "sending" : "sink",
		xs_error_condition(err), detail != NULL ? detail : "");
	B.nauthfail++;
}

static const struct xs_callbacks blast_xs_cb = {
    .on_header = xs_header, .on_stanza = xs_stanza, .on_close = xs_close, .on_error = xs_error};

/* ---- connections ---- */

static struct lconn *conn_new(enum kind kind, int fd)
{
	struct lconn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	int one = 1;

	if (c == NULL)
		die("out of memory");
	c->kind = kind;
	c->fd = fd;
	c->xs = xs_new(&blast_xs_cb, c, NULL);
	if (c->xs == NULL)
		die("out of memory");
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (epoll_ctl(B.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl");
	c->next = B.conns;
	B.conns = c;
	return c;
}

static void open_stream(int index)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(B.connect_port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct lconn *c;

	if (fd < 0 || inet_pton(AF_INET, B.connect_host, &sa.sin_addr) != 1)
		die("cannot open a socket to --connect");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		die("connect failed");
	c = conn_new(K_SEND, fd);
	c->index = index;
	c->direct = B.direct;
	if (B.mode != MODE_HANDSHAKE)
		B.streams[index] = c;
	ep_mod(c, 1); /* writable = connected */
	B.nopened++;
	B.nactive++;
}

static void connected(struct lconn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		fprintf(stderr, "xblast: connect %s:%d: %s\n", B.connect_host, B.connect_port,
			strerror(err));
		conn_dead(c, "connect failed");
		return;
	}
	c->connected = 1;
	ep_mod(c, 0);
	if (c->direct)
		start_tls(c);
	else
		send_header(c);
}

static void accept_all(struct lconn *l)
{
	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct lconn *c;

		if (fd < 0)
			return;
		c = conn_new(K_SINK, fd);
		c->connected = 1;
		c->direct = l->kind == K_LISTEN_TLS;
		if (c->direct)
			start_tls(c);
	}
}

/* Readable: live, through TLS and the parser; during the run, into the
 * capture, to be decrypted after it. */
static void readable(struct lconn *c)
{
	char buf[65536];

	while (!c->dead) {
		int cap = B.capture && c->ready;
		size_t room = sizeof(buf);
		char *p = cap ? capture_room(READ_MAX, &room) : buf;
		ssize_t n = read(c->fd, p, room < READ_MAX ? room : READ_MAX);

		if (n > 0) {
			if (cap && !c->lowat && B.rate <= 0 && B.phase == 2) {
				/* flat out, nobody waits for a single stanza: wake up
				 * for reads of LOWAT bytes, not for every write */
				int lw = LOWAT;

				c->lowat = 1;
				(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &lw, sizeof(lw));
			}
			if (cap) {
				capture(c, (size_t)n, now_ns());
			} else {
				c->now = now_ns();
				feed_in(c, buf, (size_t)n);
			}
			if ((size_t)n < (cap ? READ_MAX : sizeof(buf)))
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		c->eof = 1;
		conn_dead(c, n == 0 ? "closed by the peer" : "read failed");
	}
}

/* ---- the run ---- */

static size_t put_u64(char *p, uint64_t v)
{
	char t[24];
	size_t n = 0, i;

	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		p[i] = t[n - 1 - i];
	return n;
}

/* Stanza seq of stream i, scheduled off ns after the start, into p. */
static size_t make_stanza(char *p, int i, uint64_t seq, uint64_t off)
{
	char *q = p;
	size_t head, fill;
	const char *label = B.label != NULL && seq % B.label_every == 0 ? B.label : "";

	q += sprintf(q, "<message from='%s' to='%s' type='chat' id='xb.", B.from, B.to);
	q += put_u64(q, (uint64_t)i);
	*q++ = '.';
	q += put_u64(q, seq);
	*q++ = '.';
	q += put_u64(q, off);
	*q++ = '\'';
	*q++ = '>';
	q += strlen(strcpy(q, label));
	memcpy(q, "<body>", 6);
	q += 6;
	head = (size_t)(q - p);
	fill = B.size > head + 17 ? B.size - head - 17 : 1;
	memcpy(q, B.pad, fill);
	memcpy(q + fill, "</body></message>", 17);
	return head + fill + 17;
}

static void mark(struct lconn *c, uint64_t seq)
{
	if (c->nmark == c->mark_cap) {
		c->mark_cap = c->mark_cap ? c->mark_cap * 2 : 1024;
		c->mark_off = xrealloc(c->mark_off, c->mark_cap * sizeof(*c->mark_off));
		c->mark_seq = xrealloc(c->mark_seq, c->mark_cap * sizeof(*c->mark_seq));
	}
	c->mark_off[c->nmark] = c->pre_len;
	c->mark_seq[c->nmark] = seq;
	c->nmark++;
}

/* Encrypt stream c's whole run into c->pre. Open loop: one batch per tick
 * (stanzas due in it), mark k after the batch of tick k; flat out: batches
 * of FLAT_BATCH stanzas, a mark after each. */
static void precompute(struct lconn *c, uint64_t span_ns)
{
	size_t stanza_max = B.size + 256 + (B.label ? strlen(B.label) : 0);
	uint64_t n, seq = 1, tick = (uint64_t)B.tick_us * 1000;
	char *batch;
	size_t cap;

	if (B.rate > 0)
		n = (uint64_t)((double)span_ns / 1e9 * B.rate / B.nstreams) + 2;
	else
		n = (uint64_t)((double)span_ns / 1e9 * B.budget_rate / B.nstreams) + FLAT_BATCH;
	c->pre_cap = n * (stanza_max + 8) + 4 * 1024 * 1024;
	c->pre = map(c->pre_cap, 0);
	cap = stanza_max * (FLAT_BATCH + 1);
	batch = xrealloc(NULL, cap);
	c->precomputing = 1;
	if (B.rate > 0) {
		double period = 1e9 * B.nstreams / B.rate; /* per stream, ns */

		for (uint64_t k = 0; (k + 1) * tick <= span_ns + tick; k++) {
			size_t used = 0;

			for (;;) {
				uint64_t off = (uint64_t)((double)(seq - 1) * period +
							  (double)c->index * period / B.nstreams);

				if (off >= (k + 1) * tick || off >= span_ns)
					break;
				if (used + stanza_max > cap) {
					cap *= 2;
					batch = xrealloc(batch, cap);
				}
				used += make_stanza(batch + used, c->index, seq, off);
				seq++;
			}
			if (used > 0 && tls_write(c->tls, batch, used) < 0)
				die("TLS write into memory failed");
			mark(c, seq - 1);
		}
	} else {
		while (seq <= n) {
			size_t used = 0;

			for (int j = 0; j < FLAT_BATCH && seq <= n; j++, seq++)
				used += make_stanza(batch + used, c->index, seq, 0);
			if (tls_write(c->tls, batch, used) < 0)
				die("TLS write into memory failed");
			mark(c, seq - 1);
		}
	}
	c->precomputing = 0;
	free(batch);
}

/* Write c's precomputed bytes up to limit. */
static void blast(struct lconn *c, size_t limit)
{
	if (c->dead || flush_out(c) < 0 || c->out_len > 0)
		return;
	while (c->pre_off < limit) {
		size_t want = limit - c->pre_off;
		ssize_t n = write(c->fd, c->pre + c->pre_off, want < WRITE_MAX ? want : WRITE_MAX);

		if (n > 0) {
			c->pre_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ep_mod(c, 1);
			return;
		}
		conn_dead(c, "write failed");
		return;
	}
	ep_mod(c, 0);
}

/* How far stream c may write now. */
static size_t limit_of(struct lconn *c, uint64_t t)
{
	if (B.rate > 0) {
		uint64_t k;

		/* tick k's batch is written once tick k is over */
		if (t < B.t_start + (uint64_t)B.tick_us * 1000)
			return 0;
		k = (t - B.t_start) / ((uint64_t)B.tick_us * 1000) - 1;
		return k < c->nmark ? c->mark_off[k] : c->pre_len;
	}
	if (B.phase == 2)
		return c->pre_len;
	/* after the end: finish the batch being written, so it decrypts whole */
	{
		size_t lo = 0, hi = c->nmark; /* first mark at or after pre_off */

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (c->mark_off[mid] < c->pre_off)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo < c->nmark ? c->mark_off[lo] : c->pre_len;
	}
}

static void measure(int end);

/* Flat out, stream i has written everything encrypted for it: from now on
 * the middle box would not be loaded on every stream, so the measurement
 * window ends here. */
static void exhausted(int i, uint64_t t)
{
	B.exhausted = 1;
	if (!B.measuring) {
		B.measuring = 1;
		measure(0);
	}
	if (t < B.t_measure + 1000000000ull)
		fprintf(stderr,
			"xblast: stream %d wrote everything encrypted for it %.2f s into the "
			"window (raise --budget-rate)\n",
			i, t > B.t_measure ? (double)(t - B.t_measure) / 1e9 : 0);
	if (t <= B.t_measure) {
		B.t_end = B.t_measure + 1;
		if (B.warmup > 0)
			B.nauthfail++; /* nothing measured */
	} else {
		B.t_end = t;
	}
	measure(1);
	B.phase = 3;
}

static void blast_all(uint64_t t)
{
	for (int i = 0; i < B.nstreams; i++) {
		struct lconn *c = B.streams[i];

		if (c != NULL && !c->dead) {
			/* a full socket says so with EPOLLOUT: no write to fail */
			if (!c->want_out)
				blast(c, limit_of(c, t));
			if (B.rate <= 0 && B.phase == 2 && c->pre_off == c->pre_len)
				exhausted(i, t);
		}
	}
}

/* Stanzas fully written on c, and those due but never written. */
static void count_sent(struct lconn *c, uint64_t *sent, uint64_t *unsent)
{
	uint64_t s = 0, due = 0;

	for (size_t k = 0; k < c->nmark; k++) {
		if (c->mark_off[k] <= c->pre_off)
			s = c->mark_seq[k];
		if (B.rate > 0 && B.t_start + (k + 1) * (uint64_t)B.tick_us * 1000 <= B.t_end)
			due = c->mark_seq[k];
	}
	*sent += s;
	*unsent += due > s ? due - s : 0;
}

static void decode_captured(void)
{
	for (; B.chunk_done < B.nchunks; B.chunk_done++) {
		struct chunk *k = &B.chunks[B.chunk_done];

		k->c->now = k->t;
		feed_in(k->c, k->p, k->len);
	}
}

static void measure(int end)
{
	for (int w = 0; w < B.nwatch; w++)
		(end ? B.watch_cpu1 : B.watch_cpu0)[w] = proc_cpu_ticks(B.watch[w]);
	getrusage(RUSAGE_SELF, end ? &B.self1 : &B.self0);
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t pct(double p)
{
	return B.nlat == 0 ? 0 : B.lat[(size_t)(p * (double)(B.nlat - 1) + 0.5)];
}

static void report(void)
{
	double win = (double)(B.t_end - B.t_measure) / 1e9;
	/* a window cut at its start (flat out, warm-up 0, a stream out of
	 * stanzas at once) measures nothing: per-second figures are 0 */
	double per = win >= 0.001 ? 1 / win : 0;
	double hz = (double)sysconf(_SC_CLK_TCK);
	double self = tv_s(B.self1.ru_utime) + tv_s(B.self1.ru_stime) - tv_s(B.self0.ru_utime) -
		      tv_s(B.self0.ru_stime);
	uint64_t lost;

	for (int i = 0; i < B.nstreams; i++)
		if (B.streams[i] != NULL)
			count_sent(B.streams[i], &B.sent, &B.unsent);
	lost = B.sent > B.received + B.bounced ? B.sent - B.received - B.bounced : 0;
	qsort(B.lat, B.nlat, sizeof(*B.lat), cmp_u32);
	printf("mode=traffic tool=xblast streams=%d size=%zu offered=%.0f sent=%" PRIu64
	       " unsent=%" PRIu64 " received=%" PRIu64 " bounced=%" PRIu64 " lost=%" PRIu64
	       " out_of_order=%" PRIu64 " dup=%" PRIu64 " authfail=%d closed=%d",
	       B.nstreams, B.size, B.rate, B.sent, B.unsent, B.received, B.bounced, lost,
	       B.out_of_order, B.dup, B.nauthfail, B.nclosed_early);
	printf(" rate=%.0f mbit=%.1f p50_us=%u p99_us=%u p999_us=%u max_us=%u samples=%zu",
	       (double)B.recv_window * per, (double)B.bytes_window * 8 * per / 1e6, pct(0.50),
	       pct(0.99), pct(0.999), pct(1.0), B.nlat);
	for (int w = 0; w < B.nwatch; w++) {
		double cpu_s = B.watch_cpu1[w] >= 0 && B.watch_cpu0[w] >= 0
				   ? (double)(B.watch_cpu1[w] - B.watch_cpu0[w]) / hz
				   : -1;

		printf(" watch%d_cpu=%.2f watch%d_us_per_stanza=%.2f", w, cpu_s * per, w,
		       B.recv_window ? cpu_s * 1e6 / (double)B.recv_window : 0);
	}
	printf(
	    " self_cpu=%.2f self_us_per_stanza=%.3f precompute_s=%.2f exhausted=%d window_s=%.2f\n",
	    self * per, B.recv_window ? self * 1e6 / (double)B.recv_window : 0, B.precompute_s,
	    B.exhausted, win);
	if (B.check && (lost != 0 || B.out_of_order != 0 || B.dup != 0 || B.bounced != 0 ||
			B.nauthfail != 0 || B.nclosed_early != 0 || B.sent == 0 || B.unsent != 0))
		B.exit_code = 1;
}

struct pre_job {
	int first;
	uint64_t span;
};

static void *pre_thread(void *arg)
{
	struct pre_job *j = arg;

	for (int i = j->first; i < B.nstreams; i += PRE_THREADS)
		precompute(B.streams[i], j->span);
	return NULL;
}

/* From priming to the run: encrypt it, lay out the capture, start. */
static void prepare_run(void)
{
	uint64_t span = (uint64_t)((B.warmup + B.seconds) * 1e9), t0 = now_ns(), total = 0;
	struct itimerspec its = {0};

	pthread_t th[PRE_THREADS];
	struct pre_job jobs[PRE_THREADS];

	/* the streams are independent sessions: encrypt them on both cores */
	for (int j = 0; j < PRE_THREADS; j++) {
		jobs[j] = (struct pre_job){.first = j, .span = span};
		if (pthread_create(&th[j], NULL, pre_thread, &jobs[j]) != 0)
			die("pthread_create");
	}
	for (int j = 0; j < PRE_THREADS; j++)
		pthread_join(th[j], NULL);
	for (int i = 0; i < B.nstreams; i++)
		total += B.streams[i]->pre_len;
	/* the sink gets about what was written (labels rewritten, bounces);
	 * more goes to segments faulted in during the run. Flat out the
	 * budget is a ceiling the middle boxes measured stay well under. */
	seg_add((B.rate > 0 ? total : total / 2) + 16 * 1024 * 1024, 1);
	B.precompute_s = (double)(now_ns() - t0) / 1e9;
	B.capture = 1;
	B.phase = 2;
	B.t_start = now_ns() + 1000000;
	B.t_measure = B.t_start + (uint64_t)(B.warmup * 1e9);
	B.t_end = B.t_measure + (uint64_t)(B.seconds * 1e9);
	its.it_interval.tv_nsec = (long)B.tick_us * 1000;
	its.it_value.tv_nsec = 1000000;
	if (timerfd_settime(B.timer.fd, 0, &its, NULL) < 0)
		die("timerfd_settime");
}

/* VmRSS of a process in KiB; -1 if gone. */
static long proc_rss_kib(int pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* --mode idle: open --streams streams, hold them --hold s, report how much
 * the watched process grew per stream. */
static void on_timer_idle(uint64_t t)
{
	while (B.nopened < B.nstreams && B.nopened - B.nready < MAX_CONNECTING)
		open_stream(B.nopened);
	if (B.t_ready == 0 && B.nready == B.nstreams)
		B.t_ready = t;
	if ((B.t_ready != 0 && t - B.t_ready >= (uint64_t)(B.hold * 1e9)) ||
	    t - B.t_start > 120ull * 1000000000ull) {
		printf("mode=idle streams=%d ready=%d setup_s=%.2f authfail=%d", B.nstreams,
		       B.nready, B.t_ready ? (double)(B.t_ready - B.t_start) / 1e9 : -1,
		       B.nauthfail);
		for (int w = 0; w < B.nwatch; w++) {
			long r1 = proc_rss_kib(B.watch[w]);

			printf(
			    " watch%d_rss_kib=%ld watch%d_rss0_kib=%ld watch%d_kib_per_stream=%.1f",
			    w, r1, w, B.rss0[w], w, (double)(r1 - B.rss0[w]) / B.nstreams);
		}
		printf("\n");
		if (B.nready != B.nstreams || B.nauthfail != 0 || B.nclosed_early != 0)
			B.exit_code = 1;
		B.phase = 4;
	}
}

/* --mode handshake: --total full negotiations, --streams at a time, each
 * closed and freed once it is done. */
static void on_timer_handshake(uint64_t t)
{
	while (B.nopened < B.total && B.nactive < B.nstreams)
		open_stream(B.nopened % B.nstreams);
	if (B.ndone + B.nclosed_early >= B.total || t - B.t_start > 120ull * 1000000000ull) {
		double secs = (double)(t - B.t_start) / 1e9, hz = (double)sysconf(_SC_CLK_TCK);

		printf("mode=handshake total=%d done=%d concurrency=%d seconds=%.2f per_s=%.0f "
		       "authfail=%d",
		       B.total, B.ndone, B.nstreams, secs, B.ndone / secs, B.nauthfail);
		for (int w = 0; w < B.nwatch; w++) {
			double cpu = (double)(proc_cpu_ticks(B.watch[w]) - B.watch_cpu0[w]) / hz;

			printf(" watch%d_cpu=%.2f watch%d_per_cpu_s=%.0f", w, cpu / secs, w,
			       cpu > 0 ? B.ndone / cpu : 0);
		}
		printf("\n");
		if (B.ndone < B.total || B.nauthfail != 0 || B.nclosed_early != 0)
			B.exit_code = 1;
		B.phase = 4;
	}
}

/* Handshake mode: free the streams done, outside any callback. */
static void reap(void)
{
	for (struct lconn **pp = &B.conns; *pp != NULL;) {
		struct lconn *c = *pp;

		if (!c->dead || c->kind != K_SEND) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		close(c->fd);
		tls_free(c->tls);
		xs_free(c->xs);
		free(c->out);
		free(c);
	}
}

static void on_timer(void)
{
	uint64_t exp, t = now_ns();

	if (read(B.timer.fd, &exp, sizeof(exp)) < 0 && errno != EAGAIN)
		die("timerfd read");
	if (B.mode == MODE_IDLE) {
		on_timer_idle(t);
		return;
	}
	if (B.mode == MODE_HANDSHAKE) {
		on_timer_handshake(t);
		return;
	}
	switch (B.phase) {
	case 0:
		while (B.nopened < B.nstreams && B.nopened - B.nready < MAX_CONNECTING)
			open_stream(B.nopened);
		if (B.nready == B.nstreams) {
			char *st = xrealloc(NULL, B.size + 256 + (B.label ? strlen(B.label) : 0));

			B.phase = 1;
			for (int i = 0; i < B.nstreams; i++) {
				size_t n = make_stanza(st, i, 0, 0);

				st[n] = '\0';
				say(B.streams[i], st);
			}
			free(st);
			B.t_start = t;
		} else if (t - B.t_start > 60ull * 1000000000ull ||
			   B.nauthfail + B.nclosed_early > 0) {
			fprintf(stderr, "xblast: %d of %d streams ready\n", B.nready, B.nstreams);
			B.exit_code = 1;
			B.check = 0;
			B.phase = 4;
		}
		return;
	case 1:
		if (B.nprimed == B.nstreams) {
			prepare_run();
		} else if (t - B.t_start > 30ull * 1000000000ull || B.nclosed_early > 0) {
			fprintf(stderr, "xblast: %d of %d priming stanzas arrived\n", B.nprimed,
				B.nstreams);
			B.exit_code = 1;
			B.phase = 4;
		}
		return;
	case 2:
		if (!B.measuring && t >= B.t_measure) {
			B.measuring = 1;
			measure(0);
		}
		if (t >= B.t_end) {
			measure(1);
			B.phase = 3;
		}
		blast_all(t);
		return;
	case 3: {
		/* up to 10 s for the stragglers. Decoding takes a while and
		 * nothing is read meanwhile, so it waits until everything due
		 * is written and nothing arrived for QUIET_NS: bytes still in
		 * flight would otherwise get the time decoding ended. */
		uint64_t sent = 0, unsent = 0;
		int pending = 0;

		for (struct lconn *c = B.conns; c != NULL; c = c->next) {
			int one = 1;

			if (c->lowat && !c->dead) {
				/* the last bytes: every read again */
				c->lowat = 0;
				(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
				readable(c);
			}
		}

		blast_all(t);
		for (int i = 0; i < B.nstreams; i++) {
			struct lconn *c = B.streams[i];

			if (c != NULL && !c->dead &&
			    (c->out_len > 0 || c->pre_off < limit_of(c, t)))
				pending = 1;
		}
		if ((pending || t - B.last_read < QUIET_NS) && t <= B.t_end + 10000000000ull)
			return;
		decode_captured();
		for (int i = 0; i < B.nstreams; i++)
			if (B.streams[i] != NULL)
				count_sent(B.streams[i], &sent, &unsent);
		if (B.received + B.bounced >= sent + unsent || t > B.t_end + 10000000000ull)
			B.phase = 4;
		return;
	}
	}
}

/* ---- setup ---- */

static void split_addr(const char *arg, const char **host, int *port)
{
	char *s = strdup(arg), *colon;

	if (s == NULL || (colon = strrchr(s, ':')) == NULL)
		die("address must be HOST:PORT");
	*colon = '\0';
	*host = s;
	*port = atoi(colon + 1);
}

static void listen_on(struct lconn *l, enum kind kind, const char *host, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
	int one = 1;

	l->kind = kind;
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
	    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l->fd, 4096) < 0 ||
	    epoll_ctl(B.ep, EPOLL_CTL_ADD, l->fd, &ev) < 0) {
		fprintf(stderr, "xblast: cannot listen on %s:%d\n", host, port);
		exit(2);
	}
}

static void on_sig(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: xblast --store DIR --ca FILE --connect H:P [--listen H:P]\n"
			"  [--mode traffic|idle|handshake] [--total N] [--hold S]\n"
			"  [--listen-tls H:P] [--direct-tls] [--from D] [--to D] [--streams N]\n"
			"  [--rate R (0: flat out)] [--seconds S] [--warmup S] [--size BYTES]\n"
			"  [--label XML] [--label-every K] [--tick-us US] [--budget-rate R]\n"
			"  [--watch PID]... [--check]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"connect", 1, NULL, 'c'},
					     {"listen", 1, NULL, 'l'},
					     {"listen-tls", 1, NULL, 'L'},
					     {"direct-tls", 0, NULL, 'D'},
					     {"store", 1, NULL, 'S'},
					     {"ca", 1, NULL, 'A'},
					     {"from", 1, NULL, 'f'},
					     {"to", 1, NULL, 't'},
					     {"streams", 1, NULL, 'n'},
					     {"rate", 1, NULL, 'r'},
					     {"seconds", 1, NULL, 's'},
					     {"warmup", 1, NULL, 'W'},
					     {"size", 1, NULL, 'z'},
					     {"label", 1, NULL, 'b'},
					     {"watch", 1, NULL, 'p'},
					     {"check", 0, NULL, 'k'},
					     {"label-every", 1, NULL, 'e'},
					     {"tick-us", 1, NULL, 'u'},
					     {"budget-rate", 1, NULL, 'B'},
					     {"mode", 1, NULL, 'm'},
					     {"total", 1, NULL, 'T'},
					     {"hold", 1, NULL, 'H'},
					     {NULL, 0, NULL, 0}};
	struct store_params sp = {0};
	struct epoll_event evs[256];
	struct rlimit rl;
	char err[512];
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			split_addr(optarg, &B.connect_host, &B.connect_port);
			break;
		case 'l':
			split_addr(optarg, &B.listen_host, &B.listen_port);
			break;
		case 'L':
			split_addr(optarg, &B.listen_tls_host, &B.listen_tls_port);
			break;
		case 'D':
			B.direct = 1;
			break;
		case 'S':
			B.store_dir = optarg;
			break;
		case 'A':
			B.ca_file = optarg;
			break;
		case 'f':
			B.from = optarg;
			break;
		case 't':
			B.to = optarg;
			break;
		case 'n':
			B.nstreams = atoi(optarg);
			break;
		case 'r':
			B.rate = atof(optarg);
			break;
		case 's':
			B.seconds = atof(optarg);
			break;
		case 'W':
			B.warmup = atof(optarg);
			break;
		case 'z':
			B.size = (size_t)atol(optarg);
			break;
		case 'b':
			B.label = optarg;
			break;
		case 'p':
			if (B.nwatch == MAX_WATCH)
				usage();
			B.watch[B.nwatch++] = atoi(optarg);
			break;
		case 'k':
			B.check = 1;
			break;
		case 'e':
			B.label_every = (unsigned)atoi(optarg);
			break;
		case 'u':
			B.tick_us = (unsigned)atoi(optarg);
			break;
		case 'B':
			B.budget_rate = atof(optarg);
			break;
		case 'm':
			if (strcmp(optarg, "traffic") == 0)
				B.mode = MODE_TRAFFIC;
			else if (strcmp(optarg, "idle") == 0)
				B.mode = MODE_IDLE;
			else if (strcmp(optarg, "handshake") == 0)
				B.mode = MODE_HANDSHAKE;
			else
				usage();
			break;
		case 'T':
			B.total = atoi(optarg);
			break;
		case 'H':
			B.hold = atof(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || B.store_dir == NULL || B.ca_file == NULL || B.nstreams < 1 ||
	    B.connect_host == NULL || (B.listen_host == NULL && B.mode == MODE_TRAFFIC) ||
	    B.total < 1 || B.hold < 0 || B.size < 64 || B.size > 65536 || B.label_every < 1 ||
	    B.tick_us < 50 || B.tick_us > 100000 || B.seconds <= 0 || B.warmup < 0 ||
	    B.budget_rate <= 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	log_init(1, 0);
	(void)log_set_level("warning");
	sp.dir = B.store_dir;
	if (store_load(&sp, &B.store, err, sizeof(err)) < 0)
		die(err);
	if (tls_creds_client(B.store, &B.client_creds, err, sizeof(err)) < 0 ||
	    tls_creds_server(NULL, NULL, B.store, &B.server_creds, err, sizeof(err)) < 0)
		die(err);
	if (gnutls_x509_trust_list_init(&B.trust, 0) < 0 ||
	    gnutls_x509_trust_list_add_trust_file(B.trust, B.ca_file, NULL, GNUTLS_X509_FMT_PEM, 0,
						  0) <= 0)
		die("cannot load --ca");
	B.pad = xrealloc(NULL, B.size);
	memset(B.pad, 'x', B.size);
	B.streams = calloc((size_t)B.nstreams, sizeof(*B.streams));
	B.expect = calloc((size_t)B.nstreams, sizeof(*B.expect));
	if (B.streams == NULL || B.expect == NULL)
		die("out of memory");

	B.ep = epoll_create1(EPOLL_CLOEXEC);
	if (B.ep < 0)
		die("epoll_create1");
	if (B.listen_host != NULL)
		listen_on(&B.listener, K_LISTEN, B.listen_host, B.listen_port);
	if (B.listen_tls_host != NULL)
		listen_on(&B.listener_tls, K_LISTEN_TLS, B.listen_tls_host, B.listen_tls_port);
	B.timer.kind = K_TIMER;
	B.timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	{
		struct itimerspec its = {.it_interval.tv_nsec = 1000000,
					 .it_value.tv_nsec = 1000000};
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &B.timer};

		if (B.timer.fd < 0 || timerfd_settime(B.timer.fd, 0, &its, NULL) < 0 ||
		    epoll_ctl(B.ep, EPOLL_CTL_ADD, B.timer.fd, &ev) < 0)
			die("timerfd");
	}
	B.t_start = now_ns();
	for (int w = 0; w < B.nwatch; w++) {
		B.rss0[w] = proc_rss_kib(B.watch[w]);
		B.watch_cpu0[w] = proc_cpu_ticks(B.watch[w]);
	}

	while (B.phase < 4 && !interrupted) {
		int n = epoll_wait(B.ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), 100);

		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct lconn *c = evs[i].data.ptr;

			switch (c->kind) {
			case K_TIMER:
				on_timer();
				break;
			case K_LISTEN:
			case K_LISTEN_TLS:
				accept_all(c);
				break;
			default:
				if (c->dead)
					break;
				if ((evs[i].events & EPOLLOUT) && !c->connected)
					connected(c);
				else if (evs[i].events & EPOLLOUT) {
					if (B.phase >= 2 && c->kind == K_SEND)
						blast(c, limit_of(c, now_ns()));
					else if (flush_out(c) == 0 && c->out_len == 0)
						ep_mod(c, 0);
				}
				if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
					readable(c);
			}
		}
		if (B.mode == MODE_HANDSHAKE)
			reap();
	}
	if (interrupted)
		B.exit_code = 1;
	else if (B.t_end != 0)
		report();
	/* tear down: every stream, the capture, the tools */
	B.phase = 4;
	while (B.conns != NULL) {
		struct lconn *c = B.conns;

		B.conns = c->next;
		close(c->fd);
		tls_free(c->tls);
		xs_free(c->xs);
		free(c->out);
		if (c->pre != NULL)
			munmap(c->pre, c->pre_cap);
		free(c->mark_off);
		free(c->mark_seq);
		free(c);
	}
	while (B.segs != NULL) {
		struct seg *s = B.segs;

		B.segs = s->next;
		munmap(s->base, s->cap);
		free(s);
	}
	if (B.listen_host != NULL)
		close(B.listener.fd);
	if (B.listen_tls_host != NULL)
		close(B.listener_tls.fd);
	close(B.timer.fd);
	close(B.ep);
	tls_creds_free(B.client_creds);
	tls_creds_free(B.server_creds);
	store_unref(B.store);
	gnutls_x509_trust_list_deinit(B.trust, 1);
	free(B.pad);
	free(B.streams);
	free(B.expect);
	free(B.chunks);
	free(B.lat);
	return B.exit_code;
}
