/* Unit tests for store: a directory of pairs and an enclave CA made at test
 * time, selection by name, CA issuance for routed domains only, the cache,
 * reload, load errors, and real TLS handshakes between two GnuTLS sessions
 * over in-memory transport functions in which the store picks the
 * certificate (server by SNI or stream 'to', client by stream 'from'). */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509-ext.h>
#include <gnutls/x509.h>

#include "ca.h"
#include "store.h"

#define DAY 86400

static char base[64], ca_pem[128], ca_key[128], certs[128];
static struct ca *test_ca;
static time_t fake_now;

static time_t fake_clock(void)
{
	return fake_now;
}

/* ---- routes ---- */

struct routes {
	const char *names[8];
	int calls;
};

static int routed(void *ctx, const char *domain)
{
	struct routes *r = ctx;

	r->calls++;
	for (int i = 0; i < 8 && r->names[i] != NULL; i++)
		if (strcmp(r->names[i], domain) == 0)
			return 1;
	return 0;
}

/* ---- fixture ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void put_pair(const char *dir, const char *file_base, const char *domain, unsigned life)
{
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	char p[256], k[256], err[256] = "";

	snprintf(p, sizeof(p), "%s/%s.pem", dir, file_base);
	snprintf(k, sizeof(k), "%s/%s.key", dir, file_base);
	ck_assert_int_eq(ca_issue(test_ca, domain, fake_now, life, 0, &crt, &key), 0);
	ck_assert_msg(ca_write_pair(p, k, crt, NULL, 0, key, err, sizeof(err)) == 0, "%s", err);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

static void setup(void)
{
	char err[256] = "";

	fake_now = time(NULL);
	snprintf(base, sizeof(base), "/tmp/xt-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", base);
	snprintf(ca_key, sizeof(ca_key), "%s/ca.key", base);
	snprintf(certs, sizeof(certs), "%s/certs", base);
	ck_assert_int_eq(mkdir(certs, 0755), 0);
	ck_assert_msg(
	    ca_create(ca_pem, ca_key, "Store test CA", fake_now, 365 * DAY, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_msg(ca_load(ca_pem, ca_key, &test_ca, err, sizeof(err)) == 0, "%s", err);
	put_pair(certs, "x.example", "x.example", 7 * DAY);
	put_pair(certs, "_wildcard.example.com", "*.example.com", 7 * DAY);
}

static void teardown(void)
{
	ca_unref(test_ca);
	test_ca = NULL;
	nftw(base, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static struct store *load_store(struct ca *ca, struct routes *r, unsigned lifetime,
				size_t cache_max, struct store *prev)
{
	struct store_params p = {.dir = certs,
				 .ca = ca,
				 .routed = routed,
				 .routed_ctx = r,
				 .lifetime = lifetime,
				 .cache_max = cache_max,
				 .now = fake_clock,
				 .prev = prev};
	struct store *s = NULL;
	char err[512] = "";

	ck_assert_msg(store_load(&p, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* The leaf of a selected certificate, parsed (caller deinits). */
static gnutls_x509_crt_t leaf_of(const struct store_cert *c)
{
	gnutls_pcert_st *chain;
	gnutls_privkey_t key;
	gnutls_x509_crt_t crt;
	unsigned n;

	store_cert_get(c, &chain, &n, &key);
	ck_assert_uint_ge(n, 1);
	ck_assert_ptr_nonnull(key);
	ck_assert_int_eq(gnutls_x509_crt_init(&crt), 0);
	ck_assert_int_eq(gnutls_x509_crt_import(crt, &chain[0].cert, GNUTLS_X509_FMT_DER), 0);
	return crt;
}

/* Whether crt has an otherName SAN with the given OID. */
static int has_othername(gnutls_x509_crt_t crt, const char *want)
{
	char oid[128];
	size_t sz;
	int found = 0;

	for (unsigned i = 0;; i++) {
		sz = sizeof(oid);
		int rc = gnutls_x509_crt_get_subject_alt_othername_oid(crt, i, oid, &sz);

		if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (rc >= 0 && strcmp(oid, want) == 0)
			found = 1;
	}
	return found;
}

static void assert_issued_by_ca(gnutls_x509_crt_t crt)
{
	gnutls_x509_crt_t anchor = ca_cert(test_ca);
	unsigned status = 1;

	ck_assert_int_eq(gnutls_x509_crt_verify(crt, &anchor, 1, 0, &status), 0);
	ck_assert_uint_eq(status, 0);
}

/* ---- selection from the directory ---- */

static const struct {
	const char *name;
	int rc;
	const char *entry;
	const char *host; /* a name the certificate must cover */
} dir_cases[] = {
    {"x.example", 0, "x.example", "x.example"},
    {"X.Example.", 0, "x.example", "x.example"},
    {"a.example.com", 0, "*.example.com", "a.example.com"},
    {"B.example.com", 0, "*.example.com", "b.example.com"},
    {"b.a.example.com", -ENOENT, NULL, NULL}, /* a wildcard is one label, not two */
    {"example.com", -ENOENT, NULL, NULL},     /* nor zero */
    {"y.example", -ENOENT, NULL, NULL},
    {"sub.x.example", -ENOENT, NULL, NULL},
    {"bad..name", -EINVAL, NULL, NULL},
    {"", -EINVAL, NULL, NULL},
};

START_TEST(test_select_dir)
{
	struct store *s = load_store(NULL, NULL, 0, 0, NULL);
	struct store_cert *c = NULL, *again = NULL;
	gnutls_x509_crt_t crt;

	ck_assert_int_eq(store_select(s, dir_cases[_i].name, &c), dir_cases[_i].rc);
	if (dir_cases[_i].rc == 0) {
		ck_assert_str_eq(store_cert_name(c), dir_cases[_i].entry);
		crt = leaf_of(c);
		ck_assert(gnutls_x509_crt_check_hostname(crt, dir_cases[_i].host));
		gnutls_x509_crt_deinit(crt);
		ck_assert_int_eq(store_select(s, dir_cases[_i].name, &again), 0);
		ck_assert_ptr_eq(c, again);
		store_cert_unref(again);
	} else {
		ck_assert_ptr_null(c);
	}
	/* the entry outlives the store while referenced */
	store_unref(s);
	if (c != NULL)
		ck_assert_str_eq(store_cert_name(c), dir_cases[_i].entry);
	store_cert_unref(c);
}
END_TEST

/* ---- CA issuance ---- */

START_TEST(test_ca_routed_only)
{
	struct routes r = {{"routed.example", "x.example", "b.a.example.com"}, 0};
	struct store *s = load_store(test_ca, &r, 3000, 0, NULL);
	struct store_cert *c = NULL, *c2 = NULL, *d = NULL;
	gnutls_x509_crt_t crt;

	ck_assert_int_eq(store_select(s, "Routed.Example", &c), 0);
	ck_assert_str_eq(store_cert_name(c), "routed.example");
	crt = leaf_of(c);
	assert_issued_by_ca(crt);
	ck_assert(gnutls_x509_crt_check_hostname(crt, "routed.example"));
	ck_assert(!has_othername(crt, "1.3.6.1.5.5.7.8.5")); /* no xmppAddr by default */
	ck_assert(!has_othername(crt, "1.3.6.1.5.5.7.8.7"));
	ck_assert_int_eq(gnutls_x509_crt_get_expiration_time(crt), fake_now + 3000);
	gnutls_x509_crt_deinit(crt);

	/* cached: the same certificate twice */
	ck_assert_int_eq(store_select(s, "routed.example", &c2), 0);
	ck_assert_ptr_eq(c, c2);
	store_cert_unref(c2);

	/* never for a domain without a route */
	r.calls = 0;
	ck_assert_int_eq(store_select(s, "unrouted.example", &d), -ENOENT);
	ck_assert_ptr_null(d);
	ck_assert_int_eq(r.calls, 1);

	/* the directory comes first, even for a routed domain */
	ck_assert_int_eq(store_select(s, "x.example", &d), 0);
	crt = leaf_of(d);
	ck_assert_int_eq(gnutls_x509_crt_get_expiration_time(crt), fake_now + 7 * DAY);
	gnutls_x509_crt_deinit(crt);
	store_cert_unref(d);

	/* two labels below a wildcard: the CA, since it is routed */
	ck_assert_int_eq(store_select(s, "b.a.example.com", &d), 0);
	ck_assert_str_eq(store_cert_name(d), "b.a.example.com");
	store_cert_unref(d);
	ck_assert_int_eq(store_select(s, "c.a.example.com", &d), -ENOENT);

	store_cert_unref(c);
	store_unref(s);
}
END_TEST

START_TEST(test_ca_reissue)
{
	struct routes r = {{"routed.example"}, 0};
	struct store *s = load_store(test_ca, &r, 3000, 0, NULL);
	struct store_cert *a = NULL, *b = NULL, *c = NULL;
	time_t t0 = fake_now;

	ck_assert_int_eq(store_select(s, "routed.example", &a), 0);
	/* 1001 s left of 3000: more than a third, keep it */
	fake_now = t0 + 1999;
	ck_assert_int_eq(store_select(s, "routed.example", &b), 0);
	ck_assert_ptr_eq(a, b);
	store_cert_unref(b);
	/* 999 s left: re-issue; the old one stays usable for whoever holds it */
	fake_now = t0 + 2001;
	ck_assert_int_eq(store_select(s, "routed.example", &b), 0);
	ck_assert_ptr_ne(a, b);
	ck_assert_str_eq(store_cert_name(a), "routed.example");
	store_cert_unref(a);
	/* the route goes away: nothing, and the cached one is forgotten */
	r.names[0] = NULL;
	ck_assert_int_eq(store_select(s, "routed.example", &c), -ENOENT);
	r.names[0] = "routed.example";
	ck_assert_int_eq(store_select(s, "routed.example", &c), 0);
	ck_assert_ptr_ne(b, c);
	store_cert_unref(b);
	store_cert_unref(c);
	store_unref(s);
}
END_TEST

START_TEST(test_ca_cache_bound)
{
	struct routes r = {{"a.test", "b.test", "c.test"}, 0};
	struct store *s = load_store(test_ca, &r, 3000, 2, NULL);
	struct store_cert *a = NULL, *a2 = NULL, *b = NULL, *c = NULL, *x = NULL;

	ck_assert_int_eq(store_select(s, "a.test", &a), 0);
	ck_assert_int_eq(store_select(s, "b.test", &b), 0);
	/* using a makes b the least recently used */
	ck_assert_int_eq(store_select(s, "a.test", &x), 0);
	ck_assert_ptr_eq(a, x);
	store_cert_unref(x);
	ck_assert_int_eq(store_select(s, "c.test", &c), 0);
	ck_assert_int_eq(store_select(s, "a.test", &a2), 0);
	ck_assert_ptr_eq(a, a2); /* still cached */
	store_cert_unref(a2);
	ck_assert_int_eq(store_select(s, "b.test", &x), 0);
	ck_assert_ptr_ne(b, x); /* b was evicted and issued again */
	ck_assert_str_eq(store_cert_name(b), "b.test");
	store_cert_unref(x);
	store_cert_unref(a);
	store_cert_unref(b);
	store_cert_unref(c);
	store_unref(s);
}
END_TEST

static int routed_all(void *ctx, const char *domain)
{
	return 1;
}

/* Enough names to grow the hash table a few times and to evict half. */
START_TEST(test_ca_cache_many)
{
	struct store_params p = {.ca = test_ca,
				 .routed = routed_all,
				 .lifetime = 3000,
				 .cache_max = 20,
				 .now = fake_clock};
	struct store_cert *held[40], *again;
	struct store *s = NULL;
	char err[256], name[32];

	ck_assert_msg(store_load(&p, &s, err, sizeof(err)) == 0, "%s", err);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "d%d.test", i);
		ck_assert_int_eq(store_select(s, name, &held[i]), 0);
	}
	/* newest first, so that re-issuing an evicted one evicts no cached one */
	for (int i = 39; i >= 0; i--) {
		snprintf(name, sizeof(name), "d%d.test", i);
		ck_assert_int_eq(store_select(s, name, &again), 0);
		if (i >= 20)
			ck_assert_ptr_eq(again, held[i]);
		else
			ck_assert_ptr_ne(again, held[i]);
		ck_assert_str_eq(store_cert_name(again), name);
		store_cert_unref(again);
	}
	for (int i = 0; i < 40; i++)
		store_cert_unref(held[i]);
	store_unref(s);
}
END_TEST

START_TEST(test_reload)
{
	struct routes r = {{"routed.example"}, 0};
	struct store *s1 = load_store(test_ca, &r, 3000, 0, NULL), *s2, *s3;
	struct store_cert *a = NULL, *b = NULL, *c = NULL;
	struct ca *other = NULL;
	char err[256];

	ck_assert_int_eq(store_select(s1, "routed.example", &a), 0);
	/* same CA: the issued certificates carry over */
	s2 = load_store(test_ca, &r, 3000, 0, s1);
	store_unref(s1);
	ck_assert_int_eq(store_select(s2, "routed.example", &b), 0);
	ck_assert_ptr_eq(a, b);
	/* another CA object (a reloaded CA file): issue afresh */
	ck_assert_int_eq(ca_load(ca_pem, ca_key, &other, err, sizeof(err)), 0);
	s3 = load_store(other, &r, 3000, 0, s2);
	ca_unref(other); /* the store holds its own reference */
	store_unref(s2);
	ck_assert_int_eq(store_select(s3, "routed.example", &c), 0);
	ck_assert_ptr_ne(a, c);
	store_unref(s3);
	store_cert_unref(a);
	store_cert_unref(b);
	store_cert_unref(c);
}
END_TEST

/* ---- load errors ---- */

static void write_text(const char *name, const char *text, mode_t mode)
{
	char p[256], err[256];

	snprintf(p, sizeof(p), "%s/%s", certs, name);
	ck_assert_int_eq(ca_write_file(p, text, strlen(text), mode, err, sizeof(err)), 0);
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
	char p[256], err[256];
	gnutls_datum_t d;

	snprintf(p, sizeof(p), "%s/%s", certs, from);
	ck_assert_int_eq(ca_read_file(p, 0, &d, err, sizeof(err)), 0);
	snprintf(p, sizeof(p), "%s/%s", certs, to);
	ck_assert_int_eq(ca_write_file(p, d.data, d.size, mode, err, sizeof(err)), 0);
	gnutls_free(d.data);
}

static void chmod_in(const char *name, mode_t mode)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", certs, name);
	ck_assert_int_eq(chmod(p, mode), 0);
}

static void unlink_in(const char *name)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", certs, name);
	ck_assert_int_eq(unlink(p), 0);
}

enum bad {
	BAD_KEY_GROUP,
	BAD_KEY_OTHER,
	BAD_ORPHAN_KEY,
	BAD_ORPHAN_PEM,
	BAD_NAME,
	BAD_WILDCARD_TLD,
	BAD_WRONG_NAME,
	BAD_WRONG_KEY,
	BAD_DUPLICATE,
	BAD_NOT_PEM,
	BAD_NO_DIR,
	BAD_COUNT
};

static const struct {
	int rc;
	const char *in_message[2];
} bad_cases[BAD_COUNT] = {
    [BAD_KEY_GROUP] = {-EPERM, {"x.example.key", "chmod 600"}},
    [BAD_KEY_OTHER] = {-EPERM, {"x.example.key", "chmod 600"}},
    [BAD_ORPHAN_KEY] = {-ENOENT, {"z.example.key", "without certificate"}},
    [BAD_ORPHAN_PEM] = {-ENOENT, {"z.example.key", "no key"}},
    [BAD_NAME] = {-EINVAL, {"bad!name.pem", "rename"}},
    [BAD_WILDCARD_TLD] = {-EINVAL, {"_wildcard.com.pem", "two labels"}},
    [BAD_WRONG_NAME] = {-EINVAL, {"y.example.pem", "not valid for y.example"}},
    [BAD_WRONG_KEY] = {-EINVAL, {"x.example.key", "does not belong"}},
    [BAD_DUPLICATE] = {-EEXIST, {"x.example", "same domain"}},
    [BAD_NOT_PEM] = {-EINVAL, {"z.example.pem", "no usable PEM"}},
    [BAD_NO_DIR] = {-ENOENT, {"/nonexistent", "certificate directory"}},
};

START_TEST(test_load_errors)
{
	struct store_params p = {.dir = certs};
	struct store *s = (struct store *)&p; /* must be reset to NULL */
	char err[512] = "";

	switch (_i) {
	case BAD_KEY_GROUP:
		chmod_in("x.example.key", 0640);
		break;
	case BAD_KEY_OTHER:
		chmod_in("x.example.key", 0604);
		break;
	case BAD_ORPHAN_KEY:
		write_text("z.example.key", "x", 0600);
		break;
	case BAD_ORPHAN_PEM:
		copy_file("x.example.pem", "z.example.pem", 0644);
		break;
	case BAD_NAME:
		copy_file("x.example.pem", "bad!name.pem", 0644);
		copy_file("x.example.key", "bad!name.key", 0600);
		break;
	case BAD_WILDCARD_TLD:
		copy_file("x.example.pem", "_wildcard.com.pem", 0644);
		copy_file("x.example.key", "_wildcard.com.key", 0600);
		break;
	case BAD_WRONG_NAME:
		copy_file("x.example.pem", "y.example.pem", 0644);
		copy_file("x.example.key", "y.example.key", 0600);
		break;
	case BAD_WRONG_KEY:
		unlink_in("x.example.key");
		copy_file("_wildcard.example.com.key", "x.example.key", 0600);
		break;
	case BAD_DUPLICATE:
		copy_file("x.example.pem", "X.Example.pem", 0644);
		copy_file("x.example.key", "X.Example.key", 0600);
		break;
	case BAD_NOT_PEM:
		write_text("z.example.pem", "hello\n", 0644);
		copy_file("x.example.key", "z.example.key", 0600);
		break;
	case BAD_NO_DIR:
		p.dir = "/nonexistent";
		break;
	}
	ck_assert_int_eq(store_load(&p, &s, err, sizeof(err)), bad_cases[_i].rc);
	ck_assert_ptr_null(s);
	for (int k = 0; k < 2; k++)
		ck_assert_msg(strstr(err, bad_cases[_i].in_message[k]) != NULL,
			      "case %d: '%s' not in: %s", _i, bad_cases[_i].in_message[k], err);
}
END_TEST

START_TEST(test_load_ignores)
{
	struct store_params p = {.dir = certs};
	struct store *s = NULL;
	struct store_cert *c = NULL;
	char err[512] = "";

	write_text("README", "certificates for the relay\n", 0644);
	write_text(".hidden.pem", "not loaded\n", 0644);
	ck_assert_msg(store_load(&p, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(store_select(s, "x.example", &c), 0);
	store_cert_unref(c);
	store_unref(s);
	store_unref(NULL);
	store_cert_unref(NULL);
	store_binding_free(NULL);

	/* a CA without a route check is refused */
	p.ca = test_ca;
	ck_assert_int_eq(store_load(&p, &s, err, sizeof(err)), -EINVAL);
}
END_TEST

/* ---- TLS handshakes over memory ---- */

struct side {
	gnutls_session_t s;
	unsigned char in[65536];
	size_t len, off;
	struct side *peer;
};

static ssize_t side_push(gnutls_transport_ptr_t p, const void *buf, size_t n)
{
	struct side *to = ((struct side *)p)->peer;

	ck_assert_uint_le(to->len + n, sizeof(to->in));
	memcpy(to->in + to->len, buf, n);
	to->len += n;
	return (ssize_t)n;
}

static ssize_t side_pull(gnutls_transport_ptr_t p, void *buf, size_t n)
{
	struct side *me = p;

	if (me->off == me->len) {
		me->off = me->len = 0;
		gnutls_transport_set_errno(me->s, EAGAIN);
		return -1;
	}
	if (n > me->len - me->off)
		n = me->len - me->off;
	memcpy(buf, me->in + me->off, n);
	me->off += n;
	return (ssize_t)n;
}

static void side_init(struct side *sd, unsigned flags, const char *prio,
		      gnutls_certificate_credentials_t cred, struct store_binding *b)
{
	ck_assert_int_eq(gnutls_init(&sd->s, flags | GNUTLS_NONBLOCK), 0);
	ck_assert_int_eq(gnutls_priority_set_direct(sd->s, prio, NULL), 0);
	ck_assert_int_eq(gnutls_credentials_set(sd->s, GNUTLS_CRD_CERTIFICATE, cred), 0);
	gnutls_session_set_ptr(sd->s, b);
	gnutls_transport_set_ptr(sd->s, sd);
	gnutls_transport_set_push_function(sd->s, side_push);
	gnutls_transport_set_pull_function(sd->s, side_pull);
}

static int fatal(int rc)
{
	return rc < 0 && rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_INTERRUPTED;
}

/* Whether the session's peer certificate verifies against the test CA for name. */
static int peer_is(gnutls_session_t s, const char *name)
{
	unsigned status = 1, n = 0;
	const gnutls_datum_t *der = gnutls_certificate_get_peers(s, &n);
	gnutls_x509_crt_t crt;
	int ok;

	if (der == NULL || n == 0)
		return 0;
	/* the name as the client sees it in the SAN ... */
	ck_assert_int_eq(gnutls_x509_crt_init(&crt), 0);
	ck_assert_int_eq(gnutls_x509_crt_import(crt, &der[0], GNUTLS_X509_FMT_DER), 0);
	ok = gnutls_x509_crt_check_hostname(crt, name);
	gnutls_x509_crt_deinit(crt);
	/* ... and the whole chain as GnuTLS verifies it */
	if (gnutls_certificate_verify_peers3(s, name, &status) < 0 || status != 0)
		ok = 0;
	return ok;
}

static const char *const prios[] = {"NORMAL:-VERS-ALL:+VERS-TLS1.3",
				    "NORMAL:-VERS-ALL:+VERS-TLS1.2"};

static const struct {
	const char *sni;	 /* client's SNI, or NULL */
	const char *to;		 /* server binding's name (stream 'to'), or NULL */
	const char *from;	 /* client binding's name (stream 'from'), or NULL */
	int require_client;	 /* server requires a client certificate */
	const char *server_cert; /* name the client must see, NULL: handshake fails */
	const char *client_cert; /* name the server must see, or NULL for none */
} hs_cases[] = {
    {"x.example", NULL, NULL, 0, "x.example", NULL},			     /* SNI */
    {NULL, "x.example", NULL, 0, "x.example", NULL},			     /* STARTTLS, no SNI */
    {"a.example.com", "x.example", NULL, 0, "a.example.com", NULL},	     /* SNI beats 'to' */
    {"unknown.example", "x.example", NULL, 0, "x.example", NULL},	     /* SNI fits nothing */
    {"routed.example", NULL, NULL, 0, "routed.example", NULL},		     /* CA-issued */
    {"unknown.example", NULL, NULL, 0, NULL, NULL},			     /* nothing: fails */
    {"unrouted.example", NULL, NULL, 0, NULL, NULL},			     /* no route: fails */
    {"x.example", NULL, "routed.example", 1, "x.example", "routed.example"}, /* client cert */
    {"x.example", NULL, "a.example.com", 1, "x.example", "a.example.com"},
    {"x.example", NULL, NULL, 0, "x.example", NULL}, /* asked, none for no 'from' */
};

START_TEST(test_handshake)
{
	const size_t ncase = sizeof(hs_cases) / sizeof(hs_cases[0]);
	const char *prio = prios[(size_t)_i / ncase];
	size_t k = (size_t)_i % ncase;
	struct routes r = {{"routed.example"}, 0};
	struct store *s = load_store(test_ca, &r, 3000, 0, NULL);
	gnutls_certificate_credentials_t scred, ccred;
	struct store_binding *sb, *cb;
	struct side *srv = calloc(1, sizeof(*srv)), *cli = calloc(1, sizeof(*cli));
	int rc_s = GNUTLS_E_AGAIN, rc_c = GNUTLS_E_AGAIN;

	ck_assert_int_eq(gnutls_certificate_allocate_credentials(&scred), 0);
	ck_assert_int_eq(gnutls_certificate_allocate_credentials(&ccred), 0);
	gnutls_certificate_set_retrieve_function2(scred, store_retrieve_callback);
	gnutls_certificate_set_retrieve_function2(ccred, store_retrieve_callback);
	ck_assert_int_eq(gnutls_certificate_set_x509_trust_file(scred, ca_pem, GNUTLS_X509_FMT_PEM),
			 1);
	ck_assert_int_eq(gnutls_certificate_set_x509_trust_file(ccred, ca_pem, GNUTLS_X509_FMT_PEM),
			 1);
	sb = store_binding_new(s, STORE_SERVER);
	cb = store_binding_new(s, STORE_CLIENT);
	ck_assert_ptr_nonnull(sb);
	ck_assert_ptr_nonnull(cb);
	store_unref(s); /* the bindings keep it alive */
	ck_assert_int_eq(store_binding_set_name(sb, hs_cases[k].to), 0);
	ck_assert_int_eq(store_binding_set_name(cb, hs_cases[k].from), 0);
	ck_assert_ptr_null(store_binding_presented(sb));

	srv->peer = cli;
	cli->peer = srv;
	side_init(srv, GNUTLS_SERVER, prio, scred, sb);
	side_init(cli, GNUTLS_CLIENT, prio, ccred, cb);
	gnutls_certificate_server_set_request(
	    srv->s, hs_cases[k].require_client ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
	if (hs_cases[k].sni != NULL)
		ck_assert_int_eq(gnutls_server_name_set(cli->s, GNUTLS_NAME_DNS, hs_cases[k].sni,
							strlen(hs_cases[k].sni)),
				 0);
	for (int i = 0; i < 50 && (rc_s != 0 || rc_c != 0); i++) {
		if (rc_c != 0)
			rc_c = gnutls_handshake(cli->s);
		if (rc_s != 0)
			rc_s = gnutls_handshake(srv->s);
		if (fatal(rc_c) || fatal(rc_s))
			break;
	}
	if (hs_cases[k].server_cert == NULL) {
		ck_assert(fatal(rc_s));
		ck_assert_ptr_null(store_binding_presented(sb));
		ck_assert_str_eq(store_binding_sought(sb), hs_cases[k].sni);
	} else {
		ck_assert_msg(rc_s == 0 && rc_c == 0, "server %s, client %s", gnutls_strerror(rc_s),
			      gnutls_strerror(rc_c));
		ck_assert(peer_is(cli->s, hs_cases[k].server_cert));
		ck_assert_ptr_nonnull(store_binding_presented(sb));
		if (hs_cases[k].client_cert != NULL) {
			ck_assert(peer_is(srv->s, hs_cases[k].client_cert));
		} else {
			ck_assert_ptr_null(gnutls_certificate_get_peers(srv->s, NULL));
			ck_assert_ptr_null(store_binding_presented(cb));
		}
	}
	gnutls_deinit(srv->s);
	gnutls_deinit(cli->s);
	store_binding_free(sb);
	store_binding_free(cb);
	gnutls_certificate_free_credentials(scred);
	gnutls_certificate_free_credentials(ccred);
	free(srv);
	free(cli);
}
END_TEST

START_TEST(test_binding_misuse)
{
	struct store *s = load_store(NULL, NULL, 0, 0, NULL);
	struct store_binding *b = store_binding_new(s, STORE_SERVER);
	gnutls_session_t sess;
	gnutls_pcert_st *pc = (gnutls_pcert_st *)&sess;
	gnutls_privkey_t key = (gnutls_privkey_t)&sess;
	unsigned n = 7;

	store_unref(s);
	ck_assert_int_eq(store_binding_set_name(b, "not a domain"), -EINVAL);
	ck_assert_int_eq(store_binding_set_name(b, NULL), 0);
	/* a session nobody bound: an error, and nothing handed out */
	ck_assert_int_eq(gnutls_init(&sess, GNUTLS_SERVER), 0);
	ck_assert_int_eq(store_retrieve_callback(sess, NULL, 0, NULL, 0, &pc, &n, &key), -1);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(pc);
	ck_assert_ptr_null(key);
	/* bound, no SNI, no name: no certificate, no error */
	gnutls_session_set_ptr(sess, b);
	ck_assert_int_eq(store_retrieve_callback(sess, NULL, 0, NULL, 0, &pc, &n, &key), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_str_eq(store_binding_sought(b), "");
	/* bound, with a name */
	ck_assert_int_eq(store_binding_set_name(b, "x.example"), 0);
	ck_assert_int_eq(store_retrieve_callback(sess, NULL, 0, NULL, 0, &pc, &n, &key), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(store_binding_presented(b), "x.example");
	gnutls_deinit(sess);
	store_binding_free(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;
	const int nhs = (int)(sizeof(hs_cases) / sizeof(hs_cases[0]) * 2);

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_select_dir, 0, sizeof(dir_cases) / sizeof(dir_cases[0]));
	tcase_add_test(tc, test_ca_routed_only);
	tcase_add_test(tc, test_ca_reissue);
	tcase_add_test(tc, test_ca_cache_bound);
	tcase_add_test(tc, test_ca_cache_many);
	tcase_add_test(tc, test_reload);
	tcase_add_loop_test(tc, test_load_errors, 0, BAD_COUNT);
	tcase_add_test(tc, test_load_ignores);
	tcase_add_loop_test(tc, test_handshake, 0, nhs);
	tcase_add_test(tc, test_binding_misuse);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
