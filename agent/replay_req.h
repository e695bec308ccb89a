/* Replay request preparation, pure (no sockets, no threads): target URL parsing, the
 * filters, the sampling decision, and the head rewrites. Owns: the compiled rules. */
#ifndef ST_REPLAY_REQ_H
#define ST_REPLAY_REQ_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http1.h"
#include "record.h"
#include "replay.h"

/* A target URL "http://host[:port][/prefix]", split; nothing resolved yet. */
struct replay_url {
	char host[256];
	char port[8];
	char prefix[256];        /* without trailing slashes; "" for none */
	size_t prefix_len;
	bool tls;                /* https:// */
};

struct replay_hdr {
	const char *line;        /* "Name: value" as configured */
	size_t name_len;
};

/* What replay_cfg asks for, checked and compiled once. Strings point into the cfg. */
struct replay_rules {
	const char *host;                        /* --replay-host */
	struct replay_hdr hdrs[REPLAY_MAX_HEADERS];
	int nhdrs;
	const char *allow_method[REPLAY_MAX_FILTERS];
	int nallow_method;
	regex_t allow[REPLAY_MAX_FILTERS], deny[REPLAY_MAX_FILTERS];
	int nallow, ndeny;
	double sample_pct;
	bool rewrite;                            /* Host or headers change: rebuild the head */
};

/* A captured request, parsed; pointers into the raw bytes. */
struct replay_req {
	struct http1_request req;
	struct http1_header hdrs[ST_MAX_HEADERS];
	size_t head_len;         /* bytes of the head */
	size_t end;              /* bytes of head + body by the request's framing */
	char method[16];         /* NUL-terminated, cut to 15 bytes */
	size_t method_len;       /* strlen(method) */
};

enum replay_verdict {
	REPLAY_SEND = 0,
	REPLAY_UNREPLAYABLE,     /* cannot be sent as captured; *why says why */
	REPLAY_FILTERED,         /* refused by --allow-url/--deny-url/--allow-method */
};

/* 0 or -EINVAL with a message naming the URL. */
int replay_url_parse(const char *url, struct replay_url *u);

/* 0, or -EINVAL with a message naming the bad option (nothing left to free then). */
int replay_rules_init(struct replay_rules *r, const struct replay_cfg *cfg);
void replay_rules_free(struct replay_rules *r);

/* Why rec cannot be replayed, judged from what capture recorded, or NULL. */
const char *replay_rec_unreplayable(const struct st_record *rec);
/* --replay-sample: true when the client connection flow_id is not replayed. Whole
 * connections are kept or dropped, by a hash of the flow id. */
bool replay_rules_sampled_out(const struct replay_rules *r, uint64_t flow_id);

/* Parse raw, check it can be sent whole, and apply the filters. Returns an enum
 * replay_verdict; *why is the skip reason unless REPLAY_SEND. */
int replay_req_prepare(const struct replay_rules *r, const uint8_t *raw, size_t len,
		       struct replay_req *q, const char **why);
/* The same for rec->raw, with the capture's own parse of the head when the record
 * holds it for exactly those bytes (else raw is parsed): same verdict, same q. */
int replay_req_prepare_rec(const struct replay_rules *r, const struct st_record *rec,
			   struct replay_req *q, const char **why);
/* Safe to send again when nothing came back (RFC 9110 9.2.2: GET, HEAD, OPTIONS,
 * TRACE, PUT, DELETE). */
bool replay_req_idempotent(const char *method);
/* serverB closes the connection after answering q (HTTP/1.0 without keep-alive, or
 * Connection: close): nothing may be pipelined behind it. */
bool replay_req_closes(const struct replay_req *q);
/* Build the head to send into out: the captured head with the rewrites and the
 * target's path prefix. Header lines are copied with their original bytes (case,
 * spacing, line ends) unless rewritten. 0 or -ENOMEM. */
int replay_req_rewrite(const struct replay_rules *r, const char *prefix, size_t prefix_len,
		       const struct replay_req *q, const uint8_t *raw, struct buf *out);

#endif
