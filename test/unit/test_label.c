/* test_label: ESS labels (DER and base64, through libtasn1), the
 * securitylabel element as the framer records it, and the catalogue:
 * dominance, equivalence translation, rendering the rewritten element. */
#include "label.h"
#include "xmlstream.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ESS decoding: fixed vectors ---------------------------------------- */

struct der_case {
	const char *name;
	const char *b64;
	int rc;
	const char *policy;
	long cls; /* -1: absent */
	size_t ncats;
};

static const struct der_case der_cases[] = {
    /* SET { OID 1.3.6.1.2 } */
    {"policy only", "MQYGBCsGAQI=", 0, "1.3.6.1.2", -1, 0},
    /* SET { INTEGER 2, OID 1.3.6.1.2 }: DER orders a SET by tag */
    {"policy and class", "MQkCAQIGBCsGAQI=", 0, "1.3.6.1.2", 2, 0},
    /* the same with the OID first: BER, not DER */
    {"SET out of order", "MQkGBCsGAQICAQI=", -EINVAL, NULL, 0, 0},
    /* a PrintableString privacy mark */
    {"privacy mark", "MQ4CAQIGBCsGAQITA0FCQw==", 0, "1.3.6.1.2", 2, 0},
    /* class 256 takes two bytes */
    {"class 256", "MQoCAgEABgQrBgEC", 0, "1.3.6.1.2", 256, 0},
    /* SET { OID, INTEGER 2, SET { SEQ { [0] OID 1.2.3, [1] { UTF8 "A" } } } } */
    {"one category", "MRoCAQIGBCsGAQIxDzANgAIqA6EHDAVBTFBIQQ==", 0, "1.3.6.1.2", 2, 1},
    {"not base64", "!!!!", -EINVAL, NULL, 0, 0},
    {"empty", "", -EINVAL, NULL, 0, 0},
    /* SEQUENCE instead of SET */
    {"wrong outer tag", "MAkCAQIGBCsGAQI=", -EINVAL, NULL, 0, 0},
    /* length says 10, 9 bytes follow */
    {"truncated", "MQoCAQIGBCsGAQI=", -EINVAL, NULL, 0, 0},
    /* one byte after the SET */
    {"trailing byte", "MQkCAQIGBCsGAQIA", -EINVAL, NULL, 0, 0},
    /* long-form length where the short form fits: not DER */
    {"long form length", "MYEJAgECBgQrBgEC", -EINVAL, NULL, 0, 0},
    /* INTEGER 300 */
    {"class out of range", "MQoCAgEsBgQrBgEC", -EINVAL, NULL, 0, 0},
    /* INTEGER -1 */
    {"negative class", "MQkCAf8GBCsGAQI=", -EINVAL, NULL, 0, 0},
    /* 17 categories: more than LABEL_MAX_CATS */
    {"17 categories",
     "MYHpAgECBgQrBgECMYHdMAuAAioDoQUMA2FiYzALgAIqA6EFDANhYmMwC4ACKgOhBQwDYWJjMAuAAioDoQUMA2FiYzA"
     "LgAIqA6EFDANhYmMwC4ACKgOhBQwDYWJjMAuAAioDoQUMA2FiYzALgAIqA6EFDANhYmMwC4ACKgOhBQwDYWJjMAuAAi"
     "oDoQUMA2FiYzALgAIqA6EFDANhYmMwC4ACKgOhBQwDYWJjMAuAAioDoQUMA2FiYzALgAIqA6EFDANhYmMwC4ACKgOhB"
     "QwDYWJjMAuAAioDoQUMA2FiYzALgAIqA6EFDANhYmM=",
     -E2BIG, NULL, 0, 0},
    /* no policy OID */
    {"class only", "MQMCAQI=", -EINVAL, NULL, 0, 0},
};

START_TEST(test_der_table)
{
	const struct der_case *c = &der_cases[_i];
	struct ess_label l;
	int rc = ess_from_base64(c->b64, &l);

	ck_assert_msg(rc == c->rc, "%s: rc %d, want %d", c->name, rc, c->rc);
	if (rc != 0)
		return;
	ck_assert_str_eq(l.policy, c->policy);
	ck_assert_int_eq(l.has_class, c->cls >= 0);
	if (c->cls >= 0)
		ck_assert_int_eq(l.classification, c->cls);
	ck_assert_uint_eq(l.ncats, c->ncats);
}
END_TEST

/* ---- encode -> decode round trip, and hostile sizes -------------------- */

START_TEST(test_roundtrip)
{
	struct ess_label in, out;
	char b64[2048];
	size_t i;

	memset(&in, 0, sizeof(in));
	strcpy(in.policy, "1.3.6.1.4.1.99999.1");
	in.has_class = 1;
	in.classification = 4;
	in.has_privacy = 1;
	strcpy(in.privacy, "handle via channels only");
	for (i = 0; i < 3; i++) {
		char t[16];

		snprintf(in.cats[i].type, sizeof(in.cats[i].type), "1.2.3.%zu", i);
		snprintf(t, sizeof(t), "CAT%zu", i);
		ck_assert_int_eq(ess_utf8_value(t, in.cats[i].value, sizeof(in.cats[i].value),
						&in.cats[i].value_len),
				 0);
	}
	in.ncats = 3;
	ck_assert_int_eq(ess_to_base64(&in, b64, sizeof(b64)), 0);
	ck_assert_int_eq(ess_from_base64(b64, &out), 0);
	ck_assert_str_eq(out.policy, in.policy);
	ck_assert_int_eq(out.classification, 4);
	ck_assert_str_eq(out.privacy, in.privacy);
	ck_assert_uint_eq(out.ncats, 3);
	/* SET OF is sorted in DER: every category comes back, in some order */
	for (i = 0; i < 3; i++) {
		int found = 0;

		for (size_t j = 0; j < 3; j++)
			found |=
			    strcmp(out.cats[j].type, in.cats[i].type) == 0 &&
			    out.cats[j].value_len == in.cats[i].value_len &&
			    memcmp(out.cats[j].value, in.cats[i].value, in.cats[i].value_len) == 0;
		ck_assert(found);
	}
	/* too small a buffer */
	ck_assert_int_eq(ess_to_base64(&in, b64, 8), -ENOSPC);
}
END_TEST

START_TEST(test_hostile_sizes)
{
	struct ess_label in, out;
	unsigned char der[4096];
	char *big = malloc(20001);
	size_t n;

	/* 5000 bytes of base64 is over any label we accept */
	memset(big, 'A', 20000);
	big[20000] = '\0';
	ck_assert_int_eq(ess_from_base64(big, &out), -E2BIG);
	free(big);
	/* DER over LABEL_DER_MAX */
	memset(der, 0, sizeof(der));
	ck_assert_int_eq(ess_decode(der, LABEL_DER_MAX + 1, &out), -E2BIG);
	/* LABEL_MAX_CATS + 1 categories: encodable (libtasn1 allows 64), refused */
	memset(&in, 0, sizeof(in));
	strcpy(in.policy, "1.2.3");
	in.has_class = 1;
	in.classification = 1;
	for (size_t i = 0; i < LABEL_MAX_CATS; i++) {
		snprintf(in.cats[i].type, sizeof(in.cats[i].type), "1.2.4.%zu", i);
		ess_utf8_value("x", in.cats[i].value, sizeof(in.cats[i].value),
			       &in.cats[i].value_len);
	}
	in.ncats = LABEL_MAX_CATS;
	ck_assert_int_eq(ess_encode(&in, der, sizeof(der), &n), 0);
	ck_assert_int_eq(ess_decode(der, n, &out), 0);
	ck_assert_uint_eq(out.ncats, LABEL_MAX_CATS);
	/* Strings longer than the fields are refused, not cut */
	{
		unsigned char v[LABEL_CAT_DER];
		char longtext[LABEL_CAT_DER + 2];

		memset(longtext, 'x', sizeof(longtext) - 1);
		longtext[sizeof(longtext) - 1] = '\0';
		ck_assert_int_eq(ess_utf8_value(longtext, v, sizeof(v), &n), -E2BIG);
	}
}
END_TEST

/* ---- the element in a stanza -------------------------------------------- */

#define HDR                                                                                        \
	"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "    \
	"xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version='1.0'>"
#define ESS_SECRET "MQkCAQIGBCsGAQI=" /* 1.3.6.1.2 class 2 */
#define SL(inner) "<securitylabel xmlns='urn:xmpp:sec-label:0'>" inner "</securitylabel>"
#define DM "<displaymarking fgcolor='black' bgcolor='red'>SECRET</displaymarking>"
#define LBL(b64)                                                                                   \
	"<label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>" b64                           \
	"</esssecuritylabel></label>"
#define EQV(b64)                                                                                   \
	"<equivalentlabel><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>" b64                 \
	"</esssecuritylabel></equivalentlabel>"

struct find_case {
	const char *name;
	const char *stanza;
	int rc;
	size_t nequiv;
};

static const struct find_case find_cases[] = {
    {"none", "<message><body>x</body></message>", 0, 0},
    {"ess label", "<message><body>x</body>" SL(DM LBL(ESS_SECRET)) "</message>", 1, 0},
    {"label first, marking after", "<message>" SL(LBL(ESS_SECRET) DM) "</message>", 1, 0},
    {"with equivalents",
     "<message>" SL(DM LBL(ESS_SECRET) EQV("MQYGBCsGAQI=") EQV("!!")) "</message>", 1, 1},
    {"two labels", "<message>" SL(LBL(ESS_SECRET)) SL(LBL(ESS_SECRET)) "</message>", -EINVAL, 0},
    {"two label elements", "<message>" SL(LBL(ESS_SECRET) LBL(ESS_SECRET)) "</message>", -EINVAL,
     0},
    {"marking only", "<message>" SL(DM) "</message>", -EINVAL, 0},
    {"bad base64", "<message>" SL(LBL("%%%")) "</message>", -EINVAL, 0},
    {"not ESS form",
     "<message>" SL("<label><x xmlns='urn:example:catalog'>S</x></label>") "</message>", -EINVAL,
     0},
    {"wrong namespace: not a label", "<message><securitylabel xmlns='urn:other'/></message>", 0, 0},
    {"label nested deeper is not the stanza's", "<message><x>" SL(LBL(ESS_SECRET)) "</x></message>",
     0, 0},
};

static struct seclabel found;
static int found_rc;

static void on_find(void *ctx, const struct xs_stanza *st)
{
	found_rc = seclabel_find(st, &found);
	if (found_rc == 1)
		ck_assert(strncmp(st->bytes + found.start, "<securitylabel", 14) == 0);
}

static int find_in(const char *stanza)
{
	static const struct xs_callbacks cb = {NULL, on_find, NULL, NULL};
	struct xs *xs = xs_new(&cb, NULL, NULL);

	found_rc = -1000;
	ck_assert_int_eq(xs_feed(xs, HDR, strlen(HDR)), 0);
	ck_assert_int_eq(xs_feed(xs, stanza, strlen(stanza)), 0);
	xs_free(xs);
	return found_rc;
}

START_TEST(test_find_table)
{
	const struct find_case *c = &find_cases[_i];
	int rc = find_in(c->stanza);

	ck_assert_msg(rc == c->rc, "%s: rc %d, want %d", c->name, rc, c->rc);
	if (rc == 1) {
		ck_assert_str_eq(found.label.policy, "1.3.6.1.2");
		ck_assert_uint_eq(found.nequiv, c->nequiv);
		ck_assert_str_eq(found.label_b64, ESS_SECRET);
	}
}
END_TEST

START_TEST(test_find_details)
{
	char buf[8192];
	size_t n;

	ck_assert_int_eq(find_in("<message>" SL(DM LBL(ESS_SECRET)) "</message>"), 1);
	ck_assert_str_eq(found.marking, "SECRET");
	ck_assert_str_eq(found.fg, "black");
	ck_assert_str_eq(found.bg, "red");
	ck_assert_uint_eq(found.start, strlen("<message>"));
	ck_assert_uint_eq(found.end, strlen("<message>" SL(DM LBL(ESS_SECRET))));
	/* more depth-2 children than the framer records, no label among those
	 * recorded: a label may have been missed */
	n = (size_t)sprintf(buf, "<message>");
	for (int i = 0; i < XS_MAX_CHILDREN; i++)
		n += (size_t)sprintf(buf + n, "<c/>");
	sprintf(buf + n, "%s</message>", SL(LBL(ESS_SECRET)));
	ck_assert_int_eq(find_in(buf), -EOVERFLOW);
}
END_TEST

/* ---- catalogue ------------------------------------------------------------ */

static char *sdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void add_policy(struct label_catalogue *c, const char *name, const char *oid,
		       const char *const *classes, const long *values, const char *const *cats)
{
	struct label_policy *p;
	size_t n = 0;

	c->policies = realloc(c->policies, (c->npolicies + 1) * sizeof(*c->policies));
	p = &c->policies[c->npolicies++];
	memset(p, 0, sizeof(*p));
	p->name = sdup(name);
	p->oid = sdup(oid);
	while (classes[n])
		n++;
	p->classes = calloc(n, sizeof(*p->classes));
	for (size_t i = 0; i < n; i++) {
		char mark[64];

		snprintf(mark, sizeof(mark), "%s %s", name, classes[i]);
		p->classes[i].name = sdup(classes[i]);
		p->classes[i].value = values[i];
		p->classes[i].marking = sdup(mark);
		p->classes[i].fg = sdup("black");
		p->classes[i].bg = sdup(i > 1 ? "red" : "green");
	}
	p->nclasses = n;
	for (n = 0; cats && cats[n]; n++)
		;
	p->cats = calloc(n ? n : 1, sizeof(*p->cats));
	for (size_t i = 0; i < n; i++) {
		p->cats[i].name = sdup(cats[i]);
		p->cats[i].type = sdup("1.2.3");
		ess_utf8_value(cats[i], p->cats[i].value, sizeof(p->cats[i].value),
			       &p->cats[i].value_len);
	}
	p->ncats = n;
}

static struct label_catalogue *make_catalogue(void)
{
	static const char *const nat[] = {"UNCLASSIFIED", "RESTRICTED", "SECRET", "TOP-SECRET",
					  NULL};
	static const long natv[] = {1, 2, 4, 5};
	static const char *const nato[] = {"UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET",
					   NULL};
	static const long natov[] = {1, 2, 3, 4};
	static const char *const cats[] = {"ALPHA", "BRAVO", NULL};
	static const char *const nato_cats[] = {"BRAVO", NULL};
	struct label_catalogue *c = calloc(1, sizeof(*c));

	add_policy(c, "uk", "1.3.6.1.4.1.99999.1", nat, natv, cats);
	add_policy(c, "nato", "1.3.6.1.4.1.99999.2", nato, natov, nato_cats);
	c->equivs = calloc(3, sizeof(*c->equivs));
	c->equivs[0] = (struct label_equiv){0, 0, 1, 0}; /* UNCLASSIFIED */
	c->equivs[1] = (struct label_equiv){0, 2, 1, 3}; /* uk SECRET = nato SECRET */
	c->equivs[2] = (struct label_equiv){0, 1, 1, 1}; /* RESTRICTED */
	c->nequivs = 3;
	return c;
}

struct dom_case {
	const char *clearance, *label;
	int dominated;
};

static const struct dom_case dom_cases[] = {
    {"uk:SECRET", "uk:SECRET", 1},
    {"uk:SECRET", "uk:RESTRICTED", 1},
    {"uk:SECRET", "uk:TOP-SECRET", 0},
    {"uk:SECRET+ALPHA", "uk:SECRET+ALPHA", 1},
    {"uk:SECRET+ALPHA+BRAVO", "uk:RESTRICTED+BRAVO", 1},
    {"uk:SECRET", "uk:RESTRICTED+BRAVO", 0}, /* category not held */
    {"uk:SECRET+ALPHA", "uk:SECRET+ALPHA+BRAVO", 0},
    {"nato:SECRET", "uk:RESTRICTED", 0}, /* other policy: needs translation */
};

START_TEST(test_dominance_table)
{
	const struct dom_case *d = &dom_cases[_i];
	struct label_catalogue *c = make_catalogue();
	struct label_ref clr, lbl;

	ck_assert_int_eq(label_ref_parse(c, d->clearance, &clr), 0);
	ck_assert_int_eq(label_ref_parse(c, d->label, &lbl), 0);
	ck_assert_msg(label_dominated(&clr, &lbl) == d->dominated, "%s over %s", d->clearance,
		      d->label);
	label_catalogue_free(c);
}
END_TEST

struct tr_case {
	const char *in;
	const char *target;
	const char *out; /* NULL: no equivalent */
};

static const struct tr_case tr_cases[] = {
    {"uk:SECRET", "nato", "nato:SECRET"},
    {"nato:SECRET", "uk", "uk:SECRET"}, /* either direction */
    {"uk:RESTRICTED", "nato", "nato:RESTRICTED"},
    {"uk:TOP-SECRET", "nato", NULL}, /* no row */
    {"nato:CONFIDENTIAL", "uk", NULL},
    {"uk:SECRET+BRAVO", "nato", "nato:SECRET+BRAVO"}, /* category by name */
    {"uk:SECRET+ALPHA", "nato", NULL},		      /* nato has no ALPHA */
    {"uk:SECRET", "uk", "uk:SECRET"},
};

START_TEST(test_translate_table)
{
	const struct tr_case *t = &tr_cases[_i];
	struct label_catalogue *c = make_catalogue();
	struct label_ref in, out;
	char name[128];
	int target = strcmp(t->target, "uk") == 0 ? 0 : 1;

	ck_assert_int_eq(label_ref_parse(c, t->in, &in), 0);
	if (t->out == NULL) {
		ck_assert_int_eq(label_translate(c, &in, target, &out), -ENOENT);
	} else {
		ck_assert_int_eq(label_translate(c, &in, target, &out), 0);
		label_ref_name(c, &out, name, sizeof(name));
		ck_assert_str_eq(name, t->out);
	}
	label_catalogue_free(c);
}
END_TEST

START_TEST(test_resolve_and_render)
{
	struct label_catalogue *c = make_catalogue();
	struct label_ref r, back, nato;
	struct ess_label ess;
	char xml[4096], stanza[8192], b64[2048];
	int n;

	/* an ESS label resolves by OID, classification value and category */
	ck_assert_int_eq(label_ref_parse(c, "uk:SECRET+BRAVO", &r), 0);
	label_to_ess(c, &r, &ess);
	ck_assert_str_eq(ess.policy, "1.3.6.1.4.1.99999.1");
	ck_assert_int_eq(ess.classification, 4);
	ck_assert_int_eq(label_resolve(c, &ess, &back), 0);
	ck_assert_int_eq(back.policy, r.policy);
	ck_assert_int_eq(back.rank, r.rank);
	ck_assert(back.cats == r.cats);
	/* unknown policy, unknown class value, no class */
	strcpy(ess.policy, "1.2.999");
	ck_assert_int_eq(label_resolve(c, &ess, &back), -ENOENT);
	label_to_ess(c, &r, &ess);
	ess.classification = 3; /* uk has no 3 */
	ck_assert_int_eq(label_resolve(c, &ess, &back), -EINVAL);
	ess.has_class = 0;
	ck_assert_int_eq(label_resolve(c, &ess, &back), -EINVAL);

	/* render the nato equivalent, with the uk label as equivalentlabel,
	 * and read it back through the framer */
	label_to_ess(c, &r, &ess);
	ck_assert_int_eq(ess_to_base64(&ess, b64, sizeof(b64)), 0);
	ck_assert_int_eq(label_translate(c, &r, 1, &nato), 0);
	n = label_render(c, &nato, b64, xml, sizeof(xml));
	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq((size_t)n, strlen(xml));
	ck_assert_ptr_nonnull(strstr(xml, ">nato SECRET</displaymarking>"));
	ck_assert_ptr_nonnull(strstr(xml, "bgcolor='red'"));
	snprintf(stanza, sizeof(stanza), "<message>%s</message>", xml);
	ck_assert_int_eq(find_in(stanza), 1);
	ck_assert_int_eq(label_resolve(c, &found.label, &back), 0);
	ck_assert_int_eq(back.policy, 1);
	ck_assert_int_eq(back.rank, 3);
	ck_assert_uint_eq(found.nequiv, 1);
	ck_assert_int_eq(label_resolve(c, &found.equiv[0], &back), 0);
	ck_assert_int_eq(back.policy, 0);
	ck_assert_str_eq(found.marking, "nato SECRET");
	ck_assert_int_eq(label_render(c, &nato, b64, xml, 64), -ENOSPC);
	/* names */
	ck_assert_int_eq(label_ref_parse(c, "uk:SECRET+CHARLIE", &r), -ENOENT);
	ck_assert_int_eq(label_ref_parse(c, "uk:SEKRIT", &r), -ENOENT);
	ck_assert_int_eq(label_ref_parse(c, "us:SECRET", &r), -ENOENT);
	ck_assert_int_eq(label_ref_parse(c, "SECRET", &r), -ENOENT);
	label_catalogue_free(c);
}
END_TEST

static Suite *label_suite(void)
{
	Suite *s = suite_create("label");
	TCase *tc = tcase_create("label");

	tcase_add_loop_test(tc, test_der_table, 0, sizeof(der_cases) / sizeof(der_cases[0]));
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_hostile_sizes);
	tcase_add_loop_test(tc, test_find_table, 0, sizeof(find_cases) / sizeof(find_cases[0]));
	tcase_add_test(tc, test_find_details);
	tcase_add_loop_test(tc, test_dominance_table, 0, sizeof(dom_cases) / sizeof(dom_cases[0]));
	tcase_add_loop_test(tc, test_translate_table, 0, sizeof(tr_cases) / sizeof(tr_cases[0]));
	tcase_add_test(tc, test_resolve_and_render);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(label_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
