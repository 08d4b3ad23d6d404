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
#include "store.h"
#include "log.h"

#define TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SAFE_RENEGOTIATION"
/* appended to any configured string: TLS 1.2 is the floor (RFC 7590) */
#define TLS_FLOOR ":-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"

static gnutls_priority_t tls_prio; /* owned, process-wide */

struct tls_creds {
	gnutls_certificate_credentials_t x509; /* owned */
	struct store *store;		       /* ref or NULL */
	gnutls_pcert_st *dflt; /* owned array or NULL: default chain when a store is used */
	unsigned ndflt;
	gnutls_privkey_t dflt_key; /* owned or NULL */
};

struct tls_session {
	gnutls_session_t s;		/* owned */
	struct tls_creds *creds;	/* borrowed */
	const struct tls_callbacks *cb; /* borrowed */
	struct store_binding *binding;	/* owned or NULL: the store's view of this session */
	int used_default;
	void *ctx;	/* borrowed */
	const char *in; /* borrowed: unread part of the data being fed */
	size_t in_len;
	int handshake_done;
	int stopped;
	int is_client;
	const char *failure; /* static, see tls_failure(); NULL: none */
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

/* The store's choice, else the default certificate. The tls_session is
 * the transport pointer; the store binding is the session pointer. */
static int tls_retrieve(gnutls_session_t s, const gnutls_datum_t *req_ca_rdn, int nreqs,
			const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
			gnutls_pcert_st **pcert, unsigned int *pcert_length,
			gnutls_privkey_t *privkey)
{
	struct tls_session *t = gnutls_transport_get_ptr(s);
	int rc = 0;

	*pcert_length = 0;
	if (t->binding != NULL)
		rc = store_retrieve_callback(s, req_ca_rdn, nreqs, pk_algos, pk_algos_length, pcert,
					     pcert_length, privkey);
	if (rc == 0 && *pcert_length == 0 && t->creds->dflt != NULL) {
		*pcert = t->creds->dflt;
		*pcert_length = t->creds->ndflt;
		*privkey = t->creds->dflt_key;
		t->used_default = 1;
	}
	return rc;
}

#define TLS_MAX_DEFAULT_CHAIN 8

static int tls_load_default(struct tls_creds *c, const char *cert_file, const char *key_file,
			    char *err, size_t errlen)
{
	gnutls_datum_t kd = {NULL, 0};
	unsigned n = TLS_MAX_DEFAULT_CHAIN;
	int rc;

	c->dflt = calloc(TLS_MAX_DEFAULT_CHAIN, sizeof(*c->dflt));
	if (c->dflt == NULL)
		return -ENOMEM;
	rc = gnutls_pcert_list_import_x509_file(c->dflt, &n, cert_file, GNUTLS_X509_FMT_PEM, NULL,
						NULL, 0);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot load the certificate chain: %s; give PEM",
			 cert_file, gnutls_strerror(rc));
		return -EINVAL;
	}
	c->ndflt = n;
	if ((rc = gnutls_load_file(key_file, &kd)) < 0 ||
	    (rc = gnutls_privkey_init(&c->dflt_key)) < 0 ||
	    (rc = gnutls_privkey_import_x509_raw(c->dflt_key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) <
		0) {
		snprintf(err, errlen, "%s: cannot load the key: %s; give an unencrypted PEM key",
			 key_file, gnutls_strerror(rc));
		gnutls_free(kd.data);
		return -EINVAL;
	}
	gnutls_memset(kd.data, 0, kd.size);
	gnutls_free(kd.data);
	return 0;
}

int tls_set_priority(const char *priority, char *err, size_t errlen)
{
	gnutls_priority_t p;
	const char *where = NULL;
	char buf[1024];
	int rc;

	if (tls_global_init() < 0)
		return -EIO;
	if (priority == NULL)
		priority = TLS_PRIORITY;
	if (snprintf(buf, sizeof(buf), "%s%s", priority, TLS_FLOOR) >= (int)sizeof(buf)) {
		snprintf(err, errlen, "tls.priority is too long");
		return -EINVAL;
	}
	rc = gnutls_priority_init(&p, buf, &where);
	if (rc < 0) {
		snprintf(err, errlen,
			 "tls.priority \"%s\" is not valid at \"%.20s\" (%s); see "
			 "gnutls_priority_init(3), e.g. \"NORMAL\"",
			 priority, where ? where : "", gnutls_strerror(rc));
		return -EINVAL;
	}
	if (tls_prio != NULL)
		gnutls_priority_deinit(tls_prio);
	tls_prio = p;
	return 0;
}

int tls_set_alpn(struct tls_session *t)
{
	gnutls_datum_t proto = {(unsigned char *)"xmpp-server", 11};

	return gnutls_alpn_set_protocols(t->s, &proto, 1, 0) < 0 ? -EINVAL : 0;
}

int tls_creds_server(const char *cert_file, const char *key_file, struct store *store,
		     struct tls_creds **out, char *err, size_t errlen)
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
	if (store != NULL) {
		c->store = store_ref(store);
		gnutls_certificate_set_retrieve_function2(c->x509, tls_retrieve);
		if (cert_file != NULL && key_file != NULL &&
		    tls_load_default(c, cert_file, key_file, err, errlen) < 0)
			goto fail;
		*out = c;
		return 0;
	}
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

int tls_creds_client(struct store *store, struct tls_creds **out, char *err, size_t errlen)
{
	struct tls_creds *c;

	if (tls_global_init() < 0)
		return -EIO;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	if (gnutls_certificate_allocate_credentials(&c->x509) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (store != NULL) {
		c->store = store_ref(store);
		gnutls_certificate_set_retrieve_function2(c->x509, tls_retrieve);
	}
	*out = c;
	return 0;
fail:
	tls_creds_free(c);
	return -EINVAL;
}

int tls_creds_client_default(struct tls_creds *c, const char *cert_file, const char *key_file,
			     char *err, size_t errlen)
{
	int rc;

	if (c->dflt != NULL)
		return -EEXIST;
	rc = tls_load_default(c, cert_file, key_file, err, errlen);
	if (rc < 0)
		return rc;
	if (c->store == NULL)
		gnutls_certificate_set_retrieve_function2(c->x509, tls_retrieve);
	return 0;
}

void tls_creds_free(struct tls_creds *c)
{
	if (c == NULL)
		return;
	if (c->x509 != NULL)
		gnutls_certificate_free_credentials(c->x509);
	if (c->dflt != NULL) {
		for (unsigned i = 0; i < c->ndflt; i++)
			gnutls_pcert_deinit(&c->dflt[i]);
		free(c->dflt);
	}
	if (c->dflt_key != NULL)
		gnutls_privkey_deinit(c->dflt_key);
	store_unref(c->store);
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

static struct tls_session *tls_new(struct tls_creds *creds, unsigned flags, const char *name,
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
	if (tls_prio == NULL && tls_set_priority(NULL, NULL, 0) < 0) {
		gnutls_deinit(t->s);
		free(t);
		return NULL;
	}
	if (gnutls_priority_set(t->s, tls_prio) < 0 ||
	    gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, creds->x509) < 0) {
		tls_free(t);
		return NULL;
	}
	gnutls_transport_set_ptr(t->s, t);
	if (creds->store != NULL) {
		t->binding = store_binding_new(
		    creds->store, (flags & GNUTLS_SERVER) ? STORE_SERVER : STORE_CLIENT);
		if (t->binding == NULL) {
			tls_free(t);
			return NULL;
		}
		/* a name that is not a domain just finds nothing in the store */
		if (name != NULL)
			(void)store_binding_set_name(t->binding, name);
		gnutls_session_set_ptr(t->s, t->binding);
	}
	gnutls_transport_set_pull_function(t->s, tls_pull);
	gnutls_transport_set_push_function(t->s, tls_push);
	return t;
}

struct tls_session *tls_server_new(struct tls_creds *creds, const char *name,
				   const struct tls_callbacks *cb, void *ctx)
{
	struct tls_session *t = tls_new(creds, GNUTLS_SERVER, name, cb, ctx);

	if (t != NULL)
		gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUEST);
	return t;
}

struct tls_session *tls_client_new(struct tls_creds *creds, const char *sni, const char *name,
				   const struct tls_callbacks *cb, void *ctx)
{
	struct tls_session *t = tls_new(creds, GNUTLS_CLIENT, name, cb, ctx);

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
	store_binding_free(t->binding); /* after gnutls_deinit, as store.h asks */
	free(t);
}

/* A GnuTLS handshake error as one of a few labels an operator can act on. */
static const char *failure_reason(int rc)
{
	switch (rc) {
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
		return "protocol-version";
	case GNUTLS_E_NO_CIPHER_SUITES:
	case GNUTLS_E_UNKNOWN_CIPHER_SUITE:
	case GNUTLS_E_INSUFFICIENT_SECURITY:
	case GNUTLS_E_NO_COMMON_KEY_SHARE:
	case GNUTLS_E_NO_PRIORITIES_WERE_SET:
		return "no-shared-cipher";
	case GNUTLS_E_CERTIFICATE_ERROR:
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
		return "certificate";
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		return "alert-received";
	case GNUTLS_E_UNRECOGNIZED_NAME:
		return "unknown-name";
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		return "connection-closed";
	case GNUTLS_E_UNEXPECTED_PACKET:
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
	case GNUTLS_E_UNEXPECTED_HANDSHAKE_PACKET:
	case GNUTLS_E_RECORD_OVERFLOW:
	case GNUTLS_E_DECRYPTION_FAILED:
	case GNUTLS_E_ILLEGAL_PARAMETER:
		return "bad-packet";
	default:
		return "other";
	}
}

const char *tls_failure(const struct tls_session *t)
{
	return t != NULL ? t->failure : NULL;
}

static int tls_handshake_step(struct tls_session *t)
{
	int rc = gnutls_handshake(t->s);

	if (rc == GNUTLS_E_SUCCESS && gnutls_protocol_get_version(t->s) < GNUTLS_TLS1_2) {
		/* the priority string forbids it; never trust a single guard */
		log_info("event=tls-error stage=handshake error=\"protocol below TLS 1.2\"");
		t->failure = "protocol-version";
		t->cb->on_handshake(t->ctx, -EPROTO);
		return -EPROTO;
	}
	if (rc == GNUTLS_E_SUCCESS) {
		t->handshake_done = 1;
		t->cb->on_handshake(t->ctx, 0);
		return 0;
	}
	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
		return 0;
	if (gnutls_error_is_fatal(rc) || rc < 0) {
		t->failure = failure_reason(rc);
		log_info("event=tls-error stage=handshake reason=%s error=\"%s\"", t->failure,
			 gnutls_strerror(rc));
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
			/* A read usually ends on a record boundary: with nothing
			 * left in our buffer and nothing decrypted waiting, another
			 * call could only say EAGAIN (a record layer pass per read
			 * when every read carries one stanza). GnuTLS pulls only
			 * what the record in hand needs, so no whole record waits
			 * inside it either. */
			if (t->in_len == 0 && gnutls_record_check_pending(t->s) == 0)
				break;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			if (t->in_len == 0 || (t->in_len == before && ++idle > 2))
				break;
			continue;
		}
		if (n == GNUTLS_E_REHANDSHAKE) {
			/* no renegotiation, ever: answer no_renegotiation */
			log_info("event=tls-renegotiation-refused");
			(void)gnutls_alert_send(t->s, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
			continue;
		}
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

const char *tls_presented(struct tls_session *t)
{
	const char *n = t->binding != NULL ? store_binding_presented(t->binding) : NULL;

	if (n != NULL)
		return n;
	if (t->used_default || (t->creds->store == NULL && !t->is_client))
		return "default";
	return NULL;
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
