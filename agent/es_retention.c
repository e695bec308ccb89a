/* Retention when the cluster has neither ISM nor ILM (OpenSearch without its ISM
 * plugin, Elasticsearch OSS): the sink lists "<prefix>-*" once an hour and deletes
 * the daily indices of its own prefix whose day is past --es-retention-days. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "es_internal.h"
#include "es_retention.h"
#include "log.h"

/* "YYYY.MM.DD" -> days since the epoch of that UTC day, or -1 if it is no date. */
static long es_ret_day(const char *p, size_t n)
{
	int y, m, d, i;
	struct tm tm = { 0 };
	time_t t;

	if (n != 10 || p[4] != '.' || p[7] != '.')
		return -1;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)p[i]))
			return -1;
	y = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
	m = (p[5] - '0') * 10 + (p[6] - '0');
	d = (p[8] - '0') * 10 + (p[9] - '0');
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	t = timegm(&tm);
	/* timegm normalises 2021.02.30 to March 2: such a name is no day of ours */
	{
		struct tm back;

		gmtime_r(&t, &back);
		if (back.tm_mday != d || back.tm_mon != m - 1)
			return -1;
	}
	return (long)(t / 86400);
}

int es_retention_pick(const char *prefix, int days, time_t now, const char *list, size_t len,
		      struct buf *out, int max, int *more)
{
	size_t pl = strlen(prefix);
	long today = (long)(now / 86400);
	const char *p = list, *end = list + len;
	int n = 0;

	*more = 0;
	buf_reset(out);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *e;
		long day;

		e = nl ? nl : end;
		/* _cat pads columns: trim blanks around the name */
		while (p < e && isspace((unsigned char)*p))
			p++;
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
		/* keep day D while any of its records is younger than N days: D + 1 + N > today */
		if ((size_t)(e - p) == pl + 11 && !memcmp(p, prefix, pl) && p[pl] == '-' &&
		    (day = es_ret_day(p + pl + 1, 10)) >= 0 && day + 1 + days <= today) {
			/* the DELETE names every index in its path: keep the URL short */
			if (n >= max || out->len + (size_t)(e - p) + 1 > 1500) {
				*more = 1;
			} else {
				if ((n && buf_putc(out, ',')) || buf_append(out, p, (size_t)(e - p)))
					return -ENOMEM;
				n++;
			}
		}
		p = nl ? nl + 1 : end;
	}
	return n;
}

void es_retention_enable(struct es_sink *s)
{
	if (s->ret_self)
		return;
	s->ret_self = true;
	s->ret_next_ms = 0;
	pr_info("es: without ISM/ILM on this cluster shadowtap deletes %s-YYYY.MM.DD indices "
		"older than %d days itself (checked hourly)\n", s->prefix, s->cfg.retention_days);
}

static void es_ret_error(struct es_sink *s, const char *what, int cc, long code)
{
	char ex[201];

	es_inc(s, ES_C_RET_ERRORS, 1);
	/* said once at warning level: an hourly repeat would only fill the log */
	if (atomic_load(&s->ctr[ES_C_RET_ERRORS]) == 1)
		pr_warn("es: retention: %s failed (%s, http %ld): %s\n", what,
			cc != CURLE_OK ? curl_easy_strerror((CURLcode)cc) : "ok", code,
			es_resp_excerpt(s, ex, sizeof(ex)));
	else
		pr_debug("es: retention: %s failed (curl %d, http %ld)\n", what, cc, code);
}

int es_retention_start(struct es_sink *s, uint64_t now_ms)
{
	char path[512];

	s->ret_next_ms = now_ms + ES_RETENTION_PERIOD_MS;
	es_inc(s, ES_C_RET_CHECKS, 1);
	buf_reset(&s->req_body);
	snprintf(path, sizeof(path), "/_cat/indices/%s-*?h=index&expand_wildcards=all", s->prefix);
	if (es_send(s, ES_REQ_RET_LIST, "GET", path)) {
		es_ret_error(s, "starting the index list", CURLE_OK, 0);
		return -EIO;
	}
	return 0;
}

void es_handle_retention(struct es_sink *s, int cc, long code)
{
	enum es_req kind = s->req;

	s->req = ES_REQ_NONE;
	if (kind == ES_REQ_RET_LIST) {
		struct buf names = { 0 };
		char path[1600];
		int n, more = 0;

		if (cc != CURLE_OK || code != 200 || s->resp_overflow) {
			es_ret_error(s, "listing indices", cc, code);
			return;
		}
		n = es_retention_pick(s->prefix, s->cfg.retention_days, time(NULL),
				      s->resp.data ? s->resp.data : "", s->resp.len, &names,
				      ES_RETENTION_MAX_DELETE, &more);
		if (n > 0 && (size_t)snprintf(path, sizeof(path), "/%.*s", (int)names.len, names.data) < sizeof(path)) {
			pr_info("es: retention: deleting %d %s older than %d days: %.*s%s\n", n,
				n == 1 ? "index" : "indices", s->cfg.retention_days,
				(int)names.len, names.data, more ? " (more next)" : "");
			s->ret_pending = n;
			s->ret_more = more;
			buf_reset(&s->req_body);
			if (es_send(s, ES_REQ_RET_DELETE, "DELETE", path))
				es_ret_error(s, "starting the delete", CURLE_OK, 0);
		} else if (n < 0) {
			es_ret_error(s, "choosing indices", CURLE_OK, 0);
		}
		buf_free(&names);
		return;
	}
	if (cc != CURLE_OK || code != 200) {
		es_ret_error(s, "deleting indices", cc, code);
		return;
	}
	es_inc(s, ES_C_RET_DELETED, (uint64_t)s->ret_pending);
	pr_info("es: retention: %d %s deleted\n", s->ret_pending, s->ret_pending == 1 ? "index" : "indices");
	/* more than one request's worth: the rest goes now, not in an hour */
	if (s->ret_more)
		s->ret_next_ms = 0;
}
