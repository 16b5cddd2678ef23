/*
 * `acme-edge proxy`: the process around the workers. The main thread only
 * sets things up, waits for signals and swaps config snapshots; the data
 * path runs entirely in the workers.
 *
 * Reload: SIGHUP reads the config again; on success a new snapshot is
 * published with one atomic store and each worker switches at its next
 * loop turn. A connection that is choosing an upstream holds a reference
 * to the snapshot its route lives in. The process's own reference to the
 * old snapshot is dropped only after RETIRE_MS, long past any worker's
 * loop turn, so a worker never takes a reference on a freed snapshot.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proxy/acme_tls.h"
#include "common/edge.h"
#include "common/log.h"
#include "common/priv.h"
#include "proxy/conn.h"
#include "proxy/worker.h"

#define RETIRE_MS 2000
/*
 * The kernel caps it at net.core.somaxconn. It bounds the accept queue and
 * the handshakes defer_accept keeps waiting before SYN cookies take over,
 * so the host's limit, not ours, is the one that counts.
 */
#define LISTEN_BACKLOG 65535
/* Descriptors a proxy process holds besides its workers' (stdio, store...). */
#define FD_PROCESS 64
/* And a worker besides its connections and listeners (ring, event base). */
#define FD_WORKER 8

struct retired {
	struct live_cfg *lc;
	uint64_t at_ms;
};

struct live_cfg *live_cfg_get(struct proxy *px)
{
	struct live_cfg *lc = atomic_load(&px->live);

	atomic_fetch_add(&lc->refs, 1);
	return lc;
}

void live_cfg_put(struct live_cfg *lc)
{
	if (atomic_fetch_sub(&lc->refs, 1) == 1) {
		cfg_free(lc->cfg);
		free(lc);
	}
}

static struct live_cfg *live_cfg_new(struct cfg *cfg)
{
	struct live_cfg *lc = calloc(1, sizeof(*lc));

	BUG_ON(!lc);
	lc->cfg = cfg;
	atomic_init(&lc->refs, 1);
	return lc;
}

static int listen_on(const struct cfg_addr *a, uint32_t defer_ms)
{
	char addr[ADDR_STRLEN];
	int one = 1, fd, defer_s = (int)((defer_ms + 999) / 1000);

	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* One listener per worker on the same address: the kernel spreads
	 * connections, and no worker ever touches another's accept queue. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		goto fail;
	/* Inherited by every accepted socket (Linux), saving a call each. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		goto fail;
	/*
	 * A connection that has sent nothing stays a request in the kernel's
	 * queue, costing no descriptor, until its first byte or defer_s; a
	 * flood of idle clients past the queue's length is accepted as usual
	 * (SYN cookies) and meets the peek timeout and the cap.
	 */
	if (defer_s > 0 && setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT,
				      &defer_s, sizeof(defer_s)) != 0)
		goto fail;
	if (a->sa.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->sa, a->len) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0)
		goto fail;
	return fd;
fail:
	log_err("proxy: cannot listen on %s: %s",
		addr_format((const struct sockaddr *)&a->sa, addr, sizeof(addr)),
		strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Slots a worker keeps beside max_connections for connections at the peek. */
static uint32_t reserve_for(uint32_t max_conns)
{
	return max_conns / 16 < 64 ? 64 : max_conns / 16;
}

/*
 * Descriptors a worker holds at most with the cap at max_conns: two per
 * relay (client and upstream), one per connection at the peek in the
 * reserve, two per splice pipe, each listener and the connections it has
 * accepted but not handed over yet, and those released but not yet closed
 * (worker_close_fd). Slots still closing hold theirs for a loop turn more;
 * accept errors back off meanwhile.
 */
static uint64_t worker_fds(const struct cfg *cfg, uint32_t max_conns)
{
	uint64_t nlis = cfg->proxy.nhttp + cfg->proxy.nhttps;

	return 2 * (uint64_t)max_conns + reserve_for(max_conns) +
	       2 * (uint64_t)cfg->proxy.splice_pipes +
	       nlis * (1 + IO_ACCEPTED_PENDING_MAX) + CLOSE_BATCH + FD_WORKER;
}

/*
 * max_connections per worker, no more than the descriptors allow: the
 * soft RLIMIT_NOFILE is raised to the hard one, and max_connections is
 * lowered (with a warning) until every worker at its cap fits under it,
 * so that the cap makes room before accept runs out of descriptors.
 */
static uint32_t budget_max_conns(const struct cfg *cfg, unsigned nworkers)
{
	uint32_t want = cfg->proxy.max_connections, lo = 16, hi = want;
	struct rlimit rl;
	uint64_t per_worker;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return want;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_cur = was;
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		return want;
	per_worker = rl.rlim_cur > FD_PROCESS
		? (rl.rlim_cur - FD_PROCESS) / nworkers : 0;
	if (worker_fds(cfg, want) <= per_worker)
		return want;
	if (worker_fds(cfg, lo) > per_worker) {
		log_warn("proxy: max_connections %u needs %llu descriptors per "
			 "worker (%u worker%s) and RLIMIT_NOFILE is %llu: not "
			 "even %u fit; accepts will fail and back off", want,
			 (unsigned long long)worker_fds(cfg, want), nworkers,
			 nworkers == 1 ? "" : "s",
			 (unsigned long long)rl.rlim_cur, lo);
		return lo;
	}
	/* The most that fits: worker_fds() grows with max_conns. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;

		if (worker_fds(cfg, mid) <= per_worker)
			lo = mid;
		else
			hi = mid - 1;
	}
	log_warn("proxy: max_connections %u needs %llu descriptors per worker "
		 "(%u worker%s) and RLIMIT_NOFILE is %llu: max_connections %u "
		 "per worker", want, (unsigned long long)worker_fds(cfg, want),
		 nworkers, nworkers == 1 ? "" : "s",
		 (unsigned long long)rl.rlim_cur, lo);
	return lo;
}

/*
 * Grows the descriptor table to the process's budget now, while it has one
 * thread. The kernel doubles the table when a descriptor past its end is
 * first handed out, and in a process of several threads each doubling
 * waits for an RCU grace period with the allocating thread asleep: a
 * worker taking its first few thousand connections at once (a burst of
 * clients after a start, a slow flood's first bytes) stopped in accept for
 * 70-90 ms over the doublings from 256 to 8192, and a CA's validator with
 * it. The table never shrinks, so a descriptor opened at its far end and
 * closed leaves it at full size; with one thread the growth waits for
 * nothing. The rlimit (at most fs.nr_open) bounds what it costs the
 * kernel: eight bytes a descriptor.
 */
static void fdtable_presize(uint64_t want)
{
	struct rlimit rl;
	int fd, far;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    want > rl.rlim_cur)
		want = rl.rlim_cur;
	if (want > INT32_MAX)
		want = INT32_MAX;
	if (want < 2)
		return;
	fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0)
		return;
	far = fcntl(fd, F_DUPFD_CLOEXEC, (int)(want - 1));
	if (far >= 0)
		close(far);
	else
		log_debug("proxy: descriptor table not grown to %llu: %s",
			  (unsigned long long)want, strerror(errno));
	close(fd);
}

static int worker_setup(struct proxy *px, struct worker *w, unsigned id,
			const struct io_ops *io)
{
	const struct cfg *cfg = px->live->cfg;
	char err[256];
	unsigned n = 0;

	w->id = id;
	w->px = px;
	w->io = io;
	w->lc = live_cfg_get(px);
	w->stats = pstats_worker(px->stats, id);
	w->now_ms = clock_mono_ms();
	w->max_conns = px->max_conns;
	w->reserve = reserve_for(w->max_conns);
	/* The descriptor room at one per slot, and the reserve again for
	 * slots still closing (evict.h). */
	conn_slab_init(w, worker_fd_room(w) + w->reserve);

	w->nlisteners = (unsigned)(cfg->proxy.nhttp + cfg->proxy.nhttps);
	w->listeners = calloc(w->nlisteners ? w->nlisteners : 1,
			      sizeof(*w->listeners));
	BUG_ON(!w->listeners);
	for (unsigned i = 0; i < w->nlisteners; i++)
		w->listeners[i].fd = -1;
	for (int https = 0; https < 2; https++) {
		const struct cfg_addr *addrs = https ? cfg->proxy.https : cfg->proxy.http;
		size_t na = https ? cfg->proxy.nhttps : cfg->proxy.nhttp;
		for (size_t i = 0; i < na; i++, n++) {
			struct listener *l = &w->listeners[n];
			l->https = https;
			l->addr = addrs[i].sa;
			l->fd = listen_on(&addrs[i], cfg->proxy.defer_accept_ms);
			if (l->fd < 0)
				return -1;
		}
	}
	w->tls_ctx = acme_tls_ctx_new(cfg->store.capacity + 1, err, sizeof(err));
	if (!w->tls_ctx) {
		log_err("proxy: TLS setup: %s", err);
		return -1;
	}
	return 0;
}

static void worker_teardown(struct worker *w)
{
	if (w->io_priv)
		w->io->fini(w);
	for (unsigned i = 0; w->listeners && i < w->nlisteners; i++)
		if (w->listeners[i].fd >= 0)
			close(w->listeners[i].fd);
	acme_tls_ctx_free(w->tls_ctx);
	if (w->lc)
		live_cfg_put(w->lc);
	while (w->npool)
		free(w->pool[--w->npool]);
	while (w->npipes) {
		w->npipes--;
		close(w->pipes[w->npipes].fd[0]);
		close(w->pipes[w->npipes].fd[1]);
	}
	free(w->listeners);
	conn_slab_free(w);
}

static void reload(struct proxy *px, struct retired *ret, size_t *nret)
{
	struct cfg *next = cfg_reload(px->cfg_path, "proxy");
	struct cfg *cur = px->live->cfg;

	if (!next)
		return;
	if (next->proxy.nhttp != cur->proxy.nhttp ||
	    next->proxy.nhttps != cur->proxy.nhttps ||
	    memcmp(next->proxy.http, cur->proxy.http,
		   next->proxy.nhttp * sizeof(*next->proxy.http)) ||
	    memcmp(next->proxy.https, cur->proxy.https,
		   next->proxy.nhttps * sizeof(*next->proxy.https)) ||
	    next->proxy.workers != cur->proxy.workers ||
	    next->proxy.max_connections != cur->proxy.max_connections ||
	    next->proxy.defer_accept_ms != cur->proxy.defer_accept_ms ||
	    strcmp(next->store.path, cur->store.path))
		log_warn("proxy: listeners, defer_accept, workers, "
			 "max_connections and [store] change only on restart; "
			 "routes, upstreams, policies and timeouts change now");
	struct live_cfg *old = atomic_exchange(&px->live, live_cfg_new(next));
	if (*nret < 64) {
		ret[*nret].lc = old;
		ret[*nret].at_ms = clock_mono_ms() + RETIRE_MS;
		(*nret)++;
	} else {
		/* Sixty-four reloads within two seconds: keep the reference. */
		log_warn("proxy: reloads too frequent; an old config stays in memory");
	}
	log_info("proxy: reloaded %s: %zu route%s", px->cfg_path, next->nroutes,
		 next->nroutes == 1 ? "" : "s");
}

static int open_store(struct proxy *px, const sigset_t *sigs)
{
	const struct cfg *cfg = px->live->cfg;
	bool said = false;
	char err[512];

	for (;;) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		int rc = store_open_reader(cfg->store.path, priv_uid(PRIV_API),
					   &px->store, err,
					   sizeof(err));
		if (rc == 0)
			return 0;
		if (rc != -ENOENT) {
			log_err("proxy: token store: %s", err);
			return -1;
		}
		if (!said) {
			log_info("proxy: waiting for the API to create %s",
				 cfg->store.path);
			said = true;
		}
		int sig = sigtimedwait(sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT)
			return -1;
	}
}

/*
 * The I/O backend, chosen once for the process, in the main thread before
 * any worker starts, with one log line naming it. auto takes io_uring when
 * a ring with every operation the proxy uses can be made, and epoll when
 * io_uring is missing or forbidden (ENOSYS, EPERM: an old kernel, the
 * kernel.io_uring_disabled sysctl, a container's seccomp profile) or lacks
 * an operation. Running out of memory or descriptors is no reason to
 * change backends: that error stops the proxy, as it would stop epoll a
 * moment later. NULL when the proxy cannot run.
 */
static const struct io_ops *choose_backend(const struct cfg *cfg)
{
	char why[256] = "";
	int rc;

	switch (cfg->proxy.io_backend) {
	case IO_BACKEND_EPOLL:
		log_info("proxy: io backend epoll (io_backend = epoll)");
		return &io_epoll_ops;
	case IO_BACKEND_URING:
		rc = uring_probe(why, sizeof(why));
		if (rc) {
			log_err("proxy: io_backend = io_uring, but io_uring is "
				"unavailable: %s", why);
			return NULL;
		}
		log_info("proxy: io backend io_uring (io_backend = io_uring)");
		return &io_uring_ops;
	case IO_BACKEND_AUTO:
	default:
		break;
	}
	rc = uring_probe(why, sizeof(why));
	if (rc == 0) {
		log_info("proxy: io backend io_uring");
		return &io_uring_ops;
	}
	/* EACCES: an LSM (SELinux) refusing io_uring, as a seccomp filter would. */
	if (rc == -ENOSYS || rc == -EPERM || rc == -EACCES) {
		log_warn("proxy: io backend epoll (io_uring unavailable: %s)", why);
		return &io_epoll_ops;
	}
	log_err("proxy: io_uring set-up failed: %s (no fallback to epoll for "
		"this error; io_backend = epoll forces it)", why);
	return NULL;
}

/*
 * Starts every worker thread and waits until each has its loop set up;
 * *started counts the threads to join. 0, or -1 with the stop flag set
 * for those that did start.
 */
static int start_workers(struct proxy *px, unsigned *started)
{
	for (*started = 0; *started < px->nworkers; (*started)++) {
		struct worker *w = &px->workers[*started];
		int e = pthread_create(&w->thread, NULL, worker_main, w);

		if (e) {
			log_err("proxy: thread: %s", strerror(e));
			atomic_store(&px->stop, true);
			return -1;
		}
	}
	pthread_mutex_lock(&px->start_mu);
	while (px->started < px->nworkers)
		pthread_cond_wait(&px->start_cv, &px->start_mu);
	pthread_mutex_unlock(&px->start_mu);
	if (px->start_failed) {
		atomic_store(&px->stop, true);
		return -1;
	}
	return 0;
}

/*
 * The main thread while the workers run: a reload on SIGHUP, until SIGTERM
 * or SIGINT. A config replaced by a reload is released RETIRE_MS later, once
 * no worker can still be taking a reference to it; those left in ret at the
 * return are the caller's to release once the workers are joined.
 */
static void serve_signals(struct proxy *px, const sigset_t *sigs,
			  struct retired *ret, size_t *nret)
{
	for (;;) {
		struct timespec ts = {0, 500 * 1000 * 1000};
		int sig = sigtimedwait(sigs, NULL, &ts);
		uint64_t now = clock_mono_ms();

		while (*nret && ret[0].at_ms <= now) {
			live_cfg_put(ret[0].lc);
			memmove(ret, ret + 1, --*nret * sizeof(ret[0]));
		}
		if (sig == SIGHUP)
			reload(px, ret, nret);
		else if (sig == SIGTERM || sig == SIGINT)
			return;
	}
}

int proxy_main(struct cfg *cfg, const char *cfg_path)
{
	struct proxy px = {
		.cfg_path = cfg_path,
		.start_mu = PTHREAD_MUTEX_INITIALIZER,
		.start_cv = PTHREAD_COND_INITIALIZER,
	};
	struct retired ret[64];
	size_t nret = 0;
	const struct io_ops *io;
	char path[CFG_PATH_MAX + 16], err[512];
	sigset_t sigs;
	int rc = 1;
	unsigned started = 0;

	atomic_init(&px.live, live_cfg_new(cfg));
	atomic_init(&px.stop, false);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	/* Blocked here, so the worker threads inherit the block. */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	io = choose_backend(cfg);
	if (!io)
		goto out;
	px.nworkers = cfg->proxy.workers;
	if (px.nworkers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		px.nworkers = n < 1 ? 1 : n > PSTATS_WORKERS_MAX ? PSTATS_WORKERS_MAX
							       : (unsigned)n;
	}
	px.max_conns = budget_max_conns(cfg, px.nworkers);
	fdtable_presize(FD_PROCESS + px.nworkers * worker_fds(cfg, px.max_conns));
	if (open_store(&px, &sigs) != 0)
		goto out;
	pstats_path(cfg->store.path, path, sizeof(path));
	if (pstats_create(path, px.nworkers, io->name, priv_owner(PRIV_PROXY),
			  &px.stats, err,
			  sizeof(err)) != 0) {
		log_err("proxy: statistics: %s", err);
		goto out;
	}
	px.workers = calloc(px.nworkers, sizeof(*px.workers));
	BUG_ON(!px.workers);
	for (unsigned i = 0; i < px.nworkers; i++)
		if (worker_setup(&px, &px.workers[i], i, io) != 0)
			goto out;
	if (priv_drop(PRIV_PROXY) != 0)
		goto out;
	if (start_workers(&px, &started) != 0)
		goto join;
	log_info("proxy: ready: %u worker%s on %s, %zu http and %zu https "
		 "listener%s", px.nworkers, px.nworkers == 1 ? "" : "s", io->name,
		 cfg->proxy.nhttp, cfg->proxy.nhttps,
		 cfg->proxy.nhttp + cfg->proxy.nhttps == 1 ? "" : "s");

	serve_signals(&px, &sigs, ret, &nret);
	log_info("proxy: stopping: draining connections for up to %u ms",
		 px.live->cfg->proxy.grace_ms);
	atomic_store(&px.stop, true);
	rc = 0;
join:
	for (unsigned i = 0; i < started; i++)
		pthread_join(px.workers[i].thread, NULL);
out:
	for (unsigned i = 0; px.workers && i < px.nworkers; i++)
		worker_teardown(&px.workers[i]);
	free(px.workers);
	while (nret)
		live_cfg_put(ret[--nret].lc);
	live_cfg_put(atomic_load(&px.live));
	pstats_close(px.stats);
	store_close(px.store);
	if (rc == 0)
		log_info("proxy: stopped");
	return rc;
}
