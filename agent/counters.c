#include <string.h>

#include "counters.h"

const struct ctr_desc ctr_desc[CTR_N] = {
#define CTR_DESC(id, group, name) [CTR_##id] = { group, name },
	CTR_LIST(CTR_DESC)
#undef CTR_DESC
};

void ctr_print_group(FILE *f, const struct counters *c, const char *group)
{
	int i;

	for (i = 0; i < CTR_N; i++)
		if (!strcmp(ctr_desc[i].group, group))
			fprintf(f, " %s=%llu", ctr_desc[i].name, (unsigned long long)ctr_get(c, (enum ctr_id)i));
}
