/* main: command line, configuration, listeners, signals and the event
 * loop of xtrunkd, and what it tells systemd (sd_notify: READY=1 once
 * listening, RELOADING=1 ... READY=1 around a reload, STOPPING=1 on
 * SIGTERM, STATUS= lines). fatal() is allowed only here, before the loop
 * runs. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <uv.h>

#include "audit.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "net.h"
#include "runtime.h"
#include "s2s.h"
#include "stats.h"
#include "workers.h"

#define DEFAULT_CONFIG "/etc/xtrunk/xtrunkd.conf"

struct listener {
	uv_tcp_t tcp;
	int direct_tls;
	char name[80];
};

static struct listener *listeners; /* owned array */
static size_t nlisteners;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t drain_timer;
static uint64_t drain_deadline; /* loop time, ms */
static int stopping;
static const char *config_path;
static struct runtime *current; /* ref */
static unsigned worker;		/* this process is worker N of a supervisor; 0: alone */
static int inherited_fds;	/* listening sockets from the supervisor or systemd: fds 3.. */

static void usage(void)
{
	fprintf(stderr, "usage: xtrunkd [-dnkv] [-f file] [-w workers]\n");
	exit(2);
}

static void on_connection(uv_stream_t *server, int status)
{
	if (status < 0) {
		log_warn("event=accept-failed error=%s", uv_strerror(status));
		return;
	}
	s2s_accept(server, ((struct listener *)server)->direct_tls);
}

/* Bind (or take from the supervisor or systemd) every configured listener.
 * A socket systemd passed that matches no listen entry is closed. */
static int listen_all(uv_loop_t *loop, const struct config *cfg)
{
	char *used; /* owned: which inherited fds a listener took */
	size_t i;
	int rc = 0, fd;

	listeners = calloc(cfg->nlisten, sizeof(*listeners));
	used = calloc((size_t)inherited_fds + 1, 1);
	if (listeners == NULL || used == NULL) {
		free(used);
		return -ENOMEM;
	}
	for (i = 0; i < cfg->nlisten; i++) {
		struct sockaddr_storage ss;
		struct listener *l = &listeners[i];

		if (uv_ip4_addr(cfg->listen[i].address, cfg->listen[i].port,
				(struct sockaddr_in *)&ss) != 0 &&
		    uv_ip6_addr(cfg->listen[i].address, cfg->listen[i].port,
				(struct sockaddr_in6 *)&ss) != 0) {
			log_err("event=listen-failed address=%s reason=not-a-numeric-address",
				cfg->listen[i].address);
			rc = -EINVAL;
			break;
		}
		snprintf(l->name, sizeof(l->name), "%s:%d", cfg->listen[i].address,
			 cfg->listen[i].port);
		uv_tcp_init(loop, &l->tcp);
		l->direct_tls = cfg->listen[i].direct_tls;
		nlisteners++;
		fd = inherited_fds > 0 ? workers_inherited_fd(&ss, WORKERS_FIRST_FD, inherited_fds)
				       : -1;
		if (fd >= 0) {
			/* a worker: the supervisor bound it (workers.c says why);
			 * or systemd did (socket activation) */
			rc = uv_tcp_open(&l->tcp, fd);
			used[fd - WORKERS_FIRST_FD] = 1;
			if (worker == 0)
				log_info("event=socket-activated address=%s fd=%d", l->name, fd);
		} else if (worker > 0) {
			rc = UV_ENOENT;
		} else {
			rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
		}
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
		if (rc < 0) {
			log_err("event=listen-failed address=%s error=%s", l->name,
				uv_strerror(rc));
			break;
		}
		log_info("event=listening address=%s%s", l->name,
			 l->direct_tls ? " direct-tls=yes" : "");
	}
	for (fd = 0; worker == 0 && fd < inherited_fds; fd++)
		if (!used[fd]) {
			log_warn("event=socket-unused fd=%d reason=\"matches no listen entry\"",
				 WORKERS_FIRST_FD + fd);
			close(WORKERS_FIRST_FD + fd);
		}
	free(used);
	return rc;
}

static void close_all(void)
{
	size_t i;

	for (i = 0; i < nlisteners; i++)
		if (!uv_is_closing((uv_handle_t *)&listeners[i].tcp))
			uv_close((uv_handle_t *)&listeners[i].tcp, NULL);
	if (!uv_is_closing((uv_handle_t *)&drain_timer))
		uv_close((uv_handle_t *)&drain_timer, NULL);
	control_stop();
	if (!uv_is_closing((uv_handle_t *)&sig_term)) {
		uv_close((uv_handle_t *)&sig_term, NULL);
		uv_close((uv_handle_t *)&sig_int, NULL);
		uv_close((uv_handle_t *)&sig_hup, NULL);
	}
}

static int listeners_same(const struct config *a, const struct config *b)
{
	size_t i;

	if (a->nlisten != b->nlisten)
		return 0;
	for (i = 0; i < a->nlisten; i++)
		if (a->listen[i].port != b->listen[i].port ||
		    a->listen[i].direct_tls != b->listen[i].direct_tls ||
		    strcmp(a->listen[i].address, b->listen[i].address) != 0)
			return 0;
	return 1;
}

/* SIGTERM drain: until the queues are delivered or the deadline passes. */
static void on_drain_tick(uv_timer_t *t)
{
	size_t left = s2s_pending();

	if (left > 0 && uv_now(t->loop) < drain_deadline)
		return;
	log_info("event=drained complete=%s", left == 0 ? "yes" : "no");
	s2s_shutdown();
	close_all();
}

static int ops_same(const struct config *a, const struct config *b)
{
	return !a->control_socket == !b->control_socket &&
	       (a->control_socket == NULL || strcmp(a->control_socket, b->control_socket) == 0) &&
	       a->metrics_port == b->metrics_port && !a->metrics_address == !b->metrics_address &&
	       (a->metrics_address == NULL || strcmp(a->metrics_address, b->metrics_address) == 0);
}

static int log_from_cli; /* -v: the command line's log settings win */

/* log.level and log.traces from the configuration, at start and on each
 * reload (undoing what xtrunkctl log/trace changed meanwhile). */
static void apply_log(const struct config *c)
{
	if (!log_from_cli)
		log_apply(c->log_level >= 0 ? c->log_level : LOG_INFO, c->log_traces);
}

/* SIGHUP and "xtrunkctl reload": a new snapshot, or the old one kept.
 * msg gets a one-line result. */
static int reload(char *msg, size_t msglen)
{
	char err[1024];
	struct runtime *rt;

	if (stopping) {
		snprintf(msg, msglen, "the daemon is stopping");
		return -ECANCELED;
	}
	sd_notify(0, "RELOADING=1\nSTATUS=Reloading the configuration");
	rt = runtime_load(config_path, current, err, sizeof(err));
	if (rt == NULL) {
		log_err("event=reload-failed keeping=old-configuration error=\"%s\"", err);
		stats_count(STATS_RELOADS, "failed", NULL);
		sd_notifyf(0, "READY=1\nSTATUS=Reload failed, old configuration kept: %s", err);
		snprintf(msg, msglen, "%s", err);
		return -EINVAL;
	}
	msg[0] = '\0';
	if (!listeners_same(current->cfg, rt->cfg) || !ops_same(current->cfg, rt->cfg)) {
		log_warn("event=reload-partial reason=\"listen, control and metrics changes need "
			 "a restart\"");
		snprintf(msg, msglen,
			 "reloaded; listen, control and metrics changes need a restart");
	}
	s2s_reload(rt);
	runtime_unref(current);
	current = rt;
	apply_log(rt->cfg);
	stats_count(STATS_RELOADS, "ok", NULL);
	sd_notifyf(0, "READY=1\nSTATUS=Relaying: %zu peers, configuration reloaded",
		   rt->cfg->npeers);
	return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
	if (signum == SIGHUP) {
		char msg[1024];

		audit_reopen(); /* log rotation, whether or not the config reloads */
		reload(msg, sizeof(msg));
		return;
	}
	if (stopping)
		return;
	stopping = 1;
	sd_notify(0, "STOPPING=1\nSTATUS=Draining queued stanzas");
	log_info("event=stopping signal=%d drain-timeout-s=%u", signum,
		 current->cfg->handshake_timeout);
	/* Listeners stay open while draining: a next hop verifying our
	 * dialback key calls back here. */
	s2s_drain();
	drain_deadline = uv_now(h->loop) + (uint64_t)current->cfg->handshake_timeout * 1000;
	uv_timer_start(&drain_timer, on_drain_tick, 0, 100);
}

int main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	int foreground = 0, test = 0, keys = 0, debug = 0, opt, rc;
	char err[1024] = "";
	uv_loop_t loop;

	long nworkers = 0;
	const char *env;

	while ((opt = getopt(argc, argv, "df:hknvw:")) != -1) {
		switch (opt) {
		case 'd':
			foreground = 1;
			break;
		case 'f':
			path = optarg;
			break;
		case 'k':
			keys = 1;
			break;
		case 'n':
			test = 1;
			break;
		case 'v':
			debug = 1;
			break;
		case 'w': {
			char *end;

			nworkers = strtol(optarg, &end, 10);
			if (*end != '\0' || nworkers < 1 || nworkers > 64) {
				fprintf(stderr, "xtrunkd: -w takes a number of workers from 1 "
						"to 64\n");
				return 2;
			}
			break;
		}
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (keys) {
		const struct config_key *k;

		for (k = config_keys; k->path != NULL; k++)
			printf("%s\n", k->path);
		return 0;
	}
	config_path = path;
	current = runtime_load(path, NULL, err, sizeof(err));
	if (current == NULL) {
		fprintf(stderr, "xtrunkd: %s\n", err);
		return 1;
	}
	if (current->cfg->warnings != NULL && getenv(WORKERS_ENV_NUMBER) == NULL)
		fputs(current->cfg->warnings, stderr);
	if (test) {
		printf("%s: configuration OK\n", path);
		runtime_unref(current);
		return 0;
	}
	log_init(foreground, debug);
	log_from_cli = debug;
	apply_log(current->cfg);
	signal(SIGPIPE, SIG_IGN);
	if ((env = getenv(WORKERS_ENV_NUMBER)) != NULL) {
		const char *fds = getenv(WORKERS_ENV_FDS), *parent = getenv(WORKERS_ENV_PARENT);

		worker = (unsigned)atoi(env);
		inherited_fds = fds ? atoi(fds) : 0;
		log_set_worker(worker);
		/* the supervisor gone (even by SIGKILL), the worker drains and ends */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (worker == 0 || parent == NULL || getppid() != (pid_t)atol(parent)) {
			log_err("event=worker-orphaned reason=\"the supervisor is gone\"");
			return 1;
		}
	} else {
		unsigned n = nworkers > 0 ? (unsigned)nworkers : current->cfg->workers;

		if (n > 1) {
			/* the supervisor takes systemd's sockets itself */
			rc = workers_run(current->cfg, path, argv, n);
			runtime_unref(current);
			return rc;
		}
		/* socket activation: systemd's sockets are fds 3.. like a worker's */
		rc = sd_listen_fds(1);
		inherited_fds = rc > 0 ? rc : 0;
	}
	if (uv_loop_init(&loop) < 0) {
		fprintf(stderr, "xtrunkd: cannot initialise the event loop\n");
		return 1;
	}
	net_set_loop(&loop);
	s2s_init(current);
	uv_timer_init(&loop, &drain_timer);
	uv_signal_init(&loop, &sig_term);
	uv_signal_init(&loop, &sig_int);
	uv_signal_init(&loop, &sig_hup);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_hup, on_signal, SIGHUP);
	rc = listen_all(&loop, current->cfg);
	if (rc == 0) {
		struct control_hooks hooks = {.reload = reload, .worker = worker};

		rc = control_start(&loop, current->cfg, path, &hooks, err, sizeof(err));
		if (rc < 0)
			log_err("event=control-failed error=\"%s\"", err);
	}
	if (rc < 0) {
		close_all();
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		return 1;
	}
	log_info("event=started config=%s listeners=%zu peers=%zu", path, nlisteners,
		 current->cfg->npeers);
	sd_notifyf(0, "READY=1\nSTATUS=Relaying: %zu listeners, %zu peers\nMAINPID=%ld", nlisteners,
		   current->cfg->npeers, (long)getpid());
	uv_run(&loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&loop);
	log_info("event=stopped loop-close=%d", rc);
	free(listeners);
	s2s_free();
	stats_free();
	runtime_unref(current);
	return 0;
}
