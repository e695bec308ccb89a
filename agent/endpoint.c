/* Endpoint templating. A segment is a placeholder when it is an identifier by its
 * shape alone, so two requests for different users land on one endpoint without
 * any configuration; what shapes miss (slugs, names) --endpoint patterns catch. */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "endpoint.h"

static bool ep_all(const char *s, size_t n, int (*cls)(int))
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!cls((unsigned char)s[i]))
			return false;
	return n > 0;
}

static bool ep_uuid(const char *s, size_t n)
{
	static const size_t dash[] = { 8, 13, 18, 23 };
	size_t i, d = 0;

	if (n != 36)
		return false;
	for (i = 0; i < n; i++) {
		if (d < 4 && i == dash[d]) {
			if (s[i] != '-')
				return false;
			d++;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

/* YYYY-MM-DD, optionally followed by a time ("T..." ISO 8601). */
static bool ep_date(const char *s, size_t n)
{
	if (n < 10 || !ep_all(s, 4, isdigit) || s[4] != '-' || !ep_all(s + 5, 2, isdigit) ||
	    s[7] != '-' || !ep_all(s + 8, 2, isdigit))
		return false;
	return n == 10 || s[10] == 'T' || s[10] == 't';
}

const char *endpoint_segment_kind(const char *s, size_t n)
{
	size_t i, digits = 0;

	if (ep_all(s, n, isdigit))
		return "{int}";
	if (ep_uuid(s, n))
		return "{uuid}";
	if (ep_date(s, n))
		return "{date}";
	if (n >= 12 && ep_all(s, n, isxdigit)) {
		for (i = 0; i < n; i++)
			digits += isdigit((unsigned char)s[i]) != 0;
		/* a word of a-f letters only ("facade") is no id */
		if (digits && (n >= 16 || digits < n))
			return "{hex}";
	}
	return NULL;
}

static void ep_put(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
	if (*o + 1 >= outlen)
		return;
	if (n > outlen - 1 - *o)
		n = outlen - 1 - *o;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
}

void endpoint_name(const char *method, size_t mlen, const char *target, size_t tlen,
		   const char *const *patterns, int npat, char *out, size_t outlen)
{
	const char *p = target, *e = target + tlen, *q;
	char full[ENDPOINT_MAX * 2];
	size_t o = 0;
	int i;

	if (!outlen)
		return;
	out[0] = '\0';
	if (tlen > 8 && (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0)) {
		p = memchr(p, ':', tlen) + 3;
		q = memchr(p, '/', (size_t)(e - p));
		p = q ? q : e;
	}
	q = memchr(p, '?', (size_t)(e - p));
	if (q)
		e = q;
	q = memchr(p, '#', (size_t)(e - p));
	if (q)
		e = q;
	if (npat > 0) {
		snprintf(full, sizeof(full), "%.*s %.*s", (int)(mlen < 32 ? mlen : 32), method,
			 (int)(e - p < ENDPOINT_MAX ? e - p : ENDPOINT_MAX), p);
		for (i = 0; i < npat; i++)
			if (fnmatch(patterns[i], full, FNM_NOESCAPE) == 0 ||
			    (patterns[i][0] == '*' && patterns[i][1] == ' ' &&
			     fnmatch(patterns[i] + 2, strchr(full, ' ') + 1, FNM_NOESCAPE) == 0)) {
				ep_put(out, outlen, &o, patterns[i], strlen(patterns[i]));
				return;
			}
	}
	ep_put(out, outlen, &o, method, mlen);
	ep_put(out, outlen, &o, " ", 1);
	if (p == e)
		ep_put(out, outlen, &o, "/", 1);
	while (p < e) {
		const char *s = p + (*p == '/'), *se = memchr(s, '/', (size_t)(e - s));
		const char *kind;

		if (!se)
			se = e;
		if (*p == '/')
			ep_put(out, outlen, &o, "/", 1);
		kind = endpoint_segment_kind(s, (size_t)(se - s));
		if (kind)
			ep_put(out, outlen, &o, kind, strlen(kind));
		else
			ep_put(out, outlen, &o, s, (size_t)(se - s));
		p = se;
	}
}

bool endpoint_pattern_valid(const char *pattern)
{
	const char *sp = strchr(pattern, ' ');

	return sp && sp > pattern && (sp[1] == '/' || sp[1] == '*') && !strchr(sp + 1, ' ');
}

bool endpoint_ignore_valid(const char *rule)
{
	const char *sp = strrchr(rule, ' ');

	return sp && sp > rule && sp[1];
}

bool endpoint_ignore_match(const char *rule, const char *endpoint, const char *path)
{
	const char *sp = strrchr(rule, ' ');
	char ep[ENDPOINT_MAX];
	size_t n, pl;

	if (!sp || (size_t)(sp - rule) >= sizeof(ep))
		return false;
	n = (size_t)(sp - rule);
	memcpy(ep, rule, n);
	ep[n] = '\0';
	if (strcmp(ep, "*") && strcmp(ep, endpoint) && fnmatch(ep, endpoint, FNM_NOESCAPE))
		return false;
	sp++;
	pl = strlen(sp);
	if (pl && sp[pl - 1] == '*')
		return strncmp(sp, path, pl - 1) == 0;
	return strcmp(sp, path) == 0;
}
