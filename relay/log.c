/* log: the daemon's only output channel; stderr with a timestamp in
 * foreground mode, syslog(3) otherwise. Callers never log secrets or bodies. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int log_stderr = 1;
static int log_debug_on;

void log_init(int to_stderr, int debug)
{
	log_stderr = to_stderr;
	log_debug_on = debug;
	if (!to_stderr)
		openlog("xtrunkd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int log_debug_enabled(void)
{
	return log_debug_on;
}

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (log_stderr) {
		static const char *const names[] = {"emerg", "alert",  "crit", "err",
						    "warn",  "notice", "info", "debug"};
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s ", when, ts.tv_nsec / 1000000, names[prio & 7]);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	} else {
		vsyslog(prio, fmt, ap);
	}
	va_end(ap);
}
