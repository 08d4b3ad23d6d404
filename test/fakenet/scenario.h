/* scenario: set-up shared by the tests that drive the whole relay
 * (relay/s2s*.c) through the fake network: a temporary directory with a
 * throwaway CA and a relay certificate, a configuration written from a
 * template, the runtime snapshot loaded from it and s2s started. */
#ifndef XT_SCENARIO_H
#define XT_SCENARIO_H

#include <stddef.h>

struct runtime;

/* Make the directory and the PKI (DIR/ca.pem, DIR/ca.key, DIR/relay.pem,
 * DIR/relay.key for relay.example), write conf_template to DIR/relay.conf
 * with every "@DIR@" replaced, load it, reset fakenet and call s2s_init.
 * Returns 0, or -1 with a message in err. */
int scen_setup(const char *conf_template, char *err, size_t errlen);
/* The directory made by scen_setup (borrowed). */
const char *scen_dir(void);
/* The runtime s2s runs on (borrowed). */
struct runtime *scen_runtime(void);
/* Load another template into a new snapshot and s2s_reload it. */
int scen_reload(const char *conf_template, char *err, size_t errlen);
/* End this run and start a fresh one on the same snapshot: s2s_shutdown,
 * deliver every close, s2s_free, fakenet_reset, s2s_init. Returns the
 * number of connections still open before the reset (0 expected). */
size_t scen_restart(void);
/* s2s_shutdown, deliver every close, s2s_free, remove the directory.
 * Returns the number of connections still open afterwards (0 expected). */
size_t scen_teardown(void);

#endif
