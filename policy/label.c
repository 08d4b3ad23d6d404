/* label: XEP-0258 security labels. ESS labels go through libtasn1 with the
 * module in ess.asn (compiled into ess_asn1_tab.c), never through
 * hand-written DER; strict DER is required on input so that one label has
 * one encoding and what the policy judged is what the next hop decodes.
 * The catalogue is plain data filled by the config loader (policy_config.c)
 * or a test; everything here is pure computation on it. */
#include "label.h"

#include "xmlstream.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <libtasn1.h>

extern const asn1_static_node ess_asn1_tab[];

#define ESS_TYPE "XTRUNK-ESS.ESSSecurityLabel"

/* The compiled module, built on first use and kept for the process. */
static asn1_node ess_defs;

static int ess_tree(void)
{
	char why[ASN1_MAX_ERROR_DESCRIPTION_SIZE];

	if (ess_defs == NULL && asn1_array2tree(ess_asn1_tab, &ess_defs, why) != ASN1_SUCCESS)
		return -ENOMEM;
	return 0;
}

static int read_oid(asn1_node el, const char *name, char *out, size_t outsz)
{
	int len = (int)outsz;

	if (asn1_read_value(el, name, out, &len) != ASN1_SUCCESS || len <= 1)
		return -EINVAL;
	out[outsz - 1] = '\0';
	return 0;
}

static int ess_decode_tree(const unsigned char *der, size_t len, struct ess_label *out)
{
	char why[ASN1_MAX_ERROR_DESCRIPTION_SIZE], choice[32], name[64];
	asn1_node el = NULL;
	unsigned char buf[8];
	int n, rc, r = -EINVAL, count = 0;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return -EINVAL;
	if (len > LABEL_DER_MAX)
		return -E2BIG;
	if ((r = ess_tree()) < 0)
		return r;
	if (asn1_create_element(ess_defs, ESS_TYPE, &el) != ASN1_SUCCESS)
		return -ENOMEM;
	n = (int)len;
	rc = asn1_der_decoding2(&el, der, &n, ASN1_DECODE_FLAG_STRICT_DER, why);
	if (rc != ASN1_SUCCESS || n != (int)len) {
		r = -EINVAL;
		goto fail;
	}
	if ((r = read_oid(el, "security-policy-identifier", out->policy, sizeof(out->policy))) < 0)
		goto fail;
	n = sizeof(buf);
	rc = asn1_read_value(el, "security-classification", buf, &n);
	if (rc == ASN1_SUCCESS) {
		/* two's complement, big-endian; ESS allows 0..256 */
		long v = (n > 0 && (buf[0] & 0x80)) ? -1 : 0;

		if (n < 1 || n > 2) {
			r = -EINVAL;
			goto fail;
		}
		for (int i = 0; i < n; i++)
			v = (long)((unsigned long)v << 8) | buf[i];
		if (v < 0 || v > 256) {
			r = -EINVAL;
			goto fail;
		}
		out->has_class = 1;
		out->classification = v;
	} else if (rc != ASN1_ELEMENT_NOT_FOUND) {
		r = -EINVAL;
		goto fail;
	}
	n = sizeof(choice);
	rc = asn1_read_value(el, "privacy-mark", choice, &n);
	if (rc == ASN1_SUCCESS) {
		choice[sizeof(choice) - 1] = '\0';
		snprintf(name, sizeof(name), "privacy-mark.%s", choice);
		n = sizeof(out->privacy) - 1;
		rc = asn1_read_value(el, name, out->privacy, &n);
		if (rc == ASN1_MEM_ERROR) {
			r = -E2BIG;
			goto fail;
		}
		if (rc != ASN1_SUCCESS || memchr(out->privacy, '\0', (size_t)n) != NULL) {
			r = -EINVAL;
			goto fail;
		}
		out->privacy[n] = '\0';
		out->has_privacy = 1;
		out->privacy_printable = strcmp(choice, "pString") == 0;
	} else if (rc != ASN1_ELEMENT_NOT_FOUND) {
		r = -EINVAL;
		goto fail;
	}
	rc = asn1_number_of_elements(el, "security-categories", &count);
	if (rc == ASN1_SUCCESS && count > LABEL_MAX_CATS) {
		r = -E2BIG;
		goto fail;
	}
	for (int i = 1; rc == ASN1_SUCCESS && i <= count; i++) {
		struct ess_category *c = &out->cats[out->ncats];

		snprintf(name, sizeof(name), "security-categories.?%d.type", i);
		if ((r = read_oid(el, name, c->type, sizeof(c->type))) < 0)
			goto fail;
		snprintf(name, sizeof(name), "security-categories.?%d.value", i);
		n = sizeof(c->value);
		rc = asn1_read_value(el, name, c->value, &n);
		if (rc != ASN1_SUCCESS) {
			r = rc == ASN1_MEM_ERROR ? -E2BIG : -EINVAL;
			goto fail;
		}
		c->value_len = (size_t)n;
		out->ncats++;
	}
	{
		/* DER: the one encoding of this value, byte for byte */
		unsigned char again[LABEL_DER_MAX];
		size_t m;

		r = ess_encode(out, again, sizeof(again), &m);
		if (r == 0 && (m != len || memcmp(again, der, len) != 0))
			r = -EINVAL;
		if (r < 0) {
			r = r == -ENOMEM ? r : -EINVAL;
			goto fail;
		}
	}
	r = 0;
fail:
	asn1_delete_structure(&el);
	if (r < 0)
		memset(out, 0, sizeof(*out));
	return r;
}

static int ess_encode_tree(const struct ess_label *in, unsigned char *out, size_t outsz,
			   size_t *outlen)
{
	char why[ASN1_MAX_ERROR_DESCRIPTION_SIZE], num[24];
	asn1_node el = NULL;
	int n, rc, r;

	if ((r = ess_tree()) < 0)
		return r;
	if (in->ncats > LABEL_MAX_CATS || outsz > (size_t)INT32_MAX ||
	    (in->has_class && (in->classification < 0 || in->classification > 256)))
		return -EINVAL;
	if (asn1_create_element(ess_defs, ESS_TYPE, &el) != ASN1_SUCCESS)
		return -ENOMEM;
	r = -EINVAL;
	if (asn1_write_value(el, "security-policy-identifier", in->policy, 1) != ASN1_SUCCESS)
		goto fail;
	snprintf(num, sizeof(num), "%ld", in->classification);
	if (asn1_write_value(el, "security-classification", in->has_class ? num : NULL, 0) !=
	    ASN1_SUCCESS)
		goto fail;
	if (in->has_privacy) {
		const char *alt = in->privacy_printable ? "pString" : "utf8String";
		char name[32];

		snprintf(name, sizeof(name), "privacy-mark.%s", alt);
		if (asn1_write_value(el, "privacy-mark", alt, 1) != ASN1_SUCCESS ||
		    asn1_write_value(el, name, in->privacy, (int)strlen(in->privacy)) !=
			ASN1_SUCCESS)
			goto fail;
	} else if (asn1_write_value(el, "privacy-mark", NULL, 0) != ASN1_SUCCESS) {
		goto fail;
	}
	if (in->ncats == 0 && asn1_write_value(el, "security-categories", NULL, 0) != ASN1_SUCCESS)
		goto fail;
	for (size_t i = 0; i < in->ncats; i++)
		if (asn1_write_value(el, "security-categories", "NEW", 1) != ASN1_SUCCESS ||
		    asn1_write_value(el, "security-categories.?LAST.type", in->cats[i].type, 1) !=
			ASN1_SUCCESS ||
		    asn1_write_value(el, "security-categories.?LAST.value", in->cats[i].value,
				     (int)in->cats[i].value_len) != ASN1_SUCCESS)
			goto fail;
	n = (int)outsz;
	rc = asn1_der_coding(el, "", out, &n, why);
	if (rc == ASN1_MEM_ERROR) {
		r = -ENOSPC;
		goto fail;
	}
	if (rc != ASN1_SUCCESS)
		goto fail;
	*outlen = (size_t)n;
	r = 0;
fail:
	asn1_delete_structure(&el);
	return r;
}

int ess_utf8_value(const char *text, unsigned char *out, size_t outsz, size_t *outlen)
{
	unsigned char tl[ASN1_MAX_TL_SIZE];
	unsigned tl_len = sizeof(tl);
	size_t n = strlen(text);

	if (n > LABEL_CAT_DER)
		return -E2BIG;
	/* libtasn1's helper for the tag and length of one primitive value */
	if (asn1_encode_simple_der(ASN1_ETYPE_UTF8_STRING, (const unsigned char *)text, (unsigned)n,
				   tl, &tl_len) != ASN1_SUCCESS)
		return -EINVAL;
	if (tl_len + n > outsz)
		return -ENOSPC;
	memcpy(out, tl, tl_len);
	memcpy(out + tl_len, text, n);
	*outlen = tl_len + n;
	return 0;
}

/* The labels on a link repeat: a few stanzas' worth of different ones
 * cover the traffic of a boundary. Both conversions are pure functions of
 * their input bytes, so the last ones are remembered (direct-mapped by a
 * hash of the input) instead of building a libtasn1 tree per stanza. The
 * relay is one thread; results other than 0 and -EINVAL are not kept. */
#define ESS_MEMO 8

static struct {
	size_t len; /* 0: empty */
	unsigned char der[LABEL_DER_MAX];
	int rc;
	struct ess_label v;
} dec_memo[ESS_MEMO];

static struct {
	int used;
	struct ess_label in;
	size_t len;
	unsigned char der[LABEL_DER_MAX];
} enc_memo[ESS_MEMO];

static unsigned memo_slot(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint32_t h = 2166136261u;

	while (n-- > 0)
		h = (h ^ *b++) * 16777619u;
	return h % ESS_MEMO;
}

int ess_decode(const unsigned char *der, size_t len, struct ess_label *out)
{
	unsigned i;
	int r;

	if (len == 0 || len > LABEL_DER_MAX)
		return ess_decode_tree(der, len, out);
	i = memo_slot(der, len);
	if (dec_memo[i].len == len && memcmp(dec_memo[i].der, der, len) == 0) {
		*out = dec_memo[i].v;
		return dec_memo[i].rc;
	}
	r = ess_decode_tree(der, len, out);
	if (r == 0 || r == -EINVAL) {
		dec_memo[i].len = len;
		memcpy(dec_memo[i].der, der, len);
		dec_memo[i].rc = r;
		dec_memo[i].v = *out;
	}
	return r;
}

int ess_encode(const struct ess_label *in, unsigned char *out, size_t outsz, size_t *outlen)
{
	/* the slot from a few fields; the whole struct is compared */
	unsigned i = (memo_slot(in->policy, strnlen(in->policy, sizeof(in->policy))) +
		      (unsigned)in->classification + (unsigned)in->ncats) %
		     ESS_MEMO;
	int r;

	if (enc_memo[i].used && memcmp(&enc_memo[i].in, in, sizeof(*in)) == 0) {
		if (enc_memo[i].len > outsz)
			return -ENOSPC;
		memcpy(out, enc_memo[i].der, enc_memo[i].len);
		*outlen = enc_memo[i].len;
		return 0;
	}
	r = ess_encode_tree(in, out, outsz, outlen);
	if (r == 0 && *outlen <= sizeof(enc_memo[i].der)) {
		enc_memo[i].used = 1;
		enc_memo[i].in = *in;
		enc_memo[i].len = *outlen;
		memcpy(enc_memo[i].der, out, *outlen);
	}
	return r;
}

int ess_from_base64(const char *b64, struct ess_label *out)
{
	gnutls_datum_t in, der = {NULL, 0};
	size_t n = strlen(b64);
	int r;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return -EINVAL;
	if (n > (LABEL_DER_MAX + 2) / 3 * 4 + 4)
		return -E2BIG;
	in.data = (unsigned char *)b64;
	in.size = (unsigned)n;
	if (gnutls_base64_decode2(&in, &der) < 0)
		return -EINVAL;
	r = ess_decode(der.data, der.size, out);
	gnutls_free(der.data);
	return r;
}

int ess_to_base64(const struct ess_label *in, char *out, size_t outsz)
{
	unsigned char der[LABEL_DER_MAX];
	gnutls_datum_t d, b = {NULL, 0};
	size_t n;
	int r = ess_encode(in, der, sizeof(der), &n);

	if (r < 0)
		return r;
	d.data = der;
	d.size = (unsigned)n;
	if (gnutls_base64_encode2(&d, &b) < 0)
		return -ENOMEM;
	if (b.size + 1 > outsz) {
		gnutls_free(b.data);
		return -ENOSPC;
	}
	memcpy(out, b.data, b.size);
	out[b.size] = '\0';
	gnutls_free(b.data);
	return 0;
}

/* ---- the element in a stanza ----------------------------------------- */

static int is(const struct xs_child *c, unsigned depth, const char *name, const char *ns)
{
	return c->depth == depth && strcmp(c->name, name) == 0 &&
	       (ns == NULL || strcmp(c->ns, ns) == 0);
}

static void copy(char *dst, size_t dstsz, const char *src)
{
	snprintf(dst, dstsz, "%s", src ? src : "");
}

int seclabel_find(const struct xs_stanza *st, struct seclabel *out)
{
	size_t i, at = SIZE_MAX, end;
	int have_label = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < st->nchildren; i++)
		if (is(&st->children[i], 2, "securitylabel", LABEL_NS)) {
			if (at != SIZE_MAX)
				return -EINVAL; /* two labels: which one would the next hop use? */
			at = i;
		}
	if (at == SIZE_MAX)
		return st->partial ? -EOVERFLOW : 0;
	if (st->children[at].partial)
		return -EINVAL;
	out->start = st->children[at].start;
	out->end = st->children[at].end;
	for (end = at + 1; end < st->nchildren && st->children[end].depth > 2; end++)
		if (st->children[end].partial)
			return -EINVAL;
	for (i = at + 1; i < end; i++) {
		const struct xs_child *c = &st->children[i];
		const struct xs_child *e = i + 1 < end ? &st->children[i + 1] : NULL;

		if (is(c, 3, "displaymarking", LABEL_NS)) {
			copy(out->marking, sizeof(out->marking), c->text);
			copy(out->fg, sizeof(out->fg), xs_attr_get(c->attrs, c->nattrs, "fgcolor"));
			copy(out->bg, sizeof(out->bg), xs_attr_get(c->attrs, c->nattrs, "bgcolor"));
		} else if (is(c, 3, "label", LABEL_NS) || is(c, 3, "equivalentlabel", LABEL_NS)) {
			int main_label = strcmp(c->name, "label") == 0;
			struct ess_label tmp;

			/* exactly one child, an ESS label */
			if (e == NULL || !is(e, 4, "esssecuritylabel", LABEL_NS_ESS) ||
			    (i + 2 < end && st->children[i + 2].depth == 4))
				return -EINVAL;
			if (main_label) {
				if (have_label++ || ess_from_base64(e->text, &out->label) < 0 ||
				    strlen(e->text) >= sizeof(out->label_b64))
					return -EINVAL;
				copy(out->label_b64, sizeof(out->label_b64), e->text);
			} else if (ess_from_base64(e->text, &tmp) == 0 &&
				   out->nequiv < LABEL_MAX_EQUIV) {
				/* an equivalent we cannot read is only not used */
				out->equiv[out->nequiv++] = tmp;
			}
			i++;
		}
	}
	return have_label ? 1 : -EINVAL;
}

/* ---- catalogue --------------------------------------------------------- */

void label_catalogue_free(struct label_catalogue *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->npolicies; i++) {
		struct label_policy *p = &c->policies[i];

		for (size_t j = 0; j < p->nclasses; j++) {
			free(p->classes[j].name);
			free(p->classes[j].marking);
			free(p->classes[j].fg);
			free(p->classes[j].bg);
		}
		for (size_t j = 0; j < p->ncats; j++) {
			free(p->cats[j].name);
			free(p->cats[j].type);
		}
		free(p->classes);
		free(p->cats);
		free(p->name);
		free(p->oid);
	}
	free(c->policies);
	free(c->equivs);
	free(c);
}

static int find_policy_n(const struct label_catalogue *c, const char *name, size_t n)
{
	for (size_t i = 0; i < c->npolicies; i++)
		if (strlen(c->policies[i].name) == n && strncmp(c->policies[i].name, name, n) == 0)
			return (int)i;
	return -1;
}

static int find_class_n(const struct label_policy *p, const char *name, size_t n)
{
	for (size_t i = 0; i < p->nclasses; i++)
		if (strlen(p->classes[i].name) == n && strncmp(p->classes[i].name, name, n) == 0)
			return (int)i;
	return -1;
}

static int find_cat_n(const struct label_policy *p, const char *name, size_t n)
{
	for (size_t i = 0; i < p->ncats; i++)
		if (strlen(p->cats[i].name) == n && strncmp(p->cats[i].name, name, n) == 0)
			return (int)i;
	return -1;
}

int label_ref_parse(const struct label_catalogue *c, const char *text, struct label_ref *out)
{
	const char *colon = strchr(text, ':'), *p, *plus;
	const struct label_policy *pol;
	int k;

	if (c == NULL || colon == NULL)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->policy = find_policy_n(c, text, (size_t)(colon - text));
	if (out->policy < 0)
		return -ENOENT;
	pol = &c->policies[out->policy];
	p = colon + 1;
	plus = strchr(p, '+');
	out->rank = find_class_n(pol, p, plus ? (size_t)(plus - p) : strlen(p));
	if (out->rank < 0)
		return -ENOENT;
	while (plus) {
		p = plus + 1;
		plus = strchr(p, '+');
		k = find_cat_n(pol, p, plus ? (size_t)(plus - p) : strlen(p));
		if (k < 0)
			return -ENOENT;
		out->cats |= (uint64_t)1 << k;
	}
	return 0;
}

void label_ref_name(const struct label_catalogue *c, const struct label_ref *r, char *out,
		    size_t outsz)
{
	const struct label_policy *p = &c->policies[r->policy];
	size_t n;

	snprintf(out, outsz, "%s:%s", p->name, p->classes[r->rank].name);
	for (size_t i = 0; i < p->ncats; i++)
		if (r->cats & ((uint64_t)1 << i)) {
			n = strlen(out);
			snprintf(out + n, outsz - n, "+%s", p->cats[i].name);
		}
}

int label_resolve(const struct label_catalogue *c, const struct ess_label *l, struct label_ref *out)
{
	const struct label_policy *p = NULL;

	memset(out, 0, sizeof(*out));
	out->policy = -1;
	for (size_t i = 0; c && i < c->npolicies; i++)
		if (strcmp(c->policies[i].oid, l->policy) == 0) {
			p = &c->policies[i];
			out->policy = (int)i;
		}
	if (p == NULL)
		return -ENOENT;
	if (!l->has_class)
		return -EINVAL;
	out->rank = -1;
	for (size_t i = 0; i < p->nclasses; i++)
		if (p->classes[i].value == l->classification)
			out->rank = (int)i;
	if (out->rank < 0)
		return -EINVAL;
	for (size_t i = 0; i < l->ncats; i++) {
		int k = -1;

		for (size_t j = 0; j < p->ncats; j++)
			if (strcmp(p->cats[j].type, l->cats[i].type) == 0 &&
			    p->cats[j].value_len == l->cats[i].value_len &&
			    memcmp(p->cats[j].value, l->cats[i].value, l->cats[i].value_len) == 0)
				k = (int)j;
		if (k < 0)
			return -EINVAL;
		out->cats |= (uint64_t)1 << k;
	}
	return 0;
}

int label_dominated(const struct label_ref *clearance, const struct label_ref *label)
{
	return clearance->policy == label->policy && label->rank <= clearance->rank &&
	       (label->cats & ~clearance->cats) == 0;
}

int label_translate(const struct label_catalogue *c, const struct label_ref *in, int target,
		    struct label_ref *out)
{
	const struct label_policy *from = &c->policies[in->policy], *to = &c->policies[target];
	int rank = -1;

	if (in->policy == target) {
		*out = *in;
		return 0;
	}
	for (size_t i = 0; i < c->nequivs && rank < 0; i++) {
		const struct label_equiv *e = &c->equivs[i];

		if (e->pa == in->policy && e->ca == in->rank && e->pb == target)
			rank = e->cb;
		else if (e->pb == in->policy && e->cb == in->rank && e->pa == target)
			rank = e->ca;
	}
	if (rank < 0)
		return -ENOENT;
	out->policy = target;
	out->rank = rank;
	out->cats = 0;
	for (size_t i = 0; i < from->ncats; i++)
		if (in->cats & ((uint64_t)1 << i)) {
			int k = find_cat_n(to, from->cats[i].name, strlen(from->cats[i].name));

			if (k < 0)
				return -ENOENT;
			out->cats |= (uint64_t)1 << k;
		}
	return 0;
}

void label_to_ess(const struct label_catalogue *c, const struct label_ref *r, struct ess_label *out)
{
	const struct label_policy *p = &c->policies[r->policy];

	memset(out, 0, sizeof(*out));
	copy(out->policy, sizeof(out->policy), p->oid);
	out->has_class = 1;
	out->classification = p->classes[r->rank].value;
	for (size_t i = 0; i < p->ncats && out->ncats < LABEL_MAX_CATS; i++)
		if (r->cats & ((uint64_t)1 << i)) {
			struct ess_category *e = &out->cats[out->ncats++];

			copy(e->type, sizeof(e->type), p->cats[i].type);
			memcpy(e->value, p->cats[i].value, p->cats[i].value_len);
			e->value_len = p->cats[i].value_len;
		}
}

int label_render(const struct label_catalogue *c, const struct label_ref *r, const char *equiv_b64,
		 char *out, size_t outsz)
{
	const struct label_class *k = &c->policies[r->policy].classes[r->rank];
	char b64[LABEL_DER_MAX * 2], mark[LABEL_MARK_MAX * 6], fg[LABEL_COLOUR_MAX * 6],
	    bg[LABEL_COLOUR_MAX * 6];
	struct ess_label ess;
	int n;

	label_to_ess(c, r, &ess);
	if (ess_to_base64(&ess, b64, sizeof(b64)) < 0)
		return -EINVAL;
	xs_escape(mark, sizeof(mark), k->marking ? k->marking : k->name);
	xs_escape(fg, sizeof(fg), k->fg ? k->fg : "black");
	xs_escape(bg, sizeof(bg), k->bg ? k->bg : "white");
	n = snprintf(out, outsz,
		     "<securitylabel xmlns='" LABEL_NS "'><displaymarking fgcolor='%s' "
		     "bgcolor='%s'>%s</displaymarking><label><esssecuritylabel xmlns='" LABEL_NS_ESS
		     "'>%s</esssecuritylabel></label>",
		     fg, bg, mark, b64);
	if (n < 0 || (size_t)n >= outsz)
		return -ENOSPC;
	if (equiv_b64 != NULL && equiv_b64[0] != '\0') {
		char e[LABEL_DER_MAX * 2 * 6];
		int m;

		xs_escape(e, sizeof(e), equiv_b64);
		m = snprintf(out + n, outsz - (size_t)n,
			     "<equivalentlabel><esssecuritylabel xmlns='" LABEL_NS_ESS
			     "'>%s</esssecuritylabel></equivalentlabel>",
			     e);
		if (m < 0 || (size_t)m >= outsz - (size_t)n)
			return -ENOSPC;
		n += m;
	}
	if ((size_t)n + sizeof("</securitylabel>") > outsz)
		return -ENOSPC;
	memcpy(out + n, "</securitylabel>", sizeof("</securitylabel>"));
	return n + (int)sizeof("</securitylabel>") - 1;
}
