/* scenario: see scenario.h. */
#include "scenario.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca.h"
#include "fakenet.h"
#include "runtime.h"
#include "s2s.h"

static char dir[64];
static struct runtime *rt; /* owned */

const char *scen_dir(void)
{
	return dir;
}

struct runtime *scen_runtime(void)
{
	return rt;
}

static int write_conf(const char *tmpl, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "w");
	const char *p = tmpl, *at;

	if (fp == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((at = strstr(p, "@DIR@")) != NULL) {
		fwrite(p, 1, (size_t)(at - p), fp);
		fputs(dir, fp);
		p = at + 5;
	}
	fputs(p, fp);
	if (fclose(fp) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int make_pki(char *err, size_t errlen)
{
	char ca_pem[128], ca_key[128], pem[128], key[128];
	struct ca *ca = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_x509_privkey_t pk = NULL;
	time_t now = time(NULL);
	int rc = -1;

	snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", dir);
	snprintf(ca_key, sizeof(ca_key), "%s/ca.key", dir);
	snprintf(pem, sizeof(pem), "%s/relay.pem", dir);
	snprintf(key, sizeof(key), "%s/relay.key", dir);
	if (ca_create(ca_pem, ca_key, "scenario CA", now, 86400, err, errlen) < 0 ||
	    ca_load(ca_pem, ca_key, &ca, err, errlen) < 0)
		goto out;
	if (ca_issue(ca, "relay.example", now, 86400, 0, &crt, &pk) < 0) {
		snprintf(err, errlen, "ca_issue failed");
		goto out;
	}
	if (ca_write_pair(pem, key, crt, NULL, 0, pk, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (pk != NULL)
		gnutls_x509_privkey_deinit(pk);
	ca_unref(ca);
	return rc;
}

static struct runtime *load(const char *tmpl, const char *name, char *err, size_t errlen)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (write_conf(tmpl, path, err, errlen) < 0)
		return NULL;
	return runtime_load(path, rt, err, errlen);
}

int scen_setup(const char *conf_template, char *err, size_t errlen)
{
	snprintf(dir, sizeof(dir), "/tmp/xt-scen-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	if (make_pki(err, errlen) < 0)
		return -1;
	rt = load(conf_template, "relay.conf", err, errlen);
	if (rt == NULL)
		return -1;
	fakenet_reset();
	s2s_init(rt);
	return 0;
}

int scen_reload(const char *conf_template, char *err, size_t errlen)
{
	struct runtime *n = load(conf_template, "relay2.conf", err, errlen);

	if (n == NULL)
		return -1;
	s2s_reload(n);
	runtime_unref(rt);
	rt = n;
	return 0;
}

/* Shut s2s down, deliver every close; what is still open after that. */
static size_t scen_stop(void)
{
	size_t left;

	s2s_shutdown();
	fakenet_pump();
	s2s_free();
	left = fakenet_open_count();
	fakenet_reset();
	return left;
}

size_t scen_restart(void)
{
	size_t left = scen_stop();

	s2s_init(rt);
	return left;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

size_t scen_teardown(void)
{
	size_t left = scen_stop();

	runtime_unref(rt);
	rt = NULL;
	if (dir[0] != '\0')
		nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	dir[0] = '\0';
	return left;
}
