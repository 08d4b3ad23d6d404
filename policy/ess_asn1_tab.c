#if HAVE_CONFIG_H
#include "config.h"
#endif

#include <libtasn1.h>

const asn1_static_node ess_asn1_tab[] = {{"XTRUNK-ESS", 536875024, NULL},
					 {NULL, 1610612748, NULL},
					 {NULL, 1073741825, "1"},
					 {NULL, 1073741825, "3"},
					 {NULL, 1073741825, "6"},
					 {NULL, 1073741825, "1"},
					 {NULL, 1073741825, "4"},
					 {NULL, 1073741825, "1"},
					 {NULL, 1073741825, "99999"},
					 {NULL, 1, "0"},
					 {"ESSSecurityLabel", 1610612750, NULL},
					 {"security-classification", 1275084803, NULL},
					 {"security-policy-identifier", 1275068428, NULL},
					 {"privacy-mark", 1275084802, "ESSPrivacyMark"},
					 {"security-categories", 201342978, "SecurityCategories"},
					 {"ESSPrivacyMark", 1610612754, NULL},
					 {"pString", 1073741855, NULL},
					 {"utf8String", 34, NULL},
					 {"SecurityCategories", 1612709903, NULL},
					 {"64", 1074266122, "1"},
					 {NULL, 2, "SecurityCategory"},
					 {"SecurityCategory", 1610612741, NULL},
					 {"type", 1610620940, NULL},
					 {NULL, 4104, "0"},
					 {"value", 536879117, NULL},
					 {NULL, 2056, "1"},
					 {"CategoryText", 34, NULL},
					 {NULL, 0, NULL}};
