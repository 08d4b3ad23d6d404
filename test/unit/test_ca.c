/* Unit tests for ca: a CA made at test time in a mkdtemp directory, leaves
 * issued from it and taken apart again with GnuTLS. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509-ext.h>
#include <gnutls/x509.h>

#include "ca.h"

#define OID_SRV "1.3.6.1.5.5.7.8.7"
#define OID_XMPPADDR "1.3.6.1.5.5.7.8.5"
#define DAY 86400

static char dir[64], ca_pem[128], ca_key[128];
static time_t now;

static void rm_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char p[512];

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(path);
}

static void setup(void)
{
	char err[256] = "";

	now = time(NULL);
	snprintf(dir, sizeof(dir), "/tmp/xt-ca-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", dir);
	snprintf(ca_key, sizeof(ca_key), "%s/ca.key", dir);
	ck_assert_msg(
	    ca_create(ca_pem, ca_key, "Test enclave CA", now, 30 * DAY, err, sizeof(err)) == 0,
	    "%s", err);
}

static void teardown(void)
{
	rm_tree(dir);
}

static struct ca *load(void)
{
	struct ca *c = NULL;
	char err[256] = "";

	ck_assert_msg(ca_load(ca_pem, ca_key, &c, err, sizeof(err)) == 0, "%s", err);
	return c;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* The SAN entries of crt: counts of DNS names equal to dns, and the raw
 * otherName values for oid (copied to val when found). */
struct sans {
	int dns_hits, ndns, nother, srv, xmpp;
	char srv_val[300], xmpp_val[300];
	unsigned critical;
};

static void get_sans(gnutls_x509_crt_t crt, const char *dns, struct sans *out)
{
	gnutls_subject_alt_names_t sans;
	gnutls_datum_t ext = {NULL, 0}, san, oid;
	unsigned type;

	memset(out, 0, sizeof(*out));
	ck_assert_int_eq(gnutls_x509_crt_get_extension_by_oid2(crt, GNUTLS_X509EXT_OID_SAN, 0, &ext,
							       &out->critical),
			 0);
	ck_assert_int_eq(gnutls_subject_alt_names_init(&sans), 0);
	ck_assert_int_eq(gnutls_x509_ext_import_subject_alt_names(&ext, sans, 0), 0);
	for (unsigned i = 0; gnutls_subject_alt_names_get(sans, i, &type, &san, &oid) >= 0; i++) {
		if (type == GNUTLS_SAN_DNSNAME) {
			out->ndns++;
			if (san.size == strlen(dns) && memcmp(san.data, dns, san.size) == 0)
				out->dns_hits++;
		} else if (type == GNUTLS_SAN_OTHERNAME) {
			out->nother++;
			if (strcmp((const char *)oid.data, OID_SRV) == 0) {
				out->srv++;
				memcpy(out->srv_val, san.data, san.size);
			} else if (strcmp((const char *)oid.data, OID_XMPPADDR) == 0) {
				out->xmpp++;
				memcpy(out->xmpp_val, san.data, san.size);
			}
		}
	}
	gnutls_subject_alt_names_deinit(sans);
	gnutls_free(ext.data);
}

static void assert_verifies(struct ca *c, gnutls_x509_crt_t crt)
{
	gnutls_x509_crt_t anchor = ca_cert(c);
	unsigned status = 1;

	ck_assert_int_eq(gnutls_x509_crt_verify(crt, &anchor, 1, 0, &status), 0);
	ck_assert_uint_eq(status, 0);
}

START_TEST(test_create_files)
{
	char err[256] = "";
	gnutls_datum_t before = {NULL, 0}, after = {NULL, 0};
	struct ca *c;
	gnutls_x509_crt_t crt;
	unsigned critical = 0, is_ca = 0, usage = 0;
	int pathlen = -1;

	ck_assert_uint_eq(mode_of(ca_key), 0600);
	ck_assert_uint_eq(mode_of(ca_pem), 0644);
	c = load();
	crt = ca_cert(c);
	ck_assert_int_ge(gnutls_x509_crt_get_basic_constraints(crt, &critical, &is_ca, &pathlen),
			 0);
	ck_assert_uint_eq(is_ca, 1);
	ck_assert_uint_eq(critical, 1);
	ck_assert_int_eq(pathlen, 0);
	ck_assert_int_ge(gnutls_x509_crt_get_key_usage(crt, &usage, &critical), 0);
	ck_assert_uint_eq(usage, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
	ck_assert_int_eq(gnutls_x509_crt_get_pk_algorithm(crt, NULL), GNUTLS_PK_ECDSA);
	ck_assert_int_eq(gnutls_x509_crt_get_expiration_time(crt), now + 30 * DAY);
	ck_assert_int_eq(gnutls_x509_crt_get_activation_time(crt), now - 300);
	ck_assert(gnutls_x509_crt_check_issuer(crt, crt));
	ca_unref(c);

	/* never over an existing CA, and the existing files stay as they were */
	ck_assert_int_eq(ca_read_file(ca_key, 1, &before, err, sizeof(err)), 0);
	ck_assert_int_eq(ca_create(ca_pem, ca_key, "Other", now, DAY, err, sizeof(err)), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err, ca_key));
	ck_assert_int_eq(ca_read_file(ca_key, 1, &after, err, sizeof(err)), 0);
	ck_assert_uint_eq(before.size, after.size);
	ck_assert(memcmp(before.data, after.data, before.size) == 0);
	gnutls_free(before.data);
	gnutls_free(after.data);
	ck_assert_int_eq(ca_create(ca_pem, ca_key, "", now, DAY, err, sizeof(err)), -EINVAL);
}
END_TEST

/* flags -> whether SRV-ID / xmppAddr must be there */
static const unsigned issue_flags[] = {0, CA_ISSUE_SRV, CA_ISSUE_XMPPADDR,
				       CA_ISSUE_SRV | CA_ISSUE_XMPPADDR};

START_TEST(test_issue)
{
	unsigned flags = issue_flags[_i];
	struct ca *c = load();
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	struct sans s;
	char cn[128], oid[128];
	size_t sz = sizeof(cn);
	unsigned char serial[32];
	size_t serial_len = sizeof(serial);
	unsigned usage = 0, critical = 0, bits = 0;
	int have_server = 0, have_client = 0;

	ck_assert_int_eq(ca_issue(c, "Leaf.Example.", now, 3600, flags, &crt, &key), 0);
	assert_verifies(c, crt);
	ck_assert(gnutls_x509_crt_check_hostname(crt, "leaf.example"));
	ck_assert(!gnutls_x509_crt_check_hostname(crt, "other.example"));
	ck_assert_int_eq(
	    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &sz), 0);
	ck_assert_str_eq(cn, "leaf.example");
	get_sans(crt, "leaf.example", &s);
	ck_assert_int_eq(s.ndns, 1);
	ck_assert_int_eq(s.dns_hits, 1);
	ck_assert_uint_eq(s.critical, 0);
	/* ejabberd 23.01: never an xmppAddr unless asked */
	ck_assert_int_eq(s.xmpp, (flags & CA_ISSUE_XMPPADDR) ? 1 : 0);
	ck_assert_int_eq(s.srv, (flags & CA_ISSUE_SRV) ? 1 : 0);
	if (flags & CA_ISSUE_SRV) /* DER IA5String */
		ck_assert(memcmp(s.srv_val, "\x16\x19_xmpp-server.leaf.example", 27) == 0);
	if (flags & CA_ISSUE_XMPPADDR) /* DER UTF8String */
		ck_assert(memcmp(s.xmpp_val, "\x0c\x0cleaf.example", 14) == 0);
	/* lifetime */
	ck_assert_int_eq(gnutls_x509_crt_get_activation_time(crt), now - 300);
	ck_assert_int_eq(gnutls_x509_crt_get_expiration_time(crt), now + 3600);
	/* key usage and extended key usage */
	ck_assert_int_ge(gnutls_x509_crt_get_key_usage(crt, &usage, &critical), 0);
	ck_assert_uint_eq(usage, GNUTLS_KEY_DIGITAL_SIGNATURE);
	for (unsigned i = 0;; i++) {
		sz = sizeof(oid);
		if (gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &sz, &critical) < 0)
			break;
		have_server |= strcmp(oid, GNUTLS_KP_TLS_WWW_SERVER) == 0;
		have_client |= strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT) == 0;
	}
	ck_assert(have_server && have_client);
	/* a random, positive 16-byte serial; ECDSA P-256; not a CA */
	ck_assert_int_eq(gnutls_x509_crt_get_serial(crt, serial, &serial_len), 0);
	ck_assert_uint_eq(serial_len, 16);
	ck_assert_uint_eq(serial[0] & 0x80, 0);
	ck_assert_int_eq(gnutls_x509_crt_get_pk_algorithm(crt, &bits), GNUTLS_PK_ECDSA);
	ck_assert_int_eq(gnutls_x509_privkey_get_pk_algorithm(key), GNUTLS_PK_ECDSA);
	ck_assert_int_eq(gnutls_x509_crt_get_ca_status(crt, &critical), 0);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	ca_unref(c);
}
END_TEST

START_TEST(test_issue_names)
{
	struct ca *c = load();
	gnutls_x509_crt_t crt, crt2;
	gnutls_x509_privkey_t key, key2;
	unsigned char s1[32], s2[32];
	size_t l1 = sizeof(s1), l2 = sizeof(s2);
	char long_name[128], cn[128];
	size_t sz = sizeof(cn);
	struct sans s;

	/* wildcard: one label, no otherNames, at least two labels under it */
	ck_assert_int_eq(ca_issue(c, "*.W.example", now, 3600, 0, &crt, &key), 0);
	assert_verifies(c, crt);
	get_sans(crt, "*.w.example", &s);
	ck_assert_int_eq(s.dns_hits, 1);
	ck_assert(gnutls_x509_crt_check_hostname(crt, "a.w.example"));
	ck_assert(!gnutls_x509_crt_check_hostname(crt, "b.a.w.example"));
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	ck_assert_int_eq(ca_issue(c, "*.example", now, 3600, 0, &crt, &key), -EINVAL);
	ck_assert_int_eq(ca_issue(c, "*.w.example", now, 3600, CA_ISSUE_SRV, &crt, &key), -EINVAL);
	ck_assert_ptr_null(crt);
	ck_assert_int_eq(ca_issue(c, "a..example", now, 3600, 0, &crt, &key), -EINVAL);
	ck_assert_int_eq(ca_issue(c, "a.example", now, 0, 0, &crt, &key), -EINVAL);

	/* IDN: the A-label */
	ck_assert_int_eq(ca_issue(c, "bücher.example", now, 3600, 0, &crt, &key), 0);
	get_sans(crt, "xn--bcher-kva.example", &s);
	ck_assert_int_eq(s.dns_hits, 1);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);

	/* longer than a CN may be: empty subject, critical SAN */
	memset(long_name, 'a', 60);
	strcpy(long_name + 60, ".example.org");
	ck_assert_int_eq(ca_issue(c, long_name, now, 3600, 0, &crt, &key), 0);
	assert_verifies(c, crt);
	ck_assert_int_lt(
	    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &sz), 0);
	get_sans(crt, long_name, &s);
	ck_assert_int_eq(s.dns_hits, 1);
	ck_assert_uint_eq(s.critical, 1);
	ck_assert(gnutls_x509_crt_check_hostname(crt, long_name));

	/* two issues: different keys and serials */
	ck_assert_int_eq(ca_issue(c, long_name, now, 3600, 0, &crt2, &key2), 0);
	ck_assert_int_eq(gnutls_x509_crt_get_serial(crt, s1, &l1), 0);
	ck_assert_int_eq(gnutls_x509_crt_get_serial(crt2, s2, &l2), 0);
	ck_assert(l1 != l2 || memcmp(s1, s2, l1) != 0);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	gnutls_x509_crt_deinit(crt2);
	gnutls_x509_privkey_deinit(key2);
	ca_unref(c);
}
END_TEST

START_TEST(test_issue_lifetime_bounds)
{
	struct ca *c = load();
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	time_t ca_end = gnutls_x509_crt_get_expiration_time(ca_cert(c));

	/* never outlives the CA */
	ck_assert_int_eq(ca_issue(c, "a.example", now, 365 * DAY, 0, &crt, &key), 0);
	ck_assert_int_eq(gnutls_x509_crt_get_expiration_time(crt), ca_end);
	assert_verifies(c, crt);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	/* an expired CA issues nothing */
	ck_assert_int_eq(ca_issue(c, "a.example", ca_end + 1, 3600, 0, &crt, &key), -EKEYEXPIRED);
	ck_assert_ptr_null(crt);
	ck_assert_ptr_null(key);
	ca_unref(c);
}
END_TEST

START_TEST(test_write_pair)
{
	struct ca *c = load();
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	char cert_file[160], key_file[160], err[256] = "";
	const gnutls_x509_crt_t *chain;
	unsigned n;

	snprintf(cert_file, sizeof(cert_file), "%s/leaf.example.pem", dir);
	snprintf(key_file, sizeof(key_file), "%s/leaf.example.key", dir);
	ck_assert_int_eq(ca_issue(c, "leaf.example", now, 3600, 0, &crt, &key), 0);
	chain = ca_chain(c, &n);
	ck_assert_uint_eq(n, 0); /* self-signed CA: not sent */
	umask(077);		 /* the modes are exact whatever the umask */
	ck_assert_msg(ca_write_pair(cert_file, key_file, crt, chain, n, key, err, sizeof(err)) == 0,
		      "%s", err);
	umask(022);
	ck_assert_uint_eq(mode_of(key_file), 0600);
	ck_assert_uint_eq(mode_of(cert_file), 0644);
	/* not over existing files; the existing key is left alone */
	ck_assert_int_eq(ca_write_pair(cert_file, key_file, crt, chain, n, key, err, sizeof(err)),
			 -EEXIST);
	ck_assert_uint_eq(mode_of(key_file), 0600);
	/* a certificate that cannot be written takes its new key with it */
	unlink(key_file);
	ck_assert_int_eq(ca_write_pair(cert_file, key_file, crt, chain, n, key, err, sizeof(err)),
			 -EEXIST);
	ck_assert_int_eq(access(key_file, F_OK), -1);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	ca_unref(c);
}
END_TEST

START_TEST(test_load_errors)
{
	struct ca *c = NULL, *good;
	char err[512] = "", leaf_pem[160], leaf_key[160], other_pem[160], other_key[160];
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;

	/* a key others can read */
	ck_assert_int_eq(chmod(ca_key, 0640), 0);
	ck_assert_int_eq(ca_load(ca_pem, ca_key, &c, err, sizeof(err)), -EPERM);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(err, ca_key));
	ck_assert_ptr_nonnull(strstr(err, "chmod 600"));
	ck_assert_int_eq(chmod(ca_key, 0600), 0);

	/* missing files */
	ck_assert_int_eq(ca_load("/nonexistent/ca.pem", ca_key, &c, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/ca.pem"));

	/* a leaf is not a CA */
	good = load();
	snprintf(leaf_pem, sizeof(leaf_pem), "%s/leaf.pem", dir);
	snprintf(leaf_key, sizeof(leaf_key), "%s/leaf.key", dir);
	ck_assert_int_eq(ca_issue(good, "leaf.example", now, 3600, 0, &crt, &key), 0);
	ck_assert_int_eq(ca_write_pair(leaf_pem, leaf_key, crt, NULL, 0, key, err, sizeof(err)), 0);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	ca_unref(good);
	ck_assert_int_eq(ca_load(leaf_pem, leaf_key, &c, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not a CA"));

	/* a key from another CA */
	snprintf(other_pem, sizeof(other_pem), "%s/other.pem", dir);
	snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
	ck_assert_int_eq(ca_create(other_pem, other_key, "Other", now, DAY, err, sizeof(err)), 0);
	ck_assert_int_eq(ca_load(ca_pem, other_key, &c, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "does not belong"));

	/* not PEM at all */
	ck_assert_int_eq(ca_load(ca_key, ca_key, &c, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, ca_key));
	ck_assert_ptr_null(c);
	ca_unref(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ca");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_create_files);
	tcase_add_loop_test(tc, test_issue, 0, sizeof(issue_flags) / sizeof(issue_flags[0]));
	tcase_add_test(tc, test_issue_names);
	tcase_add_test(tc, test_issue_lifetime_bounds);
	tcase_add_test(tc, test_write_pair);
	tcase_add_test(tc, test_load_errors);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
