/* The option table: every entry's shape, its --help default agreeing with the
 * module defaults, and every option's good, bad and boundary values, through
 * opt_set and through the whole command line / environment path (opts_parse). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "opts.h"

/* ---- helpers ---- */

static char captured[4096];

/* Run f with stderr going to a temporary file; the text lands in captured[]. */
#define WITH_STDERR(expr)                                                             \
	({                                                                            \
		FILE *tf_ = tmpfile();                                                \
		int saved_ = dup(2), r_;                                              \
		size_t n_;                                                            \
		assert_non_null(tf_);                                                 \
		fflush(stderr);                                                       \
		dup2(fileno(tf_), 2);                                                 \
		r_ = (expr);                                                          \
		fflush(stderr);                                                       \
		dup2(saved_, 2);                                                      \
		close(saved_);                                                        \
		rewind(tf_);                                                          \
		n_ = fread(captured, 1, sizeof(captured) - 1, tf_);                   \
		captured[n_] = '\0';                                                  \
		fclose(tf_);                                                          \
		r_;                                                                   \
	})

static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static uint64_t load_uint(const void *p, size_t width)
{
	switch (width) {
	case 1: return *(const uint8_t *)p;
	case 2: return *(const uint16_t *)p;
	case 4: return *(const uint32_t *)p;
	default: return *(const uint64_t *)p;
	}
}

static const void *field(const struct config *c, const struct opt *o)
{
	return (const char *)c + o->off;
}

/* a value the option's extra check accepts */
static const char *good_string(const struct opt *o)
{
	if (!strcmp(o->name, "replay") || !strcmp(o->name, "replay-baseline"))
		return "http://127.0.0.1:81";
	if (!strcmp(o->name, "metrics"))
		return "127.0.0.1:9100";
	if (!strcmp(o->name, "endpoint"))
		return "GET /api/user/*";
	if (!strcmp(o->name, "diff-ignore"))
		return "* $.meta.generated_at";
	if (!strcmp(o->name, "es"))
		return "https://127.0.0.1:9200";
	if (!strcmp(o->name, "es-ca"))
		return "/dev/null";
	if (!strcmp(o->name, "replay-header"))
		return "X-Shadow: 1";
	if (!strcmp(o->name, "metrics"))
		return "127.0.0.1:9464";
	if (!strcmp(o->name, "redact-json"))
		return "$.user.password";
	return "value";
}

static int set(struct config *c, const char *name, const char *v)
{
	const struct opt *o = opt_find(opts_table, name);

	assert_non_null(o);
	return WITH_STDERR(opt_set(o, c, v, NULL));
}

/* a bad value: -EINVAL and exactly one line naming the option */
static void expect_bad(const struct opt *o, const char *v)
{
	struct config c;
	char want[80];
	int r;

	opts_defaults(&c);
	r = WITH_STDERR(opt_set(o, &c, v, NULL));
	if (r != -EINVAL)
		fail_msg("--%s '%s' accepted", o->name, v ? v : "(null)");
	snprintf(want, sizeof(want), "--%s", o->name);
	if (lines(captured) != 1 || !strstr(captured, want))
		fail_msg("--%s '%s': message '%s'", o->name, v, captured);
}

static void expect_good(const struct opt *o, const char *v, struct config *c)
{
	int r;

	opts_defaults(c);
	r = WITH_STDERR(opt_set(o, c, v, NULL));
	if (r != 0)
		fail_msg("--%s '%s' refused: %s", o->name, v, captured);
}

/* ---- the table itself ---- */

static void test_table_shape(void **state)
{
	const struct opt *o, *p;

	for (o = opts_table; o->name; o++) {
		assert_non_null(o->help);
		for (p = o + 1; p->name; p++) {
			if (!strcmp(o->name, p->name) || (o->short_name && o->short_name == p->short_name))
				fail_msg("duplicate option %s / %s", o->name, p->name);
		}
		switch (o->type) {
		case OPT_FLAG:
		case OPT_COUNT:
			assert_int_equal(o->width, sizeof(int));
			break;
		case OPT_REAL:
			assert_int_equal(o->width, sizeof(double));
			assert_true(o->min <= o->max);
			break;
		case OPT_STRING:
			assert_int_equal(o->width, sizeof(char *));
			break;
		case OPT_UINT:
		case OPT_SIZE:
			assert_true(o->min <= o->max);
			/* int-sized fields may be signed: keep below 2^31 */
			assert_true(o->max < (o->width == 4 ? 2147483648.0 : 18446744073709551615.0));
			break;
		case OPT_DURATION:
			assert_true(o->min > 0 && o->min <= o->max);
			assert_true(o->unit_ns && o->store_ns);
			/* the overflow check: max in ns fits 63 bits, the stored count its field */
			assert_true(o->max * (double)o->unit_ns < 9.2e18);
			assert_true(o->max * (double)o->unit_ns / (double)o->store_ns <
				    (o->width == 4 ? 2147483648.0 : 9.2e18));
			break;
		case OPT_LIST:
			assert_int_equal(o->width / sizeof(char *) >= (size_t)o->max, 1);
			break;
		case OPT_ENUM:
			assert_non_null(o->choices);
			assert_int_equal(o->width,
					 o->flags & OPTF_STORE_NAME ? sizeof(char *) : sizeof(int));
			break;
		default:
			break;
		}
	}
}

/* --help's "(default X)" must be what the agent really uses. */
static void test_defaults_agree(void **state)
{
	const struct opt *o;
	struct config def, c;
	int checked = 0;

	opts_defaults(&def);
	for (o = opts_table; o->name; o++) {
		if (!o->def)
			continue;
		expect_good(o, o->def, &c);
		checked++;
		if (o->type == OPT_PORTS) {
			assert_int_equal(c.cap.nports, def.cap.nports);
			assert_memory_equal(c.cap.ports, def.cap.ports, sizeof(c.cap.ports));
		} else if (o->type == OPT_STRING || (o->type == OPT_ENUM && (o->flags & OPTF_STORE_NAME))) {
			assert_string_equal(*(char *const *)field(&c, o), *(char *const *)field(&def, o));
		} else if (o->type == OPT_REAL) {
			assert_true(*(const double *)field(&c, o) == *(const double *)field(&def, o));
		} else if (memcmp(field(&c, o), field(&def, o), o->width)) {
			fail_msg("--%s: default '%s' differs from the module default", o->name, o->def);
		}
	}
	assert_true(checked > 20);
}

/* ---- every option: good, bad and boundary values, generated from its entry ---- */

static void test_every_option(void **state)
{
	static const char *const junk_numbers[] = {
		"", " 1", "1 ", "-1", " -1", "+1", "1,", "abc", "0x10", "1e", "nan", "inf", NULL,
	};
	const struct opt *o;
	struct config c;
	char v[64];
	int i;

	for (o = opts_table; o->name; o++) {
		switch (o->type) {
		case OPT_UINT:
		case OPT_SIZE:
			for (i = 0; junk_numbers[i]; i++)
				expect_bad(o, junk_numbers[i]);
			if (o->type == OPT_UINT)
				expect_bad(o, "1.5");
			snprintf(v, sizeof(v), "%.0f", o->max);
			expect_good(o, v, &c);
			assert_true(load_uint(field(&c, o), o->width) == (uint64_t)o->max);
			snprintf(v, sizeof(v), "%.0f", o->max + 1);
			expect_bad(o, v);
			if (o->min > 0) {
				snprintf(v, sizeof(v), "%.0f", o->min);
				if (!(o->flags & OPTF_POW2) || o->min == 4096) {
					expect_good(o, v, &c);
					assert_true(load_uint(field(&c, o), o->width) == (uint64_t)o->min);
				}
				snprintf(v, sizeof(v), "%.0f", o->min - 1);
				expect_bad(o, v);
			}
			expect_bad(o, "99999999999999999999999");
			break;
		case OPT_DURATION:
			for (i = 0; junk_numbers[i]; i++)
				expect_bad(o, junk_numbers[i]);
			expect_bad(o, "2e10");     /* would overflow the ns conversion */
			expect_bad(o, "1e300");
			snprintf(v, sizeof(v), "%.17g", o->max);
			expect_good(o, v, &c);
			assert_true(load_uint(field(&c, o), o->width) ==
				    (uint64_t)llround(o->max * (double)o->unit_ns) / o->store_ns);
			snprintf(v, sizeof(v), "%.17g", o->max * 1.001);
			expect_bad(o, v);
			snprintf(v, sizeof(v), "%.17g", o->min);
			expect_good(o, v, &c);
			snprintf(v, sizeof(v), "%.17g", o->min / 2);
			expect_bad(o, v);
			break;
		case OPT_REAL:
			for (i = 0; junk_numbers[i]; i++)
				expect_bad(o, junk_numbers[i]);
			snprintf(v, sizeof(v), "%.17g%s", o->max, o->flags & OPTF_PERCENT ? "%" : "");
			expect_good(o, v, &c);
			assert_true(*(const double *)field(&c, o) == o->max);
			snprintf(v, sizeof(v), "%.17g", o->max * 1.001);
			expect_bad(o, v);
			snprintf(v, sizeof(v), "%.17g", o->min);
			expect_good(o, v, &c);
			if (o->min > 0) {
				snprintf(v, sizeof(v), "%.17g", o->min / 2);
				expect_bad(o, v);
			}
			if (o->flags & OPTF_PERCENT)
				expect_bad(o, "%");
			else
				expect_bad(o, "1%");
			if (o->flags & OPTF_MAX_IS_ZERO) {
				expect_good(o, "MAX", &c);
				assert_true(*(const double *)field(&c, o) == 0);
			} else {
				expect_bad(o, "max");
			}
			break;
		case OPT_STRING:
			expect_bad(o, "");
			expect_good(o, good_string(o), &c);
			assert_string_equal(*(char *const *)field(&c, o), good_string(o));
			break;
		case OPT_LIST: {
			int n;

			expect_bad(o, "");
			opts_defaults(&c);
			for (n = 0; n < (int)o->max; n++)
				assert_int_equal(WITH_STDERR(opt_set(o, &c, good_string(o), NULL)), 0);
			assert_int_equal(*(const int *)((const char *)&c + o->count_off), (int)o->max);
			assert_int_equal(WITH_STDERR(opt_set(o, &c, good_string(o), NULL)), -EINVAL);
			assert_non_null(strstr(captured, "too many"));
			break;
		}
		case OPT_ENUM:
			for (i = 0; o->choices[i].name; i++)
				expect_good(o, o->choices[i].name, &c);
			expect_bad(o, "");
			expect_bad(o, "bogus");
			snprintf(v, sizeof(v), " %s", o->choices[0].name);
			expect_bad(o, v);
			break;
		case OPT_PORTS:
			for (i = 0; junk_numbers[i]; i++)
				expect_bad(o, junk_numbers[i]);
			break;
		case OPT_FLAG:
		case OPT_COUNT:
			if (o->type == OPT_FLAG || o->width) {
				expect_good(o, NULL, &c);
				assert_int_equal(*(const int *)field(&c, o), 1);
			}
			break;
		default:
			break;
		}
	}
}

static void test_specific_values(void **state)
{
	static const struct { const char *opt, *v; int ok; } cases[] = {
		{ "port", "80", 1 }, { "port", "80,8080", 1 }, { "port", "65535", 1 },
		{ "port", "0", 0 }, { "port", "65536", 0 }, { "port", "80,", 0 }, { "port", ",80", 0 },
		{ "port", "80,,81", 0 }, { "port", " 80", 0 }, { "port", "80, 81", 0 },
		{ "port", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", 1 },
		{ "port", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", 0 },
		{ "max-flow-bytes", " -1", 0 }, { "max-flow-bytes", "4M", 1 }, { "max-flow-bytes", "4MiB", 1 },
		{ "max-flow-bytes", "4Q", 0 }, { "hole-timeout", " -1", 0 }, { "hole-timeout", "0", 0 },
		{ "idle-timeout", "2e10", 0 }, { "idle-timeout", "0.5", 1 }, { "idle-timeout", "0", 0 },
		{ "exit-after", "0.2", 1 }, { "exit-after", "-1", 0 },
		{ "ring-size", "3000", 0 }, { "ring-size", "64K", 0 }, { "ring-size", "128K", 1 }, { "ring-size", "2G", 0 },
		{ "replay-sample", "150%", 0 }, { "replay-sample", "10%", 1 }, { "replay-sample", "0", 1 },
		{ "replay-speed", "max", 1 }, { "replay-speed", "200%", 1 }, { "replay-speed", "0", 0 },
		{ "replay", "ftp://x", 0 }, { "es", "ftp://x", 0 }, { "es-index", "_x", 0 },
		{ "es-index", "a/b", 0 }, { "es-ca", "/nonexistent/ca.pem", 0 },
		{ "replay-header", "NoColon", 0 }, { "replay-header", ": v", 0 },
		{ "interface", "", 0 }, { "pin-dir", "", 0 }, { "output", "", 0 },
		{ "replay-host", "", 0 }, { "spool-dir", "", 0 }, { "output-file", "", 0 },
		{ "capture", "XDP", 0 }, { "spool-fsync", "always", 1 }, { "output-format", "stap", 1 },
		{ "stats", "0", 0 }, { "stats", "86400", 1 }, { "stats", "86401", 0 },
	};
	struct config c;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r;

		opts_defaults(&c);
		r = set(&c, cases[i].opt, cases[i].v);
		if ((r == 0) != cases[i].ok)
			fail_msg("--%s '%s': got %d (%s)", cases[i].opt, cases[i].v, r, captured);
	}
	opts_defaults(&c);
	assert_int_equal(set(&c, "port", "8080,80"), 0);
	assert_int_equal(c.cap.nports, 2);
	assert_int_equal(c.cap.ports[0], 8080);
	assert_int_equal(c.cap.ports[1], 80);
	assert_int_equal(set(&c, "idle-timeout", "0.25"), 0);
	assert_true(c.reasm.idle_timeout_ns == 250000000ull);
	assert_int_equal(set(&c, "hole-timeout", "20"), 0);
	assert_true(c.reasm.hole_timeout_ns == 20000000ull);
	assert_int_equal(set(&c, "replay-timeout", "250"), 0);
	assert_int_equal(c.replay.response_timeout_ms, 250);
	assert_int_equal(set(&c, "capture", "xdp"), 0);
	assert_int_equal(c.cap.mode, CAPTURE_XDP);
	assert_int_equal(set(&c, "output-format", "gor"), 0);
	assert_int_equal(c.rec.out_format, REC_FMT_GOR);
	assert_int_equal(set(&c, "output-file-compress", "gzip"), 0);
	assert_int_equal(c.rec.out_gzip, 1);
}

/* ---- the whole path: argv and environment ---- */

static int parse(struct config *c, char *const *env, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	argv[argc++] = "shadowtap";
	va_start(ap, env);
	while ((argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	opts_free(c);
	opts_defaults(c);
	return WITH_STDERR(opts_parse(c, argc, argv, env));
}

static void test_argv(void **state)
{
	struct config c = { 0 };

	assert_int_equal(parse(&c, NULL, "-p", "81", "--idle-timeout", "3", "-v", "-v", NULL), OPTS_RUN);
	assert_int_equal(c.cap.ports[0], 81);
	assert_int_equal(c.verbose, 2);
	assert_int_equal(parse(&c, NULL, "--help", NULL), OPTS_HELP);
	assert_int_equal(parse(&c, NULL, "--version", NULL), OPTS_VERSION);
	assert_int_equal(parse(&c, NULL, "--bogus", NULL), -EINVAL);
	assert_non_null(strstr(captured, "--bogus"));
	assert_int_equal(parse(&c, NULL, "--port", NULL), -EINVAL);
	assert_non_null(strstr(captured, "--port"));
	assert_int_equal(parse(&c, NULL, "stray", NULL), -EINVAL);
	assert_int_equal(parse(&c, NULL, "--idle-timeout", "2e10", NULL), -EINVAL);
	assert_int_equal(lines(captured), 1);
	assert_non_null(strstr(captured, "--idle-timeout"));
	assert_int_equal(parse(&c, NULL, "-r", "http://a:81", "-r", "http://b:81", NULL), OPTS_RUN);
	assert_int_equal(c.replay.ntargets, 2);
	opts_free(&c);
}

static int parse_finish(struct config *c, ...)
{
	char *argv[32];
	int argc = 0, r;
	va_list ap;

	argv[argc++] = "shadowtap";
	va_start(ap, c);
	while ((argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	opts_free(c);
	opts_defaults(c);
	r = WITH_STDERR(opts_parse(c, argc, argv, NULL));
	return r ? r : WITH_STDERR(opts_finish(c));
}

/* Each worker's ring must take one maximal segment (ST_RING_MIN): an explicit total
 * that splits below it is refused with the total that would do, and the total derived
 * from --memory-limit is raised to it. */
static void test_ring_minimum(void **state)
{
	struct config c = { 0 };

	assert_int_equal(parse_finish(&c, "--ring-size", "64K", NULL), -EINVAL);
	assert_non_null(strstr(captured, "--ring-size"));
	assert_int_equal(parse_finish(&c, "--ring-size", "128K", "--workers", "1", NULL), OPTS_RUN);
	assert_int_equal(c.cap.ring_bytes, 128 * 1024);
	assert_int_equal(parse_finish(&c, "--ring-size", "128K", "--workers", "8", NULL), -EINVAL);
	assert_int_equal(lines(captured), 1);
	assert_non_null(strstr(captured, "--ring-size 1048576 or more"));
	/* 3 workers: 512K splits into 128K rings, 256K into 64K ones */
	assert_int_equal(parse_finish(&c, "--ring-size", "256K", "--workers", "3", NULL), -EINVAL);
	assert_non_null(strstr(captured, "--ring-size 524288 or more"));
	assert_int_equal(parse_finish(&c, "--ring-size", "512K", "--workers", "3", NULL), OPTS_RUN);
	assert_int_equal(parse_finish(&c, "--ring-size", "1M", "--workers", "8", NULL), OPTS_RUN);
	/* derived: 16M / 8 is 2M, 32K a worker over 64 of them: raised to 8M */
	assert_int_equal(parse_finish(&c, "--memory-limit", "16M", "--workers", "64", NULL), OPTS_RUN);
	assert_int_equal(c.cap.ring_bytes, 8u << 20);
	assert_int_equal(parse_finish(&c, "--memory-limit", "16M", "--workers", "1", NULL), OPTS_RUN);
	assert_int_equal(c.cap.ring_bytes, 2u << 20);
	/* 1/8, at most 32M: the default 256M and 2G both give 32M */
	assert_int_equal(parse_finish(&c, "--workers", "1", NULL), OPTS_RUN);
	assert_int_equal(c.cap.ring_bytes, 32u << 20);
	assert_int_equal(parse_finish(&c, "--memory-limit", "2G", "--workers", "1", NULL), OPTS_RUN);
	assert_int_equal(c.cap.ring_bytes, 32u << 20);
	opts_free(&c);
}

/* Every bound --memory-limit derives, full at once (the ring's pages twice: they count
 * twice in RSS), stays within 3/4 of the default budget, which leaves the flow table,
 * the connections' own state and the process under 256 MB of RSS
 * (tests/integration/test_memory_worst.sh measures it); a bigger --memory-limit gives
 * bigger bounds. */
static void test_memory_shares(void **state)
{
	struct config c = { 0 };
	uint64_t sum, held;

	(void)state;
	assert_int_equal(parse_finish(&c, "--workers", "1", NULL), OPTS_RUN);
	assert_int_equal(c.memory_limit, 256u << 20);
	sum = 2 * c.cap.ring_bytes + c.replay.max_inflight_bytes + c.queue_bytes +
	      c.xcfg.max_held_bytes + c.reasm.max_total_bytes + c.memory_limit / 128;
	assert_true(sum <= c.memory_limit / 4 * 3);
	assert_int_equal(c.replay.max_inflight_bytes, 80u << 20);
	assert_int_equal(c.xcfg.max_held_bytes, 16u << 20);
	assert_int_equal(c.reasm.max_total_bytes, 8u << 20);
	assert_int_equal(c.queue_bytes, 16u << 20);
	held = c.xcfg.max_held_bytes;
	assert_int_equal(parse_finish(&c, "--memory-limit", "2G", "--workers", "1", NULL), OPTS_RUN);
	assert_int_equal(c.replay.max_inflight_bytes, 640u << 20);
	assert_true(c.xcfg.max_held_bytes > held);
	/* a limit given stays as given */
	assert_int_equal(parse_finish(&c, "--max-held-bytes", "512M", "--workers", "1", NULL), OPTS_RUN);
	assert_int_equal(c.xcfg.max_held_bytes, 512u << 20);
	opts_free(&c);
}

static void test_env(void **state)
{
	static const char *const yes[] = { "1", "true", "TRUE", "yes", "Yes", "on", "ON", NULL };
	static const char *const no[] = { "0", "false", "False", "no", "NO", "off", "Off", NULL };
	static const char *const junk[] = { "2", "y", "n", "enabled", "disabled", "off ", " on", NULL };
	struct config c = { 0 };
	char var[64];
	char *env[4] = { var, NULL };
	int i;

	for (i = 0; yes[i]; i++) {
		snprintf(var, sizeof(var), "SHADOWTAP_NO_REDACT=%s", yes[i]);
		assert_int_equal(parse(&c, env, NULL), OPTS_RUN);
		assert_int_equal(c.red.no_redact, 1);
	}
	for (i = 0; no[i]; i++) {
		snprintf(var, sizeof(var), "SHADOWTAP_NO_REDACT=%s", no[i]);
		assert_int_equal(parse(&c, env, NULL), OPTS_RUN);
		assert_int_equal(c.red.no_redact, 0);
	}
	for (i = 0; junk[i]; i++) {
		snprintf(var, sizeof(var), "SHADOWTAP_NO_REDACT=%s", junk[i]);
		assert_int_equal(parse(&c, env, NULL), -EINVAL);
		assert_int_equal(lines(captured), 1);
		assert_non_null(strstr(captured, "SHADOWTAP_NO_REDACT"));
	}
	/* values, lists, precedence */
	snprintf(var, sizeof(var), "SHADOWTAP_PORT=abc");
	assert_int_equal(parse(&c, env, "--version", NULL), -EINVAL);
	assert_non_null(strstr(captured, "SHADOWTAP_PORT"));
	assert_int_equal(lines(captured), 1);
	snprintf(var, sizeof(var), "SHADOWTAP_PORT=81");
	assert_int_equal(parse(&c, env, NULL), OPTS_RUN);
	assert_int_equal(c.cap.ports[0], 81);
	assert_int_equal(parse(&c, env, "-p", "80", NULL), OPTS_RUN);
	assert_int_equal(c.cap.ports[0], 80);
	snprintf(var, sizeof(var), "SHADOWTAP_ALLOW_METHOD=GET,POST");
	assert_int_equal(parse(&c, env, NULL), OPTS_RUN);
	assert_int_equal(c.replay.nallow_method, 2);
	assert_string_equal(c.replay.allow_method[1], "POST");
	snprintf(var, sizeof(var), "SHADOWTAP_ALLOW_METHOD=GET,");
	assert_int_equal(parse(&c, env, NULL), -EINVAL);
	snprintf(var, sizeof(var), "SHADOWTAP_IDLE_TIMEOUT=2e10");
	assert_int_equal(parse(&c, env, NULL), -EINVAL);
	assert_non_null(strstr(captured, "SHADOWTAP_IDLE_TIMEOUT"));
	/* empty counts as unset */
	snprintf(var, sizeof(var), "SHADOWTAP_INTERFACE=");
	assert_int_equal(parse(&c, env, NULL), OPTS_RUN);
	assert_null(c.cap.iface);
	/* unknown names: one warning line each, not an error */
	env[0] = "SHADOWTAP_REPLAYY=http://x";
	env[1] = "SHADOWTAP_TC_LEGACY=1";
	env[2] = "SHADOWTAP_PORTS=80";
	assert_int_equal(parse(&c, env, NULL), OPTS_RUN);
	assert_int_equal(lines(captured), 2);
	assert_non_null(strstr(captured, "SHADOWTAP_REPLAYY"));
	assert_non_null(strstr(captured, "SHADOWTAP_PORTS"));
	assert_null(strstr(captured, "TC_LEGACY"));
	opts_free(&c);
}

static void test_help_lists_everything(void **state)
{
	const struct opt *o;
	char *text = NULL, want[64];
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);

	assert_non_null(f);
	opts_usage(f);
	fclose(f);
	for (o = opts_table; o->name; o++) {
		snprintf(want, sizeof(want), "--%s", o->name);
		assert_non_null(strstr(text, want));
		if (o->def) {
			snprintf(want, sizeof(want), "(default %s)", o->def);
			assert_non_null(strstr(text, want));
		}
	}
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_shape),
		cmocka_unit_test(test_defaults_agree),
		cmocka_unit_test(test_every_option),
		cmocka_unit_test(test_specific_values),
		cmocka_unit_test(test_argv),
		cmocka_unit_test(test_ring_minimum),
		cmocka_unit_test(test_memory_shares),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_help_lists_everything),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
