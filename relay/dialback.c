/* dialback: makes and checks XEP-0185 dialback keys from the relay's secret,
 * so that any instance holding the same secret can answer db:verify.
 *
 *   key = HEX(HMAC-SHA256(HEX(SHA256(secret)), receiving ' ' originating ' ' id))
 *
 * The HMAC key is the 64-character lower-case hex string of the digest, not
 * the 32 raw bytes. The HMAC data is fed in pieces, so no buffer is built.
 *
 * Received keys must match exactly, lower-case included. A key is an opaque
 * token that travels from us, through the receiving server, back to us in a
 * db:verify; XEP-0185 makes it lower-case hex and no server we have seen
 * (Prosody, ejabberd) rewrites it, so a key in any other case was not made by
 * this code and is refused. Secret-derived material is wiped after use. */
#include "dialback.h"

#include <errno.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#define SHA256_LEN 32

static void hex_lower(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

int db_key(const char *secret, const char *receiving, const char *originating,
	   const char *stream_id, char out[DB_KEY_LEN + 1])
{
	unsigned char digest[SHA256_LEN], mac[SHA256_LEN];
	char hexkey[2 * SHA256_LEN + 1];
	gnutls_hmac_hd_t h = NULL;
	int rc = -EIO;

	if (!secret || !receiving || !originating || !stream_id || !out)
		return -EINVAL;
	out[0] = '\0';
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, strlen(secret), digest) < 0)
		goto done;
	hex_lower(digest, sizeof(digest), hexkey);
	if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, hexkey, 2 * SHA256_LEN) < 0) {
		h = NULL;
		goto done;
	}
	if (gnutls_hmac(h, receiving, strlen(receiving)) < 0 || gnutls_hmac(h, " ", 1) < 0 ||
	    gnutls_hmac(h, originating, strlen(originating)) < 0 || gnutls_hmac(h, " ", 1) < 0 ||
	    gnutls_hmac(h, stream_id, strlen(stream_id)) < 0)
		goto done;
	gnutls_hmac_deinit(h, mac);
	h = NULL;
	hex_lower(mac, sizeof(mac), out);
	rc = 0;
done:
	if (h)
		gnutls_hmac_deinit(h, NULL);
	gnutls_memset(digest, 0, sizeof(digest));
	gnutls_memset(hexkey, 0, sizeof(hexkey));
	gnutls_memset(mac, 0, sizeof(mac));
	return rc;
}

int db_key_check(const char *secret, const char *receiving, const char *originating,
		 const char *stream_id, const char *key)
{
	char want[DB_KEY_LEN + 1];
	int ok;

	/* The length is public (always DB_KEY_LEN), so checking it first
	 * leaks nothing about the expected key. */
	if (!key || strnlen(key, DB_KEY_LEN + 1) != DB_KEY_LEN)
		return 0;
	if (db_key(secret, receiving, originating, stream_id, want) < 0)
		return 0;
	ok = gnutls_memcmp(want, key, DB_KEY_LEN) == 0;
	gnutls_memset(want, 0, sizeof(want));
	return ok;
}
