/* xbench: the load tool of the benchmark ladder (make bench, make
 * bench-smoke). One process plays both ends of a server-to-server hop:
 *
 *   sender  N authenticated s2s streams (STARTTLS or direct TLS, then SASL
 *           EXTERNAL with a certificate for --from) toward --connect (the
 *           sink itself, a proxy, or xtrunkd), sending <message/> stanzas
 *           of --size bytes on a schedule fixed in advance (--rate, open
 *           loop; each stanza carries its scheduled time) or flat out (a
 *           window of stanzas in flight per stream);
 *   sink    a listener that accepts s2s streams (STARTTLS or direct TLS),
 *           authenticates them by SASL EXTERNAL against --ca, frames every
 *           stanza with relay/xmlstream and records arrival time, order per
 *           sending stream and bounces (type='error').
 *
 * Both ends share one clock, so latency is arrival minus schedule. It is
 * built on the relay's own modules (relay/net + relay/tls over libuv,
 * relay/xmlstream, certs/store, certs/identity). It prints one line of
 * key=value results and exits 0 only when every stanza sent arrived, in
 * order per stream, none bounced, and every stream authenticated. In the
 * traffic line, sent counts stanzas handed to the sender's own connection;
 * unsent (open loop) those the schedule had due before the end that the
 * sender never produced because its own connection was backed up (more
 * than HIGH_WATER bytes waiting: the next hop reads slower than the
 * schedule); lost = sent - received - bounced, i.e. sent but neither
 * arrived nor came back 10 s after the end (dropped by the middle box, or
 * still queued somewhere).
 *
 * Modes: traffic (default), idle (open --streams streams, hold them, report
 * the RSS growth of --watch per stream), handshake (full negotiations per
 * second, --streams at a time, --total in all). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <uv.h>

#include "identity.h"
#include "log.h"
#include "net.h"
#include "store.h"
#include "tls.h"
#include "xmlstream.h"

#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define HIGH_WATER (256 * 1024) /* bytes queued per stream before the sender waits */
#define MAX_WATCH 4
#define MAX_CONNECTING 128 /* negotiations in flight while streams are set up */

enum mode { MODE_TRAFFIC, MODE_IDLE, MODE_HANDSHAKE };

/* One s2s stream, either end. */
struct bconn {
	struct bconn *next, *prev; /* the list of open streams (borrowed links) */
	struct net_conn *conn;	   /* owned until on_closed */
	struct xs *xs;		   /* owned */
	int client;		   /* 1: our sending stream, 0: accepted by the sink */
	int index;		   /* client: stream number */
	int direct;		   /* TLS from the first byte */
	int tls, authed, ready, closing;
	int restart, start_tls; /* after this feed */
	char from[256];		/* sink: the stream 'from' */
	uint64_t next_seq;	/* client: next stanza to send */
	uint64_t opened_ns;
};

static struct {
	/* options */
	const char *connect_host, *listen_host, *listen_tls_host;
	int connect_port, listen_port, listen_tls_port;
	int direct;
	const char *store_dir, *ca_file, *from, *to, *label;
	enum mode mode;
	int nstreams, total;
	double rate, seconds, warmup, hold;
	size_t size;
	unsigned window, label_every;
	int watch[MAX_WATCH], nwatch;
	int check;
	/* state */
	uv_loop_t loop;
	uv_tcp_t listener, listener_tls;
	uv_timer_t tick;
	uv_check_t check_h;
	uv_signal_t sigint;
	struct tls_creds *client_creds, *server_creds; /* owned */
	struct store *store;			       /* owned reference */
	gnutls_x509_trust_list_t trust;		       /* owned */
	struct bconn *conns;			       /* borrowed list heads */
	struct bconn **streams;			       /* owned array of borrowed */
	uint64_t *expect;			       /* owned: next seq expected per stream */
	uint64_t *sent_per;			       /* owned: stanzas sent per stream */
	int nready, nopened, nauthfail, nclosed_early, ndone;
	uint64_t t_start, t_end, t_measure, t_ready; /* ns */
	int phase; /* 0 connecting, 1 sending, 2 draining, 3 done */
	uint64_t sent, received, bounced, out_of_order, dup;
	uint64_t recv_window, bytes_window; /* received within the measurement window */
	uint32_t *lat;			    /* owned: latency samples in microseconds */
	size_t nlat, lat_cap;
	long watch_cpu0[MAX_WATCH], watch_cpu1[MAX_WATCH];
	long watch_rss0[MAX_WATCH];
	struct rusage self0, self1;
	int measuring;
	char *pad; /* owned: body filler */
	int exit_code;
} B = {
    .nstreams = 10,
    .total = 1000,
    .seconds = 5,
    .warmup = 1,
    .hold = 2,
    .size = 300,
    .window = 256,
    .label_every = 1,
    .from = "a.bench",
    .to = "b.bench",
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *why)
{
	fprintf(stderr, "xbench: %s\n", why);
	exit(2);
}

/* utime + stime of a process, in clock ticks; -1 if gone. */
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
	p = strrchr(buf, ')'); /* the command may hold spaces */
	if (p == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (long)(ut + st);
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

/* ---- streams ---- */

static void on_closed(void *ctx);
static void on_data(void *ctx, const char *data, size_t len);
static void on_tls(void *ctx, int status);
static void on_timeout(void *ctx);
static void on_error(void *ctx, int status);
static void on_connected(void *ctx, int status);
static const struct xs_callbacks bench_xs_cb;

static const struct net_callbacks bench_net_cb = {
    .on_connected = on_connected,
    .on_data = on_data,
    .on_tls = on_tls,
    .on_timeout = on_timeout,
    .on_error = on_error,
    .on_closed = on_closed,
};

static void bwrite(struct bconn *c, const char *s)
{
	if (!c->closing && net_write(c->conn, s, strlen(s)) < 0)
		c->closing = 1;
}

static void bclose(struct bconn *c)
{
	if (c->closing && c->conn == NULL)
		return;
	c->closing = 1;
	if (c->conn != NULL)
		net_close(c->conn);
}

static void send_header(struct bconn *c, const char *id)
{
	char h[512];

	if (c->client)
		snprintf(h, sizeof(h),
			 "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
			 "xmlns:stream='" XS_NS_STREAM "' xmlns:db='" XS_NS_DIALBACK
			 "' from='%s' to='%s' version='1.0'>",
			 B.from, B.to);
	else
		snprintf(h, sizeof(h),
			 "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
			 "xmlns:stream='" XS_NS_STREAM "' xmlns:db='" XS_NS_DIALBACK
			 "' id='%s' version='1.0'>",
			 id);
	bwrite(c, h);
}

static struct bconn *bconn_new(int client)
{
	struct bconn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->client = client;
	c->xs = xs_new(&bench_xs_cb, c, NULL);
	if (c->xs == NULL) {
		free(c);
		return NULL;
	}
	c->next = B.conns;
	if (B.conns != NULL)
		B.conns->prev = c;
	B.conns = c;
	c->opened_ns = now_ns();
	return c;
}

static int open_stream(int index)
{
	struct bconn *c = bconn_new(1);

	if (c == NULL)
		return -ENOMEM;
	c->index = index;
	c->direct = B.direct;
	c->conn = net_connect(B.connect_host, B.connect_port, 10000, &bench_net_cb, c);
	if (c->conn == NULL) {
		c->closing = 1;
		on_closed(c);
		return -EIO;
	}
	B.nopened++;
	return 0;
}

static void on_connected(void *ctx, int status)
{
	struct bconn *c = ctx;

	if (status < 0) {
		fprintf(stderr, "xbench: connect %s:%d: %s\n", B.connect_host, B.connect_port,
			uv_strerror(status));
		return;
	}
	net_set_timer(c->conn, 30000); /* negotiation deadline */
	if (c->direct) {
		if (net_start_tls_client(c->conn, B.client_creds, B.to, B.from, 1) < 0)
			bclose(c);
		return;
	}
	send_header(c, NULL);
}

static void on_tls(void *ctx, int status)
{
	struct bconn *c = ctx;
	char why[160];
	int r;

	if (status < 0) {
		fprintf(stderr, "xbench: TLS handshake failed\n");
		B.nauthfail++;
		bclose(c);
		return;
	}
	c->tls = 1;
	if (c->client) {
		/* the other end must hold a certificate for the domain we send to */
		r = net_tls_check(c->conn, B.to, &(struct ident_policy){.trust = B.trust}, why,
				  sizeof(why));
		if (r != 0) {
			fprintf(stderr, "xbench: server certificate for %s: %s\n", B.to, why);
			B.nauthfail++;
			bclose(c);
			return;
		}
		send_header(c, NULL);
	}
}

static void on_timeout(void *ctx)
{
	struct bconn *c = ctx;

	if (!c->ready) {
		fprintf(stderr, "xbench: stream %d not negotiated in 30 s\n", c->index);
		B.nauthfail++;
	}
	bclose(c);
}

static void on_error(void *ctx, int status)
{
	struct bconn *c = ctx;

	c->closing = 1;
	if (c->client && B.phase < 3 && B.mode != MODE_HANDSHAKE) {
		fprintf(stderr, "xbench: stream %d closed: %s\n", c->index, uv_strerror(status));
		B.nclosed_early++;
	}
}

static void maybe_open_more(void);

static void on_closed(void *ctx)
{
	struct bconn *c = ctx;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		B.conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->client && B.streams != NULL && c->index < B.nstreams && B.streams[c->index] == c)
		B.streams[c->index] = NULL;
	if (c->client && B.mode == MODE_HANDSHAKE)
		maybe_open_more();
	xs_free(c->xs);
	free(c);
}

static void on_data(void *ctx, const char *data, size_t len)
{
	struct bconn *c = ctx;

	if (c->closing)
		return;
	if (xs_feed(c->xs, data, len) < 0) {
		bclose(c);
		return;
	}
	if (c->start_tls) {
		c->start_tls = 0;
		if (xs_trailing(c->xs) != 0) {
			bclose(c);
			return;
		}
		xs_reset(c->xs);
		if (c->client) {
			if (net_start_tls_client(c->conn, B.client_creds, B.to, B.from, 0) < 0)
				bclose(c);
		} else {
			if (net_start_tls_server(c->conn, B.server_creds, B.to, 0) < 0)
				bclose(c);
		}
		return;
	}
	if (c->restart) {
		c->restart = 0;
		xs_reset(c->xs);
		if (c->client)
			send_header(c, NULL);
	}
}

static void xs_header(void *ctx, const struct xs_header *h)
{
	struct bconn *c = ctx;
	char id[32];
	int offer_ext;

	if (c->client)
		return;
	snprintf(c->from, sizeof(c->from), "%s", h->from != NULL ? h->from : "");
	snprintf(id, sizeof(id), "sink%p", (void *)c);
	send_header(c, id);
	if (!c->tls && !c->direct) {
		bwrite(c, "<stream:features><starttls xmlns='" NS_TLS
			  "'><required/></starttls></stream:features>");
		return;
	}
	offer_ext = !c->authed && net_tls_has_cert(c->conn);
	bwrite(c, offer_ext ? "<stream:features><mechanisms xmlns='" NS_SASL
			      "'><mechanism>EXTERNAL</mechanism></mechanisms></stream:features>"
			    : "<stream:features/>");
}

static void stream_ready(struct bconn *c)
{
	c->ready = 1;
	B.nready++;
	net_set_timer(c->conn, 0);
	if (B.mode == MODE_HANDSHAKE) {
		B.ndone++;
		bclose(c);
		return;
	}
	if (c->index < B.nstreams)
		B.streams[c->index] = c;
}

/* "xb.<stream>.<seq>.<scheduled ns>" */
static void sink_message(const struct xs_stanza *st)
{
	unsigned long stream;
	unsigned long long seq, sched;
	uint64_t t = now_ns();

	if (st->id == NULL || sscanf(st->id, "xb.%lu.%llu.%llu", &stream, &seq, &sched) != 3 ||
	    stream >= (unsigned long)B.nstreams) {
		fprintf(stderr, "xbench: stanza without a bench id\n");
		B.out_of_order++;
		return;
	}
	if (st->type != NULL && strcmp(st->type, "error") == 0) {
		B.bounced++;
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
	if (B.phase >= 1 && sched >= B.t_measure && sched < B.t_end) {
		uint64_t us = t > sched ? (t - sched) / 1000 : 0;

		B.recv_window++;
		B.bytes_window += st->len;
		if (B.nlat == B.lat_cap) {
			size_t cap = B.lat_cap ? B.lat_cap * 2 : 65536;
			uint32_t *n = realloc(B.lat, cap * sizeof(*n));

			if (n == NULL)
				return;
			B.lat = n;
			B.lat_cap = cap;
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

static void client_stanza(struct bconn *c, const struct xs_stanza *st)
{
	char auth[600];
	gnutls_datum_t in = {(unsigned char *)B.from, (unsigned)strlen(B.from)}, out = {0};

	if (strcmp(st->name, "features") == 0) {
		if (c->authed) {
			stream_ready(c);
		} else if (!c->tls && has_child(st, "starttls", NS_TLS)) {
			bwrite(c, "<starttls xmlns='" NS_TLS "'/>");
		} else if (c->tls && has_child(st, "mechanisms", NS_SASL)) {
			if (gnutls_base64_encode2(&in, &out) < 0)
				die("base64");
			snprintf(auth, sizeof(auth),
				 "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>%.*s</auth>",
				 (int)out.size, (const char *)out.data);
			gnutls_free(out.data);
			bwrite(c, auth);
		} else {
			fprintf(stderr, "xbench: no SASL EXTERNAL offered on stream %d\n",
				c->index);
			B.nauthfail++;
			bclose(c);
		}
	} else if (strcmp(st->name, "proceed") == 0) {
		c->start_tls = 1;
		xs_stop(c->xs);
	} else if (strcmp(st->name, "success") == 0) {
		c->authed = 1;
		c->restart = 1;
		xs_stop(c->xs);
	} else if (strcmp(st->name, "failure") == 0 || strcmp(st->name, "error") == 0) {
		fprintf(stderr, "xbench: stream %d refused: %s\n", c->index, st->name);
		B.nauthfail++;
		bclose(c);
	} else if (strcmp(st->name, "message") == 0) {
		sink_message(st); /* a bounce coming back on our own stream */
	}
}

static void sink_stanza(struct bconn *c, const struct xs_stanza *st)
{
	char why[160];

	if (strcmp(st->name, "starttls") == 0 && !c->tls) {
		bwrite(c, "<proceed xmlns='" NS_TLS "'/>");
		c->start_tls = 1;
		xs_stop(c->xs);
	} else if (strcmp(st->name, "auth") == 0 && c->tls && !c->authed) {
		if (net_tls_check(c->conn, c->from, &(struct ident_policy){.trust = B.trust}, why,
				  sizeof(why)) != 0) {
			fprintf(stderr, "xbench: sink: client certificate for %s: %s\n", c->from,
				why);
			B.nauthfail++;
			bwrite(c, "<failure xmlns='" NS_SASL "'><not-authorized/></failure>");
			return;
		}
		bwrite(c, "<success xmlns='" NS_SASL "'/>");
		c->authed = 1;
		c->restart = 1;
		xs_stop(c->xs);
	} else if (strcmp(st->name, "message") == 0 && c->authed) {
		sink_message(st);
	} else if (!c->authed && strcmp(st->name, "message") == 0) {
		fprintf(stderr, "xbench: sink: stanza before authentication\n");
		B.nauthfail++;
		bclose(c);
	}
}

static void xs_stanza(void *ctx, const struct xs_stanza *st)
{
	struct bconn *c = ctx;

	if (c->client)
		client_stanza(c, st);
	else
		sink_stanza(c, st);
}

static void xs_close(void *ctx)
{
	struct bconn *c = ctx;

	bwrite(c, "</stream:stream>");
	bclose(c);
}

static void xs_error(void *ctx, enum xs_error err, const char *detail)
{
	struct bconn *c = ctx;

	fprintf(stderr, "xbench: %s stream: %s (%s)\n", c->client ? "sending" : "sink",
		xs_error_condition(err), detail != NULL ? detail : "");
	B.nauthfail++;
}

static const struct xs_callbacks bench_xs_cb = {
    .on_header = xs_header,
    .on_stanza = xs_stanza,
    .on_close = xs_close,
    .on_error = xs_error,
};

static void on_accept_any(uv_stream_t *server, int status, int direct)
{
	struct bconn *c;

	if (status < 0)
		return;
	c = bconn_new(0);
	if (c == NULL)
		return;
	c->direct = direct;
	c->conn = net_accept(server, &bench_net_cb, c);
	if (c->conn == NULL) {
		c->closing = 1;
		on_closed(c);
		return;
	}
	if (direct && net_start_tls_server(c->conn, B.server_creds, B.to, 1) < 0)
		bclose(c);
}

static void on_accept(uv_stream_t *server, int status)
{
	on_accept_any(server, status, 0);
}

static void on_accept_tls(uv_stream_t *server, int status)
{
	on_accept_any(server, status, 1);
}

/* ---- sending ---- */

/* Append stanza seq of stream i, scheduled at sched ns, to buf. */
static size_t make_stanza(char *buf, int i, uint64_t seq, uint64_t sched)
{
	int n = snprintf(buf, 512,
			 "<message from='%s' to='%s' type='chat' id='xb.%d.%" PRIu64 ".%" PRIu64
			 "'>%s<body>",
			 B.from, B.to, i, seq, sched,
			 B.label != NULL && seq % B.label_every == 0 ? B.label : "");
	size_t fill = B.size > (size_t)n + 17 ? B.size - (size_t)n - 17 : 1;

	memcpy(buf + n, B.pad, fill);
	memcpy(buf + (size_t)n + fill, "</body></message>", 17);
	return (size_t)n + fill + 17;
}

static char *sendbuf;
static size_t sendcap;

static void send_some(void)
{
	uint64_t t = now_ns(), period = 0;
	size_t stanza_max = B.size + 512 + (B.label ? strlen(B.label) : 0);

	if (B.phase != 1)
		return;
	if (B.rate > 0)
		period = (uint64_t)(1e9 * B.nstreams / B.rate); /* per stream */
	for (int i = 0; i < B.nstreams; i++) {
		struct bconn *c = B.streams[i];
		size_t used = 0;

		if (c == NULL || c->closing)
			continue;
		for (;;) {
			uint64_t sched;

			if (net_write_queue_size(c->conn) + used > HIGH_WATER)
				break;
			if (B.rate > 0) {
				/* stanza k of stream i is due at start + (k*N + i) / rate */
				sched = B.t_start + c->next_seq * period +
					(uint64_t)i * period / (uint64_t)B.nstreams;
				if (sched > t || sched >= B.t_end)
					break;
			} else {
				if (t >= B.t_end ||
				    B.sent_per[i] - B.expect[i] >= (uint64_t)B.window)
					break;
				sched = t;
			}
			if (used + stanza_max > sendcap) {
				sendcap = (used + stanza_max) * 2;
				sendbuf = realloc(sendbuf, sendcap);
				if (sendbuf == NULL)
					die("out of memory");
			}
			used += make_stanza(sendbuf + used, i, c->next_seq, sched);
			c->next_seq++;
			B.sent_per[i]++;
			B.sent++;
		}
		if (used > 0 && net_write(c->conn, sendbuf, used) < 0)
			bclose(c);
	}
}

static void begin_measure(void)
{
	B.measuring = 1;
	for (int w = 0; w < B.nwatch; w++) {
		B.watch_cpu0[w] = proc_cpu_ticks(B.watch[w]);
		B.watch_rss0[w] = proc_rss_kib(B.watch[w]);
	}
	getrusage(RUSAGE_SELF, &B.self0);
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
	size_t i;

	if (B.nlat == 0)
		return 0;
	i = (size_t)(p * (double)(B.nlat - 1) + 0.5);
	return B.lat[i];
}

/* The end of the measurement window: CPU used in it. */
static void end_measure(void)
{
	for (int w = 0; w < B.nwatch; w++)
		B.watch_cpu1[w] = proc_cpu_ticks(B.watch[w]);
	getrusage(RUSAGE_SELF, &B.self1);
}

static void report_traffic(void)
{
	double win = (double)(B.t_end - B.t_measure) / 1e9;
	double hz = (double)sysconf(_SC_CLK_TCK);
	struct rusage ru = B.self1;
	uint64_t lost = B.sent - B.received - B.bounced, due = 0;

	if (B.rate > 0 && B.t_end > B.t_start) {
		/* stanza k of stream i is due at start + (k*N + i) / rate:
		 * count those due before the end, as send_some() schedules */
		uint64_t period = (uint64_t)(1e9 * B.nstreams / B.rate), span = B.t_end - B.t_start;

		for (int i = 0; i < B.nstreams && period > 0; i++) {
			uint64_t off = (uint64_t)i * period / (uint64_t)B.nstreams;

			if (span > off)
				due += (span - off + period - 1) / period;
		}
	}
	qsort(B.lat, B.nlat, sizeof(*B.lat), cmp_u32);
	printf("mode=traffic streams=%d size=%zu offered=%.0f sent=%" PRIu64 " unsent=%" PRIu64
	       " received=%" PRIu64 " bounced=%" PRIu64 " lost=%" PRIu64 " out_of_order=%" PRIu64
	       " dup=%" PRIu64 " authfail=%d closed=%d",
	       B.nstreams, B.size, B.rate, B.sent, due > B.sent ? due - B.sent : 0, B.received,
	       B.bounced, lost, B.out_of_order, B.dup, B.nauthfail, B.nclosed_early);
	printf(" rate=%.0f mbit=%.1f p50_us=%u p99_us=%u p999_us=%u max_us=%u samples=%zu",
	       (double)B.recv_window / win, (double)B.bytes_window * 8 / win / 1e6, pct(0.50),
	       pct(0.99), pct(0.999), pct(1.0), B.nlat);
	for (int w = 0; w < B.nwatch; w++) {
		long c1 = B.watch_cpu1[w];
		double cpu_s =
		    c1 >= 0 && B.watch_cpu0[w] >= 0 ? (double)(c1 - B.watch_cpu0[w]) / hz : -1;

		printf(" watch%d_cpu=%.2f watch%d_us_per_stanza=%.2f", w, cpu_s / win, w,
		       B.recv_window ? cpu_s * 1e6 / (double)B.recv_window : 0);
	}
	printf(" self_cpu=%.2f\n", (tv_s(ru.ru_utime) + tv_s(ru.ru_stime) - tv_s(B.self0.ru_utime) -
				    tv_s(B.self0.ru_stime)) /
				       win);
	if (B.check && (lost != 0 || B.out_of_order != 0 || B.dup != 0 || B.bounced != 0 ||
			B.nauthfail != 0 || B.nclosed_early != 0 || B.sent == 0))
		B.exit_code = 1;
}

static void finish(void)
{
	B.phase = 3;
	uv_timer_stop(&B.tick);
	for (struct bconn *c = B.conns; c != NULL; c = c->next)
		bclose(c);
	uv_close((uv_handle_t *)&B.tick, NULL);
	uv_close((uv_handle_t *)&B.check_h, NULL);
	uv_close((uv_handle_t *)&B.sigint, NULL);
	if (B.listen_host != NULL)
		uv_close((uv_handle_t *)&B.listener, NULL);
	if (B.listen_tls_host != NULL)
		uv_close((uv_handle_t *)&B.listener_tls, NULL);
}

static void maybe_open_more(void)
{
	if (B.phase == 1 && B.nopened < B.total) {
		if (open_stream(B.nopened % B.nstreams) < 0)
			B.nauthfail++;
	}
}

/* Streams are opened a few at a time, so that 10,000 of them do not
 * overflow the listen queue of the other end. */
static void open_gradually(void)
{
	while (B.nopened < B.nstreams && B.nopened - B.nready < MAX_CONNECTING)
		if (open_stream(B.nopened) < 0)
			die("cannot open a stream");
}

static void on_tick(uv_timer_t *t)
{
	uint64_t now = now_ns();

	(void)t;
	if (B.mode != MODE_HANDSHAKE && B.phase == 0 && B.connect_host != NULL)
		open_gradually();
	switch (B.mode) {
	case MODE_TRAFFIC:
		if (B.phase == 0) {
			if (B.nready == B.nstreams) {
				B.phase = 1;
				B.t_ready = now;
				B.t_start = now;
				B.t_measure = now + (uint64_t)(B.warmup * 1e9);
				B.t_end = B.t_measure + (uint64_t)(B.seconds * 1e9);
			} else if (now - B.t_start > 60ull * 1000000000ull ||
				   B.nauthfail + B.nclosed_early > 0) {
				fprintf(stderr, "xbench: %d of %d streams ready\n", B.nready,
					B.nstreams);
				B.exit_code = 1;
				B.check = 0;
				finish();
			}
			return;
		}
		if (B.phase == 1 && !B.measuring && now >= B.t_measure)
			begin_measure();
		send_some();
		if (B.phase == 1 && now >= B.t_end) {
			B.phase = 2;
			end_measure();
		}
		/* then up to 10 s for the stragglers */
		if (B.phase == 2 &&
		    (B.received + B.bounced >= B.sent || now > B.t_end + 10000000000ull)) {
			report_traffic();
			finish();
		}
		return;
	case MODE_IDLE:
		if (B.phase == 0 && B.nready == B.nstreams) {
			B.phase = 1;
			B.t_ready = now;
		} else if (B.phase == 0 && now - B.t_start > 120ull * 1000000000ull) {
			fprintf(stderr, "xbench: %d of %d streams ready\n", B.nready, B.nstreams);
			B.exit_code = 1;
			finish();
		} else if (B.phase == 1 && now - B.t_ready >= (uint64_t)(B.hold * 1e9)) {
			printf("mode=idle streams=%d ready=%d setup_s=%.2f authfail=%d", B.nstreams,
			       B.nready, (double)(B.t_ready - B.t_start) / 1e9, B.nauthfail);
			for (int w = 0; w < B.nwatch; w++) {
				long r1 = proc_rss_kib(B.watch[w]);

				printf(" watch%d_rss_kib=%ld watch%d_rss0_kib=%ld "
				       "watch%d_kib_per_stream=%.1f",
				       w, r1, w, B.watch_rss0[w], w,
				       (double)(r1 - B.watch_rss0[w]) / B.nstreams);
			}
			printf("\n");
			if (B.nready != B.nstreams || B.nauthfail != 0)
				B.exit_code = 1;
			finish();
		}
		return;
	case MODE_HANDSHAKE:
		if (B.ndone >= B.total || now - B.t_start > 120ull * 1000000000ull) {
			double s = (double)(now - B.t_start) / 1e9;
			double hz = (double)sysconf(_SC_CLK_TCK);

			printf("mode=handshake total=%d done=%d concurrency=%d seconds=%.2f "
			       "per_s=%.0f authfail=%d",
			       B.total, B.ndone, B.nstreams, s, B.ndone / s, B.nauthfail);
			for (int w = 0; w < B.nwatch; w++) {
				long c1 = proc_cpu_ticks(B.watch[w]);
				double cpu = (double)(c1 - B.watch_cpu0[w]) / hz;

				printf(" watch%d_cpu=%.2f watch%d_per_cpu_s=%.0f", w, cpu / s, w,
				       cpu > 0 ? B.ndone / cpu : 0);
			}
			printf("\n");
			if (B.ndone < B.total || B.nauthfail != 0)
				B.exit_code = 1;
			finish();
		}
		return;
	}
}

/* After each turn of I/O: in flat-out mode arrivals open the window. */
static void on_check(uv_check_t *h)
{
	(void)h;
	if (B.mode == MODE_TRAFFIC && B.phase == 1 && B.rate <= 0)
		send_some();
}

static void on_sigint(uv_signal_t *h, int sig)
{
	(void)h;
	(void)sig;
	B.exit_code = 1;
	finish();
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

static void listen_on(uv_tcp_t *l, const char *host, int port, uv_connection_cb cb)
{
	struct sockaddr_in sa;

	if (uv_ip4_addr(host, port, &sa) < 0 || uv_tcp_init(&B.loop, l) < 0 ||
	    uv_tcp_bind(l, (const struct sockaddr *)&sa, 0) < 0 ||
	    uv_listen((uv_stream_t *)l, 4096, cb) < 0) {
		fprintf(stderr, "xbench: cannot listen on %s:%d\n", host, port);
		exit(2);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: xbench --store DIR --ca FILE [--connect H:P] [--listen H:P]\n"
		"  [--listen-tls H:P] [--direct-tls] [--from D] [--to D] [--mode "
		"traffic|idle|handshake]\n"
		"  [--streams N] [--total N] [--rate R (0: flat out)] [--window W] [--seconds S]\n"
		"  [--warmup S] [--hold S] [--size BYTES] [--label XML] [--label-every K]\n"
		"  [--watch PID]... [--check]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"connect", 1, NULL, 'c'},	   {"listen", 1, NULL, 'l'},
	    {"listen-tls", 1, NULL, 'L'},  {"direct-tls", 0, NULL, 'D'},
	    {"store", 1, NULL, 'S'},	   {"ca", 1, NULL, 'A'},
	    {"from", 1, NULL, 'f'},	   {"to", 1, NULL, 't'},
	    {"mode", 1, NULL, 'm'},	   {"streams", 1, NULL, 'n'},
	    {"total", 1, NULL, 'T'},	   {"rate", 1, NULL, 'r'},
	    {"window", 1, NULL, 'w'},	   {"seconds", 1, NULL, 's'},
	    {"warmup", 1, NULL, 'W'},	   {"hold", 1, NULL, 'H'},
	    {"size", 1, NULL, 'z'},	   {"label", 1, NULL, 'b'},
	    {"watch", 1, NULL, 'p'},	   {"check", 0, NULL, 'k'},
	    {"label-every", 1, NULL, 'e'}, {NULL, 0, NULL, 0}};
	struct store_params sp = {0};
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
		case 'n':
			B.nstreams = atoi(optarg);
			break;
		case 'T':
			B.total = atoi(optarg);
			break;
		case 'r':
			B.rate = atof(optarg);
			break;
		case 'w':
			B.window = (unsigned)atoi(optarg);
			break;
		case 's':
			B.seconds = atof(optarg);
			break;
		case 'W':
			B.warmup = atof(optarg);
			break;
		case 'H':
			B.hold = atof(optarg);
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
		default:
			usage();
		}
	}
	if (optind != argc || B.store_dir == NULL || B.ca_file == NULL || B.nstreams < 1 ||
	    (B.connect_host == NULL && B.mode != MODE_TRAFFIC) || B.size < 64 || B.label_every < 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
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
	B.pad = malloc(B.size);
	B.streams = calloc((size_t)B.nstreams, sizeof(*B.streams));
	B.expect = calloc((size_t)B.nstreams, sizeof(*B.expect));
	B.sent_per = calloc((size_t)B.nstreams, sizeof(*B.sent_per));
	if (B.pad == NULL || B.streams == NULL || B.expect == NULL || B.sent_per == NULL)
		die("out of memory");
	memset(B.pad, 'x', B.size);

	if (uv_loop_init(&B.loop) < 0)
		die("uv_loop_init");
	net_set_loop(&B.loop);
	if (B.listen_host != NULL)
		listen_on(&B.listener, B.listen_host, B.listen_port, on_accept);
	if (B.listen_tls_host != NULL)
		listen_on(&B.listener_tls, B.listen_tls_host, B.listen_tls_port, on_accept_tls);
	uv_timer_init(&B.loop, &B.tick);
	uv_timer_start(&B.tick, on_tick, 1, 1);
	uv_check_init(&B.loop, &B.check_h);
	uv_check_start(&B.check_h, on_check);
	uv_signal_init(&B.loop, &B.sigint);
	uv_signal_start(&B.sigint, on_sigint, SIGINT);
	B.t_start = now_ns();
	if (B.mode == MODE_IDLE)
		begin_measure(); /* RSS before the streams */
	if (B.connect_host != NULL) {
		if (B.mode == MODE_HANDSHAKE) {
			begin_measure();
			B.phase = 1;
			for (int i = 0; i < B.nstreams && i < B.total; i++)
				maybe_open_more();
		} else {
			open_gradually();
		}
	} else {
		/* a sink on its own: run until interrupted */
		uv_timer_stop(&B.tick);
		B.phase = 1;
		B.t_measure = 0;
		B.t_end = UINT64_MAX;
	}
	uv_run(&B.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&B.loop) != 0)
		fprintf(stderr, "xbench: loop not empty at exit\n");
	tls_creds_free(B.client_creds);
	tls_creds_free(B.server_creds);
	store_unref(B.store);
	gnutls_x509_trust_list_deinit(B.trust, 1);
	free(B.pad);
	free(B.streams);
	free(B.expect);
	free(B.sent_per);
	free(B.lat);
	free(sendbuf);
	return B.exit_code;
}
