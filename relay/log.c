/* log: the daemon's only output channel; stderr with a timestamp in
 * foreground mode, syslog(3) otherwise (journald collects both under
 * systemd). Callers never log secrets or bodies. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define TRACE_FLAG 0x100 /* log_trace(): bypasses the level */

static int log_stderr = 1;
static int log_level = LOG_INFO;
static unsigned log_traces;
static char log_tag[24]; /* "worker=N " in a worker process, else empty */

static const char *const level_names[] = {"emerg",   "alert",  "crit", "err",
					  "warning", "notice", "info", "debug"};
static const struct {
	const char *name;
	unsigned bit;
} trace_names[] = {
    {"stanza", LOG_TRACE_STANZA},
    {"control", LOG_TRACE_CONTROL},
    {"metrics", LOG_TRACE_METRICS},
};

void log_init(int to_stderr, int debug)
{
	log_stderr = to_stderr;
	if (debug) {
		log_level = LOG_DEBUG;
		log_traces = LOG_TRACE_ALL;
	}
	if (!to_stderr)
		openlog("xtrunkd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_worker(unsigned n)
{
	if (n == 0)
		log_tag[0] = '\0';
	else
		snprintf(log_tag, sizeof(log_tag), "worker=%u ", n);
}

int log_debug_enabled(void)
{
	return log_level >= LOG_DEBUG;
}

int log_level_parse(const char *name)
{
	int i;

	for (i = LOG_ERR; i <= LOG_DEBUG; i++)
		if (strcmp(name, level_names[i]) == 0 ||
		    (i == LOG_WARNING && !strcmp(name, "warn")))
			return i;
	return -EINVAL;
}

int log_set_level(const char *name)
{
	int i = log_level_parse(name);

	if (i < 0)
		return i;
	log_level = i;
	return 0;
}

void log_apply(int level, unsigned traces)
{
	if (level >= 0)
		log_level = level;
	log_traces = traces;
}

const char *log_level_name(void)
{
	return level_names[log_level];
}

unsigned log_trace_parse(const char *name)
{
	size_t i;

	if (strcmp(name, "all") == 0)
		return LOG_TRACE_ALL;
	for (i = 0; i < sizeof(trace_names) / sizeof(trace_names[0]); i++)
		if (strcmp(name, trace_names[i].name) == 0)
			return trace_names[i].bit;
	return 0;
}

int log_set_trace(const char *name, int on)
{
	unsigned bit = log_trace_parse(name);

	if (bit == 0)
		return -EINVAL;
	log_traces = on ? log_traces | bit : log_traces & ~bit;
	return 0;
}

const char *log_trace_names(char *buf, unsigned buflen)
{
	size_t i, used = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(trace_names) / sizeof(trace_names[0]); i++) {
		int n;

		if (!(log_traces & trace_names[i].bit))
			continue;
		n = snprintf(buf + used, buflen - used, "%s%s", used ? "," : "",
			     trace_names[i].name);
		if (n < 0 || (size_t)n >= buflen - used)
			break;
		used += (size_t)n;
	}
	return used ? buf : "none";
}

int log_trace_enabled(unsigned cat)
{
	return (log_traces & cat) != 0;
}

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	if (!(prio & TRACE_FLAG) && (prio & 7) > log_level)
		return;
	prio &= 7;
	va_start(ap, fmt);
	if (log_stderr) {
		struct timespec ts;
		struct tm tm;
		char when[32];

		char line[2048];
		int n, m;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
		/* the whole line, then one write: stderr is unbuffered, and
		 * three writes per line made a burst of lines (bounces under
		 * overload) cost more than the stanzas */
		n = snprintf(line, sizeof(line), "%s.%03ld %s %s", when, ts.tv_nsec / 1000000,
			     prio == LOG_WARNING ? "warn" : level_names[prio], log_tag);
		m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
		if (m < 0)
			m = 0;
		if ((size_t)m > sizeof(line) - (size_t)n - 2)
			m = (int)(sizeof(line) - (size_t)n - 2); /* cut: the line's end is lost */
		line[n + m] = '\n';
		fwrite(line, 1, (size_t)(n + m + 1), stderr);
	} else if (log_tag[0] != '\0') {
		char line[2048];

		vsnprintf(line, sizeof(line), fmt, ap);
		syslog(prio, "%s%s", log_tag, line);
	} else {
		vsyslog(prio, fmt, ap);
	}
	va_end(ap);
}
