/*
 * Multi-process torture test for store/store.c: one writer process and
 * READERS reader processes share a store; the writer is killed with SIGKILL
 * at random moments and replaced, CYCLES times.
 *
 * What must hold, and who checks it:
 *  - every entry a reader gets (lookup or iterate) is self-consistent: its
 *    ident field carries a hash over kind, key, lengths, times and payload,
 *    so a torn copy (fields from two versions) shows; the key is the one
 *    asked for and it has not expired (readers);
 *  - no lookup blocks, even against an orphaned store whose writer died
 *    mid-change: each reader keeps its worst single-lookup latency
 *    (readers report, the parent asserts < MAX_LATENCY_NS);
 *  - a new writer opens a killed writer's store (the flock died with it),
 *    finds it consistent (every entry sound, no key twice, the stats agree),
 *    and from then on every return code and every lookup agrees with a
 *    model it keeps of what it did (writers; they exit non-zero at once
 *    on any disagreement, so the parent sees it even before killing them).
 *
 * Readers send their counts through a pipe at the end; writers, which are
 * killed, keep theirs in a shared anonymous page. Every child asks for
 * SIGKILL when the parent dies, and the parent kills and reaps every child
 * on every way out, so no process outlives the test. Bounded to ~15 s.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/edge.h"
#include "store/store.h"
#include "store_test.h"

#define POOL 2000		/* keys per kind */
#define CAPACITY 1024		/* < 2 * POOL: the store fills up */
#define READERS 3
#define CYCLES 3		/* kill + reopen */
#define FIRST_RUN_MS 5000
#define ORPHAN_MS 1000
#define LATER_RUN_MS 1500	/* killed writers 1..CYCLES-1, +- 500 */
#define FINAL_OPS 5000
#define PHASE_OPS 4000		/* writer ops per fill or drain phase */
/*
 * Hot keys (indices below HOT, both kinds) get a share of every process's
 * traffic and big payloads: the writer keeps replacing them, so the slot a
 * reader is copying is often freed and refilled under it (the free list is
 * LIFO), which is what a broken seqlock would let through.
 */
#define HOT 4
#define HOT_READ_PCT 40
#define HOT_WRITE_PCT 25
#define MAX_LATENCY_NS 50000000LL
#define ITERATE_EVERY 4096	/* lookups between two iterates */
#define LATENCY_BATCH 64	/* lookups per CPU-time sample */

enum { EXIT_OPEN = 10, EXIT_MISMATCH = 11, EXIT_TORN = 12 };

struct shared {
	_Atomic int stop;
	_Atomic uint64_t ops[CYCLES + 1];	/* per writer generation */
	_Atomic uint64_t start_entries[CYCLES + 1];
};

struct reader_result {
	uint64_t lookups;
	uint64_t hits;
	uint64_t torn;
	uint64_t iterates;
	uint64_t iterated;
	int64_t max_lookup_ns;	/* the reader's own time, see account_latency */
	int64_t max_wall_ns;	/* including time lost to preemption */
};

static char store_path[128];
static struct shared *sh;

/* ---- small helpers ------------------------------------------------------ */

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * Key i of the pool. http-01: a 43-character token (every ACME token has
 * that length); tls-alpn-01: a name of varying length. The index is
 * readable in both, so an iterated key can be checked against the pool.
 */
static void pool_key(enum store_kind kind, uint32_t i, char *buf, size_t cap)
{
	if (kind == STORE_HTTP01) {
		BUG_ON(cap < TOKEN_LEN + 1);
		snprintf(buf, cap, "%04u", i);
		token_fill(buf, 4, i * 0x9e3779b97f4a7c15ULL + 7);
	} else {
		snprintf(buf, cap, "%04u.%.*s.example.test", i, (int)(i % 11),
			 "abcdefghijk");
	}
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v;
	h *= 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 31);
}

/* The hash an entry carries in its ident: over everything but ident. */
static uint64_t entry_hash(const struct store_entry *e)
{
	uint64_t h = 0x51ed27a1c0ffee00ULL, w;
	uint32_t i = 0;

	h = mix(h, e->kind);
	h = mix(h, e->key_len);
	h = mix(h, e->client_len);
	h = mix(h, e->payload_len);
	h = mix(h, e->cert_len);
	h = mix(h, (uint64_t)e->created_ms);
	h = mix(h, (uint64_t)e->expires_ms);
	for (uint32_t k = 0; k < e->key_len && k < STORE_KEY_MAX; k++)
		h = mix(h, (uint8_t)e->key[k]);
	for (uint32_t k = 0; k < e->client_len && k < STORE_CLIENT_MAX; k++)
		h = mix(h, (uint8_t)e->client[k]);
	for (; i + 8 <= e->payload_len && i + 8 <= STORE_PAYLOAD_MAX; i += 8) {
		memcpy(&w, e->payload + i, 8);
		h = mix(h, w);
	}
	for (; i < e->payload_len && i < STORE_PAYLOAD_MAX; i++)
		h = mix(h, e->payload[i]);
	return h;
}

/* Fills e as writer generation gen would put kind/key; returns its hash. */
static uint64_t build_entry(struct store_entry *e, enum store_kind kind,
			    const char *key, bool hot, int gen, int64_t now)
{
	uint32_t plen;
	uint64_t w, h;

	/* Mostly sizes like real ones, sometimes anything up to the maximum. */
	if (hot)
		plen = STORE_PAYLOAD_MAX / 2 + rnd_below(STORE_PAYLOAD_MAX / 2);
	else if (rnd_below(8) == 0)
		plen = 1 + rnd_below(STORE_PAYLOAD_MAX);
	else
		plen = 1 + rnd_below(kind == STORE_HTTP01 ? 200 : 1500);
	if (kind == STORE_TLSALPN01 && plen < 2)
		plen = 2;
	e->kind = (uint8_t)kind;
	e->key_len = (uint8_t)strlen(key);
	memcpy(e->key, key, (size_t)e->key_len + 1);
	e->client_len = (uint8_t)snprintf(e->client, sizeof(e->client),
					  "writer-%d", gen);
	e->payload_len = plen;
	e->cert_len = kind == STORE_TLSALPN01 ? 1 + rnd_below(plen - 1) : 0;
	for (uint32_t i = 0; i < plen; i += 8) {
		w = rnd();
		memcpy(e->payload + i, &w, plen - i < 8 ? plen - i : 8);
	}
	e->created_ms = now;
	/* Some expire within the run, so sweeps and implicit sweeps act. */
	e->expires_ms = !hot && rnd_below(7) == 0 ? now + 10 + rnd_below(500) :
		now + 600000;
	h = entry_hash(e);
	e->ident_len = 16;
	snprintf(e->ident, sizeof(e->ident), "%016" PRIx64, h);
	return h;
}

/*
 * Is e a sound entry? want_key NULL: any pool key (iterate). Returns NULL
 * or what is wrong.
 */
static const char *entry_fault(const struct store_entry *e,
			       enum store_kind want_kind, const char *want_key,
			       int64_t now)
{
	char key[64];
	unsigned idx;

	if (e->kind != STORE_HTTP01 && e->kind != STORE_TLSALPN01)
		return "kind";
	if (want_key && e->kind != want_kind)
		return "kind asked";
	if (e->key_len == 0 || e->key[e->key_len] != '\0' ||
	    strlen(e->key) != e->key_len)
		return "key length";
	if (want_key) {
		if (strcmp(e->key, want_key) != 0)
			return "key asked";
	} else {
		if (sscanf(e->key, "%4u", &idx) != 1 || idx >= POOL)
			return "key not from the pool";
		pool_key((enum store_kind)e->kind, idx, key, sizeof(key));
		if (strcmp(key, e->key) != 0)
			return "key not from the pool";
	}
	if (e->ident_len != 16 || e->ident[16] != '\0' ||
	    e->client_len > STORE_CLIENT_MAX || e->client[e->client_len] != '\0')
		return "ident/client length";
	if (e->payload_len == 0 || e->payload_len > STORE_PAYLOAD_MAX)
		return "payload length";
	if (e->kind == STORE_HTTP01 ? e->cert_len != 0 :
	    e->cert_len == 0 || e->cert_len >= e->payload_len)
		return "cert length";
	if (e->expires_ms <= now)
		return "expired";
	if (strtoull(e->ident, NULL, 16) != entry_hash(e))
		return "hash (torn copy)";
	return NULL;
}

/* ---- writer ------------------------------------------------------------- */

struct model {
	bool present;		/* in the store, expired or not */
	uint64_t version;
	uint64_t hash;
	int64_t expires_ms;
};

static struct model model[2][POOL];
static uint32_t model_count;
static char keys[2][POOL][64];
static struct store_entry wbuf, rbuf;

static void writer_fail(int gen, const char *what, uint64_t op, int kind,
			uint32_t idx, long got, long want)
{
	fprintf(stderr, "writer %d, op %" PRIu64 ", %s %u: %s: got %ld, want %ld\n",
		gen, op, kind ? store_kind_name((enum store_kind)kind) : "-", idx,
		what, got, want);
	_exit(EXIT_MISMATCH);
}

static uint32_t model_sweep(int64_t now)
{
	uint32_t n = 0;

	for (int k = 0; k < 2; k++)
		for (uint32_t i = 0; i < POOL; i++)
			if (model[k][i].present && model[k][i].expires_ms <= now) {
				model[k][i].present = false;
				n++;
			}
	model_count -= n;
	return n;
}

struct adopt {
	int gen;
	uint64_t n;
};

/* Takes over what the store holds after the open's repair. */
static int adopt_fn(const struct store_entry *e, void *arg)
{
	struct adopt *a = arg;
	const char *fault = entry_fault(e, STORE_HTTP01, NULL, INT64_MIN);
	unsigned idx;
	struct model *m;

	if (fault) {
		fprintf(stderr, "writer %d: repaired store holds a bad entry "
			"(%s): %s\n", a->gen, fault, e->key);
		_exit(EXIT_TORN);
	}
	sscanf(e->key, "%4u", &idx);
	m = &model[e->kind - 1][idx];
	if (m->present) {
		fprintf(stderr, "writer %d: repaired store holds %s twice\n",
			a->gen, e->key);
		_exit(EXIT_TORN);
	}
	m->present = true;
	m->version = e->version;
	m->hash = strtoull(e->ident, NULL, 16);
	m->expires_ms = e->expires_ms;
	a->n++;
	return 0;
}

/* Every pool key answers as the model says. */
static void writer_verify_all(struct store *st, int gen, uint64_t op)
{
	int64_t now = wall_ms();
	struct store_stats ss;

	for (int k = 0; k < 2; k++)
		for (uint32_t i = 0; i < POOL; i++) {
			const struct model *m = &model[k][i];
			bool live = m->present && m->expires_ms > now;
			int rc = store_lookup(st, (enum store_kind)(k + 1),
					      keys[k][i], strlen(keys[k][i]),
					      now, &rbuf);

			if (rc != (live ? 0 : -ENOENT))
				writer_fail(gen, "verify lookup", op, k + 1, i,
					    rc, live ? 0 : -ENOENT);
			if (live && (rbuf.version != m->version ||
				     entry_fault(&rbuf, (enum store_kind)(k + 1),
						 keys[k][i], now)))
				writer_fail(gen, "verify entry", op, k + 1, i,
					    (long)rbuf.version, (long)m->version);
		}
	store_get_stats(st, &ss);
	if (ss.used != model_count)
		writer_fail(gen, "verify used", op, 0, 0, ss.used, model_count);
}

static void writer_main(int gen, int ready_fd)
{
	struct store *st = NULL;
	char err[256] = "";
	struct adopt a = { gen, 0 };
	int rc;

	rc = store_open_writer(store_path, CAPACITY,
			       (struct shm_owner){geteuid(), getegid()}, &st, err,
			       sizeof(err));
	if (rc) {
		fprintf(stderr, "writer %d: open: %d: %s\n", gen, rc, err);
		_exit(EXIT_OPEN);
	}
	/* The repaired store is sound and agrees with itself. */
	memset(model, 0, sizeof(model));
	store_iterate(st, INT64_MIN, adopt_fn, &a, &rbuf);
	model_count = (uint32_t)a.n;
	atomic_store(&sh->start_entries[gen], a.n);
	writer_verify_all(st, gen, 0);
	if (write(ready_fd, "R", 1) != 1)
		_exit(EXIT_OPEN);
	close(ready_fd);

	for (uint64_t op = 1;; op++) {
		int k = (int)rnd_below(2);
		enum store_kind kind = (enum store_kind)(k + 1);
		bool hot = rnd_below(100) < HOT_WRITE_PCT;
		uint32_t i = hot ? rnd_below(HOT) : rnd_below(POOL);
		struct model *m = &model[k][i];
		const char *key = keys[k][i];
		uint32_t r = rnd_below(1000);
		int64_t now = wall_ms();
		/*
		 * Alternate filling (the store sits full: -ENOSPC, implicit
		 * sweeps, replaces through the spare slot) and draining (many
		 * tombstones: index compactions), a few thousand ops each.
		 */
		bool filling = (op / PHASE_OPS) % 2 == 0;
		uint32_t put_below = filling ? 600 : 50;
		int want;

		if (hot)
			put_below = 900;	/* mostly replaces */
		if (r < put_below) {
			uint64_t h = build_entry(&wbuf, kind, key, hot, gen, now);

			if (m->present)
				want = 1;
			else if (model_count >= CAPACITY && model_sweep(now) == 0)
				want = -ENOSPC;
			else
				want = 0;
			rc = store_put(st, &wbuf, now);
			if (rc != want)
				writer_fail(gen, "put", op, kind, i, rc, want);
			if (rc >= 0) {
				model_count += !m->present;
				m->present = true;
				m->version = wbuf.version;
				m->hash = h;
				m->expires_ms = wbuf.expires_ms;
				/* Visible when store_put returns. */
				rc = store_lookup(st, kind, key, strlen(key), now,
						  &rbuf);
				if (rc != 0 || rbuf.version != m->version ||
				    entry_fault(&rbuf, kind, key, now))
					writer_fail(gen, "read back", op, kind,
						    i, rc, 0);
			}
		} else if (r < 800) {
			want = m->present ? 0 : -ENOENT;
			rc = store_delete(st, kind, key, strlen(key));
			if (rc != want)
				writer_fail(gen, "delete", op, kind, i, rc, want);
			model_count -= m->present;
			m->present = false;
		} else if (r < 995) {
			bool live = m->present && m->expires_ms > now;

			rc = store_lookup(st, kind, key, strlen(key), now, &rbuf);
			if (rc != (live ? 0 : -ENOENT))
				writer_fail(gen, "lookup", op, kind, i, rc,
					    live ? 0 : -ENOENT);
			if (live && (rbuf.version != m->version ||
				     strtoull(rbuf.ident, NULL, 16) != m->hash ||
				     entry_fault(&rbuf, kind, key, now)))
				writer_fail(gen, "lookup entry", op, kind, i,
					    (long)rbuf.version, (long)m->version);
		} else {
			unsigned n, want_n = model_sweep(now);

			n = store_sweep(st, now);
			if (n != want_n)
				writer_fail(gen, "sweep", op, 0, 0, n, want_n);
		}
		atomic_store_explicit(&sh->ops[gen], op, memory_order_relaxed);
		if (gen == CYCLES && op == FINAL_OPS) {
			writer_verify_all(st, gen, op);
			store_close(st);
			_exit(0);
		}
	}
}

/* ---- readers ------------------------------------------------------------ */

struct iter_ctx {
	struct reader_result *res;
	int64_t now;
	int id;
};

static int reader_iter_fn(const struct store_entry *e, void *arg)
{
	struct iter_ctx *c = arg;
	const char *fault = entry_fault(e, STORE_HTTP01, NULL, c->now);

	c->res->iterated++;
	if (fault) {
		if (c->res->torn++ < 5)
			fprintf(stderr, "reader %d: iterate gave a bad entry "
				"(%s): %.64s\n", c->id, fault, e->key);
	}
	return 0;
}

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long voluntary_switches(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw;
}

/*
 * The machine is shared (2 cores, other jobs): a reader preempted in the
 * middle of a lookup sees a long wall time it did not cause. A lookup's
 * wall time counts against the store only when the reader itself spent it,
 * on CPU (a spin shows in the batch's thread CPU time) or asleep of its own
 * accord (a lock or any blocking call shows as a voluntary switch); time it
 * merely lost to other processes is reported apart.
 */
static void account_latency(struct reader_result *res, int64_t batch_wall,
			    int64_t batch_cpu, bool slept)
{
	int64_t own = slept ? batch_wall :
		(batch_cpu < batch_wall ? batch_cpu : batch_wall);

	if (batch_wall > res->max_wall_ns)
		res->max_wall_ns = batch_wall;
	if (own > res->max_lookup_ns)
		res->max_lookup_ns = own;
}

static void reader_main(int id, int result_fd)
{
	struct reader_result res;
	struct store *st = NULL;
	char err[256] = "";
	int rc;

	memset(&res, 0, sizeof(res));
	rc = store_open_reader(store_path, geteuid(), &st, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "reader %d: open: %d: %s\n", id, rc, err);
		_exit(EXIT_OPEN);
	}
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		int64_t batch_wall = 0, cpu0 = 0;
		long vcsw0 = 0;

		for (int n = 0; n < ITERATE_EVERY; n++) {
			int k = (int)rnd_below(2);
			uint32_t i = rnd_below(100) < HOT_READ_PCT ?
				rnd_below(HOT) : rnd_below(POOL);
			int64_t now = wall_ms(), t0, dt;
			const char *fault;

			if (n % LATENCY_BATCH == 0) {
				cpu0 = thread_cpu_ns();
				vcsw0 = voluntary_switches();
				batch_wall = 0;
			}
			t0 = mono_ns();
			rc = store_lookup(st, (enum store_kind)(k + 1), keys[k][i],
					  strlen(keys[k][i]), now, &rbuf);
			dt = mono_ns() - t0;
			if (dt > batch_wall)
				batch_wall = dt;
			if (n % LATENCY_BATCH == LATENCY_BATCH - 1)
				account_latency(&res, batch_wall,
						thread_cpu_ns() - cpu0,
						voluntary_switches() != vcsw0);
			res.lookups++;
			if (rc == -ENOENT)
				continue;
			if (rc != 0) {
				fault = "return code";
			} else {
				res.hits++;
				fault = entry_fault(&rbuf, (enum store_kind)(k + 1),
						    keys[k][i], now);
			}
			if (fault && res.torn++ < 5)
				fprintf(stderr, "reader %d: lookup %s: %s (rc %d)\n",
					id, keys[k][i], fault, rc);
		}
		struct iter_ctx c = { &res, wall_ms(), id };
		store_iterate(st, c.now, reader_iter_fn, &c, &rbuf);
		res.iterates++;
	}
	store_close(st);
	if (write(result_fd, &res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(EXIT_OPEN);
	_exit(res.torn ? EXIT_TORN : 0);
}

/* ---- parent ------------------------------------------------------------- */

static pid_t kids[READERS + CYCLES + 1];
static int nkids;

/* Forks a child that dies with the parent; fn never returns. */
static pid_t spawn(void (*fn)(int, int), int arg, int fd, int close_fd)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	pid = fork();
	BUG_ON(pid < 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		if (close_fd >= 0)
			close(close_fd);
		rng_state = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^
			    (uint64_t)mono_ns();
		rng_state |= 1;
		fn(arg, fd);
		_exit(1);
	}
	kids[nkids++] = pid;
	return pid;
}

static void forget(pid_t pid)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] == pid)
			kids[i] = 0;
}

/* Kills and reaps every child still known: the way out on any path. */
static void reap_all(void)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
			kids[i] = 0;
		}
}

static void remove_files(void)
{
	char lock[sizeof(store_path) + 8];

	snprintf(lock, sizeof(lock), "%s.lock", store_path);
	unlink(store_path);
	unlink(lock);
}

static int failures;

static void fail(const char *what, const char *detail, long v)
{
	failures++;
	fprintf(stderr, "FAIL: %s: %s (%ld)\n", what, detail, v);
}

static const char *describe(int status, char *buf, size_t cap)
{
	if (WIFEXITED(status))
		snprintf(buf, cap, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, cap, "signal %d", WTERMSIG(status));
	else
		snprintf(buf, cap, "status %#x", status);
	return buf;
}

/* Starts writer generation gen and waits until it has verified the store. */
static pid_t start_writer(int gen)
{
	int p[2];
	char c;
	struct pollfd pfd;
	pid_t pid;

	BUG_ON(pipe(p) != 0);
	pid = spawn(writer_main, gen, p[1], p[0]);
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 10000) != 1 || read(p[0], &c, 1) != 1) {
		close(p[0]);
		return -pid;	/* open or verification failed: see its exit */
	}
	close(p[0]);
	return pid;
}

/* Waits up to ms for pid to end; kills it (and says false) if it does not. */
static bool wait_ms(pid_t pid, int *status, int64_t ms)
{
	int64_t end = mono_ns() + ms * 1000000;

	while (mono_ns() < end) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return true;
		sleep_ms(5);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return false;
}

static void writer_died_early(pid_t pid, int gen)
{
	int status;
	char buf[64];

	waitpid(pid, &status, 0);
	forget(pid);
	fail("writer ended before its time", describe(status, buf, sizeof(buf)),
	     gen);
}

static void run(void)
{
	int rfd[READERS];
	pid_t readers[READERS], writer;
	struct reader_result total;
	int64_t t_start = mono_ns();

	/* Generation 0 creates the store; readers need it to exist. */
	writer = start_writer(0);
	if (writer < 0) {
		writer_died_early(-writer, 0);
		return;
	}
	for (int r = 0; r < READERS; r++) {
		int p[2];

		BUG_ON(pipe(p) != 0);
		readers[r] = spawn(reader_main, r, p[1], p[0]);
		close(p[1]);
		rfd[r] = p[0];
	}

	for (int gen = 0; gen <= CYCLES; gen++) {
		int status;
		char buf[64];
		int64_t run_ms;

		if (gen > 0) {
			writer = start_writer(gen);
			if (writer < 0) {
				writer_died_early(-writer, gen);
				break;
			}
		}
		if (gen == CYCLES) {
			/* The last one does FINAL_OPS ops, verifies, exits 0. */
			bool ended = wait_ms(writer, &status, 10000);

			forget(writer);
			if (!ended || !WIFEXITED(status) ||
			    WEXITSTATUS(status) != 0)
				fail("final writer", describe(status, buf,
							      sizeof(buf)), gen);
			break;
		}
		run_ms = gen == 0 ? FIRST_RUN_MS : LATER_RUN_MS;
		sleep_ms(run_ms - 500 + (int64_t)rnd_below(1000));
		if (waitpid(writer, &status, WNOHANG) != 0) {
			forget(writer);
			fail("writer ended before it was killed",
			     describe(status, buf, sizeof(buf)), gen);
			break;
		}
		kill(writer, SIGKILL);
		waitpid(writer, &status, 0);
		forget(writer);
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
			fail("writer", describe(status, buf, sizeof(buf)), gen);
			break;
		}
		printf("writer %d: %" PRIu64 " ops (started with %" PRIu64
		       " entries), killed\n", gen, atomic_load(&sh->ops[gen]),
		       atomic_load(&sh->start_entries[gen]));
		/* Readers go on against the orphaned store. */
		sleep_ms(ORPHAN_MS);
	}
	if (!failures)
		printf("writer %d: %" PRIu64 " ops (started with %" PRIu64
		       " entries), verified, exited\n", CYCLES,
		       atomic_load(&sh->ops[CYCLES]),
		       atomic_load(&sh->start_entries[CYCLES]));
	/* A little more reading against the final, closed store. */
	sleep_ms(300);
	atomic_store(&sh->stop, 1);

	memset(&total, 0, sizeof(total));
	for (int r = 0; r < READERS; r++) {
		struct reader_result res;
		struct pollfd pfd = { rfd[r], POLLIN, 0 };
		int status;
		char buf[64];

		memset(&res, 0, sizeof(res));
		if (poll(&pfd, 1, 5000) != 1 ||
		    read(rfd[r], &res, sizeof(res)) != (ssize_t)sizeof(res))
			fail("reader sent no result", "", r);
		close(rfd[r]);
		if (!wait_ms(readers[r], &status, 5000))
			fail("reader did not exit", "", r);
		forget(readers[r]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail("reader", describe(status, buf, sizeof(buf)), r);
		printf("reader %d: %" PRIu64 " lookups, %" PRIu64 " hits, %" PRIu64
		       " torn, %" PRIu64 " iterates (%" PRIu64 " entries), max "
		       "lookup %.3f ms (%.3f ms wall with preemption)\n", r,
		       res.lookups, res.hits, res.torn, res.iterates,
		       res.iterated, res.max_lookup_ns / 1e6,
		       res.max_wall_ns / 1e6);
		total.lookups += res.lookups;
		total.hits += res.hits;
		total.torn += res.torn;
		total.iterated += res.iterated;
		if (res.max_lookup_ns > total.max_lookup_ns)
			total.max_lookup_ns = res.max_lookup_ns;
		if (res.max_wall_ns > total.max_wall_ns)
			total.max_wall_ns = res.max_wall_ns;
	}
	printf("%" PRIu64 " lookups, %" PRIu64 " hits, %" PRIu64 " torn; "
	       "%" PRIu64 " entries iterated; max lookup latency %.3f ms "
	       "(%.3f ms wall with preemption); %.1f s\n", total.lookups,
	       total.hits, total.torn, total.iterated,
	       total.max_lookup_ns / 1e6, total.max_wall_ns / 1e6,
	       (mono_ns() - t_start) / 1e9);
	if (total.torn)
		fail("torn or inconsistent entries", "", (long)total.torn);
	if (total.max_lookup_ns >= MAX_LATENCY_NS)
		fail("a lookup took too long (ns)", "", (long)total.max_lookup_ns);
	if (total.hits == 0)
		fail("readers never hit", "", 0);
}

int main(void)
{
	snprintf(store_path, sizeof(store_path),
		 "/dev/shm/acme-edge-test-store-torture-%d", (int)getpid());
	rng_state = (uint64_t)mono_ns() | 1;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	BUG_ON(sh == MAP_FAILED);
	for (int k = 0; k < 2; k++)
		for (uint32_t i = 0; i < POOL; i++)
			pool_key((enum store_kind)(k + 1), i, keys[k][i],
				 sizeof(keys[k][i]));
	/* A hung child must not hang the suite: SIGALRM ends us, PDEATHSIG them. */
	alarm(60);
	run();
	reap_all();
	remove_files();
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
