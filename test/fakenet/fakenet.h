/* fakenet: a scripted stand-in for relay/net.c, linked instead of it into
 * scenario tests and the stream fuzzer (the "fake network seam"). It
 * implements every function of net.h without sockets, TLS or libuv: bytes
 * the relay writes are recorded per connection, and the test decides when
 * data arrives, when a connect or TLS handshake completes, when a timer
 * fires and what the clock says.
 *
 * Like the real module, no callback runs inside a call the relay makes
 * into net.h: net_close() only marks the connection, and its on_closed is
 * delivered by fakenet_pump(). Every fakenet_* call that delivers an event
 * runs the pump afterwards.
 *
 * Ownership: connections belong to this module; a struct net_conn pointer
 * stays valid (events to a closed one are ignored) until fakenet_reset.
 * Byte buffers returned are borrowed until the next call. */
#ifndef XT_FAKENET_H
#define XT_FAKENET_H

#include <stddef.h>
#include <stdint.h>

struct net_conn;

/* Forget every connection (without callbacks) and set the clock to 0. */
void fakenet_reset(void);

/* The address net_peer() reports for the next accepted connection. */
void fakenet_set_accept_peer(const char *peer);
/* The connection created most recently (by net_accept or net_connect). */
struct net_conn *fakenet_last(void);
/* Every connection since the reset, closed ones included (their written
 * bytes stay readable), in creation order. */
size_t fakenet_count(void);
struct net_conn *fakenet_nth(size_t i);
/* Connections whose on_closed has not been delivered yet. */
size_t fakenet_open_count(void);
int fakenet_alive(const struct net_conn *c);

/* What the relay asked for. */
int fakenet_is_outbound(const struct net_conn *c);
const char *fakenet_host(const struct net_conn *c); /* net_connect host, "" inbound */
int fakenet_port(const struct net_conn *c);
int fakenet_connect_pending(const struct net_conn *c);
int fakenet_tls_pending(const struct net_conn *c); /* 0, 1 server, 2 client */
int fakenet_tls_active(const struct net_conn *c);
int fakenet_closing(const struct net_conn *c);
unsigned fakenet_timer(const struct net_conn *c); /* ms requested, 0 if none */

/* Everything the relay wrote since the last fakenet_take (plaintext). */
const char *fakenet_written(const struct net_conn *c, size_t *len);
/* Remove the first n written bytes (the test consumed them). */
void fakenet_take(struct net_conn *c, size_t n);
/* Every byte ever written, for invariant checks; never consumed. */
const char *fakenet_all_written(const struct net_conn *c, size_t *len);

/* Events, delivered to the relay now (then the pump runs). Ignored for a
 * connection that is closing, like the real module. */
void fakenet_data(struct net_conn *c, const char *data, size_t len);
void fakenet_connected(struct net_conn *c, int status);
void fakenet_tls_done(struct net_conn *c, int status);
void fakenet_error(struct net_conn *c, int status);
void fakenet_timeout(struct net_conn *c);
/* Advance the clock; timers that come due fire, in creation order. */
void fakenet_advance(uint64_t ms);
uint64_t fakenet_now(void);

/* TLS facts reported for c once TLS is active: whether the peer presented
 * a certificate and the certs/identity result net_tls_check returns
 * (IDENT_NO_CERT by default). */
void fakenet_set_peer_cert(struct net_conn *c, int has_cert, int check_result);
/* The next net_write on any connection fails with this -errno (0: none). */
void fakenet_fail_next_write(int err);
/* Pretend bytes wait in the kernel-bound queue of c (backpressure); at or
 * below what net_want_drain asked for, on_drain is called. */
void fakenet_set_queued(struct net_conn *c, size_t bytes);
/* c was paused with net_pause (and not resumed). */
int fakenet_paused(const struct net_conn *c);

/* Deliver on_closed to connections the relay closed. */
void fakenet_pump(void);

#endif
