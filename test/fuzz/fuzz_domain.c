/* fuzz_domain: libFuzzer target for domain_normalise and jid_domain
 * (relay/domain.c), the one function that turns a peer-written name into
 * the form routing, authorisation and certificate matching compare with
 * strcmp. A name two of those see differently is a spoofing hole.
 *
 * The input is a domain for domain_normalise, and up to its first NUL a
 * JID for jid_domain. Every output buffer is a heap block of exactly the
 * size passed, so AddressSanitizer sees any write past outsz.
 *
 * Invariants beyond "no crash, no leak":
 *  - the return is strlen(out), -EINVAL or -ENAMETOOLONG, and on success
 *    out is LDH labels of 1..63 octets joined by single dots, with no
 *    upper case, at most DOMAIN_MAX octets;
 *  - idempotent: normalising the output gives the output;
 *  - a trailing dot added to a name without a trailing separator changes
 *    nothing, and for an all-ASCII name neither does case;
 *  - outsz: with n + 1 the same answer, with n -ENAMETOOLONG;
 *  - jid_domain's output normalises to itself, is its own jid_domain, and
 *    is the domain of "x@" output "/r"; a JID without '@' and '/' has the
 *    domain domain_normalise gives the whole string. */
#include "domain.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUTSZ (DOMAIN_MAX + 1)

/* A trailing '.', U+3002, U+FF0E or U+FF61, as domain.c strips once. */
static int has_trailing_sep(const uint8_t *s, size_t n)
{
	if (n >= 1 && s[n - 1] == '.')
		return 1;
	if (n < 3)
		return 0;
	s += n - 3;
	return (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x82) ||
	       (s[0] == 0xef && s[1] == 0xbc && s[2] == 0x8e) ||
	       (s[0] == 0xef && s[1] == 0xbd && s[2] == 0xa1);
}

/* Output shape: LDH labels, 1..63 octets, single dots, no upper case. */
static void check_shape(const char *out, int n)
{
	size_t label = 0;

	if (n <= 0 || n > DOMAIN_MAX || strlen(out) != (size_t)n)
		abort();
	for (int i = 0; i < n; i++) {
		char c = out[i];

		if (c == '.') {
			if (label == 0)
				abort();
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			abort();
		if (++label > 63)
			abort();
	}
	if (label == 0)
		abort();
}

static void check_rc(int rc)
{
	if (rc < 0 && rc != -EINVAL && rc != -ENAMETOOLONG)
		abort();
}

/* rc/out must be what normalising in[0..n) gives. */
static void same_as(const void *in, size_t n, int rc, const char *out)
{
	char *o = malloc(OUTSZ);
	int r = domain_normalise(in, n, o, OUTSZ);

	if (r != rc || (rc >= 0 && strcmp(o, out) != 0))
		abort();
	free(o);
}

static void check_outsz(const uint8_t *in, size_t n, int rc, const char *out)
{
	char *o = malloc((size_t)rc + 1);

	if (domain_normalise((const char *)in, n, o, (size_t)rc + 1) != rc || strcmp(o, out) != 0)
		abort();
	free(o);
	o = malloc((size_t)rc);
	if (domain_normalise((const char *)in, n, o, (size_t)rc) != -ENAMETOOLONG)
		abort();
	free(o);
}

static void check_domain(const uint8_t *data, size_t size)
{
	char *out = malloc(OUTSZ);
	int rc = domain_normalise((const char *)data, size, out, OUTSZ);
	int ascii = 1;

	check_rc(rc);
	for (size_t i = 0; i < size; i++)
		if (data[i] >= 0x80)
			ascii = 0;
	if (rc >= 0) {
		check_shape(out, rc);
		same_as(out, (size_t)rc, rc, out);
		check_outsz(data, size, rc, out);
	}
	if (size > 0 && !has_trailing_sep(data, size)) {
		uint8_t *dot = malloc(size + 1);

		memcpy(dot, data, size);
		dot[size] = '.';
		same_as(dot, size + 1, rc, out);
		free(dot);
	}
	if (ascii && size > 0) {
		uint8_t *up = malloc(size);

		for (size_t i = 0; i < size; i++)
			up[i] =
			    data[i] >= 'a' && data[i] <= 'z' ? (uint8_t)(data[i] - 32) : data[i];
		same_as(up, size, rc, out);
		free(up);
	}
	free(out);
}

static void check_jid(const uint8_t *data, size_t size)
{
	size_t n = strnlen((const char *)data, size);
	char *jid = malloc(n + 1), *out = malloc(OUTSZ), *o2 = malloc(OUTSZ);
	int rc;

	memcpy(jid, data, n);
	jid[n] = '\0';
	rc = jid_domain(jid, out, OUTSZ);
	check_rc(rc);
	if (rc >= 0) {
		char *full = malloc((size_t)rc + 5);

		check_shape(out, rc);
		same_as(out, (size_t)rc, rc, out);
		if (jid_domain(out, o2, OUTSZ) != rc || strcmp(o2, out) != 0)
			abort();
		memcpy(full, "x@", 2);
		memcpy(full + 2, out, (size_t)rc);
		memcpy(full + 2 + rc, "/r", 3);
		if (jid_domain(full, o2, OUTSZ) != rc || strcmp(o2, out) != 0)
			abort();
		free(full);
	}
	if (!memchr(jid, '@', n) && !memchr(jid, '/', n))
		same_as(jid, n, rc, out);
	free(o2);
	free(out);
	free(jid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_domain(data, size);
	check_jid(data, size);
	return 0;
}
