/* Unit tests for tls: two sessions joined by in-memory pipes, no sockets.
 * The certificate is made at test time. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "identity.h"
#include "tls.h"

struct pipe {
	char buf[262144];
	size_t len;
};

struct end {
	struct pipe out;   /* ciphertext this end produced */
	char plain[65536]; /* plaintext it received */
	size_t plain_len;
	int handshake; /* 0 pending, 1 done, -1 failed */
	struct tls_session *t;
};

static char dir[64], cert_path[96], key_path[96];

static int on_cipher(void *ctx, const char *data, size_t len)
{
	struct end *e = ctx;

	ck_assert_uint_le(e->out.len + len, sizeof(e->out.buf));
	memcpy(e->out.buf + e->out.len, data, len);
	e->out.len += len;
	return 0;
}

static void on_plain(void *ctx, const char *data, size_t len)
{
	struct end *e = ctx;

	ck_assert_uint_le(e->plain_len + len, sizeof(e->plain));
	memcpy(e->plain + e->plain_len, data, len);
	e->plain_len += len;
}

static void on_handshake(void *ctx, int status)
{
	struct end *e = ctx;

	e->handshake = status == 0 ? 1 : -1;
}

static const struct tls_callbacks cb = {on_cipher, on_plain, on_handshake};

/* Move what 'from' produced into 'to', in chunks of 'chunk' bytes (0 = all at once). */
static int pump(struct end *from, struct end *to, size_t chunk)
{
	size_t off = 0, n;
	int rc = 0;

	while (off < from->out.len && rc == 0) {
		n = chunk == 0 ? from->out.len - off : chunk;
		if (n > from->out.len - off)
			n = from->out.len - off;
		rc = tls_feed(to->t, from->out.buf + off, n);
		off += n;
	}
	memmove(from->out.buf, from->out.buf + off, from->out.len - off);
	from->out.len -= off;
	return rc;
}

static void make_cert(void)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	unsigned char serial[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	char pem[16384];
	size_t sz;
	FILE *f;
	time_t now = time(NULL);

	snprintf(dir, sizeof(dir), "/tmp/xt-tls-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cert_path, sizeof(cert_path), "%s/c.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/k.pem", dir);
	ck_assert_int_eq(gnutls_x509_privkey_init(&key), 0);
	ck_assert_int_eq(
	    gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
					 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
	    0);
	ck_assert_int_eq(gnutls_x509_crt_init(&crt), 0);
	gnutls_x509_crt_set_version(crt, 3);
	gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
	gnutls_x509_crt_set_activation_time(crt, now - 60);
	gnutls_x509_crt_set_expiration_time(crt, now + 3600);
	gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "relay.test", 10);
	gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "relay.test", 10,
					     GNUTLS_FSAN_SET);
	gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
	gnutls_x509_crt_set_key(crt, key);
	ck_assert_int_eq(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
	sz = sizeof(pem);
	ck_assert_int_eq(gnutls_x509_crt_export(crt, GNUTLS_X509_FMT_PEM, pem, &sz), 0);
	f = fopen(cert_path, "w");
	fwrite(pem, 1, sz, f);
	fclose(f);
	sz = sizeof(pem);
	ck_assert_int_eq(gnutls_x509_privkey_export(key, GNUTLS_X509_FMT_PEM, pem, &sz), 0);
	f = fopen(key_path, "w");
	fwrite(pem, 1, sz, f);
	fclose(f);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

static void cleanup(void)
{
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
}

/* Handshake, then the server sends application data right behind its
 * post-handshake messages (TLS 1.3 session tickets). Fed to the client all at
 * once, byte by byte, or in odd chunks, the data must come out whole: the
 * client once dropped records that followed a ticket in the same read. */
static const size_t chunks[] = {0, 1, 7, 100};

START_TEST(test_handshake_and_data)
{
	struct tls_creds *sc, *cc;
	struct end *srv = calloc(1, sizeof(*srv)), *cli = calloc(1, sizeof(*cli));
	char err[256];
	size_t chunk = chunks[_i];
	int i;

	make_cert();
	ck_assert_int_eq(tls_creds_server(cert_path, key_path, NULL, &sc, err, sizeof(err)), 0);
	ck_assert_int_eq(tls_creds_client(NULL, &cc, err, sizeof(err)), 0);
	srv->t = tls_server_new(sc, NULL, &cb, srv);
	cli->t = tls_client_new(cc, "relay.test", NULL, &cb, cli);
	ck_assert_ptr_nonnull(srv->t);
	ck_assert_ptr_nonnull(cli->t);
	ck_assert_int_eq(tls_start(cli->t), 0);
	for (i = 0; i < 10 && (srv->handshake == 0 || cli->handshake == 0); i++) {
		ck_assert_int_eq(pump(cli, srv, chunk), 0);
		if (srv->handshake == 1) {
			/* queue data behind the server's last handshake flight */
			ck_assert_int_eq(tls_write(srv->t, "<stream:stream>", 15), 0);
		}
		ck_assert_int_eq(pump(srv, cli, chunk), 0);
	}
	ck_assert_int_eq(srv->handshake, 1);
	ck_assert_int_eq(cli->handshake, 1);
	ck_assert_int_eq(tls_write(srv->t, "<features/>", 11), 0);
	ck_assert_int_eq(pump(srv, cli, chunk), 0);
	ck_assert_uint_eq(cli->plain_len, 26);
	ck_assert(memcmp(cli->plain, "<stream:stream><features/>", 26) == 0);
	ck_assert_int_eq(tls_write(cli->t, "hello", 5), 0);
	ck_assert_int_eq(pump(cli, srv, chunk), 0);
	ck_assert_uint_eq(srv->plain_len, 5);
	ck_assert(strstr(tls_describe(cli->t), "TLS1.") != NULL);
	/* the client trusts this self-signed certificate for its name only */
	/* the peer's chain, checked by certs/identity against this
	 * self-signed certificate as the only anchor: valid for its name only */
	{
		gnutls_x509_trust_list_t tl;
		struct ident_policy pol = {0};
		char why[128];

		ck_assert_int_eq(gnutls_x509_trust_list_init(&tl, 0), 0);
		ck_assert_int_eq(gnutls_x509_trust_list_add_trust_file(tl, cert_path, NULL,
								       GNUTLS_X509_FMT_PEM, 0, 0),
				 1);
		pol.trust = tl;
		ck_assert(tls_peer_has_cert(cli->t));
		ck_assert_int_eq(tls_peer_check(cli->t, "relay.test", &pol, why, sizeof(why)),
				 IDENT_OK);
		ck_assert_int_eq(tls_peer_check(cli->t, "other.test", &pol, why, sizeof(why)),
				 IDENT_NAME_MISMATCH);
		ck_assert(!tls_peer_has_cert(srv->t));
		gnutls_x509_trust_list_deinit(tl, 1);
	}
	/* the server asked for no client certificate from this client */
	tls_free(srv->t);
	tls_free(cli->t);
	tls_creds_free(sc);
	tls_creds_free(cc);
	free(srv);
	free(cli);
	cleanup();
}
END_TEST

/* A plain GnuTLS server with TLS 1.3 session tickets, as OpenSSL-based peers
 * (Prosody) send them: two NewSessionTicket records right after the
 * handshake, then application data, all in one read on the client. */
struct raw {
	gnutls_session_t s;
	struct pipe out;
	const char *in;
	size_t in_len;
};

static ssize_t raw_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct raw *r = p;

	if (r->in_len == 0) {
		gnutls_transport_set_errno(r->s, EAGAIN);
		return -1;
	}
	if (len > r->in_len)
		len = r->in_len;
	memcpy(buf, r->in, len);
	r->in += len;
	r->in_len -= len;
	return (ssize_t)len;
}

static ssize_t raw_push(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
	struct raw *r = p;

	memcpy(r->out.buf + r->out.len, buf, len);
	r->out.len += len;
	return (ssize_t)len;
}

START_TEST(test_tickets_then_data)
{
	gnutls_certificate_credentials_t x509;
	gnutls_datum_t tkey;
	struct raw *r = calloc(1, sizeof(*r));
	struct end *cli = calloc(1, sizeof(*cli));
	struct tls_creds *cc;
	char err[256];
	int rc = GNUTLS_E_AGAIN, i;

	make_cert();
	ck_assert_int_eq(gnutls_certificate_allocate_credentials(&x509), 0);
	ck_assert_int_eq(
	    gnutls_certificate_set_x509_key_file(x509, cert_path, key_path, GNUTLS_X509_FMT_PEM),
	    0);
	ck_assert_int_eq(gnutls_init(&r->s, GNUTLS_SERVER | GNUTLS_NONBLOCK), 0);
	ck_assert_int_eq(gnutls_set_default_priority(r->s), 0);
	ck_assert_int_eq(gnutls_credentials_set(r->s, GNUTLS_CRD_CERTIFICATE, x509), 0);
	ck_assert_int_eq(gnutls_session_ticket_key_generate(&tkey), 0);
	ck_assert_int_eq(gnutls_session_ticket_enable_server(r->s, &tkey), 0);
	gnutls_transport_set_ptr(r->s, r);
	gnutls_transport_set_pull_function(r->s, raw_pull);
	gnutls_transport_set_push_function(r->s, raw_push);
	ck_assert_int_eq(tls_creds_client(NULL, &cc, err, sizeof(err)), 0);
	cli->t = tls_client_new(cc, "relay.test", NULL, &cb, cli);
	ck_assert_int_eq(tls_start(cli->t), 0);
	for (i = 0; i < 10 && (rc != 0 || cli->handshake == 0); i++) {
		r->in = cli->out.buf;
		r->in_len = cli->out.len;
		if (rc != 0)
			rc = gnutls_handshake(r->s);
		cli->out.len = 0;
		if (rc == 0 && cli->handshake == 0) {
			ck_assert_int_eq(tls_feed(cli->t, r->out.buf, r->out.len), 0);
			r->out.len = 0;
		} else if (rc != 0) {
			ck_assert_int_eq(rc, GNUTLS_E_AGAIN);
			ck_assert_int_eq(tls_feed(cli->t, r->out.buf, r->out.len), 0);
			r->out.len = 0;
		}
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(cli->handshake, 1);
	/* client Finished reaches the server; then tickets and data in one read */
	r->in = cli->out.buf;
	r->in_len = cli->out.len;
	(void)gnutls_record_recv(r->s, err, sizeof(err));
	cli->out.len = 0;
	r->out.len = 0;
	ck_assert_int_eq(gnutls_session_ticket_send(r->s, 2, 0), 0);
	ck_assert_int_gt(r->out.len, 0);
	ck_assert_int_eq(gnutls_record_send(r->s, "<stream:stream>", 15), 15);
	ck_assert_int_eq(tls_feed(cli->t, r->out.buf, r->out.len), 0);
	ck_assert_uint_eq(cli->plain_len, 15);
	ck_assert(memcmp(cli->plain, "<stream:stream>", 15) == 0);
	tls_free(cli->t);
	tls_creds_free(cc);
	gnutls_deinit(r->s);
	gnutls_free(tkey.data);
	gnutls_certificate_free_credentials(x509);
	free(r);
	free(cli);
	cleanup();
}
END_TEST

/* TLS 1.2 is the floor even when the configured priority string allows
 * TLS 1.1: a TLS 1.1-only client fails the handshake; a bad string is
 * refused with a message. */
START_TEST(test_tls11_refused)
{
	struct tls_creds *sc;
	struct end *srv = calloc(1, sizeof(*srv));
	struct raw *r = calloc(1, sizeof(*r));
	gnutls_certificate_credentials_t x509;
	char err[256];
	int rc = GNUTLS_E_AGAIN, i, srv_rc = 0;

	make_cert();
	ck_assert_int_eq(tls_set_priority("NORMAL:+VERS-TLS1.1:+VERS-TLS1.0", err, sizeof(err)), 0);
	ck_assert_int_eq(tls_set_priority("NORMAL:+NOT-A-THING", err, sizeof(err)), -EINVAL);
	ck_assert(strstr(err, "tls.priority") != NULL);
	ck_assert_int_eq(tls_creds_server(cert_path, key_path, NULL, &sc, err, sizeof(err)), 0);
	srv->t = tls_server_new(sc, NULL, &cb, srv);
	ck_assert_int_eq(gnutls_certificate_allocate_credentials(&x509), 0);
	ck_assert_int_eq(gnutls_init(&r->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
	ck_assert_int_eq(gnutls_priority_set_direct(r->s, "NORMAL:-VERS-ALL:+VERS-TLS1.1", NULL),
			 0);
	ck_assert_int_eq(gnutls_credentials_set(r->s, GNUTLS_CRD_CERTIFICATE, x509), 0);
	gnutls_transport_set_ptr(r->s, r);
	gnutls_transport_set_pull_function(r->s, raw_pull);
	gnutls_transport_set_push_function(r->s, raw_push);
	for (i = 0; i < 6 && rc == GNUTLS_E_AGAIN && srv_rc == 0; i++) {
		r->in = srv->out.buf;
		r->in_len = srv->out.len;
		rc = gnutls_handshake(r->s);
		srv->out.len = 0;
		if (r->out.len > 0) {
			srv_rc = tls_feed(srv->t, r->out.buf, r->out.len);
			r->out.len = 0;
		}
	}
	ck_assert_int_eq(srv_rc, -EPROTO);
	ck_assert_int_eq(srv->handshake, -1);
	ck_assert_str_eq(tls_failure(srv->t), "protocol-version"); /* the metric's reason */
	ck_assert_int_eq(tls_set_priority(NULL, err, sizeof(err)), 0);
	tls_free(srv->t);
	tls_creds_free(sc);
	gnutls_deinit(r->s);
	gnutls_certificate_free_credentials(x509);
	free(r);
	free(srv);
	cleanup();
}
END_TEST

START_TEST(test_garbage_fails)
{
	struct tls_creds *sc;
	struct end *srv = calloc(1, sizeof(*srv));
	char err[256];
	static const char junk[] = "<stream:stream to='x'>this is not TLS at all, it is XML";

	make_cert();
	ck_assert_int_eq(tls_creds_server(cert_path, key_path, NULL, &sc, err, sizeof(err)), 0);
	srv->t = tls_server_new(sc, NULL, &cb, srv);
	ck_assert_ptr_null(tls_failure(srv->t));
	ck_assert_int_eq(tls_feed(srv->t, junk, sizeof(junk) - 1), -EPROTO);
	ck_assert_int_eq(srv->handshake, -1);
	ck_assert_msg(tls_failure(srv->t) != NULL && strcmp(tls_failure(srv->t), "other") != 0,
		      "reason %s", tls_failure(srv->t) ? tls_failure(srv->t) : "(null)");
	tls_free(srv->t);
	tls_creds_free(sc);
	free(srv);
	cleanup();
}
END_TEST

START_TEST(test_bad_files)
{
	struct tls_creds *c = NULL;
	char err[256] = "";

	ck_assert_int_eq(tls_creds_server("/nonexistent/c.pem", "/nonexistent/k.pem", NULL, &c, err,
					  sizeof(err)),
			 -EINVAL);
	ck_assert(strstr(err, "/nonexistent/c.pem") != NULL);
	tls_creds_free(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_handshake_and_data, 0, sizeof(chunks) / sizeof(chunks[0]));
	tcase_add_test(tc, test_tickets_then_data);
	tcase_add_test(tc, test_tls11_refused);
	tcase_add_test(tc, test_garbage_fails);
	tcase_add_test(tc, test_bad_files);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
