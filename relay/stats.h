/* stats: the relay's counters, gauges and forwarding-latency histogram,
 * kept in memory and rendered as Prometheus text (exposition format
 * 0.0.4). Sans-I/O: s2s counts events here, the metrics listener and the
 * control socket read them. Single-threaded (the event loop). */
#ifndef XT_STATS_H
#define XT_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Counters (monotonic, "_total"). The comment names the labels. */
enum stats_counter {
	STATS_STANZAS_RECEIVED,	 /* route, peer: accepted on an inbound stream */
	STATS_STANZAS_SENT,	 /* route, peer: written to an outbound stream */
	STATS_BOUNCES,		 /* condition */
	STATS_DROPPED,		 /* reason: stanzas neither forwarded nor bounced */
	STATS_PAUSES,		 /* peer: inbound streams paused for a slow next hop */
	STATS_POLICY_REJECTIONS, /* rule */
	STATS_AUTH_FAILURES,	 /* reason */
	STATS_TLS_FAILURES,	 /* direction, reason */
	STATS_STREAMS_OPENED,	 /* direction */
	STATS_RELOADS,		 /* result */
	STATS_NCOUNTERS
};

/* Gauges: rebuilt from the live streams before each rendering. */
enum stats_gauge {
	STATS_CONNECTIONS,   /* direction, state */
	STATS_QUEUE_STANZAS, /* peer: stanzas waiting for their outbound stream */
	STATS_QUEUE_BYTES,   /* peer */
	STATS_NGAUGES
};

/* Beyond this many label sets per metric, new ones are counted under
 * the label value "_other", so memory stays bounded however many routes
 * or reasons there are. */
#define STATS_MAX_SERIES 4096

/* Add one. l2 is NULL for one-label metrics. Label values are copied. */
void stats_count(enum stats_counter c, const char *l1, const char *l2);
/* Add v to a gauge series. */
void stats_gauge_add(enum stats_gauge g, const char *l1, const char *l2, double v);
/* Forget every gauge series (before rebuilding them). */
void stats_gauge_reset(void);
/* One forwarded stanza took usec from being read to being written out. */
void stats_latency(uint64_t usec);

/* Microseconds on a monotonic clock, for stats_latency(). */
uint64_t stats_clock_us(void);

/* Current value of a counter series, 0 if never counted. */
uint64_t stats_get(enum stats_counter c, const char *l1, const char *l2);
/* Calls fn for every series of c (order unspecified). */
void stats_foreach(enum stats_counter c,
		   void (*fn)(void *ctx, const char *l1, const char *l2, uint64_t v), void *ctx);

/* The whole text exposition, NUL-terminated, in *out (caller frees).
 * 0 or -ENOMEM. */
int stats_render(char **out, size_t *len);

/* Forget everything (tests) and free the memory. */
void stats_free(void);

#endif
