/*
 * Logging to stderr (journald or the supervisor collects it), one line per
 * event, with a level and a component tag. Peer misbehaviour goes out at
 * INFO through log_ratelimited() so a flood of bad clients cannot flood the
 * log; our own failures go out at ERR.
 */
#ifndef EDGE_LOG_H
#define EDGE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN = 1,
	LOG_LVL_INFO = 2,
	LOG_LVL_DEBUG = 3,
};

/* Set once at start-up, before any thread starts. */
void log_init(const char *component, enum log_level level);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* "err", "warn", "info", "debug" -> level; -1 when unknown. */
int log_level_parse(const char *s);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * A token bucket per call site: at most burst lines, refilled at rate per
 * second; what is dropped is counted and reported on the next line that
 * passes. The struct lives in the caller (static per site, per thread).
 */
struct log_limit {
	uint64_t last_ms;
	uint32_t tokens;
	uint32_t dropped;
};

void log_ratelimited(struct log_limit *lim, enum log_level level,
		     const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                    \
	do {                                                              \
		if (log_enabled(LOG_LVL_DEBUG))                           \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);              \
	} while (0)

/*
 * For the calling thread only: gather lines and write them on log_flush()
 * (or when 4 KiB are waiting) instead of one write per line. A thread that
 * batches must flush at least once per loop turn.
 */
void log_batch(bool on);
void log_flush(void);

/*
 * Peer bytes for a log line: printable ASCII stays, every other byte and
 * the backslash become \xHH, so that no peer can end a line or forge one,
 * and a reader can tell any byte from an escape. Writes at most cap bytes
 * into dst, NUL included (LOG_ESC_SIZE(n) hold all of n bytes), whole
 * escapes only; returns dst.
 */
#define LOG_ESC_SIZE(n) (4 * (n) + 1)
const char *log_escape(char *dst, size_t cap, const void *src, size_t n);

/*
 * Formats a one-line reason into a caller's error buffer (err may be NULL
 * or errlen 0: then nothing is written). Shared by every module that
 * reports failures as "returns -1 with a reason in err".
 */
void err_set(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Monotonic and wall clocks in milliseconds; the monotonic one also in
 * microseconds, for intervals shorter than a millisecond. */
uint64_t clock_mono_ms(void);
uint64_t clock_mono_us(void);
int64_t clock_wall_ms(void);

#endif
