/* fuzz_label: libFuzzer target for the ESS security label decoder
 * (policy/label.c over libtasn1). The input is tried as DER and as base64
 * text. Whatever decodes must encode back to exactly the bytes decoded
 * (one encoding per label), and decode again to the same label. */
#include "label.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_stable(const struct ess_label *l, const uint8_t *der, size_t len)
{
	unsigned char again[LABEL_DER_MAX];
	static char b64[LABEL_DER_MAX * 2];
	static struct ess_label l2;
	size_t n;

	if (ess_encode(l, again, sizeof(again), &n) != 0)
		abort();
	if (der != NULL && (n != len || memcmp(again, der, len) != 0))
		abort();
	if (ess_to_base64(l, b64, sizeof(b64)) != 0 || ess_from_base64(b64, &l2) != 0)
		abort();
	if (strcmp(l2.policy, l->policy) != 0 || l2.has_class != l->has_class ||
	    l2.classification != l->classification || l2.ncats != l->ncats ||
	    strcmp(l2.privacy, l->privacy) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ess_label l;
	char *text;

	if (ess_decode(data, size, &l) == 0)
		check_stable(&l, data, size);
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (ess_from_base64(text, &l) == 0)
		check_stable(&l, NULL, 0);
	free(text);
	return 0;
}
