/* fuzz_authz: libFuzzer target for the inbound address checks
 * (relay/authz.c): authz_add / authz_has, authz_header on the stream
 * header's 'to' and 'version', authz_stanza on each stanza's 'from' and
 * 'to', all with attacker-chosen strings.
 *
 * Input: one command per line; after the command letter, the first space
 * splits two fields (no space: the second is NULL; a field "~" is NULL).
 *   R pattern      route_add (the table starts with a.example, *.b.example)
 *   P from to      authenticate the pair (each field normalised first,
 *                  as the relay does; skipped if one does not normalise)
 *   H to version   authz_header
 *   S from to      authz_stanza
 * The authz set holds at most MAX_PAIRS pairs.
 *
 * Invariants beyond "no crash, no leak", against a plain list of the pairs
 * added (the model):
 *  - authz_add: 0 for a known pair, -ENOSPC when full, else 0; authz_count
 *    follows, and an added pair is then found by authz_has;
 *  - authz_header returns NULL, "host-unknown" exactly when 'to' is NULL,
 *    does not normalise or has no route, else "unsupported-version" exactly
 *    when version is NULL or not "1.x"; on NULL, local is the normalised
 *    'to' (no '@' or '/', and it normalises to itself);
 *  - authz_stanza returns NULL only for a pair that was authenticated
 *    (case, trailing-dot and IDN spellings all reduce to it); otherwise
 *    "improper-addressing" exactly when an address is NULL or has no
 *    valid domain, then "invalid-from" exactly when no pair has that
 *    sender, then "host-unknown"; on NULL, from_dom and to_dom are the
 *    two jid_domain results. */
#include "authz.h"
#include "domain.h"
#include "route.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PAIRS 4
#define MAX_CMDS 256
#define BUF (DOMAIN_MAX + 1)

static char mfrom[MAX_PAIRS][BUF], mto[MAX_PAIRS][BUF];
static size_t npairs;

static int model_has(const char *from, const char *to)
{
	for (size_t i = 0; i < npairs; i++)
		if (strcmp(mfrom[i], from) == 0 && (!to || strcmp(mto[i], to) == 0))
			return 1;
	return 0;
}

static int same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static void cmd_pair(struct authz *a, const char *f, const char *t)
{
	char nf[BUF], nt[BUF];
	int rc, want;

	if (!f || !t || domain_normalise(f, strlen(f), nf, BUF) < 0 ||
	    domain_normalise(t, strlen(t), nt, BUF) < 0)
		return;
	want = model_has(nf, nt) ? 0 : npairs >= MAX_PAIRS ? -ENOSPC : 0;
	rc = authz_add(a, nf, nt);
	if (rc != want)
		abort();
	if (rc == 0 && !model_has(nf, nt)) {
		strcpy(mfrom[npairs], nf);
		strcpy(mto[npairs], nt);
		npairs++;
	}
	if (authz_count(a) != npairs)
		abort();
	if (rc == 0 && (authz_has(a, nf, nt) != 1 || authz_has(a, nf, NULL) != 1))
		abort();
}

static void cmd_header(const struct route_table *rt, const char *to, const char *version)
{
	char *local = malloc(BUF), norm[BUF];
	const char *want, *got;

	if (!to || domain_normalise(to, strlen(to), norm, BUF) < 0 || !route_lookup(rt, norm))
		want = "host-unknown";
	else if (!version || strncmp(version, "1.", 2) != 0)
		want = "unsupported-version";
	else
		want = NULL;
	got = authz_header(rt, to, version, local);
	if (!same(got, want))
		abort();
	if (!got) {
		if (strcmp(local, norm) != 0 || strpbrk(local, "@/") ||
		    domain_normalise(local, strlen(local), norm, BUF) < 0 ||
		    strcmp(local, norm) != 0)
			abort();
	}
	free(local);
}

static void cmd_stanza(struct authz *a, const char *from, const char *to)
{
	char *fd = malloc(BUF), *td = malloc(BUF), nf[BUF], nt[BUF];
	const char *want, *got;

	if (!from || !to || jid_domain(from, nf, BUF) < 0 || jid_domain(to, nt, BUF) < 0)
		want = "improper-addressing";
	else if (!model_has(nf, NULL))
		want = "invalid-from";
	else if (!model_has(nf, nt))
		want = "host-unknown";
	else
		want = NULL;
	got = authz_stanza(a, from, to, fd, td);
	if (!same(got, want))
		abort();
	if (!got && (strcmp(fd, nf) != 0 || strcmp(td, nt) != 0 || authz_has(a, fd, td) != 1))
		abort();
	free(td);
	free(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct route_table *rt = route_table_new();
	struct authz *a = authz_new(MAX_PAIRS);
	char *line = malloc(size + 1);
	size_t off = 0;
	int ncmd = 0;

	if (!rt || !a || !line || route_add(rt, "a.example", 0, 1, NULL) != 0 ||
	    route_add(rt, "*.b.example", 0, 2, NULL) != 0)
		abort();
	npairs = 0;
	while (off < size && ncmd++ < MAX_CMDS) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t n = nl ? (size_t)(nl - (data + off)) : size - off;
		char *f1, *f2, *sp;

		memcpy(line, data + off, n);
		line[n] = '\0';
		off += n + (nl ? 1 : 0);
		if (n == 0)
			continue;
		f1 = line + 1;
		sp = strchr(f1, ' ');
		f2 = sp ? sp + 1 : NULL;
		if (sp)
			*sp = '\0';
		if (strcmp(f1, "~") == 0)
			f1 = NULL;
		if (f2 && strcmp(f2, "~") == 0)
			f2 = NULL;
		switch (line[0]) {
		case 'R':
			if (f1)
				route_add(rt, f1, 0, ncmd, NULL);
			break;
		case 'P':
			cmd_pair(a, f1, f2);
			break;
		case 'H':
			cmd_header(rt, f1, f2);
			break;
		case 'S':
			cmd_stanza(a, f1, f2);
			break;
		default:
			break;
		}
	}
	authz_free(a);
	route_table_free(rt);
	free(line);
	return 0;
}
