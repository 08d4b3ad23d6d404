/* ops: xtrunkctl's configuration and control-socket commands. Each takes
 * the command's own argv (argv[0] is the command name) and returns the
 * exit status: 0 success, 1 failure, 2 usage. */
#ifndef XT_OPS_H
#define XT_OPS_H

int ops_check(int argc, char **argv);
int ops_route(int argc, char **argv);
/* status, reload, log, trace, metrics, ping: sent to the daemon as typed. */
int ops_remote(int argc, char **argv);

#endif
