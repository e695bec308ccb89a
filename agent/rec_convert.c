/* `shadowtap convert`: reads a recording in either format and writes it in the
 * format the output name says. Owns: the convert command line and its summary. */
#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "opts.h"
#include "recording.h"

static int rec_convert_fmt(const char *p, int *gz)
{
	size_t n = strlen(p);

	*gz = 0;
	if (n > 3 && !strcmp(p + n - 3, ".gz")) {
		*gz = 1;
		n -= 3;
	}
	if (n >= 5 && !strncmp(p + n - 5, ".stap", 5))
		return REC_FMT_NATIVE;
	if (n >= 4 && !strncmp(p + n - 4, ".gor", 4))
		return REC_FMT_GOR;
	if (!*gz && (!strcmp(p, "-") || (n >= 7 && !strncmp(p + n - 7, ".ndjson", 7)) ||
		     (n >= 5 && !strncmp(p + n - 5, ".json", 5))))
		return REC_FMT_NDJSON;
	return -1;
}

/* convert's options: the same table-driven parser as the agent's (opts.c) */
struct convert_opts {
	int no_redact;
	size_t body_limit;
};

#define CONVERT_FIELD(f) offsetof(struct convert_opts, f), sizeof(((struct convert_opts *)0)->f)

static const struct opt convert_opts[] = {
	{ "no-redact", 0, OPT_FLAG, CONVERT_FIELD(no_redact),
	  .help = "store sensitive header values as recorded (.ndjson output)" },
	{ "body-limit", 0, OPT_SIZE, CONVERT_FIELD(body_limit), .min = 0, .max = 1ull << 30,
	  .def = "64K", .arg = "SIZE", .help = "body bytes kept per message when reading" },
	{ "help", 'h', OPT_ACTION, 0, 0, .help = "show this help" },
	{ NULL },
};

int recording_convert_main(int argc, char **argv)
{
	struct convert_opts copts = { 0 };
	struct record_json_opts jo = { .redact = record_redact_default, .body_limit = 64 * 1024 };
	const char *in = NULL, *outp = NULL;
	struct recording_cfg rc;
	struct rec_writer_stats wst = { 0 };
	struct rec_reader_stats rst;
	struct rec_reader *rd = NULL;
	struct rec_writer_out o;
	struct buf b = { 0 }, blk = { 0 };
	struct st_record *r;
	char esc[PATH_MAX];
	FILE *jf = NULL;
	uint64_t nrec = 0;
	uint32_t bn = 0;
	int fmt, gz, i, ret, rc_exit = 1;
	size_t k, e;

	recording_cfg_default(&rc);
	copts.body_limit = rc.body_limit;
	ret = opt_parse_argv(convert_opts, &copts, argc, argv, &i);
	if (ret == OPTS_HELP || ret == OPTS_VERSION) {
		printf("usage: shadowtap convert [OPTIONS] IN OUT\n"
		       "Reads a shadowtap recording (.stap[.gz]) or GoReplay file (.gor[.gz]) and\n"
		       "writes OUT in the format its extension names: .stap[.gz], .gor[.gz],\n"
		       ".ndjson (records as JSON, sensitive headers redacted unless --no-redact).\n\n");
		opt_print_help(stdout, convert_opts);
		return 0;
	}
	if (ret)
		return 2;
	if (copts.no_redact)
		jo.redact = NULL;
	rc.body_limit = copts.body_limit;
	if (i < argc)
		in = argv[i++];
	if (i < argc)
		outp = argv[i++];
	if (i < argc) {
		fprintf(stderr, "shadowtap convert: unexpected argument '%s'\n", argv[i]);
		return 2;
	}
	if (!in || !outp) {
		fprintf(stderr, "shadowtap convert: expected IN and OUT (see convert --help)\n");
		return 2;
	}
	fmt = rec_convert_fmt(outp, &gz);
	if (fmt < 0) {
		fprintf(stderr, "shadowtap convert: cannot tell the format of '%s' "
				"(use .stap, .stap.gz, .gor, .gor.gz or .ndjson)\n", outp);
		return 2;
	}
	if (rec_reader_open(&rd, in, rc.body_limit))
		return 1;
	jo.body_limit = rc.body_limit;
	/* the output name is literal here: escape strftime's % */
	for (k = 0, e = 0; outp[k] && e + 2 < sizeof(esc); k++) {
		if (outp[k] == '%')
			esc[e++] = '%';
		esc[e++] = outp[k];
	}
	esc[e] = '\0';
	rc.out_path = esc;
	rc.out_format = fmt;
	rc.out_gzip = gz;
	rc.meta_source = "convert";
	rec_writer_out_init(&o, &rc, &wst);
	if (fmt == REC_FMT_NDJSON) {
		jf = strcmp(outp, "-") ? fopen(outp, "w") : stdout;
		if (!jf) {
			fprintf(stderr, "shadowtap convert: cannot open %s: %s\n", outp, strerror(errno));
			goto out;
		}
	} else if (rec_writer_out_open(&o)) {
		goto out;
	}
	while ((ret = rec_reader_next(rd, &r)) > 0) {
		buf_reset(&b);
		if (fmt == REC_FMT_NDJSON) {
			if (!record_to_json(r, &jo, &b) && !buf_putc(&b, '\n') &&
			    fwrite(b.data, 1, b.len, jf) == b.len)
				nrec++;
			else
				wst.write_errors++;
		} else {
			ret = fmt == REC_FMT_GOR ? rec_gor_encode(r, &b) : rec_native_encode(r, &b);
			if (ret || buf_append(&blk, b.data, b.len)) {
				wst.dropped_encode++;
			} else {
				bn++;
				nrec++;
			}
			if (blk.len >= REC_BLOCK_TARGET) {
				rec_writer_out_block(&o, blk.data, blk.len, bn);
				buf_reset(&blk);
				bn = 0;
			}
		}
		record_free(r);
	}
	if (bn)
		rec_writer_out_block(&o, blk.data, blk.len, bn);
	if (ret < 0)
		goto out;
	rc_exit = wst.write_errors || wst.dropped_encode || wst.dropped_write_error ? 1 : 0;
out:
	rec_writer_out_fini(&o);
	if (jf && jf != stdout && fclose(jf))
		rc_exit = 1;
	else if (jf == stdout)
		fflush(stdout);
	if (rd) {
		rec_reader_get_stats(rd, &rst);
		fprintf(stderr, "convert: %llu records written to %s; read %llu (bad_blocks=%llu "
				"bad_records=%llu torn_tail=%llu read_errors=%llu gor_orphan_responses=%llu "
				"gor_ambiguous=%llu gor_unanswered=%llu); errors=%llu\n",
			(unsigned long long)nrec, outp, (unsigned long long)rst.records,
			(unsigned long long)rst.bad_blocks, (unsigned long long)rst.bad_records,
			(unsigned long long)rst.torn_tail, (unsigned long long)rst.read_errors,
			(unsigned long long)rst.gor_orphan_responses, (unsigned long long)rst.gor_ambiguous,
			(unsigned long long)rst.gor_unanswered,
			(unsigned long long)(wst.write_errors + wst.dropped_encode + wst.dropped_write_error));
	}
	rec_reader_close(rd);
	buf_free(&b);
	buf_free(&blk);
	return rc_exit;
}
