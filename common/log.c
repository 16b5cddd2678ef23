#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 1024
#define LOG_LIMIT_BURST 20
#define LOG_LIMIT_PER_S 5

/*
 * Batching, per thread: a worker that logs a line per challenge answered
 * would otherwise make a write(2) per answer. Lines are gathered and
 * written once per loop turn, in writes of at most PIPE_BUF bytes cut at
 * line ends, so lines from several threads and processes sharing stderr
 * still never interleave mid-line.
 */
#define LOG_BATCH_MAX 4096	/* PIPE_BUF: writes up to this are atomic */
static __thread char *batch_buf;
static __thread size_t batch_len;

static const char *log_component = "acme-edge";
static enum log_level log_level = LOG_LVL_INFO;
static const char *const level_names[] = {"err", "warn", "info", "debug"};

/*
 * What a line starts with, made once rather than per line (a worker logs
 * a line per challenge answered): "component[pid] " per process, renewed
 * in a forked child, and per thread the time up to the second.
 */
static char log_ident[96];
static __thread time_t stamp_sec = -1;
static __thread char stamp[32];		/* "YYYY-MM-DDTHH:MM:SS." */
static __thread size_t stamp_len;

static void ident_make(void)
{
	snprintf(log_ident, sizeof(log_ident), "Z %s[%d] ", log_component,
		 (int)getpid());
}

static pthread_once_t ident_once = PTHREAD_ONCE_INIT;

static void ident_first(void)
{
	ident_make();
	pthread_atfork(NULL, NULL, ident_make);
}

void log_init(const char *component, enum log_level level)
{
	pthread_once(&ident_once, ident_first);
	log_component = component;
	log_level = level;
	ident_make();
}

/* Appends src (n bytes) at *pos if it fits before end; false if not. */
static bool put(char **pos, const char *end, const char *src, size_t n)
{
	if ((size_t)(end - *pos) < n)
		return false;
	memcpy(*pos, src, n);
	*pos += n;
	return true;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

bool log_enabled(enum log_level level)
{
	return level <= log_level;
}

int log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

uint64_t clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Formats the whole line first and writes it with one write(2), so lines
 * from several processes sharing stderr never interleave mid-line.
 */
/*
 * suffix goes after the message, so every line keeps the shape
 * "time component[pid] level: part: message" that readers of the log
 * (and the tests) rely on.
 */
static void log_vwrite(enum log_level level, const char *suffix,
		       const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void log_vwrite(enum log_level level, const char *suffix,
		       const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	char *pos = line, *end = line + sizeof(line) - 2;
	struct timespec ts;
	long ms;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != stamp_sec) {
		struct tm tm;

		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec);
		stamp_len = n > 0 && (size_t)n < sizeof(stamp) ? (size_t)n : 0;
		stamp_sec = ts.tv_sec;
	}
	pthread_once(&ident_once, ident_first);
	ms = ts.tv_nsec / 1000000;
	put(&pos, end, stamp, stamp_len);
	put(&pos, end, (const char[]){(char)('0' + ms / 100),
		(char)('0' + ms / 10 % 10), (char)('0' + ms % 10)}, 3);
	put(&pos, end, log_ident, strlen(log_ident));
	put(&pos, end, level_names[level], strlen(level_names[level]));
	put(&pos, end, ": ", 2);
	n = (int)(pos - line);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	pos = line + n;
	put(&pos, end, suffix, strlen(suffix));
	n = (int)(pos - line);
	line[n++] = '\n';
	if (batch_buf) {
		if (batch_len + (size_t)n > LOG_BATCH_MAX)
			log_flush();
		memcpy(batch_buf + batch_len, line, (size_t)n);
		batch_len += (size_t)n;
		return;
	}
	/* Nothing sensible to do if stderr is gone. */
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

void log_batch(bool on)
{
	if (on && !batch_buf) {
		batch_buf = malloc(LOG_BATCH_MAX);
		batch_len = 0;
	} else if (!on && batch_buf) {
		log_flush();
		free(batch_buf);
		batch_buf = NULL;
	}
}

void log_flush(void)
{
	if (batch_len) {
		ssize_t w = write(STDERR_FILENO, batch_buf, batch_len);
		(void)w;
		batch_len = 0;
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, "", fmt, ap);
	va_end(ap);
}

void log_ratelimited(struct log_limit *lim, enum log_level level,
		     const char *fmt, ...)
{
	char note[64] = "";
	uint64_t now = clock_mono_ms();
	va_list ap;

	if (!log_enabled(level))
		return;
	if (lim->last_ms == 0) {
		lim->tokens = LOG_LIMIT_BURST;
		lim->last_ms = now;
	} else {
		/* Refill whole tokens only, carrying the remainder forward. */
		uint64_t add = (now - lim->last_ms) * LOG_LIMIT_PER_S / 1000;
		if (add > 0) {
			uint64_t t = lim->tokens + add;
			lim->tokens = t > LOG_LIMIT_BURST ? LOG_LIMIT_BURST : (uint32_t)t;
			lim->last_ms += add * 1000 / LOG_LIMIT_PER_S;
		}
	}
	if (lim->tokens == 0) {
		lim->dropped++;
		return;
	}
	lim->tokens--;
	if (lim->dropped) {
		snprintf(note, sizeof(note), " (%u similar lines suppressed)",
			 lim->dropped);
		lim->dropped = 0;
	}
	va_start(ap, fmt);
	log_vwrite(level, note, fmt, ap);
	va_end(ap);
}

const char *log_escape(char *dst, size_t cap, const void *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = src;
	size_t o = 0;

	if (cap == 0)
		return dst;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= cap)
				break;
			dst[o++] = (char)c;
			continue;
		}
		if (o + 4 >= cap)
			break;
		dst[o++] = '\\';
		dst[o++] = 'x';
		dst[o++] = hex[c >> 4];
		dst[o++] = hex[c & 15];
	}
	dst[o] = '\0';
	return dst;
}

void err_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
