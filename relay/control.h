/* control: the daemon's two local service endpoints, both on the event
 * loop: the control socket (a unix stream socket whose file-system
 * permissions decide who may use it; one command line in, one answer out,
 * for xtrunkctl) and the optional metrics listener (HTTP GET /metrics,
 * Prometheus text, loopback by default). */
#ifndef XT_CONTROL_H
#define XT_CONTROL_H

#include <stddef.h>

struct config;

/* What the control socket asks of main. */
struct control_hooks {
	/* Reload the configuration like SIGHUP: 0, or -errno with why in msg. */
	int (*reload)(char *msg, size_t msglen);
	/* Worker process n of a supervisor (workers > 1): the control socket
	 * is PATH.n, where PATH is control.socket (or the default), and there
	 * is no metrics listener (the supervisor has it). 0: neither. */
	unsigned worker;
	/* The supervisor's answers, when set: every command line (like
	 * control_command) and the metrics text (like stats_render). */
	int (*command)(const char *line, char **out);
	int (*metrics)(char **out, size_t *len);
};

/* Open the control socket cfg->control_socket (mode 0660; a stale socket
 * left by a dead daemon is replaced, a live one is an error) and, if
 * configured, the metrics listener. Without control.socket the default
 * CONTROL_DEFAULT_SOCKET is tried (its directory, made by systemd's
 * RuntimeDirectory=, must exist), and failing that the daemon runs without
 * one, with a warning. uv_loop is a
 * uv_loop_t *. 0, or -errno with err set. */
#define CONTROL_DEFAULT_SOCKET "/run/xtrunk/control.sock"
int control_start(void *uv_loop, const struct config *cfg, const char *config_path,
		  const struct control_hooks *hooks, char *err, size_t errlen);
/* Close the listeners and every client, remove the socket file. Idempotent. */
void control_stop(void);

/* The answer to one control command line (without its line end), as
 * text in *out (caller frees): "ok\n..." or "error: ...\n". 0 or -ENOMEM. */
int control_command(const char *line, char **out);

#endif
