/* Difference counters per endpoint and field, as Diffy keeps them.
 *
 * raw counts requests in which a field differed between serverA and serverB;
 * noise counts requests in which it differed in the noise comparison (serverA vs
 * the baseline, or serverB vs itself). The noise comparison covers a sample when
 * it is a probe (or when the baseline failed to answer), so noise is scaled to
 * the endpoint's requests before Diffy's rule is applied: a field that differs in
 * every probe is as noisy as one that differs in every baseline answer.
 *
 * The tables are bounded (FSUM_MAX_ENDPOINTS x FSUM_MAX_FIELDS); what does not
 * fit is counted in dropped_*, not silently lost. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "diff.h"
#include "endpoint.h"
#include "fields.h"
#include "fields_sum.h"
#include "util.h"

struct fsum_field {
	char path[FIELDS_PATH_MAX];
	uint8_t kind;
	bool noise_only;        /* seen in noise comparisons, never raw */
	bool ignored;
	uint64_t raw, noise;
	char ex_id[33];
	bool ex_noisy;          /* the example was noise in its own request: replace it */
	char *ex_a, *ex_b;
};

struct fsum_ep {
	char name[ENDPOINT_MAX];
	uint64_t requests, matched, noise_requests, dropped_fields;
	struct fsum_field *f;
	int nf, cap;
};

struct fields_sum {
	struct fields_sum_cfg cfg;
	pthread_mutex_t lock;
	struct fsum_ep *ep;
	int nep;
	uint64_t dropped_endpoints;
	uint64_t last_flush_ns;
};

void fields_sum_cfg_default(struct fields_sum_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->rel_pct = FIELDS_DEFAULT_REL * 100;
	cfg->abs_pct = FIELDS_DEFAULT_ABS * 100;
	cfg->interval_s = 60;
}

struct fields_sum *fields_sum_new(const struct fields_sum_cfg *cfg)
{
	struct fields_sum *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->cfg = *cfg;
	if (!s->cfg.hdr_ignore)
		s->cfg.hdr_ignore = diff_default_ignore;
	s->ep = calloc(FSUM_MAX_ENDPOINTS + 1, sizeof(*s->ep));
	if (!s->ep) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void fields_sum_free(struct fields_sum *s)
{
	int i, j;

	if (!s)
		return;
	for (i = 0; i <= FSUM_MAX_ENDPOINTS && i < s->nep + 1; i++) {
		for (j = 0; j < s->ep[i].nf; j++) {
			free(s->ep[i].f[j].ex_a);
			free(s->ep[i].f[j].ex_b);
		}
		free(s->ep[i].f);
	}
	free(s->ep);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static bool fsum_safe_method(const struct fields_sum_cfg *cfg, const char *m, size_t n)
{
	static const char *const safe[] = { "GET", "HEAD", "OPTIONS", NULL };
	const char *const *list = cfg->nprobe_methods ? cfg->probe_methods : safe;
	int i, cnt = cfg->nprobe_methods ? cfg->nprobe_methods : 3;

	for (i = 0; i < cnt; i++)
		if (strlen(list[i]) == n && strncasecmp(list[i], m, n) == 0)
			return true;
	return false;
}

bool fields_sum_want_noise(const struct fields_sum_cfg *cfg, const struct st_record *r)
{
	uint64_t h;

	if (!r->replay || r->replay->error || !r->method)
		return false;
	if (cfg->baseline)
		return true;
	if (cfg->probe_pct <= 0 || !fsum_safe_method(cfg, r->method, r->method_len))
		return false;
	/* by exchange, not by connection: every endpoint gets its share */
	h = st_mix64(r->flow_id ^ st_mix64(r->index ^ 0x6e6f697365ull));
	return (double)(h % 1000000) < cfg->probe_pct * 10000.0;
}

void fields_sum_hold(struct st_record *r)
{
	r->held_replay = r->replay;
	r->held_diff = r->diff;
	r->held_skip = r->replay_skip;
	r->replay = NULL;
	r->diff = NULL;
	r->replay_skip = NULL;
}

void fields_sum_unhold(struct st_record *r)
{
	record_replay_free(r->noise);
	r->noise = r->replay;
	/* the noise replay's own diff is serverA vs the noise answer: with a baseline
	 * that is the noise comparison itself (fsum_noise_paths reuses it) */
	record_diff_free(r->noise_diff);
	r->noise_diff = r->diff;
	r->replay = r->held_replay;
	r->diff = r->held_diff;
	r->replay_skip = r->held_skip;
	r->held_replay = NULL;
	r->held_diff = NULL;
	r->held_skip = NULL;
}

static struct fsum_ep *fsum_ep_get(struct fields_sum *s, const char *name)
{
	int i;

	for (i = 0; i < s->nep; i++)
		if (strcmp(s->ep[i].name, name) == 0)
			return &s->ep[i];
	if (s->nep == FSUM_MAX_ENDPOINTS) {
		/* the last slot gathers what does not fit */
		s->dropped_endpoints++;
		if (!s->ep[FSUM_MAX_ENDPOINTS].name[0])
			strcpy(s->ep[FSUM_MAX_ENDPOINTS].name, "(other)");
		return &s->ep[FSUM_MAX_ENDPOINTS];
	}
	snprintf(s->ep[s->nep].name, ENDPOINT_MAX, "%s", name);
	return &s->ep[s->nep++];
}

/* The counter of (path, kind); kind < 0 finds any kind of path (noise counts by
 * path: which way a noisy field differs does not matter). */
static struct fsum_field *fsum_field_get(struct fsum_ep *e, const char *path, int kind, bool create)
{
	struct fsum_field *f;
	int i;

	for (i = 0; i < e->nf; i++)
		if (strcmp(e->f[i].path, path) == 0 && (kind < 0 || e->f[i].kind == kind ||
							e->f[i].noise_only))
			return &e->f[i];
	if (!create)
		return NULL;
	if (e->nf == FSUM_MAX_FIELDS) {
		e->dropped_fields++;
		return NULL;
	}
	if (e->nf == e->cap) {
		int cap = e->cap ? e->cap * 2 : 8;

		f = realloc(e->f, (size_t)cap * sizeof(*f));
		if (!f)
			return NULL;
		e->f = f;
		e->cap = cap;
	}
	f = &e->f[e->nf++];
	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->kind = (uint8_t)(kind < 0 ? 0 : kind);
	f->noise_only = kind < 0;
	return f;
}

static int fsum_noise_paths(struct st_record *r, const struct fields_sum_cfg *cfg)
{
	struct st_diff *d = r->diff;
	struct st_field *nf = NULL;
	size_t n = 0, total = 0, i, j;
	bool borrowed = false;
	int err;

	if (!r->noise || r->noise->error || !d || !r->status_code)
		return 0;
	if (cfg->baseline && r->noise_diff && r->resp.complete &&
	    r->noise_diff->fields_total == r->noise_diff->nfields && !r->noise_diff->reason) {
		/* the noise replay already compared serverA with the baseline, field by
		 * field whenever they did not match, with the same header ignore list */
		nf = r->noise_diff->fields;
		n = r->noise_diff->nfields;
		/* taken; in diff_compare's block they stay there, so their paths are
		 * copied (a diff built otherwise hands over its heap strings) */
		borrowed = r->noise_diff->block != 0;
		r->noise_diff->fields = NULL;
		r->noise_diff->nfields = 0;
		err = 0;
	} else if (cfg->baseline)
		err = fields_compare(r->status_code, &r->resp, r->noise->status_code, &r->noise->resp,
				     cfg->hdr_ignore, &nf, &n, &total);
	else
		err = fields_compare(r->replay->status_code, &r->replay->resp, r->noise->status_code,
				     &r->noise->resp, cfg->hdr_ignore, &nf, &n, &total);
	if (err)
		goto out;
	d->noise_source = cfg->baseline ? "baseline" : "probe";
	d->noise_paths = calloc(n ? n : 1, sizeof(char *));
	if (!d->noise_paths) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < d->nnoise; j++)
			if (strcmp(d->noise_paths[j], nf[i].path) == 0)
				break;
		if (j < d->nnoise)
			continue;
		if (borrowed) {
			d->noise_paths[d->nnoise] = strdup(nf[i].path);
			if (!d->noise_paths[d->nnoise]) {
				err = -ENOMEM;
				goto out;
			}
			d->nnoise++;
			continue;
		}
		d->noise_paths[d->nnoise++] = nf[i].path;
		nf[i].path = NULL;
	}
	for (i = 0; i < d->nfields; i++)
		for (j = 0; j < d->nnoise; j++)
			if (strcmp(d->fields[i].path, d->noise_paths[j]) == 0)
				d->fields[i].noise = true;
out:
	if (!borrowed)
		fields_free(nf, n);
	return err;
}

/* The endpoint name goes into the room diff_compare left at the end of the diff's
 * block (no allocation per record); a diff without room gets a heap copy. */
static int fsum_endpoint_set(struct st_diff *d, const char *name)
{
	size_t n = strlen(name) + 1;
	char *room = d->room ? (char *)d + d->block - d->room : NULL;

	if (d->endpoint != room)
		free(d->endpoint);
	if (room && n <= d->room) {
		memcpy(room, name, n);
		d->endpoint = room;
		return 0;
	}
	d->endpoint = strdup(name);
	return d->endpoint ? 0 : -ENOMEM;
}

int fields_sum_observe(struct fields_sum *s, struct st_record *r)
{
	struct st_diff *d = r->diff;
	char name[ENDPOINT_MAX];
	size_t i;
	int k, err;

	/* only requests both servers answered count: the rest are replay errors */
	if (!d || !r->replay || r->replay->error || !r->status_code || !r->method)
		return 0;
	endpoint_name(r->method, r->method_len, r->target ? r->target : "", r->target_len,
		      s->cfg.endpoints, s->cfg.nendpoints, name, sizeof(name));
	err = fsum_endpoint_set(d, name);
	if (err)
		return err;
	err = fsum_noise_paths(r, &s->cfg);
	for (i = 0; i < d->nfields; i++)
		for (k = 0; k < s->cfg.nignore; k++)
			if (endpoint_ignore_match(s->cfg.ignore[k], name, d->fields[i].path))
				d->fields[i].ignored = true;
	return fields_sum_count(s, d, r->event_id) ?: err;
}

int fields_sum_count(struct fields_sum *s, const struct st_diff *d, const char *event_id)
{
	struct fsum_ep *e;
	struct fsum_field *f;
	size_t i;
	int k;

	if (!d->endpoint)
		return 0;
	pthread_mutex_lock(&s->lock);
	e = fsum_ep_get(s, d->endpoint);
	e->requests++;
	e->matched += d->match;
	e->noise_requests += d->noise_source != NULL;
	for (i = 0; i < d->nfields; i++) {
		const struct st_field *fl = &d->fields[i];
		bool ignored = fl->ignored;

		for (k = 0; k < s->cfg.nignore && !ignored; k++)
			ignored = endpoint_ignore_match(s->cfg.ignore[k], d->endpoint, fl->path);
		f = fsum_field_get(e, fl->path, fl->kind, true);
		if (!f)
			continue;
		if (f->noise_only) {
			f->noise_only = false;
			f->kind = fl->kind;
		}
		f->raw++;
		f->ignored = ignored;
		/* the example is the first that is not noise in its own request */
		if (!f->ex_id[0] || (!fl->noise && f->ex_noisy)) {
			free(f->ex_a);
			free(f->ex_b);
			f->ex_a = fl->a ? strdup(fl->a) : NULL;
			f->ex_b = fl->b ? strdup(fl->b) : NULL;
			snprintf(f->ex_id, sizeof(f->ex_id), "%s", event_id ? event_id : "");
			f->ex_noisy = fl->noise;
		}
	}
	for (i = 0; i < d->nnoise; i++) {
		f = fsum_field_get(e, d->noise_paths[i], -1, true);
		if (f)
			f->noise++;
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static double fsum_noise_scaled(const struct fsum_ep *e, const struct fsum_field *f)
{
	if (!e->noise_requests)
		return 0;
	return (double)f->noise * (double)e->requests / (double)e->noise_requests;
}

static const char *fsum_verdict(const struct fields_sum *s, const struct fsum_ep *e,
				const struct fsum_field *f)
{
	if (f->ignored)
		return "ignored";
	return fields_real((double)f->raw, fsum_noise_scaled(e, f), (double)e->requests,
			   s->cfg.rel_pct / 100, s->cfg.abs_pct / 100) ? "real" : "noise";
}

static void fsum_put_time(struct buf *b, uint64_t ns)
{
	time_t sec = (time_t)(ns / 1000000000ull);
	struct tm tm;
	char t[32];

	gmtime_r(&sec, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
	buf_printf(b, "\"%s.%03lluZ\"", t, (unsigned long long)(ns % 1000000000ull / 1000000));
}

static void fsum_put_ep(const struct fields_sum *s, const struct fsum_ep *e, uint64_t ts_ns,
			struct buf *out)
{
	char id[33];
	int j;

	buf_append(out, "{\"@timestamp\":", 14);
	fsum_put_time(out, ts_ns);
	record_event_id(st_mix64(ts_ns), (uint32_t)(e - s->ep), id);
	buf_printf(out, ",\"event\":{\"id\":\"%s\",\"kind\":\"metric\",\"dataset\":\"shadowtap.diff_summary\"}"
		   ",\"diff_summary\":{\"endpoint\":", id);
	buf_json_str(out, e->name, strlen(e->name));
	buf_printf(out, ",\"requests\":%llu,\"matched\":%llu,\"noise_requests\":%llu",
		   (unsigned long long)e->requests, (unsigned long long)e->matched,
		   (unsigned long long)e->noise_requests);
	if (e->noise_requests)
		buf_printf(out, ",\"noise_source\":\"%s\"", s->cfg.baseline ? "baseline" : "probe");
	if (e->dropped_fields)
		buf_printf(out, ",\"fields_dropped\":%llu", (unsigned long long)e->dropped_fields);
	buf_append(out, ",\"fields\":[", 11);
	for (j = 0; j < e->nf; j++) {
		const struct fsum_field *f = &e->f[j];

		if (j)
			buf_putc(out, ',');
		buf_append(out, "{\"path\":", 8);
		buf_json_str(out, f->path, strlen(f->path));
		buf_printf(out, ",\"kind\":\"%s\",\"raw\":%llu,\"noise\":%llu,\"share\":%.6f,\"verdict\":\"%s\"",
			   f->noise_only ? "noise" : fields_kind_name(f->kind), (unsigned long long)f->raw,
			   (unsigned long long)f->noise,
			   e->requests ? (double)f->raw / (double)e->requests : 0.0,
			   f->noise_only ? "noise" : fsum_verdict(s, e, f));
		if (f->ex_id[0]) {
			buf_printf(out, ",\"example\":{\"event_id\":\"%s\"", f->ex_id);
			if (f->ex_a) {
				buf_append(out, ",\"a\":", 5);
				buf_json_str(out, f->ex_a, strlen(f->ex_a));
			}
			if (f->ex_b) {
				buf_append(out, ",\"b\":", 5);
				buf_json_str(out, f->ex_b, strlen(f->ex_b));
			}
			buf_putc(out, '}');
		}
		buf_putc(out, '}');
	}
	buf_append(out, "]}}\n", 4);
}

int fields_sum_flush(struct fields_sum *s, uint64_t ts_ns, bool force, struct buf *out)
{
	int i, n = 0;

	if (!force && ts_ns - s->last_flush_ns < (uint64_t)s->cfg.interval_s * 1000000000ull)
		return 0;
	if (!s->last_flush_ns && !force) {
		/* the first interval starts with the first record, not at the epoch */
		s->last_flush_ns = ts_ns;
		return 0;
	}
	s->last_flush_ns = ts_ns;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i <= FSUM_MAX_ENDPOINTS; i++) {
		if (i >= s->nep && i != FSUM_MAX_ENDPOINTS)
			continue;
		if (!s->ep[i].requests)
			continue;
		fsum_put_ep(s, &s->ep[i], ts_ns, out);
		n++;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

void fields_sum_print_top(struct fields_sum *s, FILE *f, int n)
{
	const struct fsum_ep *te[8];
	const struct fsum_field *tf[8];
	int nt = 0, i, j, k;

	if (!s)
		return;
	if (n > 8)
		n = 8;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i <= FSUM_MAX_ENDPOINTS; i++) {
		const struct fsum_ep *e = &s->ep[i];

		if (i >= s->nep && i != FSUM_MAX_ENDPOINTS)
			continue;
		for (j = 0; j < e->nf; j++) {
			const struct fsum_field *x = &e->f[j];

			if (x->noise_only || strcmp(fsum_verdict(s, e, x), "real"))
				continue;
			/* insertion into the top n, largest raw first */
			for (k = nt; k > 0 && tf[k - 1]->raw < x->raw; k--) {
				if (k < n) {
					te[k] = te[k - 1];
					tf[k] = tf[k - 1];
				}
			}
			if (k < n) {
				te[k] = e;
				tf[k] = x;
				if (nt < n)
					nt++;
			}
		}
	}
	for (k = 0; k < nt; k++)
		fprintf(f, "diff: %s %s %s raw=%llu noise=%llu of %llu\n", te[k]->name, tf[k]->path,
			fields_kind_name(tf[k]->kind), (unsigned long long)tf[k]->raw,
			(unsigned long long)tf[k]->noise, (unsigned long long)te[k]->requests);
	pthread_mutex_unlock(&s->lock);
}

int fields_sum_rows(struct fields_sum *s, struct fsum_row **rows, size_t *n)
{
	struct fsum_row *v;
	size_t cap = 0, o = 0;
	int i, j;

	for (i = 0; i <= FSUM_MAX_ENDPOINTS; i++)
		if (i < s->nep || i == FSUM_MAX_ENDPOINTS)
			cap += 1 + (size_t)s->ep[i].nf;
	v = calloc(cap ? cap : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i <= FSUM_MAX_ENDPOINTS; i++) {
		const struct fsum_ep *e = &s->ep[i];

		if ((i >= s->nep && i != FSUM_MAX_ENDPOINTS) || !e->requests)
			continue;
		for (j = -1; j < e->nf; j++) {
			struct fsum_row *r = &v[o++];
			const struct fsum_field *f = j >= 0 ? &e->f[j] : NULL;

			r->endpoint = e->name;
			r->requests = e->requests;
			r->matched = e->matched;
			r->noise_requests = e->noise_requests;
			if (!f)
				continue;
			r->path = f->path;
			r->kind = f->noise_only ? "noise" : fields_kind_name(f->kind);
			r->verdict = f->noise_only ? "noise" : fsum_verdict(s, e, f);
			r->raw = f->raw;
			r->noise = f->noise;
			r->noise_scaled = fsum_noise_scaled(e, f);
			r->share = (double)f->raw / (double)e->requests;
			r->ex_id = f->ex_id[0] ? f->ex_id : NULL;
			r->ex_a = f->ex_a;
			r->ex_b = f->ex_b;
		}
	}
	*rows = v;
	*n = o;
	return 0;
}
