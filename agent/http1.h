/* Incremental, zero-copy HTTP/1.x parsing: request and response heads over the
 * caller's buffer, and a streaming body decoder. No allocation, no copies. */
#ifndef ST_HTTP1_H
#define ST_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP1_NEED_MORE (-2)
#define HTTP1_MALFORMED (-1)

/* Bounds of the chunked decoder: one chunk-size line (extensions included), and the
 * whole trailer section. Beyond them the body is HTTP1_MALFORMED. */
#define HTTP1_CHUNK_LINE_MAX 4096
#define HTTP1_TRAILER_MAX    16384

struct http1_header {
	const char *name;   /* as on the wire (case kept) */
	size_t name_len;
	const char *value;  /* leading/trailing blanks stripped */
	size_t value_len;
};

struct http1_request {
	const char *method;
	size_t method_len;
	const char *target;      /* request-target as on the wire */
	size_t target_len;
	int minor_version;       /* 0 or 1 for HTTP/1.x; -1 for HTTP/0.9 (no version, no headers) */
	struct http1_header *headers;  /* points into the caller's array */
	size_t num_headers;
	size_t num_over;         /* field lines past max_hdrs: checked, not kept (see below) */
};

struct http1_response {
	int minor_version;       /* 0 or 1 */
	int status;              /* 100..999 */
	const char *reason;
	size_t reason_len;
	struct http1_header *headers;
	size_t num_headers;
	size_t num_over;
};

/* Parse a request head at buf[0..len). hdrs/max_hdrs is the caller's header array.
 * Returns the head length in bytes (through the blank line, or through the request
 * line for HTTP/0.9) on success, HTTP1_NEED_MORE if the head is incomplete, or
 * HTTP1_MALFORMED. Outputs are reset on entry. More than max_hdrs field lines is
 * not an error: each line is still checked, the first max_hdrs are kept, the rest
 * are counted in num_over, except that a field the framing and the agent depend on
 * (Content-Length, Transfer-Encoding, Connection, Upgrade, Host, Content-Type,
 * Content-Encoding) takes the place of the last ordinary field kept, so an
 * over-long head is framed as the server frames it. Leading empty lines (CRLF) before a request line are skipped and
 * counted in the returned length. A bare LF is accepted as a line end.
 *
 * Leniencies and strictness, on purpose: one or more SP separate the request-line
 * and status-line elements; HTTP/1.x with x > 1 is reported as minor_version 1
 * (RFC 9110 2.5), any other version is malformed; HTTP/0.9 is recognised only as
 * "GET target" with no version (RFC 1945 Simple-Request). Obsolete line folding
 * (a field line starting with SP/HTAB), whitespace between field name and colon,
 * NUL and other control characters (HTAB aside) are malformed. A status line may
 * omit the reason phrase (and its SP). Heads are limited to INT_MAX bytes. */
int http1_parse_request(const char *buf, size_t len, struct http1_request *req,
			struct http1_header *hdrs, size_t max_hdrs);
int http1_parse_response(const char *buf, size_t len, struct http1_response *resp,
			 struct http1_header *hdrs, size_t max_hdrs);

/* Field names are scanned 16 bytes at a time where the CPU has SSSE3 (chosen at
 * load time). For tests and fuzzing: on = 0 forces the byte-at-a-time scan, on = 1
 * goes back to what the CPU offers. Not thread-safe; call before parsing. */
void http1_set_simd(int on);

/* Case-insensitive header lookup; returns the first match or NULL. */
const struct http1_header *http1_find_header(const struct http1_header *hdrs, size_t n,
					     const char *name);
/* Does a comma-separated header value contain token (case-insensitive)? Elements
 * are compared whole after trimming SP/HTAB; empty elements are ignored. */
int http1_has_token(const char *value, size_t len, const char *token);

enum http1_framing {
	HTTP1_BODY_NONE = 0,     /* no body */
	HTTP1_BODY_LENGTH,       /* Content-Length bytes */
	HTTP1_BODY_CHUNKED,      /* chunked transfer coding, with trailers */
	HTTP1_BODY_CLOSE,        /* response body delimited by connection close */
	HTTP1_BODY_TUNNEL,       /* connection switched protocol (101, 2xx to CONNECT): stop parsing */
};

/* Framing of a request body (RFC 9112 section 6). Transfer-Encoding with chunked
 * last (and only last) is CHUNKED; both Transfer-Encoding and Content-Length, a
 * non-chunked Transfer-Encoding, Transfer-Encoding in HTTP/1.0, or an invalid /
 * conflicting Content-Length returns HTTP1_MALFORMED (request smuggling shapes are
 * flagged, not guessed). Content-Length is digits only; a comma list or repeated
 * headers must all agree; values above INT64_MAX are malformed. Content-Length: 0
 * is reported as HTTP1_BODY_NONE so callers can finish the message at once.
 * content_length may be NULL; it is set to 0 unless the result is LENGTH. */
int http1_request_framing(const struct http1_request *req, uint64_t *content_length);
/* Framing of a response, given the request method it answers (HEAD, CONNECT
 * matter). 1xx other than 101, 204 and 304 have no body; 101 and 2xx to CONNECT
 * are HTTP1_BODY_TUNNEL. Transfer-Encoding with chunked last is CHUNKED even when
 * Content-Length is present (RFC 9112 6.3); any other Transfer-Encoding, or one in
 * an HTTP/1.0 response, is CLOSE. An invalid Content-Length is HTTP1_MALFORMED;
 * Content-Length: 0 is HTTP1_BODY_NONE. */
int http1_response_framing(const struct http1_response *resp, const char *req_method,
			   size_t req_method_len, uint64_t *content_length);

/* Streaming body decoder. Zero-initialise, then http1_body_init. The chunked
 * decoder accepts bare LF for CRLF, skips chunk extensions and trailer fields
 * (bounded by HTTP1_CHUNK_LINE_MAX / HTTP1_TRAILER_MAX) and delivers only data.
 * TUNNEL behaves like CLOSE. After HTTP1_MALFORMED every later feed fails too. */
struct http1_body {
	int framing;             /* enum http1_framing */
	uint64_t remaining;      /* LENGTH: body bytes left; CHUNKED: bytes left in chunk */
	int state;               /* chunked decoder state (internal) */
	uint32_t line_len;       /* length of the current chunk-size/trailer line (bounded) */
	uint64_t data_bytes;     /* decoded body bytes so far */
	uint64_t wire_bytes;     /* bytes consumed so far, framing included */
	int done;                /* body (and trailers) complete */
	uint32_t trailer_bytes;  /* size of the trailer section so far (bounded) */
};

void http1_body_init(struct http1_body *b, int framing, uint64_t content_length);

/* Called for each span of decoded body data (points into the fed buffer). */
typedef void (*http1_data_cb)(void *ctx, const char *data, size_t len);

/* Feed wire bytes. Returns the number of bytes consumed (<= len), stopping right
 * after the end of the body so the caller can parse the next message from there,
 * or HTTP1_MALFORMED on a bad chunk size/line. Sets b->done at the end of the body.
 * CLOSE framing consumes everything; the caller ends it with http1_body_eof. */
ssize_t http1_body_feed(struct http1_body *b, const char *buf, size_t len,
			http1_data_cb cb, void *ctx);
/* The connection closed: returns 0 if that completes the body (CLOSE framing, or
 * already done), -1 if the body was cut short. */
int http1_body_eof(struct http1_body *b);

#endif
