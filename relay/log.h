/* log: one line per event, key=value, to stderr (foreground) or syslog. */
#ifndef XT_LOG_H
#define XT_LOG_H

#include <syslog.h>

void log_init(int to_stderr, int debug);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_debug_enabled(void);

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_debug_enabled())                                                           \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)

#endif
