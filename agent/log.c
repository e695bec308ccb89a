#include <stdarg.h>
#include <stdio.h>

#include "log.h"

int st_log_level = ST_LOG_INFO;

void st_log(enum st_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if ((int)lvl > st_log_level)
		return;
	va_start(ap, fmt);
	fputs("shadowtap: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}
