/* fanout: what the supervisor of xtrunkd's worker processes (workers > 1)
 * makes of its workers' answers, sans-I/O: their Prometheus texts summed
 * into one, their control answers joined into one, and the restart budget
 * of a worker that keeps dying. */
#ifndef XT_FANOUT_H
#define XT_FANOUT_H

#include <stddef.h>
#include <stdint.h>

/* Sum n Prometheus text expositions (format 0.0.4, as stats_render writes
 * them): every sample with the same name and labels is added up across
 * the texts; each family keeps its HELP and TYPE lines and its samples
 * together, in the order they were first seen. Counters, gauges and
 * histogram buckets of independent processes all sum. *out (caller frees,
 * NUL-terminated) and *len. 0, -EINVAL for a line that is not a comment
 * or "NAME[{LABELS}] VALUE", or -ENOMEM. */
int fanout_sum_metrics(const char *const *texts, size_t n, char **out, size_t *len);

/* One control answer from n workers' answers (each "ok\n..." or
 * "error: ...\n"; NULL for a worker that did not answer). The result
 * starts with head (e.g. "ok\nxtrunkd pid=... workers=2\n"), then every
 * line after the first of each answer, prefixed "worker=N " (N = index +
 * 1); a worker that answered "error: X" or nothing adds a line
 * "worker=N error=\"X\"". *failed counts those. *out: caller frees. */
int fanout_join(const char *head, const char *const *answers, size_t n, char **out,
		unsigned *failed);

/* The restart budget: at most FANOUT_RESTARTS restarts of one worker in
 * FANOUT_WINDOW_MS. times holds the worker's last FANOUT_RESTARTS restart
 * times (ms, 0 = none), oldest first. Returns 1 and records now if another
 * restart is allowed, 0 if the worker has used its budget. */
#define FANOUT_RESTARTS 5
#define FANOUT_WINDOW_MS 60000
int fanout_may_restart(uint64_t times[FANOUT_RESTARTS], uint64_t now);

#endif
