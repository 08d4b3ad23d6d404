/* xtrunkctl: the control tool installed beside xtrunkd. The certificate
 * commands live here: create an enclave CA, issue certificates from it
 * (for the relay's certificate directory or for the enclave's leaves), and
 * print a certificate's SHA-256 fingerprint and public-key pin. The
 * operations commands (check, route, status, reload, log, trace, metrics)
 * are in ops.c.
 *
 * Exit status: 0 success, 1 failure (the message names the file and the
 * fix), 2 usage error. */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "ca.h"
#include "domain.h"
#include "leafconf.h"
#include "ops.h"

#define EXIT_USAGE 2
#define DAY 86400
#define DAYS_MAX 36500
#define CA_DAYS 3650
#define LEAF_DAYS 365
#define CA_NAME "xtrunk enclave CA"
#define DEFAULT_CONFIG "/etc/xtrunk/xtrunkd.conf"

static const char usage_text[] =
    "usage: xtrunkctl check [-f CONFIG]\n"
    "       xtrunkctl route [-f CONFIG] DOMAIN\n"
    "       xtrunkctl [-f CONFIG | -s SOCKET] status | reload | metrics | ping\n"
    "       xtrunkctl [-f CONFIG | -s SOCKET] log err|warning|info|debug\n"
    "       xtrunkctl [-f CONFIG | -s SOCKET] trace stanza|control|metrics|all on|off\n"
    "       xtrunkctl ca-create -o DIR [-n NAME] [-d DAYS]\n"
    "       xtrunkctl issue -c CA.pem -k CA.key -o DIR [--srv] [--xmppaddr] [-d DAYS] "
    "DOMAIN...\n"
    "       xtrunkctl fingerprint FILE.pem\n"
    "       xtrunkctl leaf-config [-f CONFIG] --leaf DOMAIN [--format FORMAT]\n"
    "                 [--relay-address [NAME=]ADDRESS]... [-o DIR]\n"
    "\n"
    "  check        test the configuration like xtrunkd -n (default " DEFAULT_CONFIG ")\n"
    "  route        which route, peer, next hop, policy and certificate DOMAIN gets\n"
    "  status ...   ask the running daemon over its control socket (control.socket\n"
    "               of CONFIG, or SOCKET)\n"
    "  ca-create    make a self-signed enclave CA: DIR/ca.pem and DIR/ca.key\n"
    "               (default name \"" CA_NAME "\", "
    "3650 days)\n"
    "  issue        issue DIR/DOMAIN.pem and DIR/DOMAIN.key from the CA (default 365\n"
    "               days); *.DOMAIN writes DIR/_wildcard.DOMAIN.pem and .key\n"
    "      --srv       add the SRV-ID _xmpp-server.DOMAIN\n"
    "      --xmppaddr  add id-on-xmppAddr (ejabberd 23.01 crashes on it)\n"
    "  fingerprint  print the SHA-256 fingerprint and public-key pin of the first\n"
    "               certificate in FILE.pem\n"
    "  leaf-config  the DNS records, Prosody and ejabberd settings and trust anchor\n"
    "               a leaf behind the relay needs, from the relay's routes; FORMAT\n"
    "               dnsmasq, bind, prosody, ejabberd, trust or all (default)\n";

static int usage(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "xtrunkctl: %s\n", why);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

static int parse_days(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < 1 || v > DAYS_MAX)
		return -1;
	*out = (unsigned)v * DAY;
	return 0;
}

/* Create dir and any missing parents, like mkdir -p. */
static int ensure_dir(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	size_t i;

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
		fprintf(stderr, "xtrunkctl: %s: path too long\n", dir);
		return -ENAMETOOLONG;
	}
	for (i = 1; path[i] != '\0'; i++) {
		if (path[i] != '/')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			fprintf(stderr,
				"xtrunkctl: %s: cannot create the directory: %s; check the path\n",
				path, strerror(errno));
			return -errno;
		}
		path[i] = '/';
	}
	if (mkdir(dir, 0755) == 0)
		return 0;
	if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	fprintf(stderr, "xtrunkctl: %s: cannot create the directory: %s; check the path\n", dir,
		strerror(errno));
	return -1;
}

static int join(char *out, size_t outsz, const char *dir, const char *name, const char *ext)
{
	int n = snprintf(out, outsz, "%s/%s%s", dir, name, ext);

	if (n < 0 || (size_t)n >= outsz) {
		fprintf(stderr, "xtrunkctl: %s/%s%s: path too long\n", dir, name, ext);
		return -1;
	}
	return 0;
}

static int cmd_ca_create(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *dir = NULL, *name = CA_NAME;
	unsigned lifetime = CA_DAYS * DAY;
	char cert[4096], key[4096], err[512];
	int c;

	while ((c = getopt_long(argc, argv, "o:n:d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			dir = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'd':
			if (parse_days(optarg, &lifetime) < 0)
				return usage("-d wants a number of days from 1 to 36500");
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return usage(NULL);
		}
	}
	if (dir == NULL)
		return usage("ca-create needs -o DIR");
	if (optind != argc)
		return usage("ca-create takes no operands");
	if (join(cert, sizeof(cert), dir, "ca", ".pem") < 0 ||
	    join(key, sizeof(key), dir, "ca", ".key") < 0 || ensure_dir(dir) < 0)
		return 1;
	if (ca_create(cert, key, name, time(NULL), lifetime, err, sizeof(err)) < 0) {
		fprintf(stderr, "xtrunkctl: %s\n", err);
		return 1;
	}
	printf("wrote %s (certificate: give it to the leaves as a trust anchor)\n"
	       "wrote %s (private key, mode 0600: keep it on the relay only)\n",
	       cert, key);
	return 0;
}

/* Issue one certificate; returns 0 or -1 after a message. */
static int issue_one(struct ca *ca, const char *dir, const char *domain, unsigned lifetime,
		     unsigned flags)
{
	char norm[DOMAIN_MAX + 1], file[DOMAIN_MAX + 16], cert[8192], key[8192], err[512];
	const gnutls_x509_crt_t *chain;
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t pkey;
	int wildcard = strncmp(domain, "*.", 2) == 0;
	const char *base = domain + (wildcard ? 2 : 0);
	time_t now = time(NULL);
	unsigned n;
	int rc;

	if (domain_normalise(base, strlen(base), norm, sizeof(norm)) < 0) {
		fprintf(stderr, "xtrunkctl: %s: not a domain name; give DOMAIN or *.DOMAIN\n",
			domain);
		return -1;
	}
	snprintf(file, sizeof(file), "%s%s", wildcard ? "_wildcard." : "", norm);
	if (join(cert, sizeof(cert), dir, file, ".pem") < 0 ||
	    join(key, sizeof(key), dir, file, ".key") < 0)
		return -1;
	rc = ca_issue(ca, domain, now, lifetime, flags, &crt, &pkey);
	if (rc == -EINVAL && wildcard) {
		fprintf(stderr,
			"xtrunkctl: %s: a wildcard needs two labels under it (*.example.com) and "
			"takes no --srv or --xmppaddr; issue it in a command of its own\n",
			domain);
		return -1;
	}
	if (rc == -EKEYEXPIRED) {
		fprintf(stderr, "xtrunkctl: the CA has expired; make a new one with ca-create\n");
		return -1;
	}
	if (rc < 0) {
		fprintf(stderr, "xtrunkctl: %s: cannot issue: %s\n", domain, strerror(-rc));
		return -1;
	}
	chain = ca_chain(ca, &n);
	rc = ca_write_pair(cert, key, crt, chain, n, pkey, err, sizeof(err));
	if (rc == 0) {
		time_t until = gnutls_x509_crt_get_expiration_time(crt);

		printf("wrote %s and %s\n", cert, key);
		if (until < now + (time_t)lifetime)
			fprintf(stderr, "xtrunkctl: %s: validity cut to the CA's own expiry\n",
				cert);
	} else {
		fprintf(stderr, "xtrunkctl: %s\n", err);
	}
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(pkey);
	return rc < 0 ? -1 : 0;
}

static int cmd_issue(int argc, char **argv)
{
	enum { OPT_SRV = 256, OPT_XMPPADDR };
	static const struct option opts[] = {{"srv", no_argument, NULL, OPT_SRV},
					     {"xmppaddr", no_argument, NULL, OPT_XMPPADDR},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *cert = NULL, *key = NULL, *dir = NULL;
	unsigned lifetime = LEAF_DAYS * DAY, flags = 0;
	struct ca *ca;
	char err[512];
	int c, failed = 0;

	while ((c = getopt_long(argc, argv, "c:k:o:d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'o':
			dir = optarg;
			break;
		case 'd':
			if (parse_days(optarg, &lifetime) < 0)
				return usage("-d wants a number of days from 1 to 36500");
			break;
		case OPT_SRV:
			flags |= CA_ISSUE_SRV;
			break;
		case OPT_XMPPADDR:
			flags |= CA_ISSUE_XMPPADDR;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return usage(NULL);
		}
	}
	if (cert == NULL || key == NULL || dir == NULL)
		return usage("issue needs -c CA.pem, -k CA.key and -o DIR");
	if (optind >= argc)
		return usage("issue needs at least one DOMAIN");
	if (ca_load(cert, key, &ca, err, sizeof(err)) < 0) {
		fprintf(stderr, "xtrunkctl: %s\n", err);
		return 1;
	}
	if (ensure_dir(dir) < 0) {
		ca_unref(ca);
		return 1;
	}
	/* one bad domain does not stop the others; the exit status tells */
	for (int i = optind; i < argc; i++)
		if (issue_one(ca, dir, argv[i], lifetime, flags) < 0)
			failed = 1;
	ca_unref(ca);
	return failed;
}

static void print_hex_colon(const unsigned char *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%s%02X", i ? ":" : "", d[i]);
	putchar('\n');
}

static int cmd_fingerprint(int argc, char **argv)
{
	unsigned char fp[32], pin[32];
	size_t fplen = sizeof(fp);
	gnutls_datum_t pem = {NULL, 0}, spki = {NULL, 0}, b64 = {NULL, 0}, hex = {NULL, 0};
	gnutls_datum_t dn = {NULL, 0}, digest = {pin, sizeof(pin)};
	gnutls_x509_crt_t crt = NULL;
	gnutls_pubkey_t pub = NULL;
	const char *file;
	char err[512];
	int rc, status = 1;

	if (argc != 2)
		return usage("fingerprint takes one FILE.pem");
	file = argv[1];
	if (ca_read_file(file, 0, &pem, err, sizeof(err)) < 0) {
		fprintf(stderr, "xtrunkctl: %s\n", err);
		return 1;
	}
	if ((rc = gnutls_x509_crt_init(&crt)) < 0 ||
	    (rc = gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM)) < 0) {
		fprintf(stderr, "xtrunkctl: %s: no PEM certificate (%s); give a certificate file\n",
			file, gnutls_strerror(rc));
		goto out;
	}
	/* the pin is over the DER SubjectPublicKeyInfo (RFC 7469 section 2.4) */
	if ((rc = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &fplen)) < 0 ||
	    (rc = gnutls_pubkey_init(&pub)) < 0 ||
	    (rc = gnutls_pubkey_import_x509(pub, crt, 0)) < 0 ||
	    (rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki)) < 0 ||
	    (rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, pin)) < 0 ||
	    (rc = gnutls_base64_encode2(&digest, &b64)) < 0 ||
	    (rc = gnutls_hex_encode2(&digest, &hex)) < 0) {
		fprintf(stderr, "xtrunkctl: %s: cannot compute: %s\n", file, gnutls_strerror(rc));
		goto out;
	}
	if (gnutls_x509_crt_get_dn3(crt, &dn, 0) >= 0)
		printf("subject=%.*s\n", (int)dn.size, (const char *)dn.data);
	printf("sha256-fingerprint=");
	print_hex_colon(fp, fplen);
	printf("pin-sha256=sha256//%.*s\n", (int)b64.size, (const char *)b64.data);
	printf("pin-sha256-hex=%.*s\n", (int)hex.size, (const char *)hex.data);
	status = 0;
out:
	gnutls_free(dn.data);
	gnutls_free(hex.data);
	gnutls_free(b64.data);
	gnutls_free(spki.data);
	if (pub != NULL)
		gnutls_pubkey_deinit(pub);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	gnutls_free(pem.data);
	return status;
}

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2)
		return usage(NULL);
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	/* each command parses its own options from argv + 1; getopt names
	 * argv[0] in its messages, so make that "xtrunkctl COMMAND" */
	if (strcmp(cmd, "ca-create") == 0) {
		argv[1] = (char *)"xtrunkctl ca-create";
		return cmd_ca_create(argc - 1, argv + 1);
	}
	if (strcmp(cmd, "issue") == 0) {
		argv[1] = (char *)"xtrunkctl issue";
		return cmd_issue(argc - 1, argv + 1);
	}
	if (strcmp(cmd, "fingerprint") == 0)
		return cmd_fingerprint(argc - 1, argv + 1);
	if (strcmp(cmd, "leaf-config") == 0) {
		argv[1] = (char *)"xtrunkctl leaf-config";
		return leafconf_main(argc - 1, argv + 1);
	}
	if (strcmp(cmd, "check") == 0)
		return ops_check(argc - 1, argv + 1);
	if (strcmp(cmd, "route") == 0)
		return ops_route(argc - 1, argv + 1);
	/* -f / -s may come before the command too */
	if (strcmp(cmd, "-f") == 0 || strcmp(cmd, "-s") == 0) {
		int i = 1;

		while (i + 1 < argc && (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "-s") == 0))
			i += 2;
		if (i >= argc)
			return usage("no command");
		/* rotate: COMMAND -f X -s Y ARGS */
		{
			char *c = argv[i];

			memmove(argv + 2, argv + 1, (size_t)(i - 1) * sizeof(*argv));
			argv[1] = c;
			cmd = c;
		}
		if (strcmp(cmd, "check") == 0)
			return ops_check(argc - 1, argv + 1);
		if (strcmp(cmd, "route") == 0)
			return ops_route(argc - 1, argv + 1);
	}
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 ||
	    strcmp(cmd, "metrics") == 0 || strcmp(cmd, "ping") == 0 || strcmp(cmd, "log") == 0 ||
	    strcmp(cmd, "trace") == 0)
		return ops_remote(argc - 1, argv + 1);
	fprintf(stderr, "xtrunkctl: unknown command '%s'\n", cmd);
	return usage(NULL);
}
