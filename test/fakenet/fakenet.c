/* fakenet: net.h without the network, for scenario tests and the stream
 * fuzzer. See fakenet.h. One global table of connections in creation
 * order; closed connections stay in it (for their written bytes) until
 * fakenet_reset. */
#include "fakenet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "net.h"

struct net_conn {
	const struct net_callbacks *cb; /* borrowed */
	void *ctx;			/* borrowed */
	int outbound;
	int connect_pending;
	int tls_pending; /* 1 server, 2 client */
	int tls;
	int closing, told_closed;
	int stop_reading;
	int has_cert, check_result;
	unsigned timer_ms;
	uint64_t timer_due;
	size_t queued;
	int paused;	 /* net_pause */
	int drain_watch; /* net_want_drain: on_drain when queued <= drain_at */
	size_t drain_at;
	int port;
	char host[256];
	char peer[64];
	char *out; /* owned: written, not yet taken */
	size_t outlen, outcap;
	char *all; /* owned: everything written */
	size_t alllen, allcap;
};

static struct {
	struct net_conn **conns; /* owned array of owned connections */
	size_t n, cap;
	uint64_t now;
	char accept_peer[64];
	int fail_write;
	unsigned next_port;
} f = {.accept_peer = "192.0.2.1:40000"};

static void conn_free(struct net_conn *c)
{
	free(c->out);
	free(c->all);
	free(c);
}

void fakenet_reset(void)
{
	for (size_t i = 0; i < f.n; i++)
		conn_free(f.conns[i]);
	free(f.conns);
	f.conns = NULL;
	f.n = f.cap = 0;
	f.now = 0;
	f.fail_write = 0;
	f.next_port = 0;
}

static struct net_conn *conn_new(const struct net_callbacks *cb, void *ctx)
{
	struct net_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (f.n == f.cap) {
		size_t cap = f.cap ? 2 * f.cap : 16;
		struct net_conn **a = realloc(f.conns, cap * sizeof(*a));

		if (a == NULL) {
			free(c);
			return NULL;
		}
		f.conns = a;
		f.cap = cap;
	}
	c->cb = cb;
	c->ctx = ctx;
	c->check_result = IDENT_NO_CERT;
	f.conns[f.n++] = c;
	return c;
}

void fakenet_set_accept_peer(const char *peer)
{
	snprintf(f.accept_peer, sizeof(f.accept_peer), "%s", peer);
}

struct net_conn *fakenet_last(void)
{
	return f.n ? f.conns[f.n - 1] : NULL;
}

size_t fakenet_count(void)
{
	return f.n;
}

struct net_conn *fakenet_nth(size_t i)
{
	return i < f.n ? f.conns[i] : NULL;
}

int fakenet_alive(const struct net_conn *c)
{
	for (size_t i = 0; i < f.n; i++)
		if (f.conns[i] == c)
			return !c->told_closed;
	return 0;
}

size_t fakenet_open_count(void)
{
	size_t n = 0;

	for (size_t i = 0; i < f.n; i++)
		n += !f.conns[i]->told_closed;
	return n;
}

int fakenet_is_outbound(const struct net_conn *c)
{
	return c->outbound;
}

const char *fakenet_host(const struct net_conn *c)
{
	return c->host;
}

int fakenet_port(const struct net_conn *c)
{
	return c->port;
}

int fakenet_connect_pending(const struct net_conn *c)
{
	return c->connect_pending;
}

int fakenet_tls_pending(const struct net_conn *c)
{
	return c->tls_pending;
}

int fakenet_tls_active(const struct net_conn *c)
{
	return c->tls;
}

int fakenet_closing(const struct net_conn *c)
{
	return c->closing;
}

unsigned fakenet_timer(const struct net_conn *c)
{
	return c->timer_ms;
}

const char *fakenet_written(const struct net_conn *c, size_t *len)
{
	*len = c->outlen;
	return c->out != NULL ? c->out : "";
}

void fakenet_take(struct net_conn *c, size_t n)
{
	if (n > c->outlen)
		n = c->outlen;
	memmove(c->out, c->out + n, c->outlen - n);
	c->outlen -= n;
	if (c->out != NULL)
		c->out[c->outlen] = '\0';
}

const char *fakenet_all_written(const struct net_conn *c, size_t *len)
{
	*len = c->alllen;
	return c->all != NULL ? c->all : "";
}

static int append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t ncap = *cap ? *cap : 256;
		char *b;

		while (ncap < *len + n + 1)
			ncap *= 2;
		b = realloc(*buf, ncap);
		if (b == NULL)
			return -ENOMEM;
		*buf = b;
		*cap = ncap;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

void fakenet_pump(void)
{
	int again = 1;

	/* on_closed may close or open other connections: repeat until quiet */
	while (again) {
		again = 0;
		for (size_t i = 0; i < f.n; i++) {
			struct net_conn *c = f.conns[i];

			if (!c->closing || c->told_closed)
				continue;
			c->told_closed = 1;
			c->cb->on_closed(c->ctx);
			again = 1;
		}
	}
}

static int usable(const struct net_conn *c)
{
	return c != NULL && fakenet_alive(c) && !c->closing;
}

void fakenet_data(struct net_conn *c, const char *data, size_t len)
{
	if (usable(c) && !c->connect_pending && !c->tls_pending) {
		c->stop_reading = 0;
		c->cb->on_data(c->ctx, data, len);
	}
	fakenet_pump();
}

void fakenet_connected(struct net_conn *c, int status)
{
	if (usable(c) && c->connect_pending) {
		c->connect_pending = 0;
		c->cb->on_connected(c->ctx, status);
		if (status < 0) /* like net.c: a failed connect is closed */
			net_close(c);
	}
	fakenet_pump();
}

void fakenet_tls_done(struct net_conn *c, int status)
{
	if (usable(c) && c->tls_pending) {
		c->tls_pending = 0;
		c->tls = status == 0;
		c->cb->on_tls(c->ctx, status);
	}
	fakenet_pump();
}

void fakenet_error(struct net_conn *c, int status)
{
	if (usable(c)) {
		c->cb->on_error(c->ctx, status);
		net_close(c); /* like net.c: the connection is gone */
	}
	fakenet_pump();
}

void fakenet_timeout(struct net_conn *c)
{
	if (usable(c)) {
		c->timer_ms = 0;
		c->cb->on_timeout(c->ctx);
	}
	fakenet_pump();
}

void fakenet_advance(uint64_t ms)
{
	f.now += ms;
	for (size_t i = 0; i < f.n; i++) {
		struct net_conn *c = f.conns[i];

		if (!c->closing && c->timer_ms != 0 && c->timer_due <= f.now) {
			fakenet_timeout(c); /* may change the table: start over */
			i = (size_t)-1;
		}
	}
	fakenet_pump();
}

uint64_t fakenet_now(void)
{
	return f.now;
}

void fakenet_set_peer_cert(struct net_conn *c, int has_cert, int check_result)
{
	c->has_cert = has_cert;
	c->check_result = check_result;
}

void fakenet_fail_next_write(int err)
{
	f.fail_write = err;
}

void fakenet_set_queued(struct net_conn *c, size_t bytes)
{
	c->queued = bytes;
	if (c->drain_watch && usable(c) && bytes <= c->drain_at) {
		c->drain_watch = 0;
		if (c->cb->on_drain != NULL)
			c->cb->on_drain(c->ctx);
	}
	fakenet_pump();
}

int fakenet_paused(const struct net_conn *c)
{
	return c->paused;
}

/* ---- net.h */

void net_set_loop(void *uv_loop)
{
	(void)uv_loop;
}

struct net_conn *net_accept(void *uv_server, const struct net_callbacks *cb, void *ctx)
{
	struct net_conn *c = conn_new(cb, ctx);

	(void)uv_server;
	if (c != NULL)
		snprintf(c->peer, sizeof(c->peer), "%s", f.accept_peer);
	return c;
}

struct net_conn *net_connect(const char *host, int port, unsigned timeout_ms,
			     const struct net_callbacks *cb, void *ctx)
{
	struct net_conn *c = conn_new(cb, ctx);

	(void)timeout_ms;
	if (c == NULL)
		return NULL;
	c->outbound = 1;
	c->connect_pending = 1;
	c->port = port;
	snprintf(c->host, sizeof(c->host), "%s", host);
	snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
	return c;
}

int net_write(struct net_conn *c, const char *data, size_t len)
{
	int err = f.fail_write;

	if (c->closing)
		return -EPIPE;
	if (err != 0) {
		f.fail_write = 0;
		return err;
	}
	if (append(&c->out, &c->outlen, &c->outcap, data, len) < 0 ||
	    append(&c->all, &c->alllen, &c->allcap, data, len) < 0)
		return -ENOMEM;
	return 0;
}

int net_start_tls_server(struct net_conn *c, struct tls_creds *creds, const char *name, int direct)
{
	(void)creds;
	(void)name;
	(void)direct;
	if (c->closing || c->tls || c->tls_pending)
		return -EINVAL;
	c->tls_pending = 1;
	return 0;
}

int net_start_tls_client(struct net_conn *c, struct tls_creds *creds, const char *sni,
			 const char *name, int direct)
{
	(void)creds;
	(void)sni;
	(void)name;
	(void)direct;
	if (c->closing || c->tls || c->tls_pending)
		return -EINVAL;
	c->tls_pending = 2;
	return 0;
}

int net_tls_has_cert(struct net_conn *c)
{
	return c->tls && c->has_cert;
}

const char *net_tls_presented(struct net_conn *c)
{
	return c->tls ? "fake.pem" : NULL;
}

int net_tls_active(const struct net_conn *c)
{
	return c->tls;
}

int net_tls_check(struct net_conn *c, const char *domain, const struct ident_policy *p, char *why,
		  size_t whylen)
{
	(void)domain;
	(void)p;
	if (!c->tls) {
		snprintf(why, whylen, "no TLS");
		return IDENT_NO_CERT;
	}
	snprintf(why, whylen, "fakenet result %d", c->check_result);
	return c->check_result;
}

const char *net_tls_failure(struct net_conn *c)
{
	(void)c;
	return "other"; /* the script says only that it failed */
}

const char *net_tls_describe(struct net_conn *c)
{
	return c->tls ? "FAKE-TLS" : "none";
}

void net_set_dead_timeout(struct net_conn *c, unsigned ms)
{
	(void)c;
	(void)ms;
}

void net_set_timer(struct net_conn *c, unsigned ms)
{
	c->timer_ms = ms;
	c->timer_due = f.now + ms;
}

void net_stop_reading(struct net_conn *c)
{
	c->stop_reading = 1;
}

/* The fake delivers what fakenet_data is given even while paused (like the
 * rest of a read); tests look at fakenet_paused. */
void net_pause(struct net_conn *c, int paused)
{
	c->paused = !!paused;
}

void net_want_drain(struct net_conn *c, size_t bytes)
{
	c->drain_at = bytes;
	c->drain_watch = 1;
}

void net_close(struct net_conn *c)
{
	if (c != NULL)
		c->closing = 1;
}

const char *net_peer(const struct net_conn *c)
{
	return c->peer;
}

size_t net_write_queue_size(const struct net_conn *c)
{
	return c->queued;
}

uint64_t net_now_ms(void)
{
	return f.now;
}
