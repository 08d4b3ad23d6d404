/* tls: one GnuTLS session driven without sockets (sans-I/O). Ciphertext
 * goes in through tls_feed() and out through the on_cipher callback;
 * plaintext comes out through on_plain. The I/O edge (net.c) moves the
 * ciphertext between this and the socket. */
#ifndef XT_TLS_H
#define XT_TLS_H

#include <stddef.h>

struct tls_creds;
struct tls_session;

struct store;

/* The GnuTLS priority string for every session (NULL: the built-in one).
 * TLS below 1.2 is always removed. Returns 0, or -EINVAL with the position
 * of the error in err. Call before the first session. */
int tls_set_priority(const char *priority, char *err, size_t errlen);
/* Server credentials: a certificate store (certs/store.h: per SNI name or
 * stream 'to', CA-issued on the fly) and/or a default PEM certificate
 * chain and key, used when the store has nothing for the name. Either may
 * be NULL, not both. store is referenced. Returns 0 or -EINVAL with a
 * message naming the file in err. */
int tls_creds_server(const char *cert_file, const char *key_file, struct store *store,
		     struct tls_creds **out, char *err, size_t errlen);
/* Client credentials. With a store, the session presents the store's
 * certificate for its stream 'from' when asked. The peer's certificate is
 * checked by the caller with tls_peer_check (certs/identity), not here. */
int tls_creds_client(struct store *store, struct tls_creds **out, char *err, size_t errlen);
/* Also present this certificate (PEM chain and key files) when the store
 * has none for the stream: for trunk links, whose 'from' is the relay's
 * own name, usually the name of tls.certificate. 0 or -errno with err. */
int tls_creds_client_default(struct tls_creds *c, const char *cert_file, const char *key_file,
			     char *err, size_t errlen);
/* Accepts NULL. */
void tls_creds_free(struct tls_creds *c);

struct tls_callbacks {
	/* Ciphertext to send; the data is borrowed for the call. Returns 0 or -errno. */
	int (*on_cipher)(void *ctx, const char *data, size_t len);
	/* Decrypted application data, borrowed for the call. */
	void (*on_plain)(void *ctx, const char *data, size_t len);
	/* Handshake finished (status 0) or failed (-EPROTO). */
	void (*on_handshake)(void *ctx, int status);
};

/* creds is borrowed and must outlive the session. name is the stream 'to'
 * (server: the certificate when the peer sends no SNI) or 'from' (client:
 * the client certificate); sni may be NULL. */
struct tls_session *tls_server_new(struct tls_creds *creds, const char *name,
				   const struct tls_callbacks *cb, void *ctx);
struct tls_session *tls_client_new(struct tls_creds *creds, const char *sni, const char *name,
				   const struct tls_callbacks *cb, void *ctx);
/* Name of the certificate this side presented ("a.example",
 * "*.example", "default"), or NULL if none. */
const char *tls_presented(struct tls_session *t);
/* Accepts NULL. Never from inside one of its callbacks. */
void tls_free(struct tls_session *t);

/* Offer/accept ALPN "xmpp-server" (XEP-0368 direct TLS). Before the
 * handshake. */
int tls_set_alpn(struct tls_session *t);
/* Starts the client handshake (sends the ClientHello). */
int tls_start(struct tls_session *t);
/* Feed received ciphertext. Runs the handshake and delivers plaintext.
 * Returns 0, or -EPROTO on a fatal TLS error, -ECONNRESET on close_notify. */
int tls_feed(struct tls_session *t, const char *data, size_t len);
/* Encrypt and send through on_cipher. Only after the handshake. */
int tls_write(struct tls_session *t, const char *data, size_t len);
/* Send close_notify. */
void tls_bye(struct tls_session *t);
/* Stop delivering plaintext from the current tls_feed (owner is closing). */
void tls_stop(struct tls_session *t);

struct ident_policy;
/* Check the peer's certificate chain for an XMPP domain with
 * certs/identity (RFC 6125, pins). Returns an enum ident_result (0 = ok);
 * why gets a reason for the log. */
int tls_peer_check(struct tls_session *t, const char *domain, const struct ident_policy *p,
		   char *why, size_t whylen);
/* 1 if the peer presented a certificate. */
int tls_peer_has_cert(struct tls_session *t);

/* "TLS1.3/AES-256-GCM" style description, static storage. */
const char *tls_describe(struct tls_session *t);
/* Why the handshake failed, as a short static label for logs and metrics
 * ("protocol-version", "no-shared-cipher", "certificate", "alert-received",
 * "bad-packet", "connection-closed", "unknown-name", "other"), or NULL. */
const char *tls_failure(const struct tls_session *t);

#endif
