/* policy_config: builds the struct policy_set of a config snapshot from the
 * libconfig tree the config loader already checked against config_keys[]
 * (types and integer ranges): security_labels, policies, audit, and the
 * policy attributes of peers and routes. Errors read "FILE:LINE: problem;
 * fix", like every config error. */
#ifndef XT_POLICY_CONFIG_H
#define XT_POLICY_CONFIG_H

#include <stddef.h>

#include <libconfig.h>

struct policy_set;

/* root: the file's root setting; path: the file name for messages; npeers:
 * the number of entries of the peers list (indexes match the config's).
 * Returns 0 with *out set, or -EINVAL / -ENOMEM with err filled. */
int policy_set_load(const config_setting_t *root, const char *path, size_t npeers,
		    struct policy_set **out, char *err, size_t errlen);

#endif
