/* URL userinfo removal for printing; see urlsafe.h. */
#include <stdio.h>
#include <string.h>

#include "urlsafe.h"

/* The userinfo of the URL starting at p and ending at e: [*u, *at] with *at on '@',
 * or false. The authority ends at the first '/', '?' or '#'. */
static bool url_userinfo(const char *p, const char *e, const char **u, const char **at)
{
	const char *s = p, *a, *end;

	for (a = p; a + 2 < e; a++)
		if (a[0] == ':' && a[1] == '/' && a[2] == '/') {
			s = a + 3;
			break;
		}
	for (end = s; end < e && *end != '/' && *end != '?' && *end != '#'; end++)
		;
	/* the last '@' of the authority: a password may contain '@' unescaped */
	for (a = end; a > s; a--)
		if (a[-1] == '@') {
			*u = s;
			*at = a - 1;
			return true;
		}
	return false;
}

bool url_has_userinfo(const char *url)
{
	const char *u, *at;

	return url && url_userinfo(url, url + strlen(url), &u, &at);
}

static size_t url_put(char *out, size_t n, size_t o, const char *p, size_t len)
{
	if (o + 1 >= n)
		return o;
	if (len > n - 1 - o)
		len = n - 1 - o;
	memcpy(out + o, p, len);
	out[o + len] = '\0';
	return o + len;
}

static size_t url_put_one(char *out, size_t n, size_t o, const char *p, const char *e)
{
	const char *u, *at;

	if (url_userinfo(p, e, &u, &at)) {
		o = url_put(out, n, o, p, (size_t)(u - p));
		return url_put(out, n, o, at + 1, (size_t)(e - at - 1));
	}
	return url_put(out, n, o, p, (size_t)(e - p));
}

const char *url_printable(const char *url, char *out, size_t n)
{
	if (!n)
		return "";
	out[0] = '\0';
	if (url)
		url_put_one(out, n, 0, url, url + strlen(url));
	return out;
}

const char *url_list_printable(const char *urls, char *out, size_t n)
{
	const char *p = urls, *c;
	size_t o = 0;

	if (!n)
		return "";
	out[0] = '\0';
	while (p && *p) {
		c = strchr(p, ',');
		if (!c)
			c = p + strlen(p);
		if (p != urls)
			o = url_put(out, n, o, ",", 1);
		o = url_put_one(out, n, o, p, c);
		p = *c ? c + 1 : c;
	}
	return out;
}
