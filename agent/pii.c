/* Tokens are HMAC-SHA256 (OpenSSL's libcrypto, already a dependency of libcurl) cut to
 * 64 bits: enough to correlate equal values across millions of records, too short and
 * keyed so that a value cannot be found by hashing guesses without the key. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "pii.h"

size_t pii_replacement(enum pii_mode mode, const struct pii_key *key, const char *v, size_t n,
		       char out[PII_TOKEN_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	size_t i;

	if (mode != PII_HASH || !key || !key->len ||
	    !HMAC(EVP_sha256(), key->bytes, (int)key->len, (const unsigned char *)v, n, mac, &mlen) ||
	    mlen < 8) {
		memcpy(out, PII_MASK_STR, sizeof(PII_MASK_STR));
		return sizeof(PII_MASK_STR) - 1;
	}
	memcpy(out, "REDACTED-", 9);
	for (i = 0; i < 8; i++) {
		out[9 + 2 * i] = hex[mac[i] >> 4];
		out[10 + 2 * i] = hex[mac[i] & 15];
	}
	out[PII_TOKEN_LEN] = '\0';
	return PII_TOKEN_LEN;
}

int pii_key_from_env(struct pii_key *key)
{
	const char *v = getenv("SHADOWTAP_REDACT_KEY"), *f = getenv("SHADOWTAP_REDACT_KEY_FILE");
	ssize_t n;
	int fd;

	memset(key, 0, sizeof(*key));
	if (v && *v) {
		n = (ssize_t)strlen(v);
		if ((size_t)n > sizeof(key->bytes))
			return -EINVAL;
		memcpy(key->bytes, v, (size_t)n);
		key->len = (size_t)n;
		return 0;
	}
	if (!f || !*f)
		return -ENOENT;
	fd = open(f, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, key->bytes, sizeof(key->bytes));
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	{
		char extra;

		if (n == (ssize_t)sizeof(key->bytes) && read(fd, &extra, 1) == 1) {
			close(fd);
			memset(key, 0, sizeof(*key));
			return -EINVAL;
		}
	}
	close(fd);
	if (n > 0 && key->bytes[n - 1] == '\n')
		n--;
	if (n > 0 && key->bytes[n - 1] == '\r')
		n--;
	if (n == 0)
		return -EINVAL;
	key->len = (size_t)n;
	return 0;
}

bool pii_luhn_ok(const char *s, size_t n)
{
	int sum = 0, dbl = 0, digits = 0;
	size_t i = n;

	while (i--) {
		int d;

		if (!isdigit((unsigned char)s[i]))
			continue;
		d = s[i] - '0';
		if (dbl && (d *= 2) > 9)
			d -= 9;
		sum += d;
		dbl = !dbl;
		digits++;
	}
	return digits > 0 && sum % 10 == 0;
}

/* A card number at s[i]: 13..19 digits, single ' ' or '-' allowed between digits, not
 * glued to other digits or letters. Returns its length or 0. */
static size_t card_at(const char *s, size_t n, size_t i)
{
	size_t j = i, digits = 0, last_digit_end = i;

	if (i > 0 && isalnum((unsigned char)s[i - 1]))
		return 0;
	while (j < n) {
		if (isdigit((unsigned char)s[j])) {
			digits++;
			j++;
			last_digit_end = j;
			if (digits > 19)
				return 0;
		} else if ((s[j] == ' ' || s[j] == '-') && j + 1 < n && isdigit((unsigned char)s[j + 1]) &&
			   digits > 0) {
			j++;
		} else {
			break;
		}
	}
	if (digits < 13)
		return 0;
	if (last_digit_end < n && isalnum((unsigned char)s[last_digit_end]))
		return 0;
	return pii_luhn_ok(s + i, last_digit_end - i) ? last_digit_end - i : 0;
}

static bool email_local(char c)
{
	return isalnum((unsigned char)c) || strchr(".!#$%&'*+/=?^_`{|}~-", c);
}

static bool email_domain(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.';
}

/* An e-mail address with its '@' at s[at]: returns the span or len 0. */
static struct pii_span email_at(const char *s, size_t n, size_t at)
{
	struct pii_span sp = { 0, 0 };
	size_t a = at, b = at + 1, dot = 0;

	while (a > 0 && email_local(s[a - 1]))
		a--;
	while (a < at && s[a] == '.')
		a++;
	if (a == at)
		return sp;
	while (b < n && email_domain(s[b])) {
		if (s[b] == '.')
			dot = b;
		b++;
	}
	while (b > at + 1 && (s[b - 1] == '.' || s[b - 1] == '-'))
		b--;
	if (!dot || dot <= at + 1 || dot >= b - 2)
		return sp;
	sp.off = a;
	sp.len = b - a;
	return sp;
}

static int span_cmp(const void *x, const void *y)
{
	const struct pii_span *a = x, *b = y;

	if (a->off != b->off)
		return a->off < b->off ? -1 : 1;
	return a->len > b->len ? -1 : a->len < b->len;
}

size_t pii_scan(const char *s, size_t n, unsigned kinds, const regex_t *res, size_t nres,
		struct pii_span *spans, size_t max)
{
	size_t cnt = 0, i, k, out;

	for (i = 0; i < n && cnt < max; i++) {
		if ((kinds & PII_SCAN_CARD) && isdigit((unsigned char)s[i])) {
			size_t l = card_at(s, n, i);

			if (l) {
				spans[cnt++] = (struct pii_span){ i, l };
				i += l - 1;
				continue;
			}
		}
		if ((kinds & PII_SCAN_EMAIL) && s[i] == '@') {
			struct pii_span sp = email_at(s, n, i);

			if (sp.len)
				spans[cnt++] = sp;
		}
	}
	for (k = 0; k < nres; k++) {
		size_t off = 0;
		regmatch_t m;

		while (off < n && cnt < max &&
		       regexec(&res[k], s + off, 1, &m, off ? REG_NOTBOL : 0) == 0) {
			if (m.rm_eo <= m.rm_so) {          /* empty match: step past it */
				off += (size_t)m.rm_so + 1;
				continue;
			}
			spans[cnt++] = (struct pii_span){ off + (size_t)m.rm_so, (size_t)(m.rm_eo - m.rm_so) };
			off += (size_t)m.rm_eo;
		}
	}
	/* sorted, overlapping spans merged */
	qsort(spans, cnt, sizeof(*spans), span_cmp);
	for (i = 0, out = 0; i < cnt; i++) {
		if (out && spans[i].off < spans[out - 1].off + spans[out - 1].len) {
			size_t end = spans[i].off + spans[i].len, pend = spans[out - 1].off + spans[out - 1].len;

			if (end > pend)
				spans[out - 1].len = end - spans[out - 1].off;
			continue;
		}
		spans[out++] = spans[i];
	}
	return out;
}

int pii_apply(struct buf *out, const char *s, size_t n, const struct pii_span *spans, size_t nspans,
	      enum pii_mode mode, const struct pii_key *key)
{
	char tok[PII_TOKEN_LEN + 1];
	size_t pos = 0, i, tl;

	for (i = 0; i < nspans; i++) {
		if (spans[i].off < pos || spans[i].off + spans[i].len > n)
			return -EINVAL;
		if (buf_append(out, s + pos, spans[i].off - pos))
			return -ENOMEM;
		tl = pii_replacement(mode, key, s + spans[i].off, spans[i].len, tok);
		if (buf_append(out, tok, tl))
			return -ENOMEM;
		pos = spans[i].off + spans[i].len;
	}
	return buf_append(out, s + pos, n - pos) ? -ENOMEM : 0;
}

int pii_redact_query(struct buf *out, const char *t, size_t n, const char *const *names,
		     enum pii_mode mode, const struct pii_key *key)
{
	const char *q = memchr(t, '?', n), *end = t + n, *p;
	char tok[PII_TOKEN_LEN + 1];
	int replaced = 0;

	if (!q || !names || !names[0])
		return buf_append(out, t, n) ? -ENOMEM : 0;
	if (buf_append(out, t, (size_t)(q + 1 - t)))
		return -ENOMEM;
	for (p = q + 1; p <= end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *pe = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pe - p));
		const char *const *nm;
		bool hit = false;

		if (eq)
			for (nm = names; *nm; nm++)
				if (strlen(*nm) == (size_t)(eq - p) && memcmp(*nm, p, (size_t)(eq - p)) == 0)
					hit = true;
		if (hit) {
			size_t tl = pii_replacement(mode, key, eq + 1, (size_t)(pe - eq - 1), tok);

			if (buf_append(out, p, (size_t)(eq + 1 - p)) || buf_append(out, tok, tl))
				return -ENOMEM;
			replaced++;
		} else if (buf_append(out, p, (size_t)(pe - p))) {
			return -ENOMEM;
		}
		if (!amp)
			break;
		if (buf_putc(out, '&'))
			return -ENOMEM;
		p = amp + 1;
	}
	return replaced;
}
