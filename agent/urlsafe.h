/* URLs that are safe to print: userinfo ("user:password@") never reaches a log line,
 * a counter line or a record. Owns: nothing but the rule. */
#ifndef ST_URLSAFE_H
#define ST_URLSAFE_H

#include <stdbool.h>
#include <stddef.h>

/* True when url (scheme://user[:pass]@host... or user@host) carries userinfo. */
bool url_has_userinfo(const char *url);
/* url without its userinfo into out (n bytes, truncated, always NUL-terminated);
 * text that is no URL is copied as it is. Returns out, for use in printf. */
const char *url_printable(const char *url, char *out, size_t n);
/* Same for a comma-separated list of URLs. */
const char *url_list_printable(const char *urls, char *out, size_t n);

#endif
