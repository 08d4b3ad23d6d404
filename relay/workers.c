/* workers: the supervisor of xtrunkd's worker processes (see workers.h).
 *
 * The listeners are bound here, once, and inherited by the workers, rather
 * than bound by each worker: a privileged port or a socket handed over by
 * systemd is opened once for every worker alike; a bind error (address in
 * use) is reported once, before any worker runs; and since the supervisor
 * keeps every socket open, a worker that dies does not take the
 * connections waiting in its accept queue with it: they wait for its
 * successor. Each worker gets its own socket of a SO_REUSEPORT group per
 * listen entry, so the kernel spreads new connections over the workers by
 * their address hash (one shared socket let whichever worker woke first
 * take a whole burst: in the benchmark, all 10 streams went to one worker
 * in one run of five). A socket from systemd (socket activation) is one per
 * address and is shared by all workers.
 *
 * Workers are this same binary (uv_spawn of /proc/self/exe with the same
 * arguments) with WORKERS_ENV_* set. Their sd_notify messages come here:
 * NOTIFY_SOCKET points them at an abstract datagram socket of the
 * supervisor, which learns the sender from SO_PASSCRED and tells systemd
 * READY=1 once every worker has said it, RELOADING=1 while any worker
 * reloads, and STOPPING=1 on SIGTERM.
 *
 * The control socket's commands are answered by asking each worker over
 * its own socket (PATH.N), blocking, one worker after the other, with a
 * 5 s timeout each: the supervisor carries no traffic, so a slow answer
 * delays only other control clients and signals.
 *
 * States: running (workers restarted when they die), stopping (SIGTERM
 * forwarded, no restarts; after the drain time plus 10 s a worker still
 * there is killed), done when the last worker has exited: the handles are
 * closed and the loop ends. */
#include "workers.h"

#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <uv.h>

#include "config.h"
#include "control.h"
#include "fanout.h"
#include "log.h"

#define ASK_TIMEOUT_S 5
#define ASK_MAX (64u << 20) /* bytes of one worker's answer */
#define RESTART_DELAY_MS 200
#define MAX_WORKERS 64

extern char **environ;

struct worker {
	uv_process_t proc;
	uv_timer_t restart; /* the delay before a dead worker runs again */
	unsigned n;	    /* 1..N */
	int running;	    /* proc is a live child */
	int ready, reloading;
	int last_status; /* exit status of the last exit, or 128 + signal */
	uint64_t restarts[FANOUT_RESTARTS];
	char env_number[32]; /* WORKERS_ENV_NUMBER=n */
};

static struct {
	uv_loop_t loop;
	const struct config *cfg; /* borrowed from main */
	const char *config_path;  /* borrowed */
	char **argv;		  /* borrowed: main's, argv[0] replaced */
	char exe[4096];
	struct worker *w; /* owned array of n */
	unsigned n;
	int *fds; /* owned: n x nfds listening sockets, worker w's at [w * nfds] */
	size_t nfds;
	char **env; /* owned array; the strings below or borrowed from environ */
	char env_fds[48], env_parent[48], env_notify[128];
	int notify_fd;
	uv_poll_t notify;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t kill_timer;
	int stopping, ready_told, reload_pending, failed;
	char reload_status[512]; /* the first worker's failed-reload STATUS= */
	char ctl_base[256];	 /* the control socket workers add ".N" to */
	time_t started;
} S;

/* ---- the listeners, bound once */

int workers_inherited_fd(const struct sockaddr_storage *ss, int first, int count)
{
	int fd;

	for (fd = first; fd < first + count; fd++) {
		struct sockaddr_storage got;
		socklen_t len = sizeof(got);

		if (getsockname(fd, (struct sockaddr *)&got, &len) < 0 ||
		    got.ss_family != ss->ss_family)
			continue;
		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)ss, *b = (const void *)&got;

			if (a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr)
				return fd;
		} else if (ss->ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)ss, *b = (const void *)&got;

			if (a->sin6_port == b->sin6_port &&
			    memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0)
				return fd;
		}
	}
	return -1;
}

/* fds[w * nlisten + i]: worker w's socket for listen entry i. Each
 * worker gets its own socket of a SO_REUSEPORT group, all bound here, so
 * the kernel spreads new connections over the workers by their address
 * hash; a socket systemd passed (one per address) is shared by all. */
static int bind_all(void)
{
	/* socket activation: systemd's sockets for the addresses it has */
	int nsd = sd_listen_fds(1), k;
	char used[64] = {0};
	size_t i;
	unsigned w;

	nsd = nsd > 64 ? 64 : nsd < 0 ? 0 : nsd;
	S.nfds = S.cfg->nlisten;
	S.fds = malloc(S.nfds * S.n * sizeof(*S.fds));
	if (S.fds == NULL)
		return -ENOMEM;
	for (i = 0; i < S.nfds * S.n; i++)
		S.fds[i] = -1;
	for (i = 0; i < S.cfg->nlisten; i++) {
		const struct cfg_listen *l = &S.cfg->listen[i];
		struct sockaddr_storage ss;
		socklen_t sl;
		int one = 1, fd;

		if (uv_ip4_addr(l->address, l->port, (struct sockaddr_in *)&ss) == 0) {
			sl = sizeof(struct sockaddr_in);
		} else if (uv_ip6_addr(l->address, l->port, (struct sockaddr_in6 *)&ss) == 0) {
			sl = sizeof(struct sockaddr_in6);
		} else {
			log_err("event=listen-failed address=%s reason=not-a-numeric-address",
				l->address);
			return -EINVAL;
		}
		fd = workers_inherited_fd(&ss, SD_LISTEN_FDS_START, nsd);
		if (fd >= 0) {
			used[fd - SD_LISTEN_FDS_START] = 1;
			for (w = 0; w < S.n; w++)
				S.fds[w * S.nfds + i] = fd;
			log_info("event=socket-activated address=%s:%d fd=%d workers=%u",
				 l->address, l->port, fd, S.n);
			continue;
		}
		for (w = 0; w < S.n; w++) {
			fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (fd < 0)
				return -errno;
			S.fds[w * S.nfds + i] = fd;
			/* as uv_tcp_bind does, so that a restart finds the port free */
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
			    bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 511) < 0) {
				int e = errno;

				log_err("event=listen-failed address=%s:%d error=%s", l->address,
					l->port, strerror(e));
				return -e;
			}
		}
		log_info("event=listening address=%s:%d%s workers=%u", l->address, l->port,
			 l->direct_tls ? " direct-tls=yes" : "", S.n);
	}
	for (k = 0; k < nsd; k++)
		if (!used[k]) {
			log_warn("event=socket-unused fd=%d reason=\"matches no listen entry\"",
				 SD_LISTEN_FDS_START + k);
			close(SD_LISTEN_FDS_START + k);
		}
	return 0;
}

/* ---- spawning */

static int skip_env(const char *e)
{
	static const char *const drop[] = {
	    "NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "XTRUNKD_"};
	size_t i;

	for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		if (strncmp(e, drop[i], strlen(drop[i])) == 0)
			return 1;
	return 0;
}

/* environ without what we set, then ours; slot 0 is the worker number. */
static int build_env(void)
{
	size_t n = 0, i, k = 1;

	while (environ[n] != NULL)
		n++;
	S.env = calloc(n + 8, sizeof(*S.env));
	if (S.env == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (!skip_env(environ[i]))
			S.env[k++] = environ[i];
	snprintf(S.env_fds, sizeof(S.env_fds), WORKERS_ENV_FDS "=%zu", S.nfds);
	snprintf(S.env_parent, sizeof(S.env_parent), WORKERS_ENV_PARENT "=%ld", (long)getpid());
	S.env[k++] = S.env_fds;
	S.env[k++] = S.env_parent;
	S.env[k++] = S.env_notify;
	S.env[k] = NULL;
	return 0;
}

static void on_exit_worker(uv_process_t *p, int64_t status, int signum);

static int spawn(struct worker *w)
{
	uv_stdio_container_t stdio[3 + 64];
	uv_process_options_t o = {0};
	size_t i;
	int rc;

	if (S.nfds > 64)
		return -E2BIG;
	for (i = 0; i < 3; i++) {
		stdio[i].flags = UV_INHERIT_FD;
		stdio[i].data.fd = (int)i;
	}
	for (i = 0; i < S.nfds; i++) {
		stdio[WORKERS_FIRST_FD + i].flags = UV_INHERIT_FD;
		stdio[WORKERS_FIRST_FD + i].data.fd = S.fds[(w->n - 1) * S.nfds + i];
	}
	snprintf(w->env_number, sizeof(w->env_number), WORKERS_ENV_NUMBER "=%u", w->n);
	S.env[0] = w->env_number;
	o.file = S.exe;
	o.args = S.argv;
	o.env = S.env;
	o.stdio = stdio;
	o.stdio_count = WORKERS_FIRST_FD + (int)S.nfds;
	o.exit_cb = on_exit_worker;
	w->ready = w->reloading = 0;
	rc = uv_spawn(&S.loop, &w->proc, &o);
	if (rc < 0) {
		log_err("event=worker-spawn-failed worker=%u error=%s", w->n, uv_strerror(rc));
		uv_close((uv_handle_t *)&w->proc, NULL);
		return rc;
	}
	w->running = 1;
	w->proc.data = w;
	log_info("event=worker-started worker=%u pid=%d", w->n, w->proc.pid);
	return 0;
}

/* ---- stopping */

static void close_handles(void)
{
	unsigned i;

	control_stop();
	uv_poll_stop(&S.notify);
	uv_close((uv_handle_t *)&S.notify, NULL);
	uv_close((uv_handle_t *)&S.sig_term, NULL);
	uv_close((uv_handle_t *)&S.sig_int, NULL);
	uv_close((uv_handle_t *)&S.sig_hup, NULL);
	uv_close((uv_handle_t *)&S.kill_timer, NULL);
	for (i = 0; i < S.n; i++)
		uv_close((uv_handle_t *)&S.w[i].restart, NULL);
}

static unsigned nrunning(void)
{
	unsigned i, k = 0;

	for (i = 0; i < S.n; i++)
		k += S.w[i].running;
	return k;
}

static void on_kill_timer(uv_timer_t *t)
{
	unsigned i;

	(void)t;
	for (i = 0; i < S.n; i++)
		if (S.w[i].running) {
			log_err("event=worker-kill worker=%u pid=%d reason=drain-overrun", S.w[i].n,
				S.w[i].proc.pid);
			uv_process_kill(&S.w[i].proc, SIGKILL);
			S.failed = 1;
		}
}

static void stop(int signum)
{
	unsigned i;

	if (S.stopping)
		return;
	S.stopping = 1;
	sd_notify(0, "STOPPING=1\nSTATUS=Draining: workers are stopping");
	log_info("event=stopping signal=%d workers=%u", signum, nrunning());
	for (i = 0; i < S.n; i++) {
		uv_timer_stop(&S.w[i].restart);
		if (S.w[i].running)
			uv_process_kill(&S.w[i].proc, SIGTERM);
	}
	/* each worker drains for at most handshake_timeout */
	uv_timer_start(&S.kill_timer, on_kill_timer,
		       (uint64_t)S.cfg->handshake_timeout * 1000 + 10000, 0);
	if (nrunning() == 0)
		close_handles();
}

static void on_restart(uv_timer_t *t)
{
	struct worker *w = t->data;

	if (!S.stopping && !w->running && spawn(w) < 0) {
		S.failed = 1;
		stop(0);
	}
}

static void on_exit_worker(uv_process_t *p, int64_t status, int signum)
{
	struct worker *w = p->data;

	w->running = 0;
	w->ready = 0;
	w->reloading = 0;
	w->last_status = signum ? 128 + signum : (int)status;
	uv_close((uv_handle_t *)p, NULL);
	if (S.stopping) {
		log_info("event=worker-stopped worker=%u pid=%d status=%d%s", w->n, p->pid,
			 (int)status, signum ? " signal=yes" : "");
		if (status != 0 || signum != 0)
			S.failed = 1;
		if (nrunning() == 0)
			close_handles();
		return;
	}
	log_err("event=worker-exited worker=%u pid=%d status=%d signal=%d", w->n, p->pid,
		(int)status, signum);
	if (!fanout_may_restart(w->restarts, uv_now(&S.loop))) {
		log_err("event=worker-gave-up worker=%u restarts=%d window-s=%d", w->n,
			FANOUT_RESTARTS, FANOUT_WINDOW_MS / 1000);
		S.failed = 1;
		stop(0);
		return;
	}
	uv_timer_start(&w->restart, on_restart, RESTART_DELAY_MS, 0);
}

/* ---- notifications from the workers */

static struct worker *by_pid(pid_t pid)
{
	unsigned i;

	for (i = 0; i < S.n; i++)
		if (S.w[i].running && S.w[i].proc.pid == pid)
			return &S.w[i];
	return NULL;
}

static int has_line(const char *msg, const char *line)
{
	size_t n = strlen(line);
	const char *p = msg;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == msg || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return 1;
		p += n;
	}
	return 0;
}

static void tell_ready(void)
{
	unsigned i;

	for (i = 0; i < S.n; i++)
		if (!S.w[i].ready || S.w[i].reloading)
			return;
	if (!S.ready_told) {
		S.ready_told = 1;
		log_info("event=started config=%s workers=%u listeners=%zu peers=%zu",
			 S.config_path, S.n, S.nfds, S.cfg->npeers);
		sd_notifyf(0,
			   "READY=1\nSTATUS=Relaying: %u workers, %zu listeners, %zu peers\n"
			   "MAINPID=%ld",
			   S.n, S.nfds, S.cfg->npeers, (long)getpid());
	} else if (S.reload_pending && S.reload_status[0] != '\0') {
		sd_notifyf(0, "READY=1\nSTATUS=%s", S.reload_status);
	} else if (S.reload_pending) {
		sd_notifyf(0, "READY=1\nSTATUS=Relaying: %u workers, configuration reloaded", S.n);
	}
	S.reload_pending = 0;
	S.reload_status[0] = '\0';
}

/* A reload began in worker w, or in every ready worker (w == NULL: a
 * SIGHUP or "xtrunkctl reload" here): RELOADING=1 until all are ready. */
static void start_reload(struct worker *w)
{
	unsigned i;

	if (!S.reload_pending && S.ready_told) {
		S.reload_pending = 1;
		S.reload_status[0] = '\0';
		sd_notify(0, "RELOADING=1\nSTATUS=Reloading the configuration");
	}
	for (i = 0; i < S.n; i++)
		if (S.w[i].running && S.w[i].ready && (w == NULL || w == &S.w[i]))
			S.w[i].reloading = 1;
}

static void on_notify(uv_poll_t *h, int status, int events)
{
	char buf[4096], cbuf[CMSG_SPACE(sizeof(struct ucred))];

	(void)h;
	(void)events;
	if (status < 0)
		return;
	for (;;) {
		struct iovec iov = {buf, sizeof(buf) - 1};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = cbuf,
				   .msg_controllen = sizeof(cbuf)};
		struct cmsghdr *c;
		struct worker *w = NULL;
		ssize_t n = recvmsg(S.notify_fd, &m, MSG_DONTWAIT);

		if (n < 0)
			return;
		buf[n] = '\0';
		for (c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
				struct ucred cr;

				memcpy(&cr, CMSG_DATA(c), sizeof(cr));
				w = by_pid(cr.pid);
			}
		if (w == NULL)
			continue; /* not one of ours */
		if (has_line(buf, "RELOADING=1") && !w->reloading && w->ready)
			start_reload(w);
		if (has_line(buf, "READY=1")) {
			const char *st = strstr(buf, "STATUS=Reload failed");

			if (st != NULL && S.reload_status[0] == '\0')
				snprintf(S.reload_status, sizeof(S.reload_status),
					 "worker %u: %.*s", w->n, (int)strcspn(st + 7, "\n"),
					 st + 7);
			if (!w->ready)
				log_info("event=worker-ready worker=%u pid=%d", w->n, w->proc.pid);
			w->ready = 1;
			w->reloading = 0;
			tell_ready();
		}
	}
}

static int open_notify(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int one = 1, len;
	unsigned r = (unsigned)time(NULL) ^ ((unsigned)getpid() << 8);

	S.notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (S.notify_fd < 0)
		return -errno;
	if (setsockopt(S.notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
		return -errno;
	/* abstract: nothing in the file system to clean up or protect; the
	 * sender's PID (SO_PASSCRED) decides whether a message counts */
	len = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "xtrunkd-notify-%ld-%08x",
		       (long)getpid(), r);
	if (bind(S.notify_fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len)) < 0)
		return -errno;
	snprintf(S.env_notify, sizeof(S.env_notify), "NOTIFY_SOCKET=@%s", sa.sun_path + 1);
	uv_poll_init(&S.loop, &S.notify, S.notify_fd);
	return uv_poll_start(&S.notify, UV_READABLE, on_notify);
}

/* ---- asking the workers (control socket) */

/* Worker n's answer to line, NUL-terminated (caller frees), or NULL. */
static char *ask(unsigned n, const char *line)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {ASK_TIMEOUT_S, 0};
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%u", S.ctl_base, n) >=
	    sizeof(sa.sun_path))
		return NULL;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, line, strlen(line)) != (ssize_t)strlen(line) || write(fd, "\n", 1) != 1) {
		close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t r;

		if (cap - len < 4096) {
			char *nb = cap + 65536 > ASK_MAX ? NULL : realloc(buf, cap + 65536);

			if (nb == NULL)
				break;
			buf = nb;
			cap += 65536;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r == 0) {
			close(fd);
			buf[len] = '\0';
			return buf;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	free(buf);
	return NULL;
}

static void free_answers(char **a)
{
	unsigned i;

	for (i = 0; i < S.n; i++)
		free(a[i]);
}

static void ask_all(const char *line, char **answers)
{
	unsigned i;

	for (i = 0; i < S.n; i++)
		answers[i] = ask(i + 1, line);
}

static int sup_metrics(char **out, size_t *len)
{
	char *a[MAX_WORKERS];
	const char *texts[MAX_WORKERS];
	unsigned i;
	int rc = 0;

	ask_all("metrics", a);
	for (i = 0; i < S.n; i++) {
		if (a[i] == NULL || strncmp(a[i], "ok\n", 3) != 0) {
			/* a partial sum would look like counters going back */
			log_warn("event=metrics-incomplete worker=%u", i + 1);
			rc = -EAGAIN;
			break;
		}
		texts[i] = a[i] + 3;
	}
	if (rc == 0)
		rc = fanout_sum_metrics(texts, S.n, out, len);
	free_answers(a);
	return rc;
}

static int sup_reload(char *msg, size_t msglen)
{
	char *a[MAX_WORKERS], *joined = NULL;
	unsigned failed = 0;
	int rc;

	if (S.stopping) {
		snprintf(msg, msglen, "the daemon is stopping");
		return -ECANCELED;
	}
	start_reload(NULL);
	ask_all("reload", a);
	rc = fanout_join("", (const char *const *)a, S.n, &joined, &failed);
	free_answers(a);
	if (rc < 0)
		return rc;
	snprintf(msg, msglen, "%.*s", joined[0] ? (int)strlen(joined) - 1 : 0, joined);
	free(joined);
	return failed ? -EINVAL : 0;
}

static int sup_command(const char *line, char **out)
{
	char word[16], head[1024], traces[64];
	char *a[MAX_WORKERS], *local = NULL;
	size_t wlen = strcspn(line, " \t");
	unsigned failed = 0;
	int rc;

	/* not snprintf "%.*s": gcc -O1 -fsanitize takes line for NULL there */
	wlen = wlen < sizeof(word) ? wlen : sizeof(word) - 1;
	memcpy(word, line, wlen);
	word[wlen] = '\0';
	if (strcmp(word, "reload") == 0 && strcmp(line, "reload") == 0) {
		char msg[4096];
		int r = sup_reload(msg, sizeof(msg));
		size_t need = strlen(msg) + 64;

		*out = malloc(need);
		if (*out == NULL)
			return -ENOMEM;
		if (r < 0)
			snprintf(*out, need,
				 "error: reload failed, the old configuration stays: %s\n", msg);
		else
			snprintf(*out, need, "ok\n%s%s", msg, msg[0] ? "\n" : "");
		return 0;
	}
	if (strcmp(word, "status") != 0 && strcmp(word, "ping") != 0 && strcmp(word, "log") != 0 &&
	    strcmp(word, "trace") != 0)
		return control_command(line, out); /* metrics (summed), errors */
	/* the supervisor checks the line (and switches its own log lines) */
	rc = control_command(line, &local);
	if (rc < 0)
		return rc;
	if (strncmp(local, "ok\n", 3) != 0) {
		*out = local;
		return 0;
	}
	free(local);
	ask_all(line, a);
	if (strcmp(word, "status") == 0)
		snprintf(head, sizeof(head),
			 "ok\nxtrunkd pid=%ld workers=%u uptime-s=%lld config=%s log-level=%s "
			 "trace=%s\n",
			 (long)getpid(), S.n, (long long)(time(NULL) - S.started), S.config_path,
			 log_level_name(), log_trace_names(traces, sizeof(traces)));
	else
		snprintf(head, sizeof(head), "ok\n");
	rc = fanout_join(head, (const char *const *)a, S.n, out, &failed);
	free_answers(a);
	if (rc == 0 && failed && strcmp(word, "status") != 0) {
		/* ping, log, trace: an error if any worker did not do it */
		char *o = *out;
		size_t need = strlen(o) + 64;

		*out = malloc(need);
		if (*out == NULL) {
			free(o);
			return -ENOMEM;
		}
		snprintf(*out, need, "error: %u of %u workers failed:\n%s", failed, S.n, o + 3);
		free(o);
	}
	return rc;
}

/* ---- signals */

static void on_signal(uv_signal_t *h, int signum)
{
	unsigned i;

	(void)h;
	if (signum != SIGHUP) {
		stop(signum);
		return;
	}
	if (S.stopping)
		return;
	log_info("event=reload-forwarded workers=%u", nrunning());
	start_reload(NULL);
	for (i = 0; i < S.n; i++)
		if (S.w[i].running)
			uv_process_kill(&S.w[i].proc, SIGHUP);
}

int workers_run(const struct config *cfg, const char *config_path, char **argv, unsigned n)
{
	static const struct control_hooks hooks = {
	    .reload = sup_reload, .command = sup_command, .metrics = sup_metrics};
	size_t exelen = sizeof(S.exe);
	char err[1024];
	unsigned i;
	int rc;

	S.cfg = cfg;
	S.config_path = config_path;
	S.argv = argv;
	S.n = n > MAX_WORKERS ? MAX_WORKERS : n;
	S.started = time(NULL);
	snprintf(S.ctl_base, sizeof(S.ctl_base), "%s",
		 cfg->control_socket ? cfg->control_socket : CONTROL_DEFAULT_SOCKET);
	if (uv_exepath(S.exe, &exelen) < 0) {
		log_err("event=worker-spawn-failed reason=\"cannot find the xtrunkd binary\"");
		return 1;
	}
	argv[0] = S.exe;
	if (uv_loop_init(&S.loop) < 0)
		return 1;
	S.w = calloc(S.n, sizeof(*S.w));
	if (S.w == NULL || bind_all() < 0 || open_notify() < 0 || build_env() < 0) {
		log_err("event=start-failed workers=%u", S.n);
		return 1;
	}
	uv_signal_init(&S.loop, &S.sig_term);
	uv_signal_init(&S.loop, &S.sig_int);
	uv_signal_init(&S.loop, &S.sig_hup);
	uv_signal_start(&S.sig_term, on_signal, SIGTERM);
	uv_signal_start(&S.sig_int, on_signal, SIGINT);
	uv_signal_start(&S.sig_hup, on_signal, SIGHUP);
	uv_timer_init(&S.loop, &S.kill_timer);
	rc = control_start(&S.loop, cfg, config_path, &hooks, err, sizeof(err));
	if (rc < 0) {
		log_err("event=control-failed error=\"%s\"", err);
		S.failed = 1;
	}
	for (i = 0; i < S.n; i++) {
		S.w[i].n = i + 1;
		uv_timer_init(&S.loop, &S.w[i].restart);
		S.w[i].restart.data = &S.w[i];
	}
	for (i = 0; i < S.n && rc == 0; i++)
		if (spawn(&S.w[i]) < 0) {
			S.failed = 1;
			break;
		}
	if (S.failed)
		stop(0);
	uv_run(&S.loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&S.loop);
	log_info("event=stopped workers=%u loop-close=%d", S.n, rc);
	for (i = 0; S.fds != NULL && i < S.nfds * S.n; i++)
		if (S.fds[i] >= 0 && (i < S.nfds || S.fds[i] != S.fds[i % S.nfds]))
			close(S.fds[i]);
	close(S.notify_fd);
	free(S.fds);
	free(S.env);
	free(S.w);
	return S.failed ? 1 : 0;
}
