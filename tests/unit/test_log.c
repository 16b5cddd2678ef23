/*
 * Unit tests for common/log.c: log_escape(), which stands between every
 * peer byte and the log, and the shape of the lines themselves, which
 * operators' tools and the integration suites parse.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/edge.h"
#include "common/log.h"

static void test_escape(void)
{
	char out[LOG_ESC_SIZE(16)];
	static const struct {
		const char *in;
		size_t n;
		const char *want;
	} cases[] = {
		{ "www.example.com", 15, "www.example.com" },
		{ "a\nb", 3, "a\\x0ab" },
		{ "\r\n1 proxy: answered", 19, "\\x0d\\x0a1 proxy: answered" },
		{ "back\\slash", 10, "back\\x5cslash" },
		{ "\x00\x7f\xff", 3, "\\x00\\x7f\\xff" },
		{ "", 0, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		log_escape(out, sizeof(out), check_guarded(cases[i].in, cases[i].n),
			   cases[i].n);
		CHECKF(strcmp(out, cases[i].want) == 0, "case %zu: got \"%s\"", i, out);
	}
	/* Cut on whole escapes only, always NUL-terminated within cap. */
	log_escape(out, 6, "ab\n", 3);
	CHECKF(strcmp(out, "ab") == 0, "cut: got \"%s\"", out);
	log_escape(out, 7, "ab\n", 3);
	CHECKF(strcmp(out, "ab\\x0a") == 0, "fits: got \"%s\"", out);
	log_escape(out, 1, "ab", 2);
	CHECK(out[0] == '\0');
}

/* Every line is "TIME component[pid] level: message", suffixes at the end. */
static void test_line_shape(void)
{
	struct log_limit lim = {0};
	char buf[8192], tmpl[] = "/tmp/acme-edge-test-log-XXXXXX";
	int fd = mkstemp(tmpl), saved = dup(2);
	ssize_t n;
	int lines = 0, suppressed = 0;

	BUG_ON(fd < 0 || saved < 0);
	unlink(tmpl);
	log_init("test", LOG_LVL_INFO);
	fflush(stderr);
	dup2(fd, 2);
	for (int i = 0; i < 200; i++)
		log_ratelimited(&lim, LOG_LVL_INFO, "part: line %d", i);
	usleep(1100 * 1000);	/* the bucket refills: the next line reports */
	log_ratelimited(&lim, LOG_LVL_INFO, "part: after the pause");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	CHECK(n > 0);
	buf[n > 0 ? n : 0] = '\0';
	for (char *line = buf, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		*nl = '\0';
		lines++;
		CHECKF(strstr(line, " test[") && strstr(line, "] info: part: "),
		       "line shape: %s", line);
		if (strstr(line, "similar lines suppressed")) {
			suppressed++;
			CHECKF(strstr(line, "] info: part: after the pause (") != NULL,
			       "the count goes after the message: %s", line);
		}
	}
	CHECK(lines > 1 && lines < 200);
	CHECK(suppressed == 1);
}

int main(void)
{
	test_escape();
	test_line_shape();
	return check_done();
}
