/* log: one line per event, key=value, to stderr (foreground) or syslog.
 * A level (err, warning, info, debug) filters lines; trace categories add
 * per-stanza and per-request lines. Both can change while running. */
#ifndef XT_LOG_H
#define XT_LOG_H

#include <syslog.h>

/* Trace categories (bits). */
enum log_trace {
	LOG_TRACE_STANZA = 1,  /* one line per stanza routed or queued */
	LOG_TRACE_CONTROL = 2, /* control-socket commands */
	LOG_TRACE_METRICS = 4, /* metrics requests */
	LOG_TRACE_ALL = 7
};

void log_init(int to_stderr, int debug);
/* In worker process n (xtrunkd workers = N), every line starts with
 * "worker=n "; 0: no tag (the only process, or the supervisor). */
void log_set_worker(unsigned n);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_debug_enabled(void);
/* Level by name ("err", "warning", "info", "debug"): 0 or -EINVAL. */
int log_set_level(const char *name);
/* The syslog level of a name, or -EINVAL; the trace bit of a category
 * name ("all" included), or 0 (for the configuration loader). */
int log_level_parse(const char *name);
unsigned log_trace_parse(const char *name);
/* Set both at once (configuration, SIGHUP); level < 0 leaves it. */
void log_apply(int level, unsigned traces);
const char *log_level_name(void);
/* Category by name ("stanza", "control", "metrics", "all"): 0 or -EINVAL. */
int log_set_trace(const char *name, int on);
/* The categories switched on, as "stanza,control" or "none". */
const char *log_trace_names(char *buf, unsigned buflen);
int log_trace_enabled(unsigned cat);

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_debug_enabled())                                                           \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)
/* Emitted when the category is on, whatever the level. */
#define log_trace(cat, ...)                                                                        \
	do {                                                                                       \
		if (log_trace_enabled(cat))                                                        \
			log_msg(LOG_DEBUG | 0x100, __VA_ARGS__);                                   \
	} while (0)

#endif
