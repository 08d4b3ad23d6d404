/* net: TCP connections on libuv with optional TLS (tls.c).
 *
 * Every struct net_conn embeds a uv_tcp_t and a uv_timer_t. It keeps a
 * reference count: +1 for each open handle, +1 for each in-flight request
 * (connect, getaddrinfo, write, shutdown). Memory is released only when the
 * count reaches zero, from a libuv callback, after the owner has been told
 * on_closed. Closing is a state: net_close() may be called any number of
 * times, from anywhere, including from inside our own callbacks.
 *
 * Writes are batched: while one of our libuv callbacks runs (a read, a
 * timer, ...), net_write() only appends the plaintext to the connection's
 * pending buffer. What reads produced is flushed after the loop's poll
 * phase (a uv_check handle, open while connections exist), so the stanzas
 * of every stream read in one turn of the loop leave in one TLS pass and
 * one uv_write per outbound connection, instead of a record, an
 * allocation and a system call each; what any other callback wrote is
 * flushed when it returns. Outside our callbacks a write goes out at
 * once. Bytes still pending are flushed before TLS starts and before
 * close. */
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <uv.h>

#include "log.h"
#include "tls.h"

/* Plaintext gathered per connection within one callback before it is
 * encrypted and written (4 TLS records). */
#define NET_PEND_MAX (64 * 1024)

static uv_loop_t *net_loop;

struct net_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	const struct net_callbacks *cb; /* borrowed */
	void *ctx;			/* borrowed */
	struct tls_session *tls;	/* owned or NULL */
	int refs;
	int closing; /* net_close called */
	int tcp_open, timer_open;
	int told_closed;
	int stop_reading; /* owner asked to drop the rest of this read */
	int paused;	  /* net_pause: not reading */
	int drain_watch;  /* on_drain wanted when the write queue is <= drain_at */
	size_t drain_at;
	int port;
	unsigned connect_timeout_ms;
	char host[256];
	char peer[64];
	size_t queued;		  /* bytes in in-flight uv_write requests */
	unsigned dead_timeout_ms; /* TCP_USER_TIMEOUT set, 0 = kernel default */
	char *pend;		  /* owned or NULL: plaintext waiting for the flush */
	size_t pend_len, pend_cap;
	int listed;			 /* on the flush list (holds a reference) */
	struct net_conn *dirty_next;	 /* borrowed: the next on the flush list */
	struct net_write_req *cipher_wr; /* owned or NULL: ciphertext being gathered */
};

struct net_write_req {
	uv_write_t req;
	struct net_conn *c; /* ref */
	size_t len, cap;
	char data[]; /* owned copy */
};

static int net_depth;		   /* > 0 while one of our libuv callbacks runs */
static uint64_t net_clock;	   /* net_now_ms() read when the outermost callback began */
static struct net_conn *net_dirty; /* connections with pending plaintext */
static uv_check_t *net_check;	   /* owned or NULL: the flush after each poll phase */
static size_t net_nconns;	   /* connections allocated */

void net_set_loop(void *uv_loop)
{
	net_loop = uv_loop;
}

static void on_check_closed(uv_handle_t *h)
{
	free(h);
}

static void net_unref(struct net_conn *c)
{
	if (--c->refs > 0)
		return;
	tls_free(c->tls);
	free(c->pend);
	free(c);
	/* the flush handle must not outlive the connections (uv_loop_close) */
	if (--net_nconns == 0 && net_check != NULL) {
		uv_close((uv_handle_t *)net_check, on_check_closed);
		net_check = NULL;
	}
}

static int net_flush(struct net_conn *c);
static int net_flush_keep(struct net_conn *c, int keep);

/* Around every callback from libuv: the outermost one flushes, unless
 * it is a read (defer) and the check handle will do it after the poll. */
static uint64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void net_enter(void)
{
	if (net_depth++ == 0)
		net_clock = clock_ms();
}

static void net_leave_defer(int defer)
{
	struct net_conn *c;

	if (net_depth == 1 && (!defer || net_check == NULL)) {
		while ((c = net_dirty) != NULL) {
			net_dirty = c->dirty_next;
			c->dirty_next = NULL;
			c->listed = 0;
			if (net_flush(c) < 0 && !c->closing) {
				c->cb->on_error(c->ctx, -EPIPE);
				net_close(c);
			}
			net_unref(c);
		}
	}
	net_depth--;
}

static void net_leave(void)
{
	net_leave_defer(0);
}

static void on_check(uv_check_t *h)
{
	(void)h;
	net_enter();
	net_leave();
}

static void on_handle_closed(uv_handle_t *h)
{
	struct net_conn *c = h->data;

	net_enter();
	if (!c->tcp_open && !c->timer_open && !c->told_closed) {
		c->told_closed = 1;
		c->cb->on_closed(c->ctx);
	}
	net_unref(c);
	net_leave();
}

static void net_close_handles(struct net_conn *c)
{
	if (c->tcp_open) {
		c->tcp_open = 0;
		uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
	}
	if (c->timer_open) {
		c->timer_open = 0;
		uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	}
}

static void on_timer(uv_timer_t *t);

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct net_conn *c = req->data;

	free(req);
	net_enter();
	net_close_handles(c);
	net_unref(c);
	net_leave();
}

void net_close(struct net_conn *c)
{
	uv_shutdown_t *req;

	if (c == NULL || c->closing)
		return;
	(void)net_flush(c); /* what is pending goes before close_notify */
	c->closing = 1;
	c->stop_reading = 1;
	if (c->tls != NULL)
		tls_bye(c->tls);
	/* A peer that never reads would hold the shutdown forever: the timer
	 * forces the handles closed (on_timer sees closing). */
	if (c->timer_open)
		uv_timer_start(&c->timer, on_timer, 5000, 0);
	if (c->tcp_open && uv_is_writable((uv_stream_t *)&c->tcp)) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		req = malloc(sizeof(*req));
		if (req != NULL) {
			req->data = c;
			c->refs++;
			if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) == 0)
				return;
			c->refs--;
			free(req);
		}
	}
	net_close_handles(c);
}

static void net_fail(struct net_conn *c, int status)
{
	if (c->closing)
		return;
	c->cb->on_error(c->ctx, status);
	net_close(c);
}

static void on_write(uv_write_t *req, int status)
{
	struct net_write_req *w = (struct net_write_req *)req;
	struct net_conn *c = w->c;

	net_enter();
	c->queued -= w->len;
	free(w);
	if (status < 0 && status != UV_ECANCELED)
		net_fail(c, status);
	else if (c->drain_watch && !c->closing && c->queued + c->pend_len <= c->drain_at) {
		c->drain_watch = 0;
		if (c->cb->on_drain != NULL)
			c->cb->on_drain(c->ctx);
	}
	net_unref(c);
	net_leave();
}

/* Hand a filled request to libuv; it is freed in on_write (or here). */
static int net_submit(struct net_conn *c, struct net_write_req *w)
{
	uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
	int rc;

	w->c = c;
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (rc < 0) {
		free(w);
		return rc;
	}
	c->refs++;
	c->queued += w->len;
	return 0;
}

static int net_write_raw(struct net_conn *c, const char *data, size_t len)
{
	struct net_write_req *w;

	if (!c->tcp_open)
		return -EPIPE;
	w = malloc(sizeof(*w) + len);
	if (w == NULL)
		return -ENOMEM;
	memcpy(w->data, data, len);
	w->len = w->cap = len;
	return net_submit(c, w);
}

/* Records of a flush go into one request (cipher_wr) while they fit. */
static int tls_on_cipher(void *ctx, const char *data, size_t len)
{
	struct net_conn *c = ctx;
	struct net_write_req *w = c->cipher_wr;
	int rc;

	if (w != NULL && w->cap - w->len >= len) {
		memcpy(w->data + w->len, data, len);
		w->len += len;
		return 0;
	}
	if (w != NULL && w->len > 0) { /* keep the order: what was gathered first */
		c->cipher_wr = NULL;
		rc = net_submit(c, w);
		return rc < 0 ? rc : net_write_raw(c, data, len);
	}
	return net_write_raw(c, data, len);
}

/* Send the pending plaintext: through TLS into one gathered request, or
 * as it is. The buffer is released, so idle connections hold none.
 * Returns 0 or -errno (the caller fails the connection). */
static int net_flush(struct net_conn *c)
{
	return net_flush_keep(c, 0);
}

/* keep: the caller will gather more at once, keep the buffer. */
static int net_flush_keep(struct net_conn *c, int keep)
{
	struct net_write_req *w;
	size_t len = c->pend_len;
	int rc;

	if (len == 0)
		return 0;
	c->pend_len = 0;
	if (c->tls == NULL) {
		rc = net_write_raw(c, c->pend, len);
	} else {
		/* TLS 1.3 adds 22 bytes per record of up to 16 KiB (1.2: 29) */
		size_t cap = len + (len / 16384 + 1) * 64;

		w = malloc(sizeof(*w) + cap);
		if (w == NULL) {
			rc = -ENOMEM;
		} else {
			w->len = 0;
			w->cap = cap;
			c->cipher_wr = w;
			rc = tls_write(c->tls, c->pend, len);
			w = c->cipher_wr;
			c->cipher_wr = NULL;
			if (w != NULL && w->len > 0 && rc == 0)
				rc = net_submit(c, w);
			else
				free(w);
		}
	}
	if (!keep) {
		free(c->pend);
		c->pend = NULL;
		c->pend_cap = 0;
	}
	return rc;
}

static void tls_on_plain(void *ctx, const char *data, size_t len)
{
	struct net_conn *c = ctx;

	if (c->closing || c->stop_reading) {
		tls_stop(c->tls);
		return;
	}
	c->cb->on_data(c->ctx, data, len);
	if (c->closing || c->stop_reading)
		tls_stop(c->tls);
}

static void tls_on_handshake(void *ctx, int status)
{
	struct net_conn *c = ctx;

	if (!c->closing)
		c->cb->on_tls(c->ctx, status);
}

static const struct tls_callbacks net_tls_cb = {
    .on_cipher = tls_on_cipher,
    .on_plain = tls_on_plain,
    .on_handshake = tls_on_handshake,
};

int net_write(struct net_conn *c, const char *data, size_t len)
{
	if (c->closing)
		return -EPIPE;
	if (net_depth > 0 && c->tcp_open) {
		/* A callback that reads a lot (every stream's reads of one
		 * loop turn go to the same next hop) gathers at most
		 * NET_PEND_MAX before it encrypts and writes: the first
		 * stanzas leave earlier, and the buffer stays small enough
		 * to be reused instead of being mapped and faulted in anew. */
		if (c->pend_len > 0 && c->pend_len + len > NET_PEND_MAX && net_flush_keep(c, 1) < 0)
			return -EPIPE;
		if (c->pend_len + len > c->pend_cap) {
			size_t cap = c->pend_cap ? c->pend_cap : 4096;
			char *p;

			while (cap < c->pend_len + len)
				cap *= 2;
			p = realloc(c->pend, cap);
			if (p == NULL)
				return -ENOMEM;
			c->pend = p;
			c->pend_cap = cap;
		}
		memcpy(c->pend + c->pend_len, data, len);
		c->pend_len += len;
		if (!c->listed) {
			c->listed = 1;
			c->refs++; /* released by net_leave */
			c->dirty_next = net_dirty;
			net_dirty = c;
		}
		return 0;
	}
	if (net_flush(c) < 0)
		return -EPIPE;
	if (c->tls != NULL)
		return tls_write(c->tls, data, len);
	return net_write_raw(c, data, len);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[65536]; /* one read at a time on one thread */

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct net_conn *c = s->data;
	int rc;

	if (n == 0 || c->closing)
		return;
	net_enter();
	if (n < 0) {
		net_fail(c, n == UV_EOF ? -ECONNRESET : (int)n);
		net_leave();
		return;
	}
	c->stop_reading = 0;
	c->refs++; /* the owner may close us from inside */
	if (c->tls != NULL) {
		rc = tls_feed(c->tls, buf->base, (size_t)n);
		if (rc < 0)
			net_fail(c, rc);
	} else {
		c->cb->on_data(c->ctx, buf->base, (size_t)n);
	}
	net_unref(c);
	net_leave_defer(1);
}

static void on_timer(uv_timer_t *t)
{
	struct net_conn *c = t->data;

	net_enter();
	if (c->closing)
		net_close_handles(c);
	else
		c->cb->on_timeout(c->ctx);
	net_leave();
}

static struct net_conn *net_new(const struct net_callbacks *cb, void *ctx)
{
	struct net_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (net_nconns++ == 0 && net_check == NULL) {
		net_check = malloc(sizeof(*net_check));
		if (net_check != NULL) { /* else every callback flushes itself */
			uv_check_init(net_loop, net_check);
			uv_check_start(net_check, on_check);
			uv_unref((uv_handle_t *)net_check);
		}
	}
	c->cb = cb;
	c->ctx = ctx;
	uv_tcp_init(net_loop, &c->tcp);
	c->tcp.data = c;
	c->tcp_open = 1;
	uv_timer_init(net_loop, &c->timer);
	c->timer.data = c;
	c->timer_open = 1;
	c->refs = 2; /* two handles */
	return c;
}

static void net_fill_peer(struct net_conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char addr[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			uv_ip4_name(in, addr, sizeof(addr));
			port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			uv_ip6_name(in6, addr, sizeof(addr));
			port = ntohs(in6->sin6_port);
		}
	}
	snprintf(c->peer, sizeof(c->peer), "%s:%d", addr, port);
}

struct net_conn *net_accept(void *uv_server, const struct net_callbacks *cb, void *ctx)
{
	struct net_conn *c = net_new(cb, ctx);

	if (c == NULL)
		return NULL;
	if (uv_accept(uv_server, (uv_stream_t *)&c->tcp) < 0) {
		c->told_closed = 1; /* the owner never saw it */
		net_close(c);
		return NULL;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	net_fill_peer(c);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	return c;
}

static void on_connect(uv_connect_t *req, int status)
{
	struct net_conn *c = req->data;

	free(req);
	net_enter();
	if (!c->closing) {
		if (c->timer_open)
			uv_timer_stop(&c->timer);
		if (status < 0) {
			c->cb->on_connected(c->ctx, status);
			net_close(c);
		} else {
			uv_tcp_nodelay(&c->tcp, 1);
			net_fill_peer(c);
			uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
			c->cb->on_connected(c->ctx, 0);
		}
	}
	net_unref(c);
	net_leave();
}

static void on_connect_timeout(uv_timer_t *t)
{
	struct net_conn *c = t->data;

	if (c->closing)
		return;
	net_enter();
	c->cb->on_connected(c->ctx, -ETIMEDOUT);
	net_close(c);
	net_leave();
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct net_conn *c = req->data;
	uv_connect_t *creq;
	int rc = status;

	free(req);
	net_enter();
	if (c->closing)
		goto out;
	if (status == 0) {
		creq = malloc(sizeof(*creq));
		rc = -ENOMEM;
		if (creq != NULL) {
			creq->data = c;
			rc = uv_tcp_connect(creq, &c->tcp, res->ai_addr, on_connect);
			if (rc == 0)
				c->refs++;
			else
				free(creq);
		}
	}
	if (rc < 0) {
		c->cb->on_connected(c->ctx, rc);
		net_close(c);
	}
out:
	uv_freeaddrinfo(res);
	net_unref(c);
	net_leave();
}

struct net_conn *net_connect(const char *host, int port, unsigned timeout_ms,
			     const struct net_callbacks *cb, void *ctx)
{
	struct net_conn *c = net_new(cb, ctx);
	uv_getaddrinfo_t *req;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	char portstr[16];

	if (c == NULL)
		return NULL;
	snprintf(c->host, sizeof(c->host), "%s", host);
	snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
	c->port = port;
	snprintf(portstr, sizeof(portstr), "%d", port);
	req = malloc(sizeof(*req));
	if (req == NULL)
		goto fail;
	req->data = c;
	if (uv_getaddrinfo(net_loop, req, on_resolved, host, portstr, &hints) < 0) {
		free(req);
		goto fail;
	}
	c->refs++;
	uv_timer_start(&c->timer, on_connect_timeout, timeout_ms, 0);
	return c;
fail:
	c->told_closed = 1;
	net_close(c);
	return NULL;
}

static int net_start_tls(struct net_conn *c, struct tls_session *t)
{
	if (t == NULL)
		return -ENOMEM;
	/* <proceed/> and anything before it: in the clear */
	if (net_flush(c) < 0) {
		tls_free(t);
		return -EPIPE;
	}
	c->tls = t;
	return 0;
}

int net_start_tls_server(struct net_conn *c, struct tls_creds *creds, const char *name, int direct)
{
	int rc = net_start_tls(c, tls_server_new(creds, name, &net_tls_cb, c));

	return rc < 0 || !direct ? rc : tls_set_alpn(c->tls);
}

int net_tls_has_cert(struct net_conn *c)
{
	return c->tls != NULL && tls_peer_has_cert(c->tls);
}

const char *net_tls_presented(struct net_conn *c)
{
	return c->tls == NULL ? NULL : tls_presented(c->tls);
}

int net_start_tls_client(struct net_conn *c, struct tls_creds *creds, const char *sni,
			 const char *name, int direct)
{
	int rc = net_start_tls(c, tls_client_new(creds, sni, name, &net_tls_cb, c));

	if (rc == 0 && direct)
		rc = tls_set_alpn(c->tls);
	return rc < 0 ? rc : tls_start(c->tls);
}

int net_tls_active(const struct net_conn *c)
{
	return c->tls != NULL;
}

int net_tls_check(struct net_conn *c, const char *domain, const struct ident_policy *p, char *why,
		  size_t whylen)
{
	if (c->tls == NULL) {
		snprintf(why, whylen, "no TLS");
		return 1; /* IDENT_NO_CERT */
	}
	return tls_peer_check(c->tls, domain, p, why, whylen);
}

const char *net_tls_failure(struct net_conn *c)
{
	const char *f = c->tls != NULL ? tls_failure(c->tls) : NULL;

	return f != NULL ? f : "other";
}

const char *net_tls_describe(struct net_conn *c)
{
	return c->tls == NULL ? "none" : tls_describe(c->tls);
}

void net_set_timer(struct net_conn *c, unsigned ms)
{
	if (!c->timer_open || c->closing)
		return;
	if (ms == 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timer, ms, 0);
}

void net_stop_reading(struct net_conn *c)
{
	c->stop_reading = 1;
}

void net_pause(struct net_conn *c, int paused)
{
	if (c->paused == !!paused)
		return;
	c->paused = !!paused;
	if (c->closing || !c->tcp_open)
		return;
	if (c->paused)
		uv_read_stop((uv_stream_t *)&c->tcp);
	else
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

void net_want_drain(struct net_conn *c, size_t bytes)
{
	/* The caller asks when the queue is above bytes, so a write is in
	 * flight or pending (flushed after this turn of the loop) and its
	 * on_write will look; a failed write closes the connection instead. */
	c->drain_at = bytes;
	c->drain_watch = 1;
}

const char *net_peer(const struct net_conn *c)
{
	return c->peer;
}

size_t net_write_queue_size(const struct net_conn *c)
{
	return c->queued + c->pend_len;
}

/* Inside one of our callbacks, the time it began: the upper layers ask
 * for the time several times per stanza (idle timers, back-off, log
 * limits), and a millisecond clock does not move within one read. */
uint64_t net_now_ms(void)
{
	return net_depth > 0 ? net_clock : clock_ms();
}

void net_set_dead_timeout(struct net_conn *c, unsigned ms)
{
	uv_os_fd_t fd;

	if (c->closing || !c->tcp_open || c->dead_timeout_ms == ms ||
	    uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
		return;
	if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) == 0)
		c->dead_timeout_ms = ms;
}
