/* tls: a GnuTLS session over in-memory transport callbacks.
 *
 * GnuTLS pulls ciphertext through our pull function, which reads from the
 * bytes handed to tls_feed() (held in a small buffer only while a record
 * is incomplete) and reports EAGAIN when they run out; it pushes through
 * on_cipher. Policy: TLS 1.2 minimum, no compression, no renegotiation
 * (GnuTLS refuses unsafe renegotiation and we never initiate one). */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "identity.h"
#include "log.h"

#define TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SAFE_RENEGOTIATION"

struct tls_creds {
	gnutls_certificate_credentials_t x509; /* owned */
	int have_ca;
};

struct tls_session {
	gnutls_session_t s;		/* owned */
	struct tls_creds *creds;	/* borrowed */
	const struct tls_callbacks *cb; /* borrowed */
	void *ctx;			/* borrowed */
	const char *in;			/* borrowed: unread part of the data being fed */
	size_t in_len;
	int handshake_done;
	int stopped;
	int is_client;
};

static void tls_log(int level, const char *msg)
{
	log_debug("event=gnutls level=%d msg=\"%.*s\"", level, (int)strcspn(msg, "\n"), msg);
}

static int tls_global_init(void)
{
	static int done;
	const char *lvl;

	if (!done) {
		if (gnutls_global_init() < 0)
			return -EIO;
		/* XTRUNK_TLS_DEBUG=N traces GnuTLS at level N (with -v) */
		lvl = getenv("XTRUNK_TLS_DEBUG");
		if (lvl != NULL) {
			gnutls_global_set_log_function(tls_log);
			gnutls_global_set_log_level(atoi(lvl));
		}
		done = 1;
	}
	return 0;
}

int tls_creds_server(const char *cert_file, const char *key_file, struct tls_creds **out, char *err,
		     size_t errlen)
{
	struct tls_creds *c;
	int rc;

	if (tls_global_init() < 0)
		return -EIO;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	if (gnutls_certificate_allocate_credentials(&c->x509) < 0)
		goto fail;
	rc =
	    gnutls_certificate_set_x509_key_file(c->x509, cert_file, key_file, GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		snprintf(
		    err, errlen,
		    "%s, %s: cannot load certificate and key: %s; check both are PEM and match",
		    cert_file, key_file, gnutls_strerror(rc));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	tls_creds_free(c);
	return -EINVAL;
}

int tls_creds_client(const char *ca_file, struct tls_creds **out, char *err, size_t errlen)
{
	struct tls_creds *c;
	int rc;

	if (tls_global_init() < 0)
		return -EIO;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	if (gnutls_certificate_allocate_credentials(&c->x509) < 0)
		goto fail;
	if (ca_file != NULL) {
		rc = gnutls_certificate_set_x509_trust_file(c->x509, ca_file, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			snprintf(err, errlen, "%s: no CA certificate loaded (%s); give a PEM file",
				 ca_file, rc < 0 ? gnutls_strerror(rc) : "file holds none");
			goto fail;
		}
		c->have_ca = 1;
	}
	*out = c;
	return 0;
fail:
	tls_creds_free(c);
	return -EINVAL;
}

void tls_creds_free(struct tls_creds *c)
{
	if (c == NULL)
		return;
	if (c->x509 != NULL)
		gnutls_certificate_free_credentials(c->x509);
	free(c);
}

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct tls_session *t = p;

	if (t->in_len == 0) {
		gnutls_transport_set_errno(t->s, EAGAIN);
		return -1;
	}
	if (len > t->in_len)
		len = t->in_len;
	memcpy(buf, t->in, len);
	t->in += len;
	t->in_len -= len;
	return (ssize_t)len;
}

static ssize_t tls_push(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
	struct tls_session *t = p;

	if (t->cb->on_cipher(t->ctx, buf, len) < 0) {
		gnutls_transport_set_errno(t->s, EPIPE);
		return -1;
	}
	return (ssize_t)len;
}

static struct tls_session *tls_new(struct tls_creds *creds, unsigned flags,
				   const struct tls_callbacks *cb, void *ctx)
{
	struct tls_session *t;

	if (tls_global_init() < 0)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->creds = creds;
	t->cb = cb;
	t->ctx = ctx;
	if (gnutls_init(&t->s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0) {
		free(t);
		return NULL;
	}
	if (gnutls_priority_set_direct(t->s, TLS_PRIORITY, NULL) < 0 ||
	    gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, creds->x509) < 0) {
		tls_free(t);
		return NULL;
	}
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_pull_function(t->s, tls_pull);
	gnutls_transport_set_push_function(t->s, tls_push);
	return t;
}

struct tls_session *tls_server_new(struct tls_creds *creds, const struct tls_callbacks *cb,
				   void *ctx)
{
	struct tls_session *t = tls_new(creds, GNUTLS_SERVER, cb, ctx);

	if (t != NULL)
		gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUEST);
	return t;
}

struct tls_session *tls_client_new(struct tls_creds *creds, const char *sni,
				   const struct tls_callbacks *cb, void *ctx)
{
	struct tls_session *t = tls_new(creds, GNUTLS_CLIENT, cb, ctx);

	if (t == NULL)
		return NULL;
	t->is_client = 1;
	if (sni != NULL && gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, sni, strlen(sni)) < 0) {
		tls_free(t);
		return NULL;
	}
	return t;
}

void tls_free(struct tls_session *t)
{
	if (t == NULL)
		return;
	gnutls_deinit(t->s);
	free(t);
}

static int tls_handshake_step(struct tls_session *t)
{
	int rc = gnutls_handshake(t->s);

	if (rc == GNUTLS_E_SUCCESS) {
		t->handshake_done = 1;
		t->cb->on_handshake(t->ctx, 0);
		return 0;
	}
	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
		return 0;
	if (gnutls_error_is_fatal(rc) || rc < 0) {
		log_info("event=tls-error stage=handshake error=%s", gnutls_strerror(rc));
		t->cb->on_handshake(t->ctx, -EPROTO);
		return -EPROTO;
	}
	return 0;
}

int tls_start(struct tls_session *t)
{
	return tls_handshake_step(t);
}

int tls_feed(struct tls_session *t, const char *data, size_t len)
{
	char buf[16384];
	size_t before;
	ssize_t n;
	int idle = 0;

	t->in = data;
	t->in_len = len;
	t->stopped = 0;
	/* GnuTLS returns EAGAIN after a post-handshake message (a TLS 1.3
	 * NewSessionTicket) even when more records are waiting in our buffer,
	 * so loop until the buffer is empty, not until the first EAGAIN. */
	while (!t->stopped) {
		before = t->in_len;
		if (!t->handshake_done) {
			if (tls_handshake_step(t) < 0)
				return -EPROTO;
			if (!t->handshake_done) {
				if (t->in_len == 0 || (t->in_len == before && ++idle > 2))
					break;
				continue;
			}
			continue;
		}
		n = gnutls_record_recv(t->s, buf, sizeof(buf));
		if (n > 0) {
			idle = 0;
			t->cb->on_plain(t->ctx, buf, (size_t)n);
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			if (t->in_len == 0 || (t->in_len == before && ++idle > 2))
				break;
			continue;
		}
		if (n == GNUTLS_E_REHANDSHAKE) /* refuse renegotiation: ignore the request */
			continue;
		log_info("event=tls-error stage=record error=%s", gnutls_strerror((int)n));
		return -EPROTO;
	}
	t->in = NULL;
	t->in_len = 0;
	return 0;
}

int tls_write(struct tls_session *t, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = gnutls_record_send(t->s, data, len);

		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0)
			return -EPIPE;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

void tls_bye(struct tls_session *t)
{
	if (t->handshake_done)
		(void)gnutls_bye(t->s, GNUTLS_SHUT_WR);
}

void tls_stop(struct tls_session *t)
{
	t->stopped = 1;
}

int tls_verify_peer(struct tls_session *t, const char *name)
{
	unsigned status = 0;
	int rc;

	if (!t->creds->have_ca)
		return -ENOKEY;
	if (gnutls_certificate_get_peers(t->s, NULL) == NULL)
		return -ENOKEY;
	rc = gnutls_certificate_verify_peers3(t->s, name, &status);
	if (rc < 0 || status != 0)
		return -EBADMSG;
	return 0;
}

int tls_peer_has_cert(struct tls_session *t)
{
	unsigned n = 0;

	return gnutls_certificate_get_peers(t->s, &n) != NULL && n > 0;
}

#define TLS_MAX_CHAIN 16

int tls_peer_check(struct tls_session *t, const char *domain, const struct ident_policy *p,
		   char *why, size_t whylen)
{
	const gnutls_datum_t *der;
	gnutls_x509_crt_t chain[TLS_MAX_CHAIN];
	unsigned n = 0, i, got = 0;
	int r = IDENT_BAD_CERT;

	der = gnutls_certificate_get_peers(t->s, &n);
	if (der == NULL || n == 0) {
		snprintf(why, whylen, "no certificate presented");
		return IDENT_NO_CERT;
	}
	if (n > TLS_MAX_CHAIN)
		n = TLS_MAX_CHAIN;
	for (i = 0; i < n; i++) {
		if (gnutls_x509_crt_init(&chain[i]) < 0)
			goto out;
		got++;
		if (gnutls_x509_crt_import(chain[i], &der[i], GNUTLS_X509_FMT_DER) < 0) {
			snprintf(why, whylen, "certificate %u does not parse", i);
			goto out;
		}
	}
	r = (int)ident_verify(chain, n, domain, p, why, whylen);
out:
	for (i = 0; i < got; i++)
		gnutls_x509_crt_deinit(chain[i]);
	return r;
}

const char *tls_describe(struct tls_session *t)
{
	static char d[96];

	snprintf(d, sizeof(d), "%s/%s", gnutls_protocol_get_name(gnutls_protocol_get_version(t->s)),
		 gnutls_cipher_get_name(gnutls_cipher_get(t->s)));
	return d;
}
