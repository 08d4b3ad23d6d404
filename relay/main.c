/* main: command line, configuration, listeners, signals and the event
 * loop of xtrunkd. fatal() is allowed only here, before the loop runs. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "ca.h"
#include "config.h"
#include "log.h"
#include "net.h"
#include "route.h"
#include "s2s.h"
#include "store.h"
#include "tls.h"

#define DEFAULT_CONFIG "/etc/xtrunk/xtrunkd.conf"

struct listener {
	uv_tcp_t tcp;
	int direct_tls;
	char name[80];
};

static struct listener *listeners; /* owned array */
static size_t nlisteners;
static uv_signal_t sig_term, sig_int, sig_hup;
static int stopping;

static int is_routed(void *ctx, const char *domain)
{
	const struct config *cfg = ctx;

	return route_lookup(cfg->routes, domain) != NULL;
}

/* The certificate store and enclave CA, when configured. */
static int load_store(struct config *cfg, struct store **out, char *err, size_t errlen)
{
	struct store_params p = {0};
	struct ca *ca = NULL;
	int rc;

	*out = NULL;
	if (cfg->tls_store == NULL && cfg->tls_ca_certificate == NULL)
		return 0;
	if (cfg->tls_ca_certificate != NULL &&
	    ca_load(cfg->tls_ca_certificate, cfg->tls_ca_key, &ca, err, errlen) < 0)
		return -EINVAL;
	p.dir = cfg->tls_store;
	p.ca = ca;
	p.routed = is_routed;
	p.routed_ctx = cfg;
	p.lifetime = cfg->tls_issue_lifetime;
	rc = store_load(&p, out, err, errlen);
	ca_unref(ca); /* the store holds its own reference */
	return rc;
}

static void usage(void)
{
	fprintf(stderr, "usage: xtrunkd [-dnkv] [-f file]\n");
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

static int listen_all(uv_loop_t *loop, const struct config *cfg)
{
	size_t i;

	listeners = calloc(cfg->nlisten, sizeof(*listeners));
	if (listeners == NULL)
		return -ENOMEM;
	for (i = 0; i < cfg->nlisten; i++) {
		struct sockaddr_storage ss;
		struct listener *l = &listeners[i];
		int rc;

		if (uv_ip4_addr(cfg->listen[i].address, cfg->listen[i].port,
				(struct sockaddr_in *)&ss) != 0 &&
		    uv_ip6_addr(cfg->listen[i].address, cfg->listen[i].port,
				(struct sockaddr_in6 *)&ss) != 0) {
			log_err("event=listen-failed address=%s reason=not-a-numeric-address",
				cfg->listen[i].address);
			return -EINVAL;
		}
		snprintf(l->name, sizeof(l->name), "%s:%d", cfg->listen[i].address,
			 cfg->listen[i].port);
		uv_tcp_init(loop, &l->tcp);
		l->direct_tls = cfg->listen[i].direct_tls;
		nlisteners++;
		rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
		if (rc < 0) {
			log_err("event=listen-failed address=%s error=%s", l->name,
				uv_strerror(rc));
			return rc;
		}
		log_info("event=listening address=%s%s", l->name,
			 l->direct_tls ? " direct-tls=yes" : "");
	}
	return 0;
}

static void close_all(void)
{
	size_t i;

	for (i = 0; i < nlisteners; i++)
		if (!uv_is_closing((uv_handle_t *)&listeners[i].tcp))
			uv_close((uv_handle_t *)&listeners[i].tcp, NULL);
	if (!uv_is_closing((uv_handle_t *)&sig_term)) {
		uv_close((uv_handle_t *)&sig_term, NULL);
		uv_close((uv_handle_t *)&sig_int, NULL);
		uv_close((uv_handle_t *)&sig_hup, NULL);
	}
}

static void on_signal(uv_signal_t *h, int signum)
{
	if (signum == SIGHUP) {
		log_warn("event=reload-unsupported reason=\"SIGHUP reload is not implemented yet; "
			 "restart to apply a new configuration\"");
		return;
	}
	if (stopping)
		return;
	stopping = 1;
	log_info("event=stopping signal=%d", signum);
	s2s_shutdown();
	close_all();
}

int main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	int foreground = 0, test = 0, keys = 0, debug = 0, opt, rc;
	struct config *cfg = NULL;
	struct tls_creds *server_creds = NULL;
	struct store *store = NULL;
	char err[1024] = "";
	uv_loop_t loop;

	while ((opt = getopt(argc, argv, "df:hknv")) != -1) {
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
	if (config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "xtrunkd: %s\n", err);
		return 1;
	}
	if (tls_set_priority(cfg->tls_priority, err, sizeof(err)) < 0 ||
	    load_store(cfg, &store, err, sizeof(err)) < 0) {
		fprintf(stderr, "xtrunkd: %s: tls: %s\n", path, err);
		config_unref(cfg);
		return 1;
	}
	if (cfg->tls_inbound != CFG_TLS_NONE &&
	    tls_creds_server(cfg->tls_certificate, cfg->tls_key, store, &server_creds, err,
			     sizeof(err)) < 0) {
		fprintf(stderr, "xtrunkd: %s: tls: %s\n", path, err);
		store_unref(store);
		config_unref(cfg);
		return 1;
	}
	if (test) {
		rc = s2s_init(cfg, server_creds, store, err, sizeof(err));
		if (rc < 0)
			fprintf(stderr, "xtrunkd: %s: peers: %s\n", path, err);
		else
			printf("%s: configuration OK\n", path);
		s2s_free();
		tls_creds_free(server_creds);
		store_unref(store);
		config_unref(cfg);
		return rc < 0 ? 1 : 0;
	}
	log_init(foreground, debug);
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&loop) < 0) {
		fprintf(stderr, "xtrunkd: cannot initialise the event loop\n");
		return 1;
	}
	net_set_loop(&loop);
	if (s2s_init(cfg, server_creds, store, err, sizeof(err)) < 0) {
		fprintf(stderr, "xtrunkd: %s: peers: %s\n", path, err);
		return 1;
	}
	uv_signal_init(&loop, &sig_term);
	uv_signal_init(&loop, &sig_int);
	uv_signal_init(&loop, &sig_hup);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_hup, on_signal, SIGHUP);
	rc = listen_all(&loop, cfg);
	if (rc < 0) {
		close_all();
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		return 1;
	}
	log_info("event=started config=%s listeners=%zu peers=%zu", path, nlisteners, cfg->npeers);
	uv_run(&loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&loop);
	log_info("event=stopped loop-close=%d", rc);
	free(listeners);
	s2s_free();
	tls_creds_free(server_creds);
	store_unref(store);
	config_unref(cfg);
	return 0;
}
