/* stats: metric storage and Prometheus text rendering (see stats.h).
 *
 * Each metric family holds its series in an open-addressing hash table
 * keyed by the label values; a family never holds more than
 * STATS_MAX_SERIES series (the rest fold into "_other"). Names follow the
 * Prometheus conventions: an xtrunk_ prefix, _total on counters, seconds
 * as the unit of the latency histogram. */
#include "stats.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct series {
	char *l1; /* owned or NULL (empty slot) */
	char *l2; /* owned or NULL */
	double value;
};

struct family {
	struct series *slots; /* owned array of cap entries */
	size_t cap, used;
};

struct family_desc {
	const char *name, *help, *l1, *l2;
};

static const struct family_desc counter_desc[STATS_NCOUNTERS] = {
    [STATS_STANZAS_RECEIVED] = {"xtrunk_stanzas_received_total",
				"Stanzas accepted on inbound streams, by the route of their "
				"destination and the peer their sender is routed through.",
				"route", "peer"},
    [STATS_STANZAS_SENT] = {"xtrunk_stanzas_sent_total",
			    "Stanzas written to outbound streams, by route and next hop.", "route",
			    "peer"},
    [STATS_BOUNCES] = {"xtrunk_bounces_total",
		       "Error stanzas returned to senders, by RFC 6120 condition.", "condition",
		       NULL},
    [STATS_DROPPED] = {"xtrunk_stanzas_dropped_total",
		       "Stanzas neither forwarded nor bounced, by reason: mostly error stanzas, "
		       "which are never answered with errors, that could not be delivered.",
		       "reason", NULL},
    [STATS_PAUSES] = {"xtrunk_backpressure_pauses_total",
		      "Inbound streams paused (not read) until the next hop they feed drained, "
		      "by that next hop.",
		      "peer", NULL},
    [STATS_POLICY_REJECTIONS] = {"xtrunk_policy_rejections_total",
				 "Stanzas refused by policy, by rule.", "rule", NULL},
    [STATS_AUTH_FAILURES] = {"xtrunk_auth_failures_total",
			     "Failed stream authentications (dialback, SASL EXTERNAL, "
			     "certificate checks), by reason.",
			     "reason", NULL},
    [STATS_TLS_FAILURES] =
	{"xtrunk_tls_failures_total",
	 "Failed TLS handshakes, by direction (in, out) and reason (protocol-version, "
	 "no-shared-cipher, certificate, alert-received, bad-packet, "
	 "connection-closed, unknown-name, other).",
	 "direction", "reason"},
    [STATS_STREAMS_OPENED] = {"xtrunk_streams_opened_total",
			      "Streams accepted (in) or connected (out).", "direction", NULL},
    [STATS_RELOADS] = {"xtrunk_config_reloads_total", "Configuration reloads, by result.", "result",
		       NULL},
};

static const struct family_desc gauge_desc[STATS_NGAUGES] = {
    [STATS_CONNECTIONS] = {"xtrunk_connections", "Open streams, by direction and state.",
			   "direction", "state"},
    [STATS_QUEUE_STANZAS] = {"xtrunk_queue_stanzas",
			     "Stanzas waiting for their outbound stream, by next hop.", "peer",
			     NULL},
    [STATS_QUEUE_BYTES] = {"xtrunk_queue_bytes",
			   "Bytes waiting for their outbound stream, by next hop.", "peer", NULL},
};

/* Upper bounds in microseconds; rendered in seconds. */
static const uint64_t bucket_us[] = {100,    250,    500,     1000,    2500,
				     5000,   10000,  25000,   50000,   100000,
				     250000, 500000, 1000000, 2500000, 10000000};
#define NBUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))

static struct {
	struct family counters[STATS_NCOUNTERS];
	struct family gauges[STATS_NGAUGES];
	uint64_t buckets[NBUCKETS]; /* cumulative counts are summed when rendering */
	uint64_t lat_count, lat_sum_us;
} st;

static uint64_t hash(const char *a, const char *b)
{
	uint64_t h = 1469598103934665603ULL;
	const char *p;

	for (p = a; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (p = b ? b : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

static int same(const struct series *s, const char *l1, const char *l2)
{
	return strcmp(s->l1, l1) == 0 && strcmp(s->l2 ? s->l2 : "", l2 ? l2 : "") == 0;
}

static struct series *lookup(const struct family *f, const char *l1, const char *l2)
{
	size_t i;

	if (f->cap == 0)
		return NULL;
	for (i = hash(l1, l2) & (f->cap - 1); f->slots[i].l1 != NULL; i = (i + 1) & (f->cap - 1))
		if (same(&f->slots[i], l1, l2))
			return &f->slots[i];
	return NULL;
}

static int grow(struct family *f)
{
	size_t ncap = f->cap ? f->cap * 2 : 16, i;
	struct series *n = calloc(ncap, sizeof(*n));

	if (n == NULL)
		return -ENOMEM;
	for (i = 0; i < f->cap; i++) {
		struct series *o = &f->slots[i];
		size_t j;

		if (o->l1 == NULL)
			continue;
		for (j = hash(o->l1, o->l2) & (ncap - 1); n[j].l1 != NULL; j = (j + 1) & (ncap - 1))
			;
		n[j] = *o;
	}
	free(f->slots);
	f->slots = n;
	f->cap = ncap;
	return 0;
}

/* The series for the labels, created if need be; NULL when out of memory. */
static struct series *get(struct family *f, const char *l1, const char *l2)
{
	struct series *s;
	size_t i;

	l1 = l1 != NULL ? l1 : "";
	s = lookup(f, l1, l2);
	if (s != NULL)
		return s;
	if (f->used >= STATS_MAX_SERIES) {
		l1 = "_other";
		l2 = l2 != NULL ? "_other" : NULL;
		if ((s = lookup(f, l1, l2)) != NULL)
			return s;
	}
	if ((f->used + 1) * 10 > f->cap * 7 && grow(f) < 0)
		return NULL;
	for (i = hash(l1, l2) & (f->cap - 1); f->slots[i].l1 != NULL; i = (i + 1) & (f->cap - 1))
		;
	s = &f->slots[i];
	s->l1 = strdup(l1);
	s->l2 = l2 != NULL ? strdup(l2) : NULL;
	if (s->l1 == NULL || (l2 != NULL && s->l2 == NULL)) {
		free(s->l1);
		free(s->l2);
		s->l1 = s->l2 = NULL;
		return NULL;
	}
	s->value = 0;
	f->used++;
	return s;
}

static void family_free(struct family *f)
{
	size_t i;

	for (i = 0; i < f->cap; i++) {
		free(f->slots[i].l1);
		free(f->slots[i].l2);
	}
	free(f->slots);
	memset(f, 0, sizeof(*f));
}

void stats_count(enum stats_counter c, const char *l1, const char *l2)
{
	struct series *s = get(&st.counters[c], l1, l2);

	if (s != NULL)
		s->value += 1;
}

void stats_gauge_add(enum stats_gauge g, const char *l1, const char *l2, double v)
{
	struct series *s = get(&st.gauges[g], l1, l2);

	if (s != NULL)
		s->value += v;
}

void stats_gauge_reset(void)
{
	size_t i;

	for (i = 0; i < STATS_NGAUGES; i++)
		family_free(&st.gauges[i]);
}

void stats_latency(uint64_t usec)
{
	size_t i;

	for (i = 0; i < NBUCKETS && usec > bucket_us[i]; i++)
		;
	if (i < NBUCKETS)
		st.buckets[i]++;
	st.lat_count++;
	st.lat_sum_us += usec;
}

uint64_t stats_clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t stats_get(enum stats_counter c, const char *l1, const char *l2)
{
	const struct series *s = lookup(&st.counters[c], l1 != NULL ? l1 : "", l2);

	return s != NULL ? (uint64_t)s->value : 0;
}

void stats_foreach(enum stats_counter c,
		   void (*fn)(void *ctx, const char *l1, const char *l2, uint64_t v), void *ctx)
{
	const struct family *f = &st.counters[c];
	size_t i;

	for (i = 0; i < f->cap; i++)
		if (f->slots[i].l1 != NULL)
			fn(ctx, f->slots[i].l1, f->slots[i].l2, (uint64_t)f->slots[i].value);
}

/* ---- rendering ---- */

struct out {
	char *buf; /* owned */
	size_t len, cap;
	int failed;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = 1;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t ncap = (o->cap + (size_t)n + 1) * 2;
		char *nb = realloc(o->buf, ncap);

		if (nb == NULL) {
			o->failed = 1;
			return;
		}
		o->buf = nb;
		o->cap = ncap;
	}
}

/* A label value: backslash, double quote and line feed escaped (0.0.4). */
static void put_value(struct out *o, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			put(o, "\\\\");
		else if (*v == '"')
			put(o, "\\\"");
		else if (*v == '\n')
			put(o, "\\n");
		else
			put(o, "%c", *v);
	}
}

static void put_family(struct out *o, const struct family_desc *d, const struct family *f,
		       const char *type)
{
	size_t i;

	put(o, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, type);
	for (i = 0; i < f->cap; i++) {
		const struct series *s = &f->slots[i];

		if (s->l1 == NULL)
			continue;
		put(o, "%s{%s=\"", d->name, d->l1);
		put_value(o, s->l1);
		if (d->l2 != NULL) {
			put(o, "\",%s=\"", d->l2);
			put_value(o, s->l2 != NULL ? s->l2 : "");
		}
		put(o, "\"} %.17g\n", s->value);
	}
}

int stats_render(char **out, size_t *len)
{
	static const char lat[] = "xtrunk_forward_latency_seconds";
	struct out o = {0};
	uint64_t cum = 0;
	size_t i;

	o.cap = 4096;
	o.buf = malloc(o.cap);
	if (o.buf == NULL)
		return -ENOMEM;
	o.buf[0] = '\0';
	for (i = 0; i < STATS_NCOUNTERS; i++)
		put_family(&o, &counter_desc[i], &st.counters[i], "counter");
	for (i = 0; i < STATS_NGAUGES; i++)
		put_family(&o, &gauge_desc[i], &st.gauges[i], "gauge");
	put(&o,
	    "# HELP %s Time from reading a stanza to writing it toward its next hop "
	    "(queueing while the outbound stream is negotiated included).\n# TYPE %s histogram\n",
	    lat, lat);
	for (i = 0; i < NBUCKETS; i++) {
		cum += st.buckets[i];
		put(&o, "%s_bucket{le=\"%g\"} %llu\n", lat, (double)bucket_us[i] / 1e6,
		    (unsigned long long)cum);
	}
	put(&o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", lat,
	    (unsigned long long)st.lat_count, lat, (double)st.lat_sum_us / 1e6, lat,
	    (unsigned long long)st.lat_count);
	if (o.failed) {
		free(o.buf);
		return -ENOMEM;
	}
	*out = o.buf;
	*len = o.len;
	return 0;
}

void stats_free(void)
{
	size_t i;

	for (i = 0; i < STATS_NCOUNTERS; i++)
		family_free(&st.counters[i]);
	stats_gauge_reset();
	memset(st.buckets, 0, sizeof(st.buckets));
	st.lat_count = st.lat_sum_us = 0;
}
