/* Elasticsearch sink set-up: defaults, the URL and its environment variables,
 * credentials, and installing the index templates. Owns: the template bodies.
 *
 * Indices: one per UTC day, "<index_prefix>-YYYY.MM.DD" from the record's
 * @timestamp. Daily indices work on every supported version (Elasticsearch 7.x and
 * 8.x, OpenSearch 1.x and 2.x; no _type anywhere) and are easy to drop by age. The
 * mappings live in a component template "<prefix>-mappings" used by the composable
 * index template "<prefix>" (pattern "<prefix>-*"); Elasticsearch before 7.8 gets
 * the same body as a legacy _template. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "es_internal.h"
#include "es_retention.h"

void es_cfg_default(struct es_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->url = "http://127.0.0.1:9200";
	cfg->index_prefix = "shadowtap";
	cfg->batch_bytes = 5u << 20;
	cfg->batch_ms = 1000;
	cfg->spool_dir = geteuid() == 0 ? "/var/lib/shadowtap/spool" : "./spool";
	cfg->spool_max_bytes = 1ull << 30;
	cfg->dead_letter_max_bytes = 64ull << 20;
	cfg->fsync_policy = "batch";
	cfg->gzip = 1;
	cfg->mem_queue_bytes = 64u << 20;
	cfg->request_timeout_ms = 30000;
}

/* ---- URL and environment ---- */

int es_url_normalize(const char *url, const char *port, char *out, size_t n)
{
	char tmp[1024];
	const char *scheme = "http://", *rest, *hostend, *path, *at, *p;
	bool bare = false;
	size_t hl;
	int w;

	if (port && *port) {
		char *end;
		long v = strtol(port, &end, 10);

		if (*end || v < 1 || v > 65535)
			return -EINVAL;
	}
	if (!url || !*url)
		url = "localhost";
	if (strlen(url) >= sizeof(tmp))
		return -ENAMETOOLONG;
	p = strstr(url, "://");
	if (p) {
		if (!strncasecmp(url, "https://", 8))
			scheme = "https://";
		else if (strncasecmp(url, "http://", 7))
			return -EINVAL;
		rest = p + 3;
	} else {
		bare = true;
		rest = url;
	}
	path = strchr(rest, '/');
	if (!path)
		path = rest + strlen(rest);
	/* user:password@ stays in the host part; credentials belong in the env though */
	at = memchr(rest, '@', (size_t)(path - rest));
	p = at ? at + 1 : rest;
	if (*p == '[') {
		hostend = memchr(p, ']', (size_t)(path - p));
		if (!hostend)
			return -EINVAL;
		hostend++;
	} else {
		hostend = memchr(p, ':', (size_t)(path - p));
		if (!hostend)
			hostend = path;
	}
	if (hostend == p)
		return -EINVAL;
	hl = (size_t)(hostend - rest);
	if (port && *port)
		w = snprintf(tmp, sizeof(tmp), "%s%.*s:%s%s", scheme, (int)hl, rest, port, path);
	else if (*hostend == ':')
		w = snprintf(tmp, sizeof(tmp), "%s%s", scheme, rest);
	else
		w = snprintf(tmp, sizeof(tmp), "%s%.*s%s%s", scheme, (int)hl, rest,
			     bare ? ":9200" : "", path);
	if (w < 0 || (size_t)w >= sizeof(tmp))
		return -ENAMETOOLONG;
	while (w > 0 && tmp[w - 1] == '/')
		tmp[--w] = '\0';
	if ((size_t)w >= n)
		return -ENAMETOOLONG;
	memcpy(out, tmp, (size_t)w + 1);
	return 0;
}

int es_url_from_env(char *out, size_t n)
{
	const char *url = getenv("ELASTICSEARCH_URL");
	const char *port = getenv("ES_PORT");
	char one[1024], part[1024];
	size_t o = 0, l;
	const char *p, *c;
	int err;

	if (n)
		out[0] = '\0';
	if ((!url || !*url) && (!port || !*port))
		return 0;
	if (!url || !*url || !strchr(url, ','))
		return es_url_normalize(url, port, out, n);
	/* a comma-separated list: the nodes of one cluster, ES_PORT applies to each */
	for (p = url; *p; p = *c ? c + 1 : c) {
		c = strchr(p, ',');
		if (!c)
			c = p + strlen(p);
		l = (size_t)(c - p);
		if (!l || l >= sizeof(part))
			return -EINVAL;
		memcpy(part, p, l);
		part[l] = '\0';
		err = es_url_normalize(part, port, one, sizeof(one));
		if (err)
			return err;
		if (o + !!o + strlen(one) + 1 > n)
			return -ENAMETOOLONG;
		o += (size_t)snprintf(out + o, n - o, "%s%s", o ? "," : "", one);
	}
	return 0;
}

static int es_hex(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Removes "user:password@" from a normalised URL in place. The percent-decoded
 * "user:password" is returned in *userpwd (malloc'd, NULL when there was none):
 * the URL itself is printed in many places, so it must not keep it. */
int es_url_take_userinfo(char *url, char **userpwd)
{
	char *s = strstr(url, "://"), *end, *at = NULL, *p, *o;

	*userpwd = NULL;
	if (!s)
		return 0;
	s += 3;
	for (end = s; *end && *end != '/' && *end != '?' && *end != '#'; end++)
		if (*end == '@')
			at = end;
	if (!at)
		return 0;
	*userpwd = strndup(s, (size_t)(at - s));
	if (!*userpwd)
		return -ENOMEM;
	for (p = o = *userpwd; *p; p++) {
		if (p[0] == '%' && es_hex(p[1]) >= 0 && es_hex(p[2]) >= 0) {
			*o++ = (char)(es_hex(p[1]) * 16 + es_hex(p[2]));
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	explicit_bzero(s, (size_t)(at - s));
	memmove(s, at + 1, strlen(at + 1) + 1);
	return 0;
}

/* A secret from NAME or from the file NAME_FILE (trailing newline removed). */
static char *es_secret(const char *name)
{
	char fname[64], *v = NULL;
	const char *e = getenv(name);
	FILE *f;
	size_t len;

	if (e && *e)
		return strdup(e);
	snprintf(fname, sizeof(fname), "%s_FILE", name);
	e = getenv(fname);
	if (!e || !*e)
		return NULL;
	f = fopen(e, "r");
	if (!f) {
		pr_warn("es: cannot read %s=%s: %s\n", fname, e, strerror(errno));
		return NULL;
	}
	v = calloc(1, 4096);
	if (v && !fgets(v, 4096, f))
		v[0] = '\0';
	fclose(f);
	if (v) {
		len = strlen(v);
		while (len && (v[len - 1] == '\n' || v[len - 1] == '\r'))
			v[--len] = '\0';
	}
	return v;
}

int es_load_credentials(struct es_sink *s)
{
	char *user = es_secret("ES_USERNAME"), *pass = es_secret("ES_PASSWORD");
	char *key = es_secret("ES_API_KEY");
	int err = 0;

	if (key && *key) {
		if (asprintf(&s->auth_header, "Authorization: ApiKey %s", key) < 0) {
			s->auth_header = NULL;
			err = -ENOMEM;
		}
	} else if (user && *user) {
		if (asprintf(&s->auth_user, "%s:%s", user, pass ? pass : "") < 0) {
			s->auth_user = NULL;
			err = -ENOMEM;
		}
	}
	if (key)
		explicit_bzero(key, strlen(key));
	if (pass)
		explicit_bzero(pass, strlen(pass));
	free(user);
	free(pass);
	free(key);
	return err;
}

/* ---- nodes ---- */

/* A node by its base URL (normalised, no userinfo). -EEXIST when known already,
 * -ENOSPC past ES_MAX_NODES. Only the sink thread adds once it runs. */
int es_node_add(struct es_sink *s, const char *url)
{
	int i, n = atomic_load(&s->nnodes);

	for (i = 0; i < n; i++)
		if (!strcmp(s->nodes[i].url, url))
			return -EEXIST;
	if (n >= ES_MAX_NODES)
		return -ENOSPC;
	s->nodes[n].url = strdup(url);
	if (!s->nodes[n].url)
		return -ENOMEM;
	atomic_store(&s->nnodes, n + 1);
	return 0;
}

/* GET /_nodes/http: {"nodes":{"ID":{"http":{"publish_address":"[host/]ip:port"}}}}.
 * New nodes join the rotation with the first URL's scheme. */
void es_handle_sniff(struct es_sink *s, CURLcode cc, long code)
{
	struct json_iter it;
	const char *v, *ve, *nodes, *nodes_e;
	char scheme[8], addr[300], url[400];
	int added = 0;

	if (cc != CURLE_OK || code < 200 || code >= 300 || s->resp_overflow) {
		pr_debug("es: node discovery failed: curl %d http %ld\n", cc, code);
		if (cc != CURLE_OK || code >= 500)
			es_fail(s);
		return;
	}
	es_ok(s);
	snprintf(scheme, sizeof(scheme), "%s", strncmp(s->nodes[0].url, "https", 5) ? "http" : "https");
	if (json_path(s->resp.data, s->resp.len, "nodes", &nodes, &nodes_e) ||
	    json_iter_init(&it, json_ws(nodes, nodes_e), nodes_e, '{', 1))
		return;
	while (json_iter_next(&it, NULL, NULL, &v, &ve) == 1) {
		const char *a, *ae, *slash;
		size_t l;

		if (json_path(v, (size_t)(ve - v), "http.publish_address", &a, &ae) || *a != '"' ||
		    ae - a < 3 || (size_t)(ae - a) >= sizeof(addr))
			continue;
		l = (size_t)(ae - a - 2);
		memcpy(addr, a + 1, l);
		addr[l] = '\0';
		slash = strrchr(addr, '/');   /* "hostname/10.0.0.1:9200" */
		snprintf(url, sizeof(url), "%s://%s", scheme, slash ? slash + 1 : addr);
		if (!es_node_add(s, url)) {
			added++;
			pr_info("es: discovered node %s\n", url);
		}
	}
	if (added)
		es_inc(s, ES_C_SNIFFED, (uint64_t)added);
}

/* ---- retention ---- */

/* The lifecycle policy "<prefix>-retention": ISM on OpenSearch (attached to new
 * "<prefix>-*" indices by its ism_template), ILM on Elasticsearch (attached by the
 * index.lifecycle.name setting in the template). Both count age from the index's
 * creation, which for daily indices is its day. */
int es_build_retention(const char *prefix, int days, bool opensearch, struct buf *b)
{
	buf_reset(b);
	if (opensearch)
		return buf_printf(b,
			"{\"policy\":{\"description\":\"shadowtap: delete %s-* indices older than %d days\","
			"\"default_state\":\"hot\",\"states\":["
			"{\"name\":\"hot\",\"actions\":[],\"transitions\":[{\"state_name\":\"delete\","
			"\"conditions\":{\"min_index_age\":\"%dd\"}}]},"
			"{\"name\":\"delete\",\"actions\":[{\"delete\":{}}],\"transitions\":[]}],"
			"\"ism_template\":[{\"index_patterns\":[\"%s-*\"],\"priority\":100}]}}",
			prefix, days, days, prefix) ? -ENOMEM : 0;
	return buf_printf(b,
		"{\"policy\":{\"_meta\":{\"managed_by\":\"shadowtap\"},\"phases\":{"
		"\"hot\":{\"min_age\":\"0ms\",\"actions\":{}},"
		"\"delete\":{\"min_age\":\"%dd\",\"actions\":{\"delete\":{}}}}}}", days) ? -ENOMEM : 0;
}

/* ---- templates ---- */

static int es_build_template_body(struct es_sink *s, struct buf *b, bool component)
{
	static const char body_map[] =
		"{\"properties\":{\"bytes\":{\"type\":\"long\"},"
		"\"content\":{\"type\":\"text\",\"fields\":{\"keyword\":{\"type\":\"keyword\",\"ignore_above\":256}}},"
		"\"encoding\":{\"type\":\"keyword\"},\"truncated\":{\"type\":\"boolean\"}}}";
	static const char hdr_map[] = "{\"type\":\"object\",\"dynamic\":true}";
	static const char kw[] = "{\"type\":\"keyword\",\"ignore_above\":1024}";
	static const char lng[] = "{\"type\":\"long\"}";
	static const char bln[] = "{\"type\":\"boolean\"}";
	static const char in[] = "{\"type\":\"integer\"}";
	/* the difference summaries (<prefix>-diff-*): "fields" is nested so that a query
	 * (the Kibana differences dashboard) can ask for verdict "real" and a path of
	 * the same field, not of any two fields of one endpoint */
	static const char sum_map[] =
		"{\"properties\":{\"endpoint\":{\"type\":\"keyword\",\"ignore_above\":1024},"
		"\"requests\":{\"type\":\"long\"},\"matched\":{\"type\":\"long\"},"
		"\"noise_requests\":{\"type\":\"long\"},\"noise_source\":{\"type\":\"keyword\"},"
		"\"fields_dropped\":{\"type\":\"long\"},"
		"\"fields\":{\"type\":\"nested\",\"properties\":{"
		"\"path\":{\"type\":\"keyword\",\"ignore_above\":1024},\"kind\":{\"type\":\"keyword\"},"
		"\"raw\":{\"type\":\"long\"},\"noise\":{\"type\":\"long\"},"
		"\"share\":{\"type\":\"double\"},\"verdict\":{\"type\":\"keyword\"},"
		"\"example\":{\"properties\":{\"event_id\":{\"type\":\"keyword\"},"
		"\"a\":{\"type\":\"keyword\",\"ignore_above\":1024},"
		"\"b\":{\"type\":\"keyword\",\"ignore_above\":1024}}}}}}}";
	bool ilm = s->ilm_ok;
	int err = 0;

	buf_reset(b);
	if (component)
		err |= buf_printf(b, "{\"template\":{");
	else if (s->legacy_template)
		err |= buf_printf(b, "{\"index_patterns\":[\"%s-*\"],\"order\":10,", s->prefix);
	err |= buf_printf(b,
		"\"settings\":{\"index\":{\"number_of_shards\":1,\"number_of_replicas\":%d,"
		"\"refresh_interval\":\"1s\",%s%s%s\"mapping\":{\"total_fields\":{\"limit\":5000}}}},"
		"\"mappings\":{\"dynamic_templates\":["
		"{\"headers\":{\"path_match\":\"*headers.*\",\"match_mapping_type\":\"string\","
		"\"mapping\":{\"type\":\"keyword\",\"ignore_above\":2048}}},"
		"{\"strings\":{\"match_mapping_type\":\"string\",\"mapping\":%s}}],"
		"\"properties\":{"
		"\"@timestamp\":{\"type\":\"date\"},"
		"\"event\":{\"properties\":{\"id\":%s,\"duration\":%s,\"kind\":%s,\"dataset\":%s}},"
		"\"source\":{\"properties\":{\"ip\":{\"type\":\"ip\"},\"port\":%s}},"
		"\"destination\":{\"properties\":{\"ip\":{\"type\":\"ip\"},\"port\":%s}},"
		"\"network\":{\"properties\":{\"transport\":%s,\"type\":%s,\"connection_id\":%s,\"request_index\":%s}},"
		"\"url\":{\"properties\":{\"original\":{\"type\":\"keyword\",\"ignore_above\":8191,"
		"\"fields\":{\"text\":{\"type\":\"text\"}}},\"path\":%s,\"query\":%s}},",
		/* a cluster (several URLs or --es-sniff) keeps one replica, so losing a
		 * node loses no record; one node cannot place a replica at all */
		s->nnodes > 1 || s->cfg.sniff ? 1 : 0, ilm ? "\"lifecycle\":{\"name\":\"" : "",
		ilm ? s->prefix : "", ilm ? "-retention\"}," : "", kw, kw, lng, kw, kw, in, in, kw, kw, kw, lng, kw, kw);
	err |= buf_printf(b,
		"\"http\":{\"properties\":{\"version\":%s,"
		"\"request\":{\"properties\":{\"method\":%s,\"bytes\":%s,\"headers\":%s,\"body\":%s}},"
		"\"response\":{\"properties\":{\"status_code\":%s,\"bytes\":%s,\"headers\":%s,\"body\":%s}}}},"
		"\"replay\":{\"properties\":{\"target\":%s,\"skipped\":%s,\"error\":%s,\"status_code\":%s,"
		"\"duration\":%s,\"headers\":%s,\"body\":%s}},",
		kw, kw, lng, hdr_map, body_map, in, lng, hdr_map, body_map,
		kw, kw, kw, in, lng, hdr_map, body_map);
	err |= buf_printf(b,
		"\"diff\":{\"properties\":{\"match\":%s,\"status\":%s,\"body\":%s,\"body_json\":%s,"
		"\"headers\":%s,\"body_paths\":%s,\"reason\":%s}},"
		"\"diff_summary\":%s,"
		"\"capture\":{\"properties\":{\"complete\":%s,\"incomplete\":%s,\"gap\":%s,\"gap_bytes\":%s,"
		"\"truncated\":%s,\"malformed\":%s,\"no_response\":%s,\"mid_stream\":%s,\"upgraded\":%s,"
		"\"replay_truncated\":%s}}}}",
		bln, bln, bln, bln, kw, kw, kw, sum_map, bln, bln, bln, lng, bln, kw, bln, bln, bln, bln);
	if (component)
		err |= buf_printf(b, "},\"_meta\":{\"managed_by\":\"shadowtap\"}}");
	else
		err |= buf_putc(b, '}');
	return err ? -ENOMEM : 0;
}

/* before 7.8 one legacy template; else a component template first */
static void es_send_templates(struct es_sink *s)
{
	char path[300];

	snprintf(path, sizeof(path), s->legacy_template ? "/_template/%s" :
		 "/_component_template/%s-mappings", s->prefix);
	if (es_build_template_body(s, &s->req_body, !s->legacy_template) ||
	    es_send(s, s->legacy_template ? ES_REQ_TEMPLATE : ES_REQ_COMPONENT, "PUT", path))
		es_fail(s);
}

/* PUT PREFIX-retention: on Elasticsearch before the templates (which name the ILM
 * policy only once it exists: an Elasticsearch without ILM refuses the unknown
 * index.lifecycle.name setting, and with it the whole template), on OpenSearch after
 * them (ISM attaches by index pattern). 0 when sent. */
static int es_send_retention(struct es_sink *s, bool os)
{
	char path[300];

	snprintf(path, sizeof(path), os ? "/_plugins/_ism/policies/%s-retention" :
		 "/_ilm/policy/%s-retention", s->prefix);
	if (es_build_retention(s->prefix, s->cfg.retention_days, os, &s->req_body) ||
	    es_send(s, ES_REQ_RETENTION, "PUT", path))
		return -EIO;
	return 0;
}

void es_handle_setup(struct es_sink *s, CURLcode cc, long code)
{
	bool os = !strcmp(s->distribution, "opensearch");
	char num[32], ex[301];

	/* the lifecycle policy is not worth holding records back for: a cluster
	 * without ILM/ISM (or a policy that exists already, 409) is said once */
	if (s->req == ES_REQ_RETENTION && cc == CURLE_OK) {
		if (code >= 200 && code < 300)
			pr_info("es: retention policy %s-retention installed (%d days)\n", s->prefix,
				s->cfg.retention_days);
		else if (code == 409)
			pr_info("es: retention policy %s-retention exists already; kept\n", s->prefix);
		else {
			pr_warn("es: retention policy not installed: http %ld: %s\n", code,
				es_resp_excerpt(s, ex, 201));
			es_retention_enable(s);
		}
		s->req = ES_REQ_NONE;
		if (!os) {
			s->ilm_ok = code == 409 || (code >= 200 && code < 300);
			es_send_templates(s);
			return;
		}
		s->ready = true;
		es_ok(s);
		return;
	}
	s->unreachable = cc != CURLE_OK;
	if (cc != CURLE_OK || code < 200 || code >= 300) {
		if (cc != CURLE_OK)
			es_inc(s, cc == CURLE_OPERATION_TIMEDOUT ? ES_C_ERR_TIMEOUT : ES_C_ERR_NETWORK, 1);
		es_inc(s, ES_C_SETUP_FAILURES, 1);
		/* the status says what to fix: 401/403 are credentials, 404 a wrong URL */
		snprintf(num, sizeof(num), "http %ld", code);
		if (atomic_load(&s->ctr[ES_C_SETUP_FAILURES]) == 1)
			pr_warn("es: %s not ready (%s); records spool until it is\n", s->nodes[s->cur].url,
				cc != CURLE_OK ? curl_easy_strerror(cc) : num);
		pr_debug("es: setup step %d failed: curl %d http %ld: %s\n", s->req, cc, code,
			 es_resp_excerpt(s, ex, sizeof(ex)));
		s->req = ES_REQ_NONE;
		es_fail(s);
		return;
	}
	switch (s->req) {
	case ES_REQ_PROBE: {
		int major = 0, minor = 0;

		if (es_json_get_str(s->resp.data, s->resp.len, "version.number", num, sizeof(num))) {
			es_inc(s, ES_C_ERR_BAD_RESPONSE, 1);
			s->req = ES_REQ_NONE;
			es_fail(s);
			return;
		}
		snprintf(s->version, sizeof(s->version), "%s", num);
		if (es_json_get_str(s->resp.data, s->resp.len, "version.distribution",
				    s->distribution, sizeof(s->distribution)))
			snprintf(s->distribution, sizeof(s->distribution), "elasticsearch");
		sscanf(num, "%d.%d", &major, &minor);
		s->legacy_template = strcmp(s->distribution, "opensearch") &&
				     (major < 7 || (major == 7 && minor < 8));
		pr_info("es: %s is %s %s\n", s->nodes[s->cur].url, s->distribution, s->version);
		s->req = ES_REQ_NONE;
		s->ilm_ok = false;
		if (s->cfg.retention_days > 0 && strcmp(s->distribution, "opensearch")) {
			if (es_send_retention(s, false))
				es_fail(s);
			return;
		}
		es_send_templates(s);
		return;
	}
	case ES_REQ_COMPONENT: {
		char path[300];

		buf_reset(&s->req_body);
		s->req = ES_REQ_NONE;
		snprintf(path, sizeof(path), "/_index_template/%s", s->prefix);
		if (buf_printf(&s->req_body, "{\"index_patterns\":[\"%s-*\"],\"composed_of\":[\"%s-mappings\"],"
			       "\"priority\":%d}", s->prefix, s->prefix,
			       s->cfg.template_priority ? s->cfg.template_priority : 200) ||
		    es_send(s, ES_REQ_TEMPLATE, "PUT", path))
			es_fail(s);
		return;
	}
	case ES_REQ_TEMPLATE:
		s->req = ES_REQ_NONE;
		pr_info("es: templates for %s-* installed\n", s->prefix);
		if (s->cfg.retention_days > 0 && os && !es_send_retention(s, true))
			return;
		s->ready = true;
		es_ok(s);
		return;
	default:
		s->req = ES_REQ_NONE;
		return;
	}
}
