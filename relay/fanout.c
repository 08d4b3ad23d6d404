/* fanout: summing the workers' metrics, joining their control answers,
 * the restart budget (see fanout.h). No I/O: the supervisor (workers.c)
 * fetches the texts and writes the result.
 *
 * The sum keeps one entry per series key (the sample line up to its
 * value: name and labels exactly as written), found through an
 * open-addressing hash table, chained per family in first-seen order so
 * that a family's samples stay together under its TYPE line, as the text
 * format requires. Workers render the same families in the same order, so
 * the result looks like one worker's text with the values summed. */
#include "fanout.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fseries {
	char *key; /* owned: "name{labels}" */
	double value;
	size_t next; /* next series of the same family, or SIZE_MAX */
};

struct ffamily {
	char *name;	    /* owned; "" for samples before any HELP/TYPE */
	char *help, *type;  /* owned lines (without the line end) or NULL */
	size_t first, last; /* series chain, SIZE_MAX when empty */
};

struct sum {
	struct fseries *series; /* owned array */
	size_t nseries, capseries;
	size_t *slots; /* owned: index + 1 into series, 0 = empty */
	size_t nslots;
	struct ffamily *fams; /* owned array */
	size_t nfams, capfams;
};

struct buf {
	char *p; /* owned */
	size_t len, cap;
	int failed;
};

static void bput(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bput(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	while (!b->failed) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = 1;
		} else if (b->p != NULL && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		} else {
			size_t ncap = (b->cap + (size_t)n + 1) * 2;
			char *np = realloc(b->p, ncap);

			if (np == NULL)
				b->failed = 1;
			else
				b->p = np, b->cap = ncap;
		}
	}
}

static uint64_t hash_key(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	while (len--)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static int grow_slots(struct sum *s)
{
	size_t n = s->nslots ? s->nslots * 2 : 256, i;
	size_t *slots = calloc(n, sizeof(*slots));

	if (slots == NULL)
		return -ENOMEM;
	for (i = 0; i < s->nseries; i++) {
		const char *k = s->series[i].key;
		size_t j = (size_t)hash_key(k, strlen(k)) & (n - 1);

		while (slots[j] != 0)
			j = (j + 1) & (n - 1);
		slots[j] = i + 1;
	}
	free(s->slots);
	s->slots = slots;
	s->nslots = n;
	return 0;
}

static struct ffamily *family(struct sum *s, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < s->nfams; i++)
		if (strlen(s->fams[i].name) == len && memcmp(s->fams[i].name, name, len) == 0)
			return &s->fams[i];
	if (s->nfams == s->capfams) {
		size_t ncap = s->capfams ? s->capfams * 2 : 16;
		struct ffamily *nf = realloc(s->fams, ncap * sizeof(*nf));

		if (nf == NULL)
			return NULL;
		s->fams = nf;
		s->capfams = ncap;
	}
	s->fams[s->nfams] = (struct ffamily){.first = SIZE_MAX, .last = SIZE_MAX};
	s->fams[s->nfams].name = strndup(name, len);
	if (s->fams[s->nfams].name == NULL)
		return NULL;
	return &s->fams[s->nfams++];
}

static int add_sample(struct sum *s, struct ffamily *f, const char *key, size_t klen, double v)
{
	size_t j;
	struct fseries *e;

	if (s->nseries * 2 >= s->nslots && grow_slots(s) < 0)
		return -ENOMEM;
	for (j = (size_t)hash_key(key, klen) & (s->nslots - 1); s->slots[j] != 0;
	     j = (j + 1) & (s->nslots - 1)) {
		e = &s->series[s->slots[j] - 1];
		if (strlen(e->key) == klen && memcmp(e->key, key, klen) == 0) {
			e->value += v;
			return 0;
		}
	}
	if (s->nseries == s->capseries) {
		size_t ncap = s->capseries ? s->capseries * 2 : 64;
		struct fseries *ns = realloc(s->series, ncap * sizeof(*ns));

		if (ns == NULL)
			return -ENOMEM;
		s->series = ns;
		s->capseries = ncap;
	}
	e = &s->series[s->nseries];
	e->key = strndup(key, klen);
	if (e->key == NULL)
		return -ENOMEM;
	e->value = v;
	e->next = SIZE_MAX;
	if (f->last == SIZE_MAX)
		f->first = s->nseries;
	else
		s->series[f->last].next = s->nseries;
	f->last = s->nseries;
	s->slots[j] = ++s->nseries;
	return 0;
}

/* "# HELP name ..." or "# TYPE name ...": the family, its line kept. */
static int comment(struct sum *s, const char *line, size_t len, struct ffamily **cur)
{
	int help = len > 7 && memcmp(line, "# HELP ", 7) == 0;
	int type = len > 7 && memcmp(line, "# TYPE ", 7) == 0;
	const char *name = line + 7;
	size_t nlen;
	char **keep;

	if (!help && !type)
		return 0; /* another comment: dropped */
	nlen = strcspn(name, " \n");
	if (nlen == 0 || name + nlen > line + len)
		return -EINVAL;
	*cur = family(s, name, nlen);
	if (*cur == NULL)
		return -ENOMEM;
	keep = help ? &(*cur)->help : &(*cur)->type;
	if (*keep == NULL && (*keep = strndup(line, len)) == NULL)
		return -ENOMEM;
	return 0;
}

static int sum_text(struct sum *s, const char *text)
{
	struct ffamily *cur = NULL;
	const char *line = text;

	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		int rc = 0;

		if (len > 0 && line[0] == '#') {
			rc = comment(s, line, len, &cur);
		} else if (len > 0) {
			const char *sp = line + len;
			char num[64], *nend;
			double v;

			while (sp > line && sp[-1] != ' ')
				sp--;
			if (sp == line || sp - 1 == line ||
			    (size_t)(line + len - sp) >= sizeof(num))
				return -EINVAL;
			memcpy(num, sp, (size_t)(line + len - sp));
			num[line + len - sp] = '\0';
			v = strtod(num, &nend);
			if (nend == num || *nend != '\0' || isnan(v))
				return -EINVAL;
			if (cur == NULL && (cur = family(s, "", 0)) == NULL)
				return -ENOMEM;
			rc = add_sample(s, cur, line, (size_t)(sp - 1 - line), v);
		}
		if (rc < 0)
			return rc;
		line += len + (end != NULL);
	}
	return 0;
}

static void sum_free(struct sum *s)
{
	size_t i;

	for (i = 0; i < s->nseries; i++)
		free(s->series[i].key);
	for (i = 0; i < s->nfams; i++) {
		free(s->fams[i].name);
		free(s->fams[i].help);
		free(s->fams[i].type);
	}
	free(s->series);
	free(s->slots);
	free(s->fams);
}

int fanout_sum_metrics(const char *const *texts, size_t n, char **out, size_t *len)
{
	struct sum s = {0};
	struct buf b = {0};
	size_t i, k;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++)
		rc = sum_text(&s, texts[i]);
	for (i = 0; i < s.nfams && rc == 0; i++) {
		const struct ffamily *f = &s.fams[i];

		if (f->help != NULL)
			bput(&b, "%s\n", f->help);
		if (f->type != NULL)
			bput(&b, "%s\n", f->type);
		for (k = f->first; k != SIZE_MAX; k = s.series[k].next)
			bput(&b, "%s %.17g\n", s.series[k].key, s.series[k].value);
	}
	if (rc == 0)
		bput(&b, "%s", ""); /* an empty sum is "" too */
	sum_free(&s);
	if (rc == 0 && b.failed)
		rc = -ENOMEM;
	if (rc < 0) {
		free(b.p);
		return rc;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

int fanout_join(const char *head, const char *const *answers, size_t n, char **out,
		unsigned *failed)
{
	struct buf b = {0};
	size_t i;

	*failed = 0;
	bput(&b, "%s", head);
	for (i = 0; i < n; i++) {
		const char *a = answers[i], *line;

		if (a == NULL || strncmp(a, "ok\n", 3) != 0) {
			const char *why = a == NULL ? "no answer" : a;

			if (strncmp(why, "error: ", 7) == 0)
				why += 7;
			bput(&b, "worker=%zu error=\"%.*s\"\n", i + 1, (int)strcspn(why, "\n"),
			     why);
			(*failed)++;
			continue;
		}
		for (line = a + 3; *line != '\0';) {
			size_t len = strcspn(line, "\n");

			if (len > 0)
				bput(&b, "worker=%zu %.*s\n", i + 1, (int)len, line);
			line += len + (line[len] == '\n');
		}
	}
	if (b.failed) {
		free(b.p);
		return -ENOMEM;
	}
	*out = b.p;
	return 0;
}

int fanout_may_restart(uint64_t times[FANOUT_RESTARTS], uint64_t now)
{
	/* times[0] is the oldest: the budget is spent when it is recent */
	if (times[0] != 0 && now - times[0] < FANOUT_WINDOW_MS)
		return 0;
	memmove(times, times + 1, (FANOUT_RESTARTS - 1) * sizeof(*times));
	times[FANOUT_RESTARTS - 1] = now == 0 ? 1 : now;
	return 1;
}
