/* Logging to stderr with levels; libbpf's messages come through here one level lower.
 * Owns: the global verbosity. */
#ifndef ST_LOG_H
#define ST_LOG_H

enum st_log_level { ST_LOG_WARN = 0, ST_LOG_INFO = 1, ST_LOG_DEBUG = 2 };

extern int st_log_level;

void st_log(enum st_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pr_warn(...)  st_log(ST_LOG_WARN, __VA_ARGS__)
#define pr_info(...)  st_log(ST_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) st_log(ST_LOG_DEBUG, __VA_ARGS__)

#endif
