/* label: XEP-0258 security labels (sans-I/O). The ESS SecurityLabel of
 * RFC 2634 (policy OID, classification, privacy mark, categories) decoded
 * from and encoded to DER with libtasn1, base64 through GnuTLS; the
 * <securitylabel xmlns='urn:xmpp:sec-label:0'> element found among a
 * stanza's children; a catalogue of label policies (ordered
 * classifications with display markings, categories) and what the relay
 * decides with it: clearance dominance, translation through the
 * equivalence table, and the rewritten element for the next hop. */
#ifndef XT_LABEL_H
#define XT_LABEL_H

#include <stddef.h>
#include <stdint.h>

struct xs_stanza;

#define LABEL_NS "urn:xmpp:sec-label:0"
#define LABEL_NS_ESS "urn:xmpp:sec-label:ess:0"
#define LABEL_OID_MAX 128   /* dotted OID text */
#define LABEL_DER_MAX 768   /* bytes of one encoded ESS label */
#define LABEL_CAT_DER 64    /* bytes of one category value */
#define LABEL_MAX_CATS 16   /* categories in one label */
#define LABEL_MAX_EQUIV 4   /* equivalentlabel elements kept */
#define LABEL_MARK_MAX 256  /* display marking text */
#define LABEL_COLOUR_MAX 32 /* fgcolor / bgcolor */
#define LABEL_CAT_POLICY 64 /* categories one catalogue policy may define */

struct ess_category {
	char type[LABEL_OID_MAX];
	unsigned char value[LABEL_CAT_DER]; /* DER of the value (ANY) */
	size_t value_len;
};

struct ess_label {
	char policy[LABEL_OID_MAX]; /* security-policy-identifier */
	int has_class;
	long classification;
	int has_privacy;
	int privacy_printable; /* PrintableString rather than UTF8String */
	char privacy[LABEL_MARK_MAX];
	struct ess_category cats[LABEL_MAX_CATS];
	size_t ncats;
};

/* DER -> label. 0, -EINVAL (not an ESS label in DER: trailing bytes, a
 * non-minimal length, SET components out of order, classification out of
 * 0..256; checked by re-encoding and comparing, so a label has exactly one
 * accepted encoding), -E2BIG (more than the bounds
 * above), -ENOMEM. */
int ess_decode(const unsigned char *der, size_t len, struct ess_label *out);
/* label -> DER. 0 with *outlen set, -ENOSPC, -EINVAL, -ENOMEM. */
int ess_encode(const struct ess_label *in, unsigned char *out, size_t outsz, size_t *outlen);
/* base64 text (as in <esssecuritylabel/>) -> label; same returns. */
int ess_from_base64(const char *b64, struct ess_label *out);
/* label -> base64 text, NUL-terminated. 0, -ENOSPC, -EINVAL, -ENOMEM. */
int ess_to_base64(const struct ess_label *in, char *out, size_t outsz);
/* The DER of a UTF8String holding text (category values of the catalogue). */
int ess_utf8_value(const char *text, unsigned char *out, size_t outsz, size_t *outlen);

/* The securitylabel element of a stanza, as the framer recorded it. */
struct seclabel {
	size_t start, end; /* its bytes within the stanza */
	char marking[LABEL_MARK_MAX], fg[LABEL_COLOUR_MAX], bg[LABEL_COLOUR_MAX];
	struct ess_label label;
	char label_b64[LABEL_DER_MAX * 2]; /* the label as received */
	struct ess_label equiv[LABEL_MAX_EQUIV];
	size_t nequiv;
};

/* 0: no label; 1: one label, understood, in *out; -EINVAL: a label that is
 * malformed, duplicated, not in ESS form, or not fully recorded by the
 * framer (-EOVERFLOW when the stanza had more children than recorded,
 * so a label may have been missed). */
int seclabel_find(const struct xs_stanza *st, struct seclabel *out);

/* ---- catalogue -------------------------------------------------------- */

struct label_class {
	char *name;		 /* owned, e.g. "SECRET" */
	long value;		 /* the ESS classification */
	char *marking, *fg, *bg; /* owned or NULL: display marking */
};

struct label_category {
	char *name;			    /* owned */
	char *type;			    /* owned: OID */
	unsigned char value[LABEL_CAT_DER]; /* DER */
	size_t value_len;
};

struct label_policy {
	char *name;		     /* owned, e.g. "nato" */
	char *oid;		     /* owned */
	struct label_class *classes; /* owned array, lowest first */
	size_t nclasses;
	struct label_category *cats; /* owned array, at most LABEL_CAT_POLICY */
	size_t ncats;
};

/* policy a class ca <-> policy b class cb (indexes, ranks) */
struct label_equiv {
	int pa, ca, pb, cb;
};

struct label_catalogue {
	struct label_policy *policies; /* owned array */
	size_t npolicies;
	struct label_equiv *equivs; /* owned array */
	size_t nequivs;
};

/* A label or a clearance in catalogue terms. */
struct label_ref {
	int policy;    /* index in the catalogue */
	int rank;      /* index of the classification, higher is more sensitive */
	uint64_t cats; /* bit i: category i of the policy */
};

/* Accepts NULL; frees the contents and the catalogue. */
void label_catalogue_free(struct label_catalogue *c);
/* "policy:CLASS" or "policy:CLASS+CAT+CAT" -> ref. 0 or -ENOENT. */
int label_ref_parse(const struct label_catalogue *c, const char *text, struct label_ref *out);
/* ref -> "policy:CLASS+CAT..." (truncated to outsz). */
void label_ref_name(const struct label_catalogue *c, const struct label_ref *r, char *out,
		    size_t outsz);
/* ESS label -> ref: 0, -ENOENT (policy OID not in the catalogue), -EINVAL
 * (no classification, or a classification or category it does not define). */
int label_resolve(const struct label_catalogue *c, const struct ess_label *l,
		  struct label_ref *out);
/* 1 if clearance dominates label: same policy, classification at or below,
 * categories a subset. */
int label_dominated(const struct label_ref *clearance, const struct label_ref *label);
/* The equivalent of in under policy target, by the equivalence table
 * (either direction) and category names. 0, or -ENOENT. */
int label_translate(const struct label_catalogue *c, const struct label_ref *in, int target,
		    struct label_ref *out);
/* ref -> ESS label. */
void label_to_ess(const struct label_catalogue *c, const struct label_ref *r,
		  struct ess_label *out);
/* The <securitylabel/> element for ref: the target policy's display
 * marking, its ESS label, and equiv_b64 (may be NULL) as an
 * equivalentlabel. Returns the length or -ENOSPC / -EINVAL. */
int label_render(const struct label_catalogue *c, const struct label_ref *r, const char *equiv_b64,
		 char *out, size_t outsz);

#endif
