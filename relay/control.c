/* control: the control socket and the metrics listener (see control.h).
 *
 * A client, either kind, lives like this: accepted, reading (bounded
 * buffer, 5 s timer), then one answer written and the connection closed.
 * Control clients send one line ("status", "reload", "log LEVEL",
 * "trace CATEGORY on|off", "metrics", "ping"); metrics clients send an
 * HTTP request judged by http_parse_request(). Nothing from a client is
 * ever logged beyond the command word.
 *
 * Lifetime: a client embeds two handles (stream, timer); refs counts them
 * plus writes in flight, and the memory goes when the last close or write
 * callback drops it. */
#include "control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "s2s.h"
#include "stats.h"

#define CTL_LINE_MAX 512
#define CLIENT_TIMEOUT_MS 5000
#define MAX_CLIENTS 64

enum client_kind { CLIENT_CONTROL, CLIENT_METRICS };

struct client {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} h;
	uv_timer_t timer;
	enum client_kind kind;
	int refs;
	int closing;
	int answered;
	struct client *next, *prev; /* the client list (borrowed links) */
	size_t len;
	char buf[HTTP_MAX_REQUEST + 1];
};

struct wreq {
	uv_write_t req;
	struct client *c; /* ref (counted in c->refs) */
	size_t len;
	char data[]; /* owned with the request */
};

static struct {
	uv_loop_t *loop; /* borrowed */
	uv_pipe_t ctl;
	uv_tcp_t metrics;
	int ctl_open, metrics_open;
	char *socket_path; /* owned */
	char *config_path; /* owned */
	struct control_hooks hooks;
	struct client *clients;
	unsigned nclients;
	time_t started;
} ctl;

/* ---- answers ---- */

struct text {
	char *buf; /* owned */
	size_t len, cap;
	int failed;
};

static void tput(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tput(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	while (!t->failed) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt,
			      ap);
		va_end(ap);
		if (n < 0) {
			t->failed = 1;
		} else if (t->buf != NULL && (size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		} else {
			size_t ncap = (t->cap + (size_t)n + 1) * 2;
			char *nb = realloc(t->buf, ncap);

			if (nb == NULL)
				t->failed = 1;
			else
				t->buf = nb, t->cap = ncap;
		}
	}
}

static void status_stream(void *ctx, const struct s2s_info *i)
{
	struct text *t = ctx;

	tput(t,
	     "stream=%u dir=%s state=%s address=%s peer=%s local=%s remote=%s auth=%s pairs=%zu "
	     "tls=%s certificate=%s peer-certificate=%s queued=%zu queued-bytes=%zu\n",
	     i->serial, i->direction, i->state, i->address, i->peer, i->local, i->remote, i->auth,
	     i->pairs, i->tls, i->certificate, i->peer_certificate ? "yes" : "no", i->queued,
	     i->queued_bytes);
}

static void count_streams(void *ctx, const struct s2s_info *i)
{
	size_t *n = ctx;

	n[strcmp(i->direction, "in") == 0 ? 0 : 1]++;
}

struct counter_ctx {
	struct text *t;
	const char *name;
};

static void status_counter(void *ctx, const char *l1, const char *l2, uint64_t v)
{
	struct counter_ctx *c = ctx;

	tput(c->t, "counter=%s route=%s peer=%s value=%llu\n", c->name, l1, l2 ? l2 : "-",
	     (unsigned long long)v);
}

static void status(struct text *t)
{
	size_t n[2] = {0, 0};
	char traces[64];
	struct counter_ctx cc = {t, "stanzas-received"};

	s2s_foreach(count_streams, n);
	tput(t,
	     "ok\nxtrunkd pid=%ld uptime-s=%lld config=%s log-level=%s trace=%s streams-in=%zu "
	     "streams-out=%zu\n",
	     (long)getpid(), (long long)(time(NULL) - ctl.started),
	     ctl.config_path ? ctl.config_path : "-", log_level_name(),
	     log_trace_names(traces, sizeof(traces)), n[0], n[1]);
	s2s_foreach(status_stream, t);
	stats_foreach(STATS_STANZAS_RECEIVED, status_counter, &cc);
	cc.name = "stanzas-sent";
	stats_foreach(STATS_STANZAS_SENT, status_counter, &cc);
}

static void gauge_stream(void *ctx, const struct s2s_info *i)
{
	(void)ctx;
	stats_gauge_add(STATS_CONNECTIONS, i->direction, i->state, 1);
	if (strcmp(i->direction, "out") == 0) {
		stats_gauge_add(STATS_QUEUE_STANZAS, i->peer, NULL, (double)i->queued);
		stats_gauge_add(STATS_QUEUE_BYTES, i->peer, NULL, (double)i->queued_bytes);
	}
}

/* The metrics text with the gauges rebuilt from the live streams. */
static int metrics_text(char **out, size_t *len)
{
	if (ctl.hooks.metrics != NULL)
		return ctl.hooks.metrics(out, len);
	stats_gauge_reset();
	s2s_foreach(gauge_stream, NULL);
	return stats_render(out, len);
}

/* Split "word arg1 arg2" in place; returns the number of words (max 3). */
static int split(char *line, char *w[3])
{
	int n = 0;
	char *save = NULL, *tok;

	for (tok = strtok_r(line, " \t", &save); tok != NULL && n < 4;
	     tok = strtok_r(NULL, " \t", &save))
		if (n < 3)
			w[n++] = tok;
		else
			return 4;
	return n;
}

int control_command(const char *line, char **out)
{
	struct text t = {0};
	char copy[CTL_LINE_MAX + 1], *w[3] = {NULL, NULL, NULL};
	int n;

	snprintf(copy, sizeof(copy), "%s", line);
	n = split(copy, w);
	if (n == 0) {
		tput(&t, "error: empty command\n");
	} else if (strcmp(w[0], "ping") == 0 && n == 1) {
		tput(&t, "ok\n");
	} else if (strcmp(w[0], "status") == 0 && n == 1) {
		status(&t);
	} else if (strcmp(w[0], "metrics") == 0 && n == 1) {
		char *m;
		size_t len;

		if (metrics_text(&m, &len) < 0) {
			t.failed = 1;
		} else {
			tput(&t, "ok\n%s", m);
			free(m);
		}
	} else if (strcmp(w[0], "reload") == 0 && n == 1) {
		char msg[1024] = "";

		if (ctl.hooks.reload == NULL)
			tput(&t, "error: reload is not available\n");
		else if (ctl.hooks.reload(msg, sizeof(msg)) < 0)
			tput(&t, "error: reload failed, the old configuration stays: %s\n", msg);
		else
			tput(&t, "ok\n%s%s", msg, msg[0] ? "\n" : "");
	} else if (strcmp(w[0], "log") == 0 && n == 2) {
		if (log_set_level(w[1]) < 0) {
			tput(&t,
			     "error: unknown level \"%.32s\"; use err, warning, info or debug\n",
			     w[1]);
		} else {
			log_info("event=log-level level=%s", log_level_name());
			tput(&t, "ok\nlog-level=%s\n", log_level_name());
		}
	} else if (strcmp(w[0], "trace") == 0 && n == 3 &&
		   (strcmp(w[2], "on") == 0 || strcmp(w[2], "off") == 0)) {
		char names[64];

		if (log_set_trace(w[1], strcmp(w[2], "on") == 0) < 0) {
			tput(
			    &t,
			    "error: unknown trace category \"%.32s\"; use stanza, control, metrics "
			    "or all\n",
			    w[1]);
		} else {
			log_info("event=trace trace=%s", log_trace_names(names, sizeof(names)));
			tput(&t, "ok\ntrace=%s\n", log_trace_names(names, sizeof(names)));
		}
	} else {
		tput(
		    &t,
		    "error: unknown command; use ping, status, metrics, reload, log LEVEL or trace "
		    "CATEGORY on|off\n");
	}
	if (t.failed) {
		free(t.buf);
		return -ENOMEM;
	}
	*out = t.buf;
	return 0;
}

/* ---- clients ---- */

static void client_unref(struct client *c)
{
	if (--c->refs > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		ctl.clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	ctl.nclients--;
	free(c);
}

static void on_client_closed(uv_handle_t *h)
{
	client_unref(h->data);
}

static void client_close(struct client *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_close(&c->h.handle, on_client_closed);
	uv_close((uv_handle_t *)&c->timer, on_client_closed);
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct client *c = w->c;

	free(w);
	client_close(c);
	client_unref(c);
}

/* Write data (copied) and close when it is sent. */
static void client_answer(struct client *c, const char *data, size_t len)
{
	struct wreq *w;
	uv_buf_t b;

	c->answered = 1;
	uv_read_stop(&c->h.stream);
	uv_timer_stop(&c->timer);
	w = malloc(sizeof(*w) + len + 1);
	if (w == NULL) {
		client_close(c);
		return;
	}
	w->c = c;
	w->len = len;
	memcpy(w->data, data, len);
	b = uv_buf_init(w->data, (unsigned)len);
	c->refs++;
	if (uv_write(&w->req, &c->h.stream, &b, 1, on_written) < 0) {
		free(w);
		client_unref(c);
		client_close(c);
	}
}

static void http_answer(struct client *c, int status, int head)
{
	char hdr[256], *body = NULL, *all;
	size_t blen = 0;
	int n;

	if (status == 200 && metrics_text(&body, &blen) < 0)
		status = 503;
	if (status != 200)
		blen = 0;
	n = snprintf(hdr, sizeof(hdr),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		     "Connection: close\r\n\r\n",
		     status, http_reason(status),
		     status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain",
		     blen, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	all = malloc((size_t)n + blen + 1);
	if (all == NULL) {
		free(body);
		client_close(c);
		return;
	}
	memcpy(all, hdr, (size_t)n);
	if (!head && blen > 0)
		memcpy(all + n, body, blen);
	else
		blen = 0;
	log_trace(LOG_TRACE_METRICS, "event=metrics-request status=%d bytes=%zu", status, blen);
	client_answer(c, all, (size_t)n + blen);
	free(all);
	free(body);
}

static void control_line(struct client *c, const char *line)
{
	char *out = NULL;
	char word[16];

	snprintf(word, sizeof(word), "%.*s", (int)strcspn(line, " \t"), line);
	log_trace(LOG_TRACE_CONTROL, "event=control-command command=%s", word);
	if ((ctl.hooks.command != NULL ? ctl.hooks.command(line, &out)
				       : control_command(line, &out)) < 0) {
		client_answer(c, "error: out of memory\n", 21);
		return;
	}
	client_answer(c, out, strlen(out));
	free(out);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client *c = h->data;
	size_t room = sizeof(c->buf) - 1 - c->len;

	(void)suggested;
	*buf = uv_buf_init(c->buf + c->len, (unsigned)room);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct client *c = s->data;

	(void)buf;
	if (c->answered || c->closing)
		return;
	if (nread < 0) {
		client_close(c);
		return;
	}
	c->len += (size_t)nread;
	c->buf[c->len] = '\0';
	if (c->kind == CLIENT_METRICS) {
		int head;
		enum http_verdict v = http_parse_request(c->buf, c->len, &head);

		if (v == HTTP_NEED_MORE && c->len < sizeof(c->buf) - 1)
			return;
		http_answer(c, v == HTTP_NEED_MORE ? HTTP_TOO_LARGE : (int)v, head);
		return;
	}
	{
		char *nl = memchr(c->buf, '\n', c->len);

		if (nl == NULL) {
			if (c->len >= CTL_LINE_MAX)
				client_answer(c, "error: command line too long\n", 29);
			return;
		}
		if ((size_t)(nl - c->buf) > CTL_LINE_MAX) {
			client_answer(c, "error: command line too long\n", 29);
			return;
		}
		*nl = '\0';
		if (nl > c->buf && nl[-1] == '\r')
			nl[-1] = '\0';
		control_line(c, c->buf);
	}
}

static void on_client_timeout(uv_timer_t *t)
{
	struct client *c = t->data;

	if (c->kind == CLIENT_METRICS)
		http_answer(c, 408, 0);
	else
		client_close(c);
}

static void on_accept(uv_stream_t *server, int status)
{
	enum client_kind kind =
	    server == (uv_stream_t *)&ctl.metrics ? CLIENT_METRICS : CLIENT_CONTROL;
	struct client *c;
	int rc;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->kind = kind;
	if (kind == CLIENT_METRICS)
		rc = uv_tcp_init(ctl.loop, &c->h.tcp);
	else
		rc = uv_pipe_init(ctl.loop, &c->h.pipe, 0);
	if (rc < 0) {
		free(c);
		return;
	}
	c->h.handle.data = c;
	uv_timer_init(ctl.loop, &c->timer);
	c->timer.data = c;
	c->refs = 2;
	c->next = ctl.clients;
	if (ctl.clients != NULL)
		ctl.clients->prev = c;
	ctl.clients = c;
	ctl.nclients++;
	if (uv_accept(server, &c->h.stream) < 0 || ctl.nclients > MAX_CLIENTS) {
		client_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_client_timeout, CLIENT_TIMEOUT_MS, 0);
	uv_read_start(&c->h.stream, on_alloc, on_read);
}

/* ---- listeners ---- */

/* A socket file left behind: replace it if nobody answers on it. */
static int clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "control socket %s exists and is not a socket; remove it",
			 path);
		return -EEXIST;
	}
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen,
			 "control socket %s is in use: another xtrunkd is running; stop it or "
			 "set control.socket",
			 path);
		return -EADDRINUSE;
	}
	return unlink(path) < 0 ? -errno : 0;
}

static int start_control(const char *base, char *err, size_t errlen)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 16];
	mode_t old;
	int rc;

	if (ctl.hooks.worker > 0)
		snprintf(path, sizeof(path), "%s.%u", base, ctl.hooks.worker);
	else
		snprintf(path, sizeof(path), "%s", base);

	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, errlen, "control socket path %s is too long; use a shorter one",
			 path);
		return -ENAMETOOLONG;
	}
	rc = clear_stale(path, err, errlen);
	if (rc < 0) {
		if (err[0] == '\0')
			snprintf(err, errlen, "control socket %s: %s", path, strerror(-rc));
		return rc;
	}
	ctl.socket_path = strdup(path);
	if (ctl.socket_path == NULL)
		return -ENOMEM;
	uv_pipe_init(ctl.loop, &ctl.ctl, 0);
	ctl.ctl_open = 1;
	/* owner and group only: the socket's permissions are the access control */
	old = umask(0117);
	rc = uv_pipe_bind(&ctl.ctl, path);
	umask(old);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&ctl.ctl, 16, on_accept);
	if (rc < 0) {
		snprintf(err, errlen,
			 "control socket %s: %s; check that the directory exists and is writable "
			 "by this user",
			 path, uv_strerror(rc));
		free(ctl.socket_path); /* not ours: never unlink it */
		ctl.socket_path = NULL;
		return rc;
	}
	log_info("event=control-listening socket=%s", path);
	return 0;
}

static int start_metrics(const struct config *cfg, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int rc;

	if (cfg->metrics_address == NULL || ctl.hooks.worker > 0)
		return 0;
	if (uv_ip4_addr(cfg->metrics_address, cfg->metrics_port, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(cfg->metrics_address, cfg->metrics_port, (struct sockaddr_in6 *)&ss) != 0) {
		snprintf(err, errlen, "metrics address %s is not numeric", cfg->metrics_address);
		return -EINVAL;
	}
	uv_tcp_init(ctl.loop, &ctl.metrics);
	ctl.metrics_open = 1;
	rc = uv_tcp_bind(&ctl.metrics, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&ctl.metrics, 16, on_accept);
	if (rc < 0) {
		snprintf(err, errlen, "metrics listener %s:%d: %s", cfg->metrics_address,
			 cfg->metrics_port, uv_strerror(rc));
		return rc;
	}
	log_info("event=metrics-listening address=%s:%d", cfg->metrics_address, cfg->metrics_port);
	return 0;
}

int control_start(void *uv_loop, const struct config *cfg, const char *config_path,
		  const struct control_hooks *hooks, char *err, size_t errlen)
{
	int rc;

	err[0] = '\0';
	ctl.loop = uv_loop;
	ctl.hooks = *hooks;
	ctl.started = time(NULL);
	ctl.config_path = strdup(config_path);
	if (ctl.config_path == NULL)
		return -ENOMEM;
	if (cfg->control_socket != NULL) {
		rc = start_control(cfg->control_socket, err, errlen);
	} else {
		/* the default: best effort, so that a relay started by hand or
		 * a second instance still runs (systemd makes the directory) */
		rc = start_control(CONTROL_DEFAULT_SOCKET, err, errlen);
		if (rc < 0) {
			log_warn(
			    "event=control-unavailable error=\"%s\" fix=\"set control.socket\"",
			    err);
			err[0] = '\0';
			rc = 0;
		}
	}
	if (rc == 0)
		rc = start_metrics(cfg, err, errlen);
	return rc;
}

void control_stop(void)
{
	struct client *c, *next;

	if (ctl.ctl_open && !uv_is_closing((uv_handle_t *)&ctl.ctl)) {
		uv_close((uv_handle_t *)&ctl.ctl, NULL);
		if (ctl.socket_path != NULL)
			unlink(ctl.socket_path);
	}
	if (ctl.metrics_open && !uv_is_closing((uv_handle_t *)&ctl.metrics))
		uv_close((uv_handle_t *)&ctl.metrics, NULL);
	for (c = ctl.clients; c != NULL; c = next) {
		next = c->next;
		client_close(c);
	}
	free(ctl.socket_path);
	ctl.socket_path = NULL;
	free(ctl.config_path);
	ctl.config_path = NULL;
}
