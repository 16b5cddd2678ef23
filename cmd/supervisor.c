/*
 * `acme-edge run`: a small master that forks one child per part (the API,
 * the proxy), restarts a child that dies (with a back-off, so a part that
 * cannot start does not spin), passes SIGHUP on for reload, and on SIGTERM
 * or SIGINT passes the signal on and waits for the children to finish
 * their graceful stop.
 *
 * The master holds no sockets and no store mapping: all it does is wait,
 * so it cannot be the thing that fails.
 *
 * A child is always started on the configuration file as it is now, read
 * again just before the fork: a child restarted after a crash must not
 * bring back what a reload took away (a revoked client, a removed route).
 * When the file no longer loads, the child starts on the last config that
 * did, and the errors are logged.
 */
#include "cmd/supervisor.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/priv.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define STABLE_MS 10000		/* a child up this long resets its back-off */

struct child {
	const struct sv_part *part;
	pid_t pid;
	uint64_t started_ms;
	uint64_t restart_at_ms;		/* when pid == 0: when to start again */
	uint32_t backoff_ms;
};

static volatile sig_atomic_t got_term;
static volatile sig_atomic_t got_hup;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = sig;
}

/*
 * The config to start a child on: the file read again, or, when it does
 * not load (cfg_reload logs why), *last, the last one that did.
 */
static struct cfg *current_cfg(struct cfg **last, const char *cfg_path,
			       const char *part)
{
	struct cfg *next = cfg_reload(cfg_path, "run");
	char err[512];

	/* Users that do not resolve make a config that does not load. */
	if (next && priv_resolve(next, err, sizeof(err)) != 0) {
		log_err("run: reload of %s failed: %s", cfg_path, err);
		cfg_free(next);
		next = NULL;
	}
	if (!next) {
		log_warn("run: starting %s on the last config of %s that loaded",
			 part, cfg_path);
		return *last;
	}
	cfg_free(*last);
	*last = next;
	return next;
}

static void start(struct child *c, struct cfg *cfg, const char *cfg_path,
		  const sigset_t *oldmask)
{
	pid_t pid = fork();

	if (pid < 0) {
		log_err("run: fork for %s: %s", c->part->name, strerror(errno));
		c->restart_at_ms = clock_mono_ms() + c->backoff_ms;
		return;
	}
	if (pid == 0) {
		/* The child gets default dispositions and an open mask. */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		sigprocmask(SIG_SETMASK, oldmask, NULL);
		_exit(c->part->main(cfg, cfg_path));
	}
	c->pid = pid;
	c->started_ms = clock_mono_ms();
	log_info("run: started %s (pid %d)", c->part->name, (int)pid);
}

static void reaped(struct child *c, int status)
{
	uint64_t now = clock_mono_ms();

	if (WIFSIGNALED(status))
		log_err("run: %s (pid %d) killed by signal %d", c->part->name,
			(int)c->pid, WTERMSIG(status));
	else
		log_err("run: %s (pid %d) exited with status %d", c->part->name,
			(int)c->pid, WEXITSTATUS(status));
	c->pid = 0;
	if (now - c->started_ms >= STABLE_MS)
		c->backoff_ms = BACKOFF_MIN_MS;
	c->restart_at_ms = now + c->backoff_ms;
	log_info("run: restarting %s in %u ms", c->part->name, c->backoff_ms);
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							   : c->backoff_ms * 2;
}

int sv_run(const struct sv_part *parts, size_t nparts, struct cfg *cfg,
	   const char *cfg_path)
{
	struct child kids[8];
	struct sigaction sa;
	sigset_t block, oldmask;
	int exit_code = 0;

	BUG_ON(nparts == 0 || nparts > ARRAY_SIZE(kids));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Signals are taken only inside sigsuspend-like waits below. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &oldmask);

	for (size_t i = 0; i < nparts; i++) {
		kids[i] = (struct child){.part = &parts[i], .backoff_ms = BACKOFF_MIN_MS};
		start(&kids[i], cfg, cfg_path, &oldmask);
	}

	while (!got_term) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		int status, sig;
		pid_t pid;

		/*
		 * Wake on any of our signals, or every 100 ms for restarts. The
		 * signal taken is the return value: -1 (a timeout, EINTR) took
		 * none, and then nothing else it could fill is meaningful.
		 */
		sig = sigtimedwait(&block, NULL, &ts);
		/* sigtimedwait consumed the signal: replay it into the flags. */
		if (sig == SIGHUP)
			got_hup = 1;
		else if (sig == SIGTERM || sig == SIGINT)
			got_term = sig;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			for (size_t i = 0; i < nparts; i++)
				if (kids[i].pid == pid)
					reaped(&kids[i], status);
		if (got_hup) {
			got_hup = 0;
			log_info("run: SIGHUP: reloading children");
			for (size_t i = 0; i < nparts; i++)
				if (kids[i].pid > 0)
					kill(kids[i].pid, SIGHUP);
		}
		for (size_t i = 0; !got_term && i < nparts; i++)
			if (kids[i].pid == 0 && clock_mono_ms() >= kids[i].restart_at_ms)
				start(&kids[i],
				      current_cfg(&cfg, cfg_path, parts[i].name),
				      cfg_path, &oldmask);
	}

	log_info("run: %s: stopping children", strsignal(got_term));
	for (size_t i = 0; i < nparts; i++)
		if (kids[i].pid > 0)
			kill(kids[i].pid, SIGTERM);
	for (size_t i = 0; i < nparts; i++) {
		int status;
		if (kids[i].pid <= 0)
			continue;
		while (waitpid(kids[i].pid, &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			exit_code = 1;
	}
	cfg_free(cfg);
	return exit_code;
}
