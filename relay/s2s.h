/* s2s: XMPP server-to-server streams through the relay. Inbound streams
 * are terminated (STARTTLS, dialback as receiving and as authoritative
 * server); each stanza is checked and routed to an outbound stream for its
 * (from-domain, to-domain) pair on the route's next hop, which the relay
 * opens and authenticates itself. Undeliverable stanzas are bounced. */
#ifndef XT_S2S_H
#define XT_S2S_H

#include <stddef.h>

struct runtime;

/* Start with snapshot rt (referenced). */
void s2s_init(struct runtime *rt);
/* SIGHUP: new streams, routing and the outbound pool use rt from now on;
 * established streams keep theirs. */
void s2s_reload(struct runtime *rt);
/* A listener has a pending connection (uv_server is a uv_stream_t *). */
/* direct: the listener speaks XEP-0368 direct TLS. */
void s2s_accept(void *uv_server, int direct);
/* SIGTERM, first step: close inbound streams and idle outbound ones;
 * outbound streams with queued stanzas go on until they deliver them. */
void s2s_drain(void);
/* Work left for the drain (0 when done). */
size_t s2s_pending(void);
/* One live stream, for xtrunkctl status and the metrics gauges. Every
 * string is borrowed for the callback only. */
struct s2s_info {
	unsigned serial;
	const char *direction;	     /* "in" or "out" */
	const char *state;	     /* "header", "established", ... */
	const char *address;	     /* the other end, "ip:port" */
	const char *peer;	     /* configured peer: the next hop (out) or the one the
				      * sender's domain is routed through (in); "-" if none */
	const char *local, *remote;  /* domains of the stream header ("-" if unknown) */
	const char *auth;	     /* "dialback", "sasl-external", "certificate", "none" */
	const char *tls;	     /* protocol/cipher description or "none" */
	const char *certificate;     /* the certificate we presented, or "-" */
	int peer_certificate;	     /* the other end presented one */
	size_t pairs;		     /* in: authenticated domain pairs */
	size_t queued, queued_bytes; /* out: stanzas waiting for the stream */
};
void s2s_foreach(void (*fn)(void *ctx, const struct s2s_info *i), void *ctx);
/* Close every stream; log what is still queued. */
void s2s_shutdown(void);
/* Release what s2s_init took. */
void s2s_free(void);

#endif
