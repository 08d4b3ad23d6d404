/* parsebench: floors of the relay's per-stanza work, in memory, one
 * thread, on the traffic of make bench (300-byte <message/> stanzas, one
 * in four with a XEP-0258 label), fed in 16 KiB pieces like TLS records:
 *
 *   libxml2_ns     libxml2's push parser with empty SAX2 callbacks: the
 *                  least any framing built on libxml2 can cost;
 *   xmlstream_ns   relay/xmlstream (libxml2 plus the relay's limits,
 *                  lexer and the recording of every stanza), to an empty
 *                  on_stanza;
 *   seal_ns/open_ns  AES-256-GCM (GnuTLS, what TLS 1.3 negotiates here)
 *                  over 16 KiB records, per stanza: what a TLS byte
 *                  proxy does besides system calls.
 *
 * Prints one key=value line. Used for the issue-6 note: the relay's share
 * that no tuning of its own code removes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <libxml/parser.h>

#include "xmlstream.h"

#define NSTANZAS 200000
#define CHUNK 16384
#define ROUNDS 5

static const char header[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='a.bench' to='b.bench' version='1.0'>";
static const char label[] =
    "<securitylabel xmlns='urn:xmpp:sec-label:0'><label><esssecuritylabel "
    "xmlns='urn:xmpp:sec-label:ess:0'>MQ4CAQQGCSsGAQQBho0fAQ==</esssecuritylabel></label>"
    "</securitylabel>";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *traffic(size_t *len)
{
	size_t cap = (size_t)NSTANZAS * 600, n = 0;
	char *buf = malloc(cap), pad[400];

	if (buf == NULL)
		exit(2);
	memset(pad, 'x', sizeof(pad));
	for (int i = 0; i < NSTANZAS; i++) {
		int head = snprintf(buf + n, cap - n,
				    "<message from='a.bench' to='b.bench' type='chat' "
				    "id='xb.%d.%d.%d'>%s<body>",
				    i % 10, i, i * 1000, i % 4 == 0 ? label : "");
		size_t fill = 300 > (size_t)head + 17 ? 300 - (size_t)head - 17 : 1;

		n += (size_t)head;
		memcpy(buf + n, pad, fill);
		n += fill;
		memcpy(buf + n, "</body></message>", 17);
		n += 17;
	}
	*len = n;
	return buf;
}

static void sax_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
		      const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
		      int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
	(void)ctx, (void)localname, (void)prefix, (void)uri, (void)nb_namespaces;
	(void)namespaces, (void)nb_attributes, (void)nb_defaulted, (void)attributes;
}

static void sax_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
	(void)ctx, (void)localname, (void)prefix, (void)uri;
}

static void sax_chars(void *ctx, const xmlChar *ch, int len)
{
	(void)ctx, (void)ch, (void)len;
}

static double bench_libxml2(const char *buf, size_t len)
{
	xmlSAXHandler sax;
	xmlParserCtxtPtr p;
	double t0;

	memset(&sax, 0, sizeof(sax));
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = sax_start;
	sax.endElementNs = sax_end;
	sax.characters = sax_chars;
	p = xmlCreatePushParserCtxt(&sax, NULL, NULL, 0, NULL);
	if (p == NULL)
		exit(2);
	xmlCtxtUseOptions(p, XML_PARSE_NONET | XML_PARSE_IGNORE_ENC);
	xmlParseChunk(p, header, (int)strlen(header), 0);
	t0 = now_s();
	for (size_t off = 0; off < len; off += CHUNK)
		xmlParseChunk(p, buf + off, (int)(len - off < CHUNK ? len - off : CHUNK), 0);
	t0 = now_s() - t0;
	xmlFreeParserCtxt(p);
	return t0 * 1e9 / NSTANZAS;
}

static unsigned long seen;

static void xs_hdr(void *ctx, const struct xs_header *h)
{
	(void)ctx, (void)h;
}

static void xs_st(void *ctx, const struct xs_stanza *s)
{
	(void)ctx, (void)s;
	seen++;
}

static void xs_cl(void *ctx)
{
	(void)ctx;
}

static void xs_err(void *ctx, enum xs_error e, const char *d)
{
	(void)ctx;
	fprintf(stderr, "parsebench: xmlstream: %s (%s)\n", xs_error_condition(e), d ? d : "");
	exit(1);
}

static double bench_xmlstream(const char *buf, size_t len)
{
	static const struct xs_callbacks cb = {
	    .on_header = xs_hdr, .on_stanza = xs_st, .on_close = xs_cl, .on_error = xs_err};
	struct xs *xs = xs_new(&cb, NULL, NULL);
	double t0;

	if (xs == NULL || xs_feed(xs, header, strlen(header)) < 0)
		exit(2);
	seen = 0;
	t0 = now_s();
	for (size_t off = 0; off < len; off += CHUNK)
		if (xs_feed(xs, buf + off, len - off < CHUNK ? len - off : CHUNK) < 0)
			exit(1);
	t0 = now_s() - t0;
	if (seen != NSTANZAS) {
		fprintf(stderr, "parsebench: %lu of %d stanzas framed\n", seen, NSTANZAS);
		exit(1);
	}
	xs_free(xs);
	return t0 * 1e9 / NSTANZAS;
}

static void bench_aead(const char *buf, size_t len, double *seal, double *open)
{
	unsigned char key[32] = {1}, iv[12] = {2}, *out = malloc(CHUNK + 16), *back = malloc(CHUNK);
	gnutls_datum_t k = {key, sizeof(key)};
	gnutls_aead_cipher_hd_t h;
	size_t olen, blen;
	double t0, ts = 0, to = 0;

	if (out == NULL || back == NULL ||
	    gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &k) < 0)
		exit(2);
	for (size_t off = 0; off < len; off += CHUNK) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;

		olen = CHUNK + 16;
		t0 = now_s();
		if (gnutls_aead_cipher_encrypt(h, iv, sizeof(iv), NULL, 0, 16, buf + off, n, out,
					       &olen) < 0)
			exit(2);
		ts += now_s() - t0;
		blen = CHUNK;
		t0 = now_s();
		if (gnutls_aead_cipher_decrypt(h, iv, sizeof(iv), NULL, 0, 16, out, olen, back,
					       &blen) < 0 ||
		    blen != n)
			exit(2);
		to += now_s() - t0;
	}
	gnutls_aead_cipher_deinit(h);
	free(out);
	free(back);
	*seal = ts * 1e9 / NSTANZAS;
	*open = to * 1e9 / NSTANZAS;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	double lx[ROUNDS], xs[ROUNDS], se[ROUNDS], op[ROUNDS];
	size_t len;
	char *buf = traffic(&len);

	for (int r = 0; r < ROUNDS; r++) {
		lx[r] = bench_libxml2(buf, len);
		xs[r] = bench_xmlstream(buf, len);
		bench_aead(buf, len, &se[r], &op[r]);
	}
	qsort(lx, ROUNDS, sizeof(double), cmp_d);
	qsort(xs, ROUNDS, sizeof(double), cmp_d);
	qsort(se, ROUNDS, sizeof(double), cmp_d);
	qsort(op, ROUNDS, sizeof(double), cmp_d);
	printf("stanzas=%d bytes_per_stanza=%.0f libxml2_ns=%.0f xmlstream_ns=%.0f seal_ns=%.0f "
	       "open_ns=%.0f (medians of %d rounds)\n",
	       NSTANZAS, (double)len / NSTANZAS, lx[ROUNDS / 2], xs[ROUNDS / 2], se[ROUNDS / 2],
	       op[ROUNDS / 2], ROUNDS);
	free(buf);
	return 0;
}
