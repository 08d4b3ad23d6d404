/* net: one TCP connection on the libuv loop, optionally wrapped in TLS.
 * The only module besides main and the listener that knows libuv. Upper
 * layers see plaintext bytes and a few events through struct
 * net_callbacks.
 *
 * Lifetime: net_close() is idempotent and asynchronous; on_closed is the
 * last callback, after which the owner may free its context. The struct
 * net_conn itself is freed by this module after on_closed returns. */
#ifndef XT_NET_H
#define XT_NET_H

#include <stddef.h>
#include <stdint.h>

struct net_conn;
struct tls_creds;

struct net_callbacks {
	/* outbound only (may be NULL for net_accept): TCP connected (0) or failed (-errno) */
	void (*on_connected)(void *ctx, int status);
	/* plaintext received; borrowed for the call */
	void (*on_data)(void *ctx, const char *data, size_t len);
	/* TLS handshake finished (0) or failed (-EPROTO) */
	void (*on_tls)(void *ctx, int status);
	/* the timer set with net_set_timer fired */
	void (*on_timeout)(void *ctx);
	/* peer closed, or read/write error (-errno, -ECONNRESET for EOF) */
	void (*on_error)(void *ctx, int status);
	/* last callback: the connection is gone */
	void (*on_closed)(void *ctx);
	/* may be NULL: the write queue fell to the size net_want_drain asked for */
	void (*on_drain)(void *ctx);
};

/* Set by main: the loop every connection runs on (a uv_loop_t *). */
void net_set_loop(void *uv_loop);

/* Accept a pending connection on a listening uv_stream_t. */
struct net_conn *net_accept(void *uv_server, const struct net_callbacks *cb, void *ctx);
/* Start connecting; on_connected reports the result. host is a numeric
 * address or a name (resolved with getaddrinfo). */
struct net_conn *net_connect(const char *host, int port, unsigned timeout_ms,
			     const struct net_callbacks *cb, void *ctx);

/* Queue bytes (copied) for sending, through TLS when active. 0 or -errno. */
int net_write(struct net_conn *c, const char *data, size_t len);
/* Switch to TLS for everything read and written from now on. */
/* name: the stream 'to' (server) or 'from' (client), which picks the
 * certificate this side presents. */
/* direct: XEP-0368 direct TLS (ALPN "xmpp-server"). */
int net_start_tls_server(struct net_conn *c, struct tls_creds *creds, const char *name, int direct);
int net_start_tls_client(struct net_conn *c, struct tls_creds *creds, const char *sni,
			 const char *name, int direct);
/* 1 if the peer presented a certificate. */
int net_tls_has_cert(struct net_conn *c);
/* Which certificate this side presented, or NULL. */
const char *net_tls_presented(struct net_conn *c);
int net_tls_active(const struct net_conn *c);
struct ident_policy;
/* tls_peer_check on this connection's session; IDENT_NO_CERT without TLS. */
int net_tls_check(struct net_conn *c, const char *domain, const struct ident_policy *p, char *why,
		  size_t whylen);
const char *net_tls_describe(struct net_conn *c);
/* Why the TLS handshake failed (tls_failure), "other" if it did not say. */
const char *net_tls_failure(struct net_conn *c);
/* Give up on the connection when written bytes stay unacknowledged for
 * ms (TCP_USER_TIMEOUT): a dead link is then reported through on_error
 * instead of lingering. 0 restores the kernel default. */
void net_set_dead_timeout(struct net_conn *c, unsigned ms);
/* One timer per connection; 0 cancels. */
void net_set_timer(struct net_conn *c, unsigned ms);
/* Stop delivering data read in the current callback (the owner is closing). */
void net_stop_reading(struct net_conn *c);
/* Backpressure: paused (1), no more is read from the socket (what the
 * current read holds is still delivered) until resumed (0). */
void net_pause(struct net_conn *c, int paused);
/* Call on_drain once, when net_write_queue_size() is at most bytes (at
 * once, from the loop, if it is already). A later call replaces it. */
void net_want_drain(struct net_conn *c, size_t bytes);
/* Flush queued writes, send TLS close_notify, close. Idempotent. */
void net_close(struct net_conn *c);
/* "127.0.0.2:5269" */
const char *net_peer(const struct net_conn *c);
/* Bytes queued in the kernel-bound write queue (for backpressure). */
size_t net_write_queue_size(const struct net_conn *c);
/* Milliseconds on a monotonic clock. Upper layers take the time from here,
 * so a fake network (test/fakenet) can also fake the clock. */
uint64_t net_now_ms(void);

#endif
