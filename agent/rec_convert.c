/* `shadowtap convert`: reads a recording in either format and writes it in the
 * format the output name says. Owns: the convert command line and its summary. */
#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "opts.h"
#include "pii.h"
#include "rec_redact.h"
#include "recording.h"
#include "sfile.h"

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
	size_t body_limit;
	/* the agent's --redact-* rules (opts.c), so a recording made with --record-pii
	 * converts to the outputs the live agent would have written, same tokens */
	struct redact_opts red;
	int keep_pii;
};

#define CONVERT_FIELD(f) offsetof(struct convert_opts, f), sizeof(((struct convert_opts *)0)->f)

static const struct opt convert_opts[] = {
	OPTS_REDACT_ROWS(struct convert_opts, red),
	{ "record-pii", 0, OPT_FLAG, CONVERT_FIELD(keep_pii),
	  .help = "keep bodies and query strings as read in .stap/.gor outputs (the --redact-json, "
		  "--redact-query and --redact-pattern rules still apply to .ndjson)" },
	{ "body-limit", 0, OPT_SIZE, CONVERT_FIELD(body_limit), .min = 0, .max = 1ull << 30,
	  .def = "64K", .arg = "SIZE", .help = "body bytes kept per message when reading" },
	{ "help", 'h', OPT_ACTION, 0, 0, .help = "show this help" },
	{ NULL },
};

/* Same file as the input (device and inode, so links and other spellings count). */
static int rec_convert_same(const char *in, const char *out)
{
	if (!strcmp(out, "-") || !sfile_same(in, out))
		return 0;
	fprintf(stderr, "shadowtap convert: %s and %s are the same file; refusing to overwrite "
			"the input\n", in, out);
	return 1;
}

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
	struct rec_redacted red = { 0 };
	struct pii_cfg pii = { 0 };
	struct st_record view;
	struct buf b = { 0 }, blk = { 0 };
	struct st_record *r;
	char tmp[PATH_MAX] = "";
	FILE *jf = NULL;
	uint64_t nrec = 0;
	uint32_t bn = 0;
	int fmt, gz, i, ret, fd, rc_exit = 1, written = 0;

	recording_cfg_default(&rc);
	copts.body_limit = rc.body_limit;
	copts.red.mode = "mask";
	ret = opt_parse_argv(convert_opts, &copts, argc, argv, &i);
	if (ret == OPTS_HELP || ret == OPTS_VERSION) {
		printf("usage: shadowtap convert [OPTIONS] IN OUT\n"
		       "Reads a shadowtap recording (.stap[.gz]) or GoReplay file (.gor[.gz]) and\n"
		       "writes OUT in the format its extension names: .stap[.gz], .gor[.gz],\n"
		       ".ndjson (records as JSON). Sensitive headers are redacted in every output\n"
		       "unless --no-redact; the --redact-* rules apply to every output (bodies and\n"
		       "query strings of .stap/.gor kept with --record-pii). OUT is written to a\n"
		       "temporary file renamed into place.\n\n");
		opt_print_help(stdout, convert_opts);
		return 0;
	}
	if (ret)
		return 2;
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
	if (rec_convert_same(in, outp))
		return 1;
	/* the agent's rules and key (pii.c): a token here is the live record's token */
	if (redact_opts_finish(&copts.red, &pii))
		return 2;
	jo.redact = copts.red.header;
	rc.redact = copts.red.header;
	if (copts.keep_pii && fmt != REC_FMT_NDJSON && pii_cfg_rewrites(&pii))
		fprintf(stderr, "shadowtap convert: --record-pii: %s will hold bodies and query strings "
				"as read (the --redact-json/-query/-pattern rules apply to .ndjson only)\n",
			outp);
	jo.pii = &pii;
	if (rec_reader_open(&rd, in, rc.body_limit)) {
		pii_cfg_free(&pii);
		return 1;
	}
	jo.body_limit = rc.body_limit;
	rc.out_path = outp;
	rc.out_format = fmt;
	rc.out_gzip = gz;
	rc.meta_source = "convert";
	rec_writer_out_init(&o, &rc, &wst);
	if (strcmp(outp, "-")) {
		/* a partial output never replaces OUT: it is renamed into place at the end */
		fd = sfile_tmp_beside(outp, tmp, sizeof(tmp));
		if (fd < 0) {
			fprintf(stderr, "shadowtap convert: cannot create a file beside %s: %s\n", outp,
				strerror(-fd));
			tmp[0] = '\0';
			goto out;
		}
		if (fmt == REC_FMT_NDJSON) {
			jf = fdopen(fd, "w");
			if (!jf) {
				close(fd);
				goto out;
			}
		} else {
			o.adopt_fd = fd;
			snprintf(o.cur, sizeof(o.cur), "%s", tmp);
		}
	} else if (fmt == REC_FMT_NDJSON) {
		jf = stdout;
	}
	if (fmt != REC_FMT_NDJSON && rec_writer_out_open(&o))
		goto out;
	while ((ret = rec_reader_next(rd, &r)) > 0) {
		buf_reset(&b);
		if (fmt == REC_FMT_NDJSON) {
			if (!record_to_json(r, &jo, &b) && !buf_putc(&b, '\n') &&
			    fwrite(b.data, 1, b.len, jf) == b.len)
				nrec++;
			else
				wst.write_errors++;
		} else {
			/* the live writer's rule (rec_writer_submit): headers, then
			 * the PII rules unless --record-pii */
			ret = rec_redact_record_pii(r, rc.redact, copts.keep_pii ? NULL : &pii, &red,
						    &view);
			if (ret >= 0)
				ret = rec_writer_encode(&rc, ret ? &view : r, &b, &wst);
			if (ret == -EBADMSG) {
				/* counted as refused_gor_separator */
			} else if (ret || buf_append(&blk, b.data, b.len)) {
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
	rc_exit = wst.write_errors || wst.dropped_encode || wst.dropped_write_error ||
		  wst.refused_gor_separator ? 1 : 0;
	written = !wst.write_errors && !wst.dropped_write_error;
out:
	rec_writer_out_fini(&o);
	if (o.st->write_errors)
		written = 0;
	if (jf && jf != stdout && fclose(jf))
		rc_exit = 1, written = 0;
	else if (jf == stdout)
		fflush(stdout);
	if (rd) {
		rec_reader_get_stats(rd, &rst);
		/* damaged input is an error even when every readable record was written */
		if (rst.read_errors)
			rc_exit = 1;
		fprintf(stderr, "convert: %llu records written to %s; read %llu (bad_blocks=%llu "
				"bad_records=%llu torn_tail=%llu read_errors=%llu gor_orphan_responses=%llu "
				"gor_ambiguous=%llu gor_unanswered=%llu); refused_gor_separator=%llu "
				"errors=%llu\n",
			(unsigned long long)nrec, outp, (unsigned long long)rst.records,
			(unsigned long long)rst.bad_blocks, (unsigned long long)rst.bad_records,
			(unsigned long long)rst.torn_tail, (unsigned long long)rst.read_errors,
			(unsigned long long)rst.gor_orphan_responses, (unsigned long long)rst.gor_ambiguous,
			(unsigned long long)rst.gor_unanswered,
			(unsigned long long)wst.refused_gor_separator,
			(unsigned long long)(wst.write_errors + wst.dropped_encode + wst.dropped_write_error +
					     rst.read_errors));
	}
	/* OUT appears only complete: what a damaged input still gave is kept (the exit
	 * status says the input had errors), a failed write leaves OUT as it was */
	if (tmp[0]) {
		if (written && rename(tmp, outp)) {
			fprintf(stderr, "shadowtap convert: cannot rename %s to %s: %s\n", tmp, outp,
				strerror(errno));
			written = 0;
			rc_exit = 1;
		}
		if (!written)
			unlink(tmp);
	}
	rec_reader_close(rd);
	rec_redacted_free(&red);
	pii_cfg_free(&pii);
	buf_free(&b);
	buf_free(&blk);
	return rc_exit;
}
