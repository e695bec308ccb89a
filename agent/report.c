/* shadowtap report.
 *
 * The records already carry everything the verdict needs: diff.endpoint,
 * diff.fields (path, kind, both values, noise, ignored) and diff.noise (which
 * fields differed in that request's noise comparison). So the report recounts
 * them with the agent's own counters (fields_sum_count) and applies the same
 * rule; its thresholds and --diff-ignore rules may differ from the agent's, which
 * is the point of re-reading: try another threshold without replaying again. */
#include <errno.h>
#include <getopt.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"
#include "fields_sum.h"
#include "json.h"
#include "report.h"
#include "urlsafe.h"
#include "sfile.h"
#include "sink_es.h"

#define RP_LIT(b, s) buf_append(b, s, sizeof(s) - 1)

/* A decoded JSON string as a heap C string (NULL when [v, ve) is no string). */
static char *rp_str(const char *v, const char *ve)
{
	char *out;
	size_t n;

	if (!v || v >= ve || *v != '"')
		return NULL;
	out = malloc((size_t)(ve - v) + 1);
	if (!out)
		return NULL;
	if (!json_string_decode(v, ve, out, &n)) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	return out;
}

static char *rp_member_str(const char *p, const char *e, const char *key)
{
	const char *v, *ve;

	if (json_member(p, e, key, strlen(key), &v, &ve))
		return NULL;
	return rp_str(v, ve);
}

static bool rp_member_true(const char *p, const char *e, const char *key)
{
	const char *v, *ve;

	return !json_member(p, e, key, strlen(key), &v, &ve) && ve - v == 4 && !memcmp(v, "true", 4);
}

static void rp_diff_clear(struct st_diff *d)
{
	size_t i;

	for (i = 0; i < d->nfields; i++) {
		free(d->fields[i].path);
		free(d->fields[i].a);
		free(d->fields[i].b);
	}
	free(d->fields);
	for (i = 0; i < d->nnoise; i++)
		free(d->noise_paths[i]);
	free(d->noise_paths);
	free(d->endpoint);
	free((char *)d->noise_source);
}

static int rp_fields(struct st_diff *d, const char *p, const char *e)
{
	struct json_iter it;
	const char *v, *ve;
	int r;

	if (json_iter_init(&it, p, e, '[', 1))
		return -EBADMSG;
	while ((r = json_iter_next(&it, NULL, NULL, &v, &ve)) == 1) {
		struct st_field *f, *nv;
		char *kind;
		int k;

		if (*v != '{')
			continue;
		nv = realloc(d->fields, (d->nfields + 1) * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		d->fields = nv;
		f = &d->fields[d->nfields];
		memset(f, 0, sizeof(*f));
		f->path = rp_member_str(v, ve, "path");
		if (!f->path)
			continue;
		d->nfields++;
		kind = rp_member_str(v, ve, "kind");
		k = kind ? fields_kind_parse(kind, strlen(kind)) : -1;
		free(kind);
		f->kind = (uint8_t)(k < 0 ? FK_VALUE : k);
		f->a = rp_member_str(v, ve, "a");
		f->b = rp_member_str(v, ve, "b");
		f->noise = rp_member_true(v, ve, "noise");
		f->ignored = rp_member_true(v, ve, "ignored");
	}
	return r < 0 ? -EBADMSG : 0;
}

static int rp_noise(struct st_diff *d, const char *p, const char *e)
{
	struct json_iter it;
	const char *v, *ve;
	int r;

	d->noise_source = rp_member_str(p, e, "source");
	if (!d->noise_source || json_member(p, e, "fields", 6, &v, &ve))
		return 0;
	if (json_iter_init(&it, v, ve, '[', 2))
		return -EBADMSG;
	while ((r = json_iter_next(&it, NULL, NULL, &v, &ve)) == 1) {
		char **nv, *s = rp_str(v, ve);

		if (!s)
			continue;
		nv = realloc(d->noise_paths, (d->nnoise + 1) * sizeof(*nv));
		if (!nv) {
			free(s);
			return -ENOMEM;
		}
		d->noise_paths = nv;
		d->noise_paths[d->nnoise++] = s;
	}
	return r < 0 ? -EBADMSG : 0;
}

int report_read_line(struct fields_sum *s, const char *line, size_t len)
{
	const char *p = json_ws(line, line + len), *e = line + len, *v, *ve, *dv, *dve;
	struct st_diff d;
	char *id = NULL, *ds;
	int err;

	while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' '))
		e--;
	if (p == e)
		return 0;
	if (*p != '{' || json_skip(p, e, 0) != e)
		return -EBADMSG;
	if (!json_path(p, (size_t)(e - p), "event.dataset", &v, &ve)) {
		ds = rp_str(v, ve);
		err = ds && strcmp(ds, "shadowtap.exchange") != 0;
		free(ds);
		if (err)
			return 0;
	}
	if (json_member(p, e, "diff", 4, &dv, &dve) || *dv != '{')
		return 0;
	memset(&d, 0, sizeof(d));
	d.endpoint = rp_member_str(dv, dve, "endpoint");
	if (!d.endpoint)
		return 0;
	d.match = rp_member_true(dv, dve, "match");
	err = 0;
	if (!json_member(dv, dve, "fields", 6, &v, &ve))
		err = rp_fields(&d, v, ve);
	if (!err && !json_member(dv, dve, "noise", 5, &v, &ve) && *v == '{')
		err = rp_noise(&d, v, ve);
	if (!err && !json_path(p, (size_t)(e - p), "event.id", &v, &ve))
		id = rp_str(v, ve);
	if (!err)
		err = fields_sum_count(s, &d, id);
	free(id);
	rp_diff_clear(&d);
	return err ? err : 1;
}

/* ---- ranking ---- */

static int rp_rank(const void *x, const void *y)
{
	const struct fsum_row *a = x, *b = y;
	int ra = !strcmp(a->verdict, "real"), rb = !strcmp(b->verdict, "real");
	double sa = (double)a->raw - a->noise_scaled, sb = (double)b->raw - b->noise_scaled;
	int c;

	if (ra != rb)
		return rb - ra;
	if (sa != sb)
		return sa > sb ? -1 : 1;
	c = strcmp(a->endpoint, b->endpoint);
	return c ? c : strcmp(a->path, b->path);
}

/* Field rows ranked (real first, then by raw - noise), endpoints apart. */
static int rp_rows(struct fields_sum *s, struct fsum_row **fr, size_t *nf, struct fsum_row **er,
		   size_t *ne)
{
	struct fsum_row *rows;
	size_t n, i;
	int err = fields_sum_rows(s, &rows, &n);

	if (err)
		return err;
	*fr = calloc(n ? n : 1, sizeof(**fr));
	*er = calloc(n ? n : 1, sizeof(**er));
	if (!*fr || !*er) {
		free(*fr);
		free(*er);
		free(rows);
		return -ENOMEM;
	}
	*nf = *ne = 0;
	for (i = 0; i < n; i++) {
		if (rows[i].path)
			(*fr)[(*nf)++] = rows[i];
		else
			(*er)[(*ne)++] = rows[i];
	}
	free(rows);
	qsort(*fr, *nf, sizeof(**fr), rp_rank);
	return 0;
}

static uint64_t rp_total(const struct fsum_row *er, size_t ne)
{
	uint64_t t = 0;
	size_t i;

	for (i = 0; i < ne; i++)
		t += er[i].requests;
	return t;
}

int report_table(struct fields_sum *s, int all, struct buf *out)
{
	struct fsum_row *fr, *er;
	size_t nf, ne, i, real = 0;
	int err = rp_rows(s, &fr, &nf, &er, &ne);

	if (err)
		return err;
	for (i = 0; i < nf; i++)
		real += !strcmp(fr[i].verdict, "real");
	buf_printf(out, "%llu requests compared on %zu endpoints: %zu real differences, %zu noise or ignored\n\n",
		   (unsigned long long)rp_total(er, ne), ne, real, nf - real);
	buf_printf(out, "%-28s %-22s %-8s %7s %7s %7s %-8s %s\n", "ENDPOINT", "FIELD", "KIND", "RAW",
		   "NOISE", "SHARE", "VERDICT", "EXAMPLE (serverA -> serverB)");
	for (i = 0; i < nf; i++) {
		const struct fsum_row *r = &fr[i];
		char noise[24];

		/* "-": no noise answer came back for this endpoint (a probe skips unsafe
		 * methods), so nothing was cancelled */
		if (r->noise_requests)
			snprintf(noise, sizeof(noise), "%.0f", r->noise_scaled);
		else
			strcpy(noise, "-");
		if (!all && strcmp(r->verdict, "real"))
			continue;
		buf_printf(out, "%-28s %-22s %-8s %7llu %7s %6.2f%% %-8s %s %s -> %s\n", r->endpoint, r->path,
			   r->kind, (unsigned long long)r->raw, noise, r->share * 100, r->verdict,
			   r->ex_id ? r->ex_id : "-", r->ex_a ? r->ex_a : "(absent)",
			   r->ex_b ? r->ex_b : "(absent)");
	}
	free(fr);
	free(er);
	return out->data ? 0 : -ENOMEM;
}

static void rp_jstr(struct buf *b, const char *k, const char *v)
{
	buf_printf(b, "\"%s\":", k);
	if (v)
		buf_json_str(b, v, strlen(v));
	else
		RP_LIT(b, "null");
}

int report_json(struct fields_sum *s, struct buf *out)
{
	struct fsum_row *fr, *er;
	size_t nf, ne, i;
	int err = rp_rows(s, &fr, &nf, &er, &ne);

	if (err)
		return err;
	buf_printf(out, "{\"requests\":%llu,\"endpoints\":[", (unsigned long long)rp_total(er, ne));
	for (i = 0; i < ne; i++) {
		buf_printf(out, "%s{", i ? "," : "");
		rp_jstr(out, "endpoint", er[i].endpoint);
		buf_printf(out, ",\"requests\":%llu,\"matched\":%llu,\"noise_requests\":%llu}",
			   (unsigned long long)er[i].requests, (unsigned long long)er[i].matched,
			   (unsigned long long)er[i].noise_requests);
	}
	RP_LIT(out, "],\"differences\":[");
	for (i = 0; i < nf; i++) {
		const struct fsum_row *r = &fr[i];

		buf_printf(out, "%s{", i ? "," : "");
		rp_jstr(out, "endpoint", r->endpoint);
		buf_putc(out, ',');
		rp_jstr(out, "path", r->path);
		buf_putc(out, ',');
		rp_jstr(out, "kind", r->kind);
		buf_printf(out, ",\"raw\":%llu,\"noise\":%llu,\"noise_scaled\":%.1f,\"requests\":%llu,"
			   "\"share\":%.6f,", (unsigned long long)r->raw, (unsigned long long)r->noise,
			   r->noise_scaled, (unsigned long long)r->requests, r->share);
		rp_jstr(out, "verdict", r->verdict);
		RP_LIT(out, ",\"example\":{");
		rp_jstr(out, "event_id", r->ex_id);
		buf_putc(out, ',');
		rp_jstr(out, "a", r->ex_a);
		buf_putc(out, ',');
		rp_jstr(out, "b", r->ex_b);
		RP_LIT(out, "}}");
	}
	RP_LIT(out, "]}\n");
	free(fr);
	free(er);
	return out->data ? 0 : -ENOMEM;
}

static void rp_html_esc(struct buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': RP_LIT(b, "&lt;"); break;
		case '>': RP_LIT(b, "&gt;"); break;
		case '&': RP_LIT(b, "&amp;"); break;
		case '"': RP_LIT(b, "&quot;"); break;
		default: buf_putc(b, *s); break;
		}
	}
}

static void rp_html_rows(struct buf *out, const struct fsum_row *fr, size_t nf, bool real)
{
	size_t i;

	RP_LIT(out, "<table><thead><tr><th>Endpoint</th><th>Field</th><th>Kind</th><th>Raw</th>"
		   "<th>Noise</th><th>Share</th><th>Verdict</th><th>Example</th></tr></thead><tbody>\n");
	for (i = 0; i < nf; i++) {
		const struct fsum_row *r = &fr[i];

		if (real != !strcmp(r->verdict, "real"))
			continue;
		buf_printf(out, "<tr class=\"diff %s\"><td class=\"ep\">", r->verdict);
		rp_html_esc(out, r->endpoint);
		RP_LIT(out, "</td><td class=\"path\"><code>");
		rp_html_esc(out, r->path);
		buf_printf(out, "</code></td><td class=\"kind\">%s</td><td class=\"num\">%llu</td>"
			   "<td class=\"num\">%.0f</td><td class=\"num\">%.2f%%</td><td class=\"verdict\">%s</td><td>",
			   r->kind, (unsigned long long)r->raw, r->noise_scaled, r->share * 100, r->verdict);
		if (r->ex_id) {
			RP_LIT(out, "<details><summary><code>");
			rp_html_esc(out, r->ex_id);
			RP_LIT(out, "</code></summary><div class=\"ab\"><div><b>serverA</b><pre>");
			rp_html_esc(out, r->ex_a ? r->ex_a : "(absent)");
			RP_LIT(out, "</pre></div><div><b>serverB</b><pre>");
			rp_html_esc(out, r->ex_b ? r->ex_b : "(absent)");
			RP_LIT(out, "</pre></div></div></details>");
		}
		RP_LIT(out, "</td></tr>\n");
	}
	RP_LIT(out, "</tbody></table>\n");
}

int report_html(struct fields_sum *s, const char *title, struct buf *out)
{
	struct fsum_row *fr, *er;
	size_t nf, ne, i, j, real = 0;
	int err = rp_rows(s, &fr, &nf, &er, &ne);

	if (err)
		return err;
	for (i = 0; i < nf; i++)
		real += !strcmp(fr[i].verdict, "real");
	RP_LIT(out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
	rp_html_esc(out, title);
	buf_printf(out, "</title><style>\n"
		"body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}"
		"table{border-collapse:collapse;margin:1em 0;width:100%%}"
		"th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}"
		"th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}"
		"tr.real td.verdict{color:#b00;font-weight:bold}tr.noise td,tr.ignored td{color:#777}"
		"pre{margin:0;white-space:pre-wrap;word-break:break-all;max-width:40em}"
		".ab{display:flex;gap:1em}.ab>div{flex:1}"
		".bar{display:flex;height:14px;width:30em;background:#eee}.bar span{display:block;height:100%%}"
		".m{background:#4a4}.r{background:#c33}.n{background:#bbb}"
		".eps td{border:none;padding:2px 8px}\n"
		"</style></head><body>\n<h1>");
	rp_html_esc(out, title);
	buf_printf(out, "</h1>\n<p id=\"summary\">%llu requests compared on %zu endpoints: "
		   "<b>%zu real differences</b>, %zu noise or ignored.</p>\n<h2>Endpoints</h2>\n"
		   "<table class=\"eps\">", (unsigned long long)rp_total(er, ne), ne, real, nf - real);
	for (i = 0; i < ne; i++) {
		const struct fsum_row *e = &er[i];
		uint64_t with_real = 0;
		double m, rr;

		/* the bar: matched, the most frequent real difference, the rest */
		for (j = 0; j < nf; j++)
			if (fr[j].endpoint == e->endpoint && !strcmp(fr[j].verdict, "real") && fr[j].raw > with_real)
				with_real = fr[j].raw;
		m = 100.0 * (double)e->matched / (double)e->requests;
		rr = 100.0 * (double)with_real / (double)e->requests;
		if (m + rr > 100)
			rr = 100 - m;
		RP_LIT(out, "<tr class=\"endpoint\"><td>");
		rp_html_esc(out, e->endpoint);
		buf_printf(out, "</td><td class=\"num\">%llu</td><td><div class=\"bar\" title=\"matched %.1f%%, "
			   "real %.1f%%\"><span class=\"m\" style=\"width:%.1f%%\"></span><span class=\"r\" "
			   "style=\"width:%.1f%%\"></span><span class=\"n\" style=\"width:%.1f%%\"></span></div></td></tr>\n",
			   (unsigned long long)e->requests, m, rr, m, rr, fabs(100 - m - rr));
	}
	RP_LIT(out, "</table>\n<p>Bars: green matched, red the most frequent real difference, grey "
		   "other differences (noise).</p>\n<h2>Real differences</h2>\n");
	rp_html_rows(out, fr, nf, true);
	RP_LIT(out, "<details id=\"noise\"><summary>Noise and ignored fields</summary>\n");
	rp_html_rows(out, fr, nf, false);
	RP_LIT(out, "</details>\n</body></html>\n");
	free(fr);
	free(er);
	return out->data ? 0 : -ENOMEM;
}

/* ---- records from Elasticsearch / OpenSearch ---- */

/* One scroll page of 1,000 hits with only event.id, event.dataset and diff is a few
 * MB; an answer past this is not one (a hostile or broken server), and reading it
 * whole would take the memory it sends. */
#define RP_RESP_MAX (256u << 20)

static size_t rp_curl_write(char *p, size_t sz, size_t n, void *ctx)
{
	struct buf *b = ctx;

	if (b->len + sz * n > RP_RESP_MAX)
		return 0;
	return buf_append(b, p, sz * n) ? 0 : sz * n;
}

static int rp_es_post(CURL *c, const char *url, const char *body, struct buf *resp)
{
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	long code = 0;
	CURLcode cc;

	buf_reset(resp);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rp_curl_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	if (cc != CURLE_OK || code != 200) {
		fprintf(stderr, "shadowtap report: %s: %s\n", url,
			cc == CURLE_WRITE_ERROR && resp->len + CURL_MAX_WRITE_SIZE > RP_RESP_MAX ?
			"answer over 256 MiB" : cc != CURLE_OK ? curl_easy_strerror(cc) : "http error");
		if (cc == CURLE_OK && resp->data)
			fprintf(stderr, "  %.*s\n", (int)(resp->len > 300 ? 300 : resp->len), resp->data);
		return -EIO;
	}
	return 0;
}

/* Every record with diff.endpoint in <prefix>-*, by scroll. The hits' _source
 * objects are read as NDJSON lines are. */
static int report_es(struct fields_sum *s, const char *url, const char *prefix, uint64_t *bad)
{
	struct buf resp = { 0 }, body = { 0 };
	char u[1024], *scroll = NULL;
	const char *user = getenv("ES_USERNAME"), *pass = getenv("ES_PASSWORD");
	CURL *c = curl_easy_init();
	int err = 0, n;

	if (!c)
		return -ENOMEM;
	if (user && pass) {
		curl_easy_setopt(c, CURLOPT_USERNAME, user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, pass);
	}
	snprintf(u, sizeof(u), "%s/%s-*/_search?scroll=2m", url, prefix);
	buf_printf(&body, "{\"size\":1000,\"query\":{\"exists\":{\"field\":\"diff.endpoint\"}},"
		   "\"_source\":[\"event.id\",\"event.dataset\",\"diff\"],\"sort\":[\"_doc\"]}");
	buf_putc(&body, '\0');
	err = rp_es_post(c, u, body.data, &resp);
	while (!err) {
		const char *v, *ve, *hv, *hve;
		struct json_iter it;

		n = 0;
		if (json_path(resp.data, resp.len, "_scroll_id", &v, &ve) == 0) {
			free(scroll);
			scroll = rp_str(v, ve);
		}
		if (json_path(resp.data, resp.len, "hits.hits", &v, &ve) ||
		    json_iter_init(&it, v, ve, '[', 2)) {
			err = -EBADMSG;
			break;
		}
		while (json_iter_next(&it, NULL, NULL, &hv, &hve) == 1) {
			const char *sv, *sve;
			int r;

			if (json_member(hv, hve, "_source", 7, &sv, &sve))
				continue;
			r = report_read_line(s, sv, (size_t)(sve - sv));
			if (r == -ENOMEM) {
				err = r;
				break;
			}
			*bad += r < 0;
			n++;
		}
		if (err || !n || !scroll)
			break;
		snprintf(u, sizeof(u), "%s/_search/scroll", url);
		buf_reset(&body);
		RP_LIT(&body, "{\"scroll\":\"2m\",\"scroll_id\":");
		buf_json_str(&body, scroll, strlen(scroll));
		RP_LIT(&body, "}");
		buf_putc(&body, '\0');
		err = rp_es_post(c, u, body.data, &resp);
	}
	free(scroll);
	buf_free(&resp);
	buf_free(&body);
	curl_easy_cleanup(c);
	return err;
}

/* ---- the command ---- */

static void report_usage(FILE *f)
{
	fprintf(f,
		"usage: shadowtap report [OPTIONS] FILE.ndjson...   ('-' for stdin)\n"
		"  --all                      also list noise and ignored fields\n"
		"  --format table|json        output format (default table)\n"
		"  --html FILE                also write one self-contained HTML page\n"
		"  --es URL                   read the records from Elasticsearch/OpenSearch (no FILE)\n"
		"  --es-index PREFIX          index name prefix (default shadowtap)\n"
		"  --diff-ignore 'EP PATH'    treat this field as noise (repeatable)\n"
		"  --diff-threshold-relative P%%  default 20%%\n"
		"  --diff-threshold-absolute P%%  default 0.03%%\n");
}

static int report_pct(const char *v, double *out)
{
	char *end;
	double d = strtod(v, &end);

	if (end == v || (*end && strcmp(end, "%")) || !isfinite(d) || d < 0 || d > 100)
		return -EINVAL;
	*out = d;
	return 0;
}

static int report_file(struct fields_sum *s, const char *path, uint64_t *bad)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int err = 0;

	if (!f) {
		fprintf(stderr, "shadowtap report: cannot open %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		int r = report_read_line(s, line, (size_t)n);

		if (r == -ENOMEM) {
			err = r;
			break;
		}
		*bad += r < 0;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return err;
}

int report_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "format", required_argument, NULL, 'f' },
		{ "html", required_argument, NULL, 'H' },
		{ "diff-ignore", required_argument, NULL, 'i' },
		{ "diff-threshold-relative", required_argument, NULL, 'R' },
		{ "diff-threshold-absolute", required_argument, NULL, 'A' },
		{ "es", required_argument, NULL, 'e' },
		{ "es-index", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fields_sum_cfg cfg;
	struct fields_sum *s = NULL;
	const char *html = NULL, *es = NULL, *es_index = "shadowtap";
	struct buf out = { 0 };
	uint64_t bad = 0;
	int all = 0, json = 0, c, rc = 0, i;

	fields_sum_cfg_default(&cfg);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'a':
			all = 1;
			break;
		case 'f':
			if (strcmp(optarg, "json") && strcmp(optarg, "table")) {
				fprintf(stderr, "shadowtap report: --format is table or json\n");
				return 2;
			}
			json = !strcmp(optarg, "json");
			break;
		case 'H':
			html = optarg;
			break;
		case 'e':
			es = optarg;
			break;
		case 'x':
			es_index = optarg;
			break;
		case 'i':
			if (cfg.nignore == FSUM_MAX_PATTERNS) {
				fprintf(stderr, "shadowtap report: too many --diff-ignore\n");
				return 2;
			}
			cfg.ignore[cfg.nignore++] = optarg;
			break;
		case 'R':
		case 'A':
			if (report_pct(optarg, c == 'R' ? &cfg.rel_pct : &cfg.abs_pct)) {
				fprintf(stderr, "shadowtap report: invalid percentage '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			report_usage(stdout);
			return 0;
		default:
			report_usage(stderr);
			return 2;
		}
	}
	if ((optind >= argc) == !es) {
		report_usage(stderr);
		return 2;
	}
	s = fields_sum_new(&cfg);
	if (!s)
		return 1;
	for (i = optind; i < argc && !rc; i++)
		if (report_file(s, argv[i], &bad))
			rc = 1;
	if (es) {
		char url[512];

		/* the agent's rules for a base URL: ELASTICSEARCH_URL forms, no trailing slash */
		if (es_url_normalize(es, NULL, url, sizeof(url))) {
			char safe[512];

			fprintf(stderr, "shadowtap report: invalid --es URL '%s'\n",
				url_printable(es, safe, sizeof(safe)));
			rc = 2;
		} else if (report_es(s, url, es_index, &bad)) {
			rc = 1;
		}
	}
	if (bad)
		fprintf(stderr, "shadowtap report: %llu lines were no JSON object, skipped\n",
			(unsigned long long)bad);
	if (!rc && html) {
		FILE *f = sfile_fopen(html, "w");   /* 0600, no symlink: it quotes traffic */

		if (!f || report_html(s, "shadowtap: differences", &out) ||
		    fwrite(out.data, 1, out.len, f) != out.len) {
			fprintf(stderr, "shadowtap report: cannot write %s\n", html);
			rc = 1;
		}
		if (f && fclose(f))
			rc = 1;
		buf_reset(&out);
	}
	if (!rc && (json ? report_json(s, &out) : report_table(s, all, &out)))
		rc = 1;
	if (!rc && out.len && fwrite(out.data, 1, out.len, stdout) != out.len)
		rc = 1;
	buf_free(&out);
	fields_sum_free(s);
	return rc;
}
