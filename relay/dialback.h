/* dialback: XEP-0185 dialback keys,
 * HEX(HMAC-SHA256(HEX(SHA256(secret)), receiving ' ' originating ' ' id)). */
#ifndef XT_DIALBACK_H
#define XT_DIALBACK_H

#define DB_KEY_LEN 64 /* hex characters */

/* out gets DB_KEY_LEN lower-case hex digits + NUL. Returns 0 or -EIO. */
int db_key(const char *secret, const char *receiving, const char *originating,
	   const char *stream_id, char out[DB_KEY_LEN + 1]);

/* Constant-time check of a received key. Returns 1 if valid, else 0. */
int db_key_check(const char *secret, const char *receiving, const char *originating,
		 const char *stream_id, const char *key);

#endif
