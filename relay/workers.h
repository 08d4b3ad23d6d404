/* workers: xtrunkd with workers = N > 1. The process started (the
 * supervisor) binds the listeners once, then runs N copies of itself
 * (worker processes, each the ordinary one-loop relay) that inherit the
 * listening sockets and accept on them. The supervisor relays no stanza:
 * it forwards SIGHUP and SIGTERM, restarts a worker that dies (at most
 * FANOUT_RESTARTS times a minute each), tells systemd READY=1 when every
 * worker is ready, and owns the control socket and the metrics listener,
 * answering from its workers' own control sockets (PATH.1 ... PATH.N):
 * status lines joined with "worker=N", metrics summed. */
#ifndef XT_WORKERS_H
#define XT_WORKERS_H

struct config;

/* The environment that makes xtrunkd a worker: its number (1..N), the
 * number of listening sockets it inherits as fds 3, 4, ..., and the
 * supervisor's PID. */
#define WORKERS_ENV_NUMBER "XTRUNKD_WORKER"
#define WORKERS_ENV_FDS "XTRUNKD_LISTEN_FDS"
#define WORKERS_ENV_PARENT "XTRUNKD_PARENT"
#define WORKERS_FIRST_FD 3

struct sockaddr_storage;

/* The listening socket among fds first .. first + count - 1 that is
 * bound to ss (address and port), or -1: how a worker finds the sockets
 * its supervisor bound, and xtrunkd those systemd passed (socket
 * activation, sd_listen_fds). */
int workers_inherited_fd(const struct sockaddr_storage *ss, int first, int count);

/* Supervise n workers running argv (xtrunkd's own command line) with the
 * configuration cfg (already loaded and valid) from config_path. Returns
 * the process exit status: 0 after a SIGTERM drain in which every worker
 * stopped cleanly, 1 otherwise (listeners not bound, a worker out of its
 * restart budget, a worker that exited with an error while stopping). */
int workers_run(const struct config *cfg, const char *config_path, char **argv, unsigned n);

#endif
